"""A real Redis Cluster for the tests: three ``redis-server`` masters on loopback TCP,
each with a third of the slots, nothing saved (greenchat/backplane/private_redis.py,
PrivateCluster), made of the tests' RedisServer (a plain client to look at each).

    with RedisCluster() as cluster:
        url = cluster.url  # redis://127.0.0.1:PORT/0, any node's address will do
"""

from __future__ import annotations

from redis_server import RedisServer

from greenchat.backplane.private_redis import PrivateCluster

__all__ = ["RedisCluster"]


class RedisCluster(PrivateCluster):
    def __init__(self) -> None:
        super().__init__(3, RedisServer)
