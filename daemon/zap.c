/* zap.c - the ZAP handler (RFC 27) on the daemon's libuv loop. */
#include "zap.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "clock.h"
#include "tally_error.h"

/* A libzmq 4.3 option that zmq.h lists among the draft API, though the
 * library honours it in every 4.3 build; the value is fixed. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

enum { SERVE_NONE, SERVE_DONE, SERVE_RETRY, SERVE_FAIL };

static void on_poll(uv_poll_t *h, int status, int events);
static void on_idle(uv_idle_t *h);

static const char *const verdict_names[ZAP_VERDICTS] = {
    [ZAP_ALLOW] = "allowed",
    [ZAP_DENY_MECHANISM] = "mechanism",
    [ZAP_DENY_UNKNOWN_KEY] = "unknown_key",
    [ZAP_DENY_DOMAIN] = "domain",
    [ZAP_DENY_MALFORMED] = "malformed",
    [ZAP_DENY_FULL] = "full",
};

const char *zap_verdict_name(int verdict)
{
    return verdict >= 0 && verdict < ZAP_VERDICTS ? verdict_names[verdict] : "?";
}

static bool eq(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

int zap_decide(const keyring_t *kr, const char *domain, size_t domain_len, const char *mechanism,
               size_t mechanism_len, const void *const *creds, const size_t *cred_lens, int ncreds,
               const keyring_identity_t **who)
{
    if (who != NULL)
        *who = NULL;
    if (kr == NULL) {
        /* Open: the sockets speak NULL; only our two domains exist. */
        if (!eq(mechanism, mechanism_len, "NULL"))
            return ZAP_DENY_MECHANISM;
        if (!eq(domain, domain_len, ZAP_DOMAIN_REQUEST) &&
            !eq(domain, domain_len, ZAP_DOMAIN_PUBLISH))
            return ZAP_DENY_DOMAIN;
        return ncreds == 0 ? ZAP_ALLOW : ZAP_DENY_MALFORMED;
    }
    if (!eq(mechanism, mechanism_len, "CURVE"))
        return ZAP_DENY_MECHANISM;
    /* libzmq sends one credential, the client's 32-byte public key. */
    if (ncreds != 1 || cred_lens[0] != KEYS_KEY_BYTES)
        return ZAP_DENY_MALFORMED;
    const keyring_identity_t *id = keyring_lookup(kr, creds[0]);
    if (id == NULL)
        return ZAP_DENY_UNKNOWN_KEY;
    bool ok = eq(domain, domain_len, ZAP_DOMAIN_REQUEST) ||
              (eq(domain, domain_len, ZAP_DOMAIN_PUBLISH) && id->role == KEYS_ROLE_SUBSCRIBER);
    if (!ok)
        return ZAP_DENY_DOMAIN;
    if (who != NULL)
        *who = id;
    return ZAP_ALLOW;
}

void zap_stats_foreach(const zap_t *z, void (*fn)(const char *name, int64_t value, void *ctx),
                       void *ctx)
{
    if (z->kr == NULL)
        return; /* open: refusals are for the connection limit, counted by the owner */
    fn("tallyd_zap_allowed_total", (int64_t)z->stats.allowed, ctx);
    char name[64];
    for (int v = 1; v < ZAP_DENY_FULL; v++) {
        snprintf(name, sizeof(name), "tallyd_zap_denied_%s_total", verdict_names[v]);
        fn(name, (int64_t)z->stats.denied[v], ctx);
    }
}

int zap_secure_socket(void *sock, const uint8_t server_secret[KEYS_KEY_BYTES], const char *domain)
{
    if (domain == NULL || domain[0] == '\0' || strlen(domain) > 254)
        return TALLY_EINVAL;
    if (!zmq_has("curve")) {
        errno = ENOTSUP;
        return TALLY_ESYS;
    }
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, server_secret, KEYS_KEY_BYTES) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one)) != 0)
        return TALLY_ESYS;
    return 0;
}

int zap_open_socket(void *sock, const char *domain)
{
    if (domain == NULL || domain[0] == '\0' || strlen(domain) > 254)
        return TALLY_EINVAL;
    return zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) == 0 ? 0 : TALLY_ESYS;
}

/* ---- the socket on the loop ---- */

static void schedule(zap_t *z)
{
    if (!z->closing && !z->failed)
        uv_idle_start(&z->idle, on_idle);
}

static void on_handle_closed(uv_handle_t *h)
{
    zap_t *z = h->data;
    if (--z->open_handles == 0 && z->on_closed != NULL)
        z->on_closed(z);
}

int zap_init(zap_t *z, void *zmq_ctx, uv_loop_t *loop, const keyring_t *kr)
{
    assert(z != NULL && zmq_ctx != NULL && loop != NULL);
    memset(z, 0, sizeof(*z));
    z->kr = kr;
    z->sock = zmq_socket(zmq_ctx, ZMQ_REP);
    if (z->sock == NULL)
        return errno == ETERM ? TALLY_ECLOSED : TALLY_ESYS;
    /* Replies still queued at shutdown are of no use to anyone. */
    int zero = 0;
    zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_fd_t fd;
    size_t len = sizeof(fd);
    if (zmq_bind(z->sock, ZAP_ENDPOINT) != 0 || zmq_getsockopt(z->sock, ZMQ_FD, &fd, &len) != 0) {
        int err = errno;
        zmq_close(z->sock);
        z->sock = NULL;
        errno = err;
        return err == EADDRINUSE ? TALLY_EEXIST : err == ETERM ? TALLY_ECLOSED : TALLY_ESYS;
    }
    /* ZMQ_FD is an eventfd, not a socket: uv_poll_init, not _socket. */
    if (uv_poll_init(loop, &z->poll, fd) != 0) {
        zmq_close(z->sock);
        z->sock = NULL;
        return TALLY_ESYS;
    }
    uv_idle_init(loop, &z->idle);
    z->poll.data = z;
    z->idle.data = z;
    z->open_handles = 2;
    if (uv_poll_start(&z->poll, UV_READABLE, on_poll) != 0) {
        zap_close(z, NULL);
        return TALLY_ESYS;
    }
    /* Requests may be queued before the descriptor was first watched. */
    schedule(z);
    return 0;
}

void zap_set_keyring(zap_t *z, const keyring_t *kr)
{
    z->kr = kr;
}

void zap_set_admit(zap_t *z, zap_admit_fn fn, void *ctx)
{
    z->admit = fn;
    z->admit_ctx = ctx;
}

void zap_set_logger(zap_t *z, logger_t *log)
{
    z->log = log;
}

void zap_close(zap_t *z, zap_close_cb cb)
{
    assert(!z->closing);
    z->closing = true;
    z->on_closed = cb;
    /* uv_close takes the descriptor out of the poll set at once, so the
     * socket can go now. */
    uv_close((uv_handle_t *)&z->poll, on_handle_closed);
    uv_close((uv_handle_t *)&z->idle, on_handle_closed);
    zmq_close(z->sock);
    z->sock = NULL;
}

static void fail(zap_t *z, int err)
{
    z->stats.errors++;
    z->failed = true;
    uv_poll_stop(&z->poll);
    uv_idle_stop(&z->idle);
    if (z->log != NULL)
        log_error(z->log,
                  "ZAP handler stopped: %s; clients can no longer connect until tallyd restarts",
                  zmq_strerror(err));
}

static void log_decision(zap_t *z, int verdict, const keyring_identity_t *who, zmq_msg_t *f, int n)
{
    if (z->log == NULL)
        return;
    /* Frames 2, 3, 5: domain, address, mechanism (RFC 27). */
    const char *dom = n > 2 ? zmq_msg_data(&f[2]) : "";
    int dlen = n > 2 ? (int)zmq_msg_size(&f[2]) : 0;
    const char *addr = n > 3 ? zmq_msg_data(&f[3]) : "";
    int alen = n > 3 ? (int)zmq_msg_size(&f[3]) : 0;
    char key[KEYS_Z85_LEN + 1] = "-";
    if (n == 7 && zmq_msg_size(&f[6]) == KEYS_KEY_BYTES)
        keys_z85_encode(zmq_msg_data(&f[6]), key);
    if (alen > 64)
        alen = 64;
    if (dlen > 64)
        dlen = 64;
    if (verdict == ZAP_ALLOW) {
        if (who != NULL) /* open handlers admit anonymous connections: nothing to say */
            log_limited(z->log, clock_mono_ms(), LOG_LEVEL_INFO,
                        "ZAP: admitted %s '%s' (key %s) from %.*s on %.*s",
                        keys_role_name(who->role), who->name, key, alen, addr, dlen, dom);
        return;
    }
    if (verdict == ZAP_DENY_FULL) {
        log_limited(z->log, clock_mono_ms(), LOG_LEVEL_WARNING,
                    "refused a connection from %.*s on %.*s: the socket has max_connections "
                    "connections already ([limits] in the configuration)",
                    alen, addr, dlen, dom);
        return;
    }
    char mech[24] = "?";
    if (n > 5) {
        size_t ml = zmq_msg_size(&f[5]);
        snprintf(mech, sizeof(mech), "%.*s", (int)(ml < 16 ? ml : 16),
                 (const char *)zmq_msg_data(&f[5]));
    }
    const char *why = verdict == ZAP_DENY_MECHANISM
                          ? (z->kr != NULL ? "only CURVE is accepted"
                                           : "this tallyd has no keys and speaks plaintext only")
                      : verdict == ZAP_DENY_UNKNOWN_KEY ? "the key is in no key directory"
                      : verdict == ZAP_DENY_DOMAIN
                          ? "the key is not admitted on this socket (township keys may not "
                            "subscribe) or the domain is unknown"
                          : "not a ZAP 1.0 request";
    log_limited(z->log, clock_mono_ms(), LOG_LEVEL_NOTICE,
                "ZAP: refused %s client (key %s) from %.*s on %.*s: %s", mech, key, alen, addr,
                dlen, dom, why);
}

/* Send the six reply frames; the REP socket adds the envelope.  An
 * admission (conn != 0) carries the connection's number as metadata: ZMTP
 * property encoding, a 1-byte name length, the name, a 4-byte big-endian
 * value length, the value. */
static int reply(zap_t *z, zmq_msg_t *req_id, const char *status, const char *text,
                 const char *user_id, uint64_t conn)
{
    char meta[64];
    size_t mlen = 0;
    if (conn != 0) {
        char v[24];
        int vl = snprintf(v, sizeof(v), "%" PRIu64, conn);
        size_t nl = strlen(ZAP_CONN_PROPERTY);
        meta[mlen++] = (char)nl;
        memcpy(meta + mlen, ZAP_CONN_PROPERTY, nl), mlen += nl;
        meta[mlen++] = 0, meta[mlen++] = 0, meta[mlen++] = 0, meta[mlen++] = (char)vl;
        memcpy(meta + mlen, v, (size_t)vl), mlen += (size_t)vl;
    }
    const void *bufs[6] = {"1.0", req_id ? zmq_msg_data(req_id) : "", status, text, user_id, meta};
    size_t lens[6] = {3, req_id ? zmq_msg_size(req_id) : 0, 3, strlen(text), strlen(user_id), mlen};
    for (int i = 0; i < 6; i++)
        if (zmq_send(z->sock, bufs[i], lens[i], ZMQ_DONTWAIT | (i < 5 ? ZMQ_SNDMORE : 0)) < 0)
            return errno;
    return 0;
}

/* Receive one request whole (ZeroMQ delivers all parts or none), decide
 * and reply.  A REP socket must answer every request it took, or it will
 * take no other, so even a malformed one gets a 500. */
static int serve_one(zap_t *z)
{
    zmq_msg_t f[ZAP_FRAMES_MAX];
    zmq_msg_init(&f[0]);
    if (zmq_msg_recv(&f[0], z->sock, ZMQ_DONTWAIT) < 0) {
        int err = errno;
        zmq_msg_close(&f[0]);
        if (err == EAGAIN)
            return SERVE_NONE;
        if (err == EINTR)
            return SERVE_RETRY;
        fail(z, err);
        return SERVE_FAIL;
    }
    int n = 1, total = 1;
    bool more = zmq_msg_more(&f[0]);
    while (more) {
        zmq_msg_t extra;
        zmq_msg_t *dst = n < ZAP_FRAMES_MAX ? &f[n] : &extra;
        zmq_msg_init(dst);
        if (zmq_msg_recv(dst, z->sock, ZMQ_DONTWAIT) < 0) {
            int err = errno;
            zmq_msg_close(dst);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            fail(z, err);
            return SERVE_FAIL;
        }
        more = zmq_msg_more(dst);
        total++;
        if (dst == &extra)
            zmq_msg_close(&extra);
        else
            n++;
    }
    /* Version, request id, domain, address, routing id, mechanism, then
     * the mechanism's credentials. */
    int verdict = ZAP_DENY_MALFORMED;
    const keyring_identity_t *who = NULL;
    if (total == n && n >= 6 && eq(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), "1.0")) {
        const void *creds[ZAP_FRAMES_MAX];
        size_t lens[ZAP_FRAMES_MAX];
        for (int i = 6; i < n; i++) {
            creds[i - 6] = zmq_msg_data(&f[i]);
            lens[i - 6] = zmq_msg_size(&f[i]);
        }
        verdict = zap_decide(z->kr, zmq_msg_data(&f[2]), zmq_msg_size(&f[2]), zmq_msg_data(&f[5]),
                             zmq_msg_size(&f[5]), creds, lens, n - 6, &who);
        if (verdict == ZAP_ALLOW && z->admit != NULL &&
            !z->admit(z->admit_ctx, zmq_msg_data(&f[2]), zmq_msg_size(&f[2])))
            verdict = ZAP_DENY_FULL;
    }
    z->stats.requests++;
    if (verdict == ZAP_ALLOW)
        z->stats.allowed++;
    else
        z->stats.denied[verdict]++;
    log_decision(z, verdict, who, f, n);
    int err;
    if (verdict == ZAP_ALLOW)
        err = reply(z, n > 1 ? &f[1] : NULL, "200", "OK", who != NULL ? who->user_id : "",
                    ++z->next_conn);
    else if (verdict == ZAP_DENY_MALFORMED)
        err = reply(z, n > 1 ? &f[1] : NULL, "500", "Not a ZAP 1.0 request", "", 0);
    else if (verdict == ZAP_DENY_FULL)
        err = reply(z, &f[1], "300", "Connection limit", "", 0);
    else
        err = reply(z, &f[1], "400", zap_verdict_name(verdict), "", 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    if (err != 0) {
        /* Half a reply leaves the REP socket unusable. */
        fail(z, err);
        return SERVE_FAIL;
    }
    return SERVE_DONE;
}

/* Answer up to ZAP_BUDGET requests, then look at ZMQ_EVENTS: that both
 * re-arms ZMQ_FD and tells whether requests are still waiting, which our
 * own replies may have hidden from the descriptor. */
static void drain(zap_t *z)
{
    assert(!z->closing && !z->failed);
    bool again = false;
    for (int i = 0; i < ZAP_BUDGET; i++) {
        int r = serve_one(z);
        if (r == SERVE_FAIL)
            return;
        if (r == SERVE_NONE)
            break;
        if (r == SERVE_RETRY || i + 1 == ZAP_BUDGET) {
            again = true;
            break;
        }
    }
    int events = 0;
    size_t len = sizeof(events);
    if (zmq_getsockopt(z->sock, ZMQ_EVENTS, &events, &len) != 0) {
        if (errno != EINTR) {
            fail(z, errno);
            return;
        }
        again = true;
    }
    if (again || (events & ZMQ_POLLIN))
        uv_idle_start(&z->idle, on_idle);
    else
        uv_idle_stop(&z->idle);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)events;
    zap_t *z = h->data;
    if (status < 0) {
        fail(z, -status);
        return;
    }
    drain(z);
}

static void on_idle(uv_idle_t *h)
{
    drain(h->data);
}
