"""`alloy review`: two revisions of `.alloy/`, read from git as data, reviewed (DESIGN section 7).

Nothing of either revision is checked out or run: `git ls-tree` lists each tree, one
`git cat-file --batch` reads the blobs, and `alloy.review.review_snapshots` loads them as the
loader loads a work tree. The head may also be the index (`--staged`), for a pre-commit hook.
"""

from __future__ import annotations

import contextlib
import gc
import json
import posixpath
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from alloy import workspace
from alloy.cli._output import Output, output, output_options
from alloy.cli._root import Context, cli, pass_ctx
from alloy.errors import NotFound, UserError
from alloy.load import PROJECT_PATH, DocResult, Entry, anchor, git_sources, load_project
from alloy.load import _files as file_rules

if TYPE_CHECKING:
    from alloy.review import Review
    from controllers.git import TreeFile

FORMATS = ("markdown", "text", "json", "github", "check-run")
TRACES_DIR = "traces"


def _snapshot(
    listing: list[TreeFile], blobs: dict[str, bytes], too_large: dict[str, int]
) -> dict[str, Entry]:
    """One listed tree as a loader snapshot, by the loader's rules for files and symbolic links
    (`alloy.load.git_sources`, the same rules and words as the work tree's): a link to a file
    inside `.alloy/` reads that file; every refusal is said as `alloy check` says it."""
    files = {f.path: f for f in listing}
    links = {
        f.path: blobs[f.sha].decode("utf-8", "surrogateescape")
        for f in listing
        if f.mode == "120000" and f.sha in blobs
    }
    sources = git_sources({f.path: f.mode for f in listing}, links)
    snap: dict[str, Entry] = {}
    for path, source in sources.items():
        if source.path is None:
            snap[path] = Entry(refusal=source.refusal)
            continue
        sha = files[source.path].sha
        if sha in blobs:
            linked = source.path if source.path != path else None
            snap[path] = Entry(data=blobs[sha], source=linked)
        elif sha in too_large:
            snap[path] = Entry(refusal=file_rules.too_large(too_large[sha]))
        else:
            snap[path] = Entry(refusal=file_rules.not_in_repository())
    return snap


def snapshots(
    root: Path, base: str, head: str | None, cap: int = workspace.READ_CAP
) -> tuple[dict[str, Entry], dict[str, Entry]]:
    """`.alloy/` of commit `base` and of commit `head` (None: the index) as loader snapshots:
    two listings, then every blob of both read at once (a blob both trees share is read once)."""
    from controllers import git as gitctl

    listings = [
        gitctl.list_tree(root, base, workspace.ALLOY_DIR),
        gitctl.list_index(root, workspace.ALLOY_DIR)
        if head is None
        else gitctl.list_tree(root, head, workspace.ALLOY_DIR),
    ]
    wanted = {f.sha for files in listings for f in files if f.regular or f.mode == "120000"}
    too_large: dict[str, int] = {}
    blobs = gitctl.read_blobs(root, wanted, cap, too_large, processes=2)
    return _snapshot(listings[0], blobs, too_large), _snapshot(listings[1], blobs, too_large)


def _anchored(review: Review, base: dict[str, Entry], head: dict[str, Entry]) -> None:
    """Findings about a document read through a symbolic link placed at the file that holds
    its text (their lines are that file's), as `alloy check` places its diagnostics."""
    moved = []
    for finding in review.findings:
        where, note = anchor(finding.path, head if finding.path in head else base)
        moved.append(
            replace(finding, path=where, message=finding.message + note) if note else finding
        )
    review.findings[:] = moved
    review.sort()


class SharedResults:
    """The parse cache in front of both loads: a result is deserialized once and the same
    object serves both trees (a document the base and the head share is most of them); what is
    loaded afresh, model and artifact included, is kept for the other tree too. Loaded
    documents are only read by the review, never changed."""

    def __init__(self, inner: workspace.FileCache) -> None:
        self.inner = inner
        self.results: dict[str, DocResult] = {}

    def get(self, key: str) -> DocResult | None:
        result = self.results.get(key)
        if result is None:
            result = self.inner.get(key)
            if result is not None:
                self.results[key] = result
        return result

    def put(self, key: str, result: DocResult) -> None:
        self.inner.put(key, result)
        self.results[key] = result


def recorded_executions(root: Path, branch: str) -> frozenset[str]:
    """Ids of the executions with a trace on the traces branch (`traces/<intent>/<id>.json`):
    the local branch, else the remote-tracking one; none when neither exists. Only names are
    listed; no trace is read."""
    from controllers import git as gitctl

    found = gitctl.resolve_commits(root, [f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"])
    commit = next((sha for sha in found if sha is not None), None)
    if commit is None:
        return frozenset()
    return frozenset(
        posixpath.basename(n)[: -len(".json")]
        for n in gitctl.tree_names(root, commit, TRACES_DIR + "/")
        if n.endswith(".json") and n.count("/") == 2
    )


def _commits(root: Path, base: str, head: str | None) -> tuple[str, str | None]:
    """The commits `--base` and `--head` name (one git process); exit 1 naming a bad one."""
    from controllers import git as gitctl

    revs = [base] if head is None else [base, head]
    found = gitctl.resolve_commits(root, revs)
    if head is None and base == "HEAD" and found[0] is None:
        # The first commit of a repository (a pre-commit hook's --base HEAD --staged): HEAD is
        # not born yet, so everything staged is new, as against the empty tree.
        found[0] = _empty_tree(root)
    for option, rev, sha in zip(("--base", "--head"), revs, found, strict=False):
        if sha is None:
            raise UserError(
                f"{option} {rev}: no such revision in this repository (is it fetched?); name a "
                "branch, tag or commit"
            )
    return found[0] or "", found[1] if head is not None else None


def _empty_tree(root: Path) -> str | None:
    """The id of the empty tree in this repository's hash (None outside a repository)."""
    done = subprocess.run(
        ["git", "hash-object", "-t", "tree", "--stdin"],
        cwd=root,
        input=b"",
        capture_output=True,
        check=False,
    )
    return done.stdout.decode("ascii").strip() or None if done.returncode == 0 else None


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Loading two trees builds some hundred thousand long-lived objects and no cycles: the
    cycle collector would only rescan them (as `alloy check` and `alloy compile`, see
    docs/performance.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _review(
    root: Path,
    base_sha: str,
    head_sha: str | None,
    base_label: str,
    head_label: str,
    traces_branch: str | None,
    *,
    use_cache: bool,
) -> tuple[Review, bool, workspace.FileCache]:
    from alloy.review import review_snapshots
    from controllers import git as gitctl

    # git inflates the blobs (on the other core) while this thread reads the parse cache and
    # asks git which paths the change touches. The thread is done before anything forks.
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(snapshots, root, base_sha, head_sha)
        cache = workspace.FileCache(workspace.default_cache_path(root) if use_cache else None)
        changed = gitctl.changed_paths(root, base_sha, head_sha)
        base_snap, head_snap = reading.result()
    base_project = base_snap.get(PROJECT_PATH)
    head_project = head_snap.get(PROJECT_PATH)
    if traces_branch is None:
        project, _ = load_project(base_snap)
        traces_branch = project.spec.traces.branch
    # The parse cache holds results under one project file: it serves both trees when they
    # share it (nearly always); a change of the project file loads both afresh.
    base_data = base_project.data if base_project else None
    head_data = head_project.data if head_project else None
    same_project = base_data == head_data
    cache.bind(workspace.cache_context(head_data))
    result = review_snapshots(
        base_snap,
        head_snap,
        base_label=base_label,
        head_label=head_label,
        recorded=recorded_executions(root, traces_branch),
        changed_paths=changed,
        cache=SharedResults(cache) if same_project else None,
    )
    _anchored(result, base_snap, head_snap)
    # What a broken or hostile head produced is never kept in the parse cache (as `alloy check`).
    broken = any(f.kind in ("invalid-document", "reference-broken") for f in result.findings)
    return result, same_project and not broken, cache


@cli.command()
@click.option("--base", required=True, metavar="REV", help="The revision merged into (the target).")
@click.option(
    "--head",
    metavar="REV",
    help="The revision reviewed (default: HEAD). A branch, tag or commit; nothing of it is run.",
)
@click.option(
    "--staged",
    is_flag=True,
    help="Review the index (what `git commit` would commit) instead of --head: for a "
    "pre-commit hook.",
)
@output_options(
    *FORMATS,
    default="markdown",
    help_format="markdown (check run, comment; rendered when it goes to a terminal and --format "
    "is not given), text (rendered on a terminal, plain when piped), json (every detail), github "
    "(workflow annotations; ::error only for blocking findings) or check-run (the body of "
    "GitHub's check-run API).",
)
@click.option(
    "--traces-branch",
    metavar="B",
    help="Branch whose traces say which executions already ran (default: spec.traces.branch of "
    "the base's .alloy/alloy.yaml).",
)
@click.option("--no-cache", is_flag=True, help="Parse every document again.")
@pass_ctx
def review(
    ctx: Context,
    base: str,
    head: str | None,
    staged: bool,
    traces_branch: str | None,
    no_cache: bool,
) -> None:
    """Review the intent changes of --head (or the staged index) against --base."""
    from alloy.review._render import check_run, github_annotations, markdown
    from controllers import git as gitctl

    if staged and head is not None:
        raise click.UsageError("--staged reviews the index; it cannot be given with --head")
    where = ctx.cwd()
    if not where.is_dir():
        raise NotFound(f"-C {where}: no such directory")
    root = gitctl.toplevel(where)
    if root is None:
        raise UserError(f"{where} is not inside a git repository; `alloy review` reads revisions")
    base_sha, head_sha = _commits(root, base, None if staged else head or "HEAD")
    with _gc_paused():
        result, keep_cache, cache = _review(
            root,
            base_sha,
            head_sha,
            base,
            "staged" if staged else head or "HEAD",
            traces_branch,
            use_cache=not no_cache,
        )
    if keep_cache:
        cache.save()
    printer = output()
    fmt = printer.format
    if fmt == "markdown" and format_given_or_piped(printer):
        click.echo(markdown(result), nl=False)
    elif fmt in ("markdown", "text"):
        printer.fmt = "text"
        printer.markdown(markdown(result))
    elif fmt == "json":
        printer.json(result.to_json())
    elif fmt == "github":
        click.echo(github_annotations(result), nl=False)
    else:
        click.echo(json.dumps(check_run(result, head_sha=head_sha), indent=2))
    if result.blocking:
        raise click.exceptions.Exit(1)


def format_given_or_piped(out: Output) -> bool:
    """For a command whose default format is for a machine (Markdown): whether to keep it, or
    (on a terminal, --format not given) to show text instead."""
    source = click.get_current_context().get_parameter_source("format")
    given = source is not None and source != click.core.ParameterSource.DEFAULT
    isatty = getattr(sys.stdout, "isatty", None)
    return given or out.json_alias or not (isatty is not None and isatty())
