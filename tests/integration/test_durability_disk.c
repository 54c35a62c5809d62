/* Durability of the real tallyd on a full disk: the state directory on a
 * 256 KiB tmpfs (mounting needs root; the tests skip otherwise) is filled
 * so that journal writes fail.  Submissions must be refused with
 * UNAVAILABLE while reads go on, nothing unacknowledged may be reported
 * stored, and after space is freed, a crash or a SIGTERM, the totals must
 * hold exactly what was acknowledged.  A start on a full disk (a 1 MiB
 * tmpfs) must keep history.db, closed periods and all, for the next. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tally.h"
#include "test_durability_common.h"

/* ---- 5. a full disk -------------------------------------------------------- */

enum { SEQ_NONE, SEQ_SENT, SEQ_ACCEPTED, SEQ_DUPLICATE, SEQ_REJECTED };

#define FULL_MAX_SEQ 600

/* The state of a disk-full test: what became of every seq sent. */
typedef struct full {
    int state[FULL_MAX_SEQ + 1];
    int code[FULL_MAX_SEQ + 1];
    unsigned accepted_twice;
    harness_client_t c;      /* submits */
    harness_client_t reader; /* STATS and snapshots */
    char filler[HARNESS_PATH_MAX + 16];
    uint64_t last;       /* highest seq sent */
    unsigned unavail;    /* rejected UNAVAILABLE */
    unsigned waiting;    /* sent, neither acknowledged nor refused */
    int64_t acked_sum;   /* values acknowledged (value = seq) */
    int64_t waiting_sum; /* values waiting */
} full_t;

/* Receive replies for up to timeout_ms, recording each; return as soon as
 * seq (0: none) has its answer. */
static void collect(full_t *x, uint64_t seq, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - harness_mono_ms();
        if (left <= 0)
            return;
        harness_ack_t a;
        if (harness_recv_reply(&x->c, &a, (int)left) != 0)
            return;
        if (a.type != PROTO_ACK || a.seq == 0 || a.seq > FULL_MAX_SEQ) {
            char b[800];
            fail_msg("unexpected reply: %s", harness_ack_str(&a, b, sizeof(b)));
        }
        if (a.status == PROTO_ACK_ACCEPTED && x->state[a.seq] == SEQ_ACCEPTED)
            x->accepted_twice++;
        x->state[a.seq] = a.status == PROTO_ACK_ACCEPTED    ? SEQ_ACCEPTED
                          : a.status == PROTO_ACK_DUPLICATE ? SEQ_DUPLICATE
                                                            : SEQ_REJECTED;
        x->code[a.seq] = a.code;
        if (a.seq == seq)
            return;
    }
}

static void send_seq(full_t *x, uint64_t seq)
{
    harness_sample_t smp = {"dur.m0", (int64_t)seq};
    assert_int_equal(harness_send_submit(&x->c, seq, "t1", harness_now_ms(), &smp, 1), 0);
    x->state[seq] = SEQ_SENT;
}

/* Fill the file system of path: write until ENOSPC. */
static void fill_disk(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        fail_msg("cannot create %s: %s", path, strerror(errno));
    static char chunk[16384];
    memset(chunk, 0xAB, sizeof(chunk));
    for (;;) {
        ssize_t w = write(fd, chunk, sizeof(chunk));
        if (w < 0 && errno == ENOSPC)
            break;
        if (w < 0) {
            close(fd);
            fail_msg("writing %s: %s", path, strerror(errno));
        }
    }
    close(fd);
}

/* Mount a tmpfs of size (mount's "size=" option) on the state
 * directory, skipping the test when that is not allowed. */
static void mount_state(dur_fx_t *f, const char *size)
{
    if (geteuid() != 0) {
        print_message("disk-full test skipped: mounting a tmpfs needs root\n");
        skip();
    }
    if (mkdir(f->h.state_dir, 0750) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", f->h.state_dir, strerror(errno));
    char opts[64];
    snprintf(opts, sizeof(opts), "size=%s,mode=0750", size);
    if (mount("tmpfs", f->h.state_dir, "tmpfs", 0, opts) != 0) {
        print_message("disk-full test skipped: cannot mount a tmpfs on %s: %s\n", f->h.state_dir,
                      strerror(errno));
        skip();
    }
    f->mounted = true;
}

/* Mount a 256 KiB tmpfs on the state directory (skipping the test when
 * that is not allowed), start tallyd on it, submit 3, fill the disk and
 * submit until the journal fails, then 3 more that must be refused. */
static void full_until_refused(dur_fx_t *f, full_t *x)
{
    mount_state(f, "256k");
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    assert_int_equal(harness_client_open(&f->h, &x->c), 0);
    assert_int_equal(harness_client_open(&f->h, &x->reader), 0);
    uint64_t seq = 1;
    for (; seq <= 3; seq++) {
        send_seq(x, seq);
        collect(x, seq, HARNESS_REPLY_TIMEOUT_MS);
        assert_int_equal(x->state[seq], SEQ_ACCEPTED);
    }
    snprintf(x->filler, sizeof(x->filler), "%s/filler", f->h.state_dir);
    fill_disk(x->filler);

    /* Submit until the journal fails.  The record whose write failed is
     * applied but unacknowledged: its ACK waits for the disk. */
    uint64_t first_unavail = 0;
    unsigned unanswered = 0;
    for (; seq <= FULL_MAX_SEQ - 10 && first_unavail == 0; seq++) {
        send_seq(x, seq);
        collect(x, seq, 1000);
        if (x->state[seq] == SEQ_SENT && ++unanswered > 3) {
            dur_dump_log_tail(f, 3000);
            fail_msg("%u submissions neither acknowledged nor refused on a full disk (seq %" PRIu64
                     "): the daemon keeps taking submissions it cannot store",
                     unanswered, seq);
        }
        if (x->state[seq] == SEQ_REJECTED) {
            if (x->code[seq] != 21)
                fail_msg("seq %" PRIu64 " rejected with code %d, expected UNAVAILABLE (21)", seq,
                         x->code[seq]);
            first_unavail = seq;
        } else if (x->state[seq] != SEQ_ACCEPTED && x->state[seq] != SEQ_SENT) {
            fail_msg("seq %" PRIu64 ": unexpected answer state %d", seq, x->state[seq]);
        }
    }
    if (first_unavail == 0) {
        dur_dump_log_tail(f, 3000);
        fail_msg("no UNAVAILABLE rejection after %" PRIu64 " submissions on a full disk", seq - 1);
    }
    /* A few more while it is failing: all refused, none accepted. */
    for (int i = 0; i < 3; i++, seq++) {
        send_seq(x, seq);
        collect(x, seq, 2000);
        if (x->state[seq] != SEQ_REJECTED || x->code[seq] != 21)
            fail_msg("seq %" PRIu64 " on a failing journal: state %d code %d, expected rejected "
                     "UNAVAILABLE",
                     seq, x->state[seq], x->code[seq]);
    }
    x->last = seq - 1;
    for (uint64_t i = 1; i <= x->last; i++) {
        x->unavail += x->state[i] == SEQ_REJECTED;
        if (x->state[i] == SEQ_SENT) {
            x->waiting++;
            x->waiting_sum += (int64_t)i;
        }
        if (x->state[i] == SEQ_ACCEPTED)
            x->acked_sum += (int64_t)i;
    }
    print_message("disk full: %" PRIu64 " accepted before the failure, %u waiting, %u refused\n",
                  first_unavail - 1 - x->waiting, x->waiting, x->unavail);
    dur_expect_log(f, "journal write failed");
}

/* Resend every seq not acknowledged yet (as a client would) until all are
 * acknowledged, for at most timeout_ms; dup_ok allows DUPLICATE answers
 * (after a crash a record whose ACK was never sent may be in the journal). */
static void full_settle(dur_fx_t *f, full_t *x, bool resend_waiting, bool dup_ok, int timeout_ms)
{
    int64_t t0 = harness_mono_ms(), deadline = t0 + timeout_ms;
    bool done = false;
    while (!done && harness_mono_ms() < deadline) {
        for (uint64_t i = 1; i <= x->last; i++)
            if (x->state[i] == SEQ_REJECTED || (resend_waiting && x->state[i] == SEQ_SENT))
                send_seq(x, i);
        collect(x, 0, 300);
        done = true;
        for (uint64_t i = 1; i <= x->last; i++)
            done =
                done && (x->state[i] == SEQ_ACCEPTED || (dup_ok && x->state[i] == SEQ_DUPLICATE));
    }
    if (!done) {
        dur_dump_log_tail(f, 3000);
        for (uint64_t i = 1; i <= x->last; i++)
            if (x->state[i] != SEQ_ACCEPTED)
                fprintf(stderr, "seq %" PRIu64 ": state %d code %d\n", i, x->state[i], x->code[i]);
        fail_msg("submissions not all acknowledged %d ms after the disk was freed", timeout_ms);
    }
    print_message("disk full: all acknowledged %" PRId64 " ms after freeing space\n",
                  harness_mono_ms() - t0);
    assert_int_equal(x->accepted_twice, 0);
}

/* Check that the journal holds exactly n records and ends cleanly. */
static void expect_records(dur_fx_t *f, size_t n)
{
    char path[HARNESS_PATH_MAX];
    dur_only_segment(f, path, sizeof(path));
    uint64_t offs[DUR_MAX_RECORDS], size, end;
    uint32_t lens[DUR_MAX_RECORDS];
    size_t got = dur_records(path, offs, lens, DUR_MAX_RECORDS, &size, &end);
    if (got != n || end != size)
        fail_msg("%s: %zu records ending at %" PRIu64 " of %" PRIu64 " bytes; expected %zu "
                 "records, each submission exactly once",
                 path, got, end, size, n);
}

/* Crash, check that the journal holds every submission exactly once, start
 * again and check the totals; then a clean restart (through the final
 * checkpoint) must give them too. */
static void crash_check_records(dur_fx_t *f, size_t records, int64_t total)
{
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    expect_records(f, records);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    dur_expect_m0(f, total, "after a crash following the disk-full episode");
    dur_clean_restart(f, total);
}

/* systemd's side of the notify protocol, for the STATUS lines: a datagram
 * socket in the test's directory, named in NOTIFY_SOCKET for the daemons
 * started after it.  Returns its descriptor. */
static int notify_listen(dur_fx_t *f)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int n = snprintf(a.sun_path, sizeof(a.sun_path), "%s/notify", f->h.dir);
    assert_true(n > 0 && (size_t)n < sizeof(a.sun_path));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setenv("NOTIFY_SOCKET", a.sun_path, 1);
    return fd;
}

/* Whether a datagram holding needle arrives on fd within timeout_ms. */
static bool notify_saw(int fd, const char *needle, int timeout_ms)
{
    int64_t end = harness_mono_ms() + timeout_ms;
    while (harness_mono_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(end - harness_mono_ms())) <= 0)
            continue;
        char buf[4097];
        ssize_t got = recv(fd, buf, sizeof(buf) - 1, 0);
        if (got <= 0)
            continue;
        buf[got] = '\0';
        if (strstr(buf, needle) != NULL)
            return true;
    }
    return false;
}

/* 5. The state directory on a 256 KiB tmpfs: fill it so journal writes
 * fail.  Submissions are refused with UNAVAILABLE (21) while reads still
 * work; once space is freed they are accepted again within seconds, the
 * one caught in the failed write included, and a restart gives exactly
 * what was acknowledged. */
static void test_disk_full(void **state)
{
    dur_fx_t *f = *state;
    static full_t x;
    memset(&x, 0, sizeof(x));
    int notify = notify_listen(f);
    full_until_refused(f, &x);
    /* systemctl status says so (it said "serving ... submissions/s"). */
    bool said = notify_saw(notify,
                           "STATUS=refusing submissions (retryable): the journal cannot "
                           "be written",
                           5000);

    /* Reads go on while writes fail. */
    assert_int_equal(harness_stats(&x.reader, "tallyd_rejected_unavailable_total"),
                     (int64_t)x.unavail);
    assert_int_equal(harness_snapshot(&x.reader, "", &f->t), 0);
    harness_value_t v;
    assert_true(harness_table_get(&f->t, "dur.m0", "t1", "total", &v));
    if (!v.present || v.num < x.acked_sum || v.num > x.acked_sum + x.waiting_sum)
        fail_msg("live total %" PRId64 " while the disk is full: outside [%" PRId64 ", %" PRId64
                 "] (acknowledged .. + waiting)",
                 v.num, x.acked_sum, x.acked_sum + x.waiting_sum);

    /* Free the space: within a few seconds the waiting records are written
     * and acknowledged, and the refused ones are accepted when resent. */
    assert_int_equal(unlink(x.filler), 0);
    full_settle(f, &x, false, false, 8000);
    dur_expect_log(f, "journal writes work again");
    /* history.db failed with the journal (every flush while the disk was
     * full); once a batch is stored again the log says so, as it does of
     * the journal. */
    if (strstr(harness_log(&f->h), "history: cannot store") != NULL &&
        harness_wait_log(&f->h, "works again; the cells held in memory since it failed are stored",
                         5000) != 0) {
        dur_dump_log_tail(f, 3000);
        fail_msg("history.db failed on the full disk, and no line says it stores cells again");
    }
    bool again = notify_saw(notify, "STATUS=serving: journal writes work again", 5000);
    close(notify);
    unsetenv("NOTIFY_SOCKET");
    assert_true(said);
    assert_true(again);
    uint64_t seq = x.last + 1;
    send_seq(&x, seq);
    collect(&x, seq, HARNESS_REPLY_TIMEOUT_MS);
    assert_int_equal(x.state[seq], SEQ_ACCEPTED);
    int64_t total = (int64_t)(seq * (seq + 1) / 2);
    harness_client_close(&x.c);
    harness_client_close(&x.reader);
    dur_expect_m0(f, total, "after the disk was freed");

    crash_check_records(f, seq, total);
}

/* 5b. As 5, but tallyd is killed while the journal is failing and
 * restarted on the still full disk: it must start, count exactly what was
 * acknowledged (plus, at most, records written but never acknowledged),
 * and once space is freed take the resent submissions, each once. */
static void test_disk_full_crash(void **state)
{
    dur_fx_t *f = *state;
    static full_t x;
    memset(&x, 0, sizeof(x));
    full_until_refused(f, &x);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);

    if (harness_start(&f->h, NULL, NULL) != 0)
        fail_msg("tallyd does not start on a full disk after a crash");
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(harness_snapshot(&c, "", &f->t), 0);
    harness_client_close(&c);
    harness_value_t v;
    assert_true(harness_table_get(&f->t, "dur.m0", "t1", "total", &v));
    if (!v.present || v.num < x.acked_sum || v.num > x.acked_sum + x.waiting_sum) {
        dur_dump_log_tail(f, 3000);
        fail_msg("total %" PRId64 " after a crash on a full disk: expected the %" PRId64
                 " acknowledged (+ at most %" PRId64 " written but unacknowledged)",
                 v.num, x.acked_sum, x.waiting_sum);
    }

    assert_int_equal(unlink(x.filler), 0);
    full_settle(f, &x, true, true, 8000);
    int64_t total = (int64_t)(x.last * (x.last + 1) / 2);
    harness_client_close(&x.c);
    harness_client_close(&x.reader);
    dur_expect_m0(f, total, "after resending on the freed disk");
    crash_check_records(f, x.last, total);
}

/* 5c. SIGTERM while the journal is failing: tallyd stops in bounded time,
 * and after a restart (on the freed disk) the totals hold exactly what was
 * acknowledged plus, at most, what was waiting. */
static void test_disk_full_sigterm(void **state)
{
    dur_fx_t *f = *state;
    static full_t x;
    memset(&x, 0, sizeof(x));
    full_until_refused(f, &x);
    int64_t t0 = harness_mono_ms();
    int st = harness_stop(&f->h, SIGTERM);
    print_message("SIGTERM on a failing journal: status %d after %" PRId64 " ms\n", st,
                  harness_mono_ms() - t0);
    /* Within the harness's stop timeout, with a documented status (0 clean
     * stop, 1 runtime failure): the unwritable records were never
     * acknowledged, so abandoning them breaks no promise. */
    if (st != 0 && st != 1) {
        dur_dump_log_tail(f, 3000);
        fail_msg("tallyd ended with status %d after SIGTERM on a failing journal", st);
    }
    dur_expect_log(f, "submissions not acknowledged were not stored");
    /* The history's last batch failed too: the log says what becomes of
     * it, not nothing. */
    if (strstr(harness_log(&f->h), "history: cannot store") != NULL)
        dur_expect_log(f, "at the stop; the journal keeps the records from position");
    assert_int_equal(unlink(x.filler), 0);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(harness_snapshot(&c, "", &f->t), 0);
    harness_client_close(&c);
    harness_value_t v;
    assert_true(harness_table_get(&f->t, "dur.m0", "t1", "total", &v));
    if (!v.present || v.num < x.acked_sum || v.num > x.acked_sum + x.waiting_sum)
        fail_msg("total %" PRId64 " after SIGTERM on a full disk: expected the %" PRId64
                 " acknowledged (+ at most %" PRId64 " unacknowledged)",
                 v.num, x.acked_sum, x.waiting_sum);
    full_settle(f, &x, true, true, 8000);
    harness_client_close(&x.c);
    harness_client_close(&x.reader);
    dur_expect_m0(f, (int64_t)(x.last * (x.last + 1) / 2), "after resending");
}

/* The value of metric dur.m0 of township t1 in period (tally_period_req),
 * or -1 when it has none. */
static void on_period(void *ctx, const tally_tally_t *t)
{
    int64_t *v = ctx;
    if (strcmp(t->metric, "dur.m0") == 0 && strcmp(t->scope, "t1") == 0 && t->nvalues == 1 &&
        t->values[0].present)
        *v = t->values[0].num;
}

static int64_t m0_in(dur_fx_t *f, const char *period)
{
    int64_t v = -1;
    char err[512] = "";
    tally_request_t req = {.timeout_ms = 10000, .errbuf = err, .errbuf_len = sizeof(err)};
    int rc = tally_period_req(f->h.req_endpoint, &req, "u/town/t1/", period, on_period, &v);
    if (rc != 0)
        fail_msg("tally_period_req %s: %s: %s", period, tally_strerror(rc), err);
    return v;
}

/* Journal records in the state directory's segments. */
static size_t journal_records(dur_fx_t *f)
{
    char names[DUR_MAX_FILES][HARNESS_PATH_MAX], path[2 * HARNESS_PATH_MAX];
    size_t n = dur_list(f->h.state_dir, "journal-", ".tj", names, DUR_MAX_FILES), records = 0;
    for (size_t i = 0; i < n; i++) {
        static uint64_t offs[DUR_MAX_RECORDS];
        static uint32_t lens[DUR_MAX_RECORDS];
        uint64_t size, end;
        snprintf(path, sizeof(path), "%s/%s", f->h.state_dir, names[i]);
        records += dur_records(path, offs, lens, DUR_MAX_RECORDS, &size, &end);
    }
    return records;
}

/* 5d. A start on a full disk: history.db, whole, needs its -shm file,
 * which a clean stop removed and SQLite cannot create ("disk I/O
 * error").  That is no damage: the start stops with status 1 and keeps
 * history.db as it is, and the next one, with room again, loads it
 * whole, with the closed periods the journal no longer holds (a figure
 * stamped 400 days ago, whose record the journal dropped once the
 * database held it).  Set aside, they were lost: the month read 0. */
static void test_disk_full_start_keeps_history(void **state)
{
    dur_fx_t *f = *state;
    mount_state(f, "1m");
    /* The 15th of the month of 400 days ago, noon in Asia/Shanghai (the
     * built-in zone): well inside that month in any zone of the world. */
    time_t then = (time_t)(harness_now_ms() / 1000) - 400 * 86400;
    struct tm tm;
    gmtime_r(&then, &tm);
    tm.tm_mday = 15;
    tm.tm_hour = 4;
    tm.tm_min = tm.tm_sec = 0;
    int64_t old_ms = (int64_t)timegm(&tm) * 1000;
    char month[32], year[16];
    snprintf(month, sizeof(month), "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    snprintf(year, sizeof(year), "%04d", tm.tm_year + 1900);

    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    harness_client_t c;
    harness_ack_t a;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(harness_submit_one(&c, 1, "t1", old_ms, "dur.m0", 100, &a), 0);
    assert_int_equal(a.status, PROTO_ACK_ACCEPTED);
    harness_client_close(&c);
    /* Clean restarts, one figure each, until the journal no longer holds
     * the old figure's record: only history.db does. */
    int64_t total = 100;
    for (size_t pushed = 1;; pushed++) {
        assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
        if (journal_records(f) < pushed)
            break;
        if (pushed > 10)
            fail_msg("the journal still holds all %zu records after %zu restarts", pushed,
                     pushed - 1);
        assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
        assert_int_equal(harness_client_open(&f->h, &c), 0);
        assert_int_equal(harness_submit_one(&c, 1, "t1", harness_now_ms(), "dur.m0", 1, &a), 0);
        assert_int_equal(a.status, PROTO_ACK_ACCEPTED);
        harness_client_close(&c);
        total++;
    }

    char filler[HARNESS_PATH_MAX + 16], path[HARNESS_PATH_MAX + 16];
    snprintf(filler, sizeof(filler), "%s/filler", f->h.state_dir);
    fill_disk(filler);
    if (harness_start(&f->h, NULL, NULL) == 0)
        fail_msg("tallyd started on a full disk");
    assert_int_equal(f->h.last_status, 1);
    dur_expect_log(f, "it is kept as it is and tallyd stops: free disk space");
    snprintf(path, sizeof(path), "%s/history.db", f->h.state_dir);
    assert_int_equal(access(path, F_OK), 0);
    char names[4][HARNESS_PATH_MAX];
    if (dur_list(f->h.state_dir, "history.db.damaged-", "", names, 4) != 0)
        fail_msg("history.db was set aside as %s on a full disk", names[0]);

    assert_int_equal(unlink(filler), 0);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    int64_t in_month = m0_in(f, month), in_year = m0_in(f, year);
    if (in_month != 100 || in_year != 100) {
        dur_dump_log_tail(f, 3000);
        fail_msg("dur.m0 of t1 reads %" PRId64 " in %s and %" PRId64 " in %s after the full "
                 "disk, expected 100: the closed periods were lost",
                 in_month, month, in_year, year);
    }
    dur_expect_m0(f, total, "after the start on a full disk");
}

/* Mount the tmpfs in a private mount namespace when possible, so that it
 * vanishes with this process (and its daemons) even when the process is
 * killed (a ctest timeout) instead of staying mounted under /tmp.  Must
 * run before any thread exists.  Without it the test still works; the
 * teardown unmounts. */
static void private_mounts(void)
{
    if (geteuid() != 0)
        return;
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        fprintf(stderr, "durability: no private mount namespace (%s); using the global one\n",
                strerror(errno));
}

int main(void)
{
    private_mounts();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_disk_full, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_crash, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_sigterm, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_start_keeps_history, dur_setup,
                                        dur_teardown),
    };
    /* TALLY_DUR_TEST=<glob> runs only the matching tests. */
    if (getenv("TALLY_DUR_TEST") != NULL)
        cmocka_set_test_filter(getenv("TALLY_DUR_TEST"));
    return cmocka_run_group_tests_name("durability on a full disk", tests, NULL, NULL);
}
