"""One repository as the web interface sees it: everything read from its remote, in layers.

Each layer is keyed by the refs it is made of and rebuilt only when they move: the intents of the
default branch (documents parsed once per blob, through an in-memory parse cache), the traces of
the traces branch (each trace parsed once per blob), claims (each claim commit read once), lanes
and the local forge's check runs. A trace push therefore costs the parsing of the new traces
only, not of every intent.

What a running execution has done so far is read from the Trace document its claim carries
(`trace.json`, kept current by whoever runs it): the boundary format, never Foundry's ledger.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from alloy import status as status_mod
from alloy.load import (
    PROJECT_PATH,
    DocResult,
    Entry,
    content_key,
    load_project,
    load_repository,
    reload_intent,
)
from alloy.model import Intent, Trace
from alloy.status import Criterion, Reported

if TYPE_CHECKING:
    from alloy.load import Repository
    from alloy.web._github import GitHub
    from controllers.remote_view import RemoteView

ALLOY_DIR = ".alloy"
TRACES_DIR = "traces"
CLAIMS = "refs/alloy/claims/"
LANES = "refs/alloy/lanes/"
FORGE = "refs/alloy/forge"
READ_CAP = 4 * 1024 * 1024
#: whole intent models kept for pages (the intent and execution pages, actions, the assistant)
MODELS_KEPT = 64
INTENT_PREFIX = f"{ALLOY_DIR}/intents/"


class MemoryCache:
    """The loader's document cache, in memory: a document whose bytes did not change is not
    parsed again when the default branch moves."""

    def __init__(self) -> None:
        self.results: dict[str, DocResult] = {}
        self.used: set[str] = set()

    def get(self, key: str) -> DocResult | None:
        found = self.results.get(key)
        if found is not None:
            self.used.add(key)
        return found

    def put(self, key: str, result: DocResult) -> None:
        self.results[key] = result
        self.used.add(key)

    def sweep(self) -> None:
        """Forget what the last load did not use."""
        self.results = {k: v for k, v in self.results.items() if k in self.used}
        self.used = set()


@dataclass(frozen=True)
class ExecutionRef:
    """What the overview and lists need of one execution, from its trace (or its claim)."""

    id: str
    intent: str
    status: str
    event: dict[str, str]
    digest: str
    started_at: str | None
    finished_at: str | None
    reason: str | None
    #: gates whose latest decision is `waiting`: (block, index, kind, reason, at)
    waiting: tuple[tuple[str, int, str, str, str], ...]
    #: where the trace was read: `traces` (the traces branch) or `claim` (live, from its claim)
    source: str
    blob: str


@dataclass(frozen=True, slots=True)
class Summary:
    """What every list shows of one intent (the overview, lanes, approvals), kept for each
    intent; a page that needs the whole model reads it again (`RepoState.model`). 10,000 whole
    models would be most of the server's memory."""

    title: str | None
    state: str
    goal: str
    owners: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]
    depends_on: tuple[str, ...]
    supersedes: tuple[str, ...]
    #: the lane its automation runs in, and whether it takes requests
    lane: str | None
    requests: bool
    criteria: tuple[Criterion, ...]
    #: (block, index) -> who may decide that approval gate (`_views.approvers`' shape)
    approvals: tuple[tuple[str, int, tuple[str, ...], int, bool, str | None], ...]

    @classmethod
    def of(cls, intent: Intent) -> Summary:
        spec, auto = intent.spec, intent.spec.automation
        return cls(
            intent.metadata.title,
            spec.state,
            spec.goal,
            tuple(intent.metadata.owners),
            tuple(intent.metadata.labels.items()),
            tuple(spec.relations.depends_on),
            tuple(spec.relations.supersedes),
            auto.lane.name if auto is not None and auto.lane is not None else None,
            bool(auto is not None and auto.on.request),
            status_mod.criteria_of(intent),
            tuple(
                (
                    b.id,
                    i,
                    tuple(g.approval.from_),
                    g.approval.quorum,
                    g.approval.forbid_self,
                    g.approval.expires,
                )
                for b in (auto.blocks if auto is not None else [])
                for i, g in enumerate(b.gates)
                if g.approval is not None
            ),
        )


@dataclass(frozen=True, slots=True)
class Held:
    """One intent of the default branch as held between pages: its summary, its file and its
    artifact's state."""

    path: str
    #: the file the document's bytes come from (another one when `path` is a symbolic link)
    source: str | None
    summary: Summary
    compiled_digest: str | None
    artifact: status_mod.ArtifactState | None


@dataclass
class Intents:
    commit: str | None = None
    repo: Repository | None = None
    inputs: dict[str, Held] = field(default_factory=dict)
    problems: int = 0
    #: each intent's lifecycle state, and who names it: `dependedOnBy`, `supersededBy`
    states: dict[str, str] = field(default_factory=dict)
    reverse: dict[str, dict[str, list[str]]] = field(default_factory=dict)


def _reverse(held: Mapping[str, Held]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for name in sorted(held):
        summary = held[name].summary
        for field_name, targets in (
            ("dependedOnBy", summary.depends_on),
            ("supersededBy", summary.supersedes),
        ):
            for target in targets:
                out.setdefault(target, {}).setdefault(field_name, []).append(name)
    return out


def _snapshot(view: RemoteView, commit: str) -> dict[str, Entry]:
    """`.alloy/` of `commit` as a loader snapshot, by the same rules `alloy review` reads a
    tree with (`alloy.cli._review._snapshot`)."""
    from alloy.cli._review import _snapshot as tree_snapshot

    listing = view.tree(commit, ALLOY_DIR)
    wanted = {f.sha for f in listing if f.regular or f.mode == "120000"}
    too_large: dict[str, int] = {}
    blobs = view.blobs(wanted, READ_CAP, too_large)
    return tree_snapshot(listing, blobs, too_large)


def _json(data: bytes | None) -> Any:
    """A JSON document read from a ref, or None when it is not JSON (or nested too deep for
    the parser: a hostile document must never stop a refresh)."""
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _entries(value: object) -> list[dict[str, Any]]:
    """The entries of a lane's list (holders, waiting, superseded) that are what a lane state
    writes: objects naming an execution; anything else is left out."""
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict) and isinstance(v.get("execution"), str)]


def _light(trace: Trace, source: str, blob: str) -> ExecutionRef:
    spec = trace.spec
    latest: dict[tuple[str, int], Any] = {}
    for gate in spec.gates:
        latest[(gate.block, gate.index)] = gate
    waiting = tuple(
        (g.block, g.index, g.kind, g.reason, g.at)
        for g in latest.values()
        if g.decision == "waiting"
    )
    return ExecutionRef(
        trace.metadata.name,
        spec.intent,
        spec.status,
        {"type": spec.event.type, "key": spec.event.key},
        spec.artifact.digest,
        spec.started_at,
        spec.finished_at,
        spec.reason,
        waiting,
        source,
        blob,
    )


def _kept(trace: Trace, source: str, blob: str) -> tuple[Reported, ExecutionRef]:
    """What is kept of a trace between pages: its evidence and its summary (attempts, log tails
    and gate decisions are most of its size; the execution page reads the whole trace again)."""
    return status_mod.reported_of(trace), _light(trace, source, blob)


class RepoState:
    """Everything shown of one repository, refreshed from its remote by `refresh()`."""

    def __init__(self, key: str, view: RemoteView) -> None:
        self.key = key
        self.view = view
        self.lock = threading.RLock()
        self.cache = MemoryCache()
        self.intents = Intents()
        self.traces_commit: str | None = None
        self.traces_branch = "alloy/traces"
        #: trace blob -> (its evidence, light ref); rebuilt incrementally
        self._trace_blobs: dict[str, tuple[Reported, ExecutionRef]] = {}
        self.trace_paths: dict[str, str] = {}  # execution -> blob
        #: claim commit -> (claim.json, live trace or None)
        self._claims: dict[str, tuple[dict[str, Any], tuple[Reported, ExecutionRef] | None]] = {}
        self.claims: dict[str, tuple[dict[str, Any], tuple[Reported, ExecutionRef] | None]] = {}
        self.lanes: dict[str, dict[str, Any]] = {}
        self.checks: dict[str, dict[str, Any]] = {}
        self.forge_commit: str | None = None
        self.executions: dict[str, ExecutionRef] = {}
        self.by_intent: dict[str, list[ExecutionRef]] = {}
        #: what could not be shown, per layer (the traces branch, claims, lanes, the forge)
        self._warned: dict[str, list[str]] = {}
        self.version = 0
        self.error: str | None = None
        #: the repository on GitHub, when it reports there (pull requests: alloy.web._github)
        self.github: GitHub | None = None
        #: the intents whose overview row may have changed since `take_dirty()`; None: all
        self._dirty: set[str] | None = None
        #: (commit, path) -> bytes of files read for pages (the intent assistant), per commit
        self._files: dict[tuple[str, str], bytes | None] = {}
        #: path -> blob of the traces branch as last read (a push is read as a diff)
        self._trace_paths: dict[str, str] = {}
        #: document key (path and bytes) -> its summary (None: not an intent's model); like the
        #: parse cache, for one project file (`_scope`)
        self._summaries: dict[str, Summary | None] = {}
        self._scope: str | None = None
        #: (commit, intent) -> its document and whole model, the most recently used kept
        self._models: OrderedDict[tuple[str, str], tuple[DocResult, Intent] | None] = OrderedDict()

    def take_dirty(self) -> set[str] | None:
        """The intents whose rows must be made again (None: every one), and start afresh."""
        with self.lock:
            dirty, self._dirty = self._dirty, set()
            return dirty

    def _touch(self, intents: set[str]) -> None:
        if self._dirty is not None:
            self._dirty |= intents

    def file(self, commit: str, path: str) -> bytes | None:
        """A file of the default branch's `commit`, read once."""
        key = (commit, path)
        if key not in self._files:
            if len(self._files) > 1000:
                self._files.clear()
            self._files[key] = self.view.file_at(commit, path)
        return self._files[key]

    # -- refresh --------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Bring every layer up to date; True when anything shown may have changed."""
        from controllers.remote_view import RemoteError

        try:
            moved = self.view.refresh()
        except RemoteError as exc:
            changed = self.error != str(exc)
            self.error = str(exc)
            return changed
        if not moved and self.error is None and self.version:
            return False
        with self.lock:
            self.error = None
            try:
                self._load_intents()
                self._load_traces()
                self._load_claims()
                self._load_lanes()
                self._load_forge()
            except Exception as exc:  # noqa: BLE001 - one repository must never stop the others
                # What could be read stays shown; the page says what could not.
                self.error = f"cannot read what the remote holds: {type(exc).__name__}: {exc}"
            self._index()
            self.version += 1
        return True

    @property
    def warnings(self) -> list[str]:
        layers = ("traces", "claims", "lanes", "forge")
        return [w for layer in layers for w in self._warned.get(layer, [])]

    @property
    def default_branch(self) -> str:
        return self.view.default_branch or "main"

    def _ref(self, name: str) -> str | None:
        return self.view.refs.get(name)

    def _load_intents(self) -> None:
        commit = self._ref(f"refs/heads/{self.default_branch}")
        if commit == self.intents.commit:
            return
        if commit is None:
            self.intents = Intents()
            return
        snapshot = _snapshot(self.view, commit)
        project_file = snapshot.get(PROJECT_PATH)
        scope = hashlib.sha256((project_file.data if project_file else None) or b"").hexdigest()
        if scope != self._scope:
            # What a document is found to be depends on the project (its lanes, its policy).
            self.cache, self._summaries, self._scope = MemoryCache(), {}, scope
        keys = self._summarize_new(snapshot)
        repo = load_repository(snapshot, self.cache)
        self.cache.sweep()
        summaries: dict[str, Summary | None] = {}
        held: dict[str, Held] = {}
        for name, doc in repo.intents().items():
            entry = snapshot.get(doc.path)
            if entry is None or entry.data is None:
                continue
            key = keys.get(doc.path) or content_key(doc.path, entry.data)
            if key in self._summaries:
                summary = self._summaries[key]
            else:
                model = doc.model
                if model is None and doc.ok:
                    model = reload_intent(doc.path, entry, repo.project).model
                summary = Summary.of(model) if isinstance(model, Intent) else None
            summaries[key] = summary
            # The parse cache keeps what the loader found, never the models: pages read the
            # model of the one intent they show again (`model`).
            doc.model = None
            doc.artifact = None
            if summary is None:
                continue
            compiled = doc.facts.get("digest") if doc.facts.get("compiles") else None
            data = snapshot.get(f"{ALLOY_DIR}/artifacts/{name}.json")
            held[name] = Held(
                doc.path,
                entry.source,
                summary,
                compiled,
                status_mod.artifact_state(name, data.data if data else None, compiled),
            )
        self._summaries = summaries
        # The artifact files' bytes were needed for their digests only.
        repo.artifact_files = {}
        self.intents = Intents(
            commit,
            repo,
            held,
            sum(1 for d in repo.diagnostics if d.severity == "error"),
            {name: h.summary.state for name, h in held.items()},
            _reverse(held),
        )
        self.traces_branch = repo.project.spec.traces.branch
        self._dirty = None
        self._files = {}

    def _summarize_new(self, snapshot: Mapping[str, Entry]) -> dict[str, str]:
        """Each intent document the parse cache does not hold yet, loaded here one at a time:
        summarized at once and put in the cache without its model. The loader would hold the
        whole models of thousands of intents until the last is loaded; freed together, they
        would leave the server's memory fragmented at that peak. Returns each intent document's
        cache key (path -> key), so that it is hashed once."""
        project, _ = load_project(snapshot)
        keys: dict[str, str] = {}
        for path in sorted(snapshot):
            entry = snapshot[path]
            if not path.startswith(INTENT_PREFIX) or entry.data is None:
                continue
            key = keys[path] = content_key(path, entry.data)
            if self.cache.get(key) is not None:
                continue
            doc = reload_intent(path, entry, project)
            model = doc.model
            self._summaries[key] = Summary.of(model) if isinstance(model, Intent) else None
            doc.model = doc.artifact = None
            self.cache.put(key, doc)
        return keys

    def _load_traces(self) -> None:
        commit = self._ref(f"refs/heads/{self.traces_branch}")
        if commit == self.traces_commit:
            return
        previous, self.traces_commit = self.traces_commit, commit
        paths = self._trace_listing(previous, commit)
        self._trace_paths = paths
        warnings: list[str] = []
        wanted = {sha for sha in paths.values() if sha not in self._trace_blobs}
        blobs = self.view.blobs(wanted, READ_CAP)
        parsed: dict[str, tuple[Reported, ExecutionRef] | None] = {}
        for sha in wanted:
            data = blobs.get(sha)
            trace = _parse_trace(data) if data is not None else None
            parsed[sha] = None if trace is None else _kept(trace, "traces", sha)
        # Each path is checked, not each blob: the same bytes at another path (a trace copied
        # under another intent or id) neither count there nor hide the trace where it belongs.
        kept: dict[str, tuple[Reported, ExecutionRef]] = {}
        for path, sha in sorted(paths.items()):
            found = self._trace_blobs.get(sha) or parsed.get(sha)
            if found is None:
                warnings.append(f"{self.traces_branch}:{path}: not a valid Trace; skipped")
                continue
            _, intent, name = path.split("/")
            if found[1].intent != intent or found[1].id != name[: -len(".json")]:
                warnings.append(f"{self.traces_branch}:{path}: holds another execution; skipped")
                continue
            kept[sha] = found
        gone = set(self._trace_blobs) ^ set(kept)
        self._touch({(self._trace_blobs.get(sha) or kept[sha])[1].intent for sha in gone})
        self._trace_blobs = kept
        self.trace_paths = {ref.id: sha for sha, (_, ref) in kept.items()}
        self._warned["traces"] = warnings

    def _trace_listing(self, previous: str | None, commit: str | None) -> dict[str, str]:
        """The trace files (`traces/<intent>/<execution>.json` -> blob) at `commit`: what the
        diff from `previous` changed, applied to the listing read then (a push adds a few
        traces to thousands); the whole tree when there is no earlier listing."""
        if commit is None:
            return {}
        paths: dict[str, str] | None = None
        if previous is not None:
            changes = self.view.changes(previous, commit, TRACES_DIR)
            if changes is not None:
                paths = dict(self._trace_paths)
                for path, mode, sha in changes:
                    if sha is None:
                        paths.pop(path, None)
                    elif _trace_path(path) and mode in ("100644", "100755"):
                        paths[path] = sha
                    else:
                        paths.pop(path, None)
        if paths is None:
            paths = {
                f.path: f.sha
                for f in self.view.tree(commit, TRACES_DIR)
                if f.regular and _trace_path(f.path)
            }
        return paths

    def _load_claims(self) -> None:
        heads = {
            name[len(CLAIMS) :]: sha
            for name, sha in self.view.refs.items()
            if name.startswith(CLAIMS)
        }
        wanted = [sha for sha in heads.values() if sha not in self._claims]
        names = [f"{sha}:{leaf}" for sha in wanted for leaf in ("claim.json", "trace.json")]
        blobs = self.view.named(names, READ_CAP)
        for sha in wanted:
            claim = _json(blobs.get(f"{sha}:claim.json"))
            if not isinstance(claim, dict):
                claim = {"state": "unreadable"}
            live = None
            data = blobs.get(f"{sha}:trace.json")
            trace = _parse_trace(data) if data is not None else None
            if trace is not None:
                live = _kept(trace, "claim", f"{sha}:trace.json")
            self._claims[sha] = (claim, live)
        current = set(heads.values())
        for sha in set(self._claims) ^ current | set(wanted):
            live = self._claims[sha][1]
            if live is not None:
                self._touch({live[1].intent})
        self._claims = {sha: self._claims[sha] for sha in current}
        warnings: list[str] = []
        claims = {}
        for execution, sha in heads.items():
            claim, live = self._claims[sha]
            if live is not None and live[1].id != execution:
                # A claim speaks for its own execution only: a trace that names another one
                # is not shown as this one (nor as the other).
                warnings.append(
                    f"{CLAIMS}{execution}: trace.json holds execution {live[1].id}; ignored"
                )
                live = None
            claims[execution] = (claim, live)
        self.claims = claims
        self._warned["claims"] = warnings

    def _load_lanes(self) -> None:
        lanes = {}
        warnings: list[str] = []
        names = {
            name[len(LANES) :]: f"{sha}:lane.json"
            for name, sha in self.view.refs.items()
            if name.startswith(LANES)
        }
        blobs = self.view.named(names.values(), READ_CAP)
        for lane, obj in names.items():
            doc = _json(blobs.get(obj))
            if not isinstance(doc, dict):
                warnings.append(f"{LANES}{lane}: lane.json is not a lane state; skipped")
                continue
            lanes[lane] = {
                "holders": _entries(doc.get("holders")),
                "waiting": _entries(doc.get("waiting")),
                "superseded": _entries(doc.get("superseded")),
            }
        self.lanes = lanes
        self._warned["lanes"] = warnings

    def _load_forge(self) -> None:
        commit = self._ref(FORGE)
        if commit == self.forge_commit:
            return
        self.forge_commit = commit
        checks: dict[str, dict[str, Any]] = {}
        self._warned["forge"] = []
        if commit is not None:
            try:
                listing = [f for f in self.view.tree(commit, "checks") if f.regular]
            except ValueError:  # git's RevisionError: the ref names a blob or a tree
                self._warned["forge"] = [f"{FORGE}: not a commit; no check run is shown"]
                listing = []
            blobs = self.view.blobs({f.sha for f in listing}, READ_CAP)
            for f in listing:
                run = _json(blobs.get(f.sha))
                if isinstance(run, dict) and isinstance(run.get("external_id"), str):
                    checks[run["external_id"]] = run
        self.checks = checks

    def _index(self) -> None:
        executions: dict[str, ExecutionRef] = {}
        for _, ref in self._trace_blobs.values():
            executions[ref.id] = ref
        for execution, (claim, live) in self.claims.items():
            # A claim's live trace stands in while the traces branch has none, or an older one.
            if live is None:
                continue
            known = executions.get(execution)
            if known is None or (
                known.status not in status_mod.FINISHED and claim.get("state") == "running"
            ):
                executions[execution] = live[1]
        by_intent: dict[str, list[ExecutionRef]] = {}
        for ref in executions.values():
            by_intent.setdefault(ref.intent, []).append(ref)
        for refs in by_intent.values():
            refs.sort(key=lambda r: r.id)
            refs.sort(key=lambda r: status_mod.sort_instant(r.started_at), reverse=True)
        self.executions = executions
        self.by_intent = by_intent

    # -- reading ------------------------------------------------------------------------
    def reported(self, intent: str) -> list[Reported]:
        """What `intent`'s executions report about evidence, newest first."""
        out = []
        for ref in self.by_intent.get(intent, []):
            found = self._trace_blobs.get(ref.blob)
            if found is None:
                claim = self.claims.get(ref.id)
                live = claim[1] if claim else None
                if live is not None:
                    out.append(live[0])
            else:
                out.append(found[0])
        return out

    def model(self, name: str) -> tuple[DocResult, Intent] | None:
        """The document and whole model of intent `name` of the default branch, read again from
        its file (the most recently used are kept)."""
        with self.lock:
            held, commit = self.intents.inputs.get(name), self.intents.commit
            repo = self.intents.repo
            if held is None or commit is None or repo is None:
                return None
            key = (commit, name)
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            data = self.file(commit, held.source or held.path)
            found = None
            if data is not None:
                doc = reload_intent(held.path, Entry(data, source=held.source), repo.project)
                if isinstance(doc.model, Intent):
                    found = (doc, doc.model)
            self._models[key] = found
            while len(self._models) > MODELS_KEPT:
                self._models.popitem(last=False)
            return found

    def intent_model(self, name: str) -> Intent | None:
        found = self.model(name)
        return found[1] if found else None

    def trace_document(self, execution: str) -> tuple[dict[str, Any], bytes] | None:
        """The whole Trace document of `execution` as JSON data and bytes, read again from git."""
        ref = self.executions.get(execution)
        if ref is None:
            return None
        reader = self.view.named if ":" in ref.blob else self.view.blobs
        data = reader([ref.blob], READ_CAP).get(ref.blob)
        if data is None:
            return None
        return json.loads(data), data

    def artifact_bytes(self, execution: str) -> bytes | None:
        """The artifact an execution ran, from its claim (which carries it)."""
        sha = self.view.refs.get(CLAIMS + execution)
        if sha is None:
            return None
        return self.view.named([f"{sha}:artifact.json"], READ_CAP).get(f"{sha}:artifact.json")

    def evidence(self, name: str) -> list[dict[str, Any]]:
        given = self.intents.inputs.get(name)
        if given is None:
            return []
        current = given.artifact.digest if given.artifact is not None else None
        return status_mod.evidence_for(given.summary.criteria, self.reported(name), current)


def _trace_path(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 3 and parts[0] == TRACES_DIR and parts[2].endswith(".json")


def _parse_trace(data: bytes) -> Trace | None:
    try:
        return Trace.model_validate_json(data)
    except ValidationError:
        return None
