/* Integration test of `tally watch --json` against the real tallyd: it
 * joins while three libtally publishers push known figures for four
 * townships, and the table rebuilt from its lines must equal both
 * `tally get --json --all` and the sums the test computed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_watch_mid_stream, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
