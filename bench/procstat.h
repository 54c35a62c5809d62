/* procstat.h - CPU time and memory of a process, read from Linux /proc.
 *
 * The benchmark reads these for tallyd (a child it started, or any process
 * given by pid) and for itself.  Each call opens, reads and closes one file;
 * nothing is cached.
 */
#ifndef TALLY_BENCH_PROCSTAT_H
#define TALLY_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

typedef struct procstat {
    double cpu_s;    /* user + system CPU seconds of all threads so far */
    int64_t rss_kib; /* VmRSS: resident now */
    int64_t hwm_kib; /* VmHWM: the peak resident size */
} procstat_t;

/* Read /proc/<pid>/stat (utime + stime) and /proc/<pid>/status (VmRSS,
 * VmHWM) into *out.  Returns 0, or -1 when the process is gone or a file
 * cannot be parsed (errno from the failed call; *out then holds zeros). */
int procstat_read(pid_t pid, procstat_t *out);

#endif
