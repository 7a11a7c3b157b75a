"""`alloy status`: each intent against what Foundry did for it.

For every intent: its lifecycle state, its artifact (name and digest of the file in
`.alloy/artifacts/`), its latest executions and the evidence for each acceptance criterion, read
from the Trace documents Foundry commits to the traces branch. Evidence produced by an execution
of another artifact digest than the current one is stale: it shows what an older version of the
intent's automation produced, not that the current one holds.

The core reads no git: the caller hands over the trace files (`{path: bytes}`, read from the
traces branch by `controllers.git.read_tree_files`) and where they came from. Everything here is
data in, data out, so the rules are testable and the CLI stays a thin shell.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from alloy.compile import document_digest
from alloy.model import Intent, Trace

#: Version of the `alloy status --json` document; additive changes keep it.
JSON_VERSION = 1
DEFAULT_LIMIT = 5
TRACES_DIR = "traces"
#: Execution statuses after which nothing more happens: "missing" evidence from these is final.
FINISHED = ("succeeded", "failed", "cancelled", "skipped")


@dataclass(frozen=True)
class Source:
    """Where the traces were read: the branch asked for, the ref found and its commit."""

    branch: str
    ref: str | None = None
    commit: str | None = None
    #: Why there are no traces to read, when `ref` is None.
    missing: str | None = None


@dataclass(frozen=True)
class ArtifactState:
    """The artifact file of an intent in the work tree."""

    name: str
    path: str
    digest: str | None
    #: current | stale (differs from what `alloy compile` writes now) | missing (the intent
    #: compiles, the file is not written) | extra (the intent no longer compiles) | invalid
    state: str


@dataclass(frozen=True)
class IntentInput:
    """What status needs of one intent from the work tree."""

    path: str
    intent: Intent
    #: The digest `alloy compile` would write now (None if the intent does not compile).
    compiled_digest: str | None
    artifact: ArtifactState | None


@dataclass
class _Execution:
    trace: Trace
    path: str


@dataclass
class Report:
    """The whole status, as the JSON document (`to_json`) and as text (`render_text`)."""

    source: Source
    intents: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "traces": {
                "branch": self.source.branch,
                "ref": self.source.ref,
                "commit": self.source.commit,
                "found": self.source.ref is not None,
                "missing": self.source.missing,
            },
            "warnings": self.warnings,
            "intents": self.intents,
        }


def artifact_state(
    name: str, data: bytes | None, compiled_digest: str | None
) -> ArtifactState | None:
    """The artifact file `.alloy/artifacts/<name>.json` (its bytes; None when there is no such
    file) compared with the compiled intent; None when there is neither a file nor anything to
    compile."""
    path = f".alloy/artifacts/{name}.json"
    if data is None:
        if compiled_digest is None:
            return None
        return ArtifactState(name, path, None, "missing")
    try:
        document = json.loads(data)
        digest = document.get("digest") if isinstance(document, dict) else None
        if not isinstance(digest, str) or digest != document_digest(document):
            return ArtifactState(name, path, None, "invalid")
    except (ValueError, TypeError, RecursionError):  # not JSON, or not plain data (floats)
        return ArtifactState(name, path, None, "invalid")
    if compiled_digest is None:
        return ArtifactState(name, path, digest, "extra")
    return ArtifactState(name, path, digest, "current" if digest == compiled_digest else "stale")


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "the document"
    return f"{where}: {first['msg']}"


def parse_traces(
    files: Mapping[str, bytes], source: Source, intents: set[str]
) -> tuple[dict[str, list[_Execution]], list[str]]:
    """Trace documents by intent from `traces/<intent>/<execution>.json` files. A file that is
    not a valid Trace, or whose place does not match its content, is a warning naming
    `<ref>:<path>`, never a crash; other files (`.md` summaries) are not read."""
    where = source.ref or source.branch
    by_intent: dict[str, list[_Execution]] = {}
    warnings: list[str] = []
    for path in sorted(files):
        parts = path.split("/")
        if len(parts) != 3 or parts[0] != TRACES_DIR or not parts[2].endswith(".json"):
            continue
        intent_dir, stem = parts[1], parts[2][: -len(".json")]
        try:
            trace = Trace.model_validate_json(files[path])
        except ValidationError as exc:
            problem = (
                "not JSON"
                if any(e["type"] == "json_invalid" for e in exc.errors())
                else f"not a valid Trace ({_first_error(exc)})"
            )
            warnings.append(
                f"{where}:{path}: {problem}; skipped (written by another Foundry version, or "
                "edited by hand?)"
            )
            continue
        if trace.spec.intent != intent_dir or trace.metadata.name != stem:
            warnings.append(
                f"{where}:{path}: holds the trace of {trace.spec.intent}/{trace.metadata.name}; "
                f"skipped (traces live at {TRACES_DIR}/<intent>/<execution>.json)"
            )
            continue
        if intent_dir in intents:
            by_intent.setdefault(intent_dir, []).append(_Execution(trace, path))
    for executions in by_intent.values():
        # Newest first: by start time (an execution not started yet sorts last), then by id.
        executions.sort(key=lambda e: e.trace.metadata.name)
        executions.sort(key=lambda e: sort_instant(e.trace.spec.started_at), reverse=True)
    return by_intent, warnings


def sort_instant(stamp: str | None) -> str:
    """An RFC 3339 UTC stamp as text that sorts by time: the fraction of a second is written
    out to nine digits (`...:31Z` is before `...:31.5Z`, though `Z` sorts after `.`)."""
    if stamp is None:
        return ""
    whole, _, fraction = stamp.removesuffix("Z").partition(".")
    return f"{whole}.{fraction:0<9}"


def _execution_json(execution: _Execution, current: str | None) -> dict[str, Any]:
    spec = execution.trace.spec
    return {
        "id": execution.trace.metadata.name,
        "status": spec.status,
        "event": {"type": spec.event.type, "key": spec.event.key},
        "artifactDigest": spec.artifact.digest,
        "current": spec.artifact.digest == current,
        "startedAt": spec.started_at,
        "finishedAt": spec.finished_at,
        "trace": execution.path,
    }


@dataclass(frozen=True, slots=True)
class Criterion:
    """What one acceptance criterion asks for: enough to look up its evidence."""

    id: str
    statement: str
    block: str | None
    output: str | None


@dataclass(frozen=True, slots=True)
class Reported:
    """What one execution reports about evidence: enough to judge it (a trace without its
    blocks, gates and log tails)."""

    execution: str
    #: the artifact digest it ran
    digest: str
    status: str
    #: (acceptance, status, digest, block, output) per evidence entry, in the trace's order
    evidence: tuple[tuple[str, str, str | None, str, str], ...]


def criteria_of(intent: Intent) -> tuple[Criterion, ...]:
    return tuple(
        Criterion(
            c.id,
            c.statement,
            c.evidence.block if c.evidence else None,
            c.evidence.output if c.evidence else None,
        )
        for c in intent.spec.acceptance
    )


def reported_of(trace: Trace) -> Reported:
    spec = trace.spec
    return Reported(
        trace.metadata.name,
        spec.artifact.digest,
        spec.status,
        tuple((e.acceptance, e.status, e.digest, e.block, e.output) for e in spec.evidence),
    )


def evidence_of(intent: Intent, traces: list[Trace], current: str | None) -> list[dict[str, Any]]:
    """`evidence_for` an intent and the traces of its executions."""
    return evidence_for(criteria_of(intent), [reported_of(t) for t in traces], current)


def evidence_for(
    criteria: Sequence[Criterion], executions: Sequence[Reported], current: str | None
) -> list[dict[str, Any]]:
    """For each acceptance criterion, the evidence of the newest execution that says something
    final about it: produced, or missing from a finished execution (an unfinished one may still
    produce it). Executions of the current artifact digest come first; older ones only stand in
    (as stale) when the current digest has not reported yet. `executions` are newest first."""
    out: list[dict[str, Any]] = []
    for criterion in criteria:
        item: dict[str, Any] = {
            "acceptance": criterion.id,
            "statement": criterion.statement,
            "block": criterion.block,
            "output": criterion.output,
            "status": "unlinked" if criterion.block is None else "none",
            "stale": False,
            "digest": None,
            "execution": None,
            "artifactDigest": None,
        }
        if criterion.block is not None:
            found: tuple[Reported, tuple[str, str, str | None, str, str]] | None = None
            for want_current in (True, False):
                for execution in executions:
                    if (execution.digest == current) != want_current:
                        continue
                    entry = next((e for e in execution.evidence if e[0] == criterion.id), None)
                    if entry is None:
                        continue
                    if entry[1] == "missing" and execution.status not in FINISHED:
                        continue
                    found = (execution, entry)
                    break
                if found is not None:
                    break
            if found is not None:
                execution, (_, status, digest, block, output) = found
                item.update(
                    status=status,
                    stale=execution.digest != current,
                    digest=digest,
                    execution=execution.execution,
                    artifactDigest=execution.digest,
                    block=block,
                    output=output,
                )
        out.append(item)
    return out


def build_status(
    intents: Mapping[str, IntentInput],
    trace_files: Mapping[str, bytes],
    source: Source,
    *,
    limit: int | None = DEFAULT_LIMIT,
) -> Report:
    """The status of every intent in `intents` against the traces in `trace_files` (paths on
    the traces branch). `limit` caps the executions listed per intent (None: all of them)."""
    report = Report(source)
    by_intent, report.warnings = parse_traces(trace_files, source, set(intents))
    for name in sorted(intents):
        given = intents[name]
        intent = given.intent
        artifact = given.artifact
        current = artifact.digest if artifact is not None else None
        executions = by_intent.get(name, [])
        shown = executions if limit is None else executions[:limit]
        report.intents.append(
            {
                "name": name,
                "title": intent.metadata.title,
                "path": given.path,
                "state": intent.spec.state,
                "artifact": None
                if artifact is None
                else {
                    "name": artifact.name,
                    "path": artifact.path,
                    "digest": artifact.digest,
                    "state": artifact.state,
                },
                "executionsTotal": len(executions),
                "executions": [_execution_json(e, current) for e in shown],
                "evidence": evidence_of(intent, [e.trace for e in executions], current),
            }
        )
    return report


def _short(digest: str | None) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "-"


_ARTIFACT_NOTE = {
    "current": "",
    "stale": " (out of date with the intent: run `alloy compile`)",
    "missing": "not written: run `alloy compile`",
    "extra": " (the intent no longer compiles: run `alloy compile` to remove it)",
    "invalid": "unreadable or edited by hand: run `alloy compile`",
}


def render_text(report: Report) -> str:
    """Compact text: a line for the traces, then one section per intent."""
    source = report.source
    lines = []
    if source.ref is None:
        lines.append(f"no traces yet ({source.missing or f'branch {source.branch} not found'})")
    else:
        lines.append(f"traces: {source.ref} at {(source.commit or '')[:12]}")
    lines.extend(f"warning: {w}" for w in report.warnings)
    if not report.intents:
        lines.append("no intents; write one with `alloy new intent NAME`")
    for item in report.intents:
        lines.append("")
        artifact = item["artifact"]
        if artifact is None:
            art = "no artifact"
        elif artifact["digest"] is None:
            art = f"artifact {_ARTIFACT_NOTE[artifact['state']]}"
        else:
            art = f"artifact {_short(artifact['digest'])}{_ARTIFACT_NOTE[artifact['state']]}"
        lines.append(f"{item['name']}  [{item['state']}]  {art}")
        if item["title"]:
            lines.append(f"  {item['title']}")
        total = item["executionsTotal"]
        if total:
            shown = len(item["executions"])
            more = f" (latest {shown} of {total}; --all for every one)" if shown < total else ""
            lines.append(f"  executions{more}:")
            for e in item["executions"]:
                old = "" if e["current"] else f"  (artifact {_short(e['artifactDigest'])})"
                key = e["event"]["key"]
                key = _short(key) if key.startswith("sha256:") else key
                lines.append(
                    f"    {e['id']}  {e['status']:<13} {e['event']['type']}:{key}  "
                    f"{e['startedAt'] or '-'} -> {e['finishedAt'] or '-'}{old}"
                )
        elif source.ref is not None:
            lines.append("  executions: none yet")
        if item["evidence"]:
            lines.append("  evidence:")
        for ev in item["evidence"]:
            head = f"    {ev['acceptance']}  "
            status = ev["status"]
            if status == "unlinked":
                lines.append(f"{head}no evidence declared  {ev['statement']}")
                continue
            link = f"{ev['block']}/{ev['output']}"
            if status == "none":
                lines.append(f"{head}no evidence yet  {link}")
                continue
            stale = (
                f"  STALE: from artifact {_short(ev['artifactDigest'])}, not the current one"
                if ev["stale"]
                else ""
            )
            what = f"produced {_short(ev['digest'])}" if status == "produced" else "MISSING"
            lines.append(f"{head}{what}  {link}  ({ev['execution']}){stale}")
    return "\n".join(lines) + "\n"


def intent_inputs(
    models: Mapping[str, tuple[Any, Intent]], artifact_files: Mapping[str, bytes]
) -> dict[str, IntentInput]:
    """Status inputs: each intent with its artifact file's state. `models` is what
    `workspace.intent_models` returns (document result and model by name); `artifact_files`
    holds the bytes of the artifact files there are, by intent name."""
    out = {}
    for name, (doc, intent) in models.items():
        compiled = doc.facts.get("digest") if doc.facts.get("compiles") else None
        state = artifact_state(name, artifact_files.get(name), compiled)
        out[name] = IntentInput(doc.path, intent, compiled, state)
    return out
