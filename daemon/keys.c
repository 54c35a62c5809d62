/* keys.c - certificate files (a small reader of the ZPL subset that zcert
 * files use) and the keyring built from directories of them. */
#include "keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "tally_error.h"
#include "vec.h"

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Copy s[0..len) for a message: printable ASCII stays, anything else
 * becomes '?', and long text is cut, so a binary file cannot garble a log
 * line.  Not text_printable: what is shown here is a key value (Z85, so
 * ASCII when it is a key at all) or a file name, and the messages say '?'
 * for a byte that is not printable ASCII, where text_printable writes
 * \xNN (test_keys.c checks "'?' is not a key" for a NUL byte). */
static const char *printable(char *buf, size_t cap, const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 4 < cap; i++)
        buf[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (o + 4 >= cap && len > o) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* ---- Z85 and User-Ids ---- */

int keys_z85_decode(const char *z85, size_t len, uint8_t key[KEYS_KEY_BYTES])
{
    if (z85 == NULL || len != KEYS_Z85_LEN)
        return TALLY_EINVAL;
    char text[KEYS_Z85_LEN + 1];
    memcpy(text, z85, KEYS_Z85_LEN);
    text[KEYS_Z85_LEN] = '\0';
    if (memchr(text, '\0', KEYS_Z85_LEN) != NULL || zmq_z85_decode(key, text) == NULL)
        return TALLY_EINVAL;
    /* Encoding again catches groups that overflow 32 bits in a libzmq that
     * does not check for them: only the canonical text is accepted. */
    char again[KEYS_Z85_LEN + 1];
    keys_z85_encode(key, again);
    return memcmp(again, text, KEYS_Z85_LEN) == 0 ? 0 : TALLY_EINVAL;
}

void keys_z85_encode(const uint8_t key[KEYS_KEY_BYTES], char out[KEYS_Z85_LEN + 1])
{
    zmq_z85_encode(out, key, KEYS_KEY_BYTES);
}

const char *keys_role_name(int role)
{
    switch (role) {
    case KEYS_ROLE_TOWNSHIP:
        return "township";
    case KEYS_ROLE_SUBSCRIBER:
        return "subscriber";
    case KEYS_ROLE_ADMIN:
        return "admin";
    default:
        return "?";
    }
}

static const char *role_prefix(int role)
{
    return role == KEYS_ROLE_TOWNSHIP ? "town:" : role == KEYS_ROLE_ADMIN ? "admin:" : "sub:";
}

int keys_user_id_parse(const char *uid, size_t len, int *role, const char **name, size_t *name_len,
                       uint8_t key[KEYS_KEY_BYTES])
{
    if (uid == NULL)
        return TALLY_EINVAL;
    int r;
    size_t plen;
    if (len > 5 && memcmp(uid, "town:", 5) == 0) {
        r = KEYS_ROLE_TOWNSHIP;
        plen = 5;
    } else if (len > 4 && memcmp(uid, "sub:", 4) == 0) {
        r = KEYS_ROLE_SUBSCRIBER;
        plen = 4;
    } else if (len > 6 && memcmp(uid, "admin:", 6) == 0) {
        r = KEYS_ROLE_ADMIN;
        plen = 6;
    } else {
        return TALLY_EINVAL;
    }
    /* Names may hold ':' and so may Z85, but the key has a fixed width:
     * it is the last 40 characters, after a ':'. */
    if (len < plen + 1 + 1 + KEYS_Z85_LEN)
        return TALLY_EINVAL;
    size_t nlen = len - plen - 1 - KEYS_Z85_LEN;
    if (uid[plen + nlen] != ':' || proto_name_check(uid + plen, nlen) != 0)
        return TALLY_EINVAL;
    uint8_t k[KEYS_KEY_BYTES];
    if (keys_z85_decode(uid + len - KEYS_Z85_LEN, KEYS_Z85_LEN, k) != 0)
        return TALLY_EINVAL;
    if (role)
        *role = r;
    if (name)
        *name = uid + plen;
    if (name_len)
        *name_len = nlen;
    if (key)
        memcpy(key, k, sizeof(k));
    return 0;
}

/* ---- certificate text ---- */

/* One parsed line: its indentation level, name and value. */
typedef struct zpl_line {
    int level;
    const char *name;
    size_t name_len;
    const char *value; /* NULL when the line has no "= value" */
    size_t value_len;
} zpl_line_t;

static bool zpl_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("$-_@.&+/", c) != NULL);
}

/* Parse line s[0..len) (no line end).  Returns 0 (out->name NULL for a
 * blank or comment line), or TALLY_EINVAL with why set. */
static int zpl_parse_line(const char *s, size_t len, zpl_line_t *out, char *why, size_t wlen)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t')) {
        if (s[i] == '\t') {
            snprintf(why, wlen, "a tab in the indentation (ZPL indents with 4 spaces)");
            return TALLY_EINVAL;
        }
        i++;
    }
    out->name = NULL;
    if (i == len || s[i] == '#')
        return 0;
    if (i % 4 != 0) {
        snprintf(why, wlen, "indentation of %zu spaces is not a multiple of 4", i);
        return TALLY_EINVAL;
    }
    out->level = (int)(i / 4);
    out->name = s + i;
    while (i < len && zpl_name_char(s[i]))
        i++;
    out->name_len = (size_t)(s + i - out->name);
    if (out->name_len == 0) {
        snprintf(why, wlen, "character 0x%02x where a name should start", (unsigned char)s[i]);
        return TALLY_EINVAL;
    }
    while (i < len && s[i] == ' ')
        i++;
    out->value = NULL;
    out->value_len = 0;
    if (i == len || s[i] == '#')
        return 0;
    if (s[i] != '=') {
        snprintf(why, wlen, "character 0x%02x after the name '%.*s'; expected '=' or the line end",
                 (unsigned char)s[i], (int)out->name_len, out->name);
        return TALLY_EINVAL;
    }
    i++;
    while (i < len && s[i] == ' ')
        i++;
    if (i < len && (s[i] == '"' || s[i] == '\'')) {
        char q = s[i++];
        const char *end = memchr(s + i, q, len - i);
        if (end == NULL) {
            snprintf(why, wlen, "'%.*s': the quoted value has no closing %c", (int)out->name_len,
                     out->name, q);
            return TALLY_EINVAL;
        }
        out->value = s + i;
        out->value_len = (size_t)(end - out->value);
        i = (size_t)(end - s) + 1;
        while (i < len && s[i] == ' ')
            i++;
        if (i < len && s[i] != '#') {
            snprintf(why, wlen, "'%.*s': text after the closing quote", (int)out->name_len,
                     out->name);
            return TALLY_EINVAL;
        }
        return 0;
    }
    /* A bare value runs to the line end or to a comment, without the
     * spaces before them.  Only a '#' after a space starts a comment here,
     * since '#' is one of the Z85 characters of a bare key. */
    out->value = s + i;
    size_t end = i;
    while (end < len && !(s[end] == '#' && s[end - 1] == ' '))
        end++;
    while (end > i && s[end - 1] == ' ')
        end--;
    out->value_len = end - i;
    return 0;
}

/* Decode the value of curve/<which> at line lineno into key. */
static int cert_key(const zpl_line_t *l, const char *name, int lineno, const char *which,
                    bool secret, uint8_t key[KEYS_KEY_BYTES], char *err, size_t errlen)
{
    if (l->value != NULL && keys_z85_decode(l->value, l->value_len, key) == 0)
        return 0;
    char shown[64], text[52];
    if (secret || l->value == NULL)
        snprintf(shown, sizeof(shown), "a value of %zu characters", l->value_len);
    else
        snprintf(shown, sizeof(shown), "'%s'",
                 printable(text, sizeof(text), l->value, l->value_len));
    return fail(err, errlen, TALLY_EINVAL,
                "%s:%d: curve/%s: %s is not a key (expected %d characters of Z85 text, as "
                "zmq_curve_keypair writes them)",
                name, lineno, which, shown, KEYS_Z85_LEN);
}

int keys_parse_cert(const char *text, size_t len, const char *name, uint8_t pub[KEYS_KEY_BYTES],
                    uint8_t *sec, bool *has_secret, char *err, size_t errlen)
{
    if (name == NULL)
        name = "<certificate>";
    if (len > KEYS_FILE_MAX)
        return fail(err, errlen, TALLY_ETOOLARGE, "%s: %zu bytes; a certificate has at most %d",
                    name, len, KEYS_FILE_MAX);
    uint8_t my_sec[KEYS_KEY_BYTES];
    int pub_line = 0, sec_line = 0, lineno = 0;
    int depth = -1;        /* level of the last property line */
    bool in_curve = false; /* the last level-0 name was "curve" */
    int rc = 0;
    char why[160];
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t llen = end - pos;
        lineno++;
        if (llen > 0 && text[end - 1] == '\r')
            llen--;
        zpl_line_t l;
        int r = zpl_parse_line(text + pos, llen, &l, why, sizeof(why));
        pos = end + 1;
        if (r != 0) {
            rc = fail(err, errlen, TALLY_EINVAL, "%s:%d: %s", name, lineno, why);
            goto out;
        }
        if (l.name == NULL)
            continue;
        if (l.level > depth + 1) {
            rc = fail(err, errlen, TALLY_EINVAL,
                      "%s:%d: '%.*s' is indented %d levels below its parent; one level (4 "
                      "spaces) is the most",
                      name, lineno, (int)l.name_len, l.name, l.level - depth);
            goto out;
        }
        depth = l.level;
        if (l.level == 0)
            in_curve = l.name_len == 5 && memcmp(l.name, "curve", 5) == 0;
        if (!in_curve || l.level != 1)
            continue;
        bool is_pub = l.name_len == 10 && memcmp(l.name, "public-key", 10) == 0;
        bool is_sec = l.name_len == 10 && memcmp(l.name, "secret-key", 10) == 0;
        if (!is_pub && !is_sec)
            continue;
        int *seen = is_pub ? &pub_line : &sec_line;
        if (*seen) {
            rc =
                fail(err, errlen, TALLY_EINVAL, "%s:%d: curve/%s is given twice (first on line %d)",
                     name, lineno, is_pub ? "public-key" : "secret-key", *seen);
            goto out;
        }
        *seen = lineno;
        rc = cert_key(&l, name, lineno, is_pub ? "public-key" : "secret-key", is_sec,
                      is_pub ? pub : my_sec, err, errlen);
        if (rc != 0)
            goto out;
    }
    if (!pub_line) {
        rc = fail(err, errlen, TALLY_EINVAL,
                  "%s: no curve/public-key property; is this a ZeroMQ certificate (a 'curve' "
                  "section with 'public-key = \"...\"' indented 4 spaces)?",
                  name);
        goto out;
    }
    if (sec_line) {
        char pz[KEYS_Z85_LEN + 1], sz[KEYS_Z85_LEN + 1], derived[KEYS_Z85_LEN + 1];
        keys_z85_encode(pub, pz);
        keys_z85_encode(my_sec, sz);
        if (zmq_curve_public(derived, sz) != 0) {
            rc = fail(err, errlen, TALLY_ESYS,
                      "%s: cannot check the secret key: libzmq has no CURVE support (%s)", name,
                      zmq_strerror(zmq_errno()));
        } else if (memcmp(derived, pz, KEYS_Z85_LEN) != 0) {
            rc = fail(err, errlen, TALLY_EINVAL,
                      "%s:%d: curve/secret-key does not belong to the public key on line %d", name,
                      sec_line, pub_line);
        }
        explicit_bzero(sz, sizeof(sz));
        if (rc != 0)
            goto out;
        if (sec != NULL)
            memcpy(sec, my_sec, KEYS_KEY_BYTES);
    }
    if (has_secret != NULL)
        *has_secret = sec_line != 0;
out:
    explicit_bzero(my_sec, sizeof(my_sec));
    return rc;
}

/* ---- certificate files ---- */

/* Read the regular file at path into a fresh buffer (freed by the caller,
 * after wiping it) and its status into *st. */
static int read_file(const char *path, char **buf, size_t *len, struct stat *st, char *err,
                     size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return fail(err, errlen, TALLY_EIO, "%s: cannot open: %s", path, strerror(errno));
    int rc = 0;
    char *b = NULL;
    if (fstat(fd, st) != 0) {
        rc = fail(err, errlen, TALLY_EIO, "%s: cannot stat: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st->st_mode)) {
        rc = fail(err, errlen, TALLY_EIO, "%s: not a regular file", path);
        goto out;
    }
    if (st->st_size > KEYS_FILE_MAX) {
        rc = fail(err, errlen, TALLY_ETOOLARGE, "%s: %lld bytes; a certificate has at most %d",
                  path, (long long)st->st_size, KEYS_FILE_MAX);
        goto out;
    }
    /* One byte more than the limit tells a file that grew since fstat. */
    b = malloc(KEYS_FILE_MAX + 1);
    if (b == NULL) {
        rc = fail(err, errlen, TALLY_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    size_t n = 0;
    while (n < KEYS_FILE_MAX + 1) {
        ssize_t r = read(fd, b + n, KEYS_FILE_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = fail(err, errlen, TALLY_EIO, "%s: cannot read: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > KEYS_FILE_MAX) {
        rc = fail(err, errlen, TALLY_ETOOLARGE, "%s: more than %d bytes; not a certificate", path,
                  KEYS_FILE_MAX);
        goto out;
    }
    *buf = b;
    *len = n;
    b = NULL;
out:
    if (b != NULL) {
        explicit_bzero(b, KEYS_FILE_MAX + 1);
        free(b);
    }
    close(fd);
    return rc;
}

static int load_cert(const char *path, uint8_t pub[KEYS_KEY_BYTES], uint8_t *sec, bool *has_secret,
                     struct stat *st, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len, st, err, errlen);
    if (rc != 0)
        return rc;
    rc = keys_parse_cert(buf, len, path, pub, sec, has_secret, err, errlen);
    explicit_bzero(buf, len);
    free(buf);
    return rc;
}

int keys_load_cert(const char *path, uint8_t pub[KEYS_KEY_BYTES], uint8_t *sec, bool *has_secret,
                   char *err, size_t errlen)
{
    struct stat st;
    return load_cert(path, pub, sec, has_secret, &st, err, errlen);
}

int keys_load_server_secret(const char *path, uint8_t pub[KEYS_KEY_BYTES],
                            uint8_t sec[KEYS_KEY_BYTES], char *err, size_t errlen)
{
    struct stat st;
    bool has_secret = false;
    int rc = load_cert(path, pub, sec, &has_secret, &st, err, errlen);
    if (rc != 0)
        return rc;
    if (!has_secret) {
        explicit_bzero(pub, KEYS_KEY_BYTES);
        return fail(err, errlen, TALLY_EINVAL,
                    "%s: holds no curve/secret-key; server_secret_key must name the secret "
                    "certificate (NAME" KEYS_SECRET_SUFFIX ", written by `tally keygen NAME`)",
                    path);
    }
    /* Anyone who reads the secret can impersonate the daemon to every
     * township; refuse rather than warn, the way ssh treats its keys. */
    if (st.st_mode & 0007) {
        explicit_bzero(sec, KEYS_KEY_BYTES);
        return fail(err, errlen, TALLY_EINVAL,
                    "%s: mode %04o lets other users at the secret key; chmod o-rwx %s (0600 or "
                    "0640 with the daemon's group)",
                    path, (unsigned)(st.st_mode & 07777), path);
    }
    return 0;
}

/* ---- the keyring ---- */

void keyring_init(keyring_t *kr)
{
    memset(kr, 0, sizeof(*kr));
}

void keyring_free(keyring_t *kr)
{
    if (kr == NULL)
        return;
    for (size_t i = 0; i < kr->n; i++)
        free(kr->ids[i].path);
    free(kr->ids);
    free(kr->slots);
    keyring_init(kr);
}

/* A table of its own, not an intern_t: it is read for every request of a
 * secured daemon (request.c, and zap.c per connection), an empty keyring
 * must cost nothing (keyring_init neither allocates nor fails), and its
 * random keys need only 8 of their 32 bytes hashed and no second copy in
 * an arena.
 *
 * Keys are random, and clients can only look keys up, never insert them,
 * so a plain mix of the first 8 bytes spreads them well enough. */
static uint32_t key_hash(const uint8_t key[KEYS_KEY_BYTES])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    return (uint32_t)h;
}

static const keyring_identity_t *find(const keyring_t *kr, const uint8_t key[KEYS_KEY_BYTES])
{
    if (kr->slots == NULL)
        return NULL;
    for (uint32_t i = key_hash(key) & kr->mask;; i = (i + 1) & kr->mask) {
        uint32_t s = kr->slots[i];
        if (s == 0)
            return NULL;
        if (memcmp(kr->ids[s - 1].key, key, KEYS_KEY_BYTES) == 0)
            return &kr->ids[s - 1];
    }
}

static void place(keyring_t *kr, size_t index)
{
    uint32_t i = key_hash(kr->ids[index].key) & kr->mask;
    while (kr->slots[i] != 0)
        i = (i + 1) & kr->mask;
    kr->slots[i] = (uint32_t)index + 1;
}

/* Keep the table at most half full, so probes stay short. */
static int reserve(keyring_t *kr)
{
    if (VEC_RESERVE(kr->ids, kr->cap, kr->n + 1) != 0)
        return TALLY_ENOMEM;
    size_t nslots = kr->slots ? (size_t)kr->mask + 1 : 0;
    if ((kr->n + 1) * 2 <= nslots)
        return 0;
    size_t want = nslots ? nslots * 2 : 32;
    uint32_t *slots = calloc(want, sizeof(*slots));
    if (slots == NULL)
        return TALLY_ENOMEM;
    free(kr->slots);
    kr->slots = slots;
    kr->mask = (uint32_t)(want - 1);
    for (size_t i = 0; i < kr->n; i++)
        place(kr, i);
    return 0;
}

int keyring_add(keyring_t *kr, const uint8_t key[KEYS_KEY_BYTES], int role, const char *name,
                size_t name_len, const char *path)
{
    if ((role != KEYS_ROLE_TOWNSHIP && role != KEYS_ROLE_SUBSCRIBER && role != KEYS_ROLE_ADMIN) ||
        name == NULL || proto_name_check(name, name_len) != 0)
        return TALLY_EINVAL;
    if (find(kr, key) != NULL)
        return TALLY_EEXIST;
    if (kr->n >= KEYRING_MAX)
        return TALLY_ETOOMANY;
    char *p = strdup(path ? path : "");
    if (p == NULL || reserve(kr) != 0) {
        free(p);
        return TALLY_ENOMEM;
    }
    keyring_identity_t *id = &kr->ids[kr->n];
    memset(id, 0, sizeof(*id));
    memcpy(id->key, key, KEYS_KEY_BYTES);
    id->role = role;
    memcpy(id->name, name, name_len);
    id->name_len = name_len;
    char z85[KEYS_Z85_LEN + 1];
    keys_z85_encode(key, z85);
    id->user_id_len = (size_t)snprintf(id->user_id, sizeof(id->user_id), "%s%.*s:%s",
                                       role_prefix(role), (int)name_len, name, z85);
    id->path = p;
    place(kr, kr->n);
    kr->n++;
    if (role == KEYS_ROLE_TOWNSHIP)
        kr->ntownships++;
    else if (role == KEYS_ROLE_ADMIN)
        kr->nadmins++;
    else
        kr->nsubscribers++;
    return 0;
}

const keyring_identity_t *keyring_lookup(const keyring_t *kr, const uint8_t key[KEYS_KEY_BYTES])
{
    return find(kr, key);
}

const keyring_identity_t *keyring_lookup_user_id(const keyring_t *kr, const char *user_id)
{
    if (user_id == NULL)
        return NULL;
    size_t len = strnlen(user_id, KEYRING_USER_ID_MAX + 1);
    if (len > KEYRING_USER_ID_MAX || len < KEYS_Z85_LEN)
        return NULL;
    uint8_t key[KEYS_KEY_BYTES];
    if (keys_z85_decode(user_id + len - KEYS_Z85_LEN, KEYS_Z85_LEN, key) != 0)
        return NULL;
    /* The whole User-Id must match, so a key that moved to another
     * township or role by a reload is refused as well. */
    const keyring_identity_t *id = find(kr, key);
    if (id == NULL || id->user_id_len != len || memcmp(id->user_id, user_id, len) != 0)
        return NULL;
    return id;
}

size_t keyring_revoked(const keyring_t *old, const keyring_t *new_kr, int role,
                       const keyring_identity_t **first)
{
    size_t n = 0;
    if (first != NULL)
        *first = NULL;
    for (size_t i = 0; i < old->n; i++) {
        const keyring_identity_t *o = &old->ids[i];
        if (role != 0 && o->role != role)
            continue;
        if (keyring_lookup_user_id(new_kr, o->user_id) != NULL)
            continue;
        if (n++ == 0 && first != NULL)
            *first = o;
    }
    return n;
}

/* ---- loading directories ---- */

static bool has_key_suffix(const char *name, size_t len)
{
    size_t s = sizeof(KEYS_SUFFIX) - 1;
    return len > s && memcmp(name + len - s, KEYS_SUFFIX, s) == 0;
}

static int skip_hidden(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Read one public certificate and add it for (role, name). */
static int add_file(keyring_t *kr, const char *path, int role, const char *name, size_t name_len,
                    char *err, size_t errlen)
{
    uint8_t pub[KEYS_KEY_BYTES];
    bool secret = false;
    int rc = keys_load_cert(path, pub, NULL, &secret, err, errlen);
    if (rc == TALLY_ENOMEM)
        return rc;
    if (rc != 0)
        return TALLY_ECONFIG;
    if (secret)
        return fail(err, errlen, TALLY_ECONFIG,
                    "%s: holds a curve/secret-key; a key directory takes public certificates "
                    "only (the file NAME of `tally keygen NAME`, never NAME" KEYS_SECRET_SUFFIX
                    "): move the secret back to its owner and put the public one here",
                    path);
    const keyring_identity_t *other = find(kr, pub);
    if (other != NULL)
        return fail(err, errlen, TALLY_ECONFIG,
                    "%s: public key already used by %s (%s '%s'); a key stands for one identity",
                    path, other->path, keys_role_name(other->role), other->name);
    rc = keyring_add(kr, pub, role, name, name_len, path);
    if (rc == TALLY_ETOOMANY)
        return fail(err, errlen, TALLY_ECONFIG, "%s: more than %d keys in all", path, KEYRING_MAX);
    if (rc == TALLY_ENOMEM)
        return rc;
    return rc == 0 ? 0 : TALLY_ECONFIG;
}

static int check_name(const char *path, int role, const char *name, size_t len, char *err,
                      size_t errlen)
{
    int rc = proto_name_check(name, len);
    if (rc == 0)
        return 0;
    char shown[80];
    return fail(err, errlen, TALLY_ECONFIG, "%s: '%s' is not a valid %s name (%s)", path,
                printable(shown, sizeof(shown), name, len), keys_role_name(role),
                tally_strerror(rc));
}

/* Load the *.key files of dir for role.  With name NULL each file names its
 * identity (the file name minus ".key"), and, for townships,
 * sub-directories are read with their own name; otherwise every file is a
 * key of `name` and sub-directories are ignored. */
static int load_dir(keyring_t *kr, const char *dir, int role, const char *name, char *err,
                    size_t errlen)
{
    struct dirent **list = NULL;
    int n = scandir(dir, &list, skip_hidden, alphasort);
    if (n < 0)
        return fail(err, errlen, errno == ENOMEM ? TALLY_ENOMEM : TALLY_ECONFIG,
                    "%s: cannot read the key directory: %s", dir, strerror(errno));
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *e = list[i]->d_name;
        size_t elen = strlen(e);
        char path[4096];
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e) >= sizeof(path)) {
            rc = fail(err, errlen, TALLY_ECONFIG, "%s/%s: path longer than %zu bytes", dir, e,
                      sizeof(path) - 1);
            break;
        }
        struct stat st;
        if (stat(path, &st) != 0) {
            rc = fail(err, errlen, TALLY_ECONFIG, "%s: cannot stat: %s", path, strerror(errno));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            if (name != NULL || role != KEYS_ROLE_TOWNSHIP)
                continue;
            rc = check_name(path, role, e, elen, err, errlen);
            if (rc == 0)
                rc = load_dir(kr, path, role, e, err, errlen);
            continue;
        }
        if (!S_ISREG(st.st_mode) || !has_key_suffix(e, elen))
            continue;
        if (name != NULL) {
            rc = add_file(kr, path, role, name, strlen(name), err, errlen);
            continue;
        }
        size_t nlen = elen - (sizeof(KEYS_SUFFIX) - 1);
        rc = check_name(path, role, e, nlen, err, errlen);
        if (rc == 0)
            rc = add_file(kr, path, role, e, nlen, err, errlen);
    }
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
    return rc;
}

int keyring_load(keyring_t *kr, const char *township_dir, const char *subscriber_dir,
                 const char *admin_dir, char *err, size_t errlen)
{
    keyring_init(kr);
    int rc = 0;
    if (township_dir != NULL && township_dir[0] != '\0')
        rc = load_dir(kr, township_dir, KEYS_ROLE_TOWNSHIP, NULL, err, errlen);
    if (rc == 0 && subscriber_dir != NULL && subscriber_dir[0] != '\0')
        rc = load_dir(kr, subscriber_dir, KEYS_ROLE_SUBSCRIBER, NULL, err, errlen);
    if (rc == 0 && admin_dir != NULL && admin_dir[0] != '\0')
        rc = load_dir(kr, admin_dir, KEYS_ROLE_ADMIN, NULL, err, errlen);
    if (rc != 0) {
        if (rc == TALLY_ENOMEM)
            fail(err, errlen, TALLY_ENOMEM, "out of memory loading the keys");
        keyring_free(kr);
    }
    return rc;
}

int keys_check_config(const tallyd_config_t *cfg, char *err, size_t len)
{
    bool secret = cfg->server_secret_key[0] != '\0';
    const char *dir = cfg->township_keys[0] != '\0'     ? "township_keys"
                      : cfg->subscriber_keys[0] != '\0' ? "subscriber_keys"
                      : cfg->admin_keys[0] != '\0'      ? "admin_keys"
                                                        : NULL;
    if (secret && dir == NULL) {
        snprintf(err, len,
                 "[security] server_secret_key is set but none of township_keys, "
                 "subscriber_keys and admin_keys: no client could connect");
        return TALLY_ECONFIG;
    }
    if (!secret && dir != NULL) {
        snprintf(err, len,
                 "[security] %s is set but server_secret_key is not: client keys are enforced "
                 "only when tallyd has its own key pair (tally keygen)",
                 dir);
        return TALLY_ECONFIG;
    }
    return 0;
}

int keys_load_config(const tallyd_config_t *cfg, keys_server_t *srv, keyring_t *kr, char *err,
                     size_t len)
{
    memset(srv, 0, sizeof(*srv));
    if (keys_check_config(cfg, err, len) != 0)
        return TALLY_ECONFIG;
    if (cfg->server_secret_key[0] == '\0')
        return 0;
    char why[1024];
    if (keys_load_server_secret(cfg->server_secret_key, srv->pub, srv->sec, why, sizeof(why)) !=
        0) {
        /* The recommended path is a credential systemd makes only for the
         * running service: outside it (tallyd --check-config from a shell
         * before the first start) it is missing, and the reason is not
         * the file's. */
        bool credential = strncmp(cfg->server_secret_key, "/run/credentials/", 17) == 0 &&
                          access(cfg->server_secret_key, F_OK) != 0 && errno == ENOENT &&
                          getenv("CREDENTIALS_DIRECTORY") == NULL;
        snprintf(err, len, "[security] server_secret_key: %s%s", why,
                 credential ? " (a credential systemd passes only to the running service, "
                              "LoadCredential= in its unit: 'systemctl reload tallyd' checks the "
                              "file there; from a shell, check a copy of it whose "
                              "server_secret_key names the key file itself)"
                            : "");
        return TALLY_ECONFIG;
    }
    if (keyring_load(kr, cfg->township_keys, cfg->subscriber_keys, cfg->admin_keys, why,
                     sizeof(why)) != 0) {
        snprintf(err, len, "[security] cannot load the client keys: %s", why);
        return TALLY_ECONFIG;
    }
    srv->secured = true;
    return 0;
}
