/* Unit tests of zap: the ZAP handler on a real libuv loop in front of real
 * CURVE sockets (ROUTER for requests, XPUB for updates) over TCP on
 * loopback, with clients holding known, unknown and no keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>
#include <zmq.h>

#include "keys.h"
#include "tally_error.h"
#include "zap.h"
#include "zsock.h"

#define QUIET_MS 500 /* how long "nothing gets through" is watched */
#define WAIT_MS  5000

typedef struct pair {
    char pub[41], sec[41];
    uint8_t pubk[32], seck[32];
} pair_t;

typedef struct got {
    char uid[160];
    char body[64];
} got_t;

typedef struct fx {
    void *zctx;
    uv_loop_t loop;
    uv_timer_t timer;
    uv_timer_t poke;
    zap_t zap;
    keyring_t kr, kr2;
    pair_t server, gao, fux, scr, stranger;
    void *router, *xpub;
    zsock_t rz, xz;
    char req_ep[256], pub_ep[256];
    void *clients[8];
    int nclients;
    got_t got[16];
    int ngot, want;
} fx_t;

static void new_pair(pair_t *p)
{
    assert_int_equal(zmq_curve_keypair(p->pub, p->sec), 0);
    assert_int_equal(keys_z85_decode(p->pub, 40, p->pubk), 0);
    assert_int_equal(keys_z85_decode(p->sec, 40, p->seck), 0);
}

static void record(fx_t *f, zmq_msg_t *body)
{
    if (f->ngot >= 16)
        return;
    got_t *g = &f->got[f->ngot++];
    const char *uid = zmq_msg_gets(body, "User-Id");
    snprintf(g->uid, sizeof(g->uid), "%s", uid ? uid : "");
    snprintf(g->body, sizeof(g->body), "%.*s", (int)zmq_msg_size(body),
             (const char *)zmq_msg_data(body));
    if (f->ngot >= f->want)
        uv_stop(&f->loop);
}

static void on_router_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    (void)zs;
    if (nparts == 2)
        record(ctx, &parts[1]);
}

/* XPUB hands up subscriptions: one frame, 1 = subscribe, then the topic;
 * 0 = unsubscribe (also when a subscriber's connection ends), not kept. */
static void on_xpub_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    (void)zs;
    (void)nparts;
    if (zmq_msg_size(&parts[0]) > 0 && *(const char *)zmq_msg_data(&parts[0]) == 1)
        record(ctx, &parts[0]);
}

static void on_timer(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* A client socket does its housekeeping (re-sending subscriptions after a
 * reconnect, for one) only when its owner calls into it, as a live client
 * does all the time; the test's clients idle, so poke them. */
static void on_poke(uv_timer_t *t)
{
    fx_t *f = t->data;
    for (int i = 0; i < f->nclients; i++) {
        int events;
        size_t len = sizeof(events);
        zmq_getsockopt(f->clients[i], ZMQ_EVENTS, &events, &len);
    }
}

/* Run the loop until `want` messages in all have arrived or ms passed;
 * returns the number arrived. */
static int run_until(fx_t *f, int want, int ms)
{
    f->want = want;
    if (f->ngot >= want)
        return f->ngot;
    uv_timer_start(&f->timer, on_timer, (uint64_t)ms, 0);
    uv_timer_start(&f->poke, on_poke, 10, 10);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&f->timer);
    uv_timer_stop(&f->poke);
    return f->ngot;
}

static void *bind_secure(fx_t *f, int type, const char *domain, char *ep, size_t eplen)
{
    void *s = zmq_socket(f->zctx, type);
    assert_non_null(s);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    assert_int_equal(zap_secure_socket(s, f->server.seck, domain), 0);
    assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
    size_t len = eplen;
    assert_int_equal(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    return s;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->zctx = zmq_ctx_new();
    if (f->zctx == NULL || uv_loop_init(&f->loop) != 0)
        return -1;
    uv_timer_init(&f->loop, &f->timer);
    uv_timer_init(&f->loop, &f->poke);
    f->poke.data = f;
    new_pair(&f->server);
    new_pair(&f->gao);
    new_pair(&f->fux);
    new_pair(&f->scr);
    new_pair(&f->stranger);
    keyring_init(&f->kr);
    keyring_init(&f->kr2);
    assert_int_equal(keyring_add(&f->kr, f->gao.pubk, KEYS_ROLE_TOWNSHIP, "gaoguan", 7, NULL), 0);
    assert_int_equal(keyring_add(&f->kr, f->scr.pubk, KEYS_ROLE_SUBSCRIBER, "screen", 6, NULL), 0);
    /* The handler first, then the CURVE sockets. */
    assert_int_equal(zap_init(&f->zap, f->zctx, &f->loop, &f->kr), 0);
    f->router = bind_secure(f, ZMQ_ROUTER, ZAP_DOMAIN_REQUEST, f->req_ep, sizeof(f->req_ep));
    f->xpub = bind_secure(f, ZMQ_XPUB, ZAP_DOMAIN_PUBLISH, f->pub_ep, sizeof(f->pub_ep));
    /* As tallyd: every subscription is handed up, repeated ones too. */
    int one = 1;
    assert_int_equal(zmq_setsockopt(f->xpub, ZMQ_XPUB_VERBOSER, &one, sizeof(one)), 0);
    assert_int_equal(zsock_init(&f->rz, &f->loop, f->router, on_router_msg, f), 0);
    assert_int_equal(zsock_init(&f->xz, &f->loop, f->xpub, on_xpub_msg, f), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < f->nclients; i++)
        zmq_close(f->clients[i]);
    zsock_close(&f->rz, NULL);
    zsock_close(&f->xz, NULL);
    zmq_close(f->router);
    zmq_close(f->xpub);
    zap_close(&f->zap, NULL);
    uv_close((uv_handle_t *)&f->timer, NULL);
    uv_close((uv_handle_t *)&f->poke, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    zmq_ctx_term(f->zctx);
    keyring_free(&f->kr);
    keyring_free(&f->kr2);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* A client socket of type that connects to ep with key (NULL: the NULL
 * mechanism). */
static void *client(fx_t *f, int type, const pair_t *key, const char *ep)
{
    void *s = zmq_socket(f->zctx, type);
    assert_non_null(s);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    if (key != NULL) {
        assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, f->server.pubk, 32), 0);
        assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, key->pubk, 32), 0);
        assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, key->seck, 32), 0);
    }
    assert_int_equal(zmq_connect(s, ep), 0);
    f->clients[f->nclients++] = s;
    return s;
}

static void send_str(void *s, const char *text)
{
    assert_int_equal(zmq_send(s, text, strlen(text), ZMQ_DONTWAIT), (int)strlen(text));
}

static void expect_uid(const char *uid, const char *prefix, const pair_t *key)
{
    char want[160];
    snprintf(want, sizeof(want), "%s%s", prefix, key->pub);
    assert_string_equal(uid, want);
}

/* ---- decisions without sockets ---- */

static void test_decide(void **state)
{
    fx_t *f = *state;
    const void *cred[2] = {f->gao.pubk, f->gao.pubk};
    size_t len[2] = {32, 32};
    const keyring_identity_t *who = NULL;
#define DECIDE(dom, mech, cr, ln, n)                                                               \
    zap_decide(&f->kr, dom, strlen(dom), mech, strlen(mech), cr, ln, n, &who)
    assert_int_equal(DECIDE("tally-req", "CURVE", cred, len, 1), ZAP_ALLOW);
    assert_string_equal(who->name, "gaoguan");
    assert_int_equal(DECIDE("tally-pub", "CURVE", cred, len, 1), ZAP_DENY_DOMAIN);
    assert_null(who);
    assert_int_equal(DECIDE("other", "CURVE", cred, len, 1), ZAP_DENY_DOMAIN);
    assert_int_equal(DECIDE("tally-req", "NULL", cred, len, 0), ZAP_DENY_MECHANISM);
    assert_int_equal(DECIDE("tally-req", "PLAIN", cred, len, 2), ZAP_DENY_MECHANISM);
    assert_int_equal(DECIDE("tally-req", "curve", cred, len, 1), ZAP_DENY_MECHANISM);
    assert_int_equal(DECIDE("tally-req", "CURVE", cred, len, 2), ZAP_DENY_MALFORMED);
    size_t short_len[1] = {31};
    assert_int_equal(DECIDE("tally-req", "CURVE", cred, short_len, 1), ZAP_DENY_MALFORMED);
    const void *scr[1] = {f->scr.pubk};
    assert_int_equal(DECIDE("tally-pub", "CURVE", scr, len, 1), ZAP_ALLOW);
    assert_int_equal(who->role, KEYS_ROLE_SUBSCRIBER);
    assert_int_equal(DECIDE("tally-req", "CURVE", scr, len, 1), ZAP_ALLOW);
    const void *unk[1] = {f->stranger.pubk};
    assert_int_equal(DECIDE("tally-req", "CURVE", unk, len, 1), ZAP_DENY_UNKNOWN_KEY);
    /* An admin key: the request socket only. */
    pair_t ops;
    new_pair(&ops);
    assert_int_equal(keyring_add(&f->kr, ops.pubk, KEYS_ROLE_ADMIN, "ops", 3, NULL), 0);
    const void *adm[1] = {ops.pubk};
    assert_int_equal(DECIDE("tally-req", "CURVE", adm, len, 1), ZAP_ALLOW);
    assert_int_equal(who->role, KEYS_ROLE_ADMIN);
    assert_int_equal(DECIDE("tally-pub", "CURVE", adm, len, 1), ZAP_DENY_DOMAIN);
#undef DECIDE
    assert_string_equal(zap_verdict_name(ZAP_DENY_UNKNOWN_KEY), "unknown_key");
    assert_string_equal(zap_verdict_name(99), "?");
    assert_int_equal(zap_secure_socket(f->router, f->server.seck, ""), TALLY_EINVAL);
    assert_int_equal(zap_secure_socket(f->router, f->server.seck, NULL), TALLY_EINVAL);
}

/* ---- real handshakes ---- */

static void test_township_admitted(void **state)
{
    fx_t *f = *state;
    void *c = client(f, ZMQ_DEALER, &f->gao, f->req_ep);
    send_str(c, "hello");
    assert_int_equal(run_until(f, 1, WAIT_MS), 1);
    assert_string_equal(f->got[0].body, "hello");
    expect_uid(f->got[0].uid, "town:gaoguan:", &f->gao);
    const keyring_identity_t *id = keyring_lookup_user_id(&f->kr, f->got[0].uid);
    assert_non_null(id);
    assert_int_equal(id->role, KEYS_ROLE_TOWNSHIP);
    assert_string_equal(id->name, "gaoguan");
    assert_int_equal(f->zap.stats.allowed, 1);
    assert_int_equal(f->zap.stats.requests, 1);
    /* Every message of the connection carries it, not just the first. */
    send_str(c, "again");
    assert_int_equal(run_until(f, 2, WAIT_MS), 2);
    expect_uid(f->got[1].uid, "town:gaoguan:", &f->gao);
    assert_int_equal(f->zap.stats.allowed, 1);
}

static void test_unknown_key_refused(void **state)
{
    fx_t *f = *state;
    void *c = client(f, ZMQ_DEALER, &f->stranger, f->req_ep);
    send_str(c, "let me in");
    assert_int_equal(run_until(f, 1, QUIET_MS), 0);
    assert_true(f->zap.stats.denied[ZAP_DENY_UNKNOWN_KEY] >= 1);
    assert_int_equal(f->zap.stats.allowed, 0);
    /* A known client on the same socket still gets through. */
    send_str(client(f, ZMQ_DEALER, &f->gao, f->req_ep), "ok");
    assert_int_equal(run_until(f, 1, WAIT_MS), 1);
    assert_string_equal(f->got[0].body, "ok");
}

/* A client without CURVE cannot even start a handshake with a CURVE
 * server, whatever routing id it claims. */
static void test_null_client_refused(void **state)
{
    fx_t *f = *state;
    void *c = client(f, ZMQ_DEALER, NULL, f->req_ep);
    assert_int_equal(zmq_setsockopt(c, ZMQ_ROUTING_ID, "gaoguan", 7), 0);
    send_str(c, "i am gaoguan");
    assert_int_equal(run_until(f, 1, QUIET_MS), 0);
    assert_int_equal(f->zap.stats.allowed, 0);
}

/* Sockets of the context that are not CURVE servers ask ZAP too (NULL
 * with a domain, PLAIN always): the handler refuses both mechanisms. */
static void test_other_mechanisms_refused(void **state)
{
    fx_t *f = *state;
    char ep_null[256], ep_plain[256];
    size_t len;
    void *null_srv = zmq_socket(f->zctx, ZMQ_PULL);
    void *plain_srv = zmq_socket(f->zctx, ZMQ_PULL);
    f->clients[f->nclients++] = null_srv;
    f->clients[f->nclients++] = plain_srv;
    int one = 1;
    assert_int_equal(zmq_setsockopt(null_srv, ZMQ_ZAP_DOMAIN, "tally-req", 9), 0);
    assert_int_equal(zmq_setsockopt(plain_srv, ZMQ_PLAIN_SERVER, &one, sizeof(one)), 0);
    assert_int_equal(zmq_setsockopt(plain_srv, ZMQ_ZAP_DOMAIN, "tally-req", 9), 0);
    assert_int_equal(zmq_bind(null_srv, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_bind(plain_srv, "tcp://127.0.0.1:*"), 0);
    len = sizeof(ep_null);
    zmq_getsockopt(null_srv, ZMQ_LAST_ENDPOINT, ep_null, &len);
    len = sizeof(ep_plain);
    zmq_getsockopt(plain_srv, ZMQ_LAST_ENDPOINT, ep_plain, &len);

    void *a = client(f, ZMQ_PUSH, NULL, ep_null);
    void *b = zmq_socket(f->zctx, ZMQ_PUSH);
    f->clients[f->nclients++] = b;
    int zero = 0;
    zmq_setsockopt(b, ZMQ_LINGER, &zero, sizeof(zero));
    assert_int_equal(zmq_setsockopt(b, ZMQ_PLAIN_USERNAME, "gaoguan", 7), 0);
    assert_int_equal(zmq_setsockopt(b, ZMQ_PLAIN_PASSWORD, "secret", 6), 0);
    assert_int_equal(zmq_connect(b, ep_plain), 0);
    send_str(a, "x");
    send_str(b, "y");
    /* Drive the loop (the handler) while watching the two servers. */
    int64_t deadline = (int64_t)uv_now(&f->loop) + 2000;
    while (f->zap.stats.denied[ZAP_DENY_MECHANISM] < 2 && (int64_t)uv_now(&f->loop) < deadline) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        zmq_pollitem_t items[2] = {{null_srv, 0, ZMQ_POLLIN, 0}, {plain_srv, 0, ZMQ_POLLIN, 0}};
        assert_int_equal(zmq_poll(items, 2, 10), 0);
        uv_update_time(&f->loop);
    }
    assert_true(f->zap.stats.denied[ZAP_DENY_MECHANISM] >= 2);
    assert_int_equal(f->zap.stats.allowed, 0);
    /* And still nothing delivered a while later. */
    zmq_pollitem_t items[2] = {{null_srv, 0, ZMQ_POLLIN, 0}, {plain_srv, 0, ZMQ_POLLIN, 0}};
    for (int i = 0; i < 20; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        assert_int_equal(zmq_poll(items, 2, 10), 0);
    }
}

static void test_subscriber_domains(void **state)
{
    fx_t *f = *state;
    /* A subscriber on the publish socket: its subscription arrives with
     * its User-Id. */
    void *sub = client(f, ZMQ_SUB, &f->scr, f->pub_ep);
    assert_int_equal(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "u/", 2), 0);
    assert_int_equal(run_until(f, 1, WAIT_MS), 1);
    assert_string_equal(f->got[0].body, "\001u/");
    expect_uid(f->got[0].uid, "sub:screen:", &f->scr);
    /* ... and on the request socket, for snapshots and stats. */
    send_str(client(f, ZMQ_DEALER, &f->scr, f->req_ep), "snapshot please");
    assert_int_equal(run_until(f, 2, WAIT_MS), 2);
    expect_uid(f->got[1].uid, "sub:screen:", &f->scr);
    const keyring_identity_t *id = keyring_lookup_user_id(&f->kr, f->got[1].uid);
    assert_non_null(id);
    assert_int_equal(id->role, KEYS_ROLE_SUBSCRIBER);
    /* A township key may not subscribe. */
    void *tsub = client(f, ZMQ_SUB, &f->gao, f->pub_ep);
    assert_int_equal(zmq_setsockopt(tsub, ZMQ_SUBSCRIBE, "u/town/", 7), 0);
    assert_int_equal(run_until(f, 3, QUIET_MS), 2);
    assert_true(f->zap.stats.denied[ZAP_DENY_DOMAIN] >= 1);
    assert_int_equal(f->zap.stats.allowed, 2);
}

/* A reload swaps the keyring: new handshakes of a removed key fail, and
 * the open connection, which ZAP does not see again, is caught by the
 * per-message check. */
static void test_swap_revokes(void **state)
{
    fx_t *f = *state;
    void *c = client(f, ZMQ_DEALER, &f->gao, f->req_ep);
    send_str(c, "before");
    assert_int_equal(run_until(f, 1, WAIT_MS), 1);
    char uid[160];
    snprintf(uid, sizeof(uid), "%s", f->got[0].uid);
    assert_non_null(keyring_lookup_user_id(&f->kr, uid));

    assert_int_equal(keyring_add(&f->kr2, f->fux.pubk, KEYS_ROLE_TOWNSHIP, "fuxing", 6, NULL), 0);
    assert_int_equal(keyring_add(&f->kr2, f->scr.pubk, KEYS_ROLE_SUBSCRIBER, "screen", 6, NULL), 0);
    assert_int_equal(keyring_revoked(&f->kr, &f->kr2, KEYS_ROLE_TOWNSHIP, NULL), 1);
    zap_set_keyring(&f->zap, &f->kr2);

    send_str(c, "after");
    assert_int_equal(run_until(f, 2, WAIT_MS), 2);
    assert_string_equal(f->got[1].uid, uid);
    assert_null(keyring_lookup_user_id(&f->kr2, f->got[1].uid));

    uint64_t denied = f->zap.stats.denied[ZAP_DENY_UNKNOWN_KEY];
    send_str(client(f, ZMQ_DEALER, &f->gao, f->req_ep), "new connection");
    assert_int_equal(run_until(f, 3, QUIET_MS), 2);
    assert_true(f->zap.stats.denied[ZAP_DENY_UNKNOWN_KEY] > denied);

    send_str(client(f, ZMQ_DEALER, &f->fux, f->req_ep), "fuxing");
    assert_int_equal(run_until(f, 3, WAIT_MS), 3);
    expect_uid(f->got[2].uid, "town:fuxing:", &f->fux);
    assert_non_null(keyring_lookup_user_id(&f->kr2, f->got[2].uid));
}

/* The publish socket cannot check anything per message (it only sends),
 * so after a reload that revokes a subscriber key the daemon cuts every
 * subscriber by unbinding and binding the endpoint again: the others
 * reconnect through ZAP and subscribe again by themselves, the revoked one
 * is refused. */
static void test_pub_rebind_cuts_revoked(void **state)
{
    fx_t *f = *state;
    pair_t other;
    new_pair(&other);

    assert_int_equal(keyring_add(&f->kr, other.pubk, KEYS_ROLE_SUBSCRIBER, "desk", 4, NULL), 0);
    void *gone = client(f, ZMQ_SUB, &f->scr, f->pub_ep);
    assert_int_equal(zmq_setsockopt(gone, ZMQ_SUBSCRIBE, "u/", 2), 0);
    void *kept = client(f, ZMQ_SUB, &other, f->pub_ep);
    assert_int_equal(zmq_setsockopt(kept, ZMQ_SUBSCRIBE, "u/county/", 9), 0);
    assert_int_equal(run_until(f, 2, WAIT_MS), 2);

    assert_int_equal(keyring_add(&f->kr2, other.pubk, KEYS_ROLE_SUBSCRIBER, "desk", 4, NULL), 0);
    assert_int_equal(keyring_revoked(&f->kr, &f->kr2, KEYS_ROLE_SUBSCRIBER, NULL), 1);
    zap_set_keyring(&f->zap, &f->kr2);
    assert_int_equal(zmq_unbind(f->xpub, f->pub_ep), 0);
    /* The old listener closes in a ZeroMQ I/O thread: the port can be busy
     * for a moment (EADDRINUSE), so the daemon must retry the bind. */
    int tries = 0;
    while (zmq_bind(f->xpub, f->pub_ep) != 0 && tries++ < 1000) {
        assert_int_equal(zmq_errno(), EADDRINUSE);
        usleep(1000);
    }
    assert_true(tries < 1000);
    zsock_kick(&f->xz);

    assert_int_equal(run_until(f, 3, WAIT_MS), 3);
    assert_string_equal(f->got[2].body, "\001u/county/");
    expect_uid(f->got[2].uid, "sub:desk:", &other);
    assert_int_equal(run_until(f, 4, QUIET_MS), 3);
    assert_true(f->zap.stats.denied[ZAP_DENY_UNKNOWN_KEY] >= 1);
}

/* Talk ZAP to the handler directly, the way libzmq does, and read the
 * replies. */
static int zap_request(fx_t *f, void *req, const char *const *frames, const size_t *lens, int n,
                       char reply[6][64])
{
    for (int i = 0; i < n; i++)
        assert_int_equal(zmq_send(req, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0),
                         (int)lens[i]);
    for (int t = 0; t < 200; t++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        zmq_pollitem_t it = {req, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 10) == 1)
            break;
    }
    int k = 0;
    int more = 1;
    while (more) {
        char buf[160];
        int r = zmq_recv(req, buf, sizeof(buf) - 1, ZMQ_DONTWAIT);
        if (r < 0)
            return -1;
        if (k < 6) {
            int m = r < 63 ? r : 63;
            memcpy(reply[k], buf, (size_t)m);
            reply[k][m] = '\0';
        }
        k++;
        size_t sz = sizeof(more);
        zmq_getsockopt(req, ZMQ_RCVMORE, &more, &sz);
    }
    return k;
}

static void test_protocol(void **state)
{
    fx_t *f = *state;
    void *req = zmq_socket(f->zctx, ZMQ_REQ);
    f->clients[f->nclients++] = req;
    assert_int_equal(zmq_connect(req, ZAP_ENDPOINT), 0);
    char reply[6][64];
    const char *ok[] = {
        "1.0", "17", "tally-req", "192.0.2.1", "", "CURVE", (const char *)f->gao.pubk};
    size_t ok_len[] = {3, 2, 9, 9, 0, 5, 32};
    assert_int_equal(zap_request(f, req, ok, ok_len, 7, reply), 6);
    assert_string_equal(reply[0], "1.0");
    assert_string_equal(reply[1], "17");
    assert_string_equal(reply[2], "200");
    char want[160];
    snprintf(want, sizeof(want), "town:gaoguan:%s", f->gao.pub);
    assert_string_equal(reply[4], want);
    /* Metadata: the connection's number, ZMTP property encoding. */
    assert_int_equal(reply[5][0], 12);
    assert_memory_equal(reply[5] + 1,
                        "X-Tally-Conn\0\0\0\1"
                        "1",
                        17);

    const char *v2[] = {
        "2.0", "18", "tally-req", "192.0.2.1", "", "CURVE", (const char *)f->gao.pubk};
    assert_int_equal(zap_request(f, req, v2, ok_len, 7, reply), 6);
    assert_string_equal(reply[1], "18");
    assert_string_equal(reply[2], "500");
    assert_string_equal(reply[4], "");

    assert_int_equal(zap_request(f, req, ok, ok_len, 3, reply), 6);
    assert_string_equal(reply[2], "500");

    const char *plain[] = {"1.0", "19", "tally-req", "", "", "PLAIN", "user", "pass"};
    size_t plain_len[] = {3, 2, 9, 0, 0, 5, 4, 4};
    assert_int_equal(zap_request(f, req, plain, plain_len, 8, reply), 6);
    assert_string_equal(reply[2], "400");
    assert_string_equal(reply[3], "mechanism");

    /* More frames than the handler looks at: still one 500 answer, and the
     * handler goes on serving. */
    const char *many[10];
    size_t many_len[10];
    for (int i = 0; i < 10; i++) {
        many[i] = ok[i < 7 ? i : 6];
        many_len[i] = ok_len[i < 7 ? i : 6];
    }
    assert_int_equal(zap_request(f, req, many, many_len, 10, reply), 6);
    assert_string_equal(reply[2], "500");
    assert_int_equal(zap_request(f, req, ok, ok_len, 7, reply), 6);
    assert_string_equal(reply[2], "200");
    assert_memory_equal(reply[5] + 1,
                        "X-Tally-Conn\0\0\0\1"
                        "2",
                        17); /* a number each */
    assert_int_equal(f->zap.stats.denied[ZAP_DENY_MALFORMED], 3);
    assert_int_equal(f->zap.stats.allowed, 2);

    /* One handler per context. */
    zap_t other;
    assert_int_equal(zap_init(&other, f->zctx, &f->loop, &f->kr), TALLY_EEXIST);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* More requests queued at once than one wake-up answers (ZAP_BUDGET):
 * the rest must be answered on the following loop iterations without a
 * new signal on the descriptor. */
static void test_many_queued(void **state)
{
    fx_t *f = *state;
    enum { N = 3 * ZAP_BUDGET + 5 };
    void *reqs[N];
    const char *ok[] = {"1.0", "1", "tally-req", "", "", "CURVE", (const char *)f->scr.pubk};
    size_t ok_len[] = {3, 1, 9, 0, 0, 5, 32};
    for (int i = 0; i < N; i++) {
        reqs[i] = zmq_socket(f->zctx, ZMQ_REQ);
        int zero = 0;
        zmq_setsockopt(reqs[i], ZMQ_LINGER, &zero, sizeof(zero));
        assert_int_equal(zmq_connect(reqs[i], ZAP_ENDPOINT), 0);
        for (int k = 0; k < 7; k++)
            assert_int_equal(zmq_send(reqs[i], ok[k], ok_len[k], k < 6 ? ZMQ_SNDMORE : 0),
                             (int)ok_len[k]);
    }
    int answered = 0;
    bool done[N] = {false};
    for (int t = 0; t < 500 && answered < N; t++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        for (int i = 0; i < N; i++) {
            if (done[i])
                continue;
            char buf[128];
            int more = 1, k = 0;
            if (zmq_recv(reqs[i], buf, sizeof(buf), ZMQ_DONTWAIT) < 0)
                continue;
            while (more) {
                size_t sz = sizeof(more);
                zmq_getsockopt(reqs[i], ZMQ_RCVMORE, &more, &sz);
                if (more && zmq_recv(reqs[i], buf, sizeof(buf), 0) >= 0 && ++k == 2)
                    assert_memory_equal(buf, "200", 3);
            }
            done[i] = true;
            answered++;
        }
        usleep(2000);
    }
    for (int i = 0; i < N; i++)
        zmq_close(reqs[i]);
    assert_int_equal(answered, N);
    assert_int_equal(f->zap.stats.allowed, N);
}

typedef struct counters {
    int n;
    int64_t allowed, unknown;
} counters_t;

static void count_stat(const char *name, int64_t value, void *ctx)
{
    counters_t *c = ctx;
    c->n++;
    if (strcmp(name, "tallyd_zap_allowed_total") == 0)
        c->allowed = value;
    if (strcmp(name, "tallyd_zap_denied_unknown_key_total") == 0)
        c->unknown = value;
}

static void count_any(const char *name, int64_t value, void *ctx)
{
    (void)name;
    (void)value;
    (*(int *)ctx)++;
}

static int g_admit_calls;
static bool g_admit;

static bool admit_cb(void *ctx, const char *domain, size_t len)
{
    (void)ctx;
    assert_int_equal(len, 9);
    assert_memory_equal(domain, "tally-pub", 9);
    g_admit_calls++;
    return g_admit;
}

/* Without a keyring the handler admits NULL connections on our domains;
 * either way, the admission callback has the last word. */
static void test_open_and_admit(void **state)
{
    fx_t *f = *state;
    void *req = zmq_socket(f->zctx, ZMQ_REQ);
    f->clients[f->nclients++] = req;
    assert_int_equal(zmq_connect(req, ZAP_ENDPOINT), 0);
    char reply[6][64];
    zap_set_keyring(&f->zap, NULL);
    const char *null[] = {"1.0", "1", "tally-pub", "192.0.2.1", "", "NULL"};
    size_t null_len[] = {3, 1, 9, 9, 0, 4};
    assert_int_equal(zap_request(f, req, null, null_len, 6, reply), 6);
    assert_string_equal(reply[2], "200");
    assert_string_equal(reply[4], ""); /* no User-Id */
    assert_int_equal(reply[5][0], 12);

    const char *curve[] = {
        "1.0", "2", "tally-pub", "192.0.2.1", "", "CURVE", (const char *)f->gao.pubk};
    size_t curve_len[] = {3, 1, 9, 9, 0, 5, 32};
    assert_int_equal(zap_request(f, req, curve, curve_len, 7, reply), 6);
    assert_string_equal(reply[2], "400");
    assert_string_equal(reply[3], "mechanism");

    const char *other[] = {"1.0", "3", "elsewhere", "192.0.2.1", "", "NULL"};
    size_t other_len[] = {3, 1, 9, 9, 0, 4};
    assert_int_equal(zap_request(f, req, other, other_len, 6, reply), 6);
    assert_string_equal(reply[2], "400");
    assert_string_equal(reply[3], "domain");

    zap_set_admit(&f->zap, admit_cb, NULL);
    g_admit = false;
    assert_int_equal(zap_request(f, req, null, null_len, 6, reply), 6);
    assert_string_equal(reply[2], "300");
    assert_string_equal(reply[3], "Connection limit");
    assert_string_equal(reply[5], ""); /* no number for a refusal */
    assert_int_equal(f->zap.stats.denied[ZAP_DENY_FULL], 1);
    g_admit = true;
    assert_int_equal(zap_request(f, req, null, null_len, 6, reply), 6);
    assert_string_equal(reply[2], "200");
    assert_int_equal(g_admit_calls, 2);
    /* The callback is not asked about a connection the keyring refuses. */
    assert_int_equal(zap_request(f, req, curve, curve_len, 7, reply), 6);
    assert_int_equal(g_admit_calls, 2);

    /* An open handler's refusals are all for the limit: counted by the
     * owner, so it reports no counters. */
    int n = 0;
    zap_stats_foreach(&f->zap, count_any, &n);
    assert_int_equal(n, 0);
    zap_set_keyring(&f->zap, &f->kr);
}

static void test_stats_names(void **state)
{
    fx_t *f = *state;
    f->zap.stats.allowed = 3;
    f->zap.stats.denied[ZAP_DENY_UNKNOWN_KEY] = 5;
    counters_t c = {0};
    zap_stats_foreach(&f->zap, count_stat, &c);
    assert_int_equal(c.n, ZAP_DENY_FULL); /* allowed, and the keyring's refusals */
    assert_int_equal(c.allowed, 3);
    assert_int_equal(c.unknown, 5);
}

/* Without a ZAP handler in the context, a socket set up by
 * zap_secure_socket() admits nobody (ZMQ_ZAP_ENFORCE_DOMAIN), rather than
 * any key at all. */
static void test_fail_closed_without_handler(void **state)
{
    fx_t *f = *state;
    void *ctx = zmq_ctx_new();
    void *srv = zmq_socket(ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(srv, ZMQ_LINGER, &zero, sizeof(zero));
    assert_int_equal(zap_secure_socket(srv, f->server.seck, ZAP_DOMAIN_REQUEST), 0);
    assert_int_equal(zmq_bind(srv, "tcp://127.0.0.1:*"), 0);
    char ep[256];
    size_t len = sizeof(ep);
    zmq_getsockopt(srv, ZMQ_LAST_ENDPOINT, ep, &len);
    void *c = zmq_socket(ctx, ZMQ_DEALER);
    zmq_setsockopt(c, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(c, ZMQ_CURVE_SERVERKEY, f->server.pubk, 32);
    zmq_setsockopt(c, ZMQ_CURVE_PUBLICKEY, f->gao.pubk, 32);
    zmq_setsockopt(c, ZMQ_CURVE_SECRETKEY, f->gao.seck, 32);
    assert_int_equal(zmq_connect(c, ep), 0);
    send_str(c, "anyone there?");
    zmq_pollitem_t it = {srv, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&it, 1, QUIET_MS), 0);
    zmq_close(c);
    zmq_close(srv);
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_decide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_township_admitted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_client_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_mechanisms_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriber_domains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_revokes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pub_rebind_cuts_revoked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_and_admit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_closed_without_handler, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
