/* Integration tests of `tally push` against the real tallyd, for what a
 * clerk working from the manual runs into: a --time without an offset
 * while tallyd is down (read in the zone an earlier push kept, else
 * refused), the same figures pushed twice with a --time (refused unless
 * --again), a sheet headed in Chinese (指标,数值), a misspelt metric id or
 * label (the one meant suggested) and a stray carriage return in an
 * argument (shown as \r).
 *
 * Run with a test name as its argument to run that test alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_support.h"
#include "harness.h"

typedef cli_fixture_t fx_t;

static cli_result_t run_expect(fx_t *f, int status, const char *const *args)
{
    return cli_expect(&f->h, status, args);
}

/* The all-time total of metric in scope, as `tally get` shows it. */
static int64_t total_of(fx_t *f, const char *metric, const char *scope)
{
    char err[2048];
    if (cli_get_tab(f->h.dir, f->h.req_endpoint, (const char *const[]){"--all", NULL}, &f->t, err,
                    sizeof err) != 0)
        fail_msg("%s", err);
    cli_val_t v;
    if (!cli_tab_get(&f->t, metric, scope, "total", &v) || !v.present)
        fail_msg("no total of %s/%s", metric, scope);
    return v.num;
}

/* A file name in the test's directory holding text. */
static void write_csv(fx_t *f, const char *name, const char *text, char *path, size_t cap)
{
    assert_int_equal(harness_write_file(&f->h, name, text, path, cap), 0);
}

/* 1. tallyd's zone, learned by a push without --spool (kept in the
 * user's state), reads a --time without an offset for a push to a new
 * spool while tallyd is down: 23:30 on 31 December in Asia/Shanghai is
 * 2023, where UTC would make it 2024.  With no zone kept anywhere, the
 * push is refused and nothing spooled. */
static void test_zone_while_down(void **state)
{
    fx_t *f = *state;
    char spool0[HARNESS_PATH_MAX], spool[HARNESS_PATH_MAX];
    snprintf(spool0, sizeof spool0, "%s/spool0", f->h.dir);
    snprintf(spool, sizeof spool, "%s/spool", f->h.dir);
    const char *never[] = {"push",   "--town",           "t2",        "--spool", spool0,
                           "--time", "2023-12-31 23:30", "--timeout", "1",       "m=1000",
                           NULL};
    cli_result_t r = run_expect(f, 2, never);
    if (strstr(r.err, "tallyd's time zone is not known yet") == NULL ||
        strstr(r.err, "--time 2023-12-31T23:30+08:00") == NULL ||
        strstr(r.err, "nothing was sent or spooled") == NULL)
        fail_msg("push --time without an offset, no zone known: %s", r.err);
    cli_result_free(&r);
    assert_true(cli_count_files(spool0, ".sub") <= 0);

    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    r = run_expect(f, 0, (const char *const[]){"push", "--town", "t2", "m=1", NULL});
    cli_result_free(&r);
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);

    const char *late[] = {"push",   "--town",           "t2",        "--spool", spool,
                          "--time", "2023-12-31 23:30", "--timeout", "1",       "m=1000",
                          NULL};
    r = run_expect(f, 3, late);
    if (strstr(r.err, "is read in Asia/Shanghai (UTC+8:00 then), the zone it last gave") == NULL ||
        strstr(r.err, "1 submission (1 sample) kept in") == NULL)
        fail_msg("push --time to a new spool with tallyd down: %s", r.err);
    cli_result_free(&r);
    assert_int_equal(cli_count_files(spool, ".sub"), 1);

    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    r = run_expect(
        f, 0, (const char *const[]){"push", "--spool", spool, "--flush", "--timeout", "10", NULL});
    cli_result_free(&r);
    r = run_expect(
        f, 0, (const char *const[]){"get", "--period", "2023-12-31", "-m", "m", "--json", NULL});
    if (strstr(r.out, "\"values\":{\"2023-12-31\":1000}") == NULL)
        fail_msg("the figure pushed at 2023-12-31 23:30 (Asia/Shanghai) is not on that day: %s",
                 r.out);
    cli_result_free(&r);
}

/* 2. The same figures with the same --time pushed twice: the second push
 * is refused (in any order of the rows), and counts only with --again.
 * Pushes without --time are live figures, which repeat. */
static void test_pushed_twice(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    char csv[HARNESS_PATH_MAX], reordered[HARNESS_PATH_MAX];
    write_csv(f, "report.csv", "metric,value\nm,5\nn,7\n", csv, sizeof csv);
    write_csv(f, "reordered.csv", "metric,value\nn,7\nm,5\n", reordered, sizeof reordered);
    const char *push[] = {"push", "--town", "gaoguan", "--time", "2023-12-31", "--file", csv, NULL};
    cli_result_t r = run_expect(f, 0, push);
    assert_string_equal(r.out, "accepted 2 samples for gaoguan (seq 1..1)\n");
    cli_result_free(&r);
    r = run_expect(f, 2, push);
    if (strstr(r.err, "were accepted by tallyd on") == NULL ||
        strstr(r.err, "would count them twice") == NULL || strstr(r.err, "--again") == NULL)
        fail_msg("the same push twice: %s", r.err);
    assert_string_equal(r.out, "");
    cli_result_free(&r);
    const char *other_order[] = {"push",       "--town", "gaoguan", "--time",
                                 "2023-12-31", "--file", reordered, NULL};
    r = run_expect(f, 2, other_order);
    cli_result_free(&r);
    assert_int_equal(total_of(f, "m", "gaoguan"), 5);

    const char *again[] = {"push",   "--town", "gaoguan", "--time", "2023-12-31",
                           "--file", csv,      "--again", NULL};
    r = run_expect(f, 0, again);
    cli_result_free(&r);
    assert_int_equal(total_of(f, "m", "gaoguan"), 10);
    assert_int_equal(total_of(f, "n", "gaoguan"), 14);

    const char *live[] = {"push", "--town", "gaoguan", "m=1", NULL};
    r = run_expect(f, 0, live);
    cli_result_free(&r);
    r = run_expect(f, 0, live);
    cli_result_free(&r);
    assert_int_equal(total_of(f, "m", "gaoguan"), 12);
}

/* 3. A sheet headed in Chinese, as an office's own is. */
static void test_chinese_headers(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    char csv[HARNESS_PATH_MAX];
    write_csv(f, "zh.csv", "指标,数值\nm,5\n", csv, sizeof csv);
    cli_result_t r =
        run_expect(f, 0, (const char *const[]){"push", "--town", "gaoguan", "--file", csv, NULL});
    assert_string_equal(r.out, "accepted 1 sample for gaoguan (seq 1..1)\n");
    cli_result_free(&r);
    write_csv(f, "zh2.csv", "项目,单位,数量\nm,件,3\n", csv, sizeof csv);
    r = run_expect(f, 0, (const char *const[]){"push", "--town", "gaoguan", "--file", csv, NULL});
    cli_result_free(&r);
    assert_int_equal(total_of(f, "m", "gaoguan"), 8);
}

/* 4. A misspelt id or label: tallyd rejects it (a closed list of
 * metrics), and push says which was meant, without first calling the
 * label a new metric. */
static const char closed_conf[] = "[metric disputes.resolved]\nkind = counter\n"
                                  "label = 化解矛盾纠纷\n"
                                  "[metric disputes.screened]\nkind = counter\n"
                                  "label = 排查矛盾纠纷\n";

static void test_misspelt_metric(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, closed_conf, NULL), 0);
    cli_result_t r = run_expect(
        f, 1, (const char *const[]){"push", "--town", "gaoguan", "disputes.resolvd=1", NULL});
    if (strstr(r.err, "metric 'disputes.resolvd' is not in the daemon's catalog (did you mean "
                      "'disputes.resolved'?)") == NULL)
        fail_msg("a misspelt id: %s", r.err);
    cli_result_free(&r);
    r = run_expect(f, 1,
                   (const char *const[]){"push", "--town", "gaoguan", "化解矛盾纠分=1", NULL});
    if (strstr(r.err, "(did you mean '化解矛盾纠纷', id disputes.resolved?)") == NULL ||
        strstr(r.err, "is new to tallyd") != NULL)
        fail_msg("a misspelt label: %s", r.err);
    cli_result_free(&r);
}

/* 4b. The same label on tallyd's built-in catalog, which takes new
 * names: it becomes a counter of its own, said with the label meant. */
static void test_misspelt_label_open(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    cli_result_t r = run_expect(
        f, 0, (const char *const[]){"push", "--town", "gaoguan", "化解矛盾纠分=1", NULL});
    if (strstr(r.err, "'化解矛盾纠分' is new to tallyd") == NULL ||
        strstr(r.err, "did you mean '化解矛盾纠纷', id disputes.resolved?") == NULL)
        fail_msg("a misspelt label, open catalog: %s", r.err);
    cli_result_free(&r);
}

/* 5. A carriage return from a script with Windows line ends. */
static void test_carriage_return(void **state)
{
    fx_t *f = *state;
    cli_result_t r = run_expect(
        f, 2, (const char *const[]){"push", "--town", "gaoguan", "disputes.screened=20\r", NULL});
    if (strstr(r.err, "value '20\\r' is not a number") == NULL)
        fail_msg("a carriage return in a pair: %s", r.err);
    cli_result_free(&r);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_zone_while_down, cli_fixture_setup,
                                        cli_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pushed_twice, cli_fixture_setup, cli_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_chinese_headers, cli_fixture_setup,
                                        cli_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_misspelt_metric, cli_fixture_setup,
                                        cli_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_misspelt_label_open, cli_fixture_setup,
                                        cli_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_carriage_return, cli_fixture_setup,
                                        cli_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
