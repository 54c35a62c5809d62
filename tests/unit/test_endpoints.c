/* Unit tests of endpoints_is_local(): which endpoints a daemon without
 * keys may bind without a warning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "endpoints.h"

static void test_local(void **state)
{
    (void)state;
    const char *local[] = {
        "ipc:///run/tallyd/request",
        "inproc://x",
        "tcp://127.0.0.1:7411",
        "tcp://127.1.2.3:1",
        "tcp://localhost:7411",
        "tcp://[::1]:7411",
        "tcp://lo:7411",
        "ws://127.0.0.1:7411/tally",
        "wss://[::1]:9/x",
        "ws://localhost:80",
        "tcp://[::ffff:127.0.0.1]:7411",
    };
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
        if (!endpoints_is_local(local[i]))
            fail_msg("%s is local", local[i]);
}

static void test_exposed(void **state)
{
    (void)state;
    const char *exposed[] = {
        "tcp://*:7411",
        "tcp://0.0.0.0:7411",
        "tcp://10.0.0.5:7411",
        "tcp://[::]:7411",
        "tcp://[2001:db8::1]:7411",
        "tcp://eth0:7411",
        "ws://10.0.0.5:7411/x",
        "ws://*:80",
        "wss://example.org:443/tally",
        "tipc://{5560,0,0}",
        "vmci://1:7411",
        "tcp://127.0.0.1.evil.example:1",
        "tcp://[::1",
        "nonsense",
    };
    for (size_t i = 0; i < sizeof(exposed) / sizeof(exposed[0]); i++)
        if (endpoints_is_local(exposed[i]))
            fail_msg("%s is reachable from elsewhere", exposed[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local),
        cmocka_unit_test(test_exposed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
