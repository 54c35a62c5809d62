/* cli_push_report.c - the tally command (client/cli/): what `tally push`
 * tells the clerk of the figures (cli_push_impl.h): which tallyd counted,
 * and which it rejected, with the line at fault; what a refusal for now,
 * a timeout or a failure of libtally left unsent, spooled or perhaps
 * counted; what was delivered; and the submissions of an earlier run
 * rejected now, kept aside in SPOOL/rejected/ with how to push them
 * again. */
#include "cli_push_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_state.h"
#include "vec.h"

/* What tallyd last said of a submission it refused for now, with a code
 * that is retryable (PROTOCOL.md 11.1: RATE_LIMITED, UNAVAILABLE, BUSY). */
typedef struct refusal {
    uint64_t seq;
    int code;
    char words[1024]; /* the daemon's, "field: message" */
} refusal_t;

void cli_push_format_reason(char *buf, size_t cap, int code, const char *field, const char *message)
{
    if (field == NULL || strncmp(message, field, strlen(field)) == 0)
        field = "";
    snprintf(buf, cap, "%s%s%s (%s)", field, field[0] ? ": " : "", message, tally_errname(code));
}

/* SPOOL/rejected/X.sub -> SPOOL/rejected/X.csv with its figures in their
 * metrics' units (sc), NULL when it cannot be written (err says why). */
static char *write_rejected_csv(const tally_rejected_t *r, const cli_scales_t *sc, char *err,
                                size_t errlen)
{
    if (r->nsamples == 0) {
        snprintf(err, errlen, "its figures could not be read");
        return NULL;
    }
    return cli_sub_csv(r->path, r->samples, r->nsamples, sc, err, errlen);
}

/* The figures of r as CSV text in their metrics' units (malloc'ed; NULL
 * when out of memory). */
static char *figures_text(const tally_rejected_t *r, const cli_scales_t *sc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (fp == NULL)
        return NULL;
    fputs("metric,value\n", fp);
    for (uint32_t i = 0; i < r->nsamples; i++)
        cli_csv_row(fp, &r->samples[i], sc);
    if (fclose(fp) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

void cli_push_keep_aside(push_t *p, uint64_t seq, int code)
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
        e->csv = write_rejected_csv(r, p->scales, p->aside_err, sizeof p->aside_err);
    else
        e->why = strdup(tally_client_last_error(p->c));
    if (e->csv == NULL)
        e->figures = figures_text(r, p->scales); /* printed, then: nowhere else to read them */
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

const char *cli_push_plural(size_t n)
{
    return n == 1 ? "" : "s";
}

static const char *them(size_t n)
{
    return n == 1 ? "it" : "them";
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
                  tally_errname(r->code), subs, cli_push_plural(subs), n, cli_push_plural(n), spool,
                  spool, it, spool, it);
        return CLI_UNREACHABLE;
    }
    cli_error("tallyd at %s refused the %zu sample%s for now each time it answered within %g s: %s "
              "(%s; %s). A refused submission is not counted, but an attempt still unanswered "
              "when the wait ended may yet be, and without --spool tally keeps no copy to send "
              "again: check with `tally get --town %s` whether %s counted before pushing %s "
              "again (a figure pushed twice counts twice). With --spool DIR, figures stay in DIR "
              "until tallyd takes them, and no resend can count them twice.",
              g->server, n, cli_push_plural(n), secs, refusal_meaning(r->code), r->words,
              tally_errname(r->code), town, n == 1 ? "it was" : "they were", them(n));
    return CLI_UNREACHABLE;
}

int cli_push_report_timeout(const cli_global_t *g, tally_client_t *c, const char *town,
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
                  g->server, secs, subs, cli_push_plural(subs), n, cli_push_plural(n), spool);
    else if (spool != NULL)
        cli_error("%zu submission%s (%zu sample%s) kept in %s for the next run to deliver", subs,
                  cli_push_plural(subs), n, cli_push_plural(n), spool);
    else if (!sent)
        cli_error("nothing was sent");
    else
        /* The daemon may have counted them and its answer be lost: a push
         * of the same figures would be a new submission, counted again. */
        cli_error("no answer from tallyd at %s within %g s: the %zu sample%s may or may not have "
                  "been counted; pushing %s again could count %s twice. Use --spool DIR so that "
                  "tally can resend %s safely.",
                  g->server, secs, n, cli_push_plural(n), them(n), them(n), them(n));
    return CLI_UNREACHABLE;
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

void cli_push_report_aside(const push_t *p, const char *spool)
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
            p->naside, cli_push_plural(p->naside), n, cli_push_plural(n), spool,
            one ? "was" : "were", one ? "it" : "them",
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
                    cli_push_plural(e->nsamples));
        else if (e->path[0] != '\0')
            fprintf(stderr, "  %s: %s, %s, %" PRIu32 " sample%s (%s), which are:\n", e->path, town,
                    when, e->nsamples, cli_push_plural(e->nsamples),
                    p->aside_err[0] ? p->aside_err : "out of memory");
        else
            fprintf(stderr,
                    "  submission %" PRIu64 ": %s, %s, %" PRIu32 " sample%s, not kept (%s), "
                    "which are:\n",
                    e->seq, town, when, e->nsamples, cli_push_plural(e->nsamples),
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

void cli_push_print_delivered(const push_t *p, const char *town, const char *spool, size_t left)
{
    if (p->earlier_subs > 0)
        printf("delivered %zu submission%s (%zu sample%s) left in %s by an earlier run\n",
               p->earlier_subs, cli_push_plural(p->earlier_subs), p->earlier_samples,
               cli_push_plural(p->earlier_samples), spool);
    /* --flush of a spool that held nothing: only then, so that standard
     * output never contradicts what standard error says of submissions
     * kept (tallyd down), rejected or set aside. */
    if (town == NULL && p->earlier_subs == 0 && left == 0 && p->rejected == 0 &&
        p->unknown.n == 0 && !p->unknown.oom)
        printf("nothing left in %s to deliver\n", spool);
    if (p->accepted_subs > 0 && town != NULL)
        printf("accepted %zu sample%s for %s (seq %" PRIu64 "..%" PRIu64 ")\n", p->accepted_samples,
               cli_push_plural(p->accepted_samples), town, p->lo, p->hi);
}

enum { SAMPLE_UNSENT, SAMPLE_COUNTED, SAMPLE_REJECTED, SAMPLE_UNKNOWN };

/* Where figure i came from: "data.csv:12" or, given as METRIC=VALUE,
 * "'disputes.resolved=3'". */
static void where(char *buf, size_t cap, const char *file, const csv_sample_t *s)
{
    char num[48];
    if (s->line > 0)
        snprintf(buf, cap, "%s:%u", file, s->line);
    else
        snprintf(buf, cap, "'%s=%s'", s->metric,
                 csv_decimal_text(s->value, s->places, num, sizeof num));
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

void cli_push_report_fates(const push_t *p, const csv_samples_t *samples, const char *file)
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
                split, cli_push_plural(split), a, samples->n - split, z, samples->n - split);
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

void cli_push_report_stopped(tally_client_t *c, push_t *p, const csv_samples_t *s, size_t unsaved,
                             const char *file, const char *town, const char *spool, bool sent,
                             int64_t deadline)
{
    const char *room = strstr(tally_client_last_error(c), strerror(ENOSPC)) != NULL
                           ? "once there is room"
                           : "once what failed above is put right";
    if (sent && tally_client_pending(c) > 0)
        (void)cli_push_wait_settled(c, deadline);
    cli_push_report_fates(p, s, file);
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
                unsaved, cli_push_plural(unsaved), a, them(unsaved), them(unsaved), rest);
    else if (spool != NULL)
        fprintf(stderr,
                "tally push: the %zu figure%s up to %s %s counted%s or kept in %s, which the next "
                "push with --spool %s delivers: do not push %s again%s\n",
                unsaved, cli_push_plural(unsaved), a, unsaved == 1 ? "is" : "are", rejected, spool,
                spool, them(unsaved), rest);
    else
        fprintf(stderr,
                "tally push: the %zu figure%s up to %s %s submitted, and tallyd may or may not "
                "have counted %s%s: check with `tally get --town %s` before pushing any of %s "
                "again%s\n",
                unsaved, cli_push_plural(unsaved), a, unsaved == 1 ? "was" : "were", them(unsaved),
                rejected, town, them(unsaved), rest);
}
