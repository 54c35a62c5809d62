/* notify.h - tell the service manager how tallyd is doing (sd_notify(3)).
 *
 * The systemd notification protocol, without libsystemd: the manager puts
 * the address of an AF_UNIX datagram socket in $NOTIFY_SOCKET, and the
 * service sends it datagrams of newline-separated KEY=VALUE assignments:
 *
 *   READY=1             start-up is complete (Type=notify units wait for it)
 *   RELOADING=1         a reload began; READY=1 again when it ends
 *   STOPPING=1          a clean stop began
 *   STATUS=text         one line for `systemctl status`
 *   WATCHDOG=1          still alive (WatchdogSec=)
 *
 * The address is a file system path ("/run/systemd/notify") or, with a
 * leading '@', a name in the abstract namespace ("@tallyd-notify" is the
 * name "\0tallyd-notify").  Without $NOTIFY_SOCKET (tallyd started by hand,
 * or by a manager that does not listen) every function here does nothing
 * and succeeds, so the daemon calls them unconditionally.
 *
 * The watchdog: when the unit sets WatchdogSec=, the manager puts the
 * interval in microseconds in $WATCHDOG_USEC and the process it is meant
 * for in $WATCHDOG_PID; the service must send WATCHDOG=1 more often than
 * that (systemd recommends every half interval), or it is killed and, with
 * Restart=on-failure, started again.
 *
 * One notify_t per process, owned by the daemon's state (no global state
 * here).  It holds one socket (close-on-exec) and the manager's address,
 * resolved again by every send, so a manager that re-executes itself and
 * binds its socket anew keeps receiving.  Sends never block: the event loop
 * must not wait for the manager.  Not thread-safe: use it from one thread
 * (the loop's).  The environment is read, never changed.
 */
#ifndef TALLYD_NOTIFY_H
#define TALLYD_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "tally_error.h"

/* Longest datagram notify_send() sends, in bytes; systemd reads at most a
 * pipe buffer's worth (4096) and drops the rest. */
#define NOTIFY_MESSAGE_MAX 4096

/* Longest address, in bytes without the NUL: a path, or an abstract name
 * after its '@' (sizeof(sun_path) - 1). */
#define NOTIFY_ADDRESS_MAX ((int)sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

typedef struct notify {
    int fd;                  /* datagram socket, -1 when disabled */
    struct sockaddr_un addr; /* the manager's socket */
    socklen_t addr_len;      /* bytes of addr that count */
    uint64_t watchdog_usec;  /* 0: no watchdog for this process */
} notify_t;

/* Set *n up to send to the socket at address: an absolute path, or '@'
 * followed by an abstract name.  NULL or "" disables *n (every call a no-op,
 * the state tallyd runs in outside systemd); no watchdog either way (see
 * notify_init_env).  *n is overwritten: notify_close() one that is open
 * first.
 * Returns 0; TALLY_EINVAL when address is neither absolute nor abstract
 * ("relative/path", a lone "@"); TALLY_ETOOLONG when it is longer than
 * NOTIFY_ADDRESS_MAX bytes (after the '@' for abstract names); TALLY_ESYS
 * when socket(2) fails (errno tells why).  On error *n is disabled, so the
 * caller may log the code and carry on. */
int notify_init(notify_t *n, const char *address);

/* As notify_init($NOTIFY_SOCKET), and take the watchdog interval from
 * $WATCHDOG_USEC when $WATCHDOG_PID is unset or is this process's pid
 * (getpid()); a watchdog meant for another process is not ours (0, no
 * error).  Returns 0, or what notify_init returns; also TALLY_EINVAL when
 * $WATCHDOG_USEC is not a positive decimal number or $WATCHDOG_PID not a
 * decimal pid.  In every case *n is safe to use: after a bad $NOTIFY_SOCKET
 * it is disabled; after a bad watchdog variable notifications still work
 * and the watchdog is off. */
int notify_init_env(notify_t *n);

/* Send one datagram, the printf-style fmt expanded: newline-separated
 * KEY=VALUE assignments, e.g. notify_send(n, "READY=1\nSTATUS=%s", text).
 * A no-op returning 0 when *n is disabled.  Returns 0 when the manager's
 * socket took the datagram; TALLY_EINVAL when the expansion is empty (or
 * fmt fails); TALLY_ETOOLONG when it is longer than NOTIFY_MESSAGE_MAX
 * bytes (in both cases nothing is sent); TALLY_EAGAIN when
 * the manager's queue is full (nothing is sent: the call never blocks);
 * TALLY_ESYS when sendto(2) fails otherwise (errno tells why; ENOENT or
 * ECONNREFUSED: nobody listens at the address). */
int notify_send(notify_t *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The watchdog interval in microseconds: send WATCHDOG=1 at least this
 * often (every half of it, say).  0 when there is no watchdog for this
 * process, or *n is disabled. */
uint64_t notify_watchdog_usec(const notify_t *n);

/* True when *n sends to a manager's socket. */
bool notify_enabled(const notify_t *n);

/* Close the socket and disable *n.  Safe on a disabled or closed notify_t. */
void notify_close(notify_t *n);

#endif
