"""tests/process_guard.py: a pytest run whose tests leave a process behind fails and ends it.

Each case runs a small test file in a nested ``python -m pytest -p process_guard``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from process_guard import PID_LOG_ENV, end_processes, run_bounded

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

TESTS = Path(__file__).parents[1]  # where process_guard.py lives


def run_pytest(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """``body`` as a test file, run by a nested pytest with only the guard loaded."""
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    # Only the guard: autoloading the installed plugins (locust...) costs seconds.
    env |= {"PYTHONPATH": str(TESTS), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    cmd = [sys.executable, "-m", "pytest", "-p", "process_guard", "-p", "no:cacheprovider",
           "-q", "test_inner.py"]  # fmt: skip
    return run_bounded(cmd, timeout=30, cwd=tmp_path, env=env)


def gone(pid: int, timeout: float = 5.0) -> bool:
    """True once ``pid`` has exited (a zombie counts: nothing runs any more)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def pid_file(tmp_path: Path) -> Iterator[Path]:
    """Where the inner test writes the PID of its sleeper; it is ended whatever happens."""
    path = tmp_path / "child.pid"
    yield path
    with contextlib.suppress(OSError, ValueError, psutil.Error):
        proc = psutil.Process(int(path.read_text()))
        if proc.name() == "sleep":  # not a PID reused since
            end_processes([proc])


def test_a_leaked_child_fails_the_run_and_is_ended(tmp_path: Path, pid_file: Path) -> None:
    done = run_pytest(
        tmp_path,
        f"""
        import subprocess
        from pathlib import Path

        def test_leaks():
            proc = subprocess.Popen(["sleep", "30"])
            Path({str(pid_file)!r}).write_text(str(proc.pid))
        """,
    )
    output = done.stdout + done.stderr
    pid = int(pid_file.read_text())
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "1 passed" in output
    assert f"process_guard: pid {pid} outlived the tests, ending it: sleep 30" in output
    assert gone(pid)


def test_a_recorded_process_that_escaped_is_ended(tmp_path: Path, pid_file: Path) -> None:
    """A process reparented away from pytest is found through $GREENCHAT_PID_LOG."""
    done = run_pytest(
        tmp_path,
        f"""
        import os
        import subprocess
        from pathlib import Path

        import psutil

        def test_escapes():
            # sh exits at once: the sleep is an orphan, no descendant of pytest.
            out = subprocess.run(
                ["sh", "-c", "sleep 31 >/dev/null 2>&1 & echo $!"],
                capture_output=True, text=True, check=True, timeout=10,
            )
            pid = int(out.stdout)
            Path({str(pid_file)!r}).write_text(str(pid))
            assert pid not in [p.pid for p in psutil.Process().children(recursive=True)]
            with open(os.environ[{PID_LOG_ENV!r}], "a") as log:
                log.write(f"{{pid}}\\n")
        """,
    )
    output = done.stdout + done.stderr
    pid = int(pid_file.read_text())
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert f"process_guard: pid {pid} outlived the tests, ending it: sleep 31" in output
    assert gone(pid)


def test_a_run_that_stops_its_children_passes(tmp_path: Path, pid_file: Path) -> None:
    """Stopped children pass, and a recorded PID that is not the run's own is left alone."""
    bystander = subprocess.Popen(
        ["sleep", "30"]
    )  # inherits the outer run's PID log, not the inner's
    try:
        done = run_pytest(
            tmp_path,
            f"""
            import os
            import subprocess
            from pathlib import Path

            def test_cleans_up():
                proc = subprocess.Popen(["sleep", "30"])
                Path({str(pid_file)!r}).write_text(str(proc.pid))
                with open(os.environ[{PID_LOG_ENV!r}], "a") as log:
                    log.write(f"{{proc.pid}}\\n{bystander.pid}\\n")
                proc.terminate()
                proc.wait(5)
            """,
        )
        output = done.stdout + done.stderr
        assert done.returncode == pytest.ExitCode.OK, output
        assert "process_guard" not in output
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait(5)
