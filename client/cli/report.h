/* report.h - the tally command (client/cli/, private): a period's figures
 * as a report (`tally report`): one row per metric in catalog order with
 * its label and unit, one column per scope, optionally the same period a
 * year earlier (同比) and the period before (环比) and the changes; written as Markdown, CSV
 * (report.c) or Excel (report_xlsx.c).
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
    int kind;              /* enum tally_kind */
    int scale;             /* decimal places */
    report_cell_t *cur;    /* [nscopes] */
    report_cell_t *prev;   /* [nscopes], a year earlier, with compare */
    report_cell_t *before; /* [nscopes], the period before, with compare */
} report_row_t;

typedef struct report {
    char title[320];                /* "高观镇2023年统计报表（截至2023年12月6日）" */
    char heading[256];              /* the title without its （截至 ...） */
    char period[CLI_SPAN_NAME_MAX]; /* "2023", "2023-01..2023-11" */
    char period_zh[64];             /* "2023年", "2023年1月—11月" */
    char year_ago[CLI_SPAN_NAME_MAX]; /* "2022", "2022-01-01 至 2022-12-06" with compare, else "" */
    char year_ago_zh[64];             /* "2022年", "2022年1月1日—12月6日", or "" */
    char before[CLI_SPAN_NAME_MAX];   /* the period before: "2023-11", "2023-11-01..2023-11-06"
                                         with compare, "" for a year or a span */
    char before_zh[64];               /* "2023年11月", "2023年11月1日—6日", or "" */
    char through[CALPERIOD_NAME_MAX]; /* the last day the period has figures of, when open */
    char through_zh[32];              /* the same in Chinese: "2023年12月6日", or "" */
    char made_zh[32];                 /* the day the report is made: "2023年12月6日" */
    char unit_name[129];              /* who hands it in (填报单位): the township, or 全县 */
    bool compare;
    size_t nscopes;
    char (*scope_id)[65];    /* "" for the county */
    char (*scope_name)[129]; /* what a column is headed */
    report_row_t *rows;
    size_t nrows, cap;
    bool any_data;         /* a figure other than 0 or no value, in the period */
    bool year_ago_expired; /* with compare: its days older than the daemon keeps (no values) */
    bool before_expired;   /* the same for the period before */
} report_t;

/* Fill r for period (a period or a span) and scopes ids[0..n) ("" = the
 * county), named after cat (may be NULL: ids), metrics in catalog order,
 * then any the daemon has tallies of that the catalog lacks; with compare
 * the figures of year_ago (同比) and of before (环比) beside them, each
 * NULL when there is none (before 2000; no period before a year but the
 * year before, which is year_ago; none for a span).  today is the
 * daemon's day (a day key): the report is made on it, and a period not
 * over yet runs to it (r->through, said in the title).  fetch reads the
 * tallies of a period or span under a prefix (cli_span_fetch), each with
 * its one column named after it.  Earlier days that the daemon no longer
 * keeps (TALLY_EEXPIRED) leave that comparison without values,
 * r->year_ago_expired or r->before_expired set.  Returns 0, or the code
 * fetch returned (req says why), or TALLY_ENOMEM. */
typedef int (*report_fetch_fn)(void *ctx, const char *prefix, const cli_span_t *period,
                               tally_tally_cb cb, void *cb_ctx);
int report_build(report_t *r, const cli_span_t *period, bool compare, const cli_span_t *year_ago,
                 const cli_span_t *before, int32_t today, const char *const *ids, size_t n,
                 const tally_catalog_t *cat, report_fetch_fn fetch, void *fetch_ctx);

void report_free(report_t *r);

/* An earlier period a report sets its figures against, with its columns:
 * the values, the change and the change in % (in percentage points for a
 * ratio: report_change). */
typedef struct report_group {
    bool year_ago;     /* 同比, else 环比 (the period before) */
    char heading[320]; /* "2022年", "全县 2023年11月" (several scopes: the county's) */
    const char *change_zh, *pct_zh; /* "同比增减", "同比"; "环比增减", "环比" */
    char csv[3][40]; /* "year_ago", "change", "change_pct"; "previous", ...; with several
                        scopes "county_year_ago", ... */
} report_group_t;

/* With compare: the scope the earlier figures are shown for (the one
 * scope, or with several the county's, 全县), -1 when nothing is compared
 * (no compare, no earlier period, no county among several scopes); the
 * earlier periods into g[0..*ng) (同比 then 环比). */
int report_compared(const report_t *r, report_group_t g[2], size_t *ng);

/* The cells of row for g. */
const report_cell_t *report_earlier(const report_row_t *row, const report_group_t *g);

/* A value as the report shows it: "12.5" for 125 at scale 1, "98.6%" for
 * a ratio (one decimal, rounded half away from zero from the exact
 * integers), "" for no value. */
void report_format(char *buf, size_t cap, const report_row_t *row, const report_cell_t *c);

/* The change from b to a, when both have a value: absolute (the metric's
 * scale; for a ratio percentage points followed by pp: "+1.2pp", or
 * "+1.2 个百分点", the difference of the two percentages as printed,
 * cli_ratio_change_tenths) and relative ("+3.4%", "" when b is 0 or for a
 * ratio).  False when there is no change to show. */
bool report_change(const report_row_t *row, const report_cell_t *a, const report_cell_t *b,
                   const char *pp, char *abs_, size_t abs_cap, char *rel, size_t rel_cap);

/* The same as numbers, for writers that store numbers: *abs_ with the
 * scale (percentage points for a ratio: 0.8), *rel a fraction (0.034),
 * *has_rel false where report_change gives "". */
bool report_change_number(const report_row_t *row, const report_cell_t *a, const report_cell_t *b,
                          double *abs_, double *rel, bool *has_rel);

/* The ratio as a fraction (0.986...) and a value as a number with its
 * scale (12.5), for writers that store numbers. */
double report_number(const report_row_t *row, const report_cell_t *c);

/* The notes a report carries under its title when an earlier period's
 * days are older than the daemon keeps ("去年同期 ... 无法比较"), into
 * notes; how many. */
size_t report_expired_notes(const report_t *r, char notes[2][200]);

/* The line under the table of a report handed in: "填报单位：高观镇
 * 填报日期：2023年12月6日" (the day it is made, the daemon's). */
void report_signature(const report_t *r, char *buf, size_t cap);

/* Write r as Markdown or CSV to out.  0 or TALLY_EIO. */
int report_write_md(const report_t *r, FILE *out);
int report_write_csv(const report_t *r, FILE *out);

/* Write r as an Excel workbook to out (report_xlsx.c).  libxlsxwriter
 * writes only to a named file, so the workbook is made in a private file
 * of $TMPDIR (else /tmp), copied to out and removed.  0, or TALLY_EIO
 * with a sentence in err. */
int report_write_xlsx(const report_t *r, FILE *out, char *err, size_t errlen);

#endif
