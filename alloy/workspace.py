"""The work tree side of the Alloy library: find the repository, read `.alloy/` into a snapshot,
keep the parse cache, and write artifacts. The CLI is a thin shell over these functions.

Nothing here is written unless every document is valid; artifacts are replaced atomically.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import getpass
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from alloy._version import COMPILER, __version__
from alloy.compile import document_digest, pretty_bytes
from alloy.errors import InvalidDocuments, NotFound, StaleArtifacts, UserError
from alloy.load import (
    PROJECT_PATH,
    DocResult,
    Entry,
    FileNode,
    Repository,
    anchored,
    load_repository,
    reload_intent,
    resolve_link,
)
from alloy.load import _files as files
from alloy.load._errors import suggest
from alloy.load._files import Kind
from alloy.load._parallel import fork_map, shares_for
from alloy.model import Intent

ALLOY_DIR = ".alloy"
ARTIFACTS_DIR = ".alloy/artifacts"
#: Hard cap on what is read at all; the project policy's (lower) limit is applied by the loader.
READ_CAP = 64 * 1024 * 1024
_CACHE_VERSION = 1


def find_root(start: Path | None = None) -> Path:
    """The nearest directory at or above `start` that holds `.alloy/`."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ALLOY_DIR).is_dir():
            return candidate
    raise NotFound(
        f"no {ALLOY_DIR}/ directory in {here.name or here} or above; run `alloy init` first"
    )


@dataclass
class Snapshot:
    """The files of `.alloy/` (documents read, artifacts only listed)."""

    root: Path
    entries: dict[str, Entry] = field(default_factory=dict)
    artifacts: dict[str, os.stat_result] = field(default_factory=dict)


def _inside(root_real: str, target: str) -> bool:
    return target == root_real or target.startswith(root_real + os.sep)


def _kind(mode: int) -> Kind:
    """What a `st_mode` is, in the loader's words (alloy.load._files)."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "other"


_KINDS: tuple[tuple[Any, Kind], ...] = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "link"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "char-device"),
    (stat.S_ISBLK, "block-device"),
)
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def read_file(path: str, rel: str, *, inode: int | None = None, cap: int = READ_CAP) -> Entry:
    """The bytes of the regular file at `path` (`rel` is how messages name it): opened without
    following a symbolic link and without waiting on a pipe, looked at again once open (a
    regular file; the inode listed, when `inode` is given), and read to at most `cap` bytes."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # it became a symbolic link since it was listed
            return Entry(refusal=files.changed_while_read())
        return Entry(refusal=files.unreadable(exc.strerror or str(exc)))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return Entry(refusal=files.not_a_file(rel, _kind(info.st_mode)))
        if inode is not None and info.st_ino != inode:
            return Entry(refusal=files.changed_while_read())
        if info.st_size > cap:
            return Entry(refusal=files.too_large(info.st_size))
        # A regular file is read whole by one read of its size (and one byte more, to see it
        # did not grow); what grows past `cap` meanwhile is refused.
        chunks = [os.read(fd, info.st_size + 1)]
        size = len(chunks[0])
        while size > info.st_size and size <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > cap:
            return Entry(refusal=files.too_large(size))
        return Entry(data=b"".join(chunks))
    except OSError as exc:
        return Entry(refusal=files.unreadable(exc.strerror or str(exc)))
    finally:
        os.close(fd)


class _WorkTree:
    """`.alloy/` of the work tree as the loader's rules look at it: every path by `lstat`,
    nothing followed or opened (alloy.load._files follows links, a step at a time)."""

    def __init__(self, alloy_real: str) -> None:
        self.alloy_real = alloy_real
        self.stats: dict[str, os.stat_result] = {}

    def real(self, rel: str) -> str:
        return self.alloy_real + rel[len(ALLOY_DIR) :]

    def lookup(self, rel: str) -> FileNode:
        try:
            info = os.lstat(self.real(rel))
        except (FileNotFoundError, NotADirectoryError):
            return FileNode("missing")
        except OSError as exc:
            return FileNode("other", error=exc.strerror or str(exc))
        self.stats[rel] = info
        kind = _kind(info.st_mode)
        if kind != "link":
            return FileNode(kind)
        try:
            return FileNode("link", link=os.readlink(self.real(rel)))
        except OSError as exc:
            return FileNode("other", error=exc.strerror or str(exc))

    def read(self, rel: str) -> Entry:
        """The entry at `rel`, by the loader's rules: a regular file's bytes; a symbolic link's
        target's bytes (with `source`), or the refusal of either."""
        node = self.lookup(rel)
        if node.error is not None:
            return Entry(refusal=files.unreadable(node.error))
        if node.kind == "link":
            found = resolve_link(rel, self.lookup)
            if found.path is None:
                return Entry(refusal=found.refusal)
            entry = read_file(
                self.real(found.path), found.path, inode=self.stats[found.path].st_ino
            )
            return replace(entry, source=found.path) if entry.data is not None else entry
        if node.kind != "file":
            return Entry(refusal=files.not_a_file(rel, node.kind))
        return read_file(self.real(rel), rel, inode=self.stats[rel].st_ino)


def _alloy_dir(root: Path) -> tuple[str | None, Entry | None]:
    """The real path of `.alloy/` of `root`, or the refusal of a `.alloy` that is a symbolic
    link out of the repository (or one that cannot be followed)."""
    root_real = os.path.realpath(root)
    base = os.path.join(root_real, ALLOY_DIR)
    if not os.path.islink(base):
        return base, None
    text = os.readlink(base)
    try:
        target = os.path.realpath(base, strict=True)
    except OSError as exc:
        return None, Entry(refusal=files.cannot_follow(text, exc.strerror or str(exc)))
    if not _inside(root_real, target):
        return None, Entry(refusal=files.alloy_dir_leaves(text))
    return target, None


def read_snapshot(root: Path) -> Snapshot:
    """Read every file under `.alloy/` as bytes, refusing what the loading rules refuse. Every
    entry is looked at (`lstat`) before anything is opened: only regular files are read, and
    symbolic links are followed by the loader's rules, a step at a time (alloy.load._files)."""
    snap = Snapshot(root)
    alloy_real, refused = _alloy_dir(root)
    if alloy_real is None:
        snap.entries[ALLOY_DIR] = refused or Entry(refusal="refused")
        return snap
    tree = _WorkTree(alloy_real)
    stack: list[tuple[str, str]] = [(alloy_real, ALLOY_DIR)]
    while stack:
        directory, rel_dir = stack.pop()
        try:
            items = list(os.scandir(directory))
        except OSError as exc:
            snap.entries[rel_dir] = Entry(refusal=files.unreadable(exc.strerror or str(exc)))
            continue
        for item in items:
            rel = f"{rel_dir}/{item.name}"
            try:
                # The kind comes with the directory listing (d_type; an lstat where the file
                # system does not say): no link is followed, nothing is opened.
                if item.is_dir(follow_symlinks=False):
                    stack.append((item.path, rel))
                    continue
                regular = item.is_file(follow_symlinks=False)
                if files.is_artifact(rel):  # artifacts are only listed; read when compared
                    if regular:
                        snap.artifacts[rel] = item.stat(follow_symlinks=False)
                    elif item.is_symlink():
                        snap.entries[rel] = Entry(refusal=files.artifact_link())
                    else:
                        kind = _kind(item.stat(follow_symlinks=False).st_mode)
                        snap.entries[rel] = Entry(refusal=files.not_a_file(rel, kind))
                    continue
                if regular:
                    snap.entries[rel] = read_file(item.path, rel, inode=item.inode())
                else:
                    snap.entries[rel] = tree.read(rel)
            except OSError as exc:
                snap.entries[rel] = Entry(refusal=files.unreadable(exc.strerror or str(exc)))
    return snap


def read_path(root: Path, rel: str) -> Entry | None:
    """One file under `.alloy/` (`rel`, like `.alloy/alloy.yaml`) read by the rules of
    `read_snapshot`; None when there is nothing at that path."""
    alloy_real, refused = _alloy_dir(root)
    if alloy_real is None:
        return refused
    tree = _WorkTree(alloy_real)
    if tree.lookup(rel).kind == "missing":
        return None
    return tree.read(rel)


def _artifact_bytes(root: Path, path: str, info: os.stat_result | None = None) -> bytes | None:
    """The bytes of the artifact file at `path`; None when there is none, and empty bytes
    (not an artifact) when it is not a regular file or cannot be read."""
    target = str(root / path)
    if info is None:
        try:
            info = os.lstat(target)
        except OSError:
            return None
    if not stat.S_ISREG(info.st_mode):
        return b""
    return read_file(target, path, inode=info.st_ino).data or b""


# --- the parse cache -------------------------------------------------------------------------


def _code_fingerprint() -> str:
    """Hash of the code that produces cached results, so that a cache written by other code
    (an upgrade, or a development checkout) is never trusted. Reading ~30 small files: <1 ms."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for sub in ("load", "model", "compile"):
        for path in sorted((package / sub).glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    for name in ("_version.py", "diagnostics.py"):
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:16]


def default_cache_path(root: Path) -> Path | None:
    """Outside the tracked tree: inside the git directory if there is one, else the user cache;
    None when there is neither (the parse cache is an optimization: without one, every
    document is parsed, and a cache directory that cannot be written is only not written)."""
    dot_git = root / ".git"
    git_dir: Path | None = None
    if dot_git.is_dir():
        git_dir = dot_git
    elif dot_git.is_file():
        entry = read_file(str(dot_git), ".git", cap=64 * 1024)
        text = (entry.data or b"").decode("utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            git_dir = (root / text.removeprefix("gitdir:").strip()).resolve()
    if git_dir is not None:
        return git_dir / "alloy" / "cache.json"
    try:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    except (RuntimeError, KeyError):  # no home directory known
        return None
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(xdg) / "alloy" / f"{key}.json"


class FileCache:
    """Loaded documents by path and content hash, plus the last verified state of each artifact
    file. Entries not used by a run are dropped when it saves, so the file never grows stale."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.context = ""
        self._docs: dict[str, Any] = {}
        self._used: dict[str, Any] = {}
        self.artifacts: dict[str, list[Any]] = {}
        self._dirty = False
        if path is not None:
            try:
                raw = json.loads(path.read_bytes())
                if raw.get("version") == _CACHE_VERSION:
                    self.context = raw["context"]
                    self._docs = raw["docs"]
                    self.artifacts = raw["artifacts"]
            except (OSError, ValueError, KeyError, TypeError):
                pass

    def bind(self, context: str) -> None:
        """Drop everything computed under another project, compiler or Alloy version."""
        if context != self.context:
            self._docs, self.artifacts = {}, {}
            self.context = context
            self._dirty = True

    def get(self, key: str) -> DocResult | None:
        raw = self._docs.get(key)
        if raw is None:
            return None
        self._used[key] = raw
        return DocResult.from_json(key.split("\0", 1)[0], raw)

    def put(self, key: str, result: DocResult) -> None:
        self._used[key] = result.to_json()
        self._dirty = True

    def save(self) -> None:
        if self.path is None:
            return
        if not self._dirty and len(self._used) == len(self._docs):
            return
        payload = {
            "version": _CACHE_VERSION,
            "context": self.context,
            "docs": self._used,
            "artifacts": self.artifacts,
        }
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(self.path, json.dumps(payload, separators=(",", ":")).encode())

    def mark_dirty(self) -> None:
        self._dirty = True


@functools.cache
def _file_mode() -> int:
    """The mode a new file gets here (0o666 less the umask, 0o644 under umask 022), as `open`
    would give it: mkstemp's 0o600 is only for the temporary name. Read once; from
    /proc/self/status where it says, since setting the umask to read it is not thread-safe."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- library functions behind the CLI -------------------------------------------------------


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Loading builds many long-lived objects and no reference cycles, so the cycle collector
    only rescans them, again and again: a quarter of a cold compile of 10,000 intents. It is
    paused while `.alloy/` is loaded and compiled, and runs as before afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@_gc_paused()
def load(root: Path, *, use_cache: bool = True) -> tuple[Repository, Snapshot, FileCache]:
    """Read and load `.alloy/` of `root` (the parse cache speeds up unchanged documents)."""
    snap = read_snapshot(root)
    project_entry = snap.entries.get(PROJECT_PATH)
    cache = open_cache(root, project_entry.data if project_entry else None, use_cache=use_cache)
    repo = load_repository(snap.entries, cache)
    # What is said about a document read through a symbolic link is placed in its own file.
    repo.diagnostics = anchored(repo.diagnostics, snap.entries)
    return repo, snap, cache


def open_cache(root: Path, project_data: bytes | None, *, use_cache: bool = True) -> FileCache:
    """The parse cache of `root` for documents loaded under the project file `project_data`
    (results computed under another project, compiler or Alloy version are dropped). Without
    `use_cache` it starts empty and is never saved, but still serves a document loaded twice."""
    cache = FileCache(default_cache_path(root) if use_cache else None)
    cache.bind(cache_context(project_data))
    return cache


def cache_context(project_data: bytes | None) -> str:
    """What the parse cache's results depend on besides a document's own bytes: the Alloy
    version, the compiler, the loader's code and the project file."""
    project_hash = hashlib.sha256(project_data or b"").hexdigest()
    return f"{__version__}/{COMPILER}/{_code_fingerprint()}/{project_hash}"


def _save_if_valid(cache: FileCache, repo: Repository) -> None:
    """Save the parse cache, unless a document failed to load: what a broken or hostile tree
    produced is never kept (the next run parses again what changed since the last good one)."""
    if repo.ok:
        cache.save()


@_gc_paused()
def check(root: Path, *, use_cache: bool = True) -> Repository:
    """Validate every document; raise `InvalidDocuments` with all diagnostics if any is wrong."""
    repo, _, cache = load(root, use_cache=use_cache)
    if not repo.ok:
        raise InvalidDocuments(repo.diagnostics)
    cache.save()
    return repo


def load_intent(root: Path, name: str) -> tuple[Intent, DocResult, Repository]:
    """One intent, freshly loaded and valid (with its artifact, if it compiles)."""
    repo, snap, cache = load(root)
    _save_if_valid(cache, repo)
    intents = repo.intents()
    doc = intents.get(name)
    if doc is None:
        raise NotFound(f"no intent named {name!r}{suggest(name, intents)}")
    fresh = reload_intent(doc.path, snap.entries[doc.path], repo.project)
    if not isinstance(fresh.model, Intent) or not fresh.ok:
        raise InvalidDocuments(fresh.diagnostics)
    return fresh.model, fresh, repo


def intent_models(root: Path) -> tuple[Repository, dict[str, tuple[DocResult, Intent]]]:
    """Every valid intent with its model, by name. Documents from the parse cache carry no
    model, so those are loaded again (reading a command's worth of intents, not a hot path)."""
    repo, snap, cache = load(root)
    _save_if_valid(cache, repo)
    out: dict[str, tuple[DocResult, Intent]] = {}
    for name, doc in sorted(repo.intents().items()):
        if not doc.ok:
            continue
        if isinstance(doc.model, Intent):
            out[name] = (doc, doc.model)
            continue
        fresh = reload_intent(doc.path, snap.entries[doc.path], repo.project)
        if fresh.ok and isinstance(fresh.model, Intent):  # else it changed under us
            out[name] = (fresh, fresh.model)
    return repo, out


def _artifact_file(root: Path, doc: DocResult) -> str | None:
    """'missing', 'stale' or 'current': the artifact file of a compiling intent against what
    the compiler writes (None if the intent does not compile)."""
    if doc.artifact is None or doc.name is None:
        return None
    have = _artifact_bytes(root, artifact_path(doc.name))
    if have is None:
        return "missing"
    if have != pretty_bytes(doc.artifact):
        return "stale"
    return "current"


def artifact_status(root: Path, doc: DocResult) -> str | None:
    """How the artifact file of a compiling intent compares with what the compiler writes."""
    return {
        None: None,
        "missing": "not written yet: run `alloy compile`",
        "stale": "the file is out of date: run `alloy compile`",
        "current": "up to date",
    }[_artifact_file(root, doc)]


def artifact_files(root: Path, names: Iterable[str]) -> dict[str, bytes]:
    """The bytes of `.alloy/artifacts/<name>.json` for each name that has one (a file that
    cannot be read counts as empty: not an artifact)."""
    out: dict[str, bytes] = {}
    for name in names:
        data = _artifact_bytes(root, artifact_path(name))
        if data is not None:
            out[name] = data
    return out


def make_request(
    root: Path,
    name: str,
    *,
    inputs: list[str],
    reason: str,
    requested_by: str | None,
    request_name: str | None,
) -> tuple[str, str]:
    """Write a Request for intent `name`, pinned to its current artifact digest; return the
    request's path and the digest. The artifact file must be written and up to date."""
    from alloy import scaffold

    intent, fresh, _ = load_intent(root, name)
    if fresh.artifact is None or intent.spec.automation is None:
        raise UserError(
            f"intent {name!r} has no artifact: only accepted or active intents with automation compile"
        )
    if not intent.spec.automation.on.request:
        raise UserError(
            f"intent {name!r} does not accept requests; set spec.automation.on.request: true"
        )
    state = _artifact_file(root, fresh)
    if state == "missing":
        raise UserError(
            f"{artifact_path(name)} does not exist; run `alloy compile` and commit it first"
        )
    if state == "stale":
        raise UserError(f"{artifact_path(name)} is out of date; run `alloy compile` first")
    digest = str(fresh.artifact["digest"])
    values = scaffold.parse_inputs(fresh.facts.get("inputs", {}), inputs)
    path = scaffold.write_request(
        root,
        intent=name,
        digest=digest,
        inputs=values,
        reason=reason,
        requested_by=requested_by or current_user(),
        name=request_name,
    )
    return path, digest


def current_user(option: str = "--requested-by") -> str:
    """The OS user's name; if there is none, an error that says to pass `option`."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user entry (some containers)
        raise UserError(f"cannot tell who you are; pass {option} NAME") from None


@dataclass
class CompileReport:
    """What `compile` did (or, with `check_only`, would do)."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    repository: Repository | None = None


def artifact_path(name: str) -> str:
    return f"{ARTIFACTS_DIR}/{name}.json"


def _file_sig(info: os.stat_result) -> list[int]:
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def _expected_artifact(snap: Snapshot, doc: DocResult, repo: Repository) -> bytes:
    if doc.artifact is None:  # came from the cache: compile it again, from the bytes loaded
        fresh = reload_intent(doc.path, snap.entries[doc.path], repo.project)
        if fresh.artifact is None:  # the file changed under us
            raise InvalidDocuments(fresh.diagnostics)
        doc.artifact = fresh.artifact
    return pretty_bytes(doc.artifact)


def _write_artifacts(root: Path, contents: list[tuple[str, Any]]) -> list[list[int]]:
    """Write each artifact (bytes, or the document to format) atomically, on every core when
    there are many; return their `stat` signatures."""

    def work(share: int, shares: int) -> list[list[int]]:
        sigs = []
        for path, content in contents[share::shares]:
            target = root / path
            _atomic_write(target, content if isinstance(content, bytes) else pretty_bytes(content))
            sigs.append(_file_sig(os.stat(target)))
        return sigs

    shares = shares_for(len(contents))
    out: list[list[int]] = [[]] * len(contents)
    for share, sigs in enumerate(fork_map(work, shares)):
        out[share::shares] = sigs
    return out


def describe_stale(data: bytes) -> str:
    """Why an artifact file differs from what the compiler writes."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return "is not valid JSON (edited by hand?)"
    if not isinstance(document, dict):
        return "is not an artifact document"
    try:
        if document.get("digest") != document_digest(document):
            return "was edited by hand: its digest does not match its content"
    except ValueError:  # a float (1.5, NaN): no artifact holds one
        return "was edited by hand: its digest does not match its content"
    return "is out of date with its intent"


@_gc_paused()
def compile_repository(
    root: Path, *, check_only: bool = False, use_cache: bool = True
) -> CompileReport:
    """Write `.alloy/artifacts/` from the intents; with `check_only`, write nothing and raise
    `StaleArtifacts` naming every stale, missing or extra artifact."""
    repo, snap, cache = load(root, use_cache=use_cache)
    if not repo.ok:
        raise InvalidDocuments(repo.diagnostics)
    report = CompileReport(repository=repo)
    expected: dict[str, DocResult] = {}
    for doc in repo.intents().values():
        if doc.facts.get("compiles") and doc.name is not None:
            expected[artifact_path(doc.name)] = doc
    problems: list[str] = []
    writes: dict[str, bytes | None] = {}  # None: formatted when written
    for path, doc in sorted(expected.items()):
        info = snap.artifacts.get(path)
        digest = doc.facts["digest"]
        known = cache.artifacts.get(path)
        if info is not None and known is not None and known == [*_file_sig(info), digest]:
            report.unchanged += 1
            continue
        if info is None:
            problems.append(f"{path}: missing; compiled from {doc.path}")
            # An artifact from the cache is compiled again now, before anything is written.
            writes[path] = None if doc.artifact is not None else _expected_artifact(snap, doc, repo)
            continue
        want = _expected_artifact(snap, doc, repo)
        have = _artifact_bytes(root, path, info) or b""
        if have == want:
            report.unchanged += 1
            cache.artifacts[path] = [*_file_sig(info), digest]
            cache.mark_dirty()
            continue
        problems.append(f"{path}: {describe_stale(have)} ({doc.path})")
        writes[path] = want
    extra = sorted(set(snap.artifacts) - set(expected))
    for path in extra:
        name = path.rsplit("/", 1)[-1][: -len(".json")]
        owner = repo.intents().get(name)
        why = (
            "its intent no longer exists"
            if owner is None
            else f"its intent is {owner.facts.get('state', 'not compiled')} or has no automation"
        )
        problems.append(f"{path}: extra; {why}")
    if check_only:
        cache.save()
        if problems:
            raise StaleArtifacts(problems)
        return report
    if writes or extra:
        (root / ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
    contents = [
        (path, expected[path].artifact if data is None else data) for path, data in writes.items()
    ]
    for path, sig in zip(writes, _write_artifacts(root, contents), strict=True):
        cache.artifacts[path] = [*sig, expected[path].facts["digest"]]
        report.written.append(path)
    for path in extra:
        with contextlib.suppress(FileNotFoundError):
            (root / path).unlink()
        cache.artifacts.pop(path, None)
        report.removed.append(path)
    if writes or extra:
        cache.mark_dirty()
    for path in list(cache.artifacts):
        if path not in expected:
            del cache.artifacts[path]
    cache.save()
    return report
