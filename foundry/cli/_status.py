"""`foundry status`: the executions of a repository as its remote's records show them, any
host's (like `flux get`): intent, event, execution, state, and why — what a waiting execution
waits on and the command that moves it on, why one failed, who paused what until when."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import click

from foundry.cli._gitops import _scratch, here_remote
from foundry.cli._output import output_options
from foundry.progress import short_key

if TYPE_CHECKING:
    from controllers.status import Row, Snapshot

#: States of executions that are over (shown with --all, else the latest one per intent).
_OVER = ("succeeded", "failed", "cancelled", "skipped")


def _document(snap: Snapshot, rows: list[Row]) -> dict[str, Any]:
    from foundry.ledger import rfc3339

    return {
        "schemaVersion": 1,
        "remote": snap.remote,
        "branch": snap.branch,
        "tracesBranch": snap.traces_branch,
        "readAt": rfc3339(snap.read_at),
        "pauses": [p.to_json() for p in snap.pauses],
        "cancels": [c.to_json() for c in snap.cancels],
        "executions": [r.to_json() for r in rows],
        "problems": snap.problems,
    }


def _shown(snap: Snapshot, *, every: bool, intent: str | None) -> list[Row]:
    rows = [r for r in snap.rows if intent is None or r.intent == intent]
    if every:
        return rows
    latest: dict[str, Row] = {}
    for row in rows:
        if row.state in _OVER and (row.finished or "") >= (
            latest.get(row.intent, row).finished or ""
        ):
            latest[row.intent] = row
    return [r for r in rows if r.state not in _OVER or latest.get(r.intent) is r]


def _text(snap: Snapshot, rows: list[Row]) -> str:
    from foundry.ledger import rfc3339

    out = [
        (
            f"{snap.remote} (branch {snap.branch}, traces {snap.traces_branch}; read "
            f"{rfc3339(snap.read_at)})"
        )
    ]
    now = time.time()
    for pause in snap.pauses:
        if pause.active(now):
            out.append(f"PAUSED: {pause.describe()}")
        else:
            out.append(f"expired pause (no longer applies): {pause.describe()}")
    if not rows:
        out.append("no executions yet" if not snap.rows else "no executions match")
    else:
        header = ("INTENT", "EVENT", "EXECUTION", "STATE", "WHY")
        table = [
            (r.intent, f"{r.event} {_short(r.key)}", r.execution, r.state, r.why or "-")
            for r in rows
        ]
        widths = [max(len(line[i]) for line in [header, *table]) for i in range(4)]
        for number, line in enumerate([header, *table]):
            cells = [line[i].ljust(widths[i]) for i in range(4)]
            out.append("  ".join([*cells, line[4]]).rstrip())
            if number and rows[number - 1].next:
                out.append(" " * (sum(widths) + 8) + f"next: {rows[number - 1].next}")
    out += [f"problem: {p}" for p in snap.problems]
    return "\n".join(out)


def _short(key: str) -> str:
    """Digests and commits shortened as everywhere (`short_key`); any other key cut at 24
    characters says so with an ellipsis."""
    short = short_key(key)
    return short if len(short) <= 24 else short[:23] + "…"


@click.command()
@click.option(
    "--repo", help="The remote: a URL or a path (default: the `origin` of the repository here)."
)
@click.option("--branch", help="The default branch (default: the remote's HEAD).")
@click.option("--intent", help="Only the executions of this intent.")
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Every execution (default: those not over, and the latest one of each intent that is).",
)
@click.option(
    "--watch", is_flag=True, help="Show it again whenever the remote changes (Ctrl-C ends)."
)
@click.option(
    "--interval",
    type=click.FloatRange(0.2),
    default=2.0,
    show_default=True,
    help="With --watch: seconds between looks at the remote (`git ls-remote`).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format (json: docs/schemas/foundry-status.schema.json; one line per change with --watch).",
)
@output_options(with_format=False)
def status(
    repo: str | None,
    branch: str | None,
    intent: str | None,
    every: bool,
    watch: bool,
    interval: float,
    fmt: str,
) -> None:
    """The executions of a repository, any host's, from its remote's records (traces branch,
    claims, check runs, pauses): intent, event, execution, state and why. Needs no state
    directory."""
    from controllers import status as remote_status
    from controllers.gitops import Mirror, remote_url

    url = remote_url(here_remote(repo))
    scratch = _scratch()

    def show() -> dict[str, str]:
        snap = remote_status.read(url, scratch, branch=branch)
        rows = _shown(snap, every=every, intent=intent)
        if fmt == "json":
            document = _document(snap, rows)
            click.echo(json.dumps(document, sort_keys=True, indent=None if watch else 2))
        else:
            if watch:
                click.echo(f"--- {time.strftime('%H:%M:%S')} ---")
            click.echo(_text(snap, rows))
        sys.stdout.flush()
        return snap.heads

    heads = show()
    if not watch:
        return
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    probe = Mirror(url, scratch / "mirror.git")
    try:
        while not stop.wait(interval):
            try:
                now = remote_status.watched(probe)
            except Exception as exc:  # noqa: BLE001 - the remote went away: say so, keep watching
                click.echo(f"cannot read {url} now: {exc}", err=True)
                continue
            if now != heads:
                heads = show()
    finally:
        probe.close()
    raise click.exceptions.Exit(130)


def remote_trace_rows(repo: str | None, known: set[str], note: Any) -> list[dict[str, Any]]:
    """`foundry traces list`'s rows from the traces branch of the remote (`--repo`, else the
    repository here's `origin`): what any host ran. None outside a repository; a remote that
    cannot be read is a note, and the local executions are still listed."""
    from controllers import status as remote_status
    from controllers.gitops import GitError, remote_url
    from foundry.errors import UserError

    try:
        url = remote_url(here_remote(repo))
    except UserError:
        if repo is not None:
            raise
        return []
    try:
        snap = remote_status.read(url, _scratch())
    except GitError as exc:
        note(f"cannot read the traces branch of {url}: {exc}")
        return []
    return [
        {
            "execution": row.execution,
            "status": row.state,
            "artifact": row.artifact,
            "event": {"type": row.event, "key": row.key},
            "plannedAt": row.started or "",
            "source": url,
        }
        for row in snap.rows
        if row.trace is not None and row.trace.startswith("traces/") and row.execution not in known
    ]


def remote_trace(repo: str | None, execution: str) -> tuple[dict[str, Any], str] | None:
    """The Trace document and Markdown summary of `execution` from the remote's traces branch
    (for `foundry traces show|export` of an execution no local state directory holds)."""
    from controllers import status as remote_status
    from controllers.gitops import remote_url
    from foundry.errors import UserError

    try:
        url = remote_url(here_remote(repo))
    except UserError:
        if repo is not None:
            raise
        return None
    found = remote_status.trace_files(url, _scratch(), execution)
    if found is None:
        return None
    _row, document, summary = found
    trace: dict[str, Any] = json.loads(document)
    if summary is None:
        from foundry.traces import markdown_summary

        summary = markdown_summary(trace).encode()
    return trace, summary.decode()
