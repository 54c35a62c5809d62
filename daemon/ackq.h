/* ackq.h - acknowledgements waiting for the journal.
 *
 * An accepted submission's ACK may leave only once its journal record is
 * durable; a duplicate's ACK only once everything journaled before it is
 * (its original may still be on its way to the disk).  The queue holds
 * them in journal order and releases a prefix when the journal reports a
 * durable position.
 */
#ifndef TALLYD_ACKQ_H
#define TALLYD_ACKQ_H

#include <stddef.h>
#include <stdint.h>

typedef struct ackq_entry {
    uint64_t pos; /* journal position that must be durable first */
    uint64_t seq; /* the submission's seq */
    uint8_t status;
    uint8_t rid_len;
    uint8_t rid[255]; /* ZeroMQ routing ids are 1..255 bytes */
} ackq_entry_t;

typedef struct ackq {
    ackq_entry_t *ring;
    uint32_t cap; /* power of two */
    uint32_t head, count;
} ackq_t;

/* Initialise an empty queue (no allocation yet). */
void ackq_init(ackq_t *q);

/* Free the queue's storage. */
void ackq_free(ackq_t *q);

/* Queue an ACK.  rid_len must be 1..255; pos must not be below the pos of
 * the entry queued before.  Returns 0 or TALLY_ENOMEM. */
int ackq_push(ackq_t *q, uint64_t pos, uint64_t seq, uint8_t status, const void *rid,
              size_t rid_len);

/* Oldest entry whose pos <= upto, or NULL; ackq_pop() removes it. */
const ackq_entry_t *ackq_ready(const ackq_t *q, uint64_t upto);
void ackq_pop(ackq_t *q);

static inline uint32_t ackq_count(const ackq_t *q)
{
    return q->count;
}

#endif
