"""Which documents a change adds, changes, removes or renames, and which fields of each differ.

Files are compared by their bytes first, so only what changed is parsed. A removed and an
added document of the same kind are one rename when they have the same `metadata.name` or
their texts are similar (difflib ratio >= 0.6); the rename then lists what else changed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alloy.load import Entry
from alloy.review._model import DocumentChange
from alloy.review._snapshot import data_of, documents, kind_of_path, name_of, stem_of, text_of

#: How similar two texts must be (difflib's ratio) for a remove and an add to be a rename.
RENAME_RATIO = 0.6
#: Bounds on the similarity search (a change that moves thousands of files pairs them by name
#: only beyond these): text comparisons per review, and the size of a text worth comparing.
_COMPARISONS = 20_000
_MAX_SIMILAR_TEXT = 256 * 1024
#: Nesting depth at which a differing value is reported as a whole (`spec.automation.blocks[build].run`).
MAX_DEPTH = 4
#: Artifacts are generated; their differences are reported compactly (`spec.blocks`).
ARTIFACT_DEPTH = 2
#: Values that are reported as a whole, even when shallower than MAX_DEPTH (normalized paths:
#: items of id-keyed lists are written `[]`).
_LEAVES = frozenset(
    {
        "metadata.labels",
        "metadata.annotations",
        "spec.acceptance[].evidence",
        "spec.automation.lane",
    }
)
#: Maps whose entries are reported as a whole (`spec.automation.inputs.ref`, `spec.lanes.bench`).
_LEAF_PARENTS = frozenset(
    {"spec.automation.inputs", "spec.automation.on", "spec.lanes", "spec.inputs"}
)


@dataclass(frozen=True)
class Pair:
    """One document on both sides of the change (None on the side where it does not exist)."""

    base_path: str | None
    head_path: str | None
    kind: str
    base: Any  # plain data, or None
    head: Any


def diff_documents(
    base: Mapping[str, Entry], head: Mapping[str, Entry]
) -> tuple[list[DocumentChange], list[Pair]]:
    """The document changes between two snapshots, and the pairs of documents they are about."""
    base_docs = documents(base)
    head_docs = documents(head)
    changes: list[DocumentChange] = []
    pairs: list[Pair] = []
    removed: list[str] = []
    added: list[str] = []
    for path in sorted(base_docs.keys() | head_docs.keys()):
        old, new = base_docs.get(path), head_docs.get(path)
        if old is None:
            added.append(path)
        elif new is None:
            removed.append(path)
        elif old != new:
            kind = kind_of_path(path)
            before, after = data_of(path, old), data_of(path, new)
            pairs.append(Pair(path, path, kind, before, after))
            changes.append(
                DocumentChange(
                    "changed",
                    kind,
                    name_of(path, after if after is not None else before),
                    path,
                    fields=changed_fields(before, after, kind, old, new),
                )
            )
    renames = _renames(removed, added, base_docs, head_docs)
    for old_path, new_path in renames:
        kind = kind_of_path(new_path)
        before = data_of(old_path, base_docs[old_path])
        after = data_of(new_path, head_docs[new_path])
        fields = changed_fields(before, after, kind, base_docs[old_path], head_docs[new_path])
        implied = {"metadata.name"} if name_of(new_path, after) == stem_of(new_path) else set()
        pairs.append(Pair(old_path, new_path, kind, before, after))
        changes.append(
            DocumentChange(
                "renamed",
                kind,
                name_of(new_path, after),
                new_path,
                old_path=old_path,
                fields=tuple(f for f in fields if f not in implied),
            )
        )
    paired_old = {o for o, _ in renames}
    paired_new = {n for _, n in renames}
    for path in added:
        if path in paired_new:
            continue
        after = data_of(path, head_docs[path])
        pairs.append(Pair(None, path, kind_of_path(path), None, after))
        changes.append(DocumentChange("added", kind_of_path(path), name_of(path, after), path))
    for path in removed:
        if path in paired_old:
            continue
        before = data_of(path, base_docs[path])
        pairs.append(Pair(path, None, kind_of_path(path), before, None))
        changes.append(DocumentChange("removed", kind_of_path(path), name_of(path, before), path))
    return changes, pairs


def _renames(
    removed: list[str],
    added: list[str],
    base_docs: Mapping[str, Entry],
    head_docs: Mapping[str, Entry],
) -> list[tuple[str, str]]:
    """(old, new) path pairs: same names first, then the most similar texts, each file in at
    most one pair. Deterministic: ties are broken by path."""
    if not removed or not added:
        return []
    out: list[tuple[str, str]] = []
    by_name: dict[tuple[str, str], list[str]] = {}
    for new in added:
        key = (kind_of_path(new), name_of(new, data_of(new, head_docs[new])))
        by_name.setdefault(key, []).append(new)
    left_old: list[str] = []
    for old in removed:
        key = (kind_of_path(old), name_of(old, data_of(old, base_docs[old])))
        same = by_name.get(key)
        if same:
            out.append((old, same.pop(0)))
        else:
            left_old.append(old)
    paired = {n for _, n in out}
    left_new = [n for n in added if n not in paired]
    candidates: list[tuple[float, str, str]] = []
    budget = _COMPARISONS
    for new in left_new:
        new_text = text_of(head_docs[new])
        if len(new_text) > _MAX_SIMILAR_TEXT:
            continue
        matcher = difflib.SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(new_text)  # seq2 is the one difflib indexes: once per added file
        for old in left_old:
            if kind_of_path(old) != kind_of_path(new) or budget <= 0:
                continue
            old_text = text_of(base_docs[old])
            if len(old_text) > _MAX_SIMILAR_TEXT:
                continue
            budget -= 1
            matcher.set_seq1(old_text)
            if matcher.real_quick_ratio() < RENAME_RATIO or matcher.quick_ratio() < RENAME_RATIO:
                continue
            ratio = matcher.ratio()
            if ratio >= RENAME_RATIO:
                candidates.append((ratio, old, new))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_old: set[str] = set()
    used_new: set[str] = set()
    for _, old, new in candidates:
        if old in used_old or new in used_new:
            continue
        used_old.add(old)
        used_new.add(new)
        out.append((old, new))
    return sorted(out)


def changed_fields(
    before: Any, after: Any, kind: str, old: Entry | None = None, new: Entry | None = None
) -> tuple[str, ...]:
    """Dotted paths of the fields that differ, sorted; `()` when the data is equal (a change of
    formatting or comments only). When either side cannot be parsed, the file as a whole (`.`)."""
    if before is None or after is None:
        if old is not None and new is not None and old != new:
            return (".",)
        return ()
    out: set[str] = set()
    depth = ARTIFACT_DEPTH if kind == "Artifact" else MAX_DEPTH
    _diff(before, after, "", "", 0, depth, out)
    return tuple(sorted(out))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _keyed(items: Any) -> dict[str, Any] | None:
    """A list of mappings with unique string `id`s, by id (blocks, acceptance criteria)."""
    if not isinstance(items, list) or not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return None
        if item["id"] in out:
            return None
        out[item["id"]] = item
    return out


def _diff(  # noqa: PLR0917 - a recursive walker
    a: Any, b: Any, path: str, norm: str, depth: int, limit: int, out: set[str]
) -> None:
    if a == b and type(a) is type(b):
        return
    parent = norm.rsplit(".", 1)[0] if "." in norm else ""
    if depth >= limit or norm in _LEAVES or parent in _LEAF_PARENTS:
        out.add(path or ".")
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            if key not in a or key not in b:
                out.add(_join(path, key))
            else:
                _diff(a[key], b[key], _join(path, key), _join(norm, key), depth + 1, limit, out)
        return
    ka, kb = _keyed(a), _keyed(b)
    if (ka is not None or a == []) and (kb is not None or b == []) and (ka or kb):
        ka, kb = ka or {}, kb or {}
        differ = False
        for key in sorted(ka.keys() | kb.keys()):
            item_path = f"{path}[{key}]"
            if key not in ka or key not in kb:
                out.add(item_path)
                differ = True
            elif ka[key] != kb[key]:
                _diff(ka[key], kb[key], item_path, f"{norm}[]", depth, limit, out)
                differ = True
        if not differ:  # same items, another order
            out.add(path or ".")
        return
    out.add(path or ".")
