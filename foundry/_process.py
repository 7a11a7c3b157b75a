"""One block attempt as an operating-system process: its own process group, a minimal
environment, output captured (bounded tail, full log written and digested, secrets redacted by
`foundry.redaction` as it is read).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from foundry.redaction import Redactor, redact_text

TAIL_BYTES = 16 * 1024


@dataclass
class Capture:
    """Output of one attempt: redacted, written to `log_path`, tail kept, digested.

    The log file is created with the first byte of output: an attempt that prints nothing has
    no file (its digest is the digest of nothing), which spares a silent block two system calls.
    """

    redactor: Redactor
    log_path: Path | None
    tail: bytearray = field(default_factory=bytearray)
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0
    _log_fd: int = -1

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self.hasher.update(data)
        self.size += len(data)
        if self.log_path is not None:
            if self._log_fd < 0:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(self._log_fd, data)
        self.tail += data
        if len(self.tail) > TAIL_BYTES:
            del self.tail[: len(self.tail) - TAIL_BYTES]

    def feed(self, chunk: bytes) -> None:
        self._emit(self.redactor.feed(chunk))

    def close(self) -> None:
        self._emit(self.redactor.flush())
        if self._log_fd >= 0:
            os.close(self._log_fd)
            self._log_fd = -1
        self.log_path = None  # nothing more is written

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()

    def tail_text(self) -> str:
        return bytes(self.tail).decode("utf-8", errors="replace")


_devnull = -1


def _stdin() -> int:
    """One descriptor of /dev/null for every attempt's stdin (not inherited but through dup2)."""
    global _devnull  # noqa: PLW0603 - opened once per process, on first use
    if _devnull < 0:
        _devnull = os.open(os.devnull, os.O_RDONLY)
    return _devnull


@dataclass
class Proc:
    """A started attempt: its process, the read end of its output pipe, and a pidfd (-1 when
    the kernel has none), which becomes readable when the process exits."""

    popen: subprocess.Popen[bytes]
    out_fd: int
    pidfd: int

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait(self) -> int:
        """The exit status (negative: the signal that ended it); reaps the process."""
        return self.popen.wait()

    def poll(self) -> int | None:
        return self.popen.poll()

    def close_output(self) -> None:
        if self.out_fd >= 0:
            os.close(self.out_fd)
            self.out_fd = -1


def spawn(argv: list[str], *, cwd: Path, env: dict[str, str]) -> Proc:
    """Start `argv` in a new session (its own process group), stdout+stderr on one pipe, stdin
    /dev/null, no other descriptor inherited."""
    out_fd, child_out = os.pipe()
    try:
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=_stdin(),
            stdout=child_out,
            stderr=child_out,
            start_new_session=True,
            close_fds=True,
        )
    except BaseException:
        os.close(out_fd)
        raise
    finally:
        os.close(child_out)
    os.set_blocking(out_fd, False)
    pidfd = -1
    if hasattr(os, "pidfd_open"):
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(popen.pid)
    return Proc(popen, out_fd, pidfd)


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the whole process group of an attempt (grandchildren included)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


__all__ = ["TAIL_BYTES", "Capture", "Proc", "Redactor", "kill_group", "redact_text", "spawn"]
