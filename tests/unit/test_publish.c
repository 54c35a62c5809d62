/* Unit tests of publish: changes in the engine out as sequenced updates,
 * rounds and conflation, heartbeats, GOODBYE. */
#include "parts_test_util.h"

#include <uv.h>

#include "publish.h"

typedef struct fx {
    t_state_t st;
    uv_loop_t loop;
    t_sink_t pub;
    publish_t p;
} fx_t;

static void fx_init(fx_t *f, int64_t interval_ms)
{
    memset(f, 0, sizeof(*f));
    t_state_init(&f->st, "[limits]\nmax_townships = 5000\nmax_series = 20000\n");
    t_state_declare(&f->st);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    publish_config_t pc = t_publish_config(&f->st, &f->loop, &f->pub, interval_ms, 100);
    assert_int_equal(publish_init(&f->p, &pc), 0);
}

static int setup(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    fx_init(f, 3600000);
    *state = f;
    return 0;
}

static int setup_immediate(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    fx_init(f, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    publish_close(&f->p, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    t_sink_free(&f->pub);
    t_state_free(&f->st);
    free(f);
    return 0;
}

/* Apply one sample of metric to town (named, added if new). */
static void put(fx_t *f, const char *town, const char *metric, int64_t v)
{
    int t = intern_add(&f->st.towns, town, strlen(town));
    int m = intern_add(&f->st.metrics, metric, strlen(metric));
    assert_true(t > 0 && m > 0);
    engine_sample_t s = {(uint32_t)m, v};
    assert_int_equal(engine_apply(&f->st.engine, (uint32_t)t, t_now_ms, &s, 1, NULL), 0);
}

/* Every update recorded carries the next sequence number after first. */
static void expect_sequenced(const fx_t *f, uint64_t first)
{
    for (size_t i = 0; i < f->pub.n; i++) {
        const proto_msg_t *m = t_sink_at(&f->pub, i);
        assert_int_equal(m->type, PROTO_UPDATE);
        assert_int_equal(m->u.update.stream_id, publish_stream_id(&f->p));
        assert_int_equal(m->u.update.tally.seq, first + i);
    }
}

/* More changed series than one batch: the round goes on over the next
 * loop iterations, and requests can be served in between. */
static void test_round_in_batches(void **state)
{
    fx_t *f = *state;
    char town[16];
    for (int i = 0; i < 1500; i++) {
        snprintf(town, sizeof(town), "t%d", i);
        put(f, town, "talks", 1);
    }
    assert_int_equal(engine_dirty_count(&f->st.engine), 1501);
    publish_round(&f->p);
    assert_int_equal(f->pub.n, PUBLISH_BATCH);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->pub.n, 1501);
    expect_sequenced(f, 101);
    assert_int_equal(publish_seq(&f->p), 1601);
    assert_int_equal(f->st.stats.updates_published, 1501);
}

/* A series changed several times between rounds is published once, with
 * its newest value. */
static void test_conflation(void **state)
{
    fx_t *f = *state;
    put(f, "gaoguan", "talks", 1);
    put(f, "gaoguan", "talks", 2);
    put(f, "gaoguan", "talks", 3);
    publish_round(&f->p);
    assert_int_equal(f->pub.n, 2); /* the township and the county */
    const proto_tally_t *t = &t_sink_at(&f->pub, 0)->u.update.tally;
    assert_true(proto_str_eq(t->scope, "gaoguan"));
    assert_int_equal(t->values[t->nvalues - 1].num, 6);
    assert_memory_equal(f->pub.v[0].head, "u/town/gaoguan/talks/", 21);
    publish_round(&f->p);
    assert_int_equal(f->pub.n, 2); /* nothing changed since */
    expect_sequenced(f, 101);
}

/* With interval 0 each loop iteration that changed something publishes. */
static void test_immediate(void **state)
{
    fx_t *f = *state;
    put(f, "gaoguan", "talks", 5);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->pub.n, 2);
    expect_sequenced(f, 101);
}

/* A joining subscriber gets a heartbeat at once; joiners within
 * PUBLISH_PROMPT_MS share the next one, so a subscribe loop cannot flood. */
static void test_prompt_heartbeat(void **state)
{
    fx_t *f = *state;
    publish_on_subscription(&f->p, "\x01h", 2);
    assert_int_equal(f->pub.n, 1);
    assert_int_equal(t_sink_at(&f->pub, 0)->type, PROTO_HEARTBEAT);
    assert_int_equal(t_sink_at(&f->pub, 0)->u.heartbeat.seq, 100);
    publish_on_subscription(&f->p, "\x01u/county/", 10); /* not a joiner */
    publish_on_subscription(&f->p, "\x00h", 2);          /* nor a leaver */
    for (int i = 0; i < 50; i++)
        publish_on_subscription(&f->p, "\x01h", 2);
    assert_int_equal(f->pub.n, 1);                               /* one is due, not sent yet */
    assert_int_equal(f->st.stats.prompt_heartbeats_skipped, 49); /* the first made it due */
    uv_sleep(PUBLISH_PROMPT_MS + 10);
    uv_update_time(&f->loop);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->pub.n, 2);
    assert_int_equal(t_sink_at(&f->pub, 1)->type, PROTO_HEARTBEAT);
    /* Later, a joiner gets one at once again. */
    uv_sleep(PUBLISH_PROMPT_MS + 10);
    uv_update_time(&f->loop);
    publish_on_subscription(&f->p, "\x01h", 2);
    assert_int_equal(f->pub.n, 3);
}

static void test_goodbye(void **state)
{
    fx_t *f = *state;
    put(f, "gaoguan", "talks", 5);
    publish_goodbye(&f->p);
    assert_int_equal(f->pub.n, 3);
    const proto_msg_t *m = t_sink_at(&f->pub, 2);
    assert_int_equal(m->type, PROTO_GOODBYE);
    assert_int_equal(m->u.goodbye.seq, 102);
    assert_memory_equal(f->pub.v[2].head, "h", 1);
}

/* The periods named in a recorded PERIOD_CHANGED, as "2023-12,2023" */
static void changed_names(const proto_msg_t *m, char *out, size_t len)
{
    assert_int_equal(m->type, PROTO_PERIOD_CHANGED);
    out[0] = '\0';
    size_t k = 0;
    for (uint32_t i = 0; i < m->u.period_changed.nperiods; i++) {
        proto_str_t s = m->u.period_changed.periods[i];
        int w = snprintf(out + k, len - k, "%s%.*s", i ? "," : "", (int)s.len, s.ptr);
        assert_true(w > 0 && (size_t)w < len - k);
        k += (size_t)w;
    }
}

/* Changes to closed periods wait for the round and are gathered per
 * series: one PERIOD_CHANGED per series, each period once, 8 at most per
 * message, the series' topic, the current seq. */
static void test_period_changed_conflated(void **state)
{
    fx_t *f = *state;
    put(f, "gaoguan", "talks", 1);
    publish_round(&f->p); /* seq 101, 102 */
    t_sink_clear(&f->pub);
    int t = intern_add(&f->st.towns, "gaoguan", 7);
    int m = intern_add(&f->st.metrics, "talks", 5);
    calperiod_t dec[4], jun[4];
    const char *dn[4] = {"2023-12-31", "2023-12", "2023-Q4", "2023"};
    const char *jn[4] = {"2023-06-30", "2023-06", "2023-Q2", "2023"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(calperiod_parse(dn[i], strlen(dn[i]), &dec[i]), 0);
        assert_int_equal(calperiod_parse(jn[i], strlen(jn[i]), &jun[i]), 0);
    }
    for (int i = 0; i < 3; i++) { /* three submissions of December */
        publish_period_changed(&f->p, (uint32_t)m, (uint32_t)t, dec, 4);
        publish_period_changed(&f->p, (uint32_t)m, 0, dec, 4);
    }
    publish_period_changed(&f->p, (uint32_t)m, (uint32_t)t, jun, 4); /* and one of June */
    assert_int_equal(f->pub.n, 0);                                   /* nothing before the round */
    publish_round(&f->p);
    assert_int_equal(f->pub.n, 2);
    char names[256];
    const proto_msg_t *a = t_sink_at(&f->pub, 0);
    changed_names(a, names, sizeof(names));
    assert_string_equal(names, "2023-12-31,2023-12,2023-Q4,2023,2023-06-30,2023-06,2023-Q2");
    assert_true(proto_str_eq(a->u.period_changed.scope, "gaoguan"));
    assert_int_equal(a->u.period_changed.seq, 102);
    assert_int_equal(a->u.period_changed.stream_id, publish_stream_id(&f->p));
    assert_memory_equal(f->pub.v[0].head, "u/town/gaoguan/talks/", 21);
    changed_names(t_sink_at(&f->pub, 1), names, sizeof(names));
    assert_string_equal(names, "2023-12-31,2023-12,2023-Q4,2023");
    assert_true(proto_str_eq(t_sink_at(&f->pub, 1)->u.period_changed.scope, ""));
    assert_int_equal(f->st.stats.period_changes_published, 2);
    publish_round(&f->p);
    assert_int_equal(f->pub.n, 2); /* sent once */

    /* More than 8 periods of one series: a full message goes at once. */
    calperiod_t days[12];
    for (int i = 0; i < 12; i++) {
        char d[16];
        snprintf(d, sizeof(d), "2023-03-%02d", i + 1);
        assert_int_equal(calperiod_parse(d, strlen(d), &days[i]), 0);
        publish_period_changed(&f->p, (uint32_t)m, (uint32_t)t, &days[i], 1);
    }
    assert_int_equal(f->pub.n, 3);
    changed_names(t_sink_at(&f->pub, 2), names, sizeof(names));
    assert_string_equal(names, "2023-03-01,2023-03-02,2023-03-03,2023-03-04,2023-03-05,"
                               "2023-03-06,2023-03-07,2023-03-08");
    publish_goodbye(&f->p); /* the rest before GOODBYE */
    assert_int_equal(f->pub.n, 5);
    changed_names(t_sink_at(&f->pub, 3), names, sizeof(names));
    assert_string_equal(names, "2023-03-09,2023-03-10,2023-03-11,2023-03-12");
    assert_int_equal(t_sink_at(&f->pub, 4)->type, PROTO_GOODBYE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_in_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_immediate, setup_immediate, teardown),
        cmocka_unit_test_setup_teardown(test_prompt_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_goodbye, setup, teardown),
        cmocka_unit_test_setup_teardown(test_period_changed_conflated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
