/* recall.h - answers to PERIOD_REQ, RANGE_REQ and SPAN_REQ (PROTOCOL.md
 * 8.18-8.21, 8.24): the tallies of one calendar period, one series period
 * by period, and the tallies of a span of days.
 *
 * The current period of each type reads a counter (and a ratio of
 * counters) from the engine's calendar column (exact since the daemon's
 * first record), a gauge (and a ratio with a gauge operand) from the
 * history, which keeps the current periods' cells too (the engine's
 * calendar columns have no gauge values); a closed one from the history
 * (history.h).  A span is cut into whole periods (calperiod_split) read
 * the same way and put together: a counter's sum, a township gauge's
 * value of the latest of them that has one, the county's gauge the sum of
 * those of its townships, a ratio from its operands' values for the
 * span.  Recall only reads: the engine, the history and the name
 * tables are the daemon's, lent for the answers.
 */
#ifndef TALLYD_RECALL_H
#define TALLYD_RECALL_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <uv.h>

#include "calperiod.h"
#include "engine.h"
#include "history.h"
#include "intern.h"
#include "proto.h"
#include "publish.h"
#include "sink.h"

#define RECALL_BATCH   512 /* PERIOD items sent per loop iteration */
#define RECALL_PENDING 16  /* answers under way at once; more get BUSY */
/* History reads per loop iteration for the county's gauges of a span: the
 * sum of every township's latest value (a country: 40,000 townships x
 * the span's parts), done in slices so that it never holds the loop
 * long. */
#define RECALL_SWEEP_READS 4096

typedef struct recall_config {
    uv_loop_t *loop; /* answers go out a batch per loop iteration */
    const engine_t *engine;
    history_t *history; /* read; history_read() settles its pending sums */
    const intern_t *towns, *metrics;
    const publish_t *publish; /* the sequence number the answers carry */
    const tclock_t *clock;
    sink_t reply;       /* head is the peer's routing id */
    uint32_t max_items; /* series in one PERIOD answer, 0 = no limit */
    /* The id a catalog name or label stands for (NULL: none), for the
     * message of an unknown one: the ingest's tables (may be NULL). */
    const char *(*named)(const void *ctx, proto_str_t name, bool township);
    const void *named_ctx;
    uint32_t sweep_reads; /* per loop iteration, 0 = RECALL_SWEEP_READS */
} recall_config_t;

/* A county gauge's value over a span, read township by township across
 * loop iterations before the answer goes out. */
typedef struct recall_sweep {
    uint32_t metric;
    calperiod_t with[CALPERIOD_PARTS_MAX]; /* the parts where some township has a value */
    size_t m;
    uint32_t next_town; /* the next township to read (ids from 1) */
    int64_t sum;
    bool any, overflow;
} recall_sweep_t;

/* A PERIOD answer under way: its series, sent RECALL_BATCH at a time. */
typedef struct recall_job {
    struct recall_job *next;
    uint8_t rid[256];
    size_t rid_len;
    uint64_t req_id;
    calperiod_t period;
    bool span; /* SPAN_REQ: the days first..last, not period */
    int32_t first, last;
    engine_item_t *items;
    size_t nitems, sent;
    recall_sweep_t *sweeps; /* a span's county gauges, set up at its first turn */
    size_t nsweeps;
    bool swept; /* the sweeps are done (or none was needed) */
} recall_job_t;

typedef struct recall {
    recall_config_t c;
    msgpack_sbuffer out;
    engine_item_t *items; /* collecting the series of a new answer */
    size_t nitems, cap;
    recall_job_t *head, *tail; /* answers under way, oldest first */
    unsigned pending;
    uv_idle_t idle; /* runs while answers are under way */
    bool closing;
    void (*on_closed)(struct recall *r);
} recall_t;

/* Set r up (its idle handle on c->loop).  Returns 0 or TALLY_ESYS. */
int recall_init(recall_t *r, const recall_config_t *c);

/* Drop the answers under way and close the handle; cb runs once it is
 * closed (then call recall_free). */
void recall_close(recall_t *r, void (*cb)(recall_t *r));
void recall_free(recall_t *r);

/* Answer PERIOD_REQ m from peer rid: the answer is checked and its series
 * chosen now, and sent RECALL_BATCH items per loop iteration, so that a
 * large one never holds ingest up (each item is read when it is sent).
 * Returns 0 when answered (or under way), TALLY_EBUSY with RECALL_PENDING
 * answers under way, or a
 * negative wire code with the field and a sentence in field/msg for the
 * caller to send as ERROR (BAD_PERIOD, PERIOD_EXPIRED, UNKNOWN_TOWNSHIP,
 * UNKNOWN_METRIC, TOO_LARGE when more than max_items series match, so
 * that one answer neither holds the loop long nor overruns the peer's
 * reply queue, or BUSY when out of memory). */
int recall_period(recall_t *r, const void *rid, size_t rid_len, const proto_msg_t *m,
                  const char **field, char *msg, size_t msglen);

/* Answer SPAN_REQ m likewise (its errors those of recall_period; a day
 * of the span no longer kept, where its cut needs one, PERIOD_EXPIRED). */
int recall_span(recall_t *r, const void *rid, size_t rid_len, const proto_msg_t *m,
                const char **field, char *msg, size_t msglen);

/* Answer RANGE_REQ m likewise. */
int recall_range(recall_t *r, const void *rid, size_t rid_len, const proto_msg_t *m,
                 const char **field, char *msg, size_t msglen);

/* The value of (metric, town) in period p into *out: the engine's column
 * for the current period of a counter, the history for a closed one and
 * for a gauge's current one, no value for a day no longer kept. */
void recall_value(const recall_t *r, uint32_t metric, uint32_t town, calperiod_t p,
                  engine_value_t *out);

/* The value of (metric, town) over parts[0..n), a span cut by
 * calperiod_split(), into *out (the rules in the header; a counter whose
 * sum would leave int64 reads "no value"). */
void recall_span_value(const recall_t *r, uint32_t metric, uint32_t town, const calperiod_t *parts,
                       size_t n, engine_value_t *out);

#endif
