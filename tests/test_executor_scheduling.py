"""What the executor's fast paths rely on: the DAG bookkeeping keeps DAG order (and the order of
ready blocks by id), failures and start errors skip what depends on them, attempt records are on
disk (and synced, for effects that ask for it) before the process starts, an attempt that prints
nothing still has a log digest, and the ledger's timestamps read as before."""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import foundry.executor._start
from foundry._process import Proc, spawn
from foundry.boundary import Artifact
from foundry.errors import UserError
from foundry.executor import RunOptions, run_execution
from foundry.ids import Event
from foundry.ledger import rfc3339
from foundry.ports import SystemClock
from tests.foundry_support import artifact, block

PY = sys.executable
EMPTY = "sha256:" + hashlib.sha256(b"").hexdigest()


def options(tmp_path: Path, **kwargs: Any) -> RunOptions:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return RunOptions(workdir=work, state_dir=tmp_path / "state", kill_grace=0.2, **kwargs)


def run(art: Artifact, opts: RunOptions) -> tuple[Any, list[dict[str, Any]]]:
    result = run_execution(art, Event("apply", art.digest), opts, SystemClock())
    lines = result.ledger.read_text().splitlines()
    return result, [json.loads(line) for line in lines]


def random_dag(seed: int, size: int) -> dict[str, list[str]]:
    """Block id -> needs; ids are shuffled so that id order and DAG order disagree."""
    rng = random.Random(seed)  # noqa: S311 - a seeded shape, not a secret
    ids = [f"b{i:03d}" for i in range(size)]
    rng.shuffle(ids)  # ids[i] may only need ids[:i]
    return {
        block_id: sorted(rng.sample(ids[:i], k=min(i, rng.choice([0, 1, 1, 2, 3]))))
        for i, block_id in enumerate(ids)
    }


def kahn_by_id(dag: dict[str, list[str]]) -> list[str]:
    """The order one worker runs the DAG in: always the smallest ready id."""
    missing = {b: len(needs) for b, needs in dag.items()}
    dependents: dict[str, list[str]] = {b: [] for b in dag}
    for b, needs in dag.items():
        for n in needs:
            dependents[n].append(b)
    ready = [b for b, m in missing.items() if m == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        b = heapq.heappop(ready)
        order.append(b)
        for d in dependents[b]:
            missing[d] -= 1
            if missing[d] == 0:
                heapq.heappush(ready, d)
    return order


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_worker_runs_the_smallest_ready_id_first(tmp_path: Path, seed: int) -> None:
    dag = random_dag(seed, 40)
    art = artifact("order", [block(b, ["true"], needs=needs) for b, needs in dag.items()])
    result, records = run(art, options(tmp_path, workers=1))
    assert result.status == "succeeded"
    started = [r["block"] for r in records if r["type"] == "attempt-started"]
    assert started == kahn_by_id(dag)


@pytest.mark.parametrize("seed", [4, 5])
def test_every_block_starts_after_its_needs_finished_and_within_the_worker_limit(
    tmp_path: Path, seed: int
) -> None:
    dag = random_dag(seed, 60)
    art = artifact("dag", [block(b, ["true"], needs=needs) for b, needs in dag.items()])
    result, records = run(art, options(tmp_path, workers=3))
    assert result.status == "succeeded"
    assert set(result.blocks) == set(dag)
    finished: set[str] = set()
    running: set[str] = set()
    for r in records:
        if r["type"] == "attempt-started":
            assert set(dag[r["block"]]) <= finished, r["block"]
            running.add(r["block"])
            assert len(running) <= 3
        elif r["type"] == "block-finished":
            assert r["status"] == "succeeded"
            running.discard(r["block"])
            finished.add(r["block"])
    assert finished == set(dag)


def test_a_failure_skips_everything_downstream_and_nothing_else(tmp_path: Path) -> None:
    art = artifact(
        "fail",
        [
            block("a", ["false"]),
            block("b", ["true"], needs=["a"]),
            block("c", ["true"], needs=["b"]),
            block("d", ["true"]),
            block("e", ["true"], needs=["c", "d"]),
            block("f", ["true"], needs=["d"]),
        ],
    )
    result, records = run(art, options(tmp_path, workers=2))
    assert result.status == "failed"
    assert result.blocks == {
        "a": "failed",
        "b": "skipped",
        "c": "skipped",
        "d": "succeeded",
        "e": "skipped",
        "f": "succeeded",
    }
    reasons = {r["block"]: r["reason"] for r in records if r["type"] == "block-finished"}
    assert reasons["b"] == "needs a, which did not succeed"
    assert reasons["c"] == "needs b, which did not succeed"
    assert reasons["e"] == "needs c, which did not succeed"
    started = {r["block"] for r in records if r["type"] == "attempt-started"}
    assert started == {"a", "d", "f"}


def test_a_command_that_cannot_start_fails_its_block_with_a_log(tmp_path: Path) -> None:
    art = artifact(
        "nostart",
        [
            block("missing", ["./no-such-program-here"]),
            block("after", ["true"], needs=["missing"]),
            block("other", ["true"]),
        ],
    )
    result, records = run(art, options(tmp_path))
    assert result.blocks == {"missing": "failed", "after": "skipped", "other": "succeeded"}
    finished = next(
        r for r in records if r["type"] == "attempt-finished" and r["block"] == "missing"
    )
    assert finished["outcome"] == "failed"
    assert finished["exitCode"] is None
    assert finished["logTail"].startswith("cannot start './no-such-program-here'")
    log = next((tmp_path / "state").rglob("missing.1.log")).read_bytes()
    assert finished["logDigest"] == "sha256:" + hashlib.sha256(log).hexdigest()
    block_finished = next(
        r for r in records if r["type"] == "block-finished" and r["block"] == "missing"
    )
    assert block_finished["reason"] == "cannot start './no-such-program-here'"


def test_a_silent_block_has_the_digest_of_nothing_and_no_log_file(tmp_path: Path) -> None:
    art = artifact(
        "logs",
        [
            block("quiet", ["true"]),
            block(
                "loud",
                [
                    PY,
                    "-c",
                    "print('hello', flush=True); import sys; print('oops', file=sys.stderr)",
                ],
            ),
        ],
    )
    result, records = run(art, options(tmp_path))
    assert result.status == "succeeded"
    by_block = {r["block"]: r for r in records if r["type"] == "attempt-finished"}
    assert by_block["quiet"]["logDigest"] == EMPTY
    assert by_block["quiet"]["logTail"] == ""
    logs = result.ledger.parent / "logs"
    assert not (logs / "quiet.1.log").exists()
    loud = (logs / "loud.1.log").read_bytes()
    assert loud == b"hello\noops\n"
    assert by_block["loud"]["logDigest"] == "sha256:" + hashlib.sha256(loud).hexdigest()


@pytest.mark.parametrize("effects", ["none", "idempotent", "reversible", "irreversible"])
def test_the_attempt_record_is_written_before_the_process_starts_and_synced_when_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, effects: str
) -> None:
    """Blocks that start together share one sync, but every record is in the file (and, for
    reversible or irreversible effects, synced) before its process is spawned."""
    art = artifact("sync", [block(f"b{i}", ["true"], effects=effects) for i in range(4)])
    opts = options(tmp_path, workers=4)
    seen: list[str] = []
    synced: list[int] = []  # the ledger's size at each fsync
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.fstat(fd).st_size)

    def checked_spawn(argv: list[str], *, cwd: Path, env: dict[str, str]) -> Proc:
        (ledger_file,) = (tmp_path / "state").rglob("ledger.jsonl")
        written = 0
        for line in ledger_file.read_bytes().splitlines(keepends=True):
            written += len(line)
            record = json.loads(line)
            if record["type"] == "attempt-started" and record["block"] == env["ALLOY_BLOCK"]:
                break
        else:
            raise AssertionError("the attempt record must be written before the process starts")
        if effects in ("reversible", "irreversible"):
            assert max(synced) >= written, "and synced, for these effects"
        seen.append(env["ALLOY_BLOCK"])
        return spawn(argv, cwd=cwd, env=env)

    monkeypatch.setattr(foundry.executor._start, "spawn", checked_spawn)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    result, records = run(art, opts)
    assert result.status == "succeeded"
    assert sorted(seen) == ["b0", "b1", "b2", "b3"]
    if effects in ("reversible", "irreversible"):
        # planned, one sync for the four attempts that start together, execution-finished
        assert len(synced) == 3
    else:
        assert len(synced) == 2  # planned, execution-finished
    kinds = [r["type"] for r in records]
    assert kinds[:5] == ["planned"] + ["attempt-started"] * 4


def test_dry_run_skips_blocks_with_effects_without_running_them(tmp_path: Path) -> None:
    art = artifact(
        "dry",
        [
            block("look", ["true"]),
            block("change", ["true"], effects="idempotent", needs=["look"]),
            block("after", ["true"], needs=["change"]),
            block("also", ["true"], needs=["look"]),
        ],
    )
    result, records = run(art, options(tmp_path, dry_run=True))
    assert result.blocks == {
        "look": "succeeded",
        "change": "skipped",
        "after": "skipped",
        "also": "succeeded",
    }
    started = {r["block"] for r in records if r["type"] == "attempt-started"}
    assert started == {"look", "also"}


def test_timestamps_read_as_datetime_formats_them() -> None:
    def reference(seconds: float) -> str:
        stamp = datetime.fromtimestamp(seconds, UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"

    rng = random.Random(7)  # noqa: S311 - seeded test values
    values = [rng.uniform(0, 4e9) for _ in range(20000)]
    values += [1_700_000_000 + k * 1e-7 for k in range(-3000, 3000)]
    values += [0.0, 1.9999995, 1.9999994999, 1e9 + 0.9999995, 59.9999999, 1_799_999_999.9996]
    for value in values:
        assert rfc3339(value) == reference(value), value


def test_a_workdir_outside_the_worktree_stops_before_any_attempt_is_recorded(
    tmp_path: Path,
) -> None:
    """Blocks that start together are checked first: none of them is left with an attempt that
    never started (which, for irreversible effects, would read as indeterminate later)."""
    escape = block("escape", ["true"], effects="irreversible")
    escape["workdir"] = "../elsewhere"
    art = artifact("confined", [escape, block("sibling", ["true"], effects="irreversible")])
    opts = options(tmp_path, workers=2)
    with pytest.raises(UserError, match="leaves the worktree"):
        run_execution(art, Event("apply", art.digest), opts, SystemClock())
    (ledger,) = (tmp_path / "state").rglob("ledger.jsonl")
    kinds = [json.loads(line)["type"] for line in ledger.read_text().splitlines()]
    assert kinds == ["planned"]
