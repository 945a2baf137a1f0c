"""redis-py connections on gevent sockets, without monkey-patching.

greenchat patches the standard library only in its entry points (DESIGN.md,
decision 7); a server started by a test, or embedded, runs on an unpatched
interpreter, where redis-py's own sockets would block the whole event loop.
These connection classes make the same connections from ``gevent.socket``, so
a greenlet waiting on Redis lets every other greenlet run. Each client made
here is used by one greenlet at a time (the backplane's publisher, its
listener, its control loop): redis-py's pool lock is then never contended.

A URL may name one node of a Redis Cluster: :func:`is_cluster` asks it, and
:func:`client_for` then makes a :class:`redis.RedisCluster`, whose connections to
every node are gevent's too.
"""

from __future__ import annotations

from typing import Any

import redis
from gevent import socket as gsocket
from gevent import ssl as gssl
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

__all__ = ["FAILURES", "client_for", "is_cluster"]

# What a Redis that fails underneath raises (a cluster client raises some errors,
# a slot no shard serves, of a class of their own).
FAILURES = (redis.RedisError, RedisClusterException, OSError)


class GeventConnection(redis.Connection):
    """TCP, as redis-py makes it, on a gevent socket."""

    def _connect(self) -> Any:
        sock = gsocket.create_connection(
            (self.host, self.port), timeout=self.socket_connect_timeout
        )
        sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
        if self.socket_keepalive:
            sock.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_KEEPALIVE, 1)
        sock.settimeout(self.socket_timeout)
        return sock


class GeventSSLConnection(GeventConnection):
    """``rediss://``: TLS with gevent's ssl module (cooperative handshake and reads)."""

    def __init__(self, ssl_ca_certs: str | None = None, ssl_cert_reqs: Any = "required",
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.ssl_ca_certs = ssl_ca_certs
        self.ssl_cert_reqs = ssl_cert_reqs

    def _connect(self) -> Any:
        sock = super()._connect()
        context = gssl.create_default_context(cafile=self.ssl_ca_certs)
        if self.ssl_cert_reqs in ("none", None, gssl.CERT_NONE):
            context.check_hostname = False
            context.verify_mode = gssl.CERT_NONE
        return context.wrap_socket(sock, server_hostname=self.host)


class GeventUnixConnection(redis.UnixDomainSocketConnection):
    """``unix://``: a Unix socket, on gevent."""

    def _connect(self) -> Any:
        sock = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
        sock.settimeout(self.socket_connect_timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.socket_timeout)
        return sock


_CLASSES = {"redis": GeventConnection, "rediss": GeventSSLConnection, "unix": GeventUnixConnection}


def client_for(url: str, cluster: bool = False, **options: Any) -> redis.Redis:
    """A client of ``url`` (``redis://``, ``rediss://`` or ``unix://``) whose
    connections are gevent's; ``options`` go to the pool (timeouts...). ``cluster``:
    the URL names a node of a Redis Cluster (:func:`is_cluster`), and the client
    finds the others from it."""
    scheme = url.split("://", 1)[0]
    if scheme not in _CLASSES:
        raise ValueError(f"{url!r}: a backplane is redis://, rediss:// or unix://")
    if cluster:
        if scheme == "unix":
            raise ValueError(f"{url!r}: a Redis Cluster is reached over TCP")
        try:  # it asks the node for the others at once
            return RedisCluster.from_url(url, connection_class=_CLASSES[scheme], **options)
        except RedisClusterException as exc:
            raise redis.ConnectionError(f"the cluster at {url!r}: {exc}") from None
    pool = redis.ConnectionPool.from_url(url, **options)
    pool.connection_class = _CLASSES[scheme]
    return redis.Redis(connection_pool=pool)


def is_cluster(url: str, timeout: float = 3.0) -> bool | None:
    """Whether the Redis at ``url`` is a node of a cluster (``INFO cluster``); None
    when it cannot be asked now."""
    if url.startswith("unix://"):
        return False
    client = client_for(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(int(client.info("cluster").get("cluster_enabled", 0)))
    except (*FAILURES, ValueError):
        return None
    finally:
        client.close()
