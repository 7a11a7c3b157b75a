"""The claim of a running execution, kept and let go: its renewer thread renews the lease and
publishes the ledger and live trace as attempts start and end; at its end the claim is released
(`finished` or `parked`), into the outbox when the remote is away."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from controllers.claims import Claim, Claims, LeaseLost
from controllers.gitops import GitError, Mirror
from controllers.outbox import Outbox
from controllers.reconcile._files import _read
from controllers.reconcile._model import PassReport, Settings
from foundry.faults import crash_point


class Leasing:
    """The claim-keeping part of a `Reconciler` (its state lives there)."""

    settings: Settings
    mirror: Mirror
    claims: Claims
    outbox: Outbox

    def _renew(
        self,
        claim: Claim,
        ledger_path: Path,
        *,
        publish: Callable[..., None],
        stop: threading.Event,
        lost: threading.Event,
        progress: threading.Event,
        watch: Callable[[], None] = lambda: None,
    ) -> None:
        """Renew the lease every third of it, and publish the claim (ledger and live trace) as
        soon as `progress` says an attempt started or ended. One push at a time: progress that
        comes while a push is under way is coalesced into the next one; a wake whose ledger the
        claim carries already (the engine's own publication before a start, after an end with
        effects) pushes nothing. Ends when `stop` is set (and `progress`, to wake it)."""
        every = max(0.2, self.settings.lease / 3)
        due = time.monotonic() + every
        failed = 0
        while True:
            progress.wait(max(0.0, due - time.monotonic()))
            if stop.is_set():
                return
            progress.clear()
            try:  # whatever fails here, the renewer goes on (else the lease would lapse)
                watch()
                if time.monotonic() < due and _read(ledger_path) == claim.published:
                    continue  # news already on the remote; the lease is not due yet
                crash_point("ledger-push-before", "renewal")
                publish(renewal=True)
                crash_point("ledger-push-after", "renewal")
            except LeaseLost:
                lost.set()
                stop.set()
                return
            except Exception:  # noqa: BLE001 - the remote is away, or a read failed: again soon
                # The lease may still hold when it is back, and the news must reach it: tried
                # again after 0.5 s, 1 s, 2 s ... (never later than the lease's own renewal),
                # not a third of a lease later.
                failed += 1
                due = time.monotonic() + min(every, 0.5 * 2 ** min(failed - 1, 10))
                continue
            failed = 0
            due = time.monotonic() + every

    def _release(
        self,
        claim: Claim,
        state: str,
        ledger: bytes | None,
        trace: bytes | None,
        report: PassReport,
    ) -> bool:
        """Release the claim; False when it is not ours any more (nothing to publish then)."""
        crash_point("release-before")
        try:
            self.claims.release(claim, state, ledger, trace=trace)  # type: ignore[arg-type]
        except LeaseLost as exc:
            report.parked[claim.execution] = f"lost its claim before its end was recorded: {exc}"
            return False
        except GitError as exc:
            import base64

            self.outbox.put(
                "claim",
                {
                    "repo": self.mirror.url,
                    "execution": claim.execution,
                    "sha": claim.sha,
                    "generation": claim.generation,
                    "state": state,
                    "ledger": base64.b64encode(ledger).decode() if ledger is not None else None,
                    "trace": base64.b64encode(trace).decode() if trace is not None else None,
                    "artifact": base64.b64encode(claim.artifact).decode()
                    if claim.artifact is not None
                    else None,
                    "commit": claim.commit,
                    "facts": claim.facts,
                },
                str(exc),
            )
            report.errors.append(f"{claim.execution}: its claim release waits in the outbox: {exc}")
        crash_point("release-after")
        return True
