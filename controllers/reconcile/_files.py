"""An execution's files in the state directory: its ledger (read whole, replaced whole, a
`held` note appended) and its worktrees, handed over to the user its blocks run as."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from controllers.gitops import worktree_entry

if TYPE_CHECKING:
    from foundry.sandbox import RunAs


def _hand_over_worktree(worktree: Path, state: Path, user: RunAs, mirror: Path) -> None:
    """The worktree, and its administrative entry in `mirror` (git refuses a worktree whose git
    directory is someone else's), become `user`'s; the directories on the way let its group
    pass. The entry is the mirror's own that names this worktree back (`worktree_entry`),
    never what the worktree's `.git`, the user's file, names alone. What the entry says about
    where it belongs is only trusted as far as `Mirror.worktree_head` and
    `Mirror._drop_broken` check it."""
    from foundry.sandbox import hand_over, let_pass

    let_pass(worktree, state, user)
    hand_over(worktree, user)
    entry = worktree_entry(mirror, worktree)
    if entry is not None and entry.is_relative_to(os.path.realpath(state)):
        let_pass(entry, state, user)
        hand_over(entry, user)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".merge")
    tmp.write_bytes(data)
    tmp.replace(path)


def _note(path: Path, generation: int, at: float, reason: str) -> None:
    """A `held` record at the end of a ledger: why the execution stopped where it did (its
    trace's reason until it goes on)."""
    from foundry.ledger import Ledger

    ledger = Ledger(path, generation=generation)
    try:
        ledger.append({"type": "held", "reason": reason}, at=at, sync=True)
    finally:
        ledger.close()
