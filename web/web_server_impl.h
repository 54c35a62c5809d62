/* web_server_impl.h - tally-web (web/, private to web_server.c and the
 * routes kept in files of their own, web_history.c): the server's state,
 * a session's, and the responses. */
#ifndef TALLY_WEB_SERVER_IMPL_H
#define TALLY_WEB_SERVER_IMPL_H

#include <libwebsockets.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "web_json.h"
#include "web_server.h"

struct web_server {
    uv_loop_t *loop;
    const web_opts_t *opts;
    char address[WEB_SERVER_ADDRESS_MAX]; /* listened on, numeric; "": every address */
    web_feed_t *feed;
    web_stats_t *stats;
    web_counters_t counters;
    web_stream_t stream;
    bool stream_open;
    bool stopping;               /* web_server_quiesce: everything is answered 503 */
    atomic_bool stop_reads;      /* the same, for the history reads' worker threads */
    unsigned reads_queued;       /* history reads on worker threads (web_history.c) */
    struct web_history *history; /* the history reads, running and kept (web_history.c) */
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    int port;
    /* A hash of the token, so that comparing with what a request brings
     * takes the same time whatever it brings. */
    unsigned char token_hash[crypto_generichash_BYTES];
};

/* Per-session data: an HTTP transaction's response, or a browser of the
 * stream once upgraded. */
typedef struct pss {
    /* HTTP: the body still to send. */
    unsigned char *body; /* owned when own */
    size_t len, off;
    bool own;
    bool head; /* a HEAD request: headers only */
    /* A history answer being fetched (web_history.c), perhaps for other
     * sessions too: they wait in a list through read_next. */
    struct history_read *read;
    struct pss *read_next;
    struct lws *read_wsi;
    /* WebSocket. */
    web_stream_client_t client;
} pss_t;

typedef struct header {
    const char *name; /* "location:" */
    const char *value;
} header_t;

/* "cache-control: no-store", for answers that change. */
extern const header_t web_server_no_store;

/* Send status, the extra headers (nheaders of them) and body (len bytes;
 * taken over when own, else it must outlive the response).  Returns 0, or
 * -1 when the connection is to be closed (libwebsockets' convention). */
int web_server_respond(web_server_t *s, struct lws *wsi, pss_t *ps, unsigned status,
                       const char *type, unsigned char *body, size_t len, bool own,
                       const header_t *headers, size_t nheaders);

/* A JSON error {"error":message} with status (and the header extra, may
 * be NULL).  Returns as web_server_respond(). */
int web_server_respond_error(web_server_t *s, struct lws *wsi, pss_t *ps, unsigned status,
                             const char *message, const header_t *extra);

/* 400 for a prefix that begins no topic, naming the forms one takes.
 * Returns as web_server_respond(). */
int web_server_respond_bad_prefix(web_server_t *s, struct lws *wsi, pss_t *ps, const char *prefix);

/* 200 with b's contents (closed here) as type, not to be stored.  Returns
 * as web_server_respond(). */
int web_server_respond_buf(web_server_t *s, struct lws *wsi, pss_t *ps, const char *type,
                           web_buf_t *b);

/* Copy URL argument name ("period=") into buf (cap bytes): 1, 0 when
 * absent, -1 when longer than buf holds (so that a prefix too long is
 * refused, not read as absent, which would mean every series). */
int web_server_urlarg(struct lws *wsi, const char *name, char *buf, size_t cap);

#endif
