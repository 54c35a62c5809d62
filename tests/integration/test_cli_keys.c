/* The tally command's messages against tallyd secured with CURVE, as a
 * clerk meets them: a township key used to read (the daemon's FORBIDDEN,
 * in its words), no keys at all (a hint that keys are needed), a key the
 * daemon does not admit.  Each is said at once, not after a timeout.  The
 * keys and the secured daemon are the fixture of security_test_util.h. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli_support.h"
#include "harness.h"
#include "security_test_util.h"

#define MAX_MS 30000

/* Run `tally ARGS...` and check its status, that stderr holds each of
 * wants, and that it took at most max_ms.  The commands are given 60 s
 * (--timeout, --duration) and expected to say it within MAX_MS: at once,
 * even with tallyd under valgrind. */
static void expect(fx_t *f, const char *const *args, int status, const char *const *wants,
                   int64_t max_ms)
{
    cli_result_t r;
    assert_int_equal(cli_run(f->h.dir, f->h.req_endpoint, args, 30000, &r), 0);
    bool ok = r.status == status && r.ms <= max_ms;
    for (size_t i = 0; wants[i] != NULL; i++)
        ok = ok && strstr(r.err, wants[i]) != NULL;
    if (!ok) {
        char cmd[1024] = "tally";
        for (size_t i = 0; args[i] != NULL; i++)
            snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " %s", args[i]);
        fail_msg("'%s': expected status %d within %" PRId64 " ms and on stderr each of the "
                 "expected phrases; got status %d after %" PRId64 " ms\nstdout: %s\nstderr: %s",
                 cmd, status, max_ms, r.status, r.ms, r.out, r.err);
    }
    cli_result_free(&r);
}

static void write_client_certs(fx_t *f, char *server, char *gcert, char *xcert, size_t len)
{
    snprintf(server, len, "%s/keys/server.key", f->h.dir);
    assert_int_equal(harness_write_cert(&f->h, "client/gaoguan.key_secret", f->gaoguan.pub,
                                        f->gaoguan.sec, gcert, len),
                     0);
    assert_int_equal(harness_write_cert(&f->h, "client/stranger.key_secret", f->stranger.pub,
                                        f->stranger.sec, xcert, len),
                     0);
}

/* A township's key reads nothing: get and watch say the daemon answered
 * FORBIDDEN and why, with status 1. */
static void test_township_key_reads(void **state)
{
    fx_t *f = *state;
    start_secured(f, NULL);
    char server[HARNESS_PATH_MAX], gcert[HARNESS_PATH_MAX], xcert[HARNESS_PATH_MAX];
    write_client_certs(f, server, gcert, xcert, sizeof server);
    char answered[HARNESS_PATH_MAX + 128];
    snprintf(answered, sizeof answered,
             "tallyd at %s answered FORBIDDEN: this key belongs to "
             "township 'gaoguan'",
             f->h.req_endpoint);
    const char *want[] = {answered, "use a subscriber key", NULL};
    const char *get[] = {"--server-key", server, "--cert", gcert, "get", "--timeout", "60", NULL};
    expect(f, get, 1, want, MAX_MS);
    const char *watch[] = {"--server-key", server,       "--cert", gcert, "watch",
                           "--json",       "--duration", "60",     NULL};
    expect(f, watch, 1, want, MAX_MS);
    const char *watch_table[] = {"--server-key", server,       "--cert", gcert, "watch",
                                 "--all",        "--duration", "60",     NULL};
    expect(f, watch_table, 1, want, MAX_MS);
}

/* No keys for a daemon that needs them: a hint naming the options and
 * variables, at once and with status 3, for every command. */
static void test_plaintext_to_curve(void **state)
{
    fx_t *f = *state;
    start_secured(f, NULL);
    const char *want[] = {"it requires keys", "--server-key", "--cert",
                          "TALLY_SERVER_KEY", "TALLY_CERT",   NULL};
    const char *get[] = {"get", "--timeout", "60", NULL};
    expect(f, get, 3, want, MAX_MS);
    const char *stats[] = {"stats", "--timeout", "60", NULL};
    expect(f, stats, 3, want, MAX_MS);
    const char *watch[] = {"watch", "--json", "--duration", "60", NULL};
    expect(f, watch, 3, want, MAX_MS);
    const char *push_want[] = {"it requires keys", "--server-key", "nothing was sent", NULL};
    const char *push[] = {"push", "--town", "gaoguan", "--timeout", "60", "patrols=1", NULL};
    expect(f, push, 3, push_want, MAX_MS);
    assert_int_equal(total(f, "gaoguan"), 0);
}

/* A key the daemon does not admit. */
static void test_stranger_key(void **state)
{
    fx_t *f = *state;
    start_secured(f, NULL);
    char server[HARNESS_PATH_MAX], gcert[HARNESS_PATH_MAX], xcert[HARNESS_PATH_MAX];
    write_client_certs(f, server, gcert, xcert, sizeof server);
    const char *want[] = {"does not admit the key of", xcert, NULL};
    const char *get[] = {"--server-key", server, "--cert", xcert, "get", "--timeout", "60", NULL};
    expect(f, get, 3, want, MAX_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_township_key_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plaintext_to_curve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stranger_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
