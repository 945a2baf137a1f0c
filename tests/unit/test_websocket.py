"""IRC over WebSocket without sockets: wsproto's client frames in, our frames out."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from greenchat.protocol.framing import FramingError, LineTooLong
from greenchat.protocol.websocket import (
    BadLine,
    Closed,
    FrameWriter,
    IrcWebSocket,
    choose_subprotocol,
    close_frame,
    encode_frame,
)
from greenchat.server.outgoing import SERVER_TIME, WS_BINARY, WS_TEXT, Relay


def pair(text: bool = True) -> tuple[WSConnection, IrcWebSocket, list[bytes]]:
    """A wsproto client and our reader for the server side, handshake done."""
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="example", target="/")))
    assert isinstance(next(server.events()), Request)
    client.receive_data(server.send(AcceptConnection()))
    assert isinstance(next(client.events()), AcceptConnection)
    replies: list[bytes] = []
    return client, IrcWebSocket(server, text, replies.append), replies


def client_sees(client: WSConnection, data: bytes) -> list:
    client.receive_data(data)
    return list(client.events())


def test_subprotocols_follow_the_clients_order():
    assert choose_subprotocol(["binary.ircv3.net", "text.ircv3.net"]) == "binary.ircv3.net"
    assert choose_subprotocol(["x", "text.ircv3.net", "binary.ircv3.net"]) == "text.ircv3.net"
    assert choose_subprotocol(["chat"]) is None and choose_subprotocol([]) is None


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_frames_parse_back_in_wsproto(size):
    client, _, _ = pair()
    payload = b"x" * size
    events = client_sees(client, encode_frame(payload))
    assert len(events) == 1 and isinstance(events[0], BytesMessage)
    assert events[0].data == payload and events[0].message_finished


def test_messages_become_lines_all_at_once_byte_by_byte_and_with_trailing_data():
    client, reader, _ = pair()
    data = client.send(TextMessage("NICK alice")) + client.send(TextMessage("USER a 0 * :A"))
    assert reader.feed(data) == [b"NICK alice", b"USER a 0 * :A"]
    client, reader, _ = pair()
    items = [item for byte in data for item in reader.feed(bytes([byte]))]
    assert items == [b"NICK alice", b"USER a 0 * :A"]
    client, reader, _ = pair()
    second = client.send(TextMessage("PING x"))
    assert reader.feed(data + second[:3]) == [b"NICK alice", b"USER a 0 * :A"]
    assert reader.feed(second[3:]) == [b"PING x"]


def test_fragments_join_into_one_line_and_binary_messages_count_too():
    client, reader, _ = pair()
    data = client.send(TextMessage("PRIVMSG #a :hel", message_finished=False))
    data += client.send(TextMessage("lo", message_finished=False))
    data += client.send(TextMessage(" there", message_finished=True))
    data += client.send(BytesMessage(b"PRIVMSG #a :\xc3\xa9"))
    assert reader.feed(data) == [b"PRIVMSG #a :hello there", "PRIVMSG #a :é".encode()]


def test_a_trailing_line_ending_is_tolerated_an_inner_one_is_not():
    client, reader, _ = pair()
    data = b"".join(client.send(TextMessage(t)) for t in ("A\r\n", "B\n", "C\r\nD", "", "E"))
    items = reader.feed(data)
    assert items[:2] == [b"A", b"B"] and isinstance(items[2], BadLine) and items[3:] == [b"E"]


def test_length_rules_are_tcps():
    client, reader, _ = pair()
    long_line = "PRIVMSG #a :" + "x" * 600
    tags = "@" + "a" * 9000 + " PING x"
    items = reader.feed(client.send(TextMessage(long_line)) + client.send(TextMessage(tags)))
    assert [type(i) for i in items] == [LineTooLong, LineTooLong] and items[1].tags_too_long
    with pytest.raises(FramingError):
        reader.feed(client.send(TextMessage("x" * 11_000)))


def test_ping_gets_its_pong_and_a_close_its_close():
    client, reader, replies = pair()
    assert reader.feed(client.send(Ping(b"hi"))) == []
    assert client_sees(client, replies.pop()) == [Pong(b"hi")]
    items = reader.feed(client.send(TextMessage("QUIT :bye")) + client.send(CloseConnection(1000)))
    assert items == [b"QUIT :bye", Closed("Connection closed")]
    (event,) = client_sees(client, replies.pop())
    assert isinstance(event, CloseConnection) and event.code == 1000
    assert reader.farewell(b"ERROR :bye\r\n") == b""  # nothing after our Close


def test_invalid_utf8_in_a_text_frame_closes_with_1007():
    client, reader, replies = pair()
    mask = b"\x01\x02\x03\x04"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"\xff\xfe"))
    frame = bytes((0x81, 0x80 | 2)) + mask + payload
    assert reader.feed(frame) == [Closed("Invalid UTF-8 in a text frame")]
    (event,) = client_sees(client, replies.pop())
    assert isinstance(event, CloseConnection) and event.code == 1007


def test_farewell_is_the_error_line_then_a_close():
    client, reader, _ = pair()
    events = client_sees(client, reader.farewell(b"ERROR :Closing Link: x (Quit)\r\n"))
    assert events[0] == TextMessage("ERROR :Closing Link: x (Quit)")
    assert isinstance(events[1], CloseConnection) and events[1].code == 1000


def test_the_writer_frames_lines_and_splits_chunks():
    sent: list[bytes] = []
    text, binary = FrameWriter(sent.append, text=True), FrameWriter(sent.append, text=False)
    text.put(b":a!b@c PRIVMSG #x :hi\r\n")
    binary.put(b"A\r\nB\r\n")
    client, _, _ = pair()
    events = client_sees(client, b"".join(sent))
    assert events == [TextMessage(":a!b@c PRIVMSG #x :hi"), BytesMessage(b"A"), BytesMessage(b"B")]


def test_a_relay_is_framed_once_per_variant_for_every_websocket_recipient():
    relay = Relay("a!b@c", "PRIVMSG", ("#x", "hi"))
    text = relay.bytes_for(WS_TEXT | SERVER_TIME)
    assert relay.bytes_for(WS_TEXT | SERVER_TIME) is text  # the same frame object for all
    assert relay.bytes_for(0) == b":a!b@c PRIVMSG #x :hi\r\n"  # TCP's form: the line
    client, _, _ = pair()
    events = client_sees(client, text + relay.bytes_for(WS_BINARY))
    assert events[0].data.startswith("@time=") and events[0].data.endswith(" PRIVMSG #x :hi")
    assert events[1] == BytesMessage(b":a!b@c PRIVMSG #x :hi")


def test_text_frames_are_always_utf8():
    sent: list[bytes] = []
    FrameWriter(sent.append, text=True).put(b"PRIVMSG #x :caf\xc3\r\n")  # clipped mid-character
    client, _, _ = pair()
    assert client_sees(client, sent[0]) == [TextMessage("PRIVMSG #x :caf\ufffd")]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_any_bytes_give_items_or_a_clean_error_never_an_exception(data, step):
    _, reader, _ = pair()
    try:
        for i in range(0, len(data), step):
            for item in reader.feed(data[i : i + step]):
                assert isinstance(item, bytes | LineTooLong | BadLine | Closed)
    except FramingError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=40).filter(lambda t: "\r" not in t and "\n" not in t)))
def test_any_text_messages_come_back_as_their_lines(texts):
    client, reader, _ = pair()
    data = b"".join(client.send(TextMessage(t)) for t in texts)
    assert reader.feed(data) == [t.encode() for t in texts]


def test_close_frame_reason_fits_a_control_frame():
    client, _, _ = pair()
    (event,) = client_sees(client, close_frame(1008, "é" * 100))
    assert event.code == 1008 and len(event.reason.encode()) <= 123
    assert struct.unpack("!H", close_frame(1000)[2:4]) == (1000,)
