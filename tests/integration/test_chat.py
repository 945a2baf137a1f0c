"""A real server on port 0, real sockets: registration, channels and messages."""

from __future__ import annotations

import re

import pytest


def test_two_users_chat_in_lobby(connect):
    alice = connect("alice").join("#lobby")
    bob = connect("bob").join("#lobby")
    alice.expect(r"^:bob!~bob@127\.0\.0\.1 JOIN #lobby$")
    alice.send("PRIVMSG #lobby :hello, world")
    bob.expect(r"^:alice!~alice@127\.0\.0\.1 PRIVMSG #lobby :hello, world$")
    bob.send("PRIVMSG #lobby ::) colon first")
    alice.expect(r"^:bob!\S+ PRIVMSG #lobby ::\) colon first$")


def test_sender_does_not_get_its_own_channel_message(connect):
    alice = connect("alice").join("#lobby")
    connect("bob").join("#lobby")
    alice.send("PRIVMSG #lobby :echo?")
    alice.sync()
    assert not any("echo?" in line for line in alice.lines)


def test_welcome_burst_and_isupport(server, connect):
    network = server.config.network  # greenchat; on two nodes, a test network's own
    client = connect()
    client.send("NICK neo", "USER neo 0 * :Thomas Anderson")
    client.expect(rf"^:greenchat\.local 001 neo :Welcome to the {network} IRC Network neo!~neo@")
    client.expect(r" 002 neo :Your host is greenchat\.local")
    client.expect(r" 003 neo ")
    client.expect(r" 004 neo greenchat\.local greenchat-\S+ Biorw CIUbceiklmnopstv Ibeklov$")
    isupport: list[str] = []
    while True:  # 005 may span several lines
        line = client.read_line()
        match = re.search(r" 005 neo (.*) :are supported by this server$", line)
        if not match:
            break
        isupport += match.group(1).split()
    for token in (
        "CASEMAPPING=rfc1459",
        "CHANTYPES=#",
        "CHANMODES=beI,k,l,CUcimnpst",
        "PREFIX=(ov)@+",
        "NICKLEN=30",
        "CHANNELLEN=64",
        "TOPICLEN=390",
        f"NETWORK={network}",
    ):
        assert token in isupport
    assert " 251 neo :There are 1 users" in line
    client.expect(r" 255 neo ")
    client.expect(r" 422 neo :MOTD File is missing")


def test_motd_file(make_server, tmp_path):
    motd = tmp_path / "motd.txt"
    motd.write_text("Welcome to greenchat\nBe nice\n")
    from transcript import IrcClient

    client = IrcClient(make_server(motd=motd).port)
    try:
        client.send("NICK m", "USER m 0 * :m")
        client.expect(r" 375 m :- greenchat\.local Message of the day - ")
        client.expect(r" 372 m :- Welcome to greenchat$")
        client.expect(r" 372 m :- Be nice$")
        client.expect(r" 376 m :End of /MOTD command\.$")
    finally:
        client.close()


@pytest.mark.parametrize("version", ["", " 302"])
def test_cap_negotiation_holds_registration(connect, version):
    client = connect()
    client.send(f"CAP LS{version}", "NICK capper", "USER capper 0 * :c")
    ls = client.read_cap_ls()
    assert "cap-notify" in ls
    client.send("CAP REQ :cap-notify")
    client.expect(r" CAP capper ACK :?cap-notify$")
    client.send("CAP REQ :cap-notify no-such-cap")
    client.expect(r" CAP capper NAK :cap-notify no-such-cap$")
    client.send("CAP LIST")
    client.expect(r" CAP capper LIST :?cap-notify$")
    client.sync()
    assert not any(" 001 " in line for line in client.lines)
    client.send("CAP END")
    client.expect(r" 001 capper ")


def test_cap_errors(connect):
    client = connect()
    client.send("CAP")
    client.expect(r" 461 \* CAP :Not enough parameters$")
    client.send("CAP FROB")
    client.expect(r" 410 \* FROB :Invalid CAP command$")


def test_password(make_server):
    from transcript import IrcClient

    server = make_server(password="s3cret")
    good = IrcClient(server.port)
    bad = IrcClient(server.port)
    try:
        good.send("PASS s3cret", "NICK good", "USER g 0 * :g")
        good.expect(r" 001 good ")
        bad.send("PASS wrong", "NICK bad", "USER b 0 * :b")
        bad.expect(r" 464 bad :Password incorrect$")
        lines = bad.expect_closed()
        assert any(line.startswith("ERROR :") for line in lines)
        bad2 = IrcClient(server.port)
        bad2.send("NICK nopass", "USER b 0 * :b")
        bad2.expect(r" 464 nopass ")
        bad2.close()
    finally:
        good.close()
        bad.close()


def test_registration_errors(connect):
    client = connect()
    client.send("PRIVMSG #lobby :too early")
    client.expect(r" 451 \* :You have not registered$")
    client.send("FROBNICATE")
    client.expect(r" 421 \* FROBNICATE :Unknown command$")
    client.send("USER only")
    client.expect(r" 461 \* USER :Not enough parameters$")
    client.send("USER name 0 * :")  # an empty realname
    client.expect(r" 461 \* USER :Not enough parameters$")
    client.send("USER  0 * :Real Name")  # an empty username
    client.expect(r" 461 \* USER :Not enough parameters$")
    client.send("NICK")
    client.expect(r" 431 \* :No nickname given$")
    client.send("NICK 9lives")
    client.expect(r" 432 \* 9lives :Erroneous nickname$")
    client.register("fine")
    client.send("USER again 0 * :x")
    client.expect(r" 462 fine :You may not reregister$")


def test_nick_in_use_is_case_insensitive(connect):
    connect("Nick[1]")
    other = connect()
    other.send("NICK nick{1}")
    other.expect(r" 433 \* nick\{1\} :Nickname is already in use$")


def test_nick_change_seen_by_channel_peers_once(connect):
    alice = connect("alice").join("#a").join("#b")
    bob = connect("bob").join("#a").join("#b")
    carol = connect("carol")
    alice.send("NICK alicia")
    alice.expect(r"^:alice!~alice@\S+ NICK :alicia$")
    bob.expect(r"^:alice!~alice@\S+ NICK :alicia$")
    bob.sync()
    assert sum("NICK :alicia" in line for line in bob.lines) == 1
    carol.sync()
    assert not any(" NICK :" in line for line in carol.lines)
    bob.send("NICK ALICIA")
    bob.expect(r" 433 bob ALICIA ")
    alice.send("NICK Alicia")  # a case change of one's own nick is allowed
    alice.expect(r"NICK :Alicia$")


def test_quit_seen_by_peers(connect):
    alice = connect("alice").join("#lobby")
    bob = connect("bob").join("#lobby")
    bob.send("QUIT :gotta go")
    bob.expect(r"^ERROR :Closing Link: 127\.0\.0\.1 \(Quit: gotta go\)$")
    alice.expect(r"^:bob!~bob@\S+ QUIT :Quit: gotta go$")
    alice.send("NAMES #lobby")
    alice.expect(r" 353 alice = #lobby :?@alice$")


def test_vanished_client_quits_for_peers(connect):
    alice = connect("alice").join("#lobby")
    bob = connect("bob").join("#lobby")
    bob.close()
    alice.expect(r"^:bob!\S+ QUIT :Connection closed$")


def test_join_part_names_topic(connect):
    alice = connect("alice")
    alice.send("JOIN #one,#two")
    alice.expect(r"^:alice!\S+ JOIN #one$")
    alice.expect(r" 353 alice = #one :?@alice$")
    alice.expect(r" 366 alice #one :End of /NAMES list$")
    alice.expect(r"^:alice!\S+ JOIN #two$")
    alice.expect(r" 366 alice #two ")
    alice.send("JOIN bad")
    alice.expect(r" 403 alice bad :No such channel \(channel names start with #\)$")
    alice.send("JOIN #" + "x" * 64)  # one over CHANNELLEN
    alice.expect(r" 479 alice #x{64} :Illegal channel name \(longer than 64\)$")
    alice.send("JOIN #a\x07b")
    alice.expect(r" 479 alice #a\x07b :Illegal channel name$")
    alice.send("TOPIC #one")
    alice.expect(r" 331 alice #one :No topic is set$")
    alice.send("TOPIC #one :Welcome, friends")
    alice.expect(r"^:alice!\S+ TOPIC #one :Welcome, friends$")
    bob = connect("bob")
    bob.send("JOIN #ONE")
    bob.expect(r" 332 bob #one :Welcome, friends$")
    bob.expect(r" 333 bob #one alice!~alice@127\.0\.0\.1 \d+$")
    bob.expect(r" 353 bob = #one :@alice bob$")
    bob.send("TOPIC #one :mine now")
    bob.expect(r" 482 bob #one :You're not channel operator$")
    bob.send("PART #one :see ya")
    alice.expect(r"^:bob!\S+ PART #one :see ya$")
    bob.send("PART #one", "PART #nowhere")
    bob.expect(r" 442 bob #one :You're not on that channel$")
    bob.expect(r" 403 bob #nowhere :No such channel$")
    alice.send("JOIN 0")
    alice.expect(r"^:alice!\S+ PART #one")
    alice.expect(r"^:alice!\S+ PART #two")
    alice.send("NAMES #one")
    alice.expect(r" 366 alice #one :End of /NAMES list$")


def test_names_are_split_to_fit_512_bytes(connect):
    first = connect("n000").join("#big")
    others = [connect(f"member{i:03d}_abcdefghij").join("#big") for i in range(40)]
    first.sync()
    first.send("NAMES #big")
    count = 0
    while True:
        line = first.read_line()
        if " 366 " in line:
            break
        if " 353 " in line:
            assert len(line.encode()) + 2 <= 512
            count += len(line.split(":", 2)[2].split())
    assert count == 41
    for other in others:
        other.close()


def test_privmsg_errors_and_targets(connect):
    alice = connect("alice").join("#lobby")
    bob = connect("bob")
    alice.send("PRIVMSG")
    alice.expect(r" 411 alice :No recipient given \(PRIVMSG\)$")
    alice.send("PRIVMSG bob")
    alice.expect(r" 412 alice :No text to send$")
    alice.send("PRIVMSG nobody :hi")
    alice.expect(r" 401 alice nobody :No such nick/channel$")
    alice.send("PRIVMSG #void :hi")
    alice.expect(r" 403 alice #void :No such channel$")
    bob.send("PRIVMSG #lobby :outside")
    bob.expect(r" 404 bob #lobby :Cannot send to channel$")
    alice.send("PRIVMSG bob,#lobby :to both")
    bob.expect(r"^:alice!\S+ PRIVMSG bob :to both$")
    bob.send("NOTICE alice :a notice", "NOTICE nobody :dropped silently")
    alice.expect(r"^:bob!\S+ NOTICE alice :a notice$")
    bob.sync()
    assert not any(" 401 " in line for line in bob.lines)


def test_mode_queries_and_changes(connect):
    alice = connect("alice").join("#m")
    bob = connect("bob").join("#m")
    alice.send("MODE #m")
    alice.expect(r" 324 alice #m \+nt$")
    alice.expect(r" 329 alice #m \d+$")
    alice.send("MODE alice")
    alice.expect(r" 221 alice \+$")
    alice.send("MODE alice +i")
    alice.expect(r"^:alice!\S+ MODE alice :\+i$")
    alice.send("MODE bob +i")
    alice.expect(r" 502 alice ")
    alice.send("MODE alice +z")
    alice.expect(r" 501 alice ")
    bob.send("MODE #m -t")
    bob.expect(r" 482 bob #m ")
    alice.send("MODE #m -t+v bob")
    bob.expect(r"^:alice!\S+ MODE #m -t\+v bob$")
    bob.send("NAMES #m")
    bob.expect(r" 353 bob = #m :@alice \+bob$")
    bob.send("TOPIC #m :voices may set topics when -t")
    alice.expect(r"TOPIC #m :voices may set topics when -t$")
    alice.send("MODE #m +X")
    alice.expect(r" 472 alice X :is unknown mode char to me$")


def test_ping_pong(connect):
    client = connect()
    client.send("PING :before-registration")
    client.expect(r"^:greenchat\.local PONG greenchat\.local :?before-registration$")
    client.send("PING")
    client.expect(r" 461 \* PING ")


@pytest.mark.single_process("255 and 265 count this server's own clients, per node")
def test_lusers_counts_follow_registrations_modes_and_quits(connect):
    alice = connect("alice")
    bob = connect("bob")
    bob.send("MODE bob +i")
    bob.expect(r"MODE bob :\+i$")
    connect().sync()  # connected (the server has seen it), never registered
    alice.send("LUSERS")
    alice.expect(r" 251 alice :There are 1 users and 1 invisible on 1 servers$")
    alice.expect(r" 253 alice 1 :unknown connection\(s\)$")
    alice.expect(r" 255 alice :I have 2 clients and 0 servers$")
    bob.send("QUIT")
    bob.expect_closed()
    alice.sync()
    alice.send("LUSERS")
    alice.expect(r" 251 alice :There are 1 users and 0 invisible on 1 servers$")
    alice.expect(r" 265 alice 1 2 :Current local users 1, max 2$")
