/* clock.h - the daemon's injectable source of time.
 *
 * Everything in the daemon that needs "now" asks a clock_t passed to it, so
 * unit tests can run the engine at any instant (year end in Asia/Shanghai,
 * a leap day) without touching the system clock.
 */
#ifndef TALLYD_CLOCK_H
#define TALLYD_CLOCK_H

#include <stdint.h>

typedef struct tclock {
    /* Milliseconds since the Unix epoch, UTC. */
    int64_t (*now_ms)(void *ctx);
    void *ctx;
} tclock_t;

/* The system's real-time clock (CLOCK_REALTIME). */
extern const tclock_t clock_system;

/* Current time of c in ms since the epoch. */
static inline int64_t clock_now_ms(const tclock_t *c)
{
    return c->now_ms(c->ctx);
}

/* A clock that reads src once and then returns that reading until
 * clock_cache_expire(): the daemon expires it at every loop iteration, so
 * the requests one iteration handles share one reading, as libuv's own
 * uv_now() does, instead of asking the system for every submission.
 * Initialised expired; use &cache->clock as the clock. */
typedef struct clock_cache {
    tclock_t clock;
    const tclock_t *src;
    int64_t now_ms;
    int valid;
    int active; /* 0: every read goes to src (start-up, before the loop) */
} clock_cache_t;

void clock_cache_init(clock_cache_t *c, const tclock_t *src);

/* Start (active != 0) or stop keeping readings. */
static inline void clock_cache_activate(clock_cache_t *c, int active)
{
    c->active = active;
    c->valid = 0;
}

static inline void clock_cache_expire(clock_cache_t *c)
{
    c->valid = 0;
}

/* Monotonic milliseconds (CLOCK_MONOTONIC), for timeouts and rates only. */
int64_t clock_mono_ms(void);

#endif
