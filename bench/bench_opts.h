/* bench_opts.h - tally-bench's command line. */
#ifndef TALLY_BENCH_OPTS_H
#define TALLY_BENCH_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct bench_opts {
    const char *request;    /* DEALER endpoint */
    const char *publish;    /* SUB endpoint, NULL = from WELCOME */
    const char *tallyd;     /* start this tallyd, NULL = use a running one */
    const char *config;     /* its -c */
    const char *state_dir;  /* its -s */
    const char *tallyd_log; /* its stdout and stderr, NULL = ours */
    const char *label;      /* scenario name in the output */
    uint32_t connections, window, samples, townships, metrics, subscribers, io_threads;
    double rate;       /* submissions per second in total, 0 = flat out */
    double duration_s; /* measured time */
    double warmup_s;   /* unmeasured time before it */
    double drain_s;    /* at most this long waiting for answers at the end */
    uint64_t count;    /* stop after this many submissions, 0 = no limit */
    bool seq_order;    /* townships round-robin instead of at random */
    double late_pct;   /* % of submissions stamped 31 days ago (history) */
    double spread_s;   /* stamp submissions at random in the last spread_s seconds */
    bool json;         /* also print one JSON line */
    pid_t pid;         /* tallyd to measure when not started here, 0 = none */
} bench_opts_t;

/* Fill *o from argv (defaults first).  Returns 0 to run, 1 when --help
 * was printed (exit 0), -1 after printing a usage error to stderr (exit
 * 2). */
int bench_opts_parse(bench_opts_t *o, int argc, char **argv);

#endif
