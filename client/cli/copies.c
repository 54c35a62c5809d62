/* copies.c - the tally command (client/cli/): copies of backups kept in
 * a directory, the oldest removed beyond --keep, each checked against its
 * BLAKE2SUMS (see copies.h). */
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
#include "b2sums.h"
#include "copies.h"
#include "proto.h"
#include "vec.h"

/* Older first: the time in the name, then the -N that tallyd adds to a
 * second backup within one second (none first; -10 after -9). */
static int age_cmp(const void *a, const void *b)
{
    return proto_backup_name_cmp(*(char *const *)a, *(char *const *)b);
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

void copies_names_free(copies_names_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->names[i]);
    free(r->names);
    r->names = NULL;
    r->n = 0;
}

/* The copies in the directory d (dir in messages) but spare (NULL:
 * none), oldest first.  0, or -1 with err. */
static int list_copies(DIR *d, const char *dir, const char *spare, copies_names_t *out, char *err,
                       size_t errlen)
{
    *out = (copies_names_t){0};
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!proto_backup_name_valid(e->d_name, strlen(e->d_name)) ||
            (spare != NULL && strcmp(e->d_name, spare) == 0) || !is_copy(dirfd(d), e->d_name))
            continue;
        char *name = NULL;
        if (VEC_RESERVE(out->names, cap, out->n + 1) != 0 || (name = strdup(e->d_name)) == NULL) {
            snprintf(err, errlen, "out of memory listing the copies in %s", dir);
            copies_names_free(out);
            return -1;
        }
        out->names[out->n++] = name;
    }
    if (out->n > 1)
        qsort(out->names, out->n, sizeof *out->names, age_cmp);
    return 0;
}

static DIR *open_dir(const char *dir, char *err, size_t errlen)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        snprintf(err, errlen, "cannot read the directory %s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
    }
    return d;
}

int copies_list(const char *dir, copies_names_t *out, char *err, size_t errlen)
{
    *out = (copies_names_t){0};
    DIR *d = open_dir(dir, err, errlen);
    if (d == NULL)
        return -1;
    int rc = list_copies(d, dir, NULL, out, err, errlen);
    closedir(d);
    return rc;
}

int copies_prune(const char *dir, unsigned keep, const char *spare, copies_names_t *out, char *err,
                 size_t errlen)
{
    *out = (copies_names_t){0};
    DIR *d = open_dir(dir, err, errlen);
    if (d == NULL)
        return -1;
    /* The copies but spare, which stays whatever its age. */
    copies_names_t all;
    int rc = list_copies(d, dir, spare, &all, err, errlen);
    /* keep - 1 of them stay beside spare: the newest. */
    size_t drop = rc == 0 && all.n + 1 > keep ? all.n + 1 - keep : 0;
    if (drop > 0 && (out->names = calloc(drop, sizeof *out->names)) == NULL) {
        snprintf(err, errlen, "out of memory removing the copies in %s", dir);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < drop; i++) {
        if (atomic_dir_remove_flat(dirfd(d), all.names[i]) != 0) {
            snprintf(err, errlen, "cannot remove the older copy %s/%s: %s", dir, all.names[i],
                     strerror(errno));
            rc = -1;
            break;
        }
        out->names[out->n++] = all.names[i];
        all.names[i] = NULL;
    }
    if (rc == 0 && drop > 0 && fsync(dirfd(d)) != 0) {
        snprintf(err, errlen, "cannot sync the directory %s: %s", dir, strerror(errno));
        rc = -1;
    }
    copies_names_free(&all);
    closedir(d);
    return rc;
}

void copies_check(const char *dir, copies_check_t *out)
{
    *out = (copies_check_t){.status = B2SUMS_EIO};
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(out->err, sizeof out->err, "cannot read the directory %s: %s", dir,
                 strerror(errno));
        return;
    }
    b2sums_count_t c;
    out->status = b2sums_check(dfd, dir, NULL, NULL, &c, out->err, sizeof out->err);
    out->files = c.files;
    out->bytes = c.bytes;
    close(dfd);
}
