"""WHO, NAMES and LIST replies larger than the asker's sendq go out in pages (paging.py).

The server's sendq is 16 KiB here and #big has 300 members, so each reply is
larger than the sendq: built at once it would cost the asker its connection
(SendQ exceeded). Paged, the asker gets all of it, labeled or not, and every
page after the first costs it a flood-control token.
"""

from __future__ import annotations

import re
import time

import pytest
from transcript import IrcClient

MEMBERS = 300
SENDQ = 16 * 1024

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def big(make_server):
    server = make_server(sendq=SENDQ, flood_burst=1000, flood_rate=4)
    members = [IrcClient(server.port).register(f"member{i}").join("#big") for i in range(MEMBERS)]
    yield server
    for member in members:
        member.close()


def _asker(server, caps: str = "") -> IrcClient:
    client = IrcClient(server.port)
    return client.register_with_caps("asker", caps) if caps else client.register("asker")


def test_who_bigger_than_the_sendq_arrives_whole(big):
    asker = _asker(big)
    asker.send("WHO #big")
    who = asker.count_lines(b" 352 asker #big ", MEMBERS)
    nicks = {re.search(rb" (member\d+) H", line).group(1) for line in who}
    assert len(nicks) == MEMBERS
    asker.expect(r" 315 asker #big :End of WHO list$")
    asker.send("WHO *")  # every user, by mask
    assert len(asker.count_lines(b" 352 asker * ", MEMBERS + 1)) == MEMBERS + 1
    asker.expect(r" 315 asker \* :End of WHO list$")


def test_names_and_list_bigger_than_the_sendq_arrive_whole(big):
    asker = _asker(big)
    asker.send("NAMES #big")
    names = asker.count_lines(b" 353 asker = #big :", 1)
    asker.expect(r" 366 asker #big :End of /NAMES list$")
    shown = b" ".join(names + [line.encode() for line in asker.lines if " 353 " in line])
    assert all(f"member{i}".encode() in shown for i in range(MEMBERS))
    # LIST: 400 more channels (joined 50 at a time: their replies fit the sendq).
    listers = [IrcClient(big.port).register(f"lister{i}") for i in range(8)]
    for i, lister in enumerate(listers):
        lister.send(*(f"JOIN #room{i}-{n}" for n in range(50)))
        lister.sync(f"joined{i}")
    asker.send("LIST")
    assert len(asker.count_lines(b" 322 asker #", 401)) == 401
    asker.expect(r" 323 asker :End of /LIST$")


def test_a_labeled_big_reply_is_one_batch(big):
    asker = _asker(big, "labeled-response batch")
    asker.send("@label=w WHO #big")
    start = asker.expect(r"^@label=w :\S+ BATCH \+(\S+) labeled-response$")
    ref = start.group(1).encode()
    who = asker.count_lines(b" 352 asker #big ", MEMBERS)
    assert all(line.startswith(b"@batch=" + ref + b" ") for line in who)
    end = asker.expect(r" 315 asker #big :End of WHO list$")
    assert end.string.startswith(f"@batch={ref.decode()} ")
    asker.expect(rf"^:\S+ BATCH -{ref.decode()}$")


def test_pages_cost_flood_tokens(big):
    asker = _asker(big)
    conn = big.call(lambda: big.server.hub.nick_owner("asker").session)
    before = conn.flood.tokens
    asker.send("WHO #big")
    asker.count_lines(b" 352 asker #big ", MEMBERS)
    asker.expect(r" 315 asker #big ")
    spent = before - conn.flood.tokens
    assert spent >= 1 + 5  # the command and at least five pages after the first


def test_a_client_looping_who_does_not_hold_up_the_others(big):
    """Bystanders chat while one client loops WHO #big: their lines keep coming promptly."""
    looper = _asker(big)
    alice = IrcClient(big.port).register("alice").join("#quiet")
    bob = IrcClient(big.port).register("bob").join("#quiet")
    looper.send(*["WHO #big"] * 20)
    worst = 0.0
    for n in range(20):
        sent = time.monotonic()
        alice.send(f"PRIVMSG #quiet :ping {n}")
        bob.expect(rf"PRIVMSG #quiet :ping {n}$")
        worst = max(worst, time.monotonic() - sent)
    # Generous for a shared 2-core machine; unpaged it was the whole reply's build time
    # per WHO, back to back.
    assert worst < 1.0
    looper.count_lines(b" 315 asker #big ", 1, timeout=30)
