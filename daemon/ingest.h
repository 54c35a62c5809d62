/* ingest.h - submissions in: validate, de-duplicate, apply, acknowledge.
 *
 * For every SUBMIT the daemon sends exactly one ACK: accepted, duplicate
 * (applied before, not applied again) or rejected with the wire code, the
 * field, the sample and a sentence naming the value and the limit.
 */
#ifndef TALLYD_INGEST_H
#define TALLYD_INGEST_H

#include <stddef.h>

#include "proto.h"

struct tallyd;

/* Handle a decoded SUBMIT from the peer rid[0..rid_len).  The message's
 * string views point into the received frame, valid during the call. */
void ingest_submit(struct tallyd *d, const void *rid, size_t rid_len, const proto_submit_t *s);

/* Reject a SUBMIT that failed to decode; err says why, seq may be 0 when
 * it was not decoded (the reply is then an ERROR). */
void ingest_reject_decode(struct tallyd *d, const void *rid, size_t rid_len, uint64_t seq,
                          const proto_error_t *err);

/* Send an ACK (status, code, sample, field, message) to rid. */
void ingest_ack(struct tallyd *d, const void *rid, size_t rid_len, uint64_t seq, int status,
                int code, int sample, const char *field, const char *message);

#endif
