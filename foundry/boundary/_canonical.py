"""Canonical JSON and digests, as the boundary defines them (Foundry's own implementation:
it must agree with any writer byte for byte, which the shared golden fixtures test)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_bytes(value: Any) -> bytes:
    """Keys sorted, no insignificant whitespace, UTF-8 (no escapes), no floats."""
    _refuse_floats(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _refuse_floats(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            raise ValueError(f"float {item!r} is not allowed in the boundary")  # noqa: TRY004 - bad data, not a bad call
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def digest_of(document: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `document` without its `digest` field."""
    body = {k: v for k, v in document.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(canonical_bytes(body)).hexdigest()
