/* web_history.c - tally-web (web/): /api/v1/period and /api/v1/range,
 * the closed periods asked of tallyd (libtally's tally_period_read,
 * tally_period_read_split and tally_range_req) on a libuv worker thread
 * and answered from the writeable callback. */
#include "web_history.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calperiod.h"
#include "proto.h"
#include "text.h"
#include "web_json.h"

/* The most townships read one by one (tally_period_read_split) when
 * tallyd's answer cannot hold a whole county's.  The parts cost little
 * (one connection for all, about 0.25 ms a township on a 2-core VM); the
 * bound is the answer's, which a browser takes whole: 2,000 townships of
 * 25 metrics are 50,000 tallies, a few MB of JSON. */
#define WEB_SPLIT_MAX 2000

/* Townships per call of tally_period_read_split (one connection each):
 * a stop ends a read between two calls, so that a large county's read
 * holds a stop for one slice at most, not for all of its townships
 * (against a slow tallyd, beyond the service's TimeoutStopSec). */
#define WEB_SPLIT_SLICE 256

/* Reads kept for the browsers that ask the same thing (the wall of every
 * screen asks the same two questions): at most this many, holding at
 * most WEB_HISTORY_KEPT_BYTES of answers, and none older than
 * WEB_HISTORY_MAX_AGE_MS (tallyd says when closed periods change, but a
 * subscriber may lose that notice as it may lose an update). */
#define WEB_HISTORY_KEPT       32
#define WEB_HISTORY_KEPT_BYTES (64u << 20)
#define WEB_HISTORY_MAX_AGE_MS 60000

/* An answer is kept only when its periods ended this long ago at the
 * least, in tallyd's zone: the machines' clocks differ, and a figure
 * stamped in a day tallyd still counts as today changes that day without
 * a PERIOD_CHANGED. */
#define WEB_HISTORY_CLOSED_MARGIN_MS 120000

/* Prefixes whose read had to be split, remembered for the feed's epoch so
 * that the next read of one goes township by township at once instead of
 * being refused whole first (a refusal tallyd counts and logs). */
#define WEB_HISTORY_SPLIT_PREFIXES 4

/* A read ends this long after connections to tallyd began to be refused
 * (nothing listens at its address), with 503 saying so, rather than
 * waiting the whole timeout for a daemon that is not running. */
#define WEB_HISTORY_REFUSED_MS 1000

/* What a read asks: the route's arguments, zeroed beyond their NULs so
 * that two questions compare with memcmp. */
typedef struct history_q {
    bool range;
    char period[40], prefix[PROTO_PREFIX_MAX + 1]; /* a period, or FROM..TO */
    char metric[PROTO_NAME_MAX + 1], scope[PROTO_NAME_MAX + 1], by[16], from[24], to[24];
} history_q_t;

/* A question asked of tallyd on a libuv worker thread (a one-shot request
 * may wait for tallyd), answered to every session that asked it while it
 * ran, and kept for those that ask it later while tallyd's closed periods
 * have not changed (the feed's epoch and history_gen). */
typedef struct history_read {
    uv_work_t work;
    web_server_t *s;
    struct history_read *next; /* in s->history->reads */
    history_q_t q;
    /* The feed's when the read began: its epoch, history_gen and how many
     * tallies it held (a series that appears is in every answer after,
     * of whatever period). */
    uint64_t epoch, gen;
    size_t series;
    uint64_t began_ms; /* the loop's clock then */
    uint64_t used;     /* web_history's tick when last answered from */
    bool closed;       /* every period asked is over: the answer may be kept */
    bool running;      /* on a worker thread */
    pss_t *waiters;    /* the sessions waiting for it (pss_t.read_next) */
    /* the answer */
    bool done;
    unsigned status;
    web_buf_t b;
    bool first;
    int kind;
    int32_t clock_today; /* tallyd's day key by web_stats' clock (INT32_MIN: not read) */
    int32_t today;       /* tallyd's day key (range reads; INT32_MIN: not known) */
    bool through;        /* a point holds today */
    /* Too large for one answer of tallyd: asked again township by
     * township, the townships being those of the feed (read on the loop,
     * between the two runs of the job, or before the first when the
     * prefix is known to need it). */
    bool split_wanted, split;
    tally_townships_t towns;
} history_read_t;

struct web_history {
    history_read_t *reads; /* running and kept, newest first */
    uint64_t tick;
    char split[WEB_HISTORY_SPLIT_PREFIXES][PROTO_PREFIX_MAX + 1];
    unsigned nsplit;
    uint64_t split_epoch;
};

static void read_free(history_read_t *r)
{
    tally_townships_clear(&r->towns);
    free(r->b.data);
    free(r);
}

static void job_tally(void *ctx, const tally_tally_t *t)
{
    history_read_t *j = ctx;
    if (!j->first)
        fputc(',', j->b.f);
    j->first = false;
    web_json_tally(j->b.f, t, false);
}

static void job_point(void *ctx, int kind, const tally_value_t *v)
{
    history_read_t *j = ctx;
    j->kind = kind;
    if (!j->first)
        fputc(',', j->b.f);
    j->first = false;
    fputs("{\"period\":", j->b.f);
    web_json_string(j->b.f, v->column);
    fputs(",\"value\":", j->b.f);
    /* As `tally history --json` writes it: a ratio with its value. */
    text_json_value(j->b.f, v->present, kind == TALLY_KIND_RATIO, v->num, v->den);
    fputc('}', j->b.f);
    /* The point holding tallyd's today has the figures so far only. */
    calperiod_t p;
    int32_t first, last;
    if (j->today != INT32_MIN && calperiod_parse(v->column, strlen(v->column), &p) == 0) {
        calperiod_days(p, &first, &last);
        if (first <= j->today && j->today <= last)
            j->through = true;
    }
}

static unsigned status_of(int rc)
{
    switch (rc) {
    case TALLY_EBADPERIOD:
    case TALLY_EUNKTOWN:
    case TALLY_EUNKMETRIC:
    case TALLY_EINVAL:
    case TALLY_ETOOLARGE: /* more series than one answer holds: narrow the prefix */
        return HTTP_STATUS_BAD_REQUEST;
    case TALLY_EEXPIRED:
        return 410; /* Gone */
    case TALLY_ETYPE:
        return HTTP_STATUS_NOT_IMPLEMENTED;
    default:
        return HTTP_STATUS_SERVICE_UNAVAILABLE;
    }
}

/* Why tallyd at server gave no answer in time, as a JSON string to out:
 * what the connection showed (link, enum tally_link), as /healthz says
 * it, and libtally's sentence (err). */
static void unanswered(FILE *out, const char *server, int link, const char *err)
{
    char msg[768];
    if (link == TALLY_LINK_NO_CONNECTION)
        snprintf(msg, sizeof msg,
                 "tallyd at %s is not reachable: nothing accepts connections there (connection "
                 "refused: is tallyd running, and is the address right?)",
                 server);
    else if (link == TALLY_LINK_UNREACHABLE)
        snprintf(msg, sizeof msg, "tallyd at %s is not reachable: %s", server,
                 err[0] ? err : "the network does not reach it");
    else if (link == TALLY_LINK_UP)
        snprintf(msg, sizeof msg,
                 "no answer from tallyd at %s within %d s: connected, but it did not answer "
                 "(overloaded, or at its [limits] max_connections?)",
                 server, WEB_STATS_TIMEOUT_MS * 2 / 1000);
    else
        snprintf(msg, sizeof msg, "no answer from tallyd at %s within %d s%s%s", server,
                 WEB_STATS_TIMEOUT_MS * 2 / 1000, err[0] ? ": " : "", err);
    web_json_string(out, msg);
}

/* tallyd's today into j->today, for the point that holds it: from the
 * clock web_stats read (j->today set on the loop), else asked of tallyd
 * as `tally history` asks it.  Returns 0, or the request's error (one
 * that would refuse the range request too); a tallyd older than the
 * clock request leaves today unknown. */
static int today_of(history_read_t *j, tally_request_t *req)
{
    j->today = j->clock_today;
    if (j->today != INT32_MIN)
        return 0;
    tally_clock_t c;
    int rc = tally_clock_req(j->s->stats->server, req, &c);
    if (rc == TALLY_ETYPE)
        return 0;
    if (rc != 0)
        return rc;
    int64_t sec = c.now_ms / 1000 + c.utc_offset_s;
    j->today = (int32_t)((sec - (((sec % 86400) + 86400) % 86400)) / 86400);
    return 0;
}

/* j's period, township by township (j->towns), in slices; the county's
 * tallies come with the first slice (unless the prefix is u/town/).
 * TALLY_ECLOSED when tally-web began to stop between two slices. */
static int read_split(history_read_t *j, tally_request_t *req)
{
    const char *const *towns = (const char *const *)j->towns.v;
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < j->towns.n; at += WEB_SPLIT_SLICE) {
        if (at > 0 && atomic_load(&j->s->stop_reads)) {
            snprintf(req->errbuf, req->errbuf_len, "tally-web is stopping");
            return TALLY_ECLOSED;
        }
        size_t n = j->towns.n - at < WEB_SPLIT_SLICE ? j->towns.n - at : WEB_SPLIT_SLICE;
        rc = tally_period_read_split(j->s->stats->server, req, at == 0 ? j->q.prefix : "u/town/",
                                     j->q.period, towns + at, n, job_tally, j);
    }
    return rc;
}

/* On a worker thread: only the read's question and answer, and the
 * read-only settings. */
static void job_work(uv_work_t *w)
{
    history_read_t *j = w->data;
    const history_q_t *q = &j->q;
    char err[512] = "";
    tally_request_t req = {.curve = j->s->stats->curve,
                           .timeout_ms = WEB_STATS_TIMEOUT_MS * 2,
                           .errbuf = err,
                           .errbuf_len = sizeof err,
                           .refused_ms = WEB_HISTORY_REFUSED_MS};
    free(j->b.data);
    j->b.data = NULL;
    if (web_buf_open(&j->b) != 0) {
        j->status = HTTP_STATUS_INTERNAL_SERVER_ERROR;
        return;
    }
    j->first = true;
    int rc;
    if (!q->range) {
        fputs("{\"period\":", j->b.f);
        web_json_string(j->b.f, q->period);
        fputs(",\"tallies\":[", j->b.f);
        if (j->split)
            rc = read_split(j, &req);
        else
            rc = tally_period_read(j->s->stats->server, &req, q->prefix, q->period, job_tally, j);
        j->split_wanted = rc == TALLY_ETOOLARGE && !j->split && tally_period_splittable(q->prefix);
    } else {
        fputs("{\"metric\":", j->b.f);
        web_json_string(j->b.f, q->metric);
        fputs(",\"scope\":", j->b.f);
        web_json_string(j->b.f, q->scope[0] ? q->scope : "county");
        fputs(",\"by\":", j->b.f);
        web_json_string(j->b.f, q->by);
        fputs(",\"points\":[", j->b.f);
        j->today = INT32_MIN;
        j->through = false;
        rc = today_of(j, &req);
        if (rc == 0)
            rc = tally_range_req(j->s->stats->server, &req, q->metric, q->scope, q->by, q->from,
                                 q->to, job_point, j);
        fprintf(j->b.f, "],\"kind\":\"%s\"", tally_kind_name(j->kind));
        if (j->through) {
            char day[CALPERIOD_NAME_MAX];
            calperiod_format((calperiod_t){CALPERIOD_DAY, j->today}, day, sizeof day);
            fputs(",\"through\":", j->b.f);
            web_json_string(j->b.f, day);
        }
        fputs("}\n", j->b.f);
    }
    if (!q->range)
        fputs("]}\n", j->b.f);
    if (web_buf_close(&j->b) != 0) {
        j->status = HTTP_STATUS_INTERNAL_SERVER_ERROR;
        return;
    }
    j->status = HTTP_STATUS_OK;
    if (rc != 0) {
        /* The daemon's sentence, as the error body; or why it gave none. */
        free(j->b.data);
        j->b.data = NULL;
        j->status = status_of(rc);
        if (web_buf_open(&j->b) == 0) {
            fputs("{\"error\":", j->b.f);
            if (rc == TALLY_ETIMEDOUT)
                unanswered(j->b.f, j->s->stats->server, req.link, err);
            else
                web_json_string(j->b.f, err[0] ? err : tally_strerror(rc));
            fputs("}\n", j->b.f);
            web_buf_close(&j->b);
        }
    }
}

/* On the loop: the townships to ask for one by one, those of the feed,
 * sorted, each once.  false when there are none (or no memory, or more
 * than WEB_SPLIT_MAX): the refusal stands. */
static bool collect_towns(history_read_t *j)
{
    tally_townships_clear(&j->towns);
    web_feed_foreach(j->s->feed, "u/town/", tally_townships_add, &j->towns);
    tally_townships_sort(&j->towns);
    if (j->towns.oom || j->towns.n == 0 || j->towns.n > WEB_SPLIT_MAX) {
        tally_townships_clear(&j->towns);
        return false;
    }
    return true;
}

/* The civil date of tallyd's "today" margin_ms ago, as a day key, by
 * the clock web_stats last read (-1: not read yet). */
static int32_t tallyd_day(const web_server_t *s, int64_t margin_ms)
{
    const web_stats_t *st = s->stats;
    if (!st->have_clock)
        return -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + st->clock_skew_ms - margin_ms +
                 (int64_t)st->clock.utc_offset_s * 1000;
    return (int32_t)(ms / 86400000);
}

/* The last day key of the period named in name (a period, or the TO of
 * FROM..TO), or -1 when the name is not one. */
static int32_t last_day(const char *name)
{
    const char *dots = strstr(name, "..");
    if (dots != NULL)
        name = dots + 2;
    calperiod_t p;
    if (calperiod_parse(name, strlen(name), &p) != 0)
        return -1;
    int32_t first, last;
    calperiod_days(p, &first, &last);
    return last;
}

/* Whether every day q asks for is over in tallyd's zone, so that only a
 * late figure (PERIOD_CHANGED) can change its answer. */
static bool asks_closed(const web_server_t *s, const history_q_t *q)
{
    int32_t today = tallyd_day(s, WEB_HISTORY_CLOSED_MARGIN_MS);
    int32_t last = last_day(q->range ? q->to : q->period);
    return today >= 0 && last >= 0 && last < today;
}

static bool split_known(const web_history_t *h, const web_feed_t *f, const char *prefix)
{
    for (unsigned i = 0; h->split_epoch == f->epoch && i < h->nsplit; i++)
        if (strcmp(h->split[i], prefix) == 0)
            return true;
    return false;
}

static void split_learn(web_history_t *h, const web_feed_t *f, const char *prefix)
{
    if (h->split_epoch != f->epoch) {
        h->split_epoch = f->epoch;
        h->nsplit = 0;
    }
    if (split_known(h, f, prefix))
        return;
    unsigned i =
        h->nsplit < WEB_HISTORY_SPLIT_PREFIXES ? h->nsplit++ : WEB_HISTORY_SPLIT_PREFIXES - 1;
    snprintf(h->split[i], sizeof h->split[i], "%s", prefix);
}

static size_t feed_series(const web_feed_t *f)
{
    return f->sub != NULL ? tally_sub_count(f->sub) : 0;
}

/* Whether r's answer may be given to a session asking now: the same
 * series and the same closed periods as when it began, and not too old. */
static bool current(const web_server_t *s, const history_read_t *r)
{
    const web_feed_t *f = s->feed;
    if (r->epoch != f->epoch || r->gen != f->history_gen || r->series != feed_series(f))
        return false;
    if (!r->done)
        return true; /* asked a moment ago, as good as asking now */
    return r->closed && r->status == HTTP_STATUS_OK && r->b.data != NULL && f->synced &&
           uv_now(s->loop) - r->began_ms < WEB_HISTORY_MAX_AGE_MS;
}

/* Drop the reads nobody waits for that cannot be given again, then the
 * least recently used beyond WEB_HISTORY_KEPT reads or
 * WEB_HISTORY_KEPT_BYTES bytes. */
static void prune(web_server_t *s)
{
    web_history_t *h = s->history;
    size_t n = 0, bytes = 0;
    for (history_read_t **pp = &h->reads; *pp != NULL;) {
        history_read_t *r = *pp;
        if (!r->running && r->waiters == NULL && !current(s, r)) {
            *pp = r->next;
            read_free(r);
            continue;
        }
        n++;
        bytes += r->done ? r->b.len : 0;
        pp = &r->next;
    }
    while (n > WEB_HISTORY_KEPT || bytes > WEB_HISTORY_KEPT_BYTES) {
        history_read_t **lru = NULL;
        for (history_read_t **pp = &h->reads; *pp != NULL; pp = &(*pp)->next)
            if (!(*pp)->running && (*pp)->waiters == NULL &&
                (lru == NULL || (*pp)->used < (*lru)->used))
                lru = pp;
        if (lru == NULL)
            return; /* all running or waited for: they end on their own */
        history_read_t *r = *lru;
        *lru = r->next;
        n--;
        bytes -= r->b.len;
        read_free(r);
    }
}

static void wake(history_read_t *r)
{
    for (pss_t *w = r->waiters; w != NULL; w = w->read_next)
        lws_callback_on_writable(w->read_wsi);
}

static void detach(history_read_t *r, pss_t *ps)
{
    for (pss_t **pp = &r->waiters; *pp != NULL; pp = &(*pp)->read_next)
        if (*pp == ps) {
            *pp = ps->read_next;
            break;
        }
    ps->read = NULL;
    ps->read_next = NULL;
    ps->read_wsi = NULL;
}

static void job_done(uv_work_t *w, int status)
{
    history_read_t *j = w->data;
    web_server_t *s = j->s;
    (void)status;
    s->reads_queued--;
    j->running = false;
    if (j->split_wanted && j->waiters != NULL && !s->stopping && collect_towns(j)) {
        j->split_wanted = false;
        j->split = true;
        j->running = true;
        if (uv_queue_work(s->loop, &j->work, job_work, job_done) == 0) {
            s->reads_queued++;
            s->counters.history_reads++;
            return;
        }
        j->running = false; /* the refusal stands */
    }
    if (j->split && j->status == HTTP_STATUS_OK && !j->q.range)
        split_learn(s->history, s->feed, j->q.prefix);
    j->done = true;
    wake(j);
    prune(s);
}

/* Answer ps with r's answer (a copy: r may be given again). */
static int respond_from(web_server_t *s, struct lws *wsi, pss_t *ps, history_read_t *r)
{
    r->used = ++s->history->tick;
    unsigned char *body = r->b.data != NULL ? malloc(r->b.len ? r->b.len : 1) : NULL;
    if (body == NULL)
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_INTERNAL_SERVER_ERROR,
                                        "out of memory", NULL);
    memcpy(body, r->b.data, r->b.len);
    return web_server_respond(s, wsi, ps, r->status, "application/json", body, r->b.len, true,
                              &web_server_no_store, 1);
}

/* An argument: 1 when given, 0 when absent or empty (*bad set when
 * required: what says what it takes), -1 when too long (*bad set). */
static int history_arg(struct lws *wsi, const char *name, char *buf, size_t cap, bool required,
                       const char *what, char *msg, size_t msglen, const char **bad)
{
    int rc = web_server_urlarg(wsi, name, buf, cap);
    if (rc < 0 && *bad == NULL) {
        snprintf(msg, msglen, "%.*s: longer than %zu bytes", (int)strlen(name) - 1, name, cap - 1);
        *bad = msg;
    } else if (rc >= 0 && (rc == 0 || buf[0] == '\0') && required && *bad == NULL) {
        snprintf(msg, msglen, "%.*s: %s%s", (int)strlen(name) - 1, name,
                 rc == 0 ? "required" : "empty", what);
        *bad = msg;
    }
    if (rc <= 0)
        buf[0] = '\0';
    return rc > 0 && buf[0] != '\0' ? 1 : rc < 0 ? -1 : 0;
}

static const char period_forms[] = "2023, 2023-Q4, 2023-12 or 2023-12-31, or FROM..TO";

/* Whether period has the shape of a period or of FROM..TO, each part of
 * at most PROTO_PERIOD_TEXT_MAX bytes (whether it is a period, and
 * begun, is tallyd's to say, in its words). */
static bool period_shaped(const char *period)
{
    const char *dots = strstr(period, "..");
    size_t a = dots ? (size_t)(dots - period) : strlen(period);
    size_t b = dots ? strlen(dots + 2) : 1;
    return a > 0 && a <= PROTO_PERIOD_TEXT_MAX && b > 0 && b <= PROTO_PERIOD_TEXT_MAX &&
           (dots == NULL || strstr(dots + 2, "..") == NULL);
}

int web_history_route(web_server_t *s, struct lws *wsi, pss_t *ps, bool range)
{
    history_q_t q;
    memset(&q, 0, sizeof q);
    q.range = range;
    const char *bad = NULL;
    char msg[160];
    if (!range) {
        char what[80];
        snprintf(what, sizeof what, ": give a period (%s)", period_forms);
        history_arg(wsi, "period=", q.period, sizeof q.period, true, what, msg, sizeof msg, &bad);
        history_arg(wsi, "prefix=", q.prefix, sizeof q.prefix, false, "", msg, sizeof msg, &bad);
        if (bad == NULL && !period_shaped(q.period)) {
            snprintf(msg, sizeof msg, "period: '%.40s' is not a period: expected %s", q.period,
                     period_forms);
            bad = msg;
        }
        if (bad == NULL && !proto_topic_prefix_possible(q.prefix, strlen(q.prefix)))
            return web_server_respond_bad_prefix(s, wsi, ps, q.prefix);
    } else {
        history_arg(wsi, "metric=", q.metric, sizeof q.metric, true, " (a metric's id)", msg,
                    sizeof msg, &bad);
        history_arg(wsi, "by=", q.by, sizeof q.by, true, " (day, month, quarter or year)", msg,
                    sizeof msg, &bad);
        history_arg(wsi, "from=", q.from, sizeof q.from, true, " (a period)", msg, sizeof msg,
                    &bad);
        if (history_arg(wsi, "to=", q.to, sizeof q.to, false, "", msg, sizeof msg, &bad) == 0)
            snprintf(q.to, sizeof q.to, "%s", q.from);
        history_arg(wsi, "scope=", q.scope, sizeof q.scope, false, "", msg, sizeof msg, &bad);
        if (strcmp(q.scope, "county") == 0)
            memset(q.scope, 0, sizeof q.scope);
    }
    if (bad != NULL)
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_BAD_REQUEST, bad, NULL);
    /* The same question asked a moment ago, or answered since tallyd's
     * closed periods last changed: its answer. */
    prune(s);
    for (history_read_t *r = s->history->reads; r != NULL; r = r->next) {
        if (memcmp(&r->q, &q, sizeof q) != 0 || !current(s, r))
            continue;
        s->counters.history_shared++;
        if (r->done)
            return respond_from(s, wsi, ps, r);
        ps->read = r;
        ps->read_wsi = wsi;
        ps->read_next = r->waiters;
        r->waiters = ps;
        return 0;
    }
    history_read_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_INTERNAL_SERVER_ERROR,
                                        "out of memory", NULL);
    j->s = s;
    j->q = q;
    j->epoch = s->feed->epoch;
    j->gen = s->feed->history_gen;
    j->series = feed_series(s->feed);
    j->began_ms = uv_now(s->loop);
    j->used = ++s->history->tick;
    j->closed = asks_closed(s, &q);
    int32_t today = tallyd_day(s, 0);
    j->clock_today = today >= 0 ? today : INT32_MIN;
    j->split = !range && split_known(s->history, s->feed, q.prefix) && collect_towns(j);
    j->work.data = j;
    j->running = true;
    if (uv_queue_work(s->loop, &j->work, job_work, job_done) != 0) {
        read_free(j);
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_SERVICE_UNAVAILABLE, "busy", NULL);
    }
    s->reads_queued++;
    s->counters.history_reads++;
    j->next = s->history->reads;
    s->history->reads = j;
    ps->read = j;
    ps->read_wsi = wsi;
    ps->read_next = NULL;
    j->waiters = ps;
    return 0;
}

int web_history_writeable(web_server_t *s, struct lws *wsi, pss_t *ps)
{
    history_read_t *r = ps->read;
    if (!r->done)
        return 0;
    detach(r, ps);
    int rc = respond_from(s, wsi, ps, r);
    prune(s);
    return rc;
}

void web_history_closed(web_server_t *s, pss_t *ps)
{
    if (ps->read == NULL)
        return;
    detach(ps->read, ps); /* a running read is pruned once it ends */
    prune(s);
}

int web_history_init(web_server_t *s)
{
    s->history = calloc(1, sizeof *s->history);
    return s->history != NULL ? 0 : TALLY_ENOMEM;
}

void web_history_free(web_server_t *s)
{
    if (s->history == NULL)
        return;
    /* Called once no read runs (web_server_busy): every one is ours. */
    while (s->history->reads != NULL) {
        history_read_t *r = s->history->reads;
        s->history->reads = r->next;
        read_free(r);
    }
    free(s->history);
    s->history = NULL;
}
