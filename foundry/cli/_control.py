"""`foundry pause`, `foundry resume` and `foundry cancel`: emergency stops, recorded on the
remote (`refs/alloy/control`, docs/reconcile.md "Pause, resume, cancel") so that every host and
the GitHub Action obey them."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

import click

from foundry.cli._gitops import _scratch, here_remote
from foundry.cli._output import output_options

if TYPE_CHECKING:
    from controllers.gitops import Mirror

_REPO = click.option(
    "--repo",
    help="The remote: a URL or a path (default: the `origin` of the repository here).",
)
_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format (json: docs/schemas/foundry-<command>.schema.json).",
)
#: -q and -v, as every command that prints data takes them
_QUIET_VERBOSE = output_options(with_format=False)
_BY = click.option(
    "--by",
    help="Who records it (default: your git identity, `git var GIT_AUTHOR_IDENT`).",
)
_EXECUTION = re.compile(r"exe-[0-9a-f]{16}")
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _who(by: str | None) -> str:
    """The operator: `--by`, else the git identity (the one `alloy approve` records), else the
    login name."""
    import getpass
    import subprocess

    if by:
        return by.strip()
    done = subprocess.run(
        ["git", "var", "GIT_AUTHOR_IDENT"], capture_output=True, text=True, check=False
    )
    ident = done.stdout.strip()
    if done.returncode == 0 and ident:
        return re.sub(r"\s+\d+\s+[+-]\d{4}$", "", ident)  # without the time stamp
    return getpass.getuser()


def parse_until(text: str, now: float) -> float:
    """`--until`: a duration from now (`90m`, `2h`, `1d`, `30s`) or a time (RFC 3339, e.g.
    `2026-12-06T18:00:00Z` or with an offset); it must lie in the future."""
    from datetime import datetime

    from foundry.errors import UserError

    spoken = _DURATION.fullmatch(text.strip())
    if spoken is not None:
        at = now + float(spoken.group(1)) * _UNITS[spoken.group(2)]
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UserError(
                f"--until {text!r}: give a duration (30m, 2h, 1d) or a time with its zone "
                "(2026-12-06T18:00:00Z)"
            ) from None
        if moment.tzinfo is None:
            raise UserError(
                f"--until {text!r}: say which time zone (end it with Z or an offset like +01:00)"
            )
        at = moment.timestamp()
    if at <= now:
        raise UserError(f"--until {text!r} is not in the future")
    return at


def _reason(reason: str) -> str:
    from foundry.errors import UserError

    text = " ".join(reason.split())
    if not text:
        raise UserError("--reason is empty: say why (it is shown wherever the stop applies)")
    if len(text) > 500:
        raise UserError(f"--reason is {len(text)} characters long; 500 at most")
    return text


def _open(repo: str | None) -> tuple[str, Mirror]:
    from controllers.gitops import Mirror, remote_url

    url = remote_url(here_remote(repo))
    return url, Mirror(url, _scratch() / "mirror.git")


def _intents(mirror: Mirror) -> list[str]:
    """The intents of the remote's default branch (its compiled artifacts)."""
    from controllers.gitops import GitError

    branch = mirror.default_branch()
    ref = f"refs/heads/{branch}"
    if ref not in mirror.heads([ref]):
        raise GitError(f"{mirror.url} has no branch {branch!r}")
    mirror.fetch([ref])
    return sorted(
        p.removeprefix(".alloy/artifacts/").removesuffix(".json")
        for p in mirror.tree(ref, ".alloy/artifacts/")
        if p.endswith(".json")
    )


def _echo(fmt: str, data: dict[str, Any], text: str) -> None:
    if fmt == "json":
        click.echo(json.dumps({"schemaVersion": 1, **data}, indent=2, sort_keys=True))
    else:
        click.echo(text)


@click.command()
@click.argument("intent", required=False)
@click.option("--all", "every", is_flag=True, help="Pause every intent.")
@click.option("--reason", required=True, help="Why (shown wherever the pause applies).")
@click.option(
    "--until",
    "until_text",
    metavar="TIME",
    help="When it ends by itself: a duration (30m, 2h, 1d) or a time (2026-12-06T18:00:00Z). "
    "Default: until `foundry resume`.",
)
@click.option(
    "--stop-running",
    is_flag=True,
    help="Stop running blocks at once (default: they finish, and nothing after them starts).",
)
@_BY
@_REPO
@_FORMAT
@_QUIET_VERBOSE
def pause(
    intent: str | None,
    every: bool,
    reason: str,
    until_text: str | None,
    stop_running: bool,
    by: str | None,
    repo: str | None,
    fmt: str,
) -> None:
    """Pause INTENT (or --all): nothing new of it starts on any host or in the GitHub Action
    until it is resumed or --until passes. Recorded on the remote."""
    from controllers import control as controls
    from foundry.errors import UserError

    if every == bool(intent):
        raise click.UsageError("name one INTENT, or give --all")
    if intent is not None and not _NAME.fullmatch(intent):
        raise UserError(f"{intent!r} is not an intent name (lowercase letters, digits, -)")
    why = _reason(reason)
    now = time.time()
    until = parse_until(until_text, now) if until_text is not None else None
    url, mirror = _open(repo)
    try:
        if intent is not None:
            known = _intents(mirror)
            if intent not in known:
                import difflib

                close = difflib.get_close_matches(intent, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                listed = ", ".join(known) or "none"
                raise UserError(
                    f"no intent {intent!r} on the default branch of {url} (intents: {listed}){hint}"
                )
        record = controls.Pause(intent, why, _who(by), now, until, stop_running)
        controls.write(
            mirror,
            {controls.pause_path(intent): controls.document(record)},
            message=f"pause {intent or 'every intent'} by {record.by}: {why}",
        )
    finally:
        mirror.close()
    _echo(
        fmt,
        {"action": "pause", "remote": url, "record": record.to_json()},
        f"{record.describe()}\nrecorded on {url} ({controls.REF}); every host's next pass obeys it",
    )


@click.command()
@click.argument("intent", required=False)
@click.option("--all", "every", is_flag=True, help="Lift the pause of every intent.")
@_BY
@_REPO
@_FORMAT
@_QUIET_VERBOSE
def resume(intent: str | None, every: bool, by: str | None, repo: str | None, fmt: str) -> None:
    """Lift the pause of INTENT (or the one of --all): what it held starts on the next pass."""
    from controllers import control as controls
    from foundry.errors import UserError

    if every == bool(intent):
        raise click.UsageError("name one INTENT, or give --all")
    url, mirror = _open(repo)
    try:
        current = controls.fetch(mirror)
        key = intent or controls.ALL
        pause_ = current.pauses.get(key)
        if pause_ is None:
            paused = ", ".join(sorted(k if k != controls.ALL else "--all" for k in current.pauses))
            raise UserError(
                f"{'every intent' if intent is None else f'intent {intent}'} is not paused on "
                f"{url} (paused: {paused or 'nothing'})"
            )
        who = _who(by)
        controls.write(
            mirror,
            {},
            remove=[controls.pause_path(intent)],
            message=f"resume {intent or 'every intent'} by {who}",
        )
    finally:
        mirror.close()
    scope = "every intent" if intent is None else f"intent {intent}"
    others = sorted(k for k in current.pauses if k != key)
    tail = ""
    if others:
        tail = "\nstill paused: " + ", ".join("--all" if k == controls.ALL else k for k in others)
    _echo(
        fmt,
        {"action": "resume", "remote": url, "record": pause_.to_json(), "by": who},
        f"{scope} resumed by {who} (was: {pause_.reason}); the next pass starts what it held"
        + tail,
    )


@click.command()
@click.argument("execution")
@click.option("--reason", required=True, help="Why (goes into its trace and check run).")
@click.option(
    "--force",
    is_flag=True,
    help="Record it although the remote's records do not show the execution (one a pause held "
    "before it started, whose check run is on GitHub).",
)
@_BY
@_REPO
@_FORMAT
@_QUIET_VERBOSE
def cancel(
    execution: str, reason: str, force: bool, by: str | None, repo: str | None, fmt: str
) -> None:
    """Cancel EXECUTION: it ends `cancelled`, with the reason in its trace, on whichever host
    holds it (running blocks are stopped). Recorded on the remote."""
    from controllers import control as controls
    from controllers import status as remote_status
    from foundry.errors import UserError

    if not _EXECUTION.fullmatch(execution):
        raise UserError(f"{execution!r} is not an execution id (exe- and 16 hex digits)")
    why = _reason(reason)
    url, mirror = _open(repo)
    mirror.close()
    snap = remote_status.read(url, _scratch())
    row = snap.row(execution)
    if row is None and not force:
        raise UserError(
            f"no execution {execution} in the records of {url} (traces, claims, check runs); "
            "`foundry status --all` lists them (one a pause held before it started, with its "
            "check run on GitHub: --force records the cancel anyway)"
        )
    from controllers.reconcile import FINISHED

    if row is not None and row.state in FINISHED:
        raise UserError(f"{execution} ({row.intent}) already ended {row.state}; nothing to cancel")
    record = controls.Cancel(execution, why, _who(by), time.time())
    _, mirror = _open(url)
    try:
        controls.write(
            mirror,
            {controls.cancel_path(execution): controls.document(record)},
            message=f"cancel {execution} by {record.by}: {why}",
        )
    finally:
        mirror.close()
    what = f" ({row.intent}, {row.event} {row.key[:19]})" if row is not None else ""
    _echo(
        fmt,
        {"action": "cancel", "remote": url, "record": record.to_json()},
        f"{execution}{what}: {record.describe()}\n"
        f"recorded on {url} ({controls.REF}); the host that holds it stops it, or the next "
        "pass of any host ends it",
    )


__all__ = ["cancel", "pause", "resume"]
