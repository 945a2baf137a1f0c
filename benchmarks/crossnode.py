"""What a channel message costs each node when it crosses from one node to another.

Two ``greenchat-serve --backplane`` nodes share a private ``redis-server`` on a Unix
socket (greenchat/backplane/private_redis.py). One sender on node A writes M lines to
``#x`` in one ``sendall``; R members of ``#x`` on node B receive every one. Over the
window from the send to the last delivery the script reads the CPU time of A, of B and
of redis-server, and reports each per message:

* A's: the sender's node parses, applies and publishes each line once, whatever R is;
* B's: the members' node reads each line from Redis once and fans it out to its R
  members: its cost per message minus R times what one delivery costs (the slope of a
  least-squares line through the single server's costs over R) is what crossing costs
  it (``b_fixed_us``);
* redis-server's: one PUBLISH in, one message out per subscribed node (with
  ``--cluster``, the three shards' of a private Redis Cluster added up: the log on one,
  ``#x`` on the shard of its slot, SPUBLISH).

The same room on one server (``single``: sender and members on one process) runs
right after each network case, so the two are compared in the same minutes. The
issue's target (issue 16): each node at most 30 µs of CPU per cross-node channel
message, whatever the room's size (``TARGET_US``).

Usage::

    python benchmarks/crossnode.py [--rooms 1,10,100,1000] [--lines 20000] [--repeat 3]
        [--cluster] [--out benchmarks/results/crossnode.json]
    python benchmarks/crossnode.py --paired [--rooms 100,1000] [--repeat 8] [--out ...]

``--paired`` sets a network on a single Redis, one on a 3-shard cluster and one server
up side by side, the same room on each, and takes their bursts in turn: what a cluster
costs the nodes against a single Redis, measured in the same minutes.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import servers  # noqa: E402
from loadgen import (  # noqa: E402
    close_all,
    connect,
    connect_all,
    cpu_seconds,
    finish_sync,
    join_storm,
    machine_info,
    raise_fd_limit,
)

from greenchat.backplane.private_redis import PrivateCluster, PrivateRedis  # noqa: E402

TARGET_US = 30.0
CHANNEL = "#x"
HOST = "127.0.0.1"
LISTEN_RE = re.compile(r"listening on \S+:(\d+)")
NODE_FLAGS = (
    "--host", HOST, "--port", "0", "--no-web", "--db", ":memory:", "--flood-rate", "0",
    "--sendq", str(servers.GREENCHAT_SENDQ), "--log-level", "WARNING", "--max-clients", "20000",
)  # fmt: skip
DELIVERY_DEADLINE = 300.0
DELIVERIES_CAP = 2_000_000  # a burst to a big room has fewer lines (the reader's limit)


class Node:
    """One greenchat-serve process (a node with ``backplane``, or a single server)."""

    def __init__(self, backplane: str | None, network: str, log: Path | None = None) -> None:
        extra = ("--backplane", backplane, "--network", network) if backplane else ()
        self.log = log
        self.proc = subprocess.Popen(
            [*servers._greenchat_cmd(), *NODE_FLAGS, *extra],
            stdout=subprocess.PIPE,
            stderr=log.open("ab") if log else subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        servers.record_pid(self.proc.pid)
        line = self.proc.stdout.readline()
        match = LISTEN_RE.search(line)
        if not match:
            self.stop()
            raise RuntimeError(f"greenchat-serve did not start: {line!r}")
        self.port = int(match[1])
        self.pid = self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stdout.close()


@contextlib.contextmanager
def network(redis: PrivateRedis | PrivateCluster, name: str) -> Iterator[tuple[Node, Node]]:
    a = Node(redis.url, name)
    try:
        b = Node(redis.url, name)
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def room(sender_port: int, member_port: int, members: int, tag: str):
    """``members`` clients of ``member_port`` and one sender of ``sender_port`` in
    #x, every JOIN seen by everyone; (sender, members)."""
    fleet = connect_all(HOST, member_port, range(members))
    join_storm(fleet, 0, CHANNEL, f"{tag}.j")
    finish_sync(fleet, 0, f"{tag}.j")
    sender = connect(HOST, sender_port, members)
    sender.send(f"JOIN {CHANNEL}\r\n".encode())
    sender.drain_until(f" 366 {sender.nick} ".encode())
    joined = f"{sender.nick}!".encode()
    jobs = [gevent.spawn(member.drain_until, joined) for member in fleet]  # its JOIN, there
    gevent.joinall(jobs, raise_error=True, timeout=DELIVERY_DEADLINE)
    return sender, fleet


def burst(sender, fleet, lines: int, pids: dict[str, int | list[int]]) -> dict[str, Any]:
    """The sender writes ``lines`` lines at once; CPU per message of each process (of
    each list of processes, added up: a cluster's shards)."""
    data = b"".join(f"PRIVMSG {CHANNEL} :line {n} of the burst\r\n".encode() for n in range(lines))
    for member in fleet:
        member.count = 0
    before = {name: _cpu(pid) for name, pid in pids.items()}
    started = time.monotonic()
    jobs = [gevent.spawn(member.receive, lines) for member in fleet]
    sender.send(data)
    gevent.joinall(jobs, raise_error=True, timeout=DELIVERY_DEADLINE)
    wall = time.monotonic() - started
    if any(member.count < lines for member in fleet):
        raise RuntimeError(f"not every line arrived within {DELIVERY_DEADLINE:g} s")
    result: dict[str, Any] = {"wall_s": round(wall, 3), "messages_per_s": round(lines / wall)}
    for name, pid in pids.items():
        spent = _cpu(pid) - before[name]
        result[f"{name}_us"] = round(spent / lines * 1e6, 2)
    return result


def _cpu(pids: int | list[int]) -> float:
    """CPU seconds (user + system) of one process or of several."""
    each = pids if isinstance(pids, list) else [pids]
    return sum((cpu_seconds(pid) or (0.0, 0.0, 0.0))[2] for pid in each)


def measure(redis: PrivateRedis | PrivateCluster, members: int, lines: int, repeat: int, run: int):
    """Network then single, ``repeat`` times in turn; the repetitions of each."""
    runs: dict[str, list[dict[str, Any]]] = {"network": [], "single": []}
    with network(redis, f"bench{run}") as (a, b):
        sender, fleet = room(a.port, b.port, members, f"n{run}")
        shards = redis.pids if isinstance(redis, PrivateCluster) else redis.pid
        pids: dict[str, int | list[int]] = {"a": a.pid, "b": b.pid, "redis": shards}
        try:
            single = Node(None, "")
            try:
                lone_sender, lone_fleet = room(single.port, single.port, members, f"s{run}")
                for _ in range(repeat):
                    runs["network"].append(burst(sender, fleet, lines, pids))
                    runs["single"].append(
                        burst(lone_sender, lone_fleet, lines, {"single": single.pid})
                    )
                close_all([lone_sender, *lone_fleet])
            finally:
                single.stop()
        finally:
            close_all([sender, *fleet])
    return runs


def measure_paired(
    backplanes: dict[str, PrivateRedis | PrivateCluster],
    members: int,
    lines: int,
    repeat: int,
    run: int,
) -> dict[str, list[dict[str, Any]]]:
    """A network on each backplane and one server, the same room on each, their bursts
    taken in turn: a comparison made in the same minutes (this machine's speed drifts
    by a third within an hour, more than the backplanes differ)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in (*backplanes, "single")}
    with contextlib.ExitStack() as stack:
        rooms = {}
        for name, redis in backplanes.items():
            a, b = stack.enter_context(network(redis, f"pair{run}{name}"))
            shards = redis.pids if isinstance(redis, PrivateCluster) else redis.pid
            rooms[name] = (*room(a.port, b.port, members, f"p{run}{name}"),
                           {"a": a.pid, "b": b.pid, "redis": shards})  # fmt: skip
        single = Node(None, "")
        stack.callback(single.stop)
        rooms["single"] = (*room(single.port, single.port, members, f"p{run}s"),
                           {"single": single.pid})  # fmt: skip
        for _ in range(repeat):
            for name, (sender, fleet, pids) in rooms.items():
                runs[name].append(burst(sender, fleet, lines, pids))
        for sender, fleet, _ in rooms.values():
            close_all([sender, *fleet])
    return runs


def paired(rooms: list[int], lines: int, repeat: int) -> dict[str, Any]:
    """``--paired``: B's cost on a single Redis and on a cluster, against one server's."""
    cases: dict[str, Any] = {}
    with PrivateRedis() as single_redis, PrivateCluster() as cluster:
        for pid in [single_redis.pid, *cluster.pids]:
            servers.record_pid(pid)
        backplanes = {"redis": single_redis, "cluster": cluster}
        print("members | A redis | A cluster | B redis | B cluster | one server | B cluster/redis")
        for run, members in enumerate(rooms):
            burst_lines = min(lines, max(200, DELIVERIES_CAP // members))
            runs = measure_paired(backplanes, members, burst_lines, repeat, run)
            found = {name: medians(each) for name, each in runs.items()}
            ratio = round(found["cluster"]["b_us"] / found["redis"]["b_us"], 3)
            cases[str(members)] = {"lines": burst_lines, "medians": found, "runs": runs,
                                   "b_cluster_vs_redis": ratio}  # fmt: skip
            print(f"{members:>7} | {found['redis']['a_us']:>7} | {found['cluster']['a_us']:>9} | "
                  f"{found['redis']['b_us']:>7} | {found['cluster']['b_us']:>9} | "
                  f"{found['single']['single_us']:>10} | {ratio}")  # fmt: skip
    return cases


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = runs[0].keys()
    return {key: round(statistics.median(run[key] for run in runs), 2) for key in keys}


def slope(points: list[tuple[int, float]]) -> float:
    """Least squares: CPU per message against members; µs per delivery."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / spread if spread else 0.0


def report(cases: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per room size: each process's µs per message; B's fixed part; the target."""
    single = [(members, case["single"]["single_us"]) for members, case in cases.items()]
    per_delivery = slope(single) if len(single) > 1 else 0.0
    rows = {}
    for members, case in cases.items():
        net = case["network"]
        b_fixed = net["b_us"] - members * per_delivery
        rows[members] = {
            **net,
            "single_us": case["single"]["single_us"],
            "b_fixed_us": round(b_fixed, 2),
            "network_total_vs_single": round(
                (net["a_us"] + net["b_us"] + net["redis_us"]) / case["single"]["single_us"], 3
            ),
        }
    worst = max(max(row["a_us"], row["b_fixed_us"]) for row in rows.values())
    return {
        "single_us_per_delivery": round(per_delivery, 3),
        "rows": rows,
        "worst_node_us": round(worst, 2),
        "target_us": TARGET_US,
        "met": worst <= TARGET_US,
    }


def print_table(summary: dict[str, Any]) -> None:
    print("members | A µs/msg | B µs/msg | B fixed µs | redis µs | single µs | net/single")
    for members, row in summary["rows"].items():
        print(
            f"{members:>7} | {row['a_us']:>8} | {row['b_us']:>8} | {row['b_fixed_us']:>10} | "
            f"{row['redis_us']:>8} | {row['single_us']:>9} | {row['network_total_vs_single']}"
        )
    met = "met" if summary["met"] else "NOT met"
    print(
        f"worst node: {summary['worst_node_us']} µs per cross-node message "
        f"(target <= {TARGET_US:g}: {met}); one delivery costs "
        f"{summary['single_us_per_delivery']} µs on one server"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", default="1,10,100,1000", help="members on node B, comma-separated")
    p.add_argument(
        "--lines",
        type=int,
        default=20000,
        help=f"lines per burst (fewer in big rooms: at most {DELIVERIES_CAP:,} deliveries a burst)",
    )
    p.add_argument("--repeat", type=int, default=3, help="bursts per case (medians)")
    p.add_argument(
        "--cluster", action="store_true", help="the nodes on a private 3-shard Redis Cluster"
    )
    p.add_argument(
        "--paired",
        action="store_true",
        help="a single Redis, a cluster and one server side by side, bursts in turn",
    )
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    servers.exit_on_sigterm()
    rooms = [int(part) for part in args.rooms.split(",")]
    raise_fd_limit(max(rooms) * (6 if args.paired else 2) + 100)
    started = time.monotonic()
    if args.paired:
        document = {"benchmark": "crossnode-paired", "params": vars(args) | {"out": None},
                    "cases": paired(rooms, args.lines, args.repeat)}  # fmt: skip
        document |= {"elapsed_s": round(time.monotonic() - started, 1), "machine": machine_info()}
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(document, indent=2) + "\n")
            print(f"wrote {args.out}")
        return 0
    cases: dict[int, dict[str, Any]] = {}
    with PrivateCluster() if args.cluster else PrivateRedis() as redis:
        for pid in redis.pids if args.cluster else [redis.pid]:
            servers.record_pid(pid)
        for run, members in enumerate(rooms):
            # At most DELIVERIES_CAP deliveries a burst: one generator process reads them.
            lines = min(args.lines, max(200, DELIVERIES_CAP // members))
            runs = measure(redis, members, lines, args.repeat, run)
            cases[members] = {kind: medians(found) for kind, found in runs.items()}
            cases[members]["runs"] = runs
            cases[members]["lines"] = lines
            print(f"-- {members} members: {cases[members]['network']} | {cases[members]['single']}")
    summary = report({m: {k: c[k] for k in ("network", "single")} for m, c in cases.items()})
    print_table(summary)
    if args.out:
        document = {
            "benchmark": "crossnode",
            "params": {
                "rooms": rooms,
                "lines": args.lines,
                "repeat": args.repeat,
                "cluster": args.cluster,
                "deliveries_cap": DELIVERIES_CAP,
            },
            "elapsed_s": round(time.monotonic() - started, 1),
            "machine": machine_info(),
            "cases": {str(m): c for m, c in cases.items()},
            "summary": summary,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
