/* cli_get.c - the tally command (client/cli/): `tally get`, the current
 * tallies once, from a snapshot. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_opts.h"
#include "cli_period.h"
#include "cli_render.h"

/* The help lines of the shared options are cli_opts.h's macros. */
/* clang-format off */
const char cli_get_usage[] =
    "Usage: tally get [--metric M] [--town T | --all] [--period P [--compare]] [--json]\n"
    "                 [--labels] [OPTIONS]\n"
    "\n"
    "Print the current tallies once: county-wide ones by default, one township's\n"
    "with --town, the county's and every township's with --all.  Ratios are shown\n"
    "as percentages, '-' is no value (a ratio with a zero denominator).\n"
    "\n"
    "Options:\n"
    CLI_OPTS_HELP_FILTER("")
    "  -j, --json         one JSON document: {\"seq\":N,\"stream_id\":N,\"tallies\":[...]}\n"
    "  -p, --period P     the tallies of one calendar period, closed or current, in the\n"
    "                     daemon's zone: YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD; or of\n"
    "                     the days FROM..TO (2023-01..2023-11: January to November)\n"
    "      --compare      with --period: also the period before and the same period a\n"
    "                     year earlier, and the change (absolute and %); for a\n"
    "                     period not over yet, as many days of those as have passed\n"
    "                     of it (December to the 6th: 1-6 November, 1-6 December a\n"
    "                     year earlier); for FROM..TO, the same days a year earlier\n"
    CLI_OPTS_HELP_LABELS("")
    CLI_OPTS_HELP_TIMEOUT("")
    CLI_OPTS_HELP_SERVER("", "a subscriber's")
    CLI_OPTS_HELP_HELP("")
    "\n"
    "Exit status: 0 printed (also when there are no tallies yet), 1 the daemon\n"
    "refused the request, or --metric or --town names something without tallies,\n"
    "2 usage error, 3 no answer (the message says why, as far as it can tell),\n"
    "4 internal error.\n";
/* clang-format on */

static void print_json(const tally_tally_t *const *v, size_t n, uint64_t seq, uint64_t stream,
                       cli_render_cat_t cat)
{
    printf("{\"seq\":%" PRIu64 ",\"stream_id\":%" PRIu64 ",\"tallies\":[", seq, stream);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            fputc(',', stdout);
        cli_render_json_tally_cat(stdout, v[i], false, cat);
    }
    fputs("]}\n", stdout);
}

static int print(cli_render_rows_t *r, bool json, uint64_t seq, uint64_t stream,
                 cli_render_cat_t cat)
{
    cli_render_sort_cat(r->v, r->n, cat);
    if (json)
        print_json(r->v, r->n, seq, stream, cat);
    else if (r->n > 0)
        return cli_render_table_cat(stdout, r->v, r->n, cat);
    return 0;
}

/* Nothing matched: a filter that names a metric or township the daemon
 * has no tallies of is the user's mistake more often than not (status
 * 1); no tallies at all is just an empty daemon (status 0). */
static int nothing(const cli_opts_t *o, const tally_curve_t *curve)
{
    if (o->metric == NULL && o->town == NULL) {
        if (!o->json) /* the JSON document says it already */
            fprintf(stderr, "tally get: no tallies yet\n");
        return CLI_OK;
    }
    char mhint[PROTO_NAME_MAX * 2 + 64] = "", thint[PROTO_NAME_MAX * 2 + 64] = "";
    cli_name_t m = o->metric != NULL
                       ? cli_name_check(o, curve, o->metric, false, mhint, sizeof mhint)
                       : CLI_NAME_KNOWN;
    cli_name_t t = o->town != NULL && m == CLI_NAME_KNOWN
                       ? cli_name_check(o, curve, o->town, true, thint, sizeof thint)
                       : CLI_NAME_KNOWN;
    if (m == CLI_NAME_NOT_LISTED)
        fprintf(stderr,
                "tally get: metric '%s' is not in the daemon's catalog and has no tallies%s\n",
                o->metric, mhint);
    else if (t == CLI_NAME_NOT_LISTED)
        fprintf(stderr, "tally get: township '%s' is not in the daemon's catalog%s\n", o->town,
                thint);
    else if (o->metric == NULL || t == CLI_NAME_NO_TALLIES)
        /* The county may have tallies of the metric: the township is
         * what has none, misspelt or not reporting. */
        fprintf(stderr, "tally get: township '%s' has no tallies%s\n", o->town, thint);
    else if (o->town != NULL && m == CLI_NAME_KNOWN) /* both declared or with tallies */
        fprintf(stderr, "tally get: township '%s' has no tallies of metric '%s' yet\n", o->town,
                o->metric);
    else if (o->town != NULL)
        fprintf(stderr, "tally get: township '%s' has no tallies of metric '%s'%s\n", o->town,
                o->metric, mhint);
    else
        fprintf(stderr, "tally get: metric '%s' has no tallies%s\n", o->metric, mhint);
    return CLI_REJECTED;
}

int cli_get(int argc, char **argv, cli_global_t *g)
{
    static const struct option own[] = {
        {"period", required_argument, NULL, 'p'},
        {"compare", no_argument, NULL, CLI_OPT_OWN},
        {NULL, 0, NULL, 0},
    };
    cli_opts_t o;
    cli_opts_init(&o, "get", cli_get_usage, g,
                  CLI_OPTS_FILTER | CLI_OPTS_JSON | CLI_OPTS_LABELS | CLI_OPTS_TIMEOUT |
                      CLI_OPTS_SERVER | CLI_OPTS_NO_OPERANDS,
                  own);
    const char *period = NULL;
    bool compare = false;
    int c, status;
    while ((status = cli_opts_next(&o, argc, argv, &c)) == CLI_CONTINUE && c != -1) {
        if (c == 'p')
            period = optarg;
        else
            compare = true;
    }
    if (status != CLI_CONTINUE)
        return status;
    if (compare && period == NULL)
        return cli_usage_error("get", "--compare needs --period");
    if (period != NULL && (status = cli_span_check("get", "--period", period)) != 0)
        return status;
    const tally_curve_t *curve;
    status = cli_curve(g, "get", &curve);
    if (status == 0)
        status = cli_opts_resolve(&o, curve, 0);
    if (status != 0)
        return status;
    if (period != NULL)
        return cli_get_period(g, &o, curve, period, compare);
    cli_render_rows_t rows = {.metric = o.all ? o.metric : NULL, .copy = true};
    cli_render_cat_t cat = {NULL, false};
    uint64_t seq = 0, stream = 0;
    char err[600];
    tally_request_t req = cli_request(curve, o.timeout_ms, err, sizeof err);
    int rc = tally_get_req(g->server, &req, o.prefix, cli_render_rows_add, &rows, &seq, &stream);
    if (rc < 0) {
        status = cli_request_failed(g, "get", rc, &req, o.timeout_ms);
    } else {
        /* The labels and the decimal scales: a second request, only when
         * there is something to label or scale. */
        if (!rows.oom && rows.n > 0)
            cat = cli_render_catalog(g, "get", curve, o.labels, o.timeout_ms,
                                     !o.json && isatty(STDOUT_FILENO), !o.json);
        if (rows.oom || print(&rows, o.json, seq, stream, cat) < 0) {
            cli_error("out of memory");
            status = CLI_INTERNAL;
        } else if (rows.n == 0) {
            status = nothing(&o, curve);
        }
    }
    cli_render_rows_free(&rows);
    return status;
}
