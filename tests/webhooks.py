"""GitHub's own webhook payloads (`@octokit/webhooks-examples`, installed by `npm ci`), for the
tests of `foundry action` and of the Action under act."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = (
    Path(__file__).resolve().parent.parent
    / "node_modules" / "@octokit" / "webhooks-examples" / "api.github.com" / "index.json"
)  # fmt: skip


@functools.cache
def _all() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(EXAMPLES.read_text(encoding="utf-8"))
    return data


def example(event: str, action: str | None = None, **match: Any) -> dict[str, Any]:
    """A fresh copy of GitHub's example payload of `event` (with `action`, and top-level fields
    equal to `match`). Missing examples fail the test: CI must have installed them."""
    if not EXAMPLES.exists():
        pytest.fail(f"{EXAMPLES} is missing: run `npm ci` (scripts/test does)", pytrace=False)
    for entry in _all():
        if entry["name"] != event:
            continue
        for payload in entry["examples"]:
            if action is not None and payload.get("action") != action:
                continue
            if all(payload.get(k) == v for k, v in match.items()):
                return copy.deepcopy(payload)
    raise AssertionError(f"no example of {event} {action or ''} {match}")
