/* request.h - the request socket's messages: decode and dispatch.
 *
 * SUBMIT goes to ingest; HELLO, PING, STATS_REQ and SNAPSHOT_REQ are
 * answered here (snapshots by publish.c); anything else gets an ERROR.
 */
#ifndef TALLYD_REQUEST_H
#define TALLYD_REQUEST_H

#include <zmq.h>

#include "zsock.h"

/* The request zsock's message callback; ctx is the tallyd_t. */
void request_on_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx);

#endif
