/* Durability of the real tallyd when its state directory is shared or
 * missing pieces: a second daemon on the same directory is refused and
 * changes nothing; a deleted journal segment, or a fallback checkpoint the
 * journal does not continue, stops the start until the operator accepts
 * the loss; a damaged segment header is reported as damage. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "test_durability_common.h"

/* Submit n figures of 1 to dur.m0 for t1, seqs first.., from client c. */
static void submit_ones(harness_client_t *c, uint64_t first, unsigned n)
{
    for (uint64_t seq = first; seq < first + n; seq++) {
        harness_ack_t a;
        char buf[800];
        assert_int_equal(harness_submit_one(c, seq, "t1", harness_now_ms(), "dur.m0", 1, &a), 0);
        if (a.type != PROTO_ACK || a.status != PROTO_ACK_ACCEPTED)
            fail_msg("seq %" PRIu64 ": %s", seq, harness_ack_str(&a, buf, sizeof(buf)));
    }
}

/* The state directory as names, sizes and modification times, one line a
 * file, for comparing before and after. */
static void describe_dir(const char *dir, char *out, size_t cap)
{
    char names[DUR_MAX_FILES][HARNESS_PATH_MAX];
    size_t n = dur_list(dir, "", "", names, DUR_MAX_FILES), used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < cap; i++) {
        char path[2 * HARNESS_PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        used += (size_t)snprintf(out + used, cap - used, "%s %lld %lld.%09ld\n", names[i],
                                 (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                                 st.st_mtim.tv_nsec);
    }
}

/* Two daemons on one state directory: the second is refused before it
 * reads or writes anything there, whether it could bind its sockets (other
 * endpoints) or not (the same ones), and the first keeps every figure
 * across a crash. */
static void test_second_daemon_refused(void **state)
{
    dur_fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    submit_ones(&c, 1, 50);
    static char before[16384], after[16384], out[16384];
    /* The live daemon stores its history within a second or so (longer
     * under valgrind): wait until it has, so that what changes afterwards
     * can only be the refused daemons' doing. */
    describe_dir(f->h.state_dir, before, sizeof(before));
    int64_t settle_by = harness_mono_ms() + 30000;
    for (;;) {
        usleep(1200 * 1000);
        describe_dir(f->h.state_dir, after, sizeof(after));
        if (strcmp(before, after) == 0)
            break;
        if (harness_mono_ms() > settle_by)
            fail_msg("the state directory kept changing for 30 s without submissions");
        memcpy(before, after, sizeof(before));
    }
    char req2[HARNESS_PATH_MAX], pub2[HARNESS_PATH_MAX];
    snprintf(req2, sizeof(req2), "ipc://%s/req2", f->h.dir);
    snprintf(pub2, sizeof(pub2), "ipc://%s/pub2", f->h.dir);
    const char *same[] = {"-r", f->h.req_endpoint, "-p", f->h.pub_endpoint,
                          "-s", f->h.state_dir,    NULL};
    const char *other[] = {"-r", req2, "-p", pub2, "-s", f->h.state_dir, NULL};
    const char *const *runs[] = {same, other};
    char want[HARNESS_PATH_MAX + 128];
    snprintf(want, sizeof(want), "the state directory %s is in use by another tallyd (PID %d",
             f->h.state_dir, (int)f->h.pid);
    for (int i = 0; i < 2; i++) {
        int st = harness_run(runs[i], out, sizeof(out), 10000);
        if (st != 1 || strstr(out, want) == NULL)
            fail_msg("a second tallyd (%s endpoints): status %d, expected 1 and '%s':\n%s",
                     i == 0 ? "the same" : "other", st, want, out);
    }
    describe_dir(f->h.state_dir, after, sizeof(after));
    if (strcmp(before, after) != 0)
        fail_msg("the refused daemons changed the state directory:\nbefore:\n%safter:\n%s", before,
                 after);
    submit_ones(&c, 51, 50);
    harness_client_close(&c);
    dur_kill_restart(f);
    dur_expect_m0(f, 100, "after a crash, with two refused starts in between");
}

/* Submissions until the state directory holds want checkpoints. */
static void fill_until_checkpoints(dur_fx_t *f, harness_client_t *c, uint64_t *seq, size_t want)
{
    char names[DUR_MAX_FILES][HARNESS_PATH_MAX];
    int64_t deadline = harness_mono_ms() + 20000;
    while (dur_list(f->h.state_dir, "state-", ".ckp", names, DUR_MAX_FILES) < want) {
        if (harness_mono_ms() > deadline)
            fail_msg("no %zu checkpoints after 20 s", want);
        submit_ones(c, *seq, 5);
        *seq += 5;
        dur_sleep_ms(200);
    }
}

static const char ckpt_conf[] = "[journal]\nsnapshot_every_records = 10\n";

/* The newest journal segment deleted after a crash: the checkpoint names
 * it, so tallyd refuses to start until told to accept the loss, then says
 * how much it lost, and the next start is clean. */
static void test_deleted_segment(void **state)
{
    dur_fx_t *f = *state;
    f->conf = ckpt_conf;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    uint64_t seq = 1;
    fill_until_checkpoints(f, &c, &seq, 1);
    submit_ones(&c, seq, 7); /* after the checkpoint: in the newest segment only */
    seq += 7;
    harness_client_close(&c);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    char segs[DUR_MAX_FILES][HARNESS_PATH_MAX];
    size_t n = dur_list(f->h.state_dir, "journal-", ".tj", segs, DUR_MAX_FILES);
    assert_true(n >= 1);
    char path[2 * HARNESS_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", f->h.state_dir, segs[n - 1]);
    assert_int_equal(unlink(path), 0);

    assert_int_equal(harness_start(&f->h, f->conf, NULL), TALLY_ECLOSED);
    assert_int_equal(f->h.last_status, 1);
    char want[2 * HARNESS_PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s, where the journal after checkpoint", path);
    dur_expect_log(f, "refusing to start with an unknown number of acknowledged journal records");
    dur_expect_log(f, want);
    dur_expect_log(f, "--accept-loss");

    const char *accept[] = {"--accept-loss", NULL};
    assert_int_equal(harness_start(&f->h, f->conf, accept), 0);
    dur_expect_log(f, "starting with an unknown number of acknowledged journal records lost");
    /* What the checkpoint covered is there; the 7 after it are not. */
    harness_client_t q;
    assert_int_equal(harness_client_open(&f->h, &q), 0);
    assert_int_equal(harness_snapshot(&q, "", &f->t), 0);
    harness_client_close(&q);
    harness_value_t v;
    assert_true(harness_table_get(&f->t, "dur.m0", "t1", "total", &v) && v.present);
    assert_true(v.num >= 10 && v.num <= (int64_t)seq - 1 - 7);
    int64_t kept = v.num;
    /* Without the option again: the loss is behind the checkpoint taken. */
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    dur_expect_m0(f, kept, "after the loss was accepted");
}

/* The newest checkpoint damaged and the segment the older one names
 * deleted: the fallback meets a journal that begins later, and the start
 * is refused with the missing positions named. */
static void test_fallback_meets_gap(void **state)
{
    dur_fx_t *f = *state;
    f->conf = ckpt_conf;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    uint64_t seq = 1;
    fill_until_checkpoints(f, &c, &seq, 2);
    harness_client_close(&c);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    char ckps[DUR_MAX_FILES][HARNESS_PATH_MAX], segs[DUR_MAX_FILES][HARNESS_PATH_MAX];
    size_t nc = dur_list(f->h.state_dir, "state-", ".ckp", ckps, DUR_MAX_FILES);
    size_t ns = dur_list(f->h.state_dir, "journal-", ".tj", segs, DUR_MAX_FILES);
    assert_int_equal(nc, 2);
    assert_true(ns >= 2);
    char path[2 * HARNESS_PATH_MAX];
    /* Damage the newest checkpoint... */
    snprintf(path, sizeof(path), "%s/%s", f->h.state_dir, ckps[1]);
    size_t len;
    uint8_t *buf = dur_read_all(path, &len);
    buf[len / 2] ^= 0x40;
    dur_write_all(path, buf, len);
    free(buf);
    /* ... and delete the segment the older one continues in (same gen). */
    char seg[HARNESS_PATH_MAX];
    snprintf(seg, sizeof(seg), "journal-%.16s.tj", ckps[0] + strlen("state-"));
    snprintf(path, sizeof(path), "%s/%s", f->h.state_dir, seg);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(harness_start(&f->h, f->conf, NULL), TALLY_ECLOSED);
    assert_int_equal(f->h.last_status, 1);
    dur_expect_log(f, "skipped damaged checkpoint");
    dur_expect_log(f, "refusing to start with");
    dur_expect_log(f, "are missing: the journal begins at");
}

/* A byte flipped in a segment header's version field is damage, not a
 * newer format. */
static void test_damaged_header(void **state)
{
    dur_fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    submit_ones(&c, 1, 3);
    harness_client_close(&c);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    char path[HARNESS_PATH_MAX];
    dur_only_segment(f, path, sizeof(path));
    size_t len;
    uint8_t *buf = dur_read_all(path, &len);
    buf[10] ^= 0x5A; /* inside the version */
    dur_write_all(path, buf, len);
    free(buf);
    assert_int_equal(harness_start(&f->h, NULL, NULL), TALLY_ECLOSED);
    dur_expect_log(f, "header checksum mismatch");
    dur_expect_log(f, "the header is damaged");
    if (strstr(harness_log(&f->h), "is newer") != NULL)
        fail_msg("a damaged header was reported as a newer format:\n%s", harness_log(&f->h));
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--dur-client") == 0)
        return dur_client_main(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_second_daemon_refused, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_deleted_segment, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_fallback_meets_gap, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_header, dur_setup, dur_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
