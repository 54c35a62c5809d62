/* cli_backup.c - the tally command (client/cli/): `tally backup`, a backup
 * of tallyd's state written now, on the daemon's host (BACKUP_REQ,
 * PROTOCOL.md 8.26), and copied to this machine with --copy-to, or an
 * existing one copied with --name (BACKUP_FETCH, 8.27); the backups
 * tallyd keeps, listed with --list (BACKUP_LIST_REQ, 8.28); copies here
 * checked with --verify. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "b2sums.h"
#include "cli.h"
#include "cli_opts.h"
#include "copies.h"
#include "json.h"
#include "text.h"

/* The help lines of the shared options are cli_opts.h's macros. */
/* clang-format off */
const char cli_backup_usage[] =
    "Usage: tally backup [--json] [--copy-to DIR [--name NAME] [--keep N]] [OPTIONS]\n"
    "       tally backup [--json] --list [OPTIONS]\n"
    "       tally backup [--json] --verify PATH\n"
    "\n"
    "Ask tallyd to back its state up now, wait until the backup is written and\n"
    "checked, and print where it is.  tallyd writes it on its own host, into its\n"
    "[backup] dir (by default backups/ in its state directory), while it goes on\n"
    "serving; give the path to `tallyd --restore` there.  With --copy-to, copy it\n"
    "over the connection into DIR/NAME on this machine too (NAME: the backup's,\n"
    "backup-YYYYMMDDTHHMMSSZ).  With --name as well, copy a backup tallyd keeps\n"
    "already (a scheduled one) instead of asking for a new one.  A secured tallyd\n"
    "takes them from an admin key only ([security] admin_keys, tallyd.conf(5)).\n"
    "--list shows the backups tallyd keeps, oldest first: the names --name takes.\n"
    "Every backup carries BLAKE2SUMS, the BLAKE2b digest of each of its files; a\n"
    "copy is checked against it before it appears.  --verify checks copies made\n"
    "earlier, here, without tallyd.\n"
    "\n"
    "Options:\n"
    "  -j, --json         one JSON object: {\"path\":...,\"files\":N,\"bytes\":N,\"ms\":N},\n"
    "                     with \"copy\":{\"dir\":...,\"files\":N,\"bytes\":N,\"ms\":N} once\n"
    "                     copied (with --name: {\"name\":...,\"copy\":{...}}), and\n"
    "                     \"removed\":[NAME,...] with --keep\n"
    "      --copy-to DIR  copy the backup into DIR/NAME here: DIR is created if\n"
    "                     missing, an existing DIR/NAME is never overwritten, and\n"
    "                     DIR/NAME appears only once the copy is whole\n"
    "      --name NAME    with --copy-to: copy tallyd's backup NAME (as in its\n"
    "                     [backup] dir) instead of asking for a new one\n"
    "      --keep N       with --copy-to: once copied, remove the oldest copies in\n"
    "                     DIR until N are left, the new one among them (only\n"
    "                     directories backup-* holding what a copy holds)\n"
    "      --list         list the backups tallyd keeps in its [backup] dir, oldest\n"
    "                     first, with their files, size and whether they hold\n"
    "                     BLAKE2SUMS: the names --name takes ({\"dir\":...,\"total\":N,\n"
    "                     \"backups\":[{\"name\":...,\"files\":N,\"bytes\":N,\"checked\":B}]}\n"
    "                     with --json)\n"
    "      --verify PATH  check the backup or copy PATH (a backup-* directory), or\n"
    "                     every one in the directory PATH, against its BLAKE2SUMS,\n"
    "                     and say which match; tallyd is not asked (\"verified\":[...]\n"
    "                     with --json)\n"
    "      --timeout SEC  how long to wait for the backup (default 120; connections\n"
    "                     refused for 1 s end it sooner: nothing listens there);\n"
    "                     with --copy-to also the longest wait for the next piece\n"
    "                     of the copy (default 60); with --list, for the list\n"
    "                     (default 10)\n"
    CLI_OPTS_HELP_SERVER("", "an admin's")
    CLI_OPTS_HELP_HELP("")
    "\n"
    "Exit status: 0 written (and copied) or listed, 1 the daemon refused (not an\n"
    "admin key, too many backups asked for, no backup NAME kept, a tallyd older\n"
    "than this request) or the backup, its copy or the list failed, 2 usage\n"
    "error, 3 no answer (the message says why, as far as it can tell), 4\n"
    "internal error, or the copy could not be written here (the message names\n"
    "the file).  With --verify: 0 every backup matches its BLAKE2SUMS, 1 one\n"
    "does not (or has none, or PATH holds none), 4 a file could not be read.\n"
    "See tally(1).\n";
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

/* What the command did: a backup written (b, unless only copied), a copy
 * made (copy, when asked for and done), older copies removed (--keep). */
typedef struct done {
    const tally_backup_info_t *b; /* NULL with --name */
    const char *name;             /* the backup copied (or to be) */
    const tally_backup_copy_t *copy;
    bool checked;                  /* the copy matched the backup's BLAKE2SUMS */
    const copies_names_t *removed; /* NULL without --keep */
} done_t;

static void print_json(const done_t *d)
{
    if (d->b != NULL) {
        fputs("{\"path\":", stdout);
        json_string(stdout, d->b->path);
        printf(",\"files\":%" PRIu32 ",\"bytes\":%" PRIu64 ",\"ms\":%" PRIu64, d->b->files,
               d->b->bytes, d->b->ms);
    } else {
        fputs("{\"name\":", stdout);
        json_string(stdout, d->name);
    }
    if (d->copy != NULL) {
        fputs(",\"copy\":{\"dir\":", stdout);
        json_string(stdout, d->copy->dir);
        printf(",\"files\":%" PRIu32 ",\"bytes\":%" PRIu64 ",\"ms\":%" PRIu64 ",\"checked\":%s}",
               d->copy->files, d->copy->bytes, d->copy->ms, d->checked ? "true" : "false");
    }
    if (d->removed != NULL) {
        fputs(",\"removed\":[", stdout);
        for (size_t i = 0; i < d->removed->n; i++) {
            if (i > 0)
                fputc(',', stdout);
            json_string(stdout, d->removed->names[i]);
        }
        fputc(']', stdout);
    }
    fputs("}\n", stdout);
}

static void print_written(const tally_backup_info_t *b)
{
    char size[32];
    size_text(b->bytes, size, sizeof size);
    /* Only the name comes when the path is not UTF-8 or too long for the
     * wire: it is then in tallyd's backup directory. */
    printf("backup written: %s%s (%" PRIu32 " file%s, %s, %" PRIu64 " ms)\n", b->path,
           b->path[0] == '/' ? "" : " in tallyd's [backup] dir", b->files, b->files == 1 ? "" : "s",
           size, b->ms);
}

static void print_copied(const tally_backup_copy_t *c, bool checked)
{
    char size[32];
    size_text(c->bytes, size, sizeof size);
    /* Milliseconds like the backup's line, seconds once they are many. */
    char took[32];
    if (c->ms < 10000)
        snprintf(took, sizeof took, "%" PRIu64 " ms", c->ms);
    else
        snprintf(took, sizeof took, "%.1f s", (double)c->ms / 1000);
    printf("copied to %s (%" PRIu32 " file%s, %s, in %s; %s)\n", c->dir, c->files,
           c->files == 1 ? "" : "s", size, took,
           checked ? "every file matches its BLAKE2SUMS"
                   : "not checked: the backup has no BLAKE2SUMS, its tallyd predates them");
}

/* Say why tallyd wrote no backup (list: why it sent no list of them); the
 * exit status. */
static int failed(const cli_global_t *g, int rc, const tally_request_t *req, int timeout_ms,
                  bool list)
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
        fprintf(stderr, "tally backup: no %s from tallyd at %s: %s\n",
                list ? "list of backups" : "backup", g->server, why);
        return CLI_REJECTED;
    case TALLY_EBUSY:
        fprintf(stderr,
                "tally backup: tallyd at %s has too many backup requests waiting already; try "
                "again once they are done\n",
                g->server);
        return CLI_REJECTED;
    case TALLY_ETYPE:
        if (list)
            fprintf(stderr,
                    "tally backup: the tallyd at %s predates `tally backup --list`; look in its "
                    "[backup] dir on its host\n",
                    g->server);
        else
            fprintf(stderr,
                    "tally backup: the tallyd at %s predates `tally backup`; send it SIGUSR1 "
                    "instead (tallyd(8), BACKUP)\n",
                    g->server);
        return CLI_REJECTED;
    default:
        return cli_request_failed(g, "backup", rc, req, timeout_ms);
    }
}

/* ---- the copy (--copy-to) ---- */

/* --copy-to DIR can take the copy: a directory, or missing with its
 * parent a directory (DIR is made, not its parents).  0 or the usage
 * error (printed). */
static int check_into(const char *into)
{
    struct stat st;
    if (stat(into, &st) == 0)
        return S_ISDIR(st.st_mode)
                   ? 0
                   : cli_usage_error("backup", "--copy-to '%s' is not a directory", into);
    if (errno != ENOENT)
        return cli_usage_error("backup", "--copy-to '%s': %s", into, strerror(errno));
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", into);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    if (slash == NULL)
        snprintf(parent, sizeof parent, ".");
    else
        slash[slash == parent ? 1 : 0] = '\0';
    if (stat(parent, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    return cli_usage_error("backup",
                           "--copy-to '%s': its parent %s is not a directory (DIR is created "
                           "when missing, not its parents)",
                           into, parent);
}

/* The progress line on a terminal's standard error: drawn over itself
 * with \r at most ten times a second, and cleared at the end. */
typedef struct progress {
    const char *name;
    bool on;
    int64_t last_ms;
    int width; /* of the line drawn last; 0: none */
} progress_t;

static void progress_draw(void *ctx, const tally_backup_progress_t *p)
{
    progress_t *pr = ctx;
    int64_t now = cli_clock_ms(CLOCK_MONOTONIC);
    if (!pr->on || (pr->width > 0 && now - pr->last_ms < 100))
        return;
    pr->last_ms = now;
    char done[32], total[32], line[200];
    size_text(p->bytes_done, done, sizeof done);
    if (p->files_sized == p->files && p->bytes > 0) {
        size_text(p->bytes, total, sizeof total);
        snprintf(line, sizeof line, "copying %s: %s of %s (%d%%), %" PRIu32 " of %" PRIu32 " files",
                 pr->name, done, total, (int)(p->bytes_done * 100 / p->bytes), p->files_done,
                 p->files);
    } else {
        snprintf(line, sizeof line, "copying %s: %s, %" PRIu32 " of %" PRIu32 " files", pr->name,
                 done, p->files_done, p->files);
    }
    int n = (int)strlen(line);
    fprintf(stderr, "\r%s%*s", line, pr->width > n ? pr->width - n : 0, "");
    fflush(stderr);
    pr->width = n > pr->width ? n : pr->width;
}

static void progress_clear(progress_t *pr)
{
    if (pr->width > 0)
        fprintf(stderr, "\r%*s\r", pr->width, "");
    pr->width = 0;
}

/* The backup's name: the last part of its path on tallyd's host (the
 * path is the name alone when it has no '/'). */
static const char *name_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

/* Say why the copy of name into dir failed (written: the backup was
 * written by this command, at path on tallyd's host); the exit status. */
static int copy_failed(const cli_global_t *g, int rc, const tally_request_t *req, const char *name,
                       const char *path, const char *dir, int timeout_ms)
{
    const char *why = req->errbuf[0] != '\0' ? req->errbuf : tally_strerror(rc);
    int status = CLI_REJECTED;
    switch (rc) {
    case TALLY_EEXIST:
        fprintf(stderr,
                "tally backup: %s exists already: remove it, or give --copy-to another "
                "directory\n",
                dir);
        break;
    case TALLY_ENOBACKUP:
        fprintf(stderr,
                "tally backup: tallyd at %s keeps no backup %s: it keeps only its newest "
                "[backup] keep backups (tallyd.conf(5)); give --name one of those (tally "
                "backup --list shows them), or leave --name out to have a new one written and "
                "copied\n",
                g->server, name);
        break;
    case TALLY_EFORBIDDEN:
        return failed(g, rc, req, timeout_ms, false);
    case TALLY_ETYPE:
        if (path != NULL && path[0] == '/')
            fprintf(stderr,
                    "tally backup: this tallyd cannot send backups; copy %s from its host\n", path);
        else
            fprintf(stderr,
                    "tally backup: this tallyd cannot send backups; copy %s from its [backup] dir "
                    "on its host\n",
                    name);
        return CLI_REJECTED; /* nothing more to suggest */
    case TALLY_EUNAVAIL:
        fprintf(stderr, "tally backup: cannot copy %s from tallyd at %s: %s\n", name, g->server,
                why);
        break;
    case TALLY_EBUSY:
        fprintf(stderr,
                "tally backup: cannot copy %s: tallyd at %s stayed busy sending other backups' "
                "files for %g s (%s); try again once they are done\n",
                name, g->server, timeout_ms / 1000.0, why);
        break;
    case TALLY_EMALFORMED:
        fprintf(stderr, "tally backup: the copy of %s from tallyd at %s failed: %s\n", name,
                g->server, why);
        break;
    case TALLY_EDAMAGED:
        /* Copying it again would give the same bytes. */
        fprintf(stderr,
                "tally backup: nothing copied: %s; have a new backup written and copied (tally "
                "backup --copy-to DIR, without --name), and look at the disk of tallyd's host\n",
                why);
        return CLI_REJECTED;
    case TALLY_EIO:
        fprintf(stderr, "tally backup: cannot copy %s here: %s\n", name, why);
        status = CLI_INTERNAL;
        break;
    case TALLY_EINVAL:
        fprintf(stderr, "tally backup: cannot copy %s: %s\n", name, why);
        status = CLI_USAGE;
        break;
    default:
        status = cli_request_failed(g, "backup", rc, req, timeout_ms);
        break;
    }
    if (path != NULL && rc != TALLY_EEXIST)
        fprintf(stderr,
                "tally backup: the backup is kept on tallyd's host; to copy it later: tally "
                "backup --name %s --copy-to DIR\n",
                name);
    return status;
}

/* Copy the backup name into into/name; fills *out.  0 or the exit
 * status (printed). */
static int copy_backup(const cli_global_t *g, const tally_curve_t *curve, const char *name,
                       const char *path, const char *into, int timeout_ms, tally_backup_copy_t *out)
{
    char err[1200];
    tally_request_t req = cli_request(curve, timeout_ms, err, sizeof err);
    progress_t pr = {.name = name, .on = isatty(STDERR_FILENO)};
    int rc = tally_backup_fetch_progress_req(g->server, &req, name, into, progress_draw, &pr, out);
    progress_clear(&pr);
    if (rc < 0)
        return copy_failed(g, rc, &req, name, path, out->dir, timeout_ms);
    return 0;
}

/* ---- --verify ---- */

/* What --verify found, counted. */
typedef struct verified {
    unsigned ok, damaged, unchecked, unreadable;
} verified_t;

static const char *const check_words[] = {
    [B2SUMS_OK] = "ok",
    [B2SUMS_NONE] = "unchecked",
    [B2SUMS_DAMAGED] = "damaged",
    [B2SUMS_EIO] = "unreadable",
};

static void print_check(const char *dir, const copies_check_t *ck, bool json, bool first)
{
    if (json) {
        fputs(first ? "" : ",", stdout);
        fputs("{\"dir\":", stdout);
        json_string(stdout, dir);
        printf(",\"status\":\"%s\"", check_words[ck->status]);
        if (ck->status == B2SUMS_OK)
            printf(",\"files\":%u,\"bytes\":%" PRIu64, ck->files, ck->bytes);
        else if (ck->err[0] != '\0') {
            fputs(",\"error\":", stdout);
            json_string(stdout, ck->err);
        }
        fputc('}', stdout);
        return;
    }
    char size[32];
    switch (ck->status) {
    case B2SUMS_OK:
        size_text(ck->bytes, size, sizeof size);
        /* BLAKE2SUMS named: tally backup and the copy count it among
         * the backup's files. */
        printf("%s: ok, BLAKE2SUMS and the %u file%s it lists (%s), each matching\n", dir,
               ck->files, ck->files == 1 ? "" : "s", size);
        break;
    case B2SUMS_NONE:
        printf("%s: not checked: it has no BLAKE2SUMS (written by a tallyd that predates them)\n",
               dir);
        break;
    case B2SUMS_DAMAGED:
        printf("%s: DAMAGED: %s\n", dir, ck->err);
        break;
    default:
        printf("%s: cannot be checked: %s\n", dir, ck->err);
        break;
    }
}

/* --verify PATH: one backup (named like one, or holding BLAKE2SUMS), or
 * the copies in the directory PATH.  The exit status. */
static int verify(const char *path, bool json)
{
    char p[TALLY_PATH_MAX + 1], err[600];
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    if (len > TALLY_PATH_MAX)
        return cli_usage_error("backup", "--verify: the path is longer than %d bytes",
                               TALLY_PATH_MAX);
    memcpy(p, path, len);
    p[len] = '\0';
    const char *base = name_of(p);
    char sums[TALLY_PATH_MAX + sizeof B2SUMS_FILE + 1];
    snprintf(sums, sizeof sums, "%s/%s", p, B2SUMS_FILE);
    bool one = proto_backup_name_valid(base, strlen(base)) || access(sums, F_OK) == 0;
    copies_names_t list = {0};
    if (!one && copies_list(p, &list, err, sizeof err) != 0) {
        fprintf(stderr, "tally backup: --verify: %s\n", err);
        return CLI_INTERNAL;
    }
    if (!one && list.n == 0) {
        fprintf(stderr,
                "tally backup: --verify: %s holds no backup: give a backup-* directory, or the "
                "directory holding them (--copy-to's DIR, or tallyd's [backup] dir)\n",
                p);
        return CLI_REJECTED;
    }
    verified_t v = {0};
    if (json)
        fputs("{\"verified\":[", stdout);
    size_t n = one ? 1 : list.n;
    for (size_t i = 0; i < n; i++) {
        char dir[2 * TALLY_PATH_MAX + 2];
        snprintf(dir, sizeof dir, "%s%s%s", p,
                 one                   ? ""
                 : strcmp(p, "/") == 0 ? ""
                                       : "/",
                 one ? "" : list.names[i]);
        copies_check_t ck;
        copies_check(dir, &ck);
        v.ok += ck.status == B2SUMS_OK;
        v.unchecked += ck.status == B2SUMS_NONE;
        v.damaged += ck.status == B2SUMS_DAMAGED;
        v.unreadable += ck.status == B2SUMS_EIO;
        print_check(dir, &ck, json, i == 0);
    }
    if (json)
        fputs("]}\n", stdout);
    copies_names_free(&list);
    if (!json && n > 1)
        printf("%zu backups checked in %s: %u ok, %u damaged, %u without BLAKE2SUMS, %u "
               "unreadable\n",
               n, p, v.ok, v.damaged, v.unchecked, v.unreadable);
    return v.damaged + v.unchecked > 0 ? CLI_REJECTED : v.unreadable > 0 ? CLI_INTERNAL : CLI_OK;
}

/* --keep: remove the oldest copies in into beyond keep, sparing name
 * (just copied); *removed lists them.  0, or CLI_INTERNAL (printed). */
static int keep_copies(const char *into, unsigned keep, const char *name, copies_names_t *removed)
{
    char err[600];
    if (copies_prune(into, keep, name, removed, err, sizeof err) == 0)
        return 0;
    fprintf(stderr, "tally backup: the copy is made, but %s\n", err);
    return CLI_INTERNAL;
}

static void print_removed(const char *into, const copies_names_t *r)
{
    if (r->n == 0)
        return;
    printf("removed %zu older cop%s from %s:", r->n, r->n == 1 ? "y" : "ies", into);
    for (size_t i = 0; i < r->n; i++)
        printf(" %s", r->names[i]);
    putchar('\n');
}

/* ---- --list ---- */

static void print_list_json(const tally_backup_list_t *l)
{
    fputs("{\"dir\":", stdout);
    json_string(stdout, l->dir);
    printf(",\"total\":%" PRIu32 ",\"backups\":[", l->total);
    for (uint32_t i = 0; i < l->n; i++) {
        const tally_backup_entry_t *e = &l->backups[i];
        fputs(i > 0 ? ",{\"name\":" : "{\"name\":", stdout);
        json_string(stdout, e->name);
        printf(",\"files\":%" PRIu32 ",\"bytes\":%" PRIu64 ",\"checked\":%s}", e->files, e->bytes,
               e->checked ? "true" : "false");
    }
    fputs("]}\n", stdout);
}

/* The list as a line saying where and how many, then a line a backup in
 * aligned columns: name, files, size, BLAKE2SUMS or not. */
static void print_list(const tally_backup_list_t *l)
{
    /* The directory is the daemon's text: escaped like any before display
     * (PROTOCOL.md 8.16).  "" when it could not send it. */
    char shown[4 * TALLY_PATH_MAX + 1];
    const char *where = l->dir[0] == '\0'
                            ? "its [backup] dir"
                            : text_printable(shown, sizeof shown, l->dir, strlen(l->dir), 0);
    if (l->n == 0 && l->total == 0) {
        printf("tallyd keeps no backup in %s\n", where);
        return;
    }
    if (l->n < l->total)
        printf("the newest %" PRIu32 " of %" PRIu32 " backups tallyd keeps in %s:\n", l->n,
               l->total, where);
    else
        printf("tallyd keeps %" PRIu32 " backup%s in %s:\n", l->total, l->total == 1 ? "" : "s",
               where);
    int wname = 0, wfiles = 0, wword = 4, wsize = 0;
    char num[16], size[32];
    for (uint32_t i = 0; i < l->n; i++) {
        const tally_backup_entry_t *e = &l->backups[i];
        int n = (int)strlen(e->name);
        wname = n > wname ? n : wname;
        n = snprintf(num, sizeof num, "%" PRIu32, e->files);
        wfiles = n > wfiles ? n : wfiles;
        wword = e->files != 1 ? 5 : wword;
        size_text(e->bytes, size, sizeof size);
        n = (int)strlen(size);
        wsize = n > wsize ? n : wsize;
    }
    for (uint32_t i = 0; i < l->n; i++) {
        const tally_backup_entry_t *e = &l->backups[i];
        size_text(e->bytes, size, sizeof size);
        printf("%-*s   %*" PRIu32 " %-*s   %*s   %s\n", wname, e->name, wfiles, e->files, wword,
               e->files == 1 ? "file" : "files", wsize, size,
               e->checked ? "BLAKE2SUMS" : "no BLAKE2SUMS");
    }
}

/* --list: ask tallyd which backups it keeps, and print them.  The exit
 * status. */
static int list_backups(const cli_global_t *g, const tally_curve_t *curve, int timeout_ms,
                        bool json)
{
    char err[600];
    tally_request_t req = cli_request(curve, timeout_ms, err, sizeof err);
    tally_backup_list_t l;
    int rc = tally_backup_list_req(g->server, &req, &l);
    if (rc < 0)
        return failed(g, rc, &req, timeout_ms, true);
    if (json)
        print_list_json(&l);
    else
        print_list(&l);
    tally_backup_list_clear(&l);
    return CLI_OK;
}

enum { OPT_COPY_TO = CLI_OPT_OWN, OPT_NAME, OPT_KEEP, OPT_VERIFY, OPT_LIST };

int cli_backup(int argc, char **argv, cli_global_t *g)
{
    static const struct option own[] = {
        {"copy-to", required_argument, NULL, OPT_COPY_TO},
        {"name", required_argument, NULL, OPT_NAME},
        {"keep", required_argument, NULL, OPT_KEEP},
        {"verify", required_argument, NULL, OPT_VERIFY},
        {"list", no_argument, NULL, OPT_LIST},
        {NULL, 0, NULL, 0},
    };
    cli_opts_t o;
    cli_opts_init(&o, "backup", cli_backup_usage, g,
                  CLI_OPTS_JSON | CLI_OPTS_TIMEOUT | CLI_OPTS_SERVER | CLI_OPTS_NO_OPERANDS, own);
    o.timeout_ms = 0; /* not given: each wait has its own default */
    const char *into = NULL, *name = NULL, *keep_arg = NULL, *check = NULL;
    bool list = false;
    int c, status;
    while ((status = cli_opts_next(&o, argc, argv, &c)) == CLI_CONTINUE && c != -1) {
        if (c == OPT_COPY_TO)
            into = optarg;
        else if (c == OPT_NAME)
            name = optarg;
        else if (c == OPT_VERIFY)
            check = optarg;
        else if (c == OPT_LIST)
            list = true;
        else
            keep_arg = optarg;
    }
    if (status != CLI_CONTINUE)
        return status;
    if (list && (into != NULL || name != NULL || keep_arg != NULL || check != NULL))
        return cli_usage_error("backup", "--list shows the backups tallyd keeps: it takes no "
                                         "--copy-to, --name, --keep or --verify");
    if (check != NULL && (into != NULL || name != NULL || keep_arg != NULL))
        return cli_usage_error("backup", "--verify checks backups already here: it takes no "
                                         "--copy-to, --name or --keep");
    if (check != NULL && check[0] == '\0')
        return cli_usage_error("backup", "--verify needs a path");
    if (check != NULL)
        return verify(check, o.json);
    unsigned keep = 0;
    if (keep_arg != NULL) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(keep_arg, &end, 10);
        if (keep_arg[0] < '0' || keep_arg[0] > '9' || *end != '\0' || errno != 0 || v < 1 ||
            v > 100000)
            return cli_usage_error("backup", "--keep '%s' is not a number of copies, 1 to 100000",
                                   keep_arg);
        if (into == NULL)
            return cli_usage_error("backup", "--keep says how many copies to keep: it needs "
                                             "--copy-to DIR");
        keep = (unsigned)v;
    }
    if (into != NULL && into[0] == '\0')
        return cli_usage_error("backup", "--copy-to needs a directory");
    if (name != NULL && into == NULL)
        return cli_usage_error("backup", "--name says which backup to copy: it needs --copy-to "
                                         "DIR");
    if (name != NULL && !proto_backup_name_valid(name, strlen(name)))
        return cli_usage_error("backup",
                               "--name '%s' is not a backup's name: backup-YYYYMMDDTHHMMSSZ, "
                               "optionally followed by -N",
                               name);
    if (into != NULL && (status = check_into(into)) != 0)
        return status; /* before tallyd writes a backup that could not be copied */
    const tally_curve_t *curve;
    status = cli_curve(g, "backup", &curve);
    if (status != 0)
        return status;
    if (list)
        return list_backups(g, curve, o.timeout_ms > 0 ? o.timeout_ms : CLI_DEFAULT_TIMEOUT_MS,
                            o.json);
    int wait_ms = o.timeout_ms > 0 ? o.timeout_ms : TALLY_BACKUP_TIMEOUT_MS;
    int copy_ms = o.timeout_ms > 0 ? o.timeout_ms : TALLY_FETCH_TIMEOUT_MS;
    tally_backup_info_t b;
    tally_backup_copy_t cp;
    done_t d = {.name = name};
    if (name == NULL) {
        char err[600];
        tally_request_t req = cli_request(curve, wait_ms, err, sizeof err);
        int rc = tally_backup_req(g->server, &req, &b);
        if (rc < 0)
            return failed(g, rc, &req, wait_ms, false);
        d.b = &b;
        d.name = name_of(b.path);
        if (!o.json)
            print_written(&b);
        if (into == NULL) {
            if (o.json)
                print_json(&d);
            return CLI_OK;
        }
        fflush(stdout); /* written, whatever becomes of the copy */
        if (!proto_backup_name_valid(d.name, strlen(d.name))) {
            if (o.json)
                print_json(&d);
            fprintf(stderr,
                    "tally backup: cannot copy the backup: '%s' is not a backup's name "
                    "(backup-YYYYMMDDTHHMMSSZ)\n",
                    d.name);
            return CLI_REJECTED;
        }
    }
    status = copy_backup(g, curve, d.name, d.b != NULL ? b.path : NULL, into, copy_ms, &cp);
    copies_names_t removed = {0};
    if (status == 0) {
        d.copy = &cp;
        char sums[sizeof cp.dir + sizeof B2SUMS_FILE + 1];
        snprintf(sums, sizeof sums, "%s/%s", cp.dir, B2SUMS_FILE);
        d.checked = access(sums, F_OK) == 0; /* tally_backup_fetch_req checked it */
        if (keep > 0) {
            status = keep_copies(into, keep, d.name, &removed);
            d.removed = &removed;
        }
    }
    if (o.json) {
        /* A backup written and not copied is still said, without "copy". */
        if (d.copy != NULL || d.b != NULL)
            print_json(&d);
    } else if (d.copy != NULL) {
        print_copied(&cp, d.checked);
        print_removed(into, &removed);
    }
    copies_names_free(&removed);
    return status == 0 ? CLI_OK : status;
}
