"""Push events from the remote's facts (DESIGN section 9).

Which push executions are due is a function of the default branch's history alone, so every
host computes the same set whatever its state directory remembers: each of the last `WINDOW`
first-parent commits that touches a push trigger's paths — the trigger of the intent **as it
was at that commit** — is one push event, run with the artifact the commit holds, in a worktree
of that commit. Executions that already have a finished trace are subtracted by the planner, as
for every event.

The artifacts at each commit come from one `git log --raw` over the window (the blob each
changed path has after the commit) and one listing of `.alloy/artifacts/` before it; an
artifact blob is parsed once, however many commits hold it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controllers.gitops import GitError, Mirror

if TYPE_CHECKING:
    from foundry.boundary import Artifact

ARTIFACTS = ".alloy/artifacts/"
#: How many first-parent commits back push events are looked for.
WINDOW = 200


@dataclass(frozen=True)
class PushedCommit:
    """A first-parent commit of the default branch and the push-triggered artifacts it holds."""

    sha: str
    paths: tuple[str, ...]
    #: Artifact name -> (the artifact as it was at this commit, its bytes).
    artifacts: dict[str, tuple[Artifact, bytes]]


def pushed_commits(
    mirror: Mirror,
    head: str,
    parse: Callable[[str, str], Any],
    *,
    window: int = WINDOW,
) -> list[PushedCommit]:
    """The commits of the window (oldest first) with their push-triggered artifacts; `parse`
    reads an artifact blob as `(Artifact, bytes)` (anything else is skipped: refused)."""
    log = mirror.history(head, limit=window)
    if not log:
        return []
    blobs: dict[str, str] = {}
    if log[0].parent is not None:
        try:
            blobs = dict(mirror.tree(log[0].parent, ARTIFACTS))
        except Exception as exc:  # noqa: BLE001 - GitPython raises its own error types
            raise GitError(f"cannot list {ARTIFACTS} at {log[0].parent[:12]}: {exc}") from None
    # The push-triggered artifacts in force, kept up to date commit by commit: only the paths
    # a commit changed are looked at again (an artifact blob is parsed once, by `parse`).
    current: dict[str, tuple[Artifact, bytes]] = {}
    for path, blob in blobs.items():
        _take(current, path, blob, parse)
    out = []
    for change in log:
        for path, new in change.blobs.items():
            if path.startswith(ARTIFACTS):
                current.pop(path, None)
                if new is not None:
                    _take(current, path, new, parse)
        artifacts = {value[0].metadata.name: value for value in current.values()}
        out.append(PushedCommit(change.sha, change.paths, artifacts))
    return out


def _take(
    current: dict[str, tuple[Artifact, bytes]],
    path: str,
    blob: str,
    parse: Callable[[str, str], Any],
) -> None:
    """Keep the artifact at `path` if it is one (not refused) and has a push trigger."""
    if path.count("/") != 2 or not path.endswith(".json"):
        return
    value = parse(path, blob)
    if isinstance(value, tuple) and value[0].spec.triggers.push is not None:
        current[path] = value
