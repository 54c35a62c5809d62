/* Unit tests of notify: a real AF_UNIX datagram socket plays the service
 * manager, bound in a private temporary directory or in the abstract
 * namespace, and receives what notify_send() sends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

/* The manager's side: a bound datagram socket and its address. */
typedef struct fx {
    char dir[64];
    char path[128];
    int fd;
} fx_t;

static const char *const env_vars[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"};

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->fd = -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_notify.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/notify", f->dir);
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        unsetenv(env_vars[i]);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->fd >= 0)
        close(f->fd);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        unsetenv(env_vars[i]);
    return 0;
}

/* Bind a receiving socket at a path, or at "\0name" when abstract. */
static int listen_at(const char *name, bool abstract)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    assert_true(len + 1 <= sizeof(a.sun_path));
    socklen_t alen;
    if (abstract) {
        memcpy(a.sun_path + 1, name, len);
        alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
    } else {
        memcpy(a.sun_path, name, len + 1);
        alen = (socklen_t)sizeof(a);
    }
    assert_int_equal(bind(fd, (struct sockaddr *)&a, alen), 0);
    /* As systemd does: have the kernel attach the sender's credentials. */
    int one = 1;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
    return fd;
}

/* Receive one datagram without waiting (notify_send has returned, so it is
 * queued already); returns its length, -1 when there is none.  *pid gets
 * the sender's pid from its credentials. */
static ssize_t receive(int fd, char *buf, size_t cap, pid_t *pid)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control.buf,
                        .msg_controllen = sizeof(control.buf)};
    ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0)
        return -1;
    assert_false(mh.msg_flags & MSG_TRUNC);
    *pid = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof(cred));
            *pid = cred.pid;
        }
    if ((size_t)n < cap)
        buf[n] = '\0';
    return n;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[NOTIFY_MESSAGE_MAX + 16];
    pid_t pid = -1;
    ssize_t n = receive(fd, buf, sizeof(buf), &pid);
    assert_int_equal(n, (ssize_t)strlen(want));
    assert_memory_equal(buf, want, strlen(want));
    assert_int_equal(pid, getpid());
}

static void expect_nothing(int fd)
{
    char buf[64];
    pid_t pid;
    assert_int_equal(receive(fd, buf, sizeof(buf), &pid), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void test_path_socket(void **state)
{
    fx_t *f = *state;
    f->fd = listen_at(f->path, false);
    notify_t n;
    assert_int_equal(notify_init(&n, f->path), 0);
    assert_true(notify_enabled(&n));
    assert_int_equal(notify_watchdog_usec(&n), 0);
    /* Close-on-exec: a child of tallyd must not hold the manager's line. */
    assert_true(fcntl(n.fd, F_GETFD) & FD_CLOEXEC);

    assert_int_equal(notify_send(&n, "READY=1\nSTATUS=%s, %d townships", "ready", 25), 0);
    expect_datagram(f->fd, "READY=1\nSTATUS=ready, 25 townships");
    assert_int_equal(notify_send(&n, "WATCHDOG=1"), 0);
    assert_int_equal(notify_send(&n, "STOPPING=1"), 0);
    /* One datagram per call, in order. */
    expect_datagram(f->fd, "WATCHDOG=1");
    expect_datagram(f->fd, "STOPPING=1");
    expect_nothing(f->fd);

    notify_close(&n);
    assert_false(notify_enabled(&n));
    assert_int_equal(notify_send(&n, "READY=1"), 0);
    expect_nothing(f->fd);
    notify_close(&n); /* twice is fine */
}

static void test_abstract_socket(void **state)
{
    fx_t *f = *state;
    char name[64], at[80];
    snprintf(name, sizeof(name), "test_notify.%ld.%s", (long)getpid(), f->dir + 17);
    snprintf(at, sizeof(at), "@%s", name);
    f->fd = listen_at(name, true);

    notify_t n;
    assert_int_equal(notify_init(&n, at), 0);
    assert_true(notify_enabled(&n));
    assert_int_equal(notify_send(&n, "RELOADING=1\nSTATUS=reloading %s", "tallyd.conf"), 0);
    expect_datagram(f->fd, "RELOADING=1\nSTATUS=reloading tallyd.conf");

    /* The name is the bytes after the '@', not a path: nothing appeared
     * in the file system, and a path of that name is another socket. */
    notify_t p;
    char path[128];
    snprintf(path, sizeof(path), "/%s", name);
    assert_int_equal(notify_init(&p, path), 0);
    assert_int_equal(notify_send(&p, "READY=1"), TALLY_ESYS);
    expect_nothing(f->fd);
    notify_close(&p);
    notify_close(&n);
}

static void test_no_socket_is_a_no_op(void **state)
{
    (void)state;
    notify_t n;
    assert_int_equal(notify_init(&n, NULL), 0);
    assert_false(notify_enabled(&n));
    assert_int_equal(notify_send(&n, "READY=1"), 0);
    assert_int_equal(notify_watchdog_usec(&n), 0);
    notify_close(&n);

    assert_int_equal(notify_init(&n, ""), 0);
    assert_false(notify_enabled(&n));
    assert_int_equal(notify_send(&n, "READY=1"), 0);

    /* From the environment: a watchdog without a socket is no watchdog. */
    setenv("WATCHDOG_USEC", "10000000", 1);
    assert_int_equal(notify_init_env(&n), 0);
    assert_false(notify_enabled(&n));
    assert_int_equal(notify_watchdog_usec(&n), 0);
    assert_int_equal(notify_send(&n, "WATCHDOG=1"), 0);
    /* Even an oversized message is fine when nothing would be sent. */
    char big[NOTIFY_MESSAGE_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(notify_send(&n, "%s", big), 0);
    notify_close(&n);
}

static void test_bad_addresses(void **state)
{
    (void)state;
    notify_t n;
    char buf[256];

    assert_int_equal(notify_init(&n, "run/systemd/notify"), TALLY_EINVAL);
    assert_false(notify_enabled(&n));
    assert_int_equal(notify_send(&n, "READY=1"), 0);
    assert_int_equal(notify_init(&n, "@"), TALLY_EINVAL);
    assert_false(notify_enabled(&n));
    assert_int_equal(notify_init(&n, "vsock:2:1234"), TALLY_EINVAL);
    assert_false(notify_enabled(&n));

    /* A path: at most NOTIFY_ADDRESS_MAX bytes, the NUL takes the last. */
    buf[0] = '/';
    memset(buf + 1, 'p', (size_t)NOTIFY_ADDRESS_MAX - 1);
    buf[NOTIFY_ADDRESS_MAX] = '\0';
    assert_int_equal(notify_init(&n, buf), 0);
    assert_true(notify_enabled(&n));
    notify_close(&n);
    buf[NOTIFY_ADDRESS_MAX] = 'p';
    buf[NOTIFY_ADDRESS_MAX + 1] = '\0';
    assert_int_equal(notify_init(&n, buf), TALLY_ETOOLONG);
    assert_false(notify_enabled(&n));

    /* An abstract name: NOTIFY_ADDRESS_MAX bytes after the '@'. */
    buf[0] = '@';
    memset(buf + 1, 'a', (size_t)NOTIFY_ADDRESS_MAX);
    buf[NOTIFY_ADDRESS_MAX + 1] = '\0';
    assert_int_equal(notify_init(&n, buf), 0);
    assert_true(notify_enabled(&n));
    notify_close(&n);
    buf[NOTIFY_ADDRESS_MAX + 1] = 'a';
    buf[NOTIFY_ADDRESS_MAX + 2] = '\0';
    assert_int_equal(notify_init(&n, buf), TALLY_ETOOLONG);
    assert_false(notify_enabled(&n));

    /* From the environment, a bad address leaves notify disabled. */
    setenv("NOTIFY_SOCKET", "notify", 1);
    setenv("WATCHDOG_USEC", "10000000", 1);
    assert_int_equal(notify_init_env(&n), TALLY_EINVAL);
    assert_false(notify_enabled(&n));
    assert_int_equal(notify_watchdog_usec(&n), 0);
}

static void test_message_limits(void **state)
{
    fx_t *f = *state;
    f->fd = listen_at(f->path, false);
    int size = 64 * 1024;
    assert_int_equal(setsockopt(f->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
    notify_t n;
    assert_int_equal(notify_init(&n, f->path), 0);

    char *big = malloc(NOTIFY_MESSAGE_MAX + 2);
    assert_non_null(big);
    memcpy(big, "STATUS=", 7);
    memset(big + 7, 's', NOTIFY_MESSAGE_MAX - 7);
    big[NOTIFY_MESSAGE_MAX] = '\0';
    /* Exactly the limit goes, whole. */
    assert_int_equal(notify_send(&n, "%s", big), 0);
    expect_datagram(f->fd, big);
    /* One byte more goes nowhere. */
    assert_int_equal(notify_send(&n, "%sX", big), TALLY_ETOOLONG);
    expect_nothing(f->fd);
    free(big);

    assert_int_equal(notify_send(&n, "%s", ""), TALLY_EINVAL);
    expect_nothing(f->fd);
    notify_close(&n);
}

static void test_listener_comes_and_goes(void **state)
{
    fx_t *f = *state;
    notify_t n;
    assert_int_equal(notify_init(&n, f->path), 0);
    /* Nobody listens yet: an error, not a hang or a signal. */
    errno = 0;
    assert_int_equal(notify_send(&n, "READY=1"), TALLY_ESYS);
    assert_int_equal(errno, ENOENT);

    f->fd = listen_at(f->path, false);
    assert_int_equal(notify_send(&n, "READY=1"), 0);
    expect_datagram(f->fd, "READY=1");

    /* The manager re-executes: a new socket at the same path.  The address
     * is resolved on every send, so the new one hears us. */
    close(f->fd);
    unlink(f->path);
    f->fd = listen_at(f->path, false);
    assert_int_equal(notify_send(&n, "STATUS=still here"), 0);
    expect_datagram(f->fd, "STATUS=still here");
    notify_close(&n);
}

static void test_full_queue_does_not_block(void **state)
{
    fx_t *f = *state;
    f->fd = listen_at(f->path, false);
    notify_t n;
    assert_int_equal(notify_init(&n, f->path), 0);
    /* If a send blocked, the alarm would end the test with SIGALRM. */
    alarm(20);
    int rc = 0, sent = 0;
    while (sent < 100000 && (rc = notify_send(&n, "WATCHDOG=1\nSTATUS=%d", sent)) == 0)
        sent++;
    alarm(0);
    assert_int_equal(rc, TALLY_EAGAIN);
    assert_true(sent > 0);
    /* What was accepted arrives, in order. */
    expect_datagram(f->fd, "WATCHDOG=1\nSTATUS=0");
    notify_close(&n);
}

static void test_env_watchdog(void **state)
{
    fx_t *f = *state;
    f->fd = listen_at(f->path, false);
    char pid[32];
    notify_t n;

    setenv("NOTIFY_SOCKET", f->path, 1);
    assert_int_equal(notify_init_env(&n), 0);
    assert_true(notify_enabled(&n));
    assert_int_equal(notify_watchdog_usec(&n), 0);
    assert_int_equal(notify_send(&n, "READY=1"), 0);
    expect_datagram(f->fd, "READY=1");
    notify_close(&n);

    /* WatchdogSec=10s, for this process. */
    setenv("WATCHDOG_USEC", "10000000", 1);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(notify_init_env(&n), 0);
    assert_int_equal(notify_watchdog_usec(&n), 10000000);
    notify_close(&n);
    assert_int_equal(notify_watchdog_usec(&n), 0);

    /* No WATCHDOG_PID: the interval is ours. */
    unsetenv("WATCHDOG_PID");
    assert_int_equal(notify_init_env(&n), 0);
    assert_int_equal(notify_watchdog_usec(&n), 10000000);
    notify_close(&n);

    /* For another process (our parent's, inherited): not ours. */
    snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(notify_init_env(&n), 0);
    assert_true(notify_enabled(&n));
    assert_int_equal(notify_watchdog_usec(&n), 0);
    notify_close(&n);

    /* Malformed variables: an error, yet notifications still work. */
    static const char *const bad_usec[] = {
        "abc", "0", "-5", "10s", " 10", "", "99999999999999999999999"};
    unsetenv("WATCHDOG_PID");
    for (size_t i = 0; i < sizeof(bad_usec) / sizeof(bad_usec[0]); i++) {
        setenv("WATCHDOG_USEC", bad_usec[i], 1);
        int want = bad_usec[i][0] == '\0' ? 0 : TALLY_EINVAL;
        assert_int_equal(notify_init_env(&n), want);
        assert_true(notify_enabled(&n));
        assert_int_equal(notify_watchdog_usec(&n), 0);
        assert_int_equal(notify_send(&n, "STATUS=%zu", i), 0);
        char want_msg[32];
        snprintf(want_msg, sizeof(want_msg), "STATUS=%zu", i);
        expect_datagram(f->fd, want_msg);
        notify_close(&n);
    }
    setenv("WATCHDOG_USEC", "10000000", 1);
    setenv("WATCHDOG_PID", "12x", 1);
    assert_int_equal(notify_init_env(&n), TALLY_EINVAL);
    assert_true(notify_enabled(&n));
    assert_int_equal(notify_watchdog_usec(&n), 0);
    notify_close(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_path_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abstract_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_socket_is_a_no_op, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_comes_and_goes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_does_not_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_watchdog, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
