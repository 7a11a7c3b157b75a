"""One repository's entry in the daemon's config file (controllers/daemon_config.py), checked:
`repo`, `branch`, the durations, `workers`, `watch`, `github`, `githubApi`, `sandbox`,
`readOnly`, `secrets` and `user`; and what is told of its `repo` (on this machine or not, its
git dir, its URL without credentials)."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controllers.daemon_config_reader import ConfigReader
from controllers.secrets import SecretSource, read_secret_file
from foundry.errors import UserError
from foundry.sandbox import RunAs, run_as_named

_REPO_KEYS = (
    "repo",
    "branch",
    "interval",
    "lease",
    "recheck",
    "workers",
    "watch",
    "github",
    "githubApi",
    "sandbox",
    "readOnly",
    "secrets",
    "user",
)


@dataclass(frozen=True)
class RepoConfig:
    """One repository the daemon reconciles."""

    repo: str
    branch: str | None = None
    interval: float = 60.0
    lease: float = 60.0
    recheck: float = 60.0
    workers: int | None = None
    #: Watch the git dir for changes (only for repositories on this machine).
    watch: bool = False
    #: Report to GitHub (`OWNER/NAME`) instead of the local forge; credentials from the
    #: daemon's environment (GITHUB_TOKEN, or a GitHub App: see docs/github.md).
    github: str | None = None
    github_api: str | None = None
    #: Where its blocks run: auto, bwrap or none (docs/security.md); None: FOUNDRY_SANDBOX of
    #: the daemon's environment, else auto
    sandbox: str | None = None
    #: Paths of this host shown read-only to its blocks (tools they need), besides the system
    read_only: tuple[Path, ...] = ()
    #: Its own secrets (controllers.secrets); None: the daemon's environment
    secrets: SecretSource | None = None
    #: The OS user its blocks run as (a daemon running as root drops to it); None: the
    #: daemon's user
    user: RunAs | None = None


def read_repository(reader: ConfigReader, item: object, where: tuple[str | int, ...]) -> RepoConfig:
    """The entry at `where` (`("repositories", INDEX)`): a mapping, or the `repo` alone."""
    name = f"repositories[{where[-1]}]"
    if isinstance(item, str):
        item = {"repo": item}
    if not isinstance(item, dict):
        raise reader.fail(where, f"{name} must be a mapping with at least `repo: PATH_OR_URL`")
    reader.unknown(item, where, _REPO_KEYS, f"in {name}")
    repo = item.get("repo")
    if not isinstance(repo, str) or not repo.strip():
        raise reader.fail((*where, "repo"), f"{name} needs `repo:` (a path or a URL), not {repo!r}")
    repo = repo.strip()
    if not _is_url(repo):
        path = Path(repo).expanduser()
        repo = str(path if path.is_absolute() else reader.base / path)
    branch = item.get("branch")
    if branch is not None and (not isinstance(branch, str) or not branch.strip()):
        raise reader.fail((*where, "branch"), f"{name}.branch must be a branch name")
    local = _local_path(repo) is not None
    watch = item.get("watch", local)
    if not isinstance(watch, bool):
        raise reader.fail((*where, "watch"), f"{name}.watch must be true or false, not {watch!r}")
    if watch and not local:
        raise reader.fail(
            (*where, "watch"),
            f"{name}.watch: {_redact_url(repo)} is not on this machine, so it cannot be "
            "watched; remove `watch` (it is polled every `interval`)",
        )
    github = item.get("github")
    if github is not None and (
        not isinstance(github, str) or re.fullmatch(r"[\w.-]+/[\w.-]+", github) is None
    ):
        raise reader.fail(
            (*where, "github"), f"{name}.github must be OWNER/NAME on GitHub, not {github!r}"
        )
    api = item.get("githubApi")
    if api is not None and (
        not isinstance(api, str) or not api.startswith(("https://", "http://"))
    ):
        raise reader.fail(
            (*where, "githubApi"),
            f"{name}.githubApi must be the API's URL (GitHub Enterprise: "
            f"https://HOST/api/v3), not {api!r}",
        )
    if api is not None and github is None:
        raise reader.fail((*where, "githubApi"), f"{name}.githubApi needs `github: OWNER/NAME`")
    sandbox = item.get("sandbox")
    if sandbox is not None and sandbox not in ("auto", "bwrap", "none"):
        raise reader.fail(
            (*where, "sandbox"), f"{name}.sandbox must be auto, bwrap or none, not {sandbox!r}"
        )
    shown = item.get("readOnly", [])
    if not isinstance(shown, list) or not all(
        isinstance(p, str) and p.startswith("/") for p in shown
    ):
        raise reader.fail(
            (*where, "readOnly"),
            f"{name}.readOnly must be a list of absolute paths (tools its blocks need), "
            f"not {shown!r}",
        )
    return RepoConfig(
        user=_run_as(reader, item, where, name),
        secrets=_secret_source(reader, item, where, name),
        sandbox=sandbox,
        read_only=tuple(Path(p) for p in shown),
        repo=repo,
        github=github,
        github_api=api,
        branch=branch.strip() if isinstance(branch, str) else None,
        interval=reader.duration(item, where, "interval", 60.0, minimum=0.0, exclusive=True),
        lease=reader.duration(item, where, "lease", 60.0, minimum=1.0),
        recheck=reader.duration(item, where, "recheck", 60.0, minimum=0.0, exclusive=True),
        workers=reader.integer(item, where, "workers", None, low=1, high=256),
        watch=watch,
    )


def _run_as(
    reader: ConfigReader, item: Mapping[str, Any], where: tuple[str | int, ...], name: str
) -> RunAs | None:
    """`user: NAME | UID | UID:GID` of one repository, checked: the daemon must be root to
    run blocks as another user, and the user must not be root."""
    given = item.get("user")
    if given is None:
        return None
    written = reader.written.get((*where, "user"), "")
    if isinstance(given, int) and not isinstance(given, bool) and ":" in written:
        given = written  # `1001:50` is UID:GID, not YAML 1.1's base-60 number 60110
    if isinstance(given, bool) or not isinstance(given, str | int):
        raise reader.fail(
            (*where, "user"), f"{name}.user must be a user name, UID or UID:GID, not {given!r}"
        )
    if os.geteuid() != 0:
        raise reader.fail(
            (*where, "user"),
            f"{name}.user needs the daemon to run as root (it drops to that user for each "
            "block); run it as root, or leave `user` out to run blocks as the daemon's user",
        )
    try:
        return run_as_named(str(given))
    except ValueError as exc:
        raise reader.fail((*where, "user"), f"{name}.user: {exc}") from None


def _secret_source(
    reader: ConfigReader, item: Mapping[str, Any], where: tuple[str | int, ...], name: str
) -> SecretSource | None:
    """`secrets: {env: PREFIX_}` or `secrets: {file: PATH}` of one repository, checked."""
    given = item.get("secrets")
    if given is None:
        return None
    fix = f"{name}.secrets must be {{env: PREFIX_}} or {{file: PATH}} (one of them)"
    if not isinstance(given, dict) or len(given) != 1:
        raise reader.fail((*where, "secrets"), fix)
    [(kind, value)] = given.items()
    if kind == "env":
        if not isinstance(value, str) or re.fullmatch(r"[A-Z_][A-Z0-9_]{0,63}", value) is None:
            raise reader.fail(
                (*where, "secrets", "env"),
                f"{name}.secrets.env must be a prefix of environment variable names in "
                f"capitals (like TEAM_A_), not {value!r}",
            )
        return SecretSource("env", value)
    if kind == "file" and isinstance(value, str) and value:
        path = Path(value).expanduser()
        path = path if path.is_absolute() else reader.base / path
        try:
            read_secret_file(path)
        except UserError as exc:
            raise reader.fail((*where, "secrets", "file"), f"{name}.secrets.file: {exc}") from None
        return SecretSource("file", str(path))
    raise reader.fail((*where, "secrets"), fix)


def _is_url(repo: str) -> bool:
    return "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo) is not None


def _local_path(repo: str) -> Path | None:
    """The directory of a repository on this machine (a path or `file://`), else None."""
    if repo.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(repo).path))
    if _is_url(repo):
        return None
    return Path(repo)


def _redact_url(text: str) -> str:
    """URLs with their user information (tokens, passwords) replaced by `***`."""
    return re.sub(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@", r"\1***@", text)


def git_dir(path: Path) -> Path | None:
    """The git dir of the repository at `path` (bare or not), None if it is not one."""
    dot = path / ".git"
    if dot.is_dir():
        return dot
    if (path / "HEAD").is_file() and (path / "refs").is_dir():
        return path
    return None
