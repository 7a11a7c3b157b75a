"""Ledger timestamps (RFC 3339, UTC, `Z`) as exact integers: nanoseconds since the epoch."""

from __future__ import annotations

import calendar
import re
import time

from foundry.traces._errors import TraceError

_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$")


def is_stamp(value: object) -> bool:
    return isinstance(value, str) and _STAMP.match(value) is not None


def unix_nanos(stamp: str) -> int:
    """`2026-11-25T02:00:00.123Z` -> 1795053600123000000 (no float rounding)."""
    match = _STAMP.match(stamp)
    if match is None:
        raise TraceError(f"{stamp!r} is not an RFC 3339 UTC time like 2026-11-25T02:00:00.123Z")
    try:
        whole = calendar.timegm(time.strptime(match[1], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        raise TraceError(f"{stamp!r} is not a valid date and time") from None
    return whole * 1_000_000_000 + int((match[2] or "").ljust(9, "0"))
