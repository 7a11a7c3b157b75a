"""The external assistant's protocol, as data: what it is given on stdin, what it must answer on
stdout (`schemas/assistant-suggestions.schema.json`), and how its answer (or its failure)
becomes findings. Starting the process is the CLI's job (`alloy.cli._critique`): the core
starts none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from alloy.critique._findings import Finding, field_loc, field_text
from alloy.critique._rules import IntentDocument
from alloy.errors import UserError
from alloy.load import YamlProblem, parse
from alloy.model._common import Model
from alloy.model.project import AssistantSettings
from alloy.review import line_of

#: Version of the stdin document and of the answer; a change that is not additive bumps it.
PROTOCOL = 1
#: The most an assistant may write on stdout; more is an `assistant-error`.
MAX_OUTPUT_BYTES = 1024 * 1024
SCHEMA_ID = "https://alloy.dev/schemas/assistant-suggestions.schema.json"


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Suggestion(_Closed):
    """One suggestion of the assistant about the intent it was given."""

    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")] = Field(
        description="A stable name of what the suggestion is about; reported as assistant:<kind>."
    )
    severity: Literal["warning", "info"] = "info"
    field: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\[\]-]{1,300}$")] | None = Field(
        default=None,
        description="Where in the intent, as in alloy's findings: spec.goal, "
        "spec.acceptance[AC-1].statement, spec.automation.blocks[deploy]; the finding is "
        "anchored at that field's line (the document's first line when absent).",
    )
    message: Annotated[str, StringConstraints(min_length=1, max_length=2000)] = Field(
        description="What deserves a second look."
    )
    suggestion: Annotated[str, StringConstraints(min_length=1, max_length=4000)] = Field(
        description="A suggested rewrite, or the question whose answer makes the intent sharper."
    )


class Suggestions(_Closed):
    """What an external assistant writes on stdout for one intent (docs/critique.md)."""

    version: Literal[1]
    suggestions: list[Suggestion] = Field(max_length=100)


def suggestions_schema() -> dict[str, Any]:
    """The JSON Schema of an assistant's answer (checked in as
    `schemas/assistant-suggestions.schema.json`)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **Suggestions.model_json_schema(mode="validation"),
    }


def assistant_input(doc: IntentDocument, findings: Sequence[Finding]) -> bytes:
    """The document written to the assistant's stdin: the intent (as `intent.schema.json`
    describes it, defaults filled in) and what alloy itself found about it."""
    return json.dumps(
        {
            "protocol": PROTOCOL,
            "name": doc.name,
            "path": doc.path,
            "intent": doc.intent.model_dump(mode="json", by_alias=True, exclude_none=True),
            "findings": [f.to_json() for f in findings if f.intent == doc.name],
        },
        indent=2,
    ).encode()


def assistant_error(doc: IntentDocument, problem: str) -> Finding:
    """The one finding for an assistant that failed on `doc`: what went wrong."""
    return Finding(
        path=doc.path,
        line=line_of(doc.data, ("metadata", "name")),
        kind="assistant-error",
        intent=doc.name,
        severity="warning",
        field="metadata.name",
        message=f"the assistant failed on {doc.name}: {problem}",
        suggestion="Fix the assistant command (docs/critique.md, 'External assistant'), or run "
        "`alloy critique --no-assistant`; alloy's own findings above are complete without it.",
    )


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "the document"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def read_suggestions(doc: IntentDocument, stdout: bytes) -> list[Finding]:
    """The assistant's answer as findings (`assistant:<kind>`), or one `assistant-error` that
    names what is wrong with it."""
    if len(stdout) > MAX_OUTPUT_BYTES:
        return [assistant_error(doc, f"it wrote more than {MAX_OUTPUT_BYTES} bytes")]
    try:
        raw = json.loads(stdout)
    except (UnicodeDecodeError, ValueError) as exc:
        head = stdout[:60].decode("utf-8", "replace")
        return [assistant_error(doc, f"its output is not JSON ({exc}): {head!r}")]
    try:
        answer = Suggestions.model_validate(raw)
    except ValidationError as exc:
        return [
            assistant_error(
                doc,
                "its output does not follow schemas/assistant-suggestions.schema.json: "
                + _first_problem(exc),
            )
        ]
    out = []
    for item in answer.suggestions:
        loc = field_loc(item.field) if item.field else ("metadata", "name")
        out.append(
            Finding(
                path=doc.path,
                line=line_of(doc.data, loc),
                kind=f"assistant:{item.kind}",
                intent=doc.name,
                severity=item.severity,
                field=item.field or field_text(loc),
                message=item.message,
                suggestion=item.suggestion,
                source="assistant",
            )
        )
    return out


class UserConfig(Model):
    """`$XDG_CONFIG_HOME/alloy/config.yaml`: the user's own settings."""

    assistant: AssistantSettings | None = None


def parse_user_config(data: bytes, path: str) -> AssistantSettings | None:
    """The assistant of the user config file `path` (its bytes); a file that is not valid is a
    `UserError` naming the problem."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    if not text.strip():
        return None
    try:
        parsed = parse(text)
    except YamlProblem as exc:
        raise UserError(f"{path}:{exc.line}:{exc.column}: {exc.message}") from None
    if parsed.data is None:
        return None
    try:
        config = UserConfig.model_validate(parsed.data)
    except ValidationError as exc:
        raise UserError(f"{path}: {_first_problem(exc)}") from None
    return config.assistant
