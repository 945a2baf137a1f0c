"""Bad input gets a clear answer and loses nothing; idle and stuck clients are dropped."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

from transcript import IrcClient, wait_for


def test_overlong_line_gets_417_and_connection_stays(connect):
    alice = connect("alice").join("#lobby")
    bob = connect("bob").join("#lobby")
    alice.send("PRIVMSG #lobby :" + "x" * 600)
    alice.expect(r" 417 alice :Input line was too long$")
    alice.send("PRIVMSG #lobby :still here")
    bob.expect(r"PRIVMSG #lobby :still here$")
    assert not any("xxxx" in line for line in bob.lines)


def test_long_tags_are_allowed_up_to_8191_bytes(connect):
    alice = connect("alice").join("#lobby")
    bob = connect("bob").join("#lobby")
    # Server-side tags may fill 8191 bytes; client-only (+) tags only 4094.
    alice.send("@label=" + "y" * 8000 + " PRIVMSG #lobby :tagged")
    bob.expect(r"PRIVMSG #lobby :tagged$")
    alice.send("@+x=" + "y" * 4000 + " PRIVMSG #lobby :client tags")
    bob.expect(r"PRIVMSG #lobby :client tags$")
    alice.send("@+x=" + "y" * 5000 + " PRIVMSG #lobby :too many client tags")
    alice.expect(r" 417 alice :Input line was too long$")
    alice.send("@+x=" + "y" * 9000 + " PRIVMSG #lobby :too many tags")
    alice.expect(r" 417 alice ")
    bob.sync()
    assert not any("too many" in line for line in bob.lines)


def test_no_newline_flood_is_disconnected_others_unaffected(connect):
    alice = connect("alice").join("#lobby")
    flooder = connect("flooder").join("#lobby")
    flooder.send_raw(b"PRIVMSG #lobby :" + b"z" * 20_000)
    lines = flooder.expect_closed()
    assert any(line.startswith("ERROR :") and "too long" in line for line in lines)
    alice.expect(r"^:flooder!\S+ QUIT :Input line too long")
    alice.sync()


def test_invalid_utf8_is_rejected_with_fail(connect):
    alice = connect("alice").join("#lobby")
    bob = connect("bob").join("#lobby")
    alice.send_raw(b"PRIVMSG #lobby :caf\xe9\r\n")
    alice.expect(r"^:greenchat\.local FAIL PRIVMSG INVALID_UTF8 :")
    alice.send("PRIVMSG #lobby :caf\u00e9")
    bob.expect("PRIVMSG #lobby :caf\u00e9$")


def test_nul_and_cr_cannot_inject_lines(connect):
    alice = connect("alice").join("#lobby")
    bob = connect("bob").join("#lobby")
    alice.send_raw(b"PRIVMSG #lobby :a\x00b\r\n")
    alice.expect(r" 400 alice \* :Malformed line")
    alice.send_raw(b"PRIVMSG #lobby :hi\rQUIT :pwned\r\n")
    alice.expect(r" 400 alice \* :Malformed line")
    alice.send("PRIVMSG #lobby :clean")
    bob.expect(r"PRIVMSG #lobby :clean$")
    assert not any("pwned" in line or "\x00" in line for line in bob.lines)


def test_bare_lf_and_byte_by_byte_input(connect):
    client = connect()
    for byte in b"NICK slow\nUSER slow 0 * :s\r\n":
        client.send_raw(bytes([byte]))
    client.expect(r" 001 slow ")


def test_garbage_source_and_odd_targets_never_break_replies(connect):
    alice = connect("alice")
    alice.send(":spoofed!x@y PRIVMSG alice :from me")
    alice.expect(r"^:alice!~alice@127\.0\.0\.1 PRIVMSG alice :from me$")
    alice.send("PRIVMSG :two words", "NICK :bad nick", "MODE :x y")
    alice.expect(r" 412 alice :No text to send$")
    alice.expect(r" 432 alice \* :Erroneous nickname$")
    alice.expect(r" 401 alice \* :No such nick/channel$")
    alice.sync()


def test_idle_client_is_pinged_then_dropped(make_server):
    server = make_server(ping_interval=0.3, ping_timeout=0.4)
    alive = IrcClient(server.port).register("alive")
    alive.join("#lobby")
    quiet = IrcClient(server.port).register("quiet")
    quiet.join("#lobby")
    alive.expect(r"^PING :greenchat\.local$")
    alive.send("PONG :greenchat.local")
    quiet.expect(r"^PING :greenchat\.local$")
    lines = quiet.expect_closed(timeout=5)
    assert any(line.startswith("ERROR :Closing Link") and "Ping timeout" in line for line in lines)
    alive.expect(r"^:quiet!\S+ QUIT :Ping timeout: \d+ seconds$", timeout=5)
    alive.close()


def test_unregistered_client_times_out(make_server):
    server = make_server(registration_timeout=0.3)
    client = IrcClient(server.port)
    client.send("NICK lurker")
    lines = client.expect_closed(timeout=5)
    assert any("Registration timed out" in line for line in lines)


def test_stalled_reader_is_dropped_and_others_get_every_line(make_server):
    """One member never reads while another pushes 20,000 lines at once."""
    # A long close grace: the stalled socket is read only once the others have every
    # line, and its ERROR must still be there to read then.
    server = make_server(sendq=64 * 1024, flood_rate=0, close_grace=30.0)
    port = server.port
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", port))
    stalled.sendall(b"NICK stalled\r\nUSER s 0 * :s\r\nJOIN #lobby\r\n")
    readers = [IrcClient(port, timeout=30).register(f"r{i}").join("#lobby") for i in range(3)]
    sender = IrcClient(port).register("sender").join("#lobby")
    readers[0].expect(r"^:sender!\S+ JOIN #lobby$")
    count = 20_000
    payload = "".join(f"PRIVMSG #lobby :line {i} " + "p" * 300 + "\r\n" for i in range(count))
    sender.send_in_background(payload.encode())
    with ThreadPoolExecutor(len(readers)) as pool:
        results = list(pool.map(lambda r: _read_numbered_lines(r, count), readers))
    assert results == [count] * len(readers)
    # The QUIT arrived among the numbered lines (or arrives now).
    quit_seen = [line for line in readers[0].lines if line.startswith(":stalled!")]
    if not quit_seen:
        readers[0].expect(r"^:stalled!\S+ QUIT :SendQ exceeded", timeout=10)
    else:
        assert "QUIT :SendQ exceeded" in quit_seen[0]
    stats = server.call(lambda: max(c.sendq.size for c in server.server.sessions))
    assert stats <= 64 * 1024
    # The stalled client gets an ERROR after whatever its kernel buffers held.
    stalled.settimeout(10)
    tail = b""
    while True:
        data = stalled.recv(1 << 20)
        if not data:
            break
        tail = (tail + data)[-4096:]
    assert b"ERROR :SendQ exceeded" in tail
    stalled.close()
    for reader in readers:
        reader.close()
    sender.close()


def _read_numbered_lines(reader: IrcClient, count: int) -> int:
    """Read until ``count`` numbered lines arrived, checking none is lost or reordered."""
    lines = reader.count_lines(b" PRIVMSG #lobby :line ", count)
    for number, line in enumerate(lines):
        assert line.split(b":line ")[1].startswith(b"%d " % number)
    return len(lines)


def test_shutdown_tells_every_client(make_server):
    server = make_server()
    clients = [IrcClient(server.port).register(f"c{i}") for i in range(3)]
    started = time.monotonic()
    server.stop()
    for client in clients:
        lines = client.expect_closed()
        assert "ERROR :Server shutting down" in lines
        client.close()
    assert time.monotonic() - started < 5


def test_output_the_socket_cannot_take_is_finished_by_a_writer(make_server):
    """A paused reader's backlog goes out whole and in order once it reads again.

    The flusher's non-blocking send takes only what fits in the kernel buffers;
    the rest goes back to the front of the queue for a writer greenlet.
    """
    server = make_server(sendq=16 * 1024 * 1024, flood_rate=0)
    reader = IrcClient(server.port, timeout=30, rcvbuf=4096)
    reader.register("paused").join("#lobby")
    sender = IrcClient(server.port).register("sender").join("#lobby")
    reader.expect(r"^:sender!\S+ JOIN #lobby$")
    # 6.6 MB: more than the kernel buffers on both sides hold (tcp_wmem max is 4 MiB).
    count = 20_000
    payload = "".join(f"PRIVMSG #lobby :line {i} " + "p" * 300 + "\r\n" for i in range(count))
    sender.send_in_background(payload.encode())

    def paused_writer() -> str:
        conns = [c for c in server.server.sessions if c.user.nick == "paused"]
        return "writer" if conns and conns[0].writer is not None else "none"

    wait_for(lambda: server.call(paused_writer), "^writer$", "a writer for the paused reader")
    assert _read_numbered_lines(reader, count) == count
    wait_for(lambda: server.call(paused_writer), "^none$", "the writer ends once drained")
    reader.sync()
    reader.close()
    sender.close()


def test_tcp_nodelay_is_off_by_default_and_a_flag(make_server):
    def nodelay(server) -> list[int]:
        conns = server.server.sessions
        return [c.transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for c in conns]

    for flag in (False, True):
        server = make_server(tcp_nodelay=flag)
        client = IrcClient(server.port).register("n")
        assert server.call(nodelay, server) == [1 if flag else 0]
        client.close()
