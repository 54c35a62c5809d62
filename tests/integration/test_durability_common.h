/* test_durability_common.h - shared pieces of the durability tests of the
 * real tallyd (test_durability_load.c, test_durability_files.c,
 * test_durability_disk.c).
 *
 * Load generators.  A load test forks client processes that re-execute
 * the test binary (/proc/self/exe) with "--dur-client ...": each runs one
 * libtally publisher with its own spool directory and pushes a known,
 * deterministic set of figures (dur_nsamples, dur_metric, dur_value) for
 * one township, then keeps flushing until every submission is
 * acknowledged, and writes what it pushed and what was acknowledged to a
 * result file.  The test process computes the same figures on its own and
 * compares them with the daemon's snapshot.
 *
 * Journal files.  The file tests read and alter the segment files in the
 * state directory following the layout documented in daemon/journal.h,
 * independently of the daemon's code (own CRC-32C, own record walk).
 *
 * Every function asserts with cmocka (fail_msg) on failure unless it says
 * it returns a code; such failures explain themselves.
 */
#ifndef TEST_DURABILITY_COMMON_H
#define TEST_DURABILITY_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

#define DUR_METRICS  3 /* "dur.m0", "dur.m1", "dur.m2" */
#define DUR_TOWNS    4 /* townships "t1".."t4" */
#define DUR_MAX_KIDS DUR_TOWNS
#define DUR_MAX_SUBS 4000 /* submissions one client may push */

/* Journal layout constants (daemon/journal.h), restated on purpose: the
 * tests check the documented format, not the daemon's headers. */
#define DUR_JNL_HEADER   48
#define DUR_JNL_REC_HEAD 20
#define DUR_JNL_MAGIC    0x524A7AC1u
#define DUR_MAX_RECORDS  4096
#define DUR_MAX_FILES    64

/* One test's resources; the teardown frees them even after a failed
 * assertion (client processes are killed, a tmpfs is unmounted). */
typedef struct dur_fx {
    harness_t h;
    harness_table_t t;
    const char *conf;             /* config text for every (re)start, NULL = none */
    pid_t kids[DUR_MAX_KIDS];     /* 0 once reaped */
    int kid_status[DUR_MAX_KIDS]; /* exit status once reaped, else -1 */
    unsigned kid_town[DUR_MAX_KIDS];
    size_t nkids;
    bool mounted;  /* a tmpfs is mounted on h.state_dir */
    unsigned seed; /* of a randomized schedule; quoted in failure messages */
} dur_fx_t;

/* What one client process did, read back from its result file. */
typedef struct dur_result {
    unsigned town;      /* 1..DUR_TOWNS */
    unsigned pushed;    /* submissions closed with tally_client_send */
    unsigned acked;     /* ... acknowledged (accepted or duplicate) */
    unsigned accepted;  /* ACK status accepted */
    unsigned duplicate; /* ACK status duplicate */
    unsigned rejected;  /* final rejections (must stay 0) */
    /* ACKs that make no sense (must stay 0): a second on_ack for one seq,
     * an ACK for a seq never sent, or with the wrong sample count. */
    unsigned double_acks;
    unsigned pending; /* still unacknowledged when the client gave up */
    int64_t pushed_sum[DUR_METRICS];
    int64_t acked_sum[DUR_METRICS];
    char last_error[256];
} dur_result_t;

/* cmocka setup/teardown for dur_fx_t. */
int dur_setup(void **state);
int dur_teardown(void **state);

/* ---- deterministic figures ---------------------------------------------- */

/* Samples in submission i of township town (1..3). */
unsigned dur_nsamples(unsigned town, unsigned i);
/* Metric index (0..DUR_METRICS-1) of sample j of submission i. */
unsigned dur_metric(unsigned i, unsigned j);
/* Metric name of index m ("dur.m0"...); static storage. */
const char *dur_metric_name(unsigned m);
/* Value of sample j of submission i of township town (1..997). */
int64_t dur_value(unsigned town, unsigned i, unsigned j);
/* Add the samples of submissions 0..n-1 of town into sums[DUR_METRICS]. */
void dur_expected(unsigned town, unsigned n, int64_t sums[DUR_METRICS]);

/* ---- client processes ---------------------------------------------------- */

/* The entry point of a client process: main() calls it when argv[1] is
 * "--dur-client".  Returns the process exit status: 0 when everything was
 * acknowledged without a rejection, 3 when it gave up (deadline), 1 on a
 * local error. */
int dur_client_main(int argc, char **argv);

/* Start a client process for township town pushing nsubs submissions, one
 * every pace_ms, spooled in DIR/spool-t<town>; recorded in f->kids. */
void dur_spawn_client(dur_fx_t *f, unsigned town, unsigned nsubs, unsigned pace_ms);

/* Wait up to timeout_ms for every client process to exit with status 0,
 * then read their results into res[0..f->nkids).  Fails (killing them)
 * otherwise. */
void dur_wait_clients(dur_fx_t *f, dur_result_t *res, int timeout_ms);

/* True while some client process is still running (reaps the others). */
bool dur_clients_running(dur_fx_t *f);

/* Check every client result against the figures it was asked to push
 * (nsubs each): all pushed, all acknowledged exactly once, none rejected,
 * acknowledged sums = pushed sums = dur_expected(). */
void dur_check_results(const dur_fx_t *f, const dur_result_t *res, size_t n, unsigned nsubs);

/* Take a snapshot and check that the "total" column of every dur.m* metric
 * equals the expected sums exactly, per township (towns 1..ntowns, each
 * having pushed nsubs submissions) and county-wide.  what names the
 * moment for failure messages. */
void dur_check_totals(dur_fx_t *f, unsigned ntowns, unsigned nsubs, const char *what);

/* Check one total: metric's "total" for scope ("" = county) in the last
 * snapshot f->t equals want. */
void dur_expect_total(dur_fx_t *f, const char *metric, const char *scope, int64_t want,
                      const char *what);

/* Fail (printing the log's tail) unless the daemon's log contains needle. */
void dur_expect_log(dur_fx_t *f, const char *needle);

/* The single-metric tests submit "dur.m0" for township "t1" only: take a
 * snapshot and check that its total, for t1 and for the county, is want. */
void dur_expect_m0(dur_fx_t *f, int64_t want, const char *what);

/* Stop with SIGTERM (status 0 required; the daemon writes a final
 * checkpoint and compacts the journal), start again with the same
 * configuration and check dur_expect_m0(want). */
void dur_clean_restart(dur_fx_t *f, int64_t want);

/* SIGKILL the daemon and start it again on the same state directory with
 * f->conf.  Fails unless it died of SIGKILL and came up again. */
void dur_kill_restart(dur_fx_t *f);

/* Sleep ms milliseconds. */
void dur_sleep_ms(int ms);

/* Print the tail of the daemon's log (for failure diagnosis). */
void dur_dump_log_tail(dur_fx_t *f, size_t bytes);

/* ---- journal files --------------------------------------------------------- */

/* CRC-32C (Castagnoli), bitwise; same contract as zlib's crc32(). */
uint32_t dur_crc32c(uint32_t crc, const void *buf, size_t len);

/* Names of the files of dir starting with prefix and ending with suffix,
 * sorted, into names[0..max) (each HARNESS_PATH_MAX bytes).  Returns the
 * count. */
size_t dur_list(const char *dir, const char *prefix, const char *suffix,
                char names[][HARNESS_PATH_MAX], size_t max);

/* The only journal segment of f's state directory, as a full path. */
void dur_only_segment(dur_fx_t *f, char *path, size_t len);

/* A segment's records: offset and payload length of each, walking from
 * the header; *size gets the file size and *end the offset after the last
 * whole record with a valid magic.  Returns the record count. */
size_t dur_records(const char *path, uint64_t *offs, uint32_t *lens, size_t max, uint64_t *size,
                   uint64_t *end);

/* Read / write the whole file; dur_read_all returns a malloc'd buffer. */
uint8_t *dur_read_all(const char *path, size_t *len);
void dur_write_all(const char *path, const void *buf, size_t len);

/* Little-endian helpers. */
uint32_t dur_get32(const uint8_t *p);
void dur_put32(uint8_t *p, uint32_t v);

#endif
