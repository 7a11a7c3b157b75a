"""The GitHub forge: the forge port (`controllers.forge.Forge`) on GitHub's REST API through
github3.py (DESIGN section 8).

* **Check runs** — one per execution and one per review, found again by name on the commit, so
  publishing twice updates instead of adding. Output within GitHub's limits (title, summary and
  text clipped with an explicit marker); annotations sent 50 per request (GitHub's limit), the
  first 50 with the create, the rest in updates. GitHub *appends* annotations on every update
  and cannot remove one, so a run whose annotations changed in another way than by addition is
  published as a new run of the same name (GitHub shows the newest). An unchanged run is never
  re-sent.
* **Commit statuses** only as a fallback: when the token may not write check runs (a 403, as a
  personal token or a read-only fork token gets), the run becomes a commit status.
* **One comment per key and pull request**, found by a hidden marker and edited in place.
* **Identity**: the pull request that merged a commit, its author, and the reviewers whose
  latest review approved it (a dismissed review counts for nothing) — who approved an Approval
  document and who asked for a Request, instead of what the file says.
* **Check results** for `check` gates (check runs, else commit statuses) and **team
  membership** for approvals `from: [team:x]` (the repository owner's teams).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, Literal

import github3

from controllers.forge import NOBODY, CheckRun, ForgeError, Identity
from controllers.github._client import Client

#: GitHub's limits on a check run's output (characters; counted here in UTF-8 bytes, which is
#: never fewer).
TEXT_LIMIT = 65_535
TITLE_LIMIT = 255
ANNOTATIONS_PER_REQUEST = 50
ANNOTATION_MESSAGE_LIMIT = 64 * 1024
#: How many check runs one commit may carry before the old fall off the first page.
STATUS_DESCRIPTION_LIMIT = 140
CONTEXT_LIMIT = 255
MARKER = "<!-- alloy:{key} -->"
_STATUS_STATE = {
    "success": "success",
    "neutral": "success",
    "skipped": "success",
    "failure": "failure",
    "timed_out": "failure",
    "cancelled": "error",
    "action_required": "failure",
}


def clip(text: str, limit: int = TEXT_LIMIT, *, pointer: str = "") -> str:
    """`text` within `limit` UTF-8 bytes; when cut, an explicit marker says so (and where the
    whole is)."""
    data = text.encode()
    if len(data) <= limit:
        return text
    where = f" {pointer}" if pointer else ""
    marker = f"\n\n… truncated: {len(data) - limit} more bytes not shown.{where}\n"
    keep = limit - len(marker.encode()) - 32
    head = data[:keep].decode("utf-8", "ignore")
    marker = f"\n\n… truncated: {len(data) - len(head.encode())} more bytes not shown.{where}\n"
    return head + marker


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _annotation(note: dict[str, Any]) -> dict[str, Any]:
    out = {
        "path": str(note["path"]),
        "start_line": max(int(note.get("start_line", 1)), 1),
        "end_line": max(int(note.get("end_line", note.get("start_line", 1))), 1),
        "annotation_level": note.get("annotation_level", "warning"),
        "message": clip(str(note.get("message", "")), ANNOTATION_MESSAGE_LIMIT),
    }
    if note.get("title"):
        out["title"] = clip(str(note["title"]), TITLE_LIMIT)
    return out


def _key(note: dict[str, Any]) -> tuple[Any, ...]:
    return (
        note.get("path"),
        note.get("start_line"),
        note.get("end_line"),
        note.get("annotation_level"),
        note.get("message"),
        note.get("title") or None,
    )


class GitHubForge:
    """The forge port on one GitHub repository."""

    def __init__(self, client: Client, *, pointer: str = "") -> None:
        self.client = client
        #: Where the whole of a clipped text is (e.g. the trace file on the traces branch).
        self.pointer = pointer
        self._teams: dict[tuple[str, str], bool] = {}
        self._identities: dict[str, Identity | None] = {}
        self._statuses_only = False

    # -- check runs --------------------------------------------------------------------------

    def _output(self, run: CheckRun) -> dict[str, Any]:
        output = {
            "title": clip(run.title or run.name, TITLE_LIMIT),
            "summary": clip(run.summary or run.title or run.name, pointer=self.pointer),
        }
        if run.text:
            output["text"] = clip(run.text, pointer=self.pointer)
        return output

    def _latest(self, commit: str, name: str) -> dict[str, Any] | None:
        runs = self.client.pages(
            self.client.repo_url("commits", commit, "check-runs"),
            key="check_runs",
            check_name=name,
            filter="latest",
        )
        runs = [r for r in runs if r.get("name") == name]
        return max(runs, key=lambda r: int(r["id"])) if runs else None

    def _annotations_of(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        if not run.get("output", {}).get("annotations_count"):
            return []
        return self.client.pages(self.client.repo_url("check-runs", run["id"], "annotations"))

    def publish_check(self, run: CheckRun) -> bool:
        """Create or update the check run named `run.name` on `run.commit`; False when GitHub
        already shows exactly this."""
        if self._statuses_only:
            return self._publish_status(run)
        output = self._output(run)
        notes = [_annotation(a) for a in run.annotations]
        existing = self._latest(run.commit, run.name)
        if existing is None:
            return self._create(run, output, notes)
        same_fields = (
            existing.get("status") == run.status
            and (existing.get("conclusion") or None) == (run.conclusion or None)
            and (existing.get("external_id") or "") == run.external_id
            and all(existing.get("output", {}).get(k) == v for k, v in output.items())
            and (existing.get("output", {}).get("text") or "") == output.get("text", "")
        )
        remaining = [_key(a) for a in self._annotations_of(existing)]
        missing = []
        for note in notes:
            key = _key(note)
            if key in remaining:
                remaining.remove(key)
            else:
                missing.append(note)
        if same_fields and not missing and not remaining:
            return False
        if remaining:  # GitHub cannot take an annotation back: a new run replaces this one
            return self._create(run, output, notes)
        self._update(existing, run, output, missing)
        return True

    def _fields(self, run: CheckRun) -> dict[str, Any]:
        fields: dict[str, Any] = {"status": run.status}
        if run.status == "completed":
            fields["conclusion"] = run.conclusion or "neutral"
            fields["completed_at"] = _stamp()
        if run.external_id:
            fields["external_id"] = run.external_id
        if run.details_url:
            fields["details_url"] = run.details_url
        return fields

    def _create(self, run: CheckRun, output: dict[str, Any], notes: list[dict[str, Any]]) -> bool:
        first, rest = notes[:ANNOTATIONS_PER_REQUEST], notes[ANNOTATIONS_PER_REQUEST:]
        body = {"name": run.name, "head_sha": run.commit, **self._fields(run)}
        body["output"] = {**output, **({"annotations": first} if first else {})}
        try:
            created = self.client.request(
                "POST", self.client.repo_url("check-runs"), ok=(201,), json=body
            )
        except ForgeError as exc:
            if exc.status != 403 or "rate limit" in str(exc).lower():
                raise
            # The token may not write check runs (a personal token, a read-only fork token):
            # the fallback is a commit status.
            self._statuses_only = True
            return self._publish_status(run)
        if rest:
            self._update(created, run, output, rest)
        return True

    def _update(
        self,
        existing: dict[str, Any],
        run: CheckRun,
        output: dict[str, Any],
        notes: Sequence[dict[str, Any]],
    ) -> None:
        url = self.client.repo_url("check-runs", existing["id"])
        batches = [
            list(notes[i : i + ANNOTATIONS_PER_REQUEST])
            for i in range(0, len(notes), ANNOTATIONS_PER_REQUEST)
        ] or [[]]
        for batch in batches:
            body = {**self._fields(run), "output": dict(output)}
            if batch:
                body["output"]["annotations"] = batch
            # GitHub appends annotations: a batch it took but whose answer was lost must not be
            # sent twice; the next publication looks first and sends only what is missing.
            self.client.request("PATCH", url, json=body, repeat=not batch)

    def _publish_status(self, run: CheckRun) -> bool:
        state = (
            "pending"
            if run.status != "completed"
            else _STATUS_STATE.get(run.conclusion or "neutral", "success")
        )
        context = clip(run.name, CONTEXT_LIMIT)
        description = run.title or run.name
        if len(description) > STATUS_DESCRIPTION_LIMIT:
            description = description[: STATUS_DESCRIPTION_LIMIT - 1] + "…"
        current = (
            self.client.request("GET", self.client.repo_url("commits", run.commit, "status")) or {}
        )
        for status in current.get("statuses", []):
            if status.get("context") == context:
                if status.get("state") == state and status.get("description") == description:
                    return False
                break
        body: dict[str, Any] = {"state": state, "context": context, "description": description}
        if run.details_url:
            body["target_url"] = run.details_url
        self.client.request(
            "POST", self.client.repo_url("statuses", run.commit), ok=(201,), json=body
        )
        return True

    def checks(self, commit: str | None = None) -> list[CheckRun]:
        """The check runs of `commit` (GitHub has no listing of every commit's runs)."""
        if commit is None:
            return []
        runs = self.client.pages(
            self.client.repo_url("commits", commit, "check-runs"), key="check_runs"
        )
        out = [
            CheckRun(
                commit=commit,
                name=r["name"],
                status=r["status"],
                conclusion=r.get("conclusion"),
                title=(r.get("output") or {}).get("title") or "",
                summary=(r.get("output") or {}).get("summary") or "",
                text=(r.get("output") or {}).get("text") or "",
                external_id=r.get("external_id") or "",
                details_url=r.get("details_url") or "",
            )
            for r in runs
        ]
        return sorted(out, key=lambda r: r.name)

    def check_state(
        self, commit: str, name: str
    ) -> Literal["success", "failure", "pending"] | None:
        run = self._latest(commit, name)
        if run is not None:
            if run.get("status") != "completed":
                return "pending"
            if run.get("conclusion") in ("success", "neutral", "skipped"):
                return "success"
            return "failure"
        combined = self.client.request("GET", self.client.repo_url("commits", commit, "status"))
        for status in (combined or {}).get("statuses", []):
            if status.get("context") == name:
                state = status.get("state")
                if state == "success":
                    return "success"
                return "pending" if state == "pending" else "failure"
        return None

    # -- comments ------------------------------------------------------------------------------

    def comment(self, key: str, body: str, *, pull: int | None = None) -> bool:
        """The one comment for `key` on pull request `pull`, created or edited; False when it
        already says exactly this."""
        if pull is None:
            raise ForgeError(f"comment {key!r}: GitHub keeps comments on pull requests; name one")
        marker = MARKER.format(key=key)
        text = clip(f"{marker}\n{body}")
        comments = self.client.pages(self.client.repo_url("issues", pull, "comments"))
        mine = [c for c in comments if marker in (c.get("body") or "")]
        if mine:
            current = mine[0]
            if current.get("body") == text:
                return False
            self.client.request(
                "PATCH",
                self.client.repo_url("issues", "comments", current["id"]),
                json={"body": text},
            )
            return True
        self.client.request(
            "POST", self.client.repo_url("issues", pull, "comments"), ok=(201,), json={"body": text}
        )
        return True

    # -- who merged it ---------------------------------------------------------------------------

    def identity(self, commit: str) -> Identity | None:
        """The merged pull request that brought `commit`, its author and its approvers
        (`pull` 0 and nobody when it came without a merged pull request)."""
        if commit in self._identities:
            return self._identities[commit]
        pulls = self.client.pages(self.client.repo_url("commits", commit, "pulls"))
        merged = [p for p in pulls if p.get("merged_at")]
        found = NOBODY
        if merged:
            exact = [p for p in merged if p.get("merge_commit_sha") == commit]
            pull = (exact or merged)[0]
            number = int(pull["number"])
            reviews = self.client.pages(self.client.repo_url("pulls", number, "reviews"))
            latest: dict[str, str] = {}
            for review in reviews:  # oldest first, as GitHub lists them
                user = (review.get("user") or {}).get("login")
                state = review.get("state")
                if not user or state in ("COMMENTED", "PENDING"):
                    continue
                latest[user] = state
            author = (pull.get("user") or {}).get("login") or ""
            found = Identity(
                pull=number,
                author=author,
                approvers=tuple(sorted(u for u, s in latest.items() if s == "APPROVED")),
                changes_requested=tuple(
                    sorted(u for u, s in latest.items() if s == "CHANGES_REQUESTED")
                ),
            )
        self._identities[commit] = found
        return found

    def is_member(self, user: str, team: str) -> bool:
        key = (user, team)
        if key not in self._teams:
            url = self.client.url("orgs", self.client.owner, "teams", team, "memberships", user)
            try:
                data = self.client.request("GET", url, ok=(200, 404))
            except ForgeError:
                data = None  # unknown counts as not a member: an approval gate fails closed
            self._teams[key] = bool(data) and data.get("state") == "active"
        return self._teams[key]


def connect(
    repository: str,
    *,
    api_url: str | None = None,
    credentials: Any = None,
    transport: Any = None,
    pointer: str = "",
) -> GitHubForge:
    """A GitHub forge for `OWNER/NAME`, with credentials from the environment unless given."""
    from controllers.github._client import Credentials

    creds = credentials if credentials is not None else Credentials.from_env()
    try:
        client = Client(repository, creds, api_url=api_url, transport=transport)
    except github3.exceptions.GitHubException as exc:
        raise ForgeError(f"GitHub: {exc}") from None
    return GitHubForge(client, pointer=pointer)
