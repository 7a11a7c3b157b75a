"""The repository the web interface tests use (tests/ui_support.py) really holds every state it
promises: read back from the remote's traces branch and claims, and through `alloy status` and
`alloy review` in the engineer's clone, as any user would see them."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import git, run_cli
from tests.reconcile_support import lines
from tests.ui_support import PROPOSAL, UiWorld


def _status(ui: UiWorld) -> dict[str, dict[str, Any]]:
    result = run_cli("alloy", "status", "--json", "--all", "--fetch", cwd=ui.work.path)
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["traces"]["found"] is True, doc["traces"]
    assert doc["warnings"] == []
    return {item["name"]: item for item in doc["intents"]}


def _evidence(item: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    return {e["acceptance"]: (e["status"], e["stale"]) for e in item["evidence"]}


def test_every_state_is_on_the_remote(ui_world: UiWorld) -> None:
    ui = ui_world
    ids = ui.executions
    assert set(ids) == {"old-docs", "docs-build", "flaky", "deploy"}
    assert set(ui.traces()) == set(ids.values())
    traces = {name: ui.trace(execution) for name, execution in ids.items()}
    assert {name: t["intent"] for name, t in traces.items()} == {n: n for n in ids}
    assert {name: t["status"] for name, t in traces.items()} == {
        "old-docs": "succeeded",
        "docs-build": "succeeded",
        "flaky": "failed",
        "deploy": "waiting",
    }

    # docs-build: both blocks ran, AC-1's evidence was produced (AC-2 has none declared).
    docs = traces["docs-build"]
    assert [(b["id"], b["status"]) for b in docs["blocks"]] == [
        ("build", "succeeded"),
        ("check", "succeeded"),
    ]
    [produced] = docs["evidence"]
    assert (produced["acceptance"], produced["status"]) == ("AC-1", "produced")
    assert produced["digest"].startswith("sha256:")
    assert len(lines(ui.mark("docs-build"))) == 2

    # flaky: its block exited 1; what it printed is in the trace.
    [test] = traces["flaky"]["blocks"]
    assert test["status"] == "failed"
    assert test["attempts"][-1]["exitCode"] == 1
    assert "test_login FAILED" in test["attempts"][-1]["logTail"]

    # deploy: `plan` ran, `ship` (irreversible) waits on its approval gate; the claim is held.
    deploy = traces["deploy"]
    assert [(b["id"], b["status"]) for b in deploy["blocks"]] == [
        ("plan", "succeeded"),
        ("ship", "waiting"),
    ]
    [gate] = deploy["gates"]
    assert (gate["block"], gate["index"], gate["kind"], gate["decision"]) == (
        "ship",
        0,
        "approval",
        "waiting",
    )
    assert "0 of 1 approval(s) from bob, carol" in gate["reason"]
    assert deploy["finishedAt"] is None
    assert ui.claim(ids["deploy"])["state"] != "finished"
    assert [line.split()[1] for line in lines(ui.mark("deploy"))] == ["plan"]
    for name in ("old-docs", "docs-build", "flaky"):
        assert ui.claim(ids[name])["state"] == "finished"

    # What `alloy status` shows in the engineer's clone (traces from origin/alloy/traces).
    items = _status(ui)
    assert sorted(items) == ["deploy", "docs-build", "flaky", "old-docs", "planned"]
    states = {name: item["state"] for name, item in items.items()}
    assert states == {
        "deploy": "active",
        "docs-build": "active",
        "flaky": "active",
        "old-docs": "deprecated",
        "planned": "proposed",
    }
    latest = {n: [(e["id"], e["status"]) for e in i["executions"]] for n, i in items.items()}
    assert latest == {
        "deploy": [(ids["deploy"], "waiting")],
        "docs-build": [(ids["docs-build"], "succeeded")],
        "flaky": [(ids["flaky"], "failed")],
        "old-docs": [(ids["old-docs"], "succeeded")],
        "planned": [],
    }
    assert items["docs-build"]["executions"][0]["current"] is True
    assert _evidence(items["docs-build"]) == {
        "AC-1": ("produced", False),  # fresh: from the current artifact
        "AC-2": ("unlinked", False),  # no evidence declared
    }
    assert _evidence(items["flaky"]) == {"AC-1": ("missing", False)}
    assert _evidence(items["deploy"]) == {"AC-1": ("none", False)}  # not finished: no word yet
    assert _evidence(items["old-docs"]) == {"AC-1": ("produced", True)}  # of its old artifact
    assert _evidence(items["planned"]) == {"AC-1": ("unlinked", False)}
    assert items["old-docs"]["artifact"] is None
    assert items["planned"]["artifact"] is None
    for name in ("deploy", "docs-build", "flaky"):
        assert items[name]["artifact"]["state"] == "current"


def test_owners_relations_and_the_proposal(ui_world: UiWorld) -> None:
    ui = ui_world
    explained = run_cli("alloy", "explain", "docs-build", cwd=ui.work.path)
    assert explained.code == 0, explained.err
    assert "supersedes old-docs" in explained.out
    planned = run_cli("alloy", "explain", "planned", cwd=ui.work.path)
    assert "depends on docs-build" in planned.out
    docs = json.loads((ui.work.path / ".alloy/artifacts/docs-build.json").read_text())
    assert docs["spec"]["intent"]["owners"] == ["alice", "bob"]
    assert [a["id"] for a in docs["spec"]["intent"]["acceptance"]] == ["AC-1", "AC-2"]
    deploy = json.loads((ui.work.path / ".alloy/artifacts/deploy.json").read_text())
    ship = next(b for b in deploy["spec"]["blocks"] if b["id"] == "ship")
    assert ship["effects"] == "irreversible"
    assert [(g["kind"], g["from"], g["quorum"]) for g in ship["gates"]] == [
        ("approval", ["bob", "carol"], 1)
    ]

    # The proposal is on the remote, not merged; the clone is back on main, clean.
    assert ui.ref(f"refs/heads/{PROPOSAL}") is not None
    assert ui.ref(f"refs/heads/{PROPOSAL}") != ui.ref("refs/heads/main")
    assert git(ui.work.path, "branch", "--show-current").strip() == "main"
    assert git(ui.work.path, "status", "--porcelain") == ""
    changed = git(ui.work.path, "diff", "--name-only", f"main...origin/{PROPOSAL}").split()
    assert changed == [
        ".alloy/artifacts/planned.json",
        ".alloy/artifacts/release-notes.json",
        ".alloy/intents/planned.yaml",
        ".alloy/intents/release-notes.yaml",
    ]
    review = run_cli(
        "alloy",
        "review",
        "--base",
        "origin/main",
        "--head",
        f"origin/{PROPOSAL}",
        "--format",
        "json",
        cwd=ui.work.path,
    )
    assert review.code == 0, review.err + review.out
    doc = json.loads(review.out)
    assert doc["blocking"] is False, doc["findings"]
    assert sorted((c["kind"], c["name"], c["change"]) for c in doc["changes"]) == [
        ("Artifact", "planned", "added"),
        ("Artifact", "release-notes", "added"),
        ("Intent", "planned", "changed"),
        ("Intent", "release-notes", "added"),
    ]
    moves = [f["message"] for f in doc["findings"] if f["kind"] == "lifecycle-move"]
    assert "lifecycle move proposed -> accepted: needs approval from alice" in moves
    assert [(s["intent"], s["event"]) for s in doc["starts"]] == [("release-notes", "apply")]


def test_the_waiting_deploy_runs_once_approved(ui_world: UiWorld) -> None:
    """The approval gate is a real one: bob's approval, merged, lets the next pass ship."""
    ui = ui_world
    deploy = ui.executions["deploy"]
    ui.approve(deploy, "bob", gate="ship")
    ui.merge("bob approves the deploy", compile_=False)
    run = ui.reconcile()
    assert run.code == 0, (run.result, run.report)
    trace = ui.trace(deploy)
    assert trace["status"] == "succeeded"
    assert "approved by bob" in trace["gates"][-1]["reason"]
    assert [line.split()[1] for line in lines(ui.mark("deploy"))] == ["plan", "ship"]
