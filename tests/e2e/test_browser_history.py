"""The web page's history, read markers and deleting, in a real headless Chromium against
a real server over real sockets.

Scrolling to the top of a channel fetches older lines (``CHATHISTORY BEFORE``) without
moving the line being read; ``draft/read-marker`` carries what one device read to the
others (here a second session of the account on plain TCP, whose timestamps the test
can name exactly); ``draft/message-redaction`` deletes a line for everyone with the
capability. A failing test keeps a screenshot of every browser it used in
``test-artifacts/browser/``, as tests/e2e/test_browser.py does.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
from browser import Browser
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from transcript import IrcClient, register_account

pytestmark = pytest.mark.e2e

EVERYTHING = 150  # lines said before the browser comes
CAPS = "server-time message-tags"

# Scrolls the message pane to its top and returns the first line at least partly on
# screen: its text, and its offset from the pane's top edge (what must not move).
SCROLL_TO_TOP = """
const pane = document.querySelector(".messages-pane");
pane.scrollTop = 0;
const top = pane.getBoundingClientRect().top;
const line = [...document.querySelectorAll("#messages > li")]
  .find((li) => li.getBoundingClientRect().bottom > top);
return [line.textContent, line.getBoundingClientRect().top - top];
"""
# Where the line with exactly this text is now, from the pane's top edge (null: gone).
OFFSET_OF = """
const pane = document.querySelector(".messages-pane");
const line = [...document.querySelectorAll("#messages > li")]
  .find((li) => li.textContent === arguments[0]);
return line ? line.getBoundingClientRect().top - pane.getBoundingClientRect().top : null;
"""
# Every text the history edge ("loading…", "beginning of history") shows from now on.
WATCH_EDGE = """
window.edgeTexts = [];
const edge = document.getElementById("history-edge");
new MutationObserver(() => window.edgeTexts.push(edge.textContent))
  .observe(edge, { childList: true, characterData: true, subtree: true });
"""
# The texts of the lines on either side of the "new messages" rule (null: no rule).
AROUND_RULE = """
const rule = document.querySelector("#messages > li.read-marker");
if (!rule) return null;
return [rule.previousElementSibling && rule.previousElementSibling.textContent,
        rule.nextElementSibling && rule.nextElementSibling.textContent];
"""


@pytest.fixture
def server(make_server):
    """No flood control: bob says his 150 lines at once."""
    return make_server(flood_rate=0)


def old_lines(page: Browser) -> list[int]:
    """The numbers of bob's "old line NNN" lines on the page, top to bottom."""
    return [
        int(found[1])
        for line in page.messages()
        if (found := re.search(r"old line (\d{3})$", line.text))
    ]


def said_at(client: IrcClient, pattern: str) -> tuple[str, str]:
    """(server time, msgid) of the next line matching ``pattern`` (after its tags)."""
    found = client.expect(rf"^@time=([^; ]+);msgid=([^; ]+)\S* {pattern}")
    return found[1], found[2]


def say_apart(bob: IrcClient, listener: IrcClient, target: str, *texts: str) -> list[str]:
    """bob says each of ``texts`` in a millisecond of its own (a read marker is a time,
    so only that tells lines apart); their server times, as ``listener`` saw them."""
    times: list[str] = []
    for text in texts:
        if times:
            wait_past(times[-1])
        bob.send(f"PRIVMSG {target} :{text}")
        stamp, _ = said_at(listener, rf":bob!\S+ PRIVMSG {target} :{re.escape(text)}$")
        times.append(stamp)
    return times


def wait_past(stamp: str, timeout: float = 2.0) -> None:
    """Poll the clock until the millisecond of server time ``stamp`` is over."""
    end = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    deadline = time.monotonic() + timeout
    while time.time() < end + 0.001:
        assert time.monotonic() < deadline, f"the clock did not pass {stamp}"
        time.sleep(0.001)


def unread(page: Browser, name: str) -> str | None:
    """The unread count on a channel's button ('' when marked without one), or None."""
    button = page.channel_button(name)
    if button is None or "unread" not in page.classes(button):
        return None
    counts = button.find_elements(By.CSS_SELECTOR, ".count")
    return re.sub(r"\D", "", counts[0].get_attribute("textContent")) if counts else ""


def test_scrolling_up_loads_older_lines_and_keeps_the_view_still(open_browser, web, tcp):
    bob = tcp("bob")
    bob.send(*(f"PRIVMSG #lobby :old line {n:03d}" for n in range(1, EVERYTHING + 1)))
    bob.sync()
    page = open_browser()
    page.login(web, "alice")
    page.wait_message(f"old line {EVERYTHING}")
    page.wait(lambda: page.text("history-edge") == "", "the first batch shown")
    shown = old_lines(page)  # the latest ones only, in order
    assert shown == list(range(shown[0], EVERYTHING + 1)) and shown[0] > 100, shown
    # alice's own join came live and again from history (event-playback): shown once
    assert sum("alice joined #lobby" in m.text for m in page.messages()) == 1
    page.driver.execute_script(WATCH_EDGE)

    def loaded(count: int) -> bool:
        edge = page.text("history-edge")
        return edge != "loading…" and (len(page.messages()) > count or "beginning" in edge)

    for _ in range(8):
        if page.text("history-edge") == "beginning of history":
            break
        count = len(page.messages())
        text, offset = page.driver.execute_script(SCROLL_TO_TOP)
        page.wait(lambda count=count: loaded(count), "older lines, or the beginning")
        # The line that was at the top is where it was, older lines above it.
        now = page.driver.execute_script(OFFSET_OF, text)
        assert now is not None and abs(now - offset) <= 1, (text, offset, now)
    assert page.text("history-edge") == "beginning of history"
    assert old_lines(page) == list(range(1, EVERYTHING + 1))  # each once, in order
    assert page.message("bob joined #lobby") is not None  # played back, dimmed
    assert "event" in page.classes(page.message("bob joined #lobby"))
    edge_texts = page.driver.execute_script("return window.edgeTexts")
    assert "loading…" in edge_texts, edge_texts

    # The latest lines once more (as after a reconnect): nothing is shown twice.
    page.driver.execute_script('requestHistory(state.buffers.get("#lobby"), "latest")')
    page.wait(lambda: page.text("history-edge") != "loading…", "the repeated batch handled")
    assert old_lines(page) == list(range(1, EVERYTHING + 1))
    # And a new line still comes at the end.
    bob.send("PRIVMSG #lobby :and a new one")
    page.wait(lambda: page.messages()[-1].text.endswith("and a new one"), "the new line last")
    assert page.console_errors() == []


def test_read_markers_follow_the_account_to_another_device(open_browser, web, tcp, server, connect):
    register_account(server.port, "dana", "sturdy-pass")
    bob = tcp("bob")
    bob.send("PRIVMSG #lobby :said before dana came")
    # dana's phone: a second session of the account, on plain IRC.
    phone = connect().register_with_caps("dana_phone", f"{CAPS} draft/read-marker")
    phone.send("PRIVMSG NickServ :IDENTIFY dana sturdy-pass")
    phone.expect(r" 900 dana_phone ")
    phone.send("JOIN #lobby")
    phone.expect(r" MARKREAD #lobby \*$")  # never read: before the end of NAMES
    phone.expect(r" 366 dana_phone #lobby ")

    page = open_browser()
    page.login(web, "dana", password="sturdy-pass")
    page.wait_status("logged in as dana")
    joined, _ = said_at(phone, r":dana!\S+ JOIN #lobby")
    # Reading on the page (on screen, focused) moves the account's marker to its newest line.
    phone.expect(rf" MARKREAD #lobby timestamp={re.escape(joined)}$")

    page.type("/join #side")
    page.wait(lambda: page.text("title") == "#side", "#side on screen")
    first, _, third = say_apart(bob, phone, "#lobby", "after 1", "after 2", "after 3")
    page.wait(lambda: unread(page, "#lobby") == "3", "three unread in #lobby")

    # Read on the phone up to the first: the page counts two.
    phone.send(f"MARKREAD #lobby timestamp={first}")
    phone.expect(rf" MARKREAD #lobby timestamp={re.escape(first)}$")
    page.wait(lambda: unread(page, "#lobby") == "2", "two unread once the phone read one")

    # Opened on the page: "new messages" between what the phone read and what it did not,
    # and the page reads the rest, which the phone hears.
    page.channel_button("#lobby").click()
    page.wait(lambda: page.text("title") == "#lobby", "#lobby on screen")
    around = page.wait(lambda: page.driver.execute_script(AROUND_RULE), "the new-messages rule")
    assert around[0].endswith("after 1") and around[1].endswith("after 2"), around
    phone.expect(rf" MARKREAD #lobby timestamp={re.escape(third)}$")
    # The rule stays where the new lines began while dana is reading them.
    assert page.driver.execute_script(AROUND_RULE) == around
    assert unread(page, "#lobby") is None

    # Away in #side again, a new line in #lobby; read on the phone, it is read on the page.
    page.channel_button("#side").click()
    page.wait(lambda: page.text("title") == "#side", "#side on screen")
    (later,) = say_apart(bob, phone, "#lobby", "later")
    page.wait(lambda: unread(page, "#lobby") == "1", "one unread in #lobby")
    phone.send(f"MARKREAD #lobby timestamp={later}")
    page.wait(lambda: unread(page, "#lobby") is None, "#lobby read on the phone, so on the page")

    # A private conversation's marker is asked for when its buffer opens.
    bob.send("PRIVMSG dana :psst")
    page.wait(lambda: unread(page, "bob") == "1", "bob's line unread")
    page.wait(
        lambda: page.driver.execute_script('return state.buffers.get("bob").marker === null'),
        "the page told that the conversation with bob was never read",
    )
    assert page.console_errors() == []


def test_delete_your_own_line_and_as_an_operator_anyones(open_browser, web, tcp):
    bob = tcp("bob", f"{CAPS} draft/message-redaction")  # first in #lobby: its operator
    page = open_browser()
    page.login(web, "alice")
    page.wait(lambda: "@bob" in page.members(), "bob listed")

    page.type("oops, wrong window")
    _, msgid = said_at(bob, r":alice!\S+ PRIVMSG #lobby :oops, wrong window$")
    line = page.wait_message("oops, wrong window")
    assert line.get_attribute("data-msgid") == msgid
    ActionChains(page.driver).move_to_element(line).perform()  # shown on hover
    delete = line.find_element(By.CSS_SELECTOR, "button.delete")
    page.wait(lambda: delete.value_of_css_property("opacity") == "1", "the delete button shown")
    delete.click()
    assert delete.text == "delete?"  # a second click deletes
    delete.click()
    bob.expect(rf":alice!\S+ REDACT #lobby {re.escape(msgid)}$")
    gone = page.wait_message("message deleted")
    assert "redacted" in page.classes(gone) and page.message("oops, wrong window") is None

    # bob deletes his own line, with a reason; alice may not delete it (not an operator).
    bob.send("PRIVMSG #lobby :a line bob regrets")
    regret = page.wait_message("a line bob regrets")
    assert regret.find_elements(By.CSS_SELECTOR, "button.delete") == []
    bob.send(f"REDACT #lobby {regret.get_attribute('data-msgid')} :posted by mistake")
    page.wait_message("message deleted (posted by mistake)")

    # A refusal is said on the page.
    page.driver.execute_script('send("REDACT #lobby no-such-message")')
    page.wait_message("Could not delete the message: ")

    # Where alice is the operator, she may delete bob's lines too.
    page.type("/join #ops")
    page.wait(lambda: page.text("title") == "#ops", "#ops on screen")
    bob.join("#ops")
    bob.send("PRIVMSG #ops :buy cheap watches")
    spam = page.wait_message("buy cheap watches")
    spam_id = spam.get_attribute("data-msgid")
    ActionChains(page.driver).move_to_element(spam).perform()
    delete = spam.find_element(By.CSS_SELECTOR, "button.delete")
    delete.click()
    delete.click()
    bob.expect(rf":alice!\S+ REDACT #ops {re.escape(spam_id)}$")
    page.wait(lambda: page.message("buy cheap watches") is None, "the spam deleted")
    assert page.console_errors() == []


def test_the_pages_history_helpers(open_browser, web):
    """app.js's pure helpers for history and read markers, run in the browser."""
    page = open_browser()
    page.driver.get(web)
    got = page.driver.execute_script(
        """
        const at = (s) => new Date(Date.UTC(2026, 0, 2, 3, 4, s));
        const line = (s, fields = {}) => ({ msg: { command: "PRIVMSG", source: "bob!b@h",
          params: ["#c", "x"], tags: {} }, kind: "message", nick: "bob", time: at(s),
          serverTime: at(s).toISOString(), msgid: "", mine: false, ...fields });
        const names = (lines) => lines.map((l) => l.name);
        const mine = line(5, { mine: true });
        const join = line(7, { kind: "event", nick: undefined,
          msg: { command: "JOIN", source: "bob!b@h", params: ["#c"], tags: {} } });
        return {
          merged: names(mergeLines(
            [line(1, { name: "a" }), line(3, { name: "b" }), line(5, { name: "c" })],
            [line(0, { name: "x" }), line(3, { name: "y" }), line(4, { name: "z" })])),
          reference: [
            historyReference([line(1), join, line(2, { msgid: "m2" }), line(3, { msgid: "m3" })]),
            historyReference([line(2, { msgid: "m2", redacted: {} }), line(3, { msgid: "m3" })]),
            historyReference([line(2, { msgid: "m2" })], { msgid: "c1", time: at(1) }),
            historyReference([line(2, { msgid: "m2" })], { msgid: "c3", time: at(3) }),
            historyReference([line(2, { msgid: "m2" })], null, true),
            historyReference([{ msg: { tags: {} }, kind: "notice", time: at(0) }, line(4)]),
            historyReference([]),
          ],
          markers: ["*", "timestamp=2026-01-02T03:04:05.678Z", "timestamp=soon", ""]
            .map(parseMarker)
            .map((t) => (t === undefined ? "undefined" : t && t.getTime())),
          rule: [
            ruleIndex([line(1), line(2), line(3)], at(2)),
            ruleIndex([line(1), line(2), line(3)], at(0)),
            ruleIndex([line(1), line(2), line(3)], at(3)),
            ruleIndex([line(1), mine, join], at(1)),
          ],
          unread: [
            unreadCounts([line(1), line(2), line(3, { mentioned: true }), mine], at(1)),
            unreadCounts([line(1, { mentioned: true }), line(2, { redacted: {} })], at(1)),
          ],
          held: [
            isHeld(new Set(lineKeys(line(1, { msgid: "m1" }))), line(9, { msgid: "m1" })),
            isHeld(new Set(lineKeys(line(1, { msgid: "m1" }))), line(1, { msgid: "m2" })),
            isHeld(new Set(lineKeys({ ...join, msgid: "j1" })), { ...join, msgid: "j1" }),
            isHeld(new Set(lineKeys(join)), join),
          ],
        };
        """
    )
    assert got["merged"] == ["x", "a", "y", "b", "z", "c"]  # history first on a tie
    assert got["reference"] == [
        "msgid=m2",  # the oldest message with a msgid (not the join, maybe never stored)
        "msgid=m3",  # a deleted line is no longer in history
        "msgid=c1",  # what history returned last is older
        "msgid=m2",
        "timestamp=2026-01-02T03:04:02.000Z",  # that msgid found nothing: by its time
        "timestamp=2026-01-02T03:04:04.000Z",  # our own notes have no server time
        None,
    ]
    assert got["markers"] == [None, 1767323045678, "undefined", "undefined"]
    assert got["rule"] == [2, 0, -1, -1]  # nothing unread after it (ours, a join): no rule
    assert got["unread"] == [
        {"count": 2, "mentioned": True},
        {"count": 0, "mentioned": False},
    ]
    assert got["held"] == [True, False, True, False]
