/* fsync_lat.c - tally-bench-fsync: how long the disk under a directory
 * takes to make a small write durable, the floor under `sync = always`.
 *
 * Appends N records of SIZE bytes to a new file in DIR, each followed by
 * fdatasync(), as tallyd's journal writer does for a group of one record
 * (the file grows, so each sync also records the new length), and prints
 * the latency of write + fdatasync: p50, p99, max.  run.sh runs it in the
 * directory its tallyd state lives in, in the same session as the
 * lat50k-always scenario, so that the acknowledgement latency can be read
 * against what the disk itself needs.
 *
 *   tally-bench-fsync DIR [-n 2000] [-s 256] [--json]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_time.h"
#include "hist.h"

int main(int argc, char **argv)
{
    const char *dir = NULL;
    long n = 2000, size = 256;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("Usage: tally-bench-fsync DIR [-n COUNT] [-s BYTES] [--json]\n"
                 "Time COUNT appends of BYTES bytes, each made durable with fdatasync(),\n"
                 "to a new file in DIR (removed at the end); print p50, p99 and max.");
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (i + 1 < argc && strcmp(argv[i], "-n") == 0) {
            n = strtol(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "-s") == 0) {
            size = strtol(argv[++i], NULL, 10);
        } else if (dir == NULL && argv[i][0] != '-') {
            dir = argv[i];
        } else {
            fprintf(stderr, "tally-bench-fsync: unknown or incomplete argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (dir == NULL || n < 1 || n > 1000000 || size < 1 || size > 1 << 20) {
        fprintf(stderr, "tally-bench-fsync: DIR, -n 1..1000000 and -s 1..1048576 are needed\n");
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
