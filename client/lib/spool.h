/* spool.h - libtally (client/lib/, private): the publisher's durable
 * queue in a directory.
 *
 * Layout of a spool directory SPOOL:
 *   SPOOL/lock          flock()ed by the one process using the spool
 *   SPOOL/client.state  the client's identity and what it learned (written
 *                       by client_state.c, in the spool's directory)
 *   SPOOL/<seq>.sub     one unacknowledged submission: the exact msgpack
 *                       SUBMIT body, seq as 20 zero-padded digits
 *   SPOOL/unknown/<id>-<seq>.sub  a submission of unknown fate, moved
 *                       aside by the client-id expiry rule: never resent
 *   SPOOL/rejected/<id>-<seq>.sub  a submission an earlier run left in
 *                       the spool, rejected for good: never resent
 *   SPOOL/<name>.tmp    a write in progress; garbage after a crash
 *   SPOOL/client.id, SPOOL/client.seq  the identity as libtally before
 *                       client.state kept it; read once and removed
 * Every file is replaced atomically (atomic_file_write, proto/atomic_file.h).
 */
#ifndef TALLY_CLIENT_SPOOL_H
#define TALLY_CLIENT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_SUB_MAX (1u << 20) /* larger .sub files are refused as corrupt */

typedef struct spool spool_t;

/* Create the directory if needed (mode 0700), lock it, waiting up to
 * lock_timeout_ms for another process to let go of it, and delete stray
 * *.tmp files.  Returns 0 and *out; TALLY_EEXIST when another process
 * still holds the lock; TALLY_EIO; TALLY_ENOMEM.  err receives a sentence
 * on failure. */
int spool_open(const char *dir, unsigned lock_timeout_ms, spool_t **out, char *err, size_t errlen);

/* Unlock and free; *s = NULL. */
void spool_close(spool_t **s);

/* The directory path as given to spool_open. */
const char *spool_path(const spool_t *s);

/* The spool directory's descriptor (owned by s). */
int spool_dirfd(const spool_t *s);

/* Load the legacy client.id and client.seq.  *have_id / *have_seq tell
 * whether each file existed; *mtime_ms gets the newer one's modification
 * time (0 when neither exists).  Returns 0; TALLY_EMALFORMED (a file is
 * not in its format; err names it); TALLY_EIO. */
int spool_load_legacy(spool_t *s, uint8_t id[16], bool *have_id, uint64_t *next_seq, bool *have_seq,
                      int64_t *mtime_ms, char *err, size_t errlen);

/* Delete the legacy files once client.state holds what they held.
 * 0 or TALLY_EIO. */
int spool_remove_legacy(spool_t *s, char *err, size_t errlen);

/* Move submission seq, sent under client id, out of the queue into
 * SPOOL/unknown/ (created if missing), contents intact; path receives its
 * new path.  A missing file is not an error (path is then "").  0 or
 * TALLY_EIO; path is set also when only the sync of the directories
 * failed, after the move. */
int spool_move_unknown(spool_t *s, uint64_t seq, const uint8_t id[16], char *path, size_t cap,
                       char *err, size_t errlen);

/* The same into SPOOL/rejected/: a submission an earlier run left in the
 * spool that the daemon has rejected for good.  0 or TALLY_EIO. */
int spool_move_rejected(spool_t *s, uint64_t seq, const uint8_t id[16], char *path, size_t cap,
                        char *err, size_t errlen);

/* Persist submission seq.  0 or TALLY_EIO. */
int spool_write(spool_t *s, uint64_t seq, const void *body, size_t len, char *err, size_t errlen);

/* Delete submission seq (a missing file is not an error).  0 or TALLY_EIO. */
int spool_remove(spool_t *s, uint64_t seq, char *err, size_t errlen);

/* Take back submission seq, never sent, whose writing could not be
 * completed (a missing file is not an error): unlinked, and the directory
 * synced as far as the disk allows.  0, or TALLY_EIO when the file stays
 * (err says why). */
int spool_discard(spool_t *s, uint64_t seq, char *err, size_t errlen);

/* The sequence numbers of every *.sub file, ascending, in a malloc'ed array
 * (*seqs, freed by the caller; NULL when *n is 0).  Files whose name is not
 * exactly 20 digits + ".sub" are ignored.  0, TALLY_ENOMEM or TALLY_EIO. */
int spool_list(spool_t *s, uint64_t **seqs, size_t *n, char *err, size_t errlen);

/* Read submission seq into a malloc'ed buffer.  0; TALLY_ENOTFOUND;
 * TALLY_ETOOLARGE; TALLY_ENOMEM; TALLY_EIO. */
int spool_read(spool_t *s, uint64_t seq, uint8_t **body, size_t *len, char *err, size_t errlen);

/* The file name of submission seq ("00000000000000000042.sub") into buf
 * (at least 32 bytes). */
void spool_sub_name(uint64_t seq, char *buf, size_t cap);

#endif
