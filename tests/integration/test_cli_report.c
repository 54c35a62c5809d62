/* Integration tests of `tally report` against the real tallyd: 高观镇's
 * 2023 report pushed stamped 2023-12-31 (example catalog) comes back as a
 * CSV report with every figure, label and unit of the township's own
 * report and its three ratios; the Excel workbook read back with openpyxl
 * (tests/integration/xlsx_check.py) matches the CSV; --all, --compare,
 * Markdown, a period without figures, bad arguments, and the format -o's
 * extension gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_support.h"
#include "harness.h"

typedef struct fx {
    harness_t h;
    char *conf;
    char csv[HARNESS_PATH_MAX];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0)
        return -1;
    snprintf(f->csv, sizeof f->csv, "%s/gaoguan-2023.csv", TALLY_SHARED_DATA);
    char path[HARNESS_PATH_MAX];
    snprintf(path, sizeof path, "%s/systemd/tallyd.conf.example", harness_source_dir);
    f->conf = harness_read_file(path);
    if (f->conf == NULL || harness_start(&f->h, f->conf, NULL) != 0)
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

static void push_2023(fx_t *f)
{
    cli_result_t r = run_expect(f, 0,
                                (const char *const[]){"push", "--town", "gaoguan", "--time",
                                                      "2023-12-31", "--file", f->csv, NULL});
    cli_result_free(&r);
}

/* The report's CSV of township town for 2023. */
static char *report_csv(fx_t *f, const char *town)
{
    cli_result_t r = run_expect(f, 0,
                                (const char *const[]){"report", "--period", "2023", "--town", town,
                                                      "--format", "csv", NULL});
    char *out = r.out;
    r.out = NULL;
    cli_result_free(&r);
    return out;
}

/* 1b. A report's CSV, ratios and all, pushed back as it is (an office
 * edits last year's export and sends it): the figures go in, the three
 * derived ratios are left out and said so, and the other township's
 * report comes out the same. */
static void test_csv_round_trip(void **state)
{
    fx_t *f = *state;
    push_2023(f);
    char *gaoguan = report_csv(f, "gaoguan");
    char path[HARNESS_PATH_MAX];
    assert_int_equal(harness_write_file(&f->h, "export.csv", gaoguan, path, sizeof path), 0);
    cli_result_t r = run_expect(f, 0,
                                (const char *const[]){"push", "--town", "gecheng", "--time",
                                                      "2023-12-31", "--file", path, NULL});
    if (strstr(r.err, "3 rows of derived ratios left out") == NULL)
        fail_msg("tally push of a report's CSV:\n%s", r.err);
    cli_result_free(&r);
    char *gecheng = report_csv(f, "gecheng");
    assert_string_equal(gecheng, gaoguan);
    free(gecheng);
    free(gaoguan);
    /* A township that reported nothing: its report is a blank form (zeros,
     * and no value for the gauges), which goes in as it is. */
    char *form = report_csv(f, "bashan");
    assert_int_equal(harness_write_file(&f->h, "form.csv", form, path, sizeof path), 0);
    free(form);
    r = run_expect(f, 0,
                   (const char *const[]){"push", "--town", "bashan", "--time", "2023-12-31",
                                         "--file", path, NULL});
    if (strstr(r.err, "2 rows without a value left out") == NULL ||
        strncmp(r.out, "accepted 20 samples for bashan ", 31) != 0)
        fail_msg("tally push of a blank form:\n%s%s", r.out, r.err);
    cli_result_free(&r);
}

/* Remove the \r of CRLF line ends in place. */
static void strip_cr(char *s)
{
    char *w = s;
    for (char *p = s; *p; p++)
        if (*p != '\r')
            *w++ = *p;
    *w = '\0';
}

/* The line of text starting with prefix, into line. */
static bool line_with(const char *text, const char *prefix, char *line, size_t cap)
{
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            snprintf(line, cap, "%.*s", (int)n, p);
            return true;
        }
        p += n + (p[n] == '\n');
    }
    return false;
}

/* Run xlsx_check.py on the workbook xlsx against the CSV csvp. */
static void xlsx_check(fx_t *f, const char *xlsx, const char *csvp, const char *what)
{
    char script[HARNESS_PATH_MAX], out[HARNESS_PATH_MAX], err[HARNESS_PATH_MAX];
    snprintf(script, sizeof script, "%s/tests/integration/xlsx_check.py", harness_source_dir);
    snprintf(out, sizeof out, "%s/xlsx_check.out", f->h.dir);
    snprintf(err, sizeof err, "%s/xlsx_check.err", f->h.dir);
    const char *argv[] = {"/usr/bin/python3", script, xlsx, csvp, NULL};
    pid_t pid = cli_spawn_argv(NULL, argv, out, err);
    assert_true(pid > 0);
    int st = cli_wait(pid, 60000);
    if (st != 0) {
        char *e = harness_read_file(err);
        fail_msg("xlsx_check.py, %s: status %d: %s", what, st, e ? e : "");
    }
}

/* 1. The CSV report reproduces every line of the township's report and
 * the ratios of ratios.csv; the workbook matches the CSV cell by cell. */
static void test_gaoguan_2023(void **state)
{
    fx_t *f = *state;
    push_2023(f);
    cli_result_t r = run_expect(f, 0,
                                (const char *const[]){"report", "--period", "2023", "--town",
                                                      "gaoguan", "--format", "csv", NULL});
    strip_cr(r.out);
    assert_string_equal(r.err, "");
    char *seed = harness_read_file(f->csv);
    assert_non_null(seed);
    strip_cr(seed);
    char *save = NULL;
    int lines = 0;
    for (char *l = strtok_r(seed, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        char want[512];
        snprintf(want, sizeof want, "\n%s,2023,\n", l); /* period 2023, over: no through */
        if (lines++ == 0) {
            assert_int_equal(strncmp(r.out, l, strlen(l)), 0); /* the same header */
            continue;
        }
        if (strstr(r.out, want) == NULL)
            fail_msg("the report lacks the line '%s':\n%s", l, r.out);
    }
    free(seed);
    assert_int_equal(lines, 23);
    /* ratios.csv: ratio,numerator,denominator,label,gaoguan_2023 */
    char path[HARNESS_PATH_MAX];
    snprintf(path, sizeof path, "%s/ratios.csv", TALLY_SHARED_DATA);
    char *ratios = harness_read_file(path);
    assert_non_null(ratios);
    strip_cr(ratios);
    save = NULL;
    int nratios = 0;
    strtok_r(ratios, "\n", &save);
    for (char *l = strtok_r(NULL, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        char id[80], num[80], den[80], label[200], value[40], line[512], prefix[320];
        if (sscanf(l, "%79[^,],%79[^,],%79[^,],%199[^,],%39s", id, num, den, label, value) != 5)
            fail_msg("ratios.csv: '%s'", l);
        snprintf(prefix, sizeof prefix, "%s,ratio,%%,%s,", id, label);
        if (!line_with(r.out, prefix, line, sizeof line))
            fail_msg("no line '%s...' in:\n%s", prefix, r.out);
        const char *field = line + strlen(prefix); /* then ,period,through */
        size_t flen = strcspn(field, ",");
        double want = atof(value), got = atof(field);
        if (fabs(want - got) > 0.05 || flen == 0 || field[flen - 1] != '%')
            fail_msg("%s: %s, expected %s", id, field, value);
        nratios++;
    }
    free(ratios);
    assert_int_equal(nratios, 3);

    /* The workbook, read by openpyxl, against the CSV. */
    char xlsx[HARNESS_PATH_MAX], csvp[HARNESS_PATH_MAX];
    snprintf(xlsx, sizeof xlsx, "%s/gaoguan-2023.xlsx", f->h.dir);
    snprintf(csvp, sizeof csvp, "%s/gaoguan-2023-report.csv", f->h.dir);
    cli_result_t x = run_expect(
        f, 0,
        (const char *const[]){"report", "--period", "2023", "--town", "gaoguan", "-o", xlsx, NULL});
    cli_result_free(&x);
    x = run_expect(
        f, 0,
        (const char *const[]){"report", "--period", "2023", "--town", "gaoguan", "-o", csvp, NULL});
    cli_result_free(&x);
    xlsx_check(f, xlsx, csvp, "the 2023 report");
    /* This year so far against the same days a year earlier: its
     * heading is a span of days, which must fit its column. */
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char year[16];
    snprintf(year, sizeof year, "%d", tm.tm_year + 1900);
    const char *const forms[2] = {xlsx, csvp};
    for (int i = 0; i < 2; i++) {
        x = run_expect(f, 0,
                       (const char *const[]){"report", "--period", year, "--town", "gaoguan",
                                             "--compare", "-o", forms[i], NULL});
        cli_result_free(&x);
    }
    char what[64];
    snprintf(what, sizeof what, "%s --compare", year);
    xlsx_check(f, xlsx, csvp, what);
    cli_result_free(&r);
}

/* 2. --all: a column per township by name and the county's last;
 * --compare: the year before and the change (with --all, the county's);
 * Markdown with the title. */
static void test_all_compare_md(void **state)
{
    fx_t *f = *state;
    push_2023(f);
    cli_result_t r = run_expect(
        f, 0, (const char *const[]){"report", "--period", "2023", "--all", "-f", "csv", NULL});
    strip_cr(r.out);
    if (strstr(r.out, ",高观镇,") == NULL || strstr(r.out, ",全县,period,through\n") == NULL)
        fail_msg("--all: no 高观镇 and 全县 columns:\n%.400s", r.out);
    char line[1024];
    assert_true(line_with(r.out, "disputes.resolved,", line, sizeof line));
    /* 高观镇's column and the county's, last, hold 216; the others 0. */
    size_t len = strlen(line);
    assert_true(len > 10 && strcmp(line + len - 10, ",216,2023,") == 0);
    assert_non_null(strstr(line, ",216,"));
    cli_result_free(&r);

    r = run_expect(f, 0,
                   (const char *const[]){"report", "--period", "2023", "--town", "gaoguan",
                                         "--compare", "-f", "csv", NULL});
    strip_cr(r.out);
    const char *head = "metric,kind,unit,label,value,year_ago,change,change_pct,period,through\n";
    assert_int_equal(strncmp(r.out, head, strlen(head)), 0);
    assert_true(line_with(r.out, "disputes.resolved,", line, sizeof line));
    assert_string_equal(line, "disputes.resolved,counter,件,化解矛盾纠纷,216,0,+216,,2023,");
    cli_result_free(&r);

    /* --all --compare: the county's year before and change after its
     * column (they were left out). */
    r = run_expect(f, 0,
                   (const char *const[]){"report", "--period", "2023", "--all", "--compare", "-f",
                                         "csv", NULL});
    strip_cr(r.out);
    if (strstr(r.out, ",全县,county_year_ago,county_change,county_change_pct,period,through\n") ==
            NULL ||
        !line_with(r.out, "disputes.resolved,", line, sizeof line) ||
        strcmp(line + strlen(line) - strlen(",216,0,+216,,2023,"), ",216,0,+216,,2023,") != 0)
        fail_msg("--all --compare:\n%.600s", r.out);
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"report", "--period", "2023", "--all", "--compare", NULL});
    if (strstr(r.out, "| 全县 | 全县 2022年 | 同比增减 | 同比 |") == NULL)
        fail_msg("--all --compare, Markdown:\n%.800s", r.out);
    cli_result_free(&r);

    r = run_expect(
        f, 0, (const char *const[]){"report", "--period", "2023-Q4", "--town", "gaoguan", NULL});
    /* The title and headings in Chinese, a ratio's unit left to its
     * values, who hands it in under the table. */
    if (strncmp(r.out, "# 高观镇2023年第四季度统计报表\n",
                strlen("# 高观镇2023年第四季度统计报表\n")) != 0 ||
        strstr(r.out, "| 指标 | 单位 | 2023年第四季度 |\n") == NULL ||
        strstr(r.out, "| 矛盾纠纷化解率 |  | 98.6% |") == NULL ||
        strstr(r.out, "\n填报单位：高观镇  填报日期：") == NULL)
        fail_msg("Markdown:\n%s", r.out);
    cli_result_free(&r);

    /* A year before with a rate of 1/16 = 6.25%: shown 6.3% (rounded half
     * up, as get shows it), the change in 个百分点 the difference of the
     * rates as printed (98.6 - 6.3 = 92.3; the exact fractions' 92.380...
     * would give 92.4, which a reader subtracting does not get). */
    r = run_expect(f, 0,
                   (const char *const[]){"push", "--town", "gaoguan", "--time", "2022-06-01",
                                         "disputes.screened=16", "disputes.resolved=1", NULL});
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"report", "--period", "2023", "--town", "gaoguan",
                                         "--compare", NULL});
    if (strstr(r.out, "| 矛盾纠纷化解率 |  | 98.6% | 6.3% | +92.3 个百分点 |") == NULL)
        fail_msg("--compare, Markdown:\n%s", r.out);
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"get", "--period", "2022", "--town", "gaoguan", "-m",
                                         "disputes.resolution_rate", NULL});
    if (strstr(r.out, " 6.3%") == NULL)
        fail_msg("get --period 2022:\n%s", r.out);
    cli_result_free(&r);
}

/* The report of args (NULL-ended, without -o) as a workbook and a CSV,
 * checked against each other by xlsx_check.py. */
static void check_workbook(fx_t *f, const char *const *args, const char *what)
{
    char xlsx[HARNESS_PATH_MAX], csvp[HARNESS_PATH_MAX];
    snprintf(xlsx, sizeof xlsx, "%s/check.xlsx", f->h.dir);
    snprintf(csvp, sizeof csvp, "%s/check.csv", f->h.dir);
    const char *const forms[2] = {xlsx, csvp};
    for (int i = 0; i < 2; i++) {
        const char *argv[24];
        size_t n = 0;
        while (args[n] != NULL && n < 20) {
            argv[n] = args[n];
            n++;
        }
        argv[n++] = "-o";
        argv[n++] = forms[i];
        argv[n] = NULL;
        cli_result_t r = run_expect(f, 0, argv);
        cli_result_free(&r);
    }
    xlsx_check(f, xlsx, csvp, what);
}

/* The line of the report's CSV for metric (the \r removed). */
static void csv_line(fx_t *f, const char *const *args, const char *metric, char *line, size_t cap,
                     char *head, size_t head_cap)
{
    cli_result_t r = run_expect(f, 0, args);
    strip_cr(r.out);
    char prefix[96];
    snprintf(prefix, sizeof prefix, "%s,", metric);
    if (!line_with(r.out, prefix, line, cap))
        fail_msg("no %s in:\n%s", metric, r.out);
    snprintf(head, head_cap, "%.*s", (int)strcspn(r.out, "\n"), r.out);
    cli_result_free(&r);
}

/* 2b. --compare adds 环比 after 同比: the period before, the change and
 * the change in % (in percentage points for a ratio, from the rates as
 * printed: 93.1% against 92.3% is +0.8); a month against the month
 * before, a quarter the quarter before, a day the day before; a year and
 * a span have 同比 only; a month under way against as many days of the
 * month before.  Chinese headings in Markdown and the workbook, CSV's
 * machine-readable. */
static void test_compare_previous(void **state)
{
    fx_t *f = *state;
    push_2023(f); /* 2023-Q4: 216 resolved */
    cli_result_t r =
        run_expect(f, 0,
                   (const char *const[]){"push", "--town", "gaoguan", "--time", "2024-01-15",
                                         "disputes.screened=13", "disputes.resolved=12", NULL});
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"push", "--town", "gaoguan", "--time", "2024-02-10",
                                         "disputes.screened=2000", "disputes.resolved=1861", NULL});
    cli_result_free(&r);
    char line[1024], head[1024];
    const char *want_head = "metric,kind,unit,label,value,year_ago,change,change_pct,previous,"
                            "previous_change,previous_change_pct,period,through";
    /* A closed month: January; 1861/2000 (93.05%, 93.1%) against 12/13
     * (92.31%, 92.3%) is +0.8 points. */
    const char *const feb[] = {"report",    "--period", "2024-02", "--town", "gaoguan",
                               "--compare", "-f",       "csv",     NULL};
    csv_line(f, feb, "disputes.resolved", line, sizeof line, head, sizeof head);
    assert_string_equal(head, want_head);
    assert_string_equal(
        line, "disputes.resolved,counter,件,化解矛盾纠纷,1861,0,+1861,,12,+1849,+15408.3%,"
              "2024-02,");
    csv_line(f, feb, "disputes.resolution_rate", line, sizeof line, head, sizeof head);
    assert_string_equal(line, "disputes.resolution_rate,ratio,%,矛盾纠纷化解率,93.1%,,,,92.3%,"
                              "+0.8pp,,2024-02,");
    /* A quarter: 2023-Q4's 216. */
    csv_line(f,
             (const char *const[]){"report", "--period", "2024-Q1", "--town", "gaoguan",
                                   "--compare", "-f", "csv", NULL},
             "disputes.resolved", line, sizeof line, head, sizeof head);
    assert_string_equal(head, want_head);
    assert_string_equal(line, "disputes.resolved,counter,件,化解矛盾纠纷,1873,0,+1873,,216,+1657,"
                              "+767.1%,2024-Q1,");
    /* A year and a span: 同比 only. */
    const char *const once[][10] = {
        {"report", "--period", "2024", "--town", "gaoguan", "--compare", "-f", "csv", NULL},
        {"report", "--period", "2024-01..2024-02", "--town", "gaoguan", "--compare", "-f", "csv",
         NULL}};
    for (size_t i = 0; i < 2; i++) {
        csv_line(f, once[i], "disputes.resolved", line, sizeof line, head, sizeof head);
        assert_string_equal(head, "metric,kind,unit,label,value,year_ago,change,change_pct,period,"
                                  "through");
    }
    /* Markdown: headed in Chinese, 同比 then 环比. */
    r = run_expect(f, 0,
                   (const char *const[]){"report", "--period", "2024-02", "--town", "gaoguan",
                                         "--compare", NULL});
    if (strncmp(r.out, "# 高观镇2024年2月统计报表\n", strlen("# 高观镇2024年2月统计报表\n")) != 0 ||
        strstr(r.out, "| 指标 | 单位 | 2024年2月 | 2023年2月 | 同比增减 | 同比 | 2024年1月 | "
                      "环比增减 | 环比 |\n") == NULL ||
        strstr(r.out, "| 矛盾纠纷化解率 |  | 93.1% |  |  |  | 92.3% | +0.8 个百分点 |  |\n") ==
            NULL)
        fail_msg("--compare 2024-02, Markdown:\n%s", r.out);
    cli_result_free(&r);
    r = run_expect(f, 0,
                   (const char *const[]){"report", "--period", "2024-01..2024-02", "--all", NULL});
    if (strncmp(r.out, "# 全县及各乡镇（街道）2024年1月—2月统计报表\n",
                strlen("# 全县及各乡镇（街道）2024年1月—2月统计报表\n")) != 0 ||
        strstr(r.out, "\n填报单位：全县  填报日期：") == NULL)
        fail_msg("--all 2024-01..2024-02, Markdown:\n%s", r.out);
    cli_result_free(&r);
    /* The workbooks: a month with 同比 and 环比, a township's (portrait)
     * and the county's 26 columns (landscape), each one page wide. */
    check_workbook(f,
                   (const char *const[]){"report", "--period", "2024-02", "--town", "gaoguan",
                                         "--compare", NULL},
                   "2024-02 --compare");
    check_workbook(f, (const char *const[]){"report", "--period", "2024-Q1", "--all", NULL},
                   "2024-Q1 --all");

    /* A month under way: against as many days of the month before (the
     * daemon's today from the CSV's through). */
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char year[16];
    snprintf(year, sizeof year, "%d", tm.tm_year + 1900);
    csv_line(
        f,
        (const char *const[]){"report", "--period", year, "--town", "gaoguan", "-f", "csv", NULL},
        "disputes.resolved", line, sizeof line, head, sizeof head);
    int y, m, d;
    const char *through = strrchr(line, ',') + 1;
    if (sscanf(through, "%d-%d-%d", &y, &m, &d) != 3)
        fail_msg("no through in '%s'", line);
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int py = m == 1 ? y - 1 : y, pm = m == 1 ? 12 : m - 1;
    bool leap = (py % 4 == 0 && py % 100 != 0) || py % 400 == 0;
    int plen = mdays[pm - 1] + (pm == 2 && leap), clen = mdays[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        clen = 29;
    char first[48], last[48], month[48];
    snprintf(first, sizeof first, "%04d-%02d-01", py, pm);
    snprintf(last, sizeof last, "%04d-%02d-%02d", py, pm, plen);
    snprintf(month, sizeof month, "%04d-%02d", y, m);
    const char *const pushes[][2] = {{first, "disputes.resolved=3"},
                                     {last, "disputes.resolved=40"},
                                     {through, "disputes.resolved=7"}};
    for (size_t i = 0; i < 3; i++) {
        r = run_expect(f, 0,
                       (const char *const[]){"push", "--town", "gaoguan", "--time", pushes[i][0],
                                             pushes[i][1], NULL});
        cli_result_free(&r);
    }
    /* A day: the day before (days are kept 1100 days: recent ones). */
    char want[512];
    snprintf(want, sizeof want, "disputes.resolved,counter,件,化解矛盾纠纷,40,0,+40,,0,+40,,%s,",
             last);
    csv_line(f,
             (const char *const[]){"report", "--period", last, "--town", "gaoguan", "--compare",
                                   "-f", "csv", NULL},
             "disputes.resolved", line, sizeof line, head, sizeof head);
    assert_string_equal(head, want_head);
    assert_string_equal(line, want);
    /* The last day of the month before counts only when today is as far
     * into this month (or this month's last day: whole months). */
    bool whole = d >= plen || d == clen;
    snprintf(want, sizeof want,
             "disputes.resolved,counter,件,化解矛盾纠纷,7,0,+7,,%s,%s,%s,%s,%04d-%02d-%02d",
             whole ? "43" : "3", whole ? "-36" : "+4", whole ? "-83.7%" : "+133.3%", month, y, m,
             d);
    csv_line(f,
             (const char *const[]){"report", "--period", month, "--town", "gaoguan", "--compare",
                                   "-f", "csv", NULL},
             "disputes.resolved", line, sizeof line, head, sizeof head);
    assert_string_equal(head, want_head);
    assert_string_equal(line, want);
}

/* 3. A period without figures is a report of zeros that says so; bad
 * arguments are named, exit 2; an unwritable file exits 1. */
static void test_empty_and_bad(void **state)
{
    fx_t *f = *state;
    cli_result_t r = run_expect(
        f, 0, (const char *const[]){"report", "--period", "2021", "--town", "gaoguan", NULL});
    if (strstr(r.err, "no figures were reported for 2021") == NULL ||
        strstr(r.out, "本期无数据") == NULL || strstr(r.out, "| 化解矛盾纠纷 | 件 | 0 |") == NULL)
        fail_msg("empty period:\nstdout %s\nstderr %s", r.out, r.err);
    cli_result_free(&r);
    static const struct {
        const char *args[12];
        int status;
        const char *says;
    } cases[] = {
        {{"report", "--period", "2023", "--town", "gaoguang", NULL},
         2,
         "--town 'gaoguang' is not a township of the daemon's catalog (did you mean 'gaoguan'?)"},
        /* Its name mistyped, by one character of three. */
        {{"report", "--period", "2023", "--town", "高观乡", NULL},
         2,
         "--town '高观乡' is not a township of the daemon's catalog (did you mean '高观镇'?)"},
        {{"report", "--period", "2023-02-30", NULL}, 2, "--period '2023-02-30' is not a period"},
        {{"report", "--period", "2099", NULL}, 2, "--period '2099' has not begun yet"},
        {{"report", NULL}, 2, "--period is required"},
        {{"report", "--period", "2023", "--format", "pdf", NULL},
         2,
         "--format 'pdf' is not md, csv or xlsx"},
        {{"report", "--period", "2023", "--format", "xlsx", NULL}, 2, "needs -o FILE"},
        {{"report", "--period", "2023", "-o", "/nonexistent/dir/r.csv", NULL},
         1,
         "-o '/nonexistent/dir/r.csv'"},
        {{"report", "--period", "2023", "-o", "/nonexistent/dir/r.xlsx", NULL},
         1,
         "-o '/nonexistent/dir/r.xlsx': its directory '/nonexistent/dir' does not exist\n"},
        {{"report", "--period", "2023", "-o", "/", NULL},
         1,
         "-o '/' is a directory: give a file name in it\n"},
        {{"report", "--period", "2023", "-o", "/etc/passwd/r.xlsx", NULL},
         1,
         "-o '/etc/passwd/r.xlsx': '/etc/passwd' is not a directory\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        r = run_expect(f, cases[i].status, cases[i].args);
        if (strstr(r.err, cases[i].says) == NULL)
            fail_msg("case %zu: expected '%s' in:\n%s", i, cases[i].says, r.err);
        cli_result_free(&r);
    }
}

/* 3b. -o's extension gives the format in any case (REPORT.XLSX is a
 * workbook, it was Markdown); one naming another format than --format
 * is refused, and so is one naming none without --format (.xls, .txt,
 * none: they were Markdown, exit 0), nothing written; with --format an
 * unknown extension gets what was asked. */
static void test_output_extension(void **state)
{
    fx_t *f = *state;
    push_2023(f);
    char path[HARNESS_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/OUT.XLSX", f->h.dir);
    cli_result_t r =
        run_expect(f, 0, (const char *const[]){"report", "--period", "2023", "-o", path, NULL});
    cli_result_free(&r);
    char *text = harness_read_file(path);
    if (text == NULL || strncmp(text, "PK", 2) != 0)
        fail_msg("-o %s: not a workbook (a zip file): %.40s", path, text ? text : "(none)");
    free(text);
    snprintf(path, sizeof path, "%s/Out.Csv", f->h.dir);
    r = run_expect(f, 0, (const char *const[]){"report", "--period", "2023", "-o", path, NULL});
    cli_result_free(&r);
    text = harness_read_file(path);
    if (text == NULL || strncmp(text, "metric,kind,unit,label,", 23) != 0)
        fail_msg("-o %s: not the CSV: %.60s", path, text ? text : "(none)");
    free(text);
    snprintf(path, sizeof path, "%s/out.txt", f->h.dir);
    r = run_expect(
        f, 0,
        (const char *const[]){"report", "--period", "2023", "--format", "csv", "-o", path, NULL});
    cli_result_free(&r);
    text = harness_read_file(path);
    if (text == NULL || strncmp(text, "metric,kind,unit,label,", 23) != 0)
        fail_msg("--format csv -o %s: not the CSV: %.60s", path, text ? text : "(none)");
    free(text);
    /* What is said: lead, the path, rest. */
    static const struct {
        const char *format, *name, *lead, *rest;
    } refused[] = {
        {"csv", "a.xlsx", "--format csv, but -o '",
         "' is named for xlsx: name it .csv, or give --format xlsx"},
        {"xlsx", "a.md", "--format xlsx, but -o '", "' is named for md"},
        {"md", "a.CSV", "--format md, but -o '", "' is named for csv"},
        {NULL, "a.xls", "-o '",
         "': tally writes .xlsx workbooks (which Excel opens), not .xls; -o takes the format "
         "from a .xlsx, .csv or .md extension (in any case), else --format md|csv|xlsx "
         "chooses it"},
        {NULL, "a.txt", "-o '", "': '.txt' is no format's extension; -o takes the format from"},
        {NULL, "report", "-o '", "': no extension; -o takes the format from"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char says[600];
        snprintf(path, sizeof path, "%s/%s", f->h.dir, refused[i].name);
        snprintf(says, sizeof says, "%s%s%s", refused[i].lead, path, refused[i].rest);
        const char *fopt = refused[i].format ? "--format" : NULL; /* none: args end */
        const char *args[] = {"report", "--period",        "2023", "-o", path,
                              fopt,     refused[i].format, NULL};
        r = run_expect(f, 2, args);
        if (strstr(r.err, says) == NULL)
            fail_msg("case %zu: expected '%s' in:\n%s", i, says, r.err);
        cli_result_free(&r);
        text = harness_read_file(path);
        if (text != NULL)
            fail_msg("case %zu: %s written though refused", i, path);
    }
}

/* tallyd's counter name, from `tally stats`. */
static long long stat_of(harness_t *h, const char *name)
{
    cli_result_t r = cli_expect(h, 0, (const char *const[]){"stats", NULL});
    long long v = -1;
    for (const char *p = r.out; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, strlen(name)) == 0 && p[strlen(name)] == ' ')
            v = strtoll(p + strlen(name), NULL, 10);
    cli_result_free(&r);
    assert_true(v >= 0);
    return v;
}

/* A county whose series are more than one PERIOD answer of tallyd holds
 * (max_reply_queue 1024: 512 series; 25 townships of 22 metrics and the
 * county's make 572): --all and `get --period --all` read it township by
 * township.  With the catalog's list of townships open (no [township]
 * sections, as tallyd's built-in catalog), --all takes the townships
 * that have tallies, by id: it showed the county alone before. */
static void large_county(bool open_list)
{
    harness_t h;
    assert_int_equal(harness_init(&h), 0);
    char path[HARNESS_PATH_MAX], csv[HARNESS_PATH_MAX];
    snprintf(csv, sizeof csv, "%s/gaoguan-2023.csv", TALLY_SHARED_DATA);
    snprintf(path, sizeof path, "%s/systemd/tallyd.conf.example", harness_source_dir);
    char *example = harness_read_file(path);
    assert_non_null(example);
    char *conf = example;
    if (open_list) { /* the example's metrics and ratios, no townships */
        char *t = strstr(example, "\n[township ");
        assert_non_null(t);
        t[1] = '\0';
    }
    char *q = strstr(conf, "max_reply_queue = 4096");
    assert_non_null(q);
    memcpy(q, "max_reply_queue = 1024", strlen("max_reply_queue = 1024"));
    assert_int_equal(harness_start(&h, conf, NULL), 0);
    static const char *const towns[] = {"gecheng",   "fuxing",   "bashan",   "pingba",  "miaoba",
                                        "mingtong",  "xiuqi",    "gaoguan",  "gaoyan",  "dongan",
                                        "xianyi",    "gaonan",   "longtian", "beiping", "zuolan",
                                        "yanhe",     "shuanghe", "liaozi",   "jiming",  "zhouxi",
                                        "mingzhong", "zhiping",  "lantian",  "houping", "heyu"};
    size_t ntowns = sizeof towns / sizeof towns[0];
    for (size_t i = 0; i < ntowns; i++) {
        cli_result_t r = cli_expect(&h, 0,
                                    (const char *const[]){"push", "--town", towns[i], "--time",
                                                          "2023-12-31", "--file", csv, NULL});
        cli_result_free(&r);
    }
    cli_result_t r = cli_expect(
        &h, 0, (const char *const[]){"report", "--period", "2023", "--all", "-f", "csv", NULL});
    strip_cr(r.out);
    const char *head = open_list ? "metric,kind,unit,label,bashan,beiping,dongan,"
                                 : "metric,kind,unit,label,葛城街道,复兴街道,巴山镇,";
    if (strncmp(r.out, head, strlen(head)) != 0 ||
        strstr(r.out, open_list ? ",zuolan,全县,period,through\n"
                                : ",河鱼乡,全县,period,through\n") == NULL)
        fail_msg("--all of 25 townships:\n%.600s\n%s", r.out, r.err);
    char line[1024], want[1024] = "disputes.resolved,counter,件,化解矛盾纠纷";
    for (size_t i = 0; i < ntowns; i++)
        strcat(want, ",216");
    strcat(want, ",5400,2023,");
    assert_true(line_with(r.out, "disputes.resolved,", line, sizeof line));
    assert_string_equal(line, want);
    cli_result_free(&r);

    /* get --period --all: every township's series and the county's, the
     * 26 parts on one connection (the refused whole, the township list,
     * the parts and the STATS: 4 or 5 in all). */
    long long conns = stat_of(&h, "tallyd_connections_accepted_total");
    r = cli_expect(&h, 0,
                   (const char *const[]){"get", "--period", "2023", "--all", "--no-labels", NULL});
    size_t lines = 0, resolved = 0;
    for (const char *p = r.out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    for (const char *p = r.out; (p = strstr(p, "\ndisputes.resolved ")) != NULL; p++)
        resolved++;
    if (lines != 1 + 26 * 25 || resolved != 26 || strstr(r.out, " 5400\n") == NULL)
        fail_msg("get --period 2023 --all: %zu lines, %zu of disputes.resolved:\n%.500s\n%s", lines,
                 resolved, r.out, r.err);
    cli_result_free(&r);
    conns = stat_of(&h, "tallyd_connections_accepted_total") - conns;
    if (conns < 3 || conns > 6)
        fail_msg("get --period --all took %lld connections", conns);
    /* --compare asks 2022 as well (the year before and the period
     * before are one): the townships are found once for both, from
     * tallyd's township list (one page, no snapshot of every township
     * series), and every counter's row of 2023 finds its row of 2022 (0
     * there), whatever the order the parts came in. */
    long long snaps = stat_of(&h, "tallyd_snapshots_total");
    long long pages = stat_of(&h, "tallyd_township_pages_total");
    r = cli_expect(&h, 0,
                   (const char *const[]){"get", "--period", "2023", "--all", "--compare",
                                         "--no-labels", "--json", NULL});
    size_t rows = harness_count_in(r.out, "{\"metric\":"),
           counters = harness_count_in(r.out, "\"kind\":\"counter\""),
           found = harness_count_in(r.out, ",\"2022\":0},\"changes\":");
    if (rows != 26 * 25 || counters < 26 * 20 || found != counters ||
        strstr(r.out, "{\"metric\":\"disputes.resolved\",\"scope\":\"zuolan\",\"kind\":"
                      "\"counter\",\"values\":{\"2023\":216,\"2022\":0},\"changes\":{\"2022\":"
                      "{\"abs\":216,\"pct\":null}}}") == NULL)
        fail_msg("get --compare --json: %zu rows, %zu counters, %zu with 2022's 0:\n%.2000s", rows,
                 counters, found, r.out);
    cli_result_free(&r);
    snaps = stat_of(&h, "tallyd_snapshots_total") - snaps;
    pages = stat_of(&h, "tallyd_township_pages_total") - pages;
    if (snaps != 0 || pages != 1)
        fail_msg("get --period --all --compare took %lld snapshots, %lld township pages", snaps,
                 pages);
    /* Each of the four reads was refused whole first (TOO_LARGE), then
     * read in parts. */
    r = cli_expect(&h, 0, (const char *const[]){"stats", NULL});
    const char *at = strstr(r.out, "\ntallyd_rejected_too_large_total ");
    if (at == NULL || strtoll(at + strlen("\ntallyd_rejected_too_large_total "), NULL, 10) != 4)
        fail_msg("stats:\n%s", r.out);
    cli_result_free(&r);
    /* A refusal clients take on every such read is no news for the
     * operators' `journalctl -p notice`: tallyd logs it at info. */
    const char *log = harness_log(&h);
    size_t said = harness_count_in(log, "more series match prefix");
    if (said == 0 || harness_count_in(log, " info: answer too large: more series match") != said)
        fail_msg("tallyd's log:\n%s", log);
    assert_int_equal(harness_finish(&h), 0);
    harness_cleanup(&h);
    free(example);
}

static void test_large_county(void **state)
{
    (void)state;
    large_county(false);
}

static void test_large_county_open(void **state)
{
    (void)state;
    large_county(true);
}

/* 5. A township dropped from a closed catalog, tallyd restarted: a push
 * for it is refused, and --all still shows its column (by id, marked), so
 * that the townships' figures add up to the county's. */
static void test_removed_township(void **state)
{
    (void)state;
    static const char conf[] = "[township t1]\nname = 甲镇\n[township t2]\nname = 乙镇\n"
                               "[metric patrols]\nkind = counter\n";
    static const char removed[] = "[township t1]\nname = 甲镇\n[metric patrols]\nkind = counter\n";
    harness_t h;
    assert_int_equal(harness_init(&h), 0);
    assert_int_equal(harness_start(&h, conf, NULL), 0);
    cli_result_t r = cli_expect(
        &h, 0,
        (const char *const[]){"push", "--town", "t2", "--time", "2024-06-01", "patrols=5", NULL});
    cli_result_free(&r);
    r = cli_expect(
        &h, 0,
        (const char *const[]){"push", "--town", "t1", "--time", "2024-06-01", "patrols=1", NULL});
    cli_result_free(&r);
    assert_int_equal(harness_write_file(&h, "tallyd.conf", removed, NULL, 0), 0);
    int st = -1;
    assert_int_equal(harness_restart(&h, &st), 0);
    r = cli_expect(&h, 1,
                   (const char *const[]){"push", "--town", "t2", "--time", "2024-06-01", "--again",
                                         "patrols=5", NULL});
    if (strstr(r.err, "township 't2' is not in the catalog") == NULL)
        fail_msg("push for a township no longer declared:\n%s%s", r.out, r.err);
    cli_result_free(&r);
    r = cli_expect(&h, 0,
                   (const char *const[]){"report", "--period", "2024", "--all", "-f", "csv", NULL});
    strip_cr(r.out);
    char line[1024];
    if (strncmp(r.out, "metric,kind,unit,label,甲镇,t2 (no longer declared),全县,period,through\n",
                strlen("metric,kind,unit,label,甲镇,t2 (no longer declared),全县,period,"
                       "through\n")) != 0 ||
        !line_with(r.out, "patrols,", line, sizeof line) ||
        strcmp(line, "patrols,counter,,patrols,1,5,6,2024,") != 0)
        fail_msg("--all with a township no longer declared:\n%s%s", r.out, r.err);
    cli_result_free(&r);
    /* Its own figures, by id. */
    r = cli_expect(
        &h, 0,
        (const char *const[]){"report", "--period", "2024", "--town", "t2", "-f", "csv", NULL});
    strip_cr(r.out);
    if (!line_with(r.out, "patrols,", line, sizeof line) ||
        strcmp(line, "patrols,counter,,patrols,5,2024,") != 0)
        fail_msg("--town t2:\n%s%s", r.out, r.err);
    cli_result_free(&r);
    assert_int_equal(harness_finish(&h), 0);
    harness_cleanup(&h);
}

/* 8. A figure of more digits than a spreadsheet's number holds (15) is
 * written to the workbook as its exact text, not rounded to other digits
 * (92233720368547758.07 as …758.00); a smaller one stays a number. */
static void test_big_figures(void **state)
{
    (void)state;
    static const char conf[] =
        "[township t1]\nname = 甲镇\n"
        "[metric big]\nkind = counter\nunit = 元\nscale = 2\n"
        "max = 9223372036854775807\nlabel = 专项资金结余\n"
        "[metric small]\nkind = counter\nscale = 1\nlabel = 耕地面积\nunit = 公顷\n";
    fx_t f = {0};
    assert_int_equal(harness_init(&f.h), 0);
    assert_int_equal(harness_start(&f.h, conf, NULL), 0);
    cli_result_t r =
        cli_expect(&f.h, 0,
                   (const char *const[]){"push", "--town", "t1", "--time", "2024-06-01",
                                         "big=92233720368547758.07", "small=12.5", NULL});
    cli_result_free(&r);
    char xlsx[HARNESS_PATH_MAX + 16], csvp[HARNESS_PATH_MAX + 16];
    snprintf(xlsx, sizeof xlsx, "%s/big.xlsx", f.h.dir);
    snprintf(csvp, sizeof csvp, "%s/big.csv", f.h.dir);
    const char *const forms[2] = {xlsx, csvp};
    for (int i = 0; i < 2; i++) {
        r = cli_expect(&f.h, 0,
                       (const char *const[]){"report", "--period", "2024", "--town", "t1", "-o",
                                             forms[i], NULL});
        cli_result_free(&r);
    }
    char *csv = harness_read_file(csvp);
    assert_non_null(csv);
    if (strstr(csv, "\nbig,counter,元,专项资金结余,92233720368547758.07,") == NULL)
        fail_msg("the CSV's big figure: %s", csv);
    free(csv);
    xlsx_check(&f, xlsx, csvp, "a figure of 17 digits");
    assert_int_equal(harness_finish(&f.h), 0);
    harness_cleanup(&f.h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gaoguan_2023, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_compare_md, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compare_previous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_extension, setup, teardown),
        cmocka_unit_test(test_large_county),
        cmocka_unit_test(test_large_county_open),
        cmocka_unit_test(test_removed_township),
        cmocka_unit_test(test_big_figures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
