/* Integration tests of the `tally` command against the real tallyd: the
 * 高观镇 2023 report pushed from its CSV file and read back with
 * `tally get` (built-in defaults and the example configuration),
 * rejections and usage errors, and `tally stats`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "calperiod.h"
#include "cli_support.h"
#include "harness.h"
#include "tally.h"

#define ROWS_MAX 64

typedef struct csv_row {
    char metric[CLI_NAME_MAX + 1];
    char kind[16];
    int64_t value;
} csv_row_t;

typedef struct fx {
    harness_t h;
    cli_tab_t t;
    char *conf;
    csv_row_t rows[ROWS_MAX];
    size_t nrows;
    char csv_path[HARNESS_PATH_MAX];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0)
        return -1;
    cli_tab_init(&f->t);
    snprintf(f->csv_path, sizeof f->csv_path, "%s/gaoguan-2023.csv", TALLY_SHARED_DATA);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    /* A clean exit is part of every test (leaks and memory errors at exit
     * in the sanitizer build). */
    int rc = harness_finish(&f->h) == 0 ? 0 : -1;
    cli_tab_free(&f->t);
    harness_cleanup(&f->h);
    free(f->conf);
    free(f);
    return rc;
}

/* Run the command and check its exit status; the result is returned for
 * more checks (free it). */
static cli_result_t run_expect(fx_t *f, int status, const char *const *args)
{
    return cli_expect(&f->h, status, args);
}

static void get_tab(fx_t *f, const char *const *extra)
{
    char err[2048];
    if (cli_get_tab(f->h.dir, f->h.req_endpoint, extra, &f->t, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static int64_t stat_value(fx_t *f, const char *name)
{
    char err[1024];
    int64_t v = -1;
    if (cli_stat(f->h.dir, f->h.req_endpoint, name, &v, err, sizeof err) != 0)
        fail_msg("%s", err);
    return v;
}

/* Columns metric,kind,unit,label,value; no field holds a comma or quote. */
static void load_csv(fx_t *f)
{
    char *text = harness_read_file(f->csv_path);
    if (text == NULL)
        fail_msg("cannot read %s", f->csv_path);
    char *save = NULL;
    char *line = strtok_r(text, "\r\n", &save);
    assert_non_null(line);
    assert_string_equal(line, "metric,kind,unit,label,value");
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        char *field[5];
        int n = 0;
        for (char *p = line; n < 5; n++) {
            field[n] = p;
            p = strchr(p, ',');
            if (p == NULL) {
                n++;
                break;
            }
            *p++ = '\0';
        }
        if (n != 5 || f->nrows == ROWS_MAX)
            fail_msg("%s: bad line '%s'", f->csv_path, line);
        csv_row_t *r = &f->rows[f->nrows++];
        snprintf(r->metric, sizeof r->metric, "%s", field[0]);
        snprintf(r->kind, sizeof r->kind, "%s", field[1]);
        char *end;
        r->value = strtoll(field[4], &end, 10);
        assert_true(*end == '\0' && end != field[4]);
    }
    free(text);
    assert_int_equal(f->nrows, 22);
}

static void expect_total(const cli_tab_t *t, const char *metric, const char *scope, int64_t want)
{
    cli_val_t v;
    if (!cli_tab_get(t, metric, scope, "total", &v))
        fail_msg("no column total of %s/%s", metric, scope);
    if (!v.present || v.den != 1 || v.num != want)
        fail_msg("%s/%s total: expected %" PRId64 ", got %s%" PRId64 "/%" PRId64, metric, scope,
                 want, v.present ? "" : "null ", v.num, v.den);
}

/* Every column of the ratio (the figures were all pushed now, so every
 * window and period holds them) is num/den. */
static void expect_ratio(const cli_tab_t *t, const char *ratio, const char *scope, int64_t num,
                         int64_t den)
{
    const cli_tally_t *x = cli_tab_find(t, ratio, scope);
    if (x == NULL)
        fail_msg("no ratio %s/%s", ratio, scope);
    assert_string_equal(x->kind, "ratio");
    assert_true(x->ncols >= 5);
    for (size_t i = 0; i < x->ncols; i++)
        if (!x->val[i].present || x->val[i].num != num || x->val[i].den != den)
            fail_msg("%s/%s %s: expected %" PRId64 "/%" PRId64 ", got %s%" PRId64 "/%" PRId64,
                     ratio, scope, x->col[i], num, den, x->val[i].present ? "" : "null ",
                     x->val[i].num, x->val[i].den);
    cli_val_t v;
    assert_true(cli_tab_get(t, ratio, scope, "total", &v));
}

static void check_report(fx_t *f, const char *scope)
{
    for (size_t i = 0; i < f->nrows; i++) {
        const csv_row_t *r = &f->rows[i];
        const cli_tally_t *x = cli_tab_find(&f->t, r->metric, scope);
        if (x == NULL)
            fail_msg("no tally %s/%s", r->metric, scope);
        bool gauge = strcmp(r->kind, "gauge") == 0;
        assert_string_equal(x->kind, gauge ? "gauge" : "counter");
        expect_total(&f->t, r->metric, scope, r->value);
    }
    expect_total(&f->t, "disputes.screened", scope, 219);
    expect_total(&f->t, "disputes.resolved", scope, 216);
    expect_ratio(&f->t, "disputes.resolution_rate", scope, 216, 219);
    expect_ratio(&f->t, "law_exam.pass_rate", scope, 94, 94);
    expect_ratio(&f->t, "talks.resolution_rate", scope, 25, 25);
    cli_val_t v;
    assert_true(cli_tab_get(&f->t, "disputes.resolution_rate", scope, "total", &v));
    /* The JSON value is the quotient, and 98.6 % to one decimal. */
    assert_true(fabs(v.value - 216.0 / 219.0) < 1e-15);
    assert_int_equal((int64_t)llround(v.value * 1000.0), 986);
}

/* Count non-overlapping occurrences of needle in hay. */
static size_t count_str(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + strlen(needle), needle))
        n++;
    return n;
}

/* Push the report's 22 figures; stdout must be want_out, stderr empty. */
static void push_report(fx_t *f, const char *want_out)
{
    load_csv(f);
    const char *push[] = {"push", "--town", "gaoguan", "--file", f->csv_path, NULL};
    cli_result_t r = run_expect(f, 0, push);
    assert_string_equal(r.out, want_out);
    assert_string_equal(r.err, "");
    cli_result_free(&r);
}

static void push_and_check(fx_t *f)
{
    push_report(f, "accepted 22 samples for gaoguan (seq 1..1)\n");
    cli_result_t r;

    /* County-wide by default: no township rows. */
    get_tab(f, NULL);
    for (size_t i = 0; i < f->t.n; i++)
        assert_string_equal(f->t.v[i].scope, "county");
    /* 22 metrics and 3 ratios. */
    assert_int_equal(f->t.n, 25);
    assert_true(f->t.seq > 0);
    assert_true(f->t.stream_id > 0);
    check_report(f, "county"); /* the built-in catalog declares the gauges too */

    const char *town[] = {"--town", "gaoguan", NULL};
    get_tab(f, town);
    assert_int_equal(f->t.n, 25);
    for (size_t i = 0; i < f->t.n; i++)
        assert_string_equal(f->t.v[i].scope, "gaoguan");
    check_report(f, "gaoguan");

    /* The table: a header and one row, 98.6% in every column. */
    get_tab(f, (const char *const[]){"--metric", "disputes.resolution_rate", NULL});
    assert_int_equal(f->t.n, 1);
    size_t ncols = f->t.v[0].ncols;
    const char *table[] = {"get", "--metric", "disputes.resolution_rate", NULL};
    r = run_expect(f, 0, table);
    assert_string_equal(r.err, "");
    if (count_str(r.out, "98.6%") != ncols || count_str(r.out, "\n") != 2 ||
        strncmp(r.out, "METRIC", 6) != 0 || strstr(r.out, "\ndisputes.resolution_rate") == NULL ||
        strstr(r.out, " county ") == NULL)
        fail_msg("tally get --metric disputes.resolution_rate: expected a header and one row "
                 "with 98.6%% in each of %zu columns, got:\n%s",
                 ncols, r.out);
    cli_result_free(&r);

    /* One submission was made. */
    assert_int_equal(stat_value(f, "tallyd_submissions_accepted_total"), 1);
    assert_int_equal(stat_value(f, "tallyd_samples_accepted_total"), 22);
}

/* 1a. Built-in defaults: no configuration, the built-in ratios exist. */
static void test_gaoguan_defaults(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    push_and_check(f);
}

/* 1b. The example configuration (endpoints and state directory from the
 * command line, which override the file). */
static void test_gaoguan_example_config(void **state)
{
    fx_t *f = *state;
    char path[HARNESS_PATH_MAX];
    snprintf(path, sizeof path, "%s/systemd/tallyd.conf.example", harness_source_dir);
    f->conf = harness_read_file(path);
    if (f->conf == NULL)
        fail_msg("cannot read %s", path);
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    push_and_check(f);
}

/* Read the example configuration into f->conf. */
static void load_example(fx_t *f)
{
    char path[HARNESS_PATH_MAX];
    snprintf(path, sizeof path, "%s/systemd/tallyd.conf.example", harness_source_dir);
    f->conf = harness_read_file(path);
    if (f->conf == NULL)
        fail_msg("cannot read %s", path);
}

/* The line of out that starts with prefix, copied into line, or fail. */
static void line_of(const char *out, const char *prefix, char *line, size_t cap)
{
    for (const char *p = out; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            size_t n = strcspn(p, "\n");
            snprintf(line, cap, "%.*s", (int)n, p);
            return;
        }
    }
    fail_msg("no line starting with '%s' in:\n%s", prefix, out);
}

/* 1e. Labels: the catalog's labels, units and township names, metrics in
 * catalog order, the three ratios as percentages; ids without them. */
static void test_labels(void **state)
{
    fx_t *f = *state;
    load_example(f);
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    push_report(f, "accepted 22 samples for gaoguan (seq 1..1)\n");

    cli_result_t r =
        run_expect(f, 0, (const char *const[]){"get", "--labels", "--town", "gaoguan", NULL});
    assert_string_equal(r.err, "");
    char line[512];
    line_of(r.out, "METRIC", line, sizeof line);
    if (strstr(line, " UNIT ") == NULL || strstr(line, " SCOPE ") == NULL)
        fail_msg("header without UNIT and SCOPE: %s", line);
    /* The first row is the first metric of tallyd.conf.example. */
    const char *first = strchr(r.out, '\n') + 1;
    if (strncmp(first, "法治理论考试参考人数", strlen("法治理论考试参考人数")) != 0)
        fail_msg("expected the catalog's first metric first, got:\n%s", r.out);
    line_of(r.out, "化解矛盾纠纷 ", line, sizeof line);
    if (strstr(line, " 件 ") == NULL || strstr(line, " 高观镇 ") == NULL ||
        strstr(line, " 216") == NULL)
        fail_msg("disputes.resolved: expected label, unit 件, 高观镇 and 216, got: %s", line);
    line_of(r.out, "矛盾纠纷化解率 ", line, sizeof line);
    if (strstr(line, "98.6%") == NULL || strstr(line, " % ") == NULL)
        fail_msg("the resolution rate: expected unit %% and 98.6%%, got: %s", line);
    /* Columns line up by display width: every row's "total" column ends
     * where the header's does, CJK counting two columns. */
    if (count_str(r.out, "\n") != 26)
        fail_msg("expected a header and 25 rows, got:\n%s", r.out);
    cli_result_free(&r);

    r = run_expect(
        f, 0,
        (const char *const[]){"get", "--labels", "--json", "--metric", "disputes.resolved", NULL});
    if (strstr(r.out, "\"label\":\"化解矛盾纠纷\",\"unit\":\"件\",\"scale\":0") == NULL ||
        strstr(r.out, "\"total\":216") == NULL)
        fail_msg("tally get --labels --json: expected label, unit and scale, got:\n%s", r.out);
    cli_result_free(&r);

    /* Not a terminal and no --labels: ids, as before. */
    r = run_expect(f, 0, (const char *const[]){"get", "--town", "gaoguan", NULL});
    if (strstr(r.out, "化解") != NULL || strstr(r.out, "\ndisputes.resolved ") == NULL ||
        strstr(r.out, " UNIT ") != NULL)
        fail_msg("tally get without --labels: expected ids, got:\n%s", r.out);
    cli_result_free(&r);
    r = run_expect(f, 0, (const char *const[]){"get", "--labels", "--no-labels", NULL});
    if (strstr(r.out, "化解") != NULL)
        fail_msg("--no-labels after --labels: expected ids, got:\n%s", r.out);
    cli_result_free(&r);
}

/* 1f. A catalog larger than one CATALOG message: 1500 townships with
 * long names come in several pages, all of them, in order. */
static void test_labels_paged(void **state)
{
    fx_t *f = *state;
    size_t cap = 1 << 20, len = 0;
    char *conf = malloc(cap);
    assert_non_null(conf);
    len += (size_t)snprintf(conf + len, cap - len, "[limits]\nmax_townships = 2000\n");
    for (int i = 0; i < 1500; i++)
        len += (size_t)snprintf(conf + len, cap - len,
                                "[township t%04d]\nname = 第%04d号测试用的名字很长很长的乡镇街道\n",
                                i, i);
    f->conf = conf;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);

    char err[512] = "";
    tally_request_t req = {.timeout_ms = 20000, .errbuf = err, .errbuf_len = sizeof err};
    tally_catalog_t *cat = NULL;
    int rc = tally_catalog_req(f->h.req_endpoint, &req, &cat);
    if (rc != 0)
        fail_msg("tally_catalog_req: %s: %s", tally_strerror(rc), err);
    assert_int_equal(tally_catalog_townships(cat), 1500);
    for (size_t i = 0; i < 1500; i++) {
        char id[16], name[128];
        snprintf(id, sizeof id, "t%04zu", i);
        snprintf(name, sizeof name, "第%04zu号测试用的名字很长很长的乡镇街道", i);
        const tally_township_info_t *t = tally_catalog_township(cat, i);
        assert_string_equal(t->id, id);
        assert_string_equal(t->name, name);
        size_t at = 0;
        assert_ptr_equal(tally_catalog_find_township(cat, id, &at), t);
        assert_int_equal(at, i);
    }
    assert_null(tally_catalog_find_township(cat, "nowhere", NULL));
    /* The built-in metrics and ratios follow: a ratio names its operands. */
    const tally_metric_info_t *m = tally_catalog_find_metric(cat, "disputes.resolution_rate", NULL);
    assert_non_null(m);
    assert_int_equal(m->kind, TALLY_KIND_RATIO);
    assert_string_equal(m->numerator, "disputes.resolved");
    assert_string_equal(m->denominator, "disputes.screened");
    assert_true(tally_catalog_id(cat) != 0);
    tally_catalog_destroy(&cat);
    assert_null(cat);
}

/* 1g. The daemon's clock and calendar zone (CLOCK_REQ): its name as
 * configured, its offset now (14 hours for Pacific/Kiritimati, 8 for the
 * default Asia/Shanghai) and a clock that reads about what ours does. */
static void test_clock(void **state)
{
    fx_t *f = *state;
    f->conf = strdup("[tallyd]\ntimezone = Pacific/Kiritimati\n");
    assert_non_null(f->conf);
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    char err[512] = "";
    tally_request_t req = {.timeout_ms = 10000, .errbuf = err, .errbuf_len = sizeof err};
    tally_clock_t c;
    int rc = tally_clock_req(f->h.req_endpoint, &req, &c);
    if (rc != 0)
        fail_msg("tally_clock_req: %s: %s", tally_strerror(rc), err);
    assert_string_equal(c.zone, "Pacific/Kiritimati");
    assert_int_equal(c.utc_offset_s, 14 * 3600);
    int64_t now = (int64_t)time(NULL) * 1000;
    if (c.now_ms < now - 60000 || c.now_ms > now + 60000)
        fail_msg("the daemon's clock %" PRId64 " against ours %" PRId64, c.now_ms, now);
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);

    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    assert_int_equal(tally_clock_req(f->h.req_endpoint, &req, &c), 0);
    assert_string_equal(c.zone, "Asia/Shanghai");
    assert_int_equal(c.utc_offset_s, 8 * 3600);
    assert_int_equal(tally_clock_req(f->h.req_endpoint, &req, NULL), TALLY_EINVAL);
}

/* 1c. A daemon taking at most 7 samples per submission: the command
 * learns it from WELCOME and splits the 22 figures into 4 submissions,
 * and every figure arrives. */
static void test_gaoguan_max_samples(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_samples = 7\n", NULL), 0);
    push_report(f, "accepted 22 samples for gaoguan (seq 1..4)\n");
    /* (No [metric] or [ratio] section: the built-in catalog's 3 ratios.) */
    get_tab(f, (const char *const[]){"--town", "gaoguan", NULL});
    assert_int_equal(f->t.n, 25);
    for (size_t i = 0; i < f->nrows; i++)
        expect_total(&f->t, f->rows[i].metric, "gaoguan", f->rows[i].value);
    assert_int_equal(stat_value(f, "tallyd_submissions_accepted_total"), 4);
    assert_int_equal(stat_value(f, "tallyd_samples_accepted_total"), 22);
    assert_int_equal(stat_value(f, "tallyd_rejected_total"), 0);
}

/* 1d. A daemon taking bodies of at most 1024 bytes: 40 figures with long
 * names do not fit in one, and are split by size. */
static void test_max_msg_bytes(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_msg_bytes = 1024\n", NULL), 0);
    char csv[HARNESS_PATH_MAX], text[8192] = "metric,value\n";
    for (int i = 0; i < 40; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text),
                 "long.metric.name.of.the.township.report.number.%02d.xxxxxxxx,%d\n", i, i + 1);
    assert_int_equal(harness_write_file(&f->h, "long.csv", text, csv, sizeof csv), 0);
    const char *push[] = {"push", "--town", "gaoguan", "--file", csv, NULL};
    cli_result_t r = run_expect(f, 0, push);
    assert_non_null(strstr(r.out, "accepted 40 samples for gaoguan (seq 1.."));
    cli_result_free(&r);
    int64_t subs = stat_value(f, "tallyd_submissions_accepted_total");
    if (subs < 3)
        fail_msg("40 samples of ~75 bytes in 1024-byte bodies: expected at least 3 submissions, "
                 "got %" PRId64,
                 subs);
    assert_int_equal(stat_value(f, "tallyd_samples_accepted_total"), 40);
    assert_int_equal(stat_value(f, "tallyd_rejected_total"), 0);
    get_tab(f, NULL);
    for (int i = 0; i < 40; i++) {
        char m[80];
        snprintf(m, sizeof m, "long.metric.name.of.the.township.report.number.%02d.xxxxxxxx", i);
        expect_total(&f->t, m, "county", i + 1);
    }
}

/* A CSV of n rows "patrols,1" but for line bad (the header is line 1),
 * "patrols,-1", which a counter refuses; its path into path. */
/* A file of n figures, each of a metric of its own (a file gives each
 * metric once): patrols.<tag><line> = 1, but line bad, patrols = -1,
 * which tallyd refuses (patrols counts up only). */
static void write_patrols(fx_t *f, const char *name, const char *tag, int n, int bad, char *path,
                          size_t cap)
{
    size_t len = 16 + (size_t)n * 32;
    char *text = malloc(len);
    assert_non_null(text);
    size_t at = (size_t)snprintf(text, len, "metric,value\n");
    for (int line = 2; line < n + 2; line++)
        at += line == bad ? (size_t)snprintf(text + at, len - at, "patrols,-1\n")
                          : (size_t)snprintf(text + at, len - at, "patrols.%s%04d,1\n", tag, line);
    assert_int_equal(harness_write_file(&f->h, name, text, path, cap), 0);
    free(text);
}

/* 1f. A file of more figures than one submission holds, rejected in the
 * middle: the push stops at the rejected submission (what follows is not
 * sent), names the line at fault, and says which figures were counted and
 * which not, so that only those are pushed again.  3,500 figures go in
 * batches of 1,000: the second is rejected (line 1502); the first is
 * counted, the third and fourth never sent. */
static void test_partial_push(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    char csv[HARNESS_PATH_MAX];
    write_patrols(f, "patrols.csv", "a", 3500, 1502, csv, sizeof csv);
    cli_result_t r =
        run_expect(f, 1, (const char *const[]){"push", "--town", "gaoguan", "--file", csv, NULL});
    char want[2 * HARNESS_PATH_MAX + 200];
    snprintf(want, sizeof want,
             "tally: rejected: %s:1502: samples[500].value: -1 is below the minimum 0 of counter "
             "'patrols'",
             csv);
    if (strstr(r.err, want) == NULL)
        fail_msg("no '%s' in:\n%s", want, r.err);
    snprintf(want, sizeof want,
             "counted: the 1000 figures up to %s:1001; not counted: the 2500 from %s:1002 on", csv,
             csv);
    if (strstr(r.err, want) == NULL)
        fail_msg("no '%s' in:\n%s", want, r.err);
    assert_non_null(strstr(r.out, "accepted 1000 samples for gaoguan (seq 1..1)"));
    cli_result_free(&r);
    get_tab(f, NULL);
    expect_total(&f->t, "patrols.a0002", "county", 1);
    expect_total(&f->t, "patrols.a1001", "county", 1);
    assert_null(cli_tab_find(&f->t, "patrols.a1003", "county")); /* in the refused one */
    assert_null(cli_tab_find(&f->t, "patrols.a2600", "county")); /* never sent */
    assert_int_equal(stat_value(f, "tallyd_samples_accepted_total"), 1000);
    assert_int_equal(stat_value(f, "tallyd_rejected_total"), 1);

    /* A daemon taking 10 figures a submission: libtally splits the one
     * batch of 25 into 10 + 10 + 5, sent together; the third is rejected
     * (line 24, its third figure), the first two counted. */
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_samples = 10\n", NULL), 0);
    write_patrols(f, "split.csv", "b", 25, 24, csv, sizeof csv);
    r = run_expect(f, 1, (const char *const[]){"push", "--town", "xiuqi", "--file", csv, NULL});
    snprintf(want, sizeof want, "tally: rejected: %s:24: samples[2].value: -1", csv);
    if (strstr(r.err, want) == NULL)
        fail_msg("no '%s' in:\n%s", want, r.err);
    snprintf(want, sizeof want,
             "counted: the 20 figures up to %s:21; not counted: the 5 from %s:22 on", csv, csv);
    if (strstr(r.err, want) == NULL)
        fail_msg("no '%s' in:\n%s", want, r.err);
    cli_result_free(&r);
    get_tab(f, NULL);
    expect_total(&f->t, "patrols.b0021", "county", 1);
    assert_null(cli_tab_find(&f->t, "patrols.b0022", "county"));
    assert_int_equal(stat_value(f, "tallyd_samples_accepted_total"), 20);
}

/* 1g. On the built-in defaults (a catalog naming no township), a
 * township's name in Chinese is a township of its own: the first push
 * under it says so, so that one township is not split in two unseen; a
 * catalog label still stands for its metric, an unknown one is said new
 * too; once it has tallies, nothing is said. */
static void test_new_name_said(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    cli_result_t r = run_expect(
        f, 0, (const char *const[]){"push", "--town", "gaoguan", "disputes.screened=1", NULL});
    assert_null(strstr(r.err, "new to tallyd"));
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"push", "--town", "高观镇", "disputes.screened=1",
                                         "法治理论考试参考人数=2", "新指标=3", NULL});
    if (strstr(r.err, "'高观镇' is new to tallyd: no township has that id or name yet") == NULL ||
        strstr(r.err, "'新指标' is new to tallyd: no metric has that id or label yet") == NULL ||
        strstr(r.err, "法治理论考试参考人数") != NULL)
        fail_msg("first push under 高观镇:\n%s", r.err);
    cli_result_free(&r);
    r = run_expect(f, 0, (const char *const[]){"push", "--town", "高观镇", "新指标=1", NULL});
    assert_string_equal(r.err, "");
    cli_result_free(&r);
    get_tab(f, NULL);
    expect_total(&f->t, "law_exam.takers", "county", 2); /* the label stood for its id */

    /* A mistyped township of an open catalog: the closest that tallyd has
     * tallies of is suggested, in get and in get --period. */
    r = run_expect(f, 1, (const char *const[]){"get", "--town", "gaogun", NULL});
    assert_non_null(strstr(r.err, "township 'gaogun' has no tallies (did you mean 'gaoguan'?)"));
    cli_result_free(&r);
    /* A metric the county has and the township has not: the township is
     * named, misspelt or not, never the metric suggested as itself. */
    r = run_expect(f, 1, (const char *const[]){"get", "--town", "gaogun", "-m", "新指标", NULL});
    assert_non_null(strstr(r.err, "township 'gaogun' has no tallies (did you mean 'gaoguan'?)"));
    cli_result_free(&r);
    r = run_expect(f, 0, (const char *const[]){"push", "--town", "bashan", "patrols=1", NULL});
    cli_result_free(&r);
    r = run_expect(f, 1, (const char *const[]){"get", "--town", "bashan", "-m", "新指标", NULL});
    if (strstr(r.err, "township 'bashan' has no tallies of metric '新指标' yet") == NULL ||
        strstr(r.err, "did you mean") != NULL)
        fail_msg("a metric the township has no tallies of: %s", r.err);
    cli_result_free(&r);
    r = run_expect(f, 2,
                   (const char *const[]){"get", "--period", "2026", "--town", "gaogun", NULL});
    assert_non_null(strstr(r.err, "--town 'gaogun': "));
    assert_non_null(strstr(r.err, "(did you mean 'gaoguan'?)"));
    cli_result_free(&r);
}

/* 1h. A catalog that declares its townships, which tallyd then takes
 * alone (closed): a name that is none of them is not said to become a
 * township of its own; tallyd's refusal is followed by the township most
 * likely meant (by characters: 高观乡 is one from 高观镇), or else by the
 * townships the catalog declares. */
static const char towns_conf[] = "[township gaoguan]\nname = 高观镇\n"
                                 "[township gaoyan]\nname = 高燕镇\n";

static void test_closed_townships(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, towns_conf, NULL), 0);
    cli_result_t r =
        run_expect(f, 1, (const char *const[]){"push", "--town", "不存在镇", "patrols=1", NULL});
    if (strstr(r.err, "new to tallyd") != NULL || strstr(r.err, "of its own") != NULL ||
        strstr(r.err, "township '不存在镇' is not in the catalog (UNKNOWN_TOWNSHIP)") == NULL ||
        strstr(r.err, "tally push: --town '不存在镇' is not a township of the daemon's catalog, "
                      "which declares its townships: gaoguan (高观镇), gaoyan (高燕镇)\n") == NULL)
        fail_msg("a township the closed catalog does not declare:\n%s", r.err);
    cli_result_free(&r);
    r = run_expect(f, 1, (const char *const[]){"push", "--town", "高观乡", "patrols=1", NULL});
    if (strstr(r.err, "new to tallyd") != NULL ||
        strstr(r.err, "tally push: --town '高观乡' is not a township of the daemon's catalog "
                      "(did you mean '高观镇'?)\n") == NULL)
        fail_msg("a mistyped name of a declared township:\n%s", r.err);
    cli_result_free(&r);
    r = run_expect(f, 1, (const char *const[]){"push", "--town", "gaogun", "patrols=1", NULL});
    if (strstr(r.err, "tally push: --town 'gaogun' is not a township of the daemon's catalog "
                      "(did you mean 'gaoguan'?)\n") == NULL)
        fail_msg("a mistyped id of a declared township:\n%s", r.err);
    cli_result_free(&r);
    r = run_expect(f, 0, (const char *const[]){"push", "--town", "高观镇", "patrols=2", NULL});
    assert_string_equal(r.err, "");
    cli_result_free(&r);
    get_tab(f, NULL);
    expect_total(&f->t, "patrols", "county", 2);
    assert_int_equal(stat_value(f, "tallyd_submissions_accepted_total"), 1);
}

/* 1h'. A --metric or --town that the catalog's declared lists lack, in
 * get, get --period, history and watch: said to be outside the catalog,
 * with the id or label most likely meant (a label's id beside it),
 * instead of "no tallies" or, in watch, a silent wait; a declared one
 * without tallies is not. */
static const char listed_conf[] = "[township gaoguan]\nname = 高观镇\n"
                                  "[township gaoyan]\nname = 高燕镇\n"
                                  "[metric disputes.screened]\nkind = counter\n"
                                  "label = 排查矛盾纠纷\n"
                                  "[metric patrols]\nkind = counter\n";

static void expect_said(fx_t *f, int status, const char *const *args, const char *want)
{
    cli_result_t r = run_expect(f, status, args);
    if (strstr(r.err, want) == NULL)
        fail_msg("tally %s %s %s: no \"%s\" in:\n%s", args[0], args[1], args[2], want, r.err);
    cli_result_free(&r);
}

static void test_names_not_listed(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, listed_conf, NULL), 0);
    cli_result_t r =
        run_expect(f, 0, (const char *const[]){"push", "--town", "gaoguan", "patrols=1", NULL});
    cli_result_free(&r);
    expect_said(f, 1, (const char *const[]){"get", "-m", "排查矛盾纠", NULL},
                "tally get: metric '排查矛盾纠' is not in the daemon's catalog and has no "
                "tallies (did you mean '排查矛盾纠纷', id disputes.screened?)\n");
    expect_said(f, 1, (const char *const[]){"get", "-m", "patrol", NULL},
                "tally get: metric 'patrol' is not in the daemon's catalog and has no tallies "
                "(did you mean 'patrols'?)\n");
    expect_said(f, 1, (const char *const[]){"get", "-t", "高观乡", "-m", "patrols", NULL},
                "tally get: township '高观乡' is not in the daemon's catalog (did you mean "
                "'高观镇'?)\n");
    expect_said(f, 1, (const char *const[]){"get", "-m", "排查矛盾纠纷", NULL},
                "tally get: metric 'disputes.screened' has no tallies\n");
    expect_said(f, 1, (const char *const[]){"get", "-t", "gaoyan", NULL},
                "tally get: township 'gaoyan' has no tallies\n");
    expect_said(f, 2, (const char *const[]){"get", "--period", "2026", "-m", "patrol", NULL},
                "tally get: --metric 'patrol' is not in the daemon's catalog and has no "
                "tallies (did you mean 'patrols'?)\n");
    expect_said(f, 2,
                (const char *const[]){"history", "--by", "year", "--from", "2026", "-m",
                                      "排查矛盾纠", NULL},
                "tally history: --metric '排查矛盾纠' is not in the daemon's catalog and has "
                "no tallies (did you mean '排查矛盾纠纷', id disputes.screened?)\n");
    expect_said(f, 2,
                (const char *const[]){"history", "--by", "year", "--from", "2026", "-m", "patrols",
                                      "-t", "gaoguna", NULL},
                "tally history: --town 'gaoguna' is not in the daemon's catalog (did you mean "
                "'gaoguan'?)\n");
    expect_said(f, 2, (const char *const[]){"watch", "-d", "5", "-m", "patrol", NULL},
                "tally watch: --metric 'patrol' is not in the daemon's catalog and has no "
                "tallies (did you mean 'patrols'?)\n");
    expect_said(f, 2, (const char *const[]){"watch", "-d", "5", "-t", "高观", NULL},
                "tally watch: --town '高观' is not in the daemon's catalog (did you mean "
                "'高观镇'?)\n");
    /* A declared metric without tallies yet: the watch waits for it. */
    r = run_expect(f, 0,
                   (const char *const[]){"watch", "-d", "1", "-m", "disputes.screened", NULL});
    assert_string_equal(r.err, "");
    cli_result_free(&r);
}

/* 1i. One scope with more series than one period answer holds: an open
 * catalog takes up to max_metrics metrics, far more than the 512 series
 * tallyd puts in one answer with max_reply_queue at its least (1024).
 * Township wide has 520 (wide.mNNN = NNN + 1), small one (wide.m007 =
 * 1000): the county, one township and --all are read whole, metric by
 * metric where a scope is too large, for a period and for a span. */
#define WIDE_METRICS 520

static int64_t wide_value(int scope, int i) /* 0 county, 1 wide, 2 small */
{
    return (scope == 2 ? 0 : i + 1) + (i == 7 && scope != 1 ? 1000 : 0);
}

/* `tally get --json` with args: want[s] tallies of scope s (county, wide,
 * small), each metric once, with its value in column col. */
static void expect_wide(fx_t *f, const char *const *args, const char *col, const size_t want[3])
{
    static const char *const scopes[] = {"county", "wide", "small"};
    static bool seen[3][WIDE_METRICS];
    memset(seen, 0, sizeof seen);
    cli_result_t r = run_expect(f, 0, args);
    cj_t doc;
    char err[256];
    if (cj_parse(r.out, strlen(r.out), &doc, err, sizeof err) != 0)
        fail_msg("%s: %.300s", err, r.out);
    const cj_t *t = cj_get(&doc, "tallies");
    assert_non_null(t);
    size_t got[3] = {0};
    for (size_t i = 0; i < t->n; i++) {
        const cj_t *m = cj_get(&t->items[i], "metric"), *sc = cj_get(&t->items[i], "scope");
        const cj_t *v = cj_get(cj_get(&t->items[i], "values"), col);
        int k = 0, n = -1;
        while (sc != NULL && k < 3 && strcmp(sc->s, scopes[k]) != 0)
            k++;
        if (m == NULL || k == 3 || sscanf(m->s, "wide.m%d", &n) != 1 || n < 0 ||
            n >= WIDE_METRICS || seen[k][n] || v == NULL || v->type != CJ_NUM || !v->is_int ||
            v->i != wide_value(k, n))
            fail_msg("%s %s: tally %zu is not one expected, or its %s is wrong", args[1], args[2],
                     i, col);
        seen[k][n] = true;
        got[k]++;
    }
    for (int k = 0; k < 3; k++)
        if (got[k] != want[k])
            fail_msg("%s %s: %zu tallies of %s, expected %zu", args[1], args[2], got[k], scopes[k],
                     want[k]);
    cj_free(&doc);
    cli_result_free(&r);
}

static void test_scope_larger_than_an_answer(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_reply_queue = 1024\n", NULL), 0);
    char *text = malloc(32 + WIDE_METRICS * 24), csv[HARNESS_PATH_MAX];
    assert_non_null(text);
    size_t at = (size_t)sprintf(text, "metric,value\n");
    for (int i = 0; i < WIDE_METRICS; i++)
        at += (size_t)sprintf(text + at, "wide.m%03d,%d\n", i, i + 1);
    assert_int_equal(harness_write_file(&f->h, "wide.csv", text, csv, sizeof csv), 0);
    free(text);
    cli_result_t r =
        run_expect(f, 0, (const char *const[]){"push", "--town", "wide", "--file", csv, NULL});
    cli_result_free(&r);
    r = run_expect(f, 0, (const char *const[]){"push", "--town", "small", "wide.m007=1000", NULL});
    cli_result_free(&r);

    /* This year and the span from its first day to today, in tallyd's zone. */
    tally_clock_t c;
    char err[256] = "", year[CALPERIOD_NAME_MAX], today[CALPERIOD_NAME_MAX], span[64];
    tally_request_t req = {.timeout_ms = 20000, .errbuf = err, .errbuf_len = sizeof err};
    if (tally_clock_req(f->h.req_endpoint, &req, &c) != 0)
        fail_msg("tally_clock_req: %s", err);
    int64_t s = c.now_ms / 1000 + c.utc_offset_s;
    int32_t day = (int32_t)((s - (((s % 86400) + 86400) % 86400)) / 86400);
    calperiod_format(calperiod_of_day(CALPERIOD_YEAR, day), year, sizeof year);
    calperiod_format((calperiod_t){CALPERIOD_DAY, day}, today, sizeof today);
    snprintf(span, sizeof span, "%s-01-01..%s", year, today);

    const char *periods[] = {year, span};
    for (int p = 0; p < 2; p++) {
        const char *y = periods[p];
        expect_wide(f, (const char *const[]){"get", "--all", "--period", y, "--json", NULL}, y,
                    (const size_t[3]){WIDE_METRICS, WIDE_METRICS, 1});
        expect_wide(f, (const char *const[]){"get", "--period", y, "--json", NULL}, y,
                    (const size_t[3]){WIDE_METRICS, 0, 0});
        expect_wide(f,
                    (const char *const[]){"get", "--town", "wide", "--period", y, "--json", NULL},
                    y, (const size_t[3]){0, WIDE_METRICS, 0});
        expect_wide(f,
                    (const char *const[]){"get", "--town", "small", "--period", y, "--json", NULL},
                    y, (const size_t[3]){0, 0, 1});
    }
}

/* A free TCP port on [::1], as an endpoint (the port is free when asked;
 * the test binds it right after). */
static void free_v6_endpoint(fx_t *f, char *ep, size_t len)
{
    void *s = zmq_socket(f->h.zctx, ZMQ_REP);
    int one = 1;
    assert_non_null(s);
    assert_int_equal(zmq_setsockopt(s, ZMQ_IPV6, &one, sizeof one), 0);
    assert_int_equal(zmq_bind(s, "tcp://[::1]:*"), 0);
    size_t n = len;
    assert_int_equal(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &n), 0);
    zmq_close(s);
}

/* 1e. A daemon on IPv6 endpoints: push, get and stats reach it through
 * tcp://[::1]:PORT (libtally sets ZMQ_IPV6 for such an address). */
static void test_ipv6(void **state)
{
    fx_t *f = *state;
    free_v6_endpoint(f, f->h.req_endpoint, sizeof f->h.req_endpoint);
    free_v6_endpoint(f, f->h.pub_endpoint, sizeof f->h.pub_endpoint);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    push_report(f, "accepted 22 samples for gaoguan (seq 1..1)\n");
    get_tab(f, (const char *const[]){"--town", "gaoguan", NULL});
    check_report(f, "gaoguan");
    assert_int_equal(stat_value(f, "tallyd_samples_accepted_total"), 22);
}

static const char closed_catalog[] = "[metric disputes.resolved]\n"
                                     "kind = counter\n"
                                     "\n"
                                     "[metric disputes.screened]\n"
                                     "kind = counter\n";

/* 5. Rejections, usage errors and an absent daemon. */
static void test_rejections(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, closed_catalog, NULL), 0);

    /* A metric outside the catalog: rejected by the daemon, status 1, the
     * daemon's field and the metric named. */
    const char *typo[] = {"push", "--town", "gaoguan", "disputes.resolvd=1", NULL};
    cli_result_t r = run_expect(f, 1, typo);
    if (strstr(r.err, "samples[0].metric") == NULL || strstr(r.err, "disputes.resolvd") == NULL ||
        strstr(r.err, "UNKNOWN_METRIC") == NULL)
        fail_msg("rejection message should name samples[0].metric, 'disputes.resolvd' and "
                 "UNKNOWN_METRIC; stderr: %s",
                 r.err);
    assert_null(strstr(r.out, "accepted"));
    cli_result_free(&r);

    /* One bad sample rejects the whole submission: nothing is counted. */
    const char *mixed[] = {"push", "--town", "gaoguan", "disputes.resolved=5", "nope=1", NULL};
    r = run_expect(f, 1, mixed);
    if (strstr(r.err, "samples[1].metric") == NULL || strstr(r.err, "'nope'") == NULL)
        fail_msg("stderr should name samples[1].metric and 'nope': %s", r.err);
    cli_result_free(&r);

    /* A value that is not a number: usage error naming the argument,
     * nothing sent. */
    const char *bad_value[] = {"push", "--town", "gaoguan", "disputes.resolved=abc", NULL};
    r = run_expect(f, 2, bad_value);
    if (strstr(r.err, "disputes.resolved=abc") == NULL || strstr(r.err, "not a number") == NULL)
        fail_msg("stderr should name 'disputes.resolved=abc' as not a number: %s", r.err);
    cli_result_free(&r);
    const char *x_abc[] = {"push", "--town", "gaoguan", "x=abc", NULL};
    r = run_expect(f, 2, x_abc);
    if (strstr(r.err, "'x=abc'") == NULL)
        fail_msg("stderr should name 'x=abc': %s", r.err);
    cli_result_free(&r);

    /* The township id the county's own tallies are shown under: refused
     * before anything is sent (also offline, where it would be spooled). */
    const char *county[] = {"push", "--town", "county", "disputes.resolved=1", NULL};
    r = run_expect(f, 2, county);
    if (strstr(r.err, "--town 'county' is reserved") == NULL)
        fail_msg("stderr should say --town 'county' is reserved: %s", r.err);
    cli_result_free(&r);

    /* A second --town (or --file, --time, --spool) that differs: refused,
     * nothing sent; it replaced the first and counted for the other
     * township. */
    const char *two_towns[] = {"push", "-t", "gaoguan", "--town", "gaoyan", "disputes.resolved=1",
                               NULL};
    r = run_expect(f, 2, two_towns);
    if (strstr(r.err, "--town given twice ('gaoguan', 'gaoyan')") == NULL)
        fail_msg("stderr should say --town given twice: %s", r.err);
    cli_result_free(&r);
    const char *two_times[] = {"push",       "-t",     "gaoguan",    "--time",
                               "2023-05-01", "--time", "2023-06-01", "disputes.resolved=1",
                               NULL};
    r = run_expect(f, 2, two_times);
    if (strstr(r.err, "--time given twice ('2023-05-01', '2023-06-01')") == NULL)
        fail_msg("stderr should say --time given twice: %s", r.err);
    cli_result_free(&r);

    /* A wrong flag, with the closest one suggested; and for get. */
    const char *flag[] = {"push", "--tonw", "gaoguan", "disputes.resolved=1", NULL};
    r = run_expect(f, 2, flag);
    if (strstr(r.err, "--tonw") == NULL || strstr(r.err, "did you mean '--town'") == NULL)
        fail_msg("stderr should name --tonw and suggest --town: %s", r.err);
    cli_result_free(&r);
    const char *get_flag[] = {"get", "--jsno", NULL};
    r = run_expect(f, 2, get_flag);
    if (strstr(r.err, "--jsno") == NULL || strstr(r.err, "--json") == NULL)
        fail_msg("stderr should name --jsno and suggest --json: %s", r.err);
    assert_string_equal(r.out, "");
    cli_result_free(&r);

    /* Nothing of the above was counted: the catalog's metrics have no
     * tally yet, and no submission was accepted. */
    get_tab(f, NULL);
    assert_null(cli_tab_find(&f->t, "disputes.resolved", "county"));
    assert_null(cli_tab_find(&f->t, "nope", "county"));
    assert_int_equal(stat_value(f, "tallyd_submissions_accepted_total"), 0);
    assert_int_equal(stat_value(f, "tallyd_rejected_total"), 2);

    /* A good push still works after the rejections. */
    const char *good[] = {"push", "--town", "gaoguan", "disputes.resolved=3", NULL};
    r = run_expect(f, 0, good);
    cli_result_free(&r);
    get_tab(f, NULL);
    expect_total(&f->t, "disputes.resolved", "county", 3);

    /* The daemon stopped: get gives up once its connections have been
     * refused for a second, long before its --timeout, with status 3, and
     * says that nothing listens there. */
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    const char *get[] = {"get", "--timeout", "60", NULL};
    r = run_expect(f, 3, get);
    char want[HARNESS_PATH_MAX + 64];
    snprintf(want, sizeof want, "cannot reach tallyd at %s: nothing accepts connections there",
             f->h.req_endpoint);
    if (strstr(r.err, want) == NULL)
        fail_msg("stderr should say '%s': %s", want, r.err);
    assert_string_equal(r.out, "");
    /* 1 s of refusals plus the start of the process (slower under the
     * sanitizers and on a loaded machine); waiting out --timeout would
     * take 60 s. */
    if (r.ms < 950 || r.ms > 30000)
        fail_msg("tally get --timeout 60 took %" PRId64 " ms", r.ms);
    cli_result_free(&r);
    /* A --timeout shorter than that second ends the wait first. */
    const char *stats[] = {"stats", "--json", "--timeout", "0.5", NULL};
    r = run_expect(f, 3, stats);
    assert_non_null(strstr(r.err, "cannot reach tallyd"));
    if (r.ms < 450 || r.ms > 5500)
        fail_msg("tally stats --timeout 0.5 took %" PRId64 " ms", r.ms);
    cli_result_free(&r);
}

/* 6. `tally stats --json` counts the submissions made: pairs, a CSV file
 * and one rejected by the daemon (a figure beyond the largest a sample may
 * carry, never counted). */
static void test_stats(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    static const char *const pushes[][8] = {
        {"push", "--town", "gaoguan", "patrols=4", NULL},
        {"push", "--town", "gaoyan", "patrols=5", "banners=2", NULL},
        {"push", "-t", "xiuqi", "-q", "patrols=6", NULL},
    };
    for (size_t i = 0; i < sizeof pushes / sizeof pushes[0]; i++) {
        cli_result_t r = run_expect(f, 0, pushes[i]);
        cli_result_free(&r);
    }
    const char *csv[] = {"push", "--town", "gaoguan", "--file", f->csv_path, NULL};
    cli_result_t r = run_expect(f, 0, csv);
    cli_result_free(&r);
    /* A figure beyond the largest a sample may carry: rejected, status 1. */
    const char *huge[] = {"push", "--town", "big", "huge=9223372036854775807", NULL};
    r = run_expect(f, 1, huge);
    assert_non_null(strstr(r.err, "OUT_OF_RANGE"));
    cli_result_free(&r);

    assert_int_equal(stat_value(f, "tallyd_submissions_accepted_total"), 4);
    assert_int_equal(stat_value(f, "tallyd_samples_accepted_total"), 1 + 2 + 1 + 22);
    assert_int_equal(stat_value(f, "tallyd_rejected_total"), 1);
    /* (tallyd_duplicates_total is not checked: under load a client may
     * resend before the acknowledgement arrives.) */
    get_tab(f, NULL);
    expect_total(&f->t, "patrols", "county", 4 + 5 + 6 + 45);

    /* The table form has the same counter. */
    const char *table[] = {"stats", NULL};
    r = run_expect(f, 0, table);
    const char *line = strstr(r.out, "tallyd_submissions_accepted_total ");
    if (line == NULL || (line != r.out && line[-1] != '\n'))
        fail_msg("no tallyd_submissions_accepted_total line in:\n%s", r.out);
    long v = strtol(line + strlen("tallyd_submissions_accepted_total"), NULL, 10);
    assert_int_equal(v, 4);
    cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gaoguan_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gaoguan_example_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labels_paged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gaoguan_max_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_msg_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_name_said, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_townships, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_not_listed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope_larger_than_an_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
