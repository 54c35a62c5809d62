/* Unit tests of the journal and CRC-32C: real files in a mkdtemp
 * directory, a real libuv loop, and I/O hooks that inject failures. */
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

#define HDR JOURNAL_HEADER_SIZE
#define OVH JOURNAL_RECORD_OVERHEAD

/* ---- Fixture: a temporary directory, a loop and callback records ---- */

enum { FAIL_NONE, FAIL_ENOSPC, FAIL_PARTIAL_THEN_ENOSPC };

typedef struct fx {
    char dir[64];
    uv_loop_t loop;
    journal_t j;
    /* callbacks (loop thread) */
    uint64_t durable; /* last upto_pos */
    unsigned durable_calls;
    bool durable_backwards;
    bool check_sync;          /* ALWAYS: check each upto was synced first */
    bool durable_before_sync; /* ... and it was not */
    unsigned errors, recovered;
    char last_error[512];
    bool closed;
    /* I/O hooks (writer thread) */
    atomic_int fail_write;
    atomic_int fail_sync; /* syncs left to fail with EIO */
    atomic_int sync_calls;
    atomic_int_fast64_t written, synced_mark;
    atomic_uint_fast64_t written_pos, synced_pos; /* highest record position */
    atomic_bool gate;                             /* hold the next sync until released */
    uv_sem_t gate_entered, gate_release;
} fx_t;

static ssize_t hook_write(void *ctx, int fd, const void *buf, size_t len)
{
    fx_t *f = ctx;
    int mode = atomic_load(&f->fail_write);
    if (mode == FAIL_PARTIAL_THEN_ENOSPC && len > 1) {
        atomic_store(&f->fail_write, FAIL_ENOSPC);
        len /= 2; /* a short write, as a filling disk gives, then ENOSPC */
    } else if (mode != FAIL_NONE) {
        errno = ENOSPC;
        return -1;
    }
    ssize_t k = write(fd, buf, len);
    if (k <= 0)
        return k;
    atomic_fetch_add(&f->written, k);
    /* Data writes start on a record boundary: note the highest position
     * among the whole records written, for the durable-after-sync check. */
    const uint8_t *p = buf;
    for (size_t off = 0; memcmp(p, "TALLYJNL", 8) != 0 && off + OVH <= (size_t)k;) {
        uint32_t rlen;
        uint64_t pos;
        memcpy(&rlen, p + off + 4, 4);
        memcpy(&pos, p + off + 12, 8);
        if (off + OVH + rlen > (size_t)k)
            break;
        atomic_store(&f->written_pos, pos);
        off += OVH + rlen;
    }
    return k;
}

static int hook_sync(void *ctx, int fd)
{
    fx_t *f = ctx;
    atomic_fetch_add(&f->sync_calls, 1);
    if (atomic_exchange(&f->gate, false)) {
        uv_sem_post(&f->gate_entered);
        uv_sem_wait(&f->gate_release);
    }
    if (atomic_load(&f->fail_sync) > 0) {
        atomic_fetch_sub(&f->fail_sync, 1);
        errno = EIO;
        return -1;
    }
    int64_t w = atomic_load(&f->written);
    uint64_t wp = atomic_load(&f->written_pos);
    int r = fdatasync(fd);
    if (r == 0) {
        atomic_store(&f->synced_mark, w);
        atomic_store(&f->synced_pos, wp);
    }
    return r;
}

/* Wait (at most 10 s) until the writer is held inside a sync by the gate. */
static void gate_wait(fx_t *f)
{
    for (int i = 0; i < 10000; i++) {
        /* The writer is woken from the loop (before it polls), so the
         * loop must run for what was appended to reach the disk. */
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (uv_sem_trywait(&f->gate_entered) == 0)
            return;
        uv_sleep(1);
    }
    fail_msg("the writer never reached fdatasync");
}

static void cb_durable(journal_t *j, uint64_t upto, void *ctx)
{
    (void)j;
    fx_t *f = ctx;
    if (upto <= f->durable)
        f->durable_backwards = true;
    /* Under ALWAYS, record upto must have been covered by a completed
     * sync when it is reported. */
    if (f->check_sync && atomic_load(&f->synced_pos) < upto)
        f->durable_before_sync = true;
    f->durable = upto;
    f->durable_calls++;
}

static void cb_error(journal_t *j, int code, const char *what, void *ctx)
{
    (void)j;
    fx_t *f = ctx;
    assert_int_equal(code, TALLY_EIO);
    f->errors++;
    snprintf(f->last_error, sizeof(f->last_error), "%s", what);
}

static void cb_recovered(journal_t *j, void *ctx)
{
    (void)j;
    ((fx_t *)ctx)->recovered++;
}

static void cb_closed(journal_t *j)
{
    fx_t *f = (fx_t *)((char *)j - offsetof(fx_t, j));
    f->closed = true;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/tally-journal-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_sem_init(&f->gate_entered, 0), 0);
    assert_int_equal(uv_sem_init(&f->gate_release, 0), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->j.open) { /* a failed test left it open */
        atomic_store(&f->fail_write, FAIL_NONE);
        atomic_store(&f->fail_sync, 0);
        journal_close(&f->j, NULL);
    }
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    uv_sem_destroy(&f->gate_entered);
    uv_sem_destroy(&f->gate_release);
    free(f);
    return 0;
}

static journal_opts_t opts_for(fx_t *f, int sync)
{
    journal_opts_t o = {.sync = sync, .retry_ms = 20, .ctx = f};
    f->check_sync = sync == JOURNAL_SYNC_ALWAYS;
    o.on_durable = cb_durable;
    o.on_error = cb_error;
    o.on_recovered = cb_recovered;
    o.io = (journal_io_t){.write_fn = hook_write, .sync_fn = hook_sync, .ctx = f};
    return o;
}

static void on_timeout(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

typedef bool (*pred_fn)(const fx_t *f, uint64_t arg);

static bool p_durable(const fx_t *f, uint64_t pos)
{
    return f->durable >= pos;
}

static bool p_errors(const fx_t *f, uint64_t n)
{
    return f->errors >= n;
}

static bool p_recovered(const fx_t *f, uint64_t n)
{
    return f->recovered >= n;
}

static bool p_closed(const fx_t *f, uint64_t arg)
{
    (void)arg;
    return f->closed;
}

static bool p_never(const fx_t *f, uint64_t arg)
{
    (void)f;
    (void)arg;
    return false;
}

/* Run the loop until pred holds or ms pass; returns pred. */
static bool run_until(fx_t *f, pred_fn pred, uint64_t arg, unsigned ms)
{
    bool timed_out = false;
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    t.data = &timed_out;
    uv_timer_start(&t, on_timeout, ms, 0);
    while (!pred(f, arg) && !timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return pred(f, arg);
}

static void run_for(fx_t *f, unsigned ms)
{
    run_until(f, p_never, 0, ms);
}

/* Run until records up to pos are durable (10 s guard). */
static void wait_durable(fx_t *f, uint64_t pos)
{
    assert_true(run_until(f, p_durable, pos, 10000));
}

/* journal_open, with the callback records reset for the new session. */
static int jopen(fx_t *f, const journal_opts_t *o, uint64_t gen, uint64_t next_pos)
{
    f->durable = 0;
    f->durable_calls = 0;
    f->durable_backwards = f->durable_before_sync = false;
    f->errors = f->recovered = 0;
    return journal_open(&f->j, &f->loop, f->dir, o, gen, next_pos);
}

static void close_journal(fx_t *f, int expect)
{
    assert_int_equal(journal_close(&f->j, cb_closed), expect);
    assert_false(f->durable_before_sync);
    assert_false(f->durable_backwards);
    assert_true(run_until(f, p_closed, 0, 5000));
    f->closed = false;
}

/* ---- Payloads and replay collection ---- */

static size_t payload_for(uint64_t pos, size_t len, uint8_t *out)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)(pos * 131 + i * 7 + (i >> 8));
    return len;
}

static size_t var_len(uint64_t pos)
{
    return (size_t)((pos * 37) % 301); /* 0 .. 300 bytes */
}

static void append_n(fx_t *f, uint64_t first, uint64_t n, size_t fixed)
{
    uint8_t buf[512];
    for (uint64_t p = first; p < first + n; p++) {
        size_t len = payload_for(p, fixed ? fixed : var_len(p), buf);
        uint64_t got = 0;
        assert_int_equal(journal_append(&f->j, buf, len, &got), 0);
        assert_int_equal(got, p);
    }
}

typedef struct coll {
    uint64_t n, *pos, *len;
    size_t cap;
    bool bad_payload;
} coll_t;

static int collect(const void *payload, size_t len, uint64_t pos, void *ctx)
{
    coll_t *c = ctx;
    uint8_t want[512];
    if (len > sizeof(want) || memcmp(payload, want, payload_for(pos, len, want)) != 0)
        c->bad_payload = true;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->pos = realloc(c->pos, c->cap * sizeof(uint64_t));
        c->len = realloc(c->len, c->cap * sizeof(uint64_t));
        assert_true(c->pos && c->len);
    }
    c->pos[c->n] = pos;
    c->len[c->n++] = len;
    return 0;
}

static void note_cb(const char *line, void *ctx)
{
    (void)ctx;
    print_message("    note: %s\n", line);
}

static int replay(fx_t *f, uint64_t from_gen, uint64_t from_pos, coll_t *c,
                  journal_replay_report_t *rep)
{
    memset(c, 0, sizeof(*c));
    journal_replay_opts_t ro = {
        .from_gen = from_gen, .from_pos = from_pos, .on_record = collect, .on_note = note_cb};
    ro.ctx = c;
    return journal_replay(f->dir, &ro, rep);
}

static void coll_free(coll_t *c)
{
    free(c->pos);
    free(c->len);
}

static void seg_path(fx_t *f, uint64_t gen, char *out, size_t n)
{
    char name[JOURNAL_NAME_MAX];
    journal_segment_name(name, gen);
    snprintf(out, n, "%s/%s", f->dir, name);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void poke(const char *path, off_t off, uint8_t xor_mask)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= xor_mask;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

/* Write n fixed-size records with policy ALWAYS into segment 1 and close. */
static void make_journal(fx_t *f, uint64_t n, size_t len)
{
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    append_n(f, 1, n, len);
    wait_durable(f, n);
    close_journal(f, 0);
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
    append_n(f, 1, 500, 0);
    wait_durable(f, 500);
    assert_int_equal(atomic_load(&f->sync_calls), syncs0); /* durable without a sync */
    close_journal(f, 0);
    assert_int_equal(atomic_load(&f->sync_calls), syncs0 + 1); /* close syncs */
    assert_int_equal(atomic_load(&f->synced_mark), atomic_load(&f->written));
    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 500);
    assert_false(c.bad_payload);
    coll_free(&c);
}

static void test_policy_interval(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_INTERVAL);
    o.interval_ms = 300;
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    int syncs0 = atomic_load(&f->sync_calls);
    append_n(f, 1, 10, 0);
    wait_durable(f, 10);
    /* Reported after write(), before the periodic sync. */
    assert_int_equal(atomic_load(&f->sync_calls), syncs0);
    run_for(f, 800);
    assert_true(atomic_load(&f->sync_calls) >= syncs0 + 1);
    assert_int_equal(atomic_load(&f->synced_mark), atomic_load(&f->written));
    int syncs1 = atomic_load(&f->sync_calls);
    run_for(f, 400); /* nothing new written: no further syncs */
    assert_int_equal(atomic_load(&f->sync_calls), syncs1);
    close_journal(f, 0);
}

/* ---- Damage ---- */

static void test_torn_tail(void **state)
{
    fx_t *f = *state;
    const uint64_t rs = OVH + 60;
    make_journal(f, 100, 60);
    char path[128];
    seg_path(f, 1, path, sizeof(path));
    assert_int_equal(file_size(path), HDR + 100 * rs);
    assert_int_equal(truncate(path, HDR + 100 * rs - 10), 0);

    /* Appending after a torn tail is refused until replay repairs it. */
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), TALLY_EIO);
    assert_non_null(strstr(journal_errmsg(&f->j), "journal_replay"));

    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 99);
    assert_false(c.bad_payload);
    assert_true(rep.torn_tail);
    assert_int_equal(rep.torn_offset, HDR + 99 * rs);
    assert_int_equal(rep.torn_bytes, rs - 10);
    assert_int_equal(rep.corrupt_regions, 0);
    assert_int_equal(rep.next_pos, 100);
    assert_non_null(strstr(rep.first_note, "journal-0000000000000001.tj: torn record at offset"));
    assert_int_equal(file_size(path), HDR + 99 * rs);
    coll_free(&c);

    assert_int_equal(jopen(f, &o, 1, 99), TALLY_EINVAL);
    assert_int_equal(jopen(f, &o, 1, rep.next_pos), 0);
    uint8_t buf[33];
    uint64_t pos;
    assert_int_equal(journal_append(&f->j, buf, payload_for(100, 33, buf), &pos), 0);
    assert_int_equal(pos, 100);
    wait_durable(f, 100);
    close_journal(f, 0);
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 100);
    assert_false(c.bad_payload);
    assert_int_equal(c.pos[99], 100);
    assert_int_equal(c.len[99], 33);
    assert_false(rep.torn_tail);
    assert_string_equal(rep.first_note, "");
    coll_free(&c);
}

static void test_corrupt_middle(void **state)
{
    fx_t *f = *state;
    const uint64_t rs = OVH + 60;
    make_journal(f, 100, 60);
    char path[128];
    seg_path(f, 1, path, sizeof(path));
    off_t size = file_size(path);
    poke(path, HDR + 49 * rs + OVH + 30, 0x01); /* payload of record 50 */
    poke(path, HDR + 69 * rs + 7, 0x80);        /* length of record 70: huge */
    poke(path, HDR + 89 * rs + 4, 40);          /* length of record 90: 60 -> 20 */
    /* Record 20 overwritten by a copy of record 19: its CRC holds, but a
     * position may never be applied twice. */
    uint8_t rec[OVH + 60];
    int fd = open(path, O_RDWR);
    assert_int_equal(pread(fd, rec, rs, HDR + 18 * rs), rs);
    assert_int_equal(pwrite(fd, rec, rs, HDR + 19 * rs), rs);
    close(fd);

    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 96);
    assert_false(c.bad_payload);
    for (uint64_t i = 0, want = 1; i < c.n; i++, want++) {
        if (want == 20 || want == 50 || want == 70 || want == 90)
            want++;
        assert_int_equal(c.pos[i], want);
    }
    assert_int_equal(rep.corrupt_regions, 4);
    assert_int_equal(rep.corrupt_bytes, 4 * rs);
    assert_int_equal(rep.corrupt_first_gen, 1);
    assert_int_equal(rep.corrupt_first_offset, HDR + 19 * rs);
    assert_int_equal(rep.pos_gaps, 4);
    assert_false(rep.torn_tail);
    char want[200];
    snprintf(want, sizeof(want),
             "journal-0000000000000001.tj: corrupt record at offset %llu; skipped %llu bytes; "
             "resumed at offset %llu",
             (unsigned long long)(HDR + 19 * rs), (unsigned long long)rs,
             (unsigned long long)(HDR + 20 * rs));
    assert_string_equal(rep.first_note, want);
    assert_int_equal(file_size(path), size); /* the middle is never cut */
    coll_free(&c);
}

static void test_bad_header(void **state)
{
    fx_t *f = *state;
    make_journal(f, 5, 60);
    char path[128], p7[128];
    seg_path(f, 1, path, sizeof(path));
    seg_path(f, 7, p7, sizeof(p7));
    coll_t c;
    journal_replay_report_t rep;
    /* A segment renamed to another gen is refused. */
    assert_int_equal(rename(path, p7), 0);
    assert_int_equal(replay(f, 0, 0, &c, &rep), TALLY_EIO);
    assert_non_null(strstr(rep.error, "the file was renamed or copied"));
    coll_free(&c);
    assert_int_equal(rename(p7, path), 0);
    poke(path, 20, 0x04); /* inside gen */
    assert_int_equal(replay(f, 0, 0, &c, &rep), TALLY_EIO);
    assert_int_equal(c.n, 0);
    assert_non_null(strstr(rep.error, "journal-0000000000000001.tj: header checksum mismatch"));
    coll_free(&c);
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), TALLY_EIO);
    assert_non_null(strstr(journal_errmsg(&f->j), "checksum"));
}

static void test_newer_version(void **state)
{
    fx_t *f = *state;
    make_journal(f, 5, 60);
    char path[128];
    seg_path(f, 1, path, sizeof(path));
    /* A well-formed version 2 header, checksum and all. */
    uint8_t h[HDR];
    int fd = open(path, O_RDWR);
    assert_int_equal(pread(fd, h, HDR, 0), HDR);
    h[8] = 2;
    uint32_t crc = crc32c(0, h, 44);
    memcpy(h + 44, &crc, 4); /* little-endian host */
    assert_int_equal(pwrite(fd, h, HDR, 0), HDR);
    close(fd);
    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), TALLY_ECONFIG);
    assert_int_equal(c.n, 0);
    assert_non_null(strstr(rep.error, "journal-0000000000000001.tj: format version 2 is newer"));
    assert_non_null(strstr(rep.error, "reads version 1"));
    coll_free(&c);
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), TALLY_ECONFIG);
}

/* ---- Segments ---- */

static void test_rotation(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    char p2[128], p3[128], p5[128];
    seg_path(f, 2, p2, sizeof(p2));
    seg_path(f, 3, p3, sizeof(p3));
    seg_path(f, 5, p5, sizeof(p5));
    uint64_t start;
    /* The writer is held inside its first sync, so the rotation stays
     * queued and a second one must wait. */
    atomic_store(&f->gate, true);
    append_n(f, 1, 1, 0);
    gate_wait(f);
    append_n(f, 2, 9, 0);
    assert_int_equal(journal_rotate(&f->j, 1, &start), TALLY_EINVAL);
    assert_int_equal(journal_rotate(&f->j, 2, &start), 0);
    assert_int_equal(start, 11);
    assert_int_equal(journal_rotate(&f->j, 3, &start), TALLY_EAGAIN);
    uv_sem_post(&f->gate_release);
    append_n(f, 11, 1, 0);
    wait_durable(f, 11);
    assert_true(file_size(p2) >= HDR); /* start durable => new segment exists */
    append_n(f, 12, 9, 0);
    fclose(fopen(p5, "w"));
    assert_int_equal(journal_rotate(&f->j, 5, &start), TALLY_EEXIST);
    unlink(p5);
    assert_int_equal(journal_rotate(&f->j, 3, &start), 0);
    assert_int_equal(start, 21);
    append_n(f, 21, 5, 0);
    wait_durable(f, 25);
    close_journal(f, 0);

    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 25);
    for (uint64_t i = 0; i < 25; i++)
        assert_int_equal(c.pos[i], i + 1);
    assert_int_equal(rep.segments, 3);
    assert_int_equal(rep.first_gen, 1);
    assert_int_equal(rep.last_gen, 3);
    assert_int_equal(rep.pos_gaps, 0);
    coll_free(&c);
    assert_int_equal(replay(f, 2, 15, &c, &rep), 0);
    assert_int_equal(c.n, 11);
    assert_int_equal(c.pos[0], 15);
    assert_int_equal(rep.skipped, 4);
    assert_int_equal(rep.segments, 2);
    coll_free(&c);

    unsigned removed = 0;
    assert_int_equal(journal_remove_before(f->dir, 3, &removed), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(file_size(p2), -1);
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(rep.segments, 1);
    assert_int_equal(rep.first_gen, 3);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.pos[0], 21);
    assert_int_equal(rep.next_pos, 26);
    coll_free(&c);

    /* Reopening the newest segment continues its positions; a rotation
     * with nothing pending still creates the new segment. */
    assert_int_equal(jopen(f, &o, 3, 0), 0);
    append_n(f, 26, 1, 0);
    wait_durable(f, 26);
    assert_int_equal(journal_rotate(&f->j, 4, &start), 0);
    assert_int_equal(start, 27);
    close_journal(f, 0);
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(rep.last_gen, 4);
    assert_int_equal(rep.next_pos, 27);
    assert_int_equal(c.n, 6);
    coll_free(&c);
    assert_int_equal(jopen(f, &o, 3, 0), TALLY_EINVAL); /* 4 is newer */
    assert_non_null(strstr(journal_errmsg(&f->j), "journal-0000000000000004.tj is newer"));
}

/* Damage at the end of a segment that has a successor is not a torn tail:
 * it is reported and left, and the next segment is read. */
static void test_corrupt_tail_of_older_segment(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    append_n(f, 1, 10, 60);
    assert_int_equal(journal_rotate(&f->j, 2, NULL), 0);
    append_n(f, 11, 10, 60);
    wait_durable(f, 20);
    close_journal(f, 0);
    char p1[128];
    seg_path(f, 1, p1, sizeof(p1));
    off_t size = file_size(p1);
    poke(p1, size - 5, 0xFF);
    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 19);
    assert_int_equal(c.pos[9], 11);
    assert_false(rep.torn_tail);
    assert_int_equal(rep.corrupt_regions, 1);
    assert_int_equal(rep.corrupt_first_offset, size - (OVH + 60));
    assert_int_equal(file_size(p1), size);
    coll_free(&c);
}

/* ---- Failures ---- */

static void test_enospc(void **state)
{
    fx_t *f = *state;
    const uint64_t rs = OVH + 60;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    append_n(f, 1, 10, 60);
    wait_durable(f, 10);
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

/* ---- Speed sanity (printed, not asserted) ---- */

static int count_cb(const void *payload, size_t len, uint64_t pos, void *ctx)
{
    (void)payload;
    uint64_t *n = ctx;
    if (pos != *n + 1 || len != 60)
        return TALLY_EIO;
    (*n)++;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_replay_many(void **state)
{
    fx_t *f = *state;
    const char *env = getenv("TEST_JOURNAL_RECORDS");
    uint64_t n = env ? strtoull(env, NULL, 10) : 1000000;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_NEVER);
    o.io = (journal_io_t){0};
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    uint8_t buf[60];
    memset(buf, 0x5A, sizeof(buf));
    for (uint64_t p = 1; p <= n; p++) {
        assert_int_equal(journal_append(&f->j, buf, sizeof(buf), NULL), 0);
        if (p % 65536 == 0)
            uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    close_journal(f, 0);
    assert_int_equal(f->durable, n);
    uint64_t seen = 0;
    journal_replay_opts_t ro = {.on_record = count_cb, .ctx = &seen};
    journal_replay_report_t rep;
    double t0 = now_s();
    assert_int_equal(journal_replay(f->dir, &ro, &rep), 0);
    double dt = now_s() - t0;
    assert_int_equal(seen, n);
    assert_int_equal(rep.records, n);
    print_message("    replayed %llu records of 60 bytes in %.3f s: %.2f million/s\n",
                  (unsigned long long)n, dt, dt > 0 ? (double)n / dt / 1e6 : 0.0);
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
        T(test_torn_tail),
        T(test_corrupt_middle),
        T(test_bad_header),
        T(test_newer_version),
        T(test_rotation),
        T(test_corrupt_tail_of_older_segment),
        T(test_enospc),
        T(test_sync_eio),
        T(test_interval_sync_failure),
        T(test_close_while_failed),
        T(test_close_flushes),
        T(test_replay_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
