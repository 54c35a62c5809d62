/* Black-box tests of what tallyd tells its operators: an endpoint it
 * cannot bind is a configuration error (for --check-config and for the
 * start, with the key and its line), refused requests are logged with
 * their peer, identical lines are counted and a rate-limited burst is
 * summed up on time, a message of a type the daemon sends is answered
 * UNKNOWN_TYPE, and a max_connections cut by the descriptor limit is a
 * warning.  Each case starts its own daemon (harness.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <msgpack.h>

#include "harness.h"

typedef struct fx {
    harness_t h;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = harness_finish(&f->h);
    harness_cleanup(&f->h);
    free(f);
    return rc;
}

/* A TCP port of 32000..32999 for this process, so that parallel test
 * runs do not meet. */
static int test_port(int offset)
{
    return 32000 + (int)((getpid() * 7 + offset) % 1000);
}

/* Write a configuration binding the request socket to request, its state
 * in DIR/state; its path goes into path. */
static void write_conf(fx_t *f, const char *request, char *path, size_t len)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "; the endpoint is on line 3\n[tallyd]\nrequest = %s\npublish = ipc://%s/pub\n"
             "state_dir = %s\n",
             request, f->h.dir, f->h.state_dir);
    assert_int_equal(harness_write_file(&f->h, "t3.conf", text, path, len), 0);
}

static void expect_in(const char *out, const char *needle, const char *what)
{
    if (strstr(out, needle) == NULL)
        fail_msg("%s: expected \"%s\" in:\n%s", what, needle, out);
}

/* 1. A host name where a bind needs an address: --check-config refuses
 * it naming the file, the line, the key and the reason, and a start
 * refuses it as a configuration error (status 2, which systemd does not
 * restart), not as a runtime failure at the bind (status 1, restarted
 * every 2 s for ever).  An interface of this machine (lo) is a valid
 * place to bind; a name that is no interface here is not. */
static void test_endpoint_host_name(void **state)
{
    fx_t *f = *state;
    char path[HARNESS_PATH_MAX], out[4096], req[64];
    char where[HARNESS_PATH_MAX + 160];
    snprintf(req, sizeof(req), "tcp://localhost:%d", test_port(0));
    write_conf(f, req, path, sizeof(path));

    const char *check[] = {"--check-config", path, NULL};
    assert_int_equal(harness_run(check, out, sizeof(out), 10000), 2);
    snprintf(where, sizeof(where), "%s:3: [tallyd] request: '%s' binds to 'localhost'", path, req);
    expect_in(out, where, "--check-config");
    expect_in(out, "which is neither an IP address, * nor an interface of this machine", "reason");
    if (strstr(out, "configuration is valid") != NULL)
        fail_msg("--check-config called it valid:\n%s", out);

    const char *start[] = {"-c", path, NULL};
    assert_int_equal(harness_run(start, out, sizeof(out), 10000), 2);
    expect_in(out, where, "the start");
    if (strstr(out, "cannot bind") != NULL)
        fail_msg("the start tried the bind:\n%s", out);

    /* An option is checked alike. */
    const char *opt[] = {"-s", f->h.state_dir, "-r", req, NULL};
    assert_int_equal(harness_run(opt, out, sizeof(out), 10000), 2);
    expect_in(out, "--request 'tcp://localhost:", "-r");

    /* A name that is no interface of this machine. */
    snprintf(req, sizeof(req), "tcp://tallynoif0:%d", test_port(0));
    write_conf(f, req, path, sizeof(path));
    assert_int_equal(harness_run(check, out, sizeof(out), 10000), 2);
    expect_in(out, "binds to 'tallynoif0', which is neither", "an unknown interface");

    /* An IPv6 address outside brackets would not bind either. */
    snprintf(req, sizeof(req), "tcp://::1:%d", test_port(0));
    write_conf(f, req, path, sizeof(path));
    assert_int_equal(harness_run(check, out, sizeof(out), 10000), 2);
    expect_in(out, "has an IPv6 address outside brackets (expected tcp://[::1]:", "IPv6");

    /* The loopback interface by its name, an address, a wildcard. */
    static const char *const fine[] = {"tcp://lo", "tcp://127.0.0.1", "tcp://*", "tcp://[::1]"};
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        snprintf(req, sizeof(req), "%s:%d", fine[i], test_port(0));
        write_conf(f, req, path, sizeof(path));
        int st = harness_run(check, out, sizeof(out), 10000);
        if (st != 0)
            fail_msg("--check-config refused %s (status %d):\n%s", req, st, out);
    }
}

/* Send body as one request and wait for an ERROR of code, returning it
 * in *r. */
static void expect_error(harness_client_t *c, const void *body, size_t len, int code,
                         harness_ack_t *r)
{
    assert_int_equal(harness_send_raw(c, body, len), 0);
    assert_int_equal(harness_recv_reply(c, r, HARNESS_REPLY_TIMEOUT_MS), 0);
    char b[800];
    if (r->type != PROTO_ERROR || r->code != code)
        fail_msg("expected ERROR %d, got %s", code, harness_ack_str(r, b, sizeof(b)));
}

/* 2. Over TCP, the line of a refused request names the peer's address
 * and routing id; over ipc://, the peer's pid and uid. */
static void test_peer_in_log(void **state)
{
    fx_t *f = *state;
    snprintf(f->h.req_endpoint, sizeof(f->h.req_endpoint), "tcp://127.0.0.1:%d", test_port(1));
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    harness_ack_t r;
    expect_error(&c, "\xc1", 1, -TALLY_EMALFORMED, &r);
    if (harness_wait_log(&f->h, "(MALFORMED) [peer 127.0.0.1, routing id ", 3000) != 0)
        fail_msg("no peer in the line of a bad request:\n%s", harness_log(&f->h));
    harness_client_close(&c);
    assert_int_equal(harness_finish(&f->h), 0);

    /* ipc://: the peer is a process of this machine. */
    snprintf(f->h.req_endpoint, sizeof(f->h.req_endpoint), "ipc://%s/req", f->h.dir);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    expect_error(&c, "\xc1", 1, -TALLY_EMALFORMED, &r);
    char peer[96];
    snprintf(peer, sizeof(peer), "(MALFORMED) [peer pid %ld uid %ld, routing id ", (long)getpid(),
             (long)getuid());
    if (harness_wait_log(&f->h, peer, 3000) != 0)
        fail_msg("expected \"%s\" in:\n%s", peer, harness_log(&f->h));
    harness_client_close(&c);
}

/* 2b. Five identical bad requests: one line, and within about a second,
 * with nothing else logged, how many more came.  A flood of different
 * ones: the first 50 lines, and within about a second how many were
 * suppressed, although nothing is logged after the flood. */
static void test_repeats_and_suppressed_on_time(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    harness_ack_t r;
    for (int i = 0; i < 5; i++)
        expect_error(&c, "\xc1", 1, -TALLY_EMALFORMED, &r);
    if (harness_wait_log(&f->h, "(repeated 4 more times within ", 3000) != 0)
        fail_msg("no count of the identical lines:\n%s", harness_log(&f->h));
    assert_int_equal(harness_count_in(harness_log(&f->h), "bad request: body: "), 2);

    /* Versions 2, 3, ...: each line names its own. */
    for (int i = 0; i < 80; i++) {
        uint8_t body[4] = {0x93, 0xcc, (uint8_t)(i + 2), 0x08};
        assert_int_equal(harness_send_raw(&c, body, 4), 0);
        assert_int_equal(harness_recv_reply(&c, &r, HARNESS_REPLY_TIMEOUT_MS), 0);
        assert_int_equal(r.type, PROTO_ERROR);
    }
    if (harness_wait_log(&f->h, "similar messages suppressed (rate limit) in the last", 3000) != 0)
        fail_msg("the suppressed lines were not counted on time:\n%s", harness_log(&f->h));
    harness_client_close(&c);
}

/* 4. A message of a type the daemon sends (an ACK, whatever its
 * elements) is answered UNKNOWN_TYPE, saying so, not with the ACK's
 * decoding error. */
static void test_type_sent_by_daemon(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    harness_ack_t r;
    static const uint8_t ack[] = {0x94, 0x01, 0x02, 0x03, 0xa1, 'x'}; /* [1,2,3,"x"] */
    expect_error(&c, ack, sizeof(ack), -TALLY_ETYPE, &r);
    assert_string_equal(r.field, "type");
    expect_in(r.message, "type: 2 (ACK) is sent by the daemon, not a request", "ERROR");
    static const uint8_t welcome[] = {0x93, 0x01, 0x09, 0x07}; /* [1,9,7] */
    expect_error(&c, welcome, sizeof(welcome), -TALLY_ETYPE, &r);
    expect_in(r.message, "type: 9 (WELCOME) is sent by the daemon", "ERROR");
    assert_int_equal(harness_ping(&c, NULL), 0);
    harness_client_close(&c);
}

/* 5. max_connections cut by the descriptor limit is a warning naming
 * both numbers and the LimitNOFILE= that fits it (the default of 10000
 * too, written out or not); nothing cut is info.  Last: it lowers this
 * process's limit for good. */
static void test_max_connections_cut(void **state)
{
    fx_t *f = *state;
    struct rlimit rl = {2000, 2000};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        skip();
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_connections = 10000\n", NULL), 0);
    if (harness_wait_log(&f->h,
                         "warning: [limits] max_connections = 10000 does not fit in the process's "
                         "descriptor limit of 2000: cut to 872 connections per socket; for 10000, "
                         "raise LimitNOFILE= (or ulimit -n) to 20256",
                         3000) != 0)
        fail_msg("no warning of the cut:\n%s", harness_log(&f->h));
    assert_int_equal(harness_finish(&f->h), 0);
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_connections = 100\n", NULL), 0);
    if (harness_wait_log(
            &f->h, "info: descriptor limit 2000: max_connections = 100 per socket fits", 3000) != 0)
        fail_msg("no info line of the limit:\n%s", harness_log(&f->h));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_endpoint_host_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_in_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeats_and_suppressed_on_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_sent_by_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections_cut, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
