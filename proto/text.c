/* text.c - escaping for messages and JSON, bounded copies (see text.h). */
#include "text.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* The C1 controls U+0080..U+009F are encoded C2 80 .. C2 9F. */
static bool is_c1(const uint8_t *s, size_t n)
{
    return n == 2 && s[0] == 0xC2 && s[1] < 0xA0;
}

const char *text_printable(char *buf, size_t cap, const void *src, size_t len, unsigned flags)
{
    assert(cap >= 8);
    const char *hex = flags & TEXT_HEX_UPPER ? "0123456789ABCDEF" : "0123456789abcdef";
    const uint8_t *s = src;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        size_t n = utf8_decode(s + i, len - i, NULL);
        char piece[4];
        size_t pn = n;
        if (n == 1 && c >= 0x20 && c < 0x7F &&
            !((flags & TEXT_QUOTES) && (c == '\'' || c == '\\'))) {
            piece[0] = (char)c;
        } else if (n > 1 && !is_c1(s + i, n)) {
            memcpy(piece, s + i, n);
        } else {
            piece[0] = '\\', piece[1] = 'x', piece[2] = hex[c >> 4], piece[3] = hex[c & 15];
            pn = 4, n = 1;
        }
        if (o + pn + 4 > cap) {
            memcpy(buf + o, "...", 4);
            return buf;
        }
        memcpy(buf + o, piece, pn);
        o += pn, i += n;
    }
    buf[o] = '\0';
    return buf;
}

void text_json_string(FILE *out, const char *str, size_t len)
{
    const uint8_t *s = (const uint8_t *)str;
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            switch (c) {
            case '\b':
                fputs("\\b", out);
                break;
            case '\f':
                fputs("\\f", out);
                break;
            case '\n':
                fputs("\\n", out);
                break;
            case '\r':
                fputs("\\r", out);
                break;
            case '\t':
                fputs("\\t", out);
                break;
            default:
                fprintf(out, "\\u%04x", c);
            }
            i++;
        } else {
            size_t n = utf8_decode(s + i, len - i, NULL);
            if (n == 0) {
                fputs("\\ufffd", out);
                i++;
            } else {
                fwrite(s + i, 1, n, out);
                i += n;
            }
        }
    }
    fputc('"', out);
}

void text_copy(char *dst, size_t cap, const char *src, size_t len)
{
    if (cap == 0)
        return;
    if (len >= cap)
        len = cap - 1;
    if (len > 0)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

const char *text_put(char **p, const char *src, size_t len)
{
    char *d = *p;
    if (len > 0)
        memcpy(d, src, len);
    d[len] = '\0';
    *p += len + 1;
    return d;
}

void text_format(char *buf, size_t cap, const char *fmt, ...)
{
    if (buf == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

void text_json_value(FILE *out, bool present, bool ratio, int64_t num, int64_t den)
{
    if (!present) {
        fputs("null", out);
    } else if (ratio) {
        fprintf(out, "{\"num\":%" PRId64 ",\"den\":%" PRId64 ",\"value\":", num, den);
        text_json_double(out, den ? (double)num / (double)den : 0.0);
        fputc('}', out);
    } else {
        fprintf(out, "%" PRId64, num);
    }
}

void text_json_double(FILE *out, double v)
{
    if (!isfinite(v)) {
        fputs("null", out);
        return;
    }
    char buf[40];
    if (v == floor(v) && fabs(v) < 1e15) { /* a whole number as one: -40, not -4e+01 */
        fprintf(out, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, out);
}
