/* reload.c - check a configuration file against the running daemon (see
 * reload.h). */
#include "reload.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"

/* The file would stop the next start (exit status 2): the caller wants to
 * know, for STATS and STATUS=. */
static void start_refuses(const reload_target_t *t)
{
    if (t->start_refuses != NULL)
        *t->start_refuses = true;
}

/* Would the catalog of cfg contradict what the engine holds?  Checked in
 * full before anything changes, so a refused reload changes nothing.
 * What the engine holds is what the next start loads, so a contradiction
 * stops that start too: the reason says what to put back. */
static int check_catalog(const reload_target_t *t, const tallyd_config_t *cfg, char *why,
                         size_t len)
{
    for (size_t i = 0; i < cfg->nmetrics; i++) {
        const config_metric_t *m = &cfg->metrics[i];
        int id = intern_find(t->metrics, m->id, strlen(m->id));
        if (id <= 0)
            continue;
        uint8_t kind = engine_metric_kind(t->engine, (uint32_t)id);
        engine_values_t v;
        if (kind == PROTO_KIND_RATIO) {
            snprintf(why, len,
                     "metric '%s' (line %d) is a ratio in the running daemon; the next start "
                     "will refuse this file too: declare it a [ratio %s] again",
                     m->id, m->line, m->id);
            start_refuses(t);
            return TALLY_ECONFIG;
        }
        if (kind != m->kind && engine_read(t->engine, (uint32_t)id, 0, &v) == 0) {
            snprintf(why, len,
                     "metric '%s' (line %d) has %s tallies; it cannot become a %s; the next "
                     "start will refuse this file too: put back kind = %s",
                     m->id, m->line, config_kind_name(kind), config_kind_name(m->kind),
                     config_kind_name(kind));
            start_refuses(t);
            return TALLY_ECONFIG;
        }
    }
    for (size_t i = 0; i < cfg->nratios; i++) {
        const config_ratio_t *r = &cfg->ratios[i];
        const config_ratio_t *old = config_find_ratio(t->current, r->id, strlen(r->id));
        if (old &&
            (strcmp(old->numerator, r->numerator) || strcmp(old->denominator, r->denominator))) {
            snprintf(why, len, "ratio '%s' (line %d) changes its inputs; that needs a restart",
                     r->id, r->line);
            return TALLY_ECONFIG;
        }
        int id = intern_find(t->metrics, r->id, strlen(r->id));
        if (!old && id > 0 && engine_metric_kind(t->engine, (uint32_t)id) != PROTO_KIND_RATIO) {
            engine_values_t v;
            if (engine_read(t->engine, (uint32_t)id, 0, &v) == 0) {
                snprintf(why, len,
                         "ratio '%s' (line %d) is a metric with tallies already; the next start "
                         "will refuse this file too: give the ratio another id",
                         r->id, r->line);
                start_refuses(t);
                return TALLY_ECONFIG;
            }
        }
    }
    catalog_target_t ct = {t->towns, t->metrics, t->engine, t->current->state_dir};
    if (catalog_check_scales(&ct, cfg, why, len) != 0) {
        size_t n = strlen(why);
        snprintf(why + n, len - n, "; the next start will refuse this file too");
        start_refuses(t);
        return TALLY_ECONFIG;
    }
    uint64_t towns = cfg->ntownships + intern_count(t->towns);
    uint64_t metrics = cfg->nmetrics + 2 * cfg->nratios + intern_count(t->metrics);
    if (towns > t->towns->capacity || metrics > t->metrics->capacity) {
        snprintf(why, len, "the catalog would outgrow the name tables sized at start-up; restart");
        return TALLY_ECONFIG;
    }
    return 0;
}

/* The [security] part of a reload, checked before anything changes: the
 * key directories are read again into *next (a key file that does not
 * load refuses the whole reload); turning CURVE on or off and changing the
 * server's own key need a restart, so those keep their values.  Returns 0
 * or TALLY_ECONFIG with the reason in why. */
static int prepare_keys(const reload_target_t *t, tallyd_config_t *cfg, keyring_t *next, char *why,
                        size_t len)
{
    keyring_init(next);
    if (keys_check_config(cfg, why, len) != 0) {
        start_refuses(t); /* a start checks the section alike */
        return TALLY_ECONFIG;
    }
    bool secured = cfg->server_secret_key[0] != '\0';
    if (secured != t->secured) {
        log_warning(t->log,
                    "reload: turning CURVE security %s needs a restart; [security] keeps its "
                    "values until then",
                    secured ? "on" : "off");
        memcpy(cfg->server_secret_key, t->current->server_secret_key,
               sizeof(cfg->server_secret_key));
        memcpy(cfg->township_keys, t->current->township_keys, sizeof(cfg->township_keys));
        memcpy(cfg->subscriber_keys, t->current->subscriber_keys, sizeof(cfg->subscriber_keys));
        memcpy(cfg->admin_keys, t->current->admin_keys, sizeof(cfg->admin_keys));
    } else if (secured && strcmp(cfg->server_secret_key, t->current->server_secret_key) != 0) {
        log_warning(t->log,
                    "reload: server_secret_key needs a restart and keeps its value '%s' until "
                    "then",
                    t->current->server_secret_key);
        memcpy(cfg->server_secret_key, t->current->server_secret_key,
               sizeof(cfg->server_secret_key));
    }
    if (!t->secured)
        return 0;
    static const char prefix[] = "[security] cannot load the client keys: ";
    size_t off = (size_t)snprintf(why, len, "%s", prefix);
    if (keyring_load(next, cfg->township_keys, cfg->subscriber_keys, cfg->admin_keys, why + off,
                     off < len ? len - off : 0) != 0) {
        start_refuses(t); /* a start reads the same directories */
        return TALLY_ECONFIG;
    }
    return 0;
}

__attribute__((format(printf, 3, 4))) static void append(char *buf, size_t len, const char *fmt,
                                                         ...)
{
    size_t n = strlen(buf);
    if (n + 1 >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, len - n, fmt, ap);
    va_end(ap);
}

/* "put back buckets = 60, [windows] 1h = 1h, 24h = 24h" for the settings
 * the state is bound to that differ between cur and cfg. */
static void put_back(const tallyd_config_t *cur, const tallyd_config_t *cfg, char *buf, size_t len)
{
    snprintf(buf, len, "put back");
    const char *sep = " ";
    if (strcmp(cur->timezone, cfg->timezone) != 0) {
        append(buf, len, "%stimezone = %s", sep, cur->timezone);
        sep = ", ";
    }
    if (cur->buckets != cfg->buckets) {
        append(buf, len, "%sbuckets = %" PRId64, sep, cur->buckets);
        sep = ", ";
    }
    bool same = cur->nwindows == cfg->nwindows;
    for (size_t w = 0; same && w < cur->nwindows; w++)
        same = strcmp(cur->windows[w].name, cfg->windows[w].name) == 0 &&
               cur->windows[w].ms == cfg->windows[w].ms;
    if (same)
        return;
    append(buf, len, "%s[windows]", sep);
    for (size_t w = 0; w < cur->nwindows; w++) {
        char d[32];
        append(buf, len, "%s%s = %s", w ? ", " : " ", cur->windows[w].name,
               config_format_duration(cur->windows[w].ms, d, sizeof(d)));
    }
}

/* The bytes of zone tz's TZif file (both names were checked by
 * config_load()) into buf; their length, or -1. */
static ssize_t zone_rules(const char *tz, char *buf, size_t cap)
{
    const char *dir = getenv("TZDIR");
    char path[CONFIG_PATH_MAX + CONFIG_TZ_MAX + 2];
    snprintf(path, sizeof(path), "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", tz);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap);
    close(fd);
    return n >= 0 && (size_t)n < cap ? n : -1;
}

/* Do zones a and b keep the same rules (another name of one zone, as
 * Asia/Chongqing is of Asia/Shanghai)?  Then a start places every saved
 * day alike, and takes the state. */
static bool same_zone(const char *a, const char *b)
{
    enum { RULES_MAX = 1 << 16 }; /* TZif files are a few KiB */
    char *ra = malloc(RULES_MAX), *rb = malloc(RULES_MAX);
    ssize_t na = ra ? zone_rules(a, ra, RULES_MAX) : -1;
    ssize_t nb = rb ? zone_rules(b, rb, RULES_MAX) : -1;
    bool same = na > 0 && na == nb && memcmp(ra, rb, (size_t)na) == 0;
    free(ra);
    free(rb);
    return same;
}

/* Keep what only a restart can change; say which differ.  The state this
 * daemon saves is bound to its windows, buckets and time zone: a start
 * under others refuses it (exit status 2, and systemd does not restart
 * it), which is said apart from what merely waits for a restart. */
static void keep_restart_settings(const reload_target_t *t, tallyd_config_t *cfg)
{
    const tallyd_config_t *cur = t->current;
    char diff[1024], zone[sizeof(cfg->timezone)];
    /* Another name of the running zone only waits for a restart. */
    bool alias =
        strcmp(cur->timezone, cfg->timezone) != 0 && same_zone(cur->timezone, cfg->timezone);
    memcpy(zone, cfg->timezone, sizeof(zone));
    if (alias)
        memcpy(cfg->timezone, cur->timezone, sizeof(cfg->timezone));
    if (config_diff_state(cur, cfg, diff, sizeof(diff)) > 0) {
        char back[CONFIG_WINDOWS_MAX * 48 + CONFIG_TZ_MAX + 64];
        put_back(cur, cfg, back, sizeof(back));
        log_error(t->log,
                  "reload: the next start will refuse this: %s (the state in %s is kept in the "
                  "running windows and calendar days; a start cannot place its tallies in "
                  "others); %s in %s before tallyd restarts (tallyd(8), CHANGING THE WINDOWS); "
                  "meanwhile the running values stay",
                  diff, cur->state_dir, back, t->overrides->config_path);
        start_refuses(t);
    }
    memcpy(cfg->timezone, alias ? zone : cur->timezone, sizeof(cfg->timezone));
    memcpy(cfg->windows, cur->windows, sizeof(cfg->windows));
    cfg->nwindows = cur->nwindows;
    cfg->buckets = cur->buckets;
    if (config_diff_restart(cur, cfg, diff, sizeof(diff)) > 0)
        log_warning(t->log, "reload: these settings need a restart and keep their values: %s",
                    diff);
    memcpy(cfg->timezone, cur->timezone, sizeof(cfg->timezone));
    memcpy(cfg->request, cur->request, sizeof(cfg->request));
    memcpy(cfg->publish, cur->publish, sizeof(cfg->publish));
    memcpy(cfg->state_dir, cur->state_dir, sizeof(cfg->state_dir));
    if (cfg->sync != t->current->sync || cfg->sync_interval_ms != t->current->sync_interval_ms)
        log_warning(t->log, "reload: [journal] sync and sync_interval need a restart and keep "
                            "their values");
    cfg->sync = t->current->sync;
    cfg->sync_interval_ms = t->current->sync_interval_ms;
    /* The sockets' queues are set once (endpoints_set_limits() says why);
     * what reads them (the answers' bound, half of max_reply_queue) keeps
     * the same values. */
    if (cfg->max_inbound_bytes != cur->max_inbound_bytes ||
        cfg->max_reply_queue != cur->max_reply_queue ||
        cfg->max_subscriber_queue != cur->max_subscriber_queue)
        log_warning(t->log, "reload: max_inbound_bytes, max_reply_queue and max_subscriber_queue "
                            "need a restart and keep their values");
    cfg->max_inbound_bytes = cur->max_inbound_bytes;
    cfg->max_reply_queue = cur->max_reply_queue;
    cfg->max_subscriber_queue = cur->max_subscriber_queue;
    /* ZeroMQ gives a connection the frame limit its socket had when bound:
     * endpoints_set_limits() binds the request socket again. */
    if (cfg->max_msg_bytes != cur->max_msg_bytes)
        log_notice(t->log, "reload: max_msg_bytes changed: the request socket is bound again; "
                           "connected clients reconnect and resend what they have no answer "
                           "for");
}

static void warn_key(void *ctx, const char *text)
{
    log_warning(ctx, "reload: %s", text);
}

int reload_prepare(const reload_target_t *t, tallyd_config_t *next, keyring_t *next_keys)
{
    keyring_init(next_keys);
    config_defaults(next);
    const char *path = t->overrides->config_path;
    if (path == NULL || path[0] == '\0') {
        log_notice(t->log, "reload: running on built-in defaults (no --config); nothing to read");
        return TALLY_ENOTFOUND;
    }
    char err[1024];
    if (config_load(path, next, err, sizeof(err)) != 0 ||
        config_apply_overrides(next, t->overrides, err, sizeof(err)) != 0) {
        log_error(t->log,
                  "reload refused, the current configuration stays in force: %s; the next start "
                  "will refuse this file too",
                  err);
        start_refuses(t);
        config_free(next);
        return TALLY_ECONFIG;
    }
    int rc = check_catalog(t, next, err, sizeof(err));
    if (rc == 0)
        rc = prepare_keys(t, next, next_keys, err, sizeof(err));
    if (rc != 0) {
        log_error(t->log, "reload refused, the current configuration stays in force: %s: %s", path,
                  err);
        keyring_free(next_keys);
        config_free(next);
        return rc;
    }
    keep_restart_settings(t, next);
    /* The name tables were sized at start-up. */
    if (next->max_townships >= t->towns->capacity)
        next->max_townships = t->towns->capacity - 1;
    if (t->secured)
        keys_check_townships(next_keys, next, warn_key, t->log);
    return 0;
}

int reload_apply_catalog(const reload_target_t *t, const tallyd_config_t *next)
{
    catalog_target_t ct = {t->towns, t->metrics, t->engine, t->current->state_dir};
    char err[512];
    int rc = catalog_declare(&ct, next, err, sizeof(err));
    if (rc != 0)
        log_error(t->log, "reload: the catalog was applied only in part (%s); restart tallyd", err);
    else if (err[0])
        log_warning(t->log, "reload: %s", err);
    return rc;
}

size_t reload_report_keys(const reload_target_t *t, const keyring_t *next)
{
    if (!t->secured)
        return 0;
    const keyring_identity_t *first_town = NULL, *first_sub = NULL, *first_admin = NULL;
    size_t towns = keyring_revoked(t->keys, next, KEYS_ROLE_TOWNSHIP, &first_town);
    size_t subs = keyring_revoked(t->keys, next, KEYS_ROLE_SUBSCRIBER, &first_sub);
    size_t admins = keyring_revoked(t->keys, next, KEYS_ROLE_ADMIN, &first_admin);
    if (towns > 0)
        log_notice(t->log,
                   "reload: %zu township key(s) revoked (the first: '%s' from %s); their "
                   "connections are refused from their next message on",
                   towns, first_town->name, first_town->path);
    if (admins > 0)
        log_notice(t->log,
                   "reload: %zu admin key(s) revoked (the first: '%s' from %s); their "
                   "connections are refused from their next message on",
                   admins, first_admin->name, first_admin->path);
    if (subs > 0)
        log_notice(t->log,
                   "reload: %zu subscriber key(s) revoked (the first: '%s' from %s); closing "
                   "every subscriber connection, the others reconnect",
                   subs, first_sub->name, first_sub->path);
    log_notice(t->log,
               "reload: keys in force: %zu township keys, %zu subscriber keys, %zu admin keys",
               next->ntownships, next->nsubscribers, next->nadmins);
    return subs;
}
