/* csv.c - the tally command (client/cli/): figures from CSV text for
 * `tally push`.
 *
 * Every message names the input, the line and the column, because the
 * person reading it is a clerk with a spreadsheet open, not a programmer. */
#include "csv.h"

#include <iconv.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto.h"
#include "text.h"
#include "utf8.h"
#include "vec.h"

#define FIELDS_MAX 256

int csv_parse_int64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (len > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len)
        return TALLY_EINVAL;
    /* Accumulate as a negative number: its range includes INT64_MIN. */
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return TALLY_EINVAL;
        int d = s[i] - '0';
        if (v < (INT64_MIN + d) / 10)
            goto range;
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == INT64_MIN)
            goto range;
        v = -v;
    }
    *out = v;
    return 0;
range:
    /* Finish the scan: a non-digit later makes it "not an integer". */
    for (; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return TALLY_EINVAL;
    return TALLY_ERANGE;
}

/* Whether s[0..len) is one or more decimal digits. */
static bool digit_run(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return len > 0;
}

int csv_parse_decimal(const char *s, size_t len, int64_t *digits, unsigned *places)
{
    const char *point = memchr(s, '.', len);
    if (point == NULL) {
        *places = 0;
        return csv_parse_int64(s, len, digits);
    }
    size_t ilen = (size_t)(point - s), flen = len - ilen - 1;
    const char *frac = point + 1;
    size_t sign = ilen > 0 && (s[0] == '+' || s[0] == '-');
    if (!digit_run(s + sign, ilen - sign) || !digit_run(frac, flen))
        return TALLY_EINVAL;
    while (flen > 0 && frac[flen - 1] == '0')
        flen--;
    /* The digits without the point, then read as one integer: its range
     * check is csv_parse_int64's.  Beyond what int64 holds is a range
     * error whatever the length, so a long number is cut short. */
    char joined[64];
    size_t n = 0;
    for (size_t i = 0; i < ilen && n < sizeof joined; i++)
        joined[n++] = s[i];
    for (size_t i = 0; i < flen && n < sizeof joined; i++)
        joined[n++] = frac[i];
    if (n == sizeof joined)
        return TALLY_ERANGE;
    *places = (unsigned)flen;
    return csv_parse_int64(joined, n, digits);
}

const char *csv_decimal_text(int64_t value, unsigned places, char *buf, size_t cap)
{
    char digits[80]; /* csv_parse_decimal leaves at most 63 places */
    uint64_t mag = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    int n = snprintf(digits, sizeof digits, "%0*" PRIu64, (int)places + 1, mag);
    if (places == 0)
        snprintf(buf, cap, "%s%s", value < 0 ? "-" : "", digits);
    else
        snprintf(buf, cap, "%s%.*s.%s", value < 0 ? "-" : "", n - (int)places, digits,
                 digits + n - (int)places);
    return buf;
}

int csv_samples_add(csv_samples_t *s, const char *metric, size_t mlen, int64_t value,
                    unsigned places, unsigned line)
{
    if (VEC_RESERVE(s->v, s->cap, s->n + 1) < 0)
        return TALLY_ENOMEM;
    char *m = strndup(metric, mlen);
    if (m == NULL)
        return TALLY_ENOMEM;
    s->v[s->n].metric = m;
    s->v[s->n].value = value;
    s->v[s->n].places = places;
    s->v[s->n].line = line;
    s->n++;
    return 0;
}

void csv_samples_free(csv_samples_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].metric);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = s->ratios = s->blanks = 0;
}

/* One field: a view into the input for unquoted fields, into the scratch
 * buffer for quoted ones (their "" must be collapsed). */
typedef struct field {
    const char *ptr;
    size_t len;
} field_t;

typedef struct reader {
    const char *p, *end;
    unsigned line;
    char *scratch; /* holds unescaped quoted fields of the current record */
    size_t scratch_len, scratch_cap;
} reader_t;

static void trim(field_t *f)
{
    while (f->len > 0 && (f->ptr[0] == ' ' || f->ptr[0] == '\t')) {
        f->ptr++;
        f->len--;
    }
    while (f->len > 0 && (f->ptr[f->len - 1] == ' ' || f->ptr[f->len - 1] == '\t'))
        f->len--;
}

/* Read one record into fields; *nfields gets their number, 0 at the end
 * of the input.  0, or a negative code with err set. */
static int read_record(reader_t *r, field_t *fields, int *nfields, const char *name, char *err,
                       size_t errlen)
{
    *nfields = 0;
    if (r->p >= r->end)
        return 0;
    /* Quoted fields are copied into scratch, which must not move while the
     * record's fields point into it: reserve the record's worst case. */
    if (VEC_RESERVE(r->scratch, r->scratch_cap, (size_t)(r->end - r->p) + 1) < 0)
        return TALLY_ENOMEM;
    r->scratch_len = 0;
    int n = 0;
    unsigned start_line = r->line;
    for (;;) {
        if (n == FIELDS_MAX) {
            text_format(err, errlen, "%s:%u: more than %d columns", name, start_line, FIELDS_MAX);
            return TALLY_EINVAL;
        }
        field_t *f = &fields[n++];
        if (r->p < r->end && *r->p == '"') {
            r->p++;
            f->ptr = r->scratch + r->scratch_len;
            f->len = 0;
            for (;;) {
                if (r->p >= r->end) {
                    text_format(err, errlen,
                                "%s:%u: column %d: the quote opened here is never closed", name,
                                start_line, n);
                    return TALLY_EINVAL;
                }
                char c = *r->p++;
                if (c == '"') {
                    if (r->p < r->end && *r->p == '"') {
                        r->p++;
                    } else {
                        break;
                    }
                } else if (c == '\n') {
                    r->line++;
                }
                r->scratch[r->scratch_len++] = c;
                f->len++;
            }
            if (r->p < r->end && *r->p != ',' && *r->p != '\n' && *r->p != '\r') {
                text_format(err, errlen,
                            "%s:%u: column %d: unexpected character after the closing quote", name,
                            r->line, n);
                return TALLY_EINVAL;
            }
        } else {
            f->ptr = r->p;
            while (r->p < r->end && *r->p != ',' && *r->p != '\n' && *r->p != '\r')
                r->p++;
            f->len = (size_t)(r->p - f->ptr);
        }
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '\r')
            r->p++;
        if (r->p < r->end && *r->p == '\n')
            r->p++;
        r->line++;
        *nfields = n;
        return 0;
    }
}

/* A blank line, or a row whose every cell is empty or spaces (",,",
 * "\t", " , "): Excel writes such rows for formatted but empty rows at a
 * sheet's end.  They carry no figure and, unlike a metric with an empty
 * value, name nothing to leave out either. */
static bool is_blank(const field_t *fields, int n)
{
    for (int i = 0; i < n; i++) {
        field_t f = fields[i];
        trim(&f);
        if (f.len > 0)
            return false;
    }
    return true;
}

/* The index of the header column named want (case-insensitive, spaces
 * around ignored) into *col.  0 or TALLY_ENOTFOUND. */
static int find_column(const field_t *hdr, int n, const char *want, int *col)
{
    for (int i = 0; i < n; i++) {
        field_t f = hdr[i];
        trim(&f);
        if (f.len == strlen(want) && strncasecmp(f.ptr, want, f.len) == 0) {
            *col = i;
            return 0;
        }
    }
    return TALLY_ENOTFOUND;
}

/* The headers that name the metric's and the value's columns, the first
 * found taken: an office's own sheet is headed in Chinese (指标,数值), and
 * one headed 指标,指标名称 has the ids under 指标. */
static const char *const metric_headers[] = {"metric", "指标", "指标名称", "项目", NULL};
static const char *const value_headers[] = {"value", "数值", "数量", "值", NULL};

/* find_column for the first of names (NULL-terminated) the header has. */
static int find_any(const field_t *hdr, int n, const char *const *names, int *col)
{
    for (size_t i = 0; names[i] != NULL; i++)
        if (find_column(hdr, n, names[i], col) == 0)
            return 0;
    return TALLY_ENOTFOUND;
}

/* Append field f to buf (used bytes of cap) so that the message stays
 * readable: a field that is not UTF-8 text has every byte beyond ASCII
 * shown as \xNN (some pairs of another encoding happen to be UTF-8 too).
 * Returns the new used. */
static size_t shown(field_t f, char *buf, size_t used, size_t cap)
{
    bool utf8 = utf8_scan(f.ptr, f.len) == f.len;
    for (size_t k = 0; k < f.len && used + 8 < cap;) {
        size_t l = utf8 ? utf8_decode(f.ptr + k, f.len - k, NULL) : (unsigned char)f.ptr[k] < 0x80;
        if (l == 0) {
            used += (size_t)snprintf(buf + used, cap - used, "\\x%02X", (unsigned char)f.ptr[k]);
            k++;
        } else {
            memcpy(buf + used, f.ptr + k, l);
            used += l;
            k += l;
        }
    }
    buf[used] = '\0';
    return used;
}

/* The header's columns for a message (see shown). */
static void header_list(const field_t *hdr, int n, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used + 8 < cap; i++) {
        if (i > 0)
            used += (size_t)snprintf(buf + used, cap - used, ", ");
        used = shown(hdr[i], buf, used, cap);
    }
}

/* Text that is not UTF-8 is most likely GBK: Excel and WPS save CSV in it
 * on Chinese Windows.  When f reads as GB18030 (GBK's superset), its text
 * in UTF-8 goes to out and the result is true. */
static bool read_as_gbk(field_t f, char *out, size_t cap)
{
    iconv_t cd = iconv_open("UTF-8", "GB18030");
    if (cd == (iconv_t)-1)
        return false;
    char *in = (char *)f.ptr, *o = out;
    size_t inleft = f.len, outleft = cap - 1;
    size_t rc = iconv(cd, &in, &inleft, &o, &outleft);
    iconv_close(cd);
    if (rc == (size_t)-1 || inleft != 0)
        return false;
    *o = '\0';
    return true;
}

/* The end of a message about field f, which is not UTF-8 text: what it
 * seems to be and what to do. */
static void not_utf8_advice(field_t f, char *buf, size_t cap)
{
    char gbk[256];
    if (read_as_gbk(f, gbk, sizeof gbk))
        snprintf(buf, cap,
                 "; read as GBK it says '%s': the file is in GBK, as Excel and WPS save CSV on "
                 "Chinese Windows unless told otherwise. Save it as CSV UTF-8, or convert it: "
                 "iconv -f gb18030 -t utf-8",
                 gbk);
    else
        snprintf(buf, cap, "; save the file as CSV UTF-8");
}

#define FULLWIDTH_COMMA "\xEF\xBC\x8C" /* '，' (U+FF0C) */
#define FULLWIDTH_SEPARATED                                                                        \
    "; the fields seem to be separated by the full-width comma '，' (U+FF0C) of a Chinese input " \
    "method: CSV needs the ASCII comma ',', replace each '，' with ','"

/* Whether one of the fields holds the full-width comma a Chinese input
 * method types: the clerk wrote the file by hand and meant ','. */
static bool fullwidth_comma(const field_t *fields, int n)
{
    for (int i = 0; i < n; i++)
        if (memmem(fields[i].ptr, fields[i].len, FULLWIDTH_COMMA, 3) != NULL)
            return true;
    return false;
}

/* The end of a message about a header that names no metric or no value
 * column because its fields are separated by something else than commas:
 * semicolons or tabs, as spreadsheets save CSV in some locales (the
 * header is then one column), or full-width commas.  "" if not. */
static const char *other_separator(const field_t *hdr, int n)
{
    if (n == 1 && memchr(hdr[0].ptr, ';', hdr[0].len) != NULL)
        return "; the fields seem to be separated by ';': tally reads comma-separated values, "
               "save the file as CSV with commas";
    if (n == 1 && memchr(hdr[0].ptr, '\t', hdr[0].len) != NULL)
        return "; the fields seem to be separated by tabs: tally reads comma-separated values, "
               "save the file as CSV with commas";
    if (fullwidth_comma(hdr, n))
        return FULLWIDTH_SEPARATED;
    return "";
}

static bool all_digits(const field_t *f)
{
    return digit_run(f->ptr, f->len);
}

/* Digits in groups of three after the first, separated by commas:
 * "1,000", "-12,345,678". */
static bool thousands_grouped(const char *s, size_t len)
{
    size_t i = len > 0 && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    size_t group = 0, groups = 0;
    for (; i < len; i++) {
        if (s[i] == ',') {
            if (group == 0 || (groups > 0 && group != 3))
                return false;
            groups++;
            group = 0;
        } else if (s[i] >= '0' && s[i] <= '9') {
            group++;
        } else {
            return false;
        }
    }
    return groups > 0 && group == 3;
}

/* A Chinese input method in full-width mode types ０..９ (U+FF10..U+FF19),
 * and ．－＋ with them: they look like digits but are not, and are not
 * taken as such (a value is typed again rather than guessed at).  What
 * s[0..len) would be in ASCII goes to ascii, its length to *alen (0 when
 * longer than cap); returns how many full-width digits it has. */
static size_t fullwidth_digits(const char *s, size_t len, char *ascii, size_t cap, size_t *alen)
{
    size_t digits = 0, n = 0, i = 0;
    while (i < len && n + 1 < cap) {
        unsigned char c =
            i + 2 < len && (unsigned char)s[i] == 0xEF && (unsigned char)s[i + 1] == 0xBC
                ? (unsigned char)s[i + 2]
                : 0;
        if (c >= 0x90 && c <= 0x99) {
            ascii[n++] = (char)('0' + (c - 0x90));
            digits++;
        } else if (c == 0x8E || c == 0x8D || c == 0x8B) {
            ascii[n++] = c == 0x8E ? '.' : c == 0x8D ? '-' : '+';
        } else {
            ascii[n++] = s[i++];
            continue;
        }
        i += 3;
    }
    /* Too long to show: no number rather than part of one. */
    *alen = i < len ? 0 : n;
    ascii[*alen] = '\0';
    return digits;
}

const char *csv_number_advice(const char *s, size_t len, char *buf, size_t cap)
{
    char ascii[256];
    size_t alen;
    int64_t v;
    unsigned places;
    buf[0] = '\0';
    if (fullwidth_digits(s, len, ascii, sizeof ascii, &alen) > 0) {
        if (csv_parse_decimal(ascii, alen, &v, &places) == 0)
            snprintf(buf, cap,
                     " (it is written with full-width digits, １ for 1: type it with "
                     "ASCII digits, as %s)",
                     ascii);
        else
            snprintf(buf, cap,
                     " (it is written with full-width digits, １ for 1: type it with "
                     "ASCII digits)");
    } else if (thousands_grouped(s, len)) {
        snprintf(buf, cap, " (write it without thousands separators)");
    }
    return buf;
}

/* A row with more fields than the header: an unquoted "1,000" splits into
 * two fields, and dropping the second would count 1.  Only empty extra
 * fields (a trailing comma) carry nothing and are let through. */
static int check_extra(const field_t *fields, int n, int ncols, int vcol, unsigned line,
                       const char *name, char *err, size_t errlen)
{
    for (int i = ncols; i < n; i++) {
        field_t f = fields[i];
        trim(&f);
        if (f.len == 0)
            continue;
        /* The value's column is the header's last and the fields after it
         * are groups of three digits: say what the clerk meant. */
        char joined[128] = "";
        if (vcol == ncols - 1 && i == ncols) {
            field_t v = fields[vcol];
            trim(&v);
            int last = i;
            while (last + 1 < n && fields[last + 1].len == 3 && all_digits(&fields[last + 1]))
                last++;
            if (all_digits(&v) && v.len <= 3 && f.len == 3 && all_digits(&f) && last + 1 == n) {
                size_t used = (size_t)snprintf(joined, sizeof joined, "%.*s", (int)v.len, v.ptr);
                for (int k = i; k <= last && used < sizeof joined; k++)
                    used += (size_t)snprintf(joined + used, sizeof joined - used, ",%.*s",
                                             (int)fields[k].len, fields[k].ptr);
            }
        }
        if (joined[0] != '\0') {
            char plain[128];
            size_t p = 0;
            for (const char *c = joined; *c != '\0' && p + 1 < sizeof plain; c++)
                if (*c != ',')
                    plain[p++] = *c;
            plain[p] = '\0';
            text_format(err, errlen,
                        "%s:%u: column %d: extra field '%.*s': the header has only %d columns (if "
                        "%s is one number, write it without thousands separators: %s)",
                        name, line, i + 1, (int)f.len, f.ptr, ncols, joined, plain);
        } else {
            text_format(err, errlen,
                        "%s:%u: column %d: extra field '%.*s': the header has only %d %s", name,
                        line, i + 1, (int)f.len, f.ptr, ncols, ncols == 1 ? "column" : "columns");
        }
        return TALLY_EINVAL;
    }
    return 0;
}

/* Does the row's kind column (kcol, -1: none) say "ratio"? */
static bool ratio_row(const field_t *fields, int n, int kcol)
{
    if (kcol < 0 || kcol >= n)
        return false;
    field_t k = fields[kcol];
    trim(&k);
    return k.len == 5 && strncasecmp(k.ptr, "ratio", 5) == 0;
}

static int parse_row(const field_t *fields, int n, int ncols, int mcol, int vcol, unsigned line,
                     const char *name, csv_samples_t *out, char *err, size_t errlen)
{
    int need = (mcol > vcol ? mcol : vcol) + 1;
    if (n < need) {
        text_format(err, errlen, "%s:%u: only %d column%s; the %s column is column %d%s", name,
                    line, n, n == 1 ? "" : "s", n <= mcol ? "metric" : "value",
                    n <= mcol ? mcol + 1 : vcol + 1,
                    fullwidth_comma(fields, n) ? FULLWIDTH_SEPARATED : "");
        return TALLY_EINVAL;
    }
    int rc = check_extra(fields, n, ncols, vcol, line, name, err, errlen);
    if (rc < 0)
        return rc;
    field_t m = fields[mcol], v = fields[vcol];
    trim(&m);
    trim(&v);
    rc = proto_name_check(m.ptr, m.len);
    if (rc == TALLY_EUTF8) {
        char text[256], advice[512];
        shown(m, text, 0, sizeof text);
        not_utf8_advice(m, advice, sizeof advice);
        text_format(err, errlen, "%s:%u: column %d (metric): '%s' is not UTF-8 text%s", name, line,
                    mcol + 1, text, advice);
        return TALLY_EINVAL;
    }
    if (rc < 0) {
        text_format(err, errlen,
                    "%s:%u: column %d (metric): '%.*s' is not a valid metric name (%s)", name, line,
                    mcol + 1, (int)m.len, m.ptr, tally_strerror(rc));
        return TALLY_EINVAL;
    }
    int64_t value;
    unsigned places;
    rc = csv_parse_decimal(v.ptr, v.len, &value, &places);
    char vtext[256];
    shown(v, vtext, 0, sizeof vtext);
    if (rc == TALLY_ERANGE) {
        text_format(err, errlen,
                    "%s:%u: column %d (value): '%s' is out of range (a value must lie within "
                    "-9223372036854775808 .. 9223372036854775807)",
                    name, line, vcol + 1, vtext);
        return TALLY_EINVAL;
    }
    if (rc < 0 && v.len == 0) {
        out->blanks++; /* no figure */
        return 0;
    }
    if (rc < 0) {
        char advice[256];
        text_format(err, errlen, "%s:%u: column %d (value): '%s' is not a number%s", name, line,
                    vcol + 1, vtext, csv_number_advice(v.ptr, v.len, advice, sizeof advice));
        return TALLY_EINVAL;
    }
    return csv_samples_add(out, m.ptr, m.len, value, places, line);
}

/* The line of a record among the few non-blank ones after r's position
 * that would make a header (names a metric and a value column), 0 if
 * none does.  r is left as it is. */
static unsigned later_header(const reader_t *r, const char *name)
{
    reader_t ahead = {.p = r->p, .end = r->end, .line = r->line};
    field_t *fields = malloc(FIELDS_MAX * sizeof *fields);
    char err[256];
    unsigned found = 0;
    for (int rows = 0; fields != NULL && rows < 5 && found == 0;) {
        unsigned line = ahead.line;
        int n, mcol, vcol;
        if (read_record(&ahead, fields, &n, name, err, sizeof err) < 0 || n == 0)
            break;
        if (is_blank(fields, n))
            continue;
        rows++;
        if (find_any(fields, n, metric_headers, &mcol) == 0 &&
            find_any(fields, n, value_headers, &vcol) == 0)
            found = line;
    }
    free(fields);
    free(ahead.scratch);
    return found;
}

int csv_parse_samples(const char *buf, size_t len, const char *name, csv_samples_t *out, char *err,
                      size_t errlen)
{
    reader_t r = {.p = buf, .end = buf + len, .line = 1};
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        r.p += 3; /* spreadsheets like to start UTF-8 files with a BOM */
    /* A workbook given where its CSV export belongs: a zip archive
     * (.xlsx, .et of WPS) or an OLE2 compound file (.xls). */
    if ((len >= 4 && memcmp(buf, "PK\x03\x04", 4) == 0) ||
        (len >= 8 && memcmp(buf, "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8) == 0)) {
        text_format(err, errlen,
                    "%s: the file is a spreadsheet workbook (%s), not CSV: open it and save the "
                    "sheet as CSV UTF-8 (comma delimited)",
                    name, buf[0] == 'P' ? "Excel .xlsx or WPS" : "Excel 97-2003 .xls");
        return TALLY_EINVAL;
    }
    if (len >= 2 && (memcmp(buf, "\xFF\xFE", 2) == 0 || memcmp(buf, "\xFE\xFF", 2) == 0)) {
        text_format(err, errlen,
                    "%s: the file is UTF-16 text (\"Unicode text\"), not CSV: save it as CSV "
                    "UTF-8 (comma delimited)",
                    name);
        return TALLY_EINVAL;
    }
    field_t *fields = malloc(FIELDS_MAX * sizeof *fields);
    if (fields == NULL)
        return TALLY_ENOMEM;
    int rc, n, ncols, mcol = -1, vcol = -1, kcol = -1;
    /* The header is the first non-blank record. */
    unsigned hline;
    do {
        hline = r.line;
        rc = read_record(&r, fields, &n, name, err, errlen);
    } while (rc == 0 && n > 0 && is_blank(fields, n));
    if (rc < 0)
        goto out;
    if (n == 0) {
        text_format(err, errlen, "%s: no header row: the input is empty", name);
        rc = TALLY_EINVAL;
        goto out;
    }
    ncols = n;
    bool has_metric = find_any(fields, n, metric_headers, &mcol) == 0;
    bool has_value = find_any(fields, n, value_headers, &vcol) == 0;
    if (!has_metric || !has_value) {
        char list[512], advice[512] = "", title[256] = "";
        header_list(fields, n, list, sizeof list);
        const char *sep = other_separator(fields, n);
        for (int i = 0; i < n && advice[0] == '\0'; i++)
            if (utf8_scan(fields[i].ptr, fields[i].len) != fields[i].len)
                not_utf8_advice(fields[i], advice, sizeof advice);
        /* A title above the header ("高观镇2023年数据"), as a sheet made
         * to be printed has: say where the header is when a row soon
         * after would make one. */
        unsigned later = sep[0] || advice[0] ? 0 : later_header(&r, name);
        int cells = 0;
        for (int i = 0; i < n; i++) {
            field_t f = fields[i];
            trim(&f);
            cells += f.len > 0;
        }
        if (later > 0)
            snprintf(title, sizeof title,
                     "; the first non-blank row is taken as the header, and line %u would make "
                     "one: delete the rows above it",
                     later);
        else if (!sep[0] && !advice[0] && !has_metric && !has_value && cells == 1)
            snprintf(title, sizeof title, "; the first non-blank row is taken as the header");
        /* The headers that would do, unless a separator, an encoding or a
         * title row is what hid the column. */
        const char *also = sep[0] || advice[0] || later > 0 ? ""
                           : !has_metric ? "; a column headed 指标, 指标名称 or 项目 will do too"
                                         : "; a column headed 数值, 数量 or 值 will do too";
        text_format(err, errlen, "%s:%u: the header has no '%s' column (columns: %s)%s%s%s%s", name,
                    hline, !has_metric ? "metric" : "value", list, sep, advice, title, also);
        rc = TALLY_EINVAL;
        goto out;
    }
    (void)find_column(fields, n, "kind", &kcol); /* kcol stays -1 without one */
    for (;;) {
        unsigned line = r.line;
        rc = read_record(&r, fields, &n, name, err, errlen);
        if (rc < 0 || n == 0)
            break;
        if (is_blank(fields, n))
            continue;
        if (ratio_row(fields, n, kcol)) {
            out->ratios++;
            continue;
        }
        rc = parse_row(fields, n, ncols, mcol, vcol, line, name, out, err, errlen);
        if (rc < 0)
            break;
    }
out:
    free(fields);
    free(r.scratch);
    return rc;
}
