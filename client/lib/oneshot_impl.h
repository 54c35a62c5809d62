/* oneshot_impl.h - libtally (client/lib/, private to oneshot.c,
 * oneshot_conn.c and backup_fetch.c): the connection of a one-shot
 * request (a ZeroMQ context and DEALER of its own, the monitor that says
 * what became of it, the deadline) and the replies kept until an answer
 * is whole.  oneshot.c builds the requests of tally.h on it, and
 * backup_fetch.c the copy of a backup (which moves the deadline on as
 * pieces come). */
#ifndef TALLY_CLIENT_ONESHOT_IMPL_H
#define TALLY_CLIENT_ONESHOT_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include <zmq.h>

#include "monitor.h"
#include "proto.h"
#include "sub_store.h"
#include "tally.h"

#define ONESHOT_TIMEOUT 10000 /* ms, when a request's timeout_ms is <= 0 */

typedef struct oneshot {
    void *zctx;
    void *dealer;
    monitor_t mon;
    bool early; /* end the wait when the handshake fails */
    int64_t deadline;
    int refused_ms; /* the request's refused_ms: 0, wait until the deadline */
    zmq_msg_t cur;  /* the last reply: o->msg's string views point into it */
    proto_msg_t msg;
} oneshot_t;

/* Connect to server with req's keys and rules (early: end the wait at
 * once when the handshake fails).  Returns 0, TALLY_EINVAL (a bad
 * address), TALLY_ESYS, TALLY_ENOMEM or curve_load's codes, with a
 * sentence in req's errbuf. */
int oneshot_open(const char *server, tally_request_t *req, bool early, oneshot_t **out);

/* Close o, leaving in req->link (req may be NULL) what the connection
 * showed. */
void oneshot_close(oneshot_t *o, tally_request_t *req);

/* Encode m and send it, waiting for room until the deadline.  0,
 * TALLY_ETIMEDOUT, TALLY_ECLOSED (the handshake failed), TALLY_ESYS, or
 * proto_encode's TALLY_EINVAL and TALLY_ENOMEM. */
int oneshot_send(oneshot_t *o, const proto_msg_t *m);

/* The next reply that decodes, into o->msg (views valid until the next
 * call).  0, TALLY_ETIMEDOUT, TALLY_ECLOSED or TALLY_ESYS. */
int oneshot_recv(oneshot_t *o);

/* The daemon's ERROR m as a code, its message into req's errbuf. */
int oneshot_wire_error(const proto_msg_t *m, tally_request_t *req);

/* Why a request ended with rc without its answer, into req's errbuf. */
void oneshot_failed(oneshot_t *o, tally_request_t *req, int rc);

/* Replies kept until an answer is whole (the callbacks run only for a
 * complete one): their bytes, each after its length, copied one after
 * another into chunks of KEPT_CHUNK bytes, and decoded again when their
 * tallies are handed over.  A kept zmq_msg_t would cost its 64 bytes and
 * ZeroMQ's allocation of the body besides the body (about 130 bytes more
 * a reply), a copy of each tally as a sub_entry_t several times the
 * body. */
#define KEPT_CHUNK (1u << 20)

typedef struct kept {
    uint8_t **chunks;
    size_t nchunks, chunks_cap;
    size_t used, last;  /* bytes used in the last chunk, and its length */
    const uint8_t **at; /* by reply number: its length (uint32_t), then its bytes */
    size_t n, cap;
} kept_t;

/* Keep a copy of o's current reply as number k->n.  Returns 0 or
 * TALLY_ENOMEM. */
int oneshot_kept_take(kept_t *k, oneshot_t *o);

/* Keep a copy of the size bytes at data as number k->n.  Returns 0 or
 * TALLY_ENOMEM. */
int oneshot_kept_put(kept_t *k, const void *data, size_t size);

/* Forget the kept replies. */
void oneshot_kept_clear(kept_t *k);

/* Forget the kept replies and free everything; k is empty again. */
void oneshot_kept_free(kept_t *k);

/* Decode kept reply i (a SNAPSHOT_ITEM or a PERIOD item, as it was when
 * it came) into o->msg again and hand its tally to cb through *e (one
 * entry for them all, grown as needed; free it with free()).  Returns 0,
 * TALLY_EMALFORMED or TALLY_ENOMEM. */
int oneshot_kept_deliver(oneshot_t *o, const kept_t *k, size_t i, sub_entry_t **e,
                         tally_tally_cb cb, void *ctx);

#endif
