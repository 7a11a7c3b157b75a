"""`alloy demo`: an example repository, checked, compiled and explained (the embedded default)."""

from __future__ import annotations

import datetime
from pathlib import Path

import click

from alloy import explain as explain_mod
from alloy import workspace
from alloy.cli._root import cli
from alloy.errors import UserError

_PROJECT = """\
apiVersion: alloy.dev/v1
kind: Project
metadata:
  name: demo
spec:
  defaultBranch: main
  owners: [alice]
  lanes:
    reports: {limit: 1, queue: latest}
"""

_REPORT = """\
apiVersion: alloy.dev/v1
kind: Intent
metadata:
  name: weekly-report
  title: Every week the team sees what changed
  owners: [alice, team:platform]
spec:
  state: active
  goal: A short report of the week's commits is written every Monday morning.
  rationale: Nobody reads the git log; a summary keeps everyone on the same page.
  acceptance:
    - id: AC-1
      statement: The report lists the commits of the last seven days.
      evidence: {block: report, output: out/report.txt}
  automation:
    on:
      apply: true
      schedule: {cron: "0 7 * * 1", timezone: Europe/Berlin, catchUp: 1d}
      request: true
    inputs:
      days: {type: integer, default: 7}
    lane: {name: reports}
    blocks:
      - id: report
        run: [sh, -c, 'mkdir -p out && git log --since="$ALLOY_INPUT_DAYS days ago" --oneline > out/report.txt']
        timeout: 5m
        effects: none
        outputs: [out/report.txt]
      - id: announce
        needs: [report]
        run: [sh, -c, 'echo "report ready: $(wc -l < out/report.txt) commits"']
        effects: idempotent
"""

_PROPOSED = """\
apiVersion: alloy.dev/v1
kind: Intent
metadata:
  name: docs-are-linked
  title: Every public module is documented
  owners: [alice]
spec:
  state: proposed
  goal: Each public module has a page in docs/ that a newcomer can find from the README.
  rationale: Undocumented modules are rewritten instead of reused.
  acceptance:
    - id: AC-1
      statement: A link checker finds no module without a page.
  relations:
    dependsOn: [weekly-report]
"""


def _is_the_demo(root: Path, files: dict[str, str]) -> bool:
    """`root` holds this demo, as `alloy demo` wrote it: every file with its text, in a git
    repository whose work tree has no other change (a changed demo is not reused)."""
    from controllers import git as gitops

    if not root.is_dir() or not gitops.is_repository(root):
        return False
    for rel, text in files.items():
        path = root / rel
        if path.is_symlink() or not path.is_file():
            return False
        if path.read_text(encoding="utf-8", errors="replace") != text:
            return False
    return (root / ".alloy" / "artifacts" / "weekly-report.json").is_file()


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default="alloy-demo")
def demo(directory: Path) -> None:
    """Create an example repository in DIRECTORY, then check, compile and explain its intent."""
    from controllers import git as gitops

    root = directory.resolve()
    files = {
        ".alloy/alloy.yaml": _PROJECT,
        ".alloy/intents/weekly-report.yaml": _REPORT,
        ".alloy/intents/docs-are-linked.yaml": _PROPOSED,
        "README.md": "# Demo repository for Alloy\n",
        ".gitignore": "out/\n",
    }
    again = _is_the_demo(root, files)
    if root.exists() and any(root.iterdir()) and not again:
        raise UserError(f"{directory} is not empty; choose a new or empty directory")
    if again:
        # Run twice, the demo is the same demo: what is there (and what reconcile did with it)
        # is left as it is, and the steps that only read run again.
        click.echo(f"== {directory} is the demo repository already: left as it is")
    else:
        if not gitops.is_repository(root):
            gitops.init_repository(root)
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        gitops.commit_all(root, "Add intent: weekly report")
        click.echo(f"== created a git repository with two intents in {directory}")
    click.echo("\n$ alloy check")
    repo = workspace.check(root)
    click.echo(f"ok: {len(repo.docs) + 1} document(s) valid")
    if not again:
        click.echo("\n$ alloy compile")
        report = workspace.compile_repository(root)
        for path in report.written:
            click.echo(f"wrote {path}")
        sha = gitops.commit_all(root, "Compile artifacts")
        click.echo(f"(committed as {sha[:12]})")
    click.echo("\n$ alloy explain weekly-report")
    text = explain_mod.explain_named(root, "weekly-report", now=datetime.datetime.now(datetime.UTC))
    click.echo(text, nl=False)
    click.echo("\n$ alloy compile --check")
    workspace.compile_repository(root, check_only=True)
    click.echo("artifacts are up to date with their intents")
    click.echo(f"\nNext: foundry run {directory} --artifact weekly-report")
