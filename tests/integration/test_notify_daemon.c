/* tallyd speaks systemd's notify protocol: this test plays systemd's part
 * with a datagram socket in the harness's temporary directory. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

typedef struct fx {
    harness_t h;
    int fd;
    char path[HARNESS_PATH_MAX];
} fx_t;

static int setup(void **state)
{
    fx_t *f = test_calloc(1, sizeof(*f));
    assert_int_equal(harness_init(&f->h), 0);
    snprintf(f->path, sizeof(f->path), "%s/notify", f->h.dir);
    f->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(f->fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_true(strlen(f->path) < sizeof(a.sun_path));
    memcpy(a.sun_path, f->path, strlen(f->path) + 1);
    assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setenv("NOTIFY_SOCKET", f->path, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = harness_finish(&f->h);
    harness_cleanup(&f->h);
    close(f->fd);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("TALLYD_TEST_STALL_MS");
    test_free(f);
    return rc;
}

/* Wait up to timeout_ms for a datagram containing needle; datagrams
 * before it are counted in *skipped_watchdogs when they are WATCHDOG=1.
 * Returns the time waited in ms, or -1. */
static int64_t wait_for(fx_t *f, const char *needle, int timeout_ms, int *watchdogs)
{
    int64_t t0 = harness_mono_ms();
    for (;;) {
        int64_t left = timeout_ms - (harness_mono_ms() - t0);
        if (left <= 0)
            return -1;
        struct pollfd p = {f->fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char buf[4097];
        ssize_t n = recv(f->fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        if (watchdogs && strstr(buf, "WATCHDOG=1"))
            (*watchdogs)++;
        if (strstr(buf, needle))
            return harness_mono_ms() - t0;
    }
}

static void test_ready_reload_stop(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, "[township gaoguan]\n", NULL), 0);
    assert_true(wait_for(f, "READY=1", 5000, NULL) >= 0);
    /* A reload: RELOADING=1, then READY=1 again. */
    assert_int_equal(kill(f->h.pid, SIGHUP), 0);
    assert_true(wait_for(f, "RELOADING=1", 5000, NULL) >= 0);
    assert_true(wait_for(f, "READY=1", 5000, NULL) >= 0);
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    assert_true(wait_for(f, "STOPPING=1", 1000, NULL) >= 0);
}

/* A start that fails (the state directory is a file) leaves a STATUS
 * saying so, not "stopping: flushing the journal" (systemctl status
 * showed that after a failed start). */
static void test_failed_start_status(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_write_file(&f->h, "state", "not a directory\n", NULL, 0), 0);
    assert_int_not_equal(harness_start(&f->h, NULL, NULL), 0);
    assert_true(wait_for(f, "STATUS=the start failed (exit status 1): see the log", 5000, NULL) >=
                0);
    harness_stop(&f->h, SIGTERM); /* reaps it: exit status 1 is what this test expects */
}

/* WATCHDOG_USEC=400000: a ping every 200 ms. */
static void test_watchdog_rate(void **state)
{
    fx_t *f = *state;
    setenv("WATCHDOG_USEC", "400000", 1);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    assert_true(wait_for(f, "READY=1", 5000, NULL) >= 0);
    int n = 0;
    int64_t t0 = harness_mono_ms();
    while (harness_mono_ms() - t0 < 2000)
        wait_for(f, "\x01never", 2000 - (int)(harness_mono_ms() - t0), &n);
    /* 10 expected in 2 s; allow for a loaded machine, not for silence or
     * a ping per loop iteration. */
    assert_in_range(n, 6, 12);
}

/* A stalled loop sends no WATCHDOG=1 while it is stuck: the first tick
 * stalls the loop for 1.5 s before it pings, where a healthy loop pings
 * after 200 ms (test_watchdog_rate).  Timed from the start, not from
 * READY=1: on a slow run (valgrind) the first tick may come before the
 * daemon is ready, and READY=1 then waits out the stall too. */
static void test_stalled_loop_is_silent(void **state)
{
    fx_t *f = *state;
    setenv("WATCHDOG_USEC", "400000", 1);
    setenv("TALLYD_TEST_STALL_MS", "1500", 1);
    int64_t t0 = harness_mono_ms();
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    assert_true(wait_for(f, "READY=1", 60000, NULL) >= 0);
    assert_true(wait_for(f, "WATCHDOG=1", 60000, NULL) >= 0);
    int64_t silent = harness_mono_ms() - t0;
    if (silent < 1500)
        fail_msg("the first WATCHDOG=1 came %lld ms after the start, during the 1500 ms stall",
                 (long long)silent);
    /* Then the pings resume at their rate. */
    int64_t next = wait_for(f, "WATCHDOG=1", 5000, NULL);
    assert_true(next >= 0 && next < 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ready_reload_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_start_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_loop_is_silent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
