/* harness_sub.c - the harness's subscriber, the clone pattern of
 * PROTOCOL.md section 16 (see harness.h).  It snapshots through a request
 * client (harness_client.c) and reads the publish socket with the shared
 * plumbing of harness.c (harness_internal.h). */
#include "harness.h"
#include "harness_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

/* ---- the subscriber ---------------------------------------------------- */

/* Apply one update under the clone rules: newer than the snapshot and
 * than the stored row. */
static bool sub_apply(harness_sub_t *s, const harness_row_t *row)
{
    if (row->seq <= s->snap_seq)
        return false;
    const harness_row_t *cur = harness_table_find(&s->table, row->metric, row->scope);
    if (cur != NULL && row->seq <= cur->seq)
        return false;
    if (harness_table_put(&s->table, row) != 0)
        return false;
    if (s->unfiltered) {
        if (row->seq != s->last_seq + 1)
            s->gaps++;
        s->last_seq = row->seq;
    }
    s->applied++;
    return true;
}

static void sub_emit(harness_sub_t *s, harness_event_t *ev)
{
    if (s->on_event != NULL)
        s->on_event(s, ev, s->ctx);
}

/* Handle one publish message.  Before the snapshot (!synced) updates are
 * buffered and only the first heartbeat is noted. */
static void sub_handle(harness_sub_t *s, zmq_msg_t *parts, int n)
{
    proto_msg_t m;
    proto_error_t err;
    if (n != 2 ||
        proto_decode(zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), &m, NULL, 0, &err) != 0) {
        s->bad_messages++;
        return;
    }
    char topic[PROTO_TOPIC_MAX + 1];
    size_t tl = zmq_msg_size(&parts[0]);
    snprintf(topic, sizeof(topic), "%.*s", (int)(tl < PROTO_TOPIC_MAX ? tl : PROTO_TOPIC_MAX),
             (const char *)zmq_msg_data(&parts[0]));
    harness_event_t ev = {.type = m.type, .topic = topic, .mono_ms = harness_mono_ms()};
    harness_row_t row;
    if (m.type == PROTO_UPDATE) {
        char want[PROTO_TOPIC_MAX];
        int wl = proto_topic(want, sizeof(want), m.u.update.tally.metric, m.u.update.tally.scope);
        if (wl < 0 || (size_t)wl != tl || memcmp(want, topic, tl) != 0) {
            s->bad_messages++;
            return;
        }
        harness_row_from(&row, &m.u.update.tally);
        ev.row = &row;
        ev.stream_id = m.u.update.stream_id;
        ev.seq = row.seq;
        if (!s->synced) {
            if (s->npending == s->cappending) {
                size_t cap = s->cappending ? s->cappending * 2 : 64;
                harness_row_t *p = realloc(s->pending, cap * sizeof(*p));
                if (p == NULL) {
                    s->bad_messages++;
                    return;
                }
                s->pending = p;
                s->cappending = cap;
            }
            s->pending[s->npending++] = row;
            return;
        }
        s->updates++;
        if (ev.stream_id != s->stream_id) {
            s->other_stream++;
        } else {
            ev.applied = sub_apply(s, &row);
        }
    } else if (m.type == PROTO_HEARTBEAT || m.type == PROTO_GOODBYE) {
        bool hb = m.type == PROTO_HEARTBEAT;
        ev.stream_id = hb ? m.u.heartbeat.stream_id : m.u.goodbye.stream_id;
        ev.seq = hb ? m.u.heartbeat.seq : m.u.goodbye.seq;
        if (!s->synced) {
            if (hb && s->stream_id == 0) {
                s->stream_id = ev.stream_id;
                s->hb_seq = ev.seq;
            }
            return;
        }
        if (ev.stream_id != s->stream_id) {
            s->other_stream++;
        } else if (hb) {
            s->heartbeats++;
            s->hb_seq = ev.seq;
            /* A heartbeat queued before the snapshot may carry an older
             * seq; only one ahead of what was applied shows a loss. */
            if (s->unfiltered && ev.seq > s->last_seq)
                s->gaps++;
        } else {
            s->goodbye = true;
            s->goodbye_seq = ev.seq;
            if (s->unfiltered && ev.seq > s->last_seq)
                s->gaps++;
        }
    } else if (m.type == PROTO_PERIOD_CHANGED) {
        /* Not buffered before the snapshot: it is not part of the table. */
        const __typeof__(m.u.period_changed) *c = &m.u.period_changed;
        if (!s->synced)
            return;
        ev.stream_id = c->stream_id;
        ev.seq = c->seq;
        if (ev.stream_id != s->stream_id) {
            s->other_stream++;
            return;
        }
        char metric[PROTO_NAME_MAX + 1], scope[PROTO_NAME_MAX + 1];
        char periods[PROTO_CHANGED_MAX * 16] = "";
        snprintf(metric, sizeof(metric), "%.*s", (int)c->metric.len, c->metric.ptr);
        snprintf(scope, sizeof(scope), "%.*s", (int)c->scope.len, c->scope.ptr);
        for (uint32_t i = 0; i < c->nperiods; i++) {
            size_t at = strlen(periods);
            snprintf(periods + at, sizeof(periods) - at, "%s%.*s", i ? "," : "",
                     (int)c->periods[i].len, c->periods[i].ptr);
        }
        ev.metric = metric;
        ev.scope = scope;
        ev.periods = periods;
        s->period_changes++;
        sub_emit(s, &ev);
        return;
    } else {
        return; /* unknown types are ignored (PROTOCOL.md 18) */
    }
    sub_emit(s, &ev);
}

static int sub_read(harness_sub_t *s, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    int count = 0;
    for (;;) {
        zmq_msg_t parts[2];
        int n = harness_recv_parts(s->sock, parts, 2, count == 0 ? deadline : 0);
        if (n <= 0)
            return count;
        sub_handle(s, parts, n);
        harness_close_parts(parts, n, 2);
        count++;
    }
}

int harness_sub_open(harness_t *h, harness_sub_t *s, const char *prefix, harness_event_fn *on_event,
                     void *ctx)
{
    return harness_sub_open_curve(h, s, prefix, on_event, ctx,
                                  h->curve_server[0] ? h->curve_server : NULL, h->curve_public,
                                  h->curve_secret);
}

int harness_sub_open_curve(harness_t *h, harness_sub_t *s, const char *prefix,
                           harness_event_fn *on_event, void *ctx, const char *server_pub,
                           const char *client_pub, const char *client_sec)
{
    memset(s, 0, sizeof(*s));
    s->h = h;
    s->on_event = on_event;
    s->ctx = ctx;
    snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
    s->unfiltered = prefix[0] == '\0' || strcmp(prefix, "u/") == 0;
    harness_table_init(&s->table);
    s->sock = harness_open_socket(h, ZMQ_SUB);
    if (s->sock == NULL)
        return TALLY_ESYS;
    int rc = harness_socket_curve(s->sock, server_pub, client_pub, client_sec);
    if (rc != 0)
        return rc;
    if (zmq_connect(s->sock, h->pub_endpoint) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_SUBSCRIBE, prefix, strlen(prefix)) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_SUBSCRIBE, PROTO_TOPIC_HEARTBEAT,
                       strlen(PROTO_TOPIC_HEARTBEAT)) != 0) {
        harness_say("subscriber setup: %s", zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    /* PROTOCOL.md 16.2 step 2: the first heartbeat proves that the
     * subscription to prefix is active at the daemon. */
    int64_t deadline = harness_mono_ms() + 3000;
    while (s->stream_id == 0 && harness_mono_ms() < deadline)
        sub_read(s, (int)(deadline - harness_mono_ms()));
    if (s->stream_id == 0) {
        harness_say("subscriber '%s': no heartbeat within 3000 ms", prefix);
        return TALLY_ETIMEDOUT;
    }
    rc = harness_client_open_curve(h, &s->cli, server_pub, client_pub, client_sec);
    if (rc == 0)
        rc = harness_snapshot(&s->cli, prefix, &s->table);
    if (rc != 0)
        return rc;
    if (s->table.stream_id != s->stream_id) {
        harness_say("subscriber '%s': snapshot of stream %" PRIu64 ", heartbeat of %" PRIu64,
                    prefix, s->table.stream_id, s->stream_id);
        return TALLY_EMALFORMED;
    }
    s->snap_seq = s->last_seq = s->table.seq;
    s->synced = true;
    for (size_t i = 0; i < s->npending; i++) {
        harness_event_t ev = {.type = PROTO_UPDATE,
                              .row = &s->pending[i],
                              .stream_id = s->stream_id,
                              .seq = s->pending[i].seq,
                              .mono_ms = harness_mono_ms()};
        char topic[PROTO_TOPIC_MAX];
        proto_topic(topic, sizeof(topic), proto_str(s->pending[i].metric),
                    proto_str(s->pending[i].scope));
        ev.topic = topic;
        s->updates++;
        ev.applied = sub_apply(s, &s->pending[i]);
        sub_emit(s, &ev);
    }
    s->npending = 0;
    return 0;
}

void harness_sub_close(harness_sub_t *s)
{
    if (s->h == NULL)
        return;
    harness_client_close(&s->cli);
    harness_close_socket(s->h, s->sock);
    s->sock = NULL;
    harness_table_free(&s->table);
    free(s->pending);
    s->pending = NULL;
    s->h = NULL;
}

int harness_sub_poll(harness_sub_t *s, int timeout_ms)
{
    return sub_read(s, timeout_ms);
}

int harness_sub_until(harness_sub_t *s, bool (*cond)(harness_sub_t *s, void *ctx), void *ctx,
                      int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    for (;;) {
        if (cond(s, ctx))
            return 0;
        int64_t left = deadline - harness_mono_ms();
        if (left <= 0)
            return TALLY_ETIMEDOUT;
        sub_read(s, (int)left);
    }
}

int harness_sub_wait_stable(harness_sub_t *s, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    uint64_t seen = s->heartbeats, prev_seq = 0;
    bool have_prev = false;
    while (harness_mono_ms() < deadline) {
        sub_read(s, (int)(deadline - harness_mono_ms()));
        if (s->heartbeats == seen)
            continue;
        seen = s->heartbeats;
        if (s->unfiltered && s->hb_seq == s->last_seq)
            return 0;
        if (!s->unfiltered && have_prev && s->hb_seq == prev_seq)
            return 0;
        prev_seq = s->hb_seq;
        have_prev = true;
    }
    harness_say("subscriber '%s': stream not stable within %d ms (heartbeat seq %" PRIu64
                ", applied %" PRIu64 ")",
                s->prefix, timeout_ms, s->hb_seq, s->last_seq);
    return TALLY_ETIMEDOUT;
}
