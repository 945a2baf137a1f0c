"""IRCv3 capabilities: each one on and off, against a real server."""

from __future__ import annotations

import re

from greenchat.protocol.message import parse

TIME = r"time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def tags_of(line: str) -> dict[str, str]:
    return parse(line).tags


def test_cap_ls_302_lists_implemented_caps(connect):
    client = connect()
    client.send("CAP LS 302")
    caps = set(client.read_cap_ls())
    for cap in (
        "batch",
        "cap-notify",
        "echo-message",
        "extended-join",
        "labeled-response",
        "message-tags",
        "multi-prefix",
        "server-time",
        "standard-replies",
        "userhost-in-names",
    ):
        assert cap in caps


def test_server_time_only_for_clients_that_asked(connect):
    timed = connect().register_with_caps("timed", "server-time").join("#t")
    plain = connect("plain").join("#t")
    sender = connect("sender").join("#t")
    sender.send("PRIVMSG #t :what time is it")
    line = timed.expect(r"PRIVMSG #t :what time is it$").string
    assert re.match(rf"^@{TIME} :sender!", line)
    assert plain.expect(r"PRIVMSG #t :what time is it$").string.startswith(":sender!")


def test_message_tags_relay_client_tags_and_msgid(connect):
    tagged = connect().register_with_caps("tagged", "message-tags").join("#t")
    plain = connect("plain").join("#t")
    sender = connect().register_with_caps("sender", "message-tags").join("#t")
    sender.send("@+draft/reply=abc;+example.com/x=a\\sb;label=notrelayed PRIVMSG #t :reply")
    tags = tags_of(tagged.expect(r"PRIVMSG #t :reply$").string)
    assert tags["+draft/reply"] == "abc" and tags["+example.com/x"] == "a b"
    assert tags["msgid"] and "label" not in tags
    assert plain.expect(r"PRIVMSG #t :reply$").string.startswith(":sender!")
    # TAGMSG goes only to clients that enabled message-tags.
    sender.send("@+draft/react=:) TAGMSG #t")
    line = tagged.expect(r" TAGMSG #t$").string
    assert tags_of(line)["+draft/react"] == ":)"
    plain.sync()
    assert not any(" TAGMSG #t" in line for line in plain.lines)
    sender.send("@+draft/typing=active TAGMSG tagged")
    tagged.expect(r" TAGMSG tagged$")


def test_echo_message_returns_the_same_message(connect):
    echoer = connect().register_with_caps("echoer", "echo-message message-tags").join("#e")
    other = connect().register_with_caps("other", "message-tags").join("#e")
    echoer.send("PRIVMSG #e :hello me")
    mine = tags_of(echoer.expect(r"^@\S+ :echoer!\S+ PRIVMSG #e :hello me$").string)
    theirs = tags_of(other.expect(r"PRIVMSG #e :hello me$").string)
    assert mine["msgid"] == theirs["msgid"]
    echoer.send("PRIVMSG other :direct")
    echoer.expect(r":echoer!\S+ PRIVMSG other :direct$")
    plain = connect("plain").join("#e")
    plain.send("PRIVMSG #e :no echo for me")
    plain.sync()
    assert not any("no echo for me" in line for line in plain.lines)


def test_extended_join(connect):
    ext = connect().register_with_caps("ext", "extended-join").join("#x")
    connect("joiner").join("#x")
    ext.expect(r"^:joiner!~joiner@\S+ JOIN #x \* :joiner test$")


def test_multi_prefix_and_userhost_in_names(connect):
    op = connect().register_with_caps("op", "multi-prefix userhost-in-names").join("#p")
    op.send("MODE #p +v op")
    op.expect(r"MODE #p \+v op$")
    op.send("NAMES #p")
    op.expect(r" 353 op = #p :@\+op!~op@127\.0\.0\.1$")
    plain = connect("plain").join("#p")
    plain.send("NAMES #p")
    plain.expect(r" 353 plain = #p :@op plain$")


def test_labeled_response_single_ack_and_batch(connect):
    client = connect().register_with_caps("lab", "labeled-response batch")
    client.send("@label=one PING :x")
    assert tags_of(client.expect(r" PONG ").string) == {"label": "one"}
    client.join("#l")
    client.send("@label=two PRIVMSG #l :nobody echoes this")
    assert client.expect(r" ACK$").string == "@label=two :greenchat.local ACK"
    client.send("@label=three NAMES #l")
    start = client.expect(r" BATCH \+(\S+) labeled-response$")
    assert tags_of(start.string) == {"label": "three"}
    ref = start.group(1)
    assert tags_of(client.expect(r" 353 lab ").string) == {"batch": ref}
    assert tags_of(client.expect(r" 366 lab ").string) == {"batch": ref}
    client.expect(rf"^:greenchat\.local BATCH -{ref}$")


def test_labeled_response_without_batch_labels_every_line(connect):
    client = connect().register_with_caps("lab", "labeled-response").join("#l")
    client.send("@label=x NAMES #l")
    assert tags_of(client.expect(r" 353 lab ").string) == {"label": "x"}
    assert tags_of(client.expect(r" 366 lab ").string) == {"label": "x"}


def test_label_is_ignored_without_the_cap(connect):
    client = connect("nolab")
    client.send("@label=x PING :y")
    assert client.expect(r" PONG ").string.startswith(":greenchat.local PONG")


def test_cap_req_after_registration_changes_output(connect):
    late = connect("late").join("#c")
    sender = connect("sender").join("#c")
    late.send("CAP REQ :server-time")
    late.expect(r" CAP late ACK :?server-time$")
    sender.send("PRIVMSG #c :now with time")
    assert re.match(rf"^@{TIME} ", late.expect(r"now with time$").string)
    late.send("CAP REQ :-server-time")
    late.expect(r" CAP late ACK :?-server-time$")
    sender.send("PRIVMSG #c :and without")
    assert late.expect(r"and without$").string.startswith(":sender!")


def test_a_waiting_labeled_command_labels_only_its_own_replies(make_server, connect, monkeypatch):
    """OPER waits for scrypt in the thread pool; what others say meanwhile is not its reply."""
    import threading

    from greenchat.server.commands import oper as oper_commands
    from greenchat.server.oper import hash_password

    started, release = threading.Event(), threading.Event()

    def slow_verify(password: str, stored: str) -> bool:  # runs in a pool thread
        started.set()
        release.wait(10)
        return True

    monkeypatch.setattr(oper_commands, "verify_password", slow_verify)
    server = make_server(opers={"admin": hash_password("pw")})
    admin = connect(port=server.port).register_with_caps("admin", "labeled-response batch")
    admin.join("#w")
    talker = connect("talker", port=server.port).join("#w")
    admin.send("@label=op OPER admin pw")
    assert started.wait(10)
    talker.send("PRIVMSG #w :said while admin waits")
    said = admin.expect(r" PRIVMSG #w :said while admin waits$")
    assert "label" not in said.string and "batch" not in said.string  # went out at once
    release.set()
    start = admin.expect(r" BATCH \+(\S+) labeled-response$")
    assert tags_of(start.string) == {"label": "op"}
    ref = start.group(1)
    assert tags_of(admin.expect(r" 381 admin ").string) == {"batch": ref}
    assert tags_of(admin.expect(r" MODE admin :?\+o$").string) == {"batch": ref}
    admin.expect(rf"^:greenchat\.local BATCH -{ref}$")


def test_a_message_to_yourself_comes_back_twice_with_echo_message(connect):
    """To your own nick with echo-message: the delivery and the echo, the same msgid;
    with labeled-response only the echo carries the label (the delivery is not the
    reply). Without echo-message: the delivery, and the label's ACK."""
    me = connect().register_with_caps("me", "echo-message message-tags labeled-response")
    for verb, tags in (("PRIVMSG", ""), ("NOTICE", ""), ("TAGMSG", "+draft/react=x;")):
        text = "" if verb == "TAGMSG" else f" :to myself by {verb}"
        me.send(f"@{tags}label={verb} {verb} me{text}")
        pattern = rf":me!\S+ {verb} me{re.escape(text)}$"
        first, second = tags_of(me.expect(pattern).string), tags_of(me.expect(pattern).string)
        assert [first.get("label"), second.get("label")] == [None, verb]
        assert first["msgid"] == second["msgid"]
    me.send("PRIVMSG me :once more", "PING :after")
    me.expect(r"PRIVMSG me :once more$")
    me.expect(r"PRIVMSG me :once more$")
    me.expect(r" PONG ")
    plain = connect().register_with_caps("plain", "labeled-response")
    plain.send("@label=p PRIVMSG plain :only once", "PING :after")
    assert "label" not in tags_of(plain.expect(r"PRIVMSG plain :only once$").string)
    assert plain.expect(r" ACK$").string == "@label=p :greenchat.local ACK"
    plain.expect(r" PONG ")
    assert sum("only once" in line for line in plain.lines) == 1


def test_a_tagmsg_over_the_client_tag_limit_gets_417(connect):
    sender = connect().register_with_caps("sender", "message-tags")
    other = connect().register_with_caps("other", "message-tags")
    sender.send(f"@+big={'x' * 4100} TAGMSG other")
    sender.expect(r" 417 sender :Input line was too long$")
    sender.send("@+small=y TAGMSG other")
    assert tags_of(other.expect(r" TAGMSG other$").string)["+small"] == "y"
    assert not any("+big" in line for line in other.lines)


def test_no_implicit_names_leaves_names_to_the_client(connect):
    """draft/no-implicit-names: a JOIN gets no 353/366; NAMES asked for still works."""
    quiet = connect().register_with_caps("quiet", "draft/no-implicit-names")
    quiet.send("JOIN #n", "PING :joined")
    quiet.expect(r":quiet!\S+ JOIN #n$")
    quiet.expect(r"PONG \S+ :?joined$")
    assert not any(" 353 " in line or " 366 " in line for line in quiet.lines)
    quiet.send("NAMES #n")
    quiet.expect(r" 353 quiet = #n :@quiet$")
    plain = connect("plain")
    plain.send("JOIN #n")
    plain.expect(r" 366 plain #n ")


def test_pre_away_marks_one_away_from_registration(connect):
    """draft/pre-away: AWAY before registration is kept and the network sees it from the
    start; without the capability it gets 451."""
    early = connect()
    early.send("CAP LS 302", "NICK early", "USER early 0 * :early")
    assert "draft/pre-away" in early.read_cap_ls()
    early.send("CAP REQ :draft/pre-away", "AWAY :at lunch", "CAP END")
    early.expect(r" 001 early ")
    other = connect("other")
    other.send("WHOIS early")
    other.expect(r" 301 other early :at lunch$")
    late = connect()
    late.send("NICK late", "AWAY :too soon")
    late.expect(r" 451 late :You have not registered$")


def test_extended_isupport_answers_isupport_before_registration_in_a_batch(connect):
    client = connect()
    client.send("CAP LS 302", "CAP REQ :draft/extended-isupport batch", "ISUPPORT")
    assert "draft/extended-isupport" in client.read_cap_ls()
    ref = client.expect(r"^:\S+ BATCH \+(\S+) draft/isupport$").group(1)
    lines = [client.expect(r" 005 \* ").string]
    while " 005 " in (line := client.read_line()):
        lines.append(line)
    assert all(tags_of(line) == {"batch": ref} for line in lines)
    assert any("NETWORK=" in line for line in lines)
    assert re.search(rf"^:\S+ BATCH -{re.escape(ref)}$", line), line
    client.send("NICK eis", "USER eis 0 * :e", "CAP END")
    client.expect(r" 001 eis ")
    plain = connect("plain")
    plain.send("ISUPPORT")
    plain.expect(r" 421 plain ISUPPORT :Unknown command$")


def test_languages_are_english_only_and_say_so(connect):
    client = connect("polyglot")
    client.send("CAP LS 302")
    assert "draft/languages=1,en" in client.read_cap_ls()
    client.send("LANGUAGE en")
    client.expect(r" 687 polyglot en :Language preferences have been set$")
    client.send("LANGUAGE de")
    client.expect(r" 982 polyglot de :Languages are not supported by this server$")
    client.send("LANGUAGE en de")
    client.expect(r" 981 polyglot 1 :You specified too many languages$")


def test_rename_moves_the_channel_and_falls_back_to_part_and_join(connect):
    """draft/channel-rename: members with it see RENAME; the others leave the old name
    and join the new one, with its topic and names; modes and members stay."""
    alice = connect().register_with_caps("alice", "draft/channel-rename").join("#old")
    alice.send("TOPIC #old :same topic", "MODE #old +k key")
    alice.expect(r"MODE #old \+k key$")
    bob = connect().register_with_caps("bob", "draft/channel-rename")
    bob.send("JOIN #old key")
    bob.expect(r" 366 bob #old ")
    carol = connect("carol")
    carol.send("JOIN #old key")
    carol.expect(r" 366 carol #old ")
    connect("taken").join("#taken")
    bob.send("RENAME #old #new")
    bob.expect(r" 482 bob #old :You're not channel operator$")
    alice.send("RENAME #old #taken", "RENAME #old bad,name")
    alice.expect(r"FAIL RENAME CHANNEL_NAME_IN_USE #old #taken :That channel already exists$")
    alice.expect(r"FAIL RENAME CANNOT_RENAME #old bad,name :That is not a valid channel name$")
    alice.send("RENAME #old #new :tidier")
    alice.expect(r"^:alice!\S+ RENAME #old #new :tidier$")
    bob.expect(r"^:alice!\S+ RENAME #old #new :tidier$")
    carol.expect(r"^:carol!\S+ PART #old :Channel renamed to #new: tidier$")
    carol.expect(r"^:carol!\S+ JOIN #new$")
    carol.expect(r" 332 carol #new :same topic$")
    assert sorted(carol.expect(r" 353 carol = #new :(.*)$").group(1).split()) == [
        "@alice", "bob", "carol"
    ]  # fmt: skip
    carol.send("PRIVMSG #new :still here", "MODE #new", "NAMES #old")
    bob.expect(r":carol!\S+ PRIVMSG #new :still here$")
    carol.expect(r" 324 carol #new \+knt key$")
    carol.expect(r" 366 carol #old :End of /NAMES list$")  # no such channel any more
