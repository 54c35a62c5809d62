/* web_feed.h - tally-web (web/): the picture of the county, kept current by
 * libtally's subscriber (snapshot, then sequenced updates; a new snapshot
 * after gaps, daemon restarts, GOODBYE and silence) on a libuv loop.
 *
 * The subscriber's two sockets are watched with uv_poll and its timers
 * with a uv_timer, so the feed never blocks the loop.  The table itself is
 * the subscriber's (tally_sub_foreach); the feed adds what the web side
 * needs to send browsers only what changed: an epoch that grows with
 * every new snapshot, and the highest sequence number applied.
 */
#ifndef TALLY_WEB_FEED_H
#define TALLY_WEB_FEED_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "tally.h"

typedef struct web_feed web_feed_t;

/* tallyd's connection as tally-web tells /healthz and the browsers. */
enum web_link {
    WEB_LINK_CONNECTING = 0, /* not up yet, or lost: nothing more known */
    WEB_LINK_UP,             /* connected, handshake done */
    WEB_LINK_REFUSED,        /* connections refused for a second: tallyd not running */
    WEB_LINK_UNREACHABLE,    /* the network does not reach tallyd (link_why says how) */
    WEB_LINK_HANDSHAKE,      /* the security handshake failed (keys) */
};

/* "connecting", "up", "refused", "unreachable", "handshake_failed". */
const char *web_feed_link_name(int link);

/* Called on the loop after the feed has applied something: tallies
 * changed, closed periods changed (history_gen), or it lost or regained
 * synchronisation. */
typedef void (*web_feed_cb)(void *ctx);

struct web_feed {
    uv_loop_t *loop;
    tally_sub_t *sub;
    uv_poll_t poll[2];
    uv_timer_t timer;
    int nopen; /* handles still to close */
    web_feed_cb on_change;
    void *ctx;
    /* What the web side reads (and nobody else writes). */
    uint64_t epoch;       /* +1 at every new snapshot (on_reset) */
    uint64_t seq;         /* highest seq applied in this epoch */
    uint64_t stream_id;   /* of the daemon run the table comes from */
    uint64_t history_gen; /* +1 at every PERIOD_CHANGED: closed periods changed */
    bool synced;          /* tally_sub_synced, as of the last processing */
    bool ever_synced;
    uint64_t resyncs;     /* snapshots applied after the first */
    uint64_t snapshots;   /* snapshots applied */
    int refusal;          /* the daemon's last refusal (tally_sub_refusal), 0: none */
    int64_t synced_at_ms; /* wall clock of the last on_synced */
    /* Wall clock when synchronisation was last lost: the table still
     * holds the figures of then (tally_sub_foreach), which the web side
     * serves marked stale rather than nothing (see web_feed_stale). */
    int64_t unsynced_at_ms;
    bool refused_said;     /* the log said that connections to tallyd are refused */
    bool unreachable_said; /* the log said that the network does not reach tallyd */
    int handshake_said;    /* the failed handshake the log said (enum tally_link), 0: none */
    int link;              /* enum web_link, as of the last processing */
    char link_why[160];    /* with WEB_LINK_UNREACHABLE: why (tally_sub_link_why) */
    char server[TALLY_ENDPOINT_MAX];
};

/* Create the subscriber for every tally ("u/") of the daemon at server
 * (curve NULL: plaintext) and start watching it on loop; on_change runs
 * with ctx after each batch of changes.  Returns 0; the codes of
 * tally_sub_new() (err, errlen receive the reason); TALLY_ESYS when a
 * libuv handle cannot be set up. */
int web_feed_start(web_feed_t *f, uv_loop_t *loop, const char *server, const tally_curve_t *curve,
                   web_feed_cb on_change, void *ctx, char *err, size_t errlen);

/* Stop watching and close the handles; the subscriber is destroyed once
 * they are closed (run the loop until then). */
void web_feed_stop(web_feed_t *f);

/* Whether the subscriber is gone (after web_feed_stop, once its handles
 * closed): its ZeroMQ context terminated, its threads joined. */
bool web_feed_closed(const web_feed_t *f);

/* Whether the table holds figures that are no longer kept current: it
 * was synchronised once and is not now (tallyd stopped, the network
 * down, a re-synchronisation under way); they are as of
 * f->unsynced_at_ms. */
bool web_feed_stale(const web_feed_t *f);

/* Whether prefix names a township (u/town/T/...) or a metric
 * (u/county/M/..., u/town/T/M/...) that tallyd does not know, as tallyd
 * decides for /api/v1/period: a name is known when the catalog cat
 * declares it or the table holds a tally of it.  When so, msg (msglen
 * bytes) says which name, and the id to ask for when it is a township's
 * name or a metric's label in the catalog ("高观镇": "gaoguan").  false
 * when cat is NULL (not read yet): a declared name without tallies
 * cannot be told from a typo then. */
bool web_feed_unknown_name(const web_feed_t *f, const tally_catalog_t *cat, const char *prefix,
                           char *msg, size_t msglen);

/* Call fn for every tally whose topic starts with prefix ("" for all). */
void web_feed_foreach(const web_feed_t *f, const char *prefix, tally_tally_cb fn, void *ctx);

#endif
