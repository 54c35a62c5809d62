/* Integration tests of ratios whose operands have decimal scales
 * (PROTOCOL.md 10.6) against the real tallyd and `tally`: 12.5 ha
 * (area, scale 1, sent as 125) for 50 people is 0.25 ha each, 25.0%, not
 * 250.0%, in the live tallies, the closed month and day read from the
 * history, a span, the comparison with the month before, `tally history`
 * and `tally report`, for a township and the county, and after a
 * restart; the scaled values themselves as text (12.5, not 125) with
 * ids as much as with labels; and push reading values in the metric's
 * unit. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <glob.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_support.h"
#include "harness.h"

/* area has one decimal place, people none; the two ratios scale opposite
 * sides of the pair. */
static const char conf[] = "[history]\n"
                           "days = 36600\n"
                           "[township gaoguan]\n"
                           "name = 高观镇\n"
                           "[township bashan]\n"
                           "name = 巴山镇\n"
                           "[metric area]\n"
                           "kind = counter\n"
                           "unit = 公顷\n"
                           "scale = 1\n"
                           "label = 耕地面积\n"
                           "[metric people]\n"
                           "kind = counter\n"
                           "unit = 人\n"
                           "label = 户籍人口\n"
                           "[ratio area_per_person]\n"
                           "numerator = area\n"
                           "denominator = people\n"
                           "label = 人均耕地\n"
                           "[ratio people_per_area]\n"
                           "numerator = people\n"
                           "denominator = area\n"
                           "label = 每公顷人口\n";

typedef cli_fixture_t fx_t;

static void push(fx_t *f, const char *town, const char *when, const char *area, const char *people)
{
    cli_result_t r = cli_expect(
        &f->h, 0,
        (const char *const[]){"push", "--town", town, "--time", when, area, people, NULL});
    cli_result_free(&r);
}

/* The command's standard output holds every one of want (NULL-ended). */
static void expect_in(fx_t *f, const char *const *args, const char *const *want)
{
    cli_result_t r = cli_expect(&f->h, 0, args);
    for (size_t i = 0; want[i] != NULL; i++)
        if (strstr(r.out, want[i]) == NULL) {
            char cmd[256] = "tally";
            for (size_t k = 0; args[k] != NULL; k++)
                snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " %s", args[k]);
            fail_msg("%s: no '%s' in:\n%s", cmd, want[i], r.out);
        }
    cli_result_free(&r);
}

/* `tally get --json` with extra arguments: column col of (ratio, scope)
 * has the value want (num / den, and the "value" member). */
static void expect_ratio(fx_t *f, const char *const *extra, const char *ratio, const char *scope,
                         const char *col, double want)
{
    char err[2048];
    if (cli_get_tab(f->h.dir, f->h.req_endpoint, extra, &f->t, err, sizeof err) != 0)
        fail_msg("%s", err);
    cli_val_t v;
    if (!cli_tab_get(&f->t, ratio, scope, col, &v))
        fail_msg("no column %s of %s/%s", col, ratio, scope);
    if (!v.present || v.den == 0 || fabs((double)v.num / (double)v.den - want) > 1e-12 ||
        fabs(v.value - want) > 1e-12)
        fail_msg("%s/%s %s: expected %g, got %s%" PRId64 "/%" PRId64 " (value %g)", ratio, scope,
                 col, want, v.present ? "" : "null ", v.num, v.den, v.value);
}

/* gaoguan: 10.0 ha for 50 people in February 2024 (20.0%), 12.5 ha for
 * 50 more in March (25.0%); bashan: 37.5 ha for 50 in March (75.0%).
 * March in the county: 50.0 ha for 100 people, 50.0%. */
static void push_figures(fx_t *f)
{
    push(f, "gaoguan", "2024-02-10T10:00+08:00", "area=10.0", "people=50");
    push(f, "gaoguan", "2024-03-05T10:00+08:00", "area=12.5", "people=50");
    push(f, "bashan", "2024-03-20T10:00+08:00", "area=37.5", "people=50");
}

static void expect_live(fx_t *f)
{
    /* All time: gaoguan 22.5 ha for 100 people, the county 60.0 for 150. */
    expect_ratio(f, (const char *const[]){"--all", NULL}, "area_per_person", "gaoguan", "total",
                 0.225);
    expect_ratio(f, (const char *const[]){"--all", NULL}, "people_per_area", "gaoguan", "total",
                 100 / 22.5);
    expect_ratio(f, (const char *const[]){"--all", NULL}, "area_per_person", "county", "total",
                 0.4);
    expect_ratio(f, (const char *const[]){"--all", NULL}, "people_per_area", "county", "total",
                 2.5);
    expect_in(f, (const char *const[]){"get", "--town", "gaoguan", "--no-labels", NULL},
              (const char *const[]){"22.5%", "444.4%", NULL});
}

static void expect_history(fx_t *f)
{
    /* The closed month and day, from the history, and a span of days
     * (February and March): the exact pairs. */
    expect_in(
        f, (const char *const[]){"get", "--period", "2024-03", "--town", "gaoguan", "--json", NULL},
        (const char *const[]){"\"metric\":\"area_per_person\",\"scope\":\"gaoguan\",\"kind\":"
                              "\"ratio\",\"values\":{\"2024-03\":{\"num\":125,\"den\":500,"
                              "\"value\":0.25}}",
                              "\"metric\":\"people_per_area\",\"scope\":\"gaoguan\",\"kind\":"
                              "\"ratio\",\"values\":{\"2024-03\":{\"num\":500,\"den\":125,"
                              "\"value\":4}}",
                              NULL});
    expect_in(f, (const char *const[]){"get", "--period", "2024-03", "--json", NULL},
              (const char *const[]){"\"metric\":\"area_per_person\",\"scope\":\"county\",\"kind\":"
                                    "\"ratio\",\"values\":{\"2024-03\":{\"num\":500,\"den\":1000,"
                                    "\"value\":0.5}}",
                                    NULL});
    expect_in(
        f,
        (const char *const[]){"get", "--period", "2024-03-05", "--town", "gaoguan", "--metric",
                              "area_per_person", "--json", NULL},
        (const char *const[]){"{\"2024-03-05\":{\"num\":125,\"den\":500,\"value\":0.25}}", NULL});
    expect_in(
        f,
        (const char *const[]){"get", "--period", "2024-03-20", "--metric", "people_per_area",
                              "--json", NULL},
        (const char *const[]){"{\"2024-03-20\":{\"num\":500,\"den\":375,\"value\":1.33", NULL});
    expect_in(f,
              (const char *const[]){"get", "--period", "2024-02..2024-03", "--town", "gaoguan",
                                    "--metric", "area_per_person", "--json", NULL},
              (const char *const[]){"{\"num\":225,\"den\":1000,\"value\":0.225}", NULL});
    /* 环比: March against February, in percentage points. */
    expect_in(f,
              (const char *const[]){"get", "--period", "2024-03", "--compare", "--town", "gaoguan",
                                    "--metric", "area_per_person", "--no-labels", NULL},
              (const char *const[]){"25.0%", "20.0%", "+5.0pp", NULL});
    cli_result_t r = cli_expect(&f->h, 0,
                                (const char *const[]){"history", "-m", "area_per_person", "--town",
                                                      "gaoguan", "--by", "month", "--from",
                                                      "2024-01", "--to", "2024-04", "--csv", NULL});
    assert_string_equal(r.out, "period,area_per_person\n2024-01,\n2024-02,20.0%\n2024-03,25.0%\n"
                               "2024-04,\n");
    cli_result_free(&r);
    /* The report: the township's and the county's March. */
    expect_in(f,
              (const char *const[]){"report", "--period", "2024-03", "--town", "gaoguan",
                                    "--format", "csv", NULL},
              (const char *const[]){"area,counter,公顷,耕地面积,12.5,",
                                    "area_per_person,ratio,%,人均耕地,25.0%,",
                                    "people_per_area,ratio,%,每公顷人口,400.0%,", NULL});
    expect_in(f, (const char *const[]){"report", "--period", "2024-03", "--format", "csv", NULL},
              (const char *const[]){"area_per_person,ratio,%,人均耕地,50.0%,",
                                    "people_per_area,ratio,%,每公顷人口,200.0%,", NULL});
}

/* 1. Every reading of a scaled ratio is the ratio of the numbers its
 * operands stand for, also after a restart (the scales come from the
 * configuration again, over the checkpoint). */
static void test_scaled_ratios(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, conf, NULL), 0);
    push_figures(f);
    for (int round = 0; round < 2; round++) {
        expect_live(f);
        expect_history(f);
        assert_int_equal(harness_restart(&f->h, NULL), 0);
    }
}

/* 2. A ratio's change in percentage points is the difference of the two
 * rates as printed: 1861.0 ha for 2000 people (93.05%, shown 93.1%)
 * against 12.0 ha for 13 a year earlier (92.307...%, shown 92.3%) is
 * +0.8pp, what a reader subtracting gets, not the exact 0.74 rounded
 * (+0.7pp); the JSON keeps the exact difference. */
static void test_points_as_printed(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, conf, NULL), 0);
    push(f, "bashan", "2023-06-10T10:00+08:00", "area=12", "people=13");
    push(f, "bashan", "2024-06-10T10:00+08:00", "area=1861.0", "people=2000");
    expect_in(f,
              (const char *const[]){"get", "--period", "2024-06", "--compare", "--town", "bashan",
                                    "--metric", "area_per_person", "--no-labels", NULL},
              (const char *const[]){"93.1%", "92.3%", "+0.8pp", NULL});
    expect_in(f,
              (const char *const[]){"get", "--period", "2024-06", "--compare", "--town", "bashan",
                                    "--metric", "area_per_person", "--json", NULL},
              (const char *const[]){"\"2023-06\":{\"points\":0.742", NULL});
    cli_result_t r =
        cli_expect(&f->h, 0,
                   (const char *const[]){"history", "-m", "area_per_person", "--town", "bashan",
                                         "--by", "month", "--from", "2024-06", "--to", "2024-06",
                                         "--compare", "--csv", NULL});
    assert_string_equal(r.out, "period,area_per_person,year_ago,change,change_pct\n"
                               "2024-06,93.1%,92.3%,+0.8pp,\n");
    cli_result_free(&r);
    expect_in(f,
              (const char *const[]){"report", "--period", "2024-06", "--town", "bashan",
                                    "--compare", "--format", "csv", NULL},
              (const char *const[]){"area_per_person,ratio,%,人均耕地,93.1%,92.3%,+0.8pp,,", NULL});
}

/* Whether out has a line whose first field is metric and another field
 * exactly cell: "22.5" is not found in a line holding "225". */
static bool row_has(const char *out, const char *metric, const char *cell)
{
    const char *l = out;
    while (*l != '\0') {
        size_t len = strcspn(l, "\n");
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), l);
        l += len + (l[len] == '\n');
        char *save = NULL, *field = strtok_r(line, " ", &save);
        if (field == NULL || strcmp(field, metric) != 0)
            continue;
        while ((field = strtok_r(NULL, " ", &save)) != NULL)
            if (strcmp(field, cell) == 0)
                return true;
    }
    return false;
}

/* The command's standard output has metric's row with each of cells
 * (NULL-ended) as a field. */
static void expect_row(fx_t *f, const char *const *args, const char *metric,
                       const char *const *cells)
{
    cli_result_t r = cli_expect(&f->h, 0, args);
    for (size_t i = 0; cells[i] != NULL; i++)
        if (!row_has(r.out, metric, cells[i])) {
            char cmd[256] = "tally";
            for (size_t k = 0; args[k] != NULL; k++)
                snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " %s", args[k]);
            fail_msg("%s: no row of %s with '%s' in:\n%s", cmd, metric, cells[i], r.out);
        }
    cli_result_free(&r);
}

/* push_figures' figures as integers on the wire (area in tenths), sent
 * as they are whatever `tally push` makes of a decimal scale. */
static void submit_figures(fx_t *f)
{
    static const struct {
        const char *town;
        int64_t time_ms; /* 10:00 in Asia/Shanghai */
        int64_t area, people;
    } fig[] = {{"gaoguan", 1707530400000LL, 100, 50}, /* 2024-02-10 */
               {"gaoguan", 1709604000000LL, 125, 50}, /* 2024-03-05 */
               {"bashan", 1710900000000LL, 375, 50}}; /* 2024-03-20 */
    harness_client_t cl;
    assert_int_equal(harness_client_open(&f->h, &cl), 0);
    for (size_t i = 0; i < sizeof fig / sizeof fig[0]; i++) {
        harness_sample_t s[2] = {{"area", fig[i].area}, {"people", fig[i].people}};
        harness_ack_t ack;
        char why[512];
        assert_int_equal(harness_submit(&cl, i + 1, fig[i].town, fig[i].time_ms, s, 2, &ack), 0);
        if (ack.status != 0)
            fail_msg("submit %zu: %s", i + 1, harness_ack_str(&ack, why, sizeof why));
    }
    harness_client_close(&cl);
}

/* 3. Values shown as text carry the metric's decimal scale with ids too
 * (--no-labels, or stdout not a terminal as here), not only with labels:
 * gaoguan's 22.5 ha (sent as 225) is never printed 225.  JSON keeps the
 * exact integers. */
static void test_scale_without_labels(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, conf, NULL), 0);
    submit_figures(f);
    expect_row(f, (const char *const[]){"get", "--town", "gaoguan", "--no-labels", NULL}, "area",
               (const char *const[]){"gaoguan", "22.5", NULL});
    expect_row(f, (const char *const[]){"get", "--town", "gaoguan", NULL}, "area",
               (const char *const[]){"22.5", NULL});
    expect_row(f, (const char *const[]){"get", "--town", "gaoguan", NULL}, "people",
               (const char *const[]){"100", NULL});
    expect_row(f, (const char *const[]){"get", "--all", "--metric", "area", NULL}, "area",
               (const char *const[]){"county", "60.0", NULL});
    expect_row(f,
               (const char *const[]){"get", "--period", "2024-03", "--town", "gaoguan",
                                     "--no-labels", NULL},
               "area", (const char *const[]){"12.5", NULL});
    expect_row(f,
               (const char *const[]){"get", "--period", "2024-03", "--compare", "--town", "gaoguan",
                                     "--metric", "area", NULL},
               "area", (const char *const[]){"12.5", "10.0", "+2.5", "+25.0%", NULL});
    cli_result_t r = cli_expect(&f->h, 0,
                                (const char *const[]){"history", "-m", "area", "--town", "gaoguan",
                                                      "--by", "month", "--from", "2024-02", "--to",
                                                      "2024-03", "--csv", NULL});
    assert_string_equal(r.out, "period,area\n2024-02,10.0\n2024-03,12.5\n");
    cli_result_free(&r);
    expect_row(f,
               (const char *const[]){"history", "-m", "area", "--town", "gaoguan", "--by", "month",
                                     "--from", "2024-03", "--to", "2024-03", "--no-labels", NULL},
               "2024-03", (const char *const[]){"12.5", NULL});
    expect_in(f,
              (const char *const[]){"get", "--town", "gaoguan", "--metric", "area", "--json", NULL},
              (const char *const[]){"\"kind\":\"counter\",\"values\":{", "\"total\":225", NULL});
    expect_in(f,
              (const char *const[]){"history", "-m", "area", "--town", "gaoguan", "--by", "month",
                                    "--from", "2024-03", "--to", "2024-03", "--json", NULL},
              (const char *const[]){"\"value\":125", NULL});
}

/* The county total of metric as an exact integer (tally get --json). */
static int64_t county_total(fx_t *f, const char *metric)
{
    char err[2048];
    if (cli_get_tab(f->h.dir, f->h.req_endpoint, NULL, &f->t, err, sizeof err) != 0)
        fail_msg("%s", err);
    cli_val_t v;
    if (!cli_tab_get(&f->t, metric, "county", "total", &v) || !v.present)
        fail_msg("no county total of %s", metric);
    return v.num;
}

/* The command fails with status and its standard error holds want. */
static void expect_refused(fx_t *f, int status, const char *const *args, const char *want)
{
    cli_result_t r = cli_expect(&f->h, status, args);
    if (strstr(r.err, want) == NULL)
        fail_msg("%s: no '%s' in:\n%s", args[args[1] != NULL ? 1 : 0], want, r.err);
    cli_result_free(&r);
}

/* 4. push reads values in the metric's unit, as the report prints them:
 * area=12.5 of a metric with one decimal place is sent as 125, area=3 as
 * 30; a place more than the metric keeps is refused, nothing sent.  The
 * places come from the catalog kept at the last push while tallyd is
 * down; with none kept, a fraction is refused and a whole number goes as
 * written, said.  A spooled submission tallyd rejects is set aside as
 * CSV in the same units. */
static void test_push_in_units(void **state)
{
    fx_t *f = *state;
    char spool[HARNESS_PATH_MAX + 16];
    snprintf(spool, sizeof spool, "%s/spool", f->h.dir);
    /* No daemon yet, and no catalog kept. */
    expect_refused(f, 3,
                   (const char *const[]){"push", "--town", "gaoguan", "--spool", spool, "--timeout",
                                         "5", "area=0.5", NULL},
                   "how many decimal places tallyd keeps of area is not known");
    expect_refused(f, 3,
                   (const char *const[]){"push", "--town", "gaoguan", "--spool", spool, "--timeout",
                                         "5", "area=0.5", NULL},
                   "tally: cannot reach tallyd at ");
    assert_int_equal(cli_count_files(spool, ".sub"), 0);
    expect_refused(f, 3,
                   (const char *const[]){"push", "--town", "gaoguan", "--spool", spool, "--timeout",
                                         "5", "people=7", NULL},
                   "no catalog of tallyd is kept here: values go as written");
    assert_int_equal(cli_count_files(spool, ".sub"), 1);

    assert_int_equal(harness_start(&f->h, conf, NULL), 0);
    cli_result_t r = cli_expect(&f->h, 0,
                                (const char *const[]){"push", "--town", "gaoguan", "--spool", spool,
                                                      "area=12.5", "people=50", NULL});
    cli_result_free(&r);
    assert_int_equal(county_total(f, "area"), 125);
    assert_int_equal(county_total(f, "people"), 57);
    r = cli_expect(&f->h, 0, (const char *const[]){"push", "--town", "gaoguan", "area=3", NULL});
    cli_result_free(&r);
    assert_int_equal(county_total(f, "area"), 155);
    expect_refused(f, 2, (const char *const[]){"push", "--town", "gaoguan", "area=12.55", NULL},
                   "'area=12.55': area takes at most 1 decimal place");
    expect_refused(f, 2, (const char *const[]){"push", "--town", "gaoguan", "people=1.5", NULL},
                   "'people=1.5': people takes whole numbers");
    char csv[HARNESS_PATH_MAX + 8];
    snprintf(csv, sizeof csv, "%s/f.csv", f->h.dir);
    FILE *fp = fopen(csv, "w");
    assert_non_null(fp);
    fputs("指标,数值\n耕地面积,0.50\npeople,2\n", fp);
    assert_int_equal(fclose(fp), 0);
    r = cli_expect(&f->h, 0,
                   (const char *const[]){"push", "--town", "高观镇", "--file", csv, NULL});
    cli_result_free(&r);
    fp = fopen(csv, "w");
    assert_non_null(fp);
    fputs("metric,value\narea,1\narea,0.05\n", fp);
    assert_int_equal(fclose(fp), 0);
    char want[HARNESS_PATH_MAX + 128];
    snprintf(want, sizeof want, "%s:3: area=0.05: area takes at most 1 decimal place", csv);
    expect_refused(f, 2, (const char *const[]){"push", "--town", "gaoguan", "--file", csv, NULL},
                   want);
    assert_int_equal(county_total(f, "area"), 160);
    assert_int_equal(county_total(f, "people"), 59);

    /* Down: the places of the catalog the last push kept. */
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    expect_refused(f, 2,
                   (const char *const[]){"push", "--town", "gaoguan", "--spool", spool, "--timeout",
                                         "5", "area=0.25", NULL},
                   "area takes at most 1 decimal place");
    r = cli_expect(&f->h, 3,
                   (const char *const[]){"push", "--town", "gaoguan", "--spool", spool, "--timeout",
                                         "5", "area=0.2", NULL});
    if (strstr(r.err, "no catalog") != NULL)
        fail_msg("a catalog is kept: %s", r.err);
    cli_result_free(&r);
    r = cli_expect(&f->h, 3,
                   (const char *const[]){"push", "--town", "gaoguan", "--spool", spool, "--timeout",
                                         "5", "area=-0.5", NULL});
    cli_result_free(&r);
    assert_int_equal(harness_start(&f->h, conf, NULL), 0);
    r = cli_expect(&f->h, 1, (const char *const[]){"push", "--spool", spool, "--flush", NULL});
    if (strstr(r.err, "samples[0].value: -0.5 (sent as -5, scale 1) is below the minimum 0.0 of "
                      "counter 'area'") == NULL)
        fail_msg("tallyd's refusal should show the figure in its unit: %s", r.err);
    cli_result_free(&r);
    assert_int_equal(county_total(f, "area"), 162);
    char rejected[HARNESS_PATH_MAX + 32];
    snprintf(rejected, sizeof rejected, "%s/rejected", spool);
    assert_int_equal(cli_count_files(rejected, ".csv"), 1);
    char pattern[HARNESS_PATH_MAX + 48];
    snprintf(pattern, sizeof pattern, "%s/*.csv", rejected);
    glob_t gl;
    assert_int_equal(glob(pattern, 0, NULL, &gl), 0);
    char *text = harness_read_file(gl.gl_pathv[0]);
    globfree(&gl);
    assert_non_null(text);
    assert_string_equal(text, "metric,value\narea,-0.5\n");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scaled_ratios, cli_fixture_setup,
                                        cli_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_points_as_printed, cli_fixture_setup,
                                        cli_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_scale_without_labels, cli_fixture_setup,
                                        cli_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_push_in_units, cli_fixture_setup,
                                        cli_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
