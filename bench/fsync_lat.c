/* fsync_lat.c - tally-bench-fsync: how long the disk under a directory
 * takes to make a small write durable, the floor under `sync = always`.
 *
 * One at a time (the default): appends N records of SIZE bytes to a new
 * file in DIR, each followed by fdatasync(), as tallyd's journal writer
 * does for a group of one record (the file grows, so each sync also
 * records the new length), and prints the latency of write + fdatasync:
 * p50, p99, max.
 *
 * In groups (-r RATE): for SECONDS, records of SIZE bytes arrive at RATE a
 * second, and one writer thread appends whatever has arrived and syncs it,
 * again and again, as tallyd's journal writer does under `sync = always`
 * (group commit) and with nothing else of tallyd's: no decoding, no
 * ZeroMQ, no loop.  It prints the latency of each fdatasync() under that
 * load and each record's wait from its arrival until its group is
 * durable, the least an acknowledgement of a durable record can wait on
 * this disk at that rate.
 *
 * run.sh runs it in the directory its tallyd state lives in, in the same
 * session as the lat50k-always scenario, so that the acknowledgement
 * latency can be read against what the disk itself needs.
 *
 *   tally-bench-fsync DIR [-n 2000] [-s 256] [--json]
 *   tally-bench-fsync DIR -r 50000 [-d 5] [-s 80] [--json]
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_time.h"
#include "hist.h"

/* ---- in groups ---- */

typedef struct group_run {
    int fd;
    size_t size;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t *arrived; /* arrival time of record i */
    long produced;    /* records arrived */
    long taken;       /* records handed to a write */
    bool stop;
    int err;          /* errno of a failed write or sync (under mu) */
    hist_t *sync_lat; /* fdatasync() calls */
    hist_t *rec_lat;  /* arrival to durable */
    long groups;
} group_run_t;

/* The writer's end after a failed call: the arrivals stop at the next
 * hand-over. */
static void *group_failed(group_run_t *g, int err)
{
    pthread_mutex_lock(&g->mu);
    g->err = err;
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static void *group_writer(void *arg)
{
    group_run_t *g = arg;
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    if (buf == NULL)
        return group_failed(g, ENOMEM);
    memset(buf, 0x5a, cap);
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (g->taken == g->produced && !g->stop)
            pthread_cond_wait(&g->cv, &g->mu);
        if (g->taken == g->produced)
            break;
        long from = g->taken, to = g->produced;
        g->taken = to;
        pthread_mutex_unlock(&g->mu);
        size_t len = (size_t)(to - from) * g->size;
        if (len > cap) {
            char *b = realloc(buf, len);
            if (b == NULL) {
                free(buf);
                return group_failed(g, ENOMEM);
            }
            buf = b;
            memset(buf + cap, 0x5a, len - cap);
            cap = len;
        }
        if (write(g->fd, buf, len) != (ssize_t)len) {
            int e = errno ? errno : EIO;
            free(buf);
            return group_failed(g, e);
        }
        int64_t t0 = bench_time_ns();
        if (fdatasync(g->fd) != 0) {
            int e = errno;
            free(buf);
            return group_failed(g, e);
        }
        int64_t t1 = bench_time_ns();
        hist_record(g->sync_lat, t1 - t0);
        pthread_mutex_lock(&g->mu);
        for (long i = from; i < to; i++)
            hist_record(g->rec_lat, t1 - g->arrived[i]);
        g->groups++;
    }
    pthread_mutex_unlock(&g->mu);
    free(buf);
    return NULL;
}

static int run_groups(const char *path, int fd, long size, double rate, double secs, bool json)
{
    long total = (long)(rate * secs);
    group_run_t g = {.fd = fd, .size = (size_t)size};
    g.arrived = calloc((size_t)total + 1, sizeof(*g.arrived));
    g.sync_lat = malloc(sizeof(hist_t));
    g.rec_lat = malloc(sizeof(hist_t));
    if (g.arrived == NULL || g.sync_lat == NULL || g.rec_lat == NULL) {
        fprintf(stderr, "tally-bench-fsync: out of memory\n");
        return 1;
    }
    hist_init(g.sync_lat);
    hist_init(g.rec_lat);
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, group_writer, &g) != 0) {
        fprintf(stderr, "tally-bench-fsync: cannot start the writer thread\n");
        return 1;
    }
    /* Records arrive on a schedule, not when the writer is ready: a late
     * writer makes them wait, as it would make a client's ACK wait.  Each
     * counts from its due time; they are handed over every 50 us, so
     * that the arrivals take little CPU of their own. */
    int64_t t0 = bench_time_ns();
    bool failed = false;
    for (long i = 0; i < total && !failed;) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
        int64_t now = bench_time_ns();
        pthread_mutex_lock(&g.mu);
        failed = g.err != 0;
        for (; i < total && !failed; i++) {
            int64_t due = t0 + (int64_t)((double)i * 1e9 / rate);
            if (due > now)
                break;
            g.arrived[i] = due;
            g.produced++;
        }
        pthread_cond_signal(&g.cv);
        pthread_mutex_unlock(&g.mu);
    }
    pthread_mutex_lock(&g.mu);
    g.stop = true;
    pthread_cond_signal(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(th, NULL);
    double elapsed = (double)(bench_time_ns() - t0) / 1e9;
    if (g.err != 0) {
        fprintf(stderr, "tally-bench-fsync: %s: %s\n", path, strerror(g.err));
        return 1;
    }
    double s50 = hist_percentile(g.sync_lat, 50) / 1e6, s99 = hist_percentile(g.sync_lat, 99) / 1e6,
           smax = hist_max(g.sync_lat) / 1e6;
    double r50 = hist_percentile(g.rec_lat, 50) / 1e6, r99 = hist_percentile(g.rec_lat, 99) / 1e6,
           rmax = hist_max(g.rec_lat) / 1e6;
    printf("tally-bench-fsync: %ld records of %ld bytes at %.0f/s in %s, %ld groups (%.0f/s): "
           "fdatasync p50 %.3f ms, p99 %.3f ms, max %.3f ms; record to durable p50 %.3f ms, p99 "
           "%.3f ms, max %.3f ms\n",
           total, size, rate, path, g.groups, (double)g.groups / elapsed, s50, s99, smax, r50, r99,
           rmax);
    if (json)
        printf("{\"mode\":\"group\",\"records\":%ld,\"size\":%ld,\"rate\":%.0f,\"groups\":%ld,"
               "\"sync_p50_ms\":%.4f,\"sync_p99_ms\":%.4f,\"sync_max_ms\":%.4f,"
               "\"record_p50_ms\":%.4f,\"record_p99_ms\":%.4f,\"record_max_ms\":%.4f}\n",
               total, size, rate, g.groups, s50, s99, smax, r50, r99, rmax);
    free(g.arrived);
    free(g.sync_lat);
    free(g.rec_lat);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    long n = 2000, size = -1;
    double rate = 0, secs = 5;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("Usage: tally-bench-fsync DIR [-n COUNT] [-s BYTES] [--json]\n"
                 "       tally-bench-fsync DIR -r RATE [-d SECONDS] [-s BYTES] [--json]\n"
                 "Time COUNT appends of BYTES bytes (256), each made durable with fdatasync(),\n"
                 "to a new file in DIR (removed at the end); print p50, p99 and max.\n"
                 "With -r: for SECONDS (5), records of BYTES bytes (80) arrive at RATE a\n"
                 "second and one thread appends and syncs whatever has arrived, again and\n"
                 "again (group commit); print the fdatasync latency under that load and\n"
                 "each record's wait from arrival until durable.");
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (i + 1 < argc && strcmp(argv[i], "-n") == 0) {
            n = strtol(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "-s") == 0) {
            size = strtol(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "-r") == 0) {
            rate = strtod(argv[++i], NULL);
        } else if (i + 1 < argc && strcmp(argv[i], "-d") == 0) {
            secs = strtod(argv[++i], NULL);
        } else if (dir == NULL && argv[i][0] != '-') {
            dir = argv[i];
        } else {
            fprintf(stderr, "tally-bench-fsync: unknown or incomplete argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (size < 0)
        size = rate > 0 ? 80 : 256;
    if (dir == NULL || n < 1 || n > 1000000 || size < 1 || size > 1 << 20 || rate < 0 ||
        rate > 1e6 || !(secs > 0 && secs <= 600) || rate * secs > 1e8) {
        fprintf(stderr, "tally-bench-fsync: DIR is needed, with -n 1..1000000, -s 1..1048576, "
                        "-r 0..1000000, -d above 0 up to 600 and -r times -d at most 10^8\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/fsync-bench.%ld", dir, (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    char *buf = malloc((size_t)size);
    hist_t *h = malloc(sizeof *h);
    if (fd < 0 || buf == NULL || h == NULL) {
        fprintf(stderr, "tally-bench-fsync: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (rate > 0) {
        int rc = run_groups(path, fd, size, rate, secs, json);
        close(fd);
        unlink(path);
        free(buf);
        free(h);
        return rc;
    }
    hist_init(h);
    memset(buf, 0x5a, (size_t)size);
    for (long i = 0; i < n; i++) {
        int64_t t0 = bench_time_ns();
        if (write(fd, buf, (size_t)size) != size || fdatasync(fd) != 0) {
            fprintf(stderr, "tally-bench-fsync: %s: %s\n", path, strerror(errno));
            unlink(path);
            return 1;
        }
        hist_record(h, bench_time_ns() - t0);
    }
    close(fd);
    unlink(path);
    free(buf);
    double p50 = hist_percentile(h, 50) / 1e6, p99 = hist_percentile(h, 99) / 1e6,
           max = hist_max(h) / 1e6;
    printf("tally-bench-fsync: %ld appends of %ld bytes + fdatasync in %s: p50 %.3f ms, p99 %.3f "
           "ms, max %.3f ms\n",
           n, size, dir, p50, p99, max);
    if (json)
        printf("{\"count\":%ld,\"size\":%ld,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f}\n", n,
               size, p50, p99, max);
    free(h);
    return 0;
}
