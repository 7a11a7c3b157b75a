"""The data of every view, as the JSON twin returns it and the templates render it.

Each function takes the repositories' states and returns plain data (`schemaVersion` first), so
the HTML page and `?format=json` can never disagree: the page is this data drawn.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alloy import status as status_mod
from alloy.model import Intent
from alloy.web._repo import ExecutionRef, RepoState, Summary

SCHEMA_VERSION = 1
PAGE_SIZE = 50
#: "needs attention" first, in this order; everything else after
ATTENTION = ("failed", "indeterminate", "waiting-on-person", "stale-evidence")


@dataclass(frozen=True)
class Filters:
    repo: str = ""
    owner: str = ""
    state: str = ""
    label: str = ""
    status: str = ""
    q: str = ""
    page: int = 1

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ("", None)}


def _execution_brief(ref: ExecutionRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {
        "id": ref.id,
        "status": ref.status,
        "event": ref.event,
        "artifactDigest": ref.digest,
        "startedAt": ref.started_at,
        "finishedAt": ref.finished_at,
        "reason": ref.reason,
    }


def evidence_state(item: dict[str, Any]) -> str:
    """fresh / stale / missing / unlinked, from an `alloy status` evidence item."""
    if item["status"] == "unlinked":
        return "unlinked"
    if item["status"] == "produced":
        return "stale" if item["stale"] else "fresh"
    return "missing"


def _attention(
    last: ExecutionRef | None, waiting: list[dict[str, Any]], evidence: list[str]
) -> str | None:
    if last is not None and last.status in ("failed", "indeterminate"):
        return last.status
    if any(w["kind"] == "approval" for w in waiting):
        return "waiting-on-person"
    if "stale" in evidence:
        return "stale-evidence"
    return None


def intent_row(state: RepoState, name: str) -> dict[str, Any]:
    """The overview's row of intent `name` of one repository."""
    summary = state.intents.inputs[name].summary
    executions = state.by_intent.get(name, [])
    last = executions[0] if executions else None
    waiting = [
        {"execution": ref.id, "block": w[0], "index": w[1], "kind": w[2], "reason": w[3]}
        for ref in executions
        if ref.status not in status_mod.FINISHED
        for w in ref.waiting
    ]
    evidence = [
        {"acceptance": e["acceptance"], "state": evidence_state(e), "execution": e["execution"]}
        for e in state.evidence(name)
    ]
    return {
        "repo": state.key,
        "name": name,
        "title": summary.title,
        "state": summary.state,
        "owners": list(summary.owners),
        "labels": dict(summary.labels),
        "goal": summary.goal,
        "lastExecution": _execution_brief(last),
        "evidence": evidence,
        "waiting": waiting,
        "attention": _attention(last, waiting, [e["state"] for e in evidence]),
    }


class Rows:
    """The overview's rows of one repository, made again only for the intents that changed
    (`RepoState.take_dirty`): a trace push costs the rows of the intents it ran."""

    def __init__(self) -> None:
        self.by_name: dict[str, dict[str, Any]] = {}
        self.rows: list[dict[str, Any]] = []

    def update(self, state: RepoState) -> None:
        with state.lock:
            dirty = state.take_dirty()
            names = state.intents.inputs
            if dirty is None:
                self.by_name = {name: intent_row(state, name) for name in sorted(names)}
            else:
                for name in dirty:
                    if name in names:
                        self.by_name[name] = intent_row(state, name)
            self.rows = list(self.by_name.values())


def _matches(row: dict[str, Any], f: Filters) -> bool:
    if f.repo and row["repo"] != f.repo:
        return False
    if f.owner and not any(f.owner.casefold() in o.casefold() for o in row["owners"]):
        return False
    if f.state and row["state"] != f.state:
        return False
    if f.label:
        key, _, value = f.label.partition("=")
        if key not in row["labels"] or (value and row["labels"][key] != value):
            return False
    if f.status:
        last = row["lastExecution"]
        if f.status == "none" and last is not None:
            return False
        if f.status != "none" and (last is None or last["status"] != f.status):
            return False
    if f.q:
        needle = f.q.casefold()
        text = " ".join([row["name"], row["title"] or "", row["goal"]]).casefold()
        if needle not in text:
            return False
    return True


def _rank(row: dict[str, Any]) -> int:
    attention = row["attention"]
    return ATTENTION.index(attention) if attention in ATTENTION else len(ATTENTION)


def repositories(states: Sequence[RepoState], writable: bool) -> list[dict[str, Any]]:
    return [
        {
            "key": s.key,
            "url": s.view.display_url,
            "defaultBranch": s.default_branch,
            "tracesBranch": s.traces_branch,
            "commit": s.intents.commit,
            "tracesCommit": s.traces_commit,
            "problems": s.intents.problems,
            "warnings": s.warnings[:20],
            "error": s.error,
            "writable": writable,
        }
        for s in states
    ]


def overview(
    states: Sequence[RepoState], rows: list[dict[str, Any]], f: Filters, writable: bool
) -> dict[str, Any]:
    chosen = [r for r in rows if _matches(r, f)]
    chosen.sort(key=_rank)  # stable: by repository and name within a rank
    pages = max(1, math.ceil(len(chosen) / PAGE_SIZE))
    page = min(max(1, f.page), pages)
    counts: dict[str, int] = {}
    for row in chosen:
        if row["attention"]:
            counts[row["attention"]] = counts.get(row["attention"], 0) + 1
    return {
        "schemaVersion": SCHEMA_VERSION,
        "view": "overview",
        "repositories": repositories(states, writable),
        "filters": f.to_json(),
        "total": len(chosen),
        "page": page,
        "pages": pages,
        "pageSize": PAGE_SIZE,
        "attention": counts,
        "intents": chosen[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        "choices": {
            "states": sorted({r["state"] for r in rows}),
            "statuses": sorted(
                {r["lastExecution"]["status"] for r in rows if r["lastExecution"]} | {"none"}
            ),
        },
    }


def relations(state: RepoState, name: str) -> dict[str, list[str]]:
    """`dependsOn` and `supersedes` both ways."""
    summary = state.intents.inputs[name].summary
    reverse = state.intents.reverse.get(name, {})
    return {
        "dependsOn": list(summary.depends_on),
        "supersedes": list(summary.supersedes),
        "dependedOnBy": list(reverse.get("dependedOnBy", [])),
        "supersededBy": list(reverse.get("supersededBy", [])),
    }


def automation(intent: Intent, now: datetime.datetime) -> dict[str, Any] | None:
    from alloy.explain import next_slots

    auto = intent.spec.automation
    if auto is None:
        return None
    triggers: dict[str, Any] = {
        "apply": auto.on.apply,
        "request": auto.on.request,
        "push": None if auto.on.push is None else {"paths": list(auto.on.push.paths)},
        "schedule": None,
    }
    if auto.on.schedule is not None:
        s = auto.on.schedule
        try:
            slots = next_slots(s.cron, s.timezone, now, 3)
        except (ValueError, KeyError):
            slots = []
        triggers["schedule"] = {
            "cron": s.cron,
            "timezone": s.timezone,
            "overlap": s.overlap,
            "catchUp": s.catch_up,
            "next": slots,
        }
    blocks = []
    for block in auto.blocks:
        gates = []
        for index, gate in enumerate(block.gates):
            kind, body = next((k, v) for k, v in gate.model_dump(by_alias=True).items() if v)
            gates.append({"index": index, "kind": kind, "spec": body})
        blocks.append(
            {
                "id": block.id,
                "effects": block.effects,
                "needs": list(block.needs),
                "run": list(block.run),
                "timeout": block.timeout,
                "retries": block.retry.max,
                "outputs": list(block.outputs),
                "secrets": list(block.secrets),
                "gates": gates,
            }
        )
    return {
        "triggers": triggers,
        "inputs": {
            k: v.model_dump(by_alias=True, exclude_none=True) for k, v in auto.inputs.items()
        },
        "lane": None
        if auto.lane is None
        else auto.lane.model_dump(by_alias=True, exclude_none=True),
        "blocks": blocks,
    }


def intent_view(
    state: RepoState,
    name: str,
    *,
    history: list[dict[str, Any]],
    findings: list[dict[str, Any]],
    now: datetime.datetime,
) -> dict[str, Any]:
    given = state.intents.inputs[name]
    intent = state.intent_model(name)
    if intent is None:
        raise LookupError(f"intent {name!r} cannot be read again from {given.path}")
    executions = state.by_intent.get(name, [])
    evidence = [{**item, "state": evidence_state(item)} for item in state.evidence(name)]
    return {
        "schemaVersion": SCHEMA_VERSION,
        "view": "intent",
        "repo": state.key,
        "commit": state.intents.commit,
        "name": name,
        "path": given.path,
        "title": intent.metadata.title,
        "labels": dict(intent.metadata.labels),
        "owners": list(intent.metadata.owners),
        "state": intent.spec.state,
        "goal": intent.spec.goal,
        "rationale": intent.spec.rationale,
        "artifact": None
        if given.artifact is None
        else {
            "name": given.artifact.name,
            "path": given.artifact.path,
            "digest": given.artifact.digest,
            "state": given.artifact.state,
        },
        "lifecycle": history,
        "acceptance": evidence,
        "relations": relations(state, name),
        "automation": automation(intent, now),
        "executions": [_execution_brief(ref) for ref in executions[:100]],
        "executionsTotal": len(executions),
        "findings": findings,
    }


def approvers(intent: Summary | None, block: str, index: int) -> dict[str, Any] | None:
    """Who may decide gate `index` of `block`, from the intent's current text."""
    for b, i, from_, quorum, forbid_self, expires in intent.approvals if intent else ():
        if (b, i) == (block, index):
            return {
                "from": list(from_),
                "quorum": quorum,
                "forbidSelf": forbid_self,
                "expires": expires,
            }
    return None


def _parse_duration(text: str | None) -> datetime.timedelta | None:
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    total = 0
    number = ""
    for ch in text:
        if ch.isdigit():
            number += ch
        elif ch in units and number:
            total += int(number) * units[ch]
            number = ""
        else:
            return None
    return datetime.timedelta(seconds=total) if not number else None


def _stamp(text: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def waiting_items(
    state: RepoState, ref: ExecutionRef, gates: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """For each gate `ref` waits on: why, on whom, until when, and what unblocks it."""
    given = state.intents.inputs.get(ref.intent)
    intent = given.summary if given else None
    first_waiting: dict[tuple[str, int], str] = {}
    for g in gates:
        if g["decision"] == "waiting":
            first_waiting.setdefault((g["block"], g["index"]), g["at"])
    out = []
    for block, index, kind, reason, _at in ref.waiting:
        who = approvers(intent, block, index) if kind == "approval" else None
        until = None
        if who and who["expires"]:
            start = _stamp(first_waiting.get((block, index), ""))
            span = _parse_duration(who["expires"])
            if start is not None and span is not None:
                until = (start + span).isoformat().replace("+00:00", "Z")
        if kind == "approval":
            unblock = (
                f"an Approval merged to {state.default_branch}: "
                f"alloy approve {ref.id} --gate {block}/{index}"
            )
        elif kind == "check":
            unblock = "the named check runs succeeding on the commit"
        elif kind == "window":
            unblock = "the time window opening (the next reconcile pass after it opens)"
        elif kind == "after":
            unblock = "the named intent succeeding (the next reconcile pass after it does)"
        else:
            unblock = "the policy command exiting 0 on the next reconcile pass"
        out.append(
            {
                "block": block,
                "index": index,
                "kind": kind,
                "reason": reason,
                "onWhom": who,
                "until": until,
                "unblock": unblock,
            }
        )
    return out


def approvals(states: Sequence[RepoState]) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for state in states:
        for ref in sorted(state.executions.values(), key=lambda r: r.id):
            if ref.status in status_mod.FINISHED:
                continue
            if ref.status == "indeterminate":
                items.append(
                    {
                        "repo": state.key,
                        "intent": ref.intent,
                        "execution": ref.id,
                        "kind": "indeterminate",
                        "reason": ref.reason,
                        "onWhom": None,
                        "until": None,
                    }
                )
            given = state.intents.inputs.get(ref.intent)
            for block, index, kind, reason, at in ref.waiting:
                if kind != "approval":
                    continue
                who = approvers(given.summary if given else None, block, index)
                until = None
                if who and who["expires"]:
                    start, span = _stamp(at), _parse_duration(who["expires"])
                    if start is not None and span is not None:
                        until = (start + span).isoformat().replace("+00:00", "Z")
                items.append(
                    {
                        "repo": state.key,
                        "intent": ref.intent,
                        "execution": ref.id,
                        "kind": "approval",
                        "block": block,
                        "index": index,
                        "gate": f"{block}/{index}",
                        "reason": reason,
                        "onWhom": who,
                        "until": until,
                    }
                )
    return {"schemaVersion": SCHEMA_VERSION, "view": "approvals", "items": items}


def lanes(states: Sequence[RepoState]) -> dict[str, Any]:
    out = []
    for state in states:
        declared: dict[str, list[str]] = {}
        for name, given in state.intents.inputs.items():
            if given.summary.lane is not None:
                declared.setdefault(given.summary.lane, []).append(name)
        for lane in sorted(set(declared) | set(state.lanes)):
            doc = state.lanes.get(lane, {})
            out.append(
                {
                    "repo": state.key,
                    "lane": lane,
                    "intents": sorted(declared.get(lane, [])),
                    "holders": doc.get("holders", []),
                    "waiting": doc.get("waiting", []),
                    "superseded": doc.get("superseded", []),
                }
            )
    return {"schemaVersion": SCHEMA_VERSION, "view": "lanes", "lanes": out}
