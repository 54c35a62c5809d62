/* web_history.h - tally-web (web/): the routes of the closed periods,
 *   /api/v1/period  ?period=P (2023, 2023-Q4, 2023-12, 2023-12-31 or
 *                   FROM..TO) &prefix=TOPIC: the tallies of that period
 *   /api/v1/range   ?metric=M &by=day|month|quarter|year &from=P [&to=P]
 *                   [&scope=county|TOWNSHIP]: one series period by period,
 *                   as `tally history --json` writes it (a ratio's value,
 *                   "through" tallyd's today when a point holds it)
 * Each is asked of tallyd on a libuv worker thread, so that the loop never
 * waits for it; a county too large for one answer is read township by
 * township (the townships of the feed, at most WEB_SPLIT_MAX), and a
 * prefix that needed it is read so at once afterwards.  A question asked
 * again while its read runs shares that read; the answer about periods
 * that are over is kept and given again until tallyd says closed periods
 * changed (the feed's history_gen), a series appears (every answer holds
 * every series), the feed re-synchronises, or a minute has passed, so that every screen of the wall
 * costs tallyd one read, not one each.  Errors are JSON {"error":...}: 400 for a bad argument or a
 * refused period, 410 for a day past tallyd's retention, 501 for a
 * request this tallyd does not know, 503 when tallyd does not answer
 * (saying why: nothing accepts connections at its address, after
 * WEB_HISTORY_REFUSED_MS of refusals; the network does not reach it; no
 * answer in time). */
#ifndef TALLY_WEB_HISTORY_H
#define TALLY_WEB_HISTORY_H

#include <stdbool.h>

#include "web_server_impl.h"

typedef struct web_history web_history_t;

/* Set up and free s->history.  web_history_init returns 0 or
 * TALLY_ENOMEM; web_history_free is called when no read runs
 * (web_server_busy false). */
int web_history_init(web_server_t *s);
void web_history_free(web_server_t *s);

/* Answer GET /api/v1/range (range) or /api/v1/period on wsi: the
 * arguments are checked at once (400), then the answer given from a
 * read kept, or ps->read set: to the same question's running read, or to
 * a new one queued.  Returns as web_server_respond(). */
int web_history_route(web_server_t *s, struct lws *wsi, pss_t *ps, bool range);

/* The writeable callback of a session waiting for a read (ps->read): the
 * answer once the read is done, else nothing yet.  Returns as
 * web_server_respond(). */
int web_history_writeable(web_server_t *s, struct lws *wsi, pss_t *ps);

/* The session closed: it no longer waits for its read, which is freed
 * (now, or when its worker ends) unless it is kept for others. */
void web_history_closed(web_server_t *s, pss_t *ps);

#endif
