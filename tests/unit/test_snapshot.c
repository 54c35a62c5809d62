/* Unit tests of snapshot: streamed a chunk at a time as the requester
 * drains, at most so many at once and one per connection, abandoned when
 * the peer is gone or reads nothing. */
#include "parts_test_util.h"

#include <uv.h>

#include "publish.h"
#include "snapshot.h"

typedef struct fx {
    t_state_t st;
    uv_loop_t loop;
    t_sink_t pub, replies;
    publish_t p;
    snapshot_t s;
    const char *slow; /* replies to this routing id are refused */
    int budget;       /* replies taken before refusing (EAGAIN) again; -1: all */
} fx_t;

static int reply_send(void *ctx, const void *const *bufs, const size_t *lens, int nparts)
{
    fx_t *f = ctx;
    if (f->slow && lens[0] == strlen(f->slow) && memcmp(bufs[0], f->slow, lens[0]) == 0)
        return TALLY_EAGAIN;
    if (f->budget == 0)
        return TALLY_EAGAIN;
    if (f->budget > 0)
        f->budget--;
    return t_sink_send(&f->replies, bufs, lens, nparts);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    t_state_init(&f->st, "[limits]\nmax_townships = 5000\nmax_series = 20000\n");
    t_state_declare(&f->st);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->budget = -1;
    publish_config_t pc = t_publish_config(&f->st, &f->loop, &f->pub, 3600000, 100);
    assert_int_equal(publish_init(&f->p, &pc), 0);
    snapshot_config_t sc = {
        .loop = &f->loop,
        .engine = &f->st.engine,
        .publish = &f->p,
        .towns = &f->st.towns,
        .metrics = &f->st.metrics,
        .reply = {reply_send, f},
        .stats = &f->st.stats,
        .log = &f->st.log,
        .limits = {.max_streams = 3, .timeout_ms = 30000},
    };
    assert_int_equal(snapshot_init(&f->s, &sc), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    snapshot_close(&f->s, NULL);
    publish_close(&f->p, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    t_sink_free(&f->pub);
    t_sink_free(&f->replies);
    t_state_free(&f->st);
    free(f);
    return 0;
}

static void put(fx_t *f, const char *town, const char *metric, int64_t v)
{
    int t = intern_add(&f->st.towns, town, strlen(town));
    int m = intern_add(&f->st.metrics, metric, strlen(metric));
    assert_true(t > 0 && m > 0);
    engine_sample_t smp = {(uint32_t)m, v};
    assert_int_equal(engine_apply(&f->st.engine, (uint32_t)t, t_now_ms, &smp, 1, NULL), 0);
}

static void put_towns(fx_t *f, int n, const char *metric)
{
    char town[16];
    for (int i = 0; i < n; i++) {
        snprintf(town, sizeof(town), "t%d", i);
        put(f, town, metric, i + 1);
    }
}

/* One turn of the loop, then a millisecond's rest.  Not UV_RUN_ONCE:
 * when the snapshot's retry timer is already due as the turn begins (a
 * loaded machine), it runs first and ends the stream, and the turn then
 * blocks until the next timer, the publisher's heartbeat an hour away. */
static void turn(fx_t *f)
{
    uv_run(&f->loop, UV_RUN_NOWAIT);
    uv_sleep(1);
}

/* Run the loop until no snapshot is being sent (5 s guard). */
static void drain(fx_t *f)
{
    uint64_t deadline = uv_hrtime() + 5000000000ULL;
    while (snapshot_active(&f->s) > 0 && uv_hrtime() < deadline)
        turn(f);
    assert_int_equal(snapshot_active(&f->s), 0);
}

/* The replies to rid: items (checked against S and the prefix), then the
 * end, whose count must match. */
static size_t check_stream(fx_t *f, const char *rid, uint64_t seq, const char *prefix)
{
    size_t items = 0;
    bool ended = false;
    for (size_t i = 0; i < f->replies.n; i++) {
        if (f->replies.v[i].head_len != strlen(rid) ||
            memcmp(f->replies.v[i].head, rid, strlen(rid)) != 0)
            continue;
        const proto_msg_t *m = t_sink_at(&f->replies, i);
        assert_false(ended);
        if (m->type == PROTO_SNAPSHOT_ITEM) {
            const proto_tally_t *t = &m->u.snapshot_item.tally;
            assert_int_equal(t->seq, seq);
            char topic[PROTO_TOPIC_MAX];
            int n = proto_topic(topic, sizeof(topic), t->metric, t->scope);
            assert_true(n >= (int)strlen(prefix) && memcmp(topic, prefix, strlen(prefix)) == 0);
            items++;
        } else {
            assert_int_equal(m->type, PROTO_SNAPSHOT_END);
            assert_int_equal(m->u.snapshot_end.seq, seq);
            assert_int_equal(m->u.snapshot_end.count, items);
            assert_int_equal(m->u.snapshot_end.stream_id, publish_stream_id(&f->p));
            ended = true;
        }
    }
    assert_true(ended);
    return items;
}

/* A snapshot larger than a chunk, to a peer that takes a few messages per
 * loop iteration: it arrives whole, while tallyd never holds more than a
 * chunk of it. */
static void test_streamed_in_chunks(void **state)
{
    fx_t *f = *state;
    put_towns(f, 2000, "talks");
    f->budget = 50;
    assert_int_equal(snapshot_request(&f->s, "P1", 2, 7, "u/town/", 7), 0);
    /* The pending changes were published first: S is 100 + 2001. */
    assert_int_equal(f->pub.n, 2001);
    uint64_t deadline = uv_hrtime() + 5000000000ULL;
    while (snapshot_active(&f->s) > 0 && uv_hrtime() < deadline) {
        f->budget = 50;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        /* What waits in tallyd is at most one chunk, encoded. */
        assert_true(snapshot_buffered(&f->s) <= SNAPSHOT_CHUNK * 512);
    }
    assert_int_equal(check_stream(f, "P1", 2101, "u/town/"), 2000);
    assert_int_equal(f->st.stats.snapshot_items, 2000);
}

/* A stuck peer does not hold up another; the other's snapshot ends. */
static void test_stuck_peer_does_not_hold_up_others(void **state)
{
    fx_t *f = *state;
    put_towns(f, 10, "talks");
    f->slow = "slow";
    assert_int_equal(snapshot_request(&f->s, "slow", 4, 1, "u/town/", 7), 0);
    assert_int_equal(snapshot_request(&f->s, "fast", 4, 2, "u/county/", 9), 0);
    uint64_t deadline = uv_hrtime() + 2000000000ULL;
    while (snapshot_active(&f->s) > 1 && uv_hrtime() < deadline)
        turn(f);
    assert_int_equal(check_stream(f, "fast", 111, "u/county/"), 1);
    f->slow = NULL;
    drain(f);
    assert_int_equal(check_stream(f, "slow", 111, "u/town/"), 10);
}

/* A series that changes while the snapshot is streamed may appear with
 * its newer value; the update that carries it has a sequence above S. */
static void test_changes_while_streaming(void **state)
{
    fx_t *f = *state;
    put_towns(f, 3000, "talks"); /* more than one loop iteration walks */
    /* (a prefix without the township's '/': every series is looked at,
     * where u/town/t2999/ is answered at once by lookup) */
    assert_int_equal(snapshot_request(&f->s, "P1", 2, 7, "u/town/t2999", 12), 0);
    put(f, "t2999", "talks", 1000); /* 3000 + 1000 */
    publish_changes(&f->p);
    assert_true(t_sink_at(&f->pub, f->pub.n - 1)->u.update.tally.seq > 100 + 3001);
    drain(f);
    assert_int_equal(check_stream(f, "P1", 3101, "u/town/t2999"), 1);
    const proto_tally_t *t = &t_sink_at(&f->replies, f->replies.n - 2)->u.snapshot_item.tally;
    assert_int_equal(t->values[t->nvalues - 1].num, 4000);
}

/* A prefix naming one scope is answered by lookup, metric by metric:
 * at once (no loop turn), however many series other scopes hold, and in
 * as many chunks as its metric ids need. */
static void test_one_scope(void **state)
{
    fx_t *f = *state;
    put_towns(f, 3000, "talks"); /* a walk would take two loop turns */
    char metric[16];
    for (int i = 0; i < SNAPSHOT_CHUNK + 44; i++) { /* metric ids past one chunk */
        snprintf(metric, sizeof(metric), "m%d", i);
        put(f, "t17", metric, i);
    }
    assert_int_equal(snapshot_request(&f->s, "A", 1, 1, "u/town/t17/", 11), 0);
    assert_int_equal(snapshot_request(&f->s, "B", 1, 2, "u/county/", 9), 0);
    assert_int_equal(snapshot_request(&f->s, "C", 1, 3, "u/town/t17/m7/", 14), 0);
    assert_int_equal(snapshot_request(&f->s, "D", 1, 4, "u/town/t3000/", 13), 0);
    uint64_t seq = publish_seq(&f->p);
    /* A walk of every series would have more to do, a turn later. */
    if (snapshot_active(&f->s) != 1)
        fail_msg("%u snapshots still streaming", (unsigned)snapshot_active(&f->s));
    assert_int_equal(check_stream(f, "A", seq, "u/town/t17/"), 1 + SNAPSHOT_CHUNK + 44);
    assert_int_equal(check_stream(f, "B", seq, "u/county/"), 1 + SNAPSHOT_CHUNK + 44);
    assert_int_equal(check_stream(f, "C", seq, "u/town/t17/m7/"), 1);
    drain(f); /* D: a township with no series is walked for, and has none */
    assert_int_equal(check_stream(f, "D", seq, "u/town/t3000/"), 0);
}

/* At most max_streams at once, one per connection; beyond: BUSY. */
static void test_limits(void **state)
{
    fx_t *f = *state;
    put_towns(f, 10, "talks");
    f->slow = "x";
    f->budget = 0;
    assert_int_equal(snapshot_request(&f->s, "a", 1, 1, "", 0), 0);
    assert_int_equal(snapshot_request(&f->s, "a", 1, 2, "", 0), TALLY_EBUSY);
    assert_int_equal(snapshot_request(&f->s, "b", 1, 3, "", 0), 0);
    assert_int_equal(snapshot_request(&f->s, "c", 1, 4, "", 0), 0);
    assert_int_equal(snapshot_request(&f->s, "d", 1, 5, "", 0), TALLY_EBUSY);
    assert_int_equal(f->st.stats.snapshots_refused, 2);
    assert_int_equal(snapshot_active(&f->s), 3);
    f->budget = -1;
    drain(f);
    assert_int_equal(snapshot_request(&f->s, "d", 1, 6, "", 0), 0);
    drain(f);
}

/* A peer that reads nothing for timeout_ms, or is gone, loses its
 * snapshot; tallyd lets go of it and counts it. */
static void test_abandoned(void **state)
{
    fx_t *f = *state;
    put_towns(f, 10, "talks");
    snapshot_limits_t l = {.max_streams = 3, .timeout_ms = 50};
    snapshot_set_limits(&f->s, &l);
    f->slow = "asleep";
    assert_int_equal(snapshot_request(&f->s, "asleep", 6, 1, "", 0), 0);
    drain(f);
    assert_int_equal(f->st.stats.snapshots_abandoned, 1);
    assert_true(t_logged(&f->st, "abandoned: its peer read nothing"));
    f->replies.refuse = TALLY_ENOTFOUND;
    f->replies.refuse_n = -1;
    assert_int_equal(snapshot_request(&f->s, "gone", 4, 2, "", 0), 0);
    drain(f);
    assert_int_equal(f->st.stats.snapshots_abandoned, 2);
    assert_int_equal(f->st.stats.unroutable_replies, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_streamed_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stuck_peer_does_not_hold_up_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_while_streaming, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandoned, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
