/* cli_period.h - the tally command (client/cli/, private): the figures of
 * one calendar period, `tally get --period P [--compare]`, and a series
 * period by period, `tally history`. */
#ifndef TALLY_CLIENT_CLI_PERIOD_H
#define TALLY_CLIENT_CLI_PERIOD_H

#include <stdbool.h>

#include "cli_opts.h"
#include "tally.h"

/* Check a --period, --from or --to argument: a period name that may have
 * begun in the daemon's time zone (its first day not after tomorrow in
 * UTC; the daemon refuses the rest of what has not begun, BAD_PERIOD).
 * Returns 0, or prints a usage error naming option and returns
 * CLI_USAGE. */
int cli_period_check(const char *cmd, const char *option, const char *value);

/* `tally get --period P`: the tallies o selects for period, with the
 * same period of the year before and the one before it when compare is
 * set; labels through cat (may be NULL).  Returns the exit status. */
int cli_get_period(cli_global_t *g, const cli_opts_t *o, const tally_curve_t *curve,
                   const char *period, bool compare);

/* `tally history`. */
int cli_history(int argc, char **argv, cli_global_t *g);
extern const char cli_history_usage[];

#endif
