/* ackq.c - a growable ring of pending acknowledgements. */
#include "ackq.h"

#include <stdlib.h>
#include <string.h>

#include "tally_error.h"

void ackq_init(ackq_t *q)
{
    memset(q, 0, sizeof(*q));
}

void ackq_free(ackq_t *q)
{
    free(q->ring);
    memset(q, 0, sizeof(*q));
}

static int grow(ackq_t *q)
{
    uint32_t ncap = q->cap ? q->cap * 2 : 256;
    ackq_entry_t *n = malloc((size_t)ncap * sizeof(*n));
    if (!n)
        return TALLY_ENOMEM;
    for (uint32_t i = 0; i < q->count; i++)
        n[i] = q->ring[(q->head + i) & (q->cap - 1)];
    free(q->ring);
    q->ring = n;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

int ackq_push(ackq_t *q, uint64_t pos, uint64_t seq, uint8_t status, const void *rid,
              size_t rid_len)
{
    if (rid_len == 0 || rid_len > sizeof(q->ring[0].rid))
        return TALLY_EINVAL;
    if (q->count == q->cap && grow(q) != 0)
        return TALLY_ENOMEM;
    ackq_entry_t *e = &q->ring[(q->head + q->count) & (q->cap - 1)];
    e->pos = pos;
    e->seq = seq;
    e->status = status;
    e->rid_len = (uint8_t)rid_len;
    memcpy(e->rid, rid, rid_len);
    q->count++;
    return 0;
}

const ackq_entry_t *ackq_ready(const ackq_t *q, uint64_t upto)
{
    if (q->count == 0)
        return NULL;
    const ackq_entry_t *e = &q->ring[q->head];
    return e->pos <= upto ? e : NULL;
}

void ackq_pop(ackq_t *q)
{
    if (q->count == 0)
        return;
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
}
