/* report_xlsx.c - the tally command (client/cli/): a report as an Excel
 * workbook, written by libxlsxwriter (see report.h).
 *
 * Offices write their reports in Excel, so the workbook is made to be
 * worked with there: values are numbers (not text) with the metric's
 * decimal places, ratios fractions with a percent format, a title row
 * naming the scope and the period, a frozen header row, and columns wide
 * enough for the Chinese labels.  One sheet: the scope's figures, or for
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

typedef struct formats {
    lxw_format *title, *head, *head_num, *text, *pct, *pp, *rel, *num[10], *signed_num[10];
} formats_t;

static void make_formats(lxw_workbook *wb, formats_t *f)
{
    f->title = workbook_add_format(wb);
    format_set_bold(f->title);
    format_set_font_size(f->title, 14);
    f->head = workbook_add_format(wb);
    format_set_bold(f->head);
    format_set_bottom(f->head, LXW_BORDER_THIN);
    f->head_num = workbook_add_format(wb);
    format_set_bold(f->head_num);
    format_set_bottom(f->head_num, LXW_BORDER_THIN);
    format_set_align(f->head_num, LXW_ALIGN_RIGHT);
    f->text = workbook_add_format(wb);
    f->pct = workbook_add_format(wb);
    format_set_num_format(f->pct, "0.0%");
    f->pp = workbook_add_format(wb);
    format_set_num_format(f->pp, "+0.0\" 个百分点\";-0.0\" 个百分点\";0.0\" 个百分点\"");
    f->rel = workbook_add_format(wb);
    format_set_num_format(f->rel, "+0.0%;-0.0%;0.0%");
    for (int s = 0; s < 10; s++) {
        f->num[s] = workbook_add_format(wb);
        format_set_num_format(f->num[s], number_format(s));
        f->signed_num[s] = workbook_add_format(wb);
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
    char ya[CLI_SPAN_NAME_MAX + 160];
    int cs = report_compared(r, ya, sizeof(ya));
    bool cmp = cs >= 0;
    lxw_col_t ncols = (lxw_col_t)(2 + r->nscopes + (cmp ? 3 : 0) + 1);
    lxw_error e = LXW_NO_ERROR;
    /* Row 0: the title; row 1: a note when there is no data; then the
     * header row, frozen with the label column. */
    /* The title without its （截至 ...）: printed on every page, a merged
     * title shows only as wide as the label and unit columns on the
     * pages after the first; the day goes on a row of its own. */
    e = worksheet_merge_range(ws, 0, 0, 0, ncols - 1, r->heading, f.title);
    lxw_row_t head = 1;
    if (r->through[0]) {
        char note[64];
        snprintf(note, sizeof(note), "数据截至 %s", r->through);
        worksheet_write_string(ws, head++, 0, note, f.text);
    }
    if (!r->any_data) {
        char note[160];
        snprintf(note, sizeof(note), "本期无数据：%s 没有上报的数据", r->period);
        worksheet_write_string(ws, head++, 0, note, f.text);
    }
    if (r->year_ago_expired) {
        char note[160];
        snprintf(note, sizeof(note), "去年同期 %s 的逐日数据已超出保存期限，无法比较", r->year_ago);
        worksheet_write_string(ws, head++, 0, note, f.text);
    }
    lxw_col_t c = 0;
    worksheet_write_string(ws, head, c++, "指标", f.head);
    worksheet_write_string(ws, head, c++, "单位", f.head);
    double wval = 12;
    for (size_t s = 0; s < r->nscopes; s++) {
        const char *h = r->nscopes == 1 ? r->period : r->scope_name[s];
        worksheet_write_string(ws, head, c++, h, f.head_num);
        if (width_of(h) > wval)
            wval = width_of(h);
    }
    if (cmp) {
        worksheet_write_string(ws, head, c++, ya, f.head_num);
        worksheet_write_string(ws, head, c++, "同比增减", f.head_num);
        worksheet_write_string(ws, head, c++, "同比", f.head_num);
    }
    worksheet_write_string(ws, head, c++, "编号", f.head);
    double wlabel = width_of("指标"), wid = width_of("编号");
    for (size_t i = 0; i < r->nrows && e == LXW_NO_ERROR; i++) {
        const report_row_t *row = &r->rows[i];
        lxw_row_t y = (lxw_row_t)(head + 1 + i);
        c = 0;
        worksheet_write_string(ws, y, c++, row->label, f.text);
        worksheet_write_string(ws, y, c++, row->kind == TALLY_KIND_RATIO ? "%" : row->unit, f.text);
        for (size_t s = 0; s < r->nscopes; s++)
            e = write_value(ws, y, c++, &f, row, &row->cur[s]);
        if (cmp) {
            const report_cell_t *a = &row->cur[cs], *b = &row->prev[cs];
            write_value(ws, y, c++, &f, row, b);
            if (a->present && b->present && row->kind == TALLY_KIND_RATIO && a->den && b->den)
                worksheet_write_number(
                    ws, y, c, 100.0 * (report_number(row, a) - report_number(row, b)), f.pp);
            else if (a->present && b->present && row->kind != TALLY_KIND_RATIO)
                worksheet_write_number(ws, y, c, report_number(row, a) - report_number(row, b),
                                       f.signed_num[row->scale]);
            c++;
            if (a->present && b->present && row->kind != TALLY_KIND_RATIO && b->num != 0)
                worksheet_write_number(
                    ws, y, c, (double)(a->num - b->num) / (double)(b->num < 0 ? -b->num : b->num),
                    f.rel);
            c++;
        }
        worksheet_write_string(ws, y, c++, row->id, f.text);
        if (width_of(row->label) > wlabel)
            wlabel = width_of(row->label);
        if (width_of(row->id) > wid)
            wid = width_of(row->id);
    }
    worksheet_set_column(ws, 0, 0, wlabel, NULL);
    worksheet_set_column(ws, 1, 1, 8, NULL);
    /* One call per column: libxlsxwriter keeps the first of overlapping
     * ranges.  The year-ago column may be a span's days, "2022-01-01 至 2022-12-06". */
    for (lxw_col_t k = 2; k + 1 < ncols; k++) {
        bool wide = cmp && k == 2 + r->nscopes && width_of(ya) > wval;
        /* 同比增减 of a ratio: "+12.3 个百分点" */
        bool change = cmp && k == 3 + r->nscopes && wval < 15;
        worksheet_set_column(ws, k, k, wide ? width_of(ya) : change ? 15 : wval, NULL);
    }
    worksheet_set_column(ws, (lxw_col_t)(ncols - 1), (lxw_col_t)(ncols - 1), wid, NULL);
    worksheet_freeze_panes(ws, head + 1, 1);
    /* On paper: A4 landscape, the title and header rows and the label and
     * unit columns on every page (a township's column printed on the
     * third page still says which figure each number is), the page
     * numbers in the footer.  The ids' column, there for programs, is
     * left off paper: a township's report fits one page. */
    worksheet_print_area(ws, 0, 0, (lxw_row_t)(head + r->nrows), (lxw_col_t)(ncols - 2));
    worksheet_set_paper(ws, 9); /* A4 */
    worksheet_set_landscape(ws);
    worksheet_repeat_rows(ws, 0, head);
    worksheet_repeat_columns(ws, 0, 1);
    worksheet_set_footer(ws, "&C第 &P 页，共 &N 页");
    lxw_error ce = workbook_close(wb);
    if (e == LXW_NO_ERROR)
        e = ce;
    if (e != LXW_NO_ERROR) {
        snprintf(err, errlen, "cannot make the workbook in %s: %s", tmp, lxw_strerror(e));
        return TALLY_EIO;
    }
    return 0;
}
