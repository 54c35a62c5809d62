/* Unit tests of backup.c: a state directory made of a real journal (two
 * segments, the second still open), a checkpoint file and history.db, a
 * real libuv loop and thread pool.  What a backup links, copies, cuts,
 * checks and refuses, its hold on the journal, keep, leftovers, a close
 * while it runs, and the schedule of [backup] interval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b2sums.h"
#include "backup.h"
#include "checkpoint.h"
#include "crc32c.h"
#include "journal.h"
#include "journal_test_util.h"
#include "restore.h"
#include "statedir.h"

typedef struct bfx {
    fx_t j; /* the journal's fixture: dir, loop, journal */
    backup_t b;
    logger_t log;
    FILE *logf;
    tclock_t clock;
    uint64_t history_hold;
    bool closed;
    /* What on_end told, in order. */
    struct {
        uint64_t serial;
        int rc;
        char path[1024];
        char err[800];
        uint32_t files;
        uint64_t bytes;
    } ends[8];
    size_t nends;
} bfx_t;

static int64_t fixed_now(void *ctx)
{
    (void)ctx;
    return 1796590184000LL; /* 2026-12-06 20:49:44 UTC */
}

static uint64_t hold_cb(void *ctx)
{
    return ((bfx_t *)ctx)->history_hold;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int b_setup(void **state)
{
    bfx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->j.dir, sizeof(f->j.dir), "/tmp/tally-backup-XXXXXX");
    assert_non_null(mkdtemp(f->j.dir));
    f->j.loop_thread = pthread_self();
    assert_int_equal(uv_loop_init(&f->j.loop), 0);
    assert_int_equal(uv_sem_init(&f->j.gate_entered, 0), 0);
    assert_int_equal(uv_sem_init(&f->j.gate_release, 0), 0);
    log_init(&f->log, LOG_LEVEL_INFO);
    f->logf = tmpfile();
    assert_non_null(f->logf);
    f->log.out = f->logf;
    f->log.journal = false;
    f->clock = (tclock_t){.now_ms = fixed_now};
    *state = f;
    return 0;
}

static void on_closed(backup_t *b)
{
    bfx_t *f = (bfx_t *)(void *)((char *)b - offsetof(bfx_t, b));
    f->closed = true;
}

static bool p_backup_closed(const fx_t *j, uint64_t arg)
{
    (void)arg;
    return ((const bfx_t *)(const void *)j)->closed;
}

static int b_teardown(void **state)
{
    bfx_t *f = *state;
    if (!f->closed && f->b.c.loop != NULL) {
        backup_close(&f->b, on_closed);
        run_until(&f->j, p_backup_closed, 0, 10000);
    }
    if (f->j.j.open)
        close_journal(&f->j, 0);
    nftw(f->j.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    uv_run(&f->j.loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&f->j.loop), 0);
    uv_sem_destroy(&f->j.gate_entered);
    uv_sem_destroy(&f->j.gate_release);
    fclose(f->logf);
    free(f);
    return 0;
}

/* Everything logged so far (static storage). */
static const char *logged(bfx_t *f)
{
    static char buf[16384];
    fflush(f->logf);
    long n = ftell(f->logf);
    rewind(f->logf);
    size_t got =
        fread(buf, 1, n > 0 && (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1, f->logf);
    buf[got] = '\0';
    fseek(f->logf, 0, SEEK_END);
    return buf;
}

static void path_in(bfx_t *f, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", f->j.dir, name);
}

/* A checkpoint file as checkpoint.h lays it out: a header naming gen and
 * next_pos, no section payloads (the backup reads only the header and the
 * CRC), and the CRC-32C. */
static void write_checkpoint(bfx_t *f, uint64_t gen, uint64_t next_pos)
{
    uint8_t p[68] = "TALLYCKP";
    uint64_t fields[] = {68, 0, gen, next_pos, 0};
    p[8] = 2;   /* version */
    p[12] = 64; /* header size */
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 8; k++)
            p[16 + 8 * i + k] = (uint8_t)(fields[i] >> (8 * k));
    p[56] = 4; /* sections */
    uint32_t crc = crc32c(0, p, 64);
    for (int k = 0; k < 4; k++)
        p[64 + k] = (uint8_t)(crc >> (8 * k));
    char name[CHECKPOINT_NAME_MAX], path[256];
    checkpoint_file_name(name, gen);
    path_in(f, name, path, sizeof(path));
    FILE *o = fopen(path, "wb");
    assert_non_null(o);
    assert_int_equal(fwrite(p, 1, sizeof(p), o), sizeof(p));
    fclose(o);
}

static void write_history(bfx_t *f, int64_t pos)
{
    char path[256], sql[256];
    path_in(f, "history.db", path, sizeof(path));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, "
             "value) WITHOUT ROWID; INSERT OR REPLACE INTO meta VALUES ('journal_pos', %lld);",
             (long long)pos);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Segment 1 with records 1..10, segment 2 with 11..15 and still open, a
 * checkpoint of segment 2 (next position 11), history.db at 12. */
static void make_state(bfx_t *f)
{
    journal_opts_t o = opts_for(&f->j, JOURNAL_SYNC_NEVER);
    assert_int_equal(jopen(&f->j, &o, 1, 1), 0);
    append_n(&f->j, 1, 10, 0);
    wait_durable(&f->j, 10);
    uint64_t start = 0;
    assert_int_equal(journal_rotate(&f->j.j, 2, &start), 0);
    assert_int_equal(start, 11);
    append_n(&f->j, 11, 5, 0);
    wait_durable(&f->j, 15);
    wait_writer_idle(&f->j);
    write_checkpoint(f, 2, 11);
    write_history(f, 12);
}

static void on_end(void *ctx, const backup_end_t *e)
{
    bfx_t *f = ctx;
    assert_true(f->nends < sizeof(f->ends) / sizeof(f->ends[0]));
    f->ends[f->nends].serial = e->serial;
    f->ends[f->nends].rc = e->rc;
    snprintf(f->ends[f->nends].path, sizeof(f->ends[0].path), "%s", e->path ? e->path : "");
    snprintf(f->ends[f->nends].err, sizeof(f->ends[0].err), "%s", e->err ? e->err : "");
    f->ends[f->nends].files = e->files;
    f->ends[f->nends].bytes = e->bytes;
    f->nends++;
}

/* Start the backup part on dir, keeping keep, every interval_ms (0:
 * only when asked). */
static void start_every(bfx_t *f, const char *dir, int64_t keep, int64_t interval_ms)
{
    backup_config_t c = {.loop = &f->j.loop,
                         .state_dir = f->j.dir,
                         .log = &f->log,
                         .clock = &f->clock,
                         .history_hold = hold_cb,
                         .ctx = f,
                         .settings = {.keep = keep, .interval_ms = interval_ms},
                         .on_end = on_end,
                         .end_ctx = f};
    snprintf(c.settings.dir, sizeof(c.settings.dir), "%s", dir);
    assert_int_equal(backup_init(&f->b, &c), 0);
}

static void start_backup(bfx_t *f, const char *dir, int64_t keep)
{
    start_every(f, dir, keep, 0);
}

static bool p_idle(const fx_t *j, uint64_t arg)
{
    (void)arg;
    return !((const bfx_t *)(const void *)j)->b.running;
}

static bool p_ends(const fx_t *j, uint64_t n)
{
    const bfx_t *f = (const bfx_t *)(const void *)j;
    return f->nends >= n && !f->b.running;
}

/* Ask for a backup and run the loop until it ends. */
static void run_backup(bfx_t *f)
{
    assert_int_equal(backup_now(&f->b, "test"), 0);
    assert_true(run_until(&f->j, p_idle, 0, 20000));
}

static size_t count_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d != NULL)
        closedir(d);
    return n;
}

static void backup_path(bfx_t *f, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/backups/backup-20261206T204944Z/%s", f->j.dir, name);
}

/* The backup's BLAKE2SUMS: its state files, each with its digest. */
static void assert_sums(bfx_t *f, unsigned files)
{
    char dir[512], err[1024];
    backup_path(f, "", dir, sizeof(dir));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    b2sums_count_t c;
    int rc = b2sums_check(dfd, dir, backup_holds_state, NULL, &c, err, sizeof(err));
    close(dfd);
    if (rc != B2SUMS_OK)
        fail_msg("BLAKE2SUMS of %s: %d: %s", dir, rc, err);
    assert_int_equal(c.files, files);
}

static ino_t inode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_ino;
}

/* Checkpoint and sealed segment linked, the open segment and history.db
 * copied, the hold set while step 1 runs and released after. */
static void test_backup_whole(void **state)
{
    bfx_t *f = *state;
    make_state(f);
    start_backup(f, "", 7);
    f->history_hold = 13;
    assert_int_equal(backup_hold_pos(&f->b), UINT64_MAX);
    assert_int_equal(backup_now(&f->b, "test"), 0);
    assert_int_equal(backup_hold_pos(&f->b), 13);
    assert_int_equal(backup_now(&f->b, "again"), TALLY_EBUSY);
    assert_true(run_until(&f->j, p_idle, 0, 20000));
    assert_int_equal(backup_hold_pos(&f->b), UINT64_MAX);
    assert_int_equal(f->b.done, 1);
    assert_int_equal(f->b.failed, 0);
    const char *log = logged(f);
    assert_non_null(strstr(log, "not begun: the one begun"));
    assert_non_null(strstr(log, "backup-20261206T204944Z (test): 1 checkpoint and 2 journal "
                                "segments to position 15, history.db at position 12; 2 files "
                                "linked"));
    char a[512], b[512];
    const char *linked[] = {"state-0000000000000002.ckp", "journal-0000000000000001.tj"};
    for (int i = 0; i < 2; i++) {
        path_in(f, linked[i], a, sizeof(a));
        backup_path(f, linked[i], b, sizeof(b));
        assert_true(inode(a) == inode(b));
    }
    path_in(f, "journal-0000000000000002.tj", a, sizeof(a));
    backup_path(f, "journal-0000000000000002.tj", b, sizeof(b));
    assert_true(inode(a) != inode(b));
    assert_int_equal(file_size(a), file_size(b));
    /* Nothing else: no lock, no -wal, no partial directory; BLAKE2SUMS
     * beside the four files, with their digests. */
    snprintf(a, sizeof(a), "%s/backups/backup-20261206T204944Z", f->j.dir);
    assert_int_equal(count_prefixed(a, ""), 5 + 2);
    assert_sums(f, 4);
    snprintf(a, sizeof(a), "%s/backups", f->j.dir);
    assert_int_equal(count_prefixed(a, ".partial-"), 0);
    /* The copy of history.db is a database of its own at position 12. */
    backup_path(f, "history.db", b, sizeof(b));
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(b, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='journal_pos'", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), 12);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A checkpoint naming a segment that came after the newest one listed
 * (begun during the listing) is left out with that segment. */
static void test_backup_newer_checkpoint_left_out(void **state)
{
    bfx_t *f = *state;
    make_state(f);
    write_checkpoint(f, 3, 16);
    start_backup(f, "", 7);
    run_backup(f);
    assert_int_equal(f->b.done, 1);
    char p[512];
    backup_path(f, "state-0000000000000003.ckp", p, sizeof(p));
    assert_int_not_equal(access(p, F_OK), 0);
    backup_path(f, "state-0000000000000002.ckp", p, sizeof(p));
    assert_int_equal(access(p, F_OK), 0);
    assert_non_null(strstr(logged(f), "(test): 1 checkpoint and 2 journal segments"));
}

/* A record being written when the copy was taken: the copy is cut after
 * its last whole record; the state directory's file is left alone. */
static void test_backup_torn_tail(void **state)
{
    bfx_t *f = *state;
    make_state(f);
    close_journal(&f->j, 0);
    char a[512], b[512];
    path_in(f, "journal-0000000000000002.tj", a, sizeof(a));
    off_t whole = file_size(a);
    int fd = open(a, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    uint8_t half[13] = {0xC1, 0x7A, 0x4A, 0x52, 200}; /* a record header's start */
    assert_int_equal(write(fd, half, sizeof(half)), (ssize_t)sizeof(half));
    close(fd);
    start_backup(f, "", 7);
    run_backup(f);
    assert_int_equal(f->b.done, 1);
    backup_path(f, "journal-0000000000000002.tj", b, sizeof(b));
    assert_int_equal(file_size(b), whole);
    assert_int_equal(file_size(a), whole + (off_t)sizeof(half));
    assert_sums(f, 4); /* of the segment as cut */
}

/* Damage refuses the backup, names it, and leaves no directory behind. */
static void test_backup_damaged_checkpoint(void **state)
{
    bfx_t *f = *state;
    make_state(f);
    char a[512];
    path_in(f, "state-0000000000000002.ckp", a, sizeof(a));
    int fd = open(a, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, 30), 1);
    close(fd);
    start_backup(f, "", 7);
    run_backup(f);
    assert_int_equal(f->b.done, 0);
    assert_int_equal(f->b.failed, 1);
    assert_non_null(strstr(logged(f), "state-0000000000000002.ckp: CRC-32C mismatch"));
    snprintf(a, sizeof(a), "%s/backups", f->j.dir);
    assert_int_equal(count_prefixed(a, ""), 2); /* . and .. */
}

/* A history.db damaged on tallyd's own disk (a page the backup's read of
 * its position never touches): the copy is checked as a start would read
 * it, and the backup refused, rather than vouched for by its digests. */
static void test_backup_damaged_history(void **state)
{
    bfx_t *f = *state;
    make_state(f);
    char path[256];
    path_in(f, "history.db", path, sizeof(path));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE filler (x); WITH RECURSIVE n(i) AS (SELECT 1 "
                                  "UNION ALL SELECT i + 1 FROM n WHERE i < 40) INSERT INTO "
                                  "filler SELECT randomblob(1000) FROM n;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db); /* the last connection: the WAL goes into the file */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t junk[64];
    memset(junk, 0xA5, sizeof(junk));
    assert_int_equal(pwrite(fd, junk, sizeof(junk), 3 * 4096), (ssize_t)sizeof(junk));
    close(fd);
    start_backup(f, "", 7);
    run_backup(f);
    assert_int_equal(f->b.done, 0);
    assert_int_equal(f->b.failed, 1);
    assert_non_null(strstr(logged(f), "is damaged: "));
    assert_non_null(strstr(logged(f), "/history.db: the database check failed"));
    snprintf(path, sizeof(path), "%s/backups", f->j.dir);
    assert_int_equal(count_prefixed(path, ""), 2); /* . and .. */
}

/* A journal that does not reach back to what the checkpoint needs (a
 * segment deleted by hand) is refused rather than copied. */
static void test_backup_missing_segment(void **state)
{
    bfx_t *f = *state;
    make_state(f);
    char a[512];
    path_in(f, "state-0000000000000002.ckp", a, sizeof(a));
    unlink(a); /* no checkpoint: the tallies need the journal from 1 */
    path_in(f, "journal-0000000000000001.tj", a, sizeof(a));
    unlink(a);
    start_backup(f, "", 7);
    run_backup(f);
    assert_int_equal(f->b.failed, 1);
    assert_non_null(strstr(logged(f), "the journal copied begins at position 11, after 1"));
}

static void test_backup_no_history(void **state)
{
    bfx_t *f = *state;
    make_state(f);
    char a[512];
    path_in(f, "history.db", a, sizeof(a));
    unlink(a);
    start_backup(f, "", 7);
    /* Asked for by a request: its end tells the same sentence. */
    uint64_t s = 0;
    assert_int_equal(backup_ask(&f->b, &s), 0);
    assert_true(run_until(&f->j, p_ends, 1, 20000));
    assert_int_equal(f->b.failed, 1);
    assert_non_null(strstr(logged(f), "history.db: unable to open database file"));
    assert_int_equal(f->ends[0].serial, s);
    assert_int_equal(f->ends[0].rc, TALLY_EIO);
    assert_non_null(strstr(f->ends[0].err, "history.db: unable to open database file"));
}

/* keep removes the oldest backups; a partial directory of an earlier run
 * goes; another backup in the same second gets its own name, never the
 * name of one removed meanwhile (a copy of it may exist elsewhere). */
static void test_backup_keep(void **state)
{
    bfx_t *f = *state;
    make_state(f);
    char root[512], p[600];
    snprintf(root, sizeof(root), "%s/elsewhere", f->j.dir);
    assert_int_equal(mkdir(root, 0750), 0);
    snprintf(p, sizeof(p), "%s/.partial-backup-20200101T000000Z", root);
    assert_int_equal(mkdir(p, 0750), 0);
    snprintf(p, sizeof(p), "%s/.partial-backup-20200101T000000Z/history.db", root);
    FILE *o = fopen(p, "w");
    assert_non_null(o);
    fclose(o);
    start_backup(f, root, 2);
    for (int i = 0; i < 3; i++)
        run_backup(f);
    assert_int_equal(f->b.done, 3);
    assert_int_equal(count_prefixed(root, ".partial-"), 0);
    assert_int_equal(count_prefixed(root, "backup-"), 2);
    snprintf(p, sizeof(p), "%s/backup-20261206T204944Z", root);
    assert_int_not_equal(access(p, F_OK), 0); /* the oldest went */
    snprintf(p, sizeof(p), "%s/backup-20261206T204944Z-3", root);
    assert_int_equal(access(p, F_OK), 0);
    run_backup(f); /* the bare name is free again, and not taken */
    snprintf(p, sizeof(p), "%s/backup-20261206T204944Z-4", root);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/backup-20261206T204944Z", root);
    assert_int_not_equal(access(p, F_OK), 0);
    assert_int_equal(count_prefixed(root, "backup-"), 2);
    /* On to -11 within the same second: the oldest go by the number,
     * not bytewise (where -10 and -11 sort before -2).  A directory
     * merely beginning "backup-" is not a backup and stays. */
    snprintf(p, sizeof(p), "%s/backup-mine", root);
    assert_int_equal(mkdir(p, 0750), 0);
    for (int i = 5; i <= 11; i++) {
        f->nends = 0; /* on_end's record holds 8 */
        run_backup(f);
    }
    assert_int_equal(count_prefixed(root, "backup-"), 3);
    assert_int_equal(access(p, F_OK), 0);
    for (int i = 10; i <= 11; i++) {
        snprintf(p, sizeof(p), "%s/backup-20261206T204944Z-%d", root, i);
        assert_int_equal(access(p, F_OK), 0);
    }
}

/* The size of the regular files in dir, and how many there are. */
static uint64_t dir_bytes(const char *dir, uint32_t *files)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    uint64_t bytes = 0;
    *files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[1200];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            bytes += (uint64_t)st.st_size;
            (*files)++;
        }
    }
    closedir(d);
    return bytes;
}

/* backup_ask: begun at once when idle; asked again while one runs, one
 * more backup after it, shared by every request meanwhile; each end told
 * with its serial, its absolute path and what it holds. */
static void test_backup_ask(void **state)
{
    bfx_t *f = *state;
    make_state(f);
    start_backup(f, "", 7);
    uint64_t s1 = 0, s2 = 0, s3 = 0;
    assert_int_equal(backup_ask(&f->b, &s1), 0);
    assert_int_equal(s1, 1);
    assert_true(f->b.running);
    assert_int_equal(backup_ask(&f->b, &s2), 0);
    assert_int_equal(backup_ask(&f->b, &s3), 0);
    assert_int_equal(s2, 2);
    assert_int_equal(s3, 2);
    /* The operator's signal meanwhile is refused as before. */
    assert_int_equal(backup_now(&f->b, "SIGUSR1"), TALLY_EBUSY);
    assert_true(run_until(&f->j, p_ends, 2, 20000));
    assert_int_equal(f->nends, 2);
    assert_int_equal(f->b.done, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(f->ends[i].serial, i + 1);
        assert_int_equal(f->ends[i].rc, 0);
        assert_true(f->ends[i].path[0] == '/');
        uint32_t files = 0;
        uint64_t bytes = dir_bytes(f->ends[i].path, &files);
        assert_int_equal(f->ends[i].files, files);
        assert_true(files >= 4); /* checkpoint, two segments, history.db */
        assert_int_equal(f->ends[i].bytes, bytes);
    }
    assert_non_null(strstr(f->ends[0].path, "/backups/backup-20261206T204944Z"));
    assert_string_not_equal(f->ends[0].path, f->ends[1].path);
    assert_non_null(strstr(logged(f), "(BACKUP_REQ): 1 checkpoint"));

    /* Idle again: the next ask begins at once. */
    uint64_t s4 = 0;
    assert_int_equal(backup_ask(&f->b, &s4), 0);
    assert_int_equal(s4, 3);
    assert_true(run_until(&f->j, p_ends, 3, 20000));
    assert_int_equal(f->ends[2].serial, 3);
    assert_int_equal(f->ends[2].rc, 0);
}

/* A close with a backup under way and one more asked for: both ends are
 * told, TALLY_ECLOSED; asking after the close is refused. */
static void test_backup_ask_close(void **state)
{
    bfx_t *f = *state;
    make_state(f);
    start_backup(f, "", 7);
    uint64_t s1 = 0, s2 = 0;
    assert_int_equal(backup_ask(&f->b, &s1), 0);
    assert_int_equal(backup_ask(&f->b, &s2), 0);
    backup_close(&f->b, on_closed);
    assert_int_equal(backup_ask(&f->b, &s2), TALLY_ECLOSED);
    assert_true(run_until(&f->j, p_backup_closed, 0, 20000));
    assert_int_equal(f->nends, 2);
    assert_int_equal(f->ends[0].serial, 1);
    assert_int_equal(f->ends[0].rc, TALLY_ECLOSED);
    assert_int_equal(f->ends[1].serial, 2);
    assert_int_equal(f->ends[1].rc, TALLY_ECLOSED);
    assert_int_equal(f->b.done, 0);
}

/* A close while the backup runs: it is abandoned, its partial directory
 * removed, and the close callback comes once its thread is done. */
static void test_backup_close_during(void **state)
{
    bfx_t *f = *state;
    make_state(f);
    start_backup(f, "", 7);
    assert_int_equal(backup_now(&f->b, "test"), 0);
    backup_close(&f->b, on_closed);
    assert_int_equal(backup_now(&f->b, "late"), TALLY_ECLOSED);
    assert_true(run_until(&f->j, p_backup_closed, 0, 20000));
    assert_int_equal(f->b.done, 0);
    assert_non_null(strstr(logged(f), "backup (test) abandoned: tallyd is stopping"));
    char a[512];
    snprintf(a, sizeof(a), "%s/backups", f->j.dir);
    assert_int_equal(count_prefixed(a, ""), 2);
}

/* The fixture's state backed up, the journal closed; the backup's path
 * into backup (512 bytes). */
static bfx_t *backed_up(void **state, char *backup)
{
    bfx_t *f = *state;
    make_state(f);
    start_backup(f, "", 7);
    run_backup(f);
    close_journal(&f->j, 0);
    backup_path(f, "", backup, 512);
    return f;
}

/* tallyd --restore: the backup's files in place of the state files,
 * those moved aside; refused while the directory is locked, and for a
 * directory that is no backup. */
static void test_restore(void **state)
{
    char backup[512], target[512], p[700];
    bfx_t *f = backed_up(state, backup);
    snprintf(target, sizeof(target), "%s/target", f->j.dir);
    assert_int_equal(mkdir(target, 0750), 0);
    /* An older state there, and things a restore leaves alone. */
    const char *old[] = {"journal-0000000000000009.tj", "state-0000000000000009.ckp",
                         "history.db-wal", "notes.txt"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s/%s", target, old[i]);
        FILE *o = fopen(p, "w");
        assert_non_null(o);
        fputs("old", o);
        fclose(o);
    }
    restore_report_t rep;
    char err[1024];
    statedir_t sd = {.lock_fd = -1};
    assert_int_equal(statedir_lock(&sd, target, err, sizeof(err)), 0);
    assert_int_equal(restore_run(backup, target, fixed_now(NULL), false, &rep, err, sizeof(err)),
                     TALLY_EEXIST);
    assert_non_null(strstr(err, "in use by another tallyd"));
    statedir_unlock(&sd);
    /* The old state itself is damaged as a backup; an empty directory is
     * no backup at all. */
    assert_int_equal(restore_run(target, target, fixed_now(NULL), false, &rep, err, sizeof(err)),
                     TALLY_EIO);
    snprintf(p, sizeof(p), "%s/empty", f->j.dir);
    assert_int_equal(mkdir(p, 0750), 0);
    assert_int_equal(restore_run(p, target, fixed_now(NULL), false, &rep, err, sizeof(err)),
                     TALLY_EINVAL);
    assert_non_null(strstr(err, "is not a backup of tallyd's"));
    /* A byte of the backup's history.db changed, which no CRC covers:
     * refused, naming it, the target untouched; then a backup without
     * BLAKE2SUMS (an older tallyd's) is restored, unchecked. */
    char db[700], sums[700];
    backup_path(f, "history.db", db, sizeof(db));
    backup_path(f, B2SUMS_FILE, sums, sizeof(sums));
    int fd = open(db, O_RDWR);
    assert_true(fd >= 0);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, 100), 1);
    byte ^= 0x20;
    assert_int_equal(pwrite(fd, &byte, 1, 100), 1);
    assert_int_equal(restore_run(backup, target, fixed_now(NULL), false, &rep, err, sizeof(err)),
                     TALLY_EIO);
    assert_non_null(strstr(err, "/history.db differs from its digest in BLAKE2SUMS"));
    snprintf(p, sizeof(p), "%s/journal-0000000000000009.tj", target);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/%s", target, "replaced-20261206T204944Z");
    assert_int_not_equal(access(p, F_OK), 0);
    byte ^= 0x20;
    assert_int_equal(pwrite(fd, &byte, 1, 100), 1);
    close(fd);
    /* A file added since is refused too. */
    backup_path(f, "state-0000000000000003.ckp", p, sizeof(p));
    assert_int_equal(link(sums, p), 0);
    assert_int_equal(restore_run(backup, target, fixed_now(NULL), false, &rep, err, sizeof(err)),
                     TALLY_EIO);
    assert_non_null(strstr(err, "/state-0000000000000003.ckp is not in BLAKE2SUMS"));
    assert_int_equal(unlink(p), 0);
    assert_int_equal(restore_run(backup, target, fixed_now(NULL), false, &rep, err, sizeof(err)),
                     0);
    assert_true(rep.sums);
    assert_int_equal(rep.files, 4);
    assert_int_equal(rep.replaced, 3);
    assert_int_equal(rep.journal_last, 15);
    snprintf(p, sizeof(p), "%s/replaced-20261206T204944Z", target);
    assert_string_equal(rep.replaced_dir, p);
    assert_int_equal(count_prefixed(p, ""), 3 + 2);
    /* The restored files are the backup's, copied (not linked). */
    const char *files[] = {"state-0000000000000002.ckp", "journal-0000000000000001.tj",
                           "journal-0000000000000002.tj", "history.db"};
    for (int i = 0; i < 4; i++) {
        char a[700], b[700];
        snprintf(a, sizeof(a), "%s/%s", target, files[i]);
        backup_path(f, files[i], b, sizeof(b));
        assert_int_equal(file_size(a), file_size(b));
        assert_true(inode(a) != inode(b));
    }
    snprintf(p, sizeof(p), "%s/notes.txt", target);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/journal-0000000000000009.tj", target);
    assert_int_not_equal(access(p, F_OK), 0);
    /* BLAKE2SUMS describes the backup, not a state directory. */
    snprintf(p, sizeof(p), "%s/%s", target, B2SUMS_FILE);
    assert_int_not_equal(access(p, F_OK), 0);
    assert_int_equal(unlink(sums), 0);
    snprintf(p, sizeof(p), "%s/target2", f->j.dir);
    assert_int_equal(restore_run(backup, p, fixed_now(NULL), false, &rep, err, sizeof(err)), 0);
    assert_false(rep.sums);
    assert_int_equal(rep.files, 4);
}

/* Overwrite size bytes at off of the backup's file name with byte, and
 * write BLAKE2SUMS again over the backup's files (the damage done before
 * tallyd took the digests, which no digest can see). */
static void damage_before_digests(bfx_t *f, const char *name, off_t off, size_t size, int byte)
{
    char path[700], dir[512], err[1024];
    backup_path(f, name, path, sizeof(path));
    uint8_t junk[64];
    assert_true(size <= sizeof(junk));
    memset(junk, byte, size);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, junk, size, off), (ssize_t)size);
    close(fd);
    backup_path(f, "", dir, sizeof(dir));
    char *names[] = {"journal-0000000000000001.tj", "journal-0000000000000002.tj",
                     "state-0000000000000002.ckp", "history.db"};
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    backup_path(f, "history.db", path, sizeof(path));
    size_t n = access(path, F_OK) == 0 ? 4 : 3;
    assert_int_equal(b2sums_write(dfd, dir, names, n, NULL, NULL, err, sizeof(err)), 0);
    close(dfd);
}

/* tallyd --check-backup (restore_check) and the check a restore makes
 * first: the backup as a start would read it, which finds what the
 * digests cannot (damage done before they were taken), history.db's
 * included; --accept-loss restores a backup whose history.db alone is
 * damaged. */
static void test_restore_check(void **state)
{
    char backup[512], target[512], err[1024], db[700];
    bfx_t *f = backed_up(state, backup);
    backup_path(f, "history.db", db, sizeof(db));
    snprintf(target, sizeof(target), "%s/target", f->j.dir);
    restore_report_t rep;
    assert_int_equal(restore_check(backup, &rep, err, sizeof(err)), 0);
    assert_true(rep.sums);
    assert_int_equal(rep.backup_files, 4);
    assert_true(rep.backup_bytes > 0);
    assert_string_equal(rep.checkpoint, "state-0000000000000002.ckp");
    assert_int_equal(rep.checkpoint_pos, 11);
    assert_int_equal(rep.journal_last, 15);
    assert_true(rep.history);
    assert_false(rep.history_damaged);
    /* Checking writes nothing beside the database (no -wal, no -shm),
     * which the digests would count as added. */
    assert_int_equal(count_prefixed(backup, "history.db"), 1);
    /* history.db's second page made nonsense, the digests taken after:
     * found by the database's own check, named. */
    struct stat st;
    assert_int_equal(stat(db, &st), 0);
    assert_true(st.st_size >= 8192);
    damage_before_digests(f, "history.db", 4096, 64, 0xA5);
    assert_int_equal(restore_check(backup, &rep, err, sizeof(err)), TALLY_EIO);
    assert_true(rep.sums);
    assert_true(rep.history_damaged);
    assert_non_null(strstr(err, "/history.db: "));
    assert_int_equal(restore_run(backup, target, fixed_now(NULL), false, &rep, err, sizeof(err)),
                     TALLY_EIO);
    assert_int_not_equal(access(target, F_OK), 0);
    /* With --accept-loss it is restored as it is: the start sets it aside. */
    assert_int_equal(restore_run(backup, target, fixed_now(NULL), true, &rep, err, sizeof(err)), 0);
    assert_true(rep.history_damaged);
    assert_non_null(strstr(err, "/history.db: "));
    assert_int_equal(rep.files, 4);
    /* A checkpoint damaged before the digests: its CRC; --accept-loss is
     * for history.db alone. */
    damage_before_digests(f, "state-0000000000000002.ckp", 30, 1, 'X');
    assert_int_equal(restore_check(backup, &rep, err, sizeof(err)), TALLY_EIO);
    assert_false(rep.history_damaged);
    assert_non_null(strstr(err, "/state-0000000000000002.ckp: "));
    snprintf(target, sizeof(target), "%s/target2", f->j.dir);
    assert_int_equal(restore_run(backup, target, fixed_now(NULL), true, &rep, err, sizeof(err)),
                     TALLY_EIO);
}

/* A backup without history.db (a tallyd's before history) is checked
 * without it: a start begins a new one. */
static void test_restore_check_no_history(void **state)
{
    char backup[512], db[700], err[1024];
    bfx_t *f = backed_up(state, backup);
    backup_path(f, "history.db", db, sizeof(db));
    assert_int_equal(unlink(db), 0);
    damage_before_digests(f, "journal-0000000000000001.tj", 0, 0, 0);
    restore_report_t rep;
    assert_int_equal(restore_check(backup, &rep, err, sizeof(err)), 0);
    assert_true(rep.sums);
    assert_false(rep.history);
    assert_int_equal(rep.backup_files, 3);
}

/* ---- the schedule ([backup] interval) ------------------------------------ */

#define HOUR_MS (3600 * 1000LL)

static void start_scheduled(bfx_t *f, const char *dir, int64_t interval_ms)
{
    start_every(f, dir, 7, interval_ms);
}

/* A directory named name in dir (made first when missing). */
static void make_dir_in(const char *dir, const char *name)
{
    char p[600];
    mkdir(dir, 0750);
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(mkdir(p, 0750), 0);
}

/* Milliseconds until the timer fires; the loop's time has not moved
 * since backup_init() (nothing ran it). */
static int64_t due_in(bfx_t *f)
{
    if (!uv_is_active((uv_handle_t *)&f->b.timer))
        return -1;
    return (int64_t)uv_timer_get_due_in(&f->b.timer);
}

/* The newest backup of the directory, by its name's time and then its
 * suffix, is where the schedule starts, and what last_ok_ms (STATS'
 * tallyd_backup_last_success_timestamp_seconds) says from the start;
 * partial backups, other directories and a name of no real time do not
 * count. */
static void test_schedule_from_newest(void **state)
{
    bfx_t *f = *state;
    char root[512];
    snprintf(root, sizeof(root), "%s/backups", f->j.dir);
    make_dir_in(root, "backup-20261205T204944Z");
    make_dir_in(root, "backup-20261206T194944Z-2"); /* an hour before fixed_now() */
    make_dir_in(root, "backup-20261206T194944Z-10");
    make_dir_in(root, "backup-20261206T194944Z");
    make_dir_in(root, ".partial-backup-20261206T204000Z");
    make_dir_in(root, "backup-mine");
    make_dir_in(root, "backup-20261399T000000Z"); /* no such day */
    char name[BACKUP_NAME_MAX];
    int64_t ms = 0;
    assert_int_equal(backup_newest(root, name, sizeof(name), &ms), 0);
    assert_string_equal(name, "backup-20261206T194944Z-10");
    assert_int_equal(ms, fixed_now(NULL) - HOUR_MS);
    /* A day's interval: the next is due 23 h from now, not 24. */
    start_scheduled(f, "", 24 * HOUR_MS);
    assert_int_equal(f->b.last_ok_ms, fixed_now(NULL) - HOUR_MS);
    assert_int_equal(due_in(f), 23 * HOUR_MS);
    assert_int_equal(f->b.due_ms, fixed_now(NULL) + 23 * HOUR_MS);
    assert_non_null(strstr(logged(f), "newest backup in "));
    assert_non_null(strstr(logged(f), ": backup-20261206T194944Z-10"));
    /* A reload that changes nothing does not put it off. */
    backup_settings_t s = f->b.c.settings;
    backup_set(&f->b, &s);
    assert_int_equal(due_in(f), 23 * HOUR_MS);
    /* A shorter interval the newest is already older than: due after the
     * start's delay. */
    s.interval_ms = HOUR_MS / 2;
    backup_set(&f->b, &s);
    assert_int_equal(due_in(f), BACKUP_START_DELAY_MS);
    /* ... and a reload meanwhile does not put that off either. */
    f->b.due_ms -= 1500; /* as though 1.5 s had passed */
    backup_set(&f->b, &s);
    assert_int_equal(due_in(f), BACKUP_START_DELAY_MS - 1500);
    /* Another directory with no backup: none known, one soon. */
    snprintf(s.dir, sizeof(s.dir), "elsewhere");
    backup_set(&f->b, &s);
    assert_int_equal(f->b.last_ok_ms, 0);
    assert_int_equal(due_in(f), BACKUP_START_DELAY_MS - 1500);
    /* No interval: nothing scheduled, the newest still known. */
    s.interval_ms = 0;
    s.dir[0] = '\0';
    backup_set(&f->b, &s);
    assert_int_equal(due_in(f), -1);
    assert_int_equal(f->b.last_ok_ms, fixed_now(NULL) - HOUR_MS);
}

/* A state restarted more often than its interval: a backup older than
 * the interval is followed by one soon after the start; none at all, the
 * same; one named in the future (a clock set back) puts the next off by
 * no more than an interval; an interval shorter than the delay wins. */
static void test_schedule_at_start(void **state)
{
    bfx_t *f = *state;
    char root[512];
    snprintf(root, sizeof(root), "%s/backups", f->j.dir);
    start_scheduled(f, "", 7 * 24 * HOUR_MS);
    assert_int_equal(f->b.last_ok_ms, 0);
    assert_int_equal(due_in(f), BACKUP_START_DELAY_MS);
    backup_close(&f->b, on_closed);
    assert_true(run_until(&f->j, p_backup_closed, 0, 10000));

    f->closed = false;
    make_dir_in(root, "backup-20261129T204943Z"); /* 7 days and a second ago */
    start_scheduled(f, "", 7 * 24 * HOUR_MS);
    assert_int_equal(due_in(f), BACKUP_START_DELAY_MS);
    backup_close(&f->b, on_closed);
    assert_true(run_until(&f->j, p_backup_closed, 0, 10000));

    f->closed = false;
    make_dir_in(root, "backup-20261206T204940Z"); /* 4 s ago */
    start_scheduled(f, "", 5000);
    assert_int_equal(due_in(f), BACKUP_START_DELAY_MS); /* not 1 s */
    backup_close(&f->b, on_closed);
    assert_true(run_until(&f->j, p_backup_closed, 0, 10000));

    f->closed = false;
    make_dir_in(root, "backup-20270101T000000Z");
    start_scheduled(f, "", 24 * HOUR_MS);
    assert_int_equal(due_in(f), 24 * HOUR_MS);
    backup_close(&f->b, on_closed);
    assert_true(run_until(&f->j, p_backup_closed, 0, 10000));

    f->closed = false;
    start_scheduled(f, "elsewhere", 1000);
    assert_int_equal(due_in(f), 1000);
}

/* The timer's backup is written, counts as the newest, and the next is
 * due an interval after it; one that fails is tried again an interval
 * later, not at once. */
static void test_schedule_runs(void **state)
{
    bfx_t *f = *state;
    make_state(f);
    start_scheduled(f, "", 300);
    assert_true(run_until(&f->j, p_ends, 1, 20000));
    assert_int_equal(f->ends[0].rc, 0);
    assert_int_equal(f->b.done, 1);
    assert_int_equal(f->b.last_ok_ms, fixed_now(NULL));
    assert_non_null(strstr(logged(f), "(every [backup] interval)"));
    assert_int_equal(f->b.due_ms, fixed_now(NULL) + 300);
    assert_true(uv_is_active((uv_handle_t *)&f->b.timer));
    backup_close(&f->b, on_closed);
    assert_true(run_until(&f->j, p_backup_closed, 0, 10000));

    /* A file where the backup directory should be: every backup fails. */
    f->closed = false;
    f->nends = 0;
    char p[600];
    snprintf(p, sizeof(p), "%s/blocked", f->j.dir);
    FILE *o = fopen(p, "w");
    assert_non_null(o);
    fclose(o);
    start_scheduled(f, "blocked", 300);
    assert_true(run_until(&f->j, p_ends, 1, 20000));
    assert_int_not_equal(f->ends[0].rc, 0);
    assert_int_equal(f->b.failed, 1);
    assert_int_equal(f->b.tried_ms, fixed_now(NULL));
    assert_int_equal(f->b.due_ms, fixed_now(NULL) + 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backup_whole, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_backup_torn_tail, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_backup_newer_checkpoint_left_out, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_backup_damaged_checkpoint, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_backup_damaged_history, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_backup_missing_segment, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_backup_no_history, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_backup_keep, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_backup_close_during, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_backup_ask, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_backup_ask_close, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_schedule_from_newest, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_schedule_at_start, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_schedule_runs, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_restore, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_restore_check, b_setup, b_teardown),
        cmocka_unit_test_setup_teardown(test_restore_check_no_history, b_setup, b_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
