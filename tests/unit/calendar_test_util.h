/* Helpers shared by the engine and checkpoint unit tests: a fake clock and
 * calendar arithmetic written apart from period.c, so that the tests do
 * not check the daemon's calendar against itself.  Static inline so that
 * a test file that leaves one unused still builds. */
#ifndef TALLY_CALENDAR_TEST_UTIL_H
#define TALLY_CALENDAR_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define DAY_MS  86400000LL

/* The time fake_clock reads; a test sets it. */
static int64_t fake_ms;

static inline int64_t fake_now(void *ctx)
{
    (void)ctx;
    return fake_ms;
}

static const tclock_t fake_clock = {fake_now, NULL};

/* Days from 1970-01-01 to y-m-d, by counting. */
static inline int64_t days_of(int y, int m, int d)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t days = 0;
    for (int yy = 1970; yy < y; yy++) {
        bool leap = (yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0;
        days += leap ? 366 : 365;
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    for (int mm = 1; mm < m; mm++) {
        days += mdays[mm - 1] + (mm == 2 && leap);
    }
    return days + d - 1;
}

#endif
