/* Unit tests of ingest: a decoded SUBMIT in, exactly one ACK out, through
 * a recording reply sink and a journal of the test's own. */
#include "parts_test_util.h"

#include "ingest.h"

typedef struct fx {
    t_state_t st;
    t_sink_t replies;
    t_journal_t journal;
    ingest_t in;
    int stops;
    msgpack_sbuffer buf;
    proto_sample_t samples[PROTO_SAMPLES_MAX];
} fx_t;

static void on_stop(void *ctx, int code)
{
    (void)code;
    ((fx_t *)ctx)->stops++;
}

static const char closed_conf[] = "[limits]\nmax_series = 8\nmax_clients = 2\n"
                                  "[township gaoguan]\nname = 高观镇\n[township gecheng]\n"
                                  "[metric disputes.screened]\nkind = counter\n"
                                  "max = 9223372036854775807\nlabel = 排查矛盾纠纷\n"
                                  "[metric disputes.resolved]\nkind = counter\n"
                                  "[metric grid.zones]\nkind = gauge\n"
                                  "[ratio disputes.resolution_rate]\n"
                                  "numerator = disputes.resolved\n"
                                  "denominator = disputes.screened\n";

static const char open_conf[] = "[limits]\nmax_townships = 2\nmax_metrics = 3\n"
                                "rate = 10\nburst = 10\n";

static void fx_init(fx_t *f, const char *conf, bool secured)
{
    memset(f, 0, sizeof(*f));
    t_state_init(&f->st, conf);
    t_state_declare(&f->st);
    msgpack_sbuffer_init(&f->buf);
    ingest_config_t ic = t_ingest_config(&f->st, &f->journal, &f->replies, on_stop, f);
    ic.secured = secured;
    assert_int_equal(ingest_init(&f->in, &ic), 0);
    assert_int_equal(ingest_set_catalog(&f->in, &f->st.cfg), 0);
}

static int setup_open(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    fx_init(f, NULL, false);
    *state = f;
    return 0;
}

static int setup_closed(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    fx_init(f, closed_conf, false);
    *state = f;
    return 0;
}

static int setup_limited(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    fx_init(f, open_conf, false);
    *state = f;
    return 0;
}

static int setup_secured(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    fx_init(f, closed_conf, true);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    ingest_free(&f->in);
    t_sink_free(&f->replies);
    msgpack_sbuffer_destroy(&f->buf);
    t_state_free(&f->st);
    free(f);
    return 0;
}

/* Decode f->buf and hand it to ingest as the peer "P<peer>" would. */
static void hand_in(fx_t *f, char peer, const keyring_identity_t *who)
{
    proto_msg_t m;
    proto_error_t err;
    assert_int_equal(
        proto_decode(f->buf.data, f->buf.size, &m, f->samples, PROTO_SAMPLES_MAX, &err), 0);
    char rid[2] = {'P', peer};
    ingest_submit(&f->in, rid, 2, f->buf.data, f->buf.size, &m.u.submit, who);
}

/* The only reply so far is an ACK of seq with status (and code when
 * rejected); returns it.  Clears the recorder. */
static proto_ack_t expect_ack(fx_t *f, uint64_t seq, int status, int code)
{
    assert_int_equal(f->replies.n, 1);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_ACK);
    assert_int_equal(m->u.ack.seq, seq);
    assert_int_equal(m->u.ack.status, status);
    assert_int_equal(m->u.ack.code, code < 0 ? -code : code);
    if (status == PROTO_ACK_REJECTED)
        assert_true(m->u.ack.message.len > 0);
    proto_ack_t a = m->u.ack;
    return a;
}

/* Like expect_ack for a rejection, and the message contains text. */
static void expect_reject(fx_t *f, uint64_t seq, int code, const char *field, const char *text)
{
    proto_ack_t a = expect_ack(f, seq, PROTO_ACK_REJECTED, code);
    char msg[PROTO_MESSAGE_MAX + 1];
    snprintf(msg, sizeof(msg), "%.*s", (int)a.message.len, a.message.ptr);
    if (!strstr(msg, text))
        fail_msg("message '%s' lacks '%s'", msg, text);
    if (field)
        assert_true(proto_str_eq(a.field, field));
    assert_int_equal(f->journal.appended, 0);
    t_sink_clear(&f->replies);
}

/* ---- accepted, duplicate, and the journal's say ---- */

static void test_accept_waits_for_the_journal(void **state)
{
    fx_t *f = *state;
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 2, "disputes.screened=3", "disputes.resolved=2");
    hand_in(f, 'a', NULL);
    /* Journaled at once, but neither counted nor acknowledged before the
     * journal has it: nothing a crash could take back is counted. */
    assert_int_equal(f->replies.n, 0);
    assert_int_equal(f->journal.appended, 1);
    assert_memory_equal(f->journal.last, f->buf.data, f->buf.size);
    assert_int_equal(t_total(&f->st, "disputes.screened", "gaoguan"), -1);
    assert_int_equal(ingest_waiting(&f->in), 1);
    assert_int_equal(ingest_pending_count(&f->in), 1);
    ingest_on_durable(&f->in, 1);
    assert_int_equal(t_total(&f->st, "disputes.screened", "gaoguan"), 3);
    assert_int_equal(t_total(&f->st, "disputes.resolved", ""), 2);
    assert_int_equal(ingest_pending_count(&f->in), 0);
    expect_ack(f, 1, PROTO_ACK_ACCEPTED, 0);
    assert_memory_equal(f->replies.v[0].head, "Pa", 2);
    /* At debug level every submission is logged with its client id. */
    assert_true(t_logged(&f->st, "accepted client 01010101010101010101010101010101 seq 1 "
                                 "township 'gaoguan', 2 samples"));
    /* Time stamps say their UTC offset: "...:SS.mmm+0800 tallyd". */
    const char *at = strstr(f->st.logbuf, " tallyd debug: accepted");
    assert_non_null(at);
    assert_true(at - f->st.logbuf >= 5 && (at[-5] == '+' || at[-5] == '-'));
    for (int i = 1; i <= 4; i++)
        assert_true(at[-i] >= '0' && at[-i] <= '9');
    assert_int_equal(ingest_waiting(&f->in), 0);
    assert_int_equal(f->st.stats.submissions_accepted, 1);
    assert_int_equal(f->st.stats.samples_accepted, 2);
}

/* ACKs leave in journal order, each once its own record is durable. */
static void test_acks_follow_durability(void **state)
{
    fx_t *f = *state;
    for (uint64_t seq = 1; seq <= 3; seq++) {
        t_submit(&f->buf, 1, seq, "gaoguan", T_NOW, 1, "talks=1");
        hand_in(f, 'a', NULL);
    }
    assert_int_equal(f->replies.n, 0);
    ingest_on_durable(&f->in, 2);
    assert_int_equal(f->replies.n, 2);
    assert_int_equal(t_sink_at(&f->replies, 0)->u.ack.seq, 1);
    assert_int_equal(t_sink_at(&f->replies, 1)->u.ack.seq, 2);
    ingest_on_durable(&f->in, 1); /* an older report changes nothing */
    assert_int_equal(f->replies.n, 2);
    ingest_on_durable(&f->in, 3);
    assert_int_equal(f->replies.n, 3);
    assert_int_equal(t_total(&f->st, "talks", ""), 3);
}

/* How many times text occurs in the log. */
static size_t logged_times(fx_t *f, const char *text)
{
    fflush(f->st.log.out);
    size_t n = 0;
    for (const char *p = f->st.logbuf; p != NULL && (p = strstr(p, text)) != NULL;
         p += strlen(text))
        n++;
    return n;
}

/* A client that timed out on a full disk and resent seq 330 on four new
 * connections leaves five ACKs, due at once when the journal catches up,
 * for connections that are gone.  The log says once what that means for
 * the client, and how many more times it happened (log_flush, which the
 * daemon's timer runs), not five identical lines. */
static void test_acks_to_gone_clients(void **state)
{
    fx_t *f = *state;
    t_submit(&f->buf, 7, 330, "gaoguan", T_NOW, 1, "talks=4");
    for (char peer = 'a'; peer <= 'e'; peer++)
        hand_in(f, peer, NULL);
    assert_int_equal(f->journal.appended, 1);
    f->replies.refuse = TALLY_ENOTFOUND;
    f->replies.refuse_n = 5;
    ingest_on_durable(&f->in, 1);
    assert_int_equal(f->replies.tries, 5);
    assert_int_equal(f->st.stats.unroutable_replies, 5);
    static const char line[] =
        "info: ACK of seq 330 not delivered: the client that sent it disconnected before its "
        "ACK; the submission is counted, and a resend will be answered DUPLICATE";
    assert_int_equal(logged_times(f, line), 1);
    assert_int_equal(logged_times(f, "(repeated 4 more times within "), 0);
    log_flush(&f->st.log, clock_mono_ms());
    assert_int_equal(logged_times(f, line), 2);
    assert_int_equal(logged_times(f, "DUPLICATE (repeated 4 more times within "), 1);
    assert_int_equal(t_total(&f->st, "talks", "gaoguan"), 4);
}

/* A resend is not applied again; its ACK waits until the original is
 * durable, since the original may still be on its way to the disk. */
static void test_duplicate(void **state)
{
    fx_t *f = *state;
    t_submit(&f->buf, 7, 5, "gaoguan", T_NOW, 1, "talks=4");
    hand_in(f, 'a', NULL);
    hand_in(f, 'b', NULL);
    assert_int_equal(f->journal.appended, 1);
    assert_int_equal(f->replies.n, 0);
    ingest_on_durable(&f->in, 1);
    assert_int_equal(f->replies.n, 2);
    assert_int_equal(t_sink_at(&f->replies, 0)->u.ack.status, PROTO_ACK_ACCEPTED);
    assert_int_equal(t_sink_at(&f->replies, 1)->u.ack.status, PROTO_ACK_DUPLICATE);
    assert_memory_equal(f->replies.v[1].head, "Pb", 2);
    t_sink_clear(&f->replies);
    /* Once everything is durable a duplicate is answered at once, even if
     * the clock has moved past max_age since. */
    t_now_ms += 365LL * 86400000;
    hand_in(f, 'c', NULL);
    expect_ack(f, 5, PROTO_ACK_DUPLICATE, 0);
    assert_int_equal(t_total(&f->st, "talks", "gaoguan"), 4);
    assert_int_equal(f->st.stats.duplicates, 2);
}

/* ---- every reason to reject ---- */

static void test_reject_stopping(void **state)
{
    fx_t *f = *state;
    ingest_stop_accepting(&f->in);
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "talks=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 1, TALLY_EUNAVAIL, "", "stopping");
    assert_int_equal(t_total(&f->st, "talks", ""), -1);
}

static void test_reject_catalog(void **state)
{
    fx_t *f = *state;
    t_submit(&f->buf, 1, 1, "nowhere", T_NOW, 1, "disputes.screened=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 1, TALLY_EUNKTOWN, "township", "township 'nowhere' is not in the catalog");
    assert_true(t_logged(&f->st, "rejected client 01010101010101010101010101010101 seq 1 "
                                 "township 'nowhere', 1 samples: township 'nowhere' is not in "
                                 "the catalog (UNKNOWN_TOWNSHIP)"));
    t_submit(&f->buf, 1, 2, "gaoguan", T_NOW, 2, "disputes.screened=1", "disputes.resolvd=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 2, TALLY_EUNKMETRIC, "samples[1].metric",
                  "samples[1].metric: metric 'disputes.resolvd' is not in the catalog");
}

/* A township's name or a metric's or ratio's label where an id belongs:
 * refused naming the id, in a closed catalog and in an open one (where it
 * would otherwise become a series of its own); nothing added, nothing
 * journaled. */
static void test_reject_labels(void **state)
{
    fx_t *f = *state;
    bool open = !f->st.cfg.catalog_closed_metrics;
    uint32_t towns = intern_count(&f->st.towns), metrics = intern_count(&f->st.metrics);
    if (!open) {
        t_submit(&f->buf, 1, 1, "高观镇", T_NOW, 1, "disputes.screened=1");
        hand_in(f, 'a', NULL);
        expect_reject(f, 1, TALLY_EUNKTOWN, "township",
                      "township '高观镇' is the name of township 'gaoguan' in the catalog; submit "
                      "its id 'gaoguan'");
    }
    const char *town = open ? "t1" : "gaoguan";
    t_submit(&f->buf, 1, 2, town, T_NOW, 2, "disputes.screened=1",
             open ? "法治理论考试参考人数=94" : "排查矛盾纠纷=3");
    hand_in(f, 'a', NULL);
    expect_reject(f, 2, TALLY_EUNKMETRIC, "samples[1].metric",
                  open ? "samples[1].metric: '法治理论考试参考人数' is the label of metric "
                         "'law_exam.takers' in the catalog; submit its id 'law_exam.takers'"
                       : "samples[1].metric: '排查矛盾纠纷' is the label of metric "
                         "'disputes.screened' in the catalog; submit its id 'disputes.screened'");
    if (open) {
        t_submit(&f->buf, 1, 3, town, T_NOW, 1, "矛盾纠纷化解率=1");
        hand_in(f, 'a', NULL);
        expect_reject(f, 3, TALLY_EKIND, "samples[0].metric",
                      "'矛盾纠纷化解率' is the label of the derived ratio "
                      "'disputes.resolution_rate'");
    }
    assert_int_equal(intern_count(&f->st.towns), towns);
    assert_int_equal(intern_count(&f->st.metrics), metrics);
    assert_int_equal(
        intern_find(&f->st.metrics, "法治理论考试参考人数", strlen("法治理论考试参考人数")),
        TALLY_ENOTFOUND);
}

static void test_reject_ratio(void **state)
{
    fx_t *f = *state;
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "disputes.resolution_rate=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 1, TALLY_EKIND, "samples[0].metric", "is a derived ratio");
}

static void test_reject_time(void **state)
{
    fx_t *f = *state;
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW + f->st.cfg.skew_ms + 1, 1, "disputes.screened=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 1, TALLY_EFUTURE, "time_ms",
                  "time_ms: 1718453100001 (2024-06-15T12:05:00Z) is 5 min ahead of the daemon's "
                  "clock; at most 5 min ([limits] skew) are allowed");
    t_submit(&f->buf, 1, 2, "gaoguan", T_NOW - f->st.cfg.max_age_ms - 1, 1, "disputes.screened=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 2, TALLY_ETOOOLD, "time_ms",
                  "(2014-06-08T11:59:59Z) is 3660 days old; samples older than 3660 days "
                  "([limits] max_age) are not accepted");
}

static void test_reject_overflow(void **state)
{
    fx_t *f = *state;
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "disputes.screened=9223372036854775000");
    hand_in(f, 'a', NULL);
    ingest_on_durable(&f->in, 1);
    t_sink_clear(&f->replies);
    f->journal.appended = 0;
    /* Another township's figures would take the county's tally out of
     * range: the message says so instead of blaming that township. */
    t_submit(&f->buf, 1, 2, "gecheng", T_NOW, 2, "disputes.resolved=1", "disputes.screened=1000");
    hand_in(f, 'a', NULL);
    expect_reject(f, 2, TALLY_EOVERFLOW, "samples[1].value",
                  "would take the county's tally of it, the sum of every township's figures, "
                  "out of the 64-bit integer range");
    assert_int_equal(t_total(&f->st, "disputes.resolved", ""), -1);
    /* The township whose own tally would leave the range is named. */
    t_submit(&f->buf, 1, 3, "gaoguan", T_NOW, 1, "disputes.screened=1000");
    hand_in(f, 'a', NULL);
    expect_reject(f, 3, TALLY_EOVERFLOW, "samples[0].value",
                  "adding 1000 to 'disputes.screened' of 'gaoguan' would leave the 64-bit");
}

/* Samples outside their metric's range are refused before anything is
 * counted: a counter only grows unless it takes corrections, and no
 * sample is larger than the declared (or default) maximum. */
static void test_reject_bounds(void **state)
{
    fx_t *f = *state;
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 2, "disputes.screened=3", "disputes.resolved=-1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 1, TALLY_ERANGE, "samples[1].value",
                  "samples[1].value: -1 is below the minimum 0 of counter 'disputes.resolved' (a "
                  "counter only grows: this one takes no corrections; the county's operator "
                  "allows them with negative = yes in its [metric] section)");
    t_submit(&f->buf, 1, 2, "gaoguan", T_NOW, 1, "disputes.resolved=1000000000001");
    hand_in(f, 'a', NULL);
    expect_reject(f, 2, TALLY_ERANGE, "samples[0].value",
                  "1000000000001 is above the maximum 1000000000000 of counter "
                  "'disputes.resolved'");
    t_submit(&f->buf, 1, 3, "gaoguan", T_NOW, 1, "grid.zones=-3");
    hand_in(f, 'a', NULL);
    ingest_on_durable(&f->in, 1);
    expect_ack(f, 3, PROTO_ACK_ACCEPTED, 0); /* a gauge may go below 0 */
    assert_int_equal(t_total(&f->st, "disputes.screened", ""), -1);
}

static void test_reject_series_limit(void **state)
{
    fx_t *f = *state; /* max_series = 8: county + 7 township series */
    uint64_t seq = 1;
    t_submit(&f->buf, 1, seq++, "gaoguan", T_NOW, 3, "disputes.screened=1", "disputes.resolved=1",
             "grid.zones=1");
    hand_in(f, 'a', NULL);
    t_submit(&f->buf, 1, seq, "gecheng", T_NOW, 3, "disputes.screened=1", "disputes.resolved=1",
             "grid.zones=1");
    t_sink_clear(&f->replies);
    f->journal.appended = 0;
    /* Gaoguan's 6 series are not created before the journal has them, but
     * the room is kept: gecheng's 3 more would not fit, so wait. */
    hand_in(f, 'a', NULL);
    expect_reject(f, seq, TALLY_EBUSY, "", "resend it once they are applied");
    /* 6 series exist; gecheng would need 3 more. */
    ingest_on_durable(&f->in, 1);
    t_sink_clear(&f->replies);
    hand_in(f, 'a', NULL);
    expect_reject(f, seq, TALLY_ESERIESLIMIT, "samples[2].metric", "limit of 8 series");
}

/* A township and a metric the closed catalog does not declare, though
 * their names are known from the state (a journal record replayed, as
 * after a restart that dropped them from the file): their tallies count,
 * new submissions are refused as for any unknown name, naming the field;
 * a reload's catalog decides alike, in both directions. */
static void test_reject_undeclared_known(void **state)
{
    fx_t *f = *state;
    char why[512];
    t_submit(&f->buf, 4, 1, "oldtown", T_NOW, 1, "disputes.screened=5");
    assert_int_equal(ingest_replay(&f->in, f->buf.data, f->buf.size, why, sizeof(why)), 0);
    t_submit(&f->buf, 4, 2, "gaoguan", T_NOW, 1, "slogans=2");
    assert_int_equal(ingest_replay(&f->in, f->buf.data, f->buf.size, why, sizeof(why)), 0);
    assert_true(intern_find(&f->st.towns, "oldtown", 7) > 0);
    t_submit(&f->buf, 1, 1, "oldtown", T_NOW, 1, "disputes.screened=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 1, TALLY_EUNKTOWN, "township",
                  "township 'oldtown' is not in the catalog (no longer declared: its figures so "
                  "far are kept)");
    t_submit(&f->buf, 1, 2, "gaoguan", T_NOW, 2, "disputes.screened=1", "slogans=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 2, TALLY_EUNKMETRIC, "samples[1].metric",
                  "samples[1].metric: metric 'slogans' is not in the catalog (no longer "
                  "declared: its figures so far are kept)");
    assert_int_equal(t_total(&f->st, "disputes.screened", ""), 5);
    assert_int_equal(t_total(&f->st, "disputes.screened", "oldtown"), 5);
    assert_int_equal(t_total(&f->st, "slogans", "gaoguan"), 2);

    /* A reload that drops gecheng and disputes.resolved, and declares
     * oldtown and slogans. */
    static const char next_conf[] = "[township gaoguan]\n[township oldtown]\n"
                                    "[metric disputes.screened]\nkind = counter\n"
                                    "[metric slogans]\nkind = counter\n";
    tallyd_config_t next;
    char err[512];
    assert_int_equal(
        config_parse_text(next_conf, strlen(next_conf), "next.conf", &next, err, sizeof(err)), 0);
    catalog_target_t ct = {&f->st.towns, &f->st.metrics, &f->st.engine, "t-state"};
    assert_int_equal(catalog_declare(&ct, &next, err, sizeof(err)), 0);
    assert_int_equal(ingest_set_catalog(&f->in, &next), 0);
    ingest_limits_t l = ingest_limits_from(&next);
    ingest_set_limits(&f->in, &l);
    t_submit(&f->buf, 1, 3, "gecheng", T_NOW, 1, "disputes.screened=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 3, TALLY_EUNKTOWN, "township", "township 'gecheng' is not in the catalog");
    t_submit(&f->buf, 1, 4, "gaoguan", T_NOW, 1, "disputes.resolved=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 4, TALLY_EUNKMETRIC, "samples[0].metric",
                  "metric 'disputes.resolved' is not in the catalog");
    t_submit(&f->buf, 1, 5, "oldtown", T_NOW, 2, "disputes.screened=1", "slogans=1");
    hand_in(f, 'a', NULL);
    ingest_on_durable(&f->in, 1);
    expect_ack(f, 5, PROTO_ACK_ACCEPTED, 0);
    t_sink_clear(&f->replies);
    assert_int_equal(t_total(&f->st, "disputes.screened", ""), 6);
    assert_int_equal(t_total(&f->st, "slogans", ""), 3);
    config_free(&next);
}

/* max_series lowered below the series held (a reload): samples of the
 * series held are accepted, a new series is refused, and a submission
 * that started series under the old limit and waits for the journal is
 * applied all the same (it was accepted). */
static void test_series_limit_lowered(void **state)
{
    fx_t *f = *state; /* max_series = 8 */
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 3, "disputes.screened=1", "disputes.resolved=1",
             "grid.zones=1");
    hand_in(f, 'a', NULL);
    ingest_on_durable(&f->in, 1);
    expect_ack(f, 1, PROTO_ACK_ACCEPTED, 0);
    t_sink_clear(&f->replies);
    /* Waiting for the journal: gecheng's first series, 2 more (8 in all). */
    t_submit(&f->buf, 1, 2, "gecheng", T_NOW, 1, "disputes.screened=1");
    hand_in(f, 'a', NULL);
    assert_int_equal(f->replies.n, 0);
    ingest_limits_t l = ingest_limits_from(&f->st.cfg);
    l.max_series = 4;
    ingest_set_limits(&f->in, &l);
    engine_set_max_series(&f->st.engine, 4);
    ingest_on_durable(&f->in, 2);
    expect_ack(f, 2, PROTO_ACK_ACCEPTED, 0);
    t_sink_clear(&f->replies);
    assert_int_equal(f->stops, 0);
    assert_int_equal(engine_series_count(&f->st.engine), 7);
    assert_int_equal(t_total(&f->st, "disputes.screened", "gecheng"), 1);
    /* 7 series held, 4 allowed: the series held take samples ... */
    t_submit(&f->buf, 1, 3, "gaoguan", T_NOW, 2, "disputes.screened=1", "grid.zones=2");
    hand_in(f, 'a', NULL);
    ingest_on_durable(&f->in, 3);
    expect_ack(f, 3, PROTO_ACK_ACCEPTED, 0);
    t_sink_clear(&f->replies);
    assert_int_equal(t_total(&f->st, "disputes.screened", ""), 3);
    /* ... a new one is refused, naming the limit and what still works. */
    f->journal.appended = 0;
    t_submit(&f->buf, 1, 4, "gecheng", T_NOW, 2, "disputes.screened=1", "disputes.resolved=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 4, TALLY_ESERIESLIMIT, "samples[1].metric",
                  "samples[1].metric: 'disputes.resolved' of 'gecheng' would start a new series "
                  "beyond the limit of 4 series ([limits] max_series; 7 held); samples of the "
                  "series held are accepted");
    assert_int_equal(f->stops, 0);
}

/* Two submissions waiting for the journal whose sum would overflow: the
 * second waits for the first instead of being applied to overflow later. */
static void test_pending_room(void **state)
{
    fx_t *f = *state;
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "disputes.screened=9223372036854775000");
    hand_in(f, 'a', NULL);
    f->journal.appended = 0;
    t_submit(&f->buf, 1, 2, "gecheng", T_NOW, 1, "disputes.screened=1000");
    hand_in(f, 'b', NULL);
    expect_reject(f, 2, TALLY_EBUSY, "", "near the 64-bit range");
    ingest_on_durable(&f->in, 1);
    t_sink_clear(&f->replies);
    /* Applied, the first leaves no room: now it is an overflow. */
    hand_in(f, 'b', NULL);
    expect_reject(f, 2, TALLY_EOVERFLOW, "samples[0].value", "county's tally");
    assert_int_equal(t_total(&f->st, "disputes.screened", ""), 9223372036854775000);
}

static void test_reject_clients(void **state)
{
    fx_t *f = *state; /* max_clients = 2 */
    for (uint8_t c = 1; c <= 2; c++) {
        t_submit(&f->buf, c, 1, "gaoguan", T_NOW, 1, "disputes.screened=1");
        hand_in(f, 'a', NULL);
    }
    ingest_on_durable(&f->in, 2);
    t_sink_clear(&f->replies);
    f->journal.appended = 0;
    t_submit(&f->buf, 3, 1, "gaoguan", T_NOW, 1, "disputes.screened=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 1, TALLY_ECLIENTLIMIT, "client_id", "limit of 2 clients");
    /* A client may keep at most 1024 in flight. */
    t_submit(&f->buf, 1, 2000, "gaoguan", T_NOW, 1, "disputes.screened=1");
    hand_in(f, 'a', NULL);
    ingest_on_durable(&f->in, 3);
    t_sink_clear(&f->replies);
    f->journal.appended = 0;
    t_submit(&f->buf, 1, 2000 - DEDUP_WINDOW, "gaoguan", T_NOW, 1, "disputes.screened=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 2000 - DEDUP_WINDOW, TALLY_ESTALESEQ, "seq", "in flight");
}

/* In an open catalog names are added up to the limits, and a rejected
 * submission does not keep the names it brought. */
static void test_open_catalog_limits(void **state)
{
    fx_t *f = *state; /* max_townships 2, max_metrics 3 (+ built-in ratio names) */
    t_submit(&f->buf, 1, 1, "t1", T_NOW, 1, "m1=1");
    hand_in(f, 'a', NULL);
    t_submit(&f->buf, 1, 2, "t2", T_NOW, 1, "m1=1");
    hand_in(f, 'a', NULL);
    ingest_on_durable(&f->in, 2);
    t_sink_clear(&f->replies);
    f->journal.appended = 0;
    t_submit(&f->buf, 1, 3, "t3", T_NOW, 1, "m1=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 3, TALLY_ESERIESLIMIT, "township", "limit of 2 townships");
    uint32_t metrics = intern_count(&f->st.metrics);
    t_submit(&f->buf, 1, 4, "t1", T_NOW - f->st.cfg.max_age_ms - 5000, 1, "brand.new=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 4, TALLY_ETOOOLD, "time_ms", "days old");
    assert_int_equal(intern_count(&f->st.metrics), metrics);
    assert_int_equal(intern_find(&f->st.metrics, "brand.new", 9), TALLY_ENOTFOUND);
}

static void test_reject_rate(void **state)
{
    fx_t *f = *state; /* rate 10/s, burst 10 */
    t_submit(&f->buf, 1, 1, "t1", T_NOW, 1, "m1=1");
    for (int i = 0; i < 10; i++) {
        t_submit(&f->buf, 1, (uint64_t)i + 1, "t1", T_NOW, 1, "m1=1");
        hand_in(f, 'a', NULL);
    }
    ingest_on_durable(&f->in, 10);
    t_sink_clear(&f->replies);
    f->journal.appended = 0;
    t_submit(&f->buf, 1, 11, "t1", T_NOW, 1, "m1=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 11, TALLY_ERATELIMIT, "", "exceeds 10 samples/s");
    assert_int_equal(t_total(&f->st, "m1", "t1"), 10);
}

static void test_reject_journal(void **state)
{
    fx_t *f = *state;
    f->journal.fail = TALLY_EBUSY;
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "talks=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 1, TALLY_EBUSY, "", "behind the disk");
    f->journal.fail = TALLY_EUNAVAIL;
    f->journal.why = "journal-0000000000000001.tj: write failed: No space left on device";
    hand_in(f, 'a', NULL);
    expect_reject(f, 1, TALLY_EUNAVAIL, "", "No space left on device");
    /* Nothing was applied nor recorded: the resend is new, not a duplicate. */
    assert_int_equal(t_total(&f->st, "talks", ""), -1);
    assert_int_equal(intern_find(&f->st.towns, "gaoguan", 7), TALLY_ENOTFOUND);
    f->journal.fail = 0;
    hand_in(f, 'a', NULL);
    ingest_on_durable(&f->in, 1);
    expect_ack(f, 1, PROTO_ACK_ACCEPTED, 0);
}

static void test_reject_decode_and_revoked(void **state)
{
    fx_t *f = *state;
    proto_error_t err = {.code = TALLY_EUTF8, .sample = 2};
    snprintf(err.field, sizeof(err.field), "samples[2].metric");
    snprintf(err.message, sizeof(err.message), "samples[2].metric: not valid UTF-8");
    ingest_reject_decode(&f->in, "Pa", 2, 9, &err);
    proto_ack_t a = expect_ack(f, 9, PROTO_ACK_REJECTED, TALLY_EUTF8);
    assert_int_equal(a.sample, 2);
    t_sink_clear(&f->replies);
    ingest_forbid_unknown(&f->in, "Pa", 2, 10, "town:gaoguan:xyz");
    expect_reject(f, 10, TALLY_EFORBIDDEN, "", "no longer admitted");
    assert_int_equal(f->st.stats.rejected, 2);
}

/* In a secured daemon only a township key of exactly that township may
 * submit, and it is told so before de-duplication. */
static void test_secured_authorization(void **state)
{
    fx_t *f = *state;
    keyring_identity_t gecheng = {.role = KEYS_ROLE_TOWNSHIP, .name = "gecheng", .name_len = 7};
    keyring_identity_t screen = {.role = KEYS_ROLE_SUBSCRIBER, .name = "screen", .name_len = 6};
    keyring_identity_t gaoguan = {.role = KEYS_ROLE_TOWNSHIP, .name = "gaoguan", .name_len = 7};
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "disputes.screened=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 1, TALLY_EFORBIDDEN, "township", "no identity");
    hand_in(f, 'a', &screen);
    expect_reject(f, 1, TALLY_EFORBIDDEN, "township", "subscriber 'screen'");
    hand_in(f, 'a', &gecheng);
    expect_reject(f, 1, TALLY_EFORBIDDEN, "township", "belongs to 'gecheng', not 'gaoguan'");
    hand_in(f, 'a', &gaoguan);
    ingest_on_durable(&f->in, 1);
    expect_ack(f, 1, PROTO_ACK_ACCEPTED, 0);
    /* The de-duplication key is derived from township and client id. */
    uint8_t plain[PROTO_CLIENT_ID_LEN];
    memset(plain, 1, sizeof(plain));
    assert_int_equal(dedup_check(&f->st.dedup, plain, 1), 0);
}

/* ---- replay ---- */

static void test_replay(void **state)
{
    fx_t *f = *state;
    char why[512];
    t_submit(&f->buf, 4, 1, "gaoguan", T_NOW - 3600000, 1, "disputes.screened=5");
    assert_int_equal(ingest_replay(&f->in, f->buf.data, f->buf.size, why, sizeof(why)), 0);
    /* A record covered already (by the checkpoint) is skipped. */
    assert_int_equal(ingest_replay(&f->in, f->buf.data, f->buf.size, why, sizeof(why)), 0);
    assert_int_equal(t_total(&f->st, "disputes.screened", "gaoguan"), 5);
    /* Replay ignores the catalog and the clock: what was accepted counts. */
    t_now_ms += 400LL * 86400000;
    t_submit(&f->buf, 4, 2, "since_removed", T_NOW, 1, "gone.metric=2");
    assert_int_equal(ingest_replay(&f->in, f->buf.data, f->buf.size, why, sizeof(why)), 0);
    assert_int_equal(t_total(&f->st, "gone.metric", "since_removed"), 2);
    assert_int_equal(f->replies.n, 0);
    assert_int_equal(f->journal.appended, 0);
}

static void test_replay_failures(void **state)
{
    fx_t *f = *state; /* max_series = 8 */
    char why[512];
    const char junk[] = "\x93\x01\x02";
    assert_int_equal(ingest_replay(&f->in, junk, 3, why, sizeof(why)) < 0, 1);
    assert_non_null(strstr(why, "not a valid submission"));
    t_submit(&f->buf, 4, 1, "gaoguan", T_NOW, 4, "a=1", "b=1", "c=1", "d=1");
    assert_int_equal(ingest_replay(&f->in, f->buf.data, f->buf.size, why, sizeof(why)), 0);
    /* A record accepted before max_series was lowered (8 series held):
     * replayed all the same, beyond the limit, which refuses only new
     * submissions' series. */
    t_submit(&f->buf, 4, 2, "gaoguan", T_NOW, 1, "e=1");
    assert_int_equal(ingest_replay(&f->in, f->buf.data, f->buf.size, why, sizeof(why)), 0);
    assert_int_equal(engine_series_count(&f->st.engine), 10);
    assert_int_equal(t_total(&f->st, "e", ""), 1);
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "disputes.screened=1");
    hand_in(f, 'a', NULL);
    expect_reject(f, 1, TALLY_ESERIESLIMIT, "samples[0].metric", "limit of 8 series");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_accept_waits_for_the_journal, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_acks_follow_durability, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_reject_stopping, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_reject_catalog, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_reject_labels, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_reject_labels, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_reject_ratio, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_reject_time, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_reject_overflow, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_reject_bounds, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_pending_room, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_reject_series_limit, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_series_limit_lowered, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_reject_undeclared_known, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_reject_clients, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_open_catalog_limits, setup_limited, teardown),
        cmocka_unit_test_setup_teardown(test_reject_rate, setup_limited, teardown),
        cmocka_unit_test_setup_teardown(test_reject_journal, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_reject_decode_and_revoked, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_secured_authorization, setup_secured, teardown),
        cmocka_unit_test_setup_teardown(test_replay, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_acks_to_gone_clients, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_replay_failures, setup_closed, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
