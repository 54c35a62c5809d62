/* fsutil.c - libtally (client/lib/): reading the spool's and the state
 * file's files whole, and opening their directories.  Writing is atomic_file_write's (tallycommon):
 * a crash at any instant leaves either the old or the new version, so a
 * reader never sees a truncated submission or sequence number. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tally_error.h"
#include "text.h"

int fsutil_read_all(int dirfd, const char *dirpath, const char *name, size_t max, uint8_t **data,
                    size_t *len, char *err, size_t errlen)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return TALLY_ENOTFOUND;
        text_format(err, errlen, "cannot open %s/%s: %s", dirpath, name, strerror(errno));
        return TALLY_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        text_format(err, errlen, "cannot stat %s/%s: %s", dirpath, name, strerror(errno));
        close(fd);
        return TALLY_EIO;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > max) {
        text_format(err, errlen, "%s/%s is %lld bytes, more than the limit of %zu", dirpath, name,
                    (long long)st.st_size, max);
        close(fd);
        return TALLY_ETOOLARGE;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size + 1);
    if (buf == NULL) {
        close(fd);
        return TALLY_ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            text_format(err, errlen, "cannot read %s/%s: %s", dirpath, name, strerror(errno));
            free(buf);
            close(fd);
            return TALLY_EIO;
        }
        if (n == 0)
            break; /* shrunk under us: take what is there */
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return 0;
}

int fsutil_open_dir(const char *path, int create, char *err, size_t errlen)
{
    if (create && mkdir(path, 0700) < 0 && errno != EEXIST) {
        text_format(err, errlen, "cannot create directory %s: %s", path, strerror(errno));
        return TALLY_EIO;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        text_format(err, errlen, "cannot open directory %s: %s", path, strerror(errno));
        return TALLY_EIO;
    }
    return fd;
}

int fsutil_lock(int fd, unsigned timeout_ms)
{
    /* flock has no timeout of its own: poll it.  The holder is usually
     * another `tally push` that is done within seconds, so 50 ms steps
     * cost nothing noticeable. */
    unsigned waited = 0;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return TALLY_EIO;
        if (waited >= timeout_ms)
            return TALLY_EEXIST;
        unsigned step = timeout_ms - waited < 50 ? timeout_ms - waited : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        waited += step;
    }
}
