"""User commands against a real server: WHO(X), WHOIS, WHOWAS, AWAY, ISON, USERHOST,
server info, operators (OPER, KILL, WALLOPS, CHGHOST), SETNAME and MONITOR."""

from __future__ import annotations

import re

import pytest

from greenchat.protocol.message import parse
from greenchat.server.oper import hash_password

PASSWORD = "s3cret"
OPER_HASH = hash_password(PASSWORD)  # once: scrypt is slow on purpose
HOST = r"127\.0\.0\.1"


@pytest.fixture
def oper_server(make_server):
    """A server with one operator, admin/s3cret (each ``.port`` read: the next node's,
    on two nodes)."""
    return make_server(opers={"admin": OPER_HASH})


def become_oper(client) -> None:
    client.send(f"OPER admin {PASSWORD}")
    client.expect(r" 381 \S+ :You are now an IRC operator$")


def no_line(client, pattern: str) -> None:
    """After a round trip, no line received so far matches ``pattern``."""
    client.sync("nothing-more")
    assert not [line for line in client.lines if re.search(pattern, line)]


# -- WHO and WHOX ---------------------------------------------------------------


def test_who_channel_lists_members_with_flags(connect):
    alice = connect("alice").join("#c")
    bob = connect("bob").join("#c")
    bob.send("AWAY :lunch")
    bob.expect(r" 306 bob ")
    alice.send("WHO #c")
    alice.expect(
        rf"^:greenchat\.local 352 alice #c ~alice {HOST} greenchat\.local alice H@ :0 alice test$"
    )
    alice.expect(rf" 352 alice #c ~bob {HOST} greenchat\.local bob G :0 bob test$")
    alice.expect(r" 315 alice #c :End of WHO list$")


def test_who_shows_every_prefix_only_with_multi_prefix(connect):
    multi = connect().register_with_caps("multi", "multi-prefix").join("#p")
    plain = connect("plain").join("#p")
    multi.send("MODE #p +v multi")
    multi.expect(r"MODE #p \+v :?multi$")
    multi.send("WHO #p")
    multi.expect(r" 352 multi #p \S+ \S+ \S+ multi H@\+ :0 ")
    plain.send("WHO #p")
    plain.expect(r" 352 plain #p \S+ \S+ \S+ multi H@ :0 ")


def test_who_mask_hides_invisible_users_from_strangers(connect):
    shy = connect("shy")
    shy.send("MODE shy +i")
    shy.expect(r"MODE shy :\+i$")
    asker = connect("asker")
    asker.send("WHO *")
    asker.expect(r" 315 asker \* :End of WHO list$")
    assert not any(" shy " in line for line in asker.lines if " 352 " in line)
    asker.send("WHO shy")  # an exact nick is always answered, as on Ergo
    asker.expect(r" 352 asker \* ~shy \S+ \S+ shy H :0 shy test$")
    shy.join("#meet")
    asker.join("#meet")
    asker.send("WHO sh*")
    asker.expect(r" 352 asker \* ~shy \S+ \S+ shy H :0 ")
    asker.send("WHO *!~shy@127.*")
    asker.expect(r" 352 asker \* ~shy \S+ \S+ shy H :0 ")


def test_who_channel_hides_invisible_members_and_secret_channels(connect):
    shy = connect("shy")
    shy.send("MODE shy +i")
    shy.expect(r"MODE shy :\+i$")
    shy.join("#room")
    open_member = connect("open").join("#room")
    outsider = connect("outsider")
    outsider.send("WHO #room")
    outsider.expect(r" 352 outsider #room \S+ \S+ \S+ open H :0 ")
    outsider.expect(r" 315 outsider #room ")
    assert not any(" shy " in line for line in outsider.lines if " 352 " in line)
    open_member.send("WHO #room")
    open_member.expect(r" 352 open #room \S+ \S+ \S+ shy H@ :0 ")
    shy.send("MODE #room +s")
    shy.expect(r"MODE #room :?\+s$")
    outsider.send("WHO #room")
    outsider.expect(r" 315 outsider #room ")
    assert sum(" 352 outsider #room " in line for line in outsider.lines) == 1
    outsider.send("WHO #nowhere")
    outsider.expect(r" 315 outsider #nowhere :End of WHO list$")


def test_whox_fields_come_in_canonical_order(connect):
    alice = connect("alice").join("#x")
    connect("bob").join("#x")
    alice.send("WHO #x %tcuihsnfdlaor,42")
    alice.expect(
        rf" 354 alice 42 #x ~alice {HOST} {HOST} greenchat\.local alice H@ 0 \d+ 0 \* :alice test$"
    )
    # Another user's IP is hidden from a non-operator.
    alice.expect(r" 354 alice 42 #x ~bob 255\.255\.255\.255 \S+ \S+ bob H 0 \d+ 0 \* :bob test$")
    alice.expect(r" 315 alice #x ")
    alice.send("WHO bob %nt,7")
    alice.expect(r" 354 alice 7 bob$")
    alice.send("WHO bob %na")
    alice.expect(r" 354 alice bob 0$")


def test_who_o_lists_operators_only(connect, oper_server):
    admin = connect("admin", port=oper_server.port).join("#o")
    connect("user", port=oper_server.port).join("#o")
    become_oper(admin)
    admin.send("WHO #o o")
    admin.expect(r" 352 admin #o \S+ \S+ \S+ admin H\*@ :0 ")
    admin.expect(r" 315 admin #o ")
    assert not any(" user " in line for line in admin.lines if " 352 " in line)


# -- WHOIS ----------------------------------------------------------------------


def test_whois_basic_replies(connect):
    alice = connect("alice").join("#a")
    bob = connect("bob").join("#a").join("#b")
    bob.send("AWAY :gone fishing")
    bob.expect(r" 306 ")
    alice.send("WHOIS bob")
    alice.expect(rf"^:greenchat\.local 311 alice bob ~bob {HOST} \* :bob test$")
    alice.expect(r" 319 alice bob :#a @#b$")
    alice.expect(r" 312 alice bob greenchat\.local :")
    alice.expect(r" 301 alice bob :gone fishing$")
    alice.expect(r" 317 alice bob \d+ \d+ :seconds idle, signon time$")
    alice.expect(r" 318 alice bob :End of /WHOIS list$")
    assert not any(re.search(r" (313|378|379) ", line) for line in alice.lines)
    # WHOIS <server> <nick> works too; oneself gets host and modes.
    alice.send("WHOIS greenchat.local alice")
    alice.expect(rf" 378 alice alice :is connecting from ~alice@{HOST} {HOST}$")
    alice.expect(r" 379 alice alice :is using modes \+$")
    alice.expect(r" 318 alice alice ")


def test_whois_unknown_nick_and_hidden_channels(connect):
    alice = connect("alice")
    bob = connect("bob").join("#open").join("#hidden")
    bob.send("MODE #hidden +s")
    bob.expect(r"MODE #hidden :?\+s$")
    alice.send("WHOIS ghost")
    alice.expect(r" 401 alice ghost :No such nick/channel$")
    alice.expect(r" 318 alice ghost :End of /WHOIS list$")
    alice.send("WHOIS bob")
    alice.expect(r" 319 alice bob :@#open$")
    alice.expect(r" 318 alice bob ")
    bob.send("MODE bob +i")  # +i hides every channel the asker does not share
    bob.expect(r"MODE bob :\+i$")
    alice.send("WHOIS bob")
    alice.expect(r" 318 alice bob ")
    assert sum(" 319 " in line for line in alice.lines) == 1


def test_whois_idle_resets_on_message(connect):
    alice = connect("alice")
    bob = connect("bob")
    bob.send("PRIVMSG alice :hi")
    alice.expect(r"PRIVMSG alice :hi$")
    alice.send("WHOIS bob")
    idle = alice.expect(r" 317 alice bob (\d+) (\d+) ")
    assert int(idle.group(1)) <= 1


# -- WHOWAS ---------------------------------------------------------------------


def test_whowas_after_quit_and_nick_change(connect):
    alice = connect("alice")
    bob = connect("bob")
    bob.send("NICK robert")
    bob.expect(r"NICK :?robert$")
    bob.send("QUIT :bye")
    bob.expect_closed()
    alice.send("WHOWAS bob")
    alice.expect(rf" 314 alice bob ~bob {HOST} \* :bob test$")
    alice.expect(r" 312 alice bob greenchat\.local :\w{3}, ")
    alice.expect(r" 369 alice bob :End of WHOWAS$")
    alice.send("WHOWAS ROBERT")
    alice.expect(r" 314 alice robert ~bob ")
    alice.expect(r" 369 alice ROBERT ")
    alice.send("WHOWAS nobody")
    alice.expect(r" 406 alice nobody :There was no such nickname$")
    alice.expect(r" 369 alice nobody :End of WHOWAS$")


def test_whowas_count_and_size_limit(connect, make_server):
    server = make_server(whowas_size=2)
    watcher = connect("watcher", port=server.port)
    nick = connect("n0", port=server.port)
    for i in range(1, 4):
        nick.send(f"NICK n{i}")
        nick.expect(rf"NICK :?n{i}$")
    watcher.send("WHOWAS n0")  # the oldest of three entries fell out of a size of two
    watcher.expect(r" 406 watcher n0 ")
    watcher.send("WHOWAS n2 1")
    watcher.expect(r" 314 watcher n2 ")
    watcher.expect(r" 369 watcher n2 ")


# -- AWAY -----------------------------------------------------------------------


def test_away_replies_and_301_on_privmsg(connect, make_server):
    server = make_server(awaylen=5)
    alice = connect("alice", port=server.port)
    bob = connect("bob", port=server.port)
    bob.send("AWAY :out for a long walk")
    bob.expect(r" 306 bob :You have been marked as being away$")
    alice.send("PRIVMSG bob :hello?")
    alice.expect(r" 301 alice bob :out f$")  # cut to AWAYLEN=5
    alice.send("NOTICE bob :quiet")  # NOTICE never gets automatic replies
    alice.sync()
    assert sum(" 301 " in line for line in alice.lines) == 1
    bob.send("AWAY")
    bob.expect(r" 305 bob :You are no longer marked as being away$")
    alice.send("USERHOST bob")  # on two nodes: alice's node has applied bob's return too
    alice.expect(r" 302 alice :bob=\+")
    alice.send("PRIVMSG bob :back?")
    bob.expect(r"PRIVMSG bob :back\?$")
    alice.sync()
    assert sum(" 301 " in line for line in alice.lines) == 1


def test_away_notify_to_peers_that_asked(connect):
    notified = connect().register_with_caps("notified", "away-notify").join("#a")
    plain = connect("plain").join("#a")
    bob = connect("bob").join("#a")
    bob.send("AWAY :brb")
    notified.expect(rf"^:bob!~bob@{HOST} AWAY :brb$")
    bob.send("AWAY")
    notified.expect(rf"^:bob!~bob@{HOST} AWAY$")
    bob.send("AWAY")  # no change: nothing to tell
    bob.sync()
    notified.sync()
    assert sum(line.endswith(" AWAY") for line in notified.lines) == 1
    no_line(plain, r"^:\S+ AWAY( |$)")
    no_line(bob, r"^:bob\S* AWAY")


def test_away_user_joining_is_announced_to_away_notify_members(connect):
    notified = connect().register_with_caps("notified", "away-notify").join("#j")
    plain = connect("plain").join("#j")
    bob = connect("bob")
    bob.send("AWAY :afk")
    bob.expect(r" 306 ")
    bob.join("#j")
    notified.expect(r"^:bob!\S+ JOIN #j$")
    notified.expect(r"^:bob!\S+ AWAY :afk$")
    plain.expect(r"^:bob!\S+ JOIN #j$")
    no_line(plain, r"^:\S+ AWAY( |$)")


# -- ISON, USERHOST -------------------------------------------------------------


def test_ison_and_userhost(connect, oper_server):
    alice = connect("alice", port=oper_server.port)
    admin = connect("Admin", port=oper_server.port)
    become_oper(admin)
    admin.send("AWAY :away")
    admin.expect(r" 306 ")
    alice.send("ISON admin nobody alice")
    alice.expect(r" 303 alice :Admin alice$")
    alice.send("ISON :nobody ghost")
    alice.expect(r" 303 alice :$")
    alice.send("USERHOST alice admin nobody")
    alice.expect(rf" 302 alice :alice=\+~alice@{HOST} Admin\*=-~Admin@{HOST}$")


# -- VERSION, TIME, INFO, ADMIN, LUSERS -----------------------------------------


def test_server_info_commands(connect):
    client = connect("info")
    client.send("VERSION")
    client.expect(r" 351 info greenchat-\S+ greenchat\.local :")
    isupport = client.expect(r" 005 info (.*) :are supported by this server$").group(1)
    client.sync()
    tokens = " ".join(line for line in client.lines if " 005 " in line)
    assert "WHOX" in tokens and "MONITOR=100" in tokens and "AWAYLEN=390" in tokens, isupport
    client.send("TIME")
    client.expect(r" 391 info greenchat\.local :\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$")
    client.send("INFO")
    client.expect(r" 371 info :greenchat ")
    client.expect(r" 374 info :End of INFO list$")
    client.send("ADMIN")
    client.expect(r" 256 info greenchat\.local :Administrative info$")
    client.expect(r" 257 info :")
    client.expect(r" 258 info :")
    client.expect(r" 259 info :admin@localhost$")
    client.send("VERSION other.server")
    client.expect(r" 402 info other\.server :No such server$")
    client.send("TIME info")  # a nick on this server means this server
    client.expect(r" 391 info ")


# -- OPER, user modes ---------------------------------------------------------------


def test_oper_success_modes_and_lusers(connect, oper_server):
    admin = connect("admin", port=oper_server.port)
    admin.send("MODE admin +o")  # +o only comes with OPER
    no_line(admin, r"MODE admin :\+o")
    admin.send("LUSERS")
    admin.expect(r" 255 admin ")
    assert not any(" 252 " in line for line in admin.lines)
    admin.send(f"OPER admin {PASSWORD}")
    admin.expect(r" 381 admin :You are now an IRC operator$")
    admin.expect(rf"^:admin!~admin@{HOST} MODE admin :\+o$")
    admin.send("LUSERS")
    admin.expect(r" 252 admin 1 :operator\(s\) online$")
    other = connect("other", port=oper_server.port)
    other.send("WHOIS admin")
    other.expect(r" 313 other admin :is an IRC operator$")
    admin.send("OPER admin x")
    admin.expect(r" 400 admin OPER :You're already opered-up!$")
    admin.send("MODE admin -o+w")
    admin.expect(r"MODE admin :-o\+w$")
    admin.send("MODE admin")
    admin.expect(r" 221 admin \+w$")
    admin.send("LUSERS")
    admin.expect(r" 255 admin ")
    assert sum(" 252 " in line for line in admin.lines) == 1


def test_oper_failures(connect, oper_server):
    client = connect("guess", port=oper_server.port)
    client.send("OPER nobody whatever")
    client.expect(r" 491 guess :No O-lines for your host$")
    client.send("OPER admin")
    client.expect(r" 461 guess OPER :Not enough parameters$")
    client.send("OPER admin wrong")
    client.expect(r" 464 guess :Password incorrect$")
    assert any(line.startswith("ERROR :") for line in client.expect_closed())


def test_kill(connect, oper_server):
    admin = connect("admin", port=oper_server.port).join("#k")
    victim = connect("victim", port=oper_server.port).join("#k")
    peer = connect("peer", port=oper_server.port).join("#k")
    peer.send("KILL victim :nope")
    peer.expect(r" 481 peer :Permission Denied")
    become_oper(admin)
    admin.send("KILL ghost :x")
    admin.expect(r" 401 admin ghost ")
    admin.send("KILL greenchat.local :x")
    admin.expect(r" 483 admin :You can't kill a server!$")
    admin.send("KILL victim :spamming")
    lines = victim.expect_closed()
    assert any(line.startswith("ERROR :") and "Killed (admin (spamming))" in line for line in lines)
    peer.expect(rf"^:victim!~victim@{HOST} QUIT :Killed \(admin \(spamming\)\)$")
    peer.send("LUSERS")
    peer.expect(r" 252 peer 1 ")
    admin.send("QUIT")
    peer.expect(r"^:admin!\S+ QUIT ")
    peer.send("LUSERS")  # an operator who left no longer counts
    peer.expect(r" 255 peer ")
    assert sum(" 252 " in line for line in peer.lines) == 1


def test_wallops_reaches_opers_and_plus_w(connect, oper_server):
    admin = connect("admin", port=oper_server.port)
    listener = connect("listener", port=oper_server.port)
    deaf = connect("deaf", port=oper_server.port)
    listener.send("MODE listener +w")
    listener.expect(r"MODE listener :\+w$")
    deaf.send("WALLOPS :hello")
    deaf.expect(r" 481 deaf ")
    become_oper(admin)
    admin.send("WALLOPS :server restart soon")
    listener.expect(rf"^:admin!~admin@{HOST} WALLOPS :server restart soon$")
    admin.expect(r"^:admin!\S+ WALLOPS :server restart soon$")
    no_line(deaf, r" WALLOPS ")


# -- SETNAME --------------------------------------------------------------------


def test_setname_with_and_without_the_cap(connect):
    named = connect().register_with_caps("named", "setname").join("#s")
    watcher = connect().register_with_caps("watcher", "setname").join("#s")
    plain = connect("plain").join("#s")
    named.send("SETNAME :New Name")
    named.expect(rf"^:named!~named@{HOST} SETNAME :New Name$")
    watcher.expect(r"^:named!\S+ SETNAME :New Name$")
    no_line(plain, r" SETNAME ")
    plain.send("WHOIS named")
    plain.expect(r" 311 plain named \S+ \S+ \* :New Name$")
    named.send("SETNAME :" + "x" * 151)
    named.expect(r"^:greenchat\.local FAIL SETNAME INVALID_REALNAME :")
    named.send("SETNAME :")
    named.expect(r" FAIL SETNAME INVALID_REALNAME ")


# -- CHGHOST --------------------------------------------------------------------


def test_chghost_with_and_without_the_cap(connect, oper_server):
    admin = connect("admin", port=oper_server.port)
    target = connect("target", port=oper_server.port).join("#h")
    capped = connect(port=oper_server.port).register_with_caps("capped", "chghost").join("#h")
    plain = connect("plain", port=oper_server.port).join("#h")
    plain.send("CHGHOST target u h")
    plain.expect(r" 481 plain ")
    become_oper(admin)
    admin.send("CHGHOST target bad!user host")
    admin.expect(r" FAIL CHGHOST INVALID_PARAMS :")
    admin.send("CHGHOST target ~newuser vanity.example")
    capped.expect(rf"^:target!~target@{HOST} CHGHOST ~newuser vanity\.example$")
    plain.expect(rf"^:target!~target@{HOST} QUIT :Changing host$")
    plain.expect(r"^:target!~newuser@vanity\.example JOIN #h$")
    plain.expect(r"^:greenchat\.local MODE #h \+o target$")  # its op status, restored
    no_line(capped, r" QUIT ")
    no_line(target, r" (CHGHOST|QUIT) ")  # without the cap, the user itself sees nothing
    admin.send("WHOIS target")
    admin.expect(r" 311 admin target ~newuser vanity\.example ")
    admin.expect(rf" 378 admin target :is connecting from ~newuser@{HOST} {HOST}$")


# -- MONITOR --------------------------------------------------------------------


def test_monitor_add_list_status_and_notifications(connect):
    watcher = connect("watcher")
    connect("alice")
    watcher.send("MONITOR + alice,Bob")
    watcher.expect(rf" 730 watcher :alice!~alice@{HOST}$")
    watcher.expect(r" 731 watcher :Bob$")
    bob = connect("bob")  # registration: watchers of the nick are told
    watcher.expect(rf" 730 watcher :bob!~bob@{HOST}$")
    bob.send("NICK bobby")
    watcher.expect(r" 731 watcher :bob$")
    bob.send("NICK Bob")
    watcher.expect(r" 730 watcher :Bob!~bob@")
    bob.send("QUIT")
    watcher.expect(r" 731 watcher :Bob$")
    watcher.send("MONITOR L")
    listed = watcher.expect(r" 732 watcher :(\S+)$").group(1)
    assert sorted(listed.split(",")) == ["Bob", "alice"]
    watcher.expect(r" 733 watcher :End of MONITOR list$")
    watcher.send("MONITOR S")
    watcher.expect(r" 730 watcher :alice!")
    watcher.expect(r" 731 watcher :Bob$")
    watcher.send("MONITOR - bob", "MONITOR L")
    watcher.expect(r" 732 watcher :alice$")
    watcher.send("MONITOR C", "MONITOR L")
    watcher.expect(r" 733 watcher ")
    watcher.send("MONITOR X")
    watcher.expect(r" 400 watcher MONITOR :Unknown subcommand$")
    watcher.send("MONITOR +")
    watcher.expect(r" 461 watcher MONITOR ")


def test_monitor_limit(connect, make_server):
    server = make_server(monitor_limit=2)
    watcher = connect("watcher", port=server.port)
    watcher.send("MONITOR + a,b,c,d")
    watcher.expect(r" 734 watcher 2 c,d :Monitor list is full\.$")
    watcher.expect(r" 731 watcher :a,b$")
    watcher.send("MONITOR + a")  # already watched: no room needed
    watcher.expect(r" 731 watcher :a$")


def test_extended_monitor_sends_away_setname_chghost(connect, oper_server):
    caps = "extended-monitor away-notify setname chghost"
    extended = connect(port=oper_server.port).register_with_caps("extended", caps)
    basic = connect(port=oper_server.port).register_with_caps(
        "basic", "away-notify setname chghost"
    )
    admin = connect("admin", port=oper_server.port)
    become_oper(admin)
    for client in (extended, basic):
        client.send("MONITOR + admin")
        client.expect(r" 730 \S+ :admin!")
    admin.send("AWAY :busy")
    extended.expect(rf"^:admin!~admin@{HOST} AWAY :busy$")
    admin.send("SETNAME :The Admin")
    extended.expect(r"^:admin!\S+ SETNAME :The Admin$")
    admin.send("CHGHOST admin ~root staff.example")
    extended.expect(rf"^:admin!~admin@{HOST} CHGHOST ~root staff\.example$")
    no_line(basic, r"^:admin!\S+ (AWAY|SETNAME|CHGHOST)")


def test_new_caps_are_advertised(connect):
    client = connect()
    client.send("CAP LS 302")
    listed = client.read_cap_ls()
    for cap in ("away-notify", "chghost", "extended-monitor", "setname"):
        assert cap in listed


def test_every_operator_command_refuses_others_with_481(connect):
    from greenchat.server.commands import COMMANDS

    operator_only = sorted(spec.name for spec in COMMANDS.values() if spec.oper)
    assert operator_only == ["CHGHOST", "KILL", "WALLOPS"]
    plain = connect("plain")
    for name in operator_only:
        plain.send(" ".join([name, *["x"] * COMMANDS[name].min_params]))
        plain.expect(r" 481 plain :Permission Denied - You're not an IRC operator$")


def test_bot_mode_shows_in_who_whois_and_a_tag(connect):
    """IRCv3 bot-mode: ISUPPORT BOT=B; a user sets +B on itself; WHO's flags have B,
    WHOIS has 335, and its messages carry the ``bot`` tag to message-tags clients."""
    robot = connect("robot").join("#b")
    tagged = connect().register_with_caps("tagged", "message-tags").join("#b")
    plain = connect("plain").join("#b")
    robot.send("VERSION")
    assert "BOT=B" in robot.expect(r" 005 robot .*BOT=").string.split()
    robot.send("MODE robot +B")
    robot.expect(r":robot!\S+ MODE robot :?\+B$")
    robot.send("PRIVMSG #b :beep", "@+draft/react=x TAGMSG #b", "NOTICE tagged :boop")
    line = tagged.expect(r"PRIVMSG #b :beep$").string
    assert parse(line).tags.keys() >= {"bot", "msgid"} and parse(line).tags["bot"] == ""
    assert parse(tagged.expect(r" TAGMSG #b$").string).tags.keys() >= {"bot", "+draft/react"}
    assert "bot" in parse(tagged.expect(r"NOTICE tagged :boop$").string).tags
    assert plain.expect(r"PRIVMSG #b :beep$").string.startswith(":robot!")
    plain.send("WHO #b")
    assert plain.expect(r" 352 plain #b \S+ \S+ \S+ robot (\S+) ").group(1) == "HB@"
    plain.send("WHOIS robot")
    plain.expect(r" 335 plain robot :is a bot on \S+$")
    plain.expect(r" 318 plain robot ")
    robot.send("MODE robot -B", "PRIVMSG #b :human now")
    robot.expect(r":robot!\S+ MODE robot :?-B$")
    assert "bot" not in parse(tagged.expect(r"PRIVMSG #b :human now$").string).tags
    seen = len(plain.lines)
    plain.send("WHOIS robot")
    plain.expect(r" 318 plain robot ")
    assert not any(" 335 " in line for line in plain.lines[seen:])


def test_links_lists_the_servers(connect):
    """LINKS: this server (hop 0); on two nodes named alike, still one name."""
    client = connect("linker")
    connect("other")  # perhaps on the other node
    client.send("LINKS")
    client.expect(r" 364 linker greenchat\.local greenchat\.local :0 greenchat IRC server$")
    client.expect(r" 365 linker \* :End of /LINKS list$")
