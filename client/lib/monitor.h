/* monitor.h - libtally (client/lib/, private): what ZeroMQ saw of a
 * socket's connection to the daemon, read from its socket monitor, so
 * that "no answer" can say why: nothing listens there, the security
 * handshake failed (the daemon speaks CURVE and we do not, or the other
 * way round, or our key is not admitted), or it is up and silent. */
#ifndef TALLY_CLIENT_MONITOR_H
#define TALLY_CLIENT_MONITOR_H

#include <stdint.h>

typedef struct monitor {
    void *pair;            /* the PAIR end of the monitor; NULL when not open */
    int link;              /* enum tally_link */
    int64_t refused_since; /* util_mono_ms() when connections began to be
                              refused (TALLY_LINK_NO_CONNECTION); 0: they are not */
} monitor_t;

/* Start monitoring sock (of context zctx) before it connects.  Returns 0
 * or TALLY_ESYS; a failure leaves m closed and harmless, so callers may
 * go on without it (link stays TALLY_LINK_UNKNOWN). */
int monitor_open(monitor_t *m, void *zctx, void *sock);

/* Read the events waiting, without blocking, and return the link state
 * they leave (enum tally_link). */
int monitor_poll(monitor_t *m);

/* After monitor_poll: for how many milliseconds every attempt to connect
 * has been refused (nothing listens at the address); 0 when not. */
int64_t monitor_refused_ms(monitor_t *m);

/* Stop monitoring sock and close the PAIR end (before sock is closed). */
void monitor_close(monitor_t *m, void *sock);

#endif
