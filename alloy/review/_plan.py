"""What merging would start: Foundry's plan over the head artifacts, computed from the boundary
as data (DESIGN sections 4 and 5), without importing Foundry.

The head's artifact files (`.alloy/artifacts/<name>.json`) and Request documents are read as
data, exactly as Foundry reads them after the merge: an artifact whose digest does not match its
content, or that is not a valid `alloy.dev/v1` artifact, is refused by Foundry and so starts
nothing. An execution is shown when the merge causes it (the base would not have asked for it)
and it is not already recorded on the traces branch. Execution ids follow the boundary's
formula (docs/foundry.md, "Execution identity"), so they are the ids Foundry will use.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import ValidationError

from alloy.compile import document_digest
from alloy.load import DocResult, Entry, Repository, load_document
from alloy.model import Artifact, Request
from alloy.review._model import Start

Event = Literal["apply", "push", "schedule", "request"]
_ARTIFACT_RE = re.compile(r"^\.alloy/artifacts/([^/]+)\.json$")
#: The key and id of a push start: the merge commit is not known before the merge.
MERGE_COMMIT = "(merge commit)"
AT_MERGE = "(at merge)"
#: The id of a schedule start: the slot is the next one due after the merge.
NEXT_SLOT = "(next slot)"


def execution_id(artifact_digest: str, event_type: str, event_key: str) -> str:
    """`exe-` + 16 hex digits of sha256(artifact digest, event type, event key), joined by NUL:
    the boundary's execution identity, the same as Foundry's (tests check it against Foundry)."""
    material = "\0".join((artifact_digest, event_type, event_key)).encode()
    return "exe-" + hashlib.sha256(material).hexdigest()[:16]


def request_digest(request: Request) -> str:
    """The content digest of a Request document: sha256 of the canonical JSON of the validated
    document (defaults applied), as Foundry computes it for the request's event key."""
    return document_digest(request.model_dump(mode="json", by_alias=True))


def request_key(request: Request) -> str:
    """The event key of a request: `<name>@<content digest>`."""
    return f"{request.metadata.name}@{request_digest(request)}"


@lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A push path pattern: `**` matches across directories, `*` and `?` within one."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def touched(paths: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The paths that match any of the patterns, in order."""
    return [p for p in paths if any(glob_regex(g).match(p) for g in patterns)]


@dataclass(frozen=True)
class _Artifact:
    name: str
    intent: str
    digest: str
    triggers: Mapping[str, Any]


def artifact_path(name: str) -> str:
    return f".alloy/artifacts/{name}.json"


class _Artifacts:
    """The artifact files of one snapshot, each read and checked only when asked for (a change
    to one intent among thousands reads one or two)."""

    def __init__(self, files: Mapping[str, Entry]) -> None:
        self.files = files
        self._read: dict[str, _Artifact | None] = {}

    def names(self) -> list[str]:
        return sorted(m.group(1) for m in map(_ARTIFACT_RE.match, self.files) if m is not None)

    def data(self, name: str) -> bytes | None:
        entry = self.files.get(artifact_path(name))
        return entry.data if entry is not None else None

    def get(self, name: str) -> _Artifact | None:
        """The artifact as Foundry would run it: valid, named after its file, and with a digest
        that matches its content (a hand edit is refused, so it starts nothing)."""
        if name not in self._read:
            self._read[name] = _read_artifact(name, self.data(name))
        return self._read[name]


_DECODER = json.JSONDecoder()
_PUSH_KEY = b'"push": {'


def push_patterns(data: bytes) -> list[str]:
    """The push path patterns an artifact file says, read cheaply (a review of one change
    among thousands of artifacts must not parse them all): in the compiler's format the key
    `"push"` appears once, as the trigger, and only its object is decoded; any other spelling
    is parsed in full. Not a check of the artifact: a match is read again by `_read_artifact`."""
    at = data.find(b'"push"')
    if at < 0:
        return []
    if data.startswith(_PUSH_KEY, at) and data.find(b'"push"', at + 1) < 0:
        try:
            found, _ = _DECODER.raw_decode(data[at + len(_PUSH_KEY) - 1 :].decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return []  # not JSON: Foundry refuses it
        if isinstance(found, dict) and list(found) == ["paths"]:
            return [p for p in found["paths"] if isinstance(p, str)]
    try:
        document = json.loads(data)
        paths = document["spec"]["triggers"]["push"]["paths"]
    except (ValueError, RecursionError, KeyError, TypeError):
        return []
    return [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []


def _read_artifact(name: str, data: bytes | None) -> _Artifact | None:
    if data is None:
        return None
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    try:
        if document.get("digest") != document_digest(document):
            return None
        artifact = Artifact.model_validate(document)
    except (ValueError, ValidationError):  # floats, or not an artifact
        return None
    if artifact.metadata.name != name:
        return None
    return _Artifact(name, artifact.spec.intent.name, artifact.digest, document["spec"]["triggers"])


def _request_model(
    doc: DocResult, repo: Repository, snapshot: Mapping[str, Entry] | None
) -> Request | None:
    """The request as Foundry reads it: any document that validates as a Request (the loader's
    checks against other documents are the review's findings, not Foundry's business), named
    after its file as Foundry requires."""
    model = doc.model
    if not isinstance(model, Request):
        entry = (snapshot or {}).get(doc.path)
        if entry is None:
            return None
        model = load_document(
            doc.path,
            entry,
            repo.project,
            expected="Request",
            max_bytes=repo.project.spec.policy.max_file_bytes,
        ).model
    if not isinstance(model, Request) or doc.path != f".alloy/requests/{model.metadata.name}.yaml":
        return None
    return model


def _runnable(request: Request, artifacts: _Artifacts) -> _Artifact | None:
    """The artifact a request runs: it exists, accepts requests, and has the pinned digest."""
    name, _, digest = request.spec.artifact.partition("@")
    target = artifacts.get(name)
    if target is None or not target.triggers.get("request") or target.digest != digest:
        return None
    return target


def would_start(
    base: Repository,
    head: Repository,
    head_snapshot: Mapping[str, Entry],
    *,
    recorded: frozenset[str],
    changed_paths: Sequence[str],
    base_snapshot: Mapping[str, Entry] | None = None,
) -> list[Start]:
    """The executions that merging `head` would start, new ones only.

    * apply: an artifact with `triggers.apply` whose digest the base did not have;
    * push: an artifact whose `triggers.push.paths` match any of `changed_paths` (the paths the
      pull request changes, from the top of the repository): key `(merge commit)`, id
      `(at merge)`, both known only once merged;
    * schedule: an artifact with a schedule that is new or whose digest changed: key the cron,
      id `(next slot)`;
    * request: a Request of the head, pinned to the head digest of an artifact that accepts
      requests, that the base would not already have run (new, changed, or newly runnable).

    Executions in `recorded` (ids already on the traces branch) are left out. `base_snapshot`
    is needed only when `base` was loaded through the parse cache (to read its requests).
    """
    head_artifacts, base_artifacts = _Artifacts(head_snapshot), _Artifacts(base.artifact_files)
    out: list[Start] = []

    def add(art: _Artifact, event: Event, key: str, execution: str, reason: str) -> None:
        if execution not in recorded:
            out.append(Start(art.name, art.intent, event, key, execution, reason))

    for name in head_artifacts.names():
        data = head_artifacts.data(name)
        if data is None:
            continue
        if data == base_artifacts.data(name) and not (
            changed_paths and touched(changed_paths, push_patterns(data))
        ):
            continue  # the same artifact as before: only a push can start it again
        art = head_artifacts.get(name)
        if art is None:
            continue
        before = base_artifacts.get(name)
        changed = before is None or before.digest != art.digest
        triggers = art.triggers
        if triggers.get("apply") and changed:
            add(
                art,
                "apply",
                art.digest,
                execution_id(art.digest, "apply", art.digest),
                "apply: new artifact digest",
            )
        push = triggers.get("push")
        if push is not None:
            hits = touched(changed_paths, push["paths"])
            if hits:
                more = f" and {len(hits) - 1} more" if len(hits) > 1 else ""
                add(
                    art,
                    "push",
                    MERGE_COMMIT,
                    AT_MERGE,
                    f"push: the merge commit touches {hits[0]}{more} ({', '.join(push['paths'])})",
                )
        schedule = triggers.get("schedule")
        if schedule is not None and changed:
            was = before.triggers.get("schedule") if before is not None else None
            why = "new schedule" if was is None else "the schedule's artifact changed"
            add(
                art,
                "schedule",
                schedule["cron"],
                NEXT_SLOT,
                f"schedule: {why}; next slot of {schedule['cron']} ({schedule['timezone']})",
            )
    base_requests = {d.path: d for d in base.of_kind("Request")}
    for doc in sorted(head.of_kind("Request"), key=lambda d: d.path):
        target_name = next((r.target for r in doc.refs if r.field == "artifact"), None)
        earlier_doc = base_requests.get(doc.path)
        if (
            earlier_doc is not None
            and target_name is not None
            and _same_bytes(doc.path, base_snapshot, head_snapshot)
            and head_artifacts.data(target_name) == base_artifacts.data(target_name)
        ):
            continue  # the same request for the same artifact: the base asked for it already
        request = _request_model(doc, head, head_snapshot)
        if request is None:
            continue
        target = _runnable(request, head_artifacts)
        if target is None:
            continue
        key = request_key(request)
        execution = execution_id(target.digest, "request", key)
        earlier = (
            _request_model(earlier_doc, base, base_snapshot) if earlier_doc is not None else None
        )
        earlier_target = _runnable(earlier, base_artifacts) if earlier is not None else None
        if (
            earlier is not None
            and earlier_target is not None
            and execution_id(earlier_target.digest, "request", request_key(earlier)) == execution
        ):
            continue  # the base already asked for this very execution
        add(
            target,
            "request",
            key,
            execution,
            f"request {request.metadata.name} by {request.spec.requested_by}: "
            f"{request.spec.reason}",
        )
    return sorted(out, key=lambda s: (s.artifact, s.event, s.key))


def _same_bytes(
    path: str, base: Mapping[str, Entry] | None, head: Mapping[str, Entry] | None
) -> bool:
    before, after = (base or {}).get(path), (head or {}).get(path)
    return before is not None and after is not None and before.data == after.data


__all__ = [
    "AT_MERGE",
    "MERGE_COMMIT",
    "NEXT_SLOT",
    "execution_id",
    "glob_regex",
    "push_patterns",
    "request_digest",
    "request_key",
    "touched",
    "would_start",
]
