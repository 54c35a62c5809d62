/* Unit tests of the periods `tally get --compare` and the report set a
 * period against (cli_span_compare, client/cli/cli_span.c): a period
 * over, one under way (as many days of the one before, the same dates a
 * year earlier), a year under way in and after a leap year. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_over_and_under_way),
        cmocka_unit_test(test_year_under_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
