"""Route tests of `alloy ui` (Starlette's test client) on a real repository whose traces, claims
and records were made by real `foundry reconcile` passes (tests/ui_support.py): every view and
its JSON twin, every action (the branch and the document it writes, the default branch
untouched), and every refusal (CSRF, a missing token, a read-only server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from alloy.web import Security, create_app, open_repositories
from tests.conftest import PROJECT, GitRepo, git, run_cli
from tests.ui_support import UiWorld, make_ui_world

KEY = "remote"  # the repository's key: the remote's directory name, remote.git
TOKEN = "s3cret-token-for-the-tests"


def _client(world: UiWorld, tmp_path: Path, **options: Any) -> TestClient:
    states = open_repositories([str(world.bare)], tmp_path / "ui-cache")
    options.setdefault("security", Security(identity="alice"))
    app = create_app(states, refresh_in_background=False, **options)
    return TestClient(app)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> UiWorld:
    """One repository for the tests that only read (building it takes real reconcile passes)."""
    tmp = tmp_path_factory.mktemp("ui")
    path = tmp / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    repo = GitRepo(path)
    repo.write({".alloy/alloy.yaml": PROJECT, ".alloy/intents/.gitkeep": ""})
    repo.commit("init")
    return make_ui_world(repo, tmp)


@pytest.fixture(scope="module")
def client(shared: UiWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with _client(shared, tmp_path_factory.mktemp("cache")) as c:
        yield c


@pytest.fixture
def fresh(ui_world: UiWorld, tmp_path: Path) -> Iterator[TestClient]:
    """A client on a repository of its own, for tests that write."""
    with _client(ui_world, tmp_path) as c:
        yield c


def _json(c: TestClient, url: str) -> dict[str, Any]:
    response = c.get(url, params={"format": "json"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    data: dict[str, Any] = response.json()
    assert data["schemaVersion"] == 1
    return data


def _html(c: TestClient, url: str) -> str:
    response = c.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def _rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in data["intents"]}


# -- views ------------------------------------------------------------------------------------


def test_overview_lists_every_intent_with_state_evidence_and_attention_first(
    client: TestClient, shared: UiWorld
) -> None:
    data = _json(client, "/")
    rows = _rows(data)
    assert set(rows) == {"old-docs", "docs-build", "flaky", "deploy", "planned"}
    assert data["total"] == 5
    # needs attention first: the failed execution, then the one waiting on a person
    order = [row["name"] for row in data["intents"]]
    assert order[:2] == ["flaky", "deploy"], order
    assert rows["flaky"]["attention"] == "failed"
    assert rows["deploy"]["attention"] == "waiting-on-person"
    assert rows["docs-build"]["attention"] is None
    assert rows["flaky"]["lastExecution"]["id"] == shared.executions["flaky"]
    assert rows["flaky"]["lastExecution"]["status"] == "failed"
    assert rows["docs-build"]["lastExecution"]["status"] == "succeeded"
    assert rows["planned"]["lastExecution"] is None
    assert {e["acceptance"]: e["state"] for e in rows["docs-build"]["evidence"]} == {
        "AC-1": "fresh",
        "AC-2": "unlinked",
    }
    assert {e["acceptance"]: e["state"] for e in rows["flaky"]["evidence"]} == {"AC-1": "missing"}
    waiting = rows["deploy"]["waiting"]
    assert [(w["kind"], w["block"], w["index"]) for w in waiting] == [("approval", "ship", 0)]
    assert rows["docs-build"]["owners"] == ["alice", "bob"]
    page = _html(client, "/")
    for name in rows:
        assert f"/r/{KEY}/intents/{name}" in page
    assert "waiting-on-person" in page
    assert "failed" in page
    assert page.index(">flaky<") < page.index(">docs-build<")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"state": "proposed"}, {"planned"}),
        ({"state": "deprecated"}, {"old-docs"}),
        ({"owner": "carol"}, {"deploy"}),
        ({"owner": "BOB"}, {"docs-build", "flaky"}),
        ({"q": "integration"}, {"flaky"}),
        ({"status": "failed"}, {"flaky"}),
        ({"status": "none"}, {"planned"}),
        ({"repo": KEY, "status": "succeeded"}, {"docs-build", "old-docs"}),
        ({"repo": "elsewhere"}, set()),
        ({"label": "team"}, set()),
    ],
)
def test_overview_filters(client: TestClient, query: dict[str, str], expected: set[str]) -> None:
    response = client.get("/", params={**query, "format": "json"})
    assert response.status_code == 200
    assert set(_rows(response.json())) == expected
    # the HTML view takes the same filters
    page = client.get("/", params=query).text
    for name in expected:
        assert f'/r/{KEY}/intents/{name}"' in page


def test_intent_view_shows_relations_both_ways_history_graph_and_evidence(
    client: TestClient, shared: UiWorld
) -> None:
    data = _json(client, f"/r/{KEY}/intents/docs-build")
    assert data["state"] == "active"
    assert data["owners"] == ["alice", "bob"]
    assert data["goal"].startswith("Every change to main")
    assert data["rationale"]
    assert data["relations"]["supersedes"] == ["old-docs"]
    assert data["relations"]["dependedOnBy"] == ["planned"]
    ac1 = next(a for a in data["acceptance"] if a["acceptance"] == "AC-1")
    assert ac1["state"] == "fresh"
    assert ac1["execution"] == shared.executions["docs-build"]
    assert ac1["digest"].startswith("sha256:")
    assert ac1["artifactDigest"] == data["artifact"]["digest"]
    assert [b["id"] for b in data["automation"]["blocks"]] == ["build", "check"]
    assert data["automation"]["blocks"][1]["needs"] == ["build"]
    assert data["automation"]["triggers"]["apply"] is True
    assert [e["id"] for e in data["executions"]] == [shared.executions["docs-build"]]
    assert data["lifecycle"][0]["state"] == "active"
    assert data["lifecycle"][0]["subject"].startswith("Build the docs site")
    assert "<svg" in data["graph"]
    assert ">build<" in data["graph"]
    assert ">check<" in data["graph"]

    old = _json(client, f"/r/{KEY}/intents/old-docs")
    assert old["relations"]["supersededBy"] == ["docs-build"]
    assert [(m["from"], m["state"]) for m in old["lifecycle"]] == [
        (None, "active"),
        ("active", "deprecated"),
    ]
    planned = _json(client, f"/r/{KEY}/intents/planned")
    assert planned["relations"]["dependsOn"] == ["docs-build"]

    page = _html(client, f"/r/{KEY}/intents/docs-build")
    assert "<svg" in page
    assert "Supersedes".lower() in page.lower()
    assert f"/r/{KEY}/intents/old-docs" in page
    assert f"/r/{KEY}/executions/{shared.executions['docs-build']}" in page


def test_intent_view_carries_the_assistants_findings(client: TestClient) -> None:
    flaky = _json(client, f"/r/{KEY}/intents/flaky")
    kinds = {f["kind"] for f in flaky["findings"]}
    # flaky has no rationale and one owner: the assistant says so, with a suggestion each
    assert flaky["findings"], flaky
    assert all(f["suggestion"] for f in flaky["findings"])
    page = _html(client, f"/r/{KEY}/intents/flaky")
    for kind in kinds:
        assert kind in page


def test_execution_view_of_a_failed_run_has_timeline_and_redacted_log_tail(
    client: TestClient, shared: UiWorld
) -> None:
    exe = shared.executions["flaky"]
    data = _json(client, f"/r/{KEY}/executions/{exe}")
    assert data["intent"] == "flaky"
    spec = data["trace"]["spec"]
    assert spec["status"] == "failed"
    assert spec["event"]["type"] == "apply"
    block = spec["blocks"][0]
    assert block["id"] == "test"
    attempt = block["attempts"][0]
    assert attempt["exitCode"] == 1
    assert "test_login FAILED" in attempt["logTail"]
    assert spec == shared.trace(exe)
    page = _html(client, f"/r/{KEY}/executions/{exe}")
    assert "test_login FAILED: timed out" in page
    assert "log tail of test attempt 1" in page


def test_execution_view_of_a_waiting_run_says_why_on_whom_and_what_unblocks(
    client: TestClient, shared: UiWorld
) -> None:
    exe = shared.executions["deploy"]
    data = _json(client, f"/r/{KEY}/executions/{exe}")
    assert data["trace"]["spec"]["status"] == "waiting"
    [wait] = data["waiting"]
    assert (wait["kind"], wait["block"], wait["index"]) == ("approval", "ship", 0)
    assert wait["onWhom"]["from"] == ["bob", "carol"]
    assert wait["onWhom"]["quorum"] == 1
    assert f"alloy approve {exe} --gate ship/0" in wait["unblock"]
    page = _html(client, f"/r/{KEY}/executions/{exe}")
    assert 'action="/r/remote/actions/approve"' in page
    assert 'name="csrf"' in page


def test_downloads_in_every_format(client: TestClient, shared: UiWorld) -> None:
    exe = shared.executions["docs-build"]
    base = f"/r/{KEY}/executions/{exe}/download"
    trace = client.get(f"{base}/json")
    assert trace.status_code == 200
    assert trace.json()["spec"] == shared.trace(exe)
    assert "attachment" in trace.headers["content-disposition"]
    markdown = client.get(f"{base}/markdown")
    assert markdown.status_code == 200, markdown.text
    assert exe in markdown.text
    assert "docs-build" in markdown.text
    otlp = client.get(f"{base}/otlp")
    assert otlp.status_code == 200, otlp.text
    assert otlp.json()["resourceSpans"]
    intoto = client.get(f"{base}/intoto")
    assert intoto.status_code == 200, intoto.text
    statement = intoto.json()
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert {s["name"] for s in statement["subject"]} == {"site/index.html"}
    assert client.get(f"{base}/pdf").status_code == 404


def test_approvals_view_lists_the_waiting_gate_and_who_may_decide(
    client: TestClient, shared: UiWorld
) -> None:
    data = _json(client, "/approvals")
    [item] = [i for i in data["items"] if i["kind"] == "approval"]
    assert item["execution"] == shared.executions["deploy"]
    assert item["gate"] == "ship/0"
    assert item["onWhom"]["from"] == ["bob", "carol"]
    page = _html(client, "/approvals")
    assert shared.executions["deploy"] in page
    assert "bob, carol" in page


def test_reviews_view_shows_the_branch_that_changes_intent(client: TestClient) -> None:
    data = _json(client, "/reviews")
    [item] = data["items"]
    assert item["branch"] == "propose-x"
    review = item["review"]
    assert review["verdict"]
    paths = {c["path"] for c in review["changes"]}
    assert ".alloy/intents/release-notes.yaml" in paths
    assert ".alloy/intents/planned.yaml" in paths
    assert any(s["artifact"].startswith("release-notes") for s in review["starts"]), review
    page = _html(client, "/reviews")
    assert "propose-x" in page
    assert review["verdict"] in page


def test_lanes_and_activity_views(client: TestClient, shared: UiWorld) -> None:
    lanes = {lane["lane"]: lane for lane in _json(client, "/lanes")["lanes"]}
    assert set(lanes) == {"docs", "production"}
    assert lanes["docs"]["intents"] == ["docs-build"]
    assert lanes["production"]["intents"] == ["deploy"]
    assert lanes["docs"]["holders"] == []  # docs-build finished: its slot is free again
    page = _html(client, "/lanes")
    assert "production" in page
    assert f"/r/{KEY}/intents/deploy" in page
    activity = _json(client, "/activity")
    kinds = {(i["kind"], i.get("intent")) for i in activity["items"]}
    assert ("execution-finished", "flaky") in kinds
    assert ("execution-started", "deploy") in kinds
    merges = [i for i in activity["items"] if i["kind"] == "intent-change"]
    assert any(i["subject"].startswith("Build the docs site") for i in merges)
    assert all(i["actor"] and i["revision"] for i in activity["items"])
    stamps = [i["at"] for i in activity["items"] if i["kind"].startswith("execution")]
    assert stamps == sorted(stamps, reverse=True)
    page = _html(client, "/activity")
    assert "Build the docs site" in page


def test_unknown_things_are_404_in_both_forms(client: TestClient) -> None:
    assert client.get(f"/r/{KEY}/intents/nope").status_code == 404
    assert client.get("/r/other/intents/flaky", params={"format": "json"}).status_code == 404
    assert client.get(f"/r/{KEY}/executions/exe-0000000000000000").status_code == 404


def test_events_stream_says_hello_then_the_current_version(client: TestClient) -> None:
    with client.stream("GET", "/events", params={"limit": "1", "since": "0"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    assert "event: hello" in body
    assert re.search(r"id: [1-9][0-9]*\nevent: change\ndata: \{\"version\": [1-9]", body), body


def test_a_reconnecting_stream_resumes_from_the_last_change_it_was_told(
    client: TestClient,
) -> None:
    """An EventSource that reconnects sends the id of the last change it was told: a change
    since then is told at once, and one it was told already is not told again."""
    current = client.get("/healthz").json()["version"]
    with client.stream(
        "GET", "/events", params={"limit": "1"}, headers={"Last-Event-ID": str(current - 1)}
    ) as response:
        body = "".join(response.iter_text())
    assert f"id: {current}\nevent: change" in body, body
    drawn = re.search(r'<main id="live"[^>]*data-version="([0-9]+)"', client.get("/").text)
    assert drawn, "the page does not say its version"
    assert int(drawn.group(1)) == current  # what a page's first connection sends


def test_a_page_of_an_earlier_server_is_told_at_once_by_the_next(
    shared: UiWorld, tmp_path: Path, client: TestClient
) -> None:
    """The server restarted (the daemon restarts its `alloy ui` child): a page drawn by the
    earlier one reconnects with that server's last version, and the new server tells it to
    reload its data at once, whatever the two versions' numbers."""
    earlier = client.get("/healthz").json()["version"]
    with _client(shared, tmp_path / "cache") as later:
        current = later.get("/healthz").json()["version"]
        assert current > earlier  # the next server's versions start above the earlier's
        for told in (str(earlier), str(current + 1000)):  # older, or from another clock
            with later.stream(
                "GET", "/events", params={"limit": "1"}, headers={"Last-Event-ID": told}
            ) as response:
                body = "".join(response.iter_text())
            assert f"id: {current}\nevent: change" in body, body


def test_a_fragment_is_the_main_element_only(client: TestClient) -> None:
    fragment = client.get("/", headers={"X-Alloy-Fragment": "1"}).text
    assert "<html" not in fragment
    assert "<table" in fragment


# -- actions ----------------------------------------------------------------------------------


def _csrf(c: TestClient, url: str) -> str:
    page = c.get(url).text
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def _branch_file(world: UiWorld, branch: str, path: str) -> bytes:
    return git(world.bare, "show", f"{branch}:{path}").encode()


def _main(world: UiWorld) -> str:
    return git(world.bare, "rev-parse", "refs/heads/main").strip()


def test_approve_writes_an_approval_on_a_new_branch_only(
    fresh: TestClient, ui_world: UiWorld
) -> None:
    exe = ui_world.executions["deploy"]
    main_before = _main(ui_world)
    token = _csrf(fresh, f"/r/{KEY}/executions/{exe}")
    response = fresh.post(
        f"/r/{KEY}/actions/approve",
        data={"csrf": token, "execution": exe, "gate": "ship/0", "comment": "ship it"},
        params={"format": "json"},
    )
    assert response.status_code == 201, response.text
    done = response.json()
    branch = done["branch"]
    assert branch.startswith("alloy/ui/approve-")
    [path] = done["files"]
    assert path.startswith(".alloy/approvals/")
    doc = yaml.safe_load(_branch_file(ui_world, branch, path))
    assert doc["kind"] == "Approval"
    assert doc["spec"] == {
        "execution": exe,
        "gate": {"block": "ship", "index": 0},
        "decision": "approve",
        "approver": "alice",
        "comment": "ship it",
    }
    assert _main(ui_world) == main_before
    parent = git(ui_world.bare, "rev-parse", f"{branch}^").strip()
    assert parent == main_before
    author = git(ui_world.bare, "log", "-1", "--format=%an", branch).strip()
    assert author == "alice"
    # the written document is one `alloy check` accepts
    git(ui_world.work.path, "fetch", "-q", "origin", f"{branch}:{branch}")
    git(ui_world.work.path, "checkout", "-q", branch)
    assert run_cli("alloy", "check", cwd=ui_world.work.path).code == 0


def test_reject_and_request_and_propose_and_move(fresh: TestClient, ui_world: UiWorld) -> None:
    main_before = _main(ui_world)
    exe = ui_world.executions["deploy"]
    token = _csrf(fresh, f"/r/{KEY}/propose")
    rejected = fresh.post(
        f"/r/{KEY}/actions/reject",
        data={"csrf": token, "execution": exe, "gate": "ship/0", "comment": "not today"},
        params={"format": "json"},
    ).json()
    doc = yaml.safe_load(_branch_file(ui_world, rejected["branch"], rejected["files"][0]))
    assert doc["spec"]["decision"] == "reject"

    requested = fresh.post(
        f"/r/{KEY}/actions/request",
        data={"csrf": token, "intent": "docs-build", "reason": "rebuild after the outage"},
        params={"format": "json"},
    )
    assert requested.status_code == 201, requested.text
    req = requested.json()
    request_doc = yaml.safe_load(_branch_file(ui_world, req["branch"], req["files"][0]))
    digest = _json(fresh, f"/r/{KEY}/intents/docs-build")["artifact"]["digest"]
    assert request_doc["kind"] == "Request"
    assert request_doc["spec"]["artifact"] == f"docs-build@{digest}"
    assert request_doc["spec"]["requestedBy"] == "alice"

    proposed = fresh.post(
        f"/r/{KEY}/actions/propose",
        data={
            "csrf": token,
            "name": "search-works",
            "title": "Search finds every page",
            "goal": "A search for any page title returns that page first within 200 ms.",
            "rationale": "Readers give up after one failed search.",
            "owners": "alice, dave",
            "acceptance": "The top result for each title is its page.\n",
        },
        params={"format": "json"},
    )
    assert proposed.status_code == 201, proposed.text
    new = proposed.json()
    intent_doc = yaml.safe_load(
        _branch_file(ui_world, new["branch"], ".alloy/intents/search-works.yaml")
    )
    assert intent_doc["spec"]["state"] == "proposed"
    assert intent_doc["metadata"]["owners"] == ["alice", "dave"]

    moved = fresh.post(
        f"/r/{KEY}/actions/move",
        data={"csrf": token, "intent": "planned", "to": "accepted", "reason": "agreed in review"},
        params={"format": "json"},
    )
    assert moved.status_code == 201, moved.text
    move = moved.json()
    text = _branch_file(ui_world, move["branch"], ".alloy/intents/planned.yaml").decode()
    assert "state: accepted" in text
    assert ".alloy/artifacts/planned.json" in move["files"]
    assert _main(ui_world) == main_before
    # the move is reviewable: the reviews view now shows it
    branches = {i["branch"] for i in _json(fresh, "/reviews")["items"]}
    assert move["branch"] in branches
    assert new["branch"] in branches


def test_bad_action_input_is_a_clear_400_and_writes_nothing(
    fresh: TestClient, ui_world: UiWorld
) -> None:
    before = ui_world.refs("refs/heads/")
    token = _csrf(fresh, f"/r/{KEY}/propose")
    cases = [
        ("approve", {"execution": "exe-nothex", "gate": "ship/0", "comment": "x"}, "exe-"),
        (
            "approve",
            {"execution": ui_world.executions["deploy"], "gate": "ship/0", "comment": " "},
            "comment",
        ),
        ("request", {"intent": "flaky", "reason": "again"}, "does not accept requests"),
        ("request", {"intent": "nope", "reason": "again"}, "no intent named"),
        ("propose", {"name": "Bad Name", "goal": "g", "owners": "alice"}, "name"),
        ("propose", {"name": "flaky", "goal": "g", "owners": "alice"}, "exists"),
        (
            "propose",
            {"name": "new-one", "goal": "g", "owners": "Alice Smith"},
            "is not a user name or team",
        ),
        ("move", {"intent": "planned", "to": "sideways", "reason": "r"}, "state"),
        ("move", {"intent": "planned", "to": "proposed", "reason": "r"}, "already"),
        ("dance", {}, "no action"),
    ]
    for action, form, words in cases:
        response = fresh.post(
            f"/r/{KEY}/actions/{action}", data={"csrf": token, **form}, params={"format": "json"}
        )
        assert response.status_code == 400, (action, form, response.text)
        assert words in response.json()["error"], (action, response.json())
    assert ui_world.refs("refs/heads/") == before


def test_csrf_refusal(fresh: TestClient, ui_world: UiWorld) -> None:
    before = ui_world.refs("refs/heads/")
    fresh.get("/")  # the CSRF cookie is set
    form = {"execution": ui_world.executions["deploy"], "gate": "ship/0", "comment": "x"}
    missing = fresh.post(f"/r/{KEY}/actions/approve", data=form)
    wrong = fresh.post(f"/r/{KEY}/actions/approve", data={**form, "csrf": "0" * 64})
    assert missing.status_code == wrong.status_code == 403
    assert "CSRF" in missing.text
    token = _csrf(fresh, f"/r/{KEY}/propose")
    other_site = fresh.post(
        f"/r/{KEY}/actions/approve",
        data={**form, "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    assert ui_world.refs("refs/heads/") == before


def test_a_token_is_required_when_one_is_configured(ui_world: UiWorld, tmp_path: Path) -> None:
    before = ui_world.refs("refs/heads/")
    security = Security(tokens={TOKEN: "dave"}, identity="nobody")
    with _client(ui_world, tmp_path, security=security) as c:
        assert c.get("/", follow_redirects=False).status_code == 303
        assert c.get("/", params={"format": "json"}).status_code == 401
        assert c.get(f"/r/{KEY}/intents/flaky", params={"format": "json"}).status_code == 401
        refused = c.post(f"/r/{KEY}/actions/approve", data={"csrf": "x"})
        assert refused.status_code == 401
        assert c.get("/healthz").status_code == 200
        assert ui_world.refs("refs/heads/") == before
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert c.get("/", params={"format": "json"}, headers=headers).status_code == 200
        login = c.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert login.status_code == 303
        page = c.get("/").text  # the cookie now carries the token
        assert "acting as <strong>dave</strong>" in page
        token = _csrf(c, f"/r/{KEY}/propose")
        done = c.post(
            f"/r/{KEY}/actions/approve",
            data={
                "csrf": token,
                "execution": ui_world.executions["deploy"],
                "gate": "ship/0",
                "comment": "ok",
            },
            params={"format": "json"},
        ).json()
        doc = yaml.safe_load(_branch_file(ui_world, done["branch"], done["files"][0]))
        assert doc["spec"]["approver"] == "dave"


def test_read_only_server_says_so_and_refuses_actions(ui_world: UiWorld, tmp_path: Path) -> None:
    before = ui_world.refs("refs/heads/")
    with _client(ui_world, tmp_path, writable=False) as c:
        page = c.get(f"/r/{KEY}/executions/{ui_world.executions['deploy']}").text
        assert "read-only" in page
        assert "actions/approve" not in page
        response = c.post(
            f"/r/{KEY}/actions/approve",
            data={"csrf": "x", "execution": ui_world.executions["deploy"], "gate": "ship/0"},
        )
        assert response.status_code == 403
        assert "read-only" in response.text
    assert ui_world.refs("refs/heads/") == before


def test_the_cli_refuses_a_public_address_without_a_token(ui_world: UiWorld) -> None:
    result = run_cli(
        "alloy", "ui", "--repo", str(ui_world.bare), "--listen", "0.0.0.0:0", cwd=ui_world.tmp
    )
    assert result.code == 1
    assert "--token-file" in result.err
    assert "Traceback" not in result.err


def _without_versions(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["repositories"] = [
        {k: v for k, v in r.items() if k not in ("commit", "tracesCommit")}
        for r in data["repositories"]
    ]
    return data


def test_what_a_refresh_updates_in_place_equals_a_fresh_read(
    fresh: TestClient, ui_world: UiWorld, tmp_path: Path
) -> None:
    """Rows are made again only for the intents a change touched, and a traces push is read as
    a diff: after merges, new executions, an approval, a removed trace and a resumed execution,
    the overview equals the one a new server reads from scratch."""
    hub = fresh.app.state.hub  # type: ignore[attr-defined]
    git(ui_world.work.path, "merge", "-q", "--no-ff", "-m", "Merge", "origin/propose-x")
    git(ui_world.work.path, "push", "-q", "origin", "HEAD:main")
    assert ui_world.reconcile().code == 5
    hub.refresh()
    ui_world.approve(ui_world.executions["deploy"], "bob", gate="ship")
    ui_world.merge("Approve the deploy", compile_=False)
    assert ui_world.reconcile().code == 0
    hub.refresh()
    # a trace removed from the traces branch by hand (and a pass that writes nothing)
    flaky = ui_world.traces()[ui_world.executions["flaky"]]
    scratch = tmp_path / "scratch"
    git(tmp_path, "clone", "-q", "-b", "alloy/traces", str(ui_world.bare), str(scratch))
    git(scratch, "rm", "-q", flaky, flaky.removesuffix(".json") + ".md")
    git(scratch, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "drop")
    git(scratch, "push", "-q", "origin", "alloy/traces")
    hub.refresh()
    incremental = _json(fresh, "/")
    rows = _rows(incremental)
    assert rows["deploy"]["lastExecution"]["status"] == "succeeded"
    assert rows["release-notes"]["lastExecution"]["status"] == "succeeded"
    # the trace is gone from the branch; the execution's finished claim still carries it
    assert rows["flaky"]["lastExecution"]["status"] == "failed"
    flaky_page = _json(fresh, f"/r/{KEY}/executions/{ui_world.executions['flaky']}")
    assert flaky_page["source"] == "claim"
    with _client(ui_world, tmp_path / "again") as again:
        assert _without_versions(_json(again, "/")) == _without_versions(incremental)


def test_intents_loaded_on_several_cores_are_all_shown(repo: GitRepo, tmp_path: Path) -> None:
    """A refresh in a process with no other thread lets the loader fork (its results come back
    without models): every intent is shown all the same."""
    names = [f"intent-{n:03d}" for n in range(140)]
    repo.write(
        {
            f".alloy/intents/{name}.yaml": (
                "apiVersion: alloy.dev/v1\nkind: Intent\n"
                f"metadata: {{name: {name}, owners: [alice]}}\n"
                "spec: {state: proposed, goal: Something holds.}\n"
            )
            for name in names
        }
    )
    repo.commit("many intents")
    script = (
        "import sys, threading; from pathlib import Path; "
        "from alloy.web import open_repositories; "
        "[s] = open_repositories([sys.argv[1]], Path(sys.argv[2])); "
        "assert threading.active_count() == 1; s.refresh(); "
        "print(len(s.intents.inputs), s.intents.problems)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(repo.path), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env={**os.environ, "ALLOY_JOBS": "2"},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["140", "0"]


def test_a_refresh_holds_summaries_and_reads_a_whole_model_for_its_page(
    repo: GitRepo, tmp_path: Path
) -> None:
    """What keeps the server small at 10,000 intents (benchmarks/ui.py measures it): after a
    refresh no whole intent model is held, only each intent's summary; a page reads the model of
    its one intent again from the file, and a move of the default branch summarizes only the
    documents that changed."""
    import gc

    from alloy.model import Intent

    def models() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, Intent))

    text = (
        "apiVersion: alloy.dev/v1\nkind: Intent\n"
        "metadata: {{name: {name}, owners: [alice], title: Intent {name}}}\n"
        "spec: {{state: proposed, goal: Something holds.}}\n"
    )
    names = [f"held-{n:02d}" for n in range(30)]
    repo.write({f".alloy/intents/{name}.yaml": text.format(name=name) for name in names})
    repo.commit("thirty intents")
    [state] = open_repositories([str(repo.path)], tmp_path / "cache")
    before = models()
    assert state.refresh()
    assert sorted(state.intents.inputs) == names
    assert models() == before
    assert state.intents.inputs["held-07"].summary.title == "Intent held-07"
    model = state.intent_model("held-07")
    assert model is not None
    assert model.metadata.title == "Intent held-07"
    assert state.intent_model("held-07") is model  # kept for the next page
    assert models() == before + 1

    changed = text.format(name="held-03").replace("Intent held-03", "Renamed")
    repo.write({".alloy/intents/held-03.yaml": changed})
    repo.commit("rename one")
    summaries = {n: h.summary for n, h in state.intents.inputs.items()}
    assert state.refresh()
    after = {n: h.summary for n, h in state.intents.inputs.items()}
    assert after["held-03"].title == "Renamed"
    assert [n for n in names if after[n] is not summaries[n]] == ["held-03"]
    reread = state.intent_model("held-03")
    assert reread is not None
    assert reread.metadata.title == "Renamed"
