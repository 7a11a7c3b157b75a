"""What the sandbox tests share: the environment a block gets, running a confined command line
to its end, and finding the processes an attempt left."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from foundry.sandbox import Launch

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
