"""The web page in a real headless Chromium, against a real server over real sockets.

The browser loads the page from the server's web listener, and the page talks IRC over the
WebSocket at the same URL. People on plain TCP (``transcript.IrcClient``) and in a second
browser are on the other side. A failing test keeps a screenshot of every browser it used
in ``test-artifacts/browser/``; the chat test also writes the README's screenshot there
(``make screenshot`` copies it to ``docs/web-client.png``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from browser import ARTIFACTS, Browser
from parser_tests.data import msg_split
from transcript import IrcClient, ServerThread

from greenchat.client.format import PALETTE, nick_color
from greenchat.protocol.casemap import casefold

pytestmark = pytest.mark.e2e

# Where `make screenshot` wants the README's picture (the test always writes ARTIFACTS').
README_SCREENSHOT = os.environ.get("GREENCHAT_README_SCREENSHOT")
PHONE = (390, 780)


def colour_class(nick: str) -> str:
    """The class the page gives ``nick``: greenchat-join's colour for it, by index."""
    return f"c{PALETTE.index(nick_color(nick))}"


def test_pick_a_nick_and_chat_with_irc_both_ways(open_browser, web, tcp):
    bob = tcp("bob")
    bob.send("TOPIC #lobby :Say hello, this is the lobby")
    bob.expect(r" TOPIC #lobby ")
    page = open_browser()
    page.driver.get(web)
    page.element("nick").send_keys("9lives")  # a nick may not start with a digit
    page.element("connect").click()
    page.wait(lambda: "not starting with a digit" in page.text("login-error"), "a nick error")
    page.login(web, "alice")
    bob.expect(r":alice!\S+ JOIN #lobby")
    assert page.text("title") == "#lobby"
    page.wait(lambda: page.text("topic") == "Say hello, this is the lobby", "the topic")
    page.wait(lambda: sorted(page.members()) == ["@bob", "alice"], "bob (op) and alice listed")

    bob.send("PRIVMSG #lobby :hello from irssi land")
    line = page.wait_message("hello from irssi land")
    nick = line.find_element("css selector", ".nick")
    assert nick.text == "<bob>"
    assert colour_class("bob") in page.classes(nick)
    stamp = line.find_element("css selector", "time").get_attribute("datetime")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp

    page.type("hi bob, from a browser")
    bob.expect(r":alice!\S+ PRIVMSG #lobby :hi bob, from a browser")
    page.wait_message("hi bob, from a browser")
    bob.send("PRIVMSG #lobby :alice: welcome!", "PRIVMSG #lobby :\x01ACTION waves\x01")
    mention = page.wait_message("alice: welcome!")
    assert "mention" in page.classes(mention)
    page.wait_message("* bob")
    # echo-message: what alice typed is shown once, from the server's echo
    assert sum("hi bob, from a browser" in m.text for m in page.messages()) == 1
    joined = page.message("alice joined #lobby")
    assert joined is not None and "event" in page.classes(joined)
    # Nothing the page loads or runs was refused by its Content-Security-Policy or failed.
    assert page.console_errors() == []
    _readme_screenshot(page)


def _readme_screenshot(page: Browser) -> None:
    shot = page.screenshot(ARTIFACTS / "web-client.png")
    if README_SCREENSHOT:
        Path(README_SCREENSHOT).write_bytes(shot.read_bytes())


def test_two_browsers_chat_both_ways_and_see_a_join_and_a_part(open_browser, web):
    alice, carol = open_browser(), open_browser()
    alice.login(web, "alice")
    carol.login(web, "carol")
    alice.wait_message("carol joined #lobby")
    alice.wait(lambda: "carol" in alice.members(), "carol in alice's member list")

    carol.type("hello alice")
    alice.wait_message("hello alice")
    alice.type("hello carol")
    carol.wait_message("hello carol")

    carol.type("/part off to lunch")
    left = alice.wait_message("carol left #lobby (off to lunch)")
    assert "event" in alice.classes(left)
    alice.wait(lambda: "carol" not in alice.members(), "carol gone from the member list")
    carol.wait(lambda: carol.channel_button("#lobby") is None, "#lobby gone from carol's list")


def test_commands_completion_history_and_unread_marks(open_browser, web, tcp):
    bob = tcp("bob")
    page = open_browser()
    page.login(web, "alice")
    page.wait(lambda: "@bob" in page.members(), "bob listed")

    page.type("bo\t", enter=False)  # Tab completes a nick at the start of the line
    assert page.element("input").get_attribute("value") == "bob: "
    page.type("ready?")
    bob.expect(r"PRIVMSG #lobby :bob: ready\?")
    page.type("\ue013", enter=False)  # Up: the last line again
    assert page.element("input").get_attribute("value") == "bob: ready?"
    page.element("input").clear()

    page.type("/me stretches")
    bob.expect(r":alice!\S+ PRIVMSG #lobby :\x01ACTION stretches\x01")
    page.type("/msg bob just between us")
    bob.expect(r":alice!\S+ PRIVMSG bob :just between us")
    page.wait(lambda: page.text("title") == "bob", "the conversation with bob on screen")

    page.type("/join #side")
    page.wait(lambda: page.text("title") == "#side", "#side on screen")
    bob.send("PRIVMSG #lobby :anyone?")

    # Looked up afresh each time: the channel list is drawn again as lines arrive.
    def lobby_unread() -> bool:
        button = page.channel_button("#lobby")
        return button is not None and "unread" in page.classes(button)

    page.wait(lobby_unread, "#lobby marked unread")

    page.type("/topic Side talk")
    page.wait(lambda: page.text("topic") == "Side talk", "the new topic")
    page.type("/nick alicia")
    page.wait_status("connected as alicia")
    bob.expect(r":alice!\S+ NICK :?alicia")
    page.type("/away lunch")
    page.wait_message("You have been marked as being away")
    page.type("/bogus")
    page.wait_message("Unknown command /bogus")


def test_reconnects_and_rejoins_after_the_server_restarts(open_browser):
    first = ServerThread().start()
    port, (host, web_port) = first.port, first.server.web_address
    page = open_browser()
    try:
        page.login(f"http://{host}:{web_port}/", "alice")
        page.type("/join #side")
        page.wait(lambda: page.text("title") == "#side", "#side on screen")
    finally:
        first.stop()
    page.wait_status("reconnecting")
    assert "down" in page.classes(page.element("status"))

    second = ServerThread(port=port, web_port=web_port).start()
    try:
        page.wait_status("connected as alice", timeout=15)
        bob = IrcClient(second.port)
        try:
            bob.register("bob").join("#side")
            bob.send("NAMES #lobby")
            bob.expect(r" 353 bob = #lobby :@alice$")  # rejoined: first in, so op again
            bob.send("PRIVMSG #side :you are back")
            page.wait_message("you are back")
        finally:
            bob.close()
    finally:
        second.stop()


def test_a_phone_sized_screen_opens_its_panels_by_keyboard(open_browser, web, tcp):
    tcp("bob")
    page = open_browser(size=PHONE)
    page.login(web, "alice")
    members = page.element("members")
    toggle = page.element("toggle-members")
    assert toggle.is_displayed() and not members.is_displayed()
    toggle.send_keys("\ue007")  # Enter on the focused button
    page.wait(lambda: members.is_displayed(), "the member panel open")
    assert toggle.get_attribute("aria-expanded") == "true"
    page.wait(lambda: "@bob" in page.members(), "bob listed")
    page.element("input").send_keys("\ue00c")  # Escape closes it again
    page.wait(lambda: not members.is_displayed(), "the member panel closed")
    # The message box is still the width of the screen, and usable.
    assert page.element("input").size["width"] > PHONE[0] / 2
    page.type("typed on a phone")
    page.wait_message("typed on a phone")


def test_the_pages_irc_code_agrees_with_the_servers(open_browser, web):
    """app.js's line parser against the shared irc-parser-tests vectors, and its case
    mapping and nick colours against greenchat's own, run in the browser."""
    page = open_browser()
    page.driver.get(web)
    vectors = msg_split["tests"]
    parsed = page.driver.execute_script(
        "return arguments[0].map(parseLine)", [v["input"] for v in vectors]
    )
    for vector, got in zip(vectors, parsed, strict=True):
        atoms = vector["atoms"]
        want = {
            "tags": atoms.get("tags") or {},
            "source": atoms.get("source") or "",
            "command": atoms["verb"].upper(),
            "params": atoms.get("params") or [],
        }
        assert {key: got[key] for key in want} == want, vector["input"]

    nicks = ["alice", "Bob", "[x]\\y~", "Ünïcode", "guest_42", "A{b}|c^"]
    folded, colours = page.driver.execute_script(
        "return [arguments[0].map(casefold), arguments[0].map(nickColor)]", nicks
    )
    assert folded == [casefold(nick) for nick in nicks]
    assert colours == [colour_class(nick) for nick in nicks]


def test_create_an_account_on_the_page_then_log_in_from_another_browser(open_browser, web, tcp):
    bob = tcp("bob")
    first = open_browser()
    first.login(web, "alice", password="sturdy-pass", create=True)
    first.wait_status("connected as alice (logged in as alice)")
    first.wait_message("Account alice created.")
    bob.send("WHOIS alice")
    bob.expect(r" 330 bob alice alice :is logged in as")
    first.type("/quit")
    first.wait_status("disconnected")

    second = open_browser()
    second.login(web, "alice", password="wrong-pass")
    second.wait_message("Not logged in: SASL authentication failed: Invalid account credentials")
    second.type("/quit")
    second.wait_status("disconnected")

    third = open_browser()
    third.login(web, "alice", password="sturdy-pass")
    third.wait_status("connected as alice (logged in as alice)")
    assert third.console_errors() == []
