/* procstat.c - CPU time and memory of a process from /proc (see procstat.h). */
#include "procstat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* utime and stime are fields 14 and 15 of /proc/<pid>/stat.  Field 2, the
 * command name, is in parentheses and may itself contain spaces or
 * parentheses, so counting starts after the last ')'. */
static int read_cpu(pid_t pid, double *cpu_s)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) {
        errno = EINVAL;
        return -1;
    }
    p++;
    /* After ')' come field 3 (state) onwards; utime is the 12th of those. */
    unsigned long long ut = 0, st = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            ut = strtoull(tok, NULL, 10);
        else if (field == 15) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (field != 15) {
        errno = EINVAL;
        return -1;
    }
    long hz = sysconf(_SC_CLK_TCK);
    *cpu_s = (double)(ut + st) / (double)(hz > 0 ? hz : 100);
    return 0;
}

static int read_mem(pid_t pid, int64_t *rss, int64_t *hwm)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        long long v;
        if (sscanf(line, "VmRSS: %lld kB", &v) == 1)
            *rss = v;
        else if (sscanf(line, "VmHWM: %lld kB", &v) == 1)
            *hwm = v;
    }
    fclose(f);
    return 0;
}

int procstat_read(pid_t pid, procstat_t *out)
{
    memset(out, 0, sizeof(*out));
    if (read_cpu(pid, &out->cpu_s) != 0 || read_mem(pid, &out->rss_kib, &out->hwm_kib) != 0) {
        int e = errno;
        memset(out, 0, sizeof(*out));
        errno = e;
        return -1;
    }
    return 0;
}
