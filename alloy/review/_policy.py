"""The project document under review: a pull request never weakens what protects the default
branch.

The policy a review checks the head's intents against is the stricter of the base's and the
head's, field by field (`effective_policy`): a head that loosens the policy is judged by the
base's until it is merged, and a head that tightens it is judged by its own at once. Every change
of the project document that loosens a policy field, changes who owns the project, or moves the
traces branch, the default branch or a lane is its own blocking finding, for the base's project
owners to approve (`project_findings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from alloy.load import Entry
from alloy.model import Project
from alloy.model._common import duration_seconds
from alloy.model.intent import LIMIT_FIELDS, Effects, Limits
from alloy.model.project import Policy
from alloy.review._lines import Loc, line_of
from alloy.review._model import Finding, FindingKind

PROJECT_PATH = ".alloy/alloy.yaml"
_EFFECTS: tuple[str, ...] = get_args(Effects)


def effective_policy(base: Policy, head: Policy) -> Policy:
    """The stricter of `base` and `head`, field by field."""
    if base == head:
        return head
    if base.allowed_executables is not None and head.allowed_executables is not None:
        allowed: list[str] | None = sorted(
            set(base.allowed_executables) & set(head.allowed_executables)
        )
    else:
        allowed = (
            base.allowed_executables
            if base.allowed_executables is not None
            else head.allowed_executables
        )
    return Policy.model_validate(
        {
            "approvalRequiredFor": sorted(
                set(base.approval_required_for) | set(head.approval_required_for),
                key=_EFFECTS.index,
            ),
            "allowedExecutables": allowed,
            "maxTimeout": min(base.max_timeout, head.max_timeout, key=duration_seconds),
            "maxFileBytes": min(base.max_file_bytes, head.max_file_bytes),
            "blockingRisks": sorted(set(base.blocking_risks) | set(head.blocking_risks)),
            "network": base.network and head.network,
            "limits": _stricter_limits(base.limits, head.limits),
        }
    )


def _stricter_limits(base: Limits | None, head: Limits | None) -> dict[str, Any] | None:
    """Each limit the lower of the two (one that only one side sets, as that side sets it)."""
    sides = [side for side in (base, head) if side is not None]
    if not sides:
        return None
    out: dict[str, Any] = {}
    for key, field in LIMIT_FIELDS.items():
        setting = [side for side in sides if key in side.resolved()]
        if setting:
            lowest = min(setting, key=lambda side: side.resolved()[key])
            out[field] = lowest.model_dump(by_alias=True)[field]
    return out


def project_findings(
    base: Project,
    head: Project,
    base_snapshot: Mapping[str, Entry],
    head_snapshot: Mapping[str, Entry],
) -> list[Finding]:
    """Blocking findings for every change of the project document that loosens a policy field,
    changes the project's owners, moves the traces branch, the default branch or a lane, or
    changes the command of the intent assistant."""
    if base == head:
        return []
    approvers = tuple(sorted(base.spec.owners))
    entry = head_snapshot.get(PROJECT_PATH) or base_snapshot.get(PROJECT_PATH)
    out: list[Finding] = []

    def add(kind: FindingKind, loc: Loc, message: str, details: dict[str, Any]) -> None:
        who = f"; the project owners ({', '.join(approvers)}) must approve it" if approvers else ""
        out.append(
            Finding(
                kind=kind,
                severity="blocking",
                path=PROJECT_PATH,
                line=line_of(entry, loc),
                message=message + who,
                document="project",
                details=details,
                approvers=approvers,
            )
        )

    for field, message, details in _loosened(base.spec.policy, head.spec.policy):
        add("policy-loosened", ("spec", "policy", field), message, details)
    removed = sorted(set(base.spec.owners) - set(head.spec.owners))
    added = sorted(set(head.spec.owners) - set(base.spec.owners))
    if removed or added:
        said = "; ".join(
            part
            for part in (
                f"removes {', '.join(removed)}" if removed else "",
                f"adds {', '.join(added)}" if added else "",
            )
            if part
        )
        add(
            "owners-changed",
            ("spec", "owners"),
            f"project owners changed: {said} (who owns the project decides what needs whose "
            "approval)",
            {"removed": removed, "added": added},
        )
    if base.spec.traces.branch != head.spec.traces.branch:
        add(
            "traces-changed",
            ("spec", "traces", "branch"),
            f"traces branch moved from {base.spec.traces.branch} to {head.spec.traces.branch} "
            "(where every runner records what ran)",
            {"from": base.spec.traces.branch, "to": head.spec.traces.branch},
        )
    if base.spec.default_branch != head.spec.default_branch:
        add(
            "default-branch-changed",
            ("spec", "defaultBranch"),
            f"default branch changed from {base.spec.default_branch} to "
            f"{head.spec.default_branch} (the branch runners take intent from)",
            {"from": base.spec.default_branch, "to": head.spec.default_branch},
        )
    if base.spec.assistant != head.spec.assistant:
        before = base.spec.assistant.model_dump(by_alias=True) if base.spec.assistant else None
        after = head.spec.assistant.model_dump(by_alias=True) if head.spec.assistant else None
        add(
            "assistant-changed",
            ("spec", "assistant"),
            "the intent assistant's command changed (it runs on the machine of whoever runs "
            "`alloy critique` once this is on the default branch)",
            {"from": before, "to": after},
        )
    for name in sorted(set(base.spec.lanes) | set(head.spec.lanes)):
        old, new = base.spec.lanes.get(name), head.spec.lanes.get(name)
        if old == new:
            continue
        before = old.model_dump(by_alias=True) if old is not None else None
        after = new.model_dump(by_alias=True) if new is not None else None
        what = "added" if old is None else "removed" if new is None else "changed"
        changed = (
            sorted(
                k for k in {**(before or {}), **(after or {})} if _get(before, k) != _get(after, k)
            )
            if before is not None and after is not None
            else []
        )
        fields = f" ({', '.join(changed)})" if changed else ""
        add(
            "lanes-changed",
            ("spec", "lanes", name),
            f"lane {name} {what}{fields} (how many executions run at once)",
            {"lane": name, "from": before, "to": after},
        )
    return out


def _get(data: Mapping[str, Any] | None, key: str) -> Any:
    return data.get(key) if data is not None else None


def _loosened(base: Policy, head: Policy) -> list[tuple[str, str, dict[str, Any]]]:
    """(field, message, details) for each way `head` is looser than `base`."""
    out: list[tuple[str, str, dict[str, Any]]] = []

    def add(field: str, message: str, **details: Any) -> None:
        out.append((field, f"policy loosened: {message}", {"field": field, **details}))

    dropped = sorted(set(base.approval_required_for) - set(head.approval_required_for))
    if dropped:
        said = ", ".join(dropped)
        add(
            "approvalRequiredFor",
            f"blocks with effects {said} would no longer need an approval gate",
            removed=dropped,
        )
    if base.allowed_executables is not None:
        if head.allowed_executables is None:
            add(
                "allowedExecutables",
                "any executable would be allowed (allowedExecutables removed)",
                removed=base.allowed_executables,
            )
        else:
            new = sorted(set(head.allowed_executables) - set(base.allowed_executables))
            if new:
                add(
                    "allowedExecutables",
                    f"executables {', '.join(new)} would be allowed",
                    added=new,
                )
    if duration_seconds(head.max_timeout) > duration_seconds(base.max_timeout):
        was, now = base.max_timeout, head.max_timeout
        add("maxTimeout", f"maxTimeout raised from {was} to {now}", **{"from": was, "to": now})
    if base.network is False and head.network:
        add("network", "blocks could have a network again (network: false removed)")
    was_l, now_l = (
        (base.limits.resolved() if base.limits else {}),
        (head.limits.resolved() if head.limits else {}),
    )
    for key, field in LIMIT_FIELDS.items():
        if key in was_l and (key not in now_l or now_l[key] > was_l[key]):
            before = base.limits.model_dump(by_alias=True)[field] if base.limits else None
            after = head.limits.model_dump(by_alias=True)[field] if head.limits else None
            said = f"raised from {before} to {after}" if after is not None else "removed"
            add(f"limits.{field}", f"limits.{field} {said}", **{"from": before, "to": after})
    if head.max_file_bytes > base.max_file_bytes:
        was_b, now_b = base.max_file_bytes, head.max_file_bytes
        add(
            "maxFileBytes",
            f"maxFileBytes raised from {was_b} to {now_b}",
            **{"from": was_b, "to": now_b},
        )
    gone = sorted(set(base.blocking_risks) - set(head.blocking_risks))
    if gone:
        add(
            "blockingRisks", f"risks {', '.join(gone)} would no longer block a review", removed=gone
        )
    return out
