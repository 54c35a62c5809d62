/* when.h - the tally command (client/cli/, private): event times given on
 * the command line. */
#ifndef TALLY_CLIENT_WHEN_H
#define TALLY_CLIENT_WHEN_H

#include <stddef.h>
#include <stdint.h>

/* Parse s into milliseconds since 1970-01-01 UTC.  Accepted forms:
 *   @1703995200000                     epoch milliseconds
 *   2023-12-31T12:00:00+08:00          ISO 8601 with an offset ("Z",
 *                                      "+08:00", "+0800" or "+08")
 *   2023-12-31T12:00:00.250Z           fractions of a second (up to ms)
 *   2023-12-31T12:00[:00]              no offset: local time of the TZ
 *   2023-12-31 12:00:00                environment variable, UTC when TZ is
 *                                      unset; ' ' may replace 'T'
 *   2023-12-31                         local midnight of that day
 * Returns 0; TALLY_EINVAL with a sentence in err naming the text and what
 * was expected. */
int when_parse(const char *s, int64_t *ms, char *err, size_t errlen);

#endif
