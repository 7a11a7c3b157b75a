"""Connecting to GitHub through github3.py: the API base URL (github.com or Enterprise), the
credentials (an installation token such as Actions' `GITHUB_TOKEN`, or a GitHub App's id and
private key), and the transport that handles rate limits (`_transport`).

github3's check-run calls require installation-token auth (`AppInstallationTokenAuth`): a
`GITHUB_TOKEN` *is* an installation token, so it is installed that way. A GitHub App logs in
as the installation of the repository and its one-hour token is renewed before it runs out.
"""

from __future__ import annotations

import datetime
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import github3
import jwt
from github3.session import GitHubSession

from controllers.forge import ForgeError
from controllers.github._transport import GitHubTransport

DEFAULT_API = "https://api.github.com"
#: A GITHUB_TOKEN lives as long as its job (at most a day); github3 wants an expiry.
TOKEN_LIFETIME = datetime.timedelta(hours=24)
#: An App's installation token is renewed when less than this is left of its hour.
RENEW_BEFORE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class Credentials:
    """How to authenticate: a token, or a GitHub App (id, private key, optional installation)."""

    token: str | None = field(default=None, repr=False)
    app_id: int | None = None
    private_key: bytes | None = field(default=None, repr=False)
    installation_id: int | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Credentials:
        """`GITHUB_TOKEN`, else `ALLOY_GITHUB_APP_ID` + `ALLOY_GITHUB_APP_KEY` (the PEM itself)
        or `ALLOY_GITHUB_APP_KEY_FILE` (+ optional `ALLOY_GITHUB_INSTALLATION_ID`)."""
        env = dict(os.environ if env is None else env)
        app_id = env.get("ALLOY_GITHUB_APP_ID")
        key = env.get("ALLOY_GITHUB_APP_KEY")
        key_file = env.get("ALLOY_GITHUB_APP_KEY_FILE")
        if app_id and (key or key_file):
            pem = key.encode() if key else _read_key(key_file or "")
            installation = env.get("ALLOY_GITHUB_INSTALLATION_ID")
            return cls(
                app_id=_number("ALLOY_GITHUB_APP_ID", app_id),
                private_key=pem,
                installation_id=_number("ALLOY_GITHUB_INSTALLATION_ID", installation)
                if installation
                else None,
            )
        return cls(token=env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or None)

    @property
    def present(self) -> bool:
        return bool(self.token or (self.app_id and self.private_key))


def _number(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ForgeError(f"{name}={value!r}: not a number; give the numeric id") from None


def _read_key(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ForgeError(f"ALLOY_GITHUB_APP_KEY_FILE={path}: {exc.strerror}") from None


class Client:
    """A github3 `GitHub` for one repository, authenticated, behind the GitHub transport."""

    def __init__(
        self,
        repository: str,
        credentials: Credentials,
        *,
        api_url: str | None = None,
        transport: GitHubTransport | None = None,
    ) -> None:
        owner, sep, name = repository.partition("/")
        if not sep or not owner or not name or "/" in name:
            raise ForgeError(f"repository {repository!r}: write it as OWNER/NAME")
        self.owner, self.name = owner, name
        self.credentials = credentials
        self.api_url = (api_url or DEFAULT_API).rstrip("/")
        self.transport = transport or GitHubTransport()
        session = GitHubSession()
        session.base_url = self.api_url
        session.mount("https://", self.transport)
        session.mount("http://", self.transport)
        self.gh = github3.GitHub(session=session)
        self._expires: datetime.datetime | None = None
        self.login()

    @property
    def session(self) -> GitHubSession:
        return self.gh.session

    def url(self, *parts: str | int) -> str:
        return "/".join([self.api_url, *(str(p) for p in parts)])

    def repo_url(self, *parts: str | int) -> str:
        return self.url("repos", self.owner, self.name, *parts)

    def login(self) -> None:
        creds = self.credentials
        if creds.token:
            expires = datetime.datetime.now(datetime.UTC) + TOKEN_LIFETIME
            self.session.app_installation_token_auth(
                {"token": creds.token, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
            )
            return
        if not (creds.app_id and creds.private_key):
            raise ForgeError(
                "no GitHub credentials: set GITHUB_TOKEN (in Actions: `token: "
                "${{ github.token }}`), or ALLOY_GITHUB_APP_ID and ALLOY_GITHUB_APP_KEY"
            )
        # The JWT's `iss` as a string: PyJWT (2.10+) refuses to sign an integer issuer.
        app_id = str(creds.app_id)
        try:
            installation = creds.installation_id
            if installation is None:
                self.gh.login_as_app(creds.private_key, app_id, expire_in=60)
                found = self.gh.app_installation_for_repository(self.owner, self.name)
                installation = int(found.id)
            self.gh.login_as_app_installation(creds.private_key, app_id, installation, expire_in=60)
        except github3.exceptions.GitHubException as exc:
            raise ForgeError(f"GitHub App {creds.app_id}: cannot log in: {_reason(exc)}") from None
        except jwt.PyJWTError as exc:  # a private key that is not an RSA key in PEM
            raise ForgeError(
                f"GitHub App {creds.app_id}: cannot sign in with its key: {exc}"
            ) from None
        auth = self.session.auth
        self._expires = getattr(auth, "expires_at", None)

    def fresh(self) -> None:
        """Renew an App's installation token that is about to run out."""
        if self._expires is None:
            return
        if datetime.datetime.now(datetime.UTC) + RENEW_BEFORE >= self._expires:
            self.login()

    # -- requests ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        ok: tuple[int, ...] = (200,),
        repeat: bool = True,
        **kwargs: Any,
    ) -> Any:
        """One API call; its JSON (None for 204/404 when 404 is in `ok`), else a ForgeError.
        `repeat=False`: not repeated after a server error even if the method allows it (the
        call is not idempotent; the caller looks before it tries again)."""
        self.fresh()
        try:
            with nullcontext() if repeat else self.transport.once():
                response = self.session.request(method, url, **kwargs)
        except github3.exceptions.GitHubException as exc:
            raise ForgeError(f"{method} {_path(url)}: {_reason(exc)}") from None
        except OSError as exc:  # requests' connection errors are OSErrors
            raise ForgeError(f"{method} {_path(url)}: cannot reach GitHub: {exc}") from None
        if response.status_code not in ok:
            raise _error(method, url, response)
        if response.status_code in (204, 404) or not response.content:
            return None
        return response.json()

    def pages(self, url: str, *, key: str | None = None, **params: Any) -> list[Any]:
        """Every item of a paginated list (`per_page=100`, following `Link: rel=next`)."""
        out: list[Any] = []
        query: dict[str, Any] | None = {"per_page": 100, **params}
        next_url: str | None = url
        while next_url is not None:
            self.fresh()
            try:
                response = self.session.get(next_url, params=query)
            except OSError as exc:
                raise ForgeError(f"GET {_path(next_url)}: cannot reach GitHub: {exc}") from None
            if response.status_code != 200:
                raise _error("GET", next_url, response)
            data = response.json()
            out.extend(data[key] if key is not None else data)
            next_url = response.links.get("next", {}).get("url")
            query = None  # the next link carries the query
        return out


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "msg", None) or exc)


def _error(method: str, url: str, response: Any) -> ForgeError:
    try:
        body = response.json()
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
        errors = body.get("errors") if isinstance(body, dict) else None
    except ValueError:
        message, errors = response.text[:200], None
    detail = f"{response.status_code} {message}".strip()
    if errors:
        detail += f" ({errors})"
    retry = response.headers.get("Retry-After")
    delay = float(retry) if retry and retry.isdigit() else 0.0
    return ForgeError(f"{method} {_path(url)}: {detail}", delay=delay, status=response.status_code)
