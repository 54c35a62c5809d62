/* Unit tests of history: cells of closed periods kept by history_apply,
 * read back by history_read, exactly once by journal position, gauges
 * by event time with the county's sum, ratios from their operands,
 * retention, and the database loaded again (no sockets; the tests that
 * start the writer run its thread). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "history.h"
#include "parts_test_util.h"

/* 2023-12-31T12:00 and 2023-06-30T12:00 in UTC (the tests run in UTC). */
#define T_DEC31 1704024000000LL
#define T_JUN30 1688126400000LL

static const char conf[] = "[tallyd]\ntimezone = UTC\n"
                           "[metric resolved]\nkind = counter\n"
                           "[metric screened]\nkind = counter\n"
                           "[metric zones]\nkind = gauge\n"
                           "[ratio rate]\nnumerator = resolved\ndenominator = screened\n";

typedef struct fx {
    t_state_t st;
    history_t h;
    uint32_t resolved, screened, zones, rate, gaoguan, bashan;
    char dir[64];
    uv_loop_t loop; /* of a test that starts the writer */
    bool loop_open;
} fx_t;

static uint32_t id(intern_t *in, const char *s)
{
    int v = intern_find(in, s, strlen(s));
    if (v <= 0)
        v = intern_add(in, s, strlen(s));
    assert_true(v > 0);
    return (uint32_t)v;
}

static void fx_history(fx_t *f, int64_t days)
{
    history_config_t hc = {.engine = &f->st.engine,
                           .towns = &f->st.towns,
                           .metrics = &f->st.metrics,
                           .clock = &t_clock,
                           .log = &f->st.log,
                           .days = days};
    assert_int_equal(history_init(&f->h, &hc), 0);
}

/* Instants in Asia/Shanghai (UTC+8), in ms since the epoch (UTC). */
#define SH_DEC31_2000    1704024000000LL /* 2023-12-31 20:00 local */
#define SH_DEC31_LAST_MS 1704038399999LL /* 2023-12-31 23:59:59.999 local */
#define SH_JAN01_0000    1704038400000LL /* 2024-01-01 00:00:00.000 local */
#define SH_JAN01_0400    1704052800000LL /* 2024-01-01 04:00, 2023-12-31 20:00 UTC */
#define SH_JAN02_1000    1704160800000LL /* 2024-01-02 10:00 local */
#define SH_FEB29_1200    1709179200000LL /* 2024-02-29 12:00 local */
#define SH_FEB29_2330    1709220600000LL /* 2024-02-29 23:30 local */
#define SH_MAR01_0000    1709222400000LL /* 2024-03-01 00:00 local */

static int setup_with(void **state, const char *text, int64_t now_ms)
{
    fx_t *f = calloc(1, sizeof(*f));
    t_state_init_at(&f->st, text, now_ms);
    t_state_declare(&f->st);
    f->resolved = id(&f->st.metrics, "resolved");
    f->screened = id(&f->st.metrics, "screened");
    f->zones = id(&f->st.metrics, "zones");
    f->rate = id(&f->st.metrics, "rate");
    f->gaoguan = id(&f->st.towns, "gaoguan");
    f->bashan = id(&f->st.towns, "bashan");
    fx_history(f, HISTORY_DAYS_DEFAULT);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_history.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, conf, T_NOW);
}

/* The same catalog in the county's own zone, UTC+8 all year, the engine
 * started on 2 January 2024 (the tests' clock is never earlier). */
static int setup_shanghai(void **state)
{
    static char text[sizeof conf + 32];
    snprintf(text, sizeof text, "%s", conf);
    char *z = strstr(text, "UTC");
    assert_non_null(z);
    memmove(z + strlen("Asia/Shanghai"), z + 3, strlen(z + 3) + 1);
    memcpy(z, "Asia/Shanghai", strlen("Asia/Shanghai"));
    return setup_with(state, text, SH_JAN02_1000);
}

/* The fixture's loop, for a test that starts the writer. */
static uv_loop_t *loop_open(fx_t *f)
{
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->loop_open = true;
    return &f->loop;
}

/* Stop the history and close its loop: at the end of such a test, and
 * in teardown when an assertion ended the test first (the writer thread
 * and the loop's handles must not outlive it). */
static void loop_close(fx_t *f)
{
    history_stop(&f->h);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->loop_open = false;
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->loop_open)
        loop_close(f);
    history_free(&f->h);
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

static engine_value_t read_at(fx_t *f, uint32_t metric, uint32_t town, const char *period)
{
    calperiod_t p;
    assert_int_equal(calperiod_parse(period, strlen(period), &p), 0);
    engine_value_t v;
    history_read(&f->h, metric, town, p, &v);
    return v;
}

static void expect(fx_t *f, uint32_t metric, uint32_t town, const char *period, bool present,
                   int64_t num)
{
    engine_value_t v = read_at(f, metric, town, period);
    if (v.present != present || (present && v.num != num))
        fail_msg("%s: metric %u town %u: present %d num %lld, expected %d %lld", period, metric,
                 town, v.present, (long long)v.num, present, (long long)num);
}

/* Counters sum by event time into day, month, quarter and year, the
 * township's and the county's; a position seen before is skipped. */
static void test_counters(void **state)
{
    fx_t *f = *state;
    apply(f, 1, f->gaoguan, T_DEC31, f->resolved, 216);
    apply(f, 2, f->bashan, T_DEC31, f->resolved, 10);
    apply(f, 3, f->gaoguan, T_JUN30, f->resolved, 5);
    apply(f, 3, f->gaoguan, T_JUN30, f->resolved, 5); /* replayed: skipped */
    apply(f, 2, f->bashan, T_DEC31, f->resolved, 10); /* older: skipped */
    assert_int_equal(history_position(&f->h), 3);
    expect(f, f->resolved, f->gaoguan, "2023", true, 221);
    expect(f, f->resolved, f->gaoguan, "2023-Q4", true, 216);
    expect(f, f->resolved, f->gaoguan, "2023-12", true, 216);
    expect(f, f->resolved, f->gaoguan, "2023-12-31", true, 216);
    expect(f, f->resolved, f->gaoguan, "2023-Q2", true, 5);
    expect(f, f->resolved, 0, "2023", true, 231);
    expect(f, f->resolved, 0, "2023-12-31", true, 226);
    /* No sample there: a counter reads 0. */
    expect(f, f->resolved, f->gaoguan, "2022", true, 0);
    expect(f, f->resolved, f->gaoguan, "2023-12-30", true, 0);
}

/* Gauges: the latest-stamped sample of the period per township, the
 * county the sum of the townships; an older-stamped sample changes
 * nothing; no sample: no value. */
static void test_gauges(void **state)
{
    fx_t *f = *state;
    apply(f, 1, f->gaoguan, T_DEC31, f->zones, 23);
    apply(f, 2, f->bashan, T_DEC31, f->zones, 7);
    apply(f, 3, f->gaoguan, T_DEC31 - 3600000, f->zones, 99); /* older: ignored */
    apply(f, 4, f->gaoguan, T_DEC31 + 3600000, f->zones, 25); /* later: replaces */
    expect(f, f->zones, f->gaoguan, "2023-12-31", true, 25);
    expect(f, f->zones, f->bashan, "2023", true, 7);
    expect(f, f->zones, 0, "2023-12", true, 32);
    expect(f, f->zones, f->gaoguan, "2023-Q3", false, 0);
    expect(f, f->zones, 0, "2022", false, 0);
}

/* Thousands of series: the cell index grows (rehashed several times, the
 * gauges' cells two wide) and still finds every cell. */
static void test_index_growth(void **state)
{
    fx_t *f = *state;
    enum { TOWNS = 3000 };
    uint32_t town[TOWNS];
    for (uint32_t i = 0; i < TOWNS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "town-%u", i);
        town[i] = id(&f->st.towns, name);
    }
    uint64_t pos = 1;
    for (uint32_t i = 0; i < TOWNS; i++) {
        apply(f, pos++, town[i], T_DEC31, f->resolved, i + 1);
        apply(f, pos++, town[i], T_DEC31, f->zones, 2 * (int64_t)i);
        apply(f, pos++, town[i], T_JUN30, f->screened, 3);
    }
    for (uint32_t i = 0; i < TOWNS; i++) {
        expect(f, f->resolved, town[i], "2023-12-31", true, i + 1);
        expect(f, f->resolved, town[i], "2023", true, i + 1);
        expect(f, f->zones, town[i], "2023-Q4", true, 2 * (int64_t)i);
        expect(f, f->zones, town[i], "2023-12", true, 2 * (int64_t)i);
        expect(f, f->screened, town[i], "2023-06-30", true, 3);
        expect(f, f->screened, town[i], "2023-12", true, 0);
    }
    expect(f, f->resolved, 0, "2023", true, (int64_t)TOWNS * (TOWNS + 1) / 2);
    expect(f, f->zones, 0, "2023-12-31", true, (int64_t)TOWNS * (TOWNS - 1));
    expect(f, f->screened, 0, "2023-Q2", true, 3 * TOWNS);
}

/* A ratio: [num, den] of its operands for the period; no value at 0/0. */
static void test_ratio(void **state)
{
    fx_t *f = *state;
    engine_sample_t s[2] = {{f->resolved, 216}, {f->screened, 219}};
    assert_int_equal(history_apply(&f->h, 1, f->gaoguan, T_DEC31, s, 2), 0);
    engine_value_t v = read_at(f, f->rate, f->gaoguan, "2023");
    assert_true(v.present);
    assert_int_equal(v.num, 216);
    assert_int_equal(v.den, 219);
    v = read_at(f, f->rate, 0, "2022");
    assert_false(v.present);
}

/* Days older than [history] days are neither kept nor read; months are. */
static void test_retention(void **state)
{
    fx_t *f = *state;
    history_free(&f->h);
    fx_history(f, 30); /* now is 2024-06-15 */
    apply(f, 1, f->gaoguan, T_DEC31, f->resolved, 216);
    calperiod_t old, month;
    calperiod_parse("2023-12-31", 10, &old);
    calperiod_parse("2023-12", 7, &month);
    assert_true(history_expired(&f->h, old));
    assert_false(history_expired(&f->h, month));
    expect(f, f->resolved, f->gaoguan, "2023-12", true, 216);
    assert_int_equal(history_cells(&f->h), 6); /* month, quarter, year; two scopes */
}

/* Open an empty database, store two figures (resolved 216 for gaoguan on
 * 31 December, zones 7 for bashan on 30 June) through the writer, and
 * close it.  Returns how many cells the history held. */
static uint32_t store_two_figures(fx_t *f)
{
    bool rebuilt = true;
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
    assert_int_equal(history_position(&f->h), 0);
    uv_loop_t *loop = loop_open(f);
    assert_int_equal(history_start(&f->h, loop), 0);
    apply(f, 1, f->gaoguan, T_DEC31, f->resolved, 216);
    apply(f, 2, f->bashan, T_JUN30, f->zones, 7);
    loop_close(f);
    uint32_t cells = history_cells(&f->h);
    history_free(&f->h);
    return cells;
}

/* The database: what history_stop stores is what history_open loads,
 * names and position included. */
static void test_database_round_trip(void **state)
{
    fx_t *f = *state;
    bool rebuilt = true;
    store_two_figures(f);

    fx_history(f, HISTORY_DAYS_DEFAULT);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
    assert_int_equal(history_position(&f->h), 2);
    expect(f, f->resolved, f->gaoguan, "2023-12-31", true, 216);
    expect(f, f->resolved, 0, "2023", true, 216);
    expect(f, f->zones, f->bashan, "2023-06", true, 7);
    expect(f, f->zones, 0, "2023-06-30", true, 7);
    apply(f, 2, f->gaoguan, T_DEC31, f->resolved, 216); /* stored already: skipped */
    expect(f, f->resolved, f->gaoguan, "2023", true, 216);
    /* the write-ahead log is cut back after a large transaction */
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->h.db.db, "PRAGMA journal_size_limit", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), strtoll(HISTORY_DB_WAL_LIMIT, NULL, 10));
    sqlite3_finalize(st);
}

/* history_preload() reads the database while the checkpoint loads: names
 * the checkpoint brings meanwhile keep their ids, the database's take the
 * next ones in its order, and its cells find their series by them. */
static void test_database_preloaded(void **state)
{
    fx_t *f = *state;
    bool rebuilt = true;
    store_two_figures(f);

    /* A new start: empty tables but the catalog's metrics. */
    t_state_free(&f->st);
    t_state_init(&f->st, conf);
    t_state_declare(&f->st);
    fx_history(f, HISTORY_DAYS_DEFAULT);
    assert_int_equal(history_preload(&f->h, f->dir, &f->st.towns, &f->st.metrics), 0);
    uint32_t xinhua = id(&f->st.towns, "xinhua"); /* the checkpoint's */
    assert_int_equal(xinhua, 1);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
    assert_int_equal(history_position(&f->h), 2);
    assert_int_equal(intern_find(&f->st.towns, "xinhua", 6), 1);
    f->gaoguan = id(&f->st.towns, "gaoguan");
    f->bashan = id(&f->st.towns, "bashan");
    assert_int_equal(f->bashan, 2); /* rows come by period: 30 June's first */
    assert_int_equal(f->gaoguan, 3);
    assert_int_equal(intern_count(&f->st.towns), 3);
    f->resolved = id(&f->st.metrics, "resolved");
    f->zones = id(&f->st.metrics, "zones");
    expect(f, f->resolved, f->gaoguan, "2023-12-31", true, 216);
    expect(f, f->resolved, 0, "2023", true, 216);
    expect(f, f->zones, f->bashan, "2023-06", true, 7);
    expect(f, f->zones, 0, "2023-06-30", true, 7);
    expect(f, f->resolved, xinhua, "2023", true, 0); /* a counter without a cell: 0 */
}

/* A start that fails between history_preload() and history_open(): the
 * reading is waited for and let go. */
static void test_preload_abandoned(void **state)
{
    fx_t *f = *state;
    store_two_figures(f);
    fx_history(f, HISTORY_DAYS_DEFAULT);
    assert_int_equal(history_preload(&f->h, f->dir, &f->st.towns, &f->st.metrics), 0);
    history_free(&f->h);
    fx_history(f, HISTORY_DAYS_DEFAULT); /* for the teardown */
    bool rebuilt = true;
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
    assert_int_equal(history_position(&f->h), 2);
}

/* Two rows naming the same cell (a metric name stored again as a BLOB,
 * a name of its own to the database, reads as the same name; its id is
 * the larger, so its row comes later): the later row's figure is the
 * cell's, as when each row looked its cell up while loading; the other
 * cells load as stored. */
static void test_database_same_cell_twice(void **state)
{
    fx_t *f = *state;
    bool rebuilt = true;
    uint32_t cells = store_two_figures(f);

    char path[128];
    snprintf(path, sizeof path, "%s/history.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO metrics (name) VALUES (CAST('resolved' AS BLOB));"
                                  "INSERT INTO figures SELECT type, first_day, "
                                  "(SELECT max(id) FROM metrics), scope, gauge, value + 1000, "
                                  "event_ms FROM figures WHERE type = 0 AND first_day = 19722 "
                                  "AND metric = (SELECT id FROM metrics WHERE name = 'resolved') "
                                  "AND scope = (SELECT id FROM scopes WHERE name = 'gaoguan')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_changes(db), 1); /* 19722: 2023-12-31 */
    sqlite3_close(db);

    fx_history(f, HISTORY_DAYS_DEFAULT);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
    assert_int_equal(history_cells(&f->h), cells);
    expect(f, f->resolved, f->gaoguan, "2023-12-31", true, 1216);
    expect(f, f->resolved, f->gaoguan, "2023-12", true, 216);
    expect(f, f->resolved, 0, "2023-12-31", true, 216);
    expect(f, f->zones, f->bashan, "2023-06", true, 7);
    expect(f, f->zones, 0, "2023-06-30", true, 7);
}

/* A database found damaged part-way through its rows (here: a row whose
 * period type makes no sense, after one naming a township never seen) is
 * set aside, and the names its earlier rows brought are forgotten with
 * it. */
static void test_damaged_database_forgets_names(void **state)
{
    fx_t *f = *state;
    bool rebuilt = true;
    store_two_figures(f);
    uint32_t ntowns = intern_count(&f->st.towns), nmetrics = intern_count(&f->st.metrics);

    char path[128];
    snprintf(path, sizeof path, "%s/history.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO metrics (name) VALUES ('aaa'), ('zzz');"
                     "INSERT INTO scopes (name) VALUES ('phantom');"
                     "INSERT INTO figures VALUES (0, 19722, (SELECT id FROM metrics WHERE "
                     "name = 'aaa'), (SELECT id FROM scopes WHERE name = 'phantom'), 0, 5, NULL),"
                     "(7, 19722, (SELECT id FROM metrics WHERE name = 'zzz'), "
                     "(SELECT id FROM scopes WHERE name = 'gaoguan'), 0, 5, NULL)",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    fx_history(f, HISTORY_DAYS_DEFAULT);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_true(rebuilt);
    assert_int_equal(history_cells(&f->h), 0);
    assert_int_equal(intern_find(&f->st.towns, "phantom", 7), TALLY_ENOTFOUND);
    assert_int_equal(intern_find(&f->st.metrics, "aaa", 3), TALLY_ENOTFOUND);
    assert_int_equal(intern_count(&f->st.towns), ntowns);
    assert_int_equal(intern_count(&f->st.metrics), nmetrics);
}

/* Column col of the first row of sql's result as text into out ("" when
 * none). */
static void query_text(sqlite3 *db, const char *sql, int col, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int rc = sqlite3_step(st);
    const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(st, col) : NULL;
    snprintf(out, cap, "%s", t ? (const char *)t : "");
    sqlite3_finalize(st);
}

/* Days beyond the kept ones leave the database as a stretch at the start
 * of the day rows, found by the primary key: no index of the rows is
 * needed (each would cost every new row a second insertion). */
static void test_database_prunes_days_by_key(void **state)
{
    fx_t *f = *state;
    bool rebuilt = true;
    store_two_figures(f);
    char path[128];
    snprintf(path, sizeof path, "%s/history.db", f->dir);
    sqlite3 *db = NULL;

    fx_history(f, 30); /* now is 2024-06-15: both days are older */
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
    uv_loop_t *loop = loop_open(f);
    assert_int_equal(history_start(&f->h, loop), 0);
    loop_close(f);
    history_free(&f->h);

    char got[256];
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    query_text(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL", 0,
               got, sizeof got);
    assert_string_equal(got, "0");
    query_text(db, "SELECT count(*) FROM cells WHERE type = 'day'", 0, got, sizeof got);
    assert_string_equal(got, "0");
    query_text(db, "SELECT count(*) FROM cells WHERE type = 'month'", 0, got, sizeof got);
    assert_string_equal(got, "4"); /* two series, each with its county's */
    query_text(db, "EXPLAIN QUERY PLAN " HISTORY_DB_PRUNE, 3, got, sizeof got); /* detail */
    if (strstr(got, "USING PRIMARY KEY (type=? AND first_day<?)") == NULL)
        fail_msg("the prune does not use the primary key: %s", got);
    sqlite3_close(db);
}

/* 2024-06-10T10:00 and 2024-06-12T10:00 UTC: days kept on 15 June with
 * 30 days, gone a month later. */
#define T_JUN10 1718013600000LL
#define T_JUN12 1718186400000LL
#define HOUR_MS 3600000LL

/* The history anew with 30 days kept (now is 2024-06-15), its database
 * opened and its writer started on the fixture's loop. */
static uv_loop_t *start_30_days(fx_t *f)
{
    history_free(&f->h);
    fx_history(f, 30);
    bool rebuilt = true;
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    uv_loop_t *loop = loop_open(f);
    assert_int_equal(history_start(&f->h, loop), 0);
    return loop;
}

/* test_gauge_event_times_kept after its eight figures, June's days
 * pruned. */
static void expect_eight_pruned(fx_t *f)
{
    /* 4 * 4 + 3 + 5 + 5 + 3 before: the township's and the county's four
     * June days went */
    assert_int_equal(history_cells(&f->h), 24);
    expect(f, f->zones, f->gaoguan, "2024", true, 4);
    expect(f, f->zones, f->bashan, "2024-06", true, 60);
    expect(f, f->zones, 0, "2024-06", true, 64);
    expect(f, f->zones, 0, "2023", true, 2);
    expect(f, f->resolved, f->bashan, "2024-06", true, 10);
    expect(f, f->resolved, 0, "2024", true, 11);
}

/* A gauge's value keeps its event time beside it, through the pruning of
 * day cells in memory (which moves the cells after them) and through the
 * database: an earlier-stamped sample still changes nothing, a later one
 * replaces the value, whatever counters' cells lie in between. */
static void test_gauge_event_times_kept(void **state)
{
    fx_t *f = *state;
    uv_loop_t *loop = start_30_days(f);
    bool rebuilt = true;
    apply(f, 1, f->gaoguan, T_JUN10, f->zones, 4);
    apply(f, 2, f->bashan, T_JUN10, f->resolved, 10);
    apply(f, 3, f->bashan, T_JUN12, f->zones, 6);
    apply(f, 4, f->gaoguan, T_JUN12, f->resolved, 1);
    apply(f, 5, f->gaoguan, T_DEC31, f->zones, 2);
    /* Four periods for each township series but the one of 2023 (31
     * December is not kept); the county's: zones and resolved on two June
     * days and their month, quarter and year, and zones' three of 2023. */
    assert_int_equal(history_cells(&f->h), 4 * 4 + 3 + 5 + 5 + 3);

    /* A month later, 10 and 12 June are no longer kept: the writer's next
     * turn drops their cells from memory. */
    t_now_ms = T_NOW + 30 * 24 * HOUR_MS;
    for (int i = 0; i < 100 && history_cells(&f->h) != 24; i++)
        uv_run(loop, UV_RUN_ONCE);
    calperiod_t d;
    assert_int_equal(calperiod_parse("2024-06-10", 10, &d), 0);
    assert_true(history_expired(&f->h, d));
    expect(f, f->zones, f->gaoguan, "2024-06", true, 4);
    expect(f, f->zones, 0, "2024-06", true, 10);
    expect(f, f->resolved, 0, "2024-Q2", true, 11);
    expect(f, f->zones, f->gaoguan, "2023-12", true, 2);
    apply(f, 6, f->gaoguan, T_JUN10 - 1, f->zones, 40);      /* earlier: ignored */
    apply(f, 7, f->bashan, T_JUN12 + HOUR_MS, f->zones, 60); /* later: replaces */
    apply(f, 8, f->gaoguan, T_DEC31 - 1, f->zones, 20);      /* earlier: ignored */
    expect_eight_pruned(f);

    /* The database, the same. */
    loop_close(f);
    history_free(&f->h);
    fx_history(f, 30);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
    assert_int_equal(history_position(&f->h), 8);
    expect_eight_pruned(f);
    apply(f, 9, f->gaoguan, T_JUN10 + HOUR_MS, f->zones, 5); /* later: replaces */
    apply(f, 10, f->bashan, T_JUN12, f->zones, 600);         /* earlier: ignored */
    expect(f, f->zones, f->gaoguan, "2024-Q2", true, 5);
    expect(f, f->zones, 0, "2024", true, 65);
}

/* Run statements on the fixture's database from a connection of the
 * test's own (an analyst's, say), beside tallyd's. */
static void db_exec(fx_t *f, const char *sql)
{
    char path[128];
    snprintf(path, sizeof path, "%s/history.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Column 0 of the first row of sql on the fixture's database, as text. */
static void db_text(fx_t *f, const char *sql, char *out, size_t cap)
{
    char path[128];
    snprintf(path, sizeof path, "%s/history.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    query_text(db, sql, 0, out, cap);
    sqlite3_close(db);
}

/* A row whose integer column holds a text (a hand-edited file) is not
 * read as 0 (here a month's row would have been read as a day's): the
 * database is set aside. */
static void test_database_text_in_integer_column(void **state)
{
    fx_t *f = *state;
    bool rebuilt = false;
    char got[16];
    store_two_figures(f);
    db_exec(f, "UPDATE figures SET type = 'month' WHERE type = 1");
    db_text(f, "SELECT count(*) FROM figures WHERE type = 'month'", got, sizeof got);
    assert_string_not_equal(got, "0");
    fx_history(f, HISTORY_DAYS_DEFAULT);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_true(rebuilt);
    assert_true(t_logged(&f->st, "a row of figures makes no sense"));
}

/* A batch the database refuses (here a trigger refuses every row) is
 * stored again once it accepts: every cell of it, and the changes made
 * in between, with the journal held back meanwhile. */
static void test_refused_batch_stored_again(void **state)
{
    fx_t *f = *state;
    bool rebuilt = true;
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    db_exec(f, "CREATE TRIGGER refuse BEFORE INSERT ON figures "
               "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    uv_loop_t *loop = loop_open(f);
    assert_int_equal(history_start(&f->h, loop), 0);
    apply(f, 1, f->gaoguan, T_DEC31, f->resolved, 216);
    apply(f, 2, f->bashan, T_JUN30, f->zones, 7);
    for (int i = 0; i < 100 && f->h.failures == 0; i++)
        uv_run(loop, UV_RUN_ONCE);
    assert_true(f->h.failures > 0);
    assert_int_equal(history_hold_pos(&f->h), 1);
    assert_int_equal(history_unstored(&f->h), 2);
    apply(f, 3, f->gaoguan, T_JUN30, f->resolved, 5);
    apply(f, 4, f->bashan, T_JUN30 + 1, f->zones, 9);
    assert_int_equal(history_unstored(&f->h), 4);

    db_exec(f, "DROP TRIGGER refuse");
    for (int i = 0; i < 100 && history_hold_pos(&f->h) != 5; i++)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(history_hold_pos(&f->h), 5);
    assert_int_equal(history_unstored(&f->h), 0);
    char got[64];
    db_text(f,
            "SELECT count(*) || ' ' || sum(value) FROM cells WHERE metric = 'resolved' AND "
            "scope = 'gaoguan'",
            got, sizeof got);
    /* 31 December's day, month, quarter: 216; 30 June's: 5; 2023: 221 */
    assert_string_equal(got, "7 884");
    db_text(f,
            "SELECT value || ' ' || event_ms FROM cells WHERE metric = 'zones' AND scope = '' "
            "AND period = '2023-06'",
            got, sizeof got);
    assert_string_equal(got, "9 1688126400001");
    loop_close(f);
}

/* Every period a township's counter holds, as "period=value" checks. */
static void expect_all(fx_t *f, uint32_t metric, uint32_t town, const char *const *periods,
                       const int64_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect(f, metric, town, periods[i], true, want[i]);
}

/* Asia/Shanghai: a December figure arriving on 2 January lands in
 * December's day, month, quarter and year; the last millisecond of the
 * year is 2023's, the next one 2024's; 20:00 UTC on 31 December is
 * already 1 January locally. */
static void test_shanghai_year_end(void **state)
{
    fx_t *f = *state;
    t_now_ms = SH_JAN02_1000;
    apply(f, 1, f->gaoguan, SH_DEC31_2000, f->resolved, 100);
    apply(f, 2, f->gaoguan, SH_DEC31_LAST_MS, f->resolved, 10);
    apply(f, 3, f->gaoguan, SH_JAN01_0000, f->resolved, 1000);
    apply(f, 4, f->bashan, SH_JAN01_0400, f->resolved, 7);
    static const char *const p[] = {"2023-12-31", "2023-12", "2023-Q4", "2023",       "2024-01-01",
                                    "2024-01",    "2024-Q1", "2024",    "2023-12-30", "2023-11"};
    static const int64_t gaoguan[] = {110, 110, 110, 110, 1000, 1000, 1000, 1000, 0, 0};
    static const int64_t bashan[] = {0, 0, 0, 0, 7, 7, 7, 7, 0, 0};
    static const int64_t county[] = {110, 110, 110, 110, 1007, 1007, 1007, 1007, 0, 0};
    expect_all(f, f->resolved, f->gaoguan, p, gaoguan, 10);
    expect_all(f, f->resolved, f->bashan, p, bashan, 10);
    expect_all(f, f->resolved, 0, p, county, 10);
    /* Ten cells per township and county: four periods on each side. */
    assert_int_equal(history_cells(&f->h), 4 * 2 + 4 * 2 + 4 * 1);
}

/* Asia/Shanghai: 29 February 2024 is a day of its own, of February, of
 * Q1; midnight starts 1 March. */
static void test_shanghai_leap_day(void **state)
{
    fx_t *f = *state;
    t_now_ms = SH_MAR01_0000 + 86400000LL * 40;
    apply(f, 1, f->gaoguan, SH_FEB29_1200, f->resolved, 3);
    apply(f, 2, f->gaoguan, SH_FEB29_2330, f->resolved, 4);
    apply(f, 3, f->gaoguan, SH_MAR01_0000, f->resolved, 50);
    static const char *const p[] = {"2024-02-29", "2024-02", "2024-03-01", "2024-03",
                                    "2024-02-28", "2024-Q1", "2024"};
    static const int64_t want[] = {7, 7, 50, 50, 0, 57, 57};
    expect_all(f, f->resolved, f->gaoguan, p, want, 7);
    expect_all(f, f->resolved, 0, p, want, 7);
}

/* Asia/Shanghai gauges across the year's end: each period keeps its own
 * latest-stamped value per township, the county the sum; a late,
 * earlier-stamped figure replaces nothing, a later-stamped one of the
 * closed period replaces that period's value only. */
static void test_shanghai_gauge_boundaries(void **state)
{
    fx_t *f = *state;
    t_now_ms = SH_JAN02_1000;
    apply(f, 1, f->gaoguan, SH_DEC31_LAST_MS, f->zones, 5);
    apply(f, 2, f->gaoguan, SH_JAN01_0000, f->zones, 9);
    apply(f, 3, f->bashan, SH_DEC31_2000, f->zones, 2);
    apply(f, 4, f->bashan, SH_DEC31_2000 - 1, f->zones, 40); /* earlier: ignored */
    expect(f, f->zones, f->gaoguan, "2023-12-31", true, 5);
    expect(f, f->zones, f->gaoguan, "2023", true, 5);
    expect(f, f->zones, f->gaoguan, "2024-01-01", true, 9);
    expect(f, f->zones, f->gaoguan, "2024-Q1", true, 9);
    expect(f, f->zones, f->bashan, "2023-Q4", true, 2);
    expect(f, f->zones, f->bashan, "2024", false, 0);
    expect(f, f->zones, 0, "2023-12", true, 7);
    expect(f, f->zones, 0, "2024-01", true, 9);
    /* bashan's figure of 31 December, stamped later, arriving on 2 January. */
    apply(f, 5, f->bashan, SH_DEC31_LAST_MS, f->zones, 3);
    expect(f, f->zones, f->bashan, "2023-12-31", true, 3);
    expect(f, f->zones, 0, "2023", true, 8);
    expect(f, f->zones, 0, "2024", true, 9);
    /* Replayed after a crash: skipped. */
    apply(f, 5, f->bashan, SH_DEC31_LAST_MS, f->zones, 1);
    expect(f, f->zones, 0, "2023-Q4", true, 8);
}

/* Retention counts local days: with 2 days kept on 2 January, 31
 * December's day cell is neither kept nor read, its month is. */
static void test_shanghai_retention(void **state)
{
    fx_t *f = *state;
    history_free(&f->h);
    t_now_ms = SH_JAN02_1000;
    fx_history(f, 2);
    apply(f, 1, f->gaoguan, SH_DEC31_LAST_MS, f->resolved, 1);
    apply(f, 2, f->gaoguan, SH_JAN01_0000, f->resolved, 2);
    calperiod_t d;
    assert_int_equal(calperiod_parse("2023-12-31", 10, &d), 0);
    assert_true(history_expired(&f->h, d));
    assert_int_equal(calperiod_parse("2024-01-01", 10, &d), 0);
    assert_false(history_expired(&f->h, d));
    expect(f, f->resolved, f->gaoguan, "2023-12", true, 1);
    expect(f, f->resolved, f->gaoguan, "2024-01-01", true, 2);
    /* 2023: month, quarter, year; 2024: day too; township and county. */
    assert_int_equal(history_cells(&f->h), (3 + 4) * 2);
}

/* Counter samples are summed per series and reach the cells later: with
 * far more series than the cache of recent series holds (so that sums
 * still pending are pushed out by other series), with reads in between
 * and through the database, every cell holds exactly its samples. */
static void test_pending_sums(void **state)
{
    fx_t *f = *state;
    enum { TOWNS = 900, METRICS = 10, ROUNDS = 3 };
    uint32_t town[TOWNS], metric[METRICS];
    char name[32];
    for (int i = 0; i < TOWNS; i++) {
        snprintf(name, sizeof name, "t%03d", i);
        town[i] = id(&f->st.towns, name);
    }
    for (int m = 0; m < METRICS; m++) {
        snprintf(name, sizeof name, "m%d", m);
        metric[m] = id(&f->st.metrics, name);
    }
    bool rebuilt;
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    uv_loop_t *loop = loop_open(f);
    assert_int_equal(history_start(&f->h, loop), 0);
    uint64_t pos = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < TOWNS; i++) {
            engine_sample_t s[METRICS];
            for (int m = 0; m < METRICS; m++)
                s[m] = (engine_sample_t){metric[m], (int64_t)(i + 1) * (m + 1)};
            /* December, and every tenth submission June as well; each
             * first with the hints ingest gives (which change nothing) */
            for (int stage = 0; stage < 2; stage++)
                history_prefetch(&f->h, town[i], T_DEC31, s, METRICS, stage);
            assert_int_equal(history_apply(&f->h, ++pos, town[i], T_DEC31, s, METRICS), 0);
            if (i % 10 == 0)
                assert_int_equal(history_apply(&f->h, ++pos, town[i], T_JUN30, s, METRICS), 0);
        }
        /* a read in the middle sees everything applied so far */
        expect(f, metric[3], town[17], "2023", true, (int64_t)(r + 1) * 18 * 4);
    }
    int64_t county = 0;
    for (int i = 0; i < TOWNS; i++)
        county += (int64_t)(i + 1) * 2 * ROUNDS;
    for (int i = 0; i < TOWNS; i += 7) {
        int64_t v = (int64_t)(i + 1) * 2 * ROUNDS;
        expect(f, metric[1], town[i], "2023-12-31", true, v);
        expect(f, metric[1], town[i], "2023-Q4", true, v);
        expect(f, metric[1], town[i], "2023-06", true, i % 10 == 0 ? v : 0);
        expect(f, metric[1], town[i], "2023", true, i % 10 == 0 ? 2 * v : v);
    }
    expect(f, metric[1], 0, "2023-12", true, county);
    loop_close(f);
    history_free(&f->h);

    fx_history(f, HISTORY_DAYS_DEFAULT);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_int_equal(history_position(&f->h), pos);
    expect(f, metric[1], 0, "2023-12", true, county);
    expect(f, metric[9], town[899], "2023-12-31", true, 900 * 10 * ROUNDS);
    expect(f, metric[9], town[890], "2023", true, 2 * 891 * 10 * ROUNDS);
}

/* Open the fixture's database again with a history keeping days, not
 * set aside. */
static void reopen(fx_t *f, int64_t days)
{
    bool rebuilt = true;
    history_free(&f->h);
    fx_history(f, days);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
}

static void expect_db(fx_t *f, const char *sql, const char *want)
{
    char got[64];
    db_text(f, sql, got, sizeof got);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got '%s', expected '%s'", sql, got, want);
}

#define DAY_MS (24 * HOUR_MS)

/* A database as tallyd wrote it before schema 3: the table cells keyed
 * by names and texts, its partial index, open periods from 2024. */
static const char schema2[] =
    "CREATE TABLE cells (metric TEXT NOT NULL, scope TEXT NOT NULL, period TEXT NOT NULL,"
    " type TEXT NOT NULL, first_day TEXT NOT NULL, kind TEXT NOT NULL, value INTEGER,"
    " event_ms INTEGER, PRIMARY KEY (metric, scope, period)) WITHOUT ROWID;"
    "CREATE INDEX cells_days ON cells (first_day) WHERE type = 'day';"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "INSERT INTO meta VALUES ('schema', 2), ('journal_pos', 41), ('open_from', '2024-01-01'),"
    " ('stored_through', '2024-03-05');"
    "INSERT INTO cells VALUES"
    " ('resolved', 'gaoguan', '2023-12-31', 'day', '2023-12-31', 'counter', 216, NULL),"
    " ('resolved', 'gaoguan', '2023-12', 'month', '2023-12-01', 'counter', 216, NULL),"
    " ('resolved', 'gaoguan', '2023-Q4', 'quarter', '2023-10-01', 'counter', 216, NULL),"
    " ('resolved', 'gaoguan', '2023', 'year', '2023-01-01', 'counter', 216, NULL),"
    " ('resolved', '', '2023-12-31', 'day', '2023-12-31', 'counter', 216, NULL),"
    " ('resolved', '', '2023', 'year', '2023-01-01', 'counter', 216, NULL),"
    " ('resolved', 'gaoguan', '2024-02-10', 'day', '2024-02-10', 'counter', 9, NULL),"
    " ('resolved', 'gaoguan', '2024-02', 'month', '2024-02-01', 'counter', 9, NULL),"
    " ('resolved', 'gaoguan', '2024-03-04', 'day', '2024-03-04', 'counter', 5, NULL),"
    " ('zones', 'bashan', '2023-06', 'month', '2023-06-01', 'gauge', 7, 1688126400000),"
    " ('zones', '', '2023-06', 'month', '2023-06-01', 'gauge', 7, 1688126400000),"
    " ('zones', 'bashan', '2023-07', 'month', '2023-07-01', 'gauge', NULL, NULL);";

/* Every row of the view (or table) cells, in one text. */
#define ALL_CELLS                                                                                  \
    "SELECT group_concat(r, ';') FROM (SELECT metric || '|' || scope || '|' || period || '|' || "  \
    "type || '|' || first_day || '|' || kind || '|' || ifnull(value, 'N') || '|' || "              \
    "ifnull(event_ms, 'N') AS r FROM cells ORDER BY metric, scope, period)"

/* A database of schema 2 is converted when opened: the view cells gives
 * back every row exactly as the table did, the cells load (open periods
 * derived from their days), the old table and its index are gone. */
static void test_database_schema2_converted(void **state)
{
    fx_t *f = *state;
    bool rebuilt = true;
    char before[4096], after[4096];
    db_exec(f, schema2);
    db_text(f, ALL_CELLS, before, sizeof before);
    assert_non_null(strstr(before, "zones|bashan|2023-07|month|2023-07-01|gauge|N|N"));

    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
    assert_int_equal(history_position(&f->h), 41);
    db_text(f, ALL_CELLS, after, sizeof after);
    assert_string_equal(after, before);
    expect_db(f, "SELECT value FROM meta WHERE key = 'schema'", "3");
    expect_db(f,
              "SELECT group_concat(type || ' ' || name, ',') FROM (SELECT type, name FROM "
              "sqlite_master WHERE name LIKE 'cells%' ORDER BY name)",
              "view cells");
    expect_db(f, "SELECT count(*) FROM figures", "12");
    expect(f, f->resolved, f->gaoguan, "2023-12-31", true, 216);
    expect(f, f->resolved, 0, "2023", true, 216);
    expect(f, f->resolved, f->gaoguan, "2024-02", true, 9);
    expect(f, f->resolved, f->gaoguan, "2024-03", true, 5); /* open: from its day */
    expect(f, f->resolved, f->gaoguan, "2024-Q1", true, 14);
    expect(f, f->resolved, f->gaoguan, "2024", true, 14);
    expect(f, f->zones, f->bashan, "2023-06", true, 7);
    expect(f, f->zones, 0, "2023-06", true, 7);
    expect(f, f->zones, f->bashan, "2023-07", false, 0);
}

/* A schema-2 database with a row the conversion cannot take (a period
 * type of no kind) is left as it was and set aside, and a new one begun:
 * nothing of the old file is lost. */
static void test_database_schema2_unconvertible(void **state)
{
    fx_t *f = *state;
    bool rebuilt = false;
    db_exec(f, schema2);
    db_exec(f, "INSERT INTO cells VALUES ('resolved', 'gaoguan', '2023-W52', 'week', "
               "'2023-12-25', 'counter', 1, NULL)");
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_true(rebuilt);
    assert_int_equal(history_position(&f->h), 0);
    assert_int_equal(history_cells(&f->h), 0);
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    char path[512] = "";
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strncmp(e->d_name, "history.db.damaged-", 19) == 0 &&
            strchr(e->d_name + 19, '-') == NULL)
            snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
    closedir(d);
    if (path[0] == '\0')
        fail_msg("no history.db.damaged-* in %s", f->dir);
    sqlite3 *db = NULL;
    char got[64];
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    query_text(db, "SELECT count(*) || ' ' || sum(value) FROM cells", 0, got, sizeof got);
    sqlite3_close(db);
    assert_string_equal(got, "13 1334");
}

/* A month, quarter or year is no row until it ends (history_db.h, open
 * periods; in a new database from the start): a start derives it from
 * its days, exactly as the cells were (a counter's sum, a township's
 * gauge its latest day's, the county's gauge its townships' sum); once it
 * has ended the writer's next turn stores it, even with nothing else to
 * store.  Kept fewer days than a year, every period is a row again; kept
 * a year again, the rule begins that day: rows of periods from it on go,
 * periods begun before stay rows. */
static void test_open_periods(void **state)
{
    fx_t *f = *state;
    bool rebuilt = true;
    /* 15 June 2024: the rules begin with a new database, on its first day. */
    t_now_ms = T_NOW;
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_int_equal(history_start(&f->h, loop_open(f)), 0);
    apply(f, 1, f->gaoguan, T_JUN10, f->resolved, 3);
    apply(f, 2, f->bashan, T_JUN12, f->resolved, 4);
    apply(f, 3, f->gaoguan, T_JUN10, f->zones, 4);
    apply(f, 4, f->gaoguan, T_JUN12, f->zones, 7);
    apply(f, 5, f->bashan, T_JUN10, f->zones, 5);
    apply(f, 6, f->gaoguan, T_DEC31, f->resolved, 100);
    loop_close(f);
    expect_db(f, "SELECT value FROM meta WHERE key = 'open_from'", "2000-01-01");
    expect_db(f, "SELECT value FROM meta WHERE key = 'schema'", "3");
    expect_db(f, "SELECT count(*) FROM cells WHERE period IN ('2024-06', '2024-Q2', '2024')", "0");
    expect_db(f, "SELECT count(*) FROM cells WHERE period = '2024-06-10'", "5");
    expect_db(f, "SELECT value FROM cells WHERE period = '2023' AND scope = ''", "100");
    expect_db(f, "SELECT value FROM meta WHERE key = 'stored_through'", "2024-06-15");

    reopen(f, HISTORY_DAYS_DEFAULT);
    assert_int_equal(history_position(&f->h), 6);
    expect(f, f->resolved, f->gaoguan, "2024-06", true, 3);
    expect(f, f->resolved, 0, "2024-06", true, 7);
    expect(f, f->zones, f->gaoguan, "2024-06", true, 7);
    expect(f, f->zones, f->bashan, "2024-06", true, 5);
    expect(f, f->zones, 0, "2024-06", true, 12);
    expect(f, f->zones, 0, "2024-06-10", true, 9);
    expect(f, f->resolved, 0, "2024", true, 7);
    expect(f, f->zones, 0, "2024-Q2", true, 12);
    expect(f, f->resolved, 0, "2023", true, 100);
    apply(f, 7, f->gaoguan, T_JUN12 + HOUR_MS, f->zones, 1); /* later: replaces */
    expect(f, f->zones, 0, "2024-06", true, 6);

    /* 15 July: June has ended; its rows come with the writer's next turn,
     * with nothing else to store. */
    t_now_ms = T_NOW + 30 * DAY_MS;
    uv_loop_t *loop = loop_open(f);
    assert_int_equal(history_start(&f->h, loop), 0);
    char got[16] = "";
    const char *june = "SELECT count(*) FROM cells WHERE period = '2024-06'";
    for (int i = 0; i < 100 && strcmp(got, "6") != 0; i++) {
        uv_run(loop, UV_RUN_ONCE);
        db_text(f, june, got, sizeof got);
    }
    assert_string_equal(got, "6");
    loop_close(f);
    expect_db(f, "SELECT count(*) FROM cells WHERE period = '2024-Q2'", "6");
    expect_db(f, "SELECT count(*) FROM cells WHERE period = '2024'", "0");
    expect_db(f,
              "SELECT value FROM cells WHERE period = '2024-06' AND scope = '' AND metric = "
              "'zones'",
              "6");
    expect_db(f, "SELECT value FROM meta WHERE key = 'stored_through'", "2024-07-15");

    /* Kept 30 days: every period is a row again, the open July's too. */
    reopen(f, 30);
    assert_int_equal(history_start(&f->h, loop_open(f)), 0);
    apply(f, 8, f->bashan, T_NOW + 30 * DAY_MS, f->resolved, 1);
    apply(f, 9, f->bashan, T_NOW + 48 * DAY_MS, f->resolved, 2); /* 2 August, ahead */
    loop_close(f);
    expect_db(f, "SELECT value FROM cells WHERE period = '2024-07' AND scope = ''", "1");
    expect_db(f, "SELECT value FROM cells WHERE period = '2024-08' AND scope = ''", "2");
    expect_db(f, "SELECT count(*) FROM meta WHERE key = 'open_from' AND value IS NULL", "1");

    /* Kept a year again: August began after the day the rules begin again,
     * so its rows go; July's stay, and so does the sum of it all. */
    reopen(f, HISTORY_DAYS_DEFAULT);
    assert_int_equal(history_start(&f->h, loop_open(f)), 0);
    loop_close(f);
    expect_db(f, "SELECT count(*) FROM cells WHERE period = '2024-08'", "0");
    expect_db(f, "SELECT value FROM cells WHERE period = '2024-07' AND scope = ''", "1");
    reopen(f, HISTORY_DAYS_DEFAULT);
    expect(f, f->resolved, f->bashan, "2024-08", true, 2);
    expect(f, f->resolved, 0, "2024", true, 10);
    expect(f, f->zones, 0, "2024-Q2", true, 6);

    /* A rule that is not a day: the database is damaged. */
    history_free(&f->h);
    db_exec(f, "UPDATE meta SET value = 'soon' WHERE key = 'open_from'");
    fx_history(f, HISTORY_DAYS_DEFAULT);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_true(rebuilt);
    assert_true(t_logged(&f->st, "the table meta's open_from is not a day"));
    t_now_ms = T_NOW;
}

/* Run the loop until the database holds every record up to pos. */
static void stored_up_to(fx_t *f, uv_loop_t *loop, uint64_t pos)
{
    for (int i = 0; i < 100 && history_hold_pos(&f->h) != pos + 1; i++)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(history_hold_pos(&f->h), pos + 1);
}

/* Days leave memory when they leave the retention, also a day older than
 * every other that came late, after the pruning had learnt which day was
 * the oldest; until then the pruning finds nothing to do. */
static void test_prune_late_old_day(void **state)
{
    fx_t *f = *state;
    uv_loop_t *loop = start_30_days(f); /* 17 May is the first day kept */
    apply(f, 1, f->gaoguan, T_JUN10, f->resolved, 1);
    stored_up_to(f, loop, 1);
    assert_int_equal(f->h.oldest_day, calperiod_days_from_civil(2024, 6, 10));
    int64_t may20 = T_JUN10 - 21 * DAY_MS;
    apply(f, 2, f->gaoguan, may20, f->resolved, 2);
    assert_int_equal(f->h.oldest_day, calperiod_days_from_civil(2024, 5, 20));
    stored_up_to(f, loop, 2);
    uint32_t cells = history_cells(&f->h);
    expect(f, f->resolved, f->gaoguan, "2024-05-20", true, 2);
    t_now_ms = T_NOW + 3 * DAY_MS; /* 18 June: 20 May is still kept */
    apply(f, 3, f->gaoguan, t_now_ms, f->resolved, 3);
    stored_up_to(f, loop, 3);
    assert_int_equal(history_cells(&f->h), cells + 2); /* 18 June's, two scopes */
    t_now_ms = T_NOW + 4 * DAY_MS;                     /* 19 June: 20 May goes */
    apply(f, 4, f->gaoguan, t_now_ms, f->resolved, 4);
    stored_up_to(f, loop, 4);
    assert_int_equal(history_cells(&f->h), cells + 4 - 2);
    assert_int_equal(f->h.oldest_day, calperiod_days_from_civil(2024, 6, 10));
    expect(f, f->resolved, f->gaoguan, "2024-05", true, 2);
    loop_close(f);
    t_now_ms = T_NOW;
}

/* Every cell of a period in memory reads back its value through the
 * index: what the pruning took out of the index and moved back into
 * the gaps, and the new cells that took dropped days' places. */
static void expect_every_cell(fx_t *f)
{
    for (uint32_t i = 0; i < f->h.ncells; i++) {
        const history_cell_t *c = &f->h.cells[i];
        if (c->type > CALPERIOD_YEAR)
            continue; /* an event time, or a dropped day's place */
        engine_value_t v;
        history_read(&f->h, c->metric, c->town, (calperiod_t){c->type, c->key}, &v);
        if (!v.present || v.num != c->value)
            fail_msg("cell %u (metric %u town %u type %u key %d): read %d %lld, holds %lld", i,
                     c->metric, c->town, c->type, c->key, v.present, (long long)v.num,
                     (long long)c->value);
    }
}

/* At tens of thousands of series the days that leave the retention go in
 * several turns of the writer's timer (a turn drops so many cells at
 * most), the rest read right between the turns, and the next day's new
 * cells take the dropped ones' places instead of growing the array. */
static void test_prune_in_turns(void **state)
{
    fx_t *f = *state;
    enum { TOWNS = 20000 };
    uv_loop_t *loop = start_30_days(f);
    bool rebuilt = true;
    uint32_t *town = calloc(TOWNS, sizeof(*town));
    assert_non_null(town);
    uint64_t pos = 0;
    for (uint32_t i = 0; i < TOWNS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "town-%u", i);
        town[i] = id(&f->st.towns, name);
        apply(f, ++pos, town[i], T_JUN10, f->resolved, 1);
        apply(f, ++pos, town[i], T_JUN12, f->resolved, 2);
        apply(f, ++pos, town[i], T_JUN10, f->zones, i);
    }
    stored_up_to(f, loop, pos);
    /* a township: two days, a month, a quarter, a year of resolved; one
     * day and three periods of zones (two places each) */
    uint32_t before = history_cells(&f->h), kept = before - 3 * TOWNS - 3;
    assert_int_equal(before, 9 * TOWNS + 9);

    t_now_ms = T_NOW + 30 * DAY_MS; /* 15 July: 10 and 12 June went */
    bool partly = false;
    for (int turn = 0; turn < 100 && (f->h.pruning || history_cells(&f->h) == before); turn++) {
        uv_run(loop, UV_RUN_ONCE);
        if (history_cells(&f->h) == before || history_cells(&f->h) == kept)
            continue;
        partly = true; /* between two turns of the pass: the rest reads right */
        expect(f, f->resolved, town[TOWNS - 1], "2024-06", true, 3);
        expect(f, f->zones, town[TOWNS / 2], "2024-Q2", true, TOWNS / 2);
    }
    assert_true(partly);
    assert_false(f->h.pruning);
    assert_int_equal(history_cells(&f->h), kept);
    assert_int_equal(f->h.oldest_day, INT32_MAX); /* no day left */
    expect_every_cell(f);
    expect(f, f->resolved, 0, "2024-06", true, 3 * TOWNS);
    expect(f, f->zones, 0, "2024", true, (int64_t)TOWNS * (TOWNS - 1) / 2);

    /* Today's cells (a day, July, Q3) take the dropped days' places. */
    uint32_t places = f->h.ncells;
    for (uint32_t i = 0; i < TOWNS; i++)
        apply(f, ++pos, town[i], t_now_ms, f->resolved, 5);
    expect(f, f->resolved, town[7], "2024-07-15", true, 5);
    assert_int_equal(f->h.ncells, places);
    assert_int_equal(history_cells(&f->h), kept + 3 * TOWNS + 3);
    assert_int_equal(f->h.oldest_day, calperiod_days_from_civil(2024, 7, 15));
    expect_every_cell(f);
    stored_up_to(f, loop, pos);
    loop_close(f);

    /* The database holds the same. */
    history_free(&f->h);
    fx_history(f, 30);
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    assert_false(rebuilt);
    assert_int_equal(history_cells(&f->h), kept + 3 * TOWNS + 3);
    expect_every_cell(f);
    expect(f, f->resolved, 0, "2024", true, 8 * TOWNS);
    free(town);
    t_now_ms = T_NOW;
}

/* A gauge's day that left the retention leaves two places side by side,
 * and the next gauge's day takes them, its county's day too. */
static void test_gauge_reuses_pairs(void **state)
{
    fx_t *f = *state;
    uv_loop_t *loop = start_30_days(f);
    apply(f, 1, f->gaoguan, T_JUN10, f->zones, 4);
    stored_up_to(f, loop, 1);
    assert_int_equal(history_cells(&f->h), 8);
    t_now_ms = T_NOW + 30 * DAY_MS; /* 15 July: 10 June went */
    for (int i = 0; i < 100 && (f->h.pruning || history_cells(&f->h) == 8); i++)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(history_cells(&f->h), 6);
    uint32_t places = f->h.ncells;
    apply(f, 2, f->gaoguan, T_JUN10 + 10 * DAY_MS, f->zones, 7); /* 20 June */
    assert_int_equal(f->h.ncells, places);
    assert_int_equal(history_cells(&f->h), 8);
    expect_every_cell(f);
    expect(f, f->zones, 0, "2024-06-20", true, 7);
    expect(f, f->zones, f->gaoguan, "2024-06", true, 7);
    loop_close(f);
    t_now_ms = T_NOW;
}

/* The sum of the townships' cells of (metric, type, key), and whether
 * any of them holds a value. */
static int64_t towns_sum(fx_t *f, uint32_t metric, uint8_t type, int32_t key, bool *any)
{
    int64_t sum = 0;
    *any = false;
    for (uint32_t i = 0; i < f->h.ncells; i++) {
        const history_cell_t *c = &f->h.cells[i];
        if (c->metric == metric && c->town != 0 && c->type == type && c->key == key) {
            sum += c->value;
            *any = true;
        }
    }
    return sum;
}

/* Six weeks, three days at a time: samples of random townships, metrics
 * and days (some of them expired), each step dropping the days that left
 * the retention and filling the places they left.  Every cell stays
 * found through the index, and every county counter cell is its
 * townships' sum. */
static void test_prune_day_after_day(void **state)
{
    fx_t *f = *state;
    enum { TOWNS = 150, TURNS = 14, PER_TURN = 800 };
    uv_loop_t *loop = start_30_days(f);
    uint32_t town[TOWNS];
    for (uint32_t i = 0; i < TOWNS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "town-%u", i);
        town[i] = id(&f->st.towns, name);
    }
    const uint32_t metric[3] = {f->resolved, f->screened, f->zones};
    uint64_t pos = 0;
    uint32_t seed = 12345;
    for (int turn = 0; turn < TURNS; turn++) {
        for (int k = 0; k < PER_TURN; k++) {
            seed = seed * 1103515245u + 12345u;
            uint32_t r = seed >> 8;
            int64_t t = t_now_ms - (int64_t)(r % 40) * DAY_MS - (int64_t)(r % 7) * HOUR_MS;
            apply(f, ++pos, town[r % TOWNS], t, metric[(r >> 12) % 3], 1 + (r >> 20) % 9);
        }
        t_now_ms += 3 * DAY_MS;
        for (int i = 0; i < 100 && (f->h.pruning || f->h.oldest_day < history_today(&f->h) - 29);
             i++)
            uv_run(loop, UV_RUN_ONCE);
        assert_false(f->h.pruning);
        assert_true(f->h.oldest_day >= history_today(&f->h) - 29);
        expect_every_cell(f);
    }
    /* the places were taken again (without that, 6,361 of 13,028 here) */
    assert_true(f->h.nholes < history_cells(&f->h) / 2);
    stored_up_to(f, loop, pos);
    for (uint32_t i = 0; i < f->h.ncells; i++) {
        const history_cell_t *c = &f->h.cells[i];
        if (c->town != 0 || c->type > CALPERIOD_YEAR || c->metric == f->zones)
            continue;
        bool any;
        assert_int_equal(c->value, towns_sum(f, c->metric, c->type, c->key, &any));
        assert_true(any);
    }
    loop_close(f);
    t_now_ms = T_NOW;
}

/* Day by day across a month's end: June is no row while its days go by,
 * and becomes one with the first batch of July, from a day with nothing
 * else to store (the pass over every cell runs only when a month ended). */
static void test_month_end_day_by_day(void **state)
{
    fx_t *f = *state;
    bool rebuilt = true;
    t_now_ms = T_NOW + 14 * DAY_MS; /* 29 June 2024 */
    assert_int_equal(history_open(&f->h, f->dir, &f->st.towns, &f->st.metrics, &rebuilt), 0);
    uv_loop_t *loop = loop_open(f);
    assert_int_equal(history_start(&f->h, loop), 0);
    apply(f, 1, f->gaoguan, t_now_ms, f->resolved, 3);
    stored_up_to(f, loop, 1);
    const char *june = "SELECT count(*) FROM cells WHERE period = '2024-06'";
    const char *through = "SELECT value FROM meta WHERE key = 'stored_through'";
    char got[16];
    for (int day = 1; day <= 2; day++) {
        t_now_ms += DAY_MS;
        apply(f, 1 + (uint64_t)day, f->bashan, t_now_ms, f->resolved, day);
        stored_up_to(f, loop, 1 + (uint64_t)day);
        db_text(f, june, got, sizeof got);
        /* 30 June: still open; 1 July: June has ended */
        assert_string_equal(got, day == 1 ? "0" : "3");
    }
    expect_db(f, through, "2024-07-01");
    expect_db(f, "SELECT value FROM cells WHERE period = '2024-06' AND scope = ''", "4");
    expect_db(f, "SELECT count(*) FROM cells WHERE period IN ('2024-07', '2024-Q3', '2024')", "0");
    loop_close(f);
    t_now_ms = T_NOW;
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gauges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ratio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_preloaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preload_abandoned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_same_cell_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_database_forgets_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_text_in_integer_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_prunes_days_by_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gauge_event_times_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_schema2_converted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_schema2_unconvertible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_batch_stored_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_sums, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_periods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_month_end_day_by_day, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_late_old_day, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_in_turns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gauge_reuses_pairs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_day_after_day, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shanghai_year_end, setup_shanghai, teardown),
        cmocka_unit_test_setup_teardown(test_shanghai_leap_day, setup_shanghai, teardown),
        cmocka_unit_test_setup_teardown(test_shanghai_gauge_boundaries, setup_shanghai, teardown),
        cmocka_unit_test_setup_teardown(test_shanghai_retention, setup_shanghai, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
