"""Checks of one valid document that a schema cannot express: the block DAG, evidence, policy."""

from __future__ import annotations

from dataclasses import dataclass

from alloy.diagnostics import Severity
from alloy.load._errors import Loc, suggest
from alloy.load._salvage import ANY
from alloy.model import Intent, Project, duration_seconds
from alloy.model.intent import Lane, limits_over


@dataclass(frozen=True)
class Finding:
    """A problem at a place inside one document."""

    loc: Loc
    message: str
    severity: Severity = "error"
    on_value: bool = True
    #: Other places this finding follows from (`ANY` matches any index or key): when one of
    #: them was wrong and taken out to check the rest, the finding is not reported.
    related: tuple[Loc, ...] = ()
    #: The name a finding about a name is about (see `Salvaged.touches`).
    about: str | None = None


#: Every block's id: a finding about block names follows from all of them.
_IDS: tuple[Loc, ...] = (("spec", "automation", "blocks", ANY, "id"),)


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in `graph` (node -> successors) as a closed path, or None. Deterministic."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    for start in sorted(graph):
        if color[start] != white:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path = [start]
        color[start] = grey
        while stack:
            node, i = stack[-1]
            succ = sorted(graph.get(node, ()))
            if i < len(succ):
                stack[-1] = (node, i + 1)
                nxt = succ[i]
                if nxt not in color:
                    continue
                if color[nxt] == grey:
                    return [*path[path.index(nxt) :], nxt]
                if color[nxt] == white:
                    color[nxt] = grey
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                color[node] = black
                stack.pop()
                path.pop()
    return None


def check_intent(intent: Intent, project: Project) -> list[Finding]:
    out: list[Finding] = []
    spec = intent.spec
    seen_ac: set[str] = set()
    for i, ac in enumerate(spec.acceptance):
        if ac.id in seen_ac:
            out.append(
                Finding(("spec", "acceptance", i, "id"), f"duplicate acceptance id {ac.id!r}")
            )
        seen_ac.add(ac.id)
    auto = spec.automation
    if auto is None:
        for i, ac in enumerate(spec.acceptance):
            if ac.evidence is not None:
                out.append(
                    Finding(
                        ("spec", "acceptance", i, "evidence"),
                        "evidence names a block, but this intent has no automation; "
                        "add spec.automation or remove the evidence",
                        related=(("spec", "automation"),),
                    )
                )
        return out

    blocks = {}
    for i, block in enumerate(auto.blocks):
        if block.id in blocks:
            out.append(
                Finding(
                    ("spec", "automation", "blocks", i, "id"),
                    f"duplicate block id {block.id!r}; block ids must be unique",
                )
            )
        else:
            blocks[block.id] = (i, block)
    for i, block in enumerate(auto.blocks):
        base: Loc = ("spec", "automation", "blocks", i)
        seen: set[str] = set()
        for j, need in enumerate(block.needs):
            if need == block.id:
                out.append(
                    Finding(
                        (*base, "needs", j),
                        f"block {block.id!r} needs itself (cycle: {need} -> {need})",
                    )
                )
            elif need not in blocks:
                hint = suggest(need, blocks)
                out.append(
                    Finding(
                        (*base, "needs", j),
                        f"needs unknown block {need!r}{hint}",
                        related=_IDS,
                        about=need,
                    )
                )
            elif need in seen:
                out.append(Finding((*base, "needs", j), f"block {need!r} is listed twice in needs"))
            seen.add(need)
        out.extend(_check_block_fields(block, base))
        out.extend(_check_policy(block, base, project))
    graph = {b.id: [n for n in b.needs if n != b.id] for b in auto.blocks}
    cycle = find_cycle(graph)
    if cycle and len(cycle) > 2:
        first = blocks[cycle[0]][0]
        out.append(
            Finding(
                ("spec", "automation", "blocks", first, "needs"),
                f"blocks form a cycle: {' -> '.join(cycle)}; remove one of these needs",
            )
        )
    for i, ac in enumerate(spec.acceptance):
        ev = ac.evidence
        if ev is None:
            continue
        if ev.block not in blocks:
            out.append(
                Finding(
                    ("spec", "acceptance", i, "evidence", "block"),
                    f"evidence names unknown block {ev.block!r}{suggest(ev.block, blocks)}",
                    related=_IDS,
                    about=ev.block,
                )
            )
        elif ev.output not in blocks[ev.block][1].outputs:
            declared = blocks[ev.block][1].outputs
            out.append(
                Finding(
                    ("spec", "acceptance", i, "evidence", "output"),
                    f"block {ev.block!r} does not declare output {ev.output!r}"
                    + (suggest(ev.output, declared) or "; add it to the block's outputs"),
                    related=(("spec", "automation", "blocks", blocks[ev.block][0], "outputs"),),
                )
            )
    lowered: dict[str, str] = {}
    for name in auto.inputs:
        if name.upper() in lowered:
            out.append(
                Finding(
                    ("spec", "automation", "inputs", name),
                    f"input {name!r} and {lowered[name.upper()]!r} would both be ALLOY_INPUT_{name.upper()}",
                    on_value=False,
                )
            )
        lowered[name.upper()] = name
    trig = auto.on
    unattended = [
        f"on.{kind}"
        for kind, enabled in (
            ("apply", trig.apply),
            ("push", trig.push is not None),
            ("schedule", trig.schedule is not None),
        )
        if enabled
    ]
    if unattended:
        starts = (
            unattended[0] + " starts"
            if len(unattended) == 1
            else ", ".join(unattended[:-1]) + " and " + unattended[-1] + " start"
        )
        for name, inp in auto.inputs.items():
            if inp.required and inp.default is None:
                out.append(
                    Finding(
                        ("spec", "automation", "inputs", name),
                        f"input {name!r} is required and has no default, but {starts} "
                        "executions with no one to supply it; give it a default, make it "
                        "required: false, or start this automation only by request: true",
                        on_value=False,
                        related=(("spec", "automation", "on"),),
                    )
                )
    lane = auto.lane
    inline = [] if lane is None else inline_settings(lane)
    if lane is not None and lane.name not in project.spec.lanes and not inline:
        out.append(
            Finding(
                ("spec", "automation", "lane", "name"),
                _unknown_lane(lane, project),
                related=(("spec", "automation", "lane"),),
            )
        )
    if lane is not None and lane.name in project.spec.lanes and inline:
        out.append(
            Finding(
                ("spec", "automation", "lane"),
                f"lane {lane.name!r} is defined in .alloy/alloy.yaml; refer to it by name only "
                "(remove limit/queue/maxQueued/cancelRunning/rate here)",
            )
        )
    if spec.state in ("accepted", "active") and not (
        trig.apply or trig.push or trig.schedule or trig.request
    ):
        out.append(
            Finding(
                ("spec", "automation", "on"),
                "no trigger is enabled, so this automation never runs; enable apply, push, "
                "schedule or request",
                severity="warning",
                on_value=False,
                related=(("spec", "state"),),
            )
        )
    return out


_LANE_SETTINGS = ("limit", "queue", "max_queued", "cancel_running", "rate")


def inline_settings(lane: Lane) -> list[str]:
    """The settings an intent gives its lane itself (none: it names a project lane)."""
    return [f for f in _LANE_SETTINGS if getattr(lane, f) is not None]


def _unknown_lane(lane: Lane, project: Project) -> str:
    """A lane given by name only must be one of the project's: a typo is never a new lane."""
    defined = sorted(project.spec.lanes)
    hint = suggest(lane.name, defined)
    return (
        f"unknown lane {lane.name!r}{hint}{' A' if hint else '; a'} lane given by name only "
        f"must be defined in .alloy/alloy.yaml under spec.lanes (defined: "
        f"{', '.join(defined) or 'none'}); add it there, or give it its own settings here, "
        f"like {{name: {lane.name}, limit: 1}}"
    )


def _check_block_fields(block: object, base: Loc) -> list[Finding]:
    from alloy.model import Block

    assert isinstance(block, Block)
    out: list[Finding] = []
    for key in block.env:
        if key.startswith("ALLOY_"):
            out.append(
                Finding(
                    (*base, "env", key),
                    "names starting with ALLOY_ are reserved; rename it",
                    on_value=False,
                )
            )
        if key in block.secrets:
            out.append(
                Finding(
                    (*base, "env", key),
                    f"{key} is both a secret and a plain env value; keep it only in secrets",
                    on_value=False,
                )
            )
    if len(set(block.outputs)) != len(block.outputs):
        out.append(Finding((*base, "outputs"), "an output is listed twice"))
    if block.retry.max == 0 and block.retry.on_exit_codes:
        out.append(
            Finding(
                (*base, "retry", "onExitCodes"),
                "onExitCodes has no effect with retry.max 0; set retry.max",
                severity="warning",
                related=((*base, "retry"),),
            )
        )
    if block.retry.max > 0 and not block.retry.on_exit_codes:
        out.append(
            Finding(
                (*base, "retry", "max"),
                "retry.max is set but retry.onExitCodes is empty, so nothing is retried; "
                "list the exit codes that mean 'try again'",
                severity="warning",
                related=((*base, "retry"),),
            )
        )
    for g, gate in enumerate(block.gates):
        approval = gate.approval
        if (
            approval is not None
            and approval.quorum > len(approval.from_)
            and all(not o.startswith("team:") for o in approval.from_)
        ):
            out.append(
                Finding(
                    (*base, "gates", g, "approval", "quorum"),
                    f"quorum {approval.quorum} is more than the {len(approval.from_)} approver(s) listed",
                    related=((*base, "gates", g, "approval"),),
                )
            )
    return out


def _check_policy(block: object, base: Loc, project: Project) -> list[Finding]:
    from alloy.model import Block

    assert isinstance(block, Block)
    policy = project.spec.policy
    out: list[Finding] = []
    if block.effects in policy.approval_required_for and not any(
        g.approval is not None for g in block.gates
    ):
        out.append(
            Finding(
                (*base, "effects"),
                f"policy: blocks with effects {block.effects!r} need an approval gate "
                "(add gates: [{approval: {from: [<owner>]}}])",
                related=((*base, "gates"),),
            )
        )
    allowed = policy.allowed_executables
    if allowed is not None and block.run[0] not in allowed:
        out.append(
            Finding(
                (*base, "run", 0),
                f"policy: executable {block.run[0]!r} is not allowed; allowed: {', '.join(allowed)}"
                f"{suggest(block.run[0], allowed)}",
            )
        )
    if duration_seconds(block.timeout) > duration_seconds(policy.max_timeout):
        out.append(
            Finding(
                (*base, "timeout"),
                f"policy: timeout {block.timeout} is longer than the allowed {policy.max_timeout}",
            )
        )
    if not policy.network and block.network:
        out.append(
            Finding(
                (*base, "id"),
                "policy: every block runs without a network here; add `network: false` to this "
                "block",
            )
        )
    for field, message in limits_over(block.limits, policy.limits):
        out.append(Finding((*base, "limits", field), message))
    return out
