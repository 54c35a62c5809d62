"""ws_client.py - the WebSocket client of the tally-web tests
(test_web.py, test_web_keys.py): enough of RFC 6455 to open
/api/v1/stream on 127.0.0.1 and read whole text messages as JSON.
fail(msg) is the test's own: it reports and stops the test."""

import base64
import json
import os
import socket
import struct


def ws_open(port, path, fail):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "\r\n" % (path, port, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            fail("WebSocket: connection closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        fail("WebSocket: %r" % head[:80])
    return s


def recv_exact(s, n, fail):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            fail("WebSocket: closed")
        b += c
    return b


def ws_message(s, fail):
    """One whole text message (frames from the server are not masked)."""
    data = b""
    while True:
        b0, b1 = recv_exact(s, 2, fail)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", recv_exact(s, 2, fail))[0]
        elif n == 127:
            n = struct.unpack(">Q", recv_exact(s, 8, fail))[0]
        payload = recv_exact(s, n, fail)
        op = b0 & 0x0F
        if op in (1, 0):
            data += payload
            if b0 & 0x80:
                return json.loads(data.decode())
        elif op == 8:
            fail("WebSocket: closed by the server")
