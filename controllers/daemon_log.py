"""The log of `foundry daemon`: one line per event, text or one JSON object (`log: json`), with
the configured URLs' credentials masked.

* **Lines** (`DaemonLog.line`): `<time> <repo>: <message>` in text, else an object with `time`,
  `event`, `repo` (when it is a repository's) and `message`.
* **Progress** (`DaemonLog.progress`): each execution and block of a pass as it starts and ends,
  and what waits (controllers/_progress_log.py).
* **Passes** (`DaemonLog.pass_line`): what a pass did, in one line.
* **Library output** (`DaemonLog.library_output`): Python's warnings and its libraries' logging
  go through the same log, in its format.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from controllers.daemon_config import _redact_url
from controllers.reconcile import PassReport
from foundry.progress import Progress
from foundry.redaction import redaction


class DaemonLog:
    """Writes the daemon's log lines through `write`, as text or (`as_json`) JSON objects."""

    def __init__(
        self, write: Callable[[str], None], *, as_json: bool, secrets: Iterable[str]
    ) -> None:
        self._write = write
        self._json = as_json
        self._secrets = list(secrets)

    def redact(self, text: str) -> str:
        """`text` with the configured URLs' credentials masked (in every form
        `foundry.redaction` knows), and any URL's user information."""
        return _redact_url(redaction(self._secrets).mask_text(text))

    def line(self, message: str, *, event: str, repo: str | None = None) -> None:
        """One line of the log: `message` (already redacted), about `repo` when given."""
        stamp = rfc3339(time.time())
        if self._json:
            body: dict[str, Any] = {"time": stamp, "event": event}
            if repo is not None:
                body["repo"] = repo
            body["message"] = message
            self._write(json.dumps(body, sort_keys=True))
        else:
            self._write(f"{stamp} {f'{repo}: ' if repo else ''}{message}")

    def progress(self, event: Progress, *, repo: str, branch: str | None) -> None:
        """Each execution and block of a pass as it starts and ends, and what waits."""
        from controllers._progress_log import progress_json, progress_text

        if self._json:
            at = rfc3339(time.time())
            self._write(self.redact(progress_json(event, repo=repo, branch=branch, at=at)))
        else:
            line = self.redact(progress_text(event, branch=branch))
            self.line(line, event=event.kind, repo=repo)

    def pass_line(self, report: PassReport, *, repo: str, trigger: str, errors: list[str]) -> None:
        """What one pass of `repo` did (`errors` already redacted)."""
        if self._json:
            body = {**report.to_json(), "repo": repo, "errors": errors}
            at = rfc3339(time.time())
            body.update({"time": at, "event": "pass", "trigger": trigger})
            self._write(self.redact(json.dumps(body, sort_keys=True)))
            return
        parts = [f"pass ({trigger}, {report.seconds:.3f}s)"]
        if report.moved:
            parts.append("moved")
        parts.extend(line for line, _ in report.lines() if not line.startswith("error: "))
        parts.extend(f"error: {e}" for e in errors)
        self.line(self.redact("; ".join(parts)), event="pass", repo=repo)

    @contextlib.contextmanager
    def library_output(self) -> Iterator[None]:
        """What Python and the libraries the daemon uses say on their own (warnings, logging
        at WARNING and above) goes through the daemon's log, in its format and redacted: with
        `--log json` every line of the log stays one JSON object (watchdog, for one, warns when
        a directory it watches appears twice in a race with git creating it)."""
        import logging
        import warnings

        writing = threading.local()  # a warning raised while one is written is dropped

        def say(said: str) -> None:
            if getattr(writing, "now", False):
                return
            writing.now = True
            try:
                with contextlib.suppress(Exception):  # the log cannot be written: nothing to do
                    self.line(self.redact(said), event="warning")
            finally:
                writing.now = False

        def show(  # noqa: PLR0917 - warnings.showwarning's own signature
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            say(f"{category.__name__}: {message} ({filename}:{lineno})")

        class _Handler(logging.Handler):
            def emit(inner, record: logging.LogRecord) -> None:  # noqa: N805 - the log is self
                try:
                    said = f"{record.name}: {record.getMessage()}"
                except Exception:  # noqa: BLE001 - a bad log call of a library is not ours to fail
                    said = f"{record.name}: {record.msg!r}"
                say(said)

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


def url_secrets(repos: Iterable[str]) -> list[str]:
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


def rfc3339(seconds: float) -> str:
    """`seconds` since the epoch as an RFC 3339 UTC time, to the millisecond."""
    stamp = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stderr(line: str) -> None:
    """The log's default writer: a line on standard error."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
