"""`foundry daemon`: many repositories reconciled by one process (DESIGN section 8).

* **Scheduling.** Each repository has its own polling interval with jitter; the first passes are
  spread over the first second. One scheduler thread hands due repositories to a pool of
  `concurrency` workers; a repository is never in two passes at once.
* **File events.** For a repository on this machine (a path or `file://`), a watchdog observer
  watches its git dir's `refs/` (recursively) and `packed-refs`. A change to a branch makes the
  repository due after a short debounce, instead of at its next poll. Events of Foundry's own
  pushes (`refs/alloy/*`, the traces branch) are ignored; an event during a pass makes one more
  pass right after it (a pass with nothing new writes nothing, so this cannot loop).
* **Drain.** `request_drain()` (SIGTERM/SIGINT in `foundry daemon`) stops taking passes, sets the
  stop event of the running reconcilers (running blocks get `grace` seconds, the rest are
  recorded as interrupted and resumed by a later pass), waits for them and returns 0.
* **HTTP** on a loopback address: `GET /healthz` (JSON; 503 while draining) and `GET /metrics`
  (Prometheus text exposition from the daemon's own registry). With `ui:`, every other path is
  the web interface: `alloy ui` as a supervised child process, proxied (controllers/daemon_ui.py).

Config: `load_config()` reads the YAML file strictly (unknown keys, wrong types and duplicate
keys are errors naming the file and line). See docs/daemon.md.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import ipaddress
import json
import os
import random
import re
import select
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import yaml
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
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

from controllers.daemon_ui import UiChild, UiConfig
from controllers.forge import Forge
from controllers.reconcile import PassReport, Reconciler, Settings, state_dir_for
from controllers.secrets import SecretSource, read_secret_file
from foundry.errors import FoundryError, UserError
from foundry.progress import Progress
from foundry.redaction import redaction
from foundry.sandbox import sandbox_named

DEFAULT_LISTEN = "127.0.0.1:9464"
#: A file event makes its repository due this long after it (more events in between join it).
DEBOUNCE = 0.15
#: The first pass of each repository starts within this long after start-up (spread at random).
FIRST_SPREAD = 1.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
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
_UI_KEYS = ("readOnly", "tokenFile", "as", "poll")
#: `alloy ui --poll` takes this range of seconds.
_UI_POLL = (0.05, 60.0)
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
)
_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class ConfigError(UserError):
    """The daemon's config file is wrong (the message names the file, the line and the fix)."""


# -- configuration ------------------------------------------------------------------------------


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
    return _ConfigReader(text, source, base or Path.cwd()).read()


def parse_duration(value: object) -> float | None:
    """Seconds from a number or a string like "30s", "5m", "1h30m", "250ms"; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if not text or _DURATION.sub("", text):
        return None
    return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))


class _ConfigReader:
    def __init__(self, text: str, source: str, base: Path) -> None:
        self.text = text
        self.source = source
        self.base = base
        self.lines: dict[tuple[str | int, ...], int] = {}

    def fail(self, where: tuple[str | int, ...], message: str) -> ConfigError:
        line = None
        probe = where
        while line is None and probe:
            line = self.lines.get(probe)
            probe = probe[:-1]
        prefix = f"{self.source}:{line}" if line is not None else self.source
        return ConfigError(f"{prefix}: {message}")

    def _separate_prefixes(self, repos: list[RepoConfig]) -> None:
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
                    raise self.fail(
                        ("repositories", i, "secrets", "env"),
                        f"repositories[{i}].secrets.env {mine!r} is a prefix of "
                        f"repositories[{j}]'s {other!r}: it would get that repository's "
                        "secrets too; give each repository a prefix no other one starts with",
                    )

    def read(self) -> DaemonConfig:
        try:
            node = yaml.compose(self.text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(self.text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            at = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(
                f"{self.source}{at}: not valid YAML ({problem}); fix the syntax"
            ) from None
        if node is not None:
            self._marks(node, ())
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.fail((), "the config must be a mapping of keys (listen, repositories, …)")
        self._unknown(data, (), _TOP_KEYS, "at the top level")
        host, port = self._listen(data.get("listen", DEFAULT_LISTEN))
        concurrency = self._integer(data, (), "concurrency", 2, low=1, high=64)
        grace = self._duration(data, (), "grace", 30.0, minimum=0.0)
        jitter = self._number(data, (), "jitter", 0.1, low=0.0, high=0.5)
        log = data.get("log", "text")
        if log not in ("text", "json"):
            raise self.fail(("log",), f"log must be `text` or `json`, not {log!r}")
        state = self._path(data, (), "state")
        port_file = self._path(data, (), "portFile")
        ui = self._ui(data["ui"]) if "ui" in data else None
        repos = data.get("repositories")
        if not isinstance(repos, list) or not repos:
            raise self.fail(
                ("repositories",),
                "no repositories; add a list under `repositories:` with at least one "
                "`- repo: PATH_OR_URL`",
            )
        seen: dict[str, int] = {}
        out = []
        for index, item in enumerate(repos):
            repo = self._repository(item, ("repositories", index))
            local = _local_path(repo.repo)
            url = str(local.resolve()) if local is not None else repo.repo
            if url in seen:
                raise self.fail(
                    ("repositories", index),
                    f"repositories[{index}] is the same remote as repositories[{seen[url]}] "
                    f"({_redact_url(url)}); list each remote once",
                )
            seen[url] = index
            out.append(repo)
        self._separate_prefixes(out)
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
            source=self.source,
        )

    def _marks(self, node: yaml.Node, path: tuple[str | int, ...]) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            keys: dict[object, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                line = key_node.start_mark.line + 1
                if key is not None and key in keys:
                    name = ".".join(str(p) for p in path) or "the top level"
                    raise ConfigError(
                        f"{self.source}:{line}: key {key!r} appears twice in {name} (also on "
                        f"line {keys[key]}); keep one"
                    )
                if key is not None:
                    keys[key] = line
                    self.lines[(*path, key)] = line
                    self._marks(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._marks(item, (*path, index))

    def _unknown(
        self, data: Mapping[Any, Any], where: tuple[str | int, ...], known: tuple[str, ...], at: str
    ) -> None:
        for key in data:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise self.fail(
                (*where, str(key)),
                f"unknown key {key!r} {at}; {hint}the keys are: {', '.join(known)}",
            )

    def _listen(self, value: object) -> tuple[str, int]:
        where = ("listen",)
        if not isinstance(value, str):
            raise self.fail(
                where, f"listen must be HOST:PORT (e.g. {DEFAULT_LISTEN}), not {value!r}"
            )
        match = re.fullmatch(r"\[([0-9a-fA-F:]+)\]:(\d+)|([^:\[\]]+):(\d+)", value.strip())
        if match is None:
            raise self.fail(
                where, f"listen must be HOST:PORT (e.g. {DEFAULT_LISTEN}), not {value!r}"
            )
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4))
        if port > 65535:
            raise self.fail(where, f"listen: port {port} is out of range; use 0-65535 (0: any)")
        loopback = host == "localhost"
        with contextlib.suppress(ValueError):
            loopback = loopback or ipaddress.ip_address(host).is_loopback
        if not loopback:
            raise self.fail(
                where,
                f"listen: {host} is not a loopback address; the endpoint has no authentication, "
                "so it listens on 127.0.0.1 (or ::1) only; put a proxy in front to expose it",
            )
        return host, port

    def _integer(
        self,
        data: Mapping[str, Any],
        where: tuple[str | int, ...],
        key: str,
        default: int | None,
        *,
        low: int,
        high: int,
    ) -> Any:
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(
                (*where, key), f"{key} must be a whole number from {low} to {high}, not {value!r}"
            )
        return value

    def _number(
        self,
        data: Mapping[str, Any],
        where: tuple[str | int, ...],
        key: str,
        default: float,
        *,
        low: float,
        high: float,
    ) -> float:
        value = data.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise self.fail(
                (*where, key), f"{key} must be a number from {low} to {high}, not {value!r}"
            )
        return float(value)

    def _duration(
        self,
        data: Mapping[str, Any],
        where: tuple[str | int, ...],
        key: str,
        default: float,
        *,
        minimum: float,
        exclusive: bool = False,
    ) -> float:
        if key not in data:
            return default
        seconds = parse_duration(data[key])
        bad = seconds is None or seconds < minimum or (exclusive and seconds == minimum)
        if bad or seconds is None:
            bound = f"more than {minimum:g}" if exclusive else f"at least {minimum:g}"
            raise self.fail(
                (*where, key),
                f"{key}: {data[key]!r} is not a duration of {bound} seconds; write seconds as a "
                'number (30) or a string like "30s", "5m", "1h"',
            )
        return seconds

    def _path(self, data: Mapping[str, Any], where: tuple[str | int, ...], key: str) -> Path | None:
        if key not in data or data[key] is None:
            return None
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail((*where, key), f"{key} must be a path, not {value!r}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    def _ui(self, value: object) -> UiConfig | None:
        where: tuple[str | int, ...] = ("ui",)
        if value is True:
            return UiConfig()
        if value is False:
            return None
        if not isinstance(value, dict):
            raise self.fail(
                where,
                f"ui must be `true`, `false` or a mapping of {', '.join(_UI_KEYS)} "
                f"(e.g. `ui: {{readOnly: true}}`), not {value!r}",
            )
        self._unknown(value, where, _UI_KEYS, "in ui")
        read_only = value.get("readOnly", False)
        if not isinstance(read_only, bool):
            raise self.fail(
                (*where, "readOnly"), f"ui.readOnly must be true or false, not {read_only!r}"
            )
        token_file = value.get("tokenFile")
        if token_file is not None and (not isinstance(token_file, str) or not token_file.strip()):
            raise self.fail(
                (*where, "tokenFile"),
                f"ui.tokenFile must be the path of a file of access tokens, not {token_file!r}",
            )
        identity = value.get("as")
        if identity is not None and (
            not isinstance(identity, str) or not identity.strip() or "\n" in identity
        ):
            raise self.fail(
                (*where, "as"),
                f"ui.as must be a name actions are recorded as (e.g. `as: foundry-daemon`), "
                f"not {identity!r}",
            )
        low, high = _UI_POLL
        poll = parse_duration(value.get("poll", 0.5))
        if poll is None or not low <= poll <= high:
            raise self.fail(
                (*where, "poll"),
                f"ui.poll: {value['poll']!r} is not a duration from {low:g} to {high:g} seconds; "
                'write seconds as a number (0.5) or a string like "500ms", "2s"',
            )
        return UiConfig(
            read_only=read_only,
            token_file=self._path(value, where, "tokenFile"),
            identity=identity.strip() if isinstance(identity, str) else None,
            poll=poll,
        )

    def _repository(self, item: object, where: tuple[str | int, ...]) -> RepoConfig:
        name = f"repositories[{where[-1]}]"
        if isinstance(item, str):
            item = {"repo": item}
        if not isinstance(item, dict):
            raise self.fail(where, f"{name} must be a mapping with at least `repo: PATH_OR_URL`")
        self._unknown(item, where, _REPO_KEYS, f"in {name}")
        repo = item.get("repo")
        if not isinstance(repo, str) or not repo.strip():
            raise self.fail(
                (*where, "repo"), f"{name} needs `repo:` (a path or a URL), not {repo!r}"
            )
        repo = repo.strip()
        if not _is_url(repo):
            path = Path(repo).expanduser()
            repo = str(path if path.is_absolute() else self.base / path)
        branch = item.get("branch")
        if branch is not None and (not isinstance(branch, str) or not branch.strip()):
            raise self.fail((*where, "branch"), f"{name}.branch must be a branch name")
        local = _local_path(repo) is not None
        watch = item.get("watch", local)
        if not isinstance(watch, bool):
            raise self.fail((*where, "watch"), f"{name}.watch must be true or false, not {watch!r}")
        if watch and not local:
            raise self.fail(
                (*where, "watch"),
                f"{name}.watch: {_redact_url(repo)} is not on this machine, so it cannot be "
                "watched; remove `watch` (it is polled every `interval`)",
            )
        github = item.get("github")
        if github is not None and (
            not isinstance(github, str) or re.fullmatch(r"[\w.-]+/[\w.-]+", github) is None
        ):
            raise self.fail(
                (*where, "github"), f"{name}.github must be OWNER/NAME on GitHub, not {github!r}"
            )
        api = item.get("githubApi")
        if api is not None and (
            not isinstance(api, str) or not api.startswith(("https://", "http://"))
        ):
            raise self.fail(
                (*where, "githubApi"),
                f"{name}.githubApi must be the API's URL (GitHub Enterprise: "
                f"https://HOST/api/v3), not {api!r}",
            )
        if api is not None and github is None:
            raise self.fail((*where, "githubApi"), f"{name}.githubApi needs `github: OWNER/NAME`")
        sandbox = item.get("sandbox")
        if sandbox is not None and sandbox not in ("auto", "bwrap", "none"):
            raise self.fail(
                (*where, "sandbox"), f"{name}.sandbox must be auto, bwrap or none, not {sandbox!r}"
            )
        shown = item.get("readOnly", [])
        if not isinstance(shown, list) or not all(
            isinstance(p, str) and p.startswith("/") for p in shown
        ):
            raise self.fail(
                (*where, "readOnly"),
                f"{name}.readOnly must be a list of absolute paths (tools its blocks need), "
                f"not {shown!r}",
            )
        return RepoConfig(
            secrets=_secret_source(self, item, where, name),
            sandbox=sandbox,
            read_only=tuple(Path(p) for p in shown),
            repo=repo,
            github=github,
            github_api=api,
            branch=branch.strip() if isinstance(branch, str) else None,
            interval=self._duration(item, where, "interval", 60.0, minimum=0.0, exclusive=True),
            lease=self._duration(item, where, "lease", 60.0, minimum=1.0),
            recheck=self._duration(item, where, "recheck", 60.0, minimum=0.0, exclusive=True),
            workers=self._integer(item, where, "workers", None, low=1, high=256),
            watch=watch,
        )


def _secret_source(
    reader: _ConfigReader, item: Mapping[str, Any], where: tuple[str | int, ...], name: str
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


# -- metrics --------------------------------------------------------------------------------------


class Metrics:
    """The daemon's Prometheus metrics, in their own registry (not the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.passes = Counter(
            "foundry_daemon_passes",
            "Reconcile passes by repository, trigger (start, poll, event) and outcome "
            "(nothing_new, changed, error).",
            ["repo", "trigger", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "foundry_daemon_pass_duration_seconds",
            "How long reconcile passes took (running executions included).",
            ["repo"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.started = Counter(
            "foundry_daemon_executions_started",
            "Executions started (kind=new) or resumed (kind=resumed) by this daemon.",
            ["repo", "kind"],
            registry=r,
        )
        self.finished = Counter(
            "foundry_daemon_executions_finished",
            "Executions that ran in a pass, by the status they ended the pass with.",
            ["repo", "status"],
            registry=r,
        )
        self.not_claimed = Counter(
            "foundry_daemon_executions_not_claimed",
            "Executions due here that someone else had claimed (or had finished).",
            ["repo"],
            registry=r,
        )
        self.outbox = Gauge(
            "foundry_daemon_outbox_pending",
            "Publications (trace commits, check runs, claim releases) waiting in the outbox.",
            ["repo"],
            registry=r,
        )
        self.delivered = Counter(
            "foundry_daemon_outbox_delivered",
            "Outbox entries delivered.",
            ["repo"],
            registry=r,
        )
        self.last_pass = Gauge(
            "foundry_daemon_last_pass_timestamp_seconds",
            "When the last pass of the repository ended (seconds since the epoch).",
            ["repo"],
            registry=r,
        )
        self.file_events = Counter(
            "foundry_daemon_file_events",
            "File events on a watched repository's refs that made it due.",
            ["repo"],
            registry=r,
        )
        self.in_flight = Gauge(
            "foundry_daemon_reconciles_in_flight",
            "Passes running now.",
            registry=r,
        )
        self.repositories = Gauge(
            "foundry_daemon_repositories",
            "Repositories in the config.",
            registry=r,
        )
        self.watched = Gauge(
            "foundry_daemon_repositories_watched",
            "Repositories watched for file events.",
            registry=r,
        )
        self.draining = Gauge(
            "foundry_daemon_draining",
            "1 while the daemon drains after SIGTERM/SIGINT, else 0.",
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# -- the daemon ----------------------------------------------------------------------------------


@dataclass
class _Repo:
    """What the daemon knows of one repository between passes."""

    config: RepoConfig
    name: str
    due: float
    #: Its state directory (known once the repository could be found).
    state: Path | None = None
    trigger: str = "start"
    running: bool = False
    dirty: bool = False
    reconciler: Reconciler | None = None
    git_dir: Path | None = None
    watched: bool = False
    passes: int = 0
    last_end: float | None = None
    last_seconds: float | None = None
    last_outcome: str | None = None
    last_errors: list[str] = field(default_factory=list)
    outbox: int = 0
    traces_ref: str = "refs/heads/alloy/traces"


class Daemon:
    """Reconciles the repositories of `config` until `request_drain()`."""

    def __init__(
        self,
        config: DaemonConfig,
        *,
        log: Callable[[str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._write_log = log or _stderr
        # What no block may read, even where the sandbox shows the system (a config or a
        # secrets file under /etc): the config and every repository's secrets file.
        source = Path(config.source).resolve()
        files = [
            Path(r.secrets.value)
            for r in config.repositories
            if r.secrets and r.secrets.kind == "file"
        ]
        if config.ui is not None and config.ui.token_file is not None:
            files.append(config.ui.token_file.resolve())
        self._hidden = tuple(p for p in (source, *files) if p.is_file())
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.metrics = Metrics()
        self._cond = threading.Condition()
        self._draining = False
        self._in_flight = 0
        self._stop = threading.Event()
        #: A second SIGTERM/SIGINT while draining: running blocks are killed now.
        self._halt = threading.Event()
        self._drain_requested = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._secrets = _url_secrets(r.repo for r in config.repositories)
        start = time.monotonic()
        self.repos: list[_Repo] = []
        for rc in config.repositories:
            spread = self._rng.uniform(0.0, min(FIRST_SPREAD, rc.interval))
            self.repos.append(_Repo(config=rc, name=self.redact(rc.repo), due=start + spread))
        self.server: _Server | None = None
        self.port: int | None = None
        self._observer: BaseObserver | None = None
        #: The web interface's child process (`ui:`), proxied by the HTTP handler.
        self.ui: UiChild | None = None
        if config.ui is not None:
            self.ui = UiChild(
                config.ui,
                [rc.repo for rc in config.repositories],
                self._state_base(),
                log=lambda line: self._log(self.redact(line), event="ui"),
            )

    # -- control ---------------------------------------------------------------------------

    @property
    def wakeup_fd(self) -> int:
        """For `signal.set_wakeup_fd`: a signal delivered to any thread wakes `run()` at once
        (Python runs signal handlers in the main thread only, between bytecodes)."""
        return self._wake_w

    def request_drain(self) -> None:
        """Begin draining (safe to call from a signal handler: a flag and a pipe write); asked
        again while draining, stop now: running blocks are killed and recorded as interrupted."""
        if self._drain_requested:
            self._halt.set()
        self._drain_requested = True
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def run(self) -> int:
        """Serve until `request_drain()`, then drain; 0 when everything stopped in order."""
        self._listen()
        pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="reconcile")
        scheduler = threading.Thread(
            target=self._schedule, args=(pool,), name="scheduler", daemon=True
        )
        try:
            if self.ui is not None:
                self.ui.start()
            self._watch()
            self.metrics.repositories.set(len(self.repos))
            self.metrics.watched.set(sum(r.watched for r in self.repos))
            scheduler.start()
            self._log(
                f"foundry daemon: {_count(len(self.repos), 'repository', 'repositories')} "
                f"({sum(r.watched for r in self.repos)} watched), "
                f"concurrency {self.config.concurrency}; "
                f"http://{self._authority()}/healthz and /metrics"
                + (f"; the web interface at http://{self._authority()}/" if self.ui else ""),
                event="start",
            )
            while not self._drain_requested:
                # Woken by `request_drain()` or by a signal through the wakeup fd; the timeout
                # lets the main thread run a signal handler even without one.
                ready, _, _ = select.select([self._wake_r], [], [], 1.0)
                if ready:
                    os.read(self._wake_r, 64)
        finally:
            self._drain(pool, scheduler)
        return 0

    def _drain(self, pool: ThreadPoolExecutor, scheduler: threading.Thread) -> None:
        with self._cond:
            self._draining = True
            running = self._in_flight
            self._cond.notify_all()
        self.metrics.draining.set(1)
        self._stop.set()
        self._log(
            f"draining: {_count(running, 'pass', 'passes')} running; running blocks get up to "
            f"{self.config.grace:g}s, the rest are recorded as interrupted",
            event="drain",
        )
        if self.ui is not None:
            self.ui.stop()
        if scheduler.is_alive():
            scheduler.join()
        while not self._halt.is_set() and self._busy():
            self._wait_wake(0.5)  # a second signal (`request_drain` again) sets `_halt`
        if self._halt.is_set():
            now = "stopping now: running blocks are killed and recorded as interrupted"
            self._log(now, event="drain")
        pool.shutdown(wait=True)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        for repo in self.repos:
            if repo.reconciler is not None:
                repo.reconciler.close()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.config.port_file is not None:
            self.config.port_file.unlink(missing_ok=True)
        self._log("stopped", event="stop")

    # -- scheduling ------------------------------------------------------------------------

    def _schedule(self, pool: ThreadPoolExecutor) -> None:
        with self._cond:
            while not self._draining:
                now = time.monotonic()
                ready = sorted(
                    (r for r in self.repos if not r.running and r.due <= now), key=lambda r: r.due
                )
                for repo in ready:
                    if self._in_flight >= self.config.concurrency:
                        break
                    repo.running, repo.dirty = True, False
                    trigger, repo.trigger = repo.trigger, "poll"
                    self._in_flight += 1
                    self.metrics.in_flight.set(self._in_flight)
                    pool.submit(self._pass, repo, trigger)
                timeout: float | None = None
                if self._in_flight < self.config.concurrency:
                    waiting = [r.due for r in self.repos if not r.running]
                    if waiting:
                        timeout = min(max(0.0, min(waiting) - now), 60.0)
                self._cond.wait(timeout)

    def _interval(self, repo: _Repo) -> float:
        jitter = self.config.jitter
        return repo.config.interval * (1.0 + self._rng.uniform(-jitter, jitter))

    def _pass(self, repo: _Repo, trigger: str) -> None:
        try:
            report, crash = self._reconcile(repo)
            self._record(repo, trigger, report, crash)
        finally:
            with self._cond:
                now = time.monotonic()
                repo.running = False
                self._in_flight -= 1
                self.metrics.in_flight.set(self._in_flight)
                if repo.dirty:  # a branch moved while we were busy: look again right away
                    repo.due, repo.trigger = now + DEBOUNCE, "event"
                else:
                    repo.due = now + self._interval(repo)
                self._cond.notify_all()

    def _reconcile(self, repo: _Repo) -> tuple[PassReport, str | None]:
        """One pass; (its report, a traceback when it crashed)."""
        begun = time.monotonic()
        try:
            if repo.reconciler is None:  # also retried while a local repository is missing
                repo.state = self._state_dir(repo.config.repo)
                repo.reconciler = Reconciler(
                    self._settings(repo),
                    stop=self._stop,
                    forge=self._forge(repo.config),
                    progress=lambda event: self._log_progress(repo, event),
                    halt=self._halt,
                )
            report = repo.reconciler.pass_once()
        except FoundryError as exc:  # a local repository that is missing, and the like
            report = PassReport(repo.config.repo)
            report.errors.append(str(exc))
            crash = None
        except Exception as exc:  # noqa: BLE001 - one repository's bug must not stop the others
            report = PassReport(repo.config.repo)
            report.errors.append(f"internal error: {type(exc).__name__}: {exc}")
            crash = "".join(traceback.format_exception(exc)).rstrip()
        else:
            repo.traces_ref = f"refs/heads/{repo.reconciler.traces_branch}"
            return report, None
        report.seconds = time.monotonic() - begun
        return report, crash

    def _state_base(self) -> Path:
        """`state`, else the base `foundry reconcile` uses (`$FOUNDRY_STATE`, else
        `$XDG_STATE_HOME/foundry`): `<base>/reconcile/<hash>` is a repository's."""
        if self.config.state is not None:
            return self.config.state
        return state_dir_for("state://").parent.parent

    def _state_dir(self, repo: str) -> Path:
        """As `foundry reconcile` lays it out: `<state>/reconcile/<hash of the remote>`."""
        state = state_dir_for(repo)
        if self.config.state is not None:
            state = self.config.state / "reconcile" / state.name
        return state

    @staticmethod
    def _forge(rc: RepoConfig) -> Forge | None:
        """The GitHub forge for a repository that names one (else the local forge)."""
        if rc.github is None:
            return None
        from controllers.github import connect

        return connect(rc.github, api_url=rc.github_api)

    def _settings(self, repo: _Repo) -> Settings:
        rc = repo.config
        return Settings(
            repo=rc.repo,
            branch=rc.branch,
            state_dir=repo.state,
            lease=rc.lease,
            grace=self.config.grace,
            workers=rc.workers,
            recheck=rc.recheck,
            sandbox=sandbox_named(rc.sandbox or os.environ.get("FOUNDRY_SANDBOX") or "auto"),
            # The daemon's config (and what sits beside it) is never a block's to read, even
            # where the sandbox shows the system (a config under /etc).
            hidden=self._hidden,
            read_only=rc.read_only,
            secrets=rc.secrets.read if rc.secrets is not None else None,
        )

    def _record(self, repo: _Repo, trigger: str, report: PassReport, crash: str | None) -> None:
        errors = [self.redact(e) for e in report.errors]
        news = bool(
            report.moved
            or report.started
            or report.resumed
            or report.finished
            or report.not_claimed
            or report.committed
            or report.published
            or report.delivered
            or report.refused
        )
        outcome = "error" if errors else "changed" if news else "nothing_new"
        m, name = self.metrics, repo.name
        m.passes.labels(name, trigger, outcome).inc()
        m.duration.labels(name).observe(report.seconds)
        if report.started:
            m.started.labels(name, "new").inc(len(report.started))
        if report.resumed:
            m.started.labels(name, "resumed").inc(len(report.resumed))
        for status in report.finished.values():
            m.finished.labels(name, status).inc()
        if report.not_claimed:
            m.not_claimed.labels(name).inc(len(report.not_claimed))
        if report.delivered:
            m.delivered.labels(name).inc(report.delivered)
        m.outbox.labels(name).set(report.outbox)
        ended = time.time()
        m.last_pass.labels(name).set(ended)
        outbox_changed = report.outbox != repo.outbox
        with self._cond:
            repo.passes += 1
            repo.last_end = ended
            repo.last_seconds = report.seconds
            repo.last_outcome = outcome
            repo.last_errors = errors
            repo.outbox = report.outbox
        if news or errors or outbox_changed:
            self._log_pass(repo, trigger, report, errors)
        if crash is not None:
            self._log(self.redact(crash), event="crash", repo=name)

    # -- file events ------------------------------------------------------------------------

    def _watch(self) -> None:
        wanted = [r for r in self.repos if r.config.watch]
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
                self._log(
                    "not watched: not a git repository (yet); polled every "
                    f"{repo.config.interval:g}s",
                    event="watch",
                    repo=repo.name,
                )
                continue
            handler = _RefEvents(self, repo, found)
            try:
                observer.schedule(
                    handler, str(found / "refs"), recursive=True, event_filter=_EVENTS
                )
                observer.schedule(handler, str(found), recursive=False, event_filter=_EVENTS)
            except OSError as exc:
                self._log(
                    f"not watched ({exc.strerror or exc}; see fs.inotify limits); polled every "
                    f"{repo.config.interval:g}s",
                    event="watch",
                    repo=repo.name,
                )
                continue
            repo.git_dir, repo.watched = found, True

    def on_ref_event(self, repo: _Repo, ref: str) -> None:
        """`ref` (a path under the git dir, `packed-refs` or `refs/…`) changed."""
        if ref != "packed-refs":
            if not ref.startswith("refs/heads/"):
                return  # tags, remote-tracking refs, Foundry's refs/alloy/*: nothing to run
            traces = repo.traces_ref
            if ref == traces or traces.startswith(ref + "/"):
                return  # our own trace commits (or the directory that holds the branch)
        self.metrics.file_events.labels(repo.name).inc()
        with self._cond:
            if self._draining:
                return
            if repo.running:
                repo.dirty = True
                return
            due = time.monotonic() + DEBOUNCE
            if due < repo.due:
                repo.due, repo.trigger = due, "event"
                self._cond.notify_all()

    # -- HTTP ---------------------------------------------------------------------------------

    def _listen(self) -> None:
        host, port = self.config.host, self.config.port
        server_class = _Server6 if ":" in host else _Server
        try:
            server = server_class((host, port), _Handler)
        except OSError as exc:
            raise UserError(
                f"{self.config.source}: cannot listen on {self._authority(port)}: "
                f"{exc.strerror or exc}; choose another `listen:` port (0 picks a free one)"
            ) from None
        server.foundry_daemon = self
        self.server = server
        self.port = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        if self.config.port_file is not None:
            target = self.config.port_file
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_text(f"{self.port}\n", encoding="utf-8")
            tmp.replace(target)

    def _authority(self, port: int | None = None) -> str:
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"{shown}:{self.port if port is None else port}"

    def health(self) -> tuple[int, dict[str, Any]]:
        with self._cond:
            draining = self._draining
            now = time.monotonic()
            repos = [
                {
                    "repo": r.name,
                    "state": str(r.state) if r.state is not None else None,
                    "watched": r.watched,
                    "running": r.running,
                    "passes": r.passes,
                    "lastPass": _rfc3339(r.last_end) if r.last_end is not None else None,
                    "lastPassSeconds": round(r.last_seconds, 3)
                    if r.last_seconds is not None
                    else None,
                    "lastOutcome": r.last_outcome,
                    "errors": list(r.last_errors),
                    "outbox": r.outbox,
                    "nextPassIn": None if r.running else round(max(0.0, r.due - now), 3),
                }
                for r in self.repos
            ]
            in_flight = self._in_flight
        body = {
            "status": "draining" if draining else "ok",
            "inFlight": in_flight,
            "ui": self.ui.status() if self.ui is not None else None,
            "repositories": repos,
        }
        return (503 if draining else 200), body

    # -- logging ------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """`text` with the configured URLs' credentials masked (in every form
        `foundry.redaction` knows), and any URL's user information."""
        return _redact_url(redaction(self._secrets).mask_text(text))

    def _log(self, message: str, *, event: str, repo: str | None = None) -> None:
        stamp = _rfc3339(time.time())
        if self.config.log == "json":
            body: dict[str, Any] = {"time": stamp, "event": event}
            if repo is not None:
                body["repo"] = repo
            body["message"] = message
            self._write_log(json.dumps(body, sort_keys=True))
        else:
            self._write_log(f"{stamp} {f'{repo}: ' if repo else ''}{message}")

    def _log_progress(self, repo: _Repo, event: Progress) -> None:
        """Each execution and block of a pass as it starts and ends, and what waits."""
        from controllers._progress_log import progress_json, progress_text

        branch = repo.reconciler.branch if repo.reconciler is not None else repo.config.branch
        if self.config.log == "json":
            line = progress_json(event, repo=repo.name, branch=branch, at=_rfc3339(time.time()))
            self._write_log(self.redact(line))
        else:
            line = self.redact(progress_text(event, branch=branch))
            self._log(line, event=event.kind, repo=repo.name)

    def _busy(self) -> bool:
        with self._cond:
            return self._in_flight > 0

    def _wait_wake(self, seconds: float) -> bool:
        """Wait for a signal's wake-up (the wakeup fd), at most `seconds`; True if one came."""
        ready, _, _ = select.select([self._wake_r], [], [], seconds)
        if ready:
            os.read(self._wake_r, 64)
        return bool(ready)

    def _log_pass(self, repo: _Repo, trigger: str, report: PassReport, errors: list[str]) -> None:
        if self.config.log == "json":
            body = {**report.to_json(), "repo": repo.name, "errors": errors}
            body.update({"time": _rfc3339(time.time()), "event": "pass", "trigger": trigger})
            self._write_log(self.redact(json.dumps(body, sort_keys=True)))
            return
        parts = [f"pass ({trigger}, {report.seconds:.3f}s)"]
        if report.moved:
            parts.append("moved")
        parts.extend(line for line, _ in report.lines() if not line.startswith("error: "))
        parts.extend(f"error: {e}" for e in errors)
        self._log(self.redact("; ".join(parts)), event="pass", repo=repo.name)


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


class _RefEvents(FileSystemEventHandler):
    """watchdog handler of one repository: maps paths to ref names for the daemon."""

    def __init__(self, daemon: Daemon, repo: _Repo, git_dir: Path) -> None:
        self.daemon = daemon
        self.repo = repo
        self.prefix = str(git_dir).rstrip("/") + "/"

    def on_any_event(self, event: FileSystemEvent) -> None:
        for raw in (event.src_path, event.dest_path):
            path = os.fsdecode(raw)
            if not path.startswith(self.prefix):
                continue
            rel = path[len(self.prefix) :].removesuffix(".lock")
            if rel == "packed-refs" or rel.startswith("refs/"):
                self.daemon.on_ref_event(self.repo, rel)


class _Handler(BaseHTTPRequestHandler):
    server_version = "foundry-daemon"
    sys_version = ""
    routes: ClassVar[tuple[str, ...]] = ("/healthz", "/metrics")

    def do_GET(self) -> None:
        assert isinstance(self.server, _Server)
        daemon = self.server.foundry_daemon
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            code, body = daemon.health()
            self._send(code, "application/json", (json.dumps(body, indent=2) + "\n").encode())
        elif path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, daemon.metrics.exposition())
        else:
            self._other()

    def do_HEAD(self) -> None:
        self._other()

    def do_POST(self) -> None:
        self._other()

    def _other(self) -> None:
        """The web interface's (`ui:`), else 404; /healthz and /metrics answer GET only."""
        assert isinstance(self.server, _Server)
        ui = self.server.foundry_daemon.ui
        if self.path.split("?", 1)[0] in self.routes:
            self.send_response(405)
            self.send_header("Allow", "GET")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif ui is not None:
            ui.proxy(self)
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged (a scraper every few seconds would drown the pass lines)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    foundry_daemon: Daemon


class _Server6(_Server):
    address_family = socket.AF_INET6


def _url_secrets(repos: Any) -> list[str]:
    """User information of the configured URLs (passwords, tokens): never logged."""
    out = []
    for repo in repos:
        if "://" not in repo:
            continue
        parts = urllib.parse.urlsplit(repo)
        if parts.password:
            out.append(parts.password)
        if parts.username and parts.password is None and parts.scheme in ("http", "https"):
            out.append(parts.username)  # https://TOKEN@host/...: the user name is the secret
    return sorted(set(out), key=len, reverse=True)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _rfc3339(seconds: float) -> str:
    stamp = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


__all__ = [
    "DEFAULT_LISTEN",
    "ConfigError",
    "Daemon",
    "DaemonConfig",
    "Metrics",
    "RepoConfig",
    "git_dir",
    "load_config",
    "parse_config",
    "parse_duration",
]
