"""One network on two nodes: what users on either see, and the races the
network's order settles (backplane/redis.py). Each node is a real server on port
0; Redis is a real redis-server, and each test runs again on a real Redis Cluster
(three shards: the log on one, each channel on the shard of its slot)."""

from __future__ import annotations

import random
import threading
import time

from links import DribblingLink
from transcript import until

from greenchat.server.oper import hash_password

ON_A_CLUSTER_TOO = True  # conftest.py: each test again on a Redis Cluster

PASSWORD = "s3cret"
OPER_HASH = hash_password(PASSWORD)  # once: scrypt is slow on purpose


def test_channel_message_reaches_the_other_node(nodes, connect):
    a, b = nodes(2)
    alice = connect(a, "alice").join("#room")
    bob = connect(b, "bob").join("#room")
    alice.expect(r":bob!\S+ JOIN :?#room")
    bob.send("PRIVMSG #room :hello from b")
    alice.expect(r":bob!\S+ PRIVMSG #room :hello from b")
    alice.send("PRIVMSG #room :hello from a")
    bob.expect(r":alice!\S+ PRIVMSG #room :hello from a")


def test_private_message_to_a_user_on_the_other_node(nodes, connect):
    a, b = nodes(2)
    alice = connect(a, "alice")
    bob = connect(b, "bob")
    alice.send("PRIVMSG bob :psst")
    bob.expect(r":alice!\S+ PRIVMSG bob :psst")
    bob.send("NOTICE alice :heard you")
    alice.expect(r":bob!\S+ NOTICE alice :heard you")


def test_names_whois_and_lusers_count_both_nodes(nodes, connect):
    a, b = nodes(2)
    alice = connect(a, "alice").join("#room")
    connect(b, "bob").join("#room")
    alice.expect(r":bob!\S+ JOIN")
    alice.send("NAMES #room")
    names = alice.expect(r" 353 alice \S #room :(.*)").group(1).split()
    assert sorted(n.lstrip("@+") for n in names) == ["alice", "bob"]
    alice.send("WHOIS bob")
    alice.expect(r" 311 alice bob ")
    alice.expect(r" 312 alice bob node1\.test ")  # bob's server, not alice's
    alice.expect(r" 318 alice bob ")
    alice.send("WHO bob")
    alice.expect(r" 352 alice \S+ \S+ \S+ node1\.test bob ")
    alice.send("LUSERS")
    alice.expect(r" 251 alice :There are 2 users")
    alice.send("LINKS")  # alice's server, then the other node, which has a user
    alice.expect(r" 364 alice node0\.test node0\.test :0 ")
    alice.expect(r" 364 alice node1\.test node0\.test :1 ")
    alice.expect(r" 365 alice \* :End of /LINKS list$")


def test_a_taken_nick_is_taken_on_every_node(nodes, connect):
    a, b = nodes(2)
    connect(a, "alice")
    other = connect(b)
    other.send("NICK alice", "USER x 0 * :x")
    other.expect(r" 433 \S+ alice ")


def _at_once(sends: list[tuple[object, tuple[str, ...]]]) -> None:
    """Each client sends its lines from its own thread, released together."""
    barrier = threading.Barrier(len(sends))

    def send(client, lines) -> None:
        barrier.wait()
        client.send(*lines)

    threads = [threading.Thread(target=send, args=pair) for pair in sends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_the_same_nick_at_the_same_moment_goes_to_exactly_one(nodes, connect):
    """Both registrations pass each node's own check; the network's order lets the
    first in, and the other gets 433."""
    a, b = nodes(2)
    for round_ in range(5):
        nick = f"race{round_}"
        first, second = connect(a), connect(b)
        lines = (f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        _at_once([(first, lines), (second, lines)])
        outcomes = sorted(c.expect(r" (001|433) ").group(1) for c in (first, second))
        assert outcomes == ["001", "433"], outcomes


def test_two_joins_to_a_limit_1_channel_let_exactly_one_in(nodes, connect):
    a, b = nodes(2)
    op = connect(a, "op").join("#full")
    op.send("MODE #full +l 2")  # the op and one more
    op.expect(r"MODE #full \+l 2")
    for round_ in range(3):
        first, second = connect(a, f"x{round_}"), connect(b, f"y{round_}")
        _at_once([(first, ("JOIN #full",)), (second, ("JOIN #full",))])
        outcomes = [c.expect(r" (366|471) ").group(1) for c in (first, second)]
        assert sorted(outcomes) == ["366", "471"], outcomes
        op.send("NAMES #full")
        names = op.expect(r" 353 op \S #full :(.*)").group(1).split()
        winner = first if outcomes[0] == "366" else second
        assert len(names) == 2 and (f"x{round_}" in names) == (winner is first)
        winner.send("PART #full")
        op.expect(r" PART #full")


def test_order_from_one_sender_holds_on_the_other_node(nodes, connect):
    a, b = nodes(2, flood_rate=0)  # 200 lines at once
    watcher = connect(b, "watcher").join("#order")
    talker = connect(a, "talker")
    talker.send("JOIN #order", *[f"PRIVMSG #order :{i}" for i in range(200)], "PART #order")
    watcher.expect(r":talker!\S+ JOIN")  # the JOIN before the first message
    got = [int(watcher.expect(r":talker!\S+ PRIVMSG #order :(\d+)").group(1)) for _ in range(200)]
    assert got == list(range(200))
    watcher.expect(r":talker!\S+ PART #order")  # and the PART after the last


def test_a_long_burst_crosses_whole_without_the_link_dropping(redis_url, nodes, connect):
    """3,000 long lines at once reach the other node as a few big PUBLISHes (runs of
    envelopes). Node b's link to Redis passes Redis's bytes on in small pieces, slowly
    (DribblingLink): the subscriber reads each message whole, without a reconnect, and
    every line gets there once, in order."""
    (a,) = nodes(1, url=redis_url, flood_rate=0)
    with DribblingLink(redis_url) as link:
        (b,) = nodes(1, url=link.url, network=a.server.config.network, flood_rate=0)
        _burst_crosses(a, b, connect)


def _burst_crosses(a, b, connect) -> None:
    watcher = connect(b, "watcher").join("#burst")
    talker = connect(a, "talker").join("#burst")
    watcher.expect(r":talker!\S+ JOIN")
    filler = "x" * 300
    talker.send_raw(b"".join(f"PRIVMSG #burst :{i} {filler}\r\n".encode() for i in range(3000)))
    got = [int(watcher.expect(r"PRIVMSG #burst :(\d+) x", timeout=30)[1]) for _ in range(3000)]
    assert got == list(range(3000))
    assert a.server.backplane.reconnects == b.server.backplane.reconnects == 0


def test_quit_on_one_node_is_seen_on_the_other_and_frees_the_nick(nodes, connect):
    a, b = nodes(2)
    alice = connect(a, "alice").join("#room")
    bob = connect(b, "bob").join("#room")
    alice.expect(r":bob!\S+ JOIN")
    bob.send("QUIT :bye")
    alice.expect(r":bob!\S+ QUIT :Quit: bye")
    connect(a, "bob")  # registers: the nick is free again


def test_topic_and_modes_set_on_one_node_show_on_the_other(nodes, connect):
    a, b = nodes(2)
    op = connect(a, "op").join("#t")
    other = connect(b, "other").join("#t")
    op.expect(r":other!\S+ JOIN")
    op.send("TOPIC #t :a topic", "MODE #t +m", "MODE #t +v other")
    other.expect(r"TOPIC #t :a topic")
    other.expect(r"MODE #t \+m")
    other.expect(r"MODE #t \+v other")
    other.send("MODE #t")
    assert "m" in other.expect(r" 324 other #t (\S+)").group(1)
    other.send("TOPIC #t")
    other.expect(r" 332 other #t :a topic")


def test_kick_of_a_user_on_the_other_node(nodes, connect):
    a, b = nodes(2)
    op = connect(a, "op").join("#k")
    victim = connect(b, "victim").join("#k")
    op.expect(r":victim!\S+ JOIN")
    op.send("KICK #k victim :out")
    victim.expect(r"KICK #k victim :out")
    victim.send("PRIVMSG #k :still here?")
    victim.expect(r" 404 victim #k ")


def test_kill_of_a_user_on_the_other_node(nodes, connect):
    a, b = nodes(2, opers={"admin": OPER_HASH})
    admin = connect(a, "admin").join("#k")
    victim = connect(b, "victim").join("#k")
    admin.expect(r":victim!\S+ JOIN")
    admin.send(f"OPER admin {PASSWORD}")
    admin.expect(r" 381 admin ")
    admin.send("KILL victim :enough")
    victim.expect(r"^ERROR :Closing Link: \S+ \(Killed \(admin \(enough\)\)\)$")
    admin.expect(r":victim!\S+ QUIT :Killed \(admin \(enough\)\)$")
    connect(a, "victim")  # the nick is free again, on the killer's node too


def test_wallops_reach_operators_and_plus_w_users_on_every_node(nodes, connect):
    a, b = nodes(2, opers={"admin": OPER_HASH})
    admin = connect(a, "admin")
    far_oper = connect(b, "faroper")
    listener = connect(b, "listener")
    deaf = connect(b, "deaf")
    for oper in (admin, far_oper):
        oper.send(f"OPER admin {PASSWORD}")
        oper.expect(r" 381 \S+ ")
    listener.send("MODE listener +w")
    listener.expect(r"MODE listener :\+w$")
    admin.send("WALLOPS :maintenance at noon")
    for who in (listener, far_oper, admin):
        who.expect(r"^:admin!\S+ WALLOPS :maintenance at noon$")
    deaf.sync()
    assert not any(" WALLOPS " in line for line in deaf.lines)


def test_a_query_on_one_node_sees_what_another_node_just_confirmed(redis_url, nodes, connect):
    """Each reply below follows a change confirmed on the other node an instant
    before, and the asker's node hears Redis 50 ms late: without catching up with the
    network's log first, its answers would miss those changes."""
    (b,) = nodes(1, url=redis_url)
    with DribblingLink(redis_url, pause=0.05) as link:
        (a,) = nodes(1, url=link.url, network=b.server.config.network)
        # Its start waits 5 s for the network at most; behind this link, on a busy
        # machine, joining it (the snapshot, the log) can take longer.
        until(lambda: a.server.backplane.connected, 30, "node a joined the network")
        _queries_see_the_other_node(a, b, connect)


def _queries_see_the_other_node(a, b, connect) -> None:
    asker = connect(a, "asker")
    for round_ in range(3):
        nick = f"new{round_}"
        newcomer = connect(b, nick)  # its 001 came: the network has it
        newcomer.send("AWAY :gone fishing")
        newcomer.expect(r" 306 ")
        asker.send(f"WHOIS {nick}")
        asker.expect(rf" 301 asker {nick} :gone fishing$")
        asker.send(f"PRIVMSG {nick} :hi")
        newcomer.expect(rf":asker!\S+ PRIVMSG {nick} :hi$")
        newcomer.send(f"JOIN #r{round_}", f"MODE #r{round_} +k key")
        newcomer.expect(rf"MODE #r{round_} \+k key$")
        asker.send(f"JOIN #r{round_}")
        asker.expect(rf" 475 asker #r{round_} ")
        newcomer.send(f"MODE #r{round_} -k key")
        newcomer.expect(rf"MODE #r{round_} -k \S+$")
        asker.send(f"JOIN #r{round_}")
        asker.expect(rf" 366 asker #r{round_} ")
        newcomer.close()


def test_a_node_started_later_learns_the_network(nodes, connect):
    """The new node gets a live node's snapshot: users, channels, modes, topics."""
    (a,) = nodes(1)
    alice = connect(a, "alice").join("#room")
    alice.send("TOPIC #room :before you came", "MODE #room +k secret", "AWAY :lunch")
    alice.expect(r" 306 alice ")
    (b,) = nodes(1, network=a.config.network)
    bob = connect(b, "bob")
    bob.send("NICK alice")
    bob.expect(r" 433 bob alice ")
    bob.send("WHOIS alice")
    bob.expect(r" 312 bob alice node0\.test ")  # the snapshot names alice's server
    bob.expect(r" 301 bob alice :lunch")
    bob.send("JOIN #room")
    bob.expect(r" 475 bob #room ")  # the key came with the snapshot
    bob.send("JOIN #room secret")
    bob.expect(r" 332 bob #room :before you came")
    names = bob.expect(r" 353 bob \S #room :(.*)").group(1).split()
    assert sorted(names) == ["@alice", "bob"]
    alice.expect(r":bob!\S+ JOIN #room")
    alice.send("PRIVMSG #room :welcome")
    bob.expect(r":alice!\S+ PRIVMSG #room :welcome")


def _replica(server) -> dict:
    """What a node holds of the network, comparable with another's: users without
    their node, channels with their members sorted."""
    from greenchat.backplane.snapshot import take

    state = server.call(take, server.server.hub, "", {})
    users = sorted(user[:5] + user[6:8] for user in state["users"])
    channels = sorted([*c[:9], sorted(map(tuple, c[9]))] for c in state["channels"])
    return {"users": users, "channels": channels}


def test_conflicting_modes_and_topics_from_both_nodes_end_the_same(nodes, connect):
    """Two operators of #c, one on each node, fire random TOPIC and MODE changes at the
    same time, without waiting: once both are answered, both replicas are equal."""
    a, b = nodes(2, flood_rate=0)
    first = connect(a, "opa").join("#c")
    second = connect(b, "opb").join("#c")
    voices = [connect(node, f"v{i}").join("#c") for i, node in enumerate((a, b, a, b))]
    first.send("MODE #c +o opb")
    second.expect(r"MODE #c \+o opb")
    chooser = random.Random(1602)
    changes = [
        lambda: f"TOPIC #c :topic {chooser.randrange(1000)}",
        lambda: f"MODE #c {chooser.choice('+-')}{chooser.choice('mtinps')}",
        lambda: f"MODE #c +k key{chooser.randrange(10)}",
        lambda: "MODE #c -k *",
        lambda: f"MODE #c +l {chooser.randrange(5, 50)}",
        lambda: "MODE #c -l",
        lambda: f"MODE #c {chooser.choice('+-')}v v{chooser.randrange(4)}",
        lambda: f"MODE #c {chooser.choice('+-')}b *!*@host{chooser.randrange(5)}",
    ]
    for _ in range(40):  # both at once, 5 lines each round
        first.send(*(chooser.choice(changes)() for _ in range(5)))
        second.send(*(chooser.choice(changes)() for _ in range(5)))
    first.sync()
    second.sync()
    deadline = time.monotonic() + 10
    while (left := _replica(a)) != (right := _replica(b)):
        assert time.monotonic() < deadline, f"the replicas differ:\n{left}\n{right}"
        time.sleep(0.05)
    assert left["channels"][0][6].startswith("topic ")  # the changes were made
    for client in voices:
        client.close()


def test_a_renamed_channel_is_heard_at_once_and_its_old_name_can_be_reused(nodes, connect):
    """RENAME keeps the channel's Redis channel (its first name's): a line said on the
    other node right after the rename is heard, and a new channel with the old name
    lives beside it, each node still hearing both after a member leaves one."""
    a, b = nodes(2)
    alice = connect(a, "alice").join("#old")
    bob = connect(b, "bob").join("#old")
    alice.expect(r":bob!\S+ JOIN #old")
    alice.send("RENAME #old #new", "PRIVMSG #new :first under the new name")
    bob.expect(r"PRIVMSG #new :first under the new name$")  # bob's fallback came first
    bob.send("PRIVMSG #new :heard you")
    alice.expect(r":bob!\S+ PRIVMSG #new :heard you$")
    alice.join("#old")
    bob.join("#old")
    alice.expect(r":bob!\S+ JOIN #old")
    bob.send("PART #new")
    alice.expect(r":bob!\S+ PART #new")
    bob.send("PRIVMSG #old :the new #old")
    alice.expect(r":bob!\S+ PRIVMSG #old :the new #old$")
    alice.send("PRIVMSG #old :both ways")
    bob.expect(r":alice!\S+ PRIVMSG #old :both ways$")
