/* proto_test_util.h - helpers shared by the wire codec unit tests
 * (test_proto.c and test_proto_decode.c).  Everything here is static so each
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

static inline int teardown_group(void **state)
{
    (void)state;
    free(g_copy);
    g_copy = NULL;
    return 0;
}

#endif /* PROTO_TEST_UTIL_H */
