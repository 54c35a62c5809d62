/* Unit tests of suggest (proto/suggest.h): the optimal string alignment
 * distance, and which candidate "did you mean" picks, or why none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "suggest.h"

static void test_distance(void **state)
{
    (void)state;
    assert_int_equal(suggest_distance("", ""), 0);
    assert_int_equal(suggest_distance("", "abc"), 3);
    assert_int_equal(suggest_distance("town", "town"), 0);
    assert_int_equal(suggest_distance("tonw", "town"), 1);      /* transposition */
    assert_int_equal(suggest_distance("kitten", "sitting"), 3); /* 2 substitutions, 1 insertion */
    assert_int_equal(suggest_distance("ca", "abc"), 3);         /* OSA, not Damerau: 3, not 2 */
    assert_int_equal(suggest_distance("max_clients", "max_client"), 1);
    char long_word[SUGGEST_WORD_MAX + 2];
    memset(long_word, 'a', sizeof long_word - 1);
    long_word[sizeof long_word - 1] = '\0';
    assert_int_equal(suggest_distance(long_word, "a"), SIZE_MAX);
    long_word[SUGGEST_WORD_MAX] = '\0'; /* exactly the limit: compared */
    assert_int_equal(suggest_distance(long_word, long_word), 0);
}

static void test_pick(void **state)
{
    (void)state;
    static const char *const opts[] = {"town", "file", "time", "timeout", "spool", "server"};
    assert_string_equal(suggest_pick("tonw", opts, 6), "town");
    assert_string_equal(suggest_pick("spol", opts, 6), "spool");
    assert_string_equal(suggest_pick("timeot", opts, 6), "timeout");
    assert_string_equal(suggest_pick("servr", opts, 6), "server");
    /* A prefix counts as one edit: "timez" is 3 edits from "timezone",
     * too many, but it begins "timezone". */
    static const char *const keys[] = {"spool", "timezone"};
    assert_int_equal(suggest_distance("timez", "timezone"), 3);
    assert_string_equal(suggest_pick("timez", keys, 2), "timezone");
    assert_null(suggest_pick("t", keys, 2)); /* a single byte is no prefix */
    /* Too far, or as many edits as the word is long. */
    assert_null(suggest_pick("xyzzy", opts, 6));
    assert_null(suggest_pick("a", opts, 6));
    assert_null(suggest_pick("", opts, 6));
    assert_null(suggest_pick("town", opts, 0));
    /* As many edits as the candidate is long: "abid" is two deletions
     * from "id", which leaves nothing of the word to go by. */
    static const char *const ids[] = {"id", "name"};
    assert_int_equal(suggest_distance("abid", "id"), 2);
    assert_null(suggest_pick("abid", ids, 2));
    assert_null(suggest_pick("x", ids, 2));
    assert_string_equal(suggest_pick("nmae", ids, 2), "name");
    /* Ties: the first candidate wins. */
    static const char *const tie[] = {"cat", "bat"};
    assert_string_equal(suggest_pick("at", tie, 2), "cat");
    /* UTF-8 names are compared by bytes: one character, several edits. */
    static const char *const towns[] = {"高观镇", "复兴镇"};
    assert_string_equal(suggest_pick("高观", towns, 2), "高观镇");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distance),
        cmocka_unit_test(test_pick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
