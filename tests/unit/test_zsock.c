/* Unit tests of zsock: real ZeroMQ sockets (inproc:// and ipc://) on a real
 * libuv loop.  Every test runs under a 10 s watchdog timer, so a lost
 * wake-up fails the test instead of hanging it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
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

static void on_watchdog(uv_timer_t *t)
{
    fx_t *f = t->data;
    f->timed_out = true;
    uv_stop(t->loop);
}

static int setup(void **state)
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

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* ZeroMQ leaves the file of a bound ipc:// endpoint behind. */
static void remove_dir(const char *dir)
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
static int teardown(void **state)
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

static void *fx_alloc(fx_t *f, size_t size)
{
    assert_null(f->scratch);
    f->scratch = calloc(1, size);
    assert_non_null(f->scratch);
    return f->scratch;
}

static void set_int(void *s, int opt, int value)
{
    assert_int_equal(zmq_setsockopt(s, opt, &value, sizeof(value)), 0);
}

/* A socket with linger 0, registered for closing in teardown. */
static void *fx_socket(fx_t *f, int type)
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

static void fx_close_socket(fx_t *f, void *s)
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
static void run_until(fx_t *f, const bool *flag)
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

static peer_t *peer_of(zsock_t *zs)
{
    return container_of(zs, peer_t, zs);
}

static void on_closed(zsock_t *zs)
{
    peer_of(zs)->closed++;
}

/* Close a zsock, then its socket, and check the close callback ran once. */
static void peer_close(peer_t *p)
{
    zsock_close(&p->zs, on_closed);
    fx_close_socket(p->f, p->sock);
    uv_run(&p->f->loop, UV_RUN_NOWAIT);
    assert_int_equal(p->closed, 1);
}

static void peer_init(peer_t *p, fx_t *f, void *sock, zsock_msg_cb cb)
{
    p->f = f;
    p->sock = sock;
    assert_int_equal(zsock_init(&p->zs, &f->loop, sock, cb, p), 0);
}

/* Message "m<n>" as text, for ordering checks. */
static size_t fmt(char *buf, size_t size, int n)
{
    return (size_t)snprintf(buf, size, "m%d", n);
}

static void assert_part(const zmq_msg_t *part, const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(zmq_msg_size((zmq_msg_t *)part), len);
    assert_memory_equal(zmq_msg_data((zmq_msg_t *)part), text, len);
}

/* Receive into the callback's counter, checking order "m0", "m1", ... */
static void on_msg_ordered(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
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

static void send_text(void *sock, int n, int flags)
{
    char buf[32];
    size_t len = fmt(buf, sizeof(buf), n);
    assert_int_equal(zmq_send(sock, buf, len, flags), (int)len);
}

/* ---------------------------------------------------------------------- */
/* ROUTER <-> DEALER echo, both ends on zsocks on the same loop. */

#define ECHO_N 5000

typedef struct echo {
    peer_t router;
    peer_t dealer;
} echo_t;

static void echo_router_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    peer_t *p = ctx;
    assert_int_equal(nparts, 2); /* routing id + body */
    p->received++;
    assert_int_equal(zsock_send(zs, parts, nparts), 0);
    p->sent++;
    /* ZeroMQ emptied the parts it sent. */
    assert_int_equal(zmq_msg_size(&parts[1]), 0);
}

static void echo_send_more(peer_t *p);

static void echo_dealer_writable(zsock_t *zs, void *ctx)
{
    peer_t *p = ctx;
    assert_ptr_equal(&p->zs, zs);
    p->writable++;
    echo_send_more(p);
}

/* Send until done or refused; on refusal wait to be writable. */
static void echo_send_more(peer_t *p)
{
    while (p->sent < ECHO_N) {
        char buf[32];
        size_t len = fmt(buf, sizeof(buf), p->sent);
        const void *bufs[1] = {buf};
        int rc = zsock_send_buf(&p->zs, bufs, &len, 1);
        if (rc == TALLY_EAGAIN) {
            zsock_want_write(&p->zs, echo_dealer_writable);
            return;
        }
        assert_int_equal(rc, 0);
        p->sent++;
    }
}

static void test_echo(void **state)
{
    fx_t *f = *state;
    echo_t *e = fx_alloc(f, sizeof(*e));
    void *router = fx_socket(f, ZMQ_ROUTER);
    void *dealer = fx_socket(f, ZMQ_DEALER);
    /* Requests queue little, so the dealer must wait for writability;
     * replies queue without limit, and ROUTER_MANDATORY turns a drop into
     * an error the echo callback would see. */
    set_int(router, ZMQ_RCVHWM, 50);
    set_int(dealer, ZMQ_SNDHWM, 50);
    set_int(router, ZMQ_SNDHWM, 0);
    set_int(dealer, ZMQ_RCVHWM, 0);
    set_int(router, ZMQ_ROUTER_MANDATORY, 1);
    assert_int_equal(zmq_bind(router, "inproc://echo"), 0);
    assert_int_equal(zmq_connect(dealer, "inproc://echo"), 0);
    peer_init(&e->router, f, router, echo_router_msg);
    peer_init(&e->dealer, f, dealer, on_msg_ordered);
    e->dealer.expect = ECHO_N;

    echo_send_more(&e->dealer);
    assert_true(e->dealer.sent < ECHO_N);
    run_until(f, &e->dealer.done);

    assert_int_equal(e->router.received, ECHO_N);
    assert_int_equal(e->router.zs.stats.msgs_in, ECHO_N);
    assert_int_equal(e->router.zs.stats.msgs_out, ECHO_N);
    assert_int_equal(e->dealer.zs.stats.msgs_out, ECHO_N);
    assert_int_equal(e->dealer.zs.stats.msgs_in, ECHO_N);
    assert_true(e->dealer.writable > 0);
    assert_int_equal(e->dealer.zs.stats.send_eagain, e->dealer.writable);
    assert_int_equal(e->router.zs.stats.errors, 0);
    peer_close(&e->router);
    peer_close(&e->dealer);
}

/* ---------------------------------------------------------------------- */
/* No lost wake-ups: a timer sends on the socket (which can consume the
 * ZMQ_FD signal) while another thread floods it with messages. */

#define WAKE_N 10000

typedef struct wake {
    peer_t me;
    uv_timer_t timer;
    bool raw;         /* timer uses zmq_send + zsock_kick, not zsock_send */
    int timer_sends;  /* sends the timer made that ZeroMQ accepted */
    atomic_bool stop; /* tells the thread to quit */
    void *zctx;
} wake_t;

static void *wake_thread(void *arg)
{
    wake_t *w = arg;
    void *s = zmq_socket(w->zctx, ZMQ_DEALER);
    int zero = 0, timeout = 5000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof(timeout));
    zmq_connect(s, "inproc://wake");
    char buf[32];
    for (int i = 0; i < WAKE_N && !atomic_load(&w->stop); i++) {
        size_t len = fmt(buf, sizeof(buf), i);
        if (zmq_send(s, buf, len, 0) < 0)
            break;
        /* Pauses let the loop go idle, so that arrivals come as fresh
         * ZMQ_FD signals that the timer's sends can race with. */
        if (i % 32 == 31) {
            while (zmq_recv(s, buf, sizeof(buf), ZMQ_DONTWAIT) >= 0)
                ;
            usleep(200);
        }
    }
    while (!atomic_load(&w->stop)) {
        while (zmq_recv(s, buf, sizeof(buf), ZMQ_DONTWAIT) >= 0)
            ;
        usleep(1000);
    }
    zmq_close(s);
    return NULL;
}

static void wake_timer(uv_timer_t *t)
{
    wake_t *w = t->data;
    /* Stand-in for real work in a timer.  While it runs, arrivals signal
     * ZMQ_FD; the send below then processes that signal (ZeroMQ throttles
     * command processing in send to about once per 3M TSC cycles, hence
     * 1.5 ms), leaving the descriptor quiet with messages waiting.  Only the
     * recheck after the send finds them. */
    uint64_t until = uv_hrtime() + 1500000;
    while (uv_hrtime() < until)
        ;
    for (int i = 0; i < 3; i++) {
        int rc;
        if (w->raw) {
            rc = zmq_send(w->me.sock, "t", 1, ZMQ_DONTWAIT) == 1 ? 0 : TALLY_EAGAIN;
            zsock_kick(&w->me.zs);
        } else {
            const void *bufs[1] = {"t"};
            size_t len = 1;
            rc = zsock_send_buf(&w->me.zs, bufs, &len, 1);
        }
        if (rc == 0)
            w->timer_sends++;
        else
            assert_int_equal(rc, TALLY_EAGAIN);
    }
}

static void run_wake(fx_t *f, bool raw)
{
    wake_t *w = fx_alloc(f, sizeof(*w));
    w->raw = raw;
    w->zctx = f->zctx;
    atomic_init(&w->stop, false);
    void *s = fx_socket(f, ZMQ_DEALER);
    assert_int_equal(zmq_bind(s, "inproc://wake"), 0);
    peer_init(&w->me, f, s, on_msg_ordered);
    w->me.expect = WAKE_N;
    uv_timer_init(&f->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, wake_timer, 1, 1);

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wake_thread, w), 0);
    while (!w->me.done && !f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    atomic_store(&w->stop, true);
    pthread_join(th, NULL);
    assert_false(f->timed_out);

    assert_int_equal(w->me.received, WAKE_N);
    assert_int_equal(w->me.zs.stats.msgs_in, WAKE_N);
    /* The race was really run: the timer sent while messages came in. */
    assert_true(w->timer_sends >= 10);
    uv_close((uv_handle_t *)&w->timer, NULL);
    peer_close(&w->me);
}

static void test_no_lost_wakeup_zsock_send(void **state)
{
    run_wake(*state, false);
}

static void test_no_lost_wakeup_raw_send_kick(void **state)
{
    run_wake(*state, true);
}

/* ---------------------------------------------------------------------- */
/* The narrowest race, made exact with -Wl,--wrap=zmq_msg_recv: a message
 * arrives just after a receive said EAGAIN, so the peer's signal is taken by
 * the drain's ZMQ_EVENTS check and ZMQ_FD stays quiet.  Only ZMQ_POLLIN in
 * that check tells the zsock to go on. */

int __real_zmq_msg_recv(zmq_msg_t *msg, void *sock, int flags);
int __wrap_zmq_msg_recv(zmq_msg_t *msg, void *sock, int flags);

/* Global because the wrapper has no context argument; only this test arms
 * it (watch != NULL). */
static struct {
    void *watch;  /* the socket whose EAGAIN triggers a late arrival */
    void *inject; /* the peer that sends it */
    int left;     /* late arrivals still to make */
    int next;     /* number of the next message */
} late;

int __wrap_zmq_msg_recv(zmq_msg_t *msg, void *sock, int flags)
{
    int rc = __real_zmq_msg_recv(msg, sock, flags);
    if (rc < 0 && errno == EAGAIN && sock == late.watch && late.left > 0) {
        late.left--;
        char buf[32];
        size_t len = fmt(buf, sizeof(buf), late.next++);
        if (zmq_send(late.inject, buf, len, ZMQ_DONTWAIT) != (int)len)
            fail_msg("late send: %s", zmq_strerror(errno));
        errno = EAGAIN;
    }
    return rc;
}

#define LATE_N 50

static void test_arrival_after_eagain(void **state)
{
    fx_t *f = *state;
    peer_t *p = fx_alloc(f, sizeof(*p));
    void *push = fx_socket(f, ZMQ_PUSH);
    void *pull = fx_socket(f, ZMQ_PULL);
    assert_int_equal(zmq_bind(pull, "inproc://late"), 0);
    assert_int_equal(zmq_connect(push, "inproc://late"), 0);
    late.watch = pull;
    late.inject = push;
    late.left = LATE_N;
    late.next = 0;
    peer_init(p, f, pull, on_msg_ordered);
    p->expect = LATE_N;
    run_until(f, &p->done);
    memset(&late, 0, sizeof(late));
    assert_int_equal(p->received, LATE_N);
    peer_close(p);
}

/* ---------------------------------------------------------------------- */
/* Budgeted drains: at most `budget` deliveries per drain, with the loop's
 * other phases (prepare, check) running between batches. */

#define BUDGET_N 1000
#define BUDGET   10

typedef struct budget {
    peer_t me;
    uv_prepare_t prepare;
    uv_check_t check;
    int batch;       /* deliveries since the last prepare or check */
    int first_batch; /* size of the first non-empty batch */
    int max_batch;
    int batches; /* non-empty batches */
} budget_t;

static void budget_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    budget_t *b = container_of(ctx, budget_t, me);
    b->batch++;
    on_msg_ordered(zs, parts, nparts, ctx);
}

static void budget_end_batch(budget_t *b)
{
    if (b->batch == 0)
        return;
    if (b->first_batch == 0)
        b->first_batch = b->batch;
    if (b->batch > b->max_batch)
        b->max_batch = b->batch;
    b->batches++;
    b->batch = 0;
}

static void budget_prepare(uv_prepare_t *h)
{
    budget_end_batch(h->data);
}

static void budget_check(uv_check_t *h)
{
    budget_end_batch(h->data);
}

static void test_budget(void **state)
{
    fx_t *f = *state;
    budget_t *b = fx_alloc(f, sizeof(*b));
    void *push = fx_socket(f, ZMQ_PUSH);
    void *pull = fx_socket(f, ZMQ_PULL);
    set_int(push, ZMQ_SNDHWM, 2 * BUDGET_N);
    set_int(pull, ZMQ_RCVHWM, 2 * BUDGET_N);
    assert_int_equal(zmq_bind(pull, "inproc://budget"), 0);
    assert_int_equal(zmq_connect(push, "inproc://budget"), 0);
    /* Everything is queued before the zsock exists. */
    for (int i = 0; i < BUDGET_N; i++)
        send_text(push, i, ZMQ_DONTWAIT);

    peer_init(&b->me, f, pull, budget_msg);
    zsock_set_budget(&b->me.zs, BUDGET);
    b->me.expect = BUDGET_N;
    uv_prepare_init(&f->loop, &b->prepare);
    uv_check_init(&f->loop, &b->check);
    b->prepare.data = b;
    b->check.data = b;
    uv_prepare_start(&b->prepare, budget_prepare);
    uv_check_start(&b->check, budget_check);
    run_until(f, &b->me.done);
    budget_end_batch(b);

    assert_int_equal(b->me.received, BUDGET_N);
    assert_int_equal(b->first_batch, BUDGET);
    assert_int_equal(b->max_batch, BUDGET);
    assert_true(b->batches >= BUDGET_N / BUDGET);
    assert_true(b->me.zs.stats.budget_yields >= BUDGET_N / BUDGET - 1);
    uv_close((uv_handle_t *)&b->prepare, NULL);
    uv_close((uv_handle_t *)&b->check, NULL);
    peer_close(&b->me);
}

/* ---------------------------------------------------------------------- */
/* pause / resume */

#define PAUSE_N  100
#define PAUSE_AT 5

typedef struct pause_test {
    peer_t me;
    void *push;
    uv_prepare_t prepare;
    uv_timer_t more, resume;
    int iters; /* loop iterations (prepare callbacks) */
    int iters_at_pause;
    int iters_at_resume;
    int received_at_resume;
} pause_t;

static void pause_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    pause_t *p = container_of(ctx, pause_t, me);
    on_msg_ordered(zs, parts, nparts, ctx);
    if (p->me.received == PAUSE_AT) {
        zsock_pause(zs);
        assert_true(zsock_paused(zs));
        p->iters_at_pause = p->iters;
    }
}

static void pause_prepare(uv_prepare_t *h)
{
    pause_t *p = h->data;
    p->iters++;
}

/* Half the messages arrive while paused. */
static void pause_more(uv_timer_t *t)
{
    pause_t *p = t->data;
    for (int i = PAUSE_N / 2; i < PAUSE_N; i++)
        send_text(p->push, i, ZMQ_DONTWAIT);
}

static void pause_resume(uv_timer_t *t)
{
    pause_t *p = t->data;
    p->received_at_resume = p->me.received;
    p->iters_at_resume = p->iters;
    zsock_resume(&p->me.zs);
    assert_false(zsock_paused(&p->me.zs));
}

static void test_pause_resume(void **state)
{
    fx_t *f = *state;
    pause_t *p = fx_alloc(f, sizeof(*p));
    p->push = fx_socket(f, ZMQ_PUSH);
    void *pull = fx_socket(f, ZMQ_PULL);
    assert_int_equal(zmq_bind(pull, "inproc://pause"), 0);
    assert_int_equal(zmq_connect(p->push, "inproc://pause"), 0);
    for (int i = 0; i < PAUSE_N / 2; i++)
        send_text(p->push, i, ZMQ_DONTWAIT);

    peer_init(&p->me, f, pull, pause_msg);
    p->me.expect = PAUSE_N;
    uv_prepare_init(&f->loop, &p->prepare);
    p->prepare.data = p;
    uv_prepare_start(&p->prepare, pause_prepare);
    uv_timer_init(&f->loop, &p->more);
    uv_timer_init(&f->loop, &p->resume);
    p->more.data = p;
    p->resume.data = p;
    uv_timer_start(&p->more, pause_more, 20, 0);
    uv_timer_start(&p->resume, pause_resume, 80, 0);
    run_until(f, &p->me.done);

    /* Pausing inside the callback stopped delivery at once, and nothing
     * came while paused, not even the messages that arrived then. */
    assert_int_equal(p->received_at_resume, PAUSE_AT);
    /* While paused the loop slept instead of spinning: a few wake-ups from
     * the timers and arrivals, not thousands of idle iterations. */
    assert_true(p->iters_at_resume - p->iters_at_pause < 30);
    assert_int_equal(p->me.received, PAUSE_N);
    uv_close((uv_handle_t *)&p->prepare, NULL);
    uv_close((uv_handle_t *)&p->more, NULL);
    uv_close((uv_handle_t *)&p->resume, NULL);
    peer_close(&p->me);
}

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
/* Oversized multipart messages are read whole, dropped and counted. */

typedef struct over {
    peer_t me;
    int nparts[4];
    char first[4][16];
} over_t;

static void over_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    (void)zs;
    over_t *o = container_of(ctx, over_t, me);
    assert_true(o->me.received < 4);
    o->nparts[o->me.received] = nparts;
    size_t len = zmq_msg_size(&parts[0]);
    assert_true(len < sizeof(o->first[0]));
    memcpy(o->first[o->me.received], zmq_msg_data(&parts[0]), len);
    if (nparts == ZSOCK_MAX_PARTS) {
        for (int i = 0; i < nparts; i++) {
            char want[16];
            snprintf(want, sizeof(want), "p%d", i);
            assert_part(&parts[i], want);
        }
    }
    if (++o->me.received == o->me.expect)
        o->me.done = true;
}

static void send_parts(void *sock, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char buf[16];
        int len = snprintf(buf, sizeof(buf), "%s%d", prefix, i);
        int rc = zmq_send(sock, buf, (size_t)len, i + 1 < n ? ZMQ_SNDMORE : 0);
        assert_int_equal(rc, len);
    }
}

static void test_oversized_dropped(void **state)
{
    fx_t *f = *state;
    over_t *o = fx_alloc(f, sizeof(*o));
    void *push = fx_socket(f, ZMQ_PUSH);
    void *pull = fx_socket(f, ZMQ_PULL);
    assert_int_equal(zmq_bind(pull, "inproc://over"), 0);
    assert_int_equal(zmq_connect(push, "inproc://over"), 0);
    send_parts(push, "a", ZSOCK_MAX_PARTS + 2);
    send_parts(push, "p", ZSOCK_MAX_PARTS);
    send_parts(push, "b", ZSOCK_MAX_PARTS + 1);
    send_parts(push, "end", 1);

    peer_init(&o->me, f, pull, over_msg);
    o->me.expect = 2;
    run_until(f, &o->me.done);

    assert_int_equal(o->nparts[0], ZSOCK_MAX_PARTS);
    assert_string_equal(o->first[0], "p0");
    assert_int_equal(o->nparts[1], 1);
    assert_string_equal(o->first[1], "end0");
    assert_int_equal(o->me.zs.stats.dropped_oversized, 2);
    assert_int_equal(o->me.zs.stats.msgs_in, 2);
    /* Nothing else was left half-read to show up as a message. */
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(o->me.received, 2);
    peer_close(&o->me);
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
        cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_lost_wakeup_zsock_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_lost_wakeup_raw_send_kick, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arrival_after_eagain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_want_write_reader_attaches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_want_write_queue_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_want_write_immediate_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_heap_and_early_zmq_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_unknown_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
