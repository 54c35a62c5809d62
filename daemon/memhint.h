/* memhint.h - hints to the kernel about the daemon's largest arrays. */
#ifndef TALLYD_MEMHINT_H
#define TALLYD_MEMHINT_H

#include <stddef.h>

/* Ask for transparent huge pages under the whole 2 MiB pages that lie
 * inside [p, p + len): for the few arrays of tens of megabytes that a
 * start with a large state fills at once (history cells and index, the
 * engine's series index), whose fresh memory then comes in 2 MiB faults
 * instead of 512 of 4 KiB.  Only a hint: nothing happens for smaller
 * ranges or where the kernel's THP setting is "never", and errors are
 * ignored.  Call it right after allocating, before the memory is
 * touched; memory moved by a later realloc keeps the advice. */
void memhint_huge(void *p, size_t len);

#endif
