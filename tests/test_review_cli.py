"""`alloy review` end to end, in real git repositories: exit codes, bad revisions, byte-identical
output in every format, nothing from the pull request ever runs, symbolic links in a tree, the
traces branch, the pre-commit hook, and golden Markdown for representative pull requests.

Regenerate the golden files with `ALLOY_UPDATE_GOLDEN=1 pytest tests/test_review_cli.py`.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GitRepo, Result, git, intent_yaml, run_cli

Alloy = Callable[..., Result]
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "review"
FORMATS = ("markdown", "json", "github", "check-run")

PROPOSED = """\
apiVersion: alloy.dev/v1
kind: Intent
metadata:
  name: {name}
  owners: [bob, team:perf]
spec:
  state: {state}
  goal: Catch performance regressions within a day of the change that caused them.
  acceptance:
    - id: AC-1
      statement: The benchmark suite runs every night on main.
{automation}"""

AUTOMATION = """\
  automation:
    on: {apply: true, push: {paths: ["src/**"]}}
    blocks:
      - id: bench
        run: [python, -m, bench]
        effects: none
"""


def compile_and_commit(repo: GitRepo, alloy: Alloy, message: str) -> str:
    result = alloy("compile")
    assert result.code == 0, result.err
    return repo.commit(message)


def branch(repo: GitRepo, name: str) -> None:
    git(repo.path, "checkout", "-q", "-b", name)


def review_json(alloy: Alloy, *args: str) -> tuple[int, dict[str, Any]]:
    result = alloy("review", *args, "--format", "json")
    assert result.code in (0, 1), result.err
    assert "Traceback" not in result.err
    return result.code, json.loads(result.out)


# --- representative pull requests (also the golden files) --------------------------------------


def pr_proposal_accepted(repo: GitRepo, alloy: Alloy) -> None:
    """A proposed intent is accepted, with automation and its artifact: owners must approve the
    move, and merging starts its first `apply` execution."""
    repo.write(
        {
            ".alloy/intents/bench.yaml": PROPOSED.format(
                name="bench", state="proposed", automation=""
            )
        }
    )
    compile_and_commit(repo, alloy, "propose bench")
    branch(repo, "pr")
    repo.write(
        {
            ".alloy/intents/bench.yaml": PROPOSED.format(
                name="bench", state="accepted", automation=AUTOMATION
            )
        }
    )
    compile_and_commit(repo, alloy, "accept bench")


def pr_risky_automation(repo: GitRepo, alloy: Alloy) -> None:
    """An active intent's deploy becomes irreversible, its approval quorum is lowered and its
    window gate removed, it gains a secret, runs another command and may run longer; the
    artifact is recompiled, so nothing blocks unless the project's policy says so."""
    gated = (
        "      - id: deploy\n"
        "        run: [./deploy.sh, --dry-run]\n"
        "        effects: reversible\n"
        "        timeout: 10m\n"
        "        gates:\n"
        "          - approval: {from: [alice, bob], quorum: 2}\n"
        "          - window: {cron: '* 8-18 * * 1-5'}\n"
    )
    risky = (
        "      - id: deploy\n"
        "        run: [./deploy.sh, --for-real]\n"
        "        effects: irreversible\n"
        "        timeout: 2h\n"
        "        secrets: [DEPLOY_TOKEN]\n"
        "        gates:\n"
        "          - approval: {from: [alice, bob], quorum: 1}\n"
    )
    repo.write({".alloy/intents/deploy.yaml": intent_yaml("deploy", blocks=gated)})
    compile_and_commit(repo, alloy, "deploy")
    branch(repo, "pr")
    repo.write({".alloy/intents/deploy.yaml": intent_yaml("deploy", blocks=risky)})
    compile_and_commit(repo, alloy, "make deploy real")


def pr_stale_artifact(repo: GitRepo, alloy: Alloy) -> None:
    """An active intent's command is edited and the artifact is not recompiled: blocking."""
    repo.write({".alloy/intents/build.yaml": intent_yaml("build")})
    compile_and_commit(repo, alloy, "build")
    branch(repo, "pr")
    edited = intent_yaml(
        "build",
        blocks=(
            "      - id: build\n"
            "        run: [python, -c, 'print(2)']\n"
            "        effects: none\n"
            "        outputs: [out.txt]\n"
        ),
    )
    repo.write({".alloy/intents/build.yaml": edited})
    repo.commit("edit build, forget to compile")


def pr_rename_with_edit(repo: GitRepo, alloy: Alloy) -> None:
    """A proposed intent renamed (file and name) with a reworded criterion: one rename."""
    repo.write(
        {".alloy/intents/perf.yaml": PROPOSED.format(name="perf", state="proposed", automation="")}
    )
    repo.commit("perf")
    branch(repo, "pr")
    (repo.path / ".alloy/intents/perf.yaml").unlink()
    text = PROPOSED.format(name="perf-nightly", state="proposed", automation="").replace(
        "runs every night on main.", "runs every night on main and on release branches."
    )
    repo.write({".alloy/intents/perf-nightly.yaml": text})
    repo.commit("rename perf")


PULL_REQUESTS = {
    "proposal-accepted": pr_proposal_accepted,
    "risky-automation": pr_risky_automation,
    "stale-artifact": pr_stale_artifact,
    "rename-with-edit": pr_rename_with_edit,
}


@pytest.mark.parametrize("name", sorted(PULL_REQUESTS))
def test_golden_markdown(name: str, repo: GitRepo, alloy: Alloy) -> None:
    PULL_REQUESTS[name](repo, alloy)
    result = alloy("review", "--base", "main", "--head", "pr")
    assert result.code in (0, 1), result.err
    golden = GOLDEN / f"{name}.md"
    if os.environ.get("ALLOY_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(result.out, encoding="utf-8")
    assert result.out == golden.read_text(encoding="utf-8"), (
        f"the review of {name} changed; if on purpose, run with ALLOY_UPDATE_GOLDEN=1"
    )
    assert result.out.splitlines()[0].startswith(("**FAIL: ", "**WARN: ", "**PASS: "))


def test_proposal_accepted_needs_the_owners_and_starts_the_apply(
    repo: GitRepo, alloy: Alloy
) -> None:
    pr_proposal_accepted(repo, alloy)
    code, data = review_json(alloy, "--base", "main", "--head", "pr")
    assert code == 0
    assert data["blocking"] is False
    assert data["base"] == "main"
    assert data["head"] == "pr"
    moves = [f for f in data["findings"] if f["kind"] == "lifecycle-move"]
    assert [(m["path"], m["details"].get("from"), m["details"].get("to")) for m in moves] == [
        (".alloy/intents/bench.yaml", "proposed", "accepted")
    ]
    assert data["approvers"] == ["bob", "team:perf"]
    starts = [(s["artifact"], s["event"]) for s in data["starts"]]
    assert ("bench", "apply") in starts
    changed = {(c["change"], c["path"]) for c in data["changes"]}
    assert ("changed", ".alloy/intents/bench.yaml") in changed
    assert ("added", ".alloy/artifacts/bench.json") in changed


def test_a_rename_with_a_small_edit_is_one_rename(repo: GitRepo, alloy: Alloy) -> None:
    pr_rename_with_edit(repo, alloy)
    code, data = review_json(alloy, "--base", "main", "--head", "pr")
    assert code == 0
    assert data["changes"] == [
        {
            "change": "renamed",
            "kind": "Intent",
            "name": "perf-nightly",
            "path": ".alloy/intents/perf-nightly.yaml",
            "oldPath": ".alloy/intents/perf.yaml",
            "fields": ["spec.acceptance[AC-1].statement"],
            "state": None,
        }
    ]
    assert [f["kind"] for f in data["findings"]] == ["acceptance-reworded"]


def test_risky_automation_reports_each_risk(repo: GitRepo, alloy: Alloy) -> None:
    pr_risky_automation(repo, alloy)
    code, data = review_json(alloy, "--base", "main", "--head", "pr")
    kinds = {f["kind"] for f in data["findings"]}
    assert {
        "effects-stronger",
        "gate-loosened",
        "gate-removed",
        "secret-new",
        "run-changed",
        "timeout-raised",
    } <= kinds
    assert code == (1 if data["blocking"] else 0)
    for finding in data["findings"]:
        assert finding["path"] == ".alloy/intents/deploy.yaml"
        assert finding["line"] >= 1


def test_a_project_policy_makes_a_risk_blocking(repo: GitRepo, alloy: Alloy) -> None:
    repo.write(
        {
            ".alloy/alloy.yaml": (
                "apiVersion: alloy.dev/v1\nkind: Project\nmetadata:\n  name: test-project\n"
                "spec:\n  owners: [alice]\n  policy:\n    blockingRisks: [secret-new]\n"
            )
        }
    )
    repo.commit("policy")
    pr_risky_automation(repo, alloy)
    result = alloy("review", "--base", "main", "--head", "pr", "--format", "json")
    assert result.code == 1, result.err
    data = json.loads(result.out)
    secret = [f for f in data["findings"] if f["kind"] == "secret-new"]
    assert [f["severity"] for f in secret] == ["blocking"]


# --- exit codes ---------------------------------------------------------------------------------


def test_exit_0_when_nothing_blocks_and_1_when_something_does(repo: GitRepo, alloy: Alloy) -> None:
    pr_stale_artifact(repo, alloy)
    result = alloy("review", "--base", "main", "--head", "pr")
    assert result.code == 1
    assert result.out.startswith("**FAIL: Blocking: do not merge")
    assert "artifact-stale" in result.out
    assert result.err == ""
    # The same change, compiled: nothing blocks.
    compile_and_commit(repo, alloy, "compile")
    result = alloy("review", "--base", "main", "--head", "pr")
    assert result.code == 0, result.out
    # No intent change at all.
    result = alloy("review", "--base", "pr", "--head", "pr")
    assert (result.code, result.out) == (0, "**PASS: No intent changes.**\n")


def test_head_defaults_to_the_checked_out_commit(repo: GitRepo, alloy: Alloy) -> None:
    pr_stale_artifact(repo, alloy)
    code, data = review_json(alloy, "--base", "main")
    assert code == 1
    assert data["head"] == "HEAD"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--base", "no-such-branch"], "--base no-such-branch: no such revision"),
        (["--base", "main", "--head", "nope"], "--head nope: no such revision"),
        (["--base", "main", "--head", "--all"], "--head --all: no such revision"),
        (["--base", "main~5"], "--base main~5: no such revision"),
    ],
)
def test_a_bad_revision_exits_1_naming_it(
    repo: GitRepo, alloy: Alloy, args: list[str], needle: str
) -> None:
    result = alloy("review", *args)
    assert result.code == 1
    assert needle in result.err
    assert "Traceback" not in result.err
    assert result.out == ""


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--head", "main"],
        ["--base", "main", "--format", "xml"],
        ["--base", "main", "--staged", "--head", "main"],
        ["--base", "main", "--no-such-option"],
    ],
)
def test_usage_errors_exit_2(repo: GitRepo, alloy: Alloy, args: list[str]) -> None:
    result = alloy("review", *args)
    assert result.code == 2, result
    assert "Traceback" not in result.err


def test_outside_a_git_repository_exits_1(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / ".alloy").mkdir(parents=True)
    result = run_cli("alloy", "review", "--base", "main", cwd=plain)
    assert result.code == 1
    assert "not inside a git repository" in result.err


def test_a_bug_in_the_review_exits_3_with_a_crash_log(repo: GitRepo, tmp_path: Path) -> None:
    code = (
        "import alloy.review\n"
        "def broken(*args, **kwargs):\n"
        "    raise RuntimeError('boom')\n"
        "alloy.review.review_snapshots = broken\n"
        "from alloy.cli import main\n"
        "main(['review', '--base', 'main'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=repo.path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert proc.returncode == 3, proc.stderr
    assert "internal error (RuntimeError: boom)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


# --- determinism --------------------------------------------------------------------------------


def test_the_same_review_twice_is_byte_identical_in_every_format(
    repo: GitRepo, alloy: Alloy
) -> None:
    pr_risky_automation(repo, alloy)
    (repo.path / ".alloy/intents/extra.yaml").write_text(intent_yaml("extra"))
    compile_and_commit(repo, alloy, "more")
    for fmt in FORMATS:
        first = alloy("review", "--base", "main", "--head", "pr", "--format", fmt)
        again = alloy("review", "--base", "main", "--head", "pr", "--format", fmt)
        cold = alloy("review", "--base", "main", "--head", "pr", "--format", fmt, "--no-cache")
        assert first.out, fmt
        assert first.out == again.out == cold.out, fmt
        assert first.code == again.code == cold.code
    body = json.loads(
        alloy("review", "--base", "main", "--head", "pr", "--format", "check-run").out
    )
    assert body["head_sha"] == git(repo.path, "rev-parse", "pr").strip()
    assert body["status"] == "completed"
    assert body["output"]["summary"] == alloy("review", "--base", "main", "--head", "pr").out


def test_github_format_prints_only_annotations(repo: GitRepo, alloy: Alloy) -> None:
    pr_stale_artifact(repo, alloy)
    result = alloy("review", "--base", "main", "--head", "pr", "--format", "github")
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines
    assert all(line.startswith(("::error ", "::warning ", "::notice ")) for line in lines)
    assert any(
        line.startswith("::error file=.alloy/artifacts/build.json,line=")
        and "artifact-stale" in line
        for line in lines
    )


# --- nothing from the pull request runs -------------------------------------------------------


def test_a_pull_request_cannot_make_the_review_run_anything(
    repo: GitRepo, alloy: Alloy, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    touch = f"open({str(marker)!r}, 'w').write('ran')"
    repo.write({".alloy/intents/build.yaml": intent_yaml("build")})
    compile_and_commit(repo, alloy, "build")
    branch(repo, "pr")
    hostile = intent_yaml(
        "build",
        on="{apply: true, push: {paths: ['**']}, request: true}",
        blocks=(
            "      - id: build\n"
            f'        run: [{sys.executable}, -c, "{touch}"]\n'
            "        effects: none\n"
            "        gates:\n"
            f'          - command: {{run: [{sys.executable}, -c, "{touch}"]}}\n'
        ),
    )
    repo.write(
        {
            ".alloy/intents/build.yaml": hostile,
            # A YAML tag that would call a function in a careless loader.
            ".alloy/intents/tagged.yaml": (f"!!python/object/apply:os.system ['touch {marker}']\n"),
            ".gitattributes": ".alloy/** filter=evil\n",
        }
    )
    compile_and_commit_allowing_errors(repo, alloy)
    git(repo.path, "checkout", "-q", "main")  # the head is reviewed from git, not the work tree
    # A filter that a checkout of the pull request would run (review never checks out).
    git(repo.path, "config", "filter.evil.smudge", f"touch {marker}; cat")
    git(repo.path, "config", "filter.evil.clean", "cat")
    before = repo.tree()
    for fmt in FORMATS:
        result = alloy("review", "--base", "main", "--head", "pr", "--format", fmt)
        assert result.code == 1, result.err  # the tagged document is invalid
        assert "Traceback" not in result.err
    assert not marker.exists(), "something from the pull request ran"
    assert repo.tree() == before, "the review wrote into .alloy/"
    assert git(repo.path, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    _, data = review_json(alloy, "--base", "main", "--head", "pr")
    assert any(
        f["kind"] == "invalid-document" and f["path"] == ".alloy/intents/tagged.yaml"
        for f in data["findings"]
    )
    # What merging would start is only shown, as data.
    assert any(s["artifact"] == "build" for s in data["starts"])
    assert not marker.exists()


def compile_and_commit_allowing_errors(repo: GitRepo, alloy: Alloy) -> None:
    """Compile what compiles (the tagged file stops `alloy compile`, so move it aside)."""
    tagged = repo.path / ".alloy/intents/tagged.yaml"
    data = tagged.read_bytes()
    tagged.unlink()
    result = alloy("compile")
    assert result.code == 0, result.err
    tagged.write_bytes(data)
    repo.commit("hostile")


# --- symbolic links and other non-files in a tree -------------------------------------------------


def test_symbolic_links_are_refused_or_resolved_inside_alloy(repo: GitRepo, alloy: Alloy) -> None:
    (repo.path / "secret.txt").write_text("TOP-SECRET-CONTENT\n")
    repo.commit("a secret outside .alloy")
    branch(repo, "pr")
    intents = repo.path / ".alloy/intents"
    (intents / "out.yaml").symlink_to("../../secret.txt")
    (intents / "abs.yaml").symlink_to("/etc/passwd")
    (repo.path / ".alloy/requests").mkdir()
    (repo.path / ".alloy/requests/loop.yaml").symlink_to("loop.yaml")
    repo.commit("links")
    code, data = review_json(alloy, "--base", "main", "--head", "pr")
    assert code == 1
    invalid = {f["path"]: f["message"] for f in data["findings"] if f["kind"] == "invalid-document"}
    assert "points outside .alloy/" in invalid[".alloy/intents/out.yaml"]
    assert "leaves the repository" in invalid[".alloy/intents/abs.yaml"]
    assert ".alloy/requests/loop.yaml" in invalid
    everything = "".join(
        alloy("review", "--base", "main", "--head", "pr", "--format", fmt).out for fmt in FORMATS
    )
    assert "TOP-SECRET-CONTENT" not in everything
    assert "root:" not in everything


def test_a_symbolic_link_to_a_document_inside_alloy_reads_that_document(
    repo: GitRepo, alloy: Alloy
) -> None:
    repo.write(
        {
            ".alloy/intents/bench.yaml": PROPOSED.format(
                name="bench", state="proposed", automation=""
            )
        }
    )
    repo.commit("bench")
    branch(repo, "pr")
    # The project file is kept elsewhere in .alloy/ and linked: as the work tree reads it.
    project = (repo.path / ".alloy/alloy.yaml").read_bytes()
    (repo.path / ".alloy/alloy.yaml").unlink()
    (repo.path / ".alloy/intents/project.md").write_bytes(project)
    (repo.path / ".alloy/alloy.yaml").symlink_to("intents/project.md")
    repo.commit("link the project file")
    assert alloy("check").code == 0
    code, data = review_json(alloy, "--base", "main", "--head", "pr")
    assert code == 0, data
    assert not [f for f in data["findings"] if f["kind"] == "invalid-document"]


# --- the traces branch: executions already recorded are not new -------------------------------


def test_recorded_executions_are_not_shown_as_new(repo: GitRepo, alloy: Alloy) -> None:
    pr_proposal_accepted(repo, alloy)
    _, data = review_json(alloy, "--base", "main", "--head", "pr")
    apply = next(s for s in data["starts"] if s["event"] == "apply")
    # Foundry recorded that execution on the traces branch (only the file name matters).
    git(repo.path, "checkout", "-q", "--orphan", "alloy/traces")
    git(repo.path, "rm", "-q", "-r", "-f", ".")
    repo.write({f"traces/bench/{apply['execution']}.json": "{}\n"})
    repo.commit("trace")
    git(repo.path, "checkout", "-q", "pr")
    _, again = review_json(alloy, "--base", "main", "--head", "pr")
    assert apply["execution"] not in [s["execution"] for s in again["starts"]]
    # Another branch can be named; one that does not exist records nothing.
    _, other = review_json(alloy, "--base", "main", "--head", "pr", "--traces-branch", "nope")
    assert apply["execution"] in [s["execution"] for s in other["starts"]]


def test_push_triggers_see_the_paths_the_pull_request_changes(repo: GitRepo, alloy: Alloy) -> None:
    repo.write(
        {
            ".alloy/intents/bench.yaml": PROPOSED.format(
                name="bench", state="active", automation=AUTOMATION
            )
        }
    )
    compile_and_commit(repo, alloy, "bench")
    branch(repo, "pr")
    repo.write({"docs/notes.txt": "no src change\n"})
    repo.commit("docs only")
    _, docs_only = review_json(alloy, "--base", "main", "--head", "pr")
    assert not [s for s in docs_only["starts"] if s["event"] == "push"]
    repo.write({"src/app.py": "print('hi')\n"})
    repo.commit("src change")
    _, with_src = review_json(alloy, "--base", "main", "--head", "pr")
    assert [s["artifact"] for s in with_src["starts"] if s["event"] == "push"] == ["bench"]


def test_a_required_input_no_trigger_can_supply_blocks_the_pull_request(
    repo: GitRepo, alloy: Alloy
) -> None:
    """The review reports what `alloy check` reports about the head: an intent whose `apply`
    trigger would start it without its required input (so it cannot be compiled either)."""
    branch(repo, "pr")
    repo.write(
        {
            ".alloy/intents/deploy.yaml": intent_yaml("deploy").replace(
                "    blocks:\n", "    inputs:\n      version: {required: true}\n    blocks:\n"
            )
        }
    )
    repo.commit("deploy, asking for a version")
    code, data = review_json(alloy, "--base", "main", "--head", "pr")
    assert code == 1
    [finding] = [f for f in data["findings"] if f["kind"] == "invalid-document"]
    assert (finding["path"], finding["line"], finding["details"]["column"]) == (
        ".alloy/intents/deploy.yaml",
        12,
        7,
    )
    assert finding["severity"] == "blocking"
    assert "but on.apply starts executions with no one to supply it" in finding["message"]
    assert not [s for s in data["starts"] if s["artifact"] == "deploy"]


# --- as a pre-commit hook -------------------------------------------------------------------------


def test_staged_reviews_the_index_not_the_work_tree(repo: GitRepo, alloy: Alloy) -> None:
    repo.write({".alloy/intents/build.yaml": intent_yaml("build")})
    compile_and_commit(repo, alloy, "build")
    edited = intent_yaml(
        "build",
        blocks=(
            "      - id: build\n        run: [python, -c, 'print(3)']\n        effects: none\n"
        ),
    )
    (repo.path / ".alloy/intents/build.yaml").write_text(edited)
    # Unstaged: nothing to review yet.
    result = alloy("review", "--base", "HEAD", "--staged")
    assert (result.code, result.out) == (0, "**PASS: No intent changes.**\n")
    git(repo.path, "add", ".alloy/intents/build.yaml")
    code, data = review_json(alloy, "--base", "HEAD", "--staged")
    assert code == 1
    assert data["head"] == "staged"
    assert [f["kind"] for f in data["findings"] if f["severity"] == "blocking"] == [
        "artifact-stale"
    ]
    assert alloy("compile").code == 0
    git(repo.path, "add", "-A")
    code, data = review_json(alloy, "--base", "HEAD", "--staged")
    assert code == 0, data


def test_as_a_git_pre_commit_hook(repo: GitRepo, alloy: Alloy) -> None:
    repo.write({".alloy/intents/build.yaml": intent_yaml("build")})
    compile_and_commit(repo, alloy, "build")
    hook = repo.path / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\nexec {sys.executable} -m alloy review --base HEAD --staged\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    edited = intent_yaml("build", state="deprecated")
    (repo.path / ".alloy/intents/build.yaml").write_text(edited)
    git(repo.path, "add", "-A")
    refused = subprocess.run(
        ["git", "commit", "-q", "-m", "deprecate"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert "artifact-stale" in refused.stdout + refused.stderr
    assert alloy("compile").code == 0
    git(repo.path, "add", "-A")
    git(repo.path, "commit", "-q", "-m", "deprecate, compiled")
    assert git(repo.path, "log", "-1", "--format=%s").strip() == "deprecate, compiled"


def test_the_documented_pre_push_hook(repo: GitRepo, alloy: Alloy, tmp_path: Path) -> None:
    """The pre-push script of docs/review.md, as written there, stops a push with a stale
    artifact and lets the compiled one through."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "review.md").read_text()
    script = doc.split("# .git/hooks/pre-push (chmod +x)\n", 1)[1].split("```", 1)[0]
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo.path, "remote", "add", "origin", str(origin))
    repo.write({".alloy/intents/build.yaml": intent_yaml("build")})
    compile_and_commit(repo, alloy, "build")
    git(repo.path, "push", "-q", "origin", "main")
    hook = repo.path / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\n" + script)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def push() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "push", "-q", "origin", "feature"],
            cwd=repo.path,
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )

    branch(repo, "feature")
    (repo.path / ".alloy/intents/build.yaml").write_text(intent_yaml("build", state="deprecated"))
    repo.commit("deprecate, not compiled")
    refused = push()
    assert refused.returncode != 0
    assert "artifact-stale" in refused.stdout + refused.stderr
    compile_and_commit(repo, alloy, "compiled")
    accepted = push()
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert (
        git(origin, "rev-parse", "feature").strip() == git(repo.path, "rev-parse", "HEAD").strip()
    )


# --- the git side: trees and blobs as data ----------------------------------------------------


def test_reading_blobs_in_one_or_two_processes_gives_the_same_bytes(repo: GitRepo) -> None:
    from controllers import git as gitctl

    files = {f".alloy/notes/n{i:04d}.md": f"note {i}\n" * (i % 7) for i in range(2_100)}
    files[".alloy/notes/big.md"] = "x" * 5_000
    repo.write(files)
    commit = repo.commit("notes")
    listing = gitctl.list_tree(repo.path, commit, ".alloy")
    by_path = {f.path: f.sha for f in listing}
    assert set(files) <= set(by_path)
    shas = list(by_path.values())
    large: dict[str, int] = {}
    one = gitctl.read_blobs(repo.path, shas, 4_096)
    two = gitctl.read_blobs(repo.path, shas, 4_096, large, processes=2)
    assert one == two
    for path, text in files.items():
        if path.endswith("big.md"):
            assert by_path[path] not in two
            assert large == {by_path[path]: 5_000}
        else:
            assert two[by_path[path]] == text.encode()
    assert gitctl.read_blobs(repo.path, ["0" * 40], 4_096) == {}  # missing: left out


def test_resolving_revisions_never_parses_options(repo: GitRepo) -> None:
    from controllers import git as gitctl

    head = git(repo.path, "rev-parse", "HEAD").strip()
    git(repo.path, "tag", "-a", "-m", "annotated", "v1")
    assert gitctl.resolve_commits(
        repo.path, ["main", "v1", "--all", "HEAD~9", "", "a\nb", "HEAD"]
    ) == [head, head, None, None, None, None, head]
