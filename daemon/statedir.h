/* statedir.h - the state directory: created if missing, and locked so
 * that one tallyd at a time uses it.
 *
 * Two daemons on one state directory would both append to the journal
 * and write checkpoints over each other, losing acknowledged figures.  So
 * a start takes an exclusive flock(2) on STATE/tallyd.lock before it reads
 * or writes anything else there, and holds it until the process exits
 * (the kernel releases it even after SIGKILL).  The lock file holds the
 * holder's PID, for the message a second start gives.
 */
#ifndef TALLYD_STATEDIR_H
#define TALLYD_STATEDIR_H

#include <stddef.h>

#define STATEDIR_LOCK_NAME "tallyd.lock"

typedef struct statedir {
    int lock_fd; /* -1 when not locked */
} statedir_t;

/* Create dir (and its missing parents, mode 0750) and lock it for this
 * process.  Returns 0; TALLY_EEXIST when another process holds the lock
 * (err names the directory and that process's PID); TALLY_EIO when the
 * directory or its lock file cannot be created or opened (err names the
 * path and the reason). */
int statedir_lock(statedir_t *sd, const char *dir, char *err, size_t errlen);

/* Run as the owner of an existing state directory dir when this process
 * runs as root and the directory belongs to another user (the service's,
 * as systemd's StateDirectory= makes it): the groups, the group and the
 * user are switched to the directory's owner and group, for good, so
 * that whatever the run writes there stays readable by the service (a
 * root shell's `tallyd --accept-loss` left root's files that the service
 * then could not open).  Call it after the configuration and keys are
 * read and before anything in dir is touched.  Returns 0 with note set
 * to a sentence when it switched, to "" when there was nothing to do (not
 * root, no such directory yet, or root's own); TALLY_EIO when the switch
 * failed (err says why: nothing should go on as root then). */
int statedir_adopt_owner(const char *dir, char *note, size_t notelen, char *err, size_t errlen);

/* Create path and its missing parents, mode 0750 (mkdir -p; also the
 * backup directory).  Returns 0 or an errno value. */
int statedir_make_dirs(const char *path);

/* Release the lock (the file stays).  Safe when not locked. */
void statedir_unlock(statedir_t *sd);

#endif
