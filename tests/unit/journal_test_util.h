/* Fixture and helpers shared by the journal unit tests (test_journal.c,
 * test_journal_replay.c): a temporary directory, a real libuv loop, I/O
 * hooks that inject failures, and replay collection.  Static inline so
 * that each test uses what it needs. */
#ifndef TALLY_JOURNAL_TEST_UTIL_H
#define TALLY_JOURNAL_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    /* I/O hooks (writer thread, or the loop's for an inline group) */
    atomic_int fail_write;
    atomic_int fail_sync; /* syncs left to fail with EIO */
    atomic_int sync_calls;
    atomic_int_fast64_t written, synced_mark;
    atomic_uint_fast64_t written_pos, synced_pos; /* highest record position */
    atomic_bool gate;                             /* hold the next sync until released */
    uv_sem_t gate_entered, gate_release;
    atomic_int write_delay_ms;  /* each write takes at least this long */
    atomic_bool writer_is_loop; /* the last write ran on the loop's thread */
    pthread_t loop_thread;
} fx_t;

static inline ssize_t hook_write(void *ctx, int fd, const void *buf, size_t len)
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
    atomic_store(&f->writer_is_loop, pthread_equal(pthread_self(), f->loop_thread) != 0);
    int delay = atomic_load(&f->write_delay_ms);
    if (delay > 0)
        uv_sleep((unsigned)delay);
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

static inline int hook_sync(void *ctx, int fd)
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
static inline void gate_wait(fx_t *f)
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

static inline void cb_durable(journal_t *j, uint64_t upto, void *ctx)
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

static inline void cb_error(journal_t *j, int code, const char *what, void *ctx)
{
    (void)j;
    fx_t *f = ctx;
    assert_int_equal(code, TALLY_EIO);
    f->errors++;
    snprintf(f->last_error, sizeof(f->last_error), "%s", what);
}

static inline void cb_recovered(journal_t *j, void *ctx)
{
    (void)j;
    ((fx_t *)ctx)->recovered++;
}

static inline void cb_closed(journal_t *j)
{
    fx_t *f = (fx_t *)((char *)j - offsetof(fx_t, j));
    f->closed = true;
}

static inline int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/tally-journal-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->loop_thread = pthread_self();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_sem_init(&f->gate_entered, 0), 0);
    assert_int_equal(uv_sem_init(&f->gate_release, 0), 0);
    *state = f;
    return 0;
}

static inline int teardown(void **state)
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

static inline journal_opts_t opts_for(fx_t *f, int sync)
{
    journal_opts_t o = {.sync = sync, .retry_ms = 20, .ctx = f};
    f->check_sync = sync == JOURNAL_SYNC_ALWAYS;
    o.on_durable = cb_durable;
    o.on_error = cb_error;
    o.on_recovered = cb_recovered;
    o.io = (journal_io_t){.write_fn = hook_write, .sync_fn = hook_sync, .ctx = f};
    return o;
}

static inline void on_timeout(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

typedef bool (*pred_fn)(const fx_t *f, uint64_t arg);

static inline bool p_durable(const fx_t *f, uint64_t pos)
{
    return f->durable >= pos;
}

static inline bool p_closed(const fx_t *f, uint64_t arg)
{
    (void)arg;
    return f->closed;
}

/* Run the loop until pred holds or ms pass; returns pred. */
static inline bool run_until(fx_t *f, pred_fn pred, uint64_t arg, unsigned ms)
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

/* Run until records up to pos are durable (10 s guard). */
static inline void wait_durable(fx_t *f, uint64_t pos)
{
    assert_true(run_until(f, p_durable, pos, 10000));
}

/* journal_open, with the callback records reset for the new session. */
static inline int jopen(fx_t *f, const journal_opts_t *o, uint64_t gen, uint64_t next_pos)
{
    f->durable = 0;
    f->durable_calls = 0;
    f->durable_backwards = f->durable_before_sync = false;
    f->errors = f->recovered = 0;
    return journal_open(&f->j, &f->loop, f->dir, o, gen, next_pos);
}

static inline void close_journal(fx_t *f, int expect)
{
    assert_int_equal(journal_close(&f->j, cb_closed), expect);
    assert_false(f->durable_before_sync);
    assert_false(f->durable_backwards);
    assert_true(run_until(f, p_closed, 0, 5000));
    f->closed = false;
}

/* ---- Payloads and replay collection ---- */

static inline size_t payload_for(uint64_t pos, size_t len, uint8_t *out)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)(pos * 131 + i * 7 + (i >> 8));
    return len;
}

static inline size_t var_len(uint64_t pos)
{
    return (size_t)((pos * 37) % 301); /* 0 .. 300 bytes */
}

static inline void append_n(fx_t *f, uint64_t first, uint64_t n, size_t fixed)
{
    uint8_t buf[512];
    for (uint64_t p = first; p < first + n; p++) {
        size_t len = payload_for(p, fixed ? fixed : var_len(p), buf);
        uint64_t got = 0;
        assert_int_equal(journal_append(&f->j, buf, len, &got), 0);
        assert_int_equal(got, p);
    }
}

/* Until the writer thread holds no group (10 s guard). */
static inline void wait_writer_idle(fx_t *f)
{
    for (int i = 0; i < 10000; i++) {
        journal_stats_t st;
        journal_stats(&f->j, &st);
        if (st.pending_bytes == 0)
            return;
        uv_sleep(1);
    }
    fail_msg("the journal writer never went idle");
}

/* Append record 1 and wait until it is durable and the writer thread
 * holds no group, so that what a test counts next starts from a quiet
 * journal; *st the stats then. */
static inline void warm_up(fx_t *f, journal_stats_t *st)
{
    append_n(f, 1, 1, 0);
    wait_durable(f, 1);
    wait_writer_idle(f);
    journal_stats(&f->j, st);
}

typedef struct coll {
    uint64_t n, *pos, *len;
    size_t cap;
    bool bad_payload;
} coll_t;

static inline int collect(const void *payload, size_t len, uint64_t pos, void *ctx)
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

static inline void note_cb(const char *line, void *ctx)
{
    (void)ctx;
    print_message("    note: %s\n", line);
}

static inline int replay(fx_t *f, uint64_t from_gen, uint64_t from_pos, coll_t *c,
                         journal_replay_report_t *rep)
{
    memset(c, 0, sizeof(*c));
    journal_replay_opts_t ro = {
        .from_gen = from_gen, .from_pos = from_pos, .on_record = collect, .on_note = note_cb};
    ro.ctx = c;
    return journal_replay(f->dir, &ro, rep);
}

static inline void coll_free(coll_t *c)
{
    free(c->pos);
    free(c->len);
}

static inline void seg_path(fx_t *f, uint64_t gen, char *out, size_t n)
{
    char name[JOURNAL_NAME_MAX];
    journal_segment_name(name, gen);
    snprintf(out, n, "%s/%s", f->dir, name);
}

static inline off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

#endif
