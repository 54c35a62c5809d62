/* peers.c - connections of a socket, from its monitor. */
#include "peers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "clock.h"
#include "tally_error.h"

#define EVENTS                                                                                     \
    (ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED | ZMQ_EVENT_CLOSE_FAILED)

static void fd_set_bit(peers_t *p, uint32_t fd)
{
    size_t w = fd / 64;
    if (w >= p->nwords) {
        size_t n = p->nwords ? p->nwords : 16;
        while (n <= w)
            n *= 2;
        uint64_t *v = realloc(p->fds, n * sizeof(*v));
        if (v == NULL) {
            p->count++; /* counted, not remembered: the count can only be high */
            return;
        }
        memset(v + p->nwords, 0, (n - p->nwords) * sizeof(*v));
        p->fds = v;
        p->nwords = n;
    }
    uint64_t bit = (uint64_t)1 << (fd % 64);
    if (!(p->fds[w] & bit)) {
        p->fds[w] |= bit;
        p->count++;
    }
}

static void fd_clear_bit(peers_t *p, uint32_t fd)
{
    size_t w = fd / 64;
    uint64_t bit = (uint64_t)1 << (fd % 64);
    if (w < p->nwords && (p->fds[w] & bit)) {
        p->fds[w] &= ~bit;
        p->count--;
    }
}

/* One event: a 6-byte frame (16-bit event, 32-bit value, host order),
 * then the endpoint. */
static void on_event(peers_t *p, const zmq_msg_t *first)
{
    if (zmq_msg_size(first) < 6)
        return;
    uint16_t event;
    uint32_t value;
    memcpy(&event, zmq_msg_data((zmq_msg_t *)first), 2);
    memcpy(&value, (const char *)zmq_msg_data((zmq_msg_t *)first) + 2, 4);
    switch (event) {
    case ZMQ_EVENT_ACCEPTED:
        p->accepted_total++;
        fd_set_bit(p, value);
        break;
    case ZMQ_EVENT_DISCONNECTED:
        fd_clear_bit(p, value);
        break;
    case ZMQ_EVENT_CLOSED:
    case ZMQ_EVENT_CLOSE_FAILED:
        p->closed_seen = true;
        break;
    default:
        break;
    }
}

static void on_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    (void)zs;
    (void)nparts;
    on_event(ctx, &parts[0]);
}

/* Read one whole event without waiting (or up to wait_ms); false when
 * there is none. */
static bool read_event(peers_t *p, long wait_ms)
{
    if (wait_ms > 0) {
        zmq_pollitem_t it = {p->pair, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, wait_ms) <= 0)
            return false;
    }
    zmq_msg_t first;
    zmq_msg_init(&first);
    if (zmq_msg_recv(&first, p->pair, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&first);
        return false;
    }
    bool more = zmq_msg_more(&first);
    while (more) {
        zmq_msg_t rest;
        zmq_msg_init(&rest);
        if (zmq_msg_recv(&rest, p->pair, 0) < 0) {
            zmq_msg_close(&rest);
            break;
        }
        more = zmq_msg_more(&rest);
        zmq_msg_close(&rest);
    }
    on_event(p, &first);
    zmq_msg_close(&first);
    return true;
}

int peers_init(peers_t *p, void *zctx, void *sock, const char *name, uv_loop_t *loop)
{
    memset(p, 0, sizeof(*p));
    p->sock = sock;
    char ep[128];
    snprintf(ep, sizeof(ep), "inproc://%s", name);
    if (zmq_socket_monitor(sock, ep, EVENTS) != 0)
        return TALLY_ESYS;
    p->pair = zmq_socket(zctx, ZMQ_PAIR);
    if (p->pair == NULL || zmq_connect(p->pair, ep) != 0 ||
        zsock_init(&p->zs, loop, p->pair, on_msg, p) != 0) {
        zmq_socket_monitor(sock, NULL, 0);
        if (p->pair != NULL)
            zmq_close(p->pair);
        p->pair = NULL;
        return TALLY_ESYS;
    }
    p->zs_open = true;
    return 0;
}

void peers_drain(peers_t *p)
{
    if (!p->zs_open)
        return;
    while (read_event(p, 0))
        ;
    zsock_kick(&p->zs);
}

void peers_forget_all(peers_t *p)
{
    if (p->fds != NULL)
        memset(p->fds, 0, p->nwords * sizeof(*p->fds));
    p->count = 0;
}

bool peers_wait_listener_closed(peers_t *p, int timeout_ms)
{
    if (!p->zs_open)
        return false;
    p->closed_seen = false;
    int64_t deadline = clock_mono_ms() + timeout_ms;
    while (!p->closed_seen) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0 || !read_event(p, (long)left))
            break;
    }
    zsock_kick(&p->zs);
    return p->closed_seen;
}

static void on_zs_closed(zsock_t *zs)
{
    peers_t *p = (peers_t *)((char *)zs - offsetof(peers_t, zs));
    free(p->fds);
    p->fds = NULL;
    p->nwords = 0;
    if (p->on_closed != NULL)
        p->on_closed(p);
}

void peers_close(peers_t *p, void (*cb)(peers_t *p))
{
    p->on_closed = cb;
    zmq_socket_monitor(p->sock, NULL, 0);
    if (p->zs_open) {
        p->zs_open = false;
        zsock_close(&p->zs, on_zs_closed);
    } else {
        on_zs_closed(&p->zs);
    }
    if (p->pair != NULL)
        zmq_close(p->pair);
    p->pair = NULL;
}
