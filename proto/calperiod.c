/* calperiod.c - calendar period names and arithmetic (see calperiod.h). */
#include "calperiod.h"

#include <stdio.h>
#include <string.h>

#include "tally_error.h"

/* Howard Hinnant's days_from_civil: exact for the proleptic Gregorian
 * calendar, no time zone, no library call. */
int32_t calperiod_days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + doe - 719468);
}

void calperiod_civil_from_days(int32_t z, int *y, int *m, int *d)
{
    int64_t zz = (int64_t)z + 719468;
    int64_t era = (zz >= 0 ? zz : zz - 146096) / 146097;
    int64_t doe = zz - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* n decimal digits at s; -1 when one is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int calperiod_parse(const char *s, size_t len, calperiod_t *out)
{
    if (s == NULL || len < 4)
        return TALLY_EINVAL;
    int y = digits(s, 4);
    if (y < CALPERIOD_YEAR_MIN || y > CALPERIOD_YEAR_MAX)
        return TALLY_EINVAL;
    if (len == 4) {
        *out = (calperiod_t){CALPERIOD_YEAR, y};
        return 0;
    }
    if (s[4] != '-')
        return TALLY_EINVAL;
    if (len == 7 && s[5] == 'Q') {
        int q = digits(s + 6, 1);
        if (q < 1 || q > 4)
            return TALLY_EINVAL;
        *out = (calperiod_t){CALPERIOD_QUARTER, y * 4 + q - 1};
        return 0;
    }
    int m = len >= 7 ? digits(s + 5, 2) : -1;
    if (m < 1 || m > 12)
        return TALLY_EINVAL;
    if (len == 7) {
        *out = (calperiod_t){CALPERIOD_MONTH, y * 12 + m - 1};
        return 0;
    }
    int d = len == 10 && s[7] == '-' ? digits(s + 8, 2) : -1;
    if (d < 1 || d > days_in_month(y, m))
        return TALLY_EINVAL;
    *out = (calperiod_t){CALPERIOD_DAY, calperiod_days_from_civil(y, m, d)};
    return 0;
}

int calperiod_format(calperiod_t p, char *buf, size_t cap)
{
    int y = 0, m = 0, d = 0, n = -1;
    switch (p.type) {
    case CALPERIOD_DAY:
        calperiod_civil_from_days(p.key, &y, &m, &d);
        if (y >= CALPERIOD_YEAR_MIN && y <= CALPERIOD_YEAR_MAX)
            n = snprintf(buf, cap, "%04d-%02d-%02d", y, m, d);
        break;
    case CALPERIOD_MONTH:
        y = p.key / 12;
        if (p.key >= 0 && y >= CALPERIOD_YEAR_MIN && y <= CALPERIOD_YEAR_MAX)
            n = snprintf(buf, cap, "%04d-%02d", y, p.key % 12 + 1);
        break;
    case CALPERIOD_QUARTER:
        y = p.key / 4;
        if (p.key >= 0 && y >= CALPERIOD_YEAR_MIN && y <= CALPERIOD_YEAR_MAX)
            n = snprintf(buf, cap, "%04d-Q%d", y, p.key % 4 + 1);
        break;
    case CALPERIOD_YEAR:
        if (p.key >= CALPERIOD_YEAR_MIN && p.key <= CALPERIOD_YEAR_MAX)
            n = snprintf(buf, cap, "%04d", (int)p.key);
        break;
    default:
        break;
    }
    if (n < 0 || (size_t)n >= cap)
        return TALLY_EINVAL;
    return n;
}

int calperiod_type_parse(const char *s, size_t len)
{
    for (int t = CALPERIOD_DAY; t <= CALPERIOD_YEAR; t++) {
        const char *name = calperiod_type_name(t);
        if (s != NULL && strlen(name) == len && memcmp(s, name, len) == 0)
            return t;
    }
    return TALLY_EINVAL;
}

const char *calperiod_type_name(int type)
{
    static const char *const names[] = {"day", "month", "quarter", "year"};
    return type >= CALPERIOD_DAY && type <= CALPERIOD_YEAR ? names[type] : "?";
}

void calperiod_days(calperiod_t p, int32_t *first, int32_t *last)
{
    int y, m0, n;
    switch (p.type) {
    case CALPERIOD_DAY:
        *first = *last = p.key;
        return;
    case CALPERIOD_MONTH:
        y = p.key / 12, m0 = p.key % 12, n = 1;
        break;
    case CALPERIOD_QUARTER:
        y = p.key / 4, m0 = (p.key % 4) * 3, n = 3;
        break;
    default:
        y = p.key, m0 = 0, n = 12;
        break;
    }
    *first = calperiod_days_from_civil(y, m0 + 1, 1);
    int ly = y + (m0 + n) / 12, lm = (m0 + n) % 12;
    *last = calperiod_days_from_civil(ly, lm + 1, 1) - 1;
}

calperiod_t calperiod_of_day(int type, int32_t day)
{
    int y, m, d;
    calperiod_civil_from_days(day, &y, &m, &d);
    switch (type) {
    case CALPERIOD_DAY:
        return (calperiod_t){type, day};
    case CALPERIOD_MONTH:
        return (calperiod_t){type, y * 12 + m - 1};
    case CALPERIOD_QUARTER:
        return (calperiod_t){type, y * 4 + (m - 1) / 3};
    default:
        return (calperiod_t){CALPERIOD_YEAR, y};
    }
}

calperiod_t calperiod_add(calperiod_t p, int64_t n)
{
    return (calperiod_t){p.type, (int32_t)(p.key + n)};
}

calperiod_t calperiod_prev(calperiod_t p)
{
    return calperiod_add(p, -1);
}

calperiod_t calperiod_year_ago(calperiod_t p)
{
    switch (p.type) {
    case CALPERIOD_DAY: {
        int y, m, d;
        calperiod_civil_from_days(p.key, &y, &m, &d);
        if (m == 2 && d == 29)
            d = 28;
        return (calperiod_t){p.type, calperiod_days_from_civil(y - 1, m, d)};
    }
    case CALPERIOD_MONTH:
        return calperiod_add(p, -12);
    case CALPERIOD_QUARTER:
        return calperiod_add(p, -4);
    default:
        return calperiod_add(p, -1);
    }
}

bool calperiod_after(calperiod_t a, calperiod_t b)
{
    int32_t af, al, bf, bl;
    calperiod_days(a, &af, &al);
    calperiod_days(b, &bf, &bl);
    return af > bl;
}

int calperiod_span(int type, calperiod_t from, calperiod_t to, calperiod_t *first, int64_t *count)
{
    int32_t ff, fl, tf, tl;
    calperiod_days(from, &ff, &fl);
    calperiod_days(to, &tf, &tl);
    if (ff > tl)
        return TALLY_EINVAL;
    calperiod_t a = calperiod_of_day(type, ff), b = calperiod_of_day(type, tl);
    *first = a;
    *count = (int64_t)b.key - a.key + 1;
    return 0;
}

int calperiod_split(int32_t first, int32_t last, calperiod_t *out, size_t cap)
{
    if (first > last)
        return TALLY_EINVAL;
    size_t n = 0;
    for (int32_t day = first; day <= last;) {
        calperiod_t p = {CALPERIOD_DAY, day};
        for (int type = CALPERIOD_YEAR; type > CALPERIOD_DAY; type--) {
            calperiod_t q = calperiod_of_day(type, day);
            int32_t a, b;
            calperiod_days(q, &a, &b);
            if (a == day && b <= last) {
                p = q;
                break;
            }
        }
        if (n == cap)
            return TALLY_EINVAL;
        out[n++] = p;
        int32_t a, b;
        calperiod_days(p, &a, &b);
        day = b + 1;
    }
    return (int)n;
}
