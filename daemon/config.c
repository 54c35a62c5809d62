/* config.c - what each setting means: defaults, lookups, durations and
 * names, reload checks and the command line's overrides.
 *
 * How the file is laid out (lines, sections, duplicates, positions in
 * messages) is config_parse.c's business; each key's type, range and
 * field, and the check of one value at a time, are config_keys.c's.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "suggest.h"
#include "text.h"

static const config_window_t default_windows[] = {
    {"1h", 3600000LL},
    {"24h", 86400000LL},
    {"7d", 7 * 86400000LL},
    {"30d", 30 * 86400000LL},
};

int config_default_state_dir(const char *state_directory, char *buf, size_t len)
{
    const char *path = CONFIG_DEFAULT_STATE_DIR;
    size_t n = strlen(path);
    int rc = 0;

    /* systemd lists one directory per StateDirectory= entry, separated by
     * colons; the first is ours. */
    if (state_directory != NULL && state_directory[0] != '\0' && state_directory[0] != ':') {
        const char *colon = strchr(state_directory, ':');
        size_t first = colon ? (size_t)(colon - state_directory) : strlen(state_directory);
        if (first < len) {
            path = state_directory;
            n = first;
        } else {
            rc = TALLY_ETOOLONG;
        }
    }
    if (len == 0)
        return TALLY_ETOOLONG;
    if (n >= len) {
        buf[0] = '\0';
        return TALLY_ETOOLONG;
    }
    memcpy(buf, path, n);
    buf[n] = '\0';
    return rc;
}

int config_defaults(tallyd_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->request, sizeof(cfg->request), "%s", CONFIG_DEFAULT_REQUEST);
    snprintf(cfg->publish, sizeof(cfg->publish), "%s", CONFIG_DEFAULT_PUBLISH);
    int rc =
        config_default_state_dir(getenv("STATE_DIRECTORY"), cfg->state_dir, sizeof(cfg->state_dir));
    snprintf(cfg->timezone, sizeof(cfg->timezone), "%s", CONFIG_DEFAULT_TIMEZONE);
    cfg->publish_interval_ms = 100;
    cfg->heartbeat_ms = 1000;
    cfg->log_level = LOG_LEVEL_INFO;

    memcpy(cfg->windows, default_windows, sizeof(default_windows));
    cfg->nwindows = sizeof(default_windows) / sizeof(default_windows[0]);
    cfg->buckets = 60;

    cfg->max_samples = PROTO_SAMPLES_DEFAULT;
    cfg->max_msg_bytes = PROTO_MSG_MAX_DEFAULT;
    cfg->max_series = 1000000;
    cfg->max_clients = 100000;
    cfg->client_expiry_ms = 30 * 86400000LL;
    cfg->max_connections = CONFIG_MAX_CONNECTIONS_DEFAULT;
    cfg->max_subscriptions = 256;
    cfg->max_subscription_bytes = 16384;
    cfg->max_inbound_bytes = 8 * 1024 * 1024;
    cfg->max_reply_queue = 4096;
    cfg->max_snapshots = 16;
    cfg->snapshot_timeout_ms = 30000;
    cfg->max_townships = 100000;
    cfg->max_metrics = 10000;
    cfg->skew_ms = 5 * 60000LL;
    cfg->max_age_ms = 3660 * 86400000LL;
    cfg->rate = 0;
    cfg->burst = 10000;
    cfg->max_subscriber_queue = 10000;

    cfg->sync = CONFIG_SYNC_ALWAYS;
    cfg->sync_interval_ms = 200;
    cfg->history_days = 1100;
    cfg->backup_keep = 7;
    cfg->backup_interval_ms = 0;
    cfg->snapshot_interval_ms = 5 * 60000LL;
    cfg->snapshot_every_records = 1000000;
    return rc;
}

void config_free(tallyd_config_t *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->townships);
    free(cfg->metrics);
    free(cfg->ratios);
    cfg->townships = NULL;
    cfg->metrics = NULL;
    cfg->ratios = NULL;
    cfg->ntownships = cfg->townships_cap = 0;
    cfg->nmetrics = cfg->metrics_cap = 0;
    cfg->nratios = cfg->ratios_cap = 0;
}

/* The ids are NUL-terminated inside fixed arrays; name is a view. */
static bool id_eq(const char *id, const char *name, size_t len)
{
    return strlen(id) == len && memcmp(id, name, len) == 0;
}

const config_township_t *config_find_township(const tallyd_config_t *cfg, const char *name,
                                              size_t len)
{
    for (size_t i = 0; i < cfg->ntownships; i++)
        if (id_eq(cfg->townships[i].id, name, len))
            return &cfg->townships[i];
    return NULL;
}

const config_metric_t *config_find_metric(const tallyd_config_t *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->nmetrics; i++)
        if (id_eq(cfg->metrics[i].id, name, len))
            return &cfg->metrics[i];
    return NULL;
}

const config_ratio_t *config_find_ratio(const tallyd_config_t *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->nratios; i++)
        if (id_eq(cfg->ratios[i].id, name, len))
            return &cfg->ratios[i];
    return NULL;
}

/* An output cursor that never overruns and keeps buf NUL-terminated. */
typedef struct outbuf {
    char *buf;
    size_t len;
    size_t used;
} outbuf_t;

__attribute__((format(printf, 2, 3))) static void out_printf(outbuf_t *o, const char *fmt, ...)
{
    if (o->len == 0 || o->used >= o->len - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    o->used += (size_t)n;
    if (o->used > o->len - 1)
        o->used = o->len - 1;
}

static void windows_text(const tallyd_config_t *cfg, char *buf, size_t len)
{
    outbuf_t o = {buf, len, 0};
    char d[32];
    buf[0] = '\0';
    for (size_t i = 0; i < cfg->nwindows; i++)
        out_printf(&o, "%s%s=%s", i ? "," : "", cfg->windows[i].name,
                   config_format_duration(cfg->windows[i].ms, d, sizeof(d)));
}

static void diff_str(outbuf_t *o, int *n, const char *key, const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return;
    out_printf(o, "%s%s: '%s' -> '%s'", *n ? "; " : "", key, a, b);
    (*n)++;
}

/* The settings the saved state is bound to: the zone, and the windows and
 * buckets the engine sizes its rings from (any change in a window's name,
 * length or order; room for 11 "name=366d" items). */
static void diff_state(outbuf_t *o, int *n, const tallyd_config_t *old,
                       const tallyd_config_t *new_cfg)
{
    diff_str(o, n, "timezone", old->timezone, new_cfg->timezone);
    char a[CONFIG_WINDOWS_MAX * 32], b[CONFIG_WINDOWS_MAX * 32];
    windows_text(old, a, sizeof(a));
    windows_text(new_cfg, b, sizeof(b));
    diff_str(o, n, "windows", a, b);
    if (old->buckets != new_cfg->buckets) {
        out_printf(o, "%sbuckets: '%" PRId64 "' -> '%" PRId64 "'", *n ? "; " : "", old->buckets,
                   new_cfg->buckets);
        (*n)++;
    }
}

int config_diff_state(const tallyd_config_t *old, const tallyd_config_t *new_cfg, char *buf,
                      size_t len)
{
    outbuf_t o = {buf, len, 0};
    int n = 0;
    if (len > 0)
        buf[0] = '\0';
    diff_state(&o, &n, old, new_cfg);
    return n;
}

int config_diff_restart(const tallyd_config_t *old, const tallyd_config_t *new_cfg, char *buf,
                        size_t len)
{
    outbuf_t o = {buf, len, 0};
    int n = 0;
    if (len > 0)
        buf[0] = '\0';

    diff_str(&o, &n, "request", old->request, new_cfg->request);
    diff_str(&o, &n, "publish", old->publish, new_cfg->publish);
    diff_str(&o, &n, "state_dir", old->state_dir, new_cfg->state_dir);
    diff_state(&o, &n, old, new_cfg);
    return n;
}

int config_parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *suffix;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};

    const char *p = s;
    int64_t v = 0;
    if (*p < '0' || *p > '9')
        return TALLY_EINVAL;
    bool overflow = false;
    for (; *p >= '0' && *p <= '9'; p++) {
        int digit = *p - '0';
        if (v > (INT64_MAX - digit) / 10)
            overflow = true;
        else
            v = v * 10 + digit;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].suffix) != 0)
            continue;
        /* Checked after the unit so "99999999999999999999x" is a syntax
         * error, not a range error. */
        if (overflow || v > INT64_MAX / units[i].ms)
            return TALLY_ERANGE;
        *ms = v * units[i].ms;
        return 0;
    }
    return TALLY_EINVAL;
}

char *config_format_duration(int64_t ms, char *buf, size_t len)
{
    static const struct {
        const char *suffix;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(buf, len, "%" PRId64 "%s", ms / units[i].ms, units[i].suffix);
            return buf;
        }
    }
    snprintf(buf, len, "%" PRId64 "ms", ms);
    return buf;
}

const char *config_township_type_name(int type)
{
    switch (type) {
    case CONFIG_TOWNSHIP_UNSPECIFIED:
        return "";
    case CONFIG_TOWNSHIP_SUBDISTRICT:
        return "subdistrict";
    case CONFIG_TOWNSHIP_TOWN:
        return "town";
    case CONFIG_TOWNSHIP_TOWNSHIP:
        return "township";
    }
    return "?";
}

const char *config_sync_name(int sync)
{
    switch (sync) {
    case CONFIG_SYNC_ALWAYS:
        return "always";
    case CONFIG_SYNC_INTERVAL:
        return "interval";
    case CONFIG_SYNC_NEVER:
        return "never";
    }
    return "?";
}

const char *config_kind_name(int kind)
{
    switch (kind) {
    case PROTO_KIND_COUNTER:
        return "counter";
    case PROTO_KIND_GAUGE:
        return "gauge";
    case PROTO_KIND_RATIO:
        return "ratio";
    }
    return "?";
}

/* ---- message helpers --------------------------------------------------- */

const char *config_printable(char *buf, size_t cap, const char *s, size_t len)
{
    /* text_printable cuts once the next piece, "..." and the NUL would not
     * fit; config_printable cut once fewer than 8 bytes were left, whatever
     * the piece.  3 bytes less keeps the cut of printable ASCII where it
     * was; other text is cut no later, and at most one character or \xNN
     * escape earlier. */
    return text_printable(buf, cap - 3, s, len, TEXT_HEX_UPPER);
}

const char *config_suggest(char *buf, size_t cap, const char *word, const char *const *cands,
                           size_t ncands)
{
    const char *best = suggest_pick(word, cands, ncands);
    if (best)
        snprintf(buf, cap, "; did you mean '%s'?", best);
    else if (cap > 0)
        buf[0] = '\0';
    return buf;
}

int config_apply_overrides(tallyd_config_t *cfg, const config_overrides_t *o, char *err,
                           size_t errlen)
{
    struct {
        const char *value;
        char *dst;
        size_t len;
        const char *flag;
    } over[] = {
        {o->state_dir, cfg->state_dir, sizeof(cfg->state_dir), "--state-dir"},
        {o->request, cfg->request, sizeof(cfg->request), "--request"},
        {o->publish, cfg->publish, sizeof(cfg->publish), "--publish"},
    };
    for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++) {
        if (!over[i].value)
            continue;
        char why[512];
        const char *problem =
            i > 0 ? config_endpoint_problem(over[i].value, why, sizeof(why)) : NULL;
        if (problem != NULL) {
            snprintf(err, errlen, "%s '%s' %s", over[i].flag, over[i].value, problem);
            return TALLY_ECONFIG;
        }
        if (snprintf(over[i].dst, over[i].len, "%s", over[i].value) >= (int)over[i].len) {
            snprintf(err, errlen, "%s: '%s' is longer than %zu bytes", over[i].flag, over[i].value,
                     over[i].len - 1);
            return TALLY_ECONFIG;
        }
    }
    /* The file's own check (config_parse_checks.c) saw the endpoints
     * before the options replaced them. */
    if ((o->request || o->publish) && config_endpoints_clash(cfg->request, cfg->publish)) {
        snprintf(err, errlen, "%s '%s' is also the %s endpoint (expected two different endpoints)",
                 o->publish ? "--publish" : "--request", cfg->publish,
                 o->publish && o->request ? "--request"
                 : o->publish             ? "configured request"
                                          : "configured publish");
        return TALLY_ECONFIG;
    }
    if (o->log_level)
        cfg->log_level = o->log_level;
    return 0;
}

int config_metric_bounds(config_metric_t *m, bool min_set, bool max_set, char *why, size_t len)
{
    bool counter = m->kind == PROTO_KIND_COUNTER;
    if (!min_set)
        m->min = counter && !m->negative ? 0 : -CONFIG_SAMPLE_LIMIT;
    if (!max_set)
        m->max = CONFIG_SAMPLE_LIMIT;
    if (counter && m->min < 0 && !m->negative) {
        snprintf(why, len,
                 "min %" PRId64 " lets a counter go down, which needs negative = yes (corrections)",
                 m->min);
        return -1;
    }
    if (m->min > m->max) {
        snprintf(why, len, "min %" PRId64 " is above max %" PRId64, m->min, m->max);
        return -1;
    }
    return 0;
}
