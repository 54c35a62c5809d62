/* Unit tests of the periods `tally get --compare` and the report set a
 * period against (cli_span_compare, client/cli/cli_span.c): a period
 * over, one under way (as many days of the one before, the same dates a
 * year earlier), a year under way in and after a leap year, a span of
 * whole months over and one still open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "calperiod.h"
#include "cli_period.h"

static int32_t day(int y, int m, int d)
{
    return calperiod_days_from_civil(y, m, d);
}

/* What cli_span_compare sets cur (a period's name) against on today:
 * the two names, "" for none. */
static void compare(const char *cur, int32_t today, char prev[64], char year_ago[64])
{
    cli_span_t c, p, y;
    memset(&c, 0, sizeof c);
    assert_int_equal(cli_span_parse(cur, &c), 0);
    bool hp = false, hy = false;
    cli_span_compare(&c, today, &p, &hp, &y, &hy);
    strcpy(prev, hp ? p.name : "");
    strcpy(year_ago, hy ? y.name : "");
}

static void test_over_and_under_way(void **state)
{
    (void)state;
    char p[64], y[64];
    /* Over: whole periods. */
    compare("2023-12", day(2024, 1, 15), p, y);
    assert_string_equal(p, "2023-11");
    assert_string_equal(y, "2022-12");
    /* Under way: as many days of the month before, the same dates a year
     * earlier. */
    compare("2024-03", day(2024, 3, 10), p, y);
    assert_string_equal(p, "2024-02-01..2024-02-10");
    assert_string_equal(y, "2023-03-01..2023-03-10");
}

/* A year under way: its period before is the year before on the same
 * dates, shown once (the command merges equal names).  In a leap year it
 * was counted in days: 2028-01-01..02-29 against 2027-01-01..03-01 and
 * 2027-01-01..02-28 both. */
static void test_year_under_way(void **state)
{
    (void)state;
    char p[64], y[64];
    compare("2028", day(2028, 2, 29), p, y);
    assert_string_equal(y, "2027-01-01..2027-02-28");
    assert_string_equal(p, y);
    compare("2028", day(2028, 12, 30), p, y);
    assert_string_equal(p, y);
    compare("2029", day(2029, 3, 1), p, y);
    assert_string_equal(y, "2028-01-01..2028-03-01");
    assert_string_equal(p, y);
    compare("2026", day(2026, 6, 30), p, y);
    assert_string_equal(y, "2025-01-01..2025-06-30");
    assert_string_equal(p, y);
}

/* A span over that ends with a month is set against that month a year
 * earlier, all its days: February 2025 has 28, February 2024 29.  The
 * last day of a month mapped as one day (29 February: the 28th) left
 * the 29th out. */
static void test_span_of_months(void **state)
{
    (void)state;
    char p[64], y[64];
    compare("2025-01..2025-02", day(2025, 6, 1), p, y);
    assert_string_equal(y, "2024-01-01..2024-02-29");
    assert_string_equal(p, "");
    compare("2024-01..2024-02", day(2025, 6, 1), p, y);
    assert_string_equal(y, "2023-01-01..2023-02-28");
    compare("2024-12..2025-02", day(2025, 6, 1), p, y);
    assert_string_equal(y, "2023-12-01..2024-02-29");
    compare("2025-02-10..2025-02-28", day(2025, 6, 1), p, y);
    assert_string_equal(y, "2024-02-10..2024-02-29");
    compare("2025-Q1..2025-Q1", day(2025, 6, 1), p, y);
    assert_string_equal(y, "2024-01-01..2024-03-31");
    /* Not known today: over as far as it can tell. */
    compare("2025-01..2025-02", INT32_MIN, p, y);
    assert_string_equal(y, "2024-01-01..2024-02-29");
    /* On its last day all its days have begun: the same. */
    compare("2025-01..2025-02", day(2025, 2, 28), p, y);
    assert_string_equal(y, "2024-01-01..2024-02-29");
    /* Ending another day than a month's last, the same dates. */
    compare("2024-01-01..2024-02-28", day(2025, 6, 1), p, y);
    assert_string_equal(y, "2023-01-01..2023-02-28");
    compare("2024-02-29..2024-03-31", day(2025, 6, 1), p, y);
    assert_string_equal(y, "2023-02-28..2023-03-31");
    /* One month, over: the whole month a year earlier, as before. */
    compare("2025-02", day(2025, 6, 1), p, y);
    assert_string_equal(p, "2025-01");
    assert_string_equal(y, "2024-02");
}

/* A span still open is cut to today and set against the same dates a
 * year earlier, as many days, even when today is the last of a month
 * (28 February 2025: to 28 February 2024, not the 29th). */
static void test_span_open(void **state)
{
    (void)state;
    char p[64], y[64];
    compare("2025-01..2025-03", day(2025, 2, 28), p, y);
    assert_string_equal(y, "2024-01-01..2024-02-28");
    assert_string_equal(p, "");
    compare("2025-01..2025-03", day(2025, 3, 10), p, y);
    assert_string_equal(y, "2024-01-01..2024-03-10");
    /* A month under way in a leap year, to its 29th: the month before to
     * as many days, at most its own. */
    compare("2028-03", day(2028, 3, 29), p, y);
    assert_string_equal(p, "2028-02-01..2028-02-29");
    assert_string_equal(y, "2027-03-01..2027-03-29");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_over_and_under_way),
        cmocka_unit_test(test_year_under_way),
        cmocka_unit_test(test_span_of_months),
        cmocka_unit_test(test_span_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
