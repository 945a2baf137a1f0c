"""accounttag: the fan-out with the senders logged in, with and without ``account-tag``.

``fanout.py --accounts --with-caps account-tag`` against one greenchat: the
senders' accounts are made through the server (``REGISTER``) and each sender
logs in with SASL SCRAM-SHA-256 before joining. Two fleets of 1,000 share the
server: ``without`` (``b0`` ... in ``#fanout``, no capability) and ``with``
(``a0`` ... in ``#fan-cp``, every client requesting ``account-tag``), both
joined before the first repetition; then 10 senders x 200 lines in each room,
5 repetitions alternating without, with. Each receiver also counts the
``@account=`` tags in the lines it gets: every line of ``with`` must carry
one (it comes from a logged-in sender), no line of ``without`` (the workload
fails otherwise). The result is each fleet's medians and the ratio of their
server CPU per delivery: the target is at most 1.10x (``fanout.CAPS_TARGET``).

Only the recipients' capabilities change what a PRIVMSG looks like (the relay
renders once per variant); whether the recipients are logged in does not, so
only the senders log in (``fanout.py --accounts all`` logs everyone in).
"""

from __future__ import annotations

from typing import Any

import fanout
import servers
from loadgen import medians

from workloads import GENERATOR_UTIL, Case, Metric, Options, Server, Workload

CAPS = "account-tag"
SERIES = (fanout.WITHOUT_CAPS, fanout.WITH_CAPS[0])


def cases(server: str, opts: Options) -> list[Case]:
    if opts.quick:
        params = {"clients": 20, "senders": 2, "messages": 20, "repeat": 2}
        label = "N=20"
    else:
        params = {"clients": 1000, "senders": 10, "messages": 200, "repeat": 5}
        label = "N=1000"
    params |= {"with_caps": CAPS, "accounts": "senders"}
    skip = None
    if not servers.has_accounts(server):
        skip = (
            "no accounts at this revision (its --help lists no --db)"
            if server in servers.BASELINES
            else "no accounts in the benchmark configs (account-tag needs logged-in senders)"
        )
    return [Case(label, params, skip)]


def run(server: Server, params: dict[str, Any], opts: Options) -> dict[str, Any]:
    """fanout.py's benchmark with and without account-tag; each one's medians, with/without."""
    argv = [
        "--clients", params["clients"],
        "--senders", params["senders"],
        "--messages", params["messages"],
        "--repeat", params["repeat"],
        "--deadline", params.get("deadline", 120.0),
        "--procs", opts.procs,
        "--sources", opts.sources,
        "--connect-concurrency", opts.concurrency,
        "--accounts", params["accounts"],
        "--with-caps", params["with_caps"],
    ]  # fmt: skip
    args = fanout.parse_args([str(a) for a in argv])
    series = fanout.benchmark(args, server, strict=False)
    result: dict[str, Any] = {"members": params["clients"]}
    runs: list[dict[str, Any]] = []
    for name, (rows, join_s) in series.items():
        found = medians([r for r in rows if r["complete"]] or rows)
        result |= {
            f"{name}_us_per_delivery": found.get("server_us_per_delivery"),
            f"{name}_deliveries_per_s": found.get("deliveries_per_s"),
            f"{name}_join_s": join_s,
        }
        runs += rows
    runs.sort(key=lambda r: (r["run"], SERIES.index(r["series"])))
    expected = sum(r["expected"] for r in runs)
    delivered = sum(r["delivered"] for r in runs)
    util = [r["generator_max_core_util"] for r in runs if r.get("generator_max_core_util")]
    tags = fanout.account_tags(args, fanout.series_plan(args), runs)
    assert tags is not None
    result |= {
        "complete": all(r["complete"] for r in runs)
        and all(len(rows) == params["repeat"] for rows, _ in series.values()),
        "expected": expected,
        "delivered": delivered,
        "dropped": expected - delivered,
        "tagged_with": tags[SERIES[1]]["tagged"],
        "tagged_without": tags[SERIES[0]]["tagged"],
        "tags_ok": tags["ok"],
        "account_tags": tags,
        "extra_deliveries": sum(r.get("extra_deliveries", 0) for r in runs),
        "generator_core_util": max(util, default=None),
        "runs": runs,
    }
    ratio = fanout.with_vs_without({n: rows for n, (rows, _) in series.items()})
    if ratio is not None:
        result |= {
            "with_vs_without": ratio.get("server_us_per_delivery"),
            "with_vs_without_paired": ratio.get("paired_median"),
            "target_max": ratio["target_max"],
            "ratios": ratio,
        }
        if "met" in ratio:
            result["met"] = ratio["met"] and tags["ok"]
    if errors := [e for r in runs for e in r.get("errors", [])]:
        result["errors"] = errors[:5]
    if not tags["ok"]:
        result.setdefault("errors", []).append(
            f"account tags: {tags[SERIES[1]]['tagged']:,} with (of"
            f" {tags[SERIES[1]]['delivered']:,} lines), {tags[SERIES[0]]['tagged']:,} without"
        )
    return result


ACCOUNTTAG = Workload(
    name="accounttag",
    title="account-tag fan-out: 1,000 members, logged-in senders, with vs without account-tag",
    description=(
        "One greenchat; 10 senders logged in (SASL SCRAM-SHA-256) in each of two rooms of"
        " 1,000: `without` (no capability) and `with` (every member requests account-tag);"
        " 10 x 200 lines in each, 5 repetitions alternating. `with/without` is the ratio of"
        " the medians of server CPU per delivery (target <= "
        f"{fanout.CAPS_TARGET:.2f}x), `paired` the median of each with repetition over the"
        " without one before it; `tags` = `@account=` lines received in with / without"
        " (must be every line / none)."
    ),
    metrics=(
        Metric("without_us_per_delivery", "without µs/delivery", "{:.3f}", ratio=True),
        Metric("with_us_per_delivery", "with µs/delivery", "{:.3f}", ratio=True),
        Metric("with_vs_without", "with/without", "{:.3f}"),
        Metric("with_vs_without_paired", "with/without paired", "{:.3f}"),
        Metric("without_deliveries_per_s", "without deliveries/s", ratio=True),
        Metric("with_deliveries_per_s", "with deliveries/s", ratio=True),
        Metric("tagged_with", "tags with"),
        Metric("tagged_without", "tags without"),
        Metric("dropped", "dropped"),
        GENERATOR_UTIL,
    ),
    cases=cases,
    run=run,
)
