/* catalog.h - libtally (client/lib/, private): the catalog object that
 * tally_catalog_req fills page by page (oneshot.c) and applications read
 * through tally.h. */
#ifndef TALLY_LIB_CATALOG_H
#define TALLY_LIB_CATALOG_H

#include "proto.h"
#include "tally.h"

/* An empty catalog with this id, or NULL when out of memory. */
tally_catalog_t *catalog_new(uint64_t id);

/* Append a decoded entry (its strings copied).  0 or TALLY_ENOMEM. */
int catalog_add_township(tally_catalog_t *c, const proto_township_t *t);
int catalog_add_metric(tally_catalog_t *c, const proto_metric_info_t *m);

/* Build the lookup indexes once every entry is in.  0 or TALLY_ENOMEM. */
int catalog_finish(tally_catalog_t *c);

#endif
