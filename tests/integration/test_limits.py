"""Limits and hiding: targets, channels per user, 512-byte lines, secret and invisible."""

from __future__ import annotations

import gc

from greenchat.server.session import display_host


def test_targets_are_unique_case_insensitively_and_limited(connect):
    alice = connect("alice").join("#amp")
    bob = connect("bob").join("#amp")
    alice.send("PRIVMSG #amp,#AMP,#Amp :once", "PRIVMSG bob,BOB,Bob :once more")
    bob.expect(r"PRIVMSG #amp :once$")
    bob.expect(r"PRIVMSG bob :once more$")
    bob.sync()
    assert sum(line.endswith(":once") for line in bob.lines) == 1
    assert sum(line.endswith(":once more") for line in bob.lines) == 1
    alice.send("PRIVMSG a,b,c,d,e :too many")
    alice.expect(r" 407 alice a,b,c,d,e :Too many targets$")


def test_chanlimit(make_server):
    from transcript import IrcClient

    client = IrcClient(make_server(max_channels=3).port).register("hog")
    client.send("JOIN #a,#b,#c,#d")
    client.expect(r" 366 hog #c ")
    client.expect(r" 405 hog #d :You have joined too many channels$")
    client.send("JOIN #a")  # rejoining a channel one is in is not a new one
    client.sync()
    assert not any(" 405 hog #a " in line for line in client.lines)
    client.close()


def test_no_line_over_512_bytes(connect):
    long_name = "R" * 470
    alice = connect()
    alice.send("NICK alice", f"USER alice 0 * :{long_name}")
    alice.expect(r" 001 alice ")
    alice.join("#" + "\u00e9" * 30)
    bob = connect("bob")
    alice.send("TOPIC #" + "\u00e9" * 30 + " :" + "\U0001f600" * 108)  # 432 bytes
    alice.send("PRIVMSG bob :" + "x" * 490)
    bob.expect(r"PRIVMSG bob :x+$")
    bob.send("WHOIS alice", "WHO alice", "JOIN #" + "\u00e9" * 30)
    bob.expect(r" 366 bob ")
    for line in bob.lines:
        body = line.split(" ", 1)[1] if line.startswith("@") else line
        assert len(body.encode()) + 2 <= 512, line[:80]
        assert "\ufffd" not in line  # cut on a character boundary


def test_secret_topic_needs_membership(connect):
    op = connect("op").join("#sec")
    op.send("MODE #sec +s", "TOPIC #sec :launch codes")
    op.expect(r"TOPIC #sec :launch codes$")
    eve = connect("eve")
    eve.send("TOPIC #sec")
    eve.expect(r" 442 eve #sec :You're not on that channel$")
    assert not any("launch codes" in line for line in eve.lines)


def test_names_hides_invisible_users_from_outsiders(connect):
    bob = connect("bob").join("#pub")
    bob.send("MODE bob +i")
    bob.expect(r"MODE bob :\+i$")
    carol = connect("carol").join("#pub")
    eve = connect("eve")
    eve.send("NAMES #pub")
    eve.expect(r" 353 eve = #pub :carol$")
    assert any(line.endswith(":@bob carol") for line in carol.lines)


def test_invalid_client_tag_names_are_not_relayed(connect):
    alice = connect().register_with_caps("alice", "message-tags").join("#t")
    bob = connect().register_with_caps("bob", "message-tags").join("#t")
    alice.send("@+\u00fc=1;+;+a@b=2;+ok=3 PRIVMSG #t :tags")
    line = bob.expect(r"PRIVMSG #t :tags$").string
    assert "+ok=3" in line and "\u00fc" not in line and "a@b" not in line


def test_unknown_user_modes_get_one_reply(connect):
    alice = connect("alice")
    alice.send("MODE alice +" + "Z" * 50)
    alice.sync()
    assert sum(" 501 " in line for line in alice.lines) == 1


def test_invites_do_not_keep_gone_users(server, connect):
    op = connect("op").join("#inv")
    guest = connect("guest")
    op.send("INVITE guest #inv")
    op.expect(r" 341 op guest #inv$")
    guest.send("QUIT")
    guest.expect_closed()
    op.sync()

    def invited() -> int:
        gc.collect()
        return len(server.server.hub.get_channel("#inv").invited)

    assert server.call(invited) == 0


def test_display_host():
    assert display_host("127.0.0.1") == "127.0.0.1"
    assert display_host("::1") == "0::1"
    assert display_host("::ffff:10.0.0.1") == "10.0.0.1"
    assert display_host("2001:db8::1") == "2001:db8::1"
