/* publish.c - updates, heartbeats and snapshots (see publish.h). */
#include "publish.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "tally_error.h"
#include "vec.h"

void publish_fill_tally(const publish_t *p, uint32_t metric, uint32_t town,
                        const engine_values_t *v, uint64_t seq, proto_tally_t *t)
{
    uint32_t len = 0;
    const char *name = intern_name(p->c.metrics, metric, &len);
    t->metric = (proto_str_t){name, len};
    if (town == 0) {
        t->scope = (proto_str_t){"", 0};
    } else {
        name = intern_name(p->c.towns, town, &len);
        t->scope = (proto_str_t){name, len};
    }
    t->kind = v->kind;
    t->seq = seq;
    t->time_ms = v->change_ms;
    t->nvalues = v->ncols;
    for (uint32_t i = 0; i < v->ncols; i++) {
        t->values[i].name = proto_str(v->col[i].name);
        t->values[i].present = v->col[i].present;
        t->values[i].num = v->col[i].num;
        t->values[i].den = v->col[i].den;
    }
}

static int publish_item(void *ctx, const engine_item_t *item)
{
    publish_t *p = ctx;
    engine_values_t v;
    if (engine_read_item(p->c.engine, item, &v) != 0)
        return 0;
    proto_msg_t m; /* only the UPDATE member is set, as in ingest's ACK */
    m.version = 0;
    m.type = PROTO_UPDATE;
    memset(&m.u.update, 0, sizeof(m.u.update));
    m.u.update.stream_id = p->stream_id;
    publish_fill_tally(p, item->metric, item->town, &v, p->seq + 1, &m.u.update.tally);
    char topic[PROTO_TOPIC_MAX];
    int tlen = proto_topic(topic, sizeof(topic), m.u.update.tally.metric, m.u.update.tally.scope);
    msgpack_sbuffer_clear(&p->scratch);
    if (tlen < 0 || proto_encode(&p->scratch, &m) != 0) {
        log_error(p->c.log, "cannot encode the update of %.*s/%.*s",
                  (int)m.u.update.tally.metric.len, m.u.update.tally.metric.ptr,
                  (int)m.u.update.tally.scope.len, m.u.update.tally.scope.ptr);
        return 0;
    }
    p->seq++;
    /* The XPUB drops messages for a subscriber whose queue is full instead
     * of blocking, so a slow subscriber never holds up ingest; the
     * sequence gap tells it to take a new snapshot. */
    sink_send(&p->c.pub, topic, (size_t)tlen, p->scratch.data, p->scratch.size);
    p->c.stats->updates_published++;
    return 0;
}

struct publish_changed {
    uint32_t metric, town;
    uint32_t n;
    calperiod_t periods[PROTO_CHANGED_MAX];
};

static void send_changed(publish_t *p, const struct publish_changed *e)
{
    proto_msg_t m; /* only the PERIOD_CHANGED member is set */
    m.version = 0;
    m.type = PROTO_PERIOD_CHANGED;
    memset(&m.u.period_changed, 0, sizeof(m.u.period_changed));
    uint32_t len = 0;
    const char *name = intern_name(p->c.metrics, e->metric, &len);
    m.u.period_changed.stream_id = p->stream_id;
    m.u.period_changed.seq = p->seq;
    m.u.period_changed.metric = (proto_str_t){name, len};
    m.u.period_changed.scope = proto_str("");
    if (e->town != 0) {
        const char *t = intern_name(p->c.towns, e->town, &len);
        m.u.period_changed.scope = (proto_str_t){t, len};
    }
    char names[PROTO_CHANGED_MAX][CALPERIOD_NAME_MAX];
    for (uint32_t i = 0; i < e->n; i++) {
        int k = calperiod_format(e->periods[i], names[i], sizeof(names[i]));
        if (k < 0)
            return;
        m.u.period_changed.periods[m.u.period_changed.nperiods++] =
            (proto_str_t){names[i], (uint32_t)k};
    }
    char topic[PROTO_TOPIC_MAX];
    int tlen =
        proto_topic(topic, sizeof(topic), m.u.period_changed.metric, m.u.period_changed.scope);
    msgpack_sbuffer_clear(&p->scratch);
    if (name == NULL || tlen < 0 || proto_encode(&p->scratch, &m) != 0)
        return;
    sink_send(&p->c.pub, topic, (size_t)tlen, p->scratch.data, p->scratch.size);
    p->c.stats->period_changes_published++;
}

/* Send every PERIOD_CHANGED waiting. */
static void flush_changed(publish_t *p)
{
    if (p->nchanged == 0)
        return;
    for (size_t i = 0; i < p->nchanged; i++)
        if (p->changed[i].n > 0)
            send_changed(p, &p->changed[i]);
    p->nchanged = 0;
    memset(p->changed_index, 0, ((size_t)p->changed_mask + 1) * sizeof(*p->changed_index));
}

static uint32_t changed_hash(uint32_t metric, uint32_t town)
{
    uint64_t k = ((uint64_t)metric << 32 | town) * 0x9e3779b97f4a7c15ULL;
    return (uint32_t)(k >> 32);
}

/* The entry of series (metric, town), added when missing; NULL when
 * memory ran out. */
static struct publish_changed *changed_entry(publish_t *p, uint32_t metric, uint32_t town)
{
    if (p->changed_index != NULL) {
        for (uint32_t i = changed_hash(metric, town) & p->changed_mask;;
             i = (i + 1) & p->changed_mask) {
            uint32_t v = p->changed_index[i];
            if (v == 0)
                break;
            struct publish_changed *e = &p->changed[v - 1];
            if (e->metric == metric && e->town == town)
                return e;
        }
    }
    if (p->nchanged >= PUBLISH_CHANGED_MAX)
        flush_changed(p);
    if (VEC_RESERVE(p->changed, p->changed_cap, p->nchanged + 1) != 0)
        return NULL;
    size_t slots = (size_t)p->changed_mask + 1;
    if (p->changed_index == NULL || (p->nchanged + 1) * 2 > slots) {
        size_t n = p->changed_index == NULL ? 64 : slots * 2;
        uint32_t *index = calloc(n, sizeof(*index));
        if (index == NULL)
            return NULL;
        free(p->changed_index);
        p->changed_index = index;
        p->changed_mask = (uint32_t)(n - 1);
        for (size_t k = 0; k < p->nchanged; k++) {
            const struct publish_changed *e = &p->changed[k];
            uint32_t i = changed_hash(e->metric, e->town) & p->changed_mask;
            while (index[i] != 0)
                i = (i + 1) & p->changed_mask;
            index[i] = (uint32_t)k + 1;
        }
    }
    uint32_t i = changed_hash(metric, town) & p->changed_mask;
    while (p->changed_index[i] != 0)
        i = (i + 1) & p->changed_mask;
    struct publish_changed *e = &p->changed[p->nchanged++];
    *e = (struct publish_changed){.metric = metric, .town = town};
    p->changed_index[i] = (uint32_t)p->nchanged;
    return e;
}

void publish_period_changed(publish_t *p, uint32_t metric, uint32_t town,
                            const calperiod_t *periods, uint32_t n)
{
    if (p->closing || n == 0)
        return;
    struct publish_changed *e = changed_entry(p, metric, town);
    if (e == NULL) { /* out of memory: tell them now rather than never */
        struct publish_changed now = {.metric = metric, .town = town};
        for (uint32_t i = 0; i < n && now.n < PROTO_CHANGED_MAX; i++)
            now.periods[now.n++] = periods[i];
        send_changed(p, &now);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        bool known = false;
        for (uint32_t k = 0; k < e->n && !known; k++)
            known = e->periods[k].type == periods[i].type && e->periods[k].key == periods[i].key;
        if (known)
            continue;
        if (e->n == PROTO_CHANGED_MAX) { /* full: this message goes now */
            send_changed(p, e);
            e->n = 0;
        }
        e->periods[e->n++] = periods[i];
    }
}

void publish_changes(publish_t *p)
{
    flush_changed(p);
    p->round_left = 0;
    uv_idle_stop(&p->more);
    if (engine_dirty_count(p->c.engine) > 0)
        engine_drain_dirty(p->c.engine, UINT32_MAX, publish_item, p);
}

static void on_more(uv_idle_t *h);

/* One batch of the round.  Series marked again during the round queue
 * behind it and wait for the next one: a busy series is still published
 * once per round, as conflation promises. */
static void publish_step(publish_t *p)
{
    uint32_t n = p->round_left < PUBLISH_BATCH ? p->round_left : PUBLISH_BATCH;
    uint32_t left = n > 0 ? engine_drain_dirty(p->c.engine, n, publish_item, p) : 0;
    p->round_left -= n;
    if (p->round_left > left)
        p->round_left = left;
    if (p->round_left > 0)
        uv_idle_start(&p->more, on_more);
    else
        uv_idle_stop(&p->more);
}

static void on_more(uv_idle_t *h)
{
    publish_step(h->data);
}

void publish_round(publish_t *p)
{
    flush_changed(p);
    p->round_left = engine_dirty_count(p->c.engine);
    publish_step(p);
}

static void on_tick(uv_timer_t *t)
{
    publish_round(t->data);
}

static void on_immediate(uv_check_t *c)
{
    publish_round(c->data);
}

static void send_heartbeat(publish_t *p, uint32_t type)
{
    proto_msg_t m = {.type = type};
    if (type == PROTO_HEARTBEAT) {
        m.u.heartbeat.stream_id = p->stream_id;
        m.u.heartbeat.seq = p->seq;
        m.u.heartbeat.time_ms = clock_now_ms(p->c.clock);
    } else {
        m.u.goodbye.stream_id = p->stream_id;
        m.u.goodbye.seq = p->seq;
    }
    msgpack_sbuffer_clear(&p->scratch);
    if (proto_encode(&p->scratch, &m) != 0)
        return;
    sink_send(&p->c.pub, PROTO_TOPIC_HEARTBEAT, strlen(PROTO_TOPIC_HEARTBEAT), p->scratch.data,
              p->scratch.size);
    p->c.stats->heartbeats++;
}

static void on_heartbeat(uv_timer_t *t)
{
    publish_t *p = t->data;
    publish_round(p);
    send_heartbeat(p, PROTO_HEARTBEAT);
}

static void start_timers(publish_t *p)
{
    uv_timer_stop(&p->tick);
    uv_check_stop(&p->immediate);
    uint64_t iv = (uint64_t)p->c.interval_ms, hb = (uint64_t)p->c.heartbeat_ms;
    if (iv > 0)
        uv_timer_start(&p->tick, on_tick, iv, iv);
    else
        uv_check_start(&p->immediate, on_immediate);
    uv_timer_start(&p->heartbeat, on_heartbeat, hb, hb);
}

void publish_set_timing(publish_t *p, int64_t interval_ms, int64_t heartbeat_ms)
{
    publish_round(p);
    p->c.interval_ms = interval_ms;
    p->c.heartbeat_ms = heartbeat_ms;
    start_timers(p);
}

int publish_init(publish_t *p, const publish_config_t *c)
{
    memset(p, 0, sizeof(*p));
    p->c = *c;
    p->seq = c->seq;
    msgpack_sbuffer_init(&p->scratch);
    /* A new stream id each run tells subscribers that sequence numbers
     * start over.  getrandom() only fails on kernels without it; the wall
     * clock and pid then still differ between runs. */
    if (getrandom(&p->stream_id, sizeof(p->stream_id), 0) != (ssize_t)sizeof(p->stream_id))
        p->stream_id =
            ((uint64_t)clock_now_ms(c->clock) << 20 ^ (uint64_t)getpid()) * 0x9E3779B97F4A7C15ULL;
    p->stream_id &= INT64_MAX; /* friendlier to clients with signed integers */
    if (p->stream_id == 0)
        p->stream_id = 1;
    uv_timer_init(c->loop, &p->tick);
    uv_timer_init(c->loop, &p->heartbeat);
    uv_check_init(c->loop, &p->immediate);
    uv_idle_init(c->loop, &p->more);
    uv_timer_init(c->loop, &p->prompt);
    p->tick.data = p->heartbeat.data = p->immediate.data = p->more.data = p->prompt.data = p;
    p->open_handles = 5;
    start_timers(p);
    return 0;
}

static void send_prompt(publish_t *p)
{
    p->prompt_due = false;
    p->last_prompt = uv_now(p->c.loop);
    send_heartbeat(p, PROTO_HEARTBEAT);
}

static void on_prompt(uv_timer_t *t)
{
    send_prompt(t->data);
}

void publish_on_subscription(publish_t *p, const void *data, size_t len)
{
    const uint8_t *b = data;
    size_t hl = strlen(PROTO_TOPIC_HEARTBEAT);
    if (p->closing || len != 1 + hl || b[0] != 1 || memcmp(b + 1, PROTO_TOPIC_HEARTBEAT, hl) != 0)
        return;
    if (p->prompt_due) {
        p->c.stats->prompt_heartbeats_skipped++; /* the one due serves this joiner too */
        return;
    }
    uint64_t now = uv_now(p->c.loop), next = p->last_prompt + PUBLISH_PROMPT_MS;
    if (p->last_prompt == 0 || now >= next) {
        send_prompt(p);
        return;
    }
    p->prompt_due = true;
    uv_timer_start(&p->prompt, on_prompt, next - now, 0);
}

void publish_goodbye(publish_t *p)
{
    publish_changes(p);
    send_heartbeat(p, PROTO_GOODBYE);
}

static void on_closed(uv_handle_t *h)
{
    publish_t *p = h->data;
    if (--p->open_handles == 0 && p->on_closed)
        p->on_closed(p);
}

void publish_close(publish_t *p, void (*cb)(publish_t *p))
{
    p->closing = true;
    p->on_closed = cb;
    uv_close((uv_handle_t *)&p->tick, on_closed);
    uv_close((uv_handle_t *)&p->heartbeat, on_closed);
    uv_close((uv_handle_t *)&p->immediate, on_closed);
    uv_close((uv_handle_t *)&p->more, on_closed);
    uv_close((uv_handle_t *)&p->prompt, on_closed);
    msgpack_sbuffer_destroy(&p->scratch);
    free(p->changed);
    free(p->changed_index);
    p->changed = NULL;
    p->changed_index = NULL;
    p->nchanged = p->changed_cap = 0;
}
