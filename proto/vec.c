/* vec.c - growable arrays (see vec.h). */
#include "vec.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tally_error.h"

#define VEC_FIRST_CAP 16

int vec_reserve(void *pp, size_t *cap, size_t need, size_t elem_size)
{
    assert(pp != NULL && cap != NULL && elem_size > 0);
    if (need <= *cap)
        return 0;
    size_t ncap = *cap > 0 ? *cap : VEC_FIRST_CAP;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > SIZE_MAX / elem_size)
        return TALLY_ENOMEM;
    /* The caller's pointer is a T *, not a void *: it is read and written
     * through memcpy so that no object is accessed through the wrong
     * pointer type. */
    void *old;
    memcpy(&old, pp, sizeof old);
    void *grown = realloc(old, ncap * elem_size);
    if (grown == NULL)
        return TALLY_ENOMEM;
    memcpy(pp, &grown, sizeof grown);
    *cap = ncap;
    return 0;
}
