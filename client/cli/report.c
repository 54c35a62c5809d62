/* report.c - the tally command (client/cli/): a period's figures as a
 * report, and its Markdown and CSV forms (see report.h). */
#include "report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "calperiod.h"
#include "cli_render.h"
#include "vec.h"

typedef cli_i128 i128;

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static report_row_t *row_of(report_t *r, const char *id)
{
    for (size_t i = 0; i < r->nrows; i++)
        if (strcmp(r->rows[i].id, id) == 0)
            return &r->rows[i];
    return NULL;
}

static report_row_t *add_row(report_t *r, const char *id)
{
    if (VEC_RESERVE(r->rows, r->cap, r->nrows + 1) < 0)
        return NULL;
    report_row_t *row = &r->rows[r->nrows];
    memset(row, 0, sizeof(*row));
    copy(row->id, sizeof(row->id), id);
    copy(row->label, sizeof(row->label), id);
    row->cur = calloc(r->nscopes, sizeof(*row->cur));
    row->prev = calloc(r->nscopes, sizeof(*row->prev));
    row->before = calloc(r->nscopes, sizeof(*row->before));
    if (row->cur == NULL || row->prev == NULL || row->before == NULL) {
        free(row->cur);
        free(row->prev);
        free(row->before);
        return NULL;
    }
    r->nrows++;
    return row;
}

typedef struct fill {
    report_t *r;
    char (**by_id)[65]; /* the scopes' ids, sorted: a country has 40,000 */
    enum { FILL_CUR, FILL_YEAR_AGO, FILL_BEFORE } which;
    bool oom;
} fill_t;

static int cmp_scope(const void *a, const void *b)
{
    return strcmp(**(char(*const *)[65])a, **(char(*const *)[65])b);
}

static int cmp_key(const void *key, const void *elt)
{
    return strcmp(key, **(char(*const *)[65])elt);
}

static void on_tally(void *ctx, const tally_tally_t *t)
{
    fill_t *f = ctx;
    report_t *r = f->r;
    char(**at)[65] = bsearch(t->scope, f->by_id, r->nscopes, sizeof(*f->by_id), cmp_key);
    if (at == NULL || t->nvalues != 1)
        return; /* a township not asked for (a prefix matches more) */
    size_t s = (size_t)(*at - r->scope_id);
    report_row_t *row = row_of(r, t->metric);
    if (row == NULL) {
        if ((row = add_row(r, t->metric)) == NULL) {
            f->oom = true;
            return;
        }
        row->kind = t->kind;
    }
    report_cell_t *c = f->which == FILL_YEAR_AGO ? &row->prev[s]
                       : f->which == FILL_BEFORE ? &row->before[s]
                                                 : &row->cur[s];
    c->present = t->values[0].present;
    c->num = t->values[0].num;
    c->den = t->values[0].den;
    if (f->which == FILL_CUR && c->present && c->num != 0)
        r->any_data = true;
}

/* An earlier period's names: "2022", or a span's "2022-01-01 至 2022-12-06"
 * (for notes), and in Chinese (for headings). */
static void name_earlier(const cli_span_t *s, char *name, size_t cap, char *zh, size_t zh_cap)
{
    if (s == NULL) {
        name[0] = zh[0] = '\0';
        return;
    }
    if (s->span)
        snprintf(name, cap, "%s 至 %s", s->from, s->to);
    else
        copy(name, cap, s->name);
    cli_span_zh(s, zh, zh_cap);
}

/* Read an earlier period into the cells which selects; days older than
 * the daemon keeps leave them without values (*expired). */
static int fetch_earlier(report_t *r, fill_t *f, int which, const char *prefix, const cli_span_t *s,
                         report_fetch_fn fetch, void *fetch_ctx, bool *expired)
{
    f->which = which;
    int rc = fetch(fetch_ctx, prefix, s, on_tally, f);
    if (rc != TALLY_EEXPIRED)
        return rc;
    *expired = true; /* not 0: not known */
    for (size_t i = 0; i < r->nrows; i++)
        for (size_t k = 0; k < r->nscopes; k++) {
            report_row_t *row = &r->rows[i];
            (which == FILL_YEAR_AGO ? row->prev : row->before)[k].present = false;
        }
    return 0;
}

int report_build(report_t *r, const cli_span_t *period, bool compare, const cli_span_t *year_ago,
                 const cli_span_t *before, int32_t today, const char *const *ids, size_t n,
                 const tally_catalog_t *cat, report_fetch_fn fetch, void *fetch_ctx)
{
    memset(r, 0, sizeof(*r));
    if (!compare)
        year_ago = before = NULL;
    copy(r->period, sizeof(r->period), period->name);
    cli_span_zh(period, r->period_zh, sizeof(r->period_zh));
    if (cli_span_open(period, today))
        calperiod_format((calperiod_t){CALPERIOD_DAY, today}, r->through, sizeof(r->through));
    if (today != INT32_MIN)
        cli_period_zh((calperiod_t){CALPERIOD_DAY, today}, r->made_zh, sizeof(r->made_zh));
    r->compare = compare;
    name_earlier(year_ago, r->year_ago, sizeof(r->year_ago), r->year_ago_zh,
                 sizeof(r->year_ago_zh));
    name_earlier(before, r->before, sizeof(r->before), r->before_zh, sizeof(r->before_zh));
    r->nscopes = n;
    r->scope_id = calloc(n, sizeof(*r->scope_id));
    r->scope_name = calloc(n, sizeof(*r->scope_name));
    if (r->scope_id == NULL || r->scope_name == NULL)
        return TALLY_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        copy(r->scope_id[i], sizeof(r->scope_id[i]), ids[i]);
        const tally_township_info_t *t =
            ids[i][0] ? tally_catalog_find_township(cat, ids[i], NULL) : NULL;
        copy(r->scope_name[i], sizeof(r->scope_name[i]),
             ids[i][0] == '\0'              ? "全县"
             : t != NULL && t->name[0] != 0 ? t->name
                                            : ids[i]);
    }
    /* As an office titles what it hands in: who, when, what
     * (高观镇2023年统计报表); the catalog names no subject. */
    copy(r->unit_name, sizeof(r->unit_name), n == 1 ? r->scope_name[0] : "全县");
    snprintf(r->heading, sizeof(r->heading), "%s%s统计报表",
             n == 1 ? r->scope_name[0] : "全县及各乡镇（街道）", r->period_zh);
    if (r->through[0])
        cli_period_zh((calperiod_t){CALPERIOD_DAY, today}, r->through_zh, sizeof(r->through_zh));
    snprintf(r->title, sizeof(r->title), "%s%s%s%s", r->heading, r->through_zh[0] ? "（截至" : "",
             r->through_zh, r->through_zh[0] ? "）" : "");
    /* The catalog's metrics first, in its order. */
    for (size_t i = 0; i < tally_catalog_metrics(cat); i++) {
        const tally_metric_info_t *m = tally_catalog_metric(cat, i);
        report_row_t *row = add_row(r, m->id);
        if (row == NULL)
            return TALLY_ENOMEM;
        if (m->label[0])
            copy(row->label, sizeof(row->label), m->label);
        copy(row->unit, sizeof(row->unit), m->unit);
        row->kind = m->kind;
        row->scale = m->scale;
        for (size_t s = 0; s < n; s++) /* a counter without samples reads 0 */
            row->cur[s].present = row->prev[s].present = row->before[s].present =
                m->kind == TALLY_KIND_COUNTER;
        for (size_t s = 0; s < n; s++)
            row->cur[s].den = row->prev[s].den = row->before[s].den = 1;
    }
    size_t first_extra = r->nrows;
    const char *prefix = n == 1 && ids[0][0] ? NULL : n == 1 ? "u/county/" : "u/";
    char town_prefix[96];
    if (prefix == NULL) {
        snprintf(town_prefix, sizeof(town_prefix), "u/town/%s/", ids[0]);
        prefix = town_prefix;
    }
    fill_t f = {.r = r, .by_id = calloc(n ? n : 1, sizeof(*f.by_id))};
    if (f.by_id == NULL)
        return TALLY_ENOMEM;
    for (size_t i = 0; i < n; i++)
        f.by_id[i] = &r->scope_id[i];
    qsort(f.by_id, n, sizeof(*f.by_id), cmp_scope);
    int rc = fetch(fetch_ctx, prefix, period, on_tally, &f);
    if (rc == 0 && !f.oom && year_ago != NULL)
        rc = fetch_earlier(r, &f, FILL_YEAR_AGO, prefix, year_ago, fetch, fetch_ctx,
                           &r->year_ago_expired);
    if (rc == 0 && !f.oom && before != NULL)
        rc =
            fetch_earlier(r, &f, FILL_BEFORE, prefix, before, fetch, fetch_ctx, &r->before_expired);
    free(f.by_id);
    if (rc != 0)
        return rc;
    if (f.oom)
        return TALLY_ENOMEM;
    /* Metrics the catalog lacks, by id, after its own. */
    for (size_t i = first_extra; i + 1 < r->nrows; i++)
        for (size_t j = i + 1; j < r->nrows; j++)
            if (strcmp(r->rows[j].id, r->rows[i].id) < 0) {
                report_row_t t = r->rows[i];
                r->rows[i] = r->rows[j];
                r->rows[j] = t;
            }
    return 0;
}

void report_free(report_t *r)
{
    for (size_t i = 0; i < r->nrows; i++) {
        free(r->rows[i].cur);
        free(r->rows[i].prev);
        free(r->rows[i].before);
    }
    free(r->rows);
    free(r->scope_id);
    free(r->scope_name);
    memset(r, 0, sizeof(*r));
}

/* Round num * 10^k / den half away from zero. */
void report_format(char *buf, size_t cap, const report_row_t *row, const report_cell_t *c)
{
    if (!c->present) {
        snprintf(buf, cap, "%s", "");
    } else if (row->kind == TALLY_KIND_RATIO) {
        /* 216/219 -> 986 tenths of a percent -> 98.6% */
        cli_render_fixed(buf, cap, cli_round_div((i128)c->num * 1000, c->den ? c->den : 1), 1,
                         false, "%");
    } else {
        cli_render_fixed(buf, cap, c->num, row->scale, false, "");
    }
}

bool report_change(const report_row_t *row, const report_cell_t *a, const report_cell_t *b,
                   const char *pp, char *abs_, size_t abs_cap, char *rel, size_t rel_cap)
{
    abs_[0] = rel[0] = '\0';
    if (!a->present || !b->present)
        return false;
    if (row->kind == TALLY_KIND_RATIO) {
        /* tenths of a percentage point, from the exact fractions */
        i128 d;
        if (!cli_ratio_change_tenths(a->num, a->den, b->num, b->den, &d))
            return false;
        cli_render_fixed(abs_, abs_cap, d, 1, true, pp);
        return true;
    }
    i128 d = (i128)a->num - b->num;
    cli_render_fixed(abs_, abs_cap, d, row->scale, true, "");
    if (b->num != 0)
        cli_render_fixed(rel, rel_cap, cli_round_div(d * 1000, b->num < 0 ? -(i128)b->num : b->num),
                         1, true, "%");
    return true;
}

bool report_change_number(const report_row_t *row, const report_cell_t *a, const report_cell_t *b,
                          double *abs_, double *rel, bool *has_rel)
{
    *abs_ = *rel = 0;
    *has_rel = false;
    if (!a->present || !b->present)
        return false;
    if (row->kind == TALLY_KIND_RATIO) {
        i128 d; /* the points the text shows: the printed rates' difference */
        if (!cli_ratio_change_tenths(a->num, a->den, b->num, b->den, &d))
            return false;
        *abs_ = (double)d / 10.0;
        return true;
    }
    double p = 1;
    for (int i = 0; i < row->scale; i++)
        p *= 10;
    *abs_ = (double)((i128)a->num - b->num) / p;
    if (b->num != 0) {
        *rel = (double)((i128)a->num - b->num) / (double)(b->num < 0 ? -(i128)b->num : b->num);
        *has_rel = true;
    }
    return true;
}

double report_number(const report_row_t *row, const report_cell_t *c)
{
    if (row->kind == TALLY_KIND_RATIO)
        return c->den ? (double)c->num / (double)c->den : 0.0;
    double p = 1;
    for (int i = 0; i < row->scale; i++)
        p *= 10;
    return (double)c->num / p;
}

/* ---- Markdown ---- */

/* A cell's text with the characters Markdown tables give meaning to
 * escaped. */
static void md_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|' || *s == '\\')
            fputc('\\', out);
        fputc(*s == '\n' ? ' ' : *s, out);
    }
}

int report_compared(const report_t *r, report_group_t g[2], size_t *ng)
{
    *ng = 0;
    if (!r->compare || (!r->year_ago[0] && !r->before[0]))
        return -1;
    int cs = -1;
    if (r->nscopes == 1)
        cs = 0;
    for (size_t s = 0; cs < 0 && s < r->nscopes; s++)
        if (r->scope_id[s][0] == '\0')
            cs = (int)s;
    if (cs < 0)
        return -1;
    const char *county = r->nscopes == 1 ? "" : "county_";
    for (int k = 0; k < 2; k++) {
        bool ya = k == 0;
        const char *zh = ya ? r->year_ago_zh : r->before_zh;
        if (!(ya ? r->year_ago : r->before)[0])
            continue;
        report_group_t *x = &g[(*ng)++];
        x->year_ago = ya;
        snprintf(x->heading, sizeof(x->heading), "%s%s%s", r->nscopes == 1 ? "" : r->scope_name[cs],
                 r->nscopes == 1 ? "" : " ", zh);
        x->change_zh = ya ? "同比增减" : "环比增减";
        x->pct_zh = ya ? "同比" : "环比";
        snprintf(x->csv[0], sizeof(x->csv[0]), "%s%s", county, ya ? "year_ago" : "previous");
        snprintf(x->csv[1], sizeof(x->csv[1]), "%s%s", county, ya ? "change" : "previous_change");
        snprintf(x->csv[2], sizeof(x->csv[2]), "%s%s", county,
                 ya ? "change_pct" : "previous_change_pct");
    }
    return cs;
}

const report_cell_t *report_earlier(const report_row_t *row, const report_group_t *g)
{
    return g->year_ago ? row->prev : row->before;
}

size_t report_expired_notes(const report_t *r, char notes[2][200])
{
    size_t n = 0;
    if (r->year_ago_expired)
        snprintf(notes[n++], 200, "去年同期 %s 的逐日数据已超出保存期限，无法比较", r->year_ago_zh);
    if (r->before_expired)
        snprintf(notes[n++], 200, "上期 %s 的逐日数据已超出保存期限，无法比较", r->before_zh);
    return n;
}

void report_signature(const report_t *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "填报单位：%s  填报日期：%s", r->unit_name, r->made_zh);
}

int report_write_md(const report_t *r, FILE *out)
{
    fprintf(out, "# ");
    md_text(out, r->title);
    fputs("\n\n", out);
    if (!r->any_data)
        fprintf(out, "> 本期无数据：%s 没有上报的数据，下表各项为 0 或空。\n\n", r->period_zh);
    char notes[2][200];
    size_t nnotes = report_expired_notes(r, notes);
    for (size_t k = 0; k < nnotes; k++)
        fprintf(out, "> %s。\n\n", notes[k]);
    report_group_t g[2];
    size_t ng;
    int cs = report_compared(r, g, &ng);
    fputs("| 指标 | 单位 |", out);
    for (size_t s = 0; s < r->nscopes; s++) {
        fputc(' ', out);
        md_text(out, r->nscopes == 1 ? r->period_zh : r->scope_name[s]);
        fputs(" |", out);
    }
    for (size_t k = 0; k < ng; k++) {
        fputc(' ', out);
        md_text(out, g[k].heading);
        fprintf(out, " | %s | %s |", g[k].change_zh, g[k].pct_zh);
    }
    fputs("\n|---|---|", out);
    for (size_t s = 0; s < r->nscopes + 3 * ng; s++)
        fputs("---:|", out);
    fputc('\n', out);
    for (size_t i = 0; i < r->nrows; i++) {
        const report_row_t *row = &r->rows[i];
        char v[64];
        fputs("| ", out);
        md_text(out, row->label);
        fputs(" | ", out);
        /* A ratio's values say % themselves. */
        md_text(out, row->kind == TALLY_KIND_RATIO ? "" : row->unit);
        fputs(" |", out);
        for (size_t s = 0; s < r->nscopes; s++) {
            report_format(v, sizeof(v), row, &row->cur[s]);
            fprintf(out, " %s |", v);
        }
        for (size_t k = 0; k < ng; k++) {
            char a[64], rel[64];
            const report_cell_t *b = &report_earlier(row, &g[k])[cs];
            report_format(v, sizeof(v), row, b);
            report_change(row, &row->cur[cs], b, " 个百分点", a, sizeof(a), rel, sizeof(rel));
            fprintf(out, " %s | %s | %s |", v, a, rel);
        }
        fputc('\n', out);
    }
    if (r->nscopes > 1)
        fputs(ng == 0 ? "\n（最后一列为全县合计。）\n"
              : ng == 1
                  ? (g[0].year_ago ? "\n（全县一列为全县合计，其后为全县的去年同期与同比。）\n"
                                   : "\n（全县一列为全县合计，其后为全县的上期与环比。）\n")
                  : "\n（全县一列为全县合计，其后为全县的去年同期与同比、上期与环比。）\n",
              out);
    char sig[400];
    report_signature(r, sig, sizeof(sig));
    fputc('\n', out);
    md_text(out, sig);
    fputc('\n', out);
    return ferror(out) ? TALLY_EIO : 0;
}

/* ---- CSV (RFC 4180) ---- */

static void csv_field(FILE *out, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

int report_write_csv(const report_t *r, FILE *out)
{
    report_group_t g[2];
    size_t ng;
    int cs = report_compared(r, g, &ng);
    fputs("metric,kind,unit,label", out);
    if (r->nscopes == 1) {
        fputs(",value", out);
    } else {
        for (size_t s = 0; s < r->nscopes; s++) {
            fputc(',', out);
            csv_field(out, r->scope_name[s]);
        }
    }
    for (size_t k = 0; k < ng; k++) /* with several scopes, the county's */
        fprintf(out, ",%s,%s,%s", g[k].csv[0], g[k].csv[1], g[k].csv[2]);
    /* A CSV row is read without the title: each says which period it
     * holds, and through which day when the period is not over. */
    fputs(",period,through\r\n", out);
    for (size_t i = 0; i < r->nrows; i++) {
        const report_row_t *row = &r->rows[i];
        char v[64];
        csv_field(out, row->id);
        fputc(',', out);
        fputs(tally_kind_name(row->kind), out);
        fputc(',', out);
        csv_field(out, row->kind == TALLY_KIND_RATIO ? "%" : row->unit);
        fputc(',', out);
        csv_field(out, row->label);
        for (size_t s = 0; s < r->nscopes; s++) {
            report_format(v, sizeof(v), row, &row->cur[s]);
            fputc(',', out);
            csv_field(out, v);
        }
        for (size_t k = 0; k < ng; k++) {
            char a[64], rel[64];
            const report_cell_t *b = &report_earlier(row, &g[k])[cs];
            report_format(v, sizeof(v), row, b);
            report_change(row, &row->cur[cs], b, "pp", a, sizeof(a), rel, sizeof(rel));
            fprintf(out, ",%s,%s,%s", v, a, rel);
        }
        fputc(',', out);
        csv_field(out, r->period);
        fputc(',', out);
        csv_field(out, r->through);
        fputs("\r\n", out);
    }
    return ferror(out) ? TALLY_EIO : 0;
}
