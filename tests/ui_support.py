"""A realistic repository for the tests of the web interface (`alloy ui`): every state it shows,
made the way it happens for real. Intents are merged to a bare remote and run by real
`foundry reconcile` passes (tests/reconcile_support.py's World); nothing is written by hand
into traces or claims.

After `make_ui_world` the remote holds, on `main` and `alloy/traces`:

* `old-docs` — deprecated; it ran once while it was active (a succeeded execution, its artifact
  gone since) and is superseded by `docs-build`.
* `docs-build` — active, owners alice and bob, supersedes `old-docs`; blocks `build` (writes
  `site/index.html`) then `check`; AC-1 has evidence (`build` / `site/index.html`), AC-2 has
  none. Its apply execution succeeded: AC-1's evidence is produced and fresh.
* `flaky` — active; block `test` prints a line on stdout and on stderr and exits 1: its apply
  execution failed, and the evidence of its AC-1 is missing.
* `deploy` — active, owners alice and carol; block `plan` (effects none) runs, then block `ship`
  (effects irreversible) waits on an approval gate `from: [bob, carol]`, quorum 1: its apply
  execution is waiting (the claim held, the trace `waiting`). Approve it with
  `ui.approve(ui.executions["deploy"], "bob", gate="ship")` and `ui.merge(..., compile_=False)`.
* `planned` — proposed (no artifact, no execution), dependsOn `docs-build`, automation started
  only by a request.

And the branch `propose-x` on the remote (not merged; the engineer's clone is back on `main`):
it moves `planned` to accepted and adds the intent `release-notes` (accepted, on apply),
compiled, so that a review has intent changes, new artifacts, lifecycle findings that need
approvals, and an execution that merging would start.

The engineer's clone (`ui.work.path`) has fetched everything: `alloy status` there reads the
traces from `origin/alloy/traces`. Every block appends a line to its intent's marker file
(`ui.mark(name)`) so a test can count what really ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import GitRepo, git
from tests.reconcile_support import World, make_world

#: The branch on the remote that proposes a change to `.alloy/`.
PROPOSAL = "propose-x"


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML flow string


def _block(
    block: str,
    mark: Path,
    script: str,
    *,
    effects: str = "none",
    needs: str = "",
    outputs: str = "",
    gates: str = "",
) -> str:
    """One block: appends `<execution> <block>` to `mark`, then runs `script` (shell)."""
    body = f'echo "$ALLOY_EXECUTION {block}" >> "$MARK"\n{script}'
    return (
        f"      - id: {block}\n"
        f"{needs}"
        f"        run: [sh, -c, {_q(body)}]\n"
        f"        env: {{MARK: {_q(str(mark))}}}\n"
        f"        effects: {effects}\n"
        "        timeout: 1m\n"
        f"{outputs}"
        f"{gates}"
    )


def old_docs(mark: Path, state: str) -> str:
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        "  name: old-docs\n"
        "  title: Docs are built by the old script\n"
        "  owners: [alice]\n"
        "spec:\n"
        f"  state: {state}\n"
        "  goal: The handbook is rendered to HTML by tools/render.sh.\n"
        "  acceptance:\n"
        "    - id: AC-1\n"
        "      statement: The render writes handbook.html.\n"
        "      evidence: {block: render, output: handbook.html}\n"
        "  automation:\n"
        "    on: {apply: true}\n"
        "    blocks:\n"
        + _block(
            "render",
            mark,
            "echo '<h1>Handbook</h1>' > handbook.html\n",
            outputs="        outputs: [handbook.html]\n",
        )
    )


def docs_build(mark: Path) -> str:
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        "  name: docs-build\n"
        "  title: The documentation site builds\n"
        "  owners: [alice, bob]\n"
        "spec:\n"
        "  state: active\n"
        "  goal: Every change to main leaves a documentation site that builds without errors.\n"
        "  rationale: Broken docs are found by readers weeks later; building them on every\n"
        "    change finds them while the change is fresh.\n"
        "  acceptance:\n"
        "    - id: AC-1\n"
        "      statement: The build writes the site's index page.\n"
        "      evidence: {block: build, output: site/index.html}\n"
        "    - id: AC-2\n"
        "      statement: A maintainer reads the rendered pages before each release.\n"
        "  relations:\n"
        "    supersedes: [old-docs]\n"
        "  automation:\n"
        "    on: {apply: true, request: true}\n"
        "    lane: {name: docs, limit: 1}\n"
        "    blocks:\n"
        + _block(
            "build",
            mark,
            "mkdir -p site\necho '<h1>Docs</h1>' > site/index.html\necho 'built 1 page'\n",
            outputs="        outputs: [site/index.html]\n",
        )
        + _block(
            "check",
            mark,
            "test -s site/index.html && echo 'links: 0 broken'\n",
            needs="        needs: [build]\n",
        )
    )


def flaky(mark: Path) -> str:
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        "  name: flaky\n"
        "  title: The integration tests pass\n"
        "  owners: [bob]\n"
        "spec:\n"
        "  state: active\n"
        "  goal: The integration suite passes on main.\n"
        "  acceptance:\n"
        "    - id: AC-1\n"
        "      statement: The suite writes a report with no failures.\n"
        "      evidence: {block: test, output: report.txt}\n"
        "  automation:\n"
        "    on: {apply: true}\n"
        "    blocks:\n"
        + _block(
            "test",
            mark,
            "echo 'running 3 tests'\necho 'test_login FAILED: timed out' >&2\nexit 1\n",
            outputs="        outputs: [report.txt]\n",
        )
    )


def deploy(mark: Path) -> str:
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        "  name: deploy\n"
        "  title: Production runs the latest release\n"
        "  owners: [alice, carol]\n"
        "spec:\n"
        "  state: active\n"
        "  goal: Production runs the release on main within a day of its merge.\n"
        "  acceptance:\n"
        "    - id: AC-1\n"
        "      statement: The deploy records the version it shipped.\n"
        "      evidence: {block: ship, output: shipped.txt}\n"
        "  automation:\n"
        "    on: {apply: true, request: true}\n"
        "    lane: {name: production, limit: 1}\n"
        "    blocks:\n"
        + _block(
            "plan",
            mark,
            "echo 'plan: 1 service to update'\n",
        )
        + _block(
            "ship",
            mark,
            "echo 'v1.0.0' > shipped.txt\n",
            effects="irreversible",
            needs="        needs: [plan]\n",
            outputs="        outputs: [shipped.txt]\n",
            gates="        gates:\n          - approval: {from: [bob, carol], quorum: 1}\n",
        )
    )


def planned(mark: Path, state: str = "proposed") -> str:
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        "  name: planned\n"
        "  title: Docs are published for every release\n"
        "  owners: [alice]\n"
        "spec:\n"
        f"  state: {state}\n"
        "  goal: Each release has its documentation published next to it.\n"
        "  rationale: Users of an older release read docs that no longer match.\n"
        "  acceptance:\n"
        "    - id: AC-1\n"
        "      statement: The docs of each release are reachable from its release page.\n"
        "  relations:\n"
        "    dependsOn: [docs-build]\n"
        "  automation:\n"
        "    on: {request: true}\n"
        "    blocks:\n" + _block("publish", mark, "echo 'published'\n", effects="idempotent")
    )


def release_notes(mark: Path) -> str:
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        "  name: release-notes\n"
        "  title: Every release has notes\n"
        "  owners: [carol]\n"
        "spec:\n"
        "  state: accepted\n"
        "  goal: Each release comes with notes that list its changes.\n"
        "  acceptance:\n"
        "    - id: AC-1\n"
        "      statement: The notes are written for the release.\n"
        "      evidence: {block: notes, output: NOTES.md}\n"
        "  automation:\n"
        "    on: {apply: true}\n"
        "    blocks:\n"
        + _block(
            "notes",
            mark,
            "echo '# Notes' > NOTES.md\n",
            outputs="        outputs: [NOTES.md]\n",
        )
    )


@dataclass
class UiWorld(World):
    """The World of tests/reconcile_support.py, with the execution of each intent that ran:
    `executions["docs-build" | "flaky" | "deploy" | "old-docs"]`."""

    executions: dict[str, str] = field(default_factory=dict)
    #: The remote's branch that proposes a change to `.alloy/` (not merged).
    proposal: str = PROPOSAL


def _intent_file(name: str) -> str:
    return f".alloy/intents/{name}.yaml"


def _executions(world: World, started: list[str]) -> dict[str, str]:
    return {str(world.trace(e)["intent"]): e for e in started}


def make_ui_world(repo: GitRepo, tmp_path: Path) -> UiWorld:
    """Build the repository described in this module's docstring (two real reconcile passes)."""
    base = make_world(repo, tmp_path)
    ui = UiWorld(base.work, base.bare, base.url, base.tmp, base.marks, dict(base.env))

    # Before: the old way of building the docs is active, and it runs.
    ui.work.write({_intent_file("old-docs"): old_docs(ui.mark("old-docs"), "active")})
    ui.merge("Build the handbook with the old script")
    first = ui.reconcile()
    assert first.code == 0, (first.result, first.report)
    ui.executions.update(_executions(ui, first.report["started"]))
    assert set(ui.executions) == {"old-docs"}, first.report

    # Then: docs-build supersedes it (deprecated in the same change), with the other intents.
    ui.work.write(
        {
            _intent_file("old-docs"): old_docs(ui.mark("old-docs"), "deprecated"),
            _intent_file("docs-build"): docs_build(ui.mark("docs-build")),
            _intent_file("flaky"): flaky(ui.mark("flaky")),
            _intent_file("deploy"): deploy(ui.mark("deploy")),
            _intent_file("planned"): planned(ui.mark("planned")),
        }
    )
    ui.merge("Build the docs site; run the integration tests; deploy behind an approval")
    second = ui.reconcile()
    # A failed execution (flaky) makes the pass exit 4; nothing crashed.
    assert second.code == 4, (second.result, second.report)
    assert "Traceback" not in second.result.err, second.result.err
    ran = _executions(ui, second.report["started"])
    assert set(ran) == {"docs-build", "flaky", "deploy"}, second.report
    ui.executions.update(ran)

    # A proposal on its own branch: `planned` accepted, a new intent; compiled, not merged.
    git(ui.work.path, "checkout", "-q", "-b", PROPOSAL)
    ui.work.write(
        {
            _intent_file("planned"): planned(ui.mark("planned"), "accepted"),
            _intent_file("release-notes"): release_notes(ui.mark("release-notes")),
        }
    )
    ui.alloy("compile")
    ui.work.commit("Accept the publishing plan; add release notes")
    git(ui.work.path, "push", "-q", "origin", PROPOSAL)
    git(ui.work.path, "checkout", "-q", "main")
    git(ui.work.path, "fetch", "-q", "origin")
    return ui


@pytest.fixture
def ui_world(repo: GitRepo, tmp_path: Path) -> UiWorld:
    """The repository of tests/ui_support.py: every state the web interface shows."""
    return make_ui_world(repo, tmp_path)
