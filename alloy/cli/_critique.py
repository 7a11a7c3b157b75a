"""`alloy critique`: the intent assistant's findings, and the optional external assistant.

The findings come from `alloy.critique` (data in, data out). This module does what the core may
not: it reads the traces through git (the same reading as `alloy status`), finds the configured
assistant command, and runs it as a process with a deadline. The assistant is taken from the
user's config, else from the project file **of the default branch** (never of the work tree, so
a pull request's checkout cannot name its own command) and runs in an export of that branch's
tree.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import click

from alloy import critique as critique_mod
from alloy import workspace
from alloy.cli._commands import read_traces
from alloy.cli._output import output, output_options
from alloy.cli._root import Context, cli, pass_ctx
from alloy.errors import InvalidDocuments, NotFound
from alloy.load import PROJECT_PATH, Entry, load_project
from alloy.load._errors import suggest
from alloy.model._common import duration_seconds
from alloy.model.project import AssistantSettings, Project


def user_config_path() -> Path:
    """`$XDG_CONFIG_HOME/alloy/config.yaml` (`~/.config/alloy/config.yaml` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    home = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return home / "alloy" / "config.yaml"


@dataclass
class Assistant:
    """The assistant command to run and where it came from."""

    settings: AssistantSettings
    #: Said in notes and in the JSON output: which file named the command.
    origin: str
    #: The directory it runs in; None: an export of `export`, made when first needed.
    cwd: Path | None = None
    #: (top of the git work tree, commit, path of the .alloy/ parent inside it)
    export: tuple[Path, str, str] | None = None
    _made: Path | None = field(default=None, repr=False)

    def directory(self) -> Path:
        if self.cwd is not None:
            return self.cwd
        from controllers import git as gitctl

        assert self.export is not None
        top, commit, rel = self.export
        made = Path(tempfile.mkdtemp(prefix="alloy-assistant-"))
        self._made = made
        gitctl.export_tree(top, commit, made)
        self.cwd = made / rel if rel else made
        return self.cwd

    def close(self) -> None:
        if self._made is not None:
            shutil.rmtree(self._made, ignore_errors=True)
            self._made = None


def find_assistant(root: Path, worktree: Project, note: Callable[[str], None]) -> Assistant | None:
    """The assistant of the user config, else `spec.assistant` of `.alloy/alloy.yaml` on the
    default branch: `refs/remotes/origin/HEAD` when the clone knows it; in a repository with no
    `origin` remote (no pull request can reach it), `refs/heads/<spec.defaultBranch>`."""
    config = user_config_path()
    try:
        data = config.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as exc:
        note(f"{config}: cannot be read ({exc.strerror}); its assistant is not run")
        data = None
    if data is not None:
        mine = critique_mod.parse_user_config(data, str(config))
        if mine is not None:
            return Assistant(mine, f"assistant.command of {config}", cwd=root)
    from controllers import git as gitctl

    wanted = worktree.spec.assistant
    top = gitctl.toplevel(root)
    if top is None:
        if wanted is not None:
            note(
                "spec.assistant is not run: this is not a git repository, so there is no "
                f"default branch to take it from (name the command in {config} instead)"
            )
        return None
    found = gitctl.default_branch_commit(top)
    if found is None and gitctl.config_value(top, "remote.origin.url") is None:
        branch = worktree.spec.default_branch
        local = gitctl.resolve_commit(top, [f"refs/heads/{branch}"])
        found = (branch, local[1]) if local is not None else None
    if found is None:
        if wanted is not None:
            note(
                "spec.assistant is not run: the default branch is unknown (no "
                "refs/remotes/origin/HEAD; `git remote set-head origin --auto` sets it), and the "
                f"work tree's own project file is never trusted (name the command in {config} "
                "instead)"
            )
        return None
    branch, commit = found
    rel = os.path.relpath(root.resolve(), top.resolve()).replace(os.sep, "/")
    rel = "" if rel == "." else rel
    path = f"{rel}/{PROJECT_PATH}" if rel else PROJECT_PATH
    data = gitctl.read_tree_files(top, commit, path).get(path)
    settings: AssistantSettings | None = None
    if data is not None:
        project, result = load_project({PROJECT_PATH: Entry(data=data)})
        if result is not None and not result.ok:
            note(f"{PROJECT_PATH} on {branch} is not valid; its spec.assistant is not run")
            return None
        settings = project.spec.assistant
    if wanted != settings:
        note(
            f"the work tree's spec.assistant differs from the one on {branch}; the default "
            "branch's is used (a change to it counts once it is merged)"
        )
    if settings is None:
        return None
    return Assistant(
        settings,
        f"spec.assistant of {PROJECT_PATH} on {branch} ({commit[:12]})",
        export=(top, commit, rel),
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_assistant(
    argv: list[str], data: bytes, *, timeout: float, cwd: Path
) -> tuple[bytes | None, str | None]:
    """Run `argv` in its own process group with `data` on stdin: its stdout, or why there is
    none (could not start, killed at the deadline, wrote too much, exited non-zero)."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        return None, f"it cannot be started ({argv[0]!r}: {exc.strerror or exc})"
    cap = critique_mod.MAX_OUTPUT_BYTES
    out, err = bytearray(), bytearray()
    too_much = threading.Event()

    def feed() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(OSError):  # it need not read stdin (a broken pipe)
            proc.stdin.write(data)
        with contextlib.suppress(OSError):
            proc.stdin.close()

    def drain(stream: IO[bytes], buf: bytearray, limit: int, over: bool) -> None:
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            room = limit + 1 - len(buf)
            if room > 0:
                buf.extend(chunk[:room])
            if over and len(buf) > limit and not too_much.is_set():
                too_much.set()
                _kill_group(proc)

    assert proc.stdout is not None
    assert proc.stderr is not None
    threads = [
        threading.Thread(target=feed, daemon=True),
        threading.Thread(target=drain, args=(proc.stdout, out, cap, True), daemon=True),
        threading.Thread(target=drain, args=(proc.stderr, err, 4096, False), daemon=True),
    ]
    for thread in threads:
        thread.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        proc.wait()
    _kill_group(proc)  # whatever it left behind in its group
    for thread in threads:
        thread.join(timeout=5)
    if timed_out:
        return None, f"it did not finish within {timeout:g}s and was killed"
    if too_much.is_set():
        return None, f"it wrote more than {cap} bytes on stdout and was killed"
    if proc.returncode != 0:
        code = proc.returncode
        said = " ".join(err.decode("utf-8", "replace").split())[-300:]
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return None, f"it {how}" + (f": {said}" if said else "")
    return bytes(out), None


def _stale_after(value: str) -> datetime.timedelta:
    try:
        return datetime.timedelta(seconds=duration_seconds(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--stale-after") from None


@cli.command()
@click.argument("name", required=False)
@output_options()
@click.option(
    "--stale-after",
    default="30d",
    show_default=True,
    metavar="DURATION",
    help="Evidence last produced longer ago than this is stale (30s, 20m, 6h, 30d).",
)
@click.option(
    "--traces-branch",
    metavar="B",
    help="Branch the traces are read from (default: spec.traces.branch of .alloy/alloy.yaml).",
)
@click.option(
    "--no-assistant", is_flag=True, help="Do not run the external assistant, even if configured."
)
@click.option(
    "--schema",
    "print_schema",
    is_flag=True,
    help="Print the JSON Schema an external assistant's answer must follow, and exit.",
)
@pass_ctx
def critique(
    ctx: Context,
    name: str | None,
    stale_after: str,
    traces_branch: str | None,
    no_assistant: bool,
    print_schema: bool,
) -> None:
    """Findings about intent NAME itself (every intent without NAME): what to make measurable,
    link, own or retire, each with a suggested rewrite or question (docs/critique.md).

    It advises: findings exit 0.
    """
    printer = output()
    fmt = printer.format
    if print_schema:
        click.echo(json.dumps(critique_mod.suggestions_schema(), indent=2, sort_keys=True))
        return
    after = _stale_after(stale_after)
    root = ctx.root()
    repo, snapshot, cache = workspace.load(root)
    cache.save()
    files = critique_mod.intent_documents(repo, snapshot.entries)
    notes: list[str] = []
    if name is not None and name not in files.intents:
        if name in files.unreadable:
            path = files.unreadable[name]
            raise InvalidDocuments(repo.docs[path].diagnostics if path in repo.docs else [])
        known = sorted([*files.intents, *files.unreadable])
        listed = f"the intents are: {', '.join(known)}" if known else "there are no intents"
        raise NotFound(f"no intent named {name!r} ({listed}){suggest(name, known)}")
    if name is None and files.unreadable:
        notes.append(
            f"{len(files.unreadable)} intent(s) are not valid Intents and are left out: "
            f"{', '.join(sorted(files.unreadable))} (run `alloy check`)"
        )
    documents = files.intents
    branch = traces_branch or repo.project.spec.traces.branch
    source, trace_files = read_traces(root, branch)
    if source.ref is None:
        notes.append(
            f"no traces ({source.missing or f'branch {branch} not found'}): evidence freshness "
            "is not judged"
        )
    report = critique_mod.critique(
        documents,
        names=[name] if name is not None else None,
        project_owners=repo.project.spec.owners,
        trace_files=trace_files if source.ref is not None else None,
        source=source,
        now=datetime.datetime.now(datetime.UTC),
        stale_after=after,
    )
    assistant = None if no_assistant else find_assistant(root, repo.project, notes.append)
    if assistant is not None:
        try:
            cwd = assistant.directory()
        except (OSError, ValueError) as exc:  # the export of the default branch failed
            notes.append(f"the assistant from {assistant.origin} is not run: {exc}")
            assistant.close()
            assistant = None
    if assistant is not None:
        try:
            timeout = float(duration_seconds(assistant.settings.timeout))
            extra: list[critique_mod.Finding] = []
            for intent_name in report.intents:
                doc = documents[intent_name]
                stdout, problem = run_assistant(
                    list(assistant.settings.command),
                    critique_mod.assistant_input(doc, report.findings),
                    timeout=timeout,
                    cwd=cwd,
                )
                if stdout is None:
                    extra.append(critique_mod.assistant_error(doc, problem or "no output"))
                else:
                    extra.extend(critique_mod.read_suggestions(doc, stdout))
            report.add(extra)
        finally:
            assistant.close()
    if fmt == "json":
        doc_json = report.to_json()
        doc_json["assistant"] = (
            None
            if assistant is None
            else {"command": list(assistant.settings.command), "from": assistant.origin}
        )
        doc_json["notes"] = notes
        printer.json(doc_json)
        return
    for line in notes:
        printer.note(f"alloy: note: {line}")
    if assistant is not None:
        printer.note(f"alloy: note: asked the assistant from {assistant.origin}")
    printer.text(report.render_text())
    printer.note(report.summary())
