/* cli_opts.h - the tally command (client/cli/, private): its options,
 * parsed in one place.
 *
 * The options that several subcommands take (where the daemon is and how
 * to reach it, how long to wait, JSON output, which tallies, help) are
 * declared here once, with their getopt_long entries, their short letters
 * and what they do.  A subcommand names the groups it takes and its own
 * options; cli_opts_next parses argv with both and hands back only its
 * own, so a shared option means the same in every subcommand.
 */
#ifndef TALLY_CLIENT_CLI_OPTS_H
#define TALLY_CLIENT_CLI_OPTS_H

#include <getopt.h>
#include <stdbool.h>

#include "cli_util.h"
#include "proto.h"

/* The groups of shared options; -h/--help is always taken. */
enum cli_opts_group {
    CLI_OPTS_FILTER = 1u << 0,      /* -m/--metric M, -t/--town T, -a/--all */
    CLI_OPTS_JSON = 1u << 1,        /* -j/--json */
    CLI_OPTS_TIMEOUT = 1u << 2,     /* --timeout SEC */
    CLI_OPTS_SERVER = 1u << 3,      /* -s/--server ADDR, --server-key K, --cert FILE */
    CLI_OPTS_NO_OPERANDS = 1u << 4, /* nothing may follow the options */
    CLI_OPTS_LABELS = 1u << 5,      /* --labels, --no-labels */
};

/* getopt_long values of the long-only shared options.  A subcommand's
 * own long-only options take values from CLI_OPT_OWN up; the ones below
 * 0x100 that are letters are also its short options. */
#define CLI_OPT_SERVER_KEY 0x100
#define CLI_OPT_CERT       0x101
#define CLI_OPT_TIMEOUT    0x102
#define CLI_OPT_LABELS     0x103
#define CLI_OPT_NO_LABELS  0x104
#define CLI_OPT_OWN        0x200

/* The help lines of the shared groups, for the subcommands' usage texts,
 * written once like the options themselves.  pad widens the column the
 * descriptions start in ("" for column 21, "  " for column 23); role
 * says whose secret certificate --cert names. */
#define CLI_OPTS_HELP_FILTER(pad)                                                                  \
    "  -m, --metric M     " pad "only this metric (its id, or its label in the catalog)\n"         \
    "  -t, --town T       " pad "the tallies of township T (its id, or its name in the\n"          \
    "                     " pad "catalog: 高观镇) instead of the county's\n"                    \
    "  -a, --all          " pad "the county's and every township's tallies\n"
#define CLI_OPTS_HELP_LABELS(pad)                                                                  \
    "      --labels       " pad "show the catalog's labels, units and township names\n"            \
    "                     " pad "(default on a terminal, when the catalog has any)\n"              \
    "      --no-labels    " pad "show metric and township ids\n"
#define CLI_OPTS_HELP_TIMEOUT(pad)                                                                 \
    "      --timeout SEC  " pad "how long to wait for the daemon (default 10; connections\n"       \
    "                     " pad "refused for 1 s end it sooner: nothing listens there)\n"
#define CLI_OPTS_HELP_SERVER(pad, role)                                                            \
    "  -s, --server ADDR  " pad "tallyd's request address (default: $TALLY_SERVER, else\n"         \
    "                     " pad "tcp://127.0.0.1:7411)\n"                                          \
    "      --server-key K " pad "the secured daemon's public key: a certificate FILE or\n"         \
    "                     " pad "its 40-character Z85 KEY (default: $TALLY_SERVER_KEY)\n"          \
    "      --cert FILE    " pad role " secret certificate (NAME_secret of\n"                       \
    "                     " pad "`tally keygen NAME`; default: $TALLY_CERT)\n"
#define CLI_OPTS_HELP_HELP(pad) "  -h, --help         " pad "show this help\n"

#define CLI_OPTS_MAX 32 /* options of one subcommand, shared ones included */

/* cli_opts_next's "go on": not an exit status. */
#define CLI_CONTINUE (-1)

typedef struct cli_opts {
    const char *cmd;   /* "push"; NULL for the options before the subcommand */
    const char *usage; /* printed by -h/--help */
    cli_global_t *g;   /* where -s, --server-key and --cert go */
    unsigned groups;
    struct option longopts[CLI_OPTS_MAX + 1];
    char shortopts[3 * CLI_OPTS_MAX + 3];
    /* The shared options' values; complete once cli_opts_next has given
     * *opt = -1. */
    int timeout_ms;            /* --timeout; CLI_DEFAULT_TIMEOUT_MS by default */
    bool json;                 /* --json */
    const char *metric, *town; /* --metric, --town; NULL when not given */
    bool all;                  /* --all */
    int labels;                /* --labels 1, --no-labels 0, neither -1 */
    char prefix[300];          /* CLI_OPTS_FILTER: the topic prefix they select */
    /* cli_opts_resolve: the ids --town and --metric stand for */
    char town_id[PROTO_NAME_MAX + 1], metric_id[PROTO_NAME_MAX + 1];
} cli_opts_t;

/* Set o up for subcommand cmd (NULL: the options before the subcommand,
 * where parsing stops at the first operand, the subcommand's name) with
 * its usage text, g, the shared groups it takes and its own options (own:
 * an array ended by an entry with a NULL name, or NULL for none).  The
 * table lists the filter and JSON options first, then the subcommand's
 * own, then --timeout, the server options and --help.  At most
 * CLI_OPTS_MAX options in all (an assert). */
void cli_opts_init(cli_opts_t *o, const char *cmd, const char *usage, cli_global_t *g,
                   unsigned groups, const struct option *own);

/* Parse the next option of argv.  Shared options are handled here and not
 * returned.  Returns CLI_CONTINUE with *opt set to the value of one of the
 * subcommand's own options (optarg holding its argument), or to -1 once
 * the options end (optind is then the first operand, and with
 * CLI_OPTS_FILTER o->prefix is set).  Otherwise returns the exit status to
 * end the subcommand with, having printed why: CLI_OK after --help,
 * CLI_USAGE for an unknown option, a missing or bad value, an operand
 * under CLI_OPTS_NO_OPERANDS or a filter that selects nothing valid. */
int cli_opts_next(cli_opts_t *o, int argc, char **argv, int *opt);

/* All of argv's options, for a subcommand without options of its own
 * (own NULL): CLI_CONTINUE once they are parsed, else the exit status, as
 * cli_opts_next. */
int cli_opts_parse(cli_opts_t *o, int argc, char **argv);

/* --town and --metric as people write them: a township's display name
 * (高观镇) or a metric's or ratio's label (排查矛盾纠纷) in the daemon's
 * catalog stands for its id, and o->town, o->metric and o->prefix are
 * changed to it.  Only a name with bytes beyond ASCII that is not itself
 * an id of the catalog is looked up (ids are ASCII in practice, so a
 * command given ids asks nothing more of the daemon); a name the catalog
 * does not hold, or a daemon that sends no catalog, is left for the
 * daemon's answer to judge.  patient_ms 0: the catalog is asked for as
 * long as --timeout, and a failure is the command's; above 0 (watch,
 * which waits for a daemon that is not up yet): at most that long, and a
 * failure leaves the names as given.  Returns 0, or the exit status
 * (printed) of cli_request_failed() when the catalog request fails. */
int cli_opts_resolve(cli_opts_t *o, const tally_curve_t *curve, int patient_ms);

/* What the daemon makes of a --town or --metric: cli_name_check. */
typedef enum {
    CLI_NAME_KNOWN,      /* in the catalog or with tallies, or cannot be told */
    CLI_NAME_NOT_LISTED, /* see cli_name_check */
    CLI_NAME_NO_TALLIES, /* not known to be outside the catalog, without tallies */
} cli_name_t;

/* Judge name, a --town (township true) or --metric of o's command, by
 * the daemon's catalog (read now, for o->timeout_ms, if it has not been)
 * and, where the catalog cannot tell, by the names that have tallies (one
 * more request: the township list, or the county's tallies).  A township
 * list that declares any is closed: a name that is neither an id nor a
 * display name of it is CLI_NAME_NOT_LISTED; in an open one, a name
 * without tallies is CLI_NAME_NO_TALLIES.  A metric that is neither an
 * id nor a label of the catalog and has no tallies in the county is
 * CLI_NAME_NOT_LISTED (the catalog may be open, as tallyd's built-in one
 * is: a name first pushed later is accepted).  When the catalog cannot be
 * read, a name without tallies is CLI_NAME_NO_TALLIES.  Unless known, hint[0..cap) is " (did you
 * mean 'X'?)", or " (did you mean 'LABEL', id ID?)" for a metric's label, the closest id, name or
 * label of the catalog, else of the names with tallies, or "" when none is close. */
cli_name_t cli_name_check(const cli_opts_t *o, const tally_curve_t *curve, const char *name,
                          bool township, char *hint, size_t cap);

/* Does s hold a byte beyond ASCII (a name that may be a display name or
 * label rather than an id)? */
bool cli_beyond_ascii(const char *s);

/* The id that name stands for in cat's townships (township true) or
 * metrics and ratios: NULL when name is an id there, names nothing, or
 * names more than one entry (tallyd refuses such a catalog; an older one
 * gets the name as given, so that it is never taken for the wrong one). */
const char *cli_catalog_id(const char *name, const tally_catalog_t *cat, bool township);

#endif
