"""YAML as plain data: the C parser, YAML 1.2 core scalars, and every refusal of DESIGN section 3.

Documents are composed into nodes by libyaml and turned into plain Python data by a small walker
that refuses custom tags, duplicate keys, non-string keys and alias bombs. The nodes are kept so
that a later validation error can be placed at a line and column (see `locate`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.resolver import BaseResolver

try:  # libyaml is part of PyYAML's wheels; the pure parser is the fallback.
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - depends on the installed wheel
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser, Composer):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)


MAX_ALIASES = 100
#: Bound on nesting (real documents are a dozen levels deep; this keeps the walker's recursion safe).
MAX_DEPTH = 64
#: Bound on the expanded size of a document (nodes, plus one unit per 64 characters of text).
MAX_EXPANDED = 1_000_000

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_ALLOWED_SCALAR_TAGS = {_STR, _INT, _BOOL, _NULL}

# YAML 1.2 core schema; `yes`, `on`, `no`, `off` and dates stay strings (YAML 1.1 traps).
_INT_RE = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT_RE = re.compile(
    r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}


class _PlainResolver(BaseResolver):
    """No implicit resolvers: every untagged scalar is a string until `_scalar` types it."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 - class-level table of PyYAML


_DEFAULT_TAG = {ScalarNode: _STR, SequenceNode: _SEQ, MappingNode: _MAP}


class _Loader(_Parser, _PlainResolver):
    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        _PlainResolver.__init__(self)

    # The composer calls these three for every node. With no implicit and no path resolvers,
    # BaseResolver's versions come down to "the default tag of the node's kind"; saying so
    # directly makes composing ~35% faster (docs/performance.md).
    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        return _DEFAULT_TAG[kind]

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


@dataclass(frozen=True)
class YamlProblem(Exception):
    """A document that is not plain YAML data; line and column are 1-based."""

    line: int
    column: int
    message: str


@dataclass
class Parsed:
    data: Any
    node: Node


class _Walker:
    def __init__(self) -> None:
        self.aliases = 0
        self.expanded = 0
        # id(node) -> (value, expanded size) for collections already built (alias targets).
        self.built: dict[int, tuple[Any, int]] = {}
        self.building: set[int] = set()

    def value(self, node: Node, depth: int = 0, at: Node | None = None) -> tuple[Any, int]:
        """Plain data of `node` and its expanded size; `at` is where it is used (the key of a
        mapping value, the sequence of an item), which is where an alias is reported."""
        if isinstance(node, ScalarNode):
            return _scalar(node), 1 + len(node.value) // 64
        if depth >= MAX_DEPTH:
            raise _problem(node, f"nested more than {MAX_DEPTH} levels deep; flatten the document")
        key = id(node)
        seen = self.built.get(key)
        if seen is not None:
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _problem(at or node, f"more than {MAX_ALIASES} aliases; write the values out")
            self._grow(at or node, seen[1])
            return seen
        if key in self.building:
            raise _problem(at or node, "an alias refers to a value that contains it (a loop)")
        self.building.add(key)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                raise _tag_problem(node)
            items: list[Any] = []
            size = 1
            for child in node.value:
                item, n = self.value(child, depth + 1, node)
                items.append(item)
                size += n
            result: tuple[Any, int] = (items, size)
        elif isinstance(node, MappingNode):
            if node.tag != _MAP:
                raise _tag_problem(node)
            mapping: dict[str, Any] = {}
            size = 1
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                    raise _problem(key_node, "keys must be plain strings")
                name = key_node.value
                if name in mapping:
                    raise _problem(
                        key_node,
                        f"duplicate key {name!r}; each key may appear once in a mapping",
                    )
                if name == "<<" and not key_node.style:
                    raise _problem(
                        key_node, "merge keys ('<<') are not supported; write the keys out"
                    )
                mapping[name], n = self.value(value_node, depth + 1, key_node)
                size += n
            result = (mapping, size)
        else:  # pragma: no cover - libyaml produces only the three node kinds
            raise _problem(node, "unsupported YAML node")
        self.built[key] = result
        self._grow(node, 0)
        return result

    def _grow(self, node: Node, by: int) -> None:
        self.expanded += by
        if self.expanded > MAX_EXPANDED:
            raise _problem(node, "document expands beyond the size limit (too many aliases)")


def _scalar(node: ScalarNode) -> Any:
    tag = node.tag
    value: str = node.value
    if tag == _STR:
        if node.style:  # quoted or block scalars are strings (plain is None or "")
            return value
        if value in _NULLS:
            return None
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        if _INT_RE.fullmatch(value):
            return _int(node)
        if _FLOAT_RE.fullmatch(value):
            # `.inf`, `-.inf` and `.nan` are YAML spellings; Python wants them without the dot.
            return float(value.replace(".", "", 1) if value[-1] in "fFnN" else value)
        return value
    if tag not in _ALLOWED_SCALAR_TAGS:
        raise _tag_problem(node)
    if tag == _INT and _INT_RE.fullmatch(value):
        return _int(node)
    if tag == _BOOL and value in _TRUE | _FALSE:
        return value in _TRUE
    if tag == _NULL and value in _NULLS:
        return None
    raise _problem(node, f"{value!r} is not a valid {tag.rsplit(':', 1)[-1]}")


def _int(node: ScalarNode) -> int:
    value: str = node.value
    try:
        return int(value, 0) if value[:2] in ("0o", "0x") else int(value)
    except ValueError:  # more digits than Python converts (sys.int_info.str_digits_check_threshold)
        raise _problem(node, f"number of {len(value)} digits is too large") from None


def _problem(node: Node, message: str) -> YamlProblem:
    mark = node.start_mark
    return YamlProblem(mark.line + 1, mark.column + 1, message)


def _tag_problem(node: Node) -> YamlProblem:
    return _problem(
        node,
        f"tag {node.tag!r} is not allowed; documents are plain data (remove the tag)",
    )


def parse(text: str) -> Parsed:
    """Parse one YAML document into plain data, or raise `YamlProblem`."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "invalid YAML"
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        start = exc.context_mark
        if "expected a single document" in (exc.context or ""):
            what = "more than one document in the file; keep one document per file"
        elif _char_at(text, line, col) == "\t":
            what = "a tab character; indent with spaces (YAML does not allow tabs here)"
        elif exc.context and start is not None and mark is not None and start.line < mark.line:
            # Say where the unclosed construct began: that is usually where the mistake is.
            what += (
                f" ({exc.context} that starts at line {start.line + 1}, column {start.column + 1})"
            )
        raise YamlProblem(line, col, f"YAML syntax error: {what}") from None
    except ReaderError as exc:  # control characters; `position` is a UTF-8 offset
        before = text.encode("utf-8")[: exc.position].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise YamlProblem(
            line, col, f"character U+{exc.character:04X} cannot be used ({exc.reason}); remove it"
        ) from None
    except yaml.YAMLError as exc:  # pragma: no cover - libyaml reports the others with marks
        raise YamlProblem(1, 1, f"YAML error: {exc}") from None
    finally:
        loader.dispose()
    if node is None:
        raise YamlProblem(1, 1, "the file is empty; write one document")
    data, _ = _Walker().value(node)
    return Parsed(data, node)


def _char_at(text: str, line: int, col: int) -> str:
    lines = text.split("\n", line)
    row = lines[line - 1] if line <= len(lines) else ""
    return row[col - 1] if 0 < col <= len(row) else ""


def locate(node: Node, loc: tuple[str | int, ...]) -> tuple[int, int, bool]:
    """Line and column (1-based) of the deepest node on `loc`; the flag says if it was reached."""
    current = node
    mark_node: Node = node
    for part in loc:
        if isinstance(current, MappingNode):
            for key_node, value_node in current.value:
                if key_node.value == part:
                    mark_node = key_node
                    current = value_node
                    break
            else:
                return (*_mark(mark_node, current), False)
        elif isinstance(current, SequenceNode) and isinstance(part, int):
            if part >= len(current.value):
                return (*_mark(mark_node, current), False)
            current = current.value[part]
            mark_node = current
        else:
            return (*_mark(mark_node, current), False)
    return (*_mark(mark_node, current), True)


def value_mark(node: Node, loc: tuple[str | int, ...]) -> tuple[int, int]:
    """Line and column of the value at `loc` (rather than its key)."""
    current = node
    for part in loc:
        if isinstance(current, MappingNode):
            for key_node, value_node in current.value:
                if key_node.value == part:
                    current = value_node
                    break
            else:
                break
        elif (
            isinstance(current, SequenceNode)
            and isinstance(part, int)
            and part < len(current.value)
        ):
            current = current.value[part]
        else:
            break
    return current.start_mark.line + 1, current.start_mark.column + 1


def _mark(key_node: Node, _value: Node) -> tuple[int, int]:
    return key_node.start_mark.line + 1, key_node.start_mark.column + 1
