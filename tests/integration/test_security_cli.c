/* The tally command against tallyd secured with CURVE: --server-key and
 * --cert (and TALLY_SERVER_KEY/TALLY_CERT) for push, get, stats and watch.
 * The keys and the secured daemon are the fixture of security_test_util.h;
 * the command is the real binary run by cli_support.c. */
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

/* ---- the tally command with keys ---- */

/* Run `tally ARGS...` against the daemon; *r owns the output. */
static void run_tally(fx_t *f, cli_result_t *r, const char *const *args)
{
    assert_int_equal(cli_run(f->h.dir, f->h.req_endpoint, args, 20000, r), 0);
}

static void expect_run(const cli_result_t *r, int status, const char *in_out, const char *in_err)
{
    if (r->status != status || (in_out && !strstr(r->out, in_out)) ||
        (in_err && !strstr(r->err, in_err)))
        fail_msg("expected status %d, '%s' on stdout and '%s' on stderr; got status %d\n"
                 "stdout: %s\nstderr: %s",
                 status, in_out ? in_out : "", in_err ? in_err : "", r->status, r->out, r->err);
}

/* tally push, get, stats and watch with --server-key/--cert (and their
 * environment variables): a township key pushes its own figures, a
 * subscriber key reads, and every refusal says why. */
static void test_cli_with_keys(void **state)
{
    fx_t *f = *state;
    start_secured(f, NULL);
    char server[HARNESS_PATH_MAX], gcert[HARNESS_PATH_MAX], scert[HARNESS_PATH_MAX],
        xcert[HARNESS_PATH_MAX];
    harness_t *h = &f->h;
    snprintf(server, sizeof(server), "%s/keys/server.key", h->dir);
    assert_int_equal(harness_write_cert(h, "client/gaoguan.key_secret", f->gaoguan.pub,
                                        f->gaoguan.sec, gcert, sizeof(gcert)),
                     0);
    assert_int_equal(harness_write_cert(h, "client/screen.key_secret", f->screen.pub, f->screen.sec,
                                        scert, sizeof(scert)),
                     0);
    assert_int_equal(harness_write_cert(h, "client/stranger.key_secret", f->stranger.pub,
                                        f->stranger.sec, xcert, sizeof(xcert)),
                     0);
    cli_result_t r;
    const char *push[] = {"--server-key", server,    "--cert",    gcert, "push",
                          "--town",       "gaoguan", "patrols=3", NULL};
    run_tally(f, &r, push);
    expect_run(&r, 0, "accepted 1 sample for gaoguan", NULL);
    cli_result_free(&r);
    const char *other[] = {"push",   "--server-key", server,      "--cert", gcert,
                           "--town", "bashan",       "patrols=4", NULL};
    run_tally(f, &r, other);
    expect_run(&r, 1, NULL, "belongs to 'gaoguan', not 'bashan'");
    cli_result_free(&r);

    /* The daemon's key as Z85 text, from the environment. */
    assert_int_equal(setenv("TALLY_SERVER_KEY", f->server.pub, 1), 0);
    assert_int_equal(setenv("TALLY_CERT", scert, 1), 0);
    const char *get[] = {"get", "--json", "--all", NULL};
    run_tally(f, &r, get);
    expect_run(&r, 0, "\"scope\":\"gaoguan\"", NULL);
    cli_tab_t t;
    cli_tab_init(&t);
    char err[256];
    cli_val_t v;
    assert_int_equal(cli_tab_from_get(&t, r.out, err, sizeof(err)), 0);
    assert_true(cli_tab_get(&t, "patrols", "gaoguan", "total", &v));
    assert_int_equal(v.num, 3);
    assert_false(cli_tab_get(&t, "patrols", "bashan", "total", &v));
    cli_tab_free(&t);
    cli_result_free(&r);
    const char *watch[] = {"watch", "--json", "--all", "--duration", "1.5", NULL};
    run_tally(f, &r, watch);
    expect_run(&r, 0, "\"scope\":\"gaoguan\"", NULL);
    cli_result_free(&r);

    /* A township key reads nothing; an unknown key hears nothing. */
    const char *stats[] = {"stats", "--cert", gcert, NULL};
    run_tally(f, &r, stats);
    expect_run(&r, 1, NULL, "subscriber key");
    cli_result_free(&r);
    const char *stranger[] = {"get", "--cert", xcert, "--timeout", "1", NULL};
    run_tally(f, &r, stranger);
    expect_run(&r, 3, NULL, "does not admit the key");
    cli_result_free(&r);
    unsetenv("TALLY_SERVER_KEY");
    unsetenv("TALLY_CERT");

    /* Usage errors: half the keys, or keys that are not keys. */
    const char *half[] = {"get", "--cert", scert, NULL};
    run_tally(f, &r, half);
    expect_run(&r, 2, NULL, "--server-key");
    cli_result_free(&r);
    const char *nokey[] = {"--server-key", "no/such/file", "--cert", scert, "stats", NULL};
    run_tally(f, &r, nokey);
    expect_run(&r, 2, NULL, "no/such/file: cannot open");
    cli_result_free(&r);
    const char *pubonly[] = {"stats", "--server-key", server, "--cert", server, NULL};
    run_tally(f, &r, pubonly);
    expect_run(&r, 2, NULL, "holds no secret-key");
    cli_result_free(&r);
    /* Plaintext against the secured daemon: no answer. */
    const char *plain[] = {"stats", "--timeout", "1", NULL};
    run_tally(f, &r, plain);
    expect_run(&r, 3, NULL, "no answer");
    cli_result_free(&r);
    assert_int_equal(total(f, "gaoguan"), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cli_with_keys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
