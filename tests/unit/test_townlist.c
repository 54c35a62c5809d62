/* Unit tests of townlist (daemon/townlist.c): which townships have
 * series, brought up to date from the engine's new series only. */
#include "engine_test_util.h"

#include "townlist.h"

/* A counter metric 1 and a ratio of metrics 1 and 2 (whose scopes the
 * engine also reports), at noon on 1 March 2024. */
static void init_engine(engine_t *e)
{
    init_at(e, cst(2024, 3, 1, 12, 0, 0, 0));
    assert_int_equal(engine_define_metric(e, 1, PROTO_KIND_COUNTER), 0);
    assert_int_equal(engine_define_metric(e, 2, PROTO_KIND_COUNTER), 0);
    assert_int_equal(engine_define_ratio(e, 3, 1, 2), 0);
}

static void test_flags_follow_new_series(void **state)
{
    (void)state;
    engine_t e;
    townlist_t t = {0};
    init_engine(&e);
    assert_int_equal(townlist_update(&t, &e), 0); /* nothing yet */
    assert_false(townlist_has(&t, 0));
    assert_false(townlist_has(&t, 1));

    /* Towns 3 and 5000 (past the first allocation) report; 4 does not.
     * The county's series (town 0) come along but are never flagged. */
    int64_t now = cst(2024, 3, 1, 12, 0, 0, 0);
    assert_int_equal(apply1(&e, 3, now, 1, 2), 0);
    assert_int_equal(apply1(&e, 5000, now, 2, 1), 0);
    assert_int_equal(townlist_update(&t, &e), 0);
    assert_true(townlist_has(&t, 3));
    assert_true(townlist_has(&t, 5000));
    assert_false(townlist_has(&t, 0));
    assert_false(townlist_has(&t, 4));
    assert_false(townlist_has(&t, 5001));
    assert_false(townlist_has(&t, UINT32_MAX));
    assert_int_equal(t.seen, engine_series_count(&e));

    /* The next look reads only the series created since. */
    uint32_t seen = t.seen;
    assert_int_equal(apply1(&e, 4, now, 1, 1), 0);
    assert_int_equal(apply1(&e, 3, now, 2, 1), 0);
    assert_int_equal(townlist_update(&t, &e), 0);
    assert_true(townlist_has(&t, 4) && townlist_has(&t, 3));
    assert_int_equal(t.seen, engine_series_count(&e));
    assert_true(t.seen > seen);

    townlist_free(&t);
    assert_false(townlist_has(&t, 3));
    assert_int_equal(townlist_update(&t, &e), 0); /* from the start again */
    assert_true(townlist_has(&t, 3) && townlist_has(&t, 4) && townlist_has(&t, 5000));
    townlist_free(&t);
    engine_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags_follow_new_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
