/* Unit tests of the name interning table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "intern.h"

static int add(intern_t *in, const char *s)
{
    return intern_add(in, s, strlen(s));
}

static int find(const intern_t *in, const char *s)
{
    return intern_find(in, s, strlen(s));
}

static void test_add_find_name(void **state)
{
    (void)state;
    intern_t in;
    assert_int_equal(intern_init(&in, 100), 0);
    assert_int_equal(find(&in, "gaoguan"), TALLY_ENOTFOUND);
    assert_int_equal(add(&in, "gaoguan"), 1);
    assert_int_equal(add(&in, "disputes.resolved"), 2);
    assert_int_equal(add(&in, "gaoguan"), 1); /* same name, same id */
    assert_int_equal(find(&in, "gaoguan"), 1);
    assert_int_equal(find(&in, "disputes.resolved"), 2);
    /* Prefixes and extensions are different names. */
    assert_int_equal(find(&in, "gaogua"), TALLY_ENOTFOUND);
    assert_int_equal(find(&in, "gaoguann"), TALLY_ENOTFOUND);
    assert_int_equal(add(&in, "gaogua"), 3);
    assert_int_equal(intern_count(&in), 3);

    uint32_t len = 0;
    const char *name = intern_name(&in, 2, &len);
    assert_non_null(name);
    assert_int_equal(len, strlen("disputes.resolved"));
    assert_string_equal(name, "disputes.resolved");
    assert_string_equal(intern_name(&in, 3, NULL), "gaogua");
    /* Id 0 is the county and never a name; unknown ids have none. */
    assert_null(intern_name(&in, 0, &len));
    assert_null(intern_name(&in, 4, &len));
    intern_free(&in);
}

/* The name is len bytes, not a C string: no NUL is needed or looked at. */
static void test_length_not_nul(void **state)
{
    (void)state;
    intern_t in;
    assert_int_equal(intern_init(&in, 10), 0);
    const char buf[] = "grid.zonesXXXX";
    assert_int_equal(intern_add(&in, buf, 10), 1);
    assert_int_equal(find(&in, "grid.zones"), 1);
    assert_string_equal(intern_name(&in, 1, NULL), "grid.zones");
    /* UTF-8 names are bytes like any other. */
    assert_int_equal(add(&in, "高观镇"), 2);
    assert_int_equal(find(&in, "高观镇"), 2);
    intern_free(&in);
}

static void test_name_limits(void **state)
{
    (void)state;
    intern_t in;
    char name[INTERN_NAME_MAX + 2];
    memset(name, 'a', sizeof(name));
    assert_int_equal(intern_init(&in, 10), 0);
    assert_int_equal(intern_add(&in, name, 0), TALLY_EINVAL);
    assert_int_equal(intern_add(&in, name, INTERN_NAME_MAX + 1), TALLY_EINVAL);
    assert_int_equal(intern_find(&in, name, 0), TALLY_ENOTFOUND);
    assert_int_equal(intern_find(&in, name, INTERN_NAME_MAX + 1), TALLY_ENOTFOUND);
    assert_int_equal(intern_add(&in, name, INTERN_NAME_MAX), 1);
    assert_int_equal(intern_add(&in, name, 1), 2);
    assert_int_equal(intern_find(&in, name, INTERN_NAME_MAX), 1);
    uint32_t len;
    assert_non_null(intern_name(&in, 1, &len));
    assert_int_equal(len, INTERN_NAME_MAX);
    assert_int_equal(intern_count(&in), 2);
    intern_free(&in);

    assert_int_equal(intern_init(&in, 0), TALLY_EINVAL);
    assert_int_equal(intern_init(&in, INTERN_CAPACITY_MAX + 1), TALLY_EINVAL);
}

/* Many names: the table and the arena grow, every id stays findable and
 * every name pointer handed out earlier stays valid. */
static void test_growth(void **state)
{
    (void)state;
    enum { N = 50000 };
    intern_t in;
    assert_int_equal(intern_init(&in, N), 0);
    size_t mem0 = intern_memory(&in);
    const char *first = NULL;
    char buf[80];
    for (int i = 0; i < N; i++) {
        int len = snprintf(buf, sizeof(buf), "township-%d.metric-%d", i, i * 7);
        assert_int_equal(intern_add(&in, buf, (size_t)len), i + 1);
        if (i == 0) {
            first = intern_name(&in, 1, NULL);
        }
    }
    assert_true(intern_memory(&in) > mem0);
    assert_ptr_equal(intern_name(&in, 1, NULL), first);
    assert_string_equal(first, "township-0.metric-0");
    for (int i = 0; i < N; i++) {
        int len = snprintf(buf, sizeof(buf), "township-%d.metric-%d", i, i * 7);
        assert_int_equal(intern_find(&in, buf, (size_t)len), i + 1);
        assert_string_equal(intern_name(&in, (uint32_t)i + 1, NULL), buf);
    }
    assert_int_equal(find(&in, "township-50000.metric-350000"), TALLY_ENOTFOUND);
    printf("intern: %d names in %zu bytes (%.1f bytes per name)\n", N, intern_memory(&in),
           (double)intern_memory(&in) / N);
    intern_free(&in);
}

static void test_capacity(void **state)
{
    (void)state;
    intern_t in;
    assert_int_equal(intern_init(&in, 3), 0);
    assert_int_equal(add(&in, "a"), 1);
    assert_int_equal(add(&in, "b"), 2);
    assert_int_equal(add(&in, "c"), 3);
    assert_int_equal(add(&in, "d"), TALLY_ESERIESLIMIT);
    assert_int_equal(find(&in, "d"), TALLY_ENOTFOUND);
    assert_int_equal(intern_count(&in), 3);
    /* Existing names still resolve when the table is full. */
    assert_int_equal(add(&in, "b"), 2);
    assert_int_equal(find(&in, "c"), 3);
    intern_free(&in);
    /* Freed twice is harmless (the struct is zeroed). */
    intern_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_name), cmocka_unit_test(test_length_not_nul),
        cmocka_unit_test(test_name_limits),   cmocka_unit_test(test_growth),
        cmocka_unit_test(test_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
