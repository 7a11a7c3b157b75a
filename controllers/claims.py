"""Claims: each execution runs exactly once among all reconcilers of a remote, without a shared
database (DESIGN section 8).

A claim is the ref `refs/alloy/claims/<execution>` on the remote. It points at a commit (empty
of files except `claim.json` and, once there is one, `ledger.jsonl`) that says who holds it, in
which state, and until when:

* `running` — held by `holder` until `expires`; the holder renews the lease while it works and
  pushes its ledger with each renewal (and before any attempt with reversible or irreversible
  effects starts), so whoever takes over a dead holder's claim recovers from that ledger by the
  engine's rules;
* `parked` — the execution waits (a gate, an indeterminate block, its lane); anyone may take it
  to re-evaluate it;
* `finished` — done; nobody runs it again.

Taking a claim is a push with `--force-with-lease`: creation succeeds only if the ref does not
exist, a takeover (a parked claim, or an expired lease) only if the ref still points at the
commit that was read. Of several claimers racing, git's ref lock on the remote lets exactly one
win.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from controllers.gitops import Mirror
from foundry.ports import Clock

PREFIX = "refs/alloy/claims/"
State = Literal["running", "parked", "finished"]


class LeaseLost(Exception):
    """Someone else holds the claim now (our lease expired and was taken over)."""


@dataclass
class Claim:
    """A claim this process holds."""

    execution: str
    sha: str
    holder: str
    #: The ledger left by the previous holder (None for a fresh claim).
    ledger: bytes | None
    taken_over: str | None = None

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

    def _commit(self, execution: str, state: State, ledger: bytes | None) -> str:
        body = {
            "execution": execution,
            "holder": self.holder,
            "state": state,
            "expires": round(self.clock.now() + self.lease, 3) if state == "running" else 0,
        }
        files = {"claim.json": (json.dumps(body, sort_keys=True) + "\n").encode()}
        if ledger is not None:
            files["ledger.jsonl"] = ledger
        # Each claim commit stands alone (no parent): the ref's history is not needed, and a
        # compare-and-swap push does not need a fast-forward.
        return self.mirror.commit(None, files, f"{state} {execution} by {self.holder}")

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
        return self._holding(sha)

    def _holding(self, sha: str) -> Holding:
        body: dict[str, Any] = json.loads(self.mirror.blob(self._file(sha, "claim.json")))
        return Holding(body["state"], body["holder"], float(body["expires"]), sha)

    def _file(self, commit: str, name: str) -> str:
        entries = self.mirror.tree(commit, name)
        return entries[name]

    def _ledger(self, commit: str) -> bytes | None:
        entries = self.mirror.tree(commit, "ledger.jsonl")
        sha = entries.get("ledger.jsonl")
        return self.mirror.blob(sha) if sha else None

    def acquire(self, execution: str) -> tuple[Claim | None, str]:
        """Claim `execution`; (None, why) when someone else has it or it is finished."""
        ref = PREFIX + execution
        fresh = self._commit(execution, "running", None)
        result = self.mirror.push([(fresh, ref, None)])
        if result.ok:
            return Claim(execution, fresh, self.holder, None), "claimed"
        held = self.read(execution)
        if held is None:  # released and deleted between our push and our read: try once more
            result = self.mirror.push([(fresh, ref, None)])
            if result.ok:
                return Claim(execution, fresh, self.holder, None), "claimed"
            return None, "claimed by someone else just now"
        if held.state == "finished":
            return None, f"finished by {held.holder}"
        now = self.clock.now()
        if held.state == "running" and held.expires > now:
            self.held_until[execution] = held.expires
            return None, f"held by {held.holder} for {held.expires - now:.0f}s more"
        ledger = self._ledger(held.sha)
        taken = self._commit(execution, "running", ledger)
        result = self.mirror.push([(taken, ref, held.sha)])
        if not result.ok:
            return None, "taken by someone else just now"
        why = (
            f"took over from {held.holder} (lease expired)"
            if held.state == "running"
            else f"resumed (parked by {held.holder})"
        )
        return Claim(execution, taken, self.holder, ledger, taken_over=held.holder), why

    def renew(self, claim: Claim, ledger: bytes | None) -> None:
        """Extend the lease and publish the ledger so far; LeaseLost if the claim was taken."""
        self._move(claim, "running", ledger)

    def release(self, claim: Claim, state: State, ledger: bytes | None) -> None:
        """Give the claim up as `parked` (anyone may resume it) or `finished`."""
        self._move(claim, state, ledger)

    def _move(self, claim: Claim, state: State, ledger: bytes | None) -> None:
        new = self._commit(claim.execution, state, ledger)
        result = self.mirror.push([(new, claim.ref, claim.sha)])
        if not result.ok:
            raise LeaseLost(f"{claim.execution}: the claim was taken over ({result.detail})")
        claim.sha = new
