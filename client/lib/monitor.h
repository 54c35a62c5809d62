/* monitor.h - libtally (client/lib/, private): what ZeroMQ saw of a
 * socket's connection to the daemon, read from its socket monitor, so
 * that "no answer" can say why: nothing listens there, the security
 * handshake failed (the daemon speaks CURVE and we do not, or the other
 * way round, or our key is not admitted), or it is up and silent. */
#ifndef TALLY_CLIENT_MONITOR_H
#define TALLY_CLIENT_MONITOR_H

typedef struct monitor {
    void *pair; /* the PAIR end of the monitor; NULL when not open */
    int link;   /* enum tally_link */
} monitor_t;

/* Start monitoring sock (of context zctx) before it connects.  Returns 0
 * or TALLY_ESYS; a failure leaves m closed and harmless, so callers may
 * go on without it (link stays TALLY_LINK_UNKNOWN). */
int monitor_open(monitor_t *m, void *zctx, void *sock);

/* Read the events waiting, without blocking, and return the link state
 * they leave (enum tally_link). */
int monitor_poll(monitor_t *m);

/* Stop monitoring sock and close the PAIR end (before sock is closed). */
void monitor_close(monitor_t *m, void *sock);

#endif
