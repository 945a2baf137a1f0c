"""WEBIRC: a trusted gateway (--webirc NAME:PASSWORD:CIDR) passes its users' real
addresses; anything else is refused with ERROR, the connection closed, a metric."""

from __future__ import annotations

import pytest
from transcript import IrcClient

GATEWAY = ("kiwi", "s3cret", "127.0.0.0/8")  # the test's connections come from 127.0.0.1


def test_a_trusted_gateway_gives_the_users_own_host_and_address(make_server):
    server = make_server(webirc=[GATEWAY])
    op = IrcClient(server.port).register("op").join("#w")
    op.send("MODE #w +b *!*@*.banned.example")
    op.expect(r" MODE #w \+b \*!\*@\*\.banned\.example$")
    user = IrcClient(server.port)
    user.send("WEBIRC s3cret kiwi home.example.org 203.0.113.7")
    user.register("visitor")
    user.join("#w")
    op.expect(r"^:visitor!~visitor@home\.example\.org JOIN #w$")
    user.send("WHOIS visitor")
    user.expect(r" 378 visitor visitor :is connecting from ~visitor@203\.0\.113\.7 203\.0\.113\.7$")
    banned = IrcClient(server.port)
    banned.send("WEBIRC s3cret kiwi x.banned.example 198.51.100.9")
    banned.register("banned")
    banned.send("JOIN #w")
    banned.expect(r" 474 banned #w ")  # the ban sees the real host
    odd = IrcClient(server.port)
    odd.send("WEBIRC s3cret kiwi not_a:host 2001:db8::1")
    odd.register("odd")
    odd.send("WHOIS odd")
    odd.expect(r" 311 odd odd ~odd 2001:db8::1 \* ")  # a bad hostname: the address
    for client in (op, user, banned, odd):
        client.close()


def test_a_wrong_password_an_untrusted_address_or_a_bad_ip_is_refused(make_server):
    server = make_server(webirc=[GATEWAY, ("far", "other", "10.0.0.0/8")])
    for params in (
        "wrong kiwi host.example 203.0.113.7",  # not kiwi's password
        "other far host.example 203.0.113.7",  # far's, but not from 10.0.0.0/8
        "s3cret kiwi host.example not-an-ip",
    ):
        client = IrcClient(server.port)
        client.send(f"WEBIRC {params}")
        lines = client.expect_closed()
        assert any(line.startswith("ERROR :WEBIRC refused") for line in lines), lines
        client.close()
    nodes = getattr(server, "nodes", [server])  # on two nodes the connections alternate
    assert sum(node.call(lambda n=node: n.server.metrics.webirc_refused) for node in nodes) == 3


def test_webirc_once_and_before_registration_only(make_server):
    server = make_server(webirc=[GATEWAY])
    late = IrcClient(server.port).register("late")
    late.send("WEBIRC s3cret kiwi host.example 203.0.113.7")
    late.expect(r" 462 late :You may not reregister$")
    twice = IrcClient(server.port)
    twice.send("WEBIRC s3cret kiwi a.example 203.0.113.7", "WEBIRC s3cret kiwi b.example 1.2.3.4")
    assert any(line.startswith("ERROR :WEBIRC refused") for line in twice.expect_closed())
    none = make_server()  # no --webirc: no gateway is trusted
    client = IrcClient(none.port)
    client.send("WEBIRC s3cret kiwi host.example 203.0.113.7")
    assert any(line.startswith("ERROR :WEBIRC refused") for line in client.expect_closed())
    for c in (late, twice, client):
        c.close()


@pytest.mark.single_process("--max-per-ip counts per process: each node has its own counts")
def test_a_carried_connection_counts_for_the_users_address(make_server):
    """--max-per-ip counts each user behind the gateway for their own address: the
    gateway's stays free, and a third connection of one user's address is refused."""
    server = make_server(webirc=[GATEWAY], max_per_ip=2, max_per_ip_exempt=[])
    users = []
    for n, ip in enumerate(["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.1"]):
        client = IrcClient(server.port)
        client.send(f"WEBIRC s3cret kiwi h{n}.example {ip}")
        users.append(client.register(f"u{n}"))  # the gateway's own count does not grow
    over = IrcClient(server.port)
    over.send("WEBIRC s3cret kiwi h9.example 203.0.113.1")
    assert any("Too many connections" in line for line in over.expect_closed())
    for client in (*users, over):
        client.close()
