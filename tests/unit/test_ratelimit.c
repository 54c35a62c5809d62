/* Unit tests of ratelimit: token buckets per township, driven by a fake
 * clock (plain milliseconds passed to every call). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ratelimit.h"
#include "tally_error.h"

static void test_init_checks(void **state)
{
    (void)state;
    ratelimit_t rl;
    assert_int_equal(ratelimit_init(&rl, -1, 10, 4), TALLY_EINVAL);
    assert_int_equal(ratelimit_init(&rl, RATELIMIT_RATE_MAX + 1, 10, 4), TALLY_EINVAL);
    assert_int_equal(ratelimit_init(&rl, 10, 0, 4), TALLY_EINVAL);
    assert_int_equal(ratelimit_init(&rl, 10, RATELIMIT_BURST_MAX + 1, 4), TALLY_EINVAL);
    assert_int_equal(ratelimit_init(&rl, 10, 10, 0), TALLY_EINVAL);
    assert_int_equal(ratelimit_init(&rl, RATELIMIT_RATE_MAX, RATELIMIT_BURST_MAX, 4), 0);
    ratelimit_free(&rl);
}

static void test_unlimited(void **state)
{
    (void)state;
    ratelimit_t rl;
    assert_int_equal(ratelimit_init(&rl, 0, 1, 8), 0);
    int64_t wait = -1;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ratelimit_take(&rl, 7, 4096, 0, &wait), 0);
    assert_int_equal(wait, 0);
    assert_null(rl.buckets); /* rate 0 counts nothing */
    assert_int_equal(ratelimit_take(&rl, 8, 1, 0, NULL), TALLY_EINVAL);
    ratelimit_free(&rl);
}

/* 10 samples/s, burst 20: the first 20 pass at once, then one sample every
 * 100 ms. */
static void test_burst_then_rate(void **state)
{
    (void)state;
    ratelimit_t rl;
    assert_int_equal(ratelimit_init(&rl, 10, 20, 16), 0);
    int64_t now = 5000, wait = -1;
    assert_int_equal(ratelimit_take(&rl, 3, 15, now, &wait), 0);
    assert_int_equal(wait, 0);
    assert_int_equal(ratelimit_take(&rl, 3, 5, now, &wait), 0);
    /* Empty now: one sample needs 100 ms. */
    assert_int_equal(ratelimit_take(&rl, 3, 1, now, &wait), TALLY_ERATELIMIT);
    assert_int_equal(wait, 100);
    assert_int_equal(ratelimit_take(&rl, 3, 1, now + 99, &wait), TALLY_ERATELIMIT);
    assert_int_equal(wait, 1);
    assert_int_equal(ratelimit_take(&rl, 3, 1, now + 100, &wait), 0);
    /* Five samples need 500 ms; after 250 ms, 250 more. */
    assert_int_equal(ratelimit_take(&rl, 3, 5, now + 350, &wait), TALLY_ERATELIMIT);
    assert_int_equal(wait, 250);
    assert_int_equal(ratelimit_take(&rl, 3, 5, now + 600, &wait), 0);
    assert_int_equal(rl.limited, 3);
    ratelimit_free(&rl);
}

/* Fractions of a sample are kept: 3 samples/s is one every 333.33 ms. */
static void test_fractional_refill(void **state)
{
    (void)state;
    ratelimit_t rl;
    assert_int_equal(ratelimit_init(&rl, 3, 100, 4), 0);
    int64_t wait;
    assert_int_equal(ratelimit_take(&rl, 1, 100, 0, &wait), 0);
    assert_int_equal(ratelimit_take(&rl, 1, 1, 333, &wait), TALLY_ERATELIMIT);
    assert_int_equal(wait, 1); /* 999 of 1000 thousandths */
    assert_int_equal(ratelimit_take(&rl, 1, 1, 334, &wait), 0);
    /* Over the next 3 s exactly 9 single samples pass, polled each ms:
     * nothing is lost to rounding. */
    int passed = 0;
    for (int64_t t = 335; t <= 3334; t++)
        if (ratelimit_take(&rl, 1, 1, t, NULL) == 0)
            passed++;
    assert_int_equal(passed, 9);
    ratelimit_free(&rl);
}

static void test_townships_independent(void **state)
{
    (void)state;
    ratelimit_t rl;
    assert_int_equal(ratelimit_init(&rl, 1, 5, 100), 0);
    assert_int_equal(ratelimit_take(&rl, 1, 5, 0, NULL), 0);
    assert_int_equal(ratelimit_take(&rl, 1, 1, 0, NULL), TALLY_ERATELIMIT);
    /* Another township, and one far up the id range, start full. */
    assert_int_equal(ratelimit_take(&rl, 2, 5, 0, NULL), 0);
    assert_int_equal(ratelimit_take(&rl, 99, 5, 0, NULL), 0);
    assert_int_equal(ratelimit_take(&rl, 99, 1, 0, NULL), TALLY_ERATELIMIT);
    assert_int_equal(rl.nbuckets, 100); /* grown to the id, capped at max_keys */
    assert_int_equal(ratelimit_take(&rl, 100, 1, 0, NULL), TALLY_EINVAL);
    /* Township 1 is still empty after growing the array. */
    assert_int_equal(ratelimit_take(&rl, 1, 1, 0, NULL), TALLY_ERATELIMIT);
    ratelimit_free(&rl);
}

/* A submission larger than the bucket passes when the bucket is full and
 * leaves a debt that the next submissions wait out. */
static void test_larger_than_burst(void **state)
{
    (void)state;
    ratelimit_t rl;
    assert_int_equal(ratelimit_init(&rl, 100, 10, 4), 0);
    int64_t wait;
    assert_int_equal(ratelimit_take(&rl, 0, 1000, 0, &wait), 0);
    /* 990 samples of debt plus one: 9.91 s at 100/s. */
    assert_int_equal(ratelimit_take(&rl, 0, 1, 0, &wait), TALLY_ERATELIMIT);
    assert_int_equal(wait, 9910);
    /* The next big one needs a full bucket again: 10 s after the first. */
    assert_int_equal(ratelimit_take(&rl, 0, 1000, 9999, &wait), TALLY_ERATELIMIT);
    assert_int_equal(wait, 1);
    assert_int_equal(ratelimit_take(&rl, 0, 1000, 10000, &wait), 0);
    ratelimit_free(&rl);
}

static void test_clock_backwards_and_idle(void **state)
{
    (void)state;
    ratelimit_t rl;
    assert_int_equal(ratelimit_init(&rl, RATELIMIT_RATE_MAX, RATELIMIT_BURST_MAX, 2), 0);
    int64_t wait;
    assert_int_equal(ratelimit_take(&rl, 1, 4000000000u, 1000, &wait), 0);
    /* Going back in time refills nothing... */
    assert_int_equal(ratelimit_take(&rl, 1, 1, 0, &wait), TALLY_ERATELIMIT);
    assert_true(wait > 0);
    /* ...and a bucket idle for a century neither overflows nor exceeds
     * its burst. */
    int64_t later = 1000 + 100LL * 366 * 86400000;
    assert_int_equal(ratelimit_take(&rl, 1, RATELIMIT_BURST_MAX, later, &wait), 0);
    assert_int_equal(ratelimit_take(&rl, 1, 1, later, &wait), TALLY_ERATELIMIT);
    assert_int_equal(wait, 1);
    ratelimit_free(&rl);
}

static void test_reload(void **state)
{
    (void)state;
    ratelimit_t rl;
    assert_int_equal(ratelimit_init(&rl, 10, 100, 4), 0);
    assert_int_equal(ratelimit_take(&rl, 1, 10, 0, NULL), 0); /* 90 left */
    assert_int_equal(ratelimit_set(&rl, 10, 0, 4), TALLY_EINVAL);
    assert_int_equal(rl.burst, 100);
    /* A smaller burst cuts the tokens held; more ids become valid. */
    assert_int_equal(ratelimit_set(&rl, 10, 20, 10), 0);
    assert_int_equal(ratelimit_take(&rl, 1, 20, 0, NULL), 0);
    assert_int_equal(ratelimit_take(&rl, 1, 1, 0, NULL), TALLY_ERATELIMIT);
    assert_int_equal(ratelimit_take(&rl, 9, 20, 0, NULL), 0);
    assert_int_equal(ratelimit_set(&rl, 10, 20, 2), 0);
    assert_int_equal(rl.max_keys, 10);
    /* Unlimited after a reload, limited again after the next. */
    assert_int_equal(ratelimit_set(&rl, 0, 20, 10), 0);
    assert_int_equal(ratelimit_take(&rl, 1, 1000, 0, NULL), 0);
    assert_int_equal(ratelimit_set(&rl, 10, 20, 10), 0);
    assert_int_equal(ratelimit_take(&rl, 1, 1, 0, NULL), TALLY_ERATELIMIT);
    ratelimit_free(&rl);
    ratelimit_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_checks),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_fractional_refill),
        cmocka_unit_test(test_townships_independent),
        cmocka_unit_test(test_larger_than_burst),
        cmocka_unit_test(test_clock_backwards_and_idle),
        cmocka_unit_test(test_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
