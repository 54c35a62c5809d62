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
#include <sqlite3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "calperiod.h"
#include "cli_json.h"
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
    void *scratch[2]; /* freed by teardown, also after a failure */
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
    /* Keep days for good, so that 2023's days stay readable whatever the
     * date the tests run on. */
    char *days = strstr(f->conf, "days = 1100");
    if (days == NULL)
        return -1;
    memcpy(days, "days=36600 ", strlen("days = 1100"));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = harness_finish(&f->h) == 0 ? 0 : -1;
    harness_cleanup(&f->h);
    free(f->conf);
    free(f->scratch[0]);
    free(f->scratch[1]);
    free(f);
    return rc;
}

static cli_result_t run_expect(fx_t *f, int status, const char *const *args)
{
    return cli_expect(&f->h, status, args);
}

/* The command exits 0 printing exactly want. */
static void expect_out(fx_t *f, const char *const *args, const char *want)
{
    cli_result_t r = run_expect(f, 0, args);
    assert_string_equal(r.out, want);
    cli_result_free(&r);
}

static void push_report(fx_t *f, const char *when)
{
    const char *push[] = {"push", "--town", "gaoguan", "--time", when, "--file", f->csv, NULL};
    cli_result_t r = run_expect(f, 0, push);
    cli_result_free(&r);
}

/* The same report pushed once more, on purpose: it counts twice. */
static void push_report_again(fx_t *f, const char *when)
{
    const char *push[] = {"push",   "--town", "gaoguan", "--time", when,
                          "--file", f->csv,   "--again", NULL};
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

/* 1b. Townships and metrics as people write them: the catalog's display
 * name 高观镇 and labels 化解矛盾纠纷, 矛盾纠纷化解率 stand for their ids
 * in get, history, report and push (tallyd refuses a catalog where two
 * entries share one: test_config). */
static void test_names_as_people_write_them(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    push_report(f, "2023-12-31");
    cli_result_t r = run_expect(f, 0,
                                (const char *const[]){"get", "--period", "2023", "--town", "高观镇",
                                                      "--metric", "化解矛盾纠纷", "--json", NULL});
    if (strstr(r.out, "\"metric\":\"disputes.resolved\",\"scope\":\"gaoguan\"") == NULL ||
        strstr(r.out, "\"2023\":216") == NULL)
        fail_msg("tally get --period 2023 --town 高观镇 --metric 化解矛盾纠纷:\n%s", r.out);
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"get", "--town", "高观镇", "--metric", "矛盾纠纷化解率",
                                         "--json", NULL});
    if (strstr(r.out, "\"metric\":\"disputes.resolution_rate\",\"scope\":\"gaoguan\"") == NULL)
        fail_msg("tally get --town 高观镇 --metric 矛盾纠纷化解率:\n%s", r.out);
    cli_result_free(&r);
    expect_out(f,
               (const char *const[]){"history", "-m", "化解矛盾纠纷", "--town", "高观镇", "--by",
                                     "year", "--from", "2023", "--csv", NULL},
               "period,disputes.resolved\n2023,216\n");
    r = run_expect(f, 0,
                   (const char *const[]){"report", "--period", "2023", "--town", "高观镇",
                                         "--format", "csv", NULL});
    if (strstr(r.out, "化解矛盾纠纷") == NULL || strstr(r.out, "216") == NULL)
        fail_msg("tally report --town 高观镇:\n%s", r.out);
    cli_result_free(&r);
    /* push: likewise, the pairs and the township */
    r = run_expect(f, 0,
                   (const char *const[]){"push", "--town", "高观镇", "--time", "2023-12-31",
                                         "化解矛盾纠纷=4", NULL});
    if (strncmp(r.out, "accepted 1 sample for gaoguan ", 30) != 0)
        fail_msg("tally push --town 高观镇 化解矛盾纠纷=4:\n%s", r.out);
    cli_result_free(&r);
    expect_out(f,
               (const char *const[]){"history", "-m", "disputes.resolved", "--town", "gaoguan",
                                     "--by", "year", "--from", "2023", "--csv", NULL},
               "period,disputes.resolved\n2023,220\n");
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
    push_report_again(f, "2023-12-31");
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
        {{"history", "-m", "disputes.resolved", "--by", "day", "--from", "2099", "--to", "2099",
          NULL},
         "--from '2099' has not begun yet"},

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

/* The date of day days_from_epoch as YYYY-MM-DD. */
static void day_name(int32_t day, char out[CALPERIOD_NAME_MAX])
{
    calperiod_format((calperiod_t){CALPERIOD_DAY, day}, out, CALPERIOD_NAME_MAX);
}

/* 4b. --compare of a day whose days a year earlier the daemon no longer
 * keeps ([history] days = 200): the day is shown, the comparison says so
 * and shows nothing, in get and in report (it failed outright, over a
 * day the user never typed). */
static void test_compare_expired(void **state)
{
    fx_t *f = *state;
    char *conf = strdup(f->conf);
    assert_non_null(conf);
    char *days = strstr(conf, "days=36600 ");
    assert_non_null(days);
    memcpy(days, "days=200   ", strlen("days=36600 "));
    assert_int_equal(harness_start(&f->h, conf, NULL), 0);
    free(conf);
    char day[CALPERIOD_NAME_MAX], at[64];
    day_name((int32_t)((harness_now_ms() / 1000 + 8 * 3600) / 86400) - 100, day);
    snprintf(at, sizeof at, "%sT10:00:00", day);
    cli_result_t r = run_expect(f, 0,
                                (const char *const[]){"push", "--town", "gaoguan", "--time", at,
                                                      "disputes.resolved=7", NULL});
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"get", "--period", day, "--compare", "-m",
                                         "disputes.resolved", "--town", "gaoguan", NULL});
    if (strstr(r.err, "is older than the days the daemon keeps: nothing to compare with") == NULL ||
        strstr(r.out, " 7 ") == NULL)
        fail_msg("get --period %s --compare:\nstdout %s\nstderr %s", day, r.out, r.err);
    /* Its columns show -, as the message says, not blanks (a line ending
     * in spaces). */
    if (strstr(r.out, " \n") != NULL || strstr(r.out, "-  -") == NULL)
        fail_msg("get --period %s --compare: blank comparison cells:\n%s", day, r.out);
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"report", "--period", day, "--town", "gaoguan",
                                         "--compare", "-f", "md", NULL});
    if (strstr(r.out, "的逐日数据已超出保存期限，无法比较") == NULL ||
        strstr(r.out, "| 化解矛盾纠纷 | 件 | 7 |  |  |  |") == NULL ||
        strstr(r.err, "older than the daemon keeps") == NULL)
        fail_msg("report --period %s --compare:\nstdout %s\nstderr %s", day, r.out, r.err);
    cli_result_free(&r);
    /* The day itself, out of reach, is still refused (status 1). */
    day_name((int32_t)((harness_now_ms() / 1000 + 8 * 3600) / 86400) - 300, day);
    r = run_expect(f, 1, (const char *const[]){"get", "--period", day, NULL});
    assert_non_null(strstr(r.err, "older than"));
    cli_result_free(&r);
}

/* Write conf, send SIGHUP and wait for the n-th "reloaded" line, then for
 * the history writer's turns that drop what left the retention. */
static void reload_days(fx_t *f, const char *conf, size_t n)
{
    assert_int_equal(harness_write_file(&f->h, "tallyd.conf", conf, NULL, 0), 0);
    assert_int_equal(kill(f->h.pid, SIGHUP), 0);
    for (int i = 0; i < 100 && harness_count_in(harness_log(&f->h), "reloaded") < n; i++)
        usleep(50000);
    assert_int_equal(harness_count_in(harness_log(&f->h), "reloaded"), n);
    usleep(2000000);
}

/* 4c. Days dropped while fewer were kept ([history] days lowered by a
 * reload) stay dropped when more are kept again: the day reads as no
 * longer kept, in this run and after a restart, not as a day without
 * figures (it read 0), and its month keeps the figure. */
static void test_days_lowered_then_raised(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    int32_t today = (int32_t)((harness_now_ms() / 1000 + 8 * 3600) / 86400);
    char day[CALPERIOD_NAME_MAX], month[CALPERIOD_NAME_MAX], at[64];
    day_name(today - 100, day);
    snprintf(at, sizeof at, "%sT10:00:00", day);
    snprintf(month, sizeof month, "%.7s", day);
    const char *get_day[] = {"get",    "--period", day, "-m", "disputes.resolved",
                             "--town", "gaoguan",  NULL};
    const char *get_month[] = {"get",    "--period", month, "-m", "disputes.resolved",
                               "--town", "gaoguan",  NULL};
    cli_result_t r = run_expect(f, 0,
                                (const char *const[]){"push", "--town", "gaoguan", "--time", at,
                                                      "disputes.resolved=7", NULL});
    cli_result_free(&r);
    r = run_expect(f, 0, get_day);
    assert_non_null(strstr(r.out, " 7\n"));
    cli_result_free(&r);

    char *lowered = strdup(f->conf);
    assert_non_null(lowered);
    char *days = strstr(lowered, "days=36600 ");
    assert_non_null(days);
    memcpy(days, "days=30    ", strlen("days=36600 "));
    reload_days(f, lowered, 1);
    free(lowered);
    assert_non_null(strstr(harness_log(&f->h), "history: days 36600 -> 30: the days before "));
    r = run_expect(f, 1, get_day);
    assert_non_null(strstr(r.err, "older than"));
    cli_result_free(&r);

    reload_days(f, f->conf, 2);
    for (int run = 0; run < 2; run++) {
        r = run_expect(f, 1, get_day);
        if (strstr(r.err, "older than") == NULL)
            fail_msg("run %d: get --period %s:\nstdout %s\nstderr %s", run, day, r.out, r.err);
        cli_result_free(&r);
        r = run_expect(f, 0, get_month);
        if (strstr(r.out, " 7\n") == NULL)
            fail_msg("run %d: get --period %s:\nstdout %s", run, month, r.out);
        cli_result_free(&r);
        if (run == 0)
            assert_int_equal(harness_restart(&f->h, NULL), 0);
    }
}

/* 5b. Whether a period has begun is the daemon's call, in its zone: a
 * daemon 14 hours ahead of UTC (Pacific/Kiritimati) answers for its
 * today a command on a machine 12 hours behind (TZ=Etc/GMT+12), where it
 * is a day or two earlier; its tomorrow is refused, by the daemon or, when
 * it has begun nowhere, by the command. */
static void test_period_in_daemon_zone(void **state)
{
    fx_t *f = *state;
    char *tz = strstr(f->conf, "timezone = Asia/Shanghai");
    assert_non_null(tz);
    const char kiri[] = "timezone = Pacific/Kiritimati";
    char *conf = malloc(strlen(f->conf) + sizeof kiri);
    assert_non_null(conf);
    f->scratch[0] = conf;
    snprintf(conf, strlen(f->conf) + sizeof kiri, "%.*s%s%s", (int)(tz - f->conf), f->conf, kiri,
             tz + strlen("timezone = Asia/Shanghai"));
    assert_int_equal(harness_start(&f->h, conf, NULL), 0);
    const char *was = getenv("TZ");
    char *saved = was != NULL ? strdup(was) : NULL;
    f->scratch[1] = saved;
    assert_int_equal(setenv("TZ", "Etc/GMT+12", 1), 0);

    time_t now = time(NULL) + 14 * 3600;
    struct tm tm;
    gmtime_r(&now, &tm);
    int32_t today = calperiod_days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    char day[CALPERIOD_NAME_MAX], next[CALPERIOD_NAME_MAX];
    day_name(today, day);
    day_name(today + 1, next);

    cli_result_t r = run_expect(
        f, 0, (const char *const[]){"push", "--town", "gaoguan", "disputes.resolved=2", NULL});
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"get", "--period", day, "--town", "gaoguan", "--metric",
                                         "disputes.resolved", "--no-labels", NULL});
    if (strstr(r.out, day) == NULL || strstr(r.out, " 2\n") == NULL)
        fail_msg("tally get --period %s: expected column %s with 2 in:\n%s", day, day, r.out);
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"history", "-m", "disputes.resolved", "--by", "day",
                                         "--from", day, "--csv", NULL});
    char want[64];
    snprintf(want, sizeof want, "%s,2\n", day);
    if (strstr(r.out, want) == NULL)
        fail_msg("tally history --from %s: expected '%s' in:\n%s", day, want, r.out);
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"report", "--period", day, "--town", "gaoguan", "--format",
                                         "csv", NULL});
    cli_result_free(&r);
    r = run_expect(f, 2, (const char *const[]){"get", "--period", next, NULL});
    if (strstr(r.err, "has not begun yet") == NULL)
        fail_msg("tally get --period %s (tomorrow in the daemon's zone):\n%s", next, r.err);
    cli_result_free(&r);
    /* A span or range may end ahead: today's figures, tomorrow's none. */
    char span[2 * CALPERIOD_NAME_MAX + 4];
    snprintf(span, sizeof span, "%s..%s", day, next);
    r = run_expect(f, 0,
                   (const char *const[]){"get", "--period", span, "--town", "gaoguan", "--metric",
                                         "disputes.resolved", "--json", NULL});
    if (strstr(r.out, "\"disputes.resolved\"") == NULL || strstr(r.out, ":2}") == NULL)
        fail_msg("tally get --period %s: expected 2 in:\n%s", span, r.out);
    cli_result_free(&r);
    char ahead[2 * CALPERIOD_NAME_MAX + 8];
    r = run_expect(f, 0,
                   (const char *const[]){"history", "-m", "disputes.resolved", "--by", "day",
                                         "--from", day, "--to", next, "--csv", NULL});
    snprintf(ahead, sizeof ahead, "%s,2\n%s,\n", day, next);
    if (strstr(r.out, ahead) == NULL)
        fail_msg("tally history --from %s --to %s: expected '%s' in:\n%s", day, next, ahead, r.out);
    cli_result_free(&r);

    /* A --time without an offset is a time of the daemon's calendar:
     * yesterday 00:30 there, not on this machine (where it would be
     * today 02:30 in the daemon's zone). */
    char yday[CALPERIOD_NAME_MAX], at[40];
    day_name(today - 1, yday);
    snprintf(at, sizeof at, "%s 00:30", yday);
    r = run_expect(f, 0,
                   (const char *const[]){"push", "--town", "gaoguan", "--time", at,
                                         "disputes.resolved=5", NULL});
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"get", "--period", yday, "--town", "gaoguan", "--metric",
                                         "disputes.resolved", "--no-labels", NULL});
    if (strstr(r.out, " 5\n") == NULL)
        fail_msg("push --time '%s' did not count on %s in the daemon's zone:\n%s", at, yday, r.out);
    cli_result_free(&r);
    /* The daemon down: the figures are spooled, read in the zone the push
     * above kept in the client state (not this machine's), said. */
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    char spool[HARNESS_PATH_MAX];
    snprintf(spool, sizeof spool, "%s/spool", f->h.dir);
    r = run_expect(f, 3,
                   (const char *const[]){"push", "--town", "gaoguan", "--time", at, "--spool",
                                         spool, "--timeout", "1", "disputes.resolved=1", NULL});
    if (strstr(r.err, "the zone it last gave") == NULL ||
        strstr(r.err, "is read in Etc/GMT+12") != NULL)
        fail_msg("push --time '%s' with the daemon down:\n%s", at, r.err);
    cli_result_free(&r);

    if (saved != NULL)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
}

/* The values of --metric's tallies in a `tally get --period P --json`
 * document, by metric: counters and gauges (num; present). */
static const cj_t *json_tally(const cj_t *doc, const char *metric)
{
    const cj_t *t = cj_get(doc, "tallies");
    assert_non_null(t);
    for (size_t i = 0; i < t->n; i++) {
        const cj_t *m = cj_get(&t->items[i], "metric");
        if (m != NULL && strcmp(m->s, metric) == 0)
            return &t->items[i];
    }
    return NULL;
}

static cj_t get_json(fx_t *f, const char *const *args)
{
    cli_result_t r = run_expect(f, 0, args);
    cj_t doc;
    char err[256];
    if (cj_parse(r.out, strlen(r.out), &doc, err, sizeof err) != 0)
        fail_msg("%s: %s", err, r.out);
    cli_result_free(&r);
    return doc;
}

/* The daemon's day key now, in its zone. */
static int32_t daemon_today(fx_t *f)
{
    tally_clock_t c;
    char err[256] = "";
    tally_request_t req = {.timeout_ms = 20000, .errbuf = err, .errbuf_len = sizeof err};
    if (tally_clock_req(f->h.req_endpoint, &req, &c) != 0)
        fail_msg("tally_clock_req: %s", err);
    int64_t s = c.now_ms / 1000 + c.utc_offset_s;
    return (int32_t)((s - (((s % 86400) + 86400) % 86400)) / 86400);
}

static void push_on(fx_t *f, int32_t day, const char *sample)
{
    char when[CALPERIOD_NAME_MAX];
    day_name(day, when);
    cli_result_t r = run_expect(
        f, 0, (const char *const[]){"push", "--town", "gaoguan", "--time", when, sample, NULL});
    cli_result_free(&r);
}

/* 6b. A period not over yet holds the days so far: --compare sets them
 * against as many days of the period before and of the same period a year
 * earlier, not against whole periods (which would always look larger);
 * the report says so in its title.  --period FROM..TO reads a span of
 * days (SPAN_REQ; what it refuses: test_recall). */
static void test_to_date_and_spans(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    int32_t today = daemon_today(f), mf, ml;
    calperiod_t month = calperiod_of_day(CALPERIOD_MONTH, today);
    calperiod_days(month, &mf, &ml);
    calperiod_t ya_today = calperiod_year_ago((calperiod_t){CALPERIOD_DAY, today});
    calperiod_t ya_first = calperiod_year_ago((calperiod_t){CALPERIOD_DAY, mf});
    int32_t yf, yl;
    calperiod_days(calperiod_year_ago(month), &yf, &yl);
    bool open = today < ml;
    /* In the compared days: 5 a year ago, 2 in the month before; after
     * them (when the month is open): 50 and 20, which must not count. */
    push_on(f, ya_first.key, "disputes.resolved=5");
    int32_t pf, pl;
    calperiod_days(calperiod_prev(month), &pf, &pl);
    push_on(f, pf, "disputes.resolved=2");
    if (open && ya_today.key < yl)
        push_on(f, ya_today.key + 1, "disputes.resolved=50");
    if (open && pf + (today - mf) < pl)
        push_on(f, pf + (today - mf) + 1, "disputes.resolved=20");
    push_on(f, today, "disputes.resolved=3");

    char mname[CALPERIOD_NAME_MAX], a[CALPERIOD_NAME_MAX], b[CALPERIOD_NAME_MAX], ya[64], pv[64];
    calperiod_format(month, mname, sizeof mname);
    if (open) {
        day_name(ya_first.key, a);
        day_name(ya_today.key, b);
        snprintf(ya, sizeof ya, "%s..%s", a, b);
        day_name(pf, a);
        day_name(pf + (today - mf) < pl ? pf + (today - mf) : pl, b);
        snprintf(pv, sizeof pv, "%s..%s", a, b);
    } else {
        calperiod_format(calperiod_year_ago(month), ya, sizeof ya);
        calperiod_format(calperiod_prev(month), pv, sizeof pv);
    }
    cj_t doc =
        get_json(f, (const char *const[]){"get", "--period", mname, "--town", "gaoguan", "--metric",
                                          "disputes.resolved", "--compare", "--json", NULL});
    const cj_t *t = json_tally(&doc, "disputes.resolved");
    assert_non_null(t);
    const cj_t *vals = cj_get(t, "values"), *v;
    char today_name[CALPERIOD_NAME_MAX];
    day_name(today, today_name);
    if ((v = cj_get(vals, mname)) == NULL || v->i != 3 || (v = cj_get(vals, ya)) == NULL ||
        v->i != 5 || (v = cj_get(vals, pv)) == NULL || v->i != 2 ||
        cj_get(&doc, "through") == NULL || strcmp(cj_get(&doc, "through")->s, today_name) != 0)
        fail_msg("get --period %s --compare: expected %s 3, %s 5, %s 2, through %s", mname, mname,
                 ya, pv, today_name);
    cj_free(&doc);

    /* The report of this year to date, against last year's same days. */
    calperiod_t yr = calperiod_of_day(CALPERIOD_YEAR, today);
    char year[8], yago[64];
    snprintf(year, sizeof year, "%d", (int)yr.key);
    int32_t y0, y1;
    calperiod_days(yr, &y0, &y1);
    /* Headed in Chinese: 2025年1月1日—12月8日, or the whole year 2025年. */
    int yy, ym, yd;
    calperiod_civil_from_days(ya_today.key, &yy, &ym, &yd);
    if (today < y1)
        snprintf(yago, sizeof yago, "%d年1月1日—%d月%d日", yy, ym, yd);
    else
        snprintf(yago, sizeof yago, "%d年", yy);
    cli_result_t r =
        run_expect(f, 0,
                   (const char *const[]){"report", "--period", year, "--town", "gaoguan",
                                         "--compare", "--format", "md", NULL});
    char want[160];
    int ty, tmo, td;
    calperiod_civil_from_days(today, &ty, &tmo, &td);
    snprintf(want, sizeof want, "（截至%d年%d月%d日）", ty, tmo, td);
    if (strstr(r.out, want) == NULL || strstr(r.out, yago) == NULL)
        fail_msg("report --period %s --compare: expected '%s' and '%s' in:\n%s", year, want, yago,
                 r.out);
    cli_result_free(&r);
    /* Its CSV says so on every row: period and through, last. */
    r = run_expect(f, 0,
                   (const char *const[]){"report", "--period", year, "--town", "gaoguan",
                                         "--format", "csv", NULL});
    snprintf(want, sizeof want, ",%s,%s\r\n", year, today_name);
    if (strncmp(r.out, "metric,kind,unit,label,value,period,through\r\n", 45) != 0 ||
        strstr(r.out, "\ndisputes.resolved,") == NULL ||
        strstr(strstr(r.out, "\ndisputes.resolved,"), want) == NULL)
        fail_msg("report --period %s --format csv: expected rows ending '%s' in:\n%s", year, want,
                 r.out);
    cli_result_free(&r);

    /* A span: the same days of last year, whatever their periods. */
    char span[64];
    day_name(ya_first.key, a);
    day_name(ya_today.key, b);
    snprintf(span, sizeof span, "%s..%s", a, b);
    doc = get_json(f, (const char *const[]){"get", "--period", span, "--town", "gaoguan", "-m",
                                            "disputes.resolved", "--json", NULL});
    t = json_tally(&doc, "disputes.resolved");
    if (t == NULL || (v = cj_get(cj_get(t, "values"), span)) == NULL || v->i != 5)
        fail_msg("get --period %s: expected 5", span);
    cj_free(&doc);
    /* A trend's last point, this month, is marked as running to today. */
    r = run_expect(f, 0,
                   (const char *const[]){"history", "-m", "disputes.resolved", "--town", "gaoguan",
                                         "--by", "month", "--from", mname, NULL});
    snprintf(want, sizeof want, "* to %s, the daemon's today", today_name);
    char mark[32];
    snprintf(mark, sizeof mark, "%s *", mname);
    if (strstr(r.out, mark) == NULL || strstr(r.out, want) == NULL)
        fail_msg("history of this month: expected '%s' and '%s' in:\n%s", mark, want, r.out);
    cli_result_free(&r);
    /* Its 同比 (history --compare): 3 against the same days a year
     * earlier (5, not the 50 after them): -2, -40%. */
    char pname[CALPERIOD_NAME_MAX];
    calperiod_format(calperiod_prev(month), pname, sizeof pname);
    const char *const cmp[] = {"history", "-m",      "disputes.resolved",
                               "--town",  "gaoguan", "--by",
                               "month",   "--from",  pname,
                               "--to",    mname,     "--compare",
                               "--json",  NULL};
    doc = get_json(f, cmp);
    const cj_t *pts = cj_get(&doc, "points"), *pt = pts && pts->n == 2 ? &pts->items[1] : NULL;
    const cj_t *yv = pt ? cj_get(pt, "year_ago") : NULL, *ch = pt ? cj_get(pt, "change") : NULL;
    if (pt == NULL || (v = cj_get(pt, "value")) == NULL || v->i != 3 || yv == NULL ||
        (v = cj_get(yv, "period")) == NULL || v->type != CJ_STR || strcmp(v->s, ya) != 0 ||
        (v = cj_get(yv, "value")) == NULL || v->i != 5 || ch == NULL ||
        (v = cj_get(ch, "abs")) == NULL || v->i != -2 || (v = cj_get(ch, "pct")) == NULL ||
        !v->is_int || v->i != -40)
        fail_msg("history --by month --from %s --to %s --compare: expected %s 3 against %s 5, "
                 "change -2 and -40 (whole numbers)",
                 pname, mname, mname, ya);
    cj_free(&doc);
    const char *const csv[] = {
        "history", "-m",  "disputes.resolved", "--town", "gaoguan", "--by", "month",
        "--from",  mname, "--compare",         "--csv",  NULL};
    r = run_expect(f, 0, csv);
    snprintf(want, sizeof want,
             "period,disputes.resolved,year_ago,change,change_pct\n%s,3,5,-2,-40.0%%\n", mname);
    if (strcmp(r.out, want) != 0)
        fail_msg("history --compare --csv: expected\n%s\ngot\n%s", want, r.out);
    cli_result_free(&r);
    r = run_expect(f, 2, (const char *const[]){"get", "--period", "2024..2023-06", NULL});
    if (strstr(r.err, "2024 begins after 2023-06 ends") == NULL)
        fail_msg("backwards span:\n%s", r.err);
    cli_result_free(&r);
    r = run_expect(f, 2, (const char *const[]){"report", "--period", "2023..", NULL});
    if (strstr(r.err, "'2023..': a span needs a period on both sides of '..'") == NULL)
        fail_msg("a span without its end:\n%s", r.err);
    cli_result_free(&r);
}

/* A correction of 高观镇's figures for June 2023, sent in 2024. */
static const struct {
    const char *metric;
    int64_t value;
} correction[] = {{"disputes.resolved", 2}, {"disputes.screened", 3}, {"grid.zones", 24}};

/* The value the report plus the correction gives metric in period p
 * ("2023" or "2023-Q2"): counters add; a gauge keeps its latest-stamped
 * figure (31 December's in 2023, the correction's in Q2). */
static bool expected_value(const fx_t *f, const char *metric, const char *p, int64_t *v)
{
    bool q2 = strcmp(p, "2023-Q2") == 0, gauge = strncmp(metric, "grid.", 5) == 0;
    int64_t report = 0, corr = 0;
    bool in_report = false, in_corr = false;
    for (size_t i = 0; i < f->nrows; i++)
        if (strcmp(f->rows[i].metric, metric) == 0) {
            report = f->rows[i].value;
            in_report = true;
        }
    for (size_t i = 0; i < sizeof correction / sizeof correction[0]; i++)
        if (strcmp(correction[i].metric, metric) == 0) {
            corr = correction[i].value;
            in_corr = true;
        }
    if (gauge) {
        *v = q2 ? corr : report;
        return q2 ? in_corr : in_report;
    }
    *v = (q2 ? 0 : report) + corr;
    return true;
}

/* 6. The report stamped 2023-12-31 and the correction stamped
 * 2023-06-30, SIGKILL in between and after: `tally get --period 2023
 * --town gaoguan --json` gives exactly the report plus the correction,
 * --period 2023-Q2 only the correction; after a 2024 push, --compare
 * gives the right changes. */
static void test_correction_and_compare(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    push_report(f, "2023-12-31");
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    cli_result_t r = run_expect(
        f, 0,
        (const char *const[]){"push", "--town", "gaoguan", "--time", "2023-06-30",
                              "disputes.resolved=2", "disputes.screened=3", "grid.zones=24", NULL});
    cli_result_free(&r);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);

    const char *periods[] = {"2023", "2023-Q2"};
    for (size_t k = 0; k < 2; k++) {
        cj_t doc = get_json(f, (const char *const[]){"get", "--period", periods[k], "--town",
                                                     "gaoguan", "--json", NULL});
        const cj_t *t = cj_get(&doc, "tallies");
        assert_non_null(t);
        assert_int_equal(t->n, 25); /* 22 figures, 3 ratios */
        for (size_t i = 0; i < t->n; i++) {
            const char *metric = cj_get(&t->items[i], "metric")->s;
            const cj_t *v = cj_get(cj_get(&t->items[i], "values"), periods[k]);
            assert_non_null(v);
            if (strcmp(cj_get(&t->items[i], "kind")->s, "ratio") == 0)
                continue;
            int64_t want;
            bool present = expected_value(f, metric, periods[k], &want);
            if (present != (v->type == CJ_NUM && v->is_int) || (present && v->i != want))
                fail_msg("%s %s: got %s %" PRId64 ", expected %s %" PRId64, periods[k], metric,
                         v->is_int ? "value" : "no value", v->i, present ? "value" : "no value",
                         want);
        }
        /* The resolution rate of the period: (216 + 2) / (219 + 3), 2 / 3. */
        const cj_t *rate =
            cj_get(cj_get(json_tally(&doc, "disputes.resolution_rate"), "values"), periods[k]);
        assert_non_null(rate);
        assert_int_equal(cj_get(rate, "num")->i, k == 0 ? 218 : 2);
        assert_int_equal(cj_get(rate, "den")->i, k == 0 ? 222 : 3);
        cj_free(&doc);
    }

    /* 2024: 300 resolved (one push in March); against 2023 (218): +82,
     * +37.6%; 2024-Q1 against 2023-Q4 (216) and 2023-Q1 (0, no %). */
    r = run_expect(f, 0,
                   (const char *const[]){"push", "--town", "gaoguan", "--time", "2024-03-31",
                                         "disputes.resolved=300", NULL});
    cli_result_free(&r);
    cj_t doc = get_json(f, (const char *const[]){"get", "--period", "2024", "--town", "gaoguan",
                                                 "--metric", "disputes.resolved", "--compare",
                                                 "--json", NULL});
    const cj_t *t = json_tally(&doc, "disputes.resolved");
    assert_non_null(t);
    assert_int_equal(cj_get(cj_get(t, "values"), "2024")->i, 300);
    assert_int_equal(cj_get(cj_get(t, "values"), "2023")->i, 218);
    const cj_t *ch = cj_get(cj_get(t, "changes"), "2023");
    assert_non_null(ch);
    assert_true(cj_get(ch, "abs")->d == 82.0);
    assert_true(cj_get(ch, "pct")->d > 37.61 && cj_get(ch, "pct")->d < 37.62);
    cj_free(&doc);

    doc = get_json(f, (const char *const[]){"get", "--period", "2024-Q1", "--town", "gaoguan",
                                            "--metric", "disputes.resolved", "--compare", "--json",
                                            NULL});
    t = json_tally(&doc, "disputes.resolved");
    assert_non_null(t);
    const cj_t *cmp = cj_get(&doc, "compare");
    assert_int_equal(cmp->n, 2);
    assert_string_equal(cj_get(&cmp->items[0], "period")->s, "2023-Q4");
    assert_string_equal(cj_get(&cmp->items[0], "relation")->s, "previous");
    assert_string_equal(cj_get(&cmp->items[1], "period")->s, "2023-Q1");
    assert_string_equal(cj_get(&cmp->items[1], "relation")->s, "year_ago");
    assert_int_equal(cj_get(cj_get(t, "values"), "2023-Q4")->i, 216);
    assert_int_equal(cj_get(cj_get(t, "values"), "2023-Q1")->i, 0);
    ch = cj_get(cj_get(t, "changes"), "2023-Q4");
    assert_true(cj_get(ch, "abs")->d == 84.0);
    assert_true(cj_get(ch, "pct")->d > 38.88 && cj_get(ch, "pct")->d < 38.89);
    ch = cj_get(cj_get(t, "changes"), "2023-Q1");
    assert_true(cj_get(ch, "abs")->d == 300.0);
    assert_int_equal(cj_get(ch, "pct")->type, CJ_NULL);
    cj_free(&doc);

    /* The table says the same. */
    r = run_expect(f, 0,
                   (const char *const[]){"get", "--period", "2024", "--town", "gaoguan", "--metric",
                                         "disputes.resolved", "--compare", "--no-labels", NULL});
    if (strstr(r.out, "+82") == NULL || strstr(r.out, "+37.6%") == NULL)
        fail_msg("tally get --period 2024 --compare:\n%s", r.out);
    cli_result_free(&r);
}

/* ---- PERIOD_CHANGED ---- */

typedef struct changes {
    char what[16][200]; /* "topic periods" */
    int n;
    bool saw_today; /* the UPDATE of today's sample arrived */
} changes_t;

static void on_change(harness_sub_t *s, const harness_event_t *ev, void *ctx)
{
    (void)s;
    changes_t *c = ctx;
    if (ev->type == PROTO_PERIOD_CHANGED && c->n < 16)
        snprintf(c->what[c->n++], sizeof c->what[0], "%s %s", ev->topic, ev->periods);
    if (ev->type == PROTO_UPDATE && ev->row != NULL && strcmp(ev->row->scope, "gaoguan") == 0)
        c->saw_today = true;
}

static bool two_changes(harness_sub_t *s, void *ctx)
{
    (void)s;
    return ((changes_t *)ctx)->n >= 2;
}

static bool saw_today(harness_sub_t *s, void *ctx)
{
    (void)s;
    return ((changes_t *)ctx)->saw_today;
}

/* 7. A figure stamped in closed periods tells subscribers which, once
 * for the township's series and once for the county's; a figure of
 * today tells nothing (its periods are open). */
static void test_period_changed(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    changes_t c = {0};
    harness_sub_t sub;
    assert_int_equal(harness_sub_open(&f->h, &sub, "", on_change, &c), 0);
    harness_client_t cl;
    assert_int_equal(harness_client_open(&f->h, &cl), 0);
    harness_ack_t ack;
    /* Today's figure first: its UPDATE, and no PERIOD_CHANGED. */
    assert_int_equal(
        harness_submit_one(&cl, 1, "gaoguan", harness_now_ms(), "disputes.resolved", 7, &ack), 0);
    assert_int_equal(ack.status, 0);
    assert_int_equal(harness_sub_until(&sub, saw_today, &c, 20000), 0);
    /* 2023-06-30 12:00 in Asia/Shanghai. */
    assert_int_equal(
        harness_submit_one(&cl, 2, "gaoguan", 1688097600000LL, "disputes.resolved", 5, &ack), 0);
    assert_int_equal(ack.status, 0);
    assert_int_equal(harness_sub_until(&sub, two_changes, &c, 20000), 0);
    assert_int_equal(harness_sub_wait_stable(&sub, 20000), 0);
    assert_int_equal(c.n, 2);
    const char *want[] = {"u/town/gaoguan/disputes.resolved/ 2023-06-30,2023-06,2023-Q2,2023",
                          "u/county/disputes.resolved/ 2023-06-30,2023-06,2023-Q2,2023"};
    for (int i = 0; i < 2; i++)
        if (strcmp(c.what[0], want[i]) != 0 && strcmp(c.what[1], want[i]) != 0)
            fail_msg("no PERIOD_CHANGED '%s'; got '%s' and '%s'", want[i], c.what[0], c.what[1]);
    harness_client_close(&cl);
    harness_sub_close(&sub);
}

/* ---- killed while history is being written ---- */

#define KR_RECORDS 3000
#define KR_BATCH   250
#define KR_TOWNS   5
#define KR_DAYS    400
/* 2025-01-01 00:00 in Asia/Shanghai (UTC+8, no daylight saving time). */
#define KR_BASE_MS 1735660800000LL
#define KR_ZONE_MS (8 * 3600000LL)

static const char *const kr_towns[KR_TOWNS] = {"gaoguan", "bashan", "pingba", "fuxing", "gecheng"};

typedef struct kr_cell {
    int64_t resolved;
    bool has_zones;
    int64_t zones, zones_ms;
} kr_cell_t;

/* Expected cells: [scope][type][index from the first period of the type],
 * scope KR_TOWNS the county. */
typedef struct kr {
    kr_cell_t cell[KR_TOWNS + 1][4][KR_DAYS + 1];
    calperiod_t first[4], last[4];
    int64_t checked;
    char why[256];
} kr_t;

static int64_t kr_time(int i)
{
    return KR_BASE_MS + (int64_t)((i * 37) % KR_DAYS) * 86400000LL +
           (int64_t)(((int64_t)i * 7919) % 86400) * 1000 + i % 1000;
}

static int32_t kr_day(int64_t t_ms)
{
    int64_t l = t_ms + KR_ZONE_MS;
    return (int32_t)((l - (((l % 86400000LL) + 86400000LL) % 86400000LL)) / 86400000LL);
}

static void kr_expect(kr_t *k)
{
    memset(k->cell, 0, sizeof(k->cell));
    int32_t d0 = kr_day(KR_BASE_MS);
    assert_int_equal(d0, calperiod_days_from_civil(2025, 1, 1));
    for (int t = 0; t < 4; t++) {
        k->first[t] = calperiod_of_day(t, d0);
        k->last[t] = calperiod_of_day(t, d0 + KR_DAYS - 1);
    }
    for (int i = 0; i < KR_RECORDS; i++) {
        int64_t ms = kr_time(i);
        int town = i % KR_TOWNS;
        for (int t = 0; t < 4; t++) {
            calperiod_t p = calperiod_of_day(t, kr_day(ms));
            int32_t idx = p.key - k->first[t].key;
            assert_true(idx >= 0 && idx < KR_DAYS);
            kr_cell_t *c = &k->cell[town][t][idx];
            c->resolved += 1 + i % 9;
            if (!c->has_zones || ms >= c->zones_ms) {
                c->has_zones = true;
                c->zones = i % 50;
                c->zones_ms = ms;
            }
        }
    }
    for (int t = 0; t < 4; t++)
        for (int idx = 0; idx < KR_DAYS; idx++) {
            kr_cell_t *cty = &k->cell[KR_TOWNS][t][idx];
            for (int town = 0; town < KR_TOWNS; town++) {
                const kr_cell_t *c = &k->cell[town][t][idx];
                cty->resolved += c->resolved;
                if (c->has_zones) {
                    cty->has_zones = true;
                    cty->zones += c->zones;
                }
            }
        }
}

typedef struct kr_read {
    kr_t *k;
    int type, idx;
    int seen;
    bool bad;
} kr_read_t;

static void kr_on_tally(void *ctx, const tally_tally_t *t)
{
    kr_read_t *r = ctx;
    bool resolved = strcmp(t->metric, "disputes.resolved") == 0;
    if ((!resolved && strcmp(t->metric, "grid.zones") != 0) || r->bad)
        return;
    int scope = -1;
    if (t->scope[0] == '\0')
        scope = KR_TOWNS;
    for (int i = 0; i < KR_TOWNS; i++)
        if (strcmp(t->scope, kr_towns[i]) == 0)
            scope = i;
    const tally_value_t *v = &t->values[0];
    bool want_present = true;
    int64_t want = 0;
    if (scope >= 0) {
        const kr_cell_t *c = &r->k->cell[scope][r->type][r->idx];
        want_present = resolved || c->has_zones;
        want = resolved ? c->resolved : c->zones;
        r->seen++;
    } else {
        want_present = resolved; /* a township that sent nothing */
    }
    if (t->nvalues != 1 || v->present != want_present || (want_present && v->num != want)) {
        snprintf(r->k->why, sizeof r->k->why, "%s '%s' %s: %s %" PRId64 ", expected %s %" PRId64,
                 t->metric, t->scope, t->nvalues ? t->values[0].column : "?",
                 v->present ? "value" : "no value", v->num, want_present ? "value" : "no value",
                 want);
        r->bad = true;
    }
    r->k->checked++;
}

/* Every cell of the two metrics, every township and the county, every
 * period from the first day to the last, by tally_period_req. */
static void kr_check(fx_t *f, kr_t *k)
{
    k->checked = 0;
    for (int t = 0; t < 4; t++)
        for (int idx = 0; idx <= k->last[t].key - k->first[t].key; idx++) {
            char name[CALPERIOD_NAME_MAX], err[512] = "";
            calperiod_t p = calperiod_add(k->first[t], idx);
            assert_true(calperiod_format(p, name, sizeof name) > 0);
            kr_read_t r = {.k = k, .type = t, .idx = idx};
            tally_request_t req = {.timeout_ms = 20000, .errbuf = err, .errbuf_len = sizeof err};
            int rc = tally_period_req(f->h.req_endpoint, &req, "u/", name, kr_on_tally, &r);
            if (rc != 0)
                fail_msg("tally_period_req %s: %s: %s", name, tally_strerror(rc), err);
            if (r.bad)
                fail_msg("period %s: %s\ndaemon log:\n%s", name, k->why, harness_log(&f->h));
            assert_int_equal(r.seen, 2 * (KR_TOWNS + 1));
        }
}

/* The journal position history.db says it holds, read through SQLite
 * while tallyd runs (WAL: a reader sees whole transactions); 0 when it
 * cannot be read yet. */
static uint64_t kr_db_pos(fx_t *f)
{
    char path[HARNESS_PATH_MAX];
    snprintf(path, sizeof path, "%s/state/history.db", f->h.dir);
    sqlite3 *db = NULL;
    uint64_t pos = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        sqlite3_busy_timeout(db, 5000);
        if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'journal_pos'", -1, &st,
                               NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            pos = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return pos;
}

/* Wait until history.db holds a journal position beyond above (the
 * writer stores every HISTORY_FLUSH_MS); returns it. */
static uint64_t kr_wait_stored(fx_t *f, uint64_t above)
{
    int64_t give_up = harness_mono_ms() + 30000;
    uint64_t pos;
    while ((pos = kr_db_pos(f)) <= above) {
        if (harness_mono_ms() > give_up)
            fail_msg("history.db stays at journal position %" PRIu64 "\n%s", pos,
                     harness_log(&f->h));
        usleep(20 * 1000);
    }
    return pos;
}

/* Send records [from, to) in batches of KR_BATCH, waiting for each
 * batch's ACKs; the last batch is only sent when kill_after_us >= 0, and
 * tallyd is killed that many microseconds later with the batch in flight
 * (after the database has stored part of what was acknowledged, so that
 * a restart loads it and replays the rest of the journal).  Returns the
 * first record not known to be acknowledged. */
static int kr_send(fx_t *f, harness_client_t *cl, int from, int to, long kill_after_us)
{
    bool kill_after = kill_after_us >= 0;
    uint64_t start_pos = kr_db_pos(f);
    for (int b = from; b < to; b += KR_BATCH) {
        int end = b + KR_BATCH < to ? b + KR_BATCH : to;
        for (int i = b; i < end; i++) {
            harness_sample_t s[2] = {{"disputes.resolved", 1 + i % 9}, {"grid.zones", i % 50}};
            assert_int_equal(
                harness_send_submit(cl, (uint64_t)i + 1, kr_towns[i % KR_TOWNS], kr_time(i), s, 2),
                0);
        }
        if (kill_after && end == to) {
            usleep((useconds_t)kill_after_us);
            assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
            return b;
        }
        if (kill_after && end + KR_BATCH >= to) /* the database holds some */
            kr_wait_stored(f, start_pos);
        for (int i = b; i < end; i++) {
            harness_ack_t ack;
            assert_int_equal(harness_wait_ack(cl, (uint64_t)i + 1, &ack, 20000), 0);
            if (ack.status != 0 && ack.status != 1) {
                char buf[512];
                fail_msg("record %d: %s", i, harness_ack_str(&ack, buf, sizeof buf));
            }
        }
    }
    return to;
}

/* 8. tallyd killed again and again while it applies submissions that
 * land all over 400 days of closed periods (so its history writer is
 * busy storing them, and checkpoints trim the journal meanwhile): after
 * the client resends what was in flight, as its outbox would, every
 * cell of every day, month, quarter and year holds each record exactly
 * once, live and after a last SIGKILL and restart. */
static void test_killed_while_writing(void **state)
{
    fx_t *f = *state;
    kr_t *k = f->scratch[0] = calloc(1, sizeof(*k));
    assert_non_null(k);
    kr_expect(k);
    /* Checkpoints every 400 records: the journal is trimmed while the
     * history still needs some of it. */
    char *conf = f->scratch[1] = malloc(strlen(f->conf) + 64);
    assert_non_null(conf);
    strcpy(conf, f->conf);
    char *every = strstr(conf, "snapshot_every_records = 1000000");
    assert_non_null(every);
    memcpy(every, "snapshot_every_records = 400    ", strlen("snapshot_every_records = 1000000"));
    assert_int_equal(harness_start(&f->h, conf, NULL), 0);
    harness_client_t cl;
    assert_int_equal(harness_client_open(&f->h, &cl), 0);
    uint8_t id[PROTO_CLIENT_ID_LEN];
    memcpy(id, cl.client_id, sizeof id);
    int next = 0;
    /* Killed at different moments of the writer's 500 ms cycle. */
    const int kills[] = {600, 1350, 2100, 2600};
    const long delay_us[] = {0, 130000, 290000, 470000};
    for (size_t r = 0; r < sizeof kills / sizeof kills[0]; r++) {
        next = kr_send(f, &cl, next, kills[r], delay_us[r]);
        harness_client_close(&cl);
        assert_int_equal(harness_start(&f->h, conf, NULL), 0);
        /* The database was loaded, not rebuilt: the journal's tail after
         * its position is what was applied again. */
        const char *log = harness_log(&f->h), *at = NULL;
        for (const char *p = log; (p = strstr(p, "up to journal position ")) != NULL; p++)
            at = p;
        if (at == NULL || strtoull(at + strlen("up to journal position "), NULL, 10) == 0 ||
            strstr(log, "set aside") != NULL)
            fail_msg("history.db was not loaded:\n%s", log);
        assert_int_equal(harness_client_open(&f->h, &cl), 0);
        memcpy(cl.client_id, id, sizeof id); /* the same client, resending */
    }
    uint64_t before = kr_db_pos(f);
    next = kr_send(f, &cl, next, KR_RECORDS, -1);
    assert_int_equal(next, KR_RECORDS);
    kr_check(f, k);
    assert_true(k->checked > 0);
    /* Some of the last records stored, then killed again. */
    kr_wait_stored(f, before);
    harness_client_close(&cl);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    assert_int_equal(harness_start(&f->h, conf, NULL), 0);
    kr_check(f, k);
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
        cmocka_unit_test_setup_teardown(test_names_as_people_write_them, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exactly_once_across_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compare_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_days_lowered_then_raised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_period_in_daemon_zone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_correction_and_compare, setup, teardown),
        cmocka_unit_test_setup_teardown(test_to_date_and_spans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_period_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_answer_and_period_changed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
