"""Channel modes, bans, KICK, INVITE and LIST against a real server on port 0."""

from __future__ import annotations

import re

import pytest
from transcript import IrcClient, until


def pair(connect, channel: str = "#c") -> tuple[IrcClient, IrcClient]:
    """alice creates (and ops) ``channel``; bob is connected but not in it."""
    alice = connect("alice").join(channel)
    bob = connect("bob")
    return alice, bob


def mode_line(client: IrcClient, channel: str, text: str) -> None:
    client.expect(rf"^:alice!\S+ MODE {re.escape(channel)} {re.escape(text)}$")


# -- ISUPPORT -------------------------------------------------------------------


def test_isupport_and_myinfo_describe_the_channel_modes(connect):
    client = connect()
    client.send("NICK neo", "USER neo 0 * :n")
    client.expect(r" 004 neo greenchat\.local \S+ \S+ CIUbceiklmnopstv Ibeklov$")  # any user modes
    tokens: list[str] = []
    while True:
        line = client.read_line()
        if " 005 " in line:
            tokens += line.split(" :are supported")[0].split()[3:]
        elif tokens:
            break
    for token in (
        "CHANMODES=beI,k,l,CUcimnpst",
        "MAXLIST=b:100,e:100,I:100",
        "EXCEPTS=e",
        "INVEX=I",
        "EXTBAN=,aUm",
        "KICKLEN=390",
        "MODES=4",
        "ELIST=CMNTU",
        "KEYLEN=32",
        "PREFIX=(ov)@+",
    ):
        assert token in tokens


# -- flag modes, 324 ------------------------------------------------------------


def test_flag_modes_set_and_unset_once(connect):
    alice, bob = pair(connect)
    bob.join("#c")
    alice.send("MODE #c +imsp")
    mode_line(bob, "#c", "+imsp")
    alice.send("MODE #c +m-m+t")  # +m and +t were set already: only -m is a change
    mode_line(bob, "#c", "-m")
    alice.send("MODE #c -ispn")
    mode_line(bob, "#c", "-ispn")
    bob.send("MODE #c")
    bob.expect(r" 324 bob #c \+t$")
    bob.expect(r" 329 bob #c \d+$")
    bob.send("MODE #c +n")
    bob.expect(r" 482 bob #c :You're not channel operator$")


def test_unknown_mode_char_and_missing_params(connect):
    alice, _ = pair(connect)
    alice.send("MODE #c +XnX")
    alice.expect(r" 472 alice X :is unknown mode char to me$")
    alice.send("MODE #c +kl")  # parameters missing: skipped
    alice.send("MODE #c +s")
    mode_line(alice, "#c", "+s")
    alice.sync()
    assert not any(" MODE #c +n" in line or "+kl" in line for line in alice.lines)
    assert sum(" 472 " in line for line in alice.lines) == 1


def test_key_mode(connect):
    alice, bob = pair(connect)
    alice.send("MODE #c +k s3cret")
    mode_line(alice, "#c", "+k s3cret")
    alice.send("MODE #c")
    alice.expect(r" 324 alice #c \+knt s3cret$")
    bob.send("MODE #c")
    bob.expect(r" 324 bob #c \+nt$")  # the key only for members
    bob.send("JOIN #c")
    bob.expect(r" 475 bob #c :Cannot join channel \(\+k\)$")
    bob.send("JOIN #c wrong")
    bob.expect(r" 475 bob #c ")
    bob.send("JOIN #c,#other s3cret")
    bob.expect(r"^:bob!\S+ JOIN #c$")
    bob.expect(r"^:bob!\S+ JOIN #other$")
    alice.send("MODE #c -k whatever")
    mode_line(bob, "#c", "-k *")
    alice.send("MODE #c +k :has space", "MODE #c +k a,b", "MODE #c +k " + "x" * 33)
    alice.expect(r" 696 alice #c k \* :Invalid key")
    alice.expect(r" 696 alice #c k a,b :Invalid key")
    alice.expect(r" 696 alice #c k x{33} :Invalid key")
    alice.send("MODE #c +k :", "MODE #c +k :a b")  # empty; spaces, as a last parameter
    alice.expect(r" 696 alice #c k \* :Invalid key")
    alice.expect(r" 696 alice #c k \* :Invalid key")
    alice.send("MODE #c")
    alice.expect(r" 324 alice #c \+nt$")  # none of them was set
    bob.send("PART #c", "JOIN #c")
    bob.expect(r"^:bob!\S+ JOIN #c$")  # no key to give


def test_limit_mode(connect):
    alice, bob = pair(connect)
    alice.send("MODE #c +l abc", "MODE #c +l 0", "MODE #c +l -3")
    alice.expect(r" 696 alice #c l abc :Invalid limit")
    alice.expect(r" 696 alice #c l 0 :")
    alice.expect(r" 696 alice #c l -3 :")
    alice.send("MODE #c +l 01")
    mode_line(alice, "#c", "+l 1")
    alice.send("MODE #c")
    alice.expect(r" 324 alice #c \+lnt 1$")
    bob.send("JOIN #c")
    bob.expect(r" 471 bob #c :Cannot join channel \(\+l\)$")
    alice.send("MODE #c +l 2")
    mode_line(alice, "#c", "+l 2")
    bob.join("#c")
    alice.send("MODE #c -l")
    mode_line(bob, "#c", "-l")


def test_key_and_limit_together_in_324(connect):
    alice, _ = pair(connect)
    alice.send("MODE #c +lk 5 key")
    mode_line(alice, "#c", "+lk 5 key")
    alice.send("MODE #c")
    alice.expect(r" 324 alice #c \+klnt key 5$")


def test_modes_limit_per_command(connect):
    alice, bob = pair(connect)
    bob.join("#c")
    carol = connect("carol").join("#c")
    alice.send("MODE #c +vvvvv bob carol bob carol bob")  # MODES=4, and no repeats
    mode_line(carol, "#c", "+vv bob carol")
    alice.send("MODE #c +bbbbb a b c d e")
    mode_line(carol, "#c", "+bbbb a!*@* b!*@* c!*@* d!*@*")


# -- +i and INVITE --------------------------------------------------------------


def test_invite_only(connect):
    alice, bob = pair(connect)
    alice.send("MODE #c +i")
    mode_line(alice, "#c", "+i")
    bob.send("JOIN #c")
    bob.expect(r" 473 bob #c :Cannot join channel \(\+i\)$")
    alice.send("INVITE bob #c")
    alice.expect(r" 341 alice bob #c$")
    bob.expect(r"^:alice!~alice@127\.0\.0\.1 INVITE bob #c$")
    bob.join("#c")
    bob.send("PART #c")
    bob.expect(r"PART #c")
    bob.send("JOIN #c")  # an invite is good for one join
    bob.expect(r" 473 bob #c ")


def test_invite_errors(connect):
    alice, bob = pair(connect)
    carol = connect("carol").join("#c")
    bob.send("INVITE carol")
    bob.expect(r" 461 bob INVITE :Not enough parameters$")
    bob.send("INVITE nobody #c")
    bob.expect(r" 401 bob nobody :No such nick/channel$")
    bob.send("INVITE carol #nowhere")
    bob.expect(r" 403 bob #nowhere :No such channel$")
    bob.send("INVITE carol #c")
    bob.expect(r" 442 bob #c :You're not on that channel$")
    alice.send("INVITE carol #c")
    alice.expect(r" 443 alice carol #c :is already on channel$")
    carol.send("INVITE bob #c")  # -i: any member may invite
    carol.expect(r" 341 carol bob #c$")
    bob.expect(r"^:carol!\S+ INVITE bob #c$")
    alice.send("MODE #c +i")
    mode_line(carol, "#c", "+i")
    carol.send("INVITE bob #c")
    carol.expect(r" 482 carol #c :You're not channel operator$")


def test_invite_notify(server, connect):
    port = server.port
    op = IrcClient(port).register_with_caps("op", "invite-notify")
    watcher = IrcClient(port).register_with_caps("watcher", "invite-notify")
    plain = connect("plain")
    guest = IrcClient(port).register_with_caps("guest", "invite-notify")
    try:
        op.join("#n")
        watcher.join("#n")
        plain.join("#n")
        op.send("INVITE guest #n")
        watcher.expect(r"^:op!\S+ INVITE guest #n$")
        guest.expect(r"^:op!\S+ INVITE guest #n$")
        op.expect(r" 341 op guest #n$")
        op.send("MODE #n +i")
        watcher.expect(r"MODE #n \+i$")
        op.send("MODE #n +o plain")
        watcher.expect(r"MODE #n \+o plain$")
        plain.send("INVITE guest #n")  # +i: only ops with invite-notify hear it
        plain.expect(r" 341 plain guest #n$")
        guest.expect(r"^:plain!\S+ INVITE guest #n$")
        watcher.sync()
        op.sync()
        assert sum(" INVITE guest #n" in line for line in watcher.lines) == 1
        assert sum(" INVITE guest #n" in line for line in op.lines) == 1  # not its own
        assert sum(" INVITE guest #n" in line for line in plain.lines) == 0  # no cap
        assert sum(" INVITE guest #n" in line for line in guest.lines) == 2  # once each
    finally:
        for client in (op, watcher, guest):
            client.close()


# -- bans -----------------------------------------------------------------------


def test_ban_list_query_set_unset(connect):
    alice, bob = pair(connect)
    bob.send("MODE #c +b")
    bob.expect(r" 368 bob #c :End of channel ban list$")
    alice.send("MODE #c +b Bob")
    mode_line(alice, "#c", "+b Bob!*@*")
    alice.send("MODE #c +b *@10.0.0.1", "MODE #c +b ~x@host", "MODE #c +b BOB!*@*")
    mode_line(alice, "#c", "+b *!*@10.0.0.1")
    mode_line(alice, "#c", "+b *!~x@host")  # BOB!*@* is Bob!*@*: no change
    bob.send("MODE #c b")
    bob.expect(r" 367 bob #c Bob!\*@\* alice!~alice@127\.0\.0\.1 \d+$")
    bob.expect(r" 367 bob #c \*!\*@10\.0\.0\.1 alice!\S+ \d+$")
    bob.expect(r" 367 bob #c \*!~x@host alice!\S+ \d+$")
    bob.expect(r" 368 bob #c ")
    bob.send("MODE #c +b nick")
    bob.expect(r" 482 bob #c ")
    alice.send("MODE #c -b bob!*@*")
    mode_line(alice, "#c", "-b Bob!*@*")
    alice.send("MODE #c -b never-set")
    alice.send("MODE #c +b :a b")
    alice.expect(r" 696 alice #c b ")
    alice.sync()
    assert not any("never-set" in line for line in alice.lines)


def test_ban_blocks_join_with_wildcards_and_case_mapping(connect):
    alice = connect("alice").join("#c")
    victim = connect("Vic[1]")
    alice.send("MODE #c +b vic{?}!*@*")
    mode_line(alice, "#c", "+b vic{?}!*@*")
    victim.send("JOIN #c")
    victim.expect(r" 474 Vic\[1\] #c :Cannot join channel \(\+b\)$")
    alice.send("MODE #c -b VIC[?]!*@*", "MODE #c +b *!~V?C1@127.*")
    mode_line(alice, "#c", "-b vic{?}!*@*")
    mode_line(alice, "#c", "+b *!~V?C1@127.*")
    victim.send("JOIN #c")
    victim.expect(r" 474 Vic\[1\] #c ")
    alice.send("INVITE Vic[1] #c")  # an invite gets one past a ban, as on Ergo
    victim.expect(r" INVITE Vic\[1\] #c$")
    victim.join("#c")


def test_banned_members_cannot_speak_unless_voiced(connect):
    alice, bob = pair(connect)
    bob.join("#c")
    alice.send("MODE #c +b bob")
    mode_line(bob, "#c", "+b bob!*@*")
    bob.send("PRIVMSG #c :muted?")
    bob.expect(r" 404 bob #c :Cannot send to channel$")
    alice.send("MODE #c +v bob")
    mode_line(bob, "#c", "+v bob")
    bob.send("PRIVMSG #c :voiced")
    alice.expect(r"^:bob!\S+ PRIVMSG #c :voiced$")


def test_ban_list_full(make_server):
    server = make_server(max_list_entries=2)
    alice = IrcClient(server.port).register("alice").join("#c")
    try:
        alice.send("MODE #c +bbb one two three")
        alice.expect(r" 478 alice #c b :Channel ban list is full$")
        mode_line(alice, "#c", "+bb one!*@* two!*@*")
    finally:
        alice.close()


def test_ban_and_invite_exceptions(connect):
    """+e lets a banned user in (and speak), +I lets one past +i; only the channel's
    operators see those lists (348/349, 346/347)."""
    alice, bob = pair(connect)
    carol, dave = connect("carol"), connect("dave")
    alice.send("MODE #c +b *!*@*", "MODE #c +e bob")
    mode_line(alice, "#c", "+b *!*@*")
    mode_line(alice, "#c", "+e bob!*@*")
    bob.send("JOIN #c")
    bob.expect(r"^:bob!\S+ JOIN #c$")
    bob.send("PRIVMSG #c :excepted, so I may speak")
    alice.expect(r":bob!\S+ PRIVMSG #c :excepted, so I may speak$")
    carol.send("JOIN #c")
    carol.expect(r" 474 carol #c :Cannot join channel \(\+b\)$")
    alice.send("MODE #c e")
    alice.expect(r" 348 alice #c bob!\*@\* alice!\S+ \d+$")
    alice.expect(r" 349 alice #c :End of channel exception list$")
    bob.send("MODE #c e", "MODE #c I", "MODE #c b")
    bob.expect(r" 482 bob #c :You're not channel operator$")
    bob.expect(r" 482 bob #c :You're not channel operator$")
    bob.expect(r" 367 bob #c \*!\*@\* ")  # the ban list is anyone's to see
    alice.send("MODE #c -b+iI *!*@* carol!*@*")
    mode_line(alice, "#c", "-b+iI *!*@* carol!*@*")
    carol.send("JOIN #c")
    carol.expect(r"^:carol!\S+ JOIN #c$")
    dave.send("JOIN #c")
    dave.expect(r" 473 dave #c :Cannot join channel \(\+i\)$")
    alice.send("MODE #c I")
    alice.expect(r" 346 alice #c carol!\*@\* alice!\S+ \d+$")
    alice.expect(r" 347 alice #c :End of channel invite exception list$")
    alice.send("MODE #c -e bob!*@*")
    mode_line(alice, "#c", "-e bob!*@*")


def test_a_ban_follows_a_nick_change_and_the_lists_changing(connect):
    """What a member may say is worked out once and kept: a new nick, or a change of
    the bans or exceptions, makes it be worked out again."""
    alice, bob = pair(connect)
    bob.join("#c")
    # bob waits to see each change: on two nodes his own node must have applied it.
    alice.send("MODE #c +b m:evil")
    mode_line(bob, "#c", "+b m:evil!*@*")
    bob.send("PRIVMSG #c :still fine")
    alice.expect(r":bob!\S+ PRIVMSG #c :still fine$")
    bob.send("NICK evil", "PRIVMSG #c :now muted")
    bob.expect(r" 404 evil #c :Cannot send to channel$")
    alice.send("MODE #c +e evil")
    mode_line(bob, "#c", "+e evil!*@*")
    bob.send("PRIVMSG #c :excepted")
    alice.expect(r":evil!\S+ PRIVMSG #c :excepted$")
    alice.send("MODE #c -e evil!*@*")
    mode_line(bob, "#c", "-e evil!*@*")
    bob.send("PRIVMSG #c :muted again")
    bob.expect(r" 404 evil #c :Cannot send to channel$")


def test_an_invite_lets_one_past_the_limit_and_invite_lists_itself(connect):
    """An INVITE passes +l as well as +i; INVITE alone lists one's invites (336/337)."""
    alice, bob = pair(connect)
    alice.send("MODE #c +il 1")
    mode_line(alice, "#c", "+il 1")
    bob.send("INVITE")
    bob.expect(r" 337 bob :End of /INVITE list$")
    alice.send("INVITE bob #c")
    alice.expect(r" 341 alice bob #c$")
    bob.expect(r":alice!\S+ INVITE bob :?#c$")
    bob.send("INVITE")
    bob.expect(r" 336 bob #c$")
    bob.expect(r" 337 bob :End of /INVITE list$")
    bob.send("JOIN #c")
    bob.expect(r"^:bob!\S+ JOIN #c$")  # past +l 1 and +i
    bob.send("INVITE")
    bob.expect(r" 337 bob :End of /INVITE list$")  # an invite is good for one join
    carol = connect("carol")
    alice.send("MODE #c -i")
    mode_line(alice, "#c", "-i")
    carol.send("JOIN #c")
    carol.expect(r" 471 carol #c :Cannot join channel \(\+l\)$")


def test_no_ctcp_and_no_colours(connect):
    """+C refuses CTCP to the channel, except ACTION (/me); +c takes the colours and
    styles out of every line, as the members and the history see it."""
    alice, bob = pair(connect)
    bob.join("#c")
    alice.send("MODE #c +Cc")
    mode_line(bob, "#c", "+Cc")  # on two nodes bob's own must have it
    bob.send("PRIVMSG #c :\x01VERSION\x01", "PRIVMSG #c :\x01ACTION waves\x01")
    bob.expect(r" 404 bob #c :Cannot send CTCP to channel \(\+C\)$")
    alice.expect(r":bob!\S+ PRIVMSG #c :\x01ACTION waves\x01$")
    bob.send("PRIVMSG #c :\x0304red\x03 and \x02bold\x02", "NOTICE #c :\x01PING 1\x01")
    alice.expect(r":bob!\S+ PRIVMSG #c :red and bold$")
    bob.send("PRIVMSG #c :\x02\x0304\x02")  # nothing but codes: nothing left to say
    bob.expect(r" 412 bob :No text to send$")
    bob.send("PRIVMSG #c :barrier")  # one sender's lines arrive in order, on any node
    alice.expect(r":bob!\S+ PRIVMSG #c :barrier$")
    assert not any("PING 1" in line for line in alice.lines)
    alice.send("MODE #c -C")
    mode_line(bob, "#c", "-C")
    bob.send("PRIVMSG #c :\x01VERSION\x01")
    alice.expect(r":bob!\S+ PRIVMSG #c :\x01VERSION\x01$")


def test_op_moderated_lines_reach_only_the_operators(connect):
    """+U: a member who is not an operator is heard by the operators only (and gets its
    own echo); an operator is heard by everyone."""
    alice = connect("alice").join("#c")
    bob = connect().register_with_caps("bob", "echo-message").join("#c")
    carol = connect("carol").join("#c")
    alice.send("MODE #c +U")
    for client in (alice, bob, carol):
        client.expect(r"MODE #c \+U$")
    bob.send("PRIVMSG #c :only the ops hear me")
    alice.expect(r":bob!\S+ PRIVMSG #c :only the ops hear me$")
    bob.expect(r":bob!\S+ PRIVMSG #c :only the ops hear me$")  # the echo
    alice.send("PRIVMSG #c :everyone hears me")
    carol.expect(r":alice!\S+ PRIVMSG #c :everyone hears me$")
    bob.send("PRIVMSG +#c :a prefix does not widen it")
    alice.expect(r":bob!\S+ PRIVMSG \+#c :a prefix does not widen it$")  # to the ops only
    bob.send("PART #c")  # after bob's lines everywhere: carol's node has handled them
    carol.expect(r":bob!\S+ PART #c")
    assert not any("only the ops" in line or "widen" in line for line in carol.lines)


# -- +m, +n ---------------------------------------------------------------------


def test_moderated_channel(connect):
    alice, bob = pair(connect)
    bob.join("#c")
    carol = connect("carol")
    alice.send("MODE #c +m-n")
    mode_line(bob, "#c", "+m-n")
    bob.send("PRIVMSG #c :unvoiced")
    bob.expect(r" 404 bob #c :Cannot send to channel$")
    carol.send("PRIVMSG #c :outsider")
    carol.expect(r" 404 carol #c ")
    alice.send("PRIVMSG #c :op speaks")
    bob.expect(r"PRIVMSG #c :op speaks$")
    alice.send("MODE #c +v bob")
    mode_line(bob, "#c", "+v bob")
    bob.send("PRIVMSG #c :voiced now")
    alice.expect(r"PRIVMSG #c :voiced now$")
    alice.send("MODE #c -m")
    mode_line(bob, "#c", "-m")
    mode_line(alice, "#c", "-m")  # carol's node (alice's) has applied it too
    carol.send("PRIVMSG #c :-n lets me in")
    alice.expect(r"^:carol!\S+ PRIVMSG #c :-n lets me in$")


# -- prefixes: +o/+v errors -----------------------------------------------------


def test_prefix_mode_errors_and_no_op_changes(connect):
    alice, bob = pair(connect)
    alice.send("MODE #c +o nobody")
    alice.expect(r" 401 alice nobody :No such nick/channel$")
    alice.send("MODE #c +v bob")
    alice.expect(r" 441 alice bob #c :They aren't on that channel$")
    bob.join("#c")
    alice.send("MODE #c +o bob")
    mode_line(bob, "#c", "+o bob")
    alice.send("MODE #c +o bob", "MODE #c -v bob")  # nothing changes: no MODE line
    alice.sync()
    bob.send("MODE #c -o alice")
    alice.expect(r"^:bob!\S+ MODE #c -o alice$")
    alice.send("MODE #c +t")
    alice.expect(r" 482 alice #c ")
    assert sum(" MODE #c +o bob" in line for line in alice.lines) == 1
    assert not any(" MODE #c -v" in line for line in alice.lines)


# -- +s / +p: NAMES and LIST ----------------------------------------------------


def test_secret_and_private_channels(connect):
    alice, bob = pair(connect, "#secret")
    alice.join("#private").join("#public")
    alice.send("MODE #secret +s", "MODE #private +p")
    mode_line(alice, "#secret", "+s")
    mode_line(alice, "#private", "+p")
    alice.send("NAMES #secret,#private,#public")
    alice.expect(r" 353 alice @ #secret :@alice$")
    alice.expect(r" 353 alice \* #private :@alice$")
    alice.expect(r" 353 alice = #public :@alice$")
    bob.send("NAMES #secret")
    bob.expect(r" 366 bob #secret :End of /NAMES list$")
    assert not any(" 353 " in line for line in bob.lines)
    bob.send("LIST")
    bob.expect(r" 321 bob Channel :Users  Name$")
    listed = set()
    while True:
        line = bob.read_line()
        if " 323 " in line:
            assert line.endswith(" 323 bob :End of /LIST")
            break
        listed.add(line.split()[3])
    assert listed == {"#private", "#public"}
    bob.send("LIST #secret")
    bob.expect(r" 321 ")
    assert " 323 " in bob.read_line()
    alice.send("LIST #secret")
    alice.expect(r" 322 alice #secret 1 :$")


def test_list_filters_and_topics(connect):
    alice = connect("alice").join("#one").join("#two").join("#three")
    bob = connect("bob").join("#two").join("#three")
    connect("carol").join("#three")
    alice.send("TOPIC #two :Two is a crowd")
    alice.expect(r"TOPIC #two :Two is a crowd$")

    def listing(query: str) -> dict[str, str]:
        bob.send(f"LIST {query}".rstrip())
        bob.expect(r" 321 ")
        got = {}
        while " 323 " not in (line := bob.read_line()):
            match = re.search(r" 322 bob (\S+) (\d+) :(.*)$", line)
            assert match, line
            got[match.group(1)] = f"{match.group(2)} {match.group(3)}".strip()
        return got

    assert listing("") == {"#one": "1", "#two": "2 Two is a crowd", "#three": "3"}
    assert listing(">1") == {"#two": "2 Two is a crowd", "#three": "3"}
    assert listing("<3") == {"#one": "1", "#two": "2 Two is a crowd"}
    assert listing(">1,<3") == {"#two": "2 Two is a crowd"}
    assert listing("#ONE,#nowhere,#three") == {"#one": "1", "#three": "3"}
    # ELIST=M and N: masks, case-mapped, and masks a channel must not match.
    assert set(listing("#T*")) == {"#two", "#three"}
    assert set(listing("#t*,#o?e")) == {"#one", "#two", "#three"}
    assert set(listing("!#t*")) == {"#one"}
    assert set(listing("#t*,!*ee")) == {"#two"}
    assert set(listing("U>2")) == {"#three"}


def test_list_filters_on_creation_and_topic_time(server, connect):
    """ELIST=C and T, in minutes back from now (as InspIRCd and Solanum read them):
    ``C<5`` created less than 5 minutes ago, ``T>5`` topic set more than 5 minutes ago;
    a channel without a topic has no topic time. #old is made ten minutes old on every
    node (nothing else moves a channel's clock)."""
    alice = connect("alice").join("#old").join("#new").join("#bare")
    alice.send("TOPIC #old :from before", "TOPIC #new :just now")
    alice.expect(r"TOPIC #new :just now$")
    bob = connect("bob")
    bob.send("VERSION")
    assert "ELIST=CMNTU" in bob.expect(r" 005 bob .*ELIST=").string.split()
    for node in getattr(server, "nodes", [server]):
        hub = node.server.hub

        def age(hub=hub) -> None:
            hub.channels["#old"].created -= 600
            hub.channels["#old"].topic_set_at -= 600

        until(lambda hub=hub: hub.channels.get("#new") and hub.channels["#new"].topic_set_at)
        node.call(age)

    def listing(query: str) -> set[str]:
        bob.send(f"LIST {query}")
        bob.expect(r" 321 ")
        got = set()
        while " 323 " not in (line := bob.read_line()):
            got.add(line.split()[3])
        return got

    assert listing("C>5") == {"#old"}
    assert listing("C<5") == {"#new", "#bare"}
    assert listing("T>5") == {"#old"}
    assert listing("T<5") == {"#new"}
    assert listing("C<20,T<5") == {"#new"}
    assert listing("c>5") == {"#old"}  # the letters are case-insensitive


# -- KICK -----------------------------------------------------------------------


def test_kick(connect):
    alice, bob = pair(connect)
    bob.join("#c")
    carol = connect("carol").join("#c")
    bob.send("KICK #c carol :no")
    bob.expect(r" 482 bob #c :You're not channel operator$")
    alice.send("KICK #c bob :Bye now")
    bob.expect(r"^:alice!~alice@127\.0\.0\.1 KICK #c bob :Bye now$")
    carol.expect(r"^:alice!\S+ KICK #c bob :Bye now$")
    alice.expect(r"^:alice!\S+ KICK #c bob :Bye now$")
    bob.send("PRIVMSG #c :still here?")
    bob.expect(r" 404 bob #c ")
    alice.send("NAMES #c")
    alice.expect(r" 353 alice = #c :@alice carol$")
    alice.send("KICK #c carol")  # default reason: the kicker's nick
    carol.expect(r"KICK #c carol :alice$")


def test_kick_errors_and_several_targets(connect):
    alice, bob = pair(connect)
    connect("carol").join("#c")
    dave = connect("dave").join("#c")
    bob.send("KICK #c")
    bob.expect(r" 461 bob KICK :Not enough parameters$")
    bob.send("KICK #nowhere carol")
    bob.expect(r" 403 bob #nowhere :No such channel$")
    bob.send("KICK #c carol")
    bob.expect(r" 442 bob #c :You're not on that channel$")
    alice.send("KICK #c nobody")
    alice.expect(r" 401 alice nobody :No such nick/channel$")
    alice.send("KICK #c bob")
    alice.expect(r" 441 alice bob #c :They aren't on that channel$")
    alice.send("KICK #c carol,dave :both")
    alice.expect(r"KICK #c carol :both$")
    alice.expect(r"KICK #c dave :both$")
    dave.expect(r"KICK #c dave :both$")


def test_kick_reason_truncated_to_kicklen(make_server):
    server = make_server(kicklen=10)
    alice = IrcClient(server.port).register("alice").join("#c")
    bob = IrcClient(server.port).register("bob").join("#c")
    try:
        alice.send("KICK #c bob :" + "r" * 50)
        bob.expect(r"KICK #c bob :r{10}$")
    finally:
        alice.close()
        bob.close()


@pytest.mark.parametrize("command", ["KICK #c alice", "INVITE bob #c"])
def test_unregistered_clients_are_refused(connect, command):
    client = connect()
    client.send(command)
    client.expect(r" 451 \* :You have not registered$")


def test_statusmsg_reaches_only_ops_or_voiced_members(connect):
    """``@#c`` reaches the channel's ops, ``+#c`` its voiced members and ops; the sender
    gets its echo with the prefix kept; such lines stay out of the history."""
    op = connect().register_with_caps("op", "echo-message").join("#c")
    voiced, plain = connect("voiced").join("#c"), connect("plain").join("#c")
    op.send("MODE #c +v voiced")
    for client in (op, voiced, plain):
        client.expect(r"MODE #c \+v voiced$")
    plain.send("PRIVMSG @#c :ops only", "NOTICE +#c :voices and ops")
    op.expect(r"^:plain!\S+ PRIVMSG @#c :ops only$")
    op.expect(r"^:plain!\S+ NOTICE \+#c :voices and ops$")
    voiced.expect(r"^:plain!\S+ NOTICE \+#c :voices and ops$")
    op.send("PRIVMSG @+#c :the widest prefix counts")
    op.expect(r"^:op!\S+ PRIVMSG \+#c :the widest prefix counts$")  # its echo
    voiced.expect(r"^:op!\S+ PRIVMSG \+#c :the widest prefix counts$")
    op.send("PRIVMSG #c :to everyone")  # after op's +#c line, on every node
    plain.expect(r":op!\S+ PRIVMSG #c :to everyone$")
    assert not any("ops only" in line for line in voiced.lines)  # plain's came before
    assert not any("widest prefix" in line for line in plain.lines)
    plain.send("PRIVMSG @#nowhere :x")
    plain.expect(r" 403 plain #nowhere :No such channel$")
    plain.send("VERSION")
    assert "STATUSMSG=@+" in plain.expect(r" 005 plain .*STATUSMSG").string
