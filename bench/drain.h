/* drain.h - extra subscribers that only read, to load tallyd's publishing.
 *
 * A drain runs n SUB sockets, each subscribed to everything ("u/" and
 * "h"), in a thread of its own with its own ZeroMQ context, so that reading
 * them neither delays the load loop's acknowledgements nor shares its I/O
 * thread.  It counts what it receives and nothing else.
 */
#ifndef TALLY_BENCH_DRAIN_H
#define TALLY_BENCH_DRAIN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

typedef struct drain {
    pthread_t thread;
    bool started;
    char endpoint[PROTO_ENDPOINT_MAX + 1];
    uint32_t n;
    atomic_bool stop;
    atomic_uint ready;             /* subscribers that have received something */
    atomic_uint_fast64_t received; /* publish messages received, all subscribers */
    atomic_int failed;             /* set when the thread could not set up */
} drain_t;

/* Start a thread running n subscribers connected to endpoint (copied).
 * Returns 0, TALLY_EINVAL (endpoint too long) or TALLY_ESYS. */
int drain_start(drain_t *d, const char *endpoint, uint32_t n);

/* Wait up to timeout_ms until every subscriber has received a message
 * (its subscriptions are then active).  Returns 0, TALLY_ETIMEDOUT, or
 * TALLY_ESYS when the thread failed to set up. */
int drain_wait_ready(drain_t *d, int timeout_ms);

/* Publish messages received so far by all subscribers together. */
uint64_t drain_received(drain_t *d);

/* Stop the thread and wait for it.  Safe when not started. */
void drain_stop(drain_t *d);

#endif
