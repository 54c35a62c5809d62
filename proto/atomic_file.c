/* atomic_file.c - whole files written atomically and durably (see
 * atomic_file.h). */
#include "atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tally_error.h"
#include "text.h"

#define NAME_CAP 256 /* NAME_MAX + 1: a longer name cannot be a file name */

typedef struct job {
    const char *dirpath; /* for messages */
    const char *name;
    char tmp[NAME_CAP + sizeof ATOMIC_FILE_TMP_SUFFIX];
    char *err;
    size_t errlen;
} job_t;

/* "DIR/NAME: <what>: strerror(e)" (without the strerror when e is 0) into
 * the caller's err; sets errno to e and returns code. */
__attribute__((format(printf, 4, 5))) static int say(const job_t *j, int code, int e,
                                                     const char *fmt, ...)
{
    char what[NAME_CAP + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *dir = j->dirpath != NULL ? j->dirpath : "";
    size_t dl = strlen(dir);
    const char *sep = dl > 0 && dir[dl - 1] != '/' ? "/" : "";
    if (e != 0)
        text_format(j->err, j->errlen, "%s%s%s: %s: %s", dir, sep, j->name, what, strerror(e));
    else
        text_format(j->err, j->errlen, "%s%s%s: %s", dir, sep, j->name, what);
    errno = e;
    return code;
}

/* 0, or TALLY_EIO with errno set. */
static int write_all(const atomic_file_io_t *io, int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = io->write_fn != NULL ? io->write_fn(io->ctx, fd, p, len) : write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* a write that makes no progress would spin */
            return TALLY_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* 0, or TALLY_EIO with errno set. */
static int sync_file(const atomic_file_io_t *io, int fd)
{
    int r;
    do
        r = io->sync_fn != NULL ? io->sync_fn(io->ctx, fd) : fsync(fd);
    while (r != 0 && errno == EINTR);
    return r == 0 ? 0 : TALLY_EIO;
}

/* Give the synced temporary file its name.  Returns 0, or TALLY_EEXIST /
 * TALLY_EIO with err set. */
static int publish(const job_t *j, int dfd, bool no_replace)
{
    if (!no_replace) {
        if (renameat(dfd, j->tmp, dfd, j->name) != 0)
            return say(j, TALLY_EIO, errno, "cannot rename %s into place", j->tmp);
        return 0;
    }
    if (renameat2(dfd, j->tmp, dfd, j->name, RENAME_NOREPLACE) == 0)
        return 0;
    /* Some file systems lack RENAME_NOREPLACE; link() never replaces
     * either. */
    if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
        if (linkat(dfd, j->tmp, dfd, j->name, 0) == 0) {
            unlinkat(dfd, j->tmp, 0);
            return 0;
        }
    }
    if (errno == EEXIST) {
        int rc = say(j, TALLY_EEXIST, 0, "exists already");
        errno = EEXIST;
        return rc;
    }
    return say(j, TALLY_EIO, errno, "cannot rename %s into place", j->tmp);
}

/* Everything from the temporary file to the directory's fsync; dfd is
 * open.  On failure the temporary file is gone. */
static int write_in(job_t *j, int dfd, const void *data, size_t len, const atomic_file_opts_t *o)
{
    static const atomic_file_io_t real = {0};
    const atomic_file_io_t *io = o->io != NULL ? o->io : &real;
    mode_t mode = o->mode != 0 ? (mode_t)o->mode : 0600;
    int fd = openat(dfd, j->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return say(j, TALLY_EIO, errno, "cannot create %s", j->tmp);
    const char *step = NULL;
    /* The umask may only take bits away; exact_mode says the file ends up
     * with exactly mode (a secret key 0600, even under umask 0277). */
    if (o->exact_mode && fchmod(fd, mode) != 0)
        step = "set the mode of";
    else if (write_all(io, fd, data, len) != 0)
        step = "write";
    else if (sync_file(io, fd) != 0)
        step = "fsync";
    if (step == NULL && o->keep_fd == NULL) {
        int r = close(fd);
        fd = -1; /* closed, whatever close() says */
        if (r != 0)
            step = "close";
    }
    if (step != NULL) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        unlinkat(dfd, j->tmp, 0);
        return say(j, TALLY_EIO, e, "cannot %s %s", step, j->tmp);
    }
    int rc = publish(j, dfd, o->no_replace);
    if (rc < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        unlinkat(dfd, j->tmp, 0);
        errno = e;
        return rc;
    }
    if (fsync(dfd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (o->no_replace)
            unlinkat(dfd, j->name, 0);
        return say(j, TALLY_EIO, e, "cannot fsync the directory");
    }
    if (o->keep_fd != NULL)
        *o->keep_fd = fd;
    return 0;
}

int atomic_file_write(int dirfd, const char *dirpath, const char *name, const void *data,
                      size_t len, const atomic_file_opts_t *opts, char *err, size_t errlen)
{
    static const atomic_file_opts_t defaults = {0};
    job_t j = {.dirpath = dirpath, .name = name != NULL ? name : "", .err = err, .errlen = errlen};
    size_t nl = strlen(j.name);
    if (nl == 0 || nl >= NAME_CAP || strchr(j.name, '/') != NULL)
        return say(&j, TALLY_EINVAL, 0, "not a file name (1 to %d bytes, no '/')", NAME_CAP - 1);
    memcpy(j.tmp, j.name, nl);
    memcpy(j.tmp + nl, ATOMIC_FILE_TMP_SUFFIX, sizeof ATOMIC_FILE_TMP_SUFFIX);
    int dfd = dirfd;
    if (dirfd < 0) {
        const char *open_path = dirpath != NULL && dirpath[0] != '\0' ? dirpath : ".";
        dfd = open(open_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            return say(&j, TALLY_EIO, errno, "cannot open the directory");
    }
    int rc = write_in(&j, dfd, data, len, opts != NULL ? opts : &defaults);
    if (dirfd < 0) {
        int e = errno;
        close(dfd);
        errno = e;
    }
    return rc;
}

int atomic_dir_remove_flat(int at, const char *name)
{
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        errno = e == ELOOP ? ENOTDIR : e; /* a link named so */
        return -1;
    }
    int failed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT && failed == 0)
            failed = errno;
    closedir(d);
    if (unlinkat(at, name, AT_REMOVEDIR) != 0 && errno != ENOENT && failed == 0)
        failed = errno;
    if (failed != 0) {
        errno = failed;
        return -1;
    }
    return 0;
}
