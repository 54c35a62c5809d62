/* zmq_baseline.c - tally-zmq-baseline: what raw libzmq does on this machine.
 *
 * The same shape of traffic as tally-bench without tallyd in the middle: a
 * forked child process binds a ROUTER and answers every message with an
 * ACK-sized reply (the first ack bytes of the message, which carry its
 * sequence number); the parent runs N DEALERs, each keeping W messages of
 * size bytes in flight, and measures messages per second and round-trip
 * latency over the same warm-up and duration.  tallyd's figures are quoted
 * as a ratio to this, measured in the same session on the same cores.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "bench_time.h"
#include "hist.h"
#include "procstat.h"

#define RING 1024

typedef struct peer {
    void *sock;
    uint64_t next_seq, low;
    uint32_t inflight;
    int64_t sent_ns[RING];
    uint8_t busy[RING];
} peer_t;

static volatile sig_atomic_t stop_router;

static void on_term(int sig)
{
    (void)sig;
    stop_router = 1;
}

/* The child: a ROUTER that answers each message with its first ack bytes. */
static int router(const char *endpoint, size_t ack, int report_fd)
{
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_ROUTER);
    int hwm = 100000;
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    /* A SIGTERM that comes after the look at the flag and before a
     * receive blocks does not interrupt it, and the parent sends nothing
     * more: the receive gives up every 100 ms so that the flag is seen. */
    int tick = 100;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tick, sizeof(tick));
    char bound[256] = "";
    size_t bl = sizeof(bound);
    if (zmq_bind(s, endpoint) != 0 || zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, bound, &bl) != 0) {
        fprintf(stderr, "tally-zmq-baseline: cannot bind %s: %s\n", endpoint,
                zmq_strerror(zmq_errno()));
        return 1;
    }
    if (write(report_fd, bound, strlen(bound) + 1) < 0)
        return 1;
    close(report_fd);
    uint8_t rid[256], body[65536];
    while (!stop_router) {
        int rl = zmq_recv(s, rid, sizeof(rid), 0);
        if (rl < 0)
            continue; /* EINTR or EAGAIN (the 100 ms): look at the flag */
        int n = zmq_recv(s, body, sizeof(body), 0);
        if (n < 0)
            continue;
        size_t len = (size_t)n < ack ? (size_t)n : ack;
        zmq_send(s, rid, (size_t)rl, ZMQ_SNDMORE);
        zmq_send(s, body, len, 0);
    }
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
}

typedef struct opts {
    const char *endpoint, *label;
    uint32_t connections, window, size, ack;
    double duration_s, warmup_s;
    bool json;
} opts_t;

static void usage(FILE *out)
{
    fprintf(out, "Usage: tally-zmq-baseline [OPTION]...\n"
                 "Raw libzmq DEALER -> ROUTER round trips with a window of messages in flight.\n"
                 "\n"
                 "  -e, --endpoint EP     where the ROUTER binds (default tcp://127.0.0.1:*)\n"
                 "  -n, --connections N   DEALERs (default 4)\n"
                 "  -w, --window W        messages in flight per DEALER, 1..1000 (default 250)\n"
                 "  -s, --size BYTES      message size, >= 8 (default 64)\n"
                 "  -a, --ack BYTES       reply size, 8..size (default 8)\n"
                 "  -d, --duration SEC    measured time (default 10)\n"
                 "      --warmup SEC      unmeasured time before it (default 1)\n"
                 "      --label NAME      name printed with the results (default zmq-baseline)\n"
                 "      --json            also print the results as one JSON line\n"
                 "  -h, --help            print this help and exit\n");
}

static int parse(opts_t *o, int argc, char **argv)
{
    static const struct option lo[] = {
        {"endpoint", required_argument, 0, 'e'},
        {"connections", required_argument, 0, 'n'},
        {"window", required_argument, 0, 'w'},
        {"size", required_argument, 0, 's'},
        {"ack", required_argument, 0, 'a'},
        {"duration", required_argument, 0, 'd'},
        {"warmup", required_argument, 0, 'W'},
        {"label", required_argument, 0, 'L'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *o = (opts_t){"tcp://127.0.0.1:*", "zmq-baseline", 4, 250, 64, 8, 10, 1, false};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":e:n:w:s:a:d:h", lo, NULL)) != -1) {
        char *end = NULL;
        double v = optarg ? strtod(optarg, &end) : 0;
        bool bad = optarg && (end == optarg || *end || v < 0);
        switch (c) {
        case 'e':
            o->endpoint = optarg;
            bad = false;
            break;
        case 'L':
            o->label = optarg;
            bad = false;
            break;
        case 'n':
            o->connections = (uint32_t)v;
            bad |= v < 1 || v > 10000;
            break;
        case 'w':
            o->window = (uint32_t)v;
            bad |= v < 1 || v > 1000;
            break;
        case 's':
            o->size = (uint32_t)v;
            bad |= v < 8 || v > 65536;
            break;
        case 'a':
            o->ack = (uint32_t)v;
            bad |= v < 8 || v > 65536;
            break;
        case 'd':
            o->duration_s = v;
            bad |= v <= 0;
            break;
        case 'W':
            o->warmup_s = v;
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            fprintf(stderr, "tally-zmq-baseline: bad option '%s'\nTry --help.\n", argv[optind - 1]);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "tally-zmq-baseline: %s: '%s' is out of range\nTry --help.\n",
                    argv[optind - 2], optarg);
            return -1;
        }
    }
    if (o->ack > o->size) {
        fprintf(stderr, "tally-zmq-baseline: --ack %u exceeds --size %u\n", o->ack, o->size);
        return -1;
    }
    return 0;
}

typedef struct run {
    opts_t o;
    peer_t *peers;
    zmq_pollitem_t *items;
    hist_t lat;
    uint64_t win_msgs;
    bool in_window;
    int64_t t_end;
} run_t;

static uint32_t receive(run_t *r, peer_t *p)
{
    uint8_t buf[64];
    uint32_t got = 0;
    int n;
    while ((n = zmq_recv(p->sock, buf, sizeof(buf), ZMQ_DONTWAIT)) >= 8) {
        int64_t at = bench_time_ns();
        uint64_t seq;
        memcpy(&seq, buf, sizeof(seq));
        uint32_t slot = (uint32_t)(seq & (RING - 1));
        got++;
        if (seq < p->low || seq >= p->next_seq || !p->busy[slot])
            continue;
        p->busy[slot] = 0;
        p->inflight--;
        while (p->low < p->next_seq && !p->busy[p->low & (RING - 1)])
            p->low++;
        if (r->in_window && at < r->t_end) {
            r->win_msgs++;
            hist_record(&r->lat, at - p->sent_ns[slot]);
        }
    }
    return got;
}

static uint32_t send_some(run_t *r, peer_t *p, uint8_t *msg)
{
    uint32_t sent = 0;
    while (p->inflight < r->o.window && p->next_seq < p->low + RING) {
        memcpy(msg, &p->next_seq, sizeof(p->next_seq));
        int64_t at = bench_time_ns();
        if (zmq_send(p->sock, msg, r->o.size, ZMQ_DONTWAIT) < 0)
            break;
        uint32_t slot = (uint32_t)(p->next_seq & (RING - 1));
        p->sent_ns[slot] = at;
        p->busy[slot] = 1;
        p->inflight++;
        p->next_seq++;
        sent++;
    }
    return sent;
}

int main(int argc, char **argv)
{
    run_t r = {0};
    int prc = parse(&r.o, argc, argv);
    if (prc != 0)
        return prc > 0 ? 0 : 2;
    int fds[2];
    if (pipe(fds) != 0) {
        perror("tally-zmq-baseline: pipe");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("tally-zmq-baseline: fork");
        return 1;
    }
    if (child == 0) {
        close(fds[0]);
        _exit(router(r.o.endpoint, r.o.ack, fds[1]));
    }
    close(fds[1]);
    char ep[256] = "";
    ssize_t got = read(fds[0], ep, sizeof(ep) - 1);
    close(fds[0]);
    if (got <= 0) {
        waitpid(child, NULL, 0);
        return 1;
    }

    void *ctx = zmq_ctx_new();
    r.peers = calloc(r.o.connections, sizeof(*r.peers));
    r.items = calloc(r.o.connections, sizeof(*r.items));
    uint8_t *msg = calloc(1, r.o.size);
    if (!ctx || !r.peers || !r.items || !msg) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        return 1;
    }
    for (uint32_t i = 0; i < r.o.connections; i++) {
        peer_t *p = &r.peers[i];
        int hwm = 4096, zero = 0;
        p->sock = zmq_socket(ctx, ZMQ_DEALER);
        zmq_setsockopt(p->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
        zmq_setsockopt(p->sock, ZMQ_RCVHWM, &zero, sizeof(zero));
        zmq_setsockopt(p->sock, ZMQ_LINGER, &zero, sizeof(zero));
        zmq_connect(p->sock, ep);
        p->next_seq = p->low = 1;
        r.items[i] = (zmq_pollitem_t){.socket = p->sock, .events = ZMQ_POLLIN};
    }
    hist_init(&r.lat);
    int64_t t0 = bench_time_ns();
    int64_t t_warm = t0 + (int64_t)(r.o.warmup_s * 1e9);
    r.t_end = t_warm + (int64_t)(r.o.duration_s * 1e9);
    procstat_t ps0 = {0}, ps1 = {0};
    for (;;) {
        int64_t now = bench_time_ns();
        if (!r.in_window && now >= t_warm) {
            r.in_window = true;
            procstat_read(child, &ps0);
        }
        if (now >= r.t_end)
            break;
        uint32_t progress = 0;
        for (uint32_t i = 0; i < r.o.connections; i++) {
            progress += receive(&r, &r.peers[i]);
            progress += send_some(&r, &r.peers[i], msg);
        }
        if (!progress)
            zmq_poll(r.items, (int)r.o.connections, 10);
    }
    procstat_read(child, &ps1);
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);

    double secs = r.o.duration_s;
    double rate = (double)r.win_msgs / secs;
    double cpu = ps1.cpu_s - ps0.cpu_s;
    printf("%s: %.0f msg/s (%u x %u in flight, %u-byte messages, %u-byte acks); rtt p50 %.0f us, "
           "p99 %.0f us, p99.9 %.0f us; router %.2f CPU s\n",
           r.o.label, rate, r.o.connections, r.o.window, r.o.size, r.o.ack,
           (double)hist_percentile(&r.lat, 50) / 1e3, (double)hist_percentile(&r.lat, 99) / 1e3,
           (double)hist_percentile(&r.lat, 99.9) / 1e3, cpu);
    if (r.o.json)
        printf("{\"label\":\"%s\",\"connections\":%u,\"window\":%u,\"size\":%u,\"ack\":%u,"
               "\"duration_s\":%.3f,\"msgs_per_s\":%.1f,\"rtt_p50_us\":%.1f,\"rtt_p99_us\":%.1f,"
               "\"rtt_p999_us\":%.1f,\"router_cpu_s\":%.3f}\n",
               r.o.label, r.o.connections, r.o.window, r.o.size, r.o.ack, secs, rate,
               (double)hist_percentile(&r.lat, 50) / 1e3, (double)hist_percentile(&r.lat, 99) / 1e3,
               (double)hist_percentile(&r.lat, 99.9) / 1e3, cpu);
    for (uint32_t i = 0; i < r.o.connections; i++)
        zmq_close(r.peers[i].sock);
    zmq_ctx_term(ctx);
    free(r.peers);
    free(r.items);
    free(msg);
    return 0;
}
