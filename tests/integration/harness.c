/* harness.c - run the real tallyd and talk to it over real sockets (see
 * harness.h).  This file holds the daemon process, its directory and files,
 * CURVE keys, and the socket plumbing shared with harness_client.c (request
 * clients, snapshots, the tally table) and harness_sub.c (the subscriber);
 * harness_internal.h declares that plumbing. */
#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

const char *const harness_tallyd_bin = TALLYD_BIN;
const char *const harness_shared_data = TALLY_SHARED_DATA;
const char *const harness_source_dir = TALLY_SOURCE_DIR;

const char *harness_tallyd(void)
{
    const char *env = getenv("TALLY_TALLYD");
    return env != NULL && env[0] != '\0' ? env : harness_tallyd_bin;
}

__attribute__((format(printf, 1, 2))) void harness_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "harness: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

int64_t harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t harness_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

char *harness_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (b == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    if (buf != NULL)
        buf[n] = '\0';
    return buf;
}

/* ---- socket registry ------------------------------------------------- */

/* Sockets are registered so that harness_cleanup can close what a failed
 * test (cmocka longjmps out of it) left open; zmq_ctx_term would otherwise
 * wait for them forever. */
void *harness_open_socket(harness_t *h, int type)
{
    void *s = zmq_socket(h->zctx, type);
    if (s == NULL) {
        harness_say("zmq_socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    int zero = 0, ivl = 100, one = 1;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_IPV6, &one, sizeof(one)); /* the tests use numeric addresses only */
    zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
    pthread_mutex_lock(&h->lock);
    size_t i = 0;
    while (i < HARNESS_SOCKS_MAX && h->socks[i] != NULL)
        i++;
    if (i < HARNESS_SOCKS_MAX)
        h->socks[i] = s;
    pthread_mutex_unlock(&h->lock);
    if (i == HARNESS_SOCKS_MAX) {
        harness_say("more than %d sockets open at once", HARNESS_SOCKS_MAX);
        zmq_close(s);
        return NULL;
    }
    return s;
}

void harness_close_socket(harness_t *h, void *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < HARNESS_SOCKS_MAX; i++)
        if (h->socks[i] == s)
            h->socks[i] = NULL;
    pthread_mutex_unlock(&h->lock);
    zmq_close(s);
}

/* Receive one message (all frames) into parts[0..max), waiting until
 * deadline (monotonic ms).  Returns the number of frames (extra frames
 * beyond max are dropped but counted), 0 on timeout, -1 on error. */
int harness_recv_parts(void *sock, zmq_msg_t *parts, int max, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - harness_mono_ms();
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, left > 0 ? (long)left : 0);
        if (rc < 0 && zmq_errno() == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc == 0)
            return 0;
        int n = 0;
        int more = 1;
        while (more) {
            zmq_msg_t tmp;
            zmq_msg_t *m = n < max ? &parts[n] : &tmp;
            zmq_msg_init(m);
            if (zmq_msg_recv(m, sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                zmq_msg_close(m);
                if (n == 0 && zmq_errno() == EAGAIN)
                    break;
                for (int i = 0; i < n && i < max; i++)
                    zmq_msg_close(&parts[i]);
                return -1;
            }
            more = zmq_msg_more(m);
            if (m == &tmp)
                zmq_msg_close(&tmp);
            n++;
        }
        if (n > 0)
            return n;
    }
}

void harness_close_parts(zmq_msg_t *parts, int n, int max)
{
    for (int i = 0; i < n && i < max; i++)
        zmq_msg_close(&parts[i]);
}

/* ---- CURVE ------------------------------------------------------------ */

static bool z85_key(const char *k)
{
    return k != NULL && strlen(k) == HARNESS_Z85_LEN;
}

/* Make sock (not yet connected) a CURVE client of server_pub with the
 * pair client_pub/client_sec; nothing when server_pub is NULL or "". */
int harness_socket_curve(void *sock, const char *server_pub, const char *client_pub,
                         const char *client_sec)
{
    if (server_pub == NULL || server_pub[0] == '\0')
        return 0;
    if (!z85_key(server_pub) || !z85_key(client_pub) || !z85_key(client_sec)) {
        harness_say("CURVE keys must be %d characters of Z85", HARNESS_Z85_LEN);
        return TALLY_EINVAL;
    }
    /* A Z85 key option is 41 bytes: the text and its NUL. */
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pub, HARNESS_Z85_LEN + 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, client_pub, HARNESS_Z85_LEN + 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, client_sec, HARNESS_Z85_LEN + 1) != 0) {
        harness_say("CURVE socket options: %s", zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    return 0;
}

int harness_curve_keypair(char pub[HARNESS_Z85_LEN + 1], char sec[HARNESS_Z85_LEN + 1])
{
    if (zmq_curve_keypair(pub, sec) != 0) {
        harness_say("zmq_curve_keypair: %s", zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    return 0;
}

int harness_set_curve(harness_t *h, const char *server_pub, const char *client_pub,
                      const char *client_sec)
{
    if (server_pub == NULL) {
        h->curve_server[0] = h->curve_public[0] = h->curve_secret[0] = '\0';
        return 0;
    }
    if (!z85_key(server_pub) || !z85_key(client_pub) || !z85_key(client_sec))
        return TALLY_EINVAL;
    snprintf(h->curve_server, sizeof(h->curve_server), "%s", server_pub);
    snprintf(h->curve_public, sizeof(h->curve_public), "%s", client_pub);
    snprintf(h->curve_secret, sizeof(h->curve_secret), "%s", client_sec);
    return 0;
}

/* mkdir -p of p's directories; the last component too when whole. */
static int make_dirs(char *p, bool whole)
{
    char *end = whole ? p + strlen(p) : strrchr(p, '/');
    if (end == NULL)
        return 0;
    for (char *q = p + 1; q <= end; q++) {
        if (*q != '/' && *q != '\0')
            continue;
        char c = *q;
        *q = '\0';
        int rc = mkdir(p, 0700);
        int err = errno;
        *q = c;
        if (rc != 0 && err != EEXIST) {
            harness_say("mkdir %s: %s", p, strerror(err));
            return TALLY_EIO;
        }
        if (q == end)
            break;
    }
    return 0;
}

int harness_mkdir(harness_t *h, const char *name, char *path, size_t len)
{
    char p[HARNESS_PATH_MAX];
    if (snprintf(p, sizeof(p), "%s/%s", h->dir, name) >= (int)sizeof(p))
        return TALLY_ETOOLONG;
    int rc = make_dirs(p, true);
    if (rc == 0 && path != NULL && snprintf(path, len, "%s", p) >= (int)len)
        return TALLY_ETOOLONG;
    return rc;
}

int harness_write_cert(harness_t *h, const char *name, const char *pub, const char *sec, char *path,
                       size_t len)
{
    char p[HARNESS_PATH_MAX];
    if (snprintf(p, sizeof(p), "%s/%s", h->dir, name) >= (int)sizeof(p))
        return TALLY_ETOOLONG;
    int rc = make_dirs(p, false);
    if (rc != 0)
        return rc;
    char text[512];
    int n = snprintf(text, sizeof(text),
                     "#   ZeroMQ CURVE %s Certificate (written by the tally test harness)\n"
                     "\n"
                     "metadata\n"
                     "    name = \"%s\"\n"
                     "curve\n"
                     "    public-key = \"%s\"\n",
                     sec ? "**Secret**" : "Public", name, pub);
    if (sec != NULL && n > 0 && (size_t)n < sizeof(text))
        n += snprintf(text + n, sizeof(text) - (size_t)n, "    secret-key = \"%s\"\n", sec);
    if (n < 0 || (size_t)n >= sizeof(text))
        return TALLY_ETOOLONG;
    mode_t mode = sec != NULL ? 0600 : 0644;
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || fchmod(fd, mode) != 0 || write(fd, text, (size_t)n) != n) {
        harness_say("cannot write %s: %s", p, strerror(errno));
        if (fd >= 0)
            close(fd);
        return TALLY_EIO;
    }
    if (close(fd) != 0)
        return TALLY_EIO;
    if (path != NULL && snprintf(path, len, "%s", p) >= (int)len)
        return TALLY_ETOOLONG;
    return 0;
}

/* ---- the daemon process ---------------------------------------------- */

int harness_init(harness_t *h)
{
    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    const char *tmp = getenv("TMPDIR");
    /* ipc:// paths must fit sun_path (108 bytes); fall back to /tmp. */
    if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(h->dir, sizeof(h->dir), "%s/tallyd-it.XXXXXX", tmp);
    if (mkdtemp(h->dir) == NULL) {
        harness_say("mkdtemp %s: %s", h->dir, strerror(errno));
        h->dir[0] = '\0';
        return TALLY_ESYS;
    }
    snprintf(h->req_endpoint, sizeof(h->req_endpoint), "ipc://%s/req", h->dir);
    snprintf(h->pub_endpoint, sizeof(h->pub_endpoint), "ipc://%s/pub", h->dir);
    snprintf(h->state_dir, sizeof(h->state_dir), "%s/state", h->dir);
    snprintf(h->log_path, sizeof(h->log_path), "%s/tallyd.log", h->dir);
    h->zctx = zmq_ctx_new();
    if (h->zctx == NULL) {
        harness_say("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    return 0;
}

int harness_write_file(harness_t *h, const char *name, const char *text, char *path, size_t len)
{
    char p[HARNESS_PATH_MAX];
    if (snprintf(p, sizeof(p), "%s/%s", h->dir, name) >= (int)sizeof(p))
        return TALLY_ETOOLONG;
    FILE *f = fopen(p, "wb");
    if (f == NULL) {
        harness_say("cannot write %s: %s", p, strerror(errno));
        return TALLY_EIO;
    }
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, f) == n;
    ok = fclose(f) == 0 && ok;
    if (!ok)
        return TALLY_EIO;
    if (path != NULL && snprintf(path, len, "%s", p) >= (int)len)
        return TALLY_ETOOLONG;
    return 0;
}

static int decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

/* fork + exec with stdout/stderr to fd.  Only async-signal-safe calls
 * happen in the child: the test process has ZeroMQ's threads running. */
static pid_t spawn(char *const *argv, int fd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* no daemon outlives a crashed test */
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
        dup2(devnull, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(argv[0], argv);
    _exit(127);
}

bool harness_running(harness_t *h)
{
    if (h->pid <= 0)
        return false;
    int status;
    pid_t r = waitpid(h->pid, &status, WNOHANG);
    if (r == 0)
        return true;
    if (r == h->pid)
        h->last_status = decode_status(status);
    h->pid = 0;
    return false;
}

static void dump_log(harness_t *h)
{
    fprintf(stderr, "---- %s ----\n%s---- end of log ----\n", h->log_path, harness_log(h));
}

/* HELLO until WELCOME, while watching that the daemon lives. */
static int await_welcome(harness_t *h)
{
    void *s = harness_open_socket(h, ZMQ_DEALER);
    if (s == NULL)
        return TALLY_ESYS;
    if (harness_socket_curve(s, h->curve_server, h->curve_public, h->curve_secret) != 0) {
        harness_close_socket(h, s);
        return TALLY_EINVAL;
    }
    zmq_connect(s, h->req_endpoint);
    int64_t start = harness_mono_ms(), deadline = start + HARNESS_START_TIMEOUT_MS;
    int64_t next_hello = start;
    uint64_t req_id = 0;
    int rc = TALLY_ETIMEDOUT;
    while (harness_mono_ms() < deadline) {
        if (!harness_running(h)) {
            harness_say("tallyd exited with status %d before answering HELLO", h->last_status);
            rc = TALLY_ECLOSED;
            break;
        }
        if (harness_mono_ms() >= next_hello) {
            /* A HELLO queued before the daemon bound is delivered once the
             * DEALER connects; resending only covers a lost connection. */
            proto_msg_t m = {.type = PROTO_HELLO};
            m.u.hello.req_id = ++req_id;
            m.u.hello.client = proto_str("tally-harness");
            msgpack_sbuffer b;
            msgpack_sbuffer_init(&b);
            if (proto_encode(&b, &m) == 0)
                zmq_send(s, b.data, b.size, ZMQ_DONTWAIT);
            msgpack_sbuffer_destroy(&b);
            next_hello = harness_mono_ms() + 2000;
        }
        zmq_msg_t part;
        int n = harness_recv_parts(s, &part, 1, harness_mono_ms() + 100);
        if (n <= 0)
            continue;
        proto_msg_t m;
        proto_error_t err;
        m.type = 0;
        int drc = n == 1 ? proto_decode(zmq_msg_data(&part), zmq_msg_size(&part), &m, NULL, 0, &err)
                         : TALLY_EMALFORMED;
        if (drc == 0 && m.type == PROTO_WELCOME) {
            h->stream_id = m.u.welcome.stream_id;
            h->seq = m.u.welcome.seq;
            h->ncolumns = m.u.welcome.ncolumns;
            for (uint32_t i = 0; i < h->ncolumns; i++)
                snprintf(h->columns[i], sizeof(h->columns[i]), "%.*s",
                         (int)m.u.welcome.columns[i].len, m.u.welcome.columns[i].ptr);
            h->max_samples = m.u.welcome.max_samples;
            h->max_msg = m.u.welcome.max_msg;
            h->skew_ms = m.u.welcome.skew_ms;
            h->max_age_ms = m.u.welcome.max_age_ms;
            rc = 0;
        } else {
            harness_say("unexpected reply to HELLO (decode %s, type %u)", tally_errname(drc),
                        m.type);
        }
        harness_close_parts(&part, n, 1);
        if (rc == 0)
            break;
    }
    harness_close_socket(h, s);
    return rc;
}

static int launch(harness_t *h)
{
    const char *argv[HARNESS_ARGS_MAX + 12];
    size_t n = 0;
    argv[n++] = harness_tallyd();
    argv[n++] = "-r";
    argv[n++] = h->req_endpoint;
    argv[n++] = "-p";
    argv[n++] = h->pub_endpoint;
    argv[n++] = "-s";
    argv[n++] = h->state_dir;
    if (h->config_path[0] != '\0') {
        argv[n++] = "-c";
        argv[n++] = h->config_path;
    }
    for (size_t i = 0; i < h->nextra; i++)
        argv[n++] = h->extra[i];
    argv[n] = NULL;
    int fd = open(h->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        harness_say("cannot open %s: %s", h->log_path, strerror(errno));
        return TALLY_ESYS;
    }
    h->pid = spawn((char *const *)argv, fd);
    close(fd);
    if (h->pid < 0) {
        harness_say("fork: %s", strerror(errno));
        h->pid = 0;
        return TALLY_ESYS;
    }
    int rc = await_welcome(h);
    if (rc != 0) {
        if (harness_running(h)) {
            kill(h->pid, SIGKILL);
            waitpid(h->pid, NULL, 0);
            h->pid = 0;
        }
        harness_say("tallyd did not come up (%s); command line:", tally_errname(rc));
        for (size_t i = 0; argv[i] != NULL; i++)
            fprintf(stderr, " %s", argv[i]);
        fprintf(stderr, "\n");
        dump_log(h);
    }
    return rc;
}

int harness_start(harness_t *h, const char *config_text, const char *const *extra_args)
{
    if (h->zctx == NULL && harness_init(h) != 0)
        return TALLY_ESYS;
    if (h->pid > 0) {
        harness_say("harness_start: a daemon is already running");
        return TALLY_EINVAL;
    }
    h->config_path[0] = '\0';
    if (config_text != NULL) {
        int rc = harness_write_file(h, "tallyd.conf", config_text, h->config_path,
                                    sizeof(h->config_path));
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < h->nextra; i++)
        free(h->extra[i]);
    h->nextra = 0;
    for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
        if (h->nextra == HARNESS_ARGS_MAX)
            return TALLY_EINVAL;
        h->extra[h->nextra] = strdup(extra_args[i]);
        if (h->extra[h->nextra++] == NULL)
            return TALLY_ENOMEM;
    }
    return launch(h);
}

/* Wait for pid until deadline; returns the decoded status or -2. */
static int reap(pid_t pid, int64_t deadline)
{
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return decode_status(status);
        if (r < 0 && errno != EINTR)
            return -1;
        if (harness_mono_ms() >= deadline)
            return -2;
        sleep_ms(5);
    }
}

int harness_stop(harness_t *h, int sig)
{
    if (h->pid <= 0)
        return h->last_status;
    kill(h->pid, sig);
    int st = reap(h->pid, harness_mono_ms() + HARNESS_STOP_TIMEOUT_MS);
    if (st == -2) {
        harness_say("tallyd did not exit within %d ms of signal %d; killing it",
                    HARNESS_STOP_TIMEOUT_MS, sig);
        kill(h->pid, SIGKILL);
        waitpid(h->pid, NULL, 0);
        st = -1;
    }
    h->pid = 0;
    h->last_status = st;
    return st;
}

int harness_finish(harness_t *h)
{
    if (!harness_running(h))
        return 0;
    int st = harness_stop(h, SIGTERM);
    if (st != 0) {
        harness_say("tallyd exited with status %d after SIGTERM", st);
        dump_log(h);
    }
    return st;
}

int harness_restart(harness_t *h, int *stop_status)
{
    int st = harness_stop(h, SIGTERM);
    if (stop_status != NULL)
        *stop_status = st;
    return launch(h);
}

static int rm_rf(const char *path)
{
    /* The tree is ours and shallow; a child rm keeps this file short. */
    char *const argv[] = {"/bin/rm", "-rf", (char *)path, NULL};
    int fd = open("/dev/null", O_WRONLY);
    pid_t pid = spawn(argv, fd >= 0 ? fd : 2);
    if (fd >= 0)
        close(fd);
    if (pid < 0)
        return -1;
    return reap(pid, harness_mono_ms() + 10000);
}

void harness_cleanup(harness_t *h)
{
    if (h->pid > 0) {
        kill(h->pid, SIGKILL);
        waitpid(h->pid, NULL, 0);
        h->pid = 0;
    }
    if (h->zctx != NULL) {
        for (size_t i = 0; i < HARNESS_SOCKS_MAX; i++)
            if (h->socks[i] != NULL) {
                zmq_close(h->socks[i]);
                h->socks[i] = NULL;
            }
        zmq_ctx_term(h->zctx);
        h->zctx = NULL;
        pthread_mutex_destroy(&h->lock);
    }
    if (h->dir[0] != '\0') {
        if (getenv("TALLY_KEEP_TMP") != NULL)
            harness_say("kept %s (TALLY_KEEP_TMP)", h->dir);
        else
            rm_rf(h->dir);
        h->dir[0] = '\0';
    }
    for (size_t i = 0; i < h->nextra; i++)
        free(h->extra[i]);
    h->nextra = 0;
    free(h->log_text);
    h->log_text = NULL;
}

const char *harness_log(harness_t *h)
{
    free(h->log_text);
    h->log_text = h->log_path[0] ? harness_read_file(h->log_path) : NULL;
    return h->log_text != NULL ? h->log_text : "";
}

size_t harness_count_in(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

int harness_wait_log(harness_t *h, const char *needle, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    do {
        if (strstr(harness_log(h), needle) != NULL)
            return 0;
        sleep_ms(20);
    } while (harness_mono_ms() < deadline);
    return TALLY_ETIMEDOUT;
}

int harness_run(const char *const *args, char *out, size_t cap, int timeout_ms)
{
    const char *argv[HARNESS_ARGS_MAX + 2];
    size_t n = 0;
    argv[n++] = harness_tallyd();
    for (size_t i = 0; args[i] != NULL && n < HARNESS_ARGS_MAX + 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = spawn((char *const *)argv, fds[1]);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    size_t used = 0;
    int64_t deadline = harness_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - harness_mono_ms();
        struct pollfd p = {fds[0], POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) == 0)
            break;
        char buf[1024];
        ssize_t got = read(fds[0], buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        size_t take = (size_t)got;
        if (cap > 0 && used + take > cap - 1)
            take = cap - 1 - used;
        memcpy(out + used, buf, take);
        used += take;
    }
    close(fds[0]);
    if (cap > 0)
        out[used] = '\0';
    int st = reap(pid, deadline + 1000);
    if (st == -2) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        st = -1;
    }
    return st;
}
