"""Pull requests on GitHub for a repository that reports there: the open ones (shown beside
the branches they review) and one opened for each branch an action pushes.

Through `controllers.github_pulls` (Foundry-free). The token comes from GITHUB_TOKEN or
GH_TOKEN; without one, listing works for public repositories and nothing is opened. The list is
asked for at most once per `TTL` seconds per repository (a page view never costs a GitHub call
of its own), and a GitHub that cannot be reached is said on the page, never an error.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

TTL = 30.0


@dataclass
class GitHub:
    """One repository on GitHub: `owner/name` and its API (None: github.com)."""

    repository: str
    api: str | None = None
    token: str | None = None
    _listed: tuple[float, list[dict[str, Any]], str | None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _client(self) -> Any:
        from controllers.github_pulls import GitHubPulls

        return GitHubPulls(self.repository, api=self.api, token=self.token)

    def open_pulls(self) -> tuple[list[dict[str, Any]], str | None]:
        """The open pull requests (as data) and the error that hid them, if any."""
        from controllers.github_pulls import PullsError

        with self._lock:
            now = time.monotonic()
            if self._listed is not None and now - self._listed[0] < TTL:
                return self._listed[1], self._listed[2]
            try:
                with self._client() as client:
                    pulls = [
                        {
                            "number": p.number,
                            "title": p.title,
                            "author": p.author,
                            "headRef": p.head_ref,
                            "headSha": p.head_sha,
                            "headRepo": p.head_repo,
                            "baseRef": p.base_ref,
                            # a link is drawn only to a web page (never javascript: or data:)
                            "url": p.html_url
                            if p.html_url.startswith(("https://", "http://"))
                            else None,
                            "draft": p.draft,
                        }
                        for p in client.open_pulls()
                    ]
                error = None
            except PullsError as exc:
                pulls, error = [], f"GitHub: {exc}"
            self._listed = (now, pulls, error)
            return pulls, error

    def forget(self) -> None:
        with self._lock:
            self._listed = None

    def open(self, *, head: str, base: str, title: str, body: str) -> dict[str, Any]:
        """Open a pull request from `head`; what happened, as data (never raises)."""
        from controllers.github_pulls import PullsError

        if not self.token:
            return {"error": "no GITHUB_TOKEN (or GH_TOKEN): open the pull request by hand"}
        try:
            with self._client() as client:
                opened = client.open(head=head, base=base, title=title, body=body)
        except PullsError as exc:
            return {"error": f"GitHub: {exc}"}
        self.forget()
        url = opened.html_url if opened.html_url.startswith(("https://", "http://")) else None
        return {"number": opened.number, "url": url, "created": opened.created}


def detect(url: str, api: str | None, token: str | None) -> GitHub | None:
    """The GitHub repository a remote URL names (github.com, or the host of `api`), if any."""
    from controllers.github_pulls import parse_remote

    found = parse_remote(url, api=api)
    if found is None:
        return None
    return GitHub(found.repository, found.api, token)
