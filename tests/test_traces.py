"""Traces derived from real executions (real processes, the real ledger) and from hand-written
ledgers where a state is hard to reach: the Trace validates against the boundary schema, the
Markdown summary stays within its limit, the OTLP/JSON parses with the official protobuf
definitions, the in-toto statement has the SLSA provenance shape, and secrets never leak."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import foundry.traces
from foundry.boundary import Artifact, Block, digest_of, read_artifact
from foundry.executor import GateOutcome, RunOptions, run_execution
from foundry.ids import Event, execution_id
from foundry.ledger import Ledger, rfc3339
from foundry.ports import FakeClock
from foundry.traces import (
    BUILD_TYPE,
    BUILDER_ID,
    TraceError,
    intoto_statement,
    markdown_summary,
    otlp_json,
    planned_inputs,
    span_id,
    trace_bundle,
    trace_document,
    trace_id,
)
from tests.foundry_support import artifact_document, block

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "schemas/alloy.dev/v1/trace.schema.json").read_text())
GOLDEN = ROOT / "tests/fixtures/boundary/v1"
START = 1_764_000_000.0  # FakeClock's start: every ledger time of a run on it
T0 = rfc3339(START)
SECRET = "hunter2-correct-horse"


# -- helpers -------------------------------------------------------------------------------


def make_artifact(
    name: str, blocks: list[dict[str, Any]], acceptance: list[dict[str, Any]] | None = None
) -> Artifact:
    document = artifact_document(name, blocks)
    document["spec"]["intent"]["acceptance"] = acceptance or []
    document["digest"] = digest_of({k: v for k, v in document.items() if k != "digest"})
    return read_artifact(f".alloy/artifacts/{name}.json", json.dumps(document).encode())


def run(
    tmp_path: Path, art: Artifact, *, gates: Any = None, **kwargs: Any
) -> tuple[list[dict[str, Any]], Path]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    opts = RunOptions(workdir=work, state_dir=tmp_path / "state", kill_grace=0.2, **kwargs)
    result = run_execution(art, Event("apply", art.digest), opts, FakeClock(START), gates=gates)
    return read_records(result.ledger), work


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def valid(trace: dict[str, Any]) -> dict[str, Any]:
    jsonschema.validate(trace, SCHEMA)
    return trace


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


class Ledgers:
    """Hand-written ledger records of one execution of `art`, in order."""

    def __init__(self, art: Artifact, *, key: str | None = None) -> None:
        self.art = art
        self.records: list[dict[str, Any]] = []
        event = Event("apply", key or art.digest)
        self.execution = execution_id(art.digest, event)
        self.add(
            "planned",
            execution=self.execution,
            artifact={"name": art.metadata.name, "digest": art.digest},
            event={"type": event.type, "key": event.key},
            inputs={},
            dryRun=False,
        )

    def add(self, kind: str, /, at: str = T0, **fields: Any) -> Ledgers:
        self.records.append({"seq": len(self.records) + 1, "at": at, "type": kind, **fields})
        return self

    def attempt(self, block_id: str, number: int, outcome: str, code: int | None) -> Ledgers:
        self.add("attempt-started", block=block_id, attempt=number, effects="none")
        return self.add(
            "attempt-finished",
            block=block_id,
            attempt=number,
            outcome=outcome,
            exitCode=code,
            durationMs=10,
            logDigest="sha256:" + "a" * 64,
            logTail=f"{block_id} attempt {number}\n",
            outputs=[],
        )


class Gates:
    """Gates decided by a dict the test changes; indeterminate blocks resolved the same way."""

    def __init__(self) -> None:
        self.decisions: dict[str, str] = {}

    def evaluate(
        self,
        execution: str,
        artifact: Artifact,
        block: Block,
        index: int,
        *,
        now: float,
        waiting_since: float | None = None,
    ) -> GateOutcome:
        decision = self.decisions.get(f"{block.id}.{index}", "waiting")
        return GateOutcome(decision, f"0 of 1 approvals from bob ({decision})")  # type: ignore[arg-type]

    def resolve_indeterminate(
        self, execution: str, artifact: Artifact, block: Block
    ) -> Literal["approve", "reject"] | None:
        return self.decisions.get(f"{block.id}.indeterminate")  # type: ignore[return-value]


TWO = make_artifact("two", [block("a", ["true"]), block("b", ["true"], needs=["a"])])


# -- the Trace document --------------------------------------------------------------------


def test_the_golden_trace_validates() -> None:
    valid(json.loads((GOLDEN / "trace-succeeded.json").read_text()))


def test_a_ledger_of_the_golden_story_gives_the_golden_trace() -> None:
    """The golden fixture is what this reader makes of the ledger that tells its story."""
    golden = json.loads((GOLDEN / "trace-succeeded.json").read_text())
    art = read_artifact(
        "artifact-nightly-benchmarks.json",
        (GOLDEN / "artifact-nightly-benchmarks.json").read_bytes(),
    )
    output = {"path": "results.json", "digest": "sha256:" + "2" * 64, "size": 5120}
    records: list[dict[str, Any]] = [
        {
            "seq": 1,
            "at": "2026-11-25T02:00:03Z",
            "type": "planned",
            "execution": "exe-0123456789abcdef",
            "artifact": {"name": art.metadata.name, "digest": art.digest},
            "event": {"type": "schedule", "key": "2026-11-25T02:00:00Z"},
            "inputs": {"ref": "main"},
        },
        {
            "seq": 2,
            "at": "2026-11-25T02:00:03Z",
            "type": "attempt-started",
            "block": "bench",
            "attempt": 1,
            "effects": "none",
        },
        {
            "seq": 3,
            "at": "2026-11-25T02:04:10Z",
            "type": "attempt-finished",
            "block": "bench",
            "attempt": 1,
            "outcome": "succeeded",
            "exitCode": 0,
            "durationMs": 247000,
            "logDigest": "sha256:" + "1" * 64,
            "logTail": "ran 42 benchmarks\n",
            "outputs": [output],
        },
        {
            "seq": 4,
            "at": "2026-11-25T02:04:10Z",
            "type": "block-finished",
            "block": "bench",
            "status": "succeeded",
            "reason": "",
        },
        {
            "seq": 5,
            "at": "2026-11-25T02:04:10Z",
            "type": "gate",
            "block": "publish",
            "index": 0,
            "kind": "approval",
            "decision": "waiting",
            "reason": "0 of 1 approvals from team:perf",
        },
        {
            "seq": 6,
            "at": "2026-11-25T02:04:10Z",
            "type": "execution-finished",
            "status": "succeeded",
        },
    ]
    expected = copy.deepcopy(golden)
    expected["spec"]["artifact"]["digest"] = art.digest  # the fixture's digest is a placeholder
    assert valid(trace_document(records, art)) == expected


def test_a_succeeded_execution(tmp_path: Path) -> None:
    make = "open('results.json', 'w').write('{\"ok\": true}'); print('hello')"
    art = make_artifact(
        "bench",
        [
            block("bench", [PY, "-c", make], outputs=["results.json"]),
            block("report", ["true"], needs=["bench"]),
        ],
        acceptance=[
            {
                "id": "AC-1",
                "statement": "Results are kept.",
                "evidence": {"block": "bench", "output": "./results.json"},
            },
            {"id": "AC-2", "statement": "Someone reads them."},
        ],
    )
    records, work = run(tmp_path, art)
    trace = valid(trace_document(records, art))
    spec = trace["spec"]
    digest = sha256(work / "results.json")
    assert trace["metadata"] == {"name": execution_id(art.digest, Event("apply", art.digest))}
    assert spec["intent"] == "bench"
    assert spec["artifact"] == {"name": "bench", "digest": art.digest}
    assert spec["event"] == {"type": "apply", "key": art.digest}
    assert (spec["status"], spec["startedAt"], spec["finishedAt"]) == ("succeeded", T0, T0)
    assert [(b["id"], b["status"]) for b in spec["blocks"]] == [
        ("bench", "succeeded"),
        ("report", "succeeded"),
    ]
    [attempt] = spec["blocks"][0]["attempts"]
    assert attempt["number"] == 1
    assert (attempt["startedAt"], attempt["finishedAt"]) == (T0, T0)
    assert (attempt["exitCode"], attempt["outcome"], attempt["logTail"]) == (
        0,
        "succeeded",
        "hello\n",
    )
    assert attempt["logDigest"] == "sha256:" + hashlib.sha256(b"hello\n").hexdigest()
    assert isinstance(attempt["durationMs"], int)
    assert spec["blocks"][0]["outputs"] == [{"path": "results.json", "digest": digest, "size": 12}]
    assert spec["gates"] == []
    # AC-2 names no evidence, so it has no entry; the link's "./" does not hide the output.
    assert spec["evidence"] == [
        {
            "acceptance": "AC-1",
            "block": "bench",
            "output": "./results.json",
            "digest": digest,
            "status": "produced",
        },
    ]


def test_a_failed_execution_with_retries(tmp_path: Path) -> None:
    fail = "import sys; print('attempt', flush=True); sys.exit(75)"
    art = make_artifact(
        "flaky",
        [
            block(
                "work",
                [PY, "-c", fail],
                outputs=["out.txt"],
                retry={"max": 2, "backoffSeconds": 30, "onExitCodes": [75]},
            ),
            block("after", ["true"], needs=["work"]),
        ],
        acceptance=[
            {
                "id": "AC-1",
                "statement": "It works.",
                "evidence": {"block": "work", "output": "out.txt"},
            }
        ],
    )
    records, _ = run(tmp_path, art)
    spec = valid(trace_document(records, art))["spec"]
    assert spec["status"] == "failed"
    after, work = spec["blocks"]  # in the artifact's order: by id
    assert (work["status"], after["status"]) == ("failed", "skipped")
    assert [(a["number"], a["outcome"], a["exitCode"]) for a in work["attempts"]] == [
        (1, "failed", 75),
        (2, "failed", 75),
        (3, "failed", 75),
    ]
    # The backoff waited on the injected clock, so the attempts are 30 s apart in the ledger.
    assert [a["startedAt"] for a in work["attempts"]] == [
        T0,
        rfc3339(START + 30),
        rfc3339(START + 60),
    ]
    assert work["outputs"] == after["attempts"] == []
    assert spec["evidence"] == [
        {
            "acceptance": "AC-1",
            "block": "work",
            "output": "out.txt",
            "digest": None,
            "status": "missing",
        },
    ]


def test_an_execution_waiting_on_a_gate_and_after_it_passes(tmp_path: Path) -> None:
    gate = {"kind": "approval", "from": ["bob"], "quorum": 1, "forbidSelf": True}
    art = make_artifact(
        "gated",
        [
            block("build", ["true"]),
            block("ship", ["true"], needs=["build"], effects="irreversible", gates=[gate]),
        ],
    )
    gates = Gates()
    records, _ = run(tmp_path, art, gates=gates)
    spec = valid(trace_document(records, art))["spec"]
    assert (spec["status"], spec["finishedAt"]) == ("waiting", None)
    assert [(b["id"], b["status"]) for b in spec["blocks"]] == [
        ("build", "succeeded"),
        ("ship", "waiting"),
    ]
    assert spec["gates"] == [
        {
            "block": "ship",
            "index": 0,
            "kind": "approval",
            "decision": "waiting",
            "reason": "0 of 1 approvals from bob (waiting)",
            "at": T0,
        },
    ]
    gates.decisions["ship.0"] = "passed"
    records, _ = run(tmp_path, art, gates=gates)
    spec = valid(trace_document(records, art))["spec"]
    assert spec["status"] == "succeeded"
    assert [g["decision"] for g in spec["gates"]] == ["waiting", "passed"]
    assert [b["status"] for b in spec["blocks"]] == ["succeeded", "succeeded"]


def test_an_indeterminate_execution_and_its_resolution(tmp_path: Path) -> None:
    """A crash during an irreversible attempt (a ledger that ends after attempt-started), then a
    real run: recovery makes it indeterminate; an approval lets it go on."""
    art = make_artifact(
        "deploy",
        [
            block("push", ["true"], effects="irreversible"),
            block("notify", ["true"], needs=["push"]),
        ],
    )
    event = Event("apply", art.digest)
    execution = execution_id(art.digest, event)
    with Ledger(tmp_path / "state" / "executions" / execution / "ledger.jsonl") as ledger:
        ledger.append(
            {
                "type": "planned",
                "execution": execution,
                "artifact": {"name": art.metadata.name, "digest": art.digest},
                "event": {"type": "apply", "key": art.digest},
                "inputs": {},
                "dryRun": False,
            },
            at=START,
        )
        ledger.append(
            {"type": "attempt-started", "block": "push", "attempt": 1, "effects": "irreversible"},
            at=START + 1,
        )
    gates = Gates()
    records, _ = run(tmp_path, art, gates=gates)
    spec = valid(trace_document(records, art))["spec"]
    assert spec["status"] == "indeterminate"
    notify, push = spec["blocks"]
    assert (push["status"], notify["status"]) == ("indeterminate", "pending")
    assert push["attempts"] == [
        {
            "number": 1,
            "startedAt": rfc3339(START + 1),
            "finishedAt": None,
            "durationMs": None,
            "exitCode": None,
            "outcome": None,
            "logDigest": None,
            "logTail": None,
        },
    ]
    gates.decisions["push.indeterminate"] = "approve"
    records, _ = run(tmp_path, art, gates=gates)
    spec = valid(trace_document(records, art))["spec"]
    assert spec["status"] == "succeeded"
    assert [b["status"] for b in spec["blocks"]] == ["succeeded", "succeeded"]


@pytest.mark.parametrize(
    ("story", "status", "blocks"),
    [
        pytest.param(lambda led: led, "planned", ["pending", "pending"], id="planned"),
        pytest.param(
            lambda led: led.add("attempt-started", block="a", attempt=1, effects="none"),
            "running",
            ["running", "pending"],
            id="an attempt runs",
        ),
        pytest.param(
            lambda led: (
                led.attempt("a", 1, "succeeded", 0)
                .add("block-finished", block="a", status="succeeded")
                .add("gate", block="b", index=0, kind="approval", decision="waiting", reason="r")
            ),
            "waiting",
            ["succeeded", "waiting"],
            id="parked on a gate",
        ),
        pytest.param(
            lambda led: led.add(
                "gate", block="b", index=0, kind="check", decision="waiting", reason="r"
            ).attempt("a", 1, "failed", 75),
            "running",
            ["pending", "waiting"],
            id="a retry is due while another block waits",
        ),
        pytest.param(
            lambda led: (
                led.add("gate", block="b", index=0, kind="approval", decision="waiting", reason="r")
                .add("attempt-started", block="a", attempt=1, effects="reversible")
                .add("indeterminate", block="a", attempt=1, reason="crashed")
            ),
            "indeterminate",
            ["indeterminate", "waiting"],
            id="indeterminate beats waiting",
        ),
        pytest.param(
            lambda led: (
                led.add("attempt-started", block="a", attempt=1, effects="reversible")
                .add("indeterminate", block="a", attempt=1, reason="crashed")
                .add("resolved", block="a", decision="reject", by="bob")
                .add("block-finished", block="a", status="failed", reason="rejected")
            ),
            "running",
            ["failed", "pending"],
            id="a resolved indeterminate is not",
        ),
        pytest.param(
            lambda led: (
                led.add("gate", block="a", index=0, kind="window", decision="waiting", reason="r")
                .add("gate", block="a", index=0, kind="window", decision="passed", reason="r")
                .add("attempt-started", block="a", attempt=1, effects="none")
            ),
            "running",
            ["running", "pending"],
            id="a gate that passed no longer waits",
        ),
        pytest.param(
            lambda led: (
                led.add("block-finished", block="a", status="cancelled", reason="c")
                .add("block-finished", block="b", status="cancelled", reason="c")
                .add("execution-finished", status="cancelled")
            ),
            "cancelled",
            ["cancelled", "cancelled"],
            id="cancelled",
        ),
        pytest.param(
            lambda led: led.add("block-finished", block="a", status="succeeded").add(
                "some-future-record", block="a", detail=1
            ),
            "running",
            ["succeeded", "pending"],
            id="unknown record types add nothing",
        ),
        pytest.param(
            lambda led: led.add(
                "lane", lane="bench", decision="queued", reason="1 of 1 slots taken", cancel=[]
            ),
            "queued",
            ["pending", "pending"],
            id="queued in a lane: nothing started yet",
        ),
        pytest.param(
            lambda led: led.add(
                "lane", lane="bench", decision="superseded", reason="a newer one", cancel=[]
            ).add("execution-finished", status="skipped"),
            "skipped",
            ["pending", "pending"],
            id="skipped by its lane",
        ),
    ],
)
def test_the_status_of_an_unfinished_ledger(story: Any, status: str, blocks: list[str]) -> None:
    trace = valid(trace_document(story(Ledgers(TWO)).records, TWO))
    assert trace["spec"]["status"] == status
    assert [b["status"] for b in trace["spec"]["blocks"]] == blocks


def test_records_that_are_not_an_executions_ledger_are_refused() -> None:
    with pytest.raises(TraceError, match="no 'planned' record"):
        trace_document([], TWO)
    other = make_artifact("other", [block("a", ["true"])])
    with pytest.raises(TraceError, match="pass the artifact the ledger names"):
        trace_document(Ledgers(other).records, TWO)
    bad_time = Ledgers(TWO).add(
        "gate",
        at="2026-11-25 02:00",
        block="a",
        index=0,
        kind="check",
        decision="waiting",
        reason="r",
    )
    with pytest.raises(TraceError, match="not an RFC 3339 UTC time"):
        trace_document(bad_time.records, TWO)
    unknown_decision = Ledgers(TWO).add(
        "gate", block="a", index=0, kind="check", decision="maybe", reason="r"
    )
    with pytest.raises(TraceError, match="decision 'maybe' is not one of waiting, passed"):
        trace_document(unknown_decision.records, TWO)
    bad_output = Ledgers(TWO).add(
        "attempt-finished", block="a", attempt=1, outcome="succeeded", outputs=[{"path": "x"}]
    )
    with pytest.raises(TraceError, match=r"record 2 \(attempt-finished\), outputs\[0\]: digest"):
        trace_document(bad_output.records, TWO)
    no_block = Ledgers(TWO).add("attempt-started", attempt=1)
    with pytest.raises(TraceError, match=r"record 2 \(attempt-started\): field 'block'"):
        trace_document(no_block.records, TWO)


# -- the Markdown summary ------------------------------------------------------------------


def test_the_markdown_summary_of_a_failed_execution(tmp_path: Path) -> None:
    fail = "import sys; print('boom | <b>not bold</b>'); sys.exit(75)"
    art = make_artifact(
        "flaky",
        [
            block(
                "work", [PY, "-c", fail], retry={"max": 1, "backoffSeconds": 0, "onExitCodes": [75]}
            ),
            block("fine", ["true"]),
        ],
    )
    records, _ = run(tmp_path, art)
    trace = trace_document(records, art)
    text = markdown_summary(trace)
    lines = text.splitlines()
    execution = trace["metadata"]["name"]
    assert lines[0] == (
        f"❌ **failed** · intent `flaky` · execution `{execution}` · 2 blocks: 1 failed, "
        "1 succeeded · 0ms"
    )
    work_ms = sum(a["durationMs"] for a in trace["spec"]["blocks"][1]["attempts"])
    assert "| Block | Status | Attempts | Duration | Exit code |" in lines
    assert "| `fine` | ✅ succeeded | 1 | " in text
    took = f"{work_ms}ms" if work_ms < 1000 else f"{work_ms / 1000:.1f}s"
    assert f"| `work` | ❌ failed | 2 | {took} | 75 |" in lines
    # The failed block's logs come first, newest attempt first, folded.
    details = [line for line in lines if line.startswith("<details>")]
    assert details == [
        "<details><summary>work attempt 2: failed, exit code 75</summary>",
        "<details><summary>work attempt 1: failed, exit code 75</summary>",
    ]
    assert "```text\nboom | <b>not bold</b>\n```" in text  # verbatim inside the fence
    assert markdown_summary(trace) == text
    assert markdown_summary(trace_document(records, art)) == text


def test_the_markdown_summary_lists_gates_and_evidence() -> None:
    art = make_artifact(
        "gated",
        [block("a", ["true"], outputs=["r.txt"]), block("b", ["true"], needs=["a"])],
        acceptance=[
            {"id": "AC-1", "statement": "s", "evidence": {"block": "a", "output": "r.txt"}}
        ],
    )
    led = Ledgers(art)
    led.add("attempt-started", block="a", attempt=1, effects="none")
    led.add(
        "attempt-finished",
        block="a",
        attempt=1,
        outcome="succeeded",
        exitCode=0,
        durationMs=61_500,
        logDigest=None,
        logTail="",
        outputs=[{"path": "r.txt", "digest": "sha256:" + "b" * 64, "size": 1}],
    )
    led.add("block-finished", block="a", status="succeeded")
    led.add(
        "gate",
        block="b",
        index=0,
        kind="approval",
        decision="waiting",
        reason="needs 1 | of\nteam:ops",
    )
    text = markdown_summary(trace_document(led.records, art))
    assert text.startswith("⏸️ **waiting** · intent `gated` · ")
    assert "| `a` | ✅ succeeded | 1 | 1m 1s | 0 |" in text
    assert f"| `b` | 0 | approval | ⏸️ waiting | needs 1 \\| of team:ops | {T0} |" in text
    assert f"| AC-1 | `a` | `r.txt` | ✅ produced | `sha256:{'b' * 64}` |" in text
    assert "### Logs" not in text  # an empty tail is not shown


def _long_trace() -> dict[str, Any]:
    led = Ledgers(TWO)
    for number in range(1, 9):
        led.add("attempt-started", block="a", attempt=number, effects="none")
        led.add(
            "attempt-finished",
            block="a",
            attempt=number,
            outcome="failed",
            exitCode=1,
            durationMs=5,
            logDigest=None,
            logTail=f"line {number}\n" + "x" * 16_000 + "\n",
        )
    led.add("block-finished", block="a", status="failed", reason="exit code 1")
    led.add("block-finished", block="b", status="skipped", reason="needs a")
    led.add("execution-finished", status="failed")
    return trace_document(led.records, TWO)


def test_a_long_summary_is_cut_with_an_explicit_marker() -> None:
    trace = _long_trace()
    full = markdown_summary(trace, limit=10**9)
    assert len(full) > 65_535
    text = markdown_summary(trace)
    assert len(text) <= 65_535
    pointer = f"traces/two/{trace['metadata']['name']}.json"
    head, marker = text.rsplit("\n\n… truncated: ", 1)
    omitted = int(marker.split()[0])
    assert marker == f"{omitted} characters omitted; full trace in {pointer}"
    kept = full[: len(full) - omitted]
    assert head.startswith(kept)
    # The cut fell inside a log: the fence and the fold are closed so the marker shows.
    assert head[len(kept) :] == "\n```\n\n</details>"
    assert text.startswith("❌ **failed**")
    assert markdown_summary(trace) == text


@pytest.mark.parametrize("limit", [300, 1_000, 20_011, 65_535])
def test_the_limit_is_never_exceeded(limit: int) -> None:
    text = markdown_summary(_long_trace(), limit=limit)
    assert len(text) <= limit
    assert "… truncated: " in text


def test_a_summary_that_fits_is_not_cut_and_a_tiny_limit_is_refused() -> None:
    trace = _long_trace()
    full = markdown_summary(trace, limit=10**9)
    assert markdown_summary(trace, limit=len(full)) == full
    one_less = markdown_summary(trace, limit=len(full) - 1)
    assert len(one_less) <= len(full) - 1
    assert "truncated" in one_less
    with pytest.raises(ValueError, match="too small"):
        markdown_summary(trace, limit=20)


# -- OTLP/JSON -----------------------------------------------------------------------------


def _protobuf_ids(document: dict[str, Any]) -> dict[str, Any]:
    """OTLP/JSON writes ids in hex where protobuf's JSON mapping expects base64: convert, as an
    OTLP receiver does, so the parsed message holds the real bytes."""
    out = copy.deepcopy(document)
    for resource in out["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return out


def test_otlp_json_parses_with_the_official_protobuf_definitions(tmp_path: Path) -> None:
    fail = "import sys; sys.exit(75)"
    art = make_artifact(
        "flaky",
        [
            block(
                "work",
                [PY, "-c", fail],
                effects="idempotent",
                retry={"max": 2, "backoffSeconds": 30, "onExitCodes": [75]},
            ),
            block("after", ["true"], needs=["work"]),
        ],
    )
    records, _ = run(tmp_path, art)
    trace = trace_document(records, art)
    document = otlp_json(trace, artifact=art)
    assert otlp_json(trace, artifact=art) == document  # deterministic
    # As written (hex ids): every field name and type is one the protobuf definitions know.
    json_format.Parse(json.dumps(document), ExportTraceServiceRequest())
    request = json_format.Parse(json.dumps(_protobuf_ids(document)), ExportTraceServiceRequest())
    [resource] = request.resource_spans
    [scope] = resource.scope_spans
    assert scope.scope.name == "foundry.traces"
    spans = list(scope.spans)
    assert len(spans) == 1 + 2 + 3  # the execution, two blocks, three attempts of `work`
    execution = trace["metadata"]["name"]
    root, after, work, *attempts = spans
    assert {s.trace_id.hex() for s in spans} == {trace_id(execution)}
    assert len(trace_id(execution)) == 32
    assert root.span_id.hex() == span_id(execution)
    assert root.parent_span_id == b""
    assert work.span_id.hex() == span_id(execution, "block", "work")
    assert [s.parent_span_id.hex() for s in (work, after)] == [root.span_id.hex()] * 2
    assert [s.parent_span_id.hex() for s in attempts] == [work.span_id.hex()] * 3
    assert len({s.span_id for s in spans}) == 6
    assert all(len(s.span_id) == 8 for s in spans)
    assert (root.status.code, work.status.code, after.status.code) == (2, 2, 0)
    assert [a.status.code for a in attempts] == [2, 2, 2]
    attributes = {kv.key: kv.value for kv in attempts[2].attributes}
    assert attributes["foundry.block.id"].string_value == "work"
    assert attributes["foundry.attempt"].int_value == 3
    assert attributes["process.exit.code"].int_value == 75
    assert attributes["foundry.attempt.outcome"].string_value == "failed"
    assert attributes["foundry.block.effects"].string_value == "idempotent"
    # Times: attempt 3 started 60 s after the execution; children lie within their parents.
    assert attempts[2].start_time_unix_nano - root.start_time_unix_nano == 60 * 10**9
    for child, parent in [(work, root), (after, root), *((a, work) for a in attempts)]:
        assert parent.start_time_unix_nano <= child.start_time_unix_nano
        assert child.end_time_unix_nano <= parent.end_time_unix_nano
    raw = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert isinstance(raw["startTimeUnixNano"], str)
    assert raw["traceId"] == trace_id(execution)


def test_otlp_json_of_a_waiting_execution_has_gate_events_and_open_spans() -> None:
    led = Ledgers(TWO)
    led.attempt("a", 1, "succeeded", 0).add("block-finished", block="a", status="succeeded")
    led.add(
        "gate",
        at="2026-11-25T02:00:05.000Z",
        block="b",
        index=0,
        kind="approval",
        decision="waiting",
        reason="0 of 1",
    )
    document = otlp_json(trace_document(led.records, TWO))
    request = json_format.Parse(json.dumps(_protobuf_ids(document)), ExportTraceServiceRequest())
    root, _, a1, b = request.resource_spans[0].scope_spans[0].spans
    assert [e.name for e in b.events] == ["gate waiting"]
    assert b.start_time_unix_nano == b.events[0].time_unix_nano
    assert root.status.code == 0  # waiting: neither ok nor error
    assert root.end_time_unix_nano == b.events[0].time_unix_nano  # open: up to the latest news
    assert a1.status.code == 1


# -- in-toto -------------------------------------------------------------------------------


def test_the_intoto_statement_is_slsa_provenance_of_the_outputs(tmp_path: Path) -> None:
    make = "open('results.json', 'w').write('[]'); open('summary.txt', 'w').write('ok')"
    art = make_artifact(
        "bench",
        [block("bench", [PY, "-c", make], outputs=["summary.txt", "results.json"])],
        acceptance=[
            {
                "id": "AC-1",
                "statement": "kept",
                "evidence": {"block": "bench", "output": "results.json"},
            }
        ],
    )
    records, work = run(tmp_path, art)
    trace = trace_document(records, art)
    statement = intoto_statement(trace, art, inputs=planned_inputs(records))
    log = trace["spec"]["blocks"][0]["attempts"][0]["logDigest"]
    assert statement == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": "results.json", "digest": {"sha256": sha256(work / "results.json")[7:]}},
            {"name": "summary.txt", "digest": {"sha256": sha256(work / "summary.txt")[7:]}},
        ],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "artifact": {"name": "bench", "digest": art.digest},
                    "event": {"type": "apply", "key": art.digest},
                    "inputs": {},
                },
                "internalParameters": {"compiler": "alloy-compiler/2"},
                "resolvedDependencies": [
                    {"name": ".alloy/intents/bench.yaml", "digest": {"sha256": "0" * 64}}
                ],
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"foundry": foundry.__version__}},
                "metadata": {
                    "invocationId": trace["metadata"]["name"],
                    "startedOn": T0,
                    "finishedOn": T0,
                },
                "byproducts": [{"name": "logs/bench.1.log", "digest": {"sha256": log[7:]}}],
            },
        },
    }


def test_no_outputs_means_no_statement_and_a_foreign_artifact_is_refused() -> None:
    trace = trace_document(Ledgers(TWO).records, TWO)
    with pytest.raises(TraceError, match="needs at least one subject"):
        intoto_statement(trace, TWO)
    other = make_artifact("other", [block("a", ["true"])])
    with pytest.raises(TraceError, match="the trace is of artifact two@"):
        intoto_statement(trace, other)


# -- secrets -------------------------------------------------------------------------------


def _leaky_records(art: Artifact) -> list[dict[str, Any]]:
    """A ledger from a writer that did not redact: the secret is everywhere it can be."""
    led = Ledgers(art, key=f"request-{SECRET}")
    led.records[0]["inputs"] = {"token": SECRET}
    led.add(
        "gate",
        block="a",
        index=0,
        kind="command",
        decision="passed",
        reason=f"policy said ok with {SECRET}",
    )
    led.add("attempt-started", block="a", attempt=1, effects="none")
    led.add(
        "attempt-finished",
        block="a",
        attempt=1,
        outcome="succeeded",
        exitCode=0,
        durationMs=3,
        logDigest="sha256:" + "c" * 64,
        logTail=f"token={SECRET}\n",
        outputs=[{"path": f"out-{SECRET}.txt", "digest": "sha256:" + "d" * 64, "size": 2}],
    )
    led.add("block-finished", block="a", status="succeeded")
    led.add("attempt-started", block="b", attempt=1, effects="none")
    led.add(
        "attempt-finished",
        block="b",
        attempt=1,
        outcome="failed",
        exitCode=1,
        durationMs=3,
        logDigest=None,
        logTail=f"{SECRET[:8]}\n{SECRET[8:]}",
        outputs=[],
    )
    led.add("block-finished", block="b", status="failed")
    return led.add("execution-finished", status="failed").records


def test_a_secret_in_the_records_never_reaches_any_output() -> None:
    records = _leaky_records(TWO)
    trace = trace_document(records, TWO)
    assert SECRET in json.dumps(trace)  # the records do leak: without `secrets` it shows
    outputs = {
        "trace": json.dumps(trace_document(records, TWO, secrets=[SECRET])),
        "markdown": markdown_summary(trace, secrets=[SECRET]),
        "otlp": json.dumps(otlp_json(trace, secrets=[SECRET])),
        "intoto": json.dumps(
            intoto_statement(trace, TWO, inputs=planned_inputs(records), secrets=[SECRET])
        ),
    }
    for name, text in outputs.items():
        assert SECRET not in text, name
        assert "***" in text, name
    assert "token=***" in outputs["markdown"]
    assert "policy said ok with ***" in outputs["markdown"]
    otlp = json.loads(outputs["otlp"])
    attributes = {
        kv["key"]: kv["value"]
        for kv in otlp["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    }
    assert attributes["foundry.event.key"] == {"stringValue": "request-***"}
    statement = json.loads(outputs["intoto"])
    assert statement["subject"][0]["name"] == "out-***.txt"
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["inputs"] == {
        "token": "***"
    }
    # A secret split across two lines of a log is not the secret; both halves stay readable.
    assert f"{SECRET[:8]}\n{SECRET[8:]}" in outputs["markdown"]


def test_a_lone_string_is_one_secret_and_the_bundle_redacts_everything() -> None:
    records = _leaky_records(TWO)
    bundle = trace_bundle(records, TWO, secrets=SECRET)
    everything = json.dumps([bundle.trace, bundle.otlp, bundle.intoto]) + bundle.markdown
    assert SECRET not in everything
    assert "e" in bundle.markdown  # not redacted letter by letter
    assert bundle.path == f"traces/two/{bundle.trace['metadata']['name']}.json"
    valid(bundle.trace)


def test_a_real_execution_with_secrets_gives_a_clean_bundle(tmp_path: Path) -> None:
    leak = "import os, sys; print('token=' + os.environ['TOKEN']); open('o.txt', 'w').write('1')"
    art = make_artifact(
        "secretive", [block("s", [PY, "-c", leak], secrets=["TOKEN"], outputs=["o.txt"])]
    )
    records, _ = run(tmp_path, art, secrets={"TOKEN": SECRET})
    bundle = trace_bundle(records, art, secrets=[SECRET])
    assert bundle.trace["spec"]["blocks"][0]["attempts"][0]["logTail"] == "token=***\n"
    assert bundle.intoto is not None
    assert bundle.intoto["subject"][0]["name"] == "o.txt"
    everything = json.dumps([bundle.trace, bundle.otlp, bundle.intoto]) + bundle.markdown
    assert SECRET not in everything


def test_the_public_api_resolves() -> None:
    for name in foundry.traces.__all__:
        assert hasattr(foundry.traces, name), name
        assert not name.startswith("_")
