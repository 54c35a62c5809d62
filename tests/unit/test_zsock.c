/* Unit tests of zsock, receiving side: echo, no lost wake-ups, budgeted
 * drains, pause/resume and oversized messages, with real ZeroMQ sockets
 * (inproc:// and ipc://) on a real libuv loop.  Every test runs under a
 * 10 s watchdog timer, so a lost wake-up fails the test instead of hanging
 * it.  Sending, writability, closing and errors: test_zsock_send.c. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "zsock_test_util.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_lost_wakeup_zsock_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_lost_wakeup_raw_send_kick, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arrival_after_eagain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_dropped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
