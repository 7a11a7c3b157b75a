"""`foundry reconcile` and `foundry checks`: the GitOps commands (controllers do the work)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from foundry.cli._output import output, output_options
from foundry.ports import SystemClock

if TYPE_CHECKING:
    from controllers.forge import CheckRun, LocalForge
    from controllers.reconcile import PassReport

EXIT_FAILED, EXIT_WAITING = 4, 5
_STATE = click.option(
    "--state",
    "state_dir",
    type=click.Path(readable=False, path_type=Path),
    help="State directory (default: see docs/reconcile.md).",
)
_FORGE_REPO = click.option(
    "--repo", default=".", show_default=True, help="The remote: a URL or a path."
)


@click.command()
@click.option("--repo", required=True, help="The remote: a URL (file://, git://, ssh) or a path.")
@click.option("--branch", help="The default branch (default: the remote's HEAD).")
@click.option("--once", is_flag=True, help="One pass, then exit (else: pass every --interval).")
@click.option(
    "--interval",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="Seconds between passes without --once.",
)
@_STATE
@click.option(
    "--lease",
    type=click.FloatRange(1),
    default=60.0,
    show_default=True,
    help="Seconds a claim is held without renewal.",
)
@click.option(
    "--grace",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="On SIGTERM/SIGINT, seconds running blocks may go on.",
)
@click.option(
    "--recheck",
    type=click.FloatRange(0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds between looks at parked executions (waiting gates) when nothing moved.",
)
@click.option("--workers", type=click.IntRange(1, 256), help="Blocks in parallel (default: cores).")
@output_options(
    help_format="text: what each pass did, for people; json: one document per pass, each on one "
    "line (docs/schemas/foundry-reconcile.schema.json).",
    json_alias=True,
)
def reconcile(
    repo: str,
    branch: str | None,
    once: bool,
    interval: float,
    state_dir: Path | None,
    lease: float,
    grace: float,
    recheck: float,
    workers: int | None,
) -> None:
    """Reconcile the remote REPO: run what its default branch asks for, commit the traces.

    Exit codes with --once: 0 nothing failed, 1 the remote could not be read or written (what
    could not be published waits in the outbox), 4 an execution failed, 5 an execution waits.
    """
    from controllers.reconcile import Reconciler, Settings, state_dir_for

    out = output()
    as_json = out.format == "json"
    from foundry.cli._progress import Console, Interrupts
    from foundry.workspace import state_directory

    state_directory(state_dir or state_dir_for(repo), write=True)
    # Each execution and block as it starts and ends (on stderr with --format json: stdout is
    # the report); a signal says what it does at once, a second one stops running blocks now.
    reconciler: Reconciler | None = None
    console = Console(
        where="reconcile", branch=lambda: reconciler.branch if reconciler else None, err=as_json
    )
    interrupts = Interrupts(grace, console).install()
    stop = interrupts.stop
    settings = Settings(
        repo=repo,
        branch=branch,
        state_dir=state_dir,
        lease=lease,
        grace=grace,
        workers=workers,
        recheck=recheck,
    )
    reconciler = Reconciler(
        settings, clock=SystemClock(), stop=stop, progress=console.event, halt=interrupts.halt
    )
    try:
        while True:
            report = reconciler.pass_once()
            if as_json:
                out.json_line(report.to_json())
            else:
                _describe(report)
            if once or stop.is_set():
                break
            stop.wait(interval)
            if stop.is_set():
                break
    finally:
        reconciler.close()
    if stop.is_set():
        raise click.exceptions.Exit(130)
    if report.errors:
        raise click.exceptions.Exit(1)
    statuses = set(report.finished.values())
    if statuses & {"failed", "indeterminate"}:
        raise click.exceptions.Exit(EXIT_FAILED)
    if statuses - {"succeeded", "skipped", "cancelled", "failed"}:
        raise click.exceptions.Exit(EXIT_WAITING)


def _describe(report: PassReport) -> None:
    if not report.moved and not report.finished and not report.errors:
        click.echo(f"{report.repo}: nothing new ({report.seconds * 1000:.0f} ms)")
    for line, problem in report.lines():
        click.echo(line, err=problem)


@click.group()
def checks() -> None:
    """Check runs recorded on the local forge (`refs/alloy/forge` of the remote)."""


def _forge(repo: str, state_dir: Path | None) -> LocalForge:
    from controllers.forge import LocalForge
    from controllers.gitops import Mirror, remote_url
    from controllers.reconcile import state_dir_for
    from foundry.workspace import state_directory

    state = state_directory(state_dir or state_dir_for(repo), write=True)
    return LocalForge(Mirror(remote_url(repo), state / "mirror.git"))


@checks.command("list")
@_FORGE_REPO
@click.option("--commit", help="Only the check runs of this commit (full id).")
@_STATE
@output_options(json_alias=True)
def checks_list(repo: str, commit: str | None, state_dir: Path | None) -> None:
    """List the check runs (by commit, then name)."""
    runs = _forge(repo, state_dir).checks(commit)
    out = output()
    if out.json_alias:  # the deprecated --json: the bare list it printed before
        click.echo(json.dumps([r.to_json() for r in runs], indent=2, sort_keys=True))
        return
    if out.format == "json":
        out.json({"checkRuns": [r.to_json() for r in runs]})
        return
    if not runs:
        click.echo("no check runs")
        return
    out.table(
        ("COMMIT", "CONCLUSION", "NAME", "EXECUTION"),
        [(r.commit[:12], r.conclusion or r.status, r.name, r.external_id) for r in runs],
    )


@checks.command("show")
@click.argument("which")
@_FORGE_REPO
@_STATE
@output_options(
    "text",
    "json",
    "markdown",
    help_format="text: the check run's summary (rendered on a terminal, plain when piped); json: "
    "the check run; markdown: its summary's Markdown as it is.",
)
def checks_show(which: str, repo: str, state_dir: Path | None) -> None:
    """Show a check run: WHICH is an execution id, a check name, or an artifact name (its
    check run on the newest commit that has one)."""
    from foundry.errors import UserError

    runs = [
        r
        for r in _forge(repo, state_dir).checks()
        if which in (r.external_id, r.name) or r.name.startswith(f"foundry: {which} (")
    ]
    if not runs:
        raise UserError(
            f"no check run for {which!r}; `foundry checks list --repo {repo}` lists them"
        )
    run = runs[-1] if len({r.commit for r in runs}) == 1 else _newest(repo, state_dir, runs)
    out = output()
    if out.format == "json":
        out.json({"checkRun": run.to_json()})
        return
    click.echo(f"{run.name} on {run.commit}: {run.conclusion or run.status}")
    click.echo(f"{run.title}\n")
    if out.format == "markdown":
        click.echo(run.summary)
    else:
        out.markdown(run.summary)


def _newest(repo: str, state_dir: Path | None, runs: list[CheckRun]) -> CheckRun:
    """The run on the newest commit (by commit time in the mirror)."""
    from controllers.gitops import Mirror, remote_url
    from controllers.reconcile import state_dir_for

    mirror = Mirror(remote_url(repo), (state_dir or state_dir_for(repo)) / "mirror.git")
    try:
        return max(runs, key=lambda run: mirror.commit_time(run.commit))
    finally:
        mirror.close()
