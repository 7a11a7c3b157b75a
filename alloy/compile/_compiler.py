"""The compiler: an accepted or active intent -> its Artifact (normalized, defaults applied)."""

from __future__ import annotations

from typing import Any

from alloy._version import API_VERSION, COMPILER, FOUNDRY_FEATURES
from alloy.compile._canonical import canonical_bytes, document_digest, sha256_digest
from alloy.model import COMPILED_STATES, Gate, Intent, Project, duration_seconds
from alloy.model.intent import Block, Limits


def compiles(intent: Intent) -> bool:
    """Only accepted and active intents with automation become artifacts."""
    return intent.spec.state in COMPILED_STATES and intent.spec.automation is not None


def normalized_intent(intent: Intent) -> dict[str, Any]:
    """The intent's meaning as data: durations in seconds, sets sorted, blocks and acceptance
    criteria ordered by id, defaults applied. Two spellings of one meaning give equal data."""
    meta, spec = intent.metadata, intent.spec
    out: dict[str, Any] = {
        "metadata": {
            "name": meta.name,
            "owners": sorted(set(meta.owners)),
            "labels": dict(meta.labels),
            "annotations": dict(meta.annotations),
        },
        "spec": {
            "state": spec.state,
            "goal": spec.goal,
            "acceptance": _acceptance(intent),
            "relations": {
                "dependsOn": sorted(set(spec.relations.depends_on)),
                "supersedes": sorted(set(spec.relations.supersedes)),
            },
        },
    }
    if meta.title is not None:
        out["metadata"]["title"] = meta.title
    if spec.rationale is not None:
        out["spec"]["rationale"] = spec.rationale
    auto = spec.automation
    if auto is not None:
        automation: dict[str, Any] = {
            "triggers": _triggers(intent),
            "inputs": _inputs(intent),
            "blocks": [_block(b) for b in sorted(auto.blocks, key=lambda b: b.id)],
        }
        if auto.lane is not None:
            automation["lane"] = auto.lane.model_dump(mode="json", by_alias=True, exclude_none=True)
        out["spec"]["automation"] = automation
    return out


def source_digest(intent: Intent) -> str:
    """Digest of the intent's meaning (comments, order and formatting do not count)."""
    return sha256_digest(canonical_bytes(normalized_intent(intent)))


def _rate(text: str | None) -> dict[str, int] | None:
    if text is None:
        return None
    count, _, period = text.split(" ")
    return {"count": int(count), "periodSeconds": duration_seconds(period)}


def _gate(gate: Gate) -> dict[str, Any]:
    if gate.approval is not None:
        a = gate.approval
        out: dict[str, Any] = {
            "kind": "approval",
            "from": sorted(set(a.from_)),
            "quorum": a.quorum,
            "forbidSelf": a.forbid_self,
        }
        if a.expires is not None:
            out["expiresSeconds"] = duration_seconds(a.expires)
        return out
    if gate.check is not None:
        out = {"kind": "check", "names": sorted(set(gate.check.names))}
        if gate.check.timeout is not None:
            out["timeoutSeconds"] = duration_seconds(gate.check.timeout)
        return out
    if gate.window is not None:
        return {
            "kind": "window",
            "cron": " ".join(gate.window.cron.split()),
            "timezone": gate.window.timezone,
        }
    if gate.after is not None:
        out = {"kind": "after", "intent": gate.after.intent}
        if gate.after.within is not None:
            out["withinSeconds"] = duration_seconds(gate.after.within)
        return out
    assert gate.command is not None
    return {
        "kind": "command",
        "run": list(gate.command.run),
        "timeoutSeconds": duration_seconds(gate.command.timeout),
    }


def _block(block: Block) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": block.id,
        "needs": sorted(set(block.needs)),
        "run": list(block.run),
        "timeoutSeconds": duration_seconds(block.timeout),
        "retry": {
            "max": block.retry.max,
            "backoffSeconds": duration_seconds(block.retry.backoff),
            "onExitCodes": sorted(set(block.retry.on_exit_codes)),
        },
        "effects": block.effects,
        "gates": [_gate(g) for g in block.gates],
        "outputs": sorted(set(block.outputs)),
        "env": dict(block.env),
        "secrets": sorted(set(block.secrets)),
    }
    if block.workdir is not None:
        out["workdir"] = block.workdir
    # Written only when not the default: an intent that does not use them keeps its digest.
    if not block.network:
        out["network"] = False
    if block.limits is not None and block.limits.resolved():
        out["limits"] = block.limits.resolved()
    return out


def _with_policy(block: dict[str, Any], policy: Limits | None) -> dict[str, Any]:
    """A normalized block with the project's limits where it sets none of its own."""
    if policy is None or not policy.resolved():
        return block
    return {**block, "limits": {**policy.resolved(), **block.get("limits", {})}}


def _acceptance(intent: Intent) -> list[dict[str, Any]]:
    return [
        {
            "id": ac.id,
            "statement": ac.statement,
            **(
                {"evidence": {"block": ac.evidence.block, "output": ac.evidence.output}}
                if ac.evidence
                else {}
            ),
        }
        for ac in sorted(intent.spec.acceptance, key=lambda a: a.id)
    ]


def _triggers(intent: Intent) -> dict[str, Any]:
    assert intent.spec.automation is not None
    on = intent.spec.automation.on
    triggers: dict[str, Any] = {"apply": on.apply, "request": on.request}
    if on.push is not None:
        triggers["push"] = {"paths": sorted(set(on.push.paths))}
    if on.schedule is not None:
        s = on.schedule
        triggers["schedule"] = {
            "cron": " ".join(s.cron.split()),
            "timezone": s.timezone,
            "catchUpSeconds": duration_seconds(s.catch_up),
            "overlap": s.overlap,
        }
    return triggers


def _inputs(intent: Intent) -> dict[str, Any]:
    assert intent.spec.automation is not None
    inputs: dict[str, Any] = {}
    for name, inp in intent.spec.automation.inputs.items():
        entry: dict[str, Any] = {"type": inp.type, "required": inp.required}
        if inp.default is not None:
            entry["default"] = inp.default
        inputs[name] = entry
    return inputs


def _lane(intent: Intent, project: Project) -> dict[str, Any] | None:
    assert intent.spec.automation is not None
    lane = intent.spec.automation.lane
    if lane is None:
        return None
    shared = project.spec.lanes.get(lane.name)
    if shared is not None:
        resolved: dict[str, Any] = {
            "name": lane.name,
            "limit": shared.limit,
            "queue": shared.queue,
            "cancelRunning": shared.cancel_running,
        }
        max_queued, rate = shared.max_queued, shared.rate
    else:
        resolved = {
            "name": lane.name,
            "limit": lane.limit or 1,
            "queue": lane.queue or "fifo",
            "cancelRunning": bool(lane.cancel_running),
        }
        max_queued, rate = lane.max_queued, lane.rate
    if max_queued is not None:
        resolved["maxQueued"] = max_queued
    if rate is not None:
        resolved["rate"] = _rate(rate)
    return resolved


def _requires(blocks: list[dict[str, Any]], lane: dict[str, Any] | None) -> str:
    """`foundry>=X.Y.Z`: the first Foundry that runs every feature this artifact uses."""
    used = {"base"}
    for block in blocks:
        used.update(f"gate:{gate['kind']}" for gate in block["gates"])
        used.update(f"block.{key}" for key in ("network", "limits") if key in block)
    if lane is not None and lane.get("rate"):
        used.add("lane.rate")
    version = max(FOUNDRY_FEATURES[feature] for feature in used)
    return "foundry>=" + ".".join(str(part) for part in version)


def compile_intent(intent: Intent, project: Project, source: str) -> dict[str, Any]:
    """The artifact document of `intent` (with its digest). The intent must compile."""
    normalized = normalized_intent(intent)
    automation = normalized["spec"]["automation"]
    intent_part: dict[str, Any] = {
        "name": intent.metadata.name,
        "state": intent.spec.state,
        "owners": normalized["metadata"]["owners"],
        "acceptance": normalized["spec"]["acceptance"],
    }
    if intent.metadata.title is not None:
        intent_part["title"] = intent.metadata.title
    lane = _lane(intent, project)
    blocks = [_with_policy(b, project.spec.policy.limits) for b in automation["blocks"]]
    artifact_spec: dict[str, Any] = {
        "intent": intent_part,
        "triggers": automation["triggers"],
        "inputs": automation["inputs"],
        "blocks": blocks,
        "provenance": {
            "source": source,
            "sourceDigest": sha256_digest(canonical_bytes(normalized)),
            "compiler": COMPILER,
            "requires": _requires(blocks, lane),
        },
    }
    if lane is not None:
        artifact_spec["lane"] = lane
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Artifact",
        "metadata": {"name": intent.metadata.name},
        "spec": artifact_spec,
    }
    document["digest"] = document_digest(document)
    return document
