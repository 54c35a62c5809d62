/* tally_bench.c - tally-bench, a load generator for tallyd.
 *
 * One process, one load loop: N DEALER connections, each with its own
 * random client id and sequence numbers 1, 2, 3 ..., each keeping at most W
 * submissions in flight, submit S samples (+1 each, to S distinct metrics
 * of one township) per submission over a key space of townships x metrics,
 * flat out or at a capped rate, for a duration after a warm-up.  It reports
 * acknowledged submissions and samples per second, acknowledgement latency
 * (p50, p99, p99.9 from a histogram), submit-to-publish latency seen by one
 * subscriber (pubwatch.h), and tallyd's CPU seconds and memory, read from
 * /proc, for a tallyd it started itself (--tallyd) or one named by --pid.
 *
 * The loop never resends: this measures the daemon, not the client
 * library's recovery.  Rejections, errors and submissions still without an
 * answer at the end are counted and reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "bench_opts.h"
#include "bench_time.h"
#include "drain.h"
#include "hist.h"
#include "procstat.h"
#include "proto.h"
#include "pubwatch.h"
#include "text.h"

#define RING 1024 /* the protocol's in-flight window; W <= 1000 fits */

typedef struct conn {
    void *sock;
    uint8_t id[PROTO_CLIENT_ID_LEN];
    uint64_t next_seq; /* the next seq to send, from 1 */
    uint64_t low;      /* the lowest seq without an answer */
    uint32_t inflight;
    int64_t sent_ns[RING];
    uint8_t busy[RING];
} conn_t;

typedef struct bench {
    bench_opts_t o;
    void *zctx;
    conn_t *conns;
    zmq_pollitem_t *items;
    char (*towns)[16];
    char (*mets)[16];
    proto_sample_t *samples;
    uint32_t *midx;
    msgpack_sbuffer sb;
    proto_msg_t out, in;
    uint8_t rbuf[65536];
    pubwatch_t watch;
    bool watching;
    drain_t drain;
    pid_t pid; /* tallyd to measure, 0 = none */
    bool own_tallyd;
    char pub[PROTO_ENDPOINT_MAX + 1];
    uint64_t rng, next_town, req_id;

    uint64_t sent, answered, accepted, duplicates, rejected, errors, stray;
    uint64_t win_subs, win_samples;
    hist_t ack;
    char first_problem[PROTO_MESSAGE_MAX + 64];
    bool in_window;
    int64_t t_warm, t_end, t_stop;
    procstat_t ps_start, ps_warm, ps_end, ps_final;
    double self_warm, self_end;
    /* CPU by thread name over the window: tallyd's [0], our own [1] */
    procstat_thread_t thr_warm[2][PROCSTAT_THREADS_MAX], thr_end[2][PROCSTAT_THREADS_MAX];
    int nthr_warm[2], nthr_end[2];
    bool have_stats;
    int64_t st_series, st_memory, st_updates, st_townships, st_rejected;
    int64_t st_mem_engine, st_mem_history;
} bench_t;

static uint64_t rnd(bench_t *b)
{
    /* xorshift64*: fast, and good enough to spread keys. */
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 0x2545F4914F6CDD1DULL;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void note_problem(bench_t *b, const char *what, proto_str_t text)
{
    if (b->first_problem[0])
        return;
    snprintf(b->first_problem, sizeof(b->first_problem), "%s: %.*s", what, (int)text.len, text.ptr);
}

static int set_int(void *sock, int opt, int v)
{
    return zmq_setsockopt(sock, opt, &v, sizeof(v));
}

static int open_conns(bench_t *b)
{
    b->conns = calloc(b->o.connections, sizeof(*b->conns));
    b->items = calloc(b->o.connections + 1, sizeof(*b->items));
    if (!b->conns || !b->items)
        return TALLY_ENOMEM;
    for (uint32_t i = 0; i < b->o.connections; i++) {
        conn_t *c = &b->conns[i];
        if (getrandom(c->id, sizeof(c->id), 0) != (ssize_t)sizeof(c->id))
            return TALLY_ESYS;
        c->next_seq = c->low = 1;
        c->sock = zmq_socket(b->zctx, ZMQ_DEALER);
        if (!c->sock || set_int(c->sock, ZMQ_SNDHWM, 4096) || set_int(c->sock, ZMQ_RCVHWM, 0) ||
            set_int(c->sock, ZMQ_LINGER, 0) || set_int(c->sock, ZMQ_RECONNECT_IVL, 100) ||
            zmq_connect(c->sock, b->o.request) != 0) {
            fprintf(stderr, "tally-bench: connecting to %s: %s\n", b->o.request,
                    zmq_strerror(zmq_errno()));
            return TALLY_ESYS;
        }
        b->items[i] = (zmq_pollitem_t){.socket = c->sock, .events = ZMQ_POLLIN};
    }
    return 0;
}

static void make_keys(bench_t *b)
{
    for (uint32_t i = 0; i < b->o.townships; i++)
        pubwatch_town_name(b->towns[i], i);
    for (uint32_t i = 0; i < b->o.metrics; i++)
        pubwatch_metric_name(b->mets[i], i);
}

/* ---- replies ------------------------------------------------------------ */

static void on_ack(bench_t *b, conn_t *c, const proto_ack_t *a, int64_t at)
{
    uint64_t seq = a->seq;
    uint32_t slot = (uint32_t)(seq & (RING - 1));
    if (seq < c->low || seq >= c->next_seq || !c->busy[slot]) {
        b->stray++;
        return;
    }
    c->busy[slot] = 0;
    c->inflight--;
    while (c->low < c->next_seq && !c->busy[c->low & (RING - 1)])
        c->low++;
    b->answered++;
    if (a->status == PROTO_ACK_REJECTED) {
        b->rejected++;
        note_problem(b, tally_errname(-(int)a->code), a->message);
        return;
    }
    if (a->status == PROTO_ACK_DUPLICATE)
        b->duplicates++;
    else
        b->accepted++;
    if (b->in_window && at < b->t_end) {
        b->win_subs++;
        b->win_samples += b->o.samples;
        hist_record(&b->ack, at - c->sent_ns[slot]);
    }
}

static void on_stats(bench_t *b, const proto_msg_t *m)
{
    struct {
        const char *name;
        int64_t *dst;
    } want[] = {
        {"tallyd_series", &b->st_series},
        {"tallyd_memory_bytes", &b->st_memory},
        {"tallyd_memory_engine_bytes", &b->st_mem_engine},
        {"tallyd_memory_history_bytes", &b->st_mem_history},
        {"tallyd_updates_published_total", &b->st_updates},
        {"tallyd_townships", &b->st_townships},
        {"tallyd_rejected_total", &b->st_rejected},
    };
    for (uint32_t i = 0; i < m->u.stats.n; i++)
        for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++)
            if (proto_str_eq(m->u.stats.entries[i].name, want[k].name))
                *want[k].dst = m->u.stats.entries[i].value;
    b->have_stats = true;
}

/* Receive every waiting reply on c.  Returns how many. */
static uint32_t receive(bench_t *b, conn_t *c)
{
    uint32_t got = 0;
    for (;;) {
        int n = zmq_recv(c->sock, b->rbuf, sizeof(b->rbuf), ZMQ_DONTWAIT);
        if (n < 0)
            break;
        int64_t at = bench_time_ns();
        got++;
        if ((size_t)n > sizeof(b->rbuf) ||
            proto_decode(b->rbuf, (size_t)n, &b->in, NULL, 0, NULL) != 0) {
            b->errors++;
            note_problem(b, "undecodable reply", proto_str(""));
            continue;
        }
        switch (b->in.type) {
        case PROTO_ACK:
            on_ack(b, c, &b->in.u.ack, at);
            break;
        case PROTO_ERROR:
            b->errors++;
            note_problem(b, tally_errname(-(int)b->in.u.error.code), b->in.u.error.message);
            break;
        case PROTO_STATS:
            on_stats(b, &b->in);
            break;
        case PROTO_WELCOME:
            /* The first one counts; later ones answer repeated HELLOs. */
            if (b->pub[0] == '\0')
                snprintf(b->pub, sizeof(b->pub), "%.*s", (int)b->in.u.welcome.pub_endpoint.len,
                         b->in.u.welcome.pub_endpoint.ptr);
            break;
        default:
            break;
        }
    }
    return got;
}

/* ---- submissions -------------------------------------------------------- */

static bool can_send(const bench_t *b, const conn_t *c)
{
    return c->inflight < b->o.window && c->next_seq < c->low + RING &&
           (b->o.count == 0 || b->sent < b->o.count);
}

static int send_submit(bench_t *b, conn_t *c, int64_t wall_ms)
{
    uint32_t town = b->o.seq_order ? (uint32_t)(b->next_town++ % b->o.townships)
                                   : (uint32_t)(rnd(b) % b->o.townships);
    uint32_t first = (uint32_t)(rnd(b) % b->o.metrics);
    for (uint32_t i = 0; i < b->o.samples; i++) {
        uint32_t m = (first + i) % b->o.metrics;
        b->midx[i] = m;
        b->samples[i].metric = (proto_str_t){b->mets[m], (uint32_t)strlen(b->mets[m])};
        b->samples[i].value = 1;
    }
    proto_submit_t *s = &b->out.u.submit;
    memcpy(s->client_id, c->id, sizeof(c->id));
    s->seq = c->next_seq;
    s->township = (proto_str_t){b->towns[town], (uint32_t)strlen(b->towns[town])};
    s->time_ms = wall_ms;
    /* A late figure: stamped 31 days ago, a closed period (history). */
    if (b->o.late_pct > 0 && (double)(rnd(b) % 1000000) < b->o.late_pct * 10000.0)
        s->time_ms = wall_ms - 31LL * 86400000LL;
    else if (b->o.spread_s > 0)
        s->time_ms = wall_ms - (int64_t)(((double)(rnd(b) >> 11) / 9007199254740992.0) *
                                         b->o.spread_s * 1000.0);
    s->nsamples = b->o.samples;
    s->samples = b->samples;
    msgpack_sbuffer_clear(&b->sb);
    if (proto_encode(&b->sb, &b->out) != 0) {
        fprintf(stderr, "tally-bench: cannot encode a submission\n");
        return TALLY_EINVAL;
    }
    int64_t at = bench_time_ns();
    if (zmq_send(c->sock, b->sb.data, b->sb.size, ZMQ_DONTWAIT) < 0)
        return TALLY_EBUSY; /* the queue is full: try again on the next pass */
    uint32_t slot = (uint32_t)(c->next_seq & (RING - 1));
    c->sent_ns[slot] = at;
    c->busy[slot] = 1;
    c->inflight++;
    c->next_seq++;
    b->sent++;
    if (b->watching)
        pubwatch_sent(&b->watch, town, b->midx, b->o.samples, at);
    return 0;
}

/* ---- the load loop ------------------------------------------------------ */

static void start_window(bench_t *b)
{
    b->in_window = true;
    b->watch.recording = true;
    if (b->pid) {
        procstat_read(b->pid, &b->ps_warm);
        b->nthr_warm[0] = procstat_threads(b->pid, b->thr_warm[0], PROCSTAT_THREADS_MAX);
    }
    b->nthr_warm[1] = procstat_threads(getpid(), b->thr_warm[1], PROCSTAT_THREADS_MAX);
    b->self_warm = self_cpu();
}

static void end_window(bench_t *b, int64_t now)
{
    b->t_stop = now < b->t_end ? now : b->t_end;
    b->in_window = false;
    b->watch.recording = false;
    if (b->pid) {
        procstat_read(b->pid, &b->ps_end);
        b->nthr_end[0] = procstat_threads(b->pid, b->thr_end[0], PROCSTAT_THREADS_MAX);
    }
    b->nthr_end[1] = procstat_threads(getpid(), b->thr_end[1], PROCSTAT_THREADS_MAX);
    b->self_end = self_cpu();
}

static uint32_t pass(bench_t *b, double *tokens)
{
    uint32_t progress = 0;
    int64_t wall = bench_time_wall_ms();
    for (uint32_t i = 0; i < b->o.connections; i++) {
        conn_t *c = &b->conns[i];
        progress += receive(b, c);
        while (can_send(b, c) && (b->o.rate <= 0 || *tokens >= 1.0)) {
            if (send_submit(b, c, wall) != 0)
                break;
            if (b->o.rate > 0)
                *tokens -= 1.0;
            progress++;
        }
    }
    if (b->watching)
        progress += pubwatch_drain(&b->watch, 4096);
    return progress;
}

static void load(bench_t *b)
{
    int64_t t0 = bench_time_ns();
    b->t_warm = t0 + (int64_t)(b->o.warmup_s * 1e9);
    b->t_end = b->t_warm + (int64_t)(b->o.duration_s * 1e9);
    /* A bucket of two milliseconds' worth: the loop sleeps in zmq_poll's
     * whole milliseconds, and a smaller bucket would lose tokens to
     * oversleeping; a larger one would let a stall turn into a burst. */
    double burst = b->o.rate > 0 ? fmax(1.0, b->o.rate / 500.0) : 0;
    double tokens = burst;
    int64_t last = t0;
    uint32_t nitems = b->o.connections + (b->watching ? 1 : 0);
    if (b->watching)
        b->items[b->o.connections] =
            (zmq_pollitem_t){.socket = b->watch.sock, .events = ZMQ_POLLIN};
    int64_t now = t0;
    for (;;) {
        now = bench_time_ns();
        if (!b->in_window && now >= b->t_warm)
            start_window(b);
        if (now >= b->t_end || (b->o.count && b->answered >= b->o.count))
            break;
        if (b->o.rate > 0) {
            tokens = fmin(burst, tokens + (double)(now - last) * b->o.rate / 1e9);
            last = now;
        }
        if (pass(b, &tokens) > 0)
            continue;
        long ms = 100;
        if (b->o.rate > 0 && tokens < 1.0)
            ms = 1;
        int64_t next = b->in_window ? b->t_end : b->t_warm;
        if ((next - now) / 1000000 + 1 < ms)
            ms = (long)((next - now) / 1000000 + 1);
        zmq_poll(b->items, (int)nitems, ms);
    }
    end_window(b, now);
}

/* Wait for the answers still outstanding, without counting them. */
static void drain_acks(bench_t *b)
{
    int64_t deadline = bench_time_ns() + (int64_t)(b->o.drain_s * 1e9);
    for (;;) {
        uint64_t out = 0;
        for (uint32_t i = 0; i < b->o.connections; i++) {
            receive(b, &b->conns[i]);
            out += b->conns[i].inflight;
        }
        if (b->watching)
            pubwatch_drain(&b->watch, 100000);
        if (out == 0 || bench_time_ns() >= deadline)
            return;
        zmq_poll(b->items, (int)b->o.connections, 10);
    }
}

static int request(bench_t *b, uint32_t type)
{
    proto_msg_t *m = &b->out;
    uint32_t keep = m->type;
    m->type = type;
    if (type == PROTO_HELLO) {
        m->u.hello.req_id = ++b->req_id;
        m->u.hello.client = proto_str("tally-bench");
    } else {
        m->u.stats_req.req_id = ++b->req_id;
    }
    msgpack_sbuffer_clear(&b->sb);
    int rc = proto_encode(&b->sb, m);
    m->type = keep;
    if (rc == 0 && zmq_send(b->conns[0].sock, b->sb.data, b->sb.size, ZMQ_DONTWAIT) < 0)
        rc = TALLY_EBUSY;
    return rc;
}

static void fetch_stats(bench_t *b)
{
    if (request(b, PROTO_STATS_REQ) != 0)
        return;
    int64_t deadline = bench_time_ns() + 2000000000LL;
    while (!b->have_stats && bench_time_ns() < deadline) {
        zmq_poll(b->items, 1, 50);
        receive(b, &b->conns[0]);
    }
}

/* ---- tallyd ------------------------------------------------------------- */

static int spawn_tallyd(bench_t *b)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = b->o.tallyd;
    if (b->o.config) {
        argv[n++] = "-c";
        argv[n++] = b->o.config;
    }
    argv[n++] = "-r";
    argv[n++] = b->o.request;
    if (b->o.publish) {
        argv[n++] = "-p";
        argv[n++] = b->o.publish;
    }
    if (b->o.state_dir) {
        argv[n++] = "-s";
        argv[n++] = b->o.state_dir;
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        perror("tally-bench: fork");
        return TALLY_ESYS;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls until exec: the parent has threads
         * (ZeroMQ's), whose locks the child may have inherited held. */
        if (b->o.tallyd_log) {
            int fd = open(b->o.tallyd_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
                _exit(127);
        }
        execv(argv[0], (char *const *)argv);
        static const char msg[] = "tally-bench: cannot run tallyd (--tallyd)\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        _exit(127);
    }
    b->pid = pid;
    b->own_tallyd = true;
    return 0;
}

static int stop_tallyd(bench_t *b)
{
    if (!b->own_tallyd)
        return 0;
    kill(b->pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 1000; i++) {
        if (waitpid(b->pid, &status, WNOHANG) == b->pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10000);
    }
    fprintf(stderr, "tally-bench: tallyd (pid %d) did not stop in 10 s; killing it\n", (int)b->pid);
    kill(b->pid, SIGKILL);
    waitpid(b->pid, &status, 0);
    return -1;
}

/* HELLO until WELCOME: the daemon is up, and tells where it publishes. */
static int await_daemon(bench_t *b, int timeout_ms)
{
    int64_t deadline = bench_time_ns() + (int64_t)timeout_ms * 1000000;
    b->pub[0] = '\0';
    while (b->pub[0] == '\0') {
        if (bench_time_ns() >= deadline) {
            fprintf(stderr, "tally-bench: no WELCOME from %s within %d ms\n", b->o.request,
                    timeout_ms);
            return TALLY_ETIMEDOUT;
        }
        int status;
        if (b->own_tallyd && waitpid(b->pid, &status, WNOHANG) == b->pid) {
            fprintf(stderr, "tally-bench: tallyd exited during start-up\n");
            b->own_tallyd = false;
            return TALLY_ECLOSED;
        }
        request(b, PROTO_HELLO);
        for (int i = 0; i < 20 && b->pub[0] == '\0'; i++) {
            zmq_poll(b->items, 1, 50);
            receive(b, &b->conns[0]);
        }
    }
    return 0;
}

/* The publish endpoint: --publish, else WELCOME's, with a wildcard host
 * replaced by the request endpoint's (PROTOCOL.md 4.2). */
static void resolve_publish(bench_t *b)
{
    if (b->o.publish) {
        snprintf(b->pub, sizeof(b->pub), "%s", b->o.publish);
        return;
    }
    static const char *const wild[] = {"tcp://*:", "tcp://0.0.0.0:", "tcp://[::]:"};
    for (size_t i = 0; i < sizeof(wild) / sizeof(wild[0]); i++) {
        size_t wl = strlen(wild[i]);
        if (strncmp(b->pub, wild[i], wl) != 0 || strncmp(b->o.request, "tcp://", 6) != 0)
            continue;
        const char *host = b->o.request + 6;
        const char *colon = strrchr(host, ':');
        char port[32];
        snprintf(port, sizeof(port), "%s", b->pub + wl);
        if (colon)
            snprintf(b->pub, sizeof(b->pub), "tcp://%.*s:%s", (int)(colon - host), host, port);
        return;
    }
}

/* ---- report ------------------------------------------------------------- */

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

/* Each thread name's CPU over the window of process k (0: tallyd, 1:
 * tally-bench) per submission acknowledged in it, in microseconds, as
 * "name":us pairs, or as "name us" for people (json false).  A thread
 * started during the window counts from zero. */
static void print_threads(const bench_t *b, int k, bool json)
{
    bool first = true;
    for (int i = 0; i < b->nthr_end[k]; i++) {
        const procstat_thread_t *t = &b->thr_end[k][i];
        double before = 0;
        for (int j = 0; j < b->nthr_warm[k]; j++)
            if (strcmp(b->thr_warm[k][j].name, t->name) == 0)
                before = b->thr_warm[k][j].cpu_s;
        double per = b->win_subs > 0 ? (t->cpu_s - before) * 1e6 / (double)b->win_subs : 0;
        if (json) {
            printf("%s", first ? "" : ",");
            text_json_string(stdout, t->name, strlen(t->name));
            printf(":%.3f", per < 0 ? 0 : per);
        } else if (per >= 0.005) {
            printf("%s%s %.2f", first ? "" : ", ", t->name, per);
        } else {
            continue;
        }
        first = false;
    }
}

static void report(bench_t *b, int tallyd_status)
{
    double secs = (double)(b->t_stop - b->t_warm) / 1e9;
    if (secs <= 0)
        secs = 1e-9;
    double subs = (double)b->win_subs / secs, samp = (double)b->win_samples / secs;
    uint64_t lost = 0;
    for (uint32_t i = 0; i < b->o.connections; i++)
        lost += b->conns[i].inflight;
    double tcpu = b->pid ? b->ps_end.cpu_s - b->ps_warm.cpu_s : NAN;
    const hist_t *p = &b->watch.hist;
    const char *label = b->o.label ? b->o.label : "bench";
    printf("%s: %.0f samples/s, %.0f submissions/s; ack p50 %.0f us, p99 %.0f us, p99.9 %.0f us",
           label, samp, subs, us(hist_percentile(&b->ack, 50)), us(hist_percentile(&b->ack, 99)),
           us(hist_percentile(&b->ack, 99.9)));
    if (b->watching)
        printf("; pub p99 %.0f us (%" PRIu64 " timed, %" PRIu64 " gaps)",
               us(hist_percentile(p, 99)), hist_count(p), b->watch.gaps);
    if (b->pid)
        printf("; tallyd %.2f CPU s, peak RSS %.1f MiB", tcpu, (double)b->ps_final.hwm_kib / 1024);
    printf("; bench %.2f CPU s\n", b->self_end - b->self_warm);
    if (b->win_subs > 0 && b->nthr_end[1] > 0) {
        printf("%s: CPU per submission by thread, us:", label);
        if (b->pid && b->nthr_end[0] > 0) {
            printf(" tallyd: ");
            print_threads(b, 0, false);
            printf(";");
        }
        printf(" tally-bench: ");
        print_threads(b, 1, false);
        printf("\n");
    }
    if (b->rejected || b->errors || lost || b->stray)
        printf("%s: WARNING %" PRIu64 " rejected, %" PRIu64 " errors, %" PRIu64
               " unanswered, %" PRIu64 " stray; first: %s\n",
               label, b->rejected, b->errors, lost, b->stray, b->first_problem);
    if (!b->o.json)
        return;
    printf("{\"label\":");
    text_json_string(stdout, label, strlen(label));
    printf(",\"connections\":%u,\"window\":%u,\"samples_per_submission\":%u,\"townships\":%u,"
           "\"metrics\":%u,\"rate\":%.0f,\"subscribers\":%u,\"duration_s\":%.3f",
           b->o.connections, b->o.window, b->o.samples, b->o.townships, b->o.metrics, b->o.rate,
           b->o.subscribers, secs);
    printf(",\"submissions_per_s\":%.1f,\"samples_per_s\":%.1f,\"sent\":%" PRIu64
           ",\"accepted\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"rejected\":%" PRIu64
           ",\"errors\":%" PRIu64 ",\"unanswered\":%" PRIu64 ",\"stray\":%" PRIu64,
           subs, samp, b->sent, b->accepted, b->duplicates, b->rejected, b->errors, lost, b->stray);
    printf(",\"ack_count\":%" PRIu64 ",\"ack_p50_us\":%.1f,\"ack_p99_us\":%.1f,"
           "\"ack_p999_us\":%.1f,\"ack_max_us\":%.1f,\"ack_mean_us\":%.1f",
           hist_count(&b->ack), us(hist_percentile(&b->ack, 50)), us(hist_percentile(&b->ack, 99)),
           us(hist_percentile(&b->ack, 99.9)), us(hist_max(&b->ack)), us(hist_mean(&b->ack)));
    if (b->watching)
        printf(",\"pub_count\":%" PRIu64 ",\"pub_p50_us\":%.1f,\"pub_p99_us\":%.1f,"
               "\"pub_p999_us\":%.1f,\"pub_max_us\":%.1f,\"pub_updates\":%" PRIu64
               ",\"pub_gaps\":%" PRIu64 ",\"pub_bad\":%" PRIu64,
               hist_count(p), us(hist_percentile(p, 50)), us(hist_percentile(p, 99)),
               us(hist_percentile(p, 99.9)), us(hist_max(p)), b->watch.updates, b->watch.gaps,
               b->watch.bad);
    else
        printf(",\"pub_count\":0,\"pub_p50_us\":null,\"pub_p99_us\":null,\"pub_p999_us\":null");
    printf(",\"drain_received\":%" PRIu64 ",\"bench_cpu_s\":%.3f", drain_received(&b->drain),
           b->self_end - b->self_warm);
    printf(",\"bench_thread_us\":{");
    print_threads(b, 1, true);
    printf("}");
    if (b->pid) {
        printf(",\"tallyd_thread_us\":{");
        print_threads(b, 0, true);
        printf("}");
    }
    if (b->pid)
        printf(",\"tallyd_cpu_s\":%.3f,\"tallyd_cpu_util\":%.3f,\"tallyd_rss_start_kib\":%" PRId64
               ",\"tallyd_rss_end_kib\":%" PRId64 ",\"tallyd_peak_rss_kib\":%" PRId64,
               tcpu, tcpu / secs, b->ps_start.rss_kib, b->ps_final.rss_kib, b->ps_final.hwm_kib);
    else
        printf(",\"tallyd_cpu_s\":null,\"tallyd_peak_rss_kib\":null");
    if (b->have_stats)
        printf(",\"tallyd_series\":%" PRId64 ",\"tallyd_memory_bytes\":%" PRId64
               ",\"tallyd_townships\":%" PRId64 ",\"tallyd_updates_published\":%" PRId64
               ",\"tallyd_rejected\":%" PRId64 ",\"tallyd_memory_engine_bytes\":%" PRId64
               ",\"tallyd_memory_history_bytes\":%" PRId64,
               b->st_series, b->st_memory, b->st_townships, b->st_updates, b->st_rejected,
               b->st_mem_engine, b->st_mem_history);
    printf(",\"tallyd_exit\":%d,\"first_problem\":", tallyd_status);
    text_json_string(stdout, b->first_problem, strlen(b->first_problem));
    printf("}\n");
}

/* ---- main --------------------------------------------------------------- */

static int setup(bench_t *b)
{
    b->towns = calloc(b->o.townships, sizeof(*b->towns));
    b->mets = calloc(b->o.metrics, sizeof(*b->mets));
    b->samples = calloc(b->o.samples, sizeof(*b->samples));
    b->midx = calloc(b->o.samples, sizeof(*b->midx));
    if (!b->towns || !b->mets || !b->samples || !b->midx)
        return TALLY_ENOMEM;
    make_keys(b);
    msgpack_sbuffer_init(&b->sb);
    b->out.type = PROTO_SUBMIT;
    hist_init(&b->ack);
    if (getrandom(&b->rng, sizeof(b->rng), 0) != (ssize_t)sizeof(b->rng) || b->rng == 0)
        b->rng = 0x9E3779B97F4A7C15ULL;
    b->zctx = zmq_ctx_new();
    if (!b->zctx || zmq_ctx_set(b->zctx, ZMQ_IO_THREADS, (int)b->o.io_threads) != 0)
        return TALLY_ESYS;
    return open_conns(b);
}

static int start_subscribers(bench_t *b)
{
    if (b->o.subscribers == 0)
        return 0;
    int rc = pubwatch_init(&b->watch, b->zctx, b->pub, b->o.townships, b->o.metrics);
    if (rc != 0)
        return rc;
    b->watching = true;
    if (pubwatch_wait_ready(&b->watch, 5000) != 0) {
        fprintf(stderr, "tally-bench: no HEARTBEAT on %s within 5 s\n", b->pub);
        return TALLY_ETIMEDOUT;
    }
    if (b->o.subscribers > 1) {
        rc = drain_start(&b->drain, b->pub, b->o.subscribers - 1);
        if (rc == 0)
            rc = drain_wait_ready(&b->drain, 10000);
        if (rc != 0) {
            fprintf(stderr, "tally-bench: %u extra subscribers on %s did not start: %s\n",
                    b->o.subscribers - 1, b->pub, tally_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static void teardown(bench_t *b)
{
    drain_stop(&b->drain);
    pubwatch_close(&b->watch);
    if (b->conns)
        for (uint32_t i = 0; i < b->o.connections; i++)
            if (b->conns[i].sock)
                zmq_close(b->conns[i].sock);
    if (b->zctx)
        zmq_ctx_term(b->zctx);
    msgpack_sbuffer_destroy(&b->sb);
    free(b->conns);
    free(b->items);
    free(b->towns);
    free(b->mets);
    free(b->samples);
    free(b->midx);
}

int main(int argc, char **argv)
{
    bench_t *b = calloc(1, sizeof(*b));
    if (!b) {
        fprintf(stderr, "tally-bench: out of memory\n");
        return 1;
    }
    int rc = bench_opts_parse(&b->o, argc, argv);
    if (rc != 0) {
        free(b);
        return rc > 0 ? 0 : 2;
    }
    int status = 1, tallyd_status = 0;
    b->pid = b->o.pid;
    if (setup(b) != 0) {
        fprintf(stderr, "tally-bench: setup failed: %s\n", zmq_strerror(zmq_errno()));
        goto out;
    }
    if (b->o.tallyd && spawn_tallyd(b) != 0)
        goto out;
    if (await_daemon(b, b->o.tallyd ? 60000 : 10000) != 0)
        goto out;
    resolve_publish(b);
    if (start_subscribers(b) != 0)
        goto out;
    if (b->pid)
        procstat_read(b->pid, &b->ps_start);
    load(b);
    drain_acks(b);
    fetch_stats(b);
    if (b->pid && procstat_read(b->pid, &b->ps_final) != 0)
        fprintf(stderr, "tally-bench: cannot read /proc/%d: %s\n", (int)b->pid, strerror(errno));
    drain_stop(&b->drain);
    tallyd_status = stop_tallyd(b);
    b->own_tallyd = false;
    report(b, tallyd_status);
    status = 0;
out:
    if (b->own_tallyd)
        stop_tallyd(b);
    teardown(b);
    free(b);
    return status;
}
