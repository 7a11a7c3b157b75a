"""The daemon's config file (`foundry daemon --config`), read strictly: unknown keys, wrong
types and duplicate keys are errors naming the file, the line and the fix. See docs/daemon.md."""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controllers.daemon_ui import UiConfig
from controllers.secrets import SecretSource, read_secret_file
from foundry.errors import UserError
from foundry.sandbox import RunAs, run_as_named

DEFAULT_LISTEN = "127.0.0.1:9464"
#: A file event makes its repository due this long after it (more events in between join it).
#: The first pass of each repository starts within this long after start-up (spread at random).
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
    "user",
)


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
    #: The OS user its blocks run as (a daemon running as root drops to it); None: the
    #: daemon's user
    user: RunAs | None = None


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
            user=_run_as(self, item, where, name),
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


def _run_as(
    reader: _ConfigReader, item: Mapping[str, Any], where: tuple[str | int, ...], name: str
) -> RunAs | None:
    """`user: NAME | UID | UID:GID` of one repository, checked: the daemon must be root to
    run blocks as another user, and the user must not be root."""
    given = item.get("user")
    if given is None:
        return None
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
