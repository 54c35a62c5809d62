/* gen_corpus.c - writes the seed corpus of fuzz_decode.
 *
 * Usage: gen_corpus DIR.  One file per message type, made by the encoder,
 * plus hand-written edge cases the encoder would never produce (non-canonical
 * integers, wrong version, trailing bytes, a huge declared length).  The
 * output is committed under tests/fuzz/corpus/decode; rerun after a protocol
 * change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "proto.h"

static const char *dir;

static void put(const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void put_msg(const char *name, const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (proto_encode(&sb, m) != 0) {
        fprintf(stderr, "%s: encode failed\n", name);
        exit(1);
    }
    put(name, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

#define PUT_RAW(name, lit) put((name), (lit), sizeof(lit) - 1)

static void tally(proto_tally_t *t, uint8_t kind)
{
    static const char *cols[] = {"1h", "24h", "7d", "30d", "today", "total"};
    memset(t, 0, sizeof *t);
    t->metric = proto_str("disputes.resolved");
    t->scope = kind == PROTO_KIND_GAUGE ? proto_str("") : proto_str("gaoguan");
    t->kind = kind;
    t->seq = 4242;
    t->time_ms = 1700000000000;
    t->nvalues = 6;
    for (uint32_t i = 0; i < t->nvalues; i++) {
        t->values[i].name = proto_str(cols[i]);
        t->values[i].present = i != 2;
        t->values[i].num = (int64_t)i * 1000 - 3;
        t->values[i].den = kind == PROTO_KIND_RATIO ? (int64_t)i + 1 : 1;
    }
}

int main(int argc, char **argv)
{
    static proto_sample_t samples[8];
    proto_msg_t m;
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];

    memset(&m, 0, sizeof m);
    m.type = PROTO_SUBMIT;
    memcpy(m.u.submit.client_id, "0123456789abcdef", 16);
    m.u.submit.seq = 7;
    m.u.submit.township = proto_str("gaoguan");
    m.u.submit.time_ms = 1700000000000;
    m.u.submit.samples = samples;
    m.u.submit.nsamples = 3;
    samples[0] = (proto_sample_t){proto_str("disputes.resolved"), 3};
    samples[1] = (proto_sample_t){proto_str("高观镇.人口"), -12};
    samples[2] = (proto_sample_t){proto_str("grain.tonnes"), INT64_MAX};
    put_msg("01_submit", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_ACK;
    m.u.ack = (proto_ack_t){7,
                            PROTO_ACK_REJECTED,
                            13,
                            1,
                            proto_str("samples[1].metric"),
                            proto_str("samples[1].metric: metric 'x' is not in the catalog")};
    put_msg("02_ack", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_SNAPSHOT_REQ;
    m.u.snapshot_req.req_id = 9;
    m.u.snapshot_req.prefix = proto_str("u/town/gaoguan/");
    put_msg("03_snapshot_req", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_SNAPSHOT_ITEM;
    m.u.snapshot_item.req_id = 9;
    tally(&m.u.snapshot_item.tally, PROTO_KIND_COUNTER);
    put_msg("04_snapshot_item", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_SNAPSHOT_END;
    m.u.snapshot_end.req_id = 9;
    m.u.snapshot_end.stream_id = 0x1234567890abcdefULL;
    m.u.snapshot_end.seq = 4242;
    m.u.snapshot_end.count = 17;
    put_msg("05_snapshot_end", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_UPDATE;
    m.u.update.stream_id = 0x1234567890abcdefULL;
    tally(&m.u.update.tally, PROTO_KIND_RATIO);
    put_msg("06_update_ratio", &m);
    tally(&m.u.update.tally, PROTO_KIND_GAUGE);
    put_msg("06_update_gauge", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_HEARTBEAT;
    m.u.heartbeat.stream_id = 1;
    m.u.heartbeat.seq = 4242;
    m.u.heartbeat.time_ms = 1700000000000;
    put_msg("07_heartbeat", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    m.u.hello.req_id = 1;
    m.u.hello.client = proto_str("tally/0.1.0");
    put_msg("08_hello", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_WELCOME;
    m.u.welcome.req_id = 1;
    m.u.welcome.server = proto_str("tallyd/0.1.0");
    m.u.welcome.pub_endpoint = proto_str("tcp://*:7412");
    m.u.welcome.stream_id = 77;
    m.u.welcome.seq = 4242;
    m.u.welcome.ncolumns = 3;
    m.u.welcome.columns[0] = proto_str("1h");
    m.u.welcome.columns[1] = proto_str("24h");
    m.u.welcome.columns[2] = proto_str("total");
    m.u.welcome.max_samples = 1000;
    m.u.welcome.max_name = 64;
    m.u.welcome.max_msg = 65536;
    m.u.welcome.skew_ms = 300000;
    m.u.welcome.max_age_ms = 316224000000;
    put_msg("09_welcome", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_STATS_REQ;
    m.u.stats_req.req_id = 3;
    put_msg("10_stats_req", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_STATS;
    m.u.stats.req_id = 3;
    m.u.stats.n = 2;
    m.u.stats.entries[0] = (proto_stat_t){proto_str("tallyd_samples_total"), 123456};
    m.u.stats.entries[1] = (proto_stat_t){proto_str("tallyd_clients"), 4};
    put_msg("11_stats", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_PING;
    m.u.ping.req_id = 5;
    m.u.ping.time_ms = -1;
    put_msg("12_ping", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_PONG;
    m.u.pong.req_id = 5;
    m.u.pong.time_ms = -1;
    m.u.pong.seq = UINT64_MAX;
    put_msg("13_pong", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_ERROR;
    m.u.error.req_id = 0;
    m.u.error.code = 3;
    m.u.error.field = proto_str("type");
    m.u.error.message = proto_str("type: 99 is not a known message type (1..15)");
    put_msg("14_error", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_GOODBYE;
    m.u.goodbye.stream_id = 77;
    m.u.goodbye.seq = 4242;
    put_msg("15_goodbye", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_CLOCK_REQ;
    m.u.clock_req.req_id = 7;
    put_msg("16_clock_req", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_CLOCK;
    m.u.clock.req_id = 7;
    m.u.clock.now_ms = 1701360000000;
    m.u.clock.zone = proto_str("America/New_York");
    m.u.clock.utc_offset_s = -18000;
    put_msg("17_clock", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_SPAN_REQ;
    m.u.span_req.req_id = 8;
    m.u.span_req.prefix = proto_str("u/");
    m.u.span_req.from = proto_str("2023-01");
    m.u.span_req.to = proto_str("2023-12-06");
    put_msg("18_span_req", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_TOWNSHIPS_REQ;
    m.u.townships_req.req_id = 9;
    m.u.townships_req.from = 4097;
    put_msg("19_townships_req", &m);

    static const proto_str_t towns[] = {{"gaoguan", 7}, {"高观镇", 9}, {"bashan", 6}};
    memset(&m, 0, sizeof m);
    m.type = PROTO_TOWNSHIPS;
    m.u.townships.req_id = 9;
    m.u.townships.next = 8193;
    m.u.townships.n = 3;
    m.u.townships.names = towns;
    put_msg("19_townships", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_BACKUP_REQ;
    m.u.backup_req.req_id = 10;
    put_msg("20_backup_req", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_BACKUP;
    m.u.backup.req_id = 10;
    m.u.backup.path = proto_str("/srv/统计/backups/backup-20231130T160000Z");
    m.u.backup.files = 5;
    m.u.backup.bytes = 1048576;
    m.u.backup.ms = 127;
    put_msg("20_backup", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_BACKUP_FETCH;
    m.u.backup_fetch.req_id = 11;
    m.u.backup_fetch.name = proto_str("backup-20231130T160000Z-2");
    m.u.backup_fetch.file = 3;
    m.u.backup_fetch.offset = 262144;
    put_msg("20_backup_fetch", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_BACKUP_CHUNK;
    m.u.backup_chunk.req_id = 11;
    m.u.backup_chunk.files = 4;
    m.u.backup_chunk.file = 3;
    m.u.backup_chunk.file_name = proto_str("history.db");
    m.u.backup_chunk.size = 262156;
    m.u.backup_chunk.offset = 262144;
    m.u.backup_chunk.data = (proto_str_t){"\x00\x01\x02tally\xff\xfe\r\n", 12};
    put_msg("20_backup_chunk", &m);

    memset(&m, 0, sizeof m);
    m.type = PROTO_BACKUP_LIST_REQ;
    m.u.backup_list_req.req_id = 12;
    put_msg("20_backup_list_req", &m);

    static const proto_backup_entry_t kept[] = {
        {{"backup-20231129T020000Z", 23}, 5, 45200000, true},
        {{"backup-20231130T160000Z-2", 25}, 4, 1048576, false},
    };
    memset(&m, 0, sizeof m);
    m.type = PROTO_BACKUP_LIST;
    m.u.backup_list.req_id = 12;
    m.u.backup_list.dir = proto_str("/srv/统计/backups");
    m.u.backup_list.total = 3;
    m.u.backup_list.n = 2;
    m.u.backup_list.backups = kept;
    put_msg("20_backup_list", &m);

    /* SUBMIT with every integer in a non-canonical wide format. */
    PUT_RAW("20_submit_wide_ints", "\xdd\x00\x00\x00\x07\xd3\x00\x00\x00\x00\x00\x00\x00\x01"
                                   "\xd2\x00\x00\x00\x01\xc6\x00\x00\x00\x10"
                                   "0123456789abcdef"
                                   "\xcf\x00\x00\x00\x00\x00\x00\x00\x05"
                                   "\xdb\x00\x00\x00\x01g"
                                   "\xd3\x00\x00\x01\x8b\xcf\xe5\x68\x00"
                                   "\xdc\x00\x01\xdc\x00\x02\xda\x00\x01m\xd0\x80");
    PUT_RAW("21_version2", "\x93\x02\x01\x00");
    PUT_RAW("22_trailing", "\x93\x01\x0a\x01\xc0");
    PUT_RAW("23_huge_str32", "\x97\x01\x01\xc4\x10"
                             "0123456789abcdef"
                             "\x01\xdb\xff\xff\xff\xff");
    PUT_RAW("24_nested", "\x93\x01\x0a\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x90");
    return 0;
}
