"""A real Redis Cluster for the tests: three ``redis-server`` masters on loopback TCP
(a cluster cannot run on Unix sockets: its nodes tell clients where a slot lives by
address), each with a third of the 16,384 slots and no replicas, nothing saved.

    with RedisCluster() as cluster:
        url = cluster.url  # redis://127.0.0.1:PORT/0, any node's address will do

The ports are picked free by the kernel (bound to port 0, then released) just before
each server starts; a clash with another process in between fails the start, which
is tried again with new ports.
"""

from __future__ import annotations

import socket
import time

import redis
from redis_server import RedisServer

__all__ = ["RedisCluster"]

MASTERS = 3
SLOTS = 16384
FORM_DEADLINE = 20.0  # seconds until every node says cluster_state:ok
START_TRIES = 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisCluster:
    """Three cluster-enabled redis-servers that know each other and share the slots."""

    def __init__(self) -> None:
        self.servers: list[RedisServer] = []
        self.addresses: list[tuple[int, int]] = []  # (client port, cluster bus port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.addresses[0][0]}/0"

    def clients(self) -> list[redis.Redis]:
        """A plain client of each node (tests use them to look at the cluster)."""
        return [redis.Redis(port=port, socket_timeout=5) for port, _ in self.addresses]

    def start(self) -> RedisCluster:
        for attempt in range(START_TRIES):
            try:
                self._start_servers()
                break
            except RuntimeError:  # a port taken between the probe and the start
                self.stop()
                if attempt == START_TRIES - 1:
                    raise
        self._form()
        return self

    def _start_servers(self) -> None:
        for _ in range(MASTERS):
            port, bus = _free_port(), _free_port()
            server = RedisServer(
                "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-port", str(bus),
                "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                "--enable-debug-command", "local",  # DEBUG SLEEP: a test's slow shard
            )  # fmt: skip
            self.servers.append(server)
            self.addresses.append((port, bus))
            server.start()

    def _form(self) -> None:
        """Give each node its third of the slots, introduce them, wait until all agree."""
        clients = self.clients()
        try:
            share = SLOTS // MASTERS
            for index, client in enumerate(clients):
                last = SLOTS - 1 if index == MASTERS - 1 else (index + 1) * share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", index * share, last)
            first_port, first_bus = self.addresses[0]
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", first_port, first_bus)
            deadline = time.monotonic() + FORM_DEADLINE
            while not all(self._ready(client) for client in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not form in {FORM_DEADLINE:g} s")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    @staticmethod
    def _ready(client: redis.Redis) -> bool:
        info = client.execute_command("CLUSTER INFO")
        return info.get("cluster_state") == "ok" and int(info["cluster_known_nodes"]) == MASTERS

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers, self.addresses = [], []

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
