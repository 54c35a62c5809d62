/* Unit tests of the checkpoint files (checkpoint.c), driven by a fake clock;
 * engine serialization itself is tested in test_checkpoint_engine.c. */
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

#include "checkpoint_test_util.h"

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
    checkpoint_meta_t meta = {1735660000000LL + (int64_t)gen, gen, 1000 * gen + 1, 77 * gen, 0};
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
            assert_int_equal(dedup_check(&b.dedup, id, seq), marked ? TALLY_EEXIST : 0);
        }
    }
    client_id(id, 9);
    assert_int_equal(dedup_check(&b.dedup, id, 5000), TALLY_EEXIST);
    assert_int_equal(dedup_check(&b.dedup, id, 4001), TALLY_EEXIST);
    assert_int_equal(dedup_check(&b.dedup, id, 4002), 0);
    assert_int_equal(dedup_check(&b.dedup, id, 3976), TALLY_ESTALESEQ);
    client_id(id, 10);
    assert_int_equal(dedup_check(&b.dedup, id, 1), 0);

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

/* checkpoint_check_file() (a backup's check) finds what a load finds,
 * without loading. */
static void test_check_file(void **state)
{
    (void)state;
    make_dir();
    state_t a;
    two_checkpoints(&a);
    checkpoint_meta_t meta;
    char why[512];
    assert_int_equal(
        checkpoint_check_file(tmpdir, "state-0000000000000002.ckp", &meta, why, sizeof(why)), 0);
    assert_int_equal(meta.journal_gen, 2);
    assert_int_equal(meta.next_pos, 2001);
    assert_int_equal(meta.publish_seq, 154);
    flip_byte(path_of(2), -900);
    assert_int_equal(
        checkpoint_check_file(tmpdir, "state-0000000000000002.ckp", &meta, why, sizeof(why)),
        TALLY_EIO);
    assert_non_null(strstr(why, "CRC-32C mismatch"));
    struct stat st;
    assert_int_equal(stat(path_of(1), &st), 0);
    assert_int_equal(truncate(path_of(1), st.st_size / 2), 0);
    assert_int_equal(
        checkpoint_check_file(tmpdir, "state-0000000000000001.ckp", &meta, why, sizeof(why)),
        TALLY_EIO);
    assert_non_null(strstr(why, "truncated or torn"));
    assert_int_equal(truncate(path_of(1), 40), 0);
    assert_int_equal(
        checkpoint_check_file(tmpdir, "state-0000000000000001.ckp", &meta, why, sizeof(why)),
        TALLY_EIO);
    assert_non_null(strstr(why, "shorter than its header"));
    assert_int_equal(
        checkpoint_check_file(tmpdir, "state-0000000000000007.ckp", &meta, why, sizeof(why)),
        TALLY_EIO);
    assert_non_null(strstr(why, "cannot open it: No such file"));
    state_free(&a);
    remove_dir();
}

static void test_newer_version_refused(void **state)
{
    (void)state;
    make_dir();
    state_t a;
    two_checkpoints(&a);
    /* An intact file of a version newer than any this tallyd reads: its
     * CRC is right. */
    int fd = open(path_of(2), O_RDWR);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *p = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
    p[8] = 99;
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
    assert_non_null(strstr(err, "state-0000000000000002.ckp has format version 99; this tallyd "
                                "reads versions 1 to 3"));
    assert_int_equal(
        checkpoint_check_file(tmpdir, "state-0000000000000002.ckp", NULL, err, sizeof(err)),
        TALLY_ECONFIG);
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
    checkpoint_meta_t m = {1, 7, 1, 0, 0};
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
    checkpoint_meta_t meta = {1, 5, 1, 0, 0};
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
    /* The check of a backup reads it a MiB at a time: many chunks here. */
    assert_true(len > 3 << 20);
    char file[CHECKPOINT_NAME_MAX];
    checkpoint_file_name(file, 5);
    assert_int_equal(checkpoint_check_file(tmpdir, file, &got, err, sizeof(err)), 0);
    assert_int_equal(got.journal_gen, 5);
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
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_keeps_two_and_cleans_temps),
        cmocka_unit_test(test_corrupt_newest_falls_back),
        cmocka_unit_test(test_torn_newest_falls_back),
        cmocka_unit_test(test_unreadable_newest_skipped),
        cmocka_unit_test(test_check_file),
        cmocka_unit_test(test_newer_version_refused),
        cmocka_unit_test(test_config_mismatch_refused),
        cmocka_unit_test(test_not_found_and_preconditions),
        cmocka_unit_test(test_large_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
