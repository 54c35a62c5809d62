/* proto_reader.h - the decoder's cursor over MessagePack bytes; private
 * to proto/ (proto_decode.c, proto_decode_reads.c, proto_reader.c).
 *
 * A reader takes one value of the field it is told, checks its type and
 * range and moves on; on a mismatch it fills the caller's proto_error_t
 * with the field's path and a sentence quoting the value, and returns the
 * TALLY_E* code.  The readers a SUBMIT goes through are inline here; the
 * error reports and the rarer readers live in proto_reader.c. */
#ifndef TALLY_PROTO_READER_H
#define TALLY_PROTO_READER_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto.h"
#include "proto_internal.h"

#define SHOW_MAX 48 /* bytes of an offending value quoted in a message */

/* Failure paths are rare; keep them out of the decoder's hot code. */
#define COLD __attribute__((cold, noinline))

/* Where a value sits: "name", "samples[3].name", "name[2]" or "name.key". */
typedef struct fld {
    const char *name;
    int32_t sample; /* >= 0: the field is inside samples[sample] */
    int32_t idx;    /* >= 0: element idx of an array field */
    const char *key;
    uint32_t keylen;
} fld_t;

#define FLD(n) (&(const fld_t){(n), -1, -1, NULL, 0})

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

/* ---- proto_reader.c: error reports and the rarer readers ---- */

/* Fill err (when not NULL) with code, f's path and the sentence; returns
 * code. */
COLD __attribute__((format(printf, 4, 5))) int proto_rd_fail(proto_error_t *err, int code,
                                                             const fld_t *f, const char *fmt, ...);
/* "an integer", "a map", ... for the MessagePack type byte b. */
const char *proto_rd_type_name(uint8_t b);
/* The value at r->p is not of the type want names (or not MessagePack). */
COLD int proto_rd_fail_type(rd_t *r, const fld_t *f, const char *want);
/* The message ends inside what. */
COLD int proto_rd_fail_trunc(rd_t *r, const fld_t *f, const char *what);
/* A declared length of n units that the avail bytes left cannot hold. */
COLD int proto_rd_fail_len(rd_t *r, const fld_t *f, const char *what, const char *unit, uint64_t n,
                           size_t avail);
/* v is outside lo..hi. */
COLD int proto_rd_fail_range(rd_t *r, const fld_t *f, const ival_t *v, const char *lo,
                             const char *hi);
/* Name s broke proto_name_scan()'s rule code at byte at. */
COLD int proto_rd_fail_name(rd_t *r, const fld_t *f, int code, proto_str_t s, size_t at);
/* v in decimal, into buf. */
const char *proto_rd_ival_str(const ival_t *v, char buf[24]);
/* Free text or a column/key name: UTF-8 of min..max bytes. */
int proto_rd_text(rd_t *r, const fld_t *f, uint32_t min, uint32_t max, proto_str_t *out);
/* Map keys must be unique: is the n-th key (keys are stride bytes apart)
 * one of the n before it?  n is small (at most PROTO_STATS_MAX). */
int proto_rd_chk_dup(rd_t *r, const fld_t *f, const proto_str_t *keys, size_t stride, uint32_t n);

/* ---- inline readers ---- */

static inline uint64_t load_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static inline int rd_int(rd_t *r, const fld_t *f, ival_t *v)
{
    if (r->p == r->end)
        return proto_rd_fail_trunc(r, f, "an integer");
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
        return proto_rd_fail_type(r, f, "an integer");
    unsigned n = 1u << ((b - 0xcc) & 3);
    if ((size_t)(r->end - r->p) <= n)
        return proto_rd_fail_trunc(r, f, "an integer");
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

static inline int rd_u64(rd_t *r, const fld_t *f, uint64_t min, uint64_t max, uint64_t *out)
{
    ival_t v = {0};
    TRY(rd_int(r, f, &v));
    if (v.neg || v.u < min || v.u > max) {
        char lo[24], hi[24];
        snprintf(lo, sizeof lo, "%" PRIu64, min);
        snprintf(hi, sizeof hi, "%" PRIu64, max);
        return proto_rd_fail_range(r, f, &v, lo, hi);
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
        return proto_rd_fail_range(r, f, &v, lo, hi);
    }
    *out = v.neg ? v.s : (int64_t)v.u;
    return 0;
}

/* str (bin == false) or bin: a header of 1, 2, 3 or 5 bytes, then the body. */
static inline int rd_bytes(rd_t *r, const fld_t *f, bool bin, proto_str_t *out)
{
    const char *want = bin ? "binary data" : "a string";
    if (r->p == r->end)
        return proto_rd_fail_trunc(r, f, want);
    uint8_t b = *r->p, first = bin ? 0xc4 : 0xd9;
    size_t avail = (size_t)(r->end - r->p), h = 1;
    uint64_t n;
    if (!bin && (b & 0xe0) == 0xa0) {
        n = b & 0x1f;
    } else if (b >= first && b <= first + 2) {
        h = (size_t)1 + (1u << (b - first));
        if (avail < h)
            return proto_rd_fail_trunc(r, f, want);
        n = load_be(r->p + 1, (unsigned)h - 1);
    } else {
        return proto_rd_fail_type(r, f, want);
    }
    if (n > avail - h)
        return proto_rd_fail_len(r, f, bin ? "bin" : "string", "bytes", n, avail - h);
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
        return proto_rd_fail_trunc(r, f, want);
    uint8_t b = *r->p, fix = map ? 0x80 : 0x90, b16 = map ? 0xde : 0xdc;
    size_t avail = (size_t)(r->end - r->p), h = 1;
    uint64_t n;
    if ((b & 0xf0) == fix) {
        n = b & 0x0f;
    } else if (b == b16 || b == b16 + 1) {
        h = b == b16 ? 3 : 5;
        if (avail < h)
            return proto_rd_fail_trunc(r, f, want);
        n = load_be(r->p + 1, (unsigned)h - 1);
    } else {
        return proto_rd_fail_type(r, f, want);
    }
    if (n * (map ? 2 : 1) > avail - h)
        return proto_rd_fail_len(r, f, map ? "map" : "array", map ? "entries" : "elements", n,
                                 avail - h);
    *out = (uint32_t)n;
    r->p += h;
    return 0;
}

#define rd_array(r, f, out) rd_cont((r), (f), false, (out))
#define rd_map(r, f, out)   rd_cont((r), (f), true, (out))

static inline int chk_name(rd_t *r, const fld_t *f, proto_str_t s)
{
    size_t at;
    int rc = proto_name_scan((const uint8_t *)s.ptr, s.len, &at);
    return rc == 0 ? 0 : proto_rd_fail_name(r, f, rc, s, at);
}

static inline int rd_name(rd_t *r, const fld_t *f, proto_str_t *out)
{
    TRY(rd_bytes(r, f, false, out));
    return chk_name(r, f, *out);
}

static inline bool is_nil(rd_t *r)
{
    if (r->p < r->end && *r->p == 0xc0) {
        r->p++;
        return true;
    }
    return false;
}

/* A value that is there (not nil): an integer, or for a ratio [num, den]
 * with den != 0 (v->den 1 for the others). */
static inline int rd_value(rd_t *r, const fld_t *f, uint8_t kind, proto_value_t *v)
{
    v->den = 1;
    if (kind != PROTO_KIND_RATIO)
        return rd_i64(r, f, INT64_MIN, INT64_MAX, &v->num);
    uint32_t two = 0;
    TRY(rd_array(r, f, &two));
    if (two != 2)
        return proto_rd_fail(r->err, TALLY_EMALFORMED, f,
                             "ratio is an array of %" PRIu32 " elements, expected 2 [num, den]",
                             two);
    TRY(rd_i64(r, f, INT64_MIN, INT64_MAX, &v->num));
    TRY(rd_i64(r, f, INT64_MIN, INT64_MAX, &v->den));
    if (v->den == 0)
        return proto_rd_fail(r->err, TALLY_ERANGE, f,
                             "ratio %" PRId64 "/0 has a zero denominator (send nil instead)",
                             v->num);
    return 0;
}

static inline int rd_period_text(rd_t *r, const char *name, proto_str_t *out)
{
    return proto_rd_text(r, FLD(name), 1, PROTO_PERIOD_TEXT_MAX, out);
}

static inline int rd_scope(rd_t *r, proto_str_t *out)
{
    TRY(rd_bytes(r, FLD("scope"), false, out));
    return out->len > 0 ? chk_name(r, FLD("scope"), *out) : 0;
}

/* ---- proto_decode_reads.c: the catalog, the closed periods, the backups ---- */

int proto_dec_catalog(rd_t *r, proto_msg_t *m);     /* CATALOG, PROTOCOL.md 8.17 */
int proto_dec_townships(rd_t *r, proto_msg_t *m);   /* TOWNSHIPS, PROTOCOL.md 8.25 */
int proto_dec_backup_list(rd_t *r, proto_msg_t *m); /* BACKUP_LIST, PROTOCOL.md 8.28 */
int proto_dec_range(rd_t *r, proto_msg_t *m);       /* RANGE */
int proto_dec_changed(rd_t *r, proto_msg_t *m);     /* PERIOD_CHANGED */

#endif
