"""What gates are judged against: the ports `controllers` (or tests) fill, and `Context`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from foundry.sandbox import Launch


class Unavailable(Exception):
    """A fact a gate needs cannot be had now (the forge or the remote is away): the gate waits,
    saying why, and is judged again later — it neither passes nor fails on a missing fact."""


def identities(who: str) -> set[str]:
    """The forms under which `who` can appear as an approver: case-folded, and for an e-mail
    address also its local part (`Carol@Example.com` is `carol@example.com` and `carol`)."""
    who = who.strip().casefold()
    if not who:
        return set()
    out = {who}
    local, at, _ = who.partition("@")
    if at and local:
        out.add(local)
    return out


@dataclass(frozen=True)
class ApprovalVote:
    """One recorded decision for a gate (or for an indeterminate block: index -1).

    `at` is when the decision landed where it counts — under reconcile, the time of the
    first-parent commit that brought the Approval to the default branch — in seconds since the
    epoch; 0 when unknown (it then counts as having landed before any deadline)."""

    approver: str
    decision: Literal["approve", "reject"]
    at: float


class Approvals(Protocol):
    """Decisions recorded for (execution, block, gate index); index -1 resolves an
    indeterminate block."""

    def votes(self, execution: str, block: str, index: int) -> Sequence[ApprovalVote]: ...


class Teams(Protocol):
    """Team membership, for approvals `from: [team:x]`."""

    def is_member(self, user: str, team: str) -> bool: ...


class Checks(Protocol):
    """Forge check results on the commit an execution runs."""

    def state(self, name: str) -> Literal["success", "failure", "pending"] | None: ...


class History(Protocol):
    """When an intent's execution last succeeded (seconds since the epoch), if ever."""

    def last_success(self, intent: str) -> float | None: ...


#: A checkout of the default branch's head, made when a policy command first needs it; it may
#: raise `Unavailable` (the gate then waits, saying why).
PolicySource = Path | Callable[[], Path]


@dataclass
class Context:
    """What the gates of one execution are judged against.

    `initiator` and `starters` are who started the execution: the requester of a Request, and
    for apply, push and schedule executions the author of the change that brought the artifact
    (and the pushed commit) to the default branch. `forbidSelf` ignores their approvals.
    `policy_dir` is where policy commands run (None: nowhere, so command gates wait);
    `policy_env` the environment they start from (default: the blocks' allowlist of the
    engine's environment); `policy_confine` how a policy command runs confined, as a block does
    (its command line as the run's sandbox and user run it; None: as this process's user,
    unconfined); `commit` the commit the execution runs at; `stop`, once set, ends a policy
    command that still runs (its gate waits)."""

    initiator: str | None = None
    starters: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    approvals: Approvals | None = None
    teams: Teams | None = None
    checks: Checks | None = None
    history: History | None = None
    policy_dir: PolicySource | None = None
    policy_env: Mapping[str, str] | None = None
    policy_confine: Callable[[list[str], Path], Launch] | None = None
    commit: str | None = None
    stop: threading.Event | None = None
    #: What this context cannot judge, by gate kind, with why (`foundry run` without a forge).
    unjudged: Mapping[str, str] = field(default_factory=dict)

    def started_by(self) -> set[str]:
        """Every identity of whoever started the execution (see `identities`); may raise
        `Unavailable` when who started it cannot be known now."""
        starters = self.starters() if callable(self.starters) else self.starters
        who: set[str] = set()
        for name in (*starters, self.initiator or ""):
            who |= identities(name)
        return who


@dataclass
class StaticApprovals:
    """Approvals held in memory (tests, or a forge adapter's snapshot)."""

    votes_by_gate: dict[tuple[str, str, int], list[ApprovalVote]] = field(default_factory=dict)

    def add(self, execution: str, block: str, index: int, vote: ApprovalVote) -> None:
        self.votes_by_gate.setdefault((execution, block, index), []).append(vote)

    def votes(self, execution: str, block: str, index: int) -> Sequence[ApprovalVote]:
        return self.votes_by_gate.get((execution, block, index), [])
