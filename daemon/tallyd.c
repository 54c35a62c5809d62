/* tallyd.c - the daemon's life cycle: configuration, catalog, sockets,
 * timers and signals around one libuv loop. */
#include "tallyd.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zmq.h>

#include "recover.h"
#include "reload.h"
#include "request.h"

/* Ratios the county always wants, used when no config file is given (the
 * built-in defaults).  From the township reports: 矛盾纠纷化解率,
 * 参考合格率, 群众说事化解率. */
static const struct {
    const char *id, *num, *den;
} builtin_ratios[] = {
    {"disputes.resolution_rate", "disputes.resolved", "disputes.screened"},
    {"law_exam.pass_rate", "law_exam.passed", "law_exam.takers"},
    {"talks.resolution_rate", "talks.disputes_resolved", "talks.disputes_handled"},
};

void tallyd_reply(tallyd_t *d, const void *rid, size_t rid_len, const msgpack_sbuffer *body)
{
    const void *bufs[2] = {rid, body->data};
    size_t lens[2] = {rid_len, body->size};
    int rc = zsock_send_buf(&d->router, bufs, lens, 2);
    if (rc != 0) {
        /* The peer left, or is not reading its replies: it will resend
         * what it has no ACK for, and de-duplication keeps that exact. */
        d->stats.unroutable_replies++;
        log_limited(&d->log, clock_mono_ms(), LOG_LEVEL_INFO, "reply dropped: %s",
                    tally_strerror(rc));
    }
}

static int setup_engine(tallyd_t *d)
{
    engine_config_t ec;
    engine_config_default(&ec);
    ec.nwindows = (uint32_t)d->cfg.nwindows;
    for (size_t i = 0; i < d->cfg.nwindows; i++) {
        ec.windows[i].name = d->cfg.windows[i].name;
        ec.windows[i].ms = d->cfg.windows[i].ms;
    }
    ec.buckets = (uint32_t)d->cfg.buckets;
    ec.zone = d->cfg.timezone;
    ec.max_series = (uint32_t)d->cfg.max_series;
    char msg[256];
    if (engine_config_check(&ec, msg, sizeof(msg)) != 0) {
        log_error(&d->log, "invalid tally settings: %s", msg);
        return TALLY_ECONFIG;
    }
    int rc = engine_init(&d->engine, &ec, d->clock);
    if (rc != 0)
        log_error(&d->log, "cannot set up the tally engine: %s", tally_strerror(rc));
    return rc;
}

static int intern_or_log(tallyd_t *d, intern_t *in, const char *name)
{
    int id = intern_add(in, name, strlen(name));
    if (id < 0)
        log_error(&d->log, "cannot add '%s' to the catalog: %s", name, tally_strerror(id));
    return id;
}

static int define_ratio(tallyd_t *d, const char *id, const char *num, const char *den)
{
    int r = intern_or_log(d, &d->metrics, id);
    int n = intern_or_log(d, &d->metrics, num);
    int q = intern_or_log(d, &d->metrics, den);
    if (r < 0 || n < 0 || q < 0)
        return TALLY_ECONFIG;
    if (engine_metric_kind(&d->engine, (uint32_t)r) == PROTO_KIND_RATIO)
        return 0; /* restored from the checkpoint */
    int rc = engine_define_ratio(&d->engine, (uint32_t)r, (uint32_t)n, (uint32_t)q);
    if (rc != 0)
        log_error(&d->log, "cannot define ratio '%s' = %s / %s: %s", id, num, den,
                  tally_strerror(rc));
    return rc;
}

/* The name and de-duplication tables, empty: a checkpoint loads into
 * them before the catalog is declared. */
static int setup_tables(tallyd_t *d)
{
    const tallyd_config_t *c = &d->cfg;
    int rc = intern_init(&d->towns, (uint32_t)c->max_townships + 1);
    if (rc == 0)
        rc = intern_init(&d->metrics,
                         (uint32_t)(c->max_metrics + (int64_t)c->nratios +
                                    (int64_t)(sizeof(builtin_ratios) / sizeof(builtin_ratios[0]))) +
                             1);
    if (rc == 0)
        rc = dedup_init(&d->dedup, (uint32_t)c->max_clients);
    /* One bucket per township id; id 0 (the county) is never charged. */
    if (rc == 0)
        rc = ratelimit_init(&d->rl, c->rate, c->burst, d->towns.capacity);
    if (rc != 0)
        log_error(&d->log, "cannot allocate the name tables: %s", tally_strerror(rc));
    return rc;
}

int tallyd_check_security(const tallyd_config_t *cfg, char *err, size_t len)
{
    bool secret = cfg->server_secret_key[0] != '\0';
    bool dirs = cfg->township_keys[0] != '\0' || cfg->subscriber_keys[0] != '\0';
    if (secret && !dirs) {
        snprintf(err, len,
                 "[security] server_secret_key is set but neither township_keys nor "
                 "subscriber_keys: no client could connect");
        return TALLY_ECONFIG;
    }
    if (!secret && dirs) {
        snprintf(err, len,
                 "[security] %s is set but server_secret_key is not: client keys are enforced "
                 "only when tallyd has its own key pair (tally keygen)",
                 cfg->township_keys[0] != '\0' ? "township_keys" : "subscriber_keys");
        return TALLY_ECONFIG;
    }
    return 0;
}

int tallyd_load_keys(const tallyd_config_t *cfg, uint8_t pub[KEYS_KEY_BYTES],
                     uint8_t sec[KEYS_KEY_BYTES], keyring_t *kr, char *err, size_t len)
{
    if (tallyd_check_security(cfg, err, len) != 0)
        return TALLY_ECONFIG;
    if (cfg->server_secret_key[0] == '\0')
        return 0;
    char why[1024];
    if (keys_load_server_secret(cfg->server_secret_key, pub, sec, why, sizeof(why)) != 0) {
        snprintf(err, len, "[security] server_secret_key: %s", why);
        return TALLY_ECONFIG;
    }
    if (keyring_load(kr, cfg->township_keys, cfg->subscriber_keys, why, sizeof(why)) != 0) {
        snprintf(err, len, "[security] cannot load the client keys: %s", why);
        return TALLY_ECONFIG;
    }
    return 1;
}

/* Read the server's secret key and the client keys before the state is
 * recovered, so that a key problem stops the start with status 2 and a
 * line naming the file, not after a long journal replay. */
static int setup_security(tallyd_t *d)
{
    const tallyd_config_t *c = &d->cfg;
    char err[1200];
    int rc = tallyd_load_keys(c, d->server_public, d->server_secret, &d->keys, err, sizeof(err));
    if (rc < 0) {
        log_error(&d->log, "%s", err);
        return TALLY_ECONFIG;
    }
    if (rc == 0)
        return 0;
    d->secured = true;
    char pub[KEYS_Z85_LEN + 1];
    keys_z85_encode(d->server_public, pub);
    log_notice(&d->log,
               "secured with CURVE: %zu township keys, %zu subscriber keys; server public key %s",
               d->keys.ntownships, d->keys.nsubscribers, pub);
    if (d->keys.ntownships == 0)
        log_warning(&d->log, "[security] no township key in '%s': nobody can submit figures",
                    c->township_keys);
    if (d->keys.nsubscribers == 0)
        log_warning(&d->log,
                    "[security] no subscriber key in '%s': nobody can read tallies or subscribe",
                    c->subscriber_keys);
    return 0;
}

static int setup_catalog(tallyd_t *d)
{
    const tallyd_config_t *c = &d->cfg;
    int rc;
    for (size_t i = 0; i < c->ntownships; i++)
        if (intern_or_log(d, &d->towns, c->townships[i].id) < 0)
            return TALLY_ECONFIG;
    for (size_t i = 0; i < c->nmetrics; i++) {
        int id = intern_or_log(d, &d->metrics, c->metrics[i].id);
        if (id < 0)
            return TALLY_ECONFIG;
        rc = engine_define_metric(&d->engine, (uint32_t)id, (uint8_t)c->metrics[i].kind);
        if (rc != 0) {
            log_error(&d->log,
                      "metric '%s' (line %d) is declared a %s, but the state in %s holds it as "
                      "a %s: %s",
                      c->metrics[i].id, c->metrics[i].line, config_kind_name(c->metrics[i].kind),
                      c->state_dir, config_kind_name(engine_metric_kind(&d->engine, (uint32_t)id)),
                      tally_strerror(rc));
            return TALLY_ECONFIG;
        }
    }
    for (size_t i = 0; i < c->nratios; i++)
        if ((rc = define_ratio(d, c->ratios[i].id, c->ratios[i].numerator,
                               c->ratios[i].denominator)) != 0)
            return rc;
    if (d->config_path[0] == '\0')
        for (size_t i = 0; i < sizeof(builtin_ratios) / sizeof(builtin_ratios[0]); i++)
            if ((rc = define_ratio(d, builtin_ratios[i].id, builtin_ratios[i].num,
                                   builtin_ratios[i].den)) != 0)
                return rc;
    return 0;
}

/* mkdir -p for the state directory, mode 0750. */
static int make_dirs(const char *path)
{
    char buf[CONFIG_PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST)
        return errno;
    return 0;
}

static int set_int(tallyd_t *d, void *sock, int opt, int value, const char *name)
{
    if (zmq_setsockopt(sock, opt, &value, sizeof(value)) != 0) {
        log_error(&d->log, "cannot set %s: %s", name, zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    return 0;
}

/* Plaintext on anything but loopback exposes the figures and lets anyone
 * submit; say so loudly. */
static void warn_if_exposed(tallyd_t *d, const char *endpoint)
{
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return;
    const char *h = endpoint + 6;
    if (strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost:", 10) == 0 ||
        strncmp(h, "[::1]:", 6) == 0)
        return;
    log_warning(&d->log,
                "%s is not a loopback address and no keys are configured: anyone who can reach "
                "it can read and submit figures in plaintext",
                endpoint);
}

static int bind_socket(tallyd_t *d, void *sock, const char *endpoint, char *bound, size_t len)
{
    if (zmq_bind(sock, endpoint) != 0) {
        log_error(&d->log, "cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    size_t n = len;
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, bound, &n) != 0)
        snprintf(bound, len, "%s", endpoint);
    if (!d->secured)
        warn_if_exposed(d, endpoint);
    return 0;
}

static void on_zap_closed(zap_t *z)
{
    tallyd_t *d = (tallyd_t *)(void *)((char *)z - offsetof(tallyd_t, zap));
    d->open_handles--;
}

/* Make both sockets CURVE servers that ask our ZAP handler about every
 * client.  The handler is bound first: libzmq admits any client key on a
 * CURVE socket whose context has no ZAP handler (zap_secure_socket() also
 * sets ZMQ_ZAP_ENFORCE_DOMAIN, which closes that hole a second time). */
static int secure_sockets(tallyd_t *d)
{
    int rc = zap_init(&d->zap, d->zctx, d->loop, &d->keys);
    if (rc != 0) {
        log_error(&d->log, "cannot start the ZAP handler on %s: %s (%s)", ZAP_ENDPOINT,
                  tally_strerror(rc), zmq_strerror(zmq_errno()));
    } else {
        d->zap_open = true;
        d->open_handles++;
        zap_set_logger(&d->zap, &d->log);
        if (zap_secure_socket(d->router_sock, d->server_secret, ZAP_DOMAIN_REQUEST) != 0 ||
            zap_secure_socket(d->pub_sock, d->server_secret, ZAP_DOMAIN_PUBLISH) != 0) {
            log_error(&d->log, "cannot make the sockets CURVE servers: %s",
                      zmq_strerror(zmq_errno()));
            rc = TALLY_ESYS;
        }
    }
    /* libzmq keeps its own copy; ours is of no further use. */
    explicit_bzero(d->server_secret, sizeof(d->server_secret));
    return rc;
}

static int open_sockets(tallyd_t *d)
{
    const tallyd_config_t *c = &d->cfg;
    d->zctx = zmq_ctx_new();
    if (!d->zctx) {
        log_error(&d->log, "cannot create a ZeroMQ context: %s", zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    d->router_sock = zmq_socket(d->zctx, ZMQ_ROUTER);
    d->pub_sock = zmq_socket(d->zctx, ZMQ_XPUB);
    if (!d->router_sock || !d->pub_sock) {
        log_error(&d->log, "cannot create sockets: %s", zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    int64_t maxmsg = tallyd_frame_limit(c);
    int rc = 0;
    /* ROUTER: replies to a vanished peer fail instead of vanishing, queues
     * are bounded, grossly oversized messages cut the connection (the
     * merely oversized get TOO_LARGE from request.c), dead peers are found
     * by ZMTP heartbeats. */
    rc |= set_int(d, d->router_sock, ZMQ_ROUTER_MANDATORY, 1, "ZMQ_ROUTER_MANDATORY");
    rc |= set_int(d, d->router_sock, ZMQ_SNDHWM, 100000, "ZMQ_SNDHWM");
    rc |= set_int(d, d->router_sock, ZMQ_RCVHWM, 100000, "ZMQ_RCVHWM");
    rc |= set_int(d, d->router_sock, ZMQ_LINGER, 2000, "ZMQ_LINGER");
    rc |= set_int(d, d->router_sock, ZMQ_HEARTBEAT_IVL, 5000, "ZMQ_HEARTBEAT_IVL");
    rc |= set_int(d, d->router_sock, ZMQ_HEARTBEAT_TIMEOUT, 15000, "ZMQ_HEARTBEAT_TIMEOUT");
    if (zmq_setsockopt(d->router_sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0)
        rc |= 1;
    /* XPUB: a slow subscriber loses messages (and sees the gap) rather
     * than blocking us; VERBOSER shows every subscribe and unsubscribe. */
    rc |= set_int(d, d->pub_sock, ZMQ_SNDHWM, (int)c->max_subscriber_queue, "ZMQ_SNDHWM");
    rc |= set_int(d, d->pub_sock, ZMQ_XPUB_VERBOSER, 1, "ZMQ_XPUB_VERBOSER");
    rc |= set_int(d, d->pub_sock, ZMQ_LINGER, 1000, "ZMQ_LINGER");
    rc |= set_int(d, d->pub_sock, ZMQ_HEARTBEAT_IVL, 5000, "ZMQ_HEARTBEAT_IVL");
    rc |= set_int(d, d->pub_sock, ZMQ_HEARTBEAT_TIMEOUT, 15000, "ZMQ_HEARTBEAT_TIMEOUT");
    int64_t submax = 1024;
    if (zmq_setsockopt(d->pub_sock, ZMQ_MAXMSGSIZE, &submax, sizeof(submax)) != 0)
        rc |= 1;
    if (rc)
        return TALLY_ESYS;
    if (d->secured && secure_sockets(d) != 0)
        return TALLY_ESYS;
    if (bind_socket(d, d->router_sock, c->request, d->req_endpoint, sizeof(d->req_endpoint)) ||
        bind_socket(d, d->pub_sock, c->publish, d->pub_endpoint, sizeof(d->pub_endpoint)))
        return TALLY_ESYS;
    return 0;
}

static void on_pub_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    (void)zs;
    (void)nparts;
    publish_on_subscription(ctx, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]));
}

static void on_tick(uv_timer_t *t)
{
    tallyd_t *d = t->data;
    engine_tick(&d->engine, clock_now_ms(d->clock));
}

static void on_watchdog(uv_timer_t *t)
{
    tallyd_t *d = t->data;
    if (d->test_stall_ms > 0) {
        /* Test hook (TALLYD_TEST_STALL_MS): stall the loop once, so tests
         * can see that a stuck loop sends no WATCHDOG=1. */
        uv_sleep((unsigned)d->test_stall_ms);
        d->test_stall_ms = 0;
    }
    notify_send(&d->notify, "WATCHDOG=1");
}

static void on_status(uv_timer_t *t)
{
    tallyd_t *d = t->data;
    uint64_t n = d->stats.submissions_accepted - d->status_last_accepted;
    d->status_last_accepted = d->stats.submissions_accepted;
    notify_send(&d->notify,
                "STATUS=serving: %u series, %u clients, %" PRIu64 " subscribers, %.1f "
                "submissions/s",
                engine_series_count(&d->engine), dedup_count(&d->dedup), d->publish.subscribers,
                (double)n / 10.0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    tallyd_t *d = s->data;
    if (signum == SIGHUP) {
        log_notice(&d->log, "SIGHUP: reloading the configuration");
        notify_send(&d->notify, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
                    (unsigned long long)(uv_hrtime() / 1000), d->config_path);
        int rc = reload_config(d);
        notify_send(&d->notify, "READY=1\nSTATUS=%s",
                    rc == 0 ? "reloaded; serving"
                            : "reload refused (see the log); "
                              "serving the previous config");
        return;
    }
    log_notice(&d->log, "%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    tallyd_stop(d, 0);
}

static void on_closed(uv_handle_t *h)
{
    tallyd_t *d = h->data;
    d->open_handles--;
}

void tallyd_stop(tallyd_t *d, int exit_code)
{
    if (d->stopping)
        return;
    d->stopping = true;
    d->exit_code = exit_code;
    notify_send(&d->notify, "STOPPING=1\nSTATUS=stopping: flushing the journal");
    /* Flush the journal first: its callback sends the ACKs that waited
     * for it while the request socket is still open. */
    recover_stop(d);
    publish_goodbye(d);
    zsock_close(&d->router, NULL);
    zsock_close(&d->pub, NULL);
    if (d->zap_open) {
        zap_close(&d->zap, on_zap_closed);
        d->zap_open = false;
    }
    publish_stop(d);
    uv_close((uv_handle_t *)&d->tick_timer, on_closed);
    uv_close((uv_handle_t *)&d->iter_prepare, on_closed);
    uv_close((uv_handle_t *)&d->iter_check, on_closed);
    clock_cache_activate(&d->clock_cache, 0);
    uv_close((uv_handle_t *)&d->watchdog_timer, on_closed);
    uv_close((uv_handle_t *)&d->status_timer, on_closed);
    uv_close((uv_handle_t *)&d->sigint, on_closed);
    uv_close((uv_handle_t *)&d->sigterm, on_closed);
    uv_close((uv_handle_t *)&d->sighup, on_closed);
}

static void on_iter_prepare(uv_prepare_t *h)
{
    tallyd_t *d = h->data;
    clock_cache_expire(&d->clock_cache);
}

static void on_iter_check(uv_check_t *h)
{
    tallyd_t *d = h->data;
    clock_cache_expire(&d->clock_cache);
}

static int start_loop_handles(tallyd_t *d)
{
    int rc = zsock_init(&d->router, d->loop, d->router_sock, request_on_msg, d);
    if (rc == 0)
        rc = zsock_init(&d->pub, d->loop, d->pub_sock, on_pub_msg, d);
    if (rc != 0) {
        log_error(&d->log, "cannot watch the sockets: %s", tally_strerror(rc));
        return rc;
    }
    if ((rc = publish_start(d)) != 0)
        return rc;
    uv_timer_init(d->loop, &d->tick_timer);
    d->tick_timer.data = d;
    uv_timer_start(&d->tick_timer, on_tick, 1000, 1000);
    /* From here on the clock is read once per loop iteration. */
    uv_prepare_init(d->loop, &d->iter_prepare);
    uv_check_init(d->loop, &d->iter_check);
    d->iter_prepare.data = d->iter_check.data = d;
    uv_prepare_start(&d->iter_prepare, on_iter_prepare);
    uv_check_start(&d->iter_check, on_iter_check);
    uv_unref((uv_handle_t *)&d->iter_prepare);
    uv_unref((uv_handle_t *)&d->iter_check);
    clock_cache_activate(&d->clock_cache, 1);
    d->open_handles += 2;
    /* The watchdog timer runs on the loop: if the loop stalls, systemd
     * stops hearing from us and restarts the service. */
    uv_timer_init(d->loop, &d->watchdog_timer);
    uv_timer_init(d->loop, &d->status_timer);
    d->watchdog_timer.data = d->status_timer.data = d;
    uint64_t wd_ms = notify_watchdog_usec(&d->notify) / 2000;
    if (wd_ms > 0)
        uv_timer_start(&d->watchdog_timer, on_watchdog, wd_ms, wd_ms);
    if (notify_enabled(&d->notify))
        uv_timer_start(&d->status_timer, on_status, 10000, 10000);
    d->open_handles += 2;
    uv_signal_t *sigs[] = {&d->sigint, &d->sigterm, &d->sighup};
    int nums[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(d->loop, sigs[i]);
        sigs[i]->data = d;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    d->open_handles += 4;
    return 0;
}

static void cleanup(tallyd_t *d)
{
    if (d->router_sock)
        zmq_close(d->router_sock);
    if (d->pub_sock)
        zmq_close(d->pub_sock);
    if (d->zctx)
        zmq_ctx_term(d->zctx);
    engine_free(&d->engine);
    dedup_free(&d->dedup);
    keyring_free(&d->keys);
    ratelimit_free(&d->rl);
    explicit_bzero(d->server_secret, sizeof(d->server_secret));
    intern_free(&d->towns);
    intern_free(&d->metrics);
    free(d->samples);
    free(d->esamples);
    ackq_free(&d->acks);
    msgpack_sbuffer_destroy(&d->out);
    config_free(&d->cfg);
    notify_close(&d->notify);
}

int tallyd_apply_options(tallyd_t *d, tallyd_config_t *cfg)
{
    const tallyd_options_t *o = &d->opts;
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
        if (snprintf(over[i].dst, over[i].len, "%s", over[i].value) >= (int)over[i].len) {
            log_error(&d->log, "%s: '%s' is longer than %zu bytes", over[i].flag, over[i].value,
                      over[i].len - 1);
            return TALLY_ECONFIG;
        }
    }
    if (o->log_level)
        cfg->log_level = o->log_level;
    return 0;
}

static int load_config(tallyd_t *d)
{
    char err[1024];
    if (config_load(d->opts.config_path, &d->cfg, err, sizeof(err)) != 0) {
        log_error(&d->log, "%s", err);
        return TALLY_ECONFIG;
    }
    if (d->opts.config_path)
        snprintf(d->config_path, sizeof(d->config_path), "%s", d->opts.config_path);
    if (tallyd_apply_options(d, &d->cfg) != 0)
        return TALLY_ECONFIG;
    d->log.level = d->cfg.log_level;
    return 0;
}

int tallyd_main(const tallyd_options_t *o)
{
    tallyd_t *d = calloc(1, sizeof(*d));
    uv_loop_t loop;
    if (!d || uv_loop_init(&loop) != 0) {
        fprintf(stderr, "tallyd: out of memory\n");
        free(d);
        return 1;
    }
    d->loop = &loop;
    d->opts = *o;
    clock_cache_init(&d->clock_cache, &clock_system);
    d->clock = &d->clock_cache.clock;
    d->stats.started_mono_ms = clock_mono_ms();
    msgpack_sbuffer_init(&d->out);
    keyring_init(&d->keys);
    log_init(&d->log, LOG_LEVEL_INFO);
    int nrc = notify_init_env(&d->notify);
    if (nrc != 0)
        log_warning(&d->log, "NOTIFY_SOCKET/WATCHDOG_USEC unusable (%s); not notifying systemd",
                    tally_strerror(nrc));
    const char *stall = getenv("TALLYD_TEST_STALL_MS");
    if (stall)
        d->test_stall_ms = atoi(stall);
    notify_send(&d->notify, "STATUS=starting: loading the configuration");
    int status = 2;
    if (load_config(d) != 0 || setup_engine(d) != 0 || setup_security(d) != 0)
        goto out;
    status = 1;
    if (setup_tables(d) != 0)
        goto out;
    /* Replay decodes with the protocol's maximum: the limit may have been
     * lowered since a record was accepted. */
    d->samples = calloc(PROTO_SAMPLES_MAX, sizeof(*d->samples));
    d->esamples = calloc(PROTO_SAMPLES_MAX, sizeof(*d->esamples));
    if (!d->samples || !d->esamples)
        goto out;
    int err = make_dirs(d->cfg.state_dir);
    if (err) {
        log_error(&d->log, "cannot create the state directory %s: %s", d->cfg.state_dir,
                  strerror(err));
        goto out;
    }
    /* The checkpoint first (names keep their ids), then the catalog on
     * top of it, then the journal written after the checkpoint. */
    notify_send(&d->notify, "STATUS=recovering the state in %s", d->cfg.state_dir);
    if ((status = recover_load(d)) != 0)
        goto out;
    status = 2;
    if (setup_catalog(d) != 0)
        goto out;
    status = 1;
    if (recover_start(d) != 0)
        goto out;
    if (open_sockets(d) != 0 || start_loop_handles(d) != 0)
        goto out;
    recover_start_checkpoints(d);
    notify_send(&d->notify,
                "READY=1\nSTATUS=serving: requests on %s, updates on %s, %u series, %u townships",
                d->req_endpoint, d->pub_endpoint, engine_series_count(&d->engine),
                intern_count(&d->towns));
    log_notice(&d->log,
               "tallyd %s ready: requests on %s, updates on %s, state in %s, %s catalog (%u "
               "townships, %u metrics), %s",
               TALLY_VERSION, d->req_endpoint, d->pub_endpoint, d->cfg.state_dir,
               d->cfg.catalog_closed_metrics ? "closed" : "open", intern_count(&d->towns),
               intern_count(&d->metrics), d->secured ? "secured with CURVE" : "plaintext");
    uv_run(d->loop, UV_RUN_DEFAULT);
    status = d->exit_code;
    log_notice(&d->log,
               "stopped: %" PRIu64 " submissions accepted, %" PRIu64 " duplicates, %" PRIu64
               " rejected",
               d->stats.submissions_accepted, d->stats.duplicates, d->stats.rejected);
out:
    if (!d->stopping && d->journal_open && !d->router.sock) {
        recover_stop(d);
        uv_run(d->loop, UV_RUN_DEFAULT);
    }
    if (!d->stopping && d->router.sock) {
        /* failed after the handles started: close them before the loop goes */
        tallyd_stop(d, status);
        uv_run(d->loop, UV_RUN_DEFAULT);
    }
    if (d->zap_open) {
        /* failed between the ZAP handler and the sockets' zsocks */
        zap_close(&d->zap, on_zap_closed);
        d->zap_open = false;
        uv_run(d->loop, UV_RUN_DEFAULT);
    }
    cleanup(d);
    uv_loop_close(d->loop);
    free(d);
    return status;
}
