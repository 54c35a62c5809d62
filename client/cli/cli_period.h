/* cli_period.h - the tally command (client/cli/, private): the figures of
 * one calendar period, `tally get --period P [--compare]`, and a series
 * period by period, `tally history`. */
#ifndef TALLY_CLIENT_CLI_PERIOD_H
#define TALLY_CLIENT_CLI_PERIOD_H

#include <stdbool.h>

#include "calperiod.h"
#include "cli_opts.h"
#include "tally.h"

/* Check a --period, --from or --to argument: a period name that may have
 * begun in the daemon's time zone (its first day not after tomorrow in
 * UTC; the daemon refuses the rest of what has not begun, BAD_PERIOD),
 * or any period name when ahead (the end of a span or range, whose days
 * after today read as nothing yet).  Returns 0, or prints a usage error
 * naming option and returns CLI_USAGE. */
int cli_period_check(const char *cmd, const char *option, const char *value, bool ahead);

/* What --period names: one calendar period ("2023-12"), or a span of days
 * FROM..TO, from the first day of the period FROM to the last day of TO
 * ("2023-01..2023-11": January to November; PROTOCOL.md 8.24). */
#define CLI_SPAN_NAME_MAX 40
typedef struct cli_span {
    bool span;                                             /* FROM..TO, else the one period p */
    calperiod_t p;                                         /* the period (not a span) */
    int32_t first, last;                                   /* its days */
    char from[CALPERIOD_NAME_MAX], to[CALPERIOD_NAME_MAX]; /* a span's ends */
    char name[CLI_SPAN_NAME_MAX]; /* "2023-12", "2023-01..2023-11": a column's name */
} cli_span_t;

/* Parse s as a period or a span.  0, or -1. */
int cli_span_parse(const char *s, cli_span_t *out);

/* The span of days first..last (day keys), named FROM..TO in days. */
void cli_span_days(int32_t first, int32_t last, cli_span_t *out);

/* A period's name in Chinese, as a report heads a column and titles
 * itself: 2023年, 2023年第四季度, 2023年11月, 2023年11月5日.  Writes ""
 * for a period that has no name (before 2000). */
void cli_period_zh(calperiod_t p, char *buf, size_t cap);

/* s's name in Chinese: a period's as cli_period_zh; a span's ends joined
 * by —, the year said once when both ends are in it (2023年1月—11月,
 * 2022年1月1日—12月6日, 2022年12月—2023年2月). */
void cli_span_zh(const cli_span_t *s, char *buf, size_t cap);

/* Check a --period that may be a span (as cli_period_check: FROM must
 * have begun, TO may lie ahead; FROM not after TO).  Returns 0 or
 * CLI_USAGE (printed). */
int cli_span_check(const char *cmd, const char *option, const char *value);

/* Read the tallies under prefix for s: PERIOD_REQ for a period, SPAN_REQ
 * for a span; cb receives each with its one column named s->name.  When
 * tallyd's answer cannot hold them all (TOO_LARGE) and prefix covers whole
 * townships, they are read township by township: those of
 * towns[0..ntowns), or with towns NULL those that have tallies
 * (tally_period_read_split), kept in *found (when not NULL) at the first
 * split for the next ones.  The returns of tally_period_req. */
int cli_span_fetch(const char *server, tally_request_t *req, const char *prefix,
                   const cli_span_t *s, const char *const *towns, size_t ntowns,
                   tally_townships_t *found, tally_tally_cb cb, void *ctx);

/* Whether s is not over yet on today (the daemon's day key; INT32_MIN:
 * not known): it holds figures up to today only. */
bool cli_span_open(const cli_span_t *s, int32_t today);

/* What cur is compared with: the period before (prev) and the same days a
 * year earlier (year_ago).  A closed period: the period before and the
 * same period a year earlier.  A period still open on today (the
 * daemon's day key; INT32_MIN when not known) before its last day: it
 * holds figures up to today only, so the others are cut to as many
 * days (December to the 6th: 1 to 6 November, 1 to 6 December a year
 * earlier).  A span: the
 * same days a year earlier (to today at most), no prev; one over that
 * ends on the last day of a month ends on that month's last a year
 * earlier (2025-01..2025-02: 2024-01-01..2024-02-29).  *has_prev and
 * *has_year_ago are false when there is none (before 2000). */
void cli_span_compare(const cli_span_t *cur, int32_t today, cli_span_t *prev, bool *has_prev,
                      cli_span_t *year_ago, bool *has_year_ago);

/* The daemon's day (its zone's date now, CLOCK_REQ) as a day key into
 * *today: a daemon from before CLOCK gives this machine's local date.
 * Returns 0 or the returns of tally_clock_req. */
int cli_daemon_today(const char *server, tally_request_t *req, int32_t *today);

/* `tally get --period P`: the tallies o selects for period, with the
 * same period of the year before and the one before it when compare is
 * set; labels and decimal scales from the catalog (cli_render_catalog).
 * Returns the exit status. */
int cli_get_period(cli_global_t *g, const cli_opts_t *o, const tally_curve_t *curve,
                   const char *period, bool compare);

/* The daemon refused a history request (PERIOD_REQ, SPAN_REQ,
 * RANGE_REQ) of o's command with rc: print why, blaming what (the
 * argument at fault; with the closest name of the catalog when it is a
 * --town or --metric not in it), and return the exit status. */
int cli_history_refused(const cli_opts_t *o, int rc, const tally_request_t *req, const char *what);

/* A value as JSON on stdout (v NULL, or not present: null; a ratio as
 * {"num":..,"den":..,"value":..}). */
void cli_json_value(const tally_value_t *v, int kind);

/* The change from b to a as JSON on stdout: {"abs":..,"pct":..}
 * ({"points":..,"pct":null} for a ratio; pct null when b is 0), or null
 * when either is NULL or not present. */
void cli_json_change(int kind, int scale, const tally_value_t *a, const tally_value_t *b);

/* `tally history`. */
int cli_history(int argc, char **argv, cli_global_t *g);
extern const char cli_history_usage[];

#endif
