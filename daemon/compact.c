/* compact.c - checkpoints while running, and at the stop (see compact.h). */
#include "compact.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "memhint.h"
#include "vec.h"

/* What the child that built an image reports through its pipe: one write
 * below PIPE_BUF, so it arrives whole or not at all. */
typedef struct child_result {
    int rc;
    uint64_t len;
    uint64_t build_us;
    char err[256];
} child_result_t;

#define CHILD_POLL_MS 5 /* how often the loop looks for the child's end */

static void maybe_closed(compact_t *k)
{
    if (k->on_closed && !k->storing && k->open_handles == 0) {
        free(k->regions);
        k->regions = NULL;
        k->nregions = k->regions_cap = 0;
        void (*cb)(compact_t *) = k->on_closed;
        k->on_closed = NULL;
        cb(k);
    }
}

static void on_wait(uv_timer_t *t);

/* Let go of the image: memory the loop built, or the child's, mapped. */
static void release_image(compact_t *k)
{
    if (k->buf != NULL) {
        if (k->mapped)
            munmap(k->buf, k->len);
        else
            free(k->buf);
    }
    k->buf = NULL;
    k->mapped = false;
}

/* The first position another part still needs (hold_pos), or "none". */
static uint64_t held_back(const compact_t *k)
{
    return k->c.hold_pos != NULL ? k->c.hold_pos(k->c.hold_ctx) : UINT64_MAX;
}

static void store_work(uv_work_t *w)
{
    compact_t *k = w->data;
    uint64_t keep = 0;
    k->removed = 0;
    k->rc = checkpoint_store(k->c.dir, k->buf, k->len, &keep, k->err, sizeof(k->err));
    /* Only segments older than the oldest checkpoint kept may go, and only
     * when an older one is kept at all: if the newest is found damaged
     * later, the one before it plus the journal still hold everything, and
     * with a single checkpoint the whole journal does. */
    if (k->rc == 0 && keep > 0 && keep < k->ckpt_gen) {
        if (k->may_remove)
            journal_remove_before(k->c.dir, keep, &k->removed);
        else
            k->deferred_keep = keep; /* once hold_pos has caught up (on_timer) */
    }
}

/* The checkpoint under way failed or was dropped: nothing new is covered,
 * so a next one (the final one included) is due as if it had not begun. */
static void give_up(compact_t *k)
{
    k->busy = false;
    k->c.covered_pos = k->prev_covered_pos;
}

static void store_done(uv_work_t *w, int status)
{
    compact_t *k = w->data;
    bool by_child = k->mapped;
    release_image(k);
    k->busy = k->storing = false;
    if (status != 0 || k->rc != 0)
        k->c.covered_pos = k->prev_covered_pos;
    if (status != 0 || k->rc != 0)
        log_error(k->c.log, "checkpoint failed: %s; the journal keeps everything meanwhile",
                  k->rc ? k->err : uv_strerror(status));
    else if (by_child)
        log_info(k->c.log,
                 "checkpoint written (%zu bytes, %u series, built in %" PRIu64
                 " ms by a child process; the fork held the loop %" PRId64
                 " us); %u old journal segments removed",
                 k->len, engine_series_count(k->c.engine), k->build_us / 1000, k->fork_us,
                 k->removed);
    else
        log_info(k->c.log,
                 "checkpoint written (%zu bytes, %u series, built on the loop); %u old journal "
                 "segments removed",
                 k->len, engine_series_count(k->c.engine), k->removed);
    maybe_closed(k);
}

/* Queue the image for storing, once the segment it names exists: a
 * checkpoint on disk whose segment does not would look, after a crash,
 * like a segment deleted (recover.h). */
static void store_when_segment_exists(compact_t *k)
{
    journal_stats_t st;
    journal_stats(k->c.journal, &st);
    if (st.segment_gen < k->ckpt_gen) {
        if (!uv_is_active((uv_handle_t *)&k->wait))
            uv_timer_start(&k->wait, on_wait, 2, 2);
        return;
    }
    uv_timer_stop(&k->wait);
    k->may_remove = held_back(k) >= k->c.covered_pos;
    k->deferred_pos = k->c.covered_pos;
    k->storing = true;
    k->work.data = k;
    if (uv_queue_work(k->c.loop, &k->work, store_work, store_done) != 0) {
        release_image(k);
        k->storing = false;
        give_up(k);
    }
}

static void on_wait(uv_timer_t *t)
{
    store_when_segment_exists(t->data);
}

static void collect_unmark(const pending_entry_t *e, void *ctx)
{
    compact_t *k = ctx;
    checkpoint_unmark_t *u = &k->unmark[k->nunmark++];
    memcpy(u->key, e->key, sizeof(u->key));
    u->seq = e->seq;
}

static void on_child(uv_timer_t *t);
static void child_kill(compact_t *k);

static int64_t mono_us(void)
{
    return (int64_t)(uv_hrtime() / 1000);
}

/* The child's whole life: build the image of the state it was forked
 * with, put it in the memory file, report, and end without running any
 * of the parent's exit handlers.  It touches nothing but the state it
 * reads, the memory file and the pipe: the parent's other threads (the
 * journal writer, ZeroMQ's) do not exist here. */
static void child_main(compact_t *k, const checkpoint_meta_t *meta, int memfd, int wfd,
                       pid_t parent)
{
    /* Signals are the parent's business (libuv's handlers would write to
     * the parent's loop); the child ends with its parent.  SIGUSR1 (a
     * backup) sent to every tallyd process must not kill it. */
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], sigs[i] == SIGPIPE || sigs[i] == SIGUSR1 ? SIG_IGN : SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1); /* the parent died before the line above */
    child_result_t r;
    memset(&r, 0, sizeof(r));
    if (k->c.child_delay_ms > 0) {
        struct timespec ts = {k->c.child_delay_ms / 1000,
                              (long)(k->c.child_delay_ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    int64_t t0 = mono_us();
    void *buf = NULL;
    size_t len = 0;
    r.rc = checkpoint_build_except(meta, k->c.towns, k->c.metrics, k->c.engine, k->c.dedup,
                                   k->unmark, k->nunmark, &buf, &len, r.err, sizeof(r.err));
    for (size_t off = 0; r.rc == 0 && off < len;) {
        ssize_t w = write(memfd, (const uint8_t *)buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(r.err, sizeof(r.err), "cannot hold the image of %zu bytes in memory: %s", len,
                     w < 0 ? strerror(errno) : "short write");
            r.rc = TALLY_ENOMEM;
            break;
        }
        off += (size_t)w;
    }
    free(buf);
    r.len = len;
    r.build_us = (uint64_t)(mono_us() - t0);
    ssize_t w;
    do
        w = write(wfd, &r, sizeof(r));
    while (w < 0 && errno == EINTR);
    _exit(w == (ssize_t)sizeof(r) ? 0 : 1);
}

/* Build the image by a child process: fork() gives it the state exactly as
 * it is now, copy-on-write, and the loop goes on at once.  Returns 0 (the
 * child runs; on_child() takes its image) or -1 with errno set, nothing
 * left behind. */
static int fork_build(compact_t *k, const checkpoint_meta_t *meta)
{
    int memfd = memfd_create("tallyd-checkpoint", MFD_CLOEXEC);
    if (memfd < 0)
        return -1;
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
        int e = errno;
        close(memfd);
        errno = e;
        return -1;
    }
    int64_t t0 = mono_us();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        child_main(k, meta, memfd, p[1], parent);
    }
    int e = errno;
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        close(memfd);
        errno = e;
        return -1;
    }
    k->fork_us = mono_us() - t0;
    k->child_mono_ms = clock_mono_ms();
    k->child = pid;
    k->child_rfd = p[0];
    k->memfd = memfd;
    uv_timer_start(&k->child_timer, on_child, CHILD_POLL_MS, CHILD_POLL_MS);
    return 0;
}

/* Forget the child's descriptors (it has ended and been reaped). */
static void child_forget(compact_t *k)
{
    uv_timer_stop(&k->child_timer);
    close(k->child_rfd);
    close(k->memfd);
    k->child = 0;
    k->child_rfd = k->memfd = -1;
}

/* ---- after the child: the parent's pages writable again ----
 *
 * fork() write-protected every page of the loop's memory, so each page
 * the loop writes afterwards costs a fault, whether the child is still
 * there or not: about 16 us on a virtual machine with shadow page
 * tables, a second or more of the loop's time at a million series.  Once
 * the child has ended, the loop makes the engine's blocks writable again,
 * for up to REWARM_SLICE_US at every turn (about 0.25 us a page), and
 * most of those faults never happen (bench/README.md, "The fork's page
 * faults").  On the loop, not a thread: a thread sweeping 250 MB competed
 * with the loop for the two cores and for the page tables, and made a
 * light load's slowest request twice as slow. */

#define REWARM_SLICE_US 2000
#define REWARM_STEP     ((size_t)256 << 10) /* bytes between looks at the clock */

static void add_region(void *ctx, void *p, size_t len)
{
    compact_t *k = ctx;
    if (p == NULL || len == 0)
        return;
    if (k->nregions == k->regions_cap &&
        vec_reserve(&k->regions, &k->regions_cap, k->nregions + 1, sizeof(*k->regions)) != 0)
        return; /* only fewer pages made writable ahead */
    k->regions[k->nregions++] = (struct compact_region){p, len};
}

static void rewarm_end(compact_t *k)
{
    uv_timer_stop(&k->rewarm_timer);
    k->rewarming = false;
    log_debug(k->c.log,
              "the engine's %zu blocks writable again in %" PRId64 " ms (%" PRIu64
              " us of the loop's time)",
              k->nregions, clock_mono_ms() - k->rewarm_mono_ms, k->rewarm_us);
}

/* One slice.  The blocks were listed when the sweep began; one freed
 * meanwhile is harmless: memhint_unshare() changes no byte, only page
 * tables, and skips what is gone. */
static void on_rewarm(uv_timer_t *t)
{
    compact_t *k = t->data;
    int64_t t0 = mono_us(), now = t0;
    while (now - t0 < REWARM_SLICE_US && k->rewarm_at < k->nregions) {
        struct compact_region *r = &k->regions[k->rewarm_at];
        size_t n = r->len - k->rewarm_off < REWARM_STEP ? r->len - k->rewarm_off : REWARM_STEP;
        if (memhint_unshare((char *)r->p + k->rewarm_off, n) != 0) {
            log_notice(k->c.log,
                       "after a checkpoint, pages cannot be made writable again in bulk (%s); "
                       "each page the loop writes takes a fault once instead",
                       strerror(errno));
            k->rewarm_refused = true;
            k->rewarm_at = k->nregions;
            break;
        }
        now = mono_us();
        k->rewarm_off += n;
        if (k->rewarm_off == r->len) {
            k->rewarm_at++;
            k->rewarm_off = 0;
        }
    }
    k->rewarm_us += (uint64_t)(now - t0);
    if (k->rewarm_at == k->nregions)
        rewarm_end(k);
}

/* The child has ended (no process shares the pages now: no checkpoint
 * starts until the sweep is over, on_timer()). */
static void rewarm(compact_t *k)
{
    if (k->rewarming || k->rewarm_refused)
        return;
    k->nregions = 0;
    engine_regions(k->c.engine, add_region, k);
    if (k->nregions == 0)
        return;
    k->rewarm_at = k->rewarm_off = 0;
    k->rewarm_us = 0;
    k->rewarm_mono_ms = clock_mono_ms();
    k->rewarming = true;
    uv_timer_start(&k->rewarm_timer, on_rewarm, 0, 1);
}

/* The child has ended: take its image, mapped from the memory file, and
 * store it once its segment exists. */
static void on_child(uv_timer_t *t)
{
    compact_t *k = t->data;
    int status;
    pid_t r;
    do
        r = waitpid(k->child, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
        int64_t max = k->c.child_max_ms > 0 ? k->c.child_max_ms : 600000;
        if (clock_mono_ms() - k->child_mono_ms > max) {
            log_error(k->c.log,
                      "checkpoint failed: its process (pid %d) did not finish in %" PRId64
                      " ms and is killed; the journal keeps everything meanwhile",
                      k->child, max);
            child_kill(k);
        }
        return;
    }
    rewarm(k);
    child_result_t res;
    ssize_t n = r > 0 ? read(k->child_rfd, &res, sizeof(res)) : -1;
    if (n != (ssize_t)sizeof(res)) {
        if (r < 0)
            log_error(k->c.log, "checkpoint failed: cannot wait for its process: %s",
                      strerror(errno));
        else if (WIFSIGNALED(status))
            log_error(k->c.log,
                      "checkpoint failed: its process was killed by signal %d; the journal keeps "
                      "everything meanwhile",
                      WTERMSIG(status));
        else
            log_error(k->c.log,
                      "checkpoint failed: its process ended with status %d and no image; the "
                      "journal keeps everything meanwhile",
                      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        child_forget(k);
        give_up(k);
        return;
    }
    if (res.rc != 0) {
        res.err[sizeof(res.err) - 1] = '\0';
        log_error(k->c.log, "cannot build a checkpoint: %s", res.err);
        child_forget(k);
        give_up(k);
        return;
    }
    void *m = res.len > 0 ? mmap(NULL, res.len, PROT_READ, MAP_SHARED, k->memfd, 0) : MAP_FAILED;
    if (m == MAP_FAILED) {
        log_error(k->c.log, "checkpoint failed: cannot map its image of %" PRIu64 " bytes: %s",
                  res.len, strerror(errno));
        child_forget(k);
        give_up(k);
        return;
    }
    child_forget(k);
    k->buf = m;
    k->len = res.len;
    k->mapped = true;
    k->build_us = res.build_us;
    store_when_segment_exists(k);
}

/* Stop a child still building (a stop, or a close): its image is dropped,
 * the journal keeps everything it would have covered. */
static void child_kill(compact_t *k)
{
    if (k->child <= 0)
        return;
    kill(k->child, SIGKILL);
    while (waitpid(k->child, NULL, 0) < 0 && errno == EINTR) {
    }
    child_forget(k);
    give_up(k);
}

/* The tallies hold exactly the records below the new segment's first
 * position: build the image of this moment, leaving out the
 * de-duplication marks of the submissions journaled after it and not yet
 * applied.  A child process builds it (fork_build); where it cannot be
 * forked, the loop builds it. */
static void on_applied(void *ctx)
{
    compact_t *k = ctx;
    k->nunmark = 0;
    size_t need = ingest_pending_count(k->c.ingest);
    if (need > 0 && vec_reserve(&k->unmark, &k->unmark_cap, need, sizeof(*k->unmark)) != 0) {
        log_error(k->c.log, "checkpoint postponed: out of memory");
        give_up(k);
        return;
    }
    ingest_pending_foreach(k->c.ingest, collect_unmark, k);
    checkpoint_meta_t meta = {.created_ms = clock_now_ms(k->c.clock),
                              .journal_gen = k->ckpt_gen,
                              .next_pos = k->c.covered_pos,
                              .publish_seq = publish_seq(k->c.publish)};
    if (k->c.fork && fork_build(k, &meta) == 0)
        return;
    if (k->c.fork)
        log_limited(k->c.log, clock_mono_ms(), LOG_LEVEL_WARNING,
                    "checkpoint built on the loop: cannot start its process: %s", strerror(errno));
    int rc =
        checkpoint_build_except(&meta, k->c.towns, k->c.metrics, k->c.engine, k->c.dedup, k->unmark,
                                k->nunmark, &k->buf, &k->len, k->err, sizeof(k->err));
    if (rc != 0) {
        log_error(k->c.log, "cannot build a checkpoint: %s", k->err);
        give_up(k);
        return;
    }
    store_when_segment_exists(k);
}

/* Rotate the journal; once the tallies hold exactly the records below the
 * new segment, build the image on the loop (on_applied), and write it off
 * the loop once the new segment exists. */
static void take_checkpoint(compact_t *k)
{
    uint64_t start = 0;
    int rc = journal_rotate(k->c.journal, k->c.journal_gen + 1, &start);
    if (rc == TALLY_EAGAIN)
        return; /* the previous rotation is still queued; next tick */
    if (rc != 0) {
        log_limited(k->c.log, clock_mono_ms(), LOG_LEVEL_WARNING,
                    "checkpoint postponed: cannot rotate the journal: %s", tally_strerror(rc));
        return;
    }
    k->c.journal_gen++;
    k->prev_covered_pos = k->c.covered_pos;
    k->c.covered_pos = start;
    k->ckpt_gen = k->c.journal_gen;
    k->ckpt_mono_ms = clock_mono_ms();
    k->busy = true;
    ingest_at_applied(k->c.ingest, start - 1, on_applied, k);
}

/* Records appended since the last checkpoint. */
static uint64_t uncovered(const compact_t *k)
{
    uint64_t next = ingest_last_pos(k->c.ingest) + 1;
    return next > k->c.covered_pos ? next - k->c.covered_pos : 0;
}

static void on_timer(uv_timer_t *t)
{
    compact_t *k = t->data;
    if (k->busy || k->rewarming)
        return; /* a child now would share the pages being made writable */
    /* Segments a checkpoint covered but hold_pos still needed then: gone
     * once the part holding them back has caught up (a few unlinks). */
    if (k->deferred_keep > 0 && held_back(k) >= k->deferred_pos) {
        unsigned removed = 0;
        journal_remove_before(k->c.dir, k->deferred_keep, &removed);
        if (removed > 0)
            log_info(k->c.log, "%u old journal segments removed", removed);
        k->deferred_keep = 0;
    }
    if (k->c.checkpoint_now) {
        k->c.checkpoint_now = false;
        take_checkpoint(k);
        return;
    }
    uint64_t records = uncovered(k);
    if (records == 0)
        return;
    if ((int64_t)records < k->c.every_records &&
        clock_mono_ms() - k->ckpt_mono_ms < k->c.interval_ms)
        return;
    take_checkpoint(k);
}

int compact_init(compact_t *k, const compact_config_t *c)
{
    k->c = *c;
    if (k->c.covered_pos == 0)
        k->c.covered_pos = 1;
    k->busy = k->storing = false;
    k->prev_covered_pos = k->c.covered_pos;
    k->final_gen = 0;
    k->buf = NULL;
    k->unmark = NULL;
    k->nunmark = k->unmark_cap = 0;
    k->on_closed = NULL;
    k->ckpt_mono_ms = clock_mono_ms();
    uv_timer_init(c->loop, &k->timer);
    uv_timer_init(c->loop, &k->wait);
    uv_timer_init(c->loop, &k->child_timer);
    uv_timer_init(c->loop, &k->rewarm_timer);
    k->timer.data = k->wait.data = k->child_timer.data = k->rewarm_timer.data = k;
    k->open_handles = 4;
    k->mapped = false;
    k->child = 0;
    k->child_rfd = k->memfd = -1;
    k->fork_us = 0;
    k->build_us = 0;
    k->rewarming = false;
    k->regions = NULL;
    k->nregions = k->regions_cap = 0;
    k->rewarm_us = 0;
    k->rewarm_refused = false;
    uv_timer_start(&k->timer, on_timer, 1000, 1000);
    return 0;
}

void compact_request(compact_t *k)
{
    k->c.checkpoint_now = true;
}

void compact_set_policy(compact_t *k, int64_t interval_ms, int64_t every_records)
{
    k->c.interval_ms = interval_ms;
    k->c.every_records = every_records;
}

void compact_final_begin(compact_t *k)
{
    k->final_gen = 0;
    /* An image still being built describes less than the final one will. */
    child_kill(k);
    /* checkpoint_now still pending: a loss accepted at start-up must be
     * put behind a checkpoint even if nothing came since. */
    if (k->busy || (uncovered(k) == 0 && !k->c.checkpoint_now))
        return;
    int rc = journal_rotate(k->c.journal, k->c.journal_gen + 1, NULL);
    if (rc == 0)
        k->c.journal_gen++;
    else if (rc != TALLY_EAGAIN)
        return; /* no segment for it to name: the journal keeps everything */
    /* TALLY_EAGAIN: a rotation to journal_gen is queued already; the
     * journal creates that segment while it closes. */
    k->final_gen = k->c.journal_gen;
}

void compact_final(compact_t *k)
{
    if (k->final_gen == 0)
        return;
    journal_stats_t st;
    journal_stats(k->c.journal, &st);
    if (st.segment_gen < k->final_gen) {
        log_error(k->c.log, "final checkpoint skipped: the journal could not start its segment; "
                            "the journal keeps everything");
        return;
    }
    checkpoint_meta_t meta = {.created_ms = clock_now_ms(k->c.clock),
                              .journal_gen = k->final_gen,
                              .next_pos = ingest_last_pos(k->c.ingest) + 1,
                              .publish_seq = publish_seq(k->c.publish)};
    uint64_t keep = 0;
    int rc = checkpoint_write(k->c.dir, &meta, k->c.towns, k->c.metrics, k->c.engine, k->c.dedup,
                              &keep, k->err, sizeof(k->err));
    if (rc != 0) {
        log_error(k->c.log, "final checkpoint failed: %s; the journal keeps everything", k->err);
        return;
    }
    unsigned removed = 0;
    if (keep > 0 && keep < meta.journal_gen && held_back(k) >= meta.next_pos) /* store_work() */
        journal_remove_before(k->c.dir, keep, &removed);
    k->c.covered_pos = meta.next_pos;
    log_notice(k->c.log, "final checkpoint written; %u old journal segments removed", removed);
}

static void on_handle_closed(uv_handle_t *h)
{
    compact_t *k = h->data;
    k->open_handles--;
    maybe_closed(k);
}

void compact_close(compact_t *k, void (*cb)(compact_t *k))
{
    k->on_closed = cb;
    /* An image still waiting for its segment (or for the tallies to reach
     * its position) is dropped: the journal keeps everything it would have
     * covered. */
    child_kill(k);
    if (k->busy && !k->storing) {
        ingest_at_applied(k->c.ingest, UINT64_MAX, NULL, NULL);
        release_image(k);
        give_up(k);
    }
    free(k->unmark);
    k->unmark = NULL;
    k->unmark_cap = 0;
    uv_close((uv_handle_t *)&k->timer, on_handle_closed);
    uv_close((uv_handle_t *)&k->wait, on_handle_closed);
    uv_close((uv_handle_t *)&k->child_timer, on_handle_closed);
    k->rewarming = false;
    uv_close((uv_handle_t *)&k->rewarm_timer, on_handle_closed);
}
