/* test_proto_backup_list.c - unit tests of BACKUP_LIST_REQ and BACKUP_LIST
 * in the wire codec (PROTOCOL.md 8.28): round trips at the bounds of every
 * field (an empty list, the longest directory and name, 1000 backups),
 * the bytes of the example, what the decoder rejects (each report naming
 * its field, the req_id kept) and what the encoder refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "proto.h"
#include "proto_test_util.h"

static proto_msg_t g_in, g_out;
static char g_long[PROTO_PATH_MAX + 1]; /* '/' then 'd's */

static int setup_group(void **state)
{
    (void)state;
    memset(g_long, 'd', sizeof g_long);
    g_long[0] = '/';
    return 0;
}

static int encode(const proto_msg_t *m, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_init(sb);
    return proto_encode(sb, m);
}

static void set_list(proto_msg_t *m, proto_str_t dir, uint32_t total, uint32_t n,
                     const proto_backup_entry_t *backups)
{
    memset(m, 0, sizeof *m);
    m->type = PROTO_BACKUP_LIST;
    m->u.backup_list.req_id = 9;
    m->u.backup_list.dir = dir;
    m->u.backup_list.total = total;
    m->u.backup_list.n = n;
    m->u.backup_list.backups = backups;
}

/* Encode g_in, decode it into g_out, and compare the entries. */
static void roundtrip(const proto_backup_entry_t *want, uint32_t n)
{
    msgpack_sbuffer sb;
    assert_int_equal(encode(&g_in, &sb), 0);
    assert_int_equal(decode_exact(sb.data, sb.size, &g_out, 0, NULL), 0);
    assert_int_equal(g_out.type, PROTO_BACKUP_LIST);
    assert_true(g_out.u.backup_list.req_id == g_in.u.backup_list.req_id);
    assert_true(proto_req_id(&g_out) == g_in.u.backup_list.req_id);
    assert_int_equal(g_out.u.backup_list.dir.len, g_in.u.backup_list.dir.len);
    assert_memory_equal(g_out.u.backup_list.dir.ptr, g_in.u.backup_list.dir.ptr,
                        g_in.u.backup_list.dir.len);
    assert_int_equal(g_out.u.backup_list.total, g_in.u.backup_list.total);
    assert_int_equal(g_out.u.backup_list.n, n);
    assert_null(g_out.u.backup_list.backups);
    proto_backups_iter_t it;
    proto_backups_iter(&it, &g_out);
    proto_backup_entry_t e;
    for (uint32_t i = 0; i < n; i++) {
        assert_true(proto_backups_next(&it, &e));
        assert_int_equal(e.name.len, want[i].name.len);
        assert_memory_equal(e.name.ptr, want[i].name.ptr, e.name.len);
        assert_int_equal(e.files, want[i].files);
        assert_true(e.bytes == want[i].bytes);
        assert_int_equal(e.sums, want[i].sums);
    }
    assert_false(proto_backups_next(&it, &e));
    assert_false(proto_backups_next(&it, &e));
    msgpack_sbuffer_destroy(&sb);
}

static void test_list_req_roundtrip(void **state)
{
    (void)state;
    static const uint64_t ids[] = {0, 1, 127, 128, UINT32_MAX, UINT64_MAX};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        memset(&g_in, 0, sizeof g_in);
        g_in.type = PROTO_BACKUP_LIST_REQ;
        g_in.u.backup_list_req.req_id = ids[i];
        msgpack_sbuffer sb;
        assert_int_equal(encode(&g_in, &sb), 0);
        assert_int_equal(decode_exact(sb.data, sb.size, &g_out, 0, NULL), 0);
        assert_int_equal(g_out.type, PROTO_BACKUP_LIST_REQ);
        assert_true(proto_req_id(&g_out) == ids[i]);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_list_roundtrip(void **state)
{
    (void)state;
    static const proto_backup_entry_t three[] = {
        {{"backup-20000101T000000Z", 23}, 0, 0, false},
        {{"backup-20261206T204944Z-999", 27}, UINT32_MAX, UINT64_MAX, true},
        {{"backup-20991231T235959Z-2", 25}, 5, 45200000, true},
    };
    set_list(&g_in, proto_str(""), 0, 0, NULL);
    roundtrip(NULL, 0);
    set_list(&g_in, proto_str("/b"), UINT32_MAX, 0, NULL);
    roundtrip(NULL, 0);
    set_list(&g_in, (proto_str_t){g_long, PROTO_PATH_MAX}, 3, 3, three);
    roundtrip(three, 3);
    set_list(&g_in, proto_str("/var/lib/tallyd/备份"), 7, 3, three);
    roundtrip(three, 3);
}

/* PROTO_BACKUPS_MAX backups in one message, read back in order. */
static void test_list_longest(void **state)
{
    (void)state;
    proto_backup_entry_t *v = calloc(PROTO_BACKUPS_MAX, sizeof *v);
    char(*names)[32] = calloc(PROTO_BACKUPS_MAX, sizeof *names);
    assert_true(v != NULL && names != NULL);
    for (uint32_t i = 0; i < PROTO_BACKUPS_MAX; i++) {
        int len = snprintf(names[i], sizeof names[i], "backup-20261206T2049%02uZ-%u", i % 60,
                           i % 999 + 1);
        v[i] = (proto_backup_entry_t){{names[i], (uint32_t)len}, i, (uint64_t)i * 1000003, i % 2};
    }
    set_list(&g_in, proto_str("/b"), 10000, PROTO_BACKUPS_MAX, v);
    roundtrip(v, PROTO_BACKUPS_MAX);
    free(names);
    free(v);
}

/* The example of PROTOCOL.md 8.28, both ways. */
static void test_list_example(void **state)
{
    (void)state;
    static const char req[] = "\x93\x01\x20\x09";
    static const char rep[] = "\x96\x01\x21\x09\xa2/b\x01\x91\x94\xb7"
                              "backup-20231130T160000Z"
                              "\x05\xcd\xea\x60\x01";
    msgpack_sbuffer sb;
    memset(&g_in, 0, sizeof g_in);
    g_in.type = PROTO_BACKUP_LIST_REQ;
    g_in.u.backup_list_req.req_id = 9;
    assert_int_equal(encode(&g_in, &sb), 0);
    assert_int_equal(sb.size, 4);
    assert_memory_equal(sb.data, req, 4);
    msgpack_sbuffer_destroy(&sb);

    static const proto_backup_entry_t one[] = {{{"backup-20231130T160000Z", 23}, 5, 60000, true}};
    set_list(&g_in, proto_str("/b"), 1, 1, one);
    assert_int_equal(sizeof rep - 1, 39);
    assert_int_equal(encode(&g_in, &sb), 0);
    assert_int_equal(sb.size, 39);
    assert_memory_equal(sb.data, rep, 39);
    msgpack_sbuffer_destroy(&sb);
    roundtrip(one, 1);
}

static void test_list_decoder_refuses(void **state)
{
    (void)state;
#define ROW(b, c, f, t, id)                                                                        \
    {                                                                                              \
        b, sizeof(b) - 1, c, f, t, id                                                              \
    }
#define LS(rest)  "\x96\x01\x21\x09" rest /* [1, 33, 9, ...] */
#define LSD(rest) LS("\xa2/b" rest)       /* ... dir "/b", ... */
#define NAME                                                                                       \
    "\xb7"                                                                                         \
    "backup-20231130T160000Z"
#define T PROTO_BACKUP_LIST
    static const refusal_t rows[] = {
        /* BACKUP_LIST_REQ: [1, 32, req_id] */
        ROW("\x93\x01\x20\xa1x", TALLY_EBADTYPE, "req_id", PROTO_BACKUP_LIST_REQ, 0),
        ROW("\x93\x01\x20\xff", TALLY_ERANGE, "req_id", PROTO_BACKUP_LIST_REQ, 0),
        ROW("\x94\x01\x20\x09\x00", TALLY_EMALFORMED, "BACKUP_LIST_REQ", PROTO_BACKUP_LIST_REQ, 0),
        ROW("\x92\x01\x20", TALLY_EMALFORMED, "BACKUP_LIST_REQ", PROTO_BACKUP_LIST_REQ, 0),
        ROW("\x93\x01\x20\x09\xc0", TALLY_ETRAILING, "body", PROTO_BACKUP_LIST_REQ, 9),
        /* A type past the last. */
        ROW("\x93\x01\x22\x09", TALLY_ETYPE, "type", 0, 0),
        /* BACKUP_LIST: [1, 33, req_id, dir, total, backups] */
        ROW("\x96\x01\x21\xc0\xa0\x00\x90", TALLY_EBADTYPE, "req_id", T, 0),
        ROW(LS("\x00\x00\x90"), TALLY_EBADTYPE, "dir", T, 9),
        ROW(LS("\xc4\x01/\x00\x90"), TALLY_EBADTYPE, "dir", T, 9),
        ROW(LS("\xa2/\xff\x00\x90"), TALLY_EUTF8, "dir", T, 9),
        ROW(LS("\xda\x04\x00/b"), TALLY_EMALFORMED, "dir", T, 9),
        ROW(LSD("\xff\x90"), TALLY_ERANGE, "total", T, 9),
        ROW(LSD("\xce\xff\xff\xff\xff"
                "\x90"),
            0, "", T, 9),
        ROW(LSD("\xcf\x00\x00\x00\x01\x00\x00\x00\x00\x90"), TALLY_ERANGE, "total", T, 9),
        ROW(LSD("\xa1"
                "1"
                "\x90"),
            TALLY_EBADTYPE, "total", T, 9),
        ROW(LSD("\x01\x80"), TALLY_EBADTYPE, "backups", T, 9),
        ROW(LSD("\x01\xc0"), TALLY_EBADTYPE, "backups", T, 9),
        ROW(LSD("\x00\x91\x94" NAME "\x05\x00\x01"), TALLY_ERANGE, "backups", T, 9),
        ROW(LSD("\x01\x91\x93" NAME "\x05\x00"), TALLY_EMALFORMED, "backups[0]", T, 9),
        ROW(LSD("\x01\x91\x95" NAME "\x05\x00\x01\x00"), TALLY_EMALFORMED, "backups[0]", T, 9),
        ROW(LSD("\x01\x91" NAME), TALLY_EBADTYPE, "backups[0]", T, 9),
        ROW(LSD("\x01\x91\x94\xa6"
                "backup\x05\x00\x01"),
            TALLY_EBADNAME, "backups[0]", T, 9),
        ROW(LSD("\x01\x91\x94\xba"
                "backup-20231130T160000Z-10"
                "\x05\x00\x01"),
            0, "", T, 9),
        ROW(LSD("\x01\x91\x94\xbc"
                "backup-20231130T160000Z-1000"
                "\x05\x00\x01"),
            TALLY_EBADNAME, "backups[0]", T, 9),
        ROW(LSD("\x01\x91\x94\x05" NAME "\x00\x01"), TALLY_EBADTYPE, "backups[0]", T, 9),
        ROW(LSD("\x01\x91\x94" NAME "\xff\x00\x01"), TALLY_ERANGE, "backups[0]", T, 9),
        ROW(LSD("\x01\x91\x94" NAME "\xcf\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01"), TALLY_ERANGE,
            "backups[0]", T, 9),
        ROW(LSD("\x01\x91\x94" NAME "\x05\xd0\xff\x01"), TALLY_ERANGE, "backups[0]", T, 9),
        ROW(LSD("\x01\x91\x94" NAME "\x05\x00\x02"), TALLY_ERANGE, "backups[0]", T, 9),
        ROW(LSD("\x01\x91\x94" NAME "\x05\x00\xc3"), TALLY_EBADTYPE, "backups[0]", T, 9),
        ROW(LSD("\x02\x92\x94" NAME "\x05\x00\x01\x94" NAME "\x05\x00\x02"), TALLY_ERANGE,
            "backups[1]", T, 9),
        ROW(LSD("\x01\x91\x94" NAME "\x05\x00\x01\xc0"), TALLY_ETRAILING, "body", T, 9),
        ROW("\x95\x01\x21\x09\xa2/b\x00", TALLY_EMALFORMED, "BACKUP_LIST", T, 0),
    };
#undef T
#undef NAME
#undef LSD
#undef LS
#undef ROW
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_refusal(i, &rows[i], &g_out);
}

/* A directory of PROTO_PATH_MAX bytes is taken, one more is not; more
 * backups than a list holds are refused. */
static void test_list_bounds(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    for (uint32_t len = PROTO_PATH_MAX; len <= PROTO_PATH_MAX + 1; len++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 6);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_uint64(&pk, PROTO_BACKUP_LIST);
        msgpack_pack_uint64(&pk, 9);
        msgpack_pack_str_with_body(&pk, g_long, len);
        msgpack_pack_uint64(&pk, 0);
        msgpack_pack_array(&pk, 0);
        proto_error_t err;
        int rc = decode_exact(sb.data, sb.size, &g_out, 0, &err);
        assert_int_equal(rc, len == PROTO_PATH_MAX ? 0 : TALLY_ETOOLONG);
        if (rc != 0)
            assert_string_equal(err.field, "dir");
        msgpack_sbuffer_destroy(&sb);
    }
    for (uint32_t n = PROTO_BACKUPS_MAX; n <= PROTO_BACKUPS_MAX + 1; n++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 6);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_uint64(&pk, PROTO_BACKUP_LIST);
        msgpack_pack_uint64(&pk, 9);
        msgpack_pack_str_with_body(&pk, "/b", 2);
        msgpack_pack_uint64(&pk, 5000);
        msgpack_pack_array(&pk, n);
        for (uint32_t i = 0; i < n; i++) {
            msgpack_pack_array(&pk, 4);
            msgpack_pack_str_with_body(&pk, "backup-20231130T160000Z", 23);
            msgpack_pack_uint64(&pk, 1);
            msgpack_pack_uint64(&pk, 2);
            msgpack_pack_uint64(&pk, 0);
        }
        proto_error_t err;
        int rc = decode_exact(sb.data, sb.size, &g_out, 0, &err);
        assert_int_equal(rc, n == PROTO_BACKUPS_MAX ? 0 : TALLY_ERANGE);
        if (rc != 0) {
            assert_string_equal(err.field, "backups");
            assert_non_null(strstr(err.message, "1001 backups, more than a list holds (1000)"));
        }
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_list_encoder_refuses(void **state)
{
    (void)state;
    static const proto_backup_entry_t bad_name[] = {{{"backup-2023", 11}, 1, 2, false}};
    static const proto_backup_entry_t good[] = {{{"backup-20231130T160000Z", 23}, 1, 2, false}};
    static const char bad_utf8[] = "/\xff";
    msgpack_sbuffer sb;
    set_list(&g_in, proto_str("/b"), 1, 1, bad_name);
    assert_int_equal(encode(&g_in, &sb), TALLY_EINVAL);
    msgpack_sbuffer_destroy(&sb);
    set_list(&g_in, proto_str("/b"), 0, 1, good); /* more than the total */
    assert_int_equal(encode(&g_in, &sb), TALLY_EINVAL);
    msgpack_sbuffer_destroy(&sb);
    set_list(&g_in, proto_str("/b"), 1, 1, NULL);
    assert_int_equal(encode(&g_in, &sb), TALLY_EINVAL);
    msgpack_sbuffer_destroy(&sb);
    set_list(&g_in, (proto_str_t){bad_utf8, 2}, 1, 1, good);
    assert_int_equal(encode(&g_in, &sb), TALLY_EINVAL);
    msgpack_sbuffer_destroy(&sb);
    set_list(&g_in, (proto_str_t){g_long, PROTO_PATH_MAX + 1}, 1, 1, good);
    assert_int_equal(encode(&g_in, &sb), TALLY_EINVAL);
    msgpack_sbuffer_destroy(&sb);
    set_list(&g_in, proto_str("/b"), PROTO_BACKUPS_MAX + 1, PROTO_BACKUPS_MAX + 1, good);
    assert_int_equal(encode(&g_in, &sb), TALLY_EINVAL);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_req_roundtrip),   cmocka_unit_test(test_list_roundtrip),
        cmocka_unit_test(test_list_longest),         cmocka_unit_test(test_list_example),
        cmocka_unit_test(test_list_decoder_refuses), cmocka_unit_test(test_list_bounds),
        cmocka_unit_test(test_list_encoder_refuses),
    };
    return cmocka_run_group_tests(tests, setup_group, NULL);
}
