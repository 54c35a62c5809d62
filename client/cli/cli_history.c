/* cli_history.c - the tally command (client/cli/): one series period by
 * period, `tally history` (PROTOCOL.md 10.8). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calperiod.h"
#include "cli_period.h"
#include "cli_render.h"
#include "json.h"
#include "table.h"
#include "vec.h"

/* ---- tally history ---- */

/* clang-format off */
const char cli_history_usage[] =
    "Usage: tally history --metric M [--town T] --by day|month|quarter|year\n"
    "                     --from PERIOD --to PERIOD [--compare] [--json | --csv]\n"
    "                     [OPTIONS]\n"
    "\n"
    "Print one series period by period, for trends: the county's by default, a\n"
    "township's with --town.  PERIOD is YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD; the\n"
    "range runs from the period holding the first day of --from to the one holding\n"
    "the last day of --to (--by month --from 2023 --to 2023: the 12 months of\n"
    "2023), at most 10,000 periods.\n"
    "\n"
    "Options:\n"
    "  -m, --metric M     the metric (required): its id, or its label in the catalog\n"
    "  -t, --town T       township T (its id, or its name: 高观镇) instead of the\n"
    "                     county\n"
    "      --by UNIT      day, month, quarter or year (required)\n"
    "      --from PERIOD  the first period (required)\n"
    "      --to PERIOD    the last period (default: --from)\n"
    "      --compare      add each period's 同比: the same period a year earlier,\n"
    "                     the change and the change in percent (percentage points\n"
    "                     for a ratio); for the period holding the daemon's today,\n"
    "                     the same days a year earlier\n"
    "  -j, --json         one JSON document: {\"metric\":..,\"scope\":..,\"points\":[...]}\n"
    "      --csv          CSV: period,value (ratios as percentages); with\n"
    "                     --compare also year_ago,change,change_pct\n"
    CLI_OPTS_HELP_LABELS("")
    CLI_OPTS_HELP_TIMEOUT("")
    CLI_OPTS_HELP_SERVER("", "a subscriber's")
    CLI_OPTS_HELP_HELP("")
    "\n"
    "Exit status: 0 printed, 1 the daemon refused the request, 2 usage error (a\n"
    "period that does not parse or has not begun, a range too long, an unknown\n"
    "metric or township), 3 no answer, 4 internal error.\n";
/* clang-format on */

typedef struct points {
    tally_value_t *v;
    char (*names)[CALPERIOD_NAME_MAX];
    size_t n, cap, names_cap;
    int kind;
    bool oom;
} points_t;

static void on_point(void *ctx, int kind, const tally_value_t *value)
{
    points_t *p = ctx;
    p->kind = kind;
    if (VEC_RESERVE(p->v, p->cap, p->n + 1) < 0 ||
        VEC_RESERVE(p->names, p->names_cap, p->n + 1) < 0) {
        p->oom = true;
        return;
    }
    snprintf(p->names[p->n], CALPERIOD_NAME_MAX, "%s", value->column);
    p->v[p->n] = *value;
    p->v[p->n].column = NULL; /* set when printing: names may move while growing */
    p->n++;
}

static void points_free(points_t *p)
{
    free(p->v);
    free(p->names);
    memset(p, 0, sizeof(*p));
}

/* What history prints: the points, the one holding the daemon's today
 * (open_at; n when none) and, with --compare, each point's value a year
 * earlier (ya[i], its period or span in ya_name[i]; not present when
 * there is none). */
typedef struct history {
    const char *metric, *scope, *by;
    points_t pts;
    size_t open_at;
    char through[CALPERIOD_NAME_MAX]; /* today, when a point holds it */
    bool compare;
    tally_value_t *ya;
    char (*ya_name)[CLI_SPAN_NAME_MAX];
    const tally_metric_info_t *mi; /* the names to show (--labels), or NULL: the id */
    int scale;
} history_t;

static void on_span_value(void *ctx, const tally_tally_t *t)
{
    tally_value_t *v = ctx;
    if (t->nvalues > 0) {
        *v = t->values[0];
        v->column = NULL;
    }
}

/* Each point's value a year earlier into h->ya: the periods a year
 * earlier by one range request (by the same unit, so the period a year
 * before point i is found by its key: 29 February's is the 28th's), the
 * open point's the same days a year earlier by a span request (1 to 6
 * December 2025 for December 2026 on the 6th).  Periods before 2000 and
 * days no longer kept have none.  Returns 0 or a request's error. */
static int year_ago(const char *server, tally_request_t *req, const char *prefix, int32_t today,
                    history_t *h)
{
    const points_t *p = &h->pts;
    h->ya = calloc(p->n, sizeof(*h->ya));
    h->ya_name = calloc(p->n, sizeof(*h->ya_name));
    if (h->ya == NULL || h->ya_name == NULL)
        return TALLY_ENOMEM;
    calperiod_t first, last, y0, y1, pi;
    char from[CALPERIOD_NAME_MAX], to[CALPERIOD_NAME_MAX];
    calperiod_parse(p->v[0].column, strlen(p->v[0].column), &first);
    calperiod_parse(p->v[p->n - 1].column, strlen(p->v[p->n - 1].column), &last);
    y0 = calperiod_year_ago(first);
    y1 = calperiod_year_ago(last);
    if (calperiod_format(y1, to, sizeof(to)) < 0)
        return 0; /* every period a year earlier is before 2000 */
    while (calperiod_format(y0, from, sizeof(from)) < 0) /* from 2000 on */
        y0 = calperiod_add(y0, 1);
    points_t yp = {0};
    int rc = tally_range_req(server, req, h->metric, h->scope, h->by, from, to, on_point, &yp);
    if (rc == TALLY_EEXPIRED) /* a day a year earlier is no longer kept: none */
        rc = 0, yp.n = 0;
    if (rc == 0 && yp.oom)
        rc = TALLY_ENOMEM;
    for (size_t i = 0; rc == 0 && i < p->n; i++) {
        calperiod_parse(p->v[i].column, strlen(p->v[i].column), &pi);
        calperiod_t y = calperiod_year_ago(pi);
        if (calperiod_format(y, h->ya_name[i], sizeof(h->ya_name[i])) < 0)
            continue;
        int64_t at = (int64_t)y.key - y0.key;
        if (at >= 0 && (size_t)at < yp.n)
            h->ya[i] = yp.v[at];
        h->ya[i].column = NULL;
    }
    points_free(&yp);
    if (rc != 0 || h->open_at == p->n)
        return rc;
    cli_span_t cur, prev, ys;
    bool has_prev, has_ys;
    cli_span_parse(p->v[h->open_at].column, &cur);
    cli_span_compare(&cur, today, &prev, &has_prev, &ys, &has_ys);
    if (!has_ys || !ys.span) /* its last day: the whole period a year earlier */
        return 0;
    tally_value_t v = {.present = false};
    rc = cli_span_fetch(server, req, prefix, &ys, NULL, 0, NULL, on_span_value, &v);
    if (rc == TALLY_EEXPIRED)
        rc = 0;
    h->ya[h->open_at] = v;
    snprintf(h->ya_name[h->open_at], sizeof(h->ya_name[0]), "%s", ys.name);
    return rc;
}

/* Point i's change against its value a year earlier, as text ("" when
 * either is missing). */
static void change_text(const history_t *h, size_t i, char *abs_, char *rel, size_t cap)
{
    abs_[0] = rel[0] = '\0';
    const tally_value_t *a = &h->pts.v[i], *b = &h->ya[i];
    if (!a->present || !b->present)
        return;
    double da, dr;
    bool hr;
    cli_change(h->pts.kind, h->scale, a, b, abs_, cap, rel, cap, &da, &dr, &hr);
}

static void print_json(const history_t *h)
{
    const points_t *p = &h->pts;
    fputs("{\"metric\":", stdout);
    json_string(stdout, h->metric);
    fputs(",\"scope\":", stdout);
    json_string(stdout, h->scope[0] ? h->scope : "county");
    fputs(",\"kind\":", stdout);
    json_string(stdout, tally_kind_name(p->kind));
    fputs(",\"by\":", stdout);
    json_string(stdout, h->by);
    if (h->mi != NULL) {
        fputs(",\"label\":", stdout);
        json_string(stdout, h->mi->label);
        fputs(",\"unit\":", stdout);
        json_string(stdout, h->mi->unit);
        printf(",\"scale\":%d", h->mi->scale);
    }
    if (h->through[0]) {
        fputs(",\"through\":", stdout);
        json_string(stdout, h->through);
    }
    fputs(",\"points\":[", stdout);
    for (size_t i = 0; i < p->n; i++) {
        fputs(i ? ",{\"period\":" : "{\"period\":", stdout);
        json_string(stdout, p->v[i].column);
        fputs(",\"value\":", stdout);
        cli_json_value(&p->v[i], p->kind);
        if (h->compare) {
            fputs(",\"year_ago\":{\"period\":", stdout);
            if (h->ya_name[i][0])
                json_string(stdout, h->ya_name[i]);
            else
                fputs("null", stdout);
            fputs(",\"value\":", stdout);
            cli_json_value(&h->ya[i], p->kind);
            fputs("},\"change\":", stdout);
            cli_json_change(p->kind, h->scale, &p->v[i], &h->ya[i]);
        }
        fputc('}', stdout);
    }
    fputs("]}\n", stdout);
}

static void print_csv(const history_t *h)
{
    const points_t *p = &h->pts;
    printf("period,%s%s\n", h->metric, h->compare ? ",year_ago,change,change_pct" : "");
    for (size_t i = 0; i < p->n; i++) {
        char val[64] = "";
        if (p->v[i].present)
            cli_render_scaled(val, sizeof(val), p->kind, &p->v[i], h->scale);
        printf("%s,%s", p->v[i].column, val);
        if (h->compare) {
            char ya[64] = "", ca[64], cr[64];
            if (h->ya[i].present)
                cli_render_scaled(ya, sizeof(ya), p->kind, &h->ya[i], h->scale);
            change_text(h, i, ca, cr, sizeof(ca));
            printf(",%s,%s,%s", ya, ca, strcmp(cr, "-") == 0 ? "" : cr);
        }
        putchar('\n');
    }
}

static void print_table(const history_t *h)
{
    const points_t *p = &h->pts;
    table_t *t = table_new(h->compare ? 5 : 2);
    if (t == NULL)
        return;
    for (unsigned c = 1; c < (h->compare ? 5u : 2u); c++)
        table_align_right(t, c);
    char head[160];
    const tally_metric_info_t *mi = h->mi;
    snprintf(head, sizeof(head), "%s%s%s%s", mi && mi->label[0] ? mi->label : h->metric,
             mi && mi->unit[0] ? " (" : "", mi && mi->unit[0] ? mi->unit : "",
             mi && mi->unit[0] ? ")" : "");
    int rc = table_add(t, (const char *const[]){"PERIOD", head, "YEAR AGO", "CHANGE", "%"});
    for (size_t i = 0; i < p->n && rc == 0; i++) {
        char val[64], ya[64] = "", ca[64] = "", cr[64] = "";
        cli_render_scaled(val, sizeof(val), p->kind, &p->v[i], h->scale);
        if (h->compare) {
            cli_render_scaled(ya, sizeof(ya), p->kind, &h->ya[i], h->scale);
            change_text(h, i, ca, cr, sizeof(ca));
        }
        char name[CALPERIOD_NAME_MAX + 2];
        snprintf(name, sizeof(name), "%s%s", p->v[i].column, i == h->open_at ? " *" : "");
        rc = table_add(t, (const char *const[]){name, val, ya, ca, cr});
    }
    if (rc == 0)
        table_print(t, stdout);
    table_free(&t);
    if (h->through[0] && h->compare && h->open_at < p->n && strstr(h->ya_name[h->open_at], ".."))
        printf("* to %s, the daemon's today: the figures so far, against %s\n", h->through,
               h->ya_name[h->open_at]);
    else if (h->through[0])
        printf("* to %s, the daemon's today: the figures so far\n", h->through);
}

enum { OPT_BY = CLI_OPT_OWN, OPT_FROM, OPT_TO, OPT_CSV, OPT_COMPARE };

int cli_history(int argc, char **argv, cli_global_t *g)
{
    static const struct option own[] = {
        {"by", required_argument, NULL, OPT_BY},     {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},     {"csv", no_argument, NULL, OPT_CSV},
        {"compare", no_argument, NULL, OPT_COMPARE}, {NULL, 0, NULL, 0},
    };
    cli_opts_t o;
    cli_opts_init(&o, "history", cli_history_usage, g,
                  CLI_OPTS_FILTER | CLI_OPTS_JSON | CLI_OPTS_LABELS | CLI_OPTS_TIMEOUT |
                      CLI_OPTS_SERVER | CLI_OPTS_NO_OPERANDS,
                  own);
    const char *by = NULL, *from = NULL, *to = NULL;
    bool csv = false, compare = false;
    int c, status;
    while ((status = cli_opts_next(&o, argc, argv, &c)) == CLI_CONTINUE && c != -1) {
        switch (c) {
        case OPT_BY:
            by = optarg;
            break;
        case OPT_FROM:
            from = optarg;
            break;
        case OPT_TO:
            to = optarg;
            break;
        case OPT_CSV:
            csv = true;
            break;
        case OPT_COMPARE:
            compare = true;
            break;
        }
    }
    if (status != CLI_CONTINUE)
        return status;
    if (o.metric == NULL)
        return cli_usage_error("history", "--metric is required");
    if (o.all)
        return cli_usage_error("history", "--all does not apply: one series at a time");
    if (by == NULL || calperiod_type_parse(by, strlen(by)) < 0)
        return cli_usage_error("history", "--by %s%s%s: expected day, month, quarter or year",
                               by ? "'" : "is required", by ? by : "", by ? "'" : "");
    if (from == NULL)
        return cli_usage_error("history", "--from is required");
    if (to == NULL)
        to = from;
    if (csv && o.json)
        return cli_usage_error("history", "--csv and --json exclude each other");
    if ((status = cli_period_check("history", "--from", from, false)) != 0 ||
        (status = cli_period_check("history", "--to", to, true)) != 0)
        return status;
    calperiod_t pf, pt, first;
    calperiod_parse(from, strlen(from), &pf);
    calperiod_parse(to, strlen(to), &pt);
    int64_t count = 0;
    if (calperiod_span(calperiod_type_parse(by, strlen(by)), pf, pt, &first, &count) != 0)
        return cli_usage_error("history", "--from '%s' begins after --to '%s' ends", from, to);
    if (count > CALPERIOD_RANGE_MAX)
        return cli_usage_error("history",
                               "--from '%s' --to '%s' by %s is %" PRId64
                               " periods, more than %d; narrow the range or use a larger --by",
                               from, to, by, count, CALPERIOD_RANGE_MAX);
    const tally_curve_t *curve;
    if ((status = cli_curve(g, "history", &curve)) != 0 ||
        (status = cli_opts_resolve(&o, curve, 0)) != 0)
        return status;
    char err[600];
    tally_request_t req = cli_request(curve, o.timeout_ms, err, sizeof err);
    history_t h = {.metric = o.metric, .scope = o.town ? o.town : "", .by = by, .compare = compare};
    points_t *pts = &h.pts;
    int rc = tally_range_req(g->server, &req, h.metric, h.scope, by, from, to, on_point, pts);
    if (rc == 0 && pts->oom)
        rc = TALLY_ENOMEM;
    if (rc < 0 && rc != TALLY_ENOMEM) {
        char what[160];
        if (rc == TALLY_EUNKTOWN)
            snprintf(what, sizeof(what), "--town '%s'", h.scope);
        else if (rc == TALLY_EUNKMETRIC)
            snprintf(what, sizeof(what), "--metric '%s'", o.metric);
        else
            snprintf(what, sizeof(what), "--from '%s' --to '%s'", from, to);
        status = cli_history_refused(&o, rc, &req, what);
        points_free(pts);
        return status;
    }
    for (size_t i = 0; rc == 0 && i < pts->n; i++)
        pts->v[i].column = pts->names[i];
    /* The period holding the daemon's today has figures so far only: the
     * table marks it, --json says "through" (a trend's last point is not
     * a fall), --compare sets it against the same days a year earlier.
     * Not known from a daemon that cannot be asked: unmarked. */
    h.open_at = pts->n;
    int32_t today = INT32_MIN;
    if (rc == 0 && (!csv || compare) && pts->n > 0 &&
        cli_daemon_today(g->server, &req, &today) == 0)
        for (size_t i = 0; i < pts->n; i++) {
            cli_span_t p;
            if (cli_span_parse(pts->v[i].column, &p) == 0 && cli_span_open(&p, today)) {
                h.open_at = i;
                calperiod_format((calperiod_t){CALPERIOD_DAY, today}, h.through, sizeof(h.through));
            }
        }
    if (csv) /* the CSV's shape stays that of a closed range */
        h.through[0] = '\0';
    char prefix[PROTO_PREFIX_MAX + 1];
    if (rc == 0 && compare && pts->n > 0 &&
        (rc = cli_prefix("history", o.metric, o.town, 0, prefix, sizeof(prefix))) == 0) {
        rc = year_ago(g->server, &req, prefix, today, &h);
        if (rc < 0 && rc != TALLY_ENOMEM)
            status = cli_history_refused(&o, rc, &req, "--compare");
    }
    if (rc == TALLY_ENOMEM) {
        cli_error("out of memory");
        status = CLI_INTERNAL;
    } else if (rc == 0) {
        cli_render_cat_t cat =
            cli_render_catalog(g, "history", curve, o.labels, o.timeout_ms,
                               !o.json && !csv && isatty(STDOUT_FILENO), !o.json);
        const tally_metric_info_t *mi = tally_catalog_find_metric(cat.catalog, o.metric, NULL);
        h.mi = cat.names ? mi : NULL;
        h.scale = mi ? mi->scale : 0;
        if (o.json)
            print_json(&h);
        else if (csv)
            print_csv(&h);
        else
            print_table(&h);
        status = CLI_OK;
    }
    points_free(pts);
    free(h.ya);
    free(h.ya_name);
    return status;
}
