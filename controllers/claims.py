"""Claims: each execution runs exactly once among all reconcilers of a remote, without a shared
database (DESIGN sections 8 and 9).

A claim is the ref `refs/alloy/claims/<execution>` on the remote. It points at a commit (no
parent) holding `claim.json` — who holds it, in which state, until when, its **generation** and
the commit the execution runs at — the execution's `artifact.json`, and, once there is one, its
`ledger.jsonl` and `trace.json`, the execution's Trace (`alloy.dev/v1`) built from that very
ledger (the live trace: what a reader shows of a running execution; a claim written by an older
version has none, and nothing here needs it):

* `running` — held by `holder` until `expires`; the holder renews the lease while it works and
  publishes its ledger and trace with each renewal, before any attempt starts, after an attempt
  with reversible or irreversible effects ends, and, soon after, whenever an attempt started or
  ended;
* `parked` — the execution waits (a gate, an indeterminate block, its lane, a stop); anyone may
  take it to re-evaluate it;
* `finished` — done; nobody runs it again. The claim carries everything its trace and check run
  are made of (ledger, artifact, commit), so any host can publish them if its holder could not.

**Generations** fence holders: taking a claim (creating it, or taking it over once it is
parked or its lease expired) writes generation `n + 1`; renewals and releases keep it. Every
ledger record a holder writes carries its generation. A holder writes only by compare-and-swap
from the commit it last wrote, so a holder whose claim was taken over can never write again.

Taking a claim is a push with `--force-with-lease`: creation succeeds only if the ref does not
exist, a takeover only if the ref still points at the commit that was read. Of several claimers
racing, git's ref lock on the remote lets exactly one win.

**One writer per claim in a process**: renewals (a thread) and publications (the engine) go
through the claim's lock, one at a time. A compare-and-swap that fails because our own earlier
push landed although we never heard back (the connection broke) is recognised — the remote
names our holder and generation — and is not a lost lease.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from controllers.gitops import GitError, Mirror
from foundry.faults import crash_point
from foundry.ports import Clock

PREFIX = "refs/alloy/claims/"
State = Literal["running", "parked", "finished"]


class LeaseLost(Exception):
    """Someone else holds the claim now (our lease expired and was taken over)."""


class NotAClaim(Exception):
    """A ref under `refs/alloy/claims/` that is not a claim this version wrote (edited by hand,
    or by something else): reported for its execution, never run over."""


@dataclass
class Claim:
    """A claim this process holds."""

    execution: str
    sha: str
    holder: str
    generation: int
    #: The ledger the remote held when the claim was taken (None for a fresh claim).
    ledger: bytes | None
    #: The artifact the execution runs (carried by every commit of the claim).
    artifact: bytes | None = None
    #: The commit the execution runs at (its worktree, its check run).
    commit: str | None = None
    #: The execution's event and inputs, so that any host can resume or report it from the
    #: claim alone (`{"event": {"type", "key"}, "inputs": {...}}`).
    facts: dict[str, Any] = field(default_factory=dict)
    taken_over: str | None = None
    #: The ledger of the last claim commit this process wrote (a publication that would carry
    #: the same ledger again can be left out).
    published: bytes | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def ref(self) -> str:
        return PREFIX + self.execution


@dataclass(frozen=True)
class Holding:
    """What a claim ref says."""

    state: State
    holder: str
    expires: float
    sha: str
    generation: int = 0
    execution: str = ""
    commit: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    #: The holder's lease in seconds (None: a claim from an older version).
    lease: float | None = None


@dataclass(frozen=True)
class Record:
    """Everything a claim commit holds (for repairing a finished execution's publications)."""

    holding: Holding
    ledger: bytes | None
    artifact: bytes | None


class Claims:
    """Claims on one remote, through its mirror."""

    def __init__(self, mirror: Mirror, holder: str, clock: Clock, lease: float = 60.0) -> None:
        self.mirror = mirror
        self.holder = holder
        self.clock = clock
        self.lease = lease
        #: Executions `acquire` found running under someone else's lease, and when that lease
        #: runs out (a reconciler looks again then: a dead holder never renews it).
        self.held_until: dict[str, float] = {}
        #: When this host first saw each running claim commit, by its own clock (a holder whose
        #: clock runs ahead writes `expires` too far out; an unchanged claim still runs out one
        #: lease after we first saw it). Kept between passes by the reconciler.
        self.seen: dict[str, float] = {}

    def _commit(
        self, claim: Claim, state: State, ledger: bytes | None, trace: bytes | None = None
    ) -> str:
        body: dict[str, Any] = {
            "execution": claim.execution,
            "holder": self.holder,
            "state": state,
            "generation": claim.generation,
            "expires": round(self.clock.now() + self.lease, 3) if state == "running" else 0,
            "lease": self.lease,
        }
        if claim.commit is not None:
            body["commit"] = claim.commit
        body.update(claim.facts)
        files = {"claim.json": (json.dumps(body, sort_keys=True) + "\n").encode()}
        if ledger is not None:
            files["ledger.jsonl"] = ledger
        if trace is not None:
            files["trace.json"] = trace
        if claim.artifact is not None:
            files["artifact.json"] = claim.artifact
        # Each claim commit stands alone (no parent): the ref's history is not needed, and a
        # compare-and-swap push does not need a fast-forward.
        return self.mirror.commit(
            None,
            files,
            f"{state} {claim.execution} by {self.holder} (generation {claim.generation})",
        )

    def read(self, execution: str) -> Holding | None:
        """The claim as the remote has it now (fetched into the mirror), or None."""
        ref = PREFIX + execution
        heads = self.mirror.heads([ref])
        if ref not in heads:
            return None
        self.mirror.fetch([ref])
        # The ref may have moved again between `ls-remote` and the fetch (a renewal, a release):
        # read what was fetched, which is at least as new and is in the mirror.
        sha = self.mirror.rev(ref) or heads[ref]
        return self.holding(sha)

    def record(self, holding: Holding) -> Record:
        """The ledger and artifact of the claim commit `holding` was read from."""
        return Record(
            holding,
            self._file(holding.sha, "ledger.jsonl"),
            self._file(holding.sha, "artifact.json"),
        )

    def holding(self, sha: str) -> Holding:
        """What the claim commit `sha` says; NotAClaim when it is not a claim."""
        try:
            return _holding(sha, self._file(sha, "claim.json"))
        except (ValueError, KeyError, TypeError, GitError) as exc:
            raise NotAClaim(
                f"claim commit {sha[:12]} is not a claim ({exc}); delete the ref or restore "
                "it from the remote's history"
            ) from None

    def _file(self, commit: str, name: str) -> bytes | None:
        try:
            sha = self.mirror.tree(commit, name).get(name)
        except Exception as exc:  # noqa: BLE001 - GitPython's own errors: not a tree, missing
            raise GitError(f"cannot read {name} of {commit[:12]}: {exc}") from None
        return self.mirror.blob(sha) if sha else None

    def acquire(
        self,
        execution: str,
        *,
        artifact: bytes | None = None,
        commit: str | None = None,
        facts: dict[str, Any] | None = None,
    ) -> tuple[Claim | None, str, Holding | None]:
        """Claim `execution`: (the claim, why, None), or (None, why, what the remote has) when
        someone else holds it or it is finished."""
        ref = PREFIX + execution
        claim = Claim(execution, "", self.holder, 1, None, artifact, commit, dict(facts or {}))
        fresh = self._commit(claim, "running", None)
        result = self.mirror.push([(fresh, ref, None)])
        if result.ok:
            claim.sha = fresh
            crash_point("claim-taken", execution)
            return claim, "claimed", None
        try:
            held = self.read(execution)
        except NotAClaim as exc:
            return None, str(exc), None
        if held is None:  # deleted between our push and our read: try once more
            result = self.mirror.push([(fresh, ref, None)])
            if result.ok:
                claim.sha = fresh
                crash_point("claim-taken", execution)
                return claim, "claimed", None
            if self.read(execution) is None:  # refused, and still nobody has it
                raise GitError(
                    f"the remote refuses to create {ref} though nobody holds it ({result.detail}); "
                    "a stale lock file of that ref on the remote?"
                )
            return None, "claimed by someone else just now", None
        if held.state == "finished":
            return None, f"finished by {held.holder}", held
        now = self.clock.now()
        until = self.expiry(held)
        if held.state == "running" and until > now:
            self.held_until[execution] = until
            return None, f"held by {held.holder} for {until - now:.0f}s more", held
        record = self.record(held)
        # The trace the last holder published describes the ledger carried over: kept with it.
        trace = self._file(held.sha, "trace.json") if record.ledger is not None else None
        claim = Claim(
            execution,
            "",
            self.holder,
            held.generation + 1,
            record.ledger,
            record.artifact or artifact,
            held.commit or commit,
            held.facts or dict(facts or {}),
            taken_over=held.holder,
        )
        taken = self._commit(claim, "running", record.ledger, trace)
        if not self.mirror.push([(taken, ref, held.sha)]).ok:
            return None, "taken by someone else just now", None
        claim.sha = taken
        claim.published = record.ledger
        crash_point("claim-taken", execution)
        why = (
            f"took over from {held.holder} (lease expired; generation {claim.generation})"
            if held.state == "running"
            else f"resumed (parked by {held.holder}; generation {claim.generation})"
        )
        return claim, why, None

    def expiry(self, held: Holding) -> float:
        """When a running claim runs out: its `expires`, or one lease after this host first saw
        that very claim commit, whichever comes first (clocks of hosts may disagree)."""
        first = self.seen.setdefault(held.sha, self.clock.now())
        return min(held.expires, first + (held.lease or self.lease))

    def renew(
        self,
        claim: Claim,
        ledger: bytes | None,
        *,
        trace: bytes | None = None,
        renewal: bool = False,
    ) -> None:
        """Extend the lease and publish the ledger so far, with its trace (`trace.json`; None
        writes none); LeaseLost if the claim was taken. `renewal`: this is a push of the
        renewer thread (a crash point sits between its push and our noting it)."""
        self._move(claim, "running", ledger, trace, renewal=renewal)

    def release(
        self, claim: Claim, state: State, ledger: bytes | None, *, trace: bytes | None = None
    ) -> None:
        """Give the claim up as `parked` (anyone may resume it) or `finished`, with the final
        ledger and its trace."""
        self._move(claim, state, ledger, trace)

    def _move(
        self,
        claim: Claim,
        state: State,
        ledger: bytes | None,
        trace: bytes | None,
        *,
        renewal: bool = False,
    ) -> None:
        with claim.lock:
            new = self._commit(claim, state, ledger, trace)
            result = self.mirror.push([(new, claim.ref, claim.sha)])
            if renewal:
                crash_point("renewal", claim.execution)
            if result.ok:
                claim.sha = new
                claim.published = ledger
                return
            # Rejected: someone else moved the ref — or our own earlier push landed although we
            # never heard back. The remote tells which: its claim names holder and generation.
            try:
                held = self.read(claim.execution)
            except NotAClaim:
                held = None
            if held is None or (held.holder, held.generation) != (self.holder, claim.generation):
                who = "nobody" if held is None else f"{held.holder} (generation {held.generation})"
                raise LeaseLost(
                    f"{claim.execution}: the claim was taken over; {who} holds it now "
                    f"({result.detail})"
                )
            if held.state != "running":
                raise LeaseLost(f"{claim.execution}: the claim was already released ({held.state})")
            claim.sha = held.sha
            new = self._commit(claim, state, ledger, trace)
            if not self.mirror.push([(new, claim.ref, claim.sha)]).ok:
                raise LeaseLost(f"{claim.execution}: the claim was taken over just now")
            claim.sha = new
            claim.published = ledger


def _holding(sha: str, data: bytes | None) -> Holding:
    """A claim.json read strictly (ValueError, KeyError or TypeError when it is not one)."""
    body: Any = json.loads(data) if data is not None else None
    if not isinstance(body, dict):
        raise TypeError("no claim.json object")
    state = body["state"]
    if state not in ("running", "parked", "finished"):
        raise ValueError(f"state {state!r}")
    commit = body.get("commit")
    return Holding(
        state,
        str(body["holder"]),
        float(body["expires"]),
        sha,
        int(body.get("generation", 0)),
        str(body.get("execution", "")),
        commit if isinstance(commit, str) else None,
        {k: body[k] for k in ("event", "inputs") if isinstance(body.get(k), dict)},
        float(body["lease"]) if isinstance(body.get("lease"), int | float) else None,
    )
