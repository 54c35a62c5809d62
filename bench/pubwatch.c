/* pubwatch.c - submit-to-publish latency by series (see pubwatch.h). */
#include "pubwatch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "bench_time.h"

int pubwatch_town_name(char *buf, uint32_t i)
{
    return snprintf(buf, 16, "t%05u", i);
}

int pubwatch_metric_name(char *buf, uint32_t i)
{
    return snprintf(buf, 16, "m%02u", i);
}

static int set_int(void *sock, int opt, int v)
{
    return zmq_setsockopt(sock, opt, &v, sizeof(v));
}

int pubwatch_init(pubwatch_t *w, void *zctx, const char *endpoint, uint32_t townships,
                  uint32_t metrics)
{
    memset(w, 0, sizeof(*w));
    w->townships = townships;
    w->metrics = metrics;
    w->series = calloc(((size_t)townships + 1) * metrics, sizeof(*w->series));
    if (!w->series)
        return TALLY_ENOMEM;
    w->sock = zmq_socket(zctx, ZMQ_SUB);
    /* A deep receive queue: the load loop drains this socket between
     * sends, and a queue that overflows would show up as gaps, not as the
     * daemon's latency. */
    if (!w->sock || set_int(w->sock, ZMQ_RCVHWM, 1000000) != 0 ||
        set_int(w->sock, ZMQ_LINGER, 0) != 0 ||
        zmq_setsockopt(w->sock, ZMQ_SUBSCRIBE, "u/", 2) != 0 ||
        zmq_setsockopt(w->sock, ZMQ_SUBSCRIBE, "h", 1) != 0 ||
        zmq_connect(w->sock, endpoint) != 0) {
        fprintf(stderr, "tally-bench: subscriber on %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        pubwatch_close(w);
        return TALLY_ESYS;
    }
    return 0;
}

int pubwatch_wait_ready(pubwatch_t *w, int timeout_ms)
{
    int64_t deadline = bench_time_ns() + (int64_t)timeout_ms * 1000000;
    while (w->heartbeats == 0) {
        int64_t left = (deadline - bench_time_ns()) / 1000000;
        if (left <= 0)
            return TALLY_ETIMEDOUT;
        zmq_pollitem_t it = {.socket = w->sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, (long)left) < 0 && zmq_errno() != EINTR)
            return TALLY_ESYS;
        pubwatch_drain(w, 1000);
    }
    return 0;
}

void pubwatch_sent(pubwatch_t *w, uint32_t town, const uint32_t *metrics, uint32_t n,
                   int64_t now_ns)
{
    size_t county = (size_t)w->townships * w->metrics;
    for (uint32_t i = 0; i < n; i++) {
        pubwatch_series_t *s[2] = {&w->series[(size_t)town * w->metrics + metrics[i]],
                                   &w->series[county + metrics[i]]};
        for (int k = 0; k < 2; k++) {
            s[k]->sent++;
            if (s[k]->send_ns == 0) {
                s[k]->send_ns = now_ns;
                s[k]->need = s[k]->sent;
            }
        }
    }
}

/* Parse decimal digits at *p up to the byte stop; advances *p past stop. */
static bool parse_index(const char **p, const char *end, char stop, uint32_t *out)
{
    uint64_t v = 0;
    const char *q = *p;
    if (q >= end || *q < '0' || *q > '9')
        return false;
    while (q < end && *q >= '0' && *q <= '9' && v < 100000000)
        v = v * 10 + (uint64_t)(*q++ - '0');
    if (q >= end || *q != stop)
        return false;
    *p = q + 1;
    *out = (uint32_t)v;
    return true;
}

/* The series of a topic of ours, or NULL for any other topic. */
static pubwatch_series_t *series_of(pubwatch_t *w, const char *t, size_t len)
{
    const char *end = t + len;
    uint32_t town, metric;
    if (len > 9 && memcmp(t, "u/county/m", 10) == 0) {
        const char *p = t + 10;
        if (!parse_index(&p, end, '/', &metric) || p != end || metric >= w->metrics)
            return NULL;
        return &w->series[(size_t)w->townships * w->metrics + metric];
    }
    if (len > 8 && memcmp(t, "u/town/t", 8) == 0) {
        const char *p = t + 8;
        if (!parse_index(&p, end, '/', &town) || p >= end || *p++ != 'm' ||
            !parse_index(&p, end, '/', &metric) || p != end || town >= w->townships ||
            metric >= w->metrics)
            return NULL;
        return &w->series[(size_t)town * w->metrics + metric];
    }
    return NULL;
}

static void track_seq(pubwatch_t *w, uint64_t stream, uint64_t seq, bool update)
{
    if (!w->have_seq || stream != w->stream_id) {
        w->have_seq = true;
        w->stream_id = stream;
        w->last_seq = seq;
        return;
    }
    /* An UPDATE should be last + 1; a HEARTBEAT carries the last one. */
    uint64_t expect = update ? w->last_seq + 1 : w->last_seq;
    if (seq > expect)
        w->gaps += seq - expect;
    if (seq > w->last_seq)
        w->last_seq = seq;
}

static void on_update(pubwatch_t *w, size_t tlen, int64_t at)
{
    const proto_tally_t *t = &w->msg.u.update.tally;
    w->updates++;
    track_seq(w, w->msg.u.update.stream_id, t->seq, true);
    pubwatch_series_t *s = series_of(w, w->topic, tlen);
    if (!s || s->send_ns == 0)
        return;
    for (uint32_t i = 0; i < t->nvalues; i++) {
        if (!proto_str_eq(t->values[i].name, "total"))
            continue;
        if (t->values[i].present && (uint64_t)t->values[i].num < s->need)
            return; /* an older state of the series, still on its way */
        break;
    }
    w->matched++;
    if (w->recording)
        hist_record(&w->hist, at - s->send_ns);
    s->send_ns = 0;
}

uint32_t pubwatch_drain(pubwatch_t *w, uint32_t budget)
{
    uint32_t got = 0;
    while (got < budget) {
        int tl = zmq_recv(w->sock, w->topic, sizeof(w->topic) - 1, ZMQ_DONTWAIT);
        if (tl < 0)
            break;
        int64_t at = bench_time_ns();
        got++;
        int more = 0;
        size_t ml = sizeof(more);
        zmq_getsockopt(w->sock, ZMQ_RCVMORE, &more, &ml);
        if (!more) {
            w->bad++;
            continue;
        }
        int bl = zmq_recv(w->sock, w->body, sizeof(w->body), 0);
        zmq_getsockopt(w->sock, ZMQ_RCVMORE, &more, &ml);
        while (more) { /* not ours: skip the rest of the message */
            zmq_recv(w->sock, w->body, 0, 0);
            zmq_getsockopt(w->sock, ZMQ_RCVMORE, &more, &ml);
            bl = -1;
        }
        if (bl < 0 || (size_t)bl > sizeof(w->body) || (size_t)tl >= sizeof(w->topic) ||
            proto_decode(w->body, (size_t)bl, &w->msg, NULL, 0, NULL) != 0) {
            w->bad++;
            continue;
        }
        if (w->msg.type == PROTO_UPDATE) {
            on_update(w, (size_t)tl, at);
        } else if (w->msg.type == PROTO_HEARTBEAT) {
            w->heartbeats++;
            track_seq(w, w->msg.u.heartbeat.stream_id, w->msg.u.heartbeat.seq, false);
        }
    }
    return got;
}

void pubwatch_close(pubwatch_t *w)
{
    if (w->sock)
        zmq_close(w->sock);
    w->sock = NULL;
    free(w->series);
    w->series = NULL;
}
