/* journal.c - appending to the journal: group commit on a writer thread.
 *
 * Two buffers alternate.  The loop appends records to bufs[cur]; when the
 * writer thread is idle it swaps, takes the full buffer as the active
 * group, and writes (and, by policy, syncs) it without holding the lock,
 * while the loop fills the other buffer.  The mutex guards only the swap,
 * the flags and the counters, so an append never waits for the disk.
 *
 * Without a sync per group the loop may take the group itself (g_inline):
 * it then owns the file and the writer's fields until it has written the
 * group, and the writer leaves both alone meanwhile.  Whatever could wait
 * for the disk (a sync, a new segment, a retry) stays with the writer.
 *
 * The writer tells the loop what happened through shared fields read in
 * the uv_async_t callback: the highest durable position, and failure and
 * recovery sequence numbers that make on_error and on_recovered fire once
 * per episode however many wake-ups libuv coalesces.
 */
#include "journal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomic_file.h"
#include "journal_fmt.h"
#include "vec.h"

#define DEFAULT_INTERVAL_MS 100
#define DEFAULT_RETRY_MS    1000
#define DEFAULT_MAX_PENDING ((size_t)256 << 20)
#define BUF_MIN             ((size_t)64 << 10)
/* A buffer grown past this by a burst is freed once written, so one burst
 * does not pin its memory for the life of the daemon. */
#define BUF_KEEP ((size_t)8 << 20)
#define MS_NS    1000000ull

static ssize_t sys_write(void *ctx, int fd, const void *buf, size_t len)
{
    (void)ctx;
    return write(fd, buf, len);
}

static int sys_sync(void *ctx, int fd)
{
    (void)ctx;
    return fdatasync(fd);
}

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- File operations (writer thread, and journal_open before it) ---- */

/* 0, or TALLY_EIO with errno set. */
static int write_all(journal_t *j, int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = j->opts.io.write_fn(j->opts.io.ctx, fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return TALLY_EIO;
        if (k == 0) {
            errno = EIO; /* a write that makes no progress would spin */
            return TALLY_EIO;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* 0, or TALLY_EIO with errno set. */
static int do_sync(journal_t *j, int fd)
{
    int r;
    do
        r = j->opts.io.sync_fn(j->opts.io.ctx, fd);
    while (r != 0 && errno == EINTR);
    return r == 0 ? 0 : TALLY_EIO;
}

/* Create segment gen: its header written and synced under a temporary
 * name (through the I/O hooks), renamed into place without replacing
 * anything, and the directory synced.  Returns 0 with the open descriptor
 * (positioned after the header) in *fd_out, or TALLY_EIO (TALLY_EEXIST:
 * the name is taken) with a sentence in cause.  Nothing is left behind on
 * failure: the file holds no record yet, so a retry starts over instead of
 * tripping over its own half-made segment. */
static int create_segment(journal_t *j, uint64_t gen, uint64_t start_pos, int *fd_out, char *cause,
                          size_t cl)
{
    char name[JOURNAL_NAME_MAX];
    journal_segment_name(name, gen);
    uint8_t hdr[JOURNAL_HEADER_SIZE];
    journal_fmt_header_encode(hdr, gen, start_pos, realtime_ms());
    const atomic_file_io_t io = {j->opts.io.write_fn, j->opts.io.sync_fn, j->opts.io.ctx};
    const atomic_file_opts_t opts = {.no_replace = true, .keep_fd = fd_out, .io = &io};
    return atomic_file_write(-1, j->dir, name, hdr, sizeof(hdr), &opts, cause, cl);
}

/* Write bytes [from, to) of group g at the end of the segment; sync when
 * asked.  file_off only moves once the bytes are as durable as the policy
 * wants, so a retry knows where the good part of the file ends.  Returns 0,
 * or TALLY_EIO with a sentence in cause. */
static int write_part(journal_t *j, const journal_buf_t *g, size_t from, size_t to, bool sync,
                      char *cause, size_t cl)
{
    char name[JOURNAL_NAME_MAX];
    if (from < to && write_all(j, j->fd, g->data + from, to - from) != 0) {
        journal_segment_name(name, j->gen);
        snprintf(cause, cl, "%s/%s: write of %zu bytes at offset %" PRIu64 " failed: %s", j->dir,
                 name, to - from, j->file_off, strerror(errno));
        return TALLY_EIO;
    }
    if (sync && do_sync(j, j->fd) != 0) {
        journal_segment_name(name, j->gen);
        snprintf(cause, cl, "%s/%s: fdatasync of bytes %" PRIu64 "..%" PRIu64 " failed: %s", j->dir,
                 name, j->synced_off, j->file_off + (to - from), strerror(errno));
        return TALLY_EIO;
    }
    j->file_off += to - from;
    j->w_bytes += to - from;
    if (sync) {
        j->synced_off = j->file_off;
        j->w_syncs++;
        j->next_sync_ns = 0;
    } else if (j->next_sync_ns == 0 && j->file_off > j->synced_off) {
        j->next_sync_ns = uv_hrtime() + (uint64_t)j->opts.interval_ms * MS_NS;
    }
    return 0;
}

/* Make records up to pos visible to the loop as durable. */
static void publish(journal_t *j, uint64_t pos)
{
    uv_mutex_lock(&j->mu);
    if (pos > j->durable_pos)
        j->durable_pos = pos;
    j->bytes_written = j->w_bytes;
    j->syncs = j->w_syncs;
    bool wake = !j->g_inline; /* the loop reports an inline group itself */
    uv_mutex_unlock(&j->mu);
    if (wake)
        uv_async_send(&j->async);
}

/* Write what is left of the active group: the part for the current
 * segment, the switch to a new segment if the group holds a rotation, and
 * the part for the new segment.  Resumable: after a failure it continues
 * from g_done.  Returns 0, or TALLY_EIO with a sentence in cause. */
static int run_group(journal_t *j, char *cause, size_t cl)
{
    const journal_buf_t *g = &j->bufs[j->cur ^ 1];
    bool always = j->opts.sync == JOURNAL_SYNC_ALWAYS;
    size_t a_end = g->rotate ? g->rotate_off : g->len;
    if (j->g_done < a_end) {
        /* The old segment is synced before the switch, whatever the policy,
         * so a segment that has a successor is always complete. */
        if (write_part(j, g, j->g_done, a_end, always || g->rotate, cause, cl) != 0)
            return TALLY_EIO;
        j->g_done = a_end;
        if (!g->rotate)
            publish(j, g->last_pos);
    }
    if (g->rotate && !j->g_switched) {
        if (j->synced_off < j->file_off && write_part(j, g, a_end, a_end, true, cause, cl) != 0)
            return TALLY_EIO;
        int fd;
        if (create_segment(j, g->rotate_gen, g->rotate_pos, &fd, cause, cl) != 0)
            return TALLY_EIO;
        close(j->fd);
        j->fd = fd;
        j->gen = g->rotate_gen;
        uv_mutex_lock(&j->mu);
        j->created_gen = g->rotate_gen;
        uv_mutex_unlock(&j->mu);
        j->file_off = j->synced_off = JOURNAL_HEADER_SIZE;
        j->g_switched = true;
        publish(j, g->rotate_pos - 1);
    }
    if (j->g_done < g->len) {
        if (write_part(j, g, j->g_done, g->len, always, cause, cl) != 0)
            return TALLY_EIO;
        j->g_done = g->len;
        publish(j, g->last_pos);
    }
    return 0;
}

/* After a failure: cut whatever a failed write left past the good end of
 * the segment, redo a failed periodic sync, and finish the active group.
 * Returns 0, or TALLY_EIO with a sentence in cause. */
static int recover_step(journal_t *j, char *cause, size_t cl)
{
    if (ftruncate(j->fd, (off_t)j->file_off) != 0 ||
        lseek(j->fd, (off_t)j->file_off, SEEK_SET) < 0) {
        char name[JOURNAL_NAME_MAX];
        journal_segment_name(name, j->gen);
        snprintf(cause, cl, "%s/%s: cannot truncate to offset %" PRIu64 " for a retry: %s", j->dir,
                 name, j->file_off, strerror(errno));
        return TALLY_EIO;
    }
    if (j->sync_failed) {
        if (write_part(j, NULL, 0, 0, true, cause, cl) != 0)
            return TALLY_EIO;
        j->sync_failed = false;
        publish(j, 0);
    }
    if (j->g_active)
        return run_group(j, cause, cl);
    return 0;
}

/* ---- The writer thread ---- */

/* Enter (or stay in) the failed state; mu held. */
static void enter_failed(journal_t *j, const char *cause)
{
    if (!j->failed) {
        j->failed = true;
        j->fail_seq++;
        j->failures++;
        snprintf(j->t_err, sizeof(j->t_err), "%s", cause);
        uv_async_send(&j->async);
    }
    j->next_retry_ns = uv_hrtime() + (uint64_t)j->opts.retry_ms * MS_NS;
}

/* The active group is done: recycle its buffer; mu held. */
static void finish_group(journal_t *j)
{
    journal_buf_t *g = &j->bufs[j->cur ^ 1];
    if (g->cap > BUF_KEEP) {
        free(g->data);
        g->data = NULL;
        g->cap = 0;
    }
    g->len = 0;
    g->last_pos = 0;
    g->rotate = false;
    j->g_active = false;
    j->groups++;
}

static void wait_until(journal_t *j, uint64_t deadline_ns)
{
    uint64_t now = uv_hrtime();
    if (deadline_ns > now)
        (void)uv_cond_timedwait(&j->cv, &j->mu, deadline_ns - now);
}

/* Called with mu held; returns with it held.  Returns true when the thread
 * should exit. */
static bool writer_iteration(journal_t *j, bool *final_try)
{
    char cause[sizeof(j->t_err)];
    if (j->g_inline) { /* the loop is writing a group: hands off the file */
        uv_cond_wait(&j->cv, &j->mu);
        return false;
    }
    if (!j->g_active) {
        const journal_buf_t *c = &j->bufs[j->cur];
        if (c->len > 0 || c->rotate) {
            j->cur ^= 1;
            j->g_active = true;
            j->g_done = 0;
            j->g_switched = false;
        }
    }
    if (j->failed) {
        if (j->stop) {
            /* Closing: one last attempt right away, then give up. */
            if (*final_try) {
                j->lost = true;
                return true;
            }
            *final_try = true;
        } else if (uv_hrtime() < j->next_retry_ns) {
            wait_until(j, j->next_retry_ns);
            return false;
        }
        uv_mutex_unlock(&j->mu);
        int rc = recover_step(j, cause, sizeof(cause));
        uv_mutex_lock(&j->mu);
        if (rc != 0) {
            enter_failed(j, cause);
            return false;
        }
        j->failed = false;
        j->recover_seq++;
        if (j->g_active)
            finish_group(j);
        uv_async_send(&j->async);
        return false;
    }
    bool interval = j->opts.sync == JOURNAL_SYNC_INTERVAL;
    if (interval && j->next_sync_ns != 0 && (uv_hrtime() >= j->next_sync_ns || j->stop)) {
        j->t_io = true; /* keeps the loop from writing a group meanwhile */
        uv_mutex_unlock(&j->mu);
        int rc = write_part(j, NULL, 0, 0, true, cause, sizeof(cause));
        if (rc != 0)
            strncat(cause, "; records acknowledged since the last sync may not be on disk",
                    sizeof(cause) - strlen(cause) - 1);
        else
            publish(j, 0);
        uv_mutex_lock(&j->mu);
        j->t_io = false;
        if (rc != 0) {
            j->sync_failed = true;
            enter_failed(j, cause);
        }
        return false;
    }
    if (j->g_active) {
        uv_mutex_unlock(&j->mu);
        int rc = run_group(j, cause, sizeof(cause));
        uv_mutex_lock(&j->mu);
        if (rc != 0)
            enter_failed(j, cause);
        else
            finish_group(j);
        return false;
    }
    if (j->stop)
        return true;
    if (interval && j->next_sync_ns != 0)
        wait_until(j, j->next_sync_ns);
    else
        uv_cond_wait(&j->cv, &j->mu);
    return false;
}

static void writer_main(void *arg)
{
    journal_t *j = arg;
    bool final_try = false;
    pthread_setname_np(pthread_self(), "tallyd-journal"); /* for top -H, ps -L */
    uv_mutex_lock(&j->mu);
    /* Held until the first wait: no append lands before the writer has
     * looked once and found nothing, so it never takes a group by the
     * accident of starting late (tests count groups). */
    uv_sem_post(j->started);
    while (!writer_iteration(j, &final_try))
        ;
    bool failed = j->failed;
    uv_mutex_unlock(&j->mu);
    /* A clean stop leaves every written byte synced, whatever the policy. */
    char cause[sizeof(j->t_err)];
    if (!failed && j->synced_off < j->file_off) {
        if (write_part(j, NULL, 0, 0, true, cause, sizeof(cause)) != 0) {
            uv_mutex_lock(&j->mu);
            j->lost = true;
            enter_failed(j, cause);
            uv_mutex_unlock(&j->mu);
        } else {
            publish(j, 0);
        }
    }
}

/* ---- The loop side ---- */

/* Run the callbacks for whatever the writer reported since last time.
 * libuv coalesces wake-ups, so several episodes may arrive at once; the
 * callbacks still alternate error, recovered, error, and the last one
 * matches the journal's state. */
static void deliver(journal_t *j)
{
    uv_mutex_lock(&j->mu);
    uint64_t durable = j->durable_pos;
    uint32_t fs = j->fail_seq, rs = j->recover_seq;
    if (fs != j->seen_fail)
        snprintf(j->errmsg, sizeof(j->errmsg), "%s", j->t_err);
    uv_mutex_unlock(&j->mu);
    const journal_opts_t *o = &j->opts;
    bool loop_failed = j->seen_fail != j->seen_recover;
    bool new_fail = fs != j->seen_fail, new_recover = rs != j->seen_recover;
    j->seen_fail = fs;
    j->seen_recover = rs;
    if (!loop_failed && new_fail) {
        loop_failed = true;
        if (o->on_error)
            o->on_error(j, TALLY_EIO, j->errmsg, o->ctx);
    }
    if (durable > j->reported_pos) {
        j->reported_pos = durable;
        if (o->on_durable)
            o->on_durable(j, durable, o->ctx);
    }
    if (loop_failed && new_recover) {
        loop_failed = false;
        if (o->on_recovered)
            o->on_recovered(j, o->ctx);
    }
    if (!loop_failed && fs != rs && o->on_error)
        o->on_error(j, TALLY_EIO, j->errmsg, o->ctx); /* failed again since */
}

static void on_async(uv_async_t *h)
{
    deliver(h->data);
}

static void on_turn(uv_idle_t *h)
{
    uv_idle_stop(h);
}

/* Write the group the loop has just taken (g_inline set, mu not held),
 * then give the file back to the writer: done, or failed and left for the
 * writer to retry. */
static void write_inline(journal_t *j)
{
    char cause[sizeof(j->t_err)];
    bool interval = j->opts.sync == JOURNAL_SYNC_INTERVAL;
    bool sync_was_due = j->next_sync_ns != 0;
    uint64_t t0 = uv_hrtime();
    int rc = run_group(j, cause, sizeof(cause));
    uint64_t t1 = uv_hrtime();
    if (t1 - t0 > (uint64_t)JOURNAL_INLINE_SLOW_MS * MS_NS)
        j->inline_pause_until_ns = t1 + (uint64_t)JOURNAL_INLINE_PAUSE_MS * MS_NS;
    uv_mutex_lock(&j->mu);
    j->g_inline = false;
    if (rc != 0) {
        enter_failed(j, cause); /* the group stays active: the writer retries it */
        uv_cond_signal(&j->cv);
    } else {
        finish_group(j);
        j->groups_inline++;
        /* A periodic sync now due (INTERVAL): the writer waits for it. */
        if (interval && !sync_was_due && j->next_sync_ns != 0)
            uv_cond_signal(&j->cv);
    }
    uv_mutex_unlock(&j->mu);
}

/* Before the loop polls: write what this iteration appended, or wake an
 * idle writer for it.  One group per iteration instead of one per request
 * lets one write take everything a burst of requests appended.  on_durable
 * may append in turn (and an inline group reports at once), so a few rounds
 * run before the rest is left to the writer. */
static void on_kick(uv_prepare_t *h)
{
    journal_t *j = h->data;
    bool may_inline = j->opts.sync != JOURNAL_SYNC_ALWAYS;
    for (int round = 0; j->appended_since_kick; round++) {
        j->appended_since_kick = false;
        bool own = false;
        uv_mutex_lock(&j->mu);
        journal_buf_t *c = &j->bufs[j->cur];
        if (!j->g_active && c->len > 0) {
            own = may_inline && round < 4 && !j->failed && !j->t_io && !j->stop && !c->rotate &&
                  (j->inline_pause_until_ns == 0 || uv_hrtime() >= j->inline_pause_until_ns);
            if (own) {
                j->cur ^= 1;
                j->g_active = j->g_inline = true;
                j->g_done = 0;
                j->g_switched = false;
            } else {
                uv_cond_signal(&j->cv);
            }
        }
        uv_mutex_unlock(&j->mu);
        if (!own)
            return;
        write_inline(j);
        deliver(j);
        if (j->closing) /* on_durable closed the journal */
            return;
        /* What on_durable set going (a check handle, say) must not wait
         * for the poll that follows this callback to time out. */
        uv_idle_start(&j->turn, on_turn);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    journal_t *j = h->data;
    if (--j->handles == 0 && j->user_close_cb)
        j->user_close_cb(j);
}

static int open_fail(journal_t *j, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int open_fail(journal_t *j, int code, const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->errmsg, sizeof(j->errmsg), fmt, ap);
        va_end(ap);
    }
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    free(j->dir);
    j->dir = NULL;
    return code;
}

/* Open the existing segment gen for appending after checking it. */
static int open_existing(journal_t *j, const char *path, uint64_t gen, uint64_t *next_pos)
{
    uint64_t end, start, last;
    int rc =
        journal_read_check_segment(j->dir, gen, &end, &start, &last, j->errmsg, sizeof(j->errmsg));
    if (rc != 0)
        return open_fail(j, rc, NULL);
    uint64_t min_next = last + 1 > start ? last + 1 : start;
    if (min_next == 0)
        min_next = 1;
    if (*next_pos == 0)
        *next_pos = min_next;
    else if (*next_pos < min_next)
        return open_fail(j, TALLY_EINVAL,
                         "%s: next position %" PRIu64 " would reuse positions; the segment "
                         "already reaches %" PRIu64,
                         path, *next_pos, min_next - 1);
    j->fd = open(path, O_WRONLY | O_CLOEXEC);
    if (j->fd < 0 || lseek(j->fd, (off_t)end, SEEK_SET) < 0)
        return open_fail(j, TALLY_EIO, "%s: cannot open for appending: %s", path, strerror(errno));
    /* The previous process may have died with this data only in the page
     * cache; it was replayed, so it must be on disk before anything new. */
    if (do_sync(j, j->fd) != 0)
        return open_fail(j, TALLY_EIO, "%s: fdatasync failed: %s", path, strerror(errno));
    j->file_off = j->synced_off = end;
    return 0;
}

int journal_open(journal_t *j, uv_loop_t *loop, const char *dir, const journal_opts_t *opts,
                 uint64_t gen, uint64_t next_pos)
{
    memset(j, 0, sizeof(*j));
    j->fd = -1;
    if (opts)
        j->opts = *opts;
    journal_opts_t *o = &j->opts;
    if (o->sync < JOURNAL_SYNC_ALWAYS || o->sync > JOURNAL_SYNC_NEVER)
        return open_fail(j, TALLY_EINVAL, "journal: sync policy %d is not one of 0..2", o->sync);
    if (o->interval_ms == 0)
        o->interval_ms = DEFAULT_INTERVAL_MS;
    if (o->retry_ms == 0)
        o->retry_ms = DEFAULT_RETRY_MS;
    if (o->max_pending == 0)
        o->max_pending = DEFAULT_MAX_PENDING;
    if (!o->io.write_fn)
        o->io.write_fn = sys_write;
    if (!o->io.sync_fn)
        o->io.sync_fn = sys_sync;
    j->dir = strdup(dir);
    if (!j->dir)
        return open_fail(j, TALLY_ENOMEM, "journal: out of memory");
    char path[4096];
    if (journal_fmt_path(path, sizeof(path), dir, gen, NULL) != 0)
        return open_fail(j, TALLY_EINVAL, "journal: directory path %s too long", dir);
    /* Records appended to an older segment would replay after the newer
     * segments' records with lower positions, and be skipped as damage. */
    uint64_t *gens;
    size_t n;
    int lrc = journal_fmt_list(dir, &gens, &n, j->errmsg, sizeof(j->errmsg));
    if (lrc != 0)
        return open_fail(j, lrc, NULL);
    uint64_t newest = n > 0 ? gens[n - 1] : 0;
    free(gens);
    if (n > 0 && newest > gen) {
        char name[JOURNAL_NAME_MAX];
        journal_segment_name(name, newest);
        return open_fail(j, TALLY_EINVAL,
                         "%s: segment %s is newer than generation %016" PRIx64
                         "; open the newest segment or a new generation above it",
                         dir, name, gen);
    }
    struct stat st;
    if (stat(path, &st) == 0) {
        int rc = open_existing(j, path, gen, &next_pos);
        if (rc != 0)
            return rc;
    } else if (errno == ENOENT) {
        if (next_pos == 0)
            next_pos = 1;
        /* A segment that appeared since the stat() is a failure to create
         * it like any other: TALLY_EIO, as journal_open() documents. */
        if (create_segment(j, gen, next_pos, &j->fd, j->errmsg, sizeof(j->errmsg)) != 0)
            return open_fail(j, TALLY_EIO, NULL);
        j->file_off = j->synced_off = JOURNAL_HEADER_SIZE;
    } else {
        return open_fail(j, TALLY_EIO, "%s: %s", path, strerror(errno));
    }
    j->loop = loop;
    j->gen = j->gen_appending = j->created_gen = gen;
    j->next_pos = next_pos;
    j->reported_pos = j->durable_pos = next_pos - 1;
    if (uv_mutex_init(&j->mu) != 0)
        return open_fail(j, TALLY_ESYS, "journal: uv_mutex_init failed");
    if (uv_cond_init(&j->cv) != 0) {
        uv_mutex_destroy(&j->mu);
        return open_fail(j, TALLY_ESYS, "journal: uv_cond_init failed");
    }
    int rc = uv_async_init(loop, &j->async, on_async);
    if (rc == 0) {
        j->async.data = j->kick.data = j->turn.data = j;
        uv_prepare_init(loop, &j->kick);
        uv_prepare_start(&j->kick, on_kick);
        uv_unref((uv_handle_t *)&j->kick);
        uv_idle_init(loop, &j->turn);
        uv_unref((uv_handle_t *)&j->turn);
        uv_sem_t started;
        rc = uv_sem_init(&started, 0);
        if (rc == 0) {
            j->started = &started;
            rc = uv_thread_create(&j->thread, writer_main, j);
            if (rc == 0)
                uv_sem_wait(&started); /* the writer is done with it after the post */
            uv_sem_destroy(&started);
            j->started = NULL;
        }
        if (rc != 0) {
            /* The handles are closed and j stays valid until the loop
             * runs; without a callback the caller need not wait. */
            uv_close((uv_handle_t *)&j->async, NULL);
            uv_close((uv_handle_t *)&j->kick, NULL);
            uv_close((uv_handle_t *)&j->turn, NULL);
        }
    }
    if (rc != 0) {
        uv_cond_destroy(&j->cv);
        uv_mutex_destroy(&j->mu);
        return open_fail(j, TALLY_ESYS, "journal: cannot start the writer: %s", uv_strerror(rc));
    }
    j->open = true;
    return 0;
}

int journal_append(journal_t *j, const void *payload, size_t len, uint64_t *pos_out)
{
    if (j->closing)
        return TALLY_ECLOSED;
    assert(j->open);
    if (len > JOURNAL_MAX_PAYLOAD || (len > 0 && !payload))
        return TALLY_EINVAL;
    size_t need = JOURNAL_RECORD_OVERHEAD + len;
    uint64_t pos = j->next_pos;
    uint8_t hdr[JOURNAL_RECORD_OVERHEAD];
    /* The CRC is computed before taking the lock, so the writer's swap
     * never waits for it. */
    journal_fmt_record_header(hdr, payload, (uint32_t)len, pos);
    uv_mutex_lock(&j->mu);
    journal_buf_t *b = &j->bufs[j->cur];
    int rc = 0;
    if (j->failed)
        rc = TALLY_EUNAVAIL;
    else if (b->len > 0 && b->len + need > j->opts.max_pending)
        rc = TALLY_EBUSY;
    else if (VEC_RESERVE(b->data, b->cap, b->len + need > BUF_MIN ? b->len + need : BUF_MIN) != 0)
        rc = TALLY_ENOMEM; /* a buffer starts at BUF_MIN and doubles */
    if (rc == 0) {
        memcpy(b->data + b->len, hdr, sizeof(hdr));
        if (len > 0)
            memcpy(b->data + b->len + sizeof(hdr), payload, len);
        b->len += need;
        b->last_pos = pos;
        j->appended++;
        /* The writer is woken before the loop next polls (on_kick); while
         * it writes, it takes the buffer by itself when done. */
        j->appended_since_kick = true;
    }
    uv_mutex_unlock(&j->mu);
    if (rc != 0)
        return rc;
    j->next_pos++;
    if (pos_out)
        *pos_out = pos;
    return 0;
}

int journal_rotate(journal_t *j, uint64_t new_gen, uint64_t *start_pos_out)
{
    if (j->closing)
        return TALLY_ECLOSED;
    assert(j->open);
    if (new_gen <= j->gen_appending)
        return TALLY_EINVAL;
    char path[4096];
    struct stat st;
    if (journal_fmt_path(path, sizeof(path), j->dir, new_gen, NULL) != 0)
        return TALLY_EINVAL;
    if (stat(path, &st) == 0)
        return TALLY_EEXIST;
    uv_mutex_lock(&j->mu);
    journal_buf_t *b = &j->bufs[j->cur];
    int rc = 0;
    if (j->failed) {
        rc = TALLY_EUNAVAIL;
    } else if (b->rotate) {
        rc = TALLY_EAGAIN;
    } else {
        b->rotate = true;
        b->rotate_off = b->len;
        b->rotate_gen = new_gen;
        b->rotate_pos = j->next_pos;
        uv_cond_signal(&j->cv);
    }
    uv_mutex_unlock(&j->mu);
    if (rc != 0)
        return rc;
    j->gen_appending = new_gen;
    if (start_pos_out)
        *start_pos_out = j->next_pos;
    return 0;
}

int journal_close(journal_t *j, void (*close_cb)(journal_t *j))
{
    assert(j->open && !j->closing);
    j->closing = true;
    uv_mutex_lock(&j->mu);
    j->stop = true;
    uv_cond_signal(&j->cv);
    uv_mutex_unlock(&j->mu);
    uv_thread_join(&j->thread);
    /* The writer is gone: the last reports are delivered here, before
     * journal_close returns, rather than on a later loop iteration. */
    deliver(j);
    int rc = (j->lost || j->durable_pos + 1 < j->next_pos) ? TALLY_EIO : 0;
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    for (int i = 0; i < 2; i++) {
        free(j->bufs[i].data);
        j->bufs[i] = (journal_buf_t){0};
    }
    uv_cond_destroy(&j->cv);
    uv_mutex_destroy(&j->mu);
    free(j->dir);
    j->dir = NULL;
    j->open = false;
    j->user_close_cb = close_cb;
    j->handles = 3;
    uv_close((uv_handle_t *)&j->async, on_handle_closed);
    uv_close((uv_handle_t *)&j->kick, on_handle_closed);
    uv_close((uv_handle_t *)&j->turn, on_handle_closed);
    return rc;
}

void journal_stats(journal_t *j, journal_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    st->gen = j->gen_appending;
    st->next_pos = j->next_pos;
    if (!j->open) {
        st->durable_pos = j->reported_pos;
        st->segment_gen = j->created_gen;
        return;
    }
    uv_mutex_lock(&j->mu);
    st->durable_pos = j->durable_pos;
    st->appended = j->appended;
    st->groups = j->groups;
    st->groups_inline = j->groups_inline;
    st->syncs = j->syncs;
    st->bytes_written = j->bytes_written;
    st->pending_bytes = j->bufs[j->cur].len + (j->g_active ? j->bufs[j->cur ^ 1].len : 0);
    st->failures = j->failures;
    st->failed = j->failed;
    st->segment_gen = j->created_gen;
    uv_mutex_unlock(&j->mu);
}

const char *journal_errmsg(const journal_t *j)
{
    return j->errmsg;
}
