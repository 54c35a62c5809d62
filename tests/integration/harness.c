/* harness.c - run the real tallyd and talk to it over real sockets (see
 * harness.h). */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
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

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
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
static void *open_socket(harness_t *h, int type)
{
    void *s = zmq_socket(h->zctx, type);
    if (s == NULL) {
        say("zmq_socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    int zero = 0, ivl = 100;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
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
        say("more than %d sockets open at once", HARNESS_SOCKS_MAX);
        zmq_close(s);
        return NULL;
    }
    return s;
}

static void close_socket(harness_t *h, void *s)
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
static int recv_parts(void *sock, zmq_msg_t *parts, int max, int64_t deadline)
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

static void close_parts(zmq_msg_t *parts, int n, int max)
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
static int set_curve(void *sock, const char *server_pub, const char *client_pub,
                     const char *client_sec)
{
    if (server_pub == NULL || server_pub[0] == '\0')
        return 0;
    if (!z85_key(server_pub) || !z85_key(client_pub) || !z85_key(client_sec)) {
        say("CURVE keys must be %d characters of Z85", HARNESS_Z85_LEN);
        return TALLY_EINVAL;
    }
    /* A Z85 key option is 41 bytes: the text and its NUL. */
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pub, HARNESS_Z85_LEN + 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, client_pub, HARNESS_Z85_LEN + 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, client_sec, HARNESS_Z85_LEN + 1) != 0) {
        say("CURVE socket options: %s", zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    return 0;
}

int harness_curve_keypair(char pub[HARNESS_Z85_LEN + 1], char sec[HARNESS_Z85_LEN + 1])
{
    if (zmq_curve_keypair(pub, sec) != 0) {
        say("zmq_curve_keypair: %s", zmq_strerror(zmq_errno()));
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
            say("mkdir %s: %s", p, strerror(err));
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
        say("cannot write %s: %s", p, strerror(errno));
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
        say("mkdtemp %s: %s", h->dir, strerror(errno));
        h->dir[0] = '\0';
        return TALLY_ESYS;
    }
    snprintf(h->req_endpoint, sizeof(h->req_endpoint), "ipc://%s/req", h->dir);
    snprintf(h->pub_endpoint, sizeof(h->pub_endpoint), "ipc://%s/pub", h->dir);
    snprintf(h->state_dir, sizeof(h->state_dir), "%s/state", h->dir);
    snprintf(h->log_path, sizeof(h->log_path), "%s/tallyd.log", h->dir);
    h->zctx = zmq_ctx_new();
    if (h->zctx == NULL) {
        say("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
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
        say("cannot write %s: %s", p, strerror(errno));
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
    void *s = open_socket(h, ZMQ_DEALER);
    if (s == NULL)
        return TALLY_ESYS;
    if (set_curve(s, h->curve_server, h->curve_public, h->curve_secret) != 0) {
        close_socket(h, s);
        return TALLY_EINVAL;
    }
    zmq_connect(s, h->req_endpoint);
    int64_t start = harness_mono_ms(), deadline = start + HARNESS_START_TIMEOUT_MS;
    int64_t next_hello = start;
    uint64_t req_id = 0;
    int rc = TALLY_ETIMEDOUT;
    while (harness_mono_ms() < deadline) {
        if (!harness_running(h)) {
            say("tallyd exited with status %d before answering HELLO", h->last_status);
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
        int n = recv_parts(s, &part, 1, harness_mono_ms() + 100);
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
            say("unexpected reply to HELLO (decode %s, type %u)", tally_errname(drc), m.type);
        }
        close_parts(&part, n, 1);
        if (rc == 0)
            break;
    }
    close_socket(h, s);
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
        say("cannot open %s: %s", h->log_path, strerror(errno));
        return TALLY_ESYS;
    }
    h->pid = spawn((char *const *)argv, fd);
    close(fd);
    if (h->pid < 0) {
        say("fork: %s", strerror(errno));
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
        say("tallyd did not come up (%s); command line:", tally_errname(rc));
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
        say("harness_start: a daemon is already running");
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
        say("tallyd did not exit within %d ms of signal %d; killing it", HARNESS_STOP_TIMEOUT_MS,
            sig);
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
        say("tallyd exited with status %d after SIGTERM", st);
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
            say("kept %s (TALLY_KEEP_TMP)", h->dir);
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

/* ---- the request client ----------------------------------------------- */

int harness_client_open(harness_t *h, harness_client_t *c)
{
    return harness_client_open_curve(h, c, h->curve_server[0] ? h->curve_server : NULL,
                                     h->curve_public, h->curve_secret);
}

int harness_client_open_curve(harness_t *h, harness_client_t *c, const char *server_pub,
                              const char *client_pub, const char *client_sec)
{
    memset(c, 0, sizeof(*c));
    c->h = h;
    c->next_req_id = 1;
    if (getrandom(c->client_id, sizeof(c->client_id), 0) != (ssize_t)sizeof(c->client_id))
        return TALLY_ESYS;
    c->sock = open_socket(h, ZMQ_DEALER);
    if (c->sock == NULL)
        return TALLY_ESYS;
    int hwm = 100000;
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    int rc = set_curve(c->sock, server_pub, client_pub, client_sec);
    if (rc != 0) {
        close_socket(h, c->sock);
        c->sock = NULL;
        return rc;
    }
    if (zmq_connect(c->sock, h->req_endpoint) != 0) {
        say("connect %s: %s", h->req_endpoint, zmq_strerror(zmq_errno()));
        close_socket(h, c->sock);
        c->sock = NULL;
        return TALLY_ESYS;
    }
    return 0;
}

void harness_client_close(harness_client_t *c)
{
    if (c->sock != NULL)
        close_socket(c->h, c->sock);
    c->sock = NULL;
}

int harness_send_frames(harness_client_t *c, const void *const *bufs, const size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (zmq_send(c->sock, bufs[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0) < 0) {
            say("zmq_send: %s", zmq_strerror(zmq_errno()));
            return TALLY_EIO;
        }
    }
    return 0;
}

int harness_send_raw(harness_client_t *c, const void *bytes, size_t len)
{
    return harness_send_frames(c, &bytes, &len, 1);
}

long harness_recv_raw(harness_client_t *c, void *buf, size_t cap, int timeout_ms)
{
    zmq_msg_t part;
    int n = recv_parts(c->sock, &part, 1, harness_mono_ms() + timeout_ms);
    if (n <= 0)
        return TALLY_ETIMEDOUT;
    size_t len = zmq_msg_size(&part);
    memcpy(buf, zmq_msg_data(&part), len < cap ? len : cap);
    zmq_msg_close(&part);
    return (long)len;
}

/* Receive one reply and decode it.  The caller closes *part when the
 * result is > 0.  Returns 1, 0 on timeout, or -1 for a message that does
 * not decode (already closed and counted). */
static int recv_msg(harness_client_t *c, zmq_msg_t *part, proto_msg_t *m, int64_t deadline)
{
    int n = recv_parts(c->sock, part, 1, deadline);
    if (n <= 0)
        return 0;
    proto_error_t err;
    if (n != 1 || proto_decode(zmq_msg_data(part), zmq_msg_size(part), m, NULL, 0, &err) != 0) {
        say("undecodable reply (%d frames): %s", n, n == 1 ? err.message : "");
        close_parts(part, n, 1);
        c->ignored++;
        return -1;
    }
    return 1;
}

static void copy_str(char *dst, size_t cap, proto_str_t s)
{
    snprintf(dst, cap, "%.*s", (int)s.len, s.ptr);
}

static void fill_reply(harness_ack_t *r, const proto_msg_t *m)
{
    memset(r, 0, sizeof(*r));
    r->type = m->type;
    if (m->type == PROTO_ACK) {
        r->seq = m->u.ack.seq;
        r->status = m->u.ack.status;
        r->code = (int)m->u.ack.code;
        r->sample = m->u.ack.sample;
        copy_str(r->field, sizeof(r->field), m->u.ack.field);
        copy_str(r->message, sizeof(r->message), m->u.ack.message);
    } else {
        r->seq = m->u.error.req_id;
        r->status = -1;
        r->code = (int)m->u.error.code;
        r->sample = -1;
        copy_str(r->field, sizeof(r->field), m->u.error.field);
        copy_str(r->message, sizeof(r->message), m->u.error.message);
    }
}

int harness_recv_reply(harness_client_t *c, harness_ack_t *r, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    for (;;) {
        zmq_msg_t part;
        proto_msg_t m;
        int got = recv_msg(c, &part, &m, deadline);
        if (got == 0)
            return TALLY_ETIMEDOUT;
        if (got < 0)
            return TALLY_EMALFORMED;
        bool mine = m.type == PROTO_ACK || m.type == PROTO_ERROR;
        if (mine)
            fill_reply(r, &m);
        else
            c->ignored++;
        zmq_msg_close(&part);
        if (mine)
            return 0;
    }
}

int harness_encode_submit(const harness_client_t *c, msgpack_sbuffer *out, uint64_t seq,
                          const char *township, int64_t time_ms, const harness_sample_t *samples,
                          uint32_t n)
{
    proto_sample_t ps[PROTO_SAMPLES_MAX];
    if (n > PROTO_SAMPLES_MAX)
        return TALLY_EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        ps[i].metric = proto_str(samples[i].metric);
        ps[i].value = samples[i].value;
    }
    proto_msg_t m = {.type = PROTO_SUBMIT};
    memcpy(m.u.submit.client_id, c->client_id, PROTO_CLIENT_ID_LEN);
    m.u.submit.seq = seq;
    m.u.submit.township = proto_str(township);
    m.u.submit.time_ms = time_ms;
    m.u.submit.nsamples = n;
    m.u.submit.samples = ps;
    return proto_encode(out, &m) == 0 ? 0 : TALLY_EINVAL;
}

int harness_send_submit(harness_client_t *c, uint64_t seq, const char *township, int64_t time_ms,
                        const harness_sample_t *samples, uint32_t n)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    int rc = harness_encode_submit(c, &b, seq, township, time_ms, samples, n);
    if (rc == 0)
        rc = harness_send_raw(c, b.data, b.size);
    else
        say("the codec refuses this SUBMIT (seq %" PRIu64 ")", seq);
    msgpack_sbuffer_destroy(&b);
    return rc;
}

int harness_wait_ack(harness_client_t *c, uint64_t seq, harness_ack_t *ack, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    for (;;) {
        harness_ack_t r;
        int64_t left = deadline - harness_mono_ms();
        int rc = harness_recv_reply(c, &r, left > 0 ? (int)left : 0);
        if (rc == TALLY_ETIMEDOUT) {
            say("no ACK for seq %" PRIu64 " within %d ms", seq, timeout_ms);
            return rc;
        }
        if (rc != 0)
            continue;
        if ((r.type == PROTO_ACK && r.seq == seq) || (r.type == PROTO_ERROR && r.seq == 0)) {
            *ack = r;
            return 0;
        }
        c->ignored++;
    }
}

int harness_submit(harness_client_t *c, uint64_t seq, const char *township, int64_t time_ms,
                   const harness_sample_t *samples, uint32_t n, harness_ack_t *ack)
{
    int rc = harness_send_submit(c, seq, township, time_ms, samples, n);
    if (rc == 0)
        rc = harness_wait_ack(c, seq, ack, HARNESS_REPLY_TIMEOUT_MS);
    return rc;
}

int harness_submit_one(harness_client_t *c, uint64_t seq, const char *township, int64_t time_ms,
                       const char *metric, int64_t value, harness_ack_t *ack)
{
    harness_sample_t s = {metric, value};
    return harness_submit(c, seq, township, time_ms, &s, 1, ack);
}

const char *harness_ack_str(const harness_ack_t *a, char *buf, size_t len)
{
    static const char *const status[] = {"accepted", "duplicate", "rejected"};
    if (a->type == PROTO_ACK)
        snprintf(buf, len, "ACK seq %" PRIu64 " %s code %d %s sample %d field '%s': %s", a->seq,
                 a->status >= 0 && a->status <= 2 ? status[a->status] : "status?", a->code,
                 a->code ? tally_errname(-a->code) : "", a->sample, a->field, a->message);
    else if (a->type == PROTO_ERROR)
        snprintf(buf, len, "ERROR req_id %" PRIu64 " code %d %s field '%s': %s", a->seq, a->code,
                 tally_errname(-a->code), a->field, a->message);
    else
        snprintf(buf, len, "no reply (type %u)", a->type);
    return buf;
}

/* Encode and send a request of type with a fresh req_id. */
static int send_request(harness_client_t *c, proto_msg_t *m, uint64_t *req_id)
{
    *req_id = c->next_req_id++;
    m->u.stats_req.req_id = *req_id; /* every request starts with req_id */
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    int rc = proto_encode(&b, m) == 0 ? harness_send_raw(c, b.data, b.size) : TALLY_EINVAL;
    msgpack_sbuffer_destroy(&b);
    return rc;
}

/* Wait for a reply of type want (or ERROR) carrying req_id.  On 1 the
 * caller owns *part. */
static int await_reply(harness_client_t *c, uint64_t req_id, uint32_t want, zmq_msg_t *part,
                       proto_msg_t *m, int64_t deadline)
{
    for (;;) {
        int got = recv_msg(c, part, m, deadline);
        if (got == 0)
            return 0;
        if (got < 0)
            continue;
        if ((m->type == want || m->type == PROTO_ERROR) && proto_req_id(m) == req_id)
            return 1;
        c->ignored++;
        zmq_msg_close(part);
    }
}

int harness_ping(harness_client_t *c, uint64_t *seq)
{
    proto_msg_t m = {.type = PROTO_PING};
    m.u.ping.time_ms = harness_now_ms();
    uint64_t req_id;
    int rc = send_request(c, &m, &req_id);
    if (rc != 0)
        return rc;
    zmq_msg_t part;
    if (await_reply(c, req_id, PROTO_PONG, &part, &m,
                    harness_mono_ms() + HARNESS_REPLY_TIMEOUT_MS) == 0)
        return TALLY_ETIMEDOUT;
    rc = m.type == PROTO_PONG ? 0 : -(int)m.u.error.code;
    if (rc == 0 && seq != NULL)
        *seq = m.u.pong.seq;
    zmq_msg_close(&part);
    return rc;
}

int64_t harness_stats(harness_client_t *c, const char *name)
{
    proto_msg_t *m = malloc(sizeof(*m)); /* a STATS body is 6 KiB */
    if (m == NULL)
        return -1;
    memset(m, 0, sizeof(*m));
    m->type = PROTO_STATS_REQ;
    uint64_t req_id;
    int64_t value = -1;
    zmq_msg_t part;
    if (send_request(c, m, &req_id) != 0) {
        free(m);
        return -1;
    }
    if (await_reply(c, req_id, PROTO_STATS, &part, m,
                    harness_mono_ms() + HARNESS_REPLY_TIMEOUT_MS) == 0) {
        say("no STATS reply within %d ms", HARNESS_REPLY_TIMEOUT_MS);
        free(m);
        return -1;
    }
    if (m->type == PROTO_STATS) {
        for (uint32_t i = 0; i < m->u.stats.n; i++)
            if (proto_str_eq(m->u.stats.entries[i].name, name))
                value = m->u.stats.entries[i].value;
    } else {
        say("STATS_REQ answered with ERROR %u", m->u.error.code);
    }
    zmq_msg_close(&part);
    free(m);
    return value;
}

/* ---- tallies ----------------------------------------------------------- */

void harness_table_init(harness_table_t *t)
{
    memset(t, 0, sizeof(*t));
}

void harness_table_clear(harness_table_t *t)
{
    t->n = 0;
    t->stream_id = t->seq = 0;
    t->count = 0;
}

void harness_table_free(harness_table_t *t)
{
    free(t->rows);
    harness_table_init(t);
}

void harness_row_from(harness_row_t *out, const proto_tally_t *tally)
{
    memset(out, 0, sizeof(*out));
    copy_str(out->metric, sizeof(out->metric), tally->metric);
    copy_str(out->scope, sizeof(out->scope), tally->scope);
    out->kind = tally->kind;
    out->seq = tally->seq;
    out->time_ms = tally->time_ms;
    out->ncols = tally->nvalues;
    for (uint32_t i = 0; i < tally->nvalues && i < PROTO_COLUMNS_MAX; i++) {
        copy_str(out->col[i], sizeof(out->col[i]), tally->values[i].name);
        out->val[i].present = tally->values[i].present;
        out->val[i].num = tally->values[i].num;
        out->val[i].den = tally->values[i].den;
    }
}

static harness_row_t *find_row(const harness_table_t *t, const char *metric, const char *scope)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->rows[i].metric, metric) == 0 && strcmp(t->rows[i].scope, scope) == 0)
            return &t->rows[i];
    return NULL;
}

int harness_table_put(harness_table_t *t, const harness_row_t *row)
{
    harness_row_t *r = find_row(t, row->metric, row->scope);
    if (r == NULL) {
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 64;
            harness_row_t *rows = realloc(t->rows, cap * sizeof(*rows));
            if (rows == NULL)
                return TALLY_ENOMEM;
            t->rows = rows;
            t->cap = cap;
        }
        r = &t->rows[t->n++];
    }
    *r = *row;
    return 0;
}

const harness_row_t *harness_table_find(const harness_table_t *t, const char *metric,
                                        const char *scope)
{
    return find_row(t, metric, scope);
}

static const harness_value_t *row_col(const harness_row_t *r, const char *column)
{
    for (uint32_t i = 0; i < r->ncols; i++)
        if (strcmp(r->col[i], column) == 0)
            return &r->val[i];
    return NULL;
}

bool harness_table_get(const harness_table_t *t, const char *metric, const char *scope,
                       const char *column, harness_value_t *out)
{
    const harness_row_t *r = find_row(t, metric, scope);
    const harness_value_t *v = r != NULL ? row_col(r, column) : NULL;
    if (v == NULL)
        return false;
    *out = *v;
    return true;
}

static bool value_eq(const harness_value_t *a, const harness_value_t *b)
{
    if (a->present != b->present)
        return false;
    return !a->present || (a->num == b->num && a->den == b->den);
}

/* Does every row of a exist in b with the same content? */
static bool table_covers(const harness_table_t *a, const harness_table_t *b, const char *an,
                         const char *bn, char *diff, size_t len)
{
    for (size_t i = 0; i < a->n; i++) {
        const harness_row_t *ra = &a->rows[i], *rb = find_row(b, ra->metric, ra->scope);
        if (rb == NULL) {
            snprintf(diff, len, "%s has %s/'%s', %s does not", an, ra->metric, ra->scope, bn);
            return false;
        }
        if (ra->kind != rb->kind || ra->ncols != rb->ncols) {
            snprintf(diff, len, "%s/'%s': kind %d vs %d, %u vs %u columns", ra->metric, ra->scope,
                     ra->kind, rb->kind, ra->ncols, rb->ncols);
            return false;
        }
        for (uint32_t c = 0; c < ra->ncols; c++) {
            const harness_value_t *vb = row_col(rb, ra->col[c]);
            if (vb == NULL || !value_eq(&ra->val[c], vb)) {
                snprintf(diff, len,
                         "%s/'%s' column %s: %s has %s%" PRId64 "/%" PRId64 ", %s has %s%" PRId64
                         "/%" PRId64,
                         ra->metric, ra->scope, ra->col[c], an, ra->val[c].present ? "" : "nil ",
                         ra->val[c].num, ra->val[c].den, bn,
                         vb == NULL    ? "no column "
                         : vb->present ? ""
                                       : "nil ",
                         vb ? vb->num : 0, vb ? vb->den : 0);
                return false;
            }
        }
    }
    return true;
}

bool harness_table_equal(const harness_table_t *a, const harness_table_t *b, char *diff, size_t len)
{
    char scratch[8];
    if (diff == NULL || len == 0) {
        diff = scratch;
        len = sizeof(scratch);
    }
    diff[0] = '\0';
    return table_covers(a, b, "first", "second", diff, len) &&
           table_covers(b, a, "second", "first", diff, len);
}

int harness_snapshot(harness_client_t *c, const char *prefix, harness_table_t *out)
{
    proto_msg_t m = {.type = PROTO_SNAPSHOT_REQ};
    m.u.snapshot_req.prefix = proto_str(prefix);
    uint64_t req_id;
    harness_table_clear(out);
    int rc = send_request(c, &m, &req_id);
    if (rc != 0)
        return rc;
    int64_t deadline = harness_mono_ms() + 2 * HARNESS_REPLY_TIMEOUT_MS;
    uint32_t items = 0;
    for (;;) {
        zmq_msg_t part;
        int got = recv_msg(c, &part, &m, deadline);
        if (got == 0) {
            say("snapshot '%s': no SNAPSHOT_END within %d ms (%u items)", prefix,
                2 * HARNESS_REPLY_TIMEOUT_MS, items);
            return TALLY_ETIMEDOUT;
        }
        if (got < 0)
            continue;
        rc = 1;
        if (proto_req_id(&m) != req_id) {
            c->ignored++;
        } else if (m.type == PROTO_SNAPSHOT_ITEM) {
            harness_row_t row;
            harness_row_from(&row, &m.u.snapshot_item.tally);
            items++;
            if (harness_table_put(out, &row) != 0)
                rc = TALLY_ENOMEM;
        } else if (m.type == PROTO_SNAPSHOT_END) {
            out->stream_id = m.u.snapshot_end.stream_id;
            out->seq = m.u.snapshot_end.seq;
            out->count = m.u.snapshot_end.count;
            rc = 0;
            if (items != out->count) {
                say("snapshot '%s': %u items arrived, SNAPSHOT_END says %u", prefix, items,
                    out->count);
                rc = TALLY_EMALFORMED;
            }
        } else if (m.type == PROTO_ERROR) {
            say("snapshot '%s': ERROR %u %.*s", prefix, m.u.error.code, (int)m.u.error.message.len,
                m.u.error.message.ptr);
            rc = -(int)m.u.error.code;
        } else {
            c->ignored++;
        }
        zmq_msg_close(&part);
        if (rc <= 0)
            return rc;
    }
}

/* ---- the subscriber ---------------------------------------------------- */

/* Apply one update under the clone rules: newer than the snapshot and
 * than the stored row. */
static bool sub_apply(harness_sub_t *s, const harness_row_t *row)
{
    if (row->seq <= s->snap_seq)
        return false;
    const harness_row_t *cur = harness_table_find(&s->table, row->metric, row->scope);
    if (cur != NULL && row->seq <= cur->seq)
        return false;
    if (harness_table_put(&s->table, row) != 0)
        return false;
    if (s->unfiltered) {
        if (row->seq != s->last_seq + 1)
            s->gaps++;
        s->last_seq = row->seq;
    }
    s->applied++;
    return true;
}

static void sub_emit(harness_sub_t *s, harness_event_t *ev)
{
    if (s->on_event != NULL)
        s->on_event(s, ev, s->ctx);
}

/* Handle one publish message.  Before the snapshot (!synced) updates are
 * buffered and only the first heartbeat is noted. */
static void sub_handle(harness_sub_t *s, zmq_msg_t *parts, int n)
{
    proto_msg_t m;
    proto_error_t err;
    if (n != 2 ||
        proto_decode(zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), &m, NULL, 0, &err) != 0) {
        s->bad_messages++;
        return;
    }
    char topic[PROTO_TOPIC_MAX + 1];
    size_t tl = zmq_msg_size(&parts[0]);
    snprintf(topic, sizeof(topic), "%.*s", (int)(tl < PROTO_TOPIC_MAX ? tl : PROTO_TOPIC_MAX),
             (const char *)zmq_msg_data(&parts[0]));
    harness_event_t ev = {.type = m.type, .topic = topic, .mono_ms = harness_mono_ms()};
    harness_row_t row;
    if (m.type == PROTO_UPDATE) {
        char want[PROTO_TOPIC_MAX];
        int wl = proto_topic(want, sizeof(want), m.u.update.tally.metric, m.u.update.tally.scope);
        if (wl < 0 || (size_t)wl != tl || memcmp(want, topic, tl) != 0) {
            s->bad_messages++;
            return;
        }
        harness_row_from(&row, &m.u.update.tally);
        ev.row = &row;
        ev.stream_id = m.u.update.stream_id;
        ev.seq = row.seq;
        if (!s->synced) {
            if (s->npending == s->cappending) {
                size_t cap = s->cappending ? s->cappending * 2 : 64;
                harness_row_t *p = realloc(s->pending, cap * sizeof(*p));
                if (p == NULL) {
                    s->bad_messages++;
                    return;
                }
                s->pending = p;
                s->cappending = cap;
            }
            s->pending[s->npending++] = row;
            return;
        }
        s->updates++;
        if (ev.stream_id != s->stream_id) {
            s->other_stream++;
        } else {
            ev.applied = sub_apply(s, &row);
        }
    } else if (m.type == PROTO_HEARTBEAT || m.type == PROTO_GOODBYE) {
        bool hb = m.type == PROTO_HEARTBEAT;
        ev.stream_id = hb ? m.u.heartbeat.stream_id : m.u.goodbye.stream_id;
        ev.seq = hb ? m.u.heartbeat.seq : m.u.goodbye.seq;
        if (!s->synced) {
            if (hb && s->stream_id == 0) {
                s->stream_id = ev.stream_id;
                s->hb_seq = ev.seq;
            }
            return;
        }
        if (ev.stream_id != s->stream_id) {
            s->other_stream++;
        } else if (hb) {
            s->heartbeats++;
            s->hb_seq = ev.seq;
            /* A heartbeat queued before the snapshot may carry an older
             * seq; only one ahead of what was applied shows a loss. */
            if (s->unfiltered && ev.seq > s->last_seq)
                s->gaps++;
        } else {
            s->goodbye = true;
            s->goodbye_seq = ev.seq;
            if (s->unfiltered && ev.seq > s->last_seq)
                s->gaps++;
        }
    } else {
        return; /* unknown types are ignored (PROTOCOL.md 18) */
    }
    sub_emit(s, &ev);
}

static int sub_read(harness_sub_t *s, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    int count = 0;
    for (;;) {
        zmq_msg_t parts[2];
        int n = recv_parts(s->sock, parts, 2, count == 0 ? deadline : 0);
        if (n <= 0)
            return count;
        sub_handle(s, parts, n);
        close_parts(parts, n, 2);
        count++;
    }
}

int harness_sub_open(harness_t *h, harness_sub_t *s, const char *prefix, harness_event_fn *on_event,
                     void *ctx)
{
    return harness_sub_open_curve(h, s, prefix, on_event, ctx,
                                  h->curve_server[0] ? h->curve_server : NULL, h->curve_public,
                                  h->curve_secret);
}

int harness_sub_open_curve(harness_t *h, harness_sub_t *s, const char *prefix,
                           harness_event_fn *on_event, void *ctx, const char *server_pub,
                           const char *client_pub, const char *client_sec)
{
    memset(s, 0, sizeof(*s));
    s->h = h;
    s->on_event = on_event;
    s->ctx = ctx;
    snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
    s->unfiltered = prefix[0] == '\0' || strcmp(prefix, "u/") == 0;
    harness_table_init(&s->table);
    s->sock = open_socket(h, ZMQ_SUB);
    if (s->sock == NULL)
        return TALLY_ESYS;
    int rc = set_curve(s->sock, server_pub, client_pub, client_sec);
    if (rc != 0)
        return rc;
    if (zmq_connect(s->sock, h->pub_endpoint) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_SUBSCRIBE, prefix, strlen(prefix)) != 0 ||
        zmq_setsockopt(s->sock, ZMQ_SUBSCRIBE, PROTO_TOPIC_HEARTBEAT,
                       strlen(PROTO_TOPIC_HEARTBEAT)) != 0) {
        say("subscriber setup: %s", zmq_strerror(zmq_errno()));
        return TALLY_ESYS;
    }
    /* PROTOCOL.md 16.2 step 2: the first heartbeat proves that the
     * subscription to prefix is active at the daemon. */
    int64_t deadline = harness_mono_ms() + 3000;
    while (s->stream_id == 0 && harness_mono_ms() < deadline)
        sub_read(s, (int)(deadline - harness_mono_ms()));
    if (s->stream_id == 0) {
        say("subscriber '%s': no heartbeat within 3000 ms", prefix);
        return TALLY_ETIMEDOUT;
    }
    rc = harness_client_open_curve(h, &s->cli, server_pub, client_pub, client_sec);
    if (rc == 0)
        rc = harness_snapshot(&s->cli, prefix, &s->table);
    if (rc != 0)
        return rc;
    if (s->table.stream_id != s->stream_id) {
        say("subscriber '%s': snapshot of stream %" PRIu64 ", heartbeat of %" PRIu64, prefix,
            s->table.stream_id, s->stream_id);
        return TALLY_EMALFORMED;
    }
    s->snap_seq = s->last_seq = s->table.seq;
    s->synced = true;
    for (size_t i = 0; i < s->npending; i++) {
        harness_event_t ev = {.type = PROTO_UPDATE,
                              .row = &s->pending[i],
                              .stream_id = s->stream_id,
                              .seq = s->pending[i].seq,
                              .mono_ms = harness_mono_ms()};
        char topic[PROTO_TOPIC_MAX];
        proto_topic(topic, sizeof(topic), proto_str(s->pending[i].metric),
                    proto_str(s->pending[i].scope));
        ev.topic = topic;
        s->updates++;
        ev.applied = sub_apply(s, &s->pending[i]);
        sub_emit(s, &ev);
    }
    s->npending = 0;
    return 0;
}

void harness_sub_close(harness_sub_t *s)
{
    if (s->h == NULL)
        return;
    harness_client_close(&s->cli);
    close_socket(s->h, s->sock);
    s->sock = NULL;
    harness_table_free(&s->table);
    free(s->pending);
    s->pending = NULL;
    s->h = NULL;
}

int harness_sub_poll(harness_sub_t *s, int timeout_ms)
{
    return sub_read(s, timeout_ms);
}

int harness_sub_until(harness_sub_t *s, bool (*cond)(harness_sub_t *s, void *ctx), void *ctx,
                      int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    for (;;) {
        if (cond(s, ctx))
            return 0;
        int64_t left = deadline - harness_mono_ms();
        if (left <= 0)
            return TALLY_ETIMEDOUT;
        sub_read(s, (int)left);
    }
}

int harness_sub_wait_stable(harness_sub_t *s, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    uint64_t seen = s->heartbeats, prev_seq = 0;
    bool have_prev = false;
    while (harness_mono_ms() < deadline) {
        sub_read(s, (int)(deadline - harness_mono_ms()));
        if (s->heartbeats == seen)
            continue;
        seen = s->heartbeats;
        if (s->unfiltered && s->hb_seq == s->last_seq)
            return 0;
        if (!s->unfiltered && have_prev && s->hb_seq == prev_seq)
            return 0;
        prev_seq = s->hb_seq;
        have_prev = true;
    }
    say("subscriber '%s': stream not stable within %d ms (heartbeat seq %" PRIu64
        ", applied %" PRIu64 ")",
        s->prefix, timeout_ms, s->hb_seq, s->last_seq);
    return TALLY_ETIMEDOUT;
}
