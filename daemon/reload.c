/* reload.c - apply a new configuration to a running daemon. */
#include "reload.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tallyd.h"

/* Would the catalog of cfg contradict what the engine holds?  Checked in
 * full before anything changes, so a refused reload changes nothing. */
static int check_catalog(tallyd_t *d, const tallyd_config_t *cfg, char *why, size_t len)
{
    for (size_t i = 0; i < cfg->nmetrics; i++) {
        const config_metric_t *m = &cfg->metrics[i];
        int id = intern_find(&d->metrics, m->id, strlen(m->id));
        if (id <= 0)
            continue;
        uint8_t kind = engine_metric_kind(&d->engine, (uint32_t)id);
        engine_values_t v;
        if (kind == PROTO_KIND_RATIO) {
            snprintf(why, len, "metric '%s' (line %d) is a ratio in the running daemon", m->id,
                     m->line);
            return TALLY_ECONFIG;
        }
        if (kind != m->kind && engine_read(&d->engine, (uint32_t)id, 0, &v) == 0) {
            snprintf(why, len, "metric '%s' (line %d) has %s tallies; it cannot become a %s", m->id,
                     m->line, config_kind_name(kind), config_kind_name(m->kind));
            return TALLY_ECONFIG;
        }
    }
    for (size_t i = 0; i < cfg->nratios; i++) {
        const config_ratio_t *r = &cfg->ratios[i];
        const config_ratio_t *old = config_find_ratio(&d->cfg, r->id, strlen(r->id));
        if (old &&
            (strcmp(old->numerator, r->numerator) || strcmp(old->denominator, r->denominator))) {
            snprintf(why, len, "ratio '%s' (line %d) changes its inputs; that needs a restart",
                     r->id, r->line);
            return TALLY_ECONFIG;
        }
        int id = intern_find(&d->metrics, r->id, strlen(r->id));
        if (!old && id > 0 && engine_metric_kind(&d->engine, (uint32_t)id) != PROTO_KIND_RATIO) {
            engine_values_t v;
            if (engine_read(&d->engine, (uint32_t)id, 0, &v) == 0) {
                snprintf(why, len, "ratio '%s' (line %d) is a metric with tallies already", r->id,
                         r->line);
                return TALLY_ECONFIG;
            }
        }
    }
    uint64_t towns = cfg->ntownships + intern_count(&d->towns);
    uint64_t metrics = cfg->nmetrics + 2 * cfg->nratios + intern_count(&d->metrics);
    if (towns > d->towns.capacity || metrics > d->metrics.capacity) {
        snprintf(why, len, "the catalog would outgrow the name tables sized at start-up; restart");
        return TALLY_ECONFIG;
    }
    return 0;
}

static int apply_catalog(tallyd_t *d, const tallyd_config_t *cfg)
{
    for (size_t i = 0; i < cfg->ntownships; i++)
        if (intern_add(&d->towns, cfg->townships[i].id, strlen(cfg->townships[i].id)) < 0)
            return TALLY_ECONFIG;
    for (size_t i = 0; i < cfg->nmetrics; i++) {
        int id = intern_add(&d->metrics, cfg->metrics[i].id, strlen(cfg->metrics[i].id));
        if (id < 0 ||
            engine_define_metric(&d->engine, (uint32_t)id, (uint8_t)cfg->metrics[i].kind) != 0)
            return TALLY_ECONFIG;
    }
    for (size_t i = 0; i < cfg->nratios; i++) {
        const config_ratio_t *r = &cfg->ratios[i];
        if (config_find_ratio(&d->cfg, r->id, strlen(r->id)))
            continue; /* unchanged, checked above */
        int id = intern_add(&d->metrics, r->id, strlen(r->id));
        int n = intern_add(&d->metrics, r->numerator, strlen(r->numerator));
        int q = intern_add(&d->metrics, r->denominator, strlen(r->denominator));
        if (id < 0 || n < 0 || q < 0)
            return TALLY_ECONFIG;
        int rc = engine_define_ratio(&d->engine, (uint32_t)id, (uint32_t)n, (uint32_t)q);
        if (rc != 0 && rc != TALLY_EEXIST)
            return rc;
    }
    return 0;
}

/* Keep what only a restart can change; say which differ. */
static void keep_restart_settings(tallyd_t *d, tallyd_config_t *cfg)
{
    char diff[1024];
    if (config_diff_restart(&d->cfg, cfg, diff, sizeof(diff)) > 0)
        log_warning(&d->log, "reload: these settings need a restart and keep their values: %s",
                    diff);
    memcpy(cfg->request, d->cfg.request, sizeof(cfg->request));
    memcpy(cfg->publish, d->cfg.publish, sizeof(cfg->publish));
    memcpy(cfg->state_dir, d->cfg.state_dir, sizeof(cfg->state_dir));
    memcpy(cfg->timezone, d->cfg.timezone, sizeof(cfg->timezone));
    memcpy(cfg->windows, d->cfg.windows, sizeof(cfg->windows));
    cfg->nwindows = d->cfg.nwindows;
    cfg->buckets = d->cfg.buckets;
    if (cfg->sync != d->cfg.sync || cfg->sync_interval_ms != d->cfg.sync_interval_ms)
        log_warning(&d->log, "reload: [journal] sync and sync_interval need a restart and keep "
                             "their values");
    cfg->sync = d->cfg.sync;
    cfg->sync_interval_ms = d->cfg.sync_interval_ms;
    if (cfg->max_msg_bytes != d->cfg.max_msg_bytes) {
        int64_t v = cfg->max_msg_bytes;
        zmq_setsockopt(d->router_sock, ZMQ_MAXMSGSIZE, &v, sizeof(v));
    }
    if (cfg->max_subscriber_queue != d->cfg.max_subscriber_queue)
        log_warning(&d->log, "reload: max_subscriber_queue applies to subscribers that connect "
                             "from now on");
    int hwm = (int)cfg->max_subscriber_queue;
    zmq_setsockopt(d->pub_sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zsock_kick(&d->router);
    zsock_kick(&d->pub);
}

int reload_config(tallyd_t *d)
{
    if (d->config_path[0] == '\0') {
        log_notice(&d->log, "reload: running on built-in defaults (no --config); nothing to read");
        return 0;
    }
    tallyd_config_t cfg;
    char err[1024];
    if (config_load(d->config_path, &cfg, err, sizeof(err)) != 0) {
        log_error(&d->log, "reload refused, the current configuration stays in force: %s", err);
        return TALLY_ECONFIG;
    }
    if (tallyd_apply_options(d, &cfg) != 0) {
        config_free(&cfg);
        return TALLY_ECONFIG;
    }
    int rc = check_catalog(d, &cfg, err, sizeof(err));
    if (rc != 0) {
        log_error(&d->log, "reload refused, the current configuration stays in force: %s: %s",
                  d->config_path, err);
        config_free(&cfg);
        return rc;
    }
    keep_restart_settings(d, &cfg);
    rc = apply_catalog(d, &cfg);
    if (rc != 0)
        log_error(&d->log, "reload: the catalog was applied only in part (%s); restart tallyd",
                  tally_strerror(rc));
    d->dedup.max = (uint32_t)cfg.max_clients;
    d->engine.max_series = (uint32_t)cfg.max_series;
    if (cfg.max_townships >= d->towns.capacity)
        cfg.max_townships = d->towns.capacity - 1;
    bool timers = cfg.publish_interval_ms != d->cfg.publish_interval_ms ||
                  cfg.heartbeat_ms != d->cfg.heartbeat_ms;
    config_free(&d->cfg);
    d->cfg = cfg;
    d->log.level = cfg.log_level;
    if (timers)
        publish_retime(d);
    log_notice(&d->log,
               "reloaded %s: %zu townships, %zu metrics, %zu ratios declared; tallies kept",
               d->config_path, cfg.ntownships, cfg.nmetrics, cfg.nratios);
    return 0;
}
