"""A stateful fake of the GitHub REST API for the tests, served on 127.0.0.1.

The tests put Prism (`prism proxy --errors`, see tests/github_prism.py) in front of it with
GitHub's own OpenAPI description, so every request a client sends and every response this fake
returns is checked against GitHub's contract. Responses therefore carry every field GitHub's
response schemas require, and every URL in them points at `public_url` (the proxy), so a client
that follows a URL stays behind Prism.

What it keeps: repositories and their branches (name -> head sha), check runs (with their
annotations), issue comments, pull requests, reviews, commit statuses, team memberships, an App installation and its tokens, a request log,
the core rate-limit quota, and faults queued by the test (`fail_next`). It is thread-safe: one
lock guards all state.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import html
import json
import re
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

DOCS = "https://docs.github.com/rest"
RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_RATE_LIMIT_BODY: dict[str, Any] = {
    "message": (
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
        "again. If you reach out to GitHub Support for help, please include the request ID "
        "0000:0000:0000000:0000000:00000000."
    ),
    "documentation_url": (
        "https://docs.github.com/free-pro-team@latest/rest/overview/"
        "rate-limits-for-the-rest-api#about-secondary-rate-limits"
    ),
}
# GitHub's limits on a check run's output (per request) and annotations (per request).
MAX_OUTPUT_CHARS = 65535
MAX_ANNOTATIONS_PER_REQUEST = 50
REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING")

# Real ids where the tests' webhook payloads (@octokit/webhooks-examples) use these names.
KNOWN_IDS = {
    "Codertocat": 21031067,
    "github-actions[bot]": 41898282,
    "github": 9919,
    "octocat": 583231,
}
DEFAULT_REPO = "Codertocat/Hello-World"
DEFAULT_REPO_ID = 186853002
GITHUB_ACTIONS_APP = {
    "id": 15368,
    "slug": "github-actions",
    "name": "GitHub Actions",
    "owner": "github",
}


class ApiError(Exception):
    """A GitHub error response: `status` with GitHub's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        docs: str = DOCS,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {
            "message": message,
            "documentation_url": docs,
            "status": str(status),
        }
        if errors is not None:
            self.body["errors"] = errors
        self.headers = dict(headers or {})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# GitHub's media types for bodies (docs: "Media types"): `raw` (the default) gives `body`,
# `text` adds body_text, `html` body_html, `full` both. github3.py asks for
# application/vnd.github.v3.full+json and its PullRequest, PullReview and IssueComment models
# fail without body_html/body_text.
_BODY_MEDIA = re.compile(r"application/vnd\.github(?:\.v3)?\.(raw|text|html|full)\+json")


def _media(accept: str | None) -> str:
    found = _BODY_MEDIA.search(accept or "")
    return found.group(1) if found else "raw"


def _bodies(text: str | None, media: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {"body": text}  # the schemas require `body` itself
    if media in ("text", "full"):
        out["body_text"] = text
    if media in ("html", "full"):
        out["body_html"] = None if text is None else f"<p>{html.escape(text)}</p>"
    return out


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _owner(full_name: str) -> str:
    return full_name.split("/", 1)[0]


def _node_id(kind: str, ident: int | str) -> str:
    return base64.b64encode(f"0:{kind}{ident}".encode()).decode().rstrip("=")


def _user_id(login: str) -> int:
    if login in KNOWN_IDS:
        return KNOWN_IDS[login]
    return int(hashlib.sha256(login.encode()).hexdigest()[:7], 16) + 1_000_000


@dataclass
class RecordedRequest:
    """One request as the fake saw it (after Prism, when behind it)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    json: Any
    status: int = 0  # the status the fake answered with


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    headers: dict[str, str]
    body: Any
    times: int


@dataclass
class Repo:
    owner: str
    name: str
    id: int
    private: bool = False
    default_branch: str = "main"
    fork: bool = False
    owner_type: str = "User"

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class CheckRun:
    id: int
    repo: str
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    started_at: str | None
    completed_at: str | None
    external_id: str | None
    details_url: str | None
    output_title: str | None
    output_summary: str | None
    output_text: str | None
    annotations: list[dict[str, Any]]
    check_suite_id: int
    app: dict[str, Any]


@dataclass
class Comment:
    id: int
    repo: str
    issue_number: int
    body: str
    user: str
    created_at: str
    updated_at: str
    history: list[str] = field(default_factory=list)  # earlier bodies, oldest first


@dataclass
class Pull:
    repo: str
    number: int
    id: int
    head_sha: str
    head_ref: str
    head_repo: str
    base_ref: str
    base_sha: str
    user: str
    title: str
    body: str | None
    state: str
    merged: bool
    merge_commit_sha: str | None
    draft: bool
    created_at: str
    merged_at: str | None


@dataclass
class Review:
    id: int
    repo: str
    number: int
    user: str
    state: str
    commit_id: str | None
    body: str
    submitted_at: str


@dataclass
class Status:
    id: int
    repo: str
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: str
    created_at: str


Handler = Callable[["_Call"], tuple[int, Any] | tuple[int, Any, dict[str, str]]]


@dataclass
class _Call:
    """What a route handler gets: the request, the caller and the path's parameters."""

    method: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any
    login: str | None
    app: dict[str, Any]
    media: str = "raw"

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


class _Server(ThreadingHTTPServer):
    """Keeps its open connections, so that stopping ends every handler thread (a keep-alive
    connection from Prism would otherwise hold one, blocked on a read, after the test)."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.live: set[socket.socket] = set()
        self.live_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.live_lock:
            self.live.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.live_lock:
            self.live.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.live_lock:
            live = list(self.live)
        for sock in live:
            with contextlib.suppress(OSError):  # already closed by the other side
                sock.shutdown(socket.SHUT_RDWR)


class FakeGitHub:
    """The fake API. `start()` serves it on 127.0.0.1 (a free port); `stop()` ends it.

    tokens: the tokens it accepts (`Authorization: token X` or `Bearer X`), each mapped to the
    login it acts as. app_id / app_public_key: when a PEM public key is given, App JWTs
    (`Authorization: Bearer <jwt>`) must be RS256-signed by its private key with `iss` equal to
    app_id; otherwise any well-formed JWT is accepted as the App.
    """

    def __init__(
        self,
        *,
        tokens: Mapping[str, str] | Iterable[str] = ("test-token",),
        app_id: int = 4242,
        app_slug: str = "alloy-foundry",
        app_public_key: str | bytes | None = None,
        installation_id: int = 1,
        rate_limit: int = 5000,
    ) -> None:
        if isinstance(tokens, Mapping):
            self._initial_tokens = dict(tokens)
        else:
            self._initial_tokens = dict.fromkeys(tokens, "github-actions[bot]")
        self.app_id = app_id
        self.app_slug = app_slug
        self.app_public_key = self._initial_app_public_key = app_public_key
        self.installation_id = installation_id
        self._initial_rate_limit = rate_limit
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self.public_url = ""
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._add_routes()
        self.reset()

    # ---- serving

    def start(self, port: int = 0) -> FakeGitHub:
        fake = self

        class _Handler(_RequestHandler):
            owner = fake

        self._server = _Server(("127.0.0.1", port), _Handler)
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-github", daemon=True
        )
        self._thread.start()
        if not self.public_url:
            self.public_url = self.direct_url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def direct_url(self) -> str:
        """The fake itself, bypassing Prism (no contract checks)."""
        assert self._port is not None, "the fake was never started"
        return f"http://127.0.0.1:{self._port}"

    # ---- state set up by the tests

    def reset(self) -> None:
        """Forget everything the tests or clients did: back to one repository, the tokens and
        App key given at construction, a full quota, no faults and an empty request log."""
        with self._lock:
            self.app_public_key = self._initial_app_public_key
            self._next_id = 1000
            self._tokens = dict(self._initial_tokens)
            self._token_apps: dict[str, dict[str, Any]] = {}
            self._repos: dict[str, Repo] = {}
            self._branches: dict[tuple[str, str], str] = {}  # (repo, branch) -> head sha
            self._check_runs: dict[int, CheckRun] = {}
            self._suites: dict[tuple[str, str], int] = {}
            self._comments: dict[int, Comment] = {}
            self._issues: dict[tuple[str, int], str] = {}  # (repo, number) -> title
            self._pulls: dict[tuple[str, int], Pull] = {}
            self._reviews: list[Review] = []
            self._statuses: list[Status] = []
            self._teams: dict[tuple[str, str, str], tuple[str, str]] = {}
            self._faults: list[Fault] = []
            self._log: list[RecordedRequest] = []
            self.internal_errors: list[str] = []  # tracebacks of the fake's own bugs
            self._rate = {
                "limit": self._initial_rate_limit,
                "remaining": self._initial_rate_limit,
                "reset": int(time.time()) + 3600,
                "used": 0,
            }
            self.add_repo(DEFAULT_REPO, repo_id=DEFAULT_REPO_ID, default_branch="main")

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_token(self, token: str, login: str = "github-actions[bot]") -> None:
        with self._lock:
            self._tokens[token] = login

    def add_repo(
        self,
        full_name: str,
        *,
        private: bool = False,
        default_branch: str = "main",
        fork: bool = False,
        repo_id: int | None = None,
    ) -> None:
        owner, name = full_name.split("/", 1)
        with self._lock:
            self._repos[full_name] = Repo(
                owner, name, repo_id or self._new_id(), private, default_branch, fork
            )
            sha = hashlib.sha1(f"{full_name}:{default_branch}".encode()).hexdigest()  # noqa: S324
            self._branches.setdefault((full_name, default_branch), sha)

    def add_branch(self, name: str, sha: str, *, repo: str = DEFAULT_REPO) -> None:
        """A branch of `repo` (a pull request can be opened from it) at commit `sha`."""
        with self._lock:
            self._branches[(repo, name)] = sha

    def add_issue(self, number: int, title: str = "An issue", *, repo: str = DEFAULT_REPO) -> None:
        with self._lock:
            self._issues[(repo, number)] = title

    def add_pull(
        self,
        number: int,
        head_sha: str,
        *,
        base_ref: str = "main",
        user: str = "octocat",
        merged: bool = False,
        merge_commit_sha: str | None = None,
        head_repo_full_name: str | None = None,
        head_ref: str | None = None,
        base_sha: str = "0" * 40,
        title: str | None = None,
        body: str | None = None,
        state: str | None = None,
        draft: bool = False,
        repo: str = DEFAULT_REPO,
    ) -> None:
        """A pull request (and its issue). `head_repo_full_name` other than `repo` makes it a
        pull request from a fork; a merged one is closed and, with `merge_commit_sha`, is
        associated with that commit too."""
        with self._lock:
            head_repo = head_repo_full_name or repo
            if head_repo not in self._repos:
                self.add_repo(head_repo, fork=head_repo != repo)
            now = _now()
            head_ref = head_ref or f"topic-{number}"
            self._branches.setdefault((head_repo, head_ref), head_sha)
            self._issues[(repo, number)] = title or f"Pull request {number}"
            self._pulls[(repo, number)] = Pull(
                repo=repo,
                number=number,
                id=self._new_id(),
                head_sha=head_sha,
                head_ref=head_ref,
                head_repo=head_repo,
                base_ref=base_ref,
                base_sha=base_sha,
                user=user,
                title=title or f"Pull request {number}",
                body=body,
                state=state or ("closed" if merged else "open"),
                merged=merged,
                merge_commit_sha=merge_commit_sha,
                draft=draft,
                created_at=now,
                merged_at=now if merged else None,
            )

    def add_review(
        self,
        number: int,
        user: str,
        state: str,
        *,
        commit_id: str | None = None,
        body: str = "",
        repo: str = DEFAULT_REPO,
    ) -> int:
        if state not in REVIEW_STATES:
            raise ValueError(f"review state {state!r} is not one of {REVIEW_STATES}")
        with self._lock:
            pull = self._pulls[(repo, number)]
            review = Review(
                self._new_id(),
                repo,
                number,
                user,
                state,
                commit_id if commit_id is not None else pull.head_sha,
                body,
                _now(),
            )
            self._reviews.append(review)
            return review.id

    def add_team_member(
        self, org: str, team: str, user: str, *, role: str = "member", state: str = "active"
    ) -> None:
        with self._lock:
            self._teams[(org.lower(), team.lower(), user.lower())] = (role, state)

    def set_rate_limit(
        self, *, remaining: int | None = None, limit: int | None = None, reset: int | None = None
    ) -> None:
        """Set the core quota; at remaining 0 every counted request gets GitHub's primary
        rate-limit 403 until `reset` (epoch seconds)."""
        with self._lock:
            if limit is not None:
                self._rate["limit"] = limit
            if remaining is not None:
                self._rate["remaining"] = remaining
            if reset is not None:
                self._rate["reset"] = reset
            self._rate["used"] = self._rate["limit"] - self._rate["remaining"]

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests of `method` whose path matches `path_regex`
        (re.search; no query string) with `status`, `headers` (over the usual rate-limit
        headers) and `body` (JSON for a dict or list, else sent as text; by default GitHub's
        error shape). 501 is refused: Prism answers an upstream 501 with a mock instead."""
        if status == 501:
            raise ValueError("Prism re-mocks upstream 501 responses; use another status")
        with self._lock:
            self._faults.append(
                Fault(
                    method.upper(), re.compile(path_regex), status, dict(headers or {}), body, times
                )
            )

    def fail_next_secondary_rate_limit(
        self, method: str, path_regex: str, *, retry_after: int = 1, times: int = 1
    ) -> None:
        """GitHub's secondary rate limit: 403, its message, and Retry-After."""
        self.fail_next(
            method,
            path_regex,
            403,
            headers={"Retry-After": str(retry_after)},
            body=SECONDARY_RATE_LIMIT_BODY,
            times=times,
        )

    def fail_next_primary_rate_limit(
        self, method: str, path_regex: str, *, reset_in: int = 1, status: int = 403, times: int = 1
    ) -> None:
        """GitHub's primary rate limit: 403 (or 429), X-RateLimit-Remaining 0 and the Reset."""
        with self._lock:
            limit = self._rate["limit"]
        self.fail_next(
            method,
            path_regex,
            status,
            times=times,
            headers={
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Used": str(limit),
                "X-RateLimit-Reset": str(int(time.time()) + reset_in),
            },
            body={
                "message": f"API rate limit exceeded for installation ID {self.installation_id}.",
                "documentation_url": RATE_LIMIT_DOCS,
            },
        )

    @property
    def client_id(self) -> str:
        """The App's client ID (GitHub takes it, or the app id, as a JWT's `iss`)."""
        return f"Iv1.{self.app_id:016x}"

    # ---- state read by the tests (copies)

    def check_runs(self, repo: str = DEFAULT_REPO) -> list[CheckRun]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._check_runs.values() if r.repo == repo]

    def check_run(self, check_run_id: int) -> CheckRun:
        with self._lock:
            return copy.deepcopy(self._check_runs[check_run_id])

    def comments(self, repo: str = DEFAULT_REPO, issue_number: int | None = None) -> list[Comment]:
        with self._lock:
            return [
                copy.deepcopy(c)
                for c in self._comments.values()
                if c.repo == repo and issue_number in (None, c.issue_number)
            ]

    def pulls(self, repo: str = DEFAULT_REPO) -> list[Pull]:
        """The pull requests of `repo`, by number."""
        with self._lock:
            found = [p for p in self._pulls.values() if p.repo == repo]
            return [copy.deepcopy(p) for p in sorted(found, key=lambda p: p.number)]

    def statuses(self, repo: str = DEFAULT_REPO, sha: str | None = None) -> list[Status]:
        with self._lock:
            return [
                copy.deepcopy(s) for s in self._statuses if s.repo == repo and sha in (None, s.sha)
            ]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return copy.deepcopy(self._log)

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method.upper() and pattern.search(r.path)]

    @property
    def rate_limit_remaining(self) -> int:
        with self._lock:
            return int(self._rate["remaining"])

    # ---- JSON shapes (GitHub's schemas; URLs under public_url)

    @property
    def _base(self) -> str:
        return self.public_url.rstrip("/")

    def _user(self, login: str) -> dict[str, Any]:
        base = self._base
        quoted = quote(login)  # as GitHub: .../users/github-actions%5Bbot%5D
        api = f"{base}/users/{quoted}"
        uid = _user_id(login)
        return {
            "login": login,
            "id": uid,
            "node_id": _node_id("U", uid),
            "avatar_url": f"{base}/avatars/u/{uid}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{base}/{quoted}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": "Bot" if login.endswith("[bot]") else "User",
            "site_admin": False,
        }

    def _repo(self, full_name: str) -> dict[str, Any]:
        """One object that satisfies repository, full-repository and minimal-repository."""
        repo = self._repos[full_name]
        base = self._base
        api = f"{base}/repos/{full_name}"
        html = f"{base}/{full_name}"
        created = "2019-05-15T15:19:25Z"
        return {
            "id": repo.id,
            "node_id": _node_id("R", repo.id),
            "name": repo.name,
            "full_name": full_name,
            "owner": self._user(repo.owner),
            "private": repo.private,
            "html_url": html,
            "description": None,
            "fork": repo.fork,
            "url": api,
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "assignees_url": f"{api}/assignees{{/user}}",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "comments_url": f"{api}/comments{{/number}}",
            "commits_url": f"{api}/commits{{/sha}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "contributors_url": f"{api}/contributors",
            "deployments_url": f"{api}/deployments",
            "downloads_url": f"{api}/downloads",
            "events_url": f"{api}/events",
            "forks_url": f"{api}/forks",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_url": f"{html}.git",
            "ssh_url": f"{html}.git",
            "clone_url": f"{html}.git",
            "svn_url": html,
            "mirror_url": None,
            "homepage": None,
            "language": None,
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "issues_url": f"{api}/issues{{/number}}",
            "keys_url": f"{api}/keys{{/key_id}}",
            "labels_url": f"{api}/labels{{/name}}",
            "languages_url": f"{api}/languages",
            "merges_url": f"{api}/merges",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "releases_url": f"{api}/releases{{/id}}",
            "stargazers_url": f"{api}/stargazers",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "tags_url": f"{api}/tags",
            "teams_url": f"{api}/teams",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "hooks_url": f"{api}/hooks",
            "forks_count": 0,
            "forks": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "watchers": 0,
            "size": 0,
            "open_issues_count": 0,
            "open_issues": 0,
            "subscribers_count": 0,
            "network_count": 0,
            "default_branch": repo.default_branch,
            "has_issues": True,
            "has_projects": True,
            "has_wiki": True,
            "has_pages": False,
            "has_downloads": True,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "visibility": "private" if repo.private else "public",
            "license": None,
            "pushed_at": created,
            "created_at": created,
            "updated_at": created,
            "permissions": {
                "admin": False,
                "maintain": False,
                "push": True,
                "triage": True,
                "pull": True,
            },
        }

    def _app_json(self, app: Mapping[str, Any]) -> dict[str, Any]:
        base = self._base
        return {
            "id": app["id"],
            "slug": app["slug"],
            "node_id": _node_id("A", app["id"]),
            "client_id": f"Iv1.{app['id']:016x}",
            "owner": self._user(app["owner"]),
            "name": app["name"],
            "description": None,
            "external_url": f"{base}/apps/{app['slug']}",
            "html_url": f"{base}/apps/{app['slug']}",
            "created_at": "2018-07-30T09:30:17Z",
            "updated_at": "2019-12-10T19:04:12Z",
            "permissions": {
                "checks": "write",
                "contents": "read",
                "issues": "write",
                "metadata": "read",
                "pull_requests": "write",
                "statuses": "write",
            },
            "events": ["check_run", "pull_request", "pull_request_review", "push"],
        }

    def _our_app(self) -> dict[str, Any]:
        repo_owner = _owner(DEFAULT_REPO)
        return {
            "id": self.app_id,
            "slug": self.app_slug,
            "name": self.app_slug,
            "owner": repo_owner,
        }

    def _check_run_json(self, run: CheckRun) -> dict[str, Any]:
        base = self._base
        url = f"{base}/repos/{run.repo}/check-runs/{run.id}"
        html = f"{base}/{run.repo}/runs/{run.id}"
        pulls = [
            {
                "id": p.id,
                "number": p.number,
                "url": f"{base}/repos/{p.repo}/pulls/{p.number}",
                "head": {"ref": p.head_ref, "sha": p.head_sha, "repo": self._repo_ref(p.head_repo)},
                "base": {"ref": p.base_ref, "sha": p.base_sha, "repo": self._repo_ref(p.repo)},
            }
            for p in self._pulls.values()
            if p.repo == run.repo
            and p.head_sha == run.head_sha
            and p.head_repo == p.repo
            and p.state == "open"
        ]
        return {
            "id": run.id,
            "node_id": _node_id("CR", run.id),
            "head_sha": run.head_sha,
            "external_id": run.external_id if run.external_id is not None else "",
            "url": url,
            "html_url": html,
            "details_url": run.details_url or html,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": run.started_at,
            "completed_at": run.completed_at,
            "name": run.name,
            "output": {
                "title": run.output_title,
                "summary": run.output_summary,
                "text": run.output_text,
                "annotations_count": len(run.annotations),
                "annotations_url": f"{url}/annotations",
            },
            "check_suite": {"id": run.check_suite_id},
            "app": self._app_json(run.app),
            "pull_requests": pulls,
        }

    def _repo_ref(self, full_name: str) -> dict[str, Any]:
        repo = self._repos[full_name]
        return {"id": repo.id, "url": f"{self._base}/repos/{full_name}", "name": repo.name}

    def _comment_json(self, c: Comment, media: str = "raw") -> dict[str, Any]:
        base = self._base
        kind = "pull" if (c.repo, c.issue_number) in self._pulls else "issues"
        return {
            "id": c.id,
            "node_id": _node_id("IC", c.id),
            "url": f"{base}/repos/{c.repo}/issues/comments/{c.id}",
            "html_url": f"{base}/{c.repo}/{kind}/{c.issue_number}#issuecomment-{c.id}",
            "issue_url": f"{base}/repos/{c.repo}/issues/{c.issue_number}",
            **_bodies(c.body, media),
            "user": self._user(c.user),
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "author_association": "NONE",
        }

    def _pull_json(self, p: Pull, media: str = "raw") -> dict[str, Any]:
        """A pull-request (and so a pull-request-simple too)."""
        base = self._base
        api = f"{base}/repos/{p.repo}"
        url = f"{api}/pulls/{p.number}"
        html = f"{base}/{p.repo}/pull/{p.number}"
        head_owner = p.head_repo.split("/")[0]
        base_owner = p.repo.split("/")[0]
        head_sha_statuses = f"{api}/statuses/{p.head_sha}"
        links = {
            "self": url,
            "html": html,
            "issue": f"{api}/issues/{p.number}",
            "comments": f"{api}/issues/{p.number}/comments",
            "review_comments": f"{url}/comments",
            "review_comment": f"{api}/pulls/comments{{/number}}",
            "commits": f"{url}/commits",
            "statuses": head_sha_statuses,
        }
        return {
            "url": url,
            "id": p.id,
            "node_id": _node_id("PR", p.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": links["issue"],
            "commits_url": links["commits"],
            "review_comments_url": links["review_comments"],
            "review_comment_url": links["review_comment"],
            "comments_url": links["comments"],
            "statuses_url": head_sha_statuses,
            "number": p.number,
            "state": p.state,
            "locked": False,
            "title": p.title,
            "user": self._user(p.user),
            **_bodies(p.body, media),
            "labels": [],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": p.created_at,
            "updated_at": p.created_at,
            "closed_at": p.merged_at if p.state == "closed" else None,
            "merged_at": p.merged_at,
            "merge_commit_sha": p.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": {
                "label": f"{head_owner}:{p.head_ref}",
                "ref": p.head_ref,
                "sha": p.head_sha,
                "user": self._user(head_owner),
                "repo": self._repo(p.head_repo),
            },
            "base": {
                "label": f"{base_owner}:{p.base_ref}",
                "ref": p.base_ref,
                "sha": p.base_sha,
                "user": self._user(base_owner),
                "repo": self._repo(p.repo),
            },
            "_links": {k: {"href": v} for k, v in links.items()},
            "author_association": "CONTRIBUTOR",
            "auto_merge": None,
            "draft": p.draft,
            "merged": p.merged,
            "mergeable": None if p.merged else True,
            "rebaseable": None if p.merged else True,
            "mergeable_state": "unknown" if p.merged else "clean",
            "merged_by": self._user(base_owner) if p.merged else None,
            "comments": sum(
                1 for c in self._comments.values() if (c.repo, c.issue_number) == (p.repo, p.number)
            ),
            "review_comments": 0,
            "maintainer_can_modify": False,
            "commits": 1,
            "additions": 1,
            "deletions": 0,
            "changed_files": 1,
        }

    def _review_json(self, r: Review, media: str = "raw") -> dict[str, Any]:
        base = self._base
        pull_url = f"{base}/repos/{r.repo}/pulls/{r.number}"
        html = f"{base}/{r.repo}/pull/{r.number}#pullrequestreview-{r.id}"
        return {
            "id": r.id,
            "node_id": _node_id("PRR", r.id),
            "user": self._user(r.user),
            **_bodies(r.body, media),
            "state": r.state,
            "html_url": html,
            "pull_request_url": pull_url,
            "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
            "submitted_at": r.submitted_at,
            "commit_id": r.commit_id,
            "author_association": "COLLABORATOR",
        }

    def _status_json(self, s: Status, *, simple: bool = False) -> dict[str, Any]:
        creator = self._user(s.creator)
        out: dict[str, Any] = {
            "url": f"{self._base}/repos/{s.repo}/statuses/{s.sha}",
            "avatar_url": creator["avatar_url"],
            "id": s.id,
            "node_id": _node_id("SC", s.id),
            "state": s.state,
            "description": s.description,
            "target_url": s.target_url,
            "context": s.context,
            "created_at": s.created_at,
            "updated_at": s.created_at,
        }
        if not simple:
            out["creator"] = creator
        return out

    def _installation_json(self) -> dict[str, Any]:
        base = self._base
        owner = _owner(DEFAULT_REPO)
        app = self._app_json(self._our_app())
        return {
            "id": self.installation_id,
            "account": self._user(owner),
            "repository_selection": "selected",
            "access_tokens_url": f"{base}/app/installations/{self.installation_id}/access_tokens",
            "repositories_url": f"{base}/installation/repositories",
            "html_url": f"{base}/settings/installations/{self.installation_id}",
            "app_id": self.app_id,
            "app_slug": self.app_slug,
            "client_id": app["client_id"],
            "target_id": _user_id(owner),
            "target_type": "User",
            "permissions": app["permissions"],
            "events": app["events"],
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    # ---- routes

    def _add_routes(self) -> None:
        r = self._route
        r("GET", "/rate_limit", self._get_rate_limit)
        r("GET", "/repos/{owner}/{repo}", self._get_repo)
        r("POST", "/repos/{owner}/{repo}/check-runs", self._create_check_run)
        r("GET", "/repos/{owner}/{repo}/check-runs/{id}", self._get_check_run)
        r("PATCH", "/repos/{owner}/{repo}/check-runs/{id}", self._update_check_run)
        r("GET", "/repos/{owner}/{repo}/check-runs/{id}/annotations", self._list_annotations)
        r("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs", self._list_check_runs)
        r("GET", "/repos/{owner}/{repo}/issues/{number}/comments", self._list_comments)
        r("POST", "/repos/{owner}/{repo}/issues/{number}/comments", self._create_comment)
        r("GET", "/repos/{owner}/{repo}/issues/comments/{id}", self._get_comment)
        r("PATCH", "/repos/{owner}/{repo}/issues/comments/{id}", self._update_comment)
        r("GET", "/repos/{owner}/{repo}/pulls", self._list_pulls)
        r("POST", "/repos/{owner}/{repo}/pulls", self._create_pull)
        r("GET", "/repos/{owner}/{repo}/pulls/{number}", self._get_pull)
        r("GET", "/repos/{owner}/{repo}/pulls/{number}/reviews", self._list_reviews)
        r("GET", "/repos/{owner}/{repo}/commits/{sha}/pulls", self._pulls_for_commit)
        r("POST", "/repos/{owner}/{repo}/statuses/{sha}", self._create_status)
        r("GET", "/repos/{owner}/{repo}/commits/{ref}/status", self._combined_status)
        r("GET", "/repos/{owner}/{repo}/commits/{ref}/statuses", self._list_statuses)
        r("GET", "/orgs/{org}/teams/{team}/memberships/{username}", self._team_membership)
        r("GET", "/repos/{owner}/{repo}/installation", self._get_installation)
        r("POST", "/app/installations/{id}/access_tokens", self._create_access_token)

    def _route(self, method: str, template: str, handler: Handler) -> None:
        def group(m: re.Match[str]) -> str:
            numeric = m.group(1) in ("id", "number")
            return f"(?P<{m.group(1)}>{'[0-9]+' if numeric else '[^/]+'})"

        pattern = re.sub(r"\{(\w+)\}", group, template)
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    # App endpoints take the App's JWT; every other one an installation or personal token.
    APP_ENDPOINTS = ("_get_installation", "_create_access_token")

    def _repo_of(self, call: _Call) -> str:
        full = f"{call.params['owner']}/{call.params['repo']}"
        if full not in self._repos:
            raise ApiError(404, "Not Found")
        return full

    def _page(self, call: _Call, items: list[Any], path: str) -> tuple[list[Any], dict[str, str]]:
        per_page = max(1, min(100, _int(call.q("per_page"), 30)))
        page = max(1, _int(call.q("page"), 1))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []
        params = {k: v[-1] for k, v in call.query.items() if k not in ("page", "per_page")}

        def link(n: int, rel: str) -> str:
            query = urlencode({**params, "per_page": per_page, "page": n})
            return f'<{self._base}{path}?{query}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        return chunk, ({"Link": ", ".join(links)} if links else {})

    def _get_rate_limit(self, call: _Call) -> tuple[int, Any]:
        core = dict(self._rate)
        search = {"limit": 30, "remaining": 30, "reset": core["reset"], "used": 0}
        return 200, {"resources": {"core": core, "search": search}, "rate": core}

    def _get_repo(self, call: _Call) -> tuple[int, Any]:
        return 200, self._repo(self._repo_of(call))

    def _check_output(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        output = body.get("output")
        if output is None:
            return None
        if not isinstance(output, dict):
            raise ApiError(422, "Invalid request.\n\nFor 'properties/output', is not an object.")
        annotations = output.get("annotations") or []
        if len(annotations) > MAX_ANNOTATIONS_PER_REQUEST:
            raise ApiError(
                422,
                "Invalid request.\n\nOnly 50 annotations are allowed per request.",
                [{"resource": "CheckRun", "field": "annotations", "code": "invalid"}],
            )
        for key in ("summary", "text"):
            value = output.get(key)
            if isinstance(value, str) and len(value) > MAX_OUTPUT_CHARS:
                raise ApiError(
                    422,
                    "Invalid request.\n\nOnly 65535 characters are allowed; "
                    f"{len(value)} were supplied.",
                    [{"resource": "CheckRun", "field": f"output.{key}", "code": "invalid"}],
                )
        return output

    def _apply_check_run(
        self, run: CheckRun, body: Mapping[str, Any], output: Mapping[str, Any] | None
    ) -> None:
        for key in ("name", "external_id", "details_url", "started_at"):
            if key in body:
                setattr(run, key, body[key])
        status = body.get("status")
        conclusion = body.get("conclusion")
        if status == "completed" and conclusion is None and run.conclusion is None:
            raise ApiError(
                422,
                'Invalid request.\n\nNo subschema in "anyOf" matched.\n'
                '"conclusion" wasn\'t supplied.',
            )
        if conclusion is not None:
            run.conclusion = conclusion
            run.status = "completed"
        elif status is not None:
            run.status = status
        if run.status == "completed":
            run.completed_at = body.get("completed_at") or run.completed_at or _now()
        if output is not None:
            run.output_title = output.get("title", run.output_title)
            run.output_summary = output.get("summary", run.output_summary)
            run.output_text = output.get("text", run.output_text)
            base = self._base
            for a in output.get("annotations") or []:
                run.annotations.append(
                    {
                        "path": a["path"],
                        "start_line": a["start_line"],
                        "end_line": a["end_line"],
                        "start_column": a.get("start_column"),
                        "end_column": a.get("end_column"),
                        "annotation_level": a["annotation_level"],
                        "title": a.get("title"),
                        "message": a["message"],
                        "raw_details": a.get("raw_details"),
                        "blob_href": f"{base}/{run.repo}/blob/{run.head_sha}/{a['path']}",
                    }
                )

    def _create_check_run(self, call: _Call) -> tuple[int, Any]:
        full = self._repo_of(call)
        body = call.body if isinstance(call.body, dict) else {}
        if not body.get("name") or not body.get("head_sha"):
            raise ApiError(422, 'Invalid request.\n\n"name", "head_sha" weren\'t supplied.')
        output = self._check_output(body)
        suite = self._suites.setdefault((full, body["head_sha"]), self._new_id())
        run = CheckRun(
            id=self._new_id(),
            repo=full,
            name=body["name"],
            head_sha=body["head_sha"],
            status="queued",
            conclusion=None,
            started_at=_now(),
            completed_at=None,
            external_id=None,
            details_url=None,
            output_title=None,
            output_summary=None,
            output_text=None,
            annotations=[],
            check_suite_id=suite,
            app=call.app,
        )
        self._apply_check_run(run, body, output)
        self._check_runs[run.id] = run
        return 201, self._check_run_json(run)

    def _find_check_run(self, call: _Call) -> CheckRun:
        full = self._repo_of(call)
        run = self._check_runs.get(int(call.params["id"]))
        if run is None or run.repo != full:
            raise ApiError(404, "Not Found")
        return run

    def _get_check_run(self, call: _Call) -> tuple[int, Any]:
        return 200, self._check_run_json(self._find_check_run(call))

    def _update_check_run(self, call: _Call) -> tuple[int, Any]:
        run = self._find_check_run(call)
        body = call.body if isinstance(call.body, dict) else {}
        output = self._check_output(body)
        updated = copy.deepcopy(run)  # all or nothing, as GitHub
        self._apply_check_run(updated, body, output)
        self._check_runs[run.id] = updated
        return 200, self._check_run_json(updated)

    def _list_annotations(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        run = self._find_check_run(call)
        items, headers = self._page(
            call, run.annotations, f"/repos/{run.repo}/check-runs/{run.id}/annotations"
        )
        return 200, items, headers

    def _resolve_ref(self, full: str, ref: str) -> str:
        """A branch name of a known pull request's head stands for its sha; else the ref is
        taken as a sha."""
        for p in self._pulls.values():
            if p.head_repo == full and ref in (p.head_ref, f"refs/heads/{p.head_ref}"):
                return p.head_sha
        return ref

    def _list_check_runs(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        full = self._repo_of(call)
        sha = self._resolve_ref(full, call.params["ref"])
        runs = sorted(
            (r for r in self._check_runs.values() if r.repo == full and r.head_sha == sha),
            key=lambda r: -r.id,
        )
        name, status = call.q("check_name"), call.q("status")
        if name is not None:
            runs = [r for r in runs if r.name == name]
        if status is not None:
            runs = [r for r in runs if r.status == status]
        if call.q("filter", "latest") == "latest":
            seen: set[str] = set()
            latest = []
            for r in runs:
                if r.name not in seen:
                    seen.add(r.name)
                    latest.append(r)
            runs = latest
        items, headers = self._page(
            call, runs, f"/repos/{full}/commits/{call.params['ref']}/check-runs"
        )
        return (
            200,
            {"total_count": len(runs), "check_runs": [self._check_run_json(r) for r in items]},
            headers,
        )

    def _issue(self, call: _Call) -> tuple[str, int]:
        full = self._repo_of(call)
        number = int(call.params["number"])
        if (full, number) not in self._issues:
            raise ApiError(404, "Not Found")
        return full, number

    def _list_comments(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        full, number = self._issue(call)
        comments = sorted(
            (c for c in self._comments.values() if (c.repo, c.issue_number) == (full, number)),
            key=lambda c: c.id,
        )
        since = call.q("since")
        if since is not None:
            comments = [c for c in comments if c.updated_at >= since]
        items, headers = self._page(call, comments, f"/repos/{full}/issues/{number}/comments")
        return 200, [self._comment_json(c, call.media) for c in items], headers

    def _comment_body(self, call: _Call) -> str:
        body = call.body.get("body") if isinstance(call.body, dict) else None
        if not isinstance(body, str):
            raise ApiError(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
        if len(body) > MAX_OUTPUT_CHARS:
            raise ApiError(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "IssueComment",
                        "code": "custom",
                        "field": "body",
                        "message": "body is too long (maximum is 65536 characters)",
                    }
                ],
            )
        return body

    def _create_comment(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        full, number = self._issue(call)
        body = self._comment_body(call)
        now = _now()
        comment = Comment(self._new_id(), full, number, body, call.login or "ghost", now, now)
        self._comments[comment.id] = comment
        out = self._comment_json(comment, call.media)
        return 201, out, {"Location": out["url"]}

    def _find_comment(self, call: _Call) -> Comment:
        full = self._repo_of(call)
        comment = self._comments.get(int(call.params["id"]))
        if comment is None or comment.repo != full:
            raise ApiError(404, "Not Found")
        return comment

    def _get_comment(self, call: _Call) -> tuple[int, Any]:
        return 200, self._comment_json(self._find_comment(call), call.media)

    def _update_comment(self, call: _Call) -> tuple[int, Any]:
        comment = self._find_comment(call)
        body = self._comment_body(call)
        comment.history.append(comment.body)
        comment.body = body
        comment.updated_at = _now()
        return 200, self._comment_json(comment, call.media)

    def _find_pull(self, call: _Call) -> Pull:
        full = self._repo_of(call)
        pull = self._pulls.get((full, int(call.params["number"])))
        if pull is None:
            raise ApiError(404, "Not Found")
        return pull

    def _get_pull(self, call: _Call) -> tuple[int, Any]:
        return 200, self._pull_json(self._find_pull(call), call.media)

    def _list_pulls(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        """`GET /repos/{o}/{r}/pulls`: `state` (open by default), `head` as `owner:ref` (GitHub
        ignores a head without the owner, so does the fake), `base`; newest first unless
        `sort`/`direction` say otherwise; paginated."""
        full = self._repo_of(call)
        state = call.q("state", "open")
        pulls = [p for p in self._pulls.values() if p.repo == full]
        if state != "all":
            pulls = [p for p in pulls if p.state == state]
        head = call.q("head")
        if head and ":" in head:
            owner, _, ref = head.partition(":")
            pulls = [
                p
                for p in pulls
                if _owner(p.head_repo).lower() == owner.lower() and (not ref or p.head_ref == ref)
            ]
        base = call.q("base")
        if base:
            pulls = [p for p in pulls if p.base_ref == base]
        sort = call.q("sort", "created")
        direction = call.q("direction", "desc" if sort == "created" else "asc")
        pulls.sort(key=lambda p: p.number, reverse=direction == "desc")
        items, headers = self._page(call, pulls, f"/repos/{full}/pulls")
        return 200, [self._pull_json(p, call.media) for p in items], headers

    def _create_pull(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        """`POST /repos/{o}/{r}/pulls`, with GitHub's 422s: a title (or an issue) missing, a
        head or base branch the repository does not have, no commits between them, or an open
        pull request already there for that head and base."""
        full = self._repo_of(call)
        body = call.body if isinstance(call.body, dict) else {}
        head, base = str(body.get("head") or ""), str(body.get("base") or "")
        repo = self._repos[full]
        if ":" in head:
            head_owner, _, ref = head.partition(":")
        else:
            head_owner, ref = repo.owner, head
        head_repo = body.get("head_repo")
        if not isinstance(head_repo, str) or head_repo not in self._repos:
            head_repo = None
            if head_owner.lower() == repo.owner.lower():
                head_repo = full
            else:  # a fork in the network: the head owner's repository of that name, else any
                forks = sorted(
                    (
                        r.full_name
                        for r in self._repos.values()
                        if r.owner.lower() == head_owner.lower()
                    ),
                    key=lambda n: n.split("/", 1)[1] != repo.name,
                )
                head_repo = forks[0] if forks else None

        def invalid(field: str, code: str = "invalid") -> ApiError:
            return ApiError(
                422,
                "Validation Failed",
                [{"resource": "PullRequest", "field": field, "code": code}],
                docs=f"{DOCS}/pulls/pulls#create-a-pull-request",
            )

        def custom(message: str) -> ApiError:
            return ApiError(
                422,
                "Validation Failed",
                [{"resource": "PullRequest", "code": "custom", "message": message}],
                docs=f"{DOCS}/pulls/pulls#create-a-pull-request",
            )

        issue = body.get("issue")
        title = body.get("title")
        number = None
        if issue is not None:
            issue_key = (full, int(issue))
            if issue_key not in self._issues or issue_key in self._pulls:
                raise invalid("issue")
            number, title = int(issue), self._issues[issue_key]
        if not title:
            raise invalid("title", "missing_field")
        head_sha = self._branches.get((head_repo, ref)) if head_repo and ref else None
        if head_sha is None:
            raise invalid("head")
        base_sha = self._branches.get((full, base))
        if base_sha is None:
            raise invalid("base")
        if (head_repo == full and ref == base) or head_sha == base_sha:
            raise custom(f"No commits between {base} and {head}")
        for p in self._pulls.values():
            if (p.repo, p.head_repo, p.head_ref, p.base_ref, p.state) == (
                full,
                head_repo,
                ref,
                base,
                "open",
            ):
                raise custom(f"A pull request already exists for {_owner(head_repo)}:{ref}.")
        if number is None:
            number = max((n for (r, n) in self._issues if r == full), default=0) + 1
        self._issues[(full, number)] = str(title)
        pull = Pull(
            repo=full,
            number=number,
            id=self._new_id(),
            head_sha=head_sha,
            head_ref=ref,
            head_repo=head_repo,
            base_ref=base,
            base_sha=base_sha,
            user=call.login or "ghost",
            title=str(title),
            body=body.get("body") if isinstance(body.get("body"), str) else None,
            state="open",
            merged=False,
            merge_commit_sha=None,
            draft=bool(body.get("draft")),
            created_at=_now(),
            merged_at=None,
        )
        self._pulls[(full, number)] = pull
        out = self._pull_json(pull, call.media)
        return 201, out, {"Location": out["url"]}

    def _list_reviews(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        pull = self._find_pull(call)
        reviews = [r for r in self._reviews if (r.repo, r.number) == (pull.repo, pull.number)]
        items, headers = self._page(
            call, reviews, f"/repos/{pull.repo}/pulls/{pull.number}/reviews"
        )
        return 200, [self._review_json(r, call.media) for r in items], headers

    def _pulls_for_commit(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        full = self._repo_of(call)
        sha = call.params["sha"]
        pulls = [
            p
            for p in self._pulls.values()
            if p.repo == full and (p.head_sha == sha or (p.merged and p.merge_commit_sha == sha))
        ]
        pulls.sort(key=lambda p: -p.number)
        items, headers = self._page(call, pulls, f"/repos/{full}/commits/{sha}/pulls")
        return 200, [self._pull_json(p, call.media) for p in items], headers

    def _create_status(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        full = self._repo_of(call)
        body = call.body if isinstance(call.body, dict) else {}
        if body.get("state") not in ("error", "failure", "pending", "success"):
            raise ApiError(
                422,
                "Validation Failed",
                [{"resource": "Status", "field": "state", "code": "custom"}],
            )
        status = Status(
            self._new_id(),
            full,
            call.params["sha"],
            body["state"],
            body.get("context") or "default",
            body.get("description"),
            body.get("target_url"),
            call.login or "ghost",
            _now(),
        )
        self._statuses.append(status)
        out = self._status_json(status)
        return 201, out, {"Location": out["url"]}

    def _combined_status(self, call: _Call) -> tuple[int, Any]:
        full = self._repo_of(call)
        sha = self._resolve_ref(full, call.params["ref"])
        latest: dict[str, Status] = {}
        for s in self._statuses:
            if s.repo == full and s.sha == sha:
                latest[s.context] = s
        states = {s.state for s in latest.values()}
        if states & {"error", "failure"}:
            state = "failure"
        elif not states or "pending" in states:
            state = "pending"
        else:
            state = "success"
        base = self._base
        minimal = self._repo(full)
        return 200, {
            "state": state,
            "sha": sha,
            "total_count": len(latest),
            "statuses": [self._status_json(s, simple=True) for s in latest.values()],
            "repository": minimal,
            "commit_url": f"{base}/repos/{full}/commits/{sha}",
            "url": f"{base}/repos/{full}/commits/{sha}/status",
        }

    def _list_statuses(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        full = self._repo_of(call)
        sha = self._resolve_ref(full, call.params["ref"])
        statuses = [s for s in reversed(self._statuses) if s.repo == full and s.sha == sha]
        items, headers = self._page(
            call, statuses, f"/repos/{full}/commits/{call.params['ref']}/statuses"
        )
        return 200, [self._status_json(s) for s in items], headers

    def _team_membership(self, call: _Call) -> tuple[int, Any]:
        p = call.params
        found = self._teams.get((p["org"].lower(), p["team"].lower(), p["username"].lower()))
        if found is None:
            raise ApiError(404, "Not Found")
        role, state = found
        return 200, {
            "url": f"{self._base}/organizations/{_user_id(p['org'])}/team/"
            f"{p['team']}/memberships/{p['username']}",
            "role": role,
            "state": state,
        }

    def _get_installation(self, call: _Call) -> tuple[int, Any]:
        full = self._repo_of(call)
        if _owner(full) != _owner(DEFAULT_REPO):
            raise ApiError(404, "Not Found")
        return 200, self._installation_json()

    def _create_access_token(self, call: _Call) -> tuple[int, Any]:
        if int(call.params["id"]) != self.installation_id:
            raise ApiError(404, "Not Found")
        token = "ghs_" + secrets.token_hex(18)
        self._tokens[token] = f"{self.app_slug}[bot]"
        self._token_apps[token] = self._our_app()
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        app = self._app_json(self._our_app())
        return 201, {
            "token": token,
            "expires_at": expires,
            "permissions": app["permissions"],
            "repository_selection": "selected",
        }

    # ---- request handling

    def _authenticate(self, header: str | None, app_endpoint: bool) -> tuple[str, dict[str, Any]]:
        """The caller's login and App, or ApiError 401."""
        if not header:
            raise ApiError(401, "Requires authentication")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if app_endpoint:
            if scheme.lower() != "bearer" or credential.count(".") != 2:
                raise ApiError(401, "A JSON web token could not be decoded")
            self._verify_jwt(credential)
            return f"{self.app_slug}[bot]", self._our_app()
        if scheme.lower() not in ("token", "bearer") or credential not in self._tokens:
            raise ApiError(401, "Bad credentials")
        app = self._token_apps.get(credential, GITHUB_ACTIONS_APP)
        return self._tokens[credential], app

    def _verify_jwt(self, token: str) -> None:
        import jwt  # PyJWT, installed with github3.py

        try:
            if self.app_public_key is None:
                jwt.get_unverified_header(token)
                return
            claims = jwt.decode(
                token,
                self.app_public_key,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "iss"]},
                leeway=60,
            )
        except jwt.PyJWTError as exc:
            raise ApiError(401, f"A JSON web token could not be decoded ({exc})") from exc
        if str(claims["iss"]) not in (str(self.app_id), self.client_id):
            raise ApiError(401, "'Issuer' claim ('iss') must be the App's id or client ID")

    def _rate_headers(self) -> dict[str, str]:
        rate = self._rate
        return {
            "X-RateLimit-Limit": str(rate["limit"]),
            "X-RateLimit-Remaining": str(rate["remaining"]),
            "X-RateLimit-Reset": str(rate["reset"]),
            "X-RateLimit-Used": str(rate["used"]),
            "X-RateLimit-Resource": "core",
        }

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], raw_body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One request in, one response out (status, headers, body)."""
        split = urlsplit(target)
        path = split.path.rstrip("/") or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        lowered = {k.lower(): v for k, v in headers.items()}
        body: Any = None
        parse_error = False
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                parse_error = True
                body = raw_body.decode("utf-8", "replace")
        with self._lock:
            entry = RecordedRequest(method, path, query, lowered, body)
            self._log.append(entry)
            try:
                status, out_headers, out_body = self._respond(
                    method, path, query=query, headers=lowered, body=body, parse_error=parse_error
                )
            except Exception:  # noqa: BLE001 - a bug in the fake: kept for the fixture to report
                self.internal_errors.append(f"{method} {target}\n{traceback.format_exc()}")
                status, out_headers = 500, {"Content-Type": "application/json; charset=utf-8"}
                out_body = json.dumps(
                    {
                        "message": "fake GitHub failed; see internal_errors",
                        "documentation_url": DOCS,
                    }
                ).encode()
            entry.status = status
        return status, out_headers, out_body

    def _respond(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        body: Any,
        parse_error: bool,
    ) -> tuple[int, dict[str, str], bytes]:
        base_headers = {"X-GitHub-Request-Id": secrets.token_hex(8).upper()}
        for fault in self._faults:
            if fault.method == method and fault.path.search(path):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return self._fault_response(fault, base_headers)
        counted = path != "/rate_limit"  # GitHub does not count /rate_limit against the quota
        try:
            status, payload, extra = self._dispatch(
                method, path, query=query, headers=headers, body=body, parse_error=parse_error
            )
        except ApiError as err:
            status, payload, extra = err.status, err.body, err.headers
        data = json.dumps(payload).encode()
        out = {**base_headers, "Content-Type": "application/json; charset=utf-8", **extra}
        if method == "GET" and 200 <= status < 300:
            etag = 'W/"' + hashlib.sha256(data).hexdigest()[:40] + '"'
            out["ETag"] = etag
            wanted = [t.strip() for t in headers.get("if-none-match", "").split(",")]
            if etag in wanted or "*" in wanted:
                # Not modified: no body, and GitHub does not count it against the quota.
                out.pop("Content-Type")
                return 304, {**out, **self._rate_headers()}, b""
        if counted and status != 401:
            self._rate["remaining"] = max(0, self._rate["remaining"] - 1)
            self._rate["used"] = self._rate["limit"] - self._rate["remaining"]
        return status, {**self._rate_headers(), **out}, data

    def _dispatch(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        body: Any,
        parse_error: bool,
    ) -> tuple[int, Any, dict[str, str]]:
        """Authenticate, check the quota, and run the route; GitHub's errors as ApiError."""
        route = None
        for m, pattern, handler in self._routes:
            match = pattern.match(path)
            if match and m == method:
                route = (handler, match.groupdict())
                break
        app_endpoint = route is not None and route[0].__name__ in self.APP_ENDPOINTS
        login, app = self._authenticate(headers.get("authorization"), app_endpoint)
        if path != "/rate_limit" and self._rate["remaining"] <= 0 and not app_endpoint:
            raise ApiError(
                403,
                f"API rate limit exceeded for installation ID {self.installation_id}.",
                docs=RATE_LIMIT_DOCS,
            )
        if parse_error:
            raise ApiError(400, "Problems parsing JSON")
        if route is None:
            raise ApiError(404, "Not Found")
        result = route[0](
            _Call(method, route[1], query, body, login, app, _media(headers.get("accept")))
        )
        extra: dict[str, str] = result[2] if len(result) > 2 else {}  # type: ignore[misc]
        return result[0], result[1], extra

    def _fault_response(
        self, fault: Fault, base_headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        body = fault.body
        if body is None:
            body = {"message": HTTPStatus(fault.status).phrase, "documentation_url": DOCS}
        if isinstance(body, dict | list):
            data = json.dumps(body).encode()
            content_type = "application/json; charset=utf-8"
        else:
            data = body if isinstance(body, bytes) else str(body).encode()
            content_type = "text/html; charset=utf-8"
        return (
            fault.status,
            {**self._rate_headers(), **base_headers, "Content-Type": content_type, **fault.headers},
            data,
        )


class _RequestHandler(BaseHTTPRequestHandler):
    owner: FakeGitHub
    protocol_version = "HTTP/1.1"
    server_version = "GitHub.com"
    sys_version = ""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, headers, body = self.owner.handle(self.command, self.path, dict(self.headers), raw)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status != 304:
            self.wfile.write(body)

    # http.server dispatches on these names.
    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass
