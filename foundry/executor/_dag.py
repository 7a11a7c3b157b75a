"""Which blocks of an execution may start, kept up to date as blocks finish."""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from foundry.boundary import Block

NOT_SUCCEEDED = ("failed", "skipped", "cancelled")


class _Dag:
    """What can start, kept up to date as blocks finish.

    A finished block touches only its dependents, and the next block to start comes off a heap,
    so one scheduling step costs O(ready + dependents), not O(all blocks). The heap yields ready
    blocks in block-id order, the order a scan of the sorted ids would find them in.
    """

    def __init__(self, blocks: Mapping[str, Block], status: Mapping[str, str], *, dry_run: bool):
        self.blocks = blocks
        self.dry_run = dry_run
        #: Not finished yet (running ones included).
        self.pending: set[str] = {b for b in blocks if b not in status}
        self.dependents: dict[str, list[str]] = {}
        self.missing: dict[str, int] = {}
        #: Needs all succeeded: may start (a heap of ids).
        self.ready: list[str] = []
        #: To skip: a need did not succeed, or a dry run must not run it (a heap of ids).
        self.doomed: list[str] = []
        for block_id in sorted(self.pending):
            block = blocks[block_id]
            needs = [status.get(n) for n in block.needs]
            for need in block.needs:
                self.dependents.setdefault(need, []).append(block_id)
            self.missing[block_id] = sum(1 for s in needs if s != "succeeded")
            if any(s in NOT_SUCCEEDED for s in needs):
                self.doomed.append(block_id)
            elif self.missing[block_id] == 0:
                self._ready(block_id)
        heapq.heapify(self.ready)
        heapq.heapify(self.doomed)

    def _ready(self, block_id: str) -> None:
        if self.dry_run and self.blocks[block_id].effects != "none":
            heapq.heappush(self.doomed, block_id)
        else:
            heapq.heappush(self.ready, block_id)

    def finished(self, block_id: str, status: str) -> None:
        if block_id not in self.pending:
            return
        self.pending.discard(block_id)
        for dependent in self.dependents.get(block_id, ()):
            if dependent not in self.pending:
                continue
            if status != "succeeded":
                heapq.heappush(self.doomed, dependent)
                continue
            self.missing[dependent] -= 1
            if self.missing[dependent] == 0:
                self._ready(dependent)

    def again(self, block_id: str) -> None:
        """An attempt ended and the block will be retried."""
        if block_id in self.pending:
            heapq.heappush(self.ready, block_id)
