/* Unit tests of vec (proto/vec.h): growth by doubling from nothing, the
 * contents kept across growth, and sizes that would overflow refused
 * without touching the array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tally_error.h"
#include "vec.h"

static void test_grows_and_keeps(void **state)
{
    (void)state;
    uint32_t *v = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        assert_int_equal(VEC_RESERVE(v, cap, n + 1), 0);
        assert_true(cap >= n + 1);
        v[n++] = i * 7;
    }
    for (uint32_t i = 0; i < 1000; i++)
        assert_int_equal(v[i], i * 7);
    /* Doubling from 16: 16, 32, ... 1024. */
    assert_int_equal(cap, 1024);
    free(v);
}

static void test_first_and_large_need(void **state)
{
    (void)state;
    char *v = NULL;
    size_t cap = 0;
    assert_int_equal(VEC_RESERVE(v, cap, 1), 0);
    assert_int_equal(cap, 16);
    assert_int_equal(VEC_RESERVE(v, cap, 16), 0); /* fits: nothing happens */
    assert_int_equal(cap, 16);
    assert_int_equal(VEC_RESERVE(v, cap, 100), 0); /* doubled until it holds 100 */
    assert_int_equal(cap, 128);
    assert_int_equal(VEC_RESERVE(v, cap, 0), 0);
    assert_int_equal(cap, 128);
    free(v);
}

static void test_explicit_element_size(void **state)
{
    (void)state;
    /* A table of rows of 3 pointers: the element is the row. */
    const char **cells = NULL;
    size_t rows = 0, cap = 0;
    for (int r = 0; r < 40; r++) {
        assert_int_equal(vec_reserve(&cells, &cap, rows + 1, 3 * sizeof *cells), 0);
        for (int c = 0; c < 3; c++)
            cells[rows * 3 + (size_t)c] = "x";
        rows++;
    }
    assert_int_equal(cap, 64);
    free(cells);
}

static void test_overflow_refused(void **state)
{
    (void)state;
    uint64_t *v = NULL;
    size_t cap = 0;
    assert_int_equal(VEC_RESERVE(v, cap, 4), 0);
    uint64_t *before = v;
    v[0] = 42;
    assert_int_equal(VEC_RESERVE(v, cap, SIZE_MAX / 4), TALLY_ENOMEM);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 16);
    assert_int_equal(VEC_RESERVE(v, cap, SIZE_MAX), TALLY_ENOMEM);
    assert_int_equal(cap, 16);
    assert_int_equal(v[0], 42);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grows_and_keeps),
        cmocka_unit_test(test_first_and_large_need),
        cmocka_unit_test(test_explicit_element_size),
        cmocka_unit_test(test_overflow_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
