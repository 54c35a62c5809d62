/* Durability of the real tallyd under load: four client processes (libtally
 * with spools, townships t1..t4) push known figures while the daemon is
 * killed with SIGKILL at random moments, stopped with SIGTERM, or takes
 * checkpoints and compacts its journal; afterwards the county and township
 * totals must equal exactly what the clients pushed: nothing lost, nothing
 * counted twice.
 *
 * The crash test's schedule comes from a seed, printed at the start and in
 * every failure message; TALLY_DUR_SEED=<n> repeats a run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_durability_common.h"

#define CRASH_SUBS 3000 /* submissions per client in the crash test */
#define CRASH_PACE 2    /* ms between them: >= 6 s of load, longer than the kills */
#define TERM_SUBS  300
#define TERM_PACE  10
#define CKP_SUBS   250 /* 20 ms apart: ~5 s of load */
#define CKP_PACE   20

static unsigned pick_seed(void)
{
    const char *env = getenv("TALLY_DUR_SEED");
    if (env != NULL && env[0] != '\0')
        return (unsigned)strtoul(env, NULL, 10);
    return (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
}

static unsigned sum_duplicates(const dur_result_t *res, size_t n)
{
    unsigned d = 0;
    for (size_t i = 0; i < n; i++)
        d += res[i].duplicate;
    return d;
}

/* 1. SIGKILL at random moments while four clients push; the clients retry
 * from their spools until everything is acknowledged.  conf: the daemon's
 * configuration (NULL: the defaults, sync = always), label: what it is. */
static void crash_under_load(dur_fx_t *f, const char *conf, const char *label)
{
    f->seed = pick_seed();
    f->conf = conf;
    print_message("crash test (%s): seed %u (TALLY_DUR_SEED=%u repeats this schedule)\n", label,
                  f->seed, f->seed);
    assert_int_equal(harness_start(&f->h, conf, NULL), 0);
    for (unsigned town = 1; town <= DUR_TOWNS; town++)
        dur_spawn_client(f, town, CRASH_SUBS, CRASH_PACE);

    unsigned rng = f->seed;
    int kills = 4 + rand_r(&rng) % 3, done = 0;
    for (int k = 0; k < kills; k++) {
        dur_sleep_ms(100 + rand_r(&rng) % 601);
        if (!dur_clients_running(f))
            break;
        dur_kill_restart(f);
        done++;
    }
    if (done < 4)
        fail_msg("only %d of %d kills happened while the clients were pushing (seed %u): the "
                 "load is too short for this machine",
                 done, kills, f->seed);

    dur_result_t res[DUR_MAX_KIDS];
    dur_wait_clients(f, res, 60000);
    dur_check_results(f, res, f->nkids, CRASH_SUBS);
    dur_check_totals(f, DUR_TOWNS, CRASH_SUBS, "after the SIGKILLs");

    /* The whole journal, torn tails cut, replays to the same totals. */
    int st = -1;
    assert_int_equal(harness_restart(&f->h, &st), 0);
    assert_int_equal(st, 0);
    dur_check_totals(f, DUR_TOWNS, CRASH_SUBS, "after a clean restart");
    print_message("crash test: %d kills, %u resends answered duplicate, %zu torn tails cut\n", done,
                  sum_duplicates(res, f->nkids),
                  harness_count_in(harness_log(&f->h), "torn record at offset"));
}

static void test_crash_under_load(void **state)
{
    crash_under_load(*state, NULL, "sync = always");
}

/* The same under sync = interval, where the event loop writes the journal
 * itself and acknowledges once write() returns (journal.h, "Inline
 * groups"): a crash of tallyd alone must lose nothing acknowledged, the
 * records being in the kernel's page cache. */
static void test_crash_under_load_interval(void **state)
{
    crash_under_load(*state, "[journal]\nsync = interval\nsync_interval = 1s\n", "sync = interval");
}

/* 6. SIGTERM while four clients push: exit status 0 each time, and after
 * the restarts the totals equal everything the clients had acknowledged
 * (which, since they retry until done, is everything they pushed). */
static void test_sigterm_under_load(void **state)
{
    dur_fx_t *f = *state;
    f->seed = pick_seed();
    print_message("sigterm test: seed %u\n", f->seed);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    for (unsigned town = 1; town <= DUR_TOWNS; town++)
        dur_spawn_client(f, town, TERM_SUBS, TERM_PACE);

    unsigned rng = f->seed;
    for (int round = 0; round < 2; round++) {
        dur_sleep_ms(500 + rand_r(&rng) % 401);
        if (!dur_clients_running(f))
            fail_msg("the clients finished before SIGTERM %d (seed %u)", round + 1, f->seed);
        int st = harness_stop(&f->h, SIGTERM);
        if (st != 0) {
            dur_dump_log_tail(f, 4000);
            fail_msg("tallyd exited with status %d after SIGTERM under load (seed %u)", st,
                     f->seed);
        }
        assert_int_equal(harness_count_in(harness_log(&f->h), "SIGTERM: stopping"),
                         (size_t)round + 1);
        dur_sleep_ms(200); /* the clients keep resending into the void */
        assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    }

    dur_result_t res[DUR_MAX_KIDS];
    dur_wait_clients(f, res, 60000);
    dur_check_results(f, res, f->nkids, TERM_SUBS);
    dur_check_totals(f, DUR_TOWNS, TERM_SUBS, "after two SIGTERMs under load");
    int st = -1;
    assert_int_equal(harness_restart(&f->h, &st), 0);
    assert_int_equal(st, 0);
    dur_check_totals(f, DUR_TOWNS, TERM_SUBS, "after a clean restart");
}

/* Generation of a "journal-<hex>.tj" or "state-<hex>.ckp" name. */
static uint64_t name_gen(const char *name)
{
    const char *dash = strchr(name, '-');
    return dash ? strtoull(dash + 1, NULL, 16) : 0;
}

/* 4. Checkpoints and journal compaction while clients push for ~5 s, with
 * snapshot_interval 1s and snapshot_every_records 100, and two SIGKILLs
 * early in the load; then a crash and a clean restart must both give the
 * exact totals, the state directory must hold one or two checkpoints and
 * no journal segment older than the oldest of them. */
static void test_checkpoint_under_load(void **state)
{
    dur_fx_t *f = *state;
    f->seed = pick_seed();
    f->conf = "[journal]\n"
              "sync = always\n"
              "snapshot_interval = 1s\n"
              "snapshot_every_records = 100\n";
    print_message("checkpoint test: seed %u\n", f->seed);
    /* GCC 12's AddressSanitizer does not lock its allocator around fork():
     * a checkpoint's child that mallocs while another thread held a lock
     * of it waits for good (once in CI: no checkpoint for 30 s, then this
     * test failed).  glibc's malloc is safe across fork; under the
     * sanitizers a child this state takes milliseconds to build is given
     * 5 s before it is killed and the next checkpoint taken. */
    setenv("TALLYD_TEST_CHECKPOINT_CHILD_MAX_MS", "5000", 1);
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    for (unsigned town = 1; town <= DUR_TOWNS; town++)
        dur_spawn_client(f, town, CKP_SUBS, CKP_PACE);

    /* Two crashes in the first half of the load, while checkpoints are
     * being taken; the second half lets compaction catch up. */
    static char ckp[DUR_MAX_FILES][HARNESS_PATH_MAX], seg[DUR_MAX_FILES][HARNESS_PATH_MAX];
    bool saw_ckp = false;
    unsigned rng = f->seed;
    int64_t start = harness_mono_ms();
    int64_t kill_at[2] = {start + 700 + rand_r(&rng) % 600, start + 1800 + rand_r(&rng) % 600};
    int kills = 0;
    while (dur_clients_running(f)) {
        dur_sleep_ms(50);
        saw_ckp = saw_ckp || dur_list(f->h.state_dir, "state-", ".ckp", ckp, DUR_MAX_FILES) > 0;
        if (kills < 2 && harness_mono_ms() >= kill_at[kills]) {
            dur_kill_restart(f);
            kills++;
        }
    }
    assert_int_equal(kills, 2);
    dur_result_t res[DUR_MAX_KIDS];
    dur_wait_clients(f, res, 60000);
    dur_check_results(f, res, f->nkids, CKP_SUBS);
    dur_check_totals(f, DUR_TOWNS, CKP_SUBS, "after the load");

    /* Let a last checkpoint and its compaction finish, then look.  The
     * compaction removes old segments once the history database holds
     * their records too (a writer stores it every half second, and the
     * compaction looks again every second): wait up to 30 s for that (it
     * took longer than 10 s once in CI, under the sanitizers beside the
     * limits test's floods; the wait ends as soon as it is done). */
    /* With a single checkpoint the segments before it stay (were it found
     * damaged, they would be all there is), and a load whose tail after
     * the second restart was too short for a second checkpoint (seen
     * under the sanitizers: one in six runs) leaves nothing that would
     * make one: a sample of a metric the totals do not count gives the
     * next checkpoint its records. */
    harness_client_t nudge;
    assert_int_equal(harness_client_open(&f->h, &nudge), 0);
    uint64_t nudges = 0;
    size_t nckp = 0, nseg = 0;
    for (int tries = 0; tries < 60; tries++) {
        dur_sleep_ms(tries == 0 ? 1500 : 500);
        nckp = dur_list(f->h.state_dir, "state-", ".ckp", ckp, DUR_MAX_FILES);
        nseg = dur_list(f->h.state_dir, "journal-", ".tj", seg, DUR_MAX_FILES);
        if (nckp == 0 || nseg == 0 || name_gen(seg[0]) >= name_gen(ckp[0]))
            break;
        if (nckp == 1) {
            harness_ack_t ack = {0};
            char why[256];
            if (harness_submit_one(&nudge, ++nudges, "t1", harness_now_ms(), "ckp.nudge", 1,
                                   &ack) != 0 ||
                ack.type != PROTO_ACK || ack.code != 0)
                fail_msg("the nudge was not accepted: %s", harness_ack_str(&ack, why, sizeof why));
        }
    }
    harness_client_close(&nudge);
    saw_ckp = saw_ckp || nckp > 0;

    dur_kill_restart(f);
    dur_check_totals(f, DUR_TOWNS, CKP_SUBS, "after SIGKILL with checkpoints");
    int st = -1;
    assert_int_equal(harness_restart(&f->h, &st), 0);
    assert_int_equal(st, 0);
    dur_check_totals(f, DUR_TOWNS, CKP_SUBS, "after a clean restart with checkpoints");

    if (!saw_ckp) {
        /* The lead removes this skip once checkpoints are wired in. */
        print_message("checkpoints not implemented: no state-*.ckp ever appeared in %s "
                      "(%zu journal segments); totals were exact\n",
                      f->h.state_dir, nseg);
        skip();
    }
    print_message("checkpoint test: %zu checkpoints (%s .. %s), %zu journal segments (%s .. %s), "
                  "%zu checkpoints written, %" PRIu64 " nudges\n",
                  nckp, nckp ? ckp[0] : "-", nckp ? ckp[nckp - 1] : "-", nseg, nseg ? seg[0] : "-",
                  nseg ? seg[nseg - 1] : "-",
                  harness_count_in(harness_log(&f->h), "checkpoint written"), nudges);
    /* Images are built by a child process (compact.h), so the loop goes on
     * serving meanwhile; the totals above came back through them. */
    if (harness_count_in(harness_log(&f->h), "by a child process") == 0) {
        dur_dump_log_tail(f, 6000);
        fail_msg("no checkpoint was built by a child process (compact.h): see %s", f->h.log_path);
    }
    if (nckp < 1 || nckp > 2)
        fail_msg("expected 1 or 2 checkpoint files (the newest and its predecessor), found %zu",
                 nckp);
    uint64_t min_ckp = name_gen(ckp[0]), max_ckp = name_gen(ckp[nckp - 1]);
    bool has_newest = false;
    for (size_t i = 0; i < nseg; i++) {
        uint64_t g = name_gen(seg[i]);
        if (g == 1)
            fail_msg("journal segment %s is still there after %zu checkpoints: the journal was "
                     "not compacted",
                     seg[i], nckp);
        if (g < min_ckp)
            fail_msg("journal segment %s is older than the oldest checkpoint kept (%s): it "
                     "should have been removed",
                     seg[i], ckp[0]);
        has_newest = has_newest || g == max_ckp;
    }
    if (!has_newest)
        fail_msg("no journal segment of the newest checkpoint's generation %016" PRIx64
                 " (%zu segments)",
                 max_ckp, nseg);
    unsetenv("TALLYD_TEST_CHECKPOINT_CHILD_MAX_MS");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--dur-client") == 0)
        return dur_client_main(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crash_under_load, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_crash_under_load_interval, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_under_load, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_under_load, dur_setup, dur_teardown),
    };
    /* TALLY_DUR_TEST=<glob> runs only the matching tests. */
    if (getenv("TALLY_DUR_TEST") != NULL)
        cmocka_set_test_filter(getenv("TALLY_DUR_TEST"));
    return cmocka_run_group_tests_name("durability under load", tests, NULL, NULL);
}
