"""Git access through GitPython (the git CLI underneath)."""

from __future__ import annotations

import os
from pathlib import Path

import git

_FALLBACK = git.Actor("Alloy", "alloy@localhost")


def _actor(repo: git.Repo, kind: str) -> git.Actor:
    env_name = os.environ.get(f"GIT_{kind}_NAME")
    env_mail = os.environ.get(f"GIT_{kind}_EMAIL")
    if env_name and env_mail:
        return git.Actor(env_name, env_mail)
    reader = repo.config_reader()
    name = reader.get_value("user", "name", default="")
    mail = reader.get_value("user", "email", default="")
    if name and mail:
        return git.Actor(str(name), str(mail))
    return _FALLBACK


def init_repository(path: Path, branch: str = "main") -> git.Repo:
    """A new repository at `path` whose first branch is `branch`."""
    path.mkdir(parents=True, exist_ok=True)
    return git.Repo.init(path, initial_branch=branch)


def is_repository(path: Path) -> bool:
    try:
        git.Repo(path, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return False
    return True


def commit_all(path: Path, message: str) -> str:
    """Stage every change under `path` and commit it; return the new commit's id."""
    repo = git.Repo(path)
    repo.git.add(A=True)
    commit = repo.index.commit(
        message, author=_actor(repo, "AUTHOR"), committer=_actor(repo, "COMMITTER")
    )
    return commit.hexsha
