/* harness_internal.h - plumbing shared by the files of the test harness
 * (harness.c, harness_client.c, harness_sub.c); not part of its API, and
 * not to be included by tests, which use harness.h only.  Everything here
 * is defined in harness.c.
 *
 * Every socket of a harness_t is created and closed through this registry
 * so that harness_cleanup can close what a failed test left open (see
 * harness.h, "Conventions").
 */
#ifndef TALLY_HARNESS_INTERNAL_H
#define TALLY_HARNESS_INTERNAL_H

#include <zmq.h>

#include "harness.h"

/* Print "harness: " followed by the formatted message and a newline on
 * stderr: how every harness failure is explained to the test's reader. */
__attribute__((format(printf, 1, 2))) void harness_say(const char *fmt, ...);

/* A ZeroMQ socket of type in h's context, with linger 0, no receive
 * high-water mark and a 100 ms reconnect interval, registered in h->socks.
 * The socket is owned by h's registry: release it with
 * harness_close_socket (or leave it to harness_cleanup).  Returns NULL
 * (explained on stderr) when zmq_socket fails or HARNESS_SOCKS_MAX sockets
 * are already open. */
void *harness_open_socket(harness_t *h, int type);

/* Unregister s from h and close it; nothing when s is NULL. */
void harness_close_socket(harness_t *h, void *s);

/* Receive one message (all frames) from sock into parts[0..max), waiting
 * until deadline (harness_mono_ms).  Returns the number of frames (frames
 * beyond max are dropped but counted), 0 on timeout, -1 on error.  When it
 * returns n > 0 the caller owns parts[0..min(n, max)) and releases them with
 * harness_close_parts(parts, n, max). */
int harness_recv_parts(void *sock, zmq_msg_t *parts, int max, int64_t deadline);

/* Close the frames harness_recv_parts stored: parts[0..min(n, max)). */
void harness_close_parts(zmq_msg_t *parts, int n, int max);

/* Make sock (not yet connected) a CURVE client of server_pub with the pair
 * client_pub/client_sec (Z85, HARNESS_Z85_LEN characters each); nothing
 * when server_pub is NULL or "".  Returns 0, TALLY_EINVAL (a key of the
 * wrong length) or TALLY_ESYS (libzmq refused the options). */
int harness_socket_curve(void *sock, const char *server_pub, const char *client_pub,
                         const char *client_sec);

#endif
