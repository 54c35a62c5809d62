/* main.c - tallyd's command line: options, then hand over to tallyd.c. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "keys.h"
#include "log.h"
#include "restore.h"
#include "statecheck.h"
#include "tallyd.h"
#include "text.h"
#include "tally_error.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: tallyd [OPTION]...\n"
        "Receive township figures over ZeroMQ and keep county-wide rolling tallies.\n"
        "\n"
        "Without --config, tallyd runs on built-in defaults: requests on\n"
        "%s, updates on %s, state in %s,\n"
        "the built-in catalog of a township's annual report (22 metrics, 3 ratios)\n"
        "and any other well-formed township and metric name accepted (not the\n"
        "catalog's labels: a label is refused, naming its metric's id).\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE        read settings from FILE (see tallyd.conf(5))\n"
        "      --check-config FILE  check FILE, print what is wrong or that it is fine, exit;\n"
        "                           with -s DIR, also against the state in DIR as the next\n"
        "                           start would (windows, time zone, metrics' kinds)\n"
        "  -s, --state-dir DIR      keep state in DIR (overrides the config file)\n"
        "  -r, --request ENDPOINT   bind the request socket there (overrides the config)\n"
        "  -p, --publish ENDPOINT   bind the publish socket there (overrides the config)\n"
        "  -l, --log-level LEVEL    error, warning, notice, info or debug\n"
        "      --accept-loss        start even though journal records are missing (a\n"
        "                           deleted segment); the loss is logged\n"
        "      --restore BACKUP     put the backup directory BACKUP (a backup-* of\n"
        "                           SIGUSR1 or `tally backup`) in place of the state\n"
        "                           directory's files, which are moved aside, and\n"
        "                           exit; tallyd must be stopped (with --accept-loss\n"
        "                           also when only its history.db is damaged)\n"
        "      --check-backup BACKUP\n"
        "                           check that BACKUP can be restored (its files\n"
        "                           against BLAKE2SUMS, then as a start reads them:\n"
        "                           checkpoint, journal, history.db), and exit\n"
        "  -h, --help               print this help and exit\n"
        "  -V, --version            print the version and exit\n"
        "\n"
        "Signals: SIGTERM or SIGINT stop cleanly; SIGHUP reloads the config file;\n"
        "SIGUSR1 (or `tally backup`) writes a backup of the state directory (tallyd(8),\n"
        "BACKUP).\n"
        "Exit status: 0 clean stop or valid config, 1 runtime failure, 2 usage or config error.\n",
        CONFIG_DEFAULT_REQUEST, CONFIG_DEFAULT_PUBLISH, CONFIG_DEFAULT_STATE_DIR);
}

static void warn_key(void *ctx, const char *text)
{
    fprintf(stderr, "%s: warning: %s\n", (const char *)ctx, text);
}

/* --check-config FILE [-s DIR]: the file as a start would read it, its
 * keys, and with DIR the state there as a start would take it. */
static int check_config(const char *path, const char *state_dir)
{
    tallyd_config_t cfg;
    char err[1024];
    if (config_load(path, &cfg, err, sizeof(err)) != 0) {
        /* "FILE:LINE: ..." names itself; "cannot open FILE" is said to be
         * tallyd's. */
        fprintf(stderr, "%s%s\n", strncmp(err, path, strlen(path)) == 0 ? "" : "tallyd: ", err);
        return 2;
    }
    /* The keys too, as a start would read them. */
    keys_server_t srv;
    keyring_t kr;
    keyring_init(&kr);
    int rc = keys_load_config(&cfg, &srv, &kr, err, sizeof(err));
    explicit_bzero(srv.sec, sizeof(srv.sec));
    int status = rc < 0 ? 2 : 0;
    if (rc < 0)
        fprintf(stderr, "%s: %s\n", path, err);
    else
        keys_check_townships(&kr, &cfg, warn_key, (void *)path);
    /* With DIR, the state first: a file the next start would refuse is
     * not called valid. */
    char msg[2048] = "";
    if (status == 0 && state_dir != NULL) {
        rc = statecheck_config(&cfg, state_dir, msg, sizeof(msg));
        if (rc == TALLY_ECONFIG) {
            fprintf(stderr, "%s: the next start would refuse it against the state in %s: %s\n",
                    path, state_dir, msg);
            status = 2;
        } else if (rc != 0) {
            fprintf(stderr, "%s: cannot check it against the state in %s: %s\n", path, state_dir,
                    msg);
            status = 1;
        }
    }
    if (status == 0) {
        printf("%s: configuration is valid (%zu township%s, %zu metric%s, %zu ratio%s, %zu "
               "window%s",
               path, cfg.ntownships, TEXT_PLURAL(cfg.ntownships), cfg.nmetrics,
               TEXT_PLURAL(cfg.nmetrics), cfg.nratios, TEXT_PLURAL(cfg.nratios), cfg.nwindows,
               TEXT_PLURAL(cfg.nwindows));
        if (srv.secured)
            printf("; CURVE with %zu township, %zu subscriber and %zu admin keys", kr.ntownships,
                   kr.nsubscribers, kr.nadmins);
        printf(")\n");
        if (state_dir != NULL)
            printf("%s: fits the state in %s: %s\n", path, state_dir, msg);
    }
    keyring_free(&kr);
    config_free(&cfg);
    return status;
}

/* What to do about a backup whose history.db alone is damaged. */
#define HISTORY_LOSS_HINT                                                                          \
    " (with --accept-loss it is restored all the same, and the start rebuilds the history "        \
    "from the journal alone, losing what is older)"

/* --check-backup: restore's checks, nothing written.  0 restorable, 1
 * damaged or unreadable, 2 no backup there. */
static int check_backup(const char *backup)
{
    restore_report_t rep;
    char err[2048];
    int rc = restore_check(backup, &rep, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "tallyd: --check-backup: %s%s\n", err,
                rep.history_damaged ? "; a restore refuses it" HISTORY_LOSS_HINT : "");
        return rc == TALLY_EINVAL ? 2 : 1;
    }
    printf("%s can be restored: %u files, %" PRIu64 " bytes%s.\n", backup, rep.backup_files,
           rep.backup_bytes, rep.sums ? ", besides BLAKE2SUMS" : "");
    printf("%s\n", rep.sums ? "Every file matched the backup's BLAKE2SUMS."
                            : "The backup has no BLAKE2SUMS (an older tallyd's): checked by the "
                              "files' own CRCs only.");
    if (rep.checkpoint[0] != '\0')
        printf("Its checkpoint %s is intact and holds the journal to position %" PRIu64 ".\n",
               rep.checkpoint, rep.checkpoint_pos - 1);
    printf("Its journal is intact, every position present, from %" PRIu64 " to %" PRIu64 ".\n",
           rep.journal_first, rep.journal_last);
    if (rep.history)
        printf("Its history.db is sound (PRAGMA quick_check): %" PRIu64 " rows of figures.\n",
               rep.history_cells);
    else
        printf("It holds no history.db: a start would rebuild the history from the journal.\n");
    return 0;
}

/* --restore: the state directory from the config file and -s, as a start
 * would take it. */
static int restore(const char *backup, const config_overrides_t *o)
{
    tallyd_config_t cfg;
    char err[2048];
    if (config_load(o->config_path, &cfg, err, sizeof(err)) != 0 ||
        config_apply_overrides(&cfg, o, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    restore_report_t rep;
    int rc = restore_run(backup, cfg.state_dir, clock_now_ms(&clock_system), o->accept_loss, &rep,
                         err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "tallyd: --restore: %s%s%s\n", err,
                rc == TALLY_EEXIST || rc == TALLY_EINVAL ? ""
                                                         : "; the state directory is unchanged",
                rep.history_damaged ? HISTORY_LOSS_HINT : "");
        config_free(&cfg);
        return rc == TALLY_EINVAL ? 2 : 1;
    }
    printf("restored %s into %s: %u files, %" PRIu64 " bytes, the journal to position %" PRIu64
           ".\n",
           backup, cfg.state_dir, rep.files, rep.bytes, rep.journal_last);
    printf("%s\n", rep.sums ? "Every file matched the backup's BLAKE2SUMS."
                            : "The backup has no BLAKE2SUMS (an older tallyd's): its checkpoint "
                              "and journal were checked by their CRCs only.");
    if (rep.history_damaged)
        printf("Its history.db is damaged (%s): the start will set it aside and rebuild the "
               "history from the journal, which holds it from position %" PRIu64 " on.\n",
               err, rep.journal_first);
    if (rep.replaced > 0)
        printf("The %u files it replaced are in %s: remove them once tallyd has started.\n",
               rep.replaced, rep.replaced_dir);
    printf("Start tallyd now; figures acknowledged after the backup was taken are not in it.\n");
    config_free(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},
        {"check-config", required_argument, 0, 'C'},
        {"state-dir", required_argument, 0, 's'},
        {"log-level", required_argument, 0, 'l'},
        {"request", required_argument, 0, 'r'},
        {"publish", required_argument, 0, 'p'},
        {"accept-loss", no_argument, 0, 'A'},
        {"restore", required_argument, 0, 'R'},
        {"check-backup", required_argument, 0, 'K'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    config_overrides_t o = {0};
    const char *restore_from = NULL, *check_path = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:s:l:r:p:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o.config_path = optarg;
            break;
        case 'C':
            check_path = optarg;
            break;
        case 's':
            o.state_dir = optarg;
            break;
        case 'r':
            o.request = optarg;
            break;
        case 'p':
            o.publish = optarg;
            break;
        case 'A':
            o.accept_loss = true;
            break;
        case 'R':
            restore_from = optarg;
            break;
        case 'K':
            return check_backup(optarg);
        case 'l':
            if (log_level_parse(optarg) < 0) {
                fprintf(stderr,
                        "tallyd: --log-level: '%s' is not one of error, warning, notice, info, "
                        "debug\n",
                        optarg);
                return 2;
            }
            o.log_level = log_level_parse(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("tallyd %s (protocol %d)\n", TALLY_VERSION, PROTO_VERSION);
            return 0;
        case ':':
            fprintf(stderr, "tallyd: option '%s' needs a value\nTry 'tallyd --help'.\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "tallyd: unknown option '%s'\nTry 'tallyd --help'.\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tallyd: unexpected argument '%s'\nTry 'tallyd --help'.\n", argv[optind]);
        return 2;
    }
    if (check_path != NULL)
        return check_config(check_path, o.state_dir);
    if (restore_from != NULL)
        return restore(restore_from, &o);
    return tallyd_main(&o);
}
