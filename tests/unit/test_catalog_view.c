/* test_catalog_view.c - unit tests of catalog_view (daemon/): catalog
 * order, the catalog id, and the pages of CATALOG replies, read back
 * through the codec as a client would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "catalog_view.h"
#include "config.h"
#include "engine.h"
#include "intern.h"
#include "townlist.h"

static const char conf[] = "[township gaoguan]\n"
                           "name = 高观镇\n"
                           "type = town\n"
                           "[township gecheng]\n"
                           "name = 葛城街道\n"
                           "type = subdistrict\n"
                           "[township plain]\n"
                           "[metric disputes.screened]\n"
                           "kind = counter\n"
                           "unit = 件\n"
                           "label = 排查矛盾纠纷\n"
                           "[metric disputes.resolved]\n"
                           "kind = counter\n"
                           "unit = 件\n"
                           "label = 化解矛盾纠纷\n"
                           "[ratio disputes.resolution_rate]\n"
                           "numerator = disputes.resolved\n"
                           "denominator = disputes.screened\n"
                           "label = 矛盾纠纷化解率\n"
                           "[metric area.farmland]\n"
                           "kind = gauge\n"
                           "unit = 公顷\n"
                           "scale = 1\n";

static void load(tallyd_config_t *cfg, const char *text)
{
    char err[512] = "";
    int rc = config_parse_text(text, strlen(text), "test.conf", cfg, err, sizeof err);
    if (rc != 0)
        print_message("%s\n", err);
    assert_int_equal(rc, 0);
}

static bool is(proto_str_t s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

/* Encode the page and decode it again, as the client sees it. */
static void wire(const proto_msg_t *m, msgpack_sbuffer *sb, proto_msg_t *out)
{
    msgpack_sbuffer_init(sb);
    assert_int_equal(proto_encode(sb, m), 0);
    assert_true(sb->size <= PROTO_CATALOG_BYTES);
    assert_int_equal(proto_decode(sb->data, sb->size, out, NULL, 0, NULL), 0);
}

static void test_order_and_fields(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    catalog_view_t v;
    proto_msg_t m, d;
    msgpack_sbuffer sb;
    load(&cfg, conf);
    catalog_view_init(&v);
    assert_int_equal(catalog_view_set(&v, &cfg), 0);
    assert_int_equal(catalog_view_townships(&v), 3);
    assert_int_equal(catalog_view_metrics(&v), 4);
    assert_int_equal(catalog_view_page(&v, 9, 0, 0, PROTO_CATALOG_BYTES, &m), 0);
    wire(&m, &sb, &d);
    assert_true(d.u.catalog.req_id == 9 && d.u.catalog.catalog_id == v.id && v.id != 0);
    assert_int_equal(d.u.catalog.ntownships, 3);
    assert_int_equal(d.u.catalog.nmetrics, 4);

    proto_catalog_iter_t it;
    proto_township_t t;
    proto_metric_info_t e;
    proto_catalog_iter(&it, &d);
    assert_true(proto_catalog_next_township(&it, &t));
    assert_true(is(t.id, "gaoguan") && is(t.name, "高观镇") && t.type == 2);
    assert_true(proto_catalog_next_township(&it, &t));
    assert_true(is(t.id, "gecheng") && is(t.name, "葛城街道") && t.type == 1);
    assert_true(proto_catalog_next_township(&it, &t));
    assert_true(is(t.id, "plain") && is(t.name, "") && t.type == 0);
    /* Metrics and ratios in the order of the file. */
    assert_true(proto_catalog_next_metric(&it, &e));
    assert_true(is(e.id, "disputes.screened") && is(e.unit, "件") && e.kind == 0);
    assert_true(is(e.label, "排查矛盾纠纷") && is(e.numerator, ""));
    assert_true(proto_catalog_next_metric(&it, &e));
    assert_true(is(e.id, "disputes.resolved"));
    assert_true(proto_catalog_next_metric(&it, &e));
    assert_true(is(e.id, "disputes.resolution_rate") && e.kind == PROTO_KIND_RATIO);
    assert_true(is(e.numerator, "disputes.resolved") && is(e.denominator, "disputes.screened"));
    assert_true(is(e.label, "矛盾纠纷化解率") && is(e.unit, "") && e.scale == 0);
    assert_true(proto_catalog_next_metric(&it, &e));
    assert_true(is(e.id, "area.farmland") && e.kind == PROTO_KIND_GAUGE && e.scale == 1);
    assert_true(is(e.unit, "公顷"));
    assert_false(proto_catalog_next_metric(&it, &e));
    msgpack_sbuffer_destroy(&sb);

    /* Past the end: empty lists, the totals still said. */
    assert_int_equal(catalog_view_page(&v, 10, 7, 99, PROTO_CATALOG_BYTES, &m), 0);
    assert_int_equal(m.u.catalog.ntownships + m.u.catalog.nmetrics, 0);
    assert_int_equal(m.u.catalog.townships_total, 3);
    assert_int_equal(m.u.catalog.metrics_total, 4);
    catalog_view_free(&v);
    config_free(&cfg);
}

/* Small pages: every entry comes exactly once, in order, and metrics only
 * once the townships are done. */
static void test_pages(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    catalog_view_t v;
    proto_msg_t m, d;
    msgpack_sbuffer sb;
    load(&cfg, conf);
    catalog_view_init(&v);
    assert_int_equal(catalog_view_set(&v, &cfg), 0);
    uint32_t tf = 0, mf = 0, pages = 0;
    const char *towns[] = {"gaoguan", "gecheng", "plain"};
    const char *metrics[] = {"disputes.screened", "disputes.resolved", "disputes.resolution_rate",
                             "area.farmland"};
    while (tf < 3 || mf < 4) {
        /* Room for the head and about one entry. */
        assert_int_equal(catalog_view_page(&v, 1, tf, mf, PROTO_CATALOG_HEAD_BYTES + 40, &m), 0);
        wire(&m, &sb, &d);
        assert_true(d.u.catalog.ntownships + d.u.catalog.nmetrics >= 1);
        if (tf + d.u.catalog.ntownships < 3)
            assert_int_equal(d.u.catalog.nmetrics, 0);
        proto_catalog_iter_t it;
        proto_township_t t;
        proto_metric_info_t e;
        proto_catalog_iter(&it, &d);
        while (proto_catalog_next_township(&it, &t))
            assert_true(is(t.id, towns[tf++]));
        while (proto_catalog_next_metric(&it, &e))
            assert_true(is(e.id, metrics[mf++]));
        msgpack_sbuffer_destroy(&sb);
        assert_true(++pages <= 7);
    }
    assert_true(pages >= 4);
    catalog_view_free(&v);
    config_free(&cfg);
}

/* The id follows the content: the same catalog, the same id; a label
 * changed, another id. */
static void test_id(void **state)
{
    (void)state;
    tallyd_config_t a, b, c;
    catalog_view_t v;
    load(&a, conf);
    load(&b, conf);
    char *changed = strdup(conf);
    char *p = strstr(changed, "高观镇");
    memcpy(p, "高燕镇", strlen("高燕镇"));
    load(&c, changed);
    free(changed);
    catalog_view_init(&v);
    assert_int_equal(catalog_view_set(&v, &a), 0);
    uint64_t id_a = v.id;
    assert_int_equal(catalog_view_set(&v, &b), 0);
    assert_true(v.id == id_a);
    assert_int_equal(catalog_view_set(&v, &c), 0);
    assert_true(v.id != id_a);
    catalog_view_free(&v);

    /* An empty view and the built-in catalog (no townships, no lines). */
    tallyd_config_t builtin;
    assert_int_equal(config_defaults(&builtin), 0);
    assert_int_equal(config_builtin_catalog(&builtin), 0);
    catalog_view_init(&v);
    assert_int_equal(catalog_view_townships(&v) + catalog_view_metrics(&v), 0);
    assert_int_equal(catalog_view_set(&v, &builtin), 0);
    assert_int_equal(catalog_view_townships(&v), 0);
    assert_int_equal(catalog_view_metrics(&v), 25);
    proto_msg_t m;
    assert_int_equal(catalog_view_page(&v, 1, 0, 0, PROTO_CATALOG_BYTES, &m), 0);
    assert_true(is(m.u.catalog.metrics[0].id, "law_exam.takers"));
    assert_true(is(m.u.catalog.metrics[21].id, "safety.handouts"));
    assert_true(is(m.u.catalog.metrics[22].id, "law_exam.pass_rate"));
    catalog_view_free(&v);
    config_free(&builtin);
    config_free(&a);
    config_free(&b);
    config_free(&c);
}

/* The townships that have series but that the closed catalog no longer
 * declares follow its own, marked, in id order; the id changes with
 * them, and a catalog that declares one again lists it with its name. */
static void test_held_townships(void **state)
{
    (void)state;
    tallyd_config_t cfg, all;
    load(&cfg, conf);
    char *more = malloc(strlen(conf) + 200);
    assert_non_null(more);
    snprintf(more, strlen(conf) + 200, "%s[township oldtown]\nname = 旧镇\n", conf);
    load(&all, more);
    free(more);
    intern_t towns;
    assert_int_equal(intern_init(&towns, 100), 0);
    engine_t e;
    engine_config_t ec;
    engine_config_default(&ec);
    assert_int_equal(engine_init(&e, &ec, &clock_system), 0);
    const char *names[] = {"gaoguan", "oldtown",
                           "gecheng", "plain",
                           "nowhere", "a-very-long-township-id-of-fifty-bytes-xxxxxxxxxx"};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(intern_add(&towns, names[i], strlen(names[i])), (int)i + 1);
    int64_t now = clock_now_ms(&clock_system);
    engine_sample_t smp = {1, 1};
    /* Series of gaoguan, oldtown and the long one; nowhere has none. */
    assert_int_equal(engine_apply(&e, 1, now, &smp, 1, NULL), 0);
    assert_int_equal(engine_apply(&e, 2, now, &smp, 1, NULL), 0);
    townlist_t has = {0};
    assert_int_equal(townlist_update(&has, &e), 0);

    catalog_view_t v;
    catalog_view_init(&v);
    assert_int_equal(catalog_view_set(&v, &cfg), 0);
    uint64_t plain_id = v.id;
    assert_int_equal(catalog_view_held(&v, &towns, &has), 0);
    assert_int_equal(catalog_view_townships(&v), 4);
    assert_true(v.id != plain_id);
    uint64_t one_held = v.id;
    proto_msg_t m, d;
    msgpack_sbuffer sb;
    assert_int_equal(catalog_view_page(&v, 3, 0, 0, PROTO_CATALOG_BYTES, &m), 0);
    wire(&m, &sb, &d);
    assert_int_equal(d.u.catalog.townships_total, 4);
    proto_catalog_iter_t it;
    proto_township_t t;
    proto_catalog_iter(&it, &d);
    const char *ids[] = {"gaoguan", "gecheng", "plain", "oldtown"};
    for (int i = 0; i < 4; i++) {
        assert_true(proto_catalog_next_township(&it, &t));
        assert_true(is(t.id, ids[i]));
    }
    assert_true(is(t.name, "oldtown (no longer declared)"));
    assert_int_equal(t.type, 0);
    msgpack_sbuffer_destroy(&sb);

    /* Nothing new: nothing looked at again, the same id. */
    assert_int_equal(catalog_view_held(&v, &towns, &has), 0);
    assert_true(v.id == one_held);
    /* A new series of a long id: listed without a name (the id is shown). */
    assert_int_equal(engine_apply(&e, 6, now, &smp, 1, NULL), 0);
    assert_int_equal(townlist_update(&has, &e), 0);
    assert_int_equal(catalog_view_held(&v, &towns, &has), 0);
    assert_int_equal(catalog_view_townships(&v), 5);
    assert_true(v.id != one_held);
    assert_int_equal(catalog_view_page(&v, 3, 4, 0, PROTO_CATALOG_BYTES, &m), 0);
    assert_int_equal(m.u.catalog.ntownships, 1);
    assert_true(is(m.u.catalog.townships[0].id, names[5]));
    assert_true(is(m.u.catalog.townships[0].name, ""));

    /* Declared again: listed as the catalog has it, once. */
    assert_int_equal(catalog_view_set(&v, &all), 0);
    assert_int_equal(catalog_view_held(&v, &towns, &has), 0);
    assert_int_equal(catalog_view_townships(&v), 5);
    assert_int_equal(catalog_view_page(&v, 3, 3, 0, PROTO_CATALOG_BYTES, &m), 0);
    assert_true(is(m.u.catalog.townships[0].id, "oldtown"));
    assert_true(is(m.u.catalog.townships[0].name, "旧镇"));
    assert_true(is(m.u.catalog.townships[1].id, names[5]));

    /* An open township catalog lists none of them (clients take the
     * townships that have tallies from TOWNSHIPS_REQ). */
    tallyd_config_t builtin;
    assert_int_equal(config_defaults(&builtin), 0);
    assert_int_equal(config_builtin_catalog(&builtin), 0);
    assert_int_equal(catalog_view_set(&v, &builtin), 0);
    assert_int_equal(catalog_view_held(&v, &towns, &has), 0);
    assert_int_equal(catalog_view_townships(&v), 0);

    catalog_view_free(&v);
    townlist_free(&has);
    engine_free(&e);
    intern_free(&towns);
    config_free(&builtin);
    config_free(&all);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_fields),
        cmocka_unit_test(test_pages),
        cmocka_unit_test(test_id),
        cmocka_unit_test(test_held_townships),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
