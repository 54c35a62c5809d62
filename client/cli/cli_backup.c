/* cli_backup.c - the tally command (client/cli/): `tally backup`, a backup
 * of tallyd's state written now, on the daemon's host (BACKUP_REQ,
 * PROTOCOL.md 8.26). */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "cli_opts.h"
#include "json.h"

/* The help lines of the shared options are cli_opts.h's macros. */
/* clang-format off */
const char cli_backup_usage[] =
    "Usage: tally backup [--json] [OPTIONS]\n"
    "\n"
    "Ask tallyd to back its state up now, wait until the backup is written and\n"
    "checked, and print where it is.  tallyd writes it on its own host, into its\n"
    "[backup] dir (by default backups/ in its state directory), while it goes on\n"
    "serving; give the path to `tallyd --restore` there.  A secured tallyd takes\n"
    "the request from an admin key only ([security] admin_keys, tallyd.conf(5)).\n"
    "\n"
    "Options:\n"
    "  -j, --json         one JSON object: {\"path\":...,\"files\":N,\"bytes\":N,\"ms\":N}\n"
    "      --timeout SEC  how long to wait for the backup (default 120; connections\n"
    "                     refused for 1 s end it sooner: nothing listens there)\n"
    CLI_OPTS_HELP_SERVER("", "an admin's")
    CLI_OPTS_HELP_HELP("")
    "\n"
    "Exit status: 0 written, 1 the daemon refused (not an admin key, too many\n"
    "backups asked for, a tallyd older than this request) or the backup failed,\n"
    "2 usage error, 3 no answer (the message says why, as far as it can tell),\n"
    "4 internal error.  See tally(1).\n";
/* clang-format on */

/* Bytes in the units people read: B, then kB, MB, GB and TB of 1000 with
 * one decimal. */
static void size_text(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"kB", "MB", "GB", "TB"};
    if (bytes < 1000) {
        snprintf(buf, cap, "%" PRIu64 " B", bytes);
        return;
    }
    double v = (double)bytes / 1000;
    size_t u = 0;
    /* 999.96 kB would print as 1000.0 kB: move on to the next unit there. */
    while (v >= 999.95 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1000;
        u++;
    }
    snprintf(buf, cap, "%.1f %s", v, units[u]);
}

static void print(const tally_backup_info_t *b, bool json)
{
    if (json) {
        fputs("{\"path\":", stdout);
        json_string(stdout, b->path);
        printf(",\"files\":%" PRIu32 ",\"bytes\":%" PRIu64 ",\"ms\":%" PRIu64 "}\n", b->files,
               b->bytes, b->ms);
        return;
    }
    char size[32];
    size_text(b->bytes, size, sizeof size);
    /* Only the name comes when the path is not UTF-8 or too long for the
     * wire: it is then in tallyd's backup directory. */
    printf("backup written: %s%s (%" PRIu32 " file%s, %s, %" PRIu64 " ms)\n", b->path,
           b->path[0] == '/' ? "" : " in tallyd's [backup] dir", b->files, b->files == 1 ? "" : "s",
           size, b->ms);
}

/* Say why tallyd wrote no backup; the exit status. */
static int failed(const cli_global_t *g, int rc, const tally_request_t *req, int timeout_ms)
{
    const char *why = req->errbuf[0] != '\0' ? req->errbuf : tally_strerror(rc);
    switch (rc) {
    case TALLY_EFORBIDDEN:
        fprintf(stderr,
                "tally backup: tallyd at %s takes backup requests from an admin key only: give "
                "--cert the secret certificate of a key in its [security] admin_keys "
                "(tallyd.conf(5))\n",
                g->server);
        return CLI_REJECTED;
    case TALLY_EUNAVAIL:
        /* The daemon's sentence says what failed ("the backup failed: ...",
         * "tallyd is stopping; ..."). */
        fprintf(stderr, "tally backup: no backup from tallyd at %s: %s\n", g->server, why);
        return CLI_REJECTED;
    case TALLY_EBUSY:
        fprintf(stderr,
                "tally backup: tallyd at %s has too many backup requests waiting already; try "
                "again once they are done\n",
                g->server);
        return CLI_REJECTED;
    case TALLY_ETYPE:
        fprintf(stderr,
                "tally backup: the tallyd at %s predates `tally backup`; send it SIGUSR1 "
                "instead (tallyd(8), BACKUP)\n",
                g->server);
        return CLI_REJECTED;
    default:
        return cli_request_failed(g, "backup", rc, req, timeout_ms);
    }
}

int cli_backup(int argc, char **argv, cli_global_t *g)
{
    cli_opts_t o;
    cli_opts_init(&o, "backup", cli_backup_usage, g,
                  CLI_OPTS_JSON | CLI_OPTS_TIMEOUT | CLI_OPTS_SERVER | CLI_OPTS_NO_OPERANDS, NULL);
    o.timeout_ms = TALLY_BACKUP_TIMEOUT_MS; /* before parsing: --timeout overrides it */
    int status = cli_opts_parse(&o, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    const tally_curve_t *curve;
    status = cli_curve(g, "backup", &curve);
    if (status != 0)
        return status;
    char err[600];
    tally_request_t req = cli_request(curve, o.timeout_ms, err, sizeof err);
    tally_backup_info_t b;
    int rc = tally_backup_req(g->server, &req, &b);
    if (rc < 0)
        return failed(g, rc, &req, o.timeout_ms);
    print(&b, o.json);
    return CLI_OK;
}
