/* web_stream.c - tally-web (web/): the WebSocket /api/v1/stream. */
#include "web_stream.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "web_json.h"

#define MIN_GAP_MS (1000 / WEB_STREAM_MAX_RATE)

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void msg_free(web_stream_msg_t *m)
{
    free(m->buf);
    memset(m, 0, sizeof *m);
}

/* Collects the tallies of a message. */
typedef struct pick {
    const tally_tally_t **v;
    size_t n, cap;
    uint64_t after; /* only tallies with a greater seq */
    bool oom;
} pick_t;

static void pick_one(void *ctx, const tally_tally_t *t)
{
    pick_t *p = ctx;
    if (t->seq <= p->after || p->oom)
        return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        const tally_tally_t **v = realloc(p->v, cap * sizeof *v);
        if (v == NULL) {
            p->oom = true;
            return;
        }
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = t;
}

/* Build into m the message of type for the feed as it is, holding the
 * tallies changed after from (0: all of them). */
static int build(web_stream_t *st, web_stream_msg_t *m, const char *type, uint64_t from,
                 bool with_tallies)
{
    web_feed_t *f = st->feed;
    pick_t p = {.after = from};
    if (with_tallies)
        web_feed_foreach(f, "", pick_one, &p);
    if (p.oom) {
        free(p.v);
        return TALLY_ENOMEM;
    }
    web_json_sort(p.v, p.n);
    web_buf_t b;
    if (web_buf_open(&b) != 0) {
        free(p.v);
        return TALLY_ENOMEM;
    }
    /* Room for libwebsockets' frame header before the payload. */
    for (int i = 0; i < LWS_PRE; i++)
        fputc(' ', b.f);
    fprintf(b.f,
            "{\"type\":\"%s\",\"stream_id\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"synced\":%s,"
            "\"time_ms\":%" PRId64 ",\"history_gen\":%" PRIu64 ",\"tallyd\":\"%s\"",
            type, f->stream_id, f->seq, f->synced ? "true" : "false", wall_ms(), f->history_gen,
            web_feed_link_name(f->link));
    if (web_feed_stale(f))
        fprintf(b.f, ",\"stale_since_ms\":%" PRId64, f->unsynced_at_ms);
    if (strcmp(type, "update") == 0)
        fprintf(b.f, ",\"from_seq\":%" PRIu64, from);
    if (with_tallies) {
        fputs(",\"tallies\":[", b.f);
        for (size_t i = 0; i < p.n; i++) {
            if (i > 0)
                fputc(',', b.f);
            web_json_tally(b.f, p.v[i], true);
        }
        fputc(']', b.f);
    }
    fputc('}', b.f);
    free(p.v);
    if (web_buf_close(&b) != 0)
        return TALLY_ENOMEM;
    msg_free(m);
    m->buf = (unsigned char *)b.data;
    m->len = b.len - LWS_PRE;
    m->epoch = f->epoch;
    m->from = from;
    m->to = f->seq;
    m->history_gen = f->history_gen;
    m->tick = st->tick_no;
    return 0;
}

static const web_stream_msg_t *snapshot(web_stream_t *st)
{
    web_stream_msg_t *m = &st->snapshot;
    if (m->buf != NULL && m->epoch == st->feed->epoch &&
        ((m->to == st->feed->seq && m->history_gen == st->feed->history_gen) ||
         m->tick == st->tick_no))
        return m;
    return build(st, m, "snapshot", 0, true) == 0 ? m : NULL;
}

static const web_stream_msg_t *update(web_stream_t *st, uint64_t from)
{
    for (unsigned i = 0; i < WEB_STREAM_CACHE; i++) {
        web_stream_msg_t *m = &st->updates[i];
        if (m->buf != NULL && m->epoch == st->feed->epoch && m->from == from &&
            ((m->to == st->feed->seq && m->history_gen == st->feed->history_gen) ||
             m->tick == st->tick_no))
            return m;
    }
    web_stream_msg_t *m = &st->updates[st->next_update];
    st->next_update = (st->next_update + 1) % WEB_STREAM_CACHE;
    return build(st, m, "update", from, true) == 0 ? m : NULL;
}

/* Whether c is due the figures the feed holds while stale. */
static bool wants_held(const web_feed_t *f, const web_stream_client_t *c)
{
    return web_feed_stale(f) && c->epoch == 0 && !c->held_sent;
}

/* What c is due now, or NULL. */
static const web_stream_msg_t *due(web_stream_t *st, web_stream_client_t *c, int64_t now,
                                   web_stream_msg_t *status)
{
    web_feed_t *f = st->feed;
    if (now - c->last_send_ms < MIN_GAP_MS)
        return NULL;
    if (f->synced && c->epoch != f->epoch)
        return snapshot(st);
    if (f->synced && f->seq > c->seq)
        return update(st, c->seq);
    /* A browser opened during an outage: the figures held, marked stale,
     * rather than empty panels until tallyd is back.  Built for it alone
     * (rare), never cached: the cached snapshot of this epoch says
     * synced. */
    if (wants_held(f, c)) {
        if (status != NULL && build(st, status, "snapshot", 0, true) == 0) {
            status->held = true;
            return status;
        }
        return NULL;
    }
    if (c->sent_synced != (int)f->synced || c->history_gen != f->history_gen ||
        c->sent_link != f->link || now - c->last_send_ms >= WEB_STREAM_HEARTBEAT_MS) {
        if (status != NULL && build(st, status, "status", 0, false) == 0)
            return status;
    }
    return NULL;
}

int web_stream_writable(web_stream_t *st, web_stream_client_t *c)
{
    int64_t now = mono_ms();
    web_stream_msg_t status = {0};
    const web_stream_msg_t *m = due(st, c, now, &status);
    if (m == NULL)
        return 0;
    int n = lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
    /* libwebsockets keeps what the socket did not take and sends it before
     * the next writable callback, so a short write is a whole one to us. */
    if (m != &status) {
        c->epoch = m->epoch;
        c->seq = m->to;
    }
    if (m->held)
        c->held_sent = true;
    c->sent_synced = st->feed->synced;
    c->sent_link = st->feed->link;
    c->history_gen = m->history_gen;
    c->last_send_ms = now;
    msg_free(&status);
    if (n < 0)
        return -1;
    st->counters->ws_messages++;
    return 0;
}

static void on_tick(uv_timer_t *t)
{
    web_stream_t *st = t->data;
    st->tick_no++;
    int64_t now = mono_ms();
    web_feed_t *f = st->feed;
    for (web_stream_client_t *c = st->clients; c != NULL; c = c->next) {
        if (now - c->last_send_ms < MIN_GAP_MS)
            continue;
        bool wants = (f->synced && (c->epoch != f->epoch || f->seq > c->seq)) || wants_held(f, c) ||
                     c->sent_synced != (int)f->synced || c->history_gen != f->history_gen ||
                     c->sent_link != f->link || now - c->last_send_ms >= WEB_STREAM_HEARTBEAT_MS;
        if (wants)
            lws_callback_on_writable(c->wsi);
    }
}

int web_stream_init(web_stream_t *st, uv_loop_t *loop, web_feed_t *feed, web_counters_t *counters)
{
    memset(st, 0, sizeof *st);
    st->feed = feed;
    st->counters = counters;
    if (uv_timer_init(loop, &st->tick) != 0)
        return TALLY_ESYS;
    st->tick.data = st;
    return 0;
}

void web_stream_close(web_stream_t *st)
{
    uv_timer_stop(&st->tick);
    uv_close((uv_handle_t *)&st->tick, NULL);
    msg_free(&st->snapshot);
    for (unsigned i = 0; i < WEB_STREAM_CACHE; i++)
        msg_free(&st->updates[i]);
}

void web_stream_add(web_stream_t *st, web_stream_client_t *c, struct lws *wsi)
{
    memset(c, 0, sizeof *c);
    c->wsi = wsi;
    c->sent_synced = -1;
    c->sent_link = -1;
    c->last_send_ms = mono_ms() - MIN_GAP_MS;
    c->next = st->clients;
    if (st->clients != NULL)
        st->clients->prev = c;
    st->clients = c;
    st->nclients++;
    st->counters->browsers = st->nclients;
    if (!st->ticking) {
        uv_timer_start(&st->tick, on_tick, MIN_GAP_MS, MIN_GAP_MS);
        st->ticking = true;
    }
    lws_callback_on_writable(wsi);
}

void web_stream_remove(web_stream_t *st, web_stream_client_t *c)
{
    if (c->wsi == NULL)
        return; /* never added */
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        st->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->wsi = NULL;
    st->nclients--;
    st->counters->browsers = st->nclients;
    if (st->nclients == 0 && st->ticking) {
        uv_timer_stop(&st->tick);
        st->ticking = false;
    }
}

void web_stream_feed_changed(web_stream_t *st)
{
    /* The tick picks the change up within 1/WEB_STREAM_MAX_RATE s; a
     * browser idle for that long gets it at once. */
    int64_t now = mono_ms();
    for (web_stream_client_t *c = st->clients; c != NULL; c = c->next)
        if (now - c->last_send_ms >= MIN_GAP_MS)
            lws_callback_on_writable(c->wsi);
}
