/* memhint.c - see memhint.h. */
#include "memhint.h"

#include <stdint.h>
#include <sys/mman.h>

#define HUGE_PAGE ((uintptr_t)2 << 20)

void memhint_huge(void *p, size_t len)
{
    uintptr_t start = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    uintptr_t end = ((uintptr_t)p + len) & ~(HUGE_PAGE - 1);
    if (p == NULL || end <= start)
        return;
    (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
}
