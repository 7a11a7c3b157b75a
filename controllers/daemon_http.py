"""The HTTP endpoint of `foundry daemon` on its `listen:` address: `GET /healthz` (JSON; 503
while draining), `GET /metrics` (Prometheus text exposition from the daemon's own registry) and,
with `ui:`, every other path proxied to the web interface (controllers/daemon_ui.py).

Requests are served on threads of their own and never logged; once it listens, the port is
written to the config's `port_file` (0 in `listen:` picks a free port).
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Protocol

from prometheus_client import CONTENT_TYPE_LATEST

from controllers.daemon_config import DaemonConfig
from controllers.daemon_log import rfc3339
from controllers.daemon_metrics import Metrics
from controllers.daemon_repo import Repository
from controllers.daemon_ui import UiChild
from foundry.errors import UserError


class Endpoint(Protocol):
    """What the endpoint serves (the daemon)."""

    @property
    def metrics(self) -> Metrics: ...

    @property
    def ui(self) -> UiChild | None: ...

    def health(self) -> tuple[int, dict[str, Any]]:
        """/healthz: its status code and body."""
        ...


def listen(endpoint: Endpoint, config: DaemonConfig) -> Server:
    """Serve `endpoint` on the config's `listen:` address, on a thread of its own; the port is
    written to `port_file` (through a temporary file) once it listens."""
    host, port = config.host, config.port
    server_class = _Server6 if ":" in host else Server
    try:
        server = server_class((host, port), _Handler)
    except OSError as exc:
        raise UserError(
            f"{config.source}: cannot listen on {authority(host, port)}: "
            f"{exc.strerror or exc}; choose another `listen:` port (0 picks a free one)"
        ) from None
    server.foundry_daemon = endpoint
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    if config.port_file is not None:
        target = config.port_file
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(f"{int(server.server_address[1])}\n", encoding="utf-8")
        tmp.replace(target)
    return server


def authority(host: str, port: int | None) -> str:
    """`host:port` as in a URL (an IPv6 address in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}"


def repository_health(repo: Repository, now: float) -> dict[str, Any]:
    """One repository in /healthz (`now`: the monotonic clock; read under the daemon's lock)."""
    return {
        "repo": repo.name,
        "state": str(repo.state) if repo.state is not None else None,
        "watched": repo.watched,
        "running": repo.running,
        "passes": repo.passes,
        "lastPass": rfc3339(repo.last_end) if repo.last_end is not None else None,
        "lastPassSeconds": round(repo.last_seconds, 3) if repo.last_seconds is not None else None,
        "lastOutcome": repo.last_outcome,
        "errors": list(repo.last_errors),
        "outbox": repo.outbox,
        "nextPassIn": None if repo.running else round(max(0.0, repo.due - now), 3),
    }


def health(
    repos: list[dict[str, Any]], *, draining: bool, in_flight: int, ui: UiChild | None
) -> tuple[int, dict[str, Any]]:
    """/healthz: its status code (503 while draining) and body."""
    body = {
        "status": "draining" if draining else "ok",
        "inFlight": in_flight,
        "ui": ui.status() if ui is not None else None,
        "repositories": repos,
    }
    return (503 if draining else 200), body


class _Handler(BaseHTTPRequestHandler):
    server_version = "foundry-daemon"
    sys_version = ""
    routes: ClassVar[tuple[str, ...]] = ("/healthz", "/metrics")

    def do_GET(self) -> None:
        assert isinstance(self.server, Server)
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
        assert isinstance(self.server, Server)
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


class Server(ThreadingHTTPServer):
    """The daemon's HTTP server (IPv4)."""

    daemon_threads = True
    foundry_daemon: Endpoint


class _Server6(Server):
    address_family = socket.AF_INET6
