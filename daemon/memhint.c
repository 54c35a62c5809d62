/* memhint.c - see memhint.h. */
#include "memhint.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_PAGE ((uintptr_t)2 << 20)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older C libraries lack the name */
#endif

void memhint_huge(void *p, size_t len)
{
    uintptr_t start = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    uintptr_t end = ((uintptr_t)p + len) & ~(HUGE_PAGE - 1);
    if (p == NULL || end <= start)
        return;
    (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
}

/* Asked each time (the C library has it at hand): a cached copy would be
 * shared, unguarded, by the loop and the history's preload thread. */
static size_t page_size(void)
{
    long v = sysconf(_SC_PAGESIZE);
    return v > 0 ? (size_t)v : 4096;
}

static size_t whole_pages(size_t len)
{
    size_t ps = page_size();
    return (len + ps - 1) / ps * ps;
}

void memhint_populate(void *p, size_t len)
{
    if (p == NULL || len == 0)
        return;
    size_t ps = page_size();
    uintptr_t at = (uintptr_t)p & ~(uintptr_t)(ps - 1);
    uintptr_t end = ((uintptr_t)p + len + ps - 1) & ~(uintptr_t)(ps - 1);
    (void)madvise((void *)at, end - at, MADV_POPULATE_WRITE);
}

/* Advice for the whole mapping, never a part of it: a part would split
 * it, and mremap() moves only whole mappings.  Without it the array would
 * be an ordinary one, still correct, so a refusal is not an error. */
static void advise(void *p, size_t n)
{
    (void)madvise(p, n, MADV_DONTFORK);
    if (n >= HUGE_PAGE)
        (void)madvise(p, n, MADV_HUGEPAGE);
}

void *memhint_nofork_alloc(size_t len)
{
    if (len == 0)
        return NULL;
    size_t n = whole_pages(len);
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    advise(p, n);
    return p;
}

void *memhint_nofork_resize(void *p, size_t old_len, size_t len)
{
    if (p == NULL)
        return memhint_nofork_alloc(len);
    if (len == 0) {
        memhint_nofork_free(p, old_len);
        return NULL;
    }
    size_t from = whole_pages(old_len), to = whole_pages(len);
    if (from == to)
        return p;
    void *q = mremap(p, from, to, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) {
        /* Where the kernel cannot move it (a mapping it split for reasons
         * of its own, say): a new one, copied. */
        q = memhint_nofork_alloc(len);
        if (q == NULL)
            return NULL;
        memcpy(q, p, from < to ? from : to);
        memhint_nofork_free(p, old_len);
        return q;
    }
    advise(q, to); /* again: an array born below 2 MiB had no huge pages */
    return q;
}

void memhint_nofork_free(void *p, size_t len)
{
    if (p != NULL)
        munmap(p, whole_pages(len));
}

int memhint_unshare(void *p, size_t len)
{
    size_t ps = page_size();
    uintptr_t at = (uintptr_t)p & ~(uintptr_t)(ps - 1);
    uintptr_t end = ((uintptr_t)p + len + ps - 1) & ~(uintptr_t)(ps - 1);
    unsigned char vec[1024];
    while (at < end) {
        size_t n = (end - at) / ps;
        if (n > sizeof(vec))
            n = sizeof(vec);
        if (mincore((void *)at, n * ps, vec) != 0)
            return errno == ENOMEM ? 0 : -1; /* ENOMEM: part of the range is gone */
        for (size_t i = 0; i < n;) {
            if (!(vec[i] & 1)) {
                i++;
                continue;
            }
            size_t j = i;
            while (j < n && (vec[j] & 1))
                j++;
            if (madvise((void *)(at + i * ps), (j - i) * ps, MADV_POPULATE_WRITE) != 0 &&
                (errno == EINVAL || errno == EPERM))
                return -1; /* ENOMEM, EFAULT: a page went meanwhile */
            i = j;
        }
        at += n * ps;
    }
    return 0;
}
