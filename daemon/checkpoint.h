/* checkpoint.h - durable snapshots of tallyd's whole state, so that the
 * journal can be compacted: names, tallies and de-duplication table as of
 * one journal position.  Replaying the journal from that position on top
 * of the checkpoint gives the state the daemon had.
 *
 * Files.  A checkpoint lives in the state directory as
 * state-<journal gen as 16 lower-case hex digits>.ckp.  It is written as
 * state-<gen>.ckp.tmp, fsync()ed, renamed into place and the directory
 * fsync()ed, so a checkpoint file is either complete or absent; a .tmp
 * left by a crash is ignored and deleted.  Little-endian layout:
 *
 *   header, 64 bytes:
 *     0  "TALLYCKP"       magic
 *     8  u32 version      CHECKPOINT_FORMAT_VERSION (3; versions 1 and 2 are
 *                         read too: 2 is 3 without metrics' scales)
 *     12 u32 header size  64
 *     16 u64 file size    every byte, the trailing CRC included
 *     24 i64 created      ms since the epoch (checkpoint_meta_t.created_ms)
 *     32 u64 journal gen  checkpoint_meta_t.journal_gen
 *     40 u64 next pos     checkpoint_meta_t.next_pos
 *     48 u64 publish seq  checkpoint_meta_t.publish_seq
 *     56 u32 sections     4
 *     60 u32 flags        0
 *   sections, each u32 tag, u64 payload length, payload, in this order:
 *     "TOWN"  u32 count, then per township id 1..count: u8 length, name
 *     "METR"  u32 count, then per metric id 1..count: u8 length, name
 *     "ENGN"  the engine (engine_save(), engine_persist.c)
 *     "DDUP"  u32 count, then per client: 16-byte id, u64 highest seq,
 *             i64 last submission (ms; not in version 1, where the
 *             checkpoint's creation time stands for it), 16 x u64 window
 *             bitmap (dedup_entry_t)
 *   u32 CRC-32C of every byte before it.
 * Every version, present and future, starts with the magic and the version
 * and ends with that CRC, so an intact file of a newer version is told
 * apart from a damaged one and refused rather than misread.
 *
 * Ids.  Township and metric ids are dense in insertion order (intern.h),
 * and the engine and every later journal record refer to them; loading
 * re-adds the names in id order into EMPTY tables and checks each id.
 *
 * Threads.  checkpoint_build() reads the live state: call it on the loop
 * thread.  Its result is a private buffer: checkpoint_store() may then run
 * on any thread (a uv work request) while the loop goes on changing the
 * live state.  checkpoint_load_latest() runs at start-up, before the loop.
 */
#ifndef TALLYD_CHECKPOINT_H
#define TALLYD_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "dedup.h"
#include "engine.h"
#include "intern.h"

#define CHECKPOINT_FORMAT_VERSION 3
#define CHECKPOINT_FORMAT_OLDEST  1 /* the oldest version still read */
#define CHECKPOINT_HEADER_SIZE    64
#define CHECKPOINT_NAME_MAX       32 /* "state-<16 hex>.ckp.tmp" + NUL */

typedef struct checkpoint_meta {
    int64_t created_ms; /* wall-clock time of the build, from the caller's clock */
    /* The journal segment that records after the checkpoint start in (the
     * one journal_rotate() just began); it also names the file.  Replay
     * with journal_replay_opts_t.from_gen = journal_gen. */
    uint64_t journal_gen;
    /* The first journal position NOT reflected in the checkpoint: every
     * record below it is in.  Replay with from_pos = next_pos, and open
     * the journal with at least next_pos. */
    uint64_t next_pos;
    uint64_t publish_seq; /* the publisher's sequence number at the checkpoint */
    uint32_t version;     /* loading: the file's format version (writing ignores it) */
} checkpoint_meta_t;

/* The file name (not the path) of the checkpoint of gen,
 * "state-<16 hex>.ckp", into out. */
void checkpoint_file_name(char out[CHECKPOINT_NAME_MAX], uint64_t gen);

/* Serialize meta, the township and metric names, the engine and the
 * de-duplication table into one malloc()ed buffer, a complete checkpoint
 * file image (CRC included): *buf_out receives it (the caller free()s it)
 * and *len_out its length.  Only reads its arguments; call it on the loop
 * thread.  Takes about as long as engine_save() (see engine.h).
 * err (may be NULL) receives a sentence on failure, "" on success.
 * Returns 0 or TALLY_ENOMEM (nothing to free then). */
int checkpoint_build(const checkpoint_meta_t *meta, const intern_t *towns, const intern_t *metrics,
                     const engine_t *e, const dedup_t *dd, void **buf_out, size_t *len_out,
                     char *err, size_t errlen);

/* A de-duplication mark to leave out of an image: (key, seq) of a
 * submission recorded but not yet applied. */
typedef struct checkpoint_unmark {
    uint8_t key[PROTO_CLIENT_ID_LEN];
    uint64_t seq;
} checkpoint_unmark_t;

/* checkpoint_build(), leaving out of the de-duplication table the n marks
 * of unmark[] (sorted by key with memcmp; the array is sorted in place
 * otherwise it is only read): the image then says exactly which
 * submissions the tallies it holds contain. */
int checkpoint_build_except(const checkpoint_meta_t *meta, const intern_t *towns,
                            const intern_t *metrics, const engine_t *e, const dedup_t *dd,
                            checkpoint_unmark_t *unmark, size_t n, void **buf_out, size_t *len_out,
                            char *err, size_t errlen);

/* Write the image buf (len bytes, from checkpoint_build(); only read) to
 * dir as state-<gen>.ckp, gen being the image's journal_gen, atomically and
 * durably: a temporary file is written, fsync()ed and renamed over any
 * file of that name, and dir is fsync()ed.  Leftover temporary files are
 * deleted first.  Then checkpoints older than the previous one are
 * deleted: the new one and the newest older one are kept, so a damaged
 * newest file can fall back on its predecessor (files of a higher gen than
 * the new one are left alone; gens must grow, as the journal's do).  Run
 * one store per directory at a time.  *keep_from_gen (may be
 * NULL) receives the lowest gen still kept: the journal must keep every
 * segment from there on, so call journal_remove_before(dir, *keep_from_gen)
 * and not with a higher gen.  Touches nothing but dir and buf: safe on a
 * work thread.
 *
 * Returns 0 (err is "" or a sentence about an old file that could not be
 * deleted, worth a warning); TALLY_EINVAL (buf is not a checkpoint image
 * or the path is too long); TALLY_EIO (the file could not be written,
 * synced or renamed: err names the file and strerror; the previous
 * checkpoints are untouched and no temporary file is left). */
int checkpoint_store(const char *dir, const void *buf, size_t len, uint64_t *keep_from_gen,
                     char *err, size_t errlen);

/* checkpoint_build() then checkpoint_store(), for callers that can block:
 * same arguments and returns. */
int checkpoint_write(const char *dir, const checkpoint_meta_t *meta, const intern_t *towns,
                     const intern_t *metrics, const engine_t *e, const dedup_t *dd,
                     uint64_t *keep_from_gen, char *err, size_t errlen);

/* Check the checkpoint file name in dir as a start would before loading
 * it (its magic, CRC-32C, format version and header), reading it a chunk
 * at a time, and give its header in *meta (may be NULL).  Touches nothing
 * but the file: safe on any thread.  Returns 0; TALLY_EIO (damaged or
 * unreadable: why says how); TALLY_ECONFIG (intact, a format version this
 * build does not read); TALLY_ENOMEM; TALLY_EINVAL (the path is too
 * long). */
int checkpoint_check_file(const char *dir, const char *name, checkpoint_meta_t *meta, char *why,
                          size_t whylen);

/* Version 2 also promises that the journal segment the checkpoint names
 * existed before the checkpoint was stored (compact.h): recovery treats a
 * missing one as lost records.  A version 1 checkpoint (an older tallyd's
 * last one at a clean stop) may name a segment never created.
 *
 * Load the newest usable checkpoint of dir into *meta, towns, metrics, e
 * and dd.  Preconditions: towns and metrics are intern_init()ed and EMPTY;
 * e is engine_init()ed with the configured windows, buckets and zone and
 * holds no series (declarations that agree with the checkpoint's are
 * accepted, but the simple contract is: declare nothing before loading);
 * dd is dedup_init()ed and empty.  Afterwards towns and metrics hold the
 * saved names with their saved ids, e the saved declarations, series and
 * now (see engine_load()), dd the saved clients.  Leftover temporary files
 * are deleted.
 *
 * Files are tried newest first.  One that is truncated (a torn write),
 * fails its CRC or is otherwise damaged is renamed to
 * state-<gen>.ckp.damaged (kept for inspection, never read again) and the
 * next older one tried; one that cannot be read (permissions, I/O error)
 * is skipped likewise but left in place.  err then says which file was
 * skipped, why, and which one was loaded (return 0 with err not "" means:
 * log err as a warning).  Falling back loses nothing as long as the
 * journal was compacted no further than checkpoint_store() allowed: the
 * replay from the older checkpoint's position brings the rest.
 *
 * Returns:
 *   0                loaded (err "" or the warning above);
 *   TALLY_ENOTFOUND  dir holds no checkpoint (err says so): start empty;
 *   TALLY_ECONFIG    the newest intact file has a newer format version
 *                    (err names the file and both versions), or the
 *                    configuration cannot hold it: windows, buckets or
 *                    time zone changed, or it has more names, series or
 *                    clients than the limits allow (err names the value
 *                    and the limit).  Older files are not tried: they
 *                    would be refused alike, or silently miss newer state;
 *   TALLY_EIO        every checkpoint file is damaged, or dir cannot be
 *                    read (err names each file and its damage);
 *   TALLY_EINVAL     a precondition does not hold;
 *   TALLY_ENOMEM.
 * On any failure but TALLY_ENOTFOUND and TALLY_EINVAL, towns, metrics, e
 * and dd may hold part of the data: free them (and initialise them anew
 * before starting without the checkpoint). */
int checkpoint_load_latest(const char *dir, checkpoint_meta_t *meta, intern_t *towns,
                           intern_t *metrics, engine_t *e, dedup_t *dd, char *err, size_t errlen);

/* A checkpoint file read whole, and where its engine image lies in it. */
typedef struct checkpoint_image {
    uint8_t *buf; /* the file's bytes (malloc()ed) */
    size_t len;
    const uint8_t *engine; /* the ENGN section's payload, in buf */
    size_t engine_len;
    char name[CHECKPOINT_NAME_MAX]; /* its file name */
} checkpoint_image_t;

/* The checkpoint a start would load from dir, read but not loaded, for
 * checks of a configuration against it (statecheck.h): the newest file
 * that is intact, tried as checkpoint_load_latest() tries them, but
 * changing nothing in dir (no temporary file deleted, no damaged file
 * renamed), so that it may run beside the tallyd that uses dir.  Its
 * township and metric names go into towns and metrics (intern_init()ed,
 * empty, large enough) with their saved ids, the file into *img
 * (checkpoint_image_free() it), whose engine image is for engine_load()
 * or engine_load_head().  Returns 0 (err "" or a sentence naming the
 * files skipped); TALLY_ENOTFOUND (no checkpoint, or no such directory:
 * a start begins empty); TALLY_ECONFIG (a newer format, or more names
 * than the tables hold); TALLY_EIO (none intact, or dir unreadable);
 * TALLY_ENOMEM.  On failure *img holds nothing. */
int checkpoint_read_latest(const char *dir, checkpoint_image_t *img, intern_t *towns,
                           intern_t *metrics, char *err, size_t errlen);

/* Free what *img holds and empty it.  Safe on an empty one. */
void checkpoint_image_free(checkpoint_image_t *img);

#endif
