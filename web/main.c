/* main.c - tally-web (web/): the wiring.  One libuv loop carries the
 * subscriber (web_feed), the metrics timer (web_stats, whose requests to
 * tallyd run on a worker thread) and the libwebsockets server
 * (web_server); SIGTERM and SIGINT stop them all through uv_signal, and
 * the loop then runs until every handle is closed.
 *
 * The server goes last.  libwebsockets 4.1 closes its event pipe's
 * descriptor twice when its context is destroyed on a foreign loop: in
 * lws_context_destroy and again when the loop closes the pipe's handle.
 * A descriptor that another thread opens in between can get that number,
 * and the second close takes it from its owner: ZeroMQ's I/O threads
 * then abort ("Bad file descriptor (src/epoll.cpp:100)").  So the
 * context is destroyed only once no other thread can open one: the
 * subscriber's ZeroMQ context terminated (its threads joined), no
 * metrics poll and no history read left on a worker thread. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "web_feed.h"
#include "web_log.h"
#include "web_opts.h"
#include "web_server.h"
#include "web_stats.h"

typedef struct app {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    bool signals_on;
    uv_timer_t drain; /* while stopping: waits for the other threads */
    web_opts_t opts;
    web_feed_t feed;
    web_stats_t stats;
    web_server_t *server;
    bool stopping;
} app_t;

static void on_feed_change(void *ctx)
{
    app_t *a = ctx;
    if (a->server != NULL)
        web_server_feed_changed(a->server);
}

#define DRAIN_CHECK_MS 10

static void on_drain(uv_timer_t *t)
{
    app_t *a = t->data;
    if (!web_feed_closed(&a->feed) || web_stats_busy(&a->stats) ||
        (a->server != NULL && web_server_busy(a->server)))
        return; /* a poll or a read waits for tallyd: its timeout bounds it */
    if (a->server != NULL)
        web_server_stop(a->server);
    uv_close((uv_handle_t *)t, NULL);
}

/* Everything but the server stops at once; the server when nothing else
 * runs (see the top of this file). */
static void stop(app_t *a)
{
    if (a->stopping)
        return;
    a->stopping = true;
    if (a->server != NULL)
        web_server_quiesce(a->server);
    web_stats_stop(&a->stats);
    web_feed_stop(&a->feed);
    if (a->signals_on) {
        uv_close((uv_handle_t *)&a->sigterm, NULL);
        uv_close((uv_handle_t *)&a->sigint, NULL);
    }
    uv_timer_init(&a->loop, &a->drain);
    a->drain.data = a;
    uv_timer_start(&a->drain, on_drain, 0, DRAIN_CHECK_MS);
}

static void on_signal(uv_signal_t *h, int sig)
{
    app_t *a = h->data;
    web_log(WEB_LOG_NOTICE, "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    stop(a);
}

static void log_ready(const app_t *a, int port)
{
    const web_opts_t *o = &a->opts;
    const char *host = o->listen_host[0] ? o->listen_host : "0.0.0.0";
    const char *address = web_server_address(a->server);
    bool v6 = strchr(host, ':') != NULL;
    /* A host name: the address it resolved to as well. */
    bool named = address[0] != '\0' && strcmp(address, host) != 0;
    web_log(WEB_LOG_NOTICE, "ready: serving %s://%s%s%s:%d/%s%s%s for tallyd at %s%s",
            o->tls_cert ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "", port,
            named ? " (on " : "", named ? address : "", named ? ")" : "", o->server,
            o->token ? " (token required)" : "");
    if (!o->loopback && o->token == NULL)
        web_log(WEB_LOG_WARNING,
                "warning: --insecure: anyone who reaches %s:%d sees the "
                "county's figures; give --token to require one",
                host, port);
    else if (!o->loopback && o->tls_cert == NULL)
        web_log(WEB_LOG_WARNING, "warning: the token travels in plaintext over the network; "
                                 "give --tls-cert and --tls-key to serve HTTPS");
}

int main(int argc, char **argv)
{
    static app_t a; /* large; one per process */
    int status = web_opts_parse(&a.opts, argc, argv);
    if (status != -1) {
        web_opts_free(&a.opts);
        return status;
    }
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&a.loop) != 0) {
        web_log(WEB_LOG_ERR, "cannot create the event loop");
        return WEB_EXIT_FAILURE;
    }
    char err[512] = "";
    const tally_curve_t *curve = a.opts.server_key ? &a.opts.curve : NULL;
    int rc =
        web_feed_start(&a.feed, &a.loop, a.opts.server, curve, on_feed_change, &a, err, sizeof err);
    if (rc != 0) {
        web_log(WEB_LOG_ERR, "cannot follow tallyd at %s: %s", a.opts.server,
                err[0] ? err : tally_strerror(rc));
        status = WEB_EXIT_FAILURE;
        goto done;
    }
    web_stats_start(&a.stats, &a.loop, a.opts.server, curve);
    rc = web_server_start(&a.server, &a.loop, &a.opts, &a.feed, &a.stats, err, sizeof err);
    if (rc != 0) {
        web_log(WEB_LOG_ERR, "%s", err);
        status = WEB_EXIT_FAILURE;
        stop(&a); /* the server too, when it got as far as a context */
        uv_run(&a.loop, UV_RUN_DEFAULT);
        web_server_free(&a.server);
        goto done;
    }
    uv_signal_init(&a.loop, &a.sigterm);
    uv_signal_init(&a.loop, &a.sigint);
    a.sigterm.data = a.sigint.data = &a;
    a.signals_on = true;
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    log_ready(&a, web_server_port(a.server));

    uv_run(&a.loop, UV_RUN_DEFAULT);
    web_server_free(&a.server);
    status = WEB_EXIT_OK;
    web_log(WEB_LOG_NOTICE, "stopped");
done:
    if (uv_loop_close(&a.loop) != 0)
        web_log(WEB_LOG_WARNING, "the event loop still had handles open at exit");
    web_opts_free(&a.opts);
    return status;
}
