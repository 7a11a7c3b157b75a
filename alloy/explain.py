"""`alloy explain`: an intent in plain words — what, why, who, how it is shown to hold, what runs."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from alloy.model import Intent, Project, duration_seconds
from alloy.model.intent import Block, Gate

_EFFECTS = {
    "none": "no side effects",
    "idempotent": "side effects that are safe to repeat",
    "reversible": "side effects that can be undone",
    "irreversible": "IRREVERSIBLE side effects",
}
_QUEUE = {
    "fifo": "further runs wait in order",
    "latest": "only the newest pending run is kept",
    "reject": "runs that find the lane full are refused",
}


def _human(duration: str) -> str:
    seconds = duration_seconds(duration)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def next_slots(cron: str, timezone: str, now: datetime, count: int = 2) -> list[str]:
    zone = ZoneInfo(timezone)
    it = croniter(cron, now.astimezone(zone))
    return [it.get_next(datetime).strftime("%Y-%m-%d %H:%M %Z") for _ in range(count)]


def _gate(gate: Gate) -> str:
    if gate.approval is not None:
        a = gate.approval
        text = f"approval by {', '.join(a.from_)} ({a.quorum} needed"
        text += ", not by the one who asked" if a.forbid_self else ""
        text += f", expires after {_human(a.expires)})" if a.expires else ")"
        return text
    if gate.check is not None:
        return f"checks green on the commit: {', '.join(gate.check.names)}"
    if gate.window is not None:
        return f"time window '{gate.window.cron}' ({gate.window.timezone})"
    if gate.after is not None:
        within = f" within {_human(gate.after.within)}" if gate.after.within else ""
        return f"a successful execution of intent {gate.after.intent}{within}"
    assert gate.command is not None
    return f"policy command `{shlex.join(gate.command.run)}` exits 0"


def _block(n: int, block: Block) -> list[str]:
    after = f" (after {', '.join(block.needs)})" if block.needs else ""
    lines = [f"  {n}. {block.id}{after}: runs `{shlex.join(block.run)}`"]
    details = [f"timeout {_human(block.timeout)}", _EFFECTS[block.effects]]
    r = block.retry
    if r.max and r.on_exit_codes:
        codes = ", ".join(str(c) for c in r.on_exit_codes)
        details.append(
            f"retried up to {r.max} time{'s' if r.max != 1 else ''}"
            f" after {_human(r.backoff)} on exit code {codes}"
        )
    if block.outputs:
        details.append(f"keeps {', '.join(block.outputs)}")
    if block.secrets:
        details.append(f"receives secrets {', '.join(block.secrets)}")
    lines.append(f"     {'; '.join(details)}")
    lines.extend(f"     waits for {_gate(gate)}" for gate in block.gates)
    return lines


def run_order(blocks: Sequence[Block]) -> list[Block]:
    """The blocks in the order they run: each after the blocks it needs, else in the order the
    intent lists them (a cycle, which `alloy check` refuses, keeps the rest in that order)."""
    by_id = {b.id: b for b in blocks}
    done: dict[str, Block] = {}

    def visit(block: Block, seen: frozenset[str]) -> None:
        if block.id in done or block.id in seen:
            return
        for need in block.needs:
            if need in by_id:
                visit(by_id[need], seen | {block.id})
        done[block.id] = block

    for block in blocks:
        visit(block, frozenset())
    return list(done.values())


def _triggers(intent: Intent, project: Project, now: datetime) -> list[str]:
    assert intent.spec.automation is not None
    on = intent.spec.automation.on
    triggers = []
    if on.apply:
        triggers.append(
            "once for each new version of its artifact that lands on the default branch"
        )
    if on.push:
        triggers.append(
            f"for new commits on {project.spec.default_branch} touching {', '.join(on.push.paths)}"
        )
    if on.schedule:
        s = on.schedule
        text = f"on schedule '{s.cron}' ({s.timezone}), next {', '.join(next_slots(s.cron, s.timezone, now))}"
        text += (
            f"; missed slots caught up within {_human(s.catch_up)}"
            if duration_seconds(s.catch_up)
            else "; missed slots are not caught up"
        )
        text += {
            "skip": "; a slot is skipped while the previous run is still going",
            "queue": "; a slot waits for the previous run",
            "allow": "; runs may overlap",
        }[s.overlap]
        triggers.append(text)
    if on.request:
        triggers.append("when a reviewed Request document asks for it")
    return triggers


def explain_json(
    intent: Intent,
    project: Project,
    *,
    digest: str | None,
    now: datetime,
    artifact_status: str | None = None,
) -> dict[str, Any]:
    """What `explain` says, as data (docs/schemas/alloy-explain.schema.json)."""
    meta, spec = intent.metadata, intent.spec
    auto = spec.automation
    automation: dict[str, Any] | None = None
    if auto is not None:
        lane = None
        if auto.lane is not None:
            shared = project.spec.lanes.get(auto.lane.name)
            lane = {
                "name": auto.lane.name,
                "limit": shared.limit if shared else (auto.lane.limit or 1),
                "queue": shared.queue if shared else (auto.lane.queue or "fifo"),
            }
        automation = {
            "triggers": _triggers(intent, project, now),
            "inputs": {
                name: {"type": inp.type, "default": inp.default, "required": inp.required}
                for name, inp in auto.inputs.items()
            },
            "lane": lane,
            "blocks": [
                {
                    "id": b.id,
                    "needs": list(b.needs),
                    "run": list(b.run),
                    "timeout": b.timeout,
                    "effects": b.effects,
                    "outputs": list(b.outputs),
                    "secrets": list(b.secrets),
                    "gates": [_gate(g) for g in b.gates],
                }
                for b in run_order(auto.blocks)
            ],
        }
    return {
        "intent": meta.name,
        "title": meta.title,
        "state": spec.state,
        "artifact": {"digest": digest, "status": artifact_status} if digest else None,
        "owners": list(meta.owners or project.spec.owners),
        "goal": spec.goal,
        "rationale": spec.rationale,
        "acceptance": [
            {
                "id": ac.id,
                "statement": ac.statement,
                "evidence": {"block": ac.evidence.block, "output": ac.evidence.output}
                if ac.evidence
                else None,
            }
            for ac in spec.acceptance
        ],
        "relations": {
            "dependsOn": list(spec.relations.depends_on),
            "supersedes": list(spec.relations.supersedes),
        },
        "automation": automation,
    }


def explain(
    intent: Intent,
    project: Project,
    *,
    digest: str | None,
    now: datetime,
    artifact_status: str | None = None,
) -> str:
    """The intent in plain words. `digest` is its artifact's, if it compiles;
    `artifact_status` says how the artifact file compares (for example "up to date")."""
    meta, spec = intent.metadata, intent.spec
    out = [f"{meta.name}" + (f" — {meta.title}" if meta.title else "")]
    compiled = (
        f"; artifact {digest}" + (f" ({artifact_status})" if artifact_status else "")
        if digest
        else "; not compiled (only accepted and active intents with automation are)"
    )
    out.append(f"State: {spec.state}{compiled}")
    owners = meta.owners or project.spec.owners
    out.append(f"Owners: {', '.join(owners) if owners else 'nobody (add metadata.owners)'}")
    out += ["", f"What: {spec.goal}"]
    out.append(f"Why: {spec.rationale}" if spec.rationale else "Why: (no rationale given)")
    out += ["", "How it is shown to hold:"]
    if not spec.acceptance:
        out.append("  (no acceptance criteria)")
    for ac in spec.acceptance:
        ev = (
            f" — evidence: {ac.evidence.output} from block {ac.evidence.block}"
            if ac.evidence
            else ""
        )
        out.append(f"  {ac.id}: {ac.statement}{ev}")
    rel = spec.relations
    if rel.depends_on or rel.supersedes:
        out += ["", "Relations:"]
        if rel.depends_on:
            out.append(f"  depends on {', '.join(rel.depends_on)}")
        if rel.supersedes:
            out.append(f"  supersedes {', '.join(rel.supersedes)}")
    out += ["", "What runs when:"]
    auto = spec.automation
    if auto is None:
        out.append("  nothing: this intent has no automation")
        return "\n".join(out) + "\n"
    triggers = _triggers(intent, project, now)
    for t in triggers or ["never: no trigger is enabled"]:
        out.append(f"  - {t}")
    if auto.inputs:
        parts = []
        for name, inp in auto.inputs.items():
            extra = (
                f", default {inp.default!r}"
                if inp.default is not None
                else (", required" if inp.required else "")
            )
            parts.append(f"{name} ({inp.type}{extra}) as ALLOY_INPUT_{name.upper()}")
        out.append(f"  Inputs: {'; '.join(parts)}")
    if auto.lane is not None:
        shared = project.spec.lanes.get(auto.lane.name)
        limit = shared.limit if shared else (auto.lane.limit or 1)
        queue = shared.queue if shared else (auto.lane.queue or "fifo")
        out.append(f"  Lane {auto.lane.name}: at most {limit} at a time; {_QUEUE[queue]}")
    out.append("  Blocks:")
    for n, block in enumerate(run_order(auto.blocks), 1):
        out += _block(n, block)
    return "\n".join(out) + "\n"


def explain_named(root: Path, name: str, *, now: datetime, as_json: bool = False) -> Any:
    """`alloy explain NAME` in the repository at `root`: the text, or with `as_json` the data."""
    from alloy import workspace

    intent, doc, repo = workspace.load_intent(root, name)
    digest = doc.artifact["digest"] if doc.artifact else None
    return (explain_json if as_json else explain)(
        intent,
        repo.project,
        digest=digest,
        now=now,
        artifact_status=workspace.artifact_status(root, doc),
    )
