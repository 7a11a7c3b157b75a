"""Canonical JSON and digests (DESIGN section 4).

Canonical JSON: keys sorted, no insignificant whitespace, UTF-8, no floats. The digest of a
document is the sha256 of the canonical JSON of the document without its `digest` field.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


class FloatInBoundary(ValueError):
    """Canonical JSON refuses floats (their text form is not portable)."""


def _no_floats(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            raise FloatInBoundary(f"float {item!r} cannot be written to the boundary")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def canonical_bytes(value: Any) -> bytes:
    """The canonical JSON encoding of `value`."""
    _no_floats(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def document_digest(document: dict[str, Any]) -> str:
    """Digest of a boundary document: canonical JSON without the `digest` field."""
    body = {k: v for k, v in document.items() if k != "digest"}
    return sha256_digest(canonical_bytes(body))


def pretty_bytes(document: dict[str, Any]) -> bytes:
    """How an artifact file is written: the canonical form, indented for review, one trailing
    newline. Deterministic; its digest is computed over the compact form."""
    _no_floats(document)
    return (
        json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    ).encode("utf-8")
