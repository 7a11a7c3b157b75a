"""What the sandbox tests share: the environment a block gets, running a confined command line
to its end, finding the processes an attempt left, and for blocks run as their own user a
directory every user may pass through (`layout`) and whether this host gives an attempt a
cgroup (`needs_cgroup`). A pytest plugin of the suite (tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from foundry.sandbox import Launch, RunAs

#: The system's Python, which the sandbox shows (the test's own may live in a hidden place).
SYSTEM_PY = "/usr/bin/python3"
BOX_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def run_launch(
    launch: Launch, cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str | None]:
    """Run a launch to its end: its exit code, its output and the limit that ended it (if
    one did); its cgroups and scratch room are removed afterwards."""
    try:
        proc = subprocess.run(
            launch.argv,
            cwd=cwd,
            env=env or BOX_ENV,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return proc.returncode, proc.stdout + proc.stderr, launch.verdict(proc.returncode)
    finally:
        launch.close()


def processes_in(worktree: Path) -> list[int]:
    """The processes whose working directory is in `worktree`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).is_relative_to(worktree):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _cgroup_here() -> bool:
    """Whether this host gives an attempt a cgroup of its own (a block run as its own user
    under no sandbox needs one, and does not run without it)."""
    from foundry.sandbox import Limits, SandboxUnavailable
    from foundry.sandbox._limits import limited

    try:
        limited(["true"], Limits(), RunAs(2001, 2001)).close()
    except SandboxUnavailable:
        return False
    return True


#: For a test that runs a block as its own user under no sandbox.
needs_cgroup = pytest.mark.skipif(
    os.geteuid() != 0 or not _cgroup_here(),
    reason="this host gives an attempt no cgroup: blocks run as their own user need bwrap",
)


@pytest.fixture
def layout() -> Iterator[Path]:
    """A directory of the test's own that every user may pass through (not under pytest's
    base, which is root's only, and which another pytest session makes so again at its
    start): what an operator gives a daemon whose repositories have users of their own."""
    where = Path(tempfile.mkdtemp(prefix="foundry-users-"))
    where.chmod(0o711)
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)
