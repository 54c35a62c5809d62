/* A resend of a submission applied before a reload lowered a limit
 * (max_samples, max_msg_bytes) is answered DUPLICATE, not refused: the
 * client's ACK was lost, it resends the same bytes, and must hear that
 * they were counted (PROTOCOL.md 11.2: de-duplication comes before every
 * refusal of a SUBMIT whose client_id and seq can be read), and one
 * below the de-duplication window is STALE_SEQUENCE.  What was
 * never applied is refused with an ACK for its seq; a request that is not
 * a SUBMIT gets ERROR TOO_LARGE with its req_id.  The real tallyd, over
 * real ZeroMQ sockets, without and with CURVE; the figures are read back. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "harness.h"
#include "security_test_util.h"

/* 63 bytes: a sample of it takes 67 bytes of MessagePack. */
#define LONG_METRIC "resend.limits.a.metric.whose.name.is.long.enough.to.fill.bytes1"
#define NLONG       40 /* samples of a submission between 2048 and 4096 bytes */

/* The CURVE fixture serves the plaintext cases too: they drop its keys
 * first (plaintext()). */
static void plaintext(fx_t *f)
{
    assert_int_equal(harness_set_curve(&f->h, NULL, NULL, NULL), 0);
}

/* Rewrite the configuration, reload it (SIGHUP) and wait for the log to
 * say so. */
static void reload(fx_t *f, const char *text)
{
    assert_int_equal(harness_write_file(&f->h, "tallyd.conf", text, NULL, 0), 0);
    assert_int_equal(kill(f->h.pid, SIGHUP), 0);
    if (harness_wait_log(&f->h, "reloaded", 5000) != 0)
        fail_msg("no reload; log:\n%s", harness_log(&f->h));
}

/* Send body[0..len) as it is and wait for the ACK or ERROR. */
static harness_ack_t send_bytes(fx_t *f, harness_client_t *c, const msgpack_sbuffer *body)
{
    harness_ack_t a;
    assert_int_equal(harness_send_raw(c, body->data, body->size), 0);
    if (harness_recv_reply(c, &a, HARNESS_REPLY_TIMEOUT_MS) != 0)
        fail_msg("no reply to %zu bytes; log:\n%s", body->size, harness_log(&f->h));
    return a;
}

static void expect_ack(const harness_ack_t *a, uint64_t seq, int status, int code)
{
    char buf[800];
    if (a->type != PROTO_ACK || a->seq != seq || a->status != status || a->code != code)
        fail_msg("expected ACK seq %" PRIu64 " status %d code %d, got %s", seq, status, code,
                 harness_ack_str(a, buf, sizeof(buf)));
}

static int64_t county_total(fx_t *f, harness_client_t *c, const char *metric)
{
    return harness_county_total(c, metric, &f->t);
}

/* A submission of n samples of metric, value 1 each, from c. */
static void encode(const harness_client_t *c, msgpack_sbuffer *out, uint64_t seq,
                   const char *metric, uint32_t n)
{
    harness_sample_t s[NLONG];
    assert_true(n <= NLONG);
    for (uint32_t i = 0; i < n; i++)
        s[i] = (harness_sample_t){metric, 1};
    msgpack_sbuffer_clear(out);
    assert_int_equal(harness_encode_submit(c, out, seq, "gaoguan", harness_now_ms(), s, n), 0);
}

/* max_samples lowered: the resend of 5 samples applied under the old
 * limit is a duplicate; a new one of 5 is TOO_MANY_SAMPLES. */
static void test_max_samples_lowered(void **state)
{
    fx_t *f = *state;
    plaintext(f);
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_samples = 10\n", NULL), 0);
    harness_client_t c;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    msgpack_sbuffer one, two;
    msgpack_sbuffer_init(&one);
    msgpack_sbuffer_init(&two);
    encode(&c, &one, 1, "ok.count", 5);
    harness_ack_t a = send_bytes(f, &c, &one);
    expect_ack(&a, 1, PROTO_ACK_ACCEPTED, 0);
    assert_int_equal(county_total(f, &c, "ok.count"), 5);

    reload(f, "[limits]\nmax_samples = 2\n");
    a = send_bytes(f, &c, &one); /* its ACK was lost */
    expect_ack(&a, 1, PROTO_ACK_DUPLICATE, 0);
    encode(&c, &two, 2, "ok.count", 5);
    a = send_bytes(f, &c, &two);
    expect_ack(&a, 2, PROTO_ACK_REJECTED, -TALLY_ETOOMANY);
    assert_string_equal(a.field, "samples");
    assert_int_equal(county_total(f, &c, "ok.count"), 5);
    assert_int_equal(harness_stats(&c, "tallyd_duplicates_total"), 1);
    assert_int_equal(harness_stats(&c, "tallyd_rejected_too_many_samples_total"), 1);

    /* The window moved on (seq 1030 applied): the resend of seq 1 now
     * lies below it, where whether it was applied cannot be told, and is
     * answered STALE_SEQUENCE as a valid one would be (11.2 step 3), not
     * refused for its samples as if it had never been counted. */
    encode(&c, &two, 1030, "ok.count", 1);
    a = send_bytes(f, &c, &two);
    expect_ack(&a, 1030, PROTO_ACK_ACCEPTED, 0);
    a = send_bytes(f, &c, &one);
    expect_ack(&a, 1, PROTO_ACK_REJECTED, -TALLY_ESTALESEQ);
    assert_string_equal(a.field, "seq");
    assert_int_equal(county_total(f, &c, "ok.count"), 6);

    msgpack_sbuffer_destroy(&one);
    msgpack_sbuffer_destroy(&two);
    harness_client_close(&c);
}

/* max_msg_bytes lowered from 8192 to 2048 (the transport limit from
 * 16384 to 4096, for connections made since): a submission of about 2800
 * bytes applied before is a duplicate when resent; a new one as large is
 * refused TOO_LARGE with an ACK for its seq; a PING as large gets ERROR
 * TOO_LARGE with its req_id. */
static void test_max_msg_lowered(void **state);

/* max_msg_bytes raised by a reload from 1024 to 8192: ZeroMQ gives a
 * connection the frame limit of its socket's bind, so tallyd binds its
 * request socket again, and a submission of about 2800 bytes (over the
 * old transport limit of 2048, which dropped it with its connection,
 * unanswered) is accepted, on a connection made before the reload too
 * (ZeroMQ reconnects it; its resend is answered). */
static void test_max_msg_raised(void **state)
{
    fx_t *f = *state;
    plaintext(f);
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_msg_bytes = 1024\n", NULL), 0);
    harness_client_t c, d;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    msgpack_sbuffer one;
    msgpack_sbuffer_init(&one);
    encode(&c, &one, 1, LONG_METRIC, NLONG);
    assert_true(one.size > 2048 && one.size <= 4096);
    reload(f, "[limits]\nmax_msg_bytes = 8192\n");
    assert_int_equal(harness_client_open(&f->h, &d), 0);
    harness_ack_t a = send_bytes(f, &d, &one);
    expect_ack(&a, 1, PROTO_ACK_ACCEPTED, 0);
    assert_int_equal(county_total(f, &d, LONG_METRIC), NLONG);
    /* The connection of before: cut by the bind, reconnected by ZeroMQ;
     * the resend of what it had no answer for is a duplicate. */
    harness_ack_t b;
    int rc = -1;
    for (int i = 0; i < 50 && rc != 0; i++) {
        assert_int_equal(harness_send_raw(&c, one.data, one.size), 0);
        rc = harness_recv_reply(&c, &b, 200);
    }
    if (rc != 0)
        fail_msg("no answer on the connection made before the reload; log:\n%s",
                 harness_log(&f->h));
    expect_ack(&b, 1, PROTO_ACK_DUPLICATE, 0);
    assert_int_equal(county_total(f, &d, LONG_METRIC), NLONG);
    msgpack_sbuffer_destroy(&one);
    harness_client_close(&c);
    harness_client_close(&d);
}

static void test_max_msg_lowered(void **state)
{
    fx_t *f = *state;
    plaintext(f);
    assert_int_equal(harness_start(&f->h, "[limits]\nmax_msg_bytes = 8192\n", NULL), 0);
    harness_client_t c, d;
    assert_int_equal(harness_client_open(&f->h, &c), 0);
    msgpack_sbuffer one, two;
    msgpack_sbuffer_init(&one);
    msgpack_sbuffer_init(&two);
    encode(&c, &one, 1, LONG_METRIC, NLONG);
    assert_true(one.size > 2048 && one.size <= 4096);
    harness_ack_t a = send_bytes(f, &c, &one);
    expect_ack(&a, 1, PROTO_ACK_ACCEPTED, 0);
    assert_int_equal(county_total(f, &c, LONG_METRIC), NLONG);

    reload(f, "[limits]\nmax_msg_bytes = 2048\n");
    /* The client comes back on a new connection, as a `tally push` of the
     * next day does, and resends what it has no ACK for. */
    assert_int_equal(harness_client_open(&f->h, &d), 0);
    a = send_bytes(f, &d, &one);
    expect_ack(&a, 1, PROTO_ACK_DUPLICATE, 0);
    assert_int_equal(county_total(f, &d, LONG_METRIC), NLONG);

    /* Never applied: refused for good, with an ACK naming its seq, the
     * field, both sizes and the setting. */
    encode(&c, &two, 2, LONG_METRIC, NLONG);
    a = send_bytes(f, &d, &two);
    expect_ack(&a, 2, PROTO_ACK_REJECTED, -TALLY_ETOOLARGE);
    assert_string_equal(a.field, "body");
    char size[32];
    snprintf(size, sizeof(size), "%zu bytes", two.size);
    if (strstr(a.message, size) == NULL || strstr(a.message, "2048 bytes") == NULL ||
        strstr(a.message, "max_msg") == NULL)
        fail_msg("the message does not name both sizes and max_msg: %s", a.message);
    assert_int_equal(county_total(f, &d, LONG_METRIC), NLONG);

    /* Not a SUBMIT: ERROR TOO_LARGE, with the req_id it carries. */
    msgpack_sbuffer ping;
    msgpack_sbuffer_init(&ping);
    proto_msg_t m = {.type = PROTO_PING};
    m.u.ping.req_id = 77;
    assert_int_equal(proto_encode(&ping, &m), 0);
    static const char pad[3000];
    msgpack_sbuffer_write(&ping, pad, sizeof(pad));
    a = send_bytes(f, &d, &ping);
    char buf[800];
    if (a.type != PROTO_ERROR || a.seq != 77 || a.code != -TALLY_ETOOLARGE ||
        strcmp(a.field, "body") != 0)
        fail_msg("expected ERROR req_id 77 TOO_LARGE about the body, got %s",
                 harness_ack_str(&a, buf, sizeof(buf)));
    msgpack_sbuffer_destroy(&ping);

    assert_int_equal(harness_stats(&d, "tallyd_duplicates_total"), 1);
    assert_int_equal(harness_stats(&d, "tallyd_rejected_too_large_total"), 2);
    assert_int_equal(harness_stats(&d, "tallyd_submissions_accepted_total"), 1);
    msgpack_sbuffer_destroy(&one);
    msgpack_sbuffer_destroy(&two);
    harness_client_close(&c);
    harness_client_close(&d);
}

/* With CURVE the same, for the township's own key; another township's
 * key resending those bytes learns nothing of them: authorization comes
 * before de-duplication, so it hears the refusal, not DUPLICATE. */
static void test_secured(void **state)
{
    fx_t *f = *state;
    start_secured(f, "[limits]\nmax_samples = 10\n");
    harness_client_t c, b;
    open_as(f, &c, &f->gaoguan);
    open_as(f, &b, &f->bashan);
    msgpack_sbuffer one;
    msgpack_sbuffer_init(&one);
    encode(&c, &one, 1, "patrols", 5);
    harness_ack_t a = send_bytes(f, &c, &one);
    expect_ack(&a, 1, PROTO_ACK_ACCEPTED, 0);
    assert_int_equal(total(f, "gaoguan"), 5);

    reload(f, secured_conf(f, "[limits]\nmax_samples = 2\n"));
    a = send_bytes(f, &b, &one);
    expect_ack(&a, 1, PROTO_ACK_REJECTED, -TALLY_ETOOMANY);
    a = send_bytes(f, &c, &one);
    expect_ack(&a, 1, PROTO_ACK_DUPLICATE, 0);
    assert_int_equal(total(f, "gaoguan"), 5);
    msgpack_sbuffer_destroy(&one);
    harness_client_close(&c);
    harness_client_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_max_samples_lowered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_msg_lowered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_msg_raised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secured, setup, teardown),
    };
    return cmocka_run_group_tests_name("test_resend_limits", tests, NULL, NULL);
}
