/* monitor.c - libtally (client/lib/): a socket's connection as ZeroMQ's
 * socket monitor reports it (see monitor.h). */
#include "monitor.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "tally.h"
#include "util.h"

#define EVENTS                                                                                     \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED |                    \
     ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |                        \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

int monitor_open(monitor_t *m, void *zctx, void *sock, const char *endpoint)
{
    memset(m, 0, sizeof *m);
    m->link = TALLY_LINK_UNKNOWN;
    m->connecting_since = util_mono_ms();
    snprintf(m->endpoint, sizeof m->endpoint, "%s", endpoint != NULL ? endpoint : "");
    /* inproc names are per context; the socket's address makes it unique
     * among a context's sockets. */
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://tally-monitor-%p", sock);
    if (zmq_socket_monitor(sock, ep, EVENTS) < 0)
        return TALLY_ESYS;
    m->pair = zmq_socket(zctx, ZMQ_PAIR);
    int zero = 0;
    if (m->pair == NULL || zmq_setsockopt(m->pair, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_connect(m->pair, ep) < 0) {
        monitor_close(m, sock);
        return TALLY_ESYS;
    }
    return 0;
}

static int next_link(int link, uint16_t event, uint32_t value)
{
    bool refused = link == TALLY_LINK_MECHANISM || link == TALLY_LINK_HANDSHAKE ||
                   link == TALLY_LINK_KEY_REFUSED;
    switch (event) {
    case ZMQ_EVENT_CONNECT_RETRIED:
        /* A handshake that failed says more than the reconnection attempt
         * after it, which a busy daemon may not take at once. */
        return refused ? link : TALLY_LINK_NO_CONNECTION;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        return TALLY_LINK_UP;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH ? TALLY_LINK_MECHANISM
                                                                   : TALLY_LINK_HANDSHAKE;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        /* Over ipc:// the daemon often closes on a mechanism mismatch
         * before we read its greeting: the same mistake, seen less well. */
        return link == TALLY_LINK_MECHANISM ? link : TALLY_LINK_HANDSHAKE;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        return TALLY_LINK_KEY_REFUSED;
    case ZMQ_EVENT_DISCONNECTED:
        return link == TALLY_LINK_UP ? TALLY_LINK_UNKNOWN : link;
    default:
        return link;
    }
}

/* Attempts to connect are failing, or one has had no answer for
 * MONITOR_SILENT_MS: probe why, again every MONITOR_PROBE_AGAIN_MS while
 * that goes on.  Refusals are timed from the first failure when the
 * first probe finds them, else from the probe that does; an attempt
 * that has had no answer is never taken for a refusal (ZeroMQ's own
 * attempt says so when it is one). */
static void follow_failures(monitor_t *m)
{
    int64_t now = util_mono_ms();
    /* Without the monitor's events nothing is known, and nothing probed. */
    bool silent = m->pair != NULL && m->link == TALLY_LINK_UNKNOWN && !m->connected &&
                  now - m->connecting_since >= MONITOR_SILENT_MS;
    /* Without an endpoint, nothing to probe: the link says what ZeroMQ's
     * events say. */
    m->failing = m->endpoint[0] != '\0' && (m->link == TALLY_LINK_NO_CONNECTION || silent);
    if (!m->failing) {
        probe_stop(m->probe);
        m->probe = NULL;
        m->failing_since = m->refused_since = m->probed_at = 0;
        m->verdict = 0;
        return;
    }
    if (m->failing_since == 0)
        m->failing_since = now;
    if (m->probe == NULL && (m->verdict == 0 || now - m->probed_at >= MONITOR_PROBE_AGAIN_MS)) {
        m->probe = probe_start(m->endpoint, MONITOR_PROBE_TIMEOUT_MS);
        if (m->probe == NULL) {
            /* No probe to be had: take a failure for a refusal, as
             * ZeroMQ's events alone would have to. */
            if (m->refused_since == 0 && !silent)
                m->refused_since = m->failing_since;
            m->verdict = PROBE_REFUSED;
            m->probed_at = now;
            return;
        }
    }
    if (m->probe == NULL)
        return;
    char why[sizeof m->why];
    int v = probe_verdict(m->probe, why, sizeof why);
    if (v == PROBE_RUNNING)
        return; /* the last verdict and its why stand meanwhile */
    memcpy(m->why, why, sizeof why);
    probe_stop(m->probe);
    m->probe = NULL;
    /* A name the name server does not know ends the wait as early as a
     * refusal: an address mistyped, which waiting will not mend. */
    bool final = v == PROBE_REFUSED || v == PROBE_NO_NAME;
    if (final && m->refused_since == 0 && !silent)
        m->refused_since = m->verdict == 0 ? m->failing_since : now;
    else if (!final)
        m->refused_since = 0; /* something listens now, or the network is in the way */
    m->verdict = v;
    m->probed_at = now;
}

/* Whether the last verdict is one the link reports as unreachable. */
static bool said(const monitor_t *m)
{
    return m->verdict == PROBE_UNREACHABLE || m->verdict == PROBE_NO_NAME;
}

/* Whether a connection (TCP or ipc, before any handshake) is made, and
 * since when one is being attempted. */
static void follow_connection(monitor_t *m, uint16_t event)
{
    if (event == ZMQ_EVENT_CONNECTED) {
        m->connected = true;
    } else if (event == ZMQ_EVENT_DISCONNECTED || event == ZMQ_EVENT_CONNECT_RETRIED) {
        if (m->connected || event == ZMQ_EVENT_DISCONNECTED)
            m->connecting_since = util_mono_ms();
        m->connected = false;
    }
}

int monitor_poll(monitor_t *m)
{
    while (m->pair != NULL) {
        zmq_msg_t a, b;
        zmq_msg_init(&a);
        zmq_msg_init(&b);
        int got = zmq_msg_recv(&a, m->pair, ZMQ_DONTWAIT) >= 0;
        if (got && zmq_msg_more(&a))
            zmq_msg_recv(&b, m->pair, 0); /* the endpoint: one per socket here */
        if (got && zmq_msg_size(&a) >= 6) {
            uint16_t event;
            uint32_t value;
            memcpy(&event, zmq_msg_data(&a), 2);
            memcpy(&value, (const char *)zmq_msg_data(&a) + 2, 4);
            m->link = next_link(m->link, event, value);
            follow_connection(m, event);
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
                m->given_up = true;
        }
        zmq_msg_close(&a);
        zmq_msg_close(&b);
        if (!got)
            break;
    }
    follow_failures(m);
    return m->failing && said(m) ? TALLY_LINK_UNREACHABLE : m->link;
}

int64_t monitor_refused_ms(monitor_t *m)
{
    monitor_poll(m);
    return m->refused_since != 0 ? util_mono_ms() - m->refused_since : 0;
}

bool monitor_given_up(const monitor_t *m)
{
    return m->given_up;
}

void monitor_reconnected(monitor_t *m)
{
    m->given_up = false;
    m->connected = false;
    m->connecting_since = util_mono_ms();
}

const char *monitor_why(const monitor_t *m)
{
    return m->failing && said(m) ? m->why : "";
}

void monitor_close(monitor_t *m, void *sock)
{
    probe_stop(m->probe);
    m->probe = NULL;
    if (m->pair == NULL)
        return;
    if (sock != NULL)
        zmq_socket_monitor(sock, NULL, 0);
    zmq_close(m->pair);
    m->pair = NULL;
}
