"""The planner: which executions the artifacts and requests of a repository ask for now, and
which of them are new (level-triggered: what is already in the ledger is subtracted).

Events, per artifact:
* apply — one execution per artifact digest (`triggers.apply`);
* push — one per commit on the default branch that touches the push trigger's paths, with the
  artifact as it was at that commit when the caller gives it (the commits and their artifacts
  come from the caller: git is not the planner's business); the current artifact must still
  have a push trigger;
* schedule — the cron slots due now: every slot in the catch-up window, or only the latest slot
  when it is at most `grace` seconds old (so a new schedule never fires for a slot long past);
  `overlap: skip` skips a slot while an earlier scheduled execution is unfinished; a schedule
  whose cron never matches, is not a cron, or names an unknown time zone (a hand-written
  artifact, or one from an older compiler) plans nothing and says why;
* request — one per Request document, only if it is pinned to the current digest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from foundry.boundary import Artifact, Boundary, digest_of
from foundry.boundary._models import Request
from foundry.ids import Event, execution_id

FINISHED = ("succeeded", "failed", "cancelled", "skipped")
_RESUME = {
    "waiting": "waiting on a gate: its gates are evaluated again",
    "indeterminate": "indeterminate: waits for an owner to approve or reject the interrupted block",
    "planned": "unfinished (stopped before a block started): resumes",
    "queued": "queued in its lane: asks its lane for a slot again",
    "running": "unfinished (stopped, or its engine died): resumes by the recovery rules",
}
DEFAULT_GRACE = 300.0


class Known(Protocol):
    """What the state already knows about executions."""

    def status(self, execution: str) -> str | None:
        """The execution's status, or None if it was never planned."""
        ...

    def unfinished_keys(self, artifact: str, event_type: str) -> Sequence[tuple[str, str]]:
        """Executions of `artifact` from events of this type that have not finished, as
        (execution, event key)."""
        ...


@dataclass(frozen=True)
class Push:
    """A commit on the default branch and the paths it changed; `artifacts` are the artifacts
    as they were at that commit (None: the caller knows only the current ones)."""

    commit: str
    paths: tuple[str, ...]
    artifacts: Mapping[str, Artifact] | None = None


@dataclass(frozen=True)
class Item:
    """One line of a plan: an artifact, an event, and why it does (not) start."""

    artifact: str
    event: Event | None
    execution: str | None
    reason: str
    inputs: dict[str, str | int | bool] = field(default_factory=dict)


@dataclass
class Plan:
    """What starts, what resumes, and what does not start, each with its reason."""

    start: list[Item] = field(default_factory=list)
    resume: list[Item] = field(default_factory=list)
    skip: list[Item] = field(default_factory=list)


@lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """`**` matches across directories, `*` and `?` within one."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def touches(paths: Iterable[str], patterns: Sequence[str]) -> bool:
    return any(glob_regex(p).match(path) for path in paths for p in patterns)


def slot_key(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def due_slots(
    cron: str, timezone: str, *, now: float, catch_up: float, grace: float
) -> tuple[list[float], float | None]:
    """Slots due now (oldest first), and the latest slot that is too old to run, if any."""
    zone = ZoneInfo(timezone)
    it = croniter(cron, datetime.fromtimestamp(now, zone))
    window = max(catch_up, grace)
    due: list[float] = []
    missed: float | None = None
    for _ in range(10_000):  # a bound: a one-minute cron over a week of catch-up
        slot = it.get_prev(datetime).timestamp()
        if now - slot > window:
            if not due:
                missed = slot
            break
        due.append(slot)
    return sorted(due), missed


def _schedule_slots(
    cron: str, timezone: str, *, now: float, catch_up: float, grace: float
) -> tuple[list[float], float | None] | str:
    """`due_slots`, or why the schedule has no slots at all (croniter raises rather than say
    that a cron never matches)."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"its schedule time zone {timezone!r} is not known here"
    try:
        return due_slots(cron, timezone, now=now, catch_up=catch_up, grace=grace)
    except CroniterBadDateError:
        return f"its schedule cron {cron!r} never matches"
    except CroniterError:
        return f"its schedule cron {cron!r} is not a valid cron"


def request_key(request: Request) -> str:
    return f"{request.metadata.name}@{digest_of(request.model_dump(mode='json', by_alias=True))}"


def _consider(
    plan: Plan,
    known: Known,
    artifact: Artifact,
    event: Event,
    reason: str,
    *,
    inputs: dict[str, str | int | bool] | None = None,
) -> None:
    execution = execution_id(artifact.digest, event)
    status = known.status(execution)
    name = artifact.metadata.name
    if status is None:
        plan.start.append(Item(name, event, execution, reason, inputs or {}))
    elif status in FINISHED:
        plan.skip.append(Item(name, event, execution, f"already done ({status})"))
    else:
        plan.resume.append(
            Item(name, event, execution, _RESUME.get(status, f"resumes ({status})"), inputs or {})
        )


def plan(
    boundary: Boundary,
    known: Known,
    *,
    now: float,
    pushes: Sequence[Push] | None = None,
    grace: float = DEFAULT_GRACE,
) -> Plan:
    """What should run now. `pushes` is None when the caller has no git history to offer."""
    out = Plan()
    for name in sorted(boundary.artifacts):
        artifact = boundary.artifacts[name]
        triggers = artifact.spec.triggers
        if triggers.apply:
            _consider(
                out, known, artifact, Event("apply", artifact.digest), "apply: new artifact digest"
            )
        if triggers.push is not None:
            if pushes is None:
                out.skip.append(
                    Item(
                        name,
                        None,
                        None,
                        "push: no commit history here (reconcile reads it from git)",
                    )
                )
            for push in pushes or ():
                # The intent as it was at the pushed commit decides, and runs.
                then = artifact if push.artifacts is None else push.artifacts.get(name)
                trigger = then.spec.triggers.push if then is not None else None
                if then is not None and trigger is not None and touches(push.paths, trigger.paths):
                    _consider(
                        out,
                        known,
                        then,
                        Event("push", push.commit),
                        f"push: {push.commit[:12]} touches {', '.join(trigger.paths)}",
                    )
        if triggers.schedule is not None:
            s = triggers.schedule
            due = _schedule_slots(
                s.cron, s.timezone, now=now, catch_up=s.catch_up_seconds, grace=grace
            )
            if isinstance(due, str):
                why = f"schedule: {due}; nothing is scheduled (fix the intent and compile again)"
                out.skip.append(Item(name, None, None, why))
                due = ([], None)
            slots, missed = due
            if missed is not None:
                out.skip.append(
                    Item(
                        name,
                        Event("schedule", slot_key(missed)),
                        None,
                        f"schedule: slot {slot_key(missed)} is outside the catch-up window",
                    )
                )
            unfinished = list(known.unfinished_keys(name, "schedule"))
            busy = [execution for execution, _ in unfinished]
            for slot in slots:
                event = Event("schedule", slot_key(slot))
                execution = execution_id(artifact.digest, event)
                if s.overlap == "skip" and busy and known.status(execution) is None:
                    out.skip.append(
                        Item(
                            name,
                            event,
                            execution,
                            f"schedule: overlap skipped ({busy[0]} has not finished)",
                        )
                    )
                    continue
                _consider(out, known, artifact, event, f"schedule: slot {event.key}")
            # A slot's execution that has not finished (waiting on a gate, say) resumes however
            # long ago its slot was: the catch-up window decides what starts, not what goes on.
            planned = {execution_id(artifact.digest, Event("schedule", slot_key(t))) for t in slots}
            for execution, key in unfinished:
                event = Event("schedule", key)
                if execution not in planned and execution_id(artifact.digest, event) == execution:
                    _consider(out, known, artifact, event, f"schedule: slot {key}")
    for request_name in sorted(boundary.requests):
        request = boundary.requests[request_name]
        target = boundary.artifacts.get(request.artifact_name)
        if target is None:
            out.skip.append(
                Item(
                    request.artifact_name,
                    None,
                    None,
                    f"request {request_name}: no artifact {request.artifact_name!r}",
                )
            )
        elif not target.spec.triggers.request:
            out.skip.append(
                Item(
                    target.metadata.name,
                    None,
                    None,
                    f"request {request_name}: the artifact does not accept requests",
                )
            )
        elif request.artifact_digest != target.digest:
            out.skip.append(
                Item(
                    target.metadata.name,
                    None,
                    None,
                    f"request {request_name}: pinned to an old digest "
                    f"({request.artifact_digest[:19]}…); reported, not run",
                )
            )
        else:
            _consider(
                out,
                known,
                target,
                Event("request", request_key(request)),
                f"request {request_name} by {request.spec.requested_by}: {request.spec.reason}",
                inputs=dict(request.spec.inputs),
            )
    return out
