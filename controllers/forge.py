"""The forge port and its embedded default, the local forge (DESIGN section 8).

A forge is where Foundry reports (check runs, comments) and where some gates look (check
results, approvals). The local forge keeps its records with the repository itself, on the ref
`refs/alloy/forge` of the remote: one commit whose tree holds

    checks/<commit>/<check name slug>.json     one check run per execution
    comments/<key>.md                          one comment per key, kept up to date

so every clone can read them (`foundry checks list|show`) and no server is needed. Writes are
compare-and-swap pushes, retried on a race. An unchanged record is never re-sent. Approvals on
the local forge are the Approval documents merged to the default branch (read by reconcile).
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from controllers.gitops import GitError, Mirror
from foundry.errors import TemporaryError

REF = "refs/alloy/forge"
Conclusion = Literal[
    "success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required"
]
MAX_TRIES = 16


@dataclass(frozen=True)
class CheckRun:
    """A check run as both forges know it (GitHub's fields, a subset)."""

    commit: str
    name: str
    status: Literal["queued", "in_progress", "completed"]
    conclusion: Conclusion | None
    title: str
    summary: str
    text: str = ""
    external_id: str = ""
    details_url: str = ""
    #: GitHub's annotation objects (`path`, `start_line`, `end_line`, `annotation_level`,
    #: `message`, optional `title`); the GitHub adapter sends them 50 at a time.
    annotations: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["annotations"] = [dict(a) for a in self.annotations]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckRun:
        fields = dict(data)
        fields["annotations"] = tuple(dict(a) for a in fields.get("annotations", ()))
        return cls(**fields)


@dataclass(frozen=True)
class Identity:
    """Who merged a document, as the forge knows it: the pull request that merged the commit,
    its author, and the reviewers whose latest review approved it (dismissed ones do not)."""

    pull: int
    author: str
    approvers: tuple[str, ...]
    changes_requested: tuple[str, ...] = ()


#: Known to have no merged pull request behind it (pushed straight to the branch): nobody
#: vouches for it, which is not the same as a forge that cannot tell (None).
NOBODY = Identity(pull=0, author="", approvers=())


class ForgeError(TemporaryError):
    """The forge could not be reached or refused a request; what was to be published waits in
    the outbox and is tried again later."""

    def __init__(self, message: str, *, delay: float = 0.0, status: int | None = None) -> None:
        super().__init__(message, delay=delay)
        #: The HTTP status GitHub answered with, when it answered.
        self.status = status


class Forge(Protocol):
    """What controllers need of a forge."""

    def publish_check(self, run: CheckRun) -> bool:
        """Create or update the check run; False when it was already exactly this."""
        ...

    def checks(self, commit: str | None = None) -> list[CheckRun]:
        """Check runs, of one commit or of all."""
        ...

    def comment(self, key: str, body: str, *, pull: int | None = None) -> bool:
        """Create or update the comment for `key` (on pull request `pull`, where the forge has
        them); False when unchanged."""
        ...

    def check_state(
        self, commit: str, name: str
    ) -> Literal["success", "failure", "pending"] | None:
        """For `check` gates: the named check on `commit`."""
        ...

    def identity(self, commit: str) -> Identity | None:
        """Who merged `commit` (None: the forge does not know, or it has no pull requests)."""
        ...

    def is_member(self, user: str, team: str) -> bool:
        """For approvals `from: [team:x]`."""
        ...


def check_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:120] or "check"


class LocalForge:
    """The embedded forge: records on `refs/alloy/forge` of the remote."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror

    def _tip(self) -> str | None:
        """The remote's forge commit, fetched into the mirror."""
        sha = self.mirror.heads([REF]).get(REF)
        if sha is not None and self.mirror.rev(REF) != sha:
            self.mirror.fetch([REF])
        return sha

    def _read(self, tip: str | None, path: str) -> bytes | None:
        if tip is None:
            return None
        sha = self.mirror.tree(tip, path).get(path)
        return self.mirror.blob(sha) if sha else None

    def _write(self, files: dict[str, bytes], what: str) -> set[str]:
        """Commit `files` on the forge ref (compare-and-swap, rebuilt on another host's new
        tip with a growing, jittered pause); the paths that changed."""
        for attempt in range(MAX_TRIES):
            tip = self._tip()
            changed = {p: d for p, d in files.items() if self._read(tip, p) != d}
            if not changed:
                return set()
            commit = self.mirror.commit(tip, changed, what)
            if self.mirror.push([(commit, REF, tip)]).ok:
                self.mirror.set_ref(REF, commit)
                return set(changed)
            time.sleep(random.uniform(0.01, 0.04) * (attempt + 1))  # noqa: S311 - jitter
        raise GitError(f"{self.mirror.url}: {REF} kept moving; gave up after {MAX_TRIES} tries")

    def publish_check(self, run: CheckRun) -> bool:
        return bool(self.publish_checks([run]))

    def publish_checks(self, runs: list[CheckRun]) -> int:
        """Publish several check runs in one commit; how many changed."""
        files = {
            f"checks/{run.commit}/{check_slug(run.name)}.json": (
                json.dumps(run.to_json(), indent=2, sort_keys=True) + "\n"
            ).encode()
            for run in runs
        }
        if not files:
            return 0
        # A completed check run is final: an update that is not (a stale copy) never replaces it.
        tip = self._tip()
        for run in runs:
            if run.status != "completed":
                path = f"checks/{run.commit}/{check_slug(run.name)}.json"
                held = self._read(tip, path)
                if held is not None and json.loads(held).get("status") == "completed":
                    files.pop(path, None)
        what = (
            f"check {runs[0].name} on {runs[0].commit[:12]}: {runs[0].status}"
            if len(runs) == 1
            else f"{len(runs)} check runs"
        )
        return len(self._write(files, what))

    def comment(self, key: str, body: str, *, pull: int | None = None) -> bool:
        where = f"pull-{pull}/" if pull is not None else ""
        path = f"comments/{where}{check_slug(key)}.md"
        return bool(self._write({path: body.encode()}, f"comment {key}"))

    def identity(self, commit: str) -> Identity | None:
        """The local forge has no pull requests: Approval documents speak for themselves."""
        return None

    def is_member(self, user: str, team: str) -> bool:
        """The local forge knows no teams."""
        return False

    def checks(self, commit: str | None = None) -> list[CheckRun]:
        tip = self._tip()
        if tip is None:
            return []
        prefix = f"checks/{commit}/" if commit else "checks/"
        entries = self.mirror.tree(tip, prefix)
        runs = [CheckRun.from_json(json.loads(self.mirror.blob(sha))) for sha in entries.values()]
        return sorted(runs, key=lambda r: (r.commit, r.name))

    def check_state(
        self, commit: str, name: str
    ) -> Literal["success", "failure", "pending"] | None:
        """For `check` gates: the named check on `commit`, as success, failure or pending."""
        found = [r for r in self.checks(commit) if r.name == name]
        if not found:
            return None
        run = found[0]
        if run.status != "completed":
            return "pending"
        if run.conclusion in ("success", "neutral", "skipped"):
            return "success"
        return "failure"
