/* history_db.h - the SQLite database of closed periods, history.db in the
 * state directory: one row per (period, metric, scope), and the journal
 * position the rows reflect.  The schema (tallyd(8), HISTORY), version 3:
 *
 *   CREATE TABLE metrics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
 *   CREATE TABLE scopes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
 *     -- scope '' is the county, the others are townships
 *   CREATE TABLE figures (
 *     type      INTEGER NOT NULL, -- 0 day, 1 month, 2 quarter, 3 year
 *     first_day INTEGER NOT NULL, -- the period's first day, days since 1970-01-01
 *     metric    INTEGER NOT NULL, -- metrics.id
 *     scope     INTEGER NOT NULL, -- scopes.id
 *     gauge     INTEGER NOT NULL, -- 0 counter, 1 gauge
 *     value     INTEGER,          -- NULL: a gauge without a value there
 *     event_ms  INTEGER,          -- gauge: event time of the value
 *     PRIMARY KEY (type, first_day, metric, scope)) WITHOUT ROWID;
 *   CREATE VIEW cells (metric, scope, period, type, first_day, kind, value,
 *     event_ms) AS ...  -- the names and texts of schemas 1 and 2
 *   CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
 *     -- 'schema' 3, 'journal_pos' the last journal position reflected,
 *     -- 'open_from' and 'stored_through' (below), 'kept_from' the first
 *     -- day not dropped by the retention ([history] days) so far
 *
 * Why integers, in this order.  The rows a batch writes are today's (and
 * late figures' days): in period order they are neighbours at the end of
 * their period's stretch of the table, so a batch writes a few pages
 * instead of one page per changed series among years of its days; a row
 * is about 20 bytes instead of 70 to 110 of names and texts; comparing
 * keys compares integers.  Schemas 1 and 2 (a table cells keyed by the
 * texts (metric, scope, period)) are converted in one transaction when
 * the database is opened; the view cells keeps their queries working.
 *
 * Open periods (schema 2 on).  A month, quarter or year that begins on or
 * after the day 'open_from' has no row until it has ended before the day
 * 'stored_through' (the local day of the last transaction): until then
 * its value is that of its days, which are all rows (a counter's the sum
 * of its days', a township's gauge its latest-stamped day's, the county's
 * gauge the sum of its townships').  Storing a changed series then takes
 * one row, its day's, instead of four.  'open_from' NULL (or absent, as
 * in schema 1): every period is a row.
 *
 * The database is in WAL mode: readers (sqlite3, an analyst's script) may
 * read while tallyd writes and see whole transactions only.
 *
 * The functions here do no locking of their own: one thread at a time
 * uses a history_db_t (the loop thread to open and load it, then the
 * history writer thread, then the loop thread again to close it).
 */
#ifndef TALLYD_HISTORY_DB_H
#define TALLYD_HISTORY_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "calperiod.h"

#define HISTORY_DB_FILE "history.db"

#define HISTORY_DB_SCHEMA "3" /* meta 'schema' of what this version writes */

/* How a batch drops the days before ?1 (a day key): a stretch at the
 * start of the day rows in the primary key's order. */
#define HISTORY_DB_PRUNE "DELETE FROM figures WHERE type = 0 AND first_day < ?1"

/* Bytes the write-ahead log is cut back to when SQLite starts it over
 * after a checkpoint: a large transaction (a conversion, the batch of
 * every series after a start) leaves no file of its size behind. */
#define HISTORY_DB_WAL_LIMIT "67108864"

#define HISTORY_DB_NAME_MAX 64 /* bytes of a metric or township name (PROTOCOL.md 9.1) */

#define HISTORY_DB_ALL_STORED INT32_MAX /* open_from: every period is a row */
#define HISTORY_DB_NO_DAY     INT32_MIN /* stored_through: none yet */

/* A row of a batch: 16 bytes, for a batch may hold millions (every
 * series' cells, after a start or a load that creates series).  A
 * gauge's row is followed by a row (event set) whose value is the event
 * time of the gauge's value.  Rows of one series come one after the
 * other, naming the same names. */
typedef struct history_row {
    int64_t value;
    uint32_t names;    /* offset in the batch's names of the series' names
                        * (history_batch_names()) */
    signed key : 24;   /* the period's key (calperiod.h) */
    unsigned type : 2; /* enum calperiod_type */
    unsigned gauge : 1;
    unsigned has : 1;   /* 0: value NULL */
    unsigned event : 1; /* the event time of the gauge's row before it */
} history_row_t;

/* What the writer stores in one transaction. */
typedef struct history_batch {
    history_row_t *rows;
    uint32_t nrows, cap;
    char *names; /* the series' ids and names the rows point to, by offset */
    uint32_t nnames, names_cap;
    uint64_t pos;      /* the journal position the database holds after it */
    bool prune;        /* drop the days before first_day */
    int32_t first_day; /* a day key */
    int32_t open_from; /* day key, or HISTORY_DB_ALL_STORED: meta 'open_from' after it */
    int32_t through;   /* day key, or HISTORY_DB_NO_DAY: meta 'stored_through' after it */
    bool drop_open;    /* first drop the months, quarters and years from open_from on */
    int rc;            /* out: 0 or TALLY_EIO */
    char err[256];     /* out: why it failed */
} history_batch_t;

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;

typedef struct history_db {
    sqlite3 *db;
    sqlite3_stmt *put, *prune, *setpos, *setopen, *drop, *setkept;
    /* The ids in the tables metrics (0) and scopes (1) of the names the
     * process knows by its own ids (history_batch_names()): ids[k][i] the
     * row id of the name of id i, 0 when not looked up yet. */
    struct history_db_ids {
        sqlite3_stmt *find, *add;
        uint32_t *ids;
        uint32_t cap;
    } names[2];
} history_db_t;

/* A row of cells as history_db_load() hands it over: the names point
 * into SQLite's row (no copies), NUL-terminated, valid during the call
 * only. */
typedef struct history_db_cell {
    const char *metric; /* 1..64 bytes */
    const char *scope;  /* "" for the county, else 1..64 bytes */
    size_t metric_len, scope_len;
    uint32_t metric_id, scope_id; /* their ids in the database: rows with the same
                                   * ids name the same series */
    calperiod_t period;
    bool gauge;
    bool has; /* false: value NULL */
    int64_t value;
    int64_t event_ms;
} history_db_cell_t;

/* Called for each row by history_db_load().  Return 0 to go on, a
 * negative code to stop. */
typedef int (*history_db_row_fn)(void *ctx, const history_db_cell_t *row);

/* Called by history_db_load() once, before the rows, with their number
 * (for sizing; a writer elsewhere may change it before the rows are
 * read).  Return 0 to go on, a negative code to stop. */
typedef int (*history_db_begin_fn)(void *ctx, uint64_t nrows);

/* Open (creating it when missing) dir/history.db, in WAL mode, make sure
 * its tables exist, and convert a database of schema 1 or 2 (one
 * transaction: all or nothing).  Returns 0; TALLY_EDAMAGED with a
 * sentence in err when the file is damaged (SQLite finds it malformed or
 * no database, its tables refuse tallyd's statements, its rows cannot be
 * converted); TALLY_EIO with a sentence in err when it cannot be opened,
 * created, read or written now, which says nothing of the file (a full
 * disk, an I/O error, no permission, a lock held past a 5 s wait, no
 * memory; any other SQLite error too). */
int history_db_open(history_db_t *d, const char *dir, char *err, size_t errlen);

/* Read the journal position and every row (begin first when not NULL,
 * then fn for each).  Checks the whole file (PRAGMA quick_check, on a
 * connection of its own in a thread of its own while the rows are read).
 * Returns 0; TALLY_EDAMAGED with a sentence in err (the check failed, a
 * row makes no sense); TALLY_EIO with a sentence in err (a page could not
 * be read, as history_db_open()); or begin's or fn's code.  After either
 * of the first two the rows handed over are not to be kept, and may have
 * made begin or fn fail. */
int history_db_load(history_db_t *d, uint64_t *pos, history_db_begin_fn begin, history_db_row_fn fn,
                    void *ctx, char *err, size_t errlen);

/* The meta rows 'open_from' (HISTORY_DB_ALL_STORED when NULL or absent),
 * 'stored_through' and 'kept_from' (HISTORY_DB_NO_DAY likewise) as day
 * keys.  Returns 0; TALLY_EDAMAGED with a sentence in err (not a day);
 * TALLY_EIO with a sentence in err (not read, as history_db_open()). */
int history_db_open_periods(history_db_t *d, int32_t *open_from, int32_t *through,
                            int32_t *kept_from, char *err, size_t errlen);

/* Store b in one transaction: the months, quarters and years from
 * b->open_from on dropped when b->drop_open, every row (insert or
 * replace), the days before b->first_day dropped (b->prune, which also sets
 * 'kept_from'), the position and the open periods' meta rows set.  Sets b->rc and b->err; returns
 * b->rc. */
int history_db_write(history_db_t *d, history_batch_t *b);

/* Close the database (nothing when it is not open). */
void history_db_close(history_db_t *d);

/* Check dir/history.db as a start would read it, writing nothing beside
 * it (opened read-only as immutable: no -wal or -shm appears, which a
 * backup's BLAKE2SUMS would count as added): PRAGMA quick_check, then
 * the rows of its figures counted into *cells (0 without the table,
 * which a start creates).  Returns 0; TALLY_EINVAL
 * when there is no such file; with a sentence in err, TALLY_EDAMAGED when
 * it is damaged or not a database (a start would set it aside), TALLY_EIO
 * when it could not be read now (a failed read, no permission, a lock,
 * no memory: a start would stop, keeping it). */
int history_db_check_file(const char *dir, uint64_t *cells, char *err, size_t errlen);

/* Rename dir/history.db (and its -wal and -shm files) to
 * history.db.damaged-<unix time>; the new name of the database file goes
 * into newname.  Returns 0 or TALLY_EIO. */
int history_db_set_aside(const char *dir, char *newname, size_t cap);

/* Make room in the array *ids (*cap entries, the new ones 0) for index
 * i: a map from one side's ids to the other's.  Returns 0 or
 * TALLY_ENOMEM. */
int history_ids_room(uint32_t **ids, uint32_t *cap, uint32_t i);

/* Make room for n rows in b.  Returns 0 or TALLY_ENOMEM. */
int history_batch_reserve(history_batch_t *b, uint32_t n);

/* Append a series to b's names: the process's ids of its metric and of
 * its township (0 for the county), which must name the same names for as
 * long as the history_db_t is open, then the metric's name (mlen bytes)
 * and the scope's (slen bytes, 0 for the county); *off gets the offset
 * its rows name.  Returns 0 or TALLY_ENOMEM. */
int history_batch_names(history_batch_t *b, uint32_t metric_id, uint32_t town_id,
                        const char *metric, size_t mlen, const char *scope, size_t slen,
                        uint32_t *off);

/* Free b's storage (not b). */
void history_batch_free(history_batch_t *b);

#endif
