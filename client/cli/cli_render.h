/* cli_render.h - tallies as text tables and JSON for `tally get` and
 * `tally watch` (not public). */
#ifndef TALLY_CLIENT_CLI_RENDER_H
#define TALLY_CLIENT_CLI_RENDER_H

#include <stdbool.h>
#include <stdio.h>

#include "tally.h"

/* A tally that owns its strings, for keeping one beyond a callback. */
typedef struct cli_render_tally {
    tally_tally_t t;
    char metric[65];
    char scope[65];
    char topic[160];
    char columns[TALLY_COLUMNS_MAX][17];
} cli_render_tally_t;

/* A malloc'ed deep copy of src (free with free()), or NULL. */
cli_render_tally_t *cli_render_dup(const tally_tally_t *src);

/* "county" for the county-wide scope, else the township name. */
const char *cli_render_scope(const tally_tally_t *t);

/* A value as a table shows it: "216", "98.6%" for a ratio, "-" for no
 * value. */
void cli_render_value(char *buf, size_t cap, int kind, const tally_value_t *v);

/* Sort by metric, then county before townships, then township name. */
void cli_render_sort(const tally_tally_t **v, size_t n);

/* Print v (sorted by the caller) as a table: METRIC, SCOPE and one column
 * per value column, in the order 1h 24h 7d 30d today month quarter year
 * total and then any other column in order of appearance; an absent
 * column is blank.  Returns 0 or TALLY_ENOMEM. */
int cli_render_table(FILE *out, const tally_tally_t *const *v, size_t n);

/* Print one tally as a JSON object: {"metric":..,"scope":..,"kind":..,
 * "values":{..}}, preceded by "seq" when with_seq is set.  Counter and
 * gauge values are integers, ratios {"num":..,"den":..,"value":..},
 * no value is null. */
void cli_render_json_tally(FILE *out, const tally_tally_t *t, bool with_seq);

#endif
