"""Emergency stops recorded on the remote: pauses and cancels (docs/reconcile.md, "Pause,
resume, cancel").

The records live on the ref `refs/alloy/control` of the remote, one commit whose tree holds one
small JSON document per stop:

    pauses/<intent>.json     nothing new of that intent starts (`pauses/_all.json`: of any)
    cancels/<execution>.json that execution ends `cancelled`, on whichever host holds it

Every host reads them on every pass (the ref is one of the few a pass asks the remote about, so
a new stop is news), and a holder of a running execution looks again whenever it renews its
claim or a block starts or ends. Writes are compare-and-swap pushes, rebuilt on another writer's
new tip, like the local forge's; the ref keeps its history (`git log refs/alloy/control` says who
paused, resumed and cancelled what, and when). A pause with an `until` stops applying by itself
once that time has passed (by the reader's clock); `foundry resume` removes it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controllers.gitops import GitError, Mirror

REF = "refs/alloy/control"
#: The file name of a pause of every intent (no intent name starts with `_`).
ALL = "_all"
SCHEMA_VERSION = 1
MAX_TRIES = 16


@dataclass(frozen=True)
class Pause:
    """Nothing new of `intent` (None: of any intent) starts while it applies."""

    intent: str | None
    reason: str
    by: str
    at: float
    until: float | None = None
    #: Running blocks are stopped at once (else they finish, and nothing after them starts).
    stop_running: bool = False

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until

    @property
    def scope(self) -> str:
        return "every intent" if self.intent is None else f"intent {self.intent}"

    def describe(self) -> str:
        """One line: who paused what, until when, why, and how to lift it."""
        until = f"until {_stamp(self.until)}" if self.until is not None else "until resumed"
        lift = f"foundry resume {self.intent or '--all'}"
        return f"{self.scope} paused by {self.by} {until}: {self.reason} (`{lift}` lifts it)"

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaVersion": SCHEMA_VERSION,
            "kind": "Pause",
            "intent": self.intent,
            "reason": self.reason,
            "by": self.by,
            "at": _stamp(self.at),
            "until": _stamp(self.until) if self.until is not None else None,
            "stopRunning": self.stop_running,
        }


@dataclass(frozen=True)
class Cancel:
    """`execution` ends `cancelled`, with `reason`."""

    execution: str
    reason: str
    by: str
    at: float

    def describe(self) -> str:
        return f"cancelled by {self.by}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaVersion": SCHEMA_VERSION,
            "kind": "Cancel",
            "execution": self.execution,
            "reason": self.reason,
            "by": self.by,
            "at": _stamp(self.at),
        }


@dataclass
class Control:
    """What `refs/alloy/control` says at one commit (`sha`; None: there is no such ref)."""

    sha: str | None = None
    pauses: dict[str, Pause] = field(default_factory=dict)
    cancels: dict[str, Cancel] = field(default_factory=dict)
    #: Files that are not control records (edited by hand): reported, never obeyed.
    problems: list[str] = field(default_factory=list)

    def pause_for(self, intent: str, now: float) -> Pause | None:
        """The pause that holds `intent` now (its own, else one of every intent)."""
        for key in (intent, ALL):
            pause = self.pauses.get(key)
            if pause is not None and pause.active(now):
                return pause
        return None

    def cancel_for(self, execution: str) -> Cancel | None:
        return self.cancels.get(execution)

    def next_expiry(self, now: float) -> float | None:
        """When the next active pause runs out (a pass is due then, even if nothing moved)."""
        ends = [p.until for p in self.pauses.values() if p.until is not None and p.until > now]
        return min(ends) if ends else None


def pause_path(intent: str | None) -> str:
    return f"pauses/{intent or ALL}.json"


def cancel_path(execution: str) -> str:
    return f"cancels/{execution}.json"


def read(mirror: Mirror, sha: str | None) -> Control:
    """The control records at commit `sha` (fetched into the mirror already); None: none."""
    control = Control(sha)
    if sha is None:
        return control
    listed = {**mirror.tree(sha, "pauses/"), **mirror.tree(sha, "cancels/")}
    for path, blob in sorted(listed.items()):
        try:
            record = _record(path, json.loads(mirror.blob(blob)))
        except (ValueError, KeyError, TypeError) as exc:
            control.problems.append(
                f"{REF}:{path} is not a control record ({exc}); it is ignored — remove it, or "
                "write it again with `foundry pause` / `foundry cancel`"
            )
            continue
        if isinstance(record, Pause):
            control.pauses[record.intent or ALL] = record
        else:
            control.cancels[record.execution] = record
    return control


def fetch(mirror: Mirror) -> Control:
    """The remote's control records now (one `git ls-remote`, a fetch when they moved)."""
    sha = mirror.heads([REF]).get(REF)
    if sha is not None and mirror.rev(REF) != sha:
        mirror.fetch([REF])
    return read(mirror, sha)


def write(
    mirror: Mirror,
    files: Mapping[str, bytes],
    *,
    remove: Sequence[str] = (),
    message: str,
) -> str | None:
    """Commit `files` (and the removal of `remove`) on the control ref by compare-and-swap,
    rebuilt on another writer's new tip; the new commit, or None when nothing changed."""
    for attempt in range(MAX_TRIES):
        tip = mirror.heads([REF]).get(REF)
        if tip is not None and mirror.rev(REF) != tip:
            mirror.fetch([REF])
        held = {**mirror.tree(tip, "pauses/"), **mirror.tree(tip, "cancels/")} if tip else {}
        gone = [p for p in remove if p in held]
        changed = {p: d for p, d in files.items() if p not in held or mirror.blob(held[p]) != d}
        if not changed and not gone:
            return None
        commit = mirror.commit(tip, changed, message, remove=gone)
        if mirror.push([(commit, REF, tip)]).ok:
            mirror.set_ref(REF, commit)
            return commit
        time.sleep(random.uniform(0.01, 0.04) * (attempt + 1))  # noqa: S311 - jitter
    raise GitError(f"{mirror.url}: {REF} kept moving; gave up after {MAX_TRIES} tries")


def document(record: Pause | Cancel) -> bytes:
    return (json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n").encode()


def _record(path: str, body: Any) -> Pause | Cancel:
    """The record of the file at `path` (ValueError, KeyError, TypeError: it is not one)."""
    if path.startswith("pauses/"):
        pause = _pause(body)
        if pause_path(pause.intent) != path:
            raise ValueError(f"it names intent {pause.intent!r}")
        return pause
    cancel = _cancel(body)
    if cancel_path(cancel.execution) != path:
        raise ValueError(f"it names execution {cancel.execution!r}")
    return cancel


def _pause(body: Any) -> Pause:
    if not isinstance(body, dict) or body.get("kind") != "Pause":
        raise ValueError("kind is not Pause")
    intent = body["intent"]
    until = body.get("until")
    return Pause(
        intent=str(intent) if intent is not None else None,
        reason=str(body["reason"]),
        by=str(body["by"]),
        at=_time(body["at"]),
        until=_time(until) if until is not None else None,
        stop_running=bool(body.get("stopRunning", False)),
    )


def _cancel(body: Any) -> Cancel:
    if not isinstance(body, dict) or body.get("kind") != "Cancel":
        raise ValueError("kind is not Cancel")
    return Cancel(
        execution=str(body["execution"]),
        reason=str(body["reason"]),
        by=str(body["by"]),
        at=_time(body["at"]),
    )


def _time(text: Any) -> float:
    from foundry.ledger import parse_rfc3339

    if not isinstance(text, str):
        raise TypeError("a time is not a string")
    return parse_rfc3339(text)


def _stamp(seconds: float) -> str:
    from foundry.ledger import rfc3339

    return rfc3339(seconds)
