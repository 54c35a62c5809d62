/* statedir.c - create and lock the state directory (see statedir.h). */
#include "statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "tally_error.h"

int statedir_make_dirs(const char *path)
{
    char buf[CONFIG_PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST)
        return errno;
    return 0;
}

int statedir_adopt_owner(const char *dir, char *note, size_t notelen, char *err, size_t errlen)
{
    note[0] = '\0';
    struct stat st;
    if (geteuid() != 0 || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid == 0)
        return 0;
    /* The groups first, the user last: once the user is switched, the
     * process may not change its groups any more. */
    if (setgroups(0, NULL) != 0 || setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0) {
        snprintf(err, errlen,
                 "running as root on the state directory %s of user %lu, and cannot switch to "
                 "that user: %s; run tallyd as the directory's owner",
                 dir, (unsigned long)st.st_uid, strerror(errno));
        return TALLY_EIO;
    }
    snprintf(note, notelen,
             "started as root on the state directory %s of user %lu: running as that user and "
             "group %lu, so that what this run writes there stays the service's",
             dir, (unsigned long)st.st_uid, (unsigned long)st.st_gid);
    return 0;
}

/* The PID written in the lock file, or 0 when it holds none. */
static long holder_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

int statedir_lock(statedir_t *sd, const char *dir, char *err, size_t errlen)
{
    sd->lock_fd = -1;
    int e = statedir_make_dirs(dir);
    if (e != 0) {
        snprintf(err, errlen, "cannot create the state directory %s: %s", dir, strerror(e));
        return TALLY_EIO;
    }
    char path[CONFIG_PATH_MAX + sizeof(STATEDIR_LOCK_NAME) + 1];
    snprintf(path, sizeof(path), "%s/%s", dir, STATEDIR_LOCK_NAME);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the lock file %s: %s", path, strerror(errno));
        return TALLY_EIO;
    }
    /* Root (a restore) makes the lock file the directory's owner's, which
     * the service must be able to open after it. */
    struct stat st;
    if (geteuid() == 0 && stat(dir, &st) == 0 && st.st_uid != 0 &&
        fchown(fd, st.st_uid, st.st_gid) != 0) {
        snprintf(err, errlen, "cannot give the lock file %s to the state directory's owner: %s",
                 path, strerror(errno));
        close(fd);
        return TALLY_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        e = errno;
        long pid = holder_pid(fd);
        close(fd);
        if (e == EWOULDBLOCK) {
            if (pid > 0)
                snprintf(err, errlen,
                         "the state directory %s is in use by another tallyd (PID %ld, lock "
                         "file %s); stop it first, or give this one its own --state-dir",
                         dir, pid, path);
            else
                snprintf(err, errlen,
                         "the state directory %s is in use by another process (lock file %s); "
                         "stop it first, or give this one its own --state-dir",
                         dir, path);
            return TALLY_EEXIST;
        }
        snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        return TALLY_EIO;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    /* The PID is for people; a failure to write it does not matter. */
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n)
        (void)0;
    sd->lock_fd = fd;
    return 0;
}

void statedir_unlock(statedir_t *sd)
{
    if (sd->lock_fd >= 0)
        close(sd->lock_fd);
    sd->lock_fd = -1;
}
