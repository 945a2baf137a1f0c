"""An older greenchat, measured next to the working tree: a git revision or another checkout.

``bench.py --baseline REV`` and ``fanout.py --baseline REV`` use :func:`prepared`:

* ``REV`` is a git revision of this repository (``b8e1d90``, ``v0.1``,
  ``main~3``): its tree is exported with ``git archive`` into the caller's
  temporary directory (no ``git worktree``, so nothing is registered in the
  repository and nothing is left there even if the harness is killed), and
  removed again when the ``with`` block ends, on every path;
* a directory path with a ``/`` in it (``../greenchat-old``, ``./old``) is an
  existing checkout, used in place.

The old code runs on this very interpreter and virtualenv (gevent and
prompt_toolkit, its only runtime dependencies, are checked against its
``pyproject.toml``): ``python -c "import sys; sys.path.insert(0, TREE);
import greenchat.cli; ..."``. The tree comes first on ``sys.path``, ahead of
the editable install of the working tree (whose finder is consulted last);
a probe checks that every ``greenchat`` module imported comes from the tree.

An older revision may not know every flag the harness passes: its
``greenchat-serve --help`` is read once, and :meth:`Baseline.args` drops
(and remembers) the flags it does not list.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the repository the revisions come from
PREFIX = "greenchat@"
TIMEOUT = 60.0  # for each git call and probe
FLAG_RE = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
REQUIREMENT_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")
# A flag the old code must know, or the measurement means nothing.
REQUIRED_FLAGS = ("--host", "--port")

# Runs in the baseline's interpreter: import its greenchat (every module of it, as the
# server imports more when it starts), say where each module came from.
PROBE = """\
import importlib, json, os, sys
tree = os.path.realpath(sys.argv[1])
sys.path.insert(0, tree)
import greenchat, greenchat.cli
failed = []
package = os.path.join(tree, "greenchat")
for folder, _, files in os.walk(package):
    for file in sorted(files):
        if file.endswith(".py") and file != "__main__.py":
            parts = os.path.relpath(os.path.join(folder, file[:-3]), tree).split(os.sep)
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            try:
                importlib.import_module(name)
            except Exception as exc:
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
outside = []
for name, module in list(sys.modules.items()):
    if name == "greenchat" or name.startswith("greenchat."):
        paths = [getattr(module, "__file__", None), *getattr(module, "__path__", [])]
        for path in filter(None, paths):
            if not os.path.realpath(path).startswith(tree + os.sep):
                outside.append(f"{name}: {path}")
print(json.dumps({"file": greenchat.__file__, "version": getattr(greenchat, "__version__", None),
                  "outside": outside, "failed": failed}))
"""


class BaselineError(RuntimeError):
    """The baseline cannot be prepared (unknown revision, no greenchat in it, missing deps)."""


@dataclass
class Baseline:
    """A greenchat tree other than the working one, ready to start."""

    name: str  # "greenchat@b8e1d90": the server name in the results
    spec: str  # what the user asked for: a revision or a path
    tree: Path  # the folder holding its greenchat package
    commit: str | None  # full hash (None: a checkout that is not a git repository)
    source: str  # "git archive <commit>" or "checkout <path>"
    version: str | None = None
    flags: frozenset[str] = frozenset()  # option strings its greenchat-serve --help lists
    dependencies: dict[str, str | None] = field(default_factory=dict)  # name -> installed
    notes: list[str] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)  # flags asked for that it does not know

    def command(self) -> list[str]:
        """Its ``greenchat-serve`` on this interpreter, its tree first on ``sys.path``."""
        code = (
            f"import sys; sys.path.insert(0, {str(self.tree)!r}); import greenchat.cli; "
            "sys.exit(greenchat.cli.serve_main())"
        )
        return [sys.executable, "-c", code]

    def args(self, argv: Sequence[str]) -> list[str]:
        """``argv`` without the flags (and their values) this revision does not know."""
        kept: list[str] = []
        for group in split_flags(argv):
            flag = group[0].split("=", 1)[0]
            if flag.startswith("--") and self.flags and flag not in self.flags:
                self.dropped.add(flag)
                continue
            kept += group
        return kept

    def describe(self) -> dict[str, Any]:
        """What the results JSON records about it (bench.py adds the common facts)."""
        info: dict[str, Any] = {
            "version": self.version,
            "baseline_for": "greenchat",
            "revision": self.spec,
            "commit": self.commit,
            "source": self.source,
            "dependencies": self.dependencies,
        }
        notes = list(self.notes)
        if self.dropped:
            info["flags_left_out"] = sorted(self.dropped)
            notes.append(
                "flags this revision does not know, left out: " + ", ".join(sorted(self.dropped))
            )
        return info | {"notes": notes}


def split_flags(argv: Sequence[str]) -> list[list[str]]:
    """``["--port", "0", "--tcp-nodelay"]`` -> ``[["--port", "0"], ["--tcp-nodelay"]]``."""
    groups: list[list[str]] = []
    for word in argv:
        if word.startswith("--") or not groups:
            groups.append([word])
        else:
            groups[-1].append(word)
    return groups


# -- preparing --------------------------------------------------------------------------


def _git(*args: str, cwd: Path = ROOT, text: bool = True) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=text, timeout=TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BaselineError(f"git {' '.join(args)}: {exc}") from None


def resolve(rev: str, repo: Path = ROOT) -> tuple[str, str] | None:
    """(full hash, short hash) of the commit ``rev`` names in ``repo``, or None."""
    if rev.startswith("-"):
        return None
    out = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=repo)
    if out.returncode != 0 or not out.stdout.strip():
        return None
    commit = out.stdout.strip()
    short = _git("rev-parse", "--short", commit, cwd=repo).stdout.strip() or commit[:7]
    return commit, short


def package_root(tree: Path) -> Path:
    """The folder of ``tree`` that holds the ``greenchat`` package (flat or ``src/`` layout)."""
    for root in (tree, tree / "src"):
        if (root / "greenchat" / "cli.py").is_file():
            return root
    raise BaselineError(f"no greenchat/cli.py in {tree} (or its src/)")


def export(commit: str, dest: Path, repo: Path = ROOT) -> None:
    """Write the tree of ``commit`` into ``dest`` (``git archive``, extracted in-process)."""
    out = _git("archive", "--format=tar", commit, cwd=repo, text=False)
    if out.returncode != 0:
        raise BaselineError(f"git archive {commit}: {out.stderr.decode(errors='replace')}")
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        tar.extractall(dest, filter="data")


def _checkout_name(path: Path) -> tuple[str, str | None]:
    """(name suffix, commit) of a checkout: its short HEAD (+ "-dirty"), else its folder name."""
    head = resolve("HEAD", path) if (path / ".git").exists() else None
    if head is None:
        return path.name, None
    dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=path).stdout.strip()
    return head[1] + ("-dirty" if dirty else ""), head[0]


def check_dependencies(project: Path) -> tuple[dict[str, str | None], list[str]]:
    """Its runtime dependencies (``pyproject.toml``) against this interpreter's packages.

    Returns {name: installed version} and notes; a missing one raises BaselineError.
    """
    try:
        data = tomllib.loads((project / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}, ["no readable pyproject.toml: its dependencies were not checked"]
    found: dict[str, str | None] = {}
    notes: list[str] = []
    missing = []
    for requirement in data.get("project", {}).get("dependencies", []):
        match = REQUIREMENT_RE.match(requirement.split(";", 1)[0])
        if not match:
            continue
        name, spec = match[1], match[2].strip()
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(requirement)
            continue
        if spec and not _satisfies(found[name], spec):
            notes.append(f"it asks for {requirement}; this interpreter has {name} {found[name]}")
    if missing:
        raise BaselineError(
            f"its dependencies are not installed in {sys.prefix}: {', '.join(missing)}"
        )
    return found, notes


def _satisfies(version: str, spec: str) -> bool:
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # no packaging: assume yes (the probe still imports it)
        return True
    return version in SpecifierSet(spec, prereleases=True)


def probe(base: Baseline) -> None:
    """Import its greenchat on this interpreter (all from its tree?) and read its flags."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(base.tree)],
            capture_output=True, text=True, timeout=TIMEOUT, cwd=base.tree,
        )  # fmt: skip
        if out.returncode != 0:
            raise BaselineError(f"cannot import its greenchat: {out.stderr.strip()[-2000:]}")
        found = json.loads(out.stdout.strip().splitlines()[-1])
        if found["outside"]:
            raise BaselineError(
                "greenchat modules imported from outside its tree: " + "; ".join(found["outside"])
            )
        base.version = found["version"]
        base.notes += [f"does not import on this interpreter: {f}" for f in found["failed"]]
        helped = subprocess.run(
            [*base.command(), "--help"],
            capture_output=True, text=True, timeout=TIMEOUT, cwd=base.tree,
        )  # fmt: skip
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise BaselineError(f"probing it failed: {exc}") from None
    if helped.returncode != 0:
        raise BaselineError(f"greenchat-serve --help failed: {helped.stderr.strip()[-2000:]}")
    base.flags = frozenset(FLAG_RE.findall(helped.stdout))
    if missing := [f for f in REQUIRED_FLAGS if f not in base.flags]:
        raise BaselineError(f"its greenchat-serve has no {', '.join(missing)}")


@contextlib.contextmanager
def prepared(spec: str, tmp: Path, repo: Path = ROOT) -> Iterator[Baseline]:
    """The baseline ``spec`` names, probed and ready; its exported tree is gone afterwards.

    ``spec`` is a revision of ``repo`` or, when it contains a ``/`` and is a
    directory, a checkout used in place. An exported tree lives in ``tmp``
    and is removed on every way out of the block (an exception, SystemExit
    from a SIGTERM turned into one by ``servers.exit_on_sigterm``).
    """
    path = Path(spec).expanduser()
    exported: Path | None = None
    try:
        if "/" in spec and path.is_dir():
            path = path.resolve()
            suffix, commit = _checkout_name(path)
            tree, source = package_root(path), f"checkout {path}"
            project = path
        else:
            found = resolve(spec, repo)
            if found is None:
                hint = f" (for the checkout, write ./{spec})" if path.is_dir() else ""
                raise BaselineError(f"{spec!r} is not a revision of {repo}{hint}")
            commit, suffix = found
            exported = Path(tmp) / f"baseline-{suffix}"
            export(commit, exported, repo)
            tree, source, project = package_root(exported), f"git archive {commit}", exported
        base = Baseline(PREFIX + suffix, spec, tree, commit, source)
        base.dependencies, base.notes = check_dependencies(project)
        probe(base)
        yield base
    finally:
        if exported is not None:
            shutil.rmtree(exported, ignore_errors=True)
