"""Resource limits of one block attempt, the same under every sandbox.

Memory and processes are limited by a cgroup of the attempt's own where the host lets the engine
make one (cgroup v1 `memory` and `pids` controllers, or cgroup v2 with them delegated): the
kernel then counts every process of the attempt, whatever it forks, and says afterwards whether
a limit was hit. Where it does not, they fall back to resource limits of the process
(`RLIMIT_AS`, `RLIMIT_NPROC`), which bound the same things less exactly. File size and CPU time
are resource limits of each process (`RLIMIT_FSIZE`, `RLIMIT_CPU`): the kernel ends the process
with SIGXFSZ or SIGXCPU, which says which one was hit. CPU time is also counted for the whole
attempt by a cgroup where the host gives one (v1 `cpuacct`, any v2 cgroup): the engine ends the
attempt once all its processes together used the limit (`Launch.over_cpu`).

The attempt's command is started through `/bin/sh`, which puts itself into the cgroups and then
`exec`s `prlimit` with the limits and the command: nothing the attempt starts can run before it
is counted.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from foundry.sandbox._user import RunAs, drop_to

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: How long removing an attempt's cgroup may wait for its killed processes to be reaped.
CLOSE_WAIT = 5.0
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_counter = itertools.count()


def parse_size(text: str | int) -> int:
    """`512Mi`, `2G`, `1048576` -> bytes (binary units: K, M, G, T with or without `i`/`B`)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size: write it like 512Mi, 2Gi or 1048576")
    unit = (match.group(2) or "").upper().rstrip("B").rstrip("I")
    return int(match.group(1)) * _UNITS[unit]


@dataclass(frozen=True)
class Limits:
    """Resource limits of one attempt; None: not limited."""

    memory: int | None = None  # bytes
    processes: int | None = None
    file_size: int | None = None  # bytes
    cpu: int | None = None  # seconds of CPU time

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.memory, self.processes, self.file_size, self.cpu))

    def describe(self) -> str:
        parts = []
        if self.memory is not None:
            parts.append(f"memory {_human(self.memory)}")
        if self.processes is not None:
            parts.append(f"{self.processes} processes")
        if self.file_size is not None:
            parts.append(f"files up to {_human(self.file_size)}")
        if self.cpu is not None:
            parts.append(f"{self.cpu} s of CPU")
        return ", ".join(parts) or "none"


def _human(size: int) -> str:
    for unit, factor in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}B"
    return f"{size} bytes"


@dataclass
class Launch:
    """A confined command line, and what its end means."""

    argv: list[str]
    limits: Limits = field(default_factory=Limits)
    #: the attempt's cgroups by controller (`memory`, `pids`), when the host gave them
    cgroups: dict[str, Path] = field(default_factory=dict)
    #: the cgroup version the directories belong to (1 or 2)
    cgroup_version: int = 0
    #: a directory made for the attempt (removed by `close`)
    scratch: Path | None = None
    #: set once the attempt's processes together used up its CPU time (`over_cpu`)
    cpu_hit: bool = False

    def cpu_used(self) -> float | None:
        """Seconds of CPU time every process of the attempt used so far, as its cgroup counts
        them (None: it has no cgroup that counts them)."""
        if "cpuacct" not in self.cgroups:
            return None
        if self.cgroup_version == 2:
            usec = self._field(self._read("cpuacct", "cpu.stat"), "usage_usec")
            return usec / 1e6
        text = self._read("cpuacct", "cpuacct.usage").strip()
        return int(text) / 1e9 if text.isdigit() else None

    def over_cpu(self) -> bool:
        """Whether the attempt's processes together have used its CPU time limit (each one's
        own is `RLIMIT_CPU`; a block that forks busy children is caught here). Whoever runs
        the attempt asks this while it runs, and ends it when it says so."""
        if self.limits.cpu is not None and not self.cpu_hit:
            used = self.cpu_used()
            self.cpu_hit = used is not None and used >= self.limits.cpu
        return self.cpu_hit

    def verdict(self, returncode: int) -> str | None:
        """Which limit ended the attempt, in words (None: none did, as far as can be told)."""
        died = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
        if self.limits.file_size is not None and died == signal.SIGXFSZ:
            return f"file size limit reached (files up to {_human(self.limits.file_size)})"
        if self.limits.cpu is not None and (died == signal.SIGXCPU or self.over_cpu()):
            return f"CPU time limit reached ({self.limits.cpu} s)"
        if self.limits.memory is not None and self._memory_hit():
            return f"memory limit reached ({_human(self.limits.memory)}): killed by the kernel"
        if self.limits.processes is not None and self._pids_hit():
            return f"process limit reached ({self.limits.processes}): a fork was refused"
        return None

    def _read(self, controller: str, name: str) -> str:
        where = self.cgroups.get(controller)
        if where is None:
            return ""
        try:
            return (where / name).read_text()
        except OSError:
            return ""

    @staticmethod
    def _field(text: str, key: str) -> int:
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
        return 0

    def _memory_hit(self) -> bool:
        if self.cgroup_version == 2:
            events = self._read("memory", "memory.events")
            return self._field(events, "oom_kill") > 0 or self._field(events, "max") > 0
        oom = self._read("memory", "memory.oom_control")
        failcnt = self._read("memory", "memory.failcnt").strip()
        return self._field(oom, "oom_kill") > 0 or (failcnt.isdigit() and int(failcnt) > 0)

    def _pids_hit(self) -> bool:
        return self._field(self._read("pids", "pids.events"), "max") > 0

    def close(self) -> None:
        """End whatever is left in the attempt's cgroups and remove them. A killed process
        leaves its cgroup only once the kernel has reaped it, which may take a moment on a busy
        host: the removal is retried for up to `CLOSE_WAIT` seconds."""
        for where in self.cgroups.values():
            deadline = time.monotonic() + CLOSE_WAIT
            while True:
                try:
                    pids = [int(p) for p in (where / "cgroup.procs").read_text().split()]
                except (OSError, ValueError):
                    pids = []
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                try:
                    where.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break  # the next attempt's sweep removes it (`_sweep`)
                    time.sleep(0.01)
        self.cgroups = {}
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


def limited(
    argv: list[str], limits: Limits, user: RunAs | None = None, *, contained: bool = False
) -> Launch:
    """`argv` under `limits`, as `user`: started through `/bin/sh`, which joins the attempt's
    cgroups and `exec`s `setpriv` (dropping to `user`, with no supplementary group, no
    capability and no way back), then `prlimit` with the resource limits, then `argv`.
    `contained`: a sandbox of its own ends every process of the attempt with it (a PID
    namespace); else a block run as its own user needs a cgroup to be found by, and without one
    it does not run (what it left behind would live on as that user)."""
    if not limits and user is None:
        return Launch(list(argv))
    from foundry.sandbox._types import SandboxUnavailable

    launch = Launch(list(argv), limits)
    # `cpuacct`: no limit is written, the cgroup counts the CPU time of every process of the
    # attempt (`Launch.over_cpu`), and finds them all when the attempt is closed
    asked = {"memory": limits.memory, "pids": limits.processes, "cpuacct": limits.cpu}
    wanted = {k: v for k, v in asked.items() if v is not None}
    if user is not None and not contained:
        wanted.setdefault("cpuacct", 0)
    if wanted:
        launch.cgroups, launch.cgroup_version = _cgroups(wanted)
    if user is not None and not contained and not launch.cgroups:
        raise SandboxUnavailable(
            f"a block run as {user.describe()} without a sandbox needs a cgroup of its own, to "
            "end whatever it leaves behind with it, and this host gives none: choose sandbox "
            "bwrap (its processes end with their PID namespace)"
        )
    rlimits = []
    if limits.file_size is not None:
        rlimits.append(f"--fsize={limits.file_size}")
    if limits.cpu is not None:
        rlimits.append(f"--cpu={limits.cpu}:{limits.cpu + 1}")
    if limits.memory is not None and "memory" not in launch.cgroups:
        rlimits.append(f"--as={limits.memory}")
    if limits.processes is not None and "pids" not in launch.cgroups:
        rlimits.append(f"--nproc={limits.processes}")
    command = list(argv)
    if rlimits:
        prlimit = _tool(launch, "prlimit", f"resource limits ({limits.describe()})")
        command = [prlimit, *rlimits, "--", *command]
    if user is not None:
        setpriv = _tool(launch, "setpriv", f"running blocks as {user.describe()}")
        command = [setpriv, *drop_to(user), "--", *command]
    if launch.cgroups:
        joins = " && ".join(f'echo $$ > "${i + 1}"' for i in range(len(launch.cgroups)))
        procs = [str(where / "cgroup.procs") for where in launch.cgroups.values()]
        script = f'{joins} && shift {len(procs)} && exec "$@"'
        command = ["/bin/sh", "-c", script, "foundry-limits", *procs, *command]
    launch.argv = command
    return launch


def _tool(launch: Launch, name: str, what: str) -> str:
    """util-linux's `name`, which `what` needs: SandboxUnavailable (the launch closed) when
    this host lacks it."""
    from foundry.sandbox._types import SandboxUnavailable

    found = shutil.which(name, path=os.defpath + ":/usr/bin:/bin")
    if found is None:
        launch.close()
        raise SandboxUnavailable(f"{what} needs {name} (util-linux), which this host lacks")
    return found


def _own_cgroup(controller: str | None) -> str | None:
    """This process's cgroup path for `controller` (None: cgroup v2's unified line)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        names = parts[1].split(",") if parts[1] else []
        if (controller is None and not names) or (controller in names):
            return parts[2]
    return None


def _cgroups(wanted: dict[str, int]) -> tuple[dict[str, Path], int]:
    """A new cgroup per controller in `wanted` with its limit written, below this process's
    own; ({}, 0) where the host does not let us make them."""
    name = f"foundry-{os.getpid()}-{next(_counter)}"
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # cgroup v2 only
        own = _own_cgroup(None)
        if own is None:
            return {}, 0
        where = CGROUP_ROOT / own.lstrip("/") / name
        _sweep(where.parent)
        try:
            enabled = (where.parent / "cgroup.subtree_control").read_text().split()
            # (every cgroup of v2 counts its CPU time in cpu.stat: nothing to enable for it)
            if not all(c in enabled for c in wanted if c != "cpuacct"):
                return {}, 0
            where.mkdir()
        except OSError:
            return {}, 0
        try:
            if "memory" in wanted:
                (where / "memory.max").write_text(str(wanted["memory"]))
                with contextlib.suppress(OSError):
                    (where / "memory.swap.max").write_text("0")
            if "pids" in wanted:
                (where / "pids.max").write_text(str(wanted["pids"]))
        except OSError:
            with contextlib.suppress(OSError):
                where.rmdir()
            return {}, 0
        return dict.fromkeys(wanted, where), 2
    made: dict[str, Path] = {}
    for controller, value in wanted.items():
        own = _own_cgroup(controller)
        base = CGROUP_ROOT / controller
        if own is None or not base.is_dir():
            continue
        where = base / own.lstrip("/") / name
        _sweep(where.parent)
        try:
            where.mkdir()
            if controller == "memory":
                (where / "memory.limit_in_bytes").write_text(str(value))
                with contextlib.suppress(OSError):
                    (where / "memory.memsw.limit_in_bytes").write_text(str(value))
            elif controller == "pids":
                (where / "pids.max").write_text(str(value))
        except OSError:
            with contextlib.suppress(OSError):
                where.rmdir()
            continue
        made[controller] = where
    return made, 1 if made else 0


_OURS = re.compile(r"^foundry-(\d+)-\d+$")


def _sweep(parent: Path) -> None:
    """Remove the attempts' cgroups an engine that was killed (and so never closed them) left
    below `parent`: those named for a process that no longer exists, with whatever is still in
    them ended first."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = _OURS.match(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        Launch(argv=[], cgroups={"stale": entry}).close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
