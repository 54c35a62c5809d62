/* table.h - the tally command (client/cli/, private): plain-text tables
 * aligned by display width.
 *
 * Widths are computed from the UTF-8 text itself, not from the locale:
 * East Asian Wide and Fullwidth characters (高观镇) take two columns,
 * combining marks and zero-width characters none, everything else one. */
#ifndef TALLY_CLIENT_TABLE_H
#define TALLY_CLIENT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Display width of one code point: 0, 1 or 2 (controls count 0). */
int table_wcwidth(uint32_t cp);

/* Display width of a UTF-8 string; an invalid byte counts one column. */
size_t table_width(const char *s);

typedef struct table table_t;

/* A table of ncols columns (1..64); NULL when out of memory. */
table_t *table_new(unsigned ncols);

/* Free the table and its cells; *t = NULL. */
void table_free(table_t **t);

/* Right-align column col (numbers); columns are left-aligned by default. */
void table_align_right(table_t *t, unsigned col);

/* Append a row of ncols cells (copied; NULL is an empty cell).
 * 0 or TALLY_ENOMEM. */
int table_add(table_t *t, const char *const *cells);

/* Number of rows added. */
size_t table_rows(const table_t *t);

/* Print every row, columns separated by two spaces, padded to the widest
 * cell of each column; no trailing spaces. */
void table_print(const table_t *t, FILE *out);

/* The same table without keeping its cells, for tables too large to hold
 * (a million rows): table_measure() every row (the header included),
 * then table_print_row() the same rows in the same order.  Rows added
 * with table_add() are not measured by these. */
void table_measure(table_t *t, const char *const *cells);
void table_print_row(const table_t *t, const char *const *cells, FILE *out);

#endif
