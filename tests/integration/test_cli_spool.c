/* Integration tests of spooled submissions against the real tallyd:
 * `tally push --spool` while the daemon is down, then delivered exactly
 * once when it is up; and a libtally publisher SIGKILLed while pushing,
 * restarted on the same spool, delivering the rest exactly once.
 *
 * The killed publisher is this executable run again with --pusher (see
 * pusher_main), so that it is a separate process with nothing of the
 * test's state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_support.h"
#include "harness.h"
#include "tally.h"

typedef struct fx {
    harness_t h;
    cli_tab_t t;
    bool mounted; /* a tmpfs on mount_point (test_refused_disk_full, test_spool_disk_full) */
    char mount_point[HARNESS_PATH_MAX];
} fx_t;

static char self_exe[HARNESS_PATH_MAX];

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0)
        return -1;
    cli_tab_init(&f->t);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = harness_finish(&f->h) == 0 ? 0 : -1;
    if (f->mounted && umount2(f->mount_point, MNT_DETACH) != 0)
        fprintf(stderr, "umount %s: %s\n", f->mount_point, strerror(errno));
    cli_tab_free(&f->t);
    harness_cleanup(&f->h);
    free(f);
    return rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static cli_result_t run_expect(fx_t *f, int status, const char *const *args)
{
    return cli_expect(&f->h, status, args);
}

static void get_tab(fx_t *f, const char *const *extra)
{
    char err[2048];
    if (cli_get_tab(f->h.dir, f->h.req_endpoint, extra, &f->t, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static int64_t stat_value(fx_t *f, const char *name)
{
    char err[1024];
    int64_t v = -1;
    if (cli_stat(f->h.dir, f->h.req_endpoint, name, &v, err, sizeof err) != 0)
        fail_msg("%s", err);
    return v;
}

static int64_t total_of(fx_t *f, const char *metric, const char *scope)
{
    cli_val_t v;
    if (!cli_tab_get(&f->t, metric, scope, "total", &v))
        fail_msg("no tally %s/%s with a total", metric, scope);
    if (!v.present || v.den != 1)
        fail_msg("%s/%s total has no integer value", metric, scope);
    return v.num;
}

/* 2. Spool while the daemon is down, deliver when it is up. */
static void test_spool_daemon_down(void **state)
{
    fx_t *f = *state;
    char spool[HARNESS_PATH_MAX];
    snprintf(spool, sizeof spool, "%s/spool", f->h.dir);
    static const char *const values[] = {"m=5", "m=7", "m=11"};
    char kept[HARNESS_PATH_MAX + 64];
    snprintf(kept, sizeof kept, "kept in %s for the next run", spool);
    /* No daemon: each push waits 1 s, exits 3 and keeps its figures (and
     * those of the earlier runs) in the spool. */
    for (int i = 0; i < 3; i++) {
        const char *push[] = {"push",      "--town", "t2",      "--spool", spool,
                              "--timeout", "1",      values[i], NULL};
        cli_result_t r = run_expect(f, 3, push);
        char count[64];
        snprintf(count, sizeof count, "%d submission%s (%d sample%s) kept", i + 1, i ? "s" : "",
                 i + 1, i ? "s" : "");
        if (strstr(r.err, kept) == NULL || strstr(r.err, count) == NULL)
            fail_msg("push %d: stderr should say '%s ... %s': %s", i + 1, count, kept, r.err);
        assert_string_equal(r.out, "");
        cli_result_free(&r);
        assert_int_equal(cli_count_files(spool, ".sub"), i + 1);
    }

    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    /* --flush delivers the spool alone, without --town: each spooled
     * submission names its township. */
    const char *flush[] = {"push", "--spool", spool, "--flush", "--timeout", "10", NULL};
    cli_result_t r = run_expect(f, 0, flush);
    char want[2 * HARNESS_PATH_MAX];
    snprintf(want, sizeof want,
             "delivered 3 submissions (3 samples) left in %s by an earlier run\n", spool);
    assert_string_equal(r.out, want);
    assert_string_equal(r.err, "");
    cli_result_free(&r);
    assert_int_equal(cli_count_files(spool, ".sub"), 0);
    assert_int_equal(cli_count_files(spool, ".tmp"), 0);
    r = run_expect(f, 0, flush);
    snprintf(want, sizeof want, "nothing left in %s to deliver\n", spool);
    assert_string_equal(r.out, want);
    cli_result_free(&r);
    /* The next push continues the spool's sequence. */
    const char *marker[] = {"push",      "--town", "t2",       "--spool", spool,
                            "--timeout", "10",     "marker=1", NULL};
    r = run_expect(f, 0, marker);
    assert_string_equal(r.out, "accepted 1 sample for t2 (seq 4..4)\n");
    cli_result_free(&r);

    get_tab(f, (const char *const[]){"--all", NULL});
    assert_int_equal(total_of(f, "m", "county"), 5 + 7 + 11);
    assert_int_equal(total_of(f, "m", "t2"), 5 + 7 + 11);
    assert_int_equal(total_of(f, "marker", "t2"), 1);
    assert_int_equal(stat_value(f, "tallyd_submissions_accepted_total"), 4);

    /* Nothing is delivered twice by later runs on the same spool, also
     * across a daemon restart (the journal keeps the de-duplication
     * state). */
    int stop_status = -1;
    assert_int_equal(harness_restart(&f->h, &stop_status), 0);
    assert_int_equal(stop_status, 0);
    const char *again[] = {"push", "--town", "t2", "--spool", spool, "m=100", NULL};
    r = run_expect(f, 0, again);
    assert_string_equal(r.out, "accepted 1 sample for t2 (seq 5..5)\n");
    cli_result_free(&r);
    get_tab(f, NULL);
    assert_int_equal(total_of(f, "m", "county"), 5 + 7 + 11 + 100);
    assert_int_equal(total_of(f, "marker", "county"), 1);

    /* A --time without an offset while tallyd is down is read in the zone
     * tallyd gave an earlier push (kept in the spool), not in UTC: 23:30
     * on 31 December in Asia/Shanghai, which UTC would make 1 January. */
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    const char *late[] = {"push",   "--town",           "t2",        "--spool", spool,
                          "--time", "2023-12-31 23:30", "--timeout", "1",       "m=1000",
                          NULL};
    r = run_expect(f, 3, late);
    if (strstr(r.err, "is read in Asia/Shanghai (UTC+8:00 then), the zone it last gave") == NULL)
        fail_msg("push --time with tallyd down: %s", r.err);
    cli_result_free(&r);
    /* The offset said is that of the time in that zone: a zone kept in
     * winter (Europe/Berlin, UTC+1) reads a summer time at UTC+2 (it said
     * the kept +1:00 while reading it at +2:00).  Checked on a copy of the
     * spool, so that nothing of this one is sent twice. */
    char summer[HARNESS_PATH_MAX], zone_file[HARNESS_PATH_MAX + 32];
    snprintf(summer, sizeof summer, "%s/summer", f->h.dir);
    assert_int_equal(mkdir(summer, 0700), 0);
    snprintf(zone_file, sizeof zone_file, "%s/daemon-zone", summer);
    FILE *zf = fopen(zone_file, "w");
    assert_non_null(zf);
    fprintf(zf, "# tally zone of %s\nEurope/Berlin\t3600\n", f->h.req_endpoint);
    fclose(zf);
    const char *in_summer[] = {"push",   "--town",           "t2",        "--spool", summer,
                               "--time", "2024-06-30 23:30", "--timeout", "1",       "m=1",
                               NULL};
    r = run_expect(f, 3, in_summer);
    if (strstr(r.err, "is read in Europe/Berlin (UTC+2:00 then), the zone it last gave") == NULL)
        fail_msg("push --time in summer with tallyd down: %s", r.err);
    cli_result_free(&r);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    r = run_expect(f, 0, flush);
    cli_result_free(&r);
    r = run_expect(
        f, 0, (const char *const[]){"get", "--period", "2023-12-31", "-m", "m", "--json", NULL});
    if (strstr(r.out,
               "\"scope\":\"county\",\"kind\":\"counter\",\"values\":{\"2023-12-31\":1000}") ==
        NULL)
        fail_msg("the figure pushed at 2023-12-31 23:30 (Asia/Shanghai) is not on that day: %s",
                 r.out);
    cli_result_free(&r);
}

/* 2b. Names and labels while the daemon is down.  tallyd refuses a label
 * in place of an id, so figures spooled under 高观镇 or
 * 法治理论考试参考人数 would be refused at their delivery: push reads
 * them with the catalog it kept from an earlier push, and refuses a name
 * it cannot read, before anything is spooled. */
static const char names_conf[] = "[township gaoguan]\nname = 高观镇\n"
                                 "[township gaoyan]\nname = 高燕镇\n"
                                 "[metric law_exam.takers]\nkind = counter\n"
                                 "label = 法治理论考试参考人数\n";

static void test_spool_names(void **state)
{
    fx_t *f = *state;
    char spool[HARNESS_PATH_MAX], kept[HARNESS_PATH_MAX + 32];
    snprintf(spool, sizeof spool, "%s/spool", f->h.dir);
    snprintf(kept, sizeof kept, "%s/catalog-names", spool);
    /* No catalog kept yet: refused, nothing spooled. */
    const char *first[] = {"push", "--town",    "高观镇", "--spool",
                           spool,  "--timeout", "5",      "法治理论考试参考人数=1",
                           NULL};
    cli_result_t r = run_expect(f, 3, first);
    if (strstr(r.err, "'高观镇' may be a name or label rather than an id") == NULL ||
        strstr(r.err, "nothing was sent or spooled") == NULL)
        fail_msg("a push of names with no daemon and no catalog kept: %s", r.err);
    cli_result_free(&r);
    assert_int_equal(cli_count_files(spool, ".sub"), 0);

    /* The daemon up: the push reads the catalog and keeps its names. */
    assert_int_equal(harness_start(&f->h, names_conf, NULL), 0);
    const char *up[] = {"push", "--town",    "高观镇", "--spool",
                        spool,  "--timeout", "10",     "法治理论考试参考人数=2",
                        NULL};
    r = run_expect(f, 0, up);
    assert_string_equal(r.out, "accepted 1 sample for gaoguan (seq 1..1)\n");
    cli_result_free(&r);
    char *file = harness_read_file(kept);
    assert_non_null(file);
    if (strstr(file, "\nT\tgaoguan\t高观镇\n") == NULL ||
        strstr(file, "\nM\tlaw_exam.takers\t法治理论考试参考人数\t0\n") == NULL)
        fail_msg("%s: %s", kept, file);
    free(file);

    /* Down again: names read with the kept catalog, figures spooled under
     * the ids, and delivered (not refused) once the daemon is back. */
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    const char *down[] = {"push", "--town",    "高燕镇", "--spool",
                          spool,  "--timeout", "5",      "法治理论考试参考人数=3",
                          NULL};
    r = run_expect(f, 3, down);
    if (strstr(r.err, "'高燕镇' = gaoyan, '法治理论考试参考人数' = law_exam.takers") == NULL ||
        strstr(r.err, "1 submission (1 sample) kept in") == NULL)
        fail_msg("a push of names with the daemon down: %s", r.err);
    cli_result_free(&r);
    /* A name the kept catalog does not know: refused, not spooled. */
    const char *unknown[] = {"push",      "--town", "高观镇",   "--spool", spool,
                             "--timeout", "5",      "某指标=4", NULL};
    r = run_expect(f, 3, unknown);
    if (strstr(r.err, "'某指标' may be a name or label rather than an id") == NULL)
        fail_msg("an unknown name with the daemon down: %s", r.err);
    cli_result_free(&r);
    assert_int_equal(cli_count_files(spool, ".sub"), 1);

    assert_int_equal(harness_start(&f->h, names_conf, NULL), 0);
    const char *flush[] = {"push", "--spool", spool, "--flush", "--timeout", "10", NULL};
    r = run_expect(f, 0, flush);
    char want[2 * HARNESS_PATH_MAX];
    snprintf(want, sizeof want, "delivered 1 submission (1 sample) left in %s by an earlier run\n",
             spool);
    assert_string_equal(r.out, want);
    cli_result_free(&r);
    get_tab(f, (const char *const[]){"--all", NULL});
    assert_int_equal(total_of(f, "law_exam.takers", "gaoyan"), 3);
    assert_int_equal(total_of(f, "law_exam.takers", "county"), 5);
}

/* 1. Every `tally push` of a user without --spool shares one client id
 * (the daemon keeps every id it sees for weeks), also when several run
 * at once: each waits for the others' lock, and none reuses a seq. */
static void test_one_client_id(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    enum { N = 4 };
    pid_t pid[N];
    char out[N][HARNESS_PATH_MAX + 16], err[N][HARNESS_PATH_MAX + 16], value[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(out[i], sizeof out[i], "%s/p%d.out", f->h.dir, i);
        snprintf(err[i], sizeof err[i], "%s/p%d.err", f->h.dir, i);
        snprintf(value[i], sizeof value[i], "m=%d", 1 << i);
        const char *push[] = {"push", "--town", "t1", value[i], NULL};
        pid[i] = cli_spawn(f->h.req_endpoint, push, out[i], err[i]);
        assert_true(pid[i] > 0);
    }
    for (int i = 0; i < N; i++) {
        int st = cli_wait(pid[i], 30000);
        if (st != 0) {
            char *e = harness_read_file(err[i]);
            fail_msg("concurrent push %d exited with %d: %s", i, st, e ? e : "");
        }
    }
    const char *later[] = {"push", "--town", "t1b", "m=16", NULL};
    cli_result_t r = run_expect(f, 0, later);
    assert_string_equal(r.out, "accepted 1 sample for t1b (seq 5..5)\n");
    cli_result_free(&r);
    get_tab(f, NULL);
    assert_int_equal(total_of(f, "m", "county"), 31);
    assert_int_equal(stat_value(f, "tallyd_submissions_accepted_total"), N + 1);
    assert_int_equal(stat_value(f, "tallyd_clients"), 1);
}

/* Replace the value of key in the state file path. */
static void set_state(const char *path, const char *key, int64_t value)
{
    char *text = harness_read_file(path);
    if (text == NULL)
        fail_msg("cannot read %s", path);
    char out[1024] = "", pat[64];
    snprintf(pat, sizeof pat, "%s=", key);
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"))
        if (strncmp(line, pat, strlen(pat)) != 0)
            snprintf(out + strlen(out), sizeof out - strlen(out), "%s\n", line);
    snprintf(out + strlen(out), sizeof out - strlen(out), "%s%" PRId64 "\n", pat, value);
    free(text);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(out, fp);
    fclose(fp);
}

/* 3. The spool's client id has not been acknowledged for longer than the
 * daemon remembers ids: what it still holds may or may not have been
 * counted.  It is set aside in SPOOL/unknown/ (with its figures as CSV),
 * named with what to do, never resent by itself (status 5), and the
 * command printed resends it deliberately. */
static void test_unknown_fate(void **state)
{
    fx_t *f = *state;
    char spool[HARNESS_PATH_MAX], unknown[HARNESS_PATH_MAX + 16], st[HARNESS_PATH_MAX + 16];
    snprintf(spool, sizeof spool, "%s/spool", f->h.dir);
    snprintf(unknown, sizeof unknown, "%s/unknown", spool);
    snprintf(st, sizeof st, "%s/client.state", spool);
    const char *down[] = {"push",      "--town", "t3",  "--spool", spool,
                          "--timeout", "0.5",    "m=5", NULL};
    cli_result_t r = run_expect(f, 3, down);
    cli_result_free(&r);
    const int64_t day = 86400000;
    set_state(st, "acked_ms", harness_now_ms() - 31 * day);
    set_state(st, "client_expiry_ms", 30 * day);

    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    const char *push[] = {"push", "--town", "t3", "--spool", spool, "n=1", NULL};
    r = run_expect(f, 5, push);
    assert_string_equal(r.out, "accepted 1 sample for t3 (seq 1..1)\n");
    if (strstr(r.err, "warning: 1 earlier submission (1 sample) may or may not have been "
                      "counted") == NULL ||
        strstr(r.err, "will\n  not send it again") == NULL || strstr(r.err, unknown) == NULL ||
        strstr(r.err, "tally get --town t3") == NULL)
        fail_msg("stderr should warn of 1 submission of unknown fate in %s: %s", unknown, r.err);
    assert_int_equal(cli_count_files(spool, ".sub"), 0);
    assert_int_equal(cli_count_files(unknown, ".sub"), 1);
    assert_int_equal(cli_count_files(unknown, ".csv"), 1);
    get_tab(f, NULL);
    assert_null(cli_tab_find(&f->t, "m", "county")); /* never counted, never resent */
    assert_int_equal(total_of(f, "n", "county"), 1);

    /* The command it prints resends it, deliberately. */
    const char *cmd = strstr(r.err, "    tally push ");
    assert_non_null(cmd);
    char line[2 * HARNESS_PATH_MAX];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(cmd + 10, "\n"), cmd + 10);
    const char *argv[16];
    int n = 0;
    for (char *tok = strtok(line, " "); tok != NULL && n < 15; tok = strtok(NULL, " "))
        argv[n++] = tok;
    argv[n] = NULL;
    assert_string_equal(argv[0], "push");
    cli_result_free(&r);
    r = run_expect(f, 0, argv);
    cli_result_free(&r);
    get_tab(f, NULL);
    assert_int_equal(total_of(f, "m", "county"), 5);
    /* Not set aside again: the new id is fresh. */
    r = run_expect(f, 0, push);
    cli_result_free(&r);
    assert_int_equal(cli_count_files(unknown, ".sub"), 1);
}

/* 3b. tallyd answers every attempt of a push and refuses it for now
 * (RATE_LIMITED: 1 sample a second, a bucket of 5, left 5 in debt by a
 * push of 10).  The push says what tallyd said and what became of the
 * figures, not that tallyd did not answer.  Without --spool: refused
 * submissions are not counted, but tally keeps no copy, so check before
 * pushing again.  With --spool: they stay there, and the next push on it
 * delivers them once tallyd takes them, counted once. */
static const char rate_conf[] = "[limits]\nrate = 1\nburst = 5\n";

static void test_refused_for_now(void **state)
{
    fx_t *f = *state;
    char spool[HARNESS_PATH_MAX], want[4 * HARNESS_PATH_MAX];
    snprintf(spool, sizeof spool, "%s/spool", f->h.dir);
    assert_int_equal(harness_start(&f->h, rate_conf, NULL), 0);
    const char *first[] = {"push", "--town", "t5",   "m0=1", "m1=1", "m2=1", "m3=1",
                           "m4=1", "m5=1",   "m6=1", "m7=1", "m8=1", "m9=1", NULL};
    cli_result_t r = run_expect(f, 0, first);
    int64_t debt_since = harness_mono_ms(); /* the bucket is full 10 s after */
    cli_result_free(&r);

    const char *plain[] = {"push", "--town", "t5",   "--timeout", "1.5", "m0=2",
                           "m1=2", "m2=2",   "m3=2", "m4=2",      NULL};
    r = run_expect(f, 3, plain);
    if (strstr(r.err, "no answer") != NULL ||
        strstr(r.err, "refused the 5 samples for now each time it answered") == NULL ||
        strstr(r.err, "it is limiting the township's rate") == NULL ||
        strstr(r.err, "township 't5' exceeds 1 samples/s (burst 5)") == NULL ||
        strstr(r.err, "RATE_LIMITED") == NULL ||
        strstr(r.err, "A refused submission is not counted") == NULL ||
        strstr(r.err, "check with `tally get --town t5` whether they were counted") == NULL ||
        strstr(r.err, "--spool DIR") == NULL)
        fail_msg("a push refused RATE_LIMITED until its timeout, without --spool:\n%s", r.err);
    cli_result_free(&r);

    const char *spooled[] = {"push", "--town", "t5",   "--spool", spool,  "--timeout", "1.5",
                             "n0=3", "n1=3",   "n2=3", "n3=3",    "n4=3", NULL};
    r = run_expect(f, 3, spooled);
    snprintf(want, sizeof want,
             "1 submission (5 samples) kept in %s; the next push with --spool %s sends it again "
             "(or tally push --spool %s --flush), which cannot count it twice",
             spool, spool, spool);
    if (strstr(r.err, "no acknowledgement") != NULL ||
        strstr(r.err, "it is limiting the township's rate") == NULL ||
        strstr(r.err, "RATE_LIMITED") == NULL || strstr(r.err, want) == NULL)
        fail_msg("a push refused RATE_LIMITED until its timeout, with --spool:\n%s\nwanted: %s",
                 r.err, want);
    cli_result_free(&r);
    assert_int_equal(cli_count_files(spool, ".sub"), 1);

    /* tallyd answered each attempt with a refusal, and counted none. */
    assert_true(stat_value(f, "tallyd_rejected_rate_limited_total") >= 2);
    get_tab(f, NULL);
    for (int i = 0; i < 10; i++)
        assert_int_equal(total_of(f, (char[]){'m', (char)('0' + i), '\0'}, "county"), 1);
    assert_null(cli_tab_find(&f->t, "n0", "county"));

    /* Once the bucket has room, the next push on the spool delivers them. */
    int64_t wait = debt_since + 10500 - harness_mono_ms();
    if (wait > 0)
        sleep_ms((int)wait);
    const char *flush[] = {"push", "--spool", spool, "--flush", "--timeout", "10", NULL};
    r = run_expect(f, 0, flush);
    snprintf(want, sizeof want, "delivered 1 submission (5 samples) left in %s by an earlier run\n",
             spool);
    assert_string_equal(r.out, want);
    cli_result_free(&r);
    get_tab(f, NULL);
    for (int i = 0; i < 5; i++)
        assert_int_equal(total_of(f, (char[]){'n', (char)('0' + i), '\0'}, "county"), 3);
    for (int i = 0; i < 10; i++)
        assert_int_equal(total_of(f, (char[]){'m', (char)('0' + i), '\0'}, "county"), 1);
}

/* Fill the file system of path: write until ENOSPC. */
static void fill_disk(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        fail_msg("cannot create %s: %s", path, strerror(errno));
    static char chunk[16384];
    memset(chunk, 0xAB, sizeof chunk);
    ssize_t w;
    while ((w = write(fd, chunk, sizeof chunk)) > 0)
        ;
    int e = errno;
    close(fd);
    if (e != ENOSPC)
        fail_msg("writing %s: %s", path, strerror(e));
}

/* 3c. The same while tallyd cannot write its journal: its state directory
 * on a full 256 KiB tmpfs (mounting needs root: skipped otherwise).  Once
 * a write has failed, tallyd refuses submissions with UNAVAILABLE, which
 * the push says as such, with tallyd's reason; nothing of it is counted,
 * also after the disk has room again. */
static void test_refused_disk_full(void **state)
{
    fx_t *f = *state;
    if (geteuid() != 0) {
        print_message("disk-full push skipped: mounting a tmpfs needs root\n");
        skip();
    }
    if (mkdir(f->h.state_dir, 0750) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", f->h.state_dir, strerror(errno));
    if (mount("tmpfs", f->h.state_dir, "tmpfs", 0, "size=256k,mode=0750") != 0) {
        print_message("disk-full push skipped: cannot mount a tmpfs on %s: %s\n", f->h.state_dir,
                      strerror(errno));
        skip();
    }
    f->mounted = true;
    snprintf(f->mount_point, sizeof f->mount_point, "%s", f->h.state_dir);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    char filler[HARNESS_PATH_MAX + 16];
    snprintf(filler, sizeof filler, "%s/filler", f->h.state_dir);
    fill_disk(filler);
    /* Pushes go through until a journal write fails (each more than the
     * 4 KiB page the journal's file may still have room in): that push
     * waits for the disk (no answer), the ones after it are refused. */
    size_t cap = 600 * 56 + 32, len = 0;
    char *csv = malloc(cap), csv_path[HARNESS_PATH_MAX + 16];
    assert_non_null(csv);
    len += (size_t)snprintf(csv + len, cap - len, "metric,value\n");
    for (int i = 0; i < 600; i++)
        len += (size_t)snprintf(csv + len, cap - len,
                                "a.metric.name.long.enough.to.fill.pages%03d,1\n", i);
    assert_int_equal(harness_write_file(&f->h, "big.csv", csv, csv_path, sizeof csv_path), 0);
    free(csv);
    const char *one[] = {"push", "--town", "t6", "--timeout", "1", "--file", csv_path, NULL};
    int status = 0;
    for (int i = 0; i < 30 && status == 0; i++) {
        cli_result_t r;
        cli_run(f->h.dir, f->h.req_endpoint, one, 30000, &r);
        status = r.status;
        if (status != 0 && (status != 3 || strstr(r.err, "no answer from tallyd") == NULL))
            fail_msg("push %d on a full disk exited with %d:\n%s", i + 1, status, r.err);
        cli_result_free(&r);
    }
    assert_int_equal(status, 3);
    const char *refused[] = {"push", "--town", "t6", "--timeout", "1", "b=1", NULL};
    cli_result_t r = run_expect(f, 3, refused);
    if (strstr(r.err, "no answer") != NULL ||
        strstr(r.err, "refused the 1 sample for now each time it answered") == NULL ||
        strstr(r.err, "it cannot store figures now (the journal cannot be written") == NULL ||
        strstr(r.err, "No space left on device") == NULL || strstr(r.err, "; UNAVAILABLE)") == NULL)
        fail_msg("a push refused UNAVAILABLE on a full disk:\n%s", r.err);
    cli_result_free(&r);
    assert_true(stat_value(f, "tallyd_rejected_unavailable_total") >= 1);

    /* Room again: tallyd writes again by itself; the refused figure was
     * never counted. */
    assert_int_equal(unlink(filler), 0);
    const char *after[] = {"push", "--town", "t6", "--timeout", "20", "c=1", NULL};
    r = run_expect(f, 0, after);
    cli_result_free(&r);
    get_tab(f, NULL);
    assert_null(cli_tab_find(&f->t, "b", "county"));
    assert_int_equal(total_of(f, "c", "county"), 1);
}

/* A tmpfs of size (e.g. "64k") on dir, for this test alone: false (and
 * the test skipped by the caller) when that cannot be had. */
static bool mount_tmpfs(fx_t *f, const char *dir, const char *size)
{
    if (geteuid() != 0) {
        print_message("skipped: mounting a tmpfs needs root\n");
        return false;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", dir, strerror(errno));
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s,mode=0700", size);
    if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0) {
        print_message("skipped: cannot mount a tmpfs on %s: %s\n", dir, strerror(errno));
        return false;
    }
    f->mounted = true;
    snprintf(f->mount_point, sizeof f->mount_point, "%s", dir);
    return true;
}

/* 3d. The spool's disk has room for a submission's file but not for the
 * client state that counts its seq: the push fails (status 4), and the
 * failure is whole: the submission's file is taken out of the spool
 * again, so that the message can say nothing was sent or kept, and the
 * figures pushed again once there is room are counted once, not also
 * delivered from the spool "left by an earlier run". */
static void test_spool_disk_full(void **state)
{
    fx_t *f = *state;
    char spool[HARNESS_PATH_MAX], filler[HARNESS_PATH_MAX + 16];
    snprintf(spool, sizeof spool, "%s/spool", f->h.dir);
    snprintf(filler, sizeof filler, "%s/filler", spool);
    if (!mount_tmpfs(f, spool, "64k"))
        skip();
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    const char *first[] = {"push", "--town", "t8", "--spool", spool, "m=1", NULL};
    cli_result_t r = run_expect(f, 0, first);
    cli_result_free(&r);
    /* Full, then one page free again: the .sub fits, client.state.tmp
     * does not. */
    fill_disk(filler);
    struct stat st;
    assert_int_equal(stat(filler, &st), 0);
    assert_int_equal(truncate(filler, (st.st_size - 1) / 4096 * 4096), 0);
    const char *push[] = {"push", "--town", "t8", "--spool", spool, "m=10", NULL};
    r = run_expect(f, 4, push);
    if (strstr(r.err, "No space left on device") == NULL ||
        strstr(r.err, "nothing of these figures was sent or kept: push them again once there "
                      "is room") == NULL)
        fail_msg("a push whose client.state cannot be written:\n%s", r.err);
    assert_string_equal(r.out, "");
    cli_result_free(&r);
    assert_int_equal(cli_count_files(spool, ".sub"), 0);
    assert_int_equal(cli_count_files(spool, ".tmp"), 0);

    /* Room again: the figures pushed again are the only copy. */
    assert_int_equal(unlink(filler), 0);
    r = run_expect(f, 0, push);
    assert_string_equal(r.out, "accepted 1 sample for t8 (seq 2..2)\n");
    cli_result_free(&r);
    get_tab(f, NULL);
    assert_int_equal(total_of(f, "m", "county"), 11);
    assert_int_equal(stat_value(f, "tallyd_submissions_accepted_total"), 2);

    /* tallyd takes one sample a submission: three figures go as three.
     * Two pages free: the first submission is made whole (its state
     * replaces the old one's page), the second's state does not fit.  The
     * first is delivered and counted, the others neither sent nor kept,
     * and the push says which to push again. */
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_samples = 1\n", NULL), 0);
    fill_disk(filler);
    assert_int_equal(stat(filler, &st), 0);
    assert_int_equal(truncate(filler, ((st.st_size - 1) / 4096 - 1) * 4096), 0);
    const char *three[] = {"push", "--town", "t8", "--spool", spool, "n1=1", "n2=2", "n3=3", NULL};
    r = run_expect(f, 4, three);
    if (strstr(r.err, "No space left on device") == NULL ||
        strstr(r.err, "counted: the 1 figure up to 'n1=1' (pushing it again would count it "
                      "twice); neither sent nor kept: the 2 from 'n2=2' on, which push again once "
                      "there is room, and only them") == NULL)
        fail_msg("a push whose second submission cannot be persisted:\n%s", r.err);
    cli_result_free(&r);
    assert_int_equal(cli_count_files(spool, ".sub"), 0);
    assert_int_equal(unlink(filler), 0);
    const char *rest[] = {"push", "--town", "t8", "--spool", spool, "n2=2", "n3=3", NULL};
    r = run_expect(f, 0, rest);
    cli_result_free(&r);
    get_tab(f, NULL);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(total_of(f, (char[]){'n', (char)('0' + i), '\0'}, "county"), i);
}

/* 3e. Figures spooled while tallyd was down, which tallyd refuses for
 * good when they reach it (its max_samples lowered meanwhile).  Whoever
 * pushed them no longer has them at hand: the submission is moved to
 * SPOOL/rejected/ byte for byte, with its figures as CSV, never sent
 * again, and the push says where and how to push them again.  Standard
 * output of --flush says "nothing left" only of a spool that is empty:
 * not while tallyd is down, not when something was rejected. */
static void test_rejected_earlier(void **state)
{
    fx_t *f = *state;
    char spool[HARNESS_PATH_MAX], rejected[HARNESS_PATH_MAX + 16], sub[HARNESS_PATH_MAX + 32];
    snprintf(spool, sizeof spool, "%s/spool", f->h.dir);
    snprintf(rejected, sizeof rejected, "%s/rejected", spool);
    snprintf(sub, sizeof sub, "%s/00000000000000000001.sub", spool);
    const char *down[] = {"push", "--town", "t7",   "--spool", spool,  "--timeout",
                          "1",    "m1=1",   "m2=1", "m3=1",    "m4=1", NULL};
    cli_result_t r = run_expect(f, 3, down);
    cli_result_free(&r);
    char *bytes = harness_read_file(sub);
    assert_non_null(bytes);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    size_t len = (size_t)st.st_size;

    /* tallyd still down: the spool is not empty, whatever stdout says. */
    const char *flush[] = {"push", "--spool", spool, "--flush", "--timeout", "1", NULL};
    r = run_expect(f, 3, flush);
    if (strstr(r.err, "1 submission (4 samples) kept in") == NULL)
        fail_msg("--flush with tallyd down: %s", r.err);
    assert_string_equal(r.out, "");
    cli_result_free(&r);

    assert_int_equal(harness_start(&f->h, "[limits]\nmax_samples = 3\n", NULL), 0);
    r = run_expect(f, 1, flush);
    if (strstr(r.err, "TOO_MANY_SAMPLES") == NULL ||
        strstr(r.err, "[submission 1 from an earlier run]") == NULL ||
        strstr(r.err, "1 submission (4 samples) left in") == NULL ||
        strstr(r.err, "tally will not send it again") == NULL || strstr(r.err, rejected) == NULL)
        fail_msg("--flush of a submission rejected for good:\n%s", r.err);
    assert_string_equal(r.out, "");
    assert_int_equal(cli_count_files(spool, ".sub"), 0);
    assert_int_equal(cli_count_files(rejected, ".sub"), 1);
    assert_int_equal(cli_count_files(rejected, ".csv"), 1);
    /* Byte for byte what was spooled. */
    char listed[HARNESS_PATH_MAX + 32];
    snprintf(listed, sizeof listed, "\n  %s/", rejected);
    const char *kept = strstr(r.err, listed);
    assert_non_null(kept);
    kept += 3;
    char csv[HARNESS_PATH_MAX + 128], moved[HARNESS_PATH_MAX + 128];
    snprintf(csv, sizeof csv, "%.*s", (int)strcspn(kept, ":"), kept);
    assert_non_null(strstr(csv, ".csv"));
    snprintf(moved, sizeof moved, "%.*s.sub", (int)(strlen(csv) - 4), csv);
    assert_int_equal(stat(moved, &st), 0);
    assert_int_equal((size_t)st.st_size, len);
    char *again = harness_read_file(moved);
    assert_non_null(again);
    assert_memory_equal(again, bytes, len);
    free(again);
    free(bytes);
    char *text = harness_read_file(csv);
    assert_non_null(text);
    assert_string_equal(text, "metric,value\nm1,1\nm2,1\nm3,1\nm4,1\n");
    free(text);

    /* The command it prints pushes them again (now in two submissions). */
    const char *cmd = strstr(r.err, "    tally push ");
    assert_non_null(cmd);
    char line[4 * HARNESS_PATH_MAX];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(cmd + 10, "\n"), cmd + 10);
    const char *argv[16];
    int n = 0;
    for (char *tok = strtok(line, " "); tok != NULL && n < 15; tok = strtok(NULL, " "))
        argv[n++] = tok;
    argv[n] = NULL;
    assert_string_equal(argv[0], "push");
    cli_result_free(&r);
    r = run_expect(f, 0, argv);
    cli_result_free(&r);
    get_tab(f, NULL);
    for (int i = 1; i <= 4; i++)
        assert_int_equal(total_of(f, (char[]){'m', (char)('0' + i), '\0'}, "county"), 1);

    /* Empty now (SPOOL/rejected/ holds nothing to deliver), and said so. */
    r = run_expect(f, 0, flush);
    char want[HARNESS_PATH_MAX + 64];
    snprintf(want, sizeof want, "nothing left in %s to deliver\n", spool);
    assert_string_equal(r.out, want);
    cli_result_free(&r);
    assert_int_equal(cli_count_files(rejected, ".sub"), 1); /* the operator's to delete */
}

/* ---- 4. a publisher killed mid-push ------------------------------------ */

/* Submission seq i carries 2^((i-1) % 60) of metric kill.b<(i-1)/60>: the
 * township's totals then say exactly which submissions were counted (a
 * lost one is a missing bit, a doubled one a carry). */
#define KILL_SUBS   300
#define KILL_BITS   60
#define KILL_GROUPS (KILL_SUBS / KILL_BITS)
#define KILL_ROUNDS 5

typedef struct pusher_counts {
    size_t accepted, duplicate;
} pusher_counts_t;

static void pusher_on_ack(void *ctx, uint64_t seq, int status, uint32_t nsamples)
{
    pusher_counts_t *p = ctx;
    (void)seq;
    (void)nsamples;
    if (status == TALLY_ACK_DUPLICATE)
        p->duplicate++;
    else
        p->accepted++;
}

static void pusher_on_reject(void *ctx, uint64_t seq, int code, int sample, const char *field,
                             const char *message)
{
    (void)ctx;
    (void)sample;
    fprintf(stderr, "pusher: submission %" PRIu64 " rejected: %s: %s (%s)\n", seq, field, message,
            tally_errname(code));
}

static void kill_metric(char *buf, size_t len, int group)
{
    snprintf(buf, len, "kill.b%d", group);
}

/* The publisher: `test_cli_spool --pusher SPOOL TOWN`, server from
 * TALLY_SERVER.  It resumes after the last submission the spool knows of
 * (tally_client_next_seq: the submissions below it have been made, so they
 * are spooled, acknowledged or being delivered), so that a run killed at
 * any point and started again makes submissions 1..KILL_SUBS exactly once.
 * Prints "start next_seq=S pending=P" and, at the end, "done ...". */
static int pusher_main(const char *spool, const char *town)
{
    const char *server = getenv("TALLY_SERVER");
    pusher_counts_t counts = {0};
    char err[512] = "";
    tally_client_opts_t o = {
        .spool_dir = spool,
        .on_ack = pusher_on_ack,
        .on_reject = pusher_on_reject,
        .cb_ctx = &counts,
        .errbuf = err,
        .errbuf_len = sizeof err,
    };
    tally_client_t *c = NULL;
    int rc = tally_client_new(server, town, &o, &c);
    if (rc != 0) {
        fprintf(stderr, "pusher: tally_client_new: %s: %s\n", tally_errname(rc), err);
        return 4;
    }
    uint64_t next = tally_client_next_seq(c);
    printf("start next_seq=%" PRIu64 " pending=%zu\n", next, tally_client_pending(c));
    fflush(stdout);
    for (uint64_t i = next; i <= KILL_SUBS; i++) {
        char metric[32];
        kill_metric(metric, sizeof metric, (int)((i - 1) / KILL_BITS));
        rc = tally_client_add(c, metric, INT64_C(1) << ((i - 1) % KILL_BITS), 0);
        if (rc == 0)
            rc = tally_client_send(c);
        if (rc == 0)
            rc = tally_client_process(c);
        if (rc != 0) {
            fprintf(stderr, "pusher: submission %" PRIu64 ": %s: %s\n", i, tally_errname(rc),
                    tally_client_last_error(c));
            tally_client_destroy(&c);
            return 4;
        }
        if (tally_client_next_seq(c) != i + 1) {
            fprintf(stderr, "pusher: next_seq %" PRIu64 " after submission %" PRIu64 "\n",
                    tally_client_next_seq(c), i);
            tally_client_destroy(&c);
            return 4;
        }
    }
    rc = tally_client_flush(c, 30000);
    size_t pending = tally_client_pending(c);
    printf("done rc=%s accepted=%zu duplicate=%zu pending=%zu\n", tally_errname(rc),
           counts.accepted, counts.duplicate, pending);
    tally_client_destroy(&c);
    return rc == 0 && pending == 0 ? 0 : 3;
}

static pid_t spawn_pusher(fx_t *f, const char *spool, const char *town, const char *out,
                          const char *err)
{
    const char *argv[] = {self_exe, "--pusher", spool, town, NULL};
    pid_t pid = cli_spawn_argv(f->h.req_endpoint, argv, out, err);
    if (pid < 0)
        fail_msg("cannot start %s: %s", self_exe, strerror(errno));
    return pid;
}

/* Wait until the file holds needle (the pusher's first line). */
static void wait_for_text(const char *path, const char *needle, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    for (;;) {
        char *text = harness_read_file(path);
        bool found = text != NULL && strstr(text, needle) != NULL;
        free(text);
        if (found)
            return;
        if (harness_mono_ms() > deadline)
            fail_msg("%s did not show '%s' within %d ms", path, needle, timeout_ms);
        sleep_ms(1);
    }
}

/* The next seq the spool's client.state records (0 while there is none). */
static uint64_t read_state_seq(const char *path)
{
    char *text = harness_read_file(path);
    const char *p = text != NULL ? strstr(text, "\nseq=") : NULL;
    uint64_t v = p != NULL ? strtoull(p + 5, NULL, 10) : 0;
    free(text);
    return v;
}

/* Wait until the spool's client.state seq reaches at least seq (the publisher
 * has made seq - 1 submissions), and return as soon as it does: the file
 * is replaced by rename, which inotify reports at once, so that a kill
 * that follows lands right after that step of the publisher. */
static void wait_for_seq(const char *spool, uint64_t seq, pid_t pid, int timeout_ms)
{
    char seqfile[HARNESS_PATH_MAX + 16];
    snprintf(seqfile, sizeof seqfile, "%s/client.state", spool);
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0 || inotify_add_watch(fd, spool, IN_MOVED_TO | IN_CLOSE_WRITE) < 0)
        fail_msg("inotify on %s: %s", spool, strerror(errno));
    int64_t deadline = harness_mono_ms() + timeout_ms;
    while (read_state_seq(seqfile) < seq) {
        int64_t left = deadline - harness_mono_ms();
        if (left <= 0) {
            close(fd);
            kill(pid, SIGKILL);
            fail_msg("%s did not reach %" PRIu64 " within %d ms", seqfile, seq, timeout_ms);
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, left > 10 ? 10 : (int)left) > 0) {
            char buf[4096];
            while (read(fd, buf, sizeof buf) > 0)
                ; /* the events only wake us: the file says where we are */
        }
    }
    close(fd);
}

/* The seqs of the .sub files in dir, as " 1 2 5" (runs shortened). */
static void list_subs(const char *dir, char *buf, size_t len)
{
    buf[0] = '\0';
    uint64_t run_start = 0, last = 0;
    for (uint64_t seq = 1; seq <= KILL_SUBS + 1; seq++) {
        char path[HARNESS_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/%020" PRIu64 ".sub", dir, seq);
        bool have = seq <= KILL_SUBS && access(path, F_OK) == 0;
        if (have) {
            if (run_start == 0)
                run_start = seq;
            last = seq;
        } else if (run_start != 0) {
            size_t n = strlen(buf);
            if (last == run_start)
                snprintf(buf + n, len - n, " %" PRIu64, run_start);
            else
                snprintf(buf + n, len - n, " %" PRIu64 "-%" PRIu64, run_start, last);
            run_start = 0;
        }
    }
    if (buf[0] == '\0')
        snprintf(buf, len, " none");
}

/* How a round kills the publisher: as soon as client.state's seq reaches
 * kill_at, optionally with the daemon stopped
 * (SIGSTOP) from seq stop_at on, so that submissions pile up
 * unacknowledged; KILL_SUBS + 1 means "every submission made, waiting for
 * acknowledgements". */
typedef struct kill_plan {
    uint64_t kill_at, stop_at;
} kill_plan_t;

/* 4. SIGKILL while pushing, at several points; the restarted publisher
 * delivers the rest, and every submission is counted exactly once.  All
 * rounds run; the failure lists each. */
/* The bit patterns go up to 2^59, above the default largest sample. */
static const char kill_conf[] = "[metric kill.b0]\nkind = counter\nmax = 9223372036854775807\n"
                                "[metric kill.b1]\nkind = counter\nmax = 9223372036854775807\n"
                                "[metric kill.b2]\nkind = counter\nmax = 9223372036854775807\n"
                                "[metric kill.b3]\nkind = counter\nmax = 9223372036854775807\n"
                                "[metric kill.b4]\nkind = counter\nmax = 9223372036854775807\n";

static void test_kill_restart(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, kill_conf, NULL), 0);
    static const kill_plan_t plans[KILL_ROUNDS] = {
        {2, 0},              /* at the first submission */
        {40, 0},             /* early, acknowledgements flowing */
        {170, 0},            /* later */
        {230, 120},          /* with 110 unacknowledged in the spool */
        {KILL_SUBS + 1, 50}, /* all made, 250 unacknowledged */
    };
    const int64_t full = (INT64_C(1) << KILL_BITS) - 1;
    int mid_generation = 0, with_leftovers = 0, wrong = 0;
    int64_t county[KILL_GROUPS] = {0};
    char report[8192] = "";
    for (int round = 0; round < KILL_ROUNDS; round++) {
        const kill_plan_t *plan = &plans[round];
        char town[16], spool[HARNESS_PATH_MAX], out[HARNESS_PATH_MAX], err[HARNESS_PATH_MAX],
            seqfile[HARNESS_PATH_MAX + 16], subs[1024];
        snprintf(town, sizeof town, "kill%d", round);
        snprintf(spool, sizeof spool, "%s/spool-%d", f->h.dir, round);
        snprintf(seqfile, sizeof seqfile, "%s/client.state", spool);
        snprintf(out, sizeof out, "%s/pusher-%d.out", f->h.dir, round);
        snprintf(err, sizeof err, "%s/pusher-%d.err", f->h.dir, round);

        pid_t pid = spawn_pusher(f, spool, town, out, err);
        wait_for_text(out, "start next_seq=1 pending=0\n", 10000);
        bool stopped = false;
        if (plan->stop_at > 0) {
            wait_for_seq(spool, plan->stop_at, pid, 20000);
            assert_int_equal(kill(f->h.pid, SIGSTOP), 0);
            stopped = true;
        }
        wait_for_seq(spool, plan->kill_at, pid, 20000);
        if (plan->kill_at > KILL_SUBS)
            sleep_ms(50); /* into tally_client_flush */
        kill(pid, SIGKILL);
        int st = cli_wait(pid, 10000);
        uint64_t seq_file = read_state_seq(seqfile);
        list_subs(spool, subs, sizeof subs);
        if (stopped)
            assert_int_equal(kill(f->h.pid, SIGCONT), 0);
        char *o = harness_read_file(out);
        if (st != 128 + SIGKILL)
            fail_msg("round %d: the publisher was not killed mid-push (status %d, output %s)",
                     round, st, o ? o : "");
        free(o);

        /* Started again on the same spool, it delivers what is left. */
        pid = spawn_pusher(f, spool, town, out, err);
        st = cli_wait(pid, 60000);
        char *text = harness_read_file(out), *etext = harness_read_file(err);
        if (st != 0)
            fail_msg("round %d: the restarted publisher exited with %d\nstdout: %s\nstderr: %s",
                     round, st, text ? text : "", etext ? etext : "");
        const char *line = text ? strstr(text, "start next_seq=") : NULL;
        line = line ? strstr(line + 1, "start next_seq=") : NULL; /* the second run's */
        unsigned long long next = 0;
        size_t pending = 0;
        if (line == NULL || sscanf(line, "start next_seq=%llu pending=%zu", &next, &pending) != 2)
            fail_msg("round %d: no start line of the second run in: %s", round, text ? text : "");
        const char *done = strstr(line, "done ");
        char done_line[128] = "";
        if (done != NULL)
            snprintf(done_line, sizeof done_line, "%.*s", (int)strcspn(done, "\n"), done);
        free(text);
        free(etext);
        if (next <= KILL_SUBS)
            mid_generation++;
        if (pending > 0)
            with_leftovers++;
        assert_int_equal(cli_count_files(spool, ".sub"), 0);

        /* Which submissions were counted, and how often. */
        get_tab(f, (const char *const[]){"--town", town, NULL});
        char verdict[1024] = "";
        int missing = 0, first_missing = 0;
        bool excess = false;
        for (int g = 0; g < KILL_GROUPS; g++) {
            char metric[32];
            kill_metric(metric, sizeof metric, g);
            int64_t got = total_of(f, metric, town);
            county[g] += got;
            if (got > full)
                excess = true;
            for (int b = 0; b < KILL_BITS; b++)
                if (!((got >> b) & 1)) {
                    int seq = g * KILL_BITS + b + 1;
                    if (missing++ == 0)
                        first_missing = seq;
                    snprintf(verdict + strlen(verdict), sizeof verdict - strlen(verdict), " %d",
                             seq);
                }
        }
        char line_out[1600];
        if (missing == 0 && !excess) {
            snprintf(line_out, sizeof line_out, "exactly once");
        } else {
            wrong++;
            snprintf(line_out, sizeof line_out, "%s%s%s%s", excess ? "COUNTED TWICE; " : "",
                     missing ? "LOST seq" : "", verdict,
                     /* The signature of a submission closed but never
                      * spooled: client.state already counted it, no .sub
                      * held it, and the restart resumed after it. */
                     missing == 1 && (unsigned long long)first_missing + 1 == next
                         ? " (client.state counted it, no .sub file held it)"
                         : "");
        }
        snprintf(report + strlen(report), sizeof report - strlen(report),
                 "round %d: killed at client.state seq %" PRIu64 "%s, .sub left:%s; restart at seq "
                 "%llu with %zu pending, %s: %s\n",
                 round, seq_file, stopped ? " (daemon stopped)" : "", subs, next, pending,
                 done_line, line_out);
    }
    print_message("%s", report);
    if (wrong > 0)
        fail_msg("%d of %d rounds did not count every submission exactly once:\n%s", wrong,
                 KILL_ROUNDS, report);
    /* The rounds killed the publisher at different stages: while it was
     * still making submissions, and with submissions left unacknowledged
     * in the spool. */
    if (mid_generation < 3 || with_leftovers < 2)
        fail_msg("the kills did not hit the intended stages (%d mid-generation, %d with "
                 "leftovers):\n%s",
                 mid_generation, with_leftovers, report);
    /* The county adds the townships up: KILL_ROUNDS x (2^60 - 1) per
     * metric, which still fits in an int64. */
    get_tab(f, NULL);
    for (int g = 0; g < KILL_GROUPS; g++) {
        char metric[32];
        kill_metric(metric, sizeof metric, g);
        assert_int_equal(county[g], KILL_ROUNDS * full);
        assert_int_equal(total_of(f, metric, "county"), KILL_ROUNDS * full);
    }
    assert_int_equal(stat_value(f, "tallyd_submissions_accepted_total"), KILL_ROUNDS * KILL_SUBS);
}

#define KILLED_FIGURES 100

/* A push with --time killed while tallyd had not yet answered (stopped
 * meanwhile, then going on), run again: refused rather than counted
 * twice, with a spool (whose submission the refused run still delivers)
 * and without.  Figures pushed with --spool are refused without it too. */
static void test_killed_push_once(void **state)
{
    fx_t *f = *state;
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_samples = 1\n", NULL), 0);
    char spool[HARNESS_PATH_MAX], plain[HARNESS_PATH_MAX], out[HARNESS_PATH_MAX],
        err[HARNESS_PATH_MAX], file[HARNESS_PATH_MAX + 16];
    snprintf(spool, sizeof spool, "%s/spool-killed", f->h.dir);
    snprintf(plain, sizeof plain, "%s/xdg-state/tally", f->h.dir);
    snprintf(out, sizeof out, "%s/killed.out", f->h.dir);
    snprintf(err, sizeof err, "%s/killed.err", f->h.dir);
    /* The user's state directory made by a first push. */
    cli_result_t r = run_expect(f, 0, (const char *const[]){"push", "--town", "t", "m=1", NULL});
    cli_result_free(&r);
    for (int with_spool = 1; with_spool >= 0; with_spool--) {
        const char *town = with_spool ? "killed1" : "killed0", *dir = with_spool ? spool : plain;
        /* 100 figures, one submission each: tallyd is stopped while
         * most are still to come. */
        char csv[KILLED_FIGURES * 12 + 16] = "metric,value\n", path[HARNESS_PATH_MAX];
        for (int k = 0; k < KILLED_FIGURES; k++)
            snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "k%d,1\n", k);
        assert_int_equal(harness_write_file(&f->h, "killed.csv", csv, path, sizeof path), 0);
        const char *args[] = {"push",       "--town", town, "--time",
                              "2025-06-30", "--file", path, with_spool ? "--spool" : NULL,
                              spool,        NULL};
        snprintf(file, sizeof file, "%s/client.state", dir);
        if (with_spool)
            assert_int_equal(mkdir(spool, 0700), 0);
        uint64_t first = with_spool ? 1 : read_state_seq(file);
        pid_t pid = cli_spawn(f->h.req_endpoint, args, out, err);
        assert_true(pid > 0);
        wait_for_seq(dir, first + 1, pid, 20000); /* its first submission made */
        assert_int_equal(kill(f->h.pid, SIGSTOP), 0);
        kill(pid, SIGKILL);
        int st = cli_wait(pid, 10000);
        assert_int_equal(kill(f->h.pid, SIGCONT), 0);
        assert_int_equal(st, 128 + SIGKILL);
        r = run_expect(f, 2, args);
        if (strstr(r.err, "ended before tallyd had acknowledged") == NULL ||
            strstr(r.err, "nothing was sent now") == NULL || strstr(r.err, "--again") == NULL)
            fail_msg("pushed again after a push killed mid-way (%s): %s",
                     with_spool ? "with a spool" : "without", r.err);
        cli_result_free(&r);
        if (with_spool)
            assert_int_equal(cli_count_files(spool, ".sub"), 0);
        /* Each figure counted at most once; with the spool the first,
         * made, exactly once (by tallyd going on, or from the spool);
         * without, it may have died with the push. */
        char why[1024];
        if (cli_get_tab(f->h.dir, f->h.req_endpoint, (const char *const[]){"--town", town, NULL},
                        &f->t, why, sizeof why) != 0) {
            if (with_spool || strstr(why, "has no tallies") == NULL)
                fail_msg("%s", why);
            continue;
        }
        if (with_spool)
            assert_int_equal(total_of(f, "k0", town), 1);
        for (int k = 0; k < KILLED_FIGURES; k++) {
            char m[16];
            snprintf(m, sizeof m, "k%d", k);
            cli_val_t v;
            if (cli_tab_get(&f->t, m, town, "total", &v) && v.present && v.num > 1)
                fail_msg("%s of %s: %lld, pushed once as 1", m, town, (long long)v.num);
        }
    }
    /* Accepted through a spool, then pushed without it. */
    const char *spooled[] = {"push", "--town",  "both", "--time", "2025-06-30",
                             "a=5",  "--spool", spool,  NULL};
    r = run_expect(f, 0, spooled);
    cli_result_free(&r);
    r = run_expect(
        f, 2, (const char *const[]){"push", "--town", "both", "--time", "2025-06-30", "a=5", NULL});
    if (strstr(r.err, "were accepted by tallyd on") == NULL &&
        strstr(r.err, "was accepted by tallyd on") == NULL)
        fail_msg("pushed without the spool after it: %s", r.err);
    cli_result_free(&r);
    get_tab(f, (const char *const[]){"--town", "both", NULL});
    assert_int_equal(total_of(f, "a", "both"), 5);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--pusher") == 0)
        return pusher_main(argv[2], argv[3]);
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n <= 0) {
        fprintf(stderr, "cannot read /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    self_exe[n] = '\0';
    /* The tmpfs of test_refused_disk_full in a mount namespace of this
     * process's own, so that it vanishes with it even when it is killed;
     * else the teardown unmounts it.  Before any thread exists. */
    if (geteuid() == 0 &&
        (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0))
        fprintf(stderr, "no private mount namespace (%s); using the global one\n", strerror(errno));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_client_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_daemon_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_fate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_for_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_earlier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_push_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
