/* Unit tests of tallyd's configuration: defaults, the INI file, every class
 * of error with its position, reload differences. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"

#ifndef TALLY_SOURCE_DIR
#error "TALLY_SOURCE_DIR must name the source tree"
#endif

static char err[2048];

static int parse(const char *text, tallyd_config_t *cfg)
{
    return config_parse_text(text, strlen(text), "t.conf", cfg, err, sizeof(err));
}

/* Parse text, expect it to fail with a message holding want, and check
 * that the failed config is back at the defaults and owns nothing. */
static void expect_error(const char *text, const char *want)
{
    tallyd_config_t cfg;
    int rc = parse(text, &cfg);
    if (rc != TALLY_ECONFIG || strstr(err, want) == NULL)
        fail_msg("for input:\n%s\nwanted TALLY_ECONFIG and a message with\n  %s\ngot %d:\n  %s",
                 text, want, rc, err);
    assert_null(cfg.townships);
    assert_null(cfg.metrics);
    assert_null(cfg.ratios);
    assert_false(cfg.catalog_closed_metrics);
    assert_int_equal(cfg.nwindows, 4);
    config_free(&cfg);
}

/* Parse text and expect success. */
static void expect_ok(const char *text, tallyd_config_t *cfg)
{
    int rc = parse(text, cfg);
    if (rc != 0)
        fail_msg("for input:\n%s\nwanted success, got %d: %s", text, rc, err);
    assert_string_equal(err, "");
}

static void test_defaults(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    unsetenv("STATE_DIRECTORY");
    assert_int_equal(config_defaults(&cfg), 0);
    assert_string_equal(cfg.request, "tcp://127.0.0.1:7411");
    assert_string_equal(cfg.publish, "tcp://127.0.0.1:7412");
    assert_string_equal(cfg.state_dir, "./tallyd-state");
    assert_string_equal(cfg.timezone, "Asia/Shanghai");
    assert_int_equal(cfg.publish_interval_ms, 100);
    assert_int_equal(cfg.heartbeat_ms, 1000);
    assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
    assert_int_equal(cfg.nwindows, 4);
    assert_string_equal(cfg.windows[0].name, "1h");
    assert_int_equal(cfg.windows[0].ms, 3600000);
    assert_string_equal(cfg.windows[3].name, "30d");
    assert_int_equal(cfg.windows[3].ms, 30 * 86400000LL);
    assert_int_equal(cfg.buckets, 60);
    assert_int_equal(cfg.max_samples, 1000);
    assert_int_equal(cfg.max_msg_bytes, 65536);
    assert_int_equal(cfg.max_series, 1000000);
    assert_int_equal(cfg.max_clients, 100000);
    assert_int_equal(cfg.max_townships, 100000);
    assert_int_equal(cfg.max_metrics, 10000);
    assert_int_equal(cfg.skew_ms, 300000);
    assert_int_equal(cfg.max_age_ms, 3660 * 86400000LL);
    assert_int_equal(cfg.rate, 0);
    assert_int_equal(cfg.burst, 10000);
    assert_int_equal(cfg.max_subscriber_queue, 10000);
    assert_int_equal(cfg.sync, CONFIG_SYNC_ALWAYS);
    assert_int_equal(cfg.sync_interval_ms, 200);
    assert_int_equal(cfg.snapshot_interval_ms, 300000);
    assert_int_equal(cfg.snapshot_every_records, 1000000);
    assert_string_equal(cfg.server_secret_key, "");
    assert_int_equal(cfg.ntownships + cfg.nmetrics + cfg.nratios, 0);
    assert_false(cfg.catalog_closed_townships);
    assert_false(cfg.catalog_closed_metrics);
    config_free(&cfg);

    /* No file: the same defaults, open catalogs. */
    assert_int_equal(config_load(NULL, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.nwindows, 4);
    assert_false(cfg.catalog_closed_townships);
    config_free(&cfg);
    config_free(&cfg); /* idempotent */
    config_free(NULL);
}

static void test_state_dir(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(config_default_state_dir(NULL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "./tallyd-state");
    assert_int_equal(config_default_state_dir("", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "./tallyd-state");
    assert_int_equal(config_default_state_dir("/var/lib/tallyd", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/var/lib/tallyd");
    assert_int_equal(config_default_state_dir("/var/lib/a:/var/lib/b", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/var/lib/a");
    assert_int_equal(
        config_default_state_dir("/var/lib/a-very-long-directory-name", buf, sizeof(buf)),
        TALLY_ETOOLONG);
    assert_string_equal(buf, "./tallyd-state");

    tallyd_config_t cfg;
    setenv("STATE_DIRECTORY", "/var/lib/tallyd:/var/lib/tallyd-extra", 1);
    assert_int_equal(config_defaults(&cfg), 0);
    assert_string_equal(cfg.state_dir, "/var/lib/tallyd");
    /* The file wins over the environment. */
    expect_ok("[tallyd]\nstate_dir = /srv/tally\n", &cfg);
    assert_string_equal(cfg.state_dir, "/srv/tally");
    config_free(&cfg);
    unsetenv("STATE_DIRECTORY");
}

static void test_example_file(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    const char *path = TALLY_SOURCE_DIR "/systemd/tallyd.conf.example";
    int rc = config_load(path, &cfg, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s: %s", path, err);
    assert_int_equal(cfg.ntownships, 25);
    assert_int_equal(cfg.nmetrics, 22);
    assert_int_equal(cfg.nratios, 3);
    assert_true(cfg.catalog_closed_townships);
    assert_true(cfg.catalog_closed_metrics);
    assert_string_equal(cfg.state_dir, "/var/lib/tallyd");

    const config_township_t *t = config_find_township(&cfg, "gaoguan", 7);
    assert_non_null(t);
    assert_string_equal(t->name, "高观镇");
    assert_int_equal(t->type, CONFIG_TOWNSHIP_TOWN);
    assert_string_equal(cfg.townships[0].id, "gecheng");
    assert_int_equal(cfg.townships[0].type, CONFIG_TOWNSHIP_SUBDISTRICT);
    assert_string_equal(cfg.townships[24].id, "heyu");
    assert_int_equal(cfg.townships[24].type, CONFIG_TOWNSHIP_TOWNSHIP);
    assert_null(config_find_township(&cfg, "gaoguanx", 8));
    assert_null(config_find_township(&cfg, "gaogua", 6));

    const config_metric_t *m = config_find_metric(&cfg, "grid.zones", strlen("grid.zones"));
    assert_non_null(m);
    assert_int_equal(m->kind, PROTO_KIND_GAUGE);
    assert_string_equal(m->unit, "个");
    assert_string_equal(m->label, "综治网格");
    m = config_find_metric(&cfg, "handbooks.law", strlen("handbooks.law"));
    assert_non_null(m);
    assert_string_equal(m->label, "发放《民法典》《宪法》宣传手册");
    assert_int_equal(m->kind, PROTO_KIND_COUNTER);
    assert_int_equal(m->scale, 0);

    const config_ratio_t *r =
        config_find_ratio(&cfg, "disputes.resolution_rate", strlen("disputes.resolution_rate"));
    assert_non_null(r);
    assert_string_equal(r->label, "矛盾纠纷化解率");
    assert_string_equal(cfg.metrics[r->numerator_metric].id, "disputes.resolved");
    assert_string_equal(cfg.metrics[r->denominator_metric].id, "disputes.screened");
    assert_null(config_find_metric(&cfg, "disputes.resolution_rate", 24));
    assert_null(config_find_ratio(&cfg, "disputes.resolved", 17));

    /* The example spells out the defaults: nothing a restart would need. */
    tallyd_config_t def;
    setenv("STATE_DIRECTORY", "/var/lib/tallyd", 1);
    config_defaults(&def);
    unsetenv("STATE_DIRECTORY");
    assert_int_equal(config_diff_restart(&def, &cfg, err, sizeof(err)), 0);
    assert_int_equal(
        memcmp(&def.max_samples, &cfg.max_samples,
               offsetof(tallyd_config_t, sync) - offsetof(tallyd_config_t, max_samples)),
        0);
    assert_int_equal(cfg.sync_interval_ms, def.sync_interval_ms);
    assert_int_equal(cfg.snapshot_interval_ms, def.snapshot_interval_ms);
    config_free(&cfg);
    config_free(&def);
}

static void test_unreadable_file(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    assert_int_equal(config_load("/nonexistent/tallyd.conf", &cfg, err, sizeof(err)),
                     TALLY_ECONFIG);
    assert_string_equal(err, "cannot open /nonexistent/tallyd.conf: No such file or directory");
    assert_int_equal(config_load("/", &cfg, err, sizeof(err)), TALLY_ECONFIG);
    assert_string_equal(err, "cannot read /: Is a directory");
    config_free(&cfg);
}

static void test_full_settings(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    expect_ok("; comment\n"
              "[tallyd]\n"
              "request = tcp://*:9000 ; inline comment\n"
              "publish: ipc:///run/tallyd/pub\n"
              "publish_interval_ms = 0\n"
              "heartbeat_ms = 60000\n"
              "log_level = debug\n"
              "[limits]\n"
              "max_samples = 4096\n"
              "max_msg_bytes = 16777216\n"
              "skew = 0s\n"
              "max_age = 400d\n"
              "rate = 50\n"
              "burst = 100\n"
              "[journal]\n"
              "sync = interval\n"
              "sync_interval = 50ms\n"
              "snapshot_interval = 1h\n"
              "snapshot_every_records = 5000\n"
              "[security]\n"
              "server_secret_key = /etc/tally/server.key\n"
              "township_keys = /etc/tally/townships\n"
              "subscriber_keys = /etc/tally/subscribers\n"
              "admin_keys = /etc/tally/admins\n",
              &cfg);
    assert_string_equal(cfg.request, "tcp://*:9000");
    assert_string_equal(cfg.publish, "ipc:///run/tallyd/pub");
    assert_int_equal(cfg.publish_interval_ms, 0);
    assert_int_equal(cfg.heartbeat_ms, 60000);
    assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(cfg.max_samples, 4096);
    assert_int_equal(cfg.max_msg_bytes, 16777216);
    assert_int_equal(cfg.skew_ms, 0);
    assert_int_equal(cfg.max_age_ms, 400 * 86400000LL);
    assert_int_equal(cfg.rate, 50);
    assert_int_equal(cfg.burst, 100);
    assert_int_equal(cfg.sync, CONFIG_SYNC_INTERVAL);
    assert_int_equal(cfg.sync_interval_ms, 50);
    assert_int_equal(cfg.snapshot_interval_ms, 3600000);
    assert_int_equal(cfg.snapshot_every_records, 5000);
    assert_string_equal(cfg.server_secret_key, "/etc/tally/server.key");
    assert_string_equal(cfg.township_keys, "/etc/tally/townships");
    assert_string_equal(cfg.subscriber_keys, "/etc/tally/subscribers");
    assert_string_equal(cfg.admin_keys, "/etc/tally/admins");
    assert_false(cfg.catalog_closed_townships);
    config_free(&cfg);
}

static void test_durations(void **state)
{
    (void)state;
    int64_t ms = -1;
    assert_int_equal(config_parse_duration("200ms", &ms), 0);
    assert_int_equal(ms, 200);
    assert_int_equal(config_parse_duration("90s", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(config_parse_duration("90m", &ms), 0);
    assert_int_equal(ms, 5400000);
    assert_int_equal(config_parse_duration("24h", &ms), 0);
    assert_int_equal(ms, 86400000);
    assert_int_equal(config_parse_duration("7d", &ms), 0);
    assert_int_equal(ms, 604800000);
    assert_int_equal(config_parse_duration("0s", &ms), 0);
    assert_int_equal(ms, 0);
    ms = 42;
    const char *bad[] = {"",    "5",    "m",  "-5m",   "+5m",  "5 m",  " 5m", "5m ",
                         "5mm", "5min", "5M", "0x10s", "1.5h", "5ms5", "5md", "s5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_parse_duration(bad[i], &ms) != TALLY_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
    }
    assert_int_equal(ms, 42);
    assert_int_equal(config_parse_duration("9223372036854775807ms", &ms), 0);
    assert_int_equal(ms, INT64_MAX);
    assert_int_equal(config_parse_duration("9223372036854775808ms", &ms), TALLY_ERANGE);
    assert_int_equal(config_parse_duration("106751991167301d", &ms), TALLY_ERANGE);
    assert_int_equal(config_parse_duration("99999999999999999999999s", &ms), TALLY_ERANGE);
    assert_int_equal(config_parse_duration("99999999999999999999999x", &ms), TALLY_EINVAL);

    char buf[32];
    assert_string_equal(config_format_duration(7 * 86400000LL, buf, sizeof(buf)), "7d");
    assert_string_equal(config_format_duration(5400000, buf, sizeof(buf)), "90m");
    assert_string_equal(config_format_duration(1500, buf, sizeof(buf)), "1500ms");
    assert_string_equal(config_format_duration(0, buf, sizeof(buf)), "0ms");

    /* In the file: each error names the key, the value and the range. */
    expect_error("[limits]\nskew = 5\n",
                 "t.conf:2: [limits] skew: '5' is not a duration (expected a whole number and a "
                 "unit, ms, s, m, h or d, between 0ms and 1d)");
    expect_error("[limits]\nskew = 2d\n", "t.conf:2: [limits] skew: 2d is out of range "
                                          "(expected 0ms..1d)");
    expect_error("[journal]\nsync_interval = -5ms\n",
                 "t.conf:2: [journal] sync_interval: '-5ms' is not a duration");
    /* [backup]: the defaults, the values, and each error named. */
    tallyd_config_t cfg;
    expect_ok("", &cfg);
    assert_string_equal(cfg.backup_dir, "");
    assert_int_equal(cfg.backup_keep, 7);
    assert_int_equal(cfg.backup_interval_ms, 0);
    config_free(&cfg);
    expect_ok("[backup]\ndir = /srv/tally-backups\nkeep = 30\ninterval = 1d\n", &cfg);
    assert_string_equal(cfg.backup_dir, "/srv/tally-backups");
    assert_int_equal(cfg.backup_keep, 30);
    assert_int_equal(cfg.backup_interval_ms, 86400000);
    config_free(&cfg);
    expect_error("[backup]\nkeep = 0\n",
                 "t.conf:2: [backup] keep: 0 is out of range (expected 1..10000 backups)");
    expect_error("[backup]\ninterval = 0\n", "t.conf:2: [backup] interval: '0' is not a duration");
    expect_error("[backup]\ninterval = 400d\n", "[backup] interval: 400d is out of range");
    expect_error("[backup]\nwhere = x\n",
                 "t.conf:2: [backup] where: unknown key (keys of [backup]: dir, keep, interval)");
    expect_error("[journal]\nsnapshot_interval = 99999999999999999999d\n",
                 "t.conf:2: [journal] snapshot_interval: 99999999999999999999d is out of range "
                 "(expected 1s..1d)");
}

static void test_integers(void **state)
{
    (void)state;
    expect_error("[limits]\nmax_samples = 5000\n",
                 "t.conf:2: [limits] max_samples: 5000 is out of range (expected 1..4096 samples)");
    expect_error("[limits]\nmax_samples = 0\n", "max_samples: 0 is out of range");
    expect_error("[limits]\nmax_samples = -1\n",
                 "t.conf:2: [limits] max_samples: '-1' is not a whole number (expected 1..4096 "
                 "samples)");
    expect_error("[limits]\nmax_samples = 10x\n", "max_samples: '10x' is not a whole number");
    expect_error("[limits]\nmax_samples = 0x10\n", "max_samples: '0x10' is not a whole number");
    expect_error("[limits]\nmax_samples =\n", "max_samples: '' is not a whole number");
    expect_error("[limits]\nmax_series = 99999999999999999999999\n",
                 "max_series: 99999999999999999999999 is out of range (expected 1..1000000000 "
                 "series)");
    expect_error("[tallyd]\nheartbeat_ms = 99\n",
                 "t.conf:2: [tallyd] heartbeat_ms: 99 is out of range (expected 100..60000 "
                 "milliseconds)");
    expect_error("[tallyd]\npublish_interval_ms = 100ms\n",
                 "publish_interval_ms: '100ms' is not a whole number");
    expect_error("[tallyd]\nheartbeat_ms = 500 # half a second\n",
                 "heartbeat_ms: '500 # half a second' is not a whole number (expected 100..60000 "
                 "milliseconds) (comments after a value start with ';')");
    expect_error("[metric m]\nkind = gauge\nscale = 10\n",
                 "t.conf:3: [metric m] scale: 10 is out of range (expected 0..9 decimal places)");
    expect_error("[windows]\nbuckets = 1\n",
                 "t.conf:2: [windows] buckets: 1 is out of range (expected 2..3600 buckets per "
                 "window)");
}

static void test_choices(void **state)
{
    (void)state;
    expect_error(
        "\n[metric disputes.resolved]\nunit = 件\nkind = countr\n",
        "t.conf:4: [metric disputes.resolved] kind: 'countr' is not one of counter, gauge; "
        "did you mean 'counter'?");
    expect_error("[metric m]\nkind = ratio\n", "kind: 'ratio' is not one of counter, gauge");
    expect_error("[tallyd]\nlog_level = verbose\n",
                 "t.conf:2: [tallyd] log_level: 'verbose' is not one of error, warning, notice, "
                 "info, debug");
    expect_error("[journal]\nsync = sometimes\n",
                 "[journal] sync: 'sometimes' is not one of always, interval, never");
    expect_error("[township x]\ntype = village\n",
                 "[township x] type: 'village' is not one of subdistrict, town, township");
}

static void test_unknown_names(void **state)
{
    (void)state;
    expect_error("[metric m]\nkidn = counter\n",
                 "t.conf:2: [metric m] kidn: unknown key; did you mean 'kind'? (keys of [metric]: "
                 "kind, unit, scale, label, min, max, negative)");
    expect_error("[limits]\nmax_sample = 5\n",
                 "t.conf:2: [limits] max_sample: unknown key; did you mean 'max_samples'?");
    expect_error("[tallyd]\ncolour = blue\n",
                 "t.conf:2: [tallyd] colour: unknown key (keys of [tallyd]: request, publish,");
    expect_error("[metirc m]\nkind = counter\n",
                 "t.conf:1: [metirc m]: unknown section 'metirc'; did you mean 'metric'? "
                 "(expected tallyd, windows");
    expect_error("[server]\n", "t.conf:1: [server]: unknown section 'server' (expected");
    expect_error("kind = counter\n", "t.conf:1: kind: key outside of any section");
    expect_error("[tallyd extra]\n", "t.conf:1: [tallyd extra]: section [tallyd] takes no id");
    expect_error("[metric]\n", "t.conf:1: [metric]: a metric section needs an id: [metric ID]");
}

static void test_duplicates(void **state)
{
    (void)state;
    expect_error("[township gaoguan]\nname = 高观镇\n\n[township gaoguan]\n",
                 "t.conf:4: [township gaoguan]: duplicate section; first declared on line 1");
    expect_error("[metric m]\nkind = counter\n[metric n]\nkind = gauge\n[metric m]\n",
                 "t.conf:5: [metric m]: duplicate section; first declared on line 1");
    expect_error("[metric m]\nkind = counter\n[ratio m]\n",
                 "t.conf:3: [ratio m]: id 'm' is already declared by [metric m] on line 1");
    expect_error("[ratio m]\nnumerator = a\ndenominator = b\n[metric m]\n",
                 "t.conf:4: [metric m]: id 'm' is already declared by [ratio m] on line 1");
    expect_error("[tallyd]\n[limits]\n[tallyd]\n",
                 "t.conf:3: [tallyd]: section repeated; first declared on line 1");
    /* Names and labels people read and type: one of each per catalog. */
    expect_error("[township gaoguan]\nname = 高观镇\n[township bashan]\nname = 巴山镇\n"
                 "[township gaoguan2]\nname = 高观镇\n",
                 "t.conf:5: [township gaoguan2] name: '高观镇' is also the name of [township "
                 "gaoguan] on line 1 (expected one of its own");
    expect_error("[metric a]\nkind = counter\nlabel = 排查矛盾纠纷\n[metric b]\nkind = counter\n"
                 "[ratio r]\nnumerator = a\ndenominator = b\nlabel = 排查矛盾纠纷\n",
                 "t.conf:6: [ratio r] label: '排查矛盾纠纷' is also the label of [metric a] on "
                 "line 1");
    expect_error("[metric m]\nkind = counter\nkind = gauge\n",
                 "t.conf:3: [metric m] kind: set twice; first set on line 2");
    /* A township and a metric may share an id: different name spaces. */
    tallyd_config_t cfg;
    expect_ok("[township x]\n[metric x]\nkind = counter\n", &cfg);
    config_free(&cfg);
}

static void test_required_keys(void **state)
{
    (void)state;
    expect_error("[metric a]\nkind = counter\n\n[metric m]\nunit = 人\n[metric n]\nkind = gauge\n",
                 "t.conf:4: [metric m] kind: required key is missing (expected counter, gauge)");
    expect_error("[metric m]\n", "t.conf:1: [metric m] kind: required key is missing");
    expect_error("[ratio r]\nnumerator = a\n",
                 "t.conf:1: [ratio r] denominator: required key is missing (expected a metric "
                 "name)");
}

static void test_syntax(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    expect_error("[tallyd]\nlog_level info\n",
                 "t.conf:2: 'log_level info' is neither '[section]' nor 'key = value'");
    /* ':' separates like '=', as in inih. */
    expect_error("[tallyd]\nrequest tcp://x:1\n", "t.conf:2: [tallyd] request tcp: unknown key");
    expect_error("[tallyd\n", "t.conf:1: section header '[tallyd' has no closing ']'");
    expect_error("[tallyd ;]\n", "t.conf:1: section header '[tallyd ;]' has no closing ']'");
    expect_error("[tallyd] x\n", "t.conf:1: text after the section header: 'x'");
    expect_error("[tallyd]\n= 5\n", "t.conf:2: key name missing before '='");
    expect_error("[metric m]\nkind = counter\n  unit = 人\n",
                 "t.conf:3: line starts with whitespace; section and key lines must not be "
                 "indented");
    expect_error("[tallyd]\n\tlog_level = info\n", "t.conf:2: line starts with whitespace");
    char nul[] = "[tallyd]\nlog_level = info\0x\n";
    assert_int_equal(config_parse_text(nul, sizeof(nul) - 1, "t.conf", &cfg, err, sizeof(err)),
                     TALLY_ECONFIG);
    assert_string_equal(err, "t.conf:2: line holds a NUL byte (is this a text file?)");

    char longline[400];
    snprintf(longline, sizeof(longline), "[metric m]\nkind = counter\nlabel = %0250d\n", 7);
    expect_error(longline, "t.conf:3: line is 258 bytes long (expected at most 198)");
    /* Long comments are fine, and so are CRLF endings, a BOM and a last line
     * without a newline. */
    char text[600];
    snprintf(text, sizeof(text),
             "\xEF\xBB\xBF# %0300d\r\n[tallyd]\r\n\r\n; x\r\nlog_level = error\r\n"
             "[limits]\r\nrate = 7",
             1);
    expect_ok(text, &cfg);
    assert_int_equal(cfg.log_level, LOG_LEVEL_ERROR);
    assert_int_equal(cfg.rate, 7);
    config_free(&cfg);
    expect_ok("", &cfg);
    config_free(&cfg);
    /* Inline comments need the space, as in inih. */
    expect_ok("[metric m]\nkind = counter ; a counter\nunit = a;b\n", &cfg);
    assert_string_equal(cfg.metrics[0].unit, "a;b");
    config_free(&cfg);
}

static void test_ids(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    /* A 64-byte id: longer than inih's section buffer, kept whole. */
    char id[65], text[256];
    memset(id, 'a', 64);
    id[63] = 'z';
    id[64] = '\0';
    snprintf(text, sizeof(text), "[metric %s]\nkind = gauge\n[metric %.60s]\nkind = gauge\n", id,
             id);
    expect_ok(text, &cfg);
    assert_int_equal(cfg.nmetrics, 2);
    assert_string_equal(cfg.metrics[0].id, id);
    assert_non_null(config_find_metric(&cfg, id, 64));
    assert_null(config_find_metric(&cfg, id, 63));
    config_free(&cfg);

    snprintf(text, sizeof(text), "[township %sx]\n", id);
    expect_error(text, "t.conf:1: [township aaaa");
    expect_error(text, "is not a valid id (too long; expected 1..64 bytes");
    expect_error("[township county]\n", "t.conf:1: [township county]: 'county' is reserved: tally "
                                        "shows the county-wide tallies under it");
    expect_ok("[metric county]\nkind = counter\n", &cfg); /* only the township id is reserved */
    config_free(&cfg);
    expect_error("[township a/b]\n", "t.conf:1: [township a/b]: 'a/b' is not a valid id "
                                     "(forbidden character;");
    expect_error("[township a\xff]\n",
                 "t.conf:1: [township a\\xFF]: 'a\\xFF' is not a valid id (not valid UTF-8;");
    expect_error("[township  高观  ]\n[township 高观]\n",
                 "t.conf:2: [township 高观]: duplicate section; first declared on line 1");
}

/* inih reads every line and judges its syntax; what it refuses is reported
 * at its line even when a later line (or the end of the file) shows another
 * mistake first. */
static void test_syntax_order(void **state)
{
    (void)state;
    expect_error("[tallyd]\nlog_level info\nlog_level = verbose\n",
                 "t.conf:2: 'log_level info' is neither '[section]' nor 'key = value'");
    /* The section [metric m] lacks its kind, seen only at [tallyd]. */
    expect_error("[metric m]\n[x\n[tallyd]\n", "t.conf:2: section header '[x' has no closing ']'");
    expect_error("[metric m]\n[x\n", "t.conf:2: section header '[x' has no closing ']'");
    /* Up to the first ']' this would be a township ';', twice. */
    expect_error("[township ;]\n[township ;]\n",
                 "t.conf:1: section header '[township ;]' has no closing ']'");
    expect_error("[tallyd]\nlog_level = info\n[limits ;] x\n",
                 "t.conf:3: section header '[limits ;] x' has no closing ']'");
    /* inih would take an indented header after a header as a header. */
    expect_error("[tallyd]\n  [limits]\n", "t.conf:2: line starts with whitespace");
    expect_error("[tallyd]\n:x\n", "t.conf:2: key name missing before ':'");
    /* The whole header, past the 49 bytes inih keeps, after a long comment. */
    char text[600], want[300];
    snprintf(text, sizeof(text), "; %0300d\n[township %0*d]\nname = x\n[township %0*d]\n", 1, 60, 1,
             60, 1);
    snprintf(want, sizeof(want),
             "t.conf:4: [township %0*d]: duplicate section; first declared "
             "on line 2",
             60, 1);
    expect_error(text, want);
}

static void test_text_values(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    expect_ok("[township gaoguan]\nname = 高观镇\n[metric m]\nkind = counter\nunit = 人次\n"
              "label = 群众说事接访群众\n",
              &cfg);
    assert_string_equal(cfg.townships[0].name, "高观镇");
    assert_int_equal(cfg.townships[0].type, CONFIG_TOWNSHIP_UNSPECIFIED);
    assert_string_equal(cfg.metrics[0].unit, "人次");
    config_free(&cfg);

    expect_error("[metric m]\nkind = counter\nlabel = caf\xc3\n",
                 "t.conf:3: [metric m] label: 'caf\\xC3' is not valid UTF-8");
    expect_error("[metric m]\nkind = counter\nlabel = \xed\xa0\x80\n",
                 "label: '\\xED\\xA0\\x80' is not valid UTF-8");
    expect_error("[metric m]\nkind = counter\nlabel = \xc0\xaf\n", "is not valid UTF-8");
    expect_error("[township x]\nname = a\x1b[31mb\n",
                 "t.conf:2: [township x] name: 'a\\x1B[31mb' holds a control character");
    expect_error("[township x]\nname = a\xc2\x85z\n", "holds a control character");
    expect_error("[metric m]\nkind = counter\nunit = 人人人人人人\n",
                 "t.conf:3: [metric m] unit: '人人人人人人' is 18 bytes long (expected at most 16 "
                 "bytes of UTF-8)");
    char text[512];
    snprintf(text, sizeof(text), "[township x]\nname = %s\n",
             "高观镇高观镇高观镇高观镇高观镇高观镇高观镇高");
    expect_error(text, "name: '高观镇高观镇高观镇高观镇高观镇高观镇高观镇高' is 66 bytes long "
                       "(expected at most 64 bytes");
}

static void test_ratios(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    expect_error("[metric law_exam.passed]\nkind = counter\n[metric law_exam.takers]\n"
                 "kind = counter\n[ratio law_exam.pass_rate]\nnumerator = law_exam.passd\n"
                 "denominator = law_exam.takers\n",
                 "t.conf:6: [ratio law_exam.pass_rate] numerator: metric 'law_exam.passd' is not "
                 "declared (no [metric law_exam.passd]); did you mean 'law_exam.passed'?");
    expect_error("[metric a]\nkind = counter\n[ratio r]\nnumerator = a\ndenominator = zzz\n",
                 "t.conf:5: [ratio r] denominator: metric 'zzz' is not declared (no [metric "
                 "zzz])");
    /* No hint when the only close id is as short as the distance. */
    assert_int_equal(parse("[metric a]\nkind = counter\n[ratio r]\nnumerator = a\n"
                           "denominator = b\n",
                           &cfg),
                     TALLY_ECONFIG);
    assert_string_equal(err, "t.conf:5: [ratio r] denominator: metric 'b' is not declared (no "
                             "[metric b])");
    config_free(&cfg);
    expect_error("[ratio r]\nnumerator = a\ndenominator = a\n",
                 "t.conf:3: [ratio r] denominator: 'a' is also the numerator");
    expect_error("[ratio r]\nnumerator = a\ndenominator = b\n[ratio s]\nnumerator = r\n"
                 "denominator = b\n",
                 "t.conf:5: [ratio s] numerator: 'r' is a ratio (expected a counter or gauge "
                 "metric)");
    expect_error("[ratio r]\nnumerator = a b\ndenominator = b\n",
                 "t.conf:2: [ratio r] numerator: 'a b' is not a valid name (forbidden character;");

    /* Ratios may come before their metrics; with an open catalog any names
     * are allowed. */
    expect_ok("[ratio r]\nnumerator = b\ndenominator = a\nlabel = 比率\n[metric a]\n"
              "kind = gauge\n[metric b]\nkind = counter\n",
              &cfg);
    assert_int_equal(cfg.ratios[0].numerator_metric, 1);
    assert_int_equal(cfg.ratios[0].denominator_metric, 0);
    assert_int_equal(cfg.ratios[0].line, 1);
    assert_int_equal(cfg.ratios[0].numerator_line, 2);
    config_free(&cfg);
    expect_ok("[ratio r]\nnumerator = b\ndenominator = a\n", &cfg);
    assert_false(cfg.catalog_closed_metrics);
    assert_int_equal(cfg.ratios[0].numerator_metric, -1);
    config_free(&cfg);
}

static void test_windows(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    expect_ok("[windows]\nbuckets = 120\n", &cfg);
    assert_int_equal(cfg.nwindows, 4); /* no window listed: defaults stay */
    assert_int_equal(cfg.buckets, 120);
    config_free(&cfg);

    expect_ok("[windows]\n15m = 15m\nbuckets = 30\nday = 24h\nyear-ish = 366d\n", &cfg);
    assert_int_equal(cfg.nwindows, 3);
    assert_string_equal(cfg.windows[0].name, "15m");
    assert_int_equal(cfg.windows[0].ms, 900000);
    assert_string_equal(cfg.windows[1].name, "day");
    assert_string_equal(cfg.windows[2].name, "year-ish");
    assert_int_equal(cfg.windows[2].ms, 366 * 86400000LL);
    assert_int_equal(cfg.buckets, 30);
    config_free(&cfg);

    expect_error(
        "[windows]\na = 1h\nb = 367d\n",
        "t.conf:3: [windows] b: '367d' is not a window length (expected a whole number and a "
        "unit, such as 90m, 24h or 7d, between 1s and 366d)");
    expect_error("[windows]\na = 500ms\n", "[windows] a: '500ms' is not a window length");
    expect_error("[windows]\na = 1h\n\na = 2h\n",
                 "t.conf:4: [windows] a: window defined twice; first defined on line 2");
    expect_error("[windows]\ntotal = 1h\n",
                 "t.conf:2: [windows] total: 'total' is the name of a calendar column");
    expect_error("[windows]\nseventeen_chars_x = 1h\n",
                 "t.conf:2: [windows] seventeen_chars_x: not a window name (expected 1..16");
    expect_error("[windows]\nw/1 = 1h\n", "[windows] w/1: not a window name");
    expect_error("[windows]\na=1h\nb=2h\nc=3h\nd=4h\ne=5h\nf=6h\ng=7h\nh=8h\ni=9h\nj=10h\nk=11h\n"
                 "l=12h\n",
                 "t.conf:13: [windows] l: more than 11 windows");
    expect_error("[windows]\nbuckets = 7\n",
                 "t.conf:2: [windows] buckets: window '1h' (1h) does not split into 7 buckets");
    expect_error("[windows]\nbuckets = 60\nodd = 61s\n",
                 "t.conf:3: [windows] odd: window 'odd' (61s) does not split into 60 buckets of "
                 "whole milliseconds");
}

static void test_endpoints(void **state)
{
    (void)state;
    expect_error("[tallyd]\nrequest = http://x:1\n",
                 "t.conf:2: [tallyd] request: 'http://x:1' names a transport ZeroMQ cannot bind");
    expect_error("[tallyd]\nrequest = 127.0.0.1:7411\n",
                 "request: '127.0.0.1:7411' is not TRANSPORT://ADDRESS");
    expect_error("[tallyd]\npublish = tcp://\n", "publish: 'tcp://' is not TRANSPORT://ADDRESS");
    expect_error("[tallyd]\nrequest = tcp://127.0.0.1:notaport\n",
                 "request: 'tcp://127.0.0.1:notaport' has a port that is not a number from 0 to "
                 "65535 (or *)");
    expect_error("[tallyd]\nrequest = tcp://127.0.0.1\n",
                 "request: 'tcp://127.0.0.1' has no port (HOST:PORT, or HOST:* for any free port)");
    expect_error("[tallyd]\nrequest = tcp://[::1]\n", "has no port");
    expect_error("[tallyd]\nrequest = ws://127.0.0.1:65536/tally\n",
                 "has a port that is not a number");
    tallyd_config_t cfg;
    static const char *const good[] = {"tcp://[::1]:7411", "tcp://eth0:*", "tcp://*:0",
                                       "ws://127.0.0.1:8080/tally", "ipc:///run/tallyd/r"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[tallyd]\nrequest = %s\n", good[i]);
        expect_ok(text, &cfg);
        config_free(&cfg);
    }
    expect_error("[tallyd]\nrequest = tcp://127.0.0.1:7412\n",
                 "t.conf:2: [tallyd] request: 'tcp://127.0.0.1:7412' is also the request "
                 "endpoint");
    expect_error("[tallyd]\npublish = tcp://127.0.0.1:7411\nlog_level = info\n",
                 "t.conf:2: [tallyd] publish: 'tcp://127.0.0.1:7411' is also the request");
    expect_error("[security]\ntownship_keys =\n",
                 "t.conf:2: [security] township_keys: '' is not a usable path");
}

/* A zoneinfo tree of our own, to check $TZDIR and the TZif test. */
static void make_tzdir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/tally-test-tz-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof(path), "%s/Asia", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/Asia/Shanghai", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("TZif2 and more", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/Fake", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a zone", f);
    fclose(f);
}

static void remove_tzdir(const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/Asia/Shanghai", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/Asia", dir);
    rmdir(path);
    snprintf(path, sizeof(path), "%s/Fake", dir);
    unlink(path);
    rmdir(dir);
}

static void test_timezone(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    unsetenv("TZDIR");
    expect_ok("[tallyd]\ntimezone = Asia/Shanghai\n", &cfg);
    assert_string_equal(cfg.timezone, "Asia/Shanghai");
    config_free(&cfg);
    expect_ok("[tallyd]\ntimezone = UTC\n", &cfg);
    assert_string_equal(cfg.timezone, "UTC");
    config_free(&cfg);
    expect_error("[tallyd]\ntimezone = Asia/Shanghia\n",
                 "t.conf:2: [tallyd] timezone: 'Asia/Shanghia' is not installed: cannot open "
                 "/usr/share/zoneinfo/Asia/Shanghia: No such file or directory (expected a name "
                 "such as Asia/Shanghai");
    expect_error("[tallyd]\ntimezone = ../../etc/passwd\n",
                 "timezone: '../../etc/passwd' must be a name under the zoneinfo directory, "
                 "without a leading '/' or '..'");
    expect_error("[tallyd]\ntimezone = /etc/localtime\n",
                 "timezone: '/etc/localtime' must be a name under the zoneinfo directory");
    expect_error("[tallyd]\ntimezone = Asia\n", "timezone: 'Asia' is not a time zone: "
                                                "/usr/share/zoneinfo/Asia is not a regular file");
    expect_error("[tallyd]\ntimezone = Asia Shanghai\n",
                 "timezone: 'Asia Shanghai' holds a character no time zone name has");

    char dir[64], want[256];
    make_tzdir(dir, sizeof(dir));
    setenv("TZDIR", dir, 1);
    expect_ok("", &cfg);
    config_free(&cfg);
    snprintf(want, sizeof(want),
             "t.conf:2: [tallyd] timezone: 'Fake' is not a time zone: %s/Fake "
             "is not a TZif file",
             dir);
    expect_error("[tallyd]\ntimezone = Fake\n", want);
    expect_error("[tallyd]\ntimezone = UTC\n", "timezone: 'UTC' is not installed");
    /* The default is checked too, and the message says it was the default. */
    char asia[600];
    snprintf(asia, sizeof(asia), "%s/Asia/Shanghai", dir);
    unlink(asia);
    expect_error("", "t.conf: [tallyd] timezone: the default 'Asia/Shanghai' is not installed");
    remove_tzdir(dir);
    unsetenv("TZDIR");
}

static void test_catalog_limits(void **state)
{
    (void)state;
    expect_error("[limits]\nmax_townships = 2\n[township a]\n[township b]\n[township c]\n"
                 "[township d]\n",
                 "t.conf:5: [township c]: one township more than [limits] max_townships = 2");
    expect_error("[metric a]\nkind = gauge\n[limits]\nmax_metrics = 1\n[metric b]\nkind = gauge\n",
                 "t.conf:5: [metric b]: one metric more than [limits] max_metrics = 1");
}

/* Many sections: the duplicate index grows and still finds the first. */
static void test_many_sections(void **state)
{
    (void)state;
    size_t n = 5000, cap = n * 64 + 64, o = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(text + o, cap - o, "[township t%zu]\n[metric m%zu]\nkind=gauge\n", i,
                              i);
    tallyd_config_t cfg;
    assert_int_equal(config_parse_text(text, o, "big.conf", &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.ntownships, n);
    assert_int_equal(cfg.nmetrics, n);
    assert_string_equal(config_find_township(&cfg, "t4999", 5)->id, "t4999");
    config_free(&cfg);
    o += (size_t)snprintf(text + o, cap - o, "[township t1234]\n");
    assert_int_equal(config_parse_text(text, o, "big.conf", &cfg, err, sizeof(err)), TALLY_ECONFIG);
    assert_string_equal(err, "big.conf:15001: [township t1234]: duplicate section; first "
                             "declared on line 3703");
    free(text);
}

static void test_diff_restart(void **state)
{
    (void)state;
    tallyd_config_t a, b;
    char buf[512];
    config_defaults(&a);
    config_defaults(&b);
    assert_int_equal(config_diff_restart(&a, &b, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");

    /* Reloadable settings do not count. */
    expect_ok("[tallyd]\nlog_level = debug\n[limits]\nrate = 5\n[metric m]\nkind = gauge\n", &b);
    assert_int_equal(config_diff_restart(&a, &b, buf, sizeof(buf)), 0);
    config_free(&b);

    expect_ok("[tallyd]\nrequest = tcp://*:1\nstate_dir = /srv/t\ntimezone = UTC\n"
              "[windows]\n1h = 1h\n2h = 2h\nbuckets = 10\n",
              &b);
    assert_int_equal(config_diff_restart(&a, &b, buf, sizeof(buf)), 5);
    assert_non_null(strstr(buf, "request: 'tcp://127.0.0.1:7411' -> 'tcp://*:1'"));
    assert_non_null(strstr(buf, "state_dir: './tallyd-state' -> '/srv/t'"));
    assert_non_null(strstr(buf, "timezone: 'Asia/Shanghai' -> 'UTC'"));
    assert_non_null(strstr(buf, "windows: '1h=1h,24h=1d,7d=7d,30d=30d' -> '1h=1h,2h=2h'"));
    assert_non_null(strstr(buf, "buckets: '60' -> '10'"));
    assert_null(strstr(buf, "publish"));
    /* Truncation keeps the count and a terminated buffer. */
    assert_int_equal(config_diff_restart(&a, &b, buf, 10), 5);
    assert_int_equal(strlen(buf), 9);
    assert_int_equal(config_diff_restart(&a, &b, NULL, 0), 5);
    config_free(&b);

    /* Same windows in another order need a restart too. */
    expect_ok("[windows]\n24h = 24h\n1h = 1h\n7d = 7d\n30d = 30d\n", &b);
    assert_int_equal(config_diff_restart(&a, &b, buf, sizeof(buf)), 1);
    config_free(&b);
    config_free(&a);
}

/* A failed parse releases what it had built and leaves the defaults. */
static void test_failure_resets(void **state)
{
    (void)state;
    tallyd_config_t cfg;
    int rc = parse("[tallyd]\nlog_level = debug\n[township a]\n[metric m]\nkind = gauge\n"
                   "[metric x]\nkind = nope\n",
                   &cfg);
    assert_int_equal(rc, TALLY_ECONFIG);
    assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
    assert_int_equal(cfg.ntownships, 0);
    assert_false(cfg.catalog_closed_townships);
    config_free(&cfg);
    /* err may be NULL, and a tiny buffer is still terminated. */
    assert_int_equal(config_parse_text("[x]", 3, "t.conf", &cfg, NULL, 0), TALLY_ECONFIG);
    char tiny[8];
    assert_int_equal(config_parse_text("[x]", 3, "t.conf", &cfg, tiny, sizeof(tiny)),
                     TALLY_ECONFIG);
    assert_string_equal(tiny, "t.conf:");
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_state_dir),
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_full_settings),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_choices),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_required_keys),
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_syntax_order),
        cmocka_unit_test(test_text_values),
        cmocka_unit_test(test_ratios),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_timezone),
        cmocka_unit_test(test_catalog_limits),
        cmocka_unit_test(test_many_sections),
        cmocka_unit_test(test_diff_restart),
        cmocka_unit_test(test_failure_resets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
