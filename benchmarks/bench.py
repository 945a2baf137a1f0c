"""greenchat's benchmark harness: every workload against every server, in one run.

Workloads (``benchmarks/workloads/``): ``fanout``, ``bigroom``, ``latency``,
``idle``, ``slow``, ``joinstorm``, ``websocket`` (greenchat only: the fan-out
over IRC-over-WebSocket and over TCP against one server, repetitions
interleaved, and the ratio of their CPU per delivery), ``logins`` (greenchat
only: 1,000 SASL SCRAM-SHA-256 logins at once while a channel chats; the
event loop's lag) and ``accounttag`` (greenchat only: the fan-out from
logged-in senders with and without ``account-tag``). Servers (``benchmarks/servers.py``):
``greenchat`` (and ``greenchat-nodelay``, with ``--tcp-nodelay``, in the
workloads that list it), the thread-per-client baseline ``threaded``, and ``ngircd`` /
``inspircd`` when installed (``make bench-peers``). Every case runs against a
freshly started server on 127.0.0.1; the load generator is ``loadgen.py``.

``--baseline REV`` adds ``greenchat@<short hash>``: greenchat at git revision
REV (or the checkout at a path containing ``/``), exported into the run's
temporary directory and run on this interpreter (``baseline.py``), measured
right after ``greenchat`` in every workload; the JSON gets ``vs_baseline``
(greenchat / baseline per case and metric) and ``summary.md`` a section with
those ratios and the target for CPU per delivery in ``fanout`` and
``latency``: within 10% of the baseline.

Outputs, in ``--out`` (default ``benchmarks/results``):

* ``<workload>.json``: parameters, each server's description and results
  (or why a case was skipped or failed), ratios against greenchat, the
  generator settings and the machine;
* ``summary.md``: a table per workload with "vs greenchat" ratio columns and
  the project's targets, rebuilt from all the workload JSON files present;
* ``rooms.png`` (deliveries/s and CPU per delivery against room size) and
  ``latency_cdf.png``, drawn by ``plots.py``.

Usage::

    python benchmarks/bench.py [--workloads fanout,latency,...] [--servers greenchat,threaded]
        [--baseline REV|PATH] [--quick] [--procs 1] [--sources 1] [--out DIR] [--no-plots]

``--quick`` uses tiny sizes (seconds; the smoke test). A full run of every
workload against greenchat and the threaded baseline takes about ten minutes
on two cores.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import baseline  # noqa: E402
import fanout  # noqa: E402
import servers  # noqa: E402
from loadgen import machine_info, raise_fd_limit  # noqa: E402
from workloads import Case, Metric, Options, Workload, registry  # noqa: E402
from workloads.logins import LAG_TARGET_MS  # noqa: E402

BASE = "greenchat"
# Registrations in flight, per server, where the default (--concurrency) is wrong:
# ngIRCd listens with a backlog of 10 (more concurrent connects lose their SYN
# and retry a second later); InspIRCd completes registrations in a sweep once
# a second, so a registration takes a second however idle the server is.
CONCURRENCY = {"ngircd": 10, "inspircd": 2000}
RATIO_NOTE = (
    "Ratio columns are server value / greenchat value, same run, same machine: below 1 for"
    " deliveries/s means slower than greenchat; above 1 for µs, ms, KB or seconds means costlier."
)
DEFAULT_OUT = HERE / "results"
# The change-over-change target: greenchat's CPU per delivery in these workloads
# stays within this fraction of the baseline's (--baseline), measured in the same run.
BASELINE_TOLERANCE = 0.10
BASELINE_TARGETS = ("fanout", "latency")
BASELINE_NOTE = (
    "current/baseline is greenchat's value / the baseline's for the same case in the same run"
    " (below 1 for µs, ms, KB or s: cheaper now; above 1 for deliveries/s: faster now)."
    f" Target: CPU per delivery in {' and '.join(BASELINE_TARGETS)} within"
    f" {BASELINE_TOLERANCE:.0%} of the baseline (current/baseline <= {1 + BASELINE_TOLERANCE:.2f};"
    f" below {1 - BASELINE_TOLERANCE:.2f} is cheaper than the baseline)."
)


# -- command line -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    workloads = registry()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", default=",".join(workloads), help="comma-separated")
    p.add_argument("--servers", help="comma-separated (default: every available one)")
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure greenchat at this git revision (or the checkout at this path,"
        " written with a /) as greenchat@<rev>, right after greenchat in every workload",
    )
    p.add_argument(
        "--workers",
        metavar="N,M",
        help="also measure greenchat-serve --workers N (as greenchat-wN: N processes on one "
        "port, one network over a private redis-server; CPU and RSS of the whole tree) in "
        "the workloads that scale out (fanout, bigroom, latency, idle)",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    p.add_argument("--procs", type=int, default=1, help="generator processes")
    p.add_argument("--sources", type=int, default=1, help="loopback source addresses")
    p.add_argument("--concurrency", type=int, default=100, help="registrations in flight")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = p.parse_args(argv)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if unknown := [w for w in args.workloads if w not in workloads]:
        p.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(workloads)}")
    found = servers.available()
    args.servers = [s.strip() for s in args.servers.split(",")] if args.servers else found
    if missing := [s for s in args.servers if s not in found]:
        p.error(f"server(s) not available here: {', '.join(missing)} (have {', '.join(found)})")
    for count in _counts(p, args.workers):
        name = servers.add_workers_variant(count)
        if name not in args.servers:
            args.servers.append(name)
    if args.baseline is not None and BASE not in args.servers:
        p.error(f"--baseline is compared with {BASE}: include it in --servers")
    if args.procs < 1 or not 1 <= args.sources <= 254:
        p.error("--procs must be >= 1 and --sources between 1 and 254")
    return args


def _counts(p: argparse.ArgumentParser, text: str | None) -> list[int]:
    """``--workers 2,4`` -> [2, 4]; each from 2 to 64."""
    if not text:
        return []
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        p.error(f"--workers: expected numbers like 2,4, not {text!r}")
    if not counts or not all(2 <= count <= 64 for count in counts):
        p.error("--workers: each count from 2 to 64")
    return counts


# -- running ------------------------------------------------------------------------------


def run_case(name: str, workload: Workload, case: Case, opts: Options, tmp: Path) -> dict:
    """Start server ``name``, run one case, stop it; the result or the error."""
    entry: dict[str, Any] = {"params": case.params}
    if case.skip:
        return entry | {"skipped": case.skip}
    opts = dataclasses.replace(opts, concurrency=CONCURRENCY.get(name, opts.concurrency))
    entry["concurrency"] = opts.concurrency
    t0 = time.monotonic()
    try:
        server = servers.start(
            name,
            tmp,
            metrics=bool(case.params.get("metrics")),
            web=bool(case.params.get("web")),
            db=bool(case.params.get("db")),
        )
    except Exception as exc:
        return entry | {"error": f"server did not start: {exc}"}
    try:
        entry["result"] = workload.run(server, case.params, opts)
    except Exception as exc:
        traceback.print_exc()
        entry["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if server.proc.poll() is not None:
            entry["server_exit"] = server.proc.returncode
        servers.stop(server)
    entry["elapsed_s"] = round(time.monotonic() - t0, 1)
    return entry


def run_workload(workload: Workload, names: list[str], opts: Options, tmp: Path) -> dict:
    """Every case of ``workload`` against every server; the workload's JSON document."""
    print(f"\n== {workload.name}: {workload.title}", flush=True)
    results: dict[str, Any] = {}
    load = [round(x, 2) for x in os.getloadavg()]  # other work on the machine skews numbers
    machine = machine_info()  # before the run: the git commit the servers start from
    t0 = time.monotonic()
    for name in names:
        worker_variant = name.startswith(servers.WORKER_PREFIX) and workload.scales_out
        if name in servers.VARIANTS and name not in workload.variants and not worker_variant:
            continue
        cases: dict[str, Any] = {}
        for case in workload.cases(name, opts):
            print(f"-- {workload.name} / {name} / {case.label}", flush=True)
            entry = run_case(name, workload, case, opts, tmp)
            print("   " + one_line(workload, entry), flush=True)
            cases[case.label] = entry
        if workload.derive:
            workload.derive({k: v["result"] for k, v in cases.items() if "result" in v})
        results[name] = {"server": describe(name), "cases": cases}
    return {
        "workload": workload.name,
        "title": workload.title,
        "description": workload.description,
        "quick": opts.quick,
        "generator": {
            "procs": opts.procs,
            "sources": opts.sources,
            "concurrency": opts.concurrency,
            "concurrency_per_server": CONCURRENCY,
        },
        "elapsed_s": round(time.monotonic() - t0, 1),
        "load_average_before": load,
        "machine": machine,
        "servers": results,
        "ratios": ratios(workload, results),
    } | vs_baseline(workload, results)


def describe(name: str) -> dict[str, Any]:
    try:
        return servers.describe(name)
    except Exception as exc:
        return {"name": name, "error": str(exc)}


def one_line(workload: Workload, entry: dict[str, Any]) -> str:
    if "result" not in entry:
        return (
            entry.get("skipped") and f"skipped: {entry['skipped']}"
        ) or f"ERROR {entry['error']}"
    result = entry["result"]
    shown = [f"{m.header} {m.format(result.get(m.key))}" for m in workload.metrics]
    return ", ".join(shown) + (f"  [errors: {result['errors']}]" if result.get("errors") else "")


def ratios(workload: Workload, results: dict[str, Any]) -> dict[str, Any]:
    """server value / greenchat value for every ratio metric, per server and case.

    Only cases with the same number of clients are compared (the baseline may
    send fewer lines, which leaves per-delivery numbers comparable).
    """
    base = results.get(BASE, {}).get("cases", {})
    return {
        name: found
        for name, server in results.items()
        if name != BASE and (found := case_ratios(workload, server["cases"], base))
    }


def case_ratios(workload: Workload, cases: dict[str, Any], base: dict[str, Any]) -> dict:
    """{label: {metric: value / base value}} for the cases both ran with the same clients."""
    out: dict[str, Any] = {}
    for label, entry in cases.items():
        other = base.get(label, {})
        mine, theirs = entry.get("result"), other.get("result")
        same_size = entry["params"].get("clients") == other.get("params", {}).get("clients")
        if not mine or not theirs or not same_size:
            continue
        out[label] = {
            m.key: ratio(mine.get(m.key), theirs.get(m.key)) for m in workload.metrics if m.ratio
        }
    return out


def vs_baseline(workload: Workload, results: dict[str, Any]) -> dict[str, Any]:
    """``{"vs_baseline": ...}``: greenchat / the baseline (--baseline) per case, or nothing."""
    name = next((n for n in results if n in servers.BASELINES), None)
    if name is None or BASE not in results:
        return {}
    cases = case_ratios(workload, results[BASE]["cases"], results[name]["cases"])
    target = {
        "metric": "server_us_per_delivery",
        "max_ratio": 1 + BASELINE_TOLERANCE,
        "workloads": list(BASELINE_TARGETS),
    }
    return {"vs_baseline": {"baseline": name, "target": target, "cases": cases}}


def ratio(value: Any, base: Any) -> float | None:
    if not isinstance(value, int | float) or not isinstance(base, int | float) or not base:
        return None
    return value / base


# -- summary.md ------------------------------------------------------------------------------


def load_results(out: Path) -> dict[str, dict[str, Any]]:
    """Every workload JSON in ``out``, by workload name, in the registry's order."""
    found = {}
    for name in registry():
        path = out / f"{name}.json"
        with contextlib.suppress(OSError, ValueError):
            found[name] = json.loads(path.read_text())
    return found


def table(workload: Workload, data: dict[str, Any]) -> list[str]:
    """The markdown table of one workload: a row per case and server.

    A case whose parameters differ from greenchat's names the differences.
    """
    ratio_metrics = [m for m in workload.metrics if m.ratio]
    head = ["case", "server", *(m.header for m in workload.metrics)]
    head += [f"{m.header} vs {BASE}" for m in ratio_metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    labels = list(dict.fromkeys(lb for s in data["servers"].values() for lb in s["cases"]))
    for label in labels:
        for name, server in data["servers"].items():
            entry = server["cases"].get(label)
            if entry is None:
                continue
            base = data["servers"].get(BASE, {}).get("cases", {}).get(label, {})
            cells = [label + own_params(entry, base), name, *row_cells(workload, entry)]
            got = data.get("ratios", {}).get(name, {}).get(label, {})
            cells += [fmt_ratio(got.get(m.key)) if name != BASE else "1" for m in ratio_metrics]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def own_params(entry: dict[str, Any], base: dict[str, Any]) -> str:
    """`` (messages=50)``: the parameters in which this case differs from greenchat's."""
    theirs = base.get("params", {})
    differ = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
              for k, v in entry.get("params", {}).items() if theirs.get(k) != v]  # fmt: skip
    return f" ({', '.join(differ)})" if differ and base else ""


def row_cells(workload: Workload, entry: dict[str, Any]) -> list[str]:
    result = entry.get("result")
    if result is None:
        why = f"skipped: {entry['skipped']}" if "skipped" in entry else f"error: {entry['error']}"
        return [why.replace("|", "/")[:200], *([""] * (len(workload.metrics) - 1))]
    return [m.format(result.get(m.key)) for m in workload.metrics]


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def write_summary(out: Path) -> Path:
    """Rebuild ``summary.md`` from the workload JSON files in ``out``."""
    workloads, docs = registry(), load_results(out)
    lines = ["# Benchmark summary", ""]
    if docs:
        machine = next(iter(docs.values()))["machine"]
        lines += [machine_line(machine), ""]
        lines += [RATIO_NOTE, ""]
        lines += targets_section(docs)
        lines += baseline_section(docs)
    for name, data in docs.items():
        workload = workloads[name]
        quick = " (quick sizes)" if data.get("quick") else ""
        lines += ["", f"## {workload.title}{quick}", "", workload.description, ""]
        lines += [generator_line(data), ""]
        lines += table(workload, data)
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def generator_line(data: dict[str, Any]) -> str:
    gen = data.get("generator", {})
    load = data.get("load_average_before") or ["?"]
    return (
        f"Generator: {gen.get('procs', 1)} process(es), {gen.get('sources', 1)} source"
        f" address(es). Took {data.get('elapsed_s', 0):.0f} s on {data['machine']['date']};"
        f" load average before: {load[0]}."
    )


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"Machine: {m.get('cpu_model')} ({m.get('usable_cores')} usable cores), "
        f"{m.get('memory_gb')} GB, {m.get('platform')}; Python {m.get('python')}, "
        f"gevent {m.get('gevent')}, greenchat {m.get('greenchat')} ({m.get('git_commit')})."
    )


# -- targets ---------------------------------------------------------------------------------


def value(docs: dict, workload: str, server: str, key: str, biggest: bool = False) -> Any:
    """A result value from the server's first case that has it (biggest room first if asked)."""
    cases = docs.get(workload, {}).get("servers", {}).get(server, {}).get("cases", {})
    results = [e["result"] for e in cases.values() if "result" in e]
    if biggest:
        results.sort(key=lambda r: r.get("members", 0), reverse=True)
    return next((r[key] for r in results if r.get(key) is not None), None)


def compare(mine: Any, other: Any, ok: Callable[[float, float], bool], text: str) -> tuple:
    if not isinstance(mine, int | float) or not isinstance(other, int | float):
        return None, "not measured"
    return ok(mine, other), text.format(mine=mine, other=other)


def check_targets(docs: dict) -> list[tuple[str, bool | None, str]]:
    """The project's targets: (target, met or not (None: not measured), numbers)."""

    def v(workload: str, key: str, server: str = BASE, biggest: bool = False) -> Any:
        return value(docs, workload, server, key, biggest)

    cpu = "server_us_per_delivery"
    rows = [
        ("fanout: CPU/delivery <= InspIRCd's", *compare(
            v("fanout", cpu), v("fanout", cpu, "inspircd"), lambda a, b: a <= b,
            "{mine:.3f} vs {other:.3f} µs")),
        ("fanout: deliveries/s >= 25x threaded", *compare(
            v("fanout", "deliveries_per_s"), v("fanout", "deliveries_per_s", "threaded"),
            lambda a, b: a >= 25 * b, "{mine:,.0f} vs {other:,.0f}/s")),
        ("latency: CPU/delivery <= 1.2x InspIRCd's", *compare(
            v("latency", cpu), v("latency", cpu, "inspircd"), lambda a, b: a <= 1.2 * b,
            "{mine:.2f} vs {other:.2f} µs")),
        ("latency: p99 <= 100 ms", *compare(
            v("latency", "p99_ms"), 100, lambda a, b: a <= b, "p99 {mine:.1f} ms")),
        ("bigroom: largest room, none dropped", *compare(
            v("bigroom", "dropped", biggest=True), v("bigroom", "members", biggest=True),
            lambda a, b: a == 0, "{mine:,} dropped, N={other:,}")),
        ("idle: <= 12 KB RSS per connection", *compare(
            v("idle", "kb_per_connection"), 12, lambda a, b: a <= b, "{mine:.1f} KB")),
        ("slow: healthy throughput >= 90% of control", *compare(
            v("slow", "vs_control", biggest=True), 0.9, lambda a, b: a >= b, "{mine:.0%}")),
        ("joinstorm: <= 10 s server CPU (incl. drain)", *compare(
            v("joinstorm", "server_cpu_total_s"), v("joinstorm", "clients"),
            lambda a, b: a <= 10, "{mine:.2f} s for N={other:,}")),
    ]  # fmt: skip
    return (
        rows
        + metrics_targets(docs)
        + websocket_targets(docs)
        + logins_targets(docs)
        + accounttag_targets(docs)
        + baseline_targets(docs)
    )


# The metrics listener under load (fanout's scraped case): the slowest scrape during the burst.
SCRAPE_MAX_MS = 50.0


def metrics_targets(docs: dict) -> list[tuple[str, bool | None, str]]:
    """The scrapes of /metrics during fanout's burst, and the deliveries counter.

    Read from greenchat's fanout case that scraped (``scrapes`` in its result).
    """
    cases = docs.get("fanout", {}).get("servers", {}).get(BASE, {}).get("cases", {})
    found = next((e["result"] for e in cases.values() if "scrapes" in e.get("result", {})), None)
    members = f"{found['members']:,}" if found else "1,000"
    scrape_target = f"metrics scrape during {members}-member fan-out: max < {SCRAPE_MAX_MS:g} ms"
    counter_target = "fanout: deliveries counter = delivered"
    if found is None:
        return [(scrape_target, None, "not measured"), (counter_target, None, "not measured")]
    most, count = found.get("scrape_ms_max"), found["scrapes"]
    if count and most is not None:
        median = found["scrape_ms_median"]
        text = f"max {most:.1f} ms, median {median:.1f} ms over {count} scrapes"
    else:
        text = "no scrape completed during the burst"
    if errors := found.get("scrape_errors"):
        text += f"; {errors} failed"
    scraped = (bool(count) and most < SCRAPE_MAX_MS and not errors, text)
    counter, delivered = found["deliveries_counter"], found["delivered"]
    agree = found.get("counter_agrees")
    sign = {True: "=", False: "!=", None: "vs"}[agree]
    counted = (agree, f"greenchat_deliveries_total +{counter:,} {sign} {delivered:,} delivered")
    return [(scrape_target, *scraped), (counter_target, *counted)]


def websocket_targets(docs: dict) -> list[tuple[str, bool | None, str]]:
    """The WebSocket fan-out's CPU per delivery against TCP's, same server, same run."""
    target = f"websocket fan-out CPU per delivery <= {fanout.WS_TARGET:g}x TCP"
    cases = docs.get("websocket", {}).get("servers", {}).get(BASE, {}).get("cases", {})
    found = next((e["result"] for e in cases.values() if "ws_vs_tcp" in e.get("result", {})), None)
    if found is None or found["ws_vs_tcp"] is None:
        return [(target, None, "not measured")]
    text = (
        f"{found['ws_vs_tcp']:.3f}x: WS {found['ws_us_per_delivery']:.3f} vs TCP"
        f" {found['tcp_us_per_delivery']:.3f} µs, N={found['members']:,}"
    )
    if found.get("ws_vs_tcp_paired") is not None:
        text += f" (paired repetitions: {found['ws_vs_tcp_paired']:.2f}x)"
    return [(target, found["ws_vs_tcp"] <= fanout.WS_TARGET, text)]


def greenchat_result(docs: dict, workload: str, key: str) -> dict[str, Any] | None:
    """greenchat's first result in ``workload`` that has ``key``."""
    cases = docs.get(workload, {}).get("servers", {}).get(BASE, {}).get("cases", {})
    return next((e["result"] for e in cases.values() if key in e.get("result", {})), None)


def logins_targets(docs: dict) -> list[tuple[str, bool | None, str]]:
    """The login storm: the event loop's lag while N clients log in with SCRAM at once."""
    found = greenchat_result(docs, "logins", "lag_p99_ms")
    n = f"{found['accounts']:,}" if found else "1,000"
    target = f"{n} SCRAM logins at once: event-loop lag p99 <= {LAG_TARGET_MS:g} ms"
    if found is None or found["lag_p99_ms"] is None or found.get("ping_storm_p99_ms") is None:
        return [(target, None, "not measured" if found is None else "no lag sample in the storms")]

    def ms(key: str) -> str:
        value = found.get(key)
        return "-" if value is None else f"{value:.1f}"

    text = (
        f"lag histogram p99 <= {found['lag_p99_ms']:g} ms ({found['lag_samples']} samples);"
        f" PING round trip p99 {ms('ping_storm_p99_ms')} ms (calm {ms('ping_quiet_p99_ms')});"
        f" chat p99 {ms('chat_storm_p99_ms')} ms (calm {ms('chat_quiet_p99_ms')}); login p99"
        f" {ms('login_p99_ms')} ms, all in {found['storm_s']:.2f} s; failures {found['failures']}"
    )
    return [(target, bool(found.get("met")), text)]


def accounttag_targets(docs: dict) -> list[tuple[str, bool | None, str]]:
    """account-tag's fan-out CPU per delivery against the same room without it."""
    found = greenchat_result(docs, "accounttag", "with_vs_without")
    n = f"{found['members']:,}" if found else "1,000"
    target = (
        f"fan-out CPU per delivery with account-tag within {fanout.CAPS_TARGET - 1:.0%} of"
        f" without ({n} members)"
    )
    if found is None or found["with_vs_without"] is None:
        return [(target, None, "not measured")]
    text = (
        f"{found['with_vs_without']:.3f}x: with {found['with_us_per_delivery']:.3f} vs without"
        f" {found['without_us_per_delivery']:.3f} µs"
    )
    if found.get("with_vs_without_paired") is not None:
        text += f" (paired repetitions: {found['with_vs_without_paired']:.3f}x)"
    tags = found.get("account_tags", {})
    if tags:
        text += (
            f"; @account= on {found['tagged_with']:,} of {tags['with']['delivered']:,} lines"
            f" with, {found['tagged_without']:,} without"
        )
    met = found["with_vs_without"] <= fanout.CAPS_TARGET and bool(found.get("tags_ok"))
    return [(target, met, text)]


def baseline_targets(docs: dict) -> list[tuple[str, bool | None, str]]:
    """CPU per delivery within BASELINE_TOLERANCE of the baseline, where one was measured."""
    cpu = "server_us_per_delivery"
    rows = []
    for workload in BASELINE_TARGETS:
        data = docs.get(workload, {})
        if not (against := data.get("vs_baseline")):
            continue
        name = against["baseline"]
        target = f"{workload}: CPU/delivery within {BASELINE_TOLERANCE:.0%} of {name}"
        label = next((lb for lb, r in against["cases"].items() if r.get(cpu) is not None), None)
        if label is None:
            rows.append((target, None, "not measured"))
            continue
        got = against["cases"][label][cpu]
        mine = data["servers"][BASE]["cases"][label]["result"][cpu]
        theirs = data["servers"][name]["cases"][label]["result"][cpu]
        text = f"current/baseline {got:.3f} ({mine:.3f} vs {theirs:.3f} µs, {label})"
        if got < 1 - BASELINE_TOLERANCE:
            text += f"; {1 - got:.0%} cheaper"
        rows.append((target, got <= 1 + BASELINE_TOLERANCE, text))
    return rows


def baseline_section(docs: dict) -> list[str]:
    """Every ratio metric, greenchat / the baseline, for the workloads that ran one."""
    found = {w: d for w, d in docs.items() if d.get("vs_baseline")}
    if not found:
        return []
    names = list(dict.fromkeys(d["vs_baseline"]["baseline"] for d in found.values()))
    lines = ["", f"## Current vs baseline: {BASE} / {', '.join(names)}", "", BASELINE_NOTE, ""]
    for name in names:
        info = next(d["servers"][name]["server"] for d in found.values()
                    if d["vs_baseline"]["baseline"] == name)  # fmt: skip
        left_out = info.get("flags_left_out")
        lines.append(
            f"{name}: {info.get('source')}, greenchat {info.get('version')}"
            + (f"; flags it does not know, left out: {', '.join(left_out)}" if left_out else "")
            + "."
        )
    column = names[0] if len(names) == 1 else "baseline"
    head = ["workload", "case", "metric", BASE, column, "current/baseline"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    workloads = registry()
    for wname, data in found.items():
        name = data["vs_baseline"]["baseline"]
        for label, got in data["vs_baseline"]["cases"].items():
            mine = data["servers"][BASE]["cases"][label]["result"]
            theirs = data["servers"][name]["cases"][label]["result"]
            for m in (m for m in workloads[wname].metrics if m.ratio):
                value = got.get(m.key)
                shown = "-" if value is None else f"{value:.3f}"
                cells = [wname, label, m.header, spread(m, mine), spread(m, theirs), shown]
                lines.append("| " + " | ".join(cells) + " |")
    return lines


def spread(metric: Metric, result: dict[str, Any]) -> str:
    """The value, and the range over the repetitions where there were several."""
    text = metric.format(result.get(metric.key))
    runs = [r[metric.key] for r in result.get("runs", []) if r.get(metric.key) is not None]
    if len(runs) > 1:
        text += f" ({metric.format(min(runs))}-{metric.format(max(runs))})"
    return text


def targets_section(docs: dict) -> list[str]:
    lines = ["## Targets (greenchat)", "", "| target | met | measured |", "|---|---|---|"]
    for target, met, text in check_targets(docs):
        mark = {True: "yes", False: "**no**", None: "-"}[met]
        lines.append(f"| {target} | {mark} | {text} |")
    return lines


# -- main ------------------------------------------------------------------------------------


def draw_plots(out: Path) -> None:
    try:
        import plots
    except ImportError as exc:  # matplotlib is the optional "bench" extra
        print(f"plots skipped ({exc}): pip install -e '.[bench]'")
        return
    for path in plots.make_plots(out):
        print(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    servers.exit_on_sigterm()  # so run_case's finally and the atexit hook stop its servers
    args = parse_args(argv)
    raise_fd_limit()
    opts = Options(args.procs, args.sources, args.concurrency, args.quick)
    workloads = registry()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    # Closed in reverse: the baseline's tree goes first, then the temporary folder.
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="greenchat-bench-")))
        names = list(args.servers)
        if args.baseline is not None:
            try:
                base = stack.enter_context(baseline.prepared(args.baseline, tmp))
            except baseline.BaselineError as exc:
                print(f"bench.py: --baseline {args.baseline}: {exc}", file=sys.stderr)
                return 2
            servers.BASELINES[base.name] = base
            stack.callback(servers.BASELINES.pop, base.name, None)
            names.insert(names.index(BASE) + 1, base.name)
            print(f"baseline {base.name}: {base.source} (greenchat {base.version})")
        print(f"servers: {', '.join(names)}; workloads: {', '.join(args.workloads)}")
        for name in args.workloads:
            data = run_workload(workloads[name], names, opts, tmp)
            path = args.out / f"{name}.json"
            path.write_text(json.dumps(data, indent=1) + "\n")
            print(f"wrote {path}", flush=True)
    print(f"\nwrote {write_summary(args.out)}")
    if not args.no_plots:
        draw_plots(args.out)
    print(f"total {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
