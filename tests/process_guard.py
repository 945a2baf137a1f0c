"""A pytest plugin: the run fails if a process the tests started outlives them.

At session start ``$GREENCHAT_PID_LOG`` is pointed at a fresh file, to which
``benchmarks/servers.py`` and ``benchmarks/fanout.py`` append the PID of every
server they start: those run in their own session, and when the script that
started them dies they are reparented, so they are no longer descendants of
pytest. At session end every descendant of pytest and every recorded PID
still running (and still ours: it inherited this run's ``$GREENCHAT_PID_LOG``)
gets a short grace to finish; each survivor is then named, ended (SIGTERM,
then SIGKILL, by PID) and the exit status made failing.

:func:`run_bounded` runs a script that starts servers the way tests should:
on timeout the script gets SIGTERM first, so it can stop its servers itself.

Loaded by ``tests/conftest.py``; elsewhere ``-p process_guard`` with ``tests/``
on ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

__all__ = ["PID_LOG_ENV", "end_processes", "run_bounded", "terminate_once_serving"]

PID_LOG_ENV = "GREENCHAT_PID_LOG"  # the name benchmarks/servers.py writes to
GRACE = 2.0  # for processes that are still on their way out at session end
KILL_WAIT = 3.0  # after SIGTERM, then again after SIGKILL

_LOG = pytest.StashKey[Path]()
_PREVIOUS = pytest.StashKey[str | None]()
_STARTED = pytest.StashKey[float]()
_REPORT = pytest.StashKey[list[str]]()


# -- ending processes ------------------------------------------------------------------


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def end_processes(procs: Iterable[psutil.Process], wait: float = KILL_WAIT) -> None:
    """SIGTERM each process (by PID), wait up to ``wait`` s, SIGKILL the rest, wait again."""
    live = [p for p in procs if _alive(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in live:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        # wait_procs also reaps our own children; zombies of others count as gone.
        _, live = psutil.wait_procs(live, timeout=wait)
        live = [p for p in live if _alive(p)]
        if not live:
            return


def _descendants(pid: int) -> dict[int, psutil.Process]:
    try:
        return {p.pid: p for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return {}


def run_bounded(
    cmd: Sequence[str], timeout: float, grace: float = 10.0, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd, capture_output=True, text=True, timeout=...)`` that leaves nothing.

    ``subprocess.run`` SIGKILLs its child on timeout, which gives a benchmark
    script no chance to stop the servers it started (in their own session,
    they survive it). Here the script runs in its own process group; on
    timeout, or any exception such as pytest-timeout's, it gets SIGTERM and
    ``grace`` s to clean up, then its group is SIGKILLed and every descendant
    seen is ended by PID. A timeout raises AssertionError with the output tails.
    """
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, process_group=0, **popen
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as exc:
        out, err = _end_tree(proc, grace)
        if isinstance(exc, subprocess.TimeoutExpired):
            raise AssertionError(
                f"{shlex.join(cmd)} timed out after {timeout:g} s (exit {proc.returncode})\n"
                f"--- stdout ---\n{out[-3000:]}\n--- stderr ---\n{err[-3000:]}"
            ) from None
        raise
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)


def _end_tree(proc: subprocess.Popen[str], grace: float) -> tuple[str, str]:
    """SIGTERM ``proc``, give it ``grace`` s, then end its group and every descendant seen."""
    seen = _descendants(proc.pid)  # now: once it is gone, orphans are no longer found
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    output: tuple[str, str] | None = None
    deadline = time.monotonic() + grace
    # Poll the exit, not the pipes' EOF: a leftover may hold them open.
    while proc.poll() is None and time.monotonic() < deadline:
        seen |= _descendants(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            output = proc.communicate(timeout=0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    end_processes(seen.values())
    if output is None:
        try:
            output = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # something unknown still holds the pipes
            proc.kill()
            output = ("", "")
    return output[0] or "", output[1] or ""


def _listening(pid: int) -> bool:
    try:
        conns = psutil.Process(pid).net_connections("tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN for c in conns)


def _logged_pids(log: Path) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(word) for word in log.read_text().split() if word.isdigit()]
    return []


def _recorded(log: Path, started: float) -> dict[int, psutil.Process]:
    """The PIDs in ``log`` still running that are really the recorded ones, not reused."""
    found: dict[int, psutil.Process] = {}
    for pid in _logged_pids(log):
        try:
            proc = psutil.Process(pid)
            try:
                ours = proc.environ().get(PID_LOG_ENV) == str(log)
            except psutil.AccessDenied:  # e.g. a daemon that dropped root
                ours = proc.create_time() >= started - 1
        except psutil.Error:
            continue
        if ours and _alive(proc):
            found[pid] = proc
    return found


def terminate_once_serving(
    cmd: Sequence[str], log: Path, output: Path, timeout: float = 30.0
) -> tuple[int, list[int], list[int]]:
    """Run ``cmd`` with ``$GREENCHAT_PID_LOG=log``, SIGTERM it (and only it) as soon as a
    server it recorded listens, and wait for it to exit.

    Returns its exit status, the PIDs it recorded and those of them still
    running right after it exited; then ends everything it left.
    """
    env = os.environ | {PID_LOG_ENV: str(log)}
    started = time.time()
    with output.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, process_group=0)
    try:
        deadline = time.monotonic() + timeout
        while not any(_listening(pid) for pid in _logged_pids(log)):
            if proc.poll() is not None or time.monotonic() > deadline:
                text = output.read_text(errors="replace")[-3000:]
                raise AssertionError(f"no recorded server listened (exit {proc.poll()}):\n{text}")
            time.sleep(0.02)
        proc.terminate()
        status = proc.wait(timeout)
        return status, _logged_pids(log), sorted(_recorded(log, started))
    finally:
        leftovers = _descendants(proc.pid) | _recorded(log, started)
        with contextlib.suppress(psutil.Error):
            leftovers[proc.pid] = psutil.Process(proc.pid)
        end_processes(leftovers.values())
        proc.wait(KILL_WAIT)


# -- the plugin ---------------------------------------------------------------------------


def pytest_sessionstart(session: pytest.Session) -> None:
    # Each run gets its own file, a nested pytest run included.
    fd, name = tempfile.mkstemp(prefix="greenchat-pids-", suffix=".txt")
    os.close(fd)
    session.stash[_LOG] = Path(name)
    session.stash[_PREVIOUS] = os.environ.get(PID_LOG_ENV)
    session.stash[_STARTED] = time.time()
    os.environ[PID_LOG_ENV] = name


def _describe(proc: psutil.Process) -> str:
    try:
        return shlex.join(proc.cmdline()) or proc.name()
    except psutil.Error:
        return "?"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    log = session.stash.get(_LOG, None)
    if log is None:
        return
    previous = session.stash[_PREVIOUS]
    if previous is None:
        os.environ.pop(PID_LOG_ENV, None)
    else:
        os.environ[PID_LOG_ENV] = previous
    candidates = _descendants(os.getpid()) | _recorded(log, session.stash[_STARTED])
    log.unlink(missing_ok=True)
    live = [p for p in candidates.values() if _alive(p)]
    if live:
        _, live = psutil.wait_procs(live, timeout=GRACE)
        live = [p for p in live if _alive(p)]
    if not live:
        return
    lines = [
        f"process_guard: pid {p.pid} outlived the tests, ending it: {_describe(p)}" for p in live
    ]
    if session.config.pluginmanager.has_plugin("terminalreporter"):
        session.config.stash[_REPORT] = lines  # shown by pytest_terminal_summary, next
    else:
        print("\n".join(lines), file=sys.stderr)
    end_processes(live)
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if lines := config.stash.get(_REPORT, None):
        terminalreporter.section("processes left running (the run fails)", red=True, bold=True)
        for line in lines:
            terminalreporter.line(line, red=True)
