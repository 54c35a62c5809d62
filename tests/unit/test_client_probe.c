/* test_client_probe.c - libtally's probe of a failing connection
 * (client/lib/probe.h) and what the library makes of it: a refusal ends
 * a request early, a network that does not reach the address is waited
 * for and said (TALLY_LINK_UNREACHABLE, *_link_why).
 *
 * The failures are real: a port bound but not listening refuses, a TCP
 * connection to the broadcast address is refused by the kernel with
 * ENETUNREACH on every Linux machine, a listener whose accept queue is
 * full never answers further SYNs, and names under .invalid never
 * resolve. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "probe.h"
#include "tally.h"

/* A TCP socket on 127.0.0.1, listening with backlog (or not, when
 * backlog < 0); its port in *port. */
static int tcp_socket(int backlog, unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    if (backlog >= 0)
        assert_int_equal(listen(fd, backlog), 0);
    return fd;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for p's verdict (the probe ends by itself within its timeout). */
static int verdict_of(probe_t *p, char *why, size_t cap)
{
    int v;
    while ((v = probe_verdict(p, why, cap)) == PROBE_RUNNING)
        poll(NULL, 0, 5);
    return v;
}

static int probe_once(const char *endpoint, int timeout_ms, char *why, size_t cap)
{
    probe_t *p = probe_start(endpoint, timeout_ms);
    assert_non_null(p);
    int v = verdict_of(p, why, cap);
    probe_stop(p);
    return v;
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(probe_classify(0, 1), PROBE_ACCEPTED);
    assert_int_equal(probe_classify(ECONNREFUSED, 1), PROBE_REFUSED);
    assert_int_equal(probe_classify(ECONNRESET, 1), PROBE_REFUSED);
    assert_int_equal(probe_classify(ENETUNREACH, 1), PROBE_UNREACHABLE);
    assert_int_equal(probe_classify(EHOSTUNREACH, 1), PROBE_UNREACHABLE);
    assert_int_equal(probe_classify(ETIMEDOUT, 1), PROBE_UNREACHABLE);
    assert_int_equal(probe_classify(EADDRNOTAVAIL, 1), PROBE_UNREACHABLE);
    /* ipc:// is never the network's fault. */
    assert_int_equal(probe_classify(0, 0), PROBE_ACCEPTED);
    assert_int_equal(probe_classify(EAGAIN, 0), PROBE_ACCEPTED);
    assert_int_equal(probe_classify(ENOENT, 0), PROBE_REFUSED);
    assert_int_equal(probe_classify(ECONNREFUSED, 0), PROBE_REFUSED);
    assert_int_equal(probe_classify(EACCES, 0), PROBE_REFUSED);
}

static void test_tcp(void **state)
{
    (void)state;
    char ep[64], why[160];
    unsigned port;
    int fd = tcp_socket(-1, &port); /* bound, not listening: refused */
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", port);
    strcpy(why, "x");
    assert_int_equal(probe_once(ep, 2000, why, sizeof why), PROBE_REFUSED);
    assert_string_equal(why, "");
    snprintf(ep, sizeof ep, "tcp://localhost:%u", port); /* a name, looked up */
    assert_int_equal(probe_once(ep, 2000, why, sizeof why), PROBE_REFUSED);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(probe_once(ep, 2000, why, sizeof why), PROBE_ACCEPTED);
    close(fd);

    assert_int_equal(probe_once("tcp://255.255.255.255:7411", 2000, why, sizeof why),
                     PROBE_UNREACHABLE);
    assert_string_equal(why, "the network does not reach it (Network is unreachable)");
    /* A source address before ';' is ZeroMQ's, not the daemon's. */
    assert_int_equal(probe_once("tcp://127.0.0.1:0;255.255.255.255:7411", 2000, why, sizeof why),
                     PROBE_UNREACHABLE);
    /* Without a resolver the lookup fails otherwise: "could not be
     * looked up"; either way it is the name. */
    int v = probe_once("tcp://tallyd.nosuch.invalid:7411", 10000, why, sizeof why);
    if (v == PROBE_NO_NAME)
        assert_string_equal(why, "its name does not resolve (Name or service not known)");
    else {
        assert_int_equal(v, PROBE_UNREACHABLE);
        assert_memory_equal(why, "its name could not be looked up (", 33);
    }
    /* Not an address a probe can make anything of: refused, as ZeroMQ's
     * events alone would say. */
    assert_int_equal(probe_once("tcp://noport", 2000, why, sizeof why), PROBE_REFUSED);
    assert_null(probe_start("inproc://x", 2000));
    assert_null(probe_start("udp://127.0.0.1:7411", 2000));
}

/* A listener whose accept queue is full: the kernel drops further SYNs,
 * so a connection to it stays in progress.  The sockets that filled it
 * in fds[] (closed by the caller), their count returned. */
static size_t fill_queue(int listener, unsigned port, int *fds, size_t cap)
{
    (void)listener;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    for (size_t n = 0; n < cap; n++) {
        fds[n] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(fds[n] >= 0);
        int rc = connect(fds[n], (struct sockaddr *)&a, sizeof a);
        assert_true(rc == 0 || errno == EINPROGRESS);
        struct pollfd pf = {.fd = fds[n], .events = POLLOUT};
        if (poll(&pf, 1, 500) == 0)
            return n + 1; /* this one hangs: the queue is full */
    }
    fail_msg("a listener with backlog 0 took %zu connections", cap);
    return cap;
}

static void no_stat(void *ctx, const char *name, int64_t value)
{
    (void)ctx;
    (void)name;
    (void)value;
    fail_msg("a statistic from a host that does not answer");
}

static void test_no_answer(void **state)
{
    (void)state;
    unsigned port;
    int l = tcp_socket(0, &port);
    int fds[64];
    size_t n = fill_queue(l, port, fds, 64);
    char ep[64], why[160];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", port);
    assert_int_equal(probe_once(ep, 200, why, sizeof why), PROBE_UNREACHABLE);
    assert_string_equal(why, "its host does not answer connections (a link that drops them, a "
                             "host that is down, or a firewall)");
    /* The library: ZeroMQ's own attempt gets no answer either (no
     * failure to report), so after a second it is probed, and said. */
    char err[256];
    tally_request_t req = {
        .timeout_ms = 5000, .errbuf = err, .errbuf_len = sizeof err, .refused_ms = 300};
    assert_int_equal(tally_stats_req(ep, &req, no_stat, NULL), TALLY_ETIMEDOUT);
    assert_int_equal(req.link, TALLY_LINK_UNREACHABLE);
    assert_string_equal(err, why);
    /* Stopped while it waits: it ends now, not after its hour. */
    probe_t *p = probe_start(ep, 3600 * 1000);
    assert_non_null(p);
    poll(NULL, 0, 50);
    assert_int_equal(probe_verdict(p, why, sizeof why), PROBE_RUNNING);
    assert_string_equal(why, "");
    probe_stop(p);
    probe_stop(NULL);
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
    close(l);
}

static void test_ipc(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_client_probe.XXXXXX", ep[128], path[96], why[160];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/sock", dir);
    snprintf(ep, sizeof ep, "ipc://%s", path);
    assert_int_equal(probe_once(ep, 2000, why, sizeof why), PROBE_REFUSED); /* no file */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(probe_once(ep, 2000, why, sizeof why), PROBE_REFUSED); /* not listening */
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(probe_once(ep, 2000, why, sizeof why), PROBE_ACCEPTED);
    close(fd);
    unlink(path);
    FILE *f = fopen(path, "w"); /* a file that is not a socket */
    assert_non_null(f);
    fclose(f);
    assert_int_equal(probe_once(ep, 2000, why, sizeof why), PROBE_REFUSED);
    unlink(path);
    rmdir(dir);
}

static void got_tally(void *ctx, const tally_tally_t *t)
{
    (void)t;
    (*(int *)ctx)++;
}

/* The library: refusals end a request after refused_ms; a network that
 * does not reach the address is waited for until timeout_ms and said. */
static void test_library(void **state)
{
    (void)state;
    char err[256];
    int n = 0;
    tally_request_t req = {
        .timeout_ms = 1500, .errbuf = err, .errbuf_len = sizeof err, .refused_ms = 300};
    assert_int_equal(
        tally_get_req("tcp://255.255.255.255:7411", &req, "", got_tally, &n, NULL, NULL),
        TALLY_ETIMEDOUT);
    assert_int_equal(req.link, TALLY_LINK_UNREACHABLE);
    assert_string_equal(err, "the network does not reach it (Network is unreachable)");
    assert_int_equal(n, 0);

    unsigned port;
    int fd = tcp_socket(-1, &port);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", port);
    req.timeout_ms = 60000;
    assert_int_equal(tally_get_req(ep, &req, "", got_tally, &n, NULL, NULL), TALLY_ETIMEDOUT);
    assert_int_equal(req.link, TALLY_LINK_NO_CONNECTION);
    assert_string_equal(err, "nothing accepts connections there (refused for 300 ms)");
    close(fd);

    /* A name the name server does not know ends the wait like a refusal
     * (an address mistyped), and is said as what it is.  Without a name
     * server to ask, the lookup fails otherwise and is waited for. */
    char why[160];
    int v = probe_once("tcp://tallyd.nosuch.invalid:7411", 10000, why, sizeof why);
    req.timeout_ms = v == PROBE_NO_NAME ? 60000 : 1500;
    int64_t t = mono_ms();
    assert_int_equal(
        tally_get_req("tcp://tallyd.nosuch.invalid:7411", &req, "", got_tally, &n, NULL, NULL),
        TALLY_ETIMEDOUT);
    if (v == PROBE_NO_NAME)
        assert_true(mono_ms() - t < 30000);
    assert_int_equal(req.link, TALLY_LINK_UNREACHABLE);
    assert_string_equal(err, why);

    /* A client handle: the link and why, and no refusal timed. */
    tally_client_t *c = NULL;
    assert_int_equal(tally_client_new("tcp://255.255.255.255:7411", "gaoguan", NULL, &c), 0);
    assert_int_equal(tally_client_hello(c, 1000), TALLY_ETIMEDOUT);
    assert_int_equal(tally_client_link(c), TALLY_LINK_UNREACHABLE);
    assert_int_equal(tally_client_refused_ms(c), 0);
    assert_string_equal(tally_client_link_why(c),
                        "the network does not reach it (Network is unreachable)");
    tally_client_destroy(&c);

    tally_sub_t *s = NULL;
    assert_int_equal(tally_sub_new("tcp://255.255.255.255:7411", "u/", NULL, NULL, &s), 0);
    for (int i = 0; i < 200 && tally_sub_link(s) != TALLY_LINK_UNREACHABLE; i++)
        tally_sub_run(s, 20);
    /* ... and stays so, why included, across the probes that follow
     * (one a second, each running a moment). */
    for (int i = 0; i < 60; i++) {
        tally_sub_run(s, 25);
        assert_int_equal(tally_sub_link(s), TALLY_LINK_UNREACHABLE);
        assert_int_equal(tally_sub_refused_ms(s), 0);
        assert_string_equal(tally_sub_link_why(s),
                            "the network does not reach it (Network is unreachable)");
    }
    tally_sub_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),  cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_no_answer), cmocka_unit_test(test_ipc),
        cmocka_unit_test(test_library),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
