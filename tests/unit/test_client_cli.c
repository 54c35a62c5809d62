/* Black-box tests of the tally command: the real binary runs against a
 * fake daemon (ROUTER + XPUB served from a thread of this process) and its
 * exit status, standard output and standard error are checked. */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "proto.h"

#ifndef TALLY_CLI
#error "TALLY_CLI must name the tally executable"
#endif

enum mode { ACCEPT, REJECT, SILENT, FORBID };

typedef struct fake {
    char dir[64];
    char req_ep[160];
    char pub_ep[160];
    char server_arg[200];
    void *zctx;
    pthread_t thread;
    volatile int stop;
    enum mode mode;
    /* what the fake daemon saw */
    int submits;
    uint32_t samples;
    int64_t time_ms;
    int64_t value_of_resolved;
    char township[80];
    uint8_t client_ids[8][16]; /* the distinct client ids submissions came under */
    int nids;
    pid_t child; /* a command running in the background, killed by teardown */
    /* the command's results */
    int status;
    char out[65536];
    char err[65536];
} fake_t;

static void send_to(void *router, const uint8_t *id, size_t idlen, const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_encode(&sb, m), 0);
    zmq_send(router, id, idlen, ZMQ_SNDMORE);
    zmq_send(router, sb.data, sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

static proto_tally_t make_tally(const char *metric, const char *scope, int kind, uint64_t seq,
                                int64_t num, int64_t den)
{
    proto_tally_t t;
    memset(&t, 0, sizeof t);
    t.metric = proto_str(metric);
    t.scope = proto_str(scope);
    t.kind = (uint8_t)kind;
    t.seq = seq;
    t.time_ms = 1703995200000LL;
    t.nvalues = 2;
    t.values[0] = (proto_value_t){proto_str("1h"), kind != PROTO_KIND_RATIO, num, den};
    t.values[1] = (proto_value_t){proto_str("total"), true, num, den};
    return t;
}

static void publish(void *xpub, const proto_msg_t *m, const char *topic)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_encode(&sb, m), 0);
    zmq_send(xpub, topic, strlen(topic), ZMQ_SNDMORE);
    zmq_send(xpub, sb.data, sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

static void handle(fake_t *f, void *router, const uint8_t *id, size_t idlen, const uint8_t *body,
                   size_t len, bool *synced)
{
    proto_msg_t *req = malloc(sizeof *req), *m = malloc(sizeof *m);
    proto_sample_t *samples = malloc(PROTO_SAMPLES_MAX * sizeof *samples);
    if (proto_decode(body, len, req, samples, PROTO_SAMPLES_MAX, NULL) != 0)
        goto out;
    memset(m, 0, sizeof *m);
    switch (req->type) {
    case PROTO_SUBMIT:
        f->submits++;
        f->samples += req->u.submit.nsamples;
        int k = 0;
        while (k < f->nids && memcmp(f->client_ids[k], req->u.submit.client_id, 16) != 0)
            k++;
        if (k == f->nids && k < 8)
            memcpy(f->client_ids[f->nids++], req->u.submit.client_id, 16);
        f->time_ms = req->u.submit.time_ms;
        snprintf(f->township, sizeof f->township, "%.*s", (int)req->u.submit.township.len,
                 req->u.submit.township.ptr);
        for (uint32_t i = 0; i < req->u.submit.nsamples; i++)
            if (proto_str_eq(samples[i].metric, "disputes.resolved"))
                f->value_of_resolved = samples[i].value;
        if (f->mode == SILENT)
            break;
        m->type = PROTO_ACK;
        m->u.ack.seq = req->u.submit.seq;
        m->u.ack.sample = -1;
        m->u.ack.field = proto_str("");
        m->u.ack.message = proto_str("");
        if (f->mode == REJECT) {
            m->u.ack.status = PROTO_ACK_REJECTED;
            m->u.ack.code = 13;
            m->u.ack.sample = 3;
            m->u.ack.field = proto_str("samples[3].metric");
            m->u.ack.message = proto_str("metric 'disputes.resolvd' is not in the catalog");
        }
        send_to(router, id, idlen, m);
        break;
    case PROTO_HELLO:
        m->type = PROTO_WELCOME;
        m->u.welcome.req_id = req->u.hello.req_id;
        m->u.welcome.server = proto_str("fake");
        m->u.welcome.pub_endpoint = proto_str(f->pub_ep);
        m->u.welcome.stream_id = 99;
        m->u.welcome.ncolumns = 1;
        m->u.welcome.columns[0] = proto_str("total");
        m->u.welcome.max_samples = m->u.welcome.max_name = m->u.welcome.max_msg = -1;
        m->u.welcome.skew_ms = m->u.welcome.max_age_ms = -1;
        send_to(router, id, idlen, m);
        break;
    case PROTO_SNAPSHOT_REQ:
    case PROTO_STATS_REQ:
        if (f->mode != FORBID)
            goto answer;
        m->type = PROTO_ERROR;
        m->u.error.req_id =
            req->type == PROTO_STATS_REQ ? req->u.stats_req.req_id : req->u.snapshot_req.req_id;
        m->u.error.code = 17;
        m->u.error.field = proto_str("type");
        m->u.error.message = proto_str("this key belongs to township 'gaoguan', which may submit "
                                       "figures but not read tallies or counters; use a "
                                       "subscriber key");
        send_to(router, id, idlen, m);
        break;
    default:
        /* As a daemon from before the request answers it (PROTOCOL.md
         * 8.17): UNKNOWN_TYPE with req_id 0, so names go as given. */
        if (f->mode == SILENT)
            break;
        m->type = PROTO_ERROR;
        m->u.error.req_id = 0;
        m->u.error.code = (uint32_t)-TALLY_ETYPE;
        m->u.error.field = proto_str("type");
        m->u.error.message = proto_str("unknown message type");
        send_to(router, id, idlen, m);
        break;
    }
    goto out;
answer:
    switch (req->type) {
    case PROTO_SNAPSHOT_REQ: {
        proto_tally_t items[3] = {
            make_tally("disputes.resolved", "", PROTO_KIND_COUNTER, 4, 216, 1),
            make_tally("disputes.resolution_rate", "", PROTO_KIND_RATIO, 5, 216, 219),
            make_tally("disputes.resolved", "高观镇", PROTO_KIND_COUNTER, 4, 216, 1),
        };
        uint32_t n = 0;
        for (int i = 0; i < 3; i++) {
            char topic[PROTO_TOPIC_MAX + 1];
            proto_topic(topic, sizeof topic, items[i].metric, items[i].scope);
            if (strncmp(topic, req->u.snapshot_req.prefix.ptr, req->u.snapshot_req.prefix.len))
                continue;
            memset(m, 0, sizeof *m);
            m->type = PROTO_SNAPSHOT_ITEM;
            m->u.snapshot_item.req_id = req->u.snapshot_req.req_id;
            m->u.snapshot_item.tally = items[i];
            send_to(router, id, idlen, m);
            n++;
        }
        memset(m, 0, sizeof *m);
        m->type = PROTO_SNAPSHOT_END;
        m->u.snapshot_end.req_id = req->u.snapshot_req.req_id;
        m->u.snapshot_end.stream_id = 99;
        m->u.snapshot_end.seq = 5;
        m->u.snapshot_end.count = n;
        send_to(router, id, idlen, m);
        *synced = true;
        break;
    }
    case PROTO_STATS_REQ:
        m->type = PROTO_STATS;
        m->u.stats.req_id = req->u.stats_req.req_id;
        m->u.stats.n = 2;
        m->u.stats.entries[0] = (proto_stat_t){proto_str("tallyd_submits_total"), 1234};
        m->u.stats.entries[1] = (proto_stat_t){proto_str("tallyd_clients"), 7};
        send_to(router, id, idlen, m);
        break;
    default:
        break;
    }
out:
    free(req);
    free(m);
    free(samples);
}

static void *serve(void *arg)
{
    fake_t *f = arg;
    void *router = zmq_socket(f->zctx, ZMQ_ROUTER);
    void *xpub = zmq_socket(f->zctx, ZMQ_XPUB);
    int zero = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(xpub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_bind(router, f->req_ep);
    zmq_bind(xpub, f->pub_ep);
    bool synced = false;
    uint64_t seq = 5;
    while (!f->stop) {
        zmq_pollitem_t items[2] = {{.socket = router, .events = ZMQ_POLLIN},
                                   {.socket = xpub, .events = ZMQ_POLLIN}};
        zmq_poll(items, 2, 30);
        if (items[1].revents & ZMQ_POLLIN) {
            char buf[512];
            zmq_recv(xpub, buf, sizeof buf, 0); /* subscriptions */
        }
        if (items[0].revents & ZMQ_POLLIN) {
            uint8_t id[256], body[65536];
            int idlen = zmq_recv(router, id, sizeof id, 0);
            int len = zmq_recv(router, body, sizeof body, 0);
            if (idlen > 0 && len > 0)
                handle(f, router, id, (size_t)idlen, body, (size_t)len, &synced);
        }
        /* A daemon heartbeats, and here the county figure keeps moving
         * once a subscriber has its snapshot. */
        proto_msg_t m;
        memset(&m, 0, sizeof m);
        m.type = PROTO_HEARTBEAT;
        m.u.heartbeat.stream_id = 99;
        m.u.heartbeat.seq = seq;
        publish(xpub, &m, "h");
        if (synced) {
            memset(&m, 0, sizeof m);
            m.type = PROTO_UPDATE;
            m.u.update.stream_id = 99;
            seq++;
            m.u.update.tally =
                make_tally("disputes.resolved", "", PROTO_KIND_COUNTER, seq, 216 + (int64_t)seq, 1);
            publish(xpub, &m, "u/county/disputes.resolved/");
        }
    }
    zmq_close(router);
    zmq_close(xpub);
    return NULL;
}

static int setup(void **state)
{
    fake_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/tally-cli-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->req_ep, sizeof f->req_ep, "ipc://%s/req.sock", f->dir);
    snprintf(f->pub_ep, sizeof f->pub_ep, "ipc://%s/pub.sock", f->dir);
    snprintf(f->server_arg, sizeof f->server_arg, "--server=%s", f->req_ep);
    f->zctx = zmq_ctx_new();
    *state = f;
    return 0;
}

static void start(fake_t *f, enum mode mode)
{
    f->mode = mode;
    assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
}

static int teardown(void **state)
{
    fake_t *f = *state;
    if (f->child > 0) {
        /* A failed test must not leave a command running. */
        kill(f->child, SIGKILL);
        waitpid(f->child, NULL, 0);
    }
    if (f->thread) {
        f->stop = 1;
        pthread_join(f->thread, NULL);
    }
    zmq_ctx_term(f->zctx);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

/* Run the tally command with args (NULL-terminated) and stdin from
 * stdin_path (or /dev/null); fills f->status, f->out, f->err. */
static void run_in(fake_t *f, const char *stdin_path, const char *const *args)
{
    char out[128], err[128];
    snprintf(out, sizeof out, "%s/stdout", f->dir);
    snprintf(err, sizeof err, "%s/stderr", f->dir);
    const char *argv[32] = {TALLY_CLI};
    int n = 1;
    for (; args[n - 1] != NULL && n < 31; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || o < 0 || e < 0)
            _exit(127);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        unsetenv("TALLY_SERVER");
        setenv("TZ", "Asia/Shanghai", 1);
        setenv("XDG_STATE_HOME", f->dir, 1);
        execv(TALLY_CLI, (char *const *)argv);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    f->status = WEXITSTATUS(st);
    slurp(out, f->out, sizeof f->out);
    slurp(err, f->err, sizeof f->err);
}

#define RUN(f, ...) run_in(f, NULL, (const char *const[]){__VA_ARGS__, NULL})

/* A metric given twice in one push, a row pasted twice in a report's
 * file more often than not, would be one figure of their sum: refused,
 * with the lines and values, and nothing sent. */
static void test_push_repeated(void **state)
{
    fake_t *f = *state;
    start(f, ACCEPT);
    char dup[128];
    snprintf(dup, sizeof dup, "%s/dup.csv", f->dir);
    FILE *fp = fopen(dup, "w");
    assert_non_null(fp);
    fputs("metric,value\ndisputes.resolved,5\npatrols,1\ndisputes.resolved,7\n", fp);
    fclose(fp);
    RUN(f, f->server_arg, "push", "--town", "gaoguan", "--file", dup);
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "dup.csv: metric 'disputes.resolved' is on 2 lines: 2 (5) and "
                                   "4 (7)\ntally push: one push gives each metric once"));
    RUN(f, f->server_arg, "push", "--town", "gaoguan", "patrols=1", "disputes.resolved=2",
        "patrols=2", "patrols=3");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "metric 'patrols' is given 3 times: 1, 2 and 3\n"));
    assert_null(strstr(f->err, "disputes.resolved"));
    assert_int_equal(f->submits, 0);
    assert_string_equal(f->out, "");
}

static void test_push_csv(void **state)
{
    fake_t *f = *state;
    start(f, ACCEPT);
    RUN(f, f->server_arg, "push", "--town", "gaoguan", "--file",
        TALLY_SHARED_DATA "/gaoguan-2023.csv", "--time", "2023-12-31T12:00:00+08:00");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "accepted 22 samples for gaoguan (seq 1..1)\n");
    assert_string_equal(f->err, "");
    assert_int_equal(f->submits, 1);
    assert_int_equal(f->samples, 22);
    assert_int_equal(f->value_of_resolved, 216);
    assert_int_equal(f->time_ms, 1703995200000LL);
    assert_string_equal(f->township, "gaoguan");
    /* The same from standard input, with local midnight (TZ is
     * Asia/Shanghai for the command). */
    run_in(f, TALLY_SHARED_DATA "/gaoguan-2023.csv",
           (const char *const[]){f->server_arg, "push", "-t", "gaoguan", "-T", "2023-12-31", NULL});
    assert_int_equal(f->status, 0);
    assert_int_equal(f->samples, 44);
    assert_int_equal(f->time_ms, 1703952000000LL);
    RUN(f, f->server_arg, "push", "--town", "高观镇", "disputes.resolved=5", "banners=-2");
    assert_int_equal(f->status, 0);
    /* One client id for all the user's pushes, its seq going on: a new id
     * per run would fill the daemon's table of ids. */
    assert_string_equal(f->out, "accepted 2 samples for 高观镇 (seq 3..3)\n");
    assert_int_equal(f->value_of_resolved, 5);
    assert_int_equal(f->nids, 1);
    char path[200];
    snprintf(path, sizeof path, "%s/tally/client.state", f->dir);
    slurp(path, f->out, sizeof f->out);
    assert_non_null(strstr(f->out, "\nseq=4\n"));
}

static void test_push_rejected(void **state)
{
    fake_t *f = *state;
    start(f, REJECT);
    RUN(f, f->server_arg, "push", "--town", "gaoguan", "a=1", "b=2", "c=3", "disputes.resolvd=4");
    assert_int_equal(f->status, 1);
    /* The figure at fault named as it was given. */
    assert_string_equal(f->err, "tally: rejected: 'disputes.resolvd=4': samples[3].metric: metric "
                                "'disputes.resolvd' is not in the catalog (UNKNOWN_METRIC)\n");
    assert_string_equal(f->out, "");
}

static void test_push_unreachable(void **state)
{
    fake_t *f = *state;
    start(f, SILENT);
    char spool[128];
    snprintf(spool, sizeof spool, "%s/spool", f->dir);
    RUN(f, f->server_arg, "push", "--town", "gaoguan", "--spool", spool, "--timeout", "0.3",
        "patrols=45");
    assert_int_equal(f->status, 3);
    assert_non_null(strstr(f->err, "no acknowledgement from tallyd"));
    assert_non_null(strstr(f->err, "1 submission (1 sample) kept in"));
    /* The daemon answers again: the next run delivers the spooled
     * submission first, then its own. */
    f->mode = ACCEPT;
    RUN(f, f->server_arg, "push", "--town", "gaoguan", "--spool", spool, "banners=19");
    assert_int_equal(f->status, 0);
    assert_non_null(strstr(f->out, "delivered 1 submission (1 sample) left in"));
    assert_non_null(strstr(f->out, "accepted 1 sample for gaoguan (seq 2..2)\n"));
}

/* Without a spool, figures sent but not acknowledged may have been
 * counted: the message says so, and that a push again could count them
 * twice.  When nothing could even be sent, it says that. */
static void test_push_timeout_without_spool(void **state)
{
    fake_t *f = *state;
    RUN(f, f->server_arg, "push", "--town", "gaoguan", "--timeout", "0.3", "patrols=45");
    assert_int_equal(f->status, 3);
    char want[512];
    snprintf(want, sizeof want,
             "tally: cannot reach tallyd at %s: nothing accepts connections there "
             "(is tallyd running, and is the address right?)\n"
             "tally: nothing was sent\n",
             f->req_ep);
    assert_string_equal(f->err, want);
    start(f, SILENT);
    /* (2 s: the push asks for the catalog before its submission goes
     * out, and that unanswered wait took most of 0.5 s on a busy CI
     * machine, the submission then not sent at all) */
    RUN(f, f->server_arg, "push", "--town", "gaoguan", "--timeout", "2", "patrols=45",
        "banners=19");
    assert_int_equal(f->status, 3);
    snprintf(want, sizeof want,
             "tally: no answer from tallyd at %s within 2 s: the 2 samples may or may not "
             "have been counted; pushing them again could count them twice. Use --spool DIR so "
             "that tally can resend them safely.\n",
             f->req_ep);
    assert_string_equal(f->err, want);
    assert_int_equal(f->submits > 0, 1);
}

/* Two pushes of one user at once (cron and a person): the second waits
 * for the first's lock on the client state, for at most --timeout. */
static void test_push_waits_for_lock(void **state)
{
    fake_t *f = *state;
    start(f, ACCEPT);
    RUN(f, f->server_arg, "push", "--town", "gaoguan", "patrols=1"); /* creates the state */
    assert_int_equal(f->status, 0);
    char lock[200];
    snprintf(lock, sizeof lock, "%s/tally/client.state.lock", f->dir);
    int fd = open(lock, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    RUN(f, f->server_arg, "push", "--town", "gaoguan", "--timeout", "0.4", "patrols=2");
    assert_int_equal(f->status, 4);
    char want[1024];
    snprintf(want, sizeof want,
             "tally push: another tally push is using %s/tally/client.state; waiting up to 0.4 s "
             "for it to finish\n"
             "tally: another tally push is still using %s/tally/client.state after 0.4 s; try "
             "again when it has finished\n",
             f->dir, f->dir);
    assert_string_equal(f->err, want);
    assert_int_equal(f->samples, 1);
    /* Let go while the next one waits: it goes on, same id, next seq. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        usleep(300 * 1000);
        _exit(0);
    }
    close(fd); /* the child inherited the descriptor: the lock goes with both */
    RUN(f, f->server_arg, "push", "--town", "gaoguan", "--timeout", "5", "patrols=3");
    assert_int_equal(f->status, 0);
    assert_non_null(strstr(f->err, "waiting up to 5 s"));
    assert_string_equal(f->out, "accepted 1 sample for gaoguan (seq 2..2)\n");
    /* With -q, the wait is not said: nothing printed when all goes well. */
    fd = open(lock, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        usleep(300 * 1000);
        _exit(0);
    }
    close(fd);
    RUN(f, f->server_arg, "push", "-q", "--town", "gaoguan", "--timeout", "5", "patrols=5");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->err, "");
    assert_string_equal(f->out, "");
    /* A spool in the user's state directory would share its client.state
     * under another lock: refused. */
    char dir[200];
    snprintf(dir, sizeof dir, "%s/tally", f->dir);
    RUN(f, f->server_arg, "push", "--town", "gaoguan", "--spool", dir, "patrols=4");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "is the directory of the user's client state"));
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    assert_int_equal(f->nids, 1);
}

static void test_usage_errors(void **state)
{
    fake_t *f = *state;
    RUN(f, "push", "--tonw", "gaoguan", "a=1");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally push: unknown option '--tonw' (did you mean '--town'?)\n"
                                "Try 'tally push --help' for more information.\n");
    RUN(f, "push", "--town", "gaoguan", "--again", "a=1");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "--again applies to figures pushed with --time"));
    RUN(f, "push", "a=1");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "--town NAME is required"));
    RUN(f, "push", "--town", "gaoguan"); /* standard input: /dev/null */
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "nothing to push: standard input is empty"));
    RUN(f, "push", "--town", "gaoguan", "a=12.5x");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "'12.5x' is not a number"));
    RUN(f, "push", "--town", "gaoguan", "--time", "2023-02-30", "a=1");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "has no day 30"));
    /* keygen into a directory that is not there: said of --out. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/dir", f->dir);
    RUN(f, "keygen", "--out", missing, "srv.key");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "tally keygen: --out '"));
    assert_non_null(strstr(f->err, "No such file or directory (create the directory first)"));
    /* Out of the protocol's range: said of --time, before tallyd is asked
     * its zone (the fake answers nothing of the kind). */
    RUN(f, "push", "--town", "gaoguan", "--time", "1999-06-01", "a=1");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally push: --time '1999-06-01' is 1999-05-31T16:00:00Z, before "
                                "2000 in UTC: tally takes times from 2000-01-01T00:00:00Z to "
                                "2099-12-31T23:59:59Z\n"
                                "Try 'tally push --help' for more information.\n");

    RUN(f, "push", "--town", "gaoguan", "--time", "2100-01-02T00:00:00Z", "a=1");
    assert_int_equal(f->status, 2);
    assert_non_null(
        strstr(f->err, "--time '2100-01-02T00:00:00Z' is 2100-01-02T00:00:00Z, after 2099"));
    char bad[128];
    snprintf(bad, sizeof bad, "%s/bad.csv", f->dir);
    FILE *fp = fopen(bad, "w");
    fputs("metric,value\nok,1\noverflow,99999999999999999999\n", fp);
    fclose(fp);
    RUN(f, "push", "--town", "gaoguan", "--file", bad);
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "bad.csv:3: column 2 (value): '99999999999999999999' is out"));
    RUN(f, "psuh");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "did you mean 'push'?"));
    RUN(f, "get", "--json", "extra");
    assert_int_equal(f->status, 2);
    /* A second --metric or --town replaced the first without a word. */
    RUN(f, "get", "-m", "disputes.screened", "-m", "disputes.resolved");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "tally get: --metric given twice ('disputes.screened', "
                                   "'disputes.resolved'): one metric at a time"));
    RUN(f, "history", "--town", "gaoguan", "-t", "bashan", "-m", "patrols");
    assert_int_equal(f->status, 2);
    assert_non_null(strstr(f->err, "--town given twice ('gaoguan', 'bashan')"));
    RUN(f, "--server", "host:notaport", "stats");
    assert_int_equal(f->status, 2);
    /* A bad server address: one message naming the argument and what is
     * wrong with it, wherever it is given. */
    RUN(f, "push", "--server", "tcp://127.0.0.1:notaport", "--town", "gaoguan", "a=1");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally push: --server 'tcp://127.0.0.1:notaport': the port "
                                "'notaport' is not a number from 1 to 65535\n"
                                "Try 'tally push --help' for more information.\n");
    RUN(f, "--server", "http://host:7411", "get");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally: --server 'http://host:7411': 'http://' is not a transport "
                                "tallyd listens on: use tcp://HOST:PORT, HOST:PORT, HOST or "
                                "ipc://PATH\n"
                                "Try 'tally --help' for more information.\n");
    RUN(f, "watch", "--server", "host:port:x");
    assert_int_equal(f->status, 2);
    assert_string_equal(f->err, "tally watch: --server 'host:port:x': it has more than one ':' and "
                                "is not an IPv6 address (write HOST:PORT, or [IPv6]:PORT)\n"
                                "Try 'tally watch --help' for more information.\n");
}

static void test_help_and_version(void **state)
{
    fake_t *f = *state;
    RUN(f, "--version");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "tally " TALLY_VERSION "\n");
    RUN(f, "--help");
    assert_int_equal(f->status, 0);
    assert_non_null(strstr(f->out, "Usage: tally"));
    RUN(f, "help", "--help"); /* as help alone, not "unknown command" */
    assert_int_equal(f->status, 0);
    assert_non_null(strstr(f->out, "Usage: tally"));
    assert_string_equal(f->err, "");
    static const char *const cmds[] = {"push", "get", "watch", "stats"};
    for (int i = 0; i < 4; i++) {
        char want[64];
        snprintf(want, sizeof want, "Usage: tally %s", cmds[i]);
        RUN(f, "help", cmds[i]);
        assert_int_equal(f->status, 0);
        assert_non_null(strstr(f->out, want));
        RUN(f, cmds[i], "--help");
        assert_int_equal(f->status, 0);
        assert_non_null(strstr(f->out, want));
        assert_string_equal(f->err, "");
    }
}

static void test_get(void **state)
{
    fake_t *f = *state;
    start(f, ACCEPT);
    RUN(f, f->server_arg, "get", "--json");
    assert_int_equal(f->status, 0);
    assert_string_equal(
        f->out, "{\"seq\":5,\"stream_id\":99,\"tallies\":["
                "{\"metric\":\"disputes.resolution_rate\",\"scope\":\"county\",\"kind\":\"ratio\","
                "\"values\":{\"1h\":null,\"total\":{\"num\":216,\"den\":219,\"value\":"
                "0.9863013698630136}}},"
                "{\"metric\":\"disputes.resolved\",\"scope\":\"county\",\"kind\":\"counter\","
                "\"values\":{\"1h\":216,\"total\":216}}]}\n");
    RUN(f, f->server_arg, "get");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "METRIC                    SCOPE    1h  total\n"
                                "disputes.resolution_rate  county    -  98.6%\n"
                                "disputes.resolved         county  216    216\n");
    RUN(f, f->server_arg, "get", "--all", "--metric", "disputes.resolved");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "METRIC             SCOPE    1h  total\n"
                                "disputes.resolved  county  216    216\n"
                                "disputes.resolved  高观镇  216    216\n");
    RUN(f, f->server_arg, "stats");
    assert_int_equal(f->status, 0);
    assert_string_equal(f->out, "tallyd_clients           7\n"
                                "tallyd_submits_total  1234\n");
    RUN(f, f->server_arg, "stats", "--json");
    assert_string_equal(f->out, "{\"tallyd_clients\":7,\"tallyd_submits_total\":1234}\n");
}

static void test_get_unreachable(void **state)
{
    fake_t *f = *state;
    RUN(f, f->server_arg, "get", "--timeout", "0.2");
    assert_int_equal(f->status, 3);
    assert_non_null(strstr(f->err, "cannot reach tallyd"));
    assert_non_null(strstr(f->err, "nothing accepts connections there"));
    RUN(f, f->server_arg, "watch", "--duration", "0.3");
    assert_int_equal(f->status, 3);
    assert_non_null(strstr(f->err, "cannot reach tallyd"));
    assert_non_null(strstr(f->err, "nothing accepts connections there"));
}

static int64_t elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Nothing listens at the address: the one-shot commands and push give up
 * once the connection has been refused for a second, not at their
 * --timeout (a minute here), and say why; push keeps the figures in its
 * spool.  A watch waits on, saying once on standard error that nothing
 * accepts connections. */
static void test_refused_ends_early(void **state)
{
    fake_t *f = *state;
    char spool[128];
    snprintf(spool, sizeof spool, "%s/spool", f->dir);
    static const char *const cmds[][10] = {
        {"get", "--timeout", "60"},
        {"stats", "--timeout", "60"},
        {"get", "--period", "2026", "--timeout", "60"},
        {"push", "--town", "gaoguan", "--timeout", "60", "patrols=45"},
        {"push", "--town", "gaoguan", "--spool", "SPOOL", "--timeout", "60", "patrols=45"},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *argv[12] = {f->server_arg};
        for (size_t j = 0; cmds[i][j] != NULL; j++)
            argv[j + 1] = strcmp(cmds[i][j], "SPOOL") == 0 ? spool : cmds[i][j];
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        run_in(f, NULL, argv);
        int64_t ms = elapsed_ms(&t0);
        assert_int_equal(f->status, 3);
        if (strstr(f->err, "cannot reach tallyd") == NULL ||
            strstr(f->err, "nothing accepts connections there") == NULL)
            fail_msg("%s %s: %s", argv[1], argv[2], f->err);
        /* A second of refusals; waiting out --timeout would take 60 s. */
        if (ms < 900 || ms > 30000)
            fail_msg("%s %s took %" PRId64 " ms", argv[1], argv[2], ms);
    }
    assert_non_null(strstr(f->err, "1 submission (1 sample) kept in"));
    RUN(f, f->server_arg, "watch", "--json", "--duration", "2.5");
    assert_int_equal(f->status, 3);
    const char *note = strstr(f->err, "tally watch: nothing accepts connections at ");
    assert_non_null(note);
    assert_null(strstr(note + 1, "tally watch: nothing accepts connections at "));
    assert_non_null(strstr(note, "waiting for it\n"));
    assert_non_null(strstr(f->err, "cannot reach tallyd"));
}

/* A filter that selects nothing names what has no tallies, with the
 * closest metric there is, and exits 1; not the internal topic. */
static void test_get_nothing(void **state)
{
    fake_t *f = *state;
    start(f, ACCEPT);
    RUN(f, f->server_arg, "get", "--metric", "nosuch");
    assert_int_equal(f->status, 1);
    assert_string_equal(f->err, "tally get: metric 'nosuch' has no tallies\n");
    assert_string_equal(f->out, "");
    RUN(f, f->server_arg, "get", "--metric", "disputes.resolvd");
    assert_int_equal(f->status, 1);
    assert_string_equal(f->err, "tally get: metric 'disputes.resolvd' has no tallies (did you mean "
                                "'disputes.resolved'?)\n");
    RUN(f, f->server_arg, "get", "--town", "nosuch");
    assert_int_equal(f->status, 1);
    assert_string_equal(f->err, "tally get: township 'nosuch' has no tallies\n");
    RUN(f, f->server_arg, "get", "--all", "--metric", "nosuch", "--json");
    assert_int_equal(f->status, 1);
    assert_string_equal(f->out, "{\"seq\":5,\"stream_id\":99,\"tallies\":[]}\n");
    assert_string_equal(f->err, "tally get: metric 'nosuch' has no tallies\n");
}

/* The daemon refusing a request (a township's key reading): its answer
 * and words, status 1, not "is it running?". */
static void test_forbidden(void **state)
{
    fake_t *f = *state;
    start(f, FORBID);
    char want[1024];
    static const char *const cmds[] = {"get", "stats", "watch"};
    for (int i = 0; i < 3; i++) {
        RUN(f, f->server_arg, cmds[i], "--json");
        assert_int_equal(f->status, 1);
        snprintf(want, sizeof want,
                 "tally %s: tallyd at %s answered FORBIDDEN: this key belongs to township "
                 "'gaoguan', which may submit figures but not read tallies or counters; use a "
                 "subscriber key\n",
                 cmds[i], f->req_ep);
        assert_string_equal(f->err, want);
    }
}

static void test_watch_json(void **state)
{
    fake_t *f = *state;
    start(f, ACCEPT);
    RUN(f, f->server_arg, "watch", "--count", "2", "--duration", "10");
    assert_int_equal(f->status, 0);
    /* Snapshot lines, then two changes newer than the snapshot, one JSON
     * object per line. */
    char *save, *line = strtok_r(f->out, "\n", &save);
    int lines = 0, changes = 0;
    while (line != NULL) {
        lines++;
        assert_true(line[0] == '{' && line[strlen(line) - 1] == '}');
        assert_non_null(strstr(line, "\"seq\":"));
        assert_non_null(strstr(line, "\"scope\":\"county\""));
        if (strncmp(line, "{\"seq\":6,", 9) == 0 || strncmp(line, "{\"seq\":7,", 9) == 0)
            changes++;
        line = strtok_r(NULL, "\n", &save);
    }
    assert_int_equal(changes, 2);
    assert_int_equal(lines, 4); /* 2 county tallies in the snapshot + 2 changes */
}

/* SIGTERM ends a watch cleanly, with status 0 and its lines flushed. */
static void test_watch_sigterm(void **state)
{
    fake_t *f = *state;
    start(f, ACCEPT);
    char out[128], err[128];
    snprintf(out, sizeof out, "%s/stdout", f->dir);
    snprintf(err, sizeof err, "%s/stderr", f->dir);
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(o >= 0 && e >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(o, 1);
        dup2(e, 2);
        execl(TALLY_CLI, TALLY_CLI, f->server_arg, "watch", "--json", (char *)NULL);
        _exit(127);
    }
    close(o);
    close(e);
    f->child = pid;
    /* Wait for the snapshot's lines, then interrupt. */
    for (int i = 0; i < 500; i++) {
        slurp(out, f->out, sizeof f->out);
        if (strchr(f->out, '\n') != NULL)
            break;
        usleep(10 * 1000);
    }
    assert_int_equal(kill(pid, SIGTERM), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    f->child = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    slurp(out, f->out, sizeof f->out);
    assert_non_null(strstr(f->out, "{\"seq\":4,\"metric\":\"disputes.resolved\""));
    assert_int_equal(f->out[strlen(f->out) - 1], '\n');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_push_csv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_repeated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_timeout_without_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_waits_for_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_ends_early, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forbidden, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_sigterm, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
