"""A critique finding: what about an intent deserves a second look, where, and what to ask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["warning", "info"]
Source = Literal["alloy", "assistant"]
Loc = tuple[str | int, ...]

#: Every kind `alloy critique` itself reports (docs/critique.md); an external assistant's own
#: suggestions come as `assistant:<its kind>`.
KINDS = (
    "goal-unmeasurable",
    "vague-word",
    "rationale-missing",
    "acceptance-missing",
    "acceptance-no-evidence",
    "evidence-unproduced",
    "evidence-stale",
    "owner-single",
    "supersedes-active",
    "assistant-error",
)


@dataclass(frozen=True, order=True)
class Finding:
    """One finding about one intent, anchored at a field of its file (1-based line)."""

    path: str
    line: int
    kind: str
    intent: str
    severity: Severity
    #: Where in the document: `spec.goal`, `spec.acceptance[AC-1].statement`, ...
    field: str
    message: str
    #: A suggested rewrite, or the question whose answer makes the intent sharper.
    suggestion: str
    source: Source = "alloy"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "intent": self.intent,
            "path": self.path,
            "line": self.line,
            "field": self.field,
            "message": self.message,
            "suggestion": self.suggestion,
            "source": self.source,
        }

    def text(self) -> str:
        return (
            f"{self.path}:{self.line}: {self.severity}: {self.kind}: {self.message}\n"
            f"    -> {self.suggestion}"
        )


def field_text(loc: Loc) -> str:
    """`("spec", "acceptance", "AC-1", "statement")` -> `spec.acceptance[AC-1].statement`:
    sequence items (an index, or the id of an acceptance criterion or block) in brackets."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int) or (i > 0 and loc[i - 1] in _ID_LISTS and isinstance(part, str)):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


_ID_LISTS = ("acceptance", "blocks", "supersedes", "dependsOn", "owners")


def field_loc(text: str) -> Loc:
    """The inverse of `field_text`, for a field an assistant names (`[N]` is an index when it
    is all digits, else an id); whatever cannot be read is left out (the line is then that of
    the deepest part that exists)."""
    out: list[str | int] = []
    for raw in text.split("."):
        name, _, rest = raw.partition("[")
        if name:
            out.append(name)
        while rest:
            inner, _, rest = rest.partition("]")
            out.append(int(inner) if inner.isdigit() else inner)
            rest = rest.removeprefix("[")
    return tuple(out)
