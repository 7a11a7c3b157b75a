"""`alloy ui` with a repository that reports to GitHub: each action's branch gets a pull request,
and the reviews view shows open pull requests beside the branches they review (a fork's at
`refs/pull/<n>/head`). GitHub is the fake behind `prism proxy --errors` with GitHub's OpenAPI
description (tests/github_prism.py); git is a real bare remote made by real reconcile passes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from alloy.web import Security, create_app, open_repositories
from tests.conftest import git
from tests.github_prism import GitHubRig
from tests.ui_support import UiWorld

KEY = "remote"


class _RemoteBranches(dict[tuple[str, str], str]):
    """The fake GitHub's branches of the repository are the real remote's: a pull request can
    be opened from a branch the dashboard pushed there."""

    def __init__(self, repo: str, bare: Path, known: dict[tuple[str, str], str]) -> None:
        super().__init__(known)
        self.repo, self.bare = repo, bare

    def get(self, key: tuple[str, str], default: Any = None) -> Any:
        if key[0] == self.repo:
            found = git(self.bare, "for-each-ref", "--format=%(objectname)", f"refs/heads/{key[1]}")
            if found.strip():
                return found.strip()
        return super().get(key, default)


def _client(world: UiWorld, rig: GitHubRig, tmp_path: Path, *, token: str | None) -> TestClient:
    rig.fake._branches = _RemoteBranches(rig.repo, world.bare, rig.fake._branches)
    states = open_repositories(
        [str(world.bare)],
        tmp_path / "ui-cache",
        github={KEY: rig.repo},
        github_api=rig.api_url,
        token=token,
    )
    app = create_app(states, refresh_in_background=False, security=Security(identity="carol"))
    return TestClient(app)


@pytest.fixture
def on_github(
    ui_world: UiWorld, github: GitHubRig, tmp_path: Path
) -> Iterator[tuple[TestClient, GitHubRig]]:
    with _client(ui_world, github, tmp_path, token=github.token) as client:
        yield client, github


def _csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(f"/r/{KEY}/propose").text)
    assert found
    return found.group(1)


def _approve(client: TestClient, world: UiWorld) -> dict[str, Any]:
    response = client.post(
        f"/r/{KEY}/actions/approve",
        data={
            "csrf": _csrf(client),
            "execution": world.executions["deploy"],
            "gate": "ship/0",
            "comment": "ship it",
        },
        params={"format": "json"},
    )
    assert response.status_code == 201, response.text
    done: dict[str, Any] = response.json()
    return done


def test_an_action_opens_a_pull_request_for_its_branch(
    on_github: tuple[TestClient, GitHubRig], ui_world: UiWorld
) -> None:
    client, rig = on_github
    done = _approve(client, ui_world)
    pull = done["pullRequest"]
    assert pull["created"] is True
    [opened] = rig.fake.pulls()
    assert opened.number == pull["number"]
    assert opened.head_ref == done["branch"]
    assert opened.base_ref == "main"
    assert opened.title.startswith("Approve ship/0 of exe-")
    assert "carol" in (opened.body or "")
    assert pull["url"].endswith(f"/pull/{opened.number}")
    page = client.post(
        f"/r/{KEY}/actions/reject",
        data={
            "csrf": _csrf(client),
            "execution": ui_world.executions["deploy"],
            "gate": "ship/0",
            "comment": "not yet",
        },
    ).text
    assert 'class="pull"' in page
    assert len(rig.fake.pulls()) == 2

    # The reviews view shows the pull request beside the review of its branch.
    reviews = client.get("/reviews", params={"format": "json"}).json()
    items = {i["branch"]: i for i in reviews["items"]}
    assert items[done["branch"]]["pullRequest"]["number"] == opened.number
    assert items[done["branch"]]["pullRequest"]["author"]
    assert reviews["github"] == {}


def test_a_pull_request_from_a_fork_is_reviewed_at_its_pull_ref(
    on_github: tuple[TestClient, GitHubRig], ui_world: UiWorld, tmp_path: Path
) -> None:
    client, rig = on_github
    # The fork's commit reaches the remote only as refs/pull/7/head, as GitHub keeps it.
    head = git(ui_world.bare, "rev-parse", "refs/heads/propose-x").strip()
    git(ui_world.bare, "update-ref", "refs/pull/7/head", head)
    git(ui_world.bare, "update-ref", "-d", "refs/heads/propose-x")
    rig.fake.add_pull(
        7,
        head,
        head_repo_full_name="someone/Hello-World",
        head_ref="propose-x",
        title="Release notes, from a fork",
        user="someone",
    )
    client.app.state.hub.refresh()  # type: ignore[attr-defined]
    reviews = client.get("/reviews", params={"format": "json"}).json()
    [item] = reviews["items"]
    assert item["branch"] == "pull/7"
    assert item["pullRequest"]["number"] == 7
    assert item["pullRequest"]["headRepo"] == "someone/Hello-World"
    paths = {c["path"] for c in item["review"]["changes"]}
    assert ".alloy/intents/release-notes.yaml" in paths
    page = client.get("/reviews").text
    assert "pull request #7" in page
    assert "Release notes, from a fork" in page


def test_without_a_token_the_branch_is_pushed_and_the_page_says_why_no_pull_request(
    ui_world: UiWorld, github: GitHubRig, tmp_path: Path
) -> None:
    with _client(ui_world, github, tmp_path, token=None) as client:
        done = _approve(client, ui_world)
        assert "GITHUB_TOKEN" in done["pullRequest"]["error"]
        assert git(ui_world.bare, "rev-parse", f"refs/heads/{done['branch']}").strip()
        assert github.fake.pulls() == []
        # The fake's repository is private: without a token its pull requests are not listed,
        # and the page says how to fix it.
        said = client.get("/reviews", params={"format": "json"}).json()["github"][KEY]
        assert "GITHUB_TOKEN" in said


def test_a_github_that_refuses_is_said_on_the_reviews_page(
    ui_world: UiWorld, github: GitHubRig, tmp_path: Path
) -> None:
    with _client(ui_world, github, tmp_path, token="wrong-token") as client:  # noqa: S106
        reviews = client.get("/reviews", params={"format": "json"}).json()
        assert "401" in reviews["github"][KEY]
        assert "wrong-token" not in reviews["github"][KEY]
        [item] = reviews["items"]  # the branches are reviewed all the same
        assert item["branch"] == "propose-x"
        assert "pull requests are not shown" in client.get("/reviews").text
