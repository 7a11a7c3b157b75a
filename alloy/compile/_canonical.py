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


def _find_float(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            raise FloatInBoundary(f"float {item!r} cannot be written to the boundary")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


_LEAVES = frozenset({str, int, bool, type(None)})


def _has_float(value: Any) -> bool:
    """Whether `_find_float` would find a float (it walks the same values, but tests the
    common types by identity, which is several times faster)."""
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list:
        items = value
    elif kind in _LEAVES:
        return False
    elif isinstance(value, float):
        return True
    elif isinstance(value, dict):
        items = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return False
    for item in items:  # noqa: SIM110 - a loop is faster than any() over a generator
        if type(item) not in _LEAVES and _has_float(item):
            return True
    return False


def _no_floats(value: Any) -> None:
    try:
        if not _has_float(value):
            return
    except RecursionError:
        pass
    _find_float(value)  # reports the float (the same one as ever)


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


class _Unusual(Exception):
    """A value `_pretty` leaves to the json module (a float, a subclass, a non-string key)."""


_quote = json.encoder.encode_basestring  # the C function json.dumps uses with ensure_ascii=False


def _pretty(value: Any, indent: str) -> str:
    """`json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)` for plain JSON data,
    about three times faster (with `indent`, the json module encodes in pure Python)."""
    kind = type(value)
    if kind is str:
        return _quote(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = indent + "  "
        parts = []
        for key in sorted(value):
            if type(key) is not str:
                raise _Unusual
            parts.append(_quote(key) + ": " + _pretty(value[key], inner))
        return "{\n" + inner + (",\n" + inner).join(parts) + "\n" + indent + "}"
    if kind is list:
        if not value:
            return "[]"
        inner = indent + "  "
        return (
            "[\n"
            + inner
            + (",\n" + inner).join([_pretty(v, inner) for v in value])
            + "\n"
            + indent
            + "]"
        )
    if kind is int:
        return int.__repr__(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    raise _Unusual


def pretty_bytes(document: dict[str, Any]) -> bytes:
    """How an artifact file is written: the canonical form, indented for review, one trailing
    newline. Deterministic; its digest is computed over the compact form."""
    try:
        text = _pretty(document, "")
    except (_Unusual, TypeError, RecursionError):  # anything but plain data: the json module
        _no_floats(document)
        text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")
