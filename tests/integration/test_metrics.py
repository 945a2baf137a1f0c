"""The metrics listener: /metrics in Prometheus' format, /healthz, and what the numbers say."""

from __future__ import annotations

import json
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from greenchat.metrics import METRIC_NAMES

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"


def get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port: int) -> dict[str, float]:
    """{'name{label="v",...}': value} for every sample."""
    status, text = get(port, "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def names(samples: dict[str, float]) -> set[str]:
    found = {re.sub(r"\{.*", "", key) for key in samples}
    return {re.sub(r"_(bucket|sum|count|created)$", "", name) for name in found}


@pytest.fixture
def metrics_server(make_server):
    server = make_server(metrics_port=0)
    server.metrics_port = server.server.metrics_listener.address[1]
    return server


def test_every_metric_is_served(metrics_server):
    assert names(scrape(metrics_server.metrics_port)) >= set(METRIC_NAMES)


@pytest.mark.single_process("scrapes one server's /metrics and expects every client counted there")
def test_the_numbers_follow_what_happens(metrics_server, connect):
    port = metrics_server.metrics_port
    before = scrape(port)
    alice = connect("alice", port=metrics_server.port).join("#m")
    bob = connect("bob", port=metrics_server.port).join("#m")
    carol = connect("carol", port=metrics_server.port).join("#m")
    for n in range(10):
        alice.send(f"PRIVMSG #m :line {n}")
    bob.expect(r"PRIVMSG #m :line 9$")
    carol.expect(r"PRIVMSG #m :line 9$")
    after = scrape(port)
    # 10 lines to 2 members each, whatever else (JOINs) was delivered.
    assert after["greenchat_deliveries_total"] - before["greenchat_deliveries_total"] >= 20
    assert after['greenchat_commands_total{command="PRIVMSG"}'] == 10
    assert after['greenchat_events_total{kind="message"}'] == 10
    assert after['greenchat_events_total{kind="join"}'] == 3
    assert after['greenchat_connections{state="registered",transport="tcp"}'] == 3
    assert after["greenchat_users"] == 3 and after["greenchat_channels"] == 1
    assert after["greenchat_sent_lines_total"] > before["greenchat_sent_lines_total"] + 20
    assert after["greenchat_registration_seconds_count"] == 3
    assert after["greenchat_history_read_seconds_count"] == 0
    assert after["greenchat_chathistory_seconds_count"] == 0
    alice.send("CAP REQ draft/chathistory", "CHATHISTORY LATEST #m * 5")
    alice.expect(r"PRIVMSG #m :line 9$")
    asked = scrape(port)
    assert asked["greenchat_history_read_seconds_count"] == 1
    assert asked["greenchat_chathistory_seconds_count"] == 1
    # The whole command took at least its store query.
    assert asked["greenchat_chathistory_seconds_sum"] >= asked["greenchat_history_read_seconds_sum"]
    carol.send("QUIT :bye")
    carol.expect_closed()
    bob.expect(r"QUIT :Quit: bye$")
    gone = scrape(port)
    assert gone['greenchat_disconnects_total{reason="quit"}'] == 1
    assert gone['greenchat_disconnects_total{reason="sendq_exceeded"}'] == 0


def test_health_and_other_paths(metrics_server):
    port = metrics_server.metrics_port
    assert get(port, "/healthz") == (200, "ok\n")
    assert get(port, "/nope")[0] == 404
    assert get(port, "/metrics", method="POST")[0] == 405
    metrics_server.call(lambda: setattr(metrics_server.server, "stopping", True))
    assert get(port, "/healthz") == (503, "draining\n")  # what stop() sets first
    metrics_server.call(lambda: setattr(metrics_server.server, "stopping", False))


def wait_for_switch_interval(value: float, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while sys.getswitchinterval() != value:
        assert time.monotonic() < deadline, f"interval {sys.getswitchinterval()}, not {value}"
        time.sleep(0.01)


def test_the_gil_switches_fast_only_while_a_scrape_is_served(metrics_server):
    """From accept to close the listener asks for 1 ms GIL slices, so its syscalls do
    not each wait 5 ms behind the hub; every way a request ends gives the default back."""
    default = sys.getswitchinterval()
    with socket.create_connection(("127.0.0.1", metrics_server.metrics_port), timeout=5):
        wait_for_switch_interval(0.001)  # accepted, waiting for the request line
    wait_for_switch_interval(default)  # closed without a request
    for path in ("/metrics", "/healthz", "/nowhere"):
        get(metrics_server.metrics_port, path)
        wait_for_switch_interval(default)
    assert sys.getswitchinterval() == default


def test_the_grafana_dashboard_uses_only_metrics_that_exist(metrics_server):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {re.sub(r"_bucket$", "", m) for e in exprs for m in re.findall(r"greenchat_\w+", e)}
    assert used, "the dashboard queries nothing"
    served = names(scrape(metrics_server.metrics_port))
    assert used <= served, used - served


def test_operations_doc_lists_every_metric():
    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    listed = set(re.findall(r"^\| `(greenchat_\w+)` \|", doc, re.M))
    assert listed == set(METRIC_NAMES)
