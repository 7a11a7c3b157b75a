"""The strict YAML reader under the daemon's config file (controllers/daemon_config.py): the
document read with the line of every key (a key given twice is an error), errors that name the
file and the line, and the checks every entry uses (unknown keys with the closest known one,
whole numbers, numbers, durations, paths)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from foundry.errors import UserError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ConfigError(UserError):
    """The daemon's config file is wrong (the message names the file, the line and the fix)."""


def parse_duration(value: object) -> float | None:
    """Seconds from a number or a string like "30s", "5m", "1h30m", "250ms"; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if not text or _DURATION.sub("", text):
        return None
    return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))


class ConfigReader:
    """One config document being read: its source (for errors), the directory relative paths
    are taken from, and the line of every key (by its path: `("repositories", 0, "repo")`)."""

    def __init__(self, text: str, source: str, base: Path) -> None:
        self.text = text
        self.source = source
        self.base = base
        self.lines: dict[tuple[str | int, ...], int] = {}
        #: the text of every scalar as written (`1001:50` is a number to YAML 1.1, in base 60)
        self.written: dict[tuple[str | int, ...], str] = {}

    def fail(self, where: tuple[str | int, ...], message: str) -> ConfigError:
        line = None
        probe = where
        while line is None and probe:
            line = self.lines.get(probe)
            probe = probe[:-1]
        prefix = f"{self.source}:{line}" if line is not None else self.source
        return ConfigError(f"{prefix}: {message}")

    def document(self) -> Any:
        """The document's data (an empty mapping for an empty one), its keys' lines noted."""
        try:
            node = yaml.compose(self.text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(self.text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            at = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(
                f"{self.source}{at}: not valid YAML ({problem}); fix the syntax"
            ) from None
        if node is not None:
            self._marks(node, ())
        if data is None:
            data = {}
        return data

    def _marks(self, node: yaml.Node, path: tuple[str | int, ...]) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            self.written[path] = str(node.value)
        if isinstance(node, yaml.MappingNode):
            keys: dict[object, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                line = key_node.start_mark.line + 1
                if key is not None and key in keys:
                    name = ".".join(str(p) for p in path) or "the top level"
                    raise ConfigError(
                        f"{self.source}:{line}: key {key!r} appears twice in {name} (also on "
                        f"line {keys[key]}); keep one"
                    )
                if key is not None:
                    keys[key] = line
                    self.lines[(*path, key)] = line
                    self._marks(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._marks(item, (*path, index))

    def unknown(
        self, data: Mapping[Any, Any], where: tuple[str | int, ...], known: tuple[str, ...], at: str
    ) -> None:
        for key in data:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise self.fail(
                (*where, str(key)),
                f"unknown key {key!r} {at}; {hint}the keys are: {', '.join(known)}",
            )

    def integer(
        self,
        data: Mapping[str, Any],
        where: tuple[str | int, ...],
        key: str,
        default: int | None,
        *,
        low: int,
        high: int,
    ) -> Any:
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(
                (*where, key), f"{key} must be a whole number from {low} to {high}, not {value!r}"
            )
        return value

    def number(
        self,
        data: Mapping[str, Any],
        where: tuple[str | int, ...],
        key: str,
        default: float,
        *,
        low: float,
        high: float,
    ) -> float:
        value = data.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise self.fail(
                (*where, key), f"{key} must be a number from {low} to {high}, not {value!r}"
            )
        return float(value)

    def duration(
        self,
        data: Mapping[str, Any],
        where: tuple[str | int, ...],
        key: str,
        default: float,
        *,
        minimum: float,
        exclusive: bool = False,
    ) -> float:
        if key not in data:
            return default
        seconds = parse_duration(data[key])
        bad = seconds is None or seconds < minimum or (exclusive and seconds == minimum)
        if bad or seconds is None:
            bound = f"more than {minimum:g}" if exclusive else f"at least {minimum:g}"
            raise self.fail(
                (*where, key),
                f"{key}: {data[key]!r} is not a duration of {bound} seconds; write seconds as a "
                'number (30) or a string like "30s", "5m", "1h"',
            )
        return seconds

    def path(self, data: Mapping[str, Any], where: tuple[str | int, ...], key: str) -> Path | None:
        if key not in data or data[key] is None:
            return None
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail((*where, key), f"{key} must be a path, not {value!r}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path
