/* web_server.c - tally-web (web/): the libwebsockets context, its routes,
 * access control and responses (the history's routes: web_history.c). */
#include "web_server.h"

#include <errno.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "text.h"
#include "vec.h"
#include "web_assets.h"
#include "web_history.h"
#include "web_json.h"
#include "web_log.h"
#include "web_server_impl.h"

/* ---- responses ------------------------------------------------------- */

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

/* The status line and the headers every answer has.  Returns 0, or -1
 * when they do not fit between *p and end. */
static int common_headers(struct lws *wsi, unsigned status, const char *type, size_t len,
                          unsigned char **p, unsigned char *end)
{
    if (lws_add_http_common_headers(wsi, status, type, len, p, end) != 0 ||
        add_header(wsi, "x-content-type-options:", "nosniff", p, end) != 0 ||
        add_header(wsi, "referrer-policy:", "no-referrer", p, end) != 0 ||
        add_header(wsi, "content-security-policy:",
                   "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                   "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
                   p, end) != 0)
        return -1;
    return 0;
}

int web_server_respond(web_server_t *s, struct lws *wsi, pss_t *ps, unsigned status,
                       const char *type, unsigned char *body, size_t len, bool own,
                       const header_t *headers, size_t nheaders)
{
    unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof buf - 1;
    s->counters.http_requests++;
    if (status == HTTP_STATUS_UNAUTHORIZED)
        s->counters.http_unauthorized++;
    if (common_headers(wsi, status, type, len, &p, end) != 0) {
        if (own)
            free(body);
        return -1;
    }
    for (size_t i = 0; i < nheaders; i++) {
        if (add_header(wsi, headers[i].name, headers[i].value, &p, end) != 0) {
            if (own)
                free(body);
            return -1;
        }
    }
    if (lws_finalize_write_http_header(wsi, start, &p, end) != 0) {
        if (own)
            free(body);
        return -1;
    }
    if (len == 0 || ps->head) {
        if (own)
            free(body);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    ps->body = body;
    ps->len = len;
    ps->off = 0;
    ps->own = own;
    lws_callback_on_writable(wsi);
    return 0;
}

static void body_free(pss_t *ps)
{
    if (ps->own)
        free(ps->body);
    ps->body = NULL;
    ps->len = ps->off = 0;
    ps->own = false;
}

/* Send the next piece of the body. */
static int write_body(struct lws *wsi, pss_t *ps)
{
    if (ps->body == NULL)
        return 0;
    unsigned char buf[LWS_PRE + 16384];
    size_t n = ps->len - ps->off;
    if (n > sizeof buf - LWS_PRE)
        n = sizeof buf - LWS_PRE;
    memcpy(buf + LWS_PRE, ps->body + ps->off, n);
    bool last = ps->off + n == ps->len;
    if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n) {
        body_free(ps);
        return -1;
    }
    ps->off += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    body_free(ps);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

const header_t web_server_no_store = {"cache-control:", "no-store"};

/* {"error":message} into b (opened here).  0, or -1 out of memory. */
static int error_body(web_buf_t *b, const char *message)
{
    if (web_buf_open(b) != 0)
        return -1;
    fputs("{\"error\":", b->f);
    web_json_string(b->f, message);
    fputs("}\n", b->f);
    return web_buf_close(b) != 0 ? -1 : 0;
}

int web_server_respond_error(web_server_t *s, struct lws *wsi, pss_t *ps, unsigned status,
                             const char *message, const header_t *extra)
{
    web_buf_t b;
    if (error_body(&b, message) != 0)
        return -1;
    header_t h[2] = {web_server_no_store};
    size_t nh = 1;
    if (extra != NULL)
        h[nh++] = *extra;
    return web_server_respond(s, wsi, ps, status, "application/json", (unsigned char *)b.data,
                              b.len, true, h, nh);
}

/* Whether path is one of the API's (JSON), not a page for a person. */
static bool api_path(const char *path)
{
    return strncmp(path, "/api/", 5) == 0 || strcmp(path, "/metrics") == 0 ||
           strcmp(path, "/healthz") == 0;
}

/* 400 for a request libwebsockets read wrong: JSON for the API, a line of
 * text for the pages. */
static int respond_bad_request(web_server_t *s, struct lws *wsi, pss_t *ps, const char *path,
                               const char *why)
{
    if (api_path(path))
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_BAD_REQUEST, why, NULL);
    char *text = NULL;
    if (asprintf(&text, "400 Bad Request: %s\n", why) < 0)
        return -1;
    header_t h = web_server_no_store;
    return web_server_respond(s, wsi, ps, HTTP_STATUS_BAD_REQUEST, "text/plain; charset=utf-8",
                              (unsigned char *)text, strlen(text), true, &h, 1);
}

int web_server_respond_bad_prefix(web_server_t *s, struct lws *wsi, pss_t *ps, const char *prefix)
{
    web_buf_t b;
    if (web_buf_open(&b) != 0)
        return -1;
    fputs("prefix ", b.f);
    web_json_string(b.f, prefix);
    fputs(" begins no topic: use \"\", \"u/county/\", \"u/county/METRIC/\", \"u/town/\", "
          "\"u/town/TOWNSHIP/\" or \"u/town/TOWNSHIP/METRIC/\" (ids, not labels)",
          b.f);
    if (web_buf_close(&b) != 0)
        return -1;
    int rc = web_server_respond_error(s, wsi, ps, HTTP_STATUS_BAD_REQUEST, b.data, NULL);
    free(b.data);
    return rc;
}

int web_server_respond_buf(web_server_t *s, struct lws *wsi, pss_t *ps, const char *type,
                           web_buf_t *b)
{
    if (web_buf_close(b) != 0)
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_INTERNAL_SERVER_ERROR,
                                        "out of memory", NULL);
    return web_server_respond(s, wsi, ps, HTTP_STATUS_OK, type, (unsigned char *)b->data, b->len,
                              true, &web_server_no_store, 1);
}

/* ---- access ---------------------------------------------------------- */

static bool token_matches(const web_server_t *s, const char *given)
{
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof h, (const unsigned char *)given, strlen(given), NULL, 0);
    return sodium_memcmp(h, s->token_hash, sizeof h) == 0;
}

/* The request's bearer token matches. */
static bool bearer_ok(const web_server_t *s, struct lws *wsi)
{
    char buf[WEB_TOKEN_MAX + 16];
    if (lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION) <= 7)
        return false;
    if (strncasecmp(buf, "Bearer ", 7) != 0)
        return false;
    return token_matches(s, buf + 7);
}

static bool authorized(const web_server_t *s, struct lws *wsi)
{
    if (s->opts->token == NULL)
        return true;
    if (bearer_ok(s, wsi))
        return true;
    char buf[WEB_TOKEN_MAX + 1];
    size_t max = sizeof buf;
    return lws_http_cookie_get(wsi, WEB_COOKIE_NAME, buf, &max) == 0 && token_matches(s, buf);
}

/* A browser page may open a WebSocket to any site; only pages of this
 * server may open ours (the cookie would otherwise let any site read the
 * figures).  Clients that are not browsers send no Origin. */
static bool origin_ok(struct lws *wsi)
{
    char origin[512], host[256];
    if (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0)
        return true;
    if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0)
        return false;
    const char *o = strstr(origin, "://");
    return o != NULL && strcmp(o + 3, host) == 0;
}

/* ---- routes ---------------------------------------------------------- */

typedef struct collect {
    const tally_tally_t **v;
    size_t n, cap;
    bool oom;
} collect_t;

static void collect_one(void *ctx, const tally_tally_t *t)
{
    collect_t *c = ctx;
    if (c->oom)
        return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        const tally_tally_t **v = realloc(c->v, cap * sizeof *v);
        if (v == NULL) {
            c->oom = true;
            return;
        }
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = t;
}

int web_server_urlarg(struct lws *wsi, const char *name, char *buf, size_t cap)
{
    /* Each argument in turn, into a buffer larger than any request's
     * headers (lws_get_urlarg_by_name() gives up at the first argument
     * that does not fit its buffer, and says nothing). */
    char frag[4200];
    size_t nlen = strlen(name);
    for (int i = 0;
         lws_hdr_copy_fragment(wsi, frag, (int)sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0; i++) {
        if (strncmp(frag, name, nlen) != 0)
            continue;
        size_t len = strlen(frag + nlen);
        if (len >= cap)
            return -1;
        memcpy(buf, frag + nlen, len + 1);
        return 1;
    }
    return 0;
}

static int route_tallies(web_server_t *s, struct lws *wsi, pss_t *ps)
{
    char prefix[PROTO_PREFIX_MAX + 1];
    int got = web_server_urlarg(wsi, "prefix=", prefix, sizeof prefix);
    if (got < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "prefix: longer than %d bytes", PROTO_PREFIX_MAX);
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_BAD_REQUEST, msg, NULL);
    }
    if (got == 0)
        prefix[0] = '\0';
    if (!proto_topic_prefix_possible(prefix, strlen(prefix)))
        return web_server_respond_bad_prefix(s, wsi, ps, prefix);
    /* Cut off from tallyd, the figures held are still the best there is
     * (a wall opened during an outage shows them, dimmed): served marked
     * stale, as of when synchronisation was lost.  Nothing to serve only
     * before the first snapshot. */
    if (!s->feed->synced && !s->feed->ever_synced)
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                        "not synchronised with tallyd yet", NULL);
    /* A name tallyd does not know is refused as /api/v1/period has tallyd
     * refuse it, not answered with nothing (a typing error, or a label
     * where the id goes). */
    char why[512];
    if (web_feed_unknown_name(s->feed, web_stats_catalog_read(s->stats), prefix, why, sizeof why))
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_BAD_REQUEST, why, NULL);
    bool stale = web_feed_stale(s->feed);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t as_of =
        stale ? s->feed->unsynced_at_ms : (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    collect_t c = {0};
    web_feed_foreach(s->feed, prefix, collect_one, &c);
    web_buf_t b;
    if (c.oom || web_buf_open(&b) != 0) {
        free(c.v);
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_INTERNAL_SERVER_ERROR,
                                        "out of memory", NULL);
    }
    web_json_sort(c.v, c.n);
    fprintf(b.f,
            "{\"seq\":%" PRIu64 ",\"stream_id\":%" PRIu64 ",\"stale\":%s,\"as_of_ms\":%" PRId64
            ",\"tallies\":[",
            s->feed->seq, s->feed->stream_id, stale ? "true" : "false", as_of);
    for (size_t i = 0; i < c.n; i++) {
        if (i > 0)
            fputc(',', b.f);
        web_json_tally(b.f, c.v[i], false);
    }
    fputs("]}\n", b.f);
    free(c.v);
    return web_server_respond_buf(s, wsi, ps, "application/json", &b);
}

static int route_healthz(web_server_t *s, struct lws *wsi, pss_t *ps)
{
    web_buf_t b;
    if (web_buf_open(&b) != 0)
        return -1;
    web_feed_t *f = s->feed;
    fprintf(b.f,
            "{\"status\":\"%s\",\"synced\":%s,\"seq\":%" PRIu64 ",\"stream_id\":%" PRIu64
            ",\"browsers\":%" PRIu64 ",\"tallyd\":\"%s\"",
            f->synced ? "ok" : "unsynced", f->synced ? "true" : "false", f->seq, f->stream_id,
            s->counters.browsers, web_feed_link_name(f->link));
    if (f->link == WEB_LINK_UNREACHABLE) {
        fputs(",\"tallyd_why\":", b.f);
        text_json_string(b.f, f->link_why, strlen(f->link_why));
    }
    fputs("}\n", b.f);
    if (web_buf_close(&b) != 0)
        return -1;
    return web_server_respond(
        s, wsi, ps, f->synced ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE,
        "application/json", (unsigned char *)b.data, b.len, true, &web_server_no_store, 1);
}

static int route_metrics(web_server_t *s, struct lws *wsi, pss_t *ps)
{
    web_buf_t b;
    if (web_buf_open(&b) != 0)
        return -1;
    web_stats_feed_t fs = {.synced = s->feed->synced,
                           .resyncs = s->feed->resyncs,
                           .tallies = s->feed->sub ? tally_sub_count(s->feed->sub) : 0,
                           .seq = s->feed->seq,
                           .link = s->feed->link};
    web_stats_write(s->stats, &s->counters, &fs, b.f);
    return web_server_respond_buf(s, wsi, ps, "text/plain; version=0.0.4; charset=utf-8", &b);
}

static int route_session(web_server_t *s, struct lws *wsi, pss_t *ps)
{
    if (s->opts->token == NULL)
        return web_server_respond(s, wsi, ps, HTTP_STATUS_NO_CONTENT, "text/plain", NULL, 0, false,
                                  NULL, 0);
    if (!bearer_ok(s, wsi)) {
        header_t h = {"www-authenticate:", "Bearer realm=\"tally-web\""};
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_UNAUTHORIZED,
                                        "wrong or missing token", &h);
    }
    char cookie[WEB_TOKEN_MAX + 128];
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000%s",
             WEB_COOKIE_NAME, s->opts->token, s->opts->tls_cert ? "; Secure" : "");
    header_t h[2] = {web_server_no_store, {"set-cookie:", cookie}};
    return web_server_respond(s, wsi, ps, HTTP_STATUS_NO_CONTENT, "text/plain", NULL, 0, false, h,
                              2);
}

/* The catalog's labels and units, for the display (web_stats reads it
 * from tallyd with its counters); {"available":false,...} until it has,
 * or from a tallyd older than the catalog request: the display then
 * shows ids. */
static int route_catalog(web_server_t *s, struct lws *wsi, pss_t *ps)
{
    static const char none[] = "{\"available\":false,\"metrics\":[],\"townships\":[]}\n";
    /* A copy: the next poll may replace the catalog while this is sent. */
    const char *json = web_stats_catalog(s->stats);
    char *copy = strdup(json != NULL ? json : none);
    if (copy == NULL)
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                        "out of memory", NULL);
    return web_server_respond(s, wsi, ps, HTTP_STATUS_OK, "application/json", (unsigned char *)copy,
                              strlen(copy), true, &web_server_no_store, 1);
}

/* tallyd's calendar zone, for the wall's clock and its years. */
static int route_clock(web_server_t *s, struct lws *wsi, pss_t *ps)
{
    char json[TALLY_ZONE_MAX * 6 + 128]; /* every byte of the zone escaped as \u00XX */
    web_stats_clock_json(s->stats, json, sizeof json);
    char *copy = strdup(json);
    if (copy == NULL)
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                        "out of memory", NULL);
    return web_server_respond(s, wsi, ps, HTTP_STATUS_OK, "application/json", (unsigned char *)copy,
                              strlen(copy), true, &web_server_no_store, 1);
}

/* Paths anyone may fetch: what the login page needs, and the health. */
static bool public_path(const char *path)
{
    return strcmp(path, "/login") == 0 || strcmp(path, "/assets/login.js") == 0 ||
           strcmp(path, "/assets/app.css") == 0 || strcmp(path, "/healthz") == 0 ||
           strcmp(path, "/api/v1/session") == 0 || strcmp(path, "/error.css") == 0;
}

/* The status for a request whose target or headers are too long (414,
 * 431), or 0; *why says what was too long. */
static unsigned oversized(struct lws *wsi, char *why, size_t len)
{
    int total = 0, target = 0;
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        int n = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
        if (n > 0)
            total += n;
    }
    static const enum lws_token_indexes targets[] = {WSI_TOKEN_GET_URI, WSI_TOKEN_POST_URI,
                                                     WSI_TOKEN_HEAD_URI, WSI_TOKEN_HTTP_URI_ARGS};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        int n = lws_hdr_total_length(wsi, targets[i]);
        if (n > 0)
            target += n;
    }
    if (target > WEB_SERVER_URI_MAX) {
        snprintf(why, len, "the request's target of %d bytes is longer than %d", target,
                 WEB_SERVER_URI_MAX);
        return HTTP_STATUS_REQ_URI_TOO_LONG;
    }
    if (total > WEB_SERVER_HEADER_MAX) {
        snprintf(why, len, "the request's headers of %d bytes are longer than %d", total,
                 WEB_SERVER_HEADER_MAX);
        return 431; /* Request Header Fields Too Large (RFC 6585) */
    }
    return 0;
}

/* libwebsockets decodes the target's %-escapes as it reads the request
 * line, and takes a decoded %0D or %0A for the line's end: the rest of the
 * target and the HTTP version are lost, and what followed is read as
 * headers (a prefix=%0A would mean every series).  Such a request has no
 * HTTP version; one sent over HTTP/2 has :path instead. */
static bool target_cut(struct lws *wsi)
{
#if defined(LWS_ROLE_H2)
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_PATH) > 0)
        return false;
#endif
    return lws_hdr_total_length(wsi, WSI_TOKEN_HTTP) <= 0;
}

static const char target_cut_why[] =
    "the request's target holds a line break (%0D or %0A), which ends the request line";

/* libwebsockets answers a target with a % not followed by two hexadecimal
 * digits itself, before tally-web sees the request, with a page of its
 * own: "403" and a link to this stylesheet, which says what was wrong to
 * the person who typed the address (a browser asks nothing else of it). */
static const char error_css[] =
    "body{font-family:sans-serif;margin:2em}\n"
    "h1::after{content:\" Bad Request: a % in the address must be followed by two hexadecimal "
    "digits (%25 for % itself)\";display:block;font-size:60%;font-weight:normal}\n";

static int on_http(web_server_t *s, struct lws *wsi, pss_t *ps, const char *path)
{
    memset(ps, 0, sizeof *ps);
    char why[128];
    unsigned too_long = oversized(wsi, why, sizeof why);
    if (too_long != 0)
        return web_server_respond_error(s, wsi, ps, too_long, why, NULL);
    char *uri;
    int ulen;
    int method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    if (method != LWSHUMETH_GET && method != LWSHUMETH_HEAD) {
        header_t h = {"allow:", "GET, HEAD"};
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_METHOD_NOT_ALLOWED,
                                        "only GET and HEAD are served", &h);
    }
    ps->head = method == LWSHUMETH_HEAD;
    if (target_cut(wsi))
        return respond_bad_request(s, wsi, ps, path, target_cut_why);
    if (s->stopping) {
        header_t h = {"connection:", "close"};
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                        "tally-web is stopping", &h);
    }
    if (!public_path(path) && !authorized(s, wsi)) {
        if (strcmp(path, "/") == 0) {
            header_t h[2] = {web_server_no_store, {"location:", "/login"}};
            return web_server_respond(s, wsi, ps, HTTP_STATUS_SEE_OTHER, "text/plain", NULL, 0,
                                      false, h, 2);
        }
        header_t h = {"www-authenticate:", "Bearer realm=\"tally-web\""};
        return web_server_respond_error(
            s, wsi, ps, HTTP_STATUS_UNAUTHORIZED,
            "this tally-web needs a token: 'Authorization: Bearer TOKEN'", &h);
    }
    if (strcmp(path, "/api/v1/tallies") == 0)
        return route_tallies(s, wsi, ps);
    if (strcmp(path, "/healthz") == 0)
        return route_healthz(s, wsi, ps);
    if (strcmp(path, "/metrics") == 0)
        return route_metrics(s, wsi, ps);
    if (strcmp(path, "/api/v1/session") == 0)
        return route_session(s, wsi, ps);
    if (strcmp(path, "/api/v1/period") == 0)
        return web_history_route(s, wsi, ps, false);
    if (strcmp(path, "/api/v1/range") == 0)
        return web_history_route(s, wsi, ps, true);
    if (strcmp(path, "/api/v1/catalog") == 0)
        return route_catalog(s, wsi, ps);
    if (strcmp(path, "/api/v1/clock") == 0)
        return route_clock(s, wsi, ps);
    if (strcmp(path, "/api/v1/stream") == 0)
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_BAD_REQUEST,
                                        "/api/v1/stream is a WebSocket: send 'Upgrade: websocket'",
                                        NULL);
    if (strcmp(path, "/login") == 0 && s->opts->token == NULL) {
        header_t h = {"location:", "/"};
        return web_server_respond(s, wsi, ps, HTTP_STATUS_SEE_OTHER, "text/plain", NULL, 0, false,
                                  &h, 1);
    }
    if (strcmp(path, "/error.css") == 0) {
        header_t h = {"cache-control:", "no-cache"};
        return web_server_respond(s, wsi, ps, HTTP_STATUS_OK, "text/css; charset=utf-8",
                                  (unsigned char *)error_css, sizeof error_css - 1, false, &h, 1);
    }
    const web_asset_t *a = web_assets_find(path);
    if (a != NULL) {
        header_t h = {"cache-control:", "no-cache"};
        return web_server_respond(s, wsi, ps, HTTP_STATUS_OK, a->type, (unsigned char *)a->data,
                                  web_asset_len(a), false, &h, 1);
    }
    return web_server_respond_error(s, wsi, ps, HTTP_STATUS_NOT_FOUND, "no such page", NULL);
}

/* Answer a WebSocket upgrade with status and {"error":why}, at once: the
 * session has no writable callback yet (libwebsockets completes the
 * transaction when the callback returns 1).  Returns 1, or -1 to close
 * the connection when the answer cannot be written. */
static int refuse_upgrade(struct lws *wsi, unsigned status, const char *why, const header_t *extra)
{
    unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof buf - 1;
    web_buf_t b;
    if (error_body(&b, why) != 0)
        return -1;
    int rc = -1;
    if (common_headers(wsi, status, "application/json", b.len, &p, end) == 0 &&
        add_header(wsi, "cache-control:", "no-store", &p, end) == 0 &&
        (extra == NULL || add_header(wsi, extra->name, extra->value, &p, end) == 0) &&
        lws_finalize_http_header(wsi, &p, end) == 0 && (size_t)(end - p) >= b.len) {
        memcpy(p, b.data, b.len);
        p += b.len;
        int n = (int)(p - start);
        rc = lws_write(wsi, start, (size_t)n, LWS_WRITE_HTTP) == n ? 1 : -1;
    }
    free(b.data);
    return rc;
}

/* Whether the comma-separated list in the header token holds word (any
 * case), as Connection must hold "upgrade". */
static bool header_lists(struct lws *wsi, enum lws_token_indexes token, const char *word)
{
    char buf[256];
    if (lws_hdr_copy(wsi, buf, sizeof buf, token) <= 0)
        return false;
    size_t wlen = strlen(word);
    for (char *p = buf; *p != '\0';) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t t = n;
        while (t > 0 && (p[t - 1] == ' ' || p[t - 1] == '\t'))
            t--;
        if (t == wlen && strncasecmp(p, word, wlen) == 0)
            return true;
        p += n;
    }
    return false;
}

/* What is wrong with a WebSocket handshake (RFC 6455, 4.2.1), or NULL.
 * libwebsockets closes the connection without an answer on most of
 * these, and takes any Sec-WebSocket-Version for 13. */
static const char *bad_handshake(struct lws *wsi, bool *version)
{
    char buf[64];
    unsigned char key[32];
    size_t klen = 0;
    *version = false;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HOST) <= 0)
        return "a WebSocket handshake needs a Host header";
    if (!header_lists(wsi, WSI_TOKEN_CONNECTION, "upgrade"))
        return "a WebSocket handshake needs 'Connection: Upgrade'";
    if (lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_VERSION) <= 0 || strcmp(buf, "13") != 0) {
        *version = true;
        return "a WebSocket handshake needs 'Sec-WebSocket-Version: 13', the version served";
    }
    if (lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_KEY) <= 0 ||
        sodium_base642bin(key, sizeof key, buf, strlen(buf), NULL, &klen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        klen != 16)
        return "a WebSocket handshake needs a Sec-WebSocket-Key of 16 bytes in base64";
    return NULL;
}

/* Before a WebSocket upgrade: the right path and method, a well-formed
 * handshake, the token, the origin and room for one more browser.
 * Returns 0 to let it proceed, 1 when a response was sent instead. */
static int confirm_upgrade(web_server_t *s, struct lws *wsi, const char *protocol)
{
    unsigned status = 0;
    const char *why = NULL;
    const header_t *extra = NULL;
    static const header_t allow = {"allow:", "GET"};
    static const header_t ws_version = {"sec-websocket-version:", "13"};
    char too_long[128];
    char *uri = NULL;
    int ulen = 0;
    int method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    bool version = false;
    if (s->stopping) {
        status = HTTP_STATUS_SERVICE_UNAVAILABLE;
        why = "tally-web is stopping";
    } else if ((status = oversized(wsi, too_long, sizeof too_long)) != 0) {
        why = too_long;
    } else if (target_cut(wsi)) {
        status = HTTP_STATUS_BAD_REQUEST;
        why = target_cut_why;
    } else if (method < 0 || uri == NULL || ulen != (int)strlen("/api/v1/stream") ||
               strncmp(uri, "/api/v1/stream", (size_t)ulen) != 0 || protocol == NULL ||
               strcmp(protocol, "websocket") != 0) {
        status = HTTP_STATUS_NOT_FOUND;
        why = "no WebSocket here: the stream is /api/v1/stream";
    } else if (method != LWSHUMETH_GET) {
        status = HTTP_STATUS_METHOD_NOT_ALLOWED;
        why = "a WebSocket handshake is a GET request";
        extra = &allow;
    } else if ((why = bad_handshake(wsi, &version)) != NULL) {
        status = HTTP_STATUS_BAD_REQUEST;
        extra = version ? &ws_version : NULL; /* the version served (RFC 6455, 4.4) */
    } else if (!authorized(s, wsi)) {
        status = HTTP_STATUS_UNAUTHORIZED;
        why = "this tally-web needs a token";
        s->counters.http_unauthorized++;
    } else if (!origin_ok(wsi)) {
        status = HTTP_STATUS_FORBIDDEN;
        why = "pages of other sites may not open the stream";
    } else if (s->stream.nclients >= s->opts->max_clients) {
        status = HTTP_STATUS_SERVICE_UNAVAILABLE;
        why = "too many browsers connected: try again later";
        s->counters.browsers_refused++;
    }
    if (status == 0)
        return 0;
    s->counters.http_requests++;
    return refuse_upgrade(wsi, status, why, extra);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    web_server_t *s = lws_context_user(lws_get_context(wsi));
    pss_t *ps = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(s, wsi, ps, in);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (ps != NULL && ps->read != NULL)
            return web_history_writeable(s, wsi, ps);
        return ps != NULL ? write_body(wsi, ps) : 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (ps != NULL) {
            web_history_closed(s, ps);
            body_free(ps);
        }
        break;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(s, wsi, in);
    case LWS_CALLBACK_ESTABLISHED:
        if (s->stopping)
            return -1;
        web_stream_add(&s->stream, &ps->client, wsi);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (s->stopping)
            return -1; /* the browser comes back to the next tally-web */
        return web_stream_writable(&s->stream, &ps->client);
    case LWS_CALLBACK_RECEIVE:
        return 0; /* browsers have nothing to say; what they send is ignored */
    case LWS_CALLBACK_CLOSED:
        web_stream_remove(&s->stream, &ps->client);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"tally-web", callback, sizeof(pss_t), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- the context ----------------------------------------------------- */

static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    web_log(level == LLL_ERR ? WEB_LOG_ERR : WEB_LOG_WARNING, "libwebsockets%s: %.*s",
            level == LLL_ERR ? " error" : "", (int)n, line);
}

static int readable(const char *what, const char *path, char *err, size_t errlen)
{
    if (access(path, R_OK) == 0)
        return 0;
    snprintf(err, errlen, "%s '%s': %s", what, path, strerror(errno));
    return TALLY_EIO;
}

/* The address to listen on, as libwebsockets takes it: a numeric address
 * (it looks an interface's name up, or parses an address, but resolves
 * no host name: "localhost" would be a missing interface, which it only
 * logs), chosen by binding each address the host resolves to in turn,
 * before libwebsockets does (when its bind fails it logs, serves nothing
 * and has closed the socket it made, while tally-web would carry on).
 * iface receives the address ("" for every address), *v6 whether it is
 * IPv6.  Returns 0, or TALLY_EIO with the reason in err. */
static int choose_address(const web_opts_t *o, char *iface, size_t cap, bool *v6, char *err,
                          size_t errlen)
{
    char port[8];
    snprintf(port, sizeof port, "%d", o->listen_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    bool wild = o->listen_host[0] == '\0';
    bool v6host = strchr(o->listen_host, ':') != NULL;
    int rc = getaddrinfo(wild ? NULL : o->listen_host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s%s%s:%d: %s", v6host ? "[" : "", o->listen_host,
                 v6host ? "]" : "", o->listen_port,
                 rc == EAI_NONAME ? "not an address, nor a host name that resolves"
                                  : gai_strerror(rc));
        return TALLY_EIO;
    }
    int e = EADDRNOTAVAIL;
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        e = bind(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
        close(fd);
        if (e != 0)
            continue;
        *v6 = a->ai_family == AF_INET6;
        if (wild) {
            iface[0] = '\0';
            *v6 = true; /* [::], which takes IPv4 too */
        } else if ((rc = getnameinfo(a->ai_addr, a->ai_addrlen, iface, (socklen_t)cap, NULL, 0,
                                     NI_NUMERICHOST)) != 0) {
            e = EADDRNOTAVAIL;
            continue;
        }
        break;
    }
    freeaddrinfo(ai);
    if (e != 0) {
        snprintf(err, errlen, "cannot listen on %s%s%s:%d: %s%s", v6host ? "[" : "",
                 wild ? "*" : o->listen_host, v6host ? "]" : "", o->listen_port, strerror(e),
                 e == EADDRINUSE ? " (another tally-web? choose a port with --listen)" : "");
        return TALLY_EIO;
    }
    return 0;
}

int web_server_start(web_server_t **out, uv_loop_t *loop, const web_opts_t *o, web_feed_t *feed,
                     web_stats_t *stats, char *err, size_t errlen)
{
    *out = NULL;
    char iface[WEB_SERVER_ADDRESS_MAX];
    bool v6 = false;
    if (choose_address(o, iface, sizeof iface, &v6, err, errlen) != 0)
        return TALLY_EIO;
    if (o->tls_cert != NULL && (readable("--tls-cert", o->tls_cert, err, errlen) != 0 ||
                                readable("--tls-key", o->tls_key, err, errlen) != 0))
        return TALLY_EIO;
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium cannot start");
        return TALLY_ESYS;
    }
    web_server_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return TALLY_ENOMEM;
    }
    s->opts = o;
    snprintf(s->address, sizeof s->address, "%s", iface);
    s->feed = feed;
    s->stats = stats;
    if (web_history_init(s) != 0) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return TALLY_ENOMEM;
    }
    if (o->token != NULL)
        crypto_generichash(s->token_hash, sizeof s->token_hash, (const unsigned char *)o->token,
                           strlen(o->token), NULL, 0);
    s->loop = loop;
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);

    void *foreign[1] = {loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    /* A bind that fails is the context's failure, not a vhost left waiting
     * for its interface to appear.  An IPv4 address is bound by an IPv4
     * socket: given to an IPv6 one, libwebsockets 4.1 parses it into the
     * wrong field and binds [::], every address of the machine. */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                   LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS |
                   LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    if (!v6)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.foreign_loops = foreign;
    info.protocols = protocols;
    info.iface = s->address[0] ? s->address : NULL;
    info.port = o->listen_port;
    info.max_http_header_data = WEB_SERVER_HEADER_BUF;
    info.max_http_header_pool = 64;
    info.timeout_secs = 20;
    info.keepalive_timeout = 10;
    info.user = s;
    info.pcontext = &s->ctx;
    info.vhost_name = "tally-web";
    if (o->tls_cert != NULL) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = o->tls_cert;
        info.ssl_private_key_filepath = o->tls_key;
    }
    s->ctx = lws_create_context(&info);
    if (s->ctx == NULL) {
        snprintf(err, errlen,
                 "cannot serve on %s%s%s:%d (the address in use or not this "
                 "machine's, or the TLS files not a certificate and its key)",
                 strchr(o->listen_host, ':') ? "[" : "", o->listen_host[0] ? o->listen_host : "*",
                 strchr(o->listen_host, ':') ? "]" : "", o->listen_port);
        web_history_free(s);
        free(s);
        return TALLY_EIO;
    }
    s->vhost = lws_get_vhost_by_name(s->ctx, "tally-web");
    int rc = 0;
    if (s->vhost == NULL) { /* the bind failed after all (a race with another program) */
        snprintf(err, errlen, "cannot serve on %s:%d (libwebsockets' message above says why)",
                 o->listen_host[0] ? o->listen_host : "*", o->listen_port);
        rc = TALLY_EIO;
    } else if (web_stream_init(&s->stream, loop, feed, &s->counters) != 0) {
        snprintf(err, errlen, "cannot set up a timer");
        rc = TALLY_ESYS;
    }
    if (rc != 0) {
        /* The context stands: the caller stops the server as it would
         * a running one (web_server_stop when nothing else runs). */
        *out = s;
        return rc;
    }
    s->stream_open = true;
    s->port = lws_get_vhost_listen_port(s->vhost);
    *out = s;
    return 0;
}

int web_server_port(const web_server_t *s)
{
    return s->port;
}

const char *web_server_address(const web_server_t *s)
{
    return s->address;
}

void web_server_feed_changed(web_server_t *s)
{
    web_stream_feed_changed(&s->stream);
}

void web_server_quiesce(web_server_t *s)
{
    s->stopping = true;
    atomic_store(&s->stop_reads, true);
    if (s->stream_open)
        web_stream_close(&s->stream);
    s->stream_open = false;
}

bool web_server_busy(const web_server_t *s)
{
    return s->reads_queued > 0;
}

void web_server_stop(web_server_t *s)
{
    if (s->ctx != NULL)
        lws_context_destroy(s->ctx);
    if (s->stream_open)
        web_stream_close(&s->stream);
    s->stream_open = false;
}

void web_server_free(web_server_t **sp)
{
    web_server_t *s = *sp;
    if (s == NULL)
        return;
    if (s->ctx != NULL)
        lws_context_destroy(s->ctx);
    web_history_free(s);
    free(s);
    *sp = NULL;
}
