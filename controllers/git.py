"""Git access through GitPython (the git CLI underneath)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import git

_FALLBACK = git.Actor("Alloy", "alloy@localhost")


def _actor(repo: git.Repo, kind: str) -> git.Actor:
    env_name = os.environ.get(f"GIT_{kind}_NAME")
    env_mail = os.environ.get(f"GIT_{kind}_EMAIL")
    if env_name and env_mail:
        return git.Actor(env_name, env_mail)
    reader = repo.config_reader()
    name = reader.get_value("user", "name", default="")
    mail = reader.get_value("user", "email", default="")
    if name and mail:
        return git.Actor(str(name), str(mail))
    return _FALLBACK


def init_repository(path: Path, branch: str = "main") -> git.Repo:
    """A new repository at `path` whose first branch is `branch`."""
    path.mkdir(parents=True, exist_ok=True)
    return git.Repo.init(path, initial_branch=branch)


def is_repository(path: Path) -> bool:
    try:
        git.Repo(path, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return False
    return True


def commit_all(path: Path, message: str) -> str:
    """Stage every change under `path` and commit it; return the new commit's id."""
    repo = git.Repo(path)
    repo.git.add(A=True)
    commit = repo.index.commit(
        message, author=_actor(repo, "AUTHOR"), committer=_actor(repo, "COMMITTER")
    )
    return commit.hexsha


def _open(path: Path) -> git.Repo | None:
    """The repository that holds `path` (it may be a subdirectory), or None outside of one."""
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def inside_repository(path: Path) -> bool:
    """Whether `path` is in the work tree of a git repository (at its top or below)."""
    repo = _open(path)
    if repo is None:
        return False
    repo.close()
    return True


def config_value(repo_path: Path, key: str) -> str | None:
    """`git config --get KEY` as git itself resolves it for the repository at `repo_path`
    (repository, global and system files, and `GIT_CONFIG_*`), or None when it is unset."""
    repo = _open(repo_path)
    try:
        if repo is None:
            out = git.Git(str(repo_path)).config("--get", key)
        else:
            out = repo.git.config("--get", key)
    except git.GitCommandError:  # exit 1: unset
        return None
    finally:
        if repo is not None:
            repo.close()
    value = str(out).strip()
    return value or None


def resolve_commit(repo_path: Path, revs: Sequence[str]) -> tuple[str, str] | None:
    """The first of `revs` that names a commit in the repository at `repo_path`, with that
    commit's id; None when none does or `repo_path` is not inside a git repository."""
    repo = _open(repo_path)
    if repo is None:
        return None
    try:
        for rev in revs:
            try:
                sha = repo.git.rev_parse(
                    "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
                )
            except git.GitCommandError:
                continue
            return rev, str(sha).strip()
        return None
    finally:
        repo.close()


def read_tree_files(repo_path: Path, rev: str, prefix: str) -> dict[str, bytes]:
    """Every regular file under `prefix` (like `traces/`) in the tree of commit `rev`, as
    `{path: bytes}` with paths from the top of the repository.

    One `git ls-tree -r -z` lists the tree and one `git cat-file --batch` process (GitPython's
    persistent one) reads every blob, so reading a thousand traces starts two processes, not a
    thousand. Symbolic links and submodules are left out.
    """
    repo = _open(repo_path)
    if repo is None:
        raise ValueError(f"{repo_path} is not inside a git repository")
    try:
        listing = repo.git.ls_tree(
            "-r", "-z", "--full-tree", rev, "--", prefix, stdout_as_string=False
        )
        assert isinstance(listing, bytes)
        blobs: list[tuple[str, str]] = []
        for record in listing.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, sha = meta.decode("ascii").split(" ")
            if kind != "blob" or mode not in ("100644", "100755"):
                continue
            blobs.append((raw_path.decode("utf-8", "surrogateescape"), sha))
        files: dict[str, bytes] = {}
        for path, sha in blobs:
            _, _, _, data = repo.git.get_object_data(sha)
            files[path] = data
        return files
    finally:
        repo.close()


# --- reading two trees for `alloy review` ------------------------------------------------------
#
# Plain `git` processes, not GitPython objects: a review of 10,000 intents reads two trees of
# about 18,000 files each, and one `ls-tree` plus one `cat-file --batch` fed by a writer thread
# reads them in a fraction of a second (GitPython's object access is several times slower).
# Nothing here checks a tree out or runs anything from it: trees are listed and blobs read as
# bytes.


class RevisionError(ValueError):
    """A revision that does not name a commit, or a git command that failed on one."""


@dataclass(frozen=True)
class TreeFile:
    """One entry of a listed tree or of the index: a path and what it is."""

    path: str
    #: `100644` / `100755` (file), `120000` (symbolic link), `160000` (submodule)
    mode: str
    sha: str

    @property
    def regular(self) -> bool:
        return self.mode in ("100644", "100755")


def _git(repo_path: Path, *args: str, what: str = "") -> bytes:
    proc = subprocess.run(
        ["git", "-C", str(repo_path), *args],
        capture_output=True,
        check=False,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RevisionError(f"{what or 'git ' + args[0]}: {detail[-1] if detail else 'failed'}")
    return proc.stdout


def toplevel(path: Path) -> Path | None:
    """The top of the work tree that holds `path`, or None outside of a git repository."""
    try:
        out = _git(path, "rev-parse", "--show-toplevel")
    except (RevisionError, OSError):
        return None
    text = out.decode("utf-8", "surrogateescape").strip()
    return Path(text) if text else None


def resolve_commits(repo_path: Path, revs: Sequence[str]) -> list[str | None]:
    """The commit id each of `revs` names (tags peeled), or None where it names none: one
    `git cat-file --batch-check` for all of them, which reads each line as an object name (a
    name that looks like an option is just a name that does not exist)."""
    if not revs:
        return []
    names = [rev if "\n" not in rev and rev else "\0" for rev in revs]
    proc = subprocess.run(
        ["git", "-C", str(repo_path), "cat-file", "--batch-check=%(objectname) %(objecttype)"],
        input="".join(f"{name}^{{commit}}\n" for name in names).encode("utf-8", "surrogateescape"),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RevisionError(f"git cat-file: {detail[-1] if detail else 'failed'}")
    lines = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
    out: list[str | None] = []
    for line in lines[: len(revs)]:
        sha, _, kind = line.rpartition(" ")
        out.append(sha if kind == "commit" and len(sha) in (40, 64) else None)
    return out + [None] * (len(revs) - len(out))


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def list_tree(repo_path: Path, commit: str, prefix: str) -> list[TreeFile]:
    """Every entry under `prefix` (a directory, like `.alloy`) in the tree of `commit`,
    recursively; symbolic links and submodules included (with their mode). Sizes are not
    listed (`-l` costs git a lookup of every object): `read_blobs` drains what is too large."""
    out = _git(repo_path, "ls-tree", "-r", "-z", "--full-tree", commit, "--", prefix)
    files = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, _, sha = meta.decode("ascii").split()
        files.append(TreeFile(_decode(raw_path), mode, sha))
    return files


def list_index(repo_path: Path, prefix: str) -> list[TreeFile]:
    """Every entry under `prefix` in the index (what `git commit` would commit): the staged
    state for a pre-commit hook. A path with unresolved conflicts is listed once, at its
    "ours" stage."""
    out = _git(repo_path, "ls-files", "-s", "-z", "--", prefix, what="git ls-files")
    seen: dict[str, TreeFile] = {}
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, sha, stage = meta.decode("ascii").split()
        path = _decode(raw_path)
        if stage in ("0", "2") or path not in seen:
            seen[path] = TreeFile(path, mode, sha)
    return [seen[p] for p in sorted(seen)]


class _BatchReader:
    """Objects out of `git cat-file --batch`, read in chunks of a megabyte: one system call per
    megabyte rather than two per object, which is most of the cost for thousands of small
    documents."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.pos = 0

    def _fill(self) -> None:
        if self.pos == len(self.buf):
            self.buf.clear()
            self.pos = 0
        elif self.pos > 1 << 22:
            del self.buf[: self.pos]
            self.pos = 0
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def line(self) -> bytes:
        while (end := self.buf.find(b"\n", self.pos)) < 0:
            self._fill()
        out = bytes(self.buf[self.pos : end])
        self.pos = end + 1
        return out

    def take(self, size: int) -> bytes:
        while len(self.buf) - self.pos < size:
            self._fill()
        out = bytes(self.buf[self.pos : self.pos + size])
        self.pos += size
        return out

    def skip(self, size: int) -> None:
        while size:
            if self.pos == len(self.buf):
                self._fill()
            step = min(size, len(self.buf) - self.pos)
            self.pos += step
            size -= step


def read_blobs(
    repo_path: Path,
    shas: Iterable[str],
    max_bytes: int,
    too_large: dict[str, int] | None = None,
    *,
    processes: int = 1,
) -> dict[str, bytes]:
    """The content of each blob, read by `git cat-file --batch` fed from a thread: one process,
    or `processes` of them on shares of the blobs (inflating thousands of delta-compressed
    blobs is git's CPU time; a second core halves it). Blobs larger than `max_bytes` are left
    out (their bytes drained, never kept; their sizes go to `too_large`), and so are objects
    that do not exist."""
    wanted = sorted(set(shas))
    shares = max(1, min(processes, len(wanted) // 1000))
    if shares == 1:
        return _read_batch(repo_path, wanted, max_bytes, too_large)
    parts = [wanted[i::shares] for i in range(shares)]
    results: list[dict[str, bytes] | BaseException] = [{}] * shares

    def work(i: int) -> None:
        try:
            results[i] = _read_batch(repo_path, parts[i], max_bytes, too_large)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(1, shares)]
    for thread in threads:
        thread.start()
    work(0)
    for thread in threads:
        thread.join()
    blobs: dict[str, bytes] = {}
    for result in results:
        if isinstance(result, BaseException):
            raise result
        blobs.update(result)
    return blobs


def _read_batch(
    repo_path: Path, wanted: list[str], max_bytes: int, too_large: dict[str, int] | None
) -> dict[str, bytes]:
    if not wanted:
        return {}
    proc = subprocess.Popen(
        ["git", "-C", str(repo_path), "cat-file", "--batch", "--buffer"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None

    def feed(stdin: IO[bytes]) -> None:
        with contextlib.suppress(BrokenPipeError):
            stdin.write("".join(f"{sha}\n" for sha in wanted).encode("ascii"))
        with contextlib.suppress(BrokenPipeError):
            stdin.close()

    writer = threading.Thread(target=feed, args=(proc.stdin,), daemon=True)
    writer.start()
    blobs: dict[str, bytes] = {}
    reader = _BatchReader(proc.stdout.fileno())
    try:
        for sha in wanted:
            try:
                header = reader.line().split()
            except EOFError:
                raise RevisionError(f"git cat-file stopped before object {sha}") from None
            if len(header) != 3:  # "<sha> missing"
                continue
            size = int(header[2])
            if size > max_bytes:
                reader.skip(size + 1)
                if too_large is not None:
                    too_large[header[0].decode("ascii")] = size
                continue
            blobs[header[0].decode("ascii")] = reader.take(size)
            reader.skip(1)  # the newline after each object
    except BaseException:
        proc.kill()  # else the writer could wait forever on a full pipe
        raise
    finally:
        writer.join()
        proc.stdout.close()
        proc.wait()
    return blobs


def changed_paths(repo_path: Path, base: str, head: str | None) -> list[str]:
    """Paths that differ between the merge base of `base` and `head` and `head` (what a pull
    request or push of `head` into `base` changes), as `git diff base...head` says; `head` None
    is the index (staged changes) against the merge base of `base` and HEAD. Both sides of a
    rename are listed. Without a merge base (unrelated histories), against `base` itself."""
    args = ["diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", "--no-textconv"]
    try:
        if head is None:
            out = _git(repo_path, *args, "--cached", "--merge-base", base, what="git diff")
        else:
            out = _git(repo_path, *args, f"{base}...{head}", "--", what="git diff")
    except RevisionError:
        if head is None:
            out = _git(repo_path, *args, "--cached", base, what="git diff --cached")
        else:
            out = _git(repo_path, *args, base, head, "--", what="git diff")
    return sorted({_decode(p) for p in out.split(b"\0") if p})


def tree_names(repo_path: Path, commit: str, prefix: str) -> list[str]:
    """The paths of the files under `prefix` in the tree of `commit` (no blob is read)."""
    out = _git(repo_path, "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit, "--", prefix)
    return [_decode(p) for p in out.split(b"\0") if p]


def default_branch_commit(repo_path: Path) -> tuple[str, str] | None:
    """The default branch of `repo_path`'s `origin` as this clone last saw it
    (`refs/remotes/origin/HEAD`): its name and commit, or None when the clone has none."""
    try:
        name = _git(repo_path, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD").decode()
        sha = _git(repo_path, "rev-parse", "--verify", "--quiet", "refs/remotes/origin/HEAD")
    except (RevisionError, OSError):
        return None
    return name.strip().removeprefix("refs/remotes/"), sha.decode().strip()


def export_tree(repo_path: Path, commit: str, dest: Path) -> None:
    """The files of `commit` written to the empty directory `dest` (`git archive`: modes kept,
    nothing of the repository changed — no worktree, no index)."""
    import io
    import tarfile

    data = _git(repo_path, "archive", "--format=tar", commit, what=f"export {commit[:12]}")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(dest, filter="data")


def fetched_at(repo_path: Path, ref: str) -> float | None:
    """When the remote-tracking `ref` was last updated by a fetch (its reflog; else the time of
    the last fetch of anything, `FETCH_HEAD`); None when unknown."""
    try:
        out = _git(repo_path, "reflog", "show", "-1", "--format=%gd", "--date=unix", ref)
        stamp = out.decode().strip().rsplit("@{", 1)[-1].rstrip("}")
        return float(stamp)
    except (RevisionError, OSError, ValueError):
        pass
    try:
        git_dir = _git(repo_path, "rev-parse", "--absolute-git-dir").decode().strip()
        return (Path(git_dir) / "FETCH_HEAD").stat().st_mtime
    except (RevisionError, OSError):
        return None


def fetch_branch(repo_path: Path, remote: str, branch: str) -> None:
    """Bring `branch` of `remote` into its remote-tracking ref (`refs/remotes/<remote>/<b>`)."""
    _git(
        repo_path,
        "fetch",
        "-q",
        "--no-tags",
        remote,
        f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}",
        what=f"git fetch {remote} {branch}",
    )
