/* request.h - the request socket's messages: decode, check who sent them,
 * dispatch.
 *
 * SUBMIT goes to ingest, SNAPSHOT_REQ to snapshot, PERIOD_REQ and
 * RANGE_REQ to recall, BACKUP_REQ to backup (answered when the backup
 * ends: request_backup_end), BACKUP_FETCH and BACKUP_LIST_REQ to
 * backup_fetch (answered BACKUP_CHUNK, BACKUP_LIST or ERROR once the
 * piece or the list is read off the loop); HELLO, PING, STATS_REQ,
 * CLOCK_REQ, CATALOG_REQ (from the catalog view it keeps, set with
 * request_set_catalog) and TOWNSHIPS_REQ (from the engine's series,
 * townlist.h) are answered here; anything else gets an ERROR.  In a
 * secured daemon every message is checked against the keyring in force:
 * a key a reload revoked is refused, a township may not read, a
 * subscriber may not submit, only an admin key may ask for a backup,
 * copy one or list them.  Request is handed the parts it dispatches to,
 * the reply sink and a function that reports every counter; it knows no
 * socket, so the wiring (tallyd_start.c) passes it the frames and User-Id
 * of each message the endpoints received.
 */
#ifndef TALLYD_REQUEST_H
#define TALLYD_REQUEST_H

#include <msgpack.h>

#include "backup.h"
#include "backup_fetch.h"
#include "catalog_view.h"
#include "clock.h"
#include "config.h"
#include "engine.h"
#include "ingest.h"
#include "recall.h"
#include "keys.h"
#include "log.h"
#include "proto.h"
#include "publish.h"
#include "snapshot.h"
#include "sink.h"
#include "stats.h"
#include "townlist.h"

/* Called with each counter or gauge in turn. */
typedef void (*request_stat_fn)(const char *name, int64_t value, void *ctx);

/* The settings request reads; replaced by request_set_limits() on reload. */
typedef struct request_limits {
    int64_t max_samples;      /* per SUBMIT */
    int64_t max_msg_bytes;    /* a larger body gets TOO_LARGE */
    int64_t skew_ms;          /* told in WELCOME */
    int64_t max_age_ms;       /* told in WELCOME */
    int64_t client_expiry_ms; /* told in WELCOME */
} request_limits_t;

/* The limits a configuration sets. */
request_limits_t request_limits_from(const tallyd_config_t *cfg);

typedef struct request_config {
    ingest_t *ingest;
    publish_t *publish;    /* its stream and sequence, for WELCOME and PONG */
    snapshot_t *snapshot;  /* SNAPSHOT_REQ */
    recall_t *recall;      /* PERIOD_REQ, RANGE_REQ; NULL: answered UNKNOWN_TYPE */
    backup_t *backup;      /* BACKUP_REQ; NULL: answered UNKNOWN_TYPE */
    backup_fetch_t *fetch; /* BACKUP_FETCH, BACKUP_LIST_REQ; NULL: answered UNKNOWN_TYPE */
    engine_t *engine;      /* its columns, for WELCOME; its series, for TOWNSHIPS; ticked
                              to the clock before a read (request_handle) */
    const intern_t *towns; /* township names by id, for TOWNSHIPS */
    const keyring_t *keys; /* the keyring in force, read in place; NULL unless secured */
    bool secured;
    const char *pub_endpoint; /* as bound, for WELCOME; borrowed */
    sink_t reply;             /* head is the peer's routing id */
    /* Report every counter and gauge of the daemon to fn (STATS). */
    void (*stats)(void *ctx, request_stat_fn fn, void *fn_ctx);
    void *stats_ctx;
    tallyd_stats_t *counters; /* where bad requests are counted */
    logger_t *log;
    request_limits_t limits;
    const tclock_t *clock; /* CLOCK's now_ms; the engine's time before a read */
    const char *zone;      /* the calendar's zone (CLOCK), the process's TZ; borrowed */
} request_config_t;

/* The most BACKUP_REQs waiting for their backup; one more is answered
 * BUSY. */
#define REQUEST_BACKUP_WAITERS 16

/* A BACKUP_REQ waiting for the backup numbered serial (backup_ask). */
typedef struct request_backup_waiter {
    uint8_t rid[256]; /* the peer's routing id (ZeroMQ's are at most 255 bytes) */
    size_t rid_len;
    uint64_t req_id;
    uint64_t serial;
} request_backup_waiter_t;

struct request;

/* A BACKUP_FETCH or BACKUP_LIST_REQ being read (backup_fetch_begin's or
 * backup_fetch_list_begin's arg); as many as backup_fetch reads at once. */
typedef struct request_fetch {
    struct request *r;
    bool used;
    uint8_t rid[256]; /* the peer's routing id */
    size_t rid_len;
    uint64_t req_id;
    bool first;                    /* file 0 from offset 0: a copy begins, logged */
    char who[PROTO_NAME_MAX + 32]; /* "by admin 'ops'", "(BACKUP_FETCH)" without keys */
} request_fetch_t;

/* The part; embed it, its fields are private. */
typedef struct request {
    request_config_t c;
    proto_sample_t *samples; /* a SUBMIT's samples, decoded */
    msgpack_sbuffer out;
    catalog_view_t catalog; /* what CATALOG_REQ reads */
    townlist_t townlist;    /* what TOWNSHIPS_REQ reads */
    proto_str_t *page;      /* a TOWNSHIPS' names, REQUEST_TOWNSHIPS_PAGE */
    request_backup_waiter_t backup_waiting[REQUEST_BACKUP_WAITERS];
    size_t nbackup_waiting;
    request_fetch_t fetching[BACKUP_FETCH_MAX];
} request_t;

/* The most names in one TOWNSHIPS, and the most township ids one looks
 * at (so that a page of a large county with few townships that have
 * series still takes the loop a moment only). */
#define REQUEST_TOWNSHIPS_PAGE 4096
#define REQUEST_TOWNSHIPS_SCAN 65536

/* Set r up from c (copied; the pointers are borrowed).  Returns 0 or
 * TALLY_ENOMEM (nothing to free then). */
int request_init(request_t *r, const request_config_t *c);

void request_free(request_t *r);

void request_set_limits(request_t *r, const request_limits_t *l);

/* Answer CATALOG_REQ from cfg's catalog (borrowed: it must stay alive and
 * unchanged until the next call or request_free; call again after every
 * reload), followed by the townships a closed catalog no longer declares
 * that have series (catalog_view_held, from the engine and the township
 * names).  Until the first call the catalog is empty.  Returns 0, or
 * TALLY_ENOMEM (the catalog is then empty). */
int request_set_catalog(request_t *r, const tallyd_config_t *cfg);

/* Handle one message from the peer rid[0..rid_len): nframes frames after
 * the routing id, the first of which is body[0..len) (body may be NULL
 * when nframes is 0).  user_id is the ZAP User-Id of the connection (NULL
 * when there is none).  Sends every reply through the reply sink.  Before
 * a request that reads tallies (PERIOD_REQ, RANGE_REQ, SPAN_REQ,
 * SNAPSHOT_REQ) is answered, the engine is ticked to the clock's now when
 * that has reached engine_next_tick_ms(), so that no answer shows a day,
 * a period or a window bucket that has ended but not yet been ticked
 * away. */
void request_handle(request_t *r, const void *rid, size_t rid_len, int nframes, const void *body,
                    size_t len, const char *user_id);

/* A backup ended (backup_config_t.on_end): answer the BACKUP_REQs that
 * waited for it, BACKUP or ERROR UNAVAILABLE with its sentence. */
void request_backup_end(request_t *r, const backup_end_t *e);

/* tallyd is stopping: answer every BACKUP_REQ still waiting with ERROR
 * UNAVAILABLE, while the request socket can still send.  (The
 * BACKUP_FETCHs and BACKUP_LIST_REQs being read are answered the same way
 * by backup_fetch_close(), through the callbacks request handed it.) */
void request_backup_abandon(request_t *r);

#endif
