/* cli_push.c - the tally command (client/cli/): `tally push`, send
 * figures of one township and wait until the daemon has acknowledged
 * them: its options, the figures read from METRIC=VALUE pairs or a CSV,
 * and their delivery through libtally, with the callbacks that note what
 * tallyd answered.  What is said of them is cli_push_report.c's; names
 * and times are read as tallyd reads them by cli_push_resolve.c
 * (cli_push_impl.h). */
#include "cli_push_impl.h"

#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_names.h"
#include "cli_opts.h"
#include "cli_state.h"
#include "csv.h"
#include "proto.h"
#include "vec.h"
#include "when.h"

/* The help lines of the shared options are cli_opts.h's macros. */
/* clang-format off */
const char cli_push_usage[] =
    "Usage: tally push --town NAME [OPTIONS] METRIC=VALUE...\n"
    "       tally push --town NAME [OPTIONS] --file FILE.csv\n"
    "       COMMAND | tally push --town NAME [OPTIONS]\n"
    "       tally push --spool DIR --flush [OPTIONS]\n"
    "\n"
    "Send figures of one township to tallyd and wait until they are acknowledged.\n"
    "Values are in the metric's unit, as reports show them (12.5 for a metric kept\n"
    "with one decimal place).  A CSV file needs a header row naming a 'metric'\n"
    "column (or 指标, 指标名称, 项目) and a 'value' column (or 数值, 数量, 值);\n"
    "other columns are ignored.  Write numbers without thousands separators (1000,\n"
    "not 1,000).  Without pairs or --file, the CSV is read from standard input when\n"
    "it is not a terminal.\n"
    "\n"
    "Options:\n"
    "  -t, --town NAME    township the figures belong to (required, except with\n"
    "                     --flush): its id, or its name in the catalog (高观镇);\n"
    "                     metrics likewise by id or label\n"
    "  -f, --file FILE    read figures from a CSV file ('-' = standard input)\n"
    "  -T, --time WHEN    event time of the figures (default: now): 2023-12-31\n"
    "                     (midnight, local time), 2023-12-31T12:00:00 (local time),\n"
    "                     2023-12-31T12:00:00+08:00, or @EPOCH_MILLISECONDS;\n"
    "                     local time is the daemon's (its calendar's zone); when\n"
    "                     it cannot be asked, the zone an earlier push kept, and\n"
    "                     without one the push is refused (give an offset)\n"
    "      --again        push figures with --time that were pushed before: they\n"
    "                     count twice (without it such a push is refused)\n"
    "      --spool DIR    keep the figures in DIR until acknowledged; figures left\n"
    "                     there by an earlier run are delivered first.  Without it,\n"
    "                     figures not acknowledged in time are not kept, and the\n"
    "                     client id lives in $XDG_STATE_HOME/tally/ (default\n"
    "                     ~/.local/state/tally/)\n"
    "      --flush        with --spool: only deliver what the spool holds, push\n"
    "                     nothing new\n"
    "      --timeout SEC  how long to wait for acknowledgements (default 10;\n"
    "                     connections refused for 1 s end it sooner)\n"
    "  -q, --quiet        print nothing when everything was accepted\n"
    CLI_OPTS_HELP_SERVER("", "this township's")
    CLI_OPTS_HELP_HELP("")
    "\n"
    "Exit status: 0 accepted, 1 rejected, 2 usage or input error, 3 not acknowledged\n"
    "in time, unanswered or refused for now (with --spool the figures stay spooled\n"
    "for the next run; without, they may or may not have been counted), 4 internal\n"
    "error (state or spool in use or unusable), 5 figures of an earlier run may or\n"
    "may not have been counted and were set aside (the message says where and what\n"
    "to do).  See tally(1).\n";
/* clang-format on */

/* The fate of this run's submission seq, NULL when out of memory. */
static sub_fate_t *fate_of(push_t *p, uint64_t seq)
{
    size_t i = (size_t)(seq - p->first_seq);
    if (i >= p->nfate) {
        if (VEC_RESERVE(p->fate, p->capfate, i + 1) != 0) {
            p->oom = true;
            return NULL;
        }
        memset(p->fate + p->nfate, 0, (i + 1 - p->nfate) * sizeof(*p->fate));
        p->nfate = i + 1;
    }
    return &p->fate[i];
}

static void on_ack(void *ctx, uint64_t seq, int status, uint32_t nsamples)
{
    push_t *p = ctx;
    (void)status; /* a duplicate was accepted by an earlier attempt: delivered all the same */
    if (seq < p->first_seq) {
        p->earlier_subs++;
        p->earlier_samples += nsamples;
        return;
    }
    if (p->accepted_subs == 0 || seq < p->lo)
        p->lo = seq;
    if (p->accepted_subs == 0 || seq > p->hi)
        p->hi = seq;
    p->accepted_subs++;
    p->accepted_samples += nsamples;
    sub_fate_t *f = fate_of(p, seq);
    if (f != NULL)
        *f = (sub_fate_t){.state = FATE_ACCEPTED, .nsamples = nsamples};
}

static void on_reject(void *ctx, uint64_t seq, int code, int sample, const char *field,
                      const char *message)
{
    push_t *p = ctx;
    p->rejected++;
    char why[1024];
    cli_push_format_reason(why, sizeof why, code, field, message);
    sub_fate_t *f = seq >= p->first_seq ? fate_of(p, seq) : NULL;
    char *m = f != NULL ? strdup(why) : NULL;
    if (m != NULL) {
        /* Said once the whole run is known, with the line at fault. */
        *f = (sub_fate_t){.state = FATE_REJECTED, .code = code, .sample = sample, .message = m};
        p->rejected_now++;
        return;
    }
    fprintf(stderr, "tally: rejected: %s", why);
    if (seq < p->first_seq)
        fprintf(stderr, " [submission %" PRIu64 " from an earlier run]", seq);
    fputc('\n', stderr);
    if (seq < p->first_seq)
        cli_push_keep_aside(p, seq, code);
}

static void push_free(push_t *p)
{
    for (size_t i = 0; i < p->naside; i++) {
        earlier_reject_t *e = &p->aside[i];
        free(e->path);
        free(e->csv);
        free(e->township);
        free(e->figures);
        free(e->why);
    }
    free(p->aside);
    for (size_t i = 0; i < p->nfate; i++)
        free(p->fate[i].message);
    free(p->fate);
    free(p->batch);
}

static void on_unknown(void *ctx, const tally_unknown_t *u)
{
    push_t *p = ctx;
    cli_unknown_add(&p->unknown, u);
}

/* s[0..len) for a message, its control characters escaped (\r, \n, \t,
 * else \xNN): a carriage return that a script saved with Windows line
 * ends leaves in an argument is invisible, and "value '20' is not an
 * integer" would make no sense.  Returns buf. */
static const char *escaped(const char *s, size_t len, char *buf, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n' || c == '\t')
            k += (size_t)snprintf(buf + k, cap - k, "\\%c",
                                  c == '\r'   ? 'r'
                                  : c == '\n' ? 'n'
                                              : 't');
        else if (c < 0x20 || c == 0x7F)
            k += (size_t)snprintf(buf + k, cap - k, "\\x%02X", c);
        else
            buf[k++] = (char)c;
    }
    buf[k] = '\0';
    return buf;
}

/* METRIC=VALUE; the value never contains '=', the metric may. */
static int parse_pair(const char *arg, csv_samples_t *out)
{
    char a[1024], part[1024];
    const char *cr = strchr(arg, '\r') != NULL ? " (\\r is a carriage return, as a script saved "
                                                 "with Windows line ends leaves: save it with "
                                                 "Unix line ends, or remove it)"
                                               : "";
    escaped(arg, strlen(arg), a, sizeof a);
    const char *eq = strrchr(arg, '=');
    if (eq == NULL)
        return cli_usage_error("push", "'%s' is not METRIC=VALUE%s", a, cr);
    size_t mlen = (size_t)(eq - arg);
    if (proto_name_check(arg, mlen) < 0)
        return cli_usage_error("push", "'%s': '%s' is not a valid metric name%s", a,
                               escaped(arg, mlen, part, sizeof part), cr);
    int64_t v;
    unsigned places;
    int rc = csv_parse_decimal(eq + 1, strlen(eq + 1), &v, &places);
    escaped(eq + 1, strlen(eq + 1), part, sizeof part);
    if (rc == TALLY_ERANGE)
        return cli_usage_error("push",
                               "'%s': value '%s' is out of range (a value must lie within "
                               "-9223372036854775808 .. 9223372036854775807)",
                               a, part);
    char advice[256];
    if (rc < 0)
        return cli_usage_error("push", "'%s': value '%s' is not a number%s%s", a, part,
                               csv_number_advice(eq + 1, strlen(eq + 1), advice, sizeof advice),
                               cr);
    if (csv_samples_add(out, arg, mlen, v, places, 0) < 0) {
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    return 0;
}

/* For qsort: samples by metric, then by their order in the input. */
static const csv_sample_t *by_metric_v;
static int by_metric(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(by_metric_v[i].metric, by_metric_v[j].metric);
    return c != 0 ? c : (i > j) - (i < j);
}

/* Most repeated metrics said at once, and most lines of one. */
#define REPEATS_SAID 5
#define LINES_SAID   8

/* One push gives each metric once: a metric on two rows of a file (ids:
 * a label and its id are one metric) is a row pasted twice more often
 * than not, and tallyd would add the two up (or keep the last, for a
 * gauge) as one figure; likewise METRIC=VALUE pairs.  Refused before
 * anything is sent, each such metric said with its lines and values
 * (file NULL: pairs).  0, CLI_USAGE or CLI_INTERNAL. */
static int repeated(const csv_samples_t *s, const char *file)
{
    size_t *ix = malloc(s->n * sizeof *ix + 1);
    if (ix == NULL) {
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    for (size_t i = 0; i < s->n; i++)
        ix[i] = i;
    by_metric_v = s->v;
    qsort(ix, s->n, sizeof *ix, by_metric);
    size_t said = 0;
    for (size_t a = 0, b; a < s->n; a = b) {
        for (b = a + 1; b < s->n && strcmp(s->v[ix[a]].metric, s->v[ix[b]].metric) == 0; b++)
            ;
        if (b - a < 2 || said++ >= REPEATS_SAID)
            continue;
        char where[768] = "", num[64];
        size_t len = 0;
        for (size_t k = a; k < b && k - a < LINES_SAID; k++) {
            const csv_sample_t *x = &s->v[ix[k]];
            const char *sep = k == a ? "" : k + 1 == b ? " and " : ", ";
            csv_decimal_text(x->value, x->places, num, sizeof num);
            int w = file != NULL
                        ? snprintf(where + len, sizeof where - len, "%s%u (%s)", sep, x->line, num)
                        : snprintf(where + len, sizeof where - len, "%s%s", sep, num);
            len += w > 0 ? (size_t)w : 0;
        }
        if (b - a > LINES_SAID)
            snprintf(where + len, sizeof where - len, " and %zu more", b - a - LINES_SAID);
        if (file != NULL)
            fprintf(stderr, "tally push: %s: metric '%s' is on %zu lines: %s\n",
                    strcmp(file, "-") == 0 ? "stdin" : file, s->v[ix[a]].metric, b - a, where);
        else
            fprintf(stderr, "tally push: metric '%s' is given %zu times: %s\n", s->v[ix[a]].metric,
                    b - a, where);
    }
    free(ix);
    if (said == 0)
        return 0;
    return cli_usage_error("push",
                           "one push gives each metric once: tallyd would take a metric's "
                           "values as one figure (a counter's added up, a gauge's last); give "
                           "it once (with their sum, if each is meant); nothing was sent");
}

static int read_csv(const char *file, bool quiet, csv_samples_t *out)
{
    char err[1024];
    char *buf;
    size_t len;
    int rc = cli_read_input(file, &buf, &len, err, sizeof err);
    if (rc == TALLY_ENOMEM) {
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    if (rc < 0)
        return cli_usage_error("push", "%s", err);
    const char *name = strcmp(file, "-") == 0 ? "stdin" : file;
    if (len == 0 && strcmp(file, "-") == 0) {
        free(buf);
        /* Typically a script or cron job that meant to give figures. */
        return cli_usage_error("push", "nothing to push: standard input is empty (give "
                                       "METRIC=VALUE pairs, --file FILE.csv, or CSV on standard "
                                       "input)");
    }
    rc = csv_parse_samples(buf, len, name, out, err, sizeof err);
    free(buf);
    if (rc == TALLY_ENOMEM) {
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    if (rc < 0) {
        fprintf(stderr, "tally push: %s\n", err);
        return CLI_USAGE;
    }
    if (out->n == 0) {
        fprintf(stderr, "tally push: %s has a header but no figures%s\n", name,
                out->ratios > 0 && out->blanks > 0 ? " (only derived ratios and empty values)"
                : out->ratios > 0                  ? " (only derived ratios)"
                : out->blanks > 0                  ? " (only empty values)"
                                                   : "");
        return CLI_USAGE;
    }
    if (out->ratios > 0 && !quiet)
        fprintf(stderr,
                "tally push: %s: %zu row%s of derived ratios left out (kind 'ratio': tallyd "
                "computes them from their numerators and denominators)\n",
                name, out->ratios, cli_push_plural(out->ratios));
    if (out->blanks > 0 && !quiet)
        fprintf(stderr,
                "tally push: %s: %zu row%s without a value left out (an empty cell is no figure: "
                "a counter adds nothing, a gauge keeps its level)\n",
                name, out->blanks, cli_push_plural(out->blanks));
    return 0;
}

/* Open the publisher on the spool, or on the user's state without one,
 * waiting up to timeout_ms for another `tally push` that holds it (said
 * unless quiet). */
static int open_client(cli_global_t *g, const char *town, const char *spool, int timeout_ms,
                       bool quiet, const tally_curve_t *curve, push_t *p, tally_client_t **out)
{
    char err[1024], state[4096 + 32];
    int rc = cli_state_dir(state, sizeof state - sizeof CLI_STATE_FILE - 1, err, sizeof err);
    if (spool != NULL && rc == 0 && cli_same_dir(spool, state))
        /* Both would keep their id in DIR/client.state under different
         * locks: two clients with one id. */
        return cli_usage_error("push",
                               "--spool %s is the directory of the user's client state; give the "
                               "spool a directory of its own, e.g. %s/spool",
                               spool, state);
    if (spool == NULL && rc < 0) {
        cli_error("%s", err);
        return CLI_INTERNAL;
    }
    strcat(state, "/" CLI_STATE_FILE);
    tally_client_opts_t o = {
        .curve = curve,
        .spool_dir = spool,
        .state_file = spool == NULL ? state : NULL,
        .on_ack = on_ack,
        .on_reject = on_reject,
        .on_unknown = on_unknown,
        .cb_ctx = p,
        .errbuf = err,
        .errbuf_len = sizeof err,
    };
    rc = tally_client_new(g->server, town, &o, out);
    if (rc == TALLY_EEXIST) {
        /* cron and a person, say: the second waits for the first. */
        if (!quiet)
            fprintf(stderr,
                    "tally push: another tally push is using %s; waiting up to %g s for it to "
                    "finish\n",
                    spool != NULL ? spool : state, timeout_ms / 1000.0);
        o.lock_timeout_ms = (unsigned)timeout_ms;
        rc = tally_client_new(g->server, town, &o, out);
        if (rc == TALLY_EEXIST) {
            cli_error("another tally push is still using %s after %g s; try again when it has "
                      "finished",
                      spool != NULL ? spool : state, timeout_ms / 1000.0);
            return CLI_INTERNAL;
        }
    }
    if (rc == TALLY_EBADNAME || rc == TALLY_ETOOLONG || rc == TALLY_EUTF8 || rc == TALLY_EINVAL)
        return cli_usage_error("push", "%s", err);
    if (rc < 0) {
        cli_error("%s", err);
        return CLI_INTERNAL;
    }
    return CLI_OK;
}

/* tally_client_hello, looking at the connection meanwhile: a failed
 * security handshake will not get better by waiting, and connections
 * refused for CLI_REFUSED_MS mean that no daemon listens there.  *hopeless
 * says whether it ended for either reason. */
static int hello(tally_client_t *c, int timeout_ms, bool *hopeless)
{
    int64_t end = cli_clock_ms(CLOCK_MONOTONIC) + timeout_ms;
    for (;;) {
        int64_t left = end - cli_clock_ms(CLOCK_MONOTONIC);
        int rc = tally_client_hello(c, left < 100 ? (int)(left > 0 ? left : 0) : 100);
        *hopeless =
            tally_client_refused_ms(c) >= CLI_REFUSED_MS || cli_link_final(tally_client_link(c));
        if (rc != TALLY_ETIMEDOUT || left <= 100 || *hopeless)
            return rc;
    }
}

int cli_push_wait_settled(tally_client_t *c, int64_t deadline)
{
    int fd;
    int rc = tally_client_fd(c, &fd);
    while (rc == 0 && (rc = tally_client_process(c)) == 0 && tally_client_pending(c) > 0) {
        int64_t left = deadline - cli_clock_ms(CLOCK_MONOTONIC);
        if (left <= 0)
            return TALLY_ETIMEDOUT;
        int wait = left < 50 ? (int)left : 50, due = tally_client_next_timeout_ms(c);
        if (due >= 0 && due < wait)
            wait = due;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        (void)poll(&pfd, 1, wait); /* ZMQ_FD is edge-like: process after every wake-up */
    }
    return rc;
}

static int add_batch(push_t *p, size_t first, size_t end, uint64_t seq, uint64_t seq_end)
{
    if (first == end && seq == seq_end)
        return 0;
    if (VEC_RESERVE(p->batch, p->capbatch, p->nbatch + 1) != 0)
        return TALLY_ENOMEM;
    p->batch[p->nbatch++] = (batch_t){first, end, seq, seq_end};
    return 0;
}

/* libtally failed after the figures [0, added) were handed to it, those
 * from first on since the last batch was noted, its submissions from
 * seq before on: say its error, note the batch the failing call closed,
 * and set *unsaved to the first figure in no submission (a submission
 * that cannot be persisted whole is undone, its figures left in the
 * batch).  CLI_INTERNAL. */
static int lib_failed(tally_client_t *c, push_t *p, size_t first, size_t added, uint64_t before,
                      size_t *unsaved)
{
    cli_error("%s", tally_client_last_error(c));
    size_t open = tally_client_batch_size(c);
    *unsaved = open <= added - first ? added - open : first;
    if (add_batch(p, first, *unsaved, before, tally_client_next_seq(c)) != 0)
        p->oom = true;
    return CLI_INTERNAL;
}

/* Add the figures in order, keeping which submissions each batch became.
 * While wait is set (the daemon answered HELLO), each batch the library
 * closes is waited for before the next is formed, and a rejection stops
 * the push there: what follows is never sent, so that the figures counted
 * are those before the one at fault (said by cli_push_report_fates) rather than
 * every batch but one.  Once an answer takes until deadline, the rest is
 * added without waiting (spooled, or left for the timeout's report).
 * *stopped_at: the first figure not sent, n when all were.  When libtally
 * fails (it cannot write the spool or the client state, say), *unsaved
 * is the first figure in no submission (cli_push_report_stopped), and stays
 * SIZE_MAX otherwise. */
static int add_samples(tally_client_t *c, const csv_samples_t *samples, int64_t time_ms, push_t *p,
                       bool wait, int64_t deadline, size_t *stopped_at, size_t *unsaved)
{
    size_t first = 0;
    *stopped_at = samples->n;
    for (size_t i = 0; i < samples->n; i++) {
        uint64_t before = tally_client_next_seq(c);
        int rc = tally_client_add(c, samples->v[i].metric, samples->v[i].value, time_ms);
        if (rc == TALLY_ERANGE)
            return cli_usage_error("push", "%s", tally_client_last_error(c));
        if (rc < 0)
            return lib_failed(c, p, first, i, before, unsaved);
        uint64_t after = tally_client_next_seq(c);
        if (after == before)
            continue;
        /* figures [first, i) were closed into [before, after); i opened
         * the next batch */
        if (add_batch(p, first, i, before, after) != 0) {
            cli_error("out of memory");
            return CLI_INTERNAL;
        }
        first = i;
        if (!wait)
            continue;
        rc = cli_push_wait_settled(c, deadline);
        if (rc == TALLY_ETIMEDOUT) {
            wait = false;
        } else if (rc < 0) {
            return lib_failed(c, p, first, i + 1, after, unsaved);
        } else if (p->rejected_now > 0) {
            *stopped_at = i; /* the open batch goes with the client */
            return CLI_OK;
        }
    }
    uint64_t before = tally_client_next_seq(c);
    int rc = tally_client_send(c);
    if (rc < 0)
        return lib_failed(c, p, first, samples->n, before, unsaved);
    if (add_batch(p, first, samples->n, before, tally_client_next_seq(c)) != 0) {
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    return CLI_OK;
}

/* Whether tallyd rejected a submission of this run with code. */
static bool rejected_with(const push_t *p, int code)
{
    for (size_t i = 0; i < p->nfate; i++)
        if (p->fate[i].state == FATE_REJECTED && p->fate[i].code == code)
            return true;
    return false;
}

/* A push with --time: what tells whether its figures were pushed before
 * (cli_names.h), so that the same figures are not counted twice. */
typedef struct guard {
    char hex[CLI_PUSHED_HEX + 1];     /* cli_pushed_digest */
    char old_hex[CLI_PUSHED_HEX + 1]; /* the same with the server, as earlier builds kept it */
    const char *time_text;            /* --time as given */
    bool again;                       /* --again: push them all the same */
} guard_t;

/* Where a push remembers its figures: the directory where it keeps what
 * it learns (the spool's, else the user's state directory) and, with a
 * spool, the user's too, so that a push without --spool finds them as
 * well.  How many of dirs were filled. */
static size_t guard_dirs(const char *spool, char dirs[2][4096])
{
    size_t nd = 0;
    if (cli_push_kept_dir(spool, dirs[nd], sizeof dirs[nd]) == 0)
        nd++;
    if (spool != NULL && cli_push_kept_dir(NULL, dirs[nd], sizeof dirs[nd]) == 0)
        nd++;
    return nd;
}

static void local_time(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    snprintf(buf, cap, "?");
    if (localtime_r(&t, &tm) != NULL)
        strftime(buf, cap, "%Y-%m-%d %H:%M:%S %z", &tm);
}

/* An earlier push of the same figures that never ended (killed, or its
 * answer never came) began at rec: said. */
static void say_unfinished(const guard_t *gd, const cli_pushed_t *rec, const char *dir,
                           const char *spool, const char *town, size_t n)
{
    char at[64];
    local_time(rec->when_ms, at, sizeof at);
    bool one = n == 1;
    fprintf(stderr,
            "tally push: a push of %s%zu figure%s of %s at --time '%s' began on %s (as %s/%s "
            "remembers) and ended before tallyd had acknowledged %s: it was interrupted, or no "
            "answer came.  What it sent may have been counted%s, so nothing was sent now: "
            "pushing %s again could count %s twice.  See what tallyd counted with `tally get "
            "--town %s --period DAY`, then push only what is missing, or push %s with --again "
            "if none of %s was counted\n",
            one ? "" : "these ", n, one ? "" : "s", town, gd->time_text, at, dir, CLI_PUSHED_FILE,
            one ? "it" : "them all",
            spool != NULL ? "; what it kept in the spool is delivered whatever happens" : "",
            one ? "it" : "them", one ? "it" : "them", town, one ? "it" : "them",
            one ? "it" : "them");
}

/* Whether the figures of g were pushed before, as remembered where this
 * push remembers them (guard_dirs): said (the push is refused), true.
 * An earlier push that began but never ended refuses this one unless it
 * is known to have sent nothing: c (the same client, same spool or
 * state) has not made a submission since the one it was to begin with. */
static bool pushed_before(const guard_t *gd, const char *spool, const char *town, size_t n,
                          const tally_client_t *c)
{
    char dirs[2][4096];
    size_t nd = guard_dirs(spool, dirs);
    cli_pushed_t idle = {0};
    for (size_t i = 0; i < nd; i++) {
        cli_pushed_t rec;
        if (cli_pushed_find(dirs[i], gd->hex, &rec) != 1 &&
            cli_pushed_find(dirs[i], gd->old_hex, &rec) != 1)
            continue;
        if (rec.how == CLI_PUSHED_BEGUN) {
            /* It made no submission: nothing of it can count (the user's
             * directory keeps the same line of a push with a spool). */
            if (i == 0 && tally_client_next_seq(c) == rec.first_seq) {
                idle = rec;
                continue;
            }
            if (i > 0 && rec.when_ms == idle.when_ms && rec.first_seq == idle.first_seq)
                continue;
            say_unfinished(gd, &rec, dirs[i], spool, town, n);
            return true;
        }
        char at[64];
        local_time(rec.when_ms, at, sizeof at);
        bool one = n == 1;
        char these[64];
        snprintf(these, sizeof these, one ? "this figure" : "these %zu figures", n);
        fprintf(stderr,
                "tally push: %s of %s at --time '%s' %s %s on %s (as %s/%s remembers): pushing "
                "%s again would count %s twice, so nothing was sent.  If %s meant to count "
                "again, push %s with --again\n",
                these, town, gd->time_text, one ? "was" : "were",
                rec.how == CLI_PUSHED_SPOOLED ? "kept in the spool for tallyd"
                                              : "accepted by tallyd",
                at, dirs[i], CLI_PUSHED_FILE, one ? "it" : "them", one ? "it" : "them",
                one ? "it is" : "they are", one ? "it" : "them");
        return true;
    }
    return false;
}

/* Remember the figures of g as rec says (NULL: forget them) wherever
 * this push remembers them: begun before the first submission is made,
 * accepted or kept in the spool once every figure is, forgotten when
 * nothing of them can have counted.  A second push of figures remembered
 * is refused (pushed_before). */
static void remember(const guard_t *gd, const char *spool, const cli_pushed_t *rec)
{
    char dirs[2][4096], err[512] = "";
    size_t nd = guard_dirs(spool, dirs);
    for (size_t i = 0; i < nd; i++) {
        err[0] = '\0';
        if (cli_pushed_add(dirs[i], gd->hex, rec, err, sizeof err) != 0 && i == 0) {
            fprintf(stderr,
                    "tally push: these figures could not be remembered (%s): a second push of "
                    "them would not be refused\n",
                    err[0] ? err : "out of memory");
            return;
        }
    }
    if (nd == 0)
        fprintf(stderr, "tally push: these figures could not be remembered (no directory to keep "
                        "it in): a second push of them would not be refused\n");
}

/* Whether nothing of this run's submissions can have counted: none was
 * made, or tallyd rejected each. */
static bool none_counted(const push_t *p, uint64_t next_seq)
{
    if (p->accepted_subs > 0 || p->oom)
        return false;
    for (uint64_t seq = p->first_seq; seq < next_seq; seq++) {
        size_t i = (size_t)(seq - p->first_seq);
        if (i >= p->nfate || p->fate[i].state != FATE_REJECTED)
            return false;
    }
    return true;
}

/* Push samples (read from file, "-" for standard input, NULL for
 * METRIC=VALUE pairs) for town.  gd: with --time, else NULL; news: the
 * names of metrics new to tallyd (NULL: none). */
static int deliver(cli_global_t *g, const char *town, const char *spool, int64_t time_ms,
                   int timeout_ms, bool quiet, const csv_samples_t *samples, const char *file,
                   const guard_t *gd, const push_new_t *news, const cli_scales_t *sc)
{
    push_t p = {.scales = sc, .unknown.scales = sc};
    const tally_curve_t *curve;
    int status = cli_curve(g, "push", &curve);
    if (status != 0)
        return status;
    tally_client_t *c;
    status = open_client(g, town, spool, timeout_ms, quiet, curve, &p, &c);
    if (status != CLI_OK) {
        cli_unknown_report(stderr, &p.unknown);
        cli_unknown_free(&p.unknown);
        return status;
    }
    p.c = c;
    /* Under the lock of the spool or the user's state: a second push of
     * the same figures waits for the first, and then finds them.  Refused,
     * the push still delivers what the spool holds, as --flush would. */
    csv_samples_t none = {0};
    bool refused = false;
    if (gd != NULL && !gd->again && pushed_before(gd, spool, town, samples->n, c)) {
        if (spool == NULL || tally_client_pending(c) == 0) {
            tally_client_destroy(&c);
            return CLI_USAGE;
        }
        refused = true;
        samples = &none;
        gd = NULL;
        news = NULL;
    }
    int64_t start = cli_clock_ms(CLOCK_MONOTONIC);
    int rc = 0;
    bool sent = false, hopeless = false;
    if (samples->n > 0 || tally_client_pending(c) > 0) {
        /* The daemon's limits and client_expiry_ms first: they decide how
         * the figures are split and under which client id they go. */
        rc = hello(c, timeout_ms, &hopeless);
        sent = rc == 0;
    }
    if (sent && town != NULL)
        cli_push_learn_zone(g, spool, curve, timeout_ms);
    p.first_seq = tally_client_next_seq(c);
    if (rc == TALLY_ETIMEDOUT && spool == NULL) {
        status = cli_push_report_timeout(g, c, town, spool, timeout_ms, false);
    } else if (rc == 0 || rc == TALLY_ETIMEDOUT) {
        size_t stopped_at = samples->n, unsaved = SIZE_MAX;
        const char *name = file == NULL ? "" : strcmp(file, "-") == 0 ? "stdin" : file;
        /* Remembered before the first submission is made, so that a run
         * killed before its answer leaves what a second run must know. */
        if (gd != NULL && samples->n > 0)
            remember(gd, spool,
                     &(cli_pushed_t){.when_ms = cli_clock_ms(CLOCK_REALTIME),
                                     .how = CLI_PUSHED_BEGUN,
                                     .first_seq = p.first_seq});
        status =
            add_samples(c, samples, time_ms, &p, sent, start + timeout_ms, &stopped_at, &unsaved);
        if (unsaved != SIZE_MAX)
            cli_push_report_stopped(c, &p, samples, unsaved, name, town, spool, sent,
                                    start + timeout_ms);
        int64_t left = timeout_ms - (cli_clock_ms(CLOCK_MONOTONIC) - start);
        if (!sent && hopeless)
            left = 0; /* spooled now; no answer can come through this connection */
        /* add_samples closed the last batch unless it stopped, and then
         * the open batch goes with the client.  Not tally_client_flush:
         * its timeout replaces the client's last error, which tells what
         * tallyd last refused for now (cli_push_report_timeout). */
        if (status == CLI_OK && stopped_at == samples->n)
            rc = cli_push_wait_settled(c, cli_clock_ms(CLOCK_MONOTONIC) + (left > 0 ? left : 0));
        /* Every figure accepted, or kept in the spool for the next push
         * to deliver: counted once unless pushed again. */
        if (gd != NULL && status == CLI_OK && stopped_at == samples->n && unsaved == SIZE_MAX &&
            p.rejected_now == 0 && (p.accepted_samples == samples->n || spool != NULL))
            remember(gd, spool,
                     &(cli_pushed_t){.when_ms = cli_clock_ms(CLOCK_REALTIME),
                                     .how = p.accepted_samples < samples->n ? CLI_PUSHED_SPOOLED
                                                                            : CLI_PUSHED_ACCEPTED});
        else if (gd != NULL && samples->n > 0 && none_counted(&p, tally_client_next_seq(c)))
            remember(gd, spool, NULL);
        if (status == CLI_OK && !quiet)
            cli_push_print_delivered(&p, town, spool, tally_client_pending(c));
        if (status == CLI_OK)
            cli_push_report_fates(&p, samples, name);
        if (status == CLI_OK && town != NULL && rejected_with(&p, TALLY_EUNKTOWN))
            cli_push_unknown_town_hint(g, curve, timeout_ms, town);
        if (status == CLI_OK && rejected_with(&p, TALLY_EUNKMETRIC))
            cli_push_unknown_metric_hint(g, curve, timeout_ms, samples);
        else if (status == CLI_OK && news != NULL)
            cli_push_report_new_metrics(g, curve, timeout_ms, news);
        if (status == CLI_OK && rc == TALLY_ETIMEDOUT)
            status = cli_push_report_timeout(g, c, town, spool, timeout_ms, sent);
    }
    if (status == CLI_OK && rc < 0 && rc != TALLY_ETIMEDOUT) {
        cli_error("%s", tally_client_last_error(c));
        status = CLI_INTERNAL;
    }
    if (status == CLI_OK && p.rejected > 0)
        status = CLI_REJECTED;
    if (status == CLI_OK && refused)
        status = CLI_USAGE;
    cli_push_report_aside(&p, spool);
    cli_unknown_report(stderr, &p.unknown);
    if (status == CLI_OK && (p.unknown.n > 0 || p.unknown.oom))
        status = CLI_UNKNOWN_FATE;
    cli_unknown_free(&p.unknown);
    tally_client_destroy(&c);
    push_free(&p);
    return status;
}

/* --time (text, read as ms) within the protocol's range, give or take
 * slack: 0 or the usage error (printed). */
static int check_time_range(const char *text, int64_t ms, int64_t slack)
{
    if (ms >= PROTO_TIME_MIN - slack && ms < PROTO_TIME_MAX + slack)
        return 0;
    /* Said in UTC, where the bounds are: midnight of 1 January 2000 in
     * Shanghai is still 1999 there. */
    char utc[32] = "?";
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
    struct tm tm;
    if (gmtime_r(&t, &tm) != NULL)
        strftime(utc, sizeof utc, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return cli_usage_error("push",
                           "--time '%s' is %s, %s: tally takes times from 2000-01-01T00:00:00Z "
                           "to 2099-12-31T23:59:59Z",
                           text, utc, ms < PROTO_TIME_MIN ? "before 2000 in UTC" : "after 2099");
}

enum { OPT_SPOOL = CLI_OPT_OWN, OPT_FLUSH, OPT_AGAIN };

int cli_push(int argc, char **argv, cli_global_t *g)
{
    static const struct option own[] = {
        {"town", required_argument, NULL, 't'},  {"file", required_argument, NULL, 'f'},
        {"time", required_argument, NULL, 'T'},  {"spool", required_argument, NULL, OPT_SPOOL},
        {"flush", no_argument, NULL, OPT_FLUSH}, {"again", no_argument, NULL, OPT_AGAIN},
        {"quiet", no_argument, NULL, 'q'},       {NULL, 0, NULL, 0},
    };
    cli_opts_t o;
    cli_opts_init(&o, "push", cli_push_usage, g, CLI_OPTS_TIMEOUT | CLI_OPTS_SERVER, own);
    const char *town = NULL, *file = NULL, *spool = NULL;
    int64_t time_ms = 0;
    const char *time_text = NULL; /* --time as given */
    bool time_local = false;      /* ... without an offset */
    bool quiet = false, flush = false, again = false;
    char err[512];
    int c, status;
    while ((status = cli_opts_next(&o, argc, argv, &c)) == CLI_CONTINUE && c != -1) {
        /* One of each: a second one silently replaced the first (push -t
         * a -t b counted the figures for b), as the reading commands
         * refuse a second --town (cli_opts.c). */
        const char *const *seen = c == 't'         ? &town
                                  : c == 'f'       ? &file
                                  : c == 'T'       ? &time_text
                                  : c == OPT_SPOOL ? &spool
                                                   : NULL;
        if (seen != NULL && *seen != NULL && strcmp(*seen, optarg) != 0)
            return cli_usage_error("push", "%s given twice ('%s', '%s'): one per push",
                                   c == 't'   ? "--town"
                                   : c == 'f' ? "--file"
                                   : c == 'T' ? "--time"
                                              : "--spool",
                                   *seen, optarg);
        switch (c) {
        case 't':
            town = optarg;
            break;
        case OPT_FLUSH:
            flush = true;
            break;
        case OPT_AGAIN:
            again = true;
            break;
        case 'f':
            file = optarg;
            break;
        case 'T':
            if (when_parse(optarg, NULL, &time_ms, &time_local, err, sizeof err) < 0)
                return cli_usage_error("push", "--time: %s", err);
            time_text = optarg;
            break;
        case OPT_SPOOL:
            spool = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        }
    }
    if (status != CLI_CONTINUE)
        return status;
    /* Before anything is asked of tallyd: a time out of range in any zone
     * (read in UTC so far, when it has no offset). */
    if (time_text != NULL && (status = check_time_range(time_text, time_ms, 14 * 3600000)) != 0)
        return status;
    if (town != NULL && proto_name_check(town, strlen(town)) < 0)
        return cli_usage_error("push", "--town '%s' is not a valid township name", town);
    if (town != NULL && proto_township_reserved(town, strlen(town)))
        return cli_usage_error("push",
                               "--town '%s' is reserved: it names the county-wide tallies; give "
                               "the township's own id",
                               town);
    bool pairs = optind < argc;
    if (flush) {
        /* Each spooled submission names its township: --town is not
         * needed, and not used. */
        if (spool == NULL)
            return cli_usage_error("push", "--flush needs --spool DIR");
        if (pairs || file != NULL)
            return cli_usage_error("push", "--flush pushes nothing new: drop the figures");
        csv_samples_t none = {0};
        cli_scales_t sc = {0};
        int rc = cli_push_kept_scales(g, spool, &sc) == 0
                     ? deliver(g, NULL, spool, 0, o.timeout_ms, quiet, &none, NULL, NULL, NULL, &sc)
                     : (cli_error("out of memory"), CLI_INTERNAL);
        cli_scales_free(&sc);
        return rc;
    }
    if (town == NULL)
        return cli_usage_error("push", "--town NAME is required");
    if (again && time_text == NULL)
        /* Only a push with --time is remembered (and refused again). */
        return cli_usage_error("push", "--again applies to figures pushed with --time, which "
                                       "a push refuses to send twice; without --time nothing is "
                                       "refused as pushed before, so --again is not needed");
    if (pairs && file != NULL)
        return cli_usage_error("push", "give METRIC=VALUE pairs or --file, not both");
    if (!pairs && file == NULL) {
        if (isatty(STDIN_FILENO))
            return cli_usage_error("push", "nothing to push: give METRIC=VALUE pairs, --file "
                                           "FILE.csv, or CSV on standard input");
        file = "-";
    }
    csv_samples_t samples = {0};
    cli_scales_t sc = {0};
    int rc = 0;
    for (int i = optind; i < argc && rc == 0; i++)
        rc = parse_pair(argv[i], &samples);
    if (rc == 0 && file != NULL)
        rc = read_csv(file, quiet, &samples);
    if (rc == 0) {
        char town_id[PROTO_NAME_MAX + 1];
        push_new_t news = {0};
        rc = cli_push_resolve(g, spool, &town, town_id, sizeof town_id, &samples,
                              file != NULL && strcmp(file, "-") == 0 ? "stdin" : file, o.timeout_ms,
                              &news, &sc);
        if (rc == 0)
            rc = repeated(&samples, file);
        if (rc == 0 && time_local)
            rc = cli_push_time_in_daemon_zone(g, spool, time_text, &time_ms, o.timeout_ms);
        if (time_text != NULL && time_ms == 0)
            time_ms = 1; /* 0 would mean "now" to the library */
        if (time_ms == 0)
            time_ms = cli_clock_ms(CLOCK_REALTIME); /* one reading: one event time for all */
        if (rc == 0 && time_text != NULL)
            rc = check_time_range(time_text, time_ms, 0);
        /* The figures as they are sent (ids, the time read in the
         * daemon's zone): 高观镇 and gaoguan are one township. */
        guard_t gd = {.time_text = time_text, .again = again};
        if (rc == 0 && time_text != NULL &&
            (cli_pushed_digest(NULL, town, time_ms, &samples, gd.hex) != 0 ||
             cli_pushed_digest(g->server, town, time_ms, &samples, gd.old_hex) != 0)) {
            cli_error("out of memory");
            rc = CLI_INTERNAL;
        }
        if (rc == 0)
            rc = deliver(g, town, spool, time_ms, o.timeout_ms, quiet, &samples, file,
                         time_text != NULL ? &gd : NULL, &news, &sc);
    }
    cli_scales_free(&sc);
    csv_samples_free(&samples);
    return rc;
}
