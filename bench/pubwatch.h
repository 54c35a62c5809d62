/* pubwatch.h - submit-to-publish latency, seen by one unfiltered subscriber.
 *
 * The protocol has no free field to carry a send time through tallyd, so
 * the watcher matches by series instead.  The load generator tells it about
 * every submission it sends (pubwatch_sent); per series the watcher keeps
 * the number of samples sent so far and, when no change of that series is
 * waiting for its UPDATE, the send time of the change that starts waiting
 * and the count that change brought the series to.  An UPDATE of that series
 * whose "total" column has reached that count shows the change: the latency
 * is its arrival time minus that send time, and the series waits no more.
 *
 * What this measures, precisely: for each series, the changes sent while no
 * earlier change of the series was waiting.  Changes sent while one was
 * waiting are not timed (they are published together with it or after it,
 * and were sent later, so the timed one bounds them).  The count check
 * needs each sample to add 1 to a counter starting at 0, which is what the
 * load generator sends on a fresh state directory; on a state directory
 * with older totals every UPDATE passes the check and the measure degrades
 * to "next UPDATE of the series", which can end the wait early when an
 * older UPDATE was still on its way.  Series are named by the load
 * generator's scheme: townships t00000.., metrics m00.. (see
 * pubwatch_town_name).
 *
 * The subscriber takes every topic ("u/" and "h") and checks update
 * sequence numbers, so updates lost to a full queue (section 15 of
 * PROTOCOL.md) are counted as gaps.
 */
#ifndef TALLY_BENCH_PUBWATCH_H
#define TALLY_BENCH_PUBWATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "hist.h"
#include "proto.h"

typedef struct pubwatch_series {
    int64_t send_ns; /* send time of the waiting change, 0 = none waiting */
    uint64_t need;   /* the total that shows the waiting change */
    uint64_t sent;   /* samples sent to this series so far */
} pubwatch_series_t;

typedef struct pubwatch {
    void *sock; /* SUB, owned */
    uint32_t townships, metrics;
    pubwatch_series_t *series; /* townships * metrics, then metrics county ones */
    bool recording;            /* count latencies into hist now */
    hist_t hist;
    uint64_t updates;    /* UPDATEs received */
    uint64_t heartbeats; /* HEARTBEATs received */
    uint64_t gaps;       /* updates missing from the sequence */
    uint64_t matched;    /* latencies measured (also outside the window) */
    uint64_t bad;        /* publish messages that did not decode */
    uint64_t stream_id, last_seq;
    bool have_seq;
    proto_msg_t msg;
    char topic[PROTO_TOPIC_MAX + 1];
    uint8_t body[8192];
} pubwatch_t;

/* Write the name of township i ("t00042") or metric i ("m07") into buf
 * (at least 16 bytes); returns the length. */
int pubwatch_town_name(char *buf, uint32_t i);
int pubwatch_metric_name(char *buf, uint32_t i);

/* Create the SUB socket in zctx, connect it to endpoint and subscribe to
 * "u/" and "h"; allocate the per-series table for townships x metrics.
 * Returns 0, TALLY_ENOMEM or TALLY_ESYS (zmq failure, message on stderr). */
int pubwatch_init(pubwatch_t *w, void *zctx, const char *endpoint, uint32_t townships,
                  uint32_t metrics);

/* Wait up to timeout_ms for the first HEARTBEAT, which shows that the
 * subscriptions are active in the daemon.  Returns 0 or TALLY_ETIMEDOUT. */
int pubwatch_wait_ready(pubwatch_t *w, int timeout_ms);

/* A submission for township town with samples of metrics[0..n) (each +1)
 * was sent at now_ns. */
void pubwatch_sent(pubwatch_t *w, uint32_t town, const uint32_t *metrics, uint32_t n,
                   int64_t now_ns);

/* Receive and account for up to budget waiting publish messages (arrival
 * times from bench_time_ns()).  Returns how many were received (0: none waiting). */
uint32_t pubwatch_drain(pubwatch_t *w, uint32_t budget);

/* Close the socket and free the table.  Safe on a zeroed or closed watcher. */
void pubwatch_close(pubwatch_t *w);

#endif
