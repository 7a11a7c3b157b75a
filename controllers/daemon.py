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
import json
import os
import random
import select
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, TextIO

from prometheus_client import (
    CONTENT_TYPE_LATEST,
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

# The config and the metrics live in modules of their own; what callers import from here stays.
from controllers.daemon_config import (
    DEFAULT_LISTEN,
    ConfigError,
    DaemonConfig,
    RepoConfig,
    _local_path,
    _redact_url,
    git_dir,
    load_config,
    parse_config,
    parse_duration,
)
from controllers.daemon_metrics import Metrics
from controllers.daemon_ui import UiChild
from controllers.forge import Forge
from controllers.reconcile import PassReport, Reconciler, Settings, state_dir_for
from foundry.errors import FoundryError, UserError
from foundry.progress import Progress
from foundry.redaction import redaction
from foundry.sandbox import sandbox_named

#: A file event makes its repository due this long after it (more events in between join it).
DEBOUNCE = 0.15
#: The first pass of each repository starts within this long after start-up (spread at random).
FIRST_SPREAD = 1.0

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
        with self.library_output():
            return self._run()

    def _run(self) -> int:
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

    @contextlib.contextmanager
    def library_output(self) -> Iterator[None]:
        """What Python and the libraries the daemon uses say on their own (warnings, logging
        at WARNING and above) goes through the daemon's log, in its format and redacted: with
        `--log json` every line of the log stays one JSON object (watchdog, for one, warns when
        a directory it watches appears twice in a race with git creating it)."""
        import logging
        import warnings

        def show(  # noqa: PLR0917 - warnings.showwarning's own signature
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            said = f"{category.__name__}: {message} ({filename}:{lineno})"
            self._log(self.redact(said), event="warning")

        class _Handler(logging.Handler):
            def emit(inner, record: logging.LogRecord) -> None:  # noqa: N805 - the daemon is self
                try:
                    said = f"{record.name}: {record.getMessage()}"
                except Exception:  # noqa: BLE001 - a bad log call of a library is not ours to fail
                    said = f"{record.name}: {record.msg!r}"
                self._log(self.redact(said), event="warning")

        handler = _Handler(logging.WARNING)
        root = logging.getLogger()
        saved = warnings.showwarning
        warnings.showwarning = show
        root.addHandler(handler)
        try:
            yield
        finally:
            warnings.showwarning = saved
            root.removeHandler(handler)

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
            sandbox=sandbox_named(
                rc.sandbox or os.environ.get("FOUNDRY_SANDBOX") or "auto", user=rc.user
            ),
            # The daemon's config (and what sits beside it) is never a block's to read, even
            # where the sandbox shows the system (a config under /etc).
            hidden=self._hidden,
            read_only=rc.read_only,
            run_as=rc.user,
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
