/* Unit tests of SHA-256: the FIPS 180-4 / NIST example vectors, lengths
 * around the block and padding boundaries, and the prefix function that
 * the de-duplication key of ingest.c is built from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sha256.h"

/* The digest as 64 lower-case hex digits, the form sha256sum prints, so a
 * failure shows both digests readably. */
static void to_hex(const uint8_t d[SHA256_DIGEST_LEN], char hex[2 * SHA256_DIGEST_LEN + 1])
{
    for (size_t i = 0; i < SHA256_DIGEST_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static void expect_digest(const void *msg, size_t len, const char *want)
{
    uint8_t d[SHA256_DIGEST_LEN];
    char hex[2 * SHA256_DIGEST_LEN + 1];
    memset(d, 0xEE, sizeof(d));
    sha256_digest(msg, len, d);
    to_hex(d, hex);
    assert_string_equal(hex, want);
}

static void expect_str(const char *msg, const char *want)
{
    expect_digest(msg, strlen(msg), want);
}

/* Byte i of the boundary test messages: (i * 37 + 11) mod 256, which takes
 * every byte value (0x00 and the high bit included) once per 256 bytes, so
 * byte-order and signedness mistakes change the digest. */
static void fill_pattern(uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 37 + 11);
}

/* FIPS 180-4 examples as published by NIST (csrc.nist.gov, "SHA256.pdf"
 * and "SHA2_Additional.pdf"). */
static void test_nist_short_messages(void **state)
{
    (void)state;
    expect_str("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect_str("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect_str("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    expect_str(
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmn"
        "opqrlmnopqrsmnopqrstnopqrstu",
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_nist_million_a(void **state)
{
    (void)state;
    size_t len = 1000000;
    char *msg = malloc(len);
    assert_non_null(msg);
    memset(msg, 'a', len);
    expect_digest(msg, len, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(msg);
}

/* An empty message may be given as NULL. */
static void test_null_empty_message(void **state)
{
    (void)state;
    expect_digest(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* Lengths on both sides of the padding seams: 55 is the longest tail whose
 * marker and bit count fit one final block, 56..63 need a second one, 64
 * is exactly one block, 119/120 the same seam one block later.  Expected
 * digests were computed on the development machine with GNU coreutils:
 *   python3 -c "import sys; n=int(sys.argv[1]); \
 *     sys.stdout.buffer.write(bytes((i*37+11)&0xff for i in range(n)))" N | sha256sum */
static void test_block_boundaries(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        const char *hex;
    } cases[] = {
        {1, "e7cf46a078fed4fafd0b5e3aff144802b853f8ae459a4f0c14add3314b7cc3a6"},
        {55, "2900465fcb533e05a158fd2b3be0e5e3b03740d83060aa3580e0d98a96bf2384"},
        {56, "31454ff48ef36af2f08fd511bdc37d9d5855ac23e992e5ff5445cb6b7674a674"},
        {63, "5f6401b96532c36de4e65beec0409b69b1d181864c8009b7a04f43e5d56350d1"},
        {64, "94eb5de4943613fd048dc93393ab06877405faa39c11f53e9386083339833e7e"},
        {65, "fc518669b6eb4b4dd91827ecacef86689c725bd5bab888fd3b26dbb196eec954"},
        {119, "b0dc41b1a384e2f1203f0351b38fbeaafceef577ce1191d5bfc25da39f721eae"},
        {120, "5df24dd802ac26132ce608dcb5f09841eef039ee0f152acf98d26d17fe4e88e6"},
        {1000, "57799de80e3dd6e2ac4d40c41a150d1662f7f87d0d994776a2fdc37c39b0ea4e"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* An exact-size heap copy, so ASan catches a read past the end. */
        uint8_t *msg = malloc(cases[i].len);
        assert_non_null(msg);
        fill_pattern(msg, cases[i].len);
        expect_digest(msg, cases[i].len, cases[i].hex);
        free(msg);
    }
}

/* The input is read byte by byte: any alignment gives the same digest. */
static void test_unaligned_input(void **state)
{
    (void)state;
    uint8_t buf[1000 + 8];
    for (size_t off = 0; off < 8; off++) {
        fill_pattern(buf + off, 1000);
        expect_digest(buf + off, 1000,
                      "57799de80e3dd6e2ac4d40c41a150d1662f7f87d0d994776a2fdc37c39b0ea4e");
    }
}

/* out may be the message itself (the header allows overlap). */
static void test_digest_in_place(void **state)
{
    (void)state;
    uint8_t buf[64];
    char hex[2 * SHA256_DIGEST_LEN + 1];
    fill_pattern(buf, sizeof(buf));
    sha256_digest(buf, sizeof(buf), buf);
    to_hex(buf, hex);
    assert_string_equal(hex, "94eb5de4943613fd048dc93393ab06877405faa39c11f53e9386083339833e7e");
}

/* sha256_prefix() writes exactly the first n bytes of the digest. */
static void test_prefix(void **state)
{
    (void)state;
    uint8_t full[SHA256_DIGEST_LEN];
    sha256_digest("abc", 3, full);

    for (size_t n = 0; n <= SHA256_DIGEST_LEN; n++) {
        uint8_t out[SHA256_DIGEST_LEN + 4];
        memset(out, 0xEE, sizeof(out));
        sha256_prefix("abc", 3, out, n);
        assert_memory_equal(out, full, n);
        for (size_t i = n; i < sizeof(out); i++)
            assert_int_equal(out[i], 0xEE);
    }
    /* The 16 bytes a secured daemon's de-duplication key takes. */
    uint8_t key[16];
    sha256_prefix("abc", 3, key, sizeof(key));
    static const uint8_t want[16] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                     0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23};
    assert_memory_equal(key, want, sizeof(key));

    sha256_prefix("abc", 3, NULL, 0); /* n == 0 touches nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nist_short_messages),
        cmocka_unit_test(test_nist_million_a),
        cmocka_unit_test(test_null_empty_message),
        cmocka_unit_test(test_block_boundaries),
        cmocka_unit_test(test_unaligned_input),
        cmocka_unit_test(test_digest_in_place),
        cmocka_unit_test(test_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
