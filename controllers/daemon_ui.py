"""The web interface of `foundry daemon` (`ui:` in its config): `alloy ui` as a supervised child
process, and the proxy that serves it on the daemon's own HTTP endpoint.

Controllers never import Alloy (`foundry daemon` reaches controllers, and Alloy and Foundry never
import each other, not even through a third package), so the interface runs as a process —
`python -P -m alloy ui --repo … --listen-fd N --cache <state>/ui-cache`, serving on a socket of
127.0.0.1 that the daemon bound and hands over (the port is never free for another process to
take) — and the daemon forwards every path but its own `/healthz` and `/metrics` to it:

* **Supervision** (`UiChild`). The child runs in its own process group (a terminal's Ctrl-C does
  not reach it; stopping it stops the git processes it started), its output goes to the daemon's
  log line by line. It is `starting` until it answers `GET /healthz` (at most `START_TIMEOUT`;
  else it is stopped and started again), then `up`. When it exits while the daemon runs it is
  `down` and started again after a backoff (1 s, doubling up to 60 s; back to 1 s once it had
  been up a minute), each time on a new free port. `stop()` (the daemon drains) closes the
  proxy's connections to it (an open event stream would hold its exit up) and sends SIGTERM to
  its group, SIGKILL after `STOP_GRACE`. `<state>/ui.pid` names the child and its daemon, so a
  daemon restarted after SIGKILL stops the child its predecessor left behind.
* **The proxy** (`UiChild.proxy`, controllers/daemon_proxy.py) forwards requests to it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any

from controllers.daemon_proxy import Upstreams, forward, plain

#: How long a new child may take to answer `GET /healthz` (it reads every repository first).
START_TIMEOUT = 120.0
#: After SIGTERM, how long the child may take to exit before SIGKILL.
STOP_GRACE = 5.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
#: A child that was up this long starts the next backoff from BACKOFF_FIRST again.
STABLE = 60.0


@dataclass(frozen=True)
class UiConfig:
    """`ui:` of the daemon's config: how `alloy ui` is started."""

    read_only: bool = False
    #: Passed on as `--token-file`.
    token_file: Path | None = None
    #: Passed on as `--as`: who actions are recorded as.
    identity: str | None = None
    #: Seconds between the interface's looks at the remotes (`--poll`).
    poll: float = 0.5


def ui_command(
    config: UiConfig, repos: Sequence[str], cache: Path, fd: int, *, python: str | None = None
) -> list[str]:
    """The command line of the child serving on the listening socket it inherits as `fd`."""
    command = [python or sys.executable, "-P", "-m", "alloy", "ui"]
    for repo in repos:
        command += ["--repo", repo]
    command += ["--listen-fd", str(fd), "--cache", str(cache)]
    if config.read_only:
        command.append("--read-only")
    if config.token_file is not None:
        command += ["--token-file", str(config.token_file)]
    if config.identity is not None:
        command += ["--as", config.identity]
    command += ["--poll", f"{config.poll:g}"]
    return command


class UiChild:
    """`alloy ui` for `repos`, kept running between `start()` and `stop()`."""

    def __init__(
        self,
        config: UiConfig,
        repos: Sequence[str],
        state: Path,
        *,
        log: Callable[[str], None],
        python: str | None = None,
    ) -> None:
        self.config = config
        self.repos = list(repos)
        self.state = state
        self.cache = state / "ui-cache"
        self.pid_file = state / "ui.pid"
        self._log = log
        self._python = python
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._phase = "down"
        self._port: int | None = None
        self.restarts = 0
        self._timed_out = False
        self._upstreams = Upstreams()
        self._thread: threading.Thread | None = None

    # -- supervision ---------------------------------------------------------------------------

    def start(self) -> None:
        self._stop_leftover()
        self._thread = threading.Thread(target=self._supervise, name="ui", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the child (SIGTERM to its group, SIGKILL after STOP_GRACE) and its supervision."""
        with self._lock:
            self._stopping.set()
            self._phase, self._port, proc = "down", None, self._proc
        self._upstreams.close_all()  # the child need not wait for its open streams to end
        if proc is not None:
            _terminate(proc, self._log)
        if self._thread is not None:
            self._thread.join(timeout=STOP_GRACE + 5)
        with self._lock:
            self._phase, self._port, self._proc = "down", None, None
        with contextlib.suppress(OSError):
            self.pid_file.unlink()

    def status(self) -> dict[str, Any]:
        """For `/healthz`: `state` (up, starting, down), `port`, `pid`, `restarts`."""
        with self._lock:
            proc = self._proc
            return {
                "state": self._phase,
                "port": self._port,
                "pid": proc.pid if proc is not None and self._phase != "down" else None,
                "restarts": self.restarts,
            }

    def _supervise(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stopping.is_set():
            begun = time.monotonic()
            self._run_once()
            if self._stopping.is_set():
                return
            with self._lock:
                self._phase, self._port = "down", None
            if time.monotonic() - begun >= STABLE:
                backoff = BACKOFF_FIRST
            self._log(f"ui: starting alloy ui again in {backoff:g}s")
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX)
            with self._lock:
                self.restarts += 1

    def _run_once(self) -> None:
        """Start the child, wait until it answers, then until it exits (or `stop()`)."""
        # The daemon binds the port and hands the listening socket to the child: the port is
        # never free between being chosen and being served, so whatever answers on it is the
        # child (no other process can take it meanwhile).
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.cache.mkdir(parents=True, exist_ok=True)
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            port = int(listener.getsockname()[1])
            fd = listener.fileno()
            command = ui_command(self.config, self.repos, self.cache, fd, python=self._python)
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self.state,
                start_new_session=True,
                pass_fds=(fd,),
            )
        except OSError as exc:
            self._log(f"ui: cannot start alloy ui: {exc.strerror or exc}")
            return
        finally:
            listener.close()  # the child's copy is the only one now
        with self._lock:
            if self._stopping.is_set():
                stopped = True
            else:
                stopped = False
                self._proc, self._port, self._phase = proc, port, "starting"
        if stopped:
            _terminate(proc, self._log)
            return
        self._write_pid(proc.pid)
        assert proc.stdout is not None
        output = threading.Thread(
            target=self._relay_output, args=(proc.stdout,), name="ui-output", daemon=True
        )
        output.start()
        self._log(f"ui: starting alloy ui on 127.0.0.1:{port} (pid {proc.pid})")
        came_up = self._wait_until_up(proc, port)
        code = proc.wait()
        output.join(timeout=5)  # its last words before ours
        if self._stopping.is_set():
            return
        if came_up:
            self._log(f"ui: alloy ui (pid {proc.pid}) exited {_exit_text(code)}")
        elif proc.returncode is not None and not self._timed_out:
            self._log(
                f"ui: alloy ui exited {_exit_text(code)} before it answered GET /healthz "
                "(its messages are above); check the `ui:` settings and that every "
                "repository can be read"
            )

    def _wait_until_up(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        """Whether the child answered; when it did not within START_TIMEOUT, it is stopped."""
        self._timed_out = False
        deadline = time.monotonic() + START_TIMEOUT
        while not self._stopping.is_set() and proc.poll() is None:
            if _answers(port):
                with self._lock:
                    self._phase = "up"
                self._log(f"ui: alloy ui is up on 127.0.0.1:{port} (pid {proc.pid})")
                return True
            if time.monotonic() > deadline:
                self._timed_out = True
                self._log(
                    f"ui: alloy ui (pid {proc.pid}) did not answer GET /healthz on "
                    f"127.0.0.1:{port} within {START_TIMEOUT:g}s (its messages are above); "
                    "stopping it"
                )
                _terminate(proc, self._log)
                return False
            self._stopping.wait(0.1)
        return False

    def _relay_output(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line:
                    self._log(f"ui: {line}")

    def _write_pid(self, pid: int) -> None:
        with contextlib.suppress(OSError):
            tmp = self.pid_file.with_name(self.pid_file.name + ".tmp")
            tmp.write_text(f"{pid} {os.getpid()}\n", encoding="utf-8")
            tmp.replace(self.pid_file)

    def _stop_leftover(self) -> None:
        """Stop the child an earlier daemon on this state left running (it was SIGKILLed)."""
        try:
            child, daemon = (int(p) for p in self.pid_file.read_text(encoding="utf-8").split())
        except (OSError, ValueError):
            return
        if daemon != os.getpid() and _alive(daemon):
            return  # another daemon on the same state directory: its child is its own
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return  # gone (or no /proc to make sure it is ours: leave it)
        if b"alloy" not in cmdline or os.fsencode(self.cache) not in cmdline:
            return  # the pid was reused by another process
        self._log(f"ui: stopping alloy ui (pid {child}) left running by an earlier daemon")
        with contextlib.suppress(OSError):
            os.killpg(child, signal.SIGKILL)

    # -- the proxy -----------------------------------------------------------------------------

    def proxy(self, handler: BaseHTTPRequestHandler) -> None:
        """Forward `handler`'s request to the child and stream its response back."""
        with self._lock:
            phase, port = self._phase, self._port
        if phase != "up" or port is None:
            plain(
                handler,
                503,
                f"the web interface is {phase}; try again in a moment (see /healthz)\n",
                retry=True,
            )
            return
        with contextlib.suppress(ConnectionError):  # the client left: nothing to answer
            forward(handler, port, self._upstreams)


def _answers(port: int) -> bool:
    """Whether something answers HTTP `GET /healthz` on 127.0.0.1:`port` (any status: a 503
    there means a repository has an error, and the interface shows it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    return True


def _terminate(proc: subprocess.Popen[bytes], log: Callable[[str], None]) -> None:
    """SIGTERM to the child's process group, SIGKILL after STOP_GRACE."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        log(f"ui: alloy ui (pid {proc.pid}) did not stop within {STOP_GRACE:g}s of SIGTERM; killed")
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"on signal {signal.Signals(-code).name}"
        return f"on signal {-code}"
    return f"with code {code}"


__all__ = ["UiChild", "UiConfig", "Upstreams", "forward", "ui_command"]
