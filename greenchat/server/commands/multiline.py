"""draft/multiline: a client's BATCH of PRIVMSG (or NOTICE) lines is one message.

``BATCH +<ref> draft/multiline <target>`` opens it (its tags, a label, client-only
tags, belong to the whole message); each ``@batch=<ref> PRIVMSG <target> :line``
(with ``draft/multiline-concat``: joined to the line before without a break) is
collected, not run; ``BATCH -<ref>`` delivers it as one message: the batch to
clients with the capability, its lines to the others, one stored message in the
history (commands/messaging.py, hub.py). What breaks the rules (another command
or target in it, a concatenated blank line, more than ``max-bytes`` or
``max-lines``) gets ``FAIL BATCH ...`` and nothing of it is delivered.
See https://ircv3.net/specs/extensions/multiline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from greenchat.protocol.casemap import casefold
from greenchat.protocol.message import Message
from greenchat.server.caps import MULTILINE, MULTILINE_MAX_BYTES, MULTILINE_MAX_LINES
from greenchat.server.commands.messaging import deliver
from greenchat.server.commands.table import command

if TYPE_CHECKING:
    from greenchat.server.server import ChatServer
    from greenchat.server.session import Session

CONCAT = "draft/multiline-concat"
_VERBS = ("PRIVMSG", "NOTICE")


@dataclass
class OpenBatch:
    """A multiline message being received."""

    ref: str
    target: str
    tags: dict[str, str]  # the opening BATCH's: label, client-only tags
    verb: str = ""
    lines: list[tuple[str, bool]] = field(default_factory=list)
    size: int = 0  # bytes of text so far
    failed: bool = False  # refused already: the rest is dropped until it closes


@command(
    "BATCH",
    min_params=1,
    help="BATCH +<ref> draft/multiline <target> ... BATCH -<ref>\nSends the lines tagged "
    "batch=<ref> in between as one message (draft/multiline, with batch).",
)
def batch(server: ChatServer, conn: Session, msg: Message) -> None:
    ref = msg.params[0]
    if ref.startswith("+") and len(ref) > 1:
        _open(server, conn, msg, ref[1:])
    elif ref.startswith("-") and len(ref) > 1:
        _close(server, conn, ref[1:])
    else:
        _fail(server, conn, "MULTILINE_INVALID", "A batch reference starts with + or -")


def _open(server: ChatServer, conn: Session, msg: Message, ref: str) -> None:
    if len(msg.params) < 3 or msg.params[1] != MULTILINE:
        _fail(server, conn, "MULTILINE_INVALID", "Only draft/multiline batches are taken")
    elif not (conn.has_cap(MULTILINE) and conn.has_cap("batch")):
        _fail(server, conn, "MULTILINE_INVALID", "Enable draft/multiline and batch first")
    elif conn.incoming_batch is not None:
        _fail(server, conn, "MULTILINE_INVALID", "A multiline batch is open already")
    else:
        conn.incoming_batch = OpenBatch(ref, msg.params[2], dict(msg.tags))


def collect(server: ChatServer, conn: Session, msg: Message) -> bool:
    """A line of the open batch: kept for its message (True); any other line: False."""
    open_batch = conn.incoming_batch
    if open_batch is None or msg.tags.get("batch") != open_batch.ref:
        return False
    if open_batch.failed:
        return True
    verb = msg.command.upper()
    if verb not in _VERBS or len(msg.params) < 2:
        return _refuse(server, conn, open_batch, "MULTILINE_INVALID",
                       "A multiline batch holds PRIVMSG or NOTICE lines only")  # fmt: skip
    if open_batch.verb and verb != open_batch.verb:
        return _refuse(server, conn, open_batch, "MULTILINE_INVALID",
                       "A multiline batch holds one kind of line")  # fmt: skip
    if casefold(msg.params[0]) != casefold(open_batch.target):
        return _refuse(server, conn, open_batch, "MULTILINE_INVALID_TARGET",
                       "Every line goes to the batch's target", open_batch.target,
                       msg.params[0])  # fmt: skip
    text, concat = msg.params[1], CONCAT in msg.tags
    if concat and (not text or not open_batch.lines):
        return _refuse(server, conn, open_batch, "MULTILINE_INVALID",
                       "A concatenated line may not be empty or first")  # fmt: skip
    open_batch.verb = verb
    open_batch.size += len(text.encode())
    open_batch.lines.append((text, concat))
    conn.batched_lines += 1  # free of flood control: the batch is one message
    if open_batch.size > MULTILINE_MAX_BYTES:
        return _refuse(server, conn, open_batch, "MULTILINE_MAX_BYTES",
                       "The message is too long", str(MULTILINE_MAX_BYTES))  # fmt: skip
    if len(open_batch.lines) > MULTILINE_MAX_LINES:
        return _refuse(server, conn, open_batch, "MULTILINE_MAX_LINES",
                       "The message has too many lines", str(MULTILINE_MAX_LINES))  # fmt: skip
    return True


def _close(server: ChatServer, conn: Session, ref: str) -> None:
    open_batch = conn.incoming_batch
    if open_batch is None or open_batch.ref != ref:
        _fail(server, conn, "MULTILINE_INVALID", "No such batch is open")
        return
    conn.incoming_batch = None
    if open_batch.failed:
        return
    if not open_batch.lines or all(not text for text, _ in open_batch.lines):
        _fail(server, conn, "MULTILINE_INVALID", "The message has no text")
        return
    lines = tuple(open_batch.lines)
    text = "".join(("" if concat or i == 0 else "\n") + line
                   for i, (line, concat) in enumerate(lines))  # fmt: skip
    whole = Message(open_batch.verb, (open_batch.target, text), tags=open_batch.tags)
    deliver(server, conn, whole, open_batch.verb, open_batch.verb == "PRIVMSG", lines)


def _refuse(server: ChatServer, conn: Session, open_batch: OpenBatch, code: str, text: str,
            *context: str) -> bool:  # fmt: skip
    open_batch.failed = True
    open_batch.lines.clear()
    _fail(server, conn, code, text, *context)
    return True


def _fail(server: ChatServer, conn: Session, code: str, text: str, *context: str) -> None:
    conn.fail("BATCH", code, *context, text)
