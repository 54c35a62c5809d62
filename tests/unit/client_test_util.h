/* client_test_util.h - the fake daemon the unit tests of the publisher
 * (test_client_pub.c, test_client_expiry.c) drive libtally against: a real
 * ZMQ_ROUTER in the test process, bound on ipc:// in a temporary
 * directory, answering HELLO with the limits the test sets and ACKs by
 * hand.  The client is driven without blocking (process) so one thread
 * plays both sides deterministically.  Every function is static inline so
 * that a test file that leaves one unused still builds. */
#ifndef CLIENT_TEST_UTIL_H
#define CLIENT_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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
    char kind; /* 'a' ack, 'r' reject, 'u' unknown fate */
    uint64_t seq;
    int status_or_code;
    int sample;
    uint32_t nsamples;
    char field[80];
    char message[600]; /* 'u': the path it was moved to */
    /* 'u': as tally_unknown_t says */
    uint8_t client_id[16];
    char township[80];
    int64_t time_ms;
    char first_metric[80];
    int64_t first_value;
} event_t;

typedef struct fixture {
    char dir[64];
    char spool[128];
    char ep[160];
    void *zctx;
    void *router;
    event_t ev[64];
    int nev;
    /* The fake daemon answers HELLO with these (-1: not announced). */
    int64_t max_samples, max_msg, client_expiry_ms;
    int hellos;
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

/* The next event of f, cleared, of kind about seq. */
static inline event_t *add_event(fixture_t *f, char kind, uint64_t seq)
{
    assert_true(f->nev < (int)(sizeof f->ev / sizeof f->ev[0]));
    event_t *e = &f->ev[f->nev++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->seq = seq;
    return e;
}

static inline void on_ack(void *ctx, uint64_t seq, int status, uint32_t nsamples)
{
    event_t *e = add_event(ctx, 'a', seq);
    e->status_or_code = status;
    e->nsamples = nsamples;
}

static inline void on_reject(void *ctx, uint64_t seq, int code, int sample, const char *field,
                             const char *message)
{
    event_t *e = add_event(ctx, 'r', seq);
    e->status_or_code = code;
    e->sample = sample;
    snprintf(e->field, sizeof e->field, "%s", field);
    snprintf(e->message, sizeof e->message, "%s", message);
}

static inline void on_unknown(void *ctx, const tally_unknown_t *u)
{
    event_t *e = add_event(ctx, 'u', u->seq);
    e->nsamples = u->nsamples;
    memcpy(e->client_id, u->client_id, 16);
    snprintf(e->township, sizeof e->township, "%s", u->township);
    e->time_ms = u->time_ms;
    snprintf(e->message, sizeof e->message, "%s", u->path);
    if (u->nsamples > 0) {
        snprintf(e->first_metric, sizeof e->first_metric, "%s", u->samples[0].metric);
        e->first_value = u->samples[0].value;
    }
}

static inline int setup(void **state)
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
    f->max_samples = f->max_msg = f->client_expiry_ms = -1;
    *state = f;
    return 0;
}

static inline int teardown(void **state)
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

static inline tally_client_t *client(fixture_t *f, unsigned max_in_flight)
{
    tally_client_opts_t o = {
        .spool_dir = f->spool,
        .backoff_initial_ms = 40,
        .backoff_max_ms = 160,
        .max_in_flight = max_in_flight,
        .on_ack = on_ack,
        .on_reject = on_reject,
        .on_unknown = on_unknown,
        .cb_ctx = f,
    };
    tally_client_t *c;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    return c;
}

static inline int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Send m to the client connection r came from. */
static inline void reply(fixture_t *f, const received_t *r, const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_encode(&sb, m), 0);
    assert_int_equal(zmq_send(f->router, r->id, r->idlen, ZMQ_SNDMORE), (int)r->idlen);
    assert_int_equal(zmq_send(f->router, sb.data, sb.size, 0), (int)sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static inline void welcome(fixture_t *f, const received_t *r, uint64_t req_id)
{
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_WELCOME;
    m.u.welcome.req_id = req_id;
    m.u.welcome.server = proto_str("fake");
    m.u.welcome.pub_endpoint = proto_str("");
    m.u.welcome.ncolumns = 1;
    m.u.welcome.columns[0] = proto_str("total");
    m.u.welcome.max_samples = f->max_samples;
    m.u.welcome.max_msg = f->max_msg;
    m.u.welcome.client_expiry_ms = f->client_expiry_ms;
    m.u.welcome.max_name = m.u.welcome.skew_ms = m.u.welcome.max_age_ms = -1;
    reply(f, r, &m);
}

/* Drive the client and wait up to timeout_ms for one SUBMIT at the fake
 * daemon, answering HELLOs on the way.  Returns false on timeout. */
static inline bool receive(fixture_t *f, tally_client_t *c, int timeout_ms, received_t *r)
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
            fail_msg("the client sent an undecodable message: %s", err.message);
        if (m->type == PROTO_HELLO) {
            f->hellos++;
            welcome(f, r, m->u.hello.req_id);
            free(m);
            continue;
        }
        assert_int_equal(m->type, PROTO_SUBMIT);
        r->seq = m->u.submit.seq;
        r->nsamples = m->u.submit.nsamples;
        free(m);
        return true;
    }
    return false;
}

static inline void ack(fixture_t *f, const received_t *r, uint64_t seq, int status, int code,
                       int sample, const char *field, const char *message)
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
    reply(f, r, &m);
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

static inline bool spooled(fixture_t *f, uint64_t seq)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%020llu.sub", f->spool, (unsigned long long)seq);
    return access(path, F_OK) == 0;
}

#endif
