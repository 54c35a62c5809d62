/* cli_support.c - child processes and tables of tallies for
 * the integration tests of the `tally` command. */
#include "cli_support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
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

#include "harness.h"
#include "tally_error.h"

extern char **environ;

const char *cli_bin(void)
{
    const char *env = getenv("TALLY_CLI");
    return env != NULL && env[0] != '\0' ? env : TALLY_BIN;
}

/* ---- processes ------------------------------------------------------------ */

#define ENV_MAX 512

pid_t cli_spawn_argv(const char *server, const char *const *argv, const char *out_path,
                     const char *err_path)
{
    /* Everything the child needs is prepared before fork: the test process
     * has other threads (ZeroMQ's, pushers), so the child may only make
     * async-signal-safe calls until exec. */
    static __thread char server_var[HARNESS_PATH_MAX + 16];
    static __thread char state_var[HARNESS_PATH_MAX + 32];
    char *envp[ENV_MAX];
    size_t n = 0;
    for (char **e = environ; *e != NULL && n < ENV_MAX - 3; e++)
        if (strncmp(*e, "TALLY_SERVER=", 13) != 0 && strncmp(*e, "XDG_STATE_HOME=", 15) != 0)
            envp[n++] = *e;
    if (server != NULL) {
        snprintf(server_var, sizeof server_var, "TALLY_SERVER=%s", server);
        envp[n++] = server_var;
    }
    /* The user's client state (tally push without --spool) in the test's
     * directory, never in the home of whoever runs the tests. */
    const char *slash = strrchr(out_path, '/');
    snprintf(state_var, sizeof state_var, "XDG_STATE_HOME=%.*s/xdg-state",
             slash != NULL ? (int)(slash - out_path) : 1, slash != NULL ? out_path : ".");
    envp[n++] = state_var;
    envp[n] = NULL;
    int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int err = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || err < 0 || in < 0) {
        int saved = errno;
        if (out >= 0)
            close(out);
        if (err >= 0)
            close(err);
        if (in >= 0)
            close(in);
        errno = saved;
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* nothing outlives a crashed test */
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execve(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    int saved = errno;
    close(out);
    close(err);
    close(in);
    errno = saved;
    return pid;
}

pid_t cli_spawn(const char *server, const char *const *args, const char *out_path,
                const char *err_path)
{
    const char *argv[CLI_ARGS_MAX + 2];
    size_t n = 0;
    argv[n++] = cli_bin();
    for (size_t i = 0; args[i] != NULL; i++) {
        if (n == CLI_ARGS_MAX + 1) {
            errno = E2BIG;
            return -1;
        }
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    return cli_spawn_argv(server, argv, out_path, err_path);
}

static int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

int cli_wait(pid_t pid, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return decode_status(st);
        if (r < 0 && errno != EINTR)
            return -1;
        if (harness_mono_ms() >= deadline)
            return -2;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int cli_run(const char *dir, const char *server, const char *const *args, int timeout_ms,
            cli_result_t *r)
{
    static int counter;
    char out_path[HARNESS_PATH_MAX + 32], err_path[HARNESS_PATH_MAX + 32];
    int k = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    snprintf(out_path, sizeof out_path, "%s/cli-%d.out", dir, k);
    snprintf(err_path, sizeof err_path, "%s/cli-%d.err", dir, k);
    memset(r, 0, sizeof *r);
    int64_t start = harness_mono_ms();
    pid_t pid = cli_spawn(server, args, out_path, err_path);
    if (pid < 0) {
        r->status = -1;
        r->out = strdup("");
        if (asprintf(&r->err, "cannot start %s: %s", cli_bin(), strerror(errno)) < 0)
            r->err = NULL;
        return -1;
    }
    int st = cli_wait(pid, timeout_ms);
    if (st == -2) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        st = -1;
    }
    r->ms = harness_mono_ms() - start;
    r->status = st;
    r->out = harness_read_file(out_path);
    r->err = harness_read_file(err_path);
    if (r->out == NULL)
        r->out = strdup("");
    if (r->err == NULL)
        r->err = strdup("");
    return 0;
}

void cli_result_free(cli_result_t *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

int cli_count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    size_t sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l >= sl && strcmp(e->d_name + l - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* ---- tables ---------------------------------------------------------------- */

void cli_tab_init(cli_tab_t *t)
{
    memset(t, 0, sizeof *t);
}

void cli_tab_free(cli_tab_t *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}

static int terr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int terr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return TALLY_EMALFORMED;
}

static int copy_name(char *dst, const cj_t *v, const char *what, char *err, size_t errlen)
{
    if (v == NULL || v->type != CJ_STR)
        return terr(err, errlen, "a tally without a string '%s'", what);
    size_t n = strlen(v->s);
    if (n == 0 || n > CLI_NAME_MAX)
        return terr(err, errlen, "'%s' \"%s\" is empty or longer than %d bytes", what, v->s,
                    CLI_NAME_MAX);
    memcpy(dst, v->s, n + 1);
    return 0;
}

static int read_value(cli_val_t *out, const cj_t *v, bool ratio, const char *where, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (v->type == CJ_NULL)
        return 0;
    if (!ratio) {
        if (v->type != CJ_NUM || !v->is_int)
            return terr(err, errlen, "%s: not an integer or null", where);
        out->present = true;
        out->num = v->i;
        out->den = 1;
        out->value = (double)v->i;
        return 0;
    }
    const cj_t *num = cj_get(v, "num"), *den = cj_get(v, "den"), *val = cj_get(v, "value");
    if (v->type != CJ_OBJ || v->n != 3 || num == NULL || den == NULL || val == NULL ||
        num->type != CJ_NUM || !num->is_int || den->type != CJ_NUM || !den->is_int ||
        val->type != CJ_NUM)
        return terr(err, errlen, "%s: not null or {\"num\":int,\"den\":int,\"value\":number}",
                    where);
    if (den->i == 0)
        return terr(err, errlen, "%s: a ratio value with den 0 (should be null)", where);
    double q = (double)num->i / (double)den->i;
    if (fabs(val->d - q) > 1e-12 * (fabs(q) > 1 ? fabs(q) : 1))
        return terr(err, errlen, "%s: value %.17g is not num/den = %" PRId64 "/%" PRId64, where,
                    val->d, num->i, den->i);
    out->present = true;
    out->num = num->i;
    out->den = den->i;
    out->value = val->d;
    return 0;
}

/* One tally object of either output into *out. */
static int read_tally(cli_tally_t *out, const cj_t *o, bool with_seq, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (o->type != CJ_OBJ)
        return terr(err, errlen, "a tally that is not an object");
    size_t want = with_seq ? 5 : 4;
    if (o->n != want)
        return terr(err, errlen, "a tally with %zu members instead of %zu", o->n, want);
    if (with_seq) {
        if (strcmp(o->keys[0], "seq") != 0 || o->items[0].type != CJ_NUM || !o->items[0].is_int ||
            o->items[0].i < 0)
            return terr(err, errlen, "a watch line whose first member is not \"seq\":N");
        out->seq = (uint64_t)o->items[0].i;
    }
    int rc = copy_name(out->metric, cj_get(o, "metric"), "metric", err, errlen);
    if (rc == 0)
        rc = copy_name(out->scope, cj_get(o, "scope"), "scope", err, errlen);
    if (rc != 0)
        return rc;
    const cj_t *kind = cj_get(o, "kind");
    if (kind == NULL || kind->type != CJ_STR ||
        (strcmp(kind->s, "counter") != 0 && strcmp(kind->s, "gauge") != 0 &&
         strcmp(kind->s, "ratio") != 0))
        return terr(err, errlen, "%s/%s: kind is not counter, gauge or ratio", out->metric,
                    out->scope);
    snprintf(out->kind, sizeof out->kind, "%s", kind->s);
    const cj_t *values = cj_get(o, "values");
    if (values == NULL || values->type != CJ_OBJ)
        return terr(err, errlen, "%s/%s: no values object", out->metric, out->scope);
    if (values->n > CLI_COLS_MAX)
        return terr(err, errlen, "%s/%s: %zu columns", out->metric, out->scope, values->n);
    bool ratio = strcmp(out->kind, "ratio") == 0;
    for (size_t i = 0; i < values->n; i++) {
        char where[200];
        snprintf(where, sizeof where, "%s/%s column %s", out->metric, out->scope, values->keys[i]);
        if (strlen(values->keys[i]) == 0 || strlen(values->keys[i]) > CLI_NAME_MAX)
            return terr(err, errlen, "%s: bad column name", where);
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->col[j], values->keys[i]) == 0)
                return terr(err, errlen, "%s: column given twice", where);
        snprintf(out->col[i], sizeof out->col[i], "%s", values->keys[i]);
        rc = read_value(&out->val[i], &values->items[i], ratio, where, err, errlen);
        if (rc != 0)
            return rc;
    }
    out->ncols = values->n;
    return 0;
}

static cli_tally_t *find_mut(const cli_tab_t *t, const char *metric, const char *scope)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].metric, metric) == 0 && strcmp(t->v[i].scope, scope) == 0)
            return &t->v[i];
    return NULL;
}

/* Insert or replace; when unique is set, a second (metric, scope) is an
 * error (a get document lists each tally once). */
static int put(cli_tab_t *t, const cli_tally_t *x, bool unique, char *err, size_t errlen)
{
    cli_tally_t *have = find_mut(t, x->metric, x->scope);
    if (have != NULL) {
        if (unique)
            return terr(err, errlen, "tally %s/%s listed twice", x->metric, x->scope);
        *have = *x;
        return 0;
    }
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 32;
        cli_tally_t *nv = realloc(t->v, ncap * sizeof *nv);
        if (nv == NULL)
            return TALLY_ENOMEM;
        t->v = nv;
        t->cap = ncap;
    }
    t->v[t->n++] = *x;
    return 0;
}

int cli_tab_from_get(cli_tab_t *t, const char *text, char *err, size_t errlen)
{
    t->n = 0;
    t->lines = 0;
    cj_t doc;
    int rc = cj_parse(text, strlen(text), &doc, err, errlen);
    if (rc != 0)
        return rc;
    const cj_t *seq = cj_get(&doc, "seq"), *stream = cj_get(&doc, "stream_id"),
               *tallies = cj_get(&doc, "tallies");
    if (doc.type != CJ_OBJ || doc.n != 3 || seq == NULL || !seq->is_int || seq->i < 0 ||
        stream == NULL || !stream->is_int || stream->i < 0 || tallies == NULL ||
        tallies->type != CJ_ARR) {
        rc = terr(err, errlen, "not {\"seq\":N,\"stream_id\":N,\"tallies\":[...]}");
    } else {
        t->seq = (uint64_t)seq->i;
        t->stream_id = (uint64_t)stream->i;
        for (size_t i = 0; i < tallies->n && rc == 0; i++) {
            cli_tally_t x;
            rc = read_tally(&x, &tallies->items[i], false, err, errlen);
            if (rc == 0)
                rc = put(t, &x, true, err, errlen);
        }
    }
    cj_free(&doc);
    return rc;
}

int cli_tab_from_watch(cli_tab_t *t, const char *text, char *err, size_t errlen)
{
    size_t lineno = 0;
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break; /* still being written */
        lineno++;
        cj_t line;
        int rc = cj_parse(p, (size_t)(nl - p), &line, err, errlen);
        cli_tally_t x;
        if (rc == 0)
            rc = read_tally(&x, &line, true, err, errlen);
        cj_free(&line);
        if (rc == 0)
            rc = put(t, &x, false, err, errlen);
        if (rc != 0) {
            char inner[512];
            snprintf(inner, sizeof inner, "%s", err);
            snprintf(err, errlen, "watch line %zu: %s: %.*s", lineno, inner,
                     (int)(nl - p > 300 ? 300 : nl - p), p);
            return rc;
        }
        if (x.seq > t->seq)
            t->seq = x.seq;
        t->lines++;
        p = nl + 1;
    }
    return 0;
}

const cli_tally_t *cli_tab_find(const cli_tab_t *t, const char *metric, const char *scope)
{
    return find_mut(t, metric, scope);
}

bool cli_tab_get(const cli_tab_t *t, const char *metric, const char *scope, const char *column,
                 cli_val_t *out)
{
    const cli_tally_t *x = find_mut(t, metric, scope);
    if (x == NULL)
        return false;
    for (size_t i = 0; i < x->ncols; i++)
        if (strcmp(x->col[i], column) == 0) {
            *out = x->val[i];
            return true;
        }
    return false;
}

static bool val_eq(const cli_val_t *a, const cli_val_t *b)
{
    if (a->present != b->present)
        return false;
    return !a->present || (a->num == b->num && a->den == b->den);
}

static void fmt_val(char *buf, size_t len, const cli_val_t *v)
{
    if (!v->present)
        snprintf(buf, len, "null");
    else if (v->den == 1)
        snprintf(buf, len, "%" PRId64, v->num);
    else
        snprintf(buf, len, "%" PRId64 "/%" PRId64, v->num, v->den);
}

/* Every tally of a is in b with equal kind, columns and values. */
static bool covers(const cli_tab_t *a, const cli_tab_t *b, const char *an, const char *bn,
                   char *diff, size_t len)
{
    for (size_t i = 0; i < a->n; i++) {
        const cli_tally_t *x = &a->v[i];
        const cli_tally_t *y = find_mut(b, x->metric, x->scope);
        if (y == NULL) {
            snprintf(diff, len, "%s/%s is in %s but not in %s", x->metric, x->scope, an, bn);
            return false;
        }
        if (strcmp(x->kind, y->kind) != 0 || x->ncols != y->ncols) {
            snprintf(diff, len, "%s/%s: %s has %s with %zu columns, %s %s with %zu", x->metric,
                     x->scope, an, x->kind, x->ncols, bn, y->kind, y->ncols);
            return false;
        }
        for (size_t c = 0; c < x->ncols; c++) {
            cli_val_t yv;
            if (!cli_tab_get(b, x->metric, x->scope, x->col[c], &yv)) {
                snprintf(diff, len, "%s/%s: column %s missing in %s", x->metric, x->scope,
                         x->col[c], bn);
                return false;
            }
            if (!val_eq(&x->val[c], &yv)) {
                char s1[64], s2[64];
                fmt_val(s1, sizeof s1, &x->val[c]);
                fmt_val(s2, sizeof s2, &yv);
                snprintf(diff, len, "%s/%s %s: %s has %s, %s has %s", x->metric, x->scope,
                         x->col[c], an, s1, bn, s2);
                return false;
            }
        }
    }
    return true;
}

bool cli_tab_equal(const cli_tab_t *a, const cli_tab_t *b, char *diff, size_t len)
{
    return covers(a, b, "the first table", "the second", diff, len) &&
           covers(b, a, "the second table", "the first", diff, len);
}

/* ---- shortcuts ---------------------------------------------------------- */

static int failed_run(const cli_result_t *r, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: exit status %d, stderr: %s", what, r->status, r->err);
    return TALLY_EIO;
}

int cli_get_tab(const char *dir, const char *server, const char *const *extra, cli_tab_t *t,
                char *err, size_t errlen)
{
    const char *args[CLI_ARGS_MAX + 1];
    size_t n = 0;
    args[n++] = "get";
    args[n++] = "--json";
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < CLI_ARGS_MAX; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    cli_result_t r;
    cli_run(dir, server, args, 30000, &r);
    int rc;
    if (r.status != 0 || r.err[0] != '\0') {
        rc = failed_run(&r, "tally get --json", err, errlen);
    } else {
        char inner[1024] = "";
        rc = cli_tab_from_get(t, r.out, inner, sizeof inner);
        if (rc != 0)
            snprintf(err, errlen, "tally get --json: %s; output: %.600s", inner, r.out);
    }
    cli_result_free(&r);
    return rc;
}

int cli_stat(const char *dir, const char *server, const char *name, int64_t *value, char *err,
             size_t errlen)
{
    const char *args[] = {"stats", "--json", NULL};
    cli_result_t r;
    cli_run(dir, server, args, 30000, &r);
    if (r.status != 0 || r.err[0] != '\0') {
        int rc = failed_run(&r, "tally stats --json", err, errlen);
        cli_result_free(&r);
        return rc;
    }
    cj_t doc;
    char inner[512] = "";
    int rc = cj_parse(r.out, strlen(r.out), &doc, inner, sizeof inner);
    if (rc != 0) {
        snprintf(err, errlen, "tally stats --json: %s", inner);
    } else if (doc.type != CJ_OBJ) {
        rc = terr(err, errlen, "tally stats --json: not an object: %.200s", r.out);
    } else {
        for (size_t i = 0; i < doc.n && rc == 0; i++)
            if (doc.items[i].type != CJ_NUM || !doc.items[i].is_int)
                rc = terr(err, errlen, "tally stats --json: %s is not an integer", doc.keys[i]);
        const cj_t *v = cj_get(&doc, name);
        if (rc == 0 && v == NULL) {
            snprintf(err, errlen, "tally stats --json: no counter %s in %.300s", name, r.out);
            rc = TALLY_ENOTFOUND;
        } else if (rc == 0) {
            *value = v->i;
        }
    }
    cj_free(&doc);
    cli_result_free(&r);
    return rc;
}

cli_result_t cli_expect(struct harness *h, int status, const char *const *args)
{
    cli_result_t r;
    cli_run(h->dir, h->req_endpoint, args, 30000, &r);
    if (r.status != status) {
        char cmd[512] = "tally";
        for (size_t i = 0; args[i] != NULL; i++)
            snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " %s", args[i]);
        fail_msg("'%s': expected exit status %d, got %d\nstdout: %s\nstderr: %s\ndaemon log:\n%s",
                 cmd, status, r.status, r.out, r.err, harness_log(h));
    }
    return r;
}

int cli_fixture_setup(void **state)
{
    cli_fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0) {
        free(f);
        return -1;
    }
    cli_tab_init(&f->t);
    *state = f;
    return 0;
}

int cli_fixture_teardown(void **state)
{
    cli_fixture_t *f = *state;
    int rc = harness_finish(&f->h) == 0 ? 0 : -1;
    cli_tab_free(&f->t);
    harness_cleanup(&f->h);
    free(f);
    return rc;
}
