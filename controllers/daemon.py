"""`foundry daemon`: many repositories reconciled by one process (DESIGN section 8); here the
coordinator, `Daemon`, which schedules passes, runs them and drains.

* **Scheduling.** Each repository has its own polling interval with jitter; the first passes are
  spread over the first second. One scheduler thread hands due repositories to a pool of
  `concurrency` workers; a repository is never in two passes at once (what the daemon knows of
  a repository, and how its reconciler is made: daemon_repo.py).
* **File events** (daemon_watch.py): a change to a branch of a watched repository makes it due
  after a short debounce, instead of at its next poll. Foundry's own pushes (`refs/alloy/*`, the
  traces branch) are ignored; an event during a pass makes one more pass right after it (a pass
  with nothing new writes nothing, so this cannot loop).
* **Drain.** `request_drain()` (SIGTERM/SIGINT in `foundry daemon`) stops taking passes, sets the
  stop event of the running reconcilers (running blocks get `grace` seconds, the rest are
  recorded as interrupted and resumed by a later pass), waits for them and returns 0.

Its collaborators: the config (daemon_config.py, read strictly: see docs/daemon.md), the HTTP
endpoint with /healthz and /metrics (daemon_http.py, daemon_metrics.py), the web interface
(daemon_ui.py) and the log (daemon_log.py).
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# The config and the metrics live in modules of their own; what callers import from here stays.
from controllers.daemon_config import (
    DEFAULT_LISTEN,
    ConfigError,
    DaemonConfig,
    RepoConfig,
    git_dir,
    load_config,
    parse_config,
    parse_duration,
)
from controllers.daemon_http import Server, authority, health, listen, repository_health
from controllers.daemon_log import DaemonLog, stderr, url_secrets
from controllers.daemon_metrics import Metrics
from controllers.daemon_repo import Repository, hidden_files, reconciler_for, state_base
from controllers.daemon_ui import UiChild
from controllers.daemon_watch import RefWatcher, moves_a_branch
from controllers.reconcile import PassReport
from foundry.errors import FoundryError
from foundry.progress import Progress

#: A file event makes its repository due this long after it (more events in between join it).
DEBOUNCE = 0.15
#: The first pass of each repository starts within this long after start-up (spread at random).
FIRST_SPREAD = 1.0


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
        # What no block may read, even where the sandbox shows the system.
        self._hidden = hidden_files(config)
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
        secrets = url_secrets(r.repo for r in config.repositories)
        self.log = DaemonLog(log or stderr, as_json=config.log == "json", secrets=secrets)
        start = time.monotonic()
        self.repos: list[Repository] = []
        for rc in config.repositories:
            spread = self._rng.uniform(0.0, min(FIRST_SPREAD, rc.interval))
            self.repos.append(Repository(config=rc, name=self.redact(rc.repo), due=start + spread))
        self.server: Server | None = None
        self.port: int | None = None
        self._watcher = RefWatcher(self.log, self.on_ref_event)
        #: The web interface's child process (`ui:`), proxied by the HTTP handler.
        self.ui: UiChild | None = None
        if config.ui is not None:
            self.ui = UiChild(
                config.ui,
                [rc.repo for rc in config.repositories],
                state_base(config),
                log=lambda line: self.log.line(self.redact(line), event="ui"),
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
        server = listen(self, self.config)
        self.server, self.port = server, int(server.server_address[1])
        pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="reconcile")
        scheduler = threading.Thread(
            target=self._schedule, args=(pool,), name="scheduler", daemon=True
        )
        try:
            if self.ui is not None:
                self.ui.start()
            self._watcher.start(self.repos)
            self.metrics.repositories.set(len(self.repos))
            self.metrics.watched.set(sum(r.watched for r in self.repos))
            scheduler.start()
            at = authority(self.config.host, self.port)
            self.log.line(
                f"foundry daemon: {_count(len(self.repos), 'repository', 'repositories')} "
                f"({sum(r.watched for r in self.repos)} watched), "
                f"concurrency {self.config.concurrency}; "
                f"http://{at}/healthz and /metrics"
                + (f"; the web interface at http://{at}/" if self.ui else ""),
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

    def library_output(self) -> contextlib.AbstractContextManager[None]:
        """What Python and the libraries the daemon uses say on their own goes through the
        daemon's log (`DaemonLog.library_output`)."""
        return self.log.library_output()

    def _drain(self, pool: ThreadPoolExecutor, scheduler: threading.Thread) -> None:
        with self._cond:
            self._draining = True
            running = self._in_flight
            self._cond.notify_all()
        self.metrics.draining.set(1)
        self._stop.set()
        self.log.line(
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
            self.log.line(now, event="drain")
        pool.shutdown(wait=True)
        self._watcher.stop()
        for repo in self.repos:
            if repo.reconciler is not None:
                repo.reconciler.close()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.config.port_file is not None:
            self.config.port_file.unlink(missing_ok=True)
        self.log.line("stopped", event="stop")

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

    def _interval(self, repo: Repository) -> float:
        jitter = self.config.jitter
        return repo.config.interval * (1.0 + self._rng.uniform(-jitter, jitter))

    def _pass(self, repo: Repository, trigger: str) -> None:
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

    def _reconcile(self, repo: Repository) -> tuple[PassReport, str | None]:
        """One pass; (its report, a traceback when it crashed)."""
        begun = time.monotonic()
        try:
            if repo.reconciler is None:  # also retried while a local repository is missing
                repo.reconciler = reconciler_for(
                    repo,
                    self.config,
                    self._hidden,
                    stop=self._stop,
                    halt=self._halt,
                    progress=lambda event: self._progress(repo, event),
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

    def _progress(self, repo: Repository, event: Progress) -> None:
        branch = repo.reconciler.branch if repo.reconciler is not None else repo.config.branch
        self.log.progress(event, repo=repo.name, branch=branch)

    def _record(
        self, repo: Repository, trigger: str, report: PassReport, crash: str | None
    ) -> None:
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
        name, ended = repo.name, time.time()
        self.metrics.record_pass(name, trigger, outcome, report, ended)
        outbox_changed = report.outbox != repo.outbox
        with self._cond:
            repo.passes += 1
            repo.last_end = ended
            repo.last_seconds = report.seconds
            repo.last_outcome = outcome
            repo.last_errors = errors
            repo.outbox = report.outbox
        if news or errors or outbox_changed:
            self.log.pass_line(report, repo=name, trigger=trigger, errors=errors)
        if crash is not None:
            self.log.line(self.redact(crash), event="crash", repo=name)

    def on_ref_event(self, repo: Repository, ref: str) -> None:
        """`ref` (a path under the git dir, `packed-refs` or `refs/…`) changed."""
        if not moves_a_branch(ref, repo.traces_ref):
            return
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

    # -- HTTP -------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        """/healthz: its status code (503 while draining) and body."""
        with self._cond:
            draining = self._draining
            now = time.monotonic()
            repos = [repository_health(r, now) for r in self.repos]
            in_flight = self._in_flight
        return health(repos, draining=draining, in_flight=in_flight, ui=self.ui)

    def redact(self, text: str) -> str:
        """`text` with the configured URLs' credentials masked (`DaemonLog.redact`)."""
        return self.log.redact(text)

    def _busy(self) -> bool:
        with self._cond:
            return self._in_flight > 0

    def _wait_wake(self, seconds: float) -> bool:
        """Wait for a signal's wake-up (the wakeup fd), at most `seconds`; True if one came."""
        ready, _, _ = select.select([self._wake_r], [], [], seconds)
        if ready:
            os.read(self._wake_r, 64)
        return bool(ready)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


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
