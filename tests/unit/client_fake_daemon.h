/* client_fake_daemon.h - a scripted daemon for the unit tests of
 * libtally's requests and the commands built on them: a ROUTER on an
 * ipc:// socket in a temporary directory, served by a thread of the test
 * process, that hands each request that decodes to the test's answer
 * callback and answers the others as a daemon answers a type it does not
 * know (UNKNOWN_TYPE with req_id 0, PROTOCOL.md 18).  Every function is
 * static inline so that a test file that leaves one unused still builds. */
#ifndef CLIENT_FAKE_DAEMON_H
#define CLIENT_FAKE_DAEMON_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include "proto.h"
#include "tally.h"

typedef struct fake_daemon fake_daemon_t;

/* Answer q (on the daemon's thread) with fake_daemon_send and
 * fake_daemon_error, or return false to have it answered as an unknown
 * type. */
typedef bool (*fake_daemon_answer_fn)(fake_daemon_t *d, const proto_msg_t *q);

struct fake_daemon {
    char dir[64]; /* the temporary directory, removed by fake_daemon_close */
    char ep[160]; /* ipc://DIR/req.sock: the address to give libtally */
    void *ctx;    /* the test's, for its answer callback */
    void *zctx;
    pthread_t thread;
    bool started;
    volatile int stop;
    fake_daemon_answer_fn answer;
    /* the request being answered: the ROUTER and the peer's routing id */
    void *router;
    uint8_t id[256];
    size_t idlen;
};

/* Make d's directory, /tmp/tally-NAME-XXXXXX, and its ZeroMQ context.
 * Returns 0 or -1. */
static inline int fake_daemon_open(fake_daemon_t *d, const char *name)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/tally-%s-XXXXXX", name);
    if (mkdtemp(d->dir) == NULL)
        return -1;
    snprintf(d->ep, sizeof d->ep, "ipc://%s/req.sock", d->dir);
    d->zctx = zmq_ctx_new();
    return d->zctx != NULL ? 0 : -1;
}

/* Send m to the peer of the request being answered. */
static inline void fake_daemon_send(fake_daemon_t *d, const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_encode(&sb, m), 0);
    zmq_send(d->router, d->id, d->idlen, ZMQ_SNDMORE);
    zmq_send(d->router, sb.data, sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* Send ERROR code (a negative TALLY_E* code) for req_id. */
static inline void fake_daemon_error(fake_daemon_t *d, uint64_t req_id, int code, const char *field,
                                     const char *message)
{
    proto_msg_t e = {.type = PROTO_ERROR};
    e.u.error.req_id = req_id;
    e.u.error.code = (uint32_t)-code;
    e.u.error.field = proto_str(field);
    e.u.error.message = proto_str(message);
    fake_daemon_send(d, &e);
}

static inline void *fake_daemon_serve(void *arg)
{
    fake_daemon_t *d = arg;
    d->router = zmq_socket(d->zctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(d->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_bind(d->router, d->ep);
    while (!d->stop) {
        zmq_pollitem_t item = {.socket = d->router, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 30) <= 0)
            continue;
        uint8_t body[4096];
        int idlen = zmq_recv(d->router, d->id, sizeof d->id, 0);
        int len = zmq_recv(d->router, body, sizeof body, 0);
        proto_msg_t q;
        if (idlen <= 0 || len <= 0 || proto_decode(body, (size_t)len, &q, NULL, 0, NULL) != 0)
            continue;
        d->idlen = (size_t)idlen;
        if (!d->answer(d, &q))
            fake_daemon_error(d, 0, TALLY_ETYPE, "type",
                              "type: message type is not a request the daemon answers");
    }
    zmq_close(d->router);
    return NULL;
}

/* Start serving d->ep, answering requests with answer. */
static inline void fake_daemon_start(fake_daemon_t *d, fake_daemon_answer_fn answer)
{
    d->answer = answer;
    assert_int_equal(pthread_create(&d->thread, NULL, fake_daemon_serve, d), 0);
    d->started = true;
}

/* Stop serving (when started); d may be started again. */
static inline void fake_daemon_stop(fake_daemon_t *d)
{
    if (!d->started)
        return;
    d->stop = 1;
    pthread_join(d->thread, NULL);
    d->started = false;
    d->stop = 0;
}

/* Stop serving, and remove the directory.  Returns 0 or -1. */
static inline int fake_daemon_close(fake_daemon_t *d)
{
    fake_daemon_stop(d);
    zmq_ctx_term(d->zctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
