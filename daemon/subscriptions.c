/* subscriptions.c - per-connection subscription limits. */
#include "subscriptions.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "vec.h"

/* One connection: its prefixes packed in buf as a 2-byte length (host
 * order) then the bytes, in the order subscribed. */
struct subs_conn {
    uint64_t conn;
    uint64_t used; /* s->clock when last touched */
    uint32_t count, bytes;
    uint8_t *buf;
    size_t len, cap;
};

#define PREFIX_HDR 2

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

void subscriptions_init(subscriptions_t *s, const subscriptions_limits_t *lim)
{
    memset(s, 0, sizeof(*s));
    s->lim = *lim;
    if (s->lim.max_conns == 0)
        s->lim.max_conns = 1;
}

void subscriptions_free(subscriptions_t *s)
{
    for (size_t i = 0; i < s->nconns; i++)
        free(s->conns[i].buf);
    free(s->conns);
    free(s->index);
    memset(s, 0, sizeof(*s));
}

void subscriptions_set_limits(subscriptions_t *s, const subscriptions_limits_t *lim)
{
    s->lim = *lim;
    if (s->lim.max_conns == 0)
        s->lim.max_conns = 1;
}

/* The index slot holding conn, or the empty slot where it would go. */
static size_t slot_of(const subscriptions_t *s, uint64_t conn)
{
    size_t mask = s->index_cap - 1, i = (size_t)mix(conn) & mask;
    while (s->index[i] != 0 && s->conns[s->index[i] - 1].conn != conn)
        i = (i + 1) & mask;
    return i;
}

/* Rebuild the index for the records as they are, at least twice as large
 * as there are records (so probes stay short and a free slot exists). */
static int reindex(subscriptions_t *s, size_t want)
{
    size_t cap = 64;
    while (cap < 2 * want)
        cap *= 2;
    uint32_t *idx = calloc(cap, sizeof(*idx));
    if (idx == NULL)
        return -1;
    free(s->index);
    s->index = idx;
    s->index_cap = cap;
    for (size_t r = 0; r < s->nconns; r++)
        s->index[slot_of(s, s->conns[r].conn)] = (uint32_t)(r + 1);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Forget the eighth of the connections idle longest (at least one), then
 * rebuild the index: amortised over the connections that made room, each
 * insertion costs a constant. */
static void forget_oldest(subscriptions_t *s)
{
    size_t n = s->nconns, drop = n / 8 > 0 ? n / 8 : 1;
    uint64_t *used = malloc(n * sizeof(*used));
    uint64_t limit;
    if (used != NULL) {
        for (size_t i = 0; i < n; i++)
            used[i] = s->conns[i].used;
        qsort(used, n, sizeof(*used), cmp_u64);
        limit = used[drop - 1];
        free(used);
    } else {
        limit = UINT64_MAX; /* no memory: forget everything rather than grow */
    }
    size_t w = 0;
    for (size_t r = 0; r < n; r++) {
        if (s->conns[r].used <= limit)
            free(s->conns[r].buf);
        else
            s->conns[w++] = s->conns[r];
    }
    s->nconns = w;
    if (reindex(s, s->lim.max_conns) != 0) {
        free(s->index); /* stale now: record_of() builds it again */
        s->index = NULL;
        s->index_cap = 0;
    }
}

/* The record of conn, created (forgetting old ones if need be) when
 * absent.  NULL when out of memory. */
static subs_conn_t *record_of(subscriptions_t *s, uint64_t conn)
{
    if (s->index == NULL && reindex(s, s->lim.max_conns) != 0)
        return NULL;
    size_t i = slot_of(s, conn);
    if (s->index[i] != 0)
        return &s->conns[s->index[i] - 1];
    if (s->nconns >= s->lim.max_conns) {
        forget_oldest(s);
        if (s->index == NULL)
            return NULL;
    }
    if (2 * (s->nconns + 1) > s->index_cap && reindex(s, s->nconns + 1) != 0)
        return NULL;
    if (VEC_RESERVE(s->conns, s->cap, s->nconns + 1) < 0)
        return NULL;
    i = slot_of(s, conn);
    s->conns[s->nconns] = (subs_conn_t){.conn = conn};
    s->index[i] = (uint32_t)++s->nconns;
    return &s->conns[s->nconns - 1];
}

/* The offset in c->buf of the entry for p[0..len), or -1. */
static long find(const subs_conn_t *c, const uint8_t *p, size_t len)
{
    size_t at = 0;
    while (at < c->len) {
        uint16_t n;
        memcpy(&n, c->buf + at, PREFIX_HDR);
        if (n == len && memcmp(c->buf + at + PREFIX_HDR, p, len) == 0)
            return (long)at;
        at += PREFIX_HDR + n;
    }
    return -1;
}

int subscriptions_on_message(subscriptions_t *s, uint64_t conn, const void *msg, size_t len)
{
    const uint8_t *m = msg;
    if (len == 0 || (m[0] != 0 && m[0] != 1))
        return SUBS_IGNORE;
    const uint8_t *p = m + 1;
    size_t plen = len - 1;
    bool sub = m[0] == 1;
    if (sub && !proto_topic_prefix_possible(p, plen))
        return SUBS_REFUSE_TOPIC; /* before any record: junk costs nothing */
    s->clock++;
    subs_conn_t *c = record_of(s, conn);
    if (c == NULL)
        return sub ? SUBS_REFUSE_MEMORY : SUBS_IGNORE;
    c->used = s->clock;
    long at = find(c, p, plen);
    if (!sub) {
        if (at < 0)
            return SUBS_IGNORE;
        size_t n = PREFIX_HDR + plen;
        memmove(c->buf + at, c->buf + at + n, c->len - (size_t)at - n);
        c->len -= n;
        c->count--;
        c->bytes -= (uint32_t)plen;
        return SUBS_UNSUBSCRIBE;
    }
    if (at >= 0)
        return SUBS_SUBSCRIBE; /* held already: applying again changes nothing */
    if (c->count >= s->lim.max_count)
        return SUBS_REFUSE_COUNT;
    if (c->bytes + plen > s->lim.max_bytes)
        return SUBS_REFUSE_BYTES;
    if (VEC_RESERVE(c->buf, c->cap, c->len + PREFIX_HDR + plen) < 0)
        return SUBS_REFUSE_MEMORY;
    uint16_t n = (uint16_t)plen; /* plen <= PROTO_TOPIC_MAX */
    memcpy(c->buf + c->len, &n, PREFIX_HDR);
    memcpy(c->buf + c->len + PREFIX_HDR, p, plen);
    c->len += PREFIX_HDR + plen;
    c->count++;
    c->bytes += (uint32_t)plen;
    return SUBS_SUBSCRIBE;
}

size_t subscriptions_count(const subscriptions_t *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nconns; i++)
        n += s->conns[i].count;
    return n;
}

size_t subscriptions_conns(const subscriptions_t *s)
{
    return s->nconns;
}

const char *subscriptions_verdict_name(int verdict)
{
    switch (verdict) {
    case SUBS_REFUSE_TOPIC:
        return "no topic begins with it";
    case SUBS_REFUSE_COUNT:
        return "the connection holds max_subscriptions prefixes already";
    case SUBS_REFUSE_BYTES:
        return "the connection's prefixes would pass max_subscription_bytes";
    case SUBS_REFUSE_MEMORY:
        return "out of memory";
    default:
        return "accepted";
    }
}
