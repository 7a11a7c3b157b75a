"""The `bwrap` adapter: every attempt in its own namespaces through Debian's `bubblewrap`.

What the block sees: the system's directories read-only (`/usr`, `/etc`, `/bin`, `/sbin`,
`/lib*`, `/opt`), its own worktree read-write (and, read-only, the git directory that worktree
points to, so that `git` works in it), a private `/tmp`, a fresh `/proc` of its own PID
namespace and a minimal `/dev`; no home directory, no `/var`, `/run`, `/srv`, `/mnt`, no other
worktree, state directory, configuration or credential of the host. Paths in
`Confinement.hidden` are covered even where they would be visible. It has its own PID namespace
(killing the attempt's process group ends everything inside), its own IPC, UTS and cgroup
namespaces, a user namespace without capabilities, a new session (no terminal to inject into),
and no network unless the block asks for it (its own network namespace has only a loopback).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from foundry.sandbox._files import linked_git_dir, small_file
from foundry.sandbox._limits import Launch, limited
from foundry.sandbox._types import Confinement, SandboxUnavailable
from foundry.sandbox._user import RunAs, blocked_on_the_way, drop_to, hand_over

#: The system, shown read-only where it exists (symbolic links, as merged /usr makes /bin, are
#: made again as links).
SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")

#: What of a fresh /proc is the host's kernel's to change, shown read-only.
PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")


class Bubblewrap:
    """Runs each attempt under `bwrap`."""

    name = "bwrap"
    isolated = True

    def __init__(self, executable: str = "bwrap") -> None:
        self.executable = executable

    def problem(self, user: RunAs | None = None) -> str | None:
        return _probe(self.executable, user)

    def launch(self, argv: list[str], confinement: Confinement, scratch: Path) -> Launch:
        found = shutil.which(self.executable)
        user = confinement.user
        reason = self.problem(user)
        if found is None or reason is not None:
            raise SandboxUnavailable(reason or f"{self.executable}: not found")
        shutil.rmtree(scratch, ignore_errors=True)  # left by an attempt a crash ended
        scratch.parent.mkdir(parents=True, exist_ok=True)
        scratch.mkdir(mode=0o700)
        tmp = scratch / "tmp"
        tmp.mkdir(mode=0o700)
        if user is not None:  # bwrap runs as the user: its rooms are its own
            hand_over(scratch, user)
            for needed in (scratch, confinement.worktree):
                blocked = blocked_on_the_way(needed, user)
                if blocked is not None:
                    shutil.rmtree(scratch, ignore_errors=True)
                    raise SandboxUnavailable(
                        f"{user.describe()} cannot reach {needed}: {blocked} does not let it "
                        "pass (give its group or others search permission, chmod o+x)"
                    )
        args = [
            found,
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--new-session",
            "--die-with-parent",
            "--cap-drop",
            "ALL",
            "--hostname",
            "foundry-sandbox",
        ]
        if not confinement.network:
            args.append("--unshare-net")
        for path in SYSTEM:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        args += ["--proc", "/proc"]
        # The kernel's settings read-only: a block of a daemon running as root is the host's
        # root in its user namespace, and the kernel lets root write global settings such as
        # kernel.core_pattern (a program the kernel then runs as the host's root).
        for setting in PROC_READ_ONLY:
            args += ["--ro-bind-try", setting, setting]
        args += ["--dev", "/dev", "--bind", str(tmp), "/tmp"]  # noqa: S108
        for shown in _reachable(confinement.read_only, user):  # after /tmp: a path under the
            args += ["--ro-bind-try", str(shown), str(shown)]  # host's /tmp shows
        worktree = confinement.worktree
        args += ["--bind", str(worktree), str(worktree)]
        args += _git_dirs(worktree, scratch)
        # A hidden path that is a symbolic link is covered where it points too (a secrets
        # file linked from a directory the block cannot see to one under /etc).
        # A path the block's own user cannot reach needs no cover (and bubblewrap, running as
        # that user, could not put one there).
        for hidden in _reachable(
            dict.fromkeys(p for h in confinement.hidden for p in (h, Path(os.path.realpath(h)))),
            user,
        ):
            if hidden.is_dir():
                args += ["--tmpfs", str(hidden)]
            elif hidden.exists():
                args += ["--ro-bind", "/dev/null", str(hidden)]
        args += ["--chdir", str(confinement.cwd), "--"]
        try:
            launch = limited([*args, *argv], confinement.limits, user, contained=self.isolated)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        launch.scratch = scratch
        return launch


def _reachable(paths: Iterable[Path], user: RunAs | None) -> list[Path]:
    """Those of `paths` that `user` can reach (all of them when the engine's own user runs
    the block)."""
    return [p for p in paths if user is None or blocked_on_the_way(p, user) is None]


def _git_dirs(worktree: Path, scratch: Path) -> list[str]:
    """A linked worktree's `.git` is a file naming its git directory
    (`COMMON/worktrees/NAME`): both shown, the worktree's own read-write (its index), the
    common one read-only, so that `git` works in the worktree and nothing else of the host
    shows.

    The block may rewrite `.git` (it is in its worktree) and its git directory's files (they
    are shown read-write), so what they say is checked before anything is shown: the git
    directory must say it belongs to this worktree (its `gitdir` file names this `.git`), the
    common directory is its `worktrees` directory's parent (whatever its `commondir` file says
    now), and neither lies in, or above, what the block may write (its worktree, the engine's
    rooms for attempts). Anything else shows no git directory: `git` fails in the block, and
    nothing of the host is mounted."""
    gitdir = linked_git_dir(worktree)
    if gitdir is None:
        return []
    common = gitdir.parent.parent
    writable = (Path(os.path.realpath(worktree)), Path(os.path.realpath(scratch.parent)))
    for place in (gitdir, common):
        for room in writable:
            if place.is_relative_to(room) or room.is_relative_to(place):
                return []
    if not (common / "objects").is_dir() or not gitdir.is_dir():
        return []
    out = ["--ro-bind", str(common), str(common), "--bind", str(gitdir), str(gitdir)]
    # What the git directory says about where it belongs stays as the host made it: the
    # controller reads these to find and remove the worktree (a block that rewrote them could
    # have it remove something else of the state directory).
    for pointer in ("gitdir", "commondir", "config.worktree"):
        if small_file(gitdir / pointer) is not None:
            out += ["--ro-bind", str(gitdir / pointer), str(gitdir / pointer)]
    return out


@functools.cache
def _probe(executable: str, user: RunAs | None = None) -> str | None:
    """Why `bwrap` cannot make a sandbox here (as `user`, when given), found by making one
    (None: it can)."""
    found = shutil.which(executable)
    if found is None:
        return (
            f"bubblewrap ({executable}) is not installed: install it (Debian: apt-get install "
            "bubblewrap) or choose sandbox: none"
        )
    as_user: list[str] = []
    if user is not None:
        setpriv = shutil.which("setpriv", path=os.defpath + ":/usr/bin:/bin")
        if setpriv is None:
            return f"running blocks as {user.describe()} needs setpriv (util-linux)"
        as_user = [setpriv, *drop_to(user), "--"]
    try:
        proc = subprocess.run(
            [
                *as_user,
                found,
                "--unshare-user",
                "--unshare-pid",
                "--unshare-net",
                "--ro-bind",
                "/",
                "/",
                "--",
                "/bin/true",
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap ({found}) cannot start: {exc}"
    if proc.returncode != 0:
        said = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return (
            f"bubblewrap ({found}) cannot make a sandbox on this host"
            f"{f' as {user.describe()}' if user is not None else ''}: "
            f"{said[-1] if said else f'exit {proc.returncode}'} (unprivileged user namespaces "
            "may be off: sysctl kernel.unprivileged_userns_clone=1)"
        )
    return None
