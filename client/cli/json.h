/* json.h - the tally command (client/cli/, private): the few JSON writing
 * primitives it needs.  Output goes straight to a stdio stream. */
#ifndef TALLY_CLIENT_JSON_H
#define TALLY_CLIENT_JSON_H

#include <stddef.h>
#include <stdio.h>

/* Write s[0..len) as a JSON string with its quotes: tallycommon's
 * text_json_string (proto/text.h), which says how it escapes. */
void json_string_n(FILE *out, const char *s, size_t len);

/* json_string_n of a NUL-terminated string. */
void json_string(FILE *out, const char *s);

/* Write a number with the fewest digits that read back as exactly v:
 * tallycommon's text_json_double (proto/text.h). */
void json_double(FILE *out, double v);

#endif
