/* history_bench.c - tally-bench-history: what reading closed periods
 * costs (issue 15).
 *
 * Against a running tallyd (fresh state directory) it
 *   1. fills one closed year of daily figures: T townships x M counter
 *      metrics, one submission of M samples per township and day, stamped
 *      at noon UTC of each day of the year before the current one;
 *   2. waits until history.db holds every submission (its meta row
 *      journal_pos, read through SQLite while tallyd runs);
 *   3. reads that year of every series (PERIOD_REQ for prefix "u/", the
 *      county and its townships: T x M + M tallies) R times through
 *      libtally's tally_period_req, and one metric of the county day by day
 *      over the year (RANGE_REQ, 365 or 366 points) R times, and prints the
 *      latencies (p50, p99, max) of both, connection set-up included.
 * The database's size is measured by run.sh after a clean stop.
 *
 *   tally-bench-history -r ENDPOINT --state DIR [-t 25] [-m 25] [--reads 200]
 *                       [--json]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zmq.h>

#include "bench_time.h"
#include "calperiod.h"
#include "hist.h"
#include "proto.h"
#include "tally.h"
#include "tally_error.h"

#define WINDOW 256

typedef struct opts {
    const char *request, *state;
    uint32_t towns, metrics, reads;
    bool json;
} opts_t;

static void usage(FILE *f)
{
    fputs("Usage: tally-bench-history -r ENDPOINT --state DIR [-t TOWNS] [-m METRICS]\n"
          "                           [--reads N] [--json]\n"
          "Fill one closed year of daily figures into a running tallyd (fresh state\n"
          "directory DIR), wait for its history.db, then time PERIOD_REQ of the year\n"
          "for every series and RANGE_REQ of one county metric by day.\n"
          "  -r ENDPOINT     tallyd's request endpoint\n"
          "  --state DIR     its state directory (history.db is read there)\n"
          "  -t TOWNS        townships (default 25)\n"
          "  -m METRICS      counter metrics (default 25)\n"
          "  --reads N       requests of each kind timed (default 200)\n"
          "  --json          also print the results as one JSON line\n",
          f);
}

static int parse_u32(const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "tally-bench-history: %s: '%s' is not a whole number in %u..%u\n", opt, s,
                lo, hi);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse(opts_t *o, int argc, char **argv)
{
    *o = (opts_t){.towns = 25, .metrics = 25, .reads = 200};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "tally-bench-history: %s: needs a value (or is unknown)\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "-r") == 0)
            o->request = v;
        else if (strcmp(a, "--state") == 0)
            o->state = v;
        else if (strcmp(a, "-t") == 0   ? parse_u32(a, v, 1, 10000, &o->towns) != 0
                 : strcmp(a, "-m") == 0 ? parse_u32(a, v, 1, PROTO_SAMPLES_MAX, &o->metrics) != 0
                 : strcmp(a, "--reads") == 0
                     ? parse_u32(a, v, 1, 1000000, &o->reads) != 0
                     : (fprintf(stderr, "tally-bench-history: unknown option %s\n", a), true))
            return -1;
    }
    if (o->request == NULL || o->state == NULL) {
        fputs("tally-bench-history: -r and --state are required\n", stderr);
        usage(stderr);
        return -1;
    }
    return 0;
}

/* history.db's journal position, 0 when it cannot be read (yet). */
static uint64_t db_pos(const char *state)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/history.db", state);
    sqlite3 *db = NULL;
    uint64_t pos = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        sqlite3_busy_timeout(db, 5000);
        if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'journal_pos'", -1, &st,
                               NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            pos = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return pos;
}

/* Receive one reply and check that it is the ACK accepted of some seq.
 * Returns 0 or -1 (explained). */
static int recv_ack(void *sock)
{
    char buf[4096];
    int n = zmq_recv(sock, buf, sizeof(buf), 0);
    if (n < 0) {
        fprintf(stderr, "tally-bench-history: no reply from tallyd: %s\n", zmq_strerror(errno));
        return -1;
    }
    proto_msg_t m;
    if (proto_decode(buf, (size_t)n, &m, NULL, 0, NULL) != 0 || m.type != PROTO_ACK ||
        m.u.ack.status != PROTO_ACK_ACCEPTED) {
        fprintf(stderr, "tally-bench-history: a submission was not accepted (type %u)\n",
                (unsigned)m.type);
        return -1;
    }
    return 0;
}

/* Fill year y: returns the number of submissions accepted, or -1. */
static int64_t fill(const opts_t *o, int y)
{
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, tmo = 60000;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    if (zmq_connect(sock, o->request) != 0) {
        fprintf(stderr, "tally-bench-history: cannot connect to %s: %s\n", o->request,
                zmq_strerror(errno));
        zmq_close(sock);
        zmq_ctx_term(ctx);
        return -1;
    }
    char(*towns)[16] = calloc(o->towns, sizeof(*towns));
    char(*mets)[16] = calloc(o->metrics, sizeof(*mets));
    proto_sample_t *smp = calloc(o->metrics, sizeof(*smp));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (uint32_t i = 0; i < o->towns; i++)
        snprintf(towns[i], sizeof(towns[i]), "t%05u", i);
    for (uint32_t i = 0; i < o->metrics; i++) {
        snprintf(mets[i], sizeof(mets[i]), "m%02u", i);
        smp[i].metric = proto_str(mets[i]);
    }
    proto_msg_t m = {.type = PROTO_SUBMIT};
    if (getrandom(m.u.submit.client_id, PROTO_CLIENT_ID_LEN, 0) != PROTO_CLIENT_ID_LEN)
        memset(m.u.submit.client_id, 0x5a, PROTO_CLIENT_ID_LEN);
    int32_t d0 = calperiod_days_from_civil(y, 1, 1), d1 = calperiod_days_from_civil(y + 1, 1, 1);
    int64_t sent = 0, acked = 0;
    int rc = 0;
    for (int32_t d = d0; d < d1 && rc == 0; d++)
        for (uint32_t t = 0; t < o->towns && rc == 0; t++) {
            for (uint32_t k = 0; k < o->metrics; k++)
                smp[k].value = 1 + (d * 7 + t * 3 + k) % 100;
            m.u.submit.seq = (uint64_t)++sent;
            m.u.submit.township = proto_str(towns[t]);
            m.u.submit.time_ms = (int64_t)d * 86400000LL + 12 * 3600000LL;
            m.u.submit.nsamples = o->metrics;
            m.u.submit.samples = smp;
            msgpack_sbuffer_clear(&sb);
            if (proto_encode(&sb, &m) != 0 || zmq_send(sock, sb.data, sb.size, 0) < 0) {
                fputs("tally-bench-history: cannot send a submission\n", stderr);
                rc = -1;
                break;
            }
            while (rc == 0 && sent - acked >= WINDOW) {
                rc = recv_ack(sock);
                acked++;
            }
        }
    while (rc == 0 && acked < sent) {
        rc = recv_ack(sock);
        acked++;
    }
    msgpack_sbuffer_destroy(&sb);
    free(towns);
    free(mets);
    free(smp);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return rc == 0 ? sent : -1;
}

typedef struct counted {
    uint64_t n;
} counted_t;

static void on_tally(void *ctx, const tally_tally_t *t)
{
    (void)t;
    ((counted_t *)ctx)->n++;
}

static void on_point(void *ctx, int kind, const tally_value_t *v)
{
    (void)kind;
    (void)v;
    ((counted_t *)ctx)->n++;
}

static void print_hist(const char *what, const hist_t *h, uint64_t items)
{
    printf("%-34s %8.2f %8.2f %8.2f ms  (%" PRIu64 " requests, %" PRIu64 " items each)\n", what,
           (double)hist_percentile(h, 50) / 1e6, (double)hist_percentile(h, 99) / 1e6,
           (double)hist_max(h) / 1e6, hist_count(h), items);
}

int main(int argc, char **argv)
{
    opts_t o;
    if (parse(&o, argc, argv) != 0)
        return 2;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int y = tm.tm_year + 1900 - 1;
    int64_t t0 = bench_time_ns();
    int64_t n = fill(&o, y);
    if (n < 0)
        return 1;
    int64_t t1 = bench_time_ns();
    fprintf(stderr,
            "tally-bench-history: %" PRId64 " submissions of %u samples (year %d) in %.1f s\n", n,
            o.metrics, y, (double)(t1 - t0) / 1e9);
    /* The writer stores every HISTORY_FLUSH_MS: wait for the last one. */
    int64_t give_up = bench_time_ns() + 300 * 1000000000LL;
    while (db_pos(o.state) < (uint64_t)n) {
        if (bench_time_ns() > give_up) {
            fprintf(stderr,
                    "tally-bench-history: history.db stays at journal position %" PRIu64
                    " of %" PRId64 "\n",
                    db_pos(o.state), n);
            return 1;
        }
        usleep(50 * 1000);
    }
    int64_t t2 = bench_time_ns();
    char year[16], from[24], to[24], err[512];
    snprintf(year, sizeof(year), "%d", y);
    snprintf(from, sizeof(from), "%d-01-01", y);
    snprintf(to, sizeof(to), "%d-12-31", y);
    tally_request_t req = {.timeout_ms = 30000, .errbuf = err, .errbuf_len = sizeof(err)};
    hist_t hp, hr;
    hist_init(&hp);
    hist_init(&hr);
    uint64_t want = (uint64_t)o.towns * o.metrics + o.metrics, days = 0;
    for (uint32_t i = 0; i < o.reads; i++) {
        counted_t c = {0};
        int64_t a = bench_time_ns();
        int rc = tally_period_req(o.request, &req, "u/", year, on_tally, &c);
        hist_record(&hp, bench_time_ns() - a);
        if (rc != 0 || c.n != want) {
            fprintf(stderr,
                    "tally-bench-history: PERIOD_REQ %s: %s (%s), %" PRIu64
                    " tallies, expected %" PRIu64 "\n",
                    year, tally_strerror(rc), err, c.n, want);
            return 1;
        }
        c.n = 0;
        a = bench_time_ns();
        rc = tally_range_req(o.request, &req, "m00", NULL, "day", from, to, on_point, &c);
        hist_record(&hr, bench_time_ns() - a);
        if (rc != 0) {
            fprintf(stderr, "tally-bench-history: RANGE_REQ: %s (%s)\n", tally_strerror(rc), err);
            return 1;
        }
        days = c.n;
    }
    printf("history: %u townships x %u metrics, year %d of daily figures; stored %.1f s after "
           "the last acknowledgement\n",
           o.towns, o.metrics, y, (double)(t2 - t1) / 1e9);
    printf("%-34s %8s %8s %8s\n", "", "p50", "p99", "max");
    print_hist("PERIOD_REQ one year, every series", &hp, want);
    print_hist("RANGE_REQ one county metric by day", &hr, days);
    if (o.json)
        printf("{\"towns\":%u,\"metrics\":%u,\"series\":%" PRIu64 ",\"submissions\":%" PRId64
               ",\"fill_s\":%.3f,\"store_wait_s\":%.3f,\"period_p50_ms\":%.3f,"
               "\"period_p99_ms\":%.3f,\"period_max_ms\":%.3f,\"range_p50_ms\":%.3f,"
               "\"range_p99_ms\":%.3f,\"range_points\":%" PRIu64 "}\n",
               o.towns, o.metrics, want, n, (double)(t1 - t0) / 1e9, (double)(t2 - t1) / 1e9,
               (double)hist_percentile(&hp, 50) / 1e6, (double)hist_percentile(&hp, 99) / 1e6,
               (double)hist_max(&hp) / 1e6, (double)hist_percentile(&hr, 50) / 1e6,
               (double)hist_percentile(&hr, 99) / 1e6, days);
    return 0;
}
