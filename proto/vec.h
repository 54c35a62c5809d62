/* vec.h - growable arrays: the one place that grows a malloc'ed array by
 * doubling (part of tallycommon, shared by the daemon and the client).
 *
 * An array is a pointer, a capacity and a count the caller keeps:
 *
 *     item_t *v = NULL;
 *     size_t n = 0, cap = 0;
 *     if (VEC_RESERVE(v, cap, n + 1) < 0)
 *         return TALLY_ENOMEM;
 *     v[n++] = item;
 *     ...
 *     free(v);
 *
 * Nothing is allocated until the first reservation, and free() releases
 * the array; vec keeps no state of its own.
 */
#ifndef TALLY_VEC_H
#define TALLY_VEC_H

#include <stddef.h>

/* Make room for need elements of elem_size bytes in the array *pp (a
 * pointer to the caller's element pointer, NULL or from malloc) whose
 * capacity is *cap elements.  When need > *cap the array is reallocated to
 * the first doubling of *cap (16 elements for an empty array) that holds
 * need, and *pp and *cap are updated; the elements already there keep
 * their values.  Returns 0 or TALLY_ENOMEM (the size would overflow size_t
 * or realloc failed); on failure *pp and *cap are unchanged and the array
 * is still valid.  elem_size must not be 0. */
int vec_reserve(void *pp, size_t *cap, size_t need, size_t elem_size);

/* vec_reserve for an array named by its element pointer p (an lvalue of
 * type T *) and capacity cap (a size_t lvalue): the element size is
 * sizeof *p, so it cannot disagree with the array's type. */
#define VEC_RESERVE(p, cap, need) vec_reserve(&(p), &(cap), (need), sizeof *(p))

#endif
