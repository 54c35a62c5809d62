/* catalog.h - the configured catalog put into the running state: township
 * and metric names interned (so they keep their ids), metric kinds and
 * ratios declared in the engine.
 *
 * At start-up the catalog is declared on top of the state a checkpoint
 * loaded; at a reload on top of the running state.  Declarations that
 * agree with what is there already are kept, so both cases are one call.
 */
#ifndef TALLYD_CATALOG_H
#define TALLYD_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "engine.h"
#include "intern.h"

typedef struct catalog_target {
    intern_t *towns;
    intern_t *metrics;
    engine_t *engine;
    const char *state_dir; /* named in messages about the loaded state */
} catalog_target_t;

/* How many distinct names cfg's catalog puts into the metric name table:
 * its metrics, its ratios and the ratios' inputs. */
size_t catalog_metric_names(const tallyd_config_t *cfg);

/* Declare cfg's townships, metrics and ratios in t.  The built-in catalog
 * (cfg->catalog_builtin) gives way to the state: a metric whose series
 * hold another kind (made by an older tallyd) keeps it, and err receives a
 * warning while 0 is returned.  A configured metric whose series hold
 * another kind
 * is refused; a ratio that exists already is kept as it is (reload checks
 * beforehand that its inputs did not change).  Returns 0, or
 * TALLY_ECONFIG with a sentence naming the line, the value and the
 * conflict in err[0..len) (the catalog may then be declared in part). */
int catalog_declare(const catalog_target_t *t, const tallyd_config_t *cfg, char *err, size_t len);

#endif
