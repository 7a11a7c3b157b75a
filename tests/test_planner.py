"""The planner: level-triggered, deterministic ids, every reason a thing does not start."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from foundry.boundary import Boundary, read_request
from foundry.executor import RunOptions, run_execution
from foundry.ids import Event, execution_id
from foundry.planner import Push, glob_regex, plan
from foundry.ports import FakeClock
from foundry.state import LedgerIndex
from tests.foundry_support import artifact, artifact_document, block, write_artifact


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def nightly(**triggers: Any) -> Any:
    return artifact(
        "nightly", [block("b", ["true"])], triggers={"apply": False, "request": False, **triggers}
    )


def test_apply_starts_once_per_digest(tmp_path: Path) -> None:
    art = nightly(apply=True)
    known = LedgerIndex(tmp_path)
    first = plan(Boundary(artifacts={"nightly": art}), known, now=0)
    assert [(i.event, i.execution) for i in first.start] == [
        (Event("apply", art.digest), execution_id(art.digest, Event("apply", art.digest)))
    ]
    work = tmp_path / "w"
    work.mkdir()
    run_execution(
        art, Event("apply", art.digest), RunOptions(workdir=work, state_dir=tmp_path), FakeClock()
    )
    again = plan(Boundary(artifacts={"nightly": art}), known, now=0)
    assert again.start == []
    assert [i.reason for i in again.skip] == ["already done (succeeded)"]


SCHEDULE = {"cron": "0 2 * * *", "timezone": "UTC", "catchUpSeconds": 0, "overlap": "skip"}


def test_schedule_latest_slot_within_grace_and_missed_slots_outside_catch_up(
    tmp_path: Path,
) -> None:
    art = nightly(schedule=SCHEDULE)
    boundary = Boundary(artifacts={"nightly": art})
    on_time = plan(boundary, LedgerIndex(tmp_path), now=at("2026-11-25T02:03:00"))
    assert [i.event for i in on_time.start] == [Event("schedule", "2026-11-25T02:00:00Z")]
    late = plan(boundary, LedgerIndex(tmp_path), now=at("2026-11-25T10:00:00"))
    assert late.start == []
    assert [i.reason for i in late.skip] == [
        "schedule: slot 2026-11-25T02:00:00Z is outside the catch-up window"
    ]


def test_schedule_catch_up_runs_every_missed_slot_in_the_window(tmp_path: Path) -> None:
    art = nightly(schedule={**SCHEDULE, "cron": "0 * * * *", "catchUpSeconds": 3 * 3600})
    result = plan(
        Boundary(artifacts={"nightly": art}), LedgerIndex(tmp_path), now=at("2026-11-25T10:30:00")
    )
    assert [i.event.key for i in result.start if i.event] == [
        "2026-11-25T08:00:00Z",
        "2026-11-25T09:00:00Z",
        "2026-11-25T10:00:00Z",
    ]


def test_schedule_overlap_skip_while_an_earlier_slot_is_unfinished(tmp_path: Path) -> None:
    gate = {"kind": "approval", "from": ["bob"], "quorum": 1, "forbidSelf": True}
    art = artifact(
        "nightly",
        [block("b", ["true"], gates=[gate])],
        triggers={"apply": False, "request": False, "schedule": {**SCHEDULE, "cron": "0 * * * *"}},
    )
    work = tmp_path / "w"
    work.mkdir()
    parked = run_execution(
        art,
        Event("schedule", "2026-11-25T09:00:00Z"),
        RunOptions(workdir=work, state_dir=tmp_path),
        FakeClock(),
    )
    assert parked.status == "waiting"
    result = plan(
        Boundary(artifacts={"nightly": art}), LedgerIndex(tmp_path), now=at("2026-11-25T10:01:00")
    )
    assert result.start == []
    assert [i.reason for i in result.skip] == [
        f"schedule: overlap skipped ({parked.execution} has not finished)"
    ]


def test_push_paths(tmp_path: Path) -> None:
    art = nightly(push={"paths": ["src/**", "docs/*.md"]})
    pushes = [
        Push("a" * 40, ("README.md",)),
        Push("b" * 40, ("src/x/y.py",)),
        Push("c" * 40, ("docs/a.md",)),
    ]
    result = plan(Boundary(artifacts={"nightly": art}), LedgerIndex(tmp_path), now=0, pushes=pushes)
    assert [i.event.key for i in result.start if i.event] == ["b" * 40, "c" * 40]
    assert glob_regex("src/**").match("src/a/b/c.py")
    assert not glob_regex("docs/*.md").match("docs/deep/a.md")


def _request(name: str, digest: str, **inputs: Any) -> Any:
    text = (
        f"apiVersion: alloy.dev/v1\nkind: Request\nmetadata: {{name: {name}}}\n"
        f"spec:\n  artifact: nightly@{digest}\n  inputs: {json.dumps(inputs)}\n"
        "  reason: please\n  requestedBy: alice\n"
    )
    return read_request(f".alloy/requests/{name}.yaml", text.encode())


def test_requests_run_once_and_only_on_their_pinned_digest(tmp_path: Path) -> None:
    art = nightly(request=True)
    old = _request("old", "sha256:" + "1" * 64)
    new = _request("new", art.digest, ref="v2")
    result = plan(
        Boundary(artifacts={"nightly": art}, requests={"old": old, "new": new}),
        LedgerIndex(tmp_path),
        now=0,
    )
    assert [(i.reason.split(":")[0], i.inputs) for i in result.start] == [
        ("request new by alice", {"ref": "v2"})
    ]
    assert any("pinned to an old digest" in i.reason for i in result.skip)


def test_foundry_plan_command_executes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    marker = tmp_path / "ran"
    write_artifact(root, artifact_document("nightly", [block("b", ["touch", str(marker)])]))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "foundry",
            "plan",
            str(root),
            "--state",
            str(tmp_path / "s"),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(out.stdout)["plan"]
    assert [(r["action"], r["event"]["type"]) for r in rows] == [("start", "apply")]
    assert not marker.exists()


def test_a_parked_execution_is_listed_as_resuming_with_its_reason(tmp_path: Path) -> None:
    gate = {"kind": "approval", "from": ["bob"], "quorum": 1, "forbidSelf": True}
    art = artifact("gated", [block("b", ["true"], gates=[gate])])
    work = tmp_path / "w"
    work.mkdir()
    parked = run_execution(
        art, Event("apply", art.digest), RunOptions(workdir=work, state_dir=tmp_path), FakeClock()
    )
    result = plan(Boundary(artifacts={"gated": art}), LedgerIndex(tmp_path), now=0)
    assert result.start == []
    assert [(i.execution, i.reason) for i in result.resume] == [
        (parked.execution, "waiting on a gate: its gates are evaluated again")
    ]


def test_a_waiting_schedule_slot_resumes_however_long_ago_its_slot_was(tmp_path: Path) -> None:
    """The catch-up window decides which slots start; a slot's execution that waits on a gate
    resumes on every plan until it finishes (it used to be forgotten once its slot left the
    window). An unfinished slot of another digest is not this artifact's to resume."""
    gate = {"kind": "approval", "from": ["bob"], "quorum": 1, "forbidSelf": True}
    art = artifact(
        "nightly",
        [block("b", ["true"], gates=[gate])],
        triggers={"apply": False, "request": False, "schedule": SCHEDULE},
    )
    work = tmp_path / "w"
    work.mkdir()
    slot = Event("schedule", "2026-11-25T02:00:00Z")
    parked = run_execution(art, slot, RunOptions(workdir=work, state_dir=tmp_path), FakeClock())
    assert parked.status == "waiting"
    boundary = Boundary(artifacts={"nightly": art})
    days_later = plan(boundary, LedgerIndex(tmp_path), now=at("2026-11-28T10:00:00"))
    assert [(i.event, i.execution) for i in days_later.resume] == [
        (slot, execution_id(art.digest, slot))
    ]
    changed = artifact(
        "nightly",
        [block("b", ["true", "again"], gates=[gate])],
        triggers={"apply": False, "request": False, "schedule": SCHEDULE},
    )
    other = plan(
        Boundary(artifacts={"nightly": changed}),
        LedgerIndex(tmp_path),
        now=at("2026-11-28T10:00:00"),
    )
    assert other.resume == []
