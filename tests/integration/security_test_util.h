/* The fixture shared by the CURVE integration tests (test_security.c,
 * test_security_cli.c): key pairs for the daemon, two townships, two
 * subscribers and a stranger, written as ZeroMQ certificates, and the
 * secured configuration tallyd starts with.  Static inline so that a file
 * using only some of them still builds with -Werror. */
#ifndef TALLY_SECURITY_TEST_UTIL_H
#define TALLY_SECURITY_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "harness.h"

typedef struct pair {
    char pub[HARNESS_Z85_LEN + 1];
    char sec[HARNESS_Z85_LEN + 1];
} pair_t;

typedef struct fx {
    harness_t h;
    pair_t server, gaoguan, bashan, screen, wall, stranger;
    harness_table_t t;
    harness_sub_t subs[2];
} fx_t;

static inline void make_pair(pair_t *p)
{
    assert_int_equal(harness_curve_keypair(p->pub, p->sec), 0);
}

/* Keys for the daemon (keys/server.key_secret), two townships, two
 * subscribers (screen, wall) and a stranger whose key is nowhere. */
static inline int setup(void **state)
{
    fx_t *f = test_calloc(1, sizeof(*f));
    *state = f;
    harness_table_init(&f->t);
    assert_int_equal(harness_init(&f->h), 0);
    pair_t *all[] = {&f->server, &f->gaoguan, &f->bashan, &f->screen, &f->wall, &f->stranger};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        make_pair(all[i]);
    harness_t *h = &f->h;
    assert_int_equal(harness_write_cert(h, "keys/server.key", f->server.pub, NULL, NULL, 0), 0);
    assert_int_equal(
        harness_write_cert(h, "keys/server.key_secret", f->server.pub, f->server.sec, NULL, 0), 0);
    assert_int_equal(harness_write_cert(h, "keys/towns/gaoguan.key", f->gaoguan.pub, NULL, NULL, 0),
                     0);
    assert_int_equal(harness_write_cert(h, "keys/towns/bashan.key", f->bashan.pub, NULL, NULL, 0),
                     0);
    assert_int_equal(harness_write_cert(h, "keys/subs/screen.key", f->screen.pub, NULL, NULL, 0),
                     0);
    assert_int_equal(harness_write_cert(h, "keys/subs/wall.key", f->wall.pub, NULL, NULL, 0), 0);
    /* The harness's own HELLO and default clients read as the screen. */
    assert_int_equal(harness_set_curve(h, f->server.pub, f->screen.pub, f->screen.sec), 0);
    return 0;
}

static inline int teardown(void **state)
{
    fx_t *f = *state;
    int rc = harness_finish(&f->h);
    for (int i = 0; i < 2; i++)
        harness_sub_close(&f->subs[i]);
    harness_table_free(&f->t);
    harness_cleanup(&f->h);
    test_free(f);
    return rc;
}

/* The secured configuration, with extra lines (limits ...) first. */
static inline const char *secured_conf(fx_t *f, const char *extra)
{
    static char conf[2048];
    snprintf(conf, sizeof(conf),
             "[tallyd]\nheartbeat_ms = 200\npublish_interval_ms = 0\n"
             "[journal]\nsync = never\n%s"
             "[security]\n"
             "server_secret_key = %s/keys/server.key_secret\n"
             "township_keys = %s/keys/towns\n"
             "subscriber_keys = %s/keys/subs\n",
             extra ? extra : "", f->h.dir, f->h.dir, f->h.dir);
    return conf;
}

static inline void start_secured(fx_t *f, const char *extra)
{
    assert_int_equal(harness_start(&f->h, secured_conf(f, extra), NULL), 0);
}

static inline void open_as(fx_t *f, harness_client_t *c, const pair_t *who)
{
    assert_int_equal(harness_client_open_curve(&f->h, c, f->server.pub, who->pub, who->sec), 0);
}

static inline int64_t total(fx_t *f, const char *town)
{
    harness_client_t c;
    open_as(f, &c, &f->screen);
    assert_int_equal(harness_snapshot(&c, "", &f->t), 0);
    harness_client_close(&c);
    harness_value_t v;
    if (!harness_table_get(&f->t, "patrols", town, "total", &v) || !v.present)
        return 0;
    return v.num;
}

#endif /* TALLY_SECURITY_TEST_UTIL_H */
