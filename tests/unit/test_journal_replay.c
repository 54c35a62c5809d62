/* Unit tests of journal replay: torn tails, corruption, bad headers, newer
 * versions, segments and rotation, and replay speed: real files in a
 * mkdtemp directory and a real libuv loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "journal.h"
#include "journal_test_util.h"

/* ---- Helpers of these tests ---- */

static void poke(const char *path, off_t off, uint8_t xor_mask)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= xor_mask;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

/* Write n fixed-size records with policy ALWAYS into segment 1 and close. */
static void make_journal(fx_t *f, uint64_t n, size_t len)
{
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    append_n(f, 1, n, len);
    wait_durable(f, n);
    close_journal(f, 0);
}

/* ---- Damage ---- */

static void test_torn_tail(void **state)
{
    fx_t *f = *state;
    const uint64_t rs = OVH + 60;
    make_journal(f, 100, 60);
    char path[128];
    seg_path(f, 1, path, sizeof(path));
    assert_int_equal(file_size(path), HDR + 100 * rs);
    assert_int_equal(truncate(path, HDR + 100 * rs - 10), 0);

    /* Appending after a torn tail is refused until replay repairs it. */
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), TALLY_EIO);
    assert_non_null(strstr(journal_errmsg(&f->j), "journal_replay"));

    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 99);
    assert_false(c.bad_payload);
    assert_true(rep.torn_tail);
    assert_int_equal(rep.torn_offset, HDR + 99 * rs);
    assert_int_equal(rep.torn_bytes, rs - 10);
    assert_int_equal(rep.corrupt_regions, 0);
    assert_int_equal(rep.next_pos, 100);
    assert_non_null(strstr(rep.first_note, "journal-0000000000000001.tj: torn record at offset"));
    assert_int_equal(file_size(path), HDR + 99 * rs);
    coll_free(&c);

    assert_int_equal(jopen(f, &o, 1, 99), TALLY_EINVAL);
    assert_int_equal(jopen(f, &o, 1, rep.next_pos), 0);
    uint8_t buf[33];
    uint64_t pos;
    assert_int_equal(journal_append(&f->j, buf, payload_for(100, 33, buf), &pos), 0);
    assert_int_equal(pos, 100);
    wait_durable(f, 100);
    close_journal(f, 0);
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 100);
    assert_false(c.bad_payload);
    assert_int_equal(c.pos[99], 100);
    assert_int_equal(c.len[99], 33);
    assert_false(rep.torn_tail);
    assert_string_equal(rep.first_note, "");
    coll_free(&c);
}

static void test_corrupt_middle(void **state)
{
    fx_t *f = *state;
    const uint64_t rs = OVH + 60;
    make_journal(f, 100, 60);
    char path[128];
    seg_path(f, 1, path, sizeof(path));
    off_t size = file_size(path);
    poke(path, HDR + 49 * rs + OVH + 30, 0x01); /* payload of record 50 */
    poke(path, HDR + 69 * rs + 7, 0x80);        /* length of record 70: huge */
    poke(path, HDR + 89 * rs + 4, 40);          /* length of record 90: 60 -> 20 */
    /* Record 20 overwritten by a copy of record 19: its CRC holds, but a
     * position may never be applied twice. */
    uint8_t rec[OVH + 60];
    int fd = open(path, O_RDWR);
    assert_int_equal(pread(fd, rec, rs, HDR + 18 * rs), rs);
    assert_int_equal(pwrite(fd, rec, rs, HDR + 19 * rs), rs);
    close(fd);

    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 96);
    assert_false(c.bad_payload);
    for (uint64_t i = 0, want = 1; i < c.n; i++, want++) {
        if (want == 20 || want == 50 || want == 70 || want == 90)
            want++;
        assert_int_equal(c.pos[i], want);
    }
    assert_int_equal(rep.corrupt_regions, 4);
    assert_int_equal(rep.corrupt_bytes, 4 * rs);
    assert_int_equal(rep.corrupt_first_gen, 1);
    assert_int_equal(rep.corrupt_first_offset, HDR + 19 * rs);
    assert_int_equal(rep.pos_gaps, 4);
    assert_false(rep.torn_tail);
    char want[200];
    snprintf(want, sizeof(want),
             "journal-0000000000000001.tj: corrupt record at offset %llu; skipped %llu bytes; "
             "resumed at offset %llu",
             (unsigned long long)(HDR + 19 * rs), (unsigned long long)rs,
             (unsigned long long)(HDR + 20 * rs));
    assert_string_equal(rep.first_note, want);
    assert_int_equal(file_size(path), size); /* the middle is never cut */
    coll_free(&c);
}

static void test_bad_header(void **state)
{
    fx_t *f = *state;
    make_journal(f, 5, 60);
    char path[128], p7[128];
    seg_path(f, 1, path, sizeof(path));
    seg_path(f, 7, p7, sizeof(p7));
    coll_t c;
    journal_replay_report_t rep;
    /* A segment renamed to another gen is refused. */
    assert_int_equal(rename(path, p7), 0);
    assert_int_equal(replay(f, 0, 0, &c, &rep), TALLY_EIO);
    assert_non_null(strstr(rep.error, "the file was renamed or copied"));
    coll_free(&c);
    assert_int_equal(rename(p7, path), 0);
    poke(path, 20, 0x04); /* inside gen */
    assert_int_equal(replay(f, 0, 0, &c, &rep), TALLY_EIO);
    assert_int_equal(c.n, 0);
    assert_non_null(strstr(rep.error, "journal-0000000000000001.tj: header checksum mismatch"));
    coll_free(&c);
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), TALLY_EIO);
    assert_non_null(strstr(journal_errmsg(&f->j), "checksum"));
}

static void test_newer_version(void **state)
{
    fx_t *f = *state;
    make_journal(f, 5, 60);
    char path[128];
    seg_path(f, 1, path, sizeof(path));
    /* A well-formed version 2 header, checksum and all. */
    uint8_t h[HDR];
    int fd = open(path, O_RDWR);
    assert_int_equal(pread(fd, h, HDR, 0), HDR);
    h[8] = 2;
    uint32_t crc = crc32c(0, h, 44);
    memcpy(h + 44, &crc, 4); /* little-endian host */
    assert_int_equal(pwrite(fd, h, HDR, 0), HDR);
    close(fd);
    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), TALLY_ECONFIG);
    assert_int_equal(c.n, 0);
    assert_non_null(strstr(rep.error, "journal-0000000000000001.tj: format version 2 is newer"));
    assert_non_null(strstr(rep.error, "reads version 1"));
    coll_free(&c);
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), TALLY_ECONFIG);
}

/* ---- Segments ---- */

static void test_rotation(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    char p2[128], p3[128], p5[128];
    seg_path(f, 2, p2, sizeof(p2));
    seg_path(f, 3, p3, sizeof(p3));
    seg_path(f, 5, p5, sizeof(p5));
    uint64_t start;
    /* The writer is held inside its first sync, so the rotation stays
     * queued and a second one must wait. */
    atomic_store(&f->gate, true);
    append_n(f, 1, 1, 0);
    gate_wait(f);
    append_n(f, 2, 9, 0);
    assert_int_equal(journal_rotate(&f->j, 1, &start), TALLY_EINVAL);
    assert_int_equal(journal_rotate(&f->j, 2, &start), 0);
    assert_int_equal(start, 11);
    assert_int_equal(journal_rotate(&f->j, 3, &start), TALLY_EAGAIN);
    uv_sem_post(&f->gate_release);
    append_n(f, 11, 1, 0);
    wait_durable(f, 11);
    assert_true(file_size(p2) >= HDR); /* start durable => new segment exists */
    append_n(f, 12, 9, 0);
    fclose(fopen(p5, "w"));
    assert_int_equal(journal_rotate(&f->j, 5, &start), TALLY_EEXIST);
    unlink(p5);
    assert_int_equal(journal_rotate(&f->j, 3, &start), 0);
    assert_int_equal(start, 21);
    append_n(f, 21, 5, 0);
    wait_durable(f, 25);
    close_journal(f, 0);

    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 25);
    for (uint64_t i = 0; i < 25; i++)
        assert_int_equal(c.pos[i], i + 1);
    assert_int_equal(rep.segments, 3);
    assert_int_equal(rep.first_gen, 1);
    assert_int_equal(rep.last_gen, 3);
    assert_int_equal(rep.pos_gaps, 0);
    coll_free(&c);
    assert_int_equal(replay(f, 2, 15, &c, &rep), 0);
    assert_int_equal(c.n, 11);
    assert_int_equal(c.pos[0], 15);
    assert_int_equal(rep.skipped, 4);
    assert_int_equal(rep.segments, 2);
    coll_free(&c);

    unsigned removed = 0;
    assert_int_equal(journal_remove_before(f->dir, 3, &removed), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(file_size(p2), -1);
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(rep.segments, 1);
    assert_int_equal(rep.first_gen, 3);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.pos[0], 21);
    assert_int_equal(rep.next_pos, 26);
    coll_free(&c);

    /* Reopening the newest segment continues its positions; a rotation
     * with nothing pending still creates the new segment. */
    assert_int_equal(jopen(f, &o, 3, 0), 0);
    append_n(f, 26, 1, 0);
    wait_durable(f, 26);
    assert_int_equal(journal_rotate(&f->j, 4, &start), 0);
    assert_int_equal(start, 27);
    close_journal(f, 0);
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(rep.last_gen, 4);
    assert_int_equal(rep.next_pos, 27);
    assert_int_equal(c.n, 6);
    coll_free(&c);
    assert_int_equal(jopen(f, &o, 3, 0), TALLY_EINVAL); /* 4 is newer */
    assert_non_null(strstr(journal_errmsg(&f->j), "journal-0000000000000004.tj is newer"));
}

/* Damage at the end of a segment that has a successor is not a torn tail:
 * it is reported and left, and the next segment is read. */
static void test_corrupt_tail_of_older_segment(void **state)
{
    fx_t *f = *state;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_ALWAYS);
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    append_n(f, 1, 10, 60);
    assert_int_equal(journal_rotate(&f->j, 2, NULL), 0);
    append_n(f, 11, 10, 60);
    wait_durable(f, 20);
    close_journal(f, 0);
    char p1[128];
    seg_path(f, 1, p1, sizeof(p1));
    off_t size = file_size(p1);
    poke(p1, size - 5, 0xFF);
    coll_t c;
    journal_replay_report_t rep;
    assert_int_equal(replay(f, 0, 0, &c, &rep), 0);
    assert_int_equal(c.n, 19);
    assert_int_equal(c.pos[9], 11);
    assert_false(rep.torn_tail);
    assert_int_equal(rep.corrupt_regions, 1);
    assert_int_equal(rep.corrupt_first_offset, size - (OVH + 60));
    assert_int_equal(file_size(p1), size);
    coll_free(&c);
}

/* ---- Speed sanity (printed, not asserted) ---- */

static int count_cb(const void *payload, size_t len, uint64_t pos, void *ctx)
{
    (void)payload;
    uint64_t *n = ctx;
    if (pos != *n + 1 || len != 60)
        return TALLY_EIO;
    (*n)++;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_replay_many(void **state)
{
    fx_t *f = *state;
    const char *env = getenv("TEST_JOURNAL_RECORDS");
    uint64_t n = env ? strtoull(env, NULL, 10) : 1000000;
    journal_opts_t o = opts_for(f, JOURNAL_SYNC_NEVER);
    o.io = (journal_io_t){0};
    assert_int_equal(jopen(f, &o, 1, 0), 0);
    uint8_t buf[60];
    memset(buf, 0x5A, sizeof(buf));
    for (uint64_t p = 1; p <= n; p++) {
        assert_int_equal(journal_append(&f->j, buf, sizeof(buf), NULL), 0);
        if (p % 65536 == 0)
            uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    close_journal(f, 0);
    assert_int_equal(f->durable, n);
    uint64_t seen = 0;
    journal_replay_opts_t ro = {.on_record = count_cb, .ctx = &seen};
    journal_replay_report_t rep;
    double t0 = now_s();
    assert_int_equal(journal_replay(f->dir, &ro, &rep), 0);
    double dt = now_s() - t0;
    assert_int_equal(seen, n);
    assert_int_equal(rep.records, n);
    print_message("    replayed %llu records of 60 bytes in %.3f s: %.2f million/s\n",
                  (unsigned long long)n, dt, dt > 0 ? (double)n / dt / 1e6 : 0.0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_torn_tail),     T(test_corrupt_middle), T(test_bad_header),
        T(test_newer_version), T(test_rotation),       T(test_corrupt_tail_of_older_segment),
        T(test_replay_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
