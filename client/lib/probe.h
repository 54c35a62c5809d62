/* probe.h - libtally (client/lib/, private): why connections to the
 * daemon's address fail.  ZeroMQ's socket monitor says only that an
 * attempt failed and will be retried: nothing listening there (the host
 * refused), a network that does not reach the host and a name that does
 * not resolve all look alike.  A probe makes one connection of its own to
 * the same address and says which, so that a client gives up early only
 * where no daemon listens, and waits for a weak link to come back.
 *
 * The probe runs on a thread of its own, since a host name is looked up
 * with getaddrinfo(), which blocks; the connection itself is made without
 * blocking and ends at the timeout or when the probe is stopped. */
#ifndef TALLY_CLIENT_PROBE_H
#define TALLY_CLIENT_PROBE_H

#include <stddef.h>

enum probe_verdict {
    PROBE_RUNNING = 0,
    PROBE_ACCEPTED,    /* something accepts connections there now */
    PROBE_REFUSED,     /* nothing listens there: the host refused, or (ipc://)
                          no socket accepts at the path */
    PROBE_UNREACHABLE, /* the network does not reach the host, it did not answer
                          in time, or its name could not be looked up now */
    PROBE_NO_NAME,     /* the name server says no such host name: an address
                          mistyped, which waiting will not mend */
};

typedef struct probe probe_t;

/* Start probing endpoint (a normalised tcp:// or ipc:// address) for at
 * most timeout_ms.  NULL when it cannot be started: another transport,
 * out of memory, no thread to be had. */
probe_t *probe_start(const char *endpoint, int timeout_ms);

/* The verdict so far (enum probe_verdict).  With PROBE_UNREACHABLE and
 * PROBE_NO_NAME, why
 * (cap bytes, may be NULL) receives a clause saying so, to follow "cannot
 * reach tallyd at ADDRESS: ": "the network does not reach it (No route to
 * host)", "its name does not resolve (Name or service not known)", "its
 * host does not answer connections (...)". */
int probe_verdict(probe_t *p, char *why, size_t cap);

/* End the probe and free it (NULL is ignored).  A connection in progress
 * is abandoned at once; a name lookup cannot be interrupted, so a probe
 * stopped during one finishes on its own thread, which then frees it. */
void probe_stop(probe_t *p);

/* The verdict of a connection's outcome: err is 0 (connected) or the
 * errno of connect() or of SO_ERROR; tcp says which transport (an ipc://
 * path that is missing or not a socket is a refusal, never the network).
 * Exposed for the unit test, which cannot make every network failure. */
int probe_classify(int err, int tcp);

#endif
