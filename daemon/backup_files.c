/* backup_files.c - the file helpers of backups (see backup.h): a
 * directory's sorted listing and a copy of an open file synced to disk,
 * which restore.c uses too, and the newest backup of a directory, which
 * the schedule starts from. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "proto.h"
#include "tally_error.h"

#define COPY_CHUNK 1048576 /* bytes per read while copying */

static int names_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void backup_names_free(backup_names_t *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
    ns->v = NULL;
    ns->n = 0;
}

int backup_list(const char *dir, bool (*keep)(const char *name), mode_t kind, backup_names_t *out)
{
    out->v = NULL;
    out->n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno;
    int err = 0;
    size_t cap = 0;
    struct dirent *de;
    while (err == 0 && (de = readdir(d)) != NULL) {
        struct stat st;
        if (!keep(de->d_name) ||
            (kind != 0 && (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                           (st.st_mode & S_IFMT) != kind)))
            continue;
        if (out->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nv = realloc(out->v, ncap * sizeof(*nv));
            if (nv == NULL) {
                err = ENOMEM;
                break;
            }
            out->v = nv;
            cap = ncap;
        }
        if ((out->v[out->n] = strdup(de->d_name)) == NULL)
            err = ENOMEM;
        else
            out->n++;
    }
    closedir(d);
    if (err != 0)
        backup_names_free(out);
    else if (out->n > 1)
        qsort(out->v, out->n, sizeof(*out->v), names_cmp);
    return err;
}

int backup_copy_fd(int in, const char *path, const _Atomic int *cancel, uint64_t *bytes, char *err,
                   size_t errlen)
{
    struct stat st;
    mode_t mode = fstat(in, &st) == 0 ? st.st_mode & 0777 : 0600; /* as the original's */
    int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (out < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return TALLY_EIO;
    }
    char *buf = malloc(COPY_CHUNK);
    int rc = buf == NULL ? TALLY_ENOMEM : 0;
    if (buf == NULL)
        snprintf(err, errlen, "out of memory for a copy buffer");
    for (off_t at = 0; rc == 0;) {
        if (cancel != NULL && *cancel) {
            snprintf(err, errlen, "tallyd is stopping");
            rc = TALLY_ECLOSED;
            break;
        }
        ssize_t r = pread(in, buf, COPY_CHUNK, at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "reading the original of %s: %s", path, strerror(errno));
            rc = TALLY_EIO;
        }
        if (r <= 0)
            break;
        for (ssize_t w = 0; w < r && rc == 0;) {
            ssize_t k = write(out, buf + w, (size_t)(r - w));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0) {
                snprintf(err, errlen, "writing %s: %s", path, strerror(errno));
                rc = TALLY_EIO;
            }
            w += k > 0 ? k : 0;
        }
        at += r;
        if (bytes != NULL)
            *bytes += (uint64_t)r;
    }
    free(buf);
    if (rc == 0 && fsync(out) != 0) {
        snprintf(err, errlen, "syncing %s: %s", path, strerror(errno));
        rc = TALLY_EIO;
    }
    close(out);
    if (rc != 0)
        unlink(path);
    return rc;
}

static bool is_backup_name(const char *name)
{
    return proto_backup_name_valid(name, strlen(name));
}

/* The UTC time of a valid backup name, "backup-YYYYMMDDTHHMMSSZ...", in
 * milliseconds; 0 when its fields are out of range (month 13). */
static int64_t name_time_ms(const char *name)
{
    struct tm tm = {0};
    const char *p = name + 7;
    int v[6], widths[6] = {4, 2, 2, 2, 2, 2};
    for (int i = 0; i < 6; i++) {
        v[i] = 0;
        for (int k = 0; k < widths[i]; k++)
            v[i] = v[i] * 10 + (*p++ - '0');
        if (i == 2)
            p++; /* the 'T' */
    }
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60)
        return 0;
    tm.tm_year = v[0] - 1900;
    tm.tm_mon = v[1] - 1;
    tm.tm_mday = v[2];
    tm.tm_hour = v[3];
    tm.tm_min = v[4];
    tm.tm_sec = v[5];
    time_t t = timegm(&tm);
    return t > 0 ? (int64_t)t * 1000 : 0;
}

int backup_newest(const char *root, char *name, size_t cap, int64_t *ms)
{
    *ms = 0;
    if (cap > 0)
        name[0] = '\0';
    backup_names_t ns;
    int e = backup_list(root, is_backup_name, S_IFDIR, &ns);
    if (e == ENOENT)
        return 0;
    if (e != 0)
        return e;
    const char *newest = NULL;
    int64_t newest_ms = 0;
    for (size_t i = 0; i < ns.n; i++) {
        int64_t t = name_time_ms(ns.v[i]);
        if (t > 0 && (newest == NULL || proto_backup_name_cmp(ns.v[i], newest) > 0)) {
            newest = ns.v[i];
            newest_ms = t;
        }
    }
    if (newest != NULL) {
        *ms = newest_ms;
        if (cap > 0)
            snprintf(name, cap, "%s", newest);
    }
    backup_names_free(&ns);
    return 0;
}
