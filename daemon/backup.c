/* backup.c - a backup of the state directory while tallyd runs (see
 * backup.h for the steps and why they give a consistent copy). */
#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomic_file.h"
#include "b2sums.h"
#include "checkpoint.h"
#include "history_db.h"
#include "journal.h"
#include "journal_fmt.h"
#include "proto.h"
#include "statedir.h"
#include "tally_error.h"

#define LINK_ATTEMPTS 5    /* listings retried when a file went meanwhile */
#define DB_PAGES_STEP 1024 /* pages per sqlite3_backup_step, between checks */

static void set_err(backup_t *b, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(backup_t *b, int rc, const char *fmt, ...)
{
    if (b->rc != 0)
        return; /* the first cause is the one worth reading */
    b->rc = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, sizeof(b->err), fmt, ap);
    va_end(ap);
}

static bool cancelled(backup_t *b)
{
    if (!b->cancel)
        return false;
    set_err(b, TALLY_ECLOSED, "tallyd is stopping");
    return true;
}

/* The gen of a name "<prefix><16 lower-case hex><suffix>" exactly. */
static bool parse_gen(const char *name, const char *prefix, const char *suffix, uint64_t *gen)
{
    size_t lp = strlen(prefix), ls = strlen(suffix);
    if (strlen(name) != lp + 16 + ls || strncmp(name, prefix, lp) != 0 ||
        strcmp(name + lp + 16, suffix) != 0)
        return false;
    uint64_t g = 0;
    for (size_t i = lp; i < lp + 16; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        g = g << 4 | (uint64_t)d;
    }
    *gen = g;
    return true;
}

bool backup_holds_state(const char *name)
{
    uint64_t gen;
    return parse_gen(name, "journal-", ".tj", &gen) || parse_gen(name, "state-", ".ckp", &gen) ||
           strcmp(name, HISTORY_DB_FILE) == 0 || strcmp(name, HISTORY_DB_FILE "-wal") == 0;
}

bool backup_holds(const char *name)
{
    return backup_holds_state(name) || strcmp(name, B2SUMS_FILE) == 0;
}

/* Remove a directory that holds only files (a backup, or a partial one).
 * Returns 0 or an errno value. */
static int remove_flat_dir(const char *path)
{
    if (atomic_dir_remove_flat(AT_FDCWD, path) == 0 || errno == ENOENT)
        return 0;
    return errno;
}

static void close_copies(backup_t *b)
{
    for (size_t i = 0; i < b->ncopies; i++)
        if (b->copies[i].fd >= 0)
            close(b->copies[i].fd);
    b->ncopies = 0;
}

static bool is_partial(const char *name)
{
    return strncmp(name, ".partial-", 9) == 0;
}

static bool is_checkpoint(const char *name)
{
    uint64_t gen;
    return parse_gen(name, "state-", ".ckp", &gen);
}

/* ---- step 1: the backup directory, and history.db's read transaction --- */

/* The least number after those of the backups of second base in root
 * (the bare name is 1, base-N is N); 1 when there are none. */
static int next_in_second(const char *root, const char *base)
{
    size_t blen = strlen(base);
    int next = 1;
    DIR *d = opendir(root);
    if (d == NULL)
        return next;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, base, blen) != 0)
            continue;
        const char *rest = de->d_name + blen;
        int n = rest[0] == '\0' ? 1 : rest[0] == '-' ? atoi(rest + 1) : 0;
        if (n >= next && n < 1000)
            next = n + 1;
    }
    closedir(d);
    return next;
}

/* A name for this backup, not taken yet in root, and not one this
 * tallyd gave before: a backup removed past [backup] keep within the
 * second it was written leaves its name free, and a copy of it elsewhere
 * (tally backup --copy-to) must not meet another backup of that name.
 * It also comes after every backup of the same second still in root:
 * after a restart the bare name, freed by [backup] keep, sorted before
 * the -2 and -3 kept, and keep removed the new backup at once. */
static void choose_name(backup_t *b, int64_t now_ms)
{
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof(base), "backup-%Y%m%dT%H%M%SZ", &tm);
    size_t blen = strlen(base);
    int i = 1; /* the bare name; then -2, -3, ... */
    if (strncmp(b->last_name, base, blen) == 0)
        i = b->last_name[blen] == '-' ? atoi(b->last_name + blen + 1) + 1 : 2;
    int after = next_in_second(b->root, base);
    if (i < after)
        i = after;
    for (; i < 1000; i++) {
        if (i == 1)
            snprintf(b->name, sizeof(b->name), "%s", base);
        else
            snprintf(b->name, sizeof(b->name), "%s-%d", base, i);
        char path[CONFIG_PATH_MAX + BACKUP_NAME_MAX];
        snprintf(path, sizeof(path), "%s/%s", b->root, b->name);
        if (access(path, F_OK) != 0)
            break;
    }
    snprintf(b->last_name, sizeof(b->last_name), "%s", b->name);
}

static void open_history(backup_t *b, const char *state_dir)
{
    char path[CONFIG_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/%s", state_dir, HISTORY_DB_FILE);
    int rc = sqlite3_open_v2(path, &b->src, SQLITE_OPEN_READWRITE, NULL);
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(b->src, 10000);
        rc = sqlite3_exec(b->src, "BEGIN", NULL, NULL, NULL);
    }
    /* The first read begins the transaction's view of the database. */
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(b->src, "SELECT value FROM meta WHERE key = 'journal_pos'", -1, &st,
                                NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            sqlite3_int64 v = sqlite3_column_int64(st, 0);
            b->db_pos = v > 0 ? (uint64_t)v : 0;
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            b->db_pos = 0;
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        set_err(b, TALLY_EIO, "reading %s: %s", path,
                b->src ? sqlite3_errmsg(b->src) : sqlite3_errstr(rc));
    sqlite3_finalize(st);
}

static void step1(backup_t *b)
{
    int e = statedir_make_dirs(b->root);
    if (e != 0) {
        set_err(b, TALLY_EIO, "cannot create the backup directory %s: %s", b->root, strerror(e));
        return;
    }
    /* What a tallyd that died during a backup left. */
    backup_names_t left;
    if (backup_list(b->root, is_partial, S_IFDIR, &left) == 0) {
        for (size_t i = 0; i < left.n; i++) {
            char path[CONFIG_PATH_MAX + BACKUP_NAME_MAX + 16];
            snprintf(path, sizeof(path), "%s/%s", b->root, left.v[i]);
            remove_flat_dir(path);
        }
        backup_names_free(&left);
    }
    choose_name(b, b->wall_ms);
    snprintf(b->partial, sizeof(b->partial), "%s/.partial-%s", b->root, b->name);
    if (mkdir(b->partial, 0750) != 0) {
        set_err(b, TALLY_EIO, "cannot create %s: %s", b->partial, strerror(errno));
        b->partial[0] = '\0';
        return;
    }
    open_history(b, b->c.state_dir);
}

/* ---- step 2 (the loop): link what never changes, open the rest ---------- */

static int add_copy(backup_t *b, const char *name, int dfd)
{
    if (b->ncopies == b->copies_cap) {
        size_t ncap = b->copies_cap ? b->copies_cap * 2 : 8;
        backup_file_t *nv = realloc(b->copies, ncap * sizeof(*nv));
        if (nv == NULL)
            return ENOMEM;
        b->copies = nv;
        b->copies_cap = ncap;
    }
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    backup_file_t *f = &b->copies[b->ncopies++];
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->fd = fd;
    return 0;
}

/* Undo a listing's links and opened files before trying again. */
static void undo_listing(backup_t *b, int pfd)
{
    DIR *d = fdopendir(dup(pfd));
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            if (de->d_name[0] != '.')
                unlinkat(pfd, de->d_name, 0);
        closedir(d);
    }
    close_copies(b);
    b->linked = b->checkpoints = b->segments = 0;
}

/* One listing of the state directory: every checkpoint and segment linked
 * or opened.  Returns 0, ENOENT (a file went between the listing and its
 * link: compaction; list again) or another errno value (err set). */
static int link_once(backup_t *b, int sfd, int pfd)
{
    DIR *d = fdopendir(dup(sfd));
    if (d == NULL)
        return errno;
    uint64_t newest = 0;
    bool any_segment = false;
    struct dirent *de;
    /* The newest segment is the one that may still be appended to. */
    while ((de = readdir(d)) != NULL) {
        uint64_t gen;
        if (parse_gen(de->d_name, "journal-", ".tj", &gen) && (!any_segment || gen > newest)) {
            newest = gen;
            any_segment = true;
        }
    }
    rewinddir(d);
    int err = 0;
    while (err == 0 && (de = readdir(d)) != NULL) {
        uint64_t gen;
        bool seg = parse_gen(de->d_name, "journal-", ".tj", &gen);
        bool ckpt = !seg && parse_gen(de->d_name, "state-", ".ckp", &gen);
        /* A segment begun since the first pass is being appended to and
         * must not be linked; it holds nothing the backup needs (step 1
         * came before the first pass), nor does a checkpoint naming it. */
        if ((!seg && !ckpt) || gen > newest)
            continue;
        b->segments += seg;
        b->checkpoints += ckpt;
        if (seg && gen == newest) {
            err = add_copy(b, de->d_name, sfd);
            continue;
        }
        if (linkat(sfd, de->d_name, pfd, de->d_name, 0) == 0) {
            b->linked++;
            continue;
        }
        err = errno;
        /* Another file system, or one without hard links: copy it. */
        if (err == EXDEV || err == EPERM || err == ENOTSUP || err == EMLINK || err == EACCES)
            err = add_copy(b, de->d_name, sfd);
    }
    closedir(d);
    if (err == 0 && !any_segment)
        err = ENODATA;
    return err;
}

static void step2(backup_t *b)
{
    int sfd = open(b->c.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int pfd = open(b->partial, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = sfd < 0 || pfd < 0 ? errno : EAGAIN;
    for (int i = 0; i < LINK_ATTEMPTS && sfd >= 0 && pfd >= 0; i++) {
        if ((err = link_once(b, sfd, pfd)) != ENOENT)
            break;
        undo_listing(b, pfd);
    }
    if (err == ENODATA)
        set_err(b, TALLY_EIO, "the state directory %s holds no journal segment", b->c.state_dir);
    else if (err != 0)
        set_err(b, TALLY_EIO, "linking the files of %s into %s: %s", b->c.state_dir, b->partial,
                strerror(err));
    if (sfd >= 0)
        close(sfd);
    if (pfd >= 0)
        close(pfd);
}

/* ---- step 3: copies, history.db, checks, the rename -------------------- */

static void copy_file(backup_t *b, const backup_file_t *f)
{
    char path[sizeof(b->partial) + 40], err[sizeof(b->err)];
    snprintf(path, sizeof(path), "%s/%s", b->partial, f->name);
    int rc = backup_copy_fd(f->fd, path, &b->cancel, &b->bytes_copied, err, sizeof(err));
    if (rc != 0)
        set_err(b, rc, "%s", err);
}

static void copy_history(backup_t *b)
{
    char path[sizeof(b->partial) + 16];
    snprintf(path, sizeof(path), "%s/%s", b->partial, HISTORY_DB_FILE);
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    sqlite3_backup *bk = rc == SQLITE_OK ? sqlite3_backup_init(dst, "main", b->src, "main") : NULL;
    if (bk == NULL) {
        set_err(b, TALLY_EIO, "copying history.db to %s: %s", path,
                dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        sqlite3_close(dst);
        return;
    }
    /* The source stays in its read transaction throughout: every step reads
     * the same view of it, whatever tallyd's writer commits meanwhile. */
    do {
        rc = sqlite3_backup_step(bk, DB_PAGES_STEP);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            sqlite3_sleep(10);
    } while ((rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && !cancelled(b));
    sqlite3_backup_finish(bk);
    if (rc != SQLITE_DONE && b->rc == 0)
        set_err(b, TALLY_EIO, "copying history.db to %s: %s", path, sqlite3_errmsg(dst));
    if (sqlite3_close(dst) != SQLITE_OK && b->rc == 0)
        set_err(b, TALLY_EIO, "closing %s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0)
        b->bytes_copied += (uint64_t)st.st_size;
    if (b->rc == 0 && (fd < 0 || fsync(fd) != 0))
        set_err(b, TALLY_EIO, "syncing %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* The copy of history.db as a start reads it (PRAGMA quick_check): pages
 * are copied as they are, so a database damaged on tallyd's own disk
 * gives a damaged copy, which the digests written next would vouch for.
 * Better a failed backup (counted, logged: an alert) than one that
 * restores without its history. */
static void check_history(backup_t *b)
{
    uint64_t cells;
    char err[sizeof(b->err) - 160];
    int rc = history_db_check_file(b->partial, &cells, err, sizeof(err));
    if (rc == TALLY_EDAMAGED)
        set_err(b, TALLY_EIO,
                "the history of %s is damaged: %s (tallyd's own start would set it aside and "
                "rebuild the history from the journal alone)",
                b->c.state_dir, err);
    else if (rc != 0)
        set_err(b, TALLY_EIO,
                "the copy of the history of %s could not be read back: %s (nothing says it "
                "is damaged; the next backup tries again)",
                b->c.state_dir, err);
}

static void end_history_read(backup_t *b)
{
    if (b->src == NULL)
        return;
    sqlite3_exec(b->src, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(b->src);
    b->src = NULL;
}

/* The newest checkpoint of the copy, read whole for its CRC. */
static void check_checkpoint(backup_t *b)
{
    backup_names_t ns;
    int e = backup_list(b->partial, is_checkpoint, S_IFREG, &ns);
    if (e != 0) {
        set_err(b, TALLY_EIO, "cannot read %s: %s", b->partial, strerror(e));
        return;
    }
    if (ns.n > 0) {
        const char *newest = ns.v[ns.n - 1]; /* 16 hex digits sort as numbers */
        checkpoint_meta_t meta;
        char why[256];
        if (checkpoint_check_file(b->partial, newest, &meta, why, sizeof(why)) != 0) {
            set_err(b, TALLY_EIO, "%s/%s: %s", b->c.state_dir, newest, why);
        } else {
            b->ckpt_pos = meta.next_pos;
            b->ckpt_gen = meta.journal_gen;
        }
    }
    backup_names_free(&ns);
}

/* The journal as a start reads it: every record's CRC, no position
 * missing, and the segment copied mid-write cut after its last whole
 * record (journal_replay does that to the last segment). */
static void check_journal(backup_t *b)
{
    journal_replay_opts_t ro = {.on_record = NULL};
    journal_replay_report_t rep;
    int rc = journal_replay(b->partial, &ro, &rep);
    if (rc != 0) {
        set_err(b, TALLY_EIO, "checking the journal copied: %s", rep.error);
        return;
    }
    if (rep.gap_positions > 0 || rep.corrupt_regions > 0) {
        set_err(b, TALLY_EIO,
                "the journal of %s is damaged: %s (tallyd's own start would say "
                "so too)",
                b->c.state_dir, rep.first_note);
        return;
    }
    b->journal_last = rep.last_pos;
    if (b->ckpt_pos > 0 && rep.last_gen < b->ckpt_gen) {
        set_err(b, TALLY_EIO,
                "the newest checkpoint names journal segment %" PRIu64
                ", which the backup lacks (the last is %" PRIu64 ")",
                b->ckpt_gen, rep.last_gen);
        return;
    }
    /* The tallies start from the checkpoint, or from the first record
     * without one; the history from the record after its position. */
    uint64_t first = rep.first_start_pos;
    uint64_t need = b->ckpt_pos > 0 ? b->ckpt_pos : 1;
    if (b->db_pos + 1 < need)
        need = b->db_pos + 1;
    if (first > need)
        set_err(b, TALLY_EIO,
                "the journal copied begins at position %" PRIu64 ", after %" PRIu64
                ", which history.db or the checkpoint needs",
                first, need);
    else if (rep.next_pos <= b->db_pos)
        set_err(b, TALLY_EIO,
                "the journal copied ends before position %" PRIu64 ", which history.db holds",
                b->db_pos);
}

/* BLAKE2SUMS: the digest of every file of the copy, once it is checked
 * and complete (the segment copied mid-write already cut), so that a
 * copy of the backup anywhere can be checked byte for byte. */
static void write_sums(backup_t *b)
{
    backup_names_t ns;
    int e = backup_list(b->partial, backup_holds_state, S_IFREG, &ns);
    if (e != 0) {
        set_err(b, TALLY_EIO, "cannot read %s: %s", b->partial, strerror(e));
        return;
    }
    int pfd = open(b->partial, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char err[sizeof(b->err)];
    if (pfd < 0)
        set_err(b, TALLY_EIO, "cannot open %s: %s", b->partial, strerror(errno));
    else if (b2sums_write(pfd, b->partial, ns.v, ns.n, &b->cancel, NULL, err, sizeof(err)) != 0 &&
             !cancelled(b))
        set_err(b, TALLY_EIO, "%s", err);
    if (pfd >= 0)
        close(pfd);
    backup_names_free(&ns);
}

static void sync_path(backup_t *b, const char *dir)
{
    if (b->rc == 0 && journal_fmt_sync_dir(dir) != 0)
        set_err(b, TALLY_EIO, "syncing the directory %s: %s", dir, strerror(errno));
}

static bool is_backup_name(const char *name)
{
    return proto_backup_name_valid(name, strlen(name));
}

/* Older first (backup_list sorts bytewise: -10 before -2). */
static int age_cmp(const void *a, const void *b)
{
    return proto_backup_name_cmp(*(char *const *)a, *(char *const *)b);
}

/* Remove the oldest backups beyond keep. */
static void prune(backup_t *b)
{
    backup_names_t ns;
    if (backup_list(b->root, is_backup_name, S_IFDIR, &ns) != 0)
        return; /* the backup stands; the next one prunes */
    if (ns.n > 1)
        qsort(ns.v, ns.n, sizeof(*ns.v), age_cmp);
    for (size_t i = 0; i + (size_t)b->keep < ns.n; i++) {
        char path[CONFIG_PATH_MAX + BACKUP_NAME_MAX + 16];
        snprintf(path, sizeof(path), "%s/%s", b->root, ns.v[i]);
        if (remove_flat_dir(path) == 0)
            b->removed++;
    }
    backup_names_free(&ns);
}

/* How many files the backup holds, and their size. */
static void count_files(backup_t *b, const char *dir)
{
    backup_names_t ns;
    b->files = 0;
    b->bytes = 0;
    if (backup_list(dir, backup_holds, S_IFREG, &ns) != 0)
        return;
    for (size_t i = 0; i < ns.n; i++) {
        char path[CONFIG_PATH_MAX + BACKUP_NAME_MAX + 48];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, ns.v[i]);
        if (stat(path, &st) == 0) {
            b->files++;
            b->bytes += (uint64_t)st.st_size;
        }
    }
    backup_names_free(&ns);
}

/* The backup's path as an operator gives it to --restore: absolute where
 * the directory can be resolved. */
static void resolve_final(backup_t *b, const char *final)
{
    char *abs = realpath(final, NULL);
    snprintf(b->final, sizeof(b->final), "%s", abs != NULL ? abs : final);
    free(abs);
}

static void step3(backup_t *b)
{
    for (size_t i = 0; i < b->ncopies && b->rc == 0; i++)
        copy_file(b, &b->copies[i]);
    close_copies(b);
    if (b->rc == 0)
        copy_history(b);
    end_history_read(b);
    if (b->rc == 0 && !cancelled(b))
        check_history(b);
    if (b->rc == 0)
        check_checkpoint(b);
    if (b->rc == 0 && !cancelled(b))
        check_journal(b);
    if (b->rc == 0 && !cancelled(b))
        write_sums(b);
    sync_path(b, b->partial);
    char final[CONFIG_PATH_MAX + BACKUP_NAME_MAX + 2];
    snprintf(final, sizeof(final), "%s/%s", b->root, b->name);
    if (b->rc == 0 && rename(b->partial, final) != 0)
        set_err(b, TALLY_EIO, "renaming %s to %s: %s", b->partial, final, strerror(errno));
    sync_path(b, b->root);
    if (b->rc == 0) {
        count_files(b, final);
        resolve_final(b, final);
        prune(b);
    } else if (b->partial[0] != '\0')
        remove_flat_dir(b->partial);
}

/* ---- the work and its ends ---------------------------------------------- */

static void on_work(uv_work_t *w)
{
    backup_t *b = w->data;
    if (b->step == 1)
        step1(b);
    else
        step3(b);
}

static void maybe_closed(backup_t *b)
{
    if (b->closing && !b->running && b->open_handles == 0 && b->close_cb != NULL) {
        void (*cb)(backup_t *) = b->close_cb;
        free(b->copies);
        b->copies = NULL;
        b->copies_cap = 0;
        b->close_cb = NULL;
        cb(b);
    }
}

static void tell_end(backup_t *b, uint64_t serial, int rc, const char *err, int64_t took)
{
    if (b->c.on_end == NULL)
        return;
    backup_end_t e = {.serial = serial, .rc = rc, .err = err, .ms = (uint64_t)took};
    if (rc == 0) {
        e.path = b->final;
        e.files = b->files;
        e.bytes = b->bytes;
    }
    b->c.on_end(b->c.end_ctx, &e);
}

static void finish(backup_t *b)
{
    int64_t took = clock_mono_ms() - b->started_ms;
    if (b->rc == 0) {
        b->done++;
        /* The time in its name, as the next start reads it back. */
        b->last_ok_ms = b->wall_ms;
        log_notice(
            b->c.log,
            "backup written to %s/%s (%s): %u checkpoint%s and %u journal segment%s to "
            "position %" PRIu64 ", history.db at position %" PRIu64 "; %u files linked, %" PRIu64
            " bytes copied, in %" PRId64 " ms (%" PRIu64 " us of them on the loop)%s",
            b->root, b->name, b->why, b->checkpoints, b->checkpoints == 1 ? "" : "s", b->segments,
            b->segments == 1 ? "" : "s", b->journal_last, b->db_pos, b->linked, b->bytes_copied,
            took, b->loop_ns / 1000, b->removed > 0 ? "; older backups removed" : "");
    } else if (b->rc == TALLY_ECLOSED) {
        log_notice(b->c.log, "backup (%s) abandoned: tallyd is stopping", b->why);
    } else {
        b->failed++;
        log_error(b->c.log, "backup (%s) failed: %s; nothing was changed in the state directory",
                  b->why, b->err);
    }
    if (b->scheduled && b->rc != 0 && b->rc != TALLY_ECLOSED)
        b->tried_ms = clock_now_ms(b->c.clock);
    b->scheduled = false;
    b->running = false;
    tell_end(b, b->begun, b->rc, b->err, took);
    if (b->again) {
        /* Requests came while this one ran: the next holds what they saw. */
        b->again = false;
        uint64_t serial = b->begun + 1;
        int rc = b->closing ? TALLY_ECLOSED : backup_now(b, "BACKUP_REQ");
        if (rc != 0)
            tell_end(b, serial, rc, rc == TALLY_ECLOSED ? "tallyd is stopping" : b->err, 0);
    }
    backup_schedule(b, 0);
    maybe_closed(b);
}

static void after_work(uv_work_t *w, int status)
{
    backup_t *b = w->data;
    if (status != 0)
        set_err(b, TALLY_ESYS, "the thread pool: %s", uv_strerror(status));
    if (b->step == 1) {
        if (b->rc == 0 && !cancelled(b)) {
            uint64_t t0 = uv_hrtime();
            step2(b);
            b->loop_ns = uv_hrtime() - t0;
        }
        /* Everything the copy needs is linked or open now. */
        b->hold = UINT64_MAX;
        b->step = 3;
        int rc = uv_queue_work(b->c.loop, &b->work, on_work, after_work);
        if (rc == 0)
            return;
        set_err(b, TALLY_ESYS, "the thread pool: %s", uv_strerror(rc));
        end_history_read(b);
        close_copies(b);
        if (b->partial[0] != '\0')
            remove_flat_dir(b->partial);
    }
    finish(b);
}

/* The backup directory of the settings.  Returns false when the path
 * does not fit. */
static bool root_of(char *out, size_t cap, const char *state_dir, const char *dir)
{
    int n = dir[0] == '/'
                ? snprintf(out, cap, "%s", dir)
                : snprintf(out, cap, "%s/%s", state_dir, dir[0] ? dir : BACKUP_DIR_DEFAULT);
    return n >= 0 && (size_t)n < cap;
}

int backup_root(const backup_t *b, char *out, size_t cap)
{
    return root_of(out, cap, b->c.state_dir, b->c.settings.dir) ? 0 : TALLY_EINVAL;
}

int backup_now(backup_t *b, const char *why)
{
    if (b->closing)
        return TALLY_ECLOSED;
    if (b->running) {
        log_warning(b->c.log, "backup (%s) not begun: the one begun %" PRId64 " s ago is under way",
                    why, (clock_mono_ms() - b->started_ms) / 1000);
        return TALLY_EBUSY;
    }
    b->rc = 0;
    b->err[0] = '\0';
    if (!root_of(b->root, sizeof(b->root), b->c.state_dir, b->c.settings.dir)) {
        set_err(b, TALLY_EINVAL, "the backup directory's path is longer than %zu bytes",
                sizeof(b->root) - 1);
        log_error(b->c.log, "backup (%s) failed: %s", why, b->err);
        b->failed++;
        return TALLY_EINVAL;
    }
    snprintf(b->why, sizeof(b->why), "%s", why);
    b->name[0] = b->partial[0] = b->final[0] = '\0';
    b->files = 0;
    b->bytes = 0;
    b->linked = b->checkpoints = b->segments = b->removed = 0;
    b->bytes_copied = b->ckpt_pos = b->ckpt_gen = b->journal_last = b->db_pos = b->loop_ns = 0;
    b->keep = b->c.settings.keep;
    b->started_ms = clock_mono_ms();
    b->wall_ms = clock_now_ms(b->c.clock); /* the name's time */
    b->step = 1;
    /* No segment the history database may still need goes while the
     * backup's view of it is being taken (backup.h, step 1). */
    b->hold = b->c.history_hold ? b->c.history_hold(b->c.ctx) : UINT64_MAX;
    int rc = uv_queue_work(b->c.loop, &b->work, on_work, after_work);
    if (rc != 0) {
        b->hold = UINT64_MAX;
        set_err(b, TALLY_ESYS, "the thread pool: %s", uv_strerror(rc));
        log_error(b->c.log, "backup (%s) failed: %s", why, b->err);
        b->failed++;
        return TALLY_ESYS;
    }
    b->running = true;
    b->begun++;
    return 0;
}

int backup_ask(backup_t *b, uint64_t *serial)
{
    if (b->closing)
        return TALLY_ECLOSED;
    if (b->running) {
        b->again = true;
        *serial = b->begun + 1;
        return 0;
    }
    int rc = backup_now(b, "BACKUP_REQ");
    if (rc == 0)
        *serial = b->begun;
    return rc;
}

int backup_init(backup_t *b, const backup_config_t *c)
{
    memset(b, 0, sizeof(*b));
    b->c = *c;
    b->hold = UINT64_MAX;
    b->work.data = b;
    uv_timer_init(c->loop, &b->timer);
    b->timer.data = b;
    b->open_handles = 1;
    backup_schedule_start(b);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    backup_t *b = h->data;
    b->open_handles--;
    maybe_closed(b);
}

void backup_close(backup_t *b, void (*cb)(backup_t *b))
{
    if (b->closing)
        return;
    b->closing = true;
    b->close_cb = cb;
    b->cancel = 1;
    uv_close((uv_handle_t *)&b->timer, on_timer_closed);
}
