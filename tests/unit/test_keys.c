/* Unit tests of keys: certificate text and files, key directories, the
 * keyring and User-Ids; and `tally keygen` (client/cli/cli_keygen.c), whose
 * files must read back through keys.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "cli.h"
#include "keys.h"
#include "tally_error.h"

/* A fresh temporary directory per test, removed afterwards. */
typedef struct fx {
    char dir[64];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_keys.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

typedef struct pair {
    char pub[41], sec[41];
    uint8_t pubk[32], seck[32];
} pair_t;

static void new_pair(pair_t *p)
{
    assert_int_equal(zmq_curve_keypair(p->pub, p->sec), 0);
    assert_int_equal(keys_z85_decode(p->pub, 40, p->pubk), 0);
    assert_int_equal(keys_z85_decode(p->sec, 40, p->seck), 0);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* A public certificate of p as czmq writes it. */
static void write_public(const char *path, const pair_t *p)
{
    char text[512];
    snprintf(text, sizeof(text),
             "#   ****  Generated on 2024-01-01 00:00:00 by CZMQ  ****\n"
             "#   ZeroMQ CURVE Public Certificate\n"
             "\n"
             "metadata\n"
             "    name = \"test\"\n"
             "curve\n"
             "    public-key = \"%s\"\n",
             p->pub);
    write_text(path, text, 0644);
}

static void write_secret(const char *path, const pair_t *p, mode_t mode)
{
    char text[512];
    snprintf(text, sizeof(text),
             "metadata\ncurve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n", p->pub, p->sec);
    write_text(path, text, mode);
}

static char *path_in(const fx_t *f, const char *name)
{
    static char buf[4][256];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, 256, "%s/%s", f->dir, name);
    return b;
}

static int parse(const char *text, uint8_t pub[32], uint8_t sec[32], bool *has_secret, char *err,
                 size_t errlen)
{
    return keys_parse_cert(text, strlen(text), "c", pub, sec, has_secret, err, errlen);
}

/* ---- certificate text ---- */

static void test_parse_forms(void **state)
{
    (void)state;
    pair_t p;
    /* '#' is a Z85 character: a bare key that holds one must still read. */
    do
        new_pair(&p);
    while (strchr(p.pub, '#') == NULL);
    const char *forms[] = {
        "metadata\ncurve\n    public-key = \"%s\"\n",
        "# comment\r\n\r\ncurve\r\n    public-key = '%s'   # trailing\r\n",
        "curve\n    public-key=%s\n",
        "curve\n    public-key = %s # bare, then a comment\n",
        "metadata\n    x = 1\n        deeper = \"y\"\ncurve\n    public-key = \"%s\"",
        "other\n    public-key = \"garbage\"\ncurve\n    note = \"z\"\n    public-key = \"%s\"\n",
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char text[512], err[256] = "";
        /* "%s" in the form stands for the key. */
        const char *at = strstr(forms[i], "%s");
        snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - forms[i]), forms[i], p.pub, at + 2);
        uint8_t pub[32] = {0};
        bool has = true;
        int rc = parse(text, pub, NULL, &has, err, sizeof(err));
        if (rc != 0)
            fail_msg("form %zu: %s", i, err);
        assert_memory_equal(pub, p.pubk, 32);
        assert_false(has);
    }
}

static void test_parse_secret(void **state)
{
    (void)state;
    pair_t p, q;
    new_pair(&p);
    new_pair(&q);
    char text[512], err[256] = "";
    snprintf(text, sizeof(text), "curve\n    secret-key = \"%s\"\n    public-key = \"%s\"\n", p.sec,
             p.pub);
    uint8_t pub[32], sec[32];
    bool has = false;
    assert_int_equal(parse(text, pub, sec, &has, err, sizeof(err)), 0);
    assert_true(has);
    assert_memory_equal(pub, p.pubk, 32);
    assert_memory_equal(sec, p.seck, 32);
    /* A secret that belongs to another public key. */
    snprintf(text, sizeof(text), "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n", p.pub,
             q.sec);
    assert_int_equal(parse(text, pub, sec, &has, err, sizeof(err)), TALLY_EINVAL);
    assert_string_equal(err, "c:3: curve/secret-key does not belong to the public key on line 2");
}

static void expect_error(const char *text, const char *want)
{
    char err[512] = "";
    uint8_t pub[32];
    int rc = parse(text, pub, NULL, NULL, err, sizeof(err));
    assert_int_equal(rc, TALLY_EINVAL);
    if (strstr(err, want) == NULL)
        fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_parse_errors(void **state)
{
    (void)state;
    pair_t p;
    new_pair(&p);
    char text[512];
    expect_error("", "c: no curve/public-key property");
    expect_error("metadata\ncurve\n", "c: no curve/public-key property");
    expect_error("curve\n\tpublic-key = \"x\"\n", "c:2: a tab in the indentation");
    expect_error("curve\n   public-key = \"x\"\n", "c:2: indentation of 3 spaces");
    expect_error("curve\n        public-key = \"x\"\n", "c:2: 'public-key' is indented 2 levels");
    expect_error("curve\n    public-key = \"abc\n", "c:2: 'public-key': the quoted value has no "
                                                    "closing \"");
    expect_error("curve\n    public-key = \"abc\" x\n", "c:2: 'public-key': text after");
    expect_error("curve\n    public-key ! 1\n", "c:2: character 0x21 after the name");
    expect_error("curve\n    = 1\n", "c:2: character 0x3d where a name should start");
    expect_error("curve\n    public-key = \"short\"\n",
                 "c:2: curve/public-key: 'short' is not a key (expected 40 characters");
    /* A character outside Z85 (space is not in it), right length. */
    expect_error("curve\n    public-key = \"0123456789012345678901234567890123456 78\"\n",
                 "c:2: curve/public-key:");
    snprintf(text, sizeof(text), "curve\n    public-key = \"%s\"\n    public-key = \"%s\"\n", p.pub,
             p.pub);
    expect_error(text, "c:3: curve/public-key is given twice (first on line 2)");
    /* A bad secret key is described, never shown. */
    snprintf(text, sizeof(text), "curve\n    public-key = \"%s\"\n    secret-key = \"%.39s,\"\n",
             p.pub, p.sec);
    char err[512];
    uint8_t pub[32];
    assert_int_equal(parse(text, pub, NULL, NULL, err, sizeof(err)), TALLY_EINVAL);
    assert_string_equal(err, "c:3: curve/secret-key: a value of 40 characters is not a key "
                             "(expected 40 characters of Z85 text, as zmq_curve_keypair writes "
                             "them)");
    /* NUL bytes and binary junk. */
    const char junk[] = "curve\n    public-key = \"\0\"\n";
    assert_int_equal(
        keys_parse_cert(junk, sizeof(junk) - 1, NULL, pub, NULL, NULL, err, sizeof(err)),
        TALLY_EINVAL);
    assert_non_null(strstr(err, "<certificate>:2: curve/public-key: '?' is not a key"));
    assert_int_equal(
        keys_parse_cert("x", KEYS_FILE_MAX + 1, "big", pub, NULL, NULL, err, sizeof(err)),
        TALLY_ETOOLARGE);
}

static void test_z85(void **state)
{
    (void)state;
    uint8_t key[32];
    char text[41];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 37 + 1);
    keys_z85_encode(key, text);
    assert_int_equal(strlen(text), 40);
    uint8_t back[32];
    assert_int_equal(keys_z85_decode(text, 40, back), 0);
    assert_memory_equal(back, key, 32);
    assert_int_equal(keys_z85_decode(text, 39, back), TALLY_EINVAL);
    assert_int_equal(keys_z85_decode(NULL, 40, back), TALLY_EINVAL);
    /* "%%%%%" is 84*(85^4+...+1) > 2^32-1: not canonical Z85. */
    char over[41];
    memcpy(over, text, 41);
    memcpy(over, "%%%%%", 5);
    assert_int_equal(keys_z85_decode(over, 40, back), TALLY_EINVAL);
    over[0] = '"'; /* not in the alphabet */
    assert_int_equal(keys_z85_decode(over, 40, back), TALLY_EINVAL);
}

static void test_user_id_parse(void **state)
{
    (void)state;
    pair_t p;
    new_pair(&p);
    char uid[160];
    int role = 0;
    const char *name = NULL;
    size_t nlen = 0;
    uint8_t key[32];
    /* Names may hold ':'; the key is the fixed-width tail. */
    snprintf(uid, sizeof(uid), "town:gao:guan:%s", p.pub);
    assert_int_equal(keys_user_id_parse(uid, strlen(uid), &role, &name, &nlen, key), 0);
    assert_int_equal(role, KEYS_ROLE_TOWNSHIP);
    assert_int_equal(nlen, 8);
    assert_memory_equal(name, "gao:guan", 8);
    assert_memory_equal(key, p.pubk, 32);
    snprintf(uid, sizeof(uid), "sub:screen:%s", p.pub);
    assert_int_equal(keys_user_id_parse(uid, strlen(uid), &role, NULL, NULL, NULL), 0);
    assert_int_equal(role, KEYS_ROLE_SUBSCRIBER);
    snprintf(uid, sizeof(uid), "admin:ops:%s", p.pub);
    assert_int_equal(keys_user_id_parse(uid, strlen(uid), &role, &name, &nlen, NULL), 0);
    assert_int_equal(role, KEYS_ROLE_ADMIN);
    assert_memory_equal(name, "ops", nlen);
    const char *bad[] = {
        "", "town:", "town:x", "root:x:", "admin::", "town::", "town:a b:", "sub:x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(uid, sizeof(uid), "%s%s", bad[i], strchr(bad[i], ':') ? p.pub : "");
        assert_int_equal(keys_user_id_parse(uid, strlen(uid), NULL, NULL, NULL, NULL),
                         TALLY_EINVAL);
    }
    snprintf(uid, sizeof(uid), "town:x;%s", p.pub); /* no ':' before the key */
    assert_int_equal(keys_user_id_parse(uid, strlen(uid), NULL, NULL, NULL, NULL), TALLY_EINVAL);
    assert_int_equal(keys_user_id_parse(NULL, 0, NULL, NULL, NULL, NULL), TALLY_EINVAL);
}

/* ---- files ---- */

static void test_server_secret(void **state)
{
    fx_t *f = *state;
    pair_t p;
    new_pair(&p);
    char err[512];
    uint8_t pub[32], sec[32];
    const char *path = path_in(f, "server.key_secret");
    write_secret(path, &p, 0640);
    assert_int_equal(keys_load_server_secret(path, pub, sec, err, sizeof(err)), 0);
    assert_memory_equal(pub, p.pubk, 32);
    assert_memory_equal(sec, p.seck, 32);
    /* Readable by others: refused, naming the mode. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(keys_load_server_secret(path, pub, sec, err, sizeof(err)), TALLY_EINVAL);
    assert_non_null(strstr(err, "mode 0644 lets other users at the secret key"));
    /* The public file is not enough. */
    const char *pubpath = path_in(f, "server.key");
    write_public(pubpath, &p);
    assert_int_equal(keys_load_server_secret(pubpath, pub, sec, err, sizeof(err)), TALLY_EINVAL);
    assert_non_null(strstr(err, "holds no curve/secret-key"));
    /* Missing file, directory, oversized file. */
    assert_int_equal(keys_load_server_secret(path_in(f, "nope"), pub, sec, err, sizeof(err)),
                     TALLY_EIO);
    assert_non_null(strstr(err, "nope: cannot open: No such file or directory"));
    assert_int_equal(keys_load_cert(f->dir, pub, NULL, NULL, err, sizeof(err)), TALLY_EIO);
    assert_non_null(strstr(err, "not a regular file"));
    const char *big = path_in(f, "big");
    int fd = open(big, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, KEYS_FILE_MAX + 1), 0);
    close(fd);
    assert_int_equal(keys_load_cert(big, pub, NULL, NULL, err, sizeof(err)), TALLY_ETOOLARGE);
}

/* ---- the keyring ---- */

static void mkdir_in(const fx_t *f, const char *name)
{
    assert_int_equal(mkdir(path_in(f, name), 0755), 0);
}

static void test_keyring_load(void **state)
{
    fx_t *f = *state;
    pair_t gao, fu1, fu2, scr, ops, junk;
    new_pair(&ops);
    new_pair(&gao);
    new_pair(&fu1);
    new_pair(&fu2);
    new_pair(&scr);
    new_pair(&junk);
    mkdir_in(f, "towns");
    mkdir_in(f, "towns/fuxing");
    mkdir_in(f, "towns/fuxing/nested");
    mkdir_in(f, "subs");
    mkdir_in(f, "subs/ignored");
    mkdir_in(f, "admins");
    mkdir_in(f, "admins/ignored");
    write_public(path_in(f, "admins/ops.key"), &ops);
    write_public(path_in(f, "admins/ignored/x.key"), &junk);
    write_public(path_in(f, "towns/gaoguan.key"), &gao);
    write_public(path_in(f, "towns/fuxing/office-pc.key"), &fu1);
    write_public(path_in(f, "towns/fuxing/old.key"), &fu2);
    write_public(path_in(f, "subs/screen.key"), &scr);
    /* None of these is read. */
    write_secret(path_in(f, "towns/gaoguan.key_secret"), &gao, 0600);
    write_public(path_in(f, "towns/.hidden.key"), &junk);
    write_text(path_in(f, "towns/README"), "not a key\n", 0644);
    write_text(path_in(f, "towns/.key"), "not a key\n", 0644);
    write_public(path_in(f, "towns/fuxing/nested/deep.key"), &junk);
    write_public(path_in(f, "subs/ignored/x.key"), &junk);

    keyring_t kr;
    char err[512] = "";
    int rc = keyring_load(&kr, path_in(f, "towns"), path_in(f, "subs"), path_in(f, "admins"), err,
                          sizeof(err));
    if (rc != 0)
        fail_msg("%s", err);
    assert_int_equal(keyring_count(&kr), 5);
    assert_int_equal(kr.ntownships, 3);
    assert_int_equal(kr.nsubscribers, 1);
    assert_int_equal(kr.nadmins, 1);
    const keyring_identity_t *id = keyring_lookup(&kr, gao.pubk);
    assert_non_null(id);
    assert_int_equal(id->role, KEYS_ROLE_TOWNSHIP);
    assert_string_equal(id->name, "gaoguan");
    char want[160];
    snprintf(want, sizeof(want), "town:gaoguan:%s", gao.pub);
    assert_string_equal(id->user_id, want);
    assert_string_equal(id->path, path_in(f, "towns/gaoguan.key"));
    assert_string_equal(keyring_lookup(&kr, fu1.pubk)->name, "fuxing");
    assert_string_equal(keyring_lookup(&kr, fu2.pubk)->name, "fuxing");
    id = keyring_lookup(&kr, scr.pubk);
    assert_non_null(id);
    assert_int_equal(id->role, KEYS_ROLE_SUBSCRIBER);
    snprintf(want, sizeof(want), "sub:screen:%s", scr.pub);
    assert_string_equal(id->user_id, want);
    id = keyring_lookup(&kr, ops.pubk);
    assert_non_null(id);
    assert_int_equal(id->role, KEYS_ROLE_ADMIN);
    snprintf(want, sizeof(want), "admin:ops:%s", ops.pub);
    assert_string_equal(id->user_id, want);
    assert_non_null(keyring_lookup_user_id(&kr, want));
    assert_null(keyring_lookup(&kr, junk.pubk));
    keyring_free(&kr);
    assert_int_equal(keyring_count(&kr), 0);
    assert_null(keyring_lookup(&kr, gao.pubk));
    keyring_free(&kr);

    /* No directories: an empty ring. */
    assert_int_equal(keyring_load(&kr, NULL, "", NULL, err, sizeof(err)), 0);
    assert_int_equal(keyring_count(&kr), 0);
    keyring_free(&kr);
}

static void expect_load_error(const char *tdir, const char *sdir, const char *want)
{
    keyring_t kr;
    char err[1024] = "";
    assert_int_equal(keyring_load(&kr, tdir, sdir, NULL, err, sizeof(err)), TALLY_ECONFIG);
    if (strstr(err, want) == NULL)
        fail_msg("error '%s' lacks '%s'", err, want);
    assert_int_equal(keyring_count(&kr), 0);
    assert_null(kr.ids);
}

static void test_keyring_errors(void **state)
{
    fx_t *f = *state;
    pair_t a, b;
    new_pair(&a);
    new_pair(&b);
    char want[512];
    mkdir_in(f, "t");
    mkdir_in(f, "s");
    char t[256], s[256];
    snprintf(t, sizeof(t), "%s", path_in(f, "t"));
    snprintf(s, sizeof(s), "%s", path_in(f, "s"));

    snprintf(want, sizeof(want), "%s/nope: cannot read the key directory: No such file", f->dir);
    expect_load_error(path_in(f, "nope"), NULL, want);

    /* The same key for a township and a subscriber. */
    write_public(path_in(f, "t/gaoguan.key"), &a);
    write_public(path_in(f, "s/screen.key"), &a);
    snprintf(want, sizeof(want),
             "%s/s/screen.key: public key already used by %s/t/gaoguan.key (township 'gaoguan')",
             f->dir, f->dir);
    expect_load_error(t, s, want);
    unlink(path_in(f, "s/screen.key"));

    /* A secret in a public directory. */
    write_secret(path_in(f, "s/screen.key"), &b, 0600);
    snprintf(want, sizeof(want), "%s/s/screen.key: holds a curve/secret-key", f->dir);
    expect_load_error(t, s, want);
    unlink(path_in(f, "s/screen.key"));

    /* A broken certificate: file and line. */
    write_text(path_in(f, "s/screen.key"), "curve\n    public-key = \"x\"\n", 0644);
    snprintf(want, sizeof(want), "%s/s/screen.key:2: curve/public-key: 'x' is not a key", f->dir);
    expect_load_error(t, s, want);
    unlink(path_in(f, "s/screen.key"));

    /* A file name that is no township id. */
    write_public(path_in(f, "t/bad name.key"), &b);
    snprintf(want, sizeof(want), "%s/t/bad name.key: 'bad name' is not a valid township name",
             f->dir);
    expect_load_error(t, NULL, want);
    unlink(path_in(f, "t/bad name.key"));

    /* Both well again. */
    keyring_t kr;
    char err[512];
    assert_int_equal(keyring_load(&kr, t, s, NULL, err, sizeof(err)), 0);
    assert_int_equal(keyring_count(&kr), 1);
    keyring_free(&kr);
}

static void test_keyring_add_and_user_ids(void **state)
{
    (void)state;
    pair_t a, b, c;
    new_pair(&a);
    new_pair(&b);
    new_pair(&c);
    keyring_t kr;
    keyring_init(&kr);
    assert_int_equal(keyring_add(&kr, a.pubk, KEYS_ROLE_TOWNSHIP, "gaoguan", 7, NULL), 0);
    assert_int_equal(keyring_add(&kr, a.pubk, KEYS_ROLE_SUBSCRIBER, "x", 1, NULL), TALLY_EEXIST);
    assert_int_equal(keyring_add(&kr, b.pubk, 4, "x", 1, NULL), TALLY_EINVAL);
    assert_int_equal(keyring_add(&kr, b.pubk, KEYS_ROLE_SUBSCRIBER, "a/b", 3, NULL), TALLY_EINVAL);
    assert_int_equal(keyring_add(&kr, b.pubk, KEYS_ROLE_SUBSCRIBER, "screen", 6, "p"), 0);
    char uid[160];
    snprintf(uid, sizeof(uid), "town:gaoguan:%s", a.pub);
    const keyring_identity_t *id = keyring_lookup_user_id(&kr, uid);
    assert_non_null(id);
    assert_string_equal(id->name, "gaoguan");
    /* The same key under another name or role is not the same User-Id. */
    snprintf(uid, sizeof(uid), "town:fuxing:%s", a.pub);
    assert_null(keyring_lookup_user_id(&kr, uid));
    snprintf(uid, sizeof(uid), "sub:gaoguan:%s", a.pub);
    assert_null(keyring_lookup_user_id(&kr, uid));
    snprintf(uid, sizeof(uid), "town:gaoguan:%s", c.pub);
    assert_null(keyring_lookup_user_id(&kr, uid));
    assert_null(keyring_lookup_user_id(&kr, NULL));
    assert_null(keyring_lookup_user_id(&kr, ""));
    assert_null(keyring_lookup_user_id(&kr, "town:gaoguan"));

    /* Many keys: the table grows and every key is still found. */
    pair_t many[300];
    for (int i = 0; i < 300; i++) {
        new_pair(&many[i]);
        char name[16];
        int n = snprintf(name, sizeof(name), "t%d", i);
        assert_int_equal(keyring_add(&kr, many[i].pubk, KEYS_ROLE_TOWNSHIP, name, (size_t)n, NULL),
                         0);
    }
    for (int i = 0; i < 300; i++) {
        id = keyring_lookup(&kr, many[i].pubk);
        assert_non_null(id);
        char name[16];
        snprintf(name, sizeof(name), "t%d", i);
        assert_string_equal(id->name, name);
    }
    assert_int_equal(keyring_count(&kr), 302);
    keyring_free(&kr);
}

/* A reload loads a new ring and swaps it in: User-Ids of removed keys stop
 * resolving, and keyring_revoked() counts them. */
static void test_keyring_swap(void **state)
{
    fx_t *f = *state;
    pair_t a, b, s;
    new_pair(&a);
    new_pair(&b);
    new_pair(&s);
    mkdir_in(f, "t");
    mkdir_in(f, "s");
    write_public(path_in(f, "t/gaoguan.key"), &a);
    write_public(path_in(f, "t/fuxing.key"), &b);
    write_public(path_in(f, "s/screen.key"), &s);
    keyring_t live, next;
    char err[512];
    assert_int_equal(keyring_load(&live, path_in(f, "t"), path_in(f, "s"), NULL, err, sizeof(err)),
                     0);
    char uid_a[160], uid_b[160];
    snprintf(uid_a, sizeof(uid_a), "%s", keyring_lookup(&live, a.pubk)->user_id);
    snprintf(uid_b, sizeof(uid_b), "%s", keyring_lookup(&live, b.pubk)->user_id);

    /* gaoguan's key is revoked; fuxing's key moves to gaoguan. */
    unlink(path_in(f, "t/gaoguan.key"));
    unlink(path_in(f, "t/fuxing.key"));
    write_public(path_in(f, "t/gaoguan.key"), &b);
    assert_int_equal(keyring_load(&next, path_in(f, "t"), path_in(f, "s"), NULL, err, sizeof(err)),
                     0);
    const keyring_identity_t *first = NULL;
    assert_int_equal(keyring_revoked(&live, &next, 0, &first), 2);
    assert_non_null(first);
    assert_int_equal(keyring_revoked(&live, &next, KEYS_ROLE_SUBSCRIBER, &first), 0);
    assert_null(first);
    keyring_free(&live);
    live = next;
    assert_null(keyring_lookup_user_id(&live, uid_a));
    assert_null(keyring_lookup_user_id(&live, uid_b));
    assert_string_equal(keyring_lookup(&live, b.pubk)->name, "gaoguan");
    assert_null(keyring_lookup(&live, a.pubk));
    keyring_free(&live);
}

/* ---- tally keygen ---- */

/* Run `tally keygen ARGS` in-process with stdout captured into out. */
static int run_keygen(char *out, size_t cap, int argc, const char **args)
{
    char *argv[8];
    argv[0] = "keygen";
    for (int i = 0; i < argc; i++)
        argv[i + 1] = (char *)args[i];
    argv[argc + 1] = NULL;
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    dup2(fileno(tmp), STDOUT_FILENO);
    optind = 0;
    cli_global_t g;
    memset(&g, 0, sizeof(g));
    int rc = cli_keygen(argc + 1, argv, &g);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return rc;
}

static void test_keygen(void **state)
{
    fx_t *f = *state;
    char out[256];
    const char *args[] = {"--out", f->dir, "gaoguan.key"};
    assert_int_equal(run_keygen(out, sizeof(out), 3, args), CLI_OK);
    assert_int_equal(strlen(out), 41);
    assert_int_equal(out[40], '\n');
    out[40] = '\0';

    struct stat st;
    assert_int_equal(stat(path_in(f, "gaoguan.key_secret"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    uint8_t pub[32], sec[32], pub2[32], printed[32];
    char err[512] = "";
    bool has = true;
    assert_int_equal(keys_z85_decode(out, 40, printed), 0);
    assert_int_equal(keys_load_cert(path_in(f, "gaoguan.key"), pub, NULL, &has, err, sizeof(err)),
                     0);
    assert_false(has);
    assert_memory_equal(pub, printed, 32);
    assert_int_equal(
        keys_load_server_secret(path_in(f, "gaoguan.key_secret"), pub2, sec, err, sizeof(err)), 0);
    assert_memory_equal(pub2, pub, 32);
    /* The secret works as a CURVE key: it derives the public one. */
    char z85s[41], derived[41];
    keys_z85_encode(sec, z85s);
    assert_int_equal(zmq_curve_public(derived, z85s), 0);
    assert_string_equal(derived, out);

    /* Its public file is a valid township key. */
    mkdir_in(f, "towns");
    const char *again[] = {"-o", path_in(f, "towns"), "fuxing.key"};
    assert_int_equal(run_keygen(out, sizeof(out), 3, again), CLI_OK);
    unlink(path_in(f, "towns/fuxing.key_secret"));
    keyring_t kr;
    assert_int_equal(keyring_load(&kr, path_in(f, "towns"), NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(keyring_count(&kr), 1);
    assert_string_equal(kr.ids[0].name, "fuxing");
    keyring_free(&kr);

    /* Never overwrite, and leave both files as they were. */
    char before[1024];
    int fd = open(path_in(f, "gaoguan.key"), O_RDONLY);
    ssize_t n = read(fd, before, sizeof(before));
    close(fd);
    assert_int_equal(run_keygen(out, sizeof(out), 3, args), CLI_USAGE);
    assert_string_equal(out, "");
    char after[1024];
    fd = open(path_in(f, "gaoguan.key"), O_RDONLY);
    assert_int_equal(read(fd, after, sizeof(after)), n);
    close(fd);
    assert_memory_equal(before, after, (size_t)n);
    /* Only the secret exists: refused too, and no public file appears. */
    unlink(path_in(f, "gaoguan.key"));
    assert_int_equal(run_keygen(out, sizeof(out), 3, args), CLI_USAGE);
    assert_int_equal(access(path_in(f, "gaoguan.key"), F_OK), -1);

    /* Usage errors. */
    const char *slash[] = {"a/b"};
    assert_int_equal(run_keygen(out, sizeof(out), 1, slash), CLI_USAGE);
    assert_int_equal(run_keygen(out, sizeof(out), 0, NULL), CLI_USAGE);
    const char *two[] = {"a", "b"};
    assert_int_equal(run_keygen(out, sizeof(out), 2, two), CLI_USAGE);
    /* A missing --out is the argument's fault, named as such. */
    const char *nodir[] = {"--out", path_in(f, "missing"), "x"};
    assert_int_equal(run_keygen(out, sizeof(out), 3, nodir), CLI_USAGE);
    assert_int_equal(access(path_in(f, "missing"), F_OK), -1);
    const char *help[] = {"--help"};
    assert_int_equal(run_keygen(out, sizeof(out), 1, help), CLI_OK);
    assert_non_null(strstr(out, "Usage: tally keygen"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_parse_secret),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_z85),
        cmocka_unit_test(test_user_id_parse),
        cmocka_unit_test_setup_teardown(test_server_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyring_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyring_errors, setup, teardown),
        cmocka_unit_test(test_keyring_add_and_user_ids),
        cmocka_unit_test_setup_teardown(test_keyring_swap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keygen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
