"""What git says happened: an intent's lifecycle moves and the repository's activity.

Both are read from the default branch's first-parent history (what was merged, by whom, when),
and cached by the commit they were read at: the page of an unchanged repository reads git once.
"""

from __future__ import annotations

import re
from typing import Any

from alloy import status as status_mod
from alloy.load import YamlProblem, parse
from alloy.web._repo import READ_CAP, RepoState

_PULL = re.compile(r"(?:#|pull request #|!)(\d+)")
_HISTORY_LIMIT = 200
ACTIVITY_LIMIT = 200


def _state_of(data: bytes | None) -> str | None:
    """The lifecycle state an intent file says (`spec.state`, proposed when absent), read by the
    loader's YAML parser (bounded nesting, aliases and size); None when it says none."""
    if data is None:
        return None
    try:
        doc = parse(data.decode("utf-8")).data
    except (YamlProblem, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict):
        return None
    value = doc["spec"].get("state", "proposed")
    return value if isinstance(value, str) else None


def _pull(subject: str) -> int | None:
    found = _PULL.search(subject)
    return int(found.group(1)) if found else None


def lifecycle(
    state: RepoState, name: str, cache: dict[tuple[str, str], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The moves of intent `name` between lifecycle states, oldest first: the state it moved to
    (from), the commit that merged it, who and when, and the pull request its subject names."""
    given = state.intents.inputs.get(name)
    commit = state.intents.commit
    if given is None or commit is None:
        return []
    key = (commit, given.path)
    if key in cache:
        return cache[key]
    entries = state.view.log(commit, [given.path], limit=_HISTORY_LIMIT)
    # Every version at once (one batch read); a version larger than READ_CAP is not read.
    versions = state.view.named([f"{e.commit}:{given.path}" for e in entries], READ_CAP)
    moves: list[dict[str, Any]] = []
    previous: str | None = None
    for entry in reversed(entries):
        current = _state_of(versions.get(f"{entry.commit}:{given.path}"))
        if current is None or current == previous:
            continue
        moves.append(
            {
                "state": current,
                "from": previous,
                "commit": entry.commit,
                "by": entry.author,
                "email": entry.email,
                "at": entry.at,
                "subject": entry.subject,
                "pullRequest": _pull(entry.subject),
            }
        )
        previous = current
    cache[key] = moves
    return moves


def _kind(paths: tuple[str, ...]) -> str:
    if any(p.startswith(".alloy/approvals/") for p in paths):
        return "approval"
    if any(p.startswith(".alloy/requests/") for p in paths):
        return "request"
    return "intent-change"


def activity(
    states: list[RepoState], cache: dict[tuple[str, str], list[dict[str, Any]]]
) -> dict[str, Any]:
    """An audit timeline, newest first: merges that changed `.alloy/` (intent changes,
    approvals, requests) and executions (started, finished), with actor and revision."""
    items: list[dict[str, Any]] = []
    for state in states:
        commit = state.intents.commit
        if commit is not None:
            key = (commit, "activity")
            if key not in cache:
                merged = []
                for entry in state.view.log(commit, [".alloy"], limit=ACTIVITY_LIMIT, names=True):
                    alloy_paths = tuple(p for p in entry.paths if p.startswith(".alloy/"))
                    merged.append(
                        {
                            "repo": state.key,
                            "kind": _kind(alloy_paths),
                            "at": entry.at,
                            "actor": entry.author,
                            "revision": entry.commit,
                            "subject": entry.subject,
                            "pullRequest": _pull(entry.subject),
                            "paths": list(alloy_paths[:20]),
                        }
                    )
                cache[key] = merged
            items.extend(cache[key])
        for ref in state.executions.values():
            base = {
                "repo": state.key,
                "intent": ref.intent,
                "execution": ref.id,
                "actor": f"foundry ({ref.event['type']})",
                "revision": ref.digest,
            }
            if ref.started_at:
                items.append(
                    {
                        **base,
                        "kind": "execution-started",
                        "at": ref.started_at,
                        "subject": f"{ref.intent}: started ({ref.event['type']})",
                    }
                )
            if ref.finished_at:
                items.append(
                    {
                        **base,
                        "kind": "execution-finished",
                        "at": ref.finished_at,
                        "subject": f"{ref.intent}: {ref.status}",
                    }
                )
    items.sort(key=lambda i: status_mod.sort_instant(_utc(i["at"])), reverse=True)
    return {"schemaVersion": 1, "view": "activity", "items": items[:ACTIVITY_LIMIT]}


def _utc(stamp: str) -> str:
    """git's `%cI` (with an offset) as the UTC `...Z` stamp traces use, so both sort together."""
    import datetime

    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
