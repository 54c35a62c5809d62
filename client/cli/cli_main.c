/* cli_main.c - the tally command (client/cli/): global options and
 * dispatch to the subcommands (cli_push.c, cli_get.c, cli_watch.c,
 * cli_stats.c, cli_backup.c, cli_keygen.c).  The command uses libtally
 * (client/lib/) through tally.h only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_opts.h"
#include "cli_period.h"

#ifndef TALLY_VERSION
#define TALLY_VERSION "0.0.0"
#endif

/* The help lines of the shared options are cli_opts.h's macros. */
/* clang-format off */
static const char usage[] =
    "Usage: tally [--server ADDR] COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "Push township figures to tallyd and read the county's rolling tallies.\n"
    "\n"
    "Commands:\n"
    "  push    send figures of a township (METRIC=VALUE pairs or a CSV file)\n"
    "  get     print the current tallies once, or a period's (--period)\n"
    "  history print one series period by period\n"
    "  report  write a period's figures as Markdown, CSV or Excel\n"
    "  watch   follow the tallies live\n"
    "  stats   print the daemon's counters\n"
    "  backup  have tallyd back its state up; copy, list and check backups\n"
    "  keygen  create a CURVE key pair for a secured tallyd\n"
    "  help    show the help of a command: tally help push\n"
    "\n"
    "Global options:\n"
    "  -s, --server ADDR  tallyd's request address: tcp://HOST:PORT, HOST:PORT, HOST\n"
    "                     or ipc://PATH (default: $TALLY_SERVER, else\n"
    "                     tcp://127.0.0.1:7411)\n"
    "      --server-key K the public key of a tallyd secured with CURVE: its\n"
    "                     certificate FILE or the 40-character Z85 KEY (default:\n"
    "                     $TALLY_SERVER_KEY); needs --cert\n"
    "      --cert FILE    this client's secret certificate, the NAME_secret file of\n"
    "                     `tally keygen NAME` (default: $TALLY_CERT)\n"
    CLI_OPTS_HELP_HELP("")
    "  -V, --version      show the version\n"
    "\n"
    "Exit status: 0 done, 1 rejected or refused by the daemon, 2 usage error,\n"
    "3 daemon unreachable or no answer in time (push: or figures refused for now\n"
    "until then), 4 internal error, 5 (push) figures of an earlier run set aside as\n"
    "of unknown fate.  See tally(1).\n";
/* clang-format on */

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv, cli_global_t *g);
    const char *usage;
} command_t;

static const command_t commands[] = {
    {"push", cli_push, cli_push_usage}, /* these seven talk to tallyd */
    {"get", cli_get, cli_get_usage},
    {"history", cli_history, cli_history_usage},
    {"report", cli_report, cli_report_usage},
    {"watch", cli_watch, cli_watch_usage},
    {"stats", cli_stats, cli_stats_usage},
    {"backup", cli_backup, cli_backup_usage}, /* written on tallyd's host */
    {"keygen", cli_keygen, cli_keygen_usage}, /* local: writes key files */
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const command_t *find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int unknown_command(const char *name)
{
    const char *names[NCOMMANDS + 1];
    for (size_t i = 0; i < NCOMMANDS; i++)
        names[i] = commands[i].name;
    names[NCOMMANDS] = "help";
    const char *s = cli_suggest(name, names, NCOMMANDS + 1);
    if (s != NULL)
        return cli_usage_error(NULL, "unknown command '%s' (did you mean '%s'?)", name, s);
    return cli_usage_error(
        NULL,
        "unknown command '%s' (commands: push, get, history, report, watch, stats, backup, "
        "keygen, help)",
        name);
}

static int help(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    const command_t *c = find(argv[1]);
    if (c == NULL)
        return unknown_command(argv[1]);
    fputs(c->usage, stdout);
    return CLI_OK;
}

int main(int argc, char **argv)
{
    static const struct option own[] = {
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    cli_global_t g;
    memset(&g, 0, sizeof g);
    g.server_key = getenv("TALLY_SERVER_KEY");
    g.cert = getenv("TALLY_CERT");
    const char *env = getenv("TALLY_SERVER");
    if (env != NULL && env[0] != '\0') {
        if (cli_set_server(&g, NULL, "TALLY_SERVER", env) != 0)
            return CLI_USAGE;
    } else {
        strcpy(g.server, TALLY_DEFAULT_SERVER);
    }
    /* The options before the subcommand; its own follow it. */
    cli_opts_t o;
    cli_opts_init(&o, NULL, usage, &g, CLI_OPTS_SERVER, own);
    int c, status;
    while ((status = cli_opts_next(&o, argc, argv, &c)) == CLI_CONTINUE && c != -1) {
        if (c == 'V') {
            printf("tally %s\n", TALLY_VERSION);
            return CLI_OK;
        }
    }
    if (status != CLI_CONTINUE)
        return status;
    if (optind >= argc) {
        fputs(usage, stderr);
        return CLI_USAGE;
    }
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0)
        return help(argc - optind, argv + optind);
    const command_t *cmd = find(name);
    if (cmd == NULL)
        return unknown_command(name);
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 0; /* glibc: re-initialise getopt for the subcommand's argv */
    int rc = cmd->run(sub_argc, sub_argv, &g);
    tally_catalog_destroy(&g.catalog);
    if (fflush(stdout) != 0 && rc == CLI_OK) {
        cli_error("cannot write to standard output");
        rc = CLI_INTERNAL;
    }
    return rc;
}
