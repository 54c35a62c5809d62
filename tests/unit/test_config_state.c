/* Unit tests of statecheck (tallyd --check-config FILE -s DIR): a
 * configuration checked against a saved state as the next start would
 * check it, from the checkpoint alone and without changing the directory;
 * and of engine_load_head, the picture of the state it builds. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "catalog.h"
#include "checkpoint.h"
#include "clock.h"
#include "config.h"
#include "dedup.h"
#include "engine.h"
#include "intern.h"
#include "statecheck.h"
#include "tally_error.h"

/* grid.zones a gauge with tallies kept with one decimal place, disputes.screened a counter with
 * tallies in many buckets and periods, talks.held a gauge declared but
 * never sent, a ratio over the counters. */
static const char state_conf[] = "[township gaoguan]\n[township bashan]\n"
                                 "[metric grid.zones]\nkind = gauge\nscale = 1\n"
                                 "[metric disputes.screened]\nkind = counter\n"
                                 "[metric disputes.resolved]\nkind = counter\n"
                                 "[metric talks.held]\nkind = gauge\n"
                                 "[ratio disputes.resolution_rate]\n"
                                 "numerator = disputes.resolved\n"
                                 "denominator = disputes.screened\n";

typedef struct fx {
    char dir[64];
    char conf[128];
    tallyd_config_t cfg;
    char msg[2048];
} fx_t;

static void load_conf(fx_t *f, const char *text, tallyd_config_t *cfg)
{
    FILE *fp = fopen(f->conf, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    char err[1024];
    if (config_load(f->conf, cfg, err, sizeof(err)) != 0)
        fail_msg("%s", err);
}

static int id_of(intern_t *in, const char *name)
{
    int id = intern_find(in, name, strlen(name));
    assert_true(id > 0);
    return id;
}

/* A state as a tallyd under state_conf leaves it, checkpointed as gen. */
static void save_state(fx_t *f, uint64_t gen)
{
    tallyd_config_t cfg;
    load_conf(f, state_conf, &cfg);
    intern_t towns, metrics;
    engine_t e;
    dedup_t dd;
    assert_int_equal(intern_init(&towns, 100), 0);
    assert_int_equal(intern_init(&metrics, 100), 0);
    assert_int_equal(dedup_init(&dd, 10), 0);
    engine_config_t ec;
    engine_config_from(&ec, &cfg);
    assert_int_equal(engine_init(&e, &ec, &clock_system), 0);
    catalog_target_t ct = {&towns, &metrics, &e, f->dir};
    char err[512];
    assert_int_equal(catalog_declare(&ct, &cfg, err, sizeof(err)), 0);
    int64_t now = clock_now_ms(&clock_system);
    uint32_t zones = (uint32_t)id_of(&metrics, "grid.zones");
    uint32_t screened = (uint32_t)id_of(&metrics, "disputes.screened");
    for (uint32_t town = 1; town <= 2; town++) {
        for (int k = 0; k < 40; k++) {
            engine_sample_t s = {screened, 1 + k};
            assert_int_equal(engine_apply(&e, town, now - (int64_t)k * 50 * 60000, &s, 1, NULL), 0);
        }
        engine_sample_t g = {zones, 7 * town};
        assert_int_equal(engine_apply(&e, town, now, &g, 1, NULL), 0);
    }
    checkpoint_meta_t meta = {now, gen, 10 * gen, gen, 0};
    assert_int_equal(
        checkpoint_write(f->dir, &meta, &towns, &metrics, &e, &dd, NULL, err, sizeof(err)), 0);
    engine_free(&e);
    dedup_free(&dd);
    intern_free(&towns);
    intern_free(&metrics);
    config_free(&cfg);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_config_state.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->conf, sizeof(f->conf), "%s/tallyd.conf", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    DIR *d = opendir(f->dir);
    for (struct dirent *de; d != NULL && (de = readdir(d)) != NULL;) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", f->dir, de->d_name);
        if (de->d_name[0] != '.')
            unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Check text against the state; the code and the message. */
static int check(fx_t *f, const char *text)
{
    tallyd_config_t cfg;
    load_conf(f, text, &cfg);
    int rc = statecheck_config(&cfg, f->dir, f->msg, sizeof(f->msg));
    config_free(&cfg);
    return rc;
}

static void expect(fx_t *f, const char *text, int rc, const char *needle)
{
    int got = check(f, text);
    if (got != rc || strstr(f->msg, needle) == NULL)
        fail_msg("%d (expected %d): %s", got, rc, f->msg);
}

/* Replace the first occurrence of from in text (into buf). */
static const char *edit(char *buf, size_t cap, const char *text, const char *from, const char *to)
{
    const char *p = strstr(text, from);
    assert_non_null(p);
    snprintf(buf, cap, "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
    return buf;
}

static void test_no_checkpoint(void **state)
{
    fx_t *f = *state;
    expect(f, state_conf, 0, "no checkpoint yet (");
    expect(f, state_conf, 0, "): a start begins with an empty state");
    char nowhere[128];
    snprintf(nowhere, sizeof(nowhere), "%s/nowhere", f->dir);
    tallyd_config_t cfg;
    load_conf(f, state_conf, &cfg);
    assert_int_equal(statecheck_config(&cfg, nowhere, f->msg, sizeof(f->msg)), 0);
    config_free(&cfg);
    /* A journal without a checkpoint: a start replays it, not empty. */
    char seg[160];
    snprintf(seg, sizeof(seg), "%s/journal-0000000000000001.tj", f->dir);
    FILE *fp = fopen(seg, "w");
    assert_non_null(fp);
    fclose(fp);
    expect(f, state_conf, 0,
           "): a start replays the journal there, which this check does not "
           "read");
}

static void test_same_configuration_fits(void **state)
{
    fx_t *f = *state;
    save_state(f, 1);
    expect(f, state_conf, 0, "state-0000000000000001.ckp (2 townships, 5 metrics and ratios)");
    /* More of everything fits too. */
    char buf[2048];
    snprintf(buf, sizeof(buf), "%s[township gecheng]\n[metric patrols]\nkind = gauge\n",
             state_conf);
    expect(f, buf, 0, "state-0000000000000001.ckp");
}

/* What the start refuses: the windows' buckets or their lengths, a time
 * zone that places the saved day elsewhere. */
static void test_windows_and_zone(void **state)
{
    fx_t *f = *state;
    save_state(f, 1);
    char buf[2048];
    snprintf(buf, sizeof(buf), "[windows]\nbuckets = 30\n%s", state_conf);
    expect(f, buf, TALLY_ECONFIG, "windows changed: ");
    assert_non_null(strstr(f->msg, "with 30 buckets each"));
    snprintf(buf, sizeof(buf), "[windows]\n1h = 1h\n24h = 24h\n%s", state_conf);
    expect(f, buf, TALLY_ECONFIG, "windows changed: ");
    snprintf(buf, sizeof(buf), "[tallyd]\ntimezone = America/New_York\n%s", state_conf);
    expect(f, buf, TALLY_ECONFIG, "time zone changed: ");
    /* Another name of the same zone places every day alike. */
    snprintf(buf, sizeof(buf), "[tallyd]\ntimezone = Asia/Chongqing\n%s", state_conf);
    expect(f, buf, 0, "state-0000000000000001.ckp");
}

/* A metric's kind: refused against tallies of the other kind, free while
 * it has none; a metric with tallies cannot become a ratio. */
static void test_scales(void **state)
{
    fx_t *f = *state;
    save_state(f, 1);
    char buf[2048], buf2[2048];
    expect(f, state_conf, 0, "state-0000000000000001.ckp");
    edit(buf, sizeof(buf), state_conf, "scale = 1\n", "scale = 2\n");
    expect(f, buf, TALLY_ECONFIG, "metric 'grid.zones' (line 3) has scale = 2, but the state in ");
    assert_non_null(strstr(f->msg, "holds its tallies at scale 1, which they keep (its figures "
                                   "would read smaller): put back scale = 1"));
    edit(buf, sizeof(buf), state_conf, "scale = 1\n", "");
    expect(f, buf, TALLY_ECONFIG, "has scale = 0, but the state in ");
    /* Declared, never sent: a start lets it change. */
    edit(buf, sizeof(buf), state_conf, "[metric talks.held]\nkind = gauge\n",
         "[metric talks.held]\nkind = gauge\nscale = 3\n");
    expect(f, buf, 0, "state-0000000000000001.ckp");
    /* Dropped from the file, its tallies would read as whole numbers. */
    edit(buf, sizeof(buf), state_conf, "[metric grid.zones]\nkind = gauge\nscale = 1\n", "");
    expect(f, buf, TALLY_ECONFIG,
           "metric 'grid.zones' is not declared any more, but the state in ");
    assert_non_null(
        strstr(f->msg, "declare it again ([metric grid.zones] with kind = gauge and scale = 1)"));
    edit(buf2, sizeof(buf2), buf, "[metric disputes.screened]\n",
         "[metric grid.zones]\nkind = gauge\nscale = 1\n[metric disputes.screened]\n");
    expect(f, buf2, 0, "state-0000000000000001.ckp");
}

static void test_kinds(void **state)
{
    fx_t *f = *state;
    save_state(f, 1);
    char buf[2048];
    edit(buf, sizeof(buf), state_conf, "[metric grid.zones]\nkind = gauge",
         "[metric grid.zones]\nkind = counter");
    expect(f, buf, TALLY_ECONFIG,
           "metric 'grid.zones' (line 3) is declared a counter, but the state in ");
    assert_non_null(strstr(f->msg, "holds gauge tallies of it, which keep their kind; put back "
                                   "kind = gauge"));
    assert_null(strstr(f->msg, "already exists"));
    edit(buf, sizeof(buf), state_conf, "[metric disputes.screened]\nkind = counter",
         "[metric disputes.screened]\nkind = gauge");
    expect(f, buf, TALLY_ECONFIG, "holds counter tallies of it");
    /* Declared, never sent: a start lets it change. */
    edit(buf, sizeof(buf), state_conf, "[metric talks.held]\nkind = gauge",
         "[metric talks.held]\nkind = counter");
    expect(f, buf, 0, "state-0000000000000001.ckp");
    /* A ratio named like a metric with tallies. */
    expect(f,
           "[township gaoguan]\n[township bashan]\n[metric talks.held]\nkind = gauge\n"
           "[metric x]\nkind = counter\n"
           "[ratio grid.zones]\nnumerator = x\ndenominator = talks.held\n",
           TALLY_ECONFIG, "ratio 'grid.zones' (line 7) = x / talks.held cannot be defined: ");
    assert_non_null(
        strstr(f->msg, "holds 'grid.zones' as a gauge metric; give the ratio another id"));
}

/* The checkpoint a start would load: the newest intact one, past a
 * damaged one, which is left where it is; nothing in the directory is
 * touched (a tallyd beside it may be writing its next checkpoint). */
static void test_reads_as_a_start_without_changing_anything(void **state)
{
    fx_t *f = *state;
    save_state(f, 1);
    save_state(f, 2);
    char path[256], tmp[256];
    snprintf(path, sizeof(path), "%s/state-0000000000000002.ckp", f->dir);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "XXXX", 4, 100), 4);
    close(fd);
    snprintf(tmp, sizeof(tmp), "%s/state-0000000000000003.ckp.tmp", f->dir);
    fd = open(tmp, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    expect(f, state_conf, 0, "skipped checkpoint state-0000000000000002.ckp");
    assert_non_null(strstr(f->msg, "state-0000000000000001.ckp"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(stat(tmp, &st), 0);
}

/* engine_load_head() reads a whole saved image, counters with buckets
 * in every window and calendar period and gauges, and keeps exactly the
 * county-wide series, of the kinds engine_load() gives them. */
static void test_load_head_matches_load(void **state)
{
    fx_t *f = *state;
    save_state(f, 1);
    intern_t towns, metrics;
    assert_int_equal(intern_init(&towns, 100), 0);
    assert_int_equal(intern_init(&metrics, 100), 0);
    checkpoint_image_t img;
    char err[512];
    assert_int_equal(checkpoint_read_latest(f->dir, &img, &towns, &metrics, err, sizeof(err)), 0);
    engine_config_t ec;
    engine_config_default(&ec);
    engine_t full, head;
    assert_int_equal(engine_init(&full, &ec, &clock_system), 0);
    assert_int_equal(engine_init(&head, &ec, &clock_system), 0);
    assert_int_equal(engine_load(&full, img.engine, img.engine_len, err, sizeof(err)), 0);
    assert_int_equal(engine_load_head(&head, img.engine, img.engine_len, err, sizeof(err)), 0);
    assert_int_equal(engine_series_count(&full), 6); /* 2 metrics x (2 townships + county) */
    assert_int_equal(engine_series_count(&head), 2);
    for (uint32_t m = 1; m <= intern_count(&metrics); m++) {
        assert_int_equal(engine_metric_kind(&head, m), engine_metric_kind(&full, m));
        bool in_full = engine_series_find(&full, m, 0) != ENGINE_NONE;
        assert_int_equal(engine_series_find(&head, m, 0) != ENGINE_NONE, in_full);
        assert_int_equal(engine_series_find(&head, m, 1), ENGINE_NONE);
    }
    /* Cut short anywhere, it is refused as malformed, not misread. */
    for (size_t cut = 0; cut < img.engine_len; cut += 7) {
        engine_t e;
        assert_int_equal(engine_init(&e, &ec, &clock_system), 0);
        assert_int_equal(engine_load_head(&e, img.engine, cut, err, sizeof(err)), TALLY_EIO);
        engine_free(&e);
    }
    engine_free(&full);
    engine_free(&head);
    checkpoint_image_free(&img);
    intern_free(&towns);
    intern_free(&metrics);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_configuration_fits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_windows_and_zone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scales, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_as_a_start_without_changing_anything, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_head_matches_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
