/* reload.h - SIGHUP: read the configuration file again and decide what of
 * it a running daemon can take.
 *
 * The catalog may grow (new townships, metrics, ratios) and limits,
 * intervals, the log level and the client key directories may change;
 * settings that only a restart can change (endpoints, state directory,
 * time zone, windows, journal sync, turning CURVE on or off, the server's
 * own key) keep their values and are logged as needing a restart; those
 * the saved state is bound to (windows, buckets, time zone) are logged as
 * what the next start will refuse, with what to put back.  A file
 * that does not load, or a catalog that contradicts the tallies (a metric
 * with counter series declared a gauge, a ratio given new inputs), is
 * refused as a whole with a clear log line; the old configuration stays
 * in force.
 *
 * Reload reads the running configuration and state it is handed, and
 * changes only the catalog (name tables and the engine's declarations);
 * tallyd.c hands the other settings of the accepted configuration to the
 * parts they belong to.
 */
#ifndef TALLYD_RELOAD_H
#define TALLYD_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "engine.h"
#include "intern.h"
#include "keys.h"
#include "log.h"

typedef struct reload_target {
    const tallyd_config_t *current;      /* the configuration in force */
    const config_overrides_t *overrides; /* the command line, applied again */
    engine_t *engine;                    /* the catalog is checked against it and put in */
    intern_t *towns;
    intern_t *metrics;
    const keyring_t *keys; /* the keyring in force (secured daemons) */
    bool secured;          /* CURVE is on; fixed until a restart */
    logger_t *log;
    /* May be NULL; else set to true by reload_prepare() when the file holds
     * what the next start would refuse against the state this daemon
     * saves (a file that does not load, windows, buckets or time zone
     * changed, a metric's kind its tallies contradict, key files that do
     * not load), whether the reload is accepted or refused; each is
     * logged as an error saying what to put back.  Left alone otherwise. */
    bool *start_refuses;
} reload_target_t;

/* Read the file at t->overrides->config_path and check it against t.  On
 * success *next holds the configuration to put in force (settings that
 * need a restart already set back to their current values, and logged),
 * and in a secured daemon *next_keys the keyring read from its key
 * directories (both initialised here; the caller frees them).  Nothing of
 * t changes.  Returns 0, or TALLY_ECONFIG after logging why the reload is
 * refused (next and next_keys are then empty).  Without a file there is
 * nothing to read: logged, TALLY_ENOTFOUND. */
int reload_prepare(const reload_target_t *t, tallyd_config_t *next, keyring_t *next_keys);

/* Declare the catalog of next (accepted by reload_prepare) in the name
 * tables and the engine.  Returns 0, or a negative code when it could be
 * declared only in part (logged: a restart is needed). */
int reload_apply_catalog(const reload_target_t *t, const tallyd_config_t *next);

/* Log which keys next revokes compared with the keyring in force.
 * Returns the number of subscriber keys revoked: their connections must be
 * cut (townships are checked on every message they send). */
size_t reload_report_keys(const reload_target_t *t, const keyring_t *next);

#endif
