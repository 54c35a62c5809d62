/* Unit tests of the catalog side of tallyd's configuration: the built-in
 * catalog (a file without [metric] and [ratio] sections equals no file),
 * and the bounds of a metric's samples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "catalog.h"
#include "config.h"

static char err[2048];

static int parse(const char *text, tallyd_config_t *cfg)
{
    return config_parse_text(text, strlen(text), "t.conf", cfg, err, sizeof(err));
}

static void expect_error(const char *text, const char *want)
{
    tallyd_config_t cfg;
    int rc = parse(text, &cfg);
    if (rc != TALLY_ECONFIG || strstr(err, want) == NULL)
        fail_msg("for input:\n%s\nwanted TALLY_ECONFIG and a message with\n  %s\ngot %d:\n  %s",
                 text, want, rc, err);
    config_free(&cfg);
}

/* The built-in catalog: the report's metrics and ratios, open. */
static void expect_builtin(const tallyd_config_t *cfg)
{
    assert_true(cfg->catalog_builtin);
    assert_false(cfg->catalog_closed_metrics);
    assert_int_equal(cfg->nmetrics, 22);
    assert_int_equal(cfg->nratios, 3);
    const config_metric_t *m = config_find_metric(cfg, "grid.zones", 10);
    assert_non_null(m);
    assert_int_equal(m->kind, PROTO_KIND_GAUGE);
    assert_string_equal(m->unit, "个");
    assert_string_equal(m->label, "综治网格");
    m = config_find_metric(cfg, "law_exam.takers", 15);
    assert_string_equal(m->label, "法治理论考试参考人数");
    assert_int_equal(m->min, 0);
    assert_int_equal(m->max, CONFIG_SAMPLE_LIMIT);
    const config_ratio_t *r = config_find_ratio(cfg, "disputes.resolution_rate", 24);
    assert_non_null(r);
    assert_string_equal(r->label, "矛盾纠纷化解率");
    assert_int_equal(catalog_metric_names(cfg), 25);
}

static void test_builtin_catalog(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    assert_int_equal(config_load(NULL, &cfg, err, sizeof(err)), 0);
    expect_builtin(&cfg);
    config_free(&cfg);
    /* An empty file and one that only sets limits are the defaults too. */
    assert_int_equal(parse("", &cfg), 0);
    expect_builtin(&cfg);
    config_free(&cfg);
    assert_int_equal(parse("[limits]\nmax_series = 5000\n[township gaoguan]\n", &cfg), 0);
    expect_builtin(&cfg);
    assert_true(cfg.catalog_closed_townships);
    config_free(&cfg);
    /* A file with its own metrics has its own catalog, nothing built in. */
    assert_int_equal(parse("[metric m]\nkind = counter\n", &cfg), 0);
    assert_false(cfg.catalog_builtin);
    assert_int_equal(cfg.nmetrics, 1);
    assert_int_equal(cfg.nratios, 0);
    config_free(&cfg);
    assert_int_equal(parse("[ratio r]\nnumerator = a\ndenominator = b\n", &cfg), 0);
    assert_false(cfg.catalog_builtin);
    assert_int_equal(catalog_metric_names(&cfg), 3);
    config_free(&cfg);
}

static void test_bounds(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    assert_int_equal(parse("[metric c]\nkind = counter\n"
                           "[metric n]\nkind = counter\nnegative = yes\n"
                           "[metric g]\nkind = gauge\n"
                           "[metric x]\nkind = counter\nmin = 5\nmax = 9223372036854775807\n"
                           "[metric y]\nkind = gauge\nmin = -9223372036854775808\nmax = -1\n",
                           &cfg),
                     0);
    const config_metric_t *m = &cfg.metrics[0];
    assert_int_equal(m->min, 0);
    assert_int_equal(m->max, CONFIG_SAMPLE_LIMIT);
    m = &cfg.metrics[1];
    assert_int_equal(m->min, -CONFIG_SAMPLE_LIMIT);
    m = &cfg.metrics[2];
    assert_int_equal(m->min, -CONFIG_SAMPLE_LIMIT);
    m = &cfg.metrics[3];
    assert_int_equal(m->min, 5);
    assert_int_equal(m->max, INT64_MAX);
    m = &cfg.metrics[4];
    assert_int_equal(m->min, INT64_MIN);
    assert_int_equal(m->max, -1);
    config_free(&cfg);
}

static void test_bounds_errors(void **state)
{
    (void)state;
    expect_error("[metric c]\nkind = counter\nmin = -3\n",
                 "t.conf:3: [metric c] min: min -3 lets a counter go down, which needs negative "
                 "= yes (corrections)");
    expect_error("[metric c]\nkind = gauge\nmin = 7\nmax = 6\n",
                 "t.conf:3: [metric c] min: min 7 is above max 6");
    expect_error("[metric c]\nkind = counter\nmax = 9223372036854775808\n",
                 "t.conf:3: [metric c] max: 9223372036854775808 does not fit a 64-bit integer");
    expect_error("[metric c]\nkind = counter\nmax = lots\n",
                 "t.conf:3: [metric c] max: 'lots' is not a whole number");
    expect_error("[metric c]\nkind = counter\nnegative = maybe\n",
                 "t.conf:3: [metric c] negative: 'maybe' is not one of no, yes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_catalog),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_bounds_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
