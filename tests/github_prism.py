"""Prism (`prism proxy --errors`) in front of the fake GitHub, with GitHub's OpenAPI description.

Prism checks both directions against GitHub's published contract: a request the real API would
reject gets 422 from Prism (it never reaches the fake); a response the real API would never
send (a 2xx the operation does not declare, or a body or header off its schema) gets 500. Both
tools are pinned in package-lock.json and installed by `npm ci` (scripts/test does it).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.github_fake import DEFAULT_REPO, FakeGitHub

ROOT = Path(__file__).resolve().parent.parent
PRISM = ROOT / "node_modules" / ".bin" / "prism"
SPEC = ROOT / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
# Bump when EDITS change, so copies cleaned by older edits are not reused.
EDITS_VERSION = 1
MISSING = (
    "{what} is missing: run `npm ci` at the repository root (scripts/test does it); "
    "package-lock.json pins @stoplight/prism-cli and @octokit/openapi."
)


# Edits to GitHub's description before Prism reads it, each a function that changes the spec
# in place, with why. None is needed for `prism proxy`: the quirks seen with `prism mock`
# (examples that wrap a $ref in `value`, example Link headers that make clients paginate,
# `servers` at https://api.github.com rather than `/` or `/api/v3`) only touch mocked responses
# and `__server` routing; the proxy validates against the schemas and forwards every path to
# the fake as it is. (Prism mocks only when the upstream answers 501, which the fake refuses.)
EDITS: list[Callable[[dict[str, Any]], None]] = []


def clean_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """GitHub's description with EDITS applied (in place); returns it."""
    for edit in EDITS:
        edit(spec)
    return spec


def cleaned_spec(cache_dir: Path, source: Path = SPEC) -> Path:
    """The description Prism reads: `source` itself while EDITS is empty, else a cleaned copy
    in `cache_dir` made once per spec digest and EDITS version (parallel workers may race: the
    copy is written to a temporary name and renamed)."""
    if not source.is_file():
        raise FileNotFoundError(MISSING.format(what=source))
    if not EDITS:
        return source
    raw = source.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    target = cache_dir / f"api.github.com-{digest}-v{EDITS_VERSION}.json"
    if not target.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        spec = clean_spec(json.loads(raw))
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(spec), encoding="utf-8")
        tmp.replace(target)
    return target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrismProxy:
    """`prism proxy --errors SPEC UPSTREAM` on a free 127.0.0.1 port, its output in `log_path`."""

    def __init__(self, spec: Path, upstream: str, log_path: Path) -> None:
        self.spec = spec
        self.upstream = upstream
        self.log_path = log_path
        self.port = 0
        self.started_in = 0.0  # seconds until it answered
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> PrismProxy:
        if not PRISM.exists():
            raise FileNotFoundError(MISSING.format(what=PRISM))
        self.port = _free_port()
        began = time.monotonic()
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    str(PRISM),
                    "proxy",
                    "--errors",
                    str(self.spec),
                    self.upstream,
                    "--port",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # its own process group: stop() ends node's children
        while time.monotonic() - began < timeout:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prism exited with {self._proc.returncode}:\n{self.tail()}")
            if self._answers():
                self.started_in = time.monotonic() - began
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prism did not answer within {timeout:.0f} s:\n{self.tail()}")

    def _answers(self) -> bool:
        # Any HTTP answer (Prism's 404 for an unknown path) means it is listening.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/__prism_ready__")
            conn.getresponse().read()
        except OSError:
            return False
        finally:
            conn.close()
        return True

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@dataclass
class GitHubRig:
    """What the `github` fixture gives a test: the fake behind Prism, reset for the test.

    api_url: Prism's URL, the base URL a client under test uses (GitHub's paths, no /api/v3).
    direct_url: the fake itself, without contract checks (to set up or to inspect).
    fake: the FakeGitHub (state helpers, fail_next, request log).
    token: a token the fake accepts. repo: the repository the fake serves ("owner/name").
    """

    api_url: str
    direct_url: str
    fake: FakeGitHub
    prism: PrismProxy
    token: str = "test-token"
    repo: str = DEFAULT_REPO

    def github3(self, token: str | None = None) -> Any:
        """A github3.py client on Prism with installation-token auth (as a GITHUB_TOKEN is)."""
        import github3

        gh = github3.GitHub()
        gh.session.base_url = self.api_url
        gh.session.app_installation_token_auth(
            {"token": token or self.token, "expires_at": "2099-01-01T00:00:00Z"}
        )
        return gh
