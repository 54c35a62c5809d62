/* Unit tests of utf8 (proto/utf8.h): every length at its boundaries, and
 * each kind of invalid sequence RFC 3629 rules out, cut short by avail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

static void expect(const char *s, size_t n, uint32_t cp)
{
    uint32_t got = 0xDEADBEEF;
    assert_int_equal(utf8_decode(s, strlen(s), &got), n);
    assert_int_equal(got, cp);
    assert_int_equal(utf8_decode(s, strlen(s), NULL), n);
}

static void expect_bad(const char *s, size_t avail)
{
    uint32_t got = 0xDEADBEEF;
    assert_int_equal(utf8_decode(s, avail, &got), 0);
    assert_int_equal(got, 0xDEADBEEF); /* left alone */
}

static void test_valid(void **state)
{
    (void)state;
    expect("a", 1, 'a');
    expect("\x7f", 1, 0x7F);
    expect("\xc2\x80", 2, 0x80);
    expect("\xdf\xbf", 2, 0x7FF);
    expect("\xe0\xa0\x80", 3, 0x800);
    expect("\xed\x9f\xbf", 3, 0xD7FF);
    expect("\xee\x80\x80", 3, 0xE000);
    expect("\xef\xbf\xbf", 3, 0xFFFF);
    expect("高", 3, 0x9AD8);
    expect("\xf0\x90\x80\x80", 4, 0x10000);
    expect("\xf4\x8f\xbf\xbf", 4, 0x10FFFF);
    uint32_t cp;
    assert_int_equal(utf8_decode("", 1, &cp), 1); /* NUL is a character */
    assert_int_equal(cp, 0);
}

static void test_invalid(void **state)
{
    (void)state;
    expect_bad("\x80", 1);             /* a continuation byte alone */
    expect_bad("\xc0\x80", 2);         /* overlong NUL */
    expect_bad("\xc1\xbf", 2);         /* overlong */
    expect_bad("\xe0\x9f\xbf", 3);     /* overlong 3-byte form */
    expect_bad("\xed\xa0\x80", 3);     /* surrogate U+D800 */
    expect_bad("\xed\xbf\xbf", 3);     /* surrogate U+DFFF */
    expect_bad("\xf0\x8f\xbf\xbf", 4); /* overlong 4-byte form */
    expect_bad("\xf4\x90\x80\x80", 4); /* above U+10FFFF */
    expect_bad("\xf5\x80\x80\x80", 4);
    expect_bad("\xff", 1);
    expect_bad("\xc3(", 2);        /* second byte not a continuation */
    expect_bad("\xe9\xab", 2);     /* 高 cut short by the end */
    expect_bad("\xe9\xab\x98", 2); /* ... by avail, not by the bytes */
    expect_bad("\xf0\x90\x80\x80", 3);
}

static void test_scan(void **state)
{
    (void)state;
    assert_int_equal(utf8_scan(NULL, 0), 0);
    assert_int_equal(utf8_scan("abc", 3), 3);
    assert_int_equal(utf8_scan("高观镇", 9), 9);
    assert_int_equal(utf8_scan("高观镇", 8), 6); /* the last character is cut */
    assert_int_equal(utf8_scan("ab\xff"
                               "cd",
                               5),
                     2);
    assert_int_equal(utf8_scan("a\0b", 3), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
