/* Unit tests of checkpoints: engine serialization (engine_persist.c) and
 * the checkpoint files (checkpoint.c), driven by a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "crc32c.h"
#include "tally_error.h"

/* ---- fake clock, calendar ---- */

static int64_t fake_ms;

static int64_t fake_now(void *ctx)
{
    (void)ctx;
    return fake_ms;
}

static const tclock_t fake_clock = {fake_now, NULL};

static int64_t days_of(int y, int m, int d)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t days = 0;
    for (int yy = 1970; yy < y; yy++) {
        bool leap = (yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0;
        days += leap ? 366 : 365;
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    for (int mm = 1; mm < m; mm++) {
        days += mdays[mm - 1] + (mm == 2 && leap);
    }
    return days + d - 1;
}

/* UTC ms of a wall-clock time in Asia/Shanghai (UTC+8). */
static int64_t cst(int y, int mo, int d, int h, int mi, int s)
{
    return ((days_of(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) - 8 * 3600) * 1000;
}

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define DAY_MS  86400000LL

/* Metric ids of the fixture. */
enum { M_CASES = 1, M_RESOLVED, M_STAFF, M_NEG, M_RATE, M_STAFF_RATE, M_UNUSED_GAUGE };

/* ---- helpers ---- */

static void init_engine(engine_t *e, const engine_config_t *cfg, int64_t now)
{
    fake_ms = now;
    assert_int_equal(engine_init(e, cfg, &fake_clock), 0);
}

static void init_default(engine_t *e, int64_t now)
{
    engine_config_t cfg;
    engine_config_default(&cfg);
    init_engine(e, &cfg, now);
}

static void declare(engine_t *e)
{
    assert_int_equal(engine_define_metric(e, M_STAFF, PROTO_KIND_GAUGE), 0);
    assert_int_equal(engine_define_metric(e, M_UNUSED_GAUGE, PROTO_KIND_GAUGE), 0);
    assert_int_equal(engine_define_metric(e, M_CASES, PROTO_KIND_COUNTER), 0);
    assert_int_equal(engine_define_ratio(e, M_RATE, M_RESOLVED, M_CASES), 0);
    assert_int_equal(engine_define_ratio(e, M_STAFF_RATE, M_CASES, M_STAFF), 0);
}

static void put1(engine_t *e, uint32_t town, int64_t t, uint32_t metric, int64_t v)
{
    engine_sample_t s = {metric, v};
    assert_int_equal(engine_apply(e, town, t, &s, 1, NULL), 0);
}

/* A mix of counters and gauges over five townships and many times, the
 * clock standing at 23:40 on New Year's Eve so that samples from just
 * after midnight sit in the next day, month, quarter and year. */
static void fill(engine_t *e)
{
    int64_t now = fake_ms;
    for (uint32_t town = 1; town <= 5; town++) {
        put1(e, town, now, M_CASES, 10 * town);
        put1(e, town, now - 10 * MIN_MS, M_RESOLVED, 3 * town);
        put1(e, town, now - 50 * MIN_MS, M_CASES, 7);
        put1(e, town, now - 5 * HOUR_MS, M_CASES, 100 + town);
        put1(e, town, now - 20 * HOUR_MS, M_RESOLVED, 11);     /* yesterday */
        put1(e, town, now - 3 * DAY_MS, M_CASES, -4);          /* in 7d, 30d */
        put1(e, town, now - 40 * DAY_MS, M_CASES, 1000);       /* total, year */
        put1(e, town, now + 30 * 1000, M_CASES, 2);            /* slightly early */
        put1(e, town, cst(2025, 1, 1, 0, 5, 0), M_CASES, 500); /* tomorrow */
        put1(e, town, now - 2 * MIN_MS, M_STAFF, 20 + town);
        put1(e, town, now - 30 * MIN_MS, M_STAFF, 99); /* older: ignored */
        put1(e, town, now - 7 * HOUR_MS, M_NEG, -(int64_t)town * 1000000007LL);
    }
    put1(e, 3, now - 59 * MIN_MS, M_NEG, INT64_MAX / 4);
    put1(e, 2, now - 61 * MIN_MS, M_NEG, INT64_MIN / 4);
}

typedef struct items {
    engine_item_t *v;
    size_t n, cap;
} items_t;

static int collect(void *ctx, const engine_item_t *it)
{
    items_t *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = realloc(c->v, c->cap * sizeof(*c->v));
        assert_non_null(c->v);
    }
    c->v[c->n++] = *it;
    return 0;
}

static int by_key(const void *a, const void *b)
{
    const engine_item_t *x = a, *y = b;
    if (x->metric != y->metric) {
        return x->metric < y->metric ? -1 : 1;
    }
    if (x->town != y->town) {
        return x->town < y->town ? -1 : 1;
    }
    return (int)x->kind - (int)y->kind;
}

static items_t all_items(const engine_t *e)
{
    items_t c = {0};
    assert_int_equal(engine_foreach(e, collect, &c), 0);
    if (c.n > 0) {
        qsort(c.v, c.n, sizeof(*c.v), by_key);
    }
    return c;
}

static items_t drained(engine_t *e)
{
    items_t c = {0};
    engine_drain_dirty(e, UINT32_MAX, collect, &c);
    if (c.n > 0) {
        qsort(c.v, c.n, sizeof(*c.v), by_key);
    }
    return c;
}

static void same_values(const engine_t *a, const engine_t *b, uint32_t metric, uint32_t town)
{
    engine_values_t va, vb;
    assert_int_equal(engine_read(a, metric, town, &va), 0);
    assert_int_equal(engine_read(b, metric, town, &vb), 0);
    assert_int_equal(va.kind, vb.kind);
    assert_int_equal(va.change_ms, vb.change_ms);
    assert_int_equal(va.ncols, vb.ncols);
    for (uint32_t i = 0; i < va.ncols; i++) {
        const engine_value_t *x = &va.col[i], *y = &vb.col[i];
        assert_string_equal(x->name, y->name);
        if (x->present != y->present || x->num != y->num || x->den != y->den) {
            fail_msg("metric %u town %u column %s: %s%lld/%lld vs %s%lld/%lld", metric, town,
                     x->name, x->present ? "" : "(none) ", (long long)x->num, (long long)x->den,
                     y->present ? "" : "(none) ", (long long)y->num, (long long)y->den);
        }
    }
}

/* Every series and ratio scope of a exists in b with the same values in
 * every column, and b has no others. */
static void same_engines(const engine_t *a, const engine_t *b)
{
    assert_int_equal(engine_now_ms(a), engine_now_ms(b));
    assert_int_equal(engine_series_count(a), engine_series_count(b));
    items_t ia = all_items(a), ib = all_items(b);
    assert_int_equal(ia.n, ib.n);
    for (size_t i = 0; i < ia.n; i++) {
        assert_int_equal(by_key(&ia.v[i], &ib.v[i]), 0);
        assert_int_equal(ia.v[i].change_ms, ib.v[i].change_ms);
        same_values(a, b, ia.v[i].metric, ia.v[i].town);
    }
    free(ia.v);
    free(ib.v);
}

/* Both engines report the same dirty series and scopes, with the same
 * change times; returns how many. */
static size_t same_dirty(engine_t *a, engine_t *b)
{
    items_t da = drained(a), db = drained(b);
    assert_int_equal(da.n, db.n);
    for (size_t i = 0; i < da.n; i++) {
        assert_int_equal(by_key(&da.v[i], &db.v[i]), 0);
        assert_int_equal(da.v[i].change_ms, db.v[i].change_ms);
    }
    free(da.v);
    free(db.v);
    return da.n;
}

typedef struct mem {
    uint8_t *p;
    size_t n;
} mem_t;

static int to_mem(void *ctx, const void *buf, size_t len)
{
    mem_t *m = ctx;
    m->p = realloc(m->p, m->n + len);
    assert_non_null(m->p);
    memcpy(m->p + m->n, buf, len);
    m->n += len;
    return 0;
}

static mem_t save(const engine_t *e)
{
    mem_t m = {NULL, 0};
    assert_int_equal(engine_save(e, to_mem, &m), 0);
    return m;
}

/* ---- engine round trip ---- */

static void test_engine_round_trip_and_future(void **state)
{
    (void)state;
    engine_t a, b;
    init_default(&a, cst(2024, 12, 31, 23, 40, 0));
    declare(&a);
    fill(&a);
    assert_true(engine_series_count(&a) > 20);
    mem_t m = save(&a);

    /* The new engine starts two hours later, as after a restart: the load
     * puts it back at the saved now. */
    init_default(&b, cst(2025, 1, 1, 1, 40, 0));
    declare(&b); /* identical declarations are accepted */
    char err[512];
    assert_int_equal(engine_load(&b, m.p, m.n, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(engine_dirty_count(&b), 0);
    assert_int_equal(engine_metric_kind(&b, M_STAFF), PROTO_KIND_GAUGE);
    assert_int_equal(engine_metric_kind(&b, M_UNUSED_GAUGE), PROTO_KIND_GAUGE);
    assert_int_equal(engine_metric_kind(&b, M_RATE), PROTO_KIND_RATIO);
    same_engines(&a, &b);
    same_values(&a, &b, M_RATE, 0);
    same_values(&a, &b, M_STAFF_RATE, 4);
    free(drained(&a).v); /* the saved engine's marks from fill() */
    assert_int_equal(engine_next_tick_ms(&a), engine_next_tick_ms(&b));

    /* Through window expiry and midnight, the two stay identical, and the
     * same series become dirty at the same moments. */
    static const int64_t steps[] = {
        1000,        5 * MIN_MS, 10 * MIN_MS, 15 * MIN_MS, 21 * MIN_MS,  30 * MIN_MS,
        50 * MIN_MS, HOUR_MS,    2 * HOUR_MS, 6 * HOUR_MS, 19 * HOUR_MS, DAY_MS,
        3 * DAY_MS,  8 * DAY_MS, 31 * DAY_MS, 95 * DAY_MS, 400 * DAY_MS,
    };
    int64_t t0 = engine_now_ms(&a);
    size_t changes = 0;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        fake_ms = t0 + steps[i];
        engine_tick(&a, fake_ms);
        engine_tick(&b, fake_ms);
        changes += same_dirty(&a, &b);
        same_engines(&a, &b);
        if (i == 4) {
            /* New samples after the load: as in journal replay. */
            put1(&a, 2, fake_ms - 3 * MIN_MS, M_CASES, 5);
            put1(&b, 2, fake_ms - 3 * MIN_MS, M_CASES, 5);
            put1(&a, 6, fake_ms, M_STAFF, 8);
            put1(&b, 6, fake_ms, M_STAFF, 8);
            changes += same_dirty(&a, &b);
            same_engines(&a, &b);
        }
    }
    assert_true(changes > 30); /* expiry and period ends did happen */
    free(m.p);
    engine_free(&a);
    engine_free(&b);
}

/* The midnight rollover moves the "tomorrow" sample into today. */
static void test_next_period_slots_survive(void **state)
{
    (void)state;
    engine_t a, b;
    init_default(&a, cst(2024, 12, 31, 23, 50, 0));
    put1(&a, 1, cst(2025, 1, 1, 0, 1, 0), M_CASES, 42);
    mem_t m = save(&a);
    init_default(&b, fake_ms);
    assert_int_equal(engine_load(&b, m.p, m.n, NULL, 0), 0);
    engine_tick(&b, cst(2025, 1, 1, 0, 2, 0));
    engine_values_t v;
    assert_int_equal(engine_read(&b, M_CASES, 1, &v), 0);
    for (uint32_t c = 4; c < 8; c++) { /* today, month, quarter, year */
        assert_true(v.col[c].present);
        assert_int_equal(v.col[c].num, 42);
    }
    free(m.p);
    engine_free(&a);
    engine_free(&b);
}

/* A loaded counter judges overflow exactly as the saved one did, with
 * large values both inside and past its bound on the cells. */
static void test_overflow_after_load(void **state)
{
    (void)state;
    engine_t a, b;
    init_default(&a, cst(2024, 6, 1, 10, 0, 0));
    int64_t now = fake_ms;
    put1(&a, 1, now, M_CASES, INT64_MAX / 16);
    put1(&a, 1, now - 3 * DAY_MS, M_CASES, -(INT64_MAX / 16));
    put1(&a, 2, now, M_NEG, INT64_MIN / 2);
    mem_t m = save(&a);
    init_default(&b, now);
    assert_int_equal(engine_load(&b, m.p, m.n, NULL, 0), 0);
    static const struct {
        uint32_t town, metric;
        int64_t back_ms, v;
        int want;
    } probe[] = {
        {1, M_CASES, 0, INT64_MAX / 2, 0},                  /* past the bound, fits */
        {1, M_CASES, 0, INT64_MAX / 2, TALLY_EOVERFLOW},    /* "1h" would overflow */
        {1, M_CASES, 0, INT64_MAX / 2 - INT64_MAX / 16, 0}, /* fits exactly */
        {1, M_CASES, 0, 1, 0},
        {1, M_CASES, 0, 1, TALLY_EOVERFLOW},
        {1, M_CASES, 3 * DAY_MS, INT64_MAX / 2, TALLY_EOVERFLOW}, /* total, not 1h */
        {1, M_CASES, 3 * DAY_MS, -1, 0},
        {2, M_NEG, 0, INT64_MIN / 2, 0},
        {2, M_NEG, 0, -1, TALLY_EOVERFLOW},
        {2, M_NEG, 0, INT64_MAX, 0},
    };
    for (size_t i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
        engine_sample_t s = {probe[i].metric, probe[i].v};
        int64_t t = now - probe[i].back_ms;
        int ra = engine_apply(&a, probe[i].town, t, &s, 1, NULL);
        int rb = engine_apply(&b, probe[i].town, t, &s, 1, NULL);
        if (ra != probe[i].want || rb != probe[i].want) {
            fail_msg("probe %zu: %d before the save, %d after the load, want %d", i, ra, rb,
                     probe[i].want);
        }
    }
    same_engines(&a, &b);
    free(m.p);
    engine_free(&a);
    engine_free(&b);
}

static void test_empty_engine_and_no_windows(void **state)
{
    (void)state;
    engine_config_t cfg;
    engine_config_default(&cfg);
    cfg.nwindows = 0;
    engine_t a, b;
    init_engine(&a, &cfg, cst(2024, 6, 1, 12, 0, 0));
    mem_t m = save(&a);
    init_engine(&b, &cfg, fake_ms);
    assert_int_equal(engine_load(&b, m.p, m.n, NULL, 0), 0);
    assert_int_equal(engine_series_count(&b), 0);
    free(m.p);
    put1(&a, 1, fake_ms, M_CASES, 3);
    m = save(&a);
    engine_free(&b);
    init_engine(&b, &cfg, fake_ms);
    assert_int_equal(engine_load(&b, m.p, m.n, NULL, 0), 0);
    same_engines(&a, &b);
    free(m.p);
    engine_free(&a);
    engine_free(&b);
}

static void expect_load_fails(const mem_t *m, const engine_config_t *cfg, int want,
                              const char *needle)
{
    engine_t b;
    init_engine(&b, cfg, fake_ms);
    char err[600];
    assert_int_equal(engine_load(&b, m->p, m->n, err, sizeof(err)), want);
    if (strstr(err, needle) == NULL) {
        fail_msg("message '%s' does not say '%s'", err, needle);
    }
    engine_free(&b);
}

static void test_window_config_mismatch(void **state)
{
    (void)state;
    engine_t a;
    init_default(&a, cst(2024, 6, 1, 12, 0, 0));
    fill(&a);
    mem_t m = save(&a);
    engine_config_t cfg;
    engine_config_default(&cfg);
    cfg.buckets = 30;
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "windows changed");
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "with 60 buckets each, the configuration has");
    engine_config_default(&cfg);
    cfg.windows[1].name = "day";
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "day=86400000ms");
    engine_config_default(&cfg);
    cfg.windows[3].ms = 2 * 2592000000LL;
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "30d=5184000000ms");
    engine_config_default(&cfg);
    cfg.nwindows = 3;
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "windows changed");
    cfg.nwindows = 4;
    cfg.max_series = 5;
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "above max_series (5)");
    /* Local days end at another moment in another zone. */
    engine_config_default(&cfg);
    cfg.zone = "UTC";
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "time zone changed");
    engine_config_default(&cfg);
    engine_t b;
    init_engine(&b, &cfg, fake_ms); /* back to Asia/Shanghai for the other tests */
    assert_int_equal(engine_load(&b, m.p, m.n, NULL, 0), 0);
    engine_free(&b);
    free(m.p);
    engine_free(&a);
}

static void test_definition_conflicts(void **state)
{
    (void)state;
    engine_t a, b;
    init_default(&a, cst(2024, 6, 1, 12, 0, 0));
    declare(&a);
    fill(&a);
    mem_t m = save(&a);
    char err[512];

    init_default(&b, fake_ms);
    assert_int_equal(engine_define_metric(&b, M_STAFF, PROTO_KIND_COUNTER), 0);
    assert_int_equal(engine_load(&b, m.p, m.n, err, sizeof(err)), TALLY_ECONFIG);
    assert_non_null(strstr(err, "metric id 3: declared a counter before loading, but a gauge"));
    engine_free(&b);

    init_default(&b, fake_ms);
    assert_int_equal(engine_define_ratio(&b, M_RATE, M_CASES, M_RESOLVED), 0);
    assert_int_equal(engine_load(&b, m.p, m.n, err, sizeof(err)), TALLY_ECONFIG);
    assert_non_null(strstr(err, "ratio 1 / 2 before loading, but 2 / 1"));
    engine_free(&b);

    /* A metric with saved (counter) series cannot be a ratio now. */
    init_default(&b, fake_ms);
    assert_int_equal(engine_define_ratio(&b, M_NEG, M_CASES, M_RESOLVED), 0);
    assert_int_equal(engine_load(&b, m.p, m.n, err, sizeof(err)), TALLY_ECONFIG);
    assert_non_null(strstr(err, "is a counter, but the metric is declared a ratio"));
    engine_free(&b);

    /* Loading twice into the same engine is a programmer error. */
    init_default(&b, fake_ms);
    assert_int_equal(engine_load(&b, m.p, m.n, NULL, 0), 0);
    assert_int_equal(engine_load(&b, m.p, m.n, err, sizeof(err)), TALLY_EINVAL);
    engine_free(&b);
    free(m.p);
    engine_free(&a);
}

/* Every truncation and many corruptions of the blob are refused cleanly
 * (no crash, no sanitizer report), never half-accepted as success. */
static void test_malformed_blob(void **state)
{
    (void)state;
    engine_t a, b;
    init_default(&a, cst(2024, 6, 1, 12, 0, 0));
    declare(&a);
    fill(&a);
    mem_t m = save(&a);
    for (size_t len = 0; len < m.n; len += (len < 300 ? 1 : 97)) {
        init_default(&b, fake_ms);
        int rc = engine_load(&b, m.p, len, NULL, 0);
        assert_true(rc == TALLY_EIO || rc == TALLY_ECONFIG);
        engine_free(&b);
    }
    uint8_t *copy = malloc(m.n);
    int accepted = 0;
    for (size_t at = 0; at < m.n; at += 7) {
        memcpy(copy, m.p, m.n);
        copy[at] ^= 0x5a;
        init_default(&b, fake_ms);
        int rc = engine_load(&b, copy, m.n, NULL, 0);
        assert_true(rc == 0 || rc == TALLY_EIO || rc == TALLY_ECONFIG || rc == TALLY_ENOMEM);
        accepted += rc == 0;
        engine_free(&b);
    }
    /* Value bytes may flip into other valid values; that is what the
     * checkpoint's CRC is for.  Structure bytes must not pass. */
    assert_true(accepted < (int)(m.n / 7));
    free(copy);
    free(m.p);
    engine_free(&a);
}

/* ---- checkpoint files ---- */

typedef struct state {
    intern_t towns, metrics;
    engine_t engine;
    dedup_t dedup;
} state_t;

static void state_init(state_t *s, int64_t now)
{
    assert_int_equal(intern_init(&s->towns, 200001), 0);
    assert_int_equal(intern_init(&s->metrics, 1000), 0);
    engine_config_t cfg;
    engine_config_default(&cfg);
    cfg.max_series = 400000;
    init_engine(&s->engine, &cfg, now);
    assert_int_equal(dedup_init(&s->dedup, 100), 0);
}

static void state_free(state_t *s)
{
    intern_free(&s->towns);
    intern_free(&s->metrics);
    engine_free(&s->engine);
    dedup_free(&s->dedup);
}

static const char *const metric_names[] = {
    "disputes.screened",        "disputes.resolved",    "staff.on_duty", "budget.delta",
    "disputes.resolution_rate", "staff.cases_per_head", "unused.gauge"};

static void client_id(uint8_t id[PROTO_CLIENT_ID_LEN], uint32_t n)
{
    memset(id, 0x11, PROTO_CLIENT_ID_LEN);
    memcpy(id, &n, sizeof(n));
}

/* A daemon-like state: names interned as the catalog would, the engine
 * filled, clients recorded. */
static void state_fill(state_t *s)
{
    static const char *const towns[] = {"城关镇", "河口乡", "Xiqiao", "东山镇", "north-ward"};
    for (uint32_t i = 0; i < 5; i++) {
        assert_int_equal(intern_add(&s->towns, towns[i], strlen(towns[i])), (int)i + 1);
    }
    for (uint32_t i = 0; i < 7; i++) {
        assert_int_equal(intern_add(&s->metrics, metric_names[i], strlen(metric_names[i])),
                         (int)i + 1);
    }
    declare(&s->engine);
    fill(&s->engine);
    uint8_t id[PROTO_CLIENT_ID_LEN];
    for (uint32_t c = 1; c <= 3; c++) {
        client_id(id, c);
        for (uint64_t seq = 1; seq <= 40 * c; seq += c) {
            assert_int_equal(dedup_mark(&s->dedup, id, seq), 0);
        }
    }
    client_id(id, 9);
    assert_int_equal(dedup_mark(&s->dedup, id, 5000), 0);
    assert_int_equal(dedup_mark(&s->dedup, id, 4001), 0);
}

static char tmpdir[64];

static void make_dir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tally_ckp_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
}

static void remove_dir(void)
{
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (de->d_name[0] != '.') {
            char p[600];
            snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
            assert_int_equal(unlink(p), 0);
        }
    }
    closedir(d);
    assert_int_equal(rmdir(tmpdir), 0);
}

static bool file_exists(const char *name)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    return access(p, F_OK) == 0;
}

static char *path_of(uint64_t gen)
{
    static char p[600];
    char name[CHECKPOINT_NAME_MAX];
    checkpoint_file_name(name, gen);
    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    return p;
}

static int count_files(void)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        n += de->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static void write_ckp(state_t *s, uint64_t gen, uint64_t *keep)
{
    checkpoint_meta_t meta = {1735660000000LL + (int64_t)gen, gen, 1000 * gen + 1, 77 * gen};
    char err[512];
    assert_int_equal(checkpoint_write(tmpdir, &meta, &s->towns, &s->metrics, &s->engine, &s->dedup,
                                      keep, err, sizeof(err)),
                     0);
    assert_string_equal(err, "");
}

static int load(state_t *s, checkpoint_meta_t *meta, char *err, size_t errlen)
{
    state_init(s, cst(2025, 3, 1, 8, 0, 0));
    return checkpoint_load_latest(tmpdir, meta, &s->towns, &s->metrics, &s->engine, &s->dedup, err,
                                  errlen);
}

static void test_file_round_trip(void **state)
{
    (void)state;
    make_dir();
    state_t a, b;
    state_init(&a, cst(2024, 12, 31, 23, 40, 0));
    state_fill(&a);
    uint64_t keep = 0;
    write_ckp(&a, 0x1234, &keep);
    assert_int_equal(keep, 0x1234);
    assert_true(file_exists("state-0000000000001234.ckp"));
    assert_int_equal(count_files(), 1);

    checkpoint_meta_t meta;
    char err[1024];
    assert_int_equal(load(&b, &meta, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(meta.created_ms, 1735660000000LL + 0x1234);
    assert_int_equal(meta.journal_gen, 0x1234);
    assert_int_equal(meta.next_pos, 1000 * 0x1234 + 1);
    assert_int_equal(meta.publish_seq, 77 * 0x1234);
    /* Names come back with their ids. */
    assert_int_equal(intern_count(&b.towns), 5);
    assert_int_equal(intern_count(&b.metrics), 7);
    for (uint32_t id = 1; id <= 5; id++) {
        assert_string_equal(intern_name(&b.towns, id, NULL), intern_name(&a.towns, id, NULL));
    }
    for (uint32_t id = 1; id <= 7; id++) {
        assert_string_equal(intern_name(&b.metrics, id, NULL), metric_names[id - 1]);
    }
    assert_int_equal(intern_find(&b.towns, "河口乡", strlen("河口乡")), 2);
    same_engines(&a.engine, &b.engine);
    /* The catalog declared afterwards agrees, or conflicts visibly. */
    assert_int_equal(engine_define_metric(&b.engine, M_STAFF, PROTO_KIND_GAUGE), 0);
    assert_int_equal(engine_define_metric(&b.engine, M_CASES, PROTO_KIND_GAUGE), TALLY_EEXIST);
    assert_int_equal(intern_add(&b.metrics, "new.metric", 10), 8);
    /* De-duplication state. */
    assert_int_equal(dedup_count(&b.dedup), 4);
    uint8_t id[PROTO_CLIENT_ID_LEN];
    for (uint32_t c = 1; c <= 3; c++) {
        client_id(id, c);
        for (uint64_t seq = 1; seq <= 40 * c + 1; seq++) {
            bool marked = seq <= 40 * c && (seq - 1) % c == 0;
            assert_int_equal(dedup_check(&b.dedup, id, seq), marked ? DEDUP_DUPLICATE : DEDUP_NEW);
        }
    }
    client_id(id, 9);
    assert_int_equal(dedup_check(&b.dedup, id, 5000), DEDUP_DUPLICATE);
    assert_int_equal(dedup_check(&b.dedup, id, 4001), DEDUP_DUPLICATE);
    assert_int_equal(dedup_check(&b.dedup, id, 4002), DEDUP_NEW);
    assert_int_equal(dedup_check(&b.dedup, id, 3976), TALLY_ESTALESEQ);
    client_id(id, 10);
    assert_int_equal(dedup_check(&b.dedup, id, 1), DEDUP_NEW);

    state_free(&b);
    state_free(&a);
    remove_dir();
}

static void test_keeps_two_and_cleans_temps(void **state)
{
    (void)state;
    make_dir();
    state_t a;
    state_init(&a, cst(2024, 6, 1, 12, 0, 0));
    state_fill(&a);
    uint64_t keep;
    write_ckp(&a, 1, &keep);
    assert_int_equal(keep, 1);
    write_ckp(&a, 2, &keep);
    assert_int_equal(keep, 1);
    /* A crashed write left a temporary file behind. */
    char p[600];
    snprintf(p, sizeof(p), "%s/state-0000000000000003.ckp.tmp", tmpdir);
    FILE *f = fopen(p, "w");
    fputs("half a checkpoint", f);
    fclose(f);
    write_ckp(&a, 4, &keep);
    assert_int_equal(keep, 2);
    assert_false(file_exists("state-0000000000000001.ckp"));
    assert_true(file_exists("state-0000000000000002.ckp"));
    assert_true(file_exists("state-0000000000000004.ckp"));
    assert_false(file_exists("state-0000000000000003.ckp.tmp"));
    assert_int_equal(count_files(), 2);

    /* Load ignores and deletes a leftover temporary file too, even one
     * newer than every checkpoint. */
    snprintf(p, sizeof(p), "%s/state-0000000000000009.ckp.tmp", tmpdir);
    f = fopen(p, "w");
    fputs("TALLYCKP torn", f);
    fclose(f);
    state_t b;
    checkpoint_meta_t meta;
    char err[1024];
    assert_int_equal(load(&b, &meta, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(meta.journal_gen, 4);
    assert_false(file_exists("state-0000000000000009.ckp.tmp"));
    same_engines(&a.engine, &b.engine);
    state_free(&b);
    state_free(&a);
    remove_dir();
}

/* Two checkpoints of different states; the newest gets damaged. */
static void two_checkpoints(state_t *a)
{
    state_init(a, cst(2024, 6, 1, 12, 0, 0));
    state_fill(a);
    write_ckp(a, 1, NULL);
    put1(&a->engine, 1, fake_ms, M_CASES, 123456);
    write_ckp(a, 2, NULL);
}

static void flip_byte(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    if (off < 0) {
        off += st.st_size;
    }
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x01;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void expect_fallback(const char *why)
{
    state_t b;
    checkpoint_meta_t meta;
    char err[1024];
    assert_int_equal(load(&b, &meta, err, sizeof(err)), 0);
    assert_int_equal(meta.journal_gen, 1);
    if (strstr(err, "skipped damaged checkpoint state-0000000000000002.ckp") == NULL ||
        strstr(err, why) == NULL || strstr(err, "loaded ") == NULL ||
        strstr(err, "state-0000000000000001.ckp instead") == NULL) {
        fail_msg("unexpected report: %s", err);
    }
    /* The older state: without the last sample. */
    engine_values_t v;
    assert_int_equal(engine_read(&b.engine, M_CASES, 1, &v), 0);
    assert_int_equal(v.col[v.ncols - 1].num, 10 + 7 + 101 - 4 + 1000 + 2 + 500);
    assert_false(file_exists("state-0000000000000002.ckp"));
    assert_true(file_exists("state-0000000000000002.ckp.damaged"));
    state_free(&b);
}

static void test_corrupt_newest_falls_back(void **state)
{
    (void)state;
    make_dir();
    state_t a;
    two_checkpoints(&a);
    flip_byte(path_of(2), -900);
    expect_fallback("CRC-32C mismatch");

    /* With the only remaining checkpoint damaged too: EIO, naming it. */
    flip_byte(path_of(1), 100);
    state_t b;
    checkpoint_meta_t meta;
    char err[1024];
    assert_int_equal(load(&b, &meta, err, sizeof(err)), TALLY_EIO);
    assert_non_null(strstr(err, "no usable checkpoint"));
    assert_non_null(strstr(err, "state-0000000000000001.ckp: CRC-32C mismatch"));
    state_free(&b);
    state_free(&a);
    remove_dir();
}

static void test_torn_newest_falls_back(void **state)
{
    (void)state;
    make_dir();
    state_t a;
    two_checkpoints(&a);
    struct stat st;
    assert_int_equal(stat(path_of(2), &st), 0);
    assert_int_equal(truncate(path_of(2), st.st_size / 2), 0);
    expect_fallback("truncated or torn");

    /* Torn below the header size, and empty. */
    assert_int_equal(truncate(path_of(1), 40), 0);
    state_t b;
    checkpoint_meta_t meta;
    char err[1024];
    assert_int_equal(load(&b, &meta, err, sizeof(err)), TALLY_EIO);
    assert_non_null(strstr(err, "shorter than its header"));
    state_free(&b);
    state_free(&a);
    remove_dir();
}

/* A newest "checkpoint" that cannot be read (here: a directory) is
 * skipped but left where it is. */
static void test_unreadable_newest_skipped(void **state)
{
    (void)state;
    make_dir();
    state_t a;
    two_checkpoints(&a);
    char p[600];
    snprintf(p, sizeof(p), "%s/state-0000000000000003.ckp", tmpdir);
    assert_int_equal(mkdir(p, 0700), 0);
    state_t b;
    checkpoint_meta_t meta;
    char err[1024];
    assert_int_equal(load(&b, &meta, err, sizeof(err)), 0);
    assert_int_equal(meta.journal_gen, 2);
    assert_non_null(strstr(err, "skipped unreadable checkpoint state-0000000000000003.ckp"));
    assert_non_null(strstr(err, "state-0000000000000002.ckp instead"));
    assert_true(file_exists("state-0000000000000003.ckp"));
    same_engines(&a.engine, &b.engine);
    assert_int_equal(rmdir(p), 0);
    state_free(&b);
    state_free(&a);
    remove_dir();
}

static void test_newer_version_refused(void **state)
{
    (void)state;
    make_dir();
    state_t a;
    two_checkpoints(&a);
    /* An intact file of version 2: its CRC is right. */
    int fd = open(path_of(2), O_RDWR);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *p = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
    p[8] = 2;
    uint32_t crc = crc32c(0, p, (size_t)st.st_size - 4);
    for (int i = 0; i < 4; i++) {
        p[st.st_size - 4 + i] = (uint8_t)(crc >> (8 * i));
    }
    assert_int_equal(pwrite(fd, p, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    free(p);
    state_t b;
    checkpoint_meta_t meta;
    char err[1024];
    assert_int_equal(load(&b, &meta, err, sizeof(err)), TALLY_ECONFIG);
    assert_non_null(strstr(err, "state-0000000000000002.ckp has format version 2; this tallyd "
                                "reads version 1 only"));
    /* Refused, not set aside: a newer tallyd may still want it. */
    assert_true(file_exists("state-0000000000000002.ckp"));
    state_free(&b);
    state_free(&a);
    remove_dir();
}

static void test_config_mismatch_refused(void **state)
{
    (void)state;
    make_dir();
    state_t a;
    two_checkpoints(&a);
    intern_t towns, metrics;
    engine_t e;
    dedup_t dd;
    assert_int_equal(intern_init(&towns, 100), 0);
    assert_int_equal(intern_init(&metrics, 100), 0);
    assert_int_equal(dedup_init(&dd, 100), 0);
    engine_config_t cfg;
    engine_config_default(&cfg);
    cfg.windows[0].name = "60m";
    init_engine(&e, &cfg, fake_ms);
    checkpoint_meta_t meta;
    char err[1024];
    assert_int_equal(
        checkpoint_load_latest(tmpdir, &meta, &towns, &metrics, &e, &dd, err, sizeof(err)),
        TALLY_ECONFIG);
    assert_non_null(strstr(err, "state-0000000000000002.ckp: windows changed"));
    assert_true(file_exists("state-0000000000000002.ckp"));
    intern_free(&towns);
    intern_free(&metrics);
    dedup_free(&dd);
    engine_free(&e);

    /* Too few client slots, township names. */
    state_t b;
    state_init(&b, fake_ms);
    dedup_free(&b.dedup);
    assert_int_equal(dedup_init(&b.dedup, 2), 0);
    assert_int_equal(checkpoint_load_latest(tmpdir, &meta, &b.towns, &b.metrics, &b.engine,
                                            &b.dedup, err, sizeof(err)),
                     TALLY_ECONFIG);
    assert_non_null(strstr(err, "tracks 4 client ids, above max_clients (2)"));
    state_free(&b);
    state_init(&b, fake_ms);
    intern_free(&b.towns);
    assert_int_equal(intern_init(&b.towns, 3), 0);
    assert_int_equal(checkpoint_load_latest(tmpdir, &meta, &b.towns, &b.metrics, &b.engine,
                                            &b.dedup, err, sizeof(err)),
                     TALLY_ECONFIG);
    assert_non_null(strstr(err, "holds 5 township names, above the configured limit of 3"));
    state_free(&b);
    state_free(&a);
    remove_dir();
}

static void test_not_found_and_preconditions(void **state)
{
    (void)state;
    make_dir();
    state_t b;
    checkpoint_meta_t meta;
    char err[1024];
    assert_int_equal(load(&b, &meta, err, sizeof(err)), TALLY_ENOTFOUND);
    assert_non_null(strstr(err, "no checkpoint in"));
    state_free(&b);
    state_init(&b, fake_ms);
    assert_int_equal(checkpoint_load_latest("/nonexistent/tally", &meta, &b.towns, &b.metrics,
                                            &b.engine, &b.dedup, err, sizeof(err)),
                     TALLY_ENOTFOUND);
    /* The catalog was interned first: refused, the contract says load
     * into empty tables. */
    assert_int_equal(intern_add(&b.towns, "x", 1), 1);
    assert_int_equal(checkpoint_load_latest(tmpdir, &meta, &b.towns, &b.metrics, &b.engine,
                                            &b.dedup, err, sizeof(err)),
                     TALLY_EINVAL);
    assert_non_null(strstr(err, "declare the catalog after loading"));
    state_free(&b);

    /* A store into a missing directory fails cleanly. */
    void *buf;
    size_t len;
    state_init(&b, fake_ms);
    checkpoint_meta_t m = {1, 7, 1, 0};
    assert_int_equal(checkpoint_build(&m, &b.towns, &b.metrics, &b.engine, &b.dedup, &buf, &len,
                                      err, sizeof(err)),
                     0);
    assert_int_equal(checkpoint_store("/nonexistent/tally", buf, len, NULL, err, sizeof(err)),
                     TALLY_EIO);
    assert_non_null(strstr(err, "/nonexistent/tally"));
    ((uint8_t *)buf)[0] = 'X';
    assert_int_equal(checkpoint_store(tmpdir, buf, len, NULL, err, sizeof(err)), TALLY_EINVAL);
    free(buf);
    state_free(&b);
    assert_int_equal(count_files(), 0);
    remove_dir();
}

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 100k series (2000 townships x 50 metrics, plus the county's): size and
 * time, for the record; the loaded state must still match. */
static void test_large_state(void **state)
{
    (void)state;
    make_dir();
    state_t a;
    state_init(&a, cst(2024, 6, 1, 12, 0, 0));
    char name[32];
    for (uint32_t m = 1; m <= 50; m++) {
        snprintf(name, sizeof(name), "metric.%u", m);
        assert_int_equal(intern_add(&a.metrics, name, strlen(name)), (int)m);
    }
    engine_sample_t smp[50];
    for (uint32_t t = 1; t <= 2000; t++) {
        snprintf(name, sizeof(name), "town-%u", t);
        assert_int_equal(intern_add(&a.towns, name, strlen(name)), (int)t);
        for (uint32_t k = 0; k < 3; k++) {
            for (uint32_t m = 0; m < 50; m++) {
                smp[m] = (engine_sample_t){m + 1, (int64_t)(t * 7 + m + k)};
            }
            int64_t when = fake_ms - (int64_t)((t + k * 977) % 1440) * MIN_MS;
            assert_int_equal(engine_apply(&a.engine, t, when, smp, 50, NULL), 0);
        }
    }
    assert_int_equal(engine_series_count(&a.engine), 100050);
    checkpoint_meta_t meta = {1, 5, 1, 0};
    void *buf;
    size_t len;
    double t0 = secs();
    assert_int_equal(
        checkpoint_build(&meta, &a.towns, &a.metrics, &a.engine, &a.dedup, &buf, &len, NULL, 0), 0);
    double t1 = secs();
    assert_int_equal(checkpoint_store(tmpdir, buf, len, NULL, NULL, 0), 0);
    double t2 = secs();
    free(buf);
    state_t b;
    checkpoint_meta_t got;
    char err[1024];
    double t3 = secs();
    assert_int_equal(load(&b, &got, err, sizeof(err)), 0);
    double t4 = secs();
    printf("[ INFO     ] 100050 series: checkpoint %zu bytes (%.1f per series), build %.0f ms, "
           "store %.0f ms, load %.0f ms; engine memory %zu MiB\n",
           len, (double)len / 100050, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t4 - t3) * 1e3,
           engine_memory(&a.engine) >> 20);
    assert_true(len < (size_t)100050 * 200); /* sparse: far below the 2 KiB in memory */
    same_engines(&a.engine, &b.engine);
    engine_tick(&a.engine, fake_ms + 13 * HOUR_MS);
    engine_tick(&b.engine, fake_ms + 13 * HOUR_MS);
    assert_true(same_dirty(&a.engine, &b.engine) > 0);
    same_engines(&a.engine, &b.engine);
    state_free(&b);
    state_free(&a);
    remove_dir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_round_trip_and_future),
        cmocka_unit_test(test_next_period_slots_survive),
        cmocka_unit_test(test_overflow_after_load),
        cmocka_unit_test(test_empty_engine_and_no_windows),
        cmocka_unit_test(test_window_config_mismatch),
        cmocka_unit_test(test_definition_conflicts),
        cmocka_unit_test(test_malformed_blob),
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_keeps_two_and_cleans_temps),
        cmocka_unit_test(test_corrupt_newest_falls_back),
        cmocka_unit_test(test_torn_newest_falls_back),
        cmocka_unit_test(test_unreadable_newest_skipped),
        cmocka_unit_test(test_newer_version_refused),
        cmocka_unit_test(test_config_mismatch_refused),
        cmocka_unit_test(test_not_found_and_preconditions),
        cmocka_unit_test(test_large_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
