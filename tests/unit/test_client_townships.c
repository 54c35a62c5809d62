/* Unit tests of libtally's township list (tally_townships_req,
 * PROTOCOL.md 8.25) against a scripted daemon: a ROUTER on an ipc://
 * socket in a thread of this process that answers as a daemon of this
 * version (TOWNSHIPS pages), as one from before TOWNSHIPS_REQ (UNKNOWN_TYPE
 * with req_id 0, and a snapshot), or with pages that go backwards. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "proto.h"
#include "tally.h"

enum mode { PAGES, OLD, BACKWARDS };

typedef struct fake {
    char dir[64];
    char ep[160];
    void *zctx;
    pthread_t thread;
    volatile int stop;
    enum mode mode;
    int township_reqs, snapshot_reqs; /* what it was asked */
} fake_t;

/* The scripted daemon's townships, by position 1..5 (0 is never one). */
static const char *const towns[] = {NULL, "gecheng", "gaoguan", "bashan", "高观镇", "zuolan"};

static void send_to(void *router, const void *id, size_t idlen, const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_encode(&sb, m), 0);
    zmq_send(router, id, idlen, ZMQ_SNDMORE);
    zmq_send(router, sb.data, sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* Two names a page: positions from..from+1. */
static void answer_townships(fake_t *f, void *router, const void *id, size_t idlen,
                             const proto_msg_t *q)
{
    proto_msg_t m = {.type = PROTO_TOWNSHIPS};
    proto_str_t names[2];
    uint32_t from = q->u.townships_req.from ? q->u.townships_req.from : 1;
    m.u.townships.req_id = q->u.townships_req.req_id;
    for (uint32_t p = from; p < from + 2 && p <= 5; p++)
        names[m.u.townships.n++] = proto_str(towns[p]);
    m.u.townships.names = names;
    m.u.townships.next = from + 2 <= 5 ? from + 2 : 0;
    if (f->mode == BACKWARDS && from > 1)
        m.u.townships.next = 1;
    send_to(router, id, idlen, &m);
}

/* A snapshot of u/town/: a series or two of each township. */
static void answer_snapshot(void *router, const void *id, size_t idlen, const proto_msg_t *q)
{
    uint32_t n = 0;
    for (uint32_t p = 1; p <= 5; p++)
        for (int k = 0; k < (p % 2 ? 2 : 1); k++) {
            proto_msg_t m = {.type = PROTO_SNAPSHOT_ITEM};
            m.u.snapshot_item.req_id = q->u.snapshot_req.req_id;
            proto_tally_t *t = &m.u.snapshot_item.tally;
            t->metric = proto_str(k ? "talks" : "disputes.resolved");
            t->scope = proto_str(towns[p]);
            t->seq = 3;
            t->nvalues = 1;
            t->values[0] = (proto_value_t){proto_str("total"), true, 1, 1};
            send_to(router, id, idlen, &m);
            n++;
        }
    proto_msg_t end = {.type = PROTO_SNAPSHOT_END};
    end.u.snapshot_end.req_id = q->u.snapshot_req.req_id;
    end.u.snapshot_end.stream_id = 7;
    end.u.snapshot_end.seq = 3;
    end.u.snapshot_end.count = n;
    send_to(router, id, idlen, &end);
}

static void *serve(void *arg)
{
    fake_t *f = arg;
    void *router = zmq_socket(f->zctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_bind(router, f->ep);
    while (!f->stop) {
        zmq_pollitem_t item = {.socket = router, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 30) <= 0)
            continue;
        uint8_t id[256], body[4096];
        int idlen = zmq_recv(router, id, sizeof id, 0);
        int len = zmq_recv(router, body, sizeof body, 0);
        proto_msg_t q;
        if (idlen <= 0 || len <= 0 || proto_decode(body, (size_t)len, &q, NULL, 0, NULL) != 0)
            continue;
        if (q.type == PROTO_TOWNSHIPS_REQ) {
            f->township_reqs++;
            if (f->mode != OLD) {
                answer_townships(f, router, id, (size_t)idlen, &q);
                continue;
            }
        } else if (q.type == PROTO_SNAPSHOT_REQ) {
            f->snapshot_reqs++;
            answer_snapshot(router, id, (size_t)idlen, &q);
            continue;
        }
        /* As a daemon answers a type it does not know (PROTOCOL.md 18). */
        proto_msg_t e = {.type = PROTO_ERROR};
        e.u.error.code = (uint32_t)-TALLY_ETYPE;
        e.u.error.field = proto_str("type");
        e.u.error.message = proto_str("type: message type is not a request the daemon answers");
        send_to(router, id, (size_t)idlen, &e);
    }
    zmq_close(router);
    return NULL;
}

static int setup(void **state)
{
    fake_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/tally-towns-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->ep, sizeof f->ep, "ipc://%s/req.sock", f->dir);
    f->zctx = zmq_ctx_new();
    *state = f;
    return 0;
}

static void start(fake_t *f, enum mode mode)
{
    f->mode = mode;
    assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
}

static int teardown(void **state)
{
    fake_t *f = *state;
    f->stop = 1;
    pthread_join(f->thread, NULL);
    zmq_ctx_term(f->zctx);
    char sock[200];
    snprintf(sock, sizeof sock, "%s/req.sock", f->dir);
    unlink(sock);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The list sorted by id, each once: bashan gaoguan gecheng zuolan 高观镇. */
static void expect_all(const tally_townships_t *l)
{
    static const char *const sorted[] = {"bashan", "gaoguan", "gecheng", "zuolan", "高观镇"};
    assert_int_equal(l->n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(l->v[i], sorted[i]);
}

static void test_pages(void **state)
{
    fake_t *f = *state;
    start(f, PAGES);
    tally_townships_t l;
    char err[256];
    tally_request_t req = {.timeout_ms = 5000, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(tally_townships_req(f->ep, &req, &l), 0);
    expect_all(&l);
    assert_int_equal(f->township_reqs, 3); /* positions 1-2, 3-4, 5 */
    assert_int_equal(f->snapshot_reqs, 0);
    tally_townships_clear(&l);
}

static void test_old_daemon(void **state)
{
    fake_t *f = *state;
    start(f, OLD);
    tally_townships_t l;
    assert_int_equal(tally_townships_req(f->ep, NULL, &l), 0);
    expect_all(&l);
    assert_int_equal(f->township_reqs, 1);
    assert_int_equal(f->snapshot_reqs, 1);
    tally_townships_clear(&l);
}

static void test_backwards(void **state)
{
    fake_t *f = *state;
    start(f, BACKWARDS);
    tally_townships_t l;
    char err[256];
    tally_request_t req = {.timeout_ms = 5000, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(tally_townships_req(f->ep, &req, &l), TALLY_EMALFORMED);
    assert_non_null(strstr(err, "went back from position 3 to 1"));
    assert_int_equal(l.n, 0); /* nothing half-read is kept */
    assert_null(l.v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backwards, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
