/* monitor.h - libtally (client/lib/, private): what ZeroMQ saw of a
 * socket's connection to the daemon, read from its socket monitor, so
 * that "no answer" can say why: nothing listens there, the network does
 * not reach it (told apart by a probe of our own, probe.h), the security
 * handshake failed (the daemon speaks CURVE and we do not, or the other
 * way round, or our key is not admitted), or it is up and silent. */
#ifndef TALLY_CLIENT_MONITOR_H
#define TALLY_CLIENT_MONITOR_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "probe.h"
#include "tally.h"

/* How long a probe may wait for the host's answer, and how soon after
 * one a connection still failing is probed again (the link may have come
 * back with no daemon yet, or the other way round). */
#define MONITOR_PROBE_TIMEOUT_MS 1000
#define MONITOR_PROBE_AGAIN_MS   1000
/* How long an attempt to connect may go unanswered (the host's SYN-ACK
 * not back: a link that drops packets, a host down, a firewall that
 * drops) before it is probed as well. */
#define MONITOR_SILENT_MS 1000

typedef struct monitor {
    void *pair;               /* the PAIR end of the monitor; NULL when not open */
    int link;                 /* enum tally_link as ZeroMQ's events leave it:
                                 TALLY_LINK_NO_CONNECTION while attempts fail */
    bool connected;           /* a connection is made (ZMQ_EVENT_CONNECTED), handshake or not */
    int64_t connecting_since; /* util_mono_ms() since when one is being attempted */
    bool failing;             /* attempts fail, or one has had no answer for MONITOR_SILENT_MS */
    int64_t failing_since;    /* util_mono_ms() of the first failed attempt; 0: none */
    int64_t refused_since;    /* since when failed attempts are known to be
                                 refusals (nothing listens); 0: they are not */
    probe_t *probe;           /* in progress, or NULL */
    int verdict;              /* the last probe's (enum probe_verdict); 0: none yet */
    int64_t probed_at;        /* util_mono_ms() of that verdict */
    char why[160];            /* with PROBE_UNREACHABLE: why (probe_verdict) */
    bool given_up;            /* ZeroMQ gave the connection up (monitor_given_up) */
    char endpoint[TALLY_ENDPOINT_MAX]; /* "": no probes */
} monitor_t;

/* Start monitoring sock (of context zctx) before it connects to endpoint
 * (normalised; kept for probes; NULL or "": the link as ZeroMQ's events
 * leave it, never probed, for a second socket to the same daemon whose
 * failures to connect the first one's probes already tell).  Returns 0
 * or TALLY_ESYS; a failure leaves m closed and harmless, so callers may
 * go on without it (link stays TALLY_LINK_UNKNOWN). */
int monitor_open(monitor_t *m, void *zctx, void *sock, const char *endpoint);

/* Read the events waiting, without blocking, follow the probe of failing
 * connections, and return the link state they leave (enum tally_link):
 * TALLY_LINK_UNREACHABLE rather than TALLY_LINK_NO_CONNECTION once a
 * probe has found that the network does not reach the address. */
int monitor_poll(monitor_t *m);

/* After monitor_poll: for how many milliseconds every attempt to connect
 * has been refused (nothing listens at the address, as a probe found);
 * 0 when not, also while attempts fail for a reason not yet known. */
int64_t monitor_refused_ms(monitor_t *m);

/* With TALLY_LINK_UNREACHABLE: a clause saying why ("the network does
 * not reach it (No route to host)"); "" otherwise. */
const char *monitor_why(const monitor_t *m);

/* After monitor_poll: whether ZeroMQ has given the connection up for
 * good.  A handshake that fails on a protocol error or on the daemon's
 * refusal of the key (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, _AUTH) ends
 * the connecting socket's session in libzmq 4.3 (session_base_t::
 * engine_error): no reconnection follows, ever, also once the daemon
 * would admit the key again.  Only the socket's owner can try again
 * (zmq_disconnect, zmq_connect), and then calls monitor_reconnected. */
bool monitor_given_up(const monitor_t *m);

/* The owner has connected sock again after monitor_given_up: clears it
 * (the link stays as it was until the new attempt tells more). */
void monitor_reconnected(monitor_t *m);

/* Stop monitoring sock and close the PAIR end (before sock is closed). */
void monitor_close(monitor_t *m, void *sock);

#endif
