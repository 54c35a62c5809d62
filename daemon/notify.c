/* notify.c - the systemd notification protocol over one datagram socket. */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void disable(notify_t *n)
{
    memset(n, 0, sizeof(*n));
    n->fd = -1;
}

/* Fill n->addr from address; n->fd stays as it is. */
static int set_address(notify_t *n, const char *address)
{
    size_t len = strlen(address);
    if (address[0] == '@') {
        /* An abstract name is the bytes after a leading NUL in sun_path;
         * its length is given by addr_len, not by a terminator. */
        if (len < 2)
            return TALLY_EINVAL;
        if (len - 1 > (size_t)NOTIFY_ADDRESS_MAX)
            return TALLY_ETOOLONG;
        n->addr.sun_path[0] = '\0';
        memcpy(n->addr.sun_path + 1, address + 1, len - 1);
        n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
        return 0;
    }
    /* sd_notify(3) accepts only absolute paths: a relative one would
     * depend on the working directory, which the manager does not share. */
    if (address[0] != '/')
        return TALLY_EINVAL;
    if (len > (size_t)NOTIFY_ADDRESS_MAX)
        return TALLY_ETOOLONG;
    memcpy(n->addr.sun_path, address, len + 1);
    n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    return 0;
}

int notify_init(notify_t *n, const char *address)
{
    disable(n);
    if (address == NULL || address[0] == '\0')
        return 0;
    n->addr.sun_family = AF_UNIX;
    int rc = set_address(n, address);
    if (rc != 0) {
        disable(n);
        return rc;
    }
    /* Unconnected: sendto() resolves the address each time, so a manager
     * that re-executes and binds a new socket at the same address still
     * hears from us. */
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (n->fd < 0) {
        int err = errno;
        disable(n);
        errno = err;
        return TALLY_ESYS;
    }
    return 0;
}

/* A positive decimal number without sign, space or trailing text. */
static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return TALLY_EINVAL;
    for (; *s >= '0' && *s <= '9'; s++) {
        uint64_t digit = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return TALLY_EINVAL;
        v = v * 10 + digit;
    }
    if (*s != '\0' || v == 0)
        return TALLY_EINVAL;
    *out = v;
    return 0;
}

int notify_init_env(notify_t *n)
{
    int rc = notify_init(n, getenv("NOTIFY_SOCKET"));
    if (rc != 0 || n->fd < 0)
        return rc;

    const char *usec = getenv("WATCHDOG_USEC");
    if (usec == NULL || usec[0] == '\0')
        return 0;
    uint64_t interval;
    if (parse_u64(usec, &interval) != 0)
        return TALLY_EINVAL;
    /* The manager sets WATCHDOG_PID so that a child which inherits the
     * environment does not mistake its parent's watchdog for its own. */
    const char *pid = getenv("WATCHDOG_PID");
    if (pid != NULL && pid[0] != '\0') {
        uint64_t p;
        if (parse_u64(pid, &p) != 0)
            return TALLY_EINVAL;
        if (p != (uint64_t)getpid())
            return 0;
    }
    n->watchdog_usec = interval;
    return 0;
}

int notify_send(notify_t *n, const char *fmt, ...)
{
    if (n->fd < 0)
        return 0;
    /* One byte more than the limit, to tell "exactly the limit" from
     * "cut". */
    char msg[NOTIFY_MESSAGE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (len <= 0)
        return TALLY_EINVAL;
    if (len > NOTIFY_MESSAGE_MAX)
        return TALLY_ETOOLONG;

    ssize_t sent;
    do {
        /* MSG_DONTWAIT on top of SOCK_NONBLOCK: never block the loop, even
         * if someone cleared O_NONBLOCK.  MSG_NOSIGNAL: a broken peer
         * gives an error, never SIGPIPE. */
        sent = sendto(n->fd, msg, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT,
                      (const struct sockaddr *)&n->addr, n->addr_len);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? TALLY_EAGAIN : TALLY_ESYS;
    /* A datagram goes whole or not at all. */
    return 0;
}

uint64_t notify_watchdog_usec(const notify_t *n)
{
    return n->fd < 0 ? 0 : n->watchdog_usec;
}

bool notify_enabled(const notify_t *n)
{
    return n->fd >= 0;
}

void notify_close(notify_t *n)
{
    if (n->fd >= 0)
        close(n->fd);
    disable(n);
}
