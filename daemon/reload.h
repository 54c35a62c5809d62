/* reload.h - SIGHUP: read the configuration file again and apply it live.
 *
 * The catalog (townships, metrics, ratios), limits, time rules, publish
 * and heartbeat intervals and the log level take effect at once; tallies
 * are kept.  Settings a running daemon cannot change (endpoints, state
 * directory, time zone, windows, buckets, and name table sizes beyond
 * what was allocated) keep their values and are logged as needing a
 * restart.  A file that does not load, or a catalog that contradicts the
 * tallies (a metric with counter series declared a gauge, a ratio given
 * new inputs), is refused as a whole with a clear log line; the old
 * configuration stays in force.
 */
#ifndef TALLYD_RELOAD_H
#define TALLYD_RELOAD_H

struct tallyd;

/* Reload d->config_path (nothing to do without a file: logged).  Returns
 * 0 when the new configuration is in force, or a negative code when it was
 * refused (the reason is logged). */
int reload_config(struct tallyd *d);

#endif
