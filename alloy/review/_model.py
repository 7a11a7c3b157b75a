"""What a review says: the data every output format (JSON, Markdown, GitHub) is rendered from.

Pure data, ordered deterministically (the same two trees always give the same review, byte for
byte in every format), so an unchanged check run is never re-sent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from alloy.model.project import RiskKind

#: Most severe first. `blocking` fails the review (exit 1); the others inform the reviewer.
Severity = Literal["blocking", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("blocking", "high", "medium", "low", "info")

#: Kinds of finding (the `kind` field), grouped as in DESIGN section 7.
FindingKind = Literal[
    # documents and their validity
    "invalid-document",
    # lifecycle
    "lifecycle-move",
    "lifecycle-move-disallowed",
    # acceptance criteria
    "acceptance-added",
    "acceptance-removed",
    "acceptance-reworded",
    # automation risk (the kinds a project policy may mark blocking)
    RiskKind,
    # references
    "reference-broken",
    # artifacts
    "artifact-stale",
    "artifact-hand-edited",
    # the project document (always blocking: what protects the default branch)
    "policy-loosened",
    "owners-changed",
    "traces-changed",
    "default-branch-changed",
    "lanes-changed",
    "assistant-changed",
]


@dataclass(frozen=True)
class Finding:
    """One thing a reviewer should know, anchored to a file and line of the head tree (or of
    the base tree for what was removed)."""

    kind: FindingKind
    severity: Severity
    path: str
    line: int
    message: str
    #: The intent (or other document) it is about, when there is one.
    document: str | None = None
    #: Structured facts for machines: e.g. {"from": "idempotent", "to": "irreversible"}.
    details: dict[str, Any] = field(default_factory=dict)
    #: Who must approve this (owners), when the finding needs someone's approval.
    approvers: tuple[str, ...] = ()


@dataclass(frozen=True)
class DocumentChange:
    """A document added, changed, removed or renamed (a rename is one entry, with its edit)."""

    change: Literal["added", "changed", "removed", "renamed"]
    kind: str  # Intent | Request | Approval | Project | Artifact | unknown
    name: str | None
    path: str
    old_path: str | None = None
    #: Dotted fields that differ (`spec.goal`, `spec.automation.blocks[build].run`), sorted.
    fields: tuple[str, ...] = ()
    #: Lifecycle state before and after (intents), when it changed.
    state: tuple[str, str] | None = None


@dataclass(frozen=True)
class Start:
    """An execution that merging would start (Foundry's plan over the head artifacts, as data)."""

    artifact: str
    intent: str
    event: Literal["apply", "push", "schedule", "request"]
    key: str
    execution: str
    reason: str


@dataclass
class Review:
    """The review of `head` against `base`."""

    base: str
    head: str
    changes: list[DocumentChange] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    starts: list[Start] = field(default_factory=list)
    #: Owners whose approval the change needs (lifecycle moves, risk on their intents), sorted.
    approvers: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return any(f.severity == "blocking" for f in self.findings)

    @property
    def verdict(self) -> str:
        """One line: what a reviewer reads first."""
        starts = f"; merging starts {len(self.starts)} execution(s)" if self.starts else ""
        if not self.changes and not self.findings:
            return f"No intent changes{starts}."
        counts = {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}
        parts = [f"{n} {s}" for s, n in counts.items() if n]
        said = ", ".join(parts) if parts else "no findings"
        head = "Blocking: do not merge" if self.blocking else "OK to merge after review"
        return f"{head} — {len(self.changes)} document(s) changed, {said}{starts}."

    def sort(self) -> None:
        """The canonical order every format relies on."""
        self.changes.sort(key=lambda c: (c.path, c.old_path or "", c.change))
        self.findings.sort(
            key=lambda f: (SEVERITIES.index(f.severity), f.path, f.line, f.kind, f.message)
        )
        self.starts.sort(key=lambda s: (s.artifact, s.event, s.key))
        self.approvers = sorted(set(self.approvers))

    def to_json(self) -> dict[str, Any]:
        self.sort()
        return {
            "version": 1,
            "base": self.base,
            "head": self.head,
            "verdict": self.verdict,
            "blocking": self.blocking,
            "approvers": self.approvers,
            "changes": [_clean(asdict(c)) for c in self.changes],
            "findings": [_clean(asdict(f)) for f in self.findings],
            "starts": [asdict(s) for s in self.starts],
        }


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    """JSON field names in camelCase, tuples as lists."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = "".join(p if i == 0 else p.title() for i, p in enumerate(key.split("_")))
        out[name] = list(value) if isinstance(value, tuple) else value
    return out
