/* copies.c - the tally command (client/cli/): copies of backups kept in
 * a directory, the oldest removed beyond --keep (see copies.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "copies.h"
#include "proto.h"

#define BASE_LEN 23 /* "backup-YYYYMMDDTHHMMSSZ" */

/* Older first: the time in the name, then the -N that tallyd adds to a
 * second backup within one second (none first; -10 after -9). */
static int age_cmp(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    int c = strncmp(x, y, BASE_LEN);
    if (c != 0)
        return c;
    long nx = x[BASE_LEN] ? strtol(x + BASE_LEN + 1, NULL, 10) : 0;
    long ny = y[BASE_LEN] ? strtol(y + BASE_LEN + 1, NULL, 10) : 0;
    return (nx > ny) - (nx < ny);
}

/* Whether the directory name in dfd holds only what a copy holds: regular
 * files under names a copy may take. */
static bool is_copy(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    bool ok = true;
    struct dirent *e;
    while (ok && (e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        ok = proto_backup_file_name_valid(e->d_name, strlen(e->d_name)) &&
             fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
    }
    closedir(d);
    return ok;
}

void copies_removed_free(copies_removed_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->names[i]);
    free(r->names);
    r->names = NULL;
    r->n = 0;
}

int copies_prune(const char *dir, unsigned keep, const char *spare, copies_removed_t *out,
                 char *err, size_t errlen)
{
    *out = (copies_removed_t){0};
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        snprintf(err, errlen, "cannot read the directory %s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    /* The copies but spare, which stays whatever its age. */
    char **v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!proto_backup_name_valid(e->d_name, strlen(e->d_name)) ||
            strcmp(e->d_name, spare) == 0 || !is_copy(dirfd(d), e->d_name))
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char **nv = realloc(v, ncap * sizeof *nv);
            if (nv == NULL) {
                rc = -1;
                break;
            }
            v = nv;
            cap = ncap;
        }
        if ((v[n] = strdup(e->d_name)) == NULL)
            rc = -1;
        else
            n++;
    }
    if (rc != 0)
        snprintf(err, errlen, "out of memory listing the copies in %s", dir);
    if (n > 1)
        qsort(v, n, sizeof *v, age_cmp);
    /* keep - 1 of them stay beside spare: the newest. */
    size_t drop = rc == 0 && n + 1 > keep ? n + 1 - keep : 0;
    if (drop > 0 && (out->names = calloc(drop, sizeof *out->names)) == NULL) {
        snprintf(err, errlen, "out of memory removing the copies in %s", dir);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < drop; i++) {
        if (atomic_dir_remove_flat(dirfd(d), v[i]) != 0) {
            snprintf(err, errlen, "cannot remove the older copy %s/%s: %s", dir, v[i],
                     strerror(errno));
            rc = -1;
            break;
        }
        out->names[out->n++] = v[i];
        v[i] = NULL;
    }
    if (rc == 0 && drop > 0 && fsync(dirfd(d)) != 0) {
        snprintf(err, errlen, "cannot sync the directory %s: %s", dir, strerror(errno));
        rc = -1;
    }
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    closedir(d);
    return rc;
}
