"""A storm of connections goes through the registration lane (--registration-slice):
every one of them registers, some of their work waited for a later pass of the loop
(the metric counts it), and a registered user is answered meanwhile."""

from __future__ import annotations

import socket
import time

STORM = 300


def read_until(sock: socket.socket, marker: bytes, deadline: float) -> bytes:
    data = b""
    while marker not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, f"closed before {marker!r}: {data[-200:]!r}"
        data += chunk
    return data


def test_a_storm_of_connections_all_register_through_the_lane(make_server, connect):
    # A slice shorter than one registration: any pass of the loop that finds two
    # connections registering makes the second wait (at 1 ms a quick machine could
    # fit every pass's work in its slice).
    server = make_server(registration_slice=0.00005)
    watcher = connect("watcher")
    lane = server.server.registration_lane
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(STORM)]
    try:
        for index, sock in enumerate(socks):
            sock.sendall(f"CAP LS 302\r\nNICK s{index}\r\nUSER u 0 * :u\r\nCAP END\r\n".encode())
        watcher.send("PING :still-here")
        watcher.expect(r" PONG \S+ :?still-here$", timeout=30)
        deadline = time.monotonic() + 45
        for index, sock in enumerate(socks):
            read_until(sock, f" 001 s{index} ".encode(), deadline)
    finally:
        for sock in socks:
            sock.close()
    assert lane.waits > 0
    assert lane.waiting == 0
