"""draft/multiline over real sockets: a client's batch of lines is one message, as a
batch to clients with the capability (and to the sender's echo, labeled), as plain
lines to the others, refused whole when it breaks a rule, stored as one message."""

from __future__ import annotations

import re

from greenchat.protocol.message import parse

ML = "draft/multiline batch message-tags"


def tags_of(line: str) -> dict[str, str]:
    return parse(line).tags


def send_batch(client, target: str, lines: list[str], ref: str = "m1", opener_tags: str = ""):
    """``lines`` as one multiline message; a line starting with '+' is concatenated."""
    out = [f"{opener_tags}BATCH +{ref} draft/multiline {target}"]
    for line in lines:
        concat = line.startswith("+")
        tags = f"@batch={ref};draft/multiline-concat" if concat else f"@batch={ref}"
        out.append(f"{tags} PRIVMSG {target} :{line[1:] if concat else line}")
    out.append(f"BATCH -{ref}")
    client.send(*out)


def read_batch(client, kind: str = "draft/multiline") -> tuple[str, list[str]]:
    """The opening line of the next batch of ``kind``, and the lines inside it."""
    opened = client.expect(rf" BATCH \+(\S+) {re.escape(kind)}")
    ref, lines = opened.group(1), []
    while not re.search(rf" BATCH -{re.escape(ref)}$", line := client.read_line()):
        lines.append(line)
    return opened.string, lines


def test_advertised_with_its_limits(connect):
    client = connect()
    client.send("CAP LS 302")
    assert "draft/multiline=max-bytes=4096,max-lines=100" in client.read_cap_ls()


def test_a_batch_arrives_as_one_and_falls_back_to_lines(connect):
    alice = connect().register_with_caps("alice", f"{ML} echo-message labeled-response")
    alice.join("#m")
    bob = connect().register_with_caps("bob", ML).join("#m")
    plain = connect("plain").join("#m")
    plain.send("PING :joined")
    plain.expect(r"PONG \S+ :?joined$")
    send_batch(alice, "#m", ["first line", "", "third", "+ and more"],
               opener_tags="@label=L1;+draft/reply=x ")  # fmt: skip
    opened, lines = read_batch(bob)
    assert opened.startswith("@") and ":alice!" in opened and opened.endswith(" #m")
    opener = tags_of(opened)
    msgid = opener["msgid"]
    assert opener["+draft/reply"] == "x"
    assert [parse(line).params[-1] for line in lines] == ["first line", "", "third", " and more"]
    assert "draft/multiline-concat" in tags_of(lines[3])
    assert all(parse(line).command == "PRIVMSG" for line in lines)
    echo_open, echo_lines = read_batch(alice)
    assert tags_of(echo_open)["label"] == "L1" and tags_of(echo_open)["msgid"] == msgid
    assert len(echo_lines) == 4
    got = [plain.expect(rf":alice!\S+ PRIVMSG #m :{re.escape(t)}$").string
           for t in ("first line", "", "third", " and more")]  # fmt: skip
    assert got[0].startswith(":alice!")  # no tags asked for: plain lines


def test_a_broken_batch_is_refused_whole(connect):
    alice = connect().register_with_caps("alice", ML).join("#m")
    bob = connect().register_with_caps("bob", ML).join("#m")
    alice.send("BATCH +a draft/multiline #m", "@batch=a PRIVMSG #other :wrong target",
               "BATCH -a")  # fmt: skip
    alice.expect(r"FAIL BATCH MULTILINE_INVALID_TARGET #m #other :")
    send_batch(alice, "#m", ["+concatenated first"], ref="b")
    alice.expect(r"FAIL BATCH MULTILINE_INVALID :A concatenated line may not be empty or first$")
    send_batch(alice, "#m", ["x" * 400] * 11, ref="c")
    alice.expect(r"FAIL BATCH MULTILINE_MAX_BYTES 4096 :The message is too long$")
    send_batch(alice, "#m", ["l"] * 101, ref="d")
    alice.expect(r"FAIL BATCH MULTILINE_MAX_LINES 100 :The message has too many lines$")
    alice.send("BATCH -nope")
    alice.expect(r"FAIL BATCH MULTILINE_INVALID :No such batch is open$")
    send_batch(alice, "#m", ["after the refusals"], ref="e")
    _, lines = read_batch(bob)
    assert [parse(line).params[-1] for line in lines] == ["after the refusals"]
    assert not any("wrong target" in line or "xxxx" in line for line in bob.lines)
    plain = connect("plain")
    plain.send("BATCH +z draft/multiline #m")
    plain.expect(r"FAIL BATCH MULTILINE_INVALID :Enable draft/multiline and batch first$")


def test_a_private_multiline_message_and_one_to_oneself(connect):
    alice = connect().register_with_caps("alice", f"{ML} echo-message")
    bob = connect().register_with_caps("bob", ML)
    send_batch(alice, "bob", ["to bob", "+ only"])
    _, lines = read_batch(bob)
    assert [parse(line).params[-1] for line in lines] == ["to bob", " only"]
    send_batch(alice, "alice", ["me", "myself"], ref="self")
    read_batch(alice)  # the delivery
    read_batch(alice)  # the echo


def test_history_keeps_it_as_one_message(make_server, connect):
    server = make_server(flood_rate=0)
    caps = "batch server-time message-tags draft/chathistory"
    alice = connect(port=server.port).register_with_caps("alice", f"{caps} draft/multiline")
    alice.join("#h")
    old = connect(port=server.port).register_with_caps("old", caps).join("#h")
    send_batch(alice, "#h", ["one", "two", "+ three"])
    old.expect(r"PRIVMSG #h : three$")
    alice.send("CHATHISTORY LATEST #h * 10")
    _, inside = read_batch(alice, "chathistory")
    kinds = [parse(line).command for line in inside]
    assert kinds == ["BATCH", "PRIVMSG", "PRIVMSG", "BATCH"]  # one message, its batch
    assert [parse(line).params[-1] for line in inside[1:3]] == ["one", "two three"]
    old.send("CHATHISTORY LATEST #h * 10")
    _, inside = read_batch(old, "chathistory")
    assert [parse(line).params[-1] for line in inside] == ["one", "two three"]
    ids = [tags_of(line)["msgid"] for line in inside]
    assert len(set(ids)) == 2
