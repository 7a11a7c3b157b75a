"""The nearest valid model of a document that failed validation, so that the checks which do
not depend on what was wrong still run ("every problem at once" across stages, not only within
one).

Each wrong part is taken out, as small as it can be: an optional field goes back to its default,
a list item or a map entry is dropped, an unknown field is removed, and a required free text (a
goal, a reason) is stood in for by a placeholder no check reads. Any other required part takes
its enclosing object with it, up to one that can go. What was taken out is
kept (`repaired`, in the document's own coordinates), and a finding that touches it is not
reported: the salvaged model is good for what the wrong parts do not decide, and for nothing
else. When nothing small enough can go (the envelope itself, say), there is no model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, StringConstraints, ValidationError

from alloy.load._errors import Loc, _aliases, _is_union_tag, model_at

#: Rounds of taking out what one validation found wrong (taking out a part may leave its
#: enclosing list too short, found by the next round); a document needing more is not salvaged.
MAX_ROUNDS = 8
#: Stands for any list index or map key in a `related` pattern.
ANY = "*"


@dataclass
class Salvaged:
    """A valid model made from a document by taking out its wrong parts."""

    model: BaseModel
    #: The document's data as written.
    source: Any = None
    #: Places taken out, in the document's own coordinates (list indexes as written).
    repaired: list[Loc] = field(default_factory=list)
    #: Items dropped from lists, in order: (list's place, index) as it was when dropped.
    _removals: list[tuple[Loc, int]] = field(default_factory=list)

    def original(self, loc: Loc) -> Loc:
        """`loc` in the salvaged model -> the same place in the document as written."""
        for path, index in reversed(self._removals):
            n = len(path)
            if len(loc) > n and loc[:n] == path:
                at = loc[n]
                if isinstance(at, int) and at >= index:
                    loc = (*path, at + 1, *loc[n + 1 :])
        return loc

    def touches(self, locs: Iterable[Loc], about: str | None = None) -> bool:
        """Whether any of `locs` (patterns in the document's coordinates, `ANY` matching one
        index or key) is at, inside or around a place that was taken out. With `about`, a
        pattern with `ANY` counts only where the document has `about` at the place it names
        (a block taken out makes unknown only the name it had, not every name)."""
        for pattern in locs:
            for taken in self.repaired:
                if not related(taken, pattern):
                    continue
                if about is None or ANY not in pattern:
                    return True
                place = tuple(t if p == ANY else p for t, p in zip(taken, pattern, strict=False))
                place += pattern[len(place) :]
                if ANY in place or _value(self.source, place) in (about, _MISSING):
                    return True
        return False


def valid(model: BaseModel) -> Salvaged:
    """A model that validated as written: nothing taken out."""
    return Salvaged(model)


_MISSING = object()


def _value(data: Any, loc: Loc) -> Any:
    """The text of the value at `loc` in plain data, or `_MISSING`."""
    try:
        found = _get(data, loc)
    except (KeyError, IndexError, TypeError):
        return _MISSING
    return found if isinstance(found, str) else str(found)


def salvage(model_cls: type[BaseModel], data: Any) -> Salvaged | None:
    """The nearest valid `model_cls` to `data`, or None when none can be made."""
    work = data  # never changed in place: each edit copies only the containers on its path
    out = Salvaged(model=None, source=data)  # type: ignore[arg-type]
    for _ in range(MAX_ROUNDS):
        try:
            out.model = model_cls.model_validate(work)
        except ValidationError as exc:
            points: set[Loc] = set()
            for err in exc.errors(include_url=False):
                loc = tuple(p for p in err["loc"] if p != "[key]" and not _is_union_tag(p))
                text = _free_text(model_cls, loc)
                if text is not None and isinstance(_value_at(work, loc[:-1]), dict):
                    work = _edit(work, loc, text)  # stood in for at once: nothing else moves
                    out.repaired.append(out.original(loc))
                    continue
                point = _removable(model_cls, work, loc)
                if point is None:
                    return None
                points.add(point)
            # Outermost places only; from the last in the document to the first, so that taking
            # out a list item never moves a place still to be taken out.
            chosen = sorted(
                (p for p in points if not any(q != p and p[: len(q)] == q for q in points)),
                reverse=True,
            )
            out.repaired.extend(out.original(p) for p in chosen)
            for point in chosen:
                if isinstance(_get(work, point[:-1]), list):
                    assert isinstance(point[-1], int)
                    out._removals.append((point[:-1], point[-1]))
                work = _edit(work, point, _DELETE)
        else:
            return out
    return None


_DELETE = object()


def _edit(data: Any, loc: Loc, value: Any) -> Any:
    """`data` with the value at `loc` replaced by `value` (or deleted, for `_DELETE`); only
    the containers on the way are copied (the document's data, whose parts YAML aliases may
    share, is never changed)."""
    head, rest = loc[0], loc[1:]
    copy: Any = list(data) if isinstance(data, list) else dict(data)
    if rest:
        copy[head] = _edit(data[head], rest, value)
    elif value is _DELETE:
        del copy[head]
    else:
        copy[head] = value
    return copy


def _value_at(data: Any, loc: Loc) -> Any:
    try:
        return _get(data, loc)
    except (KeyError, IndexError, TypeError):
        return None


def _get(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


def _free_text(model_cls: type[BaseModel], loc: Loc) -> str | None:
    """A placeholder for the required free-text field at `loc` (only length-bound text, which
    no check reads), or None when the field is anything else."""
    if not loc or not isinstance(loc[-1], str):
        return None
    parent = model_at(model_cls, loc[:-1])
    if parent is None:
        return None
    name = next((k for k, f in parent.model_fields.items() if (f.alias or k) == loc[-1]), None)
    if name is None:
        return None
    info = parent.model_fields[name]
    if not info.is_required() or info.annotation is not str:
        return None
    bounds = [m for m in info.metadata if isinstance(m, StringConstraints)]
    if len(bounds) != len(info.metadata) or any(b.pattern is not None for b in bounds):
        return None
    return "x" * max([b.min_length or 1 for b in bounds] + [1])


def _removable(model_cls: type[BaseModel], data: Any, loc: Loc) -> Loc | None:
    """The innermost place at or around `loc` that can be taken out, or None."""
    for n in range(len(loc), 0, -1):
        try:
            container = _get(data, loc[: n - 1])
        except (KeyError, IndexError, TypeError):
            continue
        last = loc[n - 1]
        if isinstance(container, list):
            if isinstance(last, int) and 0 <= last < len(container):
                return loc[:n]
            continue
        if not isinstance(container, dict) or last not in container:
            continue
        parent = model_at(model_cls, loc[: n - 1])
        if parent is None:  # a map of user-chosen keys (env, inputs, lanes): drop the entry
            return loc[:n]
        fields = _aliases(parent)
        if last not in fields:  # an unknown field
            return loc[:n]
        name = next(k for k, f in parent.model_fields.items() if (f.alias or k) == last)
        if not parent.model_fields[name].is_required():
            return loc[:n]
    return None


def related(repaired: Loc, pattern: Loc) -> bool:
    """Whether a place taken out is at, inside or around `pattern` (`ANY` matches anything)."""
    n = min(len(repaired), len(pattern))
    return all(p in (ANY, r) for r, p in zip(repaired[:n], pattern[:n], strict=True))
