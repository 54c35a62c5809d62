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

/* One thread name's CPU seconds so far: the threads of a process summed
 * by their name (comm), as ZeroMQ names all its I/O threads alike. */
#define PROCSTAT_THREADS_MAX 16
typedef struct procstat_thread {
    char name[16]; /* comm: at most 15 bytes */
    double cpu_s;
} procstat_thread_t;

/* Read /proc/<pid>/task/<tid>/stat of every thread of pid into out[0..max),
 * one entry per thread name in the order met; names beyond max are summed
 * into the last entry, renamed "other".  A thread that has ended is not
 * there: read before and after a measurement, a thread that ended between
 * the two loses its CPU time.  Returns the number of entries, or -1 when
 * the process is gone (errno set). */
int procstat_threads(pid_t pid, procstat_thread_t *out, int max);

/* Read /proc/<pid>/stat (utime + stime) and /proc/<pid>/status (VmRSS,
 * VmHWM) into *out.  Returns 0, or -1 when the process is gone or a file
 * cannot be parsed (errno from the failed call; *out then holds zeros). */
int procstat_read(pid_t pid, procstat_t *out);

#endif
