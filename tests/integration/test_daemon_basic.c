/* Black-box tests of tallyd, basics: submit and snapshot, duplicates,
 * live updates and heartbeats, clean stop, command line, STATS.  Every
 * test starts its own daemon (harness.h). */
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
#include <time.h>

#include <zmq.h>

#include "harness.h"

#define MAX_EVENTS 256

typedef struct recorded {
    uint32_t type;
    char topic[PROTO_TOPIC_MAX + 1];
    harness_row_t row;
    uint64_t seq;
    int64_t mono_ms;
    bool applied;
} recorded_t;

/* Everything a test allocates lives here, so the teardown frees it even
 * when an assertion ends the test early. */
typedef struct fx {
    harness_t h;
    harness_table_t t;
    harness_sub_t sub;
    recorded_t ev[MAX_EVENTS];
    size_t nev;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0)
        return -1;
    harness_table_init(&f->t);
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
    harness_table_free(&f->t);
    harness_cleanup(&f->h);
    free(f);
    return rc;
}

static void check_ack(const harness_ack_t *a, uint64_t seq, int status, int code)
{
    char buf[800];
    if (a->type != PROTO_ACK || a->seq != seq || a->status != status || a->code != code)
        fail_msg("expected ACK seq %" PRIu64 " status %d code %d, got %s", seq, status, code,
                 harness_ack_str(a, buf, sizeof(buf)));
    if (status != PROTO_ACK_REJECTED && (a->sample != -1 || a->field[0] || a->message[0]))
        fail_msg("a non-rejecting ACK carries details: %s", harness_ack_str(a, buf, sizeof(buf)));
}

static void submit_ok(harness_client_t *c, uint64_t seq, const char *town, const char *metric,
                      int64_t value)
{
    harness_ack_t a;
    assert_int_equal(harness_submit_one(c, seq, town, harness_now_ms(), metric, value, &a), 0);
    check_ack(&a, seq, PROTO_ACK_ACCEPTED, 0);
}

static void expect_col(const harness_table_t *t, const char *metric, const char *scope,
                       const char *col, int64_t num, int64_t den)
{
    harness_value_t v;
    if (!harness_table_get(t, metric, scope, col, &v))
        fail_msg("no column %s of %s in scope '%s'", col, metric, scope);
    if (!v.present || v.num != num || v.den != den)
        fail_msg("%s '%s' %s: expected %" PRId64 "/%" PRId64 ", got %s%" PRId64 "/%" PRId64, metric,
                 scope, col, num, den, v.present ? "" : "nil ", v.num, v.den);
}

/* 1. A submission shows in every column of its township and county. */
static void test_submit_snapshot(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    /* WELCOME announced the documented defaults. */
    assert_int_equal(f->h.max_samples, PROTO_SAMPLES_DEFAULT);
    assert_int_equal(f->h.max_msg, PROTO_MSG_MAX_DEFAULT);
    assert_int_equal(f->h.skew_ms, 300000);
    assert_int_equal(f->h.max_age_ms, 3660LL * 86400000);
    submit_ok(&c, 1, "gaoguan", "patrols", 45);

    assert_int_equal(harness_snapshot(&c, "", &f->t), 0);
    assert_int_equal(f->t.stream_id, f->h.stream_id);
    assert_true(f->t.seq >= 2); /* at least the two updates of the change */
    static const char *const cols[] = {"1h", "24h", "today", "month", "year", "total"};
    static const char *const scopes[] = {"", "gaoguan"};
    for (size_t s = 0; s < 2; s++) {
        const harness_row_t *r = harness_table_find(&f->t, "patrols", scopes[s]);
        assert_non_null(r);
        assert_int_equal(r->kind, PROTO_KIND_COUNTER);
        assert_true(r->seq <= f->t.seq);
        for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
            expect_col(&f->t, "patrols", scopes[s], cols[i], 45, 1);
        /* An event at "now" lies in every window and period WELCOME lists. */
        assert_true(f->h.ncolumns >= 6);
        for (uint32_t i = 0; i < f->h.ncolumns; i++)
            expect_col(&f->t, "patrols", scopes[s], f->h.columns[i], 45, 1);
    }

    /* A prefix selects exactly the township's series. */
    assert_int_equal(harness_snapshot(&c, "u/town/gaoguan/", &f->t), 0);
    assert_true(f->t.n >= 1);
    for (size_t i = 0; i < f->t.n; i++)
        assert_string_equal(f->t.rows[i].scope, "gaoguan");
    assert_non_null(harness_table_find(&f->t, "patrols", "gaoguan"));
    assert_int_equal(harness_snapshot(&c, "u/town/nowhere/", &f->t), 0);
    assert_int_equal(f->t.n, 0);
    harness_client_close(&c);
}

/* 2. The same (client_id, seq) sent three times counts once. */
static void test_duplicates(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    harness_sample_t s[] = {{"disputes.screened", 219}, {"disputes.resolved", 216}};
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    assert_int_equal(harness_encode_submit(&c, &b, 1, "gaoguan", harness_now_ms(), s, 2), 0);
    for (int i = 0; i < 3; i++) {
        harness_ack_t a;
        assert_int_equal(harness_send_raw(&c, b.data, b.size), 0);
        assert_int_equal(harness_wait_ack(&c, 1, &a, HARNESS_REPLY_TIMEOUT_MS), 0);
        check_ack(&a, 1, i == 0 ? PROTO_ACK_ACCEPTED : PROTO_ACK_DUPLICATE, 0);
    }
    msgpack_sbuffer_destroy(&b);

    assert_int_equal(harness_snapshot(&c, "", &f->t), 0);
    expect_col(&f->t, "disputes.screened", "gaoguan", "total", 219, 1);
    expect_col(&f->t, "disputes.screened", "", "total", 219, 1);
    expect_col(&f->t, "disputes.resolved", "", "total", 216, 1);
    expect_col(&f->t, "disputes.resolved", "", "1h", 216, 1);
    assert_int_equal(harness_stats(&c, "tallyd_duplicates_total"), 2);
    assert_int_equal(harness_stats(&c, "tallyd_submissions_accepted_total"), 1);

    /* Another client may use the same seq: ids keep them apart. */
    harness_client_t c2;
    assert_int_equal(harness_client_open(&f->h, &c2), 0);
    submit_ok(&c2, 1, "gaoguan", "disputes.screened", 1);
    assert_int_equal(harness_snapshot(&c2, "u/county/", &f->t), 0);
    expect_col(&f->t, "disputes.screened", "", "total", 220, 1);
    harness_client_close(&c2);
    harness_client_close(&c);
}

static void record(harness_sub_t *s, const harness_event_t *ev, void *ctx)
{
    (void)s;
    fx_t *f = ctx;
    if (f->nev == MAX_EVENTS)
        return;
    recorded_t *r = &f->ev[f->nev++];
    r->type = ev->type;
    snprintf(r->topic, sizeof(r->topic), "%s", ev->topic);
    if (ev->row != NULL)
        r->row = *ev->row;
    r->seq = ev->seq;
    r->mono_ms = ev->mono_ms;
    r->applied = ev->applied;
}

static size_t count_type(const fx_t *f, uint32_t type)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nev; i++)
        n += f->ev[i].type == type;
    return n;
}

static bool have_heartbeats(harness_sub_t *s, void *ctx)
{
    (void)s;
    return count_type(ctx, PROTO_HEARTBEAT) >= 7;
}

static const recorded_t *find_update(const fx_t *f, const char *topic, int64_t total)
{
    for (size_t i = 0; i < f->nev; i++) {
        harness_value_t v = {0};
        const recorded_t *r = &f->ev[i];
        if (r->type != PROTO_UPDATE || strcmp(r->topic, topic) != 0)
            continue;
        for (uint32_t c = 0; c < r->row.ncols; c++)
            if (strcmp(r->row.col[c], "total") == 0)
                v = r->row.val[c];
        if (v.present && v.num == total)
            return r;
    }
    return NULL;
}

static bool have_both(harness_sub_t *s, void *ctx)
{
    (void)s;
    return find_update(ctx, "u/town/gaoguan/patrols/", 7) != NULL &&
           find_update(ctx, "u/county/patrols/", 7) != NULL;
}

static bool have_both_3(harness_sub_t *s, void *ctx)
{
    (void)s;
    return find_update(ctx, "u/town/gaoguan/patrols/", 3) != NULL &&
           find_update(ctx, "u/county/patrols/", 3) != NULL;
}

/* 4. Updates on the series' topics with consecutive seqs; heartbeats about
 * every second carrying the current seq. */
static void test_publish(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    assert_int_equal(harness_sub_open(&f->h, &f->sub, "u/", record, f), 0);
    uint64_t s0 = f->sub.snap_seq;
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    submit_ok(&c, 1, "gaoguan", "patrols", 3);
    submit_ok(&c, 2, "gaoguan", "patrols", 4);
    /* Both changes may be conflated into one publication (7 only) or not
     * (3, then 7); either way the last ones carry 7. */
    assert_int_equal(harness_sub_until(&f->sub, have_both, f, 5000), 0);
    const recorded_t *town = find_update(f, "u/town/gaoguan/patrols/", 7);
    const recorded_t *county = find_update(f, "u/county/patrols/", 7);
    assert_int_equal(count_type(f, PROTO_UPDATE) % 2, 0); /* town and county, always */
    assert_non_null(town);
    assert_non_null(county);
    assert_string_equal(town->row.scope, "gaoguan");
    assert_string_equal(town->row.metric, "patrols");
    assert_string_equal(county->row.scope, "");
    assert_int_equal(county->row.kind, PROTO_KIND_COUNTER);

    uint64_t expect = s0 + 1;
    for (size_t i = 0; i < f->nev; i++) {
        if (f->ev[i].type != PROTO_UPDATE)
            continue;
        assert_true(f->ev[i].applied);
        if (f->ev[i].seq != expect)
            fail_msg("update %zu (%s) has seq %" PRIu64 ", expected %" PRIu64, i, f->ev[i].topic,
                     f->ev[i].seq, expect);
        expect++;
    }
    assert_int_equal(f->sub.gaps, 0);
    assert_int_equal(f->sub.bad_messages, 0);

    /* Heartbeats: roughly one per second, each with the seq of the last
     * update.  The first may be the one a new subscription triggers. */
    assert_int_equal(harness_sub_until(&f->sub, have_heartbeats, f, 10000), 0);
    int64_t prev = -1, sum = 0;
    int intervals = 0;
    size_t seen = 0;
    for (size_t i = 0; i < f->nev; i++) {
        if (f->ev[i].type != PROTO_HEARTBEAT)
            continue;
        if (++seen >= 3) {
            int64_t d = f->ev[i].mono_ms - prev;
            if (d < 400 || d > 2500)
                fail_msg("heartbeat %zu came %" PRId64 " ms after the previous one", seen, d);
            sum += d;
            intervals++;
        }
        prev = f->ev[i].mono_ms;
    }
    assert_true(intervals >= 4);
    int64_t mean = sum / intervals;
    if (mean < 800 || mean > 1400)
        fail_msg("heartbeats every %" PRId64 " ms on average, expected about 1000", mean);
    assert_int_equal(f->sub.hb_seq, f->sub.last_seq);
    assert_int_equal(f->sub.last_seq, expect - 1);
    uint64_t pong_seq = 0;
    assert_int_equal(harness_ping(&c, &pong_seq), 0);
    assert_int_equal(pong_seq, f->sub.last_seq);
    harness_client_close(&c);
}

static const recorded_t *last_update(const fx_t *f, const char *topic)
{
    const recorded_t *r = NULL;
    for (size_t i = 0; i < f->nev; i++)
        if (f->ev[i].type == PROTO_UPDATE && strcmp(f->ev[i].topic, topic) == 0)
            r = &f->ev[i];
    return r;
}

static bool have_banners(harness_sub_t *s, void *ctx)
{
    (void)s;
    return last_update(ctx, "u/town/gaoguan/banners/") != NULL &&
           last_update(ctx, "u/county/banners/") != NULL;
}

/* PROTOCOL.md 10.1: a SNAPSHOT_ITEM carries the snapshot's seq S, and
 * its value is at least as new as every UPDATE up to S. */
static void test_snapshot_item_seq(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    assert_int_equal(harness_sub_open(&f->h, &f->sub, "u/", record, f), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    submit_ok(&c, 1, "gaoguan", "patrols", 3);
    assert_int_equal(harness_sub_until(&f->sub, have_both_3, f, 5000), 0);
    submit_ok(&c, 2, "gaoguan", "banners", 19);
    assert_int_equal(harness_sub_until(&f->sub, have_banners, f, 5000), 0);
    assert_int_equal(harness_sub_wait_stable(&f->sub, 5000), 0);

    assert_int_equal(harness_snapshot(&c, "", &f->t), 0);
    assert_int_equal(f->t.seq, f->sub.last_seq);
    static const char *const topics[][3] = {
        {"u/town/gaoguan/patrols/", "patrols", "gaoguan"},
        {"u/county/patrols/", "patrols", ""},
        {"u/town/gaoguan/banners/", "banners", "gaoguan"},
        {"u/county/banners/", "banners", ""},
    };
    for (size_t i = 0; i < 4; i++) {
        const recorded_t *u = last_update(f, topics[i][0]);
        const harness_row_t *r = harness_table_find(&f->t, topics[i][1], topics[i][2]);
        assert_non_null(u);
        assert_non_null(r);
        if (r->seq != f->t.seq)
            fail_msg("snapshot item %s has seq %" PRIu64 "; the snapshot's S is %" PRIu64,
                     topics[i][0], r->seq, f->t.seq);
        assert_true(u->seq <= f->t.seq);
    }
    harness_client_close(&c);
}

static bool have_goodbye(harness_sub_t *s, void *ctx)
{
    (void)ctx;
    return s->goodbye;
}

static bool have_seq_2(harness_sub_t *s, void *ctx)
{
    (void)ctx;
    return s->last_seq >= 2;
}

static void stop_cleanly(fx_t *f, int sig, const char *line)
{
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    assert_int_equal(harness_sub_open(&f->h, &f->sub, "u/", NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    submit_ok(&c, 1, "gaoguan", "banners", 19);
    harness_client_close(&c);
    /* The township's and the county's update; heartbeats sent before the
     * publish tick that carries them say nothing yet (under valgrind two
     * can come first). */
    assert_int_equal(harness_sub_until(&f->sub, have_seq_2, NULL, 5000), 0);
    assert_int_equal(harness_sub_wait_stable(&f->sub, 5000), 0);
    uint64_t last = f->sub.last_seq;
    assert_true(last >= 2);

    int st = harness_stop(&f->h, sig);
    if (st != 0)
        fail_msg("exit status %d after signal %d; log:\n%s", st, sig, harness_log(&f->h));
    if (strstr(harness_log(&f->h), line) == NULL)
        fail_msg("no '%s' in the log:\n%s", line, harness_log(&f->h));
    /* The GOODBYE was queued in our SUB socket before the daemon closed. */
    assert_int_equal(harness_sub_until(&f->sub, have_goodbye, NULL, 3000), 0);
    assert_int_equal(f->sub.goodbye_seq, last);
    assert_int_equal(f->sub.gaps, 0);
}

/* 8. SIGTERM and SIGINT stop cleanly. */
static void test_sigterm(void **state)
{
    stop_cleanly(*state, SIGTERM, "SIGTERM: stopping");
}

static void test_sigint(void **state)
{
    stop_cleanly(*state, SIGINT, "SIGINT: stopping");
}

/* The harness itself: a restart keeps the directory and the log, and the
 * new run is a new stream.  (Whether tallies survive a restart is the
 * journal's business and tested with it.) */
static void test_restart(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, "[tallyd]\nheartbeat_ms = 500\n", NULL), 0);
    uint64_t first = f->h.stream_id;
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    submit_ok(&c, 1, "gaoguan", "patrols", 1);
    int st = -1;
    assert_int_equal(harness_restart(&f->h, &st), 0);
    assert_int_equal(st, 0);
    assert_true(harness_running(&f->h));
    assert_true(f->h.stream_id != first);
    /* The old DEALER reconnects to the new daemon by itself. */
    uint64_t seq;
    assert_int_equal(harness_ping(&c, &seq), 0);
    assert_int_equal(seq, f->h.seq);
    const char *log = harness_log(&f->h);
    const char *ready = strstr(log, " ready: ");
    assert_non_null(ready);
    /* The second run knows the township the first accepted; neither
     * half of the built-in catalog is closed. */
    ready = strstr(ready + 1, " ready: ");
    assert_non_null(ready);
    assert_non_null(strstr(ready, ", 1 township (open), 22 metrics (open), 3 ratios, plaintext\n"));
    assert_int_equal(harness_wait_log(&f->h, "SIGTERM: stopping", 1000), 0);
    harness_client_close(&c);
}

/* 9. The command line. */
static void test_cli(void **state)
{
    fx_t *f = *state;
    char out[8192];
    const char *help[] = {"--help", NULL};
    assert_int_equal(harness_run(help, out, sizeof(out), 5000), 0);
    assert_non_null(strstr(out, "Usage"));
    const char *h2[] = {"-h", NULL};
    assert_int_equal(harness_run(h2, out, sizeof(out), 5000), 0);
    assert_non_null(strstr(out, "Usage"));

    const char *bad[] = {"--no-such-flag", NULL};
    assert_int_equal(harness_run(bad, out, sizeof(out), 5000), 2);
    assert_non_null(strstr(out, "--no-such-flag"));
    const char *bad2[] = {"-Z", NULL};
    assert_int_equal(harness_run(bad2, out, sizeof(out), 5000), 2);
    const char *noval[] = {"--config", NULL};
    assert_int_equal(harness_run(noval, out, sizeof(out), 5000), 2);
    const char *stray[] = {"stray", NULL};
    assert_int_equal(harness_run(stray, out, sizeof(out), 5000), 2);
    const char *level[] = {"-l", "loud", NULL};
    assert_int_equal(harness_run(level, out, sizeof(out), 5000), 2);
    /* An endpoint that cannot be bound, named with its option (it was
     * "cannot bind ...: Invalid argument", status 1). */
    const char *port[] = {"-r", "tcp://127.0.0.1:notaport", NULL};
    assert_int_equal(harness_run(port, out, sizeof(out), 5000), 2);
    assert_non_null(strstr(out, "--request 'tcp://127.0.0.1:notaport' has a port that is not a "
                                "number from 0 to 65535"));
    /* One endpoint for both sockets, checked like the file's (it was
     * "cannot bind ...: Address already in use", status 1). */
    const char *same[] = {"-r", "ipc:///nonexistent/x", "-p", "ipc:///nonexistent/x", NULL};
    assert_int_equal(harness_run(same, out, sizeof(out), 5000), 2);
    assert_non_null(strstr(out, "--publish 'ipc:///nonexistent/x' is also the --request endpoint"));
    const char *same_conf[] = {"-p", "tcp://127.0.0.1:7411", NULL};
    assert_int_equal(harness_run(same_conf, out, sizeof(out), 5000), 2);
    assert_non_null(strstr(out, "is also the configured request endpoint"));

    char example[HARNESS_PATH_MAX];
    snprintf(example, sizeof(example), "%s/systemd/tallyd.conf.example", TALLY_SOURCE_DIR);
    const char *good[] = {"--check-config", example, NULL};
    int st = harness_run(good, out, sizeof(out), 5000);
    if (st != 0)
        fail_msg("--check-config %s: status %d: %s", example, st, out);

    char broken[HARNESS_PATH_MAX], want[HARNESS_PATH_MAX + 8];
    assert_int_equal(harness_write_file(&f->h, "broken.conf",
                                        "# a metric with a misspelt kind\n"
                                        "[metric disputes.resolved]\n"
                                        "kind = countr\n",
                                        broken, sizeof(broken)),
                     0);
    const char *check[] = {"--check-config", broken, NULL};
    assert_int_equal(harness_run(check, out, sizeof(out), 5000), 2);
    snprintf(want, sizeof(want), "%s:3", broken);
    if (strstr(out, want) == NULL)
        fail_msg("expected '%s' in: %s", want, out);
    assert_non_null(strstr(out, "countr"));

    /* A file that is not there: said to be tallyd's word, not the file's. */
    const char *missing[] = {"--check-config", "/nonexistent/tallyd.conf", NULL};
    assert_int_equal(harness_run(missing, out, sizeof(out), 5000), 2);
    if (strncmp(out, "tallyd: cannot open /nonexistent/tallyd.conf", 44) != 0)
        fail_msg("--check-config of a missing file: %s", out);

    /* The daemon refuses to start on it with the same status. */
    const char *run[] = {"-c", broken, "-r", "ipc:///nonexistent/r", NULL};
    assert_int_equal(harness_run(run, out, sizeof(out), 5000), 2);
    assert_non_null(strstr(out, want));
}

static bool stat_is(harness_client_t *c, const char *name, int64_t want, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    do {
        if (harness_stats(c, name) == want)
            return true;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    } while (harness_mono_ms() < deadline);
    return false;
}

/* 10. STATS carries the documented counters. */
static void test_stats(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    harness_client_t a, b;
    assert_int_equal(harness_client_open(&f->h, &a), 0);
    assert_int_equal(harness_client_open(&f->h, &b), 0);
    assert_int_equal(harness_stats(&a, "tallyd_submissions_accepted_total"), 0);
    assert_int_equal(harness_stats(&a, "tallyd_series"), 0);
    assert_int_equal(harness_stats(&a, "tallyd_clients"), 0);
    assert_int_equal(harness_stats(&a, "tallyd_subscribers"), 0);
    assert_true(harness_stats(&a, "tallyd_uptime_seconds") >= 0);

    submit_ok(&a, 1, "gaoguan", "patrols", 1);
    submit_ok(&a, 2, "gaoguan", "banners", 1);
    submit_ok(&b, 1, "bashan", "patrols", 1);
    harness_ack_t ack;
    assert_int_equal(harness_submit_one(&b, 1, "bashan", harness_now_ms(), "patrols", 1, &ack), 0);
    check_ack(&ack, 1, PROTO_ACK_DUPLICATE, 0);
    assert_int_equal(harness_stats(&a, "tallyd_submissions_accepted_total"), 3);
    assert_int_equal(harness_stats(&a, "tallyd_samples_accepted_total"), 3);
    /* gaoguan patrols, gaoguan banners, bashan patrols, and two county series */
    assert_int_equal(harness_stats(&a, "tallyd_series"), 5);
    assert_int_equal(harness_stats(&a, "tallyd_clients"), 2);
    assert_int_equal(harness_stats(&a, "tallyd_duplicates_total"), 1);
    assert_int_equal(harness_stats(&a, "tallyd_rejected_total"), 0);
    /* the history writer stores the three within a second or so */
    assert_true(stat_is(&a, "tallyd_history_unstored_records", 0, 5000));

    assert_int_equal(harness_sub_open(&f->h, &f->sub, "u/", NULL, NULL), 0);
    assert_true(stat_is(&a, "tallyd_subscribers", 1, 3000));
    assert_int_equal(harness_stats(&a, "tallyd_sequence"), (int64_t)f->sub.snap_seq);
    harness_sub_close(&f->sub);
    assert_true(stat_is(&a, "tallyd_subscribers", 0, 3000));

    struct timespec ts = {1, 100000000};
    nanosleep(&ts, NULL);
    assert_true(harness_stats(&a, "tallyd_uptime_seconds") >= 1);
    assert_int_equal(harness_stats(&a, "tallyd_no_such_counter"), -1);
    harness_client_close(&a);
    harness_client_close(&b);
}

/* The endpoint after "updates on " in the log, into out. */
static void bound_publish(harness_t *h, char *out, size_t cap)
{
    const char *at = strstr(harness_log(h), "updates on ");
    assert_non_null(at);
    at += strlen("updates on ");
    size_t n = strcspn(at, ", ");
    assert_true(n < cap);
    memcpy(out, at, n);
    out[n] = '\0';
}

/* An IPv6 endpoint binds and serves; a plaintext endpoint reachable from
 * other machines is warned about whatever its transport. */
static void test_endpoints(void **state)
{
    fx_t *f = *state;
    const char *v6[] = {"-p", "tcp://[::1]:*", NULL};
    assert_int_equal(harness_start(&f->h, NULL, v6), 0);
    char ep[HARNESS_PATH_MAX];
    bound_publish(&f->h, ep, sizeof(ep));
    assert_int_equal(strncmp(ep, "tcp://[::1]:", 12), 0);
    void *sub = zmq_socket(f->h.zctx, ZMQ_SUB);
    int one = 1, zero = 0, timeout = 5000;
    assert_int_equal(zmq_setsockopt(sub, ZMQ_IPV6, &one, sizeof(one)), 0);
    assert_int_equal(zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof(zero)), 0);
    assert_int_equal(zmq_setsockopt(sub, ZMQ_RCVTIMEO, &timeout, sizeof(timeout)), 0);
    assert_int_equal(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "h", 1), 0);
    assert_int_equal(zmq_connect(sub, ep), 0);
    char topic[8];
    int n = zmq_recv(sub, topic, sizeof(topic), 0);
    zmq_close(sub);
    if (n != 1 || topic[0] != 'h')
        fail_msg("no heartbeat from %s (%d): %s", ep, n, zmq_strerror(zmq_errno()));
    assert_null(strstr(harness_log(&f->h), "not a loopback address"));
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);

    const char *ws[] = {"-p", "ws://0.0.0.0:*/tally", NULL};
    assert_int_equal(harness_start(&f->h, NULL, ws), 0);
    assert_int_equal(harness_wait_log(&f->h,
                                      "ws://0.0.0.0:*/tally is not a loopback address and no keys "
                                      "are configured",
                                      3000),
                     0);
}

/* A second tallyd given a running one's ipc endpoint refuses to start
 * (ZeroMQ would replace the socket file, leaving the first running but
 * out of reach), whichever endpoint it is; a socket file left by a
 * killed daemon is bound again. */
static void test_ipc_taken(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    char other_req[HARNESS_PATH_MAX + 16], other_pub[HARNESS_PATH_MAX + 16];
    char other_state[HARNESS_PATH_MAX + 16];
    snprintf(other_req, sizeof(other_req), "ipc://%s/req2", f->h.dir);
    snprintf(other_pub, sizeof(other_pub), "ipc://%s/pub2", f->h.dir);
    snprintf(other_state, sizeof(other_state), "%s/state2", f->h.dir);
    const char *taken_req[] = {"-r", f->h.req_endpoint, "-p", other_pub, "-s", other_state, NULL};
    const char *taken_pub[] = {"-r", other_req, "-p", f->h.pub_endpoint, "-s", other_state, NULL};
    const char *const *runs[] = {taken_req, taken_pub};
    const char *taken[] = {f->h.req_endpoint, f->h.pub_endpoint};
    for (size_t i = 0; i < 2; i++) {
        char out[4096], want[HARNESS_PATH_MAX + 64];
        assert_int_equal(harness_run(runs[i], out, sizeof(out), 10000), 1);
        snprintf(want, sizeof(want), "cannot bind %s: another process listens there", taken[i]);
        if (strstr(out, want) == NULL)
            fail_msg("run %zu: no '%s' in:\n%s", i, want, out);
    }
    /* The first still answers, on both sockets. */
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    submit_ok(&c, 1, "gaoguan", "patrols", 1);
    harness_client_close(&c);
    harness_sub_t sub;
    assert_int_equal(harness_sub_open(&f->h, &sub, "u/", NULL, NULL), 0);
    assert_true(sub.synced);
    harness_sub_close(&sub);
    /* Killed, it leaves its socket files; the next start takes them. */
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    assert_int_equal(harness_restart(&f->h, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_item_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipc_taken, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
