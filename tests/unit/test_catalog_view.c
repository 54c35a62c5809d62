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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_fields),
        cmocka_unit_test(test_pages),
        cmocka_unit_test(test_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
