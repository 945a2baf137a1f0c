"""A real headless Chromium driving greenchat's web page, through selenium and chromedriver.

Every :class:`Browser` has a profile of its own (so its own localStorage, as two people's
browsers would) and waits for what it expects with a deadline, failing with what the page
shows instead.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

T = TypeVar("T")
DEFAULT_TIMEOUT = 10.0
# Debian's packages (`make test-deps` installs them).
CHROMIUM_BINARIES = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"


# Screenshots of failing browser tests, and the README's picture.
ARTIFACTS = Path(__file__).parents[1] / "test-artifacts" / "browser"


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) paths, or None when either is missing."""
    browser = next(filter(None, map(shutil.which, CHROMIUM_BINARIES)), None)
    driver = shutil.which(CHROMEDRIVER)
    return (browser, driver) if browser and driver else None


class Browser:
    """One headless Chromium window on greenchat's page."""

    def __init__(self, browser: str, driver: str, size: tuple[int, int] = (1100, 700)) -> None:
        self.profile = tempfile.mkdtemp(prefix="greenchat-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for arg in (
            "--headless=new",
            "--no-sandbox",  # root in a container has no user namespace for the sandbox
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={self.profile}",
            f"--window-size={size[0]},{size[1]}",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the JS console
        self.driver = webdriver.Chrome(options=options, service=Service(driver))
        self.driver.set_page_load_timeout(DEFAULT_TIMEOUT)

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # -- waiting -------------------------------------------------------------------------

    def wait(self, condition: Callable[[], T], what: str, timeout: float = DEFAULT_TIMEOUT) -> T:
        """The first truthy ``condition()`` within ``timeout``, or fail saying what the page
        showed."""

        def check(_driver) -> T:
            try:
                return condition()
            except StaleElementReferenceException:  # re-rendered under us: look again
                return None  # type: ignore[return-value]

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(check)
        except TimeoutException:
            raise AssertionError(
                f"{what}: not within {timeout}s. Status {self.status()!r}; messages:\n"
                f"{self.text('messages')}"
            ) from None

    def wait_message(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> WebElement:
        """The first message line containing ``text``."""
        return self.wait(lambda: self.message(text), f"a message with {text!r}", timeout)

    def wait_status(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        return self.wait(
            lambda: text in self.status() and self.status(), f"status {text!r}", timeout
        )

    # -- reading the page ----------------------------------------------------------------

    def element(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return self.element(element_id).text

    def status(self) -> str:
        return self.text("status")

    def messages(self) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, "#messages > li")

    def message(self, text: str) -> WebElement | None:
        return next((line for line in self.messages() if text in line.text), None)

    def members(self) -> list[str]:
        return [item.text for item in self.driver.find_elements(By.CSS_SELECTOR, "#member-list li")]

    def channel_button(self, name: str) -> WebElement | None:
        found = self.driver.find_elements(By.CSS_SELECTOR, f'#channel-list [data-buffer="{name}"]')
        return found[0] if found else None

    def console_errors(self) -> list[str]:
        """What the page logged as errors since the last call (CSP refusals, exceptions)."""
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def classes(self, element: WebElement) -> set[str]:
        return set((element.get_attribute("class") or "").split())

    # -- doing things --------------------------------------------------------------------

    def login(
        self,
        url: str,
        nick: str,
        channel: str | None = None,
        password: str = "",
        create: bool = False,
    ) -> None:
        """Open the page, pick ``nick`` (a channel, a password to log in with, or to
        create the account with), and wait to be in."""
        self.driver.get(url)
        nick_box = self.element("nick")
        nick_box.clear()
        nick_box.send_keys(nick)
        if password:
            self.element("password").send_keys(password)
        if create:
            self.element("create").click()
        if channel is not None:
            channel_box = self.element("channel")
            channel_box.clear()
            channel_box.send_keys(channel)
        self.element("connect").click()
        self.wait_status(f"connected as {nick}")
        assert not self.element("login").is_displayed(), "the login form is still shown"
        assert self.element("input").is_displayed()

    def type(self, line: str, enter: bool = True) -> None:
        """Type into the message box, as a person would (and press Enter)."""
        box = self.element("input")
        box.send_keys(line + (Keys.ENTER if enter else ""))

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path
