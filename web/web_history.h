/* web_history.h - tally-web (web/): the routes of the closed periods,
 *   /api/v1/period  ?period=P (2023, 2023-Q4, 2023-12, 2023-12-31 or
 *                   FROM..TO) &prefix=TOPIC: the tallies of that period
 *   /api/v1/range   ?metric=M &by=day|month|quarter|year &from=P [&to=P]
 *                   [&scope=county|TOWNSHIP]: one series period by period
 * Each is asked of tallyd on a libuv worker thread, so that the loop never
 * waits for it; a county too large for one answer is read township by
 * township (the townships of the feed, at most WEB_SPLIT_MAX).  Errors
 * are JSON {"error":...}: 400 for a bad argument or a refused period, 410
 * for a day past tallyd's retention, 501 for a request this tallyd does
 * not know, 503 when tallyd does not answer. */
#ifndef TALLY_WEB_HISTORY_H
#define TALLY_WEB_HISTORY_H

#include <stdbool.h>

#include "web_server_impl.h"

/* Answer GET /api/v1/range (range) or /api/v1/period on wsi: the
 * arguments are checked at once (400), then a job is queued and
 * ps->job set.  Returns as web_server_respond(). */
int web_history_route(web_server_t *s, struct lws *wsi, pss_t *ps, bool range);

/* The writeable callback of a session with a job (ps->job): the answer
 * once the job is done, else nothing yet.  Returns as
 * web_server_respond(). */
int web_history_writeable(web_server_t *s, struct lws *wsi, pss_t *ps);

/* The session closed: its job, if any, is freed now or, while a worker
 * still runs it, when it ends. */
void web_history_closed(pss_t *ps);

#endif
