/* publish.h - the last step of the daemon: changed tallies out to
 * subscribers, and heartbeats.
 *
 * Every changed series (and ratio scope) is published once per publish
 * tick (conflated), or at the end of every loop iteration that changed
 * something when the interval is 0, each with the next server sequence
 * number.  Snapshots for subscribers that join late are snapshot.h's.
 *
 * Publish reads the engine (and takes its dirty marks) and the name
 * tables; it sends through the publish socket's sink it is handed, and
 * runs its timers on the loop.
 */
#ifndef TALLYD_PUBLISH_H
#define TALLYD_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <uv.h>

#include "calperiod.h"

#include "clock.h"
#include "engine.h"
#include "intern.h"
#include "log.h"
#include "sink.h"
#include "stats.h"

#define PUBLISH_BATCH 1024
/* A subscriber that joins gets a heartbeat at once (it waits for one
 * before asking for a snapshot), but at most one such prompt heartbeat
 * goes out per PUBLISH_PROMPT_MS: joiners within that time share the next
 * one, so a peer subscribing in a loop cannot make tallyd flood every
 * subscriber. */
#define PUBLISH_PROMPT_MS 100

/* Series whose PERIOD_CHANGED may wait for the next round; beyond that
 * they are sent at once. */
#define PUBLISH_CHANGED_MAX 65536

typedef struct publish_config {
    uv_loop_t *loop;
    engine_t *engine; /* read, and its dirty marks taken */
    const intern_t *towns;
    const intern_t *metrics;
    sink_t pub; /* the publish socket: head is the topic */
    tallyd_stats_t *stats;
    logger_t *log;
    const tclock_t *clock;
    int64_t interval_ms;  /* conflation tick; 0: at the end of every loop iteration */
    int64_t heartbeat_ms; /* > 0 */
    uint64_t seq;         /* the last sequence number used (from the checkpoint) */
} publish_config_t;

/* The part; embed it, its fields are private. */
typedef struct publish {
    publish_config_t c;
    uint64_t stream_id;   /* random per daemon start */
    uint64_t seq;         /* last sequence number used */
    uv_timer_t tick;      /* conflation tick (interval > 0) */
    uv_timer_t heartbeat; /* heartbeats */
    uv_timer_t prompt;    /* the next prompt heartbeat, when one is due */
    uint64_t last_prompt; /* loop time of the last prompt heartbeat */
    bool prompt_due;
    uv_check_t immediate; /* publish at the end of each iteration (interval 0) */
    uv_idle_t more;       /* a round is not finished: keep the loop from blocking */
    uint32_t round_left;  /* series of the current round still to publish */
    msgpack_sbuffer scratch;
    /* PERIOD_CHANGED waiting for the next round: one entry per series,
     * its changed periods gathered (conflated like the UPDATEs). */
    struct publish_changed *changed;
    size_t nchanged, changed_cap;
    uint32_t *changed_index; /* entry + 1, 0 = empty; open addressing */
    uint32_t changed_mask;
    bool closing;
    int open_handles;
    void (*on_closed)(struct publish *p);
} publish_t;

/* Start publishing from c (copied; the pointers in it are borrowed): pick
 * the stream id and start the timers.  Returns 0 (nothing fails today;
 * the code is there for the convention).  Close with publish_close(). */
int publish_init(publish_t *p, const publish_config_t *c);

/* Restart the tick and heartbeat timers with new intervals (a reload);
 * what is pending is published first. */
void publish_set_timing(publish_t *p, int64_t interval_ms, int64_t heartbeat_ms);

/* The stream id and the last sequence number used. */
static inline uint64_t publish_stream_id(const publish_t *p)
{
    return p->stream_id;
}
static inline uint64_t publish_seq(const publish_t *p)
{
    return p->seq;
}

/* The tally of (metric, town) from its values v, with seq, into *t (whose
 * names point into the name tables). */
void publish_fill_tally(const publish_t *p, uint32_t metric, uint32_t town,
                        const engine_values_t *v, uint64_t seq, proto_tally_t *t);

/* Publish every changed tally now, in one go. */
void publish_changes(publish_t *p);

/* Start a round: publish the tallies changed so far, PUBLISH_BATCH series
 * per loop iteration, so that requests are served in between.  When
 * changes come faster than that, series wait marked dirty and are
 * published later with their newest values (conflated), instead of
 * stalling ingest or overflowing the subscribers' queues. */
void publish_round(publish_t *p);

/* A subscription (data[0] == 1) or unsubscription (0) of the prefix
 * data[1..len) was applied: a subscription to the heartbeat topic (a
 * subscriber joining) gets a prompt heartbeat, see PUBLISH_PROMPT_MS. */
void publish_on_subscription(publish_t *p, const void *data, size_t len);

/* Publish what is pending, then GOODBYE: the daemon stops cleanly. */
void publish_goodbye(publish_t *p);

/* Tell the subscribers of series (metric, town) that a submission changed
 * its closed periods periods[0..n) (PERIOD_CHANGED, PROTOCOL.md 8.22), at
 * the next round, together with every other period of the series changed
 * until then (8 periods per message).  It takes no sequence number of its
 * own. */
void publish_period_changed(publish_t *p, uint32_t metric, uint32_t town,
                            const calperiod_t *periods, uint32_t n);

/* Stop the timers; cb (may be NULL) runs on the loop once every handle is
 * closed, after which p may be freed. */
void publish_close(publish_t *p, void (*cb)(publish_t *p));

#endif
