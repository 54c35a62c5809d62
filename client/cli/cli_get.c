/* cli_get.c - the tally command (client/cli/): `tally get`, the current
 * tallies once, from a snapshot. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_opts.h"
#include "cli_render.h"

/* The help lines of the shared options are cli_opts.h's macros. */
/* clang-format off */
const char cli_get_usage[] =
    "Usage: tally get [--metric M] [--town T | --all] [--json] [OPTIONS]\n"
    "\n"
    "Print the current tallies once: county-wide ones by default, one township's\n"
    "with --town, the county's and every township's with --all.  Ratios are shown\n"
    "as percentages, '-' is no value (a ratio with a zero denominator).\n"
    "\n"
    "Options:\n"
    CLI_OPTS_HELP_FILTER("")
    "  -j, --json         one JSON document: {\"seq\":N,\"stream_id\":N,\"tallies\":[...]}\n"
    CLI_OPTS_HELP_TIMEOUT("")
    CLI_OPTS_HELP_SERVER("", "a subscriber's")
    CLI_OPTS_HELP_HELP("");
/* clang-format on */

static void print_json(const tally_tally_t *const *v, size_t n, uint64_t seq, uint64_t stream)
{
    printf("{\"seq\":%" PRIu64 ",\"stream_id\":%" PRIu64 ",\"tallies\":[", seq, stream);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            fputc(',', stdout);
        cli_render_json_tally(stdout, v[i], false);
    }
    fputs("]}\n", stdout);
}

static int print(cli_render_rows_t *r, bool json, const char *prefix, uint64_t seq, uint64_t stream)
{
    cli_render_sort(r->v, r->n);
    if (json)
        print_json(r->v, r->n, seq, stream);
    else if (r->n == 0)
        fprintf(stderr, "tally get: no tallies under '%s' yet\n", prefix);
    else
        return cli_render_table(stdout, r->v, r->n);
    return 0;
}

int cli_get(int argc, char **argv, cli_global_t *g)
{
    cli_opts_t o;
    cli_opts_init(&o, "get", cli_get_usage, g,
                  CLI_OPTS_FILTER | CLI_OPTS_JSON | CLI_OPTS_TIMEOUT | CLI_OPTS_SERVER |
                      CLI_OPTS_NO_OPERANDS,
                  NULL);
    int status = cli_opts_parse(&o, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    const tally_curve_t *curve;
    status = cli_curve(g, "get", &curve);
    if (status != 0)
        return status;
    cli_render_rows_t rows = {.metric = o.all ? o.metric : NULL, .copy = true};
    uint64_t seq = 0, stream = 0;
    int rc = tally_get_curve(g->server, curve, o.prefix, o.timeout_ms, cli_render_rows_add, &rows,
                             &seq, &stream);
    if (rc < 0) {
        status = cli_request_failed_curve(g, rc, o.timeout_ms);
    } else if (rows.oom || print(&rows, o.json, o.prefix, seq, stream) < 0) {
        cli_error("out of memory");
        status = CLI_INTERNAL;
    }
    cli_render_rows_free(&rows);
    return status;
}
