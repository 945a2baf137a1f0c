"""Listening sockets: accept that survives running out of descriptors, and TLS.

gevent's ``StreamServer`` already pauses accepting after an error, but it
prints a traceback for every failed ``accept``. When the process runs out of
file descriptors (EMFILE) every pending connection fails the same way, so
:class:`Listener` logs the condition once, stops accepting, retries on a
doubling timer (10 ms up to 1 s, never a busy loop) and logs again once an
``accept`` succeeds.

TLS sockets are wrapped by the connection handler, not here, so that the
handshake runs under its own timeout in the connection's greenlet
(:func:`tls_handshake`).
"""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path

import gevent
from gevent import socket as gsocket
from gevent import ssl as gssl
from gevent.server import StreamServer

from greenchat.server.config import show_address

__all__ = [
    "ListenError",
    "Listener",
    "TlsHandshakeError",
    "make_tls_context",
    "show_address",
    "tls_handshake",
]

log = logging.getLogger("greenchat.listener")

# accept() errors that mean "no resources right now", not "this client failed".
RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
MIN_PAUSE = 0.01
MAX_PAUSE = 1.0


class ListenError(Exception):
    """A listening socket could not be opened; the message says where and why, in one line."""

    @classmethod
    def of(cls, host: str, port: int, exc: OSError) -> ListenError:
        why = (exc.strerror or str(exc)).removesuffix(f": {(host, port)!r}")  # gevent adds it
        return cls(f"cannot listen on {show_address(host, port)}: {why}")


# Connections the kernel may hold before accept(): gevent's default, 128, overflows when
# a thousand clients connect at once (a reconnect storm, a login storm), and each one
# dropped retries only after a second. The kernel caps it at net.core.somaxconn.
BACKLOG = 4096


class Listener(StreamServer):
    """A StreamServer that pauses (and says so once) while descriptors run out.

    ``reuse_port``: bind with SO_REUSEPORT, so that the workers of ``--workers`` listen on
    one port and the kernel spreads new connections over them (workers.py).
    """

    def __init__(self, *args, reuse_port: bool = False, **kwargs) -> None:
        kwargs.setdefault("backlog", BACKLOG)
        super().__init__(*args, **kwargs)
        self.reuse_port = reuse_port
        self.exhausted = False
        self._pause = MIN_PAUSE
        self._resume_later: gevent.Greenlet | None = None

    def start(self) -> None:
        """Bind and listen; :class:`ListenError` (not a traceback) if that fails."""
        try:
            super().start()
        except OSError as exc:  # unknown host (gaierror), address in use, no permission
            raise ListenError.of(*self.address[:2], exc) from None

    def get_listener(self, address, backlog=None, family=None):
        if not self.reuse_port:
            return super().get_listener(address, backlog, family)
        sock = gsocket.socket(family=family or socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog or self.backlog)
        sock.setblocking(False)
        return sock

    def do_read(self):
        try:
            accepted = super().do_read()
        except OSError as exc:
            if exc.errno not in RESOURCE_ERRORS:
                raise
            self._out_of_resources(exc)
            return None
        if accepted and self.exhausted:
            self.exhausted = False
            self._pause = MIN_PAUSE
            log.warning("accepting connections again")
        return accepted

    def _out_of_resources(self, exc: OSError) -> None:
        if not self.exhausted:
            self.exhausted = True
            log.error(
                "cannot accept connections: %s; retrying quietly until descriptors free up",
                exc.strerror or exc,
            )
        self.stop_accepting()
        self._resume_later = gevent.spawn_later(self._pause, self._resume)
        self._pause = min(MAX_PAUSE, self._pause * 2)

    def _resume(self) -> None:
        self._resume_later = None
        if self.started:
            self.start_accepting()

    def stop(self, timeout=None) -> None:
        if self._resume_later is not None:
            self._resume_later.kill(block=False)
        super().stop(timeout)


class TlsHandshakeError(Exception):
    """The TLS handshake failed or did not finish in time."""


def make_tls_context(cert: Path, key: Path, client_ca: Path | None = None) -> gssl.SSLContext:
    """A server-side context for ``cert`` and ``key``; OSError/SSLError when unusable.

    With ``client_ca``, clients may present a certificate those CAs issued (it is
    checked; one they did not issue fails the handshake). The standard library
    cannot accept any self-signed client certificate, as Ergo does: a site CA it is.
    """
    # gevent's SSLContext (not ssl.create_default_context, which returns the
    # blocking standard-library class) so wrapped sockets cooperate.
    context = gssl.SSLContext(gssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = gssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        context.verify_mode = gssl.CERT_OPTIONAL
        context.load_verify_locations(str(client_ca))
    return context


def tls_handshake(context: gssl.SSLContext, sock: socket.socket, timeout: float):
    """Wrap ``sock`` and complete the handshake within ``timeout`` seconds."""
    tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    try:
        with gevent.Timeout(timeout, TlsHandshakeError("TLS handshake timed out")):
            tls.do_handshake()
    except OSError as exc:  # SSLError is an OSError
        tls.close()
        raise TlsHandshakeError(f"TLS handshake failed: {exc}") from None
    except BaseException:
        tls.close()
        raise
    return tls
