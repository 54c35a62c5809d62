/* intern.h - interning of names (townships, metrics) to dense ids.
 *
 * A name of 1..INTERN_NAME_MAX bytes gets the id 1, 2, 3 ... in the order
 * names are first added; the same name always gets the same id.  Id 0 is
 * never given out: the engine reads township id 0 as "the county".
 *
 * The table holds at most `capacity` names, fixed at intern_init(); it
 * starts small and grows (amortised doubling) up to that bound.  Lookups
 * allocate nothing.  Names are copied into an arena of fixed-size chunks,
 * so a name's storage never moves: the pointer intern_name() returns stays
 * valid until intern_free().  Names are compared as bytes; validating them
 * (UTF-8, forbidden characters) is the caller's job.
 *
 * The hash is keyed with a per-table random seed, so a client that picks
 * names cannot make them collide on purpose.
 */
#ifndef TALLYD_INTERN_H
#define TALLYD_INTERN_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define INTERN_NAME_MAX     PROTO_NAME_MAX
#define INTERN_CAPACITY_MAX (1u << 24)

typedef struct intern {
    uint64_t *slots;    /* open addressing, linear probing: hash << 32 | record, or 0 */
    uint32_t mask;      /* slot count - 1 (power of two) */
    uint32_t count;     /* names held: ids 1..count */
    uint32_t capacity;  /* most names the table will hold */
    uint32_t ids_cap;   /* entries allocated in names/lens/hashes */
    const char **names; /* by id: NUL-terminated copy in the arena */
    uint8_t *lens;      /* by id */
    uint32_t *hashes;   /* by id, so growing never rehashes a name */
    uint32_t *recs;     /* by id: its record's place in the arena, plus 1 (intern.c) */
    char **chunks;      /* the arena */
    uint32_t nchunks;
    size_t chunks_cap;
    size_t chunk_used; /* bytes used in the last chunk */
    uint64_t seed;
    size_t mem;
} intern_t;

/* Initialise an empty table that will hold at most capacity names
 * (1..INTERN_CAPACITY_MAX).  Returns 0, TALLY_EINVAL (capacity out of
 * range) or TALLY_ENOMEM. */
int intern_init(intern_t *in, uint32_t capacity);

/* Free the table's storage (names included); in may be re-initialised. */
void intern_free(intern_t *in);

/* Id of the len-byte name s (need not be NUL-terminated), or
 * TALLY_ENOTFOUND when it was never added (or len is 0 or above
 * INTERN_NAME_MAX).  Never allocates. */
int intern_find(const intern_t *in, const char *s, size_t len);

/* Id of the len-byte name s, added if new.  The table copies the bytes.
 * Returns the id (> 0), TALLY_EINVAL (len 0 or above INTERN_NAME_MAX),
 * TALLY_ESERIESLIMIT (a new name and the table already holds capacity
 * names; the daemon sends it as TOO_MANY_SERIES, because without a catalog
 * every new name starts new series) or TALLY_ENOMEM. */
int intern_add(intern_t *in, const char *s, size_t len);

/* Forget the names added after the table held count names (ids count+1
 * and up), newest first, as if they had never been added: the next new
 * name gets id count+1 again.  For undoing the names a rejected request
 * brought.  Nothing happens when count >= intern_count(in).  Pointers to
 * forgotten names become invalid. */
void intern_truncate(intern_t *in, uint32_t count);

/* The name of id, NUL-terminated, owned by the table and valid until
 * intern_free(); its length in *len when len is not NULL.  NULL when id is
 * 0 or was never given out. */
const char *intern_name(const intern_t *in, uint32_t id, uint32_t *len);

/* Number of names held (the highest id given out). */
static inline uint32_t intern_count(const intern_t *in)
{
    return in->count;
}

/* Bytes of memory the table holds. */
static inline size_t intern_memory(const intern_t *in)
{
    return in->mem;
}

#endif
