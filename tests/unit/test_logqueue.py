"""QueueingHandler: logging never waits for the reader of stderr."""

from __future__ import annotations

import logging
import os
import time

from greenchat.server.logqueue import QueueingHandler


def _record(text: str) -> logging.LogRecord:
    return logging.LogRecord("greenchat", logging.INFO, __file__, 1, text, None, None)


def _read_until(fd: int, needle: bytes, timeout: float = 5.0) -> bytes:
    os.set_blocking(fd, False)
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.01)
    return seen


def test_records_are_written_in_order():
    read_end, write_end = os.pipe()
    handler = QueueingHandler(write_end)
    for i in range(5):
        handler.handle(_record(f"line {i}"))
    assert _read_until(read_end, b"line 4\n") == b"".join(b"line %d\n" % i for i in range(5))
    os.close(read_end)
    os.close(write_end)


def test_a_full_pipe_drops_and_counts_instead_of_blocking():
    read_end, write_end = os.pipe()
    handler = QueueingHandler(write_end, limit=10)
    big = "x" * 1000
    started = time.monotonic()
    for _ in range(1000):  # about 1 MB: far more than the pipe holds
        handler.handle(_record(big))
    assert time.monotonic() - started < 5  # never waited for the pipe
    assert handler.dropped > 0
    text = _read_until(read_end, b"log lines dropped: stderr was not read\n")
    assert b"log lines dropped: stderr was not read\n" in text
    os.close(read_end)
    os.close(write_end)
