/* Unit tests of a backup asked for by an operator (BACKUP_REQ, PROTOCOL.md
 * 8.26) and of the list of the backups a daemon keeps (BACKUP_LIST_REQ,
 * 8.28): libtally's tally_backup_req and tally_backup_list_req, and the
 * `tally backup` and `tally backup --list` commands that print their
 * answers, against a scripted daemon (client_backup_fake.h).  For
 * BACKUP_REQ it answers BACKUP (after a BACKUP and an ERROR for another
 * request, which must be passed over), ERROR UNAVAILABLE, FORBIDDEN or
 * BUSY, only for another request, or as a daemon from before BACKUP_REQ
 * (UNKNOWN_TYPE with req_id 0).  For BACKUP_LIST_REQ it answers a list of
 * three (after a list and an ERROR for another request), an empty one
 * from a directory it could not name, the newest of more than it lists,
 * ERROR FORBIDDEN, UNAVAILABLE or BUSY, only for another request, or as a
 * daemon from before BACKUP_LIST_REQ.  The copy of a backup (BACKUP_FETCH,
 * --copy-to, --verify) is test_client_backup_copy.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client_backup_fake.h"

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

/* ---- libtally: the backups kept (BACKUP_LIST_REQ) ---- */

/* tally_backup_list_req at the fake daemon with a 5 s timeout. */
static int ask_list(fake_t *f, tally_backup_list_t *out, char *err, size_t errlen)
{
    tally_request_t req = {.timeout_ms = 5000, .errbuf = err, .errbuf_len = errlen};
    return tally_backup_list_req(f->d.ep, &req, out);
}

static void assert_entry(const tally_backup_entry_t *e, const char *name, uint32_t files,
                         uint64_t bytes, bool checked)
{
    assert_string_equal(e->name, name);
    assert_int_equal(e->files, files);
    assert_int_equal(e->bytes, bytes);
    assert_int_equal(e->checked, checked);
}

/* The list comes back as the daemon sent it, oldest first; the answers
 * to another request before it are passed over. */
static void test_list(void **state)
{
    fake_t *f = *state;
    start(f, WRITTEN);
    tally_backup_list_t l;
    char err[256];
    assert_int_equal(ask_list(f, &l, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(l.dir, LIST_DIR);
    assert_int_equal(l.total, 3);
    assert_int_equal(l.n, 3);
    assert_non_null(l.backups);
    assert_entry(&l.backups[0], "backup-20261205T020000Z", 5, 45200000, true);
    assert_entry(&l.backups[1], "backup-20261206T020000Z", 5, 45300000, true);
    assert_entry(&l.backups[2], BNAME, 4, 44900000, false);
    assert_int_equal(f->list_reqs, 1);
    assert_int_equal(f->backup_reqs, 0);
    tally_backup_list_clear(&l);
    assert_null(l.backups);
    assert_int_equal(l.n, 0);
    assert_string_equal(l.dir, "");
    tally_backup_list_clear(&l); /* twice: nothing to do */
    tally_backup_list_clear(NULL);
}

/* No backup kept, in a directory the daemon could not name. */
static void test_list_empty(void **state)
{
    fake_t *f = *state;
    f->list_dir = "";
    f->list_total = f->list_n = 0;
    start(f, WRITTEN);
    tally_backup_list_t l;
    char err[256];
    assert_int_equal(ask_list(f, &l, err, sizeof err), 0);
    assert_string_equal(l.dir, "");
    assert_int_equal(l.total, 0);
    assert_int_equal(l.n, 0);
    assert_null(l.backups);
    tally_backup_list_clear(&l);
}

/* More backups than a list holds: the newest 1000 of 1200, each whole
 * (the longest names, "-N" of 3 digits), and the longest directory. */
static void test_list_newest(void **state)
{
    fake_t *f = *state;
    char dir[PROTO_PATH_MAX + 1];
    memset(dir, 'd', PROTO_PATH_MAX);
    dir[0] = '/';
    dir[PROTO_PATH_MAX] = '\0';
    f->list_dir = dir;
    for (uint32_t i = 0; i < PROTO_BACKUPS_MAX; i++) {
        if (i == 0)
            snprintf(f->list_names[i], sizeof f->list_names[i], "%s", BNAME);
        else
            snprintf(f->list_names[i], sizeof f->list_names[i], "%s-%u", BNAME, i);
        f->list[i] = (proto_backup_entry_t){proto_str(f->list_names[i]), i + 1,
                                            (uint64_t)i * 1000000007u, i % 2 == 0};
    }
    f->list_total = 1200;
    f->list_n = PROTO_BACKUPS_MAX;
    start(f, WRITTEN);
    tally_backup_list_t l;
    char err[256];
    assert_int_equal(ask_list(f, &l, err, sizeof err), 0);
    assert_int_equal(strlen(l.dir), TALLY_PATH_MAX); /* whole, and NUL-terminated */
    assert_string_equal(l.dir, dir);
    assert_int_equal(l.total, 1200);
    assert_int_equal(l.n, 1000);
    for (uint32_t i = 0; i < l.n; i++)
        assert_entry(&l.backups[i], f->list_names[i], i + 1, (uint64_t)i * 1000000007u, i % 2 == 0);
    assert_string_equal(l.backups[999].name, BNAME "-999");
    tally_backup_list_clear(&l);
    fake_daemon_stop(&f->d); /* dir goes out of scope */
}

/* The daemon's refusals: their codes, its words in errbuf, nothing to
 * free. */
static void test_list_refused(void **state)
{
    fake_t *f = *state;
    static const struct {
        enum mode mode;
        int code;
        const char *words;
    } cases[] = {
        {UNAVAIL, TALLY_EUNAVAIL, LIST_UNREADABLE},
        {FORBID, TALLY_EFORBIDDEN,
         "this key is a subscriber's, which may not list backups; use "
         "an admin key"},
        {BUSY, TALLY_EBUSY, "32 reads of backups are under way"},
        {OLD, TALLY_ETYPE, "type: message type is not a request the daemon answers"},
    };
    start(f, WRITTEN);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->list_mode = cases[i].mode;
        tally_backup_list_t l;
        char err[256];
        assert_int_equal(ask_list(f, &l, err, sizeof err), cases[i].code);
        assert_string_equal(err, cases[i].words);
        assert_null(l.backups);
        assert_int_equal(l.n, 0);
    }
    /* Without a request's options. */
    tally_backup_list_t l;
    assert_int_equal(tally_backup_list_req(f->d.ep, NULL, &l), TALLY_ETYPE);
    assert_int_equal(f->list_reqs, 3);
}

/* Only an answer to another request comes: no answer in time. */
static void test_list_other_request(void **state)
{
    fake_t *f = *state;
    f->list_mode = ELSEWHERE;
    start(f, WRITTEN);
    tally_backup_list_t l;
    char err[256];
    tally_request_t req = {.timeout_ms = 300, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(tally_backup_list_req(f->d.ep, &req, &l), TALLY_ETIMEDOUT);
    assert_int_equal(req.link, TALLY_LINK_UP);
    assert_string_equal(err, "no answer in time");
    assert_null(l.backups);
    assert_int_equal(l.n, 0);
    assert_int_equal(f->list_reqs, 1);
}

static void test_list_no_out(void **state)
{
    fake_t *f = *state;
    char err[256];
    tally_request_t req = {.timeout_ms = 5000, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(tally_backup_list_req(f->d.ep, &req, NULL), TALLY_EINVAL);
    assert_string_equal(err, "nowhere to put the list of backups");
    tally_backup_list_t l;
    assert_int_equal(tally_backup_list_req("nope://x", &req, &l), TALLY_EINVAL);
    assert_null(l.backups);
}

/* ---- the tally command: --list ---- */

#define THREE_TEXT                                                                                 \
    "backup-20261205T020000Z   5 files   45.2 MB   BLAKE2SUMS\n"                                   \
    "backup-20261206T020000Z   5 files   45.3 MB   BLAKE2SUMS\n"                                   \
    "backup-20261206T231500Z   4 files   44.9 MB   no BLAKE2SUMS\n"

static void test_cli_list(void **state)
{
    fake_t *f = *state;
    start(f, WRITTEN);
    run(f, "--list");
    assert_string_equal(f->err, "");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "tallyd keeps 3 backups in " LIST_DIR ":\n" THREE_TEXT);
    run(f, "--list --json --timeout 5");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out,
                        "{\"dir\":\"" LIST_DIR "\",\"total\":3,\"backups\":["
                        "{\"name\":\"backup-20261205T020000Z\",\"files\":5,\"bytes\":45200000,"
                        "\"checked\":true},"
                        "{\"name\":\"backup-20261206T020000Z\",\"files\":5,\"bytes\":45300000,"
                        "\"checked\":true},"
                        "{\"name\":\"" BNAME "\",\"files\":4,\"bytes\":44900000,"
                        "\"checked\":false}]}\n");
    assert_int_equal(f->list_reqs, 2);
    assert_int_equal(f->backup_reqs, 0);
    assert_int_equal(f->fetches, 0);
}

static void test_cli_list_empty(void **state)
{
    fake_t *f = *state;
    f->list_dir = "";
    f->list_total = f->list_n = 0;
    start(f, WRITTEN);
    run(f, "--list");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "tallyd keeps no backup in its [backup] dir\n");
    run(f, "--list --json");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "{\"dir\":\"\",\"total\":0,\"backups\":[]}\n");
    /* One backup, in a directory it names. */
    f->list_dir = LIST_DIR;
    f->list_total = f->list_n = 1;
    run(f, "--list");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "tallyd keeps 1 backup in " LIST_DIR ":\n"
                                "backup-20261205T020000Z   5 files   45.2 MB   BLAKE2SUMS\n");
}

/* The newest of more than tallyd lists; columns of other widths (a
 * longer name, one file, a size in bytes); a directory holding a control
 * character, escaped. */
static void test_cli_list_newest(void **state)
{
    fake_t *f = *state;
    f->list_dir = "/b\x1b[31m";
    f->list[0] = (proto_backup_entry_t){proto_str("backup-20261205T020000Z-12"), 1, 999, false};
    f->list[1] = (proto_backup_entry_t){proto_str(BNAME), 12, 1500000000, true};
    f->list_total = 1200;
    f->list_n = 2;
    start(f, WRITTEN);
    run(f, "--list");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "the newest 2 of 1200 backups tallyd keeps in /b\\x1b[31m:\n"
                                "backup-20261205T020000Z-12    1 file     999 B   no BLAKE2SUMS\n"
                                "backup-20261206T231500Z      12 files   1.5 GB   BLAKE2SUMS\n");
    run(f, "--list --json");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "{\"dir\":\"/b\\u001b[31m\",\"total\":1200,\"backups\":["
                                "{\"name\":\"backup-20261205T020000Z-12\",\"files\":1,"
                                "\"bytes\":999,\"checked\":false},"
                                "{\"name\":\"" BNAME "\",\"files\":12,\"bytes\":1500000000,"
                                "\"checked\":true}]}\n");
}

/* Each refusal: status 1 and a line saying what to do; no answer:
 * status 3. */
static void test_cli_list_refused(void **state)
{
    fake_t *f = *state;
    static const struct {
        enum mode mode;
        const char *says;
    } cases[] = {
        {UNAVAIL, "tally backup: no list of backups from tallyd at ipc://"},
        {UNAVAIL, ": " LIST_UNREADABLE "\n"},
        {FORBID, "admin key only: give --cert the secret certificate of a key in its [security] "
                 "admin_keys (tallyd.conf(5))\n"},
        {BUSY, "has too many backup requests waiting already; try again once they are done\n"},
        {OLD, "predates `tally backup --list`; look in its [backup] dir on its host\n"},
    };
    start(f, WRITTEN);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->list_mode = cases[i].mode;
        run(f, "--list");
        assert_int_equal(f->status, 1);
        assert_string_equal(f->out, "");
        if (strstr(f->err, cases[i].says) == NULL)
            fail_msg("case %zu: '%s' not in: %s", i, cases[i].says, f->err);
    }
    f->list_mode = ELSEWHERE;
    run(f, "--list --json --timeout 0.3");
    assert_int_equal(f->status, 3);
    assert_string_equal(f->out, "");
    assert_non_null(strstr(f->err, "no answer from tallyd at "));
    assert_non_null(strstr(f->err, "within 0.3 s"));
    assert_int_equal(f->backup_reqs, 0);
}

static void test_cli_list_usage(void **state)
{
    fake_t *f = *state;
    static const char *const with[] = {"--copy-to x", "--name " BNAME " --copy-to x",
                                       "--keep 3 --copy-to x", "--verify x"};
    for (size_t i = 0; i < sizeof with / sizeof with[0]; i++) {
        char args[128];
        snprintf(args, sizeof args, "--list %s", with[i]);
        run(f, args);
        assert_int_equal(f->status, 2);
        assert_string_equal(f->out, "");
        assert_string_equal(f->err, "tally backup: --list shows the backups tallyd keeps: it "
                                    "takes no --copy-to, --name, --keep or --verify\n"
                                    "Try 'tally backup --help' for more information.\n");
    }
    run(f, "--list=yes");
    assert_int_equal(f->status, 2);
    run(f, "--help");
    assert_int_equal(f->status, 0);
    assert_non_null(strstr(f->out, "       tally backup [--json] --list [OPTIONS]\n"));
    assert_non_null(strstr(f->out, "--list shows the backups tallyd keeps, oldest first: the "
                                   "names --name takes.\n"));
    assert_non_null(strstr(f->out, "      --list         list the backups tallyd keeps"));
    assert_non_null(strstr(f->out, "Exit status: 0 written (and copied) or listed, "));
    assert_int_equal(f->list_reqs, 0);
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
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_other_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_no_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_list_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_list_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_list_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_list_usage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
