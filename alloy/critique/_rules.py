"""The deterministic rules about one intent's text and structure (no traces, no network)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from alloy.critique._findings import Finding, Loc, Severity, field_text
from alloy.critique._text import GOAL_QUESTION, is_measurable, vague_words
from alloy.model import COMPILED_STATES, Intent
from alloy.review import line_of


@dataclass(frozen=True)
class IntentDocument:
    """One intent as critique reads it: its name, its file (path and bytes, for the lines of
    the findings) and its model. The model may fail the loader's cross checks (an evidence
    link to an output no block declares, say): critique still reads it."""

    name: str
    path: str
    data: bytes
    intent: Intent


Add = Callable[[str, Severity, Loc, str, str], None]


def adder(doc: IntentDocument, out: list[Finding]) -> Add:
    def add(kind: str, severity: Severity, loc: Loc, message: str, suggestion: str) -> None:
        out.append(
            Finding(
                path=doc.path,
                line=line_of(doc.data, loc),
                kind=kind,
                intent=doc.name,
                severity=severity,
                field=field_text(loc),
                message=message,
                suggestion=suggestion,
            )
        )

    return add


def _quote(text: str, limit: int = 80) -> str:
    one_line = " ".join(text.split())
    return repr(one_line if len(one_line) <= limit else one_line[: limit - 3] + "...")


def text_findings(doc: IntentDocument, add: Add) -> None:
    """Goal with nothing measurable, vague words in the goal and the statements, no rationale,
    no acceptance criteria."""
    spec = doc.intent.spec
    if not is_measurable(spec.goal):
        add(
            "goal-unmeasurable",
            "warning",
            ("spec", "goal"),
            f"the goal {_quote(spec.goal)} says nothing measurable (no number, unit, threshold, "
            "time bound or comparison), so no one can tell when it holds",
            GOAL_QUESTION,
        )
    texts: list[tuple[Loc, str, str]] = [(("spec", "goal"), "the goal", spec.goal)]
    texts.extend(
        (("spec", "acceptance", ac.id, "statement"), f"acceptance {ac.id}", ac.statement)
        for ac in spec.acceptance
    )
    for loc, what, text in texts:
        found = vague_words(text)
        if not found:
            continue
        words = ", ".join(f"'{v.word}'" for v in found)
        add(
            "vague-word",
            # A text that also holds a number may already say what the word means.
            "info" if is_measurable(text) else "warning",
            loc,
            f"{what} uses {words} where a number belongs",
            " ".join(f"'{v.word}': {v.question}" for v in found),
        )
    if spec.rationale is None or not spec.rationale.strip():
        add(
            "rationale-missing",
            "info",
            ("spec", "rationale"),
            "there is no rationale: readers (and whoever reviews a change to it later) cannot "
            "tell why this matters or what it is worth",
            "Why does this matter, and what goes wrong without it? Add it as spec.rationale.",
        )
    if not spec.acceptance:
        add(
            "acceptance-missing",
            "warning",
            ("spec", "acceptance"),
            "there are no acceptance criteria: nothing says how to tell that the goal holds",
            "What would you check to know the goal holds? Add it as spec.acceptance "
            "(- id: AC-1, statement: ..., evidence: {block, output}).",
        )


def evidence_findings(doc: IntentDocument, add: Add) -> None:
    """Acceptance criteria without an evidence link, or linked to an output no block declares."""
    spec = doc.intent.spec
    auto = spec.automation
    blocks = {b.id: b for b in auto.blocks} if auto is not None else {}
    declared = [(b.id, o) for b in blocks.values() for o in b.outputs]
    example = (
        f"evidence: {{block: {declared[0][0]}, output: {declared[0][1]}}}"
        if declared
        else "evidence: {block: ..., output: ...}"
    )
    for ac in spec.acceptance:
        base: Loc = ("spec", "acceptance", ac.id)
        ev = ac.evidence
        if ev is None:
            if auto is None:
                add(
                    "acceptance-no-evidence",
                    "info",
                    base,
                    f"acceptance {ac.id} has no evidence link, and the intent has no automation "
                    "to produce one",
                    "Which file would show that it holds? Once a block writes it, link it: "
                    f"{example}.",
                )
            else:
                outputs = ", ".join(f"{b}/{o}" for b, o in declared) or "none yet"
                add(
                    "acceptance-no-evidence",
                    "warning",
                    base,
                    f"acceptance {ac.id} has no evidence link, so no execution ever shows "
                    "whether it holds",
                    f"Which output shows it holds? Link it: {example} (declared outputs: "
                    f"{outputs}); or add a block that writes one.",
                )
            continue
        link = f"{ev.block}/{ev.output}"
        if auto is None:
            add(
                "evidence-unproduced",
                "warning",
                (*base, "evidence"),
                f"acceptance {ac.id} takes its evidence from {link}, but the intent has no "
                "automation: no block produces it",
                "Add spec.automation with a block that writes it, or remove the evidence link.",
            )
        elif ev.block not in blocks:
            add(
                "evidence-unproduced",
                "warning",
                (*base, "evidence", "block"),
                f"acceptance {ac.id} takes its evidence from block {ev.block!r}, which this "
                f"intent does not have (blocks: {', '.join(blocks)})",
                f"Point it at the block that writes the proof: {example}.",
            )
        elif ev.output not in blocks[ev.block].outputs:
            have = blocks[ev.block].outputs
            add(
                "evidence-unproduced",
                "warning",
                (*base, "evidence", "output"),
                f"acceptance {ac.id} takes its evidence from {link}, but block {ev.block!r} "
                + (
                    f"declares no such output (it declares {', '.join(have)})"
                    if have
                    else "declares no outputs"
                ),
                f"Add {ev.output!r} to the outputs of block {ev.block!r}, or link an output it "
                "declares.",
            )


def owner_findings(doc: IntentDocument, project_owners: Sequence[str], add: Add) -> None:
    """One owner (a single person, no team) for an intent with irreversible automation."""
    auto = doc.intent.spec.automation
    if auto is None:
        return
    irreversible = [b.id for b in auto.blocks if b.effects == "irreversible"]
    if not irreversible:
        return
    owners = list(doc.intent.metadata.owners) or list(project_owners)
    people = [o for o in owners if not o.startswith("team:")]
    if len(people) > 1 or len(people) < len(owners):
        return
    whose = (
        "no owner"
        if not owners
        else f"one owner ({owners[0]}"
        + (", from the project" if not doc.intent.metadata.owners else "")
        + ")"
    )
    blocks = ", ".join(irreversible)
    add(
        "owner-single",
        "warning",
        ("metadata", "owners"),
        f"the intent has {whose}, and its automation does what cannot be undone "
        f"(irreversible: {blocks}): when that person is away no one can decide about it",
        "Who else can decide when it misbehaves? Add a second owner or a team "
        "(metadata.owners: [alice, team:...]).",
    )


_LIVE = COMPILED_STATES  # accepted, active: what runs, or is about to


def supersedes_findings(
    doc: IntentDocument,
    states: Mapping[str, str],
    supersedes: Mapping[str, Sequence[str]],
    add: Add,
) -> None:
    """A live intent that supersedes, directly or down a chain, an intent that is still live."""
    if doc.intent.spec.state not in _LIVE:
        return
    for index, target in enumerate(doc.intent.spec.relations.supersedes):
        seen = {doc.name}
        stack = [[target]]
        while stack:
            chain = stack.pop()
            current = chain[-1]
            if current in seen or current not in states:
                continue
            seen.add(current)
            if states[current] in _LIVE:
                via = "" if len(chain) == 1 else f" (through {' -> '.join(chain[:-1])})"
                add(
                    "supersedes-active",
                    "warning",
                    ("spec", "relations", "supersedes", index),
                    f"{doc.name} ({doc.intent.spec.state}) supersedes {current}{via}, which is "
                    f"still {states[current]}: both are in force, and readers cannot tell which "
                    "one holds",
                    f"Move {current} to deprecated (then retired) in the same change, or drop it "
                    "from supersedes if both are meant to hold.",
                )
                continue  # a live intent further down is its own head's finding
            stack.extend([*chain, nxt] for nxt in reversed(supersedes.get(current, ())))


def intent_findings(
    doc: IntentDocument,
    *,
    states: Mapping[str, str],
    supersedes: Mapping[str, Sequence[str]],
    project_owners: Sequence[str] = (),
) -> list[Finding]:
    """Every deterministic finding about `doc` (without traces)."""
    out: list[Finding] = []
    add = adder(doc, out)
    text_findings(doc, add)
    evidence_findings(doc, add)
    owner_findings(doc, project_owners, add)
    supersedes_findings(doc, states, supersedes, add)
    return out
