"""Lines of things inside a document, for anchoring review findings (1-based, never 0).

One helper, `line_of`, used by every part of the review (documents, lifecycle, acceptance,
automation risk): given the file (its bytes, its text, an already parsed `Parsed`, or a YAML
node) and a location inside it, it answers the line a reviewer should look at.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from alloy.load._yaml import Parsed, YamlProblem, parse

Loc = tuple[str | int, ...]


@lru_cache(maxsize=512)
def _node_of_bytes(data: bytes) -> Node | None:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return parse(data.decode("utf-8")).node
    except (UnicodeDecodeError, YamlProblem, RecursionError):
        return None


def node_of(source: bytes | str | Parsed | Node | Any | None) -> Node | None:
    """The YAML node of `source` (bytes, text, `Parsed`, a node, or a snapshot `Entry`), or
    None when it is not plain YAML (JSON artifacts are YAML too, so they work)."""
    if source is None:
        return None
    if isinstance(source, Node):
        return source
    if isinstance(source, Parsed):
        return source.node
    if isinstance(source, str):
        source = source.encode("utf-8")
    if isinstance(source, bytes):
        return _node_of_bytes(source)
    data = getattr(source, "data", None)  # alloy.load.Entry
    return _node_of_bytes(data) if isinstance(data, bytes) else None


def line_of(source: bytes | str | Parsed | Node | Any | None, loc: Loc) -> int:
    """The 1-based line of the deepest node on `loc` that exists in `source`.

    `source` is the file's bytes (what a snapshot `Entry.data` holds), its text, a `Parsed`
    document, a YAML node, or an `Entry`. `loc` is a path into the data:
    a `str` is a mapping key, an `int` a sequence index, and a `str` applied to a sequence
    picks the item whose `id` (or `name`) is that string, so blocks and acceptance criteria can
    be addressed by their id: `("spec", "automation", "blocks", "build", "run")`,
    `("spec", "acceptance", "AC-1", "statement")`.

    Mapping entries answer the line of their key (`run:`), sequence items the line of the
    item. When part of `loc` does not exist (it was removed, say) the line of the deepest part
    that does is returned; when the file cannot be parsed at all, 1. Never raises.
    """
    node = node_of(source)
    if node is None:
        return 1
    line = node.start_mark.line + 1
    current: Node = node
    for part in loc:
        if isinstance(current, MappingNode):
            for key_node, value_node in current.value:
                if isinstance(key_node, ScalarNode) and key_node.value == part:
                    line = key_node.start_mark.line + 1
                    current = value_node
                    break
            else:
                break
        elif isinstance(current, SequenceNode):
            item = _item(current, part)
            if item is None:
                break
            line = item.start_mark.line + 1
            current = item
        else:
            break
    return max(1, line)


def _item(seq: SequenceNode, part: str | int) -> Node | None:
    if isinstance(part, int):
        return seq.value[part] if 0 <= part < len(seq.value) else None
    for key in ("id", "name"):
        for item in seq.value:
            if not isinstance(item, MappingNode):
                continue
            for key_node, value_node in item.value:
                if (
                    isinstance(key_node, ScalarNode)
                    and key_node.value == key
                    and isinstance(value_node, ScalarNode)
                    and value_node.value == part
                ):
                    return item
    return None
