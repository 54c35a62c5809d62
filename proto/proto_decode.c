/* proto_decode.c - the strict decoder for the tally wire protocol v1.
 *
 * The decoder is a cursor over the raw bytes instead of msgpack_unpack:
 * msgpack-c's object unpacker allocates storage sized by counts read from the
 * wire before it can know they are honest, and allocates per object.  This
 * reader allocates nothing, checks every declared count against the bytes
 * that remain before using it, and never recurses: the schema is fixed, so a
 * container where a scalar belongs is a type error on the spot, however deep
 * the input nests.
 *
 * It does not use msgpack-c at all.  The name rules it applies, and the
 * limits it shares with the encoder (proto_encode.c), come from proto.c
 * through proto_internal.h; UTF-8 and the escaping of values quoted in
 * its messages from tallycommon (utf8.h, text.h).
 */
#include "proto.h"
#include "proto_internal.h"
#include "text.h"
#include "utf8.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The name of each type for error reports, indexed by enum proto_type. */
static const char *const msg_names[PROTO_TYPE_LAST + 1] = {
    "body",       "SUBMIT",    "ACK",       "SNAPSHOT_REQ", "SNAPSHOT_ITEM",  "SNAPSHOT_END",
    "UPDATE",     "HEARTBEAT", "HELLO",     "WELCOME",      "STATS_REQ",      "STATS",
    "PING",       "PONG",      "ERROR",     "GOODBYE",      "CATALOG_REQ",    "CATALOG",
    "PERIOD_REQ", "PERIOD",    "RANGE_REQ", "RANGE",        "PERIOD_CHANGED", "CLOCK_REQ",
    "CLOCK",      "SPAN_REQ"};

#define SHOW_MAX 48 /* bytes of an offending value quoted in a message */

/* ---- error reports ------------------------------------------------------ */

/* Where a value sits: "name", "samples[3].name", "name[2]" or "name.key". */
typedef struct fld {
    const char *name;
    int32_t sample; /* >= 0: the field is inside samples[sample] */
    int32_t idx;    /* >= 0: element idx of an array field */
    const char *key;
    uint32_t keylen;
} fld_t;

#define FLD(n) (&(const fld_t){(n), -1, -1, NULL, 0})

/* Render untrusted bytes for a sentence, between quotes: at most
 * SHOW_MAX bytes of it, so the rest of the sentence (the limit) still
 * fits. */
static void esc(char *out, size_t cap, const void *src, size_t len)
{
    text_printable(out, cap < SHOW_MAX + 4 ? cap : SHOW_MAX + 4, src, len, TEXT_QUOTES);
}

/* snprintf may cut a multi-byte character in half; the report travels in a
 * str field whose receiver checks UTF-8, so drop the broken tail. */
static void trim_broken_tail(char *s)
{
    s[utf8_scan(s, strlen(s))] = '\0';
}

/* Failure paths are rare; keep them out of the decoder's hot code. */
#define COLD __attribute__((cold, noinline))

COLD __attribute__((format(printf, 4, 5))) static int fail(proto_error_t *err, int code,
                                                           const fld_t *f, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    char pre[24] = "", idx[16] = "", key[SHOW_MAX + 8] = "";
    if (f->sample >= 0)
        snprintf(pre, sizeof pre, "samples[%" PRId32 "]%s", f->sample, f->name[0] ? "." : "");
    if (f->idx >= 0)
        snprintf(idx, sizeof idx, "[%" PRId32 "]", f->idx);
    if (f->key != NULL) {
        key[0] = '.';
        esc(key + 1, sizeof key - 1, f->key, f->keylen);
    }
    err->code = code;
    err->sample = f->sample;
    /* Concatenate by hand: the parts are bounded but may still exceed the
     * field buffer together, and a silently cut field is acceptable. */
    const char *parts[] = {pre, f->name, idx, key};
    size_t o = 0;
    for (size_t i = 0; i < 4; i++)
        for (const char *c = parts[i]; *c != '\0' && o + 1 < sizeof err->field; c++)
            err->field[o++] = *c;
    err->field[o] = '\0';
    trim_broken_tail(err->field);
    int n = snprintf(err->message, sizeof err->message, "%s: ", err->field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
    va_end(ap);
    trim_broken_tail(err->message);
    return code;
}

static const char *mp_type_name(uint8_t b)
{
    if (b < 0x80 || b >= 0xe0 || (b >= 0xcc && b <= 0xd3))
        return "an integer";
    if (b < 0x90 || b == 0xde || b == 0xdf)
        return "a map";
    if (b < 0xa0 || b == 0xdc || b == 0xdd)
        return "an array";
    if (b < 0xc0 || (b >= 0xd9 && b <= 0xdb))
        return "a string";
    if (b == 0xc0)
        return "nil";
    if (b == 0xc2 || b == 0xc3)
        return "a boolean";
    if (b >= 0xc4 && b <= 0xc6)
        return "binary data";
    if (b == 0xca || b == 0xcb)
        return "a float";
    return "an extension value";
}

/* ---- the reader --------------------------------------------------------- */

typedef struct rd {
    const uint8_t *start;
    const uint8_t *p;
    const uint8_t *end;
    proto_error_t *err;
} rd_t;

/* An integer as read, before the field's range is applied. */
typedef struct ival {
    bool neg;
    uint64_t u; /* the value when !neg */
    int64_t s;  /* the value when neg */
} ival_t;

static inline uint64_t load_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

COLD static int fail_type(rd_t *r, const fld_t *f, const char *want)
{
    if (*r->p == 0xc1)
        return fail(r->err, TALLY_EMALFORMED, f, "byte 0xc1 at offset %td is not MessagePack",
                    r->p - r->start);
    return fail(r->err, TALLY_EBADTYPE, f, "expected %s, got %s", want, mp_type_name(*r->p));
}

COLD static int fail_trunc(rd_t *r, const fld_t *f, const char *what)
{
    return fail(r->err, TALLY_EMALFORMED, f, "the message ends inside %s (truncated)", what);
}

COLD static int fail_len(rd_t *r, const fld_t *f, const char *what, const char *unit, uint64_t n,
                         size_t avail)
{
    return fail(r->err, TALLY_EMALFORMED, f,
                "%s of %" PRIu64 " %s declared but only %zu bytes remain (truncated)", what, n,
                unit, avail);
}

static inline int rd_int(rd_t *r, const fld_t *f, ival_t *v)
{
    if (r->p == r->end)
        return fail_trunc(r, f, "an integer");
    uint8_t b = *r->p;
    if (b < 0x80) {
        r->p++;
        v->neg = false, v->u = b;
        return 0;
    }
    if (b >= 0xe0) {
        r->p++;
        v->neg = true, v->s = (int8_t)b;
        return 0;
    }
    if (b < 0xcc || b > 0xd3)
        return fail_type(r, f, "an integer");
    unsigned n = 1u << ((b - 0xcc) & 3);
    if ((size_t)(r->end - r->p) <= n)
        return fail_trunc(r, f, "an integer");
    uint64_t raw = load_be(r->p + 1, n);
    r->p += 1 + n;
    if (b <= 0xcf) {
        v->neg = false, v->u = raw;
        return 0;
    }
    /* int8..int64 may carry non-negative values; those count as unsigned. */
    int64_t s = n == 1 ? (int8_t)raw : n == 2 ? (int16_t)raw : n == 4 ? (int32_t)raw : (int64_t)raw;
    v->neg = s < 0, v->s = s, v->u = (uint64_t)s;
    return 0;
}

static const char *ival_str(const ival_t *v, char buf[24])
{
    if (v->neg)
        snprintf(buf, 24, "%" PRId64, v->s);
    else
        snprintf(buf, 24, "%" PRIu64, v->u);
    return buf;
}

COLD static int fail_range(rd_t *r, const fld_t *f, const ival_t *v, const char *lo, const char *hi)
{
    char val[24];
    return fail(r->err, TALLY_ERANGE, f, "%s is out of range (allowed %s..%s)", ival_str(v, val),
                lo, hi);
}

static inline int rd_u64(rd_t *r, const fld_t *f, uint64_t min, uint64_t max, uint64_t *out)
{
    ival_t v = {0};
    TRY(rd_int(r, f, &v));
    if (v.neg || v.u < min || v.u > max) {
        char lo[24], hi[24];
        snprintf(lo, sizeof lo, "%" PRIu64, min);
        snprintf(hi, sizeof hi, "%" PRIu64, max);
        return fail_range(r, f, &v, lo, hi);
    }
    *out = v.u;
    return 0;
}

static inline int rd_i64(rd_t *r, const fld_t *f, int64_t min, int64_t max, int64_t *out)
{
    ival_t v = {0};
    TRY(rd_int(r, f, &v));
    if (v.neg ? (v.s < min || v.s > max) : (max < 0 || v.u > (uint64_t)max || (int64_t)v.u < min)) {
        char lo[24], hi[24];
        snprintf(lo, sizeof lo, "%" PRId64, min);
        snprintf(hi, sizeof hi, "%" PRId64, max);
        return fail_range(r, f, &v, lo, hi);
    }
    *out = v.neg ? v.s : (int64_t)v.u;
    return 0;
}

/* str (bin == false) or bin: a header of 1, 2, 3 or 5 bytes, then the body. */
static inline int rd_bytes(rd_t *r, const fld_t *f, bool bin, proto_str_t *out)
{
    const char *want = bin ? "binary data" : "a string";
    if (r->p == r->end)
        return fail_trunc(r, f, want);
    uint8_t b = *r->p, first = bin ? 0xc4 : 0xd9;
    size_t avail = (size_t)(r->end - r->p), h = 1;
    uint64_t n;
    if (!bin && (b & 0xe0) == 0xa0) {
        n = b & 0x1f;
    } else if (b >= first && b <= first + 2) {
        h = (size_t)1 + (1u << (b - first));
        if (avail < h)
            return fail_trunc(r, f, want);
        n = load_be(r->p + 1, (unsigned)h - 1);
    } else {
        return fail_type(r, f, want);
    }
    if (n > avail - h)
        return fail_len(r, f, bin ? "bin" : "string", "bytes", n, avail - h);
    out->ptr = (const char *)r->p + h;
    out->len = (uint32_t)n;
    r->p += h + n;
    return 0;
}

/* Array or map header; a declared count the remaining bytes cannot hold
 * (every element takes at least one byte) is a truncated message. */
static inline int rd_cont(rd_t *r, const fld_t *f, bool map, uint32_t *out)
{
    const char *want = map ? "a map" : "an array";
    if (r->p == r->end)
        return fail_trunc(r, f, want);
    uint8_t b = *r->p, fix = map ? 0x80 : 0x90, b16 = map ? 0xde : 0xdc;
    size_t avail = (size_t)(r->end - r->p), h = 1;
    uint64_t n;
    if ((b & 0xf0) == fix) {
        n = b & 0x0f;
    } else if (b == b16 || b == b16 + 1) {
        h = b == b16 ? 3 : 5;
        if (avail < h)
            return fail_trunc(r, f, want);
        n = load_be(r->p + 1, (unsigned)h - 1);
    } else {
        return fail_type(r, f, want);
    }
    if (n * (map ? 2 : 1) > avail - h)
        return fail_len(r, f, map ? "map" : "array", map ? "entries" : "elements", n, avail - h);
    *out = (uint32_t)n;
    r->p += h;
    return 0;
}

#define rd_array(r, f, out) rd_cont((r), (f), false, (out))
#define rd_map(r, f, out)   rd_cont((r), (f), true, (out))

COLD static int fail_name(rd_t *r, const fld_t *f, int code, proto_str_t s, size_t at)
{
    const uint8_t *u = (const uint8_t *)s.ptr;
    char show[SHOW_MAX + 8], what[40];
    esc(show, sizeof show, s.ptr, s.len);
    if (code == TALLY_ETOOLONG)
        return fail(r->err, code, f, "name '%s' is %" PRIu32 " bytes, over the limit of %d bytes",
                    show, s.len, PROTO_NAME_MAX);
    if (code == TALLY_EUTF8)
        return fail(r->err, code, f, "name '%s' is not valid UTF-8 at byte %zu", show, at);
    if (s.len == 0)
        return fail(r->err, code, f, "name is empty (names are 1..%d bytes)", PROTO_NAME_MAX);
    if (u[at] == ' ')
        snprintf(what, sizeof what, "space");
    else if (u[at] == '/')
        snprintf(what, sizeof what, "'/'");
    else if (u[at] == 0x7f)
        snprintf(what, sizeof what, "DEL");
    else if (u[at] == 0xc2)
        snprintf(what, sizeof what, "C1 control U+%04X", u[at + 1]);
    else
        snprintf(what, sizeof what, "control character 0x%02x", u[at]);
    return fail(r->err, code, f, "name '%s' contains a forbidden character (%s) at byte %zu", show,
                what, at);
}

static inline int chk_name(rd_t *r, const fld_t *f, proto_str_t s)
{
    size_t at;
    int rc = proto_name_scan((const uint8_t *)s.ptr, s.len, &at);
    return rc == 0 ? 0 : fail_name(r, f, rc, s, at);
}

static inline int rd_name(rd_t *r, const fld_t *f, proto_str_t *out)
{
    TRY(rd_bytes(r, f, false, out));
    return chk_name(r, f, *out);
}

/* Free text or a column/key name: UTF-8 of min..max bytes. */
static int rd_text(rd_t *r, const fld_t *f, uint32_t min, uint32_t max, proto_str_t *out)
{
    TRY(rd_bytes(r, f, false, out));
    char show[SHOW_MAX + 8];
    if (out->len > max || out->len < min) {
        esc(show, sizeof show, out->ptr, out->len);
        return fail(r->err, out->len > max ? TALLY_ETOOLONG : TALLY_ERANGE, f,
                    "text '%s' is %" PRIu32 " bytes, outside the allowed %" PRIu32 "..%" PRIu32
                    " bytes",
                    show, out->len, min, max);
    }
    size_t at = utf8_scan(out->ptr, out->len);
    if (at != out->len) {
        esc(show, sizeof show, out->ptr, out->len);
        return fail(r->err, TALLY_EUTF8, f, "text '%s' is not valid UTF-8 at byte %zu", show, at);
    }
    return 0;
}

static inline bool is_nil(rd_t *r)
{
    if (r->p < r->end && *r->p == 0xc0) {
        r->p++;
        return true;
    }
    return false;
}

/* Map keys must be unique; n is small (at most PROTO_STATS_MAX). */
static int chk_dup(rd_t *r, const fld_t *f, const proto_str_t *keys, size_t stride, uint32_t n)
{
    const proto_str_t *k = (const proto_str_t *)((const char *)keys + stride * n);
    for (uint32_t j = 0; j < n; j++) {
        const proto_str_t *o = (const proto_str_t *)((const char *)keys + stride * j);
        if (o->len == k->len && memcmp(o->ptr, k->ptr, k->len) == 0) {
            char show[SHOW_MAX + 8];
            esc(show, sizeof show, k->ptr, k->len);
            return fail(r->err, TALLY_EMALFORMED, f, "key '%s' appears twice", show);
        }
    }
    return 0;
}

/* ---- message bodies ----------------------------------------------------- */

static int dec_submit(rd_t *r, proto_submit_t *s, proto_sample_t *samples, uint32_t cap)
{
    proto_str_t cid = {0};
    uint64_t seq = 0;
    uint32_t n = 0;
    TRY(rd_bytes(r, FLD("client_id"), true, &cid));
    if (cid.len != PROTO_CLIENT_ID_LEN)
        return fail(r->err, TALLY_ERANGE, FLD("client_id"),
                    "bin of %" PRIu32 " bytes, must be exactly %d bytes", cid.len,
                    PROTO_CLIENT_ID_LEN);
    memcpy(s->client_id, cid.ptr, PROTO_CLIENT_ID_LEN);
    TRY(rd_u64(r, FLD("seq"), 1, UINT64_MAX, &seq));
    s->seq = seq;
    TRY(rd_name(r, FLD("township"), &s->township));
    ival_t t = {0};
    TRY(rd_int(r, FLD("time_ms"), &t));
    if (t.neg || t.u < (uint64_t)PROTO_TIME_MIN || t.u >= (uint64_t)PROTO_TIME_MAX) {
        char vs[24];
        return fail(r->err, TALLY_ERANGE, FLD("time_ms"),
                    "%s is out of range (allowed %lld..%lld, 2000-01-01 to 2100-01-01 UTC)",
                    ival_str(&t, vs), PROTO_TIME_MIN, PROTO_TIME_MAX - 1);
    }
    s->time_ms = (int64_t)t.u;
    TRY(rd_array(r, FLD("samples"), &n));
    if (n == 0)
        return fail(r->err, TALLY_EEMPTY, FLD("samples"), "a submission needs at least 1 sample");
    if (n > cap)
        return fail(r->err, TALLY_ETOOMANY, FLD("samples"),
                    "%" PRIu32 " samples exceed the limit of %" PRIu32, n, cap);
    s->samples = samples;
    for (uint32_t i = 0; i < n; i++) {
        fld_t f = {"", (int32_t)i, -1, NULL, 0};
        uint32_t m = 2;
        if (r->p < r->end && *r->p == 0x92) /* the usual case, fixarray of 2 */
            r->p++;
        else
            TRY(rd_array(r, &f, &m));
        if (m != 2)
            return fail(r->err, TALLY_EMALFORMED, &f,
                        "sample is an array of %" PRIu32 " elements, expected 2 [metric, value]",
                        m);
        f.name = "metric";
        TRY(rd_name(r, &f, &samples[i].metric));
        f.name = "value";
        TRY(rd_i64(r, &f, INT64_MIN, INT64_MAX, &samples[i].value));
    }
    s->nsamples = n;
    return 0;
}

static int dec_values(rd_t *r, proto_tally_t *t)
{
    uint32_t n = 0;
    t->nvalues = 0;
    TRY(rd_map(r, FLD("values"), &n));
    if (n > PROTO_COLUMNS_MAX)
        return fail(r->err, TALLY_ETOOMANY, FLD("values"),
                    "%" PRIu32 " columns exceed the limit of %d", n, PROTO_COLUMNS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        proto_value_t *v = &t->values[i];
        TRY(rd_text(r, FLD("values"), 1, PROTO_COLUMN_NAME_MAX, &v->name));
        TRY(chk_dup(r, FLD("values"), &t->values[0].name, sizeof *v, i));
        fld_t f = {"values", -1, -1, v->name.ptr, v->name.len};
        v->num = 0, v->den = 0;
        v->present = !is_nil(r);
        if (!v->present)
            continue;
        if (t->kind != PROTO_KIND_RATIO) {
            TRY(rd_i64(r, &f, INT64_MIN, INT64_MAX, &v->num));
            v->den = 1;
            continue;
        }
        uint32_t m = 0;
        TRY(rd_array(r, &f, &m));
        if (m != 2)
            return fail(r->err, TALLY_EMALFORMED, &f,
                        "ratio is an array of %" PRIu32 " elements, expected 2 [num, den]", m);
        TRY(rd_i64(r, &f, INT64_MIN, INT64_MAX, &v->num));
        TRY(rd_i64(r, &f, INT64_MIN, INT64_MAX, &v->den));
        if (v->den == 0)
            return fail(r->err, TALLY_ERANGE, &f,
                        "ratio %" PRId64 "/0 has a zero denominator (send nil instead)", v->num);
    }
    t->nvalues = n;
    return 0;
}

static int dec_tally(rd_t *r, proto_tally_t *t)
{
    uint32_t n = 0;
    uint64_t kind = 0;
    TRY(rd_array(r, FLD("tally"), &n));
    if (n != PROTO_TALLY_ELEMS)
        return fail(r->err, TALLY_EMALFORMED, FLD("tally"),
                    "array of %" PRIu32 " elements, expected %d", n, PROTO_TALLY_ELEMS);
    TRY(rd_name(r, FLD("metric"), &t->metric));
    TRY(rd_bytes(r, FLD("scope"), false, &t->scope));
    if (t->scope.len > 0)
        TRY(chk_name(r, FLD("scope"), t->scope));
    TRY(rd_u64(r, FLD("kind"), 0, PROTO_KIND_RATIO, &kind));
    t->kind = (uint8_t)kind;
    TRY(rd_u64(r, FLD("seq"), 0, UINT64_MAX, &t->seq));
    TRY(rd_i64(r, FLD("time_ms"), INT64_MIN, INT64_MAX, &t->time_ms));
    return dec_values(r, t);
}

static int dec_ack(rd_t *r, proto_ack_t *a)
{
    uint64_t status = 0, code = 0;
    int64_t sample = 0;
    TRY(rd_u64(r, FLD("seq"), 1, UINT64_MAX, &a->seq));
    TRY(rd_u64(r, FLD("status"), 0, PROTO_ACK_REJECTED, &status));
    a->status = (uint8_t)status;
    TRY(rd_u64(r, FLD("code"), 0, PROTO_CODE_MAX, &code));
    if ((status == PROTO_ACK_REJECTED) != (code != 0))
        return fail(r->err, TALLY_ERANGE, FLD("code"),
                    "code %" PRIu64 " with status %" PRIu64
                    " (the code is non-zero exactly when status is 2, rejected)",
                    code, status);
    a->code = (uint32_t)code;
    TRY(rd_i64(r, FLD("sample"), -1, PROTO_ACK_SAMPLE_MAX, &sample));
    a->sample = (int32_t)sample;
    TRY(rd_text(r, FLD("field"), 0, PROTO_FIELD_MAX, &a->field));
    return rd_text(r, FLD("message"), 0, PROTO_MESSAGE_MAX, &a->message);
}

static int dec_welcome(rd_t *r, proto_msg_t *m)
{
    __typeof__(m->u.welcome) *w = &m->u.welcome;
    static const char *const keys[] = {"max_samples", "max_name",   "max_msg",
                                       "skew_ms",     "max_age_ms", "client_expiry_ms"};
    int64_t *dst[] = {&w->max_samples, &w->max_name,   &w->max_msg,
                      &w->skew_ms,     &w->max_age_ms, &w->client_expiry_ms};
    proto_str_t seen[PROTO_LIMITS_MAX];
    uint32_t n = 0;
    TRY(rd_text(r, FLD("server"), 0, PROTO_TEXT_MAX, &w->server));
    TRY(rd_text(r, FLD("pub_endpoint"), 0, PROTO_ENDPOINT_MAX, &w->pub_endpoint));
    TRY(rd_u64(r, FLD("stream_id"), 0, UINT64_MAX, &w->stream_id));
    TRY(rd_u64(r, FLD("seq"), 0, UINT64_MAX, &w->seq));
    TRY(rd_array(r, FLD("columns"), &n));
    if (n == 0 || n > PROTO_COLUMNS_MAX)
        return fail(r->err, n ? TALLY_ETOOMANY : TALLY_ERANGE, FLD("columns"),
                    "%" PRIu32 " columns, allowed 1..%d", n, PROTO_COLUMNS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        fld_t f = {"columns", -1, (int32_t)i, NULL, 0};
        TRY(rd_text(r, &f, 1, PROTO_COLUMN_NAME_MAX, &w->columns[i]));
    }
    w->ncolumns = n;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        *dst[k] = -1;
    TRY(rd_map(r, FLD("limits"), &n));
    if (n > PROTO_LIMITS_MAX)
        return fail(r->err, TALLY_ETOOMANY, FLD("limits"),
                    "%" PRIu32 " entries exceed the limit of %d", n, PROTO_LIMITS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        int64_t val = 0;
        TRY(rd_text(r, FLD("limits"), 0, UINT32_MAX, &seen[i]));
        TRY(chk_dup(r, FLD("limits"), seen, sizeof seen[0], i));
        fld_t f = {"limits", -1, -1, seen[i].ptr, seen[i].len};
        TRY(rd_i64(r, &f, INT64_MIN, INT64_MAX, &val));
        /* Unknown keys are skipped so a newer daemon can add limits. */
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (proto_str_eq(seen[i], keys[k]))
                *dst[k] = val < 0 ? -1 : val; /* negative means "not sent" */
    }
    return 0;
}

static int dec_stats(rd_t *r, proto_msg_t *m)
{
    uint32_t n = 0;
    m->u.stats.n = 0;
    TRY(rd_map(r, FLD("counters"), &n));
    if (n > PROTO_STATS_MAX)
        return fail(r->err, TALLY_ETOOMANY, FLD("counters"),
                    "%" PRIu32 " entries exceed the limit of %d", n, PROTO_STATS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        proto_stat_t *e = &m->u.stats.entries[i];
        TRY(rd_text(r, FLD("counters"), 1, PROTO_STAT_NAME_MAX, &e->name));
        TRY(chk_dup(r, FLD("counters"), &m->u.stats.entries[0].name, sizeof *e, i));
        fld_t f = {"counters", -1, -1, e->name.ptr, e->name.len};
        TRY(rd_i64(r, &f, INT64_MIN, INT64_MAX, &e->value));
    }
    m->u.stats.n = n;
    return 0;
}

/* ---- the catalog (PROTOCOL.md 8.17) -------------------------------------- */

static int dec_township(rd_t *r, uint32_t i, proto_township_t *t)
{
    fld_t f = {"townships", -1, (int32_t)i, NULL, 0};
    uint32_t n = 0;
    uint64_t type = 0;
    TRY(rd_array(r, &f, &n));
    if (n != 3)
        return fail(r->err, TALLY_EMALFORMED, &f,
                    "a township is an array of %" PRIu32 " elements, expected 3 [id, name, type]",
                    n);
    TRY(rd_name(r, &f, &t->id));
    TRY(rd_text(r, &f, 0, PROTO_TOWNSHIP_NAME_MAX, &t->name));
    TRY(rd_u64(r, &f, 0, PROTO_TOWNSHIP_TYPE_MAX, &type));
    t->type = (uint8_t)type;
    return 0;
}

/* A ratio's operands are names; anything else has none. */
static int rd_operand(rd_t *r, const fld_t *f, uint8_t kind, proto_str_t *out)
{
    if (kind == PROTO_KIND_RATIO)
        return rd_name(r, f, out);
    TRY(rd_bytes(r, f, false, out));
    if (out->len != 0)
        return fail(r->err, TALLY_ERANGE, f,
                    "a counter or gauge has no operands, got a string of %" PRIu32 " bytes",
                    out->len);
    return 0;
}

static int dec_metric(rd_t *r, uint32_t i, proto_metric_info_t *e)
{
    fld_t f = {"metrics", -1, (int32_t)i, NULL, 0};
    uint32_t n = 0;
    uint64_t kind = 0, scale = 0;
    TRY(rd_array(r, &f, &n));
    if (n != 7)
        return fail(r->err, TALLY_EMALFORMED, &f,
                    "a metric is an array of %" PRIu32
                    " elements, expected 7 [id, kind, unit, scale, label, numerator, denominator]",
                    n);
    TRY(rd_name(r, &f, &e->id));
    TRY(rd_u64(r, &f, 0, PROTO_KIND_RATIO, &kind));
    e->kind = (uint8_t)kind;
    TRY(rd_text(r, &f, 0, PROTO_UNIT_MAX, &e->unit));
    TRY(rd_u64(r, &f, 0, PROTO_SCALE_MAX, &scale));
    e->scale = (uint8_t)scale;
    TRY(rd_text(r, &f, 0, PROTO_LABEL_MAX, &e->label));
    TRY(rd_operand(r, &f, e->kind, &e->numerator));
    return rd_operand(r, &f, e->kind, &e->denominator);
}

/* One of the two lists: its header, checked against its total. */
static int rd_list(rd_t *r, const char *name, uint32_t total, uint32_t *n)
{
    TRY(rd_array(r, FLD(name), n));
    if (*n > total)
        return fail(r->err, TALLY_ERANGE, FLD(name),
                    "%" PRIu32 " entries, more than the %" PRIu32 " the catalog holds", *n, total);
    return 0;
}

/* Every entry is checked here, so that the iterators below can read them
 * again without failing. */
static int dec_catalog(rd_t *r, proto_msg_t *m)
{
    __typeof__(m->u.catalog) *c = &m->u.catalog;
    uint64_t u = 0;
    uint32_t n = 0;
    proto_township_t t;
    proto_metric_info_t e;
    c->townships = NULL, c->metrics = NULL;
    TRY(rd_u64(r, FLD("catalog_id"), 0, UINT64_MAX, &c->catalog_id));
    TRY(rd_u64(r, FLD("townships_total"), 0, UINT32_MAX, &u));
    c->townships_total = (uint32_t)u;
    TRY(rd_u64(r, FLD("metrics_total"), 0, UINT32_MAX, &u));
    c->metrics_total = (uint32_t)u;
    c->entries = r->p;
    TRY(rd_list(r, "townships", c->townships_total, &n));
    for (uint32_t i = 0; i < n; i++)
        TRY(dec_township(r, i, &t));
    c->ntownships = n;
    TRY(rd_list(r, "metrics", c->metrics_total, &n));
    for (uint32_t i = 0; i < n; i++)
        TRY(dec_metric(r, i, &e));
    c->nmetrics = n;
    c->end = r->p;
    return 0;
}

void proto_catalog_iter(proto_catalog_iter_t *it, const proto_msg_t *msg)
{
    assert(msg->type == PROTO_CATALOG);
    it->p = msg->u.catalog.entries;
    it->end = msg->u.catalog.end;
    it->townships_left = msg->u.catalog.ntownships;
    it->metrics_left = msg->u.catalog.nmetrics;
    it->in_metrics = false;
    rd_t r = {it->p, it->p, it->end, NULL};
    uint32_t n = 0;
    if (rd_array(&r, FLD("townships"), &n) != 0)
        it->townships_left = it->metrics_left = 0; /* not a decoded CATALOG */
    it->p = r.p;
}

bool proto_catalog_next_township(proto_catalog_iter_t *it, proto_township_t *out)
{
    if (it->in_metrics || it->townships_left == 0)
        return false;
    rd_t r = {it->p, it->p, it->end, NULL};
    if (dec_township(&r, 0, out) != 0)
        return it->townships_left = it->metrics_left = 0, false;
    it->p = r.p;
    it->townships_left--;
    return true;
}

bool proto_catalog_next_metric(proto_catalog_iter_t *it, proto_metric_info_t *out)
{
    proto_township_t t;
    while (proto_catalog_next_township(it, &t))
        ;
    rd_t r = {it->p, it->p, it->end, NULL};
    if (!it->in_metrics) {
        uint32_t n = 0;
        if (rd_array(&r, FLD("metrics"), &n) != 0)
            return it->metrics_left = 0, false;
        it->in_metrics = true;
    }
    if (it->metrics_left == 0 || dec_metric(&r, 0, out) != 0)
        return it->metrics_left = 0, false;
    it->p = r.p;
    it->metrics_left--;
    return true;
}

static int rd_period_text(rd_t *r, const char *name, proto_str_t *out)
{
    return rd_text(r, FLD(name), 1, PROTO_PERIOD_TEXT_MAX, out);
}

static int rd_scope(rd_t *r, proto_str_t *out)
{
    TRY(rd_bytes(r, FLD("scope"), false, out));
    return out->len > 0 ? chk_name(r, FLD("scope"), *out) : 0;
}

static int dec_period(rd_t *r, proto_msg_t *m)
{
    uint64_t u = 0;
    TRY(rd_u64(r, FLD("index"), 0, UINT32_MAX, &u));
    m->u.period.index = (uint32_t)u;
    TRY(rd_u64(r, FLD("count"), 0, UINT32_MAX, &u));
    m->u.period.count = (uint32_t)u;
    if (m->u.period.count == 0 && m->u.period.index != 0)
        return fail(r->err, TALLY_ERANGE, FLD("index"),
                    "%" PRIu32 " in an answer of no items (it must be 0)", m->u.period.index);
    if (m->u.period.count > 0 && m->u.period.index >= m->u.period.count)
        return fail(r->err, TALLY_ERANGE, FLD("index"),
                    "item %" PRIu32 " of an answer of %" PRIu32 " items", m->u.period.index,
                    m->u.period.count);
    m->u.period.has_tally = !is_nil(r);
    if (m->u.period.has_tally != (m->u.period.count > 0))
        return fail(r->err, TALLY_EMALFORMED, FLD("tally"),
                    "a tally must be nil exactly when count is 0 (count %" PRIu32 ")",
                    m->u.period.count);
    return m->u.period.has_tally ? dec_tally(r, &m->u.period.tally) : 0;
}

static int dec_range(rd_t *r, proto_msg_t *m)
{
    __typeof__(m->u.range) *g = &m->u.range;
    uint64_t u = 0;
    uint32_t n = 0;
    TRY(rd_name(r, FLD("metric"), &g->metric));
    TRY(rd_scope(r, &g->scope));
    TRY(rd_u64(r, FLD("kind"), 0, PROTO_KIND_RATIO, &u));
    g->kind = (uint8_t)u;
    TRY(rd_u64(r, FLD("first"), 0, UINT32_MAX, &u));
    g->first = (uint32_t)u;
    TRY(rd_u64(r, FLD("total"), 1, UINT32_MAX, &u));
    g->total = (uint32_t)u;
    TRY(rd_array(r, FLD("points"), &n));
    if (n > PROTO_RANGE_CHUNK || g->first >= g->total || n > g->total - g->first)
        return fail(r->err, TALLY_ERANGE, FLD("points"),
                    "%" PRIu32 " points from index %" PRIu32 " of %" PRIu32
                    " (at most %d per message, within the total)",
                    n, g->first, g->total, PROTO_RANGE_CHUNK);
    g->npoints = 0;
    for (uint32_t i = 0; i < n; i++) {
        fld_t f = {"points", -1, (int32_t)i, NULL, 0};
        proto_value_t *v = &g->points[i];
        uint32_t two = 0;
        TRY(rd_array(r, &f, &two));
        if (two != 2)
            return fail(r->err, TALLY_EMALFORMED, &f,
                        "point is an array of %" PRIu32 " elements, expected 2 [period, value]",
                        two);
        TRY(rd_text(r, &f, 1, PROTO_PERIOD_TEXT_MAX, &v->name));
        v->num = 0, v->den = 1;
        v->present = !is_nil(r);
        if (!v->present)
            continue;
        if (g->kind != PROTO_KIND_RATIO) {
            TRY(rd_i64(r, &f, INT64_MIN, INT64_MAX, &v->num));
            continue;
        }
        TRY(rd_array(r, &f, &two));
        if (two != 2)
            return fail(r->err, TALLY_EMALFORMED, &f,
                        "ratio is an array of %" PRIu32 " elements, expected 2 [num, den]", two);
        TRY(rd_i64(r, &f, INT64_MIN, INT64_MAX, &v->num));
        TRY(rd_i64(r, &f, INT64_MIN, INT64_MAX, &v->den));
        if (v->den == 0)
            return fail(r->err, TALLY_ERANGE, &f,
                        "ratio %" PRId64 "/0 has a zero denominator (send nil instead)", v->num);
    }
    g->npoints = n;
    return 0;
}

static int dec_changed(rd_t *r, proto_msg_t *m)
{
    __typeof__(m->u.period_changed) *c = &m->u.period_changed;
    uint32_t n = 0;
    TRY(rd_u64(r, FLD("seq"), 0, UINT64_MAX, &c->seq));
    TRY(rd_name(r, FLD("metric"), &c->metric));
    TRY(rd_scope(r, &c->scope));
    TRY(rd_array(r, FLD("periods"), &n));
    if (n < 1 || n > PROTO_CHANGED_MAX)
        return fail(r->err, n ? TALLY_ETOOMANY : TALLY_ERANGE, FLD("periods"),
                    "%" PRIu32 " periods, allowed 1..%d", n, PROTO_CHANGED_MAX);
    for (uint32_t i = 0; i < n; i++) {
        fld_t f = {"periods", -1, (int32_t)i, NULL, 0};
        TRY(rd_text(r, &f, 1, PROTO_PERIOD_TEXT_MAX, &c->periods[i]));
    }
    c->nperiods = n;
    return 0;
}

/* Every request and reply but SUBMIT/ACK starts with req_id or stream_id at
 * offset 0 of its struct, which the union lets us fill in one place. */
static int dec_body(rd_t *r, proto_msg_t *m, proto_sample_t *samples, uint32_t cap)
{
    uint64_t u = 0;
    if (m->type == PROTO_SUBMIT)
        return dec_submit(r, &m->u.submit, samples, cap);
    if (m->type == PROTO_ACK)
        return dec_ack(r, &m->u.ack);
    bool stream = m->type == PROTO_UPDATE || m->type == PROTO_HEARTBEAT ||
                  m->type == PROTO_GOODBYE || m->type == PROTO_PERIOD_CHANGED;
    TRY(rd_u64(r, FLD(stream ? "stream_id" : "req_id"), 0, UINT64_MAX, &m->u.stats_req.req_id));
    switch (m->type) {
    case PROTO_SNAPSHOT_REQ:
        return rd_text(r, FLD("prefix"), 0, PROTO_PREFIX_MAX, &m->u.snapshot_req.prefix);
    case PROTO_SNAPSHOT_ITEM:
        return dec_tally(r, &m->u.snapshot_item.tally);
    case PROTO_SNAPSHOT_END:
        TRY(rd_u64(r, FLD("stream_id"), 0, UINT64_MAX, &m->u.snapshot_end.stream_id));
        TRY(rd_u64(r, FLD("seq"), 0, UINT64_MAX, &m->u.snapshot_end.seq));
        TRY(rd_u64(r, FLD("count"), 0, UINT32_MAX, &u));
        m->u.snapshot_end.count = (uint32_t)u;
        return 0;
    case PROTO_UPDATE:
        return dec_tally(r, &m->u.update.tally);
    case PROTO_HEARTBEAT:
        TRY(rd_u64(r, FLD("seq"), 0, UINT64_MAX, &m->u.heartbeat.seq));
        return rd_i64(r, FLD("time_ms"), INT64_MIN, INT64_MAX, &m->u.heartbeat.time_ms);
    case PROTO_HELLO:
        return rd_text(r, FLD("client"), 0, PROTO_TEXT_MAX, &m->u.hello.client);
    case PROTO_WELCOME:
        return dec_welcome(r, m);
    case PROTO_STATS:
        return dec_stats(r, m);
    case PROTO_PING:
        return rd_i64(r, FLD("time_ms"), INT64_MIN, INT64_MAX, &m->u.ping.time_ms);
    case PROTO_PONG:
        TRY(rd_i64(r, FLD("time_ms"), INT64_MIN, INT64_MAX, &m->u.pong.time_ms));
        return rd_u64(r, FLD("seq"), 0, UINT64_MAX, &m->u.pong.seq);
    case PROTO_ERROR:
        TRY(rd_u64(r, FLD("code"), 1, PROTO_CODE_MAX, &u));
        m->u.error.code = (uint32_t)u;
        TRY(rd_text(r, FLD("field"), 0, PROTO_FIELD_MAX, &m->u.error.field));
        return rd_text(r, FLD("message"), 0, PROTO_MESSAGE_MAX, &m->u.error.message);
    case PROTO_GOODBYE:
        return rd_u64(r, FLD("seq"), 0, UINT64_MAX, &m->u.goodbye.seq);
    case PROTO_CATALOG_REQ:
        TRY(rd_u64(r, FLD("townships_from"), 0, UINT32_MAX, &u));
        m->u.catalog_req.townships_from = (uint32_t)u;
        TRY(rd_u64(r, FLD("metrics_from"), 0, UINT32_MAX, &u));
        m->u.catalog_req.metrics_from = (uint32_t)u;
        return 0;
    case PROTO_CATALOG:
        return dec_catalog(r, m);
    case PROTO_PERIOD_REQ:
        TRY(rd_text(r, FLD("prefix"), 0, PROTO_PREFIX_MAX, &m->u.period_req.prefix));
        return rd_period_text(r, "period", &m->u.period_req.period);
    case PROTO_SPAN_REQ:
        TRY(rd_text(r, FLD("prefix"), 0, PROTO_PREFIX_MAX, &m->u.span_req.prefix));
        TRY(rd_period_text(r, "from", &m->u.span_req.from));
        return rd_period_text(r, "to", &m->u.span_req.to);
    case PROTO_PERIOD:
        return dec_period(r, m);
    case PROTO_RANGE_REQ:
        TRY(rd_name(r, FLD("metric"), &m->u.range_req.metric));
        TRY(rd_scope(r, &m->u.range_req.scope));
        TRY(rd_period_text(r, "by", &m->u.range_req.by));
        TRY(rd_period_text(r, "from", &m->u.range_req.from));
        return rd_period_text(r, "to", &m->u.range_req.to);
    case PROTO_RANGE:
        return dec_range(r, m);
    case PROTO_PERIOD_CHANGED:
        return dec_changed(r, m);
    case PROTO_CLOCK: {
        int64_t off = 0;
        TRY(rd_i64(r, FLD("now_ms"), INT64_MIN, INT64_MAX, &m->u.clock.now_ms));
        TRY(rd_text(r, FLD("zone"), 1, PROTO_ZONE_MAX, &m->u.clock.zone));
        TRY(rd_i64(r, FLD("utc_offset_s"), -PROTO_UTC_OFFSET_MAX, PROTO_UTC_OFFSET_MAX, &off));
        m->u.clock.utc_offset_s = (int32_t)off;
        return 0;
    }
    default: /* STATS_REQ and CLOCK_REQ have nothing after req_id */
        return 0;
    }
}

int proto_decode(const void *buf, size_t len, proto_msg_t *msg, proto_sample_t *samples,
                 uint32_t samples_cap, proto_error_t *err)
{
    static const uint8_t none[1];
    assert(msg != NULL);
    const uint8_t *p = buf != NULL ? buf : none;
    rd_t r = {p, p, p + (buf != NULL ? len : 0), err};
    ival_t v = {0};
    uint32_t n = 0;
    char vs[24];

    /* Zero what the caller may read after a failure (type, submit.seq and
     * the leading req_id), not the whole union: a STATS body is 6 KiB. */
    msg->version = 0;
    msg->type = 0;
    memset(&msg->u, 0, sizeof msg->u.submit);
    if (samples == NULL || samples_cap > PROTO_SAMPLES_MAX)
        samples_cap = samples == NULL ? 0 : PROTO_SAMPLES_MAX;

    if (r.p < r.end && (*r.p & 0xf0) != 0x90 && *r.p != 0xdc && *r.p != 0xdd)
        return fail(err, TALLY_EMALFORMED, FLD("body"), "a message is a MessagePack array, got %s",
                    mp_type_name(*r.p));
    TRY(rd_array(&r, FLD("body"), &n));
    if (n < 2)
        return fail(err, TALLY_EMALFORMED, FLD("body"),
                    "array of %" PRIu32 " elements, a message starts with [version, type]", n);
    TRY(rd_int(&r, FLD("version"), &v));
    if (v.neg || v.u != PROTO_VERSION) {
        msg->version = !v.neg && v.u <= UINT32_MAX ? (uint32_t)v.u : 0;
        return fail(err, TALLY_EVERSION, FLD("version"),
                    "%s is not supported, this codec speaks version %d", ival_str(&v, vs),
                    PROTO_VERSION);
    }
    msg->version = PROTO_VERSION;
    TRY(rd_int(&r, FLD("type"), &v));
    if (v.neg || v.u < PROTO_SUBMIT || v.u > PROTO_TYPE_LAST)
        return fail(err, TALLY_ETYPE, FLD("type"), "%s is not a known message type (%d..%d)",
                    ival_str(&v, vs), PROTO_SUBMIT, PROTO_TYPE_LAST);
    msg->type = (uint32_t)v.u;
    if (n != proto_msg_elems[msg->type])
        return fail(err, TALLY_EMALFORMED, FLD(msg_names[msg->type]),
                    "%s is an array of %" PRIu32 " elements, expected %d", msg_names[msg->type], n,
                    proto_msg_elems[msg->type]);
    TRY(dec_body(&r, msg, samples, samples_cap));
    if (r.p != r.end)
        return fail(err, TALLY_ETRAILING, FLD("body"), "%td bytes follow the end of the %s message",
                    r.end - r.p, msg_names[msg->type]);
    return 0;
}
