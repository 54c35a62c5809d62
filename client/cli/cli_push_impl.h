/* cli_push_impl.h - the tally command (client/cli/, private to `tally
 * push`): what a push notes of its figures as tallyd answers, shared by
 * cli_push.c (options, reading, delivery and libtally's callbacks),
 * cli_push_report.c (what is said of the figures), cli_push_resolve.c
 * (names and time as tallyd reads them) and cli_push_scale.c (values in
 * each metric's unit).  Nothing else includes it. */
#ifndef TALLY_CLIENT_CLI_PUSH_IMPL_H
#define TALLY_CLIENT_CLI_PUSH_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_names.h"
#include "cli_state.h"
#include "cli_util.h"
#include "csv.h"
#include "tally.h"

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

/* Metrics' names that are new to tallyd (no id, label or tallies of
 * theirs), found before the figures are sent and said once tallyd has
 * answered (cli_push_report_new_metrics); they point into the figures. */
#define PUSH_NEW_MAX 5
typedef struct push_new {
    const char *name[PUSH_NEW_MAX];
    size_t n;
} push_new_t;

/* One run of `tally push`: what libtally's callbacks (cli_push.c) note of
 * tallyd's answers, this run's submissions and the batches of figures
 * they came from, for what is said at the end (cli_push_report.c). */
typedef struct push {
    tally_client_t *c;  /* for the accessors callbacks may read */
    uint64_t first_seq; /* seqs >= first_seq belong to this run */
    size_t accepted_samples, accepted_subs;
    uint64_t lo, hi; /* seq range accepted in this run */
    size_t earlier_samples, earlier_subs;
    size_t rejected, rejected_now; /* all, and this run's */
    cli_unknown_t unknown;
    const cli_scales_t *scales; /* the decimal places of the figures read back */
    earlier_reject_t *aside;    /* rejected submissions of earlier runs */
    size_t naside, capaside;
    bool aside_oom;
    char aside_err[512]; /* the last failure to write a CSV of one; "" if none */
    sub_fate_t *fate;    /* [seq - first_seq] */
    size_t nfate, capfate;
    batch_t *batch;
    size_t nbatch, capbatch;
    bool oom;
} push_t;

/* cli_push.c */

/* Wait until every submission closed so far is acknowledged or finally
 * rejected, the open batch left open (tally_client_flush would close
 * it), until deadline (CLOCK_MONOTONIC ms).  0, TALLY_ETIMEDOUT or
 * TALLY_ESYS. */
int cli_push_wait_settled(tally_client_t *c, int64_t deadline);

/* cli_push_report.c */

/* "field: message (CODE)", the field left out when the message starts
 * with it already, as the daemon's usually do. */
void cli_push_format_reason(char *buf, size_t cap, int code, const char *field,
                            const char *message);

/* Keep what tally_client_rejected_earlier says of an earlier run's
 * submission just rejected, writing its figures as CSV beside it in
 * SPOOL/rejected/, for the report at the end (cli_push_report_aside). */
void cli_push_keep_aside(push_t *p, uint64_t seq, int code);

/* "" for one, else "s": the plural of a word counted n. */
const char *cli_push_plural(size_t n);

/* No acknowledgement in time: say why, as far as the connection tells,
 * and what became of the figures.  sent: the daemon answered HELLO, so
 * they may have reached it.  A refusal for now is an answer, whenever it
 * came. */
int cli_push_report_timeout(const cli_global_t *g, tally_client_t *c, const char *town,
                            const char *spool, int timeout_ms, bool sent);

/* Submissions an earlier run left in the spool that tallyd rejected now
 * (each said as it came, with tallyd's reason): nobody at hand may have
 * their figures any more, so say where they are kept (SPOOL/rejected/,
 * libtally) and how to push them again, corrected. */
void cli_push_report_aside(const push_t *p, const char *spool);

/* What was delivered, on standard output.  left: the submissions still
 * pending. */
void cli_push_print_delivered(const push_t *p, const char *town, const char *spool, size_t left);

/* This run's rejections, each with the line (or figure) at fault, then,
 * when some figures were counted and others not, which: pushing the whole
 * file again would count the first ones twice. */
void cli_push_report_fates(const push_t *p, const csv_samples_t *samples, const char *file);

/* libtally failed mid-push (lib_failed said its error): what became of
 * the figures.  Those from unsaved on are in no submission: neither sent
 * nor kept, as libtally undoes a submission it cannot persist whole
 * (tally_client_send), so pushing them again counts them once.  Those
 * before went into submissions: waited for while tallyd answers, and
 * then counted, or kept in the spool for the next push, or (without one)
 * perhaps counted. */
void cli_push_report_stopped(tally_client_t *c, push_t *p, const csv_samples_t *s, size_t unsaved,
                             const char *file, const char *town, const char *spool, bool sent,
                             int64_t deadline);

/* cli_push_resolve.c */

/* tallyd refused town (UNKNOWN_TOWNSHIP).  A catalog that declares
 * townships takes those alone: say the one most likely meant, or else
 * which they are, as tally report does for its --town. */
void cli_push_unknown_town_hint(cli_global_t *g, const tally_curve_t *curve, int timeout_ms,
                                const char *town);

/* The figures as tallyd reads them, from the daemon's catalog (read
 * first, CATALOG_REQ): a township's name or metrics' labels (高观镇,
 * 排查矛盾纠纷) stand for their ids, as in the reading commands
 * (cli_opts_resolve), and values are in each metric's unit
 * (cli_push_scale).  The catalog is kept (cli_names.h) for when it cannot
 * be read (tallyd down or out of reach: the figures go to the spool);
 * then the one kept is used (resolve_offline): the spool's, or the
 * user's state's when the spool keeps none.  *town may be pointed at
 * town_buf; file names the CSV in messages; sc (empty on entry, freed
 * by the caller) receives the decimal places it used.  Names of metrics new to
 * tallyd go to news (said later: a catalog whose list of metrics is
 * closed rejects them instead).  Returns CLI_OK or the exit status
 * (printed). */
int cli_push_resolve(cli_global_t *g, const char *spool, const char **town, char *town_buf,
                     size_t cap, csv_samples_t *s, const char *file, int timeout_ms,
                     push_new_t *news, cli_scales_t *sc);

/* The decimal places tallyd keeps (sc, empty on entry) as a push without
 * figures of its own (--flush) knows them: from the catalog read already,
 * else the one kept (cli_push_resolve's places).  0 or TALLY_ENOMEM. */
int cli_push_kept_scales(const cli_global_t *g, const char *spool, cli_scales_t *sc);

/* cli_push_scale.c */

/* Each value of s, a number as written (csv_sample_t's value and
 * places), in its metric's unit: rescaled to the decimal places tallyd
 * keeps of the metric (PROTOCOL.md 10.6, sc), so that value is what is
 * sent and places that scale.  When sc is not known, whole numbers are
 * sent as written (cli_push_resolve says so), and a fraction is refused (CLI_UNREACHABLE:
 * push once tallyd answers).  More places than the metric keeps, or a
 * value beyond int64 once rescaled, is CLI_USAGE.  file names the CSV in
 * messages.  Returns CLI_OK or the exit status (printed). */
int cli_push_scale(const cli_scales_t *sc, csv_samples_t *s, const char *file);

/* tallyd took the figures or could not be asked (no UNKNOWN_METRIC):
 * say of each name of news that it became a counter of its own, with the
 * catalog's metric most likely meant. */
void cli_push_report_new_metrics(cli_global_t *g, const tally_curve_t *curve, int timeout_ms,
                                 const push_new_t *news);

/* tallyd refused a metric (UNKNOWN_METRIC): for each figure's metric
 * that its catalog lacks, say the id or label most likely meant, when one
 * is close. */
void cli_push_unknown_metric_hint(cli_global_t *g, const tally_curve_t *curve, int timeout_ms,
                                  const csv_samples_t *s);

/* The directory where a push keeps what it learns and remembers
 * (cli_names.h): the spool (made when missing), else the user's state
 * directory.  0, or -1 when there is none to be had. */
int cli_push_kept_dir(const char *spool, char *buf, size_t cap);

/* tallyd answered: keep its zone for a later push that cannot ask it
 * (once, while none is kept for this server: --time asks it anyway). */
void cli_push_learn_zone(const cli_global_t *g, const char *spool, const tally_curve_t *curve,
                         int timeout_ms);

/* A --time without an offset is a time of the county's calendar: read it
 * in the daemon's zone (CLOCK), which decides the day, month and year the
 * figures count in.  When the daemon cannot be asked (down: the figures
 * go to the spool), the zone it last gave (kept in the spool, else in the
 * user's state, cli_names.h) stands in, said on standard error; when none
 * is kept, the push is refused (CLI_USAGE, said): another zone would
 * count the figures in another day, month or year.  A daemon that
 * answers but predates CLOCK has no zone to learn: the TZ variable's, or
 * UTC, stands in, said. */
int cli_push_time_in_daemon_zone(cli_global_t *g, const char *spool, const char *text, int64_t *ms,
                                 int timeout_ms);

#endif
