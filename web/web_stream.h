/* web_stream.h - tally-web (web/): the WebSocket /api/v1/stream.
 *
 * Each browser gets a snapshot of every tally once the feed is
 * synchronised, then updates: the tallies changed since what it was last
 * sent, with the sequence number and stream id they bring it to.  Updates
 * are conflated: a browser gets at most WEB_STREAM_MAX_RATE messages a
 * second however fast tallyd publishes, and a slow one is never queued
 * more than one message (a browser is written only when its connection
 * can take more, and then gets everything it lacks in one message).
 * A message is built once per tick (1/WEB_STREAM_MAX_RATE s) for every
 * browser at the same point, even when the feed moves on during the tick:
 * browsers kept in step share one message instead of each costing a
 * build of its own; what came meanwhile goes out at the next tick.
 * When the feed loses synchronisation, and every WEB_STREAM_HEARTBEAT_MS
 * otherwise, a status message says whether the picture is current.
 * A browser that connects while the feed holds figures it no longer
 * keeps current (web_feed_stale: tallyd stopped) is sent them at once, as
 * a snapshot with "synced":false, and a real snapshot once synchronised
 * again; every message says since when the figures are stale
 * (stale_since_ms) while they are.
 *
 * Messages (JSON text frames):
 *   {"type":"snapshot","stream_id":N,"seq":N,"synced":true,"time_ms":T,"history_gen":G,"tallies":[...]}
 *   {"type":"update","stream_id":N,"seq":N,"from_seq":N,"synced":true,"time_ms":T,"history_gen":G,"tallies":[...]}
 *   {"type":"status","stream_id":N,"seq":N,"synced":B,"time_ms":T,"history_gen":G}
 * with ,"stale_since_ms":T after "tallyd" while the figures are stale.
 * Tallies have the shape of `tally get --json` plus their "seq".
 * history_gen grows whenever tallyd says closed periods changed
 * (PERIOD_CHANGED): a page showing past periods reads them again when it
 * changes; a browser is sent a status message for that alone.
 */
#ifndef TALLY_WEB_STREAM_H
#define TALLY_WEB_STREAM_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "web_feed.h"
#include "web_stats.h"

#define WEB_STREAM_MAX_RATE     10   /* messages a second per browser */
#define WEB_STREAM_HEARTBEAT_MS 5000 /* a status message at least this often */
#define WEB_STREAM_CACHE        4    /* update messages kept for browsers at the same point */

/* What the stream knows of one browser (inside libwebsockets' per-session
 * data). */
typedef struct web_stream_client {
    struct lws *wsi;
    struct web_stream_client *prev, *next;
    uint64_t epoch;       /* the feed epoch of the last snapshot sent; 0: none */
    uint64_t seq;         /* the feed seq it has everything up to */
    int sent_synced;      /* the sync state last told: -1 none, 0, 1 */
    int sent_link;        /* the feed's link last told (enum web_link), -1 none */
    uint64_t history_gen; /* the feed's history_gen last told */
    int64_t last_send_ms; /* monotonic */
    bool held_sent;       /* sent the figures held while stale (its epoch stays 0) */
} web_stream_client_t;

/* A message built once for every browser at the same point. */
typedef struct web_stream_msg {
    uint64_t epoch, from, to, history_gen;
    uint64_t tick;      /* the stream's tick it was built in */
    bool held;          /* a snapshot of the figures held while stale */
    unsigned char *buf; /* LWS_PRE bytes of room, then len bytes of JSON */
    size_t len;
} web_stream_msg_t;

typedef struct web_stream {
    web_feed_t *feed;
    web_counters_t *counters;
    uv_timer_t tick; /* while browsers are connected */
    bool ticking;
    web_stream_client_t *clients;
    unsigned nclients;
    uint64_t tick_no; /* +1 every 1/WEB_STREAM_MAX_RATE s */
    web_stream_msg_t snapshot;
    web_stream_msg_t updates[WEB_STREAM_CACHE];
    unsigned next_update;
} web_stream_t;

/* Set st up on loop for feed, counting into counters.  Returns 0 or
 * TALLY_ESYS. */
int web_stream_init(web_stream_t *st, uv_loop_t *loop, web_feed_t *feed, web_counters_t *counters);

/* Close the timer and free the cached messages (browsers are gone by
 * then: libwebsockets closed them). */
void web_stream_close(web_stream_t *st);

/* A browser connected (c zeroed by the caller) / went away. */
void web_stream_add(web_stream_t *st, web_stream_client_t *c, struct lws *wsi);
void web_stream_remove(web_stream_t *st, web_stream_client_t *c);

/* c's connection can take a message: send it the one it is due, if any.
 * Returns 0, or -1 when the connection must be closed. */
int web_stream_writable(web_stream_t *st, web_stream_client_t *c);

/* The feed changed: browsers get what is new at their next turn. */
void web_stream_feed_changed(web_stream_t *st);

#endif
