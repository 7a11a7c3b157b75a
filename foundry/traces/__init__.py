"""Traces (DESIGN section 6): everything derived from one execution's ledger records and its
artifact: the boundary Trace document, a Markdown summary for check runs, an OTLP/JSON export
and an in-toto provenance statement; and a Trace read back and rendered the same ways
(`convert_trace`). Pure functions of data; nothing here reads or writes files.

Every function takes `secrets` (`convert_trace`: the environment its artifact's declared
secrets are read from) and masks every form of each value (`foundry.redaction`) in every string
it returns.
"""

from foundry.traces._bundle import TraceBundle, trace_bundle
from foundry.traces._convert import CONVERT_FORMATS, InputFile, convert_trace, read_ledger
from foundry.traces._document import (
    EXECUTION_STATUSES,
    planned_inputs,
    trace_document,
    trace_path,
)
from foundry.traces._errors import TraceError
from foundry.traces._intoto import BUILD_TYPE, BUILDER_ID, intoto_statement
from foundry.traces._markdown import SUMMARY_LIMIT, markdown_summary
from foundry.traces._otlp import otlp_json, span_id, trace_id

__all__ = [
    "BUILDER_ID",
    "BUILD_TYPE",
    "CONVERT_FORMATS",
    "EXECUTION_STATUSES",
    "SUMMARY_LIMIT",
    "InputFile",
    "TraceBundle",
    "TraceError",
    "convert_trace",
    "intoto_statement",
    "markdown_summary",
    "otlp_json",
    "planned_inputs",
    "read_ledger",
    "span_id",
    "trace_bundle",
    "trace_document",
    "trace_id",
    "trace_path",
]
