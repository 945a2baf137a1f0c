"""Fixtures of the browser tests (test_browser.py, test_browser_history.py): a headless
Chromium on demand, with a screenshot of each kept when its test fails; the page's URL;
people on plain IRC in #lobby."""

from __future__ import annotations

import pytest
from browser import ARTIFACTS, Browser, find_chromium
from transcript import IrcClient


@pytest.fixture(scope="module")
def chromium() -> tuple[str, str]:
    found = find_chromium()
    if found is None:
        pytest.skip("chromium and chromedriver are not installed (`make test-deps` installs them)")
    return found


@pytest.fixture
def open_browser(chromium, request):
    """Factory: a new headless Chromium; on failure its screenshot is kept."""
    opened: list[Browser] = []

    def make(size: tuple[int, int] = (1100, 700)) -> Browser:
        browser = Browser(*chromium, size=size)
        opened.append(browser)
        return browser

    yield make
    report = getattr(request.node, "report_call", None)
    for index, browser in enumerate(opened):
        try:
            if report is not None and report.failed:
                shot = browser.screenshot(ARTIFACTS / f"{request.node.name}-{index}.png")
                print(f"screenshot of the failing page: {shot}")
        finally:
            browser.close()


@pytest.fixture
def web(server) -> str:
    host, port = server.server.web_address
    return f"http://{host}:{port}/"


@pytest.fixture
def tcp(connect):
    """Factory: someone on plain IRC, registered (with ``caps``) and in ``#lobby``."""

    def make(nick: str, caps: str = "") -> IrcClient:
        client = connect()
        if caps:
            client.register_with_caps(nick, caps)
        else:
            client.register(nick)
        return client.join("#lobby")

    return make
