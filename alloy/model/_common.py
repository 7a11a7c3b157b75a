"""Shared pieces of every `alloy.dev/v1` document: the envelope, names, durations, cron."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from alloy.model._cron import cron_problem

API_VERSION = "alloy.dev/v1"


class Model(BaseModel):
    """Base of every document model: strict, closed (unknown fields are errors), camelCase keys."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=False,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


SLUG_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=63)]
BlockId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Owner = Annotated[
    str,
    StringConstraints(pattern=r"^(team:[a-z0-9][a-z0-9-]{0,62}|[A-Za-z0-9][A-Za-z0-9-]{0,38})$"),
]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]
InputName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]

_DURATION = re.compile(r"^([0-9]{1,9})(s|m|h|d)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: str) -> int:
    """`30s`, `20m`, `6h`, `1d` -> seconds."""
    match = _DURATION.match(value)
    if not match:
        raise ValueError(
            f"{value!r} is not a duration; write a number and a unit, like 30s, 20m, 6h or 1d"
        )
    return int(match.group(1)) * _UNIT[match.group(2)]


def _check_duration(value: str) -> str:
    duration_seconds(value)
    return value


Duration = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{1,9}(s|m|h|d)$"),
    AfterValidator(_check_duration),
]

_SIZE_UNIT = {"": 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
#: A size in bytes, with a binary unit or none: `512Mi`, `2Gi`, `1048576`.
Size = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,11}(Ki|Mi|Gi|Ti)?$")]


def size_bytes(value: str) -> int:
    """`512Mi` -> 536870912."""
    number = value.rstrip("KMGTi")
    return int(number) * _SIZE_UNIT[value[len(number) :]]


def _check_cron(value: str) -> str:
    problem = cron_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Cron = Annotated[str, AfterValidator(_check_cron)]


@lru_cache(maxsize=1024)
def _zone_ok(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _check_zone(value: str) -> str:
    if not _zone_ok(value):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as UTC or Europe/Berlin"
        )
    return value


TimeZone = Annotated[str, AfterValidator(_check_zone)]


def _check_relpath(value: str) -> str:
    if not value or value.startswith("/") or "\\" in value or re.match(r"^[A-Za-z]:", value):
        raise ValueError(
            f"{value!r} must be a relative path inside the worktree (like out/results.json)"
        )
    parts = value.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"{value!r} leaves or does not name a path inside the worktree; "
            "write it without '..', '.' or empty parts"
        )
    return value


RelPath = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_check_relpath)]


class Metadata(Model):
    """Name, title, labels and annotations of a document."""

    name: Slug
    title: ShortText | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Envelope(Model):
    """The envelope every document shares (used to read apiVersion and kind first)."""

    api_version: Literal["alloy.dev/v1"]
    kind: str
