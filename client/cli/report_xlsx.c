/* report_xlsx.c - the tally command (client/cli/): a report as an Excel
 * workbook, written by libxlsxwriter (see report.h).
 *
 * Offices write their reports in Excel, so the workbook is made to be
 * worked with there: values are numbers (not text) with the metric's
 * decimal places, ratios fractions with a percent format, a title row
 * naming the scope and the period in Chinese, a frozen header row,
 * columns wide enough for the Chinese labels, and a grid of thin borders
 * with the 填报单位 and 填报日期 under it, so that it prints as a form to
 * hand in.  One sheet: the scope's figures, or for
 * --all one wide sheet with a column per township and the county last.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xlsxwriter.h>

#include "cli_util.h"
#include "report.h"
#include "table.h"
#include "tally_error.h"

/* Excel's column width is in characters of the default font; a CJK
 * character takes about two. */
static double width_of(const char *s)
{
    return (double)table_width(s) + 2.0;
}

static const char *number_format(int scale)
{
    static const char *const f[] = {
        "#,##0",       "#,##0.0",      "#,##0.00",      "#,##0.000",      "#,##0.0000",
        "#,##0.00000", "#,##0.000000", "#,##0.0000000", "#,##0.00000000", "#,##0.000000000"};
    return f[scale < 0 ? 0 : scale > 9 ? 9 : scale];
}

/* The largest magnitude a cell holds exactly as a number (15 digits). */
#define XLSX_DIGITS_MAX 999999999999999LL

typedef struct formats {
    lxw_format *title, *note, *head, *head_num, *text, *digits, *pct, *pp, *rel, *num[10],
        *signed_num[10];
} formats_t;

/* Every cell's font: 等线, the default of Excel and WPS in Chinese, not
 * the Calibri of English ones, beside which Chinese text is drawn in a
 * fallback font. */
#define XLSX_FONT "等线"

static lxw_format *add_format(lxw_workbook *wb)
{
    lxw_format *f = workbook_add_format(wb);
    format_set_font_name(f, XLSX_FONT);
    return f;
}

/* A cell of the table: a thin border on every side, so that it prints as
 * a grid. */
static lxw_format *cell_format(lxw_workbook *wb)
{
    lxw_format *f = add_format(wb);
    format_set_border(f, LXW_BORDER_THIN);
    return f;
}

static void make_formats(lxw_workbook *wb, formats_t *f)
{
    f->title = add_format(wb);
    format_set_bold(f->title);
    format_set_font_size(f->title, 14);
    f->note = add_format(wb);
    f->head = cell_format(wb);
    format_set_bold(f->head);
    f->head_num = cell_format(wb);
    format_set_bold(f->head_num);
    format_set_align(f->head_num, LXW_ALIGN_RIGHT);
    f->text = cell_format(wb);
    f->digits = cell_format(wb);
    format_set_align(f->digits, LXW_ALIGN_RIGHT);
    f->pct = cell_format(wb);
    format_set_num_format(f->pct, "0.0%");
    f->pp = cell_format(wb);
    format_set_num_format(f->pp, "+0.0\" 个百分点\";-0.0\" 个百分点\";0.0\" 个百分点\"");
    f->rel = cell_format(wb);
    format_set_num_format(f->rel, "+0.0%;-0.0%;0.0%");
    for (int s = 0; s < 10; s++) {
        f->num[s] = cell_format(wb);
        format_set_num_format(f->num[s], number_format(s));
        f->signed_num[s] = cell_format(wb);
        char buf[64];
        snprintf(buf, sizeof(buf), "+%s;-%s;%s", number_format(s), number_format(s),
                 number_format(s));
        format_set_num_format(f->signed_num[s], buf);
    }
}

static lxw_format *value_format(const formats_t *f, const report_row_t *row)
{
    return row->kind == TALLY_KIND_RATIO ? f->pct : f->num[row->scale];
}

static lxw_error write_value(lxw_worksheet *ws, lxw_row_t r, lxw_col_t c, const formats_t *f,
                             const report_row_t *row, const report_cell_t *cell)
{
    if (!cell->present)
        return worksheet_write_blank(ws, r, c, f->text);
    /* A spreadsheet's number holds 15 significant digits: a figure of more
     * would show digits it does not have (…854775808 as …854776000), so
     * it is written as its text, exact, aligned as the numbers are. */
    if (row->kind != TALLY_KIND_RATIO &&
        (cell->num > XLSX_DIGITS_MAX || cell->num < -XLSX_DIGITS_MAX)) {
        char text[64];
        report_format(text, sizeof text, row, cell);
        return worksheet_write_string(ws, r, c, text, f->digits);
    }
    return worksheet_write_number(ws, r, c, report_number(row, cell), value_format(f, row));
}

/* Append the file at path to out.  0 or TALLY_EIO (err says why). */
static int copy_file(const char *path, FILE *out, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = cli_read_input(path, &buf, &len, err, errlen);
    if (rc == 0 && fwrite(buf, 1, len, out) != len) {
        snprintf(err, errlen, "cannot copy the workbook from %s: %s", path, strerror(errno));
        rc = TALLY_EIO;
    }
    free(buf);
    return rc < 0 ? TALLY_EIO : 0;
}

static int build(const report_t *r, const char *tmp, char *err, size_t errlen);

int report_write_xlsx(const report_t *r, FILE *out, char *err, size_t errlen)
{
    /* A name of our own (mkstemp), so that libxlsxwriter's fopen() of it
     * at workbook_close() cannot fail on the destination's directory: any
     * fault there is reported by whoever writes out, with its cause. */
    const char *dir = getenv("TMPDIR");
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s/tally-report-XXXXXX", dir != NULL && dir[0] ? dir : "/tmp");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a temporary file in %s: %s",
                 dir != NULL && dir[0] ? dir : "/tmp", strerror(errno));
        return TALLY_EIO;
    }
    close(fd);
    int rc = build(r, tmp, err, errlen);
    if (rc == 0)
        rc = copy_file(tmp, out, err, errlen);
    unlink(tmp);
    return rc;
}

/* The change columns of group g on row y from column c: the absolute
 * change (percentage points for a ratio, the printed rates' difference)
 * and the relative one; blank but bordered without. */
static void write_change(lxw_worksheet *ws, lxw_row_t y, lxw_col_t c, const formats_t *f,
                         const report_row_t *row, const report_cell_t *a, const report_cell_t *b)
{
    double d, rel;
    bool has_rel;
    if (report_change_number(row, a, b, &d, &rel, &has_rel))
        worksheet_write_number(ws, y, c, d,
                               row->kind == TALLY_KIND_RATIO ? f->pp : f->signed_num[row->scale]);
    else
        worksheet_write_blank(ws, y, c, f->text);
    if (has_rel)
        worksheet_write_number(ws, y, c + 1, rel, f->rel);
    else
        worksheet_write_blank(ws, y, c + 1, f->text);
}

/* Print setup: A4, portrait when the printed columns (all but the ids')
 * fit its width, else landscape; scaled to one page wide unless that
 * would make the print too small to read (below a third: a province's
 * --all), centred; the title and header rows and the label and unit
 * columns on every page (a township's column on the third page still
 * says which figure each number is), the page numbers in the footer. */
static void print_setup(lxw_worksheet *ws, lxw_row_t head, lxw_row_t last, lxw_col_t ncols,
                        double width)
{
    /* Printable widths in characters of the default font with the
     * default margins: A4 portrait about 90, landscape about 135. */
    const double portrait = 90, landscape = 135;
    worksheet_print_area(ws, 0, 0, last, (lxw_col_t)(ncols - 2));
    worksheet_set_paper(ws, 9); /* A4 */
    if (width <= portrait)
        worksheet_set_portrait(ws);
    else
        worksheet_set_landscape(ws);
    if (width <= 3 * landscape)
        worksheet_fit_to_pages(ws, 1, 0);
    worksheet_center_horizontally(ws);
    worksheet_repeat_rows(ws, 0, head);
    worksheet_repeat_columns(ws, 0, 1);
    worksheet_set_footer(ws, "&C第 &P 页，共 &N 页");
}

/* Make the workbook of r in the file tmp. */
static int build(const report_t *r, const char *tmp, char *err, size_t errlen)
{
    lxw_workbook *wb = workbook_new(tmp);
    if (wb == NULL) {
        snprintf(err, errlen, "cannot create a workbook in %s", tmp);
        return TALLY_EIO;
    }
    formats_t f;
    make_formats(wb, &f);
    lxw_worksheet *ws = workbook_add_worksheet(wb, "报表");
    report_group_t g[2];
    size_t ng;
    int cs = report_compared(r, g, &ng);
    lxw_col_t ncols = (lxw_col_t)(2 + r->nscopes + 3 * ng + 1);
    lxw_error e = LXW_NO_ERROR;
    /* Row 0: the title; then notes (the day the figures run to, no data,
     * earlier days gone); then the header row, frozen with the label
     * column.  The title without its （截至 ...）: printed on every page, a
     * merged title shows only as wide as the label and unit columns on
     * the pages after the first; the day goes on a row of its own. */
    e = worksheet_merge_range(ws, 0, 0, 0, ncols - 2, r->heading, f.title); /* not over 编号 */
    lxw_row_t head = 1;
    char note[240];
    if (r->through[0]) {
        snprintf(note, sizeof(note), "数据截至%s", r->through_zh);
        worksheet_write_string(ws, head++, 0, note, f.note);
    }
    if (!r->any_data) {
        snprintf(note, sizeof(note), "本期无数据：%s 没有上报的数据", r->period_zh);
        worksheet_write_string(ws, head++, 0, note, f.note);
    }
    char notes[2][200];
    size_t nnotes = report_expired_notes(r, notes);
    for (size_t k = 0; k < nnotes; k++)
        worksheet_write_string(ws, head++, 0, notes[k], f.note);
    lxw_col_t c = 0;
    worksheet_write_string(ws, head, c++, "指标", f.head);
    worksheet_write_string(ws, head, c++, "单位", f.head);
    double wval = 12;
    for (size_t s = 0; s < r->nscopes; s++) {
        const char *h = r->nscopes == 1 ? r->period_zh : r->scope_name[s];
        worksheet_write_string(ws, head, c++, h, f.head_num);
        if (width_of(h) > wval)
            wval = width_of(h);
    }
    for (size_t k = 0; k < ng; k++) {
        worksheet_write_string(ws, head, c++, g[k].heading, f.head_num);
        worksheet_write_string(ws, head, c++, g[k].change_zh, f.head_num);
        worksheet_write_string(ws, head, c++, g[k].pct_zh, f.head_num);
    }
    worksheet_write_string(ws, head, c++, "编号", f.head);
    double wlabel = width_of("指标"), wid = width_of("编号");
    for (size_t i = 0; i < r->nrows && e == LXW_NO_ERROR; i++) {
        const report_row_t *row = &r->rows[i];
        lxw_row_t y = (lxw_row_t)(head + 1 + i);
        c = 0;
        worksheet_write_string(ws, y, c++, row->label, f.text);
        /* A ratio's values say % themselves. */
        worksheet_write_string(ws, y, c++, row->kind == TALLY_KIND_RATIO ? "" : row->unit, f.text);
        for (size_t s = 0; s < r->nscopes; s++)
            e = write_value(ws, y, c++, &f, row, &row->cur[s]);
        for (size_t k = 0; k < ng; k++) {
            const report_cell_t *b = &report_earlier(row, &g[k])[cs];
            write_value(ws, y, c++, &f, row, b);
            write_change(ws, y, c, &f, row, &row->cur[cs], b);
            c += 2;
        }
        worksheet_write_string(ws, y, c++, row->id, f.text);
        if (width_of(row->label) > wlabel)
            wlabel = width_of(row->label);
        if (width_of(row->id) > wid)
            wid = width_of(row->id);
    }
    lxw_row_t last = (lxw_row_t)(head + 1 + r->nrows);
    char sig[400];
    report_signature(r, sig, sizeof(sig));
    worksheet_write_string(ws, last, 0, sig, f.note);
    worksheet_set_column(ws, 0, 0, wlabel, NULL);
    worksheet_set_column(ws, 1, 1, 8, NULL);
    double width = wlabel + 8;
    /* One call per column: libxlsxwriter keeps the first of overlapping
     * ranges.  An earlier period may be a span's days, "2022年1月1日—12月6日". */
    for (lxw_col_t k = 2; k + 1 < ncols; k++) {
        size_t at = k - 2 - r->nscopes; /* within the groups' columns */
        bool earlier = k >= 2 + r->nscopes && at % 3 == 0;
        double w = earlier && width_of(g[at / 3].heading) > wval ? width_of(g[at / 3].heading)
                   /* 同比增减 of a ratio: "+12.3 个百分点" */
                   : k >= 2 + r->nscopes && at % 3 == 1 && wval < 15 ? 15
                                                                     : wval;
        worksheet_set_column(ws, k, k, w, NULL);
        width += w;
    }
    worksheet_set_column(ws, (lxw_col_t)(ncols - 1), (lxw_col_t)(ncols - 1), wid, NULL);
    worksheet_freeze_panes(ws, head + 1, 1);
    /* The ids' column, there for programs, is left off paper. */
    print_setup(ws, head, last, ncols, width);
    lxw_error ce = workbook_close(wb);
    if (e == LXW_NO_ERROR)
        e = ce;
    if (e != LXW_NO_ERROR) {
        snprintf(err, errlen, "cannot make the workbook in %s: %s", tmp, lxw_strerror(e));
        return TALLY_EIO;
    }
    return 0;
}
