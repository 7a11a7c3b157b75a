"""Files of a worktree that a block may have written, read without trusting them: a small
regular file read through one descriptor (never a link followed, never a FIFO waited on), and
the git directory a linked worktree's `.git` names, believed only when it names the worktree
back."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def small_file(path: Path, limit: int = 4096) -> str | None:
    """The text of a small regular file at `path` (at most `limit` bytes of it), or None when
    it is not one: a link, a FIFO or a device is never opened in a way that follows or waits,
    as a file a block could have written may be any of them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def linked_git_dir(worktree: Path) -> Path | None:
    """The git directory of the linked worktree at `worktree` (`COMMON/worktrees/NAME`, as
    `git worktree add` makes it): the one its `.git` file names, if that directory's own
    `gitdir` file names this `.git` back. None for anything else (a block may have rewritten
    either file)."""
    marker = worktree.absolute() / ".git"
    pointer = small_file(marker)
    if pointer is None or not pointer.startswith("gitdir:"):
        return None
    gitdir = Path(os.path.realpath(worktree / pointer[len("gitdir:") :].strip()))
    if gitdir.parent.name != "worktrees":
        return None
    back = small_file(gitdir / "gitdir")
    if back is None or os.path.realpath(back.strip()) != os.path.realpath(marker):
        return None
    return gitdir
