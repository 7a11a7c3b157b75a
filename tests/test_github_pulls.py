"""`controllers.github_pulls` (the pull requests `alloy ui` lists and opens) against GitHub's
own contract.

As in tests/test_github_forge.py, the adapter is built as production builds it (a
`GitHubTransport` over requests) and talks to the fake GitHub (tests/github_fake.py) through
`prism proxy --errors` with GitHub's OpenAPI description: a request GitHub would reject, or an
answer GitHub would never send, fails the test (the `site` fixture checks every answer Prism
gave, its log, and the media type and API version of every request). A 422 from the fake is a
violation too, unless the test expects that refusal (GitHub's "already exists"). Waits go
through a fake clock: tests never sleep.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from controllers.github._transport import GitHubTransport, Policy
from controllers.github_pulls import (
    DEFAULT_API,
    GitHubPulls,
    GitHubRemote,
    Opened,
    PullRequest,
    PullsError,
    list_open_pulls,
    open_pull,
    parse_remote,
    token_from_env,
)
from tests.github_fake import RecordedRequest
from tests.github_prism import GitHubRig
from tests.test_github_enterprise import PREFIX, _Front
from tests.test_github_forge import Clock, Recorder, half

OWNER, NAME = "Codertocat", "Hello-World"
PULLS = r"^/repos/[^/]+/[^/]+/pulls$"
SHA = "1f2e3d4c5b6a79880123456789abcdef01234567"
SECRET = "ghs_Sup3rSecretInstallationToken0000"


@dataclass
class Site:
    """The rig, a fake clock, and the adapter built as production builds it."""

    github: GitHubRig
    clock: Clock
    recorders: list[Recorder] = field(default_factory=list)
    transports: list[GitHubTransport] = field(default_factory=list)
    #: 422s the fake may answer in this test (GitHub's refusals the test asks for).
    expected_422: int = 0

    @property
    def fake(self) -> Any:
        return self.github.fake

    def client(
        self,
        *,
        token: str | None = None,
        api: str | None = None,
        per_page: int = 100,
        repository: str | None = None,
        env: dict[str, str] | None = None,
    ) -> GitHubPulls:
        recorder = Recorder()
        transport = GitHubTransport(
            policy=Policy(tries=3, max_wait=15.0),
            sleep=self.clock.sleep,
            now=self.clock.now,
            jitter=half,
            inner=recorder,
        )
        self.recorders.append(recorder)
        self.transports.append(transport)
        return GitHubPulls(
            repository or self.github.repo,
            api=api or self.github.api_url,
            token=self.github.token if token is None and env is None else token,
            env=env,
            transport=transport,
            per_page=per_page,
        )

    def to_pulls(self, method: str) -> list[RecordedRequest]:
        return self.fake.requests_to(method, PULLS)

    def violations(self) -> list[str]:
        found = [v for r in self.recorders for v in r.violations()]
        refused = 0
        for r in self.fake.requests:
            if r.status == 422:
                refused += 1
                if refused > self.expected_422:
                    found.append(f"{r.method} {r.path}: the fake answered 422 unexpectedly")
            accept = r.headers.get("accept", "")
            version = r.headers.get("x-github-api-version", "")
            if accept != "application/vnd.github+json" or version != "2022-11-28":
                found.append(f"{r.method} {r.path}: Accept {accept!r}, API version {version!r}")
        return found


@pytest.fixture
def site(github: GitHubRig) -> Iterator[Site]:
    log = github.prism.log_path
    start = log.stat().st_size if log.exists() else 0
    s = Site(github, Clock())
    yield s
    problems = s.violations()
    text = log.read_bytes()[start:].decode("utf-8", "replace") if log.exists() else ""
    problems += [
        line
        for line in text.splitlines()
        if ("✖" in line or "prism/errors#" in line) and "/__prism_ready__" not in line
    ]
    if problems:
        pytest.fail("contract violations:\n" + "\n".join(problems), pytrace=False)


def pulls_fixture(site: Site) -> None:
    """Seven pull requests: five open (one a draft, one from a fork with a branch named like
    one of ours), two closed (one merged)."""
    fake = site.fake
    for number in (1, 2, 3, 4):
        fake.add_pull(number, f"{number}" * 40, title=f"Change {number}", user="alice")
    fake.add_pull(5, "5" * 40, draft=True, user="bob", head_ref="alloy/approve-deploy")
    fake.add_pull(6, "6" * 40, merged=True, merge_commit_sha="7" * 40)
    fake.add_pull(
        8, "8" * 40, head_repo_full_name="forker/Hello-World", head_ref="topic-1", user="mallory"
    )
    fake.add_pull(9, "9" * 40, state="closed")
    fake.add_pull(10, "a" * 40, title="Change 10", user="alice")  # open, newest


# ---- listing


def test_open_pull_requests_are_listed_newest_first_over_every_page(site: Site) -> None:
    pulls_fixture(site)
    client = site.client(per_page=2)

    found = client.open_pulls()

    assert [p.number for p in found] == [10, 8, 5, 4, 3, 2, 1]
    draft = next(p for p in found if p.number == 5)
    assert draft == PullRequest(
        number=5,
        title="Pull request 5",
        author="bob",
        head_ref="alloy/approve-deploy",
        head_sha="5" * 40,
        head_repo=f"{OWNER}/{NAME}",
        base_ref="main",
        html_url=f"{site.github.api_url}/{OWNER}/{NAME}/pull/5",
        draft=True,
    )
    fork = next(p for p in found if p.number == 8)
    assert (fork.head_repo, fork.head_ref, fork.author) == (
        "forker/Hello-World",
        "topic-1",
        "mallory",
    )
    gets = site.to_pulls("GET")
    assert len(gets) == 4  # 7 open at 2 a page, each page once, following `Link: rel=next`
    assert [g.query.get("page", ["1"])[-1] for g in gets] == ["1", "2", "3", "4"]
    assert all(g.query["state"] == ["open"] and g.query["per_page"] == ["2"] for g in gets)
    assert all(g.headers["authorization"] == f"Bearer {site.github.token}" for g in gets)

    closed = client.pulls(state="closed")
    assert [p.number for p in closed] == [9, 6]
    assert len(client.pulls(state="all")) == 9


def test_the_head_filter_names_the_owner_and_keeps_a_forks_branch_out(site: Site) -> None:
    pulls_fixture(site)
    client = site.client()

    [ours] = client.pulls(head="topic-1")
    assert (ours.number, ours.head_repo) == (1, f"{OWNER}/{NAME}")
    [theirs] = client.pulls(head="forker:topic-1")
    assert theirs.number == 8
    assert client.find_open("alloy/approve-deploy", base="main") == next(
        p for p in client.open_pulls() if p.number == 5
    )
    assert client.find_open("alloy/approve-deploy", base="production") is None
    assert client.find_open("topic-6") is None  # merged, so not open
    assert client.pulls(head="topic-6", state="closed")[0].number == 6

    heads = [r.query.get("head") for r in site.to_pulls("GET")]
    assert heads[:2] == [[f"{OWNER}:topic-1"], ["forker:topic-1"]]


def test_a_secondary_rate_limit_is_waited_out_through_the_transport(site: Site) -> None:
    pulls_fixture(site)
    site.fake.fail_next_secondary_rate_limit("GET", PULLS, retry_after=3)
    client = site.client()

    assert len(client.open_pulls()) == 7

    assert site.clock.slept == [3.5]  # Retry-After, plus half the second of jitter
    assert site.transports[0].waits.taken == [("secondary", 3.5)]


def test_a_next_page_off_the_api_is_not_followed(site: Site) -> None:
    # A Link header pointing elsewhere would carry the token there: refused, never requested.
    site.fake.fail_next(
        "GET",
        PULLS,
        200,
        headers={"Link": '<https://elsewhere.example/repos/o/r/pulls?page=2>; rel="next"'},
        body=[],
    )
    with pytest.raises(PullsError, match=r"the next page is off the API"):
        site.client().open_pulls()
    assert len(site.recorders[0].answers) == 1


# ---- opening


def test_a_pull_request_is_opened_from_a_pushed_branch(site: Site) -> None:
    site.fake.add_pull(1, "1" * 40)
    site.fake.add_branch("alloy/approve-deploy-7f3a", SHA)
    client = site.client()

    opened = client.open(
        head="alloy/approve-deploy-7f3a",
        base="main",
        title="Approve deploy",
        body="Approval written by alloy ui.",
    )

    [pull] = [p for p in site.fake.pulls() if p.number == opened.number]
    assert opened == Opened(2, f"{site.github.api_url}/{OWNER}/{NAME}/pull/2", created=True)
    assert (pull.head_ref, pull.head_sha, pull.head_repo) == (
        "alloy/approve-deploy-7f3a",
        SHA,
        f"{OWNER}/{NAME}",
    )
    assert (pull.base_ref, pull.title, pull.body) == ("main", "Approve deploy", opened_body())
    assert (pull.state, pull.draft, pull.user) == ("open", False, "github-actions[bot]")
    [post] = site.to_pulls("POST")
    assert post.json == {
        "title": "Approve deploy",
        "head": "alloy/approve-deploy-7f3a",
        "base": "main",
        "body": "Approval written by alloy ui.",
    }
    assert client.find_open("alloy/approve-deploy-7f3a") == PullRequest(
        2,
        "Approve deploy",
        "github-actions[bot]",
        "alloy/approve-deploy-7f3a",
        SHA,
        f"{OWNER}/{NAME}",
        "main",
        opened.html_url,
        draft=False,
    )


def opened_body() -> str:
    return "Approval written by alloy ui."


def test_opening_twice_returns_the_pull_request_already_open(site: Site) -> None:
    site.fake.add_branch("alloy/request-x", SHA)
    client = site.client()
    first = client.open(head="alloy/request-x", base="main", title="Request x")
    site.expected_422 = 1  # GitHub's "A pull request already exists for Codertocat:..."

    again = site.client().open(head="alloy/request-x", base="main", title="Request x again")

    assert first.created is True
    assert again == Opened(first.number, first.html_url, created=False)
    assert [p.number for p in site.fake.pulls()] == [first.number]
    posts = site.to_pulls("POST")
    assert [p.status for p in posts] == [201, 422]  # each POST sent once, never repeated
    assert [r.status for r in site.to_pulls("GET")] == [200]  # then the open one was found


def test_a_lost_answer_to_the_create_is_looked_up_not_sent_again(site: Site) -> None:
    site.fake.add_branch("alloy/new-intent-y", SHA)
    client = site.client()
    site.recorders[0].lose_answer("POST", r"/pulls$")  # GitHub did it; the answer got lost

    opened = client.open(head="alloy/new-intent-y", base="main", title="New intent y")

    [pull] = site.fake.pulls()
    assert opened == Opened(pull.number, opened.html_url, created=False)
    assert len(site.to_pulls("POST")) == 1
    assert site.clock.slept == []


def test_a_server_error_on_the_create_is_not_repeated(site: Site) -> None:
    site.fake.add_branch("alloy/new-intent-z", SHA)
    site.fake.fail_next("POST", PULLS, 502, body={"message": "Server Error"})
    client = site.client()

    with pytest.raises(PullsError) as failed:
        client.open(head="alloy/new-intent-z", base="main", title="New intent z")

    assert str(failed.value) == f"POST /repos/{OWNER}/{NAME}/pulls: 502 Server Error"
    assert failed.value.status == 502
    assert len(site.to_pulls("POST")) == 1  # not repeated by the transport nor by the adapter
    assert site.fake.pulls() == []
    assert client.open(head="alloy/new-intent-z", base="main", title="z").created is True


def test_githubs_other_refusals_reach_the_caller_as_one_line(site: Site) -> None:
    site.fake.add_branch("alloy/x", SHA)
    site.expected_422 = 2
    client = site.client()

    with pytest.raises(PullsError) as same:
        client.open(head="main", base="main", title="nothing")
    assert str(same.value) == (
        f"POST /repos/{OWNER}/{NAME}/pulls: 422 Validation Failed: No commits between main and main"
    )
    with pytest.raises(PullsError) as unknown:
        client.open(head="alloy/x", base="release", title="to nowhere")
    assert str(unknown.value).endswith("422 Validation Failed: base invalid")
    assert site.fake.pulls() == []


# ---- GitHub Enterprise


@pytest.fixture
def enterprise(github: GitHubRig) -> Iterator[tuple[str, list[str]]]:
    """A front serving the API under /api/v3, as GitHub Enterprise Server does."""
    seen: list[str] = []
    handler = type("Front", (_Front,), {"upstream": github.api_url, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}{PREFIX}"
    github.fake.public_url = base  # GitHub's URLs (pages, html_url) carry the prefix
    try:
        yield base, seen
    finally:
        server.shutdown()
        server.server_close()


def test_an_enterprise_base_url_keeps_its_prefix(
    site: Site, enterprise: tuple[str, list[str]]
) -> None:
    base, seen = enterprise
    pulls_fixture(site)
    site.fake.add_branch("alloy/approve-z", SHA)
    client = site.client(api=base, per_page=3)

    assert [p.number for p in client.open_pulls()] == [10, 8, 5, 4, 3, 2, 1]
    opened = client.open(head="alloy/approve-z", base="main", title="Approve z")

    assert opened.number == 11
    assert opened.html_url == f"{base}/{OWNER}/{NAME}/pull/11"
    assert len(seen) == 4  # three pages and the create, each through the prefix
    assert all(path.startswith(f"{PREFIX}/repos/{OWNER}/{NAME}/pulls") for path in seen), seen


# ---- errors and credentials


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "401 Bad credentials (GitHub refused the token: check GITHUB_TOKEN)"),
        (
            403,
            (
                "403 Resource not accessible by integration (the token may not do this: it needs "
                "pull requests write access)"
            ),
        ),
        (404, "404 Not Found (no repository Codertocat/Nope at "),
    ],
)
def test_refusals_are_one_clear_line_without_the_token(
    site: Site, status: int, expected: str
) -> None:
    site.fake.add_branch("alloy/a", SHA)
    repository = f"{OWNER}/{NAME}"
    if status == 401:
        token = SECRET  # unknown to the fake
    else:
        site.fake.add_token(SECRET)
        token = SECRET
    if status == 403:
        site.fake.fail_next(
            "POST", PULLS, 403, body={"message": "Resource not accessible by integration"}
        )
    if status == 404:
        repository = f"{OWNER}/Nope"
    client = site.client(token=token, repository=repository)

    with pytest.raises(PullsError) as failed:
        client.open(head="alloy/a", base="main", title="A")

    message = str(failed.value)
    assert failed.value.status == status
    assert message.startswith(f"POST /repos/{repository}/pulls: {expected}")
    assert "\n" not in message
    assert SECRET not in message
    assert "Traceback" not in message
    assert failed.value.__cause__ is None  # nothing chained: one line, no traceback below it
    assert failed.value.__context__ is None or failed.value.__suppress_context__
    if status != 403:  # the listing says the same
        with pytest.raises(PullsError) as listing:
            client.open_pulls()
        assert str(listing.value).startswith(f"GET /repos/{repository}/pulls: {expected}")
        assert SECRET not in str(listing.value)


def test_without_a_token_opening_is_refused_before_any_request(site: Site) -> None:
    client = site.client(env={})
    with pytest.raises(PullsError, match=r"no token; set GITHUB_TOKEN \(or GH_TOKEN\)"):
        client.open(head="alloy/a", base="main", title="A")
    app_only = site.client(env={"ALLOY_GITHUB_APP_ID": "42", "ALLOY_GITHUB_APP_KEY": "pem"})
    with pytest.raises(PullsError, match=r"GitHub App credentials .* are not used here"):
        app_only.open(head="alloy/a", base="main", title="A")
    assert site.fake.requests == []
    # Listing goes anonymously (GitHub answers public repositories); the fake wants a token.
    with pytest.raises(PullsError) as anonymous:
        client.open_pulls()
    assert str(anonymous.value) == (
        f"GET /repos/{OWNER}/{NAME}/pulls: 401 Requires authentication "
        "(cannot authenticate: no token; set GITHUB_TOKEN (or GH_TOKEN))"
    )
    assert "authorization" not in site.fake.requests[0].headers


def test_the_token_comes_from_the_environment_as_for_the_forge(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"  # a ~/.netrc entry for the host never replaces the token
    netrc.write_text("machine 127.0.0.1 login someone password netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert token_from_env({"GITHUB_TOKEN": "a", "GH_TOKEN": "b"}) == "a"
    assert token_from_env({"GH_TOKEN": "b"}) == "b"
    assert token_from_env({"GITHUB_TOKEN": "", "ALLOY_GITHUB_APP_ID": "1"}) is None
    site.fake.add_token(SECRET, "octocat")
    site.fake.add_branch("alloy/env", SHA)

    opened = site.client(env={"GH_TOKEN": SECRET}).open(head="alloy/env", base="main", title="E")

    [pull] = site.fake.pulls()
    assert (pull.number, pull.user) == (opened.number, "octocat")
    assert site.to_pulls("POST")[0].headers["authorization"] == f"Bearer {SECRET}"
    with pytest.raises(PullsError, match=r"401 Requires authentication"):
        site.client(env={}).open_pulls()  # anonymous stays anonymous
    assert "authorization" not in site.to_pulls("GET")[-1].headers


def test_the_functions_for_one_call(site: Site) -> None:
    pulls_fixture(site)
    site.fake.add_branch("alloy/one", SHA)
    api, token = site.github.api_url, site.github.token

    assert len(list_open_pulls(f"{OWNER}/{NAME}", api=api, token=token)) == 7
    opened = open_pull(
        f"{OWNER}/{NAME}",
        head="alloy/one",
        base="main",
        title="One",
        draft=True,
        api=api,
        token=token,
    )
    assert opened.created is True
    assert next(p for p in site.fake.pulls() if p.number == opened.number).draft is True


def test_an_unreachable_api_is_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = GitHubPulls(
        f"{OWNER}/{NAME}", api=f"http://127.0.0.1:{port}", token=SECRET, transport=GitHubTransport()
    )
    with pytest.raises(PullsError) as failed:
        client.open_pulls()
    message = str(failed.value)
    assert message.startswith(f"GET /repos/{OWNER}/{NAME}/pulls: cannot reach 127.0.0.1:{port} (")
    assert "Connection refused" in message
    assert "\n" not in message
    assert SECRET not in message
    with pytest.raises(PullsError, match=r"cannot reach"):
        client.open(head="a", base="main", title="t")  # and the look after it fails quietly


@pytest.mark.parametrize(
    "repository", ["nope", "a/b/c", "/b", "a/", "a/..", "../b", "a b/c", "-a/b"]
)
def test_a_repository_is_owner_slash_name(repository: str) -> None:
    with pytest.raises(PullsError, match=r"write it as OWNER/NAME"):
        GitHubPulls(repository, token="")


def test_an_api_must_be_an_http_url() -> None:
    with pytest.raises(PullsError, match=r"not an http\(s\) URL"):
        GitHubPulls(f"{OWNER}/{NAME}", api="ghe.example.com/api/v3", token="")


# ---- remote URLs

GHE = "https://ghe.example.com/api/v3"


@pytest.mark.parametrize(
    ("url", "api", "expected"),
    [
        ("https://github.com/o/r", None, ("o", "r", "github.com", DEFAULT_API)),
        ("https://github.com/o/r.git", None, ("o", "r", "github.com", DEFAULT_API)),
        ("https://github.com/o/r/", None, ("o", "r", "github.com", DEFAULT_API)),
        ("https://GitHub.com/Octo-Org/my.repo.git", None, ("Octo-Org", "my.repo", "github.com", DEFAULT_API)),
        ("git@github.com:o/r.git", None, ("o", "r", "github.com", DEFAULT_API)),
        ("github.com:o/r", None, ("o", "r", "github.com", DEFAULT_API)),
        ("ssh://git@github.com/o/r", None, ("o", "r", "github.com", DEFAULT_API)),
        ("ssh://git@github.com:22/o/r.git", None, ("o", "r", "github.com", DEFAULT_API)),
        ("https://x-access-token:ghs_abc@github.com/o/r.git", None, ("o", "r", "github.com", DEFAULT_API)),
        ("https://ghe.example.com/o/r", GHE, ("o", "r", "ghe.example.com", GHE)),
        ("git@ghe.example.com:o/r.git", GHE, ("o", "r", "ghe.example.com", GHE)),
        ("ssh://git@ghe.example.com:2222/o/r", GHE + "/", ("o", "r", "ghe.example.com", GHE)),
        ("https://github.com/o/r", GHE, ("o", "r", "github.com", DEFAULT_API)),
        ("https://acme.ghe.com/o/r", "https://api.acme.ghe.com", ("o", "r", "acme.ghe.com", "https://api.acme.ghe.com")),
    ],
)  # fmt: skip
def test_a_github_remote_names_its_repository_and_api(
    url: str, api: str | None, expected: tuple[str, str, str, str]
) -> None:
    found = parse_remote(url, api=api)
    assert found == GitHubRemote(*expected)
    assert found.repository == f"{expected[0]}/{expected[1]}"
    assert "ghs_abc" not in repr(found)


@pytest.mark.parametrize(
    ("url", "api"),
    [
        ("https://ghe.example.com/o/r", None),  # an Enterprise host only when its API is given
        ("https://gitlab.com/o/r.git", None),
        ("https://github.com.evil.example/o/r", None),
        ("https://github.com/o", None),
        ("https://github.com/o/r/tree/main", None),
        ("https://github.com/o/r?x=1", None),
        ("file:///srv/git/r.git", None),
        ("/srv/git/o/r.git", None),
        ("../o/r", None),
        ("", None),
        ("https://other.example.com/o/r", GHE),
        ("https://github.com/o/..", None),
    ],
)
def test_other_remotes_are_not_github(url: str, api: str | None) -> None:
    assert parse_remote(url, api=api) is None


# ---- the adapter stays out of Foundry's reach


def test_importing_the_adapter_loads_no_foundry_and_no_github3() -> None:
    code = (
        "import sys, controllers.github_pulls, controllers.remote_view; "
        "print(','.join(m for m in ('foundry', 'github3', 'controllers.forge', "
        "'controllers.github._client') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ---- the fake's pull-request endpoints, through Prism


def test_the_fake_creates_and_lists_pulls_within_the_contract(github: GitHubRig) -> None:
    api = f"{github.api_url}/repos/{OWNER}/{NAME}/pulls"
    fake = github.fake
    fake.add_branch("feature", SHA)
    fake.add_repo("forker/Hello-World", fork=True)
    fake.add_branch("feature", "f" * 40, repo="forker/Hello-World")
    with requests.Session() as http:
        http.headers.update(
            {"Authorization": f"token {github.token}", "Accept": "application/vnd.github+json"}
        )

        def post(body: dict[str, Any]) -> requests.Response:
            response = http.post(api, json=body, timeout=30)
            assert "problem+json" not in response.headers.get("Content-Type", ""), response.text
            assert not response.headers.get("sl-violations"), response.headers["sl-violations"]
            return response

        created = post({"title": "F", "head": "feature", "base": "main", "draft": True})
        assert created.status_code == 201, created.text
        assert created.headers["Location"] == created.json()["url"]
        assert (created.json()["number"], created.json()["draft"]) == (1, True)
        fork = post({"title": "F from a fork", "head": "forker:feature", "base": "main"})
        assert fork.status_code == 201, fork.text
        assert fork.json()["head"]["repo"]["full_name"] == "forker/Hello-World"

        refusals = [
            ({"title": "F", "head": "feature", "base": "main"}, "A pull request already exists for Codertocat:feature."),
            ({"title": "F", "head": "main", "base": "main"}, "No commits between main and main"),
            ({"title": "F", "head": "nope", "base": "main"}, "head invalid"),
            ({"title": "F", "head": "feature", "base": "nope"}, "base invalid"),
            ({"head": "feature", "base": "main"}, "title missing_field"),
        ]  # fmt: skip
        for body, reason in refusals:
            refused = post(body)
            assert refused.status_code == 422, (body, refused.text)
            assert refused.json()["message"] == "Validation Failed"
            [error] = refused.json()["errors"]
            words = error.get("message") or f"{error['field']} {error['code']}"
            assert words == reason
        # Prism stops what GitHub's schema forbids before the fake sees it.
        assert http.post(api, json={"title": "F", "base": "main"}, timeout=30).status_code == 422
        assert len(fake.requests_to("POST", PULLS)) == 2 + len(refusals)

        listed = http.get(api, params={"head": f"{OWNER}:feature"}, timeout=30)
        assert listed.status_code == 200
        assert not listed.headers.get("sl-violations"), listed.headers["sl-violations"]
        assert [p["number"] for p in listed.json()] == [1]
        # Without the owner GitHub ignores `head` (so does the fake): both are listed.
        assert [p["number"] for p in http.get(api, params={"head": "feature"}).json()] == [2, 1]
        page = http.get(api, params={"per_page": 1, "direction": "asc"}, timeout=30)
        assert [p["number"] for p in page.json()] == [1]
        assert 'rel="next"' in page.headers["Link"]
        assert json.loads(http.get(api, params={"state": "closed"}).text) == []
    assert [p.number for p in fake.pulls()] == [1, 2]
