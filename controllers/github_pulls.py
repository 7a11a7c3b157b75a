"""GitHub pull requests for `alloy ui`: list a repository's open pull requests, and open one
from a branch the interface pushed.

Like `controllers.remote_view`, this adapter imports no Foundry (Alloy and Foundry never
import each other, not even through controllers): the forge adapter (`controllers.github`'s
client and forge) imports `foundry.errors`, so this one talks to GitHub's REST API itself,
with `requests` on the same transport (`controllers.github._transport`): the quota GitHub
reports, waits for primary and secondary rate limits, retries of server errors with jitter for
requests that are safe to repeat — never a POST — and conditional GETs. Every request asks for
`application/vnd.github+json` with `X-GitHub-Api-Version: 2022-11-28`.

* **Credentials**: a token, from `GITHUB_TOKEN`, else `GH_TOKEN` (the token sources of
  `controllers.github.Credentials`; a `GITHUB_TOKEN` in Actions is an installation token, and
  an App's installation token can be given the same way). A GitHub App's id and key are not
  used here (the App login lives in the forge's client, which imports Foundry). Listing works
  without a token on a public repository; opening needs one.
* **Enterprise**: `api` is the API base URL (`https://HOST/api/v3`), as `githubApi` in a
  repository's config; github.com by default.
* **Errors** are `PullsError`: one line with the request, GitHub's status and message, and
  what to check; never a traceback, never the token.

`parse_remote` tells whether a git remote URL is on GitHub (or on the Enterprise host of the
`api` given) and which repository it names, with the API base URL to use for it: a token is
only ever sent to github.com's API or to the Enterprise API the operator configured, never to
a host a remote URL names.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import requests
import requests.auth

from controllers.github._transport import API_VERSION, MEDIA_TYPE, GitHubTransport, Policy

DEFAULT_API = "https://api.github.com"
#: Items per page asked for (GitHub's maximum).
PER_PAGE = 100
#: The most pages a list follows before it stops with an error (never a silently cut list).
MAX_PAGES = 50
#: Seconds a request may take (connect, then each read).
TIMEOUT = 30.0
#: The interface waits on a page: rate-limit waits longer than this are not taken (the
#: request fails with GitHub's answer instead), and fewer attempts than the forge's.
INTERACTIVE = Policy(tries=3, backoff=0.5, max_wait=15.0)
USER_AGENT = "alloy-foundry (alloy ui)"

_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
#: git's scp-like syntax: `[user@]host:path` (no scheme, no slash before the colon).
_SCP = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^@/:]+):(?P<path>.+)$")
_SCHEMES = frozenset({"https", "http", "ssh", "git", "git+ssh", "ssh+git"})
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


class PullsError(RuntimeError):
    """A pull request could not be listed or opened; the message (one line) says why.

    status: GitHub's HTTP status, None when GitHub was not reached or not asked."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PullRequest:
    number: int
    title: str
    #: the login of the user who opened it ("" when GitHub no longer knows the account)
    author: str
    #: the head branch's name, and the repository it is in ("" for a deleted fork)
    head_ref: str
    head_sha: str
    head_repo: str
    base_ref: str
    html_url: str
    draft: bool


@dataclass(frozen=True)
class Opened:
    """The pull request `open` asked for. `created` is False when it was found instead: one
    was already open for that head and base, or the answer to the create was lost and the
    pull request was found afterwards."""

    number: int
    html_url: str
    created: bool


@dataclass(frozen=True)
class GitHubRemote:
    """A git remote on GitHub: the repository, its web host and the API base URL for it."""

    owner: str
    name: str
    host: str
    api: str

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.name}"


# -- remote URLs ------------------------------------------------------------------------------


def _api_base(api: str) -> str:
    parts = urllib.parse.urlsplit(api.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise PullsError(f"GitHub API {api!r}: not an http(s) URL (https://HOST/api/v3)")
    return urllib.parse.urlunsplit(parts._replace(query="", fragment="")).rstrip("/")


def _web_host(api: str) -> str:
    """The host a repository's URLs are on for this API base: `api.github.com` serves
    github.com (and `api.SUB.ghe.com` serves SUB.ghe.com); Enterprise Server serves its API
    on its own host, under /api/v3."""
    host = (urllib.parse.urlsplit(api).hostname or "").lower()
    return host.removeprefix("api.") if host.startswith("api.") else host


def parse_remote(url: str, *, api: str | None = None) -> GitHubRemote | None:
    """The GitHub repository a git remote URL names, or None when it is not one.

    github.com is always known (`https://github.com/o/r(.git)`, `git@github.com:o/r.git`,
    `ssh://git@github.com/o/r`); with `api` (an Enterprise API base URL such as
    `https://ghe.example.com/api/v3`) the Enterprise host is known too, and its remotes get
    that `api`. User information in the URL is ignored (never returned)."""
    hosts = {"github.com": DEFAULT_API, "www.github.com": DEFAULT_API}
    if api is not None:
        base = _api_base(api)
        hosts[_web_host(base)] = base
    text = url.strip()
    if "://" in text:
        parts = urllib.parse.urlsplit(text)
        if parts.scheme.lower() not in _SCHEMES or parts.query or parts.fragment:
            return None
        try:
            host = (parts.hostname or "").lower()
        except ValueError:
            return None
        path = parts.path
    else:
        found = _SCP.match(text)
        if found is None:
            return None
        host, path = found.group("host").lower(), found.group("path")
    if host not in hosts:
        return None
    path = path.strip("/")
    path = path.removesuffix(".git")
    segments = path.split("/")
    if len(segments) != 2:
        return None
    owner, name = segments
    if not _OWNER.match(owner) or not _NAME.match(name) or name in (".", ".."):
        return None
    web = "github.com" if hosts[host] == DEFAULT_API else host
    return GitHubRemote(owner=owner, name=name, host=web, api=hosts[host])


def token_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The token `controllers.github.Credentials` reads: `GITHUB_TOKEN`, else `GH_TOKEN`."""
    source = os.environ if env is None else env
    return source.get("GITHUB_TOKEN") or source.get("GH_TOKEN") or None


# -- the client -------------------------------------------------------------------------------


class GitHubPulls:
    """The pull requests of one repository (`OWNER/NAME`) on github.com or an Enterprise API.

    token: None reads the environment (`token_from_env`); "" means no token (anonymous).
    transport: shared across instances to share what GitHub said of the quota; by default a
    new one with the interactive policy. One instance per thread."""

    def __init__(
        self,
        repository: str,
        *,
        api: str | None = None,
        token: str | None = None,
        env: Mapping[str, str] | None = None,
        transport: GitHubTransport | None = None,
        per_page: int = PER_PAGE,
        timeout: float = TIMEOUT,
    ) -> None:
        owner, sep, name = repository.partition("/")
        if not sep or not _OWNER.match(owner) or not _NAME.match(name) or name in (".", ".."):
            raise PullsError(f"repository {repository!r}: write it as OWNER/NAME")
        self.owner, self.name = owner, name
        self.api = _api_base(api or DEFAULT_API)
        source = os.environ if env is None else env
        self._token = token_from_env(source) if token is None else token
        self._app_only = not self._token and bool(source.get("ALLOY_GITHUB_APP_ID"))
        self.per_page = max(1, min(PER_PAGE, per_page))
        self.timeout = timeout
        self.transport = transport or GitHubTransport(policy=INTERACTIVE)
        self._session = requests.Session()
        # The token is only what was given: as the session's auth, so requests never puts a
        # ~/.netrc entry in its place (proxies and CA bundles from the environment still apply).
        self._session.auth = _Bearer(self._token)
        self._session.mount("https://", self.transport)
        self._session.mount("http://", self.transport)
        self._session.headers.update(
            {"Accept": MEDIA_TYPE, "X-GitHub-Api-Version": API_VERSION, "User-Agent": USER_AGENT}
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> GitHubPulls:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.name}"

    def _url(self, *parts: str) -> str:
        quoted = (urllib.parse.quote(p, safe="") for p in ("repos", self.owner, self.name, *parts))
        return "/".join([self.api, *quoted])

    # -- reading -------------------------------------------------------------------------------

    def pulls(
        self,
        *,
        state: Literal["open", "closed", "all"] = "open",
        head: str | None = None,
        base: str | None = None,
    ) -> list[PullRequest]:
        """The pull requests in `state`, newest first, every page. `head` is a branch of this
        repository or `OWNER:BRANCH` (a fork's); `base` the branch they merge into."""
        params: dict[str, Any] = {"state": state, "per_page": self.per_page}
        wanted: tuple[str, str] | None = None
        if head is not None:
            owner, ref = self._head(head)
            params["head"] = f"{owner}:{ref}"
            wanted = (owner.lower(), ref)
        if base is not None:
            params["base"] = base
        found = [_pull(item) for item in self._pages(self._url("pulls"), params)]
        if wanted is not None:  # GitHub ignores a head filter it cannot read: check
            found = [p for p in found if p.head_ref == wanted[1] and _owner(p) == wanted[0]]
        if base is not None:
            found = [p for p in found if p.base_ref == base]
        return found

    def open_pulls(self) -> list[PullRequest]:
        return self.pulls(state="open")

    def find_open(self, head: str, *, base: str | None = None) -> PullRequest | None:
        """The open pull request from `head` (into `base`, when given), or None."""
        found = self.pulls(state="open", head=head, base=base)
        return found[0] if found else None

    def _head(self, head: str) -> tuple[str, str]:
        owner, sep, ref = head.partition(":")
        if not sep:
            owner, ref = self.owner, head
        if not owner or not ref:
            raise PullsError(f"head {head!r}: give a branch name or OWNER:BRANCH")
        return owner, ref

    # -- writing -------------------------------------------------------------------------------

    def open(
        self, *, head: str, base: str, title: str, body: str = "", draft: bool = False
    ) -> Opened:
        """Open a pull request from branch `head` (or `OWNER:BRANCH`) into `base`. When one is
        already open for that head and base, GitHub refuses (422 "A pull request already
        exists"); that one is returned (`created` False). The create is never repeated: after
        a server error or a lost answer, the open pull request is looked for instead."""
        if not self._token:
            raise PullsError(self._no_token(f"open a pull request on {self.repository}"))
        self._head(head)
        payload: dict[str, Any] = {"title": title, "head": head, "base": base, "body": body}
        if draft:
            payload["draft"] = True
        url = self._url("pulls")
        try:
            response = self._send("POST", url, json=payload)
        except PullsError:  # not reached, or the answer was lost on the way
            found = self._look(head, base)
            if found is None:
                raise
            return Opened(found.number, found.html_url, created=False)
        if response.status_code == 201:
            data = _json("POST", url, response)
            number = data.get("number") if isinstance(data, dict) else None
            if not isinstance(number, int):
                raise PullsError(f"POST {_path(url)}: 201 without a pull request number")
            return Opened(number, str(data.get("html_url") or ""), created=True)
        failure = self._failure("POST", url, response)
        if response.status_code == 422 and "already exists" in str(failure).lower():
            found = self._look(head, base)
            if found is not None:
                return Opened(found.number, found.html_url, created=False)
        elif response.status_code in (500, 502, 503, 504):
            found = self._look(head, base)  # GitHub may have done it: look before saying no
            if found is not None:
                return Opened(found.number, found.html_url, created=False)
        raise failure

    def _look(self, head: str, base: str) -> PullRequest | None:
        try:
            return self.find_open(head, base=base)
        except PullsError:
            return None

    # -- HTTP ----------------------------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            host = urllib.parse.urlsplit(url).netloc
            raise PullsError(
                self._clean(f"{method} {_path(url)}: cannot reach {host} ({_cause(exc)})")
            ) from None

    def _pages(self, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        query: dict[str, Any] | None = params
        next_url: str | None = url
        for _ in range(MAX_PAGES):
            assert next_url is not None
            response = self._send("GET", next_url, params=query)
            if response.status_code != 200:
                raise self._failure("GET", next_url, response)
            data = _json("GET", next_url, response)
            if not isinstance(data, list):
                raise PullsError(f"GET {_path(next_url)}: GitHub answered something not a list")
            out.extend(item for item in data if isinstance(item, dict))
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return out
            if not self._within(next_url):  # the token goes nowhere but to the API
                raise PullsError(f"GET {_path(url)}: the next page is off the API ({next_url})")
            query = None  # the next link carries the query
        raise PullsError(f"GET {_path(url)}: more than {MAX_PAGES} pages; stopped")

    def _within(self, url: str) -> bool:
        mine, other = urllib.parse.urlsplit(self.api), urllib.parse.urlsplit(url)
        return (
            other.scheme.lower() == mine.scheme.lower()
            and (other.hostname or "").lower() == (mine.hostname or "").lower()
            and _port(other) == _port(mine)
            and (other.path + "/").startswith(mine.path.rstrip("/") + "/")
        )

    def _failure(self, method: str, url: str, response: requests.Response) -> PullsError:
        status = response.status_code
        message, details = "", []
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            message = str(body.get("message") or "")
            for error in body.get("errors") or []:
                if isinstance(error, dict):
                    words = error.get("message") or " ".join(
                        str(error[k]) for k in ("field", "code") if error.get(k)
                    )
                    details.append(str(words))
                elif isinstance(error, str):
                    details.append(error)
        text = f"{status} {message or response.reason or 'error'}"
        if details:
            text += ": " + "; ".join(d for d in details if d)
        hint = self._hint(response)
        return PullsError(self._clean(f"{method} {_path(url)}: {text}{hint}"), status=status)

    def _hint(self, response: requests.Response) -> str:
        status = response.status_code
        if status == 401:
            if not self._token:
                return f" ({self._no_token('authenticate')})"
            return " (GitHub refused the token: check GITHUB_TOKEN)"
        if status in (403, 429):
            if response.headers.get("X-RateLimit-Remaining") == "0":
                return " (rate limit: try again later)"
            if response.headers.get("Retry-After"):
                return f" (rate limit: try again in {response.headers['Retry-After']} s)"
            return " (the token may not do this: it needs pull requests write access)"
        if status == 404:
            return f" (no repository {self.repository} at {self.api}, or the token cannot see it)"
        return ""

    def _no_token(self, what: str) -> str:
        if self._app_only:
            return (
                f"cannot {what}: no token; GitHub App credentials (ALLOY_GITHUB_APP_ID) are not "
                "used here, set GITHUB_TOKEN (an installation or personal token)"
            )
        return f"cannot {what}: no token; set GITHUB_TOKEN (or GH_TOKEN)"

    def _clean(self, text: str) -> str:
        line = " ".join(text.split())
        if self._token:
            line = line.replace(self._token, "***")
        return line if len(line) <= 500 else line[:499] + "…"


# -- functions for one call -------------------------------------------------------------------


def list_open_pulls(
    repository: str,
    *,
    api: str | None = None,
    token: str | None = None,
    transport: GitHubTransport | None = None,
) -> list[PullRequest]:
    """The open pull requests of `OWNER/NAME`, newest first."""
    with GitHubPulls(repository, api=api, token=token, transport=transport) as client:
        return client.open_pulls()


def open_pull(
    repository: str,
    *,
    head: str,
    base: str,
    title: str,
    body: str = "",
    draft: bool = False,
    api: str | None = None,
    token: str | None = None,
    transport: GitHubTransport | None = None,
) -> Opened:
    """Open (or find the open) pull request from `head` into `base` on `OWNER/NAME`."""
    with GitHubPulls(repository, api=api, token=token, transport=transport) as client:
        return client.open(head=head, base=base, title=title, body=body, draft=draft)


# -- helpers ----------------------------------------------------------------------------------


class _Bearer(requests.auth.AuthBase):
    """`Authorization: Bearer TOKEN`, or nothing without a token (anonymous)."""

    def __init__(self, token: str | None) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._token:
            request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_Bearer(***)" if self._token else "_Bearer(None)"


def _pull(item: dict[str, Any]) -> PullRequest:
    head = item.get("head") or {}
    base = item.get("base") or {}
    return PullRequest(
        number=int(item.get("number") or 0),
        title=str(item.get("title") or ""),
        author=str((item.get("user") or {}).get("login") or ""),
        head_ref=str(head.get("ref") or ""),
        head_sha=str(head.get("sha") or ""),
        head_repo=str((head.get("repo") or {}).get("full_name") or ""),
        base_ref=str(base.get("ref") or ""),
        html_url=str(item.get("html_url") or ""),
        draft=bool(item.get("draft")),
    )


def _owner(pull: PullRequest) -> str:
    return pull.head_repo.partition("/")[0].lower()


def _json(method: str, url: str, response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise PullsError(
            f"{method} {_path(url)}: {response.status_code} answer is not JSON",
            status=response.status_code,
        ) from None


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path or "/"


def _port(parts: urllib.parse.SplitResult) -> int | None:
    try:
        port = parts.port
    except ValueError:
        return None
    return port if port is not None else {"https": 443, "http": 80}.get(parts.scheme.lower())


def _cause(exc: BaseException) -> str:
    """A short reason for a connection failure (requests' messages nest the whole chain)."""
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    found = _ERRNO.search(str(exc))
    return found.group(0).strip() if found else type(exc).__name__
