/* Unit tests of history.db on a disk that fails: a read the disk fails
 * (EIO), a full disk (ENOSPC), no permission (EACCES), a lock held by
 * another process.  None of these says the file is damaged: history_open()
 * must stop (TALLY_EIO), leave history.db where and as it is, and load it
 * whole once the cause is gone.  A file really damaged is still set aside
 * and rebuilt.
 *
 * The faults come from SQLite's own seam for them: the unix VFS's system
 * calls (xSetSystemCall), replaced by ones that fail on demand for the
 * files named history.db*, so that SQLite reacts as it does to the real
 * failures (it reports a read failed with EIO as SQLITE_CORRUPT, for one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "history.h"
#include "history_db.h"
#include "parts_test_util.h"

/* 2023-12-31T12:00 and 2023-06-30T12:00 in UTC (the tests run in UTC). */
#define T_DEC31 1704024000000LL
#define T_JUN30 1688126400000LL

#define TOWNS 150 /* townships with figures: rows over many pages */

static const char conf[] = "[tallyd]\ntimezone = UTC\n"
                           "[limits]\nmax_townships = 1000\n"
                           "[metric resolved]\nkind = counter\n"
                           "[metric zones]\nkind = gauge\n";

/* ---- system calls that fail on demand ---- */

static struct fault {
    atomic_int reads, writes; /* calls on history.db* since armed */
    int read_fails;           /* read n fails with EIO (0: none) */
    int full_from;            /* writes from n on fail with ENOSPC (0: none) */
    int deny;                 /* opens fail with EACCES: 1 all, 2 for writing */
    atomic_bool armed;        /* set last: the calls above read it first */
} fault;

typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*open_fn)(const char *, int, int);

static pread_fn real_pread;
static pwrite_fn real_pwrite;
static open_fn real_open;
static const char *pread_name, *pwrite_name;

static bool is_history(const char *path)
{
    return strstr(path, "/test_history_disk.") != NULL && strstr(path, "/history.db") != NULL;
}

static bool fd_is_history(int fd)
{
    char link[64], path[512];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0)
        return false;
    path[n] = '\0';
    return is_history(path);
}

static ssize_t fake_pread(int fd, void *buf, size_t n, off_t off)
{
    if (atomic_load(&fault.armed) && fd_is_history(fd) &&
        atomic_fetch_add(&fault.reads, 1) + 1 == fault.read_fails) {
        errno = EIO;
        return -1;
    }
    return real_pread(fd, buf, n, off);
}

static ssize_t fake_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (atomic_load(&fault.armed) && fd_is_history(fd) && fault.full_from > 0 &&
        atomic_fetch_add(&fault.writes, 1) + 1 >= fault.full_from) {
        errno = ENOSPC;
        return -1;
    }
    return real_pwrite(fd, buf, n, off);
}

static int fake_open(const char *path, int flags, int mode)
{
    if (atomic_load(&fault.armed) && is_history(path) &&
        (fault.deny == 1 || (fault.deny == 2 && (flags & O_ACCMODE) != O_RDONLY))) {
        errno = EACCES;
        return -1;
    }
    return real_open(path, flags, mode);
}

static int install_faults(void **state)
{
    (void)state;
    sqlite3_vfs *v = sqlite3_vfs_find(NULL);
    assert_non_null(v);
    assert_true(v->iVersion >= 3 && v->xSetSystemCall != NULL);
    /* pread or pread64, whichever this SQLite was built to use. */
    static const char *const reads[] = {"pread64", "pread"}, *const writes[] = {"pwrite64",
                                                                                "pwrite"};
    for (int i = 0; i < 2 && pread_name == NULL; i++)
        if (v->xGetSystemCall(v, reads[i]) != NULL)
            pread_name = reads[i];
    for (int i = 0; i < 2 && pwrite_name == NULL; i++)
        if (v->xGetSystemCall(v, writes[i]) != NULL)
            pwrite_name = writes[i];
    assert_non_null(pread_name);
    assert_non_null(pwrite_name);
    real_pread = (pread_fn)v->xGetSystemCall(v, pread_name);
    real_pwrite = (pwrite_fn)v->xGetSystemCall(v, pwrite_name);
    real_open = (open_fn)v->xGetSystemCall(v, "open");
    assert_non_null(real_open);
    assert_int_equal(v->xSetSystemCall(v, pread_name, (sqlite3_syscall_ptr)fake_pread), SQLITE_OK);
    assert_int_equal(v->xSetSystemCall(v, pwrite_name, (sqlite3_syscall_ptr)fake_pwrite),
                     SQLITE_OK);
    assert_int_equal(v->xSetSystemCall(v, "open", (sqlite3_syscall_ptr)fake_open), SQLITE_OK);
    return 0;
}

static int remove_faults(void **state)
{
    (void)state;
    sqlite3_vfs *v = sqlite3_vfs_find(NULL);
    v->xSetSystemCall(v, NULL, NULL); /* every call back to the real one */
    return 0;
}

static void arm(int read_fails, int full_from, int deny)
{
    atomic_store(&fault.reads, 0);
    atomic_store(&fault.writes, 0);
    fault.read_fails = read_fails;
    fault.full_from = full_from;
    fault.deny = deny;
    atomic_store(&fault.armed, true);
}

static void disarm(void)
{
    atomic_store(&fault.armed, false);
}

/* ---- the fixture ---- */

typedef struct fx {
    t_state_t st;
    history_t h;
    bool h_init;
    uint32_t resolved, zones, town[TOWNS];
    char dir[64];
} fx_t;

static uint32_t id(intern_t *in, const char *s)
{
    int v = intern_find(in, s, strlen(s));
    if (v <= 0)
        v = intern_add(in, s, strlen(s));
    assert_true(v > 0);
    return (uint32_t)v;
}

static void fx_history(fx_t *f)
{
    history_config_t hc = {.engine = &f->st.engine,
                           .towns = &f->st.towns,
                           .metrics = &f->st.metrics,
                           .clock = &t_clock,
                           .log = &f->st.log,
                           .days = HISTORY_DAYS_DEFAULT};
    assert_int_equal(history_init(&f->h, &hc), 0);
    f->h_init = true;
}

static void fx_history_free(fx_t *f)
{
    if (f->h_init)
        history_free(&f->h);
    f->h_init = false;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    t_state_init(&f->st, conf);
    t_state_declare(&f->st);
    f->resolved = id(&f->st.metrics, "resolved");
    f->zones = id(&f->st.metrics, "zones");
    for (uint32_t i = 0; i < TOWNS; i++) {
        char name[32];
        snprintf(name, sizeof name, "town-%03u", i);
        f->town[i] = id(&f->st.towns, name);
    }
    snprintf(f->dir, sizeof f->dir, "/tmp/test_history_disk.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    disarm();
    fx_history_free(f);
    t_state_free(&f->st);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void apply(fx_t *f, uint64_t pos, uint32_t town, int64_t t, uint32_t metric, int64_t v)
{
    engine_sample_t s = {.metric = metric, .value = v};
    assert_int_equal(history_apply(&f->h, pos, town, t, &s, 1), 0);
}

/* A database of figures of every township, stored by the writer:
 * resolved i + 1 on 31 December 2023 and zones i on 30 June 2023 for
 * township i, as journal positions 1 .. 2 * TOWNS. */
static void store_figures(fx_t *f)
{
    bool rebuilt = true;
    fx_history(f);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(history_start(&f->h, &loop), 0);
    uint64_t pos = 1;
    for (uint32_t i = 0; i < TOWNS; i++) {
        apply(f, pos++, f->town[i], T_DEC31, f->resolved, i + 1);
        apply(f, pos++, f->town[i], T_JUN30, f->zones, i);
    }
    history_stop(&f->h);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    fx_history_free(f);
}

static void expect(fx_t *f, uint32_t metric, uint32_t town, const char *period, int64_t num)
{
    calperiod_t p;
    assert_int_equal(calperiod_parse(period, strlen(period), &p), 0);
    engine_value_t v;
    history_read(&f->h, metric, town, p, &v);
    if (!v.present || v.num != num)
        fail_msg("%s: metric %u town %u: present %d num %lld, expected %lld", period, metric, town,
                 v.present, (long long)v.num, (long long)num);
}

/* The figures of store_figures() are all there. */
static void expect_figures(fx_t *f)
{
    assert_int_equal(history_position(&f->h), 2 * TOWNS);
    for (uint32_t i = 0; i < TOWNS; i++) {
        expect(f, f->resolved, f->town[i], "2023-12-31", i + 1);
        expect(f, f->resolved, f->town[i], "2023", i + 1);
        expect(f, f->zones, f->town[i], "2023-06", i);
    }
    expect(f, f->resolved, 0, "2023-Q4", TOWNS * (TOWNS + 1) / 2);
    expect(f, f->zones, 0, "2023", TOWNS * (TOWNS - 1) / 2);
}

/* The files of f's directory whose names begin with prefix. */
static int count_files(fx_t *f, const char *prefix)
{
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* history_open() with the faults armed as given: 0 (the faults did not
 * matter) or TALLY_EIO, never a database set aside. */
static int open_faulty(fx_t *f, int read_fails, int full_from, int deny)
{
    bool rebuilt = false;
    fx_history(f);
    arm(read_fails, full_from, deny);
    int rc = history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt);
    disarm();
    if (rebuilt || count_files(f, "history.db.damaged-") != 0) {
        fflush(f->st.log.out);
        fail_msg("history.db set aside after a fault (read %d fails, full from write %d, opens "
                 "denied %d): %s",
                 read_fails, full_from, deny, f->st.logbuf);
    }
    if (rc != 0 && rc != TALLY_EIO)
        fail_msg("history_open: %d", rc);
    if (rc == 0)
        expect_figures(f);
    else
        assert_true(t_logged(&f->st, "it is kept as it is and tallyd stops"));
    char path[128];
    snprintf(path, sizeof path, "%s/history.db", f->dir);
    assert_int_equal(access(path, F_OK), 0);
    fx_history_free(f);
    return rc;
}

/* Once the faults are gone, the database loads whole. */
static void expect_loads_whole(fx_t *f)
{
    bool rebuilt = true;
    fx_history(f);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
    expect_figures(f);
    fx_history_free(f);
    assert_int_equal(count_files(f, "history.db.damaged-"), 0);
}

/* Fail each read of the start in turn (the first, the second, ...) until
 * a start reads no more than that: each start stops or loads whole. */
static void sweep_reads(fx_t *f)
{
    int stopped = 0, n;
    for (n = 1; n < 10000; n++) {
        int rc = open_faulty(f, n, 0, 0);
        stopped += rc == TALLY_EIO;
        if (rc == 0 && atomic_load(&fault.reads) < n)
            break; /* read n never came */
    }
    print_message("%d reads, %d of whose failures stopped the start\n", n - 1, stopped);
    assert_true(stopped > 0);
    expect_loads_whole(f);
}

/* 1. A read the disk fails (EIO), wherever it falls in the start
 * (opening, the position, the names, the rows, the check on its own
 * connection): the start stops and the file stays; the next start loads
 * it whole.  Without the verdict, such a read read as a damaged file
 * (SQLite says "database disk image is malformed") and the file was set
 * aside. */
static void test_read_error(void **state)
{
    fx_t *f = *state;
    store_figures(f);
    sweep_reads(f);
}

/* Copy file from into to. */
static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* 2. The same when the newest pages are in the write-ahead log, as after
 * a crash: the files copied while a connection holds them unfolded. */
static void test_read_error_in_wal(void **state)
{
    fx_t *f = *state;
    store_figures(f);
    char path[128], wal[160], copy[160];
    snprintf(path, sizeof path, "%s/history.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA wal_autocheckpoint = 0;"
                                  "UPDATE figures SET value = value + 1 WHERE type = 0;"
                                  "UPDATE figures SET value = value - 1 WHERE type = 0",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    static const char *const ext[] = {"", "-wal"};
    for (int i = 0; i < 2; i++) {
        snprintf(wal, sizeof wal, "%s%s", path, ext[i]);
        snprintf(copy, sizeof copy, "%s/copy%s", f->dir, ext[i]);
        copy_file(wal, copy);
    }
    sqlite3_close(db);
    for (int i = 0; i < 2; i++) {
        snprintf(wal, sizeof wal, "%s%s", path, ext[i]);
        snprintf(copy, sizeof copy, "%s/copy%s", f->dir, ext[i]);
        assert_int_equal(rename(copy, wal), 0);
    }
    struct stat st;
    assert_int_equal(stat(wal, &st), 0);
    assert_true(st.st_size > 4096); /* frames to read */
    sweep_reads(f);
}

/* 3. A full disk (ENOSPC from some write on), from the first write (the
 * shared-memory file, absent after a clean stop) to the last: the start
 * stops and the file stays; the next start, with room, loads it whole. */
static void test_disk_full(void **state)
{
    fx_t *f = *state;
    store_figures(f);
    int stopped = 0, n;
    for (n = 1; n < 10000; n++) {
        int rc = open_faulty(f, 0, n, 0);
        stopped += rc == TALLY_EIO;
        if (rc == 0 && atomic_load(&fault.writes) < n)
            break;
    }
    print_message("%d writes, %d of whose failures stopped the start\n", n - 1, stopped);
    assert_true(stopped > 0);
    assert_true(t_logged(&f->st, "database or disk is full") || t_logged(&f->st, "disk I/O error"));
    expect_loads_whole(f);
}

/* 4. A database of schema 2 whose conversion meets a full disk, at any
 * of its writes: it stays as it was (schema 2, every row); the next start
 * converts it. */
static void test_disk_full_converting(void **state)
{
    fx_t *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/history.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(
            db,
            "CREATE TABLE cells (metric TEXT NOT NULL, scope TEXT NOT NULL, period TEXT NOT NULL,"
            " type TEXT NOT NULL, first_day TEXT NOT NULL, kind TEXT NOT NULL, value INTEGER,"
            " event_ms INTEGER, PRIMARY KEY (metric, scope, period)) WITHOUT ROWID;"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
            "INSERT INTO meta VALUES ('schema', 2), ('journal_pos', 300);"
            "WITH RECURSIVE t(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM t WHERE i < 149)"
            " INSERT INTO cells SELECT 'resolved', printf('town-%03d', i), p, ty, d, 'counter',"
            "  i + 1, NULL FROM t, (SELECT '2023-12-31' AS p, 'day' AS ty, '2023-12-31' AS d"
            "  UNION ALL SELECT '2023-12', 'month', '2023-12-01'"
            "  UNION ALL SELECT '2023-Q4', 'quarter', '2023-10-01'"
            "  UNION ALL SELECT '2023', 'year', '2023-01-01');",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    int stopped = 0, n;
    for (n = 1; n < 10000; n++) {
        bool rebuilt = false;
        fx_history(f);
        arm(0, n, 0);
        int rc = history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt);
        disarm();
        assert_false(rebuilt);
        assert_int_equal(count_files(f, "history.db.damaged-"), 0);
        fx_history_free(f);
        if (rc == 0)
            break; /* converted */
        assert_int_equal(rc, TALLY_EIO);
        stopped++;
        char got[64] = "";
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT (SELECT value FROM meta WHERE key = 'schema')"
                                            " || ' ' || count(*) || ' ' || sum(value) FROM cells",
                                            -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        snprintf(got, sizeof got, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(db);
        assert_string_equal(got, "2 600 45300"); /* as it was */
    }
    print_message("%d writes, %d of whose failures stopped the start\n", n - 1, stopped);
    assert_true(stopped > 0);
    bool rebuilt = true;
    fx_history(f);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
    assert_int_equal(history_position(&f->h), 300);
    for (uint32_t i = 0; i < TOWNS; i++)
        expect(f, f->resolved, f->town[i], "2023", i + 1);
    fx_history_free(f);
}

/* 5. No permission to open the files (EACCES, as for a tallyd whose user
 * does not own them), or only to read them: the start stops, the file
 * stays. */
static void test_no_permission(void **state)
{
    fx_t *f = *state;
    store_figures(f);
    assert_int_equal(open_faulty(f, 0, 0, 1), TALLY_EIO);
    assert_int_equal(open_faulty(f, 0, 0, 2), TALLY_EIO);
    expect_loads_whole(f);
}

/* 6. Another process holds the write lock past the 5 s wait (an
 * analyst's open transaction): the start stops, the file stays. */
static void test_locked(void **state)
{
    fx_t *f = *state;
    store_figures(f);
    char path[128];
    snprintf(path, sizeof path, "%s/history.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(open_faulty(f, 0, 0, 0), TALLY_EIO);
    assert_true(t_logged(&f->st, "database is locked"));
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    expect_loads_whole(f);
}

/* 7. The other way round: a file whose pages were overwritten (read
 * without an error, but not what SQLite wrote) is damaged, set aside
 * whole and a new one begun. */
static void test_damaged_pages_set_aside(void **state)
{
    fx_t *f = *state;
    store_figures(f);
    char path[128];
    snprintf(path, sizeof path, "%s/history.db", f->dir);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long size = ftell(fp);
    assert_true(size >= 8 * 4096);
    for (long off = 3 * 4096 + 100; off < size; off += 4096) {
        assert_int_equal(fseek(fp, off, SEEK_SET), 0);
        for (int i = 0; i < 2000; i++)
            fputc(0xa5, fp);
    }
    assert_int_equal(fclose(fp), 0);
    bool rebuilt = false;
    fx_history(f);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_true(rebuilt);
    assert_int_equal(history_position(&f->h), 0);
    assert_int_equal(history_cells(&f->h), 0);
    assert_true(t_logged(&f->st, "it is set aside as history.db.damaged-"));
    assert_int_equal(count_files(f, "history.db.damaged-"), 1);
    fx_history_free(f);
}

/* 8. The check a backup and a restore make of a history.db
 * (history_db_check_file) judges as a start does: a read the disk fails
 * or no permission is TALLY_EIO (a backup fails and is tried again; a
 * restore refuses it, but not as damaged, so --accept-loss does not
 * apply), a damaged file TALLY_EDAMAGED.  Both called it damaged. */
static void test_check_file_verdicts(void **state)
{
    fx_t *f = *state;
    store_figures(f);
    uint64_t cells = 0;
    char err[1024];
    assert_int_equal(history_db_check_file(f->dir, &cells, err, sizeof err), 0);
    assert_true(cells > 0);
    arm(2, 0, 0);
    int rc = history_db_check_file(f->dir, &cells, err, sizeof err);
    disarm();
    if (rc != TALLY_EIO || strstr(err, "/history.db: ") == NULL)
        fail_msg("a failed read: rc %d, expected TALLY_EIO naming the file: %s", rc, err);
    arm(0, 0, 1);
    rc = history_db_check_file(f->dir, &cells, err, sizeof err);
    disarm();
    if (rc != TALLY_EIO)
        fail_msg("no permission: rc %d, expected TALLY_EIO: %s", rc, err);
    char path[128];
    snprintf(path, sizeof path, "%s/history.db", f->dir);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 3 * 4096 + 100, SEEK_SET), 0);
    for (int i = 0; i < 2000; i++)
        fputc(0xa5, fp);
    assert_int_equal(fclose(fp), 0);
    rc = history_db_check_file(f->dir, &cells, err, sizeof err);
    if (rc != TALLY_EDAMAGED || strstr(err, "/history.db: ") == NULL)
        fail_msg("damaged pages: rc %d, expected TALLY_EDAMAGED naming the file: %s", rc, err);
}

/* 9. history.db that is not a file (a directory put there by hand, a
 * symbolic link to nothing): SQLite says only "disk I/O error"; the start
 * stops naming what it is, keeps it, and so does the check. */
static void test_not_a_file(void **state)
{
    fx_t *f = *state;
    char path[128], err[1024];
    snprintf(path, sizeof path, "%s/history.db", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    bool rebuilt = false;
    fx_history(f);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt),
                     TALLY_EIO);
    assert_false(rebuilt);
    fflush(f->st.log.out);
    if (strstr(f->st.logbuf, "history.db is a directory, not a file") == NULL)
        fail_msg("the start should say history.db is a directory: %s", f->st.logbuf);
    fx_history_free(f);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    uint64_t cells;
    assert_int_equal(history_db_check_file(f->dir, &cells, err, sizeof err), TALLY_EIO);
    assert_non_null(strstr(err, "is a directory, not a file"));
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(symlink("/nonexistent/history.db", path), 0);
    assert_int_equal(history_db_check_file(f->dir, &cells, err, sizeof err), TALLY_EIO);
    assert_non_null(strstr(err, "symbolic link to a file that does not exist"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_error_in_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_converting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_permission, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_pages_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_file_verdicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, install_faults, remove_faults);
}
