/* ws_clients.c - tally-bench-ws: many browsers on tally-web's stream.
 *
 * Opens N WebSocket connections to tally-web's /api/v1/stream (plain TCP,
 * the handshake written by hand: this is a load generator, not a client
 * library), checks that each is answered 101, then reads everything the
 * server sends for the given time, counting whole frames and bytes, the
 * way N wall screens would keep their connections drained.  run.sh runs
 * it beside tally-bench to see what 200 browsers cost tallyd's ingest.
 *
 *   tally-bench-ws --port PORT [-n 200] [-d SEC] [--json]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_time.h"

#define CLIENTS_MAX 10000

typedef struct client {
    int fd;
    bool open;       /* the handshake was answered 101 */
    char head[1024]; /* the handshake answer, until its blank line */
    size_t head_len;
    uint64_t need;   /* payload bytes of the current frame still to skip */
    uint8_t hdr[14]; /* a frame header being read */
    size_t hdr_len;
} client_t;

static void usage(FILE *f)
{
    fputs("Usage: tally-bench-ws --port PORT [-n CLIENTS] [-d SEC] [--json]\n"
          "Hold CLIENTS WebSocket connections (default 200) to tally-web's\n"
          "/api/v1/stream on 127.0.0.1:PORT for SEC seconds (default 10), reading\n"
          "everything it sends, and print the messages and bytes received.\n",
          f);
}

/* Bytes of a frame header given its first two bytes (server frames are
 * not masked). */
static size_t header_size(const uint8_t *h)
{
    uint8_t len = h[1] & 0x7f;
    return len == 126 ? 4 : len == 127 ? 10 : 2;
}

static uint64_t payload_size(const uint8_t *h)
{
    uint8_t len = h[1] & 0x7f;
    if (len < 126)
        return len;
    uint64_t v = 0;
    size_t n = len == 126 ? 2 : 8;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | h[2 + i];
    return v;
}

/* Count the frames in buf (bytes of the stream after the handshake). */
static void frames(client_t *c, const uint8_t *buf, size_t len, uint64_t *messages)
{
    size_t i = 0;
    while (i < len) {
        if (c->need > 0) {
            size_t k = len - i < c->need ? len - i : (size_t)c->need;
            c->need -= k;
            i += k;
            continue;
        }
        c->hdr[c->hdr_len++] = buf[i++];
        if (c->hdr_len < 2 || c->hdr_len < header_size(c->hdr))
            continue;
        c->need = payload_size(c->hdr);
        if (c->hdr[0] & 0x80) /* FIN: a whole message */
            (*messages)++;
        c->hdr_len = 0;
    }
}

int main(int argc, char **argv)
{
    int port = 0;
    long n = 200;
    double secs = 10;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (i + 1 < argc && strcmp(a, "--port") == 0) {
            port = atoi(argv[++i]);
        } else if (i + 1 < argc && strcmp(a, "-n") == 0) {
            n = strtol(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(a, "-d") == 0) {
            secs = strtod(argv[++i], NULL);
        } else {
            fprintf(stderr, "tally-bench-ws: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || n < 1 || n > CLIENTS_MAX || !(secs > 0)) {
        fprintf(stderr, "tally-bench-ws: --port 1..65535, -n 1..%d and -d > 0 are needed\n",
                CLIENTS_MAX);
        return 2;
    }
    client_t *cl = calloc((size_t)n, sizeof *cl);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (cl == NULL || ep < 0) {
        perror("tally-bench-ws");
        return 1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (long i = 0; i < n; i++) {
        client_t *c = &cl[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            fprintf(stderr, "tally-bench-ws: connection %ld: %s\n", i, strerror(errno));
            return 1;
        }
        char req[256];
        int len = snprintf(req, sizeof req,
                           "GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n",
                           port);
        if (write(c->fd, req, (size_t)len) != len) {
            fprintf(stderr, "tally-bench-ws: connection %ld: cannot send the handshake\n", i);
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    uint64_t messages = 0, bytes = 0;
    long open = 0, closed = 0, refused = 0;
    int64_t end = bench_time_ns() + (int64_t)(secs * 1e9);
    static uint8_t buf[1 << 16];
    struct epoll_event evs[256];
    while (bench_time_ns() < end) {
        int k = epoll_wait(ep, evs, 256, 100);
        for (int e = 0; e < k; e++) {
            client_t *c = evs[e].data.ptr;
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r <= 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                closed++;
                continue;
            }
            bytes += (uint64_t)r;
            size_t off = 0;
            if (!c->open) {
                /* the handshake's answer, up to its blank line */
                while (off < (size_t)r && c->head_len < sizeof c->head - 1) {
                    c->head[c->head_len++] = (char)buf[off++];
                    c->head[c->head_len] = '\0';
                    if (c->head_len >= 4 && strcmp(c->head + c->head_len - 4, "\r\n\r\n") == 0)
                        break;
                }
                if (c->head_len < 4 || strcmp(c->head + c->head_len - 4, "\r\n\r\n") != 0)
                    continue;
                if (strncmp(c->head, "HTTP/1.1 101", 12) != 0) {
                    refused++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    continue;
                }
                c->open = true;
                open++;
            }
            frames(c, buf + off, (size_t)r - off, &messages);
        }
    }
    for (long i = 0; i < n; i++)
        close(cl[i].fd);
    close(ep);
    free(cl);
    printf("tally-bench-ws: %ld of %ld connections opened (%ld refused, %ld closed by the "
           "server), %" PRIu64 " messages, %.1f MB in %.1f s\n",
           open, n, refused, closed, messages, bytes / 1e6, secs);
    if (json)
        printf("{\"clients\":%ld,\"opened\":%ld,\"refused\":%ld,\"closed\":%ld,"
               "\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"duration_s\":%.3f}\n",
               n, open, refused, closed, messages, bytes, secs);
    return open == n && closed == 0 ? 0 : 1;
}
