"""Load one document: bytes -> text -> plain data -> model, with every problem as a diagnostic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from alloy.compile import compile_intent, compiles
from alloy.diagnostics import Diagnostic
from alloy.load._errors import Loc, from_validation_error, loc_text, suggest
from alloy.load._salvage import Salvaged, salvage, valid
from alloy.load._semantic import check_intent, inline_settings
from alloy.load._yaml import Parsed, YamlProblem, locate, parse, value_mark
from alloy.model import API_VERSION, KINDS, Intent, Project, Request

#: Which kind lives in which directory.
KIND_OF_DIR = {"intents": "Intent", "requests": "Request", "approvals": "Approval"}


@dataclass(frozen=True)
class Entry:
    """One file of a snapshot: its bytes, or why it was refused when it was read. `source` is
    the file the bytes were read from when the path is a symbolic link to it: the document's
    own file, where findings about its text are anchored."""

    data: bytes | None = None
    refusal: str | None = None
    source: str | None = None


@dataclass
class Ref:
    """A reference from one document to another, with where it was written."""

    field: str
    target: str
    line: int
    column: int
    where: str


@dataclass
class DocResult:
    """What loading one document found. All but `model`, `nearest` and `artifact` is cached."""

    path: str
    kind: str | None = None
    name: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    #: An invalid document's nearest valid model (`load/_salvage.py`), if one could be made;
    #: `facts["repaired"]` then lists the places taken out to make it.
    nearest: Any = None
    artifact: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "diagnostics": [
                [d.line, d.column, d.message, d.severity, d.where] for d in self.diagnostics
            ],
            "refs": [[r.field, r.target, r.line, r.column, r.where] for r in self.refs],
            "facts": self.facts,
        }

    @classmethod
    def from_json(cls, path: str, raw: dict[str, Any]) -> DocResult:
        return cls(
            path=path,
            kind=raw["kind"],
            name=raw["name"],
            diagnostics=[
                Diagnostic(path, d[0], d[1], d[2], d[3], d[4]) for d in raw["diagnostics"]
            ],
            refs=[Ref(*r) for r in raw["refs"]],
            facts=raw["facts"],
        )


def decode(path: str, data: bytes) -> tuple[str | None, Diagnostic | None]:
    """UTF-8 text of a file, or a diagnostic naming the first bad byte."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
        line = data.count(b"\n", 0, start) + 1
        col = start - (data.rfind(b"\n", 0, start) + 1) + 1
        return None, Diagnostic(
            path,
            line,
            col,
            f"not UTF-8 text (byte 0x{data[start]:02x}); save the file as UTF-8",
        )
    if "\x00" in text:
        pos = text.index("\x00")
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        return None, Diagnostic(path, line, col, "contains a NUL byte; this is not a text file")
    return text, None


def parse_entry(path: str, entry: Entry, max_bytes: int) -> tuple[Parsed | None, list[Diagnostic]]:
    if entry.refusal is not None or entry.data is None:
        return None, [Diagnostic(path, 1, 1, entry.refusal or "could not be read")]
    if len(entry.data) > max_bytes:
        return None, [
            Diagnostic(
                path,
                1,
                1,
                f"file is {len(entry.data)} bytes, over the limit of {max_bytes}; split it "
                "(or raise spec.policy.maxFileBytes in .alloy/alloy.yaml)",
            )
        ]
    text, problem = decode(path, entry.data)
    if problem is not None or text is None:
        return None, [problem] if problem else []
    try:
        return parse(text), []
    except YamlProblem as exc:
        return None, [Diagnostic(path, exc.line, exc.column, exc.message)]


def _envelope(
    path: str, parsed: Parsed, expected: str | None
) -> tuple[type[BaseModel] | None, list[Diagnostic]]:
    data = parsed.data
    node = parsed.node
    if not isinstance(data, dict):
        return None, [
            Diagnostic(
                path, 1, 1, "a document must be a mapping with apiVersion, kind, metadata and spec"
            )
        ]
    out: list[Diagnostic] = []
    api = data.get("apiVersion")
    newer = False
    if api is None:
        out.append(
            Diagnostic(
                path, 1, 1, "required field 'apiVersion' is missing; add `apiVersion: alloy.dev/v1`"
            )
        )
    elif api != "alloy.dev/v1":
        line, col = value_mark(node, ("apiVersion",))
        newer = isinstance(api, str) and api.startswith("alloy.dev/v")
        fix = (
            f"this Alloy reads only alloy.dev/v1; upgrade Alloy to read {api}, or write the "
            "document in alloy.dev/v1 (docs/format.md)"
            if newer
            else "write `apiVersion: alloy.dev/v1`"
        )
        out.append(
            Diagnostic(path, line, col, f"unknown apiVersion {api!r}; {fix}", where="apiVersion")
        )
    kind = data.get("kind")
    model: type[BaseModel] | None = None
    if kind is None:
        out.append(
            Diagnostic(
                path,
                1,
                1,
                "required field 'kind' is missing"
                + (f"; add `kind: {expected}`" if expected else ""),
            )
        )
    elif not isinstance(kind, str) or kind not in KINDS or kind in ("Artifact", "Trace"):
        line, col = value_mark(node, ("kind",))
        choices = ["Project", "Intent", "Request", "Approval"]
        hint = suggest(str(kind), choices) or f"; use one of: {', '.join(choices)}"
        if kind in ("Artifact", "Trace"):
            hint = f"; {kind} documents are written by tools, not kept here"
        out.append(Diagnostic(path, line, col, f"unknown kind {kind!r}{hint}", where="kind"))
    elif expected is not None and kind != expected:
        line, col = value_mark(node, ("kind",))
        out.append(
            Diagnostic(
                path,
                line,
                col,
                f"kind {kind} does not belong here; this directory holds {expected} documents"
                + _home_of(kind),
                where="kind",
            )
        )
    else:
        model = KINDS[kind]
    # A missing or misspelt apiVersion leaves the rest to check as alloy.dev/v1; a document
    # of another version is not read as this one.
    return (model if len(out) <= (0 if newer else 1) else None), out


def _home_of(kind: str) -> str:
    if kind == "Project":
        return "; the Project document is .alloy/alloy.yaml"
    home = next((d for d, k in KIND_OF_DIR.items() if k == kind), None)
    return f"; move the file to .alloy/{home}/" if home else ""


def load_document(
    path: str, entry: Entry, project: Project, *, expected: str | None, max_bytes: int
) -> DocResult:
    """Load, validate and check one document; for intents that compile, also compile it."""
    result = DocResult(path)
    parsed, problems = parse_entry(path, entry, max_bytes)
    if parsed is None:
        result.diagnostics = problems
        return result
    model_cls, problems = _envelope(path, parsed, expected)
    result.diagnostics = problems
    if model_cls is None:
        return result
    result.kind = model_cls.__name__
    data = parsed.data
    if problems:  # only the apiVersion is wrong (reported): the rest is checked as v1
        data = {**data, "apiVersion": API_VERSION}
    doc: Salvaged | None
    try:
        doc = valid(model_cls.model_validate(data))
    except ValidationError as exc:
        result.diagnostics += from_validation_error(path, parsed.node, model_cls, exc)
        meta = data.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("name"), str):
            result.name = meta["name"]
        # The checks that do not depend on what is wrong still run, on what can be salvaged.
        doc = salvage(model_cls, data)
        if doc is None:
            return result
        result.nearest = doc.model
    else:
        if not problems:
            result.model = doc.model
        result.name = doc.model.metadata.name  # type: ignore[attr-defined]
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if expected is not None and result.name != stem:
        line, col = value_mark(parsed.node, ("metadata", "name"))
        result.diagnostics.append(
            Diagnostic(
                path,
                line,
                col,
                f"{result.name!r} does not match the file name; rename the file "
                f"to {result.name}.yaml or set the name to {stem!r}",
                where="metadata.name",
            )
        )
    _checks_and_facts(result, doc, project, parsed)
    if doc.repaired:
        result.facts["repaired"] = [list(loc) for loc in doc.repaired]
    return result


def _checks_and_facts(result: DocResult, doc: Salvaged, project: Project, parsed: Parsed) -> None:
    """What one document says about others (`refs`, `facts`) and its own semantic findings;
    for an invalid document, from what could be salvaged of it."""
    model = doc.model
    if isinstance(model, Intent):
        _intent_facts(result, model, project, parsed, doc)
    elif isinstance(model, Request):
        name, _, digest = model.spec.artifact.partition("@")
        line, col = value_mark(parsed.node, ("spec", "artifact"))
        result.refs.append(Ref("artifact", name, line, col, "spec.artifact"))
        result.facts = {"digest": digest}
        if not doc.touches([("spec", "inputs")]):  # an input taken out is not missing
            result.facts["inputs"] = _jsonable(model.spec.inputs)
            result.facts["inputLines"] = {
                k: list(value_mark(parsed.node, ("spec", "inputs", k))) for k in model.spec.inputs
            }


def reload_intent(path: str, entry: Entry, project: Project) -> DocResult:
    """An intent document loaded again, model and artifact included (a result from the parse
    cache keeps diagnostics and facts, not models)."""
    return load_document(
        path, entry, project, expected="Intent", max_bytes=project.spec.policy.max_file_bytes
    )


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return dict(value)


def _intent_facts(
    result: DocResult, intent: Intent, project: Project, parsed: Parsed, doc: Salvaged
) -> None:
    node = parsed.node
    for finding in check_intent(intent, project):
        loc = doc.original(finding.loc)
        if doc.touches([loc]) or doc.touches(
            [doc.original(r) for r in finding.related], finding.about
        ):
            continue  # it follows from a part that is wrong and was taken out
        if finding.on_value:
            line, col = value_mark(node, loc)
        else:
            line, col, _ = locate(node, loc)
        result.diagnostics.append(
            Diagnostic(result.path, line, col, finding.message, finding.severity, loc_text(loc))
        )
    spec = intent.spec
    for fname, targets in (
        ("dependsOn", spec.relations.depends_on),
        ("supersedes", spec.relations.supersedes),
    ):
        for i, target in enumerate(targets):
            loc = doc.original(("spec", "relations", fname, i))
            line, col = value_mark(node, loc)
            result.refs.append(Ref(fname, target, line, col, loc_text(loc)))
    auto = spec.automation
    facts: dict[str, Any] = {"state": spec.state, "compiles": False}
    if auto is not None:
        for b, block in enumerate(auto.blocks):
            for g, gate in enumerate(block.gates):
                if gate.after is not None:
                    gate_loc: Loc = doc.original(
                        ("spec", "automation", "blocks", b, "gates", g, "after", "intent")
                    )
                    line, col = value_mark(node, gate_loc)
                    result.refs.append(
                        Ref("after", gate.after.intent, line, col, loc_text(gate_loc))
                    )
        facts["request"] = auto.on.request
        facts["inputs"] = {
            k: {"type": v.type, "required": v.required, "default": v.default}
            for k, v in auto.inputs.items()
        }
        if (
            auto.lane is not None
            and auto.lane.name not in project.spec.lanes
            and inline_settings(auto.lane)
            and not doc.touches([("spec", "automation", "lane")])
        ):
            line, col = value_mark(node, ("spec", "automation", "lane"))
            facts["lane"] = [
                auto.lane.name,
                auto.lane.model_dump(mode="json", by_alias=True, exclude={"name"}),
                line,
                col,
            ]
    if result.ok and compiles(intent):
        artifact = compile_intent(intent, project, result.path)
        result.artifact = artifact
        facts["compiles"] = True
        facts["digest"] = artifact["digest"]
    result.facts = facts
