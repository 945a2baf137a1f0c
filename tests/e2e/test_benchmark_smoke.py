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
