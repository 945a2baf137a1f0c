"""A departed session is freed by reference counting, not left to the garbage collector.

A session that ends in a reference cycle waits for a full collection, and a storm of
departures (issue 14's thousand logins) then hands the collector tens of thousands of
objects at once, which stops the event loop for 100 ms or more. With the collector
off, every Session object must be gone once its client has left: by TCP, after a
SCRAM login, and over a WebSocket.
"""

from __future__ import annotations

import gc
import time

import pytest
from transcript import register_account
from ws_client import WsClient

from greenchat.client import IrcClient as LibraryClient
from greenchat.server.session import Session

PASSWORD = "c0rrect-h0rse"


def sessions_alive() -> int:
    return sum(type(o) is Session for o in gc.get_objects())


def wait_until_no_session(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (alive := sessions_alive()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert alive == 0, f"{alive} departed session(s) kept alive (a reference cycle?)"


@pytest.fixture
def collector_off():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_departed_sessions_are_freed_at_once(server, connect, collector_off):
    register_account(server.port, "alice", PASSWORD)
    wait_until_no_session()  # the REGISTER connection's too

    plain = connect("plain")
    plain.join("#room")
    plain.send("QUIT :bye")
    plain.expect_closed()

    scram = LibraryClient("127.0.0.1", server.port, "alice", sasl=("alice", PASSWORD))
    scram.connect(timeout=10)
    assert scram.account == "alice"
    scram.close()

    web = WsClient(server.server.web_address)
    try:
        web.handshake()
        web.send_lines("NICK webby", "USER w 0 * :W")
        web.expect(r" 001 webby ")
    finally:
        web.close()

    vanished = connect("vanished")  # no QUIT: the socket just closes
    vanished.close()

    wait_until_no_session()
