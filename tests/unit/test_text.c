/* Unit tests of text (proto/text.h): untrusted bytes made printable for a
 * message (both styles: the codec's lower-case escapes with quotes, the
 * configuration's upper-case ones), where long text is cut, JSON strings
 * and tally values, and the bounded copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "text.h"

static const char *show(char *buf, size_t cap, const char *s, size_t len, unsigned flags)
{
    memset(buf, 'Z', cap);
    return text_printable(buf, cap, s, len, flags);
}

#define SHOW(s, flags) show(buf, sizeof buf, (s), sizeof(s) - 1, (flags))

static void test_printable(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(SHOW("disputes.resolved", 0), "disputes.resolved");
    assert_string_equal(SHOW("高观镇", 0), "高观镇");
    assert_string_equal(SHOW("a\x1b[31mb", 0), "a\\x1b[31mb");
    assert_string_equal(SHOW("a\x1b[31mb", TEXT_HEX_UPPER), "a\\x1B[31mb");
    assert_string_equal(SHOW("tab\there\x7f", 0), "tab\\x09here\\x7f");
    assert_string_equal(SHOW("nul\0in", 0), "nul\\x00in");
    /* Broken UTF-8, one escape per byte; what follows is still read. */
    assert_string_equal(SHOW("caf\xc3", TEXT_HEX_UPPER), "caf\\xC3");
    assert_string_equal(SHOW("\xed\xa0\x80", TEXT_HEX_UPPER), "\\xED\\xA0\\x80");
    assert_string_equal(SHOW("a\xff\xc3(", 0), "a\\xff\\xc3(");
    /* The C1 controls are valid UTF-8 but not printable. */
    assert_string_equal(SHOW("高观\xc2\x9f", 0), "高观\\xc2\\x9f");
    assert_string_equal(SHOW("\xc2\xa0", 0), "\xc2\xa0"); /* U+00A0 is printable */
    /* Quotes and backslashes stay unless the text goes between quotes. */
    assert_string_equal(SHOW("it's a\\b", 0), "it's a\\b");
    assert_string_equal(SHOW("a\xff'\\", TEXT_QUOTES), "a\\xff\\x27\\x5c");
    assert_string_equal(show(buf, sizeof buf, NULL, 0, 0), "");
}

static void test_printable_cut(void **state)
{
    (void)state;
    char buf[64];
    /* A piece is copied only while "..." and the NUL still fit after it. */
    assert_string_equal(show(buf, 8, "abcd", 4, 0), "abcd");
    assert_string_equal(show(buf, 8, "abcde", 5, 0), "abcd...");
    assert_string_equal(show(buf, 8, "abcdefghijklmnop", 16, 0), "abcd...");
    /* Never half a character or half an escape. */
    assert_string_equal(show(buf, 10, "高观镇", 9, 0), "高观...");
    assert_string_equal(show(buf, 9, "ab\x01\x02\x03", 5, 0), "ab...");
    /* A small cap is how a caller shows at most so much of a long value. */
    char longer[200];
    memset(longer, 'x', sizeof longer);
    text_printable(buf, 52, longer, sizeof longer, TEXT_QUOTES);
    assert_int_equal(strlen(buf), 51);
    assert_string_equal(buf + 48, "...");
}

static char *json(const char *s, size_t len)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    assert_non_null(f);
    text_json_string(f, s, len);
    fclose(f);
    return out;
}

#define JSON_IS(s, want)                                                                           \
    do {                                                                                           \
        char *got_ = json((s), sizeof(s) - 1);                                                     \
        assert_string_equal(got_, (want));                                                         \
        free(got_);                                                                                \
    } while (0)

static void test_json(void **state)
{
    (void)state;
    JSON_IS("高观镇", "\"高观镇\"");
    JSON_IS("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
    JSON_IS("\n\t\r\b\f\x01\x1f\x7f", "\"\\n\\t\\r\\b\\f\\u0001\\u001f\\u007f\"");
    JSON_IS("bad\xff\xc3(", "\"bad\\ufffd\\ufffd(\"");
    JSON_IS("nul\0in", "\"nul\\u0000in\"");
    JSON_IS("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""); /* a surrogate is not UTF-8 */
    JSON_IS("", "\"\"");
    char *got = json(NULL, 0);
    assert_string_equal(got, "\"\"");
    free(got);
}

static char *json_value(bool present, bool ratio, int64_t num, int64_t den)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    assert_non_null(f);
    text_json_value(f, present, ratio, num, den);
    fclose(f);
    return out;
}

#define VALUE_IS(present, ratio, num, den, want)                                                   \
    do {                                                                                           \
        char *got_ = json_value((present), (ratio), (num), (den));                                 \
        assert_string_equal(got_, (want));                                                         \
        free(got_);                                                                                \
    } while (0)

/* A tally's value as the clients' JSON shows it. */
static void test_json_value(void **state)
{
    (void)state;
    VALUE_IS(false, false, 5, 0, "null");
    VALUE_IS(false, true, 216, 219, "null");
    VALUE_IS(true, false, 216, 0, "216");
    VALUE_IS(true, false, INT64_MIN, 0, "-9223372036854775808");
    VALUE_IS(true, true, 216, 219, "{\"num\":216,\"den\":219,\"value\":0.9863013698630136}");
    VALUE_IS(true, true, 94, 94, "{\"num\":94,\"den\":94,\"value\":1}");
    VALUE_IS(true, true, 3, 0, "{\"num\":3,\"den\":0,\"value\":0}");
}

static const char *json_double(char *buf, size_t cap, double v)
{
    FILE *f = fmemopen(buf, cap, "w");
    assert_non_null(f);
    text_json_double(f, v);
    fclose(f);
    return buf;
}

/* Numbers as JSON: the shortest that reads back the same, whole numbers
 * without an exponent (a change of -40 percent is -40, not -4e+01). */
static void test_json_double(void **state)
{
    (void)state;
    char b[64];
    assert_string_equal(json_double(b, sizeof b, -40.0), "-40");
    assert_string_equal(json_double(b, sizeof b, 120.0), "120");
    assert_string_equal(json_double(b, sizeof b, 0.0), "0");
    assert_string_equal(json_double(b, sizeof b, 28.571428571428573), "28.571428571428573");
    assert_string_equal(json_double(b, sizeof b, -8.3), "-8.3");
    assert_string_equal(json_double(b, sizeof b, 1e20), "1e+20");
    assert_string_equal(json_double(b, sizeof b, 0.5), "0.5");
    assert_string_equal(json_double(b, sizeof b, 1.0 / 0.0), "null");
}

static void test_copy_and_format(void **state)
{
    (void)state;
    char buf[8];
    text_copy(buf, sizeof buf, "gaoguan", 7);
    assert_string_equal(buf, "gaoguan");
    text_copy(buf, sizeof buf, "gaoguan-town", 12);
    assert_string_equal(buf, "gaoguan");
    text_copy(buf, sizeof buf, "ab\0cd", 2);
    assert_string_equal(buf, "ab");
    text_copy(buf, sizeof buf, NULL, 0);
    assert_string_equal(buf, "");
    buf[0] = 'q';
    text_copy(buf, 0, "x", 1); /* nothing, not even the NUL */
    assert_int_equal(buf[0], 'q');

    text_format(buf, sizeof buf, "%s=%d", "seq", 12345);
    assert_string_equal(buf, "seq=123");
    text_format(NULL, 99, "%s", "ignored"); /* the optional buffer is absent */
    text_format(buf, 0, "%s", "ignored");
    assert_string_equal(buf, "seq=123");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printable),   cmocka_unit_test(test_printable_cut),
        cmocka_unit_test(test_json),        cmocka_unit_test(test_json_value),
        cmocka_unit_test(test_json_double), cmocka_unit_test(test_copy_and_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
