"""Cancellation: running attempts are stopped (their whole process group), nothing new starts,
and the execution ends `cancelled`; `foundry run` does this on SIGTERM and exits 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from foundry.executor import RunOptions, run_execution
from foundry.ids import Event
from foundry.ports import SystemClock
from tests.foundry_support import artifact, artifact_document, block, write_artifact

PY = sys.executable
LONG = "sleep 300 & echo $! > child.pid; touch started; wait"


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def gone(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_cancel_stops_the_running_tree_and_starts_nothing_more(tmp_path: Path) -> None:
    art = artifact(
        "long",
        [
            block("slow", ["sh", "-c", LONG], timeout=600),
            block("after", ["touch", "after"], needs=["slow"]),
        ],
    )
    work = tmp_path / "work"
    work.mkdir()
    cancel = threading.Event()
    result: dict[str, Any] = {}
    options = RunOptions(workdir=work, state_dir=tmp_path / "state", kill_grace=0.5)
    thread = threading.Thread(
        target=lambda: result.update(
            r=run_execution(art, Event("apply", art.digest), options, SystemClock(), cancel=cancel)
        )
    )
    thread.start()
    wait_for(work / "started")
    cancel.set()
    thread.join(30)
    assert not thread.is_alive()
    assert result["r"].status == "cancelled"
    # A block whose need was cancelled is skipped (it never started).
    assert result["r"].blocks == {"slow": "cancelled", "after": "skipped"}
    assert gone(int((work / "child.pid").read_text()))
    assert not (work / "after").exists()


def test_foundry_run_exits_130_on_sigterm(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    write_artifact(
        root, artifact_document("long", [block("slow", ["sh", "-c", LONG], timeout=600)])
    )
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "foundry",
            "run",
            str(root),
            "--artifact",
            "long",
            "--state",
            str(tmp_path / "s"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(root / "started")
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "cancelled" in err
    (ledger,) = (tmp_path / "s").rglob("ledger.jsonl")
    last = json.loads(ledger.read_text().splitlines()[-1])
    assert last == {**last, "type": "execution-finished", "status": "cancelled"}
    assert gone(int((root / "child.pid").read_text()))
