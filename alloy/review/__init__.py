"""Review of intent changes (DESIGN section 7): a semantic diff of two snapshots of `.alloy/`.

`review_snapshots` takes both trees as data (path -> `alloy.load.Entry`), loads them with the
loader, and says what a reviewer needs to know: documents added, changed, removed and renamed;
lifecycle moves and whose approval they need; acceptance criteria added, removed or reworded;
automation risk; invalid documents and broken references; artifacts out of date or edited by
hand; and what merging would start. Nothing from either tree is ever executed: documents are
parsed as plain data and compiled in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from alloy.load import DocumentCache, Entry, load_repository
from alloy.load._repository import load_project
from alloy.review._artifacts import artifact_findings
from alloy.review._diff import Pair, changed_fields, diff_documents
from alloy.review._intents import ALLOWED_MOVES, acceptance, lifecycle
from alloy.review._lines import line_of
from alloy.review._model import (
    SEVERITIES,
    DocumentChange,
    Finding,
    FindingKind,
    Review,
    Severity,
    Start,
)
from alloy.review._plan import would_start
from alloy.review._policy import effective_policy, project_findings
from alloy.review._risk import risk_findings
from alloy.review._snapshot import name_of
from alloy.review._validity import validity_findings

__all__ = [
    "ALLOWED_MOVES",
    "SEVERITIES",
    "DocumentChange",
    "Finding",
    "FindingKind",
    "Pair",
    "Review",
    "Severity",
    "Start",
    "changed_fields",
    "line_of",
    "review_snapshots",
]


def review_snapshots(
    base: Mapping[str, Entry],
    head: Mapping[str, Entry],
    *,
    base_label: str,
    head_label: str,
    recorded: frozenset[str] = frozenset(),
    changed_paths: Sequence[str] = (),
    cache: DocumentCache | None = None,
) -> Review:
    """The review of `head` against `base` (snapshots of `.alloy/`, as `load_repository` takes).

    `recorded` holds the execution ids already on the traces branch (not shown as new starts);
    `changed_paths` the repository paths the change touches (for push triggers); `cache` an
    `alloy.load.DocumentCache`, so unchanged documents are not parsed again.
    """
    base_repo = load_repository(base, cache)
    head_project, _ = load_project(head)
    # The head's intents are checked against the stricter of both policies: a pull request
    # that loosens the policy is judged by the base's until it is merged.
    policy = effective_policy(base_repo.project.spec.policy, head_project.spec.policy)
    same = policy == head_project.spec.policy
    head_repo = load_repository(head, cache if same else None, policy=policy)
    review = Review(base=base_label, head=head_label)
    changes, pairs = diff_documents(base, head)
    # Who owns the project is the base's say: a pull request cannot make itself an owner.
    project_owners = list(base_repo.project.spec.owners or head_project.spec.owners)
    review.findings.extend(project_findings(base_repo.project, head_project, base, head))
    states: dict[str, tuple[str, str]] = {}
    for pair in pairs:
        state, found = lifecycle(pair, base, head, project_owners)
        review.findings.extend(found)
        review.findings.extend(acceptance(pair, base, head))
        if state is not None and pair.head_path is not None:
            states[pair.head_path] = state
    for change in changes:
        state = states.get(change.path) if change.change != "removed" else None
        review.changes.append(replace(change, state=state) if state else change)
    review.findings.extend(validity_findings(head_repo, head))
    review.findings.extend(artifact_findings(head_repo, head, base))
    renamed = {
        name_of(p.head_path, p.head): name_of(p.base_path, p.base)
        for p in pairs
        if p.kind == "Intent" and p.base_path and p.head_path and p.base_path != p.head_path
    }
    review.findings.extend(
        risk_findings(base_repo, head_repo, base_snapshot=base, head_snapshot=head, renamed=renamed)
    )
    review.starts.extend(
        would_start(
            base_repo,
            head_repo,
            head,
            recorded=recorded,
            changed_paths=changed_paths,
            base_snapshot=base,
        )
    )
    review.approvers = sorted({a for f in review.findings for a in f.approvers})
    review.sort()
    return review
