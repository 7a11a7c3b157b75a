"""The Action's install step (`scripts/action-install`), as a runner runs it: from a bare Python
it installs Alloy + Foundry from the action's own source with the pinned runtime lock into a
virtualenv in `$RUNNER_TEMP`; given a Python that already has them, it installs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "action-install"


def _install(python: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    github_env = tmp_path / "github_env"
    github_env.touch()
    env = {
        **os.environ,
        "ALLOY_PYTHON": python,
        "ALLOY_ACTION_PATH": str(ROOT),
        "RUNNER_TEMP": str(tmp_path / "runner-temp"),
        "GITHUB_ENV": str(github_env),
    }
    (tmp_path / "runner-temp").mkdir()
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    return done, github_env


def _exported(github_env: Path) -> str:
    [line] = github_env.read_text(encoding="utf-8").splitlines()
    name, _, value = line.partition("=")
    assert name == "ALLOY_FOUNDRY_PYTHON"
    return value


def test_a_bare_python_gets_a_pinned_install(tmp_path: Path) -> None:
    bare = getattr(sys, "_base_executable", sys.executable)
    probe = subprocess.run([bare, "-P", "-c", "import foundry"], capture_output=True, check=False)
    assert probe.returncode != 0, "the base interpreter must not have the project already"
    done, github_env = _install(bare, tmp_path)
    assert done.returncode == 0, done.stderr
    python = _exported(github_env)
    assert python == str(tmp_path / "runner-temp" / "alloy-foundry-venv" / "bin" / "python")
    version = subprocess.run(
        [python, "-m", "foundry", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("foundry ")
    freeze = subprocess.run(
        [python, "-m", "pip", "freeze"], capture_output=True, text=True, check=True
    ).stdout.lower()
    lock = (ROOT / "requirements" / "runtime.txt").read_text(encoding="utf-8").lower()
    for pin in ("github3.py==", "gitpython==", "pydantic=="):
        wanted = next(line for line in lock.splitlines() if line.startswith(pin))
        assert wanted in freeze, f"{wanted} not installed as pinned"


def test_a_python_that_has_it_installs_nothing(tmp_path: Path) -> None:
    done, github_env = _install(sys.executable, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _exported(github_env) == sys.executable
    assert not (tmp_path / "runner-temp" / "alloy-foundry-venv").exists()
