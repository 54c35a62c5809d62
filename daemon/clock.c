/* clock.c - real clocks behind clock.h. */
#include "clock.h"

#include <time.h>

static int64_t system_now_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const tclock_t clock_system = {system_now_ms, 0};

int64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t cached_now_ms(void *ctx)
{
    clock_cache_t *c = ctx;
    if (!c->valid) {
        c->now_ms = clock_now_ms(c->src);
        c->valid = c->active;
    }
    return c->now_ms;
}

void clock_cache_init(clock_cache_t *c, const tclock_t *src)
{
    c->clock = (tclock_t){cached_now_ms, c};
    c->src = src;
    c->now_ms = 0;
    c->valid = 0;
    c->active = 0;
}
