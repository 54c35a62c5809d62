/* cli_watch.c - the tally command (client/cli/): `tally watch`, follow the
 * tallies live through the subscriber, as a table redrawn in place or as
 * JSON lines. */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_opts.h"
#include "cli_render.h"

/* The help lines of the shared options are cli_opts.h's macros. */
/* clang-format off */
const char cli_watch_usage[] =
    "Usage: tally watch [--metric M] [--town T | --all] [--json] [--labels] [OPTIONS]\n"
    "\n"
    "Follow the tallies live (county-wide by default).  On a terminal, a table is\n"
    "redrawn in place at most 10 times a second under a status line.  With --json,\n"
    "or when standard output is not a terminal, one JSON object per line: first one\n"
    "per tally of the snapshot, then one per change:\n"
    "  {\"seq\":N,\"metric\":M,\"scope\":S,\"kind\":K,\"values\":{...}}\n"
    "After a re-synchronisation (daemon restart, lost updates) every tally is\n"
    "printed again.  Ctrl-C (SIGINT) or SIGTERM ends it with status 0; a daemon that\n"
    "refuses to be read (status 1) or that no answer can come from (keys missing or\n"
    "refused: status 3) ends it at once, saying why.\n"
    "\n"
    "Options:\n"
    CLI_OPTS_HELP_FILTER("  ")
    "  -j, --json           JSON lines even on a terminal\n"
    CLI_OPTS_HELP_LABELS("  ")
    "  -n, --count N        exit after N lines reporting changes newer than the first\n"
    "                       snapshot\n"
    "  -d, --duration SEC   exit after SEC seconds (status 3 if no snapshot arrived)\n"
    CLI_OPTS_HELP_SERVER("  ", "a subscriber's")
    CLI_OPTS_HELP_HELP("  ");
/* clang-format on */

#define CATALOG_WAIT_MS 3000 /* how long the catalog may delay the start */

/* The signal handler can only reach the subscriber through a static. */
static tally_sub_t *volatile watched;
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
    if (watched != NULL)
        tally_sub_stop(watched); /* sets a flag: async-signal-safe */
}

typedef struct watch {
    tally_sub_t *sub;
    cli_global_t *g;
    const char *server;
    const char *prefix;
    const char *metric; /* filter for --all --metric, else NULL */
    bool json;
    cli_render_cat_t cat; /* the labels and scales to show */
    long count;           /* 0 = unlimited */
    long changes;         /* lines newer than the first snapshot */
    bool have_base;
    uint64_t base_seq;
    bool ever_synced;
    bool dirty;
    int64_t last_change_ms; /* wall clock of the last change, 0 = none */
    bool refused;           /* for CLI_REFUSED_MS or more: said on the status line */
    bool unreachable;       /* TALLY_LINK_UNREACHABLE: said on the status line */
    int64_t final_ms;       /* monotonic time a final link state was first seen, 0 = none */
} watch_t;

static void on_reset(void *ctx)
{
    watch_t *w = ctx;
    if (!w->have_base) {
        w->base_seq = tally_sub_seq(w->sub); /* already the new snapshot's seq */
        w->have_base = true;
    }
    w->dirty = true;
}

static void on_tally(void *ctx, const tally_tally_t *t)
{
    watch_t *w = ctx;
    if (w->metric != NULL && strcmp(w->metric, t->metric) != 0)
        return;
    bool change = w->have_base && t->seq > w->base_seq;
    if (change)
        w->last_change_ms = cli_clock_ms(CLOCK_REALTIME);
    w->dirty = true;
    if (w->json) {
        cli_render_json_tally_cat(stdout, t, true, w->cat);
        fputc('\n', stdout);
        fflush(stdout); /* a line is only useful to a pipe once it is out */
    }
    if (change && w->count > 0 && ++w->changes >= w->count)
        tally_sub_stop(w->sub);
}

static void on_synced(void *ctx, uint64_t seq, uint64_t stream_id)
{
    watch_t *w = ctx;
    (void)seq;
    (void)stream_id;
    w->ever_synced = true;
    w->dirty = true;
}

static void draw(watch_t *w)
{
    cli_render_rows_t r = {.metric = w->metric};
    tally_sub_foreach(w->sub, cli_render_rows_add, &r);
    cli_render_sort_cat(r.v, r.n, w->cat);
    char when[32] = "never";
    if (w->last_change_ms > 0) {
        time_t t = (time_t)(w->last_change_ms / 1000);
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(when, sizeof when, "%H:%M:%S", &tm);
    }
    const char *state = tally_sub_synced(w->sub) ? "synced"
                        : w->refused             ? "nothing accepts connections there: waiting"
                        : w->unreachable         ? "the network does not reach tallyd: waiting"
                        : w->ever_synced         ? "resyncing"
                                                 : "connecting";
    /* Cursor home and clear, then everything in one write, to limit
     * flicker. */
    fputs("\x1b[H\x1b[2J", stdout);
    printf("tally watch %s  %s  seq %" PRIu64 "  stream %" PRIu64 "  %s  last change %s\n\n",
           w->server, w->prefix, tally_sub_seq(w->sub), tally_sub_stream_id(w->sub), state, when);
    if (r.oom)
        fputs("(out of memory)\n", stdout);
    else if (r.n == 0)
        fputs(w->ever_synced ? "(no tallies yet)\n" : "(waiting for a snapshot)\n", stdout);
    else
        cli_render_table_cat(stdout, r.v, r.n, w->cat);
    fflush(stdout);
    cli_render_rows_free(&r);
    w->dirty = false;
}

/* How long a final link state waits for the daemon's refusal. */
#define FINAL_GRACE_MS 1500

/* The daemon refused our requests for good, or no answer can come
 * through the connection: an exit status, else CLI_CONTINUE. */
static int hopeless(watch_t *w, int64_t start)
{
    const char *message;
    int code = tally_sub_refusal(w->sub, &message);
    if (code != 0 && !tally_err_retryable(code))
        return cli_refused(w->g, "watch", code, message);
    int link = tally_sub_link(w->sub);
    if (!cli_link_final(link)) {
        w->final_ms = 0;
        return CLI_CONTINUE;
    }
    /* The subscription's handshake may fail before the daemon has
     * answered the requests, whose refusal says why (a township's key, a
     * key no longer admitted): it is given a moment to come. */
    int64_t now = cli_clock_ms(CLOCK_MONOTONIC);
    if (w->final_ms == 0)
        w->final_ms = now;
    if (now - w->final_ms < FINAL_GRACE_MS)
        return CLI_CONTINUE;
    return cli_unanswered(w->g, "watch", link, NULL, (int)(now - start));
}

/* Follow whether connections are refused, or the network does not
 * reach tallyd: a watch waits for a daemon that is down or a link that
 * is (the command center's screen comes back by itself), but says so, on
 * the status line or once on standard error. */
static void follow_refusals(watch_t *w, bool table)
{
    bool was = w->refused, was_unreachable = w->unreachable;
    /* A name that does not resolve ends waits like a refusal, but is said
     * as what it is. */
    w->unreachable = tally_sub_link(w->sub) == TALLY_LINK_UNREACHABLE;
    w->refused = !w->unreachable && tally_sub_refused_ms(w->sub) >= CLI_REFUSED_MS;
    if (w->refused != was || w->unreachable != was_unreachable)
        w->dirty = true;
    if (w->refused && !was && !table)
        fprintf(stderr,
                "tally watch: nothing accepts connections at %s (is tallyd running, and is the "
                "address right?); waiting for it\n",
                w->server);
    if (w->unreachable && !was_unreachable && !table)
        fprintf(stderr,
                "tally watch: cannot reach tallyd at %s: %s; is this computer's network link "
                "up, and is the address right? Waiting for it\n",
                w->server, tally_sub_link_why(w->sub));
}

static int run(watch_t *w, int duration_ms, bool table)
{
    int64_t start = cli_clock_ms(CLOCK_MONOTONIC);
    int64_t deadline = duration_ms > 0 ? start + duration_ms : 0;
    int64_t last_draw = 0;
    bool last_synced = false;
    if (table)
        draw(w);
    for (;;) {
        /* Redraw at most 10 times a second; look at how things stand 5
         * times a second in any case. */
        int step = table ? 100 : 200;
        if (deadline != 0) {
            int64_t left = deadline - cli_clock_ms(CLOCK_MONOTONIC);
            if (left <= 0)
                break;
            if (left < step)
                step = (int)left;
        }
        int rc = tally_sub_run(w->sub, step);
        if (rc == 0)
            break; /* stopped: --count reached or a signal */
        if (rc != TALLY_ETIMEDOUT) {
            cli_error("watch failed: %s", tally_strerror(rc));
            return CLI_INTERNAL;
        }
        int status = hopeless(w, start);
        if (status != CLI_CONTINUE)
            return status;
        follow_refusals(w, table);
        int64_t now = cli_clock_ms(CLOCK_MONOTONIC);
        bool synced = tally_sub_synced(w->sub);
        if (table && (w->dirty || synced != last_synced || now - last_draw >= 1000)) {
            draw(w);
            last_draw = now;
            last_synced = synced;
        }
    }
    if (table)
        draw(w);
    if (!w->ever_synced && !interrupted) {
        int status = hopeless(w, start);
        return status != CLI_CONTINUE ? status
                                      : cli_unanswered(w->g, "watch", tally_sub_link(w->sub),
                                                       tally_sub_link_why(w->sub), duration_ms);
    }
    return CLI_OK;
}

int cli_watch(int argc, char **argv, cli_global_t *g)
{
    static const struct option own[] = {
        {"count", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    cli_opts_t o;
    cli_opts_init(&o, "watch", cli_watch_usage, g,
                  CLI_OPTS_FILTER | CLI_OPTS_JSON | CLI_OPTS_LABELS | CLI_OPTS_SERVER |
                      CLI_OPTS_NO_OPERANDS,
                  own);
    long count = 0;
    int duration_ms = 0;
    int c, status;
    while ((status = cli_opts_next(&o, argc, argv, &c)) == CLI_CONTINUE && c != -1) {
        switch (c) {
        case 'n':
            if (cli_parse_count(optarg, &count) < 0)
                return cli_usage_error("watch", "--count '%s' is not a whole number >= 1", optarg);
            break;
        case 'd':
            if (cli_parse_seconds(optarg, &duration_ms) < 0)
                return cli_usage_error("watch", "--duration '%s' is not a number of seconds > 0",
                                       optarg);
            break;
        }
    }
    if (status != CLI_CONTINUE)
        return status;
    bool table = !o.json && isatty(STDOUT_FILENO);
    watch_t w = {
        .g = g,
        .server = g->server,
        .prefix = o.prefix,
        .metric = o.all ? o.metric : NULL,
        .json = !table,
        .count = count,
    };
    tally_sub_callbacks_t cb = {
        .on_reset = on_reset, .on_tally = on_tally, .on_synced = on_synced, .ctx = &w};
    const tally_curve_t *curve;
    status = cli_curve(g, "watch", &curve);
    if (status == 0)
        status = cli_opts_resolve(&o, curve, CATALOG_WAIT_MS);
    if (status != 0)
        return status;
    w.metric = o.all ? o.metric : NULL;
    /* Read once: a reload that changes the catalog shows after a restart
     * of the watch.  A short wait, so that a daemon not up yet delays the
     * first screen little. */
    w.cat = cli_render_catalog(g, "watch", curve, o.labels, CATALOG_WAIT_MS, table, table);
    char err[512];
    tally_sub_opts_t so = {.errbuf = err, .errbuf_len = sizeof err, .curve = curve};
    int rc = tally_sub_new(g->server, o.prefix, &cb, &so, &w.sub);
    if (rc < 0) {
        cli_error("%s", err);
        return rc == TALLY_EINVAL ? CLI_USAGE : CLI_INTERNAL;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    watched = w.sub;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    status = run(&w, duration_ms, table);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    watched = NULL;
    tally_sub_destroy(&w.sub);
    return status;
}
