/* json.c - the tally command (client/cli/): JSON strings and numbers for
 * `tally get --json` and `tally watch --json`. */
#include "json.h"

#include <string.h>

#include "text.h"

void json_string_n(FILE *out, const char *s, size_t len)
{
    text_json_string(out, s, len);
}

void json_string(FILE *out, const char *s)
{
    json_string_n(out, s, strlen(s));
}

void json_double(FILE *out, double v)
{
    text_json_double(out, v);
}
