/* cli_json.c - a small JSON reader for the output of the `tally` command
 * (RFC 8259: objects, arrays, strings with every escape, numbers, true,
 * false, null). */
#include "cli_json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally_error.h"

typedef struct parser {
    const char *s;
    size_t len, pos;
    char *err;
    size_t errlen;
    int depth;
    bool oom;
} parser_t;

#define JSON_DEPTH_MAX 64

static int perr(parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int perr(parser_t *p, const char *fmt, ...)
{
    if (p->err != NULL && p->errlen > 0 && (p->err[0] == '\0')) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(p->err, p->errlen, "JSON at byte %zu: %s (near '%.20s')", p->pos, msg,
                 p->s + p->pos);
    }
    return TALLY_EMALFORMED;
}

static void skip_ws(parser_t *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int parse_value(parser_t *p, cj_t *v);

static int hex4(parser_t *p, uint32_t *out)
{
    if (p->len - p->pos < 4)
        return perr(p, "short \\u escape");
    uint32_t c = 0;
    for (int i = 0; i < 4; i++) {
        char h = p->s[p->pos++];
        c <<= 4;
        if (h >= '0' && h <= '9')
            c |= (uint32_t)(h - '0');
        else if (h >= 'a' && h <= 'f')
            c |= (uint32_t)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F')
            c |= (uint32_t)(h - 'A' + 10);
        else
            return perr(p, "bad hex digit in \\u escape");
    }
    *out = c;
    return 0;
}

static size_t put_utf8(char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* A string starting at the opening quote; *out is malloc'd. */
static int parse_string(parser_t *p, char **out)
{
    p->pos++; /* the opening quote */
    /* The decoded string is never longer than its escaped form. */
    size_t start = p->pos, cap = 1;
    for (size_t i = start; i < p->len && p->s[i] != '"'; i++, cap++)
        if (p->s[i] == '\\' && i + 1 < p->len) {
            i++;
            cap++;
        }
    char *o = malloc(cap + 8);
    if (o == NULL) {
        p->oom = true;
        return TALLY_ENOMEM;
    }
    size_t n = 0;
    for (;;) {
        if (p->pos >= p->len) {
            free(o);
            return perr(p, "unterminated string");
        }
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) {
            free(o);
            return perr(p, "control character 0x%02x in a string", c);
        }
        if (c != '\\') {
            o[n++] = (char)c;
            p->pos++;
            continue;
        }
        if (++p->pos >= p->len) {
            free(o);
            return perr(p, "unterminated escape");
        }
        char e = p->s[p->pos++];
        uint32_t u, lo;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            o[n++] = e;
            break;
        case 'b':
            o[n++] = '\b';
            break;
        case 'f':
            o[n++] = '\f';
            break;
        case 'n':
            o[n++] = '\n';
            break;
        case 'r':
            o[n++] = '\r';
            break;
        case 't':
            o[n++] = '\t';
            break;
        case 'u':
            if (hex4(p, &u) != 0) {
                free(o);
                return TALLY_EMALFORMED;
            }
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                    free(o);
                    return perr(p, "lone high surrogate");
                }
                p->pos += 2;
                if (hex4(p, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    free(o);
                    return perr(p, "bad low surrogate");
                }
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                free(o);
                return perr(p, "lone low surrogate");
            } else if (u == 0) {
                free(o);
                return perr(p, "\\u0000 in a string");
            }
            n += put_utf8(o + n, u);
            break;
        default:
            free(o);
            return perr(p, "unknown escape '\\%c'", e);
        }
    }
    o[n] = '\0';
    *out = o;
    return 0;
}

static int parse_number(parser_t *p, cj_t *v)
{
    size_t start = p->pos;
    bool integer = true;
    if (p->s[p->pos] == '-')
        p->pos++;
    if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
        return perr(p, "bad number");
    if (p->s[p->pos] == '0' && p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' &&
        p->s[p->pos + 1] <= '9')
        return perr(p, "number with a leading zero");
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        integer = false;
        p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return perr(p, "no digit after the decimal point");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        integer = false;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return perr(p, "no digit in the exponent");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    char buf[64];
    size_t n = p->pos - start;
    if (n >= sizeof buf)
        return perr(p, "number too long");
    memcpy(buf, p->s + start, n);
    buf[n] = '\0';
    v->type = CJ_NUM;
    v->d = strtod(buf, NULL);
    if (integer) {
        errno = 0;
        long long i = strtoll(buf, NULL, 10);
        if (errno == 0) {
            v->is_int = true;
            v->i = i;
        }
    }
    return 0;
}

static int grow(parser_t *p, cj_t *v, size_t *cap, bool keys)
{
    if (v->n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    cj_t *ni = realloc(v->items, ncap * sizeof *ni);
    if (ni == NULL) {
        p->oom = true;
        return TALLY_ENOMEM;
    }
    v->items = ni;
    if (keys) {
        char **nk = realloc(v->keys, ncap * sizeof *nk);
        if (nk == NULL) {
            p->oom = true;
            return TALLY_ENOMEM;
        }
        v->keys = nk;
    }
    *cap = ncap;
    return 0;
}

static int parse_container(parser_t *p, cj_t *v, bool object)
{
    char close = object ? '}' : ']';
    v->type = object ? CJ_OBJ : CJ_ARR;
    if (++p->depth > JSON_DEPTH_MAX)
        return perr(p, "nested deeper than %d", JSON_DEPTH_MAX);
    p->pos++;
    size_t cap = 0;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return 0;
    }
    for (;;) {
        int rc = grow(p, v, &cap, object);
        if (rc != 0)
            return rc;
        char *key = NULL;
        if (object) {
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return perr(p, "expected a member name");
            rc = parse_string(p, &key);
            if (rc != 0)
                return rc;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(key);
                return perr(p, "expected ':'");
            }
            p->pos++;
        }
        cj_t *item = &v->items[v->n];
        memset(item, 0, sizeof *item);
        if (object)
            v->keys[v->n] = key;
        v->n++; /* counted now so that cj_free releases a half-parsed item */
        rc = parse_value(p, item);
        if (rc != 0)
            return rc;
        skip_ws(p);
        if (p->pos >= p->len)
            return perr(p, "unterminated %s", object ? "object" : "array");
        if (p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->s[p->pos] == close) {
            p->pos++;
            p->depth--;
            return 0;
        }
        return perr(p, "expected ',' or '%c'", close);
    }
}

static int parse_literal(parser_t *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return perr(p, "unexpected character");
    p->pos += n;
    return 0;
}

static int parse_value(parser_t *p, cj_t *v)
{
    skip_ws(p);
    if (p->pos >= p->len)
        return perr(p, "unexpected end of input");
    char c = p->s[p->pos];
    switch (c) {
    case '{':
        return parse_container(p, v, true);
    case '[':
        return parse_container(p, v, false);
    case '"':
        v->type = CJ_STR;
        return parse_string(p, &v->s);
    case 't':
        v->type = CJ_BOOL;
        v->b = true;
        return parse_literal(p, "true");
    case 'f':
        v->type = CJ_BOOL;
        return parse_literal(p, "false");
    case 'n':
        v->type = CJ_NULL;
        return parse_literal(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return parse_number(p, v);
        return perr(p, "unexpected character");
    }
}

int cj_parse(const char *text, size_t len, cj_t *out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    parser_t p = {.s = text, .len = len, .err = err, .errlen = errlen};
    memset(out, 0, sizeof *out);
    int rc = parse_value(&p, out);
    if (rc == 0) {
        skip_ws(&p);
        if (p.pos != p.len)
            rc = perr(&p, "trailing characters after the value");
    }
    if (rc != 0) {
        cj_free(out);
        if (p.oom)
            return TALLY_ENOMEM;
    }
    return rc;
}

void cj_free(cj_t *v)
{
    if (v == NULL)
        return;
    free(v->s);
    for (size_t i = 0; i < v->n; i++) {
        cj_free(&v->items[i]);
        if (v->keys != NULL)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    memset(v, 0, sizeof *v);
}

const cj_t *cj_get(const cj_t *o, const char *key)
{
    if (o == NULL || o->type != CJ_OBJ)
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return &o->items[i];
    return NULL;
}
