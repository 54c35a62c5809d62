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

/* Monotonic milliseconds (CLOCK_MONOTONIC), for timeouts and rates only. */
int64_t clock_mono_ms(void);

#endif
