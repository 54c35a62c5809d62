/* reload.c - check a configuration file against the running daemon (see
 * reload.h). */
#include "reload.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"

/* Would the catalog of cfg contradict what the engine holds?  Checked in
 * full before anything changes, so a refused reload changes nothing. */
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
            snprintf(why, len, "metric '%s' (line %d) is a ratio in the running daemon", m->id,
                     m->line);
            return TALLY_ECONFIG;
        }
        if (kind != m->kind && engine_read(t->engine, (uint32_t)id, 0, &v) == 0) {
            snprintf(why, len, "metric '%s' (line %d) has %s tallies; it cannot become a %s", m->id,
                     m->line, config_kind_name(kind), config_kind_name(m->kind));
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
                snprintf(why, len, "ratio '%s' (line %d) is a metric with tallies already", r->id,
                         r->line);
                return TALLY_ECONFIG;
            }
        }
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
    if (keys_check_config(cfg, why, len) != 0)
        return TALLY_ECONFIG;
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
        return TALLY_ECONFIG;
    }
    return 0;
}

/* Keep what only a restart can change; say which differ. */
static void keep_restart_settings(const reload_target_t *t, tallyd_config_t *cfg)
{
    char diff[1024];
    if (config_diff_restart(t->current, cfg, diff, sizeof(diff)) > 0)
        log_warning(t->log, "reload: these settings need a restart and keep their values: %s",
                    diff);
    memcpy(cfg->request, t->current->request, sizeof(cfg->request));
    memcpy(cfg->publish, t->current->publish, sizeof(cfg->publish));
    memcpy(cfg->state_dir, t->current->state_dir, sizeof(cfg->state_dir));
    memcpy(cfg->timezone, t->current->timezone, sizeof(cfg->timezone));
    memcpy(cfg->windows, t->current->windows, sizeof(cfg->windows));
    cfg->nwindows = t->current->nwindows;
    cfg->buckets = t->current->buckets;
    if (cfg->sync != t->current->sync || cfg->sync_interval_ms != t->current->sync_interval_ms)
        log_warning(t->log, "reload: [journal] sync and sync_interval need a restart and keep "
                            "their values");
    cfg->sync = t->current->sync;
    cfg->sync_interval_ms = t->current->sync_interval_ms;
    if (cfg->max_subscriber_queue != t->current->max_subscriber_queue)
        log_warning(t->log, "reload: max_subscriber_queue applies to subscribers that connect "
                            "from now on");
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
        log_error(t->log, "reload refused, the current configuration stays in force: %s", err);
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
