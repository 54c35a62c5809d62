/* Fixture and helpers shared by the zsock unit tests (test_zsock.c,
 * test_zsock_send.c): real ZeroMQ sockets on a real libuv loop under a
 * watchdog.  Functions are static inline so that a file which does not
 * use one of them still compiles under -Werror. */
#ifndef ZSOCK_TEST_UTIL_H
#define ZSOCK_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <unistd.h>

#include "zsock.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define MAX_SOCKS   8
#define WATCHDOG_MS 10000

/* Per-test fixture, on the heap so that a failed test (cmocka longjmps out
 * of it) leaves nothing on a dead stack frame that the loop still uses. */
typedef struct fx {
    void *zctx;
    uv_loop_t loop;
    uv_timer_t watchdog;
    bool timed_out;
    char dir[64];
    void *socks[MAX_SOCKS];
    void *scratch; /* the test's own state, freed after the loop is closed */
} fx_t;

static inline void on_watchdog(uv_timer_t *t)
{
    fx_t *f = t->data;
    f->timed_out = true;
    uv_stop(t->loop);
}

static inline int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->zctx = zmq_ctx_new();
    if (f->zctx == NULL || uv_loop_init(&f->loop) != 0)
        return -1;
    uv_timer_init(&f->loop, &f->watchdog);
    f->watchdog.data = f;
    uv_timer_start(&f->watchdog, on_watchdog, WATCHDOG_MS, 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_zsock.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    *state = f;
    return 0;
}

static inline void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* ZeroMQ leaves the file of a bound ipc:// endpoint behind. */
static inline void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[128];
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path))
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Also cleans up after a failed test: whatever handle or socket is still
 * open gets closed, so zmq_ctx_term cannot block. */
static inline int teardown(void **state)
{
    fx_t *f = *state;
    uv_walk(&f->loop, close_any, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    for (int i = 0; i < MAX_SOCKS; i++)
        if (f->socks[i] != NULL)
            zmq_close(f->socks[i]);
    zmq_ctx_term(f->zctx);
    remove_dir(f->dir);
    free(f->scratch);
    free(f);
    return rc == 0 ? 0 : -1;
}

static inline void *fx_alloc(fx_t *f, size_t size)
{
    assert_null(f->scratch);
    f->scratch = calloc(1, size);
    assert_non_null(f->scratch);
    return f->scratch;
}

static inline void set_int(void *s, int opt, int value)
{
    assert_int_equal(zmq_setsockopt(s, opt, &value, sizeof(value)), 0);
}

/* A socket with linger 0, registered for closing in teardown. */
static inline void *fx_socket(fx_t *f, int type)
{
    void *s = zmq_socket(f->zctx, type);
    assert_non_null(s);
    set_int(s, ZMQ_LINGER, 0);
    for (int i = 0; i < MAX_SOCKS; i++) {
        if (f->socks[i] == NULL) {
            f->socks[i] = s;
            return s;
        }
    }
    fail_msg("more than %d sockets", MAX_SOCKS);
    return NULL;
}

static inline void fx_close_socket(fx_t *f, void *s)
{
    for (int i = 0; i < MAX_SOCKS; i++) {
        if (f->socks[i] == s) {
            f->socks[i] = NULL;
            assert_int_equal(zmq_close(s), 0);
            return;
        }
    }
    fail_msg("socket not registered");
}

/* Run the loop until *flag is set; fail (not hang) if the watchdog fires. */
static inline void run_until(fx_t *f, const bool *flag)
{
    while (!*flag && !f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(f->timed_out);
}

/* A zsock with the bookkeeping the tests look at. */
typedef struct peer {
    zsock_t zs;
    fx_t *f;
    void *sock;
    int received; /* messages seen by the callback */
    int expect;   /* the test is done when received reaches it */
    int sent;     /* messages handed to zsock_send* successfully */
    int writable; /* writable callbacks */
    int closed;   /* close callbacks */
    int errors;   /* error callbacks */
    int err_code; /* arguments of the last error callback */
    int err_errno;
    bool done;
} peer_t;

static inline peer_t *peer_of(zsock_t *zs)
{
    return container_of(zs, peer_t, zs);
}

static inline void on_closed(zsock_t *zs)
{
    peer_of(zs)->closed++;
}

/* Close a zsock, then its socket, and check the close callback ran once. */
static inline void peer_close(peer_t *p)
{
    zsock_close(&p->zs, on_closed);
    fx_close_socket(p->f, p->sock);
    uv_run(&p->f->loop, UV_RUN_NOWAIT);
    assert_int_equal(p->closed, 1);
}

static inline void peer_init(peer_t *p, fx_t *f, void *sock, zsock_msg_cb cb)
{
    p->f = f;
    p->sock = sock;
    assert_int_equal(zsock_init(&p->zs, &f->loop, sock, cb, p), 0);
}

/* Message "m<n>" as text, for ordering checks. */
static inline size_t fmt(char *buf, size_t size, int n)
{
    return (size_t)snprintf(buf, size, "m%d", n);
}

static inline void assert_part(const zmq_msg_t *part, const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(zmq_msg_size((zmq_msg_t *)part), len);
    assert_memory_equal(zmq_msg_data((zmq_msg_t *)part), text, len);
}

/* Receive into the callback's counter, checking order "m0", "m1", ... */
static inline void on_msg_ordered(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    peer_t *p = ctx;
    assert_ptr_equal(peer_of(zs), p);
    assert_int_equal(nparts, 1);
    char want[32];
    fmt(want, sizeof(want), p->received);
    assert_part(&parts[0], want);
    if (++p->received == p->expect)
        p->done = true;
}

static inline void send_text(void *sock, int n, int flags)
{
    char buf[32];
    size_t len = fmt(buf, sizeof(buf), n);
    assert_int_equal(zmq_send(sock, buf, len, flags), (int)len);
}

#endif /* ZSOCK_TEST_UTIL_H */
