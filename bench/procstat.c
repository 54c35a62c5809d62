/* procstat.c - CPU time and memory of a process from /proc (see procstat.h). */
#include "procstat.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* utime and stime are fields 14 and 15 of a stat file (/proc/<pid>/stat,
 * /proc/<pid>/task/<tid>/stat).  Field 2, the command name, is in
 * parentheses and may itself contain spaces or parentheses, so counting
 * starts after the last ')'.  The name, when asked for, is what lies
 * between the first '(' and that ')'. */
static int read_stat(const char *path, double *cpu_s, char *name, size_t name_size)
{
    char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *open = strchr(buf, '(');
    char *p = strrchr(buf, ')');
    if (!open || !p || p < open) {
        errno = EINVAL;
        return -1;
    }
    if (name != NULL)
        snprintf(name, name_size, "%.*s", (int)(p - open - 1), open + 1);
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

static int read_cpu(pid_t pid, double *cpu_s)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    return read_stat(path, cpu_s, NULL, 0);
}

int procstat_threads(pid_t pid, procstat_thread_t *out, int max)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while (max > 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        procstat_thread_t t;
        snprintf(path, sizeof(path), "/proc/%d/task/%.16s/stat", (int)pid, de->d_name);
        if (read_stat(path, &t.cpu_s, t.name, sizeof(t.name)) != 0)
            continue; /* the thread ended meanwhile */
        int i = 0;
        while (i < n && strcmp(out[i].name, t.name) != 0)
            i++;
        if (i == n && n == max) {
            i = max - 1;
            snprintf(out[i].name, sizeof(out[i].name), "other");
        } else if (i == n) {
            out[n++] = (procstat_thread_t){.cpu_s = 0};
            snprintf(out[i].name, sizeof(out[i].name), "%s", t.name);
        }
        out[i].cpu_s += t.cpu_s;
    }
    closedir(d);
    return n;
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
