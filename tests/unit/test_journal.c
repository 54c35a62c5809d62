/* Unit tests of CRC-32C and of writing the journal: appends, group commit,
 * back-pressure, sync policies, write and sync failures and close: real
 * files in a mkdtemp directory, a real libuv loop, and I/O hooks that
 * inject failures.  Damage, segments and replay speed are in
 * test_journal_replay.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "journal.h"
#include "journal_test_util.h"

/* ---- Helpers of these tests ---- */

static bool p_errors(const fx_t *f, uint64_t n)
{
    return f->errors >= n;
}

static bool p_recovered(const fx_t *f, uint64_t n)
{
    return f->recovered >= n;
}

static bool p_never(const fx_t *f, uint64_t arg)
{
    (void)f;
    (void)arg;
    return false;
}

static void run_for(fx_t *f, unsigned ms)
{
    run_until(f, p_never, 0, ms);
}

/* ---- CRC-32C ---- */

static void test_crc32c(void **state)
{
    (void)state;
    uint8_t buf[1100];
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_hw(0, "123456789", 9), 0xE3069283u);
    /* RFC 3720 (iSCSI) B.4 vectors. */
    memset(buf, 0, 32);
    assert_int_equal(crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, 32);
    assert_int_equal(crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(crc32c(0, buf, 32), 0x46DD794Eu);
    assert_int_equal(crc32c(0x12345678u, NULL, 0), 0x12345678u);
    /* Both paths agree at every alignment and length, and chaining equals
     * one pass. */
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 251 + 17);
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= sizeof(buf); len += 1 + len / 3) {
            uint32_t a = crc32c_sw(0, buf + off, len);
            assert_int_equal(crc32c_hw(0, buf + off, len), a);
            size_t cut = len / 3;
            assert_int_equal(crc32c(crc32c(0, buf + off, cut), buf + off + cut, len - cut), a);
        }
    print_message("    crc32c hardware path: %s\n", crc32c_hw_available() ? "yes" : "no");
}

/* ---- Append and replay ---- */

static void test_append_replay(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    uint8_t big[1];
    assert_int_equal(journal_append(&f->j, big, JOURNAL_MAX_PAYLOAD + 1u, NULL), TALLY_EINVAL);
    append_n(f, 1, 1000, 0);
    wait_durable(f, 1000);
    assert_false(f->durable_backwards);
    journal_stats_t st;
    journal_stats(&f->j, &st);
    assert_int_equal(st.appended, 1000);
    assert_int_equal(st.durable_pos, 1000);
    assert_int_equal(st.next_pos, 1001);
    close_journal(f, 0);
    assert_int_equal(journal_append(&f->j, big, 1, NULL), TALLY_ECLOSED);

    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 1000);
    assert_false(c.bad_payload);
    for (uint64_t i = 0; i < 1000; i++) {
        assert_int_equal(c.pos[i], i + 1);
        assert_int_equal(c.len[i], var_len(i + 1));
    }
    assert_int_equal(rep.records, 1000);
    assert_int_equal(rep.segments, 1);
    assert_int_equal(rep.last_pos, 1000);
    assert_int_equal(rep.next_pos, 1001);
    assert_false(rep.torn_tail);
    assert_int_equal(rep.corrupt_regions, 0);
    assert_string_equal(rep.first_note, "");
    coll_free(&c);

    /* An empty directory is a journal without records. */
    assert_int_equal(journal_remove_before(f->dir, 2, NULL), 0);
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(rep.segments, 0);
    assert_int_equal(rep.next_pos, 1);
    coll_free(&c);
}

/* Appends made while a sync is in flight share the next sync. */
static void test_group_commit(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    int syncs0 = atomic_load(&f->sync_calls);
    atomic_store(&f->gate, true);
    append_n(f, 1, 1, 40);
    gate_wait(f); /* the writer is inside fdatasync */
    append_n(f, 2, 999, 40);
    uv_sem_post(&f->gate_release);
    wait_durable(f, 1000);
    assert_int_equal(atomic_load(&f->sync_calls) - syncs0, 2);
    assert_false(f->durable_backwards);
    assert_false(f->durable_before_sync);
    assert_true(f->durable_calls <= 2);
    journal_stats_t st;
    journal_stats(&f->j, &st);
    assert_int_equal(st.groups, 2);
    assert_int_equal(st.syncs, 2);
    close_journal(f, 0);
}

/* Appends beyond max_pending get TALLY_EBUSY and use no position. */
static void test_backpressure(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    o.max_pending = 1000;
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    atomic_store(&f->gate, true);
    append_n(f, 1, 1, 40);
    gate_wait(f);
    append_n(f, 2, 16, 40); /* 16 * 60 = 960 bytes fit */
    uint8_t buf[40];
    uint64_t pos;
    assert_int_equal(journal_append(&f->j, buf, 40, &pos), TALLY_EBUSY);
    uv_sem_post(&f->gate_release);
    wait_durable(f, 17);
    append_n(f, 18, 1, 40);
    wait_durable(f, 18);
    close_journal(f, 0);
}

static void test_policy_never(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_NEVER);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    int syncs0 = atomic_load(&f->sync_calls);
    journal_stats_t st0, st;
    warm_up(f, &st0);
    append_n(f, 2, 499, 0);
    wait_durable(f, 500);
    assert_int_equal(atomic_load(&f->sync_calls), syncs0); /* durable without a sync */
    /* The loop wrote the group itself. */
    journal_stats(&f->j, &st);
    assert_int_equal(st.groups, st0.groups + 1);
    assert_int_equal(st.groups_inline, st0.groups_inline + 1);
    assert_true(atomic_load(&f->writer_is_loop));
    /* A write slower than JOURNAL_INLINE_SLOW_MS sends the next groups to
     * the writer thread for a while. */
    atomic_store(&f->write_delay_ms, JOURNAL_INLINE_SLOW_MS + 5);
    append_n(f, 501, 1, 0);
    wait_durable(f, 501);
    atomic_store(&f->write_delay_ms, 0);
    append_n(f, 502, 1, 0);
    wait_durable(f, 502);
    journal_stats(&f->j, &st);
    assert_int_equal(st.groups, st0.groups + 3);
    assert_int_equal(st.groups_inline, st0.groups_inline + 2);
    assert_false(atomic_load(&f->writer_is_loop));
    close_journal(f, 0);
    assert_int_equal(atomic_load(&f->sync_calls), syncs0 + 1); /* close syncs */
    assert_int_equal(atomic_load(&f->synced_mark), atomic_load(&f->written));
    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 502);
    assert_false(c.bad_payload);
    coll_free(&c);
}

static void test_policy_interval(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_INTERVAL);
    o.interval_ms = 300;
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    journal_stats_t st0, st;
    warm_up(f, &st0);
    run_for(f, 400); /* the warm-up record's sync */
    int syncs0 = atomic_load(&f->sync_calls);
    append_n(f, 2, 9, 0);
    wait_durable(f, 10);
    /* Reported after write(), before the periodic sync. */
    assert_int_equal(atomic_load(&f->sync_calls), syncs0);
    journal_stats(&f->j, &st);
    assert_int_equal(st.groups_inline, st0.groups_inline + 1); /* the loop wrote it */
    run_for(f, 800);
    assert_true(atomic_load(&f->sync_calls) >= syncs0 + 1);
    assert_int_equal(atomic_load(&f->synced_mark), atomic_load(&f->written));
    int syncs1 = atomic_load(&f->sync_calls);
    run_for(f, 400); /* nothing new written: no further syncs */
    assert_int_equal(atomic_load(&f->sync_calls), syncs1);
    close_journal(f, 0);
}

/* ---- Failures ---- */

/* A full disk under a policy: the group that failed is kept, retried by
 * the writer and written once when space returns.  Under NEVER the loop
 * wrote the failing group itself (inline) and handed it over. */
static void enospc_under(fx_t *f, int policy)
{
    const uint64_t rs = OVH + 60;
    journal_opts_t o = opts_for(f, policy);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    journal_stats_t st0;
    append_n(f, 1, 10, 60);
    wait_durable(f, 10);
    wait_writer_idle(f);
    journal_stats(&f->j, &st0);
    atomic_store(&f->fail_write, FAIL_PARTIAL_THEN_ENOSPC);
    uint8_t buf[60];
    uint64_t accepted = 10, pos;
    for (uint64_t p = 11; p <= 15; p++) {
        int rc = journal_append(&f->j, buf, payload_for(p, 60, buf), &pos);
        assert_true(rc == 0 || rc == TALLY_EUNAVAIL);
        if (rc == 0)
            assert_int_equal(pos, ++accepted);
    }
    assert_true(run_until(f, p_errors, 1, 5000));
    assert_int_equal(f->errors, 1);
    assert_non_null(strstr(f->last_error, "No space left on device"));
    assert_non_null(strstr(f->last_error, "journal-0000000000000001.tj"));
    assert_int_equal(journal_append(&f->j, buf, 60, &pos), TALLY_EUNAVAIL);
    assert_int_equal(journal_rotate(&f->j, 2, NULL), TALLY_EUNAVAIL);
    run_for(f, 200); /* several retries, all failing */
    assert_int_equal(f->errors, 1);
    assert_int_equal(f->durable, 10);
    assert_int_equal(f->recovered, 0);
    journal_stats_t st;
    journal_stats(&f->j, &st);
    assert_true(st.failed);
    assert_int_equal(st.failures, 1);
    /* Under NEVER the loop wrote (and failed) the group: no group done. */
    assert_int_equal(st.groups, st0.groups);
    assert_true(policy == JOURNAL_SYNC_ALWAYS || atomic_load(&f->writer_is_loop));

    atomic_store(&f->fail_write, FAIL_NONE);
    assert_true(run_until(f, p_recovered, 1, 5000));
    assert_int_equal(f->recovered, 1);
    assert_int_equal(f->durable, accepted);
    assert_false(f->durable_backwards);
    append_n(f, accepted + 1, 1, 60);
    wait_durable(f, accepted + 1);
    close_journal(f, 0);

    char path[128];
    seg_path(f, 1, path, sizeof(path));
    assert_int_equal(file_size(path), HDR + (accepted + 1) * rs); /* no duplicates */
    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, accepted + 1);
    assert_false(c.bad_payload);
    for (uint64_t i = 0; i < c.n; i++)
        assert_int_equal(c.pos[i], i + 1);
    assert_int_equal(rep.corrupt_regions, 0);
    assert_false(rep.torn_tail);
    coll_free(&c);
}

static void test_enospc(void **state)
{
    enospc_under(*state, JOURNAL_SYNC_ALWAYS);
}

static void test_enospc_inline(void **state)
{
    enospc_under(*state, JOURNAL_SYNC_NEVER);
}

/* A failed fdatasync under ALWAYS: nothing reported until a rewrite and
 * sync succeed. */
static void test_sync_eio(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    o.retry_ms = 100;
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    /* Hold the writer in the failing sync so every append is accepted. */
    atomic_store(&f->gate, true);
    atomic_store(&f->fail_sync, 1);
    append_n(f, 1, 1, 60);
    gate_wait(f);
    append_n(f, 2, 4, 60);
    uv_sem_post(&f->gate_release);
    wait_durable(f, 5);
    assert_int_equal(f->errors, 1);
    assert_int_equal(f->recovered, 1);
    assert_non_null(strstr(f->last_error, "fdatasync"));
    assert_non_null(strstr(f->last_error, "Input/output error"));
    assert_false(f->durable_before_sync);
    close_journal(f, 0);
    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 5);
    assert_int_equal(rep.corrupt_regions, 0);
    coll_free(&c);
}

/* Under INTERVAL a failed periodic sync stops appends until a sync works. */
static void test_interval_sync_failure(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_INTERVAL);
    o.interval_ms = 20;
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    atomic_store(&f->fail_sync, 3);
    append_n(f, 1, 5, 60);
    wait_durable(f, 5); /* durable after write() */
    assert_true(run_until(f, p_errors, 1, 5000));
    assert_non_null(strstr(f->last_error, "may not be on disk"));
    uint8_t buf[60];
    assert_int_equal(journal_append(&f->j, buf, 60, NULL), TALLY_EUNAVAIL);
    assert_true(run_until(f, p_recovered, 1, 5000));
    assert_int_equal(f->errors, 1);
    assert_int_equal(atomic_load(&f->fail_sync), 0);
    assert_int_equal(atomic_load(&f->synced_mark), atomic_load(&f->written));
    append_n(f, 6, 1, 60);
    wait_durable(f, 6);
    close_journal(f, 0);
}

/* Closing while the disk stays full abandons the failed records. */
static void test_close_while_failed(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    append_n(f, 1, 3, 60);
    wait_durable(f, 3);
    atomic_store(&f->fail_write, FAIL_ENOSPC);
    append_n(f, 4, 1, 60);
    close_journal(f, TALLY_EIO);
    assert_int_equal(f->durable, 3);
    assert_int_equal(f->errors, 1);
}

static void test_close_flushes(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    append_n(f, 1, 100, 0);
    assert_int_equal(journal_close(&f->j, cb_closed), 0);
    assert_int_equal(f->durable, 100); /* delivered before close returned */
    assert_false(f->closed);
    assert_true(run_until(f, p_closed, 0, 5000));
    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 100);
    assert_false(c.bad_payload);
    coll_free(&c);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        T(test_append_replay),
        T(test_group_commit),
        T(test_backpressure),
        T(test_policy_never),
        T(test_policy_interval),
        T(test_enospc),
        T(test_enospc_inline),
        T(test_sync_eio),
        T(test_interval_sync_failure),
        T(test_close_while_failed),
        T(test_close_flushes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
