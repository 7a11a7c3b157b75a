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


HOLD = (
    "import pathlib, time\n"
    "pathlib.Path('started').touch()\n"
    "while not pathlib.Path('release').exists(): time.sleep(0.01)\n"
    "open('runs', 'a').write('x')\n"
)


def test_sigterm_stops_foundry_run_and_the_next_run_resumes(tmp_path: Path) -> None:
    """SIGTERM is the engine going away, not a cancel: exit 130, the execution is not finished,
    and running it again completes it (an `effects: none` block runs again)."""
    root = tmp_path / "checkout"
    write_artifact(
        root,
        artifact_document(
            "long",
            [
                block("first", [PY, "-c", "open('first', 'a').write('x')"]),
                block("slow", [PY, "-c", HOLD], needs=["first"], timeout=600),
            ],
        ),
    )
    args = [
        PY,
        "-m",
        "foundry",
        "run",
        str(root),
        "--artifact",
        "long",
        "--state",
        str(tmp_path / "s"),
        "--grace",
        "0.2",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(root / "started")
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopped" in err
    (ledger,) = (tmp_path / "s").rglob("ledger.jsonl")
    records = [json.loads(x) for x in ledger.read_text().splitlines()]
    assert all(r["type"] != "execution-finished" for r in records)
    assert records[-1]["type"] == "attempt-finished"
    assert records[-1]["outcome"] == "interrupted"
    (root / "release").touch()
    again = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0, again.stderr
    assert (root / "first").read_text() == "x", "a completed block never runs again"
    assert (root / "runs").read_text() == "x"


def test_a_block_that_finishes_within_the_grace_period_counts(tmp_path: Path) -> None:
    art = artifact("quick", [block("b", [PY, "-c", HOLD])])
    work = tmp_path / "work"
    work.mkdir()
    stop = threading.Event()
    result: dict[str, Any] = {}
    options = RunOptions(workdir=work, state_dir=tmp_path / "state", stop_grace=30.0)
    thread = threading.Thread(
        target=lambda: result.update(
            r=run_execution(art, Event("apply", art.digest), options, SystemClock(), stop=stop)
        )
    )
    thread.start()
    wait_for(work / "started")
    stop.set()
    (work / "release").touch()
    thread.join(30)
    assert result["r"].status == "succeeded"
    assert (work / "runs").read_text() == "x"


def test_stopping_an_irreversible_attempt_leaves_it_indeterminate(tmp_path: Path) -> None:
    art = artifact("risky", [block("b", [PY, "-c", HOLD], effects="irreversible", timeout=600)])
    work = tmp_path / "work"
    work.mkdir()
    stop = threading.Event()
    result: dict[str, Any] = {}
    options = RunOptions(workdir=work, state_dir=tmp_path / "state", stop_grace=0.0, kill_grace=0.5)
    thread = threading.Thread(
        target=lambda: result.update(
            r=run_execution(art, Event("apply", art.digest), options, SystemClock(), stop=stop)
        )
    )
    thread.start()
    wait_for(work / "started")
    stop.set()
    thread.join(30)
    assert result["r"].status == "stopped"
    again = run_execution(art, Event("apply", art.digest), options, SystemClock())
    assert again.status == "indeterminate"
    assert not (work / "runs").exists(), "it never ran twice, and never ran to the end"
