"""Redaction of secret values in derived documents: every string value, at any depth.

The executor already redacts what it writes, but a trace may be built from records of another
writer, so every derived output is redacted again on the way out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

from foundry._process import redact_text


def secret_values(secrets: Sequence[str]) -> list[str]:
    """The non-empty secrets, longest first (a lone string is one secret, not its letters)."""
    values = [secrets] if isinstance(secrets, str) else list(secrets)
    return sorted({s for s in values if s}, key=lambda s: (-len(s), s))


T = TypeVar("T")


def redact(value: T, secrets: Sequence[str]) -> T:
    """A copy of `value` (JSON-like data) with every secret in every string replaced."""
    values = secret_values(secrets)
    if not values:
        return value
    return cast("T", _redact(value, values))


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {key: _redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, secrets) for item in value]
    return value
