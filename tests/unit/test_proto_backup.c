/* test_proto_backup.c - unit tests of the backup messages of the wire
 * codec (PROTOCOL.md 8.26): BACKUP_REQ and BACKUP round trips at the
 * bounds of every field, the bytes of 8.26's example, what the decoder
 * rejects (each report naming its field, the req_id kept for the daemon's
 * ERROR) and what the encoder refuses. */
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

/* A path of PROTO_PATH_MAX + 1 bytes: '/' then 'p's; its first
 * PROTO_PATH_MAX bytes are the longest path there may be. */
static char g_long[PROTO_PATH_MAX + 1];

static int setup_group(void **state)
{
    (void)state;
    memset(g_long, 'p', sizeof g_long);
    g_long[0] = '/';
    return 0;
}

static int encode(const proto_msg_t *m, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_init(sb);
    return proto_encode(sb, m);
}

static void set_backup(proto_msg_t *m, proto_str_t path, uint32_t files, uint64_t bytes,
                       uint64_t ms)
{
    memset(m, 0, sizeof *m);
    m->type = PROTO_BACKUP;
    m->u.backup.req_id = 7;
    m->u.backup.path = path;
    m->u.backup.files = files;
    m->u.backup.bytes = bytes;
    m->u.backup.ms = ms;
}

static void test_backup_req_roundtrip(void **state)
{
    (void)state;
    static const uint64_t ids[] = {0, 1, 127, 128, UINT32_MAX, UINT64_MAX};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        msgpack_sbuffer sb;
        memset(&g_in, 0, sizeof g_in);
        g_in.type = PROTO_BACKUP_REQ;
        g_in.u.backup_req.req_id = ids[i];
        assert_int_equal(encode(&g_in, &sb), 0);
        memset(&g_out, 0xaa, sizeof g_out);
        assert_int_equal(decode_exact(sb.data, sb.size, &g_out, 0, NULL), 0);
        assert_int_equal(g_out.version, PROTO_VERSION);
        assert_int_equal(g_out.type, PROTO_BACKUP_REQ);
        assert_true(g_out.u.backup_req.req_id == ids[i]);
        assert_true(proto_req_id(&g_out) == ids[i]);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_backup_roundtrip(void **state)
{
    (void)state;
#define S(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }
    static const struct {
        proto_str_t path;
        uint32_t files;
        uint64_t bytes, ms;
    } rows[] = {
        {S("/"), 1, 0, 0},
        {S("backup-20231130T160000Z"), UINT32_MAX, UINT64_MAX, UINT64_MAX}, /* the name alone */
        {S("/srv/县统计/备份/backup-20231130T160000Z"), 5, 1048576, 127},
        {S("/a b\t\"c\""), 2, 1, 1}, /* a path is text, not a name */
        {{g_long, 31}, 3, 4, 5},     /* fixstr */
        {{g_long, 32}, 3, 4, 5},     /* str8 */
        {{g_long, 256}, 3, 4, 5},    /* str16 */
        {{g_long, PROTO_PATH_MAX}, 3, 4, 5},
    };
#undef S
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        msgpack_sbuffer sb;
        set_backup(&g_in, rows[i].path, rows[i].files, rows[i].bytes, rows[i].ms);
        g_in.u.backup.req_id = UINT64_MAX - i;
        assert_int_equal(encode(&g_in, &sb), 0);
        memset(&g_out, 0xaa, sizeof g_out);
        assert_int_equal(decode_exact(sb.data, sb.size, &g_out, 0, NULL), 0);
        assert_int_equal(g_out.type, PROTO_BACKUP);
        assert_true(g_out.u.backup.req_id == UINT64_MAX - i);
        assert_true(proto_req_id(&g_out) == UINT64_MAX - i);
        assert_int_equal(g_out.u.backup.path.len, rows[i].path.len);
        assert_memory_equal(g_out.u.backup.path.ptr, rows[i].path.ptr, rows[i].path.len);
        assert_int_equal(g_out.u.backup.files, rows[i].files);
        assert_true(g_out.u.backup.bytes == rows[i].bytes);
        assert_true(g_out.u.backup.ms == rows[i].ms);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* PROTOCOL.md 8.26's example, both ways. */
static void test_backup_example(void **state)
{
    (void)state;
    static const char req[] = "\x93\x01\x1c\x07";
    static const char rep[] = "\x97\x01\x1d\x07\xd9\x2f"
                              "/var/lib/tallyd/backups/backup-20231130T160000Z"
                              "\x05\xce\x00\x10\x00\x00\x7f";
    msgpack_sbuffer sb;
    memset(&g_in, 0, sizeof g_in);
    g_in.type = PROTO_BACKUP_REQ;
    g_in.u.backup_req.req_id = 7;
    assert_int_equal(encode(&g_in, &sb), 0);
    assert_int_equal(sb.size, 4);
    assert_memory_equal(sb.data, req, 4);
    msgpack_sbuffer_destroy(&sb);

    set_backup(&g_in, proto_str("/var/lib/tallyd/backups/backup-20231130T160000Z"), 5, 1048576,
               127);
    assert_int_equal(encode(&g_in, &sb), 0);
    assert_int_equal(sb.size, 60);
    assert_int_equal(sizeof rep - 1, 60);
    assert_memory_equal(sb.data, rep, 60);
    msgpack_sbuffer_destroy(&sb);

    assert_int_equal(decode_exact(rep, sizeof rep - 1, &g_out, 0, NULL), 0);
    assert_int_equal(g_out.type, PROTO_BACKUP);
    assert_true(g_out.u.backup.req_id == 7);
    assert_true(view_is(g_out.u.backup.path, "/var/lib/tallyd/backups/backup-20231130T160000Z"));
    assert_int_equal(g_out.u.backup.files, 5);
    assert_true(g_out.u.backup.bytes == 1048576 && g_out.u.backup.ms == 127);
}

typedef struct row {
    const char *bytes;
    size_t len;
    int code;
    const char *field;
    uint32_t type;   /* g_out.type after the failure */
    uint64_t req_id; /* proto_req_id() after the failure */
} row_t;

static void check_row(size_t i, const row_t *r)
{
    proto_error_t err;
    memset(&err, 0, sizeof err);
    memset(&g_out, 0xaa, sizeof g_out);
    int rc = decode_exact(r->bytes, r->len, &g_out, 0, &err);
    if (rc != r->code || strcmp(err.field, r->field) != 0)
        print_message("row %zu: %s field '%s' (%s), want %s field '%s'\n", i, tally_errname(rc),
                      err.field, rc ? err.message : "", tally_errname(r->code), r->field);
    assert_int_equal(rc, r->code);
    assert_int_equal(err.code, rc);
    assert_string_equal(err.field, r->field);
    /* The sentence names the field first. */
    assert_int_equal(strncmp(err.message, err.field, strlen(err.field)), 0);
    assert_int_equal(g_out.type, r->type);
    assert_true(proto_req_id(&g_out) == r->req_id);
}

static void test_backup_decoder_refuses(void **state)
{
    (void)state;
#define ROW(b, c, f, t, id)                                                                        \
    {                                                                                              \
        b, sizeof(b) - 1, c, f, t, id                                                              \
    }
#define BK(rest)  "\x97\x01\x1d\x09" rest /* [1, 29, 9, ...] */
#define BKP(rest) BK("\xa2/x" rest)       /* ... path "/x", ... */
    static const row_t rows[] = {
        /* BACKUP_REQ: [1, 28, req_id] */
        ROW("\x93\x01\x1c\xa1x", TALLY_EBADTYPE, "req_id", PROTO_BACKUP_REQ, 0),
        ROW("\x93\x01\x1c\xc0", TALLY_EBADTYPE, "req_id", PROTO_BACKUP_REQ, 0),
        ROW("\x93\x01\x1c\xd0\x80", TALLY_ERANGE, "req_id", PROTO_BACKUP_REQ, 0),
        ROW("\x93\x01\x1c\xcf\x00\x00", TALLY_EMALFORMED, "req_id", PROTO_BACKUP_REQ, 0),
        ROW("\x94\x01\x1c\x09\x00", TALLY_EMALFORMED, "BACKUP_REQ", PROTO_BACKUP_REQ, 0),
        ROW("\x92\x01\x1c", TALLY_EMALFORMED, "BACKUP_REQ", PROTO_BACKUP_REQ, 0),
        ROW("\x93\x01\x1c\x09\xc0", TALLY_ETRAILING, "body", PROTO_BACKUP_REQ, 9),
        ROW("\x93\x01\x1c", TALLY_EMALFORMED, "body", 0, 0),
        /* BACKUP: [1, 29, req_id, path, files, bytes, ms] */
        ROW("\x97\x01\x1d\xff\xa2/x\x01\x00\x00", TALLY_ERANGE, "req_id", PROTO_BACKUP, 0),
        ROW(BK("\x01\x01\x00\x00"), TALLY_EBADTYPE, "path", PROTO_BACKUP, 9),
        ROW(BK("\xc4\x02/x\x01\x00\x00"), TALLY_EBADTYPE, "path", PROTO_BACKUP, 9),
        ROW(BK("\x91\xa2/x\x01\x00\x00"), TALLY_EBADTYPE, "path", PROTO_BACKUP, 9),
        ROW(BK("\xa0\x01\x00\x00"), TALLY_ERANGE, "path", PROTO_BACKUP, 9),
        ROW(BK("\xa2/\xff\x01\x00\x00"), TALLY_EUTF8, "path", PROTO_BACKUP, 9),
        ROW(BK("\xa4/\xed\xa0\x80\x01\x00\x00"), TALLY_EUTF8, "path", PROTO_BACKUP, 9),
        ROW(BK("\xa3/\xc0\xaf\x01\x00\x00"), TALLY_EUTF8, "path", PROTO_BACKUP, 9),
        ROW(BK("\xda\x04\x00/x\x01\x00\x00"), TALLY_EMALFORMED, "path", PROTO_BACKUP, 9),
        ROW(BKP("\x00\x00\x00"), TALLY_ERANGE, "files", PROTO_BACKUP, 9),
        ROW(BKP("\xff\x00\x00"), TALLY_ERANGE, "files", PROTO_BACKUP, 9),
        ROW(BKP("\xcf\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"), TALLY_ERANGE, "files",
            PROTO_BACKUP, 9),
        ROW(BKP("\xa1"
                "5"
                "\x00\x00"),
            TALLY_EBADTYPE, "files", PROTO_BACKUP, 9),
        ROW(BKP("\x01\xd0\x80\x00"), TALLY_ERANGE, "bytes", PROTO_BACKUP, 9),
        ROW(BKP("\x01\xc0\x00"), TALLY_EBADTYPE, "bytes", PROTO_BACKUP, 9),
        ROW(BKP("\x01\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\x00"), TALLY_EBADTYPE, "bytes",
            PROTO_BACKUP, 9),
        ROW(BKP("\x01\x00\xd3\xff\xff\xff\xff\xff\xff\xff\xff"), TALLY_ERANGE, "ms", PROTO_BACKUP,
            9),
        ROW(BKP("\x01\x00\x90"), TALLY_EBADTYPE, "ms", PROTO_BACKUP, 9),
        ROW(BKP("\x01\x00\xc2"), TALLY_EBADTYPE, "ms", PROTO_BACKUP, 9),
        ROW(BKP("\x01\x00\xcf\x00"), TALLY_EMALFORMED, "ms", PROTO_BACKUP, 9),
        ROW(BKP("\x01\x00\x00\x00"), TALLY_ETRAILING, "body", PROTO_BACKUP, 9),
        ROW("\x96\x01\x1d\x09\xa2/x\x01\x00", TALLY_EMALFORMED, "BACKUP", PROTO_BACKUP, 0),
        ROW("\x98\x01\x1d\x09\xa2/x\x01\x00\x00\x00", TALLY_EMALFORMED, "BACKUP", PROTO_BACKUP, 0),
    };
#undef BKP
#undef BK
#undef ROW
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(i, &rows[i]);

    /* The good body the rows spoil is good. */
    static const char good[] = "\x97\x01\x1d\x09\xa2/x\x01\x00\x00";
    assert_int_equal(decode_exact(good, sizeof good - 1, &g_out, 0, NULL), 0);
    assert_true(view_is(g_out.u.backup.path, "/x"));
}

/* A path of PROTO_PATH_MAX bytes is taken, one more is TOO_LONG. */
static void test_backup_path_length(void **state)
{
    (void)state;
    static uint8_t buf[8 + PROTO_PATH_MAX + 1 + 3];
    for (size_t len = PROTO_PATH_MAX; len <= PROTO_PATH_MAX + 1; len++) {
        size_t n = 5;
        memcpy(buf, "\x97\x01\x1d\x09\xda", n); /* [1, 29, 9, str16 ... */
        buf[n++] = (uint8_t)(len >> 8);
        buf[n++] = (uint8_t)len;
        memcpy(buf + n, g_long, len);
        n += len;
        memcpy(buf + n, "\x01\x00\x00", 3); /* ... files 1, bytes 0, ms 0] */
        n += 3;
        if (len == PROTO_PATH_MAX) {
            assert_int_equal(decode_exact(buf, n, &g_out, 0, NULL), 0);
            assert_int_equal(g_out.u.backup.path.len, PROTO_PATH_MAX);
            continue;
        }
        check_row(0, &(row_t){(const char *)buf, n, TALLY_ETOOLONG, "path", PROTO_BACKUP, 9});
        proto_error_t err;
        assert_int_equal(decode_exact(buf, n, &g_out, 0, &err), TALLY_ETOOLONG);
        assert_non_null(strstr(err.message, " is 1025 bytes, outside the allowed 1..1024 bytes"));
    }
}

static void test_backup_encoder_refuses(void **state)
{
    (void)state;
    static const proto_str_t bad[] = {
        {"", 0},
        {NULL, 0},
        {NULL, 3},
        {"/a\xff", 3},
        {"/\xed\xa0\x80", 4},         /* a surrogate */
        {g_long, PROTO_PATH_MAX + 1}, /* too long */
    };
    msgpack_sbuffer sb;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_backup(&g_in, bad[i], 1, 0, 0);
        assert_int_equal(encode(&g_in, &sb), TALLY_EINVAL);
        msgpack_sbuffer_destroy(&sb);
    }
    set_backup(&g_in, proto_str("/x"), 0, 0, 0); /* a backup has a file at least */
    assert_int_equal(encode(&g_in, &sb), TALLY_EINVAL);
    msgpack_sbuffer_destroy(&sb);
    set_backup(&g_in, proto_str("/x"), 1, 0, 0); /* the rest of those messages is good */
    assert_int_equal(encode(&g_in, &sb), 0);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_req_roundtrip), cmocka_unit_test(test_backup_roundtrip),
        cmocka_unit_test(test_backup_example),       cmocka_unit_test(test_backup_decoder_refuses),
        cmocka_unit_test(test_backup_path_length),   cmocka_unit_test(test_backup_encoder_refuses),
    };
    return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
