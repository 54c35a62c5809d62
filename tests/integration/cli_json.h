/* cli_json.h - a small JSON reader for the integration tests of the
 * `tally` command: it parses one document into a tree, strictly (what it
 * accepts is valid JSON), so that a test can check the shape and the
 * exact numbers of `tally get --json`, `watch --json` and `stats --json`.
 */
#ifndef TALLY_CLI_JSON_H
#define TALLY_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cj_type { CJ_NULL, CJ_BOOL, CJ_NUM, CJ_STR, CJ_ARR, CJ_OBJ };

/* A parsed JSON value.  Numbers keep both readings: is_int when the text
 * was an integer (no fraction, no exponent) that fits int64 (then i holds
 * it exactly); d always.  Strings are UTF-8 with escapes decoded (an
 * embedded NUL is refused).  Arrays hold n items; objects n items with
 * their keys in order (duplicates kept, cj_get returns the first). */
typedef struct cj {
    enum cj_type type;
    bool b;
    bool is_int;
    int64_t i;
    double d;
    char *s;
    size_t n;
    struct cj *items;
    char **keys;
} cj_t;

/* Parse exactly one JSON value from text[0..len) (surrounding whitespace
 * allowed, nothing else).  On success *out owns the tree (cj_free).
 * Returns 0, TALLY_EMALFORMED (err says where and why) or TALLY_ENOMEM. */
int cj_parse(const char *text, size_t len, cj_t *out, char *err, size_t errlen);
void cj_free(cj_t *v);

/* Member key of object o, NULL when absent or o is not an object. */
const cj_t *cj_get(const cj_t *o, const char *key);

#endif
