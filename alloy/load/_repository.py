"""Load every document of a snapshot of `.alloy/`, each once, and check them against each other."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from alloy.diagnostics import Diagnostic
from alloy.load._document import KIND_OF_DIR, DocResult, Entry, load_document
from alloy.load._errors import suggest
from alloy.load._parallel import load_documents
from alloy.load._salvage import related
from alloy.load._semantic import find_cycle
from alloy.model import DEFAULT_PROJECT, Project
from alloy.model.project import Policy

PROJECT_PATH = ".alloy/alloy.yaml"
_DOC_RE = re.compile(r"^\.alloy/(intents|requests|approvals)/([^/]+)\.yaml$")
_ARTIFACT_RE = re.compile(r"^\.alloy/artifacts/([^/]+)\.json$")
_KNOWN_DIRS = ("intents", "requests", "approvals", "artifacts")
#: The project file's own size limit (it cannot be raised by itself).
PROJECT_MAX_BYTES = 1024 * 1024


class DocumentCache(Protocol):
    """Results of loading documents, by a key made of the path and the content hash."""

    def get(self, key: str) -> DocResult | None: ...

    def put(self, key: str, result: DocResult) -> None: ...


@dataclass
class Repository:
    """Every document under `.alloy/` of one snapshot, loaded and checked."""

    project: Project
    docs: dict[str, DocResult] = field(default_factory=dict)
    artifact_files: dict[str, Entry] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    project_digest: str = ""

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def intents(self) -> dict[str, DocResult]:
        """Valid-or-not intents by name (documents whose kind could be read)."""
        return {d.name: d for d in self.docs.values() if d.kind == "Intent" and d.name is not None}

    def of_kind(self, kind: str) -> list[DocResult]:
        return [d for d in self.docs.values() if d.kind == kind]


def content_key(path: str, data: bytes) -> str:
    return path + "\0" + hashlib.sha256(data).hexdigest()


def load_project(snapshot: Mapping[str, Entry]) -> tuple[Project, DocResult | None]:
    entry = snapshot.get(PROJECT_PATH)
    if entry is None:
        return DEFAULT_PROJECT, None
    result = load_document(
        PROJECT_PATH, entry, DEFAULT_PROJECT, expected=None, max_bytes=PROJECT_MAX_BYTES
    )
    if result.kind not in (None, "Project") and result.ok:
        result.diagnostics.append(
            Diagnostic(PROJECT_PATH, 1, 1, f"must be a Project document, not kind {result.kind}")
        )
    if result.ok and isinstance(result.model, Project):
        return result.model, result
    if isinstance(result.nearest, Project):  # its valid settings still hold
        return result.nearest, result
    return DEFAULT_PROJECT, result


def _lanes_known(project_result: DocResult | None) -> bool:
    """Whether the project's lanes are the ones its file defines (an invalid project file is
    read without its wrong parts, or not at all)."""
    if project_result is None or project_result.ok:
        return True
    if not isinstance(project_result.nearest, Project):
        return False
    return not any(
        related(tuple(loc), ("spec", "lanes")) for loc in project_result.facts.get("repaired", [])
    )


def load_repository(
    snapshot: Mapping[str, Entry],
    cache: DocumentCache | None = None,
    *,
    policy: Policy | None = None,
) -> Repository:
    """Load and check every document; one bad file never hides errors in the others.

    `policy`, when given, is what the documents are checked against instead of the project's
    own (a review checks a head against the stricter of the base's and the head's); the cache
    must then hold results made under that same policy."""
    project, project_result = load_project(snapshot)
    if policy is not None and policy != project.spec.policy:
        project = project.model_copy(
            update={"spec": project.spec.model_copy(update={"policy": policy})}
        )
    repo = Repository(project=project)
    if project_result is not None:
        repo.diagnostics.extend(project_result.diagnostics)
    elif ".alloy" not in snapshot:  # when .alloy/ itself is refused, that refusal says it all
        repo.diagnostics.append(
            Diagnostic(PROJECT_PATH, 0, 0, "missing; run `alloy init` to create it")
        )
    repo.project_digest = hashlib.sha256(
        project.model_dump_json(by_alias=True).encode()
    ).hexdigest()
    max_bytes = project.spec.policy.max_file_bytes
    results = _documents(snapshot, cache, project, max_bytes)
    # When the project file's lanes are wrong or unread, saying that an intent's lane is
    # unknown would be a guess.
    lanes_known = _lanes_known(project_result)
    for path in sorted(snapshot):
        entry = snapshot[path]
        if path == PROJECT_PATH:
            continue
        if entry.refusal is not None and not _DOC_RE.match(path):
            # Refused when read (a symbolic link out of the repository, say): say so, whatever
            # the path would otherwise have been.
            repo.diagnostics.append(Diagnostic(path, 1, 1, entry.refusal))
            continue
        match = _DOC_RE.match(path)
        if match:
            result = results[path]
            repo.docs[path] = result
            repo.diagnostics.extend(
                d for d in result.diagnostics if lanes_known or not _unknown_lane(d)
            )
        elif _ARTIFACT_RE.match(path):
            repo.artifact_files[path] = entry
        else:
            problem = _layout_problem(path)
            if problem:
                repo.diagnostics.append(Diagnostic(path, 1, 1, problem))
    repo.diagnostics.extend(_cross_checks(repo))
    return repo


def _documents(
    snapshot: Mapping[str, Entry], cache: DocumentCache | None, project: Project, max_bytes: int
) -> dict[str, DocResult]:
    """The result of every document: from the cache, or loaded (on every core when many are)."""
    out: dict[str, DocResult] = {}
    todo: list[tuple[str, Entry, str, str | None]] = []
    for path in sorted(snapshot):
        match = _DOC_RE.match(path)
        if match is None:
            continue
        entry = snapshot[path]
        key = content_key(path, entry.data) if entry.data is not None else None
        result = cache.get(key) if (cache is not None and key is not None) else None
        if result is None:
            todo.append((path, entry, KIND_OF_DIR[match.group(1)], key))
        else:
            out[path] = result
    jobs = [(p, e, kind) for p, e, kind, _ in todo]
    loaded = load_documents(jobs, project, max_bytes, load_document)
    for (path, _, _, key), result in zip(todo, loaded, strict=True):
        if cache is not None and key is not None:
            cache.put(key, result)
        out[path] = result
    return out


def _layout_problem(path: str) -> str | None:
    parts = path.split("/")
    name = parts[-1]
    if name.startswith(".") or name.endswith(".md"):
        return None  # .gitkeep, README.md and the like are welcome
    if len(parts) == 3 and parts[1] in _KNOWN_DIRS:
        stem, dot, ext = name.rpartition(".")
        wanted = "json" if parts[1] == "artifacts" else "yaml"
        if dot and ext in ("yml", "yaml", "json"):
            return f"unexpected file type; name it {stem}.{wanted}"
        return f"unexpected file; {parts[1]}/ holds only .{wanted} files"
    if len(parts) > 3 and parts[1] in _KNOWN_DIRS:
        return f"{parts[1]}/ has no subdirectories; move the file to .alloy/{parts[1]}/{name}"
    if len(parts) >= 3:
        hint = suggest(parts[1], _KNOWN_DIRS)
        return (
            f"unknown directory .alloy/{parts[1]}/{hint or '; allowed: ' + ', '.join(_KNOWN_DIRS)}"
        )
    dirs = ", ".join(f"{d}/" for d in _KNOWN_DIRS)
    return f"unexpected file in .alloy/; documents live in {dirs} and alloy.yaml"


def _unknown_lane(d: Diagnostic) -> bool:
    return d.where == "spec.automation.lane.name" and d.message.startswith("unknown lane ")


def _invalid_intents(repo: Repository) -> set[str]:
    """Names of intents that exist but are invalid: their names as written, and their file
    names (all a document that could not be read at all still tells). A reference to one of
    them is not to an unknown intent; the intent's own errors say what is wrong."""
    out: set[str] = set()
    for path, doc in repo.docs.items():
        if path.startswith(".alloy/intents/") and not doc.ok:
            out.add(path.rsplit("/", 1)[-1].removesuffix(".yaml"))
            if doc.name is not None:
                out.add(doc.name)
    return out


def _cross_checks(repo: Repository) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    intents = repo.intents()
    invalid = _invalid_intents(repo)
    lanes: dict[str, tuple[dict[str, Any], str]] = {}
    for doc in sorted(intents.values(), key=lambda d: d.path):
        for ref in doc.refs:
            target = intents.get(ref.target)
            if target is None and ref.target in invalid:
                continue
            if target is None:
                what = {
                    "dependsOn": "depends on",
                    "supersedes": "supersedes",
                    "after": "waits for",
                }[ref.field]
                out.append(
                    Diagnostic(
                        doc.path,
                        ref.line,
                        ref.column,
                        f"{what} unknown intent {ref.target!r}{suggest(ref.target, intents)}",
                        where=ref.where,
                    )
                )
            elif ref.field == "dependsOn" and target.facts.get("state") in ("retired", "rejected"):
                out.append(
                    Diagnostic(
                        doc.path,
                        ref.line,
                        ref.column,
                        f"depends on {ref.target!r}, which is {target.facts['state']}",
                        severity="warning",
                        where=ref.where,
                    )
                )
        lane = doc.facts.get("lane")
        if lane:
            name, settings, line, col = lane
            if name in lanes and lanes[name][0] != settings:
                out.append(
                    Diagnostic(
                        doc.path,
                        line,
                        col,
                        f"lane {name!r} has different settings in {lanes[name][1]}; define it once "
                        "in .alloy/alloy.yaml under spec.lanes",
                        where="spec.automation.lane",
                    )
                )
            lanes.setdefault(name, (settings, doc.path))
    graph = {
        name: [r.target for r in doc.refs if r.field == "dependsOn" and r.target in intents]
        for name, doc in intents.items()
    }
    cycle = find_cycle(graph)
    if cycle:
        doc = intents[cycle[0]]
        ref = next(r for r in doc.refs if r.field == "dependsOn" and r.target == cycle[1])
        out.append(
            Diagnostic(
                doc.path,
                ref.line,
                ref.column,
                f"dependsOn forms a cycle: {' -> '.join(cycle)}; remove one of these links",
                where=ref.where,
            )
        )
    for doc in repo.of_kind("Request"):
        out.extend(_check_request(doc, intents, invalid))
    return out


def _check_request(
    doc: DocResult, intents: dict[str, DocResult], invalid: set[str]
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    ref = next((r for r in doc.refs if r.field == "artifact"), None)
    if ref is None or ref.target in invalid:
        return out  # the intent's own errors say why it has no artifact
    target = intents.get(ref.target)
    if target is None or not target.facts.get("compiles"):
        why = (
            "no such intent"
            if target is None
            else "that intent has no artifact (it is not accepted or active with automation)"
        )
        out.append(
            Diagnostic(
                doc.path,
                ref.line,
                ref.column,
                f"requests artifact {ref.target!r}, but {why}{suggest(ref.target, intents) if target is None else ''}",
                where=ref.where,
            )
        )
        return out
    if not target.facts.get("request"):
        out.append(
            Diagnostic(
                doc.path,
                ref.line,
                ref.column,
                f"intent {ref.target!r} does not accept requests; set spec.automation.on.request: true there",
                where=ref.where,
            )
        )
    if target.facts.get("digest") != doc.facts.get("digest"):
        out.append(
            Diagnostic(
                doc.path,
                ref.line,
                ref.column,
                f"pinned to an older digest of {ref.target!r}; it will be reported, not run "
                "(make a new request with `alloy request`)",
                severity="warning",
                where=ref.where,
            )
        )
    if "inputs" not in doc.facts:
        return out  # the request's inputs are wrong in themselves (reported with the request)
    declared: dict[str, Any] = target.facts.get("inputs", {})
    given: dict[str, Any] = doc.facts["inputs"]
    lines: dict[str, list[int]] = doc.facts.get("inputLines", {})
    for name, value in sorted(given.items()):
        line, col = lines.get(name, [ref.line, ref.column])
        spec = declared.get(name)
        if spec is None:
            out.append(
                Diagnostic(
                    doc.path,
                    line,
                    col,
                    f"unknown input {name!r}{suggest(name, declared) or '; declared: ' + (', '.join(sorted(declared)) or 'none')}",
                    where=f"spec.inputs.{name}",
                )
            )
        elif not _type_ok(spec["type"], value):
            out.append(
                Diagnostic(
                    doc.path,
                    line,
                    col,
                    f"input {name!r} must be of type {spec['type']}, not {value!r}",
                    where=f"spec.inputs.{name}",
                )
            )
    for name, spec in sorted(declared.items()):
        if spec["required"] and spec.get("default") is None and name not in given:
            out.append(
                Diagnostic(
                    doc.path,
                    ref.line,
                    ref.column,
                    f"required input {name!r} is missing; add it under spec.inputs",
                    where="spec.inputs",
                )
            )
    return out


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)
