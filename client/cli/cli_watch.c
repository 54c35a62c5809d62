/* cli_watch.c - the tally command (client/cli/): `tally watch`, follow the
 * tallies live through the subscriber, as a table redrawn in place or as
 * JSON lines. */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_opts.h"
#include "cli_render.h"
#include "table.h"
#include "utf8.h"

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
static volatile sig_atomic_t resized; /* SIGWINCH: redraw at the new size */

static void on_winch(int sig)
{
    (void)sig;
    resized = 1;
}

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
    const cli_opts_t *opts; /* its --metric and --town, judged once synced */
    bool names_checked;
    int64_t last_change_ms; /* wall clock of the last change, 0 = none */
    bool refused;           /* for CLI_REFUSED_MS or more: said on the status line */
    bool unreachable;       /* TALLY_LINK_UNREACHABLE: said on the status line */
    int64_t final_ms;       /* monotonic time a final link state was first seen, 0 = none */
    /* The table only: */
    const tally_curve_t *curve;
    int64_t current_ms; /* wall clock when the figures were last seen current, 0 = never */
    bool stale;         /* the figures shown are no longer kept current */
    int64_t stale_ms;   /* since when (wall clock) */
    /* tallyd's zone (CLOCK_REQ), in which the times are shown, as the
     * wall's clock is; this computer's until it has answered. */
    bool zone_known;
    char zone[TALLY_ZONE_MAX + 1];
    int32_t zone_off_s;
    bool want_clock;      /* ask tallyd for its zone at the next turn */
    int64_t clock_ask_ms; /* monotonic time of the last asking, 0 = never */
    bool clock_final;     /* a daemon from before CLOCK_REQ: not again */
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
    w->want_clock = true; /* the zone may have changed with a restart */
}

/* ---- the table on a terminal ------------------------------------------ */

/* The terminal's size: of standard output (TIOCGWINSZ), else $COLUMNS and
 * $LINES, else 80x24. */
static void screen_size(int *cols, int *rows)
{
    struct winsize ws;
    *cols = 0;
    *rows = 0;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
        *cols = ws.ws_col;
        *rows = ws.ws_row;
    }
    const char *e;
    if (*cols <= 0 && (e = getenv("COLUMNS")) != NULL)
        *cols = atoi(e);
    if (*rows <= 0 && (e = getenv("LINES")) != NULL)
        *rows = atoi(e);
    if (*cols <= 0)
        *cols = 80;
    if (*rows <= 0)
        *rows = 24;
}

/* One UTF-8 character of s: its length in bytes (1 for an invalid byte)
 * and its display width (table_wcwidth; 1 for an invalid byte). */
static size_t utf8_char(const char *s, int *width)
{
    uint32_t cp;
    size_t len = utf8_decode(s, strnlen(s, 4), &cp);
    if (len == 0) {
        *width = 1; /* a stray byte, shown as one replacement character */
        return 1;
    }
    *width = table_wcwidth(cp);
    return len;
}

/* A screen being composed: lines of at most cols display columns, at most
 * rows of them, without a line break after the last (a line break there
 * would scroll the first line, the status, off the top). */
typedef struct screen {
    FILE *out;
    int cols, rows, lines;
} screen_t;

/* Add a line: attr (an SGR sequence, or "") then text cut to the width
 * ("…" in its last column when cut), then the attributes reset. */
static void screen_line(screen_t *sc, const char *attr, const char *text)
{
    if (sc->lines >= sc->rows)
        return;
    if (sc->lines++ > 0)
        fputc('\n', sc->out);
    fputs(attr, sc->out);
    int used = 0;
    for (const char *p = text; *p != '\0';) {
        int cw;
        size_t len = utf8_char(p, &cw);
        if (used + cw > sc->cols ||
            (used + cw == sc->cols && p[len] != '\0' && table_width(p + len) > 0)) {
            if (used < sc->cols)
                fputs("\xe2\x80\xa6", sc->out); /* … */
            break;
        }
        fwrite(p, 1, len, sc->out);
        used += cw;
        p += len;
    }
    if (attr[0] != '\0')
        fputs("\x1b[0m", sc->out);
}

/* A time as the watch shows it, "14:03:07 +08:00": in tallyd's zone once
 * it has said it, else in this computer's, with the offset either way. */
static void show_time(const watch_t *w, int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    long off;
    if (w->zone_known) {
        t += w->zone_off_s;
        gmtime_r(&t, &tm);
        off = w->zone_off_s;
    } else {
        localtime_r(&t, &tm);
        off = tm.tm_gmtoff;
    }
    char hms[16];
    strftime(hms, sizeof hms, "%H:%M:%S", &tm);
    long a = off < 0 ? -off : off;
    snprintf(buf, cap, "%s %c%02ld:%02ld", hms, off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
}

/* Ask tallyd for its zone (CLOCK_REQ) when a snapshot came and it has
 * not said it in the last hour (a zone's offset changes twice a year in
 * some places); a short wait, as tallyd has just answered. */
#define CLOCK_WAIT_MS  1000
#define CLOCK_AGAIN_MS (60 * 60 * 1000)
static void learn_zone(watch_t *w)
{
    if (!w->want_clock || w->clock_final)
        return;
    w->want_clock = false;
    int64_t now = cli_clock_ms(CLOCK_MONOTONIC);
    if (w->clock_ask_ms != 0 && now - w->clock_ask_ms < (w->zone_known ? CLOCK_AGAIN_MS : 10000))
        return;
    w->clock_ask_ms = now;
    tally_request_t req = cli_request(w->curve, CLOCK_WAIT_MS, NULL, 0);
    tally_clock_t c;
    int rc = tally_clock_req(w->server, &req, &c);
    if (rc == TALLY_ETYPE) {
        w->clock_final = true;
        return;
    }
    if (rc != 0)
        return;
    w->zone_known = true;
    snprintf(w->zone, sizeof w->zone, "%s", c.zone);
    w->zone_off_s = c.utc_offset_s;
    w->dirty = true;
}

/* Whether the figures shown are still kept current, and since when
 * they are not: the subscription lost its sync (tallyd silent, restarted,
 * updates lost), or the connections to tallyd are refused or cannot be
 * made although the subscription has not noticed yet. */
static void follow_staleness(watch_t *w)
{
    int64_t now = cli_clock_ms(CLOCK_REALTIME);
    bool current = tally_sub_synced(w->sub) && !w->refused && !w->unreachable;
    if (current) {
        w->current_ms = now;
        if (w->stale)
            w->dirty = true;
        w->stale = false;
        return;
    }
    if (w->stale || !w->ever_synced)
        return;
    w->stale = true;
    w->dirty = true;
    w->stale_ms = w->current_ms != 0 ? w->current_ms : now;
    /* Refused since before the subscription noticed. */
    int64_t refused = tally_sub_refused_ms(w->sub);
    if (refused > 0 && now - refused < w->stale_ms)
        w->stale_ms = now - refused;
}

#define NCOLS_MAX CLI_RENDER_COLUMNS_MAX

/* The cells of t's row: names, then its value of each of cols[0..ncols). */
static void row_cells(const tally_tally_t *t, cli_render_cat_t cat, const char *const *cols,
                      size_t ncols, size_t first, const char **cells, char (*text)[48])
{
    const char *metric, *unit, *scope;
    int scale;
    cli_render_names(t, cat, &metric, &unit, &scope, &scale);
    cells[0] = metric;
    cells[1] = cli_render_unit(t->kind, unit);
    cells[first - 1] = scope;
    for (size_t c = 0; c < ncols; c++) {
        const tally_value_t *val = tally_tally_value(t, cols[c]);
        text[c][0] = '\0';
        if (val != NULL)
            cli_render_scaled(text[c], sizeof text[c], t->kind, val, scale);
        cells[first + c] = text[c];
    }
}

/* cells[0..k) as a line: two spaces between columns, each padded to its
 * width (the names left, the values right), no trailing spaces. */
static void row_line(char *buf, size_t cap, const char *const *cells, const size_t *width, size_t k,
                     size_t first)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t c = 0; c < k; c++) {
        size_t wd = table_width(cells[c]), pad = wd < width[c] ? width[c] - wd : 0;
        bool last = c + 1 == k;
        int n = snprintf(buf + len, cap - len, "%s%*s%s%*s", c > 0 ? "  " : "",
                         c >= first ? (int)pad : 0, "", cells[c], c < first && !last ? (int)pad : 0,
                         "");
        if (n < 0 || (size_t)n >= cap - len)
            return;
        len += (size_t)n;
    }
}

/* The table of r under the status lines, as much of it as fits: the
 * columns from the left and the rows from the top, the rest said on a
 * last line. */
static void draw_table(watch_t *w, screen_t *sc, const cli_render_rows_t *r, const char *attr)
{
    const tally_tally_t *const *v = r->v;
    const char *cols[NCOLS_MAX];
    size_t ncols = cli_render_columns(v, r->n, cols);
    size_t first = w->cat.names ? 3 : 2; /* METRIC, [UNIT,] SCOPE */
    size_t width[NCOLS_MAX + 3];
    const char *cells[NCOLS_MAX + 3];
    char text[NCOLS_MAX][48];
    cells[0] = "METRIC";
    cells[1] = w->cat.names ? "UNIT" : "SCOPE";
    cells[first - 1] = "SCOPE";
    for (size_t c = 0; c < ncols; c++)
        cells[first + c] = cols[c];
    for (size_t c = 0; c < first + ncols; c++)
        width[c] = table_width(cells[c]);
    for (size_t i = 0; i < r->n; i++) {
        const char *rc[NCOLS_MAX + 3];
        row_cells(v[i], w->cat, cols, ncols, first, rc, text);
        for (size_t c = 0; c < first + ncols; c++) {
            size_t wd = table_width(rc[c]);
            if (wd > width[c])
                width[c] = wd;
        }
    }
    /* The names always; value columns from the left while they fit. */
    size_t k = first, used = 0;
    for (size_t c = 0; c < first; c++)
        used += width[c] + (c > 0 ? 2 : 0);
    while (k < first + ncols && used + 2 + width[k] <= (size_t)sc->cols)
        used += 2 + width[k++];
    size_t dropped = first + ncols - k;

    /* Rows: what is left below the header, less a line saying what was
     * left out when anything was. */
    int room = sc->rows - sc->lines - 1;
    if (room < 0)
        return;
    size_t shown = r->n;
    if (dropped > 0 || r->n > (size_t)room) {
        shown = room > 0 ? (size_t)(room - 1) : 0;
        if (shown > r->n)
            shown = r->n;
    }
    size_t cap = 64;
    for (size_t c = 0; c < k; c++)
        cap += width[c] * 4 + 2; /* a column of 4-byte characters at most */
    char *line = malloc(cap);
    if (line == NULL) {
        screen_line(sc, "", "(out of memory)");
        return;
    }
    row_line(line, cap, cells, width, k, first);
    screen_line(sc, attr, line);
    for (size_t i = 0; i < shown; i++) {
        const char *rc[NCOLS_MAX + 3];
        row_cells(v[i], w->cat, cols, ncols, first, rc, text);
        row_line(line, cap, rc, width, k, first);
        screen_line(sc, attr, line);
    }
    free(line);
    if (shown == r->n && dropped == 0)
        return;
    char more[512];
    size_t len = 0;
    if (shown < r->n)
        len = (size_t)snprintf(more, sizeof more, "\xe2\x80\xa6 %zu more rows", r->n - shown);
    if (dropped > 0) {
        len += (size_t)snprintf(more + len, sizeof more - len,
                                "%s%zu column%s left out:", len > 0 ? "; " : "", dropped,
                                dropped == 1 ? "" : "s");
        for (size_t c = k; c < first + ncols && len < sizeof more; c++)
            len += (size_t)snprintf(more + len, sizeof more - len, " %s", cols[c - first]);
    }
    if (len > 0)
        screen_line(sc, "", more);
}

static void draw(watch_t *w)
{
    cli_render_rows_t r = {.metric = w->metric};
    tally_sub_foreach(w->sub, cli_render_rows_add, &r);
    cli_render_sort_cat(r.v, r.n, w->cat);
    char when[48] = "never", since[48];
    if (w->last_change_ms > 0)
        show_time(w, w->last_change_ms, when, sizeof when);
    /* The state first, the details it has room for after. */
    const char *why = w->refused ? "tallyd not reachable, waiting (nothing accepts connections "
                                   "there)"
                      : w->unreachable ? "tallyd not reachable, waiting (the network does not "
                                         "reach tallyd)"
                      : w->ever_synced ? "resyncing with tallyd"
                                       : "connecting";
    char status[768], info[768];
    if (w->stale) {
        show_time(w, w->stale_ms, since, sizeof since);
        snprintf(status, sizeof status, "STALE since %s: %s  last change %s", since, why, when);
    } else if (tally_sub_synced(w->sub) && w->ever_synced) {
        snprintf(status, sizeof status, "synced  last change %s", when);
    } else {
        snprintf(status, sizeof status, "no figures yet: %s", why);
    }
    snprintf(info, sizeof info, "%s%s  seq %" PRIu64 "  stream %" PRIu64 "  %s  %s",
             w->zone_known ? "times in tallyd's zone " : "times in this computer's zone",
             w->zone_known ? w->zone : "", tally_sub_seq(w->sub), tally_sub_stream_id(w->sub),
             w->server, w->prefix);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (out == NULL)
        out = stdout;
    screen_t sc = {.out = out};
    screen_size(&sc.cols, &sc.rows);
    /* Cursor home and clear, then everything in one write, to limit
     * flicker. */
    fputs("\x1b[H\x1b[2J", out);
    screen_line(&sc, w->stale ? "\x1b[1;7m" : "", status); /* bold, reverse */
    screen_line(&sc, "", info);
    const char *dim = w->stale ? "\x1b[2m" : "";
    if (r.oom)
        screen_line(&sc, "", "(out of memory)");
    else if (r.n == 0)
        screen_line(&sc, "", w->ever_synced ? "(no tallies yet)" : "(waiting for a snapshot)");
    else
        draw_table(w, &sc, &r, dim);
    if (out != stdout) {
        fclose(out);
        fwrite(text, 1, len, stdout);
        free(text);
    }
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

/* A --town that the catalog's declared townships lack, or a --metric
 * that neither the catalog nor the county's tallies have, would never
 * show (unless pushed later to an open catalog): said, not left to a
 * silent wait (status 2).  Asked once the subscription is synced, so that
 * a daemon not up yet, or a link down, delays nothing: a watch waits for
 * them. */
static int check_names(const cli_opts_t *o, const tally_curve_t *curve, bool table)
{
    for (int i = 0; i < 2; i++) {
        const char *name = i == 0 ? o->metric : o->town;
        char hint[PROTO_NAME_MAX * 2 + 64];
        if (name == NULL ||
            cli_name_check(o, curve, name, i == 1, hint, sizeof hint) != CLI_NAME_NOT_LISTED)
            continue;
        if (table) { /* below the screen drawn so far */
            fputc('\n', stdout);
            fflush(stdout);
        }
        return cli_usage_error("watch", "%s '%s' is not in the daemon's catalog%s%s",
                               i == 0 ? "--metric" : "--town", name,
                               i == 0 ? " and has no tallies" : "", hint);
    }
    return 0;
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
        if (table) {
            learn_zone(w);
            follow_staleness(w);
            if (resized) {
                resized = 0;
                w->dirty = true;
            }
        }
        int64_t now = cli_clock_ms(CLOCK_MONOTONIC);
        bool synced = tally_sub_synced(w->sub);
        if (synced && !w->names_checked) {
            w->names_checked = true;
            if ((status = check_names(w->opts, w->curve, table)) != 0)
                return status;
        }
        if (table && (w->dirty || synced != last_synced || now - last_draw >= 1000)) {
            draw(w);
            last_draw = now;
            last_synced = synced;
        }
    }
    if (table) {
        draw(w);
        fputc('\n', stdout); /* the shell's prompt on a line of its own */
        fflush(stdout);
    }
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
    w.curve = curve;
    w.opts = &o;
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
    if (table) {
        sa.sa_handler = on_winch;
        sigaction(SIGWINCH, &sa, NULL);
    }
    status = run(&w, duration_ms, table);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (table)
        signal(SIGWINCH, SIG_DFL);
    watched = NULL;
    tally_sub_destroy(&w.sub);
    return status;
}
