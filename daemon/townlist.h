/* townlist.h - which townships have series, for TOWNSHIPS_REQ
 * (PROTOCOL.md 8.25).
 *
 * A flag per township id, brought up to date from the series the engine
 * created since the last look.  Series are never removed, so a township
 * once flagged stays flagged and a look only reads the new series: the
 * first one after a start reads them all (about 10 ms a million), later
 * ones as many as were created meanwhile.
 */
#ifndef TALLYD_TOWNLIST_H
#define TALLYD_TOWNLIST_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

typedef struct townlist {
    uint8_t *has;  /* by township id: 1 when it has a series */
    uint32_t cap;  /* entries of has */
    uint32_t seen; /* the engine's series 0..seen-1 are flagged */
    bool oom;      /* a township's flag could not be kept */
} townlist_t;

/* Flag the townships of the series e created since the last call.
 * Returns 0, or TALLY_ENOMEM (the list may then lack townships; a later
 * call tries again from where this one failed). */
int townlist_update(townlist_t *t, const engine_t *e);

/* True when township id town had a series at the last update. */
static inline bool townlist_has(const townlist_t *t, uint32_t town)
{
    return town < t->cap && t->has[town] != 0;
}

/* Free the flags; t may be used again (it starts empty). */
void townlist_free(townlist_t *t);

#endif
