/* dedup.h - the de-duplication table: which (client id, sequence) pairs
 * have been applied, so a resent submission is counted once.
 *
 * Per client id the table keeps the highest applied sequence H and a bitmap
 * of the DEDUP_WINDOW sequences H-1023 .. H (the protocol's in-flight rule,
 * PROTOCOL.md "Idempotence").  The table holds at most max_clients ids.
 * An id is forgotten only when it has been idle for longer than the
 * horizon the daemon announces (dedup_expire): a client idle that long no
 * longer resends under it (PROTOCOL.md), so forgetting it counts nothing
 * twice.
 */
#ifndef TALLYD_DEDUP_H
#define TALLYD_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define DEDUP_WINDOW 1024
#define DEDUP_WORDS  (DEDUP_WINDOW / 64)

typedef struct dedup_entry {
    uint8_t id[PROTO_CLIENT_ID_LEN];
    uint64_t high;              /* highest applied seq; 0 = empty slot */
    int64_t last_ms;            /* when the client last submitted (dedup_touch) */
    uint64_t bits[DEDUP_WORDS]; /* bit (high - seq) set when seq applied */
} dedup_entry_t;

typedef struct dedup {
    dedup_entry_t *slots;
    uint32_t mask;    /* capacity - 1 (power of two) */
    uint32_t count;   /* clients tracked */
    uint32_t max;     /* client limit */
    uint64_t seed[2]; /* hash key, so chosen ids cannot force collisions */
} dedup_t;

/* Initialise an empty table that will track at most max_clients ids.
 * Returns 0, TALLY_EINVAL (max_clients 0) or TALLY_ENOMEM. */
int dedup_init(dedup_t *d, uint32_t max_clients);

/* Free the table's storage; d may be re-initialised afterwards. */
void dedup_free(dedup_t *d);

/* Look up (id, seq) without changing anything.  Returns 0 (never applied:
 * apply it, then dedup_mark()), TALLY_EEXIST (applied before: acknowledge
 * it as a duplicate, do not apply it again), TALLY_ESTALESEQ (seq below the
 * window: the client broke the in-flight rule) or TALLY_ECLIENTLIMIT (a new
 * id and the table is full).  seq must be >= 1. */
int dedup_check(const dedup_t *d, const uint8_t id[PROTO_CLIENT_ID_LEN], uint64_t seq);

/* Record (id, seq) as applied.  Call only after dedup_check() returned
 * 0.  Returns 0, TALLY_ECLIENTLIMIT or TALLY_ENOMEM. */
int dedup_mark(dedup_t *d, const uint8_t id[PROTO_CLIENT_ID_LEN], uint64_t seq);

/* Number of client ids tracked. */
static inline uint32_t dedup_count(const dedup_t *d)
{
    return d->count;
}

/* The client id has just submitted (applied or duplicate) at now_ms:
 * it is not idle.  Nothing happens for an id the table does not hold. */
void dedup_touch(dedup_t *d, const uint8_t id[PROTO_CLIENT_ID_LEN], int64_t now_ms);

/* Forget the ids whose last submission was before before_ms, looking at
 * no more than max_slots slots from *cursor on (a sweep in steps, so a
 * large table never stalls the caller; *cursor wraps and is the caller's
 * to keep, 0 at first).  Returns how many ids were forgotten. */
uint32_t dedup_expire(dedup_t *d, int64_t before_ms, uint32_t *cursor, uint32_t max_slots);

/* Track at most max client ids from now on (a reload); ids tracked
 * already stay. */
static inline void dedup_set_max(dedup_t *d, uint32_t max)
{
    d->max = max;
}

/* Call fn for every tracked client (for snapshots of the state).  The
 * entry is owned by the table and valid only during the call. */
void dedup_foreach(const dedup_t *d, void (*fn)(const dedup_entry_t *e, void *ctx), void *ctx);

/* Insert or replace a whole entry (for loading a snapshot).  Returns 0,
 * TALLY_ECLIENTLIMIT or TALLY_ENOMEM. */
int dedup_restore(dedup_t *d, const dedup_entry_t *e);

/* Bytes of memory the table holds. */
size_t dedup_memory(const dedup_t *d);

#endif
