/* Unit tests of the text the tally command prints: display widths,
 * aligned tables, JSON escaping and numbers, tally rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli_render.h"
#include "json.h"
#include "table.h"

/* Capture what f writes through a memory stream. */
typedef struct capture {
    FILE *f;
    char *buf;
    size_t len;
} capture_t;

static void cap_open(capture_t *c)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    assert_non_null(c->f);
}

static char *cap_close(capture_t *c)
{
    fclose(c->f);
    return c->buf;
}

static void test_width(void **state)
{
    (void)state;
    assert_int_equal(table_width("高观镇"), 6);
    assert_int_equal(table_width("gaoguan"), 7);
    assert_int_equal(table_width("高观 town"), 9);
    assert_int_equal(table_width(""), 0);
    assert_int_equal(table_width("e\xCC\x81"), 1);    /* e + combining acute */
    assert_int_equal(table_width("\xEF\xBC\xA1"), 2); /* U+FF21 fullwidth A */
    assert_int_equal(table_width("98.6%"), 5);
    assert_int_equal(table_width("《民法典》"), 10);      /* CJK brackets are wide too */
    assert_int_equal(table_width("\xF0\x9F\x98\x80"), 2); /* emoji U+1F600 */
    assert_int_equal(table_width("\xFF"), 1);             /* invalid byte: one column */
    assert_int_equal(table_wcwidth(0x4E00), 2);
    assert_int_equal(table_wcwidth(0x0301), 0);
    assert_int_equal(table_wcwidth('\t'), 0);
    assert_int_equal(table_wcwidth(0x00E9), 1);
}

/* Every line of a column starts at the same display column. */
static void test_table_alignment(void **state)
{
    (void)state;
    table_t *t = table_new(3);
    assert_non_null(t);
    table_align_right(t, 2);
    const char *r0[] = {"TOWN", "NAME", "VALUE"};
    const char *r1[] = {"gaoguan", "高观镇", "216"};
    const char *r2[] = {"x", "巴山镇中心", "7"};
    assert_int_equal(table_add(t, r0), 0);
    assert_int_equal(table_add(t, r1), 0);
    assert_int_equal(table_add(t, r2), 0);
    capture_t c;
    cap_open(&c);
    table_print(t, c.f);
    char *out = cap_close(&c);
    const char *want = "TOWN     NAME        VALUE\n"
                       "gaoguan  高观镇        216\n"
                       "x        巴山镇中心      7\n";
    assert_string_equal(out, want);
    /* The same in display columns: every line is equally wide. */
    char *save, *line = strtok_r(out, "\n", &save);
    size_t w = table_width(line);
    while ((line = strtok_r(NULL, "\n", &save)) != NULL)
        assert_int_equal(table_width(line), w);
    free(out);
    table_free(&t);
    assert_null(t);
}

/* Measured and printed row by row, without keeping the cells: the same
 * text as table_print, trailing empty cells and NULL cells included. */
static void test_table_two_passes(void **state)
{
    (void)state;
    const char *rows[][4] = {{"TOWN", "NAME", "VALUE", "NOTE"},
                             {"gaoguan", "高观镇", "216", NULL},
                             {"x", "巴山镇中心", "7", "late"},
                             {"y", NULL, "", ""}};
    char *outs[2];
    for (int pass = 0; pass < 2; pass++) {
        table_t *t = table_new(4);
        assert_non_null(t);
        table_align_right(t, 2);
        capture_t c;
        cap_open(&c);
        if (pass == 0) {
            for (size_t r = 0; r < 4; r++)
                assert_int_equal(table_add(t, rows[r]), 0);
            table_print(t, c.f);
        } else {
            for (size_t r = 0; r < 4; r++)
                table_measure(t, rows[r]);
            assert_int_equal(table_rows(t), 0); /* nothing kept */
            for (size_t r = 0; r < 4; r++)
                table_print_row(t, rows[r], c.f);
        }
        outs[pass] = cap_close(&c);
        table_free(&t);
    }
    assert_string_equal(outs[1], "TOWN     NAME        VALUE  NOTE\n"
                                 "gaoguan  高观镇        216\n"
                                 "x        巴山镇中心      7  late\n"
                                 "y                         \n");
    assert_string_equal(outs[0], outs[1]);
    free(outs[0]);
    free(outs[1]);
}

static void test_json_escaping(void **state)
{
    (void)state;
    capture_t c;
    cap_open(&c);
    json_string(c.f, "高观镇");
    fputc(' ', c.f);
    json_string(c.f, "a\"b\\c/d");
    fputc(' ', c.f);
    json_string(c.f, "\n\t\r\b\f\x01\x1f\x7f");
    fputc(' ', c.f);
    json_string(c.f, "bad\xff\xc3(");
    fputc(' ', c.f);
    json_string_n(c.f, "nul\0in", 6);
    char *out = cap_close(&c);
    assert_string_equal(out,
                        "\"高观镇\" \"a\\\"b\\\\c/d\" \"\\n\\t\\r\\b\\f\\u0001\\u001f\\u007f\" "
                        "\"bad\\ufffd\\ufffd(\" \"nul\\u0000in\"");
    free(out);
}

static void test_json_double(void **state)
{
    (void)state;
    capture_t c;
    cap_open(&c);
    json_double(c.f, 216.0 / 219.0);
    fputc(' ', c.f);
    json_double(c.f, 1.0);
    fputc(' ', c.f);
    json_double(c.f, 0.5);
    fputc(' ', c.f);
    json_double(c.f, 0.1);
    fputc(' ', c.f);
    json_double(c.f, 1.0 / 0.0);
    char *out = cap_close(&c);
    assert_string_equal(out, "0.9863013698630136 1 0.5 0.1 null");
    free(out);
}

static tally_tally_t make(const char *metric, const char *scope, int kind)
{
    tally_tally_t t;
    memset(&t, 0, sizeof t);
    t.metric = metric;
    t.scope = scope;
    t.topic = "";
    t.kind = kind;
    t.seq = 42;
    return t;
}

static void add_value(tally_tally_t *t, const char *col, bool present, int64_t num, int64_t den)
{
    tally_value_t *v = &t->values[t->nvalues++];
    v->column = col;
    v->present = present;
    v->num = num;
    v->den = den;
}

static void test_render_json(void **state)
{
    (void)state;
    tally_tally_t a = make("disputes.resolved", "", TALLY_KIND_COUNTER);
    add_value(&a, "1h", true, 216, 1);
    add_value(&a, "total", true, 216, 1);
    tally_tally_t r = make("disputes.resolution_rate", "gaoguan", TALLY_KIND_RATIO);
    add_value(&r, "total", true, 216, 219);
    add_value(&r, "1h", false, 0, 0);
    capture_t c;
    cap_open(&c);
    cli_render_json_tally(c.f, &a, false);
    fputc('\n', c.f);
    cli_render_json_tally(c.f, &r, true);
    char *out = cap_close(&c);
    assert_string_equal(out, "{\"metric\":\"disputes.resolved\",\"scope\":\"county\",\"kind\":"
                             "\"counter\",\"values\":{\"1h\":216,\"total\":216}}\n"
                             "{\"seq\":42,\"metric\":\"disputes.resolution_rate\",\"scope\":"
                             "\"gaoguan\",\"kind\":\"ratio\",\"values\":{\"total\":{\"num\":216,"
                             "\"den\":219,\"value\":0.9863013698630136},\"1h\":null}}");
    free(out);
}

static void test_render_table(void **state)
{
    (void)state;
    tally_tally_t a = make("disputes.resolved", "", TALLY_KIND_COUNTER);
    add_value(&a, "total", true, 216, 1);
    add_value(&a, "1h", true, 16, 1);
    tally_tally_t b = make("disputes.resolved", "高观镇", TALLY_KIND_COUNTER);
    add_value(&b, "total", true, 1216, 1);
    tally_tally_t r = make("disputes.resolution_rate", "", TALLY_KIND_RATIO);
    add_value(&r, "total", true, 216, 219);
    add_value(&r, "1h", false, 0, 0);
    tally_tally_t g = make("grid.zones", "", TALLY_KIND_GAUGE);
    add_value(&g, "total", true, 23, 1);
    const tally_tally_t *v[] = {&g, &b, &r, &a};
    cli_render_sort(v, 4);
    assert_ptr_equal(v[0], &r);
    assert_ptr_equal(v[1], &a); /* county before townships */
    assert_ptr_equal(v[2], &b);
    assert_ptr_equal(v[3], &g);
    capture_t c;
    cap_open(&c);
    assert_int_equal(cli_render_table(c.f, v, 4), 0);
    char *out = cap_close(&c);
    const char *want = "METRIC                    SCOPE   1h  total\n"
                       "disputes.resolution_rate  county   -  98.6%\n"
                       "disputes.resolved         county  16    216\n"
                       "disputes.resolved         高观镇       1216\n"
                       "grid.zones                county         23\n";
    assert_string_equal(out, want);
    free(out);
    char buf[32];
    tally_value_t nv = {.column = "x", .present = false};
    cli_render_value(buf, sizeof buf, TALLY_KIND_RATIO, &nv);
    assert_string_equal(buf, "-");
    tally_value_t full = {.column = "x", .present = true, .num = 94, .den = 94};
    cli_render_value(buf, sizeof buf, TALLY_KIND_RATIO, &full);
    assert_string_equal(buf, "100.0%");
}

/* Tenths of a percent, rounded half away from zero from the integers, in
 * every place the command prints them: 1/16 is 6.25%, shown 6.3% (as the
 * report shows it; printf's %.1f of the double gave 6.2%). */
static void test_render_rounding(void **state)
{
    (void)state;
    static const struct {
        int64_t num, den;
        const char *want;
    } ratios[] = {{1, 16, "6.3%"},
                  {3, 16, "18.8%"},
                  {216, 219, "98.6%"},
                  {2, 3, "66.7%"},
                  {1, 3, "33.3%"},
                  {0, 5, "0.0%"},
                  {1, 0, "0.0%"},
                  {-1, 16, "-6.3%"},
                  {1, 2000, "0.1%"},
                  {1, 2001, "0.0%"},
                  {INT64_MAX, INT64_MAX, "100.0%"}};
    char buf[48];
    for (size_t i = 0; i < sizeof ratios / sizeof ratios[0]; i++) {
        tally_value_t v = {
            .column = "x", .present = true, .num = ratios[i].num, .den = ratios[i].den};
        cli_render_value(buf, sizeof buf, TALLY_KIND_RATIO, &v);
        if (strcmp(buf, ratios[i].want) != 0)
            fail_msg("%" PRId64 "/%" PRId64 ": '%s', not '%s'", ratios[i].num, ratios[i].den, buf,
                     ratios[i].want);
    }

    /* A ratio's change in points, the difference of the rates as
     * printed: 1/16 - 0/1 = 6.3% - 0.0% -> +6.3pp; 1/3 - 2/3 = 33.3% -
     * 66.7% -> -33.4pp (the exact -33.33 would not add up); a 0 den has
     * none. */
    char a[48], r[48];
    double da, dr;
    bool hr;
    tally_value_t r1 = {.column = "x", .present = true, .num = 1, .den = 16};
    tally_value_t r0 = {.column = "x", .present = true, .num = 0, .den = 1};
    cli_change(TALLY_KIND_RATIO, 0, &r1, &r0, a, sizeof a, r, sizeof r, &da, &dr, &hr);
    assert_string_equal(a, "+6.3pp");
    assert_string_equal(r, "-");
    tally_value_t t1 = {.column = "x", .present = true, .num = 1, .den = 3};
    tally_value_t t2 = {.column = "x", .present = true, .num = 2, .den = 3};
    cli_change(TALLY_KIND_RATIO, 0, &t1, &t2, a, sizeof a, r, sizeof r, &da, &dr, &hr);
    assert_string_equal(a, "-33.4pp");
    cli_change(TALLY_KIND_RATIO, 0, &t1, &t1, a, sizeof a, r, sizeof r, &da, &dr, &hr);
    assert_string_equal(a, "0.0pp");
    /* The difference of the rates as printed: 1861/2000 (93.05%, shown
     * 93.1%) against 12/13 (92.31%, shown 92.3%) is +0.8, not the exact
     * 0.74 rounded; the number keeps the exact difference (JSON). */
    tally_value_t p1 = {.column = "x", .present = true, .num = 1861, .den = 2000};
    tally_value_t p0 = {.column = "x", .present = true, .num = 12, .den = 13};
    cli_change(TALLY_KIND_RATIO, 0, &p1, &p0, a, sizeof a, r, sizeof r, &da, &dr, &hr);
    assert_string_equal(a, "+0.8pp");
    double off = da - (93.05 - 1200.0 / 13);
    assert_true(off < 1e-9 && off > -1e-9);

    /* A counter's change in %: 17 against 16 is +6.25% -> +6.3%; 15 is
     * -6.3%. */
    tally_value_t c16 = {.column = "x", .present = true, .num = 16, .den = 1};
    tally_value_t c17 = {.column = "x", .present = true, .num = 17, .den = 1};
    tally_value_t c15 = {.column = "x", .present = true, .num = 15, .den = 1};
    cli_change(TALLY_KIND_COUNTER, 0, &c17, &c16, a, sizeof a, r, sizeof r, &da, &dr, &hr);
    assert_string_equal(a, "+1");
    assert_string_equal(r, "+6.3%");
    assert_true(hr);
    cli_change(TALLY_KIND_COUNTER, 0, &c15, &c16, a, sizeof a, r, sizeof r, &da, &dr, &hr);
    assert_string_equal(r, "-6.3%");

    cli_i128 t;
    assert_true(cli_ratio_change_tenths(INT64_MAX, INT64_MAX, 0, 1, &t));
    assert_true(t == 1000);
    assert_false(cli_ratio_change_tenths(1, 0, 0, 1, &t));
}

/* A metric's decimal scale: exact integer arithmetic, signs, zeros. */
static void test_render_scaled(void **state)
{
    (void)state;
    static const struct {
        int64_t num;
        int scale;
        const char *want;
    } cases[] = {
        {125, 1, "12.5"},
        {-5, 2, "-0.05"},
        {0, 3, "0.000"},
        {7, 0, "7"},
        {100, 2, "1.00"},
        {-125, 1, "-12.5"},
        {INT64_MIN, 9, "-9223372036.854775808"},
        {INT64_MAX, 18, "9.223372036854775807"},
    };
    char buf[48];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tally_value_t v = {.column = "total", .present = true, .num = cases[i].num, .den = 1};
        cli_render_scaled(buf, sizeof buf, TALLY_KIND_COUNTER, &v, cases[i].scale);
        assert_string_equal(buf, cases[i].want);
    }
    /* Ratios and absent values are not scaled. */
    tally_value_t r = {.column = "total", .present = true, .num = 216, .den = 219};
    cli_render_scaled(buf, sizeof buf, TALLY_KIND_RATIO, &r, 2);
    assert_string_equal(buf, "98.6%");
    tally_value_t none = {.column = "total", .present = false};
    cli_render_scaled(buf, sizeof buf, TALLY_KIND_GAUGE, &none, 2);
    assert_string_equal(buf, "-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_width),
        cmocka_unit_test(test_table_alignment),
        cmocka_unit_test(test_table_two_passes),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_json_double),
        cmocka_unit_test(test_render_json),
        cmocka_unit_test(test_render_table),
        cmocka_unit_test(test_render_scaled),
        cmocka_unit_test(test_render_rounding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
