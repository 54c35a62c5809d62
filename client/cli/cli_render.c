/* cli_render.c - the tally command (client/cli/): tallies as text tables
 * and JSON. */
#include "cli_render.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "table.h"
#include "vec.h"

static void copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

cli_render_tally_t *cli_render_dup(const tally_tally_t *src)
{
    cli_render_tally_t *d = malloc(sizeof *d);
    if (d == NULL)
        return NULL;
    d->t = *src;
    copy(d->metric, sizeof d->metric, src->metric);
    copy(d->scope, sizeof d->scope, src->scope);
    copy(d->topic, sizeof d->topic, src->topic ? src->topic : "");
    d->t.metric = d->metric;
    d->t.scope = d->scope;
    d->t.topic = d->topic;
    for (unsigned i = 0; i < src->nvalues && i < TALLY_COLUMNS_MAX; i++) {
        copy(d->columns[i], sizeof d->columns[i], src->values[i].column);
        d->t.values[i].column = d->columns[i];
    }
    return d;
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
        cli_render_tally_t *d = cli_render_dup(t);
        if (d == NULL) {
            r->oom = true;
            return;
        }
        t = &d->t;
    }
    r->v[r->n++] = t;
}

void cli_render_rows_free(cli_render_rows_t *r)
{
    /* A copy's tally is the first member of its cli_render_tally_t, so
     * its address is the copy's. */
    for (size_t i = 0; r->copy && i < r->n; i++)
        free((void *)r->v[i]);
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}

const char *cli_render_scope(const tally_tally_t *t)
{
    return t->scope[0] ? t->scope : "county";
}

void cli_render_value(char *buf, size_t cap, int kind, const tally_value_t *v)
{
    if (!v->present) {
        snprintf(buf, cap, "-");
    } else if (kind == TALLY_KIND_RATIO) {
        snprintf(buf, cap, "%.1f%%", v->den ? 100.0 * (double)v->num / (double)v->den : 0.0);
    } else if (v->den != 1 && v->den != 0) {
        snprintf(buf, cap, "%" PRId64 "/%" PRId64, v->num, v->den);
    } else {
        snprintf(buf, cap, "%" PRId64, v->num);
    }
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

void cli_render_sort(const tally_tally_t **v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_tally);
}

static const char *const canonical[] = {"1h",    "24h",     "7d",   "30d",  "today",
                                        "month", "quarter", "year", "total"};
#define NCANON    (sizeof canonical / sizeof canonical[0])
#define NCOLS_MAX 62 /* table columns besides METRIC and SCOPE */

/* The union of the value columns of v, canonical ones first. */
static size_t columns(const tally_tally_t *const *v, size_t n, const char **out)
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
    const char *cols[NCOLS_MAX];
    size_t ncols = columns(v, n, cols);
    table_t *t = table_new((unsigned)ncols + 2);
    if (t == NULL)
        return TALLY_ENOMEM;
    const char *cells[NCOLS_MAX + 2];
    char text[NCOLS_MAX][32];
    cells[0] = "METRIC";
    cells[1] = "SCOPE";
    for (size_t c = 0; c < ncols; c++) {
        cells[c + 2] = cols[c];
        table_align_right(t, (unsigned)c + 2);
    }
    int rc = table_add(t, cells);
    for (size_t i = 0; i < n && rc == 0; i++) {
        cells[0] = v[i]->metric;
        cells[1] = cli_render_scope(v[i]);
        for (size_t c = 0; c < ncols; c++) {
            const tally_value_t *val = tally_tally_value(v[i], cols[c]);
            text[c][0] = '\0';
            if (val != NULL)
                cli_render_value(text[c], sizeof text[c], v[i]->kind, val);
            cells[c + 2] = text[c];
        }
        rc = table_add(t, cells);
    }
    if (rc == 0)
        table_print(t, out);
    table_free(&t);
    return rc;
}

static void json_value(FILE *out, int kind, const tally_value_t *v)
{
    if (!v->present) {
        fputs("null", out);
    } else if (kind == TALLY_KIND_RATIO) {
        fprintf(out, "{\"num\":%" PRId64 ",\"den\":%" PRId64 ",\"value\":", v->num, v->den);
        json_double(out, v->den ? (double)v->num / (double)v->den : 0.0);
        fputc('}', out);
    } else {
        fprintf(out, "%" PRId64, v->num);
    }
}

void cli_render_json_tally(FILE *out, const tally_tally_t *t, bool with_seq)
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
    fputs(",\"values\":{", out);
    for (unsigned i = 0; i < t->nvalues; i++) {
        if (i > 0)
            fputc(',', out);
        json_string(out, t->values[i].column);
        fputc(':', out);
        json_value(out, t->kind, &t->values[i]);
    }
    fputs("}}", out);
}
