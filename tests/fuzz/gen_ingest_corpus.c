/* gen_ingest_corpus.c - writes the seed corpus of fuzz_ingest.
 *
 * Usage: gen_ingest_corpus DIR.  Each seed is one fuzz_ingest input (see
 * the format at the top of fuzz_ingest.c): a configuration byte, then
 * records op:u8 len:u16le body.  The seeds cover accepted submissions for a
 * few townships and metrics, duplicates, an overflowing pair, a
 * submission naming a ratio, gauges out of order, the catalog and clock
 * rules, the limits of the tight configuration, the other requests
 * (history, catalog, clock among them) and garbage.  The output is committed under
 * tests/fuzz/corpus/ingest; rerun after a change of the input format or of the protocol.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "proto.h"

#define FUZZ_NOW_MS 1718452800000LL /* as in fuzz_ingest.c */

/* Input configuration bytes and record ops (fuzz_ingest.c). */
enum { CFG_OPEN = 0, CFG_CLOSED = 1, CFG_TOWNS = 2, CFG_TIGHT = 4 };
enum { OP_ONE_FRAME = 8, OP_THREE_FRAMES = 9, OP_RUN_LOOP = 10, OP_CLOCK = 11 };

static const char *dir;
static uint8_t buf[1 << 16];
static size_t used;

static void begin(uint8_t cfg)
{
    buf[0] = cfg;
    used = 1;
}

static void put(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, used, f) != used || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void rec(uint8_t op, const void *body, size_t len)
{
    if (used + 3 + len > sizeof buf || len > 0xffff) {
        fprintf(stderr, "seed too large\n");
        exit(1);
    }
    buf[used] = op;
    buf[used + 1] = (uint8_t)(len & 0xff);
    buf[used + 2] = (uint8_t)(len >> 8);
    if (len)
        memcpy(buf + used + 3, body, len);
    used += 3 + len;
}

static void rec_msg(uint8_t peer, const proto_msg_t *m, size_t cut)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (proto_encode(&sb, m) != 0) {
        fprintf(stderr, "encode failed (type %u)\n", m->type);
        exit(1);
    }
    rec(peer, sb.data, sb.size - cut);
    msgpack_sbuffer_destroy(&sb);
}

/* A SUBMIT from client c with samples "metric=value" pairs. */
static void submit_cut(uint8_t peer, uint8_t c, uint64_t seq, const char *town, int64_t dt_ms,
                       size_t cut, int n, const char *const *metrics, const int64_t *values)
{
    proto_sample_t s[64];
    proto_msg_t m = {.type = PROTO_SUBMIT};
    memset(m.u.submit.client_id, c, PROTO_CLIENT_ID_LEN);
    m.u.submit.seq = seq;
    m.u.submit.township = proto_str(town);
    m.u.submit.time_ms = FUZZ_NOW_MS + dt_ms;
    m.u.submit.nsamples = (uint32_t)n;
    for (int i = 0; i < n; i++) {
        s[i].metric = proto_str(metrics[i]);
        s[i].value = values[i];
    }
    m.u.submit.samples = s;
    rec_msg(peer, &m, cut);
}

static void submit1(uint8_t peer, uint8_t c, uint64_t seq, const char *town, int64_t dt_ms,
                    const char *metric, int64_t value)
{
    submit_cut(peer, c, seq, town, dt_ms, 0, 1, &metric, &value);
}

static void request(uint8_t peer, uint32_t type, uint64_t req_id, const char *text)
{
    proto_msg_t m = {.type = type};
    switch (type) {
    case PROTO_HELLO:
        m.u.hello.req_id = req_id;
        m.u.hello.client = proto_str(text);
        break;
    case PROTO_PING:
        m.u.ping.req_id = req_id;
        m.u.ping.time_ms = FUZZ_NOW_MS;
        break;
    case PROTO_STATS_REQ:
        m.u.stats_req.req_id = req_id;
        break;
    case PROTO_SNAPSHOT_REQ:
        m.u.snapshot_req.req_id = req_id;
        m.u.snapshot_req.prefix = proto_str(text);
        break;
    case PROTO_CATALOG_REQ:
        m.u.catalog_req.req_id = req_id;
        break;
    case PROTO_CLOCK_REQ:
        m.u.clock_req.req_id = req_id;
        break;
    case PROTO_TOWNSHIPS_REQ:
        m.u.townships_req.req_id = req_id;
        m.u.townships_req.from = text != NULL ? 2 : 0; /* from the second township */
        break;
    default:
        break;
    }
    rec_msg(peer, &m, 0);
}

/* PERIOD_REQ (to empty), SPAN_REQ (from..to) or RANGE_REQ (metric,
 * scope, by, from, to). */
static void history_req(uint8_t peer, uint32_t type, uint64_t req_id, const char *prefix,
                        const char *from, const char *to)
{
    proto_msg_t m = {.type = type};
    if (type == PROTO_PERIOD_REQ) {
        m.u.period_req.req_id = req_id;
        m.u.period_req.prefix = proto_str(prefix);
        m.u.period_req.period = proto_str(from);
    } else {
        m.u.span_req.req_id = req_id;
        m.u.span_req.prefix = proto_str(prefix);
        m.u.span_req.from = proto_str(from);
        m.u.span_req.to = proto_str(to);
    }
    rec_msg(peer, &m, 0);
}

static void range_req(uint8_t peer, uint64_t req_id, const char *metric, const char *scope,
                      const char *by, const char *from, const char *to)
{
    proto_msg_t m = {.type = PROTO_RANGE_REQ};
    m.u.range_req.req_id = req_id;
    m.u.range_req.metric = proto_str(metric);
    m.u.range_req.scope = proto_str(scope);
    m.u.range_req.by = proto_str(by);
    m.u.range_req.from = proto_str(from);
    m.u.range_req.to = proto_str(to);
    rec_msg(peer, &m, 0);
}

static void clock_step(uint32_t ms)
{
    uint8_t b[4] = {(uint8_t)ms, (uint8_t)(ms >> 8), (uint8_t)(ms >> 16), (uint8_t)(ms >> 24)};
    rec(OP_CLOCK, b, 4);
}

static void seeds_open(void)
{
    static const char *const two[] = {"disputes.screened", "disputes.resolved"};
    static const int64_t v[] = {12, 11};
    begin(CFG_OPEN);
    request(0, PROTO_HELLO, 1, "tally-fuzz/1");
    submit_cut(0, 1, 1, "gaoguan", -60000, 0, 2, two, v);
    submit_cut(0, 1, 2, "gecheng", -30000, 0, 2, two, v);
    submit1(1, 2, 1, "gaoguan", -1000, "law_exam.takers", 40);
    submit_cut(0, 1, 1, "gaoguan", -60000, 0, 2, two, v); /* duplicate, in flight */
    rec(OP_RUN_LOOP, NULL, 0);
    submit_cut(2, 1, 2, "gecheng", -30000, 0, 2, two, v); /* duplicate, other peer */
    submit1(1, 2, 2, "gaoguan", -1000, "law_exam.passed", 39);
    submit1(1, 2, 3, "gaoguan", -1000, "法治理论考试参考人数", 40); /* a label */
    request(3, PROTO_SNAPSHOT_REQ, 7, "");
    request(3, PROTO_STATS_REQ, 8, NULL);
    request(4, PROTO_PING, 9, NULL);
    request(4, PROTO_TOWNSHIPS_REQ, 10, NULL);
    request(4, PROTO_TOWNSHIPS_REQ, 11, "");
    put("01_open_submits");

    begin(CFG_OPEN);
    submit1(0, 3, 1, "gaoguan", 0, "disputes.resolution_rate", 1); /* a ratio */
    submit1(0, 3, 2, "gaoguan", 0, "patrols", INT64_MAX);
    submit1(0, 3, 3, "gaoguan", 0, "patrols", 1); /* overflows */
    submit1(0, 3, 4, "gecheng", 0, "patrols", INT64_MIN);
    submit1(0, 3, 5, "gecheng", 0, "patrols", -1); /* overflows the county */
    request(1, PROTO_SNAPSHOT_REQ, 2, "u/county/");
    put("02_open_ratio_overflow");
}

static void seeds_closed(void)
{
    static const char *const mix[] = {"grid.zones", "disputes.screened", "grid.notice_boards",
                                      "grid.zones"};
    static const int64_t v[] = {5, 3, 20, 6};
    begin(CFG_CLOSED);
    submit_cut(0, 1, 1, "gaoguan", -5000, 0, 4, mix, v);
    submit1(0, 1, 2, "gaoguan", -9000, "grid.zones", 99); /* older gauge: ignored */
    submit1(0, 1, 3, "高观镇", 0, "grid.zones", 7);
    submit1(1, 2, 1, "nowhere", 0, "grid.zones", 1);                  /* unknown township */
    submit1(1, 2, 2, "gecheng", 0, "grid.zone", 1);                   /* unknown metric */
    submit1(1, 2, 3, "gecheng", 0, "grid.boards_per_zone", 1);        /* a ratio */
    submit1(1, 2, 6, "葛城街道", 0, "grid.zones", 1);                 /* a name, not the id */
    submit1(1, 2, 7, "gecheng", 0, "排查矛盾纠纷", 1);                /* a label */
    submit1(1, 2, 8, "gecheng", 0, "矛盾纠纷化解率", 1);              /* a ratio's label */
    submit1(1, 2, 4, "gecheng", 10 * 60000, "grid.zones", 1);         /* future */
    submit1(1, 2, 5, "gecheng", -3700LL * 86400000, "grid.zones", 1); /* too old */
    rec(OP_RUN_LOOP, NULL, 0);
    submit1(1, 1, 3, "高观镇", 0, "grid.zones", 7); /* duplicate */
    request(2, PROTO_SNAPSHOT_REQ, 3, "u/town/gaoguan/");
    clock_step(3600000);
    request(2, PROTO_SNAPSHOT_REQ, 4, "");
    put("03_closed_gauges");

    begin(CFG_CLOSED);
    submit1(0, 4, 1, "gaoguan", 0, "grid.zones", INT64_MAX);
    submit1(0, 4, 2, "gecheng", 0, "grid.zones", 1); /* county gauge overflows */
    submit1(0, 4, 3, "gecheng", 0, "grid.zones", -5);
    request(0, PROTO_SNAPSHOT_REQ, 1, "u/county/grid");
    put("04_closed_gauge_overflow");
}

static void seeds_limits(void)
{
    /* Closed catalog: 3 clients and 12 series at most. */
    begin(CFG_CLOSED | CFG_TIGHT);
    for (uint8_t c = 1; c <= 5; c++) /* the fourth client is one too many */
        submit1(c % 8, c, 1, "gaoguan", 0, "disputes.screened", c);
    static const char *const six[] = {"disputes.screened", "disputes.resolved",
                                      "law_exam.takers",   "law_exam.passed",
                                      "grid.zones",        "grid.notice_boards"};
    static const int64_t v[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    submit_cut(0, 1, 2, "gecheng", 0, 0, 6, six, v); /* 11 series */
    submit_cut(0, 1, 3, "高观镇", 0, 0, 2, six, v);  /* 2 more: one too many */
    submit_cut(0, 1, 4, "高观镇", 0, 0, 1, six, v);  /* the 12th */
    request(1, PROTO_SNAPSHOT_REQ, 1, "");
    put("05_tight_clients_series");

    /* Open metrics: 8 names at most, the ratio's three included. */
    static const char *const many[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    begin(CFG_TOWNS | CFG_TIGHT);
    submit_cut(0, 1, 1, "gaoguan", 0, 0, 9, many, v); /* more samples than allowed */
    submit_cut(0, 1, 2, "gaoguan", 0, 0, 6, many, v); /* one name too many */
    submit_cut(0, 1, 3, "gaoguan", 0, 0, 5, many, v);
    submit_cut(0, 1, 4, "gecheng", 0, 0, 2, many + 3, v);
    put("06_tight_names");

    begin(CFG_OPEN);
    submit1(0, 5, 2000, "gaoguan", 0, "patrols", 1);
    submit1(0, 5, 1, "gaoguan", 0, "patrols", 1); /* below the window */
    submit1(0, 5, 977, "gaoguan", 0, "patrols", 1);
    submit1(0, 5, 977, "gaoguan", 0, "patrols", 1);
    clock_step(40u * 86400000u);
    submit1(0, 5, 2001, "gaoguan", 0, "patrols", 1);
    request(0, PROTO_SNAPSHOT_REQ, 1, "u/town/");
    put("10_seq_window_clock");
}

static void seeds_towns(void)
{
    begin(CFG_TOWNS);
    submit1(0, 1, 1, "gaoguan", 0, "law_exam.takers", 40);
    submit1(0, 1, 2, "gecheng", 0, "law_exam.passed", 30);
    submit1(0, 1, 3, "gaoguan", 0, "law_exam.pass_rate", 1);
    submit1(0, 1, 4, "fuxing", 0, "law_exam.takers", 1); /* not in the catalog */
    request(1, PROTO_SNAPSHOT_REQ, 5, "u/");
    put("07_towns_ratio");

    const char *names[64];
    int64_t v[64];
    char buf_names[64][16];
    for (int i = 0; i < 64; i++) {
        snprintf(buf_names[i], sizeof buf_names[i], "m%d", i % 40);
        names[i] = buf_names[i];
        v[i] = i - 20;
    }
    begin(CFG_TOWNS);
    submit_cut(0, 9, 1, "gaoguan", 0, 0, 64, names, v);
    submit_cut(0, 9, 2, "gecheng", -1, 0, 64, names, v);
    request(1, PROTO_SNAPSHOT_REQ, 5, "u/county/m1");
    put("08_wide_batch");
}

/* The history's requests over figures of this month and of last year,
 * answered and refused, and the catalog and the clock. */
static void seeds_history(void)
{
    static const char *const two[] = {"disputes.screened", "disputes.resolved"};
    static const int64_t v[] = {12, 11};
    begin(CFG_CLOSED);
    submit_cut(0, 1, 1, "gaoguan", -86400000, 0, 2, two, v);
    submit_cut(0, 1, 2, "gecheng", -30LL * 86400000, 0, 2, two, v);
    submit1(0, 1, 3, "gaoguan", -200LL * 86400000, "grid.zones", 5);
    submit1(0, 1, 4, "gecheng", 0, "grid.zones", 7);
    rec(OP_RUN_LOOP, NULL, 0);
    history_req(1, PROTO_PERIOD_REQ, 1, "u/", "2024", NULL);
    history_req(1, PROTO_PERIOD_REQ, 2, "u/county/", "2023-Q4", NULL);
    history_req(2, PROTO_SPAN_REQ, 3, "u/town/gaoguan/", "2023-12", "2024-06-15");
    history_req(2, PROTO_SPAN_REQ, 4, "u/county/grid.zones", "2024-01-01", "2024-06");
    range_req(3, 5, "disputes.screened", "", "month", "2023-11", "2024-06");
    range_req(3, 6, "grid.zones", "gecheng", "day", "2024-05-01", "2024-06-15");
    rec(OP_RUN_LOOP, NULL, 0);
    history_req(4, PROTO_PERIOD_REQ, 7, "u/town/nowhere/", "2024", NULL); /* unknown */
    history_req(4, PROTO_PERIOD_REQ, 8, "u/", "2099", NULL);              /* not begun */
    history_req(4, PROTO_SPAN_REQ, 9, "u/", "2024-06", "2024-01");        /* backwards */
    history_req(4, PROTO_SPAN_REQ, 10, "u/", "2001", "2024");             /* expired */
    range_req(5, 11, "patrols", "", "year", "2020", "2024");              /* unknown */
    range_req(5, 12, "grid.zones", "", "week", "2024", "2024");           /* bad by */
    request(6, PROTO_CATALOG_REQ, 13, NULL);
    request(6, PROTO_CLOCK_REQ, 14, NULL);
    request(6, PROTO_TOWNSHIPS_REQ, 16, NULL);
    clock_step(40u * 86400000u); /* into July: June closes */
    history_req(7, PROTO_PERIOD_REQ, 15, "u/", "2024-06", NULL);
    put("11_history_requests");

    /* Tight: a PERIOD answer of more series than it may hold. */
    begin(CFG_CLOSED | CFG_TIGHT);
    static const char *const four[] = {"disputes.screened", "disputes.resolved", "law_exam.takers",
                                       "law_exam.passed"};
    static const int64_t w[] = {1, 2, 3, 4};
    submit_cut(0, 1, 1, "gaoguan", 0, 0, 4, four, w);
    rec(OP_RUN_LOOP, NULL, 0);
    history_req(1, PROTO_PERIOD_REQ, 1, "u/", "2024-06-15", NULL);
    history_req(1, PROTO_PERIOD_REQ, 2, "u/county/disputes", "2024-06-15", NULL);
    put("12_history_tight");
}

static void seeds_garbage(void)
{
    static const uint8_t junk[] = {0x93, 0x01, 0x01, 0xc1, 0xff, 0x00, 0x92};
    begin(CFG_CLOSED);
    rec(0, junk, sizeof junk);
    rec(1, NULL, 0);
    rec(OP_ONE_FRAME, NULL, 0);
    static const char *const m1[] = {"disputes.screened"};
    static const int64_t v1[] = {1};
    submit_cut(OP_THREE_FRAMES, 1, 1, "gaoguan", 0, 0, 1, m1, v1);
    submit_cut(2, 1, 2, "gaoguan", 0, 3, 1, m1, v1); /* truncated: seq known */
    proto_msg_t ack = {.type = PROTO_ACK};
    ack.u.ack.seq = 1;
    ack.u.ack.sample = -1;
    rec_msg(3, &ack, 0); /* not a request */
    request(4, PROTO_PING, 1, NULL);
    put("09_garbage");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_ingest_corpus DIR\n");
        return 2;
    }
    dir = argv[1];
    seeds_open();
    seeds_closed();
    seeds_limits();
    seeds_towns();
    seeds_history();
    seeds_garbage();
    return 0;
}
