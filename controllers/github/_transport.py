"""The HTTP transport under github3.py: what every request to GitHub needs and github3 does not
do — rate limits, retries with jitter, conditional requests and one media type.

It is a `requests` transport adapter mounted on github3's session, so every call github3 makes
goes through it:

* **Media type.** github3 still sends preview media types (`antiope-preview`,
  `machine-man-preview`, `v3.full+json`) that GitHub has long graduated; every request asks for
  `application/vnd.github+json` with an explicit `X-GitHub-Api-Version`, as GitHub documents.
* **Rate limits.** The quota GitHub reports (`X-RateLimit-Remaining`, `-Reset`) is kept. A
  primary limit (403/429 with no quota left) waits for the reset; a secondary limit (403/429
  with `Retry-After`, or GitHub's "secondary rate limit" message) waits `Retry-After` or, without
  one, a minute doubled on each repeat (GitHub's guidance). A request made while the quota is
  known to be exhausted waits for the reset before it is sent. Waits longer than `max_wait`
  are not taken: the response goes back to the caller, whose publication goes to the outbox.
* **Server errors.** 500, 502, 503 and 504 are retried with exponential backoff and full jitter
  for methods that are safe to repeat (GET, HEAD, PUT, PATCH, DELETE). A POST is not repeated
  here: GitHub may have done it; the forge retries the whole operation, which looks first. Nor
  is a request sent within `once()` (a check-run update that carries annotations: GitHub
  appends them, so repeating one that was done would show them twice).
* **Conditional requests.** A GET whose URL answered with an `ETag` before is sent with
  `If-None-Match`; a 304 (which GitHub does not count against the quota) is answered from the
  cached body.

Every wait goes through the injected `sleep`, so tests use a fake clock and assert the delays.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

MEDIA_TYPE = "application/vnd.github+json"
API_VERSION = "2022-11-28"
SERVER_ERRORS = frozenset({500, 502, 503, 504})
REPEATABLE = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: How many entries the conditional-request cache keeps (oldest dropped first).
CACHE_SIZE = 512
#: Headers of a 304 that describe its (empty) body, not the cached one.
_BODY_HEADERS = frozenset(
    {"content-length", "content-type", "content-encoding", "transfer-encoding"}
)


@dataclass
class Quota:
    """What GitHub last said of the primary rate limit of this token."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    resource: str | None = None


@dataclass
class Policy:
    """How patient the transport is."""

    #: Attempts per request, the first included.
    tries: int = 5
    #: First backoff for server errors (seconds); doubled per attempt, with full jitter.
    backoff: float = 1.0
    #: The longest single wait the transport takes (seconds); longer ones return the response.
    max_wait: float = 120.0
    #: Without `Retry-After`, a secondary limit waits this long first (GitHub: at least a minute).
    secondary: float = 60.0


@dataclass
class Waits:
    """The waits taken, by reason (for logs, metrics and tests)."""

    taken: list[tuple[str, float]] = field(default_factory=list)


class GitHubTransport(HTTPAdapter):
    """A `requests` adapter with GitHub's rate limits, retries and conditional requests."""

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        jitter: Callable[[float], float] | None = None,
        inner: HTTPAdapter | None = None,
    ) -> None:
        super().__init__()
        self.policy = policy or Policy()
        self.sleep, self.now = sleep, now
        rng = random.Random()  # noqa: S311 - jitter spreads retries; nothing secret
        self.jitter = jitter or (lambda top: rng.uniform(0, top))
        self.inner = inner
        self.quota = Quota()
        self.waits = Waits()
        self._etags: dict[str, tuple[str, bytes, CaseInsensitiveDict[str]]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextmanager
    def once(self) -> Iterator[None]:
        """Requests sent within (by this thread) are not repeated after a server error."""
        previous = getattr(self._local, "once", False)
        self._local.once = True
        try:
            yield
        finally:
            self._local.once = previous

    def send(  # type: ignore[override]
        self, request: PreparedRequest, **kwargs: Any
    ) -> Response:
        request.headers["Accept"] = MEDIA_TYPE
        request.headers.setdefault("X-GitHub-Api-Version", API_VERSION)
        method = (request.method or "GET").upper()
        repeatable = method in REPEATABLE and not getattr(self._local, "once", False)
        # Cached per credential (a digest of it: the token itself is kept nowhere here).
        auth = request.headers.get("Authorization", "")
        raw = auth if isinstance(auth, bytes) else auth.encode()
        key = f"{request.url}|{hashlib.sha256(raw).hexdigest()[:16]}"
        cached = self._etags.get(key) if method == "GET" else None
        if cached is not None:
            request.headers["If-None-Match"] = cached[0]
        secondary_repeats = 0
        response: Response | None = None
        for attempt in range(self.policy.tries):
            self._wait_for_quota()
            response = self._send(request, **kwargs)
            self._note_quota(response.headers)
            delay, reason = self._retry_delay(response, repeatable, attempt, secondary_repeats)
            if delay is None or attempt + 1 == self.policy.tries:
                break
            if delay > self.policy.max_wait:
                break
            if reason == "secondary":
                secondary_repeats += 1
            self._take(reason, delay)
            response.close()
        assert response is not None
        if response.status_code == 304 and cached is not None:
            fresh = self._from_cache(response, cached)
            with self._lock:  # the 304's headers (a page's `Link` too) now describe the body
                self._etags[key] = (cached[0], cached[1], CaseInsensitiveDict(fresh.headers))
            return fresh
        if method == "GET" and response.status_code == 200 and response.headers.get("ETag"):
            self._remember(key, response)
        return response

    def _send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        if self.inner is not None:
            return self.inner.send(request, **kwargs)
        return super().send(request, **kwargs)

    # -- rate limits -------------------------------------------------------------------------

    def _note_quota(self, headers: Mapping[str, str]) -> None:
        remaining = headers.get("X-RateLimit-Remaining")
        if remaining is None:
            return
        with self._lock:
            self.quota.remaining = _int(remaining)
            self.quota.limit = _int(headers.get("X-RateLimit-Limit"))
            reset = _int(headers.get("X-RateLimit-Reset"))
            self.quota.reset = float(reset) if reset is not None else None
            self.quota.resource = headers.get("X-RateLimit-Resource")

    def _wait_for_quota(self) -> None:
        """Known to be out of quota: wait for the reset instead of spending a request on a 403."""
        quota = self.quota
        if quota.remaining != 0 or quota.reset is None:
            return
        delay = quota.reset - self.now() + 1.0
        if 0 < delay <= self.policy.max_wait:
            self._take("quota", delay)
            with self._lock:
                self.quota.remaining = None  # unknown until the next response says

    def _retry_delay(
        self, response: Response, repeatable: bool, attempt: int, secondary_repeats: int
    ) -> tuple[float | None, str]:
        status = response.status_code
        if status in (403, 429):
            retry_after = _int(response.headers.get("Retry-After"))
            remaining = response.headers.get("X-RateLimit-Remaining")
            if retry_after is not None:
                return float(retry_after) + self.jitter(1.0), "secondary"
            if remaining == "0":
                reset = _int(response.headers.get("X-RateLimit-Reset"))
                if reset is None:
                    return self.policy.secondary, "primary"
                return max(reset - self.now(), 0.0) + 1.0 + self.jitter(1.0), "primary"
            if _secondary_message(response):
                return self.policy.secondary * (2**secondary_repeats), "secondary"
            return None, ""
        if status in SERVER_ERRORS and repeatable:
            return self.jitter(self.policy.backoff * (2**attempt)), f"server error {status}"
        return None, ""

    def _take(self, reason: str, delay: float) -> None:
        self.waits.taken.append((reason, delay))
        self.sleep(delay)

    # -- conditional requests ------------------------------------------------------------------

    def _remember(self, key: str, response: Response) -> None:
        with self._lock:
            if len(self._etags) >= CACHE_SIZE:
                self._etags.pop(next(iter(self._etags)))
            self._etags[key] = (
                response.headers["ETag"],
                response.content,
                CaseInsensitiveDict(response.headers),
            )

    @staticmethod
    def _from_cache(
        response: Response, cached: tuple[str, bytes, CaseInsensitiveDict[str]]
    ) -> Response:
        _, body, headers = cached
        fresh = Response()
        fresh.status_code = 200
        fresh.reason = "OK (not modified)"
        fresh.headers = CaseInsensitiveDict(headers)
        # As an HTTP cache does (RFC 9111, 4.3.4): the 304's headers replace the stored ones.
        # A list's first page can be unchanged while a page was added after it: only the
        # 304's `Link` says so (the stored one would end the pagination one page early).
        for name, value in response.headers.items():
            if name.lower() not in _BODY_HEADERS:
                fresh.headers[name] = value
        fresh._content = body
        fresh.url = response.url
        fresh.request = response.request
        fresh.encoding = response.encoding or "utf-8"
        return fresh


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _secondary_message(response: Response) -> bool:
    try:
        message = str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        return False
    return "secondary rate limit" in message.lower() or "abuse" in message.lower()
