"""The files of a `.alloy/` snapshot as the review sees them: which are documents, of what kind,
and their plain data (parsed only when needed, never executed)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from alloy.load import Entry, YamlProblem, parse

_DIR_KIND = {
    "intents": "Intent",
    "requests": "Request",
    "approvals": "Approval",
    "artifacts": "Artifact",
}
_DOC_RE = re.compile(r"^\.alloy/(intents|requests|approvals)/[^/]+\.yaml$")
_ARTIFACT_RE = re.compile(r"^\.alloy/artifacts/[^/]+\.json$")
PROJECT_PATH = ".alloy/alloy.yaml"


def is_reviewed(path: str) -> bool:
    """Whether a change to `path` is a document change (dot files and `*.md` notes are not)."""
    if not path.startswith(".alloy/") and path != ".alloy":
        return False
    name = path.rsplit("/", 1)[-1]
    return not (name.startswith(".") or name.endswith(".md"))


def kind_of_path(path: str) -> str:
    """The kind a file holds by where it lives: Intent, Request, Approval, Artifact, Project,
    or `unknown` (a file the loader refuses for its place)."""
    if path == PROJECT_PATH:
        return "Project"
    if _DOC_RE.match(path) or _ARTIFACT_RE.match(path):
        return _DIR_KIND[path.split("/")[1]]
    return "unknown"


def stem_of(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


@lru_cache(maxsize=1024)
def _parse_bytes(data: bytes, as_json: bool) -> Any:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if as_json:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return None
    try:
        return parse(text).data
    except (YamlProblem, RecursionError):
        return None


def data_of(path: str, entry: Entry | None) -> Any:
    """Plain data of a file (YAML, or JSON for artifacts), or None when it cannot be read.

    Parsing is the loader's: plain data only, no tags, bounded aliases."""
    if entry is None or entry.data is None:
        return None
    return _parse_bytes(entry.data, path.endswith(".json"))


def text_of(entry: Entry | None) -> str:
    if entry is None:
        return ""
    if entry.data is None:
        return entry.refusal or ""
    return entry.data.decode("utf-8", errors="replace")


def name_of(path: str, data: Any) -> str:
    """`metadata.name` of a document, or its file name when it has none."""
    if isinstance(data, dict):
        meta = data.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("name"), str):
            return str(meta["name"])
    return stem_of(path)


def get_in(data: Any, loc: tuple[str | int, ...]) -> Any:
    """The value at `loc` in plain data (None when absent)."""
    current = data
    for part in loc:
        if isinstance(current, dict) and isinstance(part, str):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            return None
    return current


def documents(snapshot: Mapping[str, Entry]) -> dict[str, Entry]:
    """The reviewed files of a snapshot, by path."""
    return {p: e for p, e in snapshot.items() if is_reviewed(p)}
