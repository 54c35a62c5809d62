/* calperiod.h - names of calendar periods ("2023", "2023-Q4", "2023-12",
 * "2023-12-31") and the arithmetic on them that both the daemon and the
 * client need (PROTOCOL.md 10.8).
 *
 * A period is a type (day, month, quarter, year) and a key, the same keys
 * the daemon's engine uses (daemon/period.h): the day key is the number of
 * calendar days since 1970-01-01, the month key year * 12 + month (0..11),
 * the quarter key year * 4 + quarter (0..3), the year key the year.  The
 * names are labels of the local calendar: this module needs no time zone,
 * the daemon maps event times to local days itself.
 *
 * Years 2000..2099 only, the years a SUBMIT's time_ms can fall in.
 */
#ifndef TALLY_CALPERIOD_H
#define TALLY_CALPERIOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CALPERIOD_NAME_MAX  16 /* bytes of a name with its NUL ("2023-12-31") */
#define CALPERIOD_YEAR_MIN  2000
#define CALPERIOD_YEAR_MAX  2099
#define CALPERIOD_RANGE_MAX 10000 /* periods in one range request */

/* Same order and values as daemon/period.h's enum period_id. */
enum calperiod_type {
    CALPERIOD_DAY = 0,
    CALPERIOD_MONTH = 1,
    CALPERIOD_QUARTER = 2,
    CALPERIOD_YEAR = 3,
};

typedef struct calperiod {
    int type;    /* enum calperiod_type */
    int32_t key; /* see above */
} calperiod_t;

/* Parse s[0..len): "YYYY", "YYYY-Qn" (n 1..4), "YYYY-MM" or "YYYY-MM-DD",
 * digits exactly as shown, a real date, year 2000..2099.  Returns 0 and
 * fills *out, or TALLY_EINVAL. */
int calperiod_parse(const char *s, size_t len, calperiod_t *out);

/* Write the name of p into buf (cap >= CALPERIOD_NAME_MAX is always
 * enough).  Returns its length, or TALLY_EINVAL (p outside the years
 * 2000..2099, an unknown type, or cap too small). */
int calperiod_format(calperiod_t p, char *buf, size_t cap);

/* The type named "day", "month", "quarter" or "year" in s[0..len), or
 * TALLY_EINVAL. */
int calperiod_type_parse(const char *s, size_t len);

/* "day", "month", "quarter", "year" (static storage); "?" for others. */
const char *calperiod_type_name(int type);

/* Day key of the civil date y-m-d (m 1..12, d 1..31; not checked). */
int32_t calperiod_days_from_civil(int y, int m, int d);

/* The civil date of day key z. */
void calperiod_civil_from_days(int32_t z, int *y, int *m, int *d);

/* The first and the last day key of p. */
void calperiod_days(calperiod_t p, int32_t *first, int32_t *last);

/* The period of type holding day key day. */
calperiod_t calperiod_of_day(int type, int32_t day);

/* The period before p (of the same type), and the same period one year
 * earlier (29 February: 28 February of the year before). */
calperiod_t calperiod_prev(calperiod_t p);
calperiod_t calperiod_year_ago(calperiod_t p);

/* The periods of type covering from's first day through to's last day:
 * *first and *count (count >= 1 when from does not begin after to).
 * Returns 0, or TALLY_EINVAL when from begins after to ends. */
int calperiod_span(int type, calperiod_t from, calperiod_t to, calperiod_t *first, int64_t *count);

/* Cut the days first..last (day keys, first <= last) into the fewest
 * whole periods, in order: the years, quarters and months that lie
 * wholly inside, days at the edges.  Writes at most cap periods to out
 * (CALPERIOD_PARTS_MAX is always enough) and returns how many, or
 * TALLY_EINVAL (first after last, or cap too small). */
#define CALPERIOD_PARTS_MAX 176 /* 30 + 2 + 3 days/months/quarters each side, 100 years */
int calperiod_split(int32_t first, int32_t last, calperiod_t *out, size_t cap);

/* The n-th period of p's type after p (n >= 0). */
calperiod_t calperiod_add(calperiod_t p, int64_t n);

/* True when a's first day is after b's last day. */
bool calperiod_after(calperiod_t a, calperiod_t b);

#endif
