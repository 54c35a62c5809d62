/* Unit tests of reload: a configuration file checked against the running
 * state, accepted (catalog declared, restart-only settings kept) or
 * refused with nothing changed. */
#include "parts_test_util.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "keys.h"
#include "reload.h"

static const char base_conf[] = "[tallyd]\nrequest = tcp://127.0.0.1:7411\n"
                                "[limits]\nmax_clients = 100\n"
                                "[township gaoguan]\n"
                                "[metric disputes.screened]\nkind = counter\n"
                                "[metric disputes.resolved]\nkind = counter\n"
                                "[ratio disputes.resolution_rate]\n"
                                "numerator = disputes.resolved\n"
                                "denominator = disputes.screened\n";

typedef struct fx {
    t_state_t st;
    char dir[64];
    char path[128];
    config_overrides_t o;
    keyring_t keys;
    reload_target_t t;
    tallyd_config_t next;
    keyring_t next_keys;
    bool start_refuses; /* what reload_prepare() says of the next start */
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    t_state_init(&f->st, base_conf);
    t_state_declare(&f->st);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_reload.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/tallyd.conf", f->dir);
    f->o.config_path = f->path;
    keyring_init(&f->keys);
    f->t = (reload_target_t){&f->st.cfg, &f->o, &f->st.engine, &f->st.towns,     &f->st.metrics,
                             &f->keys,   false, &f->st.log,    &f->start_refuses};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    keyring_free(&f->keys);
    t_state_free(&f->st);
    free(f);
    return 0;
}

static void write_conf(fx_t *f, const char *text)
{
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Give (metric, gaoguan) a counter tally. */
static void count(fx_t *f, const char *metric, int64_t v)
{
    int m = intern_find(&f->st.metrics, metric, strlen(metric));
    int t = intern_find(&f->st.towns, "gaoguan", 7);
    engine_sample_t s = {(uint32_t)m, v};
    assert_int_equal(engine_apply(&f->st.engine, (uint32_t)t, T_NOW, &s, 1, NULL), 0);
}

static void test_no_file(void **state)
{
    fx_t *f = *state;
    f->o.config_path = NULL;
    assert_int_equal(reload_prepare(&f->t, &f->next, &f->next_keys), TALLY_ENOTFOUND);
    assert_true(t_logged(&f->st, "nothing to read"));
}

static void test_accept_grows_the_catalog(void **state)
{
    fx_t *f = *state;
    char text[2048];
    snprintf(text, sizeof(text),
             "%s[township gecheng]\nname = 葛城街道\n[metric talks]\nkind = gauge\n"
             "[ratio talks.share]\nnumerator = talks\ndenominator = disputes.screened\n",
             base_conf);
    /* max_clients changes too: a limit the running daemon takes. */
    char *p = strstr(text, "max_clients = 100");
    memcpy(p, "max_clients = 200", 17);
    write_conf(f, text);
    assert_int_equal(reload_prepare(&f->t, &f->next, &f->next_keys), 0);
    assert_int_equal(f->next.max_clients, 200);
    assert_int_equal(f->next.ntownships, 2);
    /* Nothing is declared before reload_apply_catalog(). */
    assert_int_equal(intern_find(&f->st.towns, "gecheng", 7), TALLY_ENOTFOUND);
    assert_false(f->start_refuses);
    assert_int_equal(reload_apply_catalog(&f->t, &f->next), 0);
    assert_true(intern_find(&f->st.towns, "gecheng", 7) > 0);
    int talks = intern_find(&f->st.metrics, "talks", 5);
    assert_int_equal(engine_metric_kind(&f->st.engine, (uint32_t)talks), PROTO_KIND_GAUGE);
    int share = intern_find(&f->st.metrics, "talks.share", 11);
    assert_int_equal(engine_metric_kind(&f->st.engine, (uint32_t)share), PROTO_KIND_RATIO);
    keyring_free(&f->next_keys);
    config_free(&f->next);
}

/* Endpoints, time zone and windows need a restart: they keep their values
 * and the log says which. */
static void test_restart_settings_kept(void **state)
{
    fx_t *f = *state;
    char text[2048];
    snprintf(text, sizeof(text), "%s", base_conf);
    char *p = strstr(text, "7411");
    memcpy(p, "7499", 4);
    strcat(text, "[windows]\n2h = 2h\n");
    write_conf(f, text);
    assert_int_equal(reload_prepare(&f->t, &f->next, &f->next_keys), 0);
    assert_string_equal(f->next.request, "tcp://127.0.0.1:7411");
    assert_int_equal(f->next.nwindows, f->st.cfg.nwindows);
    assert_true(t_logged(&f->st, "need a restart and keep their values: request: "));
    assert_true(t_logged(&f->st, "7499"));
    /* The windows are not merely for a restart: the state is bound to
     * them, and the next start refuses others. */
    assert_true(t_logged(&f->st, "the next start will refuse this: windows: "
                                 "'1h=1h,24h=1d,7d=7d,30d=30d' -> '2h=2h'"));
    assert_true(t_logged(&f->st, "put back [windows] 1h = 1h, 24h = 1d, 7d = 7d, 30d = 30d in"));
    assert_false(t_logged(&f->st, "keep their values: request: 'tcp://127.0.0.1:7411' -> "
                                  "'tcp://127.0.0.1:7499'; windows"));
    assert_true(f->start_refuses);
    keyring_free(&f->next_keys);
    config_free(&f->next);
}

/* buckets and the time zone likewise, each with its value to put back;
 * a restart-only setting alone does not make the next start refuse. */
static void test_state_bound_settings(void **state)
{
    fx_t *f = *state;
    char text[2048];
    snprintf(text, sizeof(text), "[windows]\nbuckets = 30\n[tallyd]\ntimezone = UTC\n%s",
             strstr(base_conf, "[limits]"));
    write_conf(f, text);
    assert_int_equal(reload_prepare(&f->t, &f->next, &f->next_keys), 0);
    assert_int_equal(f->next.buckets, f->st.cfg.buckets);
    assert_string_equal(f->next.timezone, f->st.cfg.timezone);
    assert_true(t_logged(&f->st, "the next start will refuse this: timezone: 'Asia/Shanghai' -> "
                                 "'UTC'; buckets: '60' -> '30'"));
    assert_true(t_logged(&f->st, "put back timezone = Asia/Shanghai, buckets = 60 in"));
    assert_true(f->start_refuses);
    keyring_free(&f->next_keys);
    config_free(&f->next);

    f->start_refuses = false;
    snprintf(text, sizeof(text), "%s", base_conf);
    memcpy(strstr(text, "7411"), "7499", 4);
    write_conf(f, text);
    assert_int_equal(reload_prepare(&f->t, &f->next, &f->next_keys), 0);
    assert_true(t_logged(&f->st, "need a restart and keep their values: request: "));
    assert_false(f->start_refuses);
    keyring_free(&f->next_keys);
    config_free(&f->next);

    /* Another name of the running zone: the start takes the state. */
    snprintf(text, sizeof(text), "[tallyd]\ntimezone = Asia/Chongqing\n%s",
             strstr(base_conf, "[limits]"));
    write_conf(f, text);
    assert_int_equal(reload_prepare(&f->t, &f->next, &f->next_keys), 0);
    assert_true(t_logged(&f->st, "need a restart and keep their values: timezone: "
                                 "'Asia/Shanghai' -> 'Asia/Chongqing'"));
    assert_string_equal(f->next.timezone, "Asia/Shanghai");
    assert_false(f->start_refuses);
    keyring_free(&f->next_keys);
    config_free(&f->next);
}

/* The command line still wins over the file. */
static void test_overrides_applied_again(void **state)
{
    fx_t *f = *state;
    f->o.state_dir = "/var/lib/elsewhere";
    f->o.log_level = LOG_LEVEL_DEBUG;
    write_conf(f, "[tallyd]\nstate_dir = /tmp/x\nlog_level = error\n");
    assert_int_equal(reload_prepare(&f->t, &f->next, &f->next_keys), 0);
    assert_int_equal(f->next.log_level, LOG_LEVEL_DEBUG);
    keyring_free(&f->next_keys);
    config_free(&f->next);
}

static void expect_refused(fx_t *f, const char *why)
{
    uint32_t towns = intern_count(&f->st.towns), metrics = intern_count(&f->st.metrics);
    assert_int_equal(reload_prepare(&f->t, &f->next, &f->next_keys), TALLY_ECONFIG);
    assert_true(t_logged(&f->st, "reload refused, the current configuration stays in force"));
    if (!t_logged(&f->st, why))
        fail_msg("the log does not say '%s':\n%s", why, f->st.logbuf);
    assert_int_equal(intern_count(&f->st.towns), towns);
    assert_int_equal(intern_count(&f->st.metrics), metrics);
}

static void test_refuse_bad_file(void **state)
{
    fx_t *f = *state;
    write_conf(f, "[limits]\nmax_clients = many\n");
    expect_refused(f, "tallyd.conf:2: [limits] max_clients");
    assert_true(t_logged(&f->st, "the next start will refuse this file too"));
    assert_true(f->start_refuses);
}

static void test_refuse_kind_change(void **state)
{
    fx_t *f = *state;
    count(f, "disputes.screened", 5);
    char text[2048];
    snprintf(text, sizeof(text), "%s", base_conf);
    char *p = strstr(text, "kind = counter");
    memcpy(p, "kind = gauge  ", 14);
    write_conf(f, text);
    expect_refused(f, "metric 'disputes.screened' (line 6) has counter tallies; it cannot become "
                      "a gauge; the next start will refuse this file too: put back kind = "
                      "counter");
    assert_true(f->start_refuses);
    int m = intern_find(&f->st.metrics, "disputes.screened", 17);
    assert_int_equal(engine_metric_kind(&f->st.engine, (uint32_t)m), PROTO_KIND_COUNTER);
}

static void test_refuse_ratio_inputs(void **state)
{
    fx_t *f = *state;
    char text[2048];
    snprintf(text, sizeof(text), "%s", base_conf);
    char *p = strstr(text, "numerator = disputes.resolved");
    memcpy(p, "numerator = disputes.screened", 29);
    p = strstr(text, "denominator = disputes.screened");
    memcpy(p, "denominator = disputes.resolved", 31);
    write_conf(f, text);
    expect_refused(f, "ratio 'disputes.resolution_rate' (line 10) changes its inputs");
    /* A start keeps the saved inputs: it does not refuse. */
    assert_false(f->start_refuses);
}

/* A secured daemon reads its key directories again; one it cannot read
 * refuses the whole reload. */
static void test_refuse_keys(void **state)
{
    fx_t *f = *state;
    f->t.secured = true;
    char text[2048];
    snprintf(text, sizeof(text),
             "%s[security]\nserver_secret_key = %s/server_secret\ntownship_keys = %s/nowhere\n",
             base_conf, f->dir, f->dir);
    write_conf(f, text);
    expect_refused(f, "[security] cannot load the client keys");
    assert_true(f->start_refuses);
}

/* Write a public certificate of a fresh key to dir/name. */
static void write_public_cert(const char *dir, const char *name)
{
    char pub[41], sec[41], path[256];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "curve\n    public-key = \"%s\"\n", pub);
    fclose(fp);
}

/* A township key for a township the closed catalog does not declare (a
 * typo in its file's name) is named, with the township meant. */
static void test_key_of_undeclared_township(void **state)
{
    fx_t *f = *state;
    f->t.secured = true;
    char keys[128], text[2048];
    snprintf(keys, sizeof(keys), "%s/townships", f->dir);
    assert_int_equal(mkdir(keys, 0700), 0);
    write_public_cert(keys, "gaoguan.key");
    write_public_cert(keys, "gaogaun.key");
    snprintf(text, sizeof(text), "%s[security]\nserver_secret_key = /etc/k\ntownship_keys = %s\n",
             base_conf, keys);
    /* The daemon's own key is not read again at a reload. */
    memcpy(f->st.cfg.server_secret_key, "/etc/k", 7);
    write_conf(f, text);
    assert_int_equal(reload_prepare(&f->t, &f->next, &f->next_keys), 0);
    assert_int_equal(f->next_keys.ntownships, 2);
    if (!t_logged(&f->st, "gaogaun.key is for township 'gaogaun', which the catalog does not "
                          "declare: its submissions will be refused (UNKNOWN_TOWNSHIP); did you "
                          "mean 'gaoguan'?"))
        fail_msg("no warning about gaogaun.key:\n%s", f->st.logbuf);
    assert_false(t_logged(&f->st, "gaoguan.key is for"));
    keyring_free(&f->next_keys);
    config_free(&f->next);
    char path[256];
    snprintf(path, sizeof(path), "%s/gaoguan.key", keys);
    unlink(path);
    snprintf(path, sizeof(path), "%s/gaogaun.key", keys);
    unlink(path);
    rmdir(keys);
}

/* Turning CURVE on needs a restart: the reload goes on without it. */
static void test_curve_on_needs_restart(void **state)
{
    fx_t *f = *state;
    char text[2048];
    snprintf(text, sizeof(text),
             "%s[security]\nserver_secret_key = /etc/k\ntownship_keys = /etc/townships\n",
             base_conf);
    write_conf(f, text);
    assert_int_equal(reload_prepare(&f->t, &f->next, &f->next_keys), 0);
    assert_string_equal(f->next.server_secret_key, "");
    assert_true(t_logged(&f->st, "turning CURVE security on needs a restart"));
    keyring_free(&f->next_keys);
    config_free(&f->next);
}

static void test_report_keys(void **state)
{
    fx_t *f = *state;
    f->t.secured = true;
    uint8_t k1[KEYS_KEY_BYTES], k2[KEYS_KEY_BYTES];
    memset(k1, 1, sizeof(k1));
    memset(k2, 2, sizeof(k2));
    assert_int_equal(keyring_add(&f->keys, k1, KEYS_ROLE_SUBSCRIBER, "screen", 6, "s.key"), 0);
    assert_int_equal(keyring_add(&f->keys, k2, KEYS_ROLE_TOWNSHIP, "gaoguan", 7, "g.key"), 0);
    keyring_t next;
    keyring_init(&next);
    assert_int_equal(keyring_add(&next, k2, KEYS_ROLE_TOWNSHIP, "gaoguan", 7, "g.key"), 0);
    assert_int_equal(reload_report_keys(&f->t, &next), 1);
    assert_true(t_logged(&f->st, "1 subscriber key(s) revoked (the first: 'screen' from s.key)"));
    keyring_free(&next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accept_grows_the_catalog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_settings_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_bound_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overrides_applied_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_bad_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_kind_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_ratio_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_of_undeclared_township, setup, teardown),
        cmocka_unit_test_setup_teardown(test_curve_on_needs_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_keys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
