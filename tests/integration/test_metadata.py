"""IRCv3 metadata (draft/metadata-3) over real sockets, on one node and two: GET, LIST,
SET, CLEAR, SUB, UNSUB, SUBS and SYNC; who is told of a change; keys before
registration; limits and refusals; a JOIN's sync; keys kept by an account and by a
registered channel."""

from __future__ import annotations

import re

import pytest
from test_sasl import plain
from transcript import register_account

from greenchat.backplane import Unavailable
from greenchat.protocol.message import parse
from greenchat.server import metadata as server_metadata

MD = "draft/metadata-3 batch"
PASSWORD = "hunter2-is-long"


def read_batch(client, kind: str = "metadata") -> tuple[list[str], list[str]]:
    """The parameters after the kind of the next batch of ``kind``, and its lines."""
    opened = client.expect(rf" BATCH \+(\S+) {re.escape(kind)}( .*)?$")
    ref, lines = opened.group(1), []
    while not re.search(rf" BATCH -{re.escape(ref)}$", line := client.read_line()):
        assert f"batch={ref}" in line, line
        lines.append(line)
    return (opened.group(2) or "").split(), lines


def params(lines: list[str]) -> list[tuple[str, ...]]:
    """Each line's command and parameters after the recipient (numerics) or as they are."""
    out = []
    for line in lines:
        msg = parse(line)
        rest = msg.params[1:] if msg.command.isdigit() else msg.params
        out.append((msg.command, *rest))
    return out


def sub(client, *keys: str) -> None:
    client.send(f"METADATA * SUB {' '.join(keys)}")
    client.expect(r" 770 \S+ ")


def set_key(client, target: str, key: str, value: str) -> None:
    client.send(f"METADATA {target} SET {key} :{value}")
    client.expect(rf" 761 \S+ \S+ {re.escape(key)} \* :")


def barrier(sender, reader, channel: str, text: str) -> list[str]:
    """``sender`` says ``text`` in ``channel``; the lines ``reader`` got until it came
    (every line ``sender`` caused before it arrives before it, on any node)."""
    sender.send(f"PRIVMSG {channel} :{text}")
    start = len(reader.lines)
    reader.expect(rf"PRIVMSG {re.escape(channel)} :{re.escape(text)}$")
    return reader.lines[start:-1]


def test_advertised_with_its_limits(connect):
    client = connect()
    client.send("CAP LS 302")
    value = "before-connect,max-subs=50,max-keys=30,max-value-bytes=300,max-key-bytes=64"
    assert f"draft/metadata-3={value}" in client.read_cap_ls()


def test_set_get_list_and_clear_own_keys(connect):
    alice = connect().register_with_caps("alice", MD)
    assert read_batch(alice) == (["alice"], [])  # the burst: no keys yet
    set_key(alice, "*", "avatar", "https://example.test/a.png")
    alice.send("METADATA * SET display-name :Alice Liddell", "METADATA * SET empty :")
    alice.expect(r" 761 alice alice display-name \* :Alice Liddell$")
    alice.expect(r" 761 alice alice empty \* :$")  # an empty value is a value
    alice.send("METADATA alice GET avatar missing Bad")
    alice.expect(r"FAIL METADATA KEY_INVALID Bad :")
    head, lines = read_batch(alice)
    assert head == ["alice"]
    assert params(lines) == [
        ("761", "alice", "avatar", "*", "https://example.test/a.png"),
        ("766", "alice", "missing", "Key is not set"),
    ]
    alice.send("METADATA * LIST")
    _, lines = read_batch(alice)
    assert [p[2] for p in params(lines)] == ["avatar", "display-name", "empty"]
    alice.send("METADATA * SET empty")
    alice.expect(r" 766 alice alice empty :Key is not set$")
    alice.send("METADATA * SET empty")
    alice.expect(r"FAIL METADATA KEY_NOT_SET alice empty :")
    alice.send("METADATA * CLEAR")
    _, lines = read_batch(alice)
    assert sorted(p[2] for p in params(lines)) == ["avatar", "display-name"]
    alice.send("METADATA * LIST")
    assert read_batch(alice) == (["alice"], [])


def test_refusals(connect):
    alice = connect().register_with_caps("alice", MD)
    bob = connect("bob")
    alice.send("METADATA * SET Avatar :x")
    alice.expect(r"FAIL METADATA KEY_INVALID Avatar :")
    alice.send("METADATA * SET a:b :x")
    alice.expect(r"FAIL METADATA KEY_INVALID a:b :")
    alice.send(f"METADATA * SET {'k' * 65} :x")
    alice.expect(rf"FAIL METADATA KEY_INVALID {'k' * 65} :")
    alice.send(f"METADATA * SET bio :{'é' * 151}")  # 302 bytes
    alice.expect(r"FAIL METADATA VALUE_INVALID alice bio :Value is too long")
    alice.send("METADATA * FROB", "METADATA nobody GET avatar", "METADATA *")
    alice.expect(r"FAIL METADATA SUBCOMMAND_INVALID FROB :")
    alice.expect(r"FAIL METADATA INVALID_TARGET nobody :")
    alice.expect(r" 461 alice METADATA :")
    alice.send("METADATA * SET a b c")
    alice.expect(r" 461 alice METADATA :")
    bob.send("METADATA alice SET avatar :stolen")
    bob.expect(r"FAIL METADATA KEY_NO_PERMISSION alice avatar :")
    bob.send("METADATA alice CLEAR")
    bob.expect(r"FAIL METADATA KEY_NO_PERMISSION alice \* :")
    alice.join("#c")
    bob.join("#c")
    bob.send("METADATA #c SET url :https://example.test")
    bob.expect(r"FAIL METADATA KEY_NO_PERMISSION #c url :")
    carol = connect("carol")
    set_key(alice, "#c", "url", "https://example.test")
    carol.send("METADATA #c GET url", "METADATA #c LIST")
    carol.expect(r"FAIL METADATA KEY_NO_PERMISSION #c \* :")  # not a member
    bob.send("METADATA #c GET url")
    bob.expect(r" 761 bob #c url \* :https://example.test$")


def test_a_value_must_fit_the_line_its_reply_takes(connect):
    alice = connect().register_with_caps("alice", MD)
    channel = "#" + "é" * 63  # 127 bytes of the 512
    alice.join(channel)
    alice.send(f"METADATA {channel} SET {'k' * 64} :{'x' * 300}")
    alice.expect(r"FAIL METADATA VALUE_INVALID \S+ k+ :Value is too long for this target$")
    set_key(alice, channel, "k" * 64, "x" * 200)
    alice.send(f"METADATA {channel} GET {'k' * 64}")
    _, lines = read_batch(alice)
    assert params(lines)[0][-1] == "x" * 200  # whole, not clipped
    assert all(len(line.encode()) <= 512 for line in alice.lines)


@pytest.mark.single_process("makes one hub refuse the change as a network would")
def test_a_change_the_network_cannot_take_is_refused_and_not_kept(server, connect):
    register_account(server.port, "alice", PASSWORD)
    alice = connect().register_with_caps("alice", MD)
    alice.send(f"PRIVMSG NickServ :IDENTIFY {PASSWORD}")
    alice.expect(r" 900 alice ")
    hub = server.server.hub
    apply = hub.apply

    def refusing(event, *args, **kwargs):
        if event.kind == "metadata":
            raise Unavailable("Redis is down")
        return apply(event, *args, **kwargs)

    server.call(setattr, hub, "apply", refusing)
    try:
        alice.send("METADATA * SET avatar :a.png")
        alice.expect(r"FAIL METADATA TEMPORARILY_UNAVAILABLE alice :The change could not be made")
    finally:
        server.call(delattr, hub, "apply")
    alice.send("METADATA * GET avatar")
    alice.expect(r" 766 alice alice avatar ")
    assert server.call(server.server.storage.store.account_metadata, "alice") == {}


def test_at_most_max_keys_and_a_rate(connect):
    alice = connect().register_with_caps("alice", MD).join("#c")
    for number in range(10):  # the burst
        set_key(alice, "*", f"k{number}", "v")
    alice.send("METADATA * SET one-more :v")
    alice.expect(r" 775 alice alice one-more [12] :v$")
    for number in range(30):  # a channel's keys are not rate-limited
        set_key(alice, "#c", f"k{number}", "v")
    alice.send("METADATA #c SET k30 :v")
    alice.expect(r"FAIL METADATA LIMIT_REACHED #c :Too many keys \(at most 30\)$")
    set_key(alice, "#c", "k29", "changed")  # a key already set may change


def test_subscriptions(connect):
    alice = connect().register_with_caps("alice", MD)
    alice.send("METADATA * SUB avatar Bad display-name avatar")
    alice.expect(r"FAIL METADATA KEY_INVALID Bad :")
    alice.expect(r" 770 alice avatar :display-name$")
    alice.send("METADATA * UNSUB display-name never")
    alice.expect(r" 771 alice display-name :never$")
    alice.send("METADATA * SUBS")
    _, lines = read_batch(alice, "metadata-subs")
    assert params(lines) == [("772", "avatar")]
    keys = [f"key{n}" for n in range(60)]
    start = len(alice.lines)
    alice.send(f"METADATA * SUB {' '.join(keys)}")
    alice.expect(r"FAIL METADATA TOO_MANY_SUBS key49 :")
    alice.sync()  # the 770s follow the FAIL
    oks = [parse(line) for line in alice.lines[start:] if " 770 " in line]
    assert sum(len(ok.params) - 1 for ok in oks) == 49
    assert all(len(ok.params) <= 13 for ok in oks)  # some parsers stop at 15 parameters
    alice.send("METADATA * SUBS")
    _, lines = read_batch(alice, "metadata-subs")
    subscribed = {key for p in params(lines) for key in p[1:]}
    assert subscribed == {"avatar", *keys[:49]}
    assert all(len(line.encode()) <= 512 for line in lines)


def test_subscribers_sharing_a_channel_are_told(connect):
    alice = connect().register_with_caps("alice", MD).join("#c").join("#d")
    bob = connect().register_with_caps("bob", MD).join("#c")
    carol = connect().register_with_caps("carol", MD).join("#d")  # not subscribed to avatar
    dave = connect().register_with_caps("dave", MD)  # subscribed, no channel shared
    plain = connect("plain").join("#c")  # no capability
    sub(alice, "avatar", "url")
    sub(bob, "avatar", "url")
    sub(carol, "url")
    sub(dave, "avatar")
    set_key(alice, "*", "avatar", "https://example.test/a.png")
    bob.expect(r"^:greenchat\.local METADATA alice avatar \* :https://example\.test/a\.png$")
    assert not any("METADATA" in line for line in barrier(alice, carol, "#d", "one"))
    alice.send("METADATA * SET avatar")
    alice.expect(r" 766 alice alice avatar :")
    bob.expect(r"^:greenchat\.local METADATA alice avatar \*$")
    set_key(alice, "#c", "url", "https://example.test/c")
    bob.expect(r" METADATA #c url \* :https://example\.test/c$")
    got = barrier(alice, plain, "#c", "two")
    assert not any("METADATA" in line for line in got)
    alice.send("METADATA #c SET url")
    bob.expect(r" METADATA #c url \*$")
    barrier(alice, bob, "#c", "three")
    # Nobody shares a channel with dave (a GET waits for its node to catch up), and
    # alice made the changes herself.
    dave.send("METADATA alice GET avatar")
    dave.expect(r" 766 dave alice avatar ")
    assert not any(" METADATA alice" in line for line in dave.lines)
    assert not any(line.startswith(":greenchat.local METADATA") for line in alice.lines)


def test_a_join_syncs_the_channel_and_tells_its_members(connect):
    alice = connect().register_with_caps("alice", MD).join("#c")
    sub(alice, "avatar")
    set_key(alice, "*", "avatar", "alice.png")
    set_key(alice, "#c", "url", "https://example.test/c")
    bob = connect().register_with_caps("bob", MD)
    sub(bob, "avatar", "url")
    set_key(bob, "*", "avatar", "bob.png")
    bob.send("JOIN #c")
    bob.expect(r" 366 bob #c ")
    head, lines = read_batch(bob)
    assert head == ["#c"]
    assert sorted(params(lines)) == [
        ("METADATA", "#c", "url", "*", "https://example.test/c"),
        ("METADATA", "alice", "avatar", "*", "alice.png"),
        ("METADATA", "bob", "avatar", "*", "bob.png"),
    ]
    alice.expect(r" METADATA bob avatar \* :bob\.png$")  # the newcomer's keys
    bob.send("METADATA #c SYNC")
    _, again = read_batch(bob)
    assert sorted(params(again)) == sorted(params(lines))


def test_a_big_sync_is_postponed(connect, monkeypatch):
    monkeypatch.setattr(server_metadata, "SYNC_LATER_OVER", 2)
    alice = connect().register_with_caps("alice", MD).join("#c")
    for key in ("a", "b", "c"):
        set_key(alice, "#c", key, "v")
    bob = connect().register_with_caps("bob", MD)
    sub(bob, "a", "b", "c")
    bob.send("JOIN #c")
    bob.expect(r" 774 bob #c 5$")
    bob.send("METADATA #c SYNC")
    _, lines = read_batch(bob)
    assert len(lines) == 3


def test_keys_before_registration(connect):
    alice = connect()
    alice.send("CAP LS 302", "CAP REQ :draft/metadata-3 batch")
    alice.expect(r" CAP \* ACK ")
    alice.send("METADATA * SET avatar :early.png", "METADATA * SUB avatar")
    alice.expect(r" 761 \* \* avatar \* :early\.png$")
    alice.expect(r" 770 \* :avatar$")
    alice.send("METADATA * SYNC")  # no nick yet: '*'
    assert params(read_batch(alice)[1]) == [("METADATA", "*", "avatar", "*", "early.png")]
    alice.send("METADATA bob GET avatar")
    alice.expect(r" 451 \* :")  # only * before registration
    alice.send("NICK alice", "USER alice 0 * :Alice", "CAP END")
    alice.expect(r" (376|422) alice ")
    head, lines = read_batch(alice)
    assert head == ["alice"]
    assert params(lines) == [("METADATA", "alice", "avatar", "*", "early.png")]
    bob = connect("bob")
    bob.send("METADATA alice GET avatar")  # on the other node too
    bob.expect(r" 761 bob alice avatar \* :early\.png$")
    plain = connect()
    plain.send("METADATA * SET avatar :x")  # no capability: no before-connect
    plain.expect(r" 451 \* :")


def test_whois_shows_keys_to_metadata_clients(connect):
    alice = connect().register_with_caps("alice", MD)
    set_key(alice, "*", "pronouns", "she/her")
    bob = connect().register_with_caps("bob", MD)
    plain = connect("plain")
    bob.send("WHOIS alice")
    bob.expect(r" 760 bob alice pronouns \* :she/her$")
    plain.send("WHOIS alice")
    got = [plain.expect(r" 318 ").string]
    assert not any(" 760 " in line for line in plain.lines + got)


def test_an_account_keeps_its_keys(server, connect):
    register_account(server.port, "alice", PASSWORD)
    alice = connect().register_with_caps("alice", MD)
    alice.send(f"PRIVMSG NickServ :IDENTIFY {PASSWORD}")
    alice.expect(r" 900 alice ")
    set_key(alice, "*", "avatar", "kept.png")
    set_key(alice, "*", "gone", "soon")
    alice.send("METADATA * SET gone")
    alice.expect(r" 766 alice alice gone ")
    alice.send("QUIT")
    alice.expect_closed()
    again = connect().register_with_caps("alice", MD)
    sub(again, "avatar", "gone")
    again.send(f"PRIVMSG NickServ :IDENTIFY {PASSWORD}")
    again.expect(r"^:greenchat\.local METADATA alice avatar \* :kept\.png$")  # news to it
    again.send("METADATA * GET avatar gone")
    _, lines = read_batch(again)
    assert [p[0] for p in params(lines)] == ["761", "766"]
    # SASL before registration: the keys are in the burst.
    sasl = connect()
    sasl.send("CAP LS 302", "CAP REQ :draft/metadata-3 batch sasl", "AUTHENTICATE PLAIN")
    sasl.expect(r"AUTHENTICATE \+")
    sasl.send(f"AUTHENTICATE {plain('alice', PASSWORD)}")
    sasl.expect(r" 903 ")
    sasl.send("NICK alicia", "USER alice 0 * :Alice", "CAP END")
    sasl.expect(r" (376|422) alicia ")
    _, lines = read_batch(sasl)
    assert params(lines) == [("METADATA", "alicia", "avatar", "*", "kept.png")]


@pytest.mark.single_process("restarts the server on the same SQLite file")
def test_a_registered_channel_keeps_its_keys(make_server, connect, tmp_path):
    db = str(tmp_path / "chan.db")
    server = make_server(db=db)
    alice = connect(port=server.port).register("alice")
    alice.send(f"NS REGISTER {PASSWORD}")
    alice.expect(r"Account created")
    alice.join("#c")
    alice.send("PRIVMSG ChanServ :REGISTER #c")
    alice.expect(r"#c is registered")
    set_key(alice, "#c", "url", "https://example.test/kept")
    alice.sync()
    server.stop()
    again = make_server(db=db)
    bob = connect(port=again.port).register("bob").join("#c")
    bob.send("METADATA #c GET url")
    bob.expect(r" 761 bob #c url \* :https://example\.test/kept$")
