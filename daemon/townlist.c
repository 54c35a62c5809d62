/* townlist.c - which townships have series (see townlist.h). */
#include "townlist.h"

#include <stdlib.h>
#include <string.h>

#include "tally_error.h"

/* Make room for the flag of town; false when memory ran out. */
static bool reserve(townlist_t *t, uint32_t town)
{
    if (town < t->cap)
        return true;
    uint32_t cap = t->cap ? t->cap : 1024;
    while (cap <= town)
        cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
    if (cap <= town)
        return false;
    uint8_t *has = realloc(t->has, cap);
    if (has == NULL)
        return false;
    memset(has + t->cap, 0, cap - t->cap);
    t->has = has;
    t->cap = cap;
    return true;
}

static int flag(void *ctx, const engine_item_t *item)
{
    townlist_t *t = ctx;
    if (item->town != 0 && item->sid != ENGINE_NONE) {
        if (reserve(t, item->town))
            t->has[item->town] = 1;
        else
            t->oom = true;
    }
    return 0;
}

/* Series read per engine_foreach_from() call, so that a failure stops
 * the look near where it happened. */
#define STEP 65536u

int townlist_update(townlist_t *t, const engine_t *e)
{
    uint32_t n = engine_series_count(e);
    while (t->seen < n) {
        t->oom = false;
        uint32_t next = engine_foreach_from(e, t->seen, STEP, flag, t);
        if (t->oom)
            return TALLY_ENOMEM; /* this step is read again next time */
        t->seen = next;
    }
    return 0;
}

void townlist_free(townlist_t *t)
{
    free(t->has);
    memset(t, 0, sizeof(*t));
}
