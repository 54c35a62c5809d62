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
    "                     --from PERIOD --to PERIOD [--json | --csv] [OPTIONS]\n"
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
    "  -j, --json         one JSON document: {\"metric\":..,\"scope\":..,\"points\":[...]}\n"
    "      --csv          CSV: period,value (ratios as percentages)\n"
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

enum { OPT_BY = CLI_OPT_OWN, OPT_FROM, OPT_TO, OPT_CSV };

int cli_history(int argc, char **argv, cli_global_t *g)
{
    static const struct option own[] = {
        {"by", required_argument, NULL, OPT_BY},
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"csv", no_argument, NULL, OPT_CSV},
        {NULL, 0, NULL, 0},
    };
    cli_opts_t o;
    cli_opts_init(&o, "history", cli_history_usage, g,
                  CLI_OPTS_FILTER | CLI_OPTS_JSON | CLI_OPTS_LABELS | CLI_OPTS_TIMEOUT |
                      CLI_OPTS_SERVER | CLI_OPTS_NO_OPERANDS,
                  own);
    const char *by = NULL, *from = NULL, *to = NULL;
    bool csv = false;
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
    if ((status = cli_period_check("history", "--from", from)) != 0 ||
        (status = cli_period_check("history", "--to", to)) != 0)
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
    tally_request_t req = {
        .curve = curve, .timeout_ms = o.timeout_ms, .errbuf = err, .errbuf_len = sizeof err};
    points_t pts = {0};
    int rc = tally_range_req(g->server, &req, o.metric, o.town ? o.town : "", by, from, to,
                             on_point, &pts);
    if (rc < 0) {
        char what[160];
        if (rc == TALLY_EUNKTOWN)
            snprintf(what, sizeof(what), "--town '%s'", o.town ? o.town : "");
        else if (rc == TALLY_EUNKMETRIC)
            snprintf(what, sizeof(what), "--metric '%s'", o.metric);
        else
            snprintf(what, sizeof(what), "--from '%s' --to '%s'", from, to);
        status = cli_history_refused(g, "history", rc, &req, what, o.timeout_ms);
        free(pts.v);
        free(pts.names);
        return status;
    }
    if (pts.oom) {
        free(pts.v);
        free(pts.names);
        cli_error("out of memory");
        return CLI_INTERNAL;
    }
    for (size_t i = 0; i < pts.n; i++)
        pts.v[i].column = pts.names[i];
    /* The period holding the daemon's today has figures so far only: the
     * table marks it, --json says "through" (a trend's last point is not
     * a fall).  Not known from a daemon that cannot be asked: unmarked. */
    char through[CALPERIOD_NAME_MAX] = "";
    size_t open_at = pts.n;
    int32_t today = INT32_MIN;
    if (!csv && pts.n > 0 && cli_daemon_today(g->server, &req, &today) == 0)
        for (size_t i = 0; i < pts.n; i++) {
            cli_span_t p;
            if (cli_span_parse(pts.v[i].column, &p) == 0 && cli_span_open(&p, today)) {
                open_at = i;
                calperiod_format((calperiod_t){CALPERIOD_DAY, today}, through, sizeof(through));
            }
        }
    const tally_catalog_t *cat = cli_render_catalog(g, "history", curve, o.labels, o.timeout_ms,
                                                    !o.json && !csv && isatty(STDOUT_FILENO));
    const tally_metric_info_t *mi = tally_catalog_find_metric(cat, o.metric, NULL);
    int scale = mi ? mi->scale : 0;
    if (o.json) {
        fputs("{\"metric\":", stdout);
        json_string(stdout, o.metric);
        fputs(",\"scope\":", stdout);
        json_string(stdout, o.town ? o.town : "county");
        fputs(",\"kind\":", stdout);
        json_string(stdout, tally_kind_name(pts.kind));
        fputs(",\"by\":", stdout);
        json_string(stdout, by);
        if (mi != NULL) {
            fputs(",\"label\":", stdout);
            json_string(stdout, mi->label);
            fputs(",\"unit\":", stdout);
            json_string(stdout, mi->unit);
            printf(",\"scale\":%d", mi->scale);
        }
        if (through[0]) {
            fputs(",\"through\":", stdout);
            json_string(stdout, through);
        }
        fputs(",\"points\":[", stdout);
        for (size_t i = 0; i < pts.n; i++) {
            fputs(i ? ",{\"period\":" : "{\"period\":", stdout);
            json_string(stdout, pts.v[i].column);
            fputs(",\"value\":", stdout);
            cli_json_value(&pts.v[i], pts.kind);
            fputc('}', stdout);
        }
        fputs("]}\n", stdout);
    } else {
        table_t *t = csv ? NULL : table_new(2);
        if (t != NULL) {
            table_align_right(t, 1);
            char head[160];
            snprintf(head, sizeof(head), "%s%s%s%s", mi && mi->label[0] ? mi->label : o.metric,
                     mi && mi->unit[0] ? " (" : "", mi && mi->unit[0] ? mi->unit : "",
                     mi && mi->unit[0] ? ")" : "");
            table_add(t, (const char *const[]){"PERIOD", head});
        } else if (csv) {
            printf("period,%s\n", o.metric);
        }
        for (size_t i = 0; i < pts.n; i++) {
            char val[64];
            val[0] = '\0';
            if (pts.v[i].present || !csv)
                cli_render_scaled(val, sizeof(val), pts.kind, &pts.v[i], scale);
            char name[CALPERIOD_NAME_MAX + 2];
            snprintf(name, sizeof(name), "%s%s", pts.v[i].column, i == open_at ? " *" : "");
            if (csv)
                printf("%s,%s\n", pts.v[i].column, val);
            else if (t != NULL)
                table_add(t, (const char *const[]){name, val});
        }
        if (t != NULL)
            table_print(t, stdout);
        if (t != NULL && through[0])
            printf("* to %s, the daemon's today: the figures so far\n", through);
        table_free(&t);
    }
    free(pts.v);
    free(pts.names);
    return CLI_OK;
}
