"""Actions, the GitOps way: each writes one document on a new branch, never the default branch.

The document is written by the same functions the CLI uses (`alloy approve`, `alloy request`,
`alloy new intent`), in a scratch directory that holds the default branch's project file, so
every rule of the CLI holds here too; then it is committed on top of the default branch's head
and pushed as a new branch (`controllers.remote_view.RemoteView.new_branch`). Nothing of the
repository is checked out or run.
"""

from __future__ import annotations

import posixpath
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode

from alloy import approve as approve_mod
from alloy import scaffold
from alloy import status as status_mod
from alloy.compile import pretty_bytes
from alloy.errors import UserError
from alloy.load import PROJECT_PATH, Entry, YamlProblem, load_document, load_project, parse
from alloy.model import COMPILED_STATES
from alloy.web._repo import ExecutionRef, RepoState

LIFECYCLE = ("proposed", "accepted", "active", "deprecated", "retired", "rejected")


@dataclass(frozen=True)
class Done:
    """Where an action went: the branch, its commit and the files it wrote."""

    action: str
    branch: str
    commit: str
    files: tuple[str, ...]
    message: str
    #: on GitHub: the pull request opened from the branch (`number`, `url`), or why not (`error`)
    pull_request: dict[str, object] | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "branch": self.branch,
            "commit": self.commit,
            "files": list(self.files),
            "message": self.message,
            "pullRequest": self.pull_request,
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
    title = message.splitlines()[0]
    pull = None
    if state.github is not None:
        pull = state.github.open(
            head=branch,
            base=state.default_branch,
            title=title,
            body=f"{message}\n\nProposed with `alloy ui` by {actor}.",
        )
    return Done(action, branch, commit, tuple(sorted([*files, *remove])), title, pull)


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
    ref = state.executions.get(execution)
    if ref is None:
        raise UserError(
            f"execution {execution!r} is not one of repository {state.key}'s; decide a gate "
            "listed under Approvals"
        )
    if ref.status in status_mod.FINISHED:
        raise UserError(f"execution {execution} has {ref.status}: it waits on no gate any more")
    gates = _approval_gates(state, ref)
    if (block, index) not in gates:
        named = ", ".join(f"{b}/{i}" for b, i in sorted(gates)) or "none"
        raise UserError(
            f"gate {block}/{index}: execution {execution} has no approval gate by that name "
            f"(its approval gates: {named})"
        )
    # Notes compare the gate with the current text of the execution's own intent.
    model = state.intent_model(ref.intent)
    intents = {ref.intent: model} if model is not None else {}
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


def _approval_gates(state: RepoState, ref: ExecutionRef) -> set[tuple[str, int]]:
    """The approval gates an execution may be decided on: those it waits on, and those its
    intent declares (a running execution may not have reached them yet)."""
    gates = {(block, index) for block, index, kind, _, _ in ref.waiting if kind == "approval"}
    given = state.intents.inputs.get(ref.intent)
    gates.update((b, i) for b, i, *_ in (given.summary.approvals if given else ()))
    return gates


def request(state: RepoState, *, intent: str, inputs: list[str], reason: str, actor: str) -> Done:
    given = state.intents.inputs.get(intent)
    found = state.model(intent) if given is not None else None
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
    if given.summary.state == to:
        raise UserError(f"intent {intent!r} is already {to}")
    if not reason.strip():
        raise UserError("reason is empty; say why the intent moves")
    path = _text_file(state, given.path)
    text = (state.view.file_at(_head(state), path) or b"").decode("utf-8")
    new_text = _with_state(text, to, path)
    data = new_text.encode()
    artifact = _validate(state, given.path, data)
    if _spec_state(new_text) != to:  # never a branch that says "move" and moves nothing
        raise UserError(f"{path}: cannot set spec.state in this file; edit it by hand")
    files = {path: data}
    artifact_path = f".alloy/artifacts/{intent}.json"
    if to in COMPILED_STATES and artifact is not None:
        files[artifact_path] = pretty_bytes(artifact)
    remove: tuple[str, ...] = ()
    if to not in COMPILED_STATES and given.artifact is not None:
        remove = (artifact_path,)  # as `alloy compile` removes an intent's artifact
    message = f"Move intent {intent} from {given.summary.state} to {to}\n\n{reason.strip()}"
    return _publish(
        state,
        "move",
        branch=_branch(f"move-{to}", intent),
        files=files,
        message=message,
        actor=actor,
        remove=remove,
    )


def _text_file(state: RepoState, path: str) -> str:
    """The file that holds the text of the document at `path`: itself, or the file its symbolic
    link names (inside `.alloy/`, as the loader read it)."""
    head = _head(state)
    entry = next((f for f in state.view.tree(head, path) if f.path == path), None)
    if entry is None or entry.mode != "120000":
        return path
    link = (state.view.file_at(head, path) or b"").decode("utf-8", "replace")
    target = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
    if not target.startswith(".alloy/"):
        raise UserError(f"{path} links to {link}, outside .alloy/; edit it by hand")
    return target


def _key(mapping: MappingNode, name: str) -> tuple[Node, Node] | None:
    for key, value in mapping.value:
        if isinstance(key, ScalarNode) and key.value == name:
            return key, value
    return None


def _with_state(text: str, to: str, path: str) -> str:
    """`text` (an intent file) with `spec.state` set to `to`: the value's own characters
    replaced where the parser found them (comments, layout and every other `state:` kept), or
    the key added as the first of `spec` when it has none."""
    try:
        root = parse(text).node
    except YamlProblem as exc:
        raise UserError(f"{path}:{exc.line}:{exc.column}: {exc.message}") from None
    found = _key(root, "spec") if isinstance(root, MappingNode) else None
    spec = found[1] if found else None
    if not isinstance(spec, MappingNode):
        raise UserError(f"{path}: no spec mapping to set spec.state in")
    current = _key(spec, "state")
    if current is not None:
        value = current[1]
        if not isinstance(value, ScalarNode):
            raise UserError(f"{path}: spec.state is not a single value")
        return text[: value.start_mark.index] + to + text[value.end_mark.index :]
    if spec.flow_style or not spec.value:
        at = spec.start_mark.index + 1  # just after the `{`
        return text[:at] + f"state: {to}" + (", " if spec.value else "") + text[at:]
    first: Node = spec.value[0][0]
    line = text.rfind("\n", 0, first.start_mark.index) + 1
    indent = " " * int(first.start_mark.column)
    return f"{text[:line]}{indent}state: {to}\n{text[line:]}"


def _spec_state(text: str) -> object:
    try:
        doc = parse(text).data
    except YamlProblem:
        return None
    spec = doc.get("spec") if isinstance(doc, dict) else None
    return spec.get("state", "proposed") if isinstance(spec, dict) else None
