"""Claims that no plan covers any more, looked after (DESIGN section 9: nothing lost).

The planner proposes what the default branch asks for now. A claim can outlive that: an apply
of a digest that was replaced, a push out of the window, a dispatched run — whose holder died,
or finished and crashed before its trace was published. Every pass that reads the remote lists
the claims (one `git ls-remote`) and looks at those whose execution has no finished trace:

* `finished` — its trace and check run are published from the claim (repair);
* `running` with its lease run out, or `parked` with no trace at all — it is taken over and
  resumed from what the claim holds (artifact, event, inputs, commit, ledger);
* `running` under a live lease — looked at again when the lease runs out (a dead holder never
  renews it), even if nothing else moves;
* `parked` with a trace — it waits for its gate, its lane or a person, as the trace says. A
  push or schedule execution that waits on a gate or its lane is judged again like a planned
  one (its event left the plan's window, its gate did not stop mattering); an indeterminate one
  when the default branch moved (an Approval may have come). Anything else is looked at again
  only when the claim moves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from controllers.claims import PREFIX, Claims, Holding, NotAClaim
from controllers.gitops import Mirror
from controllers.reconcile._model import FINISHED, PassReport, TraceInfo
from controllers.reconcile._work import Work

if TYPE_CHECKING:
    from controllers.control import Control
    from foundry.boundary import Boundary
    from foundry.ids import Event


class Scanning:
    """The claims-scanning part of a `Reconciler` (its state lives there)."""

    mirror: Mirror
    claims: Claims
    state: Path
    _traces: dict[str, TraceInfo]
    _memory: dict[str, Any]
    _control: Control

    def _claims_due(self, now: float) -> bool:
        wake = self._memory.get("claimsWake")
        return wake is not None and now >= wake

    def _scan(
        self, *, planned: set[str], now: float, report: PassReport, boundary: Boundary
    ) -> list[Work]:
        listing = {
            ref.removeprefix(PREFIX): sha for ref, sha in self.mirror.refs_under(PREFIX).items()
        }
        memo: dict[str, list[Any]] = {
            e: m for e, m in self._memory.get("claims", {}).items() if e in listing
        }
        candidates = []
        for execution, sha in sorted(listing.items()):
            info = self._traces.get(execution)
            if execution in planned or (info is not None and info.status in FINISHED):
                memo.pop(execution, None)
                continue
            seen = memo.get(execution)
            ending = self._ending(execution, info, boundary)
            if ending is None and (
                seen is not None and seen[0] == sha and (seen[1] is None or now < seen[1])
            ):
                continue
            candidates.append(execution)
        if candidates:
            self.mirror.fetch([PREFIX + e for e in candidates])
        work = []
        for execution in candidates:
            sha = self.mirror.rev(PREFIX + execution) or listing[execution]
            try:
                held = self.claims.holding(sha)
            except NotAClaim as exc:
                report.errors.append(f"{execution}: {exc}")
                memo[execution] = [sha, None]
                continue
            if held.execution != execution:
                report.errors.append(
                    f"{execution}: its claim names another execution ({held.execution or 'none'}); "
                    "left as it is"
                )
                memo[execution] = [sha, None]
                continue
            info = self._traces.get(execution)
            until = self.claims.expiry(held) if held.state == "running" else now
            if held.state == "running" and until > now:
                memo[execution] = [sha, until]
            elif (
                held.state == "parked"
                and info is not None
                and not _judged_again(info, report)
                and self._ending(execution, info, boundary) is None
            ):
                memo[execution] = [sha, None]
            else:  # finished (repair), expired (its holder died), parked with no trace, ended
                item = self._from_claim(held, report)
                if item is None:
                    memo[execution] = [sha, None]
                else:
                    item.repair = held.state == "finished"
                    if held.state == "parked":
                        item.end = self._ending(execution, info, boundary)
                    work.append(item)
        self._memory["claims"] = memo
        wakes = [m[1] for m in memo.values() if m[1] is not None]
        self._memory["claimsWake"] = min(wakes) if wakes else None
        return work

    def _ending(
        self, execution: str, info: TraceInfo | None, boundary: Boundary
    ) -> tuple[Literal["cancelled", "skipped"], str] | None:
        """Whether an unfinished execution no plan covers ends now, and how: cancelled by an
        operator, or superseded — an apply or a request whose artifact changed on the default
        branch (or was removed), a request whose Request document changed. A push or a
        schedule runs the artifact of its commit or slot: a newer one does not supersede it; a
        Request removed from the branch does not end its execution either (a dispatched run
        never was on it): `foundry cancel` does."""
        order = self._control.cancel_for(execution)
        if order is not None:
            return "cancelled", order.describe()
        if info is None or info.status in FINISHED or info.event not in ("apply", "request"):
            return None
        artifact = boundary.artifacts.get(info.artifact)
        if artifact is None:
            return "skipped", f"superseded: intent {info.intent} is no longer on the default branch"
        if info.digest and artifact.digest != info.digest:
            return "skipped", (
                f"superseded: intent {info.intent} changed (its artifact is now "
                f"{artifact.digest[:19]}, this execution's was {info.digest[:19]})"
            )
        if info.event == "request":
            from foundry.planner import request_key

            name = info.key.split("@", 1)[0]
            request = boundary.requests.get(name)
            if request is not None and request_key(request) != info.key:
                return "skipped", f"superseded: request {name} changed since it started"
        return None

    def _from_claim(self, held: Holding, report: PassReport) -> Work | None:
        """What resuming (or repairing) an execution takes, read from its claim alone."""
        from foundry.boundary import read_artifact
        from foundry.errors import BoundaryError
        from foundry.ids import Event

        record = self.claims.record(held)
        execution = held.execution
        facts = dict(held.facts)
        if "event" not in facts and record.ledger:
            first = json.loads(record.ledger.splitlines()[0])
            facts = {"event": first.get("event"), "inputs": first.get("inputs") or {}}
        event_data = facts.get("event")
        if record.artifact is None or not isinstance(event_data, dict) or not held.commit:
            report.errors.append(
                f"{execution}: its claim ({held.state}, by {held.holder}) does not say what it "
                "runs (a claim from an older version); it is left as it is"
            )
            return None
        try:
            artifact = read_artifact(f"{PREFIX}{execution}:artifact.json", record.artifact)
            event: Event = Event(event_data["type"], str(event_data["key"]))
        except (BoundaryError, KeyError, TypeError) as exc:
            report.errors.append(f"{execution}: cannot resume from its claim: {exc}")
            return None
        return Work(
            execution=execution,
            event=event,
            artifact=artifact,
            artifact_bytes=record.artifact,
            commit=held.commit,
            inputs=dict(facts.get("inputs") or {}),
            new=False,
            initiator=str(facts["initiator"]) if facts.get("initiator") else None,
        )


def _judged_again(info: TraceInfo, report: PassReport) -> bool:
    """Whether a parked execution that no plan covers is resumed by this pass (see above)."""
    if info.event not in ("push", "schedule"):
        return False  # an apply of a replaced digest, a request no longer there: left alone
    if info.status in ("waiting", "queued"):
        return True
    return info.status == "indeterminate" and report.moved
