"""Reproduction: greenchat's sessions are freed only by the cyclic garbage collector.

Starts greenchat-serve (this tree, ``--db :memory:``) under a wrapper that sets
``gc.DEBUG_SAVEALL`` (whatever the cycle collector finds unreachable is kept in
``gc.garbage`` instead of freed) and, once a second, runs ``gc.collect()`` and
prints how many objects of each kind it found, then frees them (a collection
with SAVEALL off). Nothing of the server is changed: the wrapper only imports
``greenchat.cli`` and calls ``serve_main()``. Then N plain
clients register (NICK/USER, 001) and QUIT, and N more log in with SCRAM-SHA-256
(an account each, made with REGISTER) and QUIT.

If a session were freed by reference counting when its client leaves, the
collector would find none of them. It finds every session of the plain
clients and of the REGISTER connections, and for the SCRAM logins every
SaslAttempt and scramp ScramServer (the attempt holds the ScramServer, whose
auth_fn is a lambda holding the attempt) and some of the sessions (100-142 of
200 in our runs); each report also counts the Session objects still alive
(0 once the clients have left: nothing leaks, it is only freed late). A
session found by the collector is ~16 objects (Session, Transport, SendQueue,
User, CapNegotiation, TokenBucket, socket, bound methods, cells...). With a
thousand logins leaving at once that is ~50,000 objects for one
generation-2 collection, which took 145-215 ms on the event loop in the
logins workload (results/issue14/README.md).

    .venv/bin/python benchmarks/results/issue14/repro_session_cycles.py [N]
"""

from gevent import monkey

monkey.patch_all()

import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[2]))  # benchmarks/

import servers  # noqa: E402
from loadgen import close_all, connect_all, register_accounts  # noqa: E402

WRAPPER = r"""
import collections, gc, sys
gc.set_debug(gc.DEBUG_SAVEALL)
import gevent, greenchat.cli

def report():
    while True:
        gevent.sleep(1.0)
        gc.collect()
        kinds = collections.Counter(type(o).__qualname__ for o in gc.garbage)
        gc.set_debug(0)  # now free them for good: with SAVEALL on they would be found again
        del gc.garbage[:]
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        alive = sum(type(o).__qualname__ == "Session" for o in gc.get_objects())
        shown = {k: kinds[k] for k in ("Session", "Transport", "SendQueue", "User",
                                       "SaslAttempt", "ScramServer", "socket")}
        sys.stderr.write(f"GARBAGE {sum(kinds.values())} {shown} alive {alive}\n")
        sys.stderr.flush()

gevent.spawn(report)
sys.argv[0] = "greenchat-serve"
sys.exit(greenchat.cli.serve_main())
"""


KINDS = ("Session", "Transport", "SendQueue", "User", "SaslAttempt", "ScramServer", "socket")


def reports(log: Path) -> list[dict[str, int]]:
    """The server's GARBAGE reports so far (a dict of counts each, ``total`` too)."""
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("GARBAGE "):
            total, _, rest = line[8:].partition(" ")
            counts = {k: int(v) for k, v in re.findall(r"'(\w+)': (\d+)", rest)}
            found.append(counts | {"total": int(total)})
    return found


def collected_after(log: Path, seen: int) -> dict[str, int]:
    """The reports after the first ``seen`` added up, until two in a row found no Session."""
    end = time.monotonic() + 15
    while time.monotonic() < end:
        new = reports(log)[seen:]
        if len(new) > 2 and not any(r.get("Session", 0) for r in new[-2:]):
            return {k: sum(r.get(k, 0) for r in new) for k in (*KINDS, "total")}
        time.sleep(0.2)
    raise RuntimeError("the server's GARBAGE reports did not settle")


def phase(log: Path, name: str, work) -> int:
    seen = len(reports(log))
    work()
    found = collected_after(log, seen)
    shown = ", ".join(f"{k} {found[k]}" for k in KINDS)
    print(f"{name}: the cycle collector found {found['total']:,} objects: {shown}", flush=True)
    return found["Session"]


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    servers._greenchat_cmd = lambda: [sys.executable, "-c", WRAPPER]
    tmp = Path(tempfile.mkdtemp(prefix="greenchat-cycles-"))
    server = servers.start("greenchat", tmp)
    host, port, log = server.host, server.port, server.log
    assert log is not None
    names = [f"s{i}" for i in range(n)]
    try:
        time.sleep(2.5)  # the startup probe's session goes in the first reports
        plain = phase(log, f"{n} clients register and QUIT",
                      lambda: close_all(connect_all(host, port, range(n))))  # fmt: skip
        phase(log, f"{n} REGISTER connections close",
              lambda: register_accounts(host, port, names))  # fmt: skip
        scram = phase(log, f"{n} clients log in (SCRAM) and QUIT",
                      lambda: close_all(connect_all(host, port, range(n), prefix="s",
                                                    logins=n)))  # fmt: skip
    finally:
        servers.stop(server)
    print(
        f"sessions left to the cycle collector: {plain} of {n} plain, {scram} of {n} SCRAM"
        " (none if reference counting freed them when their clients left)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
