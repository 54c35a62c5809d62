/* tallyd.h - the daemon's state: one struct, passed explicitly.
 *
 * Data flows one way: the request socket's zsock hands each message to
 * request.c, which gives submissions to ingest.c (decode, validate,
 * de-duplicate, apply to the engine, acknowledge); publish.c sends the
 * changed tallies, heartbeats and snapshots.  tallyd.c owns the life cycle:
 * configuration, sockets, timers, signals.
 */
#ifndef TALLYD_TALLYD_H
#define TALLYD_TALLYD_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>
#include <uv.h>

#include "ackq.h"
#include "clock.h"
#include "config.h"
#include "dedup.h"
#include "engine.h"
#include "intern.h"
#include "journal.h"
#include "keys.h"
#include "log.h"
#include "notify.h"
#include "proto.h"
#include "publish.h"
#include "ratelimit.h"
#include "stats.h"
#include "zap.h"
#include "zsock.h"

/* What main() parsed from the command line. */
typedef struct tallyd_options {
    const char *config_path; /* NULL: built-in defaults */
    const char *state_dir;   /* NULL: from the config */
    const char *request;     /* NULL: from the config */
    const char *publish;     /* NULL: from the config */
    int log_level;           /* 0: from the config */
} tallyd_options_t;

typedef struct tallyd {
    uv_loop_t *loop;
    logger_t log;
    tallyd_config_t cfg;
    char config_path[CONFIG_PATH_MAX]; /* "" without a file */
    tallyd_options_t opts;             /* the command line, re-applied on reload */
    const tclock_t *clock;             /* &clock_cache.clock */
    clock_cache_t clock_cache;         /* the system clock, read once per loop iteration */

    /* names and tallies */
    intern_t towns;   /* township names -> ids (0 is the county) */
    intern_t metrics; /* metric and ratio names -> ids */
    engine_t engine;
    dedup_t dedup;

    /* sockets */
    void *zctx;
    void *router_sock;
    void *pub_sock;
    zsock_t router;
    zsock_t pub;
    char pub_endpoint[PROTO_ENDPOINT_MAX + 1]; /* as bound (ZMQ_LAST_ENDPOINT) */
    char req_endpoint[PROTO_ENDPOINT_MAX + 1];

    publish_t publish;

    /* security: CURVE on both sockets when [security] server_secret_key is
     * set (fixed until a restart); keys, zap and server_secret are unused
     * otherwise */
    bool secured;
    keyring_t keys; /* the admitted clients; the ZAP handler reads it in place */
    zap_t zap;
    bool zap_open;                         /* zap_init done, zap_close not yet */
    uint8_t server_public[KEYS_KEY_BYTES]; /* for the log */
    uint8_t server_secret[KEYS_KEY_BYTES]; /* held from start-up until the sockets have it */
    ratelimit_t rl;                        /* [limits] rate and burst, per township */

    /* durability */
    journal_t journal;
    bool journal_open;
    ackq_t acks;          /* ACKs waiting for the journal */
    uint64_t last_pos;    /* position of the last record appended */
    uint64_t durable_pos; /* everything up to here is durable */
    uint64_t journal_gen; /* segment being appended to */

    /* checkpoints (recover.c) */
    uv_timer_t ckpt_timer;
    uv_work_t ckpt_work;
    bool ckpt_busy;       /* a checkpoint is being stored */
    uint64_t ckpt_pos;    /* journal position the last checkpoint covers up to */
    int64_t ckpt_mono_ms; /* when it was taken */
    void *ckpt_buf;       /* the image being stored */
    size_t ckpt_len;
    uint64_t ckpt_gen; /* journal generation the last checkpoint starts */
    int ckpt_rc;
    unsigned ckpt_removed;
    char ckpt_err[512];

    /* ingest scratch, reused for every submission */
    proto_sample_t *samples;
    engine_sample_t *esamples;
    msgpack_sbuffer out;

    notify_t notify;           /* systemd's notify socket, if any */
    uv_timer_t watchdog_timer; /* WATCHDOG=1 at half of $WATCHDOG_USEC */
    uv_timer_t status_timer;   /* periodic STATUS= line */
    uint64_t status_last_accepted;
    uv_timer_t tick_timer;
    uv_prepare_t iter_prepare; /* expire clock_cache before polling */
    uv_check_t iter_check;     /* and after the I/O callbacks, before timers */
    uv_signal_t sigint, sigterm, sighup;
    int open_handles;

    int test_stall_ms; /* TALLYD_TEST_STALL_MS: stall the loop once (tests) */
    tallyd_stats_t stats;
    bool stopping;
    int exit_code;
} tallyd_t;

/* Run the daemon until it is stopped; returns the process exit status. */
int tallyd_main(const tallyd_options_t *o);

/* Begin a clean stop (SIGTERM, SIGINT): no new submissions, goodbye to
 * subscribers, close everything; the loop then ends. */
void tallyd_stop(tallyd_t *d, int exit_code);

/* Put the command line's overrides (--state-dir, --request, --publish,
 * --log-level) into cfg.  Returns 0 or TALLY_ECONFIG (logged). */
int tallyd_apply_options(tallyd_t *d, tallyd_config_t *cfg);

/* Check the [security] section of cfg: server_secret_key and the key
 * directories go together (a secret with no directory admits nobody;
 * directories without a secret would not be enforced).  Returns 0, or
 * TALLY_ECONFIG with the reason in err[0..len). */
int tallyd_check_security(const tallyd_config_t *cfg, char *err, size_t len);

/* The largest request frame ZeroMQ delivers on the request socket
 * (ZMQ_MAXMSGSIZE): twice max_msg_bytes.  A frame above max_msg_bytes but
 * within this gets ERROR TOO_LARGE and is counted, so a client that
 * misjudged its size hears why; a larger one makes ZeroMQ drop the
 * connection before tallyd sees it, so no peer makes tallyd hold much more
 * than max_msg_bytes per message. */
static inline int64_t tallyd_frame_limit(const tallyd_config_t *cfg)
{
    return 2 * cfg->max_msg_bytes;
}

/* Read the keys of cfg as a start does: check the [security] section
 * (tallyd_check_security), then read server_secret_key into pub and sec
 * and every key of the key directories into kr (initialised by the
 * caller; on failure it may hold some keys, keyring_free() it either way).
 * Returns 0 without server_secret_key (nothing read), 1 when the keys were
 * read, or TALLY_ECONFIG with the reason, naming the file, in err[0..len). */
int tallyd_load_keys(const tallyd_config_t *cfg, uint8_t pub[KEYS_KEY_BYTES],
                     uint8_t sec[KEYS_KEY_BYTES], keyring_t *kr, char *err, size_t len);

/* Send one reply body to the peer rid[0..rid_len) on the request socket;
 * a peer that is gone or cannot take it is counted, not waited for. */
void tallyd_reply(tallyd_t *d, const void *rid, size_t rid_len, const msgpack_sbuffer *body);

#endif
