"""Thread-per-client IRC broadcast server: the seed's design, as a benchmark baseline.

This is NOT a product and not part of greenchat. It reproduces the original
socket chat of shared/SEED.md as faithfully as possible so that benchmarks can
report greenchat's numbers as ratios against it:

* one OS thread per client, doing blocking ``recv`` in a loop;
* a message is broadcast from the *sender's* thread, by looping over every
  other member of the channel and calling blocking ``sendall`` on each socket,
  all under one global lock (the seed's ``broadcast_message``). There are no
  queues, no writer threads, no gevent: one slow receiver stalls everyone.

It speaks only the IRC the benchmark clients need: ``NICK``/``USER`` (answered
with 001 and 376 once both arrived), ``PING`` -> ``PONG``, ``JOIN #chan`` (the
JOIN echoed to all members, then 353/366 to the joiner), ``PRIVMSG #chan``
(relayed as ``:nick!user@host PRIVMSG #chan :text`` to every other member),
``QUIT``. Everything else is ignored. Nicks are not checked for collisions.

Sockets keep Nagle's algorithm on, as the seed's did (no ``TCP_NODELAY``): with
it off, each per-member ``sendall`` of a line is a packet of its own, and a
1,000-member fan-out measured 3.5x fewer deliveries per second.

Thread stacks keep the platform default (8 MiB of *virtual* memory each, of
which only the touched pages are resident): 10,000 clients need ~20,000
memory mappings, well under Linux's default ``vm.max_map_count`` of 65,530,
so ``threading.stack_size`` is left alone (measured with 10,000 clients:
10,001 threads, 221 MiB resident, 79 GiB virtual). The listen backlog is 4096
rather than the seed's 5, so connection benchmarks measure the threads and
not the kernel's SYN retransmissions.

Usage: ``python benchmarks/baselines/threaded_server.py [--host 127.0.0.1] [--port 0]``;
prints ``listening on HOST:PORT`` once it accepts connections. SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
from collections.abc import Sequence

SERVER = "threaded.baseline"
LOCK = threading.Lock()  # guards CHANNELS and every send (so lines never interleave)
CHANNELS: dict[str, list[Client]] = {}  # lower-cased name -> members in join order


class Client:
    """One connection: its socket, its registration, and the thread that reads it."""

    def __init__(self, sock: socket.socket, host: str) -> None:
        self.sock = sock
        self.host = host
        self.nick = ""
        self.user = ""
        self.registered = False
        self.channels: set[str] = set()

    @property
    def prefix(self) -> str:
        return f"{self.nick}!{self.user}@{self.host}"

    def send(self, line: str) -> None:
        """Blocking sendall of one line; the caller holds LOCK. Errors are the reader's."""
        # A dead client's own thread notices on recv and cleans up.
        with contextlib.suppress(OSError):
            self.sock.sendall(line.encode("utf-8", "replace") + b"\r\n")

    def reply(self, numeric: str, text: str) -> None:
        with LOCK:
            self.send(f":{SERVER} {numeric} {self.nick or '*'} {text}")


def broadcast(channel: str, line: str, sender: Client | None) -> None:
    """The seed's broadcast: loop over the members, blocking sendall on each, under LOCK."""
    with LOCK:
        for member in CHANNELS.get(channel, ()):
            if member is not sender:
                member.send(line)


def parse(line: str) -> tuple[str, list[str]]:
    """Split an IRC line into (COMMAND, params); tags and a source prefix are dropped."""
    if line.startswith("@"):
        line = line.partition(" ")[2]
    if line.startswith(":"):
        line = line.partition(" ")[2]
    head, sep, trailing = line.partition(" :")
    words = head.split()
    if not words:
        return "", []
    return words[0].upper(), words[1:] + ([trailing] if sep else [])


def handle(client: Client, command: str, params: list[str]) -> bool:
    """Act on one command; return False when the client quits."""
    if command == "QUIT":
        return False
    if command == "PING":
        with LOCK:
            client.send(f":{SERVER} PONG {SERVER} :{params[0] if params else ''}")
    elif command == "NICK" and params:
        client.nick = params[0]
    elif command == "USER" and params:
        client.user = params[0]
    elif not client.registered:
        return True
    elif command == "JOIN" and params:
        for name in params[0].split(","):
            join(client, name)
    elif command == "PRIVMSG" and len(params) >= 2 and params[0].lower() in client.channels:
        broadcast(params[0].lower(), f":{client.prefix} PRIVMSG {params[0]} :{params[1]}", client)
    if not client.registered and client.nick and client.user:
        client.registered = True
        client.reply("001", f":Welcome to the threaded baseline {client.prefix}")
        client.reply("376", ":End of MOTD command")
    return True


def join(client: Client, name: str) -> None:
    key = name.lower()
    if not key.startswith("#") or key in client.channels:
        return
    with LOCK:
        members = CHANNELS.setdefault(key, [])
        members.append(client)
        client.channels.add(key)
        names = " ".join(m.nick for m in members)
    broadcast(key, f":{client.prefix} JOIN {name}", None)
    client.reply("353", f"= {name} :{names}")
    client.reply("366", f"{name} :End of /NAMES list.")


def leave_all(client: Client) -> None:
    with LOCK:
        for key in client.channels:
            members = CHANNELS.get(key, [])
            if client in members:
                members.remove(client)
            if not members:
                CHANNELS.pop(key, None)
    for key in client.channels:
        broadcast(key, f":{client.prefix} QUIT :Quit", client)
    client.channels.clear()


def serve_client(client: Client) -> None:
    """The seed's handle_client: blocking recv in this thread until the client goes."""
    buffer = b""
    try:
        while chunk := client.sock.recv(65536):
            *lines, buffer = (buffer + chunk).split(b"\n")
            for raw in lines:
                command, params = parse(raw.rstrip(b"\r").decode("utf-8", "replace"))
                if command and not handle(client, command, params):
                    return
    except OSError:
        pass
    finally:
        leave_all(client)
        client.sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = p.parse_args(argv)
    listener = socket.create_server((args.host, args.port), backlog=4096)
    host, port = listener.getsockname()[:2]
    print(f"listening on {host}:{port}", flush=True)
    while True:
        sock, address = listener.accept()
        client = Client(sock, address[0])
        threading.Thread(target=serve_client, args=(client,), daemon=True).start()


if __name__ == "__main__":
    raise SystemExit(main())
