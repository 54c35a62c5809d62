/* when.h - the tally command (client/cli/, private): event times given on
 * the command line. */
#ifndef TALLY_CLIENT_WHEN_H
#define TALLY_CLIENT_WHEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a time without an offset is read: the daemon's calendar zone
 * (CLOCK, PROTOCOL.md 8.23), by its name in this machine's time zone
 * database when that has it, else at the fixed offset. */
typedef struct when_zone {
    const char *name;     /* "Asia/Shanghai"; NULL: none */
    int32_t utc_offset_s; /* east positive */
} when_zone_t;

/* Parse s into milliseconds since 1970-01-01 UTC.  Accepted forms:
 *   @1703995200000                     epoch milliseconds
 *   2023-12-31T12:00:00+08:00          ISO 8601 with an offset ("Z",
 *                                      "+08:00", "+0800" or "+08")
 *   2023-12-31T12:00:00.250Z           fractions of a second (up to ms)
 *   2023-12-31T12:00[:00]              no offset: local time, in zone when
 *   2023-12-31 12:00:00                it is not NULL, else the TZ
 *                                      environment variable's, UTC when TZ
 *                                      is unset; ' ' may replace 'T'
 *   2023-12-31                         local midnight of that day
 * *local (may be NULL) tells whether s had no offset.  Returns 0;
 * TALLY_EINVAL with a sentence in err naming the text and what was
 * expected. */
int when_parse(const char *s, const when_zone_t *zone, int64_t *ms, bool *local, char *err,
               size_t errlen);

#endif
