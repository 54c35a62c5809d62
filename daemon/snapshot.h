/* snapshot.h - snapshots for subscribers that join late (SNAPSHOT_REQ).
 *
 * A snapshot is every tally matching a topic prefix, at the publisher's
 * sequence S when it was asked for, then SNAPSHOT_END with S and the count
 * (PROTOCOL.md 16).  It is streamed, not built at once: a stream encodes a
 * chunk of series at a time, only as fast as the requester's queue drains,
 * so a snapshot costs one chunk of memory however large the tallies are.
 * Every item carries S; its value reflects at least every update up to S
 * (it may reflect later changes, whose updates follow with seq > S).
 *
 * Bounded: at most max_streams snapshots are sent at once and one per
 * connection; a further request is answered BUSY (retryable).  A stream
 * that makes no progress for timeout_ms (its peer is not reading) or whose
 * peer is gone is abandoned and counted.
 */
#ifndef TALLYD_SNAPSHOT_H
#define TALLYD_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <uv.h>

#include "engine.h"
#include "log.h"
#include "publish.h"
#include "sink.h"
#include "stats.h"

#define SNAPSHOT_CHUNK 256 /* series encoded at a time for one stream */

typedef struct snapshot_limits {
    uint32_t max_streams; /* snapshots being sent at once, all connections */
    int64_t timeout_ms;   /* a stream that sends nothing this long is abandoned */
} snapshot_limits_t;

typedef struct snapshot_config {
    uv_loop_t *loop;
    engine_t *engine;                /* read */
    publish_t *publish;              /* flushed first, and its sequence taken */
    const intern_t *towns, *metrics; /* the names of series, for prefixes */
    sink_t reply;                    /* the request socket: head is the routing id */
    tallyd_stats_t *stats;
    logger_t *log;
    snapshot_limits_t limits;
} snapshot_config_t;

typedef struct snapshot_stream snapshot_stream_t;

/* The part; embed it, its fields are private. */
typedef struct snapshot {
    snapshot_config_t c;
    snapshot_stream_t *head, *tail; /* streams being sent, in turn */
    uint32_t nstreams;
    uv_idle_t more;   /* streams have work: keep the loop from blocking */
    uv_timer_t retry; /* every stream is blocked: try again shortly */
    msgpack_sbuffer scratch;
    bool closing;
    int open_handles;
    void (*on_closed)(struct snapshot *s);
} snapshot_t;

/* Returns 0 (nothing fails today). */
int snapshot_init(snapshot_t *s, const snapshot_config_t *c);

void snapshot_set_limits(snapshot_t *s, const snapshot_limits_t *l);

/* Start streaming the snapshot SNAPSHOT_REQ (req_id, prefix) asks for to
 * the peer rid[0..rid_len) (prefix and rid are copied).  Pending updates
 * are published first, so S names exactly what came before.  Returns 0;
 * TALLY_EBUSY when max_streams are being sent, or one to this peer;
 * TALLY_ENOMEM. */
int snapshot_request(snapshot_t *s, const void *rid, size_t rid_len, uint64_t req_id,
                     const char *prefix, size_t prefix_len);

/* Snapshots being sent. */
static inline uint32_t snapshot_active(const snapshot_t *s)
{
    return s->nstreams;
}

/* Bytes encoded and not yet sent, all streams together: at most a chunk
 * each. */
size_t snapshot_buffered(const snapshot_t *s);

/* Drop every stream and close the handles; cb (may be NULL) runs on the
 * loop once they are closed. */
void snapshot_close(snapshot_t *s, void (*cb)(snapshot_t *s));

#endif
