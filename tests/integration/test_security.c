/* tallyd secured with CURVE: who may submit, read and subscribe, what a
 * reload revokes, and the per-township rate limit.  Keys are made by the
 * fixture (security_test_util.h) with zmq_curve_keypair and written as
 * ZeroMQ certificates; the daemon is the real binary on ipc:// endpoints.
 * The tally command with keys is test_security_cli.c. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "harness.h"
#include "security_test_util.h"

#define NO_REPLY_MS 1500 /* how long "gets nothing" is watched */

/* A SUBMIT of one sample; no reply fails the test with tallyd's log. */
static harness_ack_t submit(fx_t *f, harness_client_t *c, uint64_t seq, const char *town, int64_t v)
{
    harness_ack_t a;
    int rc = harness_submit_one(c, seq, town, harness_now_ms(), "patrols", v, &a);
    if (rc != 0)
        fail_msg("no reply to SUBMIT seq %" PRIu64 " for %s: %s; tallyd's log:\n%s", seq, town,
                 tally_errname(rc), harness_log(&f->h));
    return a;
}

static void expect_status(const harness_ack_t *a, int status, int code)
{
    char buf[800];
    if (a->type != PROTO_ACK || a->status != status || a->code != code)
        fail_msg("expected status %d code %d, got %s", status, code,
                 harness_ack_str(a, buf, sizeof(buf)));
}

/* True when c gets no reply at all to a SUBMIT and a PING. */
static bool gets_nothing(harness_client_t *c, const char *town)
{
    if (harness_send_submit(c, 1, town, harness_now_ms(), &(harness_sample_t){"patrols", 1}, 1) !=
        0)
        return false;
    proto_msg_t m = {.type = PROTO_PING};
    m.u.ping.req_id = 99;
    m.u.ping.time_ms = harness_now_ms();
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    bool sent = proto_encode(&b, &m) == 0 && harness_send_raw(c, b.data, b.size) == 0;
    msgpack_sbuffer_destroy(&b);
    char buf[1024];
    return sent && harness_recv_raw(c, buf, sizeof(buf), NO_REPLY_MS) == TALLY_ETIMEDOUT;
}

static int64_t counter(fx_t *f, const char *name)
{
    harness_client_t c;
    open_as(f, &c, &f->screen);
    int64_t v = harness_stats(&c, name);
    harness_client_close(&c);
    return v;
}

/* Lines of the log holding both a and b. */
static size_t lines_with(fx_t *f, const char *a, const char *b)
{
    size_t n = 0;
    for (const char *p = harness_log(&f->h); *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *x = memmem(p, len, a, strlen(a));
        if (x && memmem(p, len, b, strlen(b)))
            n++;
        p += len + (end != NULL);
    }
    return n;
}

/* SIGHUP, then wait for the n-th "keys in force" line. */
static void reload(fx_t *f, size_t n)
{
    assert_int_equal(kill(f->h.pid, SIGHUP), 0);
    int64_t deadline = harness_mono_ms() + 5000;
    while (lines_with(f, "reload: keys in force", "") < n && harness_mono_ms() < deadline)
        usleep(20000);
    if (lines_with(f, "reload: keys in force", "") < n)
        fail_msg("reload %zu did not finish:\n%s", n, harness_log(&f->h));
}

static void unlink_key(fx_t *f, const char *name)
{
    char p[HARNESS_PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", f->h.dir, name);
    assert_int_equal(unlink(p), 0);
}

/* A township key submits its own figures and no one else's; a subscriber
 * key submits nothing; a township key reads nothing. */
static void test_township_submits_only_its_own(void **state)
{
    fx_t *f = *state;
    start_secured(f, NULL);
    assert_non_null(
        strstr(harness_log(&f->h), "secured with CURVE: 2 township keys, 2 subscriber"));
    harness_client_t g, b, s;
    open_as(f, &g, &f->gaoguan);
    open_as(f, &b, &f->bashan);
    open_as(f, &s, &f->screen);
    harness_ack_t a = submit(f, &g, 1, "gaoguan", 5);
    expect_status(&a, PROTO_ACK_ACCEPTED, 0);
    a = submit(f, &g, 2, "bashan", 100);
    expect_status(&a, PROTO_ACK_REJECTED, -TALLY_EFORBIDDEN);
    assert_string_equal(a.field, "township");
    assert_non_null(strstr(a.message, "'gaoguan'"));
    assert_non_null(strstr(a.message, "'bashan'"));
    expect_status((a = submit(f, &b, 1, "bashan", 7), &a), PROTO_ACK_ACCEPTED, 0);
    a = submit(f, &s, 1, "gaoguan", 1000);
    expect_status(&a, PROTO_ACK_REJECTED, -TALLY_EFORBIDDEN);
    assert_non_null(strstr(a.message, "subscriber 'screen'"));
    /* Reading tallies needs a subscriber key; the daemon's clock does not
     * (CLOCK_REQ: [1, 23, req_id 5] answered by a CLOCK of 6 elements). */
    assert_int_equal(harness_snapshot(&g, "", &f->t), TALLY_EFORBIDDEN);
    assert_int_equal(harness_send_raw(&g, "\x93\x01\x17\x05", 4), 0);
    uint8_t reply[256];
    long n = harness_recv_raw(&g, reply, sizeof reply, 5000);
    assert_true(n > 4);
    assert_memory_equal(reply, "\x96\x01\x18\x05", 4);
    /* The refused seq 2 was not recorded: the same seq for the own
     * township is new. */
    expect_status((a = submit(f, &g, 2, "gaoguan", 1), &a), PROTO_ACK_ACCEPTED, 0);

    assert_int_equal(total(f, "gaoguan"), 6);
    assert_int_equal(total(f, "bashan"), 7);
    assert_int_equal(total(f, ""), 13);
    assert_int_equal(counter(f, "tallyd_submissions_accepted_total"), 3);
    assert_int_equal(counter(f, "tallyd_rejected_forbidden_total"), 3);
    assert_true(counter(f, "tallyd_zap_allowed_total") >= 4);
    harness_client_close(&g);
    harness_client_close(&b);
    harness_client_close(&s);
}

/* A key in no directory, a plaintext (NULL mechanism) client and a client
 * that has the wrong server key get no reply at all, and apply nothing. */
static void test_unknown_and_plaintext_clients_get_nothing(void **state)
{
    fx_t *f = *state;
    start_secured(f, NULL);
    harness_client_t c;
    open_as(f, &c, &f->stranger);
    assert_true(gets_nothing(&c, "gaoguan"));
    harness_client_close(&c);
    /* Proves the ZAP handler is in force: CURVE without one would admit
     * any key. */
    assert_true(counter(f, "tallyd_zap_denied_unknown_key_total") >= 1);

    assert_int_equal(harness_client_open_curve(&f->h, &c, NULL, NULL, NULL), 0);
    assert_true(gets_nothing(&c, "gaoguan"));
    harness_client_close(&c);

    /* The gaoguan pair, but not the daemon's public key. */
    assert_int_equal(
        harness_client_open_curve(&f->h, &c, f->stranger.pub, f->gaoguan.pub, f->gaoguan.sec), 0);
    assert_true(gets_nothing(&c, "gaoguan"));
    harness_client_close(&c);

    assert_int_equal(counter(f, "tallyd_submissions_accepted_total"), 0);
    assert_int_equal(total(f, "gaoguan"), 0);
}

/* ---- a ZMTP 3.0 peer by hand ---------------------------------------------
 * libzmq lets a peer put any property in its READY command, and on a NULL
 * mechanism connection a "User-Id" from there reaches zmq_msg_gets().  No
 * libzmq option sends it, so this peer speaks ZMTP itself. */

static int zmtp_connect(const char *endpoint)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_int_equal(strncmp(endpoint, "ipc://", 6), 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", endpoint + 6);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        fail_msg("connect %s: %s", sa.sun_path, strerror(errno));
    return fd;
}

static void put_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the peer hung up: what follows shows it */
        p += n;
        len -= (size_t)n;
    }
}

/* Read exactly len bytes within timeout_ms; false on EOF or timeout. */
static bool get_all(int fd, void *buf, size_t len, int timeout_ms)
{
    char *p = buf;
    int64_t deadline = harness_mono_ms() + timeout_ms;
    while (len > 0) {
        int64_t left = deadline - harness_mono_ms();
        struct pollfd pf = {fd, POLLIN, 0};
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            return false;
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void put_frame(int fd, uint8_t flags, const void *body, size_t len)
{
    assert_true(len <= 255);
    uint8_t head[2] = {flags, (uint8_t)len};
    put_all(fd, head, 2);
    put_all(fd, body, len);
}

/* Greeting (NULL mechanism, as client) and READY with a DEALER's
 * Socket-Type and the claimed User-Id.  False when the peer hung up. */
static bool zmtp_handshake(int fd, const char *user_id)
{
    uint8_t g[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0, 'N', 'U', 'L', 'L'};
    put_all(fd, g, sizeof(g));
    uint8_t peer[64];
    if (!get_all(fd, peer, sizeof(peer), 2000))
        return false;
    uint8_t ready[256];
    size_t n = 0;
    ready[n++] = 5;
    memcpy(ready + n, "READY", 5);
    n += 5;
    const char *props[2][2] = {{"Socket-Type", "DEALER"}, {"User-Id", user_id}};
    for (int i = 0; i < 2; i++) {
        size_t kl = strlen(props[i][0]), vl = strlen(props[i][1]);
        ready[n++] = (uint8_t)kl;
        memcpy(ready + n, props[i][0], kl);
        n += kl;
        uint8_t be[4] = {0, 0, 0, (uint8_t)vl};
        memcpy(ready + n, be, 4);
        n += 4;
        memcpy(ready + n, props[i][1], vl);
        n += vl;
    }
    put_frame(fd, 0x04, ready, n);
    return true;
}

/* The next message frame (command frames are skipped) into buf; its length,
 * or -1 on EOF or timeout. */
static long zmtp_recv(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
    for (;;) {
        uint8_t head[9];
        if (!get_all(fd, head, 2, timeout_ms))
            return -1;
        uint64_t len = head[1];
        if (head[0] & 0x02) {
            if (!get_all(fd, head + 2, 7, timeout_ms))
                return -1;
            len = 0;
            for (int i = 1; i < 9; i++)
                len = len << 8 | head[i];
        }
        if (len > cap || !get_all(fd, buf, (size_t)len, timeout_ms))
            return -1;
        if (!(head[0] & 0x04))
            return (long)len;
    }
}

static void encode_submit(msgpack_sbuffer *b, const char *town, int64_t v)
{
    proto_sample_t sample = {proto_str("patrols"), v};
    proto_msg_t m = {.type = PROTO_SUBMIT};
    memset(m.u.submit.client_id, 7, sizeof(m.u.submit.client_id));
    m.u.submit.seq = 1;
    m.u.submit.township = proto_str(town);
    m.u.submit.time_ms = harness_now_ms();
    m.u.submit.nsamples = 1;
    m.u.submit.samples = &sample;
    assert_int_equal(proto_encode(b, &m), 0);
}

/* The premise, shown on a plain ROUTER of our own: a NULL-mechanism peer
 * sets the User-Id that zmq_msg_gets() reports.  Then the same peer
 * against the secured tallyd gets nothing and applies nothing. */
static void test_null_peer_claiming_user_id_gets_nothing(void **state)
{
    fx_t *f = *state;
    char uid[128];
    snprintf(uid, sizeof(uid), "town:gaoguan:%s", f->gaoguan.pub);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    encode_submit(&b, "gaoguan", 500);

    char ep[HARNESS_PATH_MAX];
    snprintf(ep, sizeof(ep), "ipc://%s/probe", f->h.dir);
    void *router = zmq_socket(f->h.zctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof(zero));
    assert_int_equal(zmq_bind(router, ep), 0);
    int fd = zmtp_connect(ep);
    assert_true(zmtp_handshake(fd, uid));
    put_frame(fd, 0x00, b.data, b.size);
    zmq_msg_t rid, body;
    zmq_msg_init(&rid);
    zmq_msg_init(&body);
    zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&it, 1, 3000), 1);
    assert_true(zmq_msg_recv(&rid, router, 0) >= 0);
    assert_true(zmq_msg_recv(&body, router, 0) >= 0);
    const char *claimed = zmq_msg_gets(&body, "User-Id");
    assert_non_null(claimed);
    assert_string_equal(claimed, uid);
    zmq_msg_close(&rid);
    zmq_msg_close(&body);
    close(fd);
    zmq_close(router);

    start_secured(f, NULL);
    fd = zmtp_connect(f->h.req_endpoint);
    if (zmtp_handshake(fd, uid))
        put_frame(fd, 0x00, b.data, b.size);
    uint8_t reply[1024];
    assert_int_equal(zmtp_recv(fd, reply, sizeof(reply), NO_REPLY_MS), -1);
    close(fd);
    msgpack_sbuffer_destroy(&b);
    assert_int_equal(counter(f, "tallyd_submissions_accepted_total"), 0);
    assert_int_equal(total(f, "gaoguan"), 0);
}

/* A reload that removes a township key stops its open connection at the
 * next message and refuses new handshakes; an added key works at once. */
static void test_revoked_township_key_stops_after_reload(void **state)
{
    fx_t *f = *state;
    start_secured(f, NULL);
    harness_client_t g, b;
    open_as(f, &g, &f->gaoguan);
    open_as(f, &b, &f->bashan);
    harness_ack_t a = submit(f, &g, 1, "gaoguan", 5);
    expect_status(&a, PROTO_ACK_ACCEPTED, 0);

    unlink_key(f, "keys/towns/gaoguan.key");
    reload(f, 1);
    assert_non_null(strstr(harness_log(&f->h), "1 township key(s) revoked"));
    a = submit(f, &g, 2, "gaoguan", 50);
    expect_status(&a, PROTO_ACK_REJECTED, -TALLY_EFORBIDDEN);
    assert_non_null(strstr(a.message, "no longer admitted"));
    assert_int_equal(harness_ping(&g, NULL), TALLY_EFORBIDDEN);
    harness_client_t g2;
    open_as(f, &g2, &f->gaoguan);
    assert_true(gets_nothing(&g2, "gaoguan"));
    harness_client_close(&g2);
    expect_status((a = submit(f, &b, 1, "bashan", 7), &a), PROTO_ACK_ACCEPTED, 0);

    /* A new key for gaoguan, in the one-directory-per-township form. */
    pair_t fresh;
    make_pair(&fresh);
    assert_int_equal(
        harness_write_cert(&f->h, "keys/towns/gaoguan/office2.key", fresh.pub, NULL, NULL, 0), 0);
    reload(f, 2);
    open_as(f, &g2, &fresh);
    expect_status((a = submit(f, &g2, 1, "gaoguan", 11), &a), PROTO_ACK_ACCEPTED, 0);
    harness_client_close(&g2);
    assert_int_equal(total(f, "gaoguan"), 16);
    assert_int_equal(total(f, "bashan"), 7);

    /* A key directory that does not load refuses the whole reload: the
     * keys in force stay. */
    unlink_key(f, "keys/towns/bashan.key");
    assert_int_equal(harness_write_file(&f->h, "keys/towns/junk.key", "curve\n", NULL, 0), 0);
    assert_int_equal(kill(f->h.pid, SIGHUP), 0);
    assert_int_equal(harness_wait_log(&f->h, "reload refused", 5000), 0);
    assert_non_null(strstr(harness_log(&f->h), "junk.key"));
    expect_status((a = submit(f, &b, 2, "bashan", 1), &a), PROTO_ACK_ACCEPTED, 0);
    harness_client_close(&g);
    harness_client_close(&b);
}

static bool got_update(harness_sub_t *s, void *ctx)
{
    harness_value_t v;
    return harness_table_get(&s->table, "patrols", "gaoguan", "total", &v) && v.present &&
           v.num == *(int64_t *)ctx;
}

/* Subscribing needs a subscriber key; a revoked subscriber is cut off by
 * the reload while the others reconnect and go on. */
static void test_subscribers_need_an_allowed_key(void **state)
{
    fx_t *f = *state;
    start_secured(f, NULL);
    harness_sub_t *screen = &f->subs[0], *wall = &f->subs[1];
    harness_sub_t bad;
    const pair_t *refused[] = {&f->stranger, &f->gaoguan};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(harness_sub_open_curve(&f->h, &bad, "u/", NULL, NULL, f->server.pub,
                                                refused[i]->pub, refused[i]->sec),
                         TALLY_ETIMEDOUT);
        assert_int_equal(bad.heartbeats + bad.updates, 0);
        harness_sub_close(&bad);
    }
    assert_int_equal(harness_sub_open_curve(&f->h, &bad, "u/", NULL, NULL, NULL, NULL, NULL),
                     TALLY_ETIMEDOUT);
    harness_sub_close(&bad);
    assert_true(counter(f, "tallyd_zap_denied_domain_total") >= 1);

    assert_int_equal(harness_sub_open_curve(&f->h, screen, "u/", NULL, NULL, f->server.pub,
                                            f->screen.pub, f->screen.sec),
                     0);
    assert_int_equal(harness_sub_open_curve(&f->h, wall, "u/", NULL, NULL, f->server.pub,
                                            f->wall.pub, f->wall.sec),
                     0);
    harness_client_t g;
    open_as(f, &g, &f->gaoguan);
    harness_ack_t a = submit(f, &g, 1, "gaoguan", 3);
    expect_status(&a, PROTO_ACK_ACCEPTED, 0);
    int64_t want = 3;
    assert_int_equal(harness_sub_until(screen, got_update, &want, 3000), 0);
    assert_int_equal(harness_sub_until(wall, got_update, &want, 3000), 0);

    unlink_key(f, "keys/subs/wall.key");
    reload(f, 1);
    assert_non_null(strstr(harness_log(&f->h), "1 subscriber key(s) revoked"));
    /* Whatever was queued before the cut arrives; then nothing. */
    while (harness_sub_poll(wall, 300) > 0)
        ;
    uint64_t hb = wall->heartbeats, up = wall->updates;
    while (harness_sub_poll(screen, 100) > 0)
        ;
    uint64_t screen_before = screen->heartbeats;
    /* The screen reconnects by itself and subscribes again (the prompt
     * heartbeat it then gets says so); what is published meanwhile it
     * misses (a real subscriber sees the gap and takes a snapshot). */
    int64_t deadline = harness_mono_ms() + 5000;
    while (lines_with(f, "admitted subscriber 'screen'", "on tally-pub") < 2 ||
           counter(f, "tallyd_subscribers") != 1 || screen->heartbeats == screen_before) {
        assert_true(harness_mono_ms() < deadline);
        harness_sub_poll(screen, 50);
    }
    expect_status((a = submit(f, &g, 2, "gaoguan", 4), &a), PROTO_ACK_ACCEPTED, 0);
    want = 7;
    assert_int_equal(harness_sub_until(screen, got_update, &want, 5000), 0);
    uint64_t screen_hb = screen->heartbeats;
    harness_sub_poll(wall, 2000);
    assert_int_equal(wall->heartbeats, hb);
    assert_int_equal(wall->updates, up);
    assert_false(got_update(wall, &want));
    assert_int_equal(harness_sub_poll(screen, 1000) > 0, 1);
    assert_true(screen->heartbeats > screen_hb);
    harness_client_close(&g);
}

/* One township flooding is slowed down with a retryable RATE_LIMITED while
 * another is served; what was acknowledged is exactly what was counted. */
static void test_flood_is_rate_limited_per_township(void **state)
{
    fx_t *f = *state;
    start_secured(f, "[limits]\nrate = 100\nburst = 100\n");
    harness_client_t g, b;
    open_as(f, &g, &f->gaoguan);
    open_as(f, &b, &f->bashan);
    enum { FLOOD = 50, PER = 10 };
    static const char *const metrics[PER] = {"patrols", "m1", "m2", "m3", "m4",
                                             "m5",      "m6", "m7", "m8", "m9"};
    harness_sample_t samples[PER];
    for (int i = 0; i < PER; i++)
        samples[i] = (harness_sample_t){metrics[i], 1};
    int64_t t = harness_now_ms();
    uint64_t bseq = 0;
    for (uint64_t seq = 1; seq <= FLOOD; seq++) {
        assert_int_equal(harness_send_submit(&g, seq, "gaoguan", t, samples, PER), 0);
        if (seq % 10 == 0) {
            harness_ack_t a = submit(f, &b, ++bseq, "bashan", 1);
            expect_status(&a, PROTO_ACK_ACCEPTED, 0);
        }
    }
    /* Refusals are sent at once, acceptances once journaled: the ACKs
     * come in any order. */
    int accepted = 0, limited = 0;
    uint64_t first_limited = 0;
    bool seen[FLOOD + 1] = {false};
    for (int n = 0; n < FLOOD; n++) {
        harness_ack_t a;
        assert_int_equal(harness_recv_reply(&g, &a, HARNESS_REPLY_TIMEOUT_MS), 0);
        assert_int_equal(a.type, PROTO_ACK);
        assert_true(a.seq >= 1 && a.seq <= FLOOD && !seen[a.seq]);
        seen[a.seq] = true;
        if (a.status == PROTO_ACK_ACCEPTED) {
            accepted++;
            continue;
        }
        expect_status(&a, PROTO_ACK_REJECTED, -TALLY_ERATELIMIT);
        assert_true(tally_err_retryable(-a.code));
        assert_non_null(strstr(a.message, "township 'gaoguan' exceeds 100 samples/s"));
        limited++;
        if (first_limited == 0 || a.seq < first_limited)
            first_limited = a.seq;
    }
    /* The bucket holds 10 submissions and refills 1 every 100 ms: most of
     * a flood sent at once is refused, even on a slow machine. */
    if (limited < FLOOD / 5 || accepted < 100 / PER)
        fail_msg("%d accepted, %d rate limited of %d submissions", accepted, limited, FLOOD);
    assert_int_equal(total(f, "gaoguan"), accepted);
    assert_int_equal(total(f, "bashan"), (int64_t)bseq);
    assert_int_equal(counter(f, "tallyd_rejected_rate_limited_total"), limited);
    /* Resent by clients: not refused for good (the alert's counter). */
    assert_int_equal(counter(f, "tallyd_submissions_refused_for_good_total"), 0);
    assert_int_equal(counter(f, "tallyd_submissions_accepted_total"), accepted + (int)bseq);

    /* Retryable: the same bytes, later, are accepted. */
    usleep(200000);
    harness_ack_t a;
    assert_int_equal(harness_submit(&g, first_limited, "gaoguan", t, samples, PER, &a), 0);
    expect_status(&a, PROTO_ACK_ACCEPTED, 0);
    assert_int_equal(total(f, "gaoguan"), accepted + 1);
    harness_client_close(&g);
    harness_client_close(&b);
}

/* De-duplication is per identity: a township using another's client id
 * cannot make the other's submissions duplicates; and it stays so across
 * a restart (the journal and checkpoint derive the same key). */
static void test_dedup_is_per_identity(void **state)
{
    fx_t *f = *state;
    start_secured(f, NULL);
    harness_client_t g, b;
    open_as(f, &g, &f->gaoguan);
    open_as(f, &b, &f->bashan);
    memcpy(g.client_id, b.client_id, sizeof(g.client_id));
    uint8_t id[PROTO_CLIENT_ID_LEN];
    memcpy(id, b.client_id, sizeof(id));
    harness_ack_t a;
    for (uint64_t seq = 1; seq <= 3; seq++)
        expect_status((a = submit(f, &g, seq, "gaoguan", 1), &a), PROTO_ACK_ACCEPTED, 0);
    expect_status((a = submit(f, &b, 1, "bashan", 10), &a), PROTO_ACK_ACCEPTED, 0);
    expect_status((a = submit(f, &b, 1, "bashan", 10), &a), PROTO_ACK_DUPLICATE, 0);
    harness_client_close(&g);
    harness_client_close(&b);

    assert_int_equal(harness_restart(&f->h, NULL), 0);
    open_as(f, &g, &f->gaoguan);
    open_as(f, &b, &f->bashan);
    memcpy(g.client_id, id, sizeof(id));
    memcpy(b.client_id, id, sizeof(id));
    expect_status((a = submit(f, &g, 3, "gaoguan", 1), &a), PROTO_ACK_DUPLICATE, 0);
    expect_status((a = submit(f, &b, 1, "bashan", 10), &a), PROTO_ACK_DUPLICATE, 0);
    expect_status((a = submit(f, &b, 2, "bashan", 10), &a), PROTO_ACK_ACCEPTED, 0);
    assert_int_equal(total(f, "gaoguan"), 3);
    assert_int_equal(total(f, "bashan"), 20);
    harness_client_close(&g);
    harness_client_close(&b);
}

/* Turning CURVE on (a restart) never applies a resend twice: what was
 * recorded under the plain client id is still a duplicate. */
static void test_turning_curve_on_keeps_duplicates(void **state)
{
    fx_t *f = *state;
    harness_set_curve(&f->h, NULL, NULL, NULL);
    assert_int_equal(harness_start(&f->h, "[journal]\nsync = never\n", NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    harness_ack_t a;
    expect_status((a = submit(f, &c, 1, "gaoguan", 2), &a), PROTO_ACK_ACCEPTED, 0);
    uint8_t id[PROTO_CLIENT_ID_LEN];
    memcpy(id, c.client_id, sizeof(id));
    harness_client_close(&c);

    assert_int_equal(harness_write_file(&f->h, "tallyd.conf", secured_conf(f, NULL), NULL, 0), 0);
    harness_set_curve(&f->h, f->server.pub, f->screen.pub, f->screen.sec);
    assert_int_equal(harness_restart(&f->h, NULL), 0);
    open_as(f, &c, &f->gaoguan);
    memcpy(c.client_id, id, sizeof(id));
    expect_status((a = submit(f, &c, 1, "gaoguan", 2), &a), PROTO_ACK_DUPLICATE, 0);
    expect_status((a = submit(f, &c, 2, "gaoguan", 3), &a), PROTO_ACK_ACCEPTED, 0);
    assert_int_equal(total(f, "gaoguan"), 5);
    harness_client_close(&c);
}

/* Whether the checkpoint files of the state directory hold the len bytes
 * at want. */
static bool checkpoints_hold(fx_t *f, const void *want, size_t len)
{
    DIR *dir = opendir(f->h.state_dir);
    assert_non_null(dir);
    bool found = false;
    for (struct dirent *de; !found && (de = readdir(dir)) != NULL;) {
        size_t n = strlen(de->d_name);
        if (n < 4 || strcmp(de->d_name + n - 4, ".ckp") != 0)
            continue;
        char path[HARNESS_PATH_MAX + 300];
        snprintf(path, sizeof(path), "%s/%s", f->h.state_dir, de->d_name);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        static uint8_t buf[1 << 20];
        size_t got = fread(buf, 1, sizeof(buf), fp);
        fclose(fp);
        found = memmem(buf, got, want, len) != NULL;
    }
    closedir(dir);
    return found;
}

/* The de-duplication key of a secured daemon is the first 16 bytes of
 * SHA-256 of "tally-dedup-1", NUL, the township's length and name and the
 * client id, derived here apart from the daemon:
 *   printf 'tally-dedup-1\0\7gaoguan' >m
 *   printf '\1\2\3\4\5\6\7\10\11\12\13\14\15\16\17\20' >>m
 *   sha256sum m
 * A clean stop writes the keys to the checkpoint.  Another derivation would
 * make the resends of a checkpoint written before it new again. */
static void test_dedup_key_is_sha256_of_township_and_client(void **state)
{
    fx_t *f = *state;
    static const uint8_t key[PROTO_CLIENT_ID_LEN] = {0x90, 0xa7, 0xa0, 0x02, 0x15, 0x3c,
                                                     0xc4, 0xd8, 0xe1, 0x6e, 0xac, 0x1b,
                                                     0x94, 0xea, 0xcd, 0x34};
    start_secured(f, NULL);
    harness_client_t g;
    open_as(f, &g, &f->gaoguan);
    for (size_t i = 0; i < sizeof(g.client_id); i++)
        g.client_id[i] = (uint8_t)(i + 1);
    harness_ack_t a;
    expect_status((a = submit(f, &g, 1, "gaoguan", 4), &a), PROTO_ACK_ACCEPTED, 0);
    harness_client_close(&g);
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    assert_true(checkpoints_hold(f, key, sizeof(key)));
    assert_false(checkpoints_hold(f, g.client_id, sizeof(g.client_id)));
}

/* Key settings that cannot work stop the start with status 2 and a line
 * naming the problem. */
static void test_bad_key_settings_stop_the_start(void **state)
{
    fx_t *f = *state;
    harness_t *h = &f->h;
    char conf[HARNESS_PATH_MAX], state_dir[HARNESS_PATH_MAX], bad[HARNESS_PATH_MAX];
    snprintf(conf, sizeof(conf), "%s/bad.conf", h->dir);
    snprintf(state_dir, sizeof(state_dir), "%s/state", h->dir);
    const char *args[] = {"-c", conf, "-s", state_dir, "-r", h->req_endpoint, "-p", h->pub_endpoint,
                          NULL};
    char text[1024], out[4096];
    struct {
        const char *security;
        const char *expect;
    } cases[] = {
        {"server_secret_key = @/keys/server.key_secret\n",
         "none of township_keys, subscriber_keys and admin_keys"},
        {"township_keys = @/keys/towns\n", "server_secret_key is not"},
        {"admin_keys = @/keys/towns\n", "admin_keys is set but server_secret_key is not"},
        {"server_secret_key = @/keys/server.key\ntownship_keys = @/keys/towns\n", "secret"},
        {"server_secret_key = @/keys/server.key_secret\ntownship_keys = @/keys/broken\n",
         "junk.key"},
        {"server_secret_key = @/keys/world_secret\ntownship_keys = @/keys/towns\n", "world_secret"},
        /* The documented credential path, outside the service: the line
         * says why it is missing (an operator's --check-config before the
         * first start). */
        {"server_secret_key = /run/credentials/tallyd.service/server.key_secret\n"
         "township_keys = @/keys/towns\n",
         "server.key_secret: cannot open: No such file or directory (a credential systemd passes "
         "only to the running service"},
    };
    unsetenv("CREDENTIALS_DIRECTORY");
    assert_int_equal(harness_mkdir(h, "keys/broken", NULL, 0), 0);
    assert_int_equal(
        harness_write_file(h, "keys/broken/junk.key", "curve\n    public-key = \"x\"\n", NULL, 0),
        0);
    assert_int_equal(
        harness_write_cert(h, "keys/world_secret", f->server.pub, f->server.sec, bad, sizeof(bad)),
        0);
    assert_int_equal(chmod(bad, 0604), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* "@" stands for the test's directory. */
        size_t n = (size_t)snprintf(text, sizeof(text), "[security]\n");
        for (const char *p = cases[i].security; *p && n + HARNESS_DIR_MAX < sizeof(text); p++)
            n += (size_t)(*p == '@' ? snprintf(text + n, sizeof(text) - n, "%s", h->dir)
                                    : snprintf(text + n, sizeof(text) - n, "%c", *p));
        assert_int_equal(harness_write_file(h, "bad.conf", text, NULL, 0), 0);
        int st = harness_run(args, out, sizeof(out), 10000);
        if (st != 2 || strstr(out, cases[i].expect) == NULL)
            fail_msg("case %zu: status %d, expected 2 and '%s' in:\n%s", i, st, cases[i].expect,
                     out);
        /* --check-config reads the keys too, and says the same. */
        const char *check[] = {"--check-config", conf, NULL};
        st = harness_run(check, out, sizeof(out), 10000);
        if (st != 2 || strstr(out, cases[i].expect) == NULL)
            fail_msg("case %zu, --check-config: status %d, expected 2 and '%s' in:\n%s", i, st,
                     cases[i].expect, out);
    }
    assert_int_equal(harness_write_file(h, "bad.conf", secured_conf(f, NULL), NULL, 0), 0);
    const char *check[] = {"--check-config", conf, NULL};
    int st = harness_run(check, out, sizeof(out), 10000);
    if (st != 0 || strstr(out, "CURVE with 2 township, 2 subscriber and 0 admin keys") == NULL)
        fail_msg("--check-config of the secured configuration: status %d:\n%s", st, out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_township_submits_only_its_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_plaintext_clients_get_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_null_peer_claiming_user_id_gets_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_revoked_township_key_stops_after_reload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_subscribers_need_an_allowed_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flood_is_rate_limited_per_township, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_is_per_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_turning_curve_on_keeps_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_key_is_sha256_of_township_and_client, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_key_settings_stop_the_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}