/* Durability of the real tallyd against damaged state files: a torn
 * journal tail, flipped bytes in middle records and other damage, journal
 * segments and checkpoints of a newer format version, damaged checkpoints.
 * The files are read and altered following the layouts documented in
 * daemon/journal.h and daemon/checkpoint.h, with the tests' own CRC-32C. */
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
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_durability_common.h"

#define FILE_N 8 /* submissions in the torn-tail and flipped-byte tests */

/* Submission i (1-based) carries 1 << (i - 1): a sum tells exactly which
 * submissions count. */
static int64_t bit_value(uint64_t i)
{
    return (int64_t)1 << (i - 1);
}

static void check_ack(const harness_ack_t *a, uint64_t seq, int status, int code)
{
    char buf[800];
    if (a->type != PROTO_ACK || a->seq != seq || a->status != status || a->code != code)
        fail_msg("expected ACK seq %" PRIu64 " status %d code %d, got %s", seq, status, code,
                 harness_ack_str(a, buf, sizeof(buf)));
}

static void submit_expect(harness_client_t *c, uint64_t seq, int64_t value, int status)
{
    harness_ack_t a;
    assert_int_equal(harness_submit_one(c, seq, "t1", harness_now_ms(), "dur.m0", value, &a), 0);
    check_ack(&a, seq, status, 0);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Submit seqs 1..n, each accepted, from a fresh client; its id goes to
 * id_out so the same client can resend after a restart. */
static void submit_bits(dur_fx_t *f, unsigned n, uint8_t id_out[PROTO_CLIENT_ID_LEN])
{
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    memcpy(id_out, c.client_id, PROTO_CLIENT_ID_LEN);
    for (uint64_t i = 1; i <= n; i++)
        submit_expect(&c, i, bit_value(i), PROTO_ACK_ACCEPTED);
    harness_client_close(&c);
}

/* A client that speaks with an earlier client's id. */
static void reopen_client(dur_fx_t *f, harness_client_t *c, const uint8_t id[PROTO_CLIENT_ID_LEN])
{
    assert_int_equal(harness_client_open(&f->h, c), 0);
    memcpy(c->client_id, id, PROTO_CLIENT_ID_LEN);
}

/* 2. A crash in the middle of writing the last record: cut 7 bytes off the
 * segment.  tallyd starts, logs the torn tail with its offset, counts the
 * first N-1 submissions, and takes the resent last one as new. */
static void test_torn_tail(void **state)
{
    dur_fx_t *f = *state;
    uint8_t id[PROTO_CLIENT_ID_LEN];
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    submit_bits(f, FILE_N, id);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);

    char path[HARNESS_PATH_MAX];
    dur_only_segment(f, path, sizeof(path));
    uint64_t offs[DUR_MAX_RECORDS], size, end;
    uint32_t lens[DUR_MAX_RECORDS];
    size_t n = dur_records(path, offs, lens, DUR_MAX_RECORDS, &size, &end);
    assert_int_equal(n, FILE_N);
    assert_int_equal(end, size);
    assert_true(lens[FILE_N - 1] > 7);
    assert_int_equal(truncate(path, (off_t)(size - 7)), 0);

    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    char needle[HARNESS_PATH_MAX + 64];
    snprintf(needle, sizeof(needle), "%s: torn record at offset %" PRIu64, base_name(path),
             offs[FILE_N - 1]);
    dur_expect_log(f, needle);
    int64_t first = 0;
    for (uint64_t i = 1; i < FILE_N; i++)
        first += bit_value(i);
    dur_expect_m0(f, first, "after the torn tail");

    /* The last submission was acknowledged before the file was cut by
     * hand: this stands for a crash in the middle of its write, before any
     * ACK.  Its resend (same client id and seq) must count, not be called
     * a duplicate; a second resend is a duplicate. */
    harness_client_t c;
    reopen_client(f, &c, id);
    submit_expect(&c, FILE_N, bit_value(FILE_N), PROTO_ACK_ACCEPTED);
    submit_expect(&c, FILE_N, bit_value(FILE_N), PROTO_ACK_DUPLICATE);
    submit_expect(&c, FILE_N + 1, bit_value(FILE_N + 1), PROTO_ACK_ACCEPTED);
    harness_client_close(&c);
    int64_t all = first + bit_value(FILE_N) + bit_value(FILE_N + 1);
    dur_expect_m0(f, all, "after resending the torn submission");

    /* Appends continued on a clean record boundary: after a crash the
     * segment holds the N-1 survivors, the resend and the new one, and
     * replays to the same totals. */
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    n = dur_records(path, offs, lens, DUR_MAX_RECORDS, &size, &end);
    assert_int_equal(n, FILE_N + 1);
    assert_int_equal(end, size);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    dur_expect_m0(f, all, "after a crash behind the cut tail");
    assert_int_equal(harness_count_in(harness_log(&f->h), "torn record"), 1);
    dur_clean_restart(f, all);
}

/* Every entry of dir (not recursing) belongs to uid; fails naming one
 * that does not. */
static void expect_owned(const char *dir, uid_t uid)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, "..") == 0)
            continue;
        char path[HARNESS_PATH_MAX + 300];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        assert_int_equal(lstat(path, &st), 0);
        if (st.st_uid != uid)
            fail_msg("%s belongs to uid %lu, not %lu", path, (unsigned long)st.st_uid,
                     (unsigned long)uid);
        n++;
    }
    closedir(d);
    assert_true(n > 3); /* ., the lock, a journal segment, a checkpoint at least */
}

/* A run as root on a state directory of another user (systemd's
 * StateDirectory= of the DynamicUser service; an operator's root shell
 * running tallyd --accept-loss once) runs as that user: every file it
 * leaves there is the owner's, so that the service starts on it (it could
 * not open root's journal segment and checkpoint). */
static void test_root_run_keeps_owner(void **state)
{
    dur_fx_t *f = *state;
    if (geteuid() != 0)
        skip(); /* only root can start as root and switch */
    const uid_t uid = 65534;
    const gid_t gid = 65534;
    /* The service's user must reach its state directory and the test's
     * ipc sockets beside it. */
    assert_int_equal(chmod(f->h.dir, 0777), 0);
    assert_int_equal(mkdir(f->h.state_dir, 0750), 0);
    assert_int_equal(chown(f->h.state_dir, uid, gid), 0);
    uint8_t id[PROTO_CLIENT_ID_LEN];
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    dur_expect_log(f, "running as that user and group 65534");
    submit_bits(f, 3, id);
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    expect_owned(f->h.state_dir, uid);
    dur_clean_restart(f, 7);
    expect_owned(f->h.state_dir, uid);
}

/* 3. One flipped byte inside the payload of record k of N: tallyd starts,
 * logs the corrupt region with its offsets, counts every other record
 * (those after k too) and keeps appending. */
static void test_flipped_byte(void **state)
{
    dur_fx_t *f = *state;
    const unsigned k = 4; /* 1-based */
    uint8_t id[PROTO_CLIENT_ID_LEN];
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    submit_bits(f, FILE_N, id);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);

    char path[HARNESS_PATH_MAX];
    dur_only_segment(f, path, sizeof(path));
    uint64_t offs[DUR_MAX_RECORDS], size, end;
    uint32_t lens[DUR_MAX_RECORDS];
    size_t n = dur_records(path, offs, lens, DUR_MAX_RECORDS, &size, &end);
    assert_int_equal(n, FILE_N);
    size_t len;
    uint8_t *buf = dur_read_all(path, &len);
    buf[offs[k - 1] + DUR_JNL_REC_HEAD + lens[k - 1] / 2] ^= 0x5A;
    dur_write_all(path, buf, len);
    free(buf);

    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    char needle[HARNESS_PATH_MAX + 128];
    snprintf(needle, sizeof(needle),
             "%s: corrupt record at offset %" PRIu64 "; skipped %" PRIu64
             " bytes; resumed at offset %" PRIu64,
             base_name(path), offs[k - 1], offs[k] - offs[k - 1], offs[k]);
    dur_expect_log(f, needle);
    int64_t want = 0;
    for (uint64_t i = 1; i <= FILE_N; i++)
        if (i != k)
            want += bit_value(i);
    dur_expect_m0(f, want, "after skipping the corrupt record");

    harness_client_t c;
    reopen_client(f, &c, id);
    submit_expect(&c, FILE_N + 1, bit_value(FILE_N + 1), PROTO_ACK_ACCEPTED);
    submit_expect(&c, FILE_N, bit_value(FILE_N), PROTO_ACK_DUPLICATE);
    harness_client_close(&c);
    want += bit_value(FILE_N + 1);
    dur_expect_m0(f, want, "after a new submission behind the corrupt record");

    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    dur_expect_m0(f, want, "after a crash with the corrupt record still there");
    assert_int_equal(harness_count_in(harness_log(&f->h), needle), 2);
    dur_clean_restart(f, want);
}

/* 3b. More kinds of damage, each on a fresh daemon: what tallyd must count
 * afterwards and the problem sentence its log must contain (%s is the
 * segment's name, offsets are filled in from the record table). */
enum damage {
    CUT_IN_HEADER,    /* last record: only 5 bytes of its header left */
    CUT_AFTER_HEADER, /* last record: header complete, payload gone */
    ZEROS_AT_END,     /* 100 zero bytes after the last record (preallocation) */
    LAST_FLIPPED,     /* last record's payload damaged, length intact */
    LEN_HUGE,         /* record k's length field far beyond the file */
    LEN_SHORT,        /* record k's length one byte short */
    POS_FLIPPED,      /* record k's position field */
    MAGIC_ZEROED,     /* record k's magic */
    TWO_RECORDS,      /* records k and k + 2 */
    DAMAGE_COUNT
};

static const char *const damage_name[DAMAGE_COUNT] = {
    "cut in header", "cut after header", "zeros at end", "last flipped", "length huge",
    "length short",  "pos flipped",      "magic zeroed", "two records",
};

static void damage_one(dur_fx_t *f, enum damage d)
{
    const unsigned k = 3; /* 1-based, a middle record */
    uint8_t id[PROTO_CLIENT_ID_LEN];
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    submit_bits(f, FILE_N, id);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);
    char path[HARNESS_PATH_MAX];
    dur_only_segment(f, path, sizeof(path));
    uint64_t offs[DUR_MAX_RECORDS], size, end;
    uint32_t lens[DUR_MAX_RECORDS];
    assert_int_equal(dur_records(path, offs, lens, DUR_MAX_RECORDS, &size, &end), FILE_N);
    size_t len;
    uint8_t *buf = dur_read_all(path, &len);
    uint8_t *big = calloc(len + 100, 1);
    assert_non_null(big);
    memcpy(big, buf, len);
    free(buf);
    uint64_t last = offs[FILE_N - 1], rk = offs[k - 1];
    uint64_t newlen = len;
    char needle[HARNESS_PATH_MAX + 160], needle2[HARNESS_PATH_MAX + 160] = "";
    const char *seg = base_name(path);
    unsigned lost1 = 0, lost2 = 0; /* 1-based submissions that must not count */
    switch (d) {
    case CUT_IN_HEADER:
    case CUT_AFTER_HEADER:
        newlen = last + (d == CUT_IN_HEADER ? 5 : DUR_JNL_REC_HEAD);
        lost1 = FILE_N;
        snprintf(needle, sizeof(needle), "%s: torn record at offset %" PRIu64, seg, last);
        break;
    case ZEROS_AT_END:
        newlen = len + 100;
        snprintf(needle, sizeof(needle), "%s: torn record at offset %" PRIu64, seg, (uint64_t)len);
        break;
    case LAST_FLIPPED:
        big[last + DUR_JNL_REC_HEAD + lens[FILE_N - 1] / 2] ^= 0x01;
        lost1 = FILE_N;
        snprintf(needle, sizeof(needle), "%s: torn record at offset %" PRIu64, seg, last);
        break;
    case LEN_HUGE:
    case LEN_SHORT:
    case POS_FLIPPED:
    case MAGIC_ZEROED:
    case TWO_RECORDS:
        if (d == LEN_HUGE)
            big[rk + 7] = 0x7F;
        else if (d == LEN_SHORT)
            dur_put32(big + rk + 4, lens[k - 1] - 1);
        else if (d == POS_FLIPPED)
            big[rk + 12] ^= 0x10;
        else if (d == MAGIC_ZEROED)
            memset(big + rk, 0, 4);
        else
            big[rk + DUR_JNL_REC_HEAD + 1] ^= 0x80;
        lost1 = k;
        snprintf(needle, sizeof(needle),
                 "%s: corrupt record at offset %" PRIu64 "; skipped %" PRIu64
                 " bytes; resumed at offset %" PRIu64,
                 seg, rk, offs[k] - rk, offs[k]);
        if (d == TWO_RECORDS) {
            uint64_t r2 = offs[k + 1];
            big[r2 + DUR_JNL_REC_HEAD + 1] ^= 0x80;
            lost2 = k + 2;
            snprintf(needle2, sizeof(needle2),
                     "%s: corrupt record at offset %" PRIu64 "; skipped %" PRIu64
                     " bytes; resumed at offset %" PRIu64,
                     seg, r2, offs[k + 2] - r2, offs[k + 2]);
        }
        break;
    default:
        fail();
    }
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, big, newlen), (ssize_t)newlen);
    close(fd);
    free(big);

    char what[128];
    snprintf(what, sizeof(what), "damage '%s'", damage_name[d]);
    if (harness_start(&f->h, NULL, NULL) != 0)
        fail_msg("%s: tallyd does not start", what);
    dur_expect_log(f, needle);
    if (needle2[0])
        dur_expect_log(f, needle2);
    int64_t want = 0;
    for (unsigned i = 1; i <= FILE_N; i++)
        if (i != lost1 && i != lost2)
            want += bit_value(i);
    dur_expect_m0(f, want, what);

    /* It goes on appending, and a restart replays the same. */
    harness_client_t c;
    reopen_client(f, &c, id);
    submit_expect(&c, FILE_N + 1, bit_value(FILE_N + 1), PROTO_ACK_ACCEPTED);
    harness_client_close(&c);
    want += bit_value(FILE_N + 1);
    dur_clean_restart(f, want);
    print_message("%s: %s\n", what, needle);
}

static void test_damage_kinds(void **state)
{
    dur_fx_t *f = *state;
    for (int d = 0; d < DAMAGE_COUNT; d++) {
        /* A fresh daemon and state directory for each kind. */
        assert_int_equal(harness_finish(&f->h), 0);
        harness_cleanup(&f->h);
        assert_int_equal(harness_init(&f->h), 0);
        damage_one(f, (enum damage)d);
    }
}

/* 7. A segment declaring format version 2 (header CRC fixed): tallyd must
 * refuse to start, naming the file and both versions, and leave the file
 * as it is; with version 1 restored it starts with the data intact. */
static void test_newer_format(void **state)
{
    dur_fx_t *f = *state;
    uint8_t id[PROTO_CLIENT_ID_LEN];
    assert_int_equal(dur_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    submit_bits(f, 2, id);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);

    char path[HARNESS_PATH_MAX];
    dur_only_segment(f, path, sizeof(path));
    size_t len;
    uint8_t *orig = dur_read_all(path, &len);
    assert_true(len >= DUR_JNL_HEADER);
    assert_memory_equal(orig, "TALLYJNL", 8);
    assert_int_equal(dur_get32(orig + 8), 1);
    assert_int_equal(dur_get32(orig + 44), dur_crc32c(0, orig, 44));
    uint8_t *v2 = malloc(len);
    assert_non_null(v2);
    memcpy(v2, orig, len);
    dur_put32(v2 + 8, 2);
    dur_put32(v2 + 44, dur_crc32c(0, v2, 44));
    dur_write_all(path, v2, len);

    const char *args[] = {"-r", f->h.req_endpoint, "-p", f->h.pub_endpoint,
                          "-s", f->h.state_dir,    NULL};
    static char out[16384];
    int st = harness_run(args, out, sizeof(out), 10000);
    size_t after_len;
    uint8_t *after = dur_read_all(path, &after_len);
    bool same = after_len == len && memcmp(after, v2, len) == 0;
    free(after);
    free(v2);
    char names[DUR_MAX_FILES][HARNESS_PATH_MAX];
    size_t nseg = dur_list(f->h.state_dir, "journal-", ".tj", names, DUR_MAX_FILES);
    if (st == 0 || st == -1 || strstr(out, base_name(path)) == NULL ||
        strstr(out, "version 2") == NULL || strstr(out, "version 1") == NULL) {
        free(orig);
        fail_msg("tallyd on a version 2 segment: status %d, output:\n%s", st, out);
    }
    print_message("refused: status %d: %s", st, out);
    if (!same || nseg != 1) {
        free(orig);
        fail_msg("tallyd changed the state directory while refusing it (file unchanged: %d, "
                 "segments: %zu)",
                 same, nseg);
    }

    dur_write_all(path, orig, len);
    free(orig);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    dur_expect_m0(f, bit_value(1) + bit_value(2), "after restoring version 1");
}

/* ---- checkpoints ------------------------------------------------------------- */

/* The checkpoint files of the state directory, oldest first. */
static size_t list_ckp(dur_fx_t *f, char names[][HARNESS_PATH_MAX])
{
    return dur_list(f->h.state_dir, "state-", ".ckp", names, DUR_MAX_FILES);
}

/* Flip one byte in the middle of a file. */
static void flip_middle(const char *path)
{
    size_t len;
    uint8_t *buf = dur_read_all(path, &len);
    buf[len / 2] ^= 0x20;
    dur_write_all(path, buf, len);
    free(buf);
}

/* 7b. The newest checkpoint is damaged: tallyd sets it aside, loads the
 * one before it and replays the journal kept since, losing nothing. */
static void test_damaged_checkpoint_fallback(void **state)
{
    dur_fx_t *f = *state;
    uint8_t id[PROTO_CLIENT_ID_LEN];
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    submit_bits(f, 2, id);
    dur_clean_restart(f, bit_value(1) + bit_value(2)); /* first checkpoint */
    harness_client_t c;
    reopen_client(f, &c, id);
    submit_expect(&c, 3, bit_value(3), PROTO_ACK_ACCEPTED);
    submit_expect(&c, 4, bit_value(4), PROTO_ACK_ACCEPTED);
    harness_client_close(&c);
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0); /* second checkpoint */

    static char ckp[DUR_MAX_FILES][HARNESS_PATH_MAX];
    size_t n = list_ckp(f, ckp);
    if (n != 2)
        fail_msg("expected 2 checkpoints after two clean stops, found %zu", n);
    char path[2 * HARNESS_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", f->h.state_dir, ckp[1]);
    flip_middle(path);

    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    char needle[2 * HARNESS_PATH_MAX + 64];
    snprintf(needle, sizeof(needle), "skipped damaged checkpoint %s", ckp[1]);
    dur_expect_log(f, needle);
    snprintf(needle, sizeof(needle), "loaded %s/%s instead", f->h.state_dir, ckp[0]);
    dur_expect_log(f, needle);
    int64_t all = bit_value(1) + bit_value(2) + bit_value(3) + bit_value(4);
    dur_expect_m0(f, all, "after falling back on the older checkpoint");
    /* Resends of what the damaged file held are still duplicates. */
    reopen_client(f, &c, id);
    submit_expect(&c, 4, bit_value(4), PROTO_ACK_DUPLICATE);
    submit_expect(&c, 5, bit_value(5), PROTO_ACK_ACCEPTED);
    harness_client_close(&c);
    dur_clean_restart(f, all + bit_value(5));
}

/* 7c. The only checkpoint is damaged, right after the first clean stop:
 * the acknowledged submissions must still be recoverable (the journal
 * they came from is the only other copy). */
static void test_damaged_only_checkpoint(void **state)
{
    dur_fx_t *f = *state;
    uint8_t id[PROTO_CLIENT_ID_LEN];
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    submit_bits(f, 2, id);
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0); /* first checkpoint */
    static char ckp[DUR_MAX_FILES][HARNESS_PATH_MAX], seg[DUR_MAX_FILES][HARNESS_PATH_MAX];
    size_t n = list_ckp(f, ckp);
    size_t nseg = dur_list(f->h.state_dir, "journal-", ".tj", seg, DUR_MAX_FILES);
    assert_int_equal(n, 1);
    char path[2 * HARNESS_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", f->h.state_dir, ckp[0]);
    flip_middle(path);
    if (harness_start(&f->h, NULL, NULL) != 0) {
        int first = f->h.last_status;
        /* What a supervisor restarting it (systemd Restart=) would get. */
        int rc = harness_start(&f->h, NULL, NULL);
        int64_t total = -1;
        if (rc == 0) {
            harness_client_t c;
            assert_int_equal(harness_client_open(&f->h, &c), 0);
            assert_int_equal(harness_snapshot(&c, "", &f->t), 0);
            harness_client_close(&c);
            harness_value_t v;
            total = harness_table_get(&f->t, "dur.m0", "t1", "total", &v) && v.present ? v.num : 0;
        }
        fail_msg("DAEMON BUG: the only checkpoint %s is damaged: tallyd refuses to start "
                 "(status %d), and the journal it covered was deleted when it was written "
                 "(%zu segments were left: %s), so the 2 acknowledged submissions are gone; "
                 "a second start %s (total %" PRId64 ", expected %" PRId64 ")",
                 ckp[0], first, nseg, nseg ? seg[0] : "none",
                 rc == 0 ? "comes up EMPTY without complaint: the damaged file was renamed aside"
                         : "fails too",
                 total, bit_value(1) + bit_value(2));
    }
    dur_expect_m0(f, bit_value(1) + bit_value(2), "after the only checkpoint was damaged");
}

/* 7d. A checkpoint declaring format version 99 (CRC fixed): refused with
 * the file and the versions named, left as it is; restored, it loads. */
static void test_newer_checkpoint_format(void **state)
{
    dur_fx_t *f = *state;
    uint8_t id[PROTO_CLIENT_ID_LEN];
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    submit_bits(f, 2, id);
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    static char ckp[DUR_MAX_FILES][HARNESS_PATH_MAX];
    assert_int_equal(list_ckp(f, ckp), 1);
    char path[2 * HARNESS_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", f->h.state_dir, ckp[0]);
    size_t len;
    uint8_t *orig = dur_read_all(path, &len);
    assert_true(len > 68);
    assert_memory_equal(orig, "TALLYCKP", 8);
    uint32_t version = dur_get32(orig + 8);
    assert_true(version >= 1 && version < 99);
    assert_int_equal(dur_get32(orig + len - 4), dur_crc32c(0, orig, len - 4));
    uint8_t *v2 = malloc(len);
    assert_non_null(v2);
    memcpy(v2, orig, len);
    dur_put32(v2 + 8, 99);
    dur_put32(v2 + len - 4, dur_crc32c(0, v2, len - 4));
    dur_write_all(path, v2, len);

    const char *args[] = {"-r", f->h.req_endpoint, "-p", f->h.pub_endpoint,
                          "-s", f->h.state_dir,    NULL};
    static char out[16384];
    int st = harness_run(args, out, sizeof(out), 10000);
    size_t after_len;
    uint8_t *after = dur_read_all(path, &after_len);
    bool same = after_len == len && memcmp(after, v2, len) == 0;
    free(after);
    free(v2);
    if (st == 0 || st == -1 || strstr(out, ckp[0]) == NULL || strstr(out, "version 99") == NULL ||
        strstr(out, "reads versions 1 to") == NULL || !same) {
        free(orig);
        fail_msg("tallyd on a version 99 checkpoint: status %d, file unchanged %d, output:\n%s", st,
                 same, out);
    }
    print_message("refused: status %d: %s", st, out);
    dur_write_all(path, orig, len);
    free(orig);
    assert_int_equal(harness_start(&f->h, NULL, NULL), 0);
    dur_expect_m0(f, bit_value(1) + bit_value(2), "after restoring the checkpoint");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_torn_tail, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_root_run_keeps_owner, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_damage_kinds, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_newer_format, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_checkpoint_fallback, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_only_checkpoint, dur_setup, dur_teardown),
        cmocka_unit_test_setup_teardown(test_newer_checkpoint_format, dur_setup, dur_teardown),
    };
    /* TALLY_DUR_TEST=<glob> runs only the matching tests. */
    if (getenv("TALLY_DUR_TEST") != NULL)
        cmocka_set_test_filter(getenv("TALLY_DUR_TEST"));
    return cmocka_run_group_tests_name("durability of files", tests, NULL, NULL);
}
