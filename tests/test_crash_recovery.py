"""Crash recovery: the engine process is killed with SIGKILL in the middle of a block, for each
`effects` value, and started again (a new process): no completed block runs again, no
irreversible block runs twice, and nothing in the ledger is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.foundry_support import artifact_document, block, write_artifact

PY = sys.executable
# Appends its name to runs.log, then waits (up to 60 s) for a release file.
HOLD = (
    "import pathlib, sys, time\n"
    "open('runs.log', 'a').write(sys.argv[1] + '\\n')\n"
    "pathlib.Path(sys.argv[1] + '.started').touch()\n"
    "deadline = time.time() + 60\n"
    "while not pathlib.Path('release').exists() and time.time() < deadline:\n"
    "    time.sleep(0.01)\n"
)
RECORD = "import sys; open('runs.log', 'a').write(sys.argv[1] + '\\n')"


def foundry(root: Path, state: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            PY,
            "-m",
            "foundry",
            "run",
            str(root),
            "--artifact",
            "crash",
            "--state",
            str(state),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.01)


def ledger_lines(state: Path) -> list[str]:
    (path,) = list(state.rglob("ledger.jsonl"))
    return path.read_text().splitlines()


@pytest.mark.parametrize("effects", ["none", "idempotent", "reversible", "irreversible"])
def test_sigkill_mid_block_then_restart(tmp_path: Path, effects: str) -> None:
    root = tmp_path / "checkout"
    state = tmp_path / "state"
    root.mkdir()
    write_artifact(
        root,
        artifact_document(
            "crash",
            [
                block("first", [PY, "-c", RECORD, "first"]),
                block(
                    "middle",
                    [PY, "-c", HOLD, "middle"],
                    needs=["first"],
                    effects=effects,
                    timeout=120,
                ),
                block("last", [PY, "-c", RECORD, "last"], needs=["middle"]),
            ],
        ),
    )
    engine = foundry(root, state)
    wait_for(root / "middle.started")
    before = ledger_lines(state)
    os.kill(engine.pid, signal.SIGKILL)
    engine.communicate()
    # The attempt's process group outlives the engine (as on a real host). Let it end before the
    # restart, so that the test counts runs, not races with an orphan.
    (root / "release").touch()
    orphan_done = root / "runs.log"
    assert orphan_done.read_text().split().count("middle") == 1
    _wait_gone(root)
    (root / "middle.started").unlink()
    (root / "release").unlink()
    restart = foundry(root, state)
    if effects in ("none", "idempotent"):
        wait_for(root / "middle.started")
        (root / "release").touch()
    _out, err = restart.communicate(timeout=60)
    after = ledger_lines(state)
    assert after[: len(before)] == before, "a ledger record written before the kill was lost"
    runs = (root / "runs.log").read_text().split()
    assert runs.count("first") == 1, "a completed block ran again"
    if effects in ("none", "idempotent"):
        assert restart.returncode == 0, err
        assert runs.count("middle") == 2  # retried after the crash
        assert runs.count("last") == 1
        interrupted = [json.loads(x) for x in after if '"interrupted"' in x]
        assert interrupted
        assert interrupted[0]["block"] == "middle"
    else:
        assert restart.returncode == 6, err  # indeterminate
        assert runs.count("middle") == 1, "an irreversible/reversible block ran twice"
        assert "last" not in runs
        kinds = [json.loads(x)["type"] for x in after]
        assert kinds[-1] == "indeterminate"
        # Running again changes nothing until someone decides.
        third = foundry(root, state)
        _, err3 = third.communicate(timeout=60)
        assert third.returncode == 6, err3
        assert (root / "runs.log").read_text().split().count("middle") == 1


def _wait_gone(root: Path, timeout: float = 30) -> None:
    """Wait until no process still runs the HOLD script in `root` (the orphaned attempt)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if (
                    os.readlink(proc / "cwd") == str(root)
                    and b"release" in (proc / "cmdline").read_bytes()
                ):
                    busy = "\nState:\tZ" not in (proc / "status").read_text()
            except OSError:
                continue
            if busy:
                break
        if not busy:
            return
        time.sleep(0.01)
    raise AssertionError("the orphaned attempt did not end")
