/* Black-box tests of tallyd with real figures: the 高观镇 2023 report
 * (shared/data/gaoguan-2023.csv) pushed as one submission, with the
 * example configuration and with the built-in defaults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define ROWS_MAX 64

typedef struct csv_row {
    char metric[PROTO_NAME_MAX + 1];
    char kind[16];
    int64_t value;
} csv_row_t;

typedef struct fx {
    harness_t h;
    harness_table_t t;
    char *conf;
    csv_row_t rows[ROWS_MAX];
    size_t nrows;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0)
        return -1;
    harness_table_init(&f->t);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    /* A clean exit is part of every test: it shows leaks and errors at
     * exit in the sanitizer build. */
    int rc = harness_finish(&f->h) == 0 ? 0 : -1;
    harness_table_free(&f->t);
    harness_cleanup(&f->h);
    free(f->conf);
    free(f);
    return rc;
}

/* Columns metric,kind,unit,label,value; no field holds a comma or quote. */
static void load_csv(fx_t *f)
{
    char path[HARNESS_PATH_MAX];
    snprintf(path, sizeof(path), "%s/gaoguan-2023.csv", TALLY_SHARED_DATA);
    char *text = harness_read_file(path);
    if (text == NULL)
        fail_msg("cannot read %s", path);
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
            fail_msg("%s: bad line '%s'", path, line);
        csv_row_t *r = &f->rows[f->nrows++];
        snprintf(r->metric, sizeof(r->metric), "%s", field[0]);
        snprintf(r->kind, sizeof(r->kind), "%s", field[1]);
        char *end;
        r->value = strtoll(field[4], &end, 10);
        assert_true(*end == '\0' && end != field[4]);
    }
    free(text);
    assert_int_equal(f->nrows, 22);
}

static void push_report(fx_t *f)
{
    load_csv(f);
    harness_sample_t s[ROWS_MAX];
    for (size_t i = 0; i < f->nrows; i++) {
        s[i].metric = f->rows[i].metric;
        s[i].value = f->rows[i].value;
    }
    harness_client_t c;
    harness_ack_t a;
    char desc[800];
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(harness_submit(&c, 1, "gaoguan", harness_now_ms(), s, (uint32_t)f->nrows, &a),
                     0);
    if (a.type != PROTO_ACK || a.status != PROTO_ACK_ACCEPTED)
        fail_msg("the report was not accepted: %s", harness_ack_str(&a, desc, sizeof(desc)));
    assert_int_equal(harness_snapshot(&c, "", &f->t), 0);
    harness_client_close(&c);
}

static void expect_ratio(const harness_table_t *t, const char *ratio, const char *scope,
                         int64_t num, int64_t den)
{
    const harness_row_t *r = harness_table_find(t, ratio, scope);
    if (r == NULL)
        fail_msg("no ratio %s in scope '%s'", ratio, scope);
    assert_int_equal(r->kind, PROTO_KIND_RATIO);
    for (uint32_t i = 0; i < r->ncols; i++)
        if (!r->val[i].present || r->val[i].num != num || r->val[i].den != den)
            fail_msg("%s '%s' %s: expected [%" PRId64 ", %" PRId64 "], got %s[%" PRId64 ", %" PRId64
                     "]",
                     ratio, scope, r->col[i], num, den, r->val[i].present ? "" : "nil ",
                     r->val[i].num, r->val[i].den);
    harness_value_t v;
    assert_true(harness_table_get(t, ratio, scope, "total", &v));
}

/* Percent to one decimal, rounded half up, in tenths: 216/219 -> 986. */
static int64_t tenths_of_percent(int64_t num, int64_t den)
{
    return (2000 * num + den) / (2 * den);
}

static void check_counters(fx_t *f, bool gauges_declared)
{
    for (size_t i = 0; i < f->nrows; i++) {
        const csv_row_t *r = &f->rows[i];
        bool gauge = strcmp(r->kind, "gauge") == 0;
        static const char *const scopes[] = {"", "gaoguan"};
        for (int s = 0; s < 2; s++) {
            const harness_row_t *row = harness_table_find(&f->t, r->metric, scopes[s]);
            if (row == NULL)
                fail_msg("no series %s in '%s'", r->metric, scopes[s]);
            harness_value_t v;
            assert_true(harness_table_get(&f->t, r->metric, scopes[s], "total", &v));
            if (!v.present || v.num != r->value)
                fail_msg("%s '%s' total: expected %" PRId64 ", got %s%" PRId64, r->metric,
                         scopes[s], r->value, v.present ? "" : "nil ", v.num);
            if (gauge && gauges_declared) {
                assert_int_equal(row->kind, PROTO_KIND_GAUGE);
                /* a gauge has a value in total only */
                for (uint32_t c = 0; c < row->ncols; c++)
                    if (strcmp(row->col[c], "total") != 0 && row->val[c].present)
                        fail_msg("gauge %s '%s' has a value in %s", r->metric, scopes[s],
                                 row->col[c]);
            } else {
                assert_int_equal(row->kind, PROTO_KIND_COUNTER);
                assert_true(harness_table_get(&f->t, r->metric, scopes[s], "year", &v));
                assert_true(v.present && v.num == r->value);
            }
        }
    }
}

static void check_ratios(fx_t *f)
{
    static const char *const scopes[] = {"", "gaoguan"};
    for (int s = 0; s < 2; s++) {
        expect_ratio(&f->t, "disputes.resolution_rate", scopes[s], 216, 219);
        expect_ratio(&f->t, "law_exam.pass_rate", scopes[s], 94, 94);
        expect_ratio(&f->t, "talks.resolution_rate", scopes[s], 25, 25);
    }
    harness_value_t v;
    assert_true(harness_table_get(&f->t, "disputes.resolution_rate", "", "total", &v));
    assert_int_equal(tenths_of_percent(v.num, v.den), 986); /* 98.6% */
    assert_true(harness_table_get(&f->t, "law_exam.pass_rate", "", "total", &v));
    assert_int_equal(tenths_of_percent(v.num, v.den), 1000); /* 100.0% */
}

/* 6. The example configuration (endpoints and state dir from the command
 * line, which override the file). */
static void test_example_config(void **state)
{
    fx_t *f = *state;
    char path[HARNESS_PATH_MAX];
    snprintf(path, sizeof(path), "%s/systemd/tallyd.conf.example", TALLY_SOURCE_DIR);
    f->conf = harness_read_file(path);
    if (f->conf == NULL)
        fail_msg("cannot read %s", path);
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    push_report(f);
    check_counters(f, true);
    check_ratios(f);
    /* The closed catalog creates no series beyond gaoguan's and the
     * county's; other townships appear in no snapshot row. */
    for (size_t i = 0; i < f->t.n; i++)
        if (f->t.rows[i].scope[0] != '\0')
            assert_string_equal(f->t.rows[i].scope, "gaoguan");
    /* And it is closed: a township outside the 25 is refused. */
    harness_client_t c;
    harness_ack_t a;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(harness_submit_one(&c, 1, "nowhere", harness_now_ms(), "patrols", 1, &a), 0);
    assert_int_equal(a.status, PROTO_ACK_REJECTED);
    assert_int_equal(a.code, 12);
    harness_client_close(&c);
}

/* 7. No configuration file: the built-in catalog declares the report's
 * gauges (pushing it twice does not double them) and derives the rates. */
static void test_builtin_defaults(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    push_report(f);
    check_counters(f, true);
    check_ratios(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_example_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builtin_defaults, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
