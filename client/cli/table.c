/* table.c - the tally command (client/cli/): plain-text tables aligned by
 * display width. */
#include "table.h"

#include <stdlib.h>
#include <string.h>

#include "tally_error.h"
#include "utf8.h"
#include "vec.h"

typedef struct range {
    uint32_t lo, hi;
} range_t;

/* Combining marks and zero-width characters that take no column. */
static const range_t zero_width[] = {
    {0x0300, 0x036F},   {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x05BF, 0x05BF},   {0x05C1, 0x05C2},
    {0x05C4, 0x05C5},   {0x05C7, 0x05C7}, {0x0610, 0x061A}, {0x064B, 0x065F},   {0x0670, 0x0670},
    {0x06D6, 0x06DC},   {0x06DF, 0x06E4}, {0x06E7, 0x06E8}, {0x06EA, 0x06ED},   {0x0900, 0x0902},
    {0x093A, 0x093A},   {0x093C, 0x093C}, {0x0941, 0x0948}, {0x094D, 0x094D},   {0x0E31, 0x0E31},
    {0x0E34, 0x0E3A},   {0x0E47, 0x0E4E}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF},   {0x200B, 0x200F},
    {0x202A, 0x202E},   {0x2060, 0x2064}, {0x20D0, 0x20FF}, {0x302A, 0x302D},   {0x3099, 0x309A},
    {0xFE00, 0xFE0F},   {0xFE20, 0xFE2F}, {0xFEFF, 0xFEFF}, {0x1F3FB, 0x1F3FF}, {0xE0001, 0xE007F},
    {0xE0100, 0xE01EF},
};

/* East Asian Wide (W) and Fullwidth (F) blocks. */
static const range_t wide[] = {
    {0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},
    {0x23F0, 0x23F0},   {0x23F3, 0x23F3},   {0x25FD, 0x25FE},   {0x2614, 0x2615},
    {0x2648, 0x2653},   {0x267F, 0x267F},   {0x2693, 0x2693},   {0x26A1, 0x26A1},
    {0x26AA, 0x26AB},   {0x26BD, 0x26BE},   {0x26C4, 0x26C5},   {0x26CE, 0x26CE},
    {0x26D4, 0x26D4},   {0x26EA, 0x26EA},   {0x26F2, 0x26F3},   {0x26F5, 0x26F5},
    {0x26FA, 0x26FA},   {0x26FD, 0x26FD},   {0x2705, 0x2705},   {0x270A, 0x270B},
    {0x2728, 0x2728},   {0x274C, 0x274C},   {0x274E, 0x274E},   {0x2753, 0x2755},
    {0x2757, 0x2757},   {0x2795, 0x2797},   {0x27B0, 0x27B0},   {0x27BF, 0x27BF},
    {0x2B1B, 0x2B1C},   {0x2B50, 0x2B50},   {0x2B55, 0x2B55},   {0x2E80, 0x3029},
    {0x302E, 0x303E},   {0x3041, 0x3098},   {0x309B, 0x33FF},   {0x3400, 0x4DBF},
    {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},   {0xA960, 0xA97F},   {0xAC00, 0xD7A3},
    {0xF900, 0xFAFF},   {0xFE10, 0xFE19},   {0xFE30, 0xFE6F},   {0xFF00, 0xFF60},
    {0xFFE0, 0xFFE6},   {0x16FE0, 0x16FE4}, {0x17000, 0x18CFF}, {0x1B000, 0x1B2FF},
    {0x1F004, 0x1F004}, {0x1F0CF, 0x1F0CF}, {0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A},
    {0x1F200, 0x1F202}, {0x1F210, 0x1F23B}, {0x1F240, 0x1F248}, {0x1F250, 0x1F251},
    {0x1F260, 0x1F265}, {0x1F300, 0x1F320}, {0x1F32D, 0x1F335}, {0x1F337, 0x1F37C},
    {0x1F37E, 0x1F393}, {0x1F3A0, 0x1F3CA}, {0x1F3CF, 0x1F3D3}, {0x1F3E0, 0x1F3F0},
    {0x1F3F4, 0x1F3F4}, {0x1F3F8, 0x1F3FA}, {0x1F400, 0x1F43E}, {0x1F440, 0x1F440},
    {0x1F442, 0x1F4FC}, {0x1F4FF, 0x1F53D}, {0x1F54B, 0x1F54E}, {0x1F550, 0x1F567},
    {0x1F57A, 0x1F57A}, {0x1F595, 0x1F596}, {0x1F5A4, 0x1F5A4}, {0x1F5FB, 0x1F64F},
    {0x1F680, 0x1F6C5}, {0x1F6CC, 0x1F6CC}, {0x1F6D0, 0x1F6D2}, {0x1F6D5, 0x1F6D7},
    {0x1F6EB, 0x1F6EC}, {0x1F6F4, 0x1F6FC}, {0x1F7E0, 0x1F7EB}, {0x1F90C, 0x1F93A},
    {0x1F93C, 0x1F945}, {0x1F947, 0x1F9FF}, {0x1FA70, 0x1FAFF}, {0x20000, 0x2FFFD},
    {0x30000, 0x3FFFD},
};

static bool is_in_ranges(const range_t *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

int table_wcwidth(uint32_t cp)
{
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0))
        return 0;
    if (cp < 0x300)
        return 1;
    if (is_in_ranges(zero_width, sizeof zero_width / sizeof zero_width[0], cp))
        return 0;
    if (is_in_ranges(wide, sizeof wide / sizeof wide[0], cp))
        return 2;
    return 1;
}

size_t table_width(const char *s)
{
    size_t len = strlen(s), w = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            w++; /* a stray byte is shown as one replacement character */
            i++;
            continue;
        }
        w += (size_t)table_wcwidth(cp);
        i += n;
    }
    return w;
}

#define TABLE_COLS_MAX 64

struct table {
    unsigned ncols;
    bool right[TABLE_COLS_MAX];
    char **cells; /* rows * ncols */
    size_t rows, cap;
    size_t width[TABLE_COLS_MAX]; /* of the rows table_measure() saw */
};

table_t *table_new(unsigned ncols)
{
    if (ncols == 0 || ncols > TABLE_COLS_MAX)
        return NULL;
    table_t *t = calloc(1, sizeof *t);
    if (t != NULL)
        t->ncols = ncols;
    return t;
}

void table_free(table_t **tp)
{
    table_t *t = *tp;
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->rows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
    *tp = NULL;
}

void table_align_right(table_t *t, unsigned col)
{
    if (col < t->ncols)
        t->right[col] = true;
}

int table_add(table_t *t, const char *const *cells)
{
    /* The array's element is a row of ncols cells. */
    if (vec_reserve(&t->cells, &t->cap, t->rows + 1, t->ncols * sizeof *t->cells) < 0)
        return TALLY_ENOMEM;
    char **row = t->cells + t->rows * t->ncols;
    for (unsigned i = 0; i < t->ncols; i++) {
        row[i] = strdup(cells[i] ? cells[i] : "");
        if (row[i] == NULL) {
            while (i-- > 0)
                free(row[i]);
            return TALLY_ENOMEM;
        }
    }
    t->rows++;
    return 0;
}

size_t table_rows(const table_t *t)
{
    return t->rows;
}

static void pad(FILE *out, size_t n)
{
    static const char spaces[] = "                                ";
    for (; n > sizeof spaces - 1; n -= sizeof spaces - 1)
        fwrite(spaces, 1, sizeof spaces - 1, out);
    fwrite(spaces, 1, n, out);
}

static const char *cell(const char *const *cells, unsigned c)
{
    return cells[c] != NULL ? cells[c] : "";
}

static void measure(unsigned ncols, size_t *width, const char *const *cells)
{
    for (unsigned c = 0; c < ncols; c++) {
        size_t w = table_width(cell(cells, c));
        if (w > width[c])
            width[c] = w;
    }
}

static void print_row(const table_t *t, const size_t *width, const char *const *cells, FILE *out)
{
    /* Trailing empty left-aligned cells would only add spaces. */
    unsigned last = t->ncols;
    while (last > 1 && cell(cells, last - 1)[0] == '\0' && !t->right[last - 1])
        last--;
    for (unsigned c = 0; c < last; c++) {
        const char *s = cell(cells, c);
        size_t w = table_width(s);
        if (c > 0)
            fputs("  ", out);
        if (t->right[c])
            pad(out, width[c] - w);
        fputs(s, out);
        if (!t->right[c] && c + 1 < last)
            pad(out, width[c] - w);
    }
    fputc('\n', out);
}

void table_print(const table_t *t, FILE *out)
{
    size_t width[TABLE_COLS_MAX] = {0};
    for (size_t r = 0; r < t->rows; r++)
        measure(t->ncols, width, (const char *const *)t->cells + r * t->ncols);
    for (size_t r = 0; r < t->rows; r++)
        print_row(t, width, (const char *const *)t->cells + r * t->ncols, out);
}

void table_measure(table_t *t, const char *const *cells)
{
    measure(t->ncols, t->width, cells);
}

void table_print_row(const table_t *t, const char *const *cells, FILE *out)
{
    print_row(t, t->width, cells, out);
}
