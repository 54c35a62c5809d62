/* test_proto_decode.c - unit tests of the wire codec's decoder (proto/):
 * hand-written and generated inputs, rejections, error reports and partial
 * results.  Round trips and the encoder are tested in test_proto.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "proto_test_util.h"

static proto_msg_t g_out; /* large (STATS holds 256 entries): keep off the stack */

/* ---- hand-written inputs ------------------------------------------------ */

/* Pieces of a valid SUBMIT; a hex escape is always closed by ending the
 * literal, so "\xa3" "abc" is not read as one escape. */
#define CID                                                                                        \
    "\xc4\x10"                                                                                     \
    "0123456789abcdef"
#define SEQ "\x05"
#define TOWN                                                                                       \
    "\xa7"                                                                                         \
    "gaoguan"
#define TIME "\xcf\x00\x00\x01\x8b\xcf\xe5\x68\x00"
#define SAMP                                                                                       \
    "\x91\x92\xa3"                                                                                 \
    "abc"                                                                                          \
    "\x01"
#define SUB(cid, seq, town, time, samples) "\x97\x01\x01" cid seq town time samples
#define TALLY(kind, values)                "\x96\xa1m\xa0" kind "\x01\x01" values
#define UPD(tally)                         "\x94\x01\x06\x07" tally

typedef struct row {
    const char *desc;
    const char *bytes;
    size_t len;
    int code;
    const char *field;
    int sample;
} row_t;

#define ROW(desc, lit, code, field)                                                                \
    {                                                                                              \
        desc, lit, sizeof(lit) - 1, code, field, -1                                                \
    }
#define ROWS(desc, lit, code, field, s)                                                            \
    {                                                                                              \
        desc, lit, sizeof(lit) - 1, code, field, s                                                 \
    }

static const row_t rows[] = {
    /* shape */
    ROW("empty input", "", TALLY_EMALFORMED, "body"),
    ROW("top-level map", "\x82\x01\x01\x02\x02", TALLY_EMALFORMED, "body"),
    ROW("top-level nil", "\xc0", TALLY_EMALFORMED, "body"),
    ROW("top-level 0xc1", "\xc1", TALLY_EMALFORMED, "body"),
    ROW("top-level array of 1", "\x91\x01", TALLY_EMALFORMED, "body"),
    ROW("array32 of 2^32-1 elements", "\xdd\xff\xff\xff\xff\x01\x01", TALLY_EMALFORMED, "body"),
    ROW("array32 declares 3, 2 bytes follow", "\xdd\x00\x00\x00\x03\x01\x0a", TALLY_EMALFORMED,
        "body"),
    ROW("array16 header cut", "\xdc\x00", TALLY_EMALFORMED, "body"),
    ROW("version 2", "\x93\x02\x0a\x00", TALLY_EVERSION, "version"),
    ROW("version 2 beats unknown type", "\x93\x02\x63\x00", TALLY_EVERSION, "version"),
    ROW("version -1", "\x93\xff\x0a\x00", TALLY_EVERSION, "version"),
    ROW("version uint64 max", "\x93\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x0a\x00", TALLY_EVERSION,
        "version"),
    ROW("version as string",
        "\x93\xa1"
        "1"
        "\x0a\x00",
        TALLY_EBADTYPE, "version"),
    ROW("unknown type 99", "\x93\x01\x63\x00", TALLY_ETYPE, "type"),
    ROW("type 0", "\x93\x01\x00\x00", TALLY_ETYPE, "type"),
    ROW("type 64", "\x93\x01\x40\x00", TALLY_ETYPE, "type"),
    ROW("type -3", "\x93\x01\xfd\x00", TALLY_ETYPE, "type"),
    ROW("type as nil", "\x93\x01\xc0\x00", TALLY_EBADTYPE, "type"),
    ROW("SUBMIT of 6 elements", "\x96\x01\x01" CID SEQ TOWN TIME, TALLY_EMALFORMED, "SUBMIT"),
    ROW("STATS_REQ of 4 elements", "\x94\x01\x0a\x01\x02", TALLY_EMALFORMED, "STATS_REQ"),
    ROW("trailing nil", "\x93\x01\x0a\x01\xc0", TALLY_ETRAILING, "body"),
    ROW("trailing after SUBMIT", SUB(CID, SEQ, TOWN, TIME, SAMP) "\x00", TALLY_ETRAILING, "body"),
    ROW("nested arrays at top", "\x91\x91\x91\x91\x91\x91\x91\x90", TALLY_EMALFORMED, "body"),
    /* SUBMIT fields */
    ROW("client_id of 15 bytes",
        SUB("\xc4\x0f"
            "0123456789abcde",
            SEQ, TOWN, TIME, SAMP),
        TALLY_ERANGE, "client_id"),
    ROW("client_id of 17 bytes",
        SUB("\xc4\x11"
            "0123456789abcdefg",
            SEQ, TOWN, TIME, SAMP),
        TALLY_ERANGE, "client_id"),
    ROW("client_id as str",
        SUB("\xb0"
            "0123456789abcdef",
            SEQ, TOWN, TIME, SAMP),
        TALLY_EBADTYPE, "client_id"),
    ROW("client_id bin32 of 4 GB",
        SUB("\xc6\xff\xff\xff\xff"
            "0123456789abcdef",
            SEQ, TOWN, TIME, SAMP),
        TALLY_EMALFORMED, "client_id"),
    ROW("client_id nested arrays",
        SUB("\x91\x91\x91\x91\x91\x91\x91\x91\x91\x90", SEQ, TOWN, TIME, SAMP), TALLY_EBADTYPE,
        "client_id"),
    ROW("seq 0", SUB(CID, "\x00", TOWN, TIME, SAMP), TALLY_ERANGE, "seq"),
    ROW("seq -1", SUB(CID, "\xff", TOWN, TIME, SAMP), TALLY_ERANGE, "seq"),
    ROW("seq int64 min", SUB(CID, "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", TOWN, TIME, SAMP),
        TALLY_ERANGE, "seq"),
    ROW("seq as str",
        SUB(CID,
            "\xa1"
            "5",
            TOWN, TIME, SAMP),
        TALLY_EBADTYPE, "seq"),
    ROW("seq as nil", SUB(CID, "\xc0", TOWN, TIME, SAMP), TALLY_EBADTYPE, "seq"),
    ROW("seq as true", SUB(CID, "\xc3", TOWN, TIME, SAMP), TALLY_EBADTYPE, "seq"),
    ROW("seq as float64", SUB(CID, "\xcb\x40\x14\x00\x00\x00\x00\x00\x00", TOWN, TIME, SAMP),
        TALLY_EBADTYPE, "seq"),
    ROW("seq as array", SUB(CID, "\x91\x05", TOWN, TIME, SAMP), TALLY_EBADTYPE, "seq"),
    ROW("seq as map", SUB(CID, "\x81\x05\x05", TOWN, TIME, SAMP), TALLY_EBADTYPE, "seq"),
    ROW("seq as ext", SUB(CID, "\xd4\x01\x05", TOWN, TIME, SAMP), TALLY_EBADTYPE, "seq"),
    ROW("seq 0xc1", SUB(CID, "\xc1", TOWN, TIME, SAMP), TALLY_EMALFORMED, "seq"),
    ROW("seq uint64 cut", SUB(CID, "\xcf\x00\x00", "", "", ""), TALLY_EMALFORMED, "seq"),
    ROW("township as bin",
        SUB(CID, SEQ,
            "\xc4\x07"
            "gaoguan",
            TIME, SAMP),
        TALLY_EBADTYPE, "township"),
    ROW("township as int", SUB(CID, SEQ, "\x07", TIME, SAMP), TALLY_EBADTYPE, "township"),
    ROW("township empty", SUB(CID, SEQ, "\xa0", TIME, SAMP), TALLY_EBADNAME, "township"),
    ROW("township with space",
        SUB(CID, SEQ,
            "\xa3"
            "a b",
            TIME, SAMP),
        TALLY_EBADNAME, "township"),
    ROW("township with slash",
        SUB(CID, SEQ,
            "\xa3"
            "a/b",
            TIME, SAMP),
        TALLY_EBADNAME, "township"),
    ROW("township with DEL",
        SUB(CID, SEQ,
            "\xa3"
            "a\x7f"
            "b",
            TIME, SAMP),
        TALLY_EBADNAME, "township"),
    ROW("township with newline",
        SUB(CID, SEQ,
            "\xa3"
            "a\nb",
            TIME, SAMP),
        TALLY_EBADNAME, "township"),
    ROW("township with NUL",
        SUB(CID, SEQ,
            "\xa3"
            "a\0b",
            TIME, SAMP),
        TALLY_EBADNAME, "township"),
    ROW("township with C1 U+0085",
        SUB(CID, SEQ,
            "\xa3"
            "a\xc2\x85",
            TIME, SAMP),
        TALLY_EBADNAME, "township"),
    ROW("township of 65 bytes", SUB(CID, SEQ, "\xd9\x41" A64 "a", TIME, SAMP), TALLY_ETOOLONG,
        "township"),
    ROW("township overlong 2-byte",
        SUB(CID, SEQ,
            "\xa3"
            "a\xc0\x80",
            TIME, SAMP),
        TALLY_EUTF8, "township"),
    ROW("township overlong 3-byte", SUB(CID, SEQ, "\xa3\xe0\x80\xaf", TIME, SAMP), TALLY_EUTF8,
        "township"),
    ROW("township overlong 4-byte", SUB(CID, SEQ, "\xa4\xf0\x80\x80\xaf", TIME, SAMP), TALLY_EUTF8,
        "township"),
    ROW("township surrogate", SUB(CID, SEQ, "\xa3\xed\xa0\x80", TIME, SAMP), TALLY_EUTF8,
        "township"),
    ROW("township above U+10FFFF", SUB(CID, SEQ, "\xa4\xf4\x90\x80\x80", TIME, SAMP), TALLY_EUTF8,
        "township"),
    ROW("township lead byte 0xf5", SUB(CID, SEQ, "\xa4\xf5\x80\x80\x80", TIME, SAMP), TALLY_EUTF8,
        "township"),
    ROW("township truncated sequence",
        SUB(CID, SEQ,
            "\xa3"
            "a\xe9\xab",
            TIME, SAMP),
        TALLY_EUTF8, "township"),
    ROW("township lone continuation",
        SUB(CID, SEQ,
            "\xa2"
            "a\x80",
            TIME, SAMP),
        TALLY_EUTF8, "township"),
    ROW("township str32 of 4 GB",
        SUB(CID, SEQ,
            "\xdb\xff\xff\xff\xff"
            "ab",
            "", ""),
        TALLY_EMALFORMED, "township"),
    ROW("township str8 past the end",
        SUB(CID, SEQ,
            "\xd9\x10"
            "gaoguan",
            "", ""),
        TALLY_EMALFORMED, "township"),
    ROW("time_ms before 2000", SUB(CID, SEQ, TOWN, "\xcf\x00\x00\x00\xdc\x6a\xcf\xab\xff", SAMP),
        TALLY_ERANGE, "time_ms"),
    ROW("time_ms at 2100", SUB(CID, SEQ, TOWN, "\xcf\x00\x00\x03\xbb\x2c\xc3\xd8\x00", SAMP),
        TALLY_ERANGE, "time_ms"),
    ROW("time_ms negative", SUB(CID, SEQ, TOWN, "\xd0\x80", SAMP), TALLY_ERANGE, "time_ms"),
    ROW("time_ms as str",
        SUB(CID, SEQ, TOWN,
            "\xa1"
            "1",
            SAMP),
        TALLY_EBADTYPE, "time_ms"),
    ROW("samples as map", SUB(CID, SEQ, TOWN, TIME, "\x81\xa1m\x01"), TALLY_EBADTYPE, "samples"),
    ROW("samples as int", SUB(CID, SEQ, TOWN, TIME, "\x01"), TALLY_EBADTYPE, "samples"),
    ROW("samples empty", SUB(CID, SEQ, TOWN, TIME, "\x90"), TALLY_EEMPTY, "samples"),
    ROW("samples array32 of 2^32-1", SUB(CID, SEQ, TOWN, TIME, "\xdd\xff\xff\xff\xff\x92\xa1m\x01"),
        TALLY_EMALFORMED, "samples"),
    ROWS("samples declares 2, holds 1", SUB(CID, SEQ, TOWN, TIME, "\x92\x92\xa1m\x01"),
         TALLY_EMALFORMED, "samples[1]", 1),
    ROWS("sample not an array", SUB(CID, SEQ, TOWN, TIME, "\x91\x05"), TALLY_EBADTYPE, "samples[0]",
         0),
    ROWS("sample of 3 elements", SUB(CID, SEQ, TOWN, TIME, "\x91\x93\xa1m\x01\x02"),
         TALLY_EMALFORMED, "samples[0]", 0),
    ROWS("sample of 1 element", SUB(CID, SEQ, TOWN, TIME, "\x91\x91\xa1m"), TALLY_EMALFORMED,
         "samples[0]", 0),
    ROWS("sample as array16 of 2", SUB(CID, SEQ, TOWN, TIME, "\x91\xdc\x00\x02\xa1m\xa1m"),
         TALLY_EBADTYPE, "samples[0].value", 0),
    ROWS("metric with space",
         SUB(CID, SEQ, TOWN, TIME,
             "\x91\x92\xb1"
             "disputes resolved"
             "\x01"),
         TALLY_EBADNAME, "samples[0].metric", 0),
    ROWS("metric as int", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\x01\x01"), TALLY_EBADTYPE,
         "samples[0].metric", 0),
    ROWS("metric as bin", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xc4\x01m\x01"), TALLY_EBADTYPE,
         "samples[0].metric", 0),
    ROWS("value uint64 above INT64_MAX",
         SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m\xcf\x80\x00\x00\x00\x00\x00\x00\x00"),
         TALLY_ERANGE, "samples[0].value", 0),
    ROWS("value as str",
         SUB(CID, SEQ, TOWN, TIME,
             "\x91\x92\xa1m\xa1"
             "1"),
         TALLY_EBADTYPE, "samples[0].value", 0),
    ROWS("value as nil", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m\xc0"), TALLY_EBADTYPE,
         "samples[0].value", 0),
    ROWS("value as float32", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m\xca\x3f\x80\x00\x00"),
         TALLY_EBADTYPE, "samples[0].value", 0),
    ROWS("value int64 cut", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m\xd3\x00\x00"),
         TALLY_EMALFORMED, "samples[0].value", 0),
    ROWS("value nested arrays", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m\x91\x91\x91\x91\x91\x90"),
         TALLY_EBADTYPE, "samples[0].value", 0),
    ROWS("value 0xc1", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m\xc1"), TALLY_EMALFORMED,
         "samples[0].value", 0),
    ROWS("fourth metric with slash",
         SUB(CID, SEQ, TOWN, TIME,
             "\x94\x92\xa1m\x01\x92\xa1m\x02\x92\xa1m\x03\x92\xa3"
             "a/b"
             "\x04"),
         TALLY_EBADNAME, "samples[3].metric", 3),
    /* other types */
    ROW("ACK status 3", "\x98\x01\x02\x05\x03\x00\xff\xa0\xa0", TALLY_ERANGE, "status"),
    ROW("ACK accepted with code", "\x98\x01\x02\x05\x00\x05\xff\xa0\xa0", TALLY_ERANGE, "code"),
    ROW("ACK rejected without code", "\x98\x01\x02\x05\x02\x00\xff\xa0\xa0", TALLY_ERANGE, "code"),
    ROW("ACK sample -2", "\x98\x01\x02\x05\x00\x00\xfe\xa0\xa0", TALLY_ERANGE, "sample"),
    ROW("ACK sample 4096", "\x98\x01\x02\x05\x00\x00\xcd\x10\x00\xa0\xa0", TALLY_ERANGE, "sample"),
    ROW("ACK field of 65 bytes",
        "\x98\x01\x02\x05\x00\x00\xff\xd9\x41" A64 "a"
        "\xa0",
        TALLY_ETOOLONG, "field"),
    ROW("ACK message bad UTF-8",
        "\x98\x01\x02\x05\x00\x00\xff\xa0\xa2"
        "a\xff",
        TALLY_EUTF8, "message"),
    ROW("HELLO client of 65 bytes", "\x94\x01\x08\x01\xd9\x41" A64 "a", TALLY_ETOOLONG, "client"),
    ROW("HELLO client as bin",
        "\x94\x01\x08\x01\xc4\x01"
        "a",
        TALLY_EBADTYPE, "client"),
    ROW("HELLO req_id negative", "\x94\x01\x08\xff\xa0", TALLY_ERANGE, "req_id"),
    ROW("SNAPSHOT_END count 2^32", "\x96\x01\x05\x01\x01\x01\xcf\x00\x00\x00\x01\x00\x00\x00\x00",
        TALLY_ERANGE, "count"),
    ROW("HEARTBEAT stream_id -1", "\x95\x01\x07\xff\x01\x01", TALLY_ERANGE, "stream_id"),
    ROW("PING time_ms above INT64_MAX", "\x94\x01\x0c\x01\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
        TALLY_ERANGE, "time_ms"),
    ROW("ERROR code 0", "\x96\x01\x0e\x00\x00\xa0\xa0", TALLY_ERANGE, "code"),
    ROW("ERROR code 100", "\x96\x01\x0e\x00\x64\xa0\xa0", TALLY_ERANGE, "code"),
    ROW("ACK seq 0", "\x98\x01\x02\x00\x00\x00\xff\xa0\xa0", TALLY_ERANGE, "seq"),
    ROW("ACK rejected with code 100", "\x98\x01\x02\x05\x02\x64\xff\xa0\xa0", TALLY_ERANGE, "code"),
    ROW("UPDATE tally as int", UPD("\x01"), TALLY_EBADTYPE, "tally"),
    ROW("UPDATE tally of 5", UPD("\x95\xa1m\xa0\x00\x01\x01"), TALLY_EMALFORMED, "tally"),
    ROW("UPDATE metric empty", UPD("\x96\xa0\xa0\x00\x01\x01\x80"), TALLY_EBADNAME, "metric"),
    ROW("UPDATE scope with space",
        UPD("\x96\xa1m\xa3"
            "a b"
            "\x00\x01\x01\x80"),
        TALLY_EBADNAME, "scope"),
    ROW("UPDATE kind 3", UPD(TALLY("\x03", "\x80")), TALLY_ERANGE, "kind"),
    ROW("UPDATE values as array", UPD(TALLY("\x00", "\x90")), TALLY_EBADTYPE, "values"),
    ROW("UPDATE duplicate column",
        UPD(TALLY("\x00", "\x82\xa3"
                          "24h"
                          "\x01\xa3"
                          "24h"
                          "\x02")),
        TALLY_EMALFORMED, "values"),
    ROW("UPDATE 17 columns",
        UPD(TALLY("\x00", "\xde\x00\x11\xa1"
                          "a"
                          "\x01\xa1"
                          "b"
                          "\x01\xa1"
                          "c"
                          "\x01\xa1"
                          "d"
                          "\x01\xa1"
                          "e"
                          "\x01\xa1"
                          "f"
                          "\x01\xa1"
                          "g\x01\xa1h\x01\xa1i\x01\xa1j"
                          "\x01\xa1k\x01\xa1l\x01\xa1m\x01\xa1n\x01\xa1o\x01\xa1p\x01\xa1q\x01")),
        TALLY_ETOOMANY, "values"),
    ROW("UPDATE column name of 17 bytes",
        UPD(TALLY("\x00", "\x81\xb1" A16 "a"
                          "\x01")),
        TALLY_ETOOLONG, "values"),
    ROW("UPDATE column name empty", UPD(TALLY("\x00", "\x81\xa0\x01")), TALLY_ERANGE, "values"),
    ROW("UPDATE column name as int", UPD(TALLY("\x00", "\x81\x01\x01")), TALLY_EBADTYPE, "values"),
    ROW("UPDATE ratio den 0",
        UPD(TALLY("\x02", "\x81\xa3"
                          "24h"
                          "\x92\x05\x00")),
        TALLY_ERANGE, "values.24h"),
    ROW("UPDATE ratio as int",
        UPD(TALLY("\x02", "\x81\xa3"
                          "24h"
                          "\x05")),
        TALLY_EBADTYPE, "values.24h"),
    ROW("UPDATE ratio of 1",
        UPD(TALLY("\x02", "\x81\xa3"
                          "24h"
                          "\x91\x05")),
        TALLY_EMALFORMED, "values.24h"),
    ROW("UPDATE counter as array",
        UPD(TALLY("\x00", "\x81\xa3"
                          "24h"
                          "\x92\x05\x01")),
        TALLY_EBADTYPE, "values.24h"),
    ROW("UPDATE counter above INT64_MAX",
        UPD(TALLY("\x00", "\x81\xa3"
                          "24h"
                          "\xcf\xff\xff\xff\xff\xff\xff\xff\xff")),
        TALLY_ERANGE, "values.24h"),
    ROW("WELCOME no columns", "\x99\x01\x09\x01\xa0\xa0\x01\x01\x90\x80", TALLY_ERANGE, "columns"),
    ROW("WELCOME column 1 too long",
        "\x99\x01\x09\x01\xa0\xa0\x01\x01\x92\xa1x\xb1" A16 "a"
        "\x80",
        TALLY_ETOOLONG, "columns[1]"),
    ROW("WELCOME duplicate limit",
        "\x99\x01\x09\x01\xa0\xa0\x01\x01\x91\xa1x\x82\xa1k\x01\xa1k\x02", TALLY_EMALFORMED,
        "limits"),
    ROW("WELCOME limit as str",
        "\x99\x01\x09\x01\xa0\xa0\x01\x01\x91\xa1x\x81\xab"
        "max_samples"
        "\xa1"
        "1",
        TALLY_EBADTYPE, "limits.max_samples"),
    ROW("STATS empty name", "\x94\x01\x0b\x01\x81\xa0\x01", TALLY_ERANGE, "counters"),
    ROW("STATS value above INT64_MAX",
        "\x94\x01\x0b\x01\x81\xa1x\xcf\x80\x00\x00\x00\x00\x00\x00\x00", TALLY_ERANGE,
        "counters.x"),
    ROW("STATS duplicate name", "\x94\x01\x0b\x01\x82\xa1x\x01\xa1x\x01", TALLY_EMALFORMED,
        "counters"),
};

static void check_row(const row_t *r, const void *bytes, size_t len, uint32_t cap)
{
    proto_error_t err;
    memset(&err, 0, sizeof err);
    memset(&g_out, 0xaa, sizeof g_out);
    int rc = decode_exact(bytes, len, &g_out, cap, &err);
    if (rc != r->code || strcmp(err.field, r->field) != 0 || err.sample != r->sample) {
        print_message("row '%s': got %s field '%s' sample %d (%s), want %s field '%s' sample %d\n",
                      r->desc, tally_errname(rc), err.field, err.sample, err.message,
                      tally_errname(r->code), r->field, r->sample);
        fail();
    }
    assert_int_equal(err.code, rc);
    /* The sentence names the field first. */
    assert_int_equal(strncmp(err.message, err.field, strlen(err.field)), 0);
    assert_true(proto_utf8_valid(err.message, strlen(err.message)));
}

static void test_malformed_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(&rows[i], rows[i].bytes, rows[i].len, PROTO_SAMPLES_DEFAULT);
}

/* Inputs too big to write as literals. */
static void test_malformed_generated(void **state)
{
    (void)state;
    static uint8_t buf[200000];
    size_t n;

    /* 100000 nested arrays, at the top and inside a field. */
    memset(buf, 0x91, 100000);
    buf[100000] = 0x90;
    check_row(&(row_t){"100000 nested arrays", NULL, 0, TALLY_EMALFORMED, "body", -1}, buf, 100001,
              PROTO_SAMPLES_DEFAULT);
    static const char head[] = SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m");
    memcpy(buf, head, sizeof head - 1);
    memset(buf + sizeof head - 1, 0x91, 100000);
    buf[sizeof head - 1 + 100000] = 0x01;
    check_row(&(row_t){"value nested 100000 deep", NULL, 0, TALLY_EBADTYPE, "samples[0].value", 0},
              buf, sizeof head - 1 + 100001, PROTO_SAMPLES_DEFAULT);

    /* Too many samples for the configured limit, and for no storage. */
    static const char sub[] = SUB(CID, SEQ, TOWN, TIME, "\xdc\x03\xe9");
    memcpy(buf, sub, sizeof sub - 1);
    n = sizeof sub - 1;
    for (int i = 0; i < 1001; i++) {
        memcpy(buf + n, "\x92\xa1m\x01", 4);
        n += 4;
    }
    row_t r = {"1001 samples", NULL, 0, TALLY_ETOOMANY, "samples", -1};
    check_row(&r, buf, n, PROTO_SAMPLES_DEFAULT);
    proto_error_t err;
    assert_int_equal(proto_decode(buf, n, &g_out, NULL, 0, &err), TALLY_ETOOMANY);
    assert_int_equal(proto_decode(buf, n, &g_out, g_samples, 1001, &err), 0);
    assert_int_equal(g_out.u.submit.nsamples, 1001);

    /* A prefix of 256 bytes is one too many. */
    memcpy(buf, "\x94\x01\x03\x01\xda\x01\x00", 7);
    memset(buf + 7, 'p', 256);
    check_row(&(row_t){"prefix of 256", NULL, 0, TALLY_ETOOLONG, "prefix", -1}, buf, 7 + 256,
              PROTO_SAMPLES_DEFAULT);
    buf[5] = 0x00, buf[6] = 0xff; /* 255 bytes + 1 trailing */
    check_row(&(row_t){"prefix of 255 + 1", NULL, 0, TALLY_ETRAILING, "body", -1}, buf, 7 + 256,
              PROTO_SAMPLES_DEFAULT);
}

/* Integers in every MessagePack width decode to the same value. */
static void test_noncanonical_ints(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        int64_t value;
    } ints[] = {
        {"\x05", 1, 5},
        {"\xcc\x05", 2, 5},
        {"\xcd\x00\x05", 3, 5},
        {"\xce\x00\x00\x00\x05", 5, 5},
        {"\xcf\x00\x00\x00\x00\x00\x00\x00\x05", 9, 5},
        {"\xd0\x05", 2, 5},
        {"\xd1\x00\x05", 3, 5},
        {"\xd2\x00\x00\x00\x05", 5, 5},
        {"\xd3\x00\x00\x00\x00\x00\x00\x00\x05", 9, 5},
        {"\xff", 1, -1},
        {"\xd0\xff", 2, -1},
        {"\xd1\xff\xff", 3, -1},
        {"\xd2\xff\xff\xff\xff", 5, -1},
        {"\xd3\xff\xff\xff\xff\xff\xff\xff\xff", 9, -1},
        {"\xe0", 1, -32},
        {"\xd0\x80", 2, -128},
        {"\xd1\x80\x00", 3, -32768},
        {"\xd2\x80\x00\x00\x00", 5, INT32_MIN},
        {"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, INT64_MIN},
        {"\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9, INT64_MAX},
        {"\xce\xff\xff\xff\xff", 5, UINT32_MAX},
    };
    static const char head[] = "\x97\x01\x01" CID;
    static const char mid[] = TOWN TIME "\x91\x92\xa1m";
    uint8_t buf[128];
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        for (int as_seq = 0; as_seq < 2; as_seq++) {
            size_t n = sizeof head - 1;
            memcpy(buf, head, n);
            const char *seq = as_seq ? ints[i].bytes : "\x07";
            size_t seqlen = as_seq ? ints[i].len : 1;
            memcpy(buf + n, seq, seqlen), n += seqlen;
            memcpy(buf + n, mid, sizeof mid - 1), n += sizeof mid - 1;
            memcpy(buf + n, as_seq ? "\x01" : ints[i].bytes, as_seq ? 1 : ints[i].len);
            n += as_seq ? 1 : ints[i].len;
            proto_error_t err;
            int rc = decode_exact(buf, n, &g_out, PROTO_SAMPLES_DEFAULT, &err);
            if (as_seq && ints[i].value < 1) {
                assert_int_equal(rc, TALLY_ERANGE);
                assert_string_equal(err.field, "seq");
                continue;
            }
            assert_int_equal(rc, 0);
            if (as_seq)
                assert_true(g_out.u.submit.seq == (uint64_t)ints[i].value);
            else
                assert_true(g_out.u.submit.samples[0].value == ints[i].value);
        }
    }

    /* Wide containers and strings everywhere: array32, bin32, str32, array16. */
    static const char wide[] = "\xdd\x00\x00\x00\x07\xd3\x00\x00\x00\x00\x00\x00\x00\x01"
                               "\xd2\x00\x00\x00\x01\xc6\x00\x00\x00\x10"
                               "0123456789abcdef"
                               "\xcf\x00\x00\x00\x00\x00\x00\x00\x05"
                               "\xdb\x00\x00\x00\x07"
                               "gaoguan"
                               "\xd3\x00\x00\x01\x8b\xcf\xe5\x68\x00"
                               "\xdc\x00\x01\xdc\x00\x02\xda\x00\x01m\xd0\x80";
    assert_int_equal(decode_exact(wide, sizeof wide - 1, &g_out, 10, NULL), 0);
    assert_int_equal(g_out.type, PROTO_SUBMIT);
    assert_memory_equal(g_out.u.submit.client_id, "0123456789abcdef", 16);
    assert_true(g_out.u.submit.seq == 5);
    assert_true(view_is(g_out.u.submit.township, "gaoguan"));
    assert_true(g_out.u.submit.time_ms == 1700000000000);
    assert_int_equal(g_out.u.submit.nsamples, 1);
    assert_true(view_is(g_out.u.submit.samples[0].metric, "m"));
    assert_true(g_out.u.submit.samples[0].value == -128);

    /* A map16 of values and a ratio in int8/uint16, nil for a missing value. */
    static const char upd[] = UPD("\x96\xa1m\xa3"
                                  "abc"
                                  "\xcc\x02\x01\x01\xde\x00\x02\xa2"
                                  "1h"
                                  "\x92\xd0\xfe\xcd\x01\x00"
                                  "\xa3"
                                  "24h"
                                  "\xc0");
    assert_int_equal(decode_exact(upd, sizeof upd - 1, &g_out, 0, NULL), 0);
    const proto_tally_t *t = &g_out.u.update.tally;
    assert_int_equal(t->kind, PROTO_KIND_RATIO);
    assert_int_equal(t->nvalues, 2);
    assert_true(t->values[0].present && t->values[0].num == -2 && t->values[0].den == 256);
    assert_false(t->values[1].present);
    assert_true(view_is(t->values[1].name, "24h"));
}

/* ---- error reports and partial results ---------------------------------- */

static void test_error_messages(void **state)
{
    (void)state;
    proto_error_t err;
    static const char space[] = SUB(CID, SEQ, TOWN, TIME,
                                    "\x94\x92\xa1m\x01\x92\xa1m\x02\x92\xa1m\x03\x92\xb1"
                                    "disputes resolved"
                                    "\x04");
    assert_int_equal(decode_exact(space, sizeof space - 1, &g_out, 1000, &err), TALLY_EBADNAME);
    assert_string_equal(err.message, "samples[3].metric: name 'disputes resolved' contains a "
                                     "forbidden character (space) at byte 8");
    assert_int_equal(err.sample, 3);

    static const char bin[] = SUB(CID, SEQ,
                                  "\xa4"
                                  "a\xff'\\",
                                  TIME, SAMP);
    assert_int_equal(decode_exact(bin, sizeof bin - 1, &g_out, 1000, &err), TALLY_EUTF8);
    assert_string_equal(err.message,
                        "township: name 'a\\xff\\x27\\x5c' is not valid UTF-8 at byte 1");

    static const char c1[] = SUB(CID, SEQ,
                                 "\xa8"
                                 "高观\xc2\x9f",
                                 TIME, SAMP);
    assert_int_equal(decode_exact(c1, sizeof c1 - 1, &g_out, 1000, &err), TALLY_EBADNAME);
    assert_string_equal(err.message, "township: name '高观\\xc2\\x9f' contains a forbidden "
                                     "character (C1 control U+009F) at byte 6");

    static const char lng[] = SUB(CID, SEQ, "\xd9\x64" A64 A16 A16 "bbbb", TIME, SAMP);
    assert_int_equal(decode_exact(lng, sizeof lng - 1, &g_out, 1000, &err), TALLY_ETOOLONG);
    assert_string_equal(err.message, "township: name '" A16 A16 A16 "...' is 100 bytes, over "
                                     "the limit of 64 bytes");

    static const char seq0[] = SUB(CID, "\x00", TOWN, TIME, SAMP);
    assert_int_equal(decode_exact(seq0, sizeof seq0 - 1, &g_out, 1000, &err), TALLY_ERANGE);
    assert_string_equal(err.message, "seq: 0 is out of range (allowed 1..18446744073709551615)");

    static const char old[] = SUB(CID, SEQ, TOWN, "\xd0\x80", SAMP);
    assert_int_equal(decode_exact(old, sizeof old - 1, &g_out, 1000, &err), TALLY_ERANGE);
    assert_string_equal(err.message, "time_ms: -128 is out of range (allowed "
                                     "946684800000..4102444799999, 2000-01-01 to 2100-01-01 UTC)");

    static const char map[] = "\x99\x01\x09\x01\xa0\xa0\x01\x01\x91\xa1x\x82\xa1k\x01";
    assert_int_equal(decode_exact(map, sizeof map - 1, &g_out, 0, &err), TALLY_EMALFORMED);
    assert_string_equal(err.message,
                        "limits: map of 2 entries declared but only 3 bytes remain (truncated)");

    static const char cid[] = SUB("\xc4\x0f"
                                  "0123456789abcde",
                                  SEQ, TOWN, TIME, SAMP);
    assert_int_equal(decode_exact(cid, sizeof cid - 1, &g_out, 1000, &err), TALLY_ERANGE);
    assert_string_equal(err.message, "client_id: bin of 15 bytes, must be exactly 16 bytes");

    static const char big[] = SUB(CID, SEQ,
                                  "\xdb\xff\xff\xff\xff"
                                  "ab",
                                  "", "");
    assert_int_equal(decode_exact(big, sizeof big - 1, &g_out, 1000, &err), TALLY_EMALFORMED);
    assert_string_equal(err.message, "township: string of 4294967295 bytes declared but only 2 "
                                     "bytes remain (truncated)");

    static const char ver[] = "\x93\x07\x0a\x00";
    assert_int_equal(decode_exact(ver, sizeof ver - 1, &g_out, 0, &err), TALLY_EVERSION);
    assert_string_equal(err.message, "version: 7 is not supported, this codec speaks version 1");
    assert_int_equal(g_out.version, 7);

    static const char typ[] = "\x93\x01\x22\x00";
    assert_int_equal(decode_exact(typ, sizeof typ - 1, &g_out, 0, &err), TALLY_ETYPE);
    assert_string_equal(err.message, "type: 34 is not a known message type (1..33)");

    static const char bad[] = SUB(CID,
                                  "\xa1"
                                  "5",
                                  TOWN, TIME, SAMP);
    assert_int_equal(decode_exact(bad, sizeof bad - 1, &g_out, 1000, &err), TALLY_EBADTYPE);
    assert_string_equal(err.message, "seq: expected an integer, got a string");

    static const char col[] = UPD(TALLY("\x02", "\x81\xa3"
                                                "24h"
                                                "\x92\x05\x00"));
    assert_int_equal(decode_exact(col, sizeof col - 1, &g_out, 0, &err), TALLY_ERANGE);
    assert_string_equal(err.message,
                        "values.24h: ratio 5/0 has a zero denominator (send nil instead)");

    /* 5000 samples, each a minimal 4-byte sample. */
    static uint8_t buf[30000];
    static const char sub[] = SUB(CID, SEQ, TOWN, TIME, "\xdc\x13\x88");
    size_t n = sizeof sub - 1;
    memcpy(buf, sub, n);
    for (int i = 0; i < 5000; i++, n += 4)
        memcpy(buf + n, "\x92\xa1m\x01", 4);
    assert_int_equal(decode_exact(buf, n, &g_out, 1000, &err), TALLY_ETOOMANY);
    assert_string_equal(err.message, "samples: 5000 samples exceed the limit of 1000");
    assert_string_equal(err.field, "samples");
    assert_int_equal(err.sample, -1);
}

static void test_partial_results(void **state)
{
    (void)state;
    static const char town[] = SUB(CID, "\xcd\x01\x00",
                                   "\xa3"
                                   "a b",
                                   TIME, SAMP);
    memset(&g_out, 0xaa, sizeof g_out);
    assert_int_equal(decode_exact(town, sizeof town - 1, &g_out, 1000, NULL), TALLY_EBADNAME);
    assert_int_equal(g_out.type, PROTO_SUBMIT);
    assert_true(g_out.u.submit.seq == 256);

    static const char seq[] = SUB(CID, "\xc0", TOWN, TIME, SAMP);
    memset(&g_out, 0xaa, sizeof g_out);
    assert_int_equal(decode_exact(seq, sizeof seq - 1, &g_out, 1000, NULL), TALLY_EBADTYPE);
    assert_int_equal(g_out.type, PROTO_SUBMIT);
    assert_true(g_out.u.submit.seq == 0);

    static const char ping[] = "\x94\x01\x0c\x4d\xa1x";
    memset(&g_out, 0xaa, sizeof g_out);
    assert_int_equal(decode_exact(ping, sizeof ping - 1, &g_out, 0, NULL), TALLY_EBADTYPE);
    assert_int_equal(g_out.type, PROTO_PING);
    assert_true(proto_req_id(&g_out) == 77);

    static const char shape[] = "\x95\x01\x0a\x4d\x01\x02";
    memset(&g_out, 0xaa, sizeof g_out);
    assert_int_equal(decode_exact(shape, sizeof shape - 1, &g_out, 0, NULL), TALLY_EMALFORMED);
    assert_int_equal(g_out.type, PROTO_STATS_REQ);
    assert_true(proto_req_id(&g_out) == 0);

    static const char typ[] = "\x93\x01\x63\x01";
    memset(&g_out, 0xaa, sizeof g_out);
    assert_int_equal(decode_exact(typ, sizeof typ - 1, &g_out, 0, NULL), TALLY_ETYPE);
    assert_int_equal(g_out.type, 0);
    assert_int_equal(g_out.version, 1);
    assert_true(proto_req_id(&g_out) == 0);

    memset(&g_out, 0xaa, sizeof g_out);
    assert_int_equal(proto_decode(NULL, 0, &g_out, NULL, 0, NULL), TALLY_EMALFORMED);
    assert_int_equal(g_out.type, 0);
    assert_true(g_out.u.submit.seq == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_table),   cmocka_unit_test(test_malformed_generated),
        cmocka_unit_test(test_noncanonical_ints), cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_partial_results),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_group);
}
