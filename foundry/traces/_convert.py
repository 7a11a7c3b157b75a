"""A Trace document read back and rendered as Foundry renders it (`foundry traces convert`):
the Markdown summary written beside the trace on the traces branch, OTLP/JSON and the in-toto
statement of `foundry traces export`. For a program that holds a trace but must not import
Foundry (the Alloy web interface runs the command as a process).

Every input is read by the boundary's rules and checked against the others before anything is
rendered; a refusal is a `FoundryError` naming the file and the fix (exit 1 in the CLI).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from foundry.boundary import TRACE_MAX_BYTES, Artifact, read_artifact, read_trace
from foundry.errors import BoundaryError, UserError
from foundry.redaction import redact
from foundry.traces._document import planned_inputs
from foundry.traces._errors import TraceError
from foundry.traces._intoto import intoto_statement
from foundry.traces._markdown import SUMMARY_LIMIT, markdown_summary
from foundry.traces._otlp import otlp_json

#: What `convert_trace` renders.
CONVERT_FORMATS = ("markdown", "otlp", "intoto")

_TRACE_HINT = (
    "--trace takes a Trace document (alloy.dev/v1 JSON: traces/<intent>/<execution>.json on "
    "the traces branch, or `foundry traces export EXECUTION`)"
)
_ARTIFACT_HINT = (
    "--artifact takes the artifact the execution ran, unchanged (the artifact.json of its "
    "claim or of its state directory)"
)
_LEDGER_HINT = (
    "--inputs-from-ledger takes the execution's ledger (the ledger.jsonl of its claim or of its "
    "state directory)"
)


@dataclass(frozen=True)
class InputFile:
    """One input: what messages call it (its path, or `<stdin>`) and its bytes."""

    name: str
    data: bytes


def _refused(exc: BoundaryError, hint: str) -> BoundaryError:
    return BoundaryError(exc.path, f"{exc.message}; {hint}")


def read_ledger(name: str, data: bytes) -> list[dict[str, Any]]:
    """An execution's ledger (JSON Lines: one object per line). A last line with no newline
    that is not JSON was torn by a crash and is dropped, as the ledger itself drops it."""
    if len(data) > TRACE_MAX_BYTES:
        raise UserError(f"{name}: larger than {TRACE_MAX_BYTES} bytes; refused")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{name}: not UTF-8 text; {_LEDGER_HINT}") from None
    lines = text.split("\n")
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            if number == len(lines):  # no newline after it: torn
                break
            raise UserError(f"{name}: line {number} is not a JSON object; {_LEDGER_HINT}") from None
        if not isinstance(record, dict):
            raise UserError(f"{name}: line {number} is not a JSON object; {_LEDGER_HINT}")
        records.append(record)
    return records


def _check_artifact(trace: dict[str, Any], trace_name: str, artifact: Artifact, name: str) -> None:
    ran = trace["spec"]["artifact"]
    if (ran["name"], ran["digest"]) != (artifact.metadata.name, artifact.digest):
        raise UserError(
            f"{name}: holds artifact {artifact.metadata.name}@{artifact.digest} (intent "
            f"{artifact.spec.intent.name}), but {trace_name} is an execution of "
            f"{ran['name']}@{ran['digest']} (intent {trace['spec']['intent']}); {_ARTIFACT_HINT}"
        )


def _check_ledger(
    trace: dict[str, Any], trace_name: str, records: Sequence[dict[str, Any]], name: str
) -> dict[str, Any]:
    """The inputs of the ledger's `planned` record, which must be of the trace's execution."""
    try:
        inputs = planned_inputs(records)
    except TraceError as exc:
        raise UserError(f"{name}: {exc}; {_LEDGER_HINT}") from None
    planned = next(r for r in records if r.get("type") == "planned")
    execution = planned.get("execution")
    found = planned.get("artifact")
    ran: dict[str, Any] = found if isinstance(found, dict) else {}
    want = trace["spec"]["artifact"]
    same_artifact = (ran.get("name"), ran.get("digest")) == (want["name"], want["digest"])
    if execution != trace["metadata"]["name"] or not same_artifact:
        raise UserError(
            f"{name}: the ledger of execution {execution} (artifact {ran.get('name')}), but "
            f"{trace_name} is execution {trace['metadata']['name']} (artifact "
            f"{want['name']}); {_LEDGER_HINT}"
        )
    return inputs


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def convert_trace(
    fmt: str,
    trace: InputFile,
    *,
    artifact: InputFile | None = None,
    ledger: InputFile | None = None,
    environ: Mapping[str, str] | None = None,
    limit: int = SUMMARY_LIMIT,
) -> str:
    """`trace` rendered as `fmt` (one of `CONVERT_FORMATS`), exactly as Foundry renders it elsewhere.

    * `markdown`: `markdown_summary`, the text of the `.md` file beside the trace on the
      traces branch (and of the check run's summary), cut to `limit` characters.
    * `otlp`: `otlp_json`; with `artifact`, block and attempt spans carry the blocks' declared
      effects, as in `foundry traces export` (without it they do not).
    * `intoto`: `intoto_statement`; needs `artifact`. With `ledger`, `externalParameters`
      holds the execution's inputs, as in `foundry traces export` (without it, none).

    JSON formats are indented by 2 with sorted keys and end with a newline. `artifact` and
    `ledger` must be those of the trace's execution, whatever the format. With `artifact`,
    the values its blocks' declared secrets have in `environ` are masked in the trace before
    it is rendered and in what is rendered, as `foundry traces export` masks them.
    """
    if fmt not in CONVERT_FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(CONVERT_FORMATS)}")
    try:
        document = read_trace(trace.name, trace.data)
    except BoundaryError as exc:
        raise _refused(exc, _TRACE_HINT) from None
    execution = document["metadata"]["name"]
    ran = document["spec"]["artifact"]
    model: Artifact | None = None
    if artifact is not None:
        try:
            model = read_artifact(artifact.name, artifact.data)
        except BoundaryError as exc:
            raise _refused(exc, _ARTIFACT_HINT) from None
        _check_artifact(document, trace.name, model, artifact.name)
    inputs = None
    if ledger is not None:
        records = read_ledger(ledger.name, ledger.data)
        inputs = _check_ledger(document, trace.name, records, ledger.name)
    env = environ or {}
    # The values of the artifact's declared secrets here (`foundry.workspace.declared_secrets`),
    # masked in the trace before it is rendered, as `trace_document` masks it for `export`.
    secrets = [env[s] for b in model.spec.blocks for s in b.secrets if s in env] if model else []
    document = redact(document, secrets)
    try:
        if fmt == "markdown":
            return markdown_summary(document, limit=limit, secrets=secrets)
        if fmt == "otlp":
            return _json(otlp_json(document, artifact=model, secrets=secrets))
        if model is None:
            raise UserError(
                f"{trace.name}: --format intoto needs the artifact execution {execution} ran "
                f"({ran['name']}@{ran['digest']}): pass it with --artifact FILE (the "
                "artifact.json of its claim or of its state directory)"
            )
        return _json(intoto_statement(document, model, inputs=inputs, secrets=secrets))
    except TraceError as exc:
        raise TraceError(f"{trace.name}: {exc}") from None
