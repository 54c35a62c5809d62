/* Unit tests of recovery at start-up: checkpoint and journal files
 * written by the test itself (no journal writer thread), recovered into
 * the state through ingest_replay(). */
#include "parts_test_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "ingest.h"
#include "journal_fmt.h"
#include "recover.h"

typedef struct fx {
    t_state_t st;
    t_sink_t replies;
    t_journal_t journal;
    ingest_t in;
    char dir[64];
    msgpack_sbuffer buf;
    /* the segment being written */
    FILE *seg;
    uint64_t seg_gen;
    long offsets[16]; /* of each record written, by position */
    bool accept_loss;
} fx_t;

static void on_stop(void *ctx, int code)
{
    (void)ctx;
    (void)code;
    fail_msg("ingest asked the daemon to stop during recovery");
}

static void fx_state(fx_t *f)
{
    t_state_init(&f->st, NULL);
    ingest_config_t ic = t_ingest_config(&f->st, &f->journal, &f->replies, on_stop, NULL);
    assert_int_equal(ingest_init(&f->in, &ic), 0);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_recover.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    msgpack_sbuffer_init(&f->buf);
    fx_state(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    ingest_free(&f->in);
    t_sink_free(&f->replies);
    t_state_free(&f->st);
    msgpack_sbuffer_destroy(&f->buf);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* ---- journal files, written the way the journal writes them ---- */

static void seg_open(fx_t *f, uint64_t gen, uint64_t start_pos)
{
    char path[256];
    assert_int_equal(journal_fmt_path(path, sizeof(path), f->dir, gen, ""), 0);
    f->seg = fopen(path, "wb");
    assert_non_null(f->seg);
    uint8_t hdr[JOURNAL_HEADER_SIZE];
    journal_fmt_header_encode(hdr, gen, start_pos, T_NOW);
    assert_int_equal(fwrite(hdr, 1, sizeof(hdr), f->seg), sizeof(hdr));
    f->seg_gen = gen;
}

/* Append the record f->buf at pos; keep only the first keep bytes of it
 * (a torn write) when keep is not 0. */
static void seg_record(fx_t *f, uint64_t pos, size_t keep)
{
    uint8_t hdr[JOURNAL_RECORD_OVERHEAD];
    journal_fmt_record_header(hdr, f->buf.data, (uint32_t)f->buf.size, pos);
    f->offsets[pos % 16] = ftell(f->seg);
    uint8_t rec[4096];
    memcpy(rec, hdr, sizeof(hdr));
    memcpy(rec + sizeof(hdr), f->buf.data, f->buf.size);
    size_t n = sizeof(hdr) + f->buf.size;
    assert_int_equal(fwrite(rec, 1, keep ? keep : n, f->seg), keep ? keep : n);
}

static void seg_close(fx_t *f)
{
    assert_int_equal(fclose(f->seg), 0);
    f->seg = NULL;
}

/* recover_load, the catalog, recover_replay: a start's order. */
static int recover(fx_t *f, recover_result_t *res)
{
    recover_state_t st = {f->dir,        &f->st.towns,   &f->st.metrics,
                          &f->st.engine, &f->st.dedup,   &f->in,
                          &f->st.log,    f->accept_loss, 0};
    int rc = recover_load(&st, res);
    if (rc != 0)
        return rc;
    t_state_declare(&f->st);
    rc = recover_replay(&st, res);
    if (rc == 0)
        ingest_set_position(&f->in, res->next_pos - 1);
    return rc;
}

static void test_journal_alone(void **state)
{
    fx_t *f = *state;
    seg_open(f, 1, 1);
    for (uint64_t pos = 1; pos <= 3; pos++) {
        t_submit(&f->buf, 1, pos, "gaoguan", T_NOW, 1, "disputes.screened=10");
        seg_record(f, pos, 0);
    }
    seg_close(f);
    recover_result_t res;
    assert_int_equal(recover(f, &res), 0);
    assert_false(res.checkpoint);
    assert_int_equal(res.journal_gen, 1);
    assert_int_equal(res.next_pos, 4);
    assert_int_equal(t_total(&f->st, "disputes.screened", ""), 30);
    assert_int_equal(ingest_last_pos(&f->in), 3);
    assert_true(t_logged(&f->st, "recovered 3 journal records from 1 segments"));
}

/* A crash in the middle of a write leaves a torn record at the tail: it is
 * cut off (it was never acknowledged) and the rest counts. */
static void test_torn_tail(void **state)
{
    fx_t *f = *state;
    seg_open(f, 1, 1);
    for (uint64_t pos = 1; pos <= 3; pos++) {
        t_submit(&f->buf, 1, pos, "gaoguan", T_NOW, 1, "disputes.screened=10");
        seg_record(f, pos, pos == 3 ? 25 : 0);
    }
    seg_close(f);
    recover_result_t res;
    assert_int_equal(recover(f, &res), 0);
    assert_int_equal(t_total(&f->st, "disputes.screened", ""), 20);
    assert_int_equal(res.next_pos, 3);
    assert_true(t_logged(&f->st, "cut a torn tail"));
    char path[256];
    journal_fmt_path(path, sizeof(path), f->dir, 1, "");
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, f->offsets[3]);
}

/* A record that checks out but cannot be applied stops the start, naming
 * the segment file, the offset and what was wrong. */
static void test_unappliable_record(void **state)
{
    fx_t *f = *state;
    seg_open(f, 1, 1);
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "disputes.screened=10");
    seg_record(f, 1, 0);
    proto_msg_t ping = {.type = PROTO_PING};
    ping.u.ping.req_id = 1;
    t_encode(&f->buf, &ping);
    seg_record(f, 2, 0);
    t_submit(&f->buf, 1, 3, "gaoguan", T_NOW, 1, "disputes.screened=10");
    seg_record(f, 3, 0);
    seg_close(f);
    recover_result_t res;
    assert_true(recover(f, &res) < 0);
    char want[256];
    snprintf(want, sizeof(want),
             "%s/journal-0000000000000001.tj, offset %ld (journal position 2): the record is not "
             "a valid submission",
             f->dir, f->offsets[2]);
    if (!t_logged(&f->st, want))
        fail_msg("the log lacks '%s':\n%s", want, f->st.logbuf);
    assert_true(t_logged(&f->st, "refusing to start without it"));
}

/* Without a checkpoint the journal must start at position 1. */
static void test_missing_start(void **state)
{
    fx_t *f = *state;
    seg_open(f, 3, 5);
    t_submit(&f->buf, 1, 5, "gaoguan", T_NOW, 1, "disputes.screened=10");
    seg_record(f, 5, 0);
    seg_close(f);
    recover_result_t res;
    assert_int_equal(recover(f, &res), TALLY_EIO);
    assert_true(t_logged(&f->st, "refusing to start with 4 acknowledged journal records missing: "
                                 "positions 1..4 are missing: the journal begins at "
                                 "journal-0000000000000003.tj, position 5"));
    assert_true(t_logged(&f->st, "--accept-loss"));
    assert_int_equal(t_total(&f->st, "disputes.screened", ""), 10); /* replayed, not served */
    /* Told to accept the loss, the start goes on and says so. */
    ingest_free(&f->in);
    t_state_free(&f->st);
    fx_state(f);
    f->accept_loss = true;
    assert_int_equal(recover(f, &res), 0);
    assert_true(res.loss_accepted);
    assert_true(t_logged(&f->st, "starting with 4 acknowledged journal records lost"));
    assert_int_equal(t_total(&f->st, "disputes.screened", ""), 10);
}

/* A segment deleted between two others: the positions it held are named. */
static void test_missing_middle_segment(void **state)
{
    fx_t *f = *state;
    uint64_t pos = 1;
    for (uint64_t gen = 1; gen <= 3; gen++) {
        seg_open(f, gen, pos);
        for (int i = 0; i < 3; i++, pos++) {
            t_submit(&f->buf, 1, pos, "gaoguan", T_NOW, 1, "disputes.screened=10");
            seg_record(f, pos, 0);
        }
        seg_close(f);
    }
    char path[256];
    journal_fmt_path(path, sizeof(path), f->dir, 2, "");
    assert_int_equal(unlink(path), 0);
    recover_result_t res;
    assert_int_equal(recover(f, &res), TALLY_EIO);
    assert_true(t_logged(&f->st, "refusing to start with 3 acknowledged journal records missing: "
                                 "3 positions are missing between segments, the first 4..6 "
                                 "before journal-0000000000000003.tj"));
}

/* The checkpoint, then the journal after it; records the checkpoint
 * covers are not applied twice. */
static void test_checkpoint_then_journal(void **state)
{
    fx_t *f = *state;
    /* A first life: two submissions, then a checkpoint at position 3. */
    t_state_declare(&f->st);
    char why[256];
    for (uint64_t seq = 1; seq <= 2; seq++) {
        t_submit(&f->buf, 1, seq, "gaoguan", T_NOW, 1, "disputes.screened=10");
        assert_int_equal(ingest_replay(&f->in, f->buf.data, f->buf.size, why, sizeof(why)), 0);
    }
    checkpoint_meta_t meta = {T_NOW, 2, 3, 77, 0};
    char err[256];
    assert_int_equal(checkpoint_write(f->dir, &meta, &f->st.towns, &f->st.metrics, &f->st.engine,
                                      &f->st.dedup, NULL, err, sizeof(err)),
                     0);
    /* Segment 2 repeats seq 2 (a resend logged twice) and adds seq 3. */
    seg_open(f, 2, 3);
    t_submit(&f->buf, 1, 2, "gaoguan", T_NOW, 1, "disputes.screened=10");
    seg_record(f, 3, 0);
    t_submit(&f->buf, 1, 3, "gaoguan", T_NOW, 1, "disputes.screened=10");
    seg_record(f, 4, 0);
    seg_close(f);
    /* A second life. */
    ingest_free(&f->in);
    t_state_free(&f->st);
    fx_state(f);
    recover_result_t res;
    assert_int_equal(recover(f, &res), 0);
    assert_true(res.checkpoint);
    assert_int_equal(res.ckpt_pos, 3);
    assert_int_equal(res.publish_seq, 77);
    assert_int_equal(res.next_pos, 5);
    assert_int_equal(t_total(&f->st, "disputes.screened", "gaoguan"), 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_journal_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unappliable_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_middle_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_then_journal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
