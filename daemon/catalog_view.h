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
 *
 * A closed township catalog is followed by the townships it no longer
 * declares that still have tallies (catalog_view_held), so that a client
 * listing the catalog's townships shows every township the county's
 * tallies add up, each of those named "<id> (no longer declared)".
 */
#ifndef TALLYD_CATALOG_VIEW_H
#define TALLYD_CATALOG_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "intern.h"
#include "proto.h"
#include "townlist.h"

typedef struct catalog_view {
    const tallyd_config_t *cfg; /* borrowed */
    uint64_t id;                /* of the content; see catalog_view_set */
    /* The metrics and ratios in catalog order: i >= 0 is cfg->metrics[i],
     * i < 0 is cfg->ratios[-i - 1]. */
    int64_t *order;
    size_t norder;
    /* The townships that have series and the closed catalog does not
     * declare, in id order (catalog_view_held), listed after cfg's. */
    struct catalog_view_held {
        char id[PROTO_NAME_MAX + 1];
        char name[PROTO_NAME_MAX + 1];
    } * held;
    size_t nheld, held_cap;
    uint32_t held_seen; /* the township list's series looked at for them */
    bool held_stale;    /* the catalog was set since they were found */
    uint64_t cfg_id;    /* the id of cfg's catalog alone */
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

/* List after the declared townships, when the township catalog is
 * closed, those that have series (has, brought up to date by the caller
 * with townlist_update()) but that it does not declare: a township
 * dropped from the file keeps its tallies, which the county's include.
 * Each is listed with its id (from towns), the name "<id> (no longer
 * declared)" ("" when that would be longer than a name may be, or a
 * declared township's name) and type 0, in id order; the view's id
 * changes with the list.  Looks for them again only when has has looked
 * at new series or the catalog was set since the last call.  Returns 0,
 * or TALLY_ENOMEM (the list stays as it was). */
int catalog_view_held(catalog_view_t *v, const intern_t *towns, const townlist_t *has);

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
