"""Everything written for one execution, derived in one call from its ledger and artifact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from foundry.boundary import Artifact
from foundry.traces._document import planned_inputs, trace_document, trace_path
from foundry.traces._intoto import intoto_statement
from foundry.traces._markdown import SUMMARY_LIMIT, markdown_summary
from foundry.traces._otlp import otlp_json


@dataclass(frozen=True)
class TraceBundle:
    """The trace and its views; `intoto` is None when the execution produced no output."""

    path: str
    trace: dict[str, Any]
    markdown: str
    otlp: dict[str, Any]
    intoto: dict[str, Any] | None


def trace_bundle(
    records: Sequence[dict[str, Any]],
    artifact: Artifact,
    *,
    secrets: Sequence[str] = (),
    limit: int = SUMMARY_LIMIT,
) -> TraceBundle:
    """The Trace, Markdown summary, OTLP/JSON and in-toto statement of one execution."""
    trace = trace_document(records, artifact, secrets=secrets)
    has_outputs = any(block["outputs"] for block in trace["spec"]["blocks"])
    return TraceBundle(
        path=trace_path(trace),
        trace=trace,
        markdown=markdown_summary(trace, limit=limit, secrets=secrets),
        otlp=otlp_json(trace, artifact=artifact, secrets=secrets),
        intoto=intoto_statement(trace, artifact, inputs=planned_inputs(records), secrets=secrets)
        if has_outputs
        else None,
    )
