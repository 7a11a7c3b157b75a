"""Foundry on a plain directory checkout: find the artifacts, pick the state directory, run.

The library functions behind `foundry run` and `foundry plan` (no git needed)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from foundry.boundary import (
    MAX_BYTES,
    Artifact,
    Boundary,
    FileNode,
    read_artifact,
    read_boundary,
    resolve_link,
)
from foundry.boundary import _files as files
from foundry.boundary._files import Kind
from foundry.errors import BoundaryError, UserError
from foundry.executor import ExecutionResult, Gates, Progress, RunOptions, run_execution
from foundry.gates import Context, GateEvaluator, PolicySource, confined_like_blocks
from foundry.ids import Event, execution_id
from foundry.planner import Item, Plan, plan
from foundry.ports import Clock
from foundry.sandbox import Sandbox
from foundry.state import LedgerIndex, private
from foundry.throttle import Lanes


def default_state_dir(root: Path) -> Path:
    """Outside the worktree: `$FOUNDRY_STATE`, else `$XDG_STATE_HOME/foundry/<root hash>`."""
    explicit = os.environ.get("FOUNDRY_STATE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(base) / "foundry" / key


def state_directory(state: Path, *, write: bool) -> Path:
    """`state`, checked as a state directory: one that exists or can be created (a directory,
    under directories), readable, and with `write` created and writable. Anything else is a
    `UserError` that names the path and says what to do (never a crash on first use)."""
    fix = "set FOUNDRY_STATE or pass --state with a directory you can write"
    try:
        where, info = _nearest(state)
    except OSError as exc:
        raise UserError(f"state directory {state} cannot be used ({exc.strerror}); {fix}") from None
    if not stat.S_ISDIR(info.st_mode):
        if where == state:
            raise UserError(f"state directory {state} is not a directory; {fix}")
        raise UserError(
            f"state directory {state} cannot be created: {where} is not a directory; {fix}"
        )
    if not write:
        if where == state:
            try:
                os.scandir(state).close()
            except OSError as exc:
                raise UserError(
                    f"state directory {state} cannot be read ({exc.strerror}); {fix}"
                ) from None
        return state
    try:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        private(state)
    except OSError as exc:
        raise UserError(
            f"state directory {state} cannot be created ({exc.strerror}); {fix}"
        ) from None
    try:
        fd, probe = tempfile.mkstemp(dir=state, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(
            f"state directory {state} cannot be written ({exc.strerror}); {fix}"
        ) from None
    return state


def _nearest(path: Path) -> tuple[Path, os.stat_result]:
    """The nearest of `path` and its parents that exists, and what it is (links followed: a
    state directory may be a link to one)."""
    for candidate in (path, *path.parents):
        try:
            return candidate, os.stat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            continue
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))


_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_KINDS: tuple[tuple[Any, Kind], ...] = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "link"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "char-device"),
    (stat.S_ISBLK, "block-device"),
)


def _kind(mode: int) -> Kind:
    return next((kind for test, kind in _KINDS if test(mode)), "other")


class _Checkout:
    """`.alloy/` of a plain checkout as the boundary's rules look at it (foundry.boundary._files,
    the rules `alloy check` reads a work tree by): every path by `lstat` before anything is
    opened; symbolic links followed a step at a time, only inside `.alloy/`."""

    def __init__(self, root: Path) -> None:
        self.stats: dict[str, os.stat_result] = {}
        self.refusal: str | None = None
        root_real = os.path.realpath(root)
        base = os.path.join(root_real, ".alloy")
        self.alloy_real = base
        if os.path.islink(base):
            text = os.readlink(base)
            try:
                target = os.path.realpath(base, strict=True)
            except OSError as exc:
                self.refusal = files.cannot_follow(text, exc.strerror or str(exc))
                return
            if target != root_real and not target.startswith(root_real + os.sep):
                self.refusal = files.alloy_dir_leaves(text)
                return
            self.alloy_real = target

    def real(self, rel: str) -> str:
        return self.alloy_real + rel[len(".alloy") :]

    def lookup(self, rel: str) -> FileNode:
        try:
            info = os.lstat(self.real(rel))
        except (FileNotFoundError, NotADirectoryError):
            return FileNode("missing")
        except OSError as exc:
            return FileNode("other", error=exc.strerror or str(exc))
        self.stats[rel] = info
        kind = _kind(info.st_mode)
        if kind != "link":
            return FileNode(kind)
        try:
            return FileNode("link", link=os.readlink(self.real(rel)))
        except OSError as exc:
            return FileNode("other", error=exc.strerror or str(exc))

    def names(self, rel_dir: str) -> list[str]:
        """The names in the directory `rel_dir`; none when there is no such directory. A
        directory that is not one (a link to one, say) is refused as a file would be."""
        node = self.lookup(rel_dir)
        if node.kind == "missing":
            return []
        if node.error is not None:
            raise BoundaryError(rel_dir, files.unreadable(node.error))
        if node.kind == "link":
            found = resolve_link(rel_dir, self.lookup)
            raise BoundaryError(rel_dir, found.refusal or files.not_a_file(rel_dir, "other"))
        if node.kind != "directory":
            raise BoundaryError(rel_dir, files.not_a_file(rel_dir, node.kind))
        try:
            return sorted(os.listdir(self.real(rel_dir)))
        except OSError as exc:
            raise BoundaryError(rel_dir, files.unreadable(exc.strerror or str(exc))) from None

    def read(self, rel: str) -> bytes:
        """The bytes of the file at `rel` (or of the regular file its links lead to), at most
        `MAX_BYTES` and one; a `BoundaryError` in the loader's words for anything else."""
        node = self.lookup(rel)
        target = rel
        if node.error is not None:
            raise BoundaryError(rel, files.unreadable(node.error))
        if node.kind == "link":
            if files.is_artifact(rel):
                raise BoundaryError(rel, files.artifact_link())
            found = resolve_link(rel, self.lookup)
            if found.path is None:
                raise BoundaryError(rel, found.refusal or "refused")
            target = found.path
        elif node.kind != "file":
            raise BoundaryError(rel, files.not_a_file(rel, node.kind))
        return _read_regular(self.real(target), rel, self.stats[target].st_ino)


def _read_regular(path: str, rel: str, inode: int) -> bytes:
    """The regular file at `path` opened without following a link or waiting on a pipe, looked
    at again once open (the file listed), and read to at most `MAX_BYTES` and one byte."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BoundaryError(rel, files.changed_while_read()) from None
        raise BoundaryError(rel, files.unreadable(exc.strerror or str(exc))) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_ino != inode:
            raise BoundaryError(rel, files.changed_while_read())
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise BoundaryError(rel, files.unreadable(exc.strerror or str(exc))) from None
    finally:
        os.close(fd)


def read_checkout(root: Path) -> Boundary:
    """Artifacts and requests of a directory checkout, read by the rules `alloy check` reads
    `.alloy/` by: regular files, or symbolic links to them inside `.alloy/`; anything else
    under their names is refused, said in the loader's words (never skipped silently)."""
    checkout = _Checkout(root)
    if checkout.refusal is not None:
        return Boundary(refused=[BoundaryError(".alloy", checkout.refusal)])
    snapshot: dict[str, bytes] = {}
    refused: list[BoundaryError] = []
    for sub, suffix in (("artifacts", ".json"), ("requests", ".yaml")):
        rel_dir = f".alloy/{sub}"
        try:
            names = checkout.names(rel_dir)
        except BoundaryError as exc:
            refused.append(exc)
            continue
        for name in names:
            if not name.endswith(suffix):
                continue
            rel = f"{rel_dir}/{name}"
            try:
                snapshot[rel] = checkout.read(rel)
            except BoundaryError as exc:
                refused.append(exc)
    boundary = read_boundary(snapshot)
    boundary.refused = sorted([*refused, *boundary.refused], key=lambda e: e.path)
    return boundary


def find_artifact(root: Path, name: str) -> tuple[Artifact, bytes]:
    """Artifact `name` of the checkout, verified, and the exact bytes it was read from (only
    that one file is read, by the rules of `read_checkout`)."""
    checkout = _Checkout(root)
    if checkout.refusal is not None:
        raise BoundaryError(".alloy", checkout.refusal)
    rel = f".alloy/artifacts/{name}.json"
    if checkout.lookup(rel).kind == "missing":
        directory = root / ".alloy" / "artifacts"
        found = sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []
        raise UserError(
            f"no artifact named {name!r} in {directory}; found: {', '.join(found) or 'none'}"
        )
    data = checkout.read(rel)
    return read_artifact(rel, data), data


def run_in_checkout(
    root: Path,
    name: str,
    *,
    inputs: Mapping[str, str],
    clock: Clock,
    dry_run: bool = False,
    rerun: bool = False,
    state_dir: Path | None = None,
    workers: int | None = None,
    gates: Gates | None = None,
    cancel: threading.Event | None = None,
    stop: threading.Event | None = None,
    stop_grace: float | None = None,
    policy: PolicySource | None = None,
    on_event: Callable[[Progress], None] | None = None,
    halt: threading.Event | None = None,
    sandbox: Sandbox | None = None,
) -> ExecutionResult:
    """Run artifact `name` of the checkout at `root` (event `apply`, or a new manual request
    event with `rerun`), in `root` itself. Policy commands run in `policy` (a checkout of the
    default branch); without one, command gates wait and say why."""
    artifact, data = find_artifact(root, name)
    event = (
        Event("request", f"manual-{time.time_ns()}") if rerun else Event("apply", artifact.digest)
    )
    state = state_directory(state_dir or default_state_dir(root), write=True)
    options = RunOptions(
        workdir=root,
        state_dir=state,
        lanes=Lanes(state / "lanes.db", clock),
        inputs=dict(inputs),
        secrets=declared_secrets(artifact),
        dry_run=dry_run,
        on_event=on_event,
        halt=halt,
        sandbox=sandbox,
    )
    if workers:
        options.workers = workers
    if stop_grace is not None:
        options.stop_grace = stop_grace
    keep_artifact(state, execution_id(artifact.digest, event), data)
    try:
        # Without a forge, gates are judged on what is known locally: windows by the clock,
        # policy commands in `policy`; approvals, checks and `after` wait, saying so.
        evaluator = gates
        if evaluator is None:
            context = Context(
                policy_dir=policy,
                policy_confine=confined_like_blocks(options, execution_id(artifact.digest, event)),
                unjudged=UNJUDGED_LOCALLY,
                stop=stop,
            )
            evaluator = GateEvaluator(context)
        return run_execution(
            artifact, event, options, clock, gates=evaluator, cancel=cancel, stop=stop
        )
    finally:
        if options.lanes is not None:
            options.lanes.close()


#: The gates `foundry run` cannot judge (it has no forge), and what it says for each.
UNJUDGED_LOCALLY = {
    "approval": "`foundry run` reads no approvals (there is no forge here): approval gates are "
    "judged by `foundry reconcile`, the daemon and the Action",
    "check": "`foundry run` reads no check runs (there is no forge here): check gates are "
    "judged by `foundry reconcile`, the daemon and the Action",
    "after": "`foundry run` reads no other intent's traces: after gates are judged by "
    "`foundry reconcile`, the daemon and the Action",
}


def unjudged_gates(artifact: Artifact, *, policy: bool) -> list[str]:
    """One line per gate of `artifact` that `foundry run` cannot judge here."""
    out = []
    for block in artifact.spec.blocks:
        for index, gate in enumerate(block.gates):
            if gate.kind in UNJUDGED_LOCALLY:
                out.append(
                    f"block {block.id}, gate {index} ({gate.kind}): waits here; "
                    f"{UNJUDGED_LOCALLY[gate.kind]}"
                )
            elif gate.kind == "command" and not policy:
                out.append(
                    f"block {block.id}, gate {index} (command): waits here, no checkout of the "
                    "default branch (pass --policy DIR, or run it in a clone with origin/HEAD)"
                )
    return out


def declared_secrets(artifact: Artifact, source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values of the secrets the artifact's blocks declare, from `source` (a repository's
    own secrets) or else the engine's environment; a secret that is not set is left out (the
    block sees it unset)."""
    values = os.environ if source is None else source
    return {s: values[s] for b in artifact.spec.blocks for s in b.secrets if s in values}


def keep_artifact(state: Path, execution: str, data: bytes) -> None:
    """Keep the exact artifact an execution runs beside its ledger (traces need it later, when
    the checkout may hold a newer one)."""
    target = state / "executions" / execution / "artifact.json"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def load_trace_inputs(state: Path, execution: str) -> tuple[list[dict[str, Any]], Artifact]:
    """The ledger records and the artifact of one execution."""
    index = LedgerIndex(state)
    records = index.records(execution)
    if not records:
        known = ", ".join(index.executions()[-5:]) or "none"
        raise UserError(f"no execution {execution!r} in {state}; recent: {known}")
    kept = state / "executions" / execution / "artifact.json"
    if not kept.exists():
        raise UserError(f"{execution}: its artifact was not kept; cannot build its trace")
    return records, read_artifact(
        f".alloy/artifacts/{records[0]['artifact']['name']}.json", kept.read_bytes()
    )


def plan_checkout(
    root: Path, *, clock: Clock, state_dir: Path | None = None
) -> tuple[Plan, list[BoundaryError]]:
    """The plan for a directory checkout (no git: push events are reported as not readable)."""
    state = state_directory(state_dir or default_state_dir(root), write=False)
    boundary = read_checkout(root)
    result = plan(boundary, LedgerIndex(state), now=clock.now(), pushes=None)
    lanes_db = state / "lanes.db"
    if lanes_db.exists():
        with Lanes(lanes_db, clock) as lanes:
            result.start = [_with_lane(item, boundary, lanes) for item in result.start]
    return result, boundary.refused


def _with_lane(item: Item, boundary: Boundary, lanes: Lanes) -> Item:
    """Say so when the item's lane is full now: it would queue (or be refused), not start."""
    artifact = boundary.artifacts.get(item.artifact)
    lane = artifact.spec.lane if artifact else None
    if lane is None:
        return item
    held = len(lanes.status(lane.name).holders)
    if held < lane.limit:
        return item
    then = {
        "fifo": "it would queue",
        "latest": "it would queue (newest only)",
        "reject": "it would be rejected",
    }[lane.queue]
    return replace(
        item, reason=f"{item.reason}; lane {lane.name} is full ({held} of {lane.limit}): {then}"
    )


__all__ = [
    "BoundaryError",
    "declared_secrets",
    "default_state_dir",
    "find_artifact",
    "keep_artifact",
    "load_trace_inputs",
    "read_checkout",
    "run_in_checkout",
    "state_directory",
]
