/* json.c - the tally command (client/cli/): JSON strings and numbers for
 * `tally get --json` and `tally watch --json`. */
#include "json.h"

#include <math.h>
#include <stdlib.h>
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
    if (!isfinite(v)) {
        fputs("null", out);
        return;
    }
    char buf[40];
    /* The shortest %.*g that round-trips, as JavaScript and Python print. */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, out);
}
