"""`alloy ui`: Alloy's web interface — intent, executions and evidence of one or more
repositories, live, with every change made the GitOps way (a branch, never the default branch).

A shell around Alloy's core like `alloy.cli`: it reads repositories through
`controllers.remote_view` (never through Foundry) and draws the core's data with Starlette and
Jinja2. See docs/ui.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from alloy.web._app import MAX_STREAMS, create_app
from alloy.web._repo import RepoState
from alloy.web._security import Security, is_loopback, read_tokens

__all__ = [
    "MAX_STREAMS",
    "RepoState",
    "Security",
    "create_app",
    "default_cache",
    "is_loopback",
    "open_repositories",
    "read_tokens",
]


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "alloy" / "ui"


def _key(url: str, taken: set[str]) -> str:
    tail = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "repo"
    key = "".join(c if c.isalnum() or c in "-_." else "-" for c in tail)[:60] or "repo"
    candidate, n = key, 2
    while candidate in taken:
        candidate, n = f"{key}-{n}", n + 1
    taken.add(candidate)
    return candidate


def open_repositories(
    urls: Sequence[str],
    cache: Path,
    *,
    github: Mapping[str, str] | None = None,
    github_api: str | None = None,
    token: str | None = None,
) -> list[RepoState]:
    """A state for each remote (a path or a URL), each read through its own bare cache. A
    remote on GitHub (its URL names github.com, or the host of `github_api`; or `github` maps
    its key to `owner/name`) shows its pull requests and gets one for each action's branch."""
    from alloy.web._github import GitHub, detect
    from controllers.remote_view import RemoteView, cache_name

    taken: set[str] = set()
    states = []
    for url in urls:
        state = RepoState(_key(url, taken), RemoteView(url, cache / cache_name(url)))
        named = (github or {}).get(state.key)
        state.github = GitHub(named, github_api, token) if named else detect(url, github_api, token)
        states.append(state)
    return states
