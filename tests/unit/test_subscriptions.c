/* test_subscriptions.c - the per-connection subscription limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "subscriptions.h"

static subscriptions_t g_s;

static int msg(uint64_t conn, int op, const char *prefix)
{
    char buf[2048];
    size_t n = strlen(prefix);
    buf[0] = (char)op;
    memcpy(buf + 1, prefix, n);
    return subscriptions_on_message(&g_s, conn, buf, n + 1);
}

static int setup(void **state)
{
    (void)state;
    subscriptions_init(&g_s, &(subscriptions_limits_t){4, 64, 8});
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    subscriptions_free(&g_s);
    return 0;
}

/* What a subscriber sends is applied; unsubscribing frees the room. */
static void test_subscribe_unsubscribe(void **state)
{
    (void)state;
    assert_int_equal(msg(1, 1, "h"), SUBS_SUBSCRIBE);
    assert_int_equal(msg(1, 1, "u/county/"), SUBS_SUBSCRIBE);
    assert_int_equal(msg(1, 1, "u/county/"),
                     SUBS_SUBSCRIBE); /* held: applied again, counted once */
    assert_int_equal(subscriptions_count(&g_s), 2);
    assert_int_equal(msg(1, 0, "u/county/"), SUBS_UNSUBSCRIBE);
    assert_int_equal(msg(1, 0, "u/county/"), SUBS_IGNORE); /* not held any more */
    assert_int_equal(msg(1, 0, "u/town/"), SUBS_IGNORE);
    assert_int_equal(subscriptions_count(&g_s), 1);
    assert_int_equal(msg(1, 1, ""), SUBS_SUBSCRIBE); /* everything */
}

/* Junk is refused before it costs a record. */
static void test_refuse_impossible(void **state)
{
    (void)state;
    assert_int_equal(msg(2, 1, "random junk"), SUBS_REFUSE_TOPIC);
    assert_int_equal(msg(2, 1, "u/county/a b"), SUBS_REFUSE_TOPIC);
    assert_int_equal(subscriptions_conns(&g_s), 0);
    assert_int_equal(subscriptions_on_message(&g_s, 2, "\x02x", 2), SUBS_IGNORE);
    assert_int_equal(subscriptions_on_message(&g_s, 2, "", 0), SUBS_IGNORE);
}

/* Count and bytes are limited per connection, not in total. */
static void test_limits_per_connection(void **state)
{
    (void)state;
    const char *p[] = {"u/town/a/", "u/town/b/", "u/town/c/", "u/town/d/", "u/town/e/"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(msg(3, 1, p[i]), SUBS_SUBSCRIBE);
    assert_int_equal(msg(3, 1, p[4]), SUBS_REFUSE_COUNT);
    for (int i = 0; i < 4; i++)
        assert_int_equal(msg(4, 1, p[i]), SUBS_SUBSCRIBE); /* another connection */
    assert_int_equal(msg(3, 0, p[0]), SUBS_UNSUBSCRIBE);
    assert_int_equal(msg(3, 1, p[4]), SUBS_SUBSCRIBE); /* room again */

    /* 64 bytes: a 60-byte prefix, then 5 more do not fit. */
    char big[61];
    memset(big, 'm', 60);
    memcpy(big, "u/county/", 9);
    big[60] = '\0';
    assert_int_equal(msg(5, 1, big), SUBS_SUBSCRIBE);
    assert_int_equal(msg(5, 1, "u/tow"), SUBS_REFUSE_BYTES);
    assert_int_equal(msg(5, 1, "u/to"), SUBS_SUBSCRIBE); /* exactly 64 */
}

/* Beyond max_conns the connections idle longest are forgotten; the others
 * keep their counts. */
static void test_forget_idle(void **state)
{
    (void)state;
    for (uint64_t c = 100; c < 104; c++)
        for (int i = 0; i < 4; i++) {
            char p[32];
            snprintf(p, sizeof p, "u/town/t%d/", i);
            assert_int_equal(msg(c, 1, p), SUBS_SUBSCRIBE);
        }
    for (uint64_t c = 200; c < 300; c++) {
        assert_int_equal(msg(c, 1, "h"), SUBS_SUBSCRIBE);
        assert_true(subscriptions_conns(&g_s) <= 8);
        assert_int_equal(msg(103, 1, "u/town/t0/"), SUBS_SUBSCRIBE); /* 103 stays busy */
    }
    /* 103 was never forgotten: still full. */
    assert_int_equal(msg(103, 1, "u/town/zz/"), SUBS_REFUSE_COUNT);
    /* 100 was: it counts afresh. */
    assert_int_equal(msg(100, 1, "u/town/zz/"), SUBS_SUBSCRIBE);
}

/* New, lower limits: a connection over them can only shrink. */
static void test_reload_lower(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++) {
        char p[32];
        snprintf(p, sizeof p, "u/town/t%d/", i);
        assert_int_equal(msg(7, 1, p), SUBS_SUBSCRIBE);
    }
    subscriptions_set_limits(&g_s, &(subscriptions_limits_t){2, 64, 8});
    assert_int_equal(msg(7, 1, "u/town/x/"), SUBS_REFUSE_COUNT);
    assert_int_equal(msg(7, 0, "u/town/t0/"), SUBS_UNSUBSCRIBE);
    assert_int_equal(msg(7, 0, "u/town/t1/"), SUBS_UNSUBSCRIBE);
    assert_int_equal(msg(7, 1, "u/town/x/"), SUBS_REFUSE_COUNT); /* 2 held: the limit */
    assert_int_equal(msg(7, 0, "u/town/t2/"), SUBS_UNSUBSCRIBE);
    assert_int_equal(msg(7, 1, "u/town/x/"), SUBS_SUBSCRIBE);
    assert_string_equal(subscriptions_verdict_name(SUBS_REFUSE_TOPIC), "no topic begins with it");
}

/* Many connections, many prefixes: the index survives growth and
 * forgetting, and every remembered count is right. */
static void test_churn(void **state)
{
    (void)state;
    subscriptions_set_limits(&g_s, &(subscriptions_limits_t){3, 1000, 300});
    for (uint64_t c = 1; c <= 5000; c++) {
        assert_int_equal(msg(c, 1, "h"), SUBS_SUBSCRIBE);
        assert_int_equal(msg(c, 1, "u/"), SUBS_SUBSCRIBE);
        if (c % 2 == 0)
            assert_int_equal(msg(c, 0, "u/"), SUBS_UNSUBSCRIBE);
    }
    size_t n = subscriptions_conns(&g_s);
    assert_true(n <= 300 && n > 200);
    assert_int_equal(msg(5000, 1, "u/county/"), SUBS_SUBSCRIBE);
    assert_int_equal(msg(5000, 1, "u/town/"), SUBS_SUBSCRIBE);
    assert_int_equal(msg(5000, 1, "u/town/x/"), SUBS_REFUSE_COUNT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_subscribe_unsubscribe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_impossible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_per_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_lower, setup, teardown),
        cmocka_unit_test_setup_teardown(test_churn, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
