/* web_feed.c - tally-web (web/): libtally's subscriber on the libuv loop. */
#include "web_feed.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proto.h"
#include "web_log.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_reset(void *ctx)
{
    web_feed_t *f = ctx;
    f->epoch++;
    f->seq = 0;
    f->stream_id = tally_sub_stream_id(f->sub);
}

static void on_tally(void *ctx, const tally_tally_t *t)
{
    web_feed_t *f = ctx;
    if (t->seq > f->seq)
        f->seq = t->seq;
}

static void on_synced(void *ctx, uint64_t seq, uint64_t stream_id)
{
    web_feed_t *f = ctx;
    if (seq > f->seq)
        f->seq = seq;
    f->stream_id = stream_id;
    if (f->snapshots++ > 0)
        f->resyncs++;
    f->ever_synced = true;
    f->synced_at_ms = wall_ms();
}

/* Closed periods changed: browsers showing past periods read them again. */
static void on_period_changed(void *ctx, const char *metric, const char *scope,
                              const char *const *periods, size_t n)
{
    (void)metric;
    (void)scope;
    (void)periods;
    (void)n;
    web_feed_t *f = ctx;
    f->history_gen++;
}

static void schedule(web_feed_t *f);

/* How long connections must be refused before the log says so: a
 * tallyd restarting is back sooner. */
#define REFUSED_SAY_MS 1000

const char *web_feed_link_name(int link)
{
    static const char *const names[] = {"connecting", "up", "refused", "unreachable",
                                        "handshake_failed"};
    return link >= 0 && link <= WEB_LINK_HANDSHAKE ? names[link] : "connecting";
}

/* Say in the log when tallyd refuses the security handshake, once until
 * a handshake succeeds again (then that too): the wall shows 密钥不符 and
 * TallydKeysRefused fires, and the log says which key to look at. */
static void follow_handshake(web_feed_t *f, int link)
{
    bool failed = link == TALLY_LINK_MECHANISM || link == TALLY_LINK_HANDSHAKE ||
                  link == TALLY_LINK_KEY_REFUSED;
    if (failed && f->handshake_said != link) {
        web_log(WEB_LOG_ERR, "the security handshake with tallyd at %s failed: %s; trying again",
                f->server,
                link == TALLY_LINK_KEY_REFUSED
                    ? "tallyd does not admit this subscriber's key (--cert): is its public key "
                      "among tallyd's subscriber keys ([security] subscriber_keys)? A reload "
                      "may have revoked it"
                : link == TALLY_LINK_MECHANISM
                    ? "tallyd speaks another security mechanism (CURVE where tally-web has no "
                      "--server-key, or plaintext where it has one)"
                    : "most likely --server-key is not tallyd's public key (or tallyd speaks "
                      "CURVE and tally-web has no --server-key)");
        f->handshake_said = link;
    } else if (link == TALLY_LINK_UP && f->handshake_said != 0) {
        web_log(WEB_LOG_NOTICE, "the security handshake with tallyd at %s succeeds again",
                f->server);
        f->handshake_said = 0;
    }
}

/* Say once in the log when nothing accepts connections at tallyd's
 * address (tally-web started before it, or tallyd stopped), or the
 * network does not reach it: otherwise the log would show "ready" and
 * then nothing while the wall waits. */
static void follow_link(web_feed_t *f)
{
    int link = tally_sub_link(f->sub);
    bool unreachable = link == TALLY_LINK_UNREACHABLE;
    snprintf(f->link_why, sizeof f->link_why, "%s", tally_sub_link_why(f->sub));
    if (!unreachable) {
        f->unreachable_said = false;
    } else if (!f->unreachable_said) {
        web_log(WEB_LOG_WARNING, "cannot reach tallyd at %s: %s; waiting for it", f->server,
                f->link_why);
        f->unreachable_said = true;
    }
    int64_t refused = tally_sub_refused_ms(f->sub);
    if (refused == 0) {
        f->refused_said = false;
    } else if (!f->refused_said && refused >= REFUSED_SAY_MS && !unreachable) {
        web_log(WEB_LOG_WARNING,
                "tallyd at %s: nothing accepts connections there (is it running, and "
                "is the address right?); waiting for it",
                f->server);
        f->refused_said = true;
    }
    f->link = link == TALLY_LINK_UP       ? WEB_LINK_UP
              : unreachable               ? WEB_LINK_UNREACHABLE
              : refused >= REFUSED_SAY_MS ? WEB_LINK_REFUSED
              : link == TALLY_LINK_MECHANISM || link == TALLY_LINK_HANDSHAKE ||
                      link == TALLY_LINK_KEY_REFUSED
                  ? WEB_LINK_HANDSHAKE
                  : WEB_LINK_CONNECTING;
    follow_handshake(f, link);
}

/* Drain the sockets and apply what came, then tell the web side. */
static void process(web_feed_t *f)
{
    uint64_t epoch = f->epoch, seq = f->seq, history_gen = f->history_gen;
    int link = f->link;
    bool synced = f->synced;
    int rc = tally_sub_process(f->sub);
    if (rc != 0)
        web_log(WEB_LOG_ERR, "subscriber: %s", tally_strerror(rc));
    f->synced = tally_sub_synced(f->sub);
    /* (Lost in the same call that first synchronised: no transition seen,
     * but the time is needed all the same.) */
    if (web_feed_stale(f) && (synced || f->unsynced_at_ms == 0))
        f->unsynced_at_ms = wall_ms();
    const char *message = NULL;
    int refusal = tally_sub_refusal(f->sub, &message);
    /* The code's name and tallyd's own words: tally_strerror's sentence
     * is written for a township's submissions ("may not submit for the
     * township"), which a subscriber never makes. */
    if (refusal != 0 && refusal != f->refusal)
        web_log(WEB_LOG_ERR, "tallyd refuses this subscriber's requests (%s)%s%s",
                tally_errname(refusal), message && message[0] ? ": " : "", message ? message : "");
    f->refusal = refusal;
    follow_link(f);
    if (synced != f->synced)
        web_log(f->synced ? WEB_LOG_NOTICE : WEB_LOG_WARNING, "%s tallyd (stream %llu, seq %llu)",
                f->synced ? "synchronised with" : "lost synchronisation with",
                (unsigned long long)f->stream_id, (unsigned long long)f->seq);
    if (f->on_change != NULL && (epoch != f->epoch || seq != f->seq || synced != f->synced ||
                                 history_gen != f->history_gen || link != f->link))
        f->on_change(f->ctx);
    schedule(f);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    process(h->data);
}

static void on_timer(uv_timer_t *h)
{
    process(h->data);
}

static void schedule(web_feed_t *f)
{
    if (f->sub == NULL)
        return;
    uv_timer_start(&f->timer, on_timer, (uint64_t)tally_sub_next_timeout_ms(f->sub), 0);
}

int web_feed_start(web_feed_t *f, uv_loop_t *loop, const char *server, const tally_curve_t *curve,
                   web_feed_cb on_change, void *ctx, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    snprintf(f->server, sizeof f->server, "%s", server);
    f->loop = loop;
    f->on_change = on_change;
    f->ctx = ctx;
    tally_sub_callbacks_t cb = {
        .on_reset = on_reset, .on_tally = on_tally, .on_synced = on_synced, .ctx = f};
    tally_sub_opts_t so = {.errbuf = err, .errbuf_len = errlen, .curve = curve};
    int rc = tally_sub_new(server, "u/", &cb, &so, &f->sub);
    if (rc != 0)
        return rc;
    tally_sub_on_period_changed(f->sub, on_period_changed, f);
    int fds[2];
    rc = tally_sub_poll_fds(f->sub, fds);
    if (rc != 0) {
        snprintf(err, errlen, "the subscriber's sockets: %s", tally_strerror(rc));
        tally_sub_destroy(&f->sub);
        return rc;
    }
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    f->nopen = 1;
    for (int i = 0; i < 2; i++) {
        if (uv_poll_init(loop, &f->poll[i], fds[i]) != 0) {
            snprintf(err, errlen, "cannot watch the subscriber's socket %d", fds[i]);
            web_feed_stop(f);
            return TALLY_ESYS;
        }
        f->poll[i].data = f;
        f->nopen++;
        uv_poll_start(&f->poll[i], UV_READABLE, on_poll);
    }
    uv_timer_start(&f->timer, on_timer, 0, 0);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    web_feed_t *f = h->data;
    if (--f->nopen == 0)
        tally_sub_destroy(&f->sub);
}

void web_feed_stop(web_feed_t *f)
{
    if (f->nopen == 0) {
        tally_sub_destroy(&f->sub);
        return;
    }
    int n = f->nopen;
    uv_close((uv_handle_t *)&f->timer, on_closed);
    for (int i = 0; i < n - 1; i++)
        uv_close((uv_handle_t *)&f->poll[i], on_closed);
}

typedef struct filter {
    const char *prefix;
    size_t len;
    tally_tally_cb fn;
    void *ctx;
} filter_t;

static void filtered(void *ctx, const tally_tally_t *t)
{
    filter_t *fl = ctx;
    if (strncmp(t->topic, fl->prefix, fl->len) == 0)
        fl->fn(fl->ctx, t);
}

bool web_feed_stale(const web_feed_t *f)
{
    return f->ever_synced && !f->synced;
}

bool web_feed_closed(const web_feed_t *f)
{
    return f->sub == NULL;
}

void web_feed_foreach(const web_feed_t *f, const char *prefix, tally_tally_cb fn, void *ctx)
{
    if (f->sub == NULL)
        return; /* stopped: no tallies */
    filter_t fl = {.prefix = prefix, .len = strlen(prefix), .fn = fn, .ctx = ctx};
    tally_sub_foreach(f->sub, filtered, &fl);
}

/* A name of a prefix: the bytes up to the next '/', when there is one (a
 * name cut short, "u/town/gao", may begin many and names none). */
static const char *whole_name(const char *p, size_t *len)
{
    const char *slash = strchr(p, '/');
    if (slash == NULL || slash == p)
        return NULL;
    *len = (size_t)(slash - p);
    return p;
}

typedef struct seek {
    const char *name;
    size_t len;
    bool township;
    bool found;
} seek_t;

static void seek_one(void *ctx, const tally_tally_t *t)
{
    seek_t *k = ctx;
    const char *have = k->township ? t->scope : t->metric;
    if (!k->found && strlen(have) == k->len && memcmp(have, k->name, k->len) == 0)
        k->found = true;
}

/* Whether the catalog declares the name or the table holds a tally of it
 * (of any scope, for a metric): what tallyd calls a name it knows. */
static bool known(const web_feed_t *f, const tally_catalog_t *cat, const char *name, size_t len,
                  bool township)
{
    char id[PROTO_NAME_MAX + 1];
    snprintf(id, sizeof id, "%.*s", (int)len, name);
    if (township ? tally_catalog_find_township(cat, id, NULL) != NULL
                 : tally_catalog_find_metric(cat, id, NULL) != NULL)
        return true;
    seek_t k = {.name = name, .len = len, .township = township};
    web_feed_foreach(f, "u/", seek_one, &k);
    return k.found;
}

/* The id whose catalog name (a township's) or label (a metric's) is
 * name, or NULL. */
static const char *id_named(const tally_catalog_t *cat, const char *name, size_t len, bool township)
{
    size_t n = township ? tally_catalog_townships(cat) : tally_catalog_metrics(cat);
    for (size_t i = 0; i < n; i++) {
        const char *id, *said;
        if (township) {
            const tally_township_info_t *t = tally_catalog_township(cat, i);
            id = t->id, said = t->name;
        } else {
            const tally_metric_info_t *m = tally_catalog_metric(cat, i);
            id = m->id, said = m->label;
        }
        if (said[0] != '\0' && strlen(said) == len && memcmp(said, name, len) == 0)
            return id;
    }
    return NULL;
}

static bool unknown(const web_feed_t *f, const tally_catalog_t *cat, const char *name, size_t len,
                    bool township, char *msg, size_t msglen)
{
    if (name == NULL || known(f, cat, name, len, township))
        return false;
    const char *what = township ? "township" : "metric";
    const char *id = id_named(cat, name, len, township);
    if (id != NULL)
        snprintf(msg, msglen,
                 "%s '%.*s' has no tallies here: it is the %s of %s '%s' in the catalog; ask "
                 "for its id '%s'",
                 what, (int)len, name, township ? "name" : "label", what, id, id);
    else
        snprintf(msg, msglen, "%s '%.*s' has no tallies here", what, (int)len, name);
    return true;
}

bool web_feed_unknown_name(const web_feed_t *f, const tally_catalog_t *cat, const char *prefix,
                           char *msg, size_t msglen)
{
    static const char county[] = "u/county/", town[] = "u/town/";
    const char *p, *tname = NULL, *mname = NULL;
    size_t tlen = 0, mlen = 0;
    if (cat == NULL)
        return false; /* a name declared but without tallies cannot be told from a typo */
    if (strncmp(prefix, county, strlen(county)) == 0) {
        p = prefix + strlen(county);
    } else if (strncmp(prefix, town, strlen(town)) == 0) {
        tname = whole_name(prefix + strlen(town), &tlen);
        if (tname == NULL)
            return false;
        p = tname + tlen + 1;
    } else {
        return false;
    }
    mname = whole_name(p, &mlen);
    if (tlen > PROTO_NAME_MAX || mlen > PROTO_NAME_MAX) {
        snprintf(msg, msglen, "%s '%.*s' is longer than %d bytes, the longest name",
                 tlen > PROTO_NAME_MAX ? "township" : "metric",
                 (int)(tlen > PROTO_NAME_MAX ? tlen : mlen), tlen > PROTO_NAME_MAX ? tname : mname,
                 PROTO_NAME_MAX);
        return true;
    }
    return unknown(f, cat, tname, tlen, true, msg, msglen) ||
           unknown(f, cat, mname, mlen, false, msg, msglen);
}
