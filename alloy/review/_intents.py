"""Decisions inside intents: lifecycle moves (allowed or not, and whose approval each needs)
and acceptance criteria added, removed or reworded. Works on plain data, so even an intent
that does not validate has its lifecycle move reviewed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alloy.load import Entry
from alloy.review._diff import Pair
from alloy.review._lines import line_of
from alloy.review._model import Finding
from alloy.review._snapshot import get_in, name_of

#: DESIGN section 3: the only allowed lifecycle moves.
ALLOWED_MOVES: dict[str, frozenset[str]] = {
    "proposed": frozenset({"accepted", "rejected"}),
    "accepted": frozenset({"active", "deprecated"}),
    "active": frozenset({"deprecated"}),
    "deprecated": frozenset({"retired", "active"}),
    "retired": frozenset(),
    "rejected": frozenset(),
}
#: A new intent is reviewed as if it moved from this state.
NEW_INTENT_STATE = "proposed"
#: States an intent document may be deleted in without a lifecycle finding.
REMOVABLE_STATES = frozenset({"proposed", "rejected", "retired"})


def state_of(data: Any) -> str:
    """`spec.state` of intent data (`proposed` when unset, as the model defaults)."""
    state = get_in(data, ("spec", "state"))
    return state if isinstance(state, str) else NEW_INTENT_STATE


def owners_of(data: Any, fallback: Sequence[str]) -> tuple[str, ...]:
    """An intent's owners; an intent without owners falls back to the project's owners."""
    owners = get_in(data, ("metadata", "owners"))
    found = sorted({o for o in owners if isinstance(o, str)}) if isinstance(owners, list) else []
    return tuple(found or sorted(set(fallback)))


def lifecycle(
    pair: Pair,
    base: Mapping[str, Entry],
    head: Mapping[str, Entry],
    project_owners: Sequence[str],
) -> tuple[tuple[str, str] | None, list[Finding]]:
    """The state change of one intent document, and its finding."""
    if pair.kind != "Intent":
        return None, []
    if pair.head_path is None:
        return None, _removed(pair, base, project_owners)
    if pair.head is not None and not isinstance(pair.head, dict):
        return None, []
    new = state_of(pair.head)
    created = pair.base_path is None or not isinstance(pair.base, dict)
    old = NEW_INTENT_STATE if created else state_of(pair.base)
    if old == new:
        return None, []
    name = name_of(pair.head_path, pair.head)
    owners = owners_of(pair.head, project_owners)
    line = line_of(head.get(pair.head_path), ("spec", "state"))
    details: dict[str, Any] = {"from": old, "to": new}
    if created:
        details["new"] = True
    allowed = new in ALLOWED_MOVES.get(old, frozenset())
    what = f"new intent in state {new}" if created else f"{old} -> {new}"
    if allowed:
        finding = Finding(
            "lifecycle-move",
            "medium",
            pair.head_path,
            line,
            f"lifecycle move {what}: needs approval from {', '.join(owners) or 'the owners'}",
            document=name,
            details=details,
            approvers=owners,
        )
    else:
        allowed_next = sorted(ALLOWED_MOVES.get(old, frozenset()))
        hint = (
            f"from {old} an intent may move to {' or '.join(allowed_next)}"
            if allowed_next
            else f"{old} is final"
        )
        if created:
            hint = f"a new intent starts as proposed and may be accepted; {hint}"
        finding = Finding(
            "lifecycle-move-disallowed",
            "blocking",
            pair.head_path,
            line,
            f"lifecycle move {what} is not allowed ({hint})",
            document=name,
            details={**details, "allowed": allowed_next},
            approvers=owners,
        )
    return (old, new), [finding]


def _removed(pair: Pair, base: Mapping[str, Entry], project_owners: Sequence[str]) -> list[Finding]:
    """Deleting an intent that is still in force skips deprecation and retirement."""
    assert pair.base_path is not None
    if not isinstance(pair.base, dict):
        return []
    old = state_of(pair.base)
    if old in REMOVABLE_STATES:
        return []
    owners = owners_of(pair.base, project_owners)
    return [
        Finding(
            "lifecycle-move-disallowed",
            "blocking",
            pair.base_path,
            line_of(base.get(pair.base_path), ("spec", "state")),
            f"intent removed while {old}; move it to deprecated and retired instead of deleting "
            "the file (or delete it once it is retired)",
            document=name_of(pair.base_path, pair.base),
            details={"from": old, "to": None, "removed": True},
            approvers=owners,
        )
    ]


def _criteria(data: Any) -> dict[str, dict[str, Any]]:
    items = get_in(data, ("spec", "acceptance"))
    out: dict[str, dict[str, Any]] = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                out.setdefault(item["id"], item)
    return out


def acceptance(pair: Pair, base: Mapping[str, Entry], head: Mapping[str, Entry]) -> list[Finding]:
    """Criteria added, removed or reworded in an intent that exists on both sides (changed or
    renamed); a new or deleted intent is reported as a document change instead."""
    if pair.kind != "Intent" or pair.base_path is None or pair.head_path is None:
        return []
    old, new = _criteria(pair.base), _criteria(pair.head)
    name = name_of(pair.head_path, pair.head)
    head_entry, base_entry = head.get(pair.head_path), base.get(pair.base_path)
    out: list[Finding] = []
    for ac_id in sorted(old.keys() | new.keys()):
        before, after = old.get(ac_id), new.get(ac_id)
        if before is None and after is not None:
            out.append(
                Finding(
                    "acceptance-added",
                    "info",
                    pair.head_path,
                    line_of(head_entry, ("spec", "acceptance", ac_id)),
                    f"acceptance criterion {ac_id} added: {_statement(after)}",
                    document=name,
                    details={
                        "id": ac_id,
                        "statement": _statement(after),
                        "evidence": after.get("evidence"),
                    },
                )
            )
        elif after is None and before is not None:
            out.append(
                Finding(
                    "acceptance-removed",
                    "high",
                    pair.base_path,
                    line_of(base_entry, ("spec", "acceptance", ac_id)),
                    f"acceptance criterion {ac_id} removed: {_statement(before)}",
                    document=name,
                    details={
                        "id": ac_id,
                        "statement": _statement(before),
                        "evidence": before.get("evidence"),
                    },
                )
            )
        elif before is not None and after is not None:
            what = [f for f in ("statement", "evidence") if before.get(f) != after.get(f)]
            if not what:
                continue
            out.append(
                Finding(
                    "acceptance-reworded",
                    "low",
                    pair.head_path,
                    line_of(head_entry, ("spec", "acceptance", ac_id, what[0])),
                    f"acceptance criterion {ac_id} reworded ({' and '.join(what)} changed)",
                    document=name,
                    details={
                        "id": ac_id,
                        "changed": what,
                        "old": _statement(before),
                        "new": _statement(after),
                        "oldEvidence": before.get("evidence"),
                        "newEvidence": after.get("evidence"),
                    },
                )
            )
    return out


def _statement(item: dict[str, Any]) -> str:
    value = item.get("statement")
    return value if isinstance(value, str) else ""
