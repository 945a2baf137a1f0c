"""A link between a node and Redis that a test can make slow or cut."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

__all__ = ["DribblingLink"]


class DribblingLink:
    """A TCP proxy to the Redis of ``url`` (a Unix socket) that hands Redis's bytes on
    in pieces of PIECE bytes, each after a pause of ``pause`` seconds: a slow or busy
    link (or, with a long pause, a node that lags behind the network). While
    ``refusing``, it closes each new connection at once (a node cut off from Redis)."""

    PIECE = 1500

    def __init__(self, url: str, pause: float = 0.0005) -> None:
        self.pause = pause
        self.refusing = False
        self.path = url.removeprefix("unix://").split("?")[0]
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.open: list[socket.socket] = []

    def __enter__(self) -> DribblingLink:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.listener.close()
        for sock in self.open:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                if self.refusing:
                    client.close()
                    continue
                server = socket.socket(socket.AF_UNIX)
                server.connect(self.path)
                self.open += [client, server]
                threading.Thread(target=self._pipe, args=(client, server, 0), daemon=True).start()
                threading.Thread(target=self._pipe, args=(server, client, self.PIECE),
                                 daemon=True).start()  # fmt: skip

    def _pipe(self, source: socket.socket, sink: socket.socket, piece: int) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not piece:
                    sink.sendall(data)
                    continue
                for at in range(0, len(data), piece):
                    time.sleep(self.pause)
                    sink.sendall(data[at : at + piece])
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
