/* cli_push.c - the tally command (client/cli/): `tally push`, send
 * figures of one township and wait until the daemon has acknowledged
 * them. */
#include <errno.h>
#include <poll.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    "Values are integers.  A CSV file needs a header row naming a 'metric' and a\n"
    "'value' column; other columns are ignored.  Write numbers without thousands\n"
    "separators (1000, not 1,000).  Without pairs or --file, the CSV is read from\n"
    "standard input when it is not a terminal.\n"
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
    "                     it cannot be asked, the TZ variable's, UTC when unset\n"
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

/* What became of one submission of this run. */
typedef struct sub_fate {
    enum { FATE_PENDING, FATE_ACCEPTED, FATE_REJECTED } state;
    uint32_t nsamples; /* accepted: its samples */
    int code, sample;  /* rejected: the code and the sample at fault (-1: none) */
    char *message;     /* rejected: the daemon's reason, "field: why" */
} sub_fate_t;

/* The samples [first, end) of the figures closed into the submissions
 * [seq, seq_end) of this run, in order. */
typedef struct batch {
    size_t first, end;
    uint64_t seq, seq_end;
} batch_t;

/* A submission an earlier run left in the spool, rejected for good in
 * this one (tally_client_rejected_earlier). */
typedef struct earlier_reject {
    uint64_t seq;
    int code;       /* tallyd's reason */
    char *path;     /* SPOOL/rejected/....sub; "" when it could not be kept */
    char *csv;      /* its figures as CSV next to it; NULL: none written */
    char *township; /* "" when its figures could not be read */
    int64_t time_ms;
    uint32_t nsamples;
    char *figures; /* not kept: its figures as CSV text, to be printed */
    char *why;     /* not kept: why (the library's sentence) */
} earlier_reject_t;

typedef struct push {
    tally_client_t *c;  /* for the accessors callbacks may read */
    uint64_t first_seq; /* seqs >= first_seq belong to this run */
    size_t accepted_samples, accepted_subs;
    uint64_t lo, hi; /* seq range accepted in this run */
    size_t earlier_samples, earlier_subs;
    size_t rejected, rejected_now; /* all, and this run's */
    cli_unknown_t unknown;
    earlier_reject_t *aside; /* rejected submissions of earlier runs */
    size_t naside, capaside;
    bool aside_oom;
    char aside_err[512]; /* the last failure to write a CSV of one; "" if none */
    sub_fate_t *fate;    /* [seq - first_seq] */
    size_t nfate, capfate;
    batch_t *batch;
    size_t nbatch, capbatch;
    bool oom;
} push_t;

/* What tallyd last said of a submission it refused for now, with a code
 * that is retryable (PROTOCOL.md 11.1: RATE_LIMITED, UNAVAILABLE, BUSY). */
typedef struct refusal {
    uint64_t seq;
    int code;
    char words[1024]; /* the daemon's, "field: message" */
} refusal_t;

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

/* "field: message (CODE)", the field left out when the message starts
 * with it already, as the daemon's usually do. */
static void format_reason(char *buf, size_t cap, int code, const char *field, const char *message)
{
    if (field == NULL || strncmp(message, field, strlen(field)) == 0)
        field = "";
    snprintf(buf, cap, "%s%s%s (%s)", field, field[0] ? ": " : "", message, tally_errname(code));
}

/* SPOOL/rejected/X.sub -> SPOOL/rejected/X.csv with its figures, NULL
 * when it cannot be written (err says why). */
static char *write_rejected_csv(const tally_rejected_t *r, char *err, size_t errlen)
{
    if (r->nsamples == 0) {
        snprintf(err, errlen, "its figures could not be read");
        return NULL;
    }
    return cli_sub_csv(r->path, r->samples, r->nsamples, err, errlen);
}

/* The figures of r as CSV text (malloc'ed; NULL when out of memory). */
static char *figures_text(const tally_rejected_t *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (fp == NULL)
        return NULL;
    fputs("metric,value\n", fp);
    for (uint32_t i = 0; i < r->nsamples; i++)
        fprintf(fp, "%s,%" PRId64 "\n", r->samples[i].metric, r->samples[i].value);
    if (fclose(fp) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Keep what tally_client_rejected_earlier says of an earlier run's
 * submission just rejected, writing its figures as CSV beside it in
 * SPOOL/rejected/, for the report at the end (report_aside). */
static void keep_aside(push_t *p, uint64_t seq, int code)
{
    const tally_rejected_t *r = tally_client_rejected_earlier(p->c);
    if (r == NULL)
        return;
    if (VEC_RESERVE(p->aside, p->capaside, p->naside + 1) != 0) {
        p->aside_oom = true;
        return;
    }
    earlier_reject_t *e = &p->aside[p->naside];
    *e = (earlier_reject_t){
        .seq = seq, .code = code, .time_ms = r->time_ms, .nsamples = r->nsamples};
    e->path = strdup(r->path);
    e->township = strdup(r->township);
    if (r->path[0] != '\0')
        e->csv = write_rejected_csv(r, p->aside_err, sizeof p->aside_err);
    else
        e->why = strdup(tally_client_last_error(p->c));
    if (e->csv == NULL)
        e->figures = figures_text(r); /* printed, then: nowhere else to read them */
    if (e->path == NULL || e->township == NULL) {
        free(e->path);
        free(e->township);
        free(e->csv);
        free(e->figures);
        free(e->why);
        p->aside_oom = true;
        return;
    }
    p->naside++;
}

static void on_reject(void *ctx, uint64_t seq, int code, int sample, const char *field,
                      const char *message)
{
    push_t *p = ctx;
    p->rejected++;
    char why[1024];
    format_reason(why, sizeof why, code, field, message);
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
        keep_aside(p, seq, code);
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

/* METRIC=VALUE; the value never contains '=', the metric may. */
static int parse_pair(const char *arg, csv_samples_t *out)
{
    const char *eq = strrchr(arg, '=');
    if (eq == NULL)
        return cli_usage_error("push", "'%s' is not METRIC=VALUE", arg);
    size_t mlen = (size_t)(eq - arg);
    if (proto_name_check(arg, mlen) < 0)
        return cli_usage_error("push", "'%s': '%.*s' is not a valid metric name", arg, (int)mlen,
                               arg);
    int64_t v;
    int rc = csv_parse_int64(eq + 1, strlen(eq + 1), &v);
    if (rc == TALLY_ERANGE)
        return cli_usage_error("push",
                               "'%s': value '%s' is out of range (a value must lie within "
                               "-9223372036854775808 .. 9223372036854775807)",
                               arg, eq + 1);
    if (rc < 0)
        return cli_usage_error("push", "'%s': value '%s' is not an integer", arg, eq + 1);
    if (csv_samples_add(out, arg, mlen, v, 0) < 0) {
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    return 0;
}

static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
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
                name, out->ratios, plural(out->ratios));
    if (out->blanks > 0 && !quiet)
        fprintf(stderr,
                "tally push: %s: %zu row%s without a value left out (an empty cell is no figure: "
                "a counter adds nothing, a gauge keeps its level)\n",
                name, out->blanks, plural(out->blanks));
    return 0;
}

static const char *them(size_t n)
{
    return n == 1 ? "it" : "them";
}

/* Open the publisher on the spool, or on the user's state without one,
 * waiting up to timeout_ms for another `tally push` that holds it. */
static int open_client(cli_global_t *g, const char *town, const char *spool, int timeout_ms,
                       const tally_curve_t *curve, push_t *p, tally_client_t **out)
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

/* The refusal for now that tallyd said last of a submission still
 * pending, into *r: then every answer tallyd gave this run about any
 * pending submission was such a refusal (any other answer settles it). */
static bool refusal_now(tally_client_t *c, refusal_t *r)
{
    const char *words;
    r->code = tally_client_last_refusal(c, &r->seq, &words);
    snprintf(r->words, sizeof r->words, "%s", words);
    return r->code != 0;
}

/* What a refusal for now says of the daemon, after "tallyd ...: ". */
static const char *refusal_meaning(int code)
{
    switch (code) {
    case TALLY_ERATELIMIT:
        return "it is limiting the township's rate";
    case TALLY_EUNAVAIL:
        return "it cannot store figures now";
    default:
        return "it is overloaded";
    }
}

/* tallyd answered, refusing the figures for now until the wait ended:
 * say so, and what became of them.  A refused submission is not counted
 * (PROTOCOL.md 8.2); tallyd looks for a duplicate before it charges the
 * rate or writes the journal (11.2), so such a refusal also shows that no
 * earlier attempt of the submission was counted.  Not so an attempt made
 * after the last refusal, which may have had no answer yet when the wait
 * ended, and be counted after; nor, in general, a daemon that stops
 * (UNAVAILABLE before the duplicate check) or any daemon (11.2 lets the
 * three codes come at any step).  So without a spool the figures may
 * have been counted, and are said to be checked before a second push. */
static int report_refusal(const cli_global_t *g, const refusal_t *r, const char *town,
                          const char *spool, size_t subs, size_t n, double secs)
{
    if (spool != NULL) {
        const char *it = subs == 1 ? "it" : "them";
        cli_error("tallyd at %s refused the figures for now each time it answered within %g s: %s "
                  "(submission %" PRIu64 ": %s; %s). %zu submission%s (%zu sample%s) kept in %s; "
                  "the next push with --spool %s sends %s again (or tally push --spool %s "
                  "--flush), which cannot count %s twice",
                  g->server, secs, refusal_meaning(r->code), r->seq, r->words,
                  tally_errname(r->code), subs, plural(subs), n, plural(n), spool, spool, it, spool,
                  it);
        return CLI_UNREACHABLE;
    }
    cli_error("tallyd at %s refused the %zu sample%s for now each time it answered within %g s: %s "
              "(%s; %s). A refused submission is not counted, but an attempt still unanswered "
              "when the wait ended may yet be, and without --spool tally keeps no copy to send "
              "again: check with `tally get --town %s` whether %s counted before pushing %s "
              "again (a figure pushed twice counts twice). With --spool DIR, figures stay in DIR "
              "until tallyd takes them, and no resend can count them twice.",
              g->server, n, plural(n), secs, refusal_meaning(r->code), r->words,
              tally_errname(r->code), town, n == 1 ? "it was" : "they were", them(n));
    return CLI_UNREACHABLE;
}

/* No acknowledgement in time: say why, as far as the connection tells,
 * and what became of the figures.  sent: the daemon answered HELLO, so
 * they may have reached it.  A refusal for now is an answer, whenever it
 * came. */
static int report_timeout(const cli_global_t *g, tally_client_t *c, const char *town,
                          const char *spool, int timeout_ms, bool sent)
{
    size_t subs = tally_client_pending(c), n = tally_client_pending_samples(c);
    double secs = timeout_ms / 1000.0;
    refusal_t r;
    if (refusal_now(c, &r))
        return report_refusal(g, &r, town, spool, subs, n, secs);
    if (!sent)
        cli_unanswered(g, "push", tally_client_link(c), tally_client_link_why(c), timeout_ms);
    if (spool != NULL && sent)
        cli_error("no acknowledgement from tallyd at %s within %g s; %zu submission%s (%zu "
                  "sample%s) kept in %s for the next run to deliver",
                  g->server, secs, subs, plural(subs), n, plural(n), spool);
    else if (spool != NULL)
        cli_error("%zu submission%s (%zu sample%s) kept in %s for the next run to deliver", subs,
                  plural(subs), n, plural(n), spool);
    else if (!sent)
        cli_error("nothing was sent");
    else
        /* The daemon may have counted them and its answer be lost: a push
         * of the same figures would be a new submission, counted again. */
        cli_error("no answer from tallyd at %s within %g s: the %zu sample%s may or may not have "
                  "been counted; pushing %s again could count %s twice. Use --spool DIR so that "
                  "tally can resend %s safely.",
                  g->server, secs, n, plural(n), them(n), them(n), them(n));
    return CLI_UNREACHABLE;
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

static void utc(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The figures text, each line indented for a message. */
static void print_indented(const char *text)
{
    for (const char *line = text; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        fprintf(stderr, "    %.*s\n", (int)len, line);
        line += len + (line[len] == '\n');
    }
}

/* Submissions an earlier run left in the spool that tallyd rejected now
 * (each said as it came, with tallyd's reason): nobody at hand may have
 * their figures any more, so say where they are kept (SPOOL/rejected/,
 * libtally) and how to push them again, corrected. */
static void report_aside(const push_t *p, const char *spool)
{
    if (p->naside == 0 && !p->aside_oom)
        return;
    size_t n = 0, kept = 0;
    for (size_t i = 0; i < p->naside; i++) {
        n += p->aside[i].nsamples;
        kept += p->aside[i].path[0] != '\0';
    }
    bool one = p->naside == 1 && !p->aside_oom;
    fprintf(stderr,
            "tally push: %zu submission%s (%zu sample%s) left in %s by an earlier run %s "
            "rejected, as said above; tally will not send %s again.  %s in %s/rejected/:\n",
            p->naside, plural(p->naside), n, plural(n), spool, one ? "was" : "were",
            one ? "it" : "them",
            kept == p->naside ? (one ? "It is kept for you" : "They are kept for you")
                              : "What could be is kept",
            spool);
    for (size_t i = 0; i < p->naside; i++) {
        const earlier_reject_t *e = &p->aside[i];
        char when[32];
        utc(e->time_ms, when, sizeof when);
        const char *town = e->township[0] != '\0' ? e->township : "TOWN";
        const char *them = e->nsamples == 1 ? "it" : "them",
                   *their = e->nsamples == 1 ? "its" : "their";
        if (e->csv != NULL)
            fprintf(stderr, "  %s: %s, %s, %" PRIu32 " sample%s\n", e->csv, town, when, e->nsamples,
                    plural(e->nsamples));
        else if (e->path[0] != '\0')
            fprintf(stderr, "  %s: %s, %s, %" PRIu32 " sample%s (%s), which are:\n", e->path, town,
                    when, e->nsamples, plural(e->nsamples),
                    p->aside_err[0] ? p->aside_err : "out of memory");
        else
            fprintf(stderr,
                    "  submission %" PRIu64 ": %s, %s, %" PRIu32 " sample%s, not kept (%s), "
                    "which are:\n",
                    e->seq, town, when, e->nsamples, plural(e->nsamples),
                    e->why != NULL ? e->why : "out of memory");
        if (e->csv == NULL && e->figures != NULL)
            print_indented(e->figures);
        /* A submission too large is split to tallyd's limits by a push
         * now; STALE_SEQUENCE leaves its fate unknown (PROTOCOL.md 14.4). */
        if (e->code == TALLY_ETOOMANY || e->code == TALLY_ETOOLARGE)
            fprintf(stderr,
                    "  Nothing in %s needs correcting (a push splits figures to tallyd's limits "
                    "now): push %s again with %s time:\n",
                    them, them, their);
        else if (e->code == TALLY_ESTALESEQ)
            fprintf(stderr,
                    "  tallyd cannot tell whether it counted %s: check with `tally get --town %s` "
                    "and push only what is missing, with %s time:\n",
                    them, town, their);
        else
            fprintf(stderr,
                    "  Correct what tallyd's reason above points at, then push %s again with %s "
                    "time:\n",
                    them, their);
        fprintf(stderr, "    tally push --town %s --time @%" PRId64 " --spool %s --file %s\n", town,
                e->time_ms, spool, e->csv != NULL ? e->csv : "FILE.csv");
        if (e->csv == NULL)
            fprintf(stderr, "  (FILE.csv holding the figures above)\n");
    }
    if (p->aside_oom)
        fprintf(stderr, "  (and more that could not be listed for want of memory)\n");
    if (kept > 0)
        fprintf(stderr, "  and then delete %s .sub and .csv files in %s/rejected/.\n",
                kept == 1 ? "its" : "their", spool);
}

/* What was delivered, on standard output.  left: the submissions still
 * pending. */
static void print_delivered(const push_t *p, const char *town, const char *spool, size_t left)
{
    if (p->earlier_subs > 0)
        printf("delivered %zu submission%s (%zu sample%s) left in %s by an earlier run\n",
               p->earlier_subs, plural(p->earlier_subs), p->earlier_samples,
               plural(p->earlier_samples), spool);
    /* --flush of a spool that held nothing: only then, so that standard
     * output never contradicts what standard error says of submissions
     * kept (tallyd down), rejected or set aside. */
    if (town == NULL && p->earlier_subs == 0 && left == 0 && p->rejected == 0 &&
        p->unknown.n == 0 && !p->unknown.oom)
        printf("nothing left in %s to deliver\n", spool);
    if (p->accepted_subs > 0 && town != NULL)
        printf("accepted %zu sample%s for %s (seq %" PRIu64 "..%" PRIu64 ")\n", p->accepted_samples,
               plural(p->accepted_samples), town, p->lo, p->hi);
}

/* Wait until every submission closed so far is acknowledged or finally
 * rejected, the open batch left open (tally_client_flush would close
 * it), until deadline (CLOCK_MONOTONIC ms).  0, TALLY_ETIMEDOUT or
 * TALLY_ESYS. */
static int wait_settled(tally_client_t *c, int64_t deadline)
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
 * are those before the one at fault (said by report_fates) rather than
 * every batch but one.  Once an answer takes until deadline, the rest is
 * added without waiting (spooled, or left for the timeout's report).
 * *stopped_at: the first figure not sent, n when all were.  When libtally
 * fails (it cannot write the spool or the client state, say), *unsaved
 * is the first figure in no submission (report_stopped), and stays
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
        rc = wait_settled(c, deadline);
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

enum { SAMPLE_UNSENT, SAMPLE_COUNTED, SAMPLE_REJECTED, SAMPLE_UNKNOWN };

/* Where figure i came from: "data.csv:12" or, given as METRIC=VALUE,
 * "'disputes.resolved=3'". */
static void where(char *buf, size_t cap, const char *file, const csv_sample_t *s)
{
    if (s->line > 0)
        snprintf(buf, cap, "%s:%u", file, s->line);
    else
        snprintf(buf, cap, "'%s=%" PRId64 "'", s->metric, s->value);
}

/* Each figure's fate into state[0..n) from the batches: exact when a
 * batch has at most one submission without an acknowledgement (whose
 * figures are then the batch's others), else SAMPLE_UNKNOWN.  Returns
 * false when some figure's fate is not known that way. */
static bool sample_fates(const push_t *p, size_t n, unsigned char *state)
{
    bool exact = true;
    memset(state, SAMPLE_UNSENT, n);
    for (size_t b = 0; b < p->nbatch; b++) {
        const batch_t *bt = &p->batch[b];
        size_t known = 0, unknown = 0;
        for (uint64_t s = bt->seq; s < bt->seq_end; s++) {
            const sub_fate_t *f = s - p->first_seq < p->nfate ? &p->fate[s - p->first_seq] : NULL;
            if (f != NULL && f->state == FATE_ACCEPTED)
                known += f->nsamples;
            else
                unknown++;
        }
        size_t total = bt->end - bt->first, at = bt->first;
        if (unknown > 1 || known > total) {
            memset(state + bt->first, SAMPLE_UNKNOWN, total);
            exact = false;
            continue;
        }
        for (uint64_t s = bt->seq; s < bt->seq_end; s++) {
            const sub_fate_t *f = s - p->first_seq < p->nfate ? &p->fate[s - p->first_seq] : NULL;
            int st = f == NULL || f->state == FATE_PENDING ? SAMPLE_UNKNOWN
                     : f->state == FATE_ACCEPTED           ? SAMPLE_COUNTED
                                                           : SAMPLE_REJECTED;
            size_t cnt = f != NULL && f->state == FATE_ACCEPTED ? f->nsamples : total - known;
            memset(state + at, st, cnt);
            at += cnt;
        }
    }
    return exact;
}

/* This run's rejections, each with the line (or figure) at fault, then,
 * when some figures were counted and others not, which: pushing the whole
 * file again would count the first ones twice. */
static void report_fates(const push_t *p, const csv_samples_t *samples, const char *file)
{
    if (p->rejected_now == 0)
        return;
    unsigned char *state = malloc(samples->n ? samples->n : 1);
    bool exact = state != NULL && sample_fates(p, samples->n, state);
    for (size_t b = 0; b < p->nbatch; b++) {
        const batch_t *bt = &p->batch[b];
        /* Where each submission's figures start, as sample_fates counts
         * them (exact: at most one without an acknowledgement). */
        size_t known = 0, at = bt->first;
        for (uint64_t s = bt->seq; s < bt->seq_end; s++)
            if (s - p->first_seq < p->nfate && p->fate[s - p->first_seq].state == FATE_ACCEPTED)
                known += p->fate[s - p->first_seq].nsamples;
        for (uint64_t s = bt->seq; s < bt->seq_end; s++) {
            const sub_fate_t *f = s - p->first_seq < p->nfate ? &p->fate[s - p->first_seq] : NULL;
            bool acked = f != NULL && f->state == FATE_ACCEPTED;
            size_t cnt = acked ? f->nsamples : bt->end - bt->first - known;
            if (f != NULL && f->state == FATE_REJECTED) {
                char w[600];
                if (exact && f->sample >= 0 && (size_t)f->sample < cnt)
                    where(w, sizeof w, file, &samples->v[at + (size_t)f->sample]);
                else
                    snprintf(w, sizeof w, "submission %" PRIu64, s);
                fprintf(stderr, "tally: rejected: %s: %s\n", w, f->message);
            }
            at += cnt;
        }
    }
    if (p->accepted_subs == 0 || state == NULL) {
        free(state);
        return;
    }
    if (!exact) {
        fprintf(stderr,
                "tally push: %zu of the %zu figures were counted (submissions %" PRIu64 "..%" PRIu64
                "), the others not; check with tally get which before pushing any "
                "again: a figure pushed twice counts twice\n",
                p->accepted_samples, samples->n, p->lo, p->hi);
        free(state);
        return;
    }
    /* Counted figures first, then the rest: the usual shape, since a
     * rejection stops the push. */
    size_t ncounted = 0, split = 0;
    while (split < samples->n && state[split] == SAMPLE_COUNTED)
        split++;
    for (size_t i = 0; i < samples->n; i++)
        ncounted += state[i] == SAMPLE_COUNTED;
    char a[600], z[600];
    if (ncounted == split && split > 0 && split < samples->n) {
        where(a, sizeof a, file, &samples->v[split - 1]);
        where(z, sizeof z, file, &samples->v[split]);
        fprintf(stderr,
                "tally push: counted: the %zu figure%s up to %s; not counted: the %zu from %s "
                "on.  Fix the one at fault and push only those %zu (pushing the counted ones "
                "again would count them twice)\n",
                split, plural(split), a, samples->n - split, z, samples->n - split);
    } else {
        fprintf(stderr,
                "tally push: %zu of the %zu figures were counted, the others not; push again "
                "only those not counted (a figure pushed twice counts twice):\n",
                ncounted, samples->n);
        for (size_t i = 0; i < samples->n;) {
            size_t j = i;
            while (j < samples->n && (state[j] == SAMPLE_COUNTED) == (state[i] == SAMPLE_COUNTED))
                j++;
            if (state[i] != SAMPLE_COUNTED) {
                where(a, sizeof a, file, &samples->v[i]);
                where(z, sizeof z, file, &samples->v[j - 1]);
                fprintf(stderr, "  not counted: %s%s%s (%zu)\n", a, j - i > 1 ? " to " : "",
                        j - i > 1 ? z : "", j - i);
            }
            i = j;
        }
    }
    free(state);
}

/* libtally failed mid-push (lib_failed said its error): what became of
 * the figures.  Those from unsaved on are in no submission: neither sent
 * nor kept, as libtally undoes a submission it cannot persist whole
 * (tally_client_send), so pushing them again counts them once.  Those
 * before went into submissions: waited for while tallyd answers, and
 * then counted, or kept in the spool for the next push, or (without one)
 * perhaps counted. */
static void report_stopped(tally_client_t *c, push_t *p, const csv_samples_t *s, size_t unsaved,
                           const char *file, const char *town, const char *spool, bool sent,
                           int64_t deadline)
{
    const char *room = strstr(tally_client_last_error(c), strerror(ENOSPC)) != NULL
                           ? "once there is room"
                           : "once what failed above is put right";
    if (sent && tally_client_pending(c) > 0)
        (void)wait_settled(c, deadline);
    report_fates(p, s, file);
    if (s->n == 0)
        return; /* --flush: what stays in the spool is the next push's */
    if (unsaved == 0) {
        fprintf(stderr,
                "tally push: nothing of these figures was sent or kept: push them again %s\n",
                room);
        return;
    }
    char a[600], z[600], rest[900] = "";
    where(a, sizeof a, file, &s->v[unsaved - 1]);
    if (unsaved < s->n) {
        where(z, sizeof z, file, &s->v[unsaved]);
        snprintf(rest, sizeof rest,
                 "; neither sent nor kept: the %zu from %s on, which push again %s, and only "
                 "them",
                 s->n - unsaved, z, room);
    }
    const char *rejected = p->rejected_now > 0 ? ", rejected (as said above)" : "";
    if (p->accepted_samples == unsaved)
        fprintf(stderr,
                "tally push: counted: the %zu figure%s up to %s (pushing %s again would count %s "
                "twice)%s\n",
                unsaved, plural(unsaved), a, them(unsaved), them(unsaved), rest);
    else if (spool != NULL)
        fprintf(stderr,
                "tally push: the %zu figure%s up to %s %s counted%s or kept in %s, which the next "
                "push with --spool %s delivers: do not push %s again%s\n",
                unsaved, plural(unsaved), a, unsaved == 1 ? "is" : "are", rejected, spool, spool,
                them(unsaved), rest);
    else
        fprintf(stderr,
                "tally push: the %zu figure%s up to %s %s submitted, and tallyd may or may not "
                "have counted %s%s: check with `tally get --town %s` before pushing any of %s "
                "again%s\n",
                unsaved, plural(unsaved), a, unsaved == 1 ? "was" : "were", them(unsaved), rejected,
                town, them(unsaved), rest);
}

/* How long the catalog may delay a push whose names need it. */
#define CATALOG_WAIT_MS 3000

/* Where the catalog's names are kept (cli_names.h): the spool, else the
 * user's state directory.  0, or -1 when there is none to be had. */
static int names_dir(const char *spool, char *buf, size_t cap)
{
    char err[512];
    if (spool == NULL)
        return cli_state_dir(buf, cap, err, sizeof err) == 0 ? 0 : -1;
    if (mkdir(spool, 0700) != 0 && errno != EEXIST)
        return -1;
    snprintf(buf, cap, "%s", spool);
    return 0;
}

/* The id (*id, malloc'd) that the catalog kept in dir gives name, said
 * on standard error when it differs (*said: something was).  1, 0 when
 * the name is not known there, or TALLY_ENOMEM. */
static int kept_id(const cli_global_t *g, const char *dir, const char *name, bool township,
                   char **id, bool *said)
{
    int rc = cli_names_lookup(dir, g->server, name, township, id);
    if (rc == 1 && strcmp(*id, name) != 0) {
        if (!*said)
            fprintf(stderr,
                    "tally push: tallyd cannot be asked for its catalog; names read with the one "
                    "kept in %s/%s: ",
                    dir, CLI_NAMES_FILE);
        fprintf(stderr, "%s'%s' = %s", *said ? ", " : "", name, *id);
        *said = true;
    }
    return rc;
}

/* The names of a push while the catalog cannot be read: read with the
 * catalog kept from an earlier push.  A name it does not know may be a
 * name or label rather than an id; tallyd would refuse it when the
 * figures reach it, perhaps from the spool with no one watching, so the
 * push is refused now, while the clerk is there.  CLI_OK or the exit
 * status (printed). */
static int resolve_offline(cli_global_t *g, int rc, const tally_request_t *req, int timeout_ms,
                           const char *dir, const char **town, char *town_buf, size_t cap,
                           csv_samples_t *s)
{
    const char *unknown = NULL;
    bool said = false;
    char *id = NULL;
    int r = 0;
    if (dir != NULL && cli_beyond_ascii(*town)) {
        r = kept_id(g, dir, *town, true, &id, &said);
        if (r == 1) {
            snprintf(town_buf, cap, "%s", id);
            *town = town_buf;
        }
        free(id);
    }
    if (cli_beyond_ascii(*town) && r == 0)
        unknown = *town;
    for (size_t i = 0; i < s->n && r >= 0; i++) {
        if (!cli_beyond_ascii(s->v[i].metric))
            continue;
        r = dir != NULL ? kept_id(g, dir, s->v[i].metric, false, &id, &said) : 0;
        if (r == 1) {
            free(s->v[i].metric);
            s->v[i].metric = id;
        } else if (r == 0 && unknown == NULL) {
            unknown = s->v[i].metric;
        }
    }
    if (said)
        fputc('\n', stderr);
    if (r < 0) {
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    if (unknown == NULL)
        return CLI_OK;
    cli_request_failed(g, "push", rc, req, timeout_ms);
    fprintf(stderr,
            "tally push: '%s' may be a name or label rather than an id, and %s%s%s: nothing was "
            "sent or spooled; give ids instead (`tally get --labels` shows them: --town gaoguan, "
            "law_exam.takers=94), or push again once tallyd answers\n",
            unknown, dir != NULL ? "no catalog kept in " : "no catalog of tallyd is kept",
            dir != NULL ? dir : "", dir != NULL ? " says which" : "");
    return CLI_UNREACHABLE;
}

/* Whether cat has name as an id or as a name (township) or label. */
static bool in_catalog(const tally_catalog_t *cat, const char *name, bool township)
{
    size_t n = township ? tally_catalog_townships(cat) : tally_catalog_metrics(cat);
    for (size_t i = 0; i < n; i++) {
        const char *id, *text;
        if (township) {
            const tally_township_info_t *t = tally_catalog_township(cat, i);
            id = t->id, text = t->name;
        } else {
            const tally_metric_info_t *m = tally_catalog_metric(cat, i);
            id = m->id, text = m->label;
        }
        if (strcmp(id, name) == 0 || strcmp(text, name) == 0)
            return true;
    }
    return false;
}

static void count_tally(void *ctx, const tally_tally_t *t)
{
    (void)t;
    ++*(size_t *)ctx;
}

/* A name in Chinese (beyond ASCII) that neither the catalog nor tallyd's
 * tallies know: an open catalog takes it as a new township or metric,
 * which splits one in two when it was meant as the name of one reporting
 * under an id (高观镇 for gaoguan, on tallyd's built-in defaults, which
 * name no township).  Said, not refused: ids may be Chinese too. */
static void warn_if_new(cli_global_t *g, const tally_curve_t *curve, int timeout_ms,
                        const tally_catalog_t *cat, const char *name, bool township)
{
    if (!cli_beyond_ascii(name) || in_catalog(cat, name, township))
        return;
    /* A catalog that declares townships takes those alone (tallyd.conf(5),
     * THE CATALOG): there the name becomes nothing, tallyd refuses it, and
     * unknown_town_hint says which was meant. */
    if (township && tally_catalog_townships(cat) > 0)
        return;
    char prefix[PROTO_NAME_MAX + 16];
    snprintf(prefix, sizeof prefix, township ? "u/town/%s/" : "u/county/%s/", name);
    char why[256];
    tally_request_t req = cli_request(
        curve, timeout_ms < CATALOG_WAIT_MS ? timeout_ms : CATALOG_WAIT_MS, why, sizeof why);
    size_t n = 0;
    if (tally_get_req(g->server, &req, prefix, count_tally, &n, NULL, NULL) != 0 || n > 0)
        return;
    if (township)
        fprintf(stderr,
                "tally push: '%s' is new to tallyd: no township has that id or name yet, so it "
                "becomes a township of its own.  If it is the name of a township that reports "
                "under an id (gaoguan), push with that id, or name the townships in tallyd's "
                "catalog ([township ID] name = %s)\n",
                name, name);
    else
        fprintf(stderr,
                "tally push: '%s' is new to tallyd: no metric has that id or label yet, so it "
                "becomes a counter of its own.  If it is the label of a metric, push with its "
                "id (tally get --labels shows them)\n",
                name);
}

/* word re-spelt into out (cap bytes) with one byte for each character
 * (UTF-8 sequence), numbered in the order first met in chars and lens
 * (*n of max so far, shared by the words compared), so that the edits
 * suggest_pick counts are characters: 高观乡 is one from 高观镇, not three
 * bytes.  false when it does not fit. */
static bool by_chars(const char *word, const char **chars, size_t *lens, size_t *n, size_t max,
                     char *out, size_t cap)
{
    size_t k = 0;
    for (const char *s = word; *s != '\0';) {
        unsigned char b = (unsigned char)*s;
        size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        len = strnlen(s, len);
        size_t i = 0;
        while (i < *n && !(lens[i] == len && memcmp(chars[i], s, len) == 0))
            i++;
        if (i == *n && *n == max)
            return false;
        if (i == *n) {
            chars[i] = s;
            lens[(*n)++] = len;
        }
        if (k + 1 >= cap)
            return false;
        out[k++] = (char)(i + 1);
        s += len;
    }
    out[k] = '\0';
    return true;
}

/* The id or name of the township of cat most likely meant by town, or
 * NULL when none is close (the rules of suggest_pick, in characters). */
static const char *closest_town(const tally_catalog_t *cat, const char *town)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < tally_catalog_townships(cat); i++) {
        const tally_township_info_t *t = tally_catalog_township(cat, i);
        const char *cand[2] = {t->id, t->name};
        for (size_t j = 0; j < 2; j++) {
            const char *chars[2 * SUGGEST_WORD_MAX];
            size_t lens[2 * SUGGEST_WORD_MAX], n = 0, max = 2 * SUGGEST_WORD_MAX;
            char a[SUGGEST_WORD_MAX + 1], b[SUGGEST_WORD_MAX + 1];
            if (cand[j][0] == '\0' || !by_chars(town, chars, lens, &n, max, a, sizeof a) ||
                !by_chars(cand[j], chars, lens, &n, max, b, sizeof b))
                continue;
            const char *bp = b;
            size_t d = cli_edit_distance(a, b);
            if (cli_suggest(a, &bp, 1) != NULL && d < best_d) {
                best = cand[j];
                best_d = d;
            }
        }
    }
    return best;
}

/* How many declared townships a refusal lists at most. */
#define TOWNS_LISTED 10

/* tallyd refused town (UNKNOWN_TOWNSHIP).  A catalog that declares
 * townships takes those alone: say the one most likely meant, or else
 * which they are, as tally report does for its --town. */
static void unknown_town_hint(cli_global_t *g, const tally_curve_t *curve, int timeout_ms,
                              const char *town)
{
    tally_request_t req =
        cli_request(curve, timeout_ms < CATALOG_WAIT_MS ? timeout_ms : CATALOG_WAIT_MS, NULL, 0);
    const tally_catalog_t *cat;
    if (cli_catalog(g, &req, &cat) != 0)
        return;
    size_t n = tally_catalog_townships(cat);
    if (n == 0 || in_catalog(cat, town, true))
        return;
    const char *best = closest_town(cat, town);
    if (best != NULL) {
        fprintf(stderr,
                "tally push: --town '%s' is not a township of the daemon's catalog (did you mean "
                "'%s'?)\n",
                town, best);
        return;
    }
    fprintf(stderr,
            "tally push: --town '%s' is not a township of the daemon's catalog, which declares "
            "its townships: ",
            town);
    for (size_t i = 0; i < n && i < TOWNS_LISTED; i++) {
        const tally_township_info_t *t = tally_catalog_township(cat, i);
        fprintf(stderr, "%s%s%s%s%s", i > 0 ? ", " : "", t->id, t->name[0] ? " (" : "", t->name,
                t->name[0] ? ")" : "");
    }
    if (n > TOWNS_LISTED)
        fprintf(stderr, " and %zu more", n - TOWNS_LISTED);
    fputc('\n', stderr);
}

/* Whether tallyd rejected a submission of this run with code. */
static bool rejected_with(const push_t *p, int code)
{
    for (size_t i = 0; i < p->nfate; i++)
        if (p->fate[i].state == FATE_REJECTED && p->fate[i].code == code)
            return true;
    return false;
}

/* A township's name or metrics' labels (高观镇, 排查矛盾纠纷) stand for
 * their ids, as in the reading commands (cli_opts_resolve), looked up in
 * the daemon's catalog only when some name has characters beyond ASCII.
 * The catalog's names are kept (cli_names.h) for when it cannot be read
 * (tallyd down or out of reach: the figures go to the spool); then those
 * kept are used (resolve_offline).  *town may be pointed at town_buf.
 * Returns CLI_OK or the exit status (printed). */
static int resolve_names(cli_global_t *g, const char *spool, const char **town, char *town_buf,
                         size_t cap, csv_samples_t *s, int timeout_ms)
{
    bool any = cli_beyond_ascii(*town);
    for (size_t i = 0; i < s->n && !any; i++)
        any = cli_beyond_ascii(s->v[i].metric);
    if (!any)
        return CLI_OK;
    const tally_curve_t *curve;
    int status = cli_curve(g, "push", &curve);
    if (status != 0)
        return status;
    char why[512] = "", dir[4096];
    bool kept = names_dir(spool, dir, sizeof dir) == 0;
    tally_request_t req = cli_request(
        curve, timeout_ms < CATALOG_WAIT_MS ? timeout_ms : CATALOG_WAIT_MS, why, sizeof why);
    const tally_catalog_t *cat = NULL;
    int rc = cli_catalog(g, &req, &cat);
    if (rc == TALLY_ETYPE || tally_err_is_wire(rc))
        return CLI_OK; /* a daemon that answers, without the catalog: it judges the names */
    if (rc < 0)
        return resolve_offline(g, rc, &req, timeout_ms, kept ? dir : NULL, town, town_buf, cap, s);
    char err[512];
    if (kept) /* without it, only a push while tallyd is down is refused */
        (void)cli_names_save(dir, g->server, cat, err, sizeof err);
    const char *id = cli_catalog_id(*town, cat, true);
    if (id != NULL) {
        snprintf(town_buf, cap, "%s", id);
        *town = town_buf;
    }
    warn_if_new(g, curve, timeout_ms, cat, *town, true);
    const char *asked[5]; /* each name once, a few at most */
    size_t nasked = 0;
    for (size_t i = 0; i < s->n && nasked < sizeof asked / sizeof asked[0]; i++) {
        const char *m = s->v[i].metric;
        bool seen = !cli_beyond_ascii(m) || in_catalog(cat, m, false);
        for (size_t j = 0; j < nasked && !seen; j++)
            seen = strcmp(asked[j], m) == 0;
        if (!seen) {
            asked[nasked++] = m;
            warn_if_new(g, curve, timeout_ms, cat, m, false);
        }
    }
    for (size_t i = 0; i < s->n && status == CLI_OK; i++) {
        if (!cli_beyond_ascii(s->v[i].metric) ||
            (id = cli_catalog_id(s->v[i].metric, cat, false)) == NULL)
            continue;
        char *copy = strdup(id);
        if (copy == NULL) {
            cli_error("out of memory");
            status = CLI_INTERNAL;
            break;
        }
        free(s->v[i].metric);
        s->v[i].metric = copy;
    }
    return status;
}

/* Keep tallyd's zone c in dir (when not NULL) for pushes while it cannot
 * be asked. */
static void keep_zone(const cli_global_t *g, const char *dir, const tally_clock_t *c)
{
    char err[512];
    if (dir != NULL)
        (void)cli_zone_save(dir, g->server, c->zone, c->utc_offset_s, err, sizeof err);
}

/* tallyd answered: keep its zone for a later push that cannot ask it
 * (once, while none is kept for this server: --time asks it anyway). */
static void learn_zone(const cli_global_t *g, const char *spool, const tally_curve_t *curve,
                       int timeout_ms)
{
    char dir[4096], zone[128];
    int32_t off;
    if (names_dir(spool, dir, sizeof dir) != 0 ||
        cli_zone_load(dir, g->server, zone, sizeof zone, &off) == 1)
        return;
    tally_request_t req =
        cli_request(curve, timeout_ms < CATALOG_WAIT_MS ? timeout_ms : CATALOG_WAIT_MS, NULL, 0);
    tally_clock_t c;
    if (tally_clock_req(g->server, &req, &c) == 0)
        keep_zone(g, dir, &c);
}

/* A --time without an offset is a time of the county's calendar: read it
 * in the daemon's zone (CLOCK), which decides the day, month and year the
 * figures count in.  When the daemon cannot be asked (down: the figures
 * go to the spool), the zone it last gave (kept in the spool or the
 * user's state, cli_names.h), or else the TZ variable's zone or UTC,
 * stands in, said on standard error. */
static int time_in_daemon_zone(cli_global_t *g, const char *spool, const char *text, int64_t *ms,
                               int timeout_ms)
{
    const tally_curve_t *curve;
    int status = cli_curve(g, "push", &curve);
    if (status != 0)
        return status;
    char why[256] = "", dir[4096], err[512];
    bool kept = names_dir(spool, dir, sizeof dir) == 0;
    tally_request_t req = cli_request(
        curve, timeout_ms < CATALOG_WAIT_MS ? timeout_ms : CATALOG_WAIT_MS, why, sizeof why);
    tally_clock_t c;
    int rc = tally_clock_req(g->server, &req, &c);
    if (rc == 0) {
        keep_zone(g, kept ? dir : NULL, &c);
        when_zone_t z = {.name = c.zone, .utc_offset_s = c.utc_offset_s};
        return when_parse(text, &z, ms, NULL, err, sizeof err) == 0 ? CLI_OK : CLI_INTERNAL;
    }
    char zone[128];
    int32_t off;
    if (kept && cli_zone_load(dir, g->server, zone, sizeof zone, &off) == 1) {
        when_zone_t z = {.name = zone, .utc_offset_s = off}, utc = {.name = "UTC"};
        bool local = false;
        if (when_parse(text, &z, ms, &local, err, sizeof err) != 0)
            return CLI_INTERNAL;
        /* The offset of that time in that zone (a summer date in Europe/
         * Berlin is UTC+2, whatever the offset was when the zone was
         * kept): the same text read in UTC, less the time it stands for. */
        int64_t as_utc = *ms;
        if (local && when_parse(text, &utc, &as_utc, NULL, err, sizeof err) == 0)
            off = (int32_t)((as_utc - *ms) / 1000);
        if (local)
            fprintf(stderr,
                    "tally push: tallyd cannot be asked its time zone (%s): --time '%s' is read "
                    "in %s (UTC%s%d:%02d then), the zone it last gave\n",
                    why[0] ? why : tally_strerror(rc), text, zone[0] ? zone : "its zone",
                    off < 0 ? "-" : "+", abs(off) / 3600, abs(off) % 3600 / 60);
        return CLI_OK;
    }
    const char *tz = getenv("TZ");
    fprintf(stderr,
            "tally push: the daemon's time zone is not known (%s): --time '%s' is read in %s; "
            "give an offset (+08:00) to be sure\n",
            why[0] ? why : tally_strerror(rc), text, tz != NULL ? tz : "UTC");
    return CLI_OK;
}

/* Push samples (read from file, "-" for standard input, NULL for
 * METRIC=VALUE pairs) for town. */
static int deliver(cli_global_t *g, const char *town, const char *spool, int64_t time_ms,
                   int timeout_ms, bool quiet, const csv_samples_t *samples, const char *file)
{
    push_t p = {0};
    const tally_curve_t *curve;
    int status = cli_curve(g, "push", &curve);
    if (status != 0)
        return status;
    tally_client_t *c;
    status = open_client(g, town, spool, timeout_ms, curve, &p, &c);
    if (status != CLI_OK) {
        cli_unknown_report(stderr, &p.unknown);
        cli_unknown_free(&p.unknown);
        return status;
    }
    p.c = c;
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
        learn_zone(g, spool, curve, timeout_ms);
    p.first_seq = tally_client_next_seq(c);
    if (rc == TALLY_ETIMEDOUT && spool == NULL) {
        status = report_timeout(g, c, town, spool, timeout_ms, false);
    } else if (rc == 0 || rc == TALLY_ETIMEDOUT) {
        size_t stopped_at = samples->n, unsaved = SIZE_MAX;
        const char *name = file == NULL ? "" : strcmp(file, "-") == 0 ? "stdin" : file;
        status =
            add_samples(c, samples, time_ms, &p, sent, start + timeout_ms, &stopped_at, &unsaved);
        if (unsaved != SIZE_MAX)
            report_stopped(c, &p, samples, unsaved, name, town, spool, sent, start + timeout_ms);
        int64_t left = timeout_ms - (cli_clock_ms(CLOCK_MONOTONIC) - start);
        if (!sent && hopeless)
            left = 0; /* spooled now; no answer can come through this connection */
        /* add_samples closed the last batch unless it stopped, and then
         * the open batch goes with the client.  Not tally_client_flush:
         * its timeout replaces the client's last error, which tells what
         * tallyd last refused for now (report_timeout). */
        if (status == CLI_OK && stopped_at == samples->n)
            rc = wait_settled(c, cli_clock_ms(CLOCK_MONOTONIC) + (left > 0 ? left : 0));
        if (status == CLI_OK && !quiet)
            print_delivered(&p, town, spool, tally_client_pending(c));
        if (status == CLI_OK)
            report_fates(&p, samples, name);
        if (status == CLI_OK && town != NULL && rejected_with(&p, TALLY_EUNKTOWN))
            unknown_town_hint(g, curve, timeout_ms, town);
        if (status == CLI_OK && rc == TALLY_ETIMEDOUT)
            status = report_timeout(g, c, town, spool, timeout_ms, sent);
    }
    if (status == CLI_OK && rc < 0 && rc != TALLY_ETIMEDOUT) {
        cli_error("%s", tally_client_last_error(c));
        status = CLI_INTERNAL;
    }
    if (status == CLI_OK && p.rejected > 0)
        status = CLI_REJECTED;
    report_aside(&p, spool);
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
    return cli_usage_error("push",
                           "--time '%s' is %s: tally takes times from 2000-01-01 to 2099-12-31 "
                           "(UTC)",
                           text, ms < PROTO_TIME_MIN ? "before 2000" : "after 2099");
}

enum { OPT_SPOOL = CLI_OPT_OWN, OPT_FLUSH };

int cli_push(int argc, char **argv, cli_global_t *g)
{
    static const struct option own[] = {
        {"town", required_argument, NULL, 't'},
        {"file", required_argument, NULL, 'f'},
        {"time", required_argument, NULL, 'T'},
        {"spool", required_argument, NULL, OPT_SPOOL},
        {"flush", no_argument, NULL, OPT_FLUSH},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    cli_opts_t o;
    cli_opts_init(&o, "push", cli_push_usage, g, CLI_OPTS_TIMEOUT | CLI_OPTS_SERVER, own);
    const char *town = NULL, *file = NULL, *spool = NULL;
    int64_t time_ms = 0;
    const char *time_text = NULL; /* --time as given */
    bool time_local = false;      /* ... without an offset */
    bool quiet = false, flush = false;
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
        return deliver(g, NULL, spool, 0, o.timeout_ms, quiet, &none, NULL);
    }
    if (town == NULL)
        return cli_usage_error("push", "--town NAME is required");
    if (pairs && file != NULL)
        return cli_usage_error("push", "give METRIC=VALUE pairs or --file, not both");
    if (!pairs && file == NULL) {
        if (isatty(STDIN_FILENO))
            return cli_usage_error("push", "nothing to push: give METRIC=VALUE pairs, --file "
                                           "FILE.csv, or CSV on standard input");
        file = "-";
    }
    csv_samples_t samples = {0};
    int rc = 0;
    for (int i = optind; i < argc && rc == 0; i++)
        rc = parse_pair(argv[i], &samples);
    if (rc == 0 && file != NULL)
        rc = read_csv(file, quiet, &samples);
    if (rc == 0) {
        char town_id[PROTO_NAME_MAX + 1];
        rc = resolve_names(g, spool, &town, town_id, sizeof town_id, &samples, o.timeout_ms);
        if (rc == 0 && time_local)
            rc = time_in_daemon_zone(g, spool, time_text, &time_ms, o.timeout_ms);
        if (time_text != NULL && time_ms == 0)
            time_ms = 1; /* 0 would mean "now" to the library */
        if (time_ms == 0)
            time_ms = cli_clock_ms(CLOCK_REALTIME); /* one reading: one event time for all */
        if (rc == 0 && time_text != NULL)
            rc = check_time_range(time_text, time_ms, 0);
        if (rc == 0)
            rc = deliver(g, town, spool, time_ms, o.timeout_ms, quiet, &samples, file);
    }
    csv_samples_free(&samples);
    return rc;
}
