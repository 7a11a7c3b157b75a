"""Starting attempts: their records in the ledger first (synced where their effects ask for
it), the ledger published before their processes start (`before_start`), then each process
launched in its sandbox, with its limits and its environment, and watched from then on."""

from __future__ import annotations

import os
import selectors
import time
from collections.abc import Mapping
from pathlib import Path

from foundry._process import Capture, Redactor, spawn
from foundry.boundary import Block
from foundry.executor._attempt import Worktree, _Attempt, confinement_of
from foundry.executor._record import Recorder
from foundry.executor._replay import Replay
from foundry.executor._types import ENV_ALLOWLIST, SYNC_EFFECTS, RunOptions
from foundry.faults import LIVE_GROUPS, crash_point
from foundry.sandbox import Launch, SandboxUnavailable, launch_in


class Starter:
    """Starts the attempts of one run, whose files are under `directory`."""

    def __init__(
        self, rec: Recorder, options: RunOptions, directory: Path, worktree: Worktree
    ) -> None:
        self._rec = rec
        self._opts = options
        self._dir = directory
        self._logs = directory / "logs"
        self._worktree = worktree
        self._allowed_env: dict[str, str] | None = None

    def start(
        self,
        state: Replay,
        blocks: list[Block],
        inputs: Mapping[str, str],
        running: dict[str, _Attempt],
        selector: selectors.BaseSelector,
    ) -> None:
        """Start `blocks` together: each attempt's record is written (one `os.write` each, so a
        crash of the engine cannot lose it), then all are synced at once if any of them has
        effects that ask for it, and only then do their processes start."""
        rec = self._rec
        # A bad workdir stops before any record.
        cwds = [self._worktree.cwd(block) for block in blocks]
        numbers = []
        for block in blocks:
            number = state.attempts.get(block.id, 0) + 1
            state.attempts[block.id] = number
            numbers.append(number)
            rec.record(
                {
                    "type": "attempt-started",
                    "block": block.id,
                    "attempt": number,
                    "effects": block.effects,
                }
            )
        which = ",".join(block.id for block in blocks)
        crash_point("attempt-recorded", which)
        if any(block.effects in SYNC_EFFECTS for block in blocks):
            rec.ledger.sync()
        if self._opts.before_start is not None:
            crash_point("ledger-push-before", which)
            try:
                self._opts.before_start()
            except BaseException as exc:
                self._not_started(blocks, numbers, exc)
                raise
            crash_point("ledger-push-after", which)
        for block, number, cwd in zip(blocks, numbers, cwds, strict=True):
            capture = Capture(Redactor(rec.secret_values), self._logs / f"{block.id}.{number}.log")
            now = time.monotonic()
            launch = None
            try:
                launch = self._launch(block, number, cwd)
                proc = spawn(launch.argv, cwd=cwd, env=self._env(block, inputs, number))
            except (OSError, SandboxUnavailable) as exc:
                if launch is not None:
                    launch.close()
                said = exc.strerror if isinstance(exc, OSError) else str(exc)
                capture.feed(f"cannot start {block.run[0]!r}: {said}\n".encode())
                capture.close()
                rec.record(
                    {
                        "type": "attempt-finished",
                        "block": block.id,
                        "attempt": number,
                        "outcome": "failed",
                        "exitCode": None,
                        "durationMs": 0,
                        "logDigest": capture.digest,
                        "logTail": capture.tail_text(),
                        "outputs": [],
                    }
                )
                rec.finish_block(state, block.id, "failed", f"cannot start {block.run[0]!r}")
                continue
            LIVE_GROUPS.add(proc.pid)
            att = _Attempt(block, number, proc, capture, now, now + block.timeout_seconds)
            att.launch = launch
            running[block.id] = att
            selector.register(proc.out_fd, selectors.EVENT_READ, ("out", att))
            if proc.pidfd >= 0:
                selector.register(proc.pidfd, selectors.EVENT_READ, ("exit", att))
            rec.tell("block-started", block=block.id, attempt=number)
        rec.progress()

    def _launch(self, block: Block, number: int, cwd: Path) -> Launch:
        """The command line of an attempt as its sandbox and limits run it; a sandbox that
        needs room of its own (bwrap's private /tmp) makes it under the execution's directory,
        and it is removed when the attempt ends."""
        confinement = confinement_of(block, self._worktree.root(), cwd, self._opts)
        scratch = self._dir / "sandbox" / f"{block.id}.{number}"
        return launch_in(
            self._opts.sandbox, list(block.run), confinement, scratch, self._opts.state_dir
        )

    def _env(self, block: Block, inputs: Mapping[str, str], attempt: int) -> dict[str, str]:
        if self._allowed_env is None:  # read once per run: the engine's environment is fixed
            source = self._opts.base_env if self._opts.base_env is not None else os.environ
            self._allowed_env = {k: source[k] for k in ENV_ALLOWLIST if k in source}
        env = dict(self._allowed_env)
        env.update(block.env)
        for name, value in inputs.items():
            env[f"ALLOY_INPUT_{name.upper()}"] = value
        for name in block.secrets:
            if name in self._opts.secrets:
                env[name] = self._opts.secrets[name]
        env["ALLOY_EXECUTION"] = self._rec.execution
        env["ALLOY_BLOCK"] = block.id
        env["ALLOY_ATTEMPT"] = str(attempt)
        return env

    def _not_started(self, blocks: list[Block], numbers: list[int], exc: BaseException) -> None:
        """The ledger could not be published before attempts with effects: none of them
        starts, and the ledger says so (a holder that merges this ledger later knows they never
        ran, even if the remote got their start records)."""
        for block, number in zip(blocks, numbers, strict=True):
            self._rec.record(
                {
                    "type": "attempt-finished",
                    "block": block.id,
                    "attempt": number,
                    "outcome": "interrupted",
                    "exitCode": None,
                    "durationMs": 0,
                    "outputs": [],
                    "started": False,
                    "reason": f"not started: the ledger could not be published first ({exc})",
                },
                sync=True,
            )
