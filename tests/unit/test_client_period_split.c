/* Unit tests of libtally's read of a county in parts
 * (tally_period_read_split): every part asked for on one connection, the
 * next part's request sent before the answer to this one is read, so
 * that the daemon works on it meanwhile.  The scripted daemon holds the
 * requests and answers two at a time with their replies interleaved (the
 * newer's first: a daemon may answer a span over several turns), a reply
 * twice and one to a request nobody made; the client must hand over every
 * part whole, once, in order. */
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

enum mode { PLAIN, ERROR_AHEAD };

#define MAXHELD 4

typedef struct held {
    uint64_t req_id;
    char prefix[PROTO_PREFIX_MAX + 1];
    bool span;
} held_t;

typedef struct fake {
    fake_daemon_t d;
    enum mode mode;
    const char *last; /* the last part's prefix: answered alone */
    held_t held[MAXHELD];
    int nheld;
    int requests;
} fake_t;

/* Item i of 2 of h's answer: metric m1 or m2 of the part's scope, the
 * value 10 * (scope's first letter) + i. */
static void item(fake_daemon_t *d, const held_t *h, uint32_t i, uint64_t req_id)
{
    proto_msg_t m = {.type = PROTO_PERIOD};
    m.u.period.req_id = req_id;
    m.u.period.index = i;
    m.u.period.count = 2;
    m.u.period.has_tally = true;
    proto_tally_t *t = &m.u.period.tally;
    char scope[PROTO_PREFIX_MAX + 1] = "";
    if (strncmp(h->prefix, "u/town/", 7) == 0) {
        snprintf(scope, sizeof scope, "%s", h->prefix + 7);
        scope[strlen(scope) - 1] = '\0';
    }
    t->metric = proto_str(i ? "m2" : "m1");
    t->scope = proto_str(scope);
    t->seq = 5;
    t->nvalues = 1;
    int64_t v = 10 * (scope[0] ? scope[0] : 'C') + i;
    t->values[0] = (proto_value_t){proto_str(h->span ? "span" : "2025"), true, v, 1};
    fake_daemon_send(d, &m);
}

/* The older's answer between the halves of the newer's, with noise. */
static void flush(fake_t *f)
{
    held_t *a = &f->held[0], *b = f->nheld > 1 ? &f->held[1] : NULL;
    bool b_fails = b != NULL && f->mode == ERROR_AHEAD && strcmp(b->prefix, "u/town/b/") == 0;
    if (b != NULL && !b_fails)
        item(&f->d, b, 1, b->req_id);
    if (b_fails)
        fake_daemon_error(&f->d, b->req_id, TALLY_EUNKTOWN, "prefix", "no township 'b'");
    item(&f->d, a, 1, a->req_id);
    item(&f->d, a, 1, a->req_id); /* twice */
    item(&f->d, a, 0, 999);       /* of no request */
    item(&f->d, a, 0, a->req_id);
    if (b != NULL && !b_fails)
        item(&f->d, b, 0, b->req_id);
    f->nheld = 0;
}

static bool answer(fake_daemon_t *d, const proto_msg_t *q)
{
    fake_t *f = d->ctx;
    if (q->type != PROTO_PERIOD_REQ && q->type != PROTO_SPAN_REQ)
        return false;
    f->requests++;
    bool span = q->type == PROTO_SPAN_REQ;
    held_t *h = &f->held[f->nheld++];
    h->req_id = span ? q->u.span_req.req_id : q->u.period_req.req_id;
    h->span = span;
    proto_str_t p = span ? q->u.span_req.prefix : q->u.period_req.prefix;
    snprintf(h->prefix, sizeof h->prefix, "%.*s", (int)p.len, p.ptr);
    if (f->nheld == 2)
        flush(f);
    return true;
}

/* The last part comes alone: answer it once nothing more comes. */
static void idle(fake_daemon_t *d)
{
    fake_t *f = d->ctx;
    if (f->nheld == 1 && strcmp(f->held[0].prefix, f->last) == 0)
        flush(f);
}

static int setup(void **state)
{
    fake_t *f = calloc(1, sizeof *f);
    if (f == NULL || fake_daemon_open(&f->d, "split") != 0)
        return -1;
    f->d.ctx = f;
    f->d.idle = idle;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fake_t *f = *state;
    int rc = fake_daemon_close(&f->d);
    free(f);
    return rc;
}

typedef struct got {
    char lines[32][96];
    int n;
} got_t;

static void collect(void *ctx, const tally_tally_t *t)
{
    got_t *g = ctx;
    assert_true(g->n < 32);
    snprintf(g->lines[g->n++], sizeof g->lines[0], "%s|%s|%s|%lld", t->scope, t->metric,
             t->values[0].column, (long long)t->values[0].num);
}

static void test_interleaved(void **state)
{
    fake_t *f = *state;
    f->last = "u/town/c/";
    fake_daemon_start(&f->d, answer);
    static const char *const towns[] = {"a", "b", "c"};
    char err[256];
    tally_request_t req = {.timeout_ms = 10000, .errbuf = err, .errbuf_len = sizeof err};
    got_t g = {0};
    assert_int_equal(tally_period_read_split(f->d.ep, &req, "u/", "2025", towns, 3, collect, &g),
                     0);
    static const char *const want[] = {
        "|m1|2025|670",  "|m2|2025|671",  "a|m1|2025|970", "a|m2|2025|971",
        "b|m1|2025|980", "b|m2|2025|981", "c|m1|2025|990", "c|m2|2025|991",
    };
    assert_int_equal(g.n, 8);
    for (int i = 0; i < 8; i++)
        assert_string_equal(g.lines[i], want[i]);
    assert_int_equal(f->requests, 4);

    /* A span: the same, its column named as asked. */
    memset(&g, 0, sizeof g);
    assert_int_equal(tally_period_read_split(f->d.ep, &req, "u/town/", "2025-01..2025-03", towns, 3,
                                             collect, &g),
                     0);
    assert_int_equal(g.n, 6);
    assert_string_equal(g.lines[0], "a|m1|2025-01..2025-03|970");
    assert_string_equal(g.lines[5], "c|m2|2025-01..2025-03|991");
}

/* The part read ahead fails (a township gone in a reload) while the one
 * before is read: its ERROR is kept for its turn, where it is skipped. */
static void test_error_ahead(void **state)
{
    fake_t *f = *state;
    f->mode = ERROR_AHEAD;
    f->last = "u/town/c/";
    fake_daemon_start(&f->d, answer);
    static const char *const towns[] = {"a", "b", "c"};
    char err[256];
    tally_request_t req = {.timeout_ms = 10000, .errbuf = err, .errbuf_len = sizeof err};
    got_t g = {0};
    assert_int_equal(
        tally_period_read_split(f->d.ep, &req, "u/town/", "2025", towns, 3, collect, &g), 0);
    assert_int_equal(g.n, 4);
    assert_string_equal(g.lines[1], "a|m2|2025|971");
    assert_string_equal(g.lines[2], "c|m1|2025|990");
    assert_string_equal(err, "");
}

/* A township too long for a prefix: the parts before it are read, then
 * the read fails naming it. */
static void test_too_long(void **state)
{
    fake_t *f = *state;
    f->last = "none";
    fake_daemon_start(&f->d, answer);
    char lng[PROTO_PREFIX_MAX];
    memset(lng, 'x', sizeof lng - 1);
    lng[sizeof lng - 1] = '\0';
    const char *const towns[] = {"a", lng, "c"};
    char err[256];
    tally_request_t req = {.timeout_ms = 10000, .errbuf = err, .errbuf_len = sizeof err};
    got_t g = {0};
    assert_int_equal(tally_period_read_split(f->d.ep, &req, "u/", "2025", towns, 3, collect, &g),
                     TALLY_EINVAL);
    assert_int_equal(g.n, 4); /* the county's and a's */
    assert_memory_equal(err, "township 'xxxx", 14);
    assert_non_null(strstr(err, "' is too long"));
    assert_int_equal(f->requests, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_interleaved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_long, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
