/* SIGHUP reloads tallyd's configuration: a valid change takes effect and
 * keeps the tallies; an invalid one is refused and the old one stays. */
#include <glob.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include <msgpack.h>

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
    return harness_county_total(c, metric, &f->t);
}

/* Rewrite the config, send SIGHUP and wait for the log line that ends the
 * reload (n-th occurrence of needle). */
static void reload(fx_t *f, const char *text, const char *needle)
{
    assert_int_equal(harness_write_file(&f->h, "tallyd.conf", text, NULL, 0), 0);
    assert_int_equal(kill(f->h.pid, SIGHUP), 0);
    assert_int_equal(harness_wait_log(&f->h, needle, 5000), 0);
}

/* Under a descriptor limit that does not fit max_connections: the start
 * warns once (of the default too: the shipped unit's LimitNOFILE= fits
 * it, so a cut means a lower limit was set somewhere), a reload that
 * changes the number warns of the new one, and a reload that does not
 * change it says nothing (each reload warned again before). */
static void test_fd_limit_said_once(void **state)
{
    fx_t *f = *state;
    struct rlimit was, low = {1024, 1024};
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    if (was.rlim_max < low.rlim_max)
        low = was;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0); /* the daemon inherits it */
    int rc = harness_start(&f->h, base_conf, NULL);
    char conf[1024];
    snprintf(conf, sizeof(conf), "%s[limits]\nmax_connections = 5000\n", base_conf);
    if (rc == 0) {
        reload(f, base_conf, "reloaded");
        reload(f, conf, "reload: [limits] max_connections = 5000 does not fit");
        assert_int_equal(kill(f->h.pid, SIGHUP), 0); /* the same file again */
        for (int i = 0; i < 100 && harness_count_in(harness_log(&f->h), "reloaded") < 3; i++)
            usleep(50000);
    }
    setrlimit(RLIMIT_NOFILE, &was); /* root may raise it back; others keep the lower */
    assert_int_equal(rc, 0);
    const char *log = harness_log(&f->h);
    assert_int_equal(harness_count_in(log, "reloaded"), 3);
    assert_int_equal(
        harness_count_in(log, "warning: [limits] max_connections = 10000 does not fit"), 1);
    assert_int_equal(harness_count_in(log, "does not fit"), 2);
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

/* Send SIGHUP and wait until needle occurs once more in the log than
 * before (reload() waits for its first occurrence only). */
static void reload_again(fx_t *f, const char *text, const char *needle)
{
    size_t before = harness_count_in(harness_log(&f->h), needle);
    assert_int_equal(harness_write_file(&f->h, "tallyd.conf", text, NULL, 0), 0);
    assert_int_equal(kill(f->h.pid, SIGHUP), 0);
    for (int i = 0; i < 500; i++) {
        if (harness_count_in(harness_log(&f->h), needle) > before)
            return;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    fail_msg("no further '%s' in the log:\n%s", needle, harness_log(&f->h));
}

/* The townships of the daemon's catalog, read with CATALOG_REQ as a
 * client reads them (every page), as "id=name" lines. */
static void catalog_townships(harness_client_t *c, char *out, size_t cap)
{
    uint32_t from = 0, total = 1;
    size_t used = 0;
    out[0] = '\0';
    while (from < total) {
        proto_msg_t q = {.type = PROTO_CATALOG_REQ};
        q.u.catalog_req.req_id = 77;
        q.u.catalog_req.townships_from = from;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        assert_int_equal(proto_encode(&sb, &q), 0);
        assert_int_equal(harness_send_raw(c, sb.data, sb.size), 0);
        msgpack_sbuffer_destroy(&sb);
        static uint8_t buf[PROTO_CATALOG_BYTES + 1024];
        long n = harness_recv_raw(c, buf, sizeof buf, HARNESS_REPLY_TIMEOUT_MS);
        assert_true(n > 0 && (size_t)n <= sizeof buf);
        proto_msg_t m;
        assert_int_equal(proto_decode(buf, (size_t)n, &m, NULL, 0, NULL), 0);
        assert_int_equal(m.type, PROTO_CATALOG);
        total = m.u.catalog.townships_total;
        proto_catalog_iter_t it;
        proto_township_t t;
        proto_catalog_iter(&it, &m);
        uint32_t got = 0;
        while (proto_catalog_next_township(&it, &t)) {
            int w = snprintf(out + used, cap - used, "%.*s=%.*s\n", (int)t.id.len, t.id.ptr,
                             (int)t.name.len, t.name.ptr);
            assert_true(w > 0 && (size_t)w < cap - used);
            used += (size_t)w;
            got++;
        }
        if (got == 0)
            break;
        from += got;
    }
}

/* The total of (metric, scope) in a snapshot ("" scope: the county); -1
 * when there is no such series. */
static int64_t total_of(fx_t *f, harness_client_t *c, const char *metric, const char *scope)
{
    harness_value_t v;
    assert_int_equal(harness_snapshot(c, "", &f->t), 0);
    if (!harness_table_get(&f->t, metric, scope, "total", &v) || !v.present)
        return -1;
    return v.num;
}

static void expect_refused(harness_client_t *c, uint64_t seq, const char *town, const char *metric,
                           int code, const char *field, const char *text)
{
    harness_ack_t a = submit(c, seq, town, metric, 1);
    char desc[1024];
    if (a.status != PROTO_ACK_REJECTED || a.code != -code || strcmp(a.field, field) != 0 ||
        strstr(a.message, text) == NULL)
        fail_msg("%s/%s: %s", town, metric, harness_ack_str(&a, desc, sizeof desc));
}

static const char m2_conf[] = "[township t1]\nname = 甲镇\n[township t2]\nname = 乙镇\n"
                              "[metric patrols]\nkind = counter\n"
                              "[metric slogans]\nkind = counter\n";
static const char m2_removed_conf[] = "[township t1]\nname = 甲镇\n"
                                      "[metric patrols]\nkind = counter\n";

/* After the figures the daemon accepted are in the state again, the
 * township and the metric the file no longer declares are refused for new
 * submissions, as unknown ones; their tallies stay, are read by id, and
 * the catalog still lists the township (marked), so that its rows add up
 * to the county's. */
static void expect_removed(fx_t *f, uint64_t seq, int64_t patrols)
{
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    expect_refused(&c, seq, "t2", "patrols", TALLY_EUNKTOWN, "township",
                   "township 't2' is not in the catalog");
    expect_refused(&c, seq + 1, "t1", "slogans", TALLY_EUNKMETRIC, "samples[0].metric",
                   "metric 'slogans' is not in the catalog");
    assert_int_equal(total_of(f, &c, "patrols", ""), patrols);
    assert_int_equal(total_of(f, &c, "patrols", "t2"), 5);
    assert_int_equal(total_of(f, &c, "slogans", ""), 2);
    assert_int_equal(total_of(f, &c, "slogans", "t1"), 2);
    char towns[1024];
    catalog_townships(&c, towns, sizeof towns);
    assert_string_equal(towns, "t1=甲镇\nt2=t2 (no longer declared)\n");
    harness_client_close(&c);
}

/* 1. A township and a metric removed from a closed catalog, then a start:
 * the figures accepted before are counted (from the journal after a
 * crash, from the checkpoint after a clean stop), new ones are refused. */
static void test_removed_names_after_restart(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, m2_conf, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(submit(&c, 1, "t2", "patrols", 5).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(submit(&c, 2, "t1", "patrols", 1).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(submit(&c, 3, "t1", "slogans", 2).status, PROTO_ACK_ACCEPTED);
    harness_client_close(&c);
    /* A crash: the figures are in the journal only, replayed at the start
     * whatever the catalog says now. */
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    assert_int_equal(harness_start(&f->h, m2_removed_conf, NULL), 0);
    expect_removed(f, 1, 6);
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(submit(&c, 1, "t1", "patrols", 1).status, PROTO_ACK_ACCEPTED);
    harness_client_close(&c);
    /* A clean stop: the checkpoint holds them. */
    int st = -1;
    assert_int_equal(harness_restart(&f->h, &st), 0);
    assert_int_equal(st, 0);
    expect_removed(f, 3, 7);
    /* Declared again: accepted again, with its name. */
    reload(f, m2_conf, "reloaded");
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(submit(&c, 1, "t2", "patrols", 1).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(submit(&c, 2, "t1", "slogans", 1).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(total_of(f, &c, "patrols", ""), 8);
    char towns[1024];
    catalog_townships(&c, towns, sizeof towns);
    assert_string_equal(towns, "t1=甲镇\nt2=乙镇\n");
    harness_client_close(&c);
}

/* 2. The same removal at a reload: refused from then on, tallies kept. */
static void test_removed_names_at_reload(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, m2_conf, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(submit(&c, 1, "t2", "patrols", 5).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(submit(&c, 2, "t1", "patrols", 1).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(submit(&c, 3, "t1", "slogans", 2).status, PROTO_ACK_ACCEPTED);
    harness_client_close(&c);
    reload(f, m2_removed_conf, "reloaded");
    expect_removed(f, 1, 6);
}

/* 3. max_series lowered below the series held, at a reload and at a
 * start: samples of the series held are accepted, a new series is
 * refused, and a start (after a clean stop, or replaying a journal that
 * started series) goes ahead with a warning. */
static void test_max_series_lowered(void **state)
{
    fx_t *f = *state;
    static const char high[] = "[limits]\nmax_series = 100\n";
    static const char low[] = "[limits]\nmax_series = 3\n";
    static const char warning[] = "more than [limits] max_series (3)";
    assert_int_equal(harness_start(&f->h, high, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    uint64_t seq = 1;
    assert_int_equal(submit(&c, seq++, "a", "disputes.screened", 1).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(submit(&c, seq++, "a", "disputes.resolved", 1).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(submit(&c, seq++, "b", "disputes.screened", 1).status, PROTO_ACK_ACCEPTED);
    /* 5 series: a's and b's 3 and the county's 2. */
    reload(f, low, "reloaded");
    assert_non_null(strstr(harness_log(&f->h), "the state holds 5 series, more than [limits] "
                                               "max_series (3)"));
    harness_ack_t a = submit(&c, seq++, "a", "disputes.screened", 1);
    char desc[1024];
    if (a.status != PROTO_ACK_ACCEPTED)
        fail_msg("a sample of a series held: %s", harness_ack_str(&a, desc, sizeof desc));
    expect_refused(&c, seq++, "c", "disputes.screened", TALLY_ESERIESLIMIT, "samples[0].metric",
                   "limit of 3 series");
    harness_client_close(&c);

    int st = -1;
    assert_int_equal(harness_restart(&f->h, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(harness_count_in(harness_log(&f->h), warning), 2);
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(submit(&c, seq++, "b", "disputes.screened", 1).status, PROTO_ACK_ACCEPTED);
    expect_refused(&c, seq++, "a", "law_exam.takers", TALLY_ESERIESLIMIT, "samples[0].metric",
                   "limit of 3 series");
    assert_int_equal(total_of(f, &c, "disputes.screened", ""), 4);

    /* Raised: new series again; then a crash, and a start with the limit
     * lowered replays the journal's new series all the same. */
    reload_again(f, high, "reloaded");
    assert_int_equal(submit(&c, seq++, "c", "disputes.screened", 1).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(submit(&c, seq++, "c", "disputes.resolved", 1).status, PROTO_ACK_ACCEPTED);
    harness_client_close(&c);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    assert_int_equal(harness_start(&f->h, low, NULL), 0);
    assert_non_null(strstr(harness_log(&f->h), "the state holds 7 series, more than [limits] "
                                               "max_series (3)"));
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(total_of(f, &c, "disputes.screened", ""), 5);
    assert_int_equal(total_of(f, &c, "disputes.resolved", "c"), 1);
    assert_int_equal(submit(&c, seq++, "c", "disputes.resolved", 1).status, PROTO_ACK_ACCEPTED);
    harness_client_close(&c);
}

/* Settings that need a restart are named, and keep their values; the
 * windows, which the saved state is bound to, are named as what the next
 * start will refuse, with what to put back. */
static void test_restart_settings_are_reported(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, base_conf, NULL), 0);
    char conf[1024];
    snprintf(conf, sizeof(conf), "[windows]\n2h = 2h\n%s", base_conf);
    reload(f, conf, "the next start will refuse this: windows");
    assert_non_null(
        strstr(harness_log(&f->h), "put back [windows] 1h = 1h, 24h = 1d, 7d = 7d, 30d = 30d"));
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(submit(&c, 1, "gaoguan", "disputes.screened", 3).status, PROTO_ACK_ACCEPTED);
    harness_value_t v;
    assert_int_equal(harness_snapshot(&c, "u/county/", &f->t), 0);
    assert_true(harness_table_get(&f->t, "disputes.screened", "", "1h", &v));
    assert_false(harness_table_get(&f->t, "disputes.screened", "", "2h", &v));
    harness_client_close(&c);
}

/* ---- what a refused reload, and a file the next start refuses, show ----
 *
 * These tests play systemd's part too: a datagram socket in the harness's
 * directory is the daemon's $NOTIFY_SOCKET, so its STATUS= lines can be
 * read. */

static int notify_fd = -1;

static int setup_notify(void **state)
{
    setup(state);
    fx_t *f = *state;
    assert_int_equal(harness_init(&f->h), 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int n = snprintf(a.sun_path, sizeof(a.sun_path), "%s/notify", f->h.dir);
    assert_true(n > 0 && (size_t)n < sizeof(a.sun_path));
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(notify_fd >= 0);
    assert_int_equal(bind(notify_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setenv("NOTIFY_SOCKET", a.sun_path, 1);
    return 0;
}

static int teardown_notify(void **state)
{
    unsetenv("NOTIFY_SOCKET");
    close(notify_fd);
    notify_fd = -1;
    return teardown(state);
}

/* Wait up to timeout_ms for a datagram holding every one of needles
 * (NULL-terminated), skipping others; its text goes into buf. */
static void wait_notify(char *buf, size_t cap, int timeout_ms, const char *const *needles)
{
    int64_t end = harness_mono_ms() + timeout_ms;
    for (;;) {
        int left = (int)(end - harness_mono_ms());
        struct pollfd p = {.fd = notify_fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            fail_msg("no notification with '%s' within %d ms", needles[0], timeout_ms);
        ssize_t n = recv(notify_fd, buf, cap - 1, 0);
        assert_true(n >= 0);
        buf[n] = '\0';
        bool all = true;
        for (size_t i = 0; needles[i] && all; i++)
            all = strstr(buf, needles[i]) != NULL;
        if (all)
            return;
    }
}

/* SIGHUP with text as the file; wait until the log holds needle once
 * more than before. */
static void hup(fx_t *f, const char *text, const char *needle)
{
    size_t before = harness_count_in(harness_log(&f->h), needle);
    assert_int_equal(harness_write_file(&f->h, "tallyd.conf", text, NULL, 0), 0);
    assert_int_equal(kill(f->h.pid, SIGHUP), 0);
    for (int i = 0; i < 500; i++) {
        if (harness_count_in(harness_log(&f->h), needle) > before)
            return;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    fail_msg("no further '%s' in the log:\n%s", needle, harness_log(&f->h));
}

static void expect_stat(harness_client_t *c, const char *name, int64_t want)
{
    int64_t v = harness_stats(c, name);
    if (v != want)
        fail_msg("STATS %s: %lld, expected %lld", name, (long long)v, (long long)want);
}

static const char zones_gauge_conf[] = "[township gaoguan]\nname = 高观镇\n"
                                       "[metric grid.zones]\nkind = gauge\n";
static const char zones_counter_conf[] = "[township gaoguan]\nname = 高观镇\n"
                                         "[metric grid.zones]\nkind = counter\n";

/* A reload refused (a gauge with tallies declared a counter): STATS says
 * so until a reload succeeds (for an alert), STATUS= keeps saying that
 * the previous configuration is in force past the periodic line, and the
 * next start, which that file would stop, is named; a start with it is
 * refused with a message that says what to put back. */
static void test_refused_reload_is_seen(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, zones_gauge_conf, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    expect_stat(&c, "tallyd_config_last_reload_successful", 1);
    expect_stat(&c, "tallyd_config_reload_failures_total", 0);
    expect_stat(&c, "tallyd_config_reloads_total", 0);
    expect_stat(&c, "tallyd_config_next_start_refused", 0);
    int64_t loaded = harness_stats(&c, "tallyd_config_last_reload_success_timestamp_seconds");
    assert_true(loaded > 0 && loaded <= harness_now_ms() / 1000);
    assert_int_equal(submit(&c, 1, "gaoguan", "grid.zones", 12).status, PROTO_ACK_ACCEPTED);

    hup(f, zones_counter_conf, "reload refused");
    assert_non_null(strstr(harness_log(&f->h),
                           "has gauge tallies; it cannot become a counter; the next start will "
                           "refuse this file too: put back kind = gauge"));
    expect_stat(&c, "tallyd_config_last_reload_successful", 0);
    expect_stat(&c, "tallyd_config_reload_failures_total", 1);
    expect_stat(&c, "tallyd_config_reloads_total", 0);
    expect_stat(&c, "tallyd_config_next_start_refused", 1);
    expect_stat(&c, "tallyd_config_last_reload_success_timestamp_seconds", loaded);
    char msg[4096];
    wait_notify(msg, sizeof msg, 5000, (const char *const[]){"READY=1", "was refused", NULL});
    assert_non_null(strstr(msg, "the configuration in force is the previous one"));
    /* The periodic line (every 10 s) keeps it. */
    wait_notify(msg, sizeof msg, 15000, (const char *const[]){"series, ", NULL});
    assert_non_null(strstr(msg, "was refused (see the log): the configuration in force is the "
                                "previous one"));
    assert_non_null(strstr(msg, "would be refused by the next start"));

    /* A reload that succeeds puts it all back. */
    char conf[1024];
    snprintf(conf, sizeof conf, "%s[township bashan]\nname = 巴山镇\n", zones_gauge_conf);
    hup(f, conf, "reloaded");
    expect_stat(&c, "tallyd_config_last_reload_successful", 1);
    expect_stat(&c, "tallyd_config_reload_failures_total", 1);
    expect_stat(&c, "tallyd_config_reloads_total", 1);
    expect_stat(&c, "tallyd_config_next_start_refused", 0);
    assert_true(harness_stats(&c, "tallyd_config_last_reload_success_timestamp_seconds") >= loaded);
    wait_notify(msg, sizeof msg, 5000, (const char *const[]){"READY=1", "reloaded", NULL});
    assert_non_null(strstr(msg, "STATUS=reloaded; serving"));
    harness_client_close(&c);

    /* The file the reload refused stops a start, saying what to put
     * back (and no leftover error string); --check-config -s says so
     * first. */
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    char path[HARNESS_PATH_MAX], out[8192];
    assert_int_equal(
        harness_write_file(&f->h, "counter.conf", zones_counter_conf, path, sizeof path), 0);
    const char *args[] = {"--check-config", path, "--state-dir", f->h.state_dir, NULL};
    assert_int_equal(harness_run(args, out, sizeof out, 10000), 2);
    if (!strstr(out, "holds gauge tallies of it, which keep their kind; put back kind = gauge"))
        fail_msg("--check-config -s: %s", out);
    assert_int_not_equal(harness_start(&f->h, zones_counter_conf, NULL), 0);
    assert_false(harness_running(&f->h));
    assert_int_equal(f->h.last_status, 2);
    const char *log = harness_log(&f->h);
    assert_non_null(strstr(log, "metric 'grid.zones' (line 3) is declared a counter, but the "
                                "state in"));
    assert_non_null(strstr(log, "holds gauge tallies of it, which keep their kind; put back "
                                "kind = gauge"));
    assert_null(strstr(log, "already exists"));
}

/* [windows] buckets changed at a reload: accepted with the running value
 * kept, but named as what the next start will refuse, with the value to
 * put back; STATS says so too. */
static void test_buckets_change_named(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, base_conf, NULL), 0);
    char conf[1024];
    snprintf(conf, sizeof conf, "[windows]\nbuckets = 30\n%s", base_conf);
    hup(f, conf, "reloaded");
    const char *log = harness_log(&f->h);
    assert_non_null(strstr(log, "the next start will refuse this: buckets: '60' -> '30'"));
    assert_non_null(strstr(log, "put back buckets = 60 in "));
    assert_null(strstr(log, "need a restart"));
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    expect_stat(&c, "tallyd_config_last_reload_successful", 1);
    expect_stat(&c, "tallyd_config_next_start_refused", 1);
    char msg[4096];
    wait_notify(msg, sizeof msg, 5000,
                (const char *const[]){"READY=1", "would be refused by the next start", NULL});
    assert_null(strstr(msg, "was refused"));
    /* Put back: all is well again. */
    hup(f, base_conf, "reloaded");
    expect_stat(&c, "tallyd_config_next_start_refused", 0);
    assert_int_equal(submit(&c, 1, "gaoguan", "disputes.screened", 3).status, PROTO_ACK_ACCEPTED);
    harness_client_close(&c);

    /* tallyd --check-config FILE -s DIR says it before a start: against
     * the checkpoint of the clean stop, the file with other buckets is
     * refused as the start refuses it, the old one fits. */
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    char path[HARNESS_PATH_MAX], out[8192];
    assert_int_equal(harness_write_file(&f->h, "b30.conf", conf, path, sizeof path), 0);
    const char *args[] = {"--check-config", path, "-s", f->h.state_dir, NULL};
    assert_int_equal(harness_run(args, out, sizeof out, 10000), 2);
    if (!strstr(out, "the next start would refuse it against the state in") ||
        !strstr(out, "windows changed: ") || !strstr(out, "with 30 buckets each") ||
        strstr(out, "configuration is valid"))
        fail_msg("--check-config -s: %s", out);
    assert_int_equal(harness_write_file(&f->h, "base.conf", base_conf, path, sizeof path), 0);
    assert_int_equal(harness_run(args, out, sizeof out, 10000), 0);
    if (!strstr(out, "fits the state in"))
        fail_msg("--check-config -s: %s", out);
    assert_int_not_equal(harness_start(&f->h, conf, NULL), 0);
    assert_int_equal(f->h.last_status, 2);
    assert_non_null(strstr(harness_log(&f->h), "with 30 buckets each"));
    assert_int_equal(harness_start(&f->h, base_conf, NULL), 0);
}

/* A township key whose file names a township the closed catalog does
 * not declare (gaogaun.key for gaoguan) is named, with the township
 * meant, by --check-config, at the start and at a reload. */
static void test_key_of_undeclared_township(void **state)
{
    fx_t *f = *state;
    harness_t *h = &f->h;
    assert_int_equal(harness_init(h), 0);
    char spub[HARNESS_Z85_LEN + 1], ssec[HARNESS_Z85_LEN + 1];
    char pub[HARNESS_Z85_LEN + 1], sec[HARNESS_Z85_LEN + 1];
    assert_int_equal(harness_curve_keypair(spub, ssec), 0);
    assert_int_equal(harness_write_cert(h, "keys/server.key_secret", spub, ssec, NULL, 0), 0);
    assert_int_equal(harness_curve_keypair(pub, sec), 0);
    assert_int_equal(harness_write_cert(h, "keys/towns/gaoguan.key", pub, NULL, NULL, 0), 0);
    assert_int_equal(harness_curve_keypair(pub, sec), 0);
    assert_int_equal(harness_write_cert(h, "keys/towns/gaogaun.key", pub, NULL, NULL, 0), 0);
    assert_int_equal(harness_curve_keypair(pub, sec), 0);
    assert_int_equal(harness_write_cert(h, "keys/subs/screen.key", pub, NULL, NULL, 0), 0);
    assert_int_equal(harness_set_curve(h, spub, pub, sec), 0);
    char conf[2048];
    snprintf(conf, sizeof conf,
             "%s[security]\nserver_secret_key = %s/keys/server.key_secret\n"
             "township_keys = %s/keys/towns\nsubscriber_keys = %s/keys/subs\n",
             base_conf, h->dir, h->dir, h->dir);
    static const char warning[] = "keys/towns/gaogaun.key is for township 'gaogaun', which the "
                                  "catalog does not declare: its submissions will be refused "
                                  "(UNKNOWN_TOWNSHIP); did you mean 'gaoguan'?";
    char path[HARNESS_PATH_MAX], out[8192];
    assert_int_equal(harness_write_file(h, "tallyd.conf", conf, path, sizeof path), 0);
    const char *args[] = {"--check-config", path, NULL};
    assert_int_equal(harness_run(args, out, sizeof out, 10000), 0);
    if (!strstr(out, warning) || !strstr(out, "configuration is valid") ||
        strstr(out, "gaoguan.key is for"))
        fail_msg("--check-config: %s", out);
    assert_int_equal(harness_start(h, conf, NULL), 0);
    assert_int_equal(harness_count_in(harness_log(h), warning), 1);
    hup(f, conf, "reloaded");
    assert_int_equal(harness_count_in(harness_log(h), warning), 2);
}

static const char ratio_conf[] = "[township gaoguan]\nname = 高观镇\n"
                                 "[metric area]\nkind = counter\n%s"
                                 "[metric people]\nkind = counter\n"
                                 "[ratio area_per_person]\nnumerator = area\n"
                                 "denominator = people\n";

/* The UPDATEs of the ratio a subscriber received, and the last one's
 * total. */
typedef struct ratio_seen {
    int updates;
    harness_value_t total;
} ratio_seen_t;

static void on_ratio(harness_sub_t *s, const harness_event_t *ev, void *ctx)
{
    (void)s;
    ratio_seen_t *seen = ctx;
    if (ev->type != PROTO_UPDATE || strcmp(ev->row->metric, "area_per_person") != 0)
        return;
    seen->updates++;
    seen->total = ev->row->val[ev->row->ncols - 1];
}

/* gaoguan's and the county's ratio in the subscriber's table is
 * [num, den]. */
static bool ratio_is(harness_sub_t *s, int64_t num, int64_t den)
{
    for (int k = 0; k < 2; k++) {
        harness_value_t v;
        if (!harness_table_get(&s->table, "area_per_person", k == 0 ? "gaoguan" : "", "total",
                               &v) ||
            !v.present || v.num != num || v.den != den)
            return false;
    }
    return true;
}

/* A reload that gives area, which has tallies, a decimal scale would read
 * its saved 125 as 12.5 (and the ratio over it a tenth as large): it is
 * refused, the figures and the ratio stay as they were with no UPDATE,
 * and the next start with that file is refused too, saying what to put
 * back, also after a crash when area's tallies were only in the journal
 * before the reload (the refusal takes a checkpoint).  A metric without
 * tallies may take a scale. */
static void test_scale_change_refused(void **state)
{
    fx_t *f = *state;
    char conf[1024], scaled[1024];
    snprintf(conf, sizeof conf, ratio_conf, "");
    snprintf(scaled, sizeof scaled, ratio_conf, "scale = 1\n");
    assert_int_equal(harness_start(&f->h, conf, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(submit(&c, 1, "gaoguan", "area", 125).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(submit(&c, 2, "gaoguan", "people", 50).status, PROTO_ACK_ACCEPTED);
    ratio_seen_t seen = {0};
    harness_sub_t sub;
    assert_int_equal(harness_sub_open(&f->h, &sub, "u/", on_ratio, &seen), 0);
    assert_int_equal(harness_sub_wait_stable(&sub, 5000), 0);
    assert_true(ratio_is(&sub, 125, 50));

    int before = seen.updates;
    hup(f, scaled, "reload refused");
    assert_non_null(
        strstr(harness_log(&f->h), "metric 'area' (line 3) has scale = 1, but the state in "));
    assert_non_null(strstr(harness_log(&f->h), "holds its tallies at scale 0, which they keep "
                                               "(its figures would read smaller): put back "
                                               "scale = 0"));
    expect_stat(&c, "tallyd_config_next_start_refused", 1);
    assert_int_equal(harness_sub_wait_stable(&sub, 2000), 0);
    assert_int_equal(seen.updates, before);
    assert_true(ratio_is(&sub, 125, 50));
    assert_int_equal(county_total(f, &c, "area"), 125);
    harness_sub_close(&sub);
    harness_client_close(&c);

    /* A checkpoint within a second or two of the refusal; then a crash. */
    char pattern[HARNESS_PATH_MAX + 16];
    snprintf(pattern, sizeof pattern, "%s/state-*.ckp", f->h.state_dir);
    glob_t gl = {0};
    for (int i = 0; i < 500 && glob(pattern, 0, NULL, &gl) != 0; i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    assert_true(gl.gl_pathc > 0);
    globfree(&gl);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    assert_int_not_equal(harness_start(&f->h, scaled, NULL), 0);
    assert_int_equal(f->h.last_status, 2);
    assert_non_null(strstr(harness_log(&f->h), "put back scale = 0"));
    /* Named with its file, as the reload names it. */
    char named[HARNESS_PATH_MAX + 32];
    snprintf(named, sizeof named, "error: %s: metric 'area' (line 3)", f->h.config_path);
    assert_non_null(strstr(harness_log(&f->h), named));

    /* people has tallies too; a metric without any may take a scale. */
    char fresh[1200];
    snprintf(fresh, sizeof fresh, "%s[metric depth]\nkind = gauge\nscale = 2\n", conf);
    assert_int_equal(harness_start(&f->h, fresh, NULL), 0);
    hup(f, conf, "reloaded");
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(county_total(f, &c, "area"), 125);
    harness_client_close(&c);
}

/* A ratio a reload adds over metrics with tallies: its scopes are new to
 * a subscriber synced before the reload, who sees a series only in
 * updates; tallyd publishes them (the county's and each township's with
 * an operand) without waiting for a submission, and the subscriber's
 * table then holds what a fresh snapshot holds. */
static const char two_towns_conf[] = "[township gaoguan]\nname = 高观镇\n"
                                     "[township bashan]\nname = 巴山镇\n"
                                     "[metric area]\nkind = counter\n"
                                     "[metric people]\nkind = counter\n%s";

static bool ratio_in_table(harness_sub_t *s, void *ctx)
{
    (void)ctx;
    static const char *const scopes[] = {"", "gaoguan", "bashan"};
    for (int k = 0; k < 3; k++) {
        harness_value_t v;
        if (!harness_table_get(&s->table, "area_per_person", scopes[k], "total", &v))
            return false;
    }
    return true;
}

static void test_ratio_added_published(void **state)
{
    fx_t *f = *state;
    char conf[1024], with_ratio[1024];
    snprintf(conf, sizeof conf, two_towns_conf, "");
    snprintf(with_ratio, sizeof with_ratio, two_towns_conf,
             "[ratio area_per_person]\nnumerator = area\ndenominator = people\n");
    assert_int_equal(harness_start(&f->h, conf, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    assert_int_equal(submit(&c, 1, "gaoguan", "area", 125).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(submit(&c, 2, "gaoguan", "people", 50).status, PROTO_ACK_ACCEPTED);
    assert_int_equal(submit(&c, 3, "bashan", "area", 30).status, PROTO_ACK_ACCEPTED);
    ratio_seen_t seen = {0};
    harness_sub_t sub;
    assert_int_equal(harness_sub_open(&f->h, &sub, "u/", on_ratio, &seen), 0);
    assert_int_equal(harness_sub_wait_stable(&sub, 5000), 0);
    assert_false(ratio_in_table(&sub, NULL));

    hup(f, with_ratio, "reloaded");
    if (harness_sub_until(&sub, ratio_in_table, NULL, 5000) != 0)
        fail_msg("the ratio a reload added was not published: %d updates of it", seen.updates);
    harness_value_t v;
    assert_true(harness_table_get(&sub.table, "area_per_person", "gaoguan", "total", &v));
    assert_true(v.present && v.num == 125 && v.den == 50);
    assert_true(harness_table_get(&sub.table, "area_per_person", "", "total", &v));
    assert_true(v.present && v.num == 155 && v.den == 50);
    assert_true(harness_table_get(&sub.table, "area_per_person", "bashan", "total", &v));
    assert_false(v.present); /* no people there: no value, but the series is known */
    assert_int_equal(harness_sub_wait_stable(&sub, 3000), 0);
    assert_int_equal(sub.gaps, 0);
    harness_sub_close(&sub);
    harness_client_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_reload_keeps_tallies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_reload_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_settings_are_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_reload_is_seen, setup_notify, teardown_notify),
        cmocka_unit_test_setup_teardown(test_buckets_change_named, setup_notify, teardown_notify),
        cmocka_unit_test_setup_teardown(test_key_of_undeclared_township, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_names_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_names_at_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_series_lowered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_limit_said_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale_change_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ratio_added_published, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
