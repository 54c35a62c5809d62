/* cli_render.h - the tally command (client/cli/, private): tallies as
 * text tables and JSON for `tally get` and `tally watch`. */
#ifndef TALLY_CLIENT_CLI_RENDER_H
#define TALLY_CLIENT_CLI_RENDER_H

#include <stdbool.h>
#include <stdio.h>

#include "cli_util.h"
#include "tally.h"

/* "county" for the county-wide scope, else the township name. */
const char *cli_render_scope(const tally_tally_t *t);

/* A value as a table shows it: "216", "98.6%" for a ratio, "-" for no
 * value. */
void cli_render_value(char *buf, size_t cap, int kind, const tally_value_t *v);

/* ---- rounding: every figure the command prints in tenths of a percent
 * (a ratio, a ratio's change in percentage points, a change in %) is
 * computed exactly from the integers and rounded half away from zero
 * (四舍五入, as the offices' reports round), so that the table, the
 * history, the watch and the report agree to the digit: 1/16 is 6.3%. */

/* num / den (den != 0) rounded half away from zero. */
__extension__ typedef __int128 cli_i128;
cli_i128 cli_round_div(cli_i128 num, cli_i128 den);

/* v in units of 10^-places as text with that many decimals (1 place:
 * 986 -> "98.6"), then suffix; a '+' before a positive value when plus. */
void cli_render_fixed(char *buf, size_t cap, cli_i128 v, int places, bool plus, const char *suffix);

/* The change from ratio b to ratio a (each num/den, den > 0) in tenths of
 * a percentage point: the difference of the two percentages as printed,
 * each rounded to tenths (93.1% against 92.3% is 8 tenths, whatever the
 * exact fractions), so that the printed figures add up.  false when a den
 * is 0. */
bool cli_ratio_change_tenths(int64_t an, int64_t ad, int64_t bn, int64_t bd, cli_i128 *tenths);

/* The change from b to a (both present) of a metric of kind and scale,
 * as text: absolute into abs_ (with the scale; percentage points for a
 * ratio: "+1.5pp", cli_ratio_change_tenths) and relative into rel
 * ("+12.5%", "-" when b is 0 or for a ratio); as numbers into *d_abs
 * (for a ratio the exact difference, as JSON carries it) and *d_rel (*has_rel says whether
 * there is one). */
void cli_change(int kind, int scale, const tally_value_t *a, const tally_value_t *b, char *abs_,
                size_t abs_cap, char *rel, size_t rel_cap, double *d_abs, double *d_rel,
                bool *has_rel);

/* Tallies gathered through cli_render_rows_add, to be sorted and printed.
 * Start from a zeroed struct with metric and copy set. */
typedef struct cli_render_rows {
    const char *metric;      /* keep only this metric's tallies; NULL: all */
    bool copy;               /* keep copies: the tallies outlive the callback
                                that hands them over (each only as large as
                                its values and strings: read its fields,
                                never copy it whole) */
    const tally_tally_t **v; /* the tallies, in the order they came */
    size_t n, cap;
    bool oom; /* a tally was left out for want of memory */
    /* The copies, one after another in chunks (a country's `get --all`
     * keeps a million: one allocation each cost a fifth of its time). */
    char **chunks;
    size_t nchunks, chunks_cap, used; /* used: bytes of the last chunk */
} cli_render_rows_t;

/* A tally_tally_cb (ctx: a cli_render_rows_t): append t, or its copy. */
void cli_render_rows_add(void *ctx, const tally_tally_t *t);

/* Free the array and the copies; r is empty afterwards. */
void cli_render_rows_free(cli_render_rows_t *r);

/* Sort by metric, then county before townships, then township name. */
void cli_render_sort(const tally_tally_t **v, size_t n);

/* In v (n tallies sorted by cli_render_sort), the tally of key's metric
 * and scope, or NULL: a binary search. */
const tally_tally_t *cli_render_find(const tally_tally_t *const *v, size_t n,
                                     const tally_tally_t *key);

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

/* ---- labels and scales: the daemon's catalog (PROTOCOL.md 8.17) ---- */

/* What a command shows of the daemon's catalog: each metric's decimal
 * scale whenever catalog is set, and its names (labels, units, township
 * names, the catalog's order) only when names is set too. */
typedef struct cli_render_cat {
    const tally_catalog_t *catalog; /* borrowed from g (cli_catalog); NULL: not read */
    bool names;                     /* show its names, else ids; only with a catalog */
} cli_render_cat_t;

/* The catalog a command shows its tallies with.  labels is the --labels
 * option: names 0 never, 1 always, -1 when tty is set and the catalog has
 * a label or a township name.  text says that values are printed as text
 * (a table, CSV), which carry the metric's decimal scale: the catalog is
 * then read for the scales also without names.  A catalog that cannot be
 * read gives {NULL, false}: ids, and values as the integers sent; a note
 * on stderr says why only when labels is 1. */
cli_render_cat_t cli_render_catalog(cli_global_t *g, const char *cmd, const tally_curve_t *curve,
                                    int labels, int timeout_ms, bool tty, bool text);

/* A value of a metric with decimal scale places: "12.5" for 125 at scale
 * 1, "-0.05" for -5 at scale 2; as cli_render_value otherwise. */
void cli_render_scaled(char *buf, size_t cap, int kind, const tally_value_t *v, int scale);

/* The UNIT a table shows for a metric of kind and unit: "%" for a ratio
 * without one (its values are shown in percent), else unit. */
const char *cli_render_unit(int kind, const char *unit);

/* What a table shows of t with cat: with names, the metric's label (its id
 * when it has none), its unit ("" without) and the township's name,
 * "county" or id; without, the ids and "".  The decimal scale is the
 * catalog's whenever cat.catalog is set (0 without a catalog). */
void cli_render_names(const tally_tally_t *t, cli_render_cat_t cat, const char **metric,
                      const char **unit, const char **scope, int *scale);

/* cli_render_sort, cli_render_table and cli_render_json_tally with the
 * catalog cat ({NULL, false}: as those).  With names, tallies are sorted in
 * catalog order (metrics the catalog lacks last, by id; the county
 * first, then townships in catalog order); the table shows each metric's
 * label (its id when it has none), a UNIT column and township names; the
 * JSON object adds "label", "unit", "scale" and "scope_name" (values
 * stay the exact integers).  The table's values carry the metric's
 * decimal scale whenever cat.catalog is set, with names or without. */
void cli_render_sort_cat(const tally_tally_t **v, size_t n, cli_render_cat_t cat);
int cli_render_table_cat(FILE *out, const tally_tally_t *const *v, size_t n, cli_render_cat_t cat);
void cli_render_json_tally_cat(FILE *out, const tally_tally_t *t, bool with_seq,
                               cli_render_cat_t cat);

/* Value columns of a table at most, besides its names. */
#define CLI_RENDER_COLUMNS_MAX 62

/* The union of the value columns of v[0..n) into out (room for
 * CLI_RENDER_COLUMNS_MAX), as the tables order them: 1h 24h 7d 30d today
 * month quarter year total, then any other in order of appearance.
 * Returns how many. */
size_t cli_render_columns(const tally_tally_t *const *v, size_t n, const char **out);

#endif
