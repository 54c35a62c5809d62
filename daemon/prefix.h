/* prefix.h - tallyd (daemon/): which series a topic prefix of a request
 * selects (PROTOCOL.md 9.2: SNAPSHOT_REQ, PERIOD_REQ, SPAN_REQ).
 *
 * A prefix that names the county ("u/county/...") or one township
 * ("u/town/<township>/...") can only select that scope's series, which
 * the engine finds metric by metric (engine_foreach_town) without
 * walking every series: with a million series that is the difference
 * between a lookup and a walk for a question about one township. */
#ifndef TALLYD_PREFIX_H
#define TALLYD_PREFIX_H

#include <stdbool.h>
#include <stdint.h>

#include "intern.h"
#include "proto.h"

/* Whether the topic of series (metric, town) (town 0: the county's),
 * named by metrics and towns, starts with prefix. */
bool prefix_matches(const intern_t *metrics, const intern_t *towns, uint32_t metric, uint32_t town,
                    proto_str_t prefix);

/* What a prefix names in full: the county ("u/county/..."), or a
 * township ("u/town/<township>/..."), and after either a metric
 * ("<metric>/...").  A name not yet ended by its '/' ("u/town/gao") is
 * not named: the prefix may match several. */
typedef struct prefix_parts {
    bool county;
    proto_str_t town;   /* ptr NULL: none named (len 0 with a ptr: an empty name) */
    proto_str_t metric; /* likewise */
} prefix_parts_t;

void prefix_split(proto_str_t prefix, prefix_parts_t *out);

/* The one scope prefix can select series of, when it names one: the
 * township's id in towns (0 the county) into *town.  false when it may
 * select several scopes ("", "u/", "u/town/", "u/town/gao") or names a
 * township towns does not hold. */
bool prefix_scope(const intern_t *towns, proto_str_t prefix, uint32_t *town);

#endif
