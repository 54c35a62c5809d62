/* sub_store.c - libtally (client/lib/): the subscriber's table of
 * tallies, keyed by topic. */
#include "sub_store.h"

#include <stdlib.h>
#include <string.h>

#include "text.h"

/* The topic of t into buf (PROTO_TOPIC_MAX + 1 bytes); its length. */
static size_t topic_of(char *buf, const proto_tally_t *t)
{
    int len = proto_topic(buf, PROTO_TOPIC_MAX + 1, t->metric, t->scope);
    if (len < 0) {
        buf[0] = '\0'; /* cannot happen for names the decoder accepted */
        return 0;
    }
    return (size_t)len;
}

/* sub_entry_put() with t's topic already formatted. */
static sub_entry_t *entry_put(sub_entry_t *e, const proto_tally_t *t, const char *topic,
                              size_t tlen)
{
    unsigned n = t->nvalues < PROTO_COLUMNS_MAX ? t->nvalues : PROTO_COLUMNS_MAX;
    size_t need = t->metric.len + t->scope.len + tlen + 3;
    for (unsigned i = 0; i < n; i++)
        need += t->values[i].name.len + 1;
    if (e == NULL || e->room < need) {
        sub_entry_t *b = realloc(e, sizeof(*b) + need);
        if (b == NULL)
            return NULL;
        e = b;
        e->room = (uint32_t)need;
    }
    char *p = e->text;
    e->pub.metric = text_put(&p, t->metric.ptr, t->metric.len);
    e->pub.scope = text_put(&p, t->scope.ptr, t->scope.len);
    e->pub.topic = text_put(&p, topic, tlen);
    e->pub.kind = t->kind;
    e->pub.seq = t->seq;
    e->pub.time_ms = t->time_ms;
    e->pub.nvalues = n;
    for (unsigned i = 0; i < n; i++) {
        const proto_value_t *v = &t->values[i];
        e->pub.values[i].column = text_put(&p, v->name.ptr, v->name.len);
        e->pub.values[i].present = v->present;
        e->pub.values[i].num = v->present ? v->num : 0;
        e->pub.values[i].den = v->present ? v->den : 1;
    }
    return e;
}

sub_entry_t *sub_entry_put(sub_entry_t *e, const proto_tally_t *t)
{
    char topic[PROTO_TOPIC_MAX + 1];
    size_t tlen = topic_of(topic, t);
    return entry_put(e, t, topic, tlen);
}

void sub_store_init(sub_store_t *s)
{
    s->slots = NULL;
    s->cap = 0;
    s->n = 0;
}

void sub_store_clear(sub_store_t *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    sub_store_init(s);
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static size_t find_slot(sub_entry_t *const *slots, size_t cap, const char *topic)
{
    size_t i = (size_t)hash(topic) & (cap - 1);
    while (slots[i] != NULL && strcmp(slots[i]->pub.topic, topic) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

static int grow(sub_store_t *s)
{
    size_t ncap = s->cap ? s->cap * 2 : 64;
    sub_entry_t **ns = calloc(ncap, sizeof *ns);
    if (ns == NULL)
        return TALLY_ENOMEM;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i] != NULL)
            ns[find_slot(ns, ncap, s->slots[i]->pub.topic)] = s->slots[i];
    free(s->slots);
    s->slots = ns;
    s->cap = ncap;
    return 0;
}

sub_entry_t *sub_store_find(const sub_store_t *s, const char *topic)
{
    if (s->cap == 0)
        return NULL;
    return s->slots[find_slot(s->slots, s->cap, topic)];
}

int sub_store_put(sub_store_t *s, const proto_tally_t *t, sub_entry_t **out)
{
    char topic[PROTO_TOPIC_MAX + 1];
    size_t tlen = topic_of(topic, t);
    /* Keep the load factor under one half so probes stay short. */
    if ((s->n + 1) * 2 > s->cap && grow(s) < 0)
        return TALLY_ENOMEM;
    size_t i = find_slot(s->slots, s->cap, topic);
    sub_entry_t *e = entry_put(s->slots[i], t, topic, tlen);
    if (e == NULL)
        return TALLY_ENOMEM;
    if (s->slots[i] == NULL)
        s->n++;
    s->slots[i] = e;
    if (out != NULL)
        *out = s->slots[i];
    return 0;
}

void sub_store_foreach(const sub_store_t *s, tally_tally_cb fn, void *ctx)
{
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i] != NULL)
            fn(ctx, &s->slots[i]->pub);
}

void sub_store_swap(sub_store_t *a, sub_store_t *b)
{
    sub_store_t t = *a;
    *a = *b;
    *b = t;
}

const tally_value_t *tally_tally_value(const tally_tally_t *t, const char *column)
{
    if (t == NULL || column == NULL)
        return NULL;
    for (unsigned i = 0; i < t->nvalues; i++)
        if (strcmp(t->values[i].column, column) == 0)
            return &t->values[i];
    return NULL;
}

const char *tally_kind_name(int kind)
{
    switch (kind) {
    case TALLY_KIND_COUNTER:
        return "counter";
    case TALLY_KIND_GAUGE:
        return "gauge";
    case TALLY_KIND_RATIO:
        return "ratio";
    default:
        return "unknown";
    }
}
