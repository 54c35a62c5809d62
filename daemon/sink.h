/* sink.h - where a part of the daemon sends a message without knowing the
 * socket behind it.
 *
 * tallyd_start.c hands each part the sinks it may use when it creates the part:
 * the request socket's replies (head = the peer's routing id) and the
 * publish socket's messages (head = the topic).  Unit tests hand the same
 * parts sinks that record, refuse or decode what they are given, so no
 * part needs a socket to be tested.
 */
#ifndef TALLYD_SINK_H
#define TALLYD_SINK_H

#include <stddef.h>

/* Send one message of nparts parts, part i being lens[i] bytes at bufs[i],
 * copied before the call returns.  Returns 0 (sent), TALLY_EAGAIN (nothing
 * sent: the peer's queue is full, retry later), TALLY_ENOTFOUND (no peer
 * with that routing id), or another negative TALLY_E* code (nothing sent). */
typedef int (*sink_fn)(void *ctx, const void *const *bufs, const size_t *lens, int nparts);

typedef struct sink {
    sink_fn send;
    void *ctx;
} sink_t;

/* Send head then body as one two-part message through s.  Returns what
 * s->send returns. */
static inline int sink_send(const sink_t *s, const void *head, size_t head_len, const void *body,
                            size_t body_len)
{
    const void *bufs[2] = {head, body};
    size_t lens[2] = {head_len, body_len};
    return s->send(s->ctx, bufs, lens, 2);
}

#endif
