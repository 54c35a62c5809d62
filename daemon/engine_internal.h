/* engine_internal.h - internals of the tally engine shared by its storage
 * and apply side (engine.c) and its reading side (engine_read.c): how a
 * series id maps to its header, how the index maps (metric, town) to a
 * series id, and a metric's kind.  Not for use outside those two files:
 * the short names are theirs, and the layout behind them may change with
 * engine.c.
 *
 * These are defined here, not as functions of engine.c, because they sit
 * on the hot paths of both files (every sample applied, every value read
 * and published): a call into engine.c would cost more than ser() itself.
 */
#ifndef TALLYD_ENGINE_INTERNAL_H
#define TALLYD_ENGINE_INTERNAL_H

#include <stdint.h>

#include "engine.h"

#define SER_CHUNK_SHIFT 12
#define SER_CHUNK       (1u << SER_CHUNK_SHIFT)

/* The header of series sid (< e->nseries); it lives in a chunk of
 * SER_CHUNK headers, so its address never changes. */
static inline engine_series_t *ser(const engine_t *e, uint32_t sid)
{
    return &e->chunks[sid >> SER_CHUNK_SHIFT][sid & (SER_CHUNK - 1)];
}

/* engine_metric_kind(), inlined: engine_read() asks it on every read. */
static inline uint8_t metric_kind(const engine_t *e, uint32_t metric)
{
    return metric < e->nmetrics ? e->metrics[metric].kind : PROTO_KIND_COUNTER;
}

static inline uint32_t key_hash(const engine_t *e, uint32_t metric, uint32_t town)
{
    uint64_t k = (((uint64_t)metric << 32) | town) ^ e->seed;
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

/* The series index is a table of its own, not an intern_t, because it is
 * probed for every sample of every submission (engine_check, engine_apply)
 * and every read, with keys that are two ids packed in 64 bits rather
 * than names.
 *
 * A slot holds the key's hash next to the series id, so that a probe
 * reads a series header (a cache miss, with many series) only when the
 * hashes match: a missing series costs none, a present one one. */
static inline uint64_t slot_of(uint32_t h, uint32_t sid)
{
    return (uint64_t)h << 32 | (sid + 1);
}

/* The id of series (metric, town), or ENGINE_NONE.  Static but not
 * inline, as it was in engine.c before the split: each including file's
 * compiler decides (it is called from many places and is not small), so
 * the split changes no inlining.  Include this header only where find() is
 * used, or the compiler warns that it is unused. */
static uint32_t find(const engine_t *e, uint32_t metric, uint32_t town)
{
    uint32_t h = key_hash(e, metric, town);
    for (uint32_t i = h & e->index_mask;; i = (i + 1) & e->index_mask) {
        uint64_t v = e->index[i];
        if (v == 0) {
            return ENGINE_NONE;
        }
        if ((uint32_t)(v >> 32) != h) {
            continue;
        }
        uint32_t sid = (uint32_t)v - 1;
        const engine_series_t *s = ser(e, sid);
        if (s->metric == metric && s->town == town) {
            return sid;
        }
    }
}

#endif
