/* csv.h - the tally command (client/cli/, private): figures from CSV text
 * for `tally push`.
 *
 * The input is RFC 4180 CSV (quoted fields with "" escapes, LF or CRLF
 * line ends, an optional UTF-8 byte order mark; UTF-8 where it is read,
 * with GBK recognised and explained) whose header row names at
 * least a `metric` and a `value` column (found by name, case-insensitive,
 * surrounding spaces ignored; 指标, 指标名称 or 项目 stand for `metric`,
 * 数值, 数量 or 值 for `value`, the first in that order taken); other
 * columns are ignored.  Blank lines, and rows whose every cell is empty
 * or spaces (Excel's formatted but empty rows), are skipped.  A row may not
 * have more non-empty fields than the header has columns: an unquoted
 * "1,000" would otherwise lose its "000".  Values are decimal numbers
 * in the metric's unit (optional sign, digits, optionally a point and
 * more digits; no thousands separators, no exponent): push applies the
 * metric's decimal scale to them (cli_push_impl.h), so a sample keeps
 * the digits and the places after the point, exactly.
 * A row whose `kind` column (when the header has one) says `ratio` is
 * left out and counted: `tally report --format csv` writes the derived
 * ratios (50.0%) beside the figures, and its file is pushed back as it
 * is after editing.  So is a row whose value is empty: in a spreadsheet
 * an empty cell is no figure (a counter adds nothing, a gauge keeps its
 * level), and the report leaves a gauge without a value empty.
 */
#ifndef TALLY_CLIENT_CSV_H
#define TALLY_CLIENT_CSV_H

#include <stddef.h>
#include <stdint.h>

typedef struct csv_sample {
    char *metric;
    int64_t value;   /* the number written, without its point: 12.50 is 125 */
    unsigned places; /* decimal places of value: 12.50 has 1 (trailing zeros go) */
    unsigned line;   /* 1-based line of the input where the record starts */
} csv_sample_t;

typedef struct csv_samples {
    csv_sample_t *v;
    size_t n, cap;
    size_t ratios; /* rows left out: their kind column says "ratio" */
    size_t blanks; /* rows left out: their value is empty */
} csv_samples_t;

/* Parse buf[0..len) (name is used in messages: the file name or "stdin")
 * and append its samples to out.  Returns 0; TALLY_EINVAL with a message
 * in err naming name, line, column and value ("data.csv:5: column 5
 * (value): '12.5 ha' is not a number", "data.csv:7: column 3: extra field
 * '000': ..."); TALLY_ENOMEM.  On failure out may hold the samples of the
 * rows before the bad one. */
int csv_parse_samples(const char *buf, size_t len, const char *name, csv_samples_t *out, char *err,
                      size_t errlen);

/* Append one sample (copies metric), value with places decimal places.
 * 0 or TALLY_ENOMEM. */
int csv_samples_add(csv_samples_t *s, const char *metric, size_t mlen, int64_t value,
                    unsigned places, unsigned line);

/* Free the samples; s is empty afterwards. */
void csv_samples_free(csv_samples_t *s);

/* Parse an integer: optional '+' or '-', then 1..n decimal digits, nothing
 * else.  Returns 0; TALLY_EINVAL (not an integer); TALLY_ERANGE (outside
 * int64). */
int csv_parse_int64(const char *s, size_t len, int64_t *out);

/* Parse a decimal number: optional '+' or '-', 1..n digits, optionally a
 * '.' and 1..n digits, nothing else.  *digits receives the number without
 * its point and *places the digits after it, trailing zeros dropped
 * ("12.50": 125 and 1; "-0.05": -5 and 2; "7.0": 7 and 0).  Returns 0;
 * TALLY_EINVAL (not such a number); TALLY_ERANGE (its digits beyond
 * int64). */
int csv_parse_decimal(const char *s, size_t len, int64_t *digits, unsigned *places);

/* The end of a message saying that s[0..len) "is not a number"
 * (csv_parse_decimal's TALLY_EINVAL) when the reason is a common one: " (write
 * it without thousands separators)" for "1,000", or that it is written with
 * full-width digits, as a Chinese input method types them ("１６００"), with
 * the number in ASCII digits.  "" otherwise.  Returns buf. */
const char *csv_number_advice(const char *s, size_t len, char *buf, size_t cap);

/* value with places decimal places (csv_parse_decimal's) as it was
 * written, without trailing zeros: "12.5", "-0.05", "7".  Returns buf. */
const char *csv_decimal_text(int64_t value, unsigned places, char *buf, size_t cap);

#endif
