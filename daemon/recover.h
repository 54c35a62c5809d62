/* recover.h - start-up recovery and the journal's life cycle.
 *
 * At start: replay the journal into the engine and the de-duplication
 * table, so every submission acknowledged before a crash counts again,
 * exactly once; then open the journal for appending.  A torn tail is cut
 * off and logged with its offset; damage in the middle is logged and
 * skipped without dropping what follows.
 */
#ifndef TALLYD_RECOVER_H
#define TALLYD_RECOVER_H

struct tallyd;

/* Load the newest valid checkpoint of the state directory into the empty
 * tables and engine (before the catalog is declared).  Returns 0 (also
 * when there is none), 2 when the state cannot be used with this
 * configuration or build (windows changed, newer format: logged), or 1 on
 * other failures (unreadable, damaged with no fallback: logged; tallyd
 * must not start empty then, or it would lose data). */
int recover_load(struct tallyd *d);

/* Replay the state directory's journal, then open it for appending with
 * the configured sync policy.  Logs what it found.  Returns 0, or a
 * negative code after logging why tallyd cannot start (unreadable
 * segment, unknown format version, ...). */
int recover_start(struct tallyd *d);

/* Start taking checkpoints periodically (snapshot_interval, or every
 * snapshot_every_records journal records) on a timer; the image is built
 * on the loop and written by a work thread, then the journal segments it
 * covers are removed.  Handle counted in d->open_handles. */
void recover_start_checkpoints(struct tallyd *d);

/* Flush the journal (delivering the ACKs that wait for it) and close it;
 * the handle closes on the loop (counted in d->open_handles). */
void recover_stop(struct tallyd *d);

#endif
