/* journal_fmt.h - internals of the journal shared by its writer (journal.c)
 * and its reader (journal_read.c): the on-disk format, segment file names
 * and directory helpers.  Not for use outside the journal module; the
 * format itself is described in journal.h.
 */
#ifndef TALLYD_JOURNAL_FMT_H
#define TALLYD_JOURNAL_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "atomic_file.h"
#include "journal.h"

#define JOURNAL_MAGIC "TALLYJNL"
/* A new segment is written by atomic_file_write(), under its name with
 * this suffix; journal_remove_before() deletes the remains of a crash. */
#define JOURNAL_TMP_SUFFIX ATOMIC_FILE_TMP_SUFFIX
#define JOURNAL_HEADER_MAX 4096 /* the largest header any version may have */

/* A decoded segment header. */
typedef struct journal_fmt_header {
    uint32_t version;
    uint64_t gen;
    uint64_t start_pos;
    int64_t created_ms;
} journal_fmt_header_t;

static inline void journal_fmt_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void journal_fmt_put64(uint8_t *p, uint64_t v)
{
    journal_fmt_put32(p, (uint32_t)v);
    journal_fmt_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t journal_fmt_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t journal_fmt_get64(const uint8_t *p)
{
    return (uint64_t)journal_fmt_get32(p) | (uint64_t)journal_fmt_get32(p + 4) << 32;
}

/* Encode a version-1 header for segment gen into out. */
void journal_fmt_header_encode(uint8_t out[JOURNAL_HEADER_SIZE], uint64_t gen, uint64_t start_pos,
                               int64_t created_ms);

/* Decode and check the n bytes at buf (the start of a file, up to
 * JOURNAL_HEADER_MAX bytes of it) as the header of the file called name,
 * which should be segment gen.  Returns 0 and fills *h; TALLY_EIO (short,
 * bad magic, bad checksum: damage, other gen) or TALLY_ECONFIG (an intact
 * header of another format version), with a sentence naming the file in
 * err. */
int journal_fmt_header_decode(const uint8_t *buf, size_t n, const char *name, uint64_t gen,
                              journal_fmt_header_t *h, char *err, size_t errlen);

/* Fill the JOURNAL_RECORD_OVERHEAD bytes at out with the header of a
 * record (magic, len, CRC over len + pos + payload, pos). */
void journal_fmt_record_header(uint8_t *out, const void *payload, uint32_t len, uint64_t pos);

/* The CRC a record with header hdr and payload should carry. */
uint32_t journal_fmt_record_crc(const uint8_t *hdr, const void *payload, uint32_t len);

/* Parse a segment file name; true and *gen when name is exactly
 * "journal-<16 lower-case hex>.tj". */
bool journal_fmt_parse_name(const char *name, uint64_t *gen);

/* The path dir/journal-<gen>.tj<suffix> into out (size n).  Returns 0 or
 * TALLY_EINVAL when it does not fit. */
int journal_fmt_path(char *out, size_t n, const char *dir, uint64_t gen, const char *suffix);

/* The gens of all segments in dir, ascending, in a malloc'd array the
 * caller frees (*gens is NULL when *count is 0).  Returns 0, TALLY_EIO
 * (dir unreadable; err says why) or TALLY_ENOMEM. */
int journal_fmt_list(const char *dir, uint64_t **gens, size_t *count, char *err, size_t errlen);

/* fsync the directory dir so renames and unlinks in it are durable.
 * Returns 0 or -1 with errno set. */
int journal_fmt_sync_dir(const char *dir);

/* Check segment gen of dir for appending (journal_open): header valid,
 * every record readable, and the file ending on a record boundary.
 * Implemented in journal_read.c with the replay scanner.  On success
 * returns 0 with *end (the file size), *start_pos (from the header) and
 * *last_pos (0 if the segment holds no record).  Returns TALLY_EIO (a torn
 * or damaged tail, an unreadable file, a bad header), TALLY_ECONFIG or
 * TALLY_ENOMEM with a sentence in err. */
int journal_read_check_segment(const char *dir, uint64_t gen, uint64_t *end, uint64_t *start_pos,
                               uint64_t *last_pos, char *err, size_t errlen);

#endif
