/* web_stats.h - tally-web (web/): Prometheus metrics, tallyd's STATS
 * counters and tally-web's own, as the text exposition format 0.0.4.
 *
 * tallyd's counters are asked for over the request socket
 * (tally_stats_req) every few seconds on a libuv worker thread, so that a
 * slow or absent daemon never holds up the loop; /metrics serves the last
 * answer.  The same poll reads tallyd's catalog (tally_catalog_req) as the
 * JSON /api/v1/catalog serves, so that a reload's new labels show, and
 * tallyd's clock and calendar zone (tally_clock_req) as /api/v1/clock
 * serves, so that the wall's clock and "today" are the daemon's.
 * Everything else here runs on the loop.
 */
#ifndef TALLY_WEB_STATS_H
#define TALLY_WEB_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "tally.h"

#define WEB_STATS_MAX         256 /* counters in one STATS (PROTOCOL.md limit) */
#define WEB_STATS_NAME_MAX    64
#define WEB_STATS_INTERVAL_MS 5000
#define WEB_STATS_TIMEOUT_MS  2000

typedef struct web_stat {
    char name[WEB_STATS_NAME_MAX + 1];
    int64_t value;
} web_stat_t;

/* One poll's results. */
typedef struct web_stats_set {
    web_stat_t v[WEB_STATS_MAX];
    size_t n;
    int rc; /* tally_stats_req's return */
    char err[256];
    char *catalog_json;       /* the catalog for the display (malloc'ed), or NULL */
    tally_catalog_t *catalog; /* the same, as read (owned), or NULL */
    tally_clock_t clock;
    bool have_clock;       /* tallyd answered CLOCK_REQ */
    int64_t clock_skew_ms; /* its now_ms minus this machine's clock half-way through */
} web_stats_set_t;

/* tally-web's own counters, kept by the parts that count. */
typedef struct web_counters {
    uint64_t browsers;          /* WebSocket clients connected now */
    uint64_t browsers_refused;  /* WebSocket upgrades refused with 503 (the cap) */
    uint64_t ws_messages;       /* WebSocket messages sent */
    uint64_t http_requests;     /* HTTP requests answered */
    uint64_t http_unauthorized; /* answered 401 */
    uint64_t history_reads;     /* history questions asked of tallyd (web_history.h) */
    uint64_t history_shared;    /* history requests answered by another's read */
} web_counters_t;

typedef struct web_stats {
    uv_loop_t *loop;
    const char *server;         /* not owned */
    const tally_curve_t *curve; /* not owned; NULL: plaintext */
    uv_timer_t timer;
    uv_work_t work;
    bool busy;     /* a poll is under way on a worker thread */
    bool stopping; /* web_stats_stop was called */
    bool closed;
    web_stats_set_t polling; /* written by the worker thread only while busy */
    web_stats_set_t last;    /* the last complete answer, on the loop */
    bool have_last;
    uint64_t polls, failures;
    int last_rc;              /* the last poll's tally_stats_req return */
    int64_t last_ok_ms;       /* wall clock of the last answer, 0: none */
    char *catalog_json;       /* the last catalog read (CATALOG_REQ), or NULL */
    tally_catalog_t *catalog; /* the same catalog, to look names up in, or NULL */
    tally_clock_t clock;      /* the last clock read (CLOCK_REQ), when have_clock */
    bool have_clock;
    int64_t clock_skew_ms; /* tallyd's clock minus ours at that read */
} web_stats_t;

/* Start polling tallyd at server every WEB_STATS_INTERVAL_MS (the first
 * poll at once).  Returns 0 or TALLY_ESYS. */
int web_stats_start(web_stats_t *s, uv_loop_t *loop, const char *server,
                    const tally_curve_t *curve);

/* Stop the timer and close it; a poll under way finishes on its thread
 * (tally_stats_req's timeout bounds it) and is dropped. */
void web_stats_stop(web_stats_t *s);

/* Whether a poll is under way on a worker thread. */
bool web_stats_busy(const web_stats_t *s);

/* What tally-web knows of its feed, for the exposition. */
typedef struct web_stats_feed {
    bool synced;
    uint64_t resyncs;
    uint64_t tallies;
    uint64_t seq;
    int link; /* tallyd's connection (enum web_link, web_feed.h) */
} web_stats_feed_t;

/* Write the exposition: tally-web's metrics (tally_web_*), tallyd's
 * clock against this machine's and its zone's offset (once tallyd answered
 * CLOCK_REQ), and tallyd's counters as its last STATS gave them, named as
 * tallyd names them, each with HELP and TYPE (what it is, from a table in
 * web_stats.c).  tallyd's counters are left out while the last STATS
 * request failed: tally_web_tallyd_up is 0 then, and
 * tally_web_stats_age_seconds says how old the last answer is. */
void web_stats_write(const web_stats_t *s, const web_counters_t *c, const web_stats_feed_t *feed,
                     FILE *out);

/* The catalog as JSON for the display:
 * {"available":true,"metrics":[{"id","label","unit","kind","scale"}...],
 *  "ratios":[],"townships":[{"id","label","type"}...]}, metrics (ratios
 * included) in catalog order; NULL until tallyd answered (or when it
 * predates the catalog request). */
static inline const char *web_stats_catalog(const web_stats_t *s)
{
    return s->catalog_json;
}

/* The last catalog read, to look ids, names and labels up in (valid on
 * the loop until the next poll's answer), or NULL as web_stats_catalog. */
static inline const tally_catalog_t *web_stats_catalog_read(const web_stats_t *s)
{
    return s->catalog;
}

/* tallyd's calendar zone as JSON for the display:
 * {"available":true,"zone":"Asia/Shanghai","utc_offset_s":28800,
 *  "now_ms":...} (now_ms: tallyd's clock when it was last read, every
 * WEB_STATS_INTERVAL_MS while it answers; the last answer stays while it
 * does not), or {"available":false} until tallyd answered (or when it
 * predates CLOCK_REQ).  Into buf of cap bytes. */
void web_stats_clock_json(const web_stats_t *s, char *buf, size_t cap);

/* True when name is a valid Prometheus metric name. */
bool web_stats_name_ok(const char *name);

#endif
