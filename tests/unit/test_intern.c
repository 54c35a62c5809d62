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

/* Adds and truncations at random against a model (the names in id order):
 * after every step each kept name is found under its id, forgotten names
 * are not found, and re-adding gives ids in order again, through many
 * growths of the slot array. */
static void test_truncate_model(void **state)
{
    (void)state;
    enum { POOL = 3000 };
    static char names[POOL][16];
    static int model_of[POOL]; /* id of pool name i, 0 when absent */
    static int pool_of[POOL + 1];
    intern_t in;
    assert_int_equal(intern_init(&in, POOL), 0);
    for (int i = 0; i < POOL; i++) {
        snprintf(names[i], sizeof(names[i]), "t%05d", i * 7919 % 100000);
    }
    uint32_t r = 12345;
    int count = 0;
    for (int step = 0; step < 4000; step++) {
        r = r * 1103515245u + 12345u;
        uint32_t what = (r >> 16) % 20;
        if (what < 19 && count < POOL) {
            r = r * 1103515245u + 12345u;
            int i = (int)((r >> 8) % POOL);
            int id = add(&in, names[i]);
            if (model_of[i] == 0) {
                assert_int_equal(id, count + 1);
                model_of[i] = id;
                pool_of[id] = i;
                count++;
            } else {
                assert_int_equal(id, model_of[i]);
            }
        } else {
            r = r * 1103515245u + 12345u;
            int keep = count - (int)((r >> 8) % 30);
            keep = keep < 0 ? 0 : keep;
            intern_truncate(&in, (uint32_t)keep);
            for (; count > keep; count--) {
                model_of[pool_of[count]] = 0;
            }
        }
        assert_int_equal(intern_count(&in), count);
        if (step % 50 == 0 || step > 3950) {
            for (int i = 0; i < POOL; i++) {
                int want = model_of[i] ? model_of[i] : TALLY_ENOTFOUND;
                if (find(&in, names[i]) != want) {
                    fail_msg("step %d: '%s' found as %d, want %d", step, names[i],
                             find(&in, names[i]), want);
                }
            }
            for (int id = 1; id <= count; id++) {
                assert_string_equal(intern_name(&in, (uint32_t)id, NULL), names[pool_of[id]]);
            }
        }
    }
    assert_true(count > 100);
    intern_truncate(&in, 0);
    assert_int_equal(find(&in, names[pool_of[1]]), TALLY_ENOTFOUND);
    assert_int_equal(add(&in, "gaoguan"), 1);
    intern_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_name), cmocka_unit_test(test_length_not_nul),
        cmocka_unit_test(test_name_limits),   cmocka_unit_test(test_growth),
        cmocka_unit_test(test_capacity),      cmocka_unit_test(test_truncate_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
