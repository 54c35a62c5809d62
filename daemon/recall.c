/* recall.c - PERIOD_REQ, RANGE_REQ and SPAN_REQ answered from the engine
 * and the history (see recall.h). */
#include "recall.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "period.h"
#include "prefix.h"
#include "tally_error.h"
#include "vec.h"

static void on_idle(uv_idle_t *h);

int recall_init(recall_t *r, const recall_config_t *c)
{
    memset(r, 0, sizeof(*r));
    r->c = *c;
    msgpack_sbuffer_init(&r->out);
    if (uv_idle_init(c->loop, &r->idle) != 0)
        return TALLY_ESYS;
    r->idle.data = r;
    return 0;
}

static void job_free(recall_job_t *j)
{
    free(j->items);
    free(j->sweeps);
    free(j);
}

static void drop_jobs(recall_t *r)
{
    while (r->head != NULL) {
        recall_job_t *j = r->head;
        r->head = j->next;
        job_free(j);
    }
    r->tail = NULL;
    r->pending = 0;
}

static void on_closed(uv_handle_t *h)
{
    recall_t *r = h->data;
    if (r->on_closed)
        r->on_closed(r);
}

void recall_close(recall_t *r, void (*cb)(recall_t *r))
{
    r->closing = true;
    r->on_closed = cb;
    drop_jobs(r);
    uv_close((uv_handle_t *)&r->idle, on_closed);
}

void recall_free(recall_t *r)
{
    drop_jobs(r);
    msgpack_sbuffer_destroy(&r->out);
    free(r->items);
    r->items = NULL;
}

static void answer(recall_t *r, const void *rid, size_t rid_len, const proto_msg_t *m)
{
    msgpack_sbuffer_clear(&r->out);
    if (proto_encode(&r->out, m) == 0)
        sink_send(&r->c.reply, rid, rid_len, r->out.data, r->out.size);
}

/* The engine's calendar column of period type t ("today" ...), or -1. */
static int calendar_column(const engine_t *e, int type)
{
    static const char *const names[] = {
        [CALPERIOD_DAY] = "today",
        [CALPERIOD_MONTH] = "month",
        [CALPERIOD_QUARTER] = "quarter",
        [CALPERIOD_YEAR] = "year",
    };
    for (uint32_t i = 0; i < engine_columns(e); i++)
        if (strcmp(engine_column_name(e, i), names[type]) == 0)
            return (int)i;
    return -1;
}

/* True when metric is a gauge or a ratio with a gauge operand: the
 * engine's calendar columns have no value for those (10.5), the history's
 * cells of the current period do. */
static bool gauge_based(const engine_t *e, uint32_t metric)
{
    uint32_t num, den;
    if (engine_ratio_operands(e, metric, &num, &den) == 0)
        return engine_metric_kind(e, num) == PROTO_KIND_GAUGE ||
               engine_metric_kind(e, den) == PROTO_KIND_GAUGE;
    return engine_metric_kind(e, metric) == PROTO_KIND_GAUGE;
}

void recall_value(const recall_t *r, uint32_t metric, uint32_t town, calperiod_t p,
                  engine_value_t *out)
{
    int32_t today = history_today(r->c.history);
    calperiod_t now = calperiod_of_day(p.type, today);
    int col = calendar_column(r->c.engine, p.type);
    if (now.key == p.key && col >= 0 && !gauge_based(r->c.engine, metric)) {
        engine_values_t v;
        if (engine_read(r->c.engine, metric, town, &v) == 0) {
            *out = v.col[col];
            return;
        }
    }
    if (history_expired(r->c.history, p)) {
        *out = (engine_value_t){.present = false, .den = 1};
        return;
    }
    history_read(r->c.history, metric, town, p, out);
}

/* The sweep of job j for metric's county value, or NULL. */
static const recall_sweep_t *sweep_of(const recall_job_t *j, uint32_t metric)
{
    for (size_t i = 0; j != NULL && i < j->nsweeps; i++)
        if (j->sweeps[i].metric == metric)
            return &j->sweeps[i];
    return NULL;
}

/* A counter's or a gauge's own value over parts[0..n) (recall.h); a
 * county gauge's from j's sweep when it has one. */
static void span_base(const recall_t *r, const recall_job_t *j, uint32_t metric, uint32_t town,
                      const calperiod_t *parts, size_t n, engine_value_t *out)
{
    *out = (engine_value_t){.present = false, .den = 1};
    engine_value_t v;
    if (engine_metric_kind(r->c.engine, metric) != PROTO_KIND_GAUGE) {
        int64_t sum = 0;
        for (size_t i = 0; i < n; i++) {
            recall_value(r, metric, town, parts[i], &v);
            if (v.present && __builtin_add_overflow(sum, v.num, &sum))
                return; /* beyond int64: no value, as a window's sum (10.7) */
        }
        out->present = true;
        out->num = sum;
        return;
    }
    if (town != 0) { /* the latest part with a value holds the latest sample */
        for (size_t i = n; i-- > 0;) {
            recall_value(r, metric, town, parts[i], &v);
            if (v.present) {
                out->present = true;
                out->num = v.num;
                return;
            }
        }
        return;
    }
    /* The county: the sum of its townships' values for the span.  Only
     * the parts in which some township has a value (the county's cell of
     * the part has one) can hold a township's latest. */
    calperiod_t with[CALPERIOD_PARTS_MAX];
    size_t m = 0;
    for (size_t i = 0; i < n && m < CALPERIOD_PARTS_MAX; i++) {
        recall_value(r, metric, 0, parts[i], &v);
        if (v.present)
            with[m++] = parts[i];
    }
    if (m <= 1) { /* one part: its county cell is that sum already */
        if (m == 1)
            recall_value(r, metric, 0, with[0], out);
        return;
    }
    const recall_sweep_t *s = sweep_of(j, metric);
    if (s != NULL) { /* read township by township over the loop's turns */
        out->present = s->any && !s->overflow;
        out->num = out->present ? s->sum : 0;
        return;
    }
    int64_t sum = 0;
    bool any = false;
    for (uint32_t t = 1; t <= intern_count(r->c.towns); t++) {
        span_base(r, NULL, metric, t, with, m, &v);
        if (!v.present)
            continue;
        if (__builtin_add_overflow(sum, v.num, &sum))
            return;
        any = true;
    }
    out->present = any;
    out->num = sum;
}

static void span_value(const recall_t *r, const recall_job_t *j, uint32_t metric, uint32_t town,
                       const calperiod_t *parts, size_t n, engine_value_t *out)
{
    uint32_t num, den;
    if (engine_ratio_operands(r->c.engine, metric, &num, &den) != 0) {
        span_base(r, j, metric, town, parts, n, out);
        return;
    }
    engine_value_t a, b;
    span_base(r, j, num, town, parts, n, &a);
    span_base(r, j, den, town, parts, n, &b);
    engine_ratio_value(r->c.engine, metric, &a, &b, out);
}

void recall_span_value(const recall_t *r, uint32_t metric, uint32_t town, const calperiod_t *parts,
                       size_t n, engine_value_t *out)
{
    span_value(r, NULL, metric, town, parts, n, out);
}

/* The county gauges of span job j whose value needs every township's
 * (parts with a value in more than one of parts[0..n)), each once, into
 * j->sweeps.  false when out of memory. */
static bool sweeps_set_up(const recall_t *r, recall_job_t *j, const calperiod_t *parts, size_t n)
{
    for (size_t i = 0; i < j->nitems; i++) {
        const engine_item_t *it = &j->items[i];
        uint32_t base[2] = {it->metric, 0}, num, den;
        size_t nbase = 1;
        if (it->town != 0)
            continue;
        if (engine_ratio_operands(r->c.engine, it->metric, &num, &den) == 0) {
            base[0] = num;
            base[1] = den;
            nbase = 2;
        }
        for (size_t b = 0; b < nbase; b++) {
            if (engine_metric_kind(r->c.engine, base[b]) != PROTO_KIND_GAUGE ||
                sweep_of(j, base[b]) != NULL)
                continue;
            recall_sweep_t s = {.metric = base[b], .next_town = 1};
            engine_value_t v;
            for (size_t p = 0; p < n && s.m < CALPERIOD_PARTS_MAX; p++) {
                recall_value(r, base[b], 0, parts[p], &v);
                if (v.present)
                    s.with[s.m++] = parts[p];
            }
            if (s.m <= 1)
                continue; /* the county's cell of that part is the sum */
            recall_sweep_t *g = realloc(j->sweeps, (j->nsweeps + 1) * sizeof(*g));
            if (g == NULL)
                return false;
            j->sweeps = g;
            j->sweeps[j->nsweeps++] = s;
        }
    }
    return true;
}

/* Read about budget parts of townships (one township at least) for j's
 * sweeps.  true when every sweep is done. */
static bool sweeps_step(const recall_t *r, recall_job_t *j, uint32_t budget)
{
    uint32_t ntowns = intern_count(r->c.towns);
    bool some = false;
    for (size_t i = 0; i < j->nsweeps; i++) {
        recall_sweep_t *s = &j->sweeps[i];
        for (; s->next_town <= ntowns && !s->overflow; s->next_town++) {
            if (some && budget < s->m)
                return false;
            budget = budget > s->m ? budget - (uint32_t)s->m : 0;
            some = true;
            engine_value_t v;
            span_base(r, NULL, s->metric, s->next_town, s->with, s->m, &v);
            if (!v.present)
                continue;
            if (__builtin_add_overflow(s->sum, v.num, &s->sum))
                s->overflow = true; /* beyond int64: no value (10.7) */
            s->any = true;
        }
    }
    return true;
}

/* Parse a period name of the request and check it against today: it
 * must have begun, unless ahead (the end of a span or range, whose days
 * after today read as nothing yet). */
static int parse_period(const recall_t *r, proto_str_t s, const char *field, bool ahead,
                        calperiod_t *p, const char **field_out, char *msg, size_t msglen)
{
    *field_out = field;
    if (calperiod_parse(s.ptr, s.len, p) != 0) {
        snprintf(msg, msglen,
                 "'%.*s' is not a period: expected YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD, years "
                 "2000..2099",
                 (int)(s.len > 32 ? 32 : s.len), s.ptr);
        return TALLY_EBADPERIOD;
    }
    int32_t first, last;
    calperiod_days(*p, &first, &last);
    int32_t today = history_today(r->c.history);
    if (first > today && !ahead) {
        char t[CALPERIOD_NAME_MAX];
        calperiod_format((calperiod_t){CALPERIOD_DAY, today}, t, sizeof(t));
        snprintf(msg, msglen, "period '%.*s' has not begun yet (today is %s in the daemon's zone)",
                 (int)s.len, s.ptr, t);
        return TALLY_EBADPERIOD;
    }
    return 0;
}

/* The message for a township or metric name that has no tallies, with
 * the id it stands for when it is a catalog name or label (requests take
 * ids: 高观镇 is asked for as gaoguan). */
static void unknown_name(const recall_t *r, proto_str_t name, bool township, char *msg,
                         size_t msglen)
{
    const char *what = township ? "township" : "metric";
    const char *id = r->c.named != NULL ? r->c.named(r->c.named_ctx, name, township) : NULL;
    if (id != NULL)
        snprintf(msg, msglen,
                 "%s '%.*s' has no tallies here: it is the %s of %s '%s' in the catalog; ask "
                 "for its id '%s'",
                 what, (int)name.len, name.ptr, township ? "name" : "label", what, id, id);
    else
        snprintf(msg, msglen, "%s '%.*s' has no tallies here", what, (int)name.len, name.ptr);
}

/* A name in a prefix the daemon has never seen: UNKNOWN_TOWNSHIP or
 * UNKNOWN_METRIC, so that a typing error is not an empty answer. */
static int check_prefix(const recall_t *r, proto_str_t pre, char *msg, size_t msglen)
{
    prefix_parts_t p;
    prefix_split(pre, &p);
    if (p.town.ptr != NULL && intern_find(r->c.towns, p.town.ptr, p.town.len) <= 0) {
        unknown_name(r, p.town, true, msg, msglen);
        return TALLY_EUNKTOWN;
    }
    if (p.metric.ptr != NULL && intern_find(r->c.metrics, p.metric.ptr, p.metric.len) <= 0) {
        unknown_name(r, p.metric, false, msg, msglen);
        return TALLY_EUNKMETRIC;
    }
    return 0;
}

/* TOO_LARGE's message for prefix.  Within one scope (the county, town 0,
 * or one township) the narrowing left is by metric: an open catalog lets
 * one scope hold more metrics than an answer holds (PROTOCOL.md 8.18). */
static void too_large(const recall_t *r, proto_str_t prefix, bool scope, uint32_t town, char *msg,
                      size_t msglen)
{
    int plen = (int)(prefix.len > 64 ? 64 : prefix.len);
    if (!scope) {
        snprintf(msg, msglen,
                 "more series match prefix '%.*s' than the %u one answer holds; narrow it "
                 "(u/county/, u/town/<township>/, a metric)",
                 plen, prefix.ptr, r->c.max_items);
        return;
    }
    char s[PROTO_PREFIX_MAX + 1] = "u/county/";
    if (town != 0) {
        uint32_t len = 0;
        const char *name = intern_name(r->c.towns, town, &len);
        snprintf(s, sizeof(s), "u/town/%.*s/", (int)len, name);
    }
    snprintf(msg, msglen,
             "more series match prefix '%.*s' than the %u one answer holds; within one scope "
             "narrow it by metric: %s<metric>/ for each metric (a snapshot of %s names them)",
             plen, prefix.ptr, r->c.max_items, s, s);
}

typedef struct collect {
    recall_t *r;
    proto_str_t prefix;
    bool oom, too_many;
} collect_t;

static int collect(void *ctx, const engine_item_t *item)
{
    collect_t *c = ctx;
    recall_t *r = c->r;
    if (!prefix_matches(r->c.metrics, r->c.towns, item->metric, item->town, c->prefix))
        return 0;
    if (r->c.max_items > 0 && r->nitems == r->c.max_items) {
        c->too_many = true; /* refused whatever the rest holds */
        return 1;
    }
    if (VEC_RESERVE(r->items, r->cap, r->nitems + 1) != 0) {
        c->oom = true;
        return 1;
    }
    r->items[r->nitems++] = *item;
    return 0;
}

/* Choose the series under prefix for the answer like (a job of its
 * period or span, not yet queued) and queue it, or answer "nothing
 * matches" at once. */
static int start_answer(recall_t *r, const void *rid, size_t rid_len, uint64_t req_id,
                        proto_str_t prefix, const recall_job_t *like, const char **field, char *msg,
                        size_t msglen)
{
    *field = "prefix";
    int rc = check_prefix(r, prefix, msg, msglen);
    if (rc != 0)
        return rc;
    collect_t c = {.r = r, .prefix = prefix};
    r->nitems = 0;
    uint32_t town = 0;
    bool scope = prefix_scope(r->c.towns, prefix, &town);
    if (scope) /* a lookup per metric, not a walk */
        engine_foreach_town(r->c.engine, town, 0, intern_count(r->c.metrics), collect, &c);
    else
        engine_foreach(r->c.engine, collect, &c);
    if (c.oom) {
        snprintf(msg, msglen, "the daemon is out of memory for this answer; retry later");
        return TALLY_EBUSY;
    }
    if (c.too_many) {
        too_large(r, prefix, scope, town, msg, msglen);
        r->nitems = 0;
        return TALLY_ETOOLARGE;
    }
    if (r->nitems == 0) {
        proto_msg_t a = {.type = PROTO_PERIOD};
        a.u.period.req_id = req_id;
        answer(r, rid, rid_len, &a);
        return 0;
    }
    if (r->pending >= RECALL_PENDING || rid_len > sizeof(r->head->rid)) {
        snprintf(msg, msglen,
                 "the daemon is sending as many period answers as it may at once; "
                 "retry later");
        *field = "";
        return TALLY_EBUSY;
    }
    recall_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        snprintf(msg, msglen, "the daemon is out of memory for this answer; retry later");
        *field = "";
        return TALLY_EBUSY;
    }
    *j = *like;
    memcpy(j->rid, rid, rid_len);
    j->rid_len = rid_len;
    j->req_id = req_id;
    j->items = r->items; /* the collected series move to the job */
    j->nitems = r->nitems;
    r->items = NULL;
    r->nitems = r->cap = 0;
    if (r->tail)
        r->tail->next = j;
    else
        r->head = j;
    r->tail = j;
    r->pending++;
    uv_idle_start(&r->idle, on_idle);
    return 0;
}

int recall_period(recall_t *r, const void *rid, size_t rid_len, const proto_msg_t *m,
                  const char **field, char *msg, size_t msglen)
{
    const __typeof__(m->u.period_req) *q = &m->u.period_req;
    calperiod_t p;
    int rc = parse_period(r, q->period, "period", false, &p, field, msg, msglen);
    if (rc != 0)
        return rc;
    if (history_expired(r->c.history, p)) {
        snprintf(msg, msglen, "day '%.*s' is older than the days this daemon keeps",
                 (int)q->period.len, q->period.ptr);
        return TALLY_EEXPIRED;
    }
    recall_job_t like = {.period = p};
    return start_answer(r, rid, rid_len, q->req_id, q->prefix, &like, field, msg, msglen);
}

/* Whether day, a day part of the span first..last (calperiod_split), is
 * one of to's end rather than from's.  The days a span is read as lie
 * before its first whole month (in from's month) and after its last (in
 * to's); a span of days only within one month is from's.  Its answer
 * names the end the asker has to move. */
static bool span_end_is_to(int32_t first, int32_t last, int32_t day)
{
    int32_t m_first = calperiod_of_day(CALPERIOD_MONTH, first).key;
    int32_t m_last = calperiod_of_day(CALPERIOD_MONTH, last).key;
    return m_first != m_last && calperiod_of_day(CALPERIOD_MONTH, day).key == m_last;
}

int recall_span(recall_t *r, const void *rid, size_t rid_len, const proto_msg_t *m,
                const char **field, char *msg, size_t msglen)
{
    const __typeof__(m->u.span_req) *q = &m->u.span_req;
    calperiod_t from, to;
    int rc = parse_period(r, q->from, "from", false, &from, field, msg, msglen);
    if (rc == 0)
        rc = parse_period(r, q->to, "to", true, &to, field, msg, msglen);
    if (rc != 0)
        return rc;
    recall_job_t like = {.span = true};
    int32_t unused;
    calperiod_days(from, &like.first, &unused);
    calperiod_days(to, &unused, &like.last);
    calperiod_t parts[CALPERIOD_PARTS_MAX];
    int n = calperiod_split(like.first, like.last, parts, CALPERIOD_PARTS_MAX);
    if (n < 0) {
        *field = "from";
        snprintf(msg, msglen, "from '%.*s' begins after to '%.*s' ends", (int)q->from.len,
                 q->from.ptr, (int)q->to.len, q->to.ptr);
        return TALLY_EBADPERIOD;
    }
    for (int i = 0; i < n; i++)
        if (history_expired(r->c.history, parts[i])) {
            char d[CALPERIOD_NAME_MAX];
            calperiod_format(parts[i], d, sizeof(d));
            bool at_to = span_end_is_to(like.first, like.last, parts[i].key);
            *field = at_to ? "to" : "from";
            proto_str_t end = at_to ? q->to : q->from;
            snprintf(msg, msglen,
                     "day %s of the span (needed for %s '%.*s') is older than the days this "
                     "daemon keeps (whole months, quarters and years are kept for good)",
                     d, *field, (int)end.len, end.ptr);
            return TALLY_EEXPIRED;
        }
    return start_answer(r, rid, rid_len, q->req_id, q->prefix, &like, field, msg, msglen);
}

/* Send the next batch of the oldest answer under way. */
static void on_idle(uv_idle_t *h)
{
    recall_t *r = h->data;
    recall_job_t *j = r->head;
    if (j == NULL || r->closing) {
        uv_idle_stop(h);
        return;
    }
    char pname[CALPERIOD_NAME_MAX] = "span"; /* a span's one column (PROTOCOL.md 8.24) */
    calperiod_t parts[CALPERIOD_PARTS_MAX];
    int nparts = 0;
    if (j->span)
        nparts = calperiod_split(j->first, j->last, parts, CALPERIOD_PARTS_MAX);
    else
        calperiod_format(j->period, pname, sizeof(pname));
    if (j->span && !j->swept) {
        /* The county's gauges first, a slice of the townships per turn. */
        if (j->sweeps == NULL && !sweeps_set_up(r, j, parts, nparts > 0 ? (size_t)nparts : 0)) {
            free(j->sweeps); /* no memory: each is read whole as it is sent */
            j->sweeps = NULL;
            j->nsweeps = 0;
            j->swept = true;
        } else if (!sweeps_step(r, j,
                                r->c.sweep_reads > 0 ? r->c.sweep_reads : RECALL_SWEEP_READS)) {
            return; /* the next turn goes on */
        }
        j->swept = true;
    }
    proto_msg_t a = {.type = PROTO_PERIOD};
    a.u.period.req_id = j->req_id;
    a.u.period.count = (uint32_t)j->nitems;
    uint64_t seq = publish_seq(r->c.publish);
    int64_t now = clock_now_ms(r->c.clock);
    size_t end = j->sent + RECALL_BATCH < j->nitems ? j->sent + RECALL_BATCH : j->nitems;
    for (size_t i = j->sent; i < end; i++) {
        const engine_item_t *it = &j->items[i];
        engine_value_t v;
        if (j->span)
            span_value(r, j, it->metric, it->town, parts, nparts > 0 ? (size_t)nparts : 0, &v);
        else
            recall_value(r, it->metric, it->town, j->period, &v);
        proto_tally_t *t = &a.u.period.tally;
        uint32_t len = 0;
        const char *name = intern_name(r->c.metrics, it->metric, &len);
        t->metric = (proto_str_t){name, len};
        t->scope = (proto_str_t){"", 0};
        if (it->town != 0) {
            name = intern_name(r->c.towns, it->town, &len);
            t->scope = (proto_str_t){name, len};
        }
        t->kind = it->kind;
        t->seq = seq;
        t->time_ms = now;
        t->nvalues = 1;
        t->values[0] = (proto_value_t){.name = proto_str(pname),
                                       .present = v.present,
                                       .num = v.present ? v.num : 0,
                                       .den = v.present ? v.den : 1};
        a.u.period.index = (uint32_t)i;
        a.u.period.has_tally = true;
        answer(r, j->rid, j->rid_len, &a);
    }
    j->sent = end;
    if (j->sent == j->nitems) {
        r->head = j->next;
        if (r->head == NULL)
            r->tail = NULL;
        r->pending--;
        job_free(j);
        if (r->head == NULL)
            uv_idle_stop(h);
    }
}

int recall_range(recall_t *r, const void *rid, size_t rid_len, const proto_msg_t *m,
                 const char **field, char *msg, size_t msglen)
{
    const __typeof__(m->u.range_req) *q = &m->u.range_req;
    *field = "by";
    int type = calperiod_type_parse(q->by.ptr, q->by.len);
    if (type < 0) {
        snprintf(msg, msglen, "by '%.*s' is not day, month, quarter or year",
                 (int)(q->by.len > 16 ? 16 : q->by.len), q->by.ptr);
        return TALLY_EBADPERIOD;
    }
    calperiod_t from, to, first;
    int rc = parse_period(r, q->from, "from", false, &from, field, msg, msglen);
    if (rc == 0)
        rc = parse_period(r, q->to, "to", true, &to, field, msg, msglen);
    if (rc != 0)
        return rc;
    int64_t count = 0;
    if (calperiod_span(type, from, to, &first, &count) != 0) {
        *field = "from";
        snprintf(msg, msglen, "from '%.*s' begins after to '%.*s' ends", (int)q->from.len,
                 q->from.ptr, (int)q->to.len, q->to.ptr);
        return TALLY_EBADPERIOD;
    }
    if (count > CALPERIOD_RANGE_MAX) {
        *field = "to";
        snprintf(msg, msglen, "%" PRId64 " periods, more than the %d one answer holds", count,
                 CALPERIOD_RANGE_MAX);
        return TALLY_EBADPERIOD;
    }
    *field = "metric";
    int metric = intern_find(r->c.metrics, q->metric.ptr, q->metric.len);
    if (metric <= 0) {
        unknown_name(r, q->metric, false, msg, msglen);
        return TALLY_EUNKMETRIC;
    }
    int town = 0;
    if (q->scope.len > 0) {
        *field = "scope";
        town = intern_find(r->c.towns, q->scope.ptr, q->scope.len);
        if (town <= 0) {
            unknown_name(r, q->scope, true, msg, msglen);
            return TALLY_EUNKTOWN;
        }
    }
    proto_msg_t a = {.type = PROTO_RANGE};
    a.u.range.req_id = q->req_id;
    a.u.range.metric = q->metric;
    a.u.range.scope = q->scope;
    a.u.range.kind = engine_metric_kind(r->c.engine, (uint32_t)metric);
    a.u.range.total = (uint32_t)count;
    char names[PROTO_RANGE_CHUNK][CALPERIOD_NAME_MAX];
    int32_t today = history_today(r->c.history);
    for (int64_t i = 0; i < count; i += PROTO_RANGE_CHUNK) {
        uint32_t n = (uint32_t)(count - i < PROTO_RANGE_CHUNK ? count - i : PROTO_RANGE_CHUNK);
        a.u.range.first = (uint32_t)i;
        a.u.range.npoints = n;
        for (uint32_t j = 0; j < n; j++) {
            calperiod_t p = calperiod_add(first, i + j);
            int len = calperiod_format(p, names[j], sizeof(names[j]));
            engine_value_t v = {.present = false, .den = 1};
            int32_t d0, d1;
            calperiod_days(p, &d0, &d1);
            if (d0 <= today) /* a period that has not begun has no value */
                recall_value(r, (uint32_t)metric, (uint32_t)town, p, &v);
            a.u.range.points[j] = (proto_value_t){.name = {names[j], len > 0 ? (uint32_t)len : 0},
                                                  .present = v.present,
                                                  .num = v.present ? v.num : 0,
                                                  .den = v.present ? v.den : 1};
        }
        answer(r, rid, rid_len, &a);
    }
    return 0;
}
