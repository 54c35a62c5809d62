/* period.c - calendar periods of the tally engine (see period.h). */
#include "period.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tally_error.h"

#define NIL                UINT32_MAX
#define PERIOD_CHUNK_SHIFT 10
#define PERIOD_CHUNK       (1u << PERIOD_CHUNK_SHIFT)

static const char *const names[PERIOD_COUNT] = {"today", "month", "quarter", "year"};

const char *period_name(uint32_t p)
{
    return p < PERIOD_COUNT ? names[p] : "?";
}

/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d (m 1..12),
 * after Howard Hinnant's days_from_civil: exact for every date, leap days
 * included, without a table. */
static int32_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + doe - 719468);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int period_zone_check(const char *zone)
{
    if (zone == NULL) {
        return TALLY_EINVAL;
    }
    size_t n = strlen(zone);
    if (n == 0 || n > PERIOD_ZONE_MAX || zone[0] == '/' || strstr(zone, "..") != NULL) {
        return TALLY_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        char c = zone[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '/' || c == '_' || c == '-' || c == '+';
        if (!ok) {
            return TALLY_EINVAL;
        }
    }
    /* glibc silently falls back to UTC for a zone it cannot load, which would
     * shift every calendar period by hours without a word; look for the file
     * where the C library will look, so a typo fails loudly at start-up. */
    const char *dir = getenv("TZDIR");
    if (dir == NULL || dir[0] == '\0') {
        dir = "/usr/share/zoneinfo";
    }
    char path[PATH_MAX];
    int len = snprintf(path, sizeof(path), "%s/%s", dir, zone);
    struct stat st;
    if (len < 0 || (size_t)len >= sizeof(path) || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        return TALLY_EINVAL;
    }
    return 0;
}

int period_zone_apply(const char *zone)
{
    int rc = period_zone_check(zone);
    if (rc != 0) {
        return rc;
    }
    if (setenv("TZ", zone, 1) != 0) {
        return TALLY_ESYS;
    }
    tzset();
    return 0;
}

int period_day_of(int64_t t_ms, period_day_t *out)
{
    time_t ts = (time_t)floor_div(t_ms, 1000);
    struct tm tm;
    if (localtime_r(&ts, &tm) == NULL) {
        return TALLY_ERANGE;
    }
    /* The day's bounds come from mktime() rather than from "midnight plus
     * 24 hours", so a zone with daylight saving time gets its 23- and
     * 25-hour days right. */
    struct tm a;
    memset(&a, 0, sizeof(a));
    a.tm_year = tm.tm_year;
    a.tm_mon = tm.tm_mon;
    a.tm_mday = tm.tm_mday;
    a.tm_isdst = -1;
    struct tm b = a;
    b.tm_mday += 1;
    time_t start = mktime(&a);
    time_t end = mktime(&b);
    if (start == (time_t)-1 || end == (time_t)-1 || start > ts || end <= ts) {
        /* A zone whose day does not start at a representable midnight: fall
         * back to a one-second "day", which is slower but still exact. */
        start = ts;
        end = ts + 1;
    }
    int year = tm.tm_year + 1900;
    out->start_ms = (int64_t)start * 1000;
    out->end_ms = (int64_t)end * 1000;
    out->key[PERIOD_DAY] = days_from_civil(year, tm.tm_mon + 1, tm.tm_mday);
    out->key[PERIOD_MONTH] = year * 12 + tm.tm_mon;
    out->key[PERIOD_QUARTER] = year * 4 + tm.tm_mon / 3;
    out->key[PERIOD_YEAR] = year;
    return 0;
}

static inline period_slot_t *slot_of(const period_set_t *ps, uint32_t node, uint32_t p)
{
    return &ps->chunks[node >> PERIOD_CHUNK_SHIFT][(node & (PERIOD_CHUNK - 1)) * PERIOD_COUNT + p];
}

int period_set_init(period_set_t *ps, uint32_t max_nodes, int64_t now_ms)
{
    memset(ps, 0, sizeof(*ps));
    int rc = period_day_of(now_ms, &ps->today);
    if (rc != 0) {
        return rc;
    }
    ps->other = ps->today;
    for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
        ps->heads[p] = NIL;
    }
    ps->maxchunks = (uint32_t)(((uint64_t)max_nodes + PERIOD_CHUNK - 1) >> PERIOD_CHUNK_SHIFT);
    ps->chunks = calloc(ps->maxchunks ? ps->maxchunks : 1, sizeof(*ps->chunks));
    if (ps->chunks == NULL) {
        return TALLY_ENOMEM;
    }
    ps->mem = (ps->maxchunks ? ps->maxchunks : 1) * sizeof(*ps->chunks);
    return 0;
}

void period_set_free(period_set_t *ps)
{
    for (uint32_t i = 0; i < ps->nchunks; i++) {
        free(ps->chunks[i]);
    }
    free(ps->chunks);
    free(ps->ahead);
    free(ps->aindex);
    memset(ps, 0, sizeof(*ps));
}

void period_set_regions(const period_set_t *ps, memhint_region_fn fn, void *ctx)
{
    for (uint32_t i = 0; i < ps->nchunks; i++) {
        fn(ctx, ps->chunks[i], (size_t)PERIOD_CHUNK * PERIOD_COUNT * sizeof(period_slot_t));
    }
    if (ps->nahead > 0) {
        fn(ctx, ps->ahead, (size_t)ps->nahead * sizeof(*ps->ahead));
    }
    if (ps->aindex != NULL) {
        fn(ctx, ps->aindex, ((size_t)ps->amask + 1) * sizeof(*ps->aindex));
    }
}

int period_reserve(period_set_t *ps, uint32_t nodes)
{
    uint32_t need = (uint32_t)(((uint64_t)nodes + PERIOD_CHUNK - 1) >> PERIOD_CHUNK_SHIFT);
    if (need > ps->maxchunks) {
        /* More nodes than the set was first sized for (a limit raised):
         * only the table of chunks moves, never a node. */
        uint32_t had = ps->maxchunks ? ps->maxchunks : 1;
        uint64_t cap = (uint64_t)had * 2;
        cap = cap < need ? need : cap;
        period_slot_t **c = realloc(ps->chunks, cap * sizeof(*c));
        if (c == NULL) {
            return TALLY_ENOMEM;
        }
        ps->mem += (cap - had) * sizeof(*c);
        ps->chunks = c;
        ps->maxchunks = (uint32_t)cap;
    }
    while (ps->nchunks < need) {
        size_t bytes = (size_t)PERIOD_CHUNK * PERIOD_COUNT * sizeof(period_slot_t);
        period_slot_t *c = malloc(bytes);
        if (c == NULL) {
            return TALLY_ENOMEM;
        }
        memhint_populate(c, bytes); /* filled in order from now */
        ps->chunks[ps->nchunks++] = c;
        ps->mem += bytes;
    }
    return 0;
}

void period_node_init(period_set_t *ps, uint32_t node)
{
    for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
        period_slot_t *s = slot_of(ps, node, p);
        s->sum = 0;
        s->key = INT32_MIN;
        s->next = NIL;
    }
}

/* ---- the ahead table ---- */

static uint32_t ahead_hash(uint32_t node, uint32_t p)
{
    uint64_t k = ((uint64_t)node << 2 | p) * 0x9e3779b97f4a7c15ULL;
    return (uint32_t)(k >> 32);
}

/* The index slot of (node, p): where its entry is, or the empty slot where
 * it would go.  The index must exist. */
static uint32_t ahead_find(const period_set_t *ps, uint32_t node, uint32_t p)
{
    for (uint32_t i = ahead_hash(node, p) & ps->amask;; i = (i + 1) & ps->amask) {
        uint32_t v = ps->aindex[i];
        if (v == 0 || (ps->ahead[v - 1].node == node && ps->ahead[v - 1].p == p)) {
            return i;
        }
    }
}

/* Index the entries again in slots index slots (a power of 2). */
static int ahead_reindex(period_set_t *ps, uint32_t slots)
{
    uint32_t *ix = calloc(slots, sizeof(*ix));
    if (ix == NULL) {
        return TALLY_ENOMEM;
    }
    ps->mem -= ps->amask ? ((size_t)ps->amask + 1) * sizeof(*ix) : 0;
    free(ps->aindex);
    ps->aindex = ix;
    ps->amask = slots - 1;
    ps->mem += (size_t)slots * sizeof(*ix);
    for (uint32_t i = 0; i < ps->nahead; i++) {
        ix[ahead_find(ps, ps->ahead[i].node, ps->ahead[i].p)] = i + 1;
    }
    return 0;
}

int period_reserve_ahead(period_set_t *ps, uint32_t n)
{
    uint64_t need = (uint64_t)ps->nahead + n;
    if (need > UINT32_MAX / 4) {
        return TALLY_ENOMEM;
    }
    if (need > ps->ahead_cap) {
        uint32_t cap = ps->ahead_cap ? ps->ahead_cap : 16;
        while (cap < need) {
            cap *= 2;
        }
        period_ahead_t *a = realloc(ps->ahead, (size_t)cap * sizeof(*a));
        if (a == NULL) {
            return TALLY_ENOMEM;
        }
        ps->mem += (size_t)(cap - ps->ahead_cap) * sizeof(*a);
        ps->ahead = a;
        ps->ahead_cap = cap;
    }
    uint32_t slots = ps->amask ? ps->amask + 1 : 0;
    if (need * 2 > slots) {
        slots = slots ? slots : 32;
        while (need * 2 > slots) {
            slots *= 2;
        }
        return ahead_reindex(ps, slots);
    }
    return 0;
}

/* The ahead entry of (node, p), or NULL. */
static period_ahead_t *ahead_get(const period_set_t *ps, uint32_t node, uint32_t p)
{
    if (ps->nahead == 0) {
        return NULL;
    }
    uint32_t v = ps->aindex[ahead_find(ps, node, p)];
    return v ? &ps->ahead[v - 1] : NULL;
}

void period_locate(period_set_t *ps, int64_t t_ms, period_pos_t *pos)
{
    const period_day_t *d;
    if (t_ms >= ps->today.start_ms && t_ms < ps->today.end_ms) {
        d = &ps->today;
    } else if (t_ms >= ps->other.start_ms && t_ms < ps->other.end_ms) {
        d = &ps->other;
    } else if (period_day_of(t_ms, &ps->other) == 0) {
        d = &ps->other;
    } else {
        /* Unreachable for the times the engine accepts (2000..2100). */
        ps->other = ps->today;
        for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
            pos->key[p] = INT32_MIN;
            pos->slot[p] = -1;
        }
        return;
    }
    for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
        int32_t k = d->key[p];
        int32_t c = ps->today.key[p];
        pos->key[p] = k;
        pos->slot[p] = k == c ? 0 : k == c + 1 ? 1 : -1;
    }
}

/* The node's sum of period p for key (0 when it has nothing for it). */
static int64_t value_at(const period_set_t *ps, uint32_t node, uint32_t p, int32_t key)
{
    if (key == ps->today.key[p]) {
        const period_slot_t *s = slot_of(ps, node, p);
        return s->key == key ? s->sum : 0;
    }
    const period_ahead_t *a = key == ps->today.key[p] + 1 ? ahead_get(ps, node, p) : NULL;
    return a != NULL && a->key == key ? a->sum : 0;
}

void period_bounds(const period_set_t *ps, uint32_t node, const period_pos_t *pos, __int128 *lo,
                   __int128 *hi)
{
    for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
        if (pos->slot[p] < 0) {
            continue;
        }
        __int128 cell = value_at(ps, node, p, pos->key[p]);
        if ((__int128)INT64_MIN - cell > *lo) {
            *lo = (__int128)INT64_MIN - cell;
        }
        if ((__int128)INT64_MAX - cell < *hi) {
            *hi = (__int128)INT64_MAX - cell;
        }
    }
}

void period_add(period_set_t *ps, uint32_t node, const period_pos_t *pos, __int128 v)
{
    for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
        if (pos->slot[p] == 0) {
            period_slot_t *s = slot_of(ps, node, p);
            if (s->key != pos->key[p]) {
                /* The slot held an older period, which is over: start the
                 * current one and join its list. */
                s->key = pos->key[p];
                s->sum = 0;
                s->next = ps->heads[p];
                ps->heads[p] = node;
            }
            s->sum = (int64_t)(s->sum + v);
        } else if (pos->slot[p] == 1) {
            uint32_t i = ahead_find(ps, node, p); /* the caller reserved: an index exists */
            if (ps->aindex[i] == 0) {
                period_ahead_t *a = &ps->ahead[ps->nahead];
                a->node = node;
                a->p = p;
                a->key = pos->key[p];
                a->sum = 0;
                ps->aindex[i] = ++ps->nahead;
            }
            period_ahead_t *a = &ps->ahead[ps->aindex[i] - 1];
            if (a->key != pos->key[p]) {
                a->key = pos->key[p];
                a->sum = 0;
            }
            a->sum = (int64_t)(a->sum + v);
        }
    }
}

void period_prefetch(const period_set_t *ps, uint32_t node)
{
    const period_slot_t *s = slot_of(ps, node, 0);
    __builtin_prefetch(s, 1);
    __builtin_prefetch(s + PERIOD_COUNT - 1, 1);
}

int64_t period_value(const period_set_t *ps, uint32_t node, uint32_t p)
{
    const period_slot_t *s = slot_of(ps, node, p);
    return s->key == ps->today.key[p] ? s->sum : 0;
}

int period_advance(period_set_t *ps, int64_t now_ms, period_changed_fn fn, void *ctx)
{
    if (now_ms < ps->today.end_ms) {
        return 0;
    }
    period_day_t nd;
    int rc = period_day_of(now_ms, &nd);
    if (rc != 0) {
        return rc;
    }
    bool dropped = false;
    for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
        int32_t c = ps->today.key[p];
        int32_t c2 = nd.key[p];
        if (c2 == c) {
            continue;
        }
        /* The nodes listed held the period that ends; what they hold next
         * is their ahead sum when c2 is the period after c, else nothing.
         * Every other node reads 0 before, and after unless it has an
         * ahead sum for c2. */
        for (uint32_t node = ps->heads[p]; node != NIL;) {
            const period_slot_t *s = slot_of(ps, node, p);
            const period_ahead_t *a = c2 == c + 1 ? ahead_get(ps, node, p) : NULL;
            int64_t before = s->key == c ? s->sum : 0;
            int64_t after = a != NULL && a->key == c2 ? a->sum : 0;
            if (before != after) {
                fn(ctx, node);
            }
            node = s->next;
        }
        ps->heads[p] = NIL;
        for (uint32_t i = 0; i < ps->nahead; i++) {
            period_ahead_t *a = &ps->ahead[i];
            if (a->p != p) {
                continue;
            }
            dropped = true;
            if (a->key != c2) {
                continue;
            }
            period_slot_t *s = slot_of(ps, a->node, p);
            if (s->key != c && a->sum != 0) {
                fn(ctx, a->node); /* not listed above: it read 0 */
            }
            s->key = c2;
            s->sum = a->sum;
            s->next = ps->heads[p];
            ps->heads[p] = a->node;
        }
    }
    ps->today = nd;
    if (dropped) {
        /* Keep the ahead entries of the periods that did not end (which are
         * still ahead), and index them again. */
        uint32_t k = 0;
        for (uint32_t i = 0; i < ps->nahead; i++) {
            const period_ahead_t *a = &ps->ahead[i];
            if (a->key == ps->today.key[a->p] + 1) {
                ps->ahead[k++] = *a;
            }
        }
        ps->nahead = k;
        memset(ps->aindex, 0, ((size_t)ps->amask + 1) * sizeof(*ps->aindex));
        for (uint32_t i = 0; i < ps->nahead; i++) {
            ps->aindex[ahead_find(ps, ps->ahead[i].node, ps->ahead[i].p)] = i + 1;
        }
    }
    return 0;
}

int64_t period_value_at(const period_set_t *ps, uint32_t node, uint32_t p, int32_t key)
{
    return value_at(ps, node, p, key);
}
