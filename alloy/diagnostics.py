"""Diagnostics: what is wrong, where, and how to fix it; and their text, JSON and GitHub forms."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One finding about one file: `path:line:col: message` (line and column are 1-based)."""

    path: str
    line: int
    column: int
    message: str
    severity: Severity = "error"
    #: Dotted place inside the document (`spec.automation.blocks[1].timeout`), if any.
    where: str = ""

    def text(self) -> str:
        place = self.path
        if self.line:
            place += f":{self.line}:{self.column}"
        prefix = "" if self.severity == "error" else "warning: "
        where = f"{self.where}: " if self.where else ""
        return f"{place}: {prefix}{where}{self.message}"

    def github(self) -> str:
        kind = "error" if self.severity == "error" else "warning"
        props = f"file={_gh_prop(self.path)}"
        if self.line:
            props += f",line={self.line},col={self.column}"
        where = f"{self.where}: " if self.where else ""
        return f"::{kind} {props}::{_gh_data(where + self.message)}"


def _gh_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(value: str) -> str:
    return _gh_data(value).replace(":", "%3A").replace(",", "%2C")


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)


def render(diagnostics: Sequence[Diagnostic], fmt: str) -> str:
    """Render diagnostics as `text`, `json` or `github` (workflow commands)."""
    ordered = sorted(diagnostics)
    if fmt == "json":
        payload = {
            "errors": sum(1 for d in ordered if d.severity == "error"),
            "warnings": sum(1 for d in ordered if d.severity == "warning"),
            "diagnostics": [asdict(d) for d in ordered],
        }
        return json.dumps(payload, indent=2, sort_keys=True)
    if fmt == "github":
        return "\n".join(d.github() for d in ordered)
    return "\n".join(d.text() for d in ordered)
