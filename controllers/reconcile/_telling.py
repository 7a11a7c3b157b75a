"""What a running execution tells: every event to whoever watches (`progress`), and what it
waits on into the pass report, with on whom and the command that unblocks it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from controllers.reconcile._model import PassReport

if TYPE_CHECKING:
    from foundry.progress import Progress


class Telling:
    """The telling part of a `Reconciler` (its state lives there)."""

    branch: str | None
    progress: Callable[[Progress], None] | None

    def _tell(self, event: Progress, report: PassReport) -> None:
        """An event of a running execution: what waits goes into the pass report, with on whom
        and the command that unblocks it; every event to whoever watches (`progress`)."""
        from foundry.progress import next_step

        waits = report.waiting.setdefault(event.execution, [])
        if event.kind == "execution-started":
            waits.clear()  # judged anew
        elif event.kind == "waiting":
            step = next_step(event, where="reconcile", branch=self.branch)
            waits[:] = [
                w for w in waits if (w["block"], w["gate"]) != (event.block, event.gate_index)
            ]
            waits.append(
                {
                    "block": event.block,
                    "gate": event.gate_index,
                    "kind": event.gate.kind if event.gate is not None else "indeterminate",
                    "reason": event.reason,
                    "waitingOn": event.waits_on,
                    "command": step.command if step is not None else None,
                    "next": step.text() if step is not None else None,
                }
            )
        elif event.kind == "execution-ended" and event.status == "queued":
            waits.append(
                {
                    "block": None,
                    "gate": None,
                    "kind": "lane",
                    "reason": event.reason,
                    "waitingOn": "a slot in its lane",
                    "command": None,
                    "next": "the next pass judges it again",
                }
            )
        if not waits:
            del report.waiting[event.execution]
        if self.progress is not None:
            self.progress(event)
