"""Scrape greenchat's ``/metrics`` during a benchmark: how long each scrape takes, and the counter.

``fanout.py --metrics`` starts greenchat with ``--metrics-port 0`` and, in
each repetition:

1. reads ``greenchat_deliveries_total`` just before the burst (the JOIN
   fan-out and the previous repetition are over by then);
2. runs a :class:`Scraper` while the burst is in flight: a process of its
   own (``python scrape.py URL``), as a Prometheus server is, that GETs
   ``/metrics`` every ``interval`` seconds on a fresh connection and records
   each scrape's wall time, from ``connect`` to the last byte;
3. reads the counter again once every member has every line: the rise must
   equal the deliveries the clients counted (each PRIVMSG to the channel is
   one fan-out to the N-1 members other than its sender).

A scrape is a plain HTTP/1.0 GET on a blocking socket: no HTTP library
between the timer and the server. The scraper has a process to itself
because a greenlet of the generator waits behind a thousand receivers: in
the generator's main process, scrapes the server answered within 27 ms took
up to 130 ms to be seen.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

COUNTER = "greenchat_deliveries_total"
COUNTER_RE = re.compile(rb"^greenchat_deliveries_total(?:\{[^}]*\})? (\S+)", re.MULTILINE)
TIMEOUT = 10.0  # seconds for one scrape
READ_BYTES = 65536


class ScrapeError(RuntimeError):
    """A scrape failed: no connection, not a 200, or no deliveries counter."""


def scrape(url: str, timeout: float = TIMEOUT) -> tuple[float, bytes]:
    """GET ``url`` on a fresh connection; (wall milliseconds, body). Raises ``ScrapeError``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ScrapeError(f"not an http://HOST:PORT/... URL: {url!r}")
    host = parts.hostname
    request = (
        f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {parts.netloc}\r\n"
        "Accept: text/plain\r\nConnection: close\r\n\r\n"
    ).encode()
    chunks = []
    t0 = time.perf_counter()
    try:
        with socket.create_connection((host, parts.port), timeout=timeout) as sock:
            sock.sendall(request)
            while chunk := sock.recv(READ_BYTES):
                chunks.append(chunk)
    except OSError as exc:
        raise ScrapeError(f"GET {url}: {exc}") from None
    ms = (time.perf_counter() - t0) * 1000
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if status.split(" ")[1:2] != ["200"]:
        raise ScrapeError(f"GET {url}: {status or 'no response'}")
    return ms, body


def deliveries_total(body: bytes) -> int:
    """The value of ``greenchat_deliveries_total`` in a scrape's body."""
    match = COUNTER_RE.search(body)
    if match is None:
        raise ScrapeError(f"no {COUNTER} in the scrape")
    return int(float(match[1]))


def read_counter(url: str) -> int:
    """``greenchat_deliveries_total`` now."""
    return deliveries_total(scrape(url)[1])


# -- histograms and labelled counters (the logins workload) -----------------------------

SAMPLE_RE = re.compile(rb"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)", re.MULTILINE)
LABEL_RE = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text scrape: {(name, sorted labels): value}."""
    found = {}
    for name, labels, value in SAMPLE_RE.findall(body):
        pairs = tuple(sorted((k.decode(), v.decode()) for k, v in LABEL_RE.findall(labels or b"")))
        found[(name.decode(), pairs)] = float(value)
    return found


def sample(found: dict, name: str, **labels: str) -> float | None:
    """One sample of :func:`samples` (None when the scrape has no such series)."""
    return found.get((name, tuple(sorted(labels.items()))))


@dataclass
class Histogram:
    """A Prometheus histogram: cumulative counts per upper bound (the last is inf)."""

    buckets: list[tuple[float, float]]  # (le, cumulative count), ascending
    sum: float
    count: float

    def minus(self, before: Histogram) -> Histogram:
        """What was observed between scrape ``before`` and this one."""
        old = dict(before.buckets)
        return Histogram(
            [(le, n - old.get(le, 0.0)) for le, n in self.buckets],
            self.sum - before.sum,
            self.count - before.count,
        )

    def quantile_bound(self, q: float) -> float | None:
        """The smallest bucket bound below which at least ``q`` of the observations fall
        (an upper bound of the q-quantile; None with no observation)."""
        if self.count <= 0:
            return None
        return next(le for le, n in self.buckets if n >= q * self.count)

    def counts(self) -> dict[str, int]:
        """Observations per bucket (not cumulative), by bound: {"0.005": 3, ...}."""
        out, below = {}, 0.0
        for le, n in self.buckets:
            out["+Inf" if le == float("inf") else f"{le:g}"] = int(n - below)
            below = n
        return out


def histogram(found: dict, name: str) -> Histogram:
    """Histogram ``name`` from :func:`samples`; ``ScrapeError`` if the scrape lacks it."""
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (sample_name, labels), value in found.items()
        if sample_name == f"{name}_bucket"
    )
    total, count = sample(found, f"{name}_sum"), sample(found, f"{name}_count")
    if not buckets or total is None or count is None:
        raise ScrapeError(f"no histogram {name} in the scrape")
    return Histogram(buckets, total, count)


@dataclass
class Scraper:
    """Scrape ``url`` every ``interval`` s, in a child process, from :meth:`start` to :meth:`stop`.

    A scrape in flight when :meth:`stop` is called is waited for (it started
    during the window); a failed scrape is recorded in ``errors``.
    """

    url: str
    interval: float = 0.02
    times_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _child: subprocess.Popen | None = None

    def start(self) -> Scraper:
        """Start the child and wait for its ``ready`` line: scraping has begun."""
        command = [sys.executable, str(Path(__file__)), self.url, "--interval", str(self.interval)]
        self._child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        if self._child.stdout.readline().strip() != "ready":
            self._child.kill()
            self._child.wait()
            raise ScrapeError(f"the scraper process did not start (exit {self._child.returncode})")
        return self

    def stop(self) -> list[float]:
        """End the loop (after the scrape in flight, if any); the scrape times in ms."""
        child, self._child = self._child, None
        if child is None:
            return self.times_ms
        child.send_signal(signal.SIGTERM)
        try:
            out, _ = child.communicate(timeout=TIMEOUT + 5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise ScrapeError("the scraper process did not stop") from None
        found = json.loads(out or "{}")
        self.times_ms += found.get("times_ms", [])
        self.errors += found.get("errors", [])
        return self.times_ms


def scrape_until_stopped(url: str, interval: float) -> dict[str, list]:
    """The child's loop: scrape every ``interval`` s until SIGTERM; what it saw."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True  # the scrape in flight finishes (PEP 475 resumes its syscalls)

    signal.signal(signal.SIGTERM, stop)
    times, errors = [], []
    print("ready", flush=True)
    while not stopping:
        t0 = time.monotonic()
        try:
            ms, body = scrape(url)
            deliveries_total(body)  # a scrape without the counter is a failed scrape
            times.append(ms)
        except ScrapeError as exc:
            errors.append(str(exc))
        pause = interval - (time.monotonic() - t0)
        if pause > 0 and not stopping:
            time.sleep(pause)
    return {"times_ms": times, "errors": errors}


def run_metrics(
    scraper: Scraper, before: int, after: int, delivered: int, complete: bool
) -> dict[str, Any]:
    """One repetition's ``metrics`` entry: its scrapes and the counter against ``delivered``."""
    times = [round(t, 2) for t in scraper.times_ms]
    delta = after - before
    found: dict[str, Any] = {
        "scrapes": len(times),
        "scrape_ms_median": statistics.median(times) if times else None,
        "scrape_ms_max": max(times, default=None),
        "scrape_ms": times,
        "deliveries_before": before,
        "deliveries_after": after,
        "deliveries_counter": delta,
        "delivered": delivered,
        # Only a complete repetition's count is final: lines may still be on their way.
        "counter_agrees": delta == delivered if complete else None,
    }
    if scraper.errors:
        found["scrape_errors"] = scraper.errors[:5]
        found["scrape_error_count"] = len(scraper.errors)
    return found


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The repetitions' ``metrics`` entries together: every scrape, the counter over all runs."""
    entries = [r["metrics"] for r in runs if "metrics" in r]
    times = [t for m in entries for t in m["scrape_ms"]]
    agree = [m["counter_agrees"] for m in entries]
    return {
        "scrapes": len(times),
        "scrape_ms_median": statistics.median(times) if times else None,
        "scrape_ms_max": max(times, default=None),
        "scrape_errors": sum(m.get("scrape_error_count", 0) for m in entries),
        "deliveries_counter": sum(m["deliveries_counter"] for m in entries),
        "delivered": sum(m["delivered"] for m in entries),
        "counter_agrees": None if None in agree or not agree else all(agree),
    }


def describe(found: dict[str, Any]) -> str:
    """One line about a ``run_metrics`` or ``summarize`` result, for the console."""
    if found["scrapes"]:
        head = (
            f"{found['scrapes']} scrapes during the burst, median"
            f" {found['scrape_ms_median']:.1f} ms, max {found['scrape_ms_max']:.1f} ms"
        )
    else:
        head = "no scrape completed during the burst"
    errors = found.get("scrape_error_count", found.get("scrape_errors"))
    if isinstance(errors, int) and errors:
        head += f" ({errors} failed)"
    sign = {True: "=", False: "!=", None: "vs"}[found["counter_agrees"]]
    delivered = found.get("delivered")
    tail = f" {sign} {delivered:,} delivered" if delivered is not None else ""
    return f"{head}; {COUNTER} +{found['deliveries_counter']:,}{tail}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Scrape a /metrics URL every --interval seconds until SIGTERM;"
        " print the scrape times (ms) and errors as JSON."
    )
    parser.add_argument("url", help="http://HOST:PORT/metrics")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between scrapes")
    args = parser.parse_args(argv)
    json.dump(scrape_until_stopped(args.url, args.interval), sys.stdout)


if __name__ == "__main__":
    main()
