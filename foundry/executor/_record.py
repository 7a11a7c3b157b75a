"""What a run writes down and tells: its ledger records (reasons with secrets masked), a block's
end (in the ledger, the replayed state and the DAG), and the news for whoever watches it."""

from __future__ import annotations

import contextlib
from typing import Any

from foundry._process import redact_text
from foundry.boundary import Artifact, Block
from foundry.executor._dag import _Dag
from foundry.executor._replay import Replay
from foundry.executor._types import RunOptions
from foundry.ids import Event
from foundry.ledger import Ledger
from foundry.ports import Clock
from foundry.progress import Kind, Progress, waits_on


class Recorder:
    """The ledger and the news of one run of an execution (`execution` of `artifact` for
    `event`), stamped with the run's `clock`."""

    def __init__(
        self,
        ledger: Ledger,
        clock: Clock,
        options: RunOptions,
        *,
        execution: str,
        artifact: Artifact,
        event: Event,
        secret_values: list[str],
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self.execution = execution
        self.artifact = artifact
        self.secret_values = secret_values
        #: The blocks that may start, while blocks run: a block's end is news to it too.
        self.dag: _Dag | None = None
        self._opts = options
        self._event = event
        self._told: set[tuple[str, int, str]] = set()  # waits already told (gate, reason)

    def record(self, record: dict[str, Any], *, sync: bool = False) -> None:
        if "reason" in record and isinstance(record["reason"], str):
            record["reason"] = redact_text(record["reason"], self.secret_values)
        self.ledger.append(record, at=self.clock.now(), sync=sync)

    def finish_block(
        self,
        state: Replay,
        block: str,
        status: str,
        reason: str = "",
        *,
        seconds: float | None = None,
        attempt: int | None = None,
    ) -> None:
        self.record({"type": "block-finished", "block": block, "status": status, "reason": reason})
        self.tell(
            "block-ended",
            block=block,
            status=status,
            reason=reason,
            seconds=seconds,
            attempt=attempt,
        )
        state.status[block] = status
        state.reasons[block] = redact_text(reason, self.secret_values)  # as its record says
        if self.dag is not None:
            self.dag.finished(block, status)

    def tell(self, kind: Kind, **fields: Any) -> None:
        """Tell whoever watches (`on_event`) what happened; news, never a step of the run."""
        if self._opts.on_event is None:
            return
        reason = fields.pop("reason", "")
        event = Progress(
            kind,
            self.execution,
            self.artifact.spec.intent.name,
            self._event.type,
            self._event.key,
            self.clock.now(),
            reason=redact_text(reason, self.secret_values) if reason else "",
            **fields,
        )
        with contextlib.suppress(Exception):
            self._opts.on_event(event)

    def tell_wait(self, block: Block, index: int, reason: str) -> None:
        """A gate waits (index -1: an indeterminate block): told once per reason in a run."""
        if (block.id, index, reason) in self._told:
            return
        self._told.add((block.id, index, reason))
        gate = block.gates[index] if index >= 0 else None
        owners = list(self.artifact.spec.intent.owners)
        on = waits_on(gate, owners=owners)
        self.tell(
            "waiting", block=block.id, gate_index=index, gate=gate, reason=reason, waits_on=on
        )

    def progress(self) -> None:
        """Tell the controller that the ledger moved (an attempt started or ended). News, not
        a step of the run: whatever the callback raises is ignored."""
        if self._opts.on_progress is not None:
            with contextlib.suppress(Exception):
                self._opts.on_progress()
