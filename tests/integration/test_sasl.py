"""SASL (AUTHENTICATE) against a real server: PLAIN and SCRAM-SHA-256, the numerics
900-908, aborts, chunking, limits, and the account seen everywhere afterwards."""

from __future__ import annotations

import base64
import ssl
import time

import pytest
import trustme
from scramp import ScramClient
from transcript import IrcClient

from greenchat.store.base import Account
from greenchat.store.credentials import make_credentials

PASSWORD = "correct horse battery"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def plain(account: str, password: str) -> str:
    return b64(f"\0{account}\0{password}".encode())


def sasl_logged_in(client, account: str) -> None:
    """``client`` (after :func:`start_sasl`) logs in to ``account`` with PLAIN: 903."""
    client.send(f"AUTHENTICATE {plain(account, PASSWORD)}")
    client.expect(r" 903 sasl ")


def create_account(server, name: str, password: str = PASSWORD) -> None:
    """An account in the server's store, as NickServ REGISTER makes one."""
    account = Account(name, make_credentials(password), time.time())
    storage = server.server.storage
    server.call(storage.run, storage.store.create_account, account)


@pytest.fixture
def accounts(server):
    """Factory: create an account in the default server's store."""
    return lambda name, password=PASSWORD: create_account(server, name, password)


def start_sasl(client, mechanism: str = "PLAIN") -> None:
    client.send("CAP LS 302", "NICK sasl", "USER sasl 0 * :sasl")
    ls = client.read_cap_ls()
    assert "sasl=PLAIN,SCRAM-SHA-256,EXTERNAL" in ls, ls
    client.send("CAP REQ :sasl")
    client.expect(r" CAP \S+ ACK :?sasl")
    client.send(f"AUTHENTICATE {mechanism}")
    client.expect(r"^AUTHENTICATE \+$")


def test_plain_before_registration_logs_in(connect, accounts):
    accounts("Alice")
    client = connect()
    start_sasl(client)
    client.send(f"AUTHENTICATE {plain('alice', PASSWORD)}")
    client.expect(r" 900 sasl sasl!~sasl@\S+ Alice :You are now logged in as Alice$")
    client.expect(r" 903 sasl :SASL authentication successful")
    client.send("CAP END")
    client.expect(r" 001 sasl ")
    client.send("WHOIS sasl", "MODE sasl")
    client.expect(r" 330 sasl sasl Alice :is logged in as")
    client.expect(r" 221 sasl \+\S*r")


def test_scram_sha_256_logs_in_without_sending_the_password(connect, accounts):
    accounts("bob")
    client = connect()
    start_sasl(client, "SCRAM-SHA-256")
    scram = ScramClient(["SCRAM-SHA-256"], "bob", PASSWORD)
    client.send(f"AUTHENTICATE {b64(scram.get_client_first().encode())}")
    server_first = client.expect(r"^AUTHENTICATE (\S+)$").group(1)
    scram.set_server_first(base64.b64decode(server_first).decode())
    client.send(f"AUTHENTICATE {b64(scram.get_client_final().encode())}")
    server_final = client.expect(r"^AUTHENTICATE (\S+)$").group(1)
    scram.set_server_final(base64.b64decode(server_final).decode())  # the server knew it too
    client.send("AUTHENTICATE +")
    client.expect(r" 900 sasl \S+ bob :")
    client.expect(r" 903 sasl ")


def test_a_wrong_scram_proof_fails(connect, accounts):
    accounts("bob")
    client = connect()
    start_sasl(client, "SCRAM-SHA-256")
    scram = ScramClient(["SCRAM-SHA-256"], "bob", "not the password")
    client.send(f"AUTHENTICATE {b64(scram.get_client_first().encode())}")
    server_first = client.expect(r"^AUTHENTICATE (\S+)$").group(1)
    scram.set_server_first(base64.b64decode(server_first).decode())
    client.send(f"AUTHENTICATE {b64(scram.get_client_final().encode())}")
    client.expect(r" 904 sasl :SASL authentication failed: Invalid account credentials")


@pytest.mark.parametrize("who", ["wrong password", "unknown account"])
def test_wrong_password_and_unknown_account_fail_alike(connect, accounts, who):
    accounts("carol")
    client = connect()
    start_sasl(client)
    name, password = ("carol", "nope") if who == "wrong password" else ("nobody", PASSWORD)
    client.send(f"AUTHENTICATE {plain(name, password)}")
    client.expect(r" 904 sasl :SASL authentication failed: Invalid account credentials$")
    client.send("CAP END")
    client.expect(r" 001 sasl ")  # registered, without an account


def test_abort_then_try_again(connect, accounts):
    accounts("dave")
    client = connect()
    start_sasl(client)
    client.send("AUTHENTICATE *")
    client.expect(r" 906 sasl :SASL authentication aborted")
    client.send("AUTHENTICATE PLAIN")
    client.expect(r"^AUTHENTICATE \+$")
    client.send(f"AUTHENTICATE {plain('dave', PASSWORD)}")
    client.expect(r" 903 sasl ")
    client.send("AUTHENTICATE PLAIN")
    client.expect(r" 907 sasl :You have already authenticated")


def test_garbage_unknown_mechanisms_and_too_long(connect):
    client = connect()
    start_sasl(client)
    client.send("AUTHENTICATE !!notbase64!!")
    client.expect(r" 904 sasl :SASL authentication failed: not valid base64")
    client.send("AUTHENTICATE X-UNKNOWN")
    client.expect(r" 908 sasl PLAIN,SCRAM-SHA-256,EXTERNAL :are available SASL mechanisms")
    client.expect(r" 904 sasl ")
    client.send("AUTHENTICATE PLAIN")
    client.expect(r"^AUTHENTICATE \+$")
    client.send(*["AUTHENTICATE " + "A" * 400] * 21)
    client.expect(r" 905 sasl :SASL message too long")


def test_a_long_message_comes_in_400_byte_chunks(connect, accounts):
    long_password = "p" * 500
    accounts("erin", long_password)
    client = connect()
    start_sasl(client)
    text = plain("erin", long_password)
    pieces = [text[i : i + 400] for i in range(0, len(text), 400)]
    if len(pieces[-1]) == 400:
        pieces.append("+")
    client.send(*[f"AUTHENTICATE {piece}" for piece in pieces])
    client.expect(r" 903 sasl ")


def test_cap_end_mid_login_aborts_it_and_registers(connect):
    client = connect()
    start_sasl(client)
    client.send("CAP END")
    client.expect(r" 906 sasl ")
    client.expect(r" 001 sasl ")


def test_sasl_without_the_capability_fails(connect):
    client = connect().register("nocap")
    client.send("AUTHENTICATE PLAIN")
    client.expect(r" 904 nocap :SASL authentication failed: enable the sasl capability first")


def test_after_registration_peers_see_the_account(connect, accounts):
    accounts("Frank")
    watcher = connect().register_with_caps("watcher", "account-notify account-tag extended-join")
    watcher.join("#room")
    frank = connect().register_with_caps("frank", "sasl")
    frank.join("#room")
    watcher.expect(r":frank!\S+ JOIN #room \* :")  # extended-join: no account yet
    frank.send("AUTHENTICATE PLAIN")
    frank.expect(r"^AUTHENTICATE \+$")
    frank.send(f"AUTHENTICATE {plain('frank', PASSWORD)}")
    frank.expect(r" 900 frank frank!\S+ Frank :")
    frank.expect(r":\S+ MODE frank \+r")
    frank.expect(r" 903 frank ")
    watcher.expect(r"^:frank!\S+ ACCOUNT Frank$")
    frank.send("PRIVMSG #room :hello")
    watcher.expect(r"^@account=Frank :frank!\S+ PRIVMSG #room :hello$")
    watcher.send("WHO #room %na")
    watcher.expect(r" 354 watcher frank Frank$")


def test_failed_logins_are_limited_and_say_how_long_to_wait(make_server, connect):
    server = make_server(flood_rate=0)  # 300 lines in a burst, without fakelag
    create_account(server, "gina")
    client = connect(port=server.port)
    start_sasl(client)
    limited = 0
    for _ in range(100):
        client.send(f"AUTHENTICATE {plain('gina', 'guess')}")
        line = client.expect(r" 904 sasl :").string
        limited += "Too many failed logins; try again in" in line
        client.send("AUTHENTICATE PLAIN")
        client.expect(r"^AUTHENTICATE \+$")
    assert limited >= 90  # the first few are only wrong; then each is refused at once
    client.send(f"AUTHENTICATE {plain('gina', PASSWORD)}")  # right, but too soon
    client.expect(r" 904 sasl :SASL authentication failed: Too many failed logins; try again in")


def test_scram_for_an_unknown_account_fails_at_the_first_step(connect):
    client = connect()
    start_sasl(client, "SCRAM-SHA-256")
    scram = ScramClient(["SCRAM-SHA-256"], "nobody", PASSWORD)
    client.send(f"AUTHENTICATE {b64(scram.get_client_first().encode())}")
    client.expect(r" 904 sasl :SASL authentication failed: Invalid account credentials$")


@pytest.fixture
def cert_server(make_server, tmp_path):
    """A TLS listener that accepts client certificates from a test CA, and a factory of
    TLS clients (with a client certificate, or without one)."""
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    server_cert.private_key_pem.write_to_path(str(key_file))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = make_server(tls_port=0, tls_cert=cert_file, tls_key=key_file, tls_client_ca=ca_file)
    client_cert = ca.issue_cert("alice@example.org")
    opened = []

    def tls_client(with_cert: bool = True) -> IrcClient:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        if with_cert:
            client_cert.configure_cert(context)
        client = IrcClient(server.server.tls_address[1], tls=context)
        opened.append(client)
        return client

    server.tls_client = tls_client
    yield server
    for client in opened:
        client.close()


def test_a_registered_certificate_logs_in_with_external(cert_server):
    owner = cert_server.tls_client().register("alice")
    owner.send(f"NS REGISTER {PASSWORD.replace(' ', '-')}")
    owner.expect(r" 900 alice ")
    owner.send("NS CERT ADD")
    owner.expect(r"NOTICE alice :Certificate ([0-9a-f]{64}) added: it logs in to alice")
    owner.send("NS CERT LIST")
    owner.expect(r"NOTICE alice :1 certificate\(s\) for alice\.")
    owner.send("QUIT")
    owner.expect_closed()

    again = cert_server.tls_client()
    start_sasl(again, "EXTERNAL")
    again.send("AUTHENTICATE +")
    again.expect(r" 900 sasl \S+ alice :You are now logged in as alice")
    again.expect(r" 903 sasl ")

    stranger = cert_server.tls_client(with_cert=False)
    start_sasl(stranger, "EXTERNAL")
    stranger.send("AUTHENTICATE +")
    stranger.expect(r" 904 \S+ :SASL authentication failed: EXTERNAL needs a TLS client cert")


@pytest.mark.parametrize("exempt", [True, False])
def test_wrong_logins_to_other_accounts_limit_the_address_unless_it_is_exempt(
    make_server, connect, exempt
):
    """Loopback (max-per-ip-exempt) is a bouncer or a gateway: failures there count only
    against the accounts tried; from any other address they count against it too."""
    server = make_server(flood_rate=0, **({} if exempt else {"max_per_ip_exempt": []}))
    create_account(server, "alice")
    client = connect(port=server.port)
    start_sasl(client)
    for i in range(5):
        client.send(f"AUTHENTICATE {plain(f'nobody{i}', 'wrong')}")
        client.expect(r" 904 sasl :")
        client.send("AUTHENTICATE PLAIN")
        client.expect(r"^AUTHENTICATE \+$")
    client.send(f"AUTHENTICATE {plain('alice', PASSWORD)}")
    client.expect(r" 903 sasl " if exempt else r" 904 sasl :.*Too many failed logins")


def test_account_ban_masks_keep_out_the_account_whatever_the_nick(connect, accounts):
    accounts("Mallory")
    op = connect().register("op").join("#room")
    op.send("MODE #room +b $a:mallory", "MODE #room +b ~a:eve*")
    op.expect(r" MODE #room \+b \$a:mallory")
    op.expect(r" MODE #room \+b ~a:eve\*")
    mallory = connect()
    start_sasl(mallory)
    sasl_logged_in(mallory, "mallory")
    mallory.send("CAP END", "NICK innocent", "JOIN #room")
    mallory.expect(r" 474 innocent #room :Cannot join channel \(\+b\)")
    anonymous = connect().register("mallory")  # the nick alone is not the account
    anonymous.join("#room")


def test_extended_bans_mute_account_and_unregistered(connect, accounts):
    """EXTBAN=,aUm: ``m:`` mutes (join, but 404 on speaking), ``a:`` names an account,
    ``U:`` users not logged in; ``m:U:*!*@*`` quiets everyone without an account, and +e
    excepts from a mute too."""
    accounts("Alice")
    op = connect().register("op").join("#q")
    op.send("VERSION")
    assert "EXTBAN=,aUm" in op.expect(r" 005 op .*EXTBAN").string.split()
    op.send("MODE #q +b m:loud", "MODE #q +b m:U:*!*@*")
    op.expect(r" MODE #q \+b m:loud!\*@\*$")
    op.expect(r" MODE #q \+b m:U:\*!\*@\*$")
    loud = connect().register("loud").join("#q")  # a mute lets one in
    loud.send("PRIVMSG #q :hello?")
    loud.expect(r" 404 loud #q :Cannot send to channel$")
    alice = connect()
    start_sasl(alice)
    sasl_logged_in(alice, "alice")
    alice.send("CAP END", "NICK alice", "JOIN #q")
    alice.expect(r"^:alice!\S+ JOIN #q")
    alice.send("PRIVMSG #q :logged in, so heard")
    op.expect(r":alice!\S+ PRIVMSG #q :logged in, so heard$")
    op.send("MODE #q +e m:loud", "MODE #q +b a:alice")  # an exception; an account ban
    op.expect(r" MODE #q \+e m:loud!\*@\*$")
    op.expect(r" MODE #q \+b a:alice$")
    loud.expect(r" MODE #q \+b a:alice$")  # on two nodes: loud's own has applied both
    loud.send("PRIVMSG #q :excepted")
    op.expect(r":loud!\S+ PRIVMSG #q :excepted$")
    alice.send("PART #q", "JOIN #q")
    alice.expect(r" 474 alice #q :Cannot join channel \(\+b\)$")
    op.send("MODE #q -e m:loud!*@*", "PRIVMSG #q :voice keeps working")
    op.expect(r" MODE #q -e m:loud!\*@\*$")
    loud.expect(r"PRIVMSG #q :voice keeps working$")
    loud.send("PRIVMSG #q :muted again")
    loud.expect(r" 404 loud #q :Cannot send to channel$")
