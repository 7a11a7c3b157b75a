"""File events of `foundry daemon`: a watchdog observer on the refs of the repositories on this
machine (a path or `file://`, with `watch: true`).

For each, its git dir's `refs/` (recursively) and `packed-refs` are watched; a change is told
to the daemon as the ref's path under the git dir (`packed-refs` or `refs/…`, without `.lock`).
`moves_a_branch` says which of them may make a pass do something: not tags, remote-tracking
refs, Foundry's own `refs/alloy/*` or its traces branch.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from controllers.daemon_config import _local_path, git_dir
from controllers.daemon_log import DaemonLog
from controllers.daemon_repo import Repository

#: The file events that can mean a ref changed (not opens, reads or attribute changes: our own
#: `git ls-remote` reads the refs, and must not make the repository due again).
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


class RefWatcher:
    """The observer of the daemon's local repositories; `on_ref_event(repo, ref)` is called (on
    the observer's thread) when a ref of `repo` changed."""

    def __init__(self, log: DaemonLog, on_ref_event: Callable[[Repository, str], None]) -> None:
        self._log = log
        self._on_ref_event = on_ref_event
        self._observer: BaseObserver | None = None

    def start(self, repos: Sequence[Repository]) -> None:
        """Watch those of `repos` that ask for it (each found watched is marked `watched`)."""
        wanted = [r for r in repos if r.config.watch]
        if not wanted:
            return
        observer = Observer()
        observer.daemon = True
        observer.start()
        self._observer = observer
        for repo in wanted:
            local = _local_path(repo.config.repo)
            found = git_dir(local) if local is not None else None
            found = found.resolve() if found is not None else None
            if found is None:
                self._log.line(
                    "not watched: not a git repository (yet); polled every "
                    f"{repo.config.interval:g}s",
                    event="watch",
                    repo=repo.name,
                )
                continue
            handler = _RefEvents(found, functools.partial(self._on_ref_event, repo))
            try:
                observer.schedule(
                    handler, str(found / "refs"), recursive=True, event_filter=_EVENTS
                )
                observer.schedule(handler, str(found), recursive=False, event_filter=_EVENTS)
            except OSError as exc:
                self._log.line(
                    f"not watched ({exc.strerror or exc}; see fs.inotify limits); polled every "
                    f"{repo.config.interval:g}s",
                    event="watch",
                    repo=repo.name,
                )
                continue
            repo.git_dir, repo.watched = found, True

    def stop(self) -> None:
        """Stop the observer (if one was started) and wait a little for its thread."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)


def moves_a_branch(ref: str, traces_ref: str) -> bool:
    """Whether a change to `ref` (`packed-refs` or `refs/…`) may give a pass something to do:
    a branch's, but not that of Foundry's own trace commits (`traces_ref`)."""
    if ref == "packed-refs":
        return True
    if not ref.startswith("refs/heads/"):
        return False  # tags, remote-tracking refs, Foundry's refs/alloy/*: nothing to run
    # our own trace commits (or the directory that holds the branch)
    return not (ref == traces_ref or traces_ref.startswith(ref + "/"))


class _RefEvents(FileSystemEventHandler):
    """watchdog handler of one repository: maps paths to ref names for `on_ref`."""

    def __init__(self, git_dir: Path, on_ref: Callable[[str], None]) -> None:
        self.on_ref = on_ref
        self.prefix = str(git_dir).rstrip("/") + "/"

    def on_any_event(self, event: FileSystemEvent) -> None:
        for raw in (event.src_path, event.dest_path):
            path = os.fsdecode(raw)
            if not path.startswith(self.prefix):
                continue
            rel = path[len(self.prefix) :].removesuffix(".lock")
            if rel == "packed-refs" or rel.startswith("refs/"):
                self.on_ref(rel)
