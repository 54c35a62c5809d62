/* cli_render.c - the tally command (client/cli/): tallies as text tables
 * and JSON. */
#include "cli_render.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "table.h"
#include "text.h"
#include "vec.h"

static const char *or_empty(const char *s)
{
    return s != NULL ? s : "";
}

/* text_put() of a C string, NULL taken as "". */
static const char *put(char **p, const char *s)
{
    s = or_empty(s);
    return text_put(p, s, strlen(s));
}

/* A copy of a tally (cli_render_rows_t.copy) is as small as it can be (a
 * country's `get --all` keeps a million): room for its nvalues values
 * only, not TALLY_COLUMNS_MAX, then its strings (metric, scope, topic, the
 * columns' names), each as long as it is.  So its fields are read, never
 * the whole struct (*t).  The bytes a copy of src takes, its values' part
 * in *head. */
static size_t dup_size(const tally_tally_t *src, size_t *head)
{
    unsigned n = src->nvalues < TALLY_COLUMNS_MAX ? src->nvalues : TALLY_COLUMNS_MAX;
    *head = offsetof(tally_tally_t, values) + n * sizeof(tally_value_t);
    size_t len = strlen(or_empty(src->metric)) + strlen(or_empty(src->scope)) +
                 strlen(or_empty(src->topic)) + 3;
    for (unsigned i = 0; i < n; i++)
        len += strlen(or_empty(src->values[i].column)) + 1;
    return *head + len;
}

/* src copied into mem (dup_size(src) bytes, aligned for a tally_tally_t). */
static tally_tally_t *dup_into(void *mem, const tally_tally_t *src, size_t head)
{
    unsigned n = src->nvalues < TALLY_COLUMNS_MAX ? src->nvalues : TALLY_COLUMNS_MAX;
    tally_tally_t *d = mem;
    memcpy(d, src, head);
    d->nvalues = n;
    char *p = (char *)d + head;
    d->metric = put(&p, src->metric);
    d->scope = put(&p, src->scope);
    d->topic = put(&p, src->topic);
    for (unsigned i = 0; i < n; i++)
        d->values[i].column = put(&p, src->values[i].column);
    return d;
}

#define ROWS_CHUNK (1u << 20)

/* size bytes for a copy in r's chunks, aligned as malloc's, or NULL. */
static void *rows_alloc(cli_render_rows_t *r, size_t size)
{
    const size_t align = _Alignof(max_align_t);
    size_t at = (r->used + align - 1) & ~(align - 1);
    if (r->nchunks == 0 || at + size > ROWS_CHUNK) {
        if (VEC_RESERVE(r->chunks, r->chunks_cap, r->nchunks + 1) < 0)
            return NULL;
        char *c = malloc(size > ROWS_CHUNK ? size : ROWS_CHUNK);
        if (c == NULL)
            return NULL;
        r->chunks[r->nchunks++] = c;
        at = 0;
    }
    r->used = at + size;
    return r->chunks[r->nchunks - 1] + at;
}

void cli_render_rows_add(void *ctx, const tally_tally_t *t)
{
    cli_render_rows_t *r = ctx;
    if (r->metric != NULL && strcmp(r->metric, t->metric) != 0)
        return;
    if (VEC_RESERVE(r->v, r->cap, r->n + 1) < 0) {
        r->oom = true;
        return;
    }
    if (r->copy) {
        size_t head, size = dup_size(t, &head);
        void *mem = rows_alloc(r, size);
        if (mem == NULL) {
            r->oom = true;
            return;
        }
        t = dup_into(mem, t, head);
    }
    r->v[r->n++] = t;
}

void cli_render_rows_free(cli_render_rows_t *r)
{
    for (size_t i = 0; i < r->nchunks; i++)
        free(r->chunks[i]);
    free(r->chunks);
    r->chunks = NULL;
    r->nchunks = r->chunks_cap = r->used = 0;
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}

const char *cli_render_scope(const tally_tally_t *t)
{
    return t->scope[0] ? t->scope : "county";
}

cli_i128 cli_round_div(cli_i128 num, cli_i128 den)
{
    if (den < 0)
        num = -num, den = -den;
    cli_i128 q = num / den, rem = num % den;
    if (rem < 0)
        rem = -rem;
    if (rem >= den - rem) /* 2 * rem >= den, without overflow */
        q += num < 0 ? -1 : 1;
    return q;
}

void cli_render_fixed(char *buf, size_t cap, cli_i128 v, int places, bool plus, const char *suffix)
{
    cli_i128 p = 1;
    for (int i = 0; i < places; i++)
        p *= 10;
    unsigned __int128 mag = v < 0 ? 0 - (unsigned __int128)v : (unsigned __int128)v;
    const char *sign = v < 0 ? "-" : plus && v > 0 ? "+" : "";
    if (mag / (unsigned __int128)p > UINT64_MAX) {
        snprintf(buf, cap, "%soverflow", sign);
        return;
    }
    if (places > 0)
        snprintf(buf, cap, "%s%" PRIu64 ".%0*" PRIu64 "%s", sign,
                 (uint64_t)(mag / (unsigned __int128)p), places,
                 (uint64_t)(mag % (unsigned __int128)p), suffix);
    else
        snprintf(buf, cap, "%s%" PRIu64 "%s", sign, (uint64_t)mag, suffix);
}

bool cli_ratio_change_tenths(int64_t an, int64_t ad, int64_t bn, int64_t bd, cli_i128 *tenths)
{
    if (ad == 0 || bd == 0)
        return false;
    /* The difference of the two rates as printed (cli_render_value), not
     * the exact difference rounded: 93.1% against 92.3% is +0.8, what a
     * reader subtracting gets, even when the exact fractions differ by
     * 0.74.  |num| * 1000 < 2^74: no operand overflows. */
    *tenths = cli_round_div((cli_i128)an * 1000, ad) - cli_round_div((cli_i128)bn * 1000, bd);
    return true;
}

/* A ratio as a percentage: 100 * num / den. */
static double pct_of(const tally_value_t *v)
{
    return v->den ? 100.0 * (double)v->num / (double)v->den : 0.0;
}

void cli_change(int kind, int scale, const tally_value_t *a, const tally_value_t *b, char *abs_,
                size_t abs_cap, char *rel, size_t rel_cap, double *d_abs, double *d_rel,
                bool *has_rel)
{
    *has_rel = false;
    if (kind == TALLY_KIND_RATIO) {
        cli_i128 tenths;
        if (!cli_ratio_change_tenths(a->num, a->den, b->num, b->den, &tenths)) {
            snprintf(abs_, abs_cap, "-");
            snprintf(rel, rel_cap, "-");
            *d_abs = 0;
            return;
        }
        cli_render_fixed(abs_, abs_cap, tenths, 1, true, "pp");
        snprintf(rel, rel_cap, "-");
        *d_abs = pct_of(a) - pct_of(b);
        return;
    }
    cli_i128 d = (cli_i128)a->num - b->num;
    tally_value_t dv = {.column = "", .present = true, .num = (int64_t)d, .den = 1};
    if (d > INT64_MAX || d < INT64_MIN) {
        snprintf(abs_, abs_cap, "overflow");
    } else {
        char num[48];
        cli_render_scaled(num, sizeof(num), kind, &dv, scale);
        snprintf(abs_, abs_cap, "%s%s", d > 0 ? "+" : "", num);
    }
    double p10 = 1;
    for (int i = 0; i < scale; i++)
        p10 *= 10;
    *d_abs = (double)d / p10;
    if (b->num == 0) {
        snprintf(rel, rel_cap, "-");
        return;
    }
    cli_i128 base = b->num < 0 ? -(cli_i128)b->num : b->num;
    *d_rel = 100.0 * (double)d / (double)base;
    *has_rel = true;
    cli_render_fixed(rel, rel_cap, cli_round_div(d * 1000, base), 1, true, "%");
}

void cli_render_value(char *buf, size_t cap, int kind, const tally_value_t *v)
{
    if (!v->present) {
        snprintf(buf, cap, "-");
    } else if (kind == TALLY_KIND_RATIO) {
        cli_render_fixed(buf, cap, v->den ? cli_round_div((cli_i128)v->num * 1000, v->den) : 0, 1,
                         false, "%");
    } else if (v->den != 1 && v->den != 0) {
        snprintf(buf, cap, "%" PRId64 "/%" PRId64, v->num, v->den);
    } else {
        snprintf(buf, cap, "%" PRId64, v->num);
    }
}

void cli_render_scaled(char *buf, size_t cap, int kind, const tally_value_t *v, int scale)
{
    if (!v->present || kind == TALLY_KIND_RATIO || scale <= 0 || scale > 18 ||
        (v->den != 1 && v->den != 0)) {
        cli_render_value(buf, cap, kind, v);
        return;
    }
    uint64_t p = 1;
    for (int i = 0; i < scale; i++)
        p *= 10;
    /* The magnitude as unsigned, so that INT64_MIN has one too. */
    uint64_t mag = v->num < 0 ? 0 - (uint64_t)v->num : (uint64_t)v->num;
    snprintf(buf, cap, "%s%" PRIu64 ".%0*" PRIu64, v->num < 0 ? "-" : "", mag / p, scale, mag % p);
}

static int cmp_tally(const void *a, const void *b)
{
    const tally_tally_t *x = *(const tally_tally_t *const *)a;
    const tally_tally_t *y = *(const tally_tally_t *const *)b;
    int c = strcmp(x->metric, y->metric);
    if (c != 0)
        return c;
    if ((x->scope[0] == '\0') != (y->scope[0] == '\0'))
        return x->scope[0] == '\0' ? -1 : 1;
    return strcmp(x->scope, y->scope);
}

/* No catalog: ids, values as sent. */
static const cli_render_cat_t ids = {NULL, false};

void cli_render_sort(const tally_tally_t **v, size_t n)
{
    cli_render_sort_cat(v, n, ids);
}

const tally_tally_t *cli_render_find(const tally_tally_t *const *v, size_t n,
                                     const tally_tally_t *key)
{
    if (n == 0)
        return NULL;
    const tally_tally_t *const *hit = bsearch(&key, v, n, sizeof *v, cmp_tally);
    return hit != NULL ? *hit : NULL;
}

static size_t metric_pos(const tally_catalog_t *cat, const char *id)
{
    size_t i;
    return tally_catalog_find_metric(cat, id, &i) != NULL ? i : SIZE_MAX;
}

static size_t town_pos(const tally_catalog_t *cat, const char *id)
{
    size_t i;
    return tally_catalog_find_township(cat, id, &i) != NULL ? i : SIZE_MAX;
}

static int cmp_pos(size_t a, size_t b)
{
    return a < b ? -1 : a > b;
}

/* A tally with its places in the catalog, looked up once rather than in
 * every comparison (a million rows take twenty million). */
typedef struct sort_key {
    size_t mpos, tpos;
    const tally_tally_t *t;
} sort_key_t;

static int cmp_key(const void *a, const void *b)
{
    const sort_key_t *x = a, *y = b;
    int c = cmp_pos(x->mpos, y->mpos);
    if (c == 0)
        c = strcmp(x->t->metric, y->t->metric);
    if (c != 0)
        return c;
    if ((x->t->scope[0] == '\0') != (y->t->scope[0] == '\0'))
        return x->t->scope[0] == '\0' ? -1 : 1;
    c = cmp_pos(x->tpos, y->tpos);
    return c != 0 ? c : strcmp(x->t->scope, y->t->scope);
}

void cli_render_sort_cat(const tally_tally_t **v, size_t n, cli_render_cat_t cat)
{
    if (n < 2)
        return;
    sort_key_t *k = cat.names ? malloc(n * sizeof *k) : NULL;
    if (k == NULL) { /* ids (or no memory for the keys): by id */
        qsort(v, n, sizeof *v, cmp_tally);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bool same = i > 0 && strcmp(v[i]->metric, k[i - 1].t->metric) == 0;
        k[i] = (sort_key_t){same ? k[i - 1].mpos : metric_pos(cat.catalog, v[i]->metric),
                            town_pos(cat.catalog, v[i]->scope), v[i]};
    }
    qsort(k, n, sizeof *k, cmp_key);
    for (size_t i = 0; i < n; i++)
        v[i] = k[i].t;
    free(k);
}

static const char *const canonical[] = {"1h",    "24h",     "7d",   "30d",  "today",
                                        "month", "quarter", "year", "total"};
#define NCANON    (sizeof canonical / sizeof canonical[0])
#define NCOLS_MAX CLI_RENDER_COLUMNS_MAX

size_t cli_render_columns(const tally_tally_t *const *v, size_t n, const char **out)
{
    size_t k = 0;
    for (size_t c = 0; c < NCANON; c++)
        for (size_t i = 0; i < n; i++)
            if (tally_tally_value(v[i], canonical[c]) != NULL) {
                out[k++] = canonical[c];
                break;
            }
    for (size_t i = 0; i < n; i++)
        for (unsigned j = 0; j < v[i]->nvalues; j++) {
            const char *name = v[i]->values[j].column;
            bool seen = false;
            for (size_t m = 0; m < k && !seen; m++)
                seen = strcmp(out[m], name) == 0;
            if (!seen && k < NCOLS_MAX)
                out[k++] = name;
        }
    return k;
}

int cli_render_table(FILE *out, const tally_tally_t *const *v, size_t n)
{
    return cli_render_table_cat(out, v, n, ids);
}

/* What the table and JSON show of a tally's metric and township. */
typedef struct shown {
    const char *metric, *unit, *scope;
    int scale;
} shown_t;

/* With names, the county is 全县, as the reports call it. */
static const char *shown_scope(const tally_tally_t *t, cli_render_cat_t cat)
{
    if (cat.names && t->scope[0] == '\0')
        return "全县";
    const tally_township_info_t *tw =
        cat.names && t->scope[0] ? tally_catalog_find_township(cat.catalog, t->scope, NULL) : NULL;
    return tw != NULL && tw->name[0] != '\0' ? tw->name : cli_render_scope(t);
}

/* The scale whatever the names: 125 of a scale-1 metric is 12.5 to a
 * script reading ids as much as to a person reading labels. */
static shown_t shown(const tally_tally_t *t, cli_render_cat_t cat)
{
    shown_t s = {t->metric, "", shown_scope(t, cat), 0};
    const tally_metric_info_t *m = tally_catalog_find_metric(cat.catalog, t->metric, NULL);
    if (m == NULL)
        return s;
    s.scale = m->scale;
    if (cat.names) {
        if (m->label[0] != '\0')
            s.metric = m->label;
        s.unit = m->unit;
    }
    return s;
}

const char *cli_render_unit(int kind, const char *unit)
{
    return kind == TALLY_KIND_RATIO && unit[0] == '\0' ? "%" : unit;
}

void cli_render_names(const tally_tally_t *t, cli_render_cat_t cat, const char **metric,
                      const char **unit, const char **scope, int *scale)
{
    shown_t s = shown(t, cat);
    *metric = s.metric;
    *unit = s.unit;
    *scope = s.scope;
    *scale = s.scale;
}

/* shown() of the rows of a table, which come metric by metric: the
 * metric's names are looked up again only when it changes. */
typedef struct shown_cache {
    const char *metric; /* the id they are of, NULL: none yet */
    shown_t sh;
} shown_cache_t;

static shown_t shown_cached(const tally_tally_t *t, cli_render_cat_t cat, shown_cache_t *sc)
{
    if (sc->metric == NULL || strcmp(sc->metric, t->metric) != 0) {
        sc->sh = shown(t, cat);
        sc->metric = t->metric;
        return sc->sh;
    }
    shown_t s = sc->sh;
    s.scope = shown_scope(t, cat);
    return s;
}

/* The cells of tl's row: cells[0..first) its names, then its value of
 * each of cols[0..ncols), formatted into text. */
static void tally_row(const tally_tally_t *tl, cli_render_cat_t cat, shown_cache_t *sc,
                      const char *const *cols, size_t ncols, size_t first, const char **cells,
                      char (*text)[48])
{
    shown_t sh = shown_cached(tl, cat, sc);
    cells[0] = sh.metric;
    cells[1] = cli_render_unit(tl->kind, sh.unit);
    cells[first - 1] = sh.scope;
    for (size_t c = 0; c < ncols; c++) {
        /* Most tallies have the columns in the table's order. */
        const tally_value_t *val = c < tl->nvalues && strcmp(tl->values[c].column, cols[c]) == 0
                                       ? &tl->values[c]
                                       : tally_tally_value(tl, cols[c]);
        text[c][0] = '\0';
        if (val != NULL)
            cli_render_scaled(text[c], sizeof text[c], tl->kind, val, sh.scale);
        cells[c + first] = text[c];
    }
}

/* Two passes over v, the widths and then the rows, rather than a table
 * of every cell: a country's `get --all` is a million rows. */
int cli_render_table_cat(FILE *out, const tally_tally_t *const *v, size_t n, cli_render_cat_t cat)
{
    const char *cols[NCOLS_MAX];
    size_t ncols = cli_render_columns(v, n, cols);
    size_t first = cat.names ? 3 : 2; /* METRIC, [UNIT,] SCOPE */
    table_t *t = table_new((unsigned)(ncols + first));
    if (t == NULL)
        return TALLY_ENOMEM;
    const char *head[NCOLS_MAX + 3], *cells[NCOLS_MAX + 3];
    char text[NCOLS_MAX][48];
    head[0] = "METRIC";
    head[1] = cat.names ? "UNIT" : "SCOPE";
    head[first - 1] = "SCOPE";
    for (size_t c = 0; c < ncols; c++) {
        head[c + first] = cols[c];
        table_align_right(t, (unsigned)(c + first));
    }
    table_measure(t, head);
    shown_cache_t sc = {NULL, {NULL, NULL, NULL, 0}};
    for (size_t i = 0; i < n; i++) {
        tally_row(v[i], cat, &sc, cols, ncols, first, cells, text);
        table_measure(t, cells);
    }
    table_print_row(t, head, out);
    sc.metric = NULL;
    for (size_t i = 0; i < n; i++) {
        tally_row(v[i], cat, &sc, cols, ncols, first, cells, text);
        table_print_row(t, cells, out);
    }
    table_free(&t);
    return 0;
}

void cli_render_json_tally(FILE *out, const tally_tally_t *t, bool with_seq)
{
    cli_render_json_tally_cat(out, t, with_seq, ids);
}

void cli_render_json_tally_cat(FILE *out, const tally_tally_t *t, bool with_seq,
                               cli_render_cat_t cat)
{
    fputc('{', out);
    if (with_seq)
        fprintf(out, "\"seq\":%" PRIu64 ",", t->seq);
    fputs("\"metric\":", out);
    json_string(out, t->metric);
    fputs(",\"scope\":", out);
    json_string(out, cli_render_scope(t));
    fputs(",\"kind\":", out);
    json_string(out, tally_kind_name(t->kind));
    if (cat.names) {
        shown_t sh = shown(t, cat);
        fputs(",\"label\":", out);
        json_string(out, sh.metric);
        fputs(",\"unit\":", out);
        json_string(out, sh.unit);
        fprintf(out, ",\"scale\":%d,\"scope_name\":", sh.scale);
        json_string(out, sh.scope);
    }
    fputs(",\"values\":{", out);
    for (unsigned i = 0; i < t->nvalues; i++) {
        if (i > 0)
            fputc(',', out);
        json_string(out, t->values[i].column);
        fputc(':', out);
        const tally_value_t *v = &t->values[i];
        text_json_value(out, v->present, t->kind == TALLY_KIND_RATIO, v->num, v->den);
    }
    fputs("}}", out);
}

/* True when the catalog has something to show beyond ids. */
static bool has_labels(const tally_catalog_t *cat)
{
    for (size_t i = 0; i < tally_catalog_metrics(cat); i++)
        if (tally_catalog_metric(cat, i)->label[0] != '\0')
            return true;
    for (size_t i = 0; i < tally_catalog_townships(cat); i++)
        if (tally_catalog_township(cat, i)->name[0] != '\0')
            return true;
    return false;
}

/* Why the catalog the user asked to be shown (--labels) is not. */
static void say_no_catalog(const char *cmd, int rc, const char *err)
{
    if (rc == TALLY_ETYPE)
        fprintf(stderr,
                "tally %s: the daemon does not send its catalog (older than "
                "CATALOG_REQ); showing ids\n",
                cmd);
    else
        fprintf(stderr, "tally %s: could not read the catalog (%s%s%s); showing ids\n", cmd,
                tally_strerror(rc), err[0] ? ": " : "", err);
}

cli_render_cat_t cli_render_catalog(cli_global_t *g, const char *cmd, const tally_curve_t *curve,
                                    int labels, int timeout_ms, bool tty, bool text)
{
    bool names = labels > 0 || (labels < 0 && tty);
    cli_render_cat_t cat = {NULL, false};
    if (!names && !text)
        return cat;
    char err[600];
    tally_request_t req = cli_request(curve, timeout_ms, err, sizeof err);
    int rc = cli_catalog(g, &req, &cat.catalog);
    if (rc < 0) {
        /* Without --labels the catalog only gives the values their
         * decimal places: a daemon that cannot send it leaves them whole,
         * and a script's standard error stays as it was. */
        if (labels > 0)
            say_no_catalog(cmd, rc, err);
        return cat;
    }
    cat.names = names && (labels > 0 || has_labels(cat.catalog));
    return cat;
}
