/* Unit tests of recall: PERIOD_REQ, RANGE_REQ and SPAN_REQ answered from the
 * engine (the current period of a counter) and the history (closed
 * periods, and a gauge's current one), with the same exactness rules as
 * tallies; bad periods, future periods, expired days, unknown names and
 * ranges of more than 10,000 periods refused with the field named.  The
 * answers go into a recording sink (no sockets, no threads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "parts_test_util.h"
#include "recall.h"
#include "tally_error.h"

/* 2023-12-31T12:00Z; the tests run in UTC at T_NOW, 2024-06-15T12:00Z. */
#define T_DEC31 1704024000000LL

static const char conf[] = "[tallyd]\ntimezone = UTC\n"
                           "[metric resolved]\nkind = counter\n"
                           "[metric screened]\nkind = counter\n"
                           "[metric zones]\nkind = gauge\n"
                           "[ratio rate]\nnumerator = resolved\ndenominator = screened\n"
                           "[township gaoguan]\n[township bashan]\n";

typedef struct fx {
    t_state_t st;
    history_t h;
    uv_loop_t loop;
    publish_t pub;
    t_sink_t pubs, replies;
    recall_t r;
    uint64_t pos;
    char msg[256];
    const char *field;
} fx_t;

static uint32_t id(intern_t *in, const char *s)
{
    int v = intern_find(in, s, strlen(s));
    assert_true(v > 0);
    return (uint32_t)v;
}

static void fx_history(fx_t *f, int64_t days)
{
    history_config_t hc = {.engine = &f->st.engine,
                           .towns = &f->st.towns,
                           .metrics = &f->st.metrics,
                           .clock = &t_clock,
                           .log = &f->st.log,
                           .days = days};
    assert_int_equal(history_init(&f->h, &hc), 0);
}

/* The catalog's names and labels, as the ingest's tables give them. */
static const char *t_named(const void *ctx, proto_str_t name, bool township)
{
    (void)ctx;
    const char *text = township ? "高观镇" : "化解矛盾纠纷";
    if (name.len == strlen(text) && memcmp(name.ptr, text, name.len) == 0)
        return township ? "gaoguan" : "resolved";
    return NULL;
}

static void fx_recall(fx_t *f, uint32_t max_items)
{
    recall_config_t rc = {.loop = &f->loop,
                          .engine = &f->st.engine,
                          .history = &f->h,
                          .towns = &f->st.towns,
                          .metrics = &f->st.metrics,
                          .publish = &f->pub,
                          .clock = &t_clock,
                          .reply = t_sink_of(&f->replies),
                          .max_items = max_items,
                          .named = t_named,
                          /* a county gauge's span read a township a turn */
                          .sweep_reads = 1};
    assert_int_equal(recall_init(&f->r, &rc), 0);
}

/* Close the part (its handle) and free it. */
static void fx_recall_end(fx_t *f)
{
    recall_close(&f->r, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    recall_free(&f->r);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    t_state_init(&f->st, conf);
    t_state_declare(&f->st);
    fx_history(f, HISTORY_DAYS_DEFAULT);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    publish_config_t pc = t_publish_config(&f->st, &f->loop, &f->pubs, 3600000, 41);
    assert_int_equal(publish_init(&f->pub, &pc), 0);
    fx_recall(f, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    fx_recall_end(f);
    publish_close(&f->pub, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    history_free(&f->h);
    t_sink_free(&f->pubs);
    t_sink_free(&f->replies);
    t_state_free(&f->st);
    free(f);
    return 0;
}

/* One submission, applied as tallyd applies it: the engine, then the
 * history with the record's journal position. */
static void submit(fx_t *f, const char *town, int64_t t, int n, ...)
{
    engine_sample_t s[8];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        s[i].metric = id(&f->st.metrics, va_arg(ap, const char *));
        s[i].value = va_arg(ap, int64_t);
    }
    va_end(ap);
    uint32_t tid = id(&f->st.towns, town);
    int32_t bad = -1;
    assert_int_equal(engine_apply(&f->st.engine, tid, t, s, (uint32_t)n, &bad), 0);
    assert_int_equal(history_apply(&f->h, ++f->pos, tid, t, s, (uint32_t)n), 0);
}

static int period_req(fx_t *f, const char *prefix, const char *period)
{
    t_sink_clear(&f->replies);
    proto_msg_t m = {.type = PROTO_PERIOD_REQ};
    m.u.period_req.req_id = 7;
    m.u.period_req.prefix = proto_str(prefix);
    m.u.period_req.period = proto_str(period);
    f->field = NULL;
    f->msg[0] = '\0';
    int rc = recall_period(&f->r, "peer", 4, &m, &f->field, f->msg, sizeof f->msg);
    /* The answer goes out a batch per loop iteration. */
    while (rc == 0 && uv_run(&f->loop, UV_RUN_NOWAIT) != 0 && f->r.head != NULL)
        ;
    return rc;
}

static int span_req(fx_t *f, const char *prefix, const char *from, const char *to)
{
    t_sink_clear(&f->replies);
    proto_msg_t m = {.type = PROTO_SPAN_REQ};
    m.u.span_req.req_id = 7;
    m.u.span_req.prefix = proto_str(prefix);
    m.u.span_req.from = proto_str(from);
    m.u.span_req.to = proto_str(to);
    f->field = NULL;
    f->msg[0] = '\0';
    int rc = recall_span(&f->r, "peer", 4, &m, &f->field, f->msg, sizeof f->msg);
    while (rc == 0 && uv_run(&f->loop, UV_RUN_NOWAIT) != 0 && f->r.head != NULL)
        ;
    return rc;
}

static int range_req(fx_t *f, const char *metric, const char *scope, const char *by,
                     const char *from, const char *to)
{
    t_sink_clear(&f->replies);
    proto_msg_t m = {.type = PROTO_RANGE_REQ};
    m.u.range_req.req_id = 8;
    m.u.range_req.metric = proto_str(metric);
    m.u.range_req.scope = proto_str(scope);
    m.u.range_req.by = proto_str(by);
    m.u.range_req.from = proto_str(from);
    m.u.range_req.to = proto_str(to);
    f->field = NULL;
    f->msg[0] = '\0';
    return recall_range(&f->r, "peer", 4, &m, &f->field, f->msg, sizeof f->msg);
}

static bool str_is(proto_str_t s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

/* The value of (metric, scope) in the last PERIOD answer; fails when the
 * answer has no such tally. */
static proto_value_t answer_of(const fx_t *f, const char *metric, const char *scope,
                               const char *column)
{
    for (size_t i = 0; i < f->replies.n; i++) {
        const proto_msg_t *m = t_sink_at(&f->replies, i);
        assert_int_equal(m->type, PROTO_PERIOD);
        assert_int_equal(m->u.period.req_id, 7);
        assert_int_equal(m->u.period.count, f->replies.n);
        assert_int_equal(m->u.period.index, i);
        const proto_tally_t *t = &m->u.period.tally;
        if (str_is(t->metric, metric) && str_is(t->scope, scope)) {
            assert_int_equal(t->nvalues, 1);
            assert_true(str_is(t->values[0].name, column));
            return t->values[0];
        }
    }
    fail_msg("no tally %s '%s' in the answer", metric, scope);
    return (proto_value_t){0};
}

static void expect_num(const fx_t *f, const char *metric, const char *scope, const char *column,
                       int64_t want)
{
    proto_value_t v = answer_of(f, metric, scope, column);
    if (!v.present || v.num != want)
        fail_msg("%s '%s' %s: present %d num %lld, expected %lld", metric, scope, column, v.present,
                 (long long)v.num, (long long)want);
}

static void expect_none(const fx_t *f, const char *metric, const char *scope, const char *column)
{
    proto_value_t v = answer_of(f, metric, scope, column);
    if (v.present)
        fail_msg("%s '%s' %s: %lld, expected no value", metric, scope, column, (long long)v.num);
}

/* A closed year: the township's and the county's counters, gauges by
 * township (no value where none was sent) and summed for the county,
 * the ratio from its operands of the year. */
static void test_closed_period(void **state)
{
    fx_t *f = *state;
    submit(f, "gaoguan", T_DEC31, 3, "resolved", (int64_t)216, "screened", (int64_t)219, "zones",
           (int64_t)23);
    submit(f, "bashan", T_NOW, 2, "resolved", (int64_t)5, "zones", (int64_t)4);
    assert_int_equal(period_req(f, "u/", "2023"), 0);
    /* resolved, zones and rate of both townships and the county; screened
     * of gaoguan and the county (bashan never sent it) */
    assert_int_equal(f->replies.n, 11);
    assert_memory_equal(f->replies.v[0].head, "peer", 4);
    expect_num(f, "resolved", "gaoguan", "2023", 216);
    expect_num(f, "resolved", "", "2023", 216);
    expect_num(f, "resolved", "bashan", "2023", 0);
    expect_num(f, "zones", "gaoguan", "2023", 23);
    expect_none(f, "zones", "bashan", "2023");
    expect_num(f, "zones", "", "2023", 23);
    proto_value_t rate = answer_of(f, "rate", "gaoguan", "2023");
    assert_true(rate.present);
    assert_int_equal(rate.num, 216);
    assert_int_equal(rate.den, 219);
    expect_none(f, "rate", "bashan", "2023"); /* 0/0 */
    /* A prefix narrows the answer to its series. */
    assert_int_equal(period_req(f, "u/town/gaoguan/", "2023-12-31"), 0);
    assert_int_equal(f->replies.n, 4);
    expect_num(f, "resolved", "gaoguan", "2023-12-31", 216);
}

/* The current periods: counters from the engine's calendar columns,
 * gauges from the history's cells of the period so far. */
static void test_current_period(void **state)
{
    fx_t *f = *state;
    submit(f, "gaoguan", T_DEC31, 2, "resolved", (int64_t)216, "zones", (int64_t)23);
    submit(f, "gaoguan", T_NOW - 3600000, 2, "resolved", (int64_t)3, "zones", (int64_t)7);
    submit(f, "bashan", T_NOW, 2, "resolved", (int64_t)5, "zones", (int64_t)4);
    const char *periods[] = {"2024", "2024-Q2", "2024-06", "2024-06-15"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(period_req(f, "u/", periods[i]), 0);
        expect_num(f, "resolved", "gaoguan", periods[i], 3);
        expect_num(f, "resolved", "", periods[i], 8);
        expect_num(f, "zones", "gaoguan", periods[i], 7);
        expect_num(f, "zones", "", periods[i], 11);
    }
    assert_int_equal(period_req(f, "u/", "2024-06-14"), 0);
    expect_num(f, "resolved", "", "2024-06-14", 0);
    expect_none(f, "zones", "", "2024-06-14");
}

/* A clock set back a day behind the engine (by hand, or a restart on a
 * machine whose clock is behind): the engine stays on its day, and so
 * does the history's today.  The engine's today (15 June) is read as
 * today, not refused as not begun; 14 June reads its own figures, not the
 * engine's today column. */
static void test_clock_set_back(void **state)
{
    fx_t *f = *state;
    submit(f, "gaoguan", T_NOW - 86400000, 1, "resolved", (int64_t)101);
    submit(f, "gaoguan", T_NOW, 1, "resolved", (int64_t)1010);
    t_now_ms = T_NOW - 86400000;
    assert_int_equal(period_req(f, "u/county/", "2024-06-14"), 0);
    expect_num(f, "resolved", "", "2024-06-14", 101);
    assert_int_equal(period_req(f, "u/county/", "2024-06-15"), 0);
    expect_num(f, "resolved", "", "2024-06-15", 1010);
    /* A figure stamped on 14 June, taken now, counts there. */
    submit(f, "gaoguan", T_NOW - 86400000, 1, "resolved", (int64_t)7);
    assert_int_equal(period_req(f, "u/county/", "2024-06-14"), 0);
    expect_num(f, "resolved", "", "2024-06-14", 108);
    assert_int_equal(period_req(f, "u/county/", "2024-06"), 0);
    expect_num(f, "resolved", "", "2024-06", 1118);
}

/* Requests that cannot be answered: the field named, nothing sent. */
static void test_refused(void **state)
{
    fx_t *f = *state;
    submit(f, "gaoguan", T_DEC31, 1, "resolved", (int64_t)216);
    static const struct {
        const char *prefix, *period, *field, *says;
        int code;
    } cases[] = {
        {"u/", "2023-13", "period", "'2023-13' is not a period", TALLY_EBADPERIOD},
        {"u/", "1999", "period", "'1999' is not a period", TALLY_EBADPERIOD},
        {"u/", "2024-06-16", "period", "has not begun yet (today is 2024-06-15", TALLY_EBADPERIOD},
        {"u/town/nowhere/", "2023", "prefix", "township 'nowhere'", TALLY_EUNKTOWN},
        {"u/county/no.such/", "2023", "prefix", "metric 'no.such'", TALLY_EUNKMETRIC},
        {"u/town//", "2023", "prefix", "township ''", TALLY_EUNKTOWN},
        {"u/town/gaoguan/no.such/", "2023", "prefix", "metric 'no.such'", TALLY_EUNKMETRIC},
        /* A catalog name or label for an id: which id to ask for. */
        {"u/town/高观镇/", "2023", "prefix",
         "township '高观镇' has no tallies here: it is the name of township 'gaoguan' in the "
         "catalog; ask for its id 'gaoguan'",
         TALLY_EUNKTOWN},
        {"u/county/化解矛盾纠纷/", "2023", "prefix",
         "it is the label of metric 'resolved' in the catalog; ask for its id 'resolved'",
         TALLY_EUNKMETRIC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = period_req(f, cases[i].prefix, cases[i].period);
        if (rc != cases[i].code || f->field == NULL || strcmp(f->field, cases[i].field) != 0 ||
            strstr(f->msg, cases[i].says) == NULL)
            fail_msg("case %zu: %d field %s '%s'", i, rc, f->field ? f->field : "-", f->msg);
        assert_int_equal(f->replies.n, 0);
    }
    /* More series than one answer may hold: TOO_LARGE, nothing sent; a
     * narrower prefix is answered. */
    fx_recall_end(f);
    fx_recall(f, 2);
    submit(f, "bashan", T_DEC31, 1, "resolved", (int64_t)1);
    assert_int_equal(period_req(f, "u/", "2023"), TALLY_ETOOLARGE);
    assert_string_equal(f->field, "prefix");
    assert_non_null(strstr(f->msg, "more series match prefix 'u/' than the 2 one answer holds"));
    assert_int_equal(f->replies.n, 0);
    assert_int_equal(period_req(f, "u/town/gaoguan/", "2023"), 0);
    assert_int_equal(f->replies.n, 2); /* resolved and rate */
    /* The bound is the most an answer holds: u/town/ has 4 series. */
    fx_recall_end(f);
    fx_recall(f, 3);
    assert_int_equal(period_req(f, "u/town/", "2023"), TALLY_ETOOLARGE);
    assert_non_null(strstr(f->msg, "narrow it (u/county/, u/town/<township>/, a metric)"));
    assert_int_equal(f->replies.n, 0);
    /* One scope with more series than an answer holds (an open catalog
     * takes more metrics than that): narrowed by metric, not by the scope
     * already asked for. */
    fx_recall_end(f);
    fx_recall(f, 1);
    assert_int_equal(period_req(f, "u/town/gaoguan/", "2023"), TALLY_ETOOLARGE);
    assert_non_null(strstr(f->msg, "narrow it by metric: u/town/gaoguan/<metric>/ for each metric "
                                   "(a snapshot of u/town/gaoguan/ names them)"));
    assert_int_equal(period_req(f, "u/county/", "2023"), TALLY_ETOOLARGE);
    assert_non_null(strstr(f->msg, "u/county/<metric>/ for each metric"));
    assert_int_equal(period_req(f, "u/county/resolved/", "2023"), 0);
    assert_int_equal(f->replies.n, 1);
    fx_recall_end(f);
    fx_recall(f, 4);
    assert_int_equal(period_req(f, "u/town/", "2023"), 0);
    assert_int_equal(f->replies.n, 4);
    fx_recall_end(f);
    fx_recall(f, 0);
    /* Days older than [history] days: PERIOD_EXPIRED; the month is kept. */
    history_free(&f->h);
    fx_history(f, 30);
    submit(f, "gaoguan", T_DEC31, 1, "resolved", (int64_t)216);
    assert_int_equal(period_req(f, "u/", "2023-12-31"), TALLY_EEXPIRED);
    assert_string_equal(f->field, "period");
    assert_int_equal(period_req(f, "u/", "2023-12"), 0);
    expect_num(f, "resolved", "gaoguan", "2023-12", 216);
}

/* A range: one point per period in order, split in chunks of
 * PROTO_RANGE_CHUNK; a closed period from the history, the current one
 * from the engine. */
static void test_range(void **state)
{
    fx_t *f = *state;
    submit(f, "gaoguan", T_DEC31, 2, "resolved", (int64_t)216, "screened", (int64_t)219);
    submit(f, "gaoguan", T_NOW, 2, "resolved", (int64_t)3, "screened", (int64_t)4);
    assert_int_equal(range_req(f, "resolved", "gaoguan", "month", "2023-11", "2024-06"), 0);
    assert_int_equal(f->replies.n, 1);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_RANGE);
    assert_int_equal(m->u.range.total, 8);
    assert_int_equal(m->u.range.npoints, 8);
    assert_int_equal(m->u.range.kind, PROTO_KIND_COUNTER);
    const char *names[] = {"2023-11", "2023-12", "2024-01", "2024-02",
                           "2024-03", "2024-04", "2024-05", "2024-06"};
    const int64_t want[] = {0, 216, 0, 0, 0, 0, 0, 3};
    for (int i = 0; i < 8; i++) {
        const proto_value_t *p = &m->u.range.points[i];
        assert_true(str_is(p->name, names[i]));
        assert_true(p->present);
        assert_int_equal(p->num, want[i]);
    }
    /* The county's ratio by quarter. */
    assert_int_equal(range_req(f, "rate", "", "quarter", "2023-Q4", "2024-Q2"), 0);
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->u.range.kind, PROTO_KIND_RATIO);
    assert_int_equal(m->u.range.npoints, 3);
    assert_true(m->u.range.points[0].present);
    assert_int_equal(m->u.range.points[0].num, 216);
    assert_int_equal(m->u.range.points[0].den, 219);
    assert_false(m->u.range.points[1].present);
    assert_int_equal(m->u.range.points[2].den, 4);
    /* 600 days: three chunks covering every day once, in order. */
    assert_int_equal(range_req(f, "resolved", "", "day", "2022-10-25", "2024-06-15"), 0);
    assert_int_equal(f->replies.n, 3);
    uint32_t seen = 0;
    for (size_t i = 0; i < f->replies.n; i++) {
        m = t_sink_at(&f->replies, i);
        assert_int_equal(m->u.range.first, seen);
        assert_int_equal(m->u.range.total, 600);
        for (uint32_t j = 0; j < m->u.range.npoints; j++) {
            const proto_value_t *p = &m->u.range.points[j];
            int64_t w = str_is(p->name, "2023-12-31") ? 216 : str_is(p->name, "2024-06-15") ? 3 : 0;
            assert_true(p->present);
            assert_int_equal(p->num, w);
        }
        seen += m->u.range.npoints;
    }
    assert_int_equal(seen, 600);
    /* A 'to' ahead of today (2024-06-15): its periods read nil. */
    assert_int_equal(range_req(f, "resolved", "gaoguan", "month", "2024-05", "2024-08-31"), 0);
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->u.range.total, 4);
    assert_true(m->u.range.points[1].present);
    assert_int_equal(m->u.range.points[1].num, 3);
    assert_false(m->u.range.points[2].present);
    assert_false(m->u.range.points[3].present);
}

/* Noon UTC of y-m-d. */
static int64_t day_ms(int y, int m, int d)
{
    return (int64_t)calperiod_days_from_civil(y, m, d) * 86400000 + 43200000;
}

/* A span of days: counters summed over its whole periods, a township's
 * gauge the value of its latest sample in the span, the county's gauge
 * the sum of those (not the county's value of any one part), a ratio
 * from its operands over the span; the current periods' parts as the
 * current periods read. */
static void test_span(void **state)
{
    fx_t *f = *state;
    submit(f, "bashan", day_ms(2023, 1, 5), 2, "resolved", (int64_t)1, "zones", (int64_t)3);
    submit(f, "gaoguan", day_ms(2023, 3, 10), 3, "resolved", (int64_t)10, "screened", (int64_t)12,
           "zones", (int64_t)5);
    submit(f, "gaoguan", day_ms(2023, 6, 14), 2, "resolved", (int64_t)4, "zones", (int64_t)6);
    submit(f, "gaoguan", day_ms(2023, 6, 16), 2, "resolved", (int64_t)100, "zones", (int64_t)99);
    submit(f, "gaoguan", day_ms(2024, 2, 1), 1, "resolved", (int64_t)20);
    submit(f, "gaoguan", T_NOW, 2, "resolved", (int64_t)3, "zones", (int64_t)7);
    /* 2023 to the day a year before today (2024-06-15) */
    assert_int_equal(span_req(f, "u/", "2023", "2023-06-15"), 0);
    expect_num(f, "resolved", "gaoguan", "span", 14);
    expect_num(f, "resolved", "bashan", "span", 1);
    expect_num(f, "resolved", "", "span", 15);
    expect_num(f, "zones", "gaoguan", "span", 6);
    expect_num(f, "zones", "bashan", "span", 3);
    expect_num(f, "zones", "", "span", 9);
    proto_value_t rate = answer_of(f, "rate", "", "span");
    assert_true(rate.present);
    assert_int_equal(rate.num, 15);
    assert_int_equal(rate.den, 12);
    expect_none(f, "rate", "bashan", "span"); /* nothing screened */
    /* The county's gauge needs each township's latest: read a township
     * per loop turn here (sweep_reads 1), before any item goes out. */
    t_sink_clear(&f->replies);
    proto_msg_t q = {.type = PROTO_SPAN_REQ};
    q.u.span_req.req_id = 7;
    q.u.span_req.prefix = proto_str("u/county/zones/");
    q.u.span_req.from = proto_str("2023");
    q.u.span_req.to = proto_str("2023-06-15");
    assert_int_equal(recall_span(&f->r, "peer", 4, &q, &f->field, f->msg, sizeof f->msg), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_non_null(f->r.head);
    assert_int_equal(f->replies.n, 0);
    while (uv_run(&f->loop, UV_RUN_NOWAIT) != 0 && f->r.head != NULL)
        ;
    expect_num(f, "zones", "", "span", 9);
    /* This year to date: today's part from the engine, the rest from the
     * history. */
    assert_int_equal(span_req(f, "u/county/", "2024-01-01", "2024-06-15"), 0);
    expect_num(f, "resolved", "", "span", 23);
    expect_num(f, "zones", "", "span", 7);
    /* Months in any order of from and to's types, across a year's end. */
    assert_int_equal(span_req(f, "u/town/gaoguan/", "2023-06-16", "2024-Q1"), 0);
    expect_num(f, "resolved", "gaoguan", "span", 120);
    expect_num(f, "zones", "gaoguan", "span", 99);
    /* A whole period reads as that period. */
    assert_int_equal(span_req(f, "u/", "2023", "2023"), 0);
    expect_num(f, "resolved", "", "span", 115);
    expect_num(f, "zones", "", "span", 102);
    /* Nothing of bashan's in the span: no value, and none for the county
     * from it. */
    assert_int_equal(span_req(f, "u/", "2023-06-01", "2023-06-15"), 0);
    expect_none(f, "zones", "bashan", "span");
    expect_num(f, "zones", "", "span", 6);
}

/* Any span against a model of the samples themselves: 400 submissions
 * of counters and a gauge over two and a half years by two townships,
 * then 300 spans of any length; every series' span value must be what
 * the samples say (a counter's sum of the samples in the span, a
 * township gauge's latest-stamped one, the county's the sum of those, the
 * ratio from the sums), whichever periods the span is cut into. */
typedef struct model_sample {
    int town; /* 0 gaoguan, 1 bashan */
    int64_t t;
    int metric; /* 0 resolved, 1 screened, 2 zones */
    int64_t v;
} model_sample_t;

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

static void test_span_model(void **state)
{
    fx_t *f = *state;
    static const char *const towns[] = {"gaoguan", "bashan"};
    static const char *const metrics[] = {"resolved", "screened", "zones"};
    static model_sample_t s[1200];
    size_t ns = 0;
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    int64_t t0 = day_ms(2022, 1, 1) - 43200000, span_ms = T_NOW - t0;
    for (int k = 0; k < 400; k++) {
        int town = (int)(rnd(&x) % 2);
        int64_t t = t0 + (int64_t)(rnd(&x) % (uint64_t)span_ms);
        engine_sample_t es[3];
        int n = 0;
        for (int m = 0; m < 3; m++) {
            if (rnd(&x) % 3 == 0)
                continue;
            int64_t v = (int64_t)(rnd(&x) % (m == 2 ? 100 : 1000));
            es[n].metric = id(&f->st.metrics, metrics[m]);
            es[n++].value = v;
            s[ns++] = (model_sample_t){town, t, m, v};
        }
        if (n == 0)
            continue;
        uint32_t tid = id(&f->st.towns, towns[town]);
        int32_t bad = -1;
        assert_int_equal(engine_apply(&f->st.engine, tid, t, es, (uint32_t)n, &bad), 0);
        assert_int_equal(history_apply(&f->h, ++f->pos, tid, t, es, (uint32_t)n), 0);
    }
    int32_t lo = (int32_t)(t0 / 86400000), hi = (int32_t)(T_NOW / 86400000);
    for (int k = 0; k < 300; k++) {
        int32_t a = lo + (int32_t)(rnd(&x) % (uint64_t)(hi - lo + 1));
        /* its end up to 400 days ahead of today: nothing there yet */
        int32_t b = a + (int32_t)(rnd(&x) % (uint64_t)(k % 3 ? 120 : hi + 400 - a + 1));
        if (b > hi + 400)
            b = hi + 400;
        char from[CALPERIOD_NAME_MAX], to[CALPERIOD_NAME_MAX];
        calperiod_format((calperiod_t){CALPERIOD_DAY, a}, from, sizeof from);
        calperiod_format((calperiod_t){CALPERIOD_DAY, b}, to, sizeof to);
        /* The model: sums per (town, counter); per town the gauge's
         * latest-stamped value (equal times: the later applied). */
        int64_t sum[2][2] = {{0}}, gauge[2] = {0}, gauge_t[2] = {INT64_MIN, INT64_MIN};
        bool has[2] = {false, false};
        for (size_t i = 0; i < ns; i++) {
            int32_t d = (int32_t)(s[i].t / 86400000);
            if (d < a || d > b)
                continue;
            if (s[i].metric < 2) {
                sum[s[i].town][s[i].metric] += s[i].v;
            } else if (s[i].t >= gauge_t[s[i].town]) {
                gauge[s[i].town] = s[i].v;
                gauge_t[s[i].town] = s[i].t;
                has[s[i].town] = true;
            }
        }
        assert_int_equal(span_req(f, "u/", from, to), 0);
        for (int town = 0; town < 3; town++) { /* 2: the county */
            const char *scope = town < 2 ? towns[town] : "";
            int64_t r = town < 2 ? sum[town][0] : sum[0][0] + sum[1][0];
            int64_t sc = town < 2 ? sum[town][1] : sum[0][1] + sum[1][1];
            bool gh = town < 2 ? has[town] : has[0] || has[1];
            int64_t g = town < 2 ? gauge[town] : (has[0] ? gauge[0] : 0) + (has[1] ? gauge[1] : 0);
            proto_value_t v = answer_of(f, "resolved", scope, "span");
            if (!v.present || v.num != r)
                fail_msg("%s..%s resolved '%s': %lld, model %lld", from, to, scope,
                         (long long)v.num, (long long)r);
            v = answer_of(f, "zones", scope, "span");
            if (v.present != gh || (gh && v.num != g))
                fail_msg("%s..%s zones '%s': %d %lld, model %d %lld", from, to, scope, v.present,
                         (long long)v.num, gh, (long long)g);
            v = answer_of(f, "rate", scope, "span");
            if (v.present != (sc != 0) || (sc != 0 && (v.num != r || v.den != sc)))
                fail_msg("%s..%s rate '%s': %d %lld/%lld, model %lld/%lld", from, to, scope,
                         v.present, (long long)v.num, (long long)v.den, (long long)r,
                         (long long)sc);
        }
    }
}

/* Spans that cannot be answered: the field named, nothing sent. */
static void test_span_refused(void **state)
{
    fx_t *f = *state;
    submit(f, "gaoguan", T_DEC31, 1, "resolved", (int64_t)216);
    static const struct {
        const char *prefix, *from, *to, *field, *says;
        int code;
    } cases[] = {
        {"u/", "2023-13", "2023", "from", "'2023-13' is not a period", TALLY_EBADPERIOD},
        {"u/", "2024-06-16", "2024-06-30", "from", "has not begun yet", TALLY_EBADPERIOD},
        {"u/", "2024", "2023-12", "from", "begins after", TALLY_EBADPERIOD},
        {"u/town/nowhere/", "2023", "2023", "prefix", "township 'nowhere'", TALLY_EUNKTOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = span_req(f, cases[i].prefix, cases[i].from, cases[i].to);
        if (rc != cases[i].code || f->field == NULL || strcmp(f->field, cases[i].field) != 0 ||
            strstr(f->msg, cases[i].says) == NULL)
            fail_msg("case %zu: %d field %s '%s'", i, rc, f->field ? f->field : "-", f->msg);
        assert_int_equal(f->replies.n, 0);
    }
    /* Days no longer kept: refused only when the span needs them. */
    history_free(&f->h);
    fx_history(f, 30);
    submit(f, "gaoguan", T_DEC31, 1, "resolved", (int64_t)216);
    int rc = span_req(f, "u/", "2023-12-02", "2023-12-31");
    if (rc != TALLY_EEXPIRED || strstr(f->msg, "day 2023-12-02 of the span") == NULL ||
        strcmp(f->field, "from") != 0)
        fail_msg("%d field %s '%s'", rc, f->field ? f->field : "-", f->msg);
    /* The field is the end whose days are needed: from's days before its
     * first whole month, to's after its last (2023 to 2024-04 are read
     * whole, 1..10 May as days). */
    rc = span_req(f, "u/", "2023-01", "2024-05-10");
    if (rc != TALLY_EEXPIRED || strcmp(f->field, "to") != 0 ||
        strstr(f->msg, "day 2024-05-01 of the span (needed for to '2024-05-10')") == NULL)
        fail_msg("%d field %s '%s'", rc, f->field ? f->field : "-", f->msg);
    assert_int_equal(f->replies.n, 0);
    rc = span_req(f, "u/", "2024-03-05", "2024-06-15");
    if (rc != TALLY_EEXPIRED || strcmp(f->field, "from") != 0 ||
        strstr(f->msg, "day 2024-03-05 of the span (needed for from '2024-03-05')") == NULL)
        fail_msg("%d field %s '%s'", rc, f->field ? f->field : "-", f->msg);
    /* Days at both ends, the older ones from's. */
    rc = span_req(f, "u/", "2024-04-20", "2024-05-10");
    if (rc != TALLY_EEXPIRED || strcmp(f->field, "from") != 0 ||
        strstr(f->msg, "day 2024-04-20 of the span") == NULL)
        fail_msg("%d field %s '%s'", rc, f->field ? f->field : "-", f->msg);
    assert_int_equal(span_req(f, "u/", "2023-12", "2024-06-15"), 0);
    expect_num(f, "resolved", "gaoguan", "span", 216);
}

/* Ranges that cannot be answered: the field named, nothing sent. */
static void test_range_refused(void **state)
{
    fx_t *f = *state;
    submit(f, "gaoguan", T_DEC31, 1, "resolved", (int64_t)216);
    static const struct {
        const char *metric, *scope, *by, *from, *to, *field, *says;
        int code;
    } cases[] = {
        {"resolved", "", "week", "2023", "2023", "by", "'week'", TALLY_EBADPERIOD},
        {"resolved", "", "month", "2023-02-30", "2023", "from", "'2023-02-30' is not a period",
         TALLY_EBADPERIOD},
        {"resolved", "", "month", "2025", "2025", "from", "has not begun yet", TALLY_EBADPERIOD},
        {"resolved", "", "month", "2024", "2023", "from", "begins after", TALLY_EBADPERIOD},
        {"resolved", "nowhere", "year", "2023", "2023", "scope", "nowhere", TALLY_EUNKTOWN},
        {"no.such", "", "year", "2023", "2023", "metric", "no.such", TALLY_EUNKMETRIC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc =
            range_req(f, cases[i].metric, cases[i].scope, cases[i].by, cases[i].from, cases[i].to);
        if (rc != cases[i].code || f->field == NULL || strcmp(f->field, cases[i].field) != 0 ||
            strstr(f->msg, cases[i].says) == NULL)
            fail_msg("case %zu: %d field %s '%s'", i, rc, f->field ? f->field : "-", f->msg);
        assert_int_equal(f->replies.n, 0);
    }
    /* More than 10,000 periods: possible for days once the clock is far
     * enough from 2000. */
    t_now_ms = 4102358400000LL; /* 2099-12-31T00:00Z */
    int rc = range_req(f, "resolved", "", "day", "2000-01-01", "2099-12-31");
    if (rc != TALLY_EBADPERIOD || strstr(f->msg, "10000") == NULL)
        fail_msg("%d field %s '%s'", rc, f->field ? f->field : "-", f->msg);
    assert_int_equal(f->replies.n, 0);
    assert_int_equal(range_req(f, "resolved", "", "day", "2000-01-01", "2027-05-18"), 0);
    t_now_ms = T_NOW;
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_closed_period, setup, teardown),
        cmocka_unit_test_setup_teardown(test_current_period, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_set_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_span, setup, teardown),
        cmocka_unit_test_setup_teardown(test_span_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_span_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
