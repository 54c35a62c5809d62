/* tallyd.h - the daemon as one call, for main.c.
 *
 * tallyd.c and tallyd_start.c are the wiring: they create the parts
 * (endpoints -> request -> ingest -> journal -> engine -> publish, with
 * recovery, compaction and reload beside them), hand each the callbacks
 * and the read-only views it needs, and own the loop, the timers and the
 * signals.  No part includes this header.
 */
#ifndef TALLYD_TALLYD_H
#define TALLYD_TALLYD_H

#include "config.h"

/* Run the daemon until it is stopped; returns the process exit status: 0
 * after a clean stop, 1 on a runtime failure, 2 for a configuration (or a
 * state that this configuration cannot use). */
int tallyd_main(const config_overrides_t *o);

#endif
