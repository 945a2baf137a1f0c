"""greenchat-join's user interface: an interactive prompt, or plain lines for pipes and scripts.

Threading model. gevent and prompt_toolkit each want to own the thread they
run in (a gevent hub; an asyncio loop reading the terminal), and
greenchat-join does not monkey-patch, so each gets a thread of its own:

- :class:`ClientThread` runs the :class:`~greenchat.client.IrcClient` on a
  private gevent hub. The client is created and used only there. Other
  threads hand it work with :meth:`ClientThread.post`, which puts an action
  into an inbox through ``hub.loop.run_callback_threadsafe``; one worker
  greenlet carries the actions out in order.
- The main thread runs a prompt_toolkit ``PromptSession`` inside
  ``patch_stdout(raw=True)``: whatever the client thread prints goes above the
  input line, and the half-typed line is redrawn intact below it.

What crosses threads: actions (immutable, via the hub's thread-safe callback
queue), display lines (``sys.stdout.write`` of one whole line; the
patch_stdout proxy is thread-safe), the current target (a single attribute,
assigned atomically), the unread counts for the prompt (a tuple, replaced
whole) and, for tab completion, copies of the client's channel and member dicts.

History and read markers (history.py's :class:`Scrollback`, fed every server
line in the client thread): on joining a channel its last 50 lines are shown
between separators, dimmed, with their own times; ``/history [N]`` shows older
ones; "read up to here" marks the account's read marker, and the client sends
MARKREAD for the current target when the user has read it (a debounce timer
sends the ones that had to wait). Windows other than the current target with
unread lines show on the prompt: ``#lobby [#dev 3, bob 1]> ``.

Without a terminal (``echo hi | greenchat-join``) or with ``--listen`` there
is no prompt: a reader thread posts each stdin line for the first channel,
and at EOF the client quits once the server has confirmed all of them (a
PING round trip). The main thread only waits, so Ctrl-C and SIGTERM reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import gevent
import gevent.event
from gevent.queue import Queue
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import patch_stdout

from greenchat.client.commands import (
    Act,
    Action,
    FetchHistory,
    Join,
    Part,
    Quit,
    Say,
    Send,
    Show,
    Switch,
    complete,
    parse_input,
    split_text,
)
from greenchat.client.connection import DEFAULT_CAPS, ClientError, IrcClient, JoinError
from greenchat.client.events import (
    ClientEvent,
    Connected,
    Disconnected,
    GaveUp,
    MessageEvent,
    Registered,
)
from greenchat.client.format import Formatter, Kind, Line
from greenchat.client.history import HISTORY_CAPS, JOIN_LINES, Outcome, Scrollback
from greenchat.protocol.casemap import casefold
from greenchat.protocol.message import Message, split_source

__all__ = ["EXIT_GAVE_UP", "ClientThread", "Options", "ReconnectQuieter", "run"]

log = logging.getLogger("greenchat.join")

EXIT_OK, EXIT_FAILED, EXIT_GAVE_UP = 0, 1, 2
READY_TIMEOUT = 10.0  # how long an interactive line waits for a (re)connection
QUIT_TIMEOUT = 8.0  # how long we wait for the server to close after QUIT
# What greenchat-join asks the server for: the library's caps, and history's.
JOIN_CAPS = tuple(dict.fromkeys(DEFAULT_CAPS + HISTORY_CAPS))
# Reconnect delays double from 1 s up to about a minute (jittered: half to all of it),
# so a chat window left open reconnects within a minute of the server's return.
BACKOFF_MAX = 60.0


@dataclass(frozen=True)
class Options:
    """Everything greenchat-join was asked to do (built from the flags by cli.py)."""

    host: str = "127.0.0.1"
    port: int = 8546
    nick: str = "guest"
    channels: tuple[str, ...] = ("#lobby",)
    password: str | None = None
    tls: bool = False
    tls_verify: bool = True
    color: bool = True
    listen: bool = False
    max_retries: int | None = None  # None: keep trying until the user quits
    sasl: tuple[str, str] | None = field(default=None, repr=False)  # (account, password)


@dataclass(frozen=True, slots=True)
class Finish:
    """End of piped input: confirm delivery with a PING round trip, then quit."""


# -- the client thread ---------------------------------------------------------------


class ClientThread:
    """The IrcClient on its own thread and gevent hub; other threads only :meth:`post`."""

    def __init__(
        self,
        options: Options,
        show: Callable[[Line], None],
        *,
        wait_ready: float | None = READY_TIMEOUT,
        on_change: Callable[[], None] = lambda: None,
        on_exit: Callable[[], None] = lambda: None,
        shows_chat: bool = True,
    ) -> None:
        """``shows_chat``: chat lines reach a reader (a prompt, --listen): only then is
        history asked for and are windows marked read."""
        self.options = options
        self.formatter = Formatter(color=options.color)
        self.show = show
        self.wait_ready = wait_ready  # None: wait as long as the client keeps trying
        self.on_change = on_change  # the current target changed (redraw the prompt)
        self.on_exit = on_exit  # the thread is about to end (close the prompt)
        self.shows_chat = shows_chat
        self.target: str | None = options.channels[0] if options.channels else None
        self.exit_code = EXIT_OK
        self.client: IrcClient | None = None
        self.scrollback: Scrollback | None = None  # history and read markers (client thread)
        # (window, unread lines) for the prompt: a tuple, replaced whole (read anywhere).
        self.unread: tuple[tuple[str, int], ...] = ()
        self._mark_timer: gevent.Greenlet | None = None  # sends MARKREADs that had to wait
        self._hub: gevent.hub.Hub | None = None
        self._inbox: Queue | None = None
        self._quitting = False  # QUIT sent: the goodbye that follows is no alarm
        self._quit_wanted: gevent.event.Event | None = None  # set from the hub callback
        self._quieter = ReconnectQuieter(self._say_reconnected)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="greenchat-client", daemon=True)

    # -- called from other threads -------------------------------------------------

    def start(self) -> ClientThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def post(self, action: Action | Finish) -> None:
        """Hand ``action`` to the worker greenlet (thread-safe, never blocks)."""
        hub, inbox, quit_wanted = self._hub, self._inbox, self._quit_wanted
        if hub is None or inbox is None or quit_wanted is None or not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):  # the hub may be shutting down
            if isinstance(action, Quit):
                # Stop any wait for a connection, so the Quit is not stuck behind it;
                # lines typed before it still go first (one inbox, in order).
                hub.loop.run_callback_threadsafe(quit_wanted.set)
            hub.loop.run_callback_threadsafe(inbox.put_nowait, action)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def names(self) -> tuple[list[str], list[str]]:
        """(nicks in the current target, joined channels), for tab completion.

        Called from the prompt's thread while the client thread may change the
        state: ``dict(d)`` copies in one step under the GIL, so iterate copies only.
        """
        if self.client is None:
            return [], []
        channels = dict(self.client.state.channels)
        current = channels.get(casefold(self.target or ""))
        nicks = list(dict(current.members).values()) if current is not None else []
        return nicks, [channel.name for channel in channels.values()]

    # -- the thread itself -----------------------------------------------------------

    def _run(self) -> None:
        try:
            self._hub = gevent.get_hub()
            self._inbox = Queue()
            self._quit_wanted = gevent.event.Event()
            self.client = self._make_client()
            join_lines = JOIN_LINES if self.shows_chat else 0
            self.scrollback = Scrollback(self.client.state, join_lines=join_lines)
            self.client.subscribe(self._on_event)
            o = self.options
            self._say(f"connecting to {o.host}:{o.port} as {o.nick}")
            self.client.start()
            self._ready.set()
            worker = gevent.spawn(self._work)
            self.client.stopped.wait()
            worker.kill(block=True, timeout=2)
            if self._mark_timer is not None:
                self._mark_timer.kill(block=False)
        except Exception:
            log.exception("client thread failed")
            self.exit_code = EXIT_FAILED
        finally:
            self._ready.set()
            self.on_exit()
            self._hub = None

    def _make_client(self) -> IrcClient:
        o = self.options
        return IrcClient(
            o.host,
            o.port,
            o.nick,
            password=o.password,
            tls=o.tls,
            tls_verify=o.tls_verify,
            reconnect=True,
            max_retries=o.max_retries,
            backoff_max=BACKOFF_MAX,
            sasl=o.sasl,
            caps=JOIN_CAPS if self.shows_chat else DEFAULT_CAPS,
        )

    def _say(self, text: str, kind: Kind = "info") -> None:
        self.show(self.formatter.status(text, kind))

    def _on_event(self, event: ClientEvent) -> None:
        """Every client event (in the reader greenlet: must not block)."""
        assert self.client is not None
        if self._quitting and _farewell(event):
            return  # we asked for it
        if isinstance(event, GaveUp):
            self.exit_code = EXIT_GAVE_UP
        shown = True
        if isinstance(event, MessageEvent):
            self._track_target(event.message)
            shown = self._history(event.message)
        elif isinstance(event, Disconnected) and self.scrollback is not None:
            self._carry_out(Outcome(released=self.scrollback.disconnected()))
        if not self._quieter.shows(event) or not shown:
            return
        line = self.formatter.event(event, self.client.nick)
        if line is not None:
            self.show(line)

    def _say_reconnected(self) -> None:
        assert self.client is not None
        o, channels = self.options, ", ".join(self.client.wanted_channels.values())
        rejoin = f"; rejoining {channels}" if channels else ""
        account = f", logged in as {self.client.account}" if self.client.account else ""
        self._say(f"reconnected to {o.host}:{o.port} as {self.client.nick}{account}{rejoin}")

    # -- history and read markers (history.py decides, this carries it out) -----------

    def _history(self, msg: Message) -> bool:
        """Feed ``msg`` to the scrollback; whether to show it as a live line."""
        if self.scrollback is None:
            return True
        outcome = self.scrollback.feed(msg, self.target, time.monotonic())
        self._carry_out(outcome)
        return outcome.show

    def _carry_out(self, outcome: Outcome) -> None:
        assert self.client is not None
        self._send_quietly(outcome.send)
        nick = self.client.nick
        if outcome.block is not None:
            for line in self.formatter.history(outcome.block, nick):
                self.show(line)
        for msg in outcome.released:  # live lines that waited for the history
            line = self.formatter.message(msg, nick)
            if line is not None:
                self.show(line)
        if outcome.changed:
            self._publish_unread()
        self._schedule_marks()

    def _read(self, target: str | None) -> None:
        """The user has read ``target``: no unread lines there, and tell the server."""
        if self.scrollback is None or target is None:
            return
        self._send_quietly(self.scrollback.read(target, time.monotonic()))
        self._publish_unread()
        self._schedule_marks()

    def _fetch(self, action: FetchHistory) -> None:
        assert self.scrollback is not None and self.client is not None
        request = self.scrollback.fetch(action.target, action.count)
        if isinstance(request, str):
            self._say(request)
        else:
            self.client.send(request)

    def _send_quietly(self, lines: list[Message]) -> None:
        """Send what the scrollback asks for; a lost connection only loses the lines."""
        assert self.client is not None
        for line in lines:
            with contextlib.suppress(ClientError):
                self.client.send(line)

    def _publish_unread(self) -> None:
        assert self.scrollback is not None
        unread = tuple(self.scrollback.unread().items())
        if unread != self.unread:
            self.unread = unread
            self.on_change()

    def _schedule_marks(self) -> None:
        """A MARKREAD waits for its interval: send it when that has passed."""
        timer = self._mark_timer
        if self.scrollback is None or (timer is not None and not timer.dead):
            return
        delay = self.scrollback.next_due(time.monotonic())
        if delay is not None:
            self._mark_timer = gevent.spawn_later(delay + 0.01, self._flush_marks)

    def _flush_marks(self) -> None:
        self._mark_timer = None
        assert self.scrollback is not None and self.client is not None
        if not self.client.connected:
            return  # kept: the next line after reconnecting schedules it again
        self._carry_out(self.scrollback.poll(time.monotonic()))

    def _track_target(self, msg: Message) -> None:
        """Our part or kick from the current target: move to another joined channel."""
        assert self.client is not None
        if msg.command not in ("PART", "KICK") or not msg.params or self.target is None:
            return
        who = msg.params[1] if msg.command == "KICK" else split_source(msg.source or "")[0]
        if who and self.client.state.is_me(who) and _same(msg.params[0], self.target):
            self._retarget()

    def _retarget(self) -> None:
        assert self.client is not None
        joined = [c.name for c in dict(self.client.state.channels).values()]
        self.target = joined[0] if joined else None
        self.on_change()
        self._read(self.target)

    # -- the worker: carries out actions in order -----------------------------------

    def _work(self) -> None:
        self._join_initial()
        assert self._inbox is not None
        while True:
            action = self._inbox.get()
            try:
                self._do(action)
            except ClientError as exc:
                self._say(str(exc), "alert")

    def _join_initial(self) -> None:
        """Join the --channel list once registered (later reconnects rejoin by themselves)."""
        assert self.client is not None
        gevent.wait([self.client.registered, self.client.stopped, self._quit_wanted], count=1)
        if not self.client.registered.is_set() or self._quit_wanted.is_set():
            return
        for channel in self.options.channels:
            try:
                self.client.join(channel)
            except ClientError as exc:
                self._say(str(exc), "alert")
                if self.wait_ready is None:  # piped lines would go nowhere
                    self.exit_code = EXIT_FAILED
                if _same(channel, self.target or ""):
                    self._retarget()

    def _do(self, action: Action | Finish) -> None:
        assert self.client is not None
        if isinstance(action, Show):
            first, *more = action.text.splitlines()
            self._say(first, "alert" if action.error else "info")
            for line in more:  # help text: aligned under the first line, no timestamp
                self.show(Line(" " * 9 + line))
        elif isinstance(action, Quit):
            self._quit(action.reason)
        elif isinstance(action, Switch):
            self._read(action.target)  # the prompt thread already switched
        elif isinstance(action, Finish):
            self._finish()
        elif not self._connected():
            self._say("not connected: not sent", "alert")
        elif isinstance(action, Say | Act):
            self._speak(action)
            self._read(action.target)
        elif isinstance(action, Join):
            self._join(action)
            if casefold(action.channel) in self.client.state.channels:
                self._read(action.channel)
        elif isinstance(action, FetchHistory):
            self._fetch(action)
        elif isinstance(action, Part):
            self.client.part(action.channel, action.reason)
        elif isinstance(action, Send):
            self.client.send(action.message)

    def _connected(self) -> bool:
        """Wait (up to ``wait_ready``) until registered on a live connection."""
        client = self.client
        assert client is not None
        deadline = None if self.wait_ready is None else time.monotonic() + self.wait_ready
        while not (client.connected and client.registered.is_set()):
            if client.stopped.is_set() or self._quit_wanted.is_set():
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            gevent.sleep(0.1)
        return True

    def _speak(self, action: Say | Act) -> None:
        """Send text (split to fit a line); show our own copy unless the server echoes it."""
        client = self.client
        assert client is not None
        for chunk in split_text(action.text):
            if isinstance(action, Act):
                client.action(action.target, chunk)
                chunk = f"\x01ACTION {chunk}\x01"
            else:
                client.privmsg(action.target, chunk)
            if "echo-message" not in client.caps:
                mine = Message("PRIVMSG", (action.target, chunk), source=client.nick)
                line = self.formatter.message(mine, client.nick)
                if line is not None:
                    self.show(line)

    def _join(self, action: Join) -> None:
        client = self.client
        assert client is not None
        if casefold(action.channel) in client.state.channels:
            return  # already there (the server would not answer): just switched to it
        try:
            client.join(action.channel, action.key)
        except ClientError as exc:
            self._say(str(exc), "alert")
            if _same(action.channel, self.target or "") and isinstance(exc, JoinError):
                self._retarget()

    def _finish(self) -> None:
        """PING round trip (the server has handled every line sent), then QUIT."""
        assert self.client is not None
        try:
            if self._connected():  # else lines were reported as not sent already
                self.client.sync()
        except ClientError as exc:
            self._say(f"could not confirm delivery: {exc}", "alert")
            self.exit_code = EXIT_FAILED
        self._quit("")

    def _quit(self, reason: str) -> None:
        assert self.client is not None
        self._quitting = True
        self.client.quit(reason, timeout=QUIT_TIMEOUT - 2)


class ReconnectQuieter:
    """Shows the welcome burst once: after a reconnect it is one summary line.

    On the first connection every line shows. On a reconnect the ``connected``
    and ``registered`` lines, the numerics before the welcome (a SASL login's
    900) and the burst's (001 through the end of the MOTD, 376 or 422) are
    hidden, and ``summarize`` is called once at its end; a JOIN or PRIVMSG ends
    the burst too, for servers without a MOTD reply. Client events (a failed
    login) always show.
    """

    END = frozenset({"376", "422", "JOIN", "PRIVMSG"})

    def __init__(self, summarize: Callable[[], None]) -> None:
        self.summarize = summarize
        self.welcomed = False  # registered at least once
        self.hiding = False

    def shows(self, event: ClientEvent) -> bool:
        """Whether ``event`` is worth a line; calls ``summarize`` when a quiet burst ends."""
        if isinstance(event, Connected):
            self.hiding = self.welcomed  # a reconnect: quiet until the burst ends
            return not self.welcomed
        if isinstance(event, Registered):
            self.hiding, self.welcomed = self.welcomed, True
            return not self.hiding
        if not self.hiding or not isinstance(event, MessageEvent):
            if isinstance(event, Disconnected):
                self.hiding = False  # lost during the burst: the next one starts over
            return True
        command = event.message.command.upper()
        if command in self.END:
            self.hiding = False
            self.summarize()
        return not command.isdigit()


def _farewell(event: ClientEvent) -> bool:
    """The server's goodbye after our QUIT: not worth an alarm."""
    if isinstance(event, MessageEvent):
        return event.message.command == "ERROR"
    return isinstance(event, Disconnected)


def _same(a: str, b: str) -> bool:
    return casefold(a) == casefold(b)


# -- interactive: prompt_toolkit in the main thread ------------------------------------


class Terminal:
    """The interactive prompt. Runs in the main thread; the client runs in a ClientThread."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.client = ClientThread(
            options, self._show, on_change=self._redraw, on_exit=self._client_ended
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gone: asyncio.Future[None] | None = None
        self._session: PromptSession[str] | None = None

    def run(self) -> int:
        try:
            asyncio.run(self._main())
        except KeyboardInterrupt:  # Ctrl-C outside the prompt (raw mode is off there)
            self.client.post(Quit())
            self.client.join(QUIT_TIMEOUT)
        return self.client.exit_code

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._gone = self._loop.create_future()
        self._session = self._make_session()
        with patch_stdout(raw=True):
            self.client.start()
            await self._prompt_loop()
            # Outside the prompt the proxy writes straight through: goodbyes still show.
            await self._loop.run_in_executor(None, self.client.join, QUIT_TIMEOUT)

    def _make_session(self) -> PromptSession[str]:
        bindings = KeyBindings()

        @bindings.add("c-c")
        def _ctrl_c(event: KeyPressEvent) -> None:
            # As an EOFError rather than KeyboardInterrupt: a BaseException in an
            # asyncio task would tear down the event loop instead of reaching us.
            event.app.exit(exception=EOFError())

        return PromptSession(
            history=InMemoryHistory(),
            completer=_Completer(self.client),
            complete_while_typing=False,
            key_bindings=bindings,
            # The line typed disappears on Enter: what was sent shows once, as
            # the server's echo (or a local copy), with time and target.
            erase_when_done=True,
        )

    def _prompt_message(self) -> str:
        """``#lobby> ``, and other windows with unread lines: ``#lobby [#dev 3, bob 1]> ``."""
        target = self.client.target
        others = [
            f"{name} {count}" for name, count in self.client.unread if not _same(name, target or "")
        ]
        hint = f" [{', '.join(others)}]" if others else ""
        return f"{target or '(no target)'}{hint}> "

    async def _prompt_loop(self) -> None:
        while True:
            try:
                text = await self._read_line()
            except EOFError:  # Ctrl-D on an empty line, or Ctrl-C
                self.client.post(Quit())
                return
            if text is None:  # the client thread ended (gave up, or failed)
                return
            if self._handle(text):
                return

    async def _read_line(self) -> str | None:
        """The next line typed, or None if the client thread ends first."""
        assert self._session is not None and self._gone is not None
        prompt = asyncio.ensure_future(self._session.prompt_async(self._prompt_message))
        await asyncio.wait({prompt, self._gone}, return_when=asyncio.FIRST_COMPLETED)
        if prompt.done():
            return prompt.result()
        app = self._session.app
        if app.is_running and app.future is not None and not app.future.done():
            app.exit(result="")
        else:
            prompt.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await prompt
        return None

    def _handle(self, text: str) -> bool:
        """Carry out one typed line; True when it was /quit."""
        action = parse_input(text, self.client.target)
        if action is None:
            return False
        if isinstance(action, Join | Switch) or (isinstance(action, Say) and action.switch):
            name = action.channel if isinstance(action, Join) else action.target
            self.client.target = name
        self.client.post(action)
        return isinstance(action, Quit)

    # -- called from the client thread ---------------------------------------------

    def _show(self, line: Line) -> None:
        # One write per line: the patch_stdout proxy prints whole lines above the prompt.
        sys.stdout.write(line.text + "\n")
        sys.stdout.flush()

    def _redraw(self) -> None:
        loop, session = self._loop, self._session
        if loop is not None and session is not None:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(session.app.invalidate)

    def _client_ended(self) -> None:
        loop, gone = self._loop, self._gone
        if loop is not None and gone is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, gone)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Completer(Completer):
    """/commands, #channels we are in, and nicks of the current channel."""

    def __init__(self, client: ClientThread) -> None:
        self.client = client

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        nicks, channels = self.client.names()
        start, found = complete(document.text_before_cursor, nicks, channels)
        for text in found:
            yield Completion(text, start_position=start)


# -- pipes and scripts: no prompt -------------------------------------------------------


class LineMode:
    """Send each stdin line to the first channel; with --listen also print what arrives."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.client = ClientThread(options, self._show, wait_ready=None, shows_chat=options.listen)

    def run(self) -> int:
        # "Until killed": SIGTERM quits as cleanly as Ctrl-C (QUIT sent, exit 0).
        signal.signal(signal.SIGTERM, _interrupt)
        self.client.start()
        channel = self.options.channels[0]
        threading.Thread(target=self._read_stdin, args=(channel,), daemon=True).start()
        try:
            while not self.client.join(0.2):
                pass
        except KeyboardInterrupt:
            self.client.post(Quit())
            self.client.join(QUIT_TIMEOUT)
        return self.client.exit_code

    def _read_stdin(self, channel: str) -> None:
        """Post one Say per line, then Finish at EOF.

        Reads the descriptor with ``os.read`` rather than ``sys.stdin``: this
        thread may still be blocked here when the process exits, and a thread
        holding the buffered stdin's lock then would abort the interpreter.
        """
        pending = b""
        while chunk := _read(0):
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                self._post_line(channel, raw)
        self._post_line(channel, pending)
        self.client.post(Finish())

    def _post_line(self, channel: str, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if text.strip():
            self.client.post(Say(channel, text))

    def _show(self, line: Line) -> None:
        """Chat to stdout with --listen; problems always to stderr; the rest nowhere."""
        if line.kind == "chat" and self.options.listen:
            print(line.text, flush=True)
        elif line.kind == "alert":
            print(line.text, file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def interactive_possible() -> bool:
    """A prompt needs a terminal on both sides."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def run(options: Options) -> int:
    """Run greenchat-join: a prompt on a terminal, line mode otherwise or with --listen."""
    if options.listen or not interactive_possible():
        # Lines for scripts and files: never escape sequences.
        return LineMode(replace(options, color=False)).run()
    return Terminal(options).run()
