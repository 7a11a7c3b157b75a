"""Invalid documents and broken references in the head tree, from the loader's own diagnostics.

Every error diagnostic of the head repository (what `alloy check` says) becomes a finding. The
ones that are broken references become `reference-broken`, and only that:

* from the loader's cross-checks, recognized structurally: a `Ref` (dependsOn, supersedes,
  after, a request's artifact) whose target intent does not exist, at the place the
  diagnostic names;
* from the per-document checks, recognized by the field the diagnostic names (`where`):
  evidence naming an unknown block, an undeclared output, or a block of an intent without
  automation, and `needs` naming an unknown block.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from alloy.diagnostics import Diagnostic
from alloy.load import Entry, Repository
from alloy.review._model import Finding
from alloy.review._snapshot import data_of, get_in

_EVIDENCE_RE = re.compile(r"^spec\.acceptance\[(\d+)\]\.evidence(?:\.(block|output))?$")
_NEEDS_RE = re.compile(r"^spec\.automation\.blocks\[(\d+)\]\.needs\[(\d+)\]$")
_LOC_RE = re.compile(r"[^.\[\]]+|\[\d+\]")


def _loc(where: str) -> tuple[str | int, ...]:
    return tuple(int(p[1:-1]) if p.startswith("[") else p for p in _LOC_RE.findall(where))


def _reference(
    diag: Diagnostic,
    refs: dict[tuple[str, int, int, str], tuple[str, str]],
    head: Mapping[str, Entry],
) -> dict[str, Any] | None:
    """`{"field", "target"}` when `diag` reports a broken reference, else None."""
    hit = refs.get((diag.path, diag.line, diag.column, diag.where))
    if hit is not None:
        return {"field": hit[0], "target": hit[1]}
    match = _EVIDENCE_RE.match(diag.where)
    if match is not None:
        data = data_of(diag.path, head.get(diag.path))
        evidence = get_in(data, ("spec", "acceptance", int(match.group(1)), "evidence"))
        block = get_in(evidence, ("block",))
        if match.group(2) == "output":
            output = get_in(evidence, ("output",))
            return {"field": "evidence.output", "target": f"{block}/{output}"}
        if match.group(2) == "block" or "no automation" in diag.message:
            return {"field": "evidence.block", "target": block}
        return None
    match = _NEEDS_RE.match(diag.where)
    if match is not None and diag.message.startswith("needs unknown block"):
        data = data_of(diag.path, head.get(diag.path))
        target = get_in(
            data,
            ("spec", "automation", "blocks", int(match.group(1)), "needs", int(match.group(2))),
        )
        return {"field": "needs", "target": target}
    return None


def validity_findings(repo: Repository, head: Mapping[str, Entry]) -> list[Finding]:
    """`invalid-document` and `reference-broken` findings for every error of the head tree."""
    intents = repo.intents()
    # The places of references whose target intent is unknown, as the cross-checks report them.
    refs: dict[tuple[str, int, int, str], tuple[str, str]] = {}
    for doc in repo.docs.values():
        for ref in doc.refs:
            if ref.target not in intents:
                refs[(doc.path, ref.line, ref.column, ref.where)] = (ref.field, ref.target)
    names = {doc.path: doc.name for doc in repo.docs.values()}
    out: list[Finding] = []
    for diag in sorted(set(repo.diagnostics)):
        if diag.severity != "error":
            continue
        line = max(diag.line, 1)
        place = f"{diag.where}: " if diag.where else ""
        details: dict[str, Any] = {"column": max(diag.column, 1) if diag.line else 1}
        if diag.where:
            details["where"] = diag.where
        reference = _reference(diag, refs, head)
        if reference is not None:
            out.append(
                Finding(
                    "reference-broken",
                    "blocking",
                    diag.path,
                    line,
                    f"{place}{diag.message}",
                    document=names.get(diag.path),
                    details={**details, **reference},
                )
            )
        else:
            out.append(
                Finding(
                    "invalid-document",
                    "blocking",
                    diag.path,
                    line,
                    f"{place}{diag.message}",
                    document=names.get(diag.path),
                    details=details,
                )
            )
    return out
