/* web_history.c - tally-web (web/): /api/v1/period and /api/v1/range,
 * the closed periods asked of tallyd (libtally's tally_period_read,
 * tally_period_read_split and tally_range_req) on a libuv worker thread
 * and answered from the writeable callback. */
#include "web_history.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
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

/* A history request: asked of tallyd on a libuv worker thread (a one-shot
 * request may wait for tallyd), answered from the writeable callback. */
typedef struct web_history_job {
    uv_work_t work;
    web_server_t *s;
    struct lws *wsi; /* NULL once the browser went away */
    pss_t *ps;
    bool range;
    char period[40], prefix[PROTO_PREFIX_MAX + 1]; /* a period, or FROM..TO */
    char metric[PROTO_NAME_MAX + 1], scope[PROTO_NAME_MAX + 1], by[16], from[24], to[24];
    /* the answer */
    bool done;
    unsigned status;
    web_buf_t b;
    bool first;
    int kind;
    /* Too large for one answer of tallyd: asked again township by
     * township, the townships being those of the feed (read on the loop,
     * between the two runs of the job). */
    bool split_wanted;
    tally_townships_t towns;
} history_job_t;

static void job_free(history_job_t *j)
{
    tally_townships_clear(&j->towns);
    free(j->b.data);
    free(j);
}

static void job_tally(void *ctx, const tally_tally_t *t)
{
    history_job_t *j = ctx;
    if (!j->first)
        fputc(',', j->b.f);
    j->first = false;
    web_json_tally(j->b.f, t, false);
}

static void job_point(void *ctx, int kind, const tally_value_t *v)
{
    history_job_t *j = ctx;
    j->kind = kind;
    if (!j->first)
        fputc(',', j->b.f);
    j->first = false;
    fputs("{\"period\":", j->b.f);
    web_json_string(j->b.f, v->column);
    fputs(",\"value\":", j->b.f);
    if (!v->present)
        fputs("null", j->b.f);
    else if (kind == TALLY_KIND_RATIO)
        fprintf(j->b.f, "{\"num\":%" PRId64 ",\"den\":%" PRId64 "}", v->num, v->den);
    else
        fprintf(j->b.f, "%" PRId64, v->num);
    fputc('}', j->b.f);
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

/* j's period, township by township (j->towns), in slices; the county's
 * tallies come with the first slice (unless the prefix is u/town/).
 * TALLY_ECLOSED when tally-web began to stop between two slices. */
static int read_split(history_job_t *j, tally_request_t *req)
{
    const char *const *towns = (const char *const *)j->towns.v;
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < j->towns.n; at += WEB_SPLIT_SLICE) {
        if (at > 0 && atomic_load(&j->s->stop_reads)) {
            snprintf(req->errbuf, req->errbuf_len, "tally-web is stopping");
            return TALLY_ECLOSED;
        }
        size_t n = j->towns.n - at < WEB_SPLIT_SLICE ? j->towns.n - at : WEB_SPLIT_SLICE;
        rc = tally_period_read_split(j->s->stats->server, req, at == 0 ? j->prefix : "u/town/",
                                     j->period, towns + at, n, job_tally, j);
    }
    return rc;
}

/* On a worker thread: only the job and the read-only settings. */
static void job_work(uv_work_t *w)
{
    history_job_t *j = w->data;
    char err[512] = "";
    tally_request_t req = {.curve = j->s->stats->curve,
                           .timeout_ms = WEB_STATS_TIMEOUT_MS * 2,
                           .errbuf = err,
                           .errbuf_len = sizeof err};
    if (web_buf_open(&j->b) != 0) {
        j->status = HTTP_STATUS_INTERNAL_SERVER_ERROR;
        return;
    }
    j->first = true;
    int rc;
    if (!j->range) {
        fputs("{\"period\":", j->b.f);
        web_json_string(j->b.f, j->period);
        fputs(",\"tallies\":[", j->b.f);
        if (j->towns.n > 0)
            rc = read_split(j, &req);
        else
            rc = tally_period_read(j->s->stats->server, &req, j->prefix, j->period, job_tally, j);
        j->split_wanted =
            rc == TALLY_ETOOLARGE && j->towns.n == 0 && tally_period_splittable(j->prefix);
    } else {
        fputs("{\"metric\":", j->b.f);
        web_json_string(j->b.f, j->metric);
        fputs(",\"scope\":", j->b.f);
        web_json_string(j->b.f, j->scope[0] ? j->scope : "county");
        fputs(",\"by\":", j->b.f);
        web_json_string(j->b.f, j->by);
        fputs(",\"points\":[", j->b.f);
        rc = tally_range_req(j->s->stats->server, &req, j->metric, j->scope, j->by, j->from, j->to,
                             job_point, j);
        fprintf(j->b.f, "],\"kind\":\"%s\"", tally_kind_name(j->kind));
        fputs("}\n", j->b.f);
    }
    if (!j->range)
        fputs("]}\n", j->b.f);
    if (web_buf_close(&j->b) != 0) {
        j->status = HTTP_STATUS_INTERNAL_SERVER_ERROR;
        return;
    }
    j->status = HTTP_STATUS_OK;
    if (rc != 0) {
        /* The daemon's sentence, as the error body. */
        free(j->b.data);
        j->b.data = NULL;
        j->status = status_of(rc);
        if (web_buf_open(&j->b) == 0) {
            fputs("{\"error\":", j->b.f);
            web_json_string(j->b.f, err[0] ? err : tally_strerror(rc));
            fputs("}\n", j->b.f);
            web_buf_close(&j->b);
        }
    }
}

/* On the loop: the townships to ask for one by one, those of the feed,
 * sorted, each once.  false when there are none (or no memory): the
 * refusal stands. */
static bool collect_towns(history_job_t *j)
{
    web_feed_foreach(j->s->feed, "u/town/", tally_townships_add, &j->towns);
    tally_townships_sort(&j->towns);
    if (j->towns.oom || j->towns.n == 0 || j->towns.n > WEB_SPLIT_MAX) {
        tally_townships_clear(&j->towns);
        return false;
    }
    return true;
}

static void job_done(uv_work_t *w, int status)
{
    history_job_t *j = w->data;
    (void)status;
    j->s->reads_queued--;
    if (j->wsi == NULL) { /* the browser went away meanwhile */
        job_free(j);
        return;
    }
    if (j->split_wanted && !j->s->stopping && collect_towns(j)) {
        char *refusal = j->b.data; /* answered if the second run cannot start */
        j->b.data = NULL;
        j->split_wanted = false;
        if (uv_queue_work(j->s->loop, &j->work, job_work, job_done) == 0) {
            j->s->reads_queued++;
            free(refusal);
            return;
        }
        j->b.data = refusal;
    }
    j->done = true;
    lws_callback_on_writable(j->wsi);
}

/* From the writeable callback: the answer of a finished job. */
static int job_respond(web_server_t *s, struct lws *wsi, pss_t *ps)
{
    history_job_t *j = ps->job;
    ps->job = NULL;
    int rc;
    if (j->b.data == NULL)
        rc = web_server_respond_error(s, wsi, ps, HTTP_STATUS_INTERNAL_SERVER_ERROR,
                                      "out of memory", NULL);
    else
        rc =
            web_server_respond(s, wsi, ps, j->status, "application/json",
                               (unsigned char *)j->b.data, j->b.len, true, &web_server_no_store, 1);
    j->b.data = NULL; /* web_server_respond() took it */
    job_free(j);
    return rc;
}

/* An argument: 1 when given, 0 when absent (*bad set when required), -1
 * when too long (*bad set). */
static int history_arg(struct lws *wsi, const char *name, char *buf, size_t cap, bool required,
                       const char *what, char *msg, size_t msglen, const char **bad)
{
    int rc = web_server_urlarg(wsi, name, buf, cap);
    if (rc < 0 && *bad == NULL) {
        snprintf(msg, msglen, "%.*s: longer than %zu bytes", (int)strlen(name) - 1, name, cap - 1);
        *bad = msg;
    } else if (rc == 0 && required && *bad == NULL) {
        snprintf(msg, msglen, "%.*s: required%s", (int)strlen(name) - 1, name, what);
        *bad = msg;
    }
    if (rc <= 0)
        buf[0] = '\0';
    return rc;
}

int web_history_route(web_server_t *s, struct lws *wsi, pss_t *ps, bool range)
{
    history_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_INTERNAL_SERVER_ERROR,
                                        "out of memory", NULL);
    j->s = s;
    j->wsi = wsi;
    j->ps = ps;
    j->range = range;
    const char *bad = NULL;
    char msg[128];
    if (!range) {
        history_arg(wsi, "period=", j->period, sizeof j->period, true,
                    " (2023, 2023-Q4, 2023-12 or 2023-12-31, or FROM..TO)", msg, sizeof msg, &bad);
        history_arg(wsi, "prefix=", j->prefix, sizeof j->prefix, false, "", msg, sizeof msg, &bad);
        if (bad == NULL && !proto_topic_prefix_possible(j->prefix, strlen(j->prefix)))
            bad = "prefix: begins no topic";
    } else {
        history_arg(wsi, "metric=", j->metric, sizeof j->metric, true, "", msg, sizeof msg, &bad);
        history_arg(wsi, "by=", j->by, sizeof j->by, true, " (day, month, quarter or year)", msg,
                    sizeof msg, &bad);
        history_arg(wsi, "from=", j->from, sizeof j->from, true, " (a period)", msg, sizeof msg,
                    &bad);
        if (history_arg(wsi, "to=", j->to, sizeof j->to, false, "", msg, sizeof msg, &bad) == 0)
            snprintf(j->to, sizeof j->to, "%s", j->from);
        history_arg(wsi, "scope=", j->scope, sizeof j->scope, false, "", msg, sizeof msg, &bad);
        if (strcmp(j->scope, "county") == 0)
            j->scope[0] = '\0';
    }
    if (bad != NULL) {
        free(j);
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_BAD_REQUEST, bad, NULL);
    }
    j->work.data = j;
    ps->job = j;
    if (uv_queue_work(s->loop, &j->work, job_work, job_done) != 0) {
        ps->job = NULL;
        free(j);
        return web_server_respond_error(s, wsi, ps, HTTP_STATUS_SERVICE_UNAVAILABLE, "busy", NULL);
    }
    s->reads_queued++;
    return 0;
}

int web_history_writeable(web_server_t *s, struct lws *wsi, pss_t *ps)
{
    return ps->job->done ? job_respond(s, wsi, ps) : 0;
}

void web_history_closed(pss_t *ps)
{
    if (ps->job == NULL)
        return;
    /* The worker still owns it; job_done frees it. */
    if (ps->job->done)
        job_free(ps->job);
    else
        ps->job->wsi = NULL;
    ps->job = NULL;
}
