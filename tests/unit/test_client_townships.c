/* Unit tests of libtally's township list (tally_townships_req,
 * PROTOCOL.md 8.25) against a scripted daemon: a ROUTER on an ipc://
 * socket in a thread of this process that answers as a daemon of this
 * version (TOWNSHIPS pages), as one from before TOWNSHIPS_REQ (UNKNOWN_TYPE
 * with req_id 0, and a snapshot), or with pages that go backwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client_fake_daemon.h"
#include "proto.h"
#include "tally.h"

enum mode { PAGES, OLD, BACKWARDS };

typedef struct fake {
    fake_daemon_t d;
    enum mode mode;
    int township_reqs, snapshot_reqs; /* what it was asked */
} fake_t;

/* The scripted daemon's townships, by position 1..5 (0 is never one). */
static const char *const towns[] = {NULL, "gecheng", "gaoguan", "bashan", "高观镇", "zuolan"};

/* Two names a page: positions from..from+1. */
static void answer_townships(fake_t *f, const proto_msg_t *q)
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
    fake_daemon_send(&f->d, &m);
}

/* A snapshot of u/town/: a series or two of each township. */
static void answer_snapshot(fake_daemon_t *d, const proto_msg_t *q)
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
            fake_daemon_send(d, &m);
            n++;
        }
    proto_msg_t end = {.type = PROTO_SNAPSHOT_END};
    end.u.snapshot_end.req_id = q->u.snapshot_req.req_id;
    end.u.snapshot_end.stream_id = 7;
    end.u.snapshot_end.seq = 3;
    end.u.snapshot_end.count = n;
    fake_daemon_send(d, &end);
}

/* A daemon of this version, or (OLD) one that answers TOWNSHIPS_REQ as a
 * type it does not know. */
static bool answer(fake_daemon_t *d, const proto_msg_t *q)
{
    fake_t *f = d->ctx;
    if (q->type == PROTO_TOWNSHIPS_REQ) {
        f->township_reqs++;
        if (f->mode == OLD)
            return false;
        answer_townships(f, q);
        return true;
    }
    if (q->type == PROTO_SNAPSHOT_REQ) {
        f->snapshot_reqs++;
        answer_snapshot(d, q);
        return true;
    }
    return false;
}

static int setup(void **state)
{
    fake_t *f = calloc(1, sizeof *f);
    if (f == NULL || fake_daemon_open(&f->d, "towns") != 0)
        return -1;
    f->d.ctx = f;
    *state = f;
    return 0;
}

static void start(fake_t *f, enum mode mode)
{
    f->mode = mode;
    fake_daemon_start(&f->d, answer);
}

static int teardown(void **state)
{
    fake_t *f = *state;
    int rc = fake_daemon_close(&f->d);
    free(f);
    return rc;
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
    assert_int_equal(tally_townships_req(f->d.ep, &req, &l), 0);
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
    assert_int_equal(tally_townships_req(f->d.ep, NULL, &l), 0);
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
    assert_int_equal(tally_townships_req(f->d.ep, &req, &l), TALLY_EMALFORMED);
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
