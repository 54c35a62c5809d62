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

bool prefix_scope(const intern_t *towns, proto_str_t prefix, uint32_t *town)
{
    static const char tp[] = "u/town/", cp[] = "u/county/";
    if (prefix.len >= strlen(cp) && memcmp(prefix.ptr, cp, strlen(cp)) == 0) {
        *town = 0;
        return true;
    }
    if (prefix.len <= strlen(tp) || memcmp(prefix.ptr, tp, strlen(tp)) != 0)
        return false;
    const char *p = prefix.ptr + strlen(tp);
    const char *slash = memchr(p, '/', (size_t)(prefix.ptr + prefix.len - p));
    if (slash == NULL)
        return false;
    int id = intern_find(towns, p, (size_t)(slash - p));
    if (id <= 0)
        return false;
    *town = (uint32_t)id;
    return true;
}
