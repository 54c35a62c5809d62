/* Unit tests of zsock, sending side: want_write, closing and errors, with
 * real ZeroMQ sockets (inproc:// and ipc://) on a real libuv loop.  Every
 * test runs under a 10 s watchdog timer, so a lost wake-up fails the test
 * instead of hanging it.  Receiving and draining: test_zsock.c. */
#include <errno.h>

#include "zsock_test_util.h"

/* ---------------------------------------------------------------------- */
/* want_write */

typedef struct ww {
    peer_t me;
    void *pull;
    uv_timer_t timer;
    zmq_msg_t part;
    int writable_at_timer; /* writable callbacks seen when the timer ran */
    int read_at_timer;     /* messages the timer's reader took */
    int sent_after;        /* return code of the send from the callback */
} ww_t;

static void ww_writable(zsock_t *zs, void *ctx)
{
    ww_t *w = container_of(ctx, ww_t, me);
    w->me.writable++;
    w->sent_after = zsock_send(zs, &w->part, 1);
    w->me.done = true;
}

/* A reader appears: PULL connects over ipc://. */
static void ww_attach(uv_timer_t *t)
{
    ww_t *w = t->data;
    char ep[128];
    snprintf(ep, sizeof(ep), "ipc://%s/ww.sock", w->me.f->dir);
    w->writable_at_timer = w->me.writable;
    w->pull = fx_socket(w->me.f, ZMQ_PULL);
    assert_int_equal(zmq_connect(w->pull, ep), 0);
}

static void assert_recv_text(void *sock, const char *text)
{
    char buf[64];
    int timeout = 2000;
    set_int(sock, ZMQ_RCVTIMEO, timeout);
    int n = zmq_recv(sock, buf, sizeof(buf), 0);
    assert_int_equal(n, (int)strlen(text));
    assert_memory_equal(buf, text, (size_t)n);
}

static void test_want_write_reader_attaches(void **state)
{
    fx_t *f = *state;
    ww_t *w = fx_alloc(f, sizeof(*w));
    char ep[128];
    snprintf(ep, sizeof(ep), "ipc://%s/ww.sock", f->dir);
    void *push = fx_socket(f, ZMQ_PUSH);
    set_int(push, ZMQ_SNDHWM, 1);
    assert_int_equal(zmq_bind(push, ep), 0);
    peer_init(&w->me, f, push, NULL); /* send-only: never receives */

    assert_int_equal(zmq_msg_init_size(&w->part, 5), 0);
    memcpy(zmq_msg_data(&w->part), "hello", 5);
    /* No peer: refused, and the part is left to us untouched. */
    assert_int_equal(zsock_send(&w->me.zs, &w->part, 1), TALLY_EAGAIN);
    assert_part(&w->part, "hello");
    assert_int_equal(w->me.zs.stats.send_eagain, 1);
    assert_int_equal(w->me.zs.stats.msgs_out, 0);
    zsock_want_write(&w->me.zs, ww_writable);

    uv_timer_init(&f->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, ww_attach, 50, 0);
    run_until(f, &w->me.done);

    assert_int_equal(w->writable_at_timer, 0);
    assert_int_equal(w->me.writable, 1);
    assert_int_equal(w->sent_after, 0);
    assert_int_equal(w->me.zs.stats.msgs_out, 1);
    zmq_msg_close(&w->part);
    assert_recv_text(w->pull, "hello");
    uv_close((uv_handle_t *)&w->timer, NULL);
    peer_close(&w->me);
    fx_close_socket(f, w->pull);
    /* The one-shot callback did not fire again. */
    assert_int_equal(w->me.writable, 1);
}

/* The reader drains a full queue from a timer. */
static void ww_read_all(uv_timer_t *t)
{
    ww_t *w = t->data;
    char buf[32];
    w->writable_at_timer = w->me.writable;
    while (zmq_recv(w->pull, buf, sizeof(buf), ZMQ_DONTWAIT) >= 0)
        w->read_at_timer++;
    assert_int_equal(errno, EAGAIN);
}

static void test_want_write_queue_drains(void **state)
{
    fx_t *f = *state;
    ww_t *w = fx_alloc(f, sizeof(*w));
    void *push = fx_socket(f, ZMQ_PUSH);
    w->pull = fx_socket(f, ZMQ_PULL);
    set_int(push, ZMQ_SNDHWM, 1);
    set_int(w->pull, ZMQ_RCVHWM, 1);
    assert_int_equal(zmq_bind(w->pull, "inproc://ww"), 0);
    assert_int_equal(zmq_connect(push, "inproc://ww"), 0);
    peer_init(&w->me, f, push, NULL);

    int queued = 0;
    for (;;) {
        const void *bufs[1] = {"x"};
        size_t len = 1;
        int rc = zsock_send_buf(&w->me.zs, bufs, &len, 1);
        if (rc == TALLY_EAGAIN)
            break;
        assert_int_equal(rc, 0);
        assert_true(++queued < 100);
    }
    assert_true(queued >= 1);
    assert_int_equal(zmq_msg_init_size(&w->part, 5), 0);
    memcpy(zmq_msg_data(&w->part), "after", 5);
    zsock_want_write(&w->me.zs, ww_writable);

    uv_timer_init(&f->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, ww_read_all, 50, 0);
    run_until(f, &w->me.done);

    assert_int_equal(w->writable_at_timer, 0);
    assert_int_equal(w->read_at_timer, queued);
    assert_int_equal(w->sent_after, 0);
    zmq_msg_close(&w->part);
    assert_recv_text(w->pull, "after");
    uv_close((uv_handle_t *)&w->timer, NULL);
    peer_close(&w->me);
}

/* want_write on a socket that is writable already fires on the next
 * iteration; NULL cancels a pending callback. */
static void test_want_write_immediate_and_cancel(void **state)
{
    fx_t *f = *state;
    ww_t *w = fx_alloc(f, sizeof(*w));
    void *push = fx_socket(f, ZMQ_PUSH);
    void *pull = fx_socket(f, ZMQ_PULL);
    assert_int_equal(zmq_bind(pull, "inproc://wwi"), 0);
    assert_int_equal(zmq_connect(push, "inproc://wwi"), 0);
    peer_init(&w->me, f, push, NULL);
    zmq_msg_init_data(&w->part, "now", 3, NULL, NULL);

    zsock_want_write(&w->me.zs, ww_writable);
    zsock_want_write(&w->me.zs, NULL);
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(w->me.writable, 0);

    zsock_want_write(&w->me.zs, ww_writable);
    assert_int_equal(w->me.writable, 0); /* never from inside the call */
    run_until(f, &w->me.done);
    assert_int_equal(w->me.writable, 1);
    assert_int_equal(w->sent_after, 0);
    zmq_msg_close(&w->part);
    assert_recv_text(pull, "now");
    peer_close(&w->me);
}

/* ---------------------------------------------------------------------- */
/* Closing */

static void close_in_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    (void)parts;
    (void)nparts;
    peer_t *p = ctx;
    p->received++;
    zsock_close(zs, on_closed);
    /* After close: sends are refused, other calls are harmless. */
    const void *bufs[1] = {"x"};
    size_t len = 1;
    assert_int_equal(zsock_send_buf(zs, bufs, &len, 1), TALLY_ECLOSED);
    zsock_want_write(zs, NULL);
    zsock_kick(zs);
    zsock_resume(zs);
    p->done = true;
}

/* Close from inside the message callback with more messages queued: none
 * of them is delivered, the close callback runs once. */
static void test_close_in_callback(void **state)
{
    fx_t *f = *state;
    peer_t *p = fx_alloc(f, sizeof(*p));
    void *push = fx_socket(f, ZMQ_PUSH);
    void *pull = fx_socket(f, ZMQ_PULL);
    assert_int_equal(zmq_bind(pull, "inproc://close"), 0);
    assert_int_equal(zmq_connect(push, "inproc://close"), 0);
    for (int i = 0; i < 10; i++)
        send_text(push, i, ZMQ_DONTWAIT);
    peer_init(p, f, pull, close_in_msg);
    run_until(f, &p->done);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(p->closed, 1);
    assert_int_equal(p->received, 1);
    assert_int_equal(p->zs.stats.msgs_in, 1);
    fx_close_socket(f, pull);
}

static void never_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    (void)zs;
    (void)parts;
    (void)nparts;
    (void)ctx;
    fail_msg("message delivered after zsock_close");
}

static void never_writable(zsock_t *zs, void *ctx)
{
    (void)zs;
    (void)ctx;
    fail_msg("writable callback after zsock_close");
}

typedef struct heap_zs {
    zsock_t zs;
    int *freed;
} heap_zs_t;

static void free_on_close(zsock_t *zs)
{
    heap_zs_t *h = container_of(zs, heap_zs_t, zs);
    (*h->freed)++;
    free(h);
}

/* A zsock on the heap, freed in its close callback; its socket closed
 * right after zsock_close(), before the loop ran; closing a paused zsock
 * with a writable callback pending and an idle handle active. */
static void test_close_heap_and_early_zmq_close(void **state)
{
    fx_t *f = *state;
    int *freed = fx_alloc(f, sizeof(int));
    void *push = fx_socket(f, ZMQ_PUSH);
    void *pull = fx_socket(f, ZMQ_PULL);
    assert_int_equal(zmq_bind(pull, "inproc://heap"), 0);
    assert_int_equal(zmq_connect(push, "inproc://heap"), 0);
    send_text(push, 0, ZMQ_DONTWAIT);

    heap_zs_t *a = calloc(1, sizeof(*a));
    heap_zs_t *b = calloc(1, sizeof(*b));
    assert_non_null(a);
    assert_non_null(b);
    a->freed = freed;
    b->freed = freed;
    assert_int_equal(zsock_init(&a->zs, &f->loop, pull, never_msg, NULL), 0);
    assert_int_equal(zsock_init(&b->zs, &f->loop, push, NULL, NULL), 0);
    zsock_pause(&a->zs);
    zsock_want_write(&b->zs, never_writable);
    zsock_close(&a->zs, free_on_close);
    zsock_close(&b->zs, free_on_close);
    fx_close_socket(f, pull);
    fx_close_socket(f, push);
    assert_int_equal(*freed, 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(*freed, 2);
}

/* ---------------------------------------------------------------------- */
/* Errors */

static void on_error(zsock_t *zs, int code, int err, void *ctx)
{
    peer_t *p = ctx;
    assert_ptr_equal(&p->zs, zs);
    p->errors++;
    p->err_code = code;
    p->err_errno = err;
    p->done = true;
}

/* A receive error (here ENOTSUP: a message callback on a PUSH socket)
 * stops the zsock and is reported once; it can still be closed. */
static void test_error_stops(void **state)
{
    fx_t *f = *state;
    peer_t *p = fx_alloc(f, sizeof(*p));
    void *push = fx_socket(f, ZMQ_PUSH);
    assert_int_equal(zmq_bind(push, "inproc://err"), 0);
    peer_init(p, f, push, on_msg_ordered);
    zsock_set_error_cb(&p->zs, on_error);
    run_until(f, &p->done);
    assert_int_equal(p->errors, 1);
    assert_int_equal(p->err_code, TALLY_EIO);
    assert_int_equal(p->err_errno, ENOTSUP);
    assert_int_equal(p->zs.stats.errors, 1);
    assert_int_equal(p->zs.last_errno, ENOTSUP);
    zsock_kick(&p->zs);
    zsock_resume(&p->zs);
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(p->errors, 1);
    peer_close(p);
}

/* ROUTER_MANDATORY to an unknown routing id: TALLY_ENOTFOUND. */
static void test_router_unknown_peer(void **state)
{
    fx_t *f = *state;
    peer_t *p = fx_alloc(f, sizeof(*p));
    void *router = fx_socket(f, ZMQ_ROUTER);
    set_int(router, ZMQ_ROUTER_MANDATORY, 1);
    assert_int_equal(zmq_bind(router, "inproc://mandatory"), 0);
    peer_init(p, f, router, on_msg_ordered);
    const void *bufs[2] = {"nobody", "body"};
    size_t lens[2] = {6, 4};
    assert_int_equal(zsock_send_buf(&p->zs, bufs, lens, 2), TALLY_ENOTFOUND);
    assert_int_equal(p->zs.last_errno, EHOSTUNREACH);
    assert_int_equal(p->zs.stats.msgs_out, 0);
    assert_int_equal(p->zs.stats.send_eagain, 0);
    peer_close(p);
}

/* zsock_init refuses a non-socket and a second zsock on the same socket. */
static void test_init_errors(void **state)
{
    fx_t *f = *state;
    peer_t *p = fx_alloc(f, sizeof(*p));
    zsock_t other;
    void *s = fx_socket(f, ZMQ_PULL);
    assert_int_equal(zsock_init(&other, &f->loop, NULL, on_msg_ordered, NULL), TALLY_EINVAL);
    peer_init(p, f, s, on_msg_ordered);
    assert_int_equal(zsock_init(&other, &f->loop, s, on_msg_ordered, NULL), TALLY_ESYS);
    assert_ptr_equal(zsock_socket(&p->zs), s);
    peer_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_want_write_reader_attaches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_want_write_queue_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_want_write_immediate_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_heap_and_early_zmq_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_unknown_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
