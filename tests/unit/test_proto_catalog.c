/* test_proto_catalog.c - unit tests of the catalog messages of the wire
 * codec (PROTOCOL.md 8.17) and of the township list (8.25): CATALOG_REQ,
 * CATALOG, TOWNSHIPS_REQ and TOWNSHIPS round trips, reading the entries
 * back, what the decoder and the encoder refuse, and the entry sizes the
 * daemon adds up to fill a page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "proto.h"
#include "proto_test_util.h"

static proto_msg_t g_in, g_out;

static const proto_township_t towns[] = {
    {{"gaoguan", 7}, {"高观镇", 9}, 2},
    {{"gecheng", 7}, {"葛城街道", 12}, 1},
    {{"x", 1}, {"", 0}, 0},
};

static const proto_metric_info_t metrics[] = {
    {{"disputes.resolved", 17},
     PROTO_KIND_COUNTER,
     {"件", 3},
     0,
     {"化解矛盾纠纷", 18},
     {"", 0},
     {"", 0}},
    {{"area.farmland", 13}, PROTO_KIND_GAUGE, {"公顷", 6}, 1, {"", 0}, {"", 0}, {"", 0}},
    {{"disputes.resolution_rate", 24},
     PROTO_KIND_RATIO,
     {"", 0},
     0,
     {"矛盾纠纷化解率", 21},
     {"disputes.resolved", 17},
     {"disputes.screened", 17}},
};

static void set_catalog(proto_msg_t *m, uint32_t nt, uint32_t nm)
{
    memset(m, 0, sizeof *m);
    m->type = PROTO_CATALOG;
    m->u.catalog.req_id = 7;
    m->u.catalog.catalog_id = 0x1122334455667788ULL;
    m->u.catalog.townships_total = 25;
    m->u.catalog.metrics_total = 3;
    m->u.catalog.ntownships = nt;
    m->u.catalog.townships = towns;
    m->u.catalog.nmetrics = nm;
    m->u.catalog.metrics = metrics;
}

static int encode(const proto_msg_t *m, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_init(sb);
    return proto_encode(sb, m);
}

static bool same(proto_str_t a, proto_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void test_request_roundtrip(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    memset(&g_in, 0, sizeof g_in);
    g_in.type = PROTO_CATALOG_REQ;
    g_in.u.catalog_req.req_id = UINT64_MAX;
    g_in.u.catalog_req.townships_from = UINT32_MAX;
    g_in.u.catalog_req.metrics_from = 5;
    assert_int_equal(encode(&g_in, &sb), 0);
    assert_int_equal(decode_exact(sb.data, sb.size, &g_out, 0, NULL), 0);
    assert_int_equal(g_out.type, PROTO_CATALOG_REQ);
    assert_true(g_out.u.catalog_req.req_id == UINT64_MAX);
    assert_int_equal(g_out.u.catalog_req.townships_from, UINT32_MAX);
    assert_int_equal(g_out.u.catalog_req.metrics_from, 5);
    assert_true(proto_req_id(&g_out) == UINT64_MAX);
    msgpack_sbuffer_destroy(&sb);
}

static void test_catalog_roundtrip_and_iteration(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    set_catalog(&g_in, 3, 3);
    assert_int_equal(encode(&g_in, &sb), 0);
    assert_int_equal(decode_exact(sb.data, sb.size, &g_out, 0, NULL), 0);
    assert_int_equal(g_out.type, PROTO_CATALOG);
    assert_true(g_out.u.catalog.req_id == 7 && proto_req_id(&g_out) == 7);
    assert_true(g_out.u.catalog.catalog_id == 0x1122334455667788ULL);
    assert_int_equal(g_out.u.catalog.townships_total, 25);
    assert_int_equal(g_out.u.catalog.metrics_total, 3);
    assert_int_equal(g_out.u.catalog.ntownships, 3);
    assert_int_equal(g_out.u.catalog.nmetrics, 3);
    assert_null(g_out.u.catalog.townships);

    proto_catalog_iter_t it;
    proto_township_t t;
    proto_metric_info_t e;
    proto_catalog_iter(&it, &g_out);
    for (int i = 0; i < 3; i++) {
        assert_true(proto_catalog_next_township(&it, &t));
        assert_true(same(t.id, towns[i].id) && same(t.name, towns[i].name));
        assert_int_equal(t.type, towns[i].type);
    }
    assert_false(proto_catalog_next_township(&it, &t));
    for (int i = 0; i < 3; i++) {
        assert_true(proto_catalog_next_metric(&it, &e));
        assert_true(same(e.id, metrics[i].id) && same(e.unit, metrics[i].unit));
        assert_true(same(e.label, metrics[i].label));
        assert_true(same(e.numerator, metrics[i].numerator));
        assert_true(same(e.denominator, metrics[i].denominator));
        assert_int_equal(e.kind, metrics[i].kind);
        assert_int_equal(e.scale, metrics[i].scale);
    }
    assert_false(proto_catalog_next_metric(&it, &e));
    assert_false(proto_catalog_next_township(&it, &t));

    /* Reading metrics first skips the townships. */
    proto_catalog_iter(&it, &g_out);
    assert_true(proto_catalog_next_metric(&it, &e));
    assert_true(same(e.id, metrics[0].id));
    assert_false(proto_catalog_next_township(&it, &t));
    msgpack_sbuffer_destroy(&sb);

    /* Empty lists: an open catalog, or a page past the end. */
    set_catalog(&g_in, 0, 0);
    g_in.u.catalog.townships = NULL;
    g_in.u.catalog.metrics = NULL;
    assert_int_equal(encode(&g_in, &sb), 0);
    assert_int_equal(decode_exact(sb.data, sb.size, &g_out, 0, NULL), 0);
    proto_catalog_iter(&it, &g_out);
    assert_false(proto_catalog_next_township(&it, &t));
    assert_false(proto_catalog_next_metric(&it, &e));
    msgpack_sbuffer_destroy(&sb);
}

/* The sizes the daemon adds up are the bytes each entry takes. */
static void test_entry_sizes(void **state)
{
    (void)state;
    msgpack_sbuffer base, one;
    static char label[PROTO_LABEL_MAX + 1];
    memset(label, 'l', PROTO_LABEL_MAX);
    proto_metric_info_t big = metrics[2];
    big.label = proto_str(label);
    big.id = proto_str(A64);
    for (uint32_t i = 0; i < 3; i++) {
        set_catalog(&g_in, i, 0);
        assert_int_equal(encode(&g_in, &base), 0);
        set_catalog(&g_in, i + 1, 0);
        assert_int_equal(encode(&g_in, &one), 0);
        assert_int_equal(one.size - base.size, proto_catalog_township_size(&towns[i]));
        assert_true(base.size <= PROTO_CATALOG_HEAD_BYTES + i * 40);
        msgpack_sbuffer_destroy(&base);
        msgpack_sbuffer_destroy(&one);
    }
    for (uint32_t i = 0; i < 4; i++) {
        const proto_metric_info_t *m = i < 3 ? &metrics[i] : &big;
        set_catalog(&g_in, 0, 0);
        assert_int_equal(encode(&g_in, &base), 0);
        set_catalog(&g_in, 0, 1);
        g_in.u.catalog.metrics = m;
        assert_int_equal(encode(&g_in, &one), 0);
        assert_int_equal(one.size - base.size, proto_catalog_metric_size(m));
        msgpack_sbuffer_destroy(&base);
        msgpack_sbuffer_destroy(&one);
    }
}

static void expect_einval(const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    assert_int_equal(encode(m, &sb), TALLY_EINVAL);
    msgpack_sbuffer_destroy(&sb);
}

static void test_encoder_refuses(void **state)
{
    (void)state;
    static char long_label[PROTO_LABEL_MAX + 2];
    memset(long_label, 'x', PROTO_LABEL_MAX + 1);
    proto_township_t t = towns[0];
    proto_metric_info_t e = metrics[0];

    set_catalog(&g_in, 1, 0);
    g_in.u.catalog.townships_total = 0; /* more entries than the total */
    expect_einval(&g_in);
    set_catalog(&g_in, 1, 0);
    g_in.u.catalog.townships = &t;
    t.type = 4;
    expect_einval(&g_in);
    t = towns[0];
    t.id = proto_str("gao guan");
    expect_einval(&g_in);
    t = towns[0];
    t.name = proto_str(long_label);
    expect_einval(&g_in);

    set_catalog(&g_in, 0, 1);
    g_in.u.catalog.metrics = &e;
    e.label = proto_str(long_label);
    expect_einval(&g_in);
    e = metrics[0];
    e.scale = PROTO_SCALE_MAX + 1;
    expect_einval(&g_in);
    e = metrics[0];
    e.numerator = proto_str("disputes.screened"); /* a counter has no operands */
    expect_einval(&g_in);
    e = metrics[2];
    e.denominator = proto_str(""); /* a ratio needs both */
    expect_einval(&g_in);
    e = metrics[0];
    e.kind = 3;
    expect_einval(&g_in);
    e = metrics[0];
    e.unit = proto_str("\xff");
    expect_einval(&g_in);
}

/* Hand-written CATALOG bodies the decoder refuses, naming the field. */
#define HEAD "\x98\x01\x11\x07\x2a\x02\x02"
static void test_decoder_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        int code;
        const char *field;
    } rows[] = {
#define ROW(b, c, f) {b, sizeof(b) - 1, c, f}
        ROW(HEAD "\x93\x93\xa1x\xa0\x00\x93\xa1y\xa0\x00\x93\xa1z\xa0\x00\x90", TALLY_ERANGE,
            "townships"),
        ROW(HEAD "\x91\x93\xa1x\xa0\x04\x90", TALLY_ERANGE, "townships[0]"),
        ROW(HEAD "\x91\x92\xa1x\xa0\x90", TALLY_EMALFORMED, "townships[0]"),
        ROW(HEAD "\x91\x93\xa3x y\xa0\x00\x90", TALLY_EBADNAME, "townships[0]"),
        ROW(HEAD "\x90\x91\x97\xa1m\x00\xa0\x00\xa0\xa1n\xa0", TALLY_ERANGE, "metrics[0]"),
        ROW(HEAD "\x90\x91\x97\xa1m\x02\xa0\x00\xa0\xa1n\xa0", TALLY_EBADNAME, "metrics[0]"),
        ROW(HEAD "\x90\x91\x97\xa1m\x00\xa0\x0a\xa0\xa0\xa0", TALLY_ERANGE, "metrics[0]"),
        ROW(HEAD "\x90\x91\x96\xa1m\x00\xa0\x00\xa0\xa0", TALLY_EMALFORMED, "metrics[0]"),
        ROW("\x95\x01\x10\x01\x00\xa0", TALLY_EBADTYPE, "metrics_from"),
        ROW("\x94\x01\x10\x01\x00", TALLY_EMALFORMED, "CATALOG_REQ"),
#undef ROW
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        proto_error_t err;
        int rc = decode_exact(rows[i].bytes, rows[i].len, &g_out, 0, &err);
        if (rc != rows[i].code || strcmp(err.field, rows[i].field) != 0)
            print_message("row %zu: %d %s\n", i, rc, rc ? err.message : "");
        assert_int_equal(rc, rows[i].code);
        assert_string_equal(err.field, rows[i].field);
        assert_int_equal(strncmp(err.message, err.field, strlen(err.field)), 0);
    }
    /* The same body with good entries decodes. */
    static const char good[] = HEAD "\x91\x93\xa1x\xa0\x03\x91\x97\xa1m\x02\xa0\x00\xa0\xa1n\xa1"
                                    "d";
    assert_int_equal(decode_exact(good, sizeof good - 1, &g_out, 0, NULL), 0);
}

/* ---- the township list (PROTOCOL.md 8.25) -------------------------------- */

static const proto_str_t names[] = {{"gaoguan", 7}, {"葛城街道", 12}, {"x", 1}, {A64, 64}};

static void set_townships(proto_msg_t *m, uint32_t n, uint32_t next)
{
    memset(m, 0, sizeof *m);
    m->type = PROTO_TOWNSHIPS;
    m->u.townships.req_id = 9;
    m->u.townships.next = next;
    m->u.townships.n = n;
    m->u.townships.names = names;
}

static void test_townships_roundtrip(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    memset(&g_in, 0, sizeof g_in);
    g_in.type = PROTO_TOWNSHIPS_REQ;
    g_in.u.townships_req.req_id = UINT64_MAX;
    g_in.u.townships_req.from = 40001;
    assert_int_equal(encode(&g_in, &sb), 0);
    assert_int_equal(decode_exact(sb.data, sb.size, &g_out, 0, NULL), 0);
    assert_int_equal(g_out.type, PROTO_TOWNSHIPS_REQ);
    assert_true(g_out.u.townships_req.req_id == UINT64_MAX);
    assert_int_equal(g_out.u.townships_req.from, 40001);
    msgpack_sbuffer_destroy(&sb);

    for (uint32_t n = 0; n <= 4; n++) {
        set_townships(&g_in, n, n == 4 ? 0 : 100 + n);
        assert_int_equal(encode(&g_in, &sb), 0);
        assert_int_equal(decode_exact(sb.data, sb.size, &g_out, 0, NULL), 0);
        assert_int_equal(g_out.type, PROTO_TOWNSHIPS);
        assert_true(g_out.u.townships.req_id == 9);
        assert_int_equal(g_out.u.townships.next, n == 4 ? 0 : 100 + n);
        assert_int_equal(g_out.u.townships.n, n);
        assert_null(g_out.u.townships.names);
        proto_townships_iter_t it;
        proto_str_t got;
        uint32_t k = 0;
        proto_townships_iter(&it, &g_out);
        while (proto_townships_next(&it, &got)) {
            assert_true(k < n && same(got, names[k]));
            k++;
        }
        assert_int_equal(k, n);
        assert_false(proto_townships_next(&it, &got)); /* stays at the end */
        msgpack_sbuffer_destroy(&sb);
    }
}

/* What a name adds to a TOWNSHIPS body, and the head's bound. */
static void test_township_name_sizes(void **state)
{
    (void)state;
    msgpack_sbuffer base, one;
    for (uint32_t i = 0; i < 4; i++) {
        set_townships(&g_in, i, UINT32_MAX);
        g_in.u.townships.req_id = UINT64_MAX;
        assert_int_equal(encode(&g_in, &base), 0);
        set_townships(&g_in, i + 1, UINT32_MAX);
        g_in.u.townships.req_id = UINT64_MAX;
        assert_int_equal(encode(&g_in, &one), 0);
        assert_int_equal(one.size - base.size, proto_townships_name_size(names[i].len));
        if (i == 0)
            assert_true(base.size <= PROTO_TOWNSHIPS_HEAD_BYTES);
        msgpack_sbuffer_destroy(&base);
        msgpack_sbuffer_destroy(&one);
    }
}

static void test_townships_refused(void **state)
{
    (void)state;
    static const proto_str_t bad[][1] = {{{"gao guan", 8}}, {{"", 0}}, {{"a/b", 3}}, {{"\xff", 1}}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_townships(&g_in, 1, 0);
        g_in.u.townships.names = bad[i];
        expect_einval(&g_in);
    }
    set_townships(&g_in, 1, 0);
    g_in.u.townships.names = NULL;
    expect_einval(&g_in);

    static const struct {
        const char *bytes;
        size_t len;
        int code;
        const char *field;
    } rows[] = {
#define ROW(b, c, f) {b, sizeof(b) - 1, c, f}
        /* [1, 27, 9, next, townships] */
        ROW("\x95\x01\x1b\x09\x00\x92\xa1x\xa3x y", TALLY_EBADNAME, "townships[1]"),
        ROW("\x95\x01\x1b\x09\x00\x91\xa0", TALLY_EBADNAME, "townships[0]"),
        ROW("\x95\x01\x1b\x09\x00\x91\x01", TALLY_EBADTYPE, "townships[0]"),
        ROW("\x95\x01\x1b\x09\x00\x91\xa2\xc3\x28", TALLY_EUTF8, "townships[0]"),
        ROW("\x95\x01\x1b\x09\xa1x\x90", TALLY_EBADTYPE, "next"),
        ROW("\x95\x01\x1b\x09\xcf\x00\x00\x00\x01\x00\x00\x00\x00\x90", TALLY_ERANGE, "next"),
        ROW("\x95\x01\x1b\x09\x00\xa1x", TALLY_EBADTYPE, "townships"),
        ROW("\x94\x01\x1b\x09\x00", TALLY_EMALFORMED, "TOWNSHIPS"),
        /* [1, 26, 9, from] */
        ROW("\x94\x01\x1a\x09\xff", TALLY_ERANGE, "from"),
        ROW("\x94\x01\x1a\x09\xc0", TALLY_EBADTYPE, "from"),
        ROW("\x95\x01\x1a\x09\x00\x00", TALLY_EMALFORMED, "TOWNSHIPS_REQ"),
#undef ROW
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        proto_error_t err;
        int rc = decode_exact(rows[i].bytes, rows[i].len, &g_out, 0, &err);
        if (rc != rows[i].code || strcmp(err.field, rows[i].field) != 0)
            print_message("row %zu: %d %s\n", i, rc, rc ? err.message : "");
        assert_int_equal(rc, rows[i].code);
        assert_string_equal(err.field, rows[i].field);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_roundtrip),
        cmocka_unit_test(test_catalog_roundtrip_and_iteration),
        cmocka_unit_test(test_entry_sizes),
        cmocka_unit_test(test_encoder_refuses),
        cmocka_unit_test(test_decoder_refuses),
        cmocka_unit_test(test_townships_roundtrip),
        cmocka_unit_test(test_township_name_sizes),
        cmocka_unit_test(test_townships_refused),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_group);
}
