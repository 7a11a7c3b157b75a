"""Artifacts against their intents in the head tree: what `alloy compile --check` would say,
computed in memory with the compiler (nothing is written, nothing from the tree is run).

* `artifact-stale`: an accepted or active intent whose artifact is missing or differs from what
  the compiler writes now, or an artifact file whose intent no longer compiles (extra);
* `artifact-hand-edited`: the file is not the compiler's output for any intent: it is not
  valid JSON, its `digest` does not match its content, or it claims the intent's current
  `provenance.sourceDigest` while its body differs from what the compiler writes for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from alloy.compile import document_digest, pretty_bytes
from alloy.load import DocResult, Entry, Repository, reload_intent
from alloy.review._lines import line_of
from alloy.review._model import Finding

ARTIFACTS_DIR = ".alloy/artifacts"
#: Parts of an artifact that come from the project (lane settings) and the compiler rather
#: than from the intent: a difference only there is staleness, not a hand edit.
_DERIVED = ("lane",)


def artifact_path(name: str) -> str:
    return f"{ARTIFACTS_DIR}/{name}.json"


def _expected(doc: DocResult, repo: Repository, head: Mapping[str, Entry]) -> dict[str, Any] | None:
    """The artifact the compiler writes for `doc` (compiled again when it came from the cache)."""
    if doc.artifact is not None:
        return doc.artifact
    entry = head.get(doc.path)
    if entry is None:
        return None
    return reload_intent(doc.path, entry, repo.project).artifact


def _first_difference(have: bytes, want: bytes) -> int:
    """1-based line of the first line where two texts differ, past the top-level digest (which
    differs whenever anything does) unless nothing else differs."""
    first = 0
    lines = zip(have.split(b"\n"), want.split(b"\n"), strict=False)
    for number, (a, b) in enumerate(lines, start=1):
        if a == b:
            continue
        if not a.startswith(b'  "digest": '):
            return number
        first = first or number
    return first or min(have.count(b"\n"), want.count(b"\n")) + 1


def artifact_findings(
    repo: Repository,
    head: Mapping[str, Entry],
    base: Mapping[str, Entry],
) -> list[Finding]:
    out: list[Finding] = []
    expected_paths: set[str] = set()
    intents = repo.intents()
    for name, doc in sorted(intents.items()):
        if not doc.ok or not doc.facts.get("compiles"):
            continue
        path = artifact_path(name)
        expected_paths.add(path)
        entry = head.get(path)
        digest = str(doc.facts.get("digest", ""))
        if entry is None or entry.data is None:
            out.append(
                Finding(
                    "artifact-stale",
                    "blocking",
                    doc.path,
                    line_of(head.get(doc.path), ("spec", "state")),
                    f"{path} is missing; run `alloy compile` and commit the artifact",
                    document=name,
                    details={"artifact": path, "reason": "missing", "expectedDigest": digest},
                )
            )
            continue
        unchanged = base.get(path) == entry and base.get(doc.path) == head.get(doc.path)
        if unchanged and digest and f'"digest": "{digest}"'.encode() in entry.data:
            continue  # untouched by the change and carrying the digest the compiler computes
        artifact = _expected(doc, repo, head)
        if artifact is None:
            continue
        want = pretty_bytes(artifact)
        if entry.data == want:
            continue
        out.append(_compare(name, doc.path, path, have=entry.data, want=want, artifact=artifact))
    for path in sorted(
        p for p in head if p.startswith(ARTIFACTS_DIR + "/") and p.endswith(".json")
    ):
        if path in expected_paths or path.count("/") != 2:
            continue
        name = path.rsplit("/", 1)[-1][: -len(".json")]
        owner = intents.get(name)
        if owner is not None and not owner.ok:
            continue  # an invalid intent is reported as such; compile would stop there
        why = (
            "its intent no longer exists"
            if owner is None
            else f"its intent is {owner.facts.get('state', 'not compiled')} or has no automation"
        )
        out.append(
            Finding(
                "artifact-stale",
                "blocking",
                path,
                1,
                f"{path} is extra: {why}; run `alloy compile` to remove it",
                document=name,
                details={"artifact": path, "reason": "extra"},
            )
        )
    return out


def _compare(
    name: str, source: str, path: str, *, have: bytes, want: bytes, artifact: dict[str, Any]
) -> Finding:
    line = _first_difference(have, want)
    expected_digest = str(artifact.get("digest", ""))
    details: dict[str, Any] = {"artifact": path, "expectedDigest": expected_digest}
    try:
        document = json.loads(have)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        return Finding(
            "artifact-hand-edited",
            "blocking",
            path,
            line,
            f"{path} was edited by hand: it is not an artifact document (invalid JSON); "
            "run `alloy compile` to write it again",
            document=name,
            details={**details, "reason": "not-an-artifact"},
        )
    actual = document.get("digest")
    details["actualDigest"] = actual
    try:
        matches = actual == document_digest(document)
    except ValueError:  # a float (1.5, NaN): no artifact holds one
        matches = False
    if not matches:
        return Finding(
            "artifact-hand-edited",
            "blocking",
            path,
            line,
            f"{path} was edited by hand: its digest does not match its content; "
            "run `alloy compile` to write it again",
            document=name,
            details={**details, "reason": "digest-mismatch"},
        )
    have_prov = _provenance(document)
    want_prov = _provenance(artifact)
    if (
        have_prov.get("sourceDigest") == want_prov.get("sourceDigest")
        and have_prov.get("compiler") == want_prov.get("compiler")
        and _intent_part(document) != _intent_part(artifact)
    ):
        return Finding(
            "artifact-hand-edited",
            "blocking",
            path,
            line,
            f"{path} was edited by hand: it was compiled from the current {source}, but its "
            "body differs from what the compiler writes (its digest was recomputed); "
            "run `alloy compile` to write it again",
            document=name,
            details={**details, "reason": "body-edited"},
        )
    if document == artifact:
        return Finding(
            "artifact-hand-edited",
            "blocking",
            path,
            line,
            f"{path} was reformatted by hand: same content, not the compiler's bytes; "
            "run `alloy compile` to write it again",
            document=name,
            details={**details, "reason": "reformatted"},
        )
    return Finding(
        "artifact-stale",
        "blocking",
        path,
        line,
        f"{path} is out of date with {source}; run `alloy compile` and commit the artifact",
        document=name,
        details={**details, "reason": "out-of-date"},
    )


def _provenance(document: dict[str, Any]) -> dict[str, Any]:
    spec = document.get("spec")
    prov = spec.get("provenance") if isinstance(spec, dict) else None
    return prov if isinstance(prov, dict) else {}


def _intent_part(document: dict[str, Any]) -> Any:
    """The artifact without its digest and the parts derived from the project."""
    spec = document.get("spec")
    if not isinstance(spec, dict):
        return document
    trimmed_spec = {k: v for k, v in spec.items() if k not in _DERIVED}
    prov = trimmed_spec.get("provenance")
    if isinstance(prov, dict):
        trimmed_spec["provenance"] = {k: v for k, v in prov.items() if k != "requires"}
    return {**{k: v for k, v in document.items() if k != "digest"}, "spec": trimmed_spec}
