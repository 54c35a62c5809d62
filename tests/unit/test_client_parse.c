/* Unit tests of what the client parses from people: server addresses,
 * publish endpoint derivation, event times, mistyped options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli_util.h"
#include "tally.h"
#include "when.h"

static void norm_ok(const char *in, const char *want)
{
    char out[TALLY_ENDPOINT_MAX];
    int rc = tally_endpoint_normalize(in, out, sizeof out);
    if (rc != 0)
        fail_msg("normalize('%s') = %d", in, rc);
    assert_string_equal(out, want);
}

static void test_normalize(void **state)
{
    (void)state;
    norm_ok("tcp://127.0.0.1:7411", "tcp://127.0.0.1:7411");
    norm_ok("ipc:///run/tally/req.sock", "ipc:///run/tally/req.sock");
    norm_ok("inproc://x", "inproc://x");
    norm_ok("tally.example.org:9000", "tcp://tally.example.org:9000");
    norm_ok("10.0.0.5", "tcp://10.0.0.5:7411");
    norm_ok("[::1]:7500", "tcp://[::1]:7500");
    norm_ok("[::1]", "tcp://[::1]:7411");
    norm_ok("::1", "tcp://[::1]:7411");
    norm_ok(":7411", "tcp://127.0.0.1:7411");
    char out[TALLY_ENDPOINT_MAX];
    assert_int_equal(tally_endpoint_normalize("", out, sizeof out), TALLY_EINVAL);
    assert_int_equal(tally_endpoint_normalize(NULL, out, sizeof out), TALLY_EINVAL);
    assert_int_equal(tally_endpoint_normalize("host:0", out, sizeof out), TALLY_EINVAL);
    assert_int_equal(tally_endpoint_normalize("host:65536", out, sizeof out), TALLY_EINVAL);
    assert_int_equal(tally_endpoint_normalize("host:7x", out, sizeof out), TALLY_EINVAL);
    assert_int_equal(tally_endpoint_normalize("host:", out, sizeof out), TALLY_EINVAL);
    assert_int_equal(tally_endpoint_normalize("[::1", out, sizeof out), TALLY_EINVAL);
    assert_int_equal(tally_endpoint_normalize("[::1]x", out, sizeof out), TALLY_EINVAL);
    char small[10];
    assert_int_equal(tally_endpoint_normalize("longhostname", small, sizeof small), TALLY_ETOOLONG);
}

static void parse_bad(const char *in, int want_rc, const char *want_err)
{
    char out[TALLY_ENDPOINT_MAX], err[256];
    int rc = tally_endpoint_parse(in, out, sizeof out, err, sizeof err);
    if (rc != want_rc)
        fail_msg("parse('%s') = %d, expected %d", in, rc, want_rc);
    assert_string_equal(err, want_err);
}

/* The strict form for addresses people type: each mistake gets one
 * sentence naming the part that is wrong. */
static void test_parse(void **state)
{
    (void)state;
    char out[TALLY_ENDPOINT_MAX], err[256];
    static const char *const same[] = {"tcp://127.0.0.1:7411", "ipc:///run/tally/req.sock",
                                       "inproc://x", "tcp://[::1]:7411",
                                       "tcp://eth0;10.0.0.5:7411"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        assert_int_equal(tally_endpoint_parse(same[i], out, sizeof out, err, sizeof err), 0);
        assert_string_equal(out, same[i]);
    }
    assert_int_equal(tally_endpoint_parse("::1", out, sizeof out, NULL, 0), 0);
    assert_string_equal(out, "tcp://[::1]:7411");
    assert_int_equal(tally_endpoint_parse("tally.example.org", out, sizeof out, NULL, 0), 0);
    assert_string_equal(out, "tcp://tally.example.org:7411");
    parse_bad("tcp://127.0.0.1:notaport", TALLY_EINVAL,
              "the port 'notaport' is not a number from 1 to 65535");
    parse_bad("http://host:7411", TALLY_EINVAL,
              "'http://' is not a transport tallyd listens on: use tcp://HOST:PORT, HOST:PORT, "
              "HOST or ipc://PATH");
    parse_bad("host:port:x", TALLY_EINVAL,
              "it has more than one ':' and is not an IPv6 address (write HOST:PORT, or "
              "[IPv6]:PORT)");
    parse_bad("host:notaport", TALLY_EINVAL, "the port 'notaport' is not a number from 1 to 65535");
    parse_bad("host:", TALLY_EINVAL, "the port is missing after ':'");
    parse_bad("host:0", TALLY_EINVAL, "the port '0' is not a number from 1 to 65535");
    parse_bad("tcp://host", TALLY_EINVAL, "it has no ':PORT' after the host (tcp://HOST:PORT)");
    parse_bad("tcp://:7411", TALLY_EINVAL, "the host is missing before ':7411'");
    parse_bad("tcp://a:b:7411", TALLY_EINVAL,
              "it has more than one ':' after tcp:// (an IPv6 host is written "
              "tcp://[ADDRESS]:PORT)");
    parse_bad("ipc://", TALLY_EINVAL, "the socket path is missing after 'ipc://'");
    parse_bad("[::1", TALLY_EINVAL, "the '[' is never closed by a ']'");
    parse_bad("[::1]x", TALLY_EINVAL, "'x' after ']' is neither nothing nor ':PORT'");
    parse_bad("", TALLY_EINVAL, "the address is empty");
    parse_bad("a b:1", TALLY_EINVAL, "it holds a space");
    parse_bad("tcp://a b:1", TALLY_EINVAL, "it holds a space");
    parse_bad("ipc:///tmp/x\ny", TALLY_EINVAL, "it holds a control character");
    assert_int_equal(
        tally_endpoint_parse("ipc:///tmp/my dir/req", out, sizeof out, err, sizeof err),
        0); /* a path may hold a space */
    /* normalize keeps its meaning: any scheme passes through. */
    assert_int_equal(tally_endpoint_normalize("http://host:7411", out, sizeof out), 0);
}

static void pub_ok(const char *server, const char *adv, const char *want)
{
    char out[TALLY_ENDPOINT_MAX];
    int rc = tally_endpoint_pub(server, adv, out, sizeof out);
    if (rc != 0)
        fail_msg("pub('%s', '%s') = %d", server, adv ? adv : "(null)", rc);
    assert_string_equal(out, want);
}

static void test_pub_endpoint(void **state)
{
    (void)state;
    /* Convention without WELCOME: same host, port + 1. */
    pub_ok("tcp://10.1.2.3:7411", NULL, "tcp://10.1.2.3:7412");
    pub_ok("tcp://tally.example.org:9000", "", "tcp://tally.example.org:9001");
    pub_ok("tcp://[::1]:7411", NULL, "tcp://[::1]:7412");
    /* Wildcard hosts in WELCOME take the request endpoint's host. */
    pub_ok("tcp://10.1.2.3:7411", "tcp://*:7500", "tcp://10.1.2.3:7500");
    pub_ok("tcp://10.1.2.3:7411", "tcp://0.0.0.0:7412", "tcp://10.1.2.3:7412");
    pub_ok("tcp://host.example:7411", "tcp://[::]:7412", "tcp://host.example:7412");
    pub_ok("ipc:///run/req", "tcp://*:7412", "tcp://127.0.0.1:7412");
    /* A concrete endpoint is used as it is. */
    pub_ok("tcp://10.1.2.3:7411", "tcp://192.168.0.9:7412", "tcp://192.168.0.9:7412");
    pub_ok("tcp://10.1.2.3:7411", "ipc:///run/tally/pub", "ipc:///run/tally/pub");
    char out[TALLY_ENDPOINT_MAX];
    assert_int_equal(tally_endpoint_pub("ipc:///run/req", NULL, out, sizeof out), TALLY_EINVAL);
    assert_int_equal(tally_endpoint_pub("tcp://h:65535", NULL, out, sizeof out), TALLY_EINVAL);
}

static int64_t when_ok(const char *s)
{
    char err[256];
    int64_t ms = -1;
    int rc = when_parse(s, NULL, &ms, NULL, err, sizeof err);
    if (rc != 0)
        fail_msg("when_parse('%s'): %s", s, err);
    return ms;
}

static void when_bad(const char *s, const char *needle)
{
    char err[256];
    int64_t ms;
    assert_int_equal(when_parse(s, NULL, &ms, NULL, err, sizeof err), TALLY_EINVAL);
    if (strstr(err, needle) == NULL)
        fail_msg("when_parse('%s') said '%s', expected '%s' in it", s, err, needle);
}

static void test_time(void **state)
{
    (void)state;
    /* 2023-12-31T04:00:00Z = 1703995200 s. */
    assert_int_equal(when_ok("2023-12-31T12:00:00+08:00"), 1703995200000LL);
    assert_int_equal(when_ok("2023-12-31T12:00:00+0800"), 1703995200000LL);
    assert_int_equal(when_ok("2023-12-31T12:00:00+08"), 1703995200000LL);
    assert_int_equal(when_ok("2023-12-31T04:00:00Z"), 1703995200000LL);
    assert_int_equal(when_ok("2023-12-30T23:30:00-04:30"), 1703995200000LL);
    assert_int_equal(when_ok("2023-12-31T04:00:00.250Z"), 1703995200250LL);
    assert_int_equal(when_ok("2023-12-31T04:00Z"), 1703995200000LL);
    assert_int_equal(when_ok("@1703995200000"), 1703995200000LL);
    assert_int_equal(when_ok("2024-02-29T00:00:00Z"), 1709164800000LL);
    /* Local time follows TZ; unset TZ means UTC. */
    unsetenv("TZ");
    assert_int_equal(when_ok("2023-12-31"), 1703980800000LL);
    assert_int_equal(when_ok("2023-12-31 04:00:00"), 1703995200000LL);
    setenv("TZ", "Asia/Shanghai", 1);
    assert_int_equal(when_ok("2023-12-31"), 1703980800000LL - 8 * 3600000LL);
    assert_int_equal(when_ok("2023-12-31T12:00:00"), 1703995200000LL);
    unsetenv("TZ");
    /* In the daemon's zone: by its name where this machine knows it (TZ
     * left as it was), else at its offset; a time with an offset or in
     * epoch ms stays what it says. */
    char err[256];
    int64_t ms = 0;
    bool local = false;
    when_zone_t sh = {"Asia/Shanghai", 0}, nowhere = {"Nowhere/Atlantis", -5 * 3600},
                bare = {NULL, 14 * 3600};
    assert_int_equal(when_parse("2023-12-31 23:30", &sh, &ms, &local, err, sizeof err), 0);
    assert_true(local);
    assert_int_equal(ms, 1704036600000LL); /* 2023-12-31T15:30:00Z */
    assert_null(getenv("TZ"));
    setenv("TZ", "America/New_York", 1);
    assert_int_equal(when_parse("2023-12-31", &sh, &ms, &local, err, sizeof err), 0);
    assert_int_equal(ms, 1703980800000LL - 8 * 3600000LL);
    assert_string_equal(getenv("TZ"), "America/New_York");
    unsetenv("TZ");
    assert_int_equal(when_parse("2023-12-31", &nowhere, &ms, &local, err, sizeof err), 0);
    assert_int_equal(ms, 1703980800000LL + 5 * 3600000LL);
    assert_int_equal(when_parse("2023-12-31", &bare, &ms, &local, err, sizeof err), 0);
    assert_int_equal(ms, 1703980800000LL - 14 * 3600000LL);
    assert_int_equal(when_parse("2023-12-31T04:00:00Z", &sh, &ms, &local, err, sizeof err), 0);
    assert_false(local);
    assert_int_equal(ms, 1703995200000LL);
    assert_int_equal(when_parse("@1703995200000", &sh, &ms, &local, err, sizeof err), 0);
    assert_false(local);
    when_bad("2023-02-29", "has no day 29");
    when_bad("2023-13-01", "has no day");
    when_bad("2023-12-31T24:00:00Z", "not a time of day");
    when_bad("31/12/2023", "expected YYYY-MM-DD");
    when_bad("2023-12-31T12", "HH:MM");
    when_bad("2023-12-31T12:00:00+8", "offset");
    when_bad("2023-12-31T12:00:00 junk", "offset");
    when_bad("@12x", "milliseconds");
    when_bad("", "expected");
}

static void test_suggest(void **state)
{
    (void)state;
    static const char *const opts[] = {"town", "file", "time", "timeout", "spool", "server"};
    assert_int_equal(cli_edit_distance("tonw", "town"), 1);
    assert_int_equal(cli_edit_distance("", "abc"), 3);
    assert_int_equal(cli_edit_distance("kitten", "sitting"), 3);
    assert_string_equal(cli_suggest("tonw", opts, 6), "town");
    assert_string_equal(cli_suggest("spol", opts, 6), "spool");
    assert_string_equal(cli_suggest("timeot", opts, 6), "timeout");
    assert_string_equal(cli_suggest("servr", opts, 6), "server");
    assert_null(cli_suggest("xyzzy", opts, 6));
    assert_null(cli_suggest("a", opts, 6));
}

static void test_prefix(void **state)
{
    (void)state;
    char p[300];
    assert_int_equal(cli_prefix("get", NULL, NULL, 0, p, sizeof p), 0);
    assert_string_equal(p, "u/county/");
    assert_int_equal(cli_prefix("get", "disputes.resolved", NULL, 0, p, sizeof p), 0);
    assert_string_equal(p, "u/county/disputes.resolved/");
    assert_int_equal(cli_prefix("get", NULL, "gaoguan", 0, p, sizeof p), 0);
    assert_string_equal(p, "u/town/gaoguan/");
    assert_int_equal(cli_prefix("get", "banners", "高观镇", 0, p, sizeof p), 0);
    assert_string_equal(p, "u/town/高观镇/banners/");
    assert_int_equal(cli_prefix("get", "banners", NULL, 1, p, sizeof p), 0);
    assert_string_equal(p, "u/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),    cmocka_unit_test(test_parse),
        cmocka_unit_test(test_pub_endpoint), cmocka_unit_test(test_time),
        cmocka_unit_test(test_suggest),      cmocka_unit_test(test_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
