"""Merging a remote ledger with a host's local one (foundry/merge.py): by record identity, never by
size, and never letting an older holder's records hide or contradict a later holder's.

The ledgers here are written by the real `Ledger` (one per holder and generation), and the merged
result is replayed by the executor's own replay and turned into a real Trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from foundry.executor._replay import replay
from foundry.ledger import Ledger
from foundry.merge import merge_ledgers
from foundry.traces import trace_document
from tests.foundry_support import artifact, block

EXE = "exe-00000000000000ab"


def write(
    path: Path, generation: int | None, records: list[dict[str, Any]], *, base: bytes = b""
) -> bytes:
    path.write_bytes(base)
    with Ledger(path, generation=generation) as ledger:
        for i, record in enumerate(records):
            ledger.append(record, at=1_764_000_000.0 + i)
    return path.read_bytes()


def planned() -> dict[str, Any]:
    return {
        "type": "planned",
        "execution": EXE,
        "artifact": {"name": "job", "digest": JOB.digest},
        "event": {"type": "apply", "key": JOB.digest},
        "inputs": {},
        "dryRun": False,
    }


def started(b: str, n: int, effects: str) -> dict[str, Any]:
    return {"type": "attempt-started", "block": b, "attempt": n, "effects": effects}


def ended(b: str, n: int, outcome: str = "succeeded", tail: str = "") -> dict[str, Any]:
    return {
        "type": "attempt-finished",
        "block": b,
        "attempt": n,
        "outcome": outcome,
        "exitCode": 0 if outcome == "succeeded" else None,
        "durationMs": 5,
        "logDigest": None,
        "logTail": tail,
        "outputs": [],
    }


def done(b: str, status: str = "succeeded") -> dict[str, Any]:
    return {"type": "block-finished", "block": b, "status": status, "reason": ""}


JOB = artifact(
    "job",
    [
        block("first", ["true"], effects="none"),
        block("second", ["true"], effects="irreversible", needs=["first"]),
    ],
)


def records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def test_an_older_longer_local_ledger_never_hides_a_later_holder(tmp_path: Path) -> None:
    # Generation 1 published its plan and the start of `first` (every start is published
    # before its process starts), then ran `first` with a large output and died.
    published = write(tmp_path / "r1", 1, [planned(), started("first", 1, "none")])
    local = write(
        tmp_path / "l",
        1,
        [ended("first", 1, tail="x" * 16000), done("first"), started("second", 1, "irreversible")],
        base=published,
    )
    # Generation 2 took over from what was published, ran `first` again and started `second`.
    remote = write(
        tmp_path / "r2",
        2,
        [
            ended("first", 1, "interrupted"),
            started("first", 2, "none"),
            ended("first", 2),
            done("first"),
            started("second", 1, "irreversible"),
        ],
        base=published,
    )
    assert len(local) > len(remote)  # the rule this replaces kept the longer one
    merged = merge_ledgers(remote, local, generation=3, holder="a", at=1_764_000_100.0)
    assert merged.startswith(remote)  # the remote's records stay, in their order
    state = replay(records(merged))
    assert ("second", 1) in state.open_attempts  # generation 2's start of `second` is kept
    added = records(merged)[len(records(remote)) :]
    assert [r["type"] for r in added] == ["attempt-finished", "merged"]
    # The one fact the orphans prove: attempt 1 of `first` really ended (with its output).
    assert added[0]["attempt"] == 1
    assert added[0]["logTail"] == "x" * 16000
    assert added[0]["from"] == {"gen": 1, "seq": 3}
    assert all(r["gen"] == 3 for r in added)
    assert added[1]["orphans"] == 3
    trace = trace_document(records(merged), JOB)
    attempts = {b["id"]: b["attempts"] for b in trace["spec"]["blocks"]}
    assert [a["outcome"] for a in attempts["first"]] == ["succeeded", "succeeded"]
    assert len(attempts["second"]) == 1


def test_an_orphan_start_without_an_end_never_ran(tmp_path: Path) -> None:
    published = write(tmp_path / "r", 1, [planned()])
    local = write(tmp_path / "l", 1, [started("first", 1, "none")], base=published)
    merged = merge_ledgers(published, local, generation=2, holder="a", at=0.0)
    state = replay(records(merged))
    assert state.open_attempts == set()
    assert state.attempts == {}
    assert records(merged)[-1]["type"] == "merged"


def test_an_orphan_end_settles_an_indeterminate_verdict_on_the_same_attempt(tmp_path: Path) -> None:
    published = write(
        tmp_path / "r1",
        1,
        [
            planned(),
            started("first", 1, "none"),
            ended("first", 1),
            done("first"),
            started("second", 1, "irreversible"),
        ],
    )
    local = write(tmp_path / "l", 1, [ended("second", 1), done("second")], base=published)
    verdict = {"type": "indeterminate", "block": "second", "attempt": 1, "reason": "unknown"}
    remote = write(tmp_path / "r2", 2, [verdict], base=published)
    assert replay(records(remote)).indeterminate == {"second"}
    merged = merge_ledgers(remote, local, generation=3, holder="a", at=0.0)
    state = replay(records(merged))
    assert state.indeterminate == set()
    assert state.status == {"first": "succeeded", "second": "succeeded"}
    assert trace_document(records(merged), JOB)["spec"]["blocks"][1]["status"] == "succeeded"


def test_an_orphan_end_of_a_block_a_later_holder_ran_again_does_not_decide_it(
    tmp_path: Path,
) -> None:
    published = write(tmp_path / "r1", 1, [planned(), started("first", 1, "none")])
    local = write(
        tmp_path / "l", 1, [ended("first", 1, "failed"), done("first", "failed")], base=published
    )
    remote = write(
        tmp_path / "r2",
        2,
        [
            ended("first", 1, "interrupted"),
            started("first", 2, "none"),
            ended("first", 2),
            done("first"),
        ],
        base=published,
    )
    merged = merge_ledgers(remote, local, generation=3, holder="a", at=0.0)
    assert replay(records(merged)).status == {"first": "succeeded"}
    types = [r["type"] for r in records(merged)[len(records(remote)) :]]
    assert "block-finished" not in types


def test_old_ledgers_without_generations_keep_their_unpublished_attempts(tmp_path: Path) -> None:
    """Before generations, `none` attempts were not published before they started: an orphan
    one may have run, so it is kept (renumbered after the later holder's attempts)."""
    published = write(tmp_path / "r1", None, [planned()])
    local = write(
        tmp_path / "l", None, [started("first", 1, "none"), ended("first", 1)], base=published
    )
    remote = write(
        tmp_path / "r2",
        2,
        [started("first", 1, "none"), ended("first", 1), done("first")],
        base=published,
    )
    merged = merge_ledgers(remote, local, generation=3, holder="a", at=0.0)
    trace = trace_document(records(merged), JOB)
    assert [a["number"] for a in trace["spec"]["blocks"][0]["attempts"]] == [1, 2]


def test_nothing_to_add_keeps_the_remote_as_it_is(tmp_path: Path) -> None:
    remote = write(tmp_path / "r", 1, [planned(), started("first", 1, "none")])
    assert (
        merge_ledgers(remote, remote[: remote.index(b"\n") + 1], generation=2, holder="a", at=0.0)
        == remote
    )
    assert merge_ledgers(remote, None, generation=2, holder="a", at=0.0) == remote
    assert merge_ledgers(None, None, generation=1, holder="a", at=0.0) == b""
    torn = remote + b'{"seq": 3, "ty'
    assert merge_ledgers(torn, remote, generation=2, holder="a", at=0.0) == remote
