/* Unit tests of the de-duplication table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dedup.h"

static void make_id(uint8_t *id, uint32_t n)
{
    memset(id, 0, PROTO_CLIENT_ID_LEN);
    memcpy(id, &n, sizeof(n));
    id[15] = 0xA5;
}

static void test_new_then_duplicate(void **state)
{
    (void)state;
    dedup_t d;
    uint8_t id[16];
    make_id(id, 1);
    assert_int_equal(dedup_init(&d, 10), 0);
    assert_int_equal(dedup_check(&d, id, 1), 0);
    assert_int_equal(dedup_mark(&d, id, 1), 0);
    assert_int_equal(dedup_check(&d, id, 1), TALLY_EEXIST);
    assert_int_equal(dedup_check(&d, id, 2), 0);
    assert_int_equal(dedup_count(&d), 1);
    dedup_free(&d);
}

/* Out-of-order arrival inside the window: each seq counts once. */
static void test_out_of_order_window(void **state)
{
    (void)state;
    dedup_t d;
    uint8_t id[16];
    make_id(id, 7);
    assert_int_equal(dedup_init(&d, 10), 0);
    assert_int_equal(dedup_mark(&d, id, 100), 0);
    assert_int_equal(dedup_check(&d, id, 50), 0);
    assert_int_equal(dedup_mark(&d, id, 50), 0);
    assert_int_equal(dedup_check(&d, id, 50), TALLY_EEXIST);
    assert_int_equal(dedup_check(&d, id, 99), 0);
    /* Moving the window up keeps earlier bits at their sequence. */
    assert_int_equal(dedup_mark(&d, id, 170), 0);
    assert_int_equal(dedup_check(&d, id, 50), TALLY_EEXIST);
    assert_int_equal(dedup_check(&d, id, 100), TALLY_EEXIST);
    assert_int_equal(dedup_check(&d, id, 101), 0);
    assert_int_equal(dedup_check(&d, id, 170), TALLY_EEXIST);
    /* The bottom edge of the window. */
    uint64_t high = 170 + DEDUP_WINDOW - 1;
    assert_int_equal(dedup_mark(&d, id, high), 0);
    /* 170 is now the lowest sequence inside the window. */
    assert_int_equal(dedup_check(&d, id, high - DEDUP_WINDOW + 1), TALLY_EEXIST);
    assert_int_equal(dedup_check(&d, id, 171), 0);
    assert_int_equal(dedup_check(&d, id, high - DEDUP_WINDOW), TALLY_ESTALESEQ);
    assert_int_equal(dedup_check(&d, id, 1), TALLY_ESTALESEQ);
    dedup_free(&d);
}

/* Every seq in a long run, marked in a scrambled order, reads back. */
static void test_scrambled_run(void **state)
{
    (void)state;
    dedup_t d;
    uint8_t id[16];
    make_id(id, 9);
    assert_int_equal(dedup_init(&d, 4), 0);
    for (uint64_t base = 1; base < 20000; base += 500) {
        for (uint64_t k = 0; k < 500; k++) {
            uint64_t seq = base + (k * 7919) % 500;
            assert_int_equal(dedup_check(&d, id, seq), 0);
            assert_int_equal(dedup_mark(&d, id, seq), 0);
            assert_int_equal(dedup_check(&d, id, seq), TALLY_EEXIST);
        }
    }
    dedup_free(&d);
}

static void test_client_limit_and_growth(void **state)
{
    (void)state;
    dedup_t d;
    uint8_t id[16];
    assert_int_equal(dedup_init(&d, 1000), 0);
    for (uint32_t i = 0; i < 1000; i++) {
        make_id(id, i);
        assert_int_equal(dedup_check(&d, id, 3), 0);
        assert_int_equal(dedup_mark(&d, id, 3), 0);
    }
    make_id(id, 1000);
    assert_int_equal(dedup_check(&d, id, 1), TALLY_ECLIENTLIMIT);
    assert_int_equal(dedup_mark(&d, id, 1), TALLY_ECLIENTLIMIT);
    /* Known clients keep working at the limit. */
    make_id(id, 999);
    assert_int_equal(dedup_check(&d, id, 3), TALLY_EEXIST);
    assert_int_equal(dedup_check(&d, id, 4), 0);
    for (uint32_t i = 0; i < 1000; i++) {
        make_id(id, i);
        assert_int_equal(dedup_check(&d, id, 3), TALLY_EEXIST);
    }
    assert_int_equal(dedup_count(&d), 1000);
    dedup_free(&d);
}

static void count_entry(const dedup_entry_t *e, void *ctx)
{
    dedup_t *copy = ctx;
    assert_int_equal(dedup_restore(copy, e), 0);
}

/* foreach + restore reproduce the table (the snapshot path). */
static void test_restore(void **state)
{
    (void)state;
    dedup_t d, copy;
    uint8_t id[16];
    assert_int_equal(dedup_init(&d, 100), 0);
    assert_int_equal(dedup_init(&copy, 100), 0);
    for (uint32_t i = 0; i < 50; i++) {
        make_id(id, i);
        for (uint64_t s = 1; s <= i + 1; s += 2)
            assert_int_equal(dedup_mark(&d, id, s), 0);
    }
    dedup_foreach(&d, count_entry, &copy);
    assert_int_equal(dedup_count(&copy), 50);
    for (uint32_t i = 0; i < 50; i++) {
        make_id(id, i);
        for (uint64_t s = 1; s <= i + 2; s++)
            assert_int_equal(dedup_check(&copy, id, s), dedup_check(&d, id, s));
    }
    dedup_free(&d);
    dedup_free(&copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_then_duplicate),
        cmocka_unit_test(test_out_of_order_window),
        cmocka_unit_test(test_scrambled_run),
        cmocka_unit_test(test_client_limit_and_growth),
        cmocka_unit_test(test_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
