/* bench_opts.c - tally-bench's command line (see bench_opts.h). */
#include "bench_opts.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: tally-bench [OPTION]...\n"
        "Load tallyd with submissions and report throughput and latency.\n"
        "\n"
        "Target:\n"
        "  -r, --request EP       tallyd's request endpoint (default tcp://127.0.0.1:7411)\n"
        "  -p, --publish EP       its publish endpoint (default: from WELCOME)\n"
        "      --tallyd PATH      start this tallyd (with -r EP [-p EP]) and stop it at the end\n"
        "      --config FILE      ... with -c FILE\n"
        "      --state-dir DIR    ... with -s DIR\n"
        "      --tallyd-log FILE  ... appending its output to FILE\n"
        "      --pid PID          measure the CPU and memory of this running tallyd\n"
        "Load:\n"
        "  -n, --connections N    DEALER connections, each its own client id (default 4)\n"
        "  -w, --window W         submissions in flight per connection, 1..1000 (default 250)\n"
        "  -S, --samples S        samples per submission, distinct metrics (default 1)\n"
        "  -t, --townships T      townships t00000.. in the key space (default 25)\n"
        "  -m, --metrics M        metrics m00.. in the key space, >= S (default 20)\n"
        "      --order ORDER      random (default) or seq: townships round-robin\n"
        "  -R, --rate R           submissions per second in total, 0 = flat out (default 0)\n"
        "  -d, --duration SEC     measured time (default 10)\n"
        "      --warmup SEC       unmeasured time before it (default 1)\n"
        "      --count N          stop once N submissions are answered (default 0: no limit)\n"
        "      --drain SEC        wait at most SEC for the last answers (default 5)\n"
        "      --subscribers N    1 times publish latency, the others only read (default 0)\n"
        "      --io-threads N     ZeroMQ I/O threads of the load side (default 1)\n"
        "      --late-pct P       stamp P%% of the submissions 31 days ago, in the\n"
        "                         previous month mostly (default 0)\n"
        "      --spread SEC       stamp each submission at a random time in the last\n"
        "                         SEC seconds, so series fill many window buckets\n"
        "                         (default 0: now)\n"
        "Output:\n"
        "      --label NAME       scenario name printed with the results\n"
        "      --json             also print the results as one JSON object on one line\n"
        "  -h, --help             print this help and exit\n");
}

static int num(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "tally-bench: %s: '%s' is not a number in %.15g..%.15g\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int u32(const char *opt, const char *s, double lo, double hi, uint32_t *out)
{
    double v;
    if (num(opt, s, lo, hi, &v) != 0)
        return -1;
    if (v != floor(v)) {
        fprintf(stderr, "tally-bench: %s: '%s' is not a whole number\n", opt, s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int bench_opts_parse(bench_opts_t *o, int argc, char **argv)
{
    enum {
        O_TALLYD = 256,
        O_CONFIG,
        O_STATE,
        O_LOG,
        O_PID,
        O_ORDER,
        O_WARMUP,
        O_COUNT,
        O_DRAIN,
        O_SUBS,
        O_IO,
        O_LABEL,
        O_LATE,
        O_SPREAD,
        O_JSON
    };
    static const struct option opts[] = {
        {"request", required_argument, 0, 'r'},
        {"publish", required_argument, 0, 'p'},
        {"tallyd", required_argument, 0, O_TALLYD},
        {"config", required_argument, 0, O_CONFIG},
        {"state-dir", required_argument, 0, O_STATE},
        {"tallyd-log", required_argument, 0, O_LOG},
        {"pid", required_argument, 0, O_PID},
        {"connections", required_argument, 0, 'n'},
        {"window", required_argument, 0, 'w'},
        {"samples", required_argument, 0, 'S'},
        {"townships", required_argument, 0, 't'},
        {"metrics", required_argument, 0, 'm'},
        {"order", required_argument, 0, O_ORDER},
        {"rate", required_argument, 0, 'R'},
        {"duration", required_argument, 0, 'd'},
        {"warmup", required_argument, 0, O_WARMUP},
        {"count", required_argument, 0, O_COUNT},
        {"drain", required_argument, 0, O_DRAIN},
        {"subscribers", required_argument, 0, O_SUBS},
        {"io-threads", required_argument, 0, O_IO},
        {"label", required_argument, 0, O_LABEL},
        {"json", no_argument, 0, O_JSON},
        {"late-pct", required_argument, 0, O_LATE},
        {"spread", required_argument, 0, O_SPREAD},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof(*o));
    o->request = "tcp://127.0.0.1:7411";
    o->connections = 4;
    o->window = 250;
    o->samples = 1;
    o->townships = 25;
    o->metrics = 20;
    o->duration_s = 10;
    o->warmup_s = 1;
    o->drain_s = 5;
    o->io_threads = 1;
    int c, rc = 0;
    double v;
    uint32_t u;
    opterr = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, ":r:p:n:w:S:t:m:R:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            o->request = optarg;
            break;
        case 'p':
            o->publish = optarg;
            break;
        case O_TALLYD:
            o->tallyd = optarg;
            break;
        case O_CONFIG:
            o->config = optarg;
            break;
        case O_STATE:
            o->state_dir = optarg;
            break;
        case O_LOG:
            o->tallyd_log = optarg;
            break;
        case O_LABEL:
            o->label = optarg;
            break;
        case O_JSON:
            o->json = true;
            break;
        case O_LATE:
            if (num("--late-pct", optarg, 0, 100, &o->late_pct) != 0)
                return -1;
            break;
        case O_SPREAD:
            if (num("--spread", optarg, 0, 366 * 86400.0, &o->spread_s) != 0)
                return -1;
            break;
        case O_PID:
            rc = u32("--pid", optarg, 1, 4194304, &u);
            o->pid = (pid_t)u;
            break;
        case 'n':
            rc = u32("--connections", optarg, 1, 10000, &o->connections);
            break;
        case 'w':
            rc = u32("--window", optarg, 1, 1000, &o->window);
            break;
        case 'S':
            rc = u32("--samples", optarg, 1, 4096, &o->samples);
            break;
        case 't':
            rc = u32("--townships", optarg, 1, 10000000, &o->townships);
            break;
        case 'm':
            rc = u32("--metrics", optarg, 1, 100000, &o->metrics);
            break;
        case O_SUBS:
            rc = u32("--subscribers", optarg, 0, 10000, &o->subscribers);
            break;
        case O_IO:
            rc = u32("--io-threads", optarg, 1, 64, &o->io_threads);
            break;
        case 'R':
            rc = num("--rate", optarg, 0, 1e9, &o->rate);
            break;
        case 'd':
            rc = num("--duration", optarg, 0.01, 86400, &o->duration_s);
            break;
        case O_WARMUP:
            rc = num("--warmup", optarg, 0, 86400, &o->warmup_s);
            break;
        case O_DRAIN:
            rc = num("--drain", optarg, 0, 86400, &o->drain_s);
            break;
        case O_COUNT:
            rc = num("--count", optarg, 0, 1e15, &v);
            o->count = (uint64_t)v;
            break;
        case O_ORDER:
            if (strcmp(optarg, "seq") == 0 || strcmp(optarg, "random") == 0) {
                o->seq_order = optarg[0] == 's';
            } else {
                fprintf(stderr, "tally-bench: --order: '%s' is not random or seq\n", optarg);
                rc = -1;
            }
            break;
        case 'h':
            usage(stdout);
            return 1;
        case ':':
            fprintf(stderr, "tally-bench: option '%s' needs a value\n", argv[optind - 1]);
            rc = -1;
            break;
        default:
            fprintf(stderr, "tally-bench: unknown option '%s'\n", argv[optind - 1]);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && optind < argc) {
        fprintf(stderr, "tally-bench: unexpected argument '%s'\n", argv[optind]);
        rc = -1;
    }
    if (rc == 0 && o->samples > o->metrics) {
        fprintf(stderr,
                "tally-bench: --samples %u exceeds --metrics %u: a submission's metrics are "
                "distinct\n",
                o->samples, o->metrics);
        rc = -1;
    }
    if (rc == 0 && (o->config || o->state_dir || o->tallyd_log) && !o->tallyd) {
        fprintf(stderr, "tally-bench: --config, --state-dir and --tallyd-log need --tallyd\n");
        rc = -1;
    }
    if (rc == 0 && o->tallyd && o->pid) {
        fprintf(stderr, "tally-bench: --pid and --tallyd exclude each other\n");
        rc = -1;
    }
    if (rc != 0)
        fprintf(stderr, "Try 'tally-bench --help'.\n");
    return rc;
}
