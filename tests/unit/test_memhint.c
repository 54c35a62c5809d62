/* Unit tests of the arrays kept out of fork() (memhint_nofork_*): what
 * they hold through growth and shrinking, that a forked child does not
 * have them while it has ordinary memory, and that growing never splits
 * their mapping (which mremap() could not move); and memhint_unshare():
 * after a fork's child has ended, the parent's resident pages take no
 * fault when written, and the others stay out of memory; a refusal is
 * reported. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "memhint.h"

static size_t page(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* The mapping of /proc/self/maps that holds address a: its bounds. */
static int mapping_of(const void *a, uintptr_t *lo, uintptr_t *hi)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    char line[512];
    int rc = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        uintptr_t s, e;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &s, &e) == 2 && (uintptr_t)a >= s &&
            (uintptr_t)a < e) {
            *lo = s;
            *hi = e;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

static void test_zeroed_and_kept_through_resizes(void **state)
{
    (void)state;
    assert_null(memhint_nofork_alloc(0));
    size_t len = 100;
    uint8_t *p = memhint_nofork_alloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(p[i], 0);
    memset(p, 0xa5, len);
    /* Grow by doubling well past 2 MiB, where huge pages are asked for:
     * the old bytes stay, the new ones read zero. */
    while (len < ((size_t)48 << 20)) {
        size_t next = len * 2 + 7;
        p = memhint_nofork_resize(p, len, next);
        assert_non_null(p);
        assert_int_equal(p[0], 0xa5);
        assert_int_equal(p[len - 1], 0xa5);
        assert_int_equal(p[len], 0);
        assert_int_equal(p[next - 1], 0);
        memset(p + len, 0xa5, next - len);
        len = next;
        /* Still one mapping from its first byte to past its last, so the
         * next growth can move it whole. */
        uintptr_t lo, hi;
        assert_int_equal(mapping_of(p, &lo, &hi), 0);
        assert_true(lo <= (uintptr_t)p);
        assert_true(hi >= (uintptr_t)p + len);
    }
    for (size_t i = 0; i < len; i += 4093)
        assert_int_equal(p[i], 0xa5);
    /* Shrinking keeps the prefix; a same-size resize is a no-op. */
    p = memhint_nofork_resize(p, len, 5000);
    assert_non_null(p);
    assert_int_equal(p[4999], 0xa5);
    uint8_t *q = memhint_nofork_resize(p, 5000, 5001);
    assert_ptr_equal(q, p); /* the same two pages */
    /* To 0 frees it; from NULL allocates. */
    assert_null(memhint_nofork_resize(q, 5001, 0));
    p = memhint_nofork_resize(NULL, 0, 3 * page());
    assert_non_null(p);
    assert_int_equal(p[3 * page() - 1], 0);
    memhint_nofork_free(p, 3 * page());
    memhint_nofork_free(NULL, 0);
}

/* In a forked child, the array is not mapped at all (mincore() says
 * ENOMEM), while an ordinary allocation of the parent reads as it was. */
static void test_absent_in_a_forked_child(void **state)
{
    (void)state;
    size_t len = (size_t)4 << 20;
    uint8_t *p = memhint_nofork_alloc(len);
    assert_non_null(p);
    memset(p, 1, len);
    p = memhint_nofork_resize(p, len, 2 * len); /* moved or grown: still out */
    assert_non_null(p);
    uint8_t *plain = malloc(len);
    assert_non_null(plain);
    memset(plain, 2, len);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        unsigned char vec[2];
        int absent = mincore(p, 2 * page(), vec) != 0 && errno == ENOMEM;
        int last = mincore(p + 2 * len - page(), page(), vec) != 0 && errno == ENOMEM;
        int kept = plain[0] == 2 && plain[len - 1] == 2;
        free(plain); /* valgrind checks the child's leaks too */
        _exit(absent && last && kept ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The parent's array is untouched by the child's existence. */
    assert_int_equal(p[0], 1);
    assert_int_equal(p[len - 1], 1);
    assert_int_equal(p[2 * len - 1], 0);
    free(plain);
    memhint_nofork_free(p, 2 * len);
}

static long minor_faults(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_minflt;
}

/* Write the even pages of n at p; the minor faults that took. */
static long write_even(uint8_t *p, size_t n, uint8_t v)
{
    long f = minor_faults();
    for (size_t i = 0; i < n; i += 2)
        p[i * page()] = v;
    return minor_faults() - f;
}

static void test_unshare_after_fork(void **state)
{
    (void)state;
    size_t ps = page(), n = 64;
    /* Two arrays alike, even pages resident, odd ones never touched. */
    uint8_t *a = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *b = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(a != MAP_FAILED && b != MAP_FAILED);
    write_even(a, n, 1);
    write_even(b, n, 1);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    if (memhint_unshare(b, n * ps) != 0) {
        munmap(a, n * ps);
        munmap(b, n * ps);
        skip(); /* the kernel lacks MADV_POPULATE_WRITE (before 5.14) */
    }
    /* a, as fork() left it: a fault a page.  b: (next to) none. */
    long fa = write_even(a, n, 2), fb = write_even(b, n, 2);
    assert_true(fa >= (long)n / 2);
    assert_true(fb < fa / 4);
    unsigned char vec[64];
    assert_int_equal(mincore(b, n * ps, vec), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(vec[i] & 1, i % 2 == 0); /* RSS did not grow */
    for (size_t i = 0; i < n; i += 2)
        assert_int_equal(b[i * ps], 2);
    /* A range partly gone, or never mapped, is no error. */
    assert_int_equal(munmap(b + 32 * ps, 32 * ps), 0);
    assert_int_equal(memhint_unshare(b, n * ps), 0);
    munmap(b, 32 * ps);
    munmap(a, n * ps);
}

/* Under a system call filter that refuses mincore() (as a systemd unit
 * without it in SystemCallFilter= does), memhint_unshare() says so
 * instead of taking the refusal for a range gone. */
static void test_unshare_refused(void **state)
{
    (void)state;
    size_t ps = page();
    uint8_t *p = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 1, 4 * ps);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sock_filter code[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mincore, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
            _exit(2); /* no filter here: nothing to test */
        int rc = memhint_unshare(p, 4 * ps);
        _exit(rc == -1 && errno == EPERM ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    munmap(p, 4 * ps);
    if (WEXITSTATUS(status) == 2)
        skip();
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeroed_and_kept_through_resizes),
        cmocka_unit_test(test_absent_in_a_forked_child),
        cmocka_unit_test(test_unshare_after_fork),
        cmocka_unit_test(test_unshare_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
