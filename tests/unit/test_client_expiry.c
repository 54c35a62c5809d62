/* Unit tests of the client-id expiry rule (PROTOCOL.md 14.3) in the
 * publisher, against the fake daemon of client_test_util.h: an id idle
 * past client_expiry_ms minus an hour is replaced, and what was still
 * unacknowledged under it is set aside, reported and never resent. */
#include "client_test_util.h"

#define HOUR (3600 * 1000LL)
#define DAY  (24 * HOUR)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hex_of(const uint8_t id[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* Replace the spool's state: id as it is, the given seq, the time of the
 * last acknowledgement and the learned expiry (-1: none). */
static void write_state(fixture_t *f, const uint8_t id[16], uint64_t seq, int64_t acked,
                        int64_t expiry)
{
    char path[256], hex[33];
    snprintf(path, sizeof path, "%s/client.state", f->spool);
    hex_of(id, hex);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "id=%s\nseq=%llu\nacked_ms=%lld\nclient_expiry_ms=%lld\n", hex,
            (unsigned long long)seq, (long long)acked, (long long)expiry);
    fclose(fp);
}

static int64_t state_i64(fixture_t *f, const char *key)
{
    char path[256], pat[64];
    snprintf(path, sizeof path, "%s/client.state", f->spool);
    snprintf(pat, sizeof pat, "\n%s=", key);
    char *text = slurp(path, NULL);
    assert_non_null(text);
    char *p = strstr(text, pat);
    assert_non_null(p);
    return strtoll(p + strlen(pat), NULL, 10);
}

/* Leave n unacknowledged submissions in the spool (nobody answers HELLO,
 * so nothing is even sent) and return the id they were made under. */
static void spool_some(fixture_t *f, int n, uint8_t id[16])
{
    tally_client_t *c = client(f, 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(tally_client_add(c, "disputes.screened", 100 + i, T0 + i), 0);
        assert_int_equal(tally_client_add(c, "disputes.resolved", 90 + i, T0 + i), 0);
    }
    assert_int_equal(tally_client_send(c), 0);
    assert_int_equal(tally_client_pending(c), (size_t)n);
    tally_client_id(c, id);
    tally_client_destroy(&c);
}

/* What earlier runs learned says the id has expired: the spooled
 * submissions are moved to SPOOL/unknown/ intact, reported, and a new id
 * starts at seq 1 before anything is sent. */
static void test_expired_at_start(void **state)
{
    fixture_t *f = *state;
    uint8_t old[16], id[16];
    spool_some(f, 2, old);
    char sub1[256], body1[4096];
    snprintf(sub1, sizeof sub1, "%s/00000000000000000001.sub", f->spool);
    size_t len1 = 0;
    char *text = slurp(sub1, &len1);
    assert_non_null(text);
    memcpy(body1, text, len1);
    write_state(f, old, 3, now_ms() - 31 * DAY, 30 * DAY);

    tally_client_t *c = client(f, 0);
    assert_int_equal(f->nev, 2);
    char hex[33], want[512];
    hex_of(old, hex);
    for (int i = 0; i < 2; i++) {
        event_t *e = &f->ev[i];
        assert_int_equal(e->kind, 'u');
        assert_int_equal(e->seq, (uint64_t)i + 1);
        assert_memory_equal(e->client_id, old, 16);
        assert_string_equal(e->township, "gaoguan");
        assert_int_equal(e->time_ms, T0 + i);
        assert_int_equal(e->nsamples, 2);
        assert_string_equal(e->first_metric, "disputes.screened");
        assert_int_equal(e->first_value, 100 + i);
        snprintf(want, sizeof want, "%s/unknown/%s-%020d.sub", f->spool, hex, i + 1);
        assert_string_equal(e->message, want);
    }
    /* Byte for byte what was spooled, and out of the queue. */
    size_t len;
    char *moved = slurp(f->ev[0].message, &len);
    assert_non_null(moved);
    assert_int_equal(len, len1);
    assert_memory_equal(moved, body1, len1);
    assert_false(spooled(f, 1));
    assert_false(spooled(f, 2));
    assert_int_equal(tally_client_pending(c), 0);
    tally_client_id(c, id);
    assert_memory_not_equal(id, old, 16);
    assert_int_equal(tally_client_next_seq(c), 1);
    assert_int_equal(state_i64(f, "seq"), 1);
    assert_true(llabs(state_i64(f, "acked_ms") - now_ms()) < 5000);
    assert_int_equal(state_i64(f, "client_expiry_ms"), 30 * DAY);

    /* The new id sends its own figures from seq 1; the old ones never go
     * out again. */
    assert_int_equal(tally_client_add(c, "patrols", 45, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    received_t *r = malloc(sizeof *r);
    assert_true(receive(f, c, 3000, r));
    assert_int_equal(r->seq, 1);
    assert_int_equal(r->nsamples, 1);
    ack(f, r, 1, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    assert_int_equal(tally_client_flush(c, 3000), 0);
    assert_false(receive(f, c, 300, r));
    free(r);
    tally_client_destroy(&c);
}

/* The expiry learned from WELCOME applies at once: the pending
 * submission is set aside instead of being sent. */
static void test_expiry_learned_from_welcome(void **state)
{
    fixture_t *f = *state;
    uint8_t old[16], id[16];
    spool_some(f, 1, old);
    write_state(f, old, 2, now_ms() - 2 * DAY, -1);
    tally_client_t *c = client(f, 0);
    assert_int_equal(f->nev, 0); /* nothing known yet: ids do not expire */
    assert_int_equal(tally_client_pending(c), 1);
    f->client_expiry_ms = DAY;
    received_t *r = malloc(sizeof *r);
    assert_false(receive(f, c, 500, r)); /* HELLO answered, no SUBMIT */
    assert_true(f->hellos >= 1);         /* also the earlier run's, unanswered then */
    assert_int_equal(f->nev, 1);
    assert_int_equal(f->ev[0].kind, 'u');
    assert_int_equal(f->ev[0].seq, 1);
    assert_int_equal(tally_client_pending(c), 0);
    tally_client_id(c, id);
    assert_memory_not_equal(id, old, 16);
    assert_int_equal(state_i64(f, "client_expiry_ms"), DAY);
    free(r);
    tally_client_destroy(&c);
}

/* The hour of margin: 23 h minus a little since the last ACK with a
 * one-day expiry is still in time, 23 h and a little is not. */
static void test_margin(void **state)
{
    fixture_t *f = *state;
    uint8_t old[16];
    spool_some(f, 1, old);
    write_state(f, old, 2, now_ms() - 23 * HOUR + 120000, DAY);
    tally_client_t *c = client(f, 0);
    assert_int_equal(f->nev, 0);
    received_t *r = malloc(sizeof *r);
    f->client_expiry_ms = DAY;
    assert_true(receive(f, c, 3000, r)); /* resent under the old id */
    assert_int_equal(r->seq, 1);
    tally_client_destroy(&c);

    write_state(f, old, 2, now_ms() - 23 * HOUR - 120000, DAY);
    c = client(f, 0);
    assert_int_equal(f->nev, 1);
    assert_int_equal(f->ev[0].kind, 'u');
    assert_false(receive(f, c, 300, r));
    free(r);
    tally_client_destroy(&c);
}

/* An ACK renews the id's time; a daemon that announces no expiry leaves
 * the one learned before in force. */
static void test_ack_renews(void **state)
{
    fixture_t *f = *state;
    uint8_t old[16], id[16];
    spool_some(f, 1, old);
    write_state(f, old, 2, now_ms() - 20 * HOUR, DAY);
    tally_client_t *c = client(f, 0);
    received_t *r = malloc(sizeof *r);
    assert_true(receive(f, c, 3000, r)); /* WELCOME without client_expiry_ms */
    ack(f, r, 1, PROTO_ACK_DUPLICATE, 0, -1, "", "");
    assert_int_equal(tally_client_flush(c, 3000), 0);
    tally_client_destroy(&c);
    assert_true(llabs(state_i64(f, "acked_ms") - now_ms()) < 5000);
    assert_int_equal(state_i64(f, "client_expiry_ms"), DAY);
    c = client(f, 0);
    tally_client_id(c, id);
    assert_memory_equal(id, old, 16);
    assert_int_equal(f->nev, 1); /* the ack; nothing set aside */
    free(r);
    tally_client_destroy(&c);
}

/* Without a spool, what is lost with the process is not reported; the
 * in-memory queue is, with no path. */
static void test_state_file_without_spool(void **state)
{
    fixture_t *f = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/client.state", f->dir);
    tally_client_opts_t o = {.state_file = path, .on_unknown = on_unknown, .cb_ctx = f};
    tally_client_t *c;
    assert_int_equal(tally_client_new(f->ep, "gaoguan", &o, &c), 0);
    assert_int_equal(tally_client_add(c, "patrols", 1, T0), 0);
    assert_int_equal(tally_client_send(c), 0);
    uint8_t old[16], id[16];
    tally_client_id(c, old);
    f->client_expiry_ms = HOUR + 100; /* idle for more than 100 ms is too long */
    usleep(200 * 1000);
    received_t *r = malloc(sizeof *r);
    assert_false(receive(f, c, 300, r));
    assert_int_equal(f->nev, 1);
    assert_int_equal(f->ev[0].kind, 'u');
    assert_string_equal(f->ev[0].message, "");
    tally_client_id(c, id);
    assert_memory_not_equal(id, old, 16);
    free(r);
    tally_client_destroy(&c);
}

/* An id that expires while its submission is on the wire: the late ACK
 * for the old id's seq 1 must not settle the new id's seq 1. */
static void test_late_ack_of_old_id(void **state)
{
    fixture_t *f = *state;
    uint8_t old[16];
    spool_some(f, 1, old);
    write_state(f, old, 2, now_ms() - 23 * HOUR + 400, DAY);
    f->client_expiry_ms = DAY;
    tally_client_t *c = client(f, 0);
    received_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    assert_true(receive(f, c, 3000, a)); /* the old id's seq 1, in time */
    assert_int_equal(a->seq, 1);
    usleep(600 * 1000);
    assert_int_equal(tally_client_add(c, "patrols", 7, T0), 0);
    assert_int_equal(tally_client_send(c), 0); /* expired now: new id, seq 1 */
    assert_int_equal(f->nev, 1);
    assert_int_equal(f->ev[0].kind, 'u');
    assert_int_equal(tally_client_pending(c), 1);
    ack(f, a, 1, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    PUMP_UNTIL(c, false, 200);
    assert_int_equal(tally_client_pending(c), 1);
    assert_true(receive(f, c, 3000, b));
    assert_int_equal(b->seq, 1);
    assert_memory_not_equal(a->body, b->body, 20);
    ack(f, b, 1, PROTO_ACK_ACCEPTED, 0, -1, "", "");
    assert_int_equal(tally_client_flush(c, 3000), 0);
    assert_int_equal(f->nev, 2);
    assert_int_equal(f->ev[1].kind, 'a');
    free(a);
    free(b);
    tally_client_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_expired_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_learned_from_welcome, setup, teardown),
        cmocka_unit_test_setup_teardown(test_margin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_renews, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_file_without_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_ack_of_old_id, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
