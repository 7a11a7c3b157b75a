"""Input values of an execution, checked against the artifact's declared inputs."""

from __future__ import annotations

from collections.abc import Mapping

from foundry.boundary import Artifact
from foundry.errors import UserError

#: What a person at a terminal can do about a missing input.
PASS_IT = "pass --input {name}=VALUE"  # noqa: S105 - a hint, not a password
#: What can be done when nobody is there to pass it (reconcile, the daemon, the Action).
DECLARE_IT = (
    "give the input a default in the intent, or start this intent only through a Request "
    "that sets it"
)


def resolve_inputs(
    artifact: Artifact, given: Mapping[str, str | int | bool], *, fix: str = PASS_IT
) -> dict[str, str]:
    """Input values as the strings blocks receive (`ALLOY_INPUT_<NAME>`), checked against the
    artifact's declared inputs; `fix` says what to do about a required input nobody gave."""
    declared = artifact.spec.inputs
    out: dict[str, str] = {}
    for name, value in given.items():
        spec = declared.get(name)
        if spec is None:
            known = ", ".join(sorted(declared)) or "none"
            raise UserError(f"unknown input {name!r}; {artifact.metadata.name} declares: {known}")
        out[name] = _typed(name, spec.type, value)
    for name, spec in declared.items():
        if name in out:
            continue
        if spec.default is not None:
            out[name] = _typed(name, spec.type, spec.default)
        elif spec.required:
            raise UserError(f"input {name!r} is required; {fix.format(name=name)}")
    return out


def _typed(name: str, kind: str, value: str | int | bool) -> str:
    if kind == "boolean":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower()
        raise UserError(f"input {name!r} must be true or false, not {value!r}")
    if kind == "integer":
        if isinstance(value, bool):
            raise UserError(f"input {name!r} must be an integer, not {value!r}")
        try:
            return str(int(value))
        except ValueError:
            raise UserError(f"input {name!r} must be an integer, not {value!r}") from None
    return str(value)
