"""The `alloy` commands: each parses its options and calls one library function."""

from __future__ import annotations

import datetime
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from alloy import explain as explain_mod
from alloy import scaffold, workspace
from alloy._version import API_VERSION
from alloy.cli._ask import ask, follow_up_goal, follow_up_statement
from alloy.cli._identity import who
from alloy.cli._output import output, output_options
from alloy.cli._root import Context, cli, pass_ctx
from alloy.diagnostics import Diagnostic, render
from alloy.errors import InvalidDocuments, StaleArtifacts, UserError
from alloy.load import PROJECT_PATH
from alloy.load._errors import suggest
from alloy.model import KINDS
from alloy.schema import schema_of, write_schemas

if TYPE_CHECKING:
    from alloy.status import Source

GITHUB_HELP = (
    "text: for people (rich on a terminal, plain when piped); json: one document with "
    "schemaVersion (docs/schemas/); github: workflow commands that annotate a pull request."
)


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")
    return slug or "project"


@cli.command()
@click.option("--name", help="Project name (default: the directory's name).")
@click.option("--owner", "owners", multiple=True, help="An owner (user or team:slug); repeatable.")
@click.option("--default-branch", default="main", show_default=True)
@output_options()
@pass_ctx
def init(ctx: Context, name: str | None, owners: tuple[str, ...], default_branch: str) -> None:
    """Create .alloy/alloy.yaml and the document directories."""
    out = output()
    root = ctx.cwd()
    project = name or _slug(root.name)
    out.detail(f"alloy: initializing {root} as project {project!r}")
    created = scaffold.init(root, name=project, owners=list(owners), default_branch=default_branch)
    if out.format == "json":
        out.json(
            {
                "root": str(root),
                "project": project,
                "defaultBranch": default_branch,
                "owners": list(owners),
                "projectFile": PROJECT_PATH,
                "created": created,
                "directories": list(scaffold.DIRECTORIES),
            }
        )
        return
    for path in created:
        click.echo(f"created {path}")
    if not out.quiet:
        click.echo("next: alloy new intent NAME")


@cli.group()
def new() -> None:
    """Create a new document."""


@new.command("intent")
@click.argument("name")
@click.option("--title", help="One line: what should be true.")
@click.option("--goal", help="What should be true, in a sentence or two.")
@click.option("--rationale", help="Why it matters.")
@click.option("--owner", "owners", multiple=True, help="An owner (user or team:slug); repeatable.")
@click.option(
    "--acceptance", "acceptance", multiple=True, help="An acceptance criterion; repeatable."
)
@click.option("--no-input", is_flag=True, help="Never ask; fail if --goal is missing.")
@output_options()
@pass_ctx
def new_intent(
    ctx: Context,
    name: str,
    title: str | None,
    goal: str | None,
    rationale: str | None,
    owners: tuple[str, ...],
    acceptance: tuple[str, ...],
    no_input: bool,
) -> None:
    """Write .alloy/intents/NAME.yaml (state: proposed), asking for what is not given.

    With --format json the questions are asked on stderr, so stdout holds only the document.
    """
    out = output()
    root = ctx.root()
    out.detail(f"alloy: a new intent in {root}")
    scaffold.check_name(name, "intent name")
    scaffold.check_new_intent(root, name)  # before asking anything
    scaffold.check_intent_fields(  # every value given is checked before anything is asked
        title=title, goal=goal, rationale=rationale, owners=owners, acceptance=acceptance
    )
    title = ask(
        title, "Title (one line: what should be true)", no_input, False, scaffold.check_title
    )
    asked_goal = goal is None and not no_input
    goal = ask(goal, "Goal", no_input, True, scaffold.text_check("goal"))
    if asked_goal and goal:
        goal = follow_up_goal(goal)
    rationale = ask(rationale, "Rationale (why)", no_input, False, scaffold.text_check("rationale"))
    owner_list = list(owners)
    if not owner_list and not no_input:
        answer = ask(
            None, "Owners (comma-separated users or team:slug)", False, False, scaffold.parse_owners
        )
        owner_list = scaffold.parse_owners(answer or "")
    criteria = list(acceptance)
    if not criteria and not no_input:
        while True:
            number = len(criteria) + 1
            answer = ask(
                None,
                f"Acceptance criterion {number} (empty to finish)",
                False,
                False,
                scaffold.text_check(f"acceptance criterion {number}"),
            )
            if not answer:
                break
            criteria.append(follow_up_statement(answer, number))
    try:
        path = scaffold.new_intent(
            root,
            name,
            title=title,
            goal=goal or "",
            rationale=rationale,
            owners=owner_list,
            acceptance=criteria,
        )
    except ValueError as exc:  # pydantic's ValidationError: an owner or text is malformed
        raise UserError(_first_error(exc)) from None
    if out.format == "json":
        out.json(
            {
                "root": str(root),
                "path": path,
                "name": name,
                "state": "proposed",
                "title": title,
                "goal": goal or "",
                "rationale": rationale,
                "owners": owner_list,
                "acceptance": [
                    {"id": f"AC-{i}", "statement": text} for i, text in enumerate(criteria, 1)
                ],
            }
        )
        return
    click.echo(f"created {path}")


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']} (got {first.get('input')!r})"
    return str(exc)


def _diagnostics_json(diagnostics: list[Diagnostic]) -> dict[str, object]:
    return json.loads(render(diagnostics, "json"))  # type: ignore[no-any-return]


def _report(diagnostics: list[Diagnostic], fmt: str, **extra: object) -> None:
    if fmt == "json":
        output().json({**_diagnostics_json(diagnostics), **extra})
    elif diagnostics and fmt == "text":
        output().text(render(diagnostics, fmt) + "\n")
    elif diagnostics:
        click.echo(render(diagnostics, fmt))


@cli.command()
@output_options("text", "json", "github", help_format=GITHUB_HELP)
@click.option("--no-cache", is_flag=True, help="Parse every document again.")
@pass_ctx
def check(ctx: Context, no_cache: bool) -> None:
    """Validate every document under .alloy/ and report every problem at once."""
    out = output()
    fmt = out.format
    started = time.perf_counter()
    root = ctx.root()
    out.detail(
        f"alloy: checking {root / workspace.ALLOY_DIR}" + (" (no cache)" if no_cache else "")
    )
    try:
        repo = workspace.check(root, use_cache=not no_cache)
    except InvalidDocuments as exc:
        _report(exc.diagnostics, fmt)
        raise click.exceptions.Exit(1) from None
    _report(repo.diagnostics, fmt)
    if fmt == "text":
        docs = len(repo.docs) + 1
        warnings = len(repo.diagnostics)
        out.note(f"ok: {docs} document(s) valid" + (f", {warnings} warning(s)" if warnings else ""))
    out.detail(f"alloy: checked in {(time.perf_counter() - started) * 1000:.0f} ms")


@cli.command("compile")
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Write nothing; exit 1 naming every stale, missing or extra artifact.",
)
@output_options("text", "json", "github", help_format=GITHUB_HELP)
@click.option("--no-cache", is_flag=True, help="Parse every document again.")
@pass_ctx
def compile_(ctx: Context, check_only: bool, no_cache: bool) -> None:
    """Compile accepted and active intents into .alloy/artifacts/."""
    out = output()
    fmt = out.format
    try:
        report = workspace.compile_repository(
            ctx.root(), check_only=check_only, use_cache=not no_cache
        )
    except InvalidDocuments as exc:
        _report(exc.diagnostics, fmt, written=[], removed=[], unchanged=0, stale=[])
        out.note("alloy: nothing written; fix the errors above")
        raise click.exceptions.Exit(1) from None
    except StaleArtifacts as exc:
        if fmt == "text":
            raise
        if fmt == "json":
            _report([], fmt, written=[], removed=[], unchanged=0, stale=exc.problems)
        else:  # one annotation per artifact, on the artifact file
            stale = []
            for problem in exc.problems:
                path, _, why = problem.partition(": ")
                stale.append(Diagnostic(path, 0, 0, f"{why}; run `alloy compile`"))
            _report(stale, fmt)
        raise click.exceptions.Exit(1) from None
    assert report.repository is not None
    if report.repository.diagnostics and fmt != "json":
        _report(report.repository.diagnostics, fmt)
    if fmt == "json":
        _report(
            report.repository.diagnostics,
            fmt,
            written=report.written,
            removed=report.removed,
            unchanged=report.unchanged,
            stale=[],
        )
        return
    for path in report.written:
        click.echo(f"wrote {path}")
    for path in report.removed:
        click.echo(f"removed {path}")
    verb = "up to date" if check_only else "unchanged"
    out.note(f"{report.unchanged} artifact(s) {verb}")


@cli.command()
@click.argument("name")
@output_options()
@pass_ctx
def explain(ctx: Context, name: str) -> None:
    """Say in plain words what intent NAME wants, why, who owns it, and what runs when (its
    blocks in the order they run)."""
    out = output()
    now = datetime.datetime.now(datetime.UTC)
    if out.format == "json":
        out.json(explain_mod.explain_named(ctx.root(), name, now=now, as_json=True))
        return
    click.echo(explain_mod.explain_named(ctx.root(), name, now=now), nl=False)


@cli.command()
@click.argument("name")
@click.option("--input", "inputs", multiple=True, metavar="K=V", help="An input value; repeatable.")
@click.option("--reason", required=True, help="Why this run is needed (reviewers read it).")
@click.option(
    "--requested-by",
    help="Who asks (default: `git config user.name` of the repository, else the OS user).",
)
@click.option("--name", "request_name", help="Name of the request document (default: generated).")
@output_options()
@pass_ctx
def request(
    ctx: Context,
    name: str,
    inputs: tuple[str, ...],
    reason: str,
    requested_by: str | None,
    request_name: str | None,
) -> None:
    """Write a Request to run intent NAME's artifact, pinned to its current digest."""
    out = output()
    root = ctx.root()
    out.detail(f"alloy: a request of {name} in {root}")
    path, digest = workspace.make_request(
        root,
        name,
        inputs=list(inputs),
        reason=reason,
        requested_by=requested_by or who(root, "--requested-by"),
        request_name=request_name,
    )
    if out.format == "json":
        import yaml

        # What was written, as it was written (the inputs converted to their declared type).
        written = yaml.safe_load((root / path).read_text(encoding="utf-8"))
        spec = written["spec"]
        out.json(
            {
                "root": str(root),
                "path": path,
                "name": written["metadata"]["name"],
                "intent": name,
                "digest": digest,
                "artifact": spec["artifact"],
                "inputs": spec["inputs"],
                "reason": spec["reason"],
                "requestedBy": spec["requestedBy"],
            }
        )
        return
    click.echo(f"created {path} (pinned to {name}@{digest})")


@cli.command()
@click.argument("kind", required=False)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write every kind's schema as KIND.schema.json into this directory.",
)
@output_options()
def schema(kind: str | None, out: Path | None) -> None:
    """Without KIND, list the kinds; with KIND, print its JSON Schema; with --out, write every
    kind's schema into a directory."""
    if out is not None:
        for path in write_schemas(out):
            click.echo(f"wrote {path}")
        return
    if kind is None:
        printer = output()
        if printer.format == "json":
            printer.json({"apiVersion": API_VERSION, "kinds": list(KINDS)})
            return
        printer.table(("KIND", "SCHEMA"), [(k, f"alloy schema {k.lower()}") for k in KINDS])
        printer.note(f"{len(KINDS)} kinds of {API_VERSION}; `alloy schema KIND` prints one")
        return
    match = {k.lower(): k for k in KINDS}.get(kind.lower())
    if match is None:
        raise click.UsageError(f"unknown kind {kind!r}{suggest(kind, KINDS)}")
    click.echo(json.dumps(schema_of(match), indent=2, sort_keys=True))


@cli.command()
@click.argument("execution")
@click.option(
    "--gate",
    "gate",
    required=True,
    metavar="BLOCK[/N]",
    help="The block, and the index of its gate (0, the first, unless /N is given).",
)
@click.option(
    "--resolve",
    is_flag=True,
    help="Resolve the indeterminate block BLOCK instead of a gate: approve counts it as done, "
    "--reject fails the execution (written as gate index -1).",
)
@click.option("--reject", is_flag=True, help="Record a rejection (default: an approval).")
@click.option("--comment", required=True, help="Why you decide this (reviewers read it).")
@click.option(
    "--approver",
    help="Who decides (default: `git config user.name` of the repository, else the OS user).",
)
@click.option("--name", "approval_name", help="Name of the Approval document (default: generated).")
@output_options()
@pass_ctx
def approve(
    ctx: Context,
    execution: str,
    gate: str,
    resolve: bool,
    reject: bool,
    comment: str,
    approver: str | None,
    approval_name: str | None,
) -> None:
    """Write an Approval of EXECUTION's gate into .alloy/approvals/ (not committed).

    It counts once it is committed and merged to the default branch.
    """
    from alloy import approve as approve_mod

    out = output()
    try:
        block, index = approve_mod.parse_gate(gate)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--gate") from None
    if resolve:
        if "/" in gate:
            raise click.UsageError(
                "--resolve names a block, not one of its gates; write --gate BLOCK --resolve"
            )
        index = approve_mod.RESOLVE
    root = ctx.root()
    out.detail(f"alloy: an approval in {root}")
    if approver is None:
        approver = who(root, "--approver")
    try:
        _, models = workspace.intent_models(root)
        intents = {name: model for name, (_, model) in models.items()}
    except UserError:  # the notes are a courtesy; a broken .alloy/ does not block a decision
        intents = None
    written = approve_mod.write_approval(
        root,
        execution=execution,
        block=block,
        index=index,
        decision="reject" if reject else "approve",
        approver=approver,
        comment=comment,
        name=approval_name,
        intents=intents,
    )
    if out.format == "json":
        out.json(
            {
                "root": str(root),
                "path": written.path,
                "name": Path(written.path).stem,
                "created": written.created,
                "execution": execution,
                "gate": {"block": block, "index": index},
                "resolve": index == approve_mod.RESOLVE,
                "decision": "reject" if reject else "approve",
                "approver": approver.strip(),
                "defaultBranch": written.default_branch,
                "notes": written.notes,
            }
        )
        return
    for note in written.notes:
        out.note(f"alloy: note: {note}")
    if written.created:
        click.echo(f"created {written.path}")
    else:
        click.echo(f"unchanged {written.path} (already written with this content)")
    out.note(
        f"next: commit it and merge it to {written.default_branch}; approval gates count only "
        f"Approval documents merged to the default branch"
    )


def _fetch_traces(root: Path, branch: str) -> str | None:
    """Fetch the traces branch from `origin` (`alloy status --fetch`); what went wrong, if
    anything (the clone's copy is read then)."""
    from controllers import git as gitctl

    try:
        gitctl.fetch_branch(root, "origin", branch)
    except (gitctl.RevisionError, OSError) as exc:
        return f"the traces branch could not be fetched ({exc}); the clone's copy is read"
    return None


def _stale(root: Path, ref: str, branch: str) -> str:
    """The traces were read from the clone's remote-tracking copy: how old it is, and how to
    read the newest."""
    import time

    from controllers import git as gitctl

    at = gitctl.fetched_at(root, ref)
    if at is None:
        age = "fetched at an unknown time"
    else:
        minutes = max(0, int((time.time() - at) // 60))
        age = f"fetched {minutes} min ago" if minutes < 120 else f"fetched {minutes // 60} h ago"
    return (
        f"traces read from origin/{branch}, {age}; the remote may hold newer ones: "
        f"`alloy status --fetch` (or `git fetch origin {branch}`) reads the newest"
    )


def read_traces(root: Path, branch: str, ref: str | None = None) -> tuple[Source, dict[str, bytes]]:
    """The trace files (`traces/...` on the traces branch, `{path: bytes}`) and where they were
    read (`alloy.status.Source`): revision `ref` when given (exit 1 if it does not exist), else
    `refs/heads/<branch>`, else `refs/remotes/origin/<branch>`; no files when there is neither.
    `alloy status` and `alloy critique` read traces through this one function."""
    from alloy import status as status_mod
    from controllers import git as gitctl

    if ref is not None:
        found = gitctl.resolve_commit(root, [ref])
        if found is None:
            raise UserError(
                f"--ref {ref}: no such commit in this repository (is it fetched?); "
                "name a branch, tag or commit id"
            )
        source = status_mod.Source(branch, found[0], found[1])
    else:
        candidates = [f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"]
        found = gitctl.resolve_commit(root, candidates)
        if found is None:
            why = (
                f"branch {branch} not found"
                if gitctl.inside_repository(root)
                else "not a git repository"
            )
            source = status_mod.Source(branch, missing=why)
        else:
            source = status_mod.Source(branch, found[0], found[1])
    files: dict[str, bytes] = {}
    if source.ref is not None:
        files = gitctl.read_tree_files(root, source.ref, status_mod.TRACES_DIR + "/")
    return source, files


@cli.command()
@output_options(json_alias=True)
@click.option(
    "--traces-branch",
    metavar="B",
    help="Branch the traces are read from (default: spec.traces.branch of .alloy/alloy.yaml).",
)
@click.option(
    "--ref",
    metavar="REV",
    help="Read the traces from this revision instead of the traces branch.",
)
@click.option(
    "--all", "show_all", is_flag=True, help="List every execution, not only the latest five."
)
@click.option(
    "--fetch",
    is_flag=True,
    help="Fetch the traces branch from `origin` first (else the clone's copy is read, and its "
    "age is said).",
)
@pass_ctx
def status(
    ctx: Context, traces_branch: str | None, ref: str | None, show_all: bool, fetch: bool
) -> None:
    """Each intent's state, artifact, latest executions and evidence, from the traces branch."""
    from alloy import status as status_mod

    root = ctx.root()
    repo, models = workspace.intent_models(root)
    branch = traces_branch or repo.project.spec.traces.branch
    fetched = _fetch_traces(root, branch) if fetch and ref is None else None
    source, files = read_traces(root, branch, ref)
    report = status_mod.build_status(
        status_mod.intent_inputs(models, workspace.artifact_files(root, models)),
        files,
        source,
        limit=None if show_all else status_mod.DEFAULT_LIMIT,
    )
    if fetched:
        report.warnings.append(fetched)
    elif not fetch and source.ref == f"refs/remotes/origin/{branch}":
        report.warnings.append(_stale(root, source.ref, branch))
    problems = sum(1 for d in repo.diagnostics if d.severity == "error")
    if problems:
        report.warnings.insert(
            0,
            f"{problems} error(s) in .alloy/; intents that do not load are left out (run `alloy check`)",
        )
    out = output()
    if out.format == "json":
        out.json(report.to_json())
    else:
        out.text(status_mod.render_text(report))
