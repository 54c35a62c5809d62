/* SIGHUP reloads tallyd's configuration: a valid change takes effect and
 * keeps the tallies; an invalid one is refused and the old one stays. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static const char base_conf[] = "[township gaoguan]\n"
                                "name = 高观镇\n"
                                "[metric disputes.screened]\n"
                                "kind = counter\n"
                                "[metric disputes.resolved]\n"
                                "kind = counter\n";

typedef struct fx {
    harness_t h;
    harness_table_t t;
} fx_t;

static int setup(void **state)
{
    fx_t *f = test_calloc(1, sizeof(*f));
    harness_table_init(&f->t);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = harness_finish(&f->h);
    harness_table_free(&f->t);
    harness_cleanup(&f->h);
    test_free(f);
    return rc;
}

static harness_ack_t submit(harness_client_t *c, uint64_t seq, const char *town, const char *metric,
                            int64_t v)
{
    harness_ack_t a;
    assert_int_equal(harness_submit_one(c, seq, town, harness_now_ms(), metric, v, &a), 0);
    return a;
}

static int64_t county_total(fx_t *f, harness_client_t *c, const char *metric)
{
    harness_value_t v;
    assert_int_equal(harness_snapshot(c, "", &f->t), 0);
    if (!harness_table_get(&f->t, metric, "", "total", &v) || !v.present)
        return -1;
    return v.num;
}

/* Rewrite the config, send SIGHUP and wait for the log line that ends the
 * reload (n-th occurrence of needle). */
static void reload(fx_t *f, const char *text, const char *needle)
{
    assert_int_equal(harness_write_file(&f->h, "tallyd.conf", text, NULL, 0), 0);
    assert_int_equal(kill(f->h.pid, SIGHUP), 0);
    assert_int_equal(harness_wait_log(&f->h, needle, 5000), 0);
}

static void test_valid_reload_keeps_tallies(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, base_conf, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(submit(&c, 1, "gaoguan", "disputes.screened", 219).status, PROTO_ACK_ACCEPTED);
    /* Not yet declared: refused. */
    harness_ack_t a = submit(&c, 2, "bashan", "disputes.screened", 5);
    assert_int_equal(a.status, PROTO_ACK_REJECTED);
    assert_int_equal(a.code, -TALLY_EUNKTOWN);

    char conf[1024];
    snprintf(conf, sizeof(conf), "%s[township bashan]\nname = 巴山镇\n", base_conf);
    reload(f, conf, "reloaded");

    a = submit(&c, 3, "bashan", "disputes.screened", 5);
    assert_int_equal(a.status, PROTO_ACK_ACCEPTED);
    assert_int_equal(county_total(f, &c, "disputes.screened"), 224);
    harness_client_close(&c);
}

static void test_invalid_reload_is_refused(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, base_conf, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(submit(&c, 1, "gaoguan", "disputes.resolved", 216).status, PROTO_ACK_ACCEPTED);

    /* A syntax error: refused, naming file and line; the old catalog keeps
     * working and the tallies are there. */
    char conf[1024];
    snprintf(conf, sizeof(conf), "%s[metric patrols]\nkind = countr\n", base_conf);
    reload(f, conf, "reload refused");
    assert_non_null(strstr(harness_log(&f->h), "tallyd.conf:8: [metric patrols] kind"));
    harness_ack_t a = submit(&c, 2, "gaoguan", "patrols", 1);
    assert_int_equal(a.status, PROTO_ACK_REJECTED);
    assert_int_equal(a.code, -TALLY_EUNKMETRIC);
    assert_int_equal(submit(&c, 3, "gaoguan", "disputes.resolved", 1).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(county_total(f, &c, "disputes.resolved"), 217);

    /* A catalog that contradicts the tallies: a counter with tallies may
     * not become a gauge. */
    snprintf(conf, sizeof(conf),
             "[township gaoguan]\n[metric disputes.screened]\nkind = counter\n"
             "[metric disputes.resolved]\nkind = gauge\n");
    assert_int_equal(harness_write_file(&f->h, "tallyd.conf", conf, NULL, 0), 0);
    assert_int_equal(kill(f->h.pid, SIGHUP), 0);
    assert_int_equal(harness_wait_log(&f->h, "cannot become a gauge", 5000), 0);
    assert_int_equal(submit(&c, 4, "gaoguan", "disputes.resolved", 1).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(county_total(f, &c, "disputes.resolved"), 218);
    harness_client_close(&c);
}

/* Settings that need a restart are named, and keep their values. */
static void test_restart_settings_are_reported(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, base_conf, NULL), 0);
    char conf[1024];
    snprintf(conf, sizeof(conf), "[windows]\n2h = 2h\n%s", base_conf);
    reload(f, conf, "need a restart");
    assert_non_null(strstr(harness_log(&f->h), "windows"));
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(submit(&c, 1, "gaoguan", "disputes.screened", 3).status, PROTO_ACK_ACCEPTED);
    harness_value_t v;
    assert_int_equal(harness_snapshot(&c, "u/county/", &f->t), 0);
    assert_true(harness_table_get(&f->t, "disputes.screened", "", "1h", &v));
    assert_false(harness_table_get(&f->t, "disputes.screened", "", "2h", &v));
    harness_client_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_reload_keeps_tallies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_reload_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_settings_are_reported, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
