"""Diagnostic: the garbage collector's pauses during the logins workload's storms.

Runs ``workloads/logins.py`` (N=1000, 3 storms all at once, each followed by one
with 50 in flight, as ``bench.py`` does) against greenchat-serve started under a
wrapper that times every collection with ``gc.callbacks`` and writes those of
generation 2, and any over 5 ms, to the server's log with their
CLOCK_MONOTONIC end time. Nothing of the server is changed: the wrapper only
imports ``greenchat.cli`` and calls ``serve_main()``. Prints each storm's window
with the collections that ended in it, and its PING round trip p99.

    .venv/bin/python benchmarks/results/issue14/gc_pauses.py [N] [REPEAT]
"""

from gevent import monkey

monkey.patch_all()

import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/

import servers  # noqa: E402
from workloads import Options, logins  # noqa: E402

WRAPPER = r"""
import gc, sys, time
started = {}

def timed(phase, info):
    if phase == "start":
        started["t"] = time.perf_counter()
        return
    ms = (time.perf_counter() - started["t"]) * 1000
    if info["generation"] == 2 or ms > 5:
        sys.stderr.write(f"GC gen{info['generation']} {ms:.1f} ms collected"
                         f" {info['collected']} end {time.monotonic():.3f}\n")
        sys.stderr.flush()

gc.callbacks.append(timed)
import greenchat.cli
sys.argv[0] = "greenchat-serve"
sys.exit(greenchat.cli.serve_main())
"""
GC_RE = re.compile(r"^GC gen(\d) ([\d.]+) ms collected (\d+) end ([\d.]+)$", re.MULTILINE)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    servers._greenchat_cmd = lambda: [sys.executable, "-c", WRAPPER]
    tmp = Path(tempfile.mkdtemp(prefix="greenchat-gc-"))
    server = servers.start("greenchat", tmp, metrics=True, db=True)
    params = {"accounts": n, "chatters": 4, "rate": 50.0, "quiet": 2.0, "settle": 1.0,
              "repeat": repeat, "metrics": True, "db": True, "precompute": True,
              "deadline": 120.0, "compare_concurrency": 50}  # fmt: skip
    try:
        result = logins.run(server, params, Options())
    finally:
        servers.stop(server)
    assert server.log is not None
    pauses = [(int(g), float(ms), int(c), float(end)) for g, ms, c, end in
              GC_RE.findall(server.log.read_text())]  # fmt: skip
    for row in result["runs"]:
        start, end = row["window"]
        inside = [p for p in pauses if start <= p[3] <= end]
        big = sorted((p for p in inside if p[0] == 2), key=lambda p: -p[1])
        flight = f"{row['concurrency']} in flight" if row["concurrency"] else "all at once"
        print(
            f"storm {row['run']} ({flight}, {end - start:.2f} s): PING p99"
            f" {row['ping_p99_ms']:.1f} ms, lag histogram p99 <= {row['lag_p99_ms']:g} ms;"
            f" {len(inside)} collections over 5 ms ({sum(p[1] for p in inside):.0f} ms in all),"
            f" generation 2: "
            + (", ".join(f"{p[1]:.0f} ms ({p[2]:,} objects freed)" for p in big) or "none")
        )
    gen2 = [p for p in pauses if p[0] == 2]
    print(f"every generation-2 collection of the run: {', '.join(f'{p[1]:.0f}' for p in gen2)} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
