"""`foundry reconcile` and `foundry checks`: the GitOps commands (controllers do the work)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from foundry.cli._output import output, output_options
from foundry.cli._sandbox import chosen_sandbox, sandbox_option

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
    "--repo",
    help="The remote: a URL or a path (default: the `origin` of the repository here, else the "
    "repository itself).",
)


def project_root(start: Path) -> Path:
    """The nearest directory at or above `start` that holds `.alloy/` (as `alloy` finds its
    project); `start` itself when there is none (the command then says what is missing)."""
    here = start.resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".alloy").is_dir():
            return candidate
    return here


def project_path(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """A click callback: a checkout PATH argument, walked up to its project's root."""
    return None if value is None else project_root(value)


def here_remote(repo: str | None) -> str:
    """The remote a reading command reads: `--repo` as given, else the `origin` remote of the
    git repository the command runs in (any subdirectory of it), else that repository itself
    (its own branches are the remote). A UserError outside any repository."""
    import subprocess

    from foundry.errors import UserError

    if repo:
        return repo

    def ask(*args: str) -> str | None:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None

    found = ask("rev-parse", "--show-toplevel")
    if found is None and ask("rev-parse", "--is-bare-repository") == "true":
        found = ask("rev-parse", "--absolute-git-dir")  # a bare repository is the remote
    if found is None:
        raise UserError(f"{Path.cwd()} is not in a git repository: pass --repo PATH|URL, or -C DIR")
    root = Path(found)
    origin = subprocess.run(
        ["git", "-C", str(root), "remote", "get-url", "origin"],
        capture_output=True,
        text=True,
        check=False,
    )
    url = origin.stdout.strip()
    if origin.returncode != 0 or not url:
        return str(root)
    if "://" in url or ":" in url.split("/", 1)[0]:
        return url
    return str((root / url).resolve())  # a path, relative to the repository


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
@sandbox_option
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
    sandbox: str,
) -> None:
    """Reconcile the remote REPO: run what its default branch asks for, commit the traces.

    Exit codes with --once: 0 nothing failed, 1 the remote could not be read or written (what
    could not be published waits in the outbox), 4 an execution failed, 5 an execution waits
    (a gate, its lane, a pause).
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
        sandbox=chosen_sandbox(sandbox),
    )
    reconciler = Reconciler(
        settings, clock=interrupts.clock, stop=stop, progress=console.event, halt=interrupts.halt
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
    if statuses - {"succeeded", "skipped", "cancelled", "failed"} or report.held:
        raise click.exceptions.Exit(EXIT_WAITING)  # a gate, a lane, or a pause holds one


def _describe(report: PassReport) -> None:
    if not report.moved and not report.finished and not report.errors:
        click.echo(f"{report.repo}: nothing new ({report.seconds * 1000:.0f} ms)")
    for line, problem in report.lines():
        click.echo(line, err=problem)


@click.group()
def checks() -> None:
    """Check runs recorded on the local forge (`refs/alloy/forge` of the remote)."""


def _forge(repo: str, state_dir: Path | None) -> LocalForge:
    """The local forge of `repo`, read through the state directory's mirror when one is given,
    else through a scratch one (the records are fetched from the remote either way)."""
    from controllers.forge import LocalForge
    from controllers.gitops import Mirror, remote_url
    from foundry.workspace import state_directory

    if state_dir is not None:
        where = state_directory(state_dir, write=True) / "mirror.git"
    else:
        where = _scratch() / "mirror.git"
    return LocalForge(Mirror(remote_url(repo), where))


def _scratch() -> Path:
    """A temporary directory for this command (removed when the process exits)."""
    import atexit
    import shutil
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="foundry-read-"))
    atexit.register(shutil.rmtree, where, True)
    return where


@checks.command("list")
@_FORGE_REPO
@click.option("--commit", help="Only the check runs of this commit (full id).")
@_STATE
@output_options(json_alias=True)
def checks_list(repo: str | None, commit: str | None, state_dir: Path | None) -> None:
    """List the check runs (by commit, then name)."""
    repo = here_remote(repo)
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
def checks_show(which: str, repo: str | None, state_dir: Path | None) -> None:
    """Show a check run: WHICH is an execution id, a check name, or an artifact name (its
    check run on the newest commit that has one)."""
    from foundry.errors import UserError

    repo = here_remote(repo)
    forge = _forge(repo, state_dir)
    runs = [
        r
        for r in forge.checks()
        if which in (r.external_id, r.name) or r.name.startswith(f"foundry: {which} (")
    ]
    if not runs:
        raise UserError(
            f"no check run for {which!r}; `foundry checks list --repo {repo}` lists them"
        )
    run = runs[-1] if len({r.commit for r in runs}) == 1 else _newest(forge, runs)
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


def _newest(forge: LocalForge, runs: list[CheckRun]) -> CheckRun:
    """The run on the newest commit (by commit time; the commits are fetched to know it)."""
    mirror = forge.mirror
    heads = mirror.refs_under("refs/heads/")
    mirror.fetch(sorted(heads))
    return max(runs, key=lambda run: mirror.commit_time(run.commit))
