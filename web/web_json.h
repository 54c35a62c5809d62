/* web_json.h - tally-web (web/): tallies as JSON, in the shape of
 * `tally get --json` (README, tally(1)), written to a stdio stream
 * (an open_memstream buffer in practice). */
#ifndef TALLY_WEB_JSON_H
#define TALLY_WEB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "tally.h"

/* Write t as {"seq":N,"metric":M,"scope":S,"kind":K,"values":{...}}
 * ("seq" only when with_seq; scope "county" for the county's tallies;
 * a column without a value is null, a ratio's is {"num","den","value"}). */
void web_json_tally(FILE *out, const tally_tally_t *t, bool with_seq);

/* Write s as a JSON string with its quotes (tallycommon's escaping). */
void web_json_string(FILE *out, const char *s);

/* Sort tallies as `tally get` prints them: by metric, the county first,
 * then townships by name. */
void web_json_sort(const tally_tally_t **v, size_t n);

/* A memory buffer written through a FILE (open_memstream). */
typedef struct web_buf {
    FILE *f;
    char *data; /* valid after web_buf_close; owned, free() it */
    size_t len;
} web_buf_t;

/* Open b.  Returns 0 or TALLY_ENOMEM. */
int web_buf_open(web_buf_t *b);

/* Close b's stream: b->data and b->len hold what was written.  Returns 0,
 * or TALLY_ENOMEM when a write failed (b->data is then NULL). */
int web_buf_close(web_buf_t *b);

#endif
