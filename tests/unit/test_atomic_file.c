/* Unit tests of atomic_file (proto/atomic_file.h): new and replaced
 * files, modes, never replacing, a file kept open, and the failure paths:
 * a missing directory, a temporary file that cannot be created, a disk
 * that fails to write or to sync (through the io hooks).  Every failure
 * names the file, leaves no temporary file and the old content intact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "tally_error.h"

typedef struct fx {
    char dir[64];
    char path[256];
    char err[512];
    int fail_errno; /* the hooks fail with this errno once armed */
    int writes, syncs;
    size_t chunk; /* the write hook writes at most this much; 0 = all */
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tally-atomic-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    char cmd[128];
    chmod(f->dir, 0700);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static const char *in(fx_t *f, const char *name)
{
    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, name);
    return f->path;
}

static char *slurp(fx_t *f, const char *name)
{
    static char buf[256];
    FILE *fp = fopen(in(f, name), "rb");
    if (fp == NULL)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

/* The message in f->err is "<the fixture's directory>/<rest>". */
static void expect_err(fx_t *f, const char *rest)
{
    char want[512];
    snprintf(want, sizeof want, "%s/%s", f->dir, rest);
    assert_string_equal(f->err, want);
}

static unsigned mode_of(fx_t *f, const char *name)
{
    struct stat st;
    assert_int_equal(stat(in(f, name), &st), 0);
    return st.st_mode & 07777;
}

/* The names in the directory, sorted, joined by spaces. */
static const char *listing(fx_t *f)
{
    static char out[512];
    struct dirent **v;
    int n = scandir(f->dir, &v, NULL, alphasort);
    assert_true(n >= 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (v[i]->d_name[0] != '.') {
            if (out[0] != '\0')
                strcat(out, " ");
            strcat(out, v[i]->d_name);
        }
        free(v[i]);
    }
    free(v);
    return out;
}

static ssize_t hook_write(void *ctx, int fd, const void *buf, size_t len)
{
    fx_t *f = ctx;
    f->writes++;
    if (f->fail_errno != 0 && f->fail_errno != EIO) {
        errno = f->fail_errno;
        return -1;
    }
    if (f->chunk != 0 && len > f->chunk)
        len = f->chunk;
    return write(fd, buf, len);
}

static int hook_sync(void *ctx, int fd)
{
    fx_t *f = ctx;
    f->syncs++;
    if (f->fail_errno == EIO) {
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

static void test_new_and_replace(void **state)
{
    fx_t *f = *state;
    mode_t old = umask(022);
    assert_int_equal(
        atomic_file_write(-1, f->dir, "client.seq", "7\n", 2, NULL, f->err, sizeof f->err), 0);
    assert_string_equal(slurp(f, "client.seq"), "7\n");
    assert_int_equal(mode_of(f, "client.seq"), 0600);
    /* Replaced, through an open directory this time. */
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    assert_int_equal(
        atomic_file_write(dfd, f->dir, "client.seq", "8\n", 2, NULL, f->err, sizeof f->err), 0);
    assert_string_equal(slurp(f, "client.seq"), "8\n");
    /* An empty file is a file too. */
    assert_int_equal(atomic_file_write(dfd, f->dir, "empty", "", 0, NULL, NULL, 0), 0);
    assert_string_equal(slurp(f, "empty"), "");
    close(dfd);
    assert_string_equal(listing(f), "client.seq empty");
    umask(old);
}

static void test_modes(void **state)
{
    fx_t *f = *state;
    mode_t old = umask(077);
    atomic_file_opts_t o = {.mode = 0640};
    assert_int_equal(atomic_file_write(-1, f->dir, "umasked", "x", 1, &o, NULL, 0), 0);
    assert_int_equal(mode_of(f, "umasked"), 0600); /* 0640 & ~077 */
    o.exact_mode = true;
    o.mode = 0644;
    assert_int_equal(atomic_file_write(-1, f->dir, "exact", "x", 1, &o, NULL, 0), 0);
    assert_int_equal(mode_of(f, "exact"), 0644);
    umask(0277);
    o.mode = 0600;
    assert_int_equal(atomic_file_write(-1, f->dir, "secret", "x", 1, &o, NULL, 0), 0);
    assert_int_equal(mode_of(f, "secret"), 0600);
    umask(old);
}

static void test_no_replace(void **state)
{
    fx_t *f = *state;
    atomic_file_opts_t o = {.no_replace = true};
    assert_int_equal(atomic_file_write(-1, f->dir, "k", "first", 5, &o, f->err, sizeof f->err), 0);
    assert_int_equal(atomic_file_write(-1, f->dir, "k", "second", 6, &o, f->err, sizeof f->err),
                     TALLY_EEXIST);
    assert_int_equal(errno, EEXIST);
    expect_err(f, "k: exists already");
    assert_string_equal(slurp(f, "k"), "first");
    assert_string_equal(listing(f), "k");
    /* A dangling symbolic link is a name too. */
    assert_int_equal(symlink("nowhere", in(f, "link")), 0);
    assert_int_equal(atomic_file_write(-1, f->dir, "link", "x", 1, &o, NULL, 0), TALLY_EEXIST);
    assert_string_equal(listing(f), "k link");
}

static void test_keep_fd(void **state)
{
    fx_t *f = *state;
    int fd = -1;
    atomic_file_opts_t o = {.no_replace = true, .keep_fd = &fd};
    assert_int_equal(atomic_file_write(-1, f->dir, "seg", "HDR", 3, &o, f->err, sizeof f->err), 0);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "+rec", 4), 4);
    close(fd);
    assert_string_equal(slurp(f, "seg"), "HDR+rec");
    assert_string_equal(listing(f), "seg");
}

static void test_missing_directory(void **state)
{
    fx_t *f = *state;
    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing", f->dir);
    assert_int_equal(
        atomic_file_write(-1, missing, "client.id", "x", 1, NULL, f->err, sizeof f->err),
        TALLY_EIO);
    expect_err(f, "missing/client.id: cannot open the directory: No such file or directory");
    assert_int_equal(access(missing, F_OK), -1); /* not created */
}

static void test_cannot_create(void **state)
{
    fx_t *f = *state;
    assert_int_equal(atomic_file_write(-1, f->dir, "state", "old", 3, NULL, NULL, 0), 0);
    /* A directory where the temporary file goes: open() fails, even for
     * root, which an unwritable directory would not stop. */
    assert_int_equal(mkdir(in(f, "state.tmp"), 0700), 0);
    assert_int_equal(atomic_file_write(-1, f->dir, "state", "new", 3, NULL, f->err, sizeof f->err),
                     TALLY_EIO);
    expect_err(f, "state: cannot create state.tmp: Is a directory");
    assert_string_equal(slurp(f, "state"), "old");
    rmdir(in(f, "state.tmp"));
    /* A directory this user may not write, when the user is not root. */
    if (geteuid() != 0) {
        assert_int_equal(chmod(f->dir, 0500), 0);
        assert_int_equal(
            atomic_file_write(-1, f->dir, "state", "new", 3, NULL, f->err, sizeof f->err),
            TALLY_EIO);
        expect_err(f, "state: cannot create state.tmp: Permission denied");
        assert_int_equal(chmod(f->dir, 0700), 0);
    }
    assert_string_equal(slurp(f, "state"), "old");
    assert_string_equal(listing(f), "state");
}

static void test_write_and_sync_fail(void **state)
{
    fx_t *f = *state;
    atomic_file_io_t io = {.write_fn = hook_write, .sync_fn = hook_sync, .ctx = f};
    atomic_file_opts_t o = {.io = &io};
    assert_int_equal(atomic_file_write(-1, f->dir, "ckp", "old", 3, &o, NULL, 0), 0);
    assert_int_equal(f->writes, 1);
    assert_int_equal(f->syncs, 1);

    f->fail_errno = ENOSPC;
    assert_int_equal(atomic_file_write(-1, f->dir, "ckp", "new", 3, &o, f->err, sizeof f->err),
                     TALLY_EIO);
    assert_int_equal(errno, ENOSPC);
    expect_err(f, "ckp: cannot write ckp.tmp: No space left on device");
    assert_string_equal(slurp(f, "ckp"), "old");
    assert_string_equal(listing(f), "ckp");

    f->fail_errno = EIO;
    int fd = 12345;
    o.keep_fd = &fd;
    o.no_replace = true;
    assert_int_equal(atomic_file_write(-1, f->dir, "seg", "hdr", 3, &o, f->err, sizeof f->err),
                     TALLY_EIO);
    expect_err(f, "seg: cannot fsync seg.tmp: Input/output error");
    assert_int_equal(fd, 12345); /* untouched on failure */
    assert_string_equal(listing(f), "ckp");

    /* Short writes are continued, not failures. */
    f->fail_errno = 0;
    f->chunk = 2;
    o.keep_fd = NULL;
    assert_int_equal(atomic_file_write(-1, f->dir, "seg", "header", 6, &o, NULL, 0), 0);
    assert_string_equal(slurp(f, "seg"), "header");
}

static void test_bad_names(void **state)
{
    fx_t *f = *state;
    assert_int_equal(atomic_file_write(-1, f->dir, "", "x", 1, NULL, f->err, sizeof f->err),
                     TALLY_EINVAL);
    assert_int_equal(atomic_file_write(-1, f->dir, "a/b", "x", 1, NULL, f->err, sizeof f->err),
                     TALLY_EINVAL);
    assert_non_null(strstr(f->err, "a/b: not a file name"));
    char long_name[300];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(atomic_file_write(-1, f->dir, long_name, "x", 1, NULL, NULL, 0), TALLY_EINVAL);
    assert_string_equal(listing(f), "");
    /* The current directory: no dirpath, and messages name the file alone. */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(f->dir), 0);
    assert_int_equal(atomic_file_write(-1, "", "here", "x", 1, NULL, NULL, 0), 0);
    assert_int_equal(mkdir("there.tmp", 0700), 0);
    assert_int_equal(atomic_file_write(-1, NULL, "there", "x", 1, NULL, f->err, sizeof f->err),
                     TALLY_EIO);
    assert_string_equal(f->err, "there: cannot create there.tmp: Is a directory");
    assert_int_equal(chdir(cwd), 0);
    assert_string_equal(slurp(f, "here"), "x");
}

static void touch(fx_t *f, const char *name)
{
    FILE *o = fopen(in(f, name), "w");
    assert_non_null(o);
    fputs("x", o);
    fclose(o);
}

/* atomic_dir_remove_flat: a directory of files goes whole; a link named
 * so is not followed; one holding a directory keeps it and fails, its
 * files gone; a name that is not there or not a directory says so. */
static void test_remove_flat(void **state)
{
    fx_t *f = *state;
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    assert_int_equal(mkdir(in(f, "copy"), 0700), 0);
    touch(f, "copy/history.db");
    touch(f, "copy/journal-0000000000000001.tj");
    assert_int_equal(atomic_dir_remove_flat(dfd, "copy"), 0);
    assert_int_not_equal(access(in(f, "copy"), F_OK), 0);
    assert_int_equal(atomic_dir_remove_flat(dfd, "copy"), -1);
    assert_int_equal(errno, ENOENT);

    assert_int_equal(mkdir(in(f, "target"), 0700), 0);
    touch(f, "target/keep");
    char target[300];
    snprintf(target, sizeof target, "%s/target", f->dir);
    assert_int_equal(symlink(target, in(f, "link")), 0);
    assert_int_equal(atomic_dir_remove_flat(dfd, "link"), -1);
    assert_int_equal(errno, ENOTDIR);
    assert_int_equal(access(in(f, "target/keep"), F_OK), 0);
    touch(f, "file");
    assert_int_equal(atomic_dir_remove_flat(dfd, "file"), -1);
    assert_int_equal(errno, ENOTDIR);

    assert_int_equal(mkdir(in(f, "mixed"), 0700), 0);
    assert_int_equal(mkdir(in(f, "mixed/sub"), 0700), 0);
    touch(f, "mixed/a");
    assert_int_equal(atomic_dir_remove_flat(AT_FDCWD, in(f, "mixed")), -1);
    assert_int_equal(access(in(f, "mixed/sub"), F_OK), 0);
    assert_int_not_equal(access(in(f, "mixed/a"), F_OK), 0);
    close(dfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_and_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cannot_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_and_sync_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_flat, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
