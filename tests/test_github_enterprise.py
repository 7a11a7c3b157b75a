"""A GitHub Enterprise Server base URL (`https://HOST/api/v3`): the adapter keeps the path
prefix on every call, including the pages it follows. A small prefix-serving front (as GHES
serves its API under `/api/v3`) forwards to Prism and the fake GitHub behind it."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controllers.forge import CheckRun
from controllers.github import Credentials, GitHubTransport, connect
from tests.github_prism import GitHubRig

PREFIX = "/api/v3"


class _Front(BaseHTTPRequestHandler):
    upstream = ""
    seen: list[str]

    def _forward(self) -> None:
        self.seen.append(self.path)
        if not self.path.startswith(PREFIX + "/"):
            self.send_response(404)
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        skip = {"host", "content-length", "connection"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        request = urllib.request.Request(  # noqa: S310 - the upstream is the test's own Prism
            self.upstream + self.path.removeprefix(PREFIX),
            data=body,
            headers=headers,
            method=self.command,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                status, answer_headers, data = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as exc:
            status, answer_headers, data = exc.code, exc.headers, exc.read()
        self.send_response(status)
        for key, value in answer_headers.items():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = _forward  # noqa: N815 - http.server's method names

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def enterprise(github: GitHubRig) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Front", (_Front,), {"upstream": github.api_url, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}{PREFIX}"
    github.fake.public_url = base  # the URLs GitHub returns (links, pages) carry the prefix
    try:
        yield base, seen
    finally:
        server.shutdown()
        server.server_close()


def test_an_enterprise_base_url_keeps_its_prefix(
    github: GitHubRig, enterprise: tuple[str, list[str]]
) -> None:
    base, seen = enterprise
    forge = connect(
        github.repo,
        api_url=base,
        credentials=Credentials(token=github.token),
        transport=GitHubTransport(sleep=lambda _s: None),
    )
    commit = "a" * 40
    notes = tuple(
        {"path": "README.md", "start_line": i + 1, "end_line": i + 1,
         "annotation_level": "notice", "message": f"note {i}"}
        for i in range(60)
    )  # fmt: skip
    run = CheckRun(
        commit, "foundry: x", "completed", "success", "ok", "all good", annotations=notes
    )
    assert forge.publish_check(run) is True
    assert forge.publish_check(run) is False, "found again through the prefix: not re-sent"
    github.fake.add_pull(3, commit)
    assert forge.comment("k", "hello", pull=3) is True
    [stored] = github.fake.check_runs()
    assert len(stored.annotations) == 60
    assert [c.body.endswith("hello") for c in github.fake.comments(issue_number=3)] == [True]
    assert seen, "every call went through the Enterprise base URL"
    assert all(path.startswith(PREFIX + "/") for path in seen), seen
