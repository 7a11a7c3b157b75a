"""One attempt of a block: what the engine keeps of it while it runs, where it runs (the run's
worktree and the block's directory in it) and the confinement it runs in (its sandbox's view and
its limits, from the block and the run's options), and the evidence it leaves: its process's
facts, and its declared outputs, read from the worktree only."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundry._process import Capture, Proc
from foundry.boundary import Block
from foundry.errors import UserError
from foundry.executor._types import RunOptions
from foundry.sandbox import Confinement, Launch, Limits


@dataclass
class _Attempt:
    block: Block
    number: int
    proc: Proc
    capture: Capture
    started: float
    deadline: float
    term_at: float | None = None
    timed_out: bool = False
    cancelled: bool = False
    stopped: bool = False
    halted: bool = False
    exit_code: int | None = None
    out_open: bool = True
    launch: Launch | None = None
    #: which resource limit ended it, when one did (`Launch.verdict`)
    limit: str | None = None


def attempt_facts(att: _Attempt) -> dict[str, Any]:
    """What an ended attempt's record says about its process and output."""
    return {
        "exitCode": att.exit_code,
        "durationMs": int((time.monotonic() - att.started) * 1000),
        "logDigest": att.capture.digest,
        "logTail": att.capture.tail_text(),
    }


class Worktree:
    """The run's worktree (`workdir`, resolved when first asked for) and a block's working
    directory in it."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._root: Path | None = None

    def root(self) -> Path:
        if self._root is None:
            self._root = self._workdir.resolve()
        return self._root

    def cwd(self, block: Block) -> Path:
        root = self.root()
        if block.workdir is None:
            return root
        cwd = (root / block.workdir).resolve()
        if not cwd.is_relative_to(root):
            raise UserError(f"block {block.id}: workdir {block.workdir!r} leaves the worktree")
        return cwd


def confinement_of(block: Block, worktree: Path, cwd: Path, opts: RunOptions) -> Confinement:
    """What the attempt gets: its worktree and working directory, the network or not, its
    limits (the artifact carries them as numbers), and what the run hides or shows besides."""
    limits = block.limits
    return Confinement(
        worktree,
        cwd,
        network=block.network,
        limits=Limits(
            memory=limits.memory_bytes,
            processes=limits.processes,
            file_size=limits.file_size_bytes,
            cpu=limits.cpu_seconds,
        )
        if limits is not None
        else Limits(),
        hidden=opts.hidden,
        read_only=opts.read_only,
        user=opts.run_as,
    )


def collect_outputs(
    root: Path, worktree: Path, outputs: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The declared outputs (relative to `root`) found as regular files of the worktree, each
    with its digest and size, and those that are not."""
    found: list[dict[str, Any]] = []
    missing: list[str] = []
    for rel in outputs:
        path = (root / rel).resolve()
        if not path.is_relative_to(worktree) or not path.is_file():
            missing.append(rel)
            continue
        # Evidence is what the block wrote in its worktree: a hard link (which may be to a
        # file anywhere on the file system) is not, and neither is a file that is swapped for
        # one between the check and the read (it is read through one descriptor, opened without
        # following links and without waiting on a FIFO).
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            missing.append(rel)
            continue
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if info.st_nlink != 1 or not stat.S_ISREG(info.st_mode):
                missing.append(rel)
                continue
            digest = hashlib.sha256()
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        found.append({"path": rel, "digest": "sha256:" + digest.hexdigest(), "size": info.st_size})
    return found, missing
