/* ingest.h - submissions in: validate, de-duplicate, apply, acknowledge.
 *
 * For every SUBMIT the daemon sends exactly one ACK: accepted, duplicate
 * (applied before, not applied again) or rejected with the wire code, the
 * field, the sample and a sentence naming the value and the limit.
 */
#ifndef TALLYD_INGEST_H
#define TALLYD_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct tallyd;
struct keyring_identity;

/* Handle a decoded SUBMIT from the peer rid[0..rid_len).  body[0..len) is
 * the frame it was decoded from (journaled as it is); the message's string
 * views point into it, valid during the call.  who is the identity the
 * connection authenticated as (keys.h; not owned, valid during the call),
 * or NULL in a daemon without CURVE.  In a secured daemon a submission is
 * accepted only when who is a township key of exactly s->township; any
 * other is rejected FORBIDDEN before de-duplication (PROTOCOL.md 11.2).
 * The ACK of an accepted submission waits for its journal record to be
 * durable.
 *
 * De-duplication key: without CURVE the client id itself.  With CURVE the
 * first 16 bytes of SHA-256("tally-dedup-1", township, client id), so that
 * one identity cannot use another's client id to make the daemon answer
 * the other's real submissions DUPLICATE (PROTOCOL.md 19); since the
 * township in an accepted SUBMIT is its key's township, journal replay
 * derives the same key from the record alone.  A secured daemon also
 * answers DUPLICATE for a (client id, seq) recorded under the plain client
 * id, so turning CURVE on never applies a resend twice. */
void ingest_submit(struct tallyd *d, const void *rid, size_t rid_len, const void *body, size_t len,
                   const proto_submit_t *s, const struct keyring_identity *who);

/* Reject the SUBMIT with seq (>= 1) from a connection whose User-Id
 * (may be NULL) the keyring no longer admits, a key revoked by a reload:
 * ACK FORBIDDEN, counted and logged. */
void ingest_forbid_unknown(struct tallyd *d, const void *rid, size_t rid_len, uint64_t seq,
                           const char *user_id);

/* The journal reports everything up to upto durable: release the ACKs
 * waiting for it. */
void ingest_on_durable(struct tallyd *d, uint64_t upto);

/* Apply one journal record (a SUBMIT body accepted earlier) at start-up,
 * without the catalog and time checks of live ingest; records already
 * covered by the checkpoint are recognised by de-duplication and skipped.
 * Returns 0, or a negative code when the record cannot be applied (it is
 * logged). */
int ingest_replay(struct tallyd *d, const void *body, size_t len, uint64_t pos);

/* Reject a SUBMIT that failed to decode; err says why, seq may be 0 when
 * it was not decoded (the reply is then an ERROR). */
void ingest_reject_decode(struct tallyd *d, const void *rid, size_t rid_len, uint64_t seq,
                          const proto_error_t *err);

/* Send an ACK (status, code, sample, field, message) to rid. */
void ingest_ack(struct tallyd *d, const void *rid, size_t rid_len, uint64_t seq, int status,
                int code, int sample, const char *field, const char *message);

#endif
