/* proto.c - what both directions of the tally wire codec share.
 *
 * The codec is three files: proto_encode.c (the encoder, on msgpack-c's
 * packer), proto_decode.c (the strict cursor decoder) and this one.  Here
 * live the rules that encoding and decoding must apply identically, so
 * that whatever the encoder writes the decoder accepts: UTF-8 validity
 * (by tallycommon's strict decoder, utf8.h), the name rules and the
 * element count of each message.  The small public
 * helpers on topics and string views are here too; they belong to neither
 * direction.
 */
#include "proto.h"
#include "proto_internal.h"
#include "utf8.h"

#include <assert.h>
#include <string.h>

const uint8_t proto_msg_elems[PROTO_TYPE_LAST + 1] = {0, 7, 8, 4, 4, 6, 4, 5,
                                                      4, 9, 3, 4, 4, 5, 6, 4, /* 0..15 */
                                                      5, 8,                   /* 16, 17: catalog */
                                                      5, 6, 8, 9, 7,          /* 18..22: history */
                                                      3, 6,                   /* 23, 24: clock */
                                                      6,                      /* 25: span */
                                                      4, 5, /* 26, 27: townships */
                                                      3, 7, /* 28, 29: backup */
                                                      6, 9, /* 30, 31: backup copy */
                                                      3, 6 /* 32, 33: backup list */};

/* ---- UTF-8 and names ---------------------------------------------------- */

bool proto_utf8_valid(const char *s, size_t len)
{
    return len == 0 || utf8_scan(s, len) == len;
}

/* ---- backups' names (8.27) ----------------------------------------------- */

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool proto_backup_name_valid(const char *s, size_t len)
{
    /* backup-YYYYMMDDTHHMMSSZ: 7 + 8 + 1 + 6 + 1 bytes */
    if (len < 23 || memcmp(s, "backup-", 7) != 0 || !digits(s + 7, 8) || s[15] != 'T' ||
        !digits(s + 16, 6) || s[22] != 'Z')
        return false;
    if (len == 23)
        return true;
    return len >= 25 && len <= 27 && s[23] == '-' && digits(s + 24, len - 24);
}

/* The suffix -N of a valid backup name as a number, 0 for none (so none
 * comes first, and -0, should someone make it, after it). */
static long backup_name_suffix(const char *name)
{
    return name[23] == '-' ? strtol(name + 24, NULL, 10) + 1 : 0;
}

int proto_backup_name_cmp(const char *a, const char *b)
{
    int c = memcmp(a, b, 23); /* "backup-YYYYMMDDTHHMMSSZ" */
    if (c != 0)
        return c;
    long na = backup_name_suffix(a), nb = backup_name_suffix(b);
    if (na != nb)
        return na < nb ? -1 : 1;
    return strcmp(a, b);
}

bool proto_backup_file_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > PROTO_BACKUP_NAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* The name rules of wire.md; *at receives the offset of the offending byte. */
int proto_name_scan(const uint8_t *s, size_t len, size_t *at)
{
    *at = 0;
    if (len == 0)
        return TALLY_EBADNAME;
    if (len > PROTO_NAME_MAX)
        return TALLY_ETOOLONG;
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c <= 0x20 || c == '/' || c == 0x7f) {
                *at = i;
                return TALLY_EBADNAME;
            }
            i++;
            continue;
        }
        size_t n = utf8_decode(s + i, len - i, NULL);
        *at = i;
        if (n == 0)
            return TALLY_EUTF8;
        if (c == 0xc2 && s[i + 1] < 0xa0)
            return TALLY_EBADNAME; /* U+0080..U+009F, the C1 controls */
        i += n;
    }
    return 0;
}

int proto_name_check(const char *name, size_t len)
{
    size_t at;
    if (name == NULL && len > 0)
        return TALLY_EBADNAME;
    return proto_name_scan((const uint8_t *)name, len, &at);
}

bool proto_township_reserved(const char *name, size_t len)
{
    return name != NULL && len == sizeof(PROTO_TOWNSHIP_RESERVED) - 1 &&
           memcmp(name, PROTO_TOWNSHIP_RESERVED, len) == 0;
}

/* ---- small helpers ------------------------------------------------------ */

int proto_topic(char *buf, size_t cap, proto_str_t metric, proto_str_t scope)
{
    static const char county[] = "u/county/", town[] = "u/town/";
    size_t need = scope.len == 0 ? sizeof county - 1 + metric.len + 1
                                 : sizeof town - 1 + scope.len + 1 + metric.len + 1;
    char *p = buf;
    if (buf == NULL || need >= cap || need > INT32_MAX)
        return TALLY_ETOOLONG;
    if (scope.len == 0) {
        memcpy(p, county, sizeof county - 1), p += sizeof county - 1;
    } else {
        memcpy(p, town, sizeof town - 1), p += sizeof town - 1;
        memcpy(p, scope.ptr, scope.len), p += scope.len;
        *p++ = '/';
    }
    if (metric.len > 0)
        memcpy(p, metric.ptr, metric.len), p += metric.len;
    *p++ = '/';
    *p = '\0';
    return (int)need;
}

/* The start of a name within s[0..len): the bytes before the first '/'
 * (or the end) are allowed name bytes, at most PROTO_NAME_MAX of them.
 * Returns how many bytes the name part takes, or -1. */
static long name_part(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len && s[i] != '/') {
        if (s[i] <= 0x20 || s[i] == 0x7f || i == PROTO_NAME_MAX)
            return -1;
        i++;
    }
    return (long)i;
}

/* Does s[0..len) begin like "<name>/" repeated parts times, possibly cut
 * short anywhere? */
static bool names_possible(const uint8_t *s, size_t len, int parts)
{
    for (int k = 0; k < parts; k++) {
        long n = name_part(s, len);
        if (n < 0)
            return false;
        if ((size_t)n == len)
            return true; /* cut short inside (or before) this name */
        if (n == 0)
            return false;                 /* an empty name */
        s += n + 1, len -= (size_t)n + 1; /* the name and its '/' */
        if (len == 0)
            return true;
    }
    return false; /* bytes after the last '/' */
}

bool proto_topic_prefix_possible(const void *p, size_t len)
{
    static const char county[] = "u/county/", town[] = "u/town/";
    const uint8_t *s = p;
    if (len > PROTO_TOPIC_MAX)
        return false;
    if (len <= strlen(PROTO_TOPIC_HEARTBEAT) && memcmp(s, PROTO_TOPIC_HEARTBEAT, len) == 0)
        return true;
    size_t cl = sizeof county - 1, tl = sizeof town - 1;
    if (len <= cl && memcmp(s, county, len) == 0)
        return true;
    if (len <= tl && memcmp(s, town, len) == 0)
        return true;
    if (len > cl && memcmp(s, county, cl) == 0)
        return names_possible(s + cl, len - cl, 1);
    if (len > tl && memcmp(s, town, tl) == 0)
        return names_possible(s + tl, len - tl, 2);
    return false;
}

uint64_t proto_req_id(const proto_msg_t *msg)
{
    switch (msg->type) {
    case PROTO_SNAPSHOT_REQ:
    case PROTO_SNAPSHOT_ITEM:
    case PROTO_SNAPSHOT_END:
    case PROTO_HELLO:
    case PROTO_WELCOME:
    case PROTO_STATS_REQ:
    case PROTO_STATS:
    case PROTO_PING:
    case PROTO_PONG:
    case PROTO_ERROR:
    case PROTO_CATALOG_REQ:
    case PROTO_CATALOG:
    case PROTO_PERIOD_REQ:
    case PROTO_PERIOD:
    case PROTO_RANGE_REQ:
    case PROTO_RANGE:
    case PROTO_CLOCK_REQ:
    case PROTO_CLOCK:
    case PROTO_SPAN_REQ:
    case PROTO_TOWNSHIPS_REQ:
    case PROTO_TOWNSHIPS:
    case PROTO_BACKUP_REQ:
    case PROTO_BACKUP:
    case PROTO_BACKUP_FETCH:
    case PROTO_BACKUP_CHUNK:
    case PROTO_BACKUP_LIST_REQ:
    case PROTO_BACKUP_LIST:
        return msg->u.stats_req.req_id; /* req_id leads each of these structs */
    default:
        return 0;
    }
}

proto_str_t proto_str(const char *s)
{
    if (s == NULL)
        return (proto_str_t){"", 0};
    size_t len = strlen(s);
    assert(len <= UINT32_MAX);
    return (proto_str_t){s, (uint32_t)len};
}

bool proto_str_eq(proto_str_t a, const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    return a.len == len && (len == 0 || memcmp(a.ptr, s, len) == 0);
}

/* ---- catalog and township list sizes ------------------------------------ */

/* Bytes of a str of n bytes as the encoder writes it (shortest header). */
static size_t str_size(size_t n)
{
    return n + (n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5);
}

/* Small non-negative integers (type, kind, scale) take one byte. */
size_t proto_catalog_township_size(const proto_township_t *t)
{
    return 1 + str_size(t->id.len) + str_size(t->name.len) + 1;
}

size_t proto_catalog_metric_size(const proto_metric_info_t *m)
{
    return 1 + str_size(m->id.len) + 1 + str_size(m->unit.len) + 1 + str_size(m->label.len) +
           str_size(m->numerator.len) + str_size(m->denominator.len);
}

size_t proto_townships_name_size(uint32_t len)
{
    return str_size(len);
}
