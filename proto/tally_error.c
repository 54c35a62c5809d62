/* tally_error.c - names and descriptions of the tally error codes.
 *
 * The tables are indexed by the code's absolute value (wire codes) or by
 * its distance from TALLY_ENOMEM (local codes), so a lookup is one bounds
 * check and one load, and a new code shows up as a gap the tests catch.
 */
#include "tally_error.h"

#include <stddef.h>

typedef struct code_info {
    const char *name;
    const char *text;
} code_info_t;

static const code_info_t wire_codes[] = {
    {"OK", "success"},
    {"MALFORMED", "message is not valid MessagePack, is truncated or has the wrong shape"},
    {"UNSUPPORTED_VERSION", "unsupported protocol version"},
    {"UNKNOWN_TYPE", "unknown message type"},
    {"BAD_TYPE", "a field has the wrong MessagePack type"},
    {"OUT_OF_RANGE", "a value is outside its field's range"},
    {"TOO_LONG", "a string is longer than its limit"},
    {"BAD_UTF8", "a string is not valid UTF-8"},
    {"BAD_NAME", "a name is empty or contains a forbidden character"},
    {"EMPTY_BATCH", "the submission has no samples"},
    {"TOO_MANY_SAMPLES", "the submission has more samples than allowed"},
    {"TRAILING_DATA", "bytes follow the end of the message"},
    {"UNKNOWN_TOWNSHIP", "the township is not in the catalog"},
    {"UNKNOWN_METRIC", "the metric is not in the catalog"},
    {"TIME_IN_FUTURE", "the event time lies beyond the allowed clock skew"},
    {"TIME_TOO_OLD", "the event time is older than the retention period"},
    {"OVERFLOW", "applying the sample would overflow a 64-bit tally"},
    {"FORBIDDEN", "this identity may not submit for the township"},
    {"RATE_LIMITED", "rate limit reached, retry later"},
    {"TOO_MANY_SERIES", "the series table is full"},
    {"TOO_MANY_CLIENTS", "the de-duplication table is full"},
    {"UNAVAILABLE", "the service is unavailable (storage failing or shutting down), retry later"},
    {"TOO_LARGE", "the message is larger than allowed"},
    {"KIND_MISMATCH", "the value is not valid for the metric's kind"},
    {"BUSY", "the daemon is overloaded, retry later"},
    {"STALE_SEQUENCE", "the sequence number is below the de-duplication window"},
    {"BAD_PERIOD", "the period or range does not parse, lies in the future or is too long"},
    {"PERIOD_EXPIRED", "the figures of that period are no longer kept"},
    {"NO_SUCH_BACKUP", "no backup of that name is kept"},
};

static const code_info_t local_codes[] = {
    {"NOMEM", "out of memory"},
    {"IO", "input/output error"},
    {"TIMEOUT", "timed out"},
    {"AGAIN", "resource temporarily unavailable, try again"},
    {"CLOSED", "connection or handle closed"},
    {"INVAL", "invalid argument"},
    {"EXISTS", "already exists"},
    {"NOTFOUND", "not found"},
    {"CONFIG", "invalid configuration"},
    {"SYS", "system call failed"},
    {"DAMAGED", "a backup's file does not match its BLAKE2SUMS"},
    {"IN_CALLBACK", "not allowed from within the handle's own callback"},
};

static const code_info_t *lookup(int code)
{
    static const size_t nwire = sizeof wire_codes / sizeof wire_codes[0];
    static const size_t nlocal = sizeof local_codes / sizeof local_codes[0];
    if (code <= 0 && (size_t) - (long)code < nwire)
        return &wire_codes[-code];
    if (code <= TALLY_ENOMEM && (size_t)((long)TALLY_ENOMEM - code) < nlocal)
        return &local_codes[TALLY_ENOMEM - code];
    return NULL;
}

const char *tally_strerror(int code)
{
    const code_info_t *c = lookup(code);
    return c != NULL ? c->text : "unknown error";
}

const char *tally_errname(int code)
{
    const code_info_t *c = lookup(code);
    return c != NULL ? c->name : "UNKNOWN";
}

bool tally_err_retryable(int code)
{
    switch (code) {
    case TALLY_ERATELIMIT:
    case TALLY_EUNAVAIL:
    case TALLY_EBUSY:
    case TALLY_ETIMEDOUT:
    case TALLY_EAGAIN:
    case TALLY_EIO:
    case TALLY_ECLOSED:
        return true;
    default:
        return false;
    }
}

bool tally_err_is_wire(int code)
{
    return code <= -1 && code >= TALLY_EWIRE_LAST;
}
