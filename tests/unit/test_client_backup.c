/* Unit tests of a backup asked for by an operator (BACKUP_REQ, PROTOCOL.md
 * 8.26): libtally's tally_backup_req, and the `tally backup` command that
 * prints its answer, against a scripted daemon (client_fake_daemon.h) that
 * answers BACKUP (after a BACKUP and an ERROR for another request, which
 * must be passed over), ERROR UNAVAILABLE, FORBIDDEN or BUSY, only for
 * another request, or as a daemon from before BACKUP_REQ (UNKNOWN_TYPE
 * with req_id 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "client_fake_daemon.h"

#ifndef TALLY_CLI
#error "TALLY_CLI must name the tally executable"
#endif

#define PATH        "/var/lib/tallyd/backups/backup-20261206T231500Z"
#define NO_SPACE    "cannot copy history.db to /var/lib/tallyd/backups/.partial: No space left"
#define OTHER_ID(q) ((q) + 1000)

enum mode { WRITTEN, UNAVAIL, FORBID, BUSY, OLD, ELSEWHERE };

typedef struct fake {
    fake_daemon_t d;
    volatile enum mode mode; /* changed between requests */
    const char *path;        /* the BACKUP's path */
    uint32_t files;
    volatile uint64_t bytes;
    volatile int backup_reqs; /* what it was asked */
    /* a command's results (run) */
    int status;
    char out[4096], err[4096];
} fake_t;

static void send_backup(fake_t *f, uint64_t req_id, const char *path)
{
    proto_msg_t m = {.type = PROTO_BACKUP};
    m.u.backup.req_id = req_id;
    m.u.backup.path = proto_str(path);
    m.u.backup.files = f->files;
    m.u.backup.bytes = f->bytes;
    m.u.backup.ms = 127;
    fake_daemon_send(&f->d, &m);
}

static bool answer(fake_daemon_t *d, const proto_msg_t *q)
{
    fake_t *f = d->ctx;
    if (q->type != PROTO_BACKUP_REQ || f->mode == OLD)
        return false;
    f->backup_reqs++;
    uint64_t req_id = q->u.backup_req.req_id;
    switch (f->mode) {
    case WRITTEN:
        /* Answers to some other request come first: passed over. */
        send_backup(f, OTHER_ID(req_id), "/elsewhere/backup-19700101T000000Z");
        fake_daemon_error(d, OTHER_ID(req_id), TALLY_EUNAVAIL, "", "not this one");
        send_backup(f, req_id, f->path);
        break;
    case UNAVAIL:
        fake_daemon_error(d, req_id, TALLY_EUNAVAIL, "", NO_SPACE);
        break;
    case FORBID:
        fake_daemon_error(d, req_id, TALLY_EFORBIDDEN, "",
                          "this key is a subscriber's, which may not ask for backups; use an "
                          "admin key");
        break;
    case BUSY:
        fake_daemon_error(d, req_id, TALLY_EBUSY, "", "16 requests already wait for a backup");
        break;
    case ELSEWHERE:
        send_backup(f, OTHER_ID(req_id), f->path);
        break;
    case OLD:
        break;
    }
    return true;
}

static int setup(void **state)
{
    fake_t *f = calloc(1, sizeof *f);
    if (f == NULL || fake_daemon_open(&f->d, "backup") != 0)
        return -1;
    f->d.ctx = f;
    f->path = PATH;
    f->files = 5;
    f->bytes = 45200000;
    *state = f;
    return 0;
}

static void start(fake_t *f, enum mode mode)
{
    f->mode = mode;
    fake_daemon_start(&f->d, answer);
}

static int teardown(void **state)
{
    fake_t *f = *state;
    int rc = fake_daemon_close(&f->d);
    free(f);
    return rc;
}

/* tally_backup_req at the fake daemon with a 5 s timeout. */
static int ask(fake_t *f, tally_backup_info_t *out, char *err, size_t errlen)
{
    tally_request_t req = {.timeout_ms = 5000, .errbuf = err, .errbuf_len = errlen};
    return tally_backup_req(f->d.ep, &req, out);
}

/* ---- libtally ---- */

static void test_written(void **state)
{
    fake_t *f = *state;
    start(f, WRITTEN);
    tally_backup_info_t b;
    char err[256];
    assert_int_equal(ask(f, &b, err, sizeof err), 0);
    assert_string_equal(b.path, PATH);
    assert_int_equal(b.files, 5);
    assert_int_equal(b.bytes, 45200000);
    assert_int_equal(b.ms, 127);
    assert_string_equal(err, "");
    assert_int_equal(f->backup_reqs, 1);
}

static void test_longest_path(void **state)
{
    fake_t *f = *state;
    char path[PROTO_PATH_MAX + 1];
    memset(path, 'b', PROTO_PATH_MAX);
    path[0] = '/';
    path[PROTO_PATH_MAX] = '\0';
    f->path = path;
    start(f, WRITTEN);
    tally_backup_info_t b;
    char err[256];
    assert_int_equal(ask(f, &b, err, sizeof err), 0);
    assert_int_equal(strlen(b.path), TALLY_PATH_MAX); /* whole, and NUL-terminated */
    assert_string_equal(b.path, path);
    fake_daemon_stop(&f->d); /* path goes out of scope */
}

/* The daemon's refusals: their codes, and its words in errbuf. */
static void test_refused(void **state)
{
    fake_t *f = *state;
    static const struct {
        enum mode mode;
        int code;
        const char *words;
    } cases[] = {
        {UNAVAIL, TALLY_EUNAVAIL, NO_SPACE},
        {FORBID, TALLY_EFORBIDDEN, "which may not ask for backups; use an admin key"},
        {BUSY, TALLY_EBUSY, "16 requests already wait for a backup"},
    };
    start(f, WRITTEN);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->mode = cases[i].mode;
        tally_backup_info_t b;
        char err[256];
        assert_int_equal(ask(f, &b, err, sizeof err), cases[i].code);
        assert_non_null(strstr(err, cases[i].words));
    }
}

static void test_old_daemon(void **state)
{
    fake_t *f = *state;
    start(f, OLD);
    tally_backup_info_t b;
    assert_int_equal(tally_backup_req(f->d.ep, NULL, &b), TALLY_ETYPE);
    assert_int_equal(f->backup_reqs, 0);
}

/* Only an answer to another request comes: no answer in time. */
static void test_other_request(void **state)
{
    fake_t *f = *state;
    start(f, ELSEWHERE);
    tally_backup_info_t b;
    char err[256];
    tally_request_t req = {.timeout_ms = 300, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(tally_backup_req(f->d.ep, &req, &b), TALLY_ETIMEDOUT);
    assert_int_equal(req.link, TALLY_LINK_UP);
    assert_string_equal(err, "no answer in time");
    assert_string_equal(b.path, "");
}

static void test_no_out(void **state)
{
    fake_t *f = *state;
    char err[256];
    tally_request_t req = {.timeout_ms = 5000, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(tally_backup_req(f->d.ep, &req, NULL), TALLY_EINVAL);
    assert_string_equal(err, "nowhere to put the backup's path");
}

/* Nothing listens: refused connections end the wait early. */
static void test_no_daemon(void **state)
{
    fake_t *f = *state;
    tally_backup_info_t b;
    char err[256];
    tally_request_t req = {
        .timeout_ms = 5000, .errbuf = err, .errbuf_len = sizeof err, .refused_ms = 300};
    assert_int_equal(tally_backup_req("tcp://127.0.0.1:1", &req, &b), TALLY_ETIMEDOUT);
    assert_int_equal(req.link, TALLY_LINK_NO_CONNECTION);
    assert_non_null(strstr(err, "nothing accepts connections there"));
    (void)f;
}

/* ---- the tally command ---- */

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

/* Run `tally --server EP backup ARGS` (args: one shell word each, no
 * quoting needed); fills f->status, f->out and f->err. */
static void run(fake_t *f, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "env -u TALLY_SERVER -u TALLY_SERVER_KEY -u TALLY_CERT %s --server %s backup %s "
             "</dev/null >%s/out 2>%s/err",
             TALLY_CLI, f->d.ep, args, f->d.dir, f->d.dir);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    f->status = WEXITSTATUS(st);
    snprintf(cmd, sizeof cmd, "%s/out", f->d.dir);
    slurp(cmd, f->out, sizeof f->out);
    snprintf(cmd, sizeof cmd, "%s/err", f->d.dir);
    slurp(cmd, f->err, sizeof f->err);
}

static void test_cli_written(void **state)
{
    fake_t *f = *state;
    start(f, WRITTEN);
    run(f, "");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "backup written: " PATH " (5 files, 45.2 MB, 127 ms)\n");
    assert_string_equal(f->err, "");
    run(f, "--json --timeout 5");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out,
                        "{\"path\":\"" PATH "\",\"files\":5,\"bytes\":45200000,\"ms\":127}\n");
}

/* Sizes as people read them, and a path the daemon could send only the
 * name of. */
static void test_cli_sizes(void **state)
{
    fake_t *f = *state;
    static const struct {
        uint64_t bytes;
        const char *text;
    } sizes[] = {
        {0, "0 B"},
        {999, "999 B"},
        {1000, "1.0 kB"},
        {999949, "999.9 kB"},
        {999999, "1.0 MB"},
        {1500000000, "1.5 GB"},
        {UINT64_MAX, "18446744.1 TB"},
    };
    f->files = 1;
    f->path = "backup-20261206T231500Z";
    start(f, WRITTEN);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        f->bytes = sizes[i].bytes;
        run(f, "");
        assert_int_equal(f->status, 0);
        char want[256];
        snprintf(want, sizeof want,
                 "backup written: backup-20261206T231500Z in tallyd's [backup] dir (1 file, %s, "
                 "127 ms)\n",
                 sizes[i].text);
        assert_string_equal(f->out, want);
    }
}

/* Each refusal: status 1 and a line saying what to do. */
static void test_cli_refused(void **state)
{
    fake_t *f = *state;
    static const struct {
        enum mode mode;
        const char *says;
    } cases[] = {
        {UNAVAIL, ": " NO_SPACE "\n"},
        {FORBID, "admin key only: give --cert the secret certificate of a key in its [security] "
                 "admin_keys (tallyd.conf(5))\n"},
        {BUSY, "has too many backup requests waiting already; try again once they are done\n"},
        {OLD, "predates `tally backup`; send it SIGUSR1 instead (tallyd(8), BACKUP)\n"},
    };
    start(f, WRITTEN);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->mode = cases[i].mode;
        run(f, "");
        assert_int_equal(f->status, 1);
        assert_string_equal(f->out, "");
        assert_non_null(strstr(f->err, cases[i].says));
    }
}

static void test_cli_no_answer(void **state)
{
    fake_t *f = *state;
    start(f, ELSEWHERE);
    run(f, "--timeout 0.3");
    assert_int_equal(f->status, 3);
    assert_non_null(strstr(f->err, "no answer from tallyd at "));
    assert_non_null(strstr(f->err, "within 0.3 s"));
}

static void test_cli_usage(void **state)
{
    fake_t *f = *state;
    run(f, "--bogus");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally backup: unknown option '--bogus'\n"
                                "Try 'tally backup --help' for more information.\n");
    run(f, "extra");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally backup: unexpected argument 'extra'\n"
                                "Try 'tally backup --help' for more information.\n");
    run(f, "--help");
    assert_int_equal(f->status, 0);
    assert_non_null(strstr(f->out, "Usage: tally backup"));
    assert_non_null(strstr(f->out, "(default 120;"));
    assert_int_equal(f->backup_reqs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_longest_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_no_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_usage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
