/* text.h - text for people and for JSON: untrusted bytes escaped so they
 * print safely in a sentence or a JSON string, and bounded copies into
 * caller buffers (part of tallycommon, shared by the daemon, the codec
 * and the client).
 */
#ifndef TALLY_TEXT_H
#define TALLY_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* "" for one, else "s": the English plural of a word counted n. */
#define TEXT_PLURAL(n) ((n) == 1 ? "" : "s")

/* Flags of text_printable. */
#define TEXT_HEX_UPPER 1u /* "\xFF" rather than "\xff" */
#define TEXT_QUOTES    2u /* escape ' and \ too: the text is shown between quotes */

/* Copy s[0..len) into buf (cap >= 8 bytes, NUL-terminated) so that it
 * prints safely in a message: printable ASCII and valid UTF-8 stay as they
 * are; control characters (C0, DEL and the C1 controls U+0080..U+009F) and
 * bytes that are not valid UTF-8 become \xNN, one escape per byte.  Where
 * the next character and "..." would not fit into cap with the NUL, the
 * copy ends with "..." instead, so a long value never crowds out the rest
 * of a sentence (pass a small cap to show at most that much).  s may be
 * NULL when len is 0.  Returns buf. */
const char *text_printable(char *buf, size_t cap, const void *s, size_t len, unsigned flags);

/* Write s[0..len) to out as a JSON string with its quotes.  Valid UTF-8
 * passes through unchanged; '"', '\\' and control characters (U+0000..
 * U+001F, U+007F) are escaped (\n, \t, \r, \b, \f or \u00XX); bytes that
 * are not valid UTF-8 become \ufffd, the replacement character, since
 * JSON text must be UTF-8.  s may be NULL when len is 0.  Errors of out
 * are left in its error indicator (ferror). */
void text_json_string(FILE *out, const char *s, size_t len);

/* Write v to out as a JSON number with the fewest digits that read back
 * as exactly v ("0.9863013698630136", "1", "0.5"), as JavaScript and
 * Python print it; null for NaN and infinities, which JSON cannot
 * represent. */
void text_json_double(FILE *out, double v);

/* Write one value of a tally as the clients' JSON shows it (`tally get
 * --json`, tally-web): null when it is not present, the integer num for
 * a counter or a gauge, and {"num":N,"den":D,"value":num/den} for a
 * ratio (value 0 when den is 0). */
void text_json_value(FILE *out, bool present, bool ratio, int64_t num, int64_t den);

/* Copy src[0..len) into dst (cap bytes), cutting it to cap - 1 bytes when
 * longer, and NUL-terminate it.  Does nothing when cap is 0. */
void text_copy(char *dst, size_t cap, const char *src, size_t len);

/* Copy src[0..len) and a NUL to *p, which must have room for len + 1
 * bytes, and advance *p past them: strings packed one after another in
 * one allocation.  Returns the copy. */
const char *text_put(char **p, const char *src, size_t len);

/* snprintf into buf (cap bytes) when buf is not NULL and cap > 0, for the
 * optional "err, errlen" message buffers that functions fill on failure. */
void text_format(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
