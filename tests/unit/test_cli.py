"""What greenchat-serve prints at start: where it listens and how to connect."""

from __future__ import annotations

import pytest

from greenchat.cli import welcome_text


@pytest.mark.parametrize(
    ("address", "tls", "environ", "expected"),
    [
        (
            ("127.0.0.1", 8546),
            None,
            {"MAKELEVEL": "1"},
            [
                "greenchat listening on 127.0.0.1:8546",
                "  to chat, in another terminal:  make join",
                "  or with any IRC client:        irssi -c 127.0.0.1 -p 8546",
            ],
        ),
        (
            ("0.0.0.0", 6667),
            ("0.0.0.0", 6697),
            {},
            [
                "greenchat listening on 0.0.0.0:6667",
                "  TLS on 0.0.0.0:6697",
                "  to chat, in another terminal:  greenchat-join --port 6667",
                "  or with any IRC client:        irssi -c 127.0.0.1 -p 6667",
            ],
        ),
        (
            ("::1", 8546),
            None,
            {"MAKELEVEL": "2"},
            [
                "greenchat listening on [::1]:8546",
                '  to chat, in another terminal:  make join ARGS="--host ::1"',
                "  or with any IRC client:        irssi -c ::1 -p 8546",
            ],
        ),
    ],
)
def test_start_banner_says_how_to_connect(address, tls, environ, expected):
    lines = welcome_text(address, tls, environ).splitlines()
    assert lines == [*expected, "  Ctrl-C stops the server."]


def test_start_banner_shows_the_metrics_address():
    lines = welcome_text(("127.0.0.1", 8546), None, {}, [("127.0.0.1", 9546)]).splitlines()
    assert lines[1] == "  metrics on http://127.0.0.1:9546/metrics"


def test_start_banner_shows_the_web_page():
    urls = ["http://127.0.0.1:8547/", "https://127.0.0.1:8548/"]
    lines = welcome_text(("127.0.0.1", 8546), None, {}, [], urls).splitlines()
    assert lines[-3:] == [
        "  or in a web browser:           http://127.0.0.1:8547/",
        "  or in a web browser:           https://127.0.0.1:8548/",
        "  Ctrl-C stops the server.",
    ]
