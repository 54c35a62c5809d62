/* cli_span.c - the tally command (client/cli/): calendar periods and
 * spans of days as the commands name them, and the periods a --compare
 * sets a period against (cli_period.h).  In tallyclicore, so that the
 * unit tests reach them. */
#include "cli_period.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calperiod.h"
#include "cli_util.h"

/* Today's date in UTC.  Periods are the daemon's, in its time zone, so
 * this machine's zone says nothing about them (CLOCK would tell the
 * daemon's, PROTOCOL.md 8.23, at the cost of a round trip before every
 * request); but no zone is more than 14 hours ahead of UTC, so a period
 * beginning after tomorrow in UTC has not begun anywhere.  Nearer ones
 * are the daemon's to judge. */
static int32_t utc_today(void)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    return calperiod_days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

int cli_period_check(const char *cmd, const char *option, const char *value, bool ahead)
{
    calperiod_t p;
    if (calperiod_parse(value, strlen(value), &p) != 0)
        return cli_usage_error(cmd,
                               "%s '%s' is not a period: expected YYYY, YYYY-Qn, YYYY-MM or "
                               "YYYY-MM-DD (years 2000..2099), e.g. 2023, 2023-Q4, 2023-12, "
                               "2023-12-31",
                               option, value);
    int32_t first, last, today = utc_today();
    calperiod_days(p, &first, &last);
    if (first > today + 1 && !ahead) {
        char t[CALPERIOD_NAME_MAX];
        calperiod_format((calperiod_t){CALPERIOD_DAY, first}, t, sizeof(t));
        return cli_usage_error(cmd, "%s '%s' has not begun yet (it begins on %s, after today)",
                               option, value, t);
    }
    return 0;
}

/* ---- spans of days ---- */

int cli_span_parse(const char *s, cli_span_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *dots = strstr(s, "..");
    if (dots == NULL) {
        if (calperiod_parse(s, strlen(s), &out->p) != 0)
            return -1;
        calperiod_days(out->p, &out->first, &out->last);
        calperiod_format(out->p, out->name, sizeof(out->name));
        return 0;
    }
    calperiod_t a, b;
    int32_t unused;
    if (calperiod_parse(s, (size_t)(dots - s), &a) != 0 ||
        calperiod_parse(dots + 2, strlen(dots + 2), &b) != 0)
        return -1;
    out->span = true;
    calperiod_days(a, &out->first, &unused);
    calperiod_days(b, &unused, &out->last);
    calperiod_format(a, out->from, sizeof(out->from));
    calperiod_format(b, out->to, sizeof(out->to));
    snprintf(out->name, sizeof(out->name), "%s..%s", out->from, out->to);
    return out->first <= out->last ? 0 : -1;
}

void cli_span_days(int32_t first, int32_t last, cli_span_t *out)
{
    memset(out, 0, sizeof(*out));
    out->span = true;
    out->first = first;
    out->last = last;
    calperiod_format((calperiod_t){CALPERIOD_DAY, first}, out->from, sizeof(out->from));
    calperiod_format((calperiod_t){CALPERIOD_DAY, last}, out->to, sizeof(out->to));
    snprintf(out->name, sizeof(out->name), "%s..%s", out->from, out->to);
}

void cli_period_zh(calperiod_t p, char *buf, size_t cap)
{
    static const char *const quarter[] = {"一", "二", "三", "四"};
    char name[CALPERIOD_NAME_MAX];
    int32_t first, last;
    int y, m, d;
    buf[0] = '\0';
    if (calperiod_format(p, name, sizeof(name)) < 0)
        return;
    calperiod_days(p, &first, &last);
    calperiod_civil_from_days(first, &y, &m, &d);
    switch (p.type) {
    case CALPERIOD_YEAR:
        snprintf(buf, cap, "%d年", y);
        break;
    case CALPERIOD_QUARTER:
        snprintf(buf, cap, "%d年第%s季度", y, quarter[(m - 1) / 3]);
        break;
    case CALPERIOD_MONTH:
        snprintf(buf, cap, "%d年%d月", y, m);
        break;
    default:
        snprintf(buf, cap, "%d年%d月%d日", y, m, d);
        break;
    }
}

void cli_span_zh(const cli_span_t *s, char *buf, size_t cap)
{
    calperiod_t a, b;
    if (!s->span) {
        cli_period_zh(s->p, buf, cap);
        return;
    }
    if (calperiod_parse(s->from, strlen(s->from), &a) != 0 ||
        calperiod_parse(s->to, strlen(s->to), &b) != 0) {
        snprintf(buf, cap, "%s", s->name);
        return;
    }
    char from[48], to[48];
    cli_period_zh(a, from, sizeof(from));
    cli_period_zh(b, to, sizeof(to));
    if (strcmp(from, to) == 0) { /* 2023-12-06..2023-12-06: one day */
        snprintf(buf, cap, "%s", from);
        return;
    }
    /* The year once when both ends are in it, and the second end says
     * more than its year: 2023年1月—11月, but 2022年—2023年. */
    const char *nian = strstr(to, "年");
    size_t ylen = nian ? (size_t)(nian - to) + strlen("年") : 0;
    bool same_year = ylen > 0 && strncmp(from, to, ylen) == 0 && to[ylen] != '\0';
    snprintf(buf, cap, "%s—%s", from, same_year ? to + ylen : to);
}

int cli_span_check(const char *cmd, const char *option, const char *value)
{
    const char *dots = strstr(value, "..");
    if (dots == NULL)
        return cli_period_check(cmd, option, value, false);
    char a[64], b[64];
    snprintf(a, sizeof(a), "%.*s", (int)(dots - value < 63 ? dots - value : 63), value);
    snprintf(b, sizeof(b), "%s", dots + 2);
    char opt[160]; /* "--period '2023..2030':" */
    snprintf(opt, sizeof(opt), "%s '%.100s':", option, value);
    if (a[0] == '\0' || b[0] == '\0')
        return cli_usage_error(cmd,
                               "%s a span needs a period on both sides of '..' (FROM..TO, "
                               "e.g. 2023-01..2023-11)",
                               opt);
    /* Its end may lie ahead (2026-12-01..2026-12-31 on the 8th reads as
     * 2026-12 does). */
    int rc = cli_period_check(cmd, opt, a, false);
    if (rc == 0)
        rc = cli_period_check(cmd, opt, b, true);
    if (rc != 0)
        return rc;
    cli_span_t s;
    if (cli_span_parse(value, &s) != 0)
        return cli_usage_error(cmd, "%s '%s': %s begins after %s ends", option, value, a, b);
    return 0;
}

int cli_span_fetch(const char *server, tally_request_t *req, const char *prefix,
                   const cli_span_t *s, const char *const *towns, size_t ntowns,
                   tally_townships_t *found, tally_tally_cb cb, void *ctx)
{
    int rc = tally_period_read(server, req, prefix, s->name, cb, ctx);
    if (rc != TALLY_ETOOLARGE || !tally_period_splittable(prefix))
        return rc;
    if (towns == NULL && found != NULL) { /* found once, for every period asked */
        if (found->v == NULL && (rc = tally_townships_req(server, req, found)) != 0)
            return rc;
        towns = (const char *const *)found->v;
        ntowns = found->n;
    }
    return tally_period_read_split(server, req, prefix, s->name, towns, ntowns, cb, ctx);
}

/* The day a year before day (29 February: the 28th), or -1 before 2000. */
static int32_t day_year_ago(int32_t day)
{
    calperiod_t p = calperiod_year_ago((calperiod_t){CALPERIOD_DAY, day});
    char name[CALPERIOD_NAME_MAX];
    return calperiod_format(p, name, sizeof(name)) < 0 ? -1 : p.key;
}

/* The day a year before the last day of a span: for the last day of a
 * month, the last day of that month a year earlier, so that a span of
 * whole months is set against whole months (2025-01..2025-02 against
 * January and February 2024 to the 29th, not the 28th); for another day
 * day_year_ago's.  -1 before 2000. */
static int32_t last_day_year_ago(int32_t day)
{
    calperiod_t m = calperiod_of_day(CALPERIOD_MONTH, day);
    int32_t first, last;
    calperiod_days(m, &first, &last);
    if (day != last)
        return day_year_ago(day);
    calperiod_t y = calperiod_year_ago(m);
    char name[CALPERIOD_NAME_MAX];
    if (calperiod_format(y, name, sizeof(name)) < 0)
        return -1;
    calperiod_days(y, &first, &last);
    return last;
}

bool cli_span_open(const cli_span_t *s, int32_t today)
{
    return today != INT32_MIN && s->first <= today && today <= s->last;
}

void cli_span_compare(const cli_span_t *cur, int32_t today, cli_span_t *prev, bool *has_prev,
                      cli_span_t *year_ago, bool *has_year_ago)
{
    char name[CALPERIOD_NAME_MAX];
    *has_prev = *has_year_ago = false;
    /* On its last day a period is set against whole periods: all its days
     * have begun (February's 28 days against January's 31, not 28). */
    bool open = cli_span_open(cur, today) && today < cur->last;
    if (!cur->span && !open) {
        calperiod_t p = calperiod_prev(cur->p), y = calperiod_year_ago(cur->p);
        if (calperiod_format(p, name, sizeof(name)) > 0) {
            memset(prev, 0, sizeof(*prev));
            cli_span_parse(name, prev);
            *has_prev = true;
        }
        if (calperiod_format(y, name, sizeof(name)) > 0) {
            memset(year_ago, 0, sizeof(*year_ago));
            cli_span_parse(name, year_ago);
            *has_year_ago = true;
        }
        return;
    }
    /* Open, it is cut to today, the same dates a year earlier (as many
     * days); over, or on its last day, a span ending with a month ends
     * with that month a year earlier, all its days. */
    int32_t a = day_year_ago(cur->first);
    int32_t b = open ? day_year_ago(today) : last_day_year_ago(cur->last);
    if (a >= 0 && b >= a) {
        cli_span_days(a, b, year_ago);
        *has_year_ago = true;
    }
    if (!cur->span && cur->p.type == CALPERIOD_YEAR) {
        /* A year's period before is the year before: the same dates, as
         * 同比 takes them.  Counted in days it was another span in a
         * leap year (2028-01-01..02-29 against 2027-01-01..03-01 as well
         * as ..02-28), shown twice. */
        if (*has_year_ago) {
            *prev = *year_ago;
            *has_prev = true;
        }
        return;
    }
    if (!cur->span) { /* the period before, its first (today - first + 1) days */
        int32_t pf, pl;
        calperiod_days(calperiod_prev(cur->p), &pf, &pl);
        if (calperiod_format((calperiod_t){CALPERIOD_DAY, pf}, name, sizeof(name)) > 0) {
            cli_span_days(pf, pf + (today - cur->first) < pl ? pf + (today - cur->first) : pl,
                          prev);
            *has_prev = true;
        }
    }
}

int cli_daemon_today(const char *server, tally_request_t *req, int32_t *today)
{
    tally_clock_t c;
    int rc = tally_clock_req(server, req, &c);
    if (rc == TALLY_ETYPE) { /* a daemon from before CLOCK: this machine's date */
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        *today = calperiod_days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
        return 0;
    }
    if (rc < 0)
        return rc;
    int64_t s = c.now_ms / 1000 + c.utc_offset_s;
    *today = (int32_t)((s - (((s % 86400) + 86400) % 86400)) / 86400);
    return 0;
}
