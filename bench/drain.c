/* drain.c - subscribers that only read (see drain.h). */
#include "drain.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <zmq.h>

#include "bench_time.h"

static void *run(void *arg)
{
    drain_t *d = arg;
    /* named, so that tally-bench's CPU by thread tells it from the load loop */
    prctl(PR_SET_NAME, "bench-drain", 0, 0, 0);
    void *ctx = zmq_ctx_new();
    void **socks = calloc(d->n, sizeof(*socks));
    zmq_pollitem_t *items = calloc(d->n, sizeof(*items));
    bool *seen = calloc(d->n, sizeof(*seen));
    uint32_t opened = 0;
    if (!ctx || !socks || !items || !seen)
        goto fail;
    for (; opened < d->n; opened++) {
        void *s = zmq_socket(ctx, ZMQ_SUB);
        int hwm = 100000, linger = 0;
        if (!s)
            goto fail;
        socks[opened] = s;
        if (zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0 ||
            zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
            zmq_setsockopt(s, ZMQ_SUBSCRIBE, "u/", 2) != 0 ||
            zmq_setsockopt(s, ZMQ_SUBSCRIBE, "h", 1) != 0 || zmq_connect(s, d->endpoint) != 0)
            goto fail;
        items[opened] = (zmq_pollitem_t){.socket = s, .events = ZMQ_POLLIN};
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (!atomic_load(&d->stop)) {
        if (zmq_poll(items, (int)d->n, 100) < 0 && zmq_errno() != EINTR)
            break;
        for (uint32_t i = 0; i < d->n; i++) {
            uint64_t got = 0;
            /* Bounded, so one busy subscriber cannot starve the others. */
            while (got < 1000 && zmq_msg_recv(&m, socks[i], ZMQ_DONTWAIT) >= 0)
                if (!zmq_msg_more(&m))
                    got++;
            if (got) {
                atomic_fetch_add(&d->received, got);
                if (!seen[i]) {
                    seen[i] = true;
                    atomic_fetch_add(&d->ready, 1);
                }
            }
        }
    }
    zmq_msg_close(&m);
    goto out;
fail:
    fprintf(stderr, "tally-bench: drain subscribers on %s: %s\n", d->endpoint,
            zmq_strerror(zmq_errno()));
    atomic_store(&d->failed, 1);
out:
    for (uint32_t i = 0; i < opened; i++)
        zmq_close(socks[i]);
    free(socks);
    free(items);
    free(seen);
    if (ctx)
        zmq_ctx_term(ctx);
    return NULL;
}

int drain_start(drain_t *d, const char *endpoint, uint32_t n)
{
    memset(d, 0, sizeof(*d));
    if (snprintf(d->endpoint, sizeof(d->endpoint), "%s", endpoint) >= (int)sizeof(d->endpoint))
        return TALLY_EINVAL;
    d->n = n;
    atomic_init(&d->stop, false);
    atomic_init(&d->ready, 0);
    atomic_init(&d->received, 0);
    atomic_init(&d->failed, 0);
    if (n == 0)
        return 0;
    if (pthread_create(&d->thread, NULL, run, d) != 0)
        return TALLY_ESYS;
    d->started = true;
    return 0;
}

int drain_wait_ready(drain_t *d, int timeout_ms)
{
    int64_t deadline = bench_time_ns() + (int64_t)timeout_ms * 1000000;
    while (atomic_load(&d->ready) < d->n) {
        if (atomic_load(&d->failed))
            return TALLY_ESYS;
        if (bench_time_ns() > deadline)
            return TALLY_ETIMEDOUT;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

uint64_t drain_received(drain_t *d)
{
    return atomic_load(&d->received);
}

void drain_stop(drain_t *d)
{
    if (!d->started)
        return;
    atomic_store(&d->stop, true);
    pthread_join(d->thread, NULL);
    d->started = false;
}
