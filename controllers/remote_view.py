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
import re
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from controllers.git import TreeFile, list_tree, read_blobs
from controllers.git_reason import git_reason

ZERO = "0" * 40
#: What is fetched: branches, and everything Foundry and the controllers keep under refs/alloy/.
REFSPECS = (
    "+refs/heads/*:refs/heads/*",
    "+refs/alloy/*:refs/alloy/*",
    # GitHub's pull request heads (a fork's branch is only there)
    "+refs/pull/*/head:refs/pull/*/head",
)
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
    """What git said went wrong, whole (`controllers.git.git_reason`: the cause and its fatal
    line, not the advice after it), without the leading `fatal:`."""
    text = git_reason(stderr.decode("utf-8", "replace"))
    for prefix in ("fatal:", "error:"):
        text = text.removeprefix(prefix).strip()
    return text or "failed"


def redact(url: str) -> str:
    """`url` with its user information (a password, or a token written as the user name)
    replaced by `***`: what pages, errors and logs show of a remote."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


def _scrub(text: str, url: str) -> str:
    """`text` (git's words) with `url`'s user information masked wherever it appears."""
    if "://" not in url:
        return text
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return text
    text = text.replace(url, redact(url))
    secret = parts.password
    if secret is None and parts.scheme in ("http", "https"):
        secret = parts.username  # https://TOKEN@host/...: the user name is the secret
    return text.replace(secret, "***") if secret else text


#: A rejected ref in `git push --porcelain`'s output: `!<TAB>src:dst<TAB>[rejected] (reason)`.
_REJECTED = re.compile(r"^!\t[^\t]*\t(?P<what>.*)$", re.M)


def _push_reason(stdout: bytes, stderr: bytes) -> str:
    """Why a push failed, in git's and the remote's words: the ref's status line (`[remote
    rejected] (pre-receive hook declined)`), then what the remote said (its hooks' `remote:`
    lines), else git's own fatal line."""
    said = [m.group("what").strip() for m in _REJECTED.finditer(stdout.decode("utf-8", "replace"))]
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("remote:"):
            text = line[len("remote:") :].strip()
            if text and text not in said:
                said.append(text)
    if said:
        return "; ".join(said)[:2000]
    return _reason(stderr)


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
        #: `url` as pages and messages show it (user information masked)
        self.display_url = redact(url)
        self.cache = cache
        self.refs: dict[str, str] = {}
        self.default_branch: str | None = None
        self._seen: dict[str, str] | None = None
        self._lock = threading.Lock()
        if not (cache / "HEAD").exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            _run(["init", "--quiet", "--bare", str(cache)])

    def _git(self, args: list[str]) -> bytes:
        """`git ARGS` in the cache; a failure's message never carries the URL's credentials."""
        try:
            return _run(args, cwd=self.cache)
        except RemoteError as exc:
            raise RemoteError(_scrub(str(exc), self.url)) from None

    def _ls_remote(self) -> tuple[dict[str, str], str | None]:
        out = self._git(["ls-remote", "--symref", self.url])
        refs: dict[str, str] = {}
        head: str | None = None
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            value, _, name = line.partition("\t")
            if value.startswith("ref: ") and name == "HEAD":
                head = value[len("ref: ") :].removeprefix("refs/heads/")
            elif name.startswith(("refs/heads/", "refs/alloy/")) or (
                name.startswith("refs/pull/") and name.endswith("/head")
            ):
                refs[name] = value
        return refs, head

    def refresh(self) -> bool:
        """Ask the remote for its refs; fetch when they moved. True when anything changed."""
        with self._lock:
            remote, head = self._ls_remote()
            if remote == self._seen and head == self.default_branch:
                return False
            if remote != self._seen:
                self._git(["fetch", "--quiet", "--prune", "--no-tags", self.url, *REFSPECS])
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

    def branch_dates(self) -> dict[str, int]:
        """Each fetched branch's commit time (seconds), by ref name: one `git for-each-ref`."""
        out = self._git(
            ["for-each-ref", "--format=%(committerdate:unix) %(refname)", "refs/heads/"]
        )
        dates = {}
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            stamp, _, name = line.partition(" ")
            if stamp.isdigit():
                dates[name] = int(stamp)
        return dates

    def tree(self, commit: str, prefix: str) -> list[TreeFile]:
        return list_tree(self.cache, commit, prefix)

    def blobs(
        self, shas: Iterable[str], cap: int, too_large: dict[str, int] | None = None
    ) -> dict[str, bytes]:
        wanted = set(shas)
        return (
            read_blobs(self.cache, wanted, cap, too_large if too_large is not None else {})
            if wanted
            else {}
        )

    def changes(self, old: str, new: str, prefix: str) -> list[tuple[str, str, str | None]] | None:
        """What changed under `prefix` from commit `old` to `new`: (path, new mode, new blob or
        None when removed), one `git diff-tree`; None when git cannot tell (say `old` is gone)."""
        try:
            out = _run(
                ["diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", old, new, "--", prefix],
                cwd=self.cache,
            )
        except RemoteError:
            return None
        fields = out.split(b"\0")
        changes: list[tuple[str, str, str | None]] = []
        for meta, raw in zip(fields[0::2], fields[1::2], strict=False):
            parts = meta.decode("ascii", "replace").lstrip(":").split()
            if len(parts) != 5:
                continue
            _, mode, _, sha, status = parts
            path = raw.decode("utf-8", "surrogateescape")
            changes.append((path, mode, None if status.startswith("D") else sha))
        return changes

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
        for path in [*files, *remove]:
            parts = path.split("/")
            if (
                not path
                or path.startswith("/")
                or any(c in path for c in "\n\r\t\0")
                or any(p in ("", ".", "..") for p in parts)
            ):
                raise ValueError(f"{path!r} is not a path inside the repository")
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
            where = f"cannot create branch {branch} on {self.display_url}"
            try:
                push = subprocess.run(
                    [
                        "git",
                        "push",
                        "--porcelain",
                        "--no-verify",
                        f"--force-with-lease={ref}:",
                        self.url,
                        f"{commit}:{ref}",
                    ],
                    cwd=self.cache,
                    capture_output=True,
                    check=False,
                    env=env,
                    timeout=_TIMEOUT,
                )
            except subprocess.TimeoutExpired:
                raise RemoteError(f"{where}: no answer in {_TIMEOUT:.0f}s") from None
            if push.returncode != 0:
                reason = _scrub(_push_reason(push.stdout, push.stderr), self.url)
                raise RemoteError(f"{where}: {reason}") from None
        return commit
