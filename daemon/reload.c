/* reload.c - apply a new configuration to a running daemon. */
#include "reload.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tallyd.h"

/* How long rebind_publish() waits for ZeroMQ to let go of the endpoint. */
#define REBIND_WAIT_MS 2000
#define REBIND_STEP_MS 10

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

/* The [security] part of a reload, checked before anything changes: the
 * key directories are read again into *next (a key file that does not
 * load refuses the whole reload); turning CURVE on or off and changing the
 * server's own key need a restart, so those keep their values.  Returns 0
 * or TALLY_ECONFIG with the reason in why. */
static int prepare_keys(tallyd_t *d, tallyd_config_t *cfg, keyring_t *next, char *why, size_t len)
{
    keyring_init(next);
    if (tallyd_check_security(cfg, why, len) != 0)
        return TALLY_ECONFIG;
    bool secured = cfg->server_secret_key[0] != '\0';
    if (secured != d->secured) {
        log_warning(&d->log,
                    "reload: turning CURVE security %s needs a restart; [security] keeps its "
                    "values until then",
                    secured ? "on" : "off");
        memcpy(cfg->server_secret_key, d->cfg.server_secret_key, sizeof(cfg->server_secret_key));
        memcpy(cfg->township_keys, d->cfg.township_keys, sizeof(cfg->township_keys));
        memcpy(cfg->subscriber_keys, d->cfg.subscriber_keys, sizeof(cfg->subscriber_keys));
    } else if (secured && strcmp(cfg->server_secret_key, d->cfg.server_secret_key) != 0) {
        log_warning(&d->log,
                    "reload: server_secret_key needs a restart and keeps its value '%s' until "
                    "then",
                    d->cfg.server_secret_key);
        memcpy(cfg->server_secret_key, d->cfg.server_secret_key, sizeof(cfg->server_secret_key));
    }
    if (!d->secured)
        return 0;
    static const char prefix[] = "[security] cannot load the client keys: ";
    size_t off = (size_t)snprintf(why, len, "%s", prefix);
    if (keyring_load(next, cfg->township_keys, cfg->subscriber_keys, why + off,
                     off < len ? len - off : 0) != 0) {
        return TALLY_ECONFIG;
    }
    return 0;
}

/* Wait until the socket monitor mon reports that the old listener is
 * closed (ZMQ_EVENT_CLOSED, or CLOSE_FAILED), at most REBIND_WAIT_MS. */
static bool listener_closed(void *mon)
{
    int64_t deadline = clock_mono_ms() + REBIND_WAIT_MS;
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0)
            return false;
        zmq_pollitem_t it = {mon, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, (long)left);
        if (rc < 0 && zmq_errno() == EINTR)
            continue;
        if (rc <= 0)
            return false;
        /* An event is two frames: event and value, then the endpoint. */
        bool more = true;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, mon, 0) < 0) {
                zmq_msg_close(&m);
                return false;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        return true;
    }
}

/* Unbinding a listening endpoint closes every connection accepted through
 * it; bind it again at once.  Subscribers reconnect by themselves, and
 * each new handshake goes through ZAP with the keyring now in force, so
 * only the revoked keys stay out.  Those kept lose the updates sent while
 * they reconnect, see the gap in the sequence and take a new snapshot.
 * ZeroMQ closes the old listener on its I/O thread: binding before that
 * meets EADDRINUSE (tcp), or has the old ipc listener remove the new
 * socket file (libzmq before 4.3, and wildcard ipc paths), so a socket
 * monitor tells when it is gone.  The loop waits for it: milliseconds,
 * once per reload that revokes a subscriber. */
static void rebind_publish(tallyd_t *d)
{
    const char *ep = d->pub_endpoint; /* as bound: a wildcard port stays the same */
    const char *mon_ep = "inproc://tallyd-publish-monitor";
    void *mon = NULL;
    if (zmq_socket_monitor(d->pub_sock, mon_ep, ZMQ_EVENT_CLOSED | ZMQ_EVENT_CLOSE_FAILED) == 0) {
        mon = zmq_socket(d->zctx, ZMQ_PAIR);
        if (mon != NULL && zmq_connect(mon, mon_ep) != 0) {
            zmq_close(mon);
            mon = NULL;
        }
    }
    int err = 0;
    if (zmq_unbind(d->pub_sock, ep) != 0) {
        log_error(&d->log,
                  "reload: cannot unbind %s to cut revoked subscribers off: %s; restart tallyd "
                  "to cut them off",
                  ep, zmq_strerror(zmq_errno()));
    } else {
        if (mon == NULL || !listener_closed(mon))
            log_warning(&d->log, "reload: cannot tell when %s is closed; binding it again anyway",
                        ep);
        int64_t deadline = clock_mono_ms() + REBIND_WAIT_MS;
        while (zmq_bind(d->pub_sock, ep) != 0) {
            err = zmq_errno();
            if (err != EADDRINUSE || clock_mono_ms() >= deadline)
                break;
            uv_sleep(REBIND_STEP_MS);
            err = 0;
        }
        if (err != 0)
            log_error(&d->log,
                      "reload: cannot bind %s again after cutting revoked subscribers off: %s; no "
                      "subscriber can connect until tallyd restarts",
                      ep, zmq_strerror(err));
    }
    zmq_socket_monitor(d->pub_sock, NULL, 0);
    if (mon != NULL)
        zmq_close(mon);
    zsock_kick(&d->pub);
}

/* Put the keyring read by prepare_keys() in force and cut off what it no
 * longer admits.  Townships are checked on every message they send, so
 * only the publish socket's connections have to be closed. */
static void apply_keys(tallyd_t *d, keyring_t *next)
{
    if (!d->secured)
        return;
    const keyring_identity_t *first_town = NULL, *first_sub = NULL;
    size_t towns = keyring_revoked(&d->keys, next, KEYS_ROLE_TOWNSHIP, &first_town);
    size_t subs = keyring_revoked(&d->keys, next, KEYS_ROLE_SUBSCRIBER, &first_sub);
    if (towns > 0)
        log_notice(&d->log,
                   "reload: %zu township key(s) revoked (the first: '%s' from %s); their "
                   "connections are refused from their next message on",
                   towns, first_town->name, first_town->path);
    if (subs > 0)
        log_notice(&d->log,
                   "reload: %zu subscriber key(s) revoked (the first: '%s' from %s); closing "
                   "every subscriber connection, the others reconnect",
                   subs, first_sub->name, first_sub->path);
    keyring_free(&d->keys);
    d->keys = *next; /* a struct copy moves a keyring (keys.h) */
    keyring_init(next);
    zap_set_keyring(&d->zap, &d->keys);
    log_notice(&d->log, "reload: keys in force: %zu township keys, %zu subscriber keys",
               d->keys.ntownships, d->keys.nsubscribers);
    if (subs > 0)
        rebind_publish(d);
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
        int64_t v = tallyd_frame_limit(cfg);
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
    keyring_t next;
    keyring_init(&next);
    int rc = check_catalog(d, &cfg, err, sizeof(err));
    if (rc == 0)
        rc = prepare_keys(d, &cfg, &next, err, sizeof(err));
    if (rc != 0) {
        log_error(&d->log, "reload refused, the current configuration stays in force: %s: %s",
                  d->config_path, err);
        keyring_free(&next);
        config_free(&cfg);
        return rc;
    }
    keep_restart_settings(d, &cfg);
    rc = apply_catalog(d, &cfg);
    if (rc != 0)
        log_error(&d->log, "reload: the catalog was applied only in part (%s); restart tallyd",
                  tally_strerror(rc));
    apply_keys(d, &next);
    /* The range was checked by config.c; ratelimit_set() refuses only
     * values outside it. */
    if (ratelimit_set(&d->rl, cfg.rate, cfg.burst, d->towns.capacity) != 0)
        log_error(&d->log, "reload: rate %" PRId64 " / burst %" PRId64 " refused; the old stay",
                  cfg.rate, cfg.burst);
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
