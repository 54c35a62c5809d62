/* Black-box test of tallyd, the clone pattern under load: a subscriber
 * that joins while four clients are submitting ends with exactly the
 * daemon's tallies, which are exactly the sums of what was accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define WORKERS     4
#define SUBMISSIONS 2000 /* in all */
#define JOIN_AFTER  500  /* the subscriber joins after this many ACKs */
#define TOWNS       5
#define METRICS     3

static const char *const towns[TOWNS] = {"gaoguan", "bashan", "pingba", "xiuqi", "heyu"};
static const char *const metrics[METRICS] = {"patrols", "banners", "slogans"};

typedef struct worker {
    harness_t *h;
    unsigned seed;
    int64_t sums[TOWNS][METRICS]; /* of accepted samples */
    int accepted;
    int failures; /* anything but ACK accepted */
    char first_failure[800];
    atomic_int *acked;
} worker_t;

typedef struct fx {
    harness_t h;
    const char *conf;
    harness_table_t snap;
    harness_sub_t sub;
    worker_t w[WORKERS];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0)
        return -1;
    harness_table_init(&f->snap);
    f->conf = *state;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    /* A clean exit is part of every test: it shows leaks and errors at
     * exit in the sanitizer build. */
    int rc = harness_finish(&f->h) == 0 ? 0 : -1;
    harness_sub_close(&f->sub);
    harness_table_free(&f->snap);
    harness_cleanup(&f->h);
    free(f);
    return rc;
}

/* Submits its share one at a time: 1..3 samples of small values (some
 * negative corrections) for one township each.  Asserts nothing itself
 * (cmocka's asserts belong to the main thread); the test checks the
 * counts afterwards. */
static void *work(void *arg)
{
    worker_t *w = arg;
    harness_client_t c;
    if (harness_client_open(w->h, &c) != 0) {
        w->failures = SUBMISSIONS / WORKERS;
        snprintf(w->first_failure, sizeof(w->first_failure), "cannot open a client");
        return NULL;
    }
    for (uint64_t seq = 1; seq <= SUBMISSIONS / WORKERS; seq++) {
        int town = rand_r(&w->seed) % TOWNS;
        uint32_t n = 1 + (uint32_t)(rand_r(&w->seed) % 3);
        harness_sample_t s[3];
        int mi[3];
        for (uint32_t i = 0; i < n; i++) {
            mi[i] = rand_r(&w->seed) % METRICS;
            s[i].metric = metrics[mi[i]];
            s[i].value = rand_r(&w->seed) % 12 - 2;
        }
        harness_ack_t a = {0};
        int rc = harness_submit(&c, seq, towns[town], harness_now_ms(), s, n, &a);
        if (rc == 0 && a.type == PROTO_ACK && a.seq == seq && a.status == PROTO_ACK_ACCEPTED) {
            for (uint32_t i = 0; i < n; i++)
                w->sums[town][mi[i]] += s[i].value;
            w->accepted++;
        } else {
            if (w->failures++ == 0)
                harness_ack_str(&a, w->first_failure, sizeof(w->first_failure));
        }
        atomic_fetch_add(w->acked, 1);
    }
    harness_client_close(&c);
    return NULL;
}

static void expect_total(const harness_table_t *t, const char *metric, const char *scope,
                         int64_t want, bool may_be_absent)
{
    harness_value_t v;
    if (!harness_table_get(t, metric, scope, "total", &v)) {
        if (may_be_absent && want == 0)
            return;
        fail_msg("no series %s in '%s' (expected total %" PRId64 ")", metric, scope, want);
    }
    if (!v.present || v.num != want)
        fail_msg("%s in '%s': expected total %" PRId64 ", got %s%" PRId64, metric, scope, want,
                 v.present ? "" : "nil ", v.num);
    /* Every sample was stamped "now": the 1h window holds them all too. */
    assert_true(harness_table_get(t, metric, scope, "1h", &v));
    assert_true(v.present && v.num == want);
}

/* True when the total of (metric, scope) in t is want; a series never
 * sent counts as 0. */
static bool has_total(const harness_table_t *t, const char *metric, const char *scope, int64_t want)
{
    harness_value_t v;
    if (!harness_table_get(t, metric, scope, "total", &v))
        return want == 0;
    return v.present && v.num == want;
}

/* What the subscriber of test 5 waits for: every sum accepted. */
typedef struct sums {
    int64_t of[TOWNS][METRICS];
} sums_t;

static bool holds_sums(harness_sub_t *s, void *ctx)
{
    const sums_t *want = ctx;
    for (int m = 0; m < METRICS; m++) {
        int64_t county = 0;
        for (int t = 0; t < TOWNS; t++) {
            if (!has_total(&s->table, metrics[m], towns[t], want->of[t][m]))
                return false;
            county += want->of[t][m];
        }
        if (!has_total(&s->table, metrics[m], "", county))
            return false;
    }
    return true;
}

/* 5. A subscriber joining mid-stream converges on the daemon's state. */
static void test_join_mid_stream(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    atomic_int acked = 0;
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        f->w[i].h = &f->h;
        f->w[i].seed = 20231231u + (unsigned)i;
        f->w[i].acked = &acked;
        assert_int_equal(pthread_create(&th[i], NULL, work, &f->w[i]), 0);
    }
    int64_t deadline = harness_mono_ms() + 30000;
    while (atomic_load(&acked) < JOIN_AFTER && harness_mono_ms() < deadline) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    int joined_at = atomic_load(&acked);
    int rc = harness_sub_open(&f->h, &f->sub, "u/", NULL, NULL);
    /* Keep reading while the workers run, then let them finish before any
     * assertion can leave this function. */
    while (rc == 0 && atomic_load(&acked) < SUBMISSIONS && harness_mono_ms() < deadline)
        harness_sub_poll(&f->sub, 50);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(rc, 0);
    assert_true(joined_at >= JOIN_AFTER && joined_at < SUBMISSIONS);

    sums_t want = {{{0}}};
    int accepted = 0;
    for (int i = 0; i < WORKERS; i++) {
        if (f->w[i].failures != 0)
            fail_msg("worker %d: %d submissions not accepted; first: %s", i, f->w[i].failures,
                     f->w[i].first_failure);
        accepted += f->w[i].accepted;
        for (int t = 0; t < TOWNS; t++)
            for (int m = 0; m < METRICS; m++)
                want.of[t][m] += f->w[i].sums[t][m];
    }
    assert_int_equal(accepted, SUBMISSIONS);

    /* Every ACK is in, but with publish_interval_ms = 100 the last round
     * may still be on its way (a heartbeat can come before it): wait for
     * the sums themselves, then for a heartbeat showing nothing after. */
    assert_int_equal(harness_sub_until(&f->sub, holds_sums, &want, 10000), 0);
    assert_int_equal(harness_sub_wait_stable(&f->sub, 5000), 0);
    assert_int_equal(f->sub.gaps, 0);
    assert_int_equal(f->sub.bad_messages, 0);
    assert_int_equal(f->sub.other_stream, 0);
    assert_true(f->sub.applied > 0); /* it really followed the stream */
    print_message("subscriber joined after %d of %d ACKs at seq %" PRIu64 ", applied %" PRIu64
                  " updates\n",
                  joined_at, SUBMISSIONS, f->sub.snap_seq, f->sub.applied);

    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(harness_snapshot(&c, "", &f->snap), 0);
    assert_int_equal(f->snap.seq, f->sub.last_seq);
    char diff[512];
    if (!harness_table_equal(&f->sub.table, &f->snap, diff, sizeof(diff)))
        fail_msg("subscriber (first) and snapshot (second) differ: %s", diff);

    for (int m = 0; m < METRICS; m++) {
        int64_t county = 0;
        for (int t = 0; t < TOWNS; t++) {
            expect_total(&f->snap, metrics[m], towns[t], want.of[t][m], true);
            county += want.of[t][m];
        }
        expect_total(&f->snap, metrics[m], "", county, false);
    }
    int64_t n = harness_stats(&c, "tallyd_submissions_accepted_total");
    if (n != SUBMISSIONS)
        fail_msg("STATS tallyd_submissions_accepted_total is %" PRId64 ", expected %d%s", n,
                 SUBMISSIONS, n < 0 ? " (no STATS reply)" : "");
    assert_int_equal(harness_stats(&c, "tallyd_clients"), WORKERS);
    harness_client_close(&c);
}

/* 6. A round of changes larger than one publishing batch (1024 series)
 * reaches a subscriber whole and in sequence: 3,000 township series and
 * 20 county ones change within one 100 ms round. */
#define WIDE_TOWNS   150
#define WIDE_METRICS 20

/* Every township series of test 6 holds t + m, the county their sum. */
static bool holds_wide(harness_sub_t *s, void *ctx)
{
    (void)ctx;
    char metric[16], town[16];
    for (int m = 0; m < WIDE_METRICS; m++) {
        snprintf(metric, sizeof(metric), "m%02d", m);
        int64_t county = 0;
        for (int t = 0; t < WIDE_TOWNS; t++) {
            snprintf(town, sizeof(town), "t%03d", t);
            if (!has_total(&s->table, metric, town, t + m))
                return false;
            county += t + m;
        }
        if (!has_total(&s->table, metric, "", county))
            return false;
    }
    return true;
}
static void test_round_wider_than_a_batch(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, f->conf, NULL), 0);
    assert_int_equal(harness_sub_open(&f->h, &f->sub, "u/", NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    char names[WIDE_METRICS][16], town[16];
    harness_sample_t smp[WIDE_METRICS];
    for (int m = 0; m < WIDE_METRICS; m++) {
        snprintf(names[m], sizeof(names[m]), "m%02d", m);
        smp[m].metric = names[m];
    }
    int64_t now = harness_now_ms();
    for (int t = 0; t < WIDE_TOWNS; t++) {
        snprintf(town, sizeof(town), "t%03d", t);
        for (int m = 0; m < WIDE_METRICS; m++)
            smp[m].value = t + m;
        assert_int_equal(harness_send_submit(&c, (uint64_t)t + 1, town, now, smp, WIDE_METRICS), 0);
    }
    for (int t = 0; t < WIDE_TOWNS; t++) {
        harness_ack_t a = {0};
        assert_int_equal(harness_wait_ack(&c, (uint64_t)t + 1, &a, 10000), 0);
        assert_int_equal(a.status, PROTO_ACK_ACCEPTED);
    }
    /* The ACKs come before the round that publishes their series; a
     * heartbeat between the two would end a wait for quiet too early. */
    assert_int_equal(harness_sub_until(&f->sub, holds_wide, NULL, 10000), 0);
    assert_int_equal(harness_sub_wait_stable(&f->sub, 10000), 0);
    assert_int_equal(f->sub.gaps, 0);
    assert_int_equal(f->sub.bad_messages, 0);
    assert_true(f->sub.applied >= WIDE_TOWNS * WIDE_METRICS + WIDE_METRICS);
    for (int m = 0; m < WIDE_METRICS; m++) {
        int64_t county = 0;
        for (int t = 0; t < WIDE_TOWNS; t++) {
            snprintf(town, sizeof(town), "t%03d", t);
            expect_total(&f->sub.table, names[m], town, t + m, false);
            county += t + m;
        }
        expect_total(&f->sub.table, names[m], "", county, false);
    }
    assert_int_equal(harness_snapshot(&c, "", &f->snap), 0);
    char diff[512];
    if (!harness_table_equal(&f->sub.table, &f->snap, diff, sizeof(diff)))
        fail_msg("subscriber (first) and snapshot (second) differ: %s", diff);
    harness_client_close(&c);
}

/* The test is about the publish path; an fsync per submission would only
 * slow it down.  Once with every change published at once (many updates,
 * finely interleaved with the join), once conflated every 100 ms. */
static const char immediate_conf[] = "[tallyd]\npublish_interval_ms = 0\n"
                                     "[journal]\nsync = interval\n";
static const char conflated_conf[] = "[tallyd]\npublish_interval_ms = 100\n"
                                     "[journal]\nsync = interval\n";
/* The join test's metrics take corrections (negative samples). */
#define CORRECTIONS                                                                                \
    "[metric patrols]\nkind = counter\nnegative = yes\n"                                           \
    "[metric banners]\nkind = counter\nnegative = yes\n"                                           \
    "[metric slogans]\nkind = counter\nnegative = yes\n"
static const char immediate_corrections_conf[] = "[tallyd]\npublish_interval_ms = 0\n"
                                                 "[journal]\nsync = interval\n" CORRECTIONS;
static const char conflated_corrections_conf[] = "[tallyd]\npublish_interval_ms = 100\n"
                                                 "[journal]\nsync = interval\n" CORRECTIONS;

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_join_mid_stream, setup, teardown,
                                                 (void *)immediate_corrections_conf),
        cmocka_unit_test_prestate_setup_teardown(test_join_mid_stream, setup, teardown,
                                                 (void *)conflated_corrections_conf),
        cmocka_unit_test_prestate_setup_teardown(test_round_wider_than_a_batch, setup, teardown,
                                                 (void *)conflated_conf),
        cmocka_unit_test_prestate_setup_teardown(test_round_wider_than_a_batch, setup, teardown,
                                                 (void *)immediate_conf),
    };
    tests[0].name = "join mid-stream, publish_interval_ms = 0";
    tests[1].name = "join mid-stream, publish_interval_ms = 100";
    tests[2].name = "a round wider than a batch, publish_interval_ms = 100";
    tests[3].name = "a round wider than a batch, publish_interval_ms = 0";
    return cmocka_run_group_tests(tests, NULL, NULL);
}
