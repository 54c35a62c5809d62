/* test_proto_backup.c - unit tests of the backup messages of the wire
 * codec (PROTOCOL.md 8.26, 8.27): BACKUP_REQ, BACKUP, BACKUP_FETCH and
 * BACKUP_CHUNK round trips at the bounds of every field, the bytes of the
 * examples, the rules of a backup's name and of a file's, what the decoder
 * rejects (each report naming its field, the req_id kept for the daemon's
 * ERROR) and what the encoder refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "proto.h"
#include "proto_test_util.h"

static proto_msg_t g_in, g_out;

/* A path of PROTO_PATH_MAX + 1 bytes: '/' then 'p's; its first
 * PROTO_PATH_MAX bytes are the longest path there may be. */
static char g_long[PROTO_PATH_MAX + 1];

/* A file's bytes, a chunk of them and some more: a pattern, so that a
 * shifted copy shows. */
static char g_data[PROTO_CHUNK_MAX + 64];

static int setup_group(void **state)
{
    (void)state;
    memset(g_long, 'p', sizeof g_long);
    g_long[0] = '/';
    for (size_t i = 0; i < sizeof g_data; i++)
        g_data[i] = (char)(i * 7 + i / 251);
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

static void test_backup_decoder_refuses(void **state)
{
    (void)state;
#define ROW(b, c, f, t, id)                                                                        \
    {                                                                                              \
        b, sizeof(b) - 1, c, f, t, id                                                              \
    }
#define BK(rest)  "\x97\x01\x1d\x09" rest /* [1, 29, 9, ...] */
#define BKP(rest) BK("\xa2/x" rest)       /* ... path "/x", ... */
    static const refusal_t rows[] = {
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
        check_refusal(i, &rows[i], &g_out);

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
        check_refusal(
            0, &(refusal_t){(const char *)buf, n, TALLY_ETOOLONG, "path", PROTO_BACKUP, 9}, &g_out);
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

/* ---- BACKUP_FETCH and BACKUP_CHUNK (PROTOCOL.md 8.27) -------------------- */

#define NAME "backup-20231130T160000Z"

static void set_fetch(proto_msg_t *m, proto_str_t name, uint32_t file, uint64_t offset)
{
    memset(m, 0, sizeof *m);
    m->type = PROTO_BACKUP_FETCH;
    m->u.backup_fetch.req_id = 8;
    m->u.backup_fetch.name = name;
    m->u.backup_fetch.file = file;
    m->u.backup_fetch.offset = offset;
}

static void set_chunk(proto_msg_t *m, uint32_t files, uint32_t file, proto_str_t file_name,
                      uint64_t size, uint64_t offset, proto_str_t data)
{
    memset(m, 0, sizeof *m);
    m->type = PROTO_BACKUP_CHUNK;
    m->u.backup_chunk.req_id = 8;
    m->u.backup_chunk.files = files;
    m->u.backup_chunk.file = file;
    m->u.backup_chunk.file_name = file_name;
    m->u.backup_chunk.size = size;
    m->u.backup_chunk.offset = offset;
    m->u.backup_chunk.data = data;
}

static void test_backup_fetch_roundtrip(void **state)
{
    (void)state;
    static const char *const names[] = {NAME,
                                        NAME "-1",
                                        NAME "-12",
                                        NAME "-123",
                                        NAME "-000",
                                        "backup-00000000T000000Z",
                                        "backup-99999999T999999Z-9"};
    static const uint32_t files[] = {0, 1, 127, 128, UINT32_MAX};
    static const uint64_t offsets[] = {0, 1, PROTO_CHUNK_MAX, UINT32_MAX, UINT64_MAX};
    uint64_t id = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        for (size_t j = 0; j < sizeof files / sizeof files[0]; j++)
            for (size_t k = 0; k < sizeof offsets / sizeof offsets[0]; k++, id++) {
                msgpack_sbuffer sb;
                uint64_t req_id = id % 2 ? UINT64_MAX - id : id;
                set_fetch(&g_in, proto_str(names[i]), files[j], offsets[k]);
                g_in.u.backup_fetch.req_id = req_id;
                assert_int_equal(encode(&g_in, &sb), 0);
                memset(&g_out, 0xaa, sizeof g_out);
                assert_int_equal(decode_exact(sb.data, sb.size, &g_out, 0, NULL), 0);
                assert_int_equal(g_out.version, PROTO_VERSION);
                assert_int_equal(g_out.type, PROTO_BACKUP_FETCH);
                assert_true(g_out.u.backup_fetch.req_id == req_id);
                assert_true(proto_req_id(&g_out) == req_id);
                assert_true(view_is(g_out.u.backup_fetch.name, names[i]));
                assert_int_equal(g_out.u.backup_fetch.file, files[j]);
                assert_true(g_out.u.backup_fetch.offset == offsets[k]);
                msgpack_sbuffer_destroy(&sb);
            }
}

static void test_backup_chunk_roundtrip(void **state)
{
    (void)state;
    static const struct {
        uint32_t files, file;
        const char *file_name;
        uint64_t size, offset;
        uint32_t len; /* of data */
    } rows[] = {
        {1, 0, "history.db", 0, 0, 0},                        /* an empty file */
        {4, 3, "journal.0001", 12, 12, 0},                    /* offset == size */
        {2, 1, "a", PROTO_CHUNK_MAX, 0, PROTO_CHUNK_MAX},     /* exactly a chunk */
        {2, 1, "a", PROTO_CHUNK_MAX, PROTO_CHUNK_MAX, 0},     /* its end */
        {2, 0, "b", PROTO_CHUNK_MAX + 1, 0, PROTO_CHUNK_MAX}, /* more than a chunk left */
        {2, 0, "b", PROTO_CHUNK_MAX + 1, PROTO_CHUNK_MAX, 1}, /* the short last piece */
        {2, 0, "b", 262156, PROTO_CHUNK_MAX, 12},             /* another */
        {2, 0, "b", 3 * PROTO_CHUNK_MAX, 2 * PROTO_CHUNK_MAX - 1, PROTO_CHUNK_MAX},
        {1, 0, "c", 12, 5, 7},
        {UINT32_MAX, UINT32_MAX - 1, "checkpoint-1.ckpt", UINT64_MAX, 0, PROTO_CHUNK_MAX},
        {UINT32_MAX, 0, "X", UINT64_MAX, UINT64_MAX - PROTO_CHUNK_MAX, PROTO_CHUNK_MAX},
        {UINT32_MAX, 0, "X", UINT64_MAX, UINT64_MAX - 5, 5},
        {7, 6, "Z_9-x.y", UINT64_MAX, UINT64_MAX, 0},
        {3, 2, "a..b", 300, 45, 255}, /* bin8 */
        {3, 2, "a.", 256, 0, 256},    /* bin16 */
        {3, 2, "_", 65535, 0, 65535}, /* bin16 */
        {3, 2, "-", 65536, 0, 65536}, /* bin32 */
        {3, 2, A64, 31, 0, 31},       /* the longest name */
        {3, 2, "0123456789", UINT32_MAX, 4, PROTO_CHUNK_MAX},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        msgpack_sbuffer sb;
        proto_str_t data = {rows[i].len ? g_data + i : NULL, rows[i].len};
        set_chunk(&g_in, rows[i].files, rows[i].file, proto_str(rows[i].file_name), rows[i].size,
                  rows[i].offset, data);
        g_in.u.backup_chunk.req_id = UINT64_MAX - i;
        int rc = encode(&g_in, &sb);
        if (rc != 0)
            print_message("row %zu: %s\n", i, tally_errname(rc));
        assert_int_equal(rc, 0);
        memset(&g_out, 0xaa, sizeof g_out);
        assert_int_equal(decode_exact(sb.data, sb.size, &g_out, 0, NULL), 0);
        assert_int_equal(g_out.version, PROTO_VERSION);
        assert_int_equal(g_out.type, PROTO_BACKUP_CHUNK);
        assert_true(g_out.u.backup_chunk.req_id == UINT64_MAX - i);
        assert_true(proto_req_id(&g_out) == UINT64_MAX - i);
        assert_int_equal(g_out.u.backup_chunk.files, rows[i].files);
        assert_int_equal(g_out.u.backup_chunk.file, rows[i].file);
        assert_true(view_is(g_out.u.backup_chunk.file_name, rows[i].file_name));
        assert_true(g_out.u.backup_chunk.size == rows[i].size);
        assert_true(g_out.u.backup_chunk.offset == rows[i].offset);
        assert_int_equal(g_out.u.backup_chunk.data.len, rows[i].len);
        if (rows[i].len > 0)
            assert_memory_equal(g_out.u.backup_chunk.data.ptr, data.ptr, rows[i].len);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* PROTOCOL.md 8.27's example, both ways. */
static void test_backup_fetch_chunk_example(void **state)
{
    (void)state;
    static const char fetch[] = "\x96\x01\x1e\x08\xb7" NAME "\x00\xce\x00\x04\x00\x00";
    static const char chunk[] = "\x99\x01\x1f\x08\x04\x00\xaa"
                                "history.db"
                                "\xce\x00\x04\x00\x0c\xce\x00\x04\x00\x00\xc4\x0c"
                                "\0\0\0\0\0\0\0\0\0\0\0\0";
    static const char zeros[12];
    msgpack_sbuffer sb;

    set_fetch(&g_in, proto_str(NAME), 0, 262144);
    assert_int_equal(encode(&g_in, &sb), 0);
    assert_int_equal(sb.size, 34);
    assert_int_equal(sizeof fetch - 1, 34);
    assert_memory_equal(sb.data, fetch, 34);
    msgpack_sbuffer_destroy(&sb);

    set_chunk(&g_in, 4, 0, proto_str("history.db"), 262156, 262144,
              (proto_str_t){zeros, sizeof zeros});
    assert_int_equal(encode(&g_in, &sb), 0);
    assert_int_equal(sb.size, 41);
    assert_int_equal(sizeof chunk - 1, 41);
    assert_memory_equal(sb.data, chunk, 41);
    msgpack_sbuffer_destroy(&sb);

    assert_int_equal(decode_exact(fetch, sizeof fetch - 1, &g_out, 0, NULL), 0);
    assert_int_equal(g_out.type, PROTO_BACKUP_FETCH);
    assert_true(g_out.u.backup_fetch.req_id == 8);
    assert_true(view_is(g_out.u.backup_fetch.name, NAME));
    assert_int_equal(g_out.u.backup_fetch.file, 0);
    assert_true(g_out.u.backup_fetch.offset == 262144);

    assert_int_equal(decode_exact(chunk, sizeof chunk - 1, &g_out, 0, NULL), 0);
    assert_int_equal(g_out.type, PROTO_BACKUP_CHUNK);
    assert_true(g_out.u.backup_chunk.req_id == 8);
    assert_int_equal(g_out.u.backup_chunk.files, 4);
    assert_int_equal(g_out.u.backup_chunk.file, 0);
    assert_true(view_is(g_out.u.backup_chunk.file_name, "history.db"));
    assert_true(g_out.u.backup_chunk.size == 262156 && g_out.u.backup_chunk.offset == 262144);
    assert_int_equal(g_out.u.backup_chunk.data.len, 12);
    assert_memory_equal(g_out.u.backup_chunk.data.ptr, zeros, 12);
}

/* The two rules, called directly; len is honoured, not a NUL. */
static void test_backup_name_rules(void **state)
{
    (void)state;
    static const char *const names_ok[] = {NAME,
                                           NAME "-0",
                                           NAME "-1",
                                           NAME "-12",
                                           NAME "-123",
                                           NAME "-999",
                                           "backup-00000000T000000Z"};
    static const proto_str_t names_bad[] = {
        {"", 0},
        {"backup-", 7},
        {"backup-2023113T160000Z", 22},
        {"backup-20231130T160000", 22},
        {NAME "-", 24},
        {NAME "-1234", 28},
        {NAME "-a", 25},
        {NAME "-1a", 26},
        {NAME "--1", 26},
        {NAME "-1-", 26},
        {NAME "1", 24},
        {NAME "-+1", 26},
        {"../" NAME, 26},
        {"/" NAME, 24},
        {NAME "/", 24},
        {"backup-20231130X160000Z", 23},
        {"backup-20231130t160000Z", 23},
        {"backup-20231130T160000z", 23},
        {"Backup-20231130T160000Z", 23},
        {"backup_20231130T160000Z", 23},
        {"backup-2023113a0T16000Z", 23},
        {"backup-20231130T16000aZ", 23},
        {"backup-20231130T160000Z\0", 24},
        {NAME "-1\0", 26},
        {"backup-20231130T160000\xff", 23},
        {" " NAME, 24},
        {A64, 64},
        {A64 "a", 65},
    };
    for (size_t i = 0; i < sizeof names_ok / sizeof names_ok[0]; i++)
        assert_true(proto_backup_name_valid(names_ok[i], strlen(names_ok[i])));
    for (size_t i = 0; i < sizeof names_bad / sizeof names_bad[0]; i++) {
        if (proto_backup_name_valid(names_bad[i].ptr, names_bad[i].len))
            print_message("name %zu is taken\n", i);
        assert_false(proto_backup_name_valid(names_bad[i].ptr, names_bad[i].len));
    }
    /* The length given is what counts. */
    assert_true(proto_backup_name_valid(NAME "-1234", 23));
    assert_true(proto_backup_name_valid(NAME "-1234", 27));
    assert_false(proto_backup_name_valid(NAME "-1234", 24));
    assert_false(proto_backup_name_valid(NAME, 22));

    static const char *const files_ok[] = {"a",    "A",          "0",     "_",          "-", "a.",
                                           "a..b", "history.db", "x-1_Y", "journal.01", A64};
    static const proto_str_t files_bad[] = {
        {"", 0},      {".", 1},     {"..", 2},       {".hidden", 7},     {"a/b", 3},
        {"/a", 2},    {"a/", 2},    {"x y", 3},      {"a\\b", 3},        {"a\0b", 3},
        {"a\tb", 3},  {"a\n", 2},   {"\xc3\xa9", 2}, {"caf\xc3\xa9", 5}, {"a\x7f", 2},
        {"a\xff", 2}, {"a:b", 3},   {"a*", 2},       {"~a", 2},          {A64 "a", 65},
        {"a+b", 3},   {"a%2fb", 5}, {"a@b", 3},      {"\x80", 1},        {"./a", 3},
    };
    for (size_t i = 0; i < sizeof files_ok / sizeof files_ok[0]; i++)
        assert_true(proto_backup_file_name_valid(files_ok[i], strlen(files_ok[i])));
    for (size_t i = 0; i < sizeof files_bad / sizeof files_bad[0]; i++) {
        if (proto_backup_file_name_valid(files_bad[i].ptr, files_bad[i].len))
            print_message("file name %zu is taken\n", i);
        assert_false(proto_backup_file_name_valid(files_bad[i].ptr, files_bad[i].len));
    }
    assert_true(proto_backup_file_name_valid("ab/c", 2));
    assert_true(proto_backup_file_name_valid(A64 "a", 64));
    /* Every byte outside the allowed set, alone and after a good byte. */
    for (int c = 0; c < 256; c++) {
        char two[2] = {'a', (char)c};
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        assert_int_equal(proto_backup_file_name_valid(two, 2), ok);
        assert_int_equal(proto_backup_file_name_valid(two + 1, 1), ok && c != '.');
    }
}

static void test_backup_fetch_decoder_refuses(void **state)
{
    (void)state;
#define ROW(b, c, f, t, id)                                                                        \
    {                                                                                              \
        b, sizeof(b) - 1, c, f, t, id                                                              \
    }
#define F(rest)               "\x96\x01\x1e\x09" rest /* [1, 30, 9, ...] */
#define FN(rest)              F("\xb7" NAME rest)     /* ... name, ... */
#define BADN(hdr, name, code) ROW(F(hdr name "\x00\x00"), code, "name", PROTO_BACKUP_FETCH, 9)
    static const refusal_t rows[] = {
        /* req_id */
        ROW("\x96\x01\x1e\xff\xb7" NAME "\x00\x00", TALLY_ERANGE, "req_id", PROTO_BACKUP_FETCH, 0),
        ROW("\x96\x01\x1e\xa1x\xb7" NAME "\x00\x00", TALLY_EBADTYPE, "req_id", PROTO_BACKUP_FETCH,
            0),
        /* name: not a backup's */
        BADN("\xb6", "backup-2023113T160000Z", TALLY_EBADNAME),
        BADN("\xb6", "backup-20231130T160000", TALLY_EBADNAME),
        BADN("\xb8", NAME "-", TALLY_EBADNAME),
        BADN("\xbc", NAME "-1234", TALLY_EBADNAME),
        BADN("\xb9", NAME "-a", TALLY_EBADNAME),
        BADN("\xba", "../" NAME, TALLY_EBADNAME),
        BADN("\xb8", "/" NAME, TALLY_EBADNAME),
        BADN("\xb7", "backup-20231130X160000Z", TALLY_EBADNAME),
        BADN("\xb7", "backup-20231130T160000z", TALLY_EBADNAME),
        BADN("\xb8", NAME " ", TALLY_EBADNAME),
        BADN("\xb8", NAME "\0", TALLY_EBADNAME),
        BADN("\xa1", "x", TALLY_EBADNAME),
        BADN("\xd9\x40", A64, TALLY_EBADNAME), /* as long as a name may be, not one */
        /* name: the length, the bytes, the type */
        BADN("\xd9\x41", A64 "a", TALLY_ETOOLONG),
        BADN("\xda\x00\x41", A64 "a", TALLY_ETOOLONG),
        BADN("\xa0", "", TALLY_EBADNAME), /* empty: not a backup's name */
        BADN("\xb7", "backup-20231130T160000\xff", TALLY_EUTF8),
        BADN("\xb7", "backup-20231130T16000\xc3\xa9", TALLY_EBADNAME),  /* UTF-8, not a digit */
        BADN("\xb8", "backup-20231130T16000\xed\xa0\x80", TALLY_EUTF8), /* a surrogate */
        BADN("\xb8", "backup-20231130T160000\xc0\xaf", TALLY_EUTF8),    /* an overlong */
        BADN("\xc4\x17", NAME, TALLY_EBADTYPE),                         /* bin, not str */
        ROW(F("\xc0\x00\x00"), TALLY_EBADTYPE, "name", PROTO_BACKUP_FETCH, 9),
        ROW(F("\x00\x00\x00"), TALLY_EBADTYPE, "name", PROTO_BACKUP_FETCH, 9),
        ROW(F("\x91\xb7" NAME "\x00\x00"), TALLY_EBADTYPE, "name", PROTO_BACKUP_FETCH, 9),
        ROW(F("\xd9\x30" NAME "\x00\x00"), TALLY_EMALFORMED, "name", PROTO_BACKUP_FETCH, 9),
        /* file */
        ROW(FN("\xff\x00"), TALLY_ERANGE, "file", PROTO_BACKUP_FETCH, 9),
        ROW(FN("\xd3\x80\x00\x00\x00\x00\x00\x00\x00\x00"), TALLY_ERANGE, "file",
            PROTO_BACKUP_FETCH, 9),
        ROW(FN("\xcf\x00\x00\x00\x01\x00\x00\x00\x00\x00"), TALLY_ERANGE, "file",
            PROTO_BACKUP_FETCH, 9),
        ROW(FN("\xa1"
               "0"
               "\x00"),
            TALLY_EBADTYPE, "file", PROTO_BACKUP_FETCH, 9),
        ROW(FN("\xca\x00\x00\x00\x00\x00"), TALLY_EBADTYPE, "file", PROTO_BACKUP_FETCH, 9),
        ROW(FN("\xc0\x00"), TALLY_EBADTYPE, "file", PROTO_BACKUP_FETCH, 9),
        /* offset */
        ROW(FN("\x00\xff"), TALLY_ERANGE, "offset", PROTO_BACKUP_FETCH, 9),
        ROW(FN("\x00\xd3\xff\xff\xff\xff\xff\xff\xff\xff"), TALLY_ERANGE, "offset",
            PROTO_BACKUP_FETCH, 9),
        ROW(FN("\x00\xc3"), TALLY_EBADTYPE, "offset", PROTO_BACKUP_FETCH, 9),
        ROW(FN("\x00\xc4\x01\x00"), TALLY_EBADTYPE, "offset", PROTO_BACKUP_FETCH, 9),
        ROW(FN("\x00\xcf\x00"), TALLY_EMALFORMED, "offset", PROTO_BACKUP_FETCH, 9),
        /* the shape */
        ROW(FN("\x00\x00\x00"), TALLY_ETRAILING, "body", PROTO_BACKUP_FETCH, 9),
        ROW("\x95\x01\x1e\x09\xb7" NAME "\x00", TALLY_EMALFORMED, "BACKUP_FETCH",
            PROTO_BACKUP_FETCH, 0),
        ROW("\x97\x01\x1e\x09\xb7" NAME "\x00\x00\x00", TALLY_EMALFORMED, "BACKUP_FETCH",
            PROTO_BACKUP_FETCH, 0),
        ROW("\x96\x01\x1e\x09\xb7" NAME "\x00", TALLY_EMALFORMED, "offset", PROTO_BACKUP_FETCH, 9),
        ROW("\x96\x01\x22\x09\xb7" NAME "\x00\x00", TALLY_ETYPE, "type", 0, 0),
    };
#undef BADN
#undef FN
#undef F
#undef ROW
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_refusal(i, &rows[i], &g_out);

    /* The good body the rows spoil is good. */
    static const char good[] = "\x96\x01\x1e\x09\xb7" NAME "\x00\x00";
    assert_int_equal(decode_exact(good, sizeof good - 1, &g_out, 0, NULL), 0);
    assert_true(view_is(g_out.u.backup_fetch.name, NAME));
}

static void test_backup_chunk_decoder_refuses(void **state)
{
    (void)state;
#define ROW(b, c, f, t, id)                                                                        \
    {                                                                                              \
        b, sizeof(b) - 1, c, f, t, id                                                              \
    }
#define C(rest)   "\x99\x01\x1f\x09" rest /* [1, 31, 9, ...] */
#define CF(rest)  C("\x04\x00" rest)      /* ... files 4, file 0, ... */
#define CFN(rest) CF("\xa4h.db" rest)     /* ... file_name "h.db", ... */
#define BADF(hdr, name, code)                                                                      \
    ROW(CF(hdr name "\x03\x00\xc4\x03xyz"), code, "file_name", PROTO_BACKUP_CHUNK, 9)
#define BAD(rest, code, field) ROW(rest, code, field, PROTO_BACKUP_CHUNK, 9)
    static const refusal_t rows[] = {
        /* req_id */
        ROW("\x99\x01\x1f\xd0\xff\x04\x00\xa4h.db\x03\x00\xc4\x03xyz", TALLY_ERANGE, "req_id",
            PROTO_BACKUP_CHUNK, 0),
        /* files */
        BAD(C("\x00\x00\xa4h.db\x03\x00\xc4\x03xyz"), TALLY_ERANGE, "files"),
        BAD(C("\xff\x00\xa4h.db\x03\x00\xc4\x03xyz"), TALLY_ERANGE, "files"),
        BAD(C("\xcf\x00\x00\x00\x01\x00\x00\x00\x00\x00\xa4h.db\x03\x00\xc4\x03xyz"), TALLY_ERANGE,
            "files"),
        BAD(C("\xa1"
              "4"
              "\x00\xa4h.db\x03\x00\xc4\x03xyz"),
            TALLY_EBADTYPE, "files"),
        BAD(C("\xc2\x00\xa4h.db\x03\x00\xc4\x03xyz"), TALLY_EBADTYPE, "files"),
        /* file */
        BAD(C("\x04\x04\xa4h.db\x03\x00\xc4\x03xyz"), TALLY_ERANGE, "file"), /* == files */
        BAD(C("\x04\x05\xa4h.db\x03\x00\xc4\x03xyz"), TALLY_ERANGE, "file"),
        BAD(C("\x01\x01\xa4h.db\x03\x00\xc4\x03xyz"), TALLY_ERANGE, "file"),
        BAD(C("\xce\xff\xff\xff\xff\xce\xff\xff\xff\xff\xa4h.db\x03\x00\xc4\x03xyz"), TALLY_ERANGE,
            "file"),
        BAD(C("\x04\xff\xa4h.db\x03\x00\xc4\x03xyz"), TALLY_ERANGE, "file"),
        BAD(C("\x04\xc0\xa4h.db\x03\x00\xc4\x03xyz"), TALLY_EBADTYPE, "file"),
        /* file_name */
        BADF("\xa7", ".hidden", TALLY_EBADNAME),
        BADF("\xa1", ".", TALLY_EBADNAME),
        BADF("\xa2", "..", TALLY_EBADNAME),
        BADF("\xa3", "a/b", TALLY_EBADNAME),
        BADF("\xa5", "../.x", TALLY_EBADNAME),
        BADF("\xa3", "x y", TALLY_EBADNAME),
        BADF("\xa3", "a\\b", TALLY_EBADNAME),
        BADF("\xa3", "a\0b", TALLY_EBADNAME),
        BADF("\xa2", "\xc3\xa9", TALLY_EBADNAME), /* "é": UTF-8, not ASCII */
        BADF("\xa2", "a\x7f", TALLY_EBADNAME),
        BADF("\xa0", "", TALLY_EBADNAME), /* empty: no file name */
        BADF("\xd9\x41", A64 "a", TALLY_ETOOLONG),
        BADF("\xa2", "a\xff", TALLY_EUTF8),
        BADF("\xc4\x04", "h.db", TALLY_EBADTYPE), /* bin, not str */
        BAD(CF("\x00\x03\x00\xc4\x03xyz"), TALLY_EBADTYPE, "file_name"),
        BAD(CF("\xa9h.db"), TALLY_EMALFORMED, "file_name"),
        /* size */
        BAD(CFN("\xff\x00\xc4\x00"), TALLY_ERANGE, "size"),
        BAD(CFN("\xd3\x80\x00\x00\x00\x00\x00\x00\x00\x00\xc4\x00"), TALLY_ERANGE, "size"),
        BAD(CFN("\xc0\x00\xc4\x00"), TALLY_EBADTYPE, "size"),
        BAD(CFN("\xcb\x40\x08\x00\x00\x00\x00\x00\x00\x00\xc4\x03xyz"), TALLY_EBADTYPE, "size"),
        /* offset */
        BAD(CFN("\x03\x04\xc4\x00"), TALLY_ERANGE, "offset"), /* > size */
        BAD(CFN("\x00\x01\xc4\x00"), TALLY_ERANGE, "offset"),
        BAD(CFN("\xce\x00\x04\x00\x0c\xce\x00\x04\x00\x0d\xc4\x00"), TALLY_ERANGE, "offset"),
        BAD(CFN("\xcf\xff\xff\xff\xff\xff\xff\xff\xfe\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xc4\x00"),
            TALLY_ERANGE, "offset"),
        BAD(CFN("\x03\xff\xc4\x03xyz"), TALLY_ERANGE, "offset"),
        BAD(CFN("\x03\xa1"
                "0"
                "\xc4\x03xyz"),
            TALLY_EBADTYPE, "offset"),
        /* data */
        BAD(CFN("\x03\x00\xc4\x02xy"), TALLY_ERANGE, "data"),         /* one byte short */
        BAD(CFN("\x03\x00\xc4\x04wxyz"), TALLY_ERANGE, "data"),       /* one byte long */
        BAD(CFN("\x03\x00\xc4\x00"), TALLY_ERANGE, "data"),           /* nothing */
        BAD(CFN("\x03\x01\xc4\x03xyz"), TALLY_ERANGE, "data"),        /* from the offset */
        BAD(CFN("\x03\x03\xc4\x01z"), TALLY_ERANGE, "data"),          /* offset == size */
        BAD(CFN("\x00\x00\xc4\x01z"), TALLY_ERANGE, "data"),          /* an empty file */
        BAD(CFN("\x03\x00\xa3xyz"), TALLY_EBADTYPE, "data"),          /* str, not bin */
        BAD(CFN("\x00\x00\xa0"), TALLY_EBADTYPE, "data"),             /* even empty */
        BAD(CFN("\x00\x00\xc0"), TALLY_EBADTYPE, "data"),             /* nil */
        BAD(CFN("\x03\x00\x93\x01\x02\x03"), TALLY_EBADTYPE, "data"), /* an array */
        BAD(CFN("\x03\x00\xc4\x05xyz"), TALLY_EMALFORMED, "data"),    /* truncated */
        BAD(CFN("\x03\x00\xc6\x00\x00\x00"), TALLY_EMALFORMED, "data"),
        BAD(CFN("\x03\x00"), TALLY_EMALFORMED, "data"),
        /* the shape */
        BAD(CFN("\x03\x00\xc4\x03xyz\xc0"), TALLY_ETRAILING, "body"),
        ROW("\x98\x01\x1f\x09\x04\x00\xa4h.db\x03\x00", TALLY_EMALFORMED, "BACKUP_CHUNK",
            PROTO_BACKUP_CHUNK, 0),
        ROW("\x9a\x01\x1f\x09\x04\x00\xa4h.db\x03\x00\xc4\x03xyz\x00", TALLY_EMALFORMED,
            "BACKUP_CHUNK", PROTO_BACKUP_CHUNK, 0),
        ROW("\xdc\x00\x09\x01\x1f\x09\x04\x00\xa4h.db\x03\x00", TALLY_EMALFORMED, "data",
            PROTO_BACKUP_CHUNK, 9),
    };
#undef BAD
#undef BADF
#undef CFN
#undef CF
#undef C
#undef ROW
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_refusal(i, &rows[i], &g_out);

    /* The good body the rows spoil is good, in wide formats too. */
    static const char good[] = "\x99\x01\x1f\x09\x04\x00\xa4h.db\x03\x00\xc4\x03xyz";
    static const char wide[] = "\xdc\x00\x09\x01\x1f\xcf\x00\x00\x00\x00\x00\x00\x00\x09"
                               "\xd2\x00\x00\x00\x04\xd0\x00\xd9\x04h.db\xcd\x00\x03"
                               "\xcc\x00\xc6\x00\x00\x00\x03xyz";
    assert_int_equal(decode_exact(good, sizeof good - 1, &g_out, 0, NULL), 0);
    assert_true(view_is(g_out.u.backup_chunk.file_name, "h.db"));
    assert_true(view_is(g_out.u.backup_chunk.data, "xyz"));
    assert_int_equal(decode_exact(wide, sizeof wide - 1, &g_out, 0, NULL), 0);
    assert_true(proto_req_id(&g_out) == 9 && g_out.u.backup_chunk.files == 4);
    assert_true(view_is(g_out.u.backup_chunk.data, "xyz"));
}

/* data around a whole chunk, and around a short last piece, with the
 * sentence that tells how many bytes were due. */
static void test_backup_chunk_data_length(void **state)
{
    (void)state;
    static uint8_t buf[64 + PROTO_CHUNK_MAX + 1];
    static const struct {
        uint64_t size, offset;
        uint32_t want;
    } cases[] = {
        {2 * PROTO_CHUNK_MAX, 0, PROTO_CHUNK_MAX},
        {UINT64_MAX, 0, PROTO_CHUNK_MAX},
        {UINT64_MAX, UINT64_MAX - PROTO_CHUNK_MAX, PROTO_CHUNK_MAX},
        {PROTO_CHUNK_MAX + 10, PROTO_CHUNK_MAX, 10},
        {PROTO_CHUNK_MAX, PROTO_CHUNK_MAX - 1, 1},
        {UINT64_MAX, UINT64_MAX - 1, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (uint32_t len = cases[c].want ? cases[c].want - 1 : 0; len <= cases[c].want + 1;
             len++) {
            size_t n = 0;
            memcpy(buf, "\x99\x01\x1f\x09\x02\x01\xa1x\xcf", 9); /* [1, 31, 9, 2, 1, "x", */
            n = 9;
            for (int b = 7; b >= 0; b--)
                buf[n++] = (uint8_t)(cases[c].size >> (8 * b));
            buf[n++] = 0xcf;
            for (int b = 7; b >= 0; b--)
                buf[n++] = (uint8_t)(cases[c].offset >> (8 * b));
            buf[n++] = 0xc6; /* bin32 */
            for (int b = 3; b >= 0; b--)
                buf[n++] = (uint8_t)(len >> (8 * b));
            memcpy(buf + n, g_data, len);
            n += len;
            if (len == cases[c].want) {
                assert_int_equal(decode_exact(buf, n, &g_out, 0, NULL), 0);
                assert_int_equal(g_out.u.backup_chunk.data.len, len);
                assert_true(g_out.u.backup_chunk.size == cases[c].size);
                assert_true(g_out.u.backup_chunk.offset == cases[c].offset);
                assert_memory_equal(g_out.u.backup_chunk.data.ptr, g_data, len);
                continue;
            }
            check_refusal(
                c, &(refusal_t){(const char *)buf, n, TALLY_ERANGE, "data", PROTO_BACKUP_CHUNK, 9},
                &g_out);
            proto_error_t err;
            char want[64];
            assert_int_equal(decode_exact(buf, n, &g_out, 0, &err), TALLY_ERANGE);
            snprintf(want, sizeof want, "bin of %" PRIu32 " bytes, must be %" PRIu32 " ", len,
                     cases[c].want);
            assert_non_null(strstr(err.message, want));
        }
    }
}

static void test_backup_fetch_encoder_refuses(void **state)
{
    (void)state;
    static const proto_str_t bad[] = {
        {"", 0},
        {NULL, 0},
        {NULL, 23},
        {"backup-2023113T160000Z", 22},
        {"backup-20231130T160000", 22},
        {NAME "-", 24},
        {NAME "-1234", 28},
        {NAME "-a", 25},
        {"../" NAME, 26},
        {"backup-20231130X160000Z", 23},
        {"backup-20231130T160000z", 23},
        {"backup-20231130T160000\xff", 23},
        {A64, 64},
        {A64 "a", 65},
    };
    msgpack_sbuffer sb;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_fetch(&g_in, bad[i], 0, 0);
        assert_int_equal(encode(&g_in, &sb), TALLY_EINVAL);
        msgpack_sbuffer_destroy(&sb);
    }
    set_fetch(&g_in, proto_str(NAME "-123"), UINT32_MAX, UINT64_MAX); /* the rest is good */
    assert_int_equal(encode(&g_in, &sb), 0);
    msgpack_sbuffer_destroy(&sb);
}

static void test_backup_chunk_encoder_refuses(void **state)
{
    (void)state;
    static const proto_str_t bad_names[] = {
        {"", 0},    {NULL, 0},     {NULL, 4},       {".hidden", 7}, {"a/b", 3},  {"..", 2},
        {"x y", 3}, {A64 "a", 65}, {"\xc3\xa9", 2}, {"a\xff", 2},   {"a\0b", 3}, {".", 1},
    };
    static const struct {
        uint32_t files, file;
        uint64_t size, offset;
        proto_str_t data;
    } bad[] = {
        {0, 0, 3, 0, {"xyz", 3}},                             /* files 0 */
        {4, 4, 3, 0, {"xyz", 3}},                             /* file == files */
        {1, UINT32_MAX, 3, 0, {"xyz", 3}},                    /* file > files */
        {4, 0, 3, 4, {"", 0}},                                /* offset > size */
        {4, 0, 0, UINT64_MAX, {"", 0}},                       /* by far */
        {4, 0, 3, 0, {"xy", 2}},                              /* one byte short */
        {4, 0, 3, 0, {"wxyz", 4}},                            /* one byte long */
        {4, 0, 3, 3, {"z", 1}},                               /* offset == size */
        {4, 0, 3, 0, {NULL, 3}},                              /* no bytes */
        {4, 0, UINT64_MAX, 0, {g_data, PROTO_CHUNK_MAX - 1}}, /* one byte short */
        {4, 0, UINT64_MAX, 0, {g_data, PROTO_CHUNK_MAX + 1}}, /* one byte long */
        {4, 0, PROTO_CHUNK_MAX + 1, 1, {g_data, PROTO_CHUNK_MAX - 1}},
    };
    msgpack_sbuffer sb;
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        set_chunk(&g_in, 4, 0, bad_names[i], 3, 0, proto_str("xyz"));
        assert_int_equal(encode(&g_in, &sb), TALLY_EINVAL);
        msgpack_sbuffer_destroy(&sb);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_chunk(&g_in, bad[i].files, bad[i].file, proto_str("h.db"), bad[i].size, bad[i].offset,
                  bad[i].data);
        if (encode(&g_in, &sb) != TALLY_EINVAL)
            print_message("row %zu is encoded\n", i);
        assert_int_equal(encode(&g_in, &sb), TALLY_EINVAL);
        msgpack_sbuffer_destroy(&sb);
    }
    /* The rest of those messages is good: an empty file, {NULL, 0}. */
    set_chunk(&g_in, 4, 3, proto_str("h.db"), 0, 0, (proto_str_t){NULL, 0});
    assert_int_equal(encode(&g_in, &sb), 0);
    assert_int_equal(decode_exact(sb.data, sb.size, &g_out, 0, NULL), 0);
    assert_int_equal(g_out.u.backup_chunk.data.len, 0);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_req_roundtrip),
        cmocka_unit_test(test_backup_roundtrip),
        cmocka_unit_test(test_backup_example),
        cmocka_unit_test(test_backup_decoder_refuses),
        cmocka_unit_test(test_backup_path_length),
        cmocka_unit_test(test_backup_encoder_refuses),
        cmocka_unit_test(test_backup_fetch_roundtrip),
        cmocka_unit_test(test_backup_chunk_roundtrip),
        cmocka_unit_test(test_backup_fetch_chunk_example),
        cmocka_unit_test(test_backup_name_rules),
        cmocka_unit_test(test_backup_fetch_decoder_refuses),
        cmocka_unit_test(test_backup_chunk_decoder_refuses),
        cmocka_unit_test(test_backup_chunk_data_length),
        cmocka_unit_test(test_backup_fetch_encoder_refuses),
        cmocka_unit_test(test_backup_chunk_encoder_refuses),
    };
    return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
