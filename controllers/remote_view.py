"""A remote read (and written only by new branches) through a bare cache of its own.

`alloy ui` shows repositories it does not own: a path or a URL, the same `--repo` that
`foundry reconcile` is given. Everything it shows lives on that remote — the default branch, the
traces branch, claims, forge records, lanes, other branches — so it keeps a bare cache, asks the
remote for its refs (`git ls-remote`, cheap) and fetches only when they moved.

This module is the adapter Alloy's web interface uses instead of `controllers.gitops`: it does
not import Foundry (Alloy and Foundry never import each other, not even through controllers).
Its only write is a new branch: a commit made from plumbing (nothing is checked out, nothing
from the remote is run) pushed with a lease that requires the branch not to exist.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from controllers.git import TreeFile, list_tree, read_blobs

ZERO = "0" * 40
#: What is fetched: branches, and everything Foundry and the controllers keep under refs/alloy/.
REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/alloy/*:refs/alloy/*")
_TIMEOUT = 60.0


class RemoteError(RuntimeError):
    """The remote cannot be read or written; the message says which and why."""


@dataclass(frozen=True)
class LogEntry:
    commit: str
    author: str
    email: str
    #: committer time, RFC 3339
    at: str
    subject: str
    parents: tuple[str, ...]
    #: paths the commit changed against its first parent (only when asked for)
    paths: tuple[str, ...] = ()


def _environment() -> dict[str, str]:
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def _run(args: list[str], *, cwd: Path | None = None, data: bytes | None = None) -> bytes:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=data,
            capture_output=True,
            check=False,
            env=_environment(),
            timeout=_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise RemoteError(f"git {args[0]}: no answer in {_TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        raise RemoteError(f"git {args[0]}: {_reason(proc.stderr)}")
    return proc.stdout


def _reason(stderr: bytes) -> str:
    """What git said went wrong: its first `fatal:`/`error:` line (the lines after it are
    advice, like "Please make sure you have the correct access rights ..."), else its last."""
    lines = [
        line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()
    ]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line.split(":", 1)[1].strip()
    return lines[-1] if lines else "failed"


def cache_name(url: str) -> str:
    """The cache directory's name for `url`: readable, and unique by a hash of the URL."""
    tail = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "repo"
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in tail)[:40]
    return f"{safe}-{hashlib.sha256(url.encode()).hexdigest()[:12]}.git"


class RemoteView:
    """One remote, read through the bare cache at `cache`. `refresh()` brings the cache up to
    date (a fetch only when `ls-remote` shows a change); `refs` is what was fetched last."""

    def __init__(self, url: str, cache: Path) -> None:
        self.url = url
        self.cache = cache
        self.refs: dict[str, str] = {}
        self.default_branch: str | None = None
        self._seen: dict[str, str] | None = None
        self._lock = threading.Lock()
        if not (cache / "HEAD").exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            _run(["init", "--quiet", "--bare", str(cache)])

    def _ls_remote(self) -> tuple[dict[str, str], str | None]:
        out = _run(["ls-remote", "--symref", self.url], cwd=self.cache)
        refs: dict[str, str] = {}
        head: str | None = None
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            value, _, name = line.partition("\t")
            if value.startswith("ref: ") and name == "HEAD":
                head = value[len("ref: ") :].removeprefix("refs/heads/")
            elif name.startswith(("refs/heads/", "refs/alloy/")):
                refs[name] = value
        return refs, head

    def refresh(self) -> bool:
        """Ask the remote for its refs; fetch when they moved. True when anything changed."""
        with self._lock:
            remote, head = self._ls_remote()
            if remote == self._seen and head == self.default_branch:
                return False
            if remote != self._seen:
                _run(
                    ["fetch", "--quiet", "--prune", "--no-tags", self.url, *REFSPECS],
                    cwd=self.cache,
                )
                self.refs = self._local_refs()
                self._seen = remote
            self.default_branch = head
            return True

    def _local_refs(self) -> dict[str, str]:
        out = _run(["for-each-ref", "--format=%(objectname) %(refname)"], cwd=self.cache)
        refs = {}
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            sha, _, name = line.partition(" ")
            refs[name] = sha
        return refs

    def tree(self, commit: str, prefix: str) -> list[TreeFile]:
        return list_tree(self.cache, commit, prefix)

    def blobs(self, shas: Iterable[str], cap: int) -> dict[str, bytes]:
        wanted = set(shas)
        return read_blobs(self.cache, wanted, cap, {}) if wanted else {}

    def named(self, names: Iterable[str], cap: int) -> dict[str, bytes]:
        """The content of each object named `<commit>:<path>` that exists (one look-up of all
        names, then one batch read)."""
        wanted = sorted({n for n in names if "\n" not in n})
        if not wanted:
            return {}
        out = _run(
            ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
            cwd=self.cache,
            data="".join(f"{n}\n" for n in wanted).encode("utf-8", "surrogateescape"),
        )
        shas: dict[str, str] = {}
        for name, line in zip(wanted, out.decode("ascii", "replace").splitlines(), strict=False):
            sha, _, kind = line.partition(" ")
            if kind == "blob":
                shas[name] = sha
        blobs = read_blobs(self.cache, set(shas.values()), cap, {}) if shas else {}
        return {name: blobs[sha] for name, sha in shas.items() if sha in blobs}

    def log(
        self,
        rev: str,
        paths: Iterable[str] = (),
        *,
        limit: int = 100,
        names: bool = False,
    ) -> list[LogEntry]:
        """First-parent commits reachable from `rev` (newest first) that touch `paths` (any
        when empty); with `names`, the paths each changed."""
        args = [
            "log",
            f"--max-count={limit}",
            "--first-parent",
            "--format=%x1e%H%x00%an%x00%ae%x00%cI%x00%P%x00%s",
        ]
        if names:
            args += ["--name-only", "-m", "-z"]
        out = _run([*args, rev, "--", *paths], cwd=self.cache)
        entries = []
        for record in out.decode("utf-8", "replace").split("\x1e")[1:]:
            head, _, rest = record.partition("\n")
            fields = head.split("\x00")
            if len(fields) < 6:
                continue
            sha, author, email, at, parents, subject = fields[:6]
            changed = [p for p in (fields[6:] + rest.split("\x00")) if p.strip("\n")]
            entries.append(
                LogEntry(
                    sha,
                    author,
                    email,
                    at,
                    subject,
                    tuple(parents.split()),
                    tuple(p.strip("\n") for p in changed),
                )
            )
        return entries

    def file_at(self, commit: str, path: str) -> bytes | None:
        try:
            return _run(["cat-file", "blob", f"{commit}:{path}"], cwd=self.cache)
        except RemoteError:
            return None

    def new_branch(
        self,
        branch: str,
        parent: str,
        files: Mapping[str, bytes],
        message: str,
        *,
        author: tuple[str, str],
        remove: Iterable[str] = (),
    ) -> str:
        """Commit `files` (and `remove` removed) on top of `parent` and push it as the new
        branch `branch` (refused when the branch exists). Returns the commit id."""
        name, email = author
        env = {
            **_environment(),
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        with self._lock, tempfile.TemporaryDirectory() as scratch:
            env["GIT_INDEX_FILE"] = str(Path(scratch) / "index")

            def git(*args: str, data: bytes | None = None) -> str:
                proc = subprocess.run(
                    ["git", *args],
                    cwd=self.cache,
                    input=data,
                    capture_output=True,
                    check=False,
                    env=env,
                    timeout=_TIMEOUT,
                )
                if proc.returncode != 0:
                    raise RemoteError(f"git {args[0]}: {_reason(proc.stderr)}")
                return proc.stdout.decode("utf-8", "surrogateescape").strip()

            git("read-tree", parent)
            infos = []
            for path, data in sorted(files.items()):
                sha = git("hash-object", "-w", "--stdin", data=data)
                infos.append(f"100644 {sha}\t{path}")
            infos.extend(f"0 {ZERO}\t{path}" for path in remove)
            git("update-index", "--index-info", data=("\n".join(infos) + "\n").encode())
            tree = git("write-tree")
            commit = git("commit-tree", tree, "-p", parent, "-m", message)
            ref = f"refs/heads/{branch}"
            try:
                git(
                    "push",
                    "--porcelain",
                    "--no-verify",
                    f"--force-with-lease={ref}:",
                    self.url,
                    f"{commit}:{ref}",
                )
            except RemoteError as exc:
                raise RemoteError(f"cannot create branch {branch} on {self.url}: {exc}") from None
        return commit
