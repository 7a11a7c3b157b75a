"""Documents written for the user: the project file, a new intent, a request."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from alloy.errors import UserError
from alloy.load import PROJECT_PATH
from alloy.model import Intent, Request
from alloy.model._common import SLUG_PATTERN

_SLUG = re.compile(SLUG_PATTERN)

_GITATTRIBUTES = ".alloy/artifacts/*.json linguist-generated=true\n"

#: The document directories `init` creates (each with a `.gitkeep`, so git keeps it).
DIRECTORIES = (".alloy/intents", ".alloy/requests", ".alloy/approvals", ".alloy/artifacts")


def check_name(name: str, what: str = "name") -> None:
    if not _SLUG.fullmatch(name):
        raise UserError(
            f"{what} {name!r} is not a slug: use lowercase letters, digits and '-', "
            "at most 63 characters, not starting or ending with '-'"
        )


def init(root: Path, *, name: str, owners: list[str], default_branch: str = "main") -> list[str]:
    """Create `.alloy/alloy.yaml` and the document directories; refuse if it already exists."""
    check_name(name, "project name")
    if (root / PROJECT_PATH).exists():
        raise UserError(f"{PROJECT_PATH} already exists; this repository is initialized")
    for parent in root.resolve().parents:  # a nested .alloy/ would silently split the intent
        if (parent / PROJECT_PATH).exists():
            raise UserError(
                f"{parent / PROJECT_PATH} already exists; this directory is inside an "
                "initialized repository (run alloy commands anywhere in it)"
            )
    doc: dict[str, Any] = {
        "apiVersion": "alloy.dev/v1",
        "kind": "Project",
        "metadata": {"name": name},
        "spec": {
            "defaultBranch": default_branch,
            "owners": owners,
            "traces": {"branch": "alloy/traces"},
        },
    }
    created = []
    for sub in DIRECTORIES:
        directory = root / sub
        directory.mkdir(parents=True, exist_ok=True)
        keep = directory / ".gitkeep"
        if not keep.exists():
            keep.write_bytes(b"")
    (root / PROJECT_PATH).write_text(
        "# Repository-wide settings of Alloy. Reference: docs/format.md\n" + _dump(doc),
        encoding="utf-8",
    )
    created.append(PROJECT_PATH)
    attributes = root / ".gitattributes"
    existing = attributes.read_text(encoding="utf-8") if attributes.exists() else ""
    if _GITATTRIBUTES not in existing:
        attributes.write_text(existing + _GITATTRIBUTES, encoding="utf-8")
        created.append(".gitattributes")
    return created


def _dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


_AUTOMATION_EXAMPLE = """\
  # automation:                 # what runs once the intent is accepted or active
  #   on:
  #     apply: true             # once for each new version of the artifact
  #   blocks:
  #     - id: check
  #       run: [python, -m, pytest]
  #       effects: none         # none | idempotent | reversible | irreversible
"""


_OWNER = re.compile(r"team:[a-z0-9][a-z0-9-]{0,62}|[A-Za-z0-9][A-Za-z0-9-]{0,38}")


def check_owner(owner: str) -> None:
    """Refuse an owner the Intent schema would refuse, saying what an owner looks like."""
    if not _OWNER.fullmatch(owner):
        raise UserError(
            f"owners: {owner!r} is not a user name or team: write a login (letters, digits and "
            "'-', like alice-smith) or team:slug (like team:platform)"
        )


def parse_owners(text: str) -> list[str]:
    """Comma-separated owners, each checked (`check_owner`)."""
    owners = [o.strip() for o in text.split(",") if o.strip()]
    for owner in owners:
        check_owner(owner)
    return owners


#: The longest title (`metadata.title`) and text (goal, rationale, a statement) of an intent.
MAX_TITLE = 200
MAX_TEXT = 10_000


def check_title(text: str) -> None:
    """Refuse a title the Intent schema would refuse."""
    if len(text) > MAX_TITLE or "\n" in text:
        raise UserError(
            f"title: {len(text)} characters; keep it to one line of at most {MAX_TITLE} "
            "characters (the goal says the rest)"
        )


def text_check(what: str) -> Callable[[str], None]:
    """A check of one text field (goal, rationale, an acceptance statement) for its limit."""

    def check(text: str) -> None:
        if len(text) > MAX_TEXT:
            raise UserError(f"{what}: {len(text)} characters; keep it within {MAX_TEXT}")

    return check


def check_intent_fields(
    *,
    title: str | None,
    goal: str | None,
    rationale: str | None,
    owners: Sequence[str],
    acceptance: Sequence[str],
) -> None:
    """Refuse any given field of a new intent that its schema would refuse."""
    for owner in owners:
        check_owner(owner)
    if title:
        check_title(title.strip())
    if goal:
        text_check("goal")(goal.strip())
    if rationale:
        text_check("rationale")(rationale.strip())
    for number, statement in enumerate(acceptance, 1):
        text_check(f"acceptance criterion {number}")(statement)


def check_new_intent(root: Path, name: str) -> str:
    """The path of a new intent `name`; refuse a bad name or one that is taken."""
    check_name(name, "intent name")
    rel = f".alloy/intents/{name}.yaml"
    if (root / rel).exists():
        raise UserError(f"{rel} already exists; edit it or choose another name")
    return rel


def new_intent(
    root: Path,
    name: str,
    *,
    title: str | None,
    goal: str,
    rationale: str | None,
    owners: list[str],
    acceptance: list[str],
) -> str:
    """Write `.alloy/intents/<name>.yaml` (state: proposed) and return its path."""
    rel = check_new_intent(root, name)
    check_intent_fields(
        title=title, goal=goal, rationale=rationale, owners=owners, acceptance=acceptance
    )
    metadata: dict[str, Any] = {"name": name}
    if title:
        metadata["title"] = title
    metadata["owners"] = owners
    spec: dict[str, Any] = {"state": "proposed", "goal": goal}
    if rationale:
        spec["rationale"] = rationale
    spec["acceptance"] = [
        {"id": f"AC-{i}", "statement": text} for i, text in enumerate(acceptance, 1)
    ]
    doc = {"apiVersion": "alloy.dev/v1", "kind": "Intent", "metadata": metadata, "spec": spec}
    Intent.model_validate(doc)  # the flags were checked by the caller; this is the last word
    (root / ".alloy" / "intents").mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(_dump(doc) + _AUTOMATION_EXAMPLE, encoding="utf-8")
    return rel


def parse_inputs(declared: dict[str, Any], pairs: list[str]) -> dict[str, str | int | bool]:
    """`k=v` pairs checked against the artifact's declared inputs and converted to their type."""
    from alloy.load._errors import suggest

    out: dict[str, str | int | bool] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--input {pair!r}: write it as NAME=VALUE")
        spec = declared.get(key)
        if spec is None:
            hint = suggest(key, declared) or (
                f"; declared inputs: {', '.join(sorted(declared))}"
                if declared
                else "; it declares no inputs"
            )
            raise UserError(f"--input {key}: unknown input{hint}")
        kind = spec["type"]
        if kind == "integer":
            try:
                out[key] = int(value)
            except ValueError:
                raise UserError(f"--input {key}: {value!r} is not an integer") from None
        elif kind == "boolean":
            if value.lower() not in ("true", "false"):
                raise UserError(f"--input {key}: {value!r} is not true or false")
            out[key] = value.lower() == "true"
        else:
            out[key] = value
    for key, spec in declared.items():
        if spec["required"] and spec.get("default") is None and key not in out:
            raise UserError(f"input {key!r} is required; pass --input {key}=VALUE")
    return out


def write_request(
    root: Path,
    *,
    intent: str,
    digest: str,
    inputs: dict[str, str | int | bool],
    reason: str,
    requested_by: str,
    name: str | None,
) -> str:
    """Write `.alloy/requests/<name>.yaml` pinned to `intent@digest`; return its path."""
    if name is None:
        seed = json.dumps([intent, digest, inputs, reason, requested_by, os.urandom(8).hex()])
        suffix = hashlib.sha256(seed.encode()).hexdigest()[:8]
        name = f"{intent[: 63 - 9].rstrip('-')}-{suffix}"
    check_name(name, "request name")
    rel = f".alloy/requests/{name}.yaml"
    if (root / rel).exists():
        raise UserError(f"{rel} already exists; choose another --name")
    doc = {
        "apiVersion": "alloy.dev/v1",
        "kind": "Request",
        "metadata": {"name": name},
        "spec": {
            "artifact": f"{intent}@{digest}",
            "inputs": inputs,
            "reason": reason,
            "requestedBy": requested_by,
        },
    }
    Request.model_validate(doc)
    (root / ".alloy" / "requests").mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(_dump(doc), encoding="utf-8")
    return rel
