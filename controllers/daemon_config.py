"""The daemon's config file (`foundry daemon --config`), read strictly: unknown keys, wrong
types and duplicate keys are errors naming the file, the line and the fix. See docs/daemon.md.

Here the config (`DaemonConfig`), the file's entry points (`load_config`, `parse_config`) and
its top level (`listen`, ..., the list of repositories); the reader under them, with the checks
every entry uses, is daemon_config_reader.py; one repository's entry is daemon_config_repo.py,
the `ui:` entry daemon_config_ui.py. Their names callers use are importable from here."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from controllers.daemon_config_reader import ConfigError, ConfigReader, parse_duration
from controllers.daemon_config_repo import (
    RepoConfig,
    _local_path,
    _redact_url,
    git_dir,
    read_repository,
)
from controllers.daemon_config_ui import read_ui
from controllers.daemon_ui import UiConfig

DEFAULT_LISTEN = "127.0.0.1:9464"
_TOP_KEYS = (
    "listen",
    "concurrency",
    "grace",
    "state",
    "portFile",
    "jitter",
    "log",
    "ui",
    "repositories",
)


@dataclass(frozen=True)
class DaemonConfig:
    """The whole config file, checked."""

    repositories: tuple[RepoConfig, ...]
    host: str = "127.0.0.1"
    port: int = 9464
    concurrency: int = 2
    grace: float = 30.0
    #: Base of the state directories: `<state>/reconcile/<hash of the remote>`.
    state: Path | None = None
    port_file: Path | None = None
    jitter: float = 0.1
    log: str = "text"
    #: The web interface (`ui:`), None without it.
    ui: UiConfig | None = None
    source: str = "<config>"


def load_config(path: Path) -> DaemonConfig:
    """Read and check the config file at `path`; ConfigError when anything is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{path}: cannot read the daemon config: {reason}") from None
    return parse_config(text, source=str(path), base=path.resolve().parent)


def parse_config(text: str, *, source: str = "<config>", base: Path | None = None) -> DaemonConfig:
    """Check a config document; relative paths are taken relative to `base`."""
    return _read(ConfigReader(text, source, base or Path.cwd()))


def _read(reader: ConfigReader) -> DaemonConfig:
    data = reader.document()
    if not isinstance(data, dict):
        raise reader.fail((), "the config must be a mapping of keys (listen, repositories, …)")
    reader.unknown(data, (), _TOP_KEYS, "at the top level")
    host, port = _listen(reader, data.get("listen", DEFAULT_LISTEN))
    concurrency = reader.integer(data, (), "concurrency", 2, low=1, high=64)
    grace = reader.duration(data, (), "grace", 30.0, minimum=0.0)
    jitter = reader.number(data, (), "jitter", 0.1, low=0.0, high=0.5)
    log = data.get("log", "text")
    if log not in ("text", "json"):
        raise reader.fail(("log",), f"log must be `text` or `json`, not {log!r}")
    state = reader.path(data, (), "state")
    port_file = reader.path(data, (), "portFile")
    ui = read_ui(reader, data["ui"]) if "ui" in data else None
    repos = data.get("repositories")
    if not isinstance(repos, list) or not repos:
        raise reader.fail(
            ("repositories",),
            "no repositories; add a list under `repositories:` with at least one "
            "`- repo: PATH_OR_URL`",
        )
    seen: dict[str, int] = {}
    out = []
    for index, item in enumerate(repos):
        repo = read_repository(reader, item, ("repositories", index))
        local = _local_path(repo.repo)
        url = str(local.resolve()) if local is not None else repo.repo
        if url in seen:
            raise reader.fail(
                ("repositories", index),
                f"repositories[{index}] is the same remote as repositories[{seen[url]}] "
                f"({_redact_url(url)}); list each remote once",
            )
        seen[url] = index
        out.append(repo)
    _separate_prefixes(reader, out)
    _separate_groups(reader, out)
    return DaemonConfig(
        repositories=tuple(out),
        host=host,
        port=port,
        concurrency=concurrency,
        grace=grace,
        state=state,
        port_file=port_file,
        jitter=jitter,
        log=str(log),
        ui=ui,
        source=reader.source,
    )


def _listen(reader: ConfigReader, value: object) -> tuple[str, int]:
    where = ("listen",)
    if not isinstance(value, str):
        raise reader.fail(where, f"listen must be HOST:PORT (e.g. {DEFAULT_LISTEN}), not {value!r}")
    match = re.fullmatch(r"\[([0-9a-fA-F:]+)\]:(\d+)|([^:\[\]]+):(\d+)", value.strip())
    if match is None:
        raise reader.fail(where, f"listen must be HOST:PORT (e.g. {DEFAULT_LISTEN}), not {value!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise reader.fail(where, f"listen: port {port} is out of range; use 0-65535 (0: any)")
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if not loopback:
        raise reader.fail(
            where,
            f"listen: {host} is not a loopback address; the endpoint has no authentication, "
            "so it listens on 127.0.0.1 (or ::1) only; put a proxy in front to expose it",
        )
    return host, port


def _separate_prefixes(reader: ConfigReader, repos: list[RepoConfig]) -> None:
    """Secrets taken by prefix must not overlap: with `TEAM_` and `TEAM_A_`, the first
    repository would get the second one's `TEAM_A_DEPLOY_TOKEN` as `A_DEPLOY_TOKEN`."""
    prefixes = [
        (i, r.secrets.value)
        for i, r in enumerate(repos)
        if r.secrets is not None and r.secrets.kind == "env"
    ]
    for i, mine in prefixes:
        for j, other in prefixes:
            if i != j and other.startswith(mine):
                raise reader.fail(
                    ("repositories", i, "secrets", "env"),
                    f"repositories[{i}].secrets.env {mine!r} is a prefix of "
                    f"repositories[{j}]'s {other!r}: it would get that repository's "
                    "secrets too; give each repository a prefix no other one starts with",
                )


def _separate_groups(reader: ConfigReader, repos: list[RepoConfig]) -> None:
    """A repository's state is its user's group's to read: two repositories whose users
    differ must not share a group, or each could read the other's ledgers and worktrees."""
    for i, mine in enumerate(repos):
        for j, other in enumerate(repos[:i]):
            if mine.user is None or other.user is None or mine.user.uid == other.user.uid:
                continue
            if mine.user.gid == other.user.gid:
                raise reader.fail(
                    ("repositories", i, "user"),
                    f"repositories[{i}].user {mine.user.describe()} and repositories[{j}]'s "
                    f"{other.user.describe()} are different users of one group "
                    f"({mine.user.gid}): each repository's state is readable by its user's "
                    "group, so each could read the other's; give each user a group of its "
                    "own (UID:GID)",
                )


# The daemon's watcher and log take `_local_path` and `_redact_url` from here.
__all__ = [
    "DEFAULT_LISTEN",
    "ConfigError",
    "DaemonConfig",
    "RepoConfig",
    "_local_path",
    "_redact_url",
    "git_dir",
    "load_config",
    "parse_config",
    "parse_duration",
]
