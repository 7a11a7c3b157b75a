"""`command` gates under the GitHub Action, run by a real runner (act) against the fake GitHub
behind Prism (issue 11, "Must show"): a policy command that exits 0, 75, 1 and one that outlives
its timeout, each gating its own intent; the policy runs from the default branch, and a pull
request that changes it never runs it — not on its `pull_request` run, not on a later push."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import GitRepo, git
from tests.github_prism import GitHubRig
from tests.reconcile_support import intent, lines
from tests.test_action_runner import (
    Runner,
    bare_origin,
    compile_and_commit,
    pull_request_event,
    push_event,
)

POLICIES = {
    "passes": ("echo fine; exit 0", "succeeded", "policy command passed: fine"),
    "waits": ("echo later; exit 75", "waiting", "policy command says wait: later"),
    "fails": ("echo no; exit 1", "failed", "exit code 1: no"),
    "hangs": ("sleep 60", "failed", "timed out after 2s"),
}


def _policy(repo: GitRepo, ran: Path, bodies: dict[str, str]) -> None:
    """One policy script per intent; each run appends its name to `ran`."""
    repo.write(
        {
            f"policy/{name}.sh": f'#!/bin/sh\necho {name} >> "{ran}"\n{body}\n'
            for name, body in bodies.items()
        }
    )


def test_command_gates_under_the_action_run_the_default_branchs_policy_only(
    repo: GitRepo, tmp_path: Path, github: GitHubRig
) -> None:
    bare = bare_origin(repo, tmp_path)
    before = git(repo.path, "rev-parse", "HEAD").strip()
    marks = tmp_path / "marks"
    marks.mkdir()
    ran = marks / "policy-runs"
    _policy(repo, ran, {name: body for name, (body, _, _) in POLICIES.items()})
    for name in POLICIES:
        gate = (
            f"        gates:\n          - command: {{run: [sh, policy/{name}.sh], timeout: 2s}}\n"
        )
        repo.write({f".alloy/intents/{name}.yaml": intent(name, marks / name, gates=gate)})
    head = compile_and_commit(repo, "four gated intents")
    git(repo.path, "push", "-q", "origin", "main")
    runner = Runner(repo.path, tmp_path / "act", github)

    first = runner.run("push", push_event(repo=github.repo, before=before, after=head), "push.yml")
    assert first.step_result("alloy") is not None, first.log()
    started = first.outputs["executions-started"].split()
    assert len(started) == len(POLICIES), first.outputs
    paths = {p.split("/")[1]: p for p in first.outputs["trace-paths"].split()}
    traces = {
        n: json.loads(git(bare, "show", f"alloy/traces:{p}"))["spec"] for n, p in paths.items()
    }
    for name, (_, status, says) in POLICIES.items():
        assert traces[name]["status"] == status, (name, traces[name])
        assert says in traces[name]["gates"][-1]["reason"], traces[name]["gates"]
        assert len(lines(marks / name)) == (1 if status == "succeeded" else 0), name
    assert sorted(lines(ran)) == sorted(POLICIES)

    # A pull request loosens the waiting intent's policy (and would leave a mark if it ran).
    git(repo.path, "checkout", "-q", "-b", "topic")
    pr_mark = marks / "pull-request-policy-ran"
    repo.write({"policy/waits.sh": f'#!/bin/sh\necho ran > "{pr_mark}"\nexit 0\n'})
    # Only the policy is committed: the action's files stay untracked in the workspace.
    git(repo.path, "add", "policy/waits.sh")
    git(repo.path, "commit", "-q", "-m", "let it through")
    pr_head = git(repo.path, "rev-parse", "HEAD").strip()
    git(repo.path, "push", "-q", "origin", "topic")
    github.fake.add_pull(2, pr_head, base_sha=head, head_ref="topic", repo=github.repo)
    opened = pull_request_event("opened", repo=github.repo, base=head, head=pr_head)
    review = runner.run("pull_request", opened, "pull_request.yml")
    assert review.outputs["executions-started"] == "", review.outputs
    assert not pr_mark.exists(), "a pull request's policy ran"

    # A later push to main (unrelated) judges the waiting gate again: main's policy says wait.
    git(repo.path, "checkout", "-q", "main")
    repo.write({"README.md": "docs\n"})
    git(repo.path, "add", "README.md")
    git(repo.path, "commit", "-q", "-m", "docs")
    later = git(repo.path, "rev-parse", "HEAD").strip()
    git(repo.path, "push", "-q", "origin", "main")
    again = runner.run("push", push_event(repo=github.repo, before=head, after=later), "push.yml")
    assert again.step_result("alloy") is not None, again.log()
    assert not pr_mark.exists(), "a pull request's policy ran"
    spec = json.loads(git(bare, "show", f"alloy/traces:{paths['waits']}"))["spec"]
    assert spec["status"] == "waiting", spec
    assert "policy command says wait: later" in spec["gates"][-1]["reason"]
    assert lines(ran).count("waits") == 2, again.log()  # judged on both pushes, by main's policy
    assert lines(marks / "waits") == []
