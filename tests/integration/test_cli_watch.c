/* Integration test of `tally watch --json` against the real tallyd: it
 * joins while three libtally publishers push known figures for four
 * townships, and the table rebuilt from its lines must equal both
 * `tally get --json --all` and the sums the test computed.  And of the
 * table `tally watch` redraws on a terminal (a pseudo-terminal of 80x24):
 * every redraw fits it, under its status line, which says when tallyd is
 * gone that the figures shown are stale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_support.h"
#include "harness.h"
#include "tally.h"

#define PUSHERS 3
#define TOWNS   4
#define METRICS 3
/* Each publisher makes a submission every PAUSE_MS or so until told to
 * stop, which the test does once the watch has joined and AFTER_JOIN more
 * submissions have been acknowledged (so the watch joins mid-stream
 * however slow the machine is); never more than MAX_ITERATIONS each. */
#define PAUSE_MS       8
#define JOIN_AFTER     40
#define AFTER_JOIN     90
#define MAX_ITERATIONS 3000

static const char *const towns[TOWNS] = {"gaoguan", "gaoyan", "xiuqi", "mingtong"};
/* screened, resolved (never more than screened), and a plain counter. */
static const char *const metrics[METRICS] = {"disputes.screened", "disputes.resolved", "patrols"};
#define RATIO "disputes.resolution_rate"

typedef struct pusher {
    int id;
    const char *server;
    int64_t sums[TOWNS][METRICS];
    size_t submissions; /* made */
    size_t accepted, duplicates, rejected;
    char error[512];
    int *acked; /* shared count of acknowledgements, atomic */
    int *stop;  /* set by the test, atomic */
} pusher_t;

typedef struct fx {
    harness_t h;
    cli_tab_t w, g;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0)
        return -1;
    cli_tab_init(&f->w);
    cli_tab_init(&f->g);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = harness_finish(&f->h) == 0 ? 0 : -1;
    cli_tab_free(&f->w);
    cli_tab_free(&f->g);
    harness_cleanup(&f->h);
    free(f);
    return rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void on_ack(void *ctx, uint64_t seq, int status, uint32_t nsamples)
{
    pusher_t *p = ctx;
    (void)seq;
    (void)nsamples;
    if (status == TALLY_ACK_DUPLICATE)
        p->duplicates++;
    else
        p->accepted++;
    __atomic_add_fetch(p->acked, 1, __ATOMIC_RELAXED);
}

static void on_reject(void *ctx, uint64_t seq, int code, int sample, const char *field,
                      const char *message)
{
    pusher_t *p = ctx;
    (void)sample;
    p->rejected++;
    snprintf(p->error, sizeof p->error, "submission %" PRIu64 " rejected: %s: %s (%s)", seq, field,
             message, tally_errname(code));
}

/* One publisher per township (a client belongs to one township); every
 * iteration is one submission of the three metrics for one township. */
static void *pusher_run(void *arg)
{
    pusher_t *p = arg;
    tally_client_t *c[TOWNS] = {NULL};
    char err[256] = "";
    tally_client_opts_t o = {.on_ack = on_ack,
                             .on_reject = on_reject,
                             .cb_ctx = p,
                             .errbuf = err,
                             .errbuf_len = sizeof err};
    for (int t = 0; t < TOWNS; t++) {
        int rc = tally_client_new(p->server, towns[t], &o, &c[t]);
        if (rc != 0) {
            snprintf(p->error, sizeof p->error, "tally_client_new(%s): %s", towns[t], err);
            goto out;
        }
    }
    for (int j = 0; j < MAX_ITERATIONS && !__atomic_load_n(p->stop, __ATOMIC_RELAXED); j++) {
        int t = (p->id + j) % TOWNS;
        int64_t v[METRICS];
        v[0] = 1 + (p->id * 7 + j * 3) % 5;
        v[1] = v[0] - (j % 2);
        v[2] = 1 + (p->id + j) % 4;
        int rc = 0;
        for (int m = 0; m < METRICS && rc == 0; m++)
            rc = tally_client_add(c[t], metrics[m], v[m], 0);
        if (rc == 0)
            rc = tally_client_send(c[t]);
        for (int k = 0; k < TOWNS && rc == 0; k++)
            rc = tally_client_process(c[k]);
        if (rc != 0) {
            snprintf(p->error, sizeof p->error, "iteration %d: %s: %s", j, tally_errname(rc),
                     tally_client_last_error(c[t]));
            goto out;
        }
        for (int m = 0; m < METRICS; m++)
            p->sums[t][m] += v[m];
        p->submissions++;
        sleep_ms(PAUSE_MS);
    }
    for (int t = 0; t < TOWNS; t++) {
        int rc = tally_client_flush(c[t], 20000);
        if (rc != 0 || tally_client_pending(c[t]) != 0) {
            snprintf(p->error, sizeof p->error, "flush %s: %s, %zu pending", towns[t],
                     tally_errname(rc), tally_client_pending(c[t]));
            goto out;
        }
    }
out:
    for (int t = 0; t < TOWNS; t++)
        tally_client_destroy(&c[t]);
    return NULL;
}

/* The expected table: per township and for the county, the three sums and
 * the ratio resolved/screened. */
typedef struct expected {
    int64_t town[TOWNS][METRICS];
    int64_t county[METRICS];
} expected_t;

/* NULL when t holds the expected totals, else a description (static). */
static const char *check_sums(const cli_tab_t *t, const expected_t *e)
{
    static char why[512];
    for (int s = -1; s < TOWNS; s++) {
        const char *scope = s < 0 ? "county" : towns[s];
        const int64_t *want = s < 0 ? e->county : e->town[s];
        for (int m = 0; m < METRICS; m++) {
            cli_val_t v;
            if (!cli_tab_get(t, metrics[m], scope, "total", &v)) {
                snprintf(why, sizeof why, "no total of %s/%s", metrics[m], scope);
                return why;
            }
            if (!v.present || v.den != 1 || v.num != want[m]) {
                snprintf(why, sizeof why,
                         "%s/%s total: expected %" PRId64 ", got %s%" PRId64 "/%" PRId64,
                         metrics[m], scope, want[m], v.present ? "" : "null ", v.num, v.den);
                return why;
            }
        }
        cli_val_t r;
        if (!cli_tab_get(t, RATIO, scope, "total", &r) || !r.present || r.num != want[1] ||
            r.den != want[0]) {
            snprintf(why, sizeof why,
                     "%s/%s total: expected %" PRId64 "/%" PRId64 ", got %s%" PRId64 "/%" PRId64,
                     RATIO, scope, want[1], want[0], r.present ? "" : "null ", r.num, r.den);
            return why;
        }
    }
    return NULL;
}

/* 3. `tally watch --json --all` started mid-stream. */
static void test_watch_mid_stream(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);

    int acked = 0, stop = 0;
    pusher_t p[PUSHERS];
    pthread_t th[PUSHERS];
    memset(p, 0, sizeof p);
    for (int i = 0; i < PUSHERS; i++) {
        p[i].id = i;
        p[i].server = f->h.req_endpoint;
        p[i].acked = &acked;
        p[i].stop = &stop;
        assert_int_equal(pthread_create(&th[i], NULL, pusher_run, &p[i]), 0);
    }

    /* Join once JOIN_AFTER submissions have been acknowledged. */
    int64_t deadline = harness_mono_ms() + 20000;
    while (__atomic_load_n(&acked, __ATOMIC_RELAXED) < JOIN_AFTER && harness_mono_ms() < deadline)
        sleep_ms(2);
    char out[HARNESS_PATH_MAX + 16], err[HARNESS_PATH_MAX + 16];
    snprintf(out, sizeof out, "%s/watch.out", f->h.dir);
    snprintf(err, sizeof err, "%s/watch.err", f->h.dir);
    const char *args[] = {"watch", "--json", "--all", NULL};
    pid_t watch = cli_spawn(f->h.req_endpoint, args, out, err);
    assert_true(watch > 0);
    /* The snapshot is out when the first line is. */
    int acked_at_snapshot = -1;
    deadline = harness_mono_ms() + 10000;
    while (harness_mono_ms() < deadline) {
        char *text = harness_read_file(out);
        bool any = text != NULL && strchr(text, '\n') != NULL;
        free(text);
        if (any) {
            acked_at_snapshot = __atomic_load_n(&acked, __ATOMIC_RELAXED);
            break;
        }
        sleep_ms(2);
    }
    /* More figures after the snapshot, then stop the publishers. */
    deadline = harness_mono_ms() + 20000;
    while (acked_at_snapshot > 0 &&
           __atomic_load_n(&acked, __ATOMIC_RELAXED) < acked_at_snapshot + AFTER_JOIN &&
           harness_mono_ms() < deadline)
        sleep_ms(2);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < PUSHERS; i++)
        pthread_join(th[i], NULL);
    expected_t e;
    memset(&e, 0, sizeof e);
    size_t accepted = 0;
    int total_subs = 0;
    for (int i = 0; i < PUSHERS; i++) {
        if (p[i].error[0] != '\0' || p[i].rejected != 0) {
            kill(watch, SIGKILL);
            cli_wait(watch, 5000);
            fail_msg("pusher %d: %s", i, p[i].error);
        }
        total_subs += (int)p[i].submissions;
        accepted += p[i].accepted + p[i].duplicates; /* one ack per submission */
        for (int t = 0; t < TOWNS; t++)
            for (int m = 0; m < METRICS; m++) {
                e.town[t][m] += p[i].sums[t][m];
                e.county[m] += p[i].sums[t][m];
            }
    }
    if (acked_at_snapshot < JOIN_AFTER || total_subs < acked_at_snapshot + AFTER_JOIN) {
        kill(watch, SIGKILL);
        cli_wait(watch, 5000);
        fail_msg("watch did not join mid-stream: %d of %d submissions acknowledged when its "
                 "first line appeared",
                 acked_at_snapshot, total_subs);
    }

    /* Quiescence: the watch table reaches the final sums (the daemon
     * gathers changes for publish_interval_ms before publishing). */
    const char *why = "no output";
    char perr[1024] = "";
    deadline = harness_mono_ms() + 10000;
    while (harness_mono_ms() < deadline) {
        char *text = harness_read_file(out);
        cli_tab_free(&f->w);
        cli_tab_init(&f->w);
        if (text != NULL && cli_tab_from_watch(&f->w, text, perr, sizeof perr) != 0) {
            free(text);
            kill(watch, SIGKILL);
            cli_wait(watch, 5000);
            fail_msg("%s", perr);
        }
        free(text);
        why = check_sums(&f->w, &e);
        if (why == NULL)
            break;
        sleep_ms(20);
    }
    sleep_ms(300); /* anything still coming would be a change too many */
    assert_int_equal(kill(watch, SIGTERM), 0);
    int st = cli_wait(watch, 10000);
    if (st == -2) {
        kill(watch, SIGKILL);
        cli_wait(watch, 5000);
    }
    char *errtext = harness_read_file(err);
    if (st != 0)
        fail_msg("tally watch: exit status %d after SIGTERM, stderr: %s", st,
                 errtext ? errtext : "");
    if (errtext != NULL && errtext[0] != '\0')
        fail_msg("tally watch wrote to stderr: %s", errtext);
    free(errtext);
    if (why != NULL)
        fail_msg("the watch table never reached the final sums: %s", why);

    /* The final table from every line, last value per tally. */
    char *text = harness_read_file(out);
    assert_non_null(text);
    cli_tab_free(&f->w);
    cli_tab_init(&f->w);
    if (cli_tab_from_watch(&f->w, text, perr, sizeof perr) != 0)
        fail_msg("%s", perr);
    size_t len = strlen(text);
    assert_true(len > 0 && text[len - 1] == '\n'); /* no half line */
    free(text);
    assert_null(check_sums(&f->w, &e));
    /* Changes were streamed after the snapshot, not only the snapshot. */
    if (f->w.lines <= f->w.n)
        fail_msg("watch printed %zu lines for %zu tallies: no live changes", f->w.lines, f->w.n);

    print_message("watch joined after %d of %d acknowledgements; %zu lines for %zu tallies\n",
                  acked_at_snapshot, total_subs, f->w.lines, f->w.n);
    char gerr[2048];
    if (cli_get_tab(f->h.dir, f->h.req_endpoint, (const char *const[]){"--all", NULL}, &f->g, gerr,
                    sizeof gerr) != 0)
        fail_msg("%s", gerr);
    char diff[512];
    if (!cli_tab_equal(&f->w, &f->g, diff, sizeof diff))
        fail_msg("watch table != tally get --json --all: %s", diff);
    assert_null(check_sums(&f->g, &e));
    /* The last change seen is the snapshot's state. */
    assert_true(f->w.seq <= f->g.seq);

    int64_t v = -1;
    if (cli_stat(f->h.dir, f->h.req_endpoint, "tallyd_submissions_accepted_total", &v, gerr,
                 sizeof gerr) != 0)
        fail_msg("%s", gerr);
    assert_int_equal(v, total_subs);
    assert_int_equal(accepted, total_subs);
}

/* ---- the table on a terminal ------------------------------------------ */

#define TERM_COLS 80
#define TERM_ROWS 24

/* Townships with names of Chinese characters (two columns each on a
 * terminal): the table's SCOPE column shows them. */
#define PTY_TOWNS 7
static const char pty_conf[] = "[township gaoguan]\nname = 高观镇\n"
                               "[township gaoyan]\nname = 高燕镇\n"
                               "[township xiuqi]\nname = 秀企镇\n"
                               "[township mingtong]\nname = 明通镇\n"
                               "[township tianping]\nname = 天平乡\n"
                               "[township shuangxi]\nname = 双溪乡\n"
                               "[township baishui]\nname = 白水街道办事处\n";
static const char *const pty_towns[PTY_TOWNS] = {"gaoguan",  "gaoyan",   "xiuqi",  "mingtong",
                                                 "tianping", "shuangxi", "baishui"};

/* Display width of a code point as a terminal shows it: East Asian Wide
 * and Fullwidth ranges 2, combining marks 0, else 1. */
static int cp_width(uint32_t cp)
{
    if ((cp >= 0x0300 && cp <= 0x036f) || cp == 0x200b)
        return 0;
    if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf && cp != 0x303f) ||
        (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
        (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
        (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x20000 && cp <= 0x3fffd))
        return 2;
    return 1;
}

/* Display width of a line of UTF-8 text (no escape sequences). */
static size_t line_width(const char *s, size_t len)
{
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1fu : n == 3 ? c & 0x0fu : c & 7u;
        for (size_t k = 1; k < n && i + k < len; k++)
            cp = cp << 6 | ((unsigned char)s[i + k] & 0x3fu);
        w += (size_t)cp_width(cp);
        i += n;
    }
    return w;
}

/* A `tally watch` on the master side of a pseudo-terminal: all it wrote. */
typedef struct pty_watch {
    pid_t pid;
    int fd;
    char *buf;
    size_t len, cap;
} pty_watch_t;

static void pty_start(pty_watch_t *p, const char *server, const char *dir)
{
    memset(p, 0, sizeof *p);
    p->fd = -1;
    /* Everything the child needs is prepared before the fork: the test has
     * other threads (ZeroMQ's). */
    static char server_var[HARNESS_PATH_MAX + 16], state_var[HARNESS_PATH_MAX + 32];
    snprintf(server_var, sizeof server_var, "TALLY_SERVER=%s", server);
    snprintf(state_var, sizeof state_var, "XDG_STATE_HOME=%s/xdg-state", dir);
    char *envp[512];
    size_t n = 0;
    for (char **e = environ; *e != NULL && n < 500; e++)
        if (strncmp(*e, "TALLY_SERVER=", 13) != 0 && strncmp(*e, "XDG_STATE_HOME=", 15) != 0 &&
            strncmp(*e, "COLUMNS=", 8) != 0 && strncmp(*e, "LINES=", 6) != 0 &&
            strncmp(*e, "TERM=", 5) != 0)
            envp[n++] = *e;
    envp[n++] = server_var;
    envp[n++] = state_var;
    envp[n++] = "TERM=xterm";
    envp[n] = NULL;
    const char *argv[] = {cli_bin(), "watch", "--all", NULL};
    struct winsize ws = {.ws_row = TERM_ROWS, .ws_col = TERM_COLS};
    p->pid = forkpty(&p->fd, NULL, NULL, &ws);
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execve(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    assert_true(p->pid > 0);
}

/* Read what the watch writes for up to ms, or until until (not NULL) is
 * in the latest complete redraw's first line; true when it was. */
static bool pty_read(pty_watch_t *p, int ms, const char *until);

/* The redraws of p->buf so far: each starts with cursor home and clear
 * (ESC[H ESC[2J); the last one may still be coming.  Escape sequences
 * (attributes) are left out, and the pty's CR LF taken as a line break.
 * Returns how many complete ones there are; frames[i] is malloc'd. */
#define CLEAR "\x1b[H\x1b[2J"
static size_t pty_frames(const pty_watch_t *p, char **frames, size_t max)
{
    size_t n = 0;
    if (p->buf == NULL)
        return 0; /* nothing read yet (memmem takes no null pointer) */
    const char *s = p->buf, *end = p->buf + p->len;
    const char *at = memmem(s, (size_t)(end - s), CLEAR, strlen(CLEAR));
    while (at != NULL && n < max) {
        const char *from = at + strlen(CLEAR);
        const char *next = memmem(from, (size_t)(end - from), CLEAR, strlen(CLEAR));
        if (next == NULL)
            break; /* still being written */
        char *f = malloc((size_t)(next - from) + 1);
        assert_non_null(f);
        size_t k = 0;
        for (const char *q = from; q < next; q++) {
            if (*q == '\x1b' && q + 1 < next && q[1] == '[') {
                q += 2;
                while (q < next && !(*q >= 0x40 && *q <= 0x7e))
                    q++;
                continue;
            }
            if (*q != '\r')
                f[k++] = *q;
        }
        f[k] = '\0';
        frames[n++] = f;
        at = next;
    }
    return n;
}

#define FRAMES_MAX 4096

/* The first line of the last complete redraw contains needle. */
static bool last_status_has(const pty_watch_t *p, const char *needle)
{
    static char *frames[FRAMES_MAX];
    size_t n = pty_frames(p, frames, FRAMES_MAX);
    bool has = false;
    if (n > 0) {
        const char *nl = strchr(frames[n - 1], '\n');
        size_t len = nl != NULL ? (size_t)(nl - frames[n - 1]) : strlen(frames[n - 1]);
        const char *hit = strstr(frames[n - 1], needle);
        has = hit != NULL && (size_t)(hit - frames[n - 1]) < len;
    }
    for (size_t i = 0; i < n; i++)
        free(frames[i]);
    return has;
}

static bool pty_read(pty_watch_t *p, int ms, const char *until)
{
    int64_t deadline = harness_mono_ms() + ms;
    for (;;) {
        if (until != NULL && last_status_has(p, until))
            return true;
        int64_t left = deadline - harness_mono_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        int r = poll(&pfd, 1, left > 100 ? 100 : (int)left);
        if (r <= 0)
            continue;
        if (p->len + 4096 + 1 > p->cap) {
            p->cap = p->cap * 2 + 8192;
            p->buf = realloc(p->buf, p->cap);
            assert_non_null(p->buf);
        }
        ssize_t got = read(p->fd, p->buf + p->len, 4096);
        if (got <= 0)
            return false; /* EIO: the watch has ended */
        p->len += (size_t)got;
        p->buf[p->len] = '\0';
    }
}

/* Every complete redraw fits TERM_COLS x TERM_ROWS and starts with a
 * status line; returns how many there were.  what names them in a
 * failure. */
static size_t check_frames(const pty_watch_t *p, const char *what)
{
    static char *frames[FRAMES_MAX];
    size_t n = pty_frames(p, frames, FRAMES_MAX);
    static const char *const states[] = {"synced", "connecting", "STALE", "resyncing",
                                         "not reachable"};
    for (size_t i = 0; i < n; i++) {
        const char *f = frames[i];
        size_t lines = 0;
        for (const char *l = f;; lines++) {
            const char *nl = strchr(l, '\n');
            size_t len = nl != NULL ? (size_t)(nl - l) : strlen(l);
            if (lines == 0) {
                bool status = false;
                for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
                    const char *hit = strstr(l, states[k]);
                    status = status || (hit != NULL && hit < l + len);
                }
                if (!status)
                    fail_msg("%s: redraw %zu of %zu does not start with a status line:\n%s", what,
                             i + 1, n, f);
            }
            if (line_width(l, len) > TERM_COLS)
                fail_msg("%s: redraw %zu of %zu has a line %zu columns wide on a terminal of %d "
                         "(line %zu: %.*s):\n%s",
                         what, i + 1, n, line_width(l, len), TERM_COLS, lines + 1, (int)len, l, f);
            if (nl == NULL)
                break;
            l = nl + 1;
        }
        if (lines + 1 > TERM_ROWS)
            fail_msg("%s: redraw %zu of %zu is %zu lines on a terminal of %d:\n%s", what, i + 1, n,
                     lines + 1, TERM_ROWS, f);
    }
    for (size_t i = 0; i < n; i++)
        free(frames[i]);
    return n;
}

/* The last complete redraw (malloc'd), for messages and checks. */
static char *last_frame(const pty_watch_t *p)
{
    static char *frames[FRAMES_MAX];
    size_t n = pty_frames(p, frames, FRAMES_MAX);
    for (size_t i = 0; i + 1 < n; i++)
        free(frames[i]);
    return n > 0 ? frames[n - 1] : strdup("");
}

/* 4. `tally watch` on an 80x24 terminal: 8 scopes of 4 tallies (3
 * metrics and a ratio) with 9 value columns do not fit; every redraw
 * fits nevertheless, its status line first, saying what was left out;
 * with tallyd stopped, the status says the figures are stale. */
static void test_watch_terminal(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, pty_conf, NULL), 0);
    char err[256] = "";
    tally_client_opts_t o = {.errbuf = err, .errbuf_len = sizeof err};
    for (int t = 0; t < PTY_TOWNS; t++) {
        tally_client_t *c = NULL;
        if (tally_client_new(f->h.req_endpoint, pty_towns[t], &o, &c) != 0)
            fail_msg("tally_client_new(%s): %s", pty_towns[t], err);
        for (int m = 0; m < METRICS; m++)
            assert_int_equal(tally_client_add(c, metrics[m], 100 + t * 10 + m, 0), 0);
        assert_int_equal(tally_client_send(c), 0);
        assert_int_equal(tally_client_flush(c, 20000), 0);
        assert_int_equal(tally_client_pending(c), 0);
        tally_client_destroy(&c);
    }

    pty_watch_t p;
    pty_start(&p, f->h.req_endpoint, f->h.dir);
    /* Synced, with the table (and a redraw after it, so that it is
     * complete). */
    bool synced = pty_read(&p, 15000, "synced");
    char *last = last_frame(&p);
    if (!synced)
        fail_msg("tally watch on a terminal never said it was synced; last redraw:\n%s", last);
    free(last);
    pty_read(&p, 1500, NULL);
    size_t n = check_frames(&p, "synced");
    last = last_frame(&p);
    if (strstr(last, "明通镇") == NULL || strstr(last, "more rows") == NULL ||
        strstr(last, "left out") == NULL)
        fail_msg("the synced table should show township names, say how many rows and which "
                 "columns were left out:\n%s",
                 last);
    print_message("%zu redraws while synced; the last:\n%s\n", n, last);
    free(last);

    /* The times are shown in tallyd's zone (the test's machine may be in
     * another), with its offset. */
    tally_clock_t clk;
    tally_request_t req = {.timeout_ms = 5000};
    assert_int_equal(tally_clock_req(f->h.req_endpoint, &req, &clk), 0);
    int32_t off = clk.utc_offset_s < 0 ? -clk.utc_offset_s : clk.utc_offset_s;
    char zone[TALLY_ZONE_MAX + 64], offset[32];
    snprintf(zone, sizeof zone, "\ntimes in tallyd's zone %s", clk.zone);
    snprintf(offset, sizeof offset, " %c%02d:%02d: ", clk.utc_offset_s < 0 ? '-' : '+',
             (int)(off / 3600), (int)(off / 60 % 60));

    /* tallyd gone: the figures stay, marked stale. */
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    bool stale = pty_read(&p, 15000, "STALE since");
    last = last_frame(&p);
    if (!stale)
        fail_msg("with tallyd stopped, the status never said the figures are stale; last "
                 "redraw:\n%s",
                 last);
    free(last);
    pty_read(&p, 1500, NULL);
    check_frames(&p, "tallyd stopped");
    last = last_frame(&p);
    /* "STALE since HH:MM:SS +08:00: ", then the zone's name below. */
    const char *nl = strchr(last, '\n');
    if (strncmp(last, "STALE since ", 12) != 0 || nl == NULL || nl - last < 20 + 9 ||
        strncmp(last + 20, offset, strlen(offset)) != 0 || strstr(last, zone) != nl)
        fail_msg("the status should say since when the figures are stale, in tallyd's zone "
                 "%s (%.6s), and the next line which zone that is:\n%s",
                 clk.zone, offset + 1, last);
    if (strstr(last, "not reachable") == NULL || strstr(last, "明通镇") == NULL)
        fail_msg("with tallyd stopped, the status should say it is not reachable, above the "
                 "figures:\n%s",
                 last);
    print_message("with tallyd stopped:\n%s\n", last);
    free(last);

    assert_int_equal(kill(p.pid, SIGTERM), 0);
    pty_read(&p, 3000, NULL);
    int st = cli_wait(p.pid, 10000);
    if (st == -2) {
        kill(p.pid, SIGKILL);
        cli_wait(p.pid, 5000);
    }
    close(p.fd);
    free(p.buf);
    assert_int_equal(st, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_watch_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_terminal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
