/* oneshot.h - libtally (client/lib/, private): several PERIOD_REQs or
 * SPAN_REQs on one connection, for reading a county in parts
 * (period_read.c).  A one-shot request of tally.h opens a ZeroMQ context
 * and a connection of its own, about 1.6 ms before the first byte on a
 * 2-core VM; a county read township by township would pay that for every
 * township. */
#ifndef TALLY_CLIENT_ONESHOT_H
#define TALLY_CLIENT_ONESHOT_H

#include "tally.h"

typedef struct oneshot_periods oneshot_periods_t;

/* Connect to server with req's keys, refusal and handshake rules.
 * Returns 0 or the codes of tally_period_req's connection. */
int oneshot_periods_open(const char *server, tally_request_t *req, oneshot_periods_t **out);

/* tally_period_req (to NULL) or tally_span_req (from period_name to to)
 * on p, each with req's whole timeout_ms, in two halves, so that the
 * daemon works on the next part while this process handles the one
 * before: send a request, and take the answer of the oldest request
 * sent and not yet taken, in the order sent.  At most two may wait at
 * once (TALLY_EINVAL beyond); the replies of the second that come while
 * the first is read are kept for its turn.  After a failure the next one
 * may still be taken (a late reply to the failed one is passed over).
 * send: 0, the argument errors of tally_period_req, or the connection's
 * (TALLY_ETIMEDOUT, TALLY_ECLOSED, TALLY_ESYS); take: tally_period_req's
 * returns. */
int oneshot_periods_send(oneshot_periods_t *p, tally_request_t *req, const char *prefix,
                         const char *period_name, const char *to);
int oneshot_periods_take(oneshot_periods_t *p, tally_request_t *req, tally_tally_cb cb, void *ctx);

/* Close p (NULL: nothing), leaving in req->link what the connection
 * showed. */
void oneshot_periods_close(oneshot_periods_t *p, tally_request_t *req);

/* The townships that have tallies, page by page on one connection
 * (TOWNSHIPS_REQ, PROTOCOL.md 8.25), each passed to add (a name of len
 * bytes, not NUL-terminated), which returns 0 or TALLY_ENOMEM.  Returns
 * 0; TALLY_ETYPE from a daemon that predates TOWNSHIPS_REQ;
 * TALLY_EMALFORMED when its pages do not move forward; add's code;
 * otherwise the codes of tally_get_req. */
int oneshot_townships(const char *server, tally_request_t *req,
                      int (*add)(void *ctx, const char *name, size_t len), void *ctx);

#endif
