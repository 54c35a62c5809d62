/* Unit tests of the publisher against a fake daemon (client_test_util.h):
 * acknowledgements, resends, rejections, the spool across restarts, the
 * in-flight window, HELLO first and the daemon's limits. */
#include "client_test_util.h"

static void test_accepted(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "disputes.screened", 219, T0), 0);
    assert_int_equal(tally_client_add(c, "disputes.resolved", 216, T0), 0);
    assert_int_equal(tally_client_add(c, "patrols", 45, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *r = malloc(sizeof *r);
    assert_true(receive(f, c, 3000, r));
    /* The bytes on the wire are the bytes in the spool, and the seq was
     * persisted before they were sent. */
    assert_true(spooled(f, 1));
    char path[256];
    snprintf(path, sizeof path, "%s/client.state", f->spool);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char text[512] = "";
    size_t got = fread(text, 1, sizeof text - 1, fp);
    text[got] = '\0';
    fclose(fp);
    assert_non_null(strstr(text, "\nseq=2\n"));
    proto_msg_t *m = malloc(sizeof *m);
    proto_sample_t samples[8];
    assert_int_equal(proto_decode(r->body, r->len, m, samples, 8, NULL), 0);
    assert_int_equal(m->u.submit.seq, 1);
    assert_true(proto_str_eq(m->u.submit.township, "gaoguan"));
    assert_int_equal(m->u.submit.time_ms, T0);
    assert_int_equal(m->u.submit.nsamples, 3);
    assert_true(proto_str_eq(samples[1].metric, "disputes.resolved"));
    assert_int_equal(samples[1].value, 216);
    uint8_t id[16];
    tally_client_id(c, id);
    assert_memory_equal(m->u.submit.client_id, id, 16);
    free(m);
    ack(f, r, 1, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    PUMP_UNTIL(c, tally_client_pending(c) == 0, 3000);
    assert_int_equal(tally_client_pending(c), 0);
    assert_int_equal(f->nev, 1);
    assert_int_equal(f->ev[0].kind, 'a');
    assert_int_equal(f->ev[0].seq, 1);
    assert_int_equal(f->ev[0].status_or_code, TALLY_ACK_ACCEPTED);
    assert_int_equal(f->ev[0].nsamples, 3);
    assert_false(spooled(f, 1));
    assert_int_equal(tally_client_flush(c, 100), 0);
    /* A late ack for something settled changes nothing. */
    ack(f, r, 1, PROTO_ACK_DUPLICATE, 0, -1, "", "");
    assert_int_equal(tally_client_flush(c, 100), 0);
    PUMP_UNTIL(c, false, 50);
    assert_int_equal(f->nev, 1);
    free(r);
    tally_client_destroy(&c);
}

/* Unanswered, a submission is resent byte for byte with the same seq; a
 * "duplicate" answer settles it like an acceptance. */
static void test_resend_same_bytes(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "banners", 19, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    assert_true(receive(f, c, 3000, a));
    /* Resent on the backoff timer (40, 80, 160, 160 ms, each jittered
     * down to half), not in a loop: a handful of copies in 400 ms. */
    int copies = 0;
    int64_t end = mono_ms() + 400;
    while (mono_ms() < end)
        if (receive(f, c, 20, b)) {
            copies++;
            assert_int_equal(a->len, b->len);
            assert_memory_equal(a->body, b->body, a->len);
            assert_int_equal(b->seq, 1);
        }
    assert_true(copies >= 2);
    assert_true(copies <= 10);
    ack(f, b, 1, PROTO_ACK_DUPLICATE, 0, -1, "", "");
    PUMP_UNTIL(c, tally_client_pending(c) == 0, 3000);
    assert_int_equal(f->nev, 1);
    assert_int_equal(f->ev[0].status_or_code, TALLY_ACK_DUPLICATE);
    assert_false(spooled(f, 1));
    free(a);
    free(b);
    tally_client_destroy(&c);
}

static void test_rejected(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "a", 1, T0), 0);
    assert_int_equal(tally_client_add(c, "b", 2, T0), 0);
    assert_int_equal(tally_client_add(c, "c", 3, T0), 0);
    assert_int_equal(tally_client_add(c, "disputes.resolvd", 4, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *r = malloc(sizeof *r);
    assert_true(receive(f, c, 3000, r));
    ack(f, r, 1, PROTO_ACK_REJECTED, 13, 3, "samples[3].metric",
        "metric 'disputes.resolvd' is not in the catalog");
    PUMP_UNTIL(c, tally_client_pending(c) == 0, 3000);
    assert_int_equal(f->nev, 1);
    event_t *e = &f->ev[0];
    assert_int_equal(e->kind, 'r');
    assert_int_equal(e->seq, 1);
    assert_int_equal(e->status_or_code, TALLY_EUNKMETRIC);
    assert_int_equal(e->sample, 3);
    assert_string_equal(e->field, "samples[3].metric");
    assert_string_equal(e->message, "metric 'disputes.resolvd' is not in the catalog");
    assert_string_equal(tally_client_last_error(c),
                        "submission 1 rejected: samples[3].metric: metric 'disputes.resolvd' is "
                        "not in the catalog (UNKNOWN_METRIC)");
    /* Final: out of the spool, never sent again. */
    assert_false(spooled(f, 1));
    while (receive(f, c, 300, r))
        ; /* copies sent before the rejection arrived */
    assert_false(receive(f, c, 400, r));
    assert_int_equal(f->nev, 1);
    free(r);
    tally_client_destroy(&c);
}

/* What on_reject saw of tally_client_rejected_earlier (test_rejected_earlier). */
typedef struct aside_seen {
    tally_client_t *c;
    int calls;
    uint64_t seq[4];
    bool earlier[4];
    char path[4][512];
    char township[80];
    int64_t time_ms;
    uint32_t nsamples;
    char metric[80];
    int64_t value;
    uint8_t client_id[16];
} aside_seen_t;

static void aside_on_reject(void *ctx, uint64_t seq, int code, int sample, const char *field,
                            const char *message)
{
    aside_seen_t *a = ctx;
    (void)code, (void)sample, (void)field, (void)message;
    assert_true(a->calls < 4);
    const tally_rejected_t *r = tally_client_rejected_earlier(a->c);
    int i = a->calls++;
    a->seq[i] = seq;
    a->earlier[i] = r != NULL;
    if (r == NULL)
        return;
    assert_int_equal(r->seq, seq);
    snprintf(a->path[i], sizeof a->path[i], "%s", r->path);
    snprintf(a->township, sizeof a->township, "%s", r->township);
    a->time_ms = r->time_ms;
    a->nsamples = r->nsamples;
    memcpy(a->client_id, r->client_id, 16);
    if (r->nsamples > 0) {
        snprintf(a->metric, sizeof a->metric, "%s", r->samples[0].metric);
        a->value = r->samples[0].value;
    }
}

/* The contents of a file (at most 64 KiB) into buf; its length, -1 when
 * it cannot be read. */
static long slurp(const char *path, uint8_t *buf, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return -1;
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return (long)n;
}

/* A submission an earlier run left in the spool, rejected for good now
 * (say the daemon's max_samples was lowered meanwhile): nobody at hand has
 * its figures any more, so it is moved to SPOOL/rejected/ byte for byte,
 * and on_reject can read where and what it is.  One of this run's own is
 * deleted as before.  Neither is sent again, nor queued by a later
 * client. */
static void test_rejected_earlier(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "drills.fire", 4, T0), 0);
    assert_int_equal(tally_client_add(c, "drills.flood", 2, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *r = malloc(sizeof *r);
    assert_true(receive(f, c, 3000, r));
    uint8_t id[16];
    tally_client_id(c, id);
    tally_client_destroy(&c); /* the run ends with it unacknowledged */
    char sub[256], hex[33], moved[512];
    snprintf(sub, sizeof sub, "%s/00000000000000000001.sub", f->spool);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", id[i]);
    snprintf(moved, sizeof moved, "%s/rejected/%s-00000000000000000001.sub", f->spool, hex);
    static uint8_t before[65536], after[65536];
    long len = slurp(sub, before, sizeof before);
    assert_true(len > 0);

    aside_seen_t seen = {0};
    tally_client_opts_t o = {
        .spool_dir = f->spool,
        .backoff_initial_ms = 40,
        .backoff_max_ms = 160,
        .on_reject = aside_on_reject,
        .cb_ctx = &seen,
    };
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    seen.c = c;
    assert_int_equal(tally_client_pending(c), 1);
    assert_int_equal(tally_client_add(c, "drills.quake", 7, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    bool got1 = false, got2 = false;
    int64_t end = mono_ms() + 3000;
    while ((!got1 || !got2) && mono_ms() < end) {
        if (!receive(f, c, 100, r))
            continue;
        if (r->seq == 1 && !got1) {
            ack(f, r, 1, PROTO_ACK_REJECTED, 10, -1, "samples", "2 samples exceed the limit of 1");
            got1 = true;
        } else if (r->seq == 2 && !got2) {
            ack(f, r, 2, PROTO_ACK_REJECTED, 13, 0, "samples[0].metric",
                "metric 'drills.quake' is not in the catalog");
            got2 = true;
        }
    }
    assert_true(got1 && got2);
    PUMP_UNTIL(c, tally_client_pending(c) == 0, 3000);
    assert_int_equal(tally_client_pending(c), 0);
    assert_null(tally_client_rejected_earlier(c)); /* outside on_reject */
    assert_int_equal(seen.calls, 2);
    int e = seen.seq[0] == 1 ? 0 : 1; /* the earlier run's */
    assert_int_equal(seen.seq[e], 1);
    assert_true(seen.earlier[e]);
    assert_false(seen.earlier[1 - e]); /* this run's: its figures are the caller's */
    assert_string_equal(seen.path[e], moved);
    assert_string_equal(seen.township, "gaoguan");
    assert_int_equal(seen.time_ms, T0);
    assert_int_equal(seen.nsamples, 2);
    assert_string_equal(seen.metric, "drills.fire");
    assert_int_equal(seen.value, 4);
    assert_memory_equal(seen.client_id, id, 16);
    assert_non_null(strstr(tally_client_last_error(c), "rejected"));
    /* Byte for byte as it was spooled and sent; out of the queue. */
    assert_int_equal(slurp(moved, after, sizeof after), len);
    assert_memory_equal(before, after, (size_t)len);
    assert_false(spooled(f, 1));
    assert_false(spooled(f, 2));
    char rejected_dir[256];
    snprintf(rejected_dir, sizeof rejected_dir, "%s/rejected", f->spool);
    assert_int_equal(access(rejected_dir, F_OK), 0);
    char other[512];
    snprintf(other, sizeof other, "%s/rejected/%s-00000000000000000002.sub", f->spool, hex);
    assert_int_equal(access(other, F_OK), -1);
    tally_client_destroy(&c);
    /* Never queued again. */
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    assert_int_equal(tally_client_pending(c), 0);
    assert_int_equal(access(moved, F_OK), 0);
    tally_client_destroy(&c);
    free(r);
}

/* RATE_LIMITED is retryable: the same bytes come again after a backoff
 * and the later acceptance is the only thing reported. */
static void test_retryable_then_accepted(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "slogans", 25, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    assert_true(receive(f, c, 3000, a));
    ack(f, a, 1, PROTO_ACK_REJECTED, 18, -1, "", "too many submissions from this client");
    assert_true(receive(f, c, 3000, b));
    assert_memory_equal(a->body, b->body, a->len);
    assert_int_equal(f->nev, 0);
    assert_true(spooled(f, 1));
    assert_non_null(strstr(tally_client_last_error(c), "RATE_LIMITED"));
    uint64_t seq = 0;
    const char *words = NULL;
    assert_int_equal(tally_client_last_refusal(c, &seq, &words), TALLY_ERATELIMIT);
    assert_int_equal(seq, 1);
    assert_string_equal(words, "too many submissions from this client");
    ack(f, b, 1, PROTO_ACK_REJECTED, 21, -1, "storage", "journal unavailable"); /* UNAVAILABLE */
    assert_true(receive(f, c, 3000, b));
    assert_memory_equal(a->body, b->body, a->len);
    assert_int_equal(tally_client_last_refusal(c, NULL, &words), TALLY_EUNAVAIL);
    assert_string_equal(words, "storage: journal unavailable");
    ack(f, b, 1, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    PUMP_UNTIL(c, tally_client_pending(c) == 0, 3000);
    /* Settled: its refusals are old news. */
    assert_int_equal(tally_client_last_refusal(c, &seq, &words), 0);
    assert_string_equal(words, "");
    assert_int_equal(f->nev, 1);
    assert_int_equal(f->ev[0].kind, 'a');
    assert_false(spooled(f, 1));
    free(a);
    free(b);
    tally_client_destroy(&c);
}

/* Nobody answers: flush times out with everything kept; once the daemon
 * answers, a later flush completes. */
static void test_flush_timeout_then_delivery(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "drills.emergency", 5, T0), 0);
    int64_t t = mono_ms();
    assert_int_equal(tally_client_flush(c, 200), TALLY_ETIMEDOUT);
    assert_true(mono_ms() - t >= 190);
    assert_int_equal(tally_client_pending(c), 1);
    assert_true(spooled(f, 1));
    received_t *r = malloc(sizeof *r);
    assert_true(receive(f, c, 1000, r)); /* HELLO was sent during the flush, then this */
    ack(f, r, 1, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    assert_int_equal(tally_client_flush(c, 3000), 0);
    assert_int_equal(tally_client_pending(c), 0);
    assert_int_equal(f->nev, 1);
    free(r);
    tally_client_destroy(&c);
}

/* A client that dies with a submission unacknowledged: the next one on the
 * same spool sends the very same bytes (same client id and seq), so the
 * daemon can count it exactly once. */
static void test_restart_delivers_spooled(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "safety.handouts", 1200, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    assert_true(receive(f, c, 3000, a));
    tally_client_destroy(&c); /* "crash" */
    while (receive(f, NULL, 100, b))
        ;
    c = client(f, 0);
    assert_int_equal(tally_client_pending(c), 1);
    assert_true(receive(f, c, 3000, b));
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->body, b->body, a->len);
    ack(f, b, 1, PROTO_ACK_DUPLICATE, 0, -1, "", "");
    assert_int_equal(tally_client_flush(c, 3000), 0);
    assert_false(spooled(f, 1));
    assert_int_equal(f->nev, 1);
    assert_int_equal(f->ev[0].nsamples, 1);
    free(a);
    free(b);
    tally_client_destroy(&c);
}

/* At most max_in_flight submissions beyond the oldest unacknowledged one
 * are ever on the wire. */
static void test_in_flight_window(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 2);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tally_client_add(c, "patrols", i, T0 + i), 0);
    assert_int_equal(tally_client_send(c), 0);
    assert_int_equal(tally_client_pending(c), 5);
    received_t *r = malloc(sizeof *r);
    bool seen[8] = {false};
    int64_t end = mono_ms() + 400;
    while (mono_ms() < end)
        if (receive(f, c, 50, r)) {
            assert_true(r->seq <= 2);
            seen[r->seq] = true;
        }
    assert_true(seen[1] && seen[2]);
    /* Acknowledging 2 does not open the window: 1 is still the oldest. */
    ack(f, r, 2, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    end = mono_ms() + 300;
    while (mono_ms() < end)
        if (receive(f, c, 50, r))
            assert_true(r->seq <= 2);
    ack(f, r, 1, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    end = mono_ms() + 400;
    while (mono_ms() < end)
        if (receive(f, c, 50, r)) {
            assert_true(r->seq >= 1 && r->seq <= 4);
            seen[r->seq] = true;
        }
    assert_true(seen[3] && seen[4]);
    assert_false(seen[5]);
    ack(f, r, 3, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    ack(f, r, 4, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    /* Now 5 goes out. */
    while (!seen[5] && receive(f, c, 1000, r))
        seen[r->seq] = true;
    assert_true(seen[5]);
    ack(f, r, 5, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    PUMP_UNTIL(c, tally_client_pending(c) == 0, 2000);
    assert_int_equal(f->nev, 5);
    assert_int_equal(tally_client_pending(c), 0);
    free(r);
    tally_client_destroy(&c);
}

/* Nothing is submitted before the daemon has answered HELLO: WELCOME
 * tells how long it remembers a client id. */
static void test_hello_first(void **state)
{
    fixture_t *f = *state;
    tally_client_t *c = client(f, 0);
    assert_int_equal(tally_client_add(c, "patrols", 45, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *r = malloc(sizeof *r);
    /* Unanswered HELLOs, resent on a backoff, and no SUBMIT. */
    int hellos = 0;
    int64_t end = mono_ms() + 700;
    while (mono_ms() < end) {
        assert_int_equal(tally_client_process(c), 0);
        zmq_pollitem_t item = {.socket = f->router, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 5) <= 0)
            continue;
        uint8_t id[256], body[1024];
        assert_true(zmq_recv(f->router, id, sizeof id, 0) > 0);
        int n = zmq_recv(f->router, body, sizeof body, 0);
        proto_msg_t m;
        assert_int_equal(proto_decode(body, (size_t)n, &m, NULL, 0, NULL), 0);
        assert_int_equal(m.type, PROTO_HELLO);
        hellos++;
    }
    assert_true(hellos >= 1 && hellos <= 3);
    /* Answered, the submission follows. */
    assert_true(receive(f, c, 6000, r));
    assert_int_equal(r->seq, 1);
    assert_true(f->hellos >= 1);
    ack(f, r, 1, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    assert_int_equal(tally_client_flush(c, 3000), 0);
    free(r);
    tally_client_destroy(&c);
}

/* WELCOME's max_samples and max_msg split the batches closed after it,
 * and are kept in the state for the runs that cannot ask. */
static void test_limits_split(void **state)
{
    fixture_t *f = *state;
    f->max_samples = 3;
    tally_client_t *c = client(f, 0);
    received_t *r = malloc(sizeof *r);
    assert_int_equal(tally_client_add(c, "first", 1, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    assert_true(receive(f, c, 3000, r));
    ack(f, r, r->seq, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    assert_int_equal(tally_client_flush(c, 3000), 0);
    for (int i = 0; i < 8; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        assert_int_equal(tally_client_add(c, name, i, T0), 0);
    }
    assert_int_equal(tally_client_send(c), 0);
    assert_int_equal(tally_client_pending(c), 3);
    uint32_t got[3] = {0};
    for (int i = 0; i < 3; i++) {
        assert_true(receive(f, c, 3000, r));
        assert_true(r->seq >= 2 && r->seq <= 4);
        got[r->seq - 2] = r->nsamples;
        ack(f, r, r->seq, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    }
    assert_int_equal(got[0], 3);
    assert_int_equal(got[1], 3);
    assert_int_equal(got[2], 2);
    assert_int_equal(tally_client_flush(c, 3000), 0);
    tally_client_destroy(&c);

    /* A later run knows the limits before the daemon answers, and a
     * smaller max_msg splits by size: 2 samples with 60-byte names fit in
     * 200 bytes, 3 do not. */
    f->max_samples = -1;
    f->max_msg = 200;
    c = client(f, 0);
    char name[61];
    memset(name, 'x', 60);
    name[60] = '\0';
    for (int i = 0; i < 5; i++) {
        name[0] = (char)('a' + i);
        assert_int_equal(tally_client_add(c, name, i, T0), 0);
    }
    assert_int_equal(tally_client_send(c), 0);
    assert_int_equal(tally_client_pending(c), 2); /* 3 + 2, as learned before */
    assert_true(receive(f, c, 3000, r));
    ack(f, r, r->seq, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    while (tally_client_pending(c) > 0 && receive(f, c, 3000, r))
        ack(f, r, r->seq, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    for (int i = 0; i < 5; i++) {
        name[0] = (char)('a' + i);
        assert_int_equal(tally_client_add(c, name, i, T0 + 1), 0);
    }
    assert_int_equal(tally_client_send(c), 0);
    assert_int_equal(tally_client_pending(c), 3); /* 2 + 2 + 1 */
    while (tally_client_pending(c) > 0 && receive(f, c, 3000, r)) {
        assert_true(r->len <= 200);
        assert_true(r->nsamples <= 2);
        ack(f, r, r->seq, PROTO_ACK_ACCEPTED, 0, -1, "", "");
        PUMP_UNTIL(c, true, 10);
    }
    assert_int_equal(tally_client_pending(c), 0);
    free(r);
    tally_client_destroy(&c);
}

/* What the callbacks of test_destroy_in_callback saw and did. */
typedef struct self_destroying {
    tally_client_t *c;
    int acks;
    int add_rc, send_rc, flush_rc, process_rc, hello_rc;
    char why[256];
} self_destroying_t;

/* The first acknowledgement: the calls that would run callbacks are
 * refused, then the client is destroyed from within its own callback. */
static void ack_then_destroy(void *ctx, uint64_t seq, int status, uint32_t nsamples)
{
    (void)seq, (void)status, (void)nsamples;
    self_destroying_t *s = ctx;
    s->acks++;
    s->add_rc = tally_client_add(s->c, "patrols", 1, T0);
    s->send_rc = tally_client_send(s->c);
    s->flush_rc = tally_client_flush(s->c, 100);
    s->process_rc = tally_client_process(s->c);
    s->hello_rc = tally_client_hello(s->c, 100);
    snprintf(s->why, sizeof s->why, "%s", tally_client_last_error(s->c));
    tally_client_destroy(&s->c);
}

/* A callback may destroy its client: the caller's pointer is NULL at once,
 * no other callback runs, the call that ran it returns TALLY_ECLOSED and
 * frees the client (ASan and valgrind see no use after free), and what was
 * not acknowledged stays in the spool for the next run. */
static void test_destroy_in_callback(void **state)
{
    fixture_t *f = *state;
    self_destroying_t s = {0};
    tally_client_opts_t o = {.spool_dir = f->spool, .on_ack = ack_then_destroy, .cb_ctx = &s};
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &s.c), 0);
    tally_client_t *c = s.c;
    /* Three event times: three submissions. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(tally_client_add(c, "patrols", 10 + i, T0 + i), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *r = malloc(sizeof *r);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        assert_true(receive(f, c, 3000, r));
        assert_int_equal(r->seq, seq);
    }
    for (uint64_t seq = 1; seq <= 3; seq++)
        ack(f, r, seq, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    usleep(50000); /* all three acknowledgements wait on the socket */
    assert_int_equal(tally_client_flush(c, 3000), TALLY_ECLOSED);
    assert_null(s.c);
    assert_int_equal(s.acks, 1);
    assert_int_equal(s.add_rc, TALLY_ECALLBACK);
    assert_int_equal(s.send_rc, TALLY_ECALLBACK);
    assert_int_equal(s.flush_rc, TALLY_ECALLBACK);
    assert_int_equal(s.process_rc, TALLY_ECALLBACK);
    assert_int_equal(s.hello_rc, TALLY_ECALLBACK);
    assert_non_null(strstr(s.why, "tally_client_hello called from within"));
    assert_false(spooled(f, 1));
    assert_true(spooled(f, 2));
    assert_true(spooled(f, 3));
    /* The next client on the spool delivers the two left (the daemon
     * answers "duplicate"), and the sample added in the callback was not
     * taken. */
    tally_client_t *next = client(f, 0);
    assert_int_equal(tally_client_send(next), 0);
    for (uint64_t seq = 2; seq <= 3; seq++) {
        assert_true(receive(f, next, 3000, r));
        assert_int_equal(r->seq, seq);
        assert_int_equal(r->nsamples, 1);
        ack(f, r, seq, PROTO_ACK_DUPLICATE, 0, -1, "", "");
    }
    assert_int_equal(tally_client_flush(next, 3000), 0);
    assert_int_equal(f->nev, 2);
    assert_int_equal(tally_client_next_seq(next), 4);
    free(r);
    tally_client_destroy(&next);
}

/* A NULL handle: the calls that return int refuse it, the accessors read
 * it as empty, and nothing crashes (a signal handler may call
 * tally_sub_stop after the subscriber is gone). */
static void test_null_handles(void **state)
{
    (void)state;
    assert_int_equal(tally_client_send(NULL), TALLY_EINVAL);
    assert_int_equal(tally_client_flush(NULL, 0), TALLY_EINVAL);
    assert_int_equal(tally_client_process(NULL), TALLY_EINVAL);
    assert_int_equal(tally_client_next_timeout_ms(NULL), -1);
    assert_int_equal(tally_client_pending(NULL), 0);
    assert_int_equal(tally_client_pending_samples(NULL), 0);
    assert_int_equal(tally_client_batch_size(NULL), 0);
    assert_int_equal(tally_client_link(NULL), TALLY_LINK_UNKNOWN);
    assert_int_equal(tally_client_refused_ms(NULL), 0);
    assert_string_equal(tally_client_link_why(NULL), "");
    assert_int_equal(tally_client_next_seq(NULL), 0);
    assert_string_equal(tally_client_last_error(NULL), "");
    const char *words = NULL;
    assert_int_equal(tally_client_last_refusal(NULL, NULL, &words), 0);
    assert_string_equal(words, "");
    assert_int_equal(tally_client_hello(NULL, 0), TALLY_EINVAL);
    assert_int_equal(tally_client_add(NULL, "patrols", 1, 0), TALLY_EINVAL);
    uint8_t id[TALLY_CLIENT_ID_LEN] = {1};
    tally_client_id(NULL, id);
    assert_int_equal(id[0], 0);
    tally_client_destroy(NULL);
    tally_sub_stop(NULL);
    assert_false(tally_sub_synced(NULL));
    assert_int_equal(tally_sub_seq(NULL), 0);
    assert_int_equal(tally_sub_stream_id(NULL), 0);
    assert_int_equal(tally_sub_count(NULL), 0);
    assert_string_equal(tally_sub_last_error(NULL), "");
    assert_int_equal(tally_sub_process(NULL), TALLY_EINVAL);
    assert_int_equal(tally_sub_run(NULL, 1), TALLY_EINVAL);
    assert_true(tally_sub_next_timeout_ms(NULL) > 0);
    tally_sub_foreach(NULL, NULL, NULL);
    assert_int_equal(tally_sub_link(NULL), TALLY_LINK_UNKNOWN);
    assert_int_equal(tally_sub_refused_ms(NULL), 0);
    assert_string_equal(tally_sub_link_why(NULL), "");
    assert_string_equal(tally_sub_pub_endpoint(NULL), "");
    const char *why = "x";
    assert_int_equal(tally_sub_refusal(NULL, &why), 0);
    assert_string_equal(why, "");
    tally_sub_destroy(NULL);
    tally_townships_sort(NULL);
    tally_townships_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_handles),
        cmocka_unit_test_setup_teardown(test_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resend_same_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_earlier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retryable_then_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_timeout_then_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_delivers_spooled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_flight_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_in_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
