"""The installed ``greenchat-join`` in a private tmux (tests/tmux_session.py), for the
e2e tests of the client (test_join_cli.py, test_join_history.py).

A shell around the program prints its exit status on the screen when it ends, and
stays: tmux's own pane_dead_status was seen to miss an exit now and then (the
program left as a zombie, never reaped).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from tmux_session import DEADLINE, TmuxSession, clean_env

__all__ = ["JOIN", "JoinScreen", "join_screens"]

JOIN = Path(sys.executable).parent / "greenchat-join"
S = TypeVar("S", bound="JoinScreen")


class JoinScreen(TmuxSession):
    """greenchat-join in a private tmux, 120x30, TERM=xterm-256color."""

    def __init__(self, **env: str) -> None:
        # Without GREENCHAT_PASSWORD: --sasl asks at the prompt unless a test says otherwise.
        environment = clean_env(TERM="xterm-256color", **env)
        if "GREENCHAT_PASSWORD" not in env:
            environment.pop("GREENCHAT_PASSWORD", None)
        super().__init__(environment, "greenchat-join screen")

    def start(self: S, command: list[str]) -> S:
        """Run ``command`` under a shell that prints its exit status and stays."""
        script = '"$0" "$@"; echo "[exit status $?]"; exec sleep 600'
        super().start(["sh", "-c", script, *command])
        return self

    def input_line(self) -> str:
        """The last non-empty line on screen: where the prompt is."""
        lines = self.screen().rstrip().splitlines()
        return lines[-1] if lines else ""

    def exit_status(self, timeout: float = DEADLINE) -> int:
        """Wait for the program to exit; its exit status, as the wrapping shell printed it."""
        text = self.wait_screen(r"^\[exit status \d+\]", timeout)
        return int(re.search(r"^\[exit status (\d+)\]", text, re.M).group(1))


def join_screens(kind: type[S]) -> Iterator[Callable[..., S]]:
    """For a fixture: a factory of ``greenchat-join ARGS...`` screens of ``kind`` (keyword
    arguments go to its environment); all killed afterwards."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (`make test-deps` installs it)")
    sessions: list[S] = []

    def start(*args: str, **env: str) -> S:
        session = kind(**env)
        sessions.append(session)
        return session.start([str(JOIN), *args])

    yield start
    for session in sessions:
        session.kill()
