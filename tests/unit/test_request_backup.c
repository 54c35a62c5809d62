/* Unit tests of request's backups: BACKUP_REQ answered when the backup
 * part's backup ends, BACKUP_FETCH answered from a backup's files and
 * BACKUP_LIST_REQ from the backups kept, both read by backup_fetch on
 * libuv's thread pool, and which keys may ask. */
#include "request_test_util.h"

/* BACKUP_REQ from peer rid with req_id. */
static void ask_backup(fx_t *f, const char *rid, uint64_t req_id, const char *user_id)
{
    proto_msg_t q = {.type = PROTO_BACKUP_REQ};
    q.u.backup_req.req_id = req_id;
    t_encode(&f->buf, &q);
    request_handle(&f->r, rid, strlen(rid), 1, f->buf.data, f->buf.size, user_id);
}

/* A backup ended as backup_config_t.on_end tells it. */
static void end_backup(fx_t *f, uint64_t serial, int rc, const char *path_or_err)
{
    backup_end_t e = {.serial = serial, .rc = rc, .files = 5, .bytes = 1048576, .ms = 127};
    if (rc == 0)
        e.path = path_or_err;
    else
        e.err = path_or_err;
    request_backup_end(&f->r, &e);
}

/* BACKUP_REQ waits for its backup: the first begins one, a second while
 * it runs waits for the next; each is answered when its backup ends,
 * BACKUP with the path or ERROR UNAVAILABLE with the backup's sentence
 * (escaped where it is not UTF-8); a path that is not UTF-8 is sent as the
 * backup's name; the 17th waiting is BUSY; a stop answers the rest. */
static void test_backup(void **state)
{
    fx_t *f = *state;
    ask_backup(f, "R1", 5, NULL);
    assert_int_equal(f->replies.n, 0);
    ask_backup(f, "R2", 6, NULL);
    assert_int_equal(f->replies.n, 0);
    end_backup(f, 1, 0, "/srv/backups/backup-20240615T120000Z");
    assert_int_equal(f->replies.n, 1);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_memory_equal(f->replies.v[0].head, "R1", 2);
    assert_int_equal(m->type, PROTO_BACKUP);
    assert_int_equal(m->u.backup.req_id, 5);
    assert_int_equal(m->u.backup.path.len, strlen("/srv/backups/backup-20240615T120000Z"));
    assert_memory_equal(m->u.backup.path.ptr, "/srv/backups/backup-20240615T120000Z",
                        m->u.backup.path.len);
    assert_int_equal(m->u.backup.files, 5);
    assert_int_equal(m->u.backup.bytes, 1048576);
    assert_int_equal(m->u.backup.ms, 127);
    t_sink_clear(&f->replies);
    end_backup(f, 2, TALLY_EIO, "copying history.db to /srv/\xff/x: No space left on device");
    end_backup(f, 2, TALLY_EIO, "told once only");
    assert_int_equal(f->replies.n, 1);
    assert_memory_equal(f->replies.v[0].head, "R2", 2);
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_ERROR);
    assert_int_equal(m->u.error.code, -TALLY_EUNAVAIL);
    assert_int_equal(m->u.error.req_id, 6);
    assert_true(m->u.error.message.len > 0);
    char msg[PROTO_MESSAGE_MAX + 1];
    snprintf(msg, sizeof(msg), "%.*s", (int)m->u.error.message.len, m->u.error.message.ptr);
    assert_string_equal(msg, "the backup failed: copying history.db to /srv/\\xff/x: No space "
                             "left on device");
    t_sink_clear(&f->replies);
    /* Bytes that are not UTF-8, in the error and in the path. */
    ask_backup(f, "R3", 7, NULL);
    end_backup(f, 3, TALLY_EIO, "writing /srv/\xff: I/O error");
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_ERROR);
    t_sink_clear(&f->replies);
    ask_backup(f, "R3", 8, NULL);
    end_backup(f, 4, 0, "/srv/\xff/backup-20240615T120000Z-4");
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_BACKUP);
    assert_int_equal(m->u.backup.path.len, strlen("backup-20240615T120000Z-4"));
    t_sink_clear(&f->replies);
    /* Sixteen wait; the seventeenth is told to retry. */
    for (int i = 0; i < REQUEST_BACKUP_WAITERS; i++)
        ask_backup(f, "R4", 100 + (uint64_t)i, NULL);
    assert_int_equal(f->replies.n, 0);
    ask_backup(f, "R1", 200, NULL);
    assert_non_null(strstr(expect_error(f, TALLY_EBUSY, 200), "16 requests wait"));
    request_backup_abandon(&f->r);
    assert_int_equal(f->replies.n, REQUEST_BACKUP_WAITERS);
    for (size_t i = 0; i < f->replies.n; i++) {
        m = t_sink_at(&f->replies, i);
        assert_int_equal(m->type, PROTO_ERROR);
        assert_int_equal(m->u.error.code, -TALLY_EUNAVAIL);
        assert_int_equal(m->u.error.req_id, 100 + i);
    }
    t_sink_clear(&f->replies);
    /* The backups this test began on an empty directory end (failed). */
    while (f->b.running)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* Only an admin key may ask for a backup; an admin key may neither read
 * nor submit. */
static void test_backup_secured(void **state)
{
    fx_t *f = *state;
    const char *town = keyring_lookup(&f->keys, key_town)->user_id;
    const char *sub = keyring_lookup(&f->keys, key_sub)->user_id;
    const char *admin = keyring_lookup(&f->keys, key_admin)->user_id;
    assert_non_null(strstr(admin, "admin:ops:"));
    ask_backup(f, "R1", 3, town);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 3),
                           "township 'gaoguan', which may not ask for backups; use an admin key"));
    ask_backup(f, "R1", 4, sub);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 4), "subscriber 'screen'"));
    ask_backup(f, "R1", 5, admin);
    assert_int_equal(f->replies.n, 0);
    end_backup(f, 1, 0, "/srv/b");
    assert_int_equal(t_sink_at(&f->replies, 0)->type, PROTO_BACKUP);
    t_sink_clear(&f->replies);
    proto_msg_t sreq = {.type = PROTO_STATS_REQ};
    sreq.u.stats_req.req_id = 6;
    t_encode(&f->buf, &sreq);
    send_req(f, admin);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 6),
                           "admin 'ops', which may ask for backups but not read"));
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "disputes.screened=4");
    send_req(f, admin);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->u.ack.code, -TALLY_EFORBIDDEN);
    char msg[PROTO_MESSAGE_MAX + 1];
    snprintf(msg, sizeof(msg), "%.*s", (int)m->u.ack.message.len, m->u.ack.message.ptr);
    assert_non_null(strstr(msg, "admin 'ops', which may ask for backups but not submit figures"));
    t_sink_clear(&f->replies);
    while (f->b.running)
        uv_run(&f->loop, UV_RUN_ONCE);
}

#define BK "backup-20240615T120000Z"

static uint8_t bk_byte(uint64_t i)
{
    return (uint8_t)(i * 131 + (i >> 9));
}

/* A backup in the backup directory: history.db of 300000 bytes, and a
 * journal segment of 3. */
static void make_backup(fx_t *f)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/backups", f->state_dir);
    assert_int_equal(mkdir(p, 0750), 0);
    snprintf(p, sizeof(p), "%s/backups/" BK, f->state_dir);
    assert_int_equal(mkdir(p, 0750), 0);
    snprintf(p, sizeof(p), "%s/backups/" BK "/journal-0000000000000001.tj", f->state_dir);
    FILE *out = fopen(p, "w");
    assert_non_null(out);
    fputs("abc", out);
    fclose(out);
    snprintf(p, sizeof(p), "%s/backups/" BK "/history.db", f->state_dir);
    assert_non_null(out = fopen(p, "w"));
    for (uint64_t i = 0; i < 300000; i++)
        fputc(bk_byte(i), out);
    fclose(out);
}

/* BACKUP_FETCH from peer rid. */
static void ask_fetch(fx_t *f, const char *rid, uint64_t req_id, const char *name, uint32_t file,
                      uint64_t offset, const char *user_id)
{
    proto_msg_t q = {.type = PROTO_BACKUP_FETCH};
    q.u.backup_fetch.req_id = req_id;
    q.u.backup_fetch.name = proto_str(name);
    q.u.backup_fetch.file = file;
    q.u.backup_fetch.offset = offset;
    t_encode(&f->buf, &q);
    request_handle(&f->r, rid, strlen(rid), 1, f->buf.data, f->buf.size, user_id);
}

/* Run the loop until every fetch begun is answered. */
static void drain_fetches(fx_t *f)
{
    while (backup_fetch_active(&f->fetch) > 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* Reply i is a BACKUP_CHUNK to rid for req_id: file (of 2) from offset,
 * with the file's bytes; returns the length of its data. */
static size_t expect_chunk(fx_t *f, size_t i, const char *rid, uint64_t req_id, uint32_t file,
                           uint64_t offset)
{
    assert_int_equal(f->replies.v[i].head_len, strlen(rid));
    assert_memory_equal(f->replies.v[i].head, rid, strlen(rid));
    const proto_msg_t *m = t_sink_at(&f->replies, i);
    assert_int_equal(m->type, PROTO_BACKUP_CHUNK);
    assert_int_equal(m->u.backup_chunk.req_id, req_id);
    assert_int_equal(m->u.backup_chunk.files, 2);
    assert_int_equal(m->u.backup_chunk.file, file);
    const char *name = file == 0 ? "history.db" : "journal-0000000000000001.tj";
    assert_int_equal(m->u.backup_chunk.file_name.len, strlen(name));
    assert_memory_equal(m->u.backup_chunk.file_name.ptr, name, strlen(name));
    uint64_t size = file == 0 ? 300000 : 3;
    assert_int_equal(m->u.backup_chunk.size, size);
    assert_int_equal(m->u.backup_chunk.offset, offset);
    size_t len = m->u.backup_chunk.data.len;
    assert_int_equal(len, size - offset < PROTO_CHUNK_MAX ? size - offset : PROTO_CHUNK_MAX);
    for (size_t j = 0; j < len; j++)
        assert_int_equal((uint8_t)m->u.backup_chunk.data.ptr[j],
                         file == 0 ? bk_byte(offset + j) : (uint8_t) "abc"[offset + j]);
    return len;
}

/* The one reply is an ERROR naming field; returns its message. */
static const char *expect_error_in(fx_t *f, int code, uint64_t req_id, const char *field)
{
    assert_int_equal(f->replies.n, 1);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->u.error.field.len, strlen(field));
    assert_true(strncmp(m->u.error.field.ptr ? m->u.error.field.ptr : "", field, strlen(field)) ==
                0);
    return expect_error(f, code, req_id);
}

/* How many times the log holds text. */
static int logged_times(fx_t *f, const char *text)
{
    int n = 0;
    fflush(f->st.log.out);
    for (const char *p = f->st.logbuf; p != NULL && (p = strstr(p, text)) != NULL; p++)
        n++;
    return n;
}

/* BACKUP_FETCH is read off the loop and answered BACKUP_CHUNK to the peer
 * that asked, with its req_id, in whatever order the reads end; a copy
 * beginning is logged once; errors name their field, a missing backup is
 * not counted as a bad request; 32 at once, then BUSY; a stop answers
 * those being read, and those after it, UNAVAILABLE. */
static void test_backup_fetch(void **state)
{
    fx_t *f = *state;
    make_backup(f);
    ask_fetch(f, "R7", 9, BK, 0, 0, NULL);
    ask_fetch(f, "R8", 10, BK, 0, PROTO_CHUNK_MAX, NULL);
    assert_int_equal(f->replies.n, 0);
    drain_fetches(f);
    assert_int_equal(f->replies.n, 2);
    size_t r7 = f->replies.v[0].head[1] == '7' ? 0 : 1;
    assert_int_equal(expect_chunk(f, r7, "R7", 9, 0, 0), PROTO_CHUNK_MAX);
    assert_int_equal(expect_chunk(f, 1 - r7, "R8", 10, 0, PROTO_CHUNK_MAX),
                     300000 - PROTO_CHUNK_MAX);
    t_sink_clear(&f->replies);
    ask_fetch(f, "R1", 11, BK, 1, 0, NULL);
    drain_fetches(f);
    ask_fetch(f, "R1", 12, BK, 1, 3, NULL);
    drain_fetches(f);
    assert_int_equal(expect_chunk(f, 0, "R1", 11, 1, 0), 3);
    assert_int_equal(expect_chunk(f, 1, "R1", 12, 1, 3), 0);
    t_sink_clear(&f->replies);
    assert_int_equal(logged_times(f, "backup " BK " being copied (BACKUP_FETCH)"), 1);
    proto_msg_t sreq = {.type = PROTO_STATS_REQ};
    t_encode(&f->buf, &sreq);
    send_req(f, NULL);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    int64_t fetches = -1, bytes = -1;
    for (uint32_t i = 0; i < m->u.stats.n; i++) {
        if (proto_str_eq(m->u.stats.entries[i].name, "tallyd_backup_fetches_total"))
            fetches = m->u.stats.entries[i].value;
        if (proto_str_eq(m->u.stats.entries[i].name, "tallyd_backup_fetch_bytes_total"))
            bytes = m->u.stats.entries[i].value;
    }
    assert_int_equal(fetches, 4);
    assert_int_equal(bytes, 300003);
    t_sink_clear(&f->replies);
    ask_fetch(f, "R1", 13, BK, 2, 0, NULL);
    drain_fetches(f);
    assert_string_equal(expect_error_in(f, TALLY_ERANGE, 13, "file"),
                        "file 2 asked for, the backup holds 2 files");
    ask_fetch(f, "R1", 14, BK, 1, 4, NULL);
    drain_fetches(f);
    assert_string_equal(expect_error_in(f, TALLY_ERANGE, 14, "offset"),
                        "offset 4 is past the end of journal-0000000000000001.tj, 3 bytes");
    assert_int_equal(f->st.stats.bad_requests, 2);
    ask_fetch(f, "R1", 15, BK "-2", 0, 0, NULL);
    drain_fetches(f);
    const char *msg = expect_error_in(f, TALLY_ENOBACKUP, 15, "name");
    assert_non_null(strstr(msg, "no backup named " BK "-2 in /"));
    assert_non_null(strstr(msg, "/backups (never written, or removed since: [backup] keep is 7)"));
    assert_int_equal(f->st.stats.bad_requests, 2);
    assert_true(t_logged(&f->st, "backup fetch refused: no backup named " BK "-2"));
    /* 32 read at once; the 33rd is told to retry. */
    for (uint64_t i = 0; i < BACKUP_FETCH_MAX; i++)
        ask_fetch(f, "R4", 100 + i, BK, 1, i % 4, NULL);
    assert_int_equal(f->replies.n, 0);
    ask_fetch(f, "R1", 200, BK, 0, 0, NULL);
    assert_non_null(
        strstr(expect_error(f, TALLY_EBUSY, 200), "32 reads of backups (fetches and listings)"));
    drain_fetches(f);
    assert_int_equal(f->replies.n, BACKUP_FETCH_MAX);
    for (size_t i = 0; i < f->replies.n; i++) {
        uint64_t id = t_sink_at(&f->replies, i)->u.backup_chunk.req_id;
        assert_in_range(id, 100, 100 + BACKUP_FETCH_MAX - 1);
        expect_chunk(f, i, "R4", id, 1, (id - 100) % 4);
    }
    t_sink_clear(&f->replies);
    assert_int_equal(f->st.stats.backup_fetches, 4 + BACKUP_FETCH_MAX);
    /* tallyd stops. */
    ask_fetch(f, "R1", 300, BK, 0, 0, NULL);
    backup_fetch_close(&f->fetch, NULL);
    assert_string_equal(expect_error(f, TALLY_EUNAVAIL, 300), "tallyd is stopping");
    ask_fetch(f, "R1", 301, BK, 0, 0, NULL);
    assert_string_equal(expect_error(f, TALLY_EUNAVAIL, 301), "tallyd is stopping");
    assert_int_equal(f->st.stats.bad_requests, 3); /* the BUSY */
}

/* Only an admin key may copy a backup. */
static void test_backup_fetch_secured(void **state)
{
    fx_t *f = *state;
    make_backup(f);
    ask_fetch(f, "R1", 3, BK, 0, 0, keyring_lookup(&f->keys, key_town)->user_id);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 3),
                           "this key belongs to township 'gaoguan', which may not copy backups; "
                           "use an admin key ([security] admin_keys)"));
    ask_fetch(f, "R1", 4, BK, 0, 0, keyring_lookup(&f->keys, key_sub)->user_id);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 4),
                           "subscriber 'screen', which may not copy backups; use an admin key"));
    assert_int_equal(backup_fetch_active(&f->fetch), 0);
    ask_fetch(f, "R1", 5, BK, 0, 0, keyring_lookup(&f->keys, key_admin)->user_id);
    drain_fetches(f);
    expect_chunk(f, 0, "R1", 5, 0, 0);
    t_sink_clear(&f->replies);
    assert_true(t_logged(&f->st, "backup " BK " being copied by admin 'ops'"));
}

/* BACKUP_LIST_REQ from peer rid. */
static void ask_list(fx_t *f, const char *rid, uint64_t req_id, const char *user_id)
{
    proto_msg_t q = {.type = PROTO_BACKUP_LIST_REQ};
    q.u.backup_list_req.req_id = req_id;
    t_encode(&f->buf, &q);
    request_handle(&f->r, rid, strlen(rid), 1, f->buf.data, f->buf.size, user_id);
}

/* Reply i is a BACKUP_LIST to rid for req_id, of total backups in the
 * backup directory; its backups are read into v (n of them, at most cap),
 * and its dir into dir. */
static uint32_t expect_list(fx_t *f, size_t i, const char *rid, uint64_t req_id, uint32_t total,
                            proto_backup_entry_t *v, uint32_t cap, char *dir, size_t dir_cap)
{
    assert_int_equal(f->replies.v[i].head_len, strlen(rid));
    assert_memory_equal(f->replies.v[i].head, rid, strlen(rid));
    const proto_msg_t *m = t_sink_at(&f->replies, i);
    assert_int_equal(m->type, PROTO_BACKUP_LIST);
    assert_int_equal(m->u.backup_list.req_id, req_id);
    assert_int_equal(m->u.backup_list.total, total);
    snprintf(dir, dir_cap, "%.*s", (int)m->u.backup_list.dir.len,
             m->u.backup_list.dir.ptr ? m->u.backup_list.dir.ptr : "");
    proto_backups_iter_t it;
    proto_backups_iter(&it, m);
    uint32_t n = 0;
    while (n < cap && proto_backups_next(&it, &v[n]))
        n++;
    assert_false(proto_backups_next(&it, &(proto_backup_entry_t){0}));
    assert_int_equal(n, m->u.backup_list.n);
    return n;
}

static void expect_entry(const proto_backup_entry_t *e, const char *name, uint32_t files,
                         uint64_t bytes, bool sums)
{
    assert_int_equal(e->name.len, strlen(name));
    assert_memory_equal(e->name.ptr, name, e->name.len);
    assert_int_equal(e->files, files);
    assert_int_equal(e->bytes, bytes);
    assert_int_equal(e->sums, sums);
}

/* BACKUP_LIST_REQ is read off the loop and answered BACKUP_LIST to the
 * peer that asked, with its req_id: the backups oldest first, their files,
 * bytes and BLAKE2SUMS, the backup directory resolved; none before the
 * first backup; UNAVAILABLE (not counted as a bad request) when the
 * directory cannot be read; BUSY when fetches and listings fill the
 * slots; UNAVAILABLE once tallyd stops. */
static void test_backup_list(void **state)
{
    fx_t *f = *state;
    proto_backup_entry_t v[4];
    char dir[PROTO_PATH_MAX + 1], want[256];
    /* No backup yet. */
    ask_list(f, "R5", 20, NULL);
    assert_int_equal(f->replies.n, 0);
    drain_fetches(f);
    assert_int_equal(f->replies.n, 1);
    assert_int_equal(expect_list(f, 0, "R5", 20, 0, v, 4, dir, sizeof(dir)), 0);
    snprintf(want, sizeof(want), "%s/backups", f->state_dir);
    assert_string_equal(dir, want);
    t_sink_clear(&f->replies);
    /* Two, the newer with BLAKE2SUMS of 200 bytes. */
    make_backup(f);
    char p[192];
    snprintf(p, sizeof(p), "%s/backups/" BK "-2", f->state_dir);
    assert_int_equal(mkdir(p, 0750), 0);
    snprintf(p, sizeof(p), "%s/backups/" BK "-2/BLAKE2SUMS", f->state_dir);
    FILE *out = fopen(p, "w");
    assert_non_null(out);
    for (int i = 0; i < 200; i++)
        fputc('0', out);
    fclose(out);
    ask_list(f, "R7", 21, NULL);
    ask_list(f, "R8", 22, NULL);
    drain_fetches(f);
    assert_int_equal(f->replies.n, 2);
    size_t r7 = f->replies.v[0].head[1] == '7' ? 0 : 1;
    for (size_t k = 0; k < 2; k++) {
        assert_int_equal(expect_list(f, k == 0 ? r7 : 1 - r7, k == 0 ? "R7" : "R8", 21 + k, 2, v, 4,
                                     dir, sizeof(dir)),
                         2);
        expect_entry(&v[0], BK, 2, 300003, false);
        expect_entry(&v[1], BK "-2", 1, 200, true);
        char *abs = realpath(f->state_dir, NULL);
        snprintf(want, sizeof(want), "%s/backups", abs);
        free(abs);
        assert_string_equal(dir, want);
    }
    t_sink_clear(&f->replies);
    /* Routine: logged at debug only. */
    assert_int_equal(logged_times(f, "tallyd debug: backups listed (BACKUP_LIST_REQ): 2 of 2"), 2);
    assert_int_equal(logged_times(f, "backups listed"), 3);
    assert_int_equal(f->st.stats.bad_requests, 0);
    /* A backup directory that cannot be read. */
    backup_settings_t set = {.keep = 7};
    snprintf(set.dir, sizeof(set.dir), "backups/" BK "/history.db");
    backup_set(&f->b, &set);
    ask_list(f, "R1", 23, NULL);
    drain_fetches(f);
    const char *msg = expect_error_in(f, TALLY_EUNAVAIL, 23, "");
    assert_non_null(strstr(msg, "cannot read the backup directory /"));
    assert_non_null(strstr(msg, "/history.db: Not a directory"));
    assert_int_equal(f->st.stats.bad_requests, 0);
    assert_true(
        t_logged(&f->st, "tallyd info: backup list failed: cannot read the backup directory"));
    snprintf(set.dir, sizeof(set.dir), "backups");
    backup_set(&f->b, &set);
    /* Fetches and listings share the 32 slots. */
    for (uint64_t i = 0; i < BACKUP_FETCH_MAX; i++) {
        if (i % 2)
            ask_list(f, "R4", 100 + i, NULL);
        else
            ask_fetch(f, "R4", 100 + i, BK, 1, 0, NULL);
    }
    assert_int_equal(f->replies.n, 0);
    ask_list(f, "R1", 200, NULL);
    assert_non_null(strstr(expect_error(f, TALLY_EBUSY, 200),
                           "32 reads of backups (fetches and listings) are under way already"));
    ask_fetch(f, "R1", 201, BK, 0, 0, NULL);
    assert_non_null(
        strstr(expect_error(f, TALLY_EBUSY, 201), "32 reads of backups (fetches and listings)"));
    drain_fetches(f);
    assert_int_equal(f->replies.n, BACKUP_FETCH_MAX);
    for (size_t i = 0; i < f->replies.n; i++) {
        const proto_msg_t *m = t_sink_at(&f->replies, i);
        uint64_t id = proto_req_id(m);
        assert_in_range(id, 100, 100 + BACKUP_FETCH_MAX - 1);
        if (id % 2)
            assert_int_equal(expect_list(f, i, "R4", id, 2, v, 4, dir, sizeof(dir)), 2);
        else
            expect_chunk(f, i, "R4", id, 1, 0);
    }
    t_sink_clear(&f->replies);
    /* tallyd stops: the listing under way, and one after. */
    ask_list(f, "R1", 300, NULL);
    backup_fetch_close(&f->fetch, NULL);
    assert_string_equal(expect_error(f, TALLY_EUNAVAIL, 300), "tallyd is stopping");
    ask_list(f, "R1", 301, NULL);
    assert_string_equal(expect_error(f, TALLY_EUNAVAIL, 301), "tallyd is stopping");
    assert_int_equal(f->st.stats.bad_requests, 2); /* the BUSYs */
}

/* Only an admin key may list the backups. */
static void test_backup_list_secured(void **state)
{
    fx_t *f = *state;
    make_backup(f);
    ask_list(f, "R1", 3, keyring_lookup(&f->keys, key_town)->user_id);
    assert_string_equal(expect_error_in(f, TALLY_EFORBIDDEN, 3, "type"),
                        "this key belongs to township 'gaoguan', which may not list backups; use "
                        "an admin key ([security] admin_keys)");
    ask_list(f, "R1", 4, keyring_lookup(&f->keys, key_sub)->user_id);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 4),
                           "subscriber 'screen', which may not list backups; use an admin key"));
    assert_int_equal(backup_fetch_active(&f->fetch), 0);
    ask_list(f, "R9", 5, keyring_lookup(&f->keys, key_admin)->user_id);
    drain_fetches(f);
    assert_int_equal(f->replies.n, 1);
    proto_backup_entry_t v[2];
    char dir[PROTO_PATH_MAX + 1];
    assert_int_equal(expect_list(f, 0, "R9", 5, 1, v, 2, dir, sizeof(dir)), 1);
    expect_entry(&v[0], BK, 2, 300003, false);
    t_sink_clear(&f->replies);
    assert_true(t_logged(&f->st, "tallyd debug: backups listed by admin 'ops': 1 of 1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_secured, setup_secured, teardown),
        cmocka_unit_test_setup_teardown(test_backup_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_fetch_secured, setup_secured, teardown),
        cmocka_unit_test_setup_teardown(test_backup_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_list_secured, setup_secured, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
