"""Actions, the GitOps way: each writes one document on a new branch, never the default branch.

The document is written by the same functions the CLI uses (`alloy approve`, `alloy request`,
`alloy new intent`), in a scratch directory that holds the default branch's project file, so
every rule of the CLI holds here too; then it is committed on top of the default branch's head
and pushed as a new branch (`controllers.remote_view.RemoteView.new_branch`). Nothing of the
repository is checked out or run.
"""

from __future__ import annotations

import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alloy import approve as approve_mod
from alloy import scaffold
from alloy.compile import pretty_bytes
from alloy.errors import UserError
from alloy.load import PROJECT_PATH, Entry, load_document, load_project
from alloy.model import COMPILED_STATES
from alloy.web._repo import RepoState

LIFECYCLE = ("proposed", "accepted", "active", "deprecated", "retired", "rejected")
_STATE_LINE = re.compile(
    r"^(?P<lead>\s+state:\s*)(?P<value>[A-Za-z\"']+)(?P<tail>\s*(#.*)?)$", re.M
)


@dataclass(frozen=True)
class Done:
    """Where an action went: the branch, its commit and the files it wrote."""

    action: str
    branch: str
    commit: str
    files: tuple[str, ...]
    message: str

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "branch": self.branch,
            "commit": self.commit,
            "files": list(self.files),
            "message": self.message,
        }


def _head(state: RepoState) -> str:
    commit = state.intents.commit
    if commit is None:
        raise UserError(f"{state.key}: the default branch {state.default_branch} has no commit yet")
    return commit


def _scratch_root(state: RepoState, where: Path) -> Path:
    data = state.view.file_at(_head(state), PROJECT_PATH)
    if data is None:
        raise UserError(f"{state.key}: {PROJECT_PATH} is missing on {state.default_branch}")
    (where / ".alloy").mkdir(parents=True)
    (where / PROJECT_PATH).write_bytes(data)
    return where


def _branch(kind: str, name: str) -> str:
    return f"alloy/ui/{kind}-{name}-{secrets.token_hex(3)}"[:200]


def _publish(
    state: RepoState,
    action: str,
    *,
    branch: str,
    files: dict[str, bytes],
    message: str,
    actor: str,
    remove: tuple[str, ...] = (),
) -> Done:
    commit = state.view.new_branch(
        branch,
        _head(state),
        files,
        f"{message}\n\nMade with alloy ui by {actor}.",
        author=(actor, _email(actor)),
        remove=remove,
    )
    return Done(action, branch, commit, tuple(sorted([*files, *remove])), message.splitlines()[0])


def _email(actor: str) -> str:
    local = re.sub(r"[^a-z0-9.-]+", "-", actor.casefold()).strip("-.") or "someone"
    return f"{local}@alloy-ui.invalid"


def approve(
    state: RepoState,
    *,
    execution: str,
    gate: str,
    decision: str,
    comment: str,
    actor: str,
) -> Done:
    if decision not in ("approve", "reject"):
        raise UserError(f"decision {decision!r}: approve or reject")
    block, index = approve_mod.parse_gate(gate)
    intents = {n: g.intent for n, g in state.intents.inputs.items()}
    with tempfile.TemporaryDirectory() as tmp:
        root = _scratch_root(state, Path(tmp))
        written = approve_mod.write_approval(
            root,
            execution=execution,
            block=block,
            index=index,
            decision=decision,  # type: ignore[arg-type]
            approver=actor,
            comment=comment,
            intents=intents,
        )
        data = (root / written.path).read_bytes()
    if state.view.file_at(_head(state), written.path) is not None:
        raise UserError(f"{written.path} is already on {state.default_branch}")
    return _publish(
        state,
        "approve",
        branch=_branch(decision, execution),
        files={written.path: data},
        message=f"{decision.capitalize()} {gate} of {execution}",
        actor=actor,
    )


def request(state: RepoState, *, intent: str, inputs: list[str], reason: str, actor: str) -> Done:
    found = state.intents.models.get(intent)
    given = state.intents.inputs.get(intent)
    if found is None or given is None:
        raise UserError(f"no intent named {intent!r} on {state.default_branch}")
    doc, model = found
    if model.spec.automation is None or not model.spec.automation.on.request:
        raise UserError(f"intent {intent!r} does not accept requests (spec.automation.on.request)")
    if given.artifact is None or given.artifact.state != "current" or given.artifact.digest is None:
        raise UserError(
            f"intent {intent!r} has no current artifact on {state.default_branch}; "
            "its artifact must be compiled and merged first"
        )
    if not reason.strip():
        raise UserError("reason is empty; say why this run is requested")
    values = scaffold.parse_inputs(doc.facts.get("inputs", {}), inputs)
    with tempfile.TemporaryDirectory() as tmp:
        root = _scratch_root(state, Path(tmp))
        rel = scaffold.write_request(
            root,
            intent=intent,
            digest=given.artifact.digest,
            inputs=values,
            reason=reason,
            requested_by=actor,
            name=None,
        )
        data = (root / rel).read_bytes()
    return _publish(
        state,
        "request",
        branch=_branch("request", intent),
        files={rel: data},
        message=f"Request a run of {intent}",
        actor=actor,
    )


def propose(
    state: RepoState,
    *,
    name: str,
    title: str,
    goal: str,
    rationale: str,
    owners: list[str],
    acceptance: list[str],
    actor: str,
) -> Done:
    if name in state.intents.inputs or name in (
        state.intents.repo.intents() if state.intents.repo else {}
    ):
        raise UserError(f"an intent named {name!r} exists on {state.default_branch}")
    if not goal.strip():
        raise UserError("goal is empty; say what should be true")
    if not owners:
        raise UserError("owners: name at least one owner")
    with tempfile.TemporaryDirectory() as tmp:
        root = _scratch_root(state, Path(tmp))
        rel = scaffold.new_intent(
            root,
            name,
            title=title or None,
            goal=goal,
            rationale=rationale or None,
            owners=owners,
            acceptance=[a for a in acceptance if a.strip()],
        )
        data = (root / rel).read_bytes()
    _validate(state, rel, data)
    return _publish(
        state,
        "propose",
        branch=_branch("propose", name),
        files={rel: data},
        message=f"Propose intent {name}",
        actor=actor,
    )


def _validate(state: RepoState, rel: str, data: bytes) -> dict[str, object] | None:
    project_data = state.view.file_at(_head(state), PROJECT_PATH)
    project, _ = load_project({PROJECT_PATH: Entry(data=project_data)} if project_data else {})
    result = load_document(
        rel,
        Entry(data=data),
        project,
        expected="Intent",
        max_bytes=project.spec.policy.max_file_bytes,
    )
    if not result.ok:
        first = next(d for d in result.diagnostics if d.severity == "error")
        raise UserError(f"{rel}:{first.line}: {first.message}")
    return result.artifact


def move(state: RepoState, *, intent: str, to: str, reason: str, actor: str) -> Done:
    """A lifecycle move: the intent's `spec.state` changed in its own text (comments and layout
    kept), its artifact written or removed as `alloy compile` would."""
    if to not in LIFECYCLE:
        raise UserError(f"state {to!r}: one of {', '.join(LIFECYCLE)}")
    given = state.intents.inputs.get(intent)
    if given is None:
        raise UserError(f"no intent named {intent!r} on {state.default_branch}")
    if given.intent.spec.state == to:
        raise UserError(f"intent {intent!r} is already {to}")
    if not reason.strip():
        raise UserError("reason is empty; say why the intent moves")
    text = (state.view.file_at(_head(state), given.path) or b"").decode("utf-8")
    spec_at = text.find("\nspec:")
    found = _STATE_LINE.search(text, spec_at if spec_at >= 0 else 0)
    if found is None:
        new_text = re.sub(r"(\nspec:\s*\n)", f"\\1  state: {to}\n", text, count=1)
    else:
        new_text = text[: found.start("value")] + to + text[found.end("value") :]
    data = new_text.encode()
    artifact = _validate(state, given.path, data)
    files = {given.path: data}
    artifact_path = f".alloy/artifacts/{intent}.json"
    if to in COMPILED_STATES and artifact is not None:
        files[artifact_path] = pretty_bytes(artifact)
    remove: tuple[str, ...] = ()
    if to not in COMPILED_STATES and given.artifact is not None:
        remove = (artifact_path,)  # as `alloy compile` removes an intent's artifact
    message = f"Move intent {intent} from {given.intent.spec.state} to {to}\n\n{reason.strip()}"
    return _publish(
        state,
        "move",
        branch=_branch(f"move-{to}", intent),
        files=files,
        message=message,
        actor=actor,
        remove=remove,
    )
