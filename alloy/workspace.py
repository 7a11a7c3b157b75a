"""The work tree side of the Alloy library: find the repository, read `.alloy/` into a snapshot,
keep the parse cache, and write artifacts. The CLI is a thin shell over these functions.

Nothing here is written unless every document is valid; artifacts are replaced atomically.
"""

from __future__ import annotations

import contextlib
import gc
import getpass
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alloy._version import COMPILER, __version__
from alloy.compile import document_digest, pretty_bytes
from alloy.errors import InvalidDocuments, NotFound, StaleArtifacts, UserError
from alloy.load import (
    PROJECT_PATH,
    DocResult,
    Entry,
    Repository,
    load_repository,
    reload_intent,
)
from alloy.load._errors import suggest
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


def read_snapshot(root: Path) -> Snapshot:
    """Read every file under `.alloy/` as bytes, refusing what the loading rules refuse."""
    snap = Snapshot(root)
    root_real = os.path.realpath(root)
    base = root / ALLOY_DIR
    if base.is_symlink() and not _inside(root_real, os.path.realpath(base)):
        snap.entries[ALLOY_DIR] = Entry(refusal="symbolic link that leaves the repository; refused")
        return snap
    # Each directory to read carries the real paths of the directories above it: a symbolic
    # link back to one of those is a loop, refused rather than followed forever.
    alloy_real = os.path.realpath(base)
    stack: list[tuple[Path, str, tuple[str, ...]]] = [(base, ALLOY_DIR, (alloy_real,))]
    while stack:
        directory, rel_dir, chain = stack.pop()
        try:
            items = list(os.scandir(directory))
        except OSError as exc:
            snap.entries[rel_dir] = Entry(refusal=f"cannot be read: {exc.strerror}")
            continue
        for item in items:
            rel = f"{rel_dir}/{item.name}"
            if item.is_symlink():
                target = os.path.realpath(item.path)
                if not _inside(root_real, target):
                    snap.entries[rel] = Entry(
                        refusal=f"symbolic link to {os.readlink(item.path)!r} leaves the "
                        "repository; replace it with the file itself"
                    )
                    continue
                if not _inside(alloy_real, target):
                    snap.entries[rel] = Entry(
                        refusal=f"symbolic link to {os.readlink(item.path)!r} points outside "
                        ".alloy/; documents are read only from .alloy/, so move the file here"
                    )
                    continue
                if os.path.isdir(target):
                    if target in chain:
                        snap.entries[rel] = Entry(
                            refusal=f"symbolic link to {os.readlink(item.path)!r} leads back to "
                            "a directory that contains it (a loop); remove it"
                        )
                        continue
                    stack.append((Path(target), rel, (*chain, target)))
                    continue
            if item.is_dir():
                stack.append((Path(item.path), rel, (*chain, os.path.realpath(item.path))))
                continue
            if (
                rel.startswith(ARTIFACTS_DIR + "/")
                and rel.endswith(".json")
                and rel.count("/") == 2
            ):
                try:
                    snap.artifacts[rel] = os.stat(item.path)
                except OSError as exc:
                    snap.entries[rel] = Entry(refusal=f"cannot be read: {exc.strerror}")
                continue
            snap.entries[rel] = _read_entry(item.path)
    return snap


def _read_entry(path: str) -> Entry:
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                return Entry(refusal="not a regular file; refused")
            if info.st_size > READ_CAP:
                return Entry(
                    refusal=f"file is {info.st_size} bytes, far over the size limit; refused"
                )
            return Entry(data=fh.read(READ_CAP + 1))
    except OSError as exc:
        return Entry(refusal=f"cannot be read: {exc.strerror}")


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


def default_cache_path(root: Path) -> Path:
    """Outside the tracked tree: inside the git directory if there is one, else the user cache."""
    dot_git = root / ".git"
    git_dir: Path | None = None
    if dot_git.is_dir():
        git_dir = dot_git
    elif dot_git.is_file():
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            git_dir = (root / text.removeprefix("gitdir:").strip()).resolve()
    if git_dir is not None:
        return git_dir / "alloy" / "cache.json"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
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


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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


@_gc_paused()
def check(root: Path, *, use_cache: bool = True) -> Repository:
    """Validate every document; raise `InvalidDocuments` with all diagnostics if any is wrong."""
    repo, _, cache = load(root, use_cache=use_cache)
    cache.save()
    if not repo.ok:
        raise InvalidDocuments(repo.diagnostics)
    return repo


def load_intent(root: Path, name: str) -> tuple[Intent, DocResult, Repository]:
    """One intent, freshly loaded and valid (with its artifact, if it compiles)."""
    repo, snap, cache = load(root)
    cache.save()
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
    cache.save()
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
    artifact_file = root / artifact_path(doc.name)
    if not artifact_file.exists():
        return "missing"
    if artifact_file.read_bytes() != pretty_bytes(doc.artifact):
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
        try:
            out[name] = (root / artifact_path(name)).read_bytes()
        except FileNotFoundError:
            continue
        except OSError:
            out[name] = b""
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


def _expected_artifact(root: Path, doc: DocResult, repo: Repository) -> bytes:
    if doc.artifact is None:  # came from the cache: compile it again
        entry = _read_entry(str(root / doc.path))
        fresh = reload_intent(doc.path, entry, repo.project)
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
        if not isinstance(document, dict):
            return "is not an artifact document"
        if document.get("digest") != document_digest(document):
            return "was edited by hand: its digest does not match its content"
    except ValueError:
        return "is not valid JSON (edited by hand?)"
    return "is out of date with its intent"


@_gc_paused()
def compile_repository(
    root: Path, *, check_only: bool = False, use_cache: bool = True
) -> CompileReport:
    """Write `.alloy/artifacts/` from the intents; with `check_only`, write nothing and raise
    `StaleArtifacts` naming every stale, missing or extra artifact."""
    repo, snap, cache = load(root, use_cache=use_cache)
    if not repo.ok:
        cache.save()
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
            writes[path] = None if doc.artifact is not None else _expected_artifact(root, doc, repo)
            continue
        want = _expected_artifact(root, doc, repo)
        have = (root / path).read_bytes()
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
