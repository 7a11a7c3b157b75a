"""The README's first command stays true: after installing, `alloy demo`, `foundry reconcile`,
`foundry checks show` and `alloy status` run the whole loop on the example repository (the
install itself is what CI does)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_main_job_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As a user runs it: with the default sandbox (bwrap where it is installed, as on CI), not
    # the unsandboxed runs the rest of the suite chooses (tests/conftest.py).
    monkeypatch.delenv("FOUNDRY_SANDBOX", raising=False)
    readme = (ROOT / "README.md").read_text()
    first = re.search(r"```sh\n(python3 -m venv .*?)\n```", readme)
    assert first is not None, "the README must start with the install-and-run command"
    steps = [shlex.split(s) for s in first.group(1).split(" && ")]
    outputs: list[str] = []
    assert steps[0][:3] == ["python3", "-m", "venv"]
    assert steps[1][0].endswith("pip")
    for argv in steps[2:]:
        prog = Path(argv[0]).name
        assert prog in ("alloy", "foundry"), argv
        out = _step(prog, argv, tmp_path)
        outputs.append(out.stdout)
    reconcile, shown, status = outputs[1], outputs[2], outputs[3]
    assert "started, succeeded" in reconcile
    assert "traces committed" in reconcile
    assert "✅ succeeded ·" in shown  # the check run carries the trace's summary, as text
    assert "succeeded" in status
    assert "AC-1  produced" in status  # evidence for the acceptance criterion, from the branch
    again = subprocess.run(
        [sys.executable, "-m", "foundry", "reconcile", "--repo", "alloy-demo", "--once"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert "nothing new" in again.stdout
    status = subprocess.run(
        ["git", "status", "--porcelain"],
        cwd=tmp_path / "alloy-demo",
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == "", "running the demo leaves its repository clean"
    # The whole command twice in a row: the demo is found as it was left, nothing runs again.
    for argv in steps[2:]:
        prog = Path(argv[0]).name
        second = _step(prog, argv, tmp_path)
        if argv[1] == "demo":
            assert "left as it is" in second.stdout
        if argv[1] == "reconcile":
            assert "nothing new" in second.stdout


def _step(prog: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """One step of the README's command, run with this Python; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", prog, *argv[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done
