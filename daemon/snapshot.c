/* snapshot.c - snapshots streamed a chunk at a time (see snapshot.h). */
#include "snapshot.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "prefix.h"
#include "tally_error.h"

/* Items encoded per loop iteration over every stream: requests are served
 * in between however large the snapshots. */
#define STEP_ITEMS 2048
#define RETRY_MS   5

/* One snapshot on its way: where its walk over the series is, and the
 * messages encoded and not yet sent, each stored as a 4-byte length and
 * the body. */
struct snapshot_stream {
    snapshot_stream_t *next;
    uint8_t rid[256];
    size_t rid_len;
    uint64_t req_id;
    uint64_t seq; /* S */
    char prefix[PROTO_PREFIX_MAX];
    size_t prefix_len;
    bool scoped;     /* the prefix names one scope: walked metric by metric */
    uint32_t town;   /* that scope (0 the county) */
    uint32_t cursor; /* the next series id to encode (scoped: metric id) */
    uint32_t count;  /* items encoded */
    bool ended;      /* SNAPSHOT_END is encoded */
    bool oom;
    msgpack_sbuffer buf;
    size_t pos;
    int64_t progress_ms; /* when a message last went out (or the stream began) */
};

static void stream_free(snapshot_stream_t *st)
{
    msgpack_sbuffer_destroy(&st->buf);
    free(st);
}

int snapshot_init(snapshot_t *s, const snapshot_config_t *c)
{
    memset(s, 0, sizeof(*s));
    s->c = *c;
    msgpack_sbuffer_init(&s->scratch);
    uv_idle_init(c->loop, &s->more);
    uv_timer_init(c->loop, &s->retry);
    s->more.data = s->retry.data = s;
    s->open_handles = 2;
    return 0;
}

void snapshot_set_limits(snapshot_t *s, const snapshot_limits_t *l)
{
    s->c.limits = *l;
}

static int append_msg(snapshot_stream_t *st, const msgpack_sbuffer *body)
{
    uint32_t len = (uint32_t)body->size;
    if (msgpack_sbuffer_write(&st->buf, (const char *)&len, sizeof(len)) != 0 ||
        msgpack_sbuffer_write(&st->buf, body->data, body->size) != 0)
        return TALLY_ENOMEM;
    return 0;
}

typedef struct encode_ctx {
    snapshot_t *s;
    snapshot_stream_t *st;
} encode_ctx_t;

static int encode_item(void *ctx, const engine_item_t *item)
{
    encode_ctx_t *c = ctx;
    snapshot_t *s = c->s;
    snapshot_stream_t *st = c->st;
    engine_values_t v;
    proto_str_t prefix = {st->prefix, st->prefix_len};
    if (st->oom || !prefix_matches(s->c.metrics, s->c.towns, item->metric, item->town, prefix) ||
        engine_read_item(s->c.engine, item, &v) != 0)
        return 0;
    proto_msg_t m = {.type = PROTO_SNAPSHOT_ITEM};
    m.u.snapshot_item.req_id = st->req_id;
    publish_fill_tally(s->c.publish, item->metric, item->town, &v, st->seq,
                       &m.u.snapshot_item.tally);
    msgpack_sbuffer_clear(&s->scratch);
    if (proto_encode(&s->scratch, &m) != 0)
        return 0;
    if (append_msg(st, &s->scratch) != 0)
        st->oom = true;
    else
        st->count++;
    return 0;
}

/* Encode the stream's next chunk (or its end) into its empty buffer.
 * Returns the series it walked. */
static uint32_t refill(snapshot_t *s, snapshot_stream_t *st)
{
    msgpack_sbuffer_clear(&st->buf);
    st->pos = 0;
    uint32_t from = st->cursor;
    encode_ctx_t c = {s, st};
    bool done;
    if (st->scoped) {
        uint32_t last = from + SNAPSHOT_CHUNK - 1;
        engine_foreach_town(s->c.engine, st->town, from, last, encode_item, &c);
        st->cursor = last + 1;
        done = st->cursor > intern_count(s->c.metrics);
    } else {
        st->cursor = engine_foreach_from(s->c.engine, from, SNAPSHOT_CHUNK, encode_item, &c);
        done = st->cursor >= engine_series_count(s->c.engine);
    }
    if (done && !st->oom) {
        proto_msg_t end = {.type = PROTO_SNAPSHOT_END};
        end.u.snapshot_end.req_id = st->req_id;
        end.u.snapshot_end.stream_id = publish_stream_id(s->c.publish);
        end.u.snapshot_end.seq = st->seq;
        end.u.snapshot_end.count = st->count;
        msgpack_sbuffer_clear(&s->scratch);
        if (proto_encode(&s->scratch, &end) != 0 || append_msg(st, &s->scratch) != 0)
            st->oom = true;
        else
            st->ended = true;
    }
    return st->cursor - from;
}

/* Send what the stream has encoded.  Returns 0 when all of it went out,
 * TALLY_EAGAIN when the peer's queue is full, another code when the peer
 * is gone. */
static int flush(snapshot_t *s, snapshot_stream_t *st)
{
    while (st->pos < st->buf.size) {
        uint32_t len;
        memcpy(&len, st->buf.data + st->pos, sizeof(len));
        int rc =
            sink_send(&s->c.reply, st->rid, st->rid_len, st->buf.data + st->pos + sizeof(len), len);
        if (rc != 0)
            return rc;
        st->pos += sizeof(len) + len;
        st->progress_ms = clock_mono_ms();
    }
    return 0;
}

/* Take st (the head) off the list and free it. */
static void drop_head(snapshot_t *s)
{
    snapshot_stream_t *st = s->head;
    s->head = st->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->nstreams--;
    stream_free(st);
}

/* Move the head to the back of the list, so it cannot hold up the others. */
static void rotate(snapshot_t *s)
{
    if (s->head == s->tail)
        return;
    snapshot_stream_t *st = s->head;
    s->head = st->next;
    st->next = NULL;
    s->tail->next = st;
    s->tail = st;
}

static void on_more(uv_idle_t *h);
static void on_retry(uv_timer_t *t);

/* Send and encode, stream after stream, up to STEP_ITEMS series; then go
 * on from the next loop iteration, or from a short timer when every
 * stream waits for its peer (a ROUTER reports no per-peer writability
 * that could wake us). */
static void pump(snapshot_t *s)
{
    uint32_t budget = STEP_ITEMS, blocked = 0;
    int64_t now = clock_mono_ms();
    while (s->head != NULL && budget > 0 && blocked < s->nstreams) {
        snapshot_stream_t *st = s->head;
        int rc = flush(s, st);
        if (rc == TALLY_EAGAIN) {
            if (now - st->progress_ms > s->c.limits.timeout_ms) {
                s->c.stats->snapshots_abandoned++;
                log_limited(s->c.log, now, LOG_LEVEL_NOTICE,
                            "snapshot for request %" PRIu64 " abandoned: its peer read nothing "
                            "for %" PRId64 " ms (%u of its items sent)",
                            st->req_id, now - st->progress_ms, st->count);
                drop_head(s);
                continue;
            }
            rotate(s);
            blocked++;
            continue;
        }
        if (rc != 0 || st->oom) {
            /* The peer is gone (or no memory): nothing more for it. */
            s->c.stats->snapshots_abandoned++;
            if (rc != 0)
                s->c.stats->unroutable_replies++;
            drop_head(s);
            continue;
        }
        if (st->ended) {
            s->c.stats->snapshot_items += st->count;
            drop_head(s);
            continue;
        }
        uint32_t walked = refill(s, st);
        budget = walked >= budget ? 0 : budget - walked;
        blocked = 0;
        rotate(s);
    }
    if (s->head == NULL || s->closing) {
        uv_idle_stop(&s->more);
        uv_timer_stop(&s->retry);
    } else if (blocked >= s->nstreams) {
        uv_idle_stop(&s->more);
        if (!uv_is_active((uv_handle_t *)&s->retry))
            uv_timer_start(&s->retry, on_retry, RETRY_MS, 0);
    } else {
        uv_idle_start(&s->more, on_more);
    }
}

static void on_more(uv_idle_t *h)
{
    pump(h->data);
}

static void on_retry(uv_timer_t *t)
{
    pump(t->data);
}

int snapshot_request(snapshot_t *s, const void *rid, size_t rid_len, uint64_t req_id,
                     const char *prefix, size_t prefix_len)
{
    if (s->nstreams >= s->c.limits.max_streams) {
        s->c.stats->snapshots_refused++;
        return TALLY_EBUSY;
    }
    for (const snapshot_stream_t *o = s->head; o != NULL; o = o->next)
        if (o->rid_len == rid_len && memcmp(o->rid, rid, rid_len) == 0) {
            s->c.stats->snapshots_refused++;
            return TALLY_EBUSY;
        }
    snapshot_stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL || rid_len > sizeof(st->rid) || prefix_len > sizeof(st->prefix)) {
        free(st);
        return TALLY_ENOMEM;
    }
    /* Publish what is pending first: every later change then has a
     * sequence number above S. */
    publish_changes(s->c.publish);
    memcpy(st->rid, rid, rid_len);
    st->rid_len = rid_len;
    memcpy(st->prefix, prefix, prefix_len);
    st->prefix_len = prefix_len;
    st->scoped = prefix_scope(s->c.towns, (proto_str_t){prefix, prefix_len}, &st->town);
    st->req_id = req_id;
    st->seq = publish_seq(s->c.publish);
    st->progress_ms = clock_mono_ms();
    msgpack_sbuffer_init(&st->buf);
    if (s->tail)
        s->tail->next = st;
    else
        s->head = st;
    s->tail = st;
    s->nstreams++;
    s->c.stats->snapshots++;
    pump(s);
    return 0;
}

size_t snapshot_buffered(const snapshot_t *s)
{
    size_t n = 0;
    for (const snapshot_stream_t *st = s->head; st != NULL; st = st->next)
        n += st->buf.size - st->pos;
    return n;
}

static void on_closed(uv_handle_t *h)
{
    snapshot_t *s = h->data;
    if (--s->open_handles == 0 && s->on_closed)
        s->on_closed(s);
}

void snapshot_close(snapshot_t *s, void (*cb)(snapshot_t *s))
{
    s->closing = true;
    s->on_closed = cb;
    while (s->head)
        drop_head(s);
    uv_close((uv_handle_t *)&s->more, on_closed);
    uv_close((uv_handle_t *)&s->retry, on_closed);
    msgpack_sbuffer_destroy(&s->scratch);
}
