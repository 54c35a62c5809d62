/* report.h - the tally command (client/cli/, private): a period's figures
 * as a report (`tally report`): one row per metric in catalog order with
 * its label and unit, one column per scope, optionally the same period a
 * year earlier and the change; written as Markdown, CSV (report.c) or
 * Excel (report_xlsx.c).
 *
 * The model holds exact integers: decimal scales and percentages are
 * applied only when a writer formats a value.
 */
#ifndef TALLY_CLIENT_REPORT_H
#define TALLY_CLIENT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli_period.h"
#include "tally.h"

typedef struct report_cell {
    bool present; /* false: no value (a ratio 0/0, a gauge never set) */
    int64_t num, den;
} report_cell_t;

typedef struct report_row {
    char id[65];
    char label[129]; /* the id when the catalog has no label */
    char unit[17];
    int kind;            /* enum tally_kind */
    int scale;           /* decimal places */
    report_cell_t *cur;  /* [nscopes] */
    report_cell_t *prev; /* [nscopes], with compare */
} report_row_t;

typedef struct report {
    char title[320];                  /* "高观镇 2023", "全县 2023（截至 2023-12-06）" */
    char heading[256];                /* the title without its （截至 ...） */
    char period[CLI_SPAN_NAME_MAX];   /* "2023", "2023-01..2023-11" */
    char year_ago[CLI_SPAN_NAME_MAX]; /* "2022", "2022-01-01 至 2022-12-06" with compare, else "" */
    char through[CALPERIOD_NAME_MAX]; /* the last day the period has figures of, when open */
    bool compare;
    size_t nscopes;
    char (*scope_id)[65];    /* "" for the county */
    char (*scope_name)[129]; /* what a column is headed */
    report_row_t *rows;
    size_t nrows, cap;
    bool any_data;         /* a figure other than 0 or no value, in the period */
    bool year_ago_expired; /* with compare: its days older than the daemon keeps (no values) */
} report_t;

/* Fill r for period (a period or a span) and scopes ids[0..n) ("" = the
 * county), named after cat (may be NULL: ids), metrics in catalog order,
 * then any the daemon has tallies of that the catalog lacks; with
 * year_ago (NULL: no comparison) its figures beside them.  through is
 * the daemon's today when period is not over yet ("" otherwise), said in
 * the title.  fetch reads the tallies of a period or span under a prefix
 * (cli_span_fetch), each with its one column named after it.  Days a year
 * earlier that the daemon no longer keeps (TALLY_EEXPIRED) leave the
 * comparison without values, r->year_ago_expired set.  Returns 0, or the
 * code fetch returned (req says why), or TALLY_ENOMEM. */
typedef int (*report_fetch_fn)(void *ctx, const char *prefix, const cli_span_t *period,
                               tally_tally_cb cb, void *cb_ctx);
int report_build(report_t *r, const cli_span_t *period, const cli_span_t *year_ago,
                 const char *through, const char *const *ids, size_t n, const tally_catalog_t *cat,
                 report_fetch_fn fetch, void *fetch_ctx);

void report_free(report_t *r);

/* With compare: the scope the earlier figures are shown for (the one
 * scope, or with several the county's, 全县), and the year-ago heading
 * ("2022", "全县 2022-01-01..2022-12-06") into buf.  -1 when nothing is
 * compared (no compare, nothing a year earlier, no county among several
 * scopes). */
int report_compared(const report_t *r, char *heading, size_t cap);

/* A value as the report shows it: "12.5" for 125 at scale 1, "98.6%" for
 * a ratio (one decimal, rounded half away from zero from the exact
 * integers), "" for no value. */
void report_format(char *buf, size_t cap, const report_row_t *row, const report_cell_t *c);

/* The change from b to a, when both have a value: absolute (the metric's
 * scale; for a ratio percentage points followed by pp: "+1.2pp", or
 * "+1.2 个百分点") and relative ("+3.4%", "" when b is 0 or for a ratio).
 * False when there is no change to show. */
bool report_change(const report_row_t *row, const report_cell_t *a, const report_cell_t *b,
                   const char *pp, char *abs_, size_t abs_cap, char *rel, size_t rel_cap);

/* The ratio as a fraction (0.986...) and a value as a number with its
 * scale (12.5), for writers that store numbers. */
double report_number(const report_row_t *row, const report_cell_t *c);

/* Write r as Markdown or CSV to out.  0 or TALLY_EIO. */
int report_write_md(const report_t *r, FILE *out);
int report_write_csv(const report_t *r, FILE *out);

/* Write r as an Excel workbook to out (report_xlsx.c).  libxlsxwriter
 * writes only to a named file, so the workbook is made in a private file
 * of $TMPDIR (else /tmp), copied to out and removed.  0, or TALLY_EIO
 * with a sentence in err. */
int report_write_xlsx(const report_t *r, FILE *out, char *err, size_t errlen);

#endif
