/* restore.c - `tallyd --restore BACKUP` (see restore.h). */
#include "restore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "b2sums.h"
#include "backup.h"
#include "checkpoint.h"
#include "history_db.h"
#include "journal.h"
#include "journal_fmt.h"
#include "statedir.h"
#include "tally_error.h"

/* The state files a start reads or writes, and their leftovers: what a
 * restore moves aside. */
static bool state_file(const char *name)
{
    return strncmp(name, "journal-", 8) == 0 || strncmp(name, "state-", 6) == 0 ||
           strncmp(name, "history.db", 10) == 0;
}

/* Every byte of the backup against its BLAKE2SUMS, when it has one (a
 * tallyd before it wrote none: rep->sums stays false).  Returns 0 or
 * TALLY_EIO (err). */
static int check_sums(const char *backup, restore_report_t *rep, char *err, size_t errlen)
{
    int dfd = open(backup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(err, errlen, "cannot read the backup %s: %s", backup, strerror(errno));
        return TALLY_EIO;
    }
    int rc = b2sums_check(dfd, backup, backup_holds_state, NULL, NULL, err, errlen);
    close(dfd);
    if (rc == B2SUMS_NONE) {
        err[0] = '\0';
        return 0;
    }
    rep->sums = rc == B2SUMS_OK;
    return rep->sums ? 0 : TALLY_EIO;
}

/* The backup as a start would read it.  Returns 0 or TALLY_EIO (err). */
static int check_backup(const char *backup, const backup_names_t *files, restore_report_t *rep,
                        char *err, size_t errlen)
{
    checkpoint_meta_t meta = {0};
    for (size_t i = files->n; i-- > 0;) {
        if (strncmp(files->v[i], "state-", 6) != 0)
            continue;
        char why[256];
        if (checkpoint_check_file(backup, files->v[i], &meta, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s/%s: %s", backup, files->v[i], why);
            return TALLY_EIO;
        }
        snprintf(rep->checkpoint, sizeof(rep->checkpoint), "%s", files->v[i]);
        rep->checkpoint_pos = meta.next_pos;
        break; /* the newest is the one a start loads */
    }
    journal_replay_opts_t ro = {.read_only = true};
    journal_replay_report_t jr;
    if (journal_replay(backup, &ro, &jr) != 0) {
        snprintf(err, errlen, "%s", jr.error);
        return TALLY_EIO;
    }
    if (jr.torn_tail || jr.corrupt_regions > 0 || jr.gap_positions > 0) {
        snprintf(err, errlen, "the journal of %s is damaged: %s", backup, jr.first_note);
        return TALLY_EIO;
    }
    if (jr.last_gen < meta.journal_gen) {
        snprintf(err, errlen,
                 "%s lacks the journal segment %" PRIu64 " its newest checkpoint names (the last "
                 "is %" PRIu64 ")",
                 backup, meta.journal_gen, jr.last_gen);
        return TALLY_EIO;
    }
    rep->journal_first = jr.first_start_pos;
    rep->journal_last = jr.last_pos;
    int rc = history_db_check_file(backup, &rep->history_cells, err, errlen);
    if (rc == TALLY_EINVAL) { /* none: a start makes a new one, as it did before history */
        err[0] = '\0';
        return 0;
    }
    rep->history = true;
    rep->history_damaged = rc == TALLY_EDAMAGED; /* not one that merely could not be read */
    return rc == 0 ? 0 : TALLY_EIO;
}

/* Put the files moved into aside back (a failed restore). */
static void put_back(const char *state_dir, const char *aside, const backup_names_t *moved,
                     size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char from[CONFIG_PATH_MAX + 300], to[CONFIG_PATH_MAX + 300];
        snprintf(from, sizeof(from), "%s/%s", aside, moved->v[i]);
        snprintf(to, sizeof(to), "%s/%s", state_dir, moved->v[i]);
        rename(from, to);
    }
    rmdir(aside);
}

/* Copy the backup's files into state_dir, owned like it.  Returns 0 or
 * TALLY_EIO (err); on failure the files copied so far are removed. */
static int copy_in(const char *backup, const char *state_dir, const backup_names_t *files,
                   restore_report_t *rep, char *err, size_t errlen)
{
    struct stat dst;
    bool chown_them = geteuid() == 0 && stat(state_dir, &dst) == 0;
    size_t done = 0;
    int rc = 0;
    for (; done < files->n && rc == 0; done++) {
        char from[CONFIG_PATH_MAX + 300], tmp[CONFIG_PATH_MAX + 300], to[CONFIG_PATH_MAX + 300];
        snprintf(from, sizeof(from), "%s/%s", backup, files->v[done]);
        snprintf(tmp, sizeof(tmp), "%s/%s.restoring", state_dir, files->v[done]);
        snprintf(to, sizeof(to), "%s/%s", state_dir, files->v[done]);
        int in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0) {
            snprintf(err, errlen, "cannot open %s: %s", from, strerror(errno));
            rc = TALLY_EIO;
            break;
        }
        unlink(tmp); /* from an earlier restore that stopped half-way */
        rc = backup_copy_fd(in, tmp, NULL, &rep->bytes, err, errlen);
        close(in);
        if (rc == 0 && chown_them && chown(tmp, dst.st_uid, dst.st_gid) != 0) {
            snprintf(err, errlen, "cannot give %s to the state directory's owner: %s", tmp,
                     strerror(errno));
            rc = TALLY_EIO;
        }
        if (rc == 0 && rename(tmp, to) != 0) {
            snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, to, strerror(errno));
            rc = TALLY_EIO;
        }
        if (rc != 0)
            unlink(tmp);
    }
    if (rc == 0 && journal_fmt_sync_dir(state_dir) != 0) {
        snprintf(err, errlen, "cannot sync the directory %s: %s", state_dir, strerror(errno));
        rc = TALLY_EIO;
    }
    if (rc != 0) {
        for (size_t i = 0; i < done; i++) {
            char to[CONFIG_PATH_MAX + 300];
            snprintf(to, sizeof(to), "%s/%s", state_dir, files->v[i]);
            unlink(to);
        }
        return rc;
    }
    rep->files = (unsigned)files->n;
    return 0;
}

/* Move the state files of state_dir into rep->replaced_dir.  Returns 0
 * or TALLY_EIO (err; what was moved is back). */
static int move_aside(const char *state_dir, int64_t now_ms, const backup_names_t *old,
                      restore_report_t *rep, char *err, size_t errlen)
{
    if (old->n == 0)
        return 0;
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(rep->replaced_dir, sizeof(rep->replaced_dir), "%s/replaced-%s", state_dir, stamp);
    if (mkdir(rep->replaced_dir, 0750) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", rep->replaced_dir, strerror(errno));
        rep->replaced_dir[0] = '\0';
        return TALLY_EIO;
    }
    for (size_t i = 0; i < old->n; i++) {
        char from[CONFIG_PATH_MAX + 300], to[sizeof(rep->replaced_dir) + 300];
        snprintf(from, sizeof(from), "%s/%s", state_dir, old->v[i]);
        snprintf(to, sizeof(to), "%s/%s", rep->replaced_dir, old->v[i]);
        if (rename(from, to) != 0) {
            snprintf(err, errlen, "cannot move %s into %s: %s", from, rep->replaced_dir,
                     strerror(errno));
            put_back(state_dir, rep->replaced_dir, old, i);
            rep->replaced_dir[0] = '\0';
            return TALLY_EIO;
        }
    }
    rep->replaced = (unsigned)old->n;
    return 0;
}

/* The backup's state files into *files.  Returns 0 or TALLY_EINVAL (err:
 * unreadable, or no backup). */
static int list_backup(const char *backup, backup_names_t *files, char *err, size_t errlen)
{
    int e = backup_list(backup, backup_holds_state, S_IFREG, files);
    if (e != 0) {
        snprintf(err, errlen, "cannot read the backup %s: %s", backup, strerror(e));
        return TALLY_EINVAL;
    }
    bool segment = false;
    for (size_t i = 0; i < files->n; i++)
        segment |= strncmp(files->v[i], "journal-", 8) == 0;
    if (!segment) {
        snprintf(err, errlen,
                 "%s is not a backup of tallyd's: it holds no journal segment "
                 "(journal-*.tj); backups are the backup-* directories SIGUSR1 writes",
                 backup);
        backup_names_free(files);
        return TALLY_EINVAL;
    }
    return 0;
}

/* restore_check, the backup's files listed into *files (freed by the
 * caller, also on failure; empty when it is no backup). */
static int check_listed(const char *backup, backup_names_t *files, restore_report_t *rep, char *err,
                        size_t errlen)
{
    memset(rep, 0, sizeof(*rep));
    err[0] = '\0';
    *files = (backup_names_t){0};
    int rc = list_backup(backup, files, err, errlen);
    if (rc != 0)
        return rc;
    rep->backup_files = (unsigned)files->n;
    for (size_t i = 0; i < files->n; i++) {
        char path[CONFIG_PATH_MAX + 300];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", backup, files->v[i]);
        if (stat(path, &st) == 0)
            rep->backup_bytes += (uint64_t)st.st_size;
    }
    rc = check_sums(backup, rep, err, errlen);
    if (rc == 0)
        rc = check_backup(backup, files, rep, err, errlen);
    return rc;
}

int restore_check(const char *backup, restore_report_t *rep, char *err, size_t errlen)
{
    backup_names_t files;
    int rc = check_listed(backup, &files, rep, err, errlen);
    backup_names_free(&files);
    return rc;
}

int restore_run(const char *backup, const char *state_dir, int64_t now_ms, bool accept_loss,
                restore_report_t *rep, char *err, size_t errlen)
{
    backup_names_t files, old = {0};
    int rc = check_listed(backup, &files, rep, err, errlen);
    if (rc == TALLY_EIO && rep->history_damaged && accept_loss)
        rc = 0; /* err keeps the sentence, for the report */
    if (rc != 0) {
        backup_names_free(&files);
        return rc;
    }
    int e;
    statedir_t sd = {.lock_fd = -1};
    if (rc == 0)
        rc = statedir_lock(&sd, state_dir, err, errlen);
    if (rc == 0 && (e = backup_list(state_dir, state_file, S_IFREG, &old)) != 0) {
        snprintf(err, errlen, "cannot read the state directory %s: %s", state_dir, strerror(e));
        rc = TALLY_EIO;
    }
    if (rc == 0)
        rc = move_aside(state_dir, now_ms, &old, rep, err, errlen);
    if (rc == 0 && (rc = copy_in(backup, state_dir, &files, rep, err, errlen)) != 0 &&
        rep->replaced_dir[0] != '\0') {
        put_back(state_dir, rep->replaced_dir, &old, old.n);
        rep->replaced_dir[0] = '\0';
        rep->replaced = 0;
    }
    if (rc == 0)
        journal_fmt_sync_dir(state_dir);
    statedir_unlock(&sd);
    backup_names_free(&files);
    backup_names_free(&old);
    return rc;
}
