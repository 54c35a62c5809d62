/* pending.h - submissions journaled but not yet applied.
 *
 * Ingest applies a submission to the tallies only once its journal record
 * is durable, so that no figure is ever shown, published or checkpointed
 * that a crash could take back.  Between the two it waits here, in journal
 * order, with its samples already resolved to ids: a FIFO that ingest
 * pushes at the tail when it journals a submission and pops at the head
 * when the journal reports it durable.
 *
 * Storage is reused: the entries and their samples live in two arrays
 * that grow to the largest backlog seen and are never shrunk, so the hot
 * path allocates nothing once warm.
 */
#ifndef TALLYD_PENDING_H
#define TALLYD_PENDING_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "proto.h"

typedef struct pending_entry {
    uint64_t pos; /* journal position */
    uint64_t seq;
    int64_t time_ms;
    int64_t mass; /* engine_pend()'s result, for engine_unpend() */
    uint32_t town;
    uint32_t nsamples;
    uint32_t nnew;                    /* engine_pend_new() at the time */
    uint32_t first;                   /* index of its first sample in the store */
    uint8_t key[PROTO_CLIENT_ID_LEN]; /* its de-duplication key */
} pending_entry_t;

typedef struct pending {
    pending_entry_t *v;
    size_t head, tail, cap; /* entries [head, tail) */
    engine_sample_t *smp;
    size_t shead, stail, scap; /* samples [shead, stail) */
} pending_t;

/* An empty FIFO (nothing allocated yet). */
void pending_init(pending_t *p);
void pending_free(pending_t *p);

/* Append e with a copy of its e->nsamples samples (e->first is set here).
 * Returns 0 or TALLY_ENOMEM (nothing appended). */
int pending_push(pending_t *p, const pending_entry_t *e, const engine_sample_t *samples);

/* The oldest entry, or NULL when there is none; its samples. */
static inline const pending_entry_t *pending_head(const pending_t *p)
{
    return p->head < p->tail ? &p->v[p->head] : NULL;
}
static inline const engine_sample_t *pending_samples(const pending_t *p, const pending_entry_t *e)
{
    return &p->smp[e->first];
}

/* Drop the oldest entry. */
void pending_pop(pending_t *p);

/* Number of entries. */
static inline size_t pending_count(const pending_t *p)
{
    return p->tail - p->head;
}

/* Call fn for every entry, oldest first. */
void pending_foreach(const pending_t *p, void (*fn)(const pending_entry_t *e, void *ctx),
                     void *ctx);

#endif
