/* config_keys.c - every key of tallyd.conf: its section, type, range and
 * field in tallyd_config_t (the table below), and the check of one value
 * against it (config_key_set).  config.c holds the defaults, lookups and
 * reload checks; config_parse.c the file's layout.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* ---- keys -------------------------------------------------------------- */

enum value_type {
    V_INT,      /* decimal digits, into int64_t (or int when size says so) */
    V_SINT,     /* decimal digits after an optional '-', into int64_t */
    V_DURATION, /* config_parse_duration, into int64_t milliseconds */
    V_CHOICE,   /* one word of a list, into int */
    V_ENDPOINT, /* a ZeroMQ bind endpoint */
    V_PATH,     /* a file system path, stored as written */
    V_TIMEZONE, /* a TZif file under $TZDIR */
    V_TEXT,     /* UTF-8 display text without control characters */
    V_NAME,     /* a township or metric name (proto_name_check) */
};

typedef struct choice {
    const char *name;
    int value;
} choice_t;

typedef struct keyspec {
    const char *key;
    enum value_type type;
    size_t off;  /* offset of the field in the section's struct */
    size_t size; /* size of the field */
    int64_t min, max;
    const char *unit;        /* for messages: "milliseconds", "samples" */
    const choice_t *choices; /* V_CHOICE: ends with a NULL name */
    bool required;
} keyspec_t;

static const choice_t log_levels[] = {{"error", LOG_LEVEL_ERROR},   {"warning", LOG_LEVEL_WARNING},
                                      {"notice", LOG_LEVEL_NOTICE}, {"info", LOG_LEVEL_INFO},
                                      {"debug", LOG_LEVEL_DEBUG},   {NULL, 0}};
static const choice_t syncs[] = {{"always", CONFIG_SYNC_ALWAYS},
                                 {"interval", CONFIG_SYNC_INTERVAL},
                                 {"never", CONFIG_SYNC_NEVER},
                                 {NULL, 0}};
static const choice_t kinds[] = {
    {"counter", PROTO_KIND_COUNTER}, {"gauge", PROTO_KIND_GAUGE}, {NULL, 0}};
static const choice_t yes_no[] = {{"no", 0}, {"yes", 1}, {NULL, 0}};
static const choice_t township_types[] = {{"subdistrict", CONFIG_TOWNSHIP_SUBDISTRICT},
                                          {"town", CONFIG_TOWNSHIP_TOWN},
                                          {"township", CONFIG_TOWNSHIP_TOWNSHIP},
                                          {NULL, 0}};

#define FIELD(type, f) offsetof(type, f), sizeof(((type *)0)->f)
#define CFG(f)         FIELD(tallyd_config_t, f)
#define DAY            86400000LL
#define END                                                                                        \
    {                                                                                              \
        NULL, V_INT, 0, 0, 0, 0, NULL, NULL, false                                                 \
    }

static const keyspec_t tallyd_keys[] = {
    {"request", V_ENDPOINT, CFG(request), 0, 0, NULL, NULL, false},
    {"publish", V_ENDPOINT, CFG(publish), 0, 0, NULL, NULL, false},
    {"state_dir", V_PATH, CFG(state_dir), 0, 0, NULL, NULL, false},
    {"timezone", V_TIMEZONE, CFG(timezone), 0, 0, NULL, NULL, false},
    {"publish_interval_ms", V_INT, CFG(publish_interval_ms), 0, 60000, "milliseconds", NULL, false},
    {"heartbeat_ms", V_INT, CFG(heartbeat_ms), 100, 60000, "milliseconds", NULL, false},
    {"log_level", V_CHOICE, CFG(log_level), 0, 0, NULL, log_levels, false},
    END};

static const keyspec_t windows_keys[] = {
    {"buckets", V_INT, CFG(buckets), 2, 3600, "buckets per window", NULL, false}, END};

static const keyspec_t limits_keys[] = {
    {"max_samples", V_INT, CFG(max_samples), 1, PROTO_SAMPLES_MAX, "samples", NULL, false},
    {"max_msg_bytes", V_INT, CFG(max_msg_bytes), 1024, 16777216, "bytes", NULL, false},
    {"max_series", V_INT, CFG(max_series), 1, 1000000000, "series", NULL, false},
    {"max_clients", V_INT, CFG(max_clients), 1, 100000000, "client ids", NULL, false},
    {"client_expiry", V_DURATION, CFG(client_expiry_ms), DAY, 36600 * DAY, NULL, NULL, false},
    {"max_townships", V_INT, CFG(max_townships), 1, 10000000, "townships", NULL, false},
    {"max_metrics", V_INT, CFG(max_metrics), 1, 10000000, "metrics", NULL, false},
    {"skew", V_DURATION, CFG(skew_ms), 0, DAY, NULL, NULL, false},
    {"max_age", V_DURATION, CFG(max_age_ms), DAY, 36600 * DAY, NULL, NULL, false},
    {"rate", V_INT, CFG(rate), 0, 1000000000, "samples per second", NULL, false},
    {"burst", V_INT, CFG(burst), 1, 1000000000, "samples", NULL, false},
    {"max_subscriber_queue", V_INT, CFG(max_subscriber_queue), 1, 100000000, "messages", NULL,
     false},
    {"max_connections", V_INT, CFG(max_connections), 1, 1000000, "connections", NULL, false},
    {"max_subscriptions", V_INT, CFG(max_subscriptions), 1, 100000, "prefixes", NULL, false},
    {"max_subscription_bytes", V_INT, CFG(max_subscription_bytes), 64, 16777216, "bytes", NULL,
     false},
    {"max_inbound_bytes", V_INT, CFG(max_inbound_bytes), 65536, 1073741824, "bytes", NULL, false},
    {"max_reply_queue", V_INT, CFG(max_reply_queue), 1024, 1000000, "messages", NULL, false},
    {"max_snapshots", V_INT, CFG(max_snapshots), 1, 10000, "snapshots", NULL, false},
    {"snapshot_timeout", V_DURATION, CFG(snapshot_timeout_ms), 1000, 3600000, NULL, NULL, false},
    END};

static const keyspec_t journal_keys[] = {
    {"sync", V_CHOICE, CFG(sync), 0, 0, NULL, syncs, false},
    {"sync_interval", V_DURATION, CFG(sync_interval_ms), 1, 3600000, NULL, NULL, false},
    {"snapshot_interval", V_DURATION, CFG(snapshot_interval_ms), 1000, DAY, NULL, NULL, false},
    {"snapshot_every_records", V_INT, CFG(snapshot_every_records), 1, 1000000000000LL, "records",
     NULL, false},
    END};

static const keyspec_t history_keys[] = {
    {"days", V_INT, CFG(history_days), 1, 36600, "days", NULL, false}, END};

static const keyspec_t backup_keys[] = {
    {"dir", V_PATH, CFG(backup_dir), 0, 0, NULL, NULL, false},
    {"keep", V_INT, CFG(backup_keep), 1, 10000, "backups", NULL, false},
    {"interval", V_DURATION, CFG(backup_interval_ms), 0, 366 * DAY, NULL, NULL, false},
    END};

static const keyspec_t security_keys[] = {
    {"server_secret_key", V_PATH, CFG(server_secret_key), 0, 0, NULL, NULL, false},
    {"township_keys", V_PATH, CFG(township_keys), 0, 0, NULL, NULL, false},
    {"subscriber_keys", V_PATH, CFG(subscriber_keys), 0, 0, NULL, NULL, false},
    {"admin_keys", V_PATH, CFG(admin_keys), 0, 0, NULL, NULL, false},
    END};

static const keyspec_t township_keys[] = {
    {"name", V_TEXT, FIELD(config_township_t, name), 0, 0, NULL, NULL, false},
    {"type", V_CHOICE, FIELD(config_township_t, type), 0, 0, NULL, township_types, false},
    END};

static const keyspec_t metric_keys[] = {
    {"kind", V_CHOICE, FIELD(config_metric_t, kind), 0, 0, NULL, kinds, true},
    {"unit", V_TEXT, FIELD(config_metric_t, unit), 0, 0, NULL, NULL, false},
    {"scale", V_INT, FIELD(config_metric_t, scale), 0, CONFIG_SCALE_MAX, "decimal places", NULL,
     false},
    {"label", V_TEXT, FIELD(config_metric_t, label), 0, 0, NULL, NULL, false},
    {"min", V_SINT, FIELD(config_metric_t, min), INT64_MIN, INT64_MAX, "", NULL, false},
    {"max", V_SINT, FIELD(config_metric_t, max), INT64_MIN, INT64_MAX, "", NULL, false},
    {"negative", V_CHOICE, FIELD(config_metric_t, negative), 0, 0, NULL, yes_no, false},
    END};

static const keyspec_t ratio_keys[] = {
    {"numerator", V_NAME, FIELD(config_ratio_t, numerator), 0, 0, NULL, NULL, true},
    {"denominator", V_NAME, FIELD(config_ratio_t, denominator), 0, 0, NULL, NULL, true},
    {"label", V_TEXT, FIELD(config_ratio_t, label), 0, 0, NULL, NULL, false},
    END};

/* Every key of a section must be reachable by index (key_at): a section
 * with more keys than CONFIG_KEYS_MAX would make the last ones unknown. */
#define KEYS_FIT(t) _Static_assert(sizeof(t) / sizeof((t)[0]) <= CONFIG_KEYS_MAX + 1, #t)
KEYS_FIT(tallyd_keys);
KEYS_FIT(windows_keys);
KEYS_FIT(limits_keys);
KEYS_FIT(journal_keys);
KEYS_FIT(security_keys);
KEYS_FIT(history_keys);
KEYS_FIT(backup_keys);
KEYS_FIT(township_keys);
KEYS_FIT(metric_keys);
KEYS_FIT(ratio_keys);

static const struct section_def {
    const char *name;
    bool has_id;
    const keyspec_t *keys;
} sections[CONFIG_SEC_COUNT] = {
    [CONFIG_SEC_NONE] = {"", false, NULL},
    [CONFIG_SEC_TALLYD] = {"tallyd", false, tallyd_keys},
    [CONFIG_SEC_WINDOWS] = {"windows", false, windows_keys},
    [CONFIG_SEC_LIMITS] = {"limits", false, limits_keys},
    [CONFIG_SEC_JOURNAL] = {"journal", false, journal_keys},
    [CONFIG_SEC_SECURITY] = {"security", false, security_keys},
    [CONFIG_SEC_HISTORY] = {"history", false, history_keys},
    [CONFIG_SEC_BACKUP] = {"backup", false, backup_keys},
    [CONFIG_SEC_TOWNSHIP] = {"township", true, township_keys},
    [CONFIG_SEC_METRIC] = {"metric", true, metric_keys},
    [CONFIG_SEC_RATIO] = {"ratio", true, ratio_keys},
};

static const keyspec_t *key_at(int sec, size_t i)
{
    if (sec <= CONFIG_SEC_NONE || sec >= CONFIG_SEC_COUNT || i >= CONFIG_KEYS_MAX)
        return NULL;
    const keyspec_t *k = sections[sec].keys;
    for (size_t j = 0; j < i; j++)
        if (k[j].key == NULL)
            return NULL;
    return k[i].key ? &k[i] : NULL;
}

const char *config_section_name(int sec)
{
    return sec >= 0 && sec < CONFIG_SEC_COUNT ? sections[sec].name : "";
}

bool config_section_has_id(int sec)
{
    return sec >= 0 && sec < CONFIG_SEC_COUNT && sections[sec].has_id;
}

const char *config_key_name(int sec, size_t i)
{
    const keyspec_t *k = key_at(sec, i);
    return k ? k->key : NULL;
}

bool config_key_required(int sec, size_t i)
{
    const keyspec_t *k = key_at(sec, i);
    return k && k->required;
}

static void choices_text(char *buf, size_t cap, const choice_t *c)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; c[i].name && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", c[i].name);
}

const char *config_key_expect(int sec, size_t i, char *buf, size_t len)
{
    const keyspec_t *k = key_at(sec, i);
    if (k && k->type == V_CHOICE)
        choices_text(buf, len, k->choices);
    else
        snprintf(buf, len, "%s", k && k->type == V_NAME ? "a metric name" : "a value");
    return buf;
}

/* ---- values ------------------------------------------------------------ */

/* Digits only: the settings are never negative and never hexadecimal. */
static int parse_count(const char *s, int64_t *out)
{
    int64_t v = 0;
    if (*s < '0' || *s > '9')
        return TALLY_EINVAL;
    bool overflow = false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (INT64_MAX - (*s - '0')) / 10)
            overflow = true;
        else
            v = v * 10 + (*s - '0');
    }
    if (*s != '\0')
        return TALLY_EINVAL;
    *out = v;
    return overflow ? TALLY_ERANGE : 0;
}

/* parse_count with an optional leading '-'. */
static int parse_signed(const char *s, int64_t *out)
{
    if (*s != '-')
        return parse_count(s, out);
    /* -9223372036854775808 is one more than INT64_MAX: read as unsigned. */
    uint64_t v = 0;
    const char *p = s + 1;
    if (*p < '0' || *p > '9')
        return TALLY_EINVAL;
    bool overflow = false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > ((uint64_t)INT64_MAX + 1 - (uint64_t)(*p - '0')) / 10)
            overflow = true;
        else
            v = v * 10 + (uint64_t)(*p - '0');
    }
    if (*p != '\0')
        return TALLY_EINVAL;
    *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    return overflow ? TALLY_ERANGE : 0;
}

/* True when s holds a C0 control, DEL or a C1 control (U+0080..U+009F). */
static bool has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7F || (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F))
            return true;
    return false;
}

int config_check_timezone(const char *tz, char *why, size_t cap)
{
    if (tz[0] == '\0') {
        snprintf(why, cap, "is empty");
        return -1;
    }
    if (tz[0] == '/' || strstr(tz, "..") != NULL) {
        snprintf(why, cap,
                 "must be a name under the zoneinfo directory, without a leading '/' "
                 "or '..'");
        return -1;
    }
    for (const char *p = tz; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              strchr("/_+-.", *p))) {
            snprintf(why, cap, "holds a character no time zone name has");
            return -1;
        }
    }
    const char *dir = getenv("TZDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/usr/share/zoneinfo";
    char path[CONFIG_PATH_MAX + CONFIG_TZ_MAX + 2];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, tz) >= sizeof(path)) {
        snprintf(why, cap, "makes a path longer than %zu bytes", sizeof(path) - 1);
        return -1;
    }
    /* O_NONBLOCK: a FIFO planted in the zoneinfo tree must not hang us. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        snprintf(why, cap, "is not installed: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    char magic[4];
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, cap, "is not a time zone: %s is not a regular file", path);
        rc = -1;
    } else if (read(fd, magic, 4) != 4 || memcmp(magic, "TZif", 4) != 0) {
        snprintf(why, cap, "is not a time zone: %s is not a TZif file", path);
        rc = -1;
    }
    close(fd);
    return rc;
}

/* The port of a tcp://, ws:// or wss:// endpoint to bind (from after
 * "://"): "*" (any free one) or a number 0..65535, after the last ':'
 * ([::1]:7411 has colons before it); a ws path after the port.  *colon
 * gets the port's ':'. */
static const char *port_problem(const char *addr, bool ws, const char **colon_at)
{
    size_t len = ws && strchr(addr, '/') ? (size_t)(strchr(addr, '/') - addr) : strlen(addr);
    const char *colon = NULL;
    for (const char *p = addr; p < addr + len; p++)
        if (*p == ':')
            colon = p;
    if (colon == NULL || (addr[0] == '[' && colon < strchr(addr, ']')))
        return "has no port (HOST:PORT, or HOST:* for any free port)";
    *colon_at = colon;
    const char *port = colon + 1, *end = addr + len;
    if (end - port == 1 && *port == '*')
        return NULL;
    long v = 0;
    for (const char *p = port; p < end; p++) {
        if (*p < '0' || *p > '9' || p - port >= 5)
            return "has a port that is not a number from 0 to 65535 (or *)";
        v = v * 10 + (*p - '0');
    }
    if (port == end || v > 65535)
        return "has a port that is not a number from 0 to 65535 (or *)";
    return NULL;
}

/* Whether name is a network interface of this machine (ip link). */
static bool is_interface(const char *name)
{
    return name[0] != '\0' && strlen(name) < IF_NAMESIZE && if_nametoindex(name) != 0;
}

/* What is wrong with host[0..len) (between "://" and the port's ':') as
 * the place of a bind, as ZeroMQ resolves it for one (libzmq's
 * ip_resolver: no name lookup): "*", an IPv4 or IPv6 address (IPv6 in
 * brackets, with an optional %zone), or the name of an interface of this
 * machine, in brackets or not.  Anything else, a host name above all,
 * makes the bind fail (ENODEV), so it is refused here, where the error
 * is a configuration error that names the key and its line, and not at
 * the bind, where it would be a runtime failure systemd retries for
 * ever.  NULL when it is fine, else a sentence in buf. */
static const char *host_problem(const char *scheme, const char *host, size_t len, const char *port,
                                char *buf, size_t cap)
{
    char h[PROTO_ENDPOINT_MAX + 1];
    if (len >= sizeof(h))
        return "is longer than 255 bytes";
    memcpy(h, host, len);
    h[len] = '\0';
    bool bracketed = len >= 2 && h[0] == '[' && h[len - 1] == ']';
    char *a = h;
    if (bracketed) {
        h[len - 1] = '\0';
        a = h + 1;
    }
    char *zone = strrchr(a, '%');
    if (zone != NULL) {
        *zone++ = '\0';
        bool number =
            zone[0] >= '1' && zone[0] <= '9' && strspn(zone, "0123456789") == strlen(zone);
        if (!number && !is_interface(zone)) {
            snprintf(
                buf, cap,
                "has the zone '%s' after '%%', which is neither an interface of this machine "
                "nor an interface number (expected an address such as %s://[fe80::1%%eth0]:%s)",
                zone, scheme, port);
            return buf;
        }
    }
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(a, "*") == 0 || inet_pton(AF_INET, a, &a4) == 1)
        return NULL;
    if (inet_pton(AF_INET6, a, &a6) == 1) {
        if (bracketed)
            return NULL;
        snprintf(buf, cap, "has an IPv6 address outside brackets (expected %s://[%s]:%s)", scheme,
                 a, port);
        return buf;
    }
    if (zone == NULL && is_interface(a))
        return NULL;
    snprintf(buf, cap,
             "binds to '%s', which is neither an IP address, * nor an interface of this machine "
             "(ZeroMQ binds to no host name: %s://127.0.0.1:%s or %s://[::1]:%s for this "
             "machine only, %s://*:%s for all its addresses)",
             a, scheme, port, scheme, port, scheme, port);
    return buf;
}

bool config_endpoints_clash(const char *a, const char *b)
{
    if (strcmp(a, b) != 0)
        return false;
    const char *colon = strrchr(a, ':');
    return colon == NULL || !(strcmp(colon, ":*") == 0 || strcmp(colon, ":0") == 0);
}

#define ENDPOINT_EXAMPLES                                                                          \
    " (expected a ZeroMQ endpoint such as tcp://127.0.0.1:7411, tcp://*:7411 or "                  \
    "ipc:///run/tallyd/request)"

const char *config_endpoint_problem(const char *v, char *buf, size_t cap)
{
    static const char *const transports[] = {"tcp", "ipc", "inproc", "ws", "wss", "tipc", "vmci"};
    const char *problem = NULL;
    const char *sep = strstr(v, "://");
    size_t tlen = sep != NULL ? (size_t)(sep - v) : 0;
    if (v[0] == '\0')
        problem = "is empty";
    else if (strlen(v) > PROTO_ENDPOINT_MAX)
        problem = "is longer than 255 bytes";
    for (const char *p = v; problem == NULL && *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7F)
            problem = "holds a space or a control character";
    if (problem == NULL && (sep == NULL || sep[3] == '\0'))
        problem = "is not TRANSPORT://ADDRESS";
    size_t i = 0, n = sizeof(transports) / sizeof(transports[0]);
    while (problem == NULL && i < n &&
           !(strlen(transports[i]) == tlen && memcmp(v, transports[i], tlen) == 0))
        i++;
    if (problem == NULL && i == n)
        problem = "names a transport ZeroMQ cannot bind";
    if (problem == NULL && (i == 0 || i == 3 || i == 4)) { /* tcp, ws, wss */
        const char *addr = sep + 3, *colon = NULL;
        problem = port_problem(addr, i != 0, &colon);
        if (problem == NULL) {
            char port[8];
            size_t plen = strcspn(colon + 1, "/");
            snprintf(port, sizeof(port), "%.*s", (int)(plen < 6 ? plen : 6), colon + 1);
            const char *hp =
                host_problem(transports[i], addr, (size_t)(colon - addr), port, buf, cap);
            if (hp == buf)
                return buf; /* a sentence with its own example */
            problem = hp;
        }
    }
    if (problem == NULL)
        return NULL;
    snprintf(buf, cap, "%s%s", problem, ENDPOINT_EXAMPLES);
    return buf;
}

/* The checks of one value; on success the caller copies or stores it. */
static int check_value(const keyspec_t *ks, const char *value, int64_t *num, char *why, size_t len)
{
    char pv[160], a[32], b[32], extra[CONFIG_PATH_MAX + 128];
    const char *shown = config_printable(pv, sizeof(pv), value, strlen(value));
    const char *hint = strstr(value, " #") ? " (comments after a value start with ';')" : "";
    size_t vlen = strlen(value);
    int rc;

    switch (ks->type) {
    case V_SINT:
        rc = parse_signed(value, num);
        if (rc == TALLY_EINVAL)
            snprintf(why, len, "'%s' is not a whole number (expected an integer)%s", shown, hint);
        else if (rc != 0)
            snprintf(why, len, "%s does not fit a 64-bit integer", shown);
        else
            return 0;
        return -1;
    case V_INT:
        rc = parse_count(value, num);
        if (rc == TALLY_EINVAL)
            snprintf(why, len,
                     "'%s' is not a whole number (expected %" PRId64 "..%" PRId64 " %s)%s", shown,
                     ks->min, ks->max, ks->unit, hint);
        else if (rc != 0 || *num < ks->min || *num > ks->max)
            snprintf(why, len, "%s is out of range (expected %" PRId64 "..%" PRId64 " %s)", shown,
                     ks->min, ks->max, ks->unit);
        else
            return 0;
        return -1;
    case V_DURATION:
        config_format_duration(ks->min, a, sizeof(a));
        config_format_duration(ks->max, b, sizeof(b));
        rc = config_parse_duration(value, num);
        if (rc == TALLY_EINVAL)
            snprintf(why, len,
                     "'%s' is not a duration (expected a whole number and a unit, ms, s, m, h or "
                     "d, between %s and %s)%s",
                     shown, a, b, hint);
        else if (rc != 0 || *num < ks->min || *num > ks->max)
            snprintf(why, len, "%s is out of range (expected %s..%s)", shown, a, b);
        else
            return 0;
        return -1;
    case V_CHOICE: {
        const char *names[8];
        size_t n = 0;
        for (; ks->choices[n].name; n++) {
            names[n] = ks->choices[n].name;
            if (strcmp(names[n], value) == 0) {
                *num = ks->choices[n].value;
                return 0;
            }
        }
        choices_text(extra, sizeof(extra), ks->choices);
        snprintf(why, len, "'%s' is not one of %s%s%s", shown, extra,
                 config_suggest(a, sizeof(a), value, names, n), hint);
        return -1;
    }
    case V_ENDPOINT: {
        const char *problem = config_endpoint_problem(value, extra, sizeof(extra));
        if (problem == NULL)
            return 0;
        snprintf(why, len, "'%s' %s", shown, problem);
        return -1;
    }
    case V_PATH:
        if (vlen > 0 && vlen < ks->size && !has_control(value))
            return 0;
        snprintf(why, len,
                 "'%s' is not a usable path (expected 1..%zu bytes without control "
                 "characters)",
                 shown, ks->size - 1);
        return -1;
    case V_TIMEZONE:
        if (vlen >= ks->size)
            snprintf(extra, sizeof(extra), "is longer than %zu bytes", ks->size - 1);
        else if (config_check_timezone(value, extra, sizeof(extra)) == 0)
            return 0;
        snprintf(why, len,
                 "'%s' %s (expected a name such as Asia/Shanghai under $TZDIR or "
                 "/usr/share/zoneinfo)",
                 shown, extra);
        return -1;
    case V_TEXT:
        if (vlen >= ks->size)
            snprintf(why, len, "'%s' is %zu bytes long (expected at most %zu bytes of UTF-8)",
                     shown, vlen, ks->size - 1);
        else if (!proto_utf8_valid(value, vlen))
            snprintf(why, len, "'%s' is not valid UTF-8 (save the file as UTF-8)", shown);
        else if (has_control(value))
            snprintf(why, len, "'%s' holds a control character (expected printable text)", shown);
        else
            return 0;
        return -1;
    case V_NAME:
        rc = proto_name_check(value, vlen);
        if (rc == 0)
            return 0;
        snprintf(why, len,
                 "'%s' is not a valid name (%s; expected 1..%d bytes of UTF-8 without spaces, "
                 "'/' or control characters)",
                 shown,
                 rc == TALLY_ETOOLONG ? "too long"
                 : rc == TALLY_EUTF8  ? "not valid UTF-8"
                                      : "forbidden character",
                 PROTO_NAME_MAX);
        return -1;
    }
    snprintf(why, len, "internal error: unknown value type");
    return -1;
}

int config_key_set(int sec, size_t i, void *base, const char *value, char *why, size_t len)
{
    const keyspec_t *ks = key_at(sec, i);
    int64_t num = 0;
    assert(ks != NULL);
    if (check_value(ks, value, &num, why, len) != 0)
        return -1;
    char *field = (char *)base + ks->off;
    switch (ks->type) {
    case V_INT:
    case V_SINT:
    case V_DURATION:
    case V_CHOICE:
        /* The ranges keep num within int for the int fields. */
        if (ks->size == sizeof(int)) {
            int v = (int)num;
            memcpy(field, &v, sizeof(v));
        } else {
            memcpy(field, &num, sizeof(num));
        }
        break;
    default:
        memcpy(field, value, strlen(value) + 1);
        break;
    }
    return 0;
}
