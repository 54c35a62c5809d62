/* Unit tests of the CSV reader behind `tally push --file`. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli_util.h"
#include "csv.h"

#ifndef TALLY_SHARED_DATA
#error "TALLY_SHARED_DATA must name the shared data directory"
#endif

static int parse(const char *text, csv_samples_t *out, char *err, size_t errlen)
{
    return csv_parse_samples(text, strlen(text), "t.csv", out, err, errlen);
}

/* The Gaoguan 2023 report: 22 figures, read exactly. */
static void test_gaoguan_file(void **state)
{
    (void)state;
    char err[512] = "";
    char *buf;
    size_t len;
    assert_int_equal(
        cli_read_input(TALLY_SHARED_DATA "/gaoguan-2023.csv", &buf, &len, err, sizeof err), 0);
    csv_samples_t s = {0};
    int rc = csv_parse_samples(buf, len, "gaoguan-2023.csv", &s, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    assert_int_equal(s.n, 22);
    static const struct {
        const char *metric;
        int64_t value;
    } want[] = {
        {"law_exam.takers", 94},
        {"law_exam.passed", 94},
        {"law_households.trained", 22},
        {"handbooks.law", 1600},
        {"handbooks.other", 2800},
        {"grid.zones", 23},
        {"grid.notice_boards", 33},
        {"disputes.screened", 219},
        {"disputes.resolved", 216},
        {"talks.people_received", 25},
        {"talks.disputes_handled", 25},
        {"talks.disputes_resolved", 25},
        {"petitions.leader_visits", 362},
        {"incidents.major_petition", 0},
        {"safety.meetings", 4},
        {"key_groups.assessments", 5},
        {"meetings.special", 16},
        {"patrols", 45},
        {"drills.emergency", 5},
        {"banners", 19},
        {"slogans", 25},
        {"safety.handouts", 1200},
    };
    for (size_t i = 0; i < 22; i++) {
        assert_string_equal(s.v[i].metric, want[i].metric);
        assert_int_equal(s.v[i].value, want[i].value);
        assert_int_equal(s.v[i].line, i + 2);
    }
    csv_samples_free(&s);
    free(buf);
}

static void test_columns_by_name(void **state)
{
    (void)state;
    char err[512];
    csv_samples_t s = {0};
    /* value before metric, extra columns, spaces, CRLF, BOM, blank lines,
     * quoted fields with commas, quotes and a newline. */
    const char *text = "\xEF\xBB\xBF"
                       "note, Value ,METRIC\r\n"
                       "\"a, \"\"quoted\"\"\nnote\",  12 ,a.b\r\n"
                       "\r\n"
                       "x,-7,\"c.d\"\n"
                       "y,+3,e\n";
    assert_int_equal(parse(text, &s, err, sizeof err), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.v[0].metric, "a.b");
    assert_int_equal(s.v[0].value, 12);
    assert_int_equal(s.v[0].line, 2);
    assert_string_equal(s.v[1].metric, "c.d");
    assert_int_equal(s.v[1].value, -7);
    assert_int_equal(s.v[1].line, 5); /* the quoted newline counts as a line */
    assert_int_equal(s.v[2].value, 3);
    csv_samples_free(&s);
}

static void test_missing_value_column(void **state)
{
    (void)state;
    char err[512];
    csv_samples_t s = {0};
    assert_int_equal(parse("metric,kind,unit\na,counter,x\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "t.csv:1"));
    assert_non_null(strstr(err, "no 'value' column"));
    assert_non_null(strstr(err, "metric, kind, unit"));
    assert_int_equal(s.n, 0);
    assert_int_equal(parse("value\n1\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "no 'metric' column"));
    assert_int_equal(parse("", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "empty"));
}

static void test_non_number(void **state)
{
    (void)state;
    char err[512];
    csv_samples_t s = {0};
    assert_int_equal(parse("metric,kind,value\na,c,1\nb,c,12.5x\n", &s, err, sizeof err),
                     TALLY_EINVAL);
    assert_string_equal(err, "t.csv:3: column 3 (value): '12.5x' is not a number");
    csv_samples_free(&s);
    /* An empty cell is no figure: left out and counted, not an error. */
    assert_int_equal(parse("metric,value\na,\nb,2\nc, \n", &s, err, sizeof err), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].metric, "b");
    assert_int_equal(s.blanks, 2);
    csv_samples_free(&s);
    assert_int_equal(s.blanks, 0);
    assert_int_equal(parse("metric,value\na,1e3\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "'1e3' is not a number"));
    csv_samples_free(&s);
    /* A value that is not UTF-8 (a GBK 一 and a stray byte) is shown
     * escaped, never as raw bytes on the terminal. */
    assert_int_equal(parse("metric,value\na,\xD2\xBB\xFF\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_string_equal(err, "t.csv:2: column 2 (value): '\\xD2\\xBB\\xFF' is not a number");
    csv_samples_free(&s);
    assert_int_equal(parse("metric,value\na,十二\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_string_equal(err, "t.csv:2: column 2 (value): '十二' is not a number");
    csv_samples_free(&s);
    assert_int_equal(parse("metric,value\na,98.6%\n", &s, err, sizeof err), TALLY_EINVAL);
    csv_samples_free(&s);
    assert_int_equal(parse("metric,value\na\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "t.csv:2: only 1 column"));
    csv_samples_free(&s);
}

static void test_overflow(void **state)
{
    (void)state;
    char err[512];
    csv_samples_t s = {0};
    assert_int_equal(parse("metric,value\nmax,9223372036854775807\nmin,-9223372036854775808\n", &s,
                           err, sizeof err),
                     0);
    assert_int_equal(s.v[0].value, INT64_MAX);
    assert_int_equal(s.v[1].value, INT64_MIN);
    csv_samples_free(&s);
    assert_int_equal(parse("metric,value\nok,1\nbig,9223372036854775808\n", &s, err, sizeof err),
                     TALLY_EINVAL);
    assert_non_null(
        strstr(err, "t.csv:3: column 2 (value): '9223372036854775808' is out of range"));
    csv_samples_free(&s);
    assert_int_equal(parse("metric,value\nsmall,-9223372036854775809\n", &s, err, sizeof err),
                     TALLY_EINVAL);
    assert_non_null(strstr(err, "out of range"));
    csv_samples_free(&s);
}

static void test_bad_metric_and_quotes(void **state)
{
    (void)state;
    char err[512];
    csv_samples_t s = {0};
    assert_int_equal(parse("metric,value\n\"a b\",1\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "t.csv:2: column 1 (metric): 'a b' is not a valid metric name"));
    assert_int_equal(parse("metric,value\n\"open,1\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "never closed"));
    assert_int_equal(parse("metric,value\n\"a\"x,1\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "after the closing quote"));
    csv_samples_free(&s);
}

/* A row with more fields than the header is an error naming the extra
 * field: an unquoted 1,000 must never count 1. */
static void test_extra_fields(void **state)
{
    (void)state;
    char err[512];
    csv_samples_t s = {0};
    assert_int_equal(parse("metric,value\ndisputes.screened,1,000\n", &s, err, sizeof err),
                     TALLY_EINVAL);
    assert_string_equal(err, "t.csv:2: column 3: extra field '000': the header has only 2 columns "
                             "(if 1,000 is one number, write it without thousands separators: "
                             "1000)");
    csv_samples_free(&s);
    assert_int_equal(parse("metric,value\na,1\nb,1,234,567\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_string_equal(err, "t.csv:3: column 3: extra field '234': the header has only 2 columns "
                             "(if 1,234,567 is one number, write it without thousands separators: "
                             "1234567)");
    csv_samples_free(&s);
    assert_int_equal(parse("value,metric\n1,a,note\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_string_equal(err,
                        "t.csv:2: column 3: extra field 'note': the header has only 2 columns");
    csv_samples_free(&s);
    assert_int_equal(parse("metric\n", &s, err, sizeof err), TALLY_EINVAL);
    /* Empty fields after the last column carry nothing: a trailing comma
     * is harmless. */
    assert_int_equal(parse("metric,value\na,1,\nb,2, ,\n", &s, err, sizeof err), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.v[0].value, 1);
    assert_int_equal(s.v[1].value, 2);
    csv_samples_free(&s);
}

/* A quoted value with thousands separators is one field, and not an
 * integer: rejected, never truncated or read as 1000. */
static void test_quoted_thousands(void **state)
{
    (void)state;
    char err[512];
    csv_samples_t s = {0};
    assert_int_equal(parse("metric,value\ndisputes.screened,\"1,000\"\n", &s, err, sizeof err),
                     TALLY_EINVAL);
    assert_string_equal(err, "t.csv:2: column 2 (value): '1,000' is not a number (write it "
                             "without thousands separators)");
    assert_int_equal(s.n, 0);
    assert_int_equal(parse("metric,value\na,\"1,5\"\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_string_equal(err, "t.csv:2: column 2 (value): '1,5' is not a number");
    csv_samples_free(&s);
}

/* Files saved by a spreadsheet the wrong way get a message saying how to
 * save them, not a list of garbled columns. */
static void test_spreadsheet_exports(void **state)
{
    (void)state;
    char err[512];
    csv_samples_t s = {0};
    assert_int_equal(parse("metric;value\na;1\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_string_equal(err, "t.csv:1: the header has no 'metric' column (columns: metric;value); "
                             "the fields seem to be separated by ';': tally reads "
                             "comma-separated values, save the file as CSV with commas");
    assert_int_equal(parse("metric\tvalue\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "separated by tabs"));
    assert_int_equal(csv_parse_samples("\xFF\xFEm\0e\0", 6, "t.csv", &s, err, sizeof err),
                     TALLY_EINVAL);
    assert_string_equal(err, "t.csv: the file is UTF-16 text (\"Unicode text\"), not CSV: save "
                             "it as CSV UTF-8 (comma delimited)");
    /* A workbook instead of its CSV. */
    assert_int_equal(csv_parse_samples("PK\x03\x04\x14\0\x06\0", 8, "r.xlsx", &s, err, sizeof err),
                     TALLY_EINVAL);
    assert_string_equal(err, "r.xlsx: the file is a spreadsheet workbook (Excel .xlsx or WPS), not "
                             "CSV: open it and save the sheet as CSV UTF-8 (comma delimited)");
    assert_int_equal(
        csv_parse_samples("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\0", 9, "r.xls", &s, err, sizeof err),
        TALLY_EINVAL);
    assert_non_null(strstr(err, "(Excel 97-2003 .xls)"));
    /* GBK, as Excel and WPS save CSV on Chinese Windows: said, and shown
     * as GBK. */
    assert_int_equal(parse("\xB8\xDF,value\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_string_equal(err, "t.csv:1: the header has no 'metric' column (columns: \\xB8\\xDF, "
                             "value); read as GBK it says '高': the file is in GBK, as Excel and "
                             "WPS save CSV on Chinese Windows unless told otherwise. Save it as "
                             "CSV UTF-8, or convert it: iconv -f gb18030 -t utf-8");
    assert_int_equal(s.n, 0);
    /* 排查矛盾纠纷 in GBK as a metric: every byte beyond ASCII escaped
     * (C5C5 and B2E9 are not UTF-8, but some GBK pairs are). */
    assert_int_equal(parse("metric,value\n\xC5\xC5\xB2\xE9\xC3\xAC\xB6\xDC\xBE\xC0\xB7\xD7,3\n", &s,
                           err, sizeof err),
                     TALLY_EINVAL);
    assert_string_equal(err, "t.csv:2: column 1 (metric): "
                             "'\\xC5\\xC5\\xB2\\xE9\\xC3\\xAC\\xB6\\xDC\\xBE\\xC0\\xB7\\xD7' is "
                             "not UTF-8 text; read as GBK it says '排查矛盾纠纷': the file is in "
                             "GBK, as Excel and WPS save CSV on Chinese Windows unless told "
                             "otherwise. Save it as CSV UTF-8, or convert it: iconv -f gb18030 -t "
                             "utf-8");
    /* Bytes that are no text in GBK either. */
    assert_int_equal(parse("metric,value\nab\xFF,1\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_string_equal(err, "t.csv:2: column 1 (metric): 'ab\\xFF' is not UTF-8 text; save the "
                             "file as CSV UTF-8");
    /* GBK in a column tally ignores is no obstacle. */
    assert_int_equal(
        parse("metric,label,value\nlaw_exam.takers,\xB8\xDF,94\n", &s, err, sizeof err), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.v[0].value, 94);
    csv_samples_free(&s);
}

/* `tally report --format csv` writes ratios beside the figures: a row of
 * kind "ratio" is left out and counted, whatever its value. */
static void test_report_ratios(void **state)
{
    (void)state;
    char err[512];
    csv_samples_t s = {0};
    assert_int_equal(parse("metric,kind,unit,label,value\n"
                           "disputes.resolved,counter,件,化解矛盾纠纷,216\n"
                           "disputes.resolution_rate, Ratio ,%,矛盾纠纷化解率,98.6%\n"
                           "grid.zones,gauge,个,综治网格,23\n",
                           &s, err, sizeof err),
                     0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ratios, 1);
    assert_string_equal(s.v[1].metric, "grid.zones");
    csv_samples_free(&s);
    /* Without a kind column, 98.6% is a value like any other. */
    assert_int_equal(parse("metric,value\ndisputes.resolution_rate,98.6%\n", &s, err, sizeof err),
                     TALLY_EINVAL);
    assert_non_null(strstr(err, "'98.6%' is not a number"));
}

/* Rows whose every cell is empty or spaces, as Excel writes for formatted
 * but empty rows at a sheet's end, are skipped like blank lines: before
 * the header too.  An empty metric with a value is still an error. */
static void test_empty_rows(void **state)
{
    (void)state;
    char err[512];
    csv_samples_t s = {0};
    assert_int_equal(parse("metric,value,note\nbanners,3,\n,,\n", &s, err, sizeof err), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.v[0].value, 3);
    assert_int_equal(s.blanks, 0);
    csv_samples_free(&s);
    assert_int_equal(
        parse("metric,value\nbanners,3\n\t\n , \n\"\",\" \"\r\nslogans,4\n", &s, err, sizeof err),
        0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.v[1].value, 4);
    assert_int_equal(s.v[1].line, 6);
    csv_samples_free(&s);
    assert_int_equal(parse(",,\n \nmetric,value\nbanners,3\n", &s, err, sizeof err), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.v[0].line, 4);
    csv_samples_free(&s);
    /* A metric without a value is left out and counted, as before. */
    assert_int_equal(parse("metric,value,note\nbanners,,\n", &s, err, sizeof err), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(s.blanks, 1);
    csv_samples_free(&s);
    /* A value without a metric is no empty row. */
    assert_int_equal(parse("metric,value\n,3\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "t.csv:2: column 1 (metric): '' is not a valid metric name"));
    csv_samples_free(&s);
    assert_int_equal(parse("metric,value,note\n,,x\n", &s, err, sizeof err), TALLY_EINVAL);
    csv_samples_free(&s);
    assert_int_equal(parse(",,\n\t\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "empty"));
}

/* A file typed with a Chinese input method in full-width mode: its commas
 * and digits look right and are not, and the message says so. */
static void test_fullwidth(void **state)
{
    (void)state;
    char err[512];
    csv_samples_t s = {0};
    assert_int_equal(parse("指标，数值\nbanners，3\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_string_equal(err, "t.csv:1: the header has no 'metric' column (columns: 指标，数值); "
                             "the fields seem to be separated by the full-width comma '，' "
                             "(U+FF0C) of a Chinese input method: CSV needs the ASCII comma ',', "
                             "replace each '，' with ','");
    assert_int_equal(parse("metric，value,note\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "full-width comma '，' (U+FF0C)"));
    /* In a row under a good header. */
    assert_int_equal(parse("metric,value\nbanners，3\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_string_equal(err, "t.csv:2: only 1 column; the value column is column 2; the fields "
                             "seem to be separated by the full-width comma '，' (U+FF0C) of a "
                             "Chinese input method: CSV needs the ASCII comma ',', replace each "
                             "'，' with ','");
    /* Full-width digits are refused, never read as the number. */
    assert_int_equal(parse("metric,value\nhandbooks.law,１６００\n", &s, err, sizeof err),
                     TALLY_EINVAL);
    assert_string_equal(err, "t.csv:2: column 2 (value): '１６００' is not a number (it is "
                             "written with full-width digits, １ for 1: type it with ASCII "
                             "digits, as 1600)");
    assert_int_equal(s.n, 0);
    assert_int_equal(parse("metric,value\na,－１２．５\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(
        strstr(err, "full-width digits, １ for 1: type it with ASCII digits, as -12.5)"));
    /* Not a number in ASCII either: no number offered. */
    assert_int_equal(parse("metric,value\na,１６００个\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_string_equal(err, "t.csv:2: column 2 (value): '１６００个' is not a number (it is "
                             "written with full-width digits, １ for 1: type it with ASCII "
                             "digits)");
    csv_samples_free(&s);
    /* METRIC=VALUE pairs are read with the same parser and advice. */
    int64_t v;
    unsigned places;
    char advice[256];
    assert_int_equal(csv_parse_decimal("１", strlen("１"), &v, &places), TALLY_EINVAL);
    assert_string_equal(csv_number_advice("１", strlen("１"), advice, sizeof advice),
                        " (it is written with full-width digits, １ for 1: type it with ASCII "
                        "digits, as 1)");
    assert_string_equal(csv_number_advice("1,000", 5, advice, sizeof advice),
                        " (write it without thousands separators)");
    assert_string_equal(csv_number_advice("12x", 3, advice, sizeof advice), "");
    /* A truncated UTF-8 sequence at the end, and a NUL inside. */
    assert_string_equal(csv_number_advice("1\xEF\xBC", 3, advice, sizeof advice), "");
    assert_string_equal(csv_number_advice("\xEF\xBC\x91\0x", 5, advice, sizeof advice),
                        " (it is written with full-width digits, １ for 1: type it with ASCII "
                        "digits)");
}

/* A title above the header, as a sheet made to be printed has. */
static void test_title_row(void **state)
{
    (void)state;
    char err[512];
    csv_samples_t s = {0};
    assert_int_equal(parse("高观镇2023年数据,,\n指标,数值,备注\nbanners,3,\n", &s, err, sizeof err),
                     TALLY_EINVAL);
    assert_string_equal(err, "t.csv:1: the header has no 'metric' column (columns: "
                             "高观镇2023年数据, , ); the first non-blank row is taken as the "
                             "header, and line 2 would make one: delete the rows above it");
    assert_int_equal(s.n, 0);
    /* Blank lines, a subtitle and a quoted newline before it. */
    assert_int_equal(
        parse("\n\"高观镇\n2023年\",,\n,,\n单位：个,,\n\nmetric,value\na,1\n", &s, err, sizeof err),
        TALLY_EINVAL);
    assert_non_null(strstr(err, "t.csv:2: the header has no 'metric' column"));
    assert_non_null(strstr(err, "line 7 would make one: delete the rows above it"));
    /* None soon after: said all the same for a row of one cell. */
    assert_int_equal(parse("高观镇2023年数据\na\nb\nc\nd\ne\nmetric,value\n", &s, err, sizeof err),
                     TALLY_EINVAL);
    assert_string_equal(err, "t.csv:1: the header has no 'metric' column (columns: "
                             "高观镇2023年数据); the first non-blank row is taken as the header; "
                             "a column headed 指标, 指标名称 or 项目 will do too");
    /* A header that only lacks a column says nothing of titles. */
    assert_int_equal(parse("metric,kind\na,b\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_null(strstr(err, "taken as the header"));
    /* An unclosed quote further down does not get in the way. */
    assert_int_equal(parse("title\n\"open\n", &s, err, sizeof err), TALLY_EINVAL);
    assert_non_null(strstr(err, "no 'metric' column"));
}

static void test_parse_int64(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(csv_parse_int64("0", 1, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(csv_parse_int64("-0", 2, &v), 0);
    assert_int_equal(csv_parse_int64("+", 1, &v), TALLY_EINVAL);
    assert_int_equal(csv_parse_int64("", 0, &v), TALLY_EINVAL);
    assert_int_equal(csv_parse_int64("1 2", 3, &v), TALLY_EINVAL);
    assert_int_equal(csv_parse_int64("99999999999999999999x", 21, &v), TALLY_EINVAL);
    assert_int_equal(csv_parse_int64("99999999999999999999", 20, &v), TALLY_ERANGE);
    assert_int_equal(csv_parse_int64("00012", 5, &v), 0);
    assert_int_equal(v, 12);
}

/* A decimal number keeps its digits and places exactly, as written: the
 * metric's scale is applied later (push). */
static void test_parse_decimal(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        int64_t digits;
        unsigned places;
        const char *back;
    } cases[] = {
        {"12.5", 0, 125, 1, "12.5"},
        {"12.50", 0, 125, 1, "12.5"},
        {"-0.05", 0, -5, 2, "-0.05"},
        {"+3.000", 0, 3, 0, "3"},
        {"7", 0, 7, 0, "7"},
        {"0.000000000000000000001", 0, 1, 21, "0.000000000000000000001"},
        {"922337203685477580.7", 0, INT64_MAX, 1, "922337203685477580.7"},
        {"-922337203685477580.8", 0, INT64_MIN, 1, "-922337203685477580.8"},
        {"922337203685477580.8", TALLY_ERANGE, 0, 0, NULL},
        {"1"
         "00000000000000000000000000000000000000000000000000000000000000000.5",
         TALLY_ERANGE, 0, 0, NULL},
        {".5", TALLY_EINVAL, 0, 0, NULL},
        {"5.", TALLY_EINVAL, 0, 0, NULL},
        {"-.5", TALLY_EINVAL, 0, 0, NULL},
        {"1.2.3", TALLY_EINVAL, 0, 0, NULL},
        {"1.5e3", TALLY_EINVAL, 0, 0, NULL},
        {"1,5", TALLY_EINVAL, 0, 0, NULL},
        {".", TALLY_EINVAL, 0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t d = 0;
        unsigned p = 99;
        int rc = csv_parse_decimal(cases[i].text, strlen(cases[i].text), &d, &p);
        if (rc != cases[i].rc)
            fail_msg("'%s': %d, wanted %d", cases[i].text, rc, cases[i].rc);
        if (rc != 0)
            continue;
        char back[64];
        if (d != cases[i].digits || p != cases[i].places ||
            strcmp(csv_decimal_text(d, p, back, sizeof back), cases[i].back) != 0)
            fail_msg("'%s': %" PRId64 " with %u places, '%s'", cases[i].text, d, p, back);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gaoguan_file),
        cmocka_unit_test(test_columns_by_name),
        cmocka_unit_test(test_missing_value_column),
        cmocka_unit_test(test_non_number),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_bad_metric_and_quotes),
        cmocka_unit_test(test_extra_fields),
        cmocka_unit_test(test_quoted_thousands),
        cmocka_unit_test(test_spreadsheet_exports),
        cmocka_unit_test(test_report_ratios),
        cmocka_unit_test(test_empty_rows),
        cmocka_unit_test(test_fullwidth),
        cmocka_unit_test(test_title_row),
        cmocka_unit_test(test_parse_int64),
        cmocka_unit_test(test_parse_decimal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
