"""The check run of an execution on its commit: its name (`check_name`), its conclusion from
its status, and the queued check run of an execution a pause holds (`held_check`)."""

from __future__ import annotations

from controllers.forge import CheckRun, Conclusion
from controllers.reconcile._work import Work


def check_name(artifact: str, event_type: str, key: str) -> str:
    """The check run of an execution: `foundry: <artifact> (<event> <key, short>)`."""
    return f"foundry: {artifact} ({event_type} {_short(key)})"


def held_check(work: Work, why: str) -> CheckRun:
    """The check run of an execution a pause holds: queued, saying who paused it, until when,
    why, and how to lift it."""
    name = work.artifact.metadata.name
    summary = (
        f"**{name}** is held: {why}.\n\n"
        f"Execution `{work.execution}` ({work.event.type} `{_short(work.event.key)}`) starts "
        "or goes on once the pause ends.\n"
    )
    return CheckRun(
        commit=work.commit,
        name=check_name(name, work.event.type, work.event.key),
        status="queued",
        conclusion=None,
        title=f"{name}: paused",
        summary=summary,
        external_id=work.execution,
    )


def _short(key: str) -> str:
    return key[:19] if key.startswith("sha256:") else key[:40]


def _conclusion(status: str) -> Conclusion | None:
    return {
        "succeeded": "success",
        "failed": "failure",
        "cancelled": "cancelled",
        "skipped": "skipped",
        "indeterminate": "action_required",
    }.get(status)  # type: ignore[return-value]
