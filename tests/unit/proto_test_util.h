/* proto_test_util.h - helpers shared by the wire codec unit tests
 * (test_proto.c, test_proto_decode.c, the backup messages' tests and
 * others).  Everything here is static so each
 * test executable gets its own copy and no state is shared between them. */
#ifndef PROTO_TEST_UTIL_H
#define PROTO_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto.h"

static proto_sample_t g_samples[PROTO_SAMPLES_MAX];

#define A16 "aaaaaaaaaaaaaaaa"
#define A64 A16 A16 A16 A16

static inline bool view_is(proto_str_t v, const char *s)
{
    return v.len == strlen(s) && memcmp(v.ptr, s, v.len) == 0;
}

/* Decode from an exact-size heap copy so ASan sees any read past the end.
 * The copy lives until the next call because the decoded views point into
 * it. */
static void *g_copy;

static inline int decode_exact(const void *bytes, size_t len, proto_msg_t *m, uint32_t cap,
                               proto_error_t *err)
{
    static proto_msg_t m2;
    free(g_copy);
    g_copy = malloc(len ? len : 1);
    assert_non_null(g_copy);
    if (len > 0)
        memcpy(g_copy, bytes, len);
    /* Without a report the result must be the same. */
    int rc = proto_decode(g_copy, len, &m2, g_samples, cap, NULL);
    assert_int_equal(proto_decode(g_copy, len, m, g_samples, cap, err), rc);
    return rc;
}

/* A row of a table of inputs the decoder refuses: the bytes, the code and
 * field it must report, and the type and req_id it must leave readable in
 * the message (for the daemon's ERROR). */
typedef struct refusal {
    const char *bytes;
    size_t len;
    int code;
    const char *field;
    uint32_t type;   /* out->type after the failure */
    uint64_t req_id; /* proto_req_id() after the failure */
} refusal_t;

/* Decode row i of a refusal table into out and check what it reports:
 * the code, the field, a sentence that names the field first, the type
 * and req_id left. */
static inline void check_refusal(size_t i, const refusal_t *r, proto_msg_t *out)
{
    proto_error_t err;
    memset(&err, 0, sizeof err);
    memset(out, 0xaa, sizeof *out);
    int rc = decode_exact(r->bytes, r->len, out, 0, &err);
    if (rc != r->code || strcmp(err.field, r->field) != 0)
        print_message("row %zu: %s field '%s' (%s), want %s field '%s'\n", i, tally_errname(rc),
                      err.field, rc ? err.message : "", tally_errname(r->code), r->field);
    assert_int_equal(rc, r->code);
    assert_int_equal(err.code, rc);
    assert_string_equal(err.field, r->field);
    /* The sentence names the field first. */
    assert_int_equal(strncmp(err.message, err.field, strlen(err.field)), 0);
    assert_int_equal(out->type, r->type);
    assert_true(proto_req_id(out) == r->req_id);
}

static inline int teardown_group(void **state)
{
    (void)state;
    free(g_copy);
    g_copy = NULL;
    return 0;
}

#endif /* PROTO_TEST_UTIL_H */
