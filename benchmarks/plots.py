"""PNG plots of bench.py's results (matplotlib, Agg backend: no display needed).

* ``rooms.png``: deliveries/s and server CPU µs per delivery against room
  size, one line per server, from ``fanout.json`` (N=1000) and
  ``bigroom.json`` (N=5000, 10,000);
* ``latency_cdf.png``: the CDF of send-to-arrival latency per server, from
  ``latency.json``.

Usage: ``python benchmarks/plots.py [RESULTS_DIR]`` (default benchmarks/results).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

DEFAULT_DIR = Path(__file__).resolve().parent / "results"
COLORS = {"greenchat": "tab:green", "greenchat-nodelay": "tab:olive", "threaded": "tab:red",
          "ngircd": "tab:blue", "inspircd": "tab:purple"}  # fmt: skip
BASELINE_COLOR = "tab:gray"  # greenchat@REV (bench.py --baseline)


def color(name: str) -> str | None:
    return COLORS.get(name) or (BASELINE_COLOR if name.startswith("greenchat@") else None)


def load(folder: Path, workload: str) -> dict[str, Any] | None:
    path = folder / f"{workload}.json"
    return json.loads(path.read_text()) if path.exists() else None


def results(doc: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """Per server, the results of its cases that ran."""
    if not doc:
        return {}
    return {
        name: [e["result"] for e in server["cases"].values() if "result" in e]
        for name, server in doc["servers"].items()
    }


def room_points(folder: Path) -> dict[str, list[tuple[int, float, float]]]:
    """Per server: (members, deliveries/s, µs per delivery), sorted by members."""
    points: dict[str, list[tuple[int, float, float]]] = {}
    for workload in ("fanout", "bigroom"):
        for name, rows in results(load(folder, workload)).items():
            for r in rows:
                scraped = "scrapes" in r  # fanout's "scraped" case: the same room, scraped
                if r.get("deliveries_per_s") and r.get("server_us_per_delivery") and not scraped:
                    point = (r["members"], r["deliveries_per_s"], r["server_us_per_delivery"])
                    points.setdefault(name, []).append(point)
    return {name: sorted(p) for name, p in points.items()}


def plot_rooms(folder: Path) -> Path | None:
    points = room_points(folder)
    if not points:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for name, rows in points.items():
        sizes = [r[0] for r in rows]
        style = {"marker": "o", "label": name, "color": color(name)}
        top.plot(sizes, [r[1] for r in rows], **style)
        bottom.plot(sizes, [r[2] for r in rows], **style)
    top.set_ylabel("deliveries / s")
    top.set_yscale("log")
    top.set_title("One channel, unthrottled senders: throughput and cost vs room size")
    bottom.set_ylabel("server CPU µs / delivery")
    bottom.set_yscale("log")
    bottom.set_xlabel("members in the channel")
    return _finish(fig, (top, bottom), folder / "rooms.png")


def _finish(fig, axes, path: Path) -> Path:
    """Grid and legend on every axis; write the PNG; free the figure."""
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_latency(folder: Path) -> Path | None:
    curves = {
        name: rows[0]["cdf_ms"]
        for name, rows in results(load(folder, "latency")).items()
        if rows and rows[0].get("cdf_ms")
    }
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, cdf in curves.items():
        xs = [max(x, 1e-3) for x, _ in cdf]
        ax.plot(xs, [y for _, y in cdf], label=name, color=color(name))
    ax.set_xscale("log")
    ax.set_xlabel("latency, send to arrival (ms)")
    ax.set_ylabel("fraction of deliveries")
    ax.set_title("Latency CDF: 2,000 members, 50 lines/s (~100k deliveries/s)")
    ax.axvline(100, color="grey", linestyle=":", linewidth=1)
    return _finish(fig, (ax,), folder / "latency_cdf.png")


def make_plots(folder: Path) -> list[Path]:
    """Draw every plot whose data is in ``folder``; return the files written."""
    return [p for p in (plot_rooms(folder), plot_latency(folder)) if p is not None]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    for written in make_plots(target):
        print(f"wrote {written}")
