"""``greenchat-serve --db FILE`` stopped and started again: accounts and registered channels
(topic, modes, key, limit, bans, exceptions, founder) are back; an unregistered channel is not."""

from __future__ import annotations

import pytest
from transcript import IrcClient

pytestmark = pytest.mark.e2e

PASSWORD = "hunter2-is-long"


def service_reply(client: IrcClient, service: str, pattern: str):
    return client.expect(rf"^:{service}!{service}@services\.\S+ NOTICE \S+ :{pattern}")


def test_a_registered_channel_and_its_founder_survive_a_restart(serve, tmp_path):
    db = str(tmp_path / "restart.db")
    first = serve("--db", db, "--no-web")
    alice = IrcClient(first.port).register("alice")
    alice.send(f"NS REGISTER {PASSWORD}")
    service_reply(alice, "NickServ", "Account created: alice.")
    alice.join("#keep").join("#gone")
    alice.send("TOPIC #keep :before registering")  # the state at REGISTER is stored...
    alice.send("PRIVMSG ChanServ :REGISTER #keep")
    service_reply(alice, "ChanServ", "#keep is registered")
    # ...and every change after it, as it happens.
    alice.send("TOPIC #keep :kept across restarts", "MODE #keep +mk-t+lb secret 7 *!*@bad.example")
    alice.expect(r" MODE #keep \+mk-t\+lb secret 7 \*!\*@bad\.example")
    alice.send("MODE #keep +eI m:quiet a:trusted")
    alice.expect(r" MODE #keep \+eI m:quiet!\*@\* a:trusted$")
    alice.send("TOPIC #gone :not registered")
    alice.sync()
    assert first.stop() == 0
    alice.expect_closed()

    second = serve("--db", db, "--no-web")
    second.wait_log(r"restored 1 registered channels")
    bob = IrcClient(second.port).register("bob")
    bob.send("TOPIC #keep")  # there before anyone joins, as it was
    bob.expect(r" 332 bob #keep :kept across restarts")
    bob.expect(r" 333 bob #keep alice!\S+ \d+")
    bob.send("MODE #keep")
    bob.expect(r" 324 bob #keep \+lmn 7$")  # the key only for members
    bob.send("MODE #keep b")
    bob.expect(r" 367 bob #keep \*!\*@bad\.example alice!\S+ \d+")
    bob.send("TOPIC #gone")
    bob.expect(r" 403 bob #gone ")
    bob.send("JOIN #keep")
    bob.expect(r" 475 bob #keep ")
    bob.send("JOIN #keep secret")
    bob.expect(r" 353 bob = #keep :bob$")  # first in, not opped
    back = IrcClient(second.port).register("alice")
    back.send(f"NS IDENTIFY {PASSWORD}")
    service_reply(back, "NickServ", "You are now logged in as alice.")
    back.send("JOIN #keep")  # no key needed: the founder
    back.expect(r"^:greenchat\.local MODE #keep \+o alice$")
    back.expect(r" 353 alice = #keep :bob @alice$")
    back.send("MODE #keep")
    back.expect(r" 324 alice #keep \+klmn secret 7$")
    back.send("MODE #keep eI")
    back.expect(r" 348 alice #keep m:quiet!\*@\* alice!\S+ \d+$")
    back.expect(r" 346 alice #keep a:trusted alice!\S+ \d+$")
    back.send("PRIVMSG ChanServ :INFO #keep")
    service_reply(back, "ChanServ", "Founder: alice")
    for client in (alice, bob, back):
        client.close()
    assert second.stop() == 0
