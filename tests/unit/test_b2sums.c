/* Unit tests of b2sums (proto/b2sums.h): digests equal to coreutils'
 * b2sum's, BLAKE2SUMS written and read back (and checked by b2sum -c
 * itself), every way a directory can disagree with it (a byte changed, a
 * file missing, added, replaced by a link or a FIFO) and every malformed
 * line, each named in the message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b2sums.h"

/* BLAKE2b-512 of "hello\n" and of nothing, as `b2sum` prints them. */
#define HELLO_SUM                                                                                  \
    "f60ce482e5cc1229f39d71313171a8d9f4ca3a87d066bf4b205effb528192a75f14f3271e2c1a90e1de53f275b4d" \
    "4793eef2f5e31ea90d2ce29d2e481c36435f"
#define EMPTY_SUM                                                                                  \
    "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419d25e1031afee585313896444934e" \
    "b04b903a685b1448b755d56f701afe9be2ce"

typedef struct fx {
    char dir[64];
    int dfd;
    char err[1024];
} fx_t;

static void put(fx_t *f, const char *name, const void *data, size_t len)
{
    int fd = openat(f->dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void put_str(fx_t *f, const char *name, const char *s)
{
    put(f, name, s, strlen(s));
}

static char *slurp(fx_t *f, const char *name)
{
    static char buf[8192];
    int fd = openat(f->dfd, name, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    assert_true(n >= 0);
    buf[n] = '\0';
    return buf;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tally-b2sums-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->dfd = open(f->dir, O_RDONLY | O_DIRECTORY);
    assert_true(f->dfd >= 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    close(f->dfd);
    free(f);
    return 0;
}

/* Three files: a small one, an empty one, and one of several read
 * chunks whose bytes all differ from their neighbours'. */
static char *const three[] = {"history.db", "journal-0000000000000001.tj", "state-x.ckp"};

static void make_three(fx_t *f)
{
    put_str(f, "history.db", "hello\n");
    put(f, "journal-0000000000000001.tj", "", 0);
    size_t big = 3 * 1048576 + 17;
    uint8_t *b = malloc(big);
    assert_non_null(b);
    for (size_t i = 0; i < big; i++)
        b[i] = (uint8_t)(i * 7 + i / 251);
    put(f, "state-x.ckp", b, big);
    free(b);
}

static void write_three(fx_t *f)
{
    make_three(f);
    b2sums_count_t c;
    assert_int_equal(b2sums_write(f->dfd, f->dir, three, 3, NULL, &c, f->err, sizeof f->err), 0);
    assert_int_equal(c.files, 3);
    assert_int_equal(c.bytes, 6 + 3 * 1048576 + 17);
}

static void test_digest_is_b2sums(void **state)
{
    fx_t *f = *state;
    put_str(f, "a", "hello\n");
    put(f, "e", "", 0);
    char hex[B2SUMS_HEX + 1];
    uint64_t size = 99;
    assert_int_equal(b2sums_digest(f->dfd, "a", hex, &size, NULL), 0);
    assert_string_equal(hex, HELLO_SUM);
    assert_int_equal(size, 6);
    assert_int_equal(b2sums_digest(f->dfd, "e", hex, &size, NULL), 0);
    assert_string_equal(hex, EMPTY_SUM);
    assert_int_equal(size, 0);
    errno = 0;
    assert_int_equal(b2sums_digest(f->dfd, "nope", hex, NULL, NULL), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(symlinkat("a", f->dfd, "link"), 0);
    assert_int_equal(b2sums_digest(f->dfd, "link", hex, NULL, NULL), -1);
    assert_int_equal(errno, ELOOP);
    assert_int_equal(mkfifoat(f->dfd, "fifo", 0600), 0);
    assert_int_equal(b2sums_digest(f->dfd, "fifo", hex, NULL, NULL), -1); /* never blocks */
    assert_int_equal(errno, EINVAL);
}

static void test_write_then_check(void **state)
{
    fx_t *f = *state;
    write_three(f);
    const char *text = slurp(f, B2SUMS_FILE);
    /* One line per file in the order given, b2sum's format. */
    assert_int_equal(strlen(text), 3 * (B2SUMS_HEX + 2 + 1) + strlen(three[0]) + strlen(three[1]) +
                                       strlen(three[2]));
    assert_memory_equal(text,
                        HELLO_SUM "  history.db\n" EMPTY_SUM "  journal-0000000000000001.tj\n",
                        2 * (B2SUMS_HEX + 3) + 10 + 27);
    struct stat st;
    assert_int_equal(fstatat(f->dfd, B2SUMS_FILE, &st, 0), 0);
    assert_int_equal(st.st_mode & 0137, 0); /* 0640 under the umask at most */
    b2sums_count_t c = {9, 9};
    assert_int_equal(b2sums_check(f->dfd, f->dir, NULL, NULL, &c, f->err, sizeof f->err),
                     B2SUMS_OK);
    assert_string_equal(f->err, "");
    assert_int_equal(c.files, 3);
    assert_int_equal(c.bytes, 6 + 3 * 1048576 + 17);
    /* coreutils agrees, line for line. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cd %s && b2sum --quiet --strict -c %s", f->dir, B2SUMS_FILE);
    assert_int_equal(system(cmd), 0);
}

static void test_b2sum_output_is_taken(void **state)
{
    fx_t *f = *state;
    make_three(f);
    /* What b2sum writes, in another order and with no trailing newline
     * on the last line, upper-case digits in one, binary mode in
     * another. */
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "cd %s && b2sum -b state-x.ckp history.db > s && b2sum journal-*.tj | "
             "sed 's/^[0-9a-f]*/\\U&/' >> s && printf %%s \"$(cat s)\" > %s && rm s",
             f->dir, B2SUMS_FILE);
    assert_int_equal(system(cmd), 0);
    b2sums_count_t c;
    assert_int_equal(b2sums_check(f->dfd, f->dir, NULL, NULL, &c, f->err, sizeof f->err),
                     B2SUMS_OK);
    assert_int_equal(c.files, 3);
}

static void test_none(void **state)
{
    fx_t *f = *state;
    make_three(f);
    b2sums_count_t c = {9, 9};
    assert_int_equal(b2sums_check(f->dfd, f->dir, NULL, NULL, &c, f->err, sizeof f->err),
                     B2SUMS_NONE);
    assert_int_equal(c.files, 0);
}

static void expect_damaged(fx_t *f, bool (*counted)(const char *), const char *needle)
{
    b2sums_count_t c = {9, 9};
    int rc = b2sums_check(f->dfd, f->dir, counted, NULL, &c, f->err, sizeof f->err);
    if (rc != B2SUMS_DAMAGED || strstr(f->err, needle) == NULL || strstr(f->err, f->dir) == NULL)
        fail_msg("expected DAMAGED with \"%s\", got %d: %s", needle, rc, f->err);
    assert_int_equal(c.files, 0);
}

static void test_changed_byte(void **state)
{
    fx_t *f = *state;
    write_three(f);
    /* One byte in the middle of the large file's third MiB. */
    int fd = openat(f->dfd, "state-x.ckp", O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "\xff", 1, 2 * 1048576 + 5), 1);
    close(fd);
    expect_damaged(f, NULL, "state-x.ckp differs from its digest in BLAKE2SUMS");
}

static void test_cut_file(void **state)
{
    fx_t *f = *state;
    write_three(f);
    int fd = openat(f->dfd, "history.db", O_WRONLY);
    assert_int_equal(ftruncate(fd, 5), 0);
    close(fd);
    expect_damaged(f, NULL, "history.db differs");
}

static void test_missing(void **state)
{
    fx_t *f = *state;
    write_three(f);
    assert_int_equal(unlinkat(f->dfd, "journal-0000000000000001.tj", 0), 0);
    expect_damaged(f, NULL, "journal-0000000000000001.tj is missing (BLAKE2SUMS lists it)");
}

static bool only_journal(const char *name)
{
    return strncmp(name, "journal-", 8) == 0;
}

static void test_added(void **state)
{
    fx_t *f = *state;
    write_three(f);
    put_str(f, "journal-0000000000000002.tj", "x");
    expect_damaged(f, NULL, "journal-0000000000000002.tj is not in BLAKE2SUMS");
    expect_damaged(f, only_journal, "journal-0000000000000002.tj is not in BLAKE2SUMS");
    assert_int_equal(unlinkat(f->dfd, "journal-0000000000000002.tj", 0), 0);
    /* What counted() does not take, dot files, links and directories
     * are not the backup's business. */
    put_str(f, "notes.txt", "mine");
    put_str(f, ".hidden", "x");
    assert_int_equal(symlinkat("history.db", f->dfd, "journal-0000000000000003.tj"), 0);
    assert_int_equal(mkdirat(f->dfd, "journal-0000000000000004.tj", 0700), 0);
    assert_int_equal(b2sums_check(f->dfd, f->dir, only_journal, NULL, NULL, f->err, sizeof f->err),
                     B2SUMS_OK);
    expect_damaged(f, NULL, "notes.txt is not in BLAKE2SUMS");
}

static void test_replaced_by_link_or_fifo(void **state)
{
    fx_t *f = *state;
    write_three(f);
    assert_int_equal(renameat(f->dfd, "history.db", f->dfd, "h"), 0);
    assert_int_equal(symlinkat("h", f->dfd, "history.db"), 0);
    expect_damaged(f, only_journal, "history.db is not a regular file");
    assert_int_equal(unlinkat(f->dfd, "history.db", 0), 0);
    assert_int_equal(mkfifoat(f->dfd, "history.db", 0600), 0);
    expect_damaged(f, only_journal, "history.db is not a regular file");
}

static void test_sums_not_regular(void **state)
{
    fx_t *f = *state;
    write_three(f);
    assert_int_equal(renameat(f->dfd, B2SUMS_FILE, f->dfd, "s"), 0);
    assert_int_equal(symlinkat("s", f->dfd, B2SUMS_FILE), 0);
    expect_damaged(f, only_journal, "BLAKE2SUMS is not a regular file");
}

static bool nothing_counted(const char *name)
{
    (void)name;
    return false;
}

/* Each malformed BLAKE2SUMS, and the words its message must hold. */
static void test_malformed(void **state)
{
    fx_t *f = *state;
    make_three(f);
    static const struct {
        const char *text;
        const char *needle;
    } cases[] = {
        {"", "lists no file"},
        {"\n", "line 1: not"},
        {HELLO_SUM "  history.db\n\n", "line 2: not"},
        {HELLO_SUM " history.db\n", "line 1: not"},
        {HELLO_SUM "\thistory.db\n", "line 1: not"},
        {HELLO_SUM "  \n", "line 1: not"},
        {"f" HELLO_SUM "  history.db\n", "line 1: not"},
        {HELLO_SUM "  ../history.db\n", "line 1: not"},
        {HELLO_SUM "  sub/history.db\n", "line 1: not"},
        {HELLO_SUM "  .history.db\n", "line 1: not"},
        {"\\" HELLO_SUM "  history\\\\db\n", "line 1: not"},
        {HELLO_SUM "  history.db\r\n", "line 1: not"},
        {"g60ce482e5cc1229f39d71313171a8d9f4ca3a87d066bf4b205effb528192a75f14f3271e2c1a90e1de53f275"
         "b4d"
         "4793eef2f5e31ea90d2ce29d2e481c36435f  history.db\n",
         "line 1: not"},
        {"f60ce482  history.db\n", "line 1: not"},
        {HELLO_SUM "  history.db\n" EMPTY_SUM "  journal-0000000000000001.tj\n" HELLO_SUM
                   "  history.db\n",
         "lists history.db twice (lines 1 and 3)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        put_str(f, B2SUMS_FILE, cases[i].text);
        expect_damaged(f, only_journal, cases[i].needle);
        assert_non_null(strstr(f->err, "BLAKE2SUMS"));
    }
    /* A name of 256 bytes is too long, one of 255 is taken (and then
     * missing). */
    char line[B2SUMS_HEX + 2 + 257 + 2];
    snprintf(line, sizeof line, "%s  %0256d\n", HELLO_SUM, 0);
    put_str(f, B2SUMS_FILE, line);
    expect_damaged(f, only_journal, "line 1: not");
    snprintf(line, sizeof line, "%s  %0255d\n", HELLO_SUM, 0);
    put_str(f, B2SUMS_FILE, line);
    expect_damaged(f, nothing_counted, "is missing");
    /* Larger than any backup's list. */
    size_t big = B2SUMS_FILE_MAX + 1;
    char *b = malloc(big);
    assert_non_null(b);
    memset(b, '\n', big);
    put(f, B2SUMS_FILE, b, big);
    free(b);
    expect_damaged(f, only_journal, "is larger than");
}

static void test_write_refuses(void **state)
{
    fx_t *f = *state;
    put_str(f, "a", "x");
    char *bad[] = {"a", "../a"};
    errno = 0;
    assert_int_equal(b2sums_write(f->dfd, f->dir, bad, 2, NULL, NULL, f->err, sizeof f->err), -1);
    assert_int_equal(errno, EINVAL);
    assert_non_null(strstr(f->err, "'../a'"));
    char *missing[] = {"a", "gone"};
    assert_int_equal(b2sums_write(f->dfd, f->dir, missing, 2, NULL, NULL, f->err, sizeof f->err),
                     -1);
    assert_int_equal(errno, ENOENT);
    assert_non_null(strstr(f->err, "/gone for its digest"));
    /* Nothing written on a failure. */
    assert_int_equal(faccessat(f->dfd, B2SUMS_FILE, F_OK, 0), -1);
    assert_true(b2sums_name_valid("journal-0000000000000001.tj"));
    assert_false(b2sums_name_valid(""));
    assert_false(b2sums_name_valid("."));
    assert_false(b2sums_name_valid("a/b"));
    assert_false(b2sums_name_valid(NULL));
}

static void test_cancelled(void **state)
{
    fx_t *f = *state;
    write_three(f);
    _Atomic int cancel = 1;
    assert_int_equal(b2sums_check(f->dfd, f->dir, NULL, &cancel, NULL, f->err, sizeof f->err),
                     B2SUMS_CANCELLED);
    errno = 0;
    assert_int_equal(b2sums_write(f->dfd, f->dir, three, 3, &cancel, NULL, f->err, sizeof f->err),
                     -1);
    assert_int_equal(errno, ECANCELED);
}

static void test_unreadable(void **state)
{
    fx_t *f = *state;
    if (geteuid() == 0)
        skip(); /* root reads whatever the mode says */
    write_three(f);
    assert_int_equal(fchmodat(f->dfd, "history.db", 0, 0), 0);
    int rc = b2sums_check(f->dfd, f->dir, NULL, NULL, NULL, f->err, sizeof f->err);
    assert_int_equal(rc, B2SUMS_EIO);
    assert_non_null(strstr(f->err, "cannot read"));
    assert_non_null(strstr(f->err, "history.db: Permission denied"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_digest_is_b2sums, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_then_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_b2sum_output_is_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_added, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaced_by_link_or_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sums_not_regular, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
