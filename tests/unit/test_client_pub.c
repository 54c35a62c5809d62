/* Unit tests of the publisher against a fake daemon: a real ZMQ_ROUTER in
 * the test process, bound on ipc:// in a temporary directory, answering
 * ACKs by hand.  The client is driven without blocking (process) so one
 * thread plays both sides deterministically. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "proto.h"
#include "tally.h"

#define T0 1703995200000LL

typedef struct event {
    char kind; /* 'a' ack, 'r' reject */
    uint64_t seq;
    int status_or_code;
    int sample;
    uint32_t nsamples;
    char field[80];
    char message[600];
} event_t;

typedef struct fixture {
    char dir[64];
    char spool[128];
    char ep[160];
    void *zctx;
    void *router;
    event_t ev[64];
    int nev;
} fixture_t;

/* What the fake daemon received: the DEALER's routing id and one body. */
typedef struct received {
    uint8_t id[256];
    size_t idlen;
    uint8_t body[65536];
    size_t len;
    uint64_t seq;
    uint32_t nsamples;
} received_t;

static void on_ack(void *ctx, uint64_t seq, int status, uint32_t nsamples)
{
    fixture_t *f = ctx;
    event_t *e = &f->ev[f->nev++];
    memset(e, 0, sizeof *e);
    e->kind = 'a';
    e->seq = seq;
    e->status_or_code = status;
    e->nsamples = nsamples;
}

static void on_reject(void *ctx, uint64_t seq, int code, int sample, const char *field,
                      const char *message)
{
    fixture_t *f = ctx;
    event_t *e = &f->ev[f->nev++];
    memset(e, 0, sizeof *e);
    e->kind = 'r';
    e->seq = seq;
    e->status_or_code = code;
    e->sample = sample;
    snprintf(e->field, sizeof e->field, "%s", field);
    snprintf(e->message, sizeof e->message, "%s", message);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/tally-pub-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->spool, sizeof f->spool, "%s/spool", f->dir);
    snprintf(f->ep, sizeof f->ep, "ipc://%s/req.sock", f->dir);
    f->zctx = zmq_ctx_new();
    f->router = zmq_socket(f->zctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(f->router, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(f->router, f->ep) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    zmq_close(f->router);
    zmq_ctx_term(f->zctx);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static tally_client_t *client(fixture_t *f, unsigned max_in_flight)
{
    tally_client_opts_t o = {
        .spool_dir = f->spool,
        .backoff_initial_ms = 40,
        .backoff_max_ms = 160,
        .max_in_flight = max_in_flight,
        .on_ack = on_ack,
        .on_reject = on_reject,
        .cb_ctx = f,
    };
    tally_client_t *c;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    return c;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drive the client and wait up to timeout_ms for one SUBMIT at the fake
 * daemon.  Returns false on timeout. */
static bool receive(fixture_t *f, tally_client_t *c, int timeout_ms, received_t *r)
{
    int64_t end = mono_ms() + timeout_ms;
    while (mono_ms() < end) {
        if (c != NULL)
            assert_int_equal(tally_client_process(c), 0);
        zmq_pollitem_t item = {.socket = f->router, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 5) <= 0)
            continue;
        int n = zmq_recv(f->router, r->id, sizeof r->id, 0);
        assert_true(n > 0);
        r->idlen = (size_t)n;
        int more;
        size_t ml = sizeof more;
        zmq_getsockopt(f->router, ZMQ_RCVMORE, &more, &ml);
        assert_true(more); /* one body frame after the routing id */
        n = zmq_recv(f->router, r->body, sizeof r->body, 0);
        assert_true(n > 0);
        r->len = (size_t)n;
        zmq_getsockopt(f->router, ZMQ_RCVMORE, &more, &ml);
        assert_false(more); /* no delimiter, no extra frames */
        proto_msg_t *m = malloc(sizeof *m);
        proto_sample_t samples[64];
        proto_error_t err;
        int rc = proto_decode(r->body, r->len, m, samples, 64, &err);
        if (rc != 0)
            fail_msg("the client sent an undecodable SUBMIT: %s", err.message);
        assert_int_equal(m->type, PROTO_SUBMIT);
        r->seq = m->u.submit.seq;
        r->nsamples = m->u.submit.nsamples;
        free(m);
        return true;
    }
    return false;
}

static void ack(fixture_t *f, const received_t *r, uint64_t seq, int status, int code, int sample,
                const char *field, const char *message)
{
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_ACK;
    m.u.ack.seq = seq;
    m.u.ack.status = (uint8_t)status;
    m.u.ack.code = (uint32_t)code;
    m.u.ack.sample = sample;
    m.u.ack.field = proto_str(field);
    m.u.ack.message = proto_str(message);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_encode(&sb, &m), 0);
    assert_int_equal(zmq_send(f->router, r->id, r->idlen, ZMQ_SNDMORE), (int)r->idlen);
    assert_int_equal(zmq_send(f->router, sb.data, sb.size, 0), (int)sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* Drive the client until cond holds or timeout_ms passes. */
#define PUMP_UNTIL(c, cond, timeout_ms)                                                            \
    do {                                                                                           \
        int64_t end_ = mono_ms() + (timeout_ms);                                                   \
        while (!(cond) && mono_ms() < end_) {                                                      \
            assert_int_equal(tally_client_process(c), 0);                                          \
            usleep(2000);                                                                          \
        }                                                                                          \
    } while (0)

static bool spooled(fixture_t *f, uint64_t seq)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%020llu.sub", f->spool, (unsigned long long)seq);
    return access(path, F_OK) == 0;
}

static void test_accepted(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "disputes.screened", 219, T0), 0);
    assert_int_equal(tally_client_add(c, "disputes.resolved", 216, T0), 0);
    assert_int_equal(tally_client_add(c, "patrols", 45, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *r = malloc(sizeof *r);
    assert_true(receive(f, c, 3000, r));
    /* The bytes on the wire are the bytes in the spool, and the seq was
     * persisted before they were sent. */
    assert_true(spooled(f, 1));
    char path[256];
    snprintf(path, sizeof path, "%s/client.seq", f->spool);
    FILE *fp = fopen(path, "r");
    char text[32] = "";
    assert_non_null(fgets(text, sizeof text, fp));
    fclose(fp);
    assert_string_equal(text, "2\n");
    proto_msg_t *m = malloc(sizeof *m);
    proto_sample_t samples[8];
    assert_int_equal(proto_decode(r->body, r->len, m, samples, 8, NULL), 0);
    assert_int_equal(m->u.submit.seq, 1);
    assert_true(proto_str_eq(m->u.submit.township, "gaoguan"));
    assert_int_equal(m->u.submit.time_ms, T0);
    assert_int_equal(m->u.submit.nsamples, 3);
    assert_true(proto_str_eq(samples[1].metric, "disputes.resolved"));
    assert_int_equal(samples[1].value, 216);
    uint8_t id[16];
    tally_client_id(c, id);
    assert_memory_equal(m->u.submit.client_id, id, 16);
    free(m);
    ack(f, r, 1, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    PUMP_UNTIL(c, tally_client_pending(c) == 0, 3000);
    assert_int_equal(tally_client_pending(c), 0);
    assert_int_equal(f->nev, 1);
    assert_int_equal(f->ev[0].kind, 'a');
    assert_int_equal(f->ev[0].seq, 1);
    assert_int_equal(f->ev[0].status_or_code, TALLY_ACK_ACCEPTED);
    assert_int_equal(f->ev[0].nsamples, 3);
    assert_false(spooled(f, 1));
    assert_int_equal(tally_client_flush(c, 100), 0);
    /* A late ack for something settled changes nothing. */
    ack(f, r, 1, PROTO_ACK_DUPLICATE, 0, -1, "", "");
    assert_int_equal(tally_client_flush(c, 100), 0);
    PUMP_UNTIL(c, false, 50);
    assert_int_equal(f->nev, 1);
    free(r);
    tally_client_destroy(&c);
}

/* Unanswered, a submission is resent byte for byte with the same seq; a
 * "duplicate" answer settles it like an acceptance. */
static void test_resend_same_bytes(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "banners", 19, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    assert_true(receive(f, c, 3000, a));
    /* Resent on the backoff timer (40, 80, 160, 160 ms, each jittered
     * down to half), not in a loop: a handful of copies in 400 ms. */
    int copies = 0;
    int64_t end = mono_ms() + 400;
    while (mono_ms() < end)
        if (receive(f, c, 20, b)) {
            copies++;
            assert_int_equal(a->len, b->len);
            assert_memory_equal(a->body, b->body, a->len);
            assert_int_equal(b->seq, 1);
        }
    assert_true(copies >= 2);
    assert_true(copies <= 10);
    ack(f, b, 1, PROTO_ACK_DUPLICATE, 0, -1, "", "");
    PUMP_UNTIL(c, tally_client_pending(c) == 0, 3000);
    assert_int_equal(f->nev, 1);
    assert_int_equal(f->ev[0].status_or_code, TALLY_ACK_DUPLICATE);
    assert_false(spooled(f, 1));
    free(a);
    free(b);
    tally_client_destroy(&c);
}

static void test_rejected(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "a", 1, T0), 0);
    assert_int_equal(tally_client_add(c, "b", 2, T0), 0);
    assert_int_equal(tally_client_add(c, "c", 3, T0), 0);
    assert_int_equal(tally_client_add(c, "disputes.resolvd", 4, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *r = malloc(sizeof *r);
    assert_true(receive(f, c, 3000, r));
    ack(f, r, 1, PROTO_ACK_REJECTED, 13, 3, "samples[3].metric",
        "metric 'disputes.resolvd' is not in the catalog");
    PUMP_UNTIL(c, tally_client_pending(c) == 0, 3000);
    assert_int_equal(f->nev, 1);
    event_t *e = &f->ev[0];
    assert_int_equal(e->kind, 'r');
    assert_int_equal(e->seq, 1);
    assert_int_equal(e->status_or_code, TALLY_EUNKMETRIC);
    assert_int_equal(e->sample, 3);
    assert_string_equal(e->field, "samples[3].metric");
    assert_string_equal(e->message, "metric 'disputes.resolvd' is not in the catalog");
    assert_string_equal(tally_client_last_error(c),
                        "submission 1 rejected: samples[3].metric: metric 'disputes.resolvd' is "
                        "not in the catalog (UNKNOWN_METRIC)");
    /* Final: out of the spool, never sent again. */
    assert_false(spooled(f, 1));
    while (receive(f, c, 300, r))
        ; /* copies sent before the rejection arrived */
    assert_false(receive(f, c, 400, r));
    assert_int_equal(f->nev, 1);
    free(r);
    tally_client_destroy(&c);
}

/* RATE_LIMITED is retryable: the same bytes come again after a backoff
 * and the later acceptance is the only thing reported. */
static void test_retryable_then_accepted(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "slogans", 25, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    assert_true(receive(f, c, 3000, a));
    ack(f, a, 1, PROTO_ACK_REJECTED, 18, -1, "", "too many submissions from this client");
    assert_true(receive(f, c, 3000, b));
    assert_memory_equal(a->body, b->body, a->len);
    assert_int_equal(f->nev, 0);
    assert_true(spooled(f, 1));
    assert_non_null(strstr(tally_client_last_error(c), "RATE_LIMITED"));
    ack(f, b, 1, PROTO_ACK_REJECTED, 21, -1, "", "journal unavailable"); /* UNAVAILABLE */
    assert_true(receive(f, c, 3000, b));
    assert_memory_equal(a->body, b->body, a->len);
    ack(f, b, 1, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    PUMP_UNTIL(c, tally_client_pending(c) == 0, 3000);
    assert_int_equal(f->nev, 1);
    assert_int_equal(f->ev[0].kind, 'a');
    assert_false(spooled(f, 1));
    free(a);
    free(b);
    tally_client_destroy(&c);
}

/* Nobody answers: flush times out with everything kept; once the daemon
 * answers, a later flush completes. */
static void test_flush_timeout_then_delivery(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "drills.emergency", 5, T0), 0);
    int64_t t = mono_ms();
    assert_int_equal(tally_client_flush(c, 200), TALLY_ETIMEDOUT);
    assert_true(mono_ms() - t >= 190);
    assert_int_equal(tally_client_pending(c), 1);
    assert_true(spooled(f, 1));
    received_t *r = malloc(sizeof *r);
    assert_true(receive(f, NULL, 1000, r)); /* sent during the flush */
    ack(f, r, 1, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    assert_int_equal(tally_client_flush(c, 3000), 0);
    assert_int_equal(tally_client_pending(c), 0);
    assert_int_equal(f->nev, 1);
    free(r);
    tally_client_destroy(&c);
}

/* A client that dies with a submission unacknowledged: the next one on the
 * same spool sends the very same bytes (same client id and seq), so the
 * daemon can count it exactly once. */
static void test_restart_delivers_spooled(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "safety.handouts", 1200, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    assert_true(receive(f, c, 3000, a));
    tally_client_destroy(&c); /* "crash" */
    while (receive(f, NULL, 100, b))
        ;
    c = client(f, 0);
    assert_int_equal(tally_client_pending(c), 1);
    assert_true(receive(f, c, 3000, b));
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->body, b->body, a->len);
    ack(f, b, 1, PROTO_ACK_DUPLICATE, 0, -1, "", "");
    assert_int_equal(tally_client_flush(c, 3000), 0);
    assert_false(spooled(f, 1));
    assert_int_equal(f->nev, 1);
    assert_int_equal(f->ev[0].nsamples, 1);
    free(a);
    free(b);
    tally_client_destroy(&c);
}

/* At most max_in_flight submissions beyond the oldest unacknowledged one
 * are ever on the wire. */
static void test_in_flight_window(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 2);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tally_client_add(c, "patrols", i, T0 + i), 0);
    assert_int_equal(tally_client_send(c), 0);
    assert_int_equal(tally_client_pending(c), 5);
    received_t *r = malloc(sizeof *r);
    bool seen[8] = {false};
    int64_t end = mono_ms() + 400;
    while (mono_ms() < end)
        if (receive(f, c, 50, r)) {
            assert_true(r->seq <= 2);
            seen[r->seq] = true;
        }
    assert_true(seen[1] && seen[2]);
    /* Acknowledging 2 does not open the window: 1 is still the oldest. */
    ack(f, r, 2, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    end = mono_ms() + 300;
    while (mono_ms() < end)
        if (receive(f, c, 50, r))
            assert_true(r->seq <= 2);
    ack(f, r, 1, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    end = mono_ms() + 400;
    while (mono_ms() < end)
        if (receive(f, c, 50, r)) {
            assert_true(r->seq >= 1 && r->seq <= 4);
            seen[r->seq] = true;
        }
    assert_true(seen[3] && seen[4]);
    assert_false(seen[5]);
    ack(f, r, 3, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    ack(f, r, 4, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    /* Now 5 goes out. */
    while (!seen[5] && receive(f, c, 1000, r))
        seen[r->seq] = true;
    assert_true(seen[5]);
    ack(f, r, 5, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    PUMP_UNTIL(c, tally_client_pending(c) == 0, 2000);
    assert_int_equal(f->nev, 5);
    assert_int_equal(tally_client_pending(c), 0);
    free(r);
    tally_client_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resend_same_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retryable_then_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_timeout_then_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_delivers_spooled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_flight_window, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
