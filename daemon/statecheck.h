/* statecheck.h - a configuration checked against a saved state as the next
 * start would check it, without loading that state
 * (`tallyd --check-config FILE --state-dir DIR`, which ExecReload= of the
 * systemd unit runs before it sends SIGHUP).
 *
 * A start loads the newest intact checkpoint under the configuration's
 * windows, buckets and time zone, then declares the catalog on top of it
 * (recover.h, catalog.h), and stops with exit status 2 when they do not
 * fit: other windows or buckets, a zone that places the saved day
 * elsewhere, a metric declared with a kind its tallies contradict, a
 * metric with tallies declared a ratio, a checkpoint of a newer format.
 * statecheck does the same with the same code, on a picture of the state
 * that holds only the declarations and one empty county-wide series per
 * metric with tallies (checkpoint_read_latest, engine_load_head): the
 * check reads the checkpoint file once and holds its bytes for a moment,
 * but builds nothing per series, whatever the state's size.
 *
 * Not seen: the journal after the checkpoint (a start declares the
 * catalog before it replays the journal, so only a metric's first tallies
 * since the last checkpoint escape the check, and a running tallyd
 * refuses such a reload itself), and the limits (max_series,
 * max_townships ...).  Nothing in the directory is changed, so it may run
 * beside the tallyd that uses it.
 */
#ifndef TALLYD_STATECHECK_H
#define TALLYD_STATECHECK_H

#include <stddef.h>

#include "config.h"

/* Check cfg (loaded and valid) against the state in dir.  Sets the
 * process time zone to cfg's, as a start does.  Returns 0 with a sentence
 * in msg[0..len) saying what it was checked against ("checkpoint
 * state-....ckp: 25 townships, 22 metrics"), or that dir holds no
 * checkpoint and a start would begin empty; TALLY_ECONFIG with the
 * reason the start would give; TALLY_EIO or TALLY_ENOMEM when the state
 * cannot be read (msg says why: a start would fail too, or fall back as
 * it says).  Without a checkpoint, msg says whether a start begins empty
 * or replays a journal, which is not read here. */
int statecheck_config(const tallyd_config_t *cfg, const char *dir, char *msg, size_t len);

#endif
