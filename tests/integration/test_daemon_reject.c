/* Black-box tests of tallyd, bad input: every class of malformed or
 * invalid request gets its specific error, is counted under its reason in
 * STATS, and leaves the daemon serving with nothing accepted lost.  Each
 * case starts its own daemon (harness.h). */
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

#include "harness.h"

#define DAY_MS 86400000LL

/* A closed catalog: one township, one metric. */
static const char closed_conf[] = "[township gaoguan]\n"
                                  "name = 高观镇\n"
                                  "\n"
                                  "[metric disputes.resolved]\n"
                                  "kind = counter\n";

typedef struct build {
    const harness_client_t *c;
    uint64_t seq;
    int64_t now;
    const char *town;   /* a valid township */
    const char *metric; /* a valid metric */
} build_t;

typedef struct bad_case {
    const char *name;
    void (*build)(msgpack_sbuffer *out, const build_t *b);
    bool two_frames;    /* send the body twice, as two frames of one message */
    uint32_t reply;     /* PROTO_ACK (rejected) or PROTO_ERROR */
    int code;           /* wire code */
    bool id_is_seq;     /* the reply's seq/req_id is b->seq, else 0 */
    const char *field;  /* expected field, NULL: not checked */
    int sample;         /* expected sample index, -2: not checked */
    const char *reason; /* STATS tallyd_rejected_<reason>_total */
    bool closed;        /* run against closed_conf */
} bad_case_t;

typedef struct fx {
    harness_t h;
    harness_table_t t;
    const bad_case_t *bc;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0)
        return -1;
    harness_table_init(&f->t);
    f->bc = *state;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    /* A clean exit is part of every test: it shows leaks and errors at
     * exit in the sanitizer build. */
    int rc = harness_finish(&f->h) == 0 ? 0 : -1;
    harness_table_free(&f->t);
    harness_cleanup(&f->h);
    free(f);
    return rc;
}

/* ---- message builders ------------------------------------------------- */

static void pk_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pk_cstr(msgpack_packer *pk, const char *s)
{
    pk_str(pk, s, strlen(s));
}

/* [version, 1, client_id, seq, town, time, [ (nsamples follow) */
static void pk_head(msgpack_packer *pk, const build_t *b, unsigned version, const char *town,
                    size_t townlen, int64_t time_ms, uint32_t nsamples)
{
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint32(pk, version);
    msgpack_pack_uint32(pk, PROTO_SUBMIT);
    msgpack_pack_bin(pk, PROTO_CLIENT_ID_LEN);
    msgpack_pack_bin_body(pk, b->c->client_id, PROTO_CLIENT_ID_LEN);
    msgpack_pack_uint64(pk, b->seq);
    pk_str(pk, town, townlen);
    msgpack_pack_int64(pk, time_ms);
    msgpack_pack_array(pk, nsamples);
}

static void pk_sample(msgpack_packer *pk, const char *metric, size_t len, int64_t value)
{
    msgpack_pack_array(pk, 2);
    pk_str(pk, metric, len);
    msgpack_pack_int64(pk, value);
}

/* A valid submission of one sample, the base of several cases. */
static void valid(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, b->town, strlen(b->town), b->now, 1);
    pk_sample(&pk, b->metric, strlen(b->metric), 1);
}

static void build_not_msgpack(msgpack_sbuffer *out, const build_t *b)
{
    (void)b;
    msgpack_sbuffer_write(out, "\xc1\xc1\xc1\xc1", 4);
}

static void build_empty_frame(msgpack_sbuffer *out, const build_t *b)
{
    (void)out;
    (void)b;
}

static void build_truncated(msgpack_sbuffer *out, const build_t *b)
{
    valid(out, b);
    out->size -= 3; /* ends inside the last sample */
}

static void build_seq_string(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, PROTO_SUBMIT);
    msgpack_pack_bin(&pk, PROTO_CLIENT_ID_LEN);
    msgpack_pack_bin_body(&pk, b->c->client_id, PROTO_CLIENT_ID_LEN);
    pk_cstr(&pk, "2");
    pk_cstr(&pk, b->town);
    msgpack_pack_int64(&pk, b->now);
    msgpack_pack_array(&pk, 1);
    pk_sample(&pk, b->metric, strlen(b->metric), 1);
}

static void build_seq_zero(msgpack_sbuffer *out, const build_t *b)
{
    build_t z = *b;
    z.seq = 0;
    valid(out, &z);
}

static void build_client_id_15(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, PROTO_SUBMIT);
    msgpack_pack_bin(&pk, 15);
    msgpack_pack_bin_body(&pk, b->c->client_id, 15);
    msgpack_pack_uint64(&pk, b->seq);
    pk_cstr(&pk, b->town);
    msgpack_pack_int64(&pk, b->now);
    msgpack_pack_array(&pk, 1);
    pk_sample(&pk, b->metric, strlen(b->metric), 1);
}

static void build_town_65(msgpack_sbuffer *out, const build_t *b)
{
    char town[65];
    memset(town, 'g', sizeof(town));
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, town, sizeof(town), b->now, 1);
    pk_sample(&pk, b->metric, strlen(b->metric), 1);
}

static void build_town_bin(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, PROTO_SUBMIT);
    msgpack_pack_bin(&pk, PROTO_CLIENT_ID_LEN);
    msgpack_pack_bin_body(&pk, b->c->client_id, PROTO_CLIENT_ID_LEN);
    msgpack_pack_uint64(&pk, b->seq);
    msgpack_pack_bin(&pk, strlen(b->town));
    msgpack_pack_bin_body(&pk, b->town, strlen(b->town));
    msgpack_pack_int64(&pk, b->now);
    msgpack_pack_array(&pk, 1);
    pk_sample(&pk, b->metric, strlen(b->metric), 1);
}

static void build_town_space(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, "gao guan", 8, b->now, 1);
    pk_sample(&pk, b->metric, strlen(b->metric), 1);
}

static void build_town_county(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, "county", 6, b->now, 1);
    pk_sample(&pk, b->metric, strlen(b->metric), 1);
}

static void build_metric_utf8(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, b->town, strlen(b->town), b->now, 1);
    pk_sample(&pk, "ok\xff\xfe", 4, 1);
}

static void build_metric_space(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, b->town, strlen(b->town), b->now, 2);
    pk_sample(&pk, b->metric, strlen(b->metric), 1);
    pk_sample(&pk, "has space", 9, 1);
}

static void build_metric_c1(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, b->town, strlen(b->town), b->now, 1);
    pk_sample(&pk, "next\xc2\x85line", 10, 1); /* U+0085, a C1 control */
}

static void build_empty_batch(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, b->town, strlen(b->town), b->now, 0);
}

static void build_too_many(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, b->town, strlen(b->town), b->now, PROTO_SAMPLES_DEFAULT + 1);
    for (int i = 0; i < PROTO_SAMPLES_DEFAULT + 1; i++)
        pk_sample(&pk, b->metric, strlen(b->metric), 1);
}

static void build_version_2(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 2, b->town, strlen(b->town), b->now, 1);
    pk_sample(&pk, b->metric, strlen(b->metric), 1);
}

static void build_type_99(msgpack_sbuffer *out, const build_t *b)
{
    (void)b;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, 99);
    msgpack_pack_uint32(&pk, 5);
}

static void build_trailing(msgpack_sbuffer *out, const build_t *b)
{
    valid(out, b);
    msgpack_sbuffer_write(out, "\x00", 1);
}

#define NEST 60000 /* deep, yet below the 64 KiB message limit */

static void build_nested_value(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, b->town, strlen(b->town), b->now, 1);
    msgpack_pack_array(&pk, 2);
    pk_cstr(&pk, b->metric);
    for (int i = 0; i < NEST; i++)
        msgpack_pack_array(&pk, 1);
    msgpack_pack_int64(&pk, 1);
}

static void build_nested_sample(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, b->town, strlen(b->town), b->now, 1);
    for (int i = 0; i < NEST; i++)
        msgpack_pack_array(&pk, 1);
    msgpack_pack_int64(&pk, 1);
}

static void build_nested_body(msgpack_sbuffer *out, const build_t *b)
{
    (void)b;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    for (int i = 0; i < NEST; i++)
        msgpack_pack_array(&pk, 1);
    msgpack_pack_int64(&pk, 1);
}

static void build_value_u64(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, b->town, strlen(b->town), b->now, 1);
    msgpack_pack_array(&pk, 2);
    pk_cstr(&pk, b->metric);
    msgpack_pack_uint64(&pk, (uint64_t)INT64_MAX + 1);
}

static void at_time(msgpack_sbuffer *out, const build_t *b, int64_t t)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, b->town, strlen(b->town), t, 1);
    pk_sample(&pk, b->metric, strlen(b->metric), 1);
}

static void build_future(msgpack_sbuffer *out, const build_t *b)
{
    at_time(out, b, b->now + 3600000);
}

static void build_too_old(msgpack_sbuffer *out, const build_t *b)
{
    at_time(out, b, b->now - 3661 * DAY_MS);
}

static void build_before_2000(msgpack_sbuffer *out, const build_t *b)
{
    at_time(out, b, PROTO_TIME_MIN - 1);
}

static void build_ratio(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, b->town, strlen(b->town), b->now, 1);
    pk_sample(&pk, "disputes.resolution_rate", 24, 1);
}

static void build_unknown_town(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, "nowhere", 7, b->now, 1);
    pk_sample(&pk, b->metric, strlen(b->metric), 1);
}

static void build_unknown_metric(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    pk_head(&pk, b, 1, b->town, strlen(b->town), b->now, 2);
    pk_sample(&pk, b->metric, strlen(b->metric), 1);
    pk_sample(&pk, "disputes.resolvd", 16, 2);
}

static void build_prefix_256(msgpack_sbuffer *out, const build_t *b)
{
    char prefix[256];
    memset(prefix, 'u', sizeof(prefix));
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, PROTO_SNAPSHOT_REQ);
    msgpack_pack_uint64(&pk, b->seq);
    pk_str(&pk, prefix, sizeof(prefix));
}

static void build_ack_as_request(msgpack_sbuffer *out, const build_t *b)
{
    proto_msg_t m = {.type = PROTO_ACK};
    m.u.ack.seq = b->seq;
    m.u.ack.sample = -1;
    proto_encode(out, &m);
}

static void build_hello_extra(msgpack_sbuffer *out, const build_t *b)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, PROTO_HELLO);
    msgpack_pack_uint64(&pk, b->seq);
    pk_cstr(&pk, "x");
    pk_cstr(&pk, "extra");
}

/* TOWNSHIPS_REQ with from as given (a str, or a uint64 above uint32). */
static void build_townships(msgpack_sbuffer *out, const build_t *b, bool as_text)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, PROTO_TOWNSHIPS_REQ);
    msgpack_pack_uint64(&pk, b->seq);
    if (as_text)
        pk_cstr(&pk, "0");
    else
        msgpack_pack_uint64(&pk, (uint64_t)UINT32_MAX + 1);
}

static void build_townships_text(msgpack_sbuffer *out, const build_t *b)
{
    build_townships(out, b, true);
}

static void build_townships_big(msgpack_sbuffer *out, const build_t *b)
{
    build_townships(out, b, false);
}

/* BACKUP_REQ with a req_id that is a str, or with one element too many. */
static void build_backup(msgpack_sbuffer *out, const build_t *b, bool text_id)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, text_id ? 3 : 4);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, PROTO_BACKUP_REQ);
    if (text_id) {
        pk_cstr(&pk, "7");
        return;
    }
    msgpack_pack_uint64(&pk, b->seq);
    pk_cstr(&pk, "/tmp/elsewhere");
}

static void build_backup_text_id(msgpack_sbuffer *out, const build_t *b)
{
    build_backup(out, b, true);
}

static void build_backup_extra(msgpack_sbuffer *out, const build_t *b)
{
    build_backup(out, b, false);
}

/* BACKUP_FETCH of name, file 0 (a str "0" with text_file) from offset 0. */
static void build_fetch(msgpack_sbuffer *out, const build_t *b, const char *name, bool text_file)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, PROTO_BACKUP_FETCH);
    msgpack_pack_uint64(&pk, b->seq);
    pk_cstr(&pk, name);
    if (text_file)
        pk_cstr(&pk, "0");
    else
        msgpack_pack_uint32(&pk, 0);
    msgpack_pack_uint64(&pk, 0);
}

static void build_fetch_path(msgpack_sbuffer *out, const build_t *b)
{
    build_fetch(out, b, "../../etc", false);
}

static void build_fetch_text_file(msgpack_sbuffer *out, const build_t *b)
{
    build_fetch(out, b, "backup-20240615T120000Z", true);
}

static void build_fetch_missing(msgpack_sbuffer *out, const build_t *b)
{
    build_fetch(out, b, "backup-20240615T120000Z", false);
}

/* BACKUP_LIST_REQ with a req_id that is a str, or with one element too
 * many. */
static void build_list(msgpack_sbuffer *out, const build_t *b, bool text_id)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, text_id ? 3 : 4);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, PROTO_BACKUP_LIST_REQ);
    if (text_id) {
        pk_cstr(&pk, "9");
        return;
    }
    msgpack_pack_uint64(&pk, b->seq);
    msgpack_pack_uint32(&pk, 1000);
}

static void build_list_text_id(msgpack_sbuffer *out, const build_t *b)
{
    build_list(out, b, true);
}

static void build_list_extra(msgpack_sbuffer *out, const build_t *b)
{
    build_list(out, b, false);
}

/* ---- the cases ----------------------------------------------------------- */

#define ACK   PROTO_ACK
#define ERR   PROTO_ERROR
#define ANY   (-2)
#define OPEN  false
#define CLOSE true

static const bad_case_t cases[] = {
    {"not msgpack", build_not_msgpack, false, ERR, 1, false, NULL, -1, "malformed", OPEN},
    {"empty frame", build_empty_frame, false, ERR, 1, false, NULL, -1, "malformed", OPEN},
    {"truncated submit", build_truncated, false, ACK, 1, true, NULL, ANY, "malformed", OPEN},
    {"two frames", valid, true, ERR, 1, false, NULL, -1, "malformed", OPEN},
    {"seq is a string", build_seq_string, false, ERR, 4, false, "seq", -1, "bad_type", OPEN},
    {"seq 0", build_seq_zero, false, ERR, 5, false, "seq", -1, "out_of_range", OPEN},
    {"client_id of 15 bytes", build_client_id_15, false, ERR, 5, false, "client_id", -1,
     "out_of_range", OPEN},
    {"township of 65 bytes", build_town_65, false, ACK, 6, true, "township", -1, "too_long", OPEN},
    {"township as bin", build_town_bin, false, ACK, 4, true, "township", -1, "bad_type", OPEN},
    {"township with a space", build_town_space, false, ACK, 8, true, "township", -1, "bad_name",
     OPEN},
    {"township 'county' (reserved)", build_town_county, false, ACK, 8, true, "township", -1,
     "bad_name", OPEN},
    {"metric not UTF-8", build_metric_utf8, false, ACK, 7, true, "samples[0].metric", 0, "bad_utf8",
     OPEN},
    {"metric with a space", build_metric_space, false, ACK, 8, true, "samples[1].metric", 1,
     "bad_name", OPEN},
    {"metric with a C1 control", build_metric_c1, false, ACK, 8, true, "samples[0].metric", 0,
     "bad_name", OPEN},
    {"empty batch", build_empty_batch, false, ACK, 9, true, "samples", -1, "empty_batch", OPEN},
    {"1001 samples", build_too_many, false, ACK, 10, true, "samples", -1, "too_many_samples", OPEN},
    {"version 2", build_version_2, false, ERR, 2, false, "version", -1, "unsupported_version",
     OPEN},
    {"type 99", build_type_99, false, ERR, 3, false, "type", -1, "unknown_type", OPEN},
    {"ACK sent as a request", build_ack_as_request, false, ERR, 3, false, NULL, -1, "unknown_type",
     OPEN},
    {"trailing garbage", build_trailing, false, ACK, 11, true, NULL, -1, "trailing_data", OPEN},
    {"deeply nested value", build_nested_value, false, ACK, 4, true, "samples[0].value", 0,
     "bad_type", OPEN},
    {"deeply nested sample", build_nested_sample, false, ACK, 1, true, NULL, 0, "malformed", OPEN},
    {"deeply nested body", build_nested_body, false, ERR, 1, false, NULL, -1, "malformed", OPEN},
    {"value above INT64_MAX", build_value_u64, false, ACK, 5, true, "samples[0].value", 0,
     "out_of_range", OPEN},
    {"time before 2000", build_before_2000, false, ACK, 5, true, "time_ms", -1, "out_of_range",
     OPEN},
    {"time one hour ahead", build_future, false, ACK, 14, true, "time_ms", -1, "time_in_future",
     OPEN},
    {"time 3661 days old", build_too_old, false, ACK, 15, true, "time_ms", -1, "time_too_old",
     OPEN},
    {"a ratio submitted", build_ratio, false, ACK, 23, true, "samples[0].metric", 0,
     "kind_mismatch", OPEN},
    {"snapshot prefix of 256 bytes", build_prefix_256, false, ERR, 6, true, "prefix", -1,
     "too_long", OPEN},
    {"HELLO with an extra element", build_hello_extra, false, ERR, 1, false, NULL, -1, "malformed",
     OPEN},
    {"township list from a string", build_townships_text, false, ERR, 4, true, "from", -1,
     "bad_type", OPEN},
    {"township list from 2^32", build_townships_big, false, ERR, 5, true, "from", -1,
     "out_of_range", OPEN},
    {"backup request with a str req_id", build_backup_text_id, false, ERR, 4, false, "req_id", -1,
     "bad_type", OPEN},
    {"backup request naming a path", build_backup_extra, false, ERR, 1, false, NULL, -1,
     "malformed", OPEN},
    {"backup fetch of ../../etc", build_fetch_path, false, ERR, 8, true, "name", -1, "bad_name",
     OPEN},
    {"backup fetch with a str file", build_fetch_text_file, false, ERR, 4, true, "file", -1,
     "bad_type", OPEN},
    {"backup fetch of a backup never written", build_fetch_missing, false, ERR, 28, true, "name",
     -1, "no_such_backup", OPEN},
    {"backup list with a str req_id", build_list_text_id, false, ERR, 4, false, "req_id", -1,
     "bad_type", OPEN},
    {"backup list asking for a count", build_list_extra, false, ERR, 1, false, NULL, -1,
     "malformed", OPEN},
    {"unknown township", build_unknown_town, false, ACK, 12, true, "township", -1,
     "unknown_township", CLOSE},
    {"unknown metric", build_unknown_metric, false, ACK, 13, true, "samples[1].metric", 1,
     "unknown_metric", CLOSE},
};

/* ---- the checks ------------------------------------------------------- */

static void check_ack(const harness_ack_t *a, uint64_t seq, int status, int code)
{
    char buf[800];
    if (a->type != PROTO_ACK || a->seq != seq || a->status != status || a->code != code)
        fail_msg("expected ACK seq %" PRIu64 " status %d code %d, got %s", seq, status, code,
                 harness_ack_str(a, buf, sizeof(buf)));
}

static void submit_ok(harness_client_t *c, uint64_t seq, const char *town, const char *metric,
                      int64_t value)
{
    harness_ack_t a;
    assert_int_equal(harness_submit_one(c, seq, town, harness_now_ms(), metric, value, &a), 0);
    check_ack(&a, seq, PROTO_ACK_ACCEPTED, 0);
}

static void expect_total(fx_t *f, harness_client_t *c, const char *metric, const char *town,
                         int64_t total)
{
    assert_int_equal(harness_snapshot(c, "", &f->t), 0);
    const char *scopes[] = {town, ""};
    for (int i = 0; i < 2; i++) {
        harness_value_t v;
        if (!harness_table_get(&f->t, metric, scopes[i], "total", &v) || !v.present ||
            v.num != total)
            fail_msg("%s in '%s': expected total %" PRId64 ", got %s%" PRId64, metric, scopes[i],
                     total, v.present ? "" : "none/nil ", v.num);
    }
}

/* Every case checks its reason counter last.  Set once STATS went
 * unanswered, so that the following cases fail at once instead of each
 * waiting for the reply timeout. */
static bool stats_unanswered;

/* Assert that STATS counts want rejections for reason, and want in all
 * (every case runs on a fresh daemon, so the counts start at 0). */
static void expect_rejections(harness_client_t *c, const char *reason, int64_t want)
{
    char name[96];
    snprintf(name, sizeof(name), "tallyd_rejected_%s_total", reason);
    if (stats_unanswered)
        fail_msg("cannot check %s: STATS went unanswered in an earlier case", name);
    int64_t got = harness_stats(c, name);
    if (got < 0 && harness_stats(c, "tallyd_rejected_total") < 0) {
        stats_unanswered = true;
        fail_msg("cannot check %s: STATS_REQ gets no reply", name);
    }
    if (got != want)
        fail_msg("%s is %" PRId64 ", expected %" PRId64, name, got, want);
    /* Rejected submissions and requests answered with ERROR are counted
     * apart; together they are every rejection. */
    assert_int_equal(harness_stats(c, "tallyd_rejected_total") +
                         harness_stats(c, "tallyd_bad_requests_total"),
                     want);
    /* Every case's code is one a client does not resend: a rejected
     * submission is refused for good. */
    assert_int_equal(harness_stats(c, "tallyd_submissions_refused_for_good_total"),
                     harness_stats(c, "tallyd_rejected_total"));
}

/* 3. One bad input: its reply, its counter, and the daemon unharmed. */
static void test_bad_input(void **state)
{
    fx_t *f = *state;
    const bad_case_t *bc = f->bc;
    assert_int_equal(harness_start(&f->h, bc->closed ? closed_conf : NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    const char *town = bc->closed ? "gaoguan" : "t1";
    const char *metric = bc->closed ? "disputes.resolved" : "ok.count";
    submit_ok(&c, 1, town, metric, 5);

    build_t b = {&c, 2, harness_now_ms(), town, metric};
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    bc->build(&out, &b);
    int rc;
    if (bc->two_frames) {
        const void *bufs[2] = {out.data, out.data};
        size_t lens[2] = {out.size, out.size};
        rc = harness_send_frames(&c, bufs, lens, 2);
    } else {
        rc = harness_send_raw(&c, out.data, out.size);
    }
    msgpack_sbuffer_destroy(&out);
    assert_int_equal(rc, 0);

    harness_ack_t r;
    char desc[800];
    if (harness_recv_reply(&c, &r, HARNESS_REPLY_TIMEOUT_MS) != 0)
        fail_msg("%s: no reply; log:\n%s", bc->name, harness_log(&f->h));
    harness_ack_str(&r, desc, sizeof(desc));
    print_message("%s -> %s\n", bc->name, desc);
    if (r.type != bc->reply || r.code != bc->code ||
        (r.type == PROTO_ACK && r.status != PROTO_ACK_REJECTED) ||
        r.seq != (bc->id_is_seq ? b.seq : 0))
        fail_msg("%s: expected %s code %d (%s) id %" PRIu64 ", got %s", bc->name,
                 bc->reply == ACK ? "rejecting ACK" : "ERROR", bc->code, tally_errname(-bc->code),
                 bc->id_is_seq ? b.seq : 0, desc);
    if (bc->field != NULL && strcmp(r.field, bc->field) != 0)
        fail_msg("%s: expected field '%s', got %s", bc->name, bc->field, desc);
    if (bc->sample != ANY && r.sample != bc->sample)
        fail_msg("%s: expected sample %d, got %s", bc->name, bc->sample, desc);
    assert_true(r.message[0] != '\0'); /* a sentence for the person */

    assert_true(harness_running(&f->h));
    /* A resend of a rejected submission is not a duplicate: seq 2 was not
     * recorded, so a valid submission may use it now. */
    submit_ok(&c, 2, town, metric, 5);
    expect_total(f, &c, metric, town, 10);
    /* A backup that is not (or no longer) kept is an answer, as a failed
     * BACKUP_REQ's is, not bad input: no rejection is counted. */
    expect_rejections(&c, bc->reason, strcmp(bc->reason, "no_such_backup") == 0 ? 0 : 1);
    assert_int_equal(harness_stats(&c, "tallyd_submissions_accepted_total"), 2);
    harness_client_close(&c);
}

/* 3. OVERFLOW: the second INT64_MAX is refused, atomically (the metric
 * declared to take samples that large). */
static void test_overflow(void **state)
{
    fx_t *f = *state;
    assert_int_equal(
        harness_start(&f->h,
                      "[metric ok.count]\nkind = counter\n"
                      "[metric big.count]\nkind = counter\nmax = 9223372036854775807\n",
                      NULL),
        0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    submit_ok(&c, 1, "t1", "ok.count", 5);
    submit_ok(&c, 2, "t1", "big.count", INT64_MAX);

    harness_ack_t a;
    assert_int_equal(harness_submit_one(&c, 3, "t1", harness_now_ms(), "big.count", INT64_MAX, &a),
                     0);
    check_ack(&a, 3, PROTO_ACK_REJECTED, 16);
    assert_string_equal(a.field, "samples[0].value");
    assert_int_equal(a.sample, 0);

    /* Only the second sample overflows; the first must not be applied. */
    harness_sample_t two[] = {{"ok.count", 1}, {"big.count", 1}};
    assert_int_equal(harness_submit(&c, 4, "t1", harness_now_ms(), two, 2, &a), 0);
    check_ack(&a, 4, PROTO_ACK_REJECTED, 16);
    assert_int_equal(a.sample, 1);
    assert_string_equal(a.field, "samples[1].value");

    submit_ok(&c, 5, "t1", "ok.count", 5);
    expect_total(f, &c, "big.count", "t1", INT64_MAX);
    expect_total(f, &c, "ok.count", "t1", 10);
    harness_value_t v;
    assert_true(harness_table_get(&f->t, "big.count", "", "1h", &v));
    assert_true(v.present && v.num == INT64_MAX);
    expect_rejections(&c, "overflow", 2);
    harness_client_close(&c);
}

/* In an open catalog a rejected submission does not keep the names it
 * brought: they do not count against max_townships and max_metrics. */
static void test_rejected_names_use_no_limit(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_townships = 2\nmax_metrics = 2\n", NULL),
                     0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    harness_ack_t a;
    char town[16], metric[16];
    uint64_t seq = 1;
    for (int i = 0; i < 6; i++, seq++) {
        snprintf(town, sizeof(town), "ghost%d", i);
        snprintf(metric, sizeof(metric), "ghost.m%d", i);
        /* Too far ahead of the daemon's clock; then out of range. */
        int64_t t = harness_now_ms() + (i % 2 ? 0 : 86400000);
        harness_sample_t two[] = {{metric, i % 2 ? INT64_MAX : 1}, {metric, 1}};
        assert_int_equal(harness_submit(&c, seq, town, t, two, 2, &a), 0);
        check_ack(&a, seq, PROTO_ACK_REJECTED, i % 2 ? -TALLY_ERANGE : -TALLY_EFUTURE);
    }
    submit_ok(&c, seq++, "t1", "ok.count", 5);
    submit_ok(&c, seq++, "t2", "ok.other", 6);
    assert_int_equal(harness_submit_one(&c, seq, "t3", harness_now_ms(), "ok.count", 1, &a), 0);
    check_ack(&a, seq, PROTO_ACK_REJECTED, -TALLY_ESERIESLIMIT);
    assert_string_equal(a.field, "township");
    assert_non_null(strstr(a.message, "t3"));
    expect_total(f, &c, "ok.count", "t1", 5);
    expect_total(f, &c, "ok.other", "t2", 6);
    harness_value_t v;
    assert_false(harness_table_get(&f->t, "ghost.m0", "", "total", &v));
    harness_client_close(&c);
}

/* PROTOCOL.md 14.3: a seq below the de-duplication window is refused
 * STALE_SEQUENCE even if it was applied; inside the window an unapplied
 * seq is still new. */
static void test_stale_sequence(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    submit_ok(&c, 1, "t1", "ok.count", 5);
    submit_ok(&c, 2000, "t1", "ok.count", 5);
    harness_ack_t a;
    assert_int_equal(harness_submit_one(&c, 1, "t1", harness_now_ms(), "ok.count", 5, &a), 0);
    check_ack(&a, 1, PROTO_ACK_REJECTED, 25);
    assert_string_equal(a.field, "seq");
    assert_int_equal(harness_submit_one(&c, 976, "t1", harness_now_ms(), "ok.count", 5, &a), 0);
    check_ack(&a, 976, PROTO_ACK_REJECTED, 25); /* 2000 - 1024 */
    submit_ok(&c, 977, "t1", "ok.count", 5);    /* 2000 - 1023: in the window */
    assert_int_equal(harness_submit_one(&c, 977, "t1", harness_now_ms(), "ok.count", 5, &a), 0);
    check_ack(&a, 977, PROTO_ACK_DUPLICATE, 0);
    assert_int_equal(harness_submit_one(&c, 2000, "t1", harness_now_ms(), "ok.count", 5, &a), 0);
    check_ack(&a, 2000, PROTO_ACK_DUPLICATE, 0);
    expect_total(f, &c, "ok.count", "t1", 15);
    expect_rejections(&c, "stale_sequence", 2);
    harness_client_close(&c);
}

/* 3. A message above max_msg_bytes: ZeroMQ drops the sender's connection
 * without a reply; the daemon goes on serving everyone. */
static void test_too_large(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    assert_int_equal(f->h.max_msg, PROTO_MSG_MAX_DEFAULT);
    harness_client_t a, b;
    assert_int_equal(harness_client_open(&f->h, &a), 0);
    submit_ok(&a, 1, "t1", "ok.count", 5);

    /* Above max_msg, up to twice it: ERROR TOO_LARGE naming the body,
     * counted, and the connection stays. */
    size_t max = (size_t)f->h.max_msg;
    char *big = malloc(2 * max + 1);
    assert_non_null(big);
    memset(big, 0x90, 2 * max + 1); /* empty arrays: msgpack, but far too long */
    const size_t sizes[] = {max + 1, 2 * max};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(harness_send_raw(&a, big, sizes[i]), 0);
        harness_ack_t r;
        assert_int_equal(harness_recv_reply(&a, &r, 5000), 0);
        char buf[800];
        if (r.type != PROTO_ERROR || r.seq != 0 || r.code != -TALLY_ETOOLARGE ||
            strcmp(r.field, "body") != 0 || strstr(r.message, "max_msg") == NULL)
            fail_msg("%zu bytes: expected ERROR req_id 0 TOO_LARGE about the body, got %s",
                     sizes[i], harness_ack_str(&r, buf, sizeof(buf)));
    }
    assert_int_equal(harness_stats(&a, "tallyd_rejected_too_large_total"), 2);
    submit_ok(&a, 2, "t1", "ok.count", 5);

    /* Above twice max_msg ZeroMQ drops the connection unread. */
    assert_int_equal(harness_send_raw(&a, big, 2 * max + 1), 0);
    free(big);
    char reply[64];
    assert_int_equal(harness_recv_raw(&a, reply, sizeof(reply), 1000), TALLY_ETIMEDOUT);
    assert_true(harness_running(&f->h));

    assert_int_equal(harness_client_open(&f->h, &b), 0);
    submit_ok(&b, 1, "t1", "ok.count", 5);
    expect_total(f, &b, "ok.count", "t1", 15);
    harness_client_close(&a);
    harness_client_close(&b);
}

/* A well-formed BACKUP_LIST_REQ to a daemon that wrote no backup yet:
 * BACKUP_LIST with its req_id, an empty list and the backup directory;
 * then the daemon serves on. */
static void test_backup_list(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    proto_msg_t q = {.type = PROTO_BACKUP_LIST_REQ};
    q.u.backup_list_req.req_id = 77;
    assert_int_equal(proto_encode(&out, &q), 0);
    assert_int_equal(harness_send_raw(&c, out.data, out.size), 0);
    msgpack_sbuffer_destroy(&out);
    char reply[4096];
    long n = harness_recv_raw(&c, reply, sizeof(reply), HARNESS_REPLY_TIMEOUT_MS);
    if (n < 0)
        fail_msg("no reply to BACKUP_LIST_REQ; log:\n%s", harness_log(&f->h));
    assert_true(n < (long)sizeof(reply));
    proto_msg_t m;
    proto_error_t err;
    assert_int_equal(proto_decode(reply, (size_t)n, &m, NULL, 0, &err), 0);
    assert_int_equal(m.type, PROTO_BACKUP_LIST);
    assert_int_equal(m.u.backup_list.req_id, 77);
    assert_int_equal(m.u.backup_list.total, 0);
    assert_int_equal(m.u.backup_list.n, 0);
    assert_true(m.u.backup_list.dir.len >= 8);
    assert_memory_equal(m.u.backup_list.dir.ptr + m.u.backup_list.dir.len - 8, "/backups", 8);
    submit_ok(&c, 1, "t1", "ok.count", 5);
    expect_total(f, &c, "ok.count", "t1", 5);
    assert_int_equal(harness_stats(&c, "tallyd_bad_requests_total"), 0);
    harness_client_close(&c);
}

int main(void)
{
    struct CMUnitTest tests[sizeof(cases) / sizeof(cases[0]) + 5];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate_setup_teardown(
            test_bad_input, setup, teardown, (void *)&cases[i]);
        tests[n++].name = cases[i].name;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(test_overflow, setup, teardown);
    tests[n++] =
        (struct CMUnitTest)cmocka_unit_test_setup_teardown(test_too_large, setup, teardown);
    tests[n++] =
        (struct CMUnitTest)cmocka_unit_test_setup_teardown(test_stale_sequence, setup, teardown);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
        test_rejected_names_use_no_limit, setup, teardown);
    tests[n++] =
        (struct CMUnitTest)cmocka_unit_test_setup_teardown(test_backup_list, setup, teardown);
    return _cmocka_run_group_tests("test_daemon_reject", tests, n, NULL, NULL);
}
