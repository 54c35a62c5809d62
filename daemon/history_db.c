/* history_db.c - the SQLite side of history (see history_db.h). */
#include "history_db.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>
#include <uv.h>

#include "memhint.h"
#include "tally_error.h"

/* Schema 3 (history_db.h).  The statements run in one transaction at
 * every open: a new database gets its tables, one of schema 1 or 2 has
 * its table cells converted (MIGRATE, when cells is a table) and then
 * gets the view that stands in for it. */
static const char *const schema =
    "CREATE TABLE IF NOT EXISTS metrics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS scopes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS figures ("
    " type INTEGER NOT NULL, first_day INTEGER NOT NULL,"
    " metric INTEGER NOT NULL, scope INTEGER NOT NULL, gauge INTEGER NOT NULL,"
    " value INTEGER, event_ms INTEGER,"
    " PRIMARY KEY (type, first_day, metric, scope)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO meta VALUES ('schema', " HISTORY_DB_SCHEMA "), ('journal_pos', 0);";

/* Schema 1 or 2 to 3: the names into their tables, every row of cells
 * into figures with its period as (type, first day), then cells (and its
 * indexes) dropped.  A row whose type or first day is not one (a damaged
 * or hand-edited file) leaves a NULL that the NOT NULL constraints
 * refuse: the conversion fails as a whole and the file is set aside. */
static const char *const migrate =
    "INSERT OR IGNORE INTO metrics (name) SELECT DISTINCT metric FROM cells ORDER BY metric;"
    "INSERT OR IGNORE INTO scopes (name) SELECT DISTINCT scope FROM cells ORDER BY scope;"
    "INSERT OR REPLACE INTO figures"
    " SELECT CASE c.type WHEN 'day' THEN 0 WHEN 'month' THEN 1 WHEN 'quarter' THEN 2"
    "  WHEN 'year' THEN 3 END,"
    " CAST(round(julianday(c.first_day) - 2440587.5) AS INTEGER), m.id, s.id,"
    " c.kind = 'gauge', c.value, c.event_ms"
    " FROM cells c JOIN metrics m ON m.name = c.metric JOIN scopes s ON s.name = c.scope;"
    "DROP TABLE cells;"
    "INSERT OR REPLACE INTO meta VALUES ('schema', " HISTORY_DB_SCHEMA ");";

/* The rows as schemas 1 and 2 had them, for sqlite3(1) and scripts. */
#define DAY_TIME "f.first_day * 86400, 'unixepoch'"
static const char *const view =
    "CREATE VIEW IF NOT EXISTS cells (metric, scope, period, type, first_day, kind, value,"
    " event_ms) AS SELECT m.name, s.name,"
    " CASE f.type WHEN 0 THEN date(" DAY_TIME ")"
    "  WHEN 1 THEN strftime('%Y-%m', " DAY_TIME ")"
    "  WHEN 2 THEN strftime('%Y', " DAY_TIME ") || '-Q' ||"
    "   ((CAST(strftime('%m', " DAY_TIME ") AS INTEGER) + 2) / 3)"
    "  ELSE strftime('%Y', " DAY_TIME ") END,"
    " CASE f.type WHEN 0 THEN 'day' WHEN 1 THEN 'month' WHEN 2 THEN 'quarter' ELSE 'year' END,"
    " date(" DAY_TIME "), CASE WHEN f.gauge THEN 'gauge' ELSE 'counter' END,"
    " f.value, f.event_ms"
    " FROM figures f JOIN metrics m ON m.id = f.metric JOIN scopes s ON s.id = f.scope;";

/* The meta rows of open periods (history_db.h). */
#define SET_OPEN "INSERT OR REPLACE INTO meta VALUES ('open_from', ?1), ('stored_through', ?2)"
/* The first day the retention has not dropped (history_db.h). */
#define SET_KEPT "INSERT OR REPLACE INTO meta VALUES ('kept_from', ?1)"
/* The months, quarters and years from day ?1 on. */
#define DROP_OPEN "DELETE FROM figures WHERE type IN (1, 2, 3) AND first_day >= ?1"

/* What an SQLite result code says of the file (history_db.h): damaged
 * when its bytes or its schema are not what tallyd writes (SQLite found
 * them malformed, or refused tallyd's own statements and a conversion's
 * rows); else it could not be read or written now (a full disk, an I/O
 * error, no permission, a lock held past the wait, no memory, or a code
 * SQLite may add later), which says nothing of the file.  Damaged sets
 * the file aside and loses the closed periods the journal no longer
 * holds; the other answer stops a start, and the next one, with the cause
 * gone, loses nothing: when in doubt, that one. */
static int verdict(int code)
{
    switch (code & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
    case SQLITE_ERROR:      /* tallyd's statements refused: tables not of its schema */
    case SQLITE_CONSTRAINT: /* a conversion's row that does not fit */
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
        return TALLY_EDAMAGED;
    default:
        return TALLY_EIO;
    }
}

/* The errno of the last system call that failed on db's file or its
 * write-ahead log (0: none).  SQLite reports a read the disk failed (EIO)
 * as SQLITE_CORRUPT, "database disk image is malformed", like a page it
 * read and found wrong; only this tells them apart. */
static int read_errno(sqlite3 *db)
{
    int e = 0;
    sqlite3_file *wal = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_LAST_ERRNO, &e) == SQLITE_OK && e != 0)
        return e;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) != SQLITE_OK ||
        wal == NULL || wal->pMethods == NULL ||
        wal->pMethods->xFileControl(wal, SQLITE_FCNTL_LAST_ERRNO, &e) != SQLITE_OK)
        return 0;
    return e;
}

/* "what: msg" into err, msg being what SQLite said of the failure code
 * on db (NULL when it could not even be opened: out of memory); the
 * verdict of code, TALLY_EIO for a read the disk failed. */
static int failed(sqlite3 *db, int code, const char *msg, char *err, size_t errlen,
                  const char *what)
{
    int e = db != NULL && (code & 0xff) == SQLITE_CORRUPT ? read_errno(db) : 0;
    if (e != 0) {
        snprintf(err, errlen, "%s: a read failed: %s", what, strerror(e));
        return TALLY_EIO;
    }
    snprintf(err, errlen, "%s: %s", what, msg);
    return verdict(code);
}

/* The same for code, just returned by a call on db. */
static int fail_code(sqlite3 *db, int code, char *err, size_t errlen, const char *what)
{
    return failed(db, code, db ? sqlite3_errmsg(db) : sqlite3_errstr(code), err, errlen, what);
}

/* The same for the last call on db that failed (NULL: out of memory). */
static int fail(sqlite3 *db, char *err, size_t errlen, const char *what)
{
    return fail_code(db, db ? sqlite3_extended_errcode(db) : SQLITE_NOMEM, err, errlen, what);
}

void history_db_close(history_db_t *d)
{
    sqlite3_finalize(d->put);
    sqlite3_finalize(d->prune);
    sqlite3_finalize(d->setpos);
    sqlite3_finalize(d->setopen);
    sqlite3_finalize(d->setkept);
    sqlite3_finalize(d->drop);
    for (int k = 0; k < 2; k++) {
        sqlite3_finalize(d->names[k].find);
        sqlite3_finalize(d->names[k].add);
        free(d->names[k].ids);
    }
    if (d->db)
        sqlite3_close(d->db);
    memset(d, 0, sizeof(*d));
}

/* The tables, the conversion of an older schema and the view, in one
 * transaction.  Returns an SQLite code (*msg set by sqlite3_exec()). */
static int set_up(sqlite3 *db, char **msg)
{
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, msg);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_exec(db, schema, NULL, NULL, msg);
    sqlite3_stmt *st = NULL;
    bool old = false;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cells'", -1, &st,
            NULL);
    if (rc == SQLITE_OK) {
        int step = sqlite3_step(st);
        old = step == SQLITE_ROW;
        rc = step == SQLITE_ROW || step == SQLITE_DONE ? SQLITE_OK : step;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && old)
        rc = sqlite3_exec(db, migrate, NULL, NULL, msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, view, NULL, NULL, msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, msg);
    if (rc != SQLITE_OK) {
        if (*msg == NULL)
            *msg = sqlite3_mprintf("%s", sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

/* TALLY_EIO with a sentence when path is there but is not a file SQLite
 * could open as a database (a directory, a device, a symbolic link to
 * nothing), which SQLite reports only as an I/O error; 0 otherwise. */
static int not_a_file(const char *path, char *err, size_t errlen)
{
    struct stat st, lst;
    if (stat(path, &st) == 0) {
        if (S_ISREG(st.st_mode))
            return 0;
        snprintf(err, errlen, "%s is %s, not a file: move it out of the way", path,
                 S_ISDIR(st.st_mode) ? "a directory" : "a special file");
        return TALLY_EIO;
    }
    if (errno == ENOENT && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
        snprintf(err, errlen, "%s is a symbolic link to a file that does not exist", path);
        return TALLY_EIO;
    }
    return 0;
}

int history_db_open(history_db_t *d, const char *dir, char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, HISTORY_DB_FILE);
    if (not_a_file(path, err, errlen) != 0)
        return TALLY_EIO;
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
                          "PRAGMA busy_timeout=5000;"
                          "PRAGMA journal_size_limit=" HISTORY_DB_WAL_LIMIT ";",
                          NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = set_up(d->db, &msg);
    if (rc != SQLITE_OK) {
        rc = failed(d->db, rc,
                    msg     ? msg
                    : d->db ? sqlite3_errmsg(d->db)
                            : sqlite3_errstr(rc),
                    err, errlen, "opening it");
        sqlite3_free(msg);
        history_db_close(d);
        return rc;
    }
    const char *put = "INSERT OR REPLACE INTO figures VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    static const char *const names_sql[2][2] = {
        {"SELECT id FROM metrics WHERE name = ?1", "INSERT INTO metrics (name) VALUES (?1)"},
        {"SELECT id FROM scopes WHERE name = ?1", "INSERT INTO scopes (name) VALUES (?1)"}};
    for (int k = 0; k < 2; k++)
        if (sqlite3_prepare_v2(d->db, names_sql[k][0], -1, &d->names[k].find, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(d->db, names_sql[k][1], -1, &d->names[k].add, NULL) != SQLITE_OK) {
            rc = fail(d->db, err, errlen, "preparing its statements");
            history_db_close(d);
            return rc;
        }
    const char *prune = HISTORY_DB_PRUNE;
    const char *setpos = "UPDATE meta SET value = ?1 WHERE key = 'journal_pos'";
    if (sqlite3_prepare_v2(d->db, put, -1, &d->put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db, prune, -1, &d->prune, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db, setpos, -1, &d->setpos, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db, SET_OPEN, -1, &d->setopen, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db, DROP_OPEN, -1, &d->drop, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->db, SET_KEPT, -1, &d->setkept, NULL) != SQLITE_OK) {
        rc = fail(d->db, err, errlen, "preparing its statements");
        history_db_close(d);
        return rc;
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
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rc = fail_code(d->db, rc, err, errlen, "reading the journal position");
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_int64 v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (v < 0) {
        snprintf(err, errlen, "the table meta has no valid journal_pos");
        return TALLY_EDAMAGED;
    }
    *pos = (uint64_t)v;
    return 0;
}

/* Whether a problem quick_check reports is a page it could not read
 * rather than one it read and found wrong: SQLite reports a failed read
 * of a b-tree page as "unable to get the page. error code=N" (N
 * SQLITE_CORRUPT when the page number itself is wrong), of an overflow
 * or free-list page as "failed to get page N", among the rows, instead
 * of failing. */
static bool unread_page(const char *t)
{
    static const char code[] = "unable to get the page. error code=";
    for (const char *p = t; (p = strstr(p, code)) != NULL; p += sizeof(code) - 1)
        if (verdict(atoi(p + sizeof(code) - 1)) != TALLY_EDAMAGED)
            return true;
    return strstr(t, "failed to get page") != NULL;
}

/* PRAGMA quick_check: 0 when the file is sound, TALLY_EDAMAGED when it
 * found it damaged, TALLY_EIO when a page could not be read (the verdict
 * then waits for a reading that works), with a sentence in err. */
static int quick_check(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK)
        return fail(db, err, errlen, "checking the database");
    int rc, found = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (t != NULL && strcmp(t, "ok") == 0)
            continue;
        int v = t == NULL || unread_page(t) ? TALLY_EIO : TALLY_EDAMAGED;
        if (found == 0 || (v == TALLY_EIO && found != TALLY_EIO)) {
            found = v;
            snprintf(err, errlen, "the database check failed: %s", t ? t : "out of memory");
        }
    }
    if (rc != SQLITE_DONE && found != TALLY_EIO) {
        /* The rows it gave say more of damage than the code it stopped
         * with ("database disk image is malformed"), unless that code
         * says a read failed. */
        char why[512];
        int v = fail_code(db, rc, why, sizeof(why), "checking the database");
        if (found == 0 || v == TALLY_EIO) {
            found = v;
            snprintf(err, errlen, "%s", why);
        }
    }
    int e = found == TALLY_EDAMAGED ? read_errno(db) : 0;
    if (e != 0) { /* what it found wrong, it may not have read */
        snprintf(err, errlen, "checking the database: a read failed: %s", strerror(e));
        found = TALLY_EIO;
    }
    for (char *p = err; found != 0 && *p; p++)
        if (*p == '\n') /* SQLite's lines, as one: a log line, a message */
            *p = ' ';
    sqlite3_finalize(st);
    return found;
}

/* PRAGMA quick_check on a connection of its own, in a thread of its own
 * while the loop thread reads the rows (each takes about as long). */
typedef struct check_job {
    char path[4200];
    atomic_int state; /* 0 running, 1 the file is sound, -1 not */
    int rc;           /* once state is -1: TALLY_EDAMAGED or TALLY_EIO */
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
        rc = fail(db, j->err, sizeof(j->err), "checking the database");
    sqlite3_close(db);
    j->rc = rc;
    atomic_store(&j->state, rc == 0 ? 1 : -1);
}

/* "file:" and path as a URI (RFC 3986's unreserved characters and '/'
 * as they are, anything else %-escaped), with query; 0 or -1 when buf is
 * too small. */
static int file_uri(char *buf, size_t cap, const char *path, const char *query)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const char *p = "file:"; *p && n < cap; p++)
        buf[n++] = *p;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("/-._~", *p) != NULL;
        if (n + 3 >= cap)
            return -1;
        if (plain) {
            buf[n++] = (char)*p;
        } else {
            buf[n++] = '%';
            buf[n++] = hex[*p >> 4];
            buf[n++] = hex[*p & 15];
        }
    }
    int len = snprintf(buf + n, cap - n, "%s", query);
    return len >= 0 && (size_t)len < cap - n ? 0 : -1;
}

int history_db_check_file(const char *dir, uint64_t *cells, char *err, size_t errlen)
{
    char path[4200], uri[3 * sizeof(path) + 32];
    snprintf(path, sizeof(path), "%s/%s", dir, HISTORY_DB_FILE);
    if (not_a_file(path, err, errlen) != 0)
        return TALLY_EIO;
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        snprintf(err, errlen, "%s: no such file", path);
        return TALLY_EINVAL;
    }
    if (file_uri(uri, sizeof(uri), path, "?immutable=1") != 0) {
        snprintf(err, errlen, "%s: the path is too long", path);
        return TALLY_EIO;
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) == SQLITE_OK
                 ? quick_check(db, err, errlen)
                 : fail(db, err, errlen, "opening it");
    /* A start creates the tables a database lacks: none is no damage. */
    sqlite3_stmt *q = NULL;
    *cells = 0;
    if (rc == 0 &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'figures'", -1, &q,
                           NULL) != SQLITE_OK)
        rc = fail(db, err, errlen, "reading its schema");
    bool figures = rc == 0 && sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) > 0;
    sqlite3_finalize(q);
    q = NULL;
    if (figures &&
        (sqlite3_prepare_v2(db, "SELECT count(*) FROM figures", -1, &q, NULL) != SQLITE_OK ||
         sqlite3_step(q) != SQLITE_ROW))
        rc = fail(db, err, errlen, "counting its figures");
    else if (figures)
        *cells = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    if (rc != 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "%s: %s", path, why);
    }
    return rc; /* 0, TALLY_EDAMAGED or TALLY_EIO, as a start would judge it */
}

/* The number of rows of figures into *n. */
static int count_cells(history_db_t *d, uint64_t *n, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(d->db, "SELECT count(*) FROM figures", -1, &st, NULL) != SQLITE_OK)
        return fail(d->db, err, errlen, "counting the cells");
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        rc = fail_code(d->db, rc, err, errlen, "counting the cells");
        sqlite3_finalize(st);
        return rc;
    }
    *n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
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
        if (s == NULL) { /* out of memory */
            sqlite3_finalize(st);
            return fail_code(NULL, SQLITE_NOMEM, err, errlen, "reading the table meta");
        }
        if (calperiod_parse(s, strlen(s), &p) != 0 || p.type != CALPERIOD_DAY) {
            snprintf(err, errlen, "the table meta's %s is not a day", key);
            sqlite3_finalize(st);
            return TALLY_EDAMAGED;
        }
        *day = p.key;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rc = fail_code(d->db, rc, err, errlen, "reading the table meta");
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_finalize(st);
    return 0;
}

int history_db_open_periods(history_db_t *d, int32_t *open_from, int32_t *through,
                            int32_t *kept_from, char *err, size_t errlen)
{
    int rc = load_day(d, "open_from", HISTORY_DB_ALL_STORED, open_from, err, errlen);
    if (rc == 0)
        rc = load_day(d, "stored_through", HISTORY_DB_NO_DAY, through, err, errlen);
    return rc != 0 ? rc : load_day(d, "kept_from", HISTORY_DB_NO_DAY, kept_from, err, errlen);
}

/* The names of a table of them (metrics or scopes), by id. */
typedef struct name_table {
    char *text;      /* the names, each NUL-terminated */
    uint32_t *at;    /* at[id]: offset of id's name + 1, 0: no such id */
    uint32_t n;      /* ids 0..n-1 */
    size_t len, cap; /* of text */
} name_table_t;

#define NAME_IDS_MAX (1u << 24) /* ids beyond: the table makes no sense */

static void names_free(name_table_t *t)
{
    free(t->text);
    free(t->at);
    memset(t, 0, sizeof(*t));
}

/* Read table (metrics or scopes) into t.  Names of 1..64 bytes, or 0 for
 * scopes ('' the county); ids 0..NAME_IDS_MAX. */
static int names_read(history_db_t *d, const char *table, bool empty_ok, name_table_t *t, char *err,
                      size_t errlen)
{
    char sql[64];
    snprintf(sql, sizeof(sql), "SELECT max(id) FROM %s", table);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
        return fail(d->db, err, errlen, "reading the names");
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        rc = fail_code(d->db, rc, err, errlen, "reading the names");
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_int64 max = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (max < 0 || max >= NAME_IDS_MAX) {
        snprintf(err, errlen, "the table %s has an id out of range (%lld)", table, (long long)max);
        return TALLY_EDAMAGED;
    }
    t->n = (uint32_t)max + 1;
    t->at = calloc(t->n, sizeof(*t->at));
    if (t->at == NULL)
        return TALLY_ENOMEM;
    snprintf(sql, sizeof(sql), "SELECT id, name FROM %s", table);
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
        return fail(d->db, err, errlen, "reading the names");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_int64 id = sqlite3_column_int64(st, 0);
        const unsigned char *name = sqlite3_column_text(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        if (id < 0 || id > max || name == NULL || len > HISTORY_DB_NAME_MAX ||
            (len == 0 && !empty_ok) || strlen((const char *)name) != len) {
            snprintf(err, errlen, "a row of the table %s makes no sense: id %lld", table,
                     (long long)id);
            sqlite3_finalize(st);
            return TALLY_EDAMAGED;
        }
        if (t->len + len + 1 > t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 4096;
            char *text = realloc(t->text, cap);
            if (text == NULL) {
                sqlite3_finalize(st);
                return TALLY_ENOMEM;
            }
            t->text = text;
            t->cap = cap;
        }
        memcpy(t->text + t->len, name, len + 1);
        t->at[id] = (uint32_t)t->len + 1;
        t->len += len + 1;
    }
    rc = rc == SQLITE_DONE ? 0 : fail_code(d->db, rc, err, errlen, "reading the names");
    sqlite3_finalize(st);
    return rc;
}

/* The name of id in t (length into *len), NULL when there is none. */
static const char *name_of(const name_table_t *t, sqlite3_int64 id, size_t *len)
{
    if (id < 0 || id >= t->n || t->at[id] == 0)
        return NULL;
    const char *s = t->text + t->at[id] - 1;
    *len = strlen(s);
    return s;
}

/* Row st of figures as r; false when it makes no sense. */
static bool figure_row(sqlite3_stmt *st, const name_table_t *metrics, const name_table_t *scopes,
                       history_db_cell_t *r)
{
    int32_t lo = calperiod_days_from_civil(CALPERIOD_YEAR_MIN, 1, 1);
    int32_t hi = calperiod_days_from_civil(CALPERIOD_YEAR_MAX, 12, 31);
    for (int i = 0; i < 5; i++)
        if (sqlite3_column_type(st, i) != SQLITE_INTEGER)
            return false; /* not a number: not read as 0 */
    sqlite3_int64 type = sqlite3_column_int64(st, 0), day = sqlite3_column_int64(st, 1);
    sqlite3_int64 metric = sqlite3_column_int64(st, 2), scope = sqlite3_column_int64(st, 3);
    sqlite3_int64 gauge = sqlite3_column_int64(st, 4);
    if (type < CALPERIOD_DAY || type > CALPERIOD_YEAR || day < lo || day > hi ||
        (gauge != 0 && gauge != 1))
        return false;
    r->period = calperiod_of_day((int)type, (int32_t)day);
    int32_t first, last;
    calperiod_days(r->period, &first, &last);
    r->metric = name_of(metrics, metric, &r->metric_len);
    r->scope = name_of(scopes, scope, &r->scope_len);
    if (first != day || r->metric == NULL || r->scope == NULL)
        return false;
    r->metric_id = (uint32_t)metric;
    r->scope_id = (uint32_t)scope;
    r->gauge = gauge == 1;
    r->has = sqlite3_column_type(st, 5) != SQLITE_NULL;
    r->value = sqlite3_column_int64(st, 5);
    r->event_ms = sqlite3_column_int64(st, 6);
    return true;
}

/* The journal position, the count of rows (begin) and every row (fn):
 * stops early when job finds the file damaged. */
static int read_rows(history_db_t *d, uint64_t *pos, history_db_begin_fn begin,
                     history_db_row_fn fn, void *ctx, const check_job_t *job, char *err,
                     size_t errlen)
{
    int rc = load_pos(d, pos, err, errlen);
    uint64_t nrows = 0;
    name_table_t metrics = {0}, scopes = {0};
    if (rc == 0)
        rc = names_read(d, "metrics", false, &metrics, err, errlen);
    if (rc == 0)
        rc = names_read(d, "scopes", true, &scopes, err, errlen);
    if (rc == 0 && begin != NULL && (rc = count_cells(d, &nrows, err, errlen)) == 0)
        rc = begin(ctx, nrows);
    sqlite3_stmt *st = NULL;
    if (rc == 0 && sqlite3_prepare_v2(d->db,
                                      "SELECT type, first_day, metric, scope, gauge, value, "
                                      "event_ms FROM figures",
                                      -1, &st, NULL) != SQLITE_OK)
        rc = fail(d->db, err, errlen, "reading the cells");
    uint32_t n = 0;
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((++n & 4095) == 0 && atomic_load_explicit(&job->state, memory_order_relaxed) < 0)
            break; /* damaged: the rows may be anything, even endless */
        history_db_cell_t r;
        if (!figure_row(st, &metrics, &scopes, &r)) {
            snprintf(err, errlen,
                     "a row of figures makes no sense: type %lld, first_day %lld, metric %lld, "
                     "scope %lld",
                     (long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 1),
                     (long long)sqlite3_column_int64(st, 2),
                     (long long)sqlite3_column_int64(st, 3));
            rc = TALLY_EDAMAGED;
            break;
        }
        rc = fn(ctx, &r);
    }
    if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = fail_code(d->db, step, err, errlen, "reading the cells");
    sqlite3_finalize(st);
    names_free(&metrics);
    names_free(&scopes);
    return rc;
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
    int rc = atomic_load(&job->state) < 0 ? job->rc
                                          : read_rows(d, pos, begin, fn, ctx, job, err, errlen);
    if (threaded)
        uv_thread_join(&thread);
    if (atomic_load(&job->state) < 0) {
        snprintf(err, errlen, "%s", job->err);
        rc = job->rc;
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

/* The series' ids and names at offset off of b's names
 * (history_batch_names()). */
typedef struct series_names {
    uint32_t id[2];      /* the process's: metric, township (0: the county) */
    const char *name[2]; /* metric, scope ("" for the county) */
} series_names_t;

static series_names_t series_at(const history_batch_t *b, uint32_t off)
{
    series_names_t s;
    memcpy(s.id, b->names + off, sizeof(s.id));
    s.name[0] = b->names + off + sizeof(s.id);
    s.name[1] = s.name[0] + strlen(s.name[0]) + 1;
    return s;
}

/* The id in the table metrics (k 0) or scopes (k 1) of the name the
 * process calls pid, looked up or added the first time.  Returns 0, or
 * an SQLite code. */
static int name_id(history_db_t *d, int k, uint32_t pid, const char *name, uint32_t *out)
{
    struct history_db_ids *t = &d->names[k];
    if (pid < t->cap && t->ids[pid] != 0) {
        *out = t->ids[pid];
        return 0;
    }
    if (history_ids_room(&t->ids, &t->cap, pid) != 0)
        return SQLITE_NOMEM;
    sqlite3_bind_text(t->find, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(t->find);
    sqlite3_int64 id = rc == SQLITE_ROW ? sqlite3_column_int64(t->find, 0) : 0;
    sqlite3_reset(t->find);
    sqlite3_clear_bindings(t->find);
    if (rc == SQLITE_DONE) {
        sqlite3_bind_text(t->add, 1, name, -1, SQLITE_STATIC);
        rc = step_reset(t->add);
        if (rc != 0)
            return rc;
        id = sqlite3_last_insert_rowid(d->db);
    } else if (rc != SQLITE_ROW) {
        return rc;
    }
    if (id <= 0 || id >= NAME_IDS_MAX)
        return SQLITE_FULL; /* the loading would refuse it */
    *out = t->ids[pid] = (uint32_t)id;
    return 0;
}

/* A batch's run of rows (one series, rows in a row with the same names):
 * its first row and its ids in the database. */
typedef struct run {
    uint32_t first, metric, scope;
} run_t;

static int cmp_runs(const void *a, const void *b)
{
    const run_t *x = a, *y = b;
    if (x->metric != y->metric)
        return x->metric < y->metric ? -1 : 1;
    return x->scope < y->scope ? -1 : x->scope > y->scope;
}

/* The runs of b with their ids in the database (names new to it added),
 * sorted in the key's order, into a new array (*nruns of them).  In key
 * order a batch writes the rows of a period one after the other, each
 * page of the table once.  Returns 0, or an SQLite code. */
static int sort_runs(history_db_t *d, const history_batch_t *b, run_t **out, uint32_t *nruns)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->nrows; i++)
        n += i == 0 || b->rows[i].names != b->rows[i - 1].names;
    run_t *runs = malloc((size_t)n * sizeof(*runs) + 1);
    if (runs == NULL)
        return SQLITE_NOMEM;
    n = 0;
    int rc = 0;
    for (uint32_t i = 0; i < b->nrows && rc == 0; i++) {
        if (i > 0 && b->rows[i].names == b->rows[i - 1].names)
            continue;
        series_names_t s = series_at(b, b->rows[i].names);
        run_t *r = &runs[n++];
        r->first = i;
        rc = name_id(d, 0, s.id[0], s.name[0], &r->metric);
        if (rc == 0)
            rc = name_id(d, 1, s.id[1], s.name[1], &r->scope);
    }
    if (rc != 0) {
        free(runs);
        return rc;
    }
    qsort(runs, n, sizeof(*runs), cmp_runs);
    *out = runs;
    *nruns = n;
    return 0;
}

/* Store row i of b, of run r (and the event time in the row after a
 * gauge's). */
static int put_row(history_db_t *d, const history_batch_t *b, const run_t *r, uint32_t i)
{
    const history_row_t *row = &b->rows[i];
    calperiod_t p = {(int)row->type, row->key};
    if (p.type < CALPERIOD_DAY || p.type > CALPERIOD_YEAR)
        return 0; /* not a period: cannot happen */
    int32_t first, last;
    calperiod_days(p, &first, &last);
    sqlite3_stmt *st = d->put;
    sqlite3_bind_int(st, 1, p.type);
    sqlite3_bind_int(st, 2, first);
    sqlite3_bind_int64(st, 3, r->metric);
    sqlite3_bind_int64(st, 4, r->scope);
    sqlite3_bind_int(st, 5, row->gauge);
    if (row->has)
        sqlite3_bind_int64(st, 6, row->value);
    else
        sqlite3_bind_null(st, 6);
    if (row->gauge && row->has && i + 1 < b->nrows && row[1].event)
        sqlite3_bind_int64(st, 7, row[1].value);
    else
        sqlite3_bind_null(st, 7);
    return step_reset(st);
}

/* After a transaction that did not commit: the ids it gave names are
 * gone with it. */
static void forget_ids(history_db_t *d)
{
    for (int k = 0; k < 2; k++)
        if (d->names[k].ids != NULL)
            memset(d->names[k].ids, 0, (size_t)d->names[k].cap * sizeof(*d->names[k].ids));
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
        sqlite3_bind_int(d->drop, 1, b->open_from);
        rc = step_reset(d->drop);
    }
    uint32_t nruns = 0;
    run_t *runs = NULL;
    if (rc == 0)
        rc = sort_runs(d, b, &runs, &nruns);
    for (uint32_t r = 0; r < nruns && rc == 0; r++) {
        /* In key order a run's rows lie anywhere in the batch: with many
         * series each run's first row was a cache miss of its own. */
        if (r + 8 < nruns)
            __builtin_prefetch(&b->rows[runs[r + 8].first]);
        uint32_t names = b->rows[runs[r].first].names;
        for (uint32_t i = runs[r].first; i < b->nrows && rc == 0 && b->rows[i].names == names; i++)
            rc = b->rows[i].event ? 0 : put_row(d, b, &runs[r], i);
    }
    free(runs);
    if (rc == 0 && b->prune) {
        sqlite3_bind_int(d->prune, 1, b->first_day);
        rc = step_reset(d->prune);
        /* What was dropped does not come back when the days kept are
         * raised later: from here on those days read as no longer kept. */
        char kept[CALPERIOD_NAME_MAX];
        if (rc == 0 &&
            calperiod_format((calperiod_t){CALPERIOD_DAY, b->first_day}, kept, sizeof(kept)) >= 0) {
            sqlite3_bind_text(d->setkept, 1, kept, -1, SQLITE_TRANSIENT);
            rc = step_reset(d->setkept);
        }
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
    snprintf(b->err, sizeof(b->err), "cannot store %u cells: %s", b->nrows,
             rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(d->db));
    sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    forget_ids(d);
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

int history_ids_room(uint32_t **ids, uint32_t *cap, uint32_t i)
{
    if (i < *cap)
        return 0;
    if (i >= UINT32_MAX / 2)
        return TALLY_ENOMEM;
    uint32_t n = *cap ? *cap : 64;
    while (n <= i)
        n *= 2;
    uint32_t *a = realloc(*ids, (size_t)n * sizeof(*a));
    if (a == NULL)
        return TALLY_ENOMEM;
    memset(a + *cap, 0, (size_t)(n - *cap) * sizeof(*a));
    *ids = a;
    *cap = n;
    return 0;
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

int history_batch_names(history_batch_t *b, uint32_t metric_id, uint32_t town_id,
                        const char *metric, size_t mlen, const char *scope, size_t slen,
                        uint32_t *off)
{
    uint32_t ids[2] = {metric_id, town_id};
    uint64_t need = (uint64_t)b->nnames + sizeof(ids) + mlen + slen + 2;
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
    memcpy(p, ids, sizeof(ids));
    p += sizeof(ids);
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
