"""A `command` gate's policy command, run as a process: in a checkout of the default branch's
head (never a pull request's), with the blocks' minimal environment, in its own process group,
killed whole at its timeout. Exit 0 passes, 75 (EX_TEMPFAIL) waits, anything else fails."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from foundry.executor import ENV_ALLOWLIST, GateOutcome, RunOptions
from foundry.gates._ports import Unavailable
from foundry.sandbox import Confinement, Launch, SandboxUnavailable, launch_in

EX_TEMPFAIL = 75
#: What is kept of the command's output for the reason (its last line, this long at most); the
#: engine masks secrets in it first, then cuts the reason to its own limit.
SAID_CHARS = 4096


def confined_like_blocks(
    options: RunOptions, execution: str
) -> Callable[[list[str], Path], Launch]:
    """How a policy command of `execution` runs as the run's blocks do: under their sandbox, as
    their user, seeing what they see (and the network: a policy may ask a service), its rooms
    under the state directory (`gate-rooms/`, removed when it ends)."""
    rooms = itertools.count(1)

    def confine(argv: list[str], where: Path) -> Launch:
        confinement = Confinement(
            where, where, hidden=options.hidden, read_only=options.read_only, user=options.run_as
        )
        scratch = options.state_dir / "gate-rooms" / f"{execution}.{next(rooms)}"
        return launch_in(options.sandbox, argv, confinement, scratch, options.state_dir)

    return confine


class PolicyUnavailable(Unavailable):
    """No checkout of the default branch can be had now (the gate waits, saying why)."""


def minimal_env(base: Mapping[str, str] | None) -> dict[str, str]:
    """The blocks' allowlist of `base` (default: this process's environment)."""
    source = os.environ if base is None else base
    return {k: source[k] for k in ENV_ALLOWLIST if k in source}


def run_policy(
    argv: list[str],
    *,
    where: Path,
    env: Mapping[str, str],
    timeout: int | None,
    stop: threading.Event | None = None,
    confine: Callable[[list[str], Path], Launch] | None = None,
) -> GateOutcome:
    """The gate's decision from its policy command, run in `where` (confined by `confine`,
    as a block is, when given)."""
    try:
        launch = confine(argv, where) if confine is not None else None
    except (OSError, SandboxUnavailable) as exc:
        said = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return GateOutcome("failed", f"policy command {argv[0]!r} could not start: {said}")
    try:
        return _run(launch.argv if launch is not None else argv, where, env, timeout, stop)
    finally:
        if launch is not None:
            launch.close()


def _run(
    argv: list[str],
    where: Path,
    env: Mapping[str, str],
    timeout: int | None,
    stop: threading.Event | None,
) -> GateOutcome:
    # Output goes to a file, not a pipe: a child the command leaves behind holding the pipe
    # open would keep us waiting for the timeout after the command itself has ended.
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=where,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            return GateOutcome(
                "failed", f"policy command {argv[0]!r} could not start: {exc.strerror or exc}"
            )
        try:
            code = _wait(proc, timeout, stop)
        except subprocess.TimeoutExpired:
            return GateOutcome("failed", f"policy command timed out after {timeout}s")
        except _Stopped:
            # Nothing was decided: the gate waits, and the policy runs again next time.
            return GateOutcome("waiting", "policy command stopped: the run is stopping")
        finally:
            _kill_group(proc.pid)  # at its timeout, and whatever it left behind in its group
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        out.seek(max(0, out.seek(0, os.SEEK_END) - SAID_CHARS))
        said = out.read().decode(errors="replace").strip().splitlines()
    detail = f": {said[-1][:SAID_CHARS]}" if said else ""
    if code == 0:
        return GateOutcome("passed", f"policy command passed{detail}")
    if code == EX_TEMPFAIL:
        return GateOutcome("waiting", f"policy command says wait{detail}")
    if code < 0:
        return GateOutcome("failed", f"policy command was killed by signal {-code}{detail}")
    return GateOutcome("failed", f"policy command failed with exit code {code}{detail}")


class _Stopped(Exception):
    pass


def _wait(proc: subprocess.Popen[bytes], timeout: int | None, stop: threading.Event | None) -> int:
    """The command's exit code; `TimeoutExpired` at its timeout, `_Stopped` as soon as `stop`
    is set (a drain does not wait for a policy's timeout)."""
    if stop is None:
        return proc.wait(timeout=timeout)
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        if stop.is_set():
            raise _Stopped
        step = 0.1 if end is None else min(0.1, max(0.0, end - time.monotonic()))
        try:
            return proc.wait(timeout=step)
        except subprocess.TimeoutExpired:
            if end is not None and time.monotonic() >= end:
                raise


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
