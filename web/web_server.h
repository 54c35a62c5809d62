/* web_server.h - tally-web (web/): the HTTP(S) and WebSocket server, a
 * libwebsockets context on the caller's libuv loop (a foreign loop to
 * libwebsockets, so that the subscriber, the metrics timer and the server
 * share one thread and one loop).
 *
 * Routes (GET):
 *   /                   the wall display (assets/index.html)
 *   /assets/...         its scripts, styles, ECharts and ECharts' licence
 *   /login              the login page, when a token is required
 *   /api/v1/session     with "Authorization: Bearer TOKEN": 204 and a cookie
 *                       carrying the token, for the display's browser
 *   /api/v1/tallies     ?prefix=P (a topic prefix, default all): the tallies,
 *                       shaped like `tally get --json`; 400 for a bad prefix,
 *                       503 while not synchronised with tallyd
 *   /api/v1/catalog     labels and units of metrics and townships (for now
 *                       {"available":false,...}: the display shows ids)
 *   /api/v1/stream      WebSocket (web_stream.h); 503 past --max-clients
 *   /healthz            200 when synchronised with tallyd, else 503
 *   /metrics            Prometheus text (web_stats.h)
 * Anything else is 404, another method 405.  With a token, every route but
 * /login, /healthz and the login page's script needs it, as a bearer
 * header or the cookie; the display redirects to /login without it.
 * Request headers: a target longer than WEB_SERVER_URI_MAX bytes is
 * answered 414, headers of more than WEB_SERVER_HEADER_MAX bytes in all
 * 431 (both count what libwebsockets parsed: the request line's target
 * and the headers it knows, which are every one a browser sends).  What
 * does not fit libwebsockets' buffer of WEB_SERVER_HEADER_BUF bytes at
 * all is not an HTTP request we can answer: the connection is closed.
 */
#ifndef TALLY_WEB_SERVER_H
#define TALLY_WEB_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "web_feed.h"
#include "web_opts.h"
#include "web_stats.h"
#include "web_stream.h"

#define WEB_SERVER_URI_MAX     2048  /* bytes of a request's target: 414 beyond */
#define WEB_SERVER_HEADER_MAX  8192  /* bytes of request headers: 431 beyond */
#define WEB_SERVER_HEADER_BUF  32768 /* libwebsockets' buffer: closed beyond */
#define WEB_SERVER_ADDRESS_MAX 80    /* a numeric address, an IPv6 zone included */
#define WEB_COOKIE_NAME        "tally_web"

typedef struct web_server web_server_t;

/* Create the server for o on loop, serving feed's picture and stats'
 * metrics, and start listening.  Returns 0 and *out; TALLY_EIO (the
 * socket cannot be bound, the TLS files do not load); TALLY_ENOMEM; err
 * (errlen bytes) says why. */
int web_server_start(web_server_t **out, uv_loop_t *loop, const web_opts_t *o, web_feed_t *feed,
                     web_stats_t *stats, char *err, size_t errlen);

/* The port the server listens on (the one the kernel chose for port 0). */
int web_server_port(const web_server_t *s);

/* The address the server listens on, numeric ("127.0.0.1", "::1"; the
 * one --listen's host name resolved to that could be bound), or "" for
 * every address.  Owned by s. */
const char *web_server_address(const web_server_t *s);

/* The feed changed: pass it on to the browsers. */
void web_server_feed_changed(web_server_t *s);

/* Stopping, first step: every request from now on is answered 503, the
 * browsers' stream stops and no history read is started (one under way
 * finishes on its worker thread). */
void web_server_quiesce(web_server_t *s);

/* Whether a history read is still under way on a worker thread. */
bool web_server_busy(const web_server_t *s);

/* Close every connection and the listening socket; run the loop until
 * its handles are closed, then web_server_free.  Call it only when no
 * other thread of the process can open a file descriptor (see main.c):
 * libwebsockets closes one of its descriptors twice on the way. */
void web_server_stop(web_server_t *s);

/* Free what the server owns; *s = NULL. */
void web_server_free(web_server_t **s);

#endif
