/* cli_period.c - the tally command (client/cli/): one calendar period,
 * `tally get --period P [--compare]` (PROTOCOL.md 10.8), and what it
 * shares with `tally history` (cli_history.c). */
#include "cli_period.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "calperiod.h"
#include "cli_render.h"
#include "json.h"
#include "text.h"
#include "table.h"
#include "vec.h"

int cli_history_refused(const cli_opts_t *o, int rc, const tally_request_t *req, const char *what)
{
    cli_global_t *g = o->g;
    const char *cmd = o->cmd;
    const char *msg = req->errbuf != NULL && req->errbuf[0] ? req->errbuf : tally_strerror(rc);
    const char *name = rc == TALLY_EUNKTOWN ? o->town : rc == TALLY_EUNKMETRIC ? o->metric : NULL;
    char hint[PROTO_NAME_MAX * 2 + 64] = "";
    cli_name_t known =
        name != NULL ? cli_name_check(o, req->curve, name, rc == TALLY_EUNKTOWN, hint, sizeof hint)
                     : CLI_NAME_KNOWN;
    switch (rc) {
    case TALLY_EUNKTOWN:
    case TALLY_EUNKMETRIC:
        if (known == CLI_NAME_NOT_LISTED) {
            fprintf(stderr, "tally %s: %s is not in the daemon's catalog%s%s\n", cmd, what,
                    rc == TALLY_EUNKMETRIC ? " and has no tallies" : "", hint);
            return CLI_USAGE;
        }
        fprintf(stderr, "tally %s: %s: %s%s\n", cmd, what, msg, hint);
        return CLI_USAGE;
    case TALLY_EBADPERIOD:
        fprintf(stderr, "tally %s: %s: %s\n", cmd, what, msg);
        return CLI_USAGE;
    case TALLY_EEXPIRED:
        fprintf(stderr, "tally %s: %s: %s\n", cmd, what, msg);
        return CLI_REJECTED;
    case TALLY_ETYPE:
        fprintf(stderr,
                "tally %s: the daemon at %s keeps no history of closed periods (it is older "
                "than PERIOD_REQ); upgrade tallyd\n",
                cmd, g->server);
        return CLI_REJECTED;
    default:
        return cli_request_failed(g, cmd, rc, req, o->timeout_ms);
    }
}

/* The argument a refusal is about, for the message. */
static const char *blame(int rc, const cli_opts_t *o, const char *period_arg)
{
    static char buf[160];
    if (rc == TALLY_EUNKTOWN && o->town != NULL)
        snprintf(buf, sizeof(buf), "--town '%s'", o->town);
    else if (rc == TALLY_EUNKMETRIC && o->metric != NULL)
        snprintf(buf, sizeof(buf), "--metric '%s'", o->metric);
    else
        snprintf(buf, sizeof(buf), "--period '%s'", period_arg);
    return buf;
}

/* ---- comparison ---- */

typedef struct cmp_set {
    char name[CLI_SPAN_NAME_MAX];
    const char *relation; /* "previous", "year_ago", or both */
    cli_render_rows_t rows;
} cmp_set_t;

/* The tally of t's metric and scope in r (sorted by cli_render_sort once
 * fetched), or NULL: a lookup per row and period, which a province's
 * tens of thousands of rows make many. */
static const tally_tally_t *find(const cli_render_rows_t *r, const tally_tally_t *t)
{
    return cli_render_find(r->v, r->n, t);
}

/* The cells of v's row in the comparison: its names, its value of
 * period, then for each set its value, the change and the change in %,
 * formatted into text. */
static void compare_row(const tally_tally_t *v, const char *period, const cmp_set_t *sets,
                        size_t nsets, cli_render_cat_t cat, size_t first, const char **cells,
                        char (*text)[64])
{
    const char *metric, *unit, *scope;
    int scale;
    cli_render_names(v, cat, &metric, &unit, &scope, &scale);
    cells[0] = metric;
    cells[1] = cli_render_unit(v->kind, unit);
    cells[first - 1] = scope;
    const tally_value_t *a = tally_tally_value(v, period);
    text[0][0] = '\0';
    if (a != NULL)
        cli_render_scaled(text[0], sizeof(text[0]), v->kind, a, scale);
    cells[first] = text[0];
    for (size_t s = 0; s < nsets; s++) {
        char *vb = text[1 + 3 * s], *va = text[2 + 3 * s], *vr = text[3 + 3 * s];
        vb[0] = va[0] = vr[0] = '\0';
        const tally_tally_t *o = find(&sets[s].rows, v);
        const tally_value_t *b = o ? tally_tally_value(o, sets[s].name) : NULL;
        if (b != NULL)
            cli_render_scaled(vb, 64, v->kind, b, scale);
        double da = 0, dr = 0;
        bool hr;
        if (a != NULL && b != NULL && a->present && b->present)
            cli_change(v->kind, scale, a, b, va, 64, vr, 64, &da, &dr, &hr);
        /* Nothing to compare with (a comparison whose days the daemon no
         * longer keeps, a series it did not have then): -, as tally(1)
         * says, not blank cells. */
        for (int k = 1; k <= 3; k++)
            if (text[k + 3 * s][0] == '\0')
                snprintf(text[k + 3 * s], 64, "-");
        cells[first + 1 + 3 * s] = vb;
        cells[first + 2 + 3 * s] = va;
        cells[first + 3 + 3 * s] = vr;
    }
}

/* Two passes, the widths and then the rows (cli_render_table_cat). */
static void print_compare_table(const tally_tally_t *const *v, size_t n, const char *period,
                                const cmp_set_t *sets, size_t nsets, cli_render_cat_t cat)
{
    size_t first = cat.names ? 3 : 2, ncols = first + 1 + 3 * nsets;
    table_t *t = table_new((unsigned)ncols);
    if (t == NULL)
        return;
    const char *head[16], *cells[16];
    char text[16][64];
    head[0] = "METRIC";
    head[1] = cat.names ? "UNIT" : "SCOPE";
    head[first - 1] = "SCOPE";
    head[first] = period;
    for (size_t s = 0; s < nsets; s++) {
        head[first + 1 + 3 * s] = sets[s].name;
        head[first + 2 + 3 * s] = "CHANGE";
        head[first + 3 + 3 * s] = "%";
    }
    for (size_t c = first; c < ncols; c++)
        table_align_right(t, (unsigned)c);
    table_measure(t, head);
    for (size_t i = 0; i < n; i++) {
        compare_row(v[i], period, sets, nsets, cat, first, cells, text);
        table_measure(t, cells);
    }
    table_print_row(t, head, stdout);
    for (size_t i = 0; i < n; i++) {
        compare_row(v[i], period, sets, nsets, cat, first, cells, text);
        table_print_row(t, cells, stdout);
    }
    table_free(&t);
}

void cli_json_value(const tally_value_t *v, int kind)
{
    if (v == NULL)
        fputs("null", stdout);
    else
        text_json_value(stdout, v->present, kind == TALLY_KIND_RATIO, v->num, v->den);
}

void cli_json_change(int kind, int scale, const tally_value_t *a, const tally_value_t *b)
{
    if (a == NULL || b == NULL || !a->present || !b->present) {
        fputs("null", stdout);
        return;
    }
    char ta[64], tr[64];
    double da = 0, dr = 0;
    bool hr = false;
    cli_change(kind, scale, a, b, ta, sizeof(ta), tr, sizeof(tr), &da, &dr, &hr);
    fputs(kind == TALLY_KIND_RATIO ? "{\"points\":" : "{\"abs\":", stdout);
    json_double(stdout, da);
    fputs(",\"pct\":", stdout);
    if (hr)
        json_double(stdout, dr);
    else
        fputs("null", stdout);
    fputc('}', stdout);
}

static void print_compare_json(const tally_tally_t *const *v, size_t n, const char *period,
                               const char *through, const cmp_set_t *sets, size_t nsets,
                               cli_render_cat_t cat)
{
    fputs("{\"period\":", stdout);
    json_string(stdout, period);
    if (through[0]) {
        fputs(",\"through\":", stdout);
        json_string(stdout, through);
    }
    fputs(",\"compare\":[", stdout);
    for (size_t s = 0; s < nsets; s++) {
        fputs(s ? ",{\"period\":" : "{\"period\":", stdout);
        json_string(stdout, sets[s].name);
        fputs(",\"relation\":", stdout);
        json_string(stdout, sets[s].relation);
        fputc('}', stdout);
    }
    fputs("],\"tallies\":[", stdout);
    for (size_t i = 0; i < n; i++) {
        const char *metric, *unit, *scope;
        int scale;
        cli_render_names(v[i], cat, &metric, &unit, &scope, &scale);
        fputs(i ? ",{\"metric\":" : "{\"metric\":", stdout);
        json_string(stdout, v[i]->metric);
        fputs(",\"scope\":", stdout);
        json_string(stdout, cli_render_scope(v[i]));
        fputs(",\"kind\":", stdout);
        json_string(stdout, tally_kind_name(v[i]->kind));
        if (cat.names) {
            fputs(",\"label\":", stdout);
            json_string(stdout, metric);
            fputs(",\"unit\":", stdout);
            json_string(stdout, unit);
            printf(",\"scale\":%d,\"scope_name\":", scale);
            json_string(stdout, scope);
        }
        const tally_value_t *a = tally_tally_value(v[i], period);
        fputs(",\"values\":{", stdout);
        json_string(stdout, period);
        fputc(':', stdout);
        cli_json_value(a, v[i]->kind);
        for (size_t s = 0; s < nsets; s++) {
            const tally_tally_t *o = find(&sets[s].rows, v[i]);
            fputc(',', stdout);
            json_string(stdout, sets[s].name);
            fputc(':', stdout);
            cli_json_value(o ? tally_tally_value(o, sets[s].name) : NULL, v[i]->kind);
        }
        fputs("},\"changes\":{", stdout);
        for (size_t s = 0; s < nsets; s++) {
            const tally_tally_t *o = find(&sets[s].rows, v[i]);
            const tally_value_t *b = o ? tally_tally_value(o, sets[s].name) : NULL;
            if (s)
                fputc(',', stdout);
            json_string(stdout, sets[s].name);
            fputc(':', stdout);
            cli_json_change(v[i]->kind, scale, a, b);
        }
        fputs("}}", stdout);
    }
    fputs("]}\n", stdout);
}

/* Read period into rows.  A comparison (compared) whose days the daemon no
 * longer keeps is left without rows, said on stderr: its columns show -. */
static int fetch(cli_global_t *g, const cli_opts_t *o, const tally_curve_t *curve,
                 const cli_span_t *period, cli_render_rows_t *rows, const char *arg,
                 tally_townships_t *found, bool compared)
{
    char err[600];
    tally_request_t req = cli_request(curve, o->timeout_ms, err, sizeof err);
    int rc = cli_span_fetch(g->server, &req, o->prefix, period, NULL, 0, found, cli_render_rows_add,
                            rows);
    if (rc == TALLY_EEXPIRED && compared) {
        fprintf(stderr,
                "tally get: %s is older than the days the daemon keeps: nothing to compare with "
                "(-)\n",
                period->name);
        return CLI_OK;
    }
    if (rc == TALLY_ETYPE && period->span) {
        fprintf(stderr,
                "tally get: the daemon at %s cannot read a span of days %s (it is older than "
                "SPAN_REQ, which --period FROM..TO and --compare of a period not over yet "
                "need); upgrade tallyd\n",
                g->server, period->name);
        return CLI_REJECTED;
    }
    if (rc < 0)
        return cli_history_refused(o, rc, &req, blame(rc, o, arg));
    if (rows->oom) {
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    return CLI_OK;
}

int cli_get_period(cli_global_t *g, const cli_opts_t *o, const tally_curve_t *curve,
                   const char *period, bool compare)
{
    cli_render_rows_t rows = {.metric = o->all ? o->metric : NULL, .copy = true};
    cmp_set_t sets[2];
    size_t nsets = 0;
    memset(sets, 0, sizeof(sets));
    cli_span_t cur;
    cli_span_parse(period, &cur); /* checked by the caller */
    const char *pname = cur.name;
    tally_townships_t found = {0}; /* a county read in parts: its townships */
    int status = fetch(g, o, curve, &cur, &rows, period, &found, false);
    char through[CALPERIOD_NAME_MAX] = ""; /* the daemon's today, when cur is open on it */
    if (status == CLI_OK && compare) {
        char err[600];
        tally_request_t req = cli_request(curve, o->timeout_ms, err, sizeof err);
        int32_t today = INT32_MIN;
        int rc = cli_daemon_today(g->server, &req, &today);
        if (rc < 0)
            status = cli_request_failed(g, "get", rc, &req, o->timeout_ms);
        else if (cli_span_open(&cur, today))
            calperiod_format((calperiod_t){CALPERIOD_DAY, today}, through, sizeof(through));
        cli_span_t cand[2];
        bool has[2];
        cli_span_compare(&cur, today, &cand[0], &has[0], &cand[1], &has[1]);
        const char *rel[2] = {"previous", "year_ago"};
        for (int i = 0; i < 2 && status == CLI_OK; i++) {
            if (!has[i])
                continue; /* before 2000, or a span: nothing to compare with */
            if (nsets > 0 && strcmp(sets[0].name, cand[i].name) == 0) {
                sets[0].relation = "previous,year_ago";
                continue;
            }
            cmp_set_t *s = &sets[nsets++];
            snprintf(s->name, sizeof(s->name), "%s", cand[i].name);
            s->relation = rel[i];
            s->rows = (cli_render_rows_t){.metric = rows.metric, .copy = true};
            status = fetch(g, o, curve, &cand[i], &s->rows, s->name, &found, true);
            cli_render_sort(s->rows.v, s->rows.n);
        }
    }
    if (status == CLI_OK) {
        cli_render_cat_t cat =
            cli_render_catalog(g, "get", curve, o->labels, o->timeout_ms,
                               !o->json && isatty(STDOUT_FILENO), !o->json && rows.n > 0);
        cli_render_sort_cat(rows.v, rows.n, cat);
        if (rows.n == 0 && !o->json) {
            fprintf(stderr, "tally get: no tallies for %s under this selection\n", pname);
        } else if (compare && o->json) {
            print_compare_json(rows.v, rows.n, pname, through, sets, nsets, cat);
        } else if (compare) {
            if (through[0])
                printf("%s to %s (the daemon's today) against as many days before:\n", pname,
                       through);
            print_compare_table(rows.v, rows.n, pname, sets, nsets, cat);
        } else if (o->json) {
            fputs("{\"period\":", stdout);
            json_string(stdout, pname);
            fputs(",\"tallies\":[", stdout);
            for (size_t i = 0; i < rows.n; i++) {
                if (i > 0)
                    fputc(',', stdout);
                cli_render_json_tally_cat(stdout, rows.v[i], false, cat);
            }
            fputs("]}\n", stdout);
        } else if (cli_render_table_cat(stdout, rows.v, rows.n, cat) < 0) {
            cli_error("out of memory");
            status = CLI_INTERNAL;
        }
    }
    for (size_t s = 0; s < nsets; s++)
        cli_render_rows_free(&sets[s].rows);
    cli_render_rows_free(&rows);
    tally_townships_clear(&found);
    return status;
}
