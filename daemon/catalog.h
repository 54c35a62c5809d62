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
#include <stdint.h>

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

/* A metric's integers stand for v / 10^scale (PROTOCOL.md 10.6): the same
 * tallies read at another scale would be other figures (12.5 hectares
 * saved as 125 read as 1.25).  So cfg may not give a metric with tallies
 * in t another scale than the one they were counted at
 * (engine_metric_scale; none known: any), nor leave undeclared one with a
 * scale (an undeclared metric has none).  TALLY_ECONFIG with the reason
 * in err[0..len), else 0; nothing changes. */
int catalog_check_scales(const catalog_target_t *t, const tallyd_config_t *cfg, char *err,
                         size_t len);

/* Declare cfg's townships, metrics and ratios in t, and the metrics'
 * decimal scales (refused first as catalog_check_scales says).  The built-in catalog
 * (cfg->catalog_builtin) gives way to the state: a metric whose series
 * hold another kind (made by an older tallyd) keeps it, and err receives a
 * warning while 0 is returned.  A configured metric whose series hold
 * another kind
 * is refused; a ratio that exists already is kept as it is (reload checks
 * beforehand that its inputs did not change).  Once all is declared,
 * every ratio the engine holds gets its operands' decimal scales from cfg
 * (0 for an operand cfg does not declare): engine_ratio_set_scales.
 * Returns 0, or TALLY_ECONFIG with a sentence naming the line, the value
 * and the conflict in err[0..len) (the catalog may then be declared in
 * part, the scales left as they were). */
int catalog_declare(const catalog_target_t *t, const tallyd_config_t *cfg, char *err, size_t len);

/* Which names of the name tables a configuration declares.  The tables
 * also hold the names the state brought (a checkpoint, the journal, the
 * history): a township or a metric dropped from a closed catalog keeps its
 * id and its tallies, but is no longer declared, and a new submission
 * naming it is refused as for an unknown one. */
typedef struct catalog_declared {
    uint8_t *town;   /* by township id: 1 when declared */
    uint32_t ntown;  /* entries of town */
    uint8_t *metric; /* by metric id: 1 when declared (metrics and ratios) */
    uint32_t nmetric;
} catalog_declared_t;

/* Fill *d (empty or set before; replaced as a whole) with the townships,
 * metrics and ratios cfg declares, looked up in towns and metrics, where
 * catalog_declare() put them.  Returns 0, or TALLY_ENOMEM (*d unchanged). */
int catalog_declared_set(catalog_declared_t *d, const tallyd_config_t *cfg, const intern_t *towns,
                         const intern_t *metrics);

/* Free what *d holds; it is empty (declares nothing) afterwards. */
void catalog_declared_free(catalog_declared_t *d);

/* Whether the township (metric) id is declared. */
static inline bool catalog_declares_town(const catalog_declared_t *d, uint32_t id)
{
    return id < d->ntown && d->town[id] != 0;
}

static inline bool catalog_declares_metric(const catalog_declared_t *d, uint32_t id)
{
    return id < d->nmetric && d->metric[id] != 0;
}

#endif
