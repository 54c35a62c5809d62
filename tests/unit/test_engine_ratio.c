/* Unit tests of a ratio's value with decimal scales (PROTOCOL.md 10.6),
 * where the engine forms the [num, den] pair (engine_ratio_value, used by
 * engine_read, the history and the spans of recall): the pair is scaled so
 * that num / den is (num / 10^sn) / (den / 10^sd), exactly while it fits
 * int64, in lowest terms or rounded when it does not; and the catalog
 * gives every ratio its operands' scales at a start and a reload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "catalog.h"
#include "config.h"
#include "engine.h"
#include "engine_test_util.h"
#include "intern.h"
#include "tally_error.h"

enum { AREA = 1, PEOPLE = 2, PER_PERSON = 3, PER_AREA = 4 };

static void expect_pair(const engine_value_t *v, int64_t num, int64_t den)
{
    if (!v->present || v->num != num || v->den != den)
        fail_msg("got %s[%lld, %lld], want [%lld, %lld]", v->present ? "" : "(no value) ",
                 (long long)v->num, (long long)v->den, (long long)num, (long long)den);
}

static engine_t pairs; /* PER_PERSON = AREA / PEOPLE, for pair_of() */

/* engine_ratio_value of operand values n and d under scales sn, sd. */
static engine_value_t pair_of(int64_t n, int64_t d, uint8_t sn, uint8_t sd)
{
    assert_int_equal(engine_ratio_set_scales(&pairs, PER_PERSON, sn, sd), 0);
    engine_value_t a = {.present = true, .num = n, .den = 1};
    engine_value_t b = {.present = true, .num = d, .den = 1};
    engine_value_t out = {.name = "x"};
    engine_ratio_value(&pairs, PER_PERSON, &a, &b, &out);
    assert_string_equal(out.name, "x");
    return out;
}

/* 12.5 ha (scale 1) for 50 people: 0.25 ha each, 25.0%, and 50 people on
 * 12.5 ha 4 per ha, 400.0%: in every column, township and county, through
 * engine_read and engine_read_item. */
static void test_scaled_ratio_read(void **state)
{
    (void)state;
    engine_t e;
    int64_t now = cst(2024, 3, 5, 10, 0, 0, 0);
    init_at(&e, now);
    assert_int_equal(engine_define_ratio(&e, PER_PERSON, AREA, PEOPLE), 0);
    assert_int_equal(engine_define_ratio(&e, PER_AREA, PEOPLE, AREA), 0);
    assert_int_equal(engine_ratio_set_scales(&e, PER_PERSON, 1, 0), 0);
    assert_int_equal(engine_ratio_set_scales(&e, PER_AREA, 0, 1), 0);
    engine_sample_t s[2] = {{AREA, 125}, {PEOPLE, 50}};
    assert_int_equal(engine_apply(&e, 1, now, s, 2, NULL), 0);
    for (uint32_t town = 0; town <= 1; town++) {
        engine_values_t v;
        assert_int_equal(engine_read(&e, PER_PERSON, town, &v), 0);
        for (uint32_t i = 0; i < v.ncols; i++)
            expect_pair(&v.col[i], 125, 500);
        assert_int_equal(engine_read(&e, PER_AREA, town, &v), 0);
        for (uint32_t i = 0; i < v.ncols; i++)
            expect_pair(&v.col[i], 500, 125);
        engine_item_t it = {PER_PERSON, town, PROTO_KIND_RATIO, now, ENGINE_NONE};
        assert_int_equal(engine_read_item(&e, &it, &v), 0);
        expect_pair(&v.col[v.ncols - 1], 125, 500);
    }
    /* A reload that changes a scale changes the reading, nothing else. */
    assert_int_equal(engine_ratio_set_scales(&e, PER_PERSON, 3, 1), 0);
    engine_value_t t = value_of(&e, PER_PERSON, 1, "total");
    expect_pair(&t, 125, 5000);
    assert_int_equal(engine_ratio_set_scales(&e, PER_PERSON, 0, 0), 0);
    t = value_of(&e, PER_PERSON, 0, "total");
    expect_pair(&t, 125, 50);
    /* The denominator column 0 (a window without figures) stays no value. */
    fake_ms = now + 2 * HOUR_MS;
    engine_tick(&e, fake_ms);
    assert_false(value_of(&e, PER_AREA, 1, "1h").present);
    t = value_of(&e, PER_AREA, 1, "total");
    expect_pair(&t, 500, 125);
    /* Only ratios have scales, 0..9. */
    assert_int_equal(engine_ratio_set_scales(&e, AREA, 1, 0), TALLY_EINVAL);
    assert_int_equal(engine_ratio_set_scales(&e, 99, 1, 0), TALLY_EINVAL);
    assert_int_equal(engine_ratio_set_scales(&e, PER_AREA, 10, 0), TALLY_EINVAL);
    assert_int_equal(engine_ratio_set_scales(&e, PER_AREA, 0, 10), TALLY_EINVAL);
    t = value_of(&e, PER_AREA, 1, "total");
    expect_pair(&t, 500, 125);
    engine_free(&e);
}

/* The pair itself: exact while it fits int64, else in lowest terms, else
 * the nearest fraction with the largest denominator int64 allows. */
static void test_ratio_value_pairs(void **state)
{
    (void)state;
    init_at(&pairs, cst(2024, 3, 5, 10, 0, 0, 0));
    assert_int_equal(engine_define_ratio(&pairs, PER_PERSON, AREA, PEOPLE), 0);
    engine_value_t v;
    /* Equal scales: the operands' values as they are, not reduced. */
    v = pair_of(216, 219, 0, 0);
    expect_pair(&v, 216, 219);
    v = pair_of(250, 500, 4, 4);
    expect_pair(&v, 250, 500);
    v = pair_of(INT64_MIN, -1, 9, 9);
    expect_pair(&v, INT64_MIN, -1);
    /* The side of the smaller scale times 10^difference. */
    v = pair_of(125, 50, 1, 0);
    expect_pair(&v, 125, 500);
    v = pair_of(3, 150, 0, 2); /* 3 / 1.50 = 2 */
    expect_pair(&v, 300, 150);
    v = pair_of(-7, 2, 9, 0);
    expect_pair(&v, -7, 2000000000);
    v = pair_of(7, -2, 0, 9);
    expect_pair(&v, 7000000000, -2);
    v = pair_of(0, 5, 0, 9);
    expect_pair(&v, 0, 5);
    /* Beyond int64, in lowest terms: 4e19 / 8 = 5e18. */
    v = pair_of(400000000000000000, 8, 0, 2);
    expect_pair(&v, 5000000000000000000, 1);
    v = pair_of(-400000000000000000, 8, 0, 2);
    expect_pair(&v, -5000000000000000000, 1);
    v = pair_of(400000000000000000, -8, 0, 2);
    expect_pair(&v, -5000000000000000000, 1);
    v = pair_of(8, 400000000000000000, 2, 0); /* 8 / 4e19 = 1 / 5e18 */
    expect_pair(&v, 1, 5000000000000000000);
    /* Not even then: 1e19 / 3 = 3333333333333333333.33..., as
     * 6666666666666666667 / 2 (q = floor((2^63 - 2) * 3 / 1e19) = 2). */
    v = pair_of(100000000000000000, 3, 0, 2);
    expect_pair(&v, 6666666666666666667, 2);
    v = pair_of(-100000000000000000, 3, 0, 2);
    expect_pair(&v, -6666666666666666667, 2);
    v = pair_of(100000000000000000, -3, 0, 2);
    expect_pair(&v, -6666666666666666667, 2);
    /* Below 1: (1e18 - 1) / 1e20 over q = INT64_MAX, p rounded to
     * nearest: INT64_MAX * 0.00999999999999999999 = 92233720368547758.07;
     * the sign follows. */
    v = pair_of(999999999999999999, 1000000000000000000, 2, 0);
    expect_pair(&v, 92233720368547758, INT64_MAX);
    v = pair_of(-999999999999999999, 1000000000000000000, 2, 0);
    expect_pair(&v, -92233720368547758, INT64_MAX);
    v = pair_of(3, INT64_MIN, 9, 0); /* 3 / -9.2e27: 0 within 2^-63 */
    expect_pair(&v, 0, INT64_MAX);
    /* Beyond 2^62: q = 1, p = round(10 * INT64_MAX / 11) =
     * round(8384883669867978006.36) ... */
    v = pair_of(INT64_MAX, 11, 0, 1);
    expect_pair(&v, 8384883669867978006, 1);
    /* ... and the largest q that keeps p within int64: -2^63 * 10 /
     * -(2^63 - 1) as 9223372036854775801 / 922337203685477580. */
    v = pair_of(INT64_MIN, -INT64_MAX, 0, 1);
    expect_pair(&v, 9223372036854775801, 922337203685477580);
    /* A value beyond int64 has none: 9.2e18 * 1e9 / 1, 10 * INT64_MAX / 3. */
    v = pair_of(INT64_MAX, 1, 0, 9);
    assert_false(v.present);
    v = pair_of(INT64_MAX, 3, 0, 1);
    assert_false(v.present);
    v = pair_of(INT64_MIN, 7, 0, 9);
    assert_false(v.present);
    /* No value: a zero denominator, an operand without one. */
    v = pair_of(125, 0, 1, 0);
    assert_false(v.present);
    engine_t e;
    init_at(&e, cst(2024, 3, 5, 10, 0, 0, 0));
    assert_int_equal(engine_define_ratio(&e, PER_PERSON, AREA, PEOPLE), 0);
    assert_int_equal(engine_ratio_set_scales(&e, PER_PERSON, 1, 0), 0);
    engine_value_t a = {.present = false}, b = {.present = true, .num = 5, .den = 1};
    engine_ratio_value(&e, PER_PERSON, &a, &b, &v);
    assert_false(v.present);
    assert_int_equal(v.num, 0);
    assert_int_equal(v.den, 0);
    /* out may be an operand. */
    a = (engine_value_t){.present = true, .num = 125, .den = 1};
    b.num = 50;
    engine_ratio_value(&e, PER_PERSON, &a, &b, &a);
    expect_pair(&a, 125, 500);
    a = (engine_value_t){.present = true, .num = 125, .den = 1};
    engine_ratio_value(&e, PER_PERSON, &a, &b, &b);
    expect_pair(&b, 125, 500);
    /* Not a ratio: scales 0. */
    a = (engine_value_t){.present = true, .num = 125, .den = 1};
    b = (engine_value_t){.present = true, .num = 50, .den = 1};
    engine_ratio_value(&e, AREA, &a, &b, &v);
    expect_pair(&v, 125, 50);
    engine_free(&e);
    engine_free(&pairs);
}

static const char conf_scaled[] = "[township gaoguan]\n"
                                  "[metric area]\nkind = counter\nscale = 1\n"
                                  "[metric people]\nkind = counter\n"
                                  "[ratio area_per_person]\n"
                                  "numerator = area\ndenominator = people\n"
                                  "[ratio people_per_area]\n"
                                  "numerator = people\ndenominator = area\n";

/* conf text parsed into *cfg, or the test fails. */
static void parse_conf(const char *text, tallyd_config_t *cfg)
{
    char err[512];
    if (config_parse_text(text, strlen(text), "test.conf", cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
}

/* The scales come from the catalog, at the start and at every reload,
 * while the operands have no tallies; once they have, a catalog that
 * would read them at other scales is refused and the ratios read on as
 * they did. */
static void test_catalog_sets_scales(void **state)
{
    (void)state;
    tallyd_config_t cfg, next;
    char err[512];
    parse_conf(conf_scaled, &cfg);
    intern_t towns, metrics;
    assert_int_equal(intern_init(&towns, 100), 0);
    assert_int_equal(intern_init(&metrics, 100), 0);
    engine_t e;
    int64_t now = cst(2024, 3, 5, 10, 0, 0, 0);
    init_at(&e, now);
    catalog_target_t ct = {&towns, &metrics, &e, "/nonexistent"};
    assert_int_equal(catalog_declare(&ct, &cfg, err, sizeof err), 0);
    /* A reload before any figure: area now has three places, people one. */
    const char *reloaded = "[township gaoguan]\n"
                           "[metric area]\nkind = counter\nscale = 3\n"
                           "[metric people]\nkind = counter\nscale = 1\n"
                           "[ratio area_per_person]\n"
                           "numerator = area\ndenominator = people\n"
                           "[ratio people_per_area]\n"
                           "numerator = people\ndenominator = area\n";
    parse_conf(reloaded, &next);
    assert_int_equal(catalog_declare(&ct, &next, err, sizeof err), 0);
    config_free(&next);
    uint32_t area = (uint32_t)intern_find(&metrics, "area", 4);
    uint32_t people = (uint32_t)intern_find(&metrics, "people", 6);
    uint32_t per_person = (uint32_t)intern_find(&metrics, "area_per_person", 15);
    uint32_t per_area = (uint32_t)intern_find(&metrics, "people_per_area", 15);
    engine_sample_t s[2] = {{area, 125}, {people, 50}};
    assert_int_equal(engine_apply(&e, 1, now, s, 2, NULL), 0);
    engine_value_t v = value_of(&e, per_person, 0, "total");
    expect_pair(&v, 125, 5000);
    v = value_of(&e, per_area, 0, "total");
    expect_pair(&v, 5000, 125);
    /* Back to the first scales, with tallies: refused, nothing changed. */
    parse_conf(conf_scaled, &next);
    assert_int_equal(catalog_declare(&ct, &next, err, sizeof err), TALLY_ECONFIG);
    assert_non_null(strstr(err, "metric 'area' (line 2) has scale = 1, but the state in "
                                "/nonexistent holds its tallies at scale 3"));
    v = value_of(&e, per_person, 1, "total");
    expect_pair(&v, 125, 5000);
    config_free(&next);
    engine_free(&e);
    intern_free(&towns);
    intern_free(&metrics);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scaled_ratio_read),
        cmocka_unit_test(test_ratio_value_pairs),
        cmocka_unit_test(test_catalog_sets_scales),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
