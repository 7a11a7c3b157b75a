"""`alloy ui` attacked the way the world will: hostile repository content (on the default
branch, on branches, on the traces branch, on claim, lane and forge refs), hostile requests
(forged forms, foreign hosts and origins, junk parameters, odd encodings) and hostile readers
(event streams by the hundred, cut off mid-change).

Everything runs on real git repositories — the repository of tests/ui_support.py, made by real
`foundry reconcile` passes and copied for each test that changes it — and the real application
(Starlette's test client), or the real `alloy ui` process where a socket matters. The promise
under test: nothing of a repository is run; bad input is a clear error that changes nothing; no
secret reaches a page; the default branch is never written; an action needs a valid CSRF token
and, off loopback, a token.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from alloy.errors import UserError
from alloy.web import RepoState, Security, create_app, open_repositories, read_tokens
from tests.conftest import PROJECT, GitRepo, git, run_cli
from tests.reconcile_support import World, wait_for
from tests.ui_support import UiWorld, make_ui_world

KEY = "remote"  # the repository's key: its directory name, remote.git
TOKEN = "k7Qw-9zLp2Xv_R4mT8sN"
#: Markup that would run if a page carried it unescaped.
XSS = ('<script>alert("x")</script>', "<img src=x onerror=alert(1)>", "<svg/onload=alert(1)>")
CSP_WORDS = ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'")


# -- a remote to attack ------------------------------------------------------------------------


@dataclass
class Remote:
    """A copy of the ui_world's bare remote, changed by git plumbing the way anyone with push
    access could change it (no hook, no filter, no check in the way)."""

    path: Path

    def git(
        self, *args: str, data: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.path,
            input=data,
            capture_output=True,
            check=True,
            env={**os.environ, **(env or {})},
        )
        return proc.stdout.decode("utf-8", "surrogateescape").strip()

    def sha(self, ref: str) -> str | None:
        proc = subprocess.run(
            ["git", "rev-parse", "-q", "--verify", ref],
            cwd=self.path,
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.stdout.strip() or None

    def show(self, what: str) -> bytes:
        return subprocess.run(
            ["git", "show", what], cwd=self.path, capture_output=True, check=True
        ).stdout

    def commit(
        self,
        files: Mapping[str, str | bytes | tuple[str, bytes]],
        *,
        parent: str | None,
        message: str = "change",
        remove: tuple[str, ...] = (),
        author: str | None = None,
    ) -> str:
        """A commit of `parent`'s tree with `files` written (a tuple is (mode, bytes): a
        symbolic link is mode 120000) and `remove` removed."""
        with tempfile.TemporaryDirectory() as scratch:
            env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            if author is not None:
                env.update(GIT_AUTHOR_NAME=author, GIT_COMMITTER_NAME=author)
            if parent is not None:
                self.git("read-tree", parent, env=env)
            lines = []
            for path, content in files.items():
                mode, data = content if isinstance(content, tuple) else ("100644", content)
                raw = data.encode() if isinstance(data, str) else data
                sha = self.git("hash-object", "-w", "--stdin", data=raw)
                lines.append(f"{mode} {sha}\t{path}")
            lines.extend(f"0 {'0' * 40}\t{path}" for path in remove)
            if lines:
                self.git(
                    "update-index",
                    "--add",
                    "--index-info",
                    data=("\n".join(lines) + "\n").encode(),
                    env=env,
                )
            tree = self.git("write-tree", env=env)
            args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
            return self.git(*args, env=env)

    def update(
        self,
        ref: str,
        files: Mapping[str, str | bytes | tuple[str, bytes]],
        *,
        message: str = "change",
        remove: tuple[str, ...] = (),
        author: str | None = None,
        orphan: bool = False,
    ) -> str:
        """`ref` moved to a new commit on top of it (or a first commit) with `files`."""
        parent = None if orphan else self.sha(ref)
        sha = self.commit(files, parent=parent, message=message, remove=remove, author=author)
        self.git("update-ref", ref, sha)
        return sha

    def heads(self) -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/")
        return dict(line.split(" ", 1) for line in out.splitlines())

    def everything(self) -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)")
        return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> UiWorld:
    """The repository of tests/ui_support.py, built once (real reconcile passes); tests attack
    copies of its remote."""
    tmp = tmp_path_factory.mktemp("ui-adversarial")
    path = tmp / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    repo = GitRepo(path)
    repo.write({".alloy/alloy.yaml": PROJECT, ".alloy/intents/.gitkeep": ""})
    repo.commit("init")
    return make_ui_world(repo, tmp)


@pytest.fixture
def remote(shared: UiWorld, tmp_path: Path) -> Remote:
    target = tmp_path / "srv" / "remote.git"
    shutil.copytree(shared.bare, target, symlinks=True)
    return Remote(target)


def _client(*repos: Path | str, cache: Path, **options: Any) -> TestClient:
    states = open_repositories([str(r) for r in repos], cache)
    options.setdefault("security", Security(identity="alice"))
    return TestClient(create_app(states, refresh_in_background=False, **options))


def _csrf(c: TestClient, url: str = f"/r/{KEY}/propose") -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', c.get(url).text)
    assert found, "the page has no CSRF field"
    return found.group(1)


def _post(c: TestClient, action: str, form: dict[str, str], **kwargs: Any) -> Any:
    return c.post(f"/r/{KEY}/actions/{action}", data=form, params={"format": "json"}, **kwargs)


def _pages(c: TestClient, world: UiWorld) -> dict[str, str]:
    """Every view's HTML."""
    urls = ["/", "/approvals", "/reviews", "/lanes", "/activity", f"/r/{KEY}/propose"]
    urls += [
        f"/r/{KEY}/intents/{n}" for n in ("docs-build", "flaky", "deploy", "old-docs", "planned")
    ]
    urls += [f"/r/{KEY}/executions/{e}" for e in world.executions.values()]
    pages = {}
    for url in urls:
        response = c.get(url)
        assert response.status_code == 200, (url, response.text)
        pages[url] = response.text
    return pages


def _intents(c: TestClient) -> set[str]:
    response = c.get("/", params={"format": "json"})
    assert response.status_code == 200, response.text
    return {row["name"] for row in response.json()["intents"]}


def _flaky_trace(remote: Remote, world: UiWorld) -> tuple[str, dict[str, Any]]:
    exe = world.executions["flaky"]
    path = f"traces/flaky/{exe}.json"
    return path, json.loads(remote.show(f"refs/heads/alloy/traces:{path}"))


# -- hostile content on refs -------------------------------------------------------------------


def test_documents_nested_too_deep_on_claim_lane_and_forge_refs_stop_nothing(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    deep = b"[" * 200_000
    remote.update(
        "refs/alloy/claims/exe-00000000000000aa",
        {"claim.json": deep, "trace.json": deep},
        orphan=True,
    )
    remote.update("refs/alloy/lanes/deploy", {"lane.json": b'{"holders": ' + deep}, orphan=True)
    remote.update("refs/alloy/forge", {"checks/x/deep.json": deep})
    huge = b'{"state": "running", "holder": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    remote.update(
        "refs/alloy/claims/exe-00000000000000ab",
        {"claim.json": huge, "trace.json": huge},
        orphan=True,
    )
    with _client(remote.path, cache=tmp_path / "cache") as c:
        assert _intents(c) == {"old-docs", "docs-build", "flaky", "deploy", "planned"}
        assert c.get("/healthz").json()["ok"] is True
        _pages(c, shared)
        lanes = c.get("/lanes", params={"format": "json"}).json()["lanes"]
        assert "deploy" not in {lane["lane"] for lane in lanes}
        warnings = c.get("/", params={"format": "json"}).json()["repositories"][0]["warnings"]
        assert any("lanes/deploy" in w for w in warnings), warnings


def test_refs_that_name_no_commit_are_skipped_with_a_warning(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    blob = remote.git("hash-object", "-w", "--stdin", data=b"not a commit")
    tree = remote.git("rev-parse", "refs/heads/main^{tree}")
    remote.git("tag", "-a", "-m", "a tag", "v1", "refs/heads/main")
    remote.git("update-ref", "refs/alloy/forge", blob)
    remote.git("update-ref", "refs/alloy/claims/exe-00000000000000aa", tree)
    remote.git(
        "update-ref", "refs/alloy/claims/exe-00000000000000ab", remote.git("rev-parse", "v1")
    )
    remote.git("update-ref", "refs/alloy/lanes/deploy", blob)
    with _client(remote.path, cache=tmp_path / "cache") as c:
        repo = c.get("/", params={"format": "json"}).json()["repositories"][0]
        assert repo["error"] is None, repo
        assert any("refs/alloy/forge" in w for w in repo["warnings"]), repo["warnings"]
        assert _intents(c) == {"old-docs", "docs-build", "flaky", "deploy", "planned"}
        assert c.get("/healthz").json()["ok"] is True
        _pages(c, shared)


def test_lane_documents_of_the_wrong_shape_are_skipped_not_a_crash(
    remote: Remote, tmp_path: Path
) -> None:
    remote.update(
        "refs/alloy/lanes/numbers", {"lane.json": b'{"holders": 5, "waiting": "abc"}'}, orphan=True
    )
    remote.update("refs/alloy/lanes/list", {"lane.json": b"[1, 2, 3]"}, orphan=True)
    remote.update("refs/alloy/lanes/text", {"lane.json": b"not json at all"}, orphan=True)
    remote.update(
        "refs/alloy/lanes/mixed",
        {
            "lane.json": json.dumps(
                {
                    "holders": [
                        7,
                        "x",
                        {"execution": 5},
                        {"execution": "exe-00000000000000cc", "holder": XSS[0]},
                    ],
                    "waiting": {"a": 1},
                }
            ).encode()
        },
        orphan=True,
    )
    with _client(remote.path, cache=tmp_path / "cache") as c:
        page = c.get("/lanes")
        assert page.status_code == 200, page.text
        data = c.get("/lanes", params={"format": "json"}).json()
        by_name = {lane["lane"]: lane for lane in data["lanes"]}
        assert by_name["numbers"]["holders"] == []
        assert by_name["numbers"]["waiting"] == []
        assert [h["execution"] for h in by_name["mixed"]["holders"]] == ["exe-00000000000000cc"]
        assert by_name["mixed"]["waiting"] == []
        assert "list" not in by_name
        assert "text" not in by_name
        warnings = c.get("/", params={"format": "json"}).json()["repositories"][0]["warnings"]
        assert any("lanes/list" in w for w in warnings), warnings
        assert XSS[0] not in page.text
        assert "&lt;script&gt;" in page.text


def test_a_claim_whose_fields_are_not_text_is_shown_not_a_crash(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    exe = shared.executions["deploy"]
    ref = f"refs/alloy/claims/{exe}"
    claim = {
        "state": "parked",
        "commit": 5,
        "holder": ["x"],
        "generation": {"n": 1},
        "expires": None,
    }
    remote.update(ref, {"claim.json": json.dumps(claim).encode()})
    with _client(remote.path, cache=tmp_path / "cache") as c:
        page = c.get(f"/r/{KEY}/executions/{exe}")
        assert page.status_code == 200, page.text
        assert "waiting" in page.text
        assert (
            c.get(f"/r/{KEY}/executions/{exe}", params={"format": "json"}).json()["claim"]["commit"]
            == 5
        )


def test_a_claims_trace_that_names_another_execution_is_not_shown_as_it(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    _, trace = _flaky_trace(remote, shared)
    trace["spec"]["status"] = "running"
    trace["spec"]["finishedAt"] = None
    impostor = "exe-00000000000000bb"
    remote.update(
        f"refs/alloy/claims/{impostor}",
        {
            "claim.json": b'{"state": "running", "generation": 1}',
            "trace.json": json.dumps(trace).encode(),
        },
        orphan=True,
    )
    with _client(remote.path, cache=tmp_path / "cache") as c:
        assert c.get(f"/r/{KEY}/executions/{impostor}").status_code == 404
        rows = {r["name"]: r for r in c.get("/", params={"format": "json"}).json()["intents"]}
        assert rows["flaky"]["lastExecution"]["id"] == shared.executions["flaky"]
        assert rows["flaky"]["lastExecution"]["status"] == "failed"
        flaky = c.get(f"/r/{KEY}/intents/flaky", params={"format": "json"}).json()
        assert [e["id"] for e in flaky["executions"]] == [shared.executions["flaky"]]
        warnings = c.get("/", params={"format": "json"}).json()["repositories"][0]["warnings"]
        assert any(impostor in w for w in warnings), warnings


def test_invalid_and_misplaced_traces_are_skipped_with_a_warning(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    path, trace = _flaky_trace(remote, shared)
    exe = shared.executions["flaky"]
    remote.update(
        "refs/heads/alloy/traces",
        {
            "traces/flaky/exe-00000000000000dd.json": b'{"kind": "Trace", "spec": [',
            f"traces/deploy/{exe}.json": json.dumps(trace).encode(),  # another intent's
            f"traces/zzz/{exe}.json": remote.show(f"refs/heads/alloy/traces:{path}"),  # same bytes
            "traces/flaky/exe-00000000000000ee.json": json.dumps(trace).encode(),  # another id
            "traces/flaky/deep/exe-00000000000000ff.json": json.dumps(trace).encode(),
        },
    )
    with _client(remote.path, cache=tmp_path / "cache") as c:
        data = c.get("/", params={"format": "json"}).json()
        rows = {r["name"]: r for r in data["intents"]}
        assert rows["deploy"]["lastExecution"]["id"] == shared.executions["deploy"]
        assert rows["flaky"]["lastExecution"]["id"] == exe
        warnings = data["repositories"][0]["warnings"]
        assert any("exe-00000000000000dd" in w and "not a valid Trace" in w for w in warnings)
        assert any(f"traces/deploy/{exe}" in w and "another execution" in w for w in warnings)
        assert any(f"traces/zzz/{exe}" in w and "another execution" in w for w in warnings)
        assert any("exe-00000000000000ee" in w for w in warnings), warnings
        for bad in ("exe-00000000000000dd", "exe-00000000000000ee", "exe-00000000000000ff"):
            assert c.get(f"/r/{KEY}/executions/{bad}").status_code == 404
        assert c.get(f"/r/{KEY}/executions/{exe}").status_code == 200


def test_hostile_files_on_the_default_branch_leave_the_other_intents_shown(
    remote: Remote, tmp_path: Path
) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True)
    )
    remote.update(
        "refs/heads/main",
        {
            ".alloy/intents/huge.yaml": b"apiVersion: alloy.dev/v1\nkind: Intent\nspec:\n  goal: "
            + b"x" * (6 * 1024 * 1024)
            + b"\n",
            ".alloy/intents/bomb.yaml": bomb,
            ".alloy/intents/deep.yaml": "spec: " + "[" * 50_000,
            ".alloy/intents/passwd.yaml": ("120000", b"../../../../../../../../etc/passwd"),
            ".alloy/intents/absolute.yaml": ("120000", b"/etc/passwd"),
        },
        message="hostile files",
    )
    with _client(remote.path, cache=tmp_path / "cache") as c:
        assert _intents(c) == {"old-docs", "docs-build", "flaky", "deploy", "planned"}
        repo = c.get("/", params={"format": "json"}).json()["repositories"][0]
        assert repo["problems"] >= 5, repo
        assert repo["error"] is None
        for url in ("/", "/reviews", "/activity", f"/r/{KEY}/intents/deploy"):
            response = c.get(url)
            assert response.status_code == 200, (url, response.text)
            assert "root:x:0:0" not in response.text


def test_a_hostile_old_version_in_an_intents_history_is_skipped(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    path = ".alloy/intents/docs-build.yaml"
    current = remote.show(f"refs/heads/main:{path}")
    main = remote.sha("refs/heads/main")
    hostile = [
        b"spec: " + b"[" * 100_000,  # nested too deep for a recursive parser
        b"spec:\n  state: " + b"x" * (6 * 1024 * 1024) + b"\n",  # more than is ever read
        b"spec: {state: *nothing}\n",
    ]
    parent = main
    for n, data in enumerate(hostile):
        parent = remote.commit({path: data}, parent=parent, message=f"hostile version {n}")
    restored = remote.commit({path: current}, parent=parent, message="restore docs-build")
    remote.git("update-ref", "refs/heads/main", restored)
    with _client(remote.path, cache=tmp_path / "cache") as c:
        response = c.get(f"/r/{KEY}/intents/docs-build", params={"format": "json"})
        assert response.status_code == 200, response.text
        moves = [m["state"] for m in response.json()["lifecycle"]]
        assert moves == ["active"], moves
        assert c.get(f"/r/{KEY}/intents/docs-build").status_code == 200


# -- branches: reviews -------------------------------------------------------------------------


def test_branches_at_one_commit_are_each_reviewed_under_their_own_name(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    head = remote.sha(f"refs/heads/{shared.proposal}")
    assert head
    remote.git("update-ref", "refs/heads/copy-of-proposal", head)
    with _client(remote.path, cache=tmp_path / "cache") as c:
        items = c.get("/reviews", params={"format": "json"}).json()["items"]
        assert sorted(i["branch"] for i in items) == ["copy-of-proposal", shared.proposal]
        page = c.get("/reviews").text
        assert "<code>copy-of-proposal</code>" in page
        assert f"<code>{shared.proposal}</code>" in page


def test_thousands_of_branches_and_odd_branch_names(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    old = remote.sha(f"refs/heads/{shared.proposal}")
    assert old
    # the newest branches: odd names, one commit on top of the proposal (made a day later)
    tree = remote.git("rev-parse", f"{old}^{{tree}}")
    later = {
        "GIT_COMMITTER_DATE": "2090-01-01T00:00:00Z",
        "GIT_AUTHOR_DATE": "2090-01-01T00:00:00Z",
    }
    new = remote.git("commit-tree", tree, "-p", old, "-m", "a newer proposal", env=later)
    odd = [XSS[2], "a\"b'c&d", "ünï-cödé"]
    lines = "".join(f"create refs/heads/{n} {new}\n" for n in odd)
    lines += "".join(f"create refs/heads/bulk/b{i:05d} {old}\n" for i in range(3000))
    remote.git("update-ref", "--stdin", data=lines.encode())
    with _client(remote.path, cache=tmp_path / "cache") as c:
        data = c.get("/reviews", params={"format": "json"}).json()
        items = data["items"]
        assert len(items) == 50
        assert data["omitted"] == 3003 + 1 - 50, data["omitted"]
        names = [i["branch"] for i in items]
        assert len(set(names)) == len(names), names
        assert sorted(names[:3]) == sorted(odd), names[:5]
        page = c.get("/reviews").text
        assert XSS[2] not in page
        assert "&lt;svg/onload=alert(1)&gt;" in page
        assert "2954 more branch(es) not reviewed" in page
        assert _intents(c) == {"old-docs", "docs-build", "flaky", "deploy", "planned"}


def test_nothing_of_a_hostile_branch_runs(remote: Remote, shared: UiWorld, tmp_path: Path) -> None:
    """A branch that asks git for its filters and diff drivers (defined in the operator's own
    git config, as git-lfs defines one), and whose intent runs commands: reviewing it, acting
    beside it and downloading traces run none of them."""
    marker = tmp_path / "ran"
    touch = f"touch {marker}"
    Path(os.environ["GIT_CONFIG_GLOBAL"]).write_text(
        f'[filter "evil"]\n\tclean = {touch}\n\tsmudge = {touch}\n\tprocess = {touch}\n'
        f'[diff "evil"]\n\ttextconv = {touch}\n\tcommand = {touch}\n'
        f"[core]\n\tfsmonitor = {touch}\n"
    )
    intent = (
        "apiVersion: alloy.dev/v1\nkind: Intent\nmetadata:\n  name: evil\n  owners: [alice]\n"
        "spec:\n  state: proposed\n  goal: The marker is touched.\n  automation:\n"
        "    on: {apply: true, request: true}\n    blocks:\n      - id: work\n"
        f"        run: [sh, -c, {json.dumps(touch)}]\n        effects: none\n"
        f"        gates:\n          - check: {{names: [{json.dumps(touch)}]}}\n"
    )
    attributes = b"* filter=evil diff=evil\n"
    remote.update(
        "refs/heads/evil",
        {
            ".gitattributes": attributes,
            ".alloy/.gitattributes": attributes,
            ".alloy/intents/evil.yaml": intent,
            ".alloy/intents/docs-build.yaml": remote.show(
                "refs/heads/main:.alloy/intents/docs-build.yaml"
            )
            + b"# changed\n",
        },
    )
    with _client(remote.path, cache=tmp_path / "cache") as c:
        items = c.get("/reviews", params={"format": "json"}).json()["items"]
        evil = next(i for i in items if i["branch"] == "evil")
        assert ".alloy/intents/evil.yaml" in evil["changed"]
        done = _post(
            c,
            "approve",
            {
                "csrf": _csrf(c),
                "execution": shared.executions["deploy"],
                "gate": "ship/0",
                "comment": "ok",
            },
        )
        assert done.status_code == 201, done.text
        exe = shared.executions["docs-build"]
        assert c.get(f"/r/{KEY}/executions/{exe}/download/markdown").status_code == 200
        assert c.get(f"/r/{KEY}/intents/docs-build").status_code == 200
    assert not marker.exists()


# -- text from repositories is escaped ---------------------------------------------------------


def test_text_from_the_repository_is_escaped_on_every_page(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    script, img, svg = XSS
    intent = (
        "apiVersion: alloy.dev/v1\nkind: Intent\nmetadata:\n  name: xss\n"
        f"  title: {json.dumps(script)}\n  owners: [alice]\n"
        f"  labels: {{team: {json.dumps(img)}}}\n"
        f"spec:\n  state: proposed\n  goal: {json.dumps(img + ' is shown as text')}\n"
        f"  rationale: {json.dumps(svg)}\n"
        f"  acceptance:\n    - id: AC-1\n      statement: {json.dumps(script)}\n"
    )
    remote.update(
        "refs/heads/main", {".alloy/intents/xss.yaml": intent}, message=script, author=img
    )
    path, trace = _flaky_trace(remote, shared)
    trace["spec"]["reason"] = svg
    trace["spec"]["blocks"][0]["attempts"][0]["logTail"] = f"{script}\n{img}\n"
    remote.update("refs/heads/alloy/traces", {path: json.dumps(trace).encode()})
    branch_intent = intent.replace("name: xss", "name: xss-two").replace(
        "owners: [alice]", f"owners: [alice]\n  {svg}: 1"
    )
    remote.update(
        f"refs/heads/{svg}", {".alloy/intents/xss-two.yaml": branch_intent}, message=script
    )
    remote.update(
        "refs/alloy/forge",
        {
            f"checks/{shared.executions['flaky']}.json": json.dumps(
                {"external_id": shared.executions["flaky"], "status": script, "title": img}
            ).encode()
        },
    )
    with _client(remote.path, cache=tmp_path / "cache") as c:
        pages = _pages(c, shared)
        pages["xss"] = c.get(f"/r/{KEY}/intents/xss").text
        shown = "\n".join(pages.values())
        for payload in XSS:
            for url, page in pages.items():
                assert payload not in page, (payload, url)
        # ... and each was shown, as text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages["xss"]
        assert "&lt;img src=x onerror=alert(1)&gt;" in pages["xss"]
        assert (
            "&lt;svg/onload=alert(1)&gt;"
            in pages[f"/r/{KEY}/executions/{shared.executions['flaky']}"]
        )
        assert "&lt;script&gt;" in pages["/activity"]
        assert "&lt;svg/onload=alert(1)&gt;" in pages["/reviews"]
        assert "onerror=alert(1)&gt;" in shown
        for svg_graph in re.findall(r"<svg.*?</svg>", shown, flags=re.S):
            assert "<script" not in svg_graph
            assert "href" not in svg_graph


def test_a_repository_path_with_markup_is_escaped(tmp_path: Path) -> None:
    hostile = tmp_path / '"><img src=x onerror=alert(1)>' / "gone.git"
    with _client(hostile, cache=tmp_path / "cache") as c:
        page = c.get("/").text
        assert "cannot be read" in page
        assert "<img src=x" not in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_every_response_carries_the_security_headers(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    exe = shared.executions["docs-build"]
    with _client(remote.path, cache=tmp_path / "cache") as c:
        token = _csrf(c)
        responses = {
            "page": c.get("/"),
            "json": c.get("/", params={"format": "json"}),
            "css": c.get("/static/app.css"),
            "script": c.get("/static/live.js"),
            "missing static": c.get("/static/nope.css"),
            "unknown route": c.get("/nope"),
            "unknown intent": c.get(f"/r/{KEY}/intents/nope"),
            "method": c.put(f"/r/{KEY}/actions/approve"),
            "csrf": c.post(f"/r/{KEY}/actions/approve", data={"csrf": "0" * 64}),
            "bad input": _post(c, "propose", {"csrf": token, "name": "Bad Name"}),
            "events": c.get("/events", params={"limit": "1", "since": "0"}),
            "health": c.get("/healthz"),
            "login": c.get("/login"),
            "download": c.get(f"/r/{KEY}/executions/{exe}/download/json"),
        }
    with _client(
        remote.path, cache=tmp_path / "cache2", security=Security(tokens={TOKEN: "dave"})
    ) as c:
        responses["no token"] = c.get("/", follow_redirects=False)
        responses["no token json"] = c.get("/", params={"format": "json"})
    for what, response in responses.items():
        csp = response.headers.get("content-security-policy", "")
        assert all(word in csp for word in CSP_WORDS), (what, response.status_code, csp)
        assert response.headers.get("x-content-type-options") == "nosniff", what
    assert responses["missing static"].status_code == 404
    assert responses["method"].status_code == 405
    # What a page shows (and its CSRF token) is for its reader: no cache keeps it for another
    for what, response in responses.items():
        if what not in ("css", "script"):
            assert response.headers.get("cache-control") == "no-store", what


def test_an_internal_error_is_a_500_page_with_the_headers_and_no_traceback(
    remote: Remote, shared: UiWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: RepoState, execution: str) -> Any:
        raise RuntimeError("boom in /srv/secret/place")

    monkeypatch.setattr(RepoState, "trace_document", broken)
    exe = shared.executions["flaky"]
    with _client(remote.path, cache=tmp_path / "cache") as c:
        page = c.get(f"/r/{KEY}/executions/{exe}")
        data = c.get(f"/r/{KEY}/executions/{exe}", params={"format": "json"})
        assert c.get("/").status_code == 200  # the server goes on
    assert page.status_code == data.status_code == 500
    assert "Traceback" not in page.text
    assert "/srv/secret/place" not in page.text
    assert "content-security-policy" in page.headers
    assert "internal error" in data.json()["error"]


# -- secrets -----------------------------------------------------------------------------------


def _leaky(name: str, *, wait: bool) -> str:
    gate = (
        "      - id: ship\n        needs: [leak]\n        run: [sh, -c, 'echo shipped']\n"
        "        effects: irreversible\n"
        "        gates:\n          - approval: {from: [bob], quorum: 1}\n"
    )
    return (
        "apiVersion: alloy.dev/v1\nkind: Intent\nmetadata:\n"
        f"  name: {name}\n  owners: [alice]\nspec:\n  state: active\n"
        "  goal: The deploy token is used and never shown.\n  automation:\n"
        "    on: {apply: true}\n    blocks:\n      - id: leak\n"
        '        run: [sh, -c, \'echo "token is $DEPLOY_TOKEN"; echo "$DEPLOY_TOKEN" >&2; exit 0\']\n'
        "        effects: none\n        secrets: [DEPLOY_TOKEN]\n" + (gate if wait else "")
    )


def test_a_secret_a_block_prints_never_reaches_a_page(world: World, tmp_path: Path) -> None:
    secret = "tok-Zq81vXw4Lm0pRt7Y"
    world.env["DEPLOY_TOKEN"] = secret
    world.work.write(
        {
            ".alloy/intents/leaky-wait.yaml": _leaky("leaky-wait", wait=True),
            ".alloy/intents/leaky-done.yaml": _leaky("leaky-done", wait=False),
        }
    )
    world.merge("Two intents that print their secret")
    run = world.reconcile()
    assert "Traceback" not in run.result.err, run.result.err
    started = {str(world.trace(e)["intent"]): e for e in run.report["started"]}
    assert set(started) == {"leaky-wait", "leaky-done"}
    assert world.trace(started["leaky-wait"])["status"] == "waiting"
    with _client(world.bare, cache=tmp_path / "cache") as c:
        seen: dict[str, str] = {}
        for name, exe in started.items():
            for url in (f"/r/{KEY}/executions/{exe}", f"/r/{KEY}/intents/{name}"):
                seen[url] = c.get(url).text
                seen[url + "?json"] = c.get(url, params={"format": "json"}).text
            for fmt in ("json", "markdown", "otlp"):
                response = c.get(f"/r/{KEY}/executions/{exe}/download/{fmt}")
                assert response.status_code == 200, response.text
                seen[f"{exe}/{fmt}"] = response.text
        for url in ("/", "/approvals", "/activity", "/reviews", "/lanes"):
            seen[url] = c.get(url).text
        for url, text in seen.items():
            assert secret not in text, url
        # the log tails were shown, masked
        for exe in started.values():
            assert "token is ***" in seen[f"/r/{KEY}/executions/{exe}"]


def test_credentials_in_a_remote_url_never_reach_a_page(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file:http:https")
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = "ghp_Zk2sLq9TxW3vB7nM1"
    urls = [
        f"https://x-access-token:{secret}@127.0.0.1:{port}/org/repo.git",
        f"http://{secret}@127.0.0.1:{port}/org/other.git",
    ]
    with _client(remote.path, *urls, cache=tmp_path / "cache") as c:
        texts = [
            c.get("/").text,
            c.get("/", params={"format": "json"}).text,
            c.get("/healthz").text,
        ]
        shown = [r["url"] for r in c.get("/", params={"format": "json"}).json()["repositories"]]
    for text in texts:
        assert secret not in text
    assert f"https://***@127.0.0.1:{port}/org/repo.git" in shown
    assert f"http://***@127.0.0.1:{port}/org/other.git" in shown


# -- actions: who may, and what they write ------------------------------------------------------


def test_a_csrf_token_of_another_cookie_or_another_server_is_refused(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    before = remote.heads()
    form = {"execution": shared.executions["deploy"], "gate": "ship/0", "comment": "ok"}
    with (
        _client(remote.path, cache=tmp_path / "a") as a,
        _client(remote.path, cache=tmp_path / "b") as b,
    ):
        token_a = _csrf(a)
        _csrf(b)  # b has a cookie of its own
        assert _post(b, "approve", {**form, "csrf": token_a}).status_code == 403
        # the same cookie and token, but another server (another secret): refused
        cookie = a.cookies.get("alloy-ui-csrf")
        assert cookie
        b.cookies.clear()
        b.cookies.set("alloy-ui-csrf", cookie)
        assert _post(b, "approve", {**form, "csrf": token_a}).status_code == 403
        # a reloaded page's token still works (it is made from the cookie): the control
        assert _post(a, "approve", {**form, "csrf": token_a}).status_code == 201
    after = remote.heads()
    assert after.pop("refs/heads/main") == before.pop("refs/heads/main")
    assert len(after) == len(before) + 1


def test_posts_from_another_site_are_refused_by_origin_or_referer(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    before = remote.heads()
    form = {"execution": shared.executions["deploy"], "gate": "ship/0", "comment": "ok"}
    with _client(
        remote.path, cache=tmp_path / "cache", security=Security(tokens={TOKEN: "dave"})
    ) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        token = _csrf(c)
        for headers in (
            {"Origin": "null"},
            {"Origin": "https://evil.example"},
            {"Origin": "http://testserver.evil.example"},
            {"Referer": "https://evil.example/page"},
            {"Referer": "http://testserver.evil.example/"},
        ):
            response = _post(c, "approve", {**form, "csrf": token}, headers=headers)
            assert response.status_code == 403, (headers, response.text)
        # a login form posted by another site (to sign the victim in as someone else)
        login = c.post(
            "/login",
            data={"token": TOKEN},
            headers={"Origin": "https://evil.example"},
            follow_redirects=False,
        )
        assert login.status_code == 403
        assert "set-cookie" not in login.headers
        same = _post(
            c,
            "approve",
            {**form, "csrf": token},
            headers={"Referer": "http://testserver/r/remote/propose"},
        )
        assert same.status_code == 201, same.text
    assert len(remote.heads()) == len(before) + 1


def test_non_ascii_tokens_and_csrf_values_are_refused_not_a_crash(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    before = remote.heads()
    weird = "é" * 24
    with _client(
        remote.path, cache=tmp_path / "cache", security=Security(tokens={TOKEN: "dave"})
    ) as c:
        bearer = c.get(
            "/",
            params={"format": "json"},
            headers={"Authorization": f"Bearer {weird}".encode("latin-1")},
        )
        assert bearer.status_code == 401
        cookie = c.get(
            "/",
            params={"format": "json"},
            headers={"Cookie": f"alloy-ui-token={weird}".encode("latin-1")},
        )
        assert cookie.status_code == 401
        login = c.post("/login", data={"token": weird})
        assert login.status_code == 401
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        c.get("/")
        form = {
            "execution": shared.executions["deploy"],
            "gate": "ship/0",
            "comment": "ok",
            "csrf": weird,
        }
        assert _post(c, "approve", form).status_code == 403
    assert remote.heads() == before


def test_weak_or_ambiguous_token_files_are_refused(tmp_path: Path) -> None:
    for text, words in [
        ("short-token", "16 characters"),
        ("a" * 24, "easy to guess"),
        ("ab" * 12, "easy to guess"),
        ("0123012301230123", "easy to guess"),
        ("alice é" + "x" * 20, "ASCII"),
        (f"alice {TOKEN}\nbob {TOKEN}\n", "same token"),
        ("# nothing but a comment\n", "no token"),
    ]:
        with pytest.raises(UserError, match=words):
            read_tokens("tokens", text)
    assert read_tokens("tokens", f"alice {TOKEN}\n") == {TOKEN: "alice"}
    weak = tmp_path / "tokens"
    weak.write_text("a" * 32 + "\n")
    result = run_cli(
        "alloy",
        "ui",
        "--repo",
        str(tmp_path),
        "--listen",
        "0.0.0.0:0",
        "--token-file",
        str(weak),
        cwd=tmp_path,
    )
    assert result.code == 1, result.err
    assert "easy to guess" in result.err
    assert "Traceback" not in result.err


def test_a_token_in_the_query_string_is_not_a_token(remote: Remote, tmp_path: Path) -> None:
    with _client(
        remote.path, cache=tmp_path / "cache", security=Security(tokens={TOKEN: "dave"})
    ) as c:
        for name in ("token", "access_token", "alloy-ui-token"):
            response = c.get("/", params={"format": "json", name: TOKEN})
            assert response.status_code == 401, name
        assert (
            c.get(
                "/", params={"format": "json"}, headers={"Authorization": f"Bearer {TOKEN}"}
            ).status_code
            == 200
        )


def test_deciding_a_gate_that_does_not_wait_is_a_clear_400(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere" / "other.git"
    shutil.copytree(remote.path, other, symlinks=True)
    # the other repository has an execution of its own, waiting, that this one does not know
    exe = shared.executions["deploy"]
    foreign = "exe-0f0f0f0f0f0f0f0f"
    claim = remote.show(f"refs/alloy/claims/{exe}:trace.json").replace(
        exe.encode(), foreign.encode()
    )
    Remote(other).update(
        f"refs/alloy/claims/{foreign}",
        {"claim.json": b'{"state": "parked"}', "trace.json": claim},
        orphan=True,
    )
    before = remote.heads()
    with _client(remote.path, other, cache=tmp_path / "cache") as c:
        assert c.get(f"/r/other/executions/{foreign}").status_code == 200
        token = _csrf(c)
        cases = [
            ({"execution": foreign, "gate": "ship/0"}, "not one of repository remote's"),
            ({"execution": "exe-0123456789abcdef", "gate": "ship/0"}, "not one of"),
            ({"execution": exe + "\n", "gate": "ship/0"}, "not one of"),
            ({"execution": "../../etc/passwd", "gate": "ship/0"}, "not one of"),
            ({"execution": shared.executions["flaky"], "gate": "test/0"}, "has failed"),
            ({"execution": exe, "gate": "ship/99"}, "no approval gate"),
            ({"execution": exe, "gate": "plan/0"}, "no approval gate"),
            ({"execution": exe, "gate": "ship/-1"}, "resolve"),
            ({"execution": exe, "gate": "../ship"}, "is not BLOCK"),
        ]
        for form, words in cases:
            for decision in ("approve", "reject"):
                response = _post(c, decision, {"csrf": token, "comment": "ok", **form})
                assert response.status_code == 400, (form, response.text)
                assert words in response.json()["error"], (form, response.json())
        done = _post(
            c, "approve", {"csrf": token, "comment": "ok", "execution": exe, "gate": "ship/0"}
        )
        assert done.status_code == 201, done.text
    after = remote.heads()
    assert len(after) == len(before) + 1
    assert after["refs/heads/main"] == before["refs/heads/main"]


def test_malformed_action_input_is_refused_and_writes_nothing(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    before = remote.everything()
    exe = shared.executions["deploy"]
    with _client(remote.path, cache=tmp_path / "cache") as c:
        token = _csrf(c)
        cases: list[tuple[str, dict[str, str], str]] = [
            ("propose", {"name": "../evil", "goal": "g", "owners": "alice"}, "not a slug"),
            ("propose", {"name": "a/b", "goal": "g", "owners": "alice"}, "not a slug"),
            ("propose", {"name": "x" * 70, "goal": "g", "owners": "alice"}, "not a slug"),
            ("propose", {"name": ".alloy", "goal": "g", "owners": "alice"}, "not a slug"),
            ("propose", {"name": "ok-name", "goal": "g", "owners": "alice\nb: [x]"}, "owners"),
            ("propose", {"name": "ok-name", "goal": " ", "owners": "alice"}, "goal"),
            ("request", {"intent": "../../x", "reason": "r"}, "no intent named"),
            ("request", {"intent": "docs-build", "reason": "r", "inputs": "x=1"}, "unknown input"),
            ("request", {"intent": "docs-build", "reason": " "}, "reason"),
            ("move", {"intent": "../planned", "to": "accepted", "reason": "r"}, "no intent named"),
            ("move", {"intent": "planned", "to": "accepted\n", "reason": "r"}, "one of"),
            ("approve", {"execution": exe, "gate": "ship/0", "comment": "x" * 20_000}, "10000"),
            (
                "approve",
                {"execution": exe, "gate": "ship/0", "comment": "x" * (2 * 1024 * 1024)},
                "maximum size",
            ),
        ]
        for action, form, words in cases:
            response = _post(c, action, {"csrf": token, **form})
            assert response.status_code == 400, (action, form, response.text[:300])
            assert words in response.json()["error"], (action, response.json())
        many = {f"f{i}": "x" for i in range(5000)}
        response = _post(c, "approve", {"csrf": token, **many})
        assert response.status_code == 400
    assert remote.everything() == before


def test_a_form_with_files_or_a_flood_of_fields_is_refused_before_it_is_read(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    """No form of the dashboard has a file or more than a dozen fields: a body that does is
    refused as it is parsed (before it is spooled to disk or held in memory)."""
    before = remote.everything()
    form = {"execution": shared.executions["deploy"], "gate": "ship/0", "comment": "ok"}
    with _client(remote.path, cache=tmp_path / "cache") as c:
        token = _csrf(c)
        upload = c.post(
            f"/r/{KEY}/actions/approve",
            data={**form, "csrf": token},
            files={"attachment": ("big.bin", b"\0" * (3 * 1024 * 1024))},
            params={"format": "json"},
        )
        assert upload.status_code == 400, upload.text
        assert "files" in upload.json()["error"]
        flood = _post(c, "approve", {**form, "csrf": token, **{f"f{i}": "x" for i in range(150)}})
        assert flood.status_code == 400, flood.text
        assert "fields" in flood.json()["error"]
        big = _post(c, "approve", {**form, "csrf": token, "comment": "x" * (300 * 1024)})
        assert big.status_code == 400
        login = c.post("/login", data={"token": "x" * (300 * 1024)})
        assert login.status_code == 400
    assert remote.everything() == before


def test_a_lifecycle_move_changes_spec_state_and_nothing_else(
    remote: Remote, tmp_path: Path
) -> None:
    later = (
        "apiVersion: alloy.dev/v1\nkind: Intent\nspec:\n"
        "  goal: The release notes list every change.  # why: readers ask\n"
        "metadata:\n  name: later\n  owners: [alice]\n  labels:\n    state: green\n"
    )
    flow = (
        "apiVersion: alloy.dev/v1\nkind: Intent\n"
        "metadata: {name: flowy, owners: [alice], labels: {state: amber}}\n"
        'spec: {state: "proposed", goal: The changelog is published.}\n'
    )
    remote.update(
        "refs/heads/main", {".alloy/intents/later.yaml": later, ".alloy/intents/flowy.yaml": flow}
    )
    before = remote.heads()["refs/heads/main"]
    with _client(remote.path, cache=tmp_path / "cache") as c:
        token = _csrf(c)
        for name, labels in (("later", {"state": "green"}), ("flowy", {"state": "amber"})):
            done = _post(
                c, "move", {"csrf": token, "intent": name, "to": "accepted", "reason": "agreed"}
            )
            assert done.status_code == 201, done.text
            branch = done.json()["branch"]
            doc = yaml.safe_load(remote.show(f"{branch}:.alloy/intents/{name}.yaml"))
            assert doc["spec"]["state"] == "accepted", doc
            assert doc["metadata"]["labels"] == labels
            diff = remote.git(
                "diff", "--numstat", "refs/heads/main", branch, "--", f".alloy/intents/{name}.yaml"
            )
            assert diff.split()[:2] in (["1", "1"], ["1", "0"]), diff
    text = remote.show("refs/heads/main:.alloy/intents/later.yaml").decode()
    assert text == later
    assert remote.heads()["refs/heads/main"] == before


def test_a_lifecycle_move_of_an_intent_read_through_a_link_edits_the_linked_file(
    remote: Remote, tmp_path: Path
) -> None:
    text = remote.show("refs/heads/main:.alloy/intents/planned.yaml")
    remote.update(
        "refs/heads/main",
        {
            ".alloy/shared/planned.yaml": text,
            ".alloy/intents/planned.yaml": ("120000", b"../shared/planned.yaml"),
        },
    )
    with _client(remote.path, cache=tmp_path / "cache") as c:
        assert "planned" in _intents(c)
        form = {"csrf": _csrf(c), "intent": "planned", "to": "accepted", "reason": "agreed"}
        done = _post(c, "move", form)
        assert done.status_code == 201, done.text
    branch = done.json()["branch"]
    assert ".alloy/shared/planned.yaml" in done.json()["files"]
    moved = remote.show(f"{branch}:.alloy/shared/planned.yaml")
    assert moved == text.replace(b"state: proposed", b"state: accepted")
    # the link is still a link
    listing = remote.git("ls-tree", branch, ".alloy/intents/planned.yaml")
    assert listing.startswith("120000 "), listing


def test_an_action_sees_the_default_branch_as_it_is_now(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    with _client(remote.path, cache=tmp_path / "cache") as c:
        token = _csrf(c, f"/r/{KEY}/intents/planned")
        # meanwhile a pull request that accepts `planned` is merged
        path = ".alloy/intents/planned.yaml"
        text = remote.show(f"refs/heads/main:{path}").replace(
            b"state: proposed", b"state: accepted"
        )
        merged = remote.update("refs/heads/main", {path: text}, message="Accept planned (#12)")
        before = remote.heads()
        response = _post(
            c, "move", {"csrf": token, "intent": "planned", "to": "accepted", "reason": "r"}
        )
        assert response.status_code == 400, response.text
        assert "already accepted" in response.json()["error"]
        assert remote.heads() == before
        done = _post(c, "move", {"csrf": token, "intent": "planned", "to": "active", "reason": "r"})
        assert done.status_code == 201, done.text
        assert remote.sha(f"{done.json()['branch']}^") == merged


def test_two_approvals_at_once_make_two_branches(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    main = remote.sha("refs/heads/main")
    form = {"execution": shared.executions["deploy"], "gate": "ship/0", "comment": "ok"}
    with _client(remote.path, cache=tmp_path / "cache") as c:
        token = _csrf(c)
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(
                pool.map(lambda _: _post(c, "approve", {**form, "csrf": token}), range(2))
            )
    assert [r.status_code for r in results] == [201, 201], [r.text for r in results]
    branches = {r.json()["branch"] for r in results}
    assert len(branches) == 2
    for branch in branches:
        assert remote.sha(f"{branch}^") == main
    assert remote.sha("refs/heads/main") == main


def test_a_remote_that_refuses_the_push_is_a_502_with_its_reason(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    hook = remote.path / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'new branches are frozen until Monday' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = remote.everything()
    with _client(remote.path, cache=tmp_path / "cache") as c:
        form = {
            "csrf": _csrf(c),
            "execution": shared.executions["deploy"],
            "gate": "ship/0",
            "comment": "ok",
        }
        response = _post(c, "approve", form)
        page = c.post(f"/r/{KEY}/actions/approve", data=form)
    assert response.status_code == page.status_code == 502
    error = response.json()["error"]
    assert "frozen until Monday" in error, error
    assert "pre-receive hook declined" in error, error
    assert "frozen until Monday" in page.text
    assert remote.everything() == before


def test_a_read_only_server_refuses_a_well_formed_action(
    remote: Remote, shared: UiWorld, tmp_path: Path
) -> None:
    before = remote.everything()
    security = Security(identity="alice")
    with _client(remote.path, cache=tmp_path / "cache", writable=False, security=security) as c:
        c.get("/")
        cookie = c.cookies.get("alloy-ui-csrf")
        assert cookie
        token = security.csrf_for(cookie)  # the token a page would carry, if it had a form
        form = {"execution": shared.executions["deploy"], "gate": "ship/0", "comment": "ok"}
        response = _post(c, "approve", {"csrf": token, **form})
        assert response.status_code == 403
        assert "read-only" in response.json()["error"]
        for action in ("propose", "move", "request", "reject"):
            assert _post(c, action, {"csrf": token, **form}).status_code == 403
    assert remote.everything() == before


def test_method_tricks_reach_no_action(remote: Remote, shared: UiWorld, tmp_path: Path) -> None:
    before = remote.everything()
    form = {"execution": shared.executions["deploy"], "gate": "ship/0", "comment": "ok"}
    with _client(remote.path, cache=tmp_path / "cache") as c:
        token = _csrf(c)
        url = f"/r/{KEY}/actions/approve"
        assert c.get(url, params={**form, "csrf": token}).status_code == 405
        assert c.put(url, data={**form, "csrf": token}).status_code == 405
        assert c.delete(url).status_code == 405
        assert c.patch(url, data={**form, "csrf": token}).status_code == 405
        tricks = c.get(
            url,
            params={**form, "csrf": token, "_method": "POST"},
            headers={"X-HTTP-Method-Override": "POST"},
        )
        assert tricks.status_code == 405
        assert c.post("/", data={**form, "csrf": token}).status_code == 405
    assert remote.everything() == before


# -- URLs and parameters -----------------------------------------------------------------------


def test_url_tricks(remote: Remote, shared: UiWorld, tmp_path: Path) -> None:
    with _client(remote.path, cache=tmp_path / "cache") as c:
        for url in (
            "/r/..%2f../intents/flaky",
            f"/r/{KEY}/intents/..%2fflaky",
            f"/r/{KEY}/intents/%2e%2e",
            "/r/nope/intents/flaky",
            f"/r/{KEY}/executions/..%2f..%2fetc%2fpasswd",
            f"/r/{KEY}/executions/{shared.executions['flaky']}/download/..%2fjson",
            "/static/..%2f_app.py",
            "/static/%2e%2e/_app.py",
        ):
            response = c.get(url)
            assert response.status_code == 404, (url, response.status_code)
            assert "root:x:0:0" not in response.text
            assert "create_app" not in response.text
        unknown = c.get("/nowhere", params={"format": "json"})
        assert unknown.status_code == 404
        assert unknown.headers["content-type"].startswith("application/json")
        assert unknown.json()["error"]
        assert c.get("/r/nope/intents/flaky", params={"format": "json"}).json()["error"]
        for page in ("-5", "0", "99999999999999999999", "1e9", "x", "9" * 5000):
            data = c.get("/", params={"page": page, "format": "json"}).json()
            assert data["page"] == 1, page
            assert len(data["intents"]) == 5
        for needle in (".*", "(", "[a-z]+", "\\", "%", "\x00"):
            data = c.get(
                "/",
                params={
                    "q": needle,
                    "owner": needle,
                    "label": needle + "=" + needle,
                    "format": "json",
                },
            ).json()
            assert data["total"] == 0, needle
        assert c.get("/", params={"q": "integration"}).status_code == 200


def test_event_stream_parameters(remote: Remote, tmp_path: Path) -> None:
    with _client(remote.path, cache=tmp_path / "cache") as c:
        for params in (
            {"since": "abc"},
            {"limit": "1.5"},
            {"limit": "9" * 5000},
            {"since": "0x10"},
        ):
            assert c.get("/events", params=params).status_code == 400, params
        with c.stream("GET", "/events", params={"limit": "-1", "since": "-7"}) as response:
            body = "".join(response.iter_text())
        assert body.count("event: change") == 1


def test_health_tells_what_went_wrong_only_to_those_with_a_token(
    remote: Remote, tmp_path: Path
) -> None:
    gone = tmp_path / "gone.git"
    with _client(
        remote.path, gone, cache=tmp_path / "cache", security=Security(tokens={TOKEN: "dave"})
    ) as c:
        anonymous = c.get("/healthz")
        assert anonymous.status_code == 503
        assert anonymous.json()["ok"] is False
        assert "errors" not in anonymous.json()
        assert str(tmp_path) not in anonymous.text
        known = c.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"})
        assert known.status_code == 503
        assert set(known.json()["errors"]) == {"gone"}


# -- the real process --------------------------------------------------------------------------


@contextlib.contextmanager
def _serve(repo: Path, tmp: Path, *extra: str, nofile: int | None = None) -> Iterator[int]:
    """`alloy ui` as a process on a free loopback port (its file descriptors limited to
    `nofile`); the port, once it answers /healthz."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [
        "ui",
        "--repo",
        str(repo),
        "--listen",
        f"127.0.0.1:{port}",
        "--cache",
        str(tmp / "ui-cache"),
        "--poll",
        "0.05",
        *extra,
    ]
    if nofile is None:
        command = [sys.executable, "-m", "alloy", *args]
    else:
        limit = f"import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile})); sys.argv = ['alloy', *sys.argv[1:]]; runpy.run_module('alloy', run_name='__main__')"
        command = [sys.executable, "-c", limit, *args]
    log = (tmp / f"ui-{port}.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for("alloy ui to answer", lambda: _answers(port) or proc.poll() is not None)
        assert proc.poll() is None, (tmp / f"ui-{port}.log").read_text()
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _answers(port: int) -> bool:
    try:
        return _get(port, "/healthz")[0] > 0
    except OSError:
        return False


def _get(
    port: int, path: str, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _open_stream(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return sock


def _read_until(sock: socket.socket, words: bytes, deadline: float) -> bytes:
    data = b""
    end = time.monotonic() + deadline
    sock.settimeout(0.5)
    while time.monotonic() < end and words not in data:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return data


def test_the_real_server_logs_no_credentials_of_a_remote_url(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file:http:https")
    secret = "glpat-Vx8Qm2Lk9Rt4Zw1"
    url = f"https://oauth2:{secret}@127.0.0.1:9/group/project.git"
    with _serve(remote.path, tmp_path, "--repo", url) as port:
        status, _, body = _get(port, "/?format=json")
        assert status == 200
        assert secret.encode() not in body
    logs = b"".join(p.read_bytes() for p in tmp_path.glob("ui-*.log"))
    assert b"warning: --repo https://***@127.0.0.1:9/group/project.git" in logs, logs
    assert secret.encode() not in logs


def _heads(socks: list[socket.socket], deadline: float) -> list[bytes]:
    """What each socket received up to the end of the response's head (all read at once, for
    at most `deadline` seconds in all)."""
    got = dict.fromkeys(socks, b"")
    end = time.monotonic() + deadline
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while selector.get_map() and time.monotonic() < end:
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                chunk = sock.recv(65536)
                got[sock] += chunk
                if not chunk or b"\r\n\r\n" in got[sock]:
                    selector.unregister(sock)
    return [got[sock] for sock in socks]


def test_dns_rebinding_is_refused_by_the_real_server(remote: Remote, tmp_path: Path) -> None:
    """A page of evil.example whose name was made to resolve to 127.0.0.1 is same-origin with
    the dashboard in the browser's eyes; the server refuses to answer to that name."""
    with _serve(remote.path, tmp_path) as port:
        for host in (
            "evil.example",
            f"evil.example:{port}",
            "127.0.0.1.nip.io",
            "localhost.evil.example",
        ):
            status, headers, body = _get(port, "/", {"Host": host})
            assert status == 400, (host, status, body[:200])
            assert "set-cookie" not in headers
            assert b"acting as" not in body
            status, _, _ = _get(
                port, f"/r/{KEY}/propose", {"Host": host, "Accept": "application/json"}
            )
            assert status == 400
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1"):
            status, _, body = _get(port, "/", {"Host": host})
            assert status == 200, (host, body[:200])


def test_head_of_the_event_stream_is_its_headers_not_an_endless_wait(
    remote: Remote, tmp_path: Path
) -> None:
    with _serve(remote.path, tmp_path) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("HEAD", "/events")
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("content-type", "").startswith("text/event-stream")
            assert response.read() == b""
            # the response ended: the same connection carries the next request
            conn.request("GET", "/healthz")
            assert conn.getresponse().status == 200
        finally:
            conn.close()


def test_event_streams_cut_off_mid_change_leave_live_updates_working(
    remote: Remote, tmp_path: Path
) -> None:
    """Readers that go away while a change is announced (a tab closed, a proxy's timeout) must
    leave nothing held: the next reader still hears the next change, and the refresh goes on."""
    with _serve(remote.path, tmp_path) as port:
        for n in range(12):
            streams = [_open_stream(port) for _ in range(40)]
            for sock in streams[:3]:
                assert b"event: hello" in _read_until(sock, b"event: hello", 20)
            remote.git("branch", f"round-{n}", "refs/heads/main")
            time.sleep(0.02 * (n % 5))
            for sock in streams:
                sock.close()
        version = json.loads(_get(port, "/healthz")[2])["version"]
        reader = _open_stream(port)
        try:
            assert b"event: hello" in _read_until(reader, b"event: hello", 20)
            remote.git("branch", "last-round", "refs/heads/main")
            assert b"event: change" in _read_until(reader, b"event: change", 30)
        finally:
            reader.close()
        assert json.loads(_get(port, "/healthz")[2])["version"] > version


def test_more_event_streams_than_the_server_keeps_are_refused_and_the_rest_work(
    remote: Remote, tmp_path: Path
) -> None:
    """Each open stream holds a file descriptor. Past the number the server keeps, a stream is
    a 503; the streams it keeps still hear changes, and pages are still served (the refresh's
    git processes still get descriptors)."""
    with _serve(remote.path, tmp_path, nofile=256) as port:
        streams = []
        try:
            streams.extend(_open_stream(port) for _ in range(300))
            # which ones the server keeps is its choice (connections are served in any order)
            heads = _heads(streams, 60)
            kept = [
                sock
                for sock, head in zip(streams, heads, strict=True)
                if head.startswith(b"HTTP/1.1 200 ")
            ]
            refused = [head for head in heads if head.startswith(b"HTTP/1.1 503 ")]
            assert kept, {head[:40] for head in heads}
            assert refused, {head[:40] for head in heads}
            assert len(kept) + len(refused) == 300, {head[:40] for head in heads}
            first = kept[0]
            remote.update(
                "refs/heads/main",
                {
                    ".alloy/intents/planned.yaml": remote.show(
                        "refs/heads/main:.alloy/intents/planned.yaml"
                    )
                    + b"# moved\n"
                },
            )
            assert b"event: change" in _read_until(first, b"event: change", 30)
            assert b"event: change" in _read_until(kept[-1], b"event: change", 30)
            status, _, body = _get(port, "/?format=json")
            assert status == 200, body[:300]
        finally:
            for sock in streams:
                sock.close()
