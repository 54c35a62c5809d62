/* Unit tests of the publisher's durable state: the spool directory, the
 * client id and next sequence number, the state file.  No daemon needed:
 * the client points at an endpoint nobody listens on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"
#include "proto.h"
#include "spool.h"
#include "tally.h"

#define T0 1703995200000LL

typedef struct fixture {
    char dir[64];
    char spool[128];
    char ep[160];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/tally-spool-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->spool, sizeof f->spool, "%s/spool", f->dir);
    snprintf(f->ep, sizeof f->ep, "ipc://%s/nobody.sock", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool exists(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static char *read_text(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return NULL;
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* The value of key in the state file dir/name ("" when it has none). */
static const char *state_value(const char *dir, const char *name, const char *key)
{
    static char v[128];
    v[0] = '\0';
    const char *text = read_text(dir, name);
    if (text == NULL)
        return v;
    size_t klen = strlen(key);
    for (const char *line = text; *line != '\0'; line += strcspn(line, "\n") + 1) {
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            snprintf(v, sizeof v, "%.*s", (int)strcspn(line + klen + 1, "\n"), line + klen + 1);
            break;
        }
        if (line[strcspn(line, "\n")] == '\0')
            break;
    }
    return v;
}

static void test_spool_files(void **state)
{
    fixture_t *f = *state;
    char err[512];
    spool_t *s;
    assert_int_equal(spool_open(f->spool, 0, &s, err, sizeof err), 0);
    assert_true(exists(f->spool, "lock"));
    assert_int_equal(spool_write(s, 7, "seven", 5, err, sizeof err), 0);
    assert_int_equal(spool_write(s, 12, "twelve", 6, err, sizeof err), 0);
    assert_int_equal(spool_write(s, 3, "three", 5, err, sizeof err), 0);
    assert_true(exists(f->spool, "00000000000000000007.sub"));
    assert_false(exists(f->spool, "00000000000000000007.sub.tmp"));
    /* Names that are not exactly 20 digits + ".sub" are not submissions. */
    write_file(f->spool, "7.sub", "junk");
    write_file(f->spool, "notes.txt", "junk");
    write_file(f->spool, "0000000000000000000x.sub", "junk");
    uint64_t *seqs;
    size_t n;
    assert_int_equal(spool_list(s, &seqs, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(seqs[0], 3);
    assert_int_equal(seqs[1], 7);
    assert_int_equal(seqs[2], 12);
    free(seqs);
    uint8_t *body;
    size_t len;
    assert_int_equal(spool_read(s, 12, &body, &len, err, sizeof err), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(body, "twelve", 6);
    free(body);
    /* Replacing is atomic: the new content, no temporary left. */
    assert_int_equal(spool_write(s, 12, "TWELVE!", 7, err, sizeof err), 0);
    assert_int_equal(spool_read(s, 12, &body, &len, err, sizeof err), 0);
    assert_int_equal(len, 7);
    free(body);
    assert_int_equal(spool_remove(s, 7, err, sizeof err), 0);
    assert_int_equal(spool_remove(s, 7, err, sizeof err), 0); /* already gone: fine */
    assert_int_equal(spool_read(s, 7, &body, &len, err, sizeof err), TALLY_ENOTFOUND);
    spool_close(&s);
    assert_null(s);
}

static void test_spool_lock(void **state)
{
    fixture_t *f = *state;
    char err[512];
    spool_t *a, *b;
    assert_int_equal(spool_open(f->spool, 0, &a, err, sizeof err), 0);
    assert_int_equal(spool_open(f->spool, 0, &b, err, sizeof err), TALLY_EEXIST);
    assert_non_null(strstr(err, "in use by another process"));
    /* A bounded wait: still held after it, still refused. */
    int64_t t = mono_ms();
    assert_int_equal(spool_open(f->spool, 200, &b, err, sizeof err), TALLY_EEXIST);
    assert_true(mono_ms() - t >= 190);
    spool_close(&a);
    assert_int_equal(spool_open(f->spool, 0, &b, err, sizeof err), 0);
    spool_close(&b);
}

typedef struct holder {
    tally_client_t *c;
    int release_after_ms;
} holder_t;

static void *release_later(void *arg)
{
    holder_t *h = arg;
    usleep((useconds_t)h->release_after_ms * 1000);
    tally_client_destroy(&h->c);
    return NULL;
}

/* Two programs on one state (cron and a person): the second waits for the
 * first up to lock_timeout_ms, then goes on with the same id and the next
 * seq; never do both hold it. */
static void test_lock_wait(void **state)
{
    fixture_t *f = *state;
    char err[512], path[256];
    snprintf(path, sizeof path, "%s/client.state", f->dir);
    for (int spool = 0; spool < 2; spool++) {
        tally_client_opts_t o = {.errbuf = err, .errbuf_len = sizeof err};
        if (spool)
            o.spool_dir = f->spool;
        else
            o.state_file = path;
        holder_t h = {.release_after_ms = 150};
        assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &h.c), 0);
        assert_int_equal(tally_client_add(h.c, "patrols", 1, T0), 0);
        assert_int_equal(tally_client_send(h.c), 0);
        uint8_t id1[16], id2[16];
        tally_client_id(h.c, id1);
        uint64_t next = tally_client_next_seq(h.c);
        tally_client_t *c = NULL;
        o.lock_timeout_ms = 100;
        int64_t t = mono_ms();
        assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), TALLY_EEXIST);
        assert_true(mono_ms() - t >= 90);
        assert_non_null(strstr(err, "in use by another process"));
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, release_later, &h), 0);
        o.lock_timeout_ms = 5000;
        assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
        pthread_join(th, NULL);
        tally_client_id(c, id2);
        assert_memory_equal(id1, id2, 16);
        assert_int_equal(tally_client_next_seq(c), next);
        tally_client_destroy(&c);
    }
}

/* A crash between writing a temporary file and renaming it leaves the
 * .tmp behind; the next open removes it and never reads it. */
static void test_stray_tmp_cleaned(void **state)
{
    fixture_t *f = *state;
    char err[512];
    assert_int_equal(mkdir(f->spool, 0700), 0);
    write_file(f->spool, "00000000000000000005.sub.tmp", "half a submission");
    write_file(f->spool, "client.state.tmp", "9");
    spool_t *s;
    assert_int_equal(spool_open(f->spool, 0, &s, err, sizeof err), 0);
    assert_false(exists(f->spool, "00000000000000000005.sub.tmp"));
    assert_false(exists(f->spool, "client.state.tmp"));
    uint64_t *seqs;
    size_t n;
    assert_int_equal(spool_list(s, &seqs, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    free(seqs);
    spool_close(&s);
    /* The same through the client: no submission comes from a .tmp. */
    write_file(f->spool, "00000000000000000001.sub.tmp", "x");
    tally_client_t *c;
    tally_client_opts_t o = {.spool_dir = f->spool};
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    assert_int_equal(tally_client_pending(c), 0);
    assert_false(exists(f->spool, "00000000000000000001.sub.tmp"));
    tally_client_destroy(&c);
}

/* A submission as the daemon would decode it from a spool file. */
static void check_sub_file(const char *spool, uint64_t seq, const uint8_t id[16], uint32_t n)
{
    char name[32];
    spool_sub_name(seq, name, sizeof name);
    int dirfd = fsutil_open_dir(spool, 0, NULL, 0);
    assert_true(dirfd >= 0);
    uint8_t *body;
    size_t len;
    assert_int_equal(fsutil_read_all(dirfd, spool, name, 1 << 20, &body, &len, NULL, 0), 0);
    close(dirfd);
    proto_msg_t *m = malloc(sizeof *m);
    proto_sample_t samples[16];
    assert_int_equal(proto_decode(body, len, m, samples, 16, NULL), 0);
    assert_int_equal(m->type, PROTO_SUBMIT);
    assert_int_equal(m->u.submit.seq, seq);
    assert_memory_equal(m->u.submit.client_id, id, 16);
    assert_true(proto_str_eq(m->u.submit.township, "gaoguan"));
    assert_int_equal(m->u.submit.nsamples, n);
    free(m);
    free(body);
}

static void test_identity_persists(void **state)
{
    fixture_t *f = *state;
    char err[512];
    tally_client_opts_t o = {.spool_dir = f->spool, .errbuf = err, .errbuf_len = sizeof err};
    tally_client_t *c;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    uint8_t id1[16], id2[16];
    tally_client_id(c, id1);
    assert_int_equal(tally_client_next_seq(c), 1);
    assert_string_equal(state_value(f->spool, "client.state", "seq"), "1");
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", id1[i]);
    assert_string_equal(state_value(f->spool, "client.state", "id"), hex);
    /* Created now: the expiry rule counts from here. */
    int64_t acked = strtoll(state_value(f->spool, "client.state", "acked_ms"), NULL, 10);
    assert_true(llabs(acked - (int64_t)time(NULL) * 1000) < 5000);
    assert_string_equal(state_value(f->spool, "client.state", "client_expiry_ms"), "-1");
    assert_int_equal(tally_client_add(c, "disputes.screened", 219, T0), 0);
    assert_int_equal(tally_client_add(c, "disputes.resolved", 216, T0), 0);
    assert_int_equal(tally_client_batch_size(c), 2);
    assert_false(exists(f->spool, "00000000000000000001.sub"));
    /* send persists the next seq and the submission before any send. */
    assert_int_equal(tally_client_send(c), 0);
    assert_string_equal(state_value(f->spool, "client.state", "seq"), "2");
    check_sub_file(f->spool, 1, id1, 2);
    assert_int_equal(tally_client_pending(c), 1);
    assert_int_equal(tally_client_pending_samples(c), 2);
    assert_int_equal(tally_client_next_seq(c), 2);
    /* Nobody answers: flush times out and loses nothing. */
    assert_int_equal(tally_client_flush(c, 50), TALLY_ETIMEDOUT);
    assert_non_null(strstr(tally_client_last_error(c), "not acknowledged"));
    tally_client_destroy(&c);
    assert_null(c);
    assert_true(exists(f->spool, "00000000000000000001.sub"));

    /* A new process: same id, seq continues, the submission is queued. */
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    tally_client_id(c, id2);
    assert_memory_equal(id1, id2, 16);
    assert_int_equal(tally_client_next_seq(c), 2);
    assert_int_equal(tally_client_pending(c), 1);
    assert_int_equal(tally_client_pending_samples(c), 2);
    assert_int_equal(tally_client_add(c, "banners", 19, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    check_sub_file(f->spool, 2, id1, 1);
    tally_client_destroy(&c);

    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    assert_int_equal(tally_client_pending(c), 2);
    assert_int_equal(tally_client_pending_samples(c), 3);
    assert_int_equal(tally_client_next_seq(c), 3);
    /* One process per spool. */
    tally_client_t *other;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &other), TALLY_EEXIST);
    assert_non_null(strstr(err, "in use by another process"));
    tally_client_destroy(&c);
}

/* A submission whose seq cannot be persisted (client.state cannot be
 * written, as on a full disk, after its file was) is undone whole: its
 * file leaves the spool again, its samples stay in the batch, nothing was
 * sent, and neither this client nor a later one on the spool would send
 * it; a second push of the figures is the only one.  Once the state can
 * be written, the same samples become that submission. */
static void test_unpersisted_undone(void **state)
{
    fixture_t *f = *state;
    char err[512];
    tally_client_opts_t o = {.spool_dir = f->spool, .errbuf = err, .errbuf_len = sizeof err};
    tally_client_t *c;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    uint8_t id[16];
    tally_client_id(c, id);
    /* The state's temporary file cannot be created: a directory has its
     * name (the submission's own temporary file can). */
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/client.state.tmp", f->spool);
    assert_int_equal(mkdir(tmp, 0700), 0);
    assert_int_equal(tally_client_add(c, "patrols", 45, T0), 0);
    assert_int_equal(tally_client_add(c, "banners", 19, T0), 0);
    assert_int_equal(tally_client_send(c), TALLY_EIO);
    assert_non_null(strstr(tally_client_last_error(c), "client.state"));
    assert_false(exists(f->spool, "00000000000000000001.sub"));
    assert_int_equal(tally_client_pending(c), 0);
    assert_int_equal(tally_client_batch_size(c), 2);
    assert_int_equal(tally_client_next_seq(c), 1);
    assert_string_equal(state_value(f->spool, "client.state", "seq"), "1");
    /* The same again from tally_client_add, when a sample closes the
     * batch: the sample is not taken, the batch is as it was. */
    assert_int_equal(tally_client_add(c, "patrols", 46, T0 + 1000), TALLY_EIO);
    assert_false(exists(f->spool, "00000000000000000001.sub"));
    assert_int_equal(tally_client_batch_size(c), 2);
    assert_int_equal(rmdir(tmp), 0);
    assert_int_equal(tally_client_send(c), 0);
    check_sub_file(f->spool, 1, id, 2);
    assert_int_equal(tally_client_pending(c), 1);
    assert_int_equal(tally_client_batch_size(c), 0);
    assert_int_equal(tally_client_next_seq(c), 2);
    tally_client_destroy(&c);
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    assert_int_equal(tally_client_pending(c), 1);
    assert_int_equal(tally_client_pending_samples(c), 2);
    tally_client_destroy(&c);
}

/* client.seq behind the spooled submissions (restored from a backup, or
 * lost): the next seq still comes after every spooled one. */
static void test_seq_never_reused(void **state)
{
    fixture_t *f = *state;
    tally_client_opts_t o = {.spool_dir = f->spool};
    tally_client_t *c;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tally_client_add(c, "patrols", i, T0 + i), 0);
        assert_int_equal(tally_client_send(c), 0);
    }
    uint8_t id[16];
    tally_client_id(c, id);
    tally_client_destroy(&c);
    char text[256], hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", id[i]);
    snprintf(text, sizeof text, "id=%s\nseq=2\n", hex);
    write_file(f->spool, "client.state", text);
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    assert_int_equal(tally_client_next_seq(c), 4);
    assert_int_equal(tally_client_pending(c), 3);
    assert_string_equal(state_value(f->spool, "client.state", "seq"), "4");
    tally_client_destroy(&c);
    /* Without a state the id is recovered from a submission. */
    char path[256];
    snprintf(path, sizeof path, "%s/client.state", f->spool);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    assert_int_equal(tally_client_next_seq(c), 4);
    assert_int_equal(tally_client_pending(c), 3);
    uint8_t id2[16];
    tally_client_id(c, id2);
    assert_memory_equal(id, id2, 16);
    assert_string_equal(state_value(f->spool, "client.state", "seq"), "4");
    tally_client_destroy(&c);
}

/* A spool of a libtally that kept client.id and client.seq: read once,
 * replaced by client.state (the acknowledgement time taken from their
 * modification time), and removed. */
static void test_legacy_spool(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(mkdir(f->spool, 0700), 0);
    write_file(f->spool, "client.id", "00112233445566778899aabbccddeeff\n");
    write_file(f->spool, "client.seq", "42\n");
    struct timespec times[2] = {{1700000000, 0}, {1700000000, 0}};
    char path[256];
    snprintf(path, sizeof path, "%s/client.seq", f->spool);
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
    snprintf(path, sizeof path, "%s/client.id", f->spool);
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
    tally_client_opts_t o = {.spool_dir = f->spool};
    tally_client_t *c;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    uint8_t id[16];
    tally_client_id(c, id);
    assert_memory_equal(id, "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff", 16);
    assert_int_equal(tally_client_next_seq(c), 42);
    assert_false(exists(f->spool, "client.id"));
    assert_false(exists(f->spool, "client.seq"));
    assert_string_equal(state_value(f->spool, "client.state", "id"),
                        "00112233445566778899aabbccddeeff");
    assert_string_equal(state_value(f->spool, "client.state", "seq"), "42");
    assert_string_equal(state_value(f->spool, "client.state", "acked_ms"), "1700000000000");
    tally_client_destroy(&c);
    /* A crash between writing client.state and removing them: they are
     * removed by the next run, and client.state is what counts. */
    write_file(f->spool, "client.seq", "7\n");
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    assert_int_equal(tally_client_next_seq(c), 42);
    assert_false(exists(f->spool, "client.seq"));
    tally_client_destroy(&c);
}

static void test_corrupt_spool_file(void **state)
{
    fixture_t *f = *state;
    char err[512];
    tally_client_opts_t o = {.spool_dir = f->spool, .errbuf = err, .errbuf_len = sizeof err};
    tally_client_t *c;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    tally_client_destroy(&c);
    write_file(f->spool, "00000000000000000009.sub", "not msgpack at all");
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), TALLY_EMALFORMED);
    assert_non_null(strstr(err, "00000000000000000009.sub"));
    assert_non_null(strstr(err, "move it out of the spool"));
    char path[256];
    snprintf(path, sizeof path, "%s/00000000000000000009.sub", f->spool);
    assert_int_equal(unlink(path), 0);
    write_file(f->spool, "client.state", "id=xyz\nseq=1\n");
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), TALLY_EMALFORMED);
    assert_non_null(strstr(err, "client.state is corrupt"));
    /* Never written over: it is the operator's to look at. */
    assert_string_equal(read_text(f->spool, "client.state"), "id=xyz\nseq=1\n");
}

static void test_state_file(void **state)
{
    fixture_t *f = *state;
    char err[512], path[256];
    snprintf(path, sizeof path, "%s/state", f->dir);
    tally_client_opts_t o = {.state_file = path, .errbuf = err, .errbuf_len = sizeof err};
    tally_client_t *c, *other;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    uint8_t id1[16], id2[16];
    tally_client_id(c, id1);
    assert_int_equal(tally_client_add(c, "patrols", 45, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    assert_int_equal(tally_client_add(c, "patrols", 46, T0 + 1), 0);
    assert_int_equal(tally_client_send(c), 0);
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &other), TALLY_EEXIST);
    tally_client_destroy(&c);
    assert_non_null(strstr(read_text(f->dir, "state"), "seq=3\n"));
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    tally_client_id(c, id2);
    assert_memory_equal(id1, id2, 16);
    assert_int_equal(tally_client_next_seq(c), 3);
    assert_int_equal(tally_client_pending(c), 0); /* no spool: unsent ones were lost */
    tally_client_destroy(&c);
    /* Without spool or state: a fresh id every time. */
    assert_int_equal(tally_client_new(f->ep, "gaoguan", NULL, &c), 0);
    tally_client_id(c, id2);
    assert_memory_not_equal(id1, id2, 16);
    assert_int_equal(tally_client_next_seq(c), 1);
    tally_client_destroy(&c);
}

static void test_bad_arguments(void **state)
{
    fixture_t *f = *state;
    char err[512];
    tally_client_opts_t o = {.errbuf = err, .errbuf_len = sizeof err};
    tally_client_t *c = NULL;
    assert_int_equal(tally_client_new(f->ep, "gao guan", &o, &c), TALLY_EBADNAME);
    assert_non_null(strstr(err, "township 'gao guan'"));
    assert_int_equal(tally_client_new(f->ep, "", &o, &c), TALLY_EBADNAME);
    assert_int_equal(tally_client_new("host:99999", "gaoguan", &o, &c), TALLY_EINVAL);
    o.max_in_flight = 1025;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), TALLY_EINVAL);
    assert_non_null(strstr(err, "1024"));
    o.max_in_flight = 0;
    o.batch_limit = 5000;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), TALLY_EINVAL);
    o.batch_limit = 0;
    o.backoff_initial_ms = 500;
    o.backoff_max_ms = 100;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), TALLY_EINVAL);
    assert_null(c);
    assert_int_equal(tally_client_new(f->ep, "gaoguan", NULL, &c), 0);
    assert_int_equal(tally_client_add(c, "disputes resolved", 1, T0), TALLY_EBADNAME);
    assert_non_null(strstr(tally_client_last_error(c), "disputes resolved"));
    assert_int_equal(tally_client_add(c, "a/b", 1, T0), TALLY_EBADNAME);
    assert_int_equal(tally_client_add(c, "ok", 1, 946684799999LL), TALLY_ERANGE);
    assert_int_equal(tally_client_add(c, "ok", 1, 4102444800000LL), TALLY_ERANGE);
    assert_int_equal(tally_client_batch_size(c), 0);
    tally_client_destroy(&c);
    tally_client_destroy(&c); /* NULL: no-op */
    /* Without a township: a client that only delivers its spool. */
    assert_int_equal(tally_client_new(f->ep, NULL, NULL, NULL), TALLY_EINVAL);
    assert_int_equal(tally_client_new(f->ep, NULL, NULL, &c), 0);
    assert_int_equal(tally_client_add(c, "ok", 1, T0), TALLY_EINVAL);
    assert_non_null(strstr(tally_client_last_error(c), "without a township"));
    assert_int_equal(tally_client_batch_size(c), 0);
    tally_client_destroy(&c);
}

/* Batches close on a new time, on batch_limit, and samples with time 0
 * share the batch's clock reading. */
static void test_batching(void **state)
{
    fixture_t *f = *state;
    tally_client_opts_t o = {.batch_limit = 2};
    tally_client_t *c;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    assert_int_equal(tally_client_add(c, "a", 1, T0), 0);
    assert_int_equal(tally_client_add(c, "b", 2, T0), 0);
    assert_int_equal(tally_client_pending(c), 0);
    assert_int_equal(tally_client_add(c, "c", 3, T0), 0); /* limit: first batch closed */
    assert_int_equal(tally_client_pending(c), 1);
    assert_int_equal(tally_client_add(c, "d", 4, T0 + 1000), 0); /* new time */
    assert_int_equal(tally_client_pending(c), 2);
    assert_int_equal(tally_client_add(c, "e", 5, 0), 0); /* now: new time again */
    assert_int_equal(tally_client_pending(c), 3);
    usleep(3000);
    assert_int_equal(tally_client_add(c, "f", 6, 0), 0); /* joins the "now" batch */
    assert_int_equal(tally_client_pending(c), 3);
    assert_int_equal(tally_client_batch_size(c), 2);
    assert_int_equal(tally_client_send(c), 0);
    assert_int_equal(tally_client_pending(c), 4);
    assert_int_equal(tally_client_pending_samples(c), 6);
    assert_int_equal(tally_client_send(c), 0); /* empty batch: nothing */
    assert_int_equal(tally_client_pending(c), 4);
    tally_client_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spool_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stray_tmp_cleaned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_never_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unpersisted_undone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_spool_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batching, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
