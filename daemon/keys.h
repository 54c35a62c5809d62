/* keys.h - CURVE key files and the keyring of the clients tallyd admits.
 *
 * Two related things live here: reading ZeroMQ certificate files (keys_*)
 * and the keyring built from directories of them (keyring_*), which maps a
 * client's 32-byte CURVE public key to who it is.
 *
 * Certificate files are the czmq zcert format, ZPL text (ZeroMQ RFC 4):
 *
 *     #   ZeroMQ CURVE Public Certificate           (comments: any '#' line)
 *     metadata                                      (ignored)
 *         name = "gaoguan office"
 *     curve
 *         public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
 *
 * A secret certificate has a second line "secret-key = ..." in the curve
 * section.  Keys are 40 characters of Z85 (zmq_z85_encode of 32 bytes), in
 * double or single quotes or bare (a bare value ends at the line end or at
 * " #", a comment).  Indentation is 4 spaces per level (a
 * tab is an error); '\r' before a line end is allowed.  czmq, pyzmq and
 * `tally keygen` write NAME (public) and NAME_secret (secret, mode 0600).
 *
 * Directory layout (the [security] keys of tallyd.conf):
 *   township_keys = DIR
 *     DIR/<township>.key         a public certificate of that township;
 *     DIR/<township>/<any>.key   the same, for townships with several keys
 *                                (one per office PC, or old and new during
 *                                a key rotation).
 *     <township> is the township id exactly as it travels in SUBMIT (it
 *     must pass proto_name_check()); the file name minus ".key" for the
 *     first form, the sub-directory's name for the second.
 *   subscriber_keys = DIR
 *     DIR/<name>.key             a public certificate of a subscriber
 *                                (the command centre's screen ...); <name>
 *                                is used in logs and in its User-Id.
 *   admin_keys = DIR
 *     DIR/<name>.key             a public certificate of an operator, who
 *                                may ask for backups (BACKUP_REQ) and
 *                                neither submits nor reads.
 * Only names ending in ".key" are read, so NAME.key_secret, README files
 * and editor back-ups are ignored, and so are names starting with '.' and,
 * in the subscriber and admin directories, sub-directories.  A ".key" file
 * that holds a secret-key is refused: a secret does not belong on the
 * server.  One public key may appear only once across the directories.
 *
 * User-Id: the ZAP handler (zap.h) names an admitted client
 *     "town:<township>:<Z85 public key>", "sub:<name>:<Z85 public key>"
 *     or "admin:<name>:<Z85 public key>"
 * and ZeroMQ attaches it to every message from that connection.  Because
 * the key is inside, the daemon can check each message against the keyring
 * in force (keyring_lookup_user_id()), so a key removed by a reload stops
 * being served at once, not just at the next handshake.
 *
 * A keyring owns all its memory.  Reloading = load a fresh keyring, and on
 * success free the old one and put the new one in its place (a keyring
 * holds no pointer to itself, so a struct copy moves it):
 *     keyring_t next;
 *     if (keyring_load(&next, tdir, sdir, adir, err, sizeof err) == 0) {
 *         keyring_free(&d->keys);
 *         d->keys = next;          (a zap_t holding &d->keys sees it)
 *     }
 * Identity pointers from the old keyring die with it.
 */
#ifndef TALLYD_KEYS_H
#define TALLYD_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "proto.h"

#define KEYS_KEY_BYTES     32          /* a CURVE key */
#define KEYS_Z85_LEN       40          /* its Z85 text, without the NUL */
#define KEYS_FILE_MAX      (64 * 1024) /* bytes in a certificate file */
#define KEYRING_MAX        65536       /* keys in one keyring */
#define KEYS_SUFFIX        ".key"      /* the names keyring_load() reads */
#define KEYS_SECRET_SUFFIX "_secret"   /* NAME_secret holds NAME's secret key */

/* "admin:" + name + ":" + key; the longest User-Id the keyring produces. */
#define KEYRING_USER_ID_MAX (6 + PROTO_NAME_MAX + 1 + KEYS_Z85_LEN)

enum keys_role {
    KEYS_ROLE_TOWNSHIP = 1,   /* may submit for its township; User-Id "town:..." */
    KEYS_ROLE_SUBSCRIBER = 2, /* reads tallies; User-Id "sub:..." */
    KEYS_ROLE_ADMIN = 3,      /* an operator: asks for backups; User-Id "admin:..." */
};

/* What one key in the keyring stands for.  Owned by the keyring. */
typedef struct keyring_identity {
    uint8_t key[KEYS_KEY_BYTES];
    int role;                      /* enum keys_role */
    char name[PROTO_NAME_MAX + 1]; /* township id or subscriber name */
    size_t name_len;
    char user_id[KEYRING_USER_ID_MAX + 1]; /* as the ZAP handler hands it out */
    size_t user_id_len;
    char *path; /* the file it came from ("" when added by hand) */
} keyring_identity_t;

typedef struct keyring {
    keyring_identity_t *ids; /* in load order */
    size_t n, cap;
    uint32_t *slots; /* open addressing, linear probing: index + 1, 0 empty */
    uint32_t mask;   /* slot count - 1 (power of two); 0 with no slots */
    size_t ntownships, nsubscribers, nadmins;
} keyring_t;

/* ---- certificate files ---- */

/* Parse the certificate text[0..len) (need not be NUL-terminated; may hold
 * anything).  name stands for the file in messages (NULL: "<certificate>").
 * Stores the public key in pub; when the certificate has a secret-key, it
 * is stored in sec (which may be NULL when the caller wants none) and
 * *has_secret (may be NULL) is set.  A secret key is checked to belong to
 * the public key (zmq_curve_public).
 * Returns 0, TALLY_EINVAL or TALLY_ETOOLARGE with one message in err
 * ("NAME:LINE: curve/public-key: ..."; a secret key's value is never
 * quoted), or TALLY_ESYS when libzmq lacks CURVE support. */
int keys_parse_cert(const char *text, size_t len, const char *name, uint8_t pub[KEYS_KEY_BYTES],
                    uint8_t *sec, bool *has_secret, char *err, size_t errlen);

/* Read and parse the certificate file at path as keys_parse_cert() does.
 * Returns its codes, plus TALLY_EIO ("PATH: cannot open: <strerror>") and
 * TALLY_ETOOLARGE (more than KEYS_FILE_MAX bytes). */
int keys_load_cert(const char *path, uint8_t pub[KEYS_KEY_BYTES], uint8_t *sec, bool *has_secret,
                   char *err, size_t errlen);

/* Load the daemon's own secret certificate (server_secret_key =, the
 * NAME_secret file of `tally keygen NAME`) into pub and sec.  Refused
 * unless it holds a matching secret-key, and refused (TALLY_EINVAL) when
 * other users may read or write it (mode & 0007): group access is allowed,
 * for a root:tally 0640 file.  Returns 0 or a code of keys_load_cert(). */
int keys_load_server_secret(const char *path, uint8_t pub[KEYS_KEY_BYTES],
                            uint8_t sec[KEYS_KEY_BYTES], char *err, size_t errlen);

/* Decode exactly KEYS_Z85_LEN characters of canonical Z85 (z85[0..len),
 * no NUL needed) into key.  Returns 0 or TALLY_EINVAL (wrong length, a
 * character outside Z85, or a group above 2^32-1). */
int keys_z85_decode(const char *z85, size_t len, uint8_t key[KEYS_KEY_BYTES]);

/* Encode key as Z85 into out (KEYS_Z85_LEN characters and a NUL). */
void keys_z85_encode(const uint8_t key[KEYS_KEY_BYTES], char out[KEYS_Z85_LEN + 1]);

/* Split a User-Id "town:<name>:<key>" or "sub:<name>:<key>" (uid[0..len))
 * into its role, name (a pointer into uid and its length) and decoded key.
 * Checks the form and the name (proto_name_check), not any keyring.  Any
 * out pointer may be NULL.  Returns 0 or TALLY_EINVAL. */
int keys_user_id_parse(const char *uid, size_t len, int *role, const char **name, size_t *name_len,
                       uint8_t key[KEYS_KEY_BYTES]);

/* ---- the keyring ---- */

/* Make kr an empty keyring (every lookup fails).  Owns nothing yet. */
void keyring_init(keyring_t *kr);

/* Build *kr (overwritten without being freed) from the three directories
 * (township, subscriber and admin keys) laid out as described at the top
 * of this file; any may be NULL or "" for none.  Entries are read in name order, so messages are
 * stable. Returns 0, or on any problem TALLY_ECONFIG with one message in err naming the file (and
 * line) and what is wrong (a directory that cannot be read is an error; one that holds no key is
 * not), e.g.
 *   "/etc/tally/keys/townships/gaoguan.key:7: curve/public-key: ..."
 *   "/etc/tally/keys/subscribers/screen.key: public key already used by
 *    /etc/tally/keys/townships/gaoguan.key (township 'gaoguan')"
 *   "/etc/tally/keys/townships/bad name.key: 'bad name' is not a valid
 *    township name (...)"
 * or TALLY_ENOMEM ("out of memory").  On failure *kr is empty and owns
 * nothing (keyring_free() is optional). */
int keyring_load(keyring_t *kr, const char *township_dir, const char *subscriber_dir,
                 const char *admin_dir, char *err, size_t errlen);

/* Add one key by hand (tests, tools).  name[0..name_len) must pass
 * proto_name_check(); path (may be NULL) is copied for messages.
 * Returns 0, TALLY_EINVAL (bad role or name), TALLY_EEXIST (the key is in
 * the ring already), TALLY_ETOOMANY (KEYRING_MAX keys) or TALLY_ENOMEM. */
int keyring_add(keyring_t *kr, const uint8_t key[KEYS_KEY_BYTES], int role, const char *name,
                size_t name_len, const char *path);

/* Release everything kr owns and leave it empty.  NULL is ignored. */
void keyring_free(keyring_t *kr);

/* The identity of key, or NULL when the key is not in the ring.  O(1),
 * allocates nothing.  The pointer is valid until the next keyring_add() or
 * keyring_free() on kr. */
const keyring_identity_t *keyring_lookup(const keyring_t *kr, const uint8_t key[KEYS_KEY_BYTES]);

/* The identity whose User-Id is exactly user_id (NUL-terminated, as
 * zmq_msg_gets(msg, "User-Id") returns it), or NULL when user_id is NULL,
 * malformed, or names a key that is not in the ring (any more) or that now
 * stands for someone else.  O(1), allocates nothing: call it per message. */
const keyring_identity_t *keyring_lookup_user_id(const keyring_t *kr, const char *user_id);

/* Number of keys in the ring, all roles. */
static inline size_t keyring_count(const keyring_t *kr)
{
    return kr->n;
}

/* How many keys of old (role 0: any role) are missing from new_kr or stand
 * for a different identity there: the connections a reload has to cut.
 * The first such identity is stored in *first when first is not NULL (NULL
 * when there is none). */
size_t keyring_revoked(const keyring_t *old, const keyring_t *new_kr, int role,
                       const keyring_identity_t **first);

/* "township" or "subscriber" ("?" for others). */
const char *keys_role_name(int role);

/* ---- the [security] section of tallyd.conf ---- */

/* The daemon's own key pair, from [security] server_secret_key. */
typedef struct keys_server {
    bool secured; /* server_secret_key is set: CURVE on both sockets */
    uint8_t pub[KEYS_KEY_BYTES];
    uint8_t sec[KEYS_KEY_BYTES];
} keys_server_t;

/* Check the [security] section of cfg: server_secret_key and the key
 * directories go together (a secret with no directory admits nobody;
 * directories without a secret would not be enforced).  Returns 0, or
 * TALLY_ECONFIG with the reason in err[0..len). */
int keys_check_config(const tallyd_config_t *cfg, char *err, size_t len);

/* Read the keys of cfg as a start does: check the section
 * (keys_check_config), then read server_secret_key into *srv and every
 * key of the key directories into kr (initialised by the caller; on
 * failure it may hold some keys, keyring_free() it either way).  Without
 * server_secret_key nothing is read and srv->secured is false.  Returns 0
 * or TALLY_ECONFIG with the reason, naming the file, in err[0..len). */
int keys_load_config(const tallyd_config_t *cfg, keys_server_t *srv, keyring_t *kr, char *err,
                     size_t len);

/* (keys_check.c) The township keys of kr for a township that cfg's closed
 * township catalog does not declare (a typo in the file's name, a
 * township taken out of the file): such a key is admitted, but every
 * submission it makes is refused UNKNOWN_TOWNSHIP.  For each, warn(ctx,
 * text) gets a sentence naming the file and the township, with the
 * nearest declared township when one is close ("; did you mean
 * 'gaoguan'?").  With an open township catalog there is nothing to say.
 * Returns how many keys were named. */
size_t keys_check_townships(const keyring_t *kr, const tallyd_config_t *cfg,
                            void (*warn)(void *ctx, const char *text), void *ctx);

#endif
