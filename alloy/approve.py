"""`alloy approve`: write an Approval document for one gate of one execution.

An approval counts only once it is merged to the default branch (that is how a reviewed,
recorded decision reaches Foundry without a forge), so this writes the file into the work tree
and leaves committing and merging it to the user. The file is checked by the same loader as
`alloy check` before it is written, so what is written always loads.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from alloy.errors import InvalidDocuments, UserError
from alloy.load import PROJECT_PATH, Entry, load_document, load_project
from alloy.load._errors import suggest
from alloy.model import Intent
from alloy.model._common import SLUG_PATTERN
from alloy.model.request import EXECUTION_ID

APPROVALS_DIR = ".alloy/approvals"
#: `-1` as a gate index: the decision resolves an indeterminate block instead of a gate.
RESOLVE = -1
MAX_GATE_INDEX = 100
_GATE = re.compile(r"^([a-z0-9][a-z0-9_-]{0,62})(?:/([0-9]{1,3}))?$")
_EXECUTION = re.compile(EXECUTION_ID)
_SLUG = re.compile(SLUG_PATTERN)

Decision = Literal["approve", "reject"]


def parse_gate(text: str) -> tuple[str, int]:
    """`BLOCK` -> (BLOCK, 0); `BLOCK/N` -> (BLOCK, N). Raises ValueError saying how to write it."""
    match = _GATE.match(text.strip())
    if match is None:
        if re.match(r"^[^/]+/-1$", text.strip()):
            raise ValueError(
                f"{text!r}: to resolve an indeterminate block, write --gate BLOCK --resolve"
            )
        raise ValueError(
            f"{text!r} is not BLOCK or BLOCK/N: a block id (lowercase letters, digits, '-', '_') "
            "and optionally the gate's index in the block's gates list (0 is the first), "
            "like deploy or deploy/1"
        )
    index = int(match.group(2)) if match.group(2) is not None else 0
    if index > MAX_GATE_INDEX:
        raise ValueError(f"{text!r}: gate index {index} is over {MAX_GATE_INDEX}")
    return match.group(1), index


def approval_name(execution: str, block: str, index: int, decision: Decision) -> str:
    """`<execution>-<block>-<index>-<decision>` (index `resolve` for -1), within the slug rules:
    at most 63 characters of lowercase letters, digits and '-'. When the block id has to be
    changed to fit ('_' is not allowed, long ids are cut), 6 hex digits of its hash are added,
    so two different blocks never share a name."""
    where = "resolve" if index == RESOLVE else str(index)
    tail = f"-{where}-{decision}"
    room = 63 - len(execution) - 1 - len(tail)
    slug = re.sub(r"[^a-z0-9]+", "-", block.lower()).strip("-")
    if slug != block or len(slug) > room:
        mark = hashlib.sha256(block.encode()).hexdigest()[:6]
        slug = f"{slug[: room - 7].strip('-')}-{mark}".strip("-")
    return f"{execution}-{slug}{tail}"


@dataclass
class Written:
    """What `write_approval` did."""

    path: str
    created: bool  # False: the same document was already there
    default_branch: str
    notes: list[str] = field(default_factory=list)


def _dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def write_approval(
    root: Path,
    *,
    execution: str,
    block: str,
    index: int,
    decision: Decision,
    approver: str,
    comment: str,
    name: str | None = None,
    intents: dict[str, Intent] | None = None,
) -> Written:
    """Write `.alloy/approvals/<name>.yaml` for gate `index` of `block` in `execution` (index
    -1: resolve the indeterminate block). Refuses a malformed execution id, an empty comment or
    approver, and an existing file with other content; writing the same document again changes
    nothing. `intents` (the current intents, if known) only adds notes when the block or gate
    is not found in them: an execution may have run an older artifact, so that is no error."""
    if not _EXECUTION.fullmatch(execution):
        raise UserError(
            f"execution id {execution!r} is not exe- and 16 hex digits (like exe-0123456789abcdef);"
            " copy it from `foundry traces list`, the check run or `alloy status`"
        )
    if not -1 <= index <= MAX_GATE_INDEX:
        raise UserError(f"gate index {index} is out of range (0 to {MAX_GATE_INDEX})")
    approver = approver.strip()
    if not approver or len(approver) > 200 or "\n" in approver:
        raise UserError(
            f"approver {approver!r} must be one line of 1 to 200 characters; pass --approver NAME"
        )
    if not comment.strip():
        raise UserError("--comment is empty; say why you decide this (reviewers read it)")
    if len(comment) > 10_000:
        raise UserError(f"--comment is {len(comment)} characters; keep it within 10000")
    if name is None:
        name = approval_name(execution, block, index, decision)
    elif not _SLUG.fullmatch(name):
        raise UserError(
            f"--name {name!r} is not a slug: use lowercase letters, digits and '-', at most 63 "
            "characters, not starting or ending with '-'"
        )
    rel = f"{APPROVALS_DIR}/{name}.yaml"
    project_entry = _read(root, PROJECT_PATH)
    project, _ = load_project({PROJECT_PATH: project_entry} if project_entry else {})
    doc: dict[str, Any] = {
        "apiVersion": "alloy.dev/v1",
        "kind": "Approval",
        "metadata": {"name": name},
        "spec": {
            "execution": execution,
            "gate": {"block": block, "index": index},
            "decision": decision,
            "approver": approver,
            "comment": comment,
        },
    }
    what = "resolves the indeterminate block" if index == RESOLVE else "decides gate"
    header = (
        f"# Written by `alloy approve`: {decision} for {execution}; {what} {block!r}"
        + ("" if index == RESOLVE else f" (gate index {index})")
        + f".\n# It counts once it is merged to {project.spec.default_branch}.\n"
    )
    data = (header + _dump(doc)).encode()
    # The loader `alloy check` uses is the last word on what is written.
    result = load_document(
        rel,
        Entry(data=data),
        project,
        expected="Approval",
        max_bytes=project.spec.policy.max_file_bytes,
    )
    if not result.ok:
        raise InvalidDocuments(result.diagnostics)
    target = root / rel
    notes = _notes(intents, block, index, approver) if intents is not None else []
    written = Written(rel, created=True, default_branch=project.spec.default_branch, notes=notes)
    if target.exists() or target.is_symlink():
        existing = _read(root, rel)
        if existing is not None and existing.data == data:
            written.created = False
            return written
        raise UserError(
            f"{rel} already exists with other content; pass --name to write another approval, "
            "or delete the file if this decision replaces it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("xb") as fh:  # never replaces a file created meanwhile
        fh.write(data)
    return written


def _read(root: Path, rel: str) -> Entry | None:
    """The file at `rel` by the loader's rules (never a pipe or a link out of `.alloy/`
    opened); None when there is none."""
    from alloy.workspace import read_path

    entry = read_path(root, rel)
    if entry is not None and entry.refusal is not None:
        raise UserError(f"{rel}: {entry.refusal}")
    return entry


def _notes(intents: dict[str, Intent], block: str, index: int, approver: str) -> list[str]:
    """Where the block or gate is not what the current intents say (not an error: the
    execution may have run an older artifact), or the approver is not one the gate lists."""
    found = [
        (name, b)
        for name, intent in sorted(intents.items())
        if intent.spec.automation is not None
        for b in intent.spec.automation.blocks
        if b.id == block
    ]
    if not found:
        known = {
            b.id
            for intent in intents.values()
            if intent.spec.automation is not None
            for b in intent.spec.automation.blocks
        }
        return [
            (
                f"no intent under .alloy/ has a block {block!r}{suggest(block, known)}; "
                "written anyway, since the execution may have run an older artifact"
            )
        ]
    if index == RESOLVE:
        return []
    gated = [(name, b) for name, b in found if index < len(b.gates) and b.gates[index].approval]
    if not gated:
        where = ", ".join(
            f"{name}: "
            + (
                "approval gates at index "
                + ", ".join(str(i) for i, g in enumerate(b.gates) if g.approval)
                if any(g.approval for g in b.gates)
                else "no approval gate"
            )
            for name, b in found
        )
        return [
            (
                f"block {block!r} has no approval gate at index {index} ({where}); "
                "written anyway, since the execution may have run an older artifact"
            )
        ]
    notes = []
    for name, b in gated:
        gate = b.gates[index].approval
        assert gate is not None
        if approver not in gate.from_ and not any(o.startswith("team:") for o in gate.from_):
            notes.append(
                f"approver {approver!r} is not in the gate's `from` list in intent {name!r} "
                f"({', '.join(gate.from_)}); the gate ignores approvals from others, so pass "
                "--approver with the name it lists if that is you"
            )
    return notes
