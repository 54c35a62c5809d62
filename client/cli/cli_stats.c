/* cli_stats.c - the tally command (client/cli/): `tally stats`, the
 * daemon's counters. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_opts.h"
#include "json.h"
#include "table.h"
#include "vec.h"

/* The help lines of the shared options are cli_opts.h's macros. */
/* clang-format off */
const char cli_stats_usage[] =
    "Usage: tally stats [--json] [OPTIONS]\n"
    "\n"
    "Print the daemon's counters (name and value, sorted by name).\n"
    "\n"
    "Options:\n"
    "  -j, --json         one JSON object: {\"name\":value,...}\n"
    CLI_OPTS_HELP_TIMEOUT("")
    CLI_OPTS_HELP_SERVER("", "a subscriber's")
    CLI_OPTS_HELP_HELP("");
/* clang-format on */

typedef struct stat_entry {
    char *name;
    int64_t value;
} stat_entry_t;

typedef struct stats {
    stat_entry_t *v;
    size_t n, cap;
    bool oom;
} stats_t;

static void on_stat(void *ctx, const char *name, int64_t value)
{
    stats_t *s = ctx;
    if (VEC_RESERVE(s->v, s->cap, s->n + 1) < 0) {
        s->oom = true;
        return;
    }
    char *copy = strdup(name);
    if (copy == NULL) {
        s->oom = true;
        return;
    }
    s->v[s->n].name = copy;
    s->v[s->n].value = value;
    s->n++;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const stat_entry_t *)a)->name, ((const stat_entry_t *)b)->name);
}

static int print(const stats_t *s, bool json)
{
    if (json) {
        fputc('{', stdout);
        for (size_t i = 0; i < s->n; i++) {
            if (i > 0)
                fputc(',', stdout);
            json_string(stdout, s->v[i].name);
            printf(":%" PRId64, s->v[i].value);
        }
        fputs("}\n", stdout);
        return 0;
    }
    table_t *t = table_new(2);
    if (t == NULL)
        return TALLY_ENOMEM;
    table_align_right(t, 1);
    int rc = 0;
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        char num[32];
        snprintf(num, sizeof num, "%" PRId64, s->v[i].value);
        const char *cells[2] = {s->v[i].name, num};
        rc = table_add(t, cells);
    }
    if (rc == 0)
        table_print(t, stdout);
    table_free(&t);
    return rc;
}

int cli_stats(int argc, char **argv, cli_global_t *g)
{
    cli_opts_t o;
    cli_opts_init(&o, "stats", cli_stats_usage, g,
                  CLI_OPTS_JSON | CLI_OPTS_TIMEOUT | CLI_OPTS_SERVER | CLI_OPTS_NO_OPERANDS, NULL);
    int status = cli_opts_parse(&o, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    const tally_curve_t *curve;
    status = cli_curve(g, "stats", &curve);
    if (status != 0)
        return status;
    stats_t s = {0};
    char err[600];
    tally_request_t req = cli_request(curve, o.timeout_ms, err, sizeof err);
    int rc = tally_stats_req(g->server, &req, on_stat, &s);
    if (rc < 0) {
        status = cli_request_failed(g, "stats", rc, &req, o.timeout_ms);
    } else if (s.oom) {
        cli_error("out of memory");
        status = CLI_INTERNAL;
    } else {
        if (s.n > 1)
            qsort(s.v, s.n, sizeof *s.v, cmp_entry);
        if (print(&s, o.json) < 0) {
            cli_error("out of memory");
            status = CLI_INTERNAL;
        }
    }
    for (size_t i = 0; i < s.n; i++)
        free(s.v[i].name);
    free(s.v);
    return status;
}
