"""Automation risk: what a pull request changes in the automation that merging turns on.

Each intent of the head is compared with the intent of the same name in the base (a new intent,
or one that did not compile there, compares against nothing). What is compared is the
*effective* automation: the compiled artifact of an intent that compiles (accepted or active,
with automation), normalized by the compiler (durations in seconds, sets sorted, the lane
resolved from the project), so that two spellings of one meaning never make a finding, and an
intent that stops compiling (deprecated, say) never does either. Every finding is anchored to
the line of the head document that says it. Nothing here runs anything: it reads data.

The kinds, their severities and the project policy that marks them blocking are documented in
docs/review.md ("Automation risk").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from alloy.compile import compile_intent, compiles
from alloy.load import PROJECT_PATH, DocResult, Entry, Repository, reload_intent
from alloy.model import Intent, Project, duration_seconds
from alloy.model.project import RISK_KINDS, RiskKind
from alloy.review._lines import Loc, line_of
from alloy.review._model import Finding, FindingKind, Severity

#: Effects from weakest to strongest.
EFFECTS_ORDER = ("none", "idempotent", "reversible", "irreversible")
#: Queue policies by how many pending starts they admit: `reject` none, `latest` one, `fifo` all.
QUEUE_ORDER = ("reject", "latest", "fifo")

_EFFECTS_SEVERITY: dict[str, Severity] = {
    "idempotent": "low",
    "reversible": "medium",
    "irreversible": "high",
}

assert set(RISK_KINDS) == set(get_args(RiskKind))
assert set(RISK_KINDS) <= set(get_args(FindingKind)), "every risk kind is a finding kind"

_AUTO: Loc = ("spec", "automation")
_ON: Loc = (*_AUTO, "on")


def risk_findings(
    base: Repository,
    head: Repository,
    *,
    base_snapshot: Mapping[str, Entry] | None = None,
    head_snapshot: Mapping[str, Entry] | None = None,
    renamed: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Every automation risk of `head` against `base`, in a deterministic order.

    `base_snapshot` and `head_snapshot` are the snapshots the repositories were loaded from:
    they give findings their real lines, and the models of documents that came from the parse
    cache (which keeps no models) are loaded again from them. `renamed` maps a head intent name
    to the base name it was renamed from, so that a renamed intent is compared with its old
    self rather than with nothing.
    """
    blocking = frozenset(base.project.spec.policy.blocking_risks) | frozenset(
        head.project.spec.policy.blocking_risks
    )
    renamed = renamed or {}
    base_intents = base.intents()
    out: list[Finding] = []
    same_project = base.project_digest == head.project_digest
    for name, head_doc in sorted(head.intents().items()):
        base_doc = base_intents.get(renamed.get(name, name))
        if base_doc is not None and _unchanged(
            base_doc, head_doc, base_snapshot, head_snapshot, same_project=same_project
        ):
            continue
        head_side = _side(head_doc, head, head_snapshot)
        if head_side is None or head_side.artifact is None:
            continue  # invalid, or its automation does not run: no risk from it
        base_side = _side(base_doc, base, base_snapshot) if base_doc is not None else None
        owners = _owners(head_side, base_side, head.project, base.project)
        ctx = _Context(
            path=head_doc.path,
            source=(head_snapshot or {}).get(head_doc.path),
            document=name,
            approvers=owners,
            blocking=blocking,
        )
        _compare_intent(
            ctx,
            base_side.artifact["spec"] if base_side and base_side.artifact else None,
            head_side,
            base,
            head,
        )
        out.extend(ctx.findings)
    out.extend(_project_lanes(base, head, head_snapshot, blocking))
    return sorted(out, key=_order)


def _unchanged(
    base: DocResult,
    head: DocResult,
    base_snapshot: Mapping[str, Entry] | None,
    head_snapshot: Mapping[str, Entry] | None,
    *,
    same_project: bool,
) -> bool:
    """Whether an intent's effective automation certainly did not change, known without
    loading it (so that a change to one intent among thousands compares one): the same
    artifact digest (the loader's, kept by the parse cache), or the same bytes under the same
    project settings."""
    digest = head.facts.get("digest")
    if digest is not None and base.facts.get("digest") == digest:
        return True
    if not same_project or base.path != head.path:
        return False
    before = (base_snapshot or {}).get(base.path)
    after = (head_snapshot or {}).get(head.path)
    return before is not None and after is not None and before.data == after.data


def _order(f: Finding) -> tuple[Any, ...]:
    return (f.path, f.line, f.kind, f.message)


# --- one side of the comparison --------------------------------------------------------------


@dataclass(frozen=True)
class _Side:
    doc: DocResult
    intent: Intent
    #: The compiled artifact when the intent compiles (its effective automation), else None.
    artifact: dict[str, Any] | None


def _side(doc: DocResult, repo: Repository, snapshot: Mapping[str, Entry] | None) -> _Side | None:
    """The intent's model and artifact; documents from the parse cache are loaded again."""
    model = doc.model
    artifact = doc.artifact
    if not isinstance(model, Intent):
        entry = (snapshot or {}).get(doc.path)
        if entry is None:
            return None
        fresh = reload_intent(doc.path, entry, repo.project)
        if not isinstance(fresh.model, Intent):
            return None
        model, artifact = fresh.model, fresh.artifact
    if artifact is None and compiles(model):
        # The loader compiles only valid intents; an intent with a policy error (a disallowed
        # executable, say) still says what it would run, and that is what a reviewer must see.
        try:
            artifact = compile_intent(model, repo.project, doc.path)
        except Exception:  # noqa: BLE001 - a document the compiler cannot take carries no risk
            artifact = None
    return _Side(doc, model, artifact if compiles(model) else None)


def _owners(
    head: _Side, base: _Side | None, head_project: Project, base_project: Project
) -> tuple[str, ...]:
    """Whose approval a risk needs: the intent's owners before and after the change (a pull
    request cannot drop an owner to avoid asking them), else the project's owners."""
    owners = set(head.intent.metadata.owners)
    if base is not None:
        owners.update(base.intent.metadata.owners)
    if not owners:
        owners = set(head_project.spec.owners) | set(base_project.spec.owners)
    return tuple(sorted(owners))


@dataclass
class _Context:
    """Where findings about one document go."""

    path: str
    source: Entry | None
    document: str | None
    approvers: tuple[str, ...]
    blocking: frozenset[str]
    findings: list[Finding] = field(default_factory=list)

    def add(
        self,
        kind: RiskKind,
        severity: Severity,
        loc: Loc,
        message: str,
        details: dict[str, Any],
    ) -> None:
        if kind in self.blocking:
            severity = "blocking"
            details = {**details, "policy": "spec.policy.blockingRisks"}
        self.findings.append(
            Finding(
                kind=kind,
                severity=severity,
                path=self.path,
                line=line_of(self.source, loc),
                message=message,
                document=self.document,
                details=details,
                approvers=self.approvers if severity in ("blocking", "high") else (),
            )
        )


# --- comparing one intent --------------------------------------------------------------------


def _compare_intent(
    ctx: _Context,
    base: dict[str, Any] | None,
    head: _Side,
    base_repo: Repository,
    head_repo: Repository,
) -> None:
    assert head.artifact is not None
    assert head.intent.spec.automation is not None
    spec = head.artifact["spec"]
    _triggers(ctx, base["triggers"] if base else None, spec["triggers"], head.intent)
    _intent_lane(ctx, base, spec, (base_repo.project, head_repo.project))
    base_blocks = {b["id"]: b for b in base["blocks"]} if base else {}
    head_blocks = {b["id"]: b for b in spec["blocks"]}
    known_exes = {b["run"][0] for b in base_blocks.values()}
    allowed = head_repo.project.spec.policy.allowed_executables
    seen: set[str] = set()
    for block in head.intent.spec.automation.blocks:  # in the order the file lists them
        hb = head_blocks.get(block.id)
        if hb is None or block.id in seen:
            continue
        seen.add(block.id)
        bid = block.id
        at: Loc = (*_AUTO, "blocks", bid)
        bb = base_blocks.get(bid)
        _effects(ctx, bid, at, bb, hb)
        exe = hb["run"][0]
        if exe not in known_exes:
            known_exes.add(exe)  # once per intent, at the first block that runs it
            outside = allowed is not None and exe not in allowed
            ctx.add(
                "executable-new",
                "high" if outside else "medium",
                (*at, "run", 0),
                f"block {bid} runs a new executable {exe!r}"
                + (" (not in spec.policy.allowedExecutables)" if outside else ""),
                {
                    "block": bid,
                    "executable": exe,
                    "run": list(hb["run"]),
                    "allowed": None if allowed is None else not outside,
                },
            )
        for j, secret in enumerate(hb["secrets"]):
            if bb is None or secret not in bb["secrets"]:
                ctx.add(
                    "secret-new",
                    "high",
                    (*at, "secrets", _index(block.secrets, secret, j)),
                    f"block {bid} gets the secret {secret}",
                    {"block": bid, "secret": secret},
                )
        if bb is None:
            continue
        if bb["run"] != hb["run"]:
            ctx.add(
                "run-changed",
                "medium",
                (*at, "run"),
                f"block {bid} runs a changed command: {_argv(bb['run'])} -> {_argv(hb['run'])}",
                {"block": bid, "from": list(bb["run"]), "to": list(hb["run"])},
            )
        _gates(ctx, bid, at, bb["gates"], hb["gates"])
        if hb["timeoutSeconds"] > bb["timeoutSeconds"]:
            ctx.add(
                "timeout-raised",
                "low",
                (*at, "timeout"),
                f"block {bid}: timeout raised from {_secs(bb['timeoutSeconds'])} "
                f"to {_secs(hb['timeoutSeconds'])}",
                {"block": bid, "from": bb["timeoutSeconds"], "to": hb["timeoutSeconds"]},
            )
        _retry(ctx, bid, at, bb["retry"], hb["retry"])


def _index(items: list[str], value: str, fallback: int) -> int:
    """Where `value` is written in the file's list (the artifact's lists are sorted)."""
    try:
        return items.index(value)
    except ValueError:
        return fallback


def _effects(
    ctx: _Context, bid: str, at: Loc, bb: dict[str, Any] | None, hb: dict[str, Any]
) -> None:
    before = bb["effects"] if bb is not None else None
    after = hb["effects"]
    rank_before = EFFECTS_ORDER.index(before) if before is not None else 0
    if EFFECTS_ORDER.index(after) <= rank_before:
        return
    if before is None and after == "idempotent":
        return  # a new block that is safe to repeat is no stronger than nothing
    message = (
        f"block {bid}: effects {before} -> {after}"
        if before is not None
        else f"new block {bid} has {after} effects"
    )
    ctx.add(
        "effects-stronger",
        _EFFECTS_SEVERITY[after],
        (*at, "effects"),
        message,
        {"block": bid, "from": before, "to": after},
    )


def _retry(ctx: _Context, bid: str, at: Loc, before: dict[str, Any], after: dict[str, Any]) -> None:
    if after["max"] > before["max"]:
        ctx.add(
            "retry-raised",
            "low",
            (*at, "retry", "max"),
            f"block {bid}: retries raised from {before['max']} to {after['max']}",
            {"block": bid, "field": "max", "from": before["max"], "to": after["max"]},
        )
    added = sorted(set(after["onExitCodes"]) - set(before["onExitCodes"]))
    if added:
        ctx.add(
            "retry-raised",
            "low",
            (*at, "retry", "onExitCodes"),
            f"block {bid}: also retried on exit code(s) {', '.join(map(str, added))}",
            {
                "block": bid,
                "field": "onExitCodes",
                "from": list(before["onExitCodes"]),
                "to": list(after["onExitCodes"]),
                "added": added,
            },
        )


# --- gates -----------------------------------------------------------------------------------


def pair_gates(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Match the gates of a block before and after: equal gates first, then gates of the same
    kind in order. Returns the pairs (base index, head index), the base gates left over
    (removed) and the head gates left over (added)."""
    free_before = list(range(len(before)))
    free_after = list(range(len(after)))
    pairs: list[tuple[int, int]] = []
    for exact in (True, False):
        for hi in list(free_after):
            for bi in free_before:
                b, h = before[bi], after[hi]
                if (b == h) if exact else (b["kind"] == h["kind"]):
                    pairs.append((bi, hi))
                    free_before.remove(bi)
                    free_after.remove(hi)
                    break
    return sorted(pairs), free_before, free_after


def _gates(
    ctx: _Context, bid: str, at: Loc, before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> None:
    pairs, removed, _added = pair_gates(before, after)
    for bi in removed:
        gate = before[bi]
        ctx.add(
            "gate-removed",
            "high",
            (*at, "gates"),
            f"block {bid}: {gate['kind']} gate removed ({_gate_text(gate)})",
            {"block": bid, "index": bi, "gate": gate},
        )
    for bi, hi in pairs:
        if before[bi] != after[hi]:
            for change in _loosenings(before[bi], after[hi]):
                loc: Loc = (*at, "gates", hi, after[hi]["kind"])
                ctx.add(
                    "gate-loosened",
                    change.severity,
                    (*loc, change.key) if change.key else loc,
                    f"block {bid}: {after[hi]['kind']} gate {change.what}",
                    {
                        "block": bid,
                        "index": hi,
                        "gate": after[hi]["kind"],
                        "field": change.name,
                        "from": change.was,
                        "to": change.now,
                        **change.extra,
                    },
                )


@dataclass(frozen=True)
class _Loosening:
    name: str
    #: The key in the head's YAML gate that says it (None: the gate itself, the key is gone).
    key: str | None
    what: str
    was: Any
    now: Any
    severity: Severity = "high"
    extra: dict[str, Any] = field(default_factory=dict)


def _loosenings(b: dict[str, Any], h: dict[str, Any]) -> list[_Loosening]:
    """How a gate of one kind admits more than before."""
    out: list[_Loosening] = []
    kind = h["kind"]
    if kind == "approval":
        if h["quorum"] < b["quorum"]:
            out.append(
                _Loosening(
                    "quorum",
                    "quorum",
                    f"quorum lowered from {b['quorum']} to {h['quorum']}",
                    b["quorum"],
                    h["quorum"],
                )
            )
        was, now = b.get("expiresSeconds"), h.get("expiresSeconds")
        if was is not None and (now is None or now > was):
            out.append(
                _Loosening(
                    "expiresSeconds",
                    "expires" if now is not None else None,
                    f"expiry removed (was {_secs(was)})"
                    if now is None
                    else f"expiry raised from {_secs(was)} to {_secs(now)}",
                    was,
                    now,
                )
            )
        if b["forbidSelf"] and not h["forbidSelf"]:
            out.append(
                _Loosening(
                    "forbidSelf",
                    "forbidSelf",
                    "allows self-approval (forbidSelf: false)",
                    was=True,
                    now=False,
                )
            )
        widened = sorted(set(h["from"]) - set(b["from"]))
        if widened:
            out.append(
                _Loosening(
                    "from",
                    "from",
                    f"accepts approval from {', '.join(widened)} as well",
                    list(b["from"]),
                    list(h["from"]),
                    extra={"added": widened},
                )
            )
    elif kind == "check":
        dropped = sorted(set(b["names"]) - set(h["names"]))
        if dropped:
            out.append(
                _Loosening(
                    "names",
                    "names",
                    f"no longer requires {', '.join(dropped)}",
                    list(b["names"]),
                    list(h["names"]),
                    extra={"removed": dropped},
                )
            )
    elif kind == "window":
        out.extend(
            _Loosening(
                key, key, f"{key} changed from {b[key]!r} to {h[key]!r}", b[key], h[key], "medium"
            )
            for key in ("cron", "timezone")
            if b[key] != h[key]
        )
    elif kind == "after":
        if b["intent"] != h["intent"]:
            out.append(
                _Loosening(
                    "intent",
                    "intent",
                    f"waits for {h['intent']!r} instead of {b['intent']!r}",
                    b["intent"],
                    h["intent"],
                    "medium",
                )
            )
        was, now = b.get("withinSeconds"), h.get("withinSeconds")
        if was is not None and (now is None or now > was):
            out.append(
                _Loosening(
                    "withinSeconds",
                    "within" if now is not None else None,
                    f"accepts older executions (within {_secs(was)} -> "
                    f"{'any time' if now is None else _secs(now)})",
                    was,
                    now,
                    "medium",
                )
            )
    elif kind == "command" and b["run"] != h["run"]:
        out.append(
            _Loosening(
                "run",
                "run",
                f"policy command changed: {_argv(b['run'])} -> {_argv(h['run'])}",
                list(b["run"]),
                list(h["run"]),
            )
        )
    return out


def _gate_text(gate: dict[str, Any]) -> str:
    kind = gate["kind"]
    if kind == "approval":
        return f"from {', '.join(gate['from'])}, quorum {gate['quorum']}"
    if kind == "check":
        return ", ".join(gate["names"])
    if kind == "window":
        return f"{gate['cron']} {gate['timezone']}"
    if kind == "after":
        return f"after {gate['intent']}"
    return _argv(gate["run"])


# --- triggers --------------------------------------------------------------------------------


def _triggers(
    ctx: _Context, before: dict[str, Any] | None, after: dict[str, Any], intent: Intent
) -> None:
    assert intent.spec.automation is not None
    on = intent.spec.automation.on
    for flag in ("apply", "request"):
        if after[flag] and not (before or {}).get(flag):
            what = (
                "runs once for each new artifact digest (apply)"
                if flag == "apply"
                else "may be run by Request documents"
            )
            ctx.add(
                "trigger-new",
                "medium",
                (*_ON, flag),
                f"new trigger: {what}",
                {"trigger": flag, "from": bool((before or {}).get(flag)), "to": True},
            )
    push = after.get("push")
    if push is not None:
        was = (before or {}).get("push")
        old_paths = was["paths"] if was is not None else []
        added = sorted(set(push["paths"]) - set(old_paths))
        if added:
            written = on.push.paths if on.push is not None else []
            first = min((written.index(p) for p in added if p in written), default=None)
            ctx.add(
                "trigger-new",
                "medium",
                (*_ON, "push", "paths", first) if first is not None else (*_ON, "push"),
                (
                    f"new trigger: runs on pushes touching {', '.join(added)}"
                    if was is None
                    else f"push trigger widened to {', '.join(added)}"
                ),
                {
                    "trigger": "push",
                    "from": list(old_paths) if was is not None else None,
                    "to": list(push["paths"]),
                    "added": added,
                },
            )
    schedule = after.get("schedule")
    if schedule is not None:
        was = (before or {}).get("schedule")
        if was is None:
            ctx.add(
                "trigger-new",
                "medium",
                (*_ON, "schedule"),
                f"new trigger: scheduled at {schedule['cron']!r} ({schedule['timezone']})",
                {"trigger": "schedule", "from": None, "to": dict(schedule)},
            )
        else:
            for key in ("cron", "timezone"):
                if was[key] != schedule[key]:
                    ctx.add(
                        "trigger-new",
                        "medium",
                        (*_ON, "schedule", key),
                        f"schedule {key} changed from {was[key]!r} to {schedule[key]!r}",
                        {
                            "trigger": "schedule",
                            "field": key,
                            "from": was[key],
                            "to": schedule[key],
                        },
                    )


# --- lanes -----------------------------------------------------------------------------------


def lane_widened(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[tuple[str, Any, Any]]:
    """How a resolved lane (artifact form: `limit`, `queue`, `maxQueued`, `cancelRunning`,
    `rate` as `{count, periodSeconds}`) admits more than before: (field, before, after) each.
    No lane before is no finding (a lane only narrows); no lane after is the widest of all."""
    if before is None:
        return []
    if after is None:
        return [("lane", dict(before), None)]
    out: list[tuple[str, Any, Any]] = []
    if after["limit"] > before["limit"]:
        out.append(("limit", before["limit"], after["limit"]))
    if QUEUE_ORDER.index(after["queue"]) > QUEUE_ORDER.index(before["queue"]):
        out.append(("queue", before["queue"], after["queue"]))
    was, now = before.get("maxQueued"), after.get("maxQueued")
    if was is not None and (now is None or now > was):
        out.append(("maxQueued", was, now))
    if bool(before.get("cancelRunning")) != bool(after.get("cancelRunning")):
        out.append(
            ("cancelRunning", bool(before.get("cancelRunning")), bool(after.get("cancelRunning")))
        )
    was, now = before.get("rate"), after.get("rate")
    if was is not None and (
        now is None or now["count"] * was["periodSeconds"] > was["count"] * now["periodSeconds"]
    ):
        out.append(("rate", dict(was), dict(now) if now is not None else None))
    return out


def _lane_text(field_name: str, was: Any, now: Any) -> str:
    def show(value: Any) -> str:
        if value is None:
            return "none" if field_name != "maxQueued" else "unbounded"
        if field_name == "rate":
            return f"{value['count']} per {_secs(value['periodSeconds'])}"
        if field_name == "lane":
            return str(value["name"])
        return str(value).lower() if isinstance(value, bool) else str(value)

    if field_name == "lane":
        return f"lane {show(was)} removed: starts are no longer throttled"
    if field_name == "cancelRunning":
        return f"cancelRunning turned {'on' if now else 'off'}"
    return f"{field_name} {show(was)} -> {show(now)}"


def _intent_lane(
    ctx: _Context,
    base: dict[str, Any] | None,
    spec: dict[str, Any],
    projects: tuple[Project, Project],
) -> None:
    before, after = (base or {}).get("lane"), spec.get("lane")
    if (
        before is not None
        and after is not None
        and before["name"] == after["name"]
        and before["name"] in projects[0].spec.lanes
        and after["name"] in projects[1].spec.lanes
    ):
        return  # a lane of the project: its changes are reported once, on .alloy/alloy.yaml
    for field_name, was, now in lane_widened(before, after):
        loc: Loc = _AUTO if field_name == "lane" else (*_AUTO, "lane", field_name)
        name = (after or before or {}).get("name")
        details: dict[str, Any] = {"lane": name, "field": field_name, "from": was, "to": now}
        if before is not None and after is not None and before["name"] != after["name"]:
            details["fromLane"] = before["name"]
        ctx.add(
            "lane-widened",
            "medium",
            loc,
            f"lane {name}: {_lane_text(field_name, was, now)}",
            details,
        )


def _resolved(spec: Any) -> dict[str, Any]:
    """A project lane (`LaneSpec`) in the artifact's resolved form."""
    out: dict[str, Any] = {
        "name": "",
        "limit": spec.limit,
        "queue": spec.queue,
        "cancelRunning": spec.cancel_running,
    }
    if spec.max_queued is not None:
        out["maxQueued"] = spec.max_queued
    if spec.rate is not None:
        count, _, period = spec.rate.split(" ")
        out["rate"] = {"count": int(count), "periodSeconds": duration_seconds(period)}
    return out


def _project_lanes(
    base: Repository,
    head: Repository,
    head_snapshot: Mapping[str, Entry] | None,
    blocking: frozenset[str],
) -> list[Finding]:
    """Shared lanes of `.alloy/alloy.yaml` that admit more than before (a new lane narrows:
    intents that use it were unthrottled or resolved elsewhere, reported on the intent)."""
    ctx = _Context(
        path=PROJECT_PATH,
        source=(head_snapshot or {}).get(PROJECT_PATH),
        document=head.project.metadata.name,
        approvers=tuple(sorted(set(head.project.spec.owners) | set(base.project.spec.owners))),
        blocking=blocking,
    )
    before_lanes = base.project.spec.lanes
    for name, lane in sorted(head.project.spec.lanes.items()):
        was_spec = before_lanes.get(name)
        if was_spec is None:
            continue
        was, now = _resolved(was_spec), _resolved(lane)
        for field_name, b, h in lane_widened(was, now):
            ctx.add(
                "lane-widened",
                "medium",
                ("spec", "lanes", name, field_name),
                f"project lane {name}: {_lane_text(field_name, b, h)}",
                {"lane": name, "field": field_name, "from": b, "to": h, "scope": "project"},
            )
    return ctx.findings


# --- text ------------------------------------------------------------------------------------


def _secs(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _argv(run: Iterable[str]) -> str:
    return "[" + ", ".join(_quote(a) for a in run) + "]"


def _quote(arg: str) -> str:
    short = arg if len(arg) <= 60 else arg[:57] + "..."
    return short if short and all(c.isalnum() or c in "-_./=:@+%," for c in short) else repr(short)


__all__ = ["EFFECTS_ORDER", "QUEUE_ORDER", "lane_widened", "pair_gates", "risk_findings"]
