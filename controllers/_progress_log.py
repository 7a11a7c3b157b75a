"""The daemon's log lines for progress events: each execution and block of a pass as it starts
and ends, and what waits with the command that unblocks it (docs/daemon.md, "Logs").

Text: `<time> <repo>: <the event in the words of foundry.progress.describe>[; next step]`.
JSON: one object per line with a fixed set of fields — `time`, `event`, `repo`, `execution`,
`intent`, `eventType`, `eventKey`, `block`, `attempt`, `status`, `seconds`, `reason`, `gate`,
`waitingOn`, `command` and `next` — every one present on every progress line (null when it
does not apply), so a log processor can rely on them.
"""

from __future__ import annotations

import json
from typing import Any

from foundry.progress import Progress, describe, next_step


def progress_fields(event: Progress, *, repo: str, branch: str | None, at: str) -> dict[str, Any]:
    """The JSON object of one progress event (keys sorted when written)."""
    step = next_step(event, where="reconcile", branch=branch)
    return {
        "time": at,
        "repo": repo,
        **event.to_json(),
        "command": step.command if step is not None else None,
        "next": step.text() if step is not None else None,
    }


def progress_json(event: Progress, *, repo: str, branch: str | None, at: str) -> str:
    return json.dumps(progress_fields(event, repo=repo, branch=branch, at=at), sort_keys=True)


def progress_text(event: Progress, *, branch: str | None) -> str:
    """The event as a text log line's message (the time and repository go before it)."""
    step = next_step(event, where="reconcile", branch=branch)
    return describe(event) + (f"; {step.text()}" if step is not None else "")
