/* when.c - the tally command (client/cli/): event times given on the
 * command line. */
#include "when.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tally_error.h"
#include "text.h"

/* Read exactly n digits at *p into *out and move *p past them.  0 or
 * TALLY_EINVAL. */
static int read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return TALLY_EINVAL;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static bool is_leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap_year(y) ? 29 : days[m - 1];
}

static int parse_epoch(const char *s, int64_t *ms, char *err, size_t errlen)
{
    const char *p = s + 1;
    bool neg = *p == '-';
    if (neg)
        p++;
    if (*p == '\0' || strlen(p) > 18 || strspn(p, "0123456789") != strlen(p)) {
        text_format(err, errlen,
                    "time '%s' is not valid: after '@' give milliseconds since "
                    "1970-01-01 UTC, e.g. @1703995200000",
                    s);
        return TALLY_EINVAL;
    }
    int64_t v = 0;
    for (; *p; p++)
        v = v * 10 + (*p - '0');
    *ms = neg ? -v : v;
    return 0;
}

/* True when this machine's time zone database has a zone called name. */
static bool zone_known(const char *name)
{
    if (name == NULL || name[0] == '\0' || name[0] == '/' || strstr(name, "..") != NULL)
        return false;
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", name);
    return access(path, R_OK) == 0;
}

/* mktime(tm) in the zone called name (known to the database). */
static time_t mktime_in(struct tm *tm, const char *name)
{
    const char *was = getenv("TZ");
    char *saved = was ? strdup(was) : NULL;
    setenv("TZ", name, 1);
    tzset();
    time_t t = mktime(tm);
    if (saved != NULL)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
    return t;
}

int when_parse(const char *s, const when_zone_t *zone, int64_t *ms, bool *local_out, char *err,
               size_t errlen)
{
    if (local_out != NULL)
        *local_out = false;
    if (s[0] == '@')
        return parse_epoch(s, ms, err, errlen);
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    const char *want = "YYYY-MM-DD";
    if (read_digits(&p, 4, &y) < 0 || *p++ != '-' || read_digits(&p, 2, &mo) < 0 || *p++ != '-' ||
        read_digits(&p, 2, &d) < 0)
        goto bad;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) {
        text_format(err, errlen, "time '%s' is not valid: %04d-%02d has no day %d", s, y, mo, d);
        return TALLY_EINVAL;
    }
    bool local = true;
    int offset = 0; /* minutes east of UTC */
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        want = "HH:MM[:SS[.fff]] after the date";
        if (read_digits(&p, 2, &h) < 0 || *p++ != ':' || read_digits(&p, 2, &mi) < 0)
            goto bad;
        if (*p == ':') {
            p++;
            if (read_digits(&p, 2, &sec) < 0)
                goto bad;
            if (*p == '.' || *p == ',') {
                p++;
                int n = 0, scale = 100;
                while (*p >= '0' && *p <= '9') {
                    if (n < 3)
                        frac += (*p - '0') * scale;
                    scale /= 10;
                    n++;
                    p++;
                }
                if (n == 0)
                    goto bad;
            }
        }
        if (h > 23 || mi > 59 || sec > 59) {
            text_format(err, errlen,
                        "time '%s' is not valid: %02d:%02d:%02d is not a time of day (00:00:00 .. "
                        "23:59:59)",
                        s, h, mi, sec);
            return TALLY_EINVAL;
        }
        want = "an offset like Z, +08:00, +0800 or +08";
        if (*p == 'Z' || *p == 'z') {
            local = false;
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (read_digits(&p, 2, &oh) < 0)
                goto bad;
            if (*p == ':')
                p++;
            if (*p != '\0' && read_digits(&p, 2, &om) < 0)
                goto bad;
            if (oh > 23 || om > 59)
                goto bad;
            offset = sign * (oh * 60 + om);
            local = false;
        }
    }
    if (*p != '\0')
        goto bad;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec,
                    .tm_isdst = -1};
    time_t t;
    if (local_out != NULL)
        *local_out = local;
    if (local && zone != NULL && zone_known(zone->name)) {
        t = mktime_in(&tm, zone->name);
    } else if (local && zone != NULL) {
        t = timegm(&tm) - (time_t)zone->utc_offset_s;
    } else if (local && getenv("TZ") != NULL) {
        t = mktime(&tm); /* reads TZ */
    } else if (local) {
        /* Without TZ the C library would fall back to /etc/localtime; we
         * promise UTC instead (tally(1)), so that a script gives the same
         * time on every machine. */
        t = timegm(&tm);
    } else {
        t = timegm(&tm) - (time_t)offset * 60;
    }
    if (t == (time_t)-1 && !(y == 1969 && mo == 12 && d == 31)) {
        text_format(err, errlen, "time '%s' cannot be represented", s);
        return TALLY_EINVAL;
    }
    *ms = (int64_t)t * 1000 + frac;
    return 0;
bad:
    text_format(err, errlen,
                "time '%s' is not valid: expected %s (forms: 2023-12-31, 2023-12-31T12:00:00, "
                "2023-12-31T12:00:00+08:00, @1703995200000)",
                s, want);
    return TALLY_EINVAL;
}
