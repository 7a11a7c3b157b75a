"""Git access through GitPython (the git CLI underneath)."""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def _open(path: Path) -> git.Repo | None:
    """The repository that holds `path` (it may be a subdirectory), or None outside of one."""
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def inside_repository(path: Path) -> bool:
    """Whether `path` is in the work tree of a git repository (at its top or below)."""
    repo = _open(path)
    if repo is None:
        return False
    repo.close()
    return True


def config_value(repo_path: Path, key: str) -> str | None:
    """`git config --get KEY` as git itself resolves it for the repository at `repo_path`
    (repository, global and system files, and `GIT_CONFIG_*`), or None when it is unset."""
    repo = _open(repo_path)
    try:
        if repo is None:
            out = git.Git(str(repo_path)).config("--get", key)
        else:
            out = repo.git.config("--get", key)
    except git.GitCommandError:  # exit 1: unset
        return None
    finally:
        if repo is not None:
            repo.close()
    value = str(out).strip()
    return value or None


def resolve_commit(repo_path: Path, revs: Sequence[str]) -> tuple[str, str] | None:
    """The first of `revs` that names a commit in the repository at `repo_path`, with that
    commit's id; None when none does or `repo_path` is not inside a git repository."""
    repo = _open(repo_path)
    if repo is None:
        return None
    try:
        for rev in revs:
            try:
                sha = repo.git.rev_parse(
                    "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
                )
            except git.GitCommandError:
                continue
            return rev, str(sha).strip()
        return None
    finally:
        repo.close()


def read_tree_files(repo_path: Path, rev: str, prefix: str) -> dict[str, bytes]:
    """Every regular file under `prefix` (like `traces/`) in the tree of commit `rev`, as
    `{path: bytes}` with paths from the top of the repository.

    One `git ls-tree -r -z` lists the tree and one `git cat-file --batch` process (GitPython's
    persistent one) reads every blob, so reading a thousand traces starts two processes, not a
    thousand. Symbolic links and submodules are left out.
    """
    repo = _open(repo_path)
    if repo is None:
        raise ValueError(f"{repo_path} is not inside a git repository")
    try:
        listing = repo.git.ls_tree(
            "-r", "-z", "--full-tree", rev, "--", prefix, stdout_as_string=False
        )
        assert isinstance(listing, bytes)
        blobs: list[tuple[str, str]] = []
        for record in listing.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, sha = meta.decode("ascii").split(" ")
            if kind != "blob" or mode not in ("100644", "100755"):
                continue
            blobs.append((raw_path.decode("utf-8", "surrogateescape"), sha))
        files: dict[str, bytes] = {}
        for path, sha in blobs:
            _, _, _, data = repo.git.get_object_data(sha)
            files[path] = data
        return files
    finally:
        repo.close()
