/* history_db.c - the SQLite side of history (see history_db.h). */
#include "history_db.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>
#include <uv.h>

#include "memhint.h"
#include "tally_error.h"

/* The days to prune are found by a partial index of day rows only.  Its
 * predecessor, cells_by_type, indexed every row by (type, first_day): a
 * second B-tree insertion with text keys for each new cell, which made
 * storing a new series cost about twice as much (bench/README.md, "A
 * new series in the history"); databases that have it lose it when
 * opened. */
static const char *const schema =
    "CREATE TABLE IF NOT EXISTS cells ("
    " metric TEXT NOT NULL, scope TEXT NOT NULL, period TEXT NOT NULL,"
    " type TEXT NOT NULL, first_day TEXT NOT NULL, kind TEXT NOT NULL,"
    " value INTEGER, event_ms INTEGER,"
    " PRIMARY KEY (metric, scope, period)) WITHOUT ROWID;"
    "DROP INDEX IF EXISTS cells_by_type;"
    "CREATE INDEX IF NOT EXISTS cells_days ON cells (first_day) WHERE type = 'day';"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO meta VALUES ('schema', 1), ('journal_pos', 0);";

/* The meta rows of open periods (history_db.h), with the schema they
 * came with. */
#define SET_OPEN                                                                                   \
    "INSERT OR REPLACE INTO meta VALUES ('schema', 2), ('open_from', ?1), ('stored_through', ?2)"
#define DROP_OPEN "DELETE FROM cells WHERE type <> 'day' AND first_day >= ?1"

static int fail(sqlite3 *db, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
    return TALLY_EIO;
}

void history_db_close(history_db_t *d)
{
    sqlite3_finalize(d->put);
    sqlite3_finalize(d->prune);
    sqlite3_finalize(d->setpos);
    sqlite3_finalize(d->setopen);
    sqlite3_finalize(d->drop);
    if (d->db)
        sqlite3_close(d->db);
    memset(d, 0, sizeof(*d));
}

int history_db_open(history_db_t *d, const char *dir, char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, HISTORY_DB_FILE);
    /* NOMUTEX: SQLite takes no mutex of the connection's in every call
     * (a tenth of the load, 8 locks and unlocks a row).  One thread at a
     * time uses the connection (history_db.h): the loop thread opens and
     * loads it in history_open() before history_start() starts the writer
     * thread; the writer runs history_db_write() only, between taking a
     * batch and handing it back under history_t's mutex; the loop thread
     * writes the last batch and closes it in history_stop() after joining
     * the writer. */
    int rc = sqlite3_open_v2(
        path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    char *msg = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(d->db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "PRAGMA busy_timeout=5000;",
                          NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(d->db, schema, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, msg ? msg : d->db ? sqlite3_errmsg(d->db) : "?");
        sqlite3_free(msg);
        history_db_close(d);
        return TALLY_EIO;
    }
    const char *put = "INSERT OR REPLACE INTO cells VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    const char *prune = HISTORY_DB_PRUNE;
    const char *setpos = "UPDATE meta SET value = ?1 WHERE key = 'journal_pos'";
    if (sqlite3_prepare_v2(d->db, put, -1, &d->put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db, prune, -1, &d->prune, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db, setpos, -1, &d->setpos, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db, SET_OPEN, -1, &d->setopen, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db, DROP_OPEN, -1, &d->drop, NULL) != SQLITE_OK) {
        fail(d->db, err, errlen, path);
        history_db_close(d);
        return TALLY_EIO;
    }
    return 0;
}

static int load_pos(history_db_t *d, uint64_t *pos, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(d->db, "SELECT value FROM meta WHERE key = 'journal_pos'", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return fail(d->db, err, errlen, "reading the journal position");
    rc = sqlite3_step(st);
    sqlite3_int64 v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (v < 0) {
        snprintf(err, errlen, "the table meta has no valid journal_pos");
        return TALLY_EIO;
    }
    *pos = (uint64_t)v;
    return 0;
}

static int quick_check(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK)
        return fail(db, err, errlen, "checking the database");
    int rc = sqlite3_step(st);
    const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    bool ok = t != NULL && strcmp((const char *)t, "ok") == 0;
    if (!ok)
        snprintf(err, errlen, "the database check failed: %s",
                 t ? (const char *)t : sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return ok ? 0 : TALLY_EIO;
}

/* PRAGMA quick_check on a connection of its own, in a thread of its own
 * while the loop thread reads the rows (each takes about as long). */
typedef struct check_job {
    char path[4200];
    atomic_int state; /* 0 running, 1 the file is sound, -1 not */
    char err[512];
} check_job_t;

static void check_main(void *arg)
{
    check_job_t *j = arg;
    sqlite3 *db = NULL;
    pthread_setname_np(pthread_self(), "tallyd-hcheck"); /* for top -H, ps -L */
    int rc = sqlite3_open_v2(j->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, 5000);
    if (rc == SQLITE_OK)
        rc = quick_check(db, j->err, sizeof(j->err));
    else
        fail(db, j->err, sizeof(j->err), "checking the database");
    sqlite3_close(db);
    atomic_store(&j->state, rc == 0 ? 1 : -1);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

/* The number of rows of cells into *n. */
static int count_cells(history_db_t *d, uint64_t *n, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(d->db, "SELECT count(*) FROM cells", -1, &st, NULL) != SQLITE_OK)
        return fail(d->db, err, errlen, "counting the cells");
    int rc = sqlite3_step(st);
    sqlite3_int64 v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (v < 0)
        return fail(d->db, err, errlen, "counting the cells");
    *n = (uint64_t)v;
    return 0;
}

/* Meta row key as a day key into *day (dflt when NULL or absent). */
static int load_day(history_db_t *d, const char *key, int32_t dflt, int32_t *day, char *err,
                    size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(d->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return fail(d->db, err, errlen, "reading the table meta");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *day = dflt;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        calperiod_t p;
        if (s == NULL || calperiod_parse(s, strlen(s), &p) != 0 || p.type != CALPERIOD_DAY) {
            snprintf(err, errlen, "the table meta's %s is not a day", key);
            sqlite3_finalize(st);
            return TALLY_EIO;
        }
        *day = p.key;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        return fail(d->db, err, errlen, "reading the table meta");
    }
    sqlite3_finalize(st);
    return 0;
}

int history_db_open_periods(history_db_t *d, int32_t *open_from, int32_t *through, char *err,
                            size_t errlen)
{
    int rc = load_day(d, "open_from", HISTORY_DB_ALL_STORED, open_from, err, errlen);
    return rc != 0 ? rc : load_day(d, "stored_through", HISTORY_DB_NO_DAY, through, err, errlen);
}

/* The journal position, the count of rows (begin) and every row (fn):
 * stops early when job finds the file damaged. */
static int read_rows(history_db_t *d, uint64_t *pos, history_db_begin_fn begin,
                     history_db_row_fn fn, void *ctx, const check_job_t *job, char *err,
                     size_t errlen)
{
    int rc = load_pos(d, pos, err, errlen);
    uint64_t nrows = 0;
    if (rc == 0 && begin != NULL && (rc = count_cells(d, &nrows, err, errlen)) == 0)
        rc = begin(ctx, nrows);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(d->db, "SELECT metric, scope, period, kind, value, event_ms FROM cells",
                           -1, &st, NULL) != SQLITE_OK)
        return fail(d->db, err, errlen, "reading the cells");
    uint32_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((++n & 4095) == 0 && atomic_load_explicit(&job->state, memory_order_relaxed) < 0)
            break; /* damaged: the rows may be anything, even endless */
        history_db_cell_t r;
        r.metric = col_text(st, 0);
        r.scope = col_text(st, 1);
        r.metric_len = strlen(r.metric);
        r.scope_len = strlen(r.scope);
        const char *period = col_text(st, 2);
        const char *kind = col_text(st, 3);
        if (calperiod_parse(period, strlen(period), &r.period) != 0 ||
            (strcmp(kind, "counter") != 0 && strcmp(kind, "gauge") != 0) || r.metric_len == 0 ||
            r.metric_len > HISTORY_DB_NAME_MAX || r.scope_len > HISTORY_DB_NAME_MAX) {
            snprintf(err, errlen, "a row of cells makes no sense: metric '%.64s', period '%.20s'",
                     r.metric, period);
            sqlite3_finalize(st);
            return TALLY_EIO;
        }
        r.gauge = kind[0] == 'g';
        r.has = sqlite3_column_type(st, 4) != SQLITE_NULL;
        r.value = sqlite3_column_int64(st, 4);
        r.event_ms = sqlite3_column_int64(st, 5);
        int frc = fn(ctx, &r);
        if (frc != 0) {
            sqlite3_finalize(st);
            return frc;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return fail(d->db, err, errlen, "reading the cells");
    return 0;
}

int history_db_load(history_db_t *d, uint64_t *pos, history_db_begin_fn begin, history_db_row_fn fn,
                    void *ctx, char *err, size_t errlen)
{
    /* The check runs beside the reading (it took as long as the rows did,
     * a third of the start with 1M series); its verdict is waited for and
     * comes first, so a damaged file is reported as the check failing,
     * whatever the reading did with it, as when the check ran before. */
    check_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return TALLY_ENOMEM;
    const char *path = sqlite3_db_filename(d->db, "main");
    snprintf(job->path, sizeof(job->path), "%s", path ? path : "");
    atomic_init(&job->state, 0);
    uv_thread_t thread;
    bool threaded = uv_thread_create(&thread, check_main, job) == 0;
    if (!threaded)
        check_main(job);
    int rc = atomic_load(&job->state) < 0 ? TALLY_EIO
                                          : read_rows(d, pos, begin, fn, ctx, job, err, errlen);
    if (threaded)
        uv_thread_join(&thread);
    if (atomic_load(&job->state) < 0) {
        snprintf(err, errlen, "%s", job->err);
        rc = TALLY_EIO;
    }
    free(job);
    return rc;
}

static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : rc;
}

/* Store row i of b (and the event time in the row after a gauge's). */
static int put_row(history_db_t *d, const history_batch_t *b, uint32_t i)
{
    const history_row_t *r = &b->rows[i];
    calperiod_t p = {(int)r->type, r->key};
    if (p.type < CALPERIOD_DAY || p.type > CALPERIOD_YEAR)
        return 0; /* not a period: cannot happen */
    struct history_db_names *nm = &d->names[p.type];
    if (!nm->set || nm->key != p.key) {
        int32_t first, last;
        calperiod_days(p, &first, &last);
        nm->set = false;
        if (calperiod_format(p, nm->period, sizeof(nm->period)) < 0 ||
            calperiod_format((calperiod_t){CALPERIOD_DAY, first}, nm->first_day,
                             sizeof(nm->first_day)) < 0)
            return 0; /* outside 2000..2099: cannot happen for a checked time */
        nm->set = true;
        nm->key = p.key;
    }
    const char *metric = b->names + r->names;
    sqlite3_stmt *st = d->put;
    sqlite3_bind_text(st, 1, metric, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, metric + strlen(metric) + 1, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, nm->period, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, calperiod_type_name(p.type), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, nm->first_day, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, r->gauge ? "gauge" : "counter", -1, SQLITE_STATIC);
    if (r->has)
        sqlite3_bind_int64(st, 7, r->value);
    else
        sqlite3_bind_null(st, 7);
    if (r->gauge && r->has && i + 1 < b->nrows && r[1].event)
        sqlite3_bind_int64(st, 8, r[1].value);
    else
        sqlite3_bind_null(st, 8);
    return step_reset(st);
}

/* Order of runs of rows (a run: one series, rows in a row with the same
 * names): by metric name, then township name. */
static int cmp_runs(const void *a, const void *b, void *ctx)
{
    const history_batch_t *bt = ctx;
    const char *x = bt->names + bt->rows[*(const uint32_t *)a].names;
    const char *y = bt->names + bt->rows[*(const uint32_t *)b].names;
    int c = strcmp(x, y);
    return c != 0 ? c : strcmp(x + strlen(x) + 1, y + strlen(y) + 1);
}

/* The first rows of b's runs, sorted in the table's key order, into a new
 * array (*nruns of them); NULL when memory is short (then the rows go in
 * batch order).  In key order a batch reads and writes each page of the
 * table about once; in batch order, through SQLite's small page cache, a
 * batch that touches most series read and wrote a page for nearly every
 * row (a steady load on 800,000 series: 1.2-1.5 times the throughput,
 * bench/README.md, "A new series in the history"). */
static uint32_t *sort_runs(const history_batch_t *b, uint32_t *nruns)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->nrows; i++)
        n += i == 0 || b->rows[i].names != b->rows[i - 1].names;
    uint32_t *first = malloc((size_t)n * sizeof(*first) + 1);
    if (first == NULL)
        return NULL;
    n = 0;
    for (uint32_t i = 0; i < b->nrows; i++)
        if (i == 0 || b->rows[i].names != b->rows[i - 1].names)
            first[n++] = i;
    qsort_r(first, n, sizeof(*first), cmp_runs, (void *)b);
    *nruns = n;
    return first;
}

int history_db_write(history_db_t *d, history_batch_t *b)
{
    b->rc = 0;
    b->err[0] = '\0';
    char *msg = NULL;
    if (sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(b->err, sizeof(b->err), "cannot begin a transaction: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return b->rc = TALLY_EIO;
    }
    int rc = 0;
    char open_from[CALPERIOD_NAME_MAX] = "", through[CALPERIOD_NAME_MAX] = "";
    if (b->open_from != HISTORY_DB_ALL_STORED &&
        calperiod_format((calperiod_t){CALPERIOD_DAY, b->open_from}, open_from, sizeof(open_from)) <
            0)
        open_from[0] = '\0'; /* outside 2000..2099: cannot happen (history.c) */
    if (b->through != HISTORY_DB_NO_DAY &&
        calperiod_format((calperiod_t){CALPERIOD_DAY, b->through}, through, sizeof(through)) < 0)
        through[0] = '\0';
    if (b->drop_open && open_from[0]) {
        sqlite3_bind_text(d->drop, 1, open_from, -1, SQLITE_STATIC);
        rc = step_reset(d->drop);
    }
    uint32_t nruns = 0, *runs = rc == 0 ? sort_runs(b, &nruns) : NULL;
    if (runs == NULL && rc == 0)
        for (uint32_t i = 0; i < b->nrows && rc == 0; i++)
            rc = b->rows[i].event ? 0 : put_row(d, b, i);
    for (uint32_t r = 0; runs != NULL && r < nruns && rc == 0; r++) {
        uint32_t names = b->rows[runs[r]].names;
        for (uint32_t i = runs[r]; i < b->nrows && rc == 0 && b->rows[i].names == names; i++)
            rc = b->rows[i].event ? 0 : put_row(d, b, i);
    }
    free(runs);
    if (rc == 0 && b->prune_before[0]) {
        sqlite3_bind_text(d->prune, 1, b->prune_before, -1, SQLITE_STATIC);
        rc = step_reset(d->prune);
    }
    if (rc == 0) {
        sqlite3_bind_int64(d->setpos, 1, (sqlite3_int64)b->pos);
        rc = step_reset(d->setpos);
    }
    if (rc == 0) {
        if (open_from[0])
            sqlite3_bind_text(d->setopen, 1, open_from, -1, SQLITE_STATIC);
        if (through[0])
            sqlite3_bind_text(d->setopen, 2, through, -1, SQLITE_STATIC);
        rc = step_reset(d->setopen); /* unbound: NULL */
    }
    if (rc == 0 && sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    snprintf(b->err, sizeof(b->err), "cannot store %u cells: %s", b->nrows, sqlite3_errmsg(d->db));
    sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    return b->rc = TALLY_EIO;
}

int history_db_set_aside(const char *dir, char *newname, size_t cap)
{
    static const char *const ext[] = {"", "-wal", "-shm"};
    char from[4200], to[4300];
    long long t = (long long)time(NULL);
    snprintf(newname, cap, "%s.damaged-%lld", HISTORY_DB_FILE, t);
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(from, sizeof(from), "%s/%s%s", dir, HISTORY_DB_FILE, ext[i]);
        snprintf(to, sizeof(to), "%s/%s.damaged-%lld%s", dir, HISTORY_DB_FILE, t, ext[i]);
        if (rename(from, to) != 0 && i == 0)
            rc = TALLY_EIO;
        else if (i > 0)
            remove(from);
    }
    return rc;
}

int history_batch_reserve(history_batch_t *b, uint32_t n)
{
    if (n <= b->cap)
        return 0;
    uint32_t cap = b->cap ? b->cap : 256;
    while (cap < n)
        cap *= 2;
    history_row_t *rows =
        memhint_nofork_resize(b->rows, (size_t)b->cap * sizeof(*rows), (size_t)cap * sizeof(*rows));
    if (rows == NULL)
        return TALLY_ENOMEM;
    b->rows = rows;
    b->cap = cap;
    return 0;
}

int history_batch_names(history_batch_t *b, const char *metric, size_t mlen, const char *scope,
                        size_t slen, uint32_t *off)
{
    uint64_t need = (uint64_t)b->nnames + mlen + slen + 2;
    if (need > UINT32_MAX)
        return TALLY_ENOMEM;
    if (need > b->names_cap) {
        uint32_t cap = b->names_cap ? b->names_cap : 4096;
        while (cap < need)
            cap = cap <= UINT32_MAX / 2 ? cap * 2 : UINT32_MAX;
        char *n = memhint_nofork_resize(b->names, b->names_cap, cap);
        if (n == NULL)
            return TALLY_ENOMEM;
        b->names = n;
        b->names_cap = cap;
    }
    char *p = b->names + b->nnames;
    *off = b->nnames;
    memcpy(p, metric, mlen);
    p[mlen] = '\0';
    memcpy(p + mlen + 1, scope, slen);
    p[mlen + 1 + slen] = '\0';
    b->nnames = (uint32_t)need;
    return 0;
}

void history_batch_free(history_batch_t *b)
{
    memhint_nofork_free(b->rows, (size_t)b->cap * sizeof(*b->rows));
    memhint_nofork_free(b->names, b->names_cap);
    b->rows = NULL;
    b->nrows = b->cap = 0;
    b->names = NULL;
    b->nnames = b->names_cap = 0;
}
