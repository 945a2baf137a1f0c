"""A terminal program in a private tmux server, for e2e tests of real clients.

Each :class:`TmuxSession` runs its own tmux server (``tmux -L <socket>``), so
tests never touch a tmux the developer is using, and :meth:`TmuxSession.kill`
stops exactly that server. The screen is read with ``capture-pane``; waits go
through :func:`transcript.wait_for` with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

from transcript import wait_for

__all__ = ["DEADLINE", "TmuxSession", "clean_env"]

DEADLINE = 10.0


def clean_env(**extra: str) -> dict[str, str]:
    """This environment outside any enclosing tmux, with a UTF-8 locale, plus ``extra``."""
    drop = ("TMUX", "TMUX_PANE", "NO_COLOR")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"} | extra


class TmuxSession:
    """One command in a detached session ``t`` of a private tmux server."""

    def __init__(self, env: dict[str, str], name: str = "screen") -> None:
        self.socket = f"greenchat-test-{os.getpid()}-{secrets.token_hex(4)}"
        self.env = env
        self.name = name  # how failure messages call the screen
        tmpdir = Path(env.get("TMUX_TMPDIR") or "/tmp")
        self.socket_path = tmpdir / f"tmux-{os.getuid()}" / self.socket

    def start(self, command: list[str], width: int = 120, height: int = 30) -> None:
        self.tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "t",
            "-x", str(width), "-y", str(height), shlex.join(command),
        )  # fmt: skip

    def tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout

    def keys(self, *keys: str) -> None:
        """Press keys by name (Enter, C-d...)."""
        self.tmux("send-keys", "-t", "t", *keys)

    def send_text(self, text: str) -> None:
        """Type ``text`` literally (no Enter)."""
        self.tmux("send-keys", "-t", "t", "-l", text)

    def screen(self) -> str:
        """The visible pane, wrapped lines joined."""
        return self.tmux("capture-pane", "-p", "-J", "-t", "t")

    def wait_screen(self, pattern: str, timeout: float = DEADLINE) -> str:
        return wait_for(self.screen, pattern, self.name, timeout)

    @contextlib.contextmanager
    def screen_on_failure(self) -> Iterator[None]:
        """Add the current screen to any assertion failing inside the block."""
        try:
            yield
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {self.name} ---\n{self.screen()}") from exc

    def kill(self) -> None:
        """Stop this tmux server (and the program with it) and remove its socket."""
        with contextlib.suppress(subprocess.SubprocessError):
            self.tmux("kill-server")
        self.socket_path.unlink(missing_ok=True)
