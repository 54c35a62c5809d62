/* memhint.h - hints to the kernel about the daemon's largest arrays. */
#ifndef TALLYD_MEMHINT_H
#define TALLYD_MEMHINT_H

#include <stddef.h>

/* Told of one block of a part's memory: [p, p + len). */
typedef void (*memhint_region_fn)(void *ctx, void *p, size_t len);

/* Ask for transparent huge pages under the whole 2 MiB pages that lie
 * inside [p, p + len): for the few arrays of tens of megabytes that a
 * start with a large state fills at once (history cells and index, the
 * engine's series index), whose fresh memory then comes in 2 MiB faults
 * instead of 512 of 4 KiB.  Only a hint: nothing happens for smaller
 * ranges or where the kernel's THP setting is "never", and errors are
 * ignored.  Call it right after allocating, before the memory is
 * touched; memory moved by a later realloc keeps the advice. */
void memhint_huge(void *p, size_t len);

/* Make the pages under [p, p + len) resident and writable now, in one
 * call (MADV_POPULATE_WRITE, Linux 5.14), rather than by one fault each
 * when they are first written: for fresh memory the loop is about to fill
 * (a new block of series, an index about to be built).  On a virtual
 * machine with shadow page tables a fault costs about 10 us, this call
 * about 0.5 us a page (bench/README.md, "Fresh pages in one call, and
 * fewer misses").  The contents do not change, so pages partly outside
 * the range (a malloc header's) are harmless; only a hint: nothing
 * happens on an older kernel, and errors are ignored. */
void memhint_populate(void *p, size_t len);

/* Arrays that the checkpoint's child process never reads (the history's
 * cells, index and dirty list): mapped on their own and left out of
 * fork(), so that the loop's writes to them after a fork are plain
 * stores, not copy-on-write faults (each costs 15-30 us on a virtual
 * machine with shadow page tables: bench/README.md, "The fork's page
 * faults").  Zero-filled, like calloc; len is in bytes and may be 0
 * (NULL then); huge pages as memhint_huge().  A child that touches one
 * gets SIGSEGV: they are absent in it. */
void *memhint_nofork_alloc(size_t len);

/* Resize an array of memhint_nofork_alloc() from old_len to len bytes,
 * keeping its contents (the growth reads as zero); it may move.  Returns
 * NULL (p untouched) when the kernel has no room. */
void *memhint_nofork_resize(void *p, size_t old_len, size_t len);

/* Give an array of memhint_nofork_alloc() of len bytes back (NULL is
 * fine). */
void memhint_nofork_free(void *p, size_t len);

/* After a fork's child has ended: make the resident pages of [p, p + len)
 * writable again, in one call per run of them (MADV_POPULATE_WRITE),
 * rather than by one write fault each when the loop next writes there.
 * fork() left every page of the parent write-protected, and on a virtual
 * machine with shadow page tables each such fault costs about 16 us: at
 * a million series that is a second of the loop's time after every
 * checkpoint, against 0.2-0.3 us a page for this call (bench/README.md,
 * "The fork's page faults").  Pages that are not resident stay so (RSS
 * does not grow); the contents never change, so the range may be in use,
 * or even go away, meanwhile.  Call it only when no child shares the
 * pages (there each page would be copied).  Returns 0, or -1 with errno
 * set when it cannot be done (EINVAL: a kernel before Linux 5.14; EPERM: a
 * system call filter refusing mincore() or madvise()). */
int memhint_unshare(void *p, size_t len);

#endif
