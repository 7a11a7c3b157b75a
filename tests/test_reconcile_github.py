"""Reconcile with the GitHub forge (DESIGN section 8): check runs of executions on GitHub, and
approvals taken from the pull request that merged the Approval document — its author and its
approving reviewers — not from the file. Real git remotes; the fake GitHub behind Prism."""

from __future__ import annotations

from pathlib import Path

import pytest

from controllers.daemon import ConfigError, load_config
from controllers.github import Credentials, GitHubTransport, connect
from controllers.reconcile import Reconciler, Settings
from tests.conftest import GitRepo
from tests.github_prism import GitHubRig
from tests.test_reconcile import World, lines, make_world

GATE = "        gates:\n          - approval: {from: [alice, team:release], quorum: 2}\n"


@pytest.fixture
def world(repo: GitRepo, tmp_path: Path) -> World:
    return make_world(repo, tmp_path)


def _reconciler(world: World, github: GitHubRig) -> Reconciler:
    waits: list[float] = []
    forge = connect(
        github.repo,
        api_url=github.api_url,
        credentials=Credentials(token=github.token),
        transport=GitHubTransport(sleep=waits.append),
    )
    return Reconciler(Settings(repo=world.url, state_dir=world.state("gh")), forge=forge)


def test_an_approval_counts_who_github_says_merged_and_approved_it(
    world: World, github: GitHubRig
) -> None:
    mark = world.add_intent("ship", gates=GATE, effects="irreversible")
    world.merge("add a gated intent")
    github.fake.add_team_member("Codertocat", "release", "bob")
    reconciler = _reconciler(world, github)
    try:
        first = reconciler.pass_once()
        [execution] = first.started
        assert first.finished == {execution: "waiting"}
        [run] = github.fake.check_runs()
        assert (run.status, run.external_id) == ("in_progress", execution)

        # An Approval document pushed straight to main (no pull request) counts for nobody,
        # whatever its `approver` says.
        args = ["approve", execution, "--gate", "work", "--comment", "ok", "--approver", "alice"]
        world.alloy(*args)
        direct = world.merge("approve without review", compile_=False)
        second = reconciler.pass_once()
        assert second.finished == {execution: "waiting"}, second
        assert any("not merged through a pull request" in s for s in second.skipped)
        assert not lines(mark)

        # Merged through a pull request by alice, approved by bob (team:release); carol's
        # approval was dismissed: quorum 2 is alice and bob.
        (world.work.path / ".alloy/approvals").mkdir(exist_ok=True)
        for path in (world.work.path / ".alloy/approvals").iterdir():
            path.write_text(path.read_text().replace("comment: ok", "comment: reviewed"))
        merged = world.merge("approve, reviewed", compile_=False)
        assert merged != direct
        github.fake.add_pull(12, merged, merged=True, merge_commit_sha=merged, user="alice")
        github.fake.add_review(12, "carol", "APPROVED")
        github.fake.add_review(12, "carol", "DISMISSED")
        github.fake.add_review(12, "bob", "APPROVED")
        third = reconciler.pass_once()
        assert third.resumed == [execution], third
        assert third.finished == {execution: "succeeded"}
        assert len(lines(mark)) == 1
        assert world.trace(execution)["status"] == "succeeded"
        passed = [g for g in world.trace(execution)["gates"] if g["decision"] == "passed"]
        assert [g["reason"] for g in passed] == ["approved by alice, bob"]
        runs = github.fake.check_runs()
        assert len(runs) == 1, "the execution's check run is updated, not added"
        assert (runs[0].status, runs[0].conclusion) == ("completed", "success")
    finally:
        reconciler.close()


def test_the_daemon_config_names_a_github_repository(tmp_path: Path) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text(
        "repositories:\n"
        "  - repo: https://github.example.com/team/app.git\n"
        "    github: team/app\n"
        "    githubApi: https://github.example.com/api/v3\n",
        encoding="utf-8",
    )
    [repo] = load_config(config).repositories
    assert (repo.github, repo.github_api) == ("team/app", "https://github.example.com/api/v3")
    config.write_text(
        "repositories:\n  - repo: /srv/app.git\n    github: not a repository\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"daemon.yaml:3.*github must be OWNER/NAME"):
        load_config(config)
