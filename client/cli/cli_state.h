/* cli_state.h - the tally command (client/cli/, private): where a user's
 * client state lives, and the submissions of unknown fate it reports.
 *
 * Every `tally push` of a user without --spool shares one client id,
 * kept in $XDG_STATE_HOME/tally/client.state (~/.local/state/tally/ when
 * XDG_STATE_HOME is unset): a new id per run would fill the daemon's
 * de-duplication table, which holds every id for weeks.
 */
#ifndef TALLY_CLIENT_CLI_STATE_H
#define TALLY_CLIENT_CLI_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli_names.h"
#include "tally.h"

#define CLI_STATE_FILE "client.state"

/* The user's state directory: $XDG_STATE_HOME/tally when XDG_STATE_HOME
 * is an absolute path (the XDG rule: a relative one is ignored), else
 * $HOME/.local/state/tally (HOME from the password database when unset).
 * It and its missing parents are created (mode 0700).  Returns 0 with the
 * path in buf; TALLY_EINVAL (no home directory to be found); TALLY_EIO
 * (a directory cannot be created); TALLY_ETOOLONG.  err gets a sentence
 * naming the directory on failure. */
int cli_state_dir(char *buf, size_t cap, char *err, size_t errlen);

/* True when paths a and b name the same existing directory. */
bool cli_same_dir(const char *a, const char *b);

/* A figure as a "metric,value" row that push --file reads back as the
 * same figure: the value in the metric's unit, with the decimal places
 * sc gives it (none when sc is NULL or not known). */
void cli_csv_row(FILE *fp, const tally_sample_t *s, const cli_scales_t *sc);

/* SPOOL/DIR/X.sub (a submission set aside: unknown/, rejected/) ->
 * SPOOL/DIR/X.csv with its n figures, "metric,value" rows as push --file
 * reads them (cli_csv_row); one already there (an earlier run that
 * stopped before reporting) is kept.  Its path (malloc'ed), or NULL when
 * sub is not a .sub or the file cannot be written (err says why) or out
 * of memory. */
char *cli_sub_csv(const char *sub, const tally_sample_t *samples, uint32_t n,
                  const cli_scales_t *sc, char *err, size_t errlen);

/* One submission of unknown fate, as `tally push` reports it. */
typedef struct cli_unknown_entry {
    char *csv;  /* the figures as CSV next to its .sub file; NULL: none written */
    char *path; /* its .sub file; "" without a spool */
    char *township;
    int64_t time_ms;
    uint32_t nsamples;
    uint64_t seq;
} cli_unknown_entry_t;

typedef struct cli_unknown {
    cli_unknown_entry_t *v;
    size_t n, cap;
    size_t samples;
    char err[512]; /* the last failure to write a CSV file; "" if none */
    int oom;
    const cli_scales_t *scales; /* the decimal places of the figures written */
} cli_unknown_t;

/* A tally_unknown_cb's work (ctx: a cli_unknown_t): keep u, and with a
 * spool write its figures as SPOOL/unknown/<name>.csv (header
 * "metric,value") so that the user can check them and push them again
 * with --file. */
void cli_unknown_add(cli_unknown_t *l, const tally_unknown_t *u);

/* Tell the user (on out, normally stderr) which submissions are of
 * unknown fate, why, how to check them and how to resend them
 * deliberately.  Prints nothing when l is empty. */
void cli_unknown_report(FILE *out, const cli_unknown_t *l);

void cli_unknown_free(cli_unknown_t *l);

#endif
