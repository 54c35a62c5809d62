/* test_calperiod.c - unit tests of calendar period names and arithmetic
 * (proto/calperiod.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "calperiod.h"
#include "tally_error.h"

static calperiod_t parse(const char *s)
{
    calperiod_t p = {-1, 0};
    assert_int_equal(calperiod_parse(s, strlen(s), &p), 0);
    return p;
}

static void assert_name(calperiod_t p, const char *want)
{
    char buf[CALPERIOD_NAME_MAX];
    assert_int_equal(calperiod_format(p, buf, sizeof buf), (int)strlen(want));
    assert_string_equal(buf, want);
}

static void test_parse_format(void **state)
{
    (void)state;
    const char *good[] = {"2023",       "2023-Q1",    "2023-Q4",    "2023-01",   "2023-12",
                          "2023-12-31", "2024-02-29", "2000-01-01", "2099-12-31"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_name(parse(good[i]), good[i]);
    assert_int_equal(parse("2023").type, CALPERIOD_YEAR);
    assert_int_equal(parse("2023-Q4").key, 2023 * 4 + 3);
    assert_int_equal(parse("2023-12").key, 2023 * 12 + 11);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    const char *bad[] = {"",           "202",         "20234",   "2023-",   "2023-Q0",
                         "2023-Q5",    "2023-13",     "2023-00", "2023-1",  "2023-02-29",
                         "2023-04-31", "2023-12-32",  "1999",    "2100",    "2023/12",
                         "2023-12-1",  "2023-12-01x", "abcd",    "2023-q4", "2023-12-00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        calperiod_t p;
        if (calperiod_parse(bad[i], strlen(bad[i]), &p) != TALLY_EINVAL)
            fail_msg("'%s' parsed", bad[i]);
    }
    assert_int_equal(calperiod_type_parse("month", 5), CALPERIOD_MONTH);
    assert_int_equal(calperiod_type_parse("week", 4), TALLY_EINVAL);
}

static void test_days(void **state)
{
    (void)state;
    int32_t f, l;
    calperiod_days(parse("2024-02"), &f, &l);
    assert_int_equal(l - f + 1, 29);
    calperiod_days(parse("2023-Q4"), &f, &l);
    assert_int_equal(f, parse("2023-10-01").key);
    assert_int_equal(l, parse("2023-12-31").key);
    calperiod_days(parse("2024"), &f, &l);
    assert_int_equal(l - f + 1, 366);
    assert_name(calperiod_of_day(CALPERIOD_QUARTER, parse("2024-02-29").key), "2024-Q1");
    assert_name(calperiod_of_day(CALPERIOD_MONTH, parse("2023-12-31").key), "2023-12");
    int y, m, d;
    calperiod_civil_from_days(parse("2024-02-29").key, &y, &m, &d);
    assert_int_equal(y * 10000 + m * 100 + d, 20240229);
}

static void test_prev_and_year_ago(void **state)
{
    (void)state;
    assert_name(calperiod_prev(parse("2024-01")), "2023-12");
    assert_name(calperiod_prev(parse("2024-Q1")), "2023-Q4");
    assert_name(calperiod_prev(parse("2024-01-01")), "2023-12-31");
    assert_name(calperiod_prev(parse("2024")), "2023");
    assert_name(calperiod_year_ago(parse("2024-02-29")), "2023-02-28");
    assert_name(calperiod_year_ago(parse("2024-Q2")), "2023-Q2");
    assert_name(calperiod_year_ago(parse("2024-03")), "2023-03");
}

static void test_span(void **state)
{
    (void)state;
    calperiod_t first;
    int64_t n;
    assert_int_equal(
        calperiod_span(CALPERIOD_MONTH, parse("2023-01"), parse("2023-12"), &first, &n), 0);
    assert_name(first, "2023-01");
    assert_int_equal(n, 12);
    assert_int_equal(calperiod_span(CALPERIOD_DAY, parse("2023-01"), parse("2023-12"), &first, &n),
                     0);
    assert_int_equal(n, 365);
    assert_int_equal(calperiod_span(CALPERIOD_QUARTER, parse("2023-02"), parse("2023"), &first, &n),
                     0);
    assert_name(first, "2023-Q1");
    assert_int_equal(n, 4);
    assert_int_equal(calperiod_span(CALPERIOD_YEAR, parse("2024"), parse("2023"), &first, &n),
                     TALLY_EINVAL);
    assert_true(calperiod_after(parse("2024-01-01"), parse("2023")));
    assert_false(calperiod_after(parse("2023-12-31"), parse("2023")));
}

/* The parts of first..last joined, as names with '+'. */
static void assert_split(const char *first, const char *last, const char *want)
{
    calperiod_t parts[CALPERIOD_PARTS_MAX];
    int32_t a, b, unused;
    calperiod_days(parse(first), &a, &unused);
    calperiod_days(parse(last), &unused, &b);
    int n = calperiod_split(a, b, parts, CALPERIOD_PARTS_MAX);
    assert_true(n > 0);
    char got[4096] = "";
    int32_t next = a;
    for (int i = 0; i < n; i++) {
        char name[CALPERIOD_NAME_MAX];
        assert_true(calperiod_format(parts[i], name, sizeof name) > 0);
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "+" : "", name);
        int32_t f, l;
        calperiod_days(parts[i], &f, &l);
        assert_int_equal(f, next); /* in order, no gap, no overlap */
        next = l + 1;
    }
    assert_int_equal(next, b + 1);
    assert_string_equal(got, want);
}

static void test_split(void **state)
{
    (void)state;
    assert_split("2025-01-01", "2025-12-06",
                 "2025-Q1+2025-Q2+2025-Q3+2025-10+2025-11+2025-12-01+2025-12-02+2025-12-03+"
                 "2025-12-04+2025-12-05+2025-12-06");
    assert_split("2025", "2025", "2025");
    assert_split("2023-12-30", "2025-01-02", "2023-12-30+2023-12-31+2024+2025-01-01+2025-01-02");
    assert_split("2024-02-29", "2024-02-29", "2024-02-29");
    assert_split("2024-02", "2024-06", "2024-02+2024-03+2024-Q2");
    assert_split("2024-02", "2024-05", "2024-02+2024-03+2024-04+2024-05");
    assert_split("2024-11", "2025-Q1", "2024-11+2024-12+2025-Q1");
    /* the most parts: 30 days, 2 months, 3 quarters each side, 100 years */
    calperiod_t parts[CALPERIOD_PARTS_MAX];
    int n = calperiod_split(parse("2000-01-01").key, parse("2099-12-31").key, parts,
                            CALPERIOD_PARTS_MAX);
    assert_int_equal(n, 100);
    n = calperiod_split(parse("2000-01-02").key, parse("2099-12-30").key, parts,
                        CALPERIOD_PARTS_MAX);
    assert_int_equal(n, 30 + 2 + 3 + 98 + 3 + 2 + 30);
    assert_true(n <= CALPERIOD_PARTS_MAX);
    assert_int_equal(calperiod_split(10, 9, parts, CALPERIOD_PARTS_MAX), TALLY_EINVAL);
    assert_int_equal(calperiod_split(parse("2025-01-02").key, parse("2025-01-04").key, parts, 2),
                     TALLY_EINVAL);
}

/* Any span of 2000..2099: the parts cover it in order, without a gap or
 * overlap, and none could be a larger period (its enclosing year,
 * quarter or month does not lie wholly inside the span). */
static void test_split_any_span(void **state)
{
    (void)state;
    int32_t lo = parse("2000-01-01").key, hi = parse("2099-12-31").key;
    uint64_t x = 88172645463325252ULL; /* xorshift64: the same spans every run */
    for (int k = 0; k < 20000; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int32_t a = lo + (int32_t)(x % (uint64_t)(hi - lo + 1));
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* short spans as often as long ones */
        int32_t len = (int32_t)(x % (k % 2 ? 800u : (uint64_t)(hi - a + 1)));
        int32_t b = a + len > hi ? hi : a + len;
        calperiod_t parts[CALPERIOD_PARTS_MAX];
        int n = calperiod_split(a, b, parts, CALPERIOD_PARTS_MAX);
        assert_true(n >= 1 && n <= CALPERIOD_PARTS_MAX);
        int32_t next = a;
        for (int i = 0; i < n; i++) {
            int32_t f, l;
            calperiod_days(parts[i], &f, &l);
            if (f != next || l > b)
                fail_msg("span %d..%d: part %d covers %d..%d", a, b, i, f, l);
            next = l + 1;
            for (int type = parts[i].type + 1; type <= CALPERIOD_YEAR; type++) {
                int32_t ef, el;
                calperiod_days(calperiod_of_day(type, f), &ef, &el);
                if (ef >= a && el <= b)
                    fail_msg("span %d..%d: part %d (type %d) lies in a whole period of type %d", a,
                             b, i, parts[i].type, type);
            }
        }
        assert_int_equal(next, b + 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_format),   cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_days),           cmocka_unit_test(test_prev_and_year_ago),
        cmocka_unit_test(test_span),           cmocka_unit_test(test_split),
        cmocka_unit_test(test_split_any_span),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
