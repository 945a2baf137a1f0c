"""A TCP relay in front of a server that keeps every line its clients send.

Real clients are configured, not scripted: a setting with a typo falls back to
a default silently. A test that must know what a client said (which SASL
mechanism weechat chose, that the password never crossed the wire) points the
client at a :class:`LineTap` and reads :attr:`LineTap.sent`.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from transcript import wait_for

__all__ = ["LineTap"]


class LineTap:
    """Listens on 127.0.0.1 (port :attr:`port`), relays each connection to
    ``host:port`` both ways, and records the client-to-server lines."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, port)
        self.sent: list[str] = []  # every line clients sent, in order, without CRLF
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # accept() wakes up to notice close()
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="line-tap", daemon=True).start()

    def text(self) -> str:
        return "\n".join(self.sent)

    def wait_sent(self, pattern: str, timeout: float = 10.0) -> str:
        """Wait until a line clients sent matches ``pattern`` (re.M); all of them."""
        return wait_for(self.text, pattern, "lines sent through the tap", timeout)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            for args in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pipe, args=args, daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
                if record:
                    *lines, pending = (pending + data).split(b"\n")
                    self.sent += [raw.rstrip(b"\r").decode("utf-8", "replace") for raw in lines]
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)  # pass the end of the stream on

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
