"""A repository's own OS user: an engine running as root runs that repository's blocks as
another user, so that what the kernel's permissions keep from that user (root's files, other
repositories' worktrees and state, the daemon's configuration and secrets files) no block of the
repository can read, under any sandbox.

The drop happens in the attempt's command line (`setpriv`, after it joined its cgroups and
before its resource limits and its sandbox), so nothing of the attempt ever runs as root. What
the user must reach is handed over: its worktree and git directory become its own, its rooms
(the sandbox's private `/tmp`) too, and the directories on the way to them let its group pass
(search only: it cannot list them)."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunAs:
    """The user (and group) a block runs as."""

    uid: int
    gid: int
    #: how the configuration named it (a name, or `UID[:GID]`)
    name: str = ""

    def describe(self) -> str:
        return self.name or f"{self.uid}:{self.gid}"


def drop_to(user: RunAs) -> list[str]:
    """`setpriv`'s options that make the rest of the command line `user`: its UID and GID, no
    supplementary group, no capability (inheritable, or ever again: the bounding set is
    emptied), and no privilege from a set-user-ID program (`no_new_privs`): a block cannot
    become root again through `su`, `mount` or a program of its own."""
    return [
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
    ]


def run_as_named(text: str) -> RunAs:
    """`NAME`, `UID` or `UID:GID` as a user (a name is looked up; its group is its primary
    one); ValueError saying what is wrong. Root is refused: running blocks as root is what
    leaving the user out does."""
    user, _, group = text.partition(":")
    if not user:
        raise ValueError(f"{text!r} names no user: write a user name, UID or UID:GID")
    try:
        if user.isdigit():
            uid = int(user)
            try:
                gid = pwd.getpwuid(uid).pw_gid
            except KeyError:
                gid = uid  # a user with no entry of its own: its group of the same number
        else:
            entry = pwd.getpwnam(user)
            uid, gid = entry.pw_uid, entry.pw_gid
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(
            f"{text!r}: no such user or group on this host (create it, or give UID:GID)"
        ) from None
    if uid == 0 or gid == 0:
        raise ValueError(
            f"{text!r} is root: a block of a repository with a user of its own never runs as "
            "root (leave `user` out to run blocks as the daemon's user)"
        )
    if uid > 0xFFFF_FFFE or gid > 0xFFFF_FFFE:
        raise ValueError(f"{text!r}: IDs go up to 4294967294")
    return RunAs(uid, gid, text)


def blocked_on_the_way(path: Path, user: RunAs) -> Path | None:
    """The first directory on the way to `path` (from `/`) that `user` may not pass through
    (no search permission for it), or None: it can reach `path`. Judged from the modes and
    owners, as the kernel would for that user with no supplementary groups. A directory with
    an access control list may let the user pass whatever its mode says: it counts as passable
    (what is hidden from the user is then covered, never left open on a guess)."""
    for directory in reversed(path.absolute().parents):  # `/` first, `path`'s parent last
        try:
            info = directory.stat()
        except OSError:
            return directory
        if not _may_search(info, user) and not _has_acl(directory):
            return directory
    return None


def _has_acl(directory: Path) -> bool:
    try:
        return "system.posix_acl_access" in os.listxattr(directory)
    except OSError:
        return False


def _may_search(info: os.stat_result, user: RunAs) -> bool:
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == user.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def let_pass(path: Path, base: Path, user: RunAs) -> None:
    """Let `user`'s group search every directory from `base` (included) down to `path`'s
    parent, which the engine made: they become of its group, searchable (not listable) by it.
    `base` is the repository's own state directory: nothing above it is changed. Each directory
    below `base` is reached through the one above it without following a link (one of them
    may be the user's, and a process of the user may rename it or put a link in its place
    meanwhile: nothing outside is ever changed)."""
    base = base.absolute()
    target = path.absolute()
    if not target.parent.is_relative_to(base):
        return
    below = target.parent.relative_to(base).parts
    if ".." in below:
        raise ValueError(f"{path}: not a plain path below {base}")
    me = os.geteuid()
    directory = base
    fd = _open_exactly(os.path.realpath(base))
    try:
        for name in (None, *below):
            if name is not None:
                directory = directory / name
                fd = _step(fd, name, f"{directory}: not a directory")
            info = os.fstat(fd)
            if info.st_gid != user.gid and info.st_uid == me:
                os.fchown(fd, -1, user.gid)
            mode = stat.S_IMODE(info.st_mode)
            if not mode & stat.S_IXGRP:
                os.fchmod(fd, mode | stat.S_IXGRP)
    finally:
        os.close(fd)


def hand_over(path: Path, user: RunAs) -> None:
    """Make `path` and what is below it `user`'s: what the engine's user owns there (a fresh
    checkout), never what has another owner already (what the user wrote before a resume) and
    never a file with more than one name (a hard link the user made to a file of the host would
    hand the host's file over). Links are changed themselves, never what they point to, and
    nothing on another file system is entered.

    `path` is found as its directory's real path says (followed one component at a time, never
    through a link put there since); everything below it is reached through the directory it
    was listed in, opened without following links, and changed through a descriptor of its
    own. A process of the user that renames a directory of the tree or puts a link in its place
    while this runs (one left running by an earlier attempt, a block of another execution)
    never makes it change anything outside `path`."""
    me = os.geteuid()
    parent = _open_exactly(os.path.realpath(path.absolute().parent))
    try:
        device = os.stat(path.name, dir_fd=parent, follow_symlinks=False).st_dev
        _hand_over_entry(parent, path.name, user, me, device)
    finally:
        os.close(parent)


#: A directory, opened to be listed and changed, never through a link.
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Anything else (a file, a link itself, a FIFO), opened only to be looked at and changed.
_ENTRY = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _step(fd: int, name: str, refusal: str) -> int:
    """The directory `name` in the directory `fd`, opened without following a link (`fd` is
    closed once it is); NotADirectoryError saying `refusal` when `name` is a link or no
    directory."""
    try:
        step = os.open(name, _DIRECTORY, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            raise NotADirectoryError(refusal) from None
        raise
    os.close(fd)
    return step


def _open_exactly(real: str) -> int:
    """A descriptor of the directory at `real` (an absolute path with no link in it), reached
    from `/` one component at a time without following links: a link put on the way since the
    path was resolved is refused (NotADirectoryError), never followed."""
    fd = os.open("/", _DIRECTORY)
    try:
        for name in Path(real).parts[1:]:
            fd = _step(fd, name, f"{real}: {name} is not a directory")
    except BaseException:
        os.close(fd)
        raise
    return fd


#: How deep a tree is handed over (one descriptor is held per level): what lies deeper (a
#: tree a block made to exhaust the engine) stays the engine's.
MAX_DEPTH = 256


def _hand_over_entry(
    parent: int, name: str, user: RunAs, me: int, device: int, *, depth: int = 0
) -> None:
    try:
        fd = os.open(name, _DIRECTORY, dir_fd=parent)
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
            raise
        _hand_over_leaf(parent, name, user, me, device)  # not a directory (or gone)
        return
    try:
        info = os.fstat(fd)
        if info.st_dev != device:
            return  # a file system mounted there: not entered
        if info.st_uid == me:
            os.fchown(fd, user.uid, user.gid)
        if depth >= MAX_DEPTH:
            return
        for child in os.listdir(fd):
            _hand_over_entry(fd, child, user, me, device, depth=depth + 1)
    finally:
        os.close(fd)


def _hand_over_leaf(parent: int, name: str, user: RunAs, me: int, device: int) -> None:
    try:
        fd = os.open(name, _ENTRY, dir_fd=parent)
    except FileNotFoundError:
        return
    try:
        info = os.fstat(fd)
        if info.st_uid != me or info.st_dev != device or stat.S_ISDIR(info.st_mode):
            return
        if info.st_nlink > 1:
            return
        # Through the descriptor's own name: exactly the file looked at (a link itself, never
        # what it points to), whatever was renamed or put in its place since.
        os.chown(f"/proc/self/fd/{fd}", user.uid, user.gid)
    finally:
        os.close(fd)
