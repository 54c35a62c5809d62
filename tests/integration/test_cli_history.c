/* Integration tests of history against the real tallyd over real sockets:
 * 高观镇's 2023 report pushed stamped 2023-12-31 and read back as the
 * period 2023 (libtally's tally_period_req and `tally get --period`), a
 * late figure landing in its own period, exactly once across SIGKILL, a
 * damaged history.db rebuilt from the journal, trends with
 * tally_range_req and `tally history`, and bad arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_support.h"
#include <zmq.h>

#include "harness.h"
#include "proto.h"
#include "tally.h"

#define ROWS_MAX 64

typedef struct row {
    char metric[CLI_NAME_MAX + 1];
    int64_t value;
} row_t;

typedef struct fx {
    harness_t h;
    char *conf;
    row_t rows[ROWS_MAX]; /* the report's figures */
    size_t nrows;
    char csv[HARNESS_PATH_MAX];
} fx_t;

/* What a period request returned: (metric, scope) -> value. */
typedef struct got {
    struct {
        char metric[CLI_NAME_MAX + 1], scope[CLI_NAME_MAX + 1];
        bool present;
        int64_t num, den;
    } v[256];
    size_t n;
    char column[32];
} got_t;

static void on_tally(void *ctx, const tally_tally_t *t)
{
    got_t *g = ctx;
    if (g->n == 256 || t->nvalues != 1)
        return;
    snprintf(g->v[g->n].metric, sizeof g->v[0].metric, "%s", t->metric);
    snprintf(g->v[g->n].scope, sizeof g->v[0].scope, "%s", t->scope);
    snprintf(g->column, sizeof g->column, "%s", t->values[0].column);
    g->v[g->n].present = t->values[0].present;
    g->v[g->n].num = t->values[0].num;
    g->v[g->n].den = t->values[0].den;
    g->n++;
}

static void load_report(fx_t *f)
{
    char *text = harness_read_file(f->csv);
    if (text == NULL)
        fail_msg("cannot read %s", f->csv);
    char *save = NULL;
    char *line = strtok_r(text, "\r\n", &save); /* header */
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        char *metric = line, *comma = strchr(line, ',');
        assert_non_null(comma);
        *comma = '\0';
        char *last = strrchr(comma + 1, ',');
        assert_non_null(last);
        row_t *r = &f->rows[f->nrows++];
        snprintf(r->metric, sizeof r->metric, "%s", metric);
        r->value = strtoll(last + 1, NULL, 10);
    }
    free(text);
    assert_int_equal(f->nrows, 22);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0)
        return -1;
    snprintf(f->csv, sizeof f->csv, "%s/gaoguan-2023.csv", TALLY_SHARED_DATA);
    load_report(f);
    char path[HARNESS_PATH_MAX];
    snprintf(path, sizeof path, "%s/systemd/tallyd.conf.example", harness_source_dir);
    f->conf = harness_read_file(path);
    if (f->conf == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = harness_finish(&f->h) == 0 ? 0 : -1;
    harness_cleanup(&f->h);
    free(f->conf);
    free(f);
    return rc;
}

static cli_result_t run_expect(fx_t *f, int status, const char *const *args)
{
    return cli_expect(&f->h, status, args);
}

static void push_report(fx_t *f, const char *when)
{
    const char *push[] = {"push", "--town", "gaoguan", "--time", when, "--file", f->csv, NULL};
    cli_result_t r = run_expect(f, 0, push);
    cli_result_free(&r);
}

static void read_period(fx_t *f, const char *prefix, const char *period, got_t *g)
{
    memset(g, 0, sizeof(*g));
    char err[512] = "";
    tally_request_t req = {.timeout_ms = 20000, .errbuf = err, .errbuf_len = sizeof err};
    int rc = tally_period_req(f->h.req_endpoint, &req, prefix, period, on_tally, g);
    if (rc != 0)
        fail_msg("tally_period_req %s %s: %s: %s\n%s", prefix, period, tally_strerror(rc), err,
                 harness_log(&f->h));
}

static int64_t value_of(const got_t *g, const char *metric, const char *scope, bool *present)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->v[i].metric, metric) == 0 && strcmp(g->v[i].scope, scope) == 0) {
            *present = g->v[i].present;
            return g->v[i].num;
        }
    fail_msg("no tally of %s in scope '%s'", metric, scope);
    return 0;
}

/* Every figure of the report in period p of scope, times mult; the three
 * ratios of ratios.csv. */
static void expect_report(fx_t *f, const char *p, const char *scope, int64_t mult)
{
    got_t g;
    char prefix[128];
    if (scope[0])
        snprintf(prefix, sizeof prefix, "u/town/%s/", scope);
    else
        snprintf(prefix, sizeof prefix, "u/county/");
    read_period(f, prefix, p, &g);
    assert_int_equal(g.n, 25);
    assert_string_equal(g.column, p);
    for (size_t i = 0; i < f->nrows; i++) {
        bool present = false;
        int64_t v = value_of(&g, f->rows[i].metric, scope, &present);
        /* Gauges (grid counts) keep the latest value; counters add up. */
        bool gauge = strncmp(f->rows[i].metric, "grid.", 5) == 0;
        int64_t want = gauge ? f->rows[i].value : f->rows[i].value * mult;
        if (!present || v != want)
            fail_msg("%s %s '%s': %" PRId64 " (present %d), expected %" PRId64, p,
                     f->rows[i].metric, scope, v, present, want);
    }
    bool present;
    for (size_t i = 0; i < g.n; i++)
        if (strcmp(g.v[i].metric, "disputes.resolution_rate") == 0) {
            assert_true(g.v[i].present);
            assert_int_equal(g.v[i].num, 216 * mult);
            assert_int_equal(g.v[i].den, 219 * mult);
        }
    (void)value_of(&g, "law_exam.pass_rate", scope, &present);
    assert_true(present);
}

/* 1. The 2023 report stamped 2023-12-31: the year, quarter, month and
 * day of 2023 hold it, for the township and the county, after a restart
 * too; 2022 and today's day do not. */
static void test_report_2023(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    push_report(f, "2023-12-31");
    for (int round = 0; round < 2; round++) {
        const char *periods[] = {"2023", "2023-Q4", "2023-12", "2023-12-31"};
        for (size_t i = 0; i < 4; i++) {
            expect_report(f, periods[i], "gaoguan", 1);
            expect_report(f, periods[i], "", 1);
        }
        got_t g;
        read_period(f, "u/county/disputes.resolved/", "2022", &g);
        assert_int_equal(g.n, 1);
        assert_true(g.v[0].present && g.v[0].num == 0);
        read_period(f, "u/county/disputes.resolved/", "2023-12-30", &g);
        assert_true(g.v[0].present && g.v[0].num == 0);
        assert_int_equal(harness_restart(&f->h, NULL), 0);
    }
    /* The CLI: a table with the labels, and --compare against 2022. */
    cli_result_t r = run_expect(
        f, 0,
        (const char *const[]){"get", "--period", "2023", "--town", "gaoguan", "--labels", NULL});
    if (strstr(r.out, "化解矛盾纠纷") == NULL || strstr(r.out, " 216") == NULL ||
        strstr(r.out, "98.6%") == NULL)
        fail_msg("tally get --period 2023 --labels:\n%s", r.out);
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"get", "--period", "2023", "--metric", "disputes.resolved",
                                         "--compare", "--json", NULL});
    if (strstr(r.out, "\"2023\":216") == NULL || strstr(r.out, "\"2022\":0") == NULL ||
        strstr(r.out, "\"relation\":\"previous,year_ago\"") == NULL)
        fail_msg("tally get --period 2023 --compare --json:\n%s", r.out);
    cli_result_free(&r);
}

/* 2. Pushed twice more (2022-06-30 and again 2023-12-31), killed before
 * the history's writer ran and after: every cell counts each record
 * exactly once. */
static void test_exactly_once_across_kill(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    push_report(f, "2023-12-31");
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    expect_report(f, "2023", "gaoguan", 1);
    push_report(f, "2023-12-31");
    push_report(f, "2022-06-30");
    usleep(1200 * 1000); /* the writer stores them: a restart must not add them again */
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    expect_report(f, "2023", "gaoguan", 2);
    expect_report(f, "2023-12-31", "", 2);
    expect_report(f, "2022", "gaoguan", 1);
    expect_report(f, "2022-Q2", "", 1);
}

/* 3. A damaged history.db is set aside and rebuilt from the journal. */
static void test_damaged_database(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    push_report(f, "2023-12-31");
    /* A clean stop folds SQLite's write-ahead log into the file, which is
     * then overwritten from its first byte to its last. */
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    char path[HARNESS_PATH_MAX];
    snprintf(path, sizeof path, "%s/state/history.db", f->h.dir);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long size = ftell(fp);
    assert_true(size > 0);
    rewind(fp);
    for (long i = 0; i < size; i++)
        fputc(0x5a, fp);
    fclose(fp);
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    if (strstr(harness_log(&f->h), "it is set aside as history.db.damaged-") == NULL)
        fail_msg("no message about the damaged database:\n%s", harness_log(&f->h));
    expect_report(f, "2023", "gaoguan", 1);
    expect_report(f, "2023-12", "", 1);
}

static void on_many(void *ctx, const tally_tally_t *t)
{
    struct many {
        size_t n;
        int64_t sum;
        bool column_ok;
    } *m = ctx;
    if (strcmp(t->metric, "disputes.resolved") != 0)
        return; /* the ratio scopes come along (disputes.resolution_rate) */
    m->n++;
    m->sum += t->values[0].num;
    if (t->nvalues != 1 || strcmp(t->values[0].column, "2023-12") != 0)
        m->column_ok = false;
}

typedef struct pts {
    char name[64][16];
    int64_t v[64];
    bool present[64];
    int n, kind;
} pts_t;

static void on_point(void *ctx, int kind, const tally_value_t *value)
{
    pts_t *p = ctx;
    if (p->n == 64)
        return;
    p->kind = kind;
    snprintf(p->name[p->n], sizeof p->name[0], "%s", value->column);
    p->v[p->n] = value->num;
    p->present[p->n] = value->present;
    p->n++;
}

/* 4. Trends: the months from 2023-10 to 2024-01 of one township, a ratio
 * by year; `tally history` as a table and CSV. */
static void test_range(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    push_report(f, "2023-12-31");
    char err[512] = "";
    tally_request_t req = {.timeout_ms = 20000, .errbuf = err, .errbuf_len = sizeof err};
    pts_t p = {0};
    int rc = tally_range_req(f->h.req_endpoint, &req, "disputes.resolved", "gaoguan", "month",
                             "2023-10", "2024-01", on_point, &p);
    if (rc != 0)
        fail_msg("tally_range_req: %s: %s", tally_strerror(rc), err);
    assert_int_equal(p.n, 4);
    const char *names[] = {"2023-10", "2023-11", "2023-12", "2024-01"};
    const int64_t want[] = {0, 0, 216, 0};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(p.name[i], names[i]);
        assert_true(p.present[i]);
        assert_int_equal(p.v[i], want[i]);
    }
    pts_t r = {0};
    rc = tally_range_req(f->h.req_endpoint, &req, "disputes.resolution_rate", NULL, "year", "2022",
                         "2023", on_point, &r);
    assert_int_equal(rc, 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.kind, TALLY_KIND_RATIO);
    assert_false(r.present[0]); /* 0/0 in 2022: no value */
    assert_true(r.present[1]);

    cli_result_t c = run_expect(
        f, 0,
        (const char *const[]){"history", "--metric", "disputes.resolved", "--town", "gaoguan",
                              "--by", "quarter", "--from", "2023", "--to", "2023", "--csv", NULL});
    assert_string_equal(c.out, "period,disputes.resolved\n2023-Q1,0\n2023-Q2,0\n2023-Q3,0\n"
                               "2023-Q4,216\n");
    cli_result_free(&c);
    c = run_expect(f, 0,
                   (const char *const[]){"history", "-m", "disputes.resolution_rate", "--by",
                                         "year", "--from", "2023", "--json", NULL});
    if (strstr(c.out, "{\"period\":\"2023\",\"value\":{\"num\":216,\"den\":219") == NULL)
        fail_msg("tally history --json:\n%s", c.out);
    cli_result_free(&c);
}

/* 5. Bad arguments: named, exit 2, nothing asked of the daemon. */
static void test_bad_arguments(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    static const struct {
        const char *args[16];
        const char *says;
    } cases[] = {
        {{"get", "--period", "2023-13", NULL}, "--period '2023-13' is not a period"},
        {{"get", "--period", "2099", NULL}, "--period '2099' has not begun yet"},
        {{"get", "--period", "1999", NULL}, "--period '1999' is not a period"},
        {{"get", "--compare", NULL}, "--compare needs --period"},
        {{"get", "--period", "2023", "--town", "nowhere", NULL}, "--town 'nowhere'"},
        {{"history", "-m", "disputes.resolved", "--by", "day", "--from", "2000", "--to", "2030",
          NULL},
         "--to '2030' has not begun yet"},

        {{"history", "-m", "disputes.resolved", "--by", "week", "--from", "2023", NULL},
         "--by 'week'"},
        {{"history", "--by", "month", "--from", "2023", NULL}, "--metric is required"},
        {{"history", "-m", "no.such", "--by", "month", "--from", "2023", NULL},
         "--metric 'no.such'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_result_t r = run_expect(f, 2, cases[i].args);
        if (strstr(r.err, cases[i].says) == NULL)
            fail_msg("case %zu: expected '%s' in:\n%s", i, cases[i].says, r.err);
        assert_string_equal(r.out, "");
        cli_result_free(&r);
    }
}

/* 6. An answer larger than one batch (700 townships: the daemon sends it
 * over several loop iterations) arrives whole; a figure stamped in a
 * closed period tells the series' subscribers which periods changed. */
static void test_large_answer_and_period_changed(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_townships = 1000\n", NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    const int64_t dec31 = 1704002400000LL; /* 2023-12-31T14:00+08:00 */
    for (int i = 0; i < 700; i++) {
        char town[16];
        snprintf(town, sizeof town, "t%03d", i);
        harness_ack_t ack;
        assert_int_equal(
            harness_submit_one(&c, (uint64_t)i + 1, town, dec31, "disputes.resolved", i, &ack), 0);
        assert_int_equal(ack.status, PROTO_ACK_ACCEPTED);
    }
    char err[512] = "";
    tally_request_t req = {.timeout_ms = 20000, .errbuf = err, .errbuf_len = sizeof err};
    struct many {
        size_t n;
        int64_t sum;
        bool column_ok;
    } m = {0, 0, true};
    int rc = tally_period_req(f->h.req_endpoint, &req, "u/town/", "2023-12", on_many, &m);
    if (rc != 0)
        fail_msg("tally_period_req: %s: %s", tally_strerror(rc), err);
    assert_int_equal(m.n, 700);
    assert_int_equal(m.sum, 699 * 700 / 2);
    assert_true(m.column_ok);

    /* PERIOD_CHANGED on the series' topic. */
    void *sub = zmq_socket(f->h.zctx, ZMQ_SUB);
    assert_non_null(sub);
    int zero = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(sub, f->h.pub_endpoint), 0);
    assert_int_equal(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "u/town/t007/", 12), 0);
    usleep(300 * 1000); /* the subscription reaches the daemon */
    harness_ack_t ack;
    assert_int_equal(harness_submit_one(&c, 701, "t007", dec31, "disputes.resolved", 5, &ack), 0);
    bool seen = false;
    int64_t deadline = harness_mono_ms() + 10000;
    while (!seen && harness_mono_ms() < deadline) {
        zmq_pollitem_t it = {.socket = sub, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 500) <= 0)
            continue;
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&topic, sub, 0) >= 0 && zmq_msg_more(&topic) &&
            zmq_msg_recv(&body, sub, 0) >= 0) {
            proto_msg_t pm;
            if (proto_decode(zmq_msg_data(&body), zmq_msg_size(&body), &pm, NULL, 0, NULL) == 0 &&
                pm.type == PROTO_PERIOD_CHANGED) {
                assert_true(proto_str_eq(pm.u.period_changed.metric, "disputes.resolved"));
                assert_true(proto_str_eq(pm.u.period_changed.scope, "t007"));
                assert_int_equal(pm.u.period_changed.nperiods, 4);
                const char *want[] = {"2023-12-31", "2023-12", "2023-Q4", "2023"};
                for (int i = 0; i < 4; i++)
                    assert_true(proto_str_eq(pm.u.period_changed.periods[i], want[i]));
                seen = true;
            }
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
    }
    zmq_close(sub);
    harness_client_close(&c);
    if (!seen)
        fail_msg("no PERIOD_CHANGED for t007's disputes.resolved");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_2023, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exactly_once_across_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_answer_and_period_changed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
