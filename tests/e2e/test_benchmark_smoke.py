"""The fan-out benchmark still runs end to end (tiny sizes; real numbers live in benchmarks/)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from process_guard import run_bounded, terminate_once_serving

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import loadgen  # noqa: E402  (benchmarks/, no monkey-patching at import)


def run_fanout(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """benchmarks/fanout.py with 20 clients and 2 senders plus ``args``; its JSON."""
    out = tmp_path / "fanout.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--clients", "20",
           "--senders", "2", *args, "--json", str(out)]  # fmt: skip
    result = run_bounded(cmd, timeout=40)  # + 10 s grace: within the 60 s test timeout
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads(out.read_text())


def test_fanout_benchmark_smoke(tmp_path: Path) -> None:
    _, data = run_fanout(tmp_path, "--messages", "20", "--repeat", "1")
    run = data["runs"][0]
    assert run["complete"] and run["delivered"] == run["expected"] == 2 * 20 * 19
    assert run["server_us_per_delivery"] > 0 and run["transport"] == "tcp"
    assert "--no-web" in data["server"]["command"]  # no web listener unless ws is measured


def test_fanout_benchmark_over_websocket_and_tcp(tmp_path: Path) -> None:
    """--transports tcp,ws: one greenchat with its web listener; a fleet per transport,
    repetitions interleaved, every delivery counted over both, and the ws/tcp ratio."""
    result, data = run_fanout(tmp_path, "--messages", "20", "--repeat", "2",
                              "--transports", "tcp,ws")  # fmt: skip
    assert "--web-port 0" in data["server"]["command"]
    assert data["server"]["web_address"].startswith("127.0.0.1:")
    assert [(r["transport"], r["run"]) for r in data["runs"]] == [
        ("tcp", 1), ("ws", 1), ("tcp", 2), ("ws", 2)
    ]  # fmt: skip
    for run in data["runs"]:
        assert run["complete"] and run["delivered"] == run["expected"] == 2 * 20 * 19
        assert run["server_us_per_delivery"] > 0 and not run.get("extra_deliveries")
    assert set(data["median"]) == set(data["join_s"]) == {"tcp", "ws"}
    ratio = data["ws_vs_tcp"]
    tcp, ws = (data["median"][t]["server_us_per_delivery"] for t in ("tcp", "ws"))
    assert ratio["server_us_per_delivery"] == pytest.approx(ws / tcp)
    assert len(ratio["paired"]) == 2 and ratio["target_max"] == 1.5
    assert ratio["met"] == (ratio["server_us_per_delivery"] <= 1.5)
    assert "20 clients joined #fan-ws over ws" in result.stdout
    assert "ws/tcp: server µs/delivery" in result.stdout


def server_frame(line: bytes) -> bytes:
    """An unmasked text frame, as the server sends a line."""
    n = len(line)
    return (bytes((0x81, n)) if n < 126 else struct.pack("!BBH", 0x81, 126, n)) + line


def test_websocket_reader_counts_across_any_read_boundary() -> None:
    """The WebSocket client's raw-stream readers count each PRIVMSG once and find the
    sync token however the stream is cut into reads (1 byte, a pattern's length +- 1, big)."""
    rng = random.Random(13)
    for _ in range(40):
        before, after = rng.randrange(0, 200), rng.randrange(1, 100)
        lines = [b":w1!w1@127.0.0.1 PRIVMSG #fan-ws :" + b"x" * rng.choice((1, 60, 130, 300))
                 for _ in range(before)]  # fmt: skip
        lines.insert(rng.randrange(0, len(lines) + 1), b":srv NOTICE w0 :PRIVMSG-free")
        lines.append(b":srv PONG srv :sync.t.end")
        lines += [b":w1!w1@127.0.0.1 PRIVMSG #fan-ws :m%d" % i for i in range(after)]
        stream = b"".join(server_frame(line) for line in lines)
        ours, theirs = socket.socketpair()
        client = loadgen.WsClient(ours, "w0")

        def write(stream: bytes = stream, theirs: socket.socket = theirs) -> None:
            pos = 0
            while pos < len(stream):
                step = rng.choice((1, 2, 9, 10, 11, 64, 5000))
                theirs.sendall(stream[pos : pos + step])
                pos += step

        writer = threading.Thread(target=write)
        writer.start()
        try:
            assert client.drain_until(b"sync.t.end") == before
            client.count = 0
            client.receive(after)
            assert client.count == after
        finally:
            writer.join(10)
            ours.close()
            theirs.close()
    frames = loadgen.ws_frames(b"NICK w0\r\nUSER w0 0 * :bench\r\n")
    assert frames == b"\x81\x87\0\0\0\0NICK w0" + b"\x81\x92\0\0\0\0USER w0 0 * :bench"


def test_fanout_benchmark_scrapes_metrics(tmp_path: Path) -> None:
    """--metrics: /metrics is scraped during each burst, and greenchat_deliveries_total
    rises by exactly the deliveries the clients counted."""
    result, data = run_fanout(tmp_path, "--messages", "100", "--repeat", "2", "--metrics")
    assert data["server"]["metrics_url"].startswith("http://127.0.0.1:")
    assert "--metrics-port 0" in data["server"]["command"]
    for run in data["runs"]:
        assert run["complete"] and run["delivered"] == run["expected"] == 2 * 100 * 19
        found = run["metrics"]
        assert found["scrapes"] >= 1 and len(found["scrape_ms"]) == found["scrapes"]
        assert 0 < found["scrape_ms_median"] <= found["scrape_ms_max"]
        assert "scrape_errors" not in found
        # The JOIN fan-out was counted before the burst; the burst's deliveries after.
        assert found["deliveries_before"] > 0
        assert found["deliveries_counter"] == run["delivered"] and found["counter_agrees"]
    summary = data["metrics"]
    assert summary["counter_agrees"] is True and summary["scrape_errors"] == 0
    assert summary["deliveries_counter"] == summary["delivered"] == 2 * 2 * 100 * 19
    assert summary["scrapes"] == sum(r["metrics"]["scrapes"] for r in data["runs"])
    assert "greenchat_deliveries_total +7,600 = 7,600 delivered" in result.stdout


def test_sigterm_stops_the_server_it_started(tmp_path: Path) -> None:
    """fanout.py stops its server (in its own session) itself when it is terminated."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--clients", "20",
           "--senders", "2", "--messages", "20", "--repeat", "1000"]  # fmt: skip
    status, pids, survivors = terminate_once_serving(cmd, tmp_path / "pids", tmp_path / "log")
    assert status == 128 + signal.SIGTERM, (tmp_path / "log").read_text()
    assert pids and survivors == []


def test_websocket_is_skipped_for_a_revision_without_a_web_listener(tmp_path: Path) -> None:
    """--baseline <the commit before the web listener> --transports tcp,ws: tcp only, and why."""
    added = subprocess.run(
        ["git", "log", "--format=%H", "-S", '"web-port"', "--", "greenchat/server/config.py"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()  # fmt: skip
    if not added:
        pytest.skip("no commit adding --web-port in this history")
    out = tmp_path / "fanout.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--clients", "20",
           "--senders", "2", "--messages", "20", "--repeat", "1", "--transports", "tcp,ws",
           "--baseline", f"{added[-1]}~1", "--json", str(out)]  # fmt: skip
    result = run_bounded(cmd, timeout=40)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipping ws: greenchat@" in result.stderr and "no --web-port" in result.stderr
    data = json.loads(out.read_text())
    assert [r["transport"] for r in data["runs"]] == ["tcp"] and data["runs"][0]["complete"]
    assert "no --web-port" in data["skipped_transports"]["ws"]
    assert "ws_vs_tcp" not in data


def test_fanout_benchmark_against_a_baseline_revision(tmp_path: Path) -> None:
    """--baseline HEAD: the old tree's server is measured, and the tree is gone afterwards."""
    out, temp = tmp_path / "fanout.json", tmp_path / "tmp"
    temp.mkdir()
    cmd = [sys.executable, str(ROOT / "benchmarks" / "fanout.py"), "--clients", "20",
           "--senders", "2", "--messages", "20", "--repeat", "1", "--baseline", "HEAD",
           "--json", str(out)]  # fmt: skip
    result = run_bounded(cmd, timeout=40, env=os.environ | {"TMPDIR": str(temp)})
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    assert data["runs"][0]["complete"] and data["runs"][0]["server_us_per_delivery"] > 0
    base = data["server"]["baseline"]
    assert base["revision"] == "HEAD" and base["name"].startswith("greenchat@")
    assert str(temp) in data["server"]["command"]  # it ran from the exported tree
    assert list(temp.iterdir()) == []


def test_fanout_with_lists_measures_a_channel_with_bans_and_exceptions(tmp_path: Path) -> None:
    """--with-lists 5: a fleet in a channel with 5 bans, 5 +e and 5 +I masks (set by a
    client that then leaves), interleaved with one without; every delivery arrives."""
    result, data = run_fanout(tmp_path, "--messages", "20", "--repeat", "2", "--with-lists", "5")
    assert data["parameters"]["with_lists"] == 5
    assert [(r["series"], r["run"]) for r in data["runs"]] == [
        ("without", 1), ("lists", 1), ("without", 2), ("lists", 2)
    ]  # fmt: skip
    for run in data["runs"]:
        assert run["complete"] and run["delivered"] == run["expected"] == 2 * 20 * 19
    ratio = data["lists_vs_without"]
    assert ratio["target_max"] == 1.05 and len(ratio["paired"]) == 2
    assert "20 clients joined #fan-ls (lists: 5 masks each)" in result.stdout


def test_account_tag_fanout_counts_every_tag(tmp_path: Path) -> None:
    """--accounts --with-caps account-tag: the senders register and log in (SCRAM), a fleet
    without and one with account-tag, repetitions interleaved; every delivery arrives and
    carries @account= exactly in the fleet that asked for it."""
    result, data = run_fanout(tmp_path, "--messages", "20", "--repeat", "2", "--accounts",
                              "--with-caps", "account-tag")  # fmt: skip
    assert data["parameters"]["accounts"] == "senders"
    assert data["parameters"]["with_caps"] == "account-tag"
    assert [(r["series"], r["run"]) for r in data["runs"]] == [
        ("without", 1), ("with", 1), ("without", 2), ("with", 2)
    ]  # fmt: skip
    for run in data["runs"]:
        assert run["complete"] and run["delivered"] == run["expected"] == 2 * 20 * 19
        assert run["tagged"] == (run["delivered"] if run["series"] == "with" else 0)
    tags = data["account_tags"]
    assert tags["ok"] and tags["with"]["tagged"] == tags["with"]["delivered"] == 2 * 2 * 20 * 19
    assert tags["without"]["tagged"] == 0
    ratio = data["with_vs_without"]
    with_, without = (data["median"][s]["server_us_per_delivery"] for s in ("with", "without"))
    assert ratio["server_us_per_delivery"] == pytest.approx(with_ / without)
    assert ratio["target_max"] == 1.1 and len(ratio["paired"]) == 2
    assert "2 accounts of with registered" in result.stdout
    assert "20 clients joined #fan-cp (with account-tag)" in result.stdout
    assert "account tags: without 0 of 1,520 lines, with 1,520 of 1,520 lines" in result.stdout


def test_receive_counts_a_tag_across_any_read_boundary() -> None:
    """Client.receive(target, also) counts the PRIVMSGs and the lines with the tag once
    each, however the stream is cut into reads."""
    rng = random.Random(14)
    for _ in range(30):
        lines = [(b"@account=a1 " if rng.random() < 0.5 else b"")
                 + b":a1!a1@127.0.0.1 PRIVMSG #fan-cp :" + b"x" * rng.choice((1, 60, 300))
                 for _ in range(rng.randrange(1, 150))]  # fmt: skip
        stream = b"".join(line + b"\r\n" for line in lines)
        ours, theirs = socket.socketpair()
        client = loadgen.Client(ours, "a0")

        def write(stream: bytes = stream, theirs: socket.socket = theirs) -> None:
            pos = 0
            while pos < len(stream):
                step = rng.choice((1, 8, 9, 10, 64, 5000))
                theirs.sendall(stream[pos : pos + step])
                pos += step

        writer = threading.Thread(target=write)
        writer.start()
        try:
            client.receive(len(lines), b"@account=")
            assert client.count == len(lines)
            assert client.tagged == sum(line.startswith(b"@account=") for line in lines)
        finally:
            writer.join(10)
            ours.close()
            theirs.close()


def test_histogram_delta_from_two_scrapes() -> None:
    """scrape.py reads a histogram and a labelled counter from Prometheus text, and the
    delta's quantile bound is the bucket the quantile falls under."""
    import scrape

    def body(counts: tuple[int, ...], total: float, ok: int) -> bytes:
        bounds = ("0.001", "0.005", "0.01", "+Inf")
        pairs = zip(bounds, counts, strict=True)
        rows = [f'lag_seconds_bucket{{le="{b}"}} {float(c)}' for b, c in pairs]
        rows += [f"lag_seconds_sum {total}", f"lag_seconds_count {float(counts[-1])}",
                 f'logins_total{{result="ok"}} {float(ok)}', "# HELP x y"]  # fmt: skip
        return "\n".join(rows).encode()

    before = scrape.samples(body((5, 5, 5, 5), 0.002, 1))
    after = scrape.samples(body((5, 105, 106, 107), 0.5, 301))
    assert scrape.sample(after, "logins_total", result="ok") == 301.0
    delta = scrape.histogram(after, "lag_seconds").minus(scrape.histogram(before, "lag_seconds"))
    assert delta.count == 102 and delta.sum == pytest.approx(0.498)
    assert delta.counts() == {"0.001": 0, "0.005": 100, "0.01": 1, "+Inf": 1}
    assert delta.quantile_bound(0.5) == 0.005 and delta.quantile_bound(0.99) == 0.01
    assert delta.quantile_bound(1.0) == float("inf")


def test_logins_workload_smoke(tmp_path: Path) -> None:
    """bench.py's logins workload, tiny: 20 accounts made through the server, then 20
    SCRAM logins at once (and again 5 at a time) while 3 chatters and a PING prober
    run; no failure, every latency field there, and the target row in summary.md (the
    threaded baseline skips)."""
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--workloads",
           "logins", "--servers", "greenchat,threaded", "--out", str(out),
           "--no-plots"]  # fmt: skip
    done = run_bounded(cmd, timeout=40)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((out / "logins.json").read_text())
    assert "SASL" in data["servers"]["threaded"]["cases"]["N=20"]["skipped"]
    entry = data["servers"]["greenchat"]["cases"]["N=20"]
    assert entry["params"]["db"] is True and entry["params"]["metrics"] is True
    result = entry["result"]
    assert result["failures"] == 0 and result["complete"] and not result.get("errors")
    # One storm all at once and one with at most 5 in flight: 20 logins each.
    assert result["logins_counted"] == result["logins_expected"] == 40
    assert [r["concurrency"] for r in result["runs"]] == [0, 5]
    assert result["bounded_concurrency"] == 5 and result["bounded_login_p99_ms"] > 0
    assert result["chat_lost"] == result["pings_lost"] == 0
    assert result["scram_iterations"] == [4096] and result["register_s"] > 0
    assert 0 < result["login_p50_ms"] <= result["login_p99_ms"] <= result["login_max_ms"]
    assert result["storm_s"] > 0 and result["server_ms_per_login"] > 0
    for key in ("ping_storm_p99_ms", "ping_quiet_p99_ms", "chat_quiet_p99_ms"):
        assert result[key] > 0, key
    # 20 logins may be over within milliseconds, before the chatters' next line: a storm
    # with no chat sample has no chat p99, one with samples has a real one.
    assert result["chat_storm_samples"] == 0 or result["chat_storm_p99_ms"] > 0
    # The lag probe fires every 0.5 s: a tiny storm may see no sample, but the fields exist.
    assert {"lag_p99_ms", "lag_samples", "lag_buckets"} <= set(result)
    row = result["runs"][0]
    assert row["logins"] == 20 and row["failed"] == 0 and row["ping_samples"] > 0
    summary = (out / "summary.md").read_text()
    assert "| 20 SCRAM logins at once: event-loop lag p99 <= 10 ms |" in summary
