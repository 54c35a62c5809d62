/* Checkpoints are built by a child process (compact.h): the loop serves
 * while the child works, a child that dies costs nothing but that
 * checkpoint, and a stop does not wait for a child still building.
 * TALLYD_TEST_CHECKPOINT_CHILD_MS makes each child wait 3 s before it
 * builds, so that the tests can find it and act while it lives. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define CHILD_MS 3000

static const char *const config = "[journal]\n"
                                  "snapshot_interval = 1s\n";

static int setup(void **state)
{
    harness_t *h = test_calloc(1, sizeof(*h));
    assert_int_equal(harness_init(h), 0);
    setenv("TALLYD_TEST_CHECKPOINT_CHILD_MS", "3000", 1);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    harness_t *h = *state;
    int rc = harness_finish(h);
    harness_cleanup(h);
    unsetenv("TALLYD_TEST_CHECKPOINT_CHILD_MS");
    test_free(h);
    return rc;
}

/* The pid of a child of parent (from /proc/PID/stat), or 0. */
static pid_t child_of(pid_t parent)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    pid_t found = 0;
    for (struct dirent *de; found == 0 && (de = readdir(d)) != NULL;) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* "pid (comm) state ppid ...": comm may hold spaces; skip to ')' */
        const char *p = strrchr(buf, ')');
        char st;
        long ppid;
        if (p != NULL && sscanf(p + 1, " %c %ld", &st, &ppid) == 2 && ppid == parent && st != 'Z')
            found = (pid_t)pid;
    }
    closedir(d);
    return found;
}

/* Wait up to timeout_ms for the daemon to fork a checkpoint child. */
static pid_t wait_child(harness_t *h, int timeout_ms)
{
    int64_t t0 = harness_mono_ms();
    while (harness_mono_ms() - t0 < timeout_ms) {
        pid_t c = child_of(h->pid);
        if (c > 0)
            return c;
        usleep(20000);
    }
    return 0;
}

/* Start the daemon, submit one figure (seq 1) for t1 on c, and wait for
 * the checkpoint child it brings.  Returns the child's pid. */
static pid_t start_until_child(harness_t *h, harness_client_t *c, const char *metric, int64_t value,
                               int64_t now)
{
    assert_int_equal(harness_start(h, config, NULL), 0);
    assert_int_equal(harness_client_open(h, c), 0);
    harness_ack_t ack;
    assert_int_equal(harness_submit_one(c, 1, "t1", now, metric, value, &ack), 0);
    pid_t child = wait_child(h, 5000);
    if (child == 0)
        fail_msg("no checkpoint child appeared within 5 s; log:\n%s", harness_log(h));
    return child;
}

static int64_t total_of(harness_client_t *c, const char *metric, const char *scope)
{
    harness_table_t t;
    harness_table_init(&t);
    assert_int_equal(harness_snapshot(c, "", &t), 0);
    harness_value_t v = {0};
    bool ok = harness_table_get(&t, metric, scope, "total", &v);
    harness_table_free(&t);
    return ok && v.present ? v.num : -1;
}

/* While a child builds, the loop answers at once; a child killed is
 * logged and the next checkpoint is built by a new child. */
static void test_child_killed(void **state)
{
    harness_t *h = *state;
    harness_client_t c;
    harness_ack_t ack;
    int64_t now = harness_now_ms();
    pid_t child = start_until_child(h, &c, "disputes_screened", 5, now);
    /* The child sleeps CHILD_MS: requests meanwhile are answered at once. */
    int64_t t0 = harness_mono_ms();
    uint64_t seq;
    assert_int_equal(harness_ping(&c, &seq), 0);
    assert_int_equal(harness_submit_one(&c, 2, "t2", now, "disputes_screened", 7, &ack), 0);
    int64_t took = harness_mono_ms() - t0;
    if (took > CHILD_MS / 2)
        fail_msg("a PING and a submission took %lld ms while the checkpoint child lived",
                 (long long)took);
    assert_int_equal(kill(child, SIGKILL), 0);
    assert_int_equal(harness_wait_log(h, "its process was killed by signal 9", 5000), 0);
    /* The daemon goes on, and a new figure brings a new checkpoint. */
    assert_int_equal(harness_submit_one(&c, 3, "t3", now, "disputes_screened", 11, &ack), 0);
    assert_int_equal(harness_wait_log(h, "by a child process", 4 * CHILD_MS), 0);
    assert_int_equal(total_of(&c, "disputes_screened", ""), 23);
    harness_client_close(&c);
    /* What the checkpoint and the journal hold comes back. */
    unsetenv("TALLYD_TEST_CHECKPOINT_CHILD_MS");
    int st = -1;
    assert_int_equal(harness_restart(h, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(harness_client_open(h, &c), 0);
    assert_int_equal(total_of(&c, "disputes_screened", ""), 23);
    assert_int_equal(total_of(&c, "disputes_screened", "t2"), 7);
    harness_client_close(&c);
}

/* A stop while a child builds kills it, writes the final checkpoint
 * itself without waiting for the child, and leaves no process behind. */
static void test_stop_during_child(void **state)
{
    harness_t *h = *state;
    harness_client_t c;
    pid_t child = start_until_child(h, &c, "leaflets_distributed", 40, harness_now_ms());
    harness_client_close(&c);
    int64_t t0 = harness_mono_ms();
    assert_int_equal(harness_stop(h, SIGTERM), 0);
    int64_t took = harness_mono_ms() - t0;
    if (took >= CHILD_MS)
        fail_msg("the stop took %lld ms: it waited for the checkpoint child", (long long)took);
    errno = 0;
    if (kill(child, 0) == 0 || errno != ESRCH)
        fail_msg("checkpoint child %d still exists after the stop", (int)child);
    assert_non_null(strstr(harness_log(h), "final checkpoint written"));
    unsetenv("TALLYD_TEST_CHECKPOINT_CHILD_MS");
    assert_int_equal(harness_start(h, config, NULL), 0);
    assert_int_equal(harness_client_open(h, &c), 0);
    assert_int_equal(total_of(&c, "leaflets_distributed", "t1"), 40);
    harness_client_close(&c);
}

/* Once a child has ended, the loop makes the engine's pages writable
 * again (compact.c, rewarm()), a slice at every turn; the figures are
 * untouched, and the next checkpoint comes after it. */
static void test_pages_writable_after_child(void **state)
{
    harness_t *h = *state;
    unsetenv("TALLYD_TEST_CHECKPOINT_CHILD_MS");
    assert_int_equal(harness_start(h,
                                   "[tallyd]\nlog_level = debug\n"
                                   "[journal]\nsnapshot_interval = 1s\n",
                                   NULL),
                     0);
    harness_client_t c;
    harness_ack_t ack;
    int64_t now = harness_now_ms();
    assert_int_equal(harness_client_open(h, &c), 0);
    assert_int_equal(harness_submit_one(&c, 1, "t1", now, "safety_drills", 3, &ack), 0);
    assert_int_equal(harness_wait_log(h, "by a child process", 5000), 0);
    assert_int_equal(harness_wait_log(h, "blocks writable again", 5000), 0);
    assert_int_equal(harness_submit_one(&c, 2, "t2", now, "safety_drills", 4, &ack), 0);
    int64_t t0 = harness_mono_ms();
    while (harness_count_in(harness_log(h), "by a child process") < 2 &&
           harness_mono_ms() - t0 < 5000)
        usleep(50000);
    if (harness_count_in(harness_log(h), "by a child process") < 2)
        fail_msg("no second checkpoint after the pages were made writable; log:\n%s",
                 harness_log(h));
    assert_int_equal(total_of(&c, "safety_drills", ""), 7);
    assert_int_equal(total_of(&c, "safety_drills", "t1"), 3);
    harness_client_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_child_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_during_child, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pages_writable_after_child, setup, teardown),
    };
    return cmocka_run_group_tests_name("checkpoint child", tests, NULL, NULL);
}
