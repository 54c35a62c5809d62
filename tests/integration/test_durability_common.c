/* test_durability_common.c - client processes, expected figures, totals
 * and journal file helpers shared by the durability tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tally.h"
#include "test_durability_common.h"

#define CLIENT_GIVE_UP_MS 45000 /* a client process stops retrying after this */

/* ---- fixture --------------------------------------------------------------- */

int dur_setup(void **state)
{
    dur_fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0) {
        free(f);
        return -1;
    }
    harness_table_init(&f->t);
    *state = f;
    return 0;
}

static void kill_clients(dur_fx_t *f)
{
    for (size_t i = 0; i < f->nkids; i++) {
        if (f->kids[i] <= 0)
            continue;
        kill(f->kids[i], SIGKILL);
        waitpid(f->kids[i], NULL, 0);
        f->kids[i] = 0;
    }
}

int dur_teardown(void **state)
{
    dur_fx_t *f = *state;
    kill_clients(f);
    /* A clean stop is part of every test: under the sanitizers it also
     * reports leaks and memory errors found at exit. */
    int rc = harness_finish(&f->h) == 0 ? 0 : -1;
    if (f->mounted && umount2(f->h.state_dir, MNT_DETACH) != 0)
        fprintf(stderr, "durability: umount %s: %s\n", f->h.state_dir, strerror(errno));
    harness_table_free(&f->t);
    harness_cleanup(&f->h);
    free(f);
    return rc;
}

void dur_sleep_ms(int ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void dur_dump_log_tail(dur_fx_t *f, size_t bytes)
{
    const char *log = harness_log(&f->h);
    size_t n = strlen(log);
    fprintf(stderr, "---- last %zu bytes of %s ----\n%s---- end ----\n", bytes, f->h.log_path,
            n > bytes ? log + n - bytes : log);
}

/* ---- deterministic figures ---------------------------------------------------- */

unsigned dur_nsamples(unsigned town, unsigned i)
{
    return 1 + (i * 7 + town * 3) % 3;
}

unsigned dur_metric(unsigned i, unsigned j)
{
    return (i + j) % DUR_METRICS;
}

const char *dur_metric_name(unsigned m)
{
    static const char *const names[DUR_METRICS] = {"dur.m0", "dur.m1", "dur.m2"};
    return names[m % DUR_METRICS];
}

int64_t dur_value(unsigned town, unsigned i, unsigned j)
{
    return 1 + (int64_t)(((uint64_t)town * 1000003u + (uint64_t)i * 7919u + j * 104729u) % 997u);
}

void dur_expected(unsigned town, unsigned n, int64_t sums[DUR_METRICS])
{
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < dur_nsamples(town, i); j++)
            sums[dur_metric(i, j)] += dur_value(town, i, j);
}

/* ---- the client process ----------------------------------------------------- */

typedef struct cstate {
    unsigned town, nsubs;
    uint64_t first_seq;
    unsigned char acked[DUR_MAX_SUBS];
    unsigned bad_acks; /* seq unknown or sample count wrong */
    dur_result_t r;
} cstate_t;

static void client_on_ack(void *ctx, uint64_t seq, int status, uint32_t nsamples)
{
    cstate_t *s = ctx;
    if (seq < s->first_seq || seq - s->first_seq >= s->nsubs) {
        s->bad_acks++;
        return;
    }
    unsigned i = (unsigned)(seq - s->first_seq);
    if (s->acked[i]) {
        s->r.double_acks++;
        return;
    }
    if (nsamples != dur_nsamples(s->town, i))
        s->bad_acks++;
    s->acked[i] = 1;
    s->r.acked++;
    if (status == TALLY_ACK_ACCEPTED)
        s->r.accepted++;
    else
        s->r.duplicate++;
    for (unsigned j = 0; j < dur_nsamples(s->town, i); j++)
        s->r.acked_sum[dur_metric(i, j)] += dur_value(s->town, i, j);
}

static void client_on_reject(void *ctx, uint64_t seq, int code, int sample, const char *field,
                             const char *message)
{
    cstate_t *s = ctx;
    s->r.rejected++;
    fprintf(stderr, "durability client t%u: seq %" PRIu64 " rejected: %s (%s) sample %d field %s\n",
            s->town, seq, message, tally_errname(code), sample, field);
}

static int64_t mono_ms(void)
{
    return harness_mono_ms();
}

/* Let the client work for ms milliseconds (ACKs, resends), then return. */
static int client_pump(tally_client_t *c, int ms)
{
    int64_t deadline = mono_ms() + ms;
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return 0;
        if (tally_client_pending(c) == 0) {
            dur_sleep_ms((int)left);
            return 0;
        }
        int rc = tally_client_flush(c, (int)left);
        if (rc != 0 && rc != TALLY_ETIMEDOUT)
            return rc;
    }
}

static int write_result(const char *path, const cstate_t *s)
{
    FILE *out = fopen(path, "w");
    if (out == NULL)
        return -1;
    const dur_result_t *r = &s->r;
    fprintf(out, "town=%u\npushed=%u\nacked=%u\naccepted=%u\nduplicate=%u\nrejected=%u\n", s->town,
            r->pushed, r->acked, r->accepted, r->duplicate, r->rejected);
    fprintf(out, "double_acks=%u\npending=%u\nbad_acks=%u\n", r->double_acks + s->bad_acks,
            r->pending, s->bad_acks);
    for (unsigned m = 0; m < DUR_METRICS; m++)
        fprintf(out, "pushed_sum%u=%" PRId64 "\nacked_sum%u=%" PRId64 "\n", m, r->pushed_sum[m], m,
                r->acked_sum[m]);
    fprintf(out, "last_error=%s\n", r->last_error);
    return fclose(out) == 0 ? 0 : -1;
}

/* argv: --dur-client ENDPOINT TOWN SPOOL NSUBS PACE_MS RESULT */
int dur_client_main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "durability client: expected 7 arguments, got %d\n", argc - 1);
        return 1;
    }
    static cstate_t s; /* large; one per process */
    memset(&s, 0, sizeof(s));
    const char *endpoint = argv[2], *spool = argv[4], *result = argv[7];
    s.town = (unsigned)atoi(argv[3]);
    s.nsubs = (unsigned)atoi(argv[5]);
    int pace = atoi(argv[6]);
    s.r.town = s.town;
    if (s.town < 1 || s.town > DUR_TOWNS || s.nsubs > DUR_MAX_SUBS) {
        fprintf(stderr, "durability client: bad town %u or nsubs %u\n", s.town, s.nsubs);
        return 1;
    }
    char town[16], err[512] = "";
    snprintf(town, sizeof(town), "t%u", s.town);
    tally_client_opts_t o;
    memset(&o, 0, sizeof(o));
    o.spool_dir = spool;
    o.backoff_initial_ms = 50;
    o.backoff_max_ms = 400;
    o.on_ack = client_on_ack;
    o.on_reject = client_on_reject;
    o.cb_ctx = &s;
    o.errbuf = err;
    o.errbuf_len = sizeof(err);
    tally_client_t *c = NULL;
    int rc = tally_client_new(endpoint, town, &o, &c);
    if (rc != 0) {
        fprintf(stderr, "durability client %s: tally_client_new: %s\n", town, err);
        return 1;
    }
    s.first_seq = tally_client_next_seq(c);
    int64_t give_up = mono_ms() + CLIENT_GIVE_UP_MS;
    int status = 0;
    for (unsigned i = 0; i < s.nsubs && status == 0; i++) {
        for (unsigned j = 0; j < dur_nsamples(s.town, i) && rc == 0; j++)
            rc = tally_client_add(c, dur_metric_name(dur_metric(i, j)), dur_value(s.town, i, j), 0);
        if (rc == 0)
            rc = tally_client_send(c);
        if (rc == 0) {
            s.r.pushed++;
            for (unsigned j = 0; j < dur_nsamples(s.town, i); j++)
                s.r.pushed_sum[dur_metric(i, j)] += dur_value(s.town, i, j);
            rc = client_pump(c, pace);
        }
        if (rc != 0) {
            fprintf(stderr, "durability client %s: submission %u: %s (%s)\n", town, i,
                    tally_client_last_error(c), tally_errname(rc));
            status = 1;
        }
    }
    /* Never give up on a timeout: the daemon is being killed on purpose;
     * the spool keeps everything and flushing resends it. */
    while (status == 0 && tally_client_pending(c) > 0) {
        if (mono_ms() > give_up) {
            status = 3;
            break;
        }
        rc = tally_client_flush(c, 500);
        if (rc != 0 && rc != TALLY_ETIMEDOUT) {
            fprintf(stderr, "durability client %s: flush: %s (%s)\n", town,
                    tally_client_last_error(c), tally_errname(rc));
            status = 1;
        }
    }
    s.r.pending = (unsigned)tally_client_pending(c);
    snprintf(s.r.last_error, sizeof(s.r.last_error), "%s", tally_client_last_error(c));
    tally_client_destroy(&c);
    if (write_result(result, &s) != 0) {
        fprintf(stderr, "durability client %s: cannot write %s: %s\n", town, result,
                strerror(errno));
        return 1;
    }
    if (status == 0 && (s.r.rejected || s.r.double_acks || s.bad_acks))
        status = 2;
    return status;
}

void dur_spawn_client(dur_fx_t *f, unsigned town, unsigned nsubs, unsigned pace_ms)
{
    assert_true(f->nkids < DUR_MAX_KIDS);
    char spool[HARNESS_PATH_MAX], result[HARNESS_PATH_MAX], t[16], n[16], p[16];
    snprintf(spool, sizeof(spool), "%s/spool-t%u", f->h.dir, town);
    snprintf(result, sizeof(result), "%s/result-t%u", f->h.dir, town);
    snprintf(t, sizeof(t), "%u", town);
    snprintf(n, sizeof(n), "%u", nsubs);
    snprintf(p, sizeof(p), "%u", pace_ms);
    unlink(result);
    char *const argv[] = {
        "test_durability", "--dur-client", f->h.req_endpoint, t, spool, n, p, result, NULL};
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls until exec: ZeroMQ threads run in
         * the parent. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    f->kid_town[f->nkids] = town;
    f->kid_status[f->nkids] = -1;
    f->kids[f->nkids++] = pid;
}

static void reap_clients(dur_fx_t *f, bool block)
{
    for (size_t i = 0; i < f->nkids; i++) {
        if (f->kids[i] <= 0)
            continue;
        int st;
        pid_t r = waitpid(f->kids[i], &st, block ? 0 : WNOHANG);
        if (r == f->kids[i]) {
            f->kid_status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            f->kids[i] = 0;
        }
    }
}

bool dur_clients_running(dur_fx_t *f)
{
    reap_clients(f, false);
    for (size_t i = 0; i < f->nkids; i++)
        if (f->kids[i] > 0)
            return true;
    return false;
}

static void read_result(const dur_fx_t *f, unsigned town, dur_result_t *r)
{
    char path[HARNESS_PATH_MAX];
    snprintf(path, sizeof(path), "%s/result-t%u", f->h.dir, town);
    memset(r, 0, sizeof(*r));
    FILE *in = fopen(path, "r");
    if (in == NULL)
        fail_msg("client t%u left no result file %s (seed %u)", town, path, f->seed);
    char line[512];
    while (fgets(line, sizeof(line), in) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *eq = strchr(line, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        const char *k = line, *v = eq + 1;
        struct {
            const char *key;
            unsigned *u;
        } us[] = {{"town", &r->town},
                  {"pushed", &r->pushed},
                  {"acked", &r->acked},
                  {"accepted", &r->accepted},
                  {"duplicate", &r->duplicate},
                  {"rejected", &r->rejected},
                  {"double_acks", &r->double_acks},
                  {"pending", &r->pending}};
        for (size_t i = 0; i < sizeof(us) / sizeof(us[0]); i++)
            if (strcmp(k, us[i].key) == 0)
                *us[i].u = (unsigned)strtoul(v, NULL, 10);
        for (unsigned m = 0; m < DUR_METRICS; m++) {
            char a[32], b[32];
            snprintf(a, sizeof(a), "pushed_sum%u", m);
            snprintf(b, sizeof(b), "acked_sum%u", m);
            if (strcmp(k, a) == 0)
                r->pushed_sum[m] = strtoll(v, NULL, 10);
            if (strcmp(k, b) == 0)
                r->acked_sum[m] = strtoll(v, NULL, 10);
        }
        if (strcmp(k, "last_error") == 0)
            snprintf(r->last_error, sizeof(r->last_error), "%s", v);
    }
    fclose(in);
}

void dur_wait_clients(dur_fx_t *f, dur_result_t *res, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    while (dur_clients_running(f) && harness_mono_ms() < deadline)
        dur_sleep_ms(20);
    if (dur_clients_running(f)) {
        kill_clients(f);
        dur_dump_log_tail(f, 3000);
        fail_msg("client processes still running after %d ms (seed %u)", timeout_ms, f->seed);
    }
    for (size_t i = 0; i < f->nkids; i++) {
        read_result(f, f->kid_town[i], &res[i]);
        if (f->kid_status[i] != 0) {
            dur_dump_log_tail(f, 3000);
            fail_msg("client t%u exited with status %d (seed %u): pushed %u acked %u rejected %u "
                     "pending %u double acks %u; last error: %s",
                     f->kid_town[i], f->kid_status[i], f->seed, res[i].pushed, res[i].acked,
                     res[i].rejected, res[i].pending, res[i].double_acks, res[i].last_error);
        }
    }
}

void dur_check_results(const dur_fx_t *f, const dur_result_t *res, size_t n, unsigned nsubs)
{
    for (size_t i = 0; i < n; i++) {
        const dur_result_t *r = &res[i];
        int64_t want[DUR_METRICS] = {0};
        dur_expected(r->town, nsubs, want);
        if (r->pushed != nsubs || r->acked != nsubs || r->accepted + r->duplicate != nsubs ||
            r->rejected != 0 || r->double_acks != 0 || r->pending != 0)
            fail_msg("client t%u (seed %u): pushed %u acked %u (accepted %u duplicate %u) "
                     "rejected %u double %u pending %u; want %u pushed and acked",
                     r->town, f->seed, r->pushed, r->acked, r->accepted, r->duplicate, r->rejected,
                     r->double_acks, r->pending, nsubs);
        for (unsigned m = 0; m < DUR_METRICS; m++)
            if (r->pushed_sum[m] != want[m] || r->acked_sum[m] != want[m])
                fail_msg("client t%u %s (seed %u): pushed %" PRId64 " acked %" PRId64
                         ", expected %" PRId64,
                         r->town, dur_metric_name(m), f->seed, r->pushed_sum[m], r->acked_sum[m],
                         want[m]);
    }
}

/* ---- totals ------------------------------------------------------------------ */

void dur_expect_total(dur_fx_t *f, const char *metric, const char *scope, int64_t want,
                      const char *what)
{
    harness_value_t v;
    if (!harness_table_get(&f->t, metric, scope, "total", &v)) {
        dur_dump_log_tail(f, 3000);
        fail_msg("%s (seed %u): no total of %s for '%s' in the snapshot; expected %" PRId64, what,
                 f->seed, metric, scope, want);
    }
    if (!v.present || v.num != want) {
        dur_dump_log_tail(f, 3000);
        fail_msg("%s (seed %u): total of %s for '%s' is %s%" PRId64 ", expected %" PRId64
                 " (difference %" PRId64 ")",
                 what, f->seed, metric, scope, v.present ? "" : "nil/", v.num, want, v.num - want);
    }
}

void dur_check_totals(dur_fx_t *f, unsigned ntowns, unsigned nsubs, const char *what)
{
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    int rc = harness_snapshot(&c, "", &f->t);
    harness_client_close(&c);
    if (rc != 0)
        fail_msg("%s (seed %u): snapshot failed: %s", what, f->seed, tally_errname(rc));
    int64_t county[DUR_METRICS] = {0};
    for (unsigned town = 1; town <= ntowns; town++) {
        int64_t sums[DUR_METRICS] = {0};
        dur_expected(town, nsubs, sums);
        char scope[16];
        snprintf(scope, sizeof(scope), "t%u", town);
        for (unsigned m = 0; m < DUR_METRICS; m++) {
            dur_expect_total(f, dur_metric_name(m), scope, sums[m], what);
            county[m] += sums[m];
        }
    }
    for (unsigned m = 0; m < DUR_METRICS; m++)
        dur_expect_total(f, dur_metric_name(m), "", county[m], what);
}

void dur_kill_restart(dur_fx_t *f)
{
    int st = harness_stop(&f->h, SIGKILL);
    if (st != 128 + SIGKILL) {
        dur_dump_log_tail(f, 3000);
        fail_msg("tallyd ended with status %d before SIGKILL (seed %u)", st, f->seed);
    }
    int rc = harness_start(&f->h, f->conf, NULL);
    if (rc != 0)
        fail_msg("tallyd did not come back after SIGKILL: %s (seed %u)", tally_errname(rc),
                 f->seed);
}

void dur_expect_log(dur_fx_t *f, const char *needle)
{
    if (strstr(harness_log(&f->h), needle) == NULL) {
        dur_dump_log_tail(f, 4000);
        fail_msg("the log has no line containing \"%s\"", needle);
    }
}

void dur_expect_m0(dur_fx_t *f, int64_t want, const char *what)
{
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    int rc = harness_snapshot(&c, "", &f->t);
    harness_client_close(&c);
    if (rc != 0)
        fail_msg("%s: snapshot failed: %s", what, tally_errname(rc));
    dur_expect_total(f, "dur.m0", "t1", want, what);
    dur_expect_total(f, "dur.m0", "", want, what);
}

void dur_clean_restart(dur_fx_t *f, int64_t want)
{
    int st = -1;
    assert_int_equal(harness_restart(&f->h, &st), 0);
    assert_int_equal(st, 0);
    dur_expect_m0(f, want, "after a clean restart");
}

/* ---- journal files ------------------------------------------------------------ */

uint32_t dur_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

uint32_t dur_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void dur_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

size_t dur_list(const char *dir, const char *prefix, const char *suffix,
                char names[][HARNESS_PATH_MAX], size_t max)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        fail_msg("cannot list %s: %s", dir, strerror(errno));
    size_t n = 0, pl = strlen(prefix), sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < pl + sl || strncmp(e->d_name, prefix, pl) != 0 ||
            strcmp(e->d_name + l - sl, suffix) != 0)
            continue;
        if (n == max)
            break;
        snprintf(names[n++], HARNESS_PATH_MAX, "%s", e->d_name);
    }
    closedir(d);
    qsort(names, n, HARNESS_PATH_MAX, cmp_name);
    return n;
}

void dur_only_segment(dur_fx_t *f, char *path, size_t len)
{
    char names[DUR_MAX_FILES][HARNESS_PATH_MAX];
    size_t n = dur_list(f->h.state_dir, "journal-", ".tj", names, DUR_MAX_FILES);
    if (n != 1)
        fail_msg("expected exactly one journal segment in %s, found %zu", f->h.state_dir, n);
    snprintf(path, len, "%s/%s", f->h.state_dir, names[0]);
}

uint8_t *dur_read_all(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != (size_t)st.st_size) {
        free(buf);
        fail_msg("short read of %s", path);
    }
    *len = got;
    return buf;
}

void dur_write_all(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0)
        fail_msg("cannot open %s for writing: %s", path, strerror(errno));
    ssize_t w = write(fd, buf, len);
    bool ok = w == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    if (!ok)
        fail_msg("cannot rewrite %s: %s", path, strerror(errno));
}

size_t dur_records(const char *path, uint64_t *offs, uint32_t *lens, size_t max, uint64_t *size,
                   uint64_t *end)
{
    size_t len;
    uint8_t *buf = dur_read_all(path, &len);
    size_t n = 0;
    uint64_t off = DUR_JNL_HEADER;
    while (off + DUR_JNL_REC_HEAD <= len && n < max) {
        if (dur_get32(buf + off) != DUR_JNL_MAGIC)
            break;
        uint32_t plen = dur_get32(buf + off + 4);
        if (off + DUR_JNL_REC_HEAD + plen > len)
            break;
        offs[n] = off;
        lens[n] = plen;
        n++;
        off += DUR_JNL_REC_HEAD + (uint64_t)plen;
    }
    free(buf);
    *size = len;
    *end = off;
    return n;
}
