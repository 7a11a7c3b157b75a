"""Turn pydantic validation errors into `file:line:col` diagnostics with a suggested fix."""

from __future__ import annotations

import difflib
import types
import typing
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ValidationError
from yaml.nodes import Node

from alloy.diagnostics import Diagnostic
from alloy.load._yaml import locate, value_mark

Loc = tuple[str | int, ...]

_PATTERN_HELP = {
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$": (
        "must be a slug: lowercase letters, digits and '-', not starting or ending with '-', "
        "at most 63 characters"
    ),
    r"^[a-z0-9][a-z0-9_-]{0,62}$": "must be an id: lowercase letters, digits, '-' and '_'",
    r"^[A-Za-z][A-Za-z0-9-]{0,31}$": (
        "must be an acceptance id like AC-1: a letter, then letters, digits and '-', "
        "at most 32 characters"
    ),
    r"^(team:[a-z0-9][a-z0-9-]{0,62}|[A-Za-z0-9][A-Za-z0-9-]{0,38})$": (
        "must be a user name (like alice) or a team (like team:platform)"
    ),
    r"^[A-Z_][A-Z0-9_]{0,127}$": "must be an environment variable name: A-Z, 0-9 and '_'",
    r"^[A-Za-z_][A-Za-z0-9_]{0,63}$": "must be an identifier: letters, digits and '_'",
    r"^[0-9]{1,9}(s|m|h|d)$": "must be a duration: a number and a unit, like 30s, 20m, 6h or 1d",
    r"^[1-9][0-9]{0,5} per [0-9]{1,9}(s|m|h|d)$": "must be a rate like '10 per 1h'",
    r"^exe-[0-9a-f]{16}$": "must be an execution id like exe-0123456789abcdef",
    r"^sha256:[0-9a-f]{64}$": "must be a digest like sha256:<64 hex digits>",
}


def loc_text(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if len(args) == 1:
                tp = args[0]
            elif models:
                tp = models[0]
            else:
                return tp
        else:
            return tp


@lru_cache(maxsize=256)
def _aliases(model: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or name): f.annotation for name, f in model.model_fields.items()}


def model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class found by following `loc` (aliases, list indexes, dict keys) from `root`."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = _aliases(tp)
            if part not in fields:
                return None
            tp = fields[part]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def suggest(word: str, choices: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and (
        part in {"str", "int", "bool", "none", "float"} or "[" in part
    )


def from_validation_error(
    path: str, node: Node, model: type[BaseModel], exc: ValidationError, prefix: Loc = ()
) -> list[Diagnostic]:
    """One diagnostic per distinct problem, placed on the line of the offending key or value."""
    out: dict[tuple[Loc, str], Diagnostic] = {}
    union_locs: set[Loc] = set()
    for err in exc.errors(include_url=False):
        raw: Loc = tuple(err["loc"])
        # A problem with a mapping's key (not its value) ends in "[key]": place it on the key.
        on_key = raw[-1:] == ("[key]",)
        loc = tuple(p for p in raw if p != "[key]" and not _is_union_tag(p))
        if len(loc) != len(raw) - on_key:
            union_locs.add(loc)
        full = prefix + loc
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            parent = model_at(model, loc[:-1])
            allowed = sorted(_aliases(parent)) if parent else []
            name = str(loc[-1])
            hint = suggest(name, allowed)
            if not hint and allowed:
                hint = f"; allowed here: {', '.join(allowed)}"
            message = f"unknown field{hint}"
            line, col, _ = locate(node, full)
        elif kind == "missing":
            message = f"required field {loc[-1]!r} is missing; add it"
            line, col, _ = locate(node, full[:-1])
        elif on_key:
            message = _message(kind, err["msg"], ctx, err.get("input"))
            line, col, _ = locate(node, full)
        else:
            message = _message(kind, err["msg"], ctx, err.get("input"))
            line, col = value_mark(node, full)
        if loc and loc[-1] == "run" and kind == "list_type":
            message += "; write an argument vector like [python, -m, tool]"
        if loc in union_locs and not on_key and kind not in ("extra_forbidden", "missing"):
            message = (
                f"must be a string, an integer or a boolean, not {_describe(err.get('input'))}"
            )
        key = (full, message)
        if key not in out:
            out[key] = Diagnostic(path, line, col, message, where=loc_text(full))
    return list(out.values())


def _message(kind: str, msg: str, ctx: dict[str, Any], value: Any) -> str:
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        help_text = _PATTERN_HELP.get(pattern, f"must match {pattern}")
        return f"{_describe(value)} {help_text}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        choices = [
            c.strip().strip("'") for c in expected.replace(" or ", ",").split(",") if c.strip()
        ]
        hint = suggest(str(value), choices) if isinstance(value, str) else ""
        return f"{_describe(value)} is not allowed; use one of: {', '.join(choices)}{hint}"
    if kind in ("string_type", "int_type", "bool_type", "list_type", "dict_type", "model_type"):
        what = {
            "string_type": "a string (quote it)",
            "int_type": "a whole number",
            "bool_type": "true or false",
            "list_type": "a list",
            "dict_type": "a mapping",
            "model_type": "a mapping",
        }[kind]
        return f"must be {what}, not {_describe(value)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), "?")
        word = {
            "greater_than_equal": "at least",
            "greater_than": "more than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        return f"must be {word} {bound}, not {_describe(value)}"
    if kind in ("too_short", "too_long"):
        size = ctx.get("min_length" if kind == "too_short" else "max_length", "?")
        word = "at least" if kind == "too_short" else "at most"
        return f"must have {word} {size} item(s)"
    if kind in ("string_too_short", "string_too_long"):
        size = ctx.get("min_length" if kind == "string_too_short" else "max_length", "?")
        if kind == "string_too_short":
            return "must not be empty"
        return f"is too long (at most {size} characters)"
    if kind == "model_attributes_type":
        return f"must be a mapping, not {_describe(value)}"
    return f"{msg} (got {_describe(value)})"
