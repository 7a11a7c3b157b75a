"""A remote repository as Foundry sees it: a bare mirror in the state directory, refreshed with
the git CLI through GitPython, read in batch, written with compare-and-swap pushes.

Everything that touches the remote goes through `Mirror`:
* `heads()` is the cheap "has it moved?" check: one `git ls-remote` for the few refs that matter
  (protocol v2 filters them on the server side);
* `fetch()` brings the moved refs into the mirror;
* `tree()` lists a subtree with one `git ls-tree`, and `blob()` reads objects through GitPython's
  persistent `git cat-file --batch` process (one process, not one per file);
* `commit()` writes a commit from a parent and changed files with a private index (plumbing
  only: the mirror has no work tree);
* `push()` updates remote refs atomically with `--force-with-lease=<ref>:<expected>`, which the
  receiving side checks under its ref lock: creation only if the ref does not exist, an update
  only if it still points where we think. That is the compare-and-swap claims and trace commits
  rely on.

Several reconcile processes of one host may share a mirror: operations that write into it hold
an exclusive `flock` on `<mirror>/alloy.lock`.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git

from foundry.errors import TemporaryError, UserError

ZERO = "0" * 40
_SHA = re.compile(r"^[0-9a-f]{40}$")
#: A symbolic HEAD naming a branch (what `git switch -c` leaves)
_BRANCH = re.compile(r"^ref: (refs/heads/[^\s]+)$")
#: Where, beside a mirror, the state directory keeps its worktrees (of executions, of the
#: policy command gates read)
WORKTREE_ROOMS = ("worktrees", "policy")
#: Who Foundry's commits (traces, claims, forge records) are by.
FOUNDRY_NAME = "Foundry"
FOUNDRY_EMAIL = "foundry@localhost"


class GitError(TemporaryError):
    """A git operation failed (the remote is unreachable, refuses us, or lacks a ref); not a
    rejected push, which callers handle. Retrying later may help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, delay=0.0)


@dataclass(frozen=True)
class PushResult:
    """What the remote said to one push: accepted, or rejected (someone else moved the ref)."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class Commit:
    """A commit on the default branch and the paths it changed (first-parent diff)."""

    sha: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """A first-parent commit, its first parent, and each changed path's new blob (None:
    deleted)."""

    sha: str
    parent: str | None
    blobs: Mapping[str, str | None]

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(self.blobs)


def remote_url(repo: str) -> str:
    """A remote as git understands it: URLs stay, a local path becomes an absolute path (and
    must exist)."""
    if "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo):
        return repo
    path = Path(repo).expanduser().resolve()
    if not path.is_dir():
        raise UserError(f"no repository at {repo}: pass a path to a git repository or a URL")
    return str(path)


#: How long one git command that talks to the remote may take (seconds; `FOUNDRY_GIT_TIMEOUT`
#: overrides): a remote that accepts the connection and never answers (a black-holed network)
#: would otherwise hold a pass, a claim's renewal or a block's start for good. The command is
#: killed and fails like a remote that is away (a push it cut short may have landed: the
#: callers already find that out by reading the remote).
NETWORK_TIMEOUT = 300.0


def _network() -> dict[str, Any]:
    try:
        seconds = float(os.environ.get("FOUNDRY_GIT_TIMEOUT") or NETWORK_TIMEOUT)
    except ValueError:
        seconds = NETWORK_TIMEOUT
    return {"kill_after_timeout": seconds if seconds > 0 else NETWORK_TIMEOUT}


def _git_env() -> dict[str, str]:
    return {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": FOUNDRY_NAME,
        "GIT_AUTHOR_EMAIL": FOUNDRY_EMAIL,
        "GIT_COMMITTER_NAME": FOUNDRY_NAME,
        "GIT_COMMITTER_EMAIL": FOUNDRY_EMAIL,
    }


class Mirror:
    """A bare mirror of one remote, under `path`."""

    def __init__(self, url: str, path: Path) -> None:
        self.url = url
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        with self.locked():
            if not (path / "HEAD").exists():
                git.Repo.init(path, bare=True)
        self.repo = git.Repo(path)
        self.repo.git.update_environment(**_git_env())
        self._lock = threading.RLock()

    def close(self) -> None:
        self.repo.close()

    # -- locking ------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the mirror among the processes of this host."""
        with (self.path / "alloy.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- reading the remote -------------------------------------------------------------

    def heads(self, refs: Sequence[str]) -> dict[str, str]:
        """The remote's value of each of `refs` that exists (one `git ls-remote`)."""
        try:
            out = str(self.repo.git.ls_remote(self.url, *refs, **_network()))
        except git.GitCommandError as exc:
            raise GitError(f"cannot reach {self.url}: {_stderr(exc)}") from None
        found: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref in refs:
                found[ref] = sha
        return found

    def refs_under(self, prefix: str) -> dict[str, str]:
        """Every remote ref under `prefix` (a path ending in `/`) and its value."""
        try:
            out = str(self.repo.git.ls_remote(self.url, f"{prefix}*", **_network()))
        except git.GitCommandError as exc:
            raise GitError(f"cannot reach {self.url}: {_stderr(exc)}") from None
        found: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref.startswith(prefix):
                found[ref] = sha
        return found

    def default_branch(self) -> str:
        """The branch the remote's HEAD names (`main` when it names none)."""
        try:
            out = str(self.repo.git.ls_remote("--symref", self.url, "HEAD", **_network()))
        except git.GitCommandError as exc:
            raise GitError(f"cannot reach {self.url}: {_stderr(exc)}") from None
        for line in out.splitlines():
            if line.startswith("ref: ") and line.endswith("\tHEAD"):
                return line[5:].split("\t")[0].removeprefix("refs/heads/")
        return "main"

    def fetch(self, refs: Sequence[str]) -> None:
        """Bring `refs` of the remote into the mirror under the same names (forced: the mirror
        follows the remote)."""
        if not refs:
            return
        specs = [f"+{ref}:{ref}" for ref in refs]
        with self._lock, self.locked():
            for attempt in (1, 2):
                try:
                    self.repo.git.fetch(
                        "--no-tags", "--no-write-fetch-head", "-q", self.url, *specs, **_network()
                    )
                except git.GitCommandError as exc:
                    # A worktree whose creation was killed half-way leaves a HEAD of nothing
                    # that every later fetch trips over: take it away and fetch again.
                    if attempt == 1 and "worktrees/" in str(exc.stderr) and self._drop_broken():
                        continue
                    raise GitError(f"cannot fetch from {self.url}: {_stderr(exc)}") from None
                return

    def rev(self, ref: str) -> str | None:
        """The mirror's value of `ref`, if it has it."""
        try:
            return str(self.repo.git.rev_parse("--verify", "-q", f"{ref}^{{commit}}"))
        except git.GitCommandError:
            return None

    def tree(self, rev: str, prefix: str) -> dict[str, str]:
        """Blob ids of the files under `prefix` (a directory, with a trailing slash) at `rev`."""
        return {
            path: sha
            for path, (mode, sha) in self.entries(rev, prefix).items()
            if mode in ("100644", "100755")
        }

    def entries(self, rev: str, prefix: str) -> dict[str, tuple[str, str]]:
        """Every entry under `prefix` at `rev` with its mode and object id: regular files,
        symbolic links (`120000`) and submodules (`160000`) alike."""
        out = self.repo.git.ls_tree("-r", "-z", "--full-tree", rev, "--", prefix.rstrip("/"))
        found: dict[str, tuple[str, str]] = {}
        for entry in out.split("\0"):
            if not entry:
                continue
            meta, _, path = entry.partition("\t")
            mode, _, sha = meta.split(" ")
            found[path] = (mode, sha)
        return found

    def blob_size(self, sha: str) -> int:
        """The size of one object, without reading it."""
        return int(str(self.repo.git.cat_file("-s", sha)).strip())

    def blob(self, sha: str) -> bytes:
        """One object's bytes, through the persistent `cat-file --batch` process."""
        with self._lock:
            _, _, _, data = self.repo.git.get_object_data(sha)
        return bytes(data)

    def commits(self, old: str | None, new: str, *, limit: int = 200) -> list[Commit]:
        """First-parent commits after `old` up to `new` (oldest first) with their changed paths;
        only `new` when `old` is unknown or not an ancestor."""
        if old == new:
            return []
        known = old is not None and self._is_ancestor(old, new)
        span = [f"{old}..{new}"] if known else ["-1", new]
        out = self.repo.git.log(
            "--first-parent",
            f"--max-count={limit}",
            "--format=%x00%H",
            "--name-only",
            "-m",
            "--no-renames",
            *span,
        )
        found = []
        for chunk in out.split("\0")[1:]:
            lines = [line for line in chunk.splitlines() if line]
            if lines:
                found.append(Commit(lines[0], tuple(lines[1:])))
        return list(reversed(found))

    def history(self, head: str, *, limit: int = 200) -> list[Change]:
        """The last `limit` first-parent commits up to `head` (oldest first), each with the
        blob every changed path has after it (None: deleted) — one `git log`."""
        out = self.repo.git.log(
            "--first-parent",
            "-m",
            "--root",
            "--raw",
            "--no-abbrev",
            "--no-renames",
            "-z",
            f"--max-count={limit}",
            "--format=%x01%H %P",
            head,
        )
        found = []
        for chunk in str(out).split("\x01")[1:]:
            header, _, rest = chunk.partition("\0")
            sha, _, parents = header.strip().partition(" ")
            fields = rest.lstrip("\n").split("\0")
            changes: dict[str, str | None] = {}
            for meta, path in zip(fields[::2], fields[1::2], strict=False):
                if not meta.startswith(":"):
                    continue
                parts = meta[1:].split(" ")
                blob = parts[3] if len(parts) >= 5 and parts[4] != "D" else None
                changes[path] = None if blob in (None, ZERO) else blob
            parent = parents.split(" ")[0] if parents.strip() else None
            found.append(Change(sha, parent, changes))
        return list(reversed(found))

    def _is_ancestor(self, old: str, new: str) -> bool:
        try:
            self.repo.git.merge_base("--is-ancestor", old, new)
        except git.GitCommandError:
            return False
        return True

    def commit_time(self, commit: str) -> float:
        """When `commit` was committed (0 when the mirror does not have it)."""
        try:
            return float(str(self.repo.git.log("-1", "--format=%ct", commit)).strip() or 0)
        except git.GitCommandError:
            return 0.0

    def last_change(self, rev: str, path: str) -> str:
        """The newest commit at or before `rev` that changed `path` (the commit an artifact
        came from)."""
        sha = str(self.repo.git.log("-1", "--format=%H", rev, "--", path)).strip()
        return sha or rev

    def authors(self, commit: str) -> tuple[str, ...]:
        """Who wrote `commit`: its author's name and e-mail address — and for a merge commit,
        also those of every commit it brought (the merged branch's authors wrote the change;
        the merge's author only merged it)."""
        parents = str(self.repo.git.rev_list("--parents", "-n1", commit)).split()[1:]
        span = [commit, "--not", parents[0]] if len(parents) > 1 else ["-1", commit]
        out = str(self.repo.git.log("--format=%an%x00%ae%x00", *span, "--"))
        return tuple(dict.fromkeys(part.strip() for part in out.split("\0") if part.strip()))

    def landed(self, rev: str, prefix: str) -> dict[str, list[tuple[float, str | None]]]:
        """For each path under `prefix`: the first-parent commits of `rev` that changed it,
        newest first, as (commit time, the blob it had after; None: deleted) — when each version
        landed on the branch `rev` is the tip of (a merge commit's time, not the time of the
        pull request's own commits). One `git log`."""
        out = str(
            self.repo.git.log(
                "--first-parent",
                "--diff-merges=first-parent",
                "--format=%x00%ct",
                "--raw",
                "--no-abbrev",
                "--no-renames",
                rev,
                "--",
                prefix,
            )
        )
        landed: dict[str, list[tuple[float, str | None]]] = {}
        for chunk in out.split("\0")[1:]:
            stamp, *rows = chunk.strip().splitlines()
            for row in rows:
                meta, tab, path = row.partition("\t")
                if not tab or not meta.startswith(":"):
                    continue
                blob = meta.split()[3]
                landed.setdefault(path, []).append(
                    (float(stamp), None if set(blob) == {"0"} else blob)
                )
        return landed

    # -- writing ------------------------------------------------------------------------

    def commit(
        self,
        parent: str | None,
        files: Mapping[str, bytes],
        message: str,
        *,
        remove: Sequence[str] = (),
    ) -> str:
        """A new commit: `parent`'s tree with `files` written (and `remove` removed)."""
        with self._lock, self.locked(), tempfile.TemporaryDirectory() as scratch:
            index = str(Path(scratch) / "index")
            env = {"GIT_INDEX_FILE": index}
            run = self.repo.git
            if parent is not None:
                run.read_tree(parent, env=env)
            else:
                run.read_tree("--empty", env=env)
            infos = []
            for path, data in sorted(files.items()):
                blob = Path(scratch) / "blob"
                blob.write_bytes(data)
                sha = str(run.hash_object("-w", "--", str(blob))).strip()
                infos.append(f"100644 {sha}\t{path}")
            infos.extend(f"0 {ZERO}\t{path}" for path in remove)
            if infos:
                listing = Path(scratch) / "index-info"
                listing.write_text("\n".join(infos) + "\n", encoding="utf-8")
                with listing.open("rb") as stdin:
                    run.update_index("--index-info", istream=stdin, env=env)
            tree = str(run.write_tree(env=env)).strip()
            args = [tree, "-m", message]
            if parent is not None:
                args += ["-p", parent]
            return str(run.commit_tree(*args)).strip()

    def tree_of(self, rev: str) -> str:
        return str(self.repo.git.rev_parse(f"{rev}^{{tree}}")).strip()

    def set_ref(self, ref: str, sha: str) -> None:
        with self._lock, self.locked():
            self.repo.git.update_ref(ref, sha)

    def push(self, updates: Sequence[tuple[str | None, str, str | None]]) -> PushResult:
        """Atomically set each remote `ref` to `new` (None deletes it) if it is still at
        `expected` (None: it must not exist). Rejected when anyone moved any of them."""
        args = ["--porcelain", "--atomic", "--no-verify"]
        specs = []
        for new, ref, expected in updates:
            args.append(f"--force-with-lease={ref}:{expected or ''}")
            specs.append(f"{new or ''}:{ref}")
        for attempt in (1, 2):
            try:
                out = self.repo.git.push(
                    *args, self.url, *specs, with_extended_output=False, **_network()
                )
            except git.GitCommandError as exc:
                text = f"{exc.stdout or ''}\n{exc.stderr or ''}"
                # The receiving side refused (not our lease): maybe a ref lock that a killed
                # writer left behind. On a remote of this machine, such a lock older than any
                # ref update takes is removed and the push tried once more.
                if (
                    "[remote rejected]" in text
                    and attempt == 1
                    and self._clear_stale_locks([ref for _, ref, _ in updates])
                ):
                    continue
                stuck = _STALE_LOCK.search(text)
                if stuck is not None:
                    raise GitError(
                        f"cannot push to {self.url}: the remote has a stale lock "
                        f"{stuck.group(1)} (a writer died while updating it); remove that file "
                        "on the remote"
                    ) from None
                if "[rejected]" in text or "stale info" in text or "[remote rejected]" in text:
                    return PushResult(ok=False, detail=_summary(text))
                raise GitError(f"cannot push to {self.url}: {_stderr(exc)}") from None
            return PushResult(ok=True, detail=_summary(str(out)))
        raise AssertionError("unreachable")

    def _clear_stale_locks(self, refs: Sequence[str]) -> bool:
        """Remove the lock files of `refs` (and of packed-refs) of a remote on this machine that
        are older than any ref update takes (`STALE_LOCK_SECONDS`); whether one was removed."""
        root = _local_path(self.url)
        if root is None:
            return False
        removed = False
        for name in [*refs, "packed-refs"]:
            path = root / f"{name}.lock"
            try:
                if time.time() - path.stat().st_mtime >= STALE_LOCK_SECONDS:
                    path.unlink()
                    removed = True
            except OSError:
                continue
        return removed

    # -- worktrees ----------------------------------------------------------------------

    def worktree_head(self, path: Path) -> str | None:
        """The commit the worktree of this mirror at `path` has checked out, if there is one,
        as its administrative entry in the mirror says (`worktree_entry`). No git runs in the
        worktree: its blocks wrote there, and may run as another user; a git directory of
        theirs could make git run what they like."""
        from foundry.sandbox import small_file

        entry = worktree_entry(self.path, path)
        head = (small_file(entry / "HEAD") or "").strip() if entry is not None else ""
        branch = _BRANCH.match(head)
        if branch is not None:  # a block switched its worktree to a branch: where it points
            try:
                head = str(self.repo.git.rev_parse("--verify", "-q", branch.group(1))).strip()
            except git.GitCommandError:
                return None
        return head if _SHA.match(head) and head != ZERO else None

    def _drop_broken(self) -> bool:
        """Remove the administrative entries of worktrees whose HEAD is not a commit id (their
        creation was killed); whether there were any. The caller holds the mirror's locks."""
        import shutil

        from foundry.sandbox import small_file

        admin = self.path / "worktrees"
        dropped = False
        for entry in sorted(admin.iterdir()) if admin.is_dir() else []:
            # Read as files that a block may have made FIFOs or links: never followed or waited on.
            head = (small_file(entry / "HEAD") or "").strip()
            if (_SHA.match(head) and head != ZERO) or _BRANCH.match(head):
                # A commit, or a branch a block switched to: a finished worktree (no git process
                # per worktree here); only an empty or zero HEAD is a creation that was killed.
                continue
            said = small_file(entry / "gitdir")
            if said is not None:
                # Only a worktree of our state: the entry may have been written by a block.
                tree = Path(said.strip()).parent.resolve()
                rooms = {(self.path.parent / r).resolve() for r in WORKTREE_ROOMS}
                if tree.parent in rooms:
                    shutil.rmtree(tree, ignore_errors=True)
            shutil.rmtree(entry, ignore_errors=True)
            dropped = True
        if dropped:
            self.repo.git.worktree("prune")
        return dropped

    def add_worktree(self, path: Path, commit: str) -> None:
        """A clean, detached worktree of `commit` at `path` (replacing a stale one)."""
        with self._lock, self.locked():
            self._drop_broken()
            if path.exists():
                self._remove_worktree(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.repo.git.worktree("prune")
            self.repo.git.worktree("add", "--detach", "-f", str(path), commit)

    def remove_worktree(self, path: Path) -> None:
        with self._lock, self.locked():
            self._remove_worktree(path)

    def _remove_worktree(self, path: Path) -> None:
        try:
            self.repo.git.worktree("remove", "--force", "--force", str(path))
        except git.GitCommandError:
            import shutil

            shutil.rmtree(path, ignore_errors=True)
            self.repo.git.worktree("prune")


def worktree_entry(mirror: Path, worktree: Path) -> Path | None:
    """The administrative entry of `mirror` for the worktree at `worktree`: the git directory
    its `.git` names and that names it back (`foundry.sandbox.linked_git_dir`), if it is one
    of the mirror's own entries. None otherwise (a block may have rewritten either file)."""
    from foundry.sandbox import linked_git_dir

    entry = linked_git_dir(worktree)
    if entry is None or entry.parent != Path(os.path.realpath(mirror / "worktrees")):
        return None
    return entry


#: git's words for a ref lock file that already exists (its writer died, or still writes).
_STALE_LOCK = re.compile(r"Unable to create '([^']+\.lock)': File exists")
#: A ref lock older than this is a dead writer's: git holds one for milliseconds.
STALE_LOCK_SECONDS = 30.0


def _local_path(url: str) -> Path | None:
    """The directory of a remote on this machine (`file://` or a path), else None."""
    if url.startswith("file://"):
        return Path(url.removeprefix("file://"))
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return None
    return Path(url)


def _stderr(exc: git.GitCommandError) -> str:
    """git's own words, whole (`controllers.git_reason`), else its exit status."""
    from controllers.git_reason import git_reason

    text = str(exc.stderr or "").strip().removeprefix("stderr: ").strip("'")
    return git_reason(text) or f"exit {exc.status}"


def _summary(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] in "!*=+- \t"]
    return "; ".join(lines)[:500]


def holder_id() -> str:
    """Who this process is, for claims: host, process id, and a random part."""
    import socket

    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
