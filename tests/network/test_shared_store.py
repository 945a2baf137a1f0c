"""Two nodes, one store: ``--db redis`` keeps accounts, registered channels and history
in the backplane's Redis (store/redis_store.py), each change stored once by the node it
happened on, and what each node keeps of the store in memory follows the other's
changes (server/shared_store.py). On a single Redis and on a Redis Cluster."""

from __future__ import annotations

import base64
import re
import time

import pytest
from transcript import register_account, until

pytestmark = pytest.mark.timeout(60)
ON_A_CLUSTER_TOO = True  # conftest.py: each test again on a Redis Cluster (store included)

CAPS = "batch draft/chathistory message-tags server-time"
PASSWORD = "s3cret-pw"


@pytest.fixture
def pair(nodes):
    """Two nodes of one network sharing their store in its Redis."""
    return nodes(2, db="redis", flood_rate=0)


def _lines_until(client, pattern: str) -> list[str]:
    """The lines ``client`` reads up to and with the first that matches ``pattern``."""
    lines = []
    while (line := client.read_line()) is not None:
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"closed before {pattern!r}: {lines[-10:]}")


def _history(client, target: str) -> list[str]:
    """The texts CHATHISTORY LATEST gives ``client`` for ``target``."""
    client.send(f"CHATHISTORY LATEST {target} * 100")
    ref = client.expect(r"BATCH \+(\S+) chathistory")[1]
    texts = []
    while (line := client.read_line()) is not None and f"BATCH -{ref}" not in line:
        texts.append(line.rsplit(" :", 1)[1])
    return texts


def test_a_line_seen_on_one_node_is_in_its_history_there_while_its_node_stores_it(pair, connect):
    a, b = pair
    store = a.server.storage.store
    append = store.append_history

    def slow_append(items):  # a's store writes come 0.5 s late: a busy or distant store
        time.sleep(0.5)
        append(items)

    store.append_history = slow_append
    alice = connect(a).register_with_caps("alice", CAPS)
    bob = connect(b).register_with_caps("bob", CAPS)
    alice.join("#slow")
    bob.join("#slow")
    alice.expect(r":bob!\S+ JOIN #slow")
    alice.send("PRIVMSG #slow :one", "PRIVMSG #slow :two")
    bob.expect(r":alice!\S+ PRIVMSG #slow :two")
    assert _history(bob, "#slow") == ["one", "two"]  # b waited for a's write


def test_an_account_made_on_one_node_logs_in_and_is_protected_on_the_other(pair, connect):
    a, b = pair
    register_account(a.port, "alice", PASSWORD)
    # b learns of it: its nick is protected there, and its password works there.
    taker = connect(b, "alice")
    taker.expect(r"NOTICE alice :alice is a registered account\. Log in within")
    client = connect(b)
    client.send("CAP REQ :sasl", "NICK alyx", "USER a 0 * :A")
    client.expect(r"CAP \S+ ACK :?sasl")
    client.send("AUTHENTICATE PLAIN")
    client.expect(r"^AUTHENTICATE \+$")
    token = base64.b64encode(f"alice\0alice\0{PASSWORD}".encode()).decode()
    client.send(f"AUTHENTICATE {token}")
    client.expect(r" 900 \S+ \S+ alice :You are now logged in as alice")
    client.expect(r" 903 ")


def test_an_account_dropped_on_one_node_logs_out_its_users_on_the_other(pair, connect):
    a, b = pair
    register_account(a.port, "carol", PASSWORD)
    there = connect(b, "carol2")
    there.send(f"PRIVMSG NickServ :IDENTIFY carol {PASSWORD}")
    there.expect(r" 900 carol2 ")
    here = connect(a, "carol3")
    here.send(f"PRIVMSG NickServ :IDENTIFY carol {PASSWORD}")
    here.expect(r" 900 carol3 ")
    here.send(f"PRIVMSG NickServ :DROP {PASSWORD}")
    here.expect(r"NOTICE carol3 :Account carol dropped\.")
    there.expect(r" 901 carol2 \S+ :You are now logged out")
    later = connect(b, "carol")  # free to take on b: no login asked for
    later.send("PING :p")
    assert "registered account" not in " ".join(_lines_until(later, r"PONG"))


def test_a_channel_registered_on_one_node_gives_its_founder_ops_on_the_other(pair, connect):
    a, b = pair
    register_account(a.port, "dave", PASSWORD)
    founder = connect(a, "dave")
    founder.send(f"PRIVMSG NickServ :IDENTIFY dave {PASSWORD}", "JOIN #owned")
    founder.expect(r" 366 dave #owned ")
    founder.send("PRIVMSG ChanServ :REGISTER #owned")
    founder.expect(r"NOTICE dave :#owned is registered to your account dave")
    founder.send("PART #owned")
    founder.expect(r":dave!\S+ PART #owned")
    again = connect(b, "dave2")
    again.send(f"PRIVMSG NickServ :IDENTIFY dave {PASSWORD}")
    again.expect(r" 900 dave2 ")

    def opped_on_b() -> bool:
        again.send("JOIN #owned")
        lines = _lines_until(again, r" 366 dave2 #owned ")  # ChanServ's +o comes before
        again.send("PART #owned")
        again.expect(r":dave2!\S+ PART #owned")
        return any(re.search(r" MODE #owned \+o dave2", line) for line in lines)

    until(opped_on_b, what="the founder gets +o on joining on the other node")
    watcher = connect(a, "watcher").join("#owned")  # and a's replica has it too
    again.send("JOIN #owned")
    watcher.expect(r"MODE #owned \+o dave2")


def test_history_said_on_both_nodes_is_stored_once_and_read_on_either(pair, connect):
    a, b = pair
    alice = connect(a).register_with_caps("alice", CAPS)
    bob = connect(b).register_with_caps("bob", CAPS)
    alice.join("#h")
    bob.join("#h")
    alice.expect(r":bob!\S+ JOIN #h")
    for n in range(5):
        alice.send(f"PRIVMSG #h :a{n}")
        bob.expect(rf":alice!\S+ PRIVMSG #h :a{n}")
        bob.send(f"PRIVMSG #h :b{n}")
        alice.expect(rf":bob!\S+ PRIVMSG #h :b{n}")
    said = [f"{who}{n}" for n in range(5) for who in "ab"]
    for reader in (alice, bob):  # each line once, in order, whichever node is asked
        seen: list[list[str]] = []

        def stored_once(reader=reader, seen=seen) -> bool:
            seen.append(_history(reader, "#h"))
            return seen[-1] == said

        until(stored_once, what=lambda seen=seen: f"history {said}, read {seen[-1]}")
