"""Gates: each kind passes, waits or fails; expiry fails and never passes; a waiting execution
is parked and picked up by a later engine process."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from foundry.executor import RunOptions, run_execution
from foundry.gates import ApprovalVote, Context, GateEvaluator, StaticApprovals
from foundry.ids import Event
from foundry.ports import FakeClock
from tests.foundry_support import artifact, artifact_document, block

PY = sys.executable
TOUCH = "import sys; open(sys.argv[1], 'w').close()"
APPROVAL = {
    "kind": "approval",
    "from": ["bob", "team:ops"],
    "quorum": 1,
    "forbidSelf": True,
    "expiresSeconds": 3600,
}


def gated(gate: dict[str, Any], effects: str = "irreversible") -> Any:
    return artifact(
        "gated",
        [
            block("build", [PY, "-c", TOUCH, "built"]),
            block(
                "ship", [PY, "-c", TOUCH, "shipped"], needs=["build"], effects=effects, gates=[gate]
            ),
        ],
    )


def run(tmp_path: Path, art: Any, clock: FakeClock, context: Context) -> Any:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    opts = RunOptions(workdir=work, state_dir=tmp_path / "state")
    return run_execution(art, Event("apply", art.digest), opts, clock, gates=GateEvaluator(context))


class Members:
    def is_member(self, user: str, team: str) -> bool:
        return (user, team) == ("carol", "ops")


def test_approval_waits_then_passes_with_quorum(tmp_path: Path) -> None:
    art = gated(APPROVAL)
    clock = FakeClock()
    approvals = StaticApprovals()
    context = Context(initiator="alice", approvals=approvals, teams=Members())
    first = run(tmp_path, art, clock, context)
    assert first.status == "waiting"
    approvals.add(first.execution, "ship", 0, ApprovalVote("alice", "approve", clock.now()))
    approvals.add(first.execution, "ship", 0, ApprovalVote("mallory", "approve", clock.now()))
    second = run(tmp_path, art, clock, context)
    assert second.status == "waiting", "the initiator and strangers do not count"
    gate = [json.loads(x) for x in second.ledger.read_text().splitlines() if '"gate"' in x]
    assert (
        "ignored: alice (may not approve their own change), mallory (not in bob, team:ops)"
        in gate[-1]["reason"]
    )
    approvals.add(first.execution, "ship", 0, ApprovalVote("carol", "approve", clock.now()))
    third = run(tmp_path, art, clock, context)
    assert third.status == "succeeded"
    assert (tmp_path / "work" / "shipped").exists()


def test_an_expired_approval_fails_and_a_late_approval_does_not_revive_it(tmp_path: Path) -> None:
    art = gated(APPROVAL)
    clock = FakeClock()
    approvals = StaticApprovals()
    context = Context(initiator="alice", approvals=approvals)
    first = run(tmp_path, art, clock, context)
    assert first.status == "waiting"
    clock.advance(3601)
    approvals.add(first.execution, "ship", 0, ApprovalVote("bob", "approve", clock.now()))
    second = run(tmp_path, art, clock, context)
    assert second.status == "failed"
    assert second.blocks["ship"] == "failed"
    assert not (tmp_path / "work" / "shipped").exists()
    reasons = [
        json.loads(x)["reason"] for x in second.ledger.read_text().splitlines() if '"gate"' in x
    ]
    assert reasons[-1].startswith("expired at ")


def test_a_rejection_fails_the_gate(tmp_path: Path) -> None:
    art = gated(APPROVAL)
    clock = FakeClock()
    approvals = StaticApprovals()
    first = run(tmp_path, art, clock, Context(approvals=approvals))
    approvals.add(first.execution, "ship", 0, ApprovalVote("bob", "reject", clock.now()))
    assert run(tmp_path, art, clock, Context(approvals=approvals)).status == "failed"


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_window_gate_waits_outside_and_passes_inside(tmp_path: Path) -> None:
    art = gated({"kind": "window", "cron": "* 8-18 * * 1-5", "timezone": "Europe/Berlin"}, "none")
    clock = FakeClock(_at("2026-11-25T20:00:00"))  # 21:00 in Berlin, a Wednesday
    first = run(tmp_path, art, clock, Context())
    assert first.status == "waiting"
    reason = next(
        json.loads(x)["reason"] for x in first.ledger.read_text().splitlines() if '"gate"' in x
    )
    assert reason.endswith("it opens 2026-11-26 08:00 CET")
    clock.advance(12 * 3600)  # 09:00 in Berlin
    assert run(tmp_path, art, clock, Context()).status == "succeeded"


class Checks:
    def __init__(self, states: dict[str, str]) -> None:
        self.states = states

    def state(self, name: str) -> Any:
        return self.states.get(name)


def test_check_gate(tmp_path: Path) -> None:
    gate = {"kind": "check", "names": ["ci/test", "ci/lint"], "timeoutSeconds": 600}
    evaluator = GateEvaluator(Context(checks=Checks({"ci/test": "success", "ci/lint": "pending"})))
    art = gated(gate, "none")
    ship = art.block("ship")
    assert evaluator.evaluate("e", art, ship, 0, now=100.0).decision == "waiting"
    assert (
        evaluator.evaluate("e", art, ship, 0, now=800.0, waiting_since=100.0).decision == "failed"
    )
    evaluator.context.checks = Checks({"ci/test": "success", "ci/lint": "success"})
    assert evaluator.evaluate("e", art, ship, 0, now=100.0).decision == "passed"
    evaluator.context.checks = Checks({"ci/test": "failure", "ci/lint": "success"})
    outcome = evaluator.evaluate("e", art, ship, 0, now=100.0)
    assert (outcome.decision, outcome.reason) == ("failed", "check(s) failed: ci/test")


class History:
    def __init__(self, last: float | None) -> None:
        self.last = last

    def last_success(self, intent: str) -> float | None:
        return self.last if intent == "ci-green" else None


def test_after_gate() -> None:
    art = gated({"kind": "after", "intent": "ci-green", "withinSeconds": 3600}, "none")
    ship = art.block("ship")
    assert (
        GateEvaluator(Context(history=History(None)))
        .evaluate("e", art, ship, 0, now=10_000.0)
        .decision
        == "waiting"
    )
    assert (
        GateEvaluator(Context(history=History(9_000.0)))
        .evaluate("e", art, ship, 0, now=10_000.0)
        .decision
        == "passed"
    )
    assert (
        GateEvaluator(Context(history=History(1.0)))
        .evaluate("e", art, ship, 0, now=10_000.0)
        .decision
        == "waiting"
    )


@pytest.mark.parametrize(("code", "decision"), [(0, "passed"), (75, "waiting"), (1, "failed")])
def test_command_gate_runs_the_policy_from_its_own_checkout(
    tmp_path: Path, code: int, decision: str
) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "check.py").write_text(f"import sys; print('policy says {code}'); sys.exit({code})")
    art = gated({"kind": "command", "run": [PY, "check.py"], "timeoutSeconds": 30}, "none")
    outcome = GateEvaluator(Context(policy_dir=policy)).evaluate(
        "e", art, art.block("ship"), 0, now=0.0
    )
    assert outcome.decision == decision
    assert f"policy says {code}" in outcome.reason


ENGINE = """
import json, sys
from pathlib import Path
from foundry.boundary import read_artifact
from foundry.executor import RunOptions, run_execution
from foundry.gates import ApprovalVote, Context, GateEvaluator, StaticApprovals
from foundry.ids import Event
from foundry.ports import SystemClock
root = Path(sys.argv[1])
art = read_artifact(".alloy/artifacts/gated.json", (root / "artifact.json").read_bytes())
approvals = StaticApprovals()
votes = root / "votes.json"
for v in (json.loads(votes.read_text()) if votes.exists() else []):
    approvals.add(v["execution"], v["block"], v["index"], ApprovalVote(v["approver"], v["decision"], 0.0))
result = run_execution(
    art, Event("apply", art.digest),
    RunOptions(workdir=root / "work", state_dir=root / "state"),
    SystemClock(), gates=GateEvaluator(Context(initiator="alice", approvals=approvals)),
)
print(json.dumps({"execution": result.execution, "status": result.status}))
"""


def test_a_parked_execution_is_resumed_by_a_new_engine_process(tmp_path: Path) -> None:
    document = artifact_document(
        "gated",
        [
            block("build", [PY, "-c", "open('count', 'a').write('b')"]),
            block(
                "ship",
                [PY, "-c", TOUCH, "shipped"],
                needs=["build"],
                effects="irreversible",
                gates=[{"kind": "approval", "from": ["bob"], "quorum": 1, "forbidSelf": True}],
            ),
        ],
    )
    (tmp_path / "artifact.json").write_text(json.dumps(document))
    (tmp_path / "work").mkdir()

    def engine() -> dict[str, str]:
        out = subprocess.run(
            [PY, "-c", ENGINE, str(tmp_path)], capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    first = engine()
    assert first["status"] == "waiting"
    (tmp_path / "votes.json").write_text(
        json.dumps(
            [
                {
                    "execution": first["execution"],
                    "block": "ship",
                    "index": 0,
                    "approver": "bob",
                    "decision": "approve",
                },
            ]
        )
    )
    second = engine()
    assert second == {"execution": first["execution"], "status": "succeeded"}
    assert (tmp_path / "work" / "shipped").exists()
    assert (tmp_path / "work" / "count").read_text() == "b", "build ran once, across both processes"


def test_an_indeterminate_block_is_resolved_by_an_owner(tmp_path: Path) -> None:
    art = artifact(
        "ind",
        [
            block(
                "x",
                ["true"],
                effects="irreversible",
                gates=[{"kind": "approval", "from": ["bob"], "quorum": 1, "forbidSelf": False}],
            )
        ],
    )
    evaluator = GateEvaluator(Context(approvals=StaticApprovals()))
    assert evaluator.resolve_indeterminate("e", art, art.block("x")) is None
    assert isinstance(evaluator.context.approvals, StaticApprovals)
    evaluator.context.approvals.add("e", "x", -1, ApprovalVote("mallory", "approve", 0))
    assert evaluator.resolve_indeterminate("e", art, art.block("x")) is None, "only owners decide"
    evaluator.context.approvals.add("e", "x", -1, ApprovalVote("alice", "approve", 0))
    assert evaluator.resolve_indeterminate("e", art, art.block("x")) == "approve"
