/* catalog_view.h - the catalog as clients read it (PROTOCOL.md 8.17):
 * townships and metrics in catalog order, an id that changes with the
 * catalog, and the pages of CATALOG replies.
 *
 * A view is built from a configuration (at start and after each reload)
 * and borrows it: the configuration must stay alive, unchanged, until the
 * view is set again or freed.  Catalog order is the order of the file:
 * townships as declared; metrics and ratios merged by the line of their
 * section, so that a ratio may follow its operands (the built-in catalog,
 * which has no lines, lists its metrics, then its ratios).
 */
#ifndef TALLYD_CATALOG_VIEW_H
#define TALLYD_CATALOG_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "proto.h"

typedef struct catalog_view {
    const tallyd_config_t *cfg; /* borrowed */
    uint64_t id;                /* of the content; see catalog_view_set */
    /* The metrics and ratios in catalog order: i >= 0 is cfg->metrics[i],
     * i < 0 is cfg->ratios[-i - 1]. */
    int64_t *order;
    size_t norder;
    /* A page's entries, reused from one reply to the next. */
    proto_township_t *towns;
    size_t towns_cap;
    proto_metric_info_t *metrics;
    size_t metrics_cap;
} catalog_view_t;

/* Start v empty (no townships, no metrics, id 0). */
void catalog_view_init(catalog_view_t *v);

/* Make v show cfg's catalog (borrowed).  Its id is the first 8 bytes of
 * the BLAKE2b hash of every field a CATALOG carries, so it changes
 * exactly when what clients read changes.  Returns 0, or TALLY_ENOMEM
 * (v is then empty: the configuration it showed may be gone). */
int catalog_view_set(catalog_view_t *v, const tallyd_config_t *cfg);

/* Release what v holds; it is empty afterwards. */
void catalog_view_free(catalog_view_t *v);

/* Numbers of townships and of metrics (ratios included) in the view. */
uint32_t catalog_view_townships(const catalog_view_t *v);
uint32_t catalog_view_metrics(const catalog_view_t *v);

/* Fill *m with the CATALOG answering req_id: the townships from
 * townships_from on, then the metrics from metrics_from on, as many as
 * fit in a body of max_bytes (at least one entry when one remains; pass
 * PROTO_CATALOG_BYTES).  The entries live in v until the next call.
 * Returns 0 or TALLY_ENOMEM. */
int catalog_view_page(catalog_view_t *v, uint64_t req_id, uint32_t townships_from,
                      uint32_t metrics_from, size_t max_bytes, proto_msg_t *m);

#endif
