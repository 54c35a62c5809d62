/* probe.c - libtally (client/lib/): one connection of our own to the
 * daemon's address, to tell a refusal from a network that does not
 * reach it (see probe.h). */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "text.h"

struct probe {
    pthread_mutex_t mu;
    pthread_t thread;
    int wake; /* eventfd: written by probe_stop to end a connection in progress */
    int timeout_ms;
    int verdict;     /* enum probe_verdict; under mu */
    bool looking_up; /* in getaddrinfo(); under mu */
    bool stopped;    /* probe_stop was called; under mu */
    bool abandoned;  /* stopped during a lookup: the thread frees the probe; under mu */
    char why[160];   /* with PROBE_UNREACHABLE; under mu */
    char endpoint[];
};

int probe_classify(int err, int tcp)
{
    switch (err) {
    case 0:
    case EAGAIN: /* a unix socket whose backlog is full: something listens */
        return PROBE_ACCEPTED;
    case ECONNREFUSED:
    case ECONNRESET:
        return PROBE_REFUSED;
    default:
        /* A missing path, a file that is not a socket or one we may not
         * open: no daemon to be had there, whatever the network does. */
        return tcp ? PROBE_UNREACHABLE : PROBE_REFUSED;
    }
}

static void conclude(probe_t *p, int verdict, const char *why)
{
    pthread_mutex_lock(&p->mu);
    p->verdict = verdict;
    if (why != NULL)
        text_copy(p->why, sizeof p->why, why, strlen(why));
    pthread_mutex_unlock(&p->mu);
}

/* Wait for a non-blocking connect() of fd to end: its errno, 0 when it
 * connected, ETIMEDOUT, or -1 when the probe was stopped. */
static int await_connect(probe_t *p, int fd)
{
    struct pollfd pf[2] = {{.fd = fd, .events = POLLOUT}, {.fd = p->wake, .events = POLLIN}};
    int rc;
    do
        rc = poll(pf, 2, p->timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return errno;
    if (rc == 0)
        return ETIMEDOUT;
    if (pf[1].revents != 0)
        return -1;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

/* Connect to addr without blocking; the outcome as for await_connect. */
static int try_connect(probe_t *p, int family, const struct sockaddr *addr, socklen_t addrlen)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int err = connect(fd, addr, addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS)
        err = await_connect(p, fd);
    close(fd);
    return err;
}

static void probe_ipc(probe_t *p, const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof sun.sun_path) {
        conclude(p, PROBE_REFUSED, NULL);
        return;
    }
    memcpy(sun.sun_path, path, len);
    if (path[0] == '@') /* ZeroMQ's abstract namespace */
        sun.sun_path[0] = '\0';
    int err = try_connect(p, AF_UNIX, (const struct sockaddr *)&sun,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    if (err >= 0)
        conclude(p, probe_classify(err, 0), NULL);
}

/* Split "HOST:PORT" or "[V6]:PORT" (after any "SOURCE;") into host and
 * port; false when it is not of that shape. */
static bool split_tcp(const char *addr, char *host, size_t hcap, char *port, size_t pcap, bool *v6)
{
    const char *semi = strrchr(addr, ';');
    if (semi != NULL)
        addr = semi + 1;
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) >= pcap)
        return false;
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    *v6 = hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']';
    if (*v6) {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= hcap)
        return false;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    strcpy(port, colon + 1);
    return true;
}

/* Whether the probe was stopped during the lookup that just ended; the
 * thread then owns it and frees it. */
static bool lookup_done(probe_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->looking_up = false;
    bool abandoned = p->abandoned;
    pthread_mutex_unlock(&p->mu);
    return abandoned;
}

static void free_probe(probe_t *p)
{
    close(p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Returns true when the thread must free the probe. */
static bool probe_tcp(probe_t *p, const char *addr)
{
    char host[256], port[8], why[160];
    bool v6;
    if (!split_tcp(addr, host, sizeof host, port, sizeof port, &v6)) {
        conclude(p, PROBE_REFUSED, NULL);
        return false;
    }
    /* The family ZeroMQ connects with: IPv6 only for a bracketed address
     * (util_connect sets ZMQ_IPV6 only then). */
    struct addrinfo hints = {.ai_family = v6 ? AF_INET6 : AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    pthread_mutex_lock(&p->mu);
    bool stopped = p->stopped;
    p->looking_up = !stopped;
    pthread_mutex_unlock(&p->mu);
    if (stopped) /* before the lookup: probe_stop is waiting for the thread */
        return false;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (lookup_done(p)) {
        if (res != NULL)
            freeaddrinfo(res);
        return true;
    }
    if (gai != 0 || res == NULL) {
        bool none = gai == EAI_NONAME || gai == 0;
#ifdef EAI_NODATA
        none = none || gai == EAI_NODATA;
#endif
        const char *what = none ? "its name does not resolve" : "its name could not be looked up";
        text_format(why, sizeof why, "%s (%s)", what,
                    gai == 0            ? "no address"
                    : gai == EAI_SYSTEM ? strerror(errno)
                                        : gai_strerror(gai));
        conclude(p, none ? PROBE_NO_NAME : PROBE_UNREACHABLE, why);
        return false;
    }
    int err = try_connect(p, res->ai_family, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (err < 0)
        return false; /* stopped */
    int verdict = probe_classify(err, 1);
    if (err == ETIMEDOUT)
        text_format(why, sizeof why,
                    "its host does not answer connections (a link that drops them, a host "
                    "that is down, or a firewall)");
    else
        text_format(why, sizeof why, "the network does not reach it (%s)", strerror(err));
    conclude(p, verdict, verdict == PROBE_UNREACHABLE ? why : NULL);
    return false;
}

static void *run(void *arg)
{
    probe_t *p = arg;
    if (strncmp(p->endpoint, "ipc://", 6) == 0)
        probe_ipc(p, p->endpoint + 6);
    else if (probe_tcp(p, p->endpoint + 6))
        free_probe(p);
    return NULL;
}

probe_t *probe_start(const char *endpoint, int timeout_ms)
{
    if (strncmp(endpoint, "tcp://", 6) != 0 && strncmp(endpoint, "ipc://", 6) != 0)
        return NULL;
    size_t len = strlen(endpoint);
    probe_t *p = calloc(1, sizeof *p + len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p->endpoint, endpoint, len + 1);
    p->timeout_ms = timeout_ms;
    p->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->wake < 0) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    if (pthread_create(&p->thread, NULL, run, p) != 0) {
        free_probe(p);
        return NULL;
    }
    return p;
}

int probe_verdict(probe_t *p, char *why, size_t cap)
{
    pthread_mutex_lock(&p->mu);
    int v = p->verdict;
    bool said = v == PROBE_UNREACHABLE || v == PROBE_NO_NAME;
    if (why != NULL && cap > 0)
        text_copy(why, cap, said ? p->why : "", said ? strlen(p->why) : 0);
    pthread_mutex_unlock(&p->mu);
    return v;
}

void probe_stop(probe_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopped = true;
    bool detach = p->looking_up;
    if (detach)
        p->abandoned = true;
    pthread_mutex_unlock(&p->mu);
    if (detach) {
        pthread_detach(p->thread);
        return;
    }
    uint64_t one = 1;
    ssize_t w = write(p->wake, &one, sizeof one);
    (void)w; /* an eventfd write fails only when the counter would overflow */
    pthread_join(p->thread, NULL);
    free_probe(p);
}
