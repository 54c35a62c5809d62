/* publish.h - the last step of the daemon: changed tallies out to
 * subscribers, heartbeats, and snapshots for subscribers that join late.
 *
 * Updates: every changed series (and ratio scope) is published once per
 * publish tick (conflated), or at the end of every loop iteration that
 * changed something when publish_interval_ms is 0, each with the next
 * server sequence number.  Snapshots: SNAPSHOT_REQ builds every matching
 * tally at the current sequence in one go (the loop is single-threaded, so
 * nothing changes meanwhile) and streams it to the requester, then
 * SNAPSHOT_END with that sequence.
 */
#ifndef TALLYD_PUBLISH_H
#define TALLYD_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <uv.h>

struct tallyd;

typedef struct publish_stream publish_stream_t;

typedef struct publish {
    uint64_t stream_id; /* random per daemon start */
    uint64_t seq;       /* last sequence number used */
    uint64_t subscribers;
    publish_stream_t *head, *tail; /* snapshots being sent, in order */
    uint32_t nstreams;
    uv_timer_t tick;      /* conflation tick (interval > 0) */
    uv_timer_t heartbeat; /* heartbeats */
    uv_timer_t retry;     /* resume a snapshot a peer could not take */
    uv_check_t immediate; /* publish at the end of each iteration (interval 0) */
    uv_idle_t more;       /* a round is not finished: keep the loop from blocking */
    uint32_t round_left;  /* series of the current round still to publish */
    msgpack_sbuffer scratch;
    bool retry_armed;
} publish_t;

/* Start publishing for d: pick the stream id, start the timers.  The
 * publish socket and its zsock must be open.  Returns 0 or TALLY_ESYS. */
int publish_start(struct tallyd *d);

/* Restart the tick and heartbeat timers after the intervals changed. */
void publish_retime(struct tallyd *d);

/* Publish every changed tally now, in one go. */
void publish_changes(struct tallyd *d);

/* Start a round: publish the tallies changed so far, PUBLISH_BATCH series
 * per loop iteration, so that requests are served in between.  When
 * changes come faster than that, series wait marked dirty and are
 * published later with their newest values (conflated), instead of
 * stalling ingest or overflowing the subscribers' queues. */
void publish_round(struct tallyd *d);

#define PUBLISH_BATCH 1024

/* Answer SNAPSHOT_REQ (req_id, prefix) from the peer with routing id
 * rid[0..rid_len).  Copies what it needs.  Returns 0 or TALLY_ENOMEM. */
int publish_snapshot(struct tallyd *d, const void *rid, size_t rid_len, uint64_t req_id,
                     const char *prefix, size_t prefix_len);

/* A message arrived on the XPUB socket (a subscription change). */
void publish_on_subscription(struct tallyd *d, const void *data, size_t len);

/* Publish what is pending, then GOODBYE: the daemon stops cleanly. */
void publish_goodbye(struct tallyd *d);

/* Stop the timers and drop unsent snapshots; the handles close on the
 * loop (counted in d->open_handles). */
void publish_stop(struct tallyd *d);

#endif
