"""The intent assistant: deterministic, offline findings about intents themselves (docs/critique.md).

A goal with nothing measurable, vague words where a number belongs, no rationale, no acceptance
criteria, a criterion with no evidence link or with evidence no block produces, one owner for
irreversible automation, evidence that has gone stale, a `supersedes` chain that leaves an
intent in force behind. Each finding is anchored at the field of the file it is about and
carries a suggested rewrite or the question to answer.

Data in, data out: the caller hands over the intents (`IntentDocument`: name, path, bytes,
model) and, when it has them, the trace files of the traces branch (`{path: bytes}`, as
`alloy status` reads them). Nothing here reads a file, runs git or starts a process; the
optional external assistant's protocol is here (`assistant_input`, `read_suggestions`), running
it is the CLI's job.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alloy.critique._assistant import (
    MAX_OUTPUT_BYTES,
    PROTOCOL,
    Suggestion,
    Suggestions,
    UserConfig,
    assistant_error,
    assistant_input,
    parse_user_config,
    read_suggestions,
    suggestions_schema,
)
from alloy.critique._documents import Documents, intent_documents
from alloy.critique._evidence import DEFAULT_STALE_AFTER, age_text, stale_findings
from alloy.critique._findings import KINDS, Finding, Severity, field_loc, field_text
from alloy.critique._rules import IntentDocument, adder, intent_findings
from alloy.critique._text import (
    GOAL_QUESTION,
    Vague,
    goal_question,
    is_measurable,
    statement_question,
    vague_words,
)
from alloy.errors import NotFound
from alloy.status import Source, parse_traces

#: Version of the `alloy critique --format json` document; additive changes keep it.
JSON_VERSION = 1


@dataclass
class Report:
    """What `critique` found: the findings (sorted by file and line), the intents it read,
    where the traces came from, and warnings (unreadable traces)."""

    intents: list[str]
    findings: list[Finding] = field(default_factory=list)
    source: Source | None = None
    warnings: list[str] = field(default_factory=list)

    def add(self, findings: Iterable[Finding]) -> None:
        self.findings = sorted([*self.findings, *findings])

    def to_json(self) -> dict[str, Any]:
        source = self.source
        return {
            "version": JSON_VERSION,
            "intents": self.intents,
            "traces": None
            if source is None
            else {
                "branch": source.branch,
                "ref": source.ref,
                "commit": source.commit,
                "found": source.ref is not None,
                "missing": source.missing,
            },
            "warnings": self.warnings,
            "counts": {
                "warning": sum(1 for f in self.findings if f.severity == "warning"),
                "info": sum(1 for f in self.findings if f.severity == "info"),
            },
            "findings": [f.to_json() for f in self.findings],
        }

    def render_text(self) -> str:
        """One block per finding: `path:line: severity: kind: message` and the suggestion."""
        lines = [f"warning: {w}" for w in self.warnings]
        lines.extend(f.text() for f in self.findings)
        return "\n".join(lines) + ("\n" if lines else "")

    def summary(self) -> str:
        warnings = sum(1 for f in self.findings if f.severity == "warning")
        infos = len(self.findings) - warnings
        count = len(self.intents)
        where = f"{count} intent{'s' if count != 1 else ''}"
        if not self.findings:
            return f"no findings in {where}"
        return f"{len(self.findings)} finding(s) ({warnings} warning(s), {infos} info) in {where}"


def critique(
    documents: Mapping[str, IntentDocument],
    *,
    names: Sequence[str] | None = None,
    project_owners: Sequence[str] = (),
    states: Mapping[str, str] | None = None,
    trace_files: Mapping[str, bytes] | None = None,
    source: Source | None = None,
    now: datetime.datetime | None = None,
    stale_after: datetime.timedelta = DEFAULT_STALE_AFTER,
) -> Report:
    """The findings about the intents `names` (default: all of `documents`).

    `documents` should hold every intent of the repository, since `supersedes` chains are
    followed through them; `states` adds the lifecycle state of intents that are named but did
    not load (by name). `project_owners` stand in for an intent without owners. With
    `trace_files` (paths on the traces branch, read from `source`) evidence freshness is
    judged at `now` (default: the current time): stale after `stale_after`."""
    chosen = sorted(documents) if names is None else list(names)
    unknown = [n for n in chosen if n not in documents]
    if unknown:
        raise NotFound(f"no intent named {', '.join(map(repr, unknown))} among the documents")
    all_states = {**(states or {}), **{n: d.intent.spec.state for n, d in documents.items()}}
    supersedes = {n: list(d.intent.spec.relations.supersedes) for n, d in documents.items()}
    report = Report(intents=chosen, source=source)
    found: list[Finding] = []
    for name in chosen:
        found.extend(
            intent_findings(
                documents[name],
                states=all_states,
                supersedes=supersedes,
                project_owners=project_owners,
            )
        )
    if trace_files is not None:
        where = source or Source("traces")
        by_intent, report.warnings = parse_traces(trace_files, where, set(chosen))
        at = now or datetime.datetime.now(datetime.UTC)
        for name in chosen:
            doc = documents[name]
            stale_findings(
                doc,
                [e.trace for e in by_intent.get(name, [])],
                now=at,
                stale_after=stale_after,
                add=adder(doc, found),
            )
    report.add(found)
    return report


__all__ = [
    "DEFAULT_STALE_AFTER",
    "GOAL_QUESTION",
    "JSON_VERSION",
    "KINDS",
    "MAX_OUTPUT_BYTES",
    "PROTOCOL",
    "Documents",
    "Finding",
    "IntentDocument",
    "Report",
    "Severity",
    "Suggestion",
    "Suggestions",
    "UserConfig",
    "Vague",
    "age_text",
    "assistant_error",
    "assistant_input",
    "critique",
    "field_loc",
    "field_text",
    "goal_question",
    "intent_documents",
    "is_measurable",
    "parse_user_config",
    "read_suggestions",
    "statement_question",
    "suggestions_schema",
    "vague_words",
]
