/* proto_reader.c - the decoder's cursor (proto_reader.h): its error
 * reports, which name the field and quote the offending value, and the
 * readers that are not on the hot path (free text, duplicate keys).
 * Everything here runs once per message at most or only on a failure. */
#include "proto_reader.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "text.h"
#include "utf8.h"

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

int proto_rd_fail(proto_error_t *err, int code, const fld_t *f, const char *fmt, ...)
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

const char *proto_rd_type_name(uint8_t b)
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
    if (b == 0xc1)
        return "byte 0xc1, which is not MessagePack";
    return "an extension value";
}

int proto_rd_fail_type(rd_t *r, const fld_t *f, const char *want)
{
    if (*r->p == 0xc1)
        return proto_rd_fail(r->err, TALLY_EMALFORMED, f,
                             "byte 0xc1 at offset %td is not MessagePack", r->p - r->start);
    return proto_rd_fail(r->err, TALLY_EBADTYPE, f, "expected %s, got %s", want,
                         proto_rd_type_name(*r->p));
}

int proto_rd_fail_trunc(rd_t *r, const fld_t *f, const char *what)
{
    return proto_rd_fail(r->err, TALLY_EMALFORMED, f, "the message ends inside %s (truncated)",
                         what);
}

int proto_rd_fail_len(rd_t *r, const fld_t *f, const char *what, const char *unit, uint64_t n,
                      size_t avail)
{
    return proto_rd_fail(r->err, TALLY_EMALFORMED, f,
                         "%s of %" PRIu64 " %s declared but only %zu bytes remain (truncated)",
                         what, n, unit, avail);
}

const char *proto_rd_ival_str(const ival_t *v, char buf[24])
{
    if (v->neg)
        snprintf(buf, 24, "%" PRId64, v->s);
    else
        snprintf(buf, 24, "%" PRIu64, v->u);
    return buf;
}

int proto_rd_fail_range(rd_t *r, const fld_t *f, const ival_t *v, const char *lo, const char *hi)
{
    char val[24];
    return proto_rd_fail(r->err, TALLY_ERANGE, f, "%s is out of range (allowed %s..%s)",
                         proto_rd_ival_str(v, val), lo, hi);
}

int proto_rd_fail_name(rd_t *r, const fld_t *f, int code, proto_str_t s, size_t at)
{
    const uint8_t *u = (const uint8_t *)s.ptr;
    char show[SHOW_MAX + 8], what[40];
    esc(show, sizeof show, s.ptr, s.len);
    if (code == TALLY_ETOOLONG)
        return proto_rd_fail(r->err, code, f,
                             "name '%s' is %" PRIu32 " bytes, over the limit of %d bytes", show,
                             s.len, PROTO_NAME_MAX);
    if (code == TALLY_EUTF8)
        return proto_rd_fail(r->err, code, f, "name '%s' is not valid UTF-8 at byte %zu", show, at);
    if (s.len == 0)
        return proto_rd_fail(r->err, code, f, "name is empty (names are 1..%d bytes)",
                             PROTO_NAME_MAX);
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
    return proto_rd_fail(r->err, code, f,
                         "name '%s' contains a forbidden character (%s) at byte %zu", show, what,
                         at);
}

/* Free text or a column/key name: UTF-8 of min..max bytes. */
int proto_rd_text(rd_t *r, const fld_t *f, uint32_t min, uint32_t max, proto_str_t *out)
{
    TRY(rd_bytes(r, f, false, out));
    char show[SHOW_MAX + 8];
    if (out->len > max || out->len < min) {
        esc(show, sizeof show, out->ptr, out->len);
        return proto_rd_fail(r->err, out->len > max ? TALLY_ETOOLONG : TALLY_ERANGE, f,
                             "text '%s' is %" PRIu32 " bytes, outside the allowed %" PRIu32
                             "..%" PRIu32 " bytes",
                             show, out->len, min, max);
    }
    size_t at = utf8_scan(out->ptr, out->len);
    if (at != out->len) {
        esc(show, sizeof show, out->ptr, out->len);
        return proto_rd_fail(r->err, TALLY_EUTF8, f, "text '%s' is not valid UTF-8 at byte %zu",
                             show, at);
    }
    return 0;
}

/* Map keys must be unique; n is small (at most PROTO_STATS_MAX). */
int proto_rd_chk_dup(rd_t *r, const fld_t *f, const proto_str_t *keys, size_t stride, uint32_t n)
{
    const proto_str_t *k = (const proto_str_t *)((const char *)keys + stride * n);
    for (uint32_t j = 0; j < n; j++) {
        const proto_str_t *o = (const proto_str_t *)((const char *)keys + stride * j);
        if (o->len == k->len && memcmp(o->ptr, k->ptr, k->len) == 0) {
            char show[SHOW_MAX + 8];
            esc(show, sizeof show, k->ptr, k->len);
            return proto_rd_fail(r->err, TALLY_EMALFORMED, f, "key '%s' appears twice", show);
        }
    }
    return 0;
}
