"""Read artifacts and requests from a snapshot, refusing anything Foundry cannot run exactly;
read a Trace back (`read_trace`), refusing anything Foundry would not have written.

Order of checks: the file is JSON (or YAML for requests) of plain data; apiVersion and kind are
ones this Foundry reads; the digest matches the content; every field and gate kind is known.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from foundry._version import BOUNDARY_VERSION, __version__
from foundry.boundary._canonical import digest_of
from foundry.boundary._models import GATE_KINDS, Approval, Artifact, Request, Trace
from foundry.errors import BoundaryError

M = TypeVar("M", bound=BaseModel)
MAX_BYTES = 1024 * 1024
#: A trace holds up to 16 KiB of log tail per attempt: it may be far larger than an artifact.
TRACE_MAX_BYTES = 64 * 1024 * 1024
_ARTIFACT = re.compile(r"^\.alloy/artifacts/([^/]+)\.json$")
_REQUEST = re.compile(r"^\.alloy/requests/([^/]+)\.yaml$")
_APPROVAL = re.compile(r"^\.alloy/approvals/([^/]+)\.yaml$")


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in GATE_KINDS and out.endswith("]"):
            continue  # the discriminator's tag, not a field
        else:
            out += ("." if out else "") + str(part)
    return out


def _needs(document: Mapping[str, Any]) -> str:
    spec = document.get("spec")
    provenance = spec.get("provenance") if isinstance(spec, dict) else None
    requires = provenance.get("requires") if isinstance(provenance, dict) else None
    if isinstance(requires, str):
        return f"it needs {requires}"
    return f"it needs a Foundry newer than {__version__}"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _refuse_model(
    path: str,
    document: Mapping[str, Any],
    exc: ValidationError,
    *,
    what: str = "the artifact",
    needs: str | None = None,
) -> BoundaryError:
    for err in exc.errors(include_url=False):
        where = _loc(tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            return BoundaryError(
                path,
                f"{where}: unknown field; Foundry {__version__} does not know it and refuses "
                f"{what} rather than ignore it ({needs or _needs(document)})",
            )
        if err["type"] == "union_tag_invalid":
            tag = (err.get("ctx") or {}).get("tag", "?")
            return BoundaryError(
                path,
                f"{where}: unknown gate kind {tag!r}; Foundry {__version__} knows "
                f"{', '.join(GATE_KINDS)} ({_needs(document)})",
            )
    first = exc.errors(include_url=False)[0]
    message = first["msg"].removeprefix("Value error, ")  # a validator's own words
    return BoundaryError(path, f"{_loc(tuple(first['loc']))}: {message}")


def _envelope(path: str, document: Any, kind: str) -> None:
    if not isinstance(document, dict):
        raise BoundaryError(path, "not a document (expected a JSON object)")
    api = document.get("apiVersion")
    if api != BOUNDARY_VERSION:
        raise BoundaryError(
            path,
            f"apiVersion {api!r} is not read by Foundry {__version__} (it reads "
            f"{BOUNDARY_VERSION}); upgrade Foundry",
        )
    if document.get("kind") != kind:
        raise BoundaryError(path, f"kind {document.get('kind')!r} where {kind} was expected")


def _json_document(path: str, data: bytes, limit: int) -> Any:
    if len(data) > limit:
        raise BoundaryError(path, f"larger than {limit} bytes; refused")
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BoundaryError(path, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise BoundaryError(path, "not valid JSON: nested too deeply") from None


def read_artifact(path: str, data: bytes) -> Artifact:
    """An artifact, verified: its digest matches its content, and Foundry knows every field."""
    document = _json_document(path, data, MAX_BYTES)
    _envelope(path, document, "Artifact")
    try:
        actual = digest_of(document)
    except ValueError as exc:
        raise BoundaryError(path, str(exc)) from None
    if document.get("digest") != actual:
        raise BoundaryError(
            path,
            "digest does not match the content (edited by hand?); run `alloy compile` and "
            "review the change",
        )
    try:
        artifact = Artifact.model_validate(document)
    except ValidationError as exc:
        raise _refuse_model(path, document, exc) from None
    needed = _version(artifact.spec.provenance.requires.removeprefix("foundry>="))
    if needed > _version(__version__):
        raise BoundaryError(
            path,
            f"it needs {artifact.spec.provenance.requires}; this is Foundry {__version__}: upgrade "
            "Foundry to run it",
        )
    match = _ARTIFACT.match(path)
    if match and match.group(1) != artifact.metadata.name:
        raise BoundaryError(path, f"holds artifact {artifact.metadata.name!r}; file name differs")
    return artifact


def read_trace(path: str, data: bytes) -> dict[str, Any]:
    """A Trace document (JSON), validated closed (`Trace`: the fields, enums, patterns and
    required fields of the boundary's trace schema, strictly typed, so no float; times that
    are real dates). Returned as the plain data read, which is what the renderers of
    `foundry.traces` take."""
    document = _json_document(path, data, TRACE_MAX_BYTES)
    _envelope(path, document, "Trace")
    try:
        Trace.model_validate(document)
    except ValidationError as exc:
        raise _refuse_model(
            path, document, exc, what="the trace", needs="written by a newer Foundry?"
        ) from None
    result: dict[str, Any] = document
    return result


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


class _Core12Loader(yaml.CSafeLoader):
    """YAML 1.2 core-schema scalars, as Alloy reads them: `yes`, `on`, `no` and dates stay
    strings. With YAML 1.1 rules (PyYAML's default) the same request would hold other values
    than Alloy wrote, so its digest, and the execution id, would differ between the two."""

    def construct_core_int(self, node: yaml.ScalarNode) -> int:
        value = str(self.construct_scalar(node))
        return int(value, 0) if value[:2] in ("0o", "0x") else int(value)

    def construct_core_float(self, node: yaml.ScalarNode) -> float:
        value = str(self.construct_scalar(node))
        return float(value.replace(".", "", 1) if value[-1] in "fFnN" else value)


_Core12Loader.yaml_implicit_resolvers = {}  # none of YAML 1.1's; the four below instead
for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        (
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+.0123456789",
    ),
):
    _Core12Loader.add_implicit_resolver(
        f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), list(_first)
    )
_Core12Loader.add_constructor("tag:yaml.org,2002:int", _Core12Loader.construct_core_int)
_Core12Loader.add_constructor("tag:yaml.org,2002:float", _Core12Loader.construct_core_float)


#: The tags a request may hold (implicit or written out): plain data, as Alloy reads it.
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")
)


def _plain_nodes(path: str, node: yaml.Node) -> None:
    """Refuse what is not plain data before anything is constructed: aliases, tags other than
    plain scalars, lists and mappings, merge keys, and duplicate keys (Alloy refuses each, so a
    request Foundry runs always holds what `alloy check` read)."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            raise BoundaryError(path, "aliases are not allowed in requests")
        seen.add(id(current))
        if current.tag not in _PLAIN_TAGS:
            raise BoundaryError(
                path, f"not valid YAML: tag {current.tag!r} is not allowed (plain data only)"
            )
        if isinstance(current, yaml.MappingNode):
            keys: set[Any] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in keys:
                        raise BoundaryError(path, f"duplicate key {key.value!r}")
                    keys.add(key.value)
                stack.extend((key, value))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _plain_yaml(path: str, text: str) -> Any:
    loader = _Core12Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise BoundaryError(path, "empty document")
        _plain_nodes(path, node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise BoundaryError(path, f"not valid YAML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, say
        raise BoundaryError(path, f"not plain YAML data: {exc}") from None
    finally:
        loader.dispose()


def _yaml_document(path: str, data: bytes, kind: str) -> Any:
    if len(data) > MAX_BYTES:
        raise BoundaryError(path, f"larger than {MAX_BYTES} bytes; refused")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BoundaryError(path, "not UTF-8 text") from None
    document = _plain_yaml(path, text)
    _envelope(path, document, kind)
    return document


def _read_closed(path: str, data: bytes, model: type[M], name_in_path: re.Pattern[str]) -> M:
    """A YAML document of kind `model` (named like the class), validated closed; its file
    name must be its `metadata.name`."""
    kind = model.__name__
    document = _yaml_document(path, data, kind)
    try:
        value = model.model_validate(document)
    except ValidationError as exc:
        raise _refuse_model(path, document, exc) from None
    match = name_in_path.match(path)
    name = value.metadata.name  # type: ignore[attr-defined]
    if match and match.group(1) != name:
        raise BoundaryError(path, f"holds {kind.lower()} {name!r}; file name differs")
    return value


def read_request(path: str, data: bytes) -> Request:
    """A request document (YAML), as plain data, closed."""
    return _read_closed(path, data, Request, _REQUEST)


def read_approval(path: str, data: bytes) -> Approval:
    """An approval document (YAML), as plain data, closed."""
    return _read_closed(path, data, Approval, _APPROVAL)


@dataclass
class Boundary:
    """What one snapshot of a repository asks Foundry to run."""

    artifacts: dict[str, Artifact] = field(default_factory=dict)
    requests: dict[str, Request] = field(default_factory=dict)
    refused: list[BoundaryError] = field(default_factory=list)


def read_boundary(snapshot: Mapping[str, bytes]) -> Boundary:
    """Every artifact and request of a snapshot (path -> bytes); refusals are collected."""
    out = Boundary()
    for path in sorted(snapshot):
        try:
            if _ARTIFACT.match(path):
                artifact = read_artifact(path, snapshot[path])
                out.artifacts[artifact.metadata.name] = artifact
            elif _REQUEST.match(path):
                request = read_request(path, snapshot[path])
                out.requests[request.metadata.name] = request
        except BoundaryError as exc:
            out.refused.append(exc)
    return out
