/* libFuzzer target: the CSV a clerk gives `tally push` (csv.h) over
 * arbitrary bytes.
 *
 * Any input must either give samples or fail with one NUL-terminated
 * message that starts with the file's name, and never crash, leak or read
 * out of bounds.  Every sample has a valid metric name and a value that
 * reads back as the same number: csv_decimal_text then csv_parse_decimal
 * give the digits and places it was parsed as.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    csv_samples_t s = {0};
    char err[1024];
    memset(err, 'X', sizeof err);
    int rc = csv_parse_samples((const char *)data, size, "f.csv", &s, err, sizeof err);
    if (rc != 0 && rc != TALLY_EINVAL)
        abort();
    if (rc != 0 && (memchr(err, '\0', sizeof err) == NULL || strncmp(err, "f.csv", 5) != 0))
        abort();
    for (size_t i = 0; rc == 0 && i < s.n; i++) {
        const csv_sample_t *x = &s.v[i];
        if (proto_name_check(x->metric, strlen(x->metric)) < 0 || x->line == 0)
            abort();
        char text[96];
        int64_t digits;
        unsigned places;
        csv_decimal_text(x->value, x->places, text, sizeof text);
        if (csv_parse_decimal(text, strlen(text), &digits, &places) != 0 || digits != x->value ||
            places != x->places)
            abort();
    }
    csv_samples_free(&s);
    return 0;
}
