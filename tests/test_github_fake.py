"""The fake GitHub behind Prism: real clients against GitHub's own contract.

These prove the rig works (github3.py drives it as it would drive GitHub) and keep the fake
honest: Prism rejects a request GitHub would reject (422) and a response GitHub would never send
(500), and faults injected by a test reach the client as GitHub would send them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import github3
import pytest
import requests
from github3.checks import CheckRun
from github3.structs import GitHubIterator

from tests import github_prism
from tests.github_fake import SECONDARY_RATE_LIMIT_BODY
from tests.github_prism import GitHubRig

SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"  # PR #2's head in the webhook examples
OWNER, NAME = "Codertocat", "Hello-World"


@pytest.fixture
def http(github: GitHubRig) -> Iterator[requests.Session]:
    """A plain requests session on Prism with the fake's token."""
    with requests.Session() as session:
        session.headers.update(
            {"Authorization": f"token {github.token}", "Accept": "application/vnd.github+json"}
        )
        yield session


def annotation(path: str, line: int, level: str = "warning") -> dict[str, Any]:
    return {
        "path": path,
        "start_line": line,
        "end_line": line,
        "annotation_level": level,
        "message": f"{path}:{line} needs a look",
        "title": "review",
    }


def test_github3_check_run_created_updated_in_two_batches_and_listed(github: GitHubRig) -> None:
    gh = github.github3()
    repo = gh.repository(OWNER, NAME)
    run = repo.create_check_run(
        name="alloy review",
        head_sha=SHA,
        status="in_progress",
        output={
            "title": "Review",
            "summary": "first pass",
            "annotations": [annotation("a.yaml", i) for i in range(1, 51)],
        },
    )
    assert run.status == "in_progress"
    assert run.output.annotations_count == 50
    assert run.update(
        conclusion="failure",
        output={
            "title": "Review",
            "summary": "done",
            "text": "details",
            "annotations": [annotation("b.yaml", 7, "failure")],
        },
    )

    stored = github.fake.check_run(run.id)
    assert (stored.status, stored.conclusion) == ("completed", "failure")
    assert (stored.output_title, stored.output_summary, stored.output_text) == (
        "Review",
        "done",
        "details",
    )
    assert len(stored.annotations) == 51  # appended across updates, as on GitHub
    assert stored.annotations[-1]["path"] == "b.yaml"

    # Annotations come back page by page through Prism (Link headers at the proxy's URL).
    listed = list(run.output.annotations())  # follows annotations_url: the proxy
    assert [a.path for a in listed].count("a.yaml") == 50
    assert listed[-1].annotation_level == "failure"

    repo.create_check_run(
        name="other", head_sha=SHA, conclusion="success", output={"title": "Other", "summary": "ok"}
    )
    url = f"{github.api_url}/repos/{OWNER}/{NAME}/commits/{SHA}/check-runs"
    runs = list(
        GitHubIterator(-1, url, CheckRun, gh.session, params={"per_page": 1}, list_key="check_runs")
    )
    assert sorted(r.name for r in runs) == ["alloy review", "other"]
    only = list(
        GitHubIterator(
            -1,
            url,
            CheckRun,
            gh.session,
            params={"check_name": "alloy review"},
            list_key="check_runs",
        )
    )
    assert [(r.id, r.conclusion) for r in only] == [(run.id, "failure")]
    # Every call went through Prism and reached the fake.
    assert github.fake.requests_to("PATCH", rf"/check-runs/{run.id}$")[0].json["conclusion"] == (
        "failure"
    )


def test_github3_comment_created_and_edited_and_reviews_listed(github: GitHubRig) -> None:
    github.fake.add_pull(2, SHA, user="Codertocat")
    github.fake.add_review(2, "alice", "APPROVED")
    github.fake.add_review(2, "bob", "CHANGES_REQUESTED", commit_id="1" * 40)
    gh = github.github3()
    pull = gh.pull_request(OWNER, NAME, 2)
    assert (pull.head.sha, pull.base.ref) == (SHA, "main")

    comment = pull.create_comment("first")
    assert comment.edit("second")
    assert [c.body for c in pull.issue_comments()] == ["second"]
    stored = github.fake.comments(issue_number=2)
    assert [(c.body, c.history, c.user) for c in stored] == [
        ("second", ["first"], "github-actions[bot]")
    ]

    reviews = [(r.user.login, r.state, r.commit_id) for r in pull.reviews()]
    assert reviews == [("alice", "APPROVED", SHA), ("bob", "CHANGES_REQUESTED", "1" * 40)]


def test_the_other_endpoints_answer_within_the_contract(
    github: GitHubRig, http: requests.Session
) -> None:
    fake, api = github.fake, github.api_url
    repo = f"{api}/repos/{OWNER}/{NAME}"
    fake.add_pull(
        3,
        "a" * 40,
        merged=True,
        merge_commit_sha="b" * 40,
        head_repo_full_name="forker/Hello-World",
    )
    fake.add_team_member(OWNER, "maintainers", "alice")

    assert http.get(repo).json()["full_name"] == f"{OWNER}/{NAME}"
    assert http.get(f"{api}/rate_limit").json()["resources"]["core"]["limit"] == 5000
    merged = http.get(f"{repo}/commits/{'b' * 40}/pulls").json()
    assert [(p["number"], p["head"]["repo"]["fork"]) for p in merged] == [(3, True)]
    assert http.get(f"{repo}/commits/{'a' * 40}/pulls").json()[0]["number"] == 3
    assert http.get(f"{repo}/commits/{'c' * 40}/pulls").json() == []

    for state, context in [("pending", "ci"), ("success", "ci"), ("failure", "lint")]:
        response = http.post(
            f"{repo}/statuses/{SHA}",
            json={"state": state, "context": context, "target_url": "https://ci.example/1"},
        )
        assert response.status_code == 201, response.text
    combined = http.get(f"{repo}/commits/{SHA}/status").json()
    assert (combined["state"], combined["total_count"]) == ("failure", 2)
    assert len(http.get(f"{repo}/commits/{SHA}/statuses").json()) == 3
    assert [s.state for s in fake.statuses(sha=SHA)] == ["pending", "success", "failure"]

    member = http.get(f"{api}/orgs/{OWNER}/teams/maintainers/memberships/alice")
    assert member.json()["state"] == "active"
    assert http.get(f"{api}/orgs/{OWNER}/teams/maintainers/memberships/bob").status_code == 404


def test_app_jwt_gets_an_installation_token_that_then_works(github: GitHubRig) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    github.fake.app_public_key = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    gh = github3.GitHub()
    gh.session.base_url = github.api_url
    # github3.py puts app_id in the JWT's `iss` as given; PyJWT 2.10+ refuses a non-string iss
    # ("Issuer (iss) must be a string"), so the id goes in as a string (GitHub takes either).
    app_id = str(github.fake.app_id)
    gh.login_as_app(pem, app_id)
    installation = gh.app_installation_for_repository(OWNER, NAME)
    gh.login_as_app_installation(pem, app_id, installation.id)
    run = gh.repository(OWNER, NAME).create_check_run(name="as app", head_sha=SHA)
    assert run.app.id == github.fake.app_id

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(github3.exceptions.AuthenticationFailed):
        gh.login_as_app_installation(other, app_id, installation.id)


def test_unknown_token_gets_401_with_githubs_error_body(github: GitHubRig) -> None:
    response = requests.get(
        f"{github.api_url}/repos/{OWNER}/{NAME}",
        headers={"Authorization": "token nope"},
        timeout=30,
    )
    assert response.status_code == 401
    assert response.json()["message"] == "Bad credentials"
    assert requests.get(f"{github.api_url}/rate_limit", timeout=30).status_code == 401


def test_rate_limit_headers_etag_and_304_that_costs_no_quota(
    github: GitHubRig, http: requests.Session
) -> None:
    url = f"{github.api_url}/repos/{OWNER}/{NAME}"
    first = http.get(url)
    assert first.headers["X-RateLimit-Limit"] == "5000"
    assert first.headers["X-RateLimit-Remaining"] == "4999"
    assert first.headers["X-RateLimit-Resource"] == "core"
    again = http.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.headers["X-RateLimit-Remaining"] == "4999"
    assert github.fake.rate_limit_remaining == 4999


def test_invalid_request_is_rejected_by_prism_before_the_fake(
    github: GitHubRig, http: requests.Session
) -> None:
    url = f"{github.api_url}/repos/{OWNER}/{NAME}/check-runs"
    response = http.post(url, json={"name": "no head sha"})
    assert response.status_code == 422
    assert "head_sha" in response.text
    too_many = http.post(
        url,
        json={
            "name": "x",
            "head_sha": SHA,
            "output": {"title": "t", "summary": "s", "annotations": [annotation("a", 1)] * 51},
        },
    )
    assert too_many.status_code == 422
    assert github.fake.requests_to("POST", "/check-runs$") == []


def test_the_fake_enforces_githubs_limits_itself(github: GitHubRig) -> None:
    # Straight to the fake (Prism would stop these first): the same limits, GitHub's 422.
    url = f"{github.direct_url}/repos/{OWNER}/{NAME}/check-runs"
    headers = {"Authorization": f"token {github.token}"}
    for output in (
        {"title": "t", "summary": "s", "annotations": [annotation("a", 1)] * 51},
        {"title": "t", "summary": "s" * 65536},
        {"title": "t", "summary": "s", "text": "t" * 65536},
    ):
        response = requests.post(
            url, json={"name": "x", "head_sha": SHA, "output": output}, headers=headers, timeout=30
        )
        assert response.status_code == 422, response.text
    assert github.fake.check_runs() == []


def test_a_response_off_githubs_schema_is_turned_into_500_by_prism(
    github: GitHubRig, http: requests.Session
) -> None:
    github.fake.fail_next("GET", r"^/repos/[^/]+/[^/]+$", 200, body={"id": 1})
    response = http.get(f"{github.api_url}/repos/{OWNER}/{NAME}")
    assert response.status_code == 500
    assert "full_name" in response.text  # Prism names the missing required property
    assert http.get(f"{github.api_url}/repos/{OWNER}/{NAME}").status_code == 200


def test_an_undeclared_2xx_is_a_500_too(github: GitHubRig, http: requests.Session) -> None:
    github.fake.fail_next("POST", "/check-runs$", 200, body={"id": 1})
    response = http.post(
        f"{github.api_url}/repos/{OWNER}/{NAME}/check-runs", json={"name": "x", "head_sha": SHA}
    )
    assert response.status_code == 500


def test_secondary_rate_limit_and_5xx_reach_the_client_as_github_sends_them(
    github: GitHubRig, http: requests.Session
) -> None:
    url = f"{github.api_url}/repos/{OWNER}/{NAME}/check-runs"
    github.fake.fail_next_secondary_rate_limit("POST", "/check-runs$", retry_after=1)
    github.fake.fail_next("POST", "/check-runs$", 502)
    github.fake.fail_next("POST", "/check-runs$", 503, times=2)
    limited = http.post(url, json={"name": "x", "head_sha": SHA})
    assert limited.status_code == 403
    assert limited.headers["Retry-After"] == "1"
    assert limited.json() == SECONDARY_RATE_LIMIT_BODY
    answers = [http.post(url, json={"name": "x", "head_sha": SHA}) for _ in range(4)]
    assert [a.status_code for a in answers] == [502, 503, 503, 201]
    assert len(github.fake.check_runs()) == 1
    # The operation declares only 201: Prism lets an undeclared non-2xx through unchecked and
    # says so in a Warning (an undeclared 2xx would be a 500).
    assert '"severity":"Warning"' in answers[0].headers["sl-violations"]
    assert "sl-violations" not in answers[-1].headers


def test_primary_rate_limit_reaches_the_client_with_its_headers(
    github: GitHubRig, http: requests.Session
) -> None:
    github.fake.fail_next_primary_rate_limit("POST", "/check-runs$", reset_in=60)
    response = http.post(
        f"{github.api_url}/repos/{OWNER}/{NAME}/check-runs", json={"name": "x", "head_sha": SHA}
    )
    assert response.status_code == 403
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) > time.time()
    assert "rate limit" in response.json()["message"]

    github.fake.set_rate_limit(remaining=0)  # the quota itself runs out
    exhausted = http.get(f"{github.api_url}/repos/{OWNER}/{NAME}")
    assert (exhausted.status_code, exhausted.headers["X-RateLimit-Remaining"]) == (403, "0")


@pytest.mark.parametrize(
    "accept",
    [
        "application/vnd.github+json",
        "application/json",
        "application/vnd.github.v3.full+json",
        "application/vnd.github.antiope-preview+json",
        "application/vnd.github.machine-man-preview+json",
    ],
)
def test_prism_proxy_takes_any_accept_type(github: GitHubRig, accept: str) -> None:
    response = requests.get(
        f"{github.api_url}/repos/{OWNER}/{NAME}",
        timeout=30,
        headers={"Authorization": f"token {github.token}", "Accept": accept},
    )
    assert response.status_code == 200


def test_check_runs_filter_latest_by_default_and_all_on_request(
    github: GitHubRig, http: requests.Session
) -> None:
    url = f"{github.api_url}/repos/{OWNER}/{NAME}"
    ids = [
        http.post(f"{url}/check-runs", json={"name": "alloy", "head_sha": SHA}).json()["id"]
        for _ in range(2)
    ]
    latest = http.get(f"{url}/commits/{SHA}/check-runs").json()
    assert [r["id"] for r in latest["check_runs"]] == [ids[1]]
    every = http.get(f"{url}/commits/{SHA}/check-runs", params={"filter": "all"}).json()
    assert (every["total_count"], {r["id"] for r in every["check_runs"]}) == (2, set(ids))


def test_concurrent_clients_get_distinct_comments(
    github: GitHubRig, http: requests.Session
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    github.fake.add_issue(5)
    url = f"{github.api_url}/repos/{OWNER}/{NAME}/issues/5/comments"
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: http.post(url, json={"body": f"c{i}"}), range(16)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 16
    assert sorted(c.body for c in github.fake.comments(issue_number=5)) == sorted(
        f"c{i}" for i in range(16)
    )


def test_spec_cleanup_copy_is_made_once_per_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "spec.json"
    source.write_text(json.dumps({"openapi": "3.0.3", "paths": {}}), encoding="utf-8")
    assert github_prism.cleaned_spec(tmp_path / "cache", source) == source  # no edits: as is

    calls: list[int] = []

    def edit(spec: dict[str, Any]) -> None:
        calls.append(1)
        spec["servers"] = [{"url": "/"}]

    monkeypatch.setattr(github_prism, "EDITS", [edit])
    first = github_prism.cleaned_spec(tmp_path / "cache", source)
    assert github_prism.cleaned_spec(tmp_path / "cache", source) == first
    assert calls == [1]
    assert json.loads(first.read_text(encoding="utf-8"))["servers"] == [{"url": "/"}]
    source.write_text(json.dumps({"openapi": "3.0.3", "paths": {"/x": {}}}), encoding="utf-8")
    assert github_prism.cleaned_spec(tmp_path / "cache", source) != first
