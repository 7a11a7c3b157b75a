"""Which blocks start next: one scheduling pass skips what cannot run, sets aside what must wait
(a gate, a retry's backoff), and starts what can while a worker is free."""

from __future__ import annotations

import contextlib
import heapq
import threading
from collections.abc import Callable, Mapping

from foundry.boundary import Block
from foundry.executor._attempt import _Attempt
from foundry.executor._dag import NOT_SUCCEEDED, _Dag
from foundry.executor._record import Recorder
from foundry.executor._replay import Replay


def schedule(
    rec: Recorder,
    state: Replay,
    dag: _Dag,
    blocks: Mapping[str, Block],
    *,
    running: Mapping[str, _Attempt],
    not_before: dict[str, float],
    workers: int,
    cancel: threading.Event,
    stop: threading.Event,
    judge: Callable[[Block], str],
    start: Callable[[list[Block]], None],
    look: Callable[[], None] | None = None,
) -> list[str]:
    """Skip what cannot run, start what can; return the blocks waiting on a gate.

    Ready blocks are taken in block-id order while a worker is free; those taken in one
    pass start together (one sync for all of their attempt records, see `Starter.start`).
    `judge` says what a block's gates say ('passed', 'waiting' or 'failed'); `start` starts
    the blocks taken; `look`, when given, is asked first whether the run was stopped
    (`RunOptions.look_before_starting`)."""
    waiting: list[str] = []
    aside: list[str] = []  # ready, but not now (a gate waits, or a retry's backoff)
    try:
        while True:
            _skip_doomed(rec, state, dag, blocks, running=running, cancel=cancel)
            starting: list[Block] = []
            while dag.ready and len(running) + len(starting) < workers:
                if cancel.is_set() or stop.is_set():
                    break
                block_id = heapq.heappop(dag.ready)
                if block_id not in dag.pending or block_id in running:
                    continue
                block = blocks[block_id]
                if not_before.get(block_id, 0.0) > rec.clock.now():
                    aside.append(block_id)
                    continue
                decision = judge(block)
                if decision == "waiting":
                    waiting.append(block_id)
                    aside.append(block_id)
                    continue
                if decision == "failed":
                    continue
                not_before.pop(block_id, None)
                starting.append(block)
            if starting and look is not None:
                # Only when something is about to start (one look per start, beside the push
                # of its records): a stop it finds keeps them from starting.
                with contextlib.suppress(Exception):
                    look()
                if cancel.is_set() or stop.is_set():
                    for block in starting:
                        heapq.heappush(dag.ready, block.id)
                    starting = []
            if starting:
                start(starting)
            elif not dag.doomed:
                return waiting
    finally:
        for block_id in aside:
            heapq.heappush(dag.ready, block_id)


def _skip_doomed(
    rec: Recorder,
    state: Replay,
    dag: _Dag,
    blocks: Mapping[str, Block],
    *,
    running: Mapping[str, _Attempt],
    cancel: threading.Event,
) -> None:
    """Finish as skipped the blocks a failed need (or a dry run) keeps from running."""
    while dag.doomed:
        block_id = heapq.heappop(dag.doomed)
        if block_id not in dag.pending or block_id in running:
            continue
        block = blocks[block_id]
        bad = [n for n in block.needs if state.status.get(n) in NOT_SUCCEEDED]
        if bad:
            rec.finish_block(
                state, block_id, "skipped", f"needs {', '.join(bad)}, which did not succeed"
            )
        elif not cancel.is_set():  # a dry run; cancelled blocks end as cancelled
            rec.finish_block(state, block_id, "skipped", f"dry run: effects {block.effects}")
