/* prefix.c - which series a topic prefix selects (see prefix.h). */
#include "prefix.h"

#include <string.h>

bool prefix_matches(const intern_t *metrics, const intern_t *towns, uint32_t metric, uint32_t town,
                    proto_str_t prefix)
{
    uint32_t mlen = 0, tlen = 0;
    const char *m = intern_name(metrics, metric, &mlen);
    const char *t = town ? intern_name(towns, town, &tlen) : "";
    char topic[PROTO_TOPIC_MAX];
    int n = proto_topic(topic, sizeof(topic), (proto_str_t){m, mlen}, (proto_str_t){t, tlen});
    return n >= 0 && (size_t)n >= prefix.len && memcmp(topic, prefix.ptr, prefix.len) == 0;
}

/* The name at p (up to end) ended by '/', or {NULL, 0}; *next after it. */
static proto_str_t whole_name(const char *p, const char *end, const char **next)
{
    const char *slash = p < end ? memchr(p, '/', (size_t)(end - p)) : NULL;
    if (slash == NULL)
        return (proto_str_t){NULL, 0};
    *next = slash + 1;
    return (proto_str_t){p, (size_t)(slash - p)};
}

void prefix_split(proto_str_t prefix, prefix_parts_t *out)
{
    static const char tp[] = "u/town/", cp[] = "u/county/";
    const char *p = prefix.ptr, *end = prefix.ptr + prefix.len;
    *out = (prefix_parts_t){.town = {NULL, 0}, .metric = {NULL, 0}};
    if (prefix.len >= strlen(cp) && memcmp(p, cp, strlen(cp)) == 0) {
        out->county = true;
        p += strlen(cp);
    } else if (prefix.len > strlen(tp) && memcmp(p, tp, strlen(tp)) == 0) {
        out->town = whole_name(p + strlen(tp), end, &p);
        if (out->town.ptr == NULL)
            return;
    } else {
        return;
    }
    out->metric = whole_name(p, end, &p);
}

bool prefix_scope(const intern_t *towns, proto_str_t prefix, uint32_t *town)
{
    prefix_parts_t parts;
    prefix_split(prefix, &parts);
    if (parts.county) {
        *town = 0;
        return true;
    }
    int id = parts.town.ptr != NULL ? intern_find(towns, parts.town.ptr, parts.town.len) : 0;
    if (id <= 0)
        return false;
    *town = (uint32_t)id;
    return true;
}
