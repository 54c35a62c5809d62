/* cli.h - the tally command (client/cli/, private): its subcommands.  Each
 * takes its own argv (argv[0] is the subcommand's name) and returns the
 * exit status (enum cli_exit). */
#ifndef TALLY_CLIENT_CLI_H
#define TALLY_CLIENT_CLI_H

#include "cli_util.h"

int cli_push(int argc, char **argv, cli_global_t *g);
int cli_get(int argc, char **argv, cli_global_t *g);
int cli_watch(int argc, char **argv, cli_global_t *g);
int cli_stats(int argc, char **argv, cli_global_t *g);
int cli_backup(int argc, char **argv, cli_global_t *g);
int cli_keygen(int argc, char **argv, cli_global_t *g);
int cli_report(int argc, char **argv, cli_global_t *g);

extern const char cli_push_usage[];
extern const char cli_get_usage[];
extern const char cli_watch_usage[];
extern const char cli_report_usage[];
extern const char cli_stats_usage[];
extern const char cli_backup_usage[];
extern const char cli_keygen_usage[];

#endif
