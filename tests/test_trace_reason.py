"""The Trace of an unfinished execution always says its current reason (issue 11): queued in its
lane (and then `queued`, not the stale `waiting` of an earlier pass), waiting on gates,
indeterminate, running or planned. Unit tests on hand-written ledgers, and the reported case
reproduced under `foundry reconcile` on a real remote."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from alloy.model import Trace
from foundry.state import status_of
from foundry.traces import EXECUTION_STATUSES, markdown_summary, otlp_json, trace_document
from tests.foundry_support import block
from tests.reconcile_support import World, lane_intent, lines, run_host, wait_for
from tests.test_traces import SCHEMA, Ledgers, make_artifact, valid

APPROVAL = {"kind": "approval", "from": ["alice"], "quorum": 1, "forbidSelf": True}
WINDOW = {"kind": "window", "cron": "* 8-18 * * 1-5", "timezone": "UTC"}
LANE = {"name": "deploy", "limit": 1, "queue": "fifo", "cancelRunning": False}
#: build, then ship (an approval) and tell (an approval, then a window), both after build.
ART = make_artifact(
    "deploy",
    [
        block("build", ["true"]),
        block("ship", ["true"], needs=["build"], gates=[APPROVAL]),
        block("tell", ["true"], needs=["build"], gates=[APPROVAL, WINDOW]),
    ],
)
FULL = "lane deploy is full (1 of 1); 1st in queue"
NO_APPROVAL = "0 of 1 approval(s) from alice"


def _trace(ledger: Ledgers) -> dict[str, Any]:
    """The trace of `ledger`, valid for both sides of the boundary."""
    trace = valid(trace_document(ledger.records, ART))
    Trace.model_validate(trace)  # Alloy's reader (`alloy status`) takes it too
    # `foundry plan` and `traces list` read the same ledger the same way.
    assert status_of(ledger.records) == trace["spec"]["status"]
    return trace


def _lane(ledger: Ledgers, decision: str, reason: str, at: str) -> Ledgers:
    return ledger.add("lane", at=at, lane="deploy", decision=decision, reason=reason, cancel=[])


def _built(ledger: Ledgers) -> Ledgers:
    """The lane let it in, and build succeeded."""
    _lane(
        ledger, "granted", "lane deploy had a free slot (1 of 1 now held)", "2026-11-25T02:00:00Z"
    )
    return ledger.attempt("build", 1, "succeeded", 0).add(
        "block-finished", block="build", status="succeeded", reason=""
    )


def _gate(
    ledger: Ledgers, block_id: str, index: int, decision: str, reason: str, *, at: str
) -> Ledgers:
    kind = "window" if index == 1 else "approval"
    return ledger.add(
        "gate", at=at, block=block_id, index=index, kind=kind, decision=decision, reason=reason
    )


def _statuses(trace: dict[str, Any]) -> dict[str, str]:
    return {b["id"]: b["status"] for b in trace["spec"]["blocks"]}


# --- the reason, on hand-written ledgers ---------------------------------------------------


def test_foundry_writes_exactly_the_statuses_the_boundary_enumerates() -> None:
    enum = SCHEMA["$defs"]["TraceSpec"]["properties"]["status"]["enum"]
    assert sorted(EXECUTION_STATUSES) == sorted(enum)
    assert "queued" in enum


def test_a_gate_waited_then_the_lane_queued_it_says_queued_with_the_lanes_reason() -> None:
    ledger = _built(Ledgers(ART))
    _gate(ledger, "ship", 0, "waiting", NO_APPROVAL, at="2026-11-25T02:01:00Z")
    _lane(ledger, "queued", FULL, "2026-11-25T02:05:00Z")
    spec = _trace(ledger)["spec"]
    assert spec["status"] == "queued"
    assert spec["reason"] == f"queued in lane deploy: {FULL}"
    assert spec["finishedAt"] is None
    # Its gate waited in an earlier pass; now the lane holds it: pending, not waiting.
    assert _statuses({"spec": spec}) == {"build": "succeeded", "ship": "pending", "tell": "pending"}
    # The gate list keeps the history, with its time.
    assert [(g["block"], g["decision"], g["reason"], g["at"]) for g in spec["gates"]] == [
        ("ship", "waiting", NO_APPROVAL, "2026-11-25T02:01:00Z")
    ]


def test_queued_then_granted_then_waiting_says_the_gates_reason() -> None:
    """A grant ends the queued state; the gate said the same as before, so the engine wrote no
    new gate record: the reason is still that gate's latest."""
    ledger = _built(Ledgers(ART))
    _gate(ledger, "ship", 0, "waiting", NO_APPROVAL, at="2026-11-25T02:01:00Z")
    _lane(ledger, "queued", FULL, "2026-11-25T02:05:00Z")
    _lane(
        ledger, "granted", "lane deploy had a free slot (1 of 1 now held)", "2026-11-25T02:09:00Z"
    )
    spec = _trace(ledger)["spec"]
    assert spec["status"] == "waiting"
    assert spec["reason"] == f"waiting on block ship gate 0 (approval): {NO_APPROVAL}"
    assert _statuses({"spec": spec})["ship"] == "waiting"
    # And when the gate says something new, that is the reason.
    _gate(ledger, "ship", 0, "waiting", "1 of 2 approval(s) from alice", at="2026-11-25T02:09:01Z")
    assert _trace(ledger)["spec"]["reason"] == (
        "waiting on block ship gate 0 (approval): 1 of 2 approval(s) from alice"
    )


def test_a_later_record_than_the_queued_one_ends_the_queued_state() -> None:
    """Anything the engine did after the lane queued it shows it got further (a merged
    ledger's attempt, say): the trace goes by that."""
    ledger = _lane(Ledgers(ART), "queued", FULL, "2026-11-25T02:00:00Z")
    ledger.add("attempt-started", block="build", attempt=1, effects="none")
    spec = _trace(ledger)["spec"]
    assert spec["status"] == "running"
    assert spec["reason"] == "running: build (attempt 1)"


def test_queued_before_anything_ran_and_rate_limited_are_queued() -> None:
    spec = _trace(_lane(Ledgers(ART), "queued", FULL, "2026-11-25T02:00:00Z"))["spec"]
    assert (spec["status"], spec["reason"]) == ("queued", f"queued in lane deploy: {FULL}")
    assert set(_statuses({"spec": spec}).values()) == {"pending"}
    said = "lane deploy allows 1 start(s) per 3600s and has made 1 in that time"
    spec = _trace(_lane(_built(Ledgers(ART)), "rate-limited", said, "2026-11-25T02:05:00Z"))["spec"]
    assert (spec["status"], spec["reason"]) == (
        "queued",
        f"queued in lane deploy (rate-limited): {said}",
    )


def test_a_lane_that_turned_it_away_ends_it_as_before() -> None:
    ledger = _lane(Ledgers(ART), "rejected", "lane deploy is full", "2026-11-25T02:00:00Z")
    ledger.add("execution-finished", status="skipped")
    spec = _trace(ledger)["spec"]
    assert spec["status"] == "skipped"
    assert "reason" not in spec  # finished: a reason only when the ledger's end gives one


def test_the_waiting_reason_lists_every_waiting_gate() -> None:
    """Two blocks wait: ship on its approval, tell on its window (its approval passed). The
    passed gate is not listed; each waiting gate is, with block, index, kind and reason."""
    ledger = _built(Ledgers(ART))
    _gate(ledger, "ship", 0, "waiting", NO_APPROVAL, at="2026-11-25T02:01:00Z")
    _gate(ledger, "tell", 0, "waiting", NO_APPROVAL, at="2026-11-25T02:01:00Z")
    _gate(ledger, "tell", 0, "passed", "1 of 1 approval(s) from alice", at="2026-11-25T02:03:00Z")
    _gate(ledger, "tell", 1, "waiting", "opens at 2026-11-25T08:00Z", at="2026-11-25T02:03:00Z")
    spec = _trace(ledger)["spec"]
    assert spec["status"] == "waiting"
    assert spec["reason"] == (
        f"waiting on block ship gate 0 (approval): {NO_APPROVAL}; "
        "block tell gate 1 (window): opens at 2026-11-25T08:00Z"
    )
    assert len(spec["gates"]) == 4  # the whole history stays


def test_the_indeterminate_reason_names_the_block_and_the_approval_it_needs() -> None:
    ledger = Ledgers(ART)
    ledger.add("attempt-started", block="build", attempt=1, effects="irreversible")
    ledger.add("indeterminate", block="build", attempt=1, reason="the engine stopped")
    spec = _trace(ledger)["spec"]
    assert spec["status"] == "indeterminate"
    assert spec["reason"] == (
        "block build is indeterminate (the engine stopped); waiting for an owner's Approval "
        f"(alloy approve {ledger.execution} --gate build --resolve, or --reject to fail it)"
    )


def test_planned_and_running_say_so() -> None:
    ledger = Ledgers(ART)
    assert _trace(ledger)["spec"]["reason"] == "planned: no block has started yet"
    ledger.add("attempt-started", block="build", attempt=1, effects="none")
    assert _trace(ledger)["spec"]["reason"] == "running: build (attempt 1)"
    ledger.add(
        "attempt-finished", block="build", attempt=1, outcome="failed", exitCode=75, outputs=[]
    )
    assert _trace(ledger)["spec"]["reason"] == (
        "running: between attempts of build (attempt 1 ended failed); it runs again"
    )
    ledger.add("attempt-started", block="build", attempt=2, effects="none")
    ledger.add(
        "attempt-finished", block="build", attempt=2, outcome="succeeded", exitCode=0, outputs=[]
    )
    ledger.add("block-finished", block="build", status="succeeded", reason="")
    spec = _trace(ledger)["spec"]
    assert (spec["status"], spec["reason"]) == (
        "running",
        "running: no block runs at this moment; next: ship, tell",
    )


def test_summaries_and_exports_carry_the_queued_status_and_its_reason() -> None:
    ledger = _built(Ledgers(ART))
    _gate(ledger, "ship", 0, "waiting", NO_APPROVAL, at="2026-11-25T02:01:00Z")
    _lane(ledger, "queued", FULL, "2026-11-25T02:05:00Z")
    trace = _trace(ledger)
    summary = markdown_summary(trace)
    assert summary.startswith("⏳ **queued**")
    assert f"Why: queued in lane deploy: {FULL}" in summary
    [root] = [
        span
        for span in otlp_json(trace)["resourceSpans"][0]["scopeSpans"][0]["spans"]
        if "parentSpanId" not in span
    ]
    attributes = {a["key"]: a["value"] for a in root["attributes"]}
    assert attributes["foundry.execution.status"] == {"stringValue": "queued"}
    assert attributes["foundry.execution.reason"] == {
        "stringValue": f"queued in lane deploy: {FULL}"
    }


def test_alloy_status_reads_a_queued_trace_as_unfinished() -> None:
    """`alloy status` takes the new status (no "bad trace" warning), and a `missing` from a
    queued execution is not final: the older execution's evidence stands."""
    from alloy.load import parse
    from alloy.model import Intent
    from alloy.status import ArtifactState, IntentInput, Source, build_status

    fixtures = Path(__file__).resolve().parent / "fixtures" / "boundary" / "v1"
    golden = json.loads((fixtures / "trace-succeeded.json").read_text())
    model = Intent.model_validate(
        parse((fixtures / "intent-nightly-benchmarks.yaml").read_text()).data
    )
    digest = golden["spec"]["artifact"]["digest"]
    queued = json.loads(json.dumps(golden))
    queued["metadata"]["name"] = "exe-000000000000000b"
    queued["spec"].update(
        status="queued",
        startedAt="2026-11-26T02:00:00Z",
        finishedAt=None,
        reason="queued in lane bench: lane bench is full (1 of 1); 1st in queue",
        blocks=[{"id": b["id"], "status": "pending"} for b in golden["spec"]["blocks"]],
        evidence=[{**e, "digest": None, "status": "missing"} for e in golden["spec"]["evidence"]],
    )
    valid(queued)
    files = {
        "traces/nightly-benchmarks/exe-0123456789abcdef.json": json.dumps(golden).encode(),
        "traces/nightly-benchmarks/exe-000000000000000b.json": json.dumps(queued).encode(),
    }
    artifact = ArtifactState("nightly-benchmarks", "unused", digest, "current")
    inputs = {"nightly-benchmarks": IntentInput("unused", model, digest, artifact)}
    report = build_status(inputs, files, Source("alloy/traces", "refs/heads/alloy/traces", "c"))
    assert report.warnings == []
    [item] = report.to_json()["intents"]
    assert [(e["id"], e["status"]) for e in item["executions"]] == [
        ("exe-000000000000000b", "queued"),
        ("exe-0123456789abcdef", "succeeded"),
    ]
    assert (item["evidence"][0]["status"], item["evidence"][0]["execution"]) == (
        "produced",
        "exe-0123456789abcdef",
    )


# --- the reported case, end to end ---------------------------------------------------------

APPROVAL_GATE = "        gates:\n          - approval: {from: [alice], quorum: 1}\n"


def _first_in_lane(log: Path, go: Path) -> str:
    """A deploy that holds lane `deploy` until the file `go` appears."""
    where, until = json.dumps(str(log)), json.dumps(str(go))
    return lane_intent(
        "first",
        f"echo enter >> {where}; i=0; while [ ! -f {until} ] && [ $i -lt 400 ]; "
        f"do sleep 0.1; i=$((i+1)); done; echo exit >> {where}",
    )


def test_an_approved_execution_queued_behind_another_says_queued_not_waiting(
    world: World,
) -> None:
    """B waits on an approval; A takes lane `deploy` (limit 1) and holds it; the approval is
    merged while A still runs; B's next pass (another host) finds the lane full. B's trace must
    say `queued` with the lane's reason, not the stale "0 of 1 approval(s)" waiting."""
    world.work.write(
        {".alloy/intents/second.yaml": lane_intent("second", "echo shipped") + APPROVAL_GATE}
    )
    world.merge("add the gated deploy")
    code, report = run_host(world, "b")
    assert code == 5, report
    [second] = report["started"]
    assert world.trace(second)["status"] == "waiting"
    assert world.trace(second)["reason"] == (
        "waiting on block work gate 0 (approval): 0 of 1 approval(s) from alice"
    )

    log, go = world.tmp / "first.log", world.tmp / "go"
    world.work.write({".alloy/intents/first.yaml": _first_in_lane(log, go)})
    world.merge("add the deploy that holds the lane")
    holder = subprocess.Popen(
        world.command(host="a"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for("the first deploy to hold the lane", lambda: "enter" in lines(log))
        world.alloy("approve", second, "--gate", "work", "--comment", "ok", "--approver", "alice")
        world.merge("approve the gated deploy", compile_=False)
        code, report = run_host(world, "b")
        assert code == 5, report  # queued in its lane: run again later
        assert report["resumed"] == [second], report
        trace = world.trace(second)
        assert trace["status"] == "queued", trace
        assert trace["reason"].startswith("queued in lane deploy: lane deploy is full"), trace
        assert [b["status"] for b in trace["blocks"]] == ["pending"]
        # The gate list keeps the history: the gate did wait, with its reason and time.
        assert [(g["decision"], g["reason"][:25]) for g in trace["gates"]] == [
            ("waiting", "0 of 1 approval(s) from a")
        ]
    finally:
        go.touch()
        _out, err = holder.communicate(timeout=120)
    assert holder.returncode in (0, 5), err
    assert lines(log) == ["enter", "exit"]

    code, report = run_host(world, "b")  # the lane is free: the approved deploy runs
    assert code == 0, report
    trace = world.trace(second)
    assert trace["status"] == "succeeded", trace
    assert "reason" not in trace
    assert [g["decision"] for g in trace["gates"]] == ["waiting", "passed"]
