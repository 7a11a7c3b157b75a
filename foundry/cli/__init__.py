"""The `foundry` command line: a thin shell over the library, behind one error boundary.

Exit codes: 0 succeeded; 1 the input is wrong (a refused artifact, a bad input); 2 usage;
3 internal error (crash log); 4 the execution failed; 5 waiting (on a gate, or queued in its
lane: run again later); 6 indeterminate (waiting for an approval after an interruption);
7 not run (its lane rejected it, or a newer execution superseded it); 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from foundry._version import BOUNDARY_VERSION, __version__
from foundry.cli import _help
from foundry.cli._gitops import project_path
from foundry.cli._output import output, output_options
from foundry.cli._sandbox import chosen_sandbox, sandbox_option
from foundry.errors import FoundryError
from foundry.ports import SystemClock

if TYPE_CHECKING:
    from foundry.traces import InputFile, TraceBundle

EXIT_FAILED, EXIT_WAITING, EXIT_INDETERMINATE, EXIT_NOT_RUN = 4, 5, 6, 7
_STATUS_EXIT = {
    "succeeded": 0,
    "failed": EXIT_FAILED,
    "waiting": EXIT_WAITING,
    "indeterminate": EXIT_INDETERMINATE,
    "cancelled": 130,
    "stopped": 130,
    "queued": EXIT_WAITING,
    "skipped": EXIT_NOT_RUN,
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, prog_name="foundry", message=f"%(prog)s %(version)s (reads {BOUNDARY_VERSION})"
)
@click.option(
    "-C",
    "directory",
    type=click.Path(exists=True, file_okay=False),
    metavar="DIR",
    help="Run as if foundry was started in DIR (like git -C).",
)
def cli(directory: str | None) -> None:
    """Foundry: runs Alloy artifacts through events, task blocks, gates, throttle and traces."""
    if directory is not None:
        os.chdir(directory)


def _pairs(values: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in values:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--input {pair!r}: write it as NAME=VALUE")
        out[key] = value
    return out


@cli.command()
@click.argument(
    "path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    callback=project_path,
)
@click.option("--artifact", "name", required=True, help="Name of the artifact to run.")
@click.option("--input", "inputs", multiple=True, metavar="K=V", help="An input; repeatable.")
@click.option("--dry-run", is_flag=True, help="Run only blocks with effects: none.")
@click.option("--rerun", is_flag=True, help="A new execution even if this artifact already ran.")
@click.option(
    "--state",
    "state_dir",
    type=click.Path(readable=False, path_type=Path),
    help="State directory (default: outside the checkout, see docs).",
)
@click.option("--workers", type=click.IntRange(1, 256), help="Blocks in parallel (default: cores).")
@click.option(
    "--grace",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="On SIGTERM/SIGINT, seconds running blocks may go on before they are stopped.",
)
@click.option(
    "--policy",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A checkout of the default branch for policy commands (`command` gates); default: "
    "the clone's origin/HEAD, exported to a temporary directory.",
)
@sandbox_option
@output_options(
    help_format="text: each execution and block as it starts and ends; json: the result as one "
    "document at the end (the progress then goes to stderr).",
)
def run(
    path: Path,
    name: str,
    inputs: tuple[str, ...],
    dry_run: bool,
    rerun: bool,
    state_dir: Path | None,
    workers: int | None,
    grace: float,
    policy: Path | None,
    sandbox: str,
) -> None:
    """Run artifact NAME of the checkout at PATH (no git needed).

    Gates: windows are judged by the clock and policy commands in a checkout of the default
    branch; approval, check and after gates need a forge and wait here (it says which).
    """
    from foundry.cli._policy import LocalPolicy
    from foundry.cli._progress import Console, Interrupts, again_command
    from foundry.redaction import redaction
    from foundry.workspace import declared_secrets, find_artifact, run_in_checkout, unjudged_gates

    # Each execution and block as it starts and ends; a stop (not a cancel: the next run
    # resumes the execution) says what it does at once, and a second one stops now.
    out = output()
    as_json = out.format == "json"
    console = Console(where="run", again=again_command(), end_on_stderr=True, err=as_json)
    interrupts = Interrupts(grace, console).install()
    source = LocalPolicy(path.resolve(), policy)
    artifact = find_artifact(path.resolve(), name)[0]
    masks = redaction(list(declared_secrets(artifact).values()))
    for line in unjudged_gates(artifact, policy=source.known()):
        click.echo(f"note: {line}", err=True)
    try:
        result = run_in_checkout(
            path.resolve(),
            name,
            inputs=_pairs(inputs),
            clock=interrupts.clock,
            dry_run=dry_run,
            rerun=rerun,
            state_dir=state_dir,
            workers=workers,
            stop=interrupts.stop,
            stop_grace=grace,
            policy=source.checkout if source.known() else None,
            on_event=None if out.quiet else console.event,
            halt=interrupts.halt,
            sandbox=chosen_sandbox(sandbox),
        )
    finally:
        source.close()
    if as_json:
        out.json(
            {
                "execution": result.execution,
                "status": result.status,
                "reason": masks.mask_text(result.reason) if result.reason else None,
                "blocks": [{"id": b, "status": s} for b, s in result.blocks.items()],
            }
        )
    elif not out.quiet:
        console.result(result, masks.mask_text)
    raise click.exceptions.Exit(_STATUS_EXIT[result.status])


@cli.command()
@click.argument(
    "path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    callback=project_path,
)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(readable=False, path_type=Path),
    help="State directory (default: outside the checkout, see docs).",
)
@output_options(json_alias=True)
def plan(path: Path, state_dir: Path | None) -> None:
    """Show what would start now for every artifact of PATH, and what would not, and why.
    Executes nothing."""
    from foundry.workspace import plan_checkout

    out = output()
    result, refused = plan_checkout(path.resolve(), clock=SystemClock(), state_dir=state_dir)
    if out.format == "json":

        def item(kind: str, it: object) -> dict[str, object]:
            from foundry.planner import Item

            assert isinstance(it, Item)
            return {
                "action": kind,
                "artifact": it.artifact,
                "execution": it.execution,
                "event": {"type": it.event.type, "key": it.event.key} if it.event else None,
                "reason": it.reason,
            }

        data = [item("start", i) for i in result.start] + [item("resume", i) for i in result.resume]
        data += [item("skip", i) for i in result.skip]
        out.json({"plan": data, "refused": [str(r) for r in refused]})
        if refused:
            raise click.exceptions.Exit(1)
        return
    lines = [f"refused  {problem}" for problem in refused]
    rows = [("start", i) for i in result.start] + [("resume", i) for i in result.resume]
    rows += [("skip", i) for i in result.skip]
    for artifact in sorted({i.artifact for _, i in rows}):
        lines.append(artifact)
        for kind, it in rows:
            if it.artifact == artifact:
                lines.append(f"  {kind:<7} {it.execution or '-':<20} {it.reason}")
    if not rows and not refused:
        lines.append("no artifacts")
    out.text("".join(line + "\n" for line in lines))
    if refused:
        raise click.exceptions.Exit(1)


_STATE = click.option(
    "--state",
    "state_dir",
    type=click.Path(readable=False, path_type=Path),
    help="State directory (default: the one `foundry run` uses for PATH).",
)
_PATH = click.option(
    "--path",
    "path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    callback=project_path,
    help="The checkout whose executions to read (or a directory in it).",
)
_REMOTE = click.option(
    "--repo",
    help="The remote whose traces branch is read too: what any host ran (default: the "
    "`origin` of the repository here).",
)


def _state(path: Path, state_dir: Path | None) -> Path:
    from foundry.workspace import default_state_dir, state_directory

    return state_directory(state_dir or default_state_dir(path.resolve()), write=False)


@cli.group()
def traces() -> None:
    """Read the traces of executions: list, show, export; convert a Trace document."""


@traces.command("list")
@_PATH
@_STATE
@_REMOTE
@output_options()
def traces_list(path: Path, state_dir: Path | None, repo: str | None) -> None:
    """Every execution with its status, artifact, event and when it was planned."""
    from foundry.state import LedgerIndex

    out = output()
    rows: list[dict[str, Any]] = []
    for summary in LedgerIndex(_state(path, state_dir)).summaries():
        first = summary.planned
        event = first.get("event", {})
        rows.append(
            {
                "execution": summary.execution,
                "status": summary.status,
                "artifact": str(first.get("artifact", {}).get("name", "?")),
                "event": {"type": str(event.get("type", "?")), "key": str(event.get("key", "?"))},
                "plannedAt": str(first.get("at", "")),
                "source": "local",
            }
        )
    from foundry.cli._status import remote_trace_rows

    rows += remote_trace_rows(repo, {r["execution"] for r in rows}, out.note)
    if out.format == "json":
        out.json({"executions": rows})
        return
    if not rows:
        out.note("no executions yet; run one with `foundry run`")
        return
    out.table(
        ("EXECUTION", "STATUS", "ARTIFACT", "EVENT", "PLANNED"),
        [
            (r["execution"], r["status"], r["artifact"], f"{r['event']['type']}:{r['event']['key']}",
             r["plannedAt"])
            for r in rows
        ],
    )  # fmt: skip


def _trace(
    path: Path, state_dir: Path | None, execution: str, repo: str | None
) -> tuple[dict[str, Any], str]:
    """The Trace document and summary of `execution`: from the state directory's ledger when
    this host ran it, else from the traces branch of the remote (what any host ran)."""
    from foundry.cli._status import remote_trace
    from foundry.errors import UserError

    if _local(path, state_dir, execution):
        bundle = _bundle(path, state_dir, execution)
        return bundle.trace, bundle.markdown
    found = remote_trace(repo, execution)
    if found is None:
        try:
            _bundle(path, state_dir, execution)  # says which state directory, and what it has
        except UserError as exc:
            raise UserError(
                f"{exc}; nor is it on the traces branch of the remote (`foundry traces list` "
                "lists both)"
            ) from None
        raise UserError(f"no execution {execution!r} here or on the traces branch")
    return found


def _local(path: Path, state_dir: Path | None, execution: str) -> bool:
    from foundry.state import LedgerIndex

    return execution in {s.execution for s in LedgerIndex(_state(path, state_dir)).summaries()}


def _bundle(path: Path, state_dir: Path | None, execution: str) -> TraceBundle:
    from foundry.traces import trace_bundle
    from foundry.workspace import declared_secrets, load_trace_inputs

    records, artifact = load_trace_inputs(_state(path, state_dir), execution)
    # The ledger is masked as it is written; its secrets, where this environment has them, are
    # masked again (a ledger written by another, or an older, engine).
    return trace_bundle(records, artifact, secrets=list(declared_secrets(artifact).values()))


@traces.command("show")
@click.argument("execution", required=False)
@_PATH
@_STATE
@_REMOTE
@output_options(
    "text",
    "json",
    "markdown",
    help_format="text: the summary (rendered on a terminal, plain when piped); json: the Trace "
    "document with schemaVersion; markdown: the summary's Markdown as it is.",
)
def traces_show(
    execution: str | None, path: Path, state_dir: Path | None, repo: str | None
) -> None:
    """The summary of EXECUTION (default: the latest one): its blocks in the order they ran,
    gates, evidence and the logs of what failed."""
    from foundry.errors import UserError
    from foundry.state import LedgerIndex

    if execution is None:
        summaries = LedgerIndex(_state(path, state_dir)).summaries()
        if not summaries:
            raise UserError(
                "no executions yet in this checkout's state directory; run one with `foundry "
                "run`, or name one (`foundry traces list` lists the remote's too)"
            )
        latest = max(summaries, key=lambda s: (str(s.planned.get("at", "")), s.execution))
        execution = latest.execution
    document, summary = _trace(path, state_dir, execution, repo)
    out = output()
    if out.format == "json":
        out.json({"execution": execution, "trace": document})
    elif out.format == "markdown":
        click.echo(summary)
    else:
        out.markdown(summary)


@traces.command("export")
@click.argument("execution")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "markdown", "otlp", "intoto"]),
    default="json",
    show_default=True,
)
@_PATH
@_STATE
@_REMOTE
@output_options(with_format=False)
def traces_export(
    execution: str, fmt: str, path: Path, state_dir: Path | None, repo: str | None
) -> None:
    """EXECUTION as the Trace document, Markdown, OTLP/JSON or an in-toto statement (the last
    needs this host's ledger; the others also come from the remote's traces branch)."""
    import json

    from foundry.errors import UserError

    if not _local(path, state_dir, execution):
        if fmt == "intoto":
            raise UserError(
                f"{execution}: an in-toto statement is made from its ledger, which this host "
                "does not have; `foundry traces convert --format intoto --trace FILE --artifact "
                "FILE` makes one from its trace and artifact"
            )
        from foundry.traces import otlp_json

        trace, summary = _trace(path, state_dir, execution, repo)
        if fmt == "markdown":
            click.echo(summary)
        else:
            data = trace if fmt == "json" else otlp_json(trace)
            click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    bundle = _bundle(path, state_dir, execution)
    if fmt == "markdown":
        click.echo(bundle.markdown)
        return
    if fmt == "intoto" and bundle.intoto is None:
        raise UserError(f"{execution} produced no outputs, so there is nothing to attest")
    document = {"json": bundle.trace, "otlp": bundle.otlp, "intoto": bundle.intoto}[fmt]
    click.echo(json.dumps(document, indent=2, sort_keys=True))


def _input_file(path: str, *, stdin: bool = False) -> InputFile:
    """The bytes of `path` (`-` with `stdin`: standard input), read to a bound."""
    from foundry.boundary import TRACE_MAX_BYTES
    from foundry.errors import UserError
    from foundry.traces import InputFile

    if stdin and path == "-":
        name = "<stdin>"
        data = sys.stdin.buffer.read(TRACE_MAX_BYTES + 1)
    else:
        name = path
        try:
            with open(path, "rb") as fh:
                data = fh.read(TRACE_MAX_BYTES + 1)
        except OSError as exc:
            raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > TRACE_MAX_BYTES:
        raise UserError(f"{name}: larger than {TRACE_MAX_BYTES} bytes; refused")
    return InputFile(name, data)


@traces.command("convert")
@click.option("--format", "fmt", type=click.Choice(["markdown", "otlp", "intoto"]), required=True)
@click.option(
    "--trace",
    "trace_path",
    required=True,
    metavar="FILE|-",
    help="A Trace document (alloy.dev/v1 JSON); `-` reads standard input.",
)
@click.option(
    "--artifact",
    "artifact_path",
    metavar="FILE",
    help="The artifact the execution ran (its digest is verified). Needed by intoto; "
    "gives otlp the blocks' effects.",
)
@click.option(
    "--inputs-from-ledger",
    "ledger_path",
    metavar="FILE",
    help="The execution's ledger (JSON Lines): intoto then states its inputs.",
)
@output_options(with_format=False)
def traces_convert(
    fmt: str, trace_path: str, artifact_path: str | None, ledger_path: str | None
) -> None:
    """A Trace document as Markdown, OTLP/JSON or an in-toto statement, on standard output:
    exactly what Foundry writes beside the trace on the traces branch (markdown) and what
    `foundry traces export` prints (otlp, intoto). Nothing else is read or written."""
    from foundry.traces import convert_trace

    text = convert_trace(
        fmt,
        _input_file(trace_path, stdin=True),
        artifact=_input_file(artifact_path) if artifact_path is not None else None,
        ledger=_input_file(ledger_path) if ledger_path is not None else None,
        environ=os.environ,
    )
    # The bytes of the file (UTF-8 whatever the locale), with no newline added.
    click.echo(text.encode("utf-8"), nl=False)


def _register() -> None:
    """The GitOps commands live in their own modules (they reach `controllers`, lazily)."""
    from foundry.cli._action import action
    from foundry.cli._daemon import daemon
    from foundry.cli._gitops import checks, reconcile

    cli.add_command(action)
    cli.add_command(reconcile)
    cli.add_command(checks)
    cli.add_command(daemon)
    from foundry.cli._control import cancel, pause, resume
    from foundry.cli._status import status

    for command in (status, pause, resume, cancel):
        cli.add_command(command)


_register()
_help.apply(cli)  # every command's examples and exit codes, after every command is registered


def _crash_log(exc: BaseException) -> str:
    import datetime
    import tempfile
    import traceback

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    fd, path = tempfile.mkstemp(prefix=f"foundry-crash-{stamp}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(traceback.format_exception(exc)))
    return path


def main(argv: Sequence[str] | None = None) -> NoReturn:
    try:
        code = cli.main(args=argv, prog_name="foundry", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else 1)
    except (click.Abort, KeyboardInterrupt):
        click.echo("foundry: interrupted", err=True)
        sys.exit(130)
    except FoundryError as exc:
        click.echo(f"foundry: error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the boundary: every bug becomes exit 3 + crash log
        click.echo(
            f"foundry: internal error ({type(exc).__name__}: {exc}). This is a bug; "
            f"the crash log is at {_crash_log(exc)}",
            err=True,
        )
        sys.exit(3)
