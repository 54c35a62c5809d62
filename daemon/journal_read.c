/* journal_read.c - replay and repair of the journal at start-up.
 *
 * The scanner reads each segment through one large buffer (pread of a few
 * MiB at a time) and parses records in place, so replay costs a CRC and a
 * callback per record and no system call.  When a record does not check
 * out, it looks for the next offset where a whole record does (magic, sane
 * length, CRC, increasing position) and reports the bytes in between; only
 * a damaged tail of the last segment, where a crash during a write leaves
 * its marks, is cut off.
 */
#include "journal_fmt.h"
#include "vec.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK (4u << 20) /* bytes per pread */

/* A forward-only window onto a file. */
typedef struct reader {
    int fd;
    uint8_t *buf;
    size_t cap;
    uint64_t base; /* file offset of buf[0] */
    size_t have;   /* valid bytes at buf */
    uint64_t size; /* file size */
} reader_t;

/* Make the bytes [off, off + n) of the file available at *p, where n may be
 * cut short by the end of the file; *got receives how many are.  off must
 * not lie before an offset asked for earlier.  Returns 0, TALLY_ENOMEM or
 * TALLY_EIO (errno set). */
static int rd_get(reader_t *r, uint64_t off, size_t n, const uint8_t **p, size_t *got)
{
    uint64_t want_end = off + n < r->size ? off + n : r->size;
    size_t want = off < want_end ? (size_t)(want_end - off) : 0;
    if (off >= r->base && want_end <= r->base + r->have) {
        *p = r->buf + (off - r->base);
        *got = want;
        return 0;
    }
    /* Slide the window so it starts at off, keeping bytes already read. */
    if (off >= r->base + r->have) {
        r->have = 0;
    } else {
        size_t drop = (size_t)(off - r->base);
        memmove(r->buf, r->buf + drop, r->have - drop);
        r->have -= drop;
    }
    r->base = off;
    if (VEC_RESERVE(r->buf, r->cap, want) != 0)
        return TALLY_ENOMEM;
    while (r->have < want) {
        ssize_t k = pread(r->fd, r->buf + r->have, r->cap - r->have, (off_t)(r->base + r->have));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return TALLY_EIO;
        if (k == 0)
            break; /* the file shrank under us; treat as its end */
        r->have += (size_t)k;
    }
    *p = r->buf;
    *got = r->have < want ? r->have : want;
    return 0;
}

/* The state of one replay across segments. */
typedef struct scan {
    const char *dir;
    const journal_replay_opts_t *ro;
    journal_replay_report_t *rep;
    reader_t rd;
    char name[JOURNAL_NAME_MAX];
    uint64_t last_pos;
    bool after_damage; /* a damaged region was skipped just before */
} scan_t;

typedef struct rec {
    uint32_t len;
    uint64_t pos;
    const uint8_t *payload;
} rec_t;

/* Is there a valid record at off?  Returns 0 (and *out), TALLY_ENOTFOUND
 * (no), or another negative code when the file cannot be read. */
static int check_record(scan_t *s, uint64_t off, rec_t *out)
{
    const uint8_t *p;
    size_t got;
    int rc = rd_get(&s->rd, off, JOURNAL_RECORD_OVERHEAD, &p, &got);
    if (rc != 0)
        return rc;
    if (got < JOURNAL_RECORD_OVERHEAD || journal_fmt_get32(p) != JOURNAL_RECORD_MAGIC)
        return TALLY_ENOTFOUND;
    uint32_t len = journal_fmt_get32(p + 4);
    if (len > JOURNAL_MAX_PAYLOAD || off + JOURNAL_RECORD_OVERHEAD + len > s->rd.size)
        return TALLY_ENOTFOUND;
    rc = rd_get(&s->rd, off, JOURNAL_RECORD_OVERHEAD + (size_t)len, &p, &got);
    if (rc != 0)
        return rc;
    if (got < JOURNAL_RECORD_OVERHEAD + (size_t)len)
        return TALLY_ENOTFOUND;
    if (journal_fmt_get32(p + 8) != journal_fmt_record_crc(p, p + JOURNAL_RECORD_OVERHEAD, len))
        return TALLY_ENOTFOUND;
    /* A record whose CRC holds but whose position does not advance is not
     * one we may apply again; it is treated as damage. */
    uint64_t pos = journal_fmt_get64(p + 12);
    if (pos <= s->last_pos || pos == 0)
        return TALLY_ENOTFOUND;
    out->len = len;
    out->pos = pos;
    out->payload = p + JOURNAL_RECORD_OVERHEAD;
    return 0;
}

/* Find the first offset >= from where a valid record starts.  Returns 0
 * with *at, TALLY_ENOTFOUND when there is none before the end of the file,
 * or another negative code. */
static int resync(scan_t *s, uint64_t from, uint64_t *at)
{
    const uint8_t magic0 = (uint8_t)JOURNAL_RECORD_MAGIC;
    uint64_t q = from;
    while (q + JOURNAL_RECORD_OVERHEAD <= s->rd.size) {
        const uint8_t *p;
        size_t got;
        reader_t *r = &s->rd;
        if (q >= r->base && q + JOURNAL_RECORD_OVERHEAD <= r->base + r->have) {
            /* Search what the window already holds: sliding it for every
             * candidate would copy megabytes per false match. */
            p = r->buf + (q - r->base);
            got = (size_t)(r->base + r->have - q);
        } else {
            int rc = rd_get(r, q, READ_CHUNK, &p, &got);
            if (rc != 0)
                return rc;
        }
        const uint8_t *hit = memchr(p, magic0, got);
        if (!hit) {
            q += got;
            continue;
        }
        uint64_t cand = q + (uint64_t)(hit - p);
        rec_t rec;
        int rc = check_record(s, cand, &rec);
        if (rc == 0) {
            *at = cand;
            return 0;
        }
        if (rc != TALLY_ENOTFOUND)
            return rc;
        q = cand + 1;
    }
    return TALLY_ENOTFOUND;
}

static void note(scan_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(scan_t *s, const char *fmt, ...)
{
    char line[sizeof(s->rep->first_note)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (s->rep->first_note[0] == '\0')
        memcpy(s->rep->first_note, line, sizeof(line));
    if (s->ro->on_note)
        s->ro->on_note(line, s->ro->ctx);
}

static int fail(scan_t *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(scan_t *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->rep->error, sizeof(s->rep->error), fmt, ap);
    va_end(ap);
    return code;
}

/* Cut the last segment at off: the torn tail a crash left. */
static int truncate_tail(scan_t *s, uint64_t off)
{
    if (ftruncate(s->rd.fd, (off_t)off) != 0 || fsync(s->rd.fd) != 0)
        return fail(s, TALLY_EIO, "%s/%s: cannot cut the torn tail at offset %" PRIu64 ": %s",
                    s->dir, s->name, off, strerror(errno));
    return 0;
}

/* Deliver a valid record, keeping the report's counts. */
/* Positions [from, to] are missing before the record at off: the records
 * of a damaged region just skipped, or a gap nothing explains. */
static void missing(scan_t *s, uint64_t from, uint64_t to, uint64_t off)
{
    journal_replay_report_t *rep = s->rep;
    if (s->after_damage) {
        rep->damaged_positions += to - from + 1;
        return;
    }
    if (rep->gap_positions == 0) {
        rep->gap_first_from = from;
        rep->gap_first_to = to;
        memcpy(rep->gap_segment, s->name, sizeof(rep->gap_segment));
    }
    rep->gap_positions += to - from + 1;
    (void)off;
}

static int deliver(scan_t *s, const rec_t *r, uint64_t off)
{
    if (s->last_pos != 0 && r->pos > s->last_pos + 1) {
        s->rep->pos_gaps++;
        note(s,
             "%s: positions jump from %" PRIu64 " to %" PRIu64 " at offset %" PRIu64 " (%" PRIu64
             " missing)",
             s->name, s->last_pos, r->pos, off, r->pos - s->last_pos - 1);
        missing(s, s->last_pos + 1, r->pos - 1, off);
    }
    s->after_damage = false;
    s->last_pos = r->pos;
    if (r->pos < s->ro->from_pos) {
        s->rep->skipped++;
        return 0;
    }
    s->rep->records++;
    s->rep->bytes += r->len;
    if (s->ro->on_record_at || s->ro->on_record) {
        journal_record_t jr = {r->payload, r->len, r->pos, s->name, off};
        int rc = s->ro->on_record_at ? s->ro->on_record_at(&jr, s->ro->ctx)
                                     : s->ro->on_record(r->payload, r->len, r->pos, s->ro->ctx);
        if (rc != 0)
            return fail(s, rc, "%s: replay stopped at position %" PRIu64 " by its consumer (%s)",
                        s->name, r->pos, tally_strerror(rc));
    }
    return 0;
}

/* Walk the records of the open segment from just after its header. */
static int scan_records(scan_t *s, bool is_last)
{
    journal_replay_report_t *rep = s->rep;
    uint64_t off = JOURNAL_HEADER_SIZE;
    while (off < s->rd.size) {
        rec_t r;
        int rc = check_record(s, off, &r);
        if (rc != 0 && rc != TALLY_ENOTFOUND)
            return rc;
        if (rc == 0) {
            rc = deliver(s, &r, off);
            if (rc != 0)
                return rc;
            off += JOURNAL_RECORD_OVERHEAD + (uint64_t)r.len;
            continue;
        }
        uint64_t next = 0;
        rc = resync(s, off + 1, &next);
        if (rc != 0 && rc != TALLY_ENOTFOUND)
            return rc;
        bool found = rc == 0;
        if (!found && is_last) {
            rep->torn_tail = true;
            rep->torn_offset = off;
            rep->torn_bytes = s->rd.size - off;
            note(s,
                 "%s: torn record at offset %" PRIu64 " (%" PRIu64
                 " bytes to the end of the file, no valid record after them); %s",
                 s->name, off, rep->torn_bytes,
                 s->ro->read_only ? "left in place (read-only)" : "cut off");
            if (!s->ro->read_only)
                return truncate_tail(s, off);
            return 0;
        }
        uint64_t end = found ? next : s->rd.size;
        if (rep->corrupt_regions++ == 0) {
            rep->corrupt_first_gen = rep->last_gen;
            rep->corrupt_first_offset = off;
        }
        rep->corrupt_bytes += end - off;
        s->after_damage = true;
        if (found)
            note(s,
                 "%s: corrupt record at offset %" PRIu64 "; skipped %" PRIu64
                 " bytes; resumed at offset %" PRIu64,
                 s->name, off, end - off, end);
        else
            note(s,
                 "%s: corrupt record at offset %" PRIu64 "; skipped %" PRIu64
                 " bytes to the end of this segment, which is not the last one; the file "
                 "is left as it is",
                 s->name, off, end - off);
        off = end;
    }
    return 0;
}

/* Open segment gen, check its header and walk it. */
static int scan_segment(scan_t *s, uint64_t gen, bool is_last, journal_fmt_header_t *h)
{
    char path[4096];
    journal_segment_name(s->name, gen);
    if (journal_fmt_path(path, sizeof(path), s->dir, gen, NULL) != 0)
        return fail(s, TALLY_EINVAL, "%s/%s: path too long", s->dir, s->name);
    bool writable = is_last && !s->ro->read_only;
    s->rd.fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (s->rd.fd < 0)
        return fail(s, TALLY_EIO, "%s: cannot open: %s", path, strerror(errno));
    int rc;
    struct stat st;
    if (fstat(s->rd.fd, &st) != 0) {
        rc = fail(s, TALLY_EIO, "%s: cannot stat: %s", path, strerror(errno));
        goto out;
    }
    s->rd.size = (uint64_t)st.st_size;
    s->rd.base = 0;
    s->rd.have = 0;
    const uint8_t *p;
    size_t got;
    rc = rd_get(&s->rd, 0, JOURNAL_HEADER_MAX, &p, &got);
    if (rc != 0) {
        rc = fail(s, rc, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    rc = journal_fmt_header_decode(p, got, path, gen, h, s->rep->error, sizeof(s->rep->error));
    if (rc != 0)
        goto out;
    s->rep->segments++;
    if (s->rep->segments == 1) {
        s->rep->first_gen = gen;
        s->rep->first_start_pos = h->start_pos;
    }
    s->rep->last_gen = gen;
    rc = scan_records(s, is_last);
    if (rc == TALLY_EIO && s->rep->error[0] == '\0')
        fail(s, rc, "%s: read error: %s", path, strerror(errno));
    else if (rc == TALLY_ENOMEM && s->rep->error[0] == '\0')
        fail(s, rc, "%s: out of memory for a record", path);
out:
    close(s->rd.fd);
    s->rd.fd = -1;
    return rc;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

int journal_replay(const char *dir, const journal_replay_opts_t *ro, journal_replay_report_t *rep)
{
    memset(rep, 0, sizeof(*rep));
    if (!ro || !dir) {
        snprintf(rep->error, sizeof(rep->error), "journal_replay: no directory or options");
        return TALLY_EINVAL;
    }
    uint64_t *gens;
    size_t n;
    int rc = journal_fmt_list(dir, &gens, &n, rep->error, sizeof(rep->error));
    if (rc != 0)
        return rc;
    scan_t s = {.dir = dir, .ro = ro, .rep = rep, .rd = {.fd = -1}};
    s.rd.cap = READ_CHUNK;
    s.rd.buf = malloc(s.rd.cap);
    if (!s.rd.buf) {
        free(gens);
        snprintf(rep->error, sizeof(rep->error), "journal_replay: out of memory");
        return TALLY_ENOMEM;
    }
    uint64_t last_start = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (gens[i] < ro->from_gen)
            continue;
        journal_fmt_header_t h = {0};
        rc = scan_segment(&s, gens[i], i == n - 1, &h);
        last_start = h.start_pos;
    }
    rep->last_pos = s.last_pos;
    rep->next_pos = max_u64(max_u64(s.last_pos + 1, last_start), 1);
    free(s.rd.buf);
    free(gens);
    return rc;
}

int journal_read_check_segment(const char *dir, uint64_t gen, uint64_t *end, uint64_t *start_pos,
                               uint64_t *last_pos, char *err, size_t errlen)
{
    journal_replay_opts_t ro = {.read_only = true};
    journal_replay_report_t rep;
    memset(&rep, 0, sizeof(rep));
    scan_t s = {.dir = dir, .ro = &ro, .rep = &rep, .rd = {.fd = -1}};
    s.rd.cap = READ_CHUNK;
    s.rd.buf = malloc(s.rd.cap);
    if (!s.rd.buf) {
        snprintf(err, errlen, "journal: out of memory");
        return TALLY_ENOMEM;
    }
    journal_fmt_header_t h = {0};
    int rc = scan_segment(&s, gen, true, &h);
    free(s.rd.buf);
    if (rc != 0) {
        snprintf(err, errlen, "%s", rep.error);
        return rc;
    }
    if (rep.torn_tail) {
        snprintf(err, errlen,
                 "%s; appending after it would bury it: run journal_replay over %s first, it "
                 "cuts torn tails",
                 rep.first_note, dir);
        return TALLY_EIO;
    }
    *end = s.rd.size;
    *start_pos = h.start_pos;
    *last_pos = s.last_pos;
    return 0;
}
