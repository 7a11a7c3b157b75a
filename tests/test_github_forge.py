"""The GitHub forge adapter against GitHub's own contract.

Every test builds the adapter as production does (`connect` with credentials and a
`GitHubTransport`) and talks to the fake GitHub (tests/github_fake.py) through
`prism proxy --errors` with GitHub's OpenAPI description (tests/github_prism.py): a request
GitHub would reject, or a response GitHub would never send, is a contract violation and fails
the test (the `site` fixture checks every answer Prism gave, and Prism's log). Tests never
sleep: the transport's `sleep` and `now` are a fake clock, and the jitter is deterministic
(half the allowed range), so the exact waits are asserted. Each test asserts the end state held
by the fake, not only what the adapter returned.

An Enterprise base URL (`https://HOST/api/v3`) is tested in tests/test_github_enterprise.py,
through a front that serves the prefix (Prism routes GitHub's description from `/`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from controllers.forge import CheckRun, ForgeError, Identity
from controllers.github import (
    Credentials,
    GitHubForge,
    GitHubTransport,
    Policy,
    connect,
)
from tests.github_fake import SECONDARY_RATE_LIMIT_BODY, RecordedRequest
from tests.github_prism import GitHubRig

SHA = "1f2e3d4c5b6a79880123456789abcdef01234567"
OTHER_SHA = "abcdefabcdefabcdefabcdefabcdefabcdefabcd"
NAME = "alloy review"
POINTER = "The whole text: traces/alloy-review/1f2e3d4c.json on the traces branch."
CHECK_RUNS = r"/repos/[^/]+/[^/]+/check-runs$"
CHECK_RUN = r"/repos/[^/]+/[^/]+/check-runs/\d+$"
LIST_RUNS = r"/commits/[0-9a-f]+/check-runs$"
ANNOTATIONS = r"/check-runs/\d+/annotations$"
START = 1_900_000_000.0  # the fake clock's epoch


def half(top: float) -> float:
    """A deterministic jitter: half of the range the transport allows."""
    return top / 2


# ---- the rig: a fake clock, a recording transport under GitHubTransport, the contract guard


@dataclass
class Clock:
    """`now` and `sleep` for the transport: sleeping moves the clock, instantly."""

    t: float = START
    slept: list[float] = field(default_factory=list)
    on_sleep: list[Callable[[float], None]] = field(default_factory=list)

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.t += seconds
        for hook in self.on_sleep:
            hook(self.t)


@dataclass
class Answer:
    """One answer the transport got from Prism."""

    method: str
    url: str
    status: int
    problem: str  # Prism's own error (application/problem+json), else ""
    violations: list[dict[str, Any]]  # Prism's `sl-violations` header


class Recorder(HTTPAdapter):
    """The innermost transport (GitHubTransport's `inner`): sends as requests does and keeps
    every answer, so a Prism rejection cannot hide behind a retry or a ForgeError.

    `lose_answer(method, regex)` makes the next matching request happen (it reaches Prism and
    the fake) but replaces its answer with a 502, as when GitHub did the work and the answer
    was lost on the way back (the fake's own faults answer *before* doing anything)."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[Answer] = []
        self._lose: list[tuple[str, str]] = []

    def lose_answer(self, method: str, path_regex: str) -> None:
        self._lose.append((method.upper(), path_regex))

    def send(  # type: ignore[override]
        self, request: PreparedRequest, **kwargs: Any
    ) -> Response:
        response = super().send(request, **kwargs)
        content_type = response.headers.get("Content-Type", "")
        problem = ""
        if "problem+json" in content_type:
            problem = response.content.decode("utf-8", "replace")
        raw = response.headers.get("sl-violations")
        method = (request.method or "").upper()
        url = request.url or ""
        self.answers.append(
            Answer(method, url, response.status_code, problem, json.loads(raw) if raw else [])
        )
        for lost in list(self._lose):
            if lost[0] == method and re.search(lost[1], url.split("?")[0]):
                self._lose.remove(lost)
                response.close()
                gone = Response()
                gone.status_code = 502
                gone.reason = "Bad Gateway"
                gone._content = b'{"message": "Bad Gateway"}'
                gone._content_consumed = True
                gone.headers["Content-Type"] = "application/json"
                gone.url = response.url
                gone.request = request
                return gone
        return response

    def violations(self) -> list[str]:
        """Contract violations Prism reported: its 422/500 problems, and any `sl-violations`
        other than an error status GitHub sends but does not declare per operation."""
        out = []
        for a in self.answers:
            if a.problem:
                out.append(f"{a.method} {a.url} -> {a.status} {a.problem[:600]}")
            for v in a.violations:
                undeclared_status = str(v.get("message", "")).startswith(
                    "Unable to match the returned status code"
                )
                if v.get("severity") == "Error" or not undeclared_status:
                    out.append(f"{a.method} {a.url} -> {a.status} {v}")
        return out


@dataclass
class Site:
    """What a test gets: the rig, and a way to build the adapter as production does."""

    github: GitHubRig
    clock: Clock
    recorders: list[Recorder] = field(default_factory=list)
    transports: list[GitHubTransport] = field(default_factory=list)

    @property
    def fake(self) -> Any:
        return self.github.fake

    def connect(
        self,
        *,
        policy: Policy | None = None,
        credentials: Credentials | None = None,
        api_url: str | None = None,
        pointer: str = POINTER,
    ) -> GitHubForge:
        recorder = Recorder()
        transport = GitHubTransport(
            policy=policy,
            sleep=self.clock.sleep,
            now=self.clock.now,
            jitter=half,
            inner=recorder,
        )
        self.recorders.append(recorder)
        self.transports.append(transport)
        return connect(
            self.github.repo,
            api_url=api_url or self.github.api_url,
            credentials=credentials or Credentials(token=self.github.token),
            transport=transport,
            pointer=pointer,
        )

    def writes(self, since: int = 0) -> list[RecordedRequest]:
        """POST/PATCH/PUT/DELETE requests that reached the fake (from request number `since`)."""
        return [r for r in self.fake.requests[since:] if r.method != "GET"]

    def mark(self) -> int:
        return len(self.fake.requests)

    def violations(self) -> list[str]:
        found = [v for r in self.recorders for v in r.violations()]
        for r in self.fake.requests:
            if r.status == 422:  # the fake refused it as GitHub would (a limit Prism can't see)
                found.append(f"{r.method} {r.path}: the fake answered 422")
            accept = r.headers.get("accept", "")
            version = r.headers.get("x-github-api-version", "")
            if accept != "application/vnd.github+json" or version != "2022-11-28":
                found.append(f"{r.method} {r.path}: Accept {accept!r}, API version {version!r}")
        return found


@pytest.fixture
def site(github: GitHubRig) -> Iterator[Site]:
    log = github.prism.log_path
    start = log.stat().st_size if log.exists() else 0
    s = Site(github, Clock())
    yield s
    problems = s.violations()
    text = log.read_bytes()[start:].decode("utf-8", "replace") if log.exists() else ""
    problems += [
        line
        for line in text.splitlines()
        if ("✖" in line or "prism/errors#" in line) and "/__prism_ready__" not in line
    ]
    if problems:
        pytest.fail("contract violations:\n" + "\n".join(problems), pytrace=False)


def annotations(count: int, start: int = 0) -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "path": f"src/module_{i % 7}.py",
            "start_line": i + 1,
            "end_line": i + 1,
            "annotation_level": ("notice", "warning", "failure")[i % 3],
            "message": f"finding {i}: naïve façade ✓",
            **({"title": f"rule R{i}"} if i % 2 else {}),
        }
        for i in range(start, start + count)
    )


def check_run(**changes: Any) -> CheckRun:
    run = CheckRun(
        commit=SHA,
        name=NAME,
        status="completed",
        conclusion="failure",
        title="2 blocking findings",
        summary="**Review**: blocking",
        text="details",
        external_id="review-1f2e3d4c",
        annotations=annotations(120),
    )
    return replace(run, **changes)


def annotation_batches(requests: list[RecordedRequest]) -> list[int]:
    return [len((r.json.get("output") or {}).get("annotations") or []) for r in requests]


def stored(note: dict[str, Any]) -> tuple[Any, ...]:
    return (
        note["path"],
        note["start_line"],
        note["end_line"],
        note["annotation_level"],
        note["message"],
        note.get("title"),
    )


# ---- check runs and their annotations


def test_check_run_with_120_annotations_is_one_run_filled_in_batches_of_50(site: Site) -> None:
    forge = site.connect()
    run = check_run()

    assert forge.publish_check(run) is True

    posts = site.fake.requests_to("POST", CHECK_RUNS)
    patches = site.fake.requests_to("PATCH", CHECK_RUN)
    assert annotation_batches(posts) == [50]
    assert annotation_batches(patches) == [50, 20]
    assert len(site.writes()) == 3
    [stored_run] = site.fake.check_runs()
    assert (stored_run.name, stored_run.head_sha) == (NAME, SHA)
    assert (stored_run.status, stored_run.conclusion) == ("completed", "failure")
    assert stored_run.external_id == "review-1f2e3d4c"
    assert [stored(a) for a in stored_run.annotations] == [stored(a) for a in run.annotations]
    assert {r.path for r in patches} == {f"/repos/{site.github.repo}/check-runs/{stored_run.id}"}
    assert site.transports[0].waits.taken == []


def test_publishing_the_same_run_again_writes_nothing(site: Site) -> None:
    forge = site.connect()
    run = check_run()
    assert forge.publish_check(run) is True
    before = site.mark()

    assert forge.publish_check(run) is False
    assert site.connect().publish_check(run) is False  # a new process sees it the same way

    assert site.writes(before) == []
    [stored_run] = site.fake.check_runs()
    assert len(stored_run.annotations) == 120


def test_added_annotations_are_appended_to_the_same_run(site: Site) -> None:
    forge = site.connect()
    assert forge.publish_check(check_run()) is True
    before = site.mark()
    more = check_run(annotations=annotations(120) + annotations(65, start=120))

    assert forge.publish_check(more) is True

    writes = site.writes(before)
    assert [w.method for w in writes] == ["PATCH", "PATCH"]
    assert annotation_batches(writes) == [50, 15]
    [stored_run] = site.fake.check_runs()
    assert [stored(a) for a in stored_run.annotations] == [stored(a) for a in more.annotations]
    assert forge.publish_check(more) is False


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            lambda notes: (*notes[:10], {**notes[10], "message": "reworded"}, *notes[11:]),
            id="changed",
        ),
        pytest.param(lambda notes: notes[:60] + notes[61:], id="removed"),
    ],
)
def test_a_changed_or_removed_annotation_publishes_a_new_run_of_the_same_name(
    site: Site, edit: Callable[[tuple[dict[str, Any], ...]], tuple[dict[str, Any], ...]]
) -> None:
    forge = site.connect()
    first = check_run()
    assert forge.publish_check(first) is True
    before = site.mark()
    second = check_run(annotations=edit(first.annotations))

    assert forge.publish_check(second) is True

    writes = site.writes(before)
    assert [w.method for w in writes] == ["POST", "PATCH", "PATCH"]
    assert annotation_batches(writes) == [50, 50, len(second.annotations) - 100]
    old, new = sorted(site.fake.check_runs(), key=lambda r: r.id)
    assert (old.name, new.name) == (NAME, NAME)
    assert [stored(a) for a in old.annotations] == [stored(a) for a in first.annotations]
    assert [stored(a) for a in new.annotations] == [stored(a) for a in second.annotations]
    # GitHub shows the newest run of a name; that one is now exactly the second publication.
    assert forge.check_state(SHA, NAME) == "failure"
    assert forge.publish_check(second) is False
    assert len(site.fake.check_runs()) == 2


def test_a_status_change_updates_the_run_in_place_without_resending_annotations(
    site: Site,
) -> None:
    forge = site.connect()
    running = check_run(status="in_progress", conclusion=None, annotations=annotations(3))
    assert forge.publish_check(running) is True
    assert forge.check_state(SHA, NAME) == "pending"
    before = site.mark()

    done = replace(running, status="completed", conclusion="success", title="passed")
    assert forge.publish_check(done) is True

    [patch] = site.writes(before)
    assert patch.method == "PATCH"
    assert "annotations" not in patch.json["output"]
    [stored_run] = site.fake.check_runs()
    assert (stored_run.status, stored_run.conclusion) == ("completed", "success")
    assert stored_run.output_title == "passed"
    assert len(stored_run.annotations) == 3
    assert forge.check_state(SHA, NAME) == "success"


def test_oversized_summary_and_text_are_clipped_with_a_marker_and_the_pointer(
    site: Site,
) -> None:
    forge = site.connect()
    # 200,000 characters, many of them 2-, 3- and 4-byte in UTF-8.
    summary = ("é" * 30 + "日本語" * 10 + "🦀" * 5 + "ascii " * 10 + "\n") * 1600
    summary = summary[:200_000]
    text = "x" * 150_000 + "🦀" * 50_000
    assert len(summary) == 200_000
    run = check_run(summary=summary, text=text, annotations=annotations(2))

    assert forge.publish_check(run) is True

    [post] = site.fake.requests_to("POST", CHECK_RUNS)
    assert post.status == 201  # the fake enforces GitHub's 65,535 characters: accepted
    [stored_run] = site.fake.check_runs()
    for original, kept in ((summary, stored_run.output_summary), (text, stored_run.output_text)):
        assert kept is not None
        assert len(kept) <= 65_535
        assert len(kept.encode()) <= 65_535
        assert kept.endswith(f" {POINTER}\n")
        body, _, marker = kept.rpartition("\n\n… truncated: ")
        assert original.startswith(body)
        assert len(body) > 10_000
        cut = len(original.encode()) - len(body.encode())
        assert marker == f"{cut} more bytes not shown. {POINTER}\n"
    assert forge.publish_check(run) is False  # the clipped text is what GitHub shows: unchanged


def test_interrupted_annotation_batches_are_completed_by_the_next_publish(site: Site) -> None:
    forge = site.connect()
    # The create goes through; the first annotation batch meets a limit too long to wait
    # for: the publication fails (to the outbox) with the run half filled on GitHub.
    site.fake.fail_next_secondary_rate_limit("PATCH", CHECK_RUN, retry_after=600)

    def publish() -> bool:
        return forge.publish_check(check_run())

    with pytest.raises(ForgeError) as failed:
        publish()
    assert "rate limit" in str(failed.value)
    assert failed.value.delay == 600
    [half_run] = site.fake.check_runs()
    assert len(half_run.annotations) == 50
    assert site.transports[0].waits.taken == []  # 600 s is more than Policy.max_wait

    assert publish() is True  # the outbox delivers it later

    [stored_run] = site.fake.check_runs()
    assert stored_run.id == half_run.id
    assert [stored(a) for a in stored_run.annotations] == [
        stored(a) for a in check_run().annotations
    ]
    assert publish() is False


# ---- comments


def test_one_comment_per_key_is_created_then_edited_in_place(site: Site) -> None:
    site.fake.add_pull(7, SHA)
    site.fake.add_pull(8, OTHER_SHA)
    forge = site.connect()

    assert forge.comment("alloy-review", "**Verdict**: blocking — 2 findings", pull=7) is True
    [created] = site.fake.comments(issue_number=7)
    assert created.body == "<!-- alloy:alloy-review -->\n**Verdict**: blocking — 2 findings"
    before = site.mark()

    assert forge.comment("alloy-review", "**Verdict**: pass ✓", pull=7) is True

    [edit] = site.writes(before)
    assert (edit.method, edit.path) == (
        "PATCH",
        f"/repos/{site.github.repo}/issues/comments/{created.id}",
    )
    [comment] = site.fake.comments(issue_number=7)
    assert comment.id == created.id
    assert comment.body == "<!-- alloy:alloy-review -->\n**Verdict**: pass ✓"
    assert comment.history == [created.body]

    before = site.mark()
    assert forge.comment("alloy-review", "**Verdict**: pass ✓", pull=7) is False
    assert site.writes(before) == []

    # Another key is another comment; another pull request has its own.
    assert forge.comment("alloy-plan", "plan", pull=7) is True
    assert forge.comment("alloy-review", "elsewhere", pull=8) is True
    assert len(site.fake.comments(issue_number=7)) == 2
    assert [c.body for c in site.fake.comments(issue_number=8)] == [
        "<!-- alloy:alloy-review -->\nelsewhere"
    ]
    with pytest.raises(ForgeError, match="name one"):
        forge.comment("alloy-review", "where?")


def test_a_lost_comment_answer_is_not_reposted(site: Site) -> None:
    """A POST is never repeated blindly: when GitHub made the comment but the answer was lost,
    the next try finds it by its marker."""
    site.fake.add_pull(7, SHA)
    forge = site.connect()
    site.recorders[0].lose_answer("POST", r"/issues/7/comments$")

    with pytest.raises(ForgeError, match="502"):
        forge.comment("alloy-review", "first", pull=7)
    assert len(site.fake.requests_to("POST", r"/comments$")) == 1
    assert forge.comment("alloy-review", "first", pull=7) is False
    assert forge.comment("alloy-review", "second", pull=7) is True

    [comment] = site.fake.comments(issue_number=7)
    assert comment.body == "<!-- alloy:alloy-review -->\nsecond"


# ---- who merged it


def test_identity_counts_each_reviewers_latest_review(site: Site) -> None:
    merge = "5eed" * 10
    site.fake.add_pull(12, SHA, user="alice", merged=True, merge_commit_sha=merge)
    site.fake.add_review(12, "bob", "APPROVED")
    site.fake.add_review(12, "carol", "CHANGES_REQUESTED")
    site.fake.add_review(12, "dave", "APPROVED")
    site.fake.add_review(12, "erin", "COMMENTED")
    site.fake.add_review(12, "carol", "APPROVED")
    site.fake.add_review(12, "dave", "DISMISSED")
    site.fake.add_review(12, "frank", "APPROVED")
    site.fake.add_review(12, "frank", "CHANGES_REQUESTED")
    forge = site.connect()

    assert forge.identity(merge) == Identity(
        pull=12, author="alice", approvers=("bob", "carol"), changes_requested=("frank",)
    )
    assert forge.identity(merge) == Identity(
        pull=12, author="alice", approvers=("bob", "carol"), changes_requested=("frank",)
    )
    # Asked once: the pull requests of the commit and the reviews of the pull request.
    assert [r.path for r in site.fake.requests] == [
        f"/repos/{site.github.repo}/commits/{merge}/pulls",
        f"/repos/{site.github.repo}/pulls/12/reviews",
    ]


def test_a_comment_after_an_approval_does_not_withdraw_it(site: Site) -> None:
    merge = "c0de" * 10
    site.fake.add_pull(3, SHA, user="alice", merged=True, merge_commit_sha=merge)
    site.fake.add_review(3, "bob", "APPROVED")
    site.fake.add_review(3, "bob", "COMMENTED")

    assert site.connect().identity(merge) == Identity(pull=3, author="alice", approvers=("bob",))


def test_a_commit_without_a_merged_pull_request_has_nobody_behind_it(site: Site) -> None:
    site.fake.add_pull(4, OTHER_SHA, user="mallory")  # open, not merged: it vouches for nothing
    site.fake.add_review(4, "bob", "APPROVED")
    forge = site.connect()

    assert forge.identity(SHA) == Identity(pull=0, author="", approvers=())
    assert forge.identity(OTHER_SHA) == Identity(pull=0, author="", approvers=())
    assert not site.fake.requests_to("GET", r"/reviews$")


# ---- rate limits


def test_a_secondary_rate_limit_on_the_create_waits_retry_after_and_creates_once(
    site: Site,
) -> None:
    site.fake.fail_next_secondary_rate_limit("POST", CHECK_RUNS, retry_after=3)
    forge = site.connect()

    assert forge.publish_check(check_run()) is True

    assert site.transports[0].waits.taken == [("secondary", 3.5)]
    assert site.clock.slept == [3.5]
    assert [r.status for r in site.fake.requests_to("POST", CHECK_RUNS)] == [403, 201]
    [stored_run] = site.fake.check_runs()
    assert len(stored_run.annotations) == 120


def test_a_secondary_rate_limit_on_a_get_waits_retry_after(site: Site) -> None:
    site.fake.fail_next_secondary_rate_limit("GET", LIST_RUNS, retry_after=7)
    forge = site.connect()

    assert forge.publish_check(check_run(annotations=())) is True

    assert site.transports[0].waits.taken == [("secondary", 7.5)]
    assert [r.status for r in site.fake.requests_to("GET", LIST_RUNS)] == [403, 200]
    assert len(site.fake.check_runs()) == 1


def test_a_secondary_rate_limit_without_retry_after_waits_a_minute_doubled(site: Site) -> None:
    site.fake.fail_next("GET", LIST_RUNS, 403, body=SECONDARY_RATE_LIMIT_BODY, times=2)
    forge = site.connect()

    assert forge.publish_check(check_run(annotations=())) is True

    assert site.transports[0].waits.taken == [("secondary", 60.0), ("secondary", 120.0)]
    assert len(site.fake.check_runs()) == 1


def _primary_limit(site: Site, method: str, path: str, reset_in: int) -> None:
    """GitHub's primary rate limit, its reset on the fake clock."""
    site.fake.fail_next(
        method,
        path,
        403,
        headers={
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Used": "5000",
            "X-RateLimit-Reset": str(int(START) + reset_in),
        },
        body={
            "message": "API rate limit exceeded for installation ID 1.",
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
        },
    )


def test_a_primary_rate_limit_waits_until_the_reset(site: Site) -> None:
    _primary_limit(site, "POST", CHECK_RUNS, reset_in=30)
    forge = site.connect()

    assert forge.publish_check(check_run()) is True

    # Until the reset (30 s on the fake clock), one second more, and half of one of jitter.
    assert site.transports[0].waits.taken == [("primary", 31.5)]
    assert [r.status for r in site.fake.requests_to("POST", CHECK_RUNS)] == [403, 201]
    [stored_run] = site.fake.check_runs()
    assert len(stored_run.annotations) == 120


def test_a_primary_rate_limit_on_a_get_waits_until_the_reset(site: Site) -> None:
    _primary_limit(site, "GET", ANNOTATIONS, reset_in=45)
    forge = site.connect()
    assert forge.publish_check(check_run()) is True

    assert forge.publish_check(check_run()) is False

    assert site.transports[0].waits.taken == [("primary", 46.5)]
    assert len(site.fake.check_runs()) == 1


def test_a_known_exhausted_quota_waits_for_the_reset_before_sending(site: Site) -> None:
    reset = int(START) + 20
    site.fake.set_rate_limit(remaining=1, reset=reset)

    def github_resets(now: float) -> None:
        if now >= reset:
            site.fake.set_rate_limit(remaining=5000, reset=reset + 3600)

    site.clock.on_sleep.append(github_resets)
    forge = site.connect()

    assert forge.publish_check(check_run(annotations=())) is True

    # The list took the last request of the quota; the create waited for the reset instead
    # of spending a request on a 403.
    assert site.transports[0].waits.taken == [("quota", 21.0)]
    assert [r.status for r in site.fake.requests] == [200, 201]
    assert len(site.fake.check_runs()) == 1


@pytest.mark.parametrize("limit", ["secondary", "primary"])
def test_a_wait_longer_than_max_wait_fails_the_publication_and_writes_nothing(
    site: Site, limit: str
) -> None:
    if limit == "secondary":
        site.fake.fail_next_secondary_rate_limit("POST", CHECK_RUNS, retry_after=600)
    else:
        _primary_limit(site, "POST", CHECK_RUNS, reset_in=3000)
    forge = site.connect(policy=Policy(max_wait=120.0))

    with pytest.raises(ForgeError, match="rate limit") as failed:
        forge.publish_check(check_run())

    assert failed.value.delay == (600 if limit == "secondary" else 0)
    assert site.transports[0].waits.taken == []
    assert site.clock.slept == []
    assert site.fake.check_runs() == []
    assert site.fake.statuses() == []  # a rate limit is not a refusal: no status fallback
    assert [w.method for w in site.writes()] == ["POST"]

    # The outbox delivers it on a later pass: one run, whole.
    site.clock.t += 3600
    assert forge.publish_check(check_run()) is True
    [stored_run] = site.fake.check_runs()
    assert len(stored_run.annotations) == 120
    assert site.fake.statuses() == []


# ---- server errors


def test_server_errors_on_a_get_are_retried_with_backoff(site: Site) -> None:
    site.fake.fail_next("GET", LIST_RUNS, 502)
    site.fake.fail_next("GET", LIST_RUNS, 503)
    forge = site.connect()

    assert forge.publish_check(check_run(annotations=annotations(3))) is True

    # Full jitter over 1, 2, … seconds: half of each.
    assert site.transports[0].waits.taken == [("server error 502", 0.5), ("server error 503", 1.0)]
    assert [r.status for r in site.fake.requests_to("GET", LIST_RUNS)] == [502, 503, 200]
    [stored_run] = site.fake.check_runs()
    assert len(stored_run.annotations) == 3


def test_server_errors_on_a_patch_are_retried_with_backoff(site: Site) -> None:
    """PATCHes that say the same thing twice (a comment's body, a run's status) are repeated."""
    site.fake.add_pull(7, SHA)
    forge = site.connect()
    running = check_run(status="in_progress", conclusion=None, annotations=annotations(3))
    assert forge.publish_check(running) is True
    assert forge.comment("alloy-review", "first", pull=7) is True
    site.fake.fail_next("PATCH", CHECK_RUN, 502)
    site.fake.fail_next("PATCH", r"/issues/comments/\d+$", 503)
    site.fake.fail_next("PATCH", r"/issues/comments/\d+$", 502)

    assert forge.publish_check(replace(running, status="completed", conclusion="success"))
    assert forge.comment("alloy-review", "second", pull=7) is True

    assert site.transports[0].waits.taken == [
        ("server error 502", 0.5),
        ("server error 503", 0.5),
        ("server error 502", 1.0),
    ]
    assert [r.status for r in site.fake.requests_to("PATCH", CHECK_RUN)] == [502, 200]
    assert [r.status for r in site.fake.requests_to("PATCH", "/comments/")] == [503, 502, 200]
    [stored_run] = site.fake.check_runs()
    assert (stored_run.status, stored_run.conclusion) == ("completed", "success")
    assert len(stored_run.annotations) == 3
    [comment] = site.fake.comments(issue_number=7)
    assert comment.body == "<!-- alloy:alloy-review -->\nsecond"


@pytest.mark.parametrize("github_did_it", [False, True], ids=["not-done", "answer-lost"])
def test_a_server_error_on_an_annotation_batch_is_not_repeated_and_a_retry_completes_it(
    site: Site, github_did_it: bool
) -> None:
    """Annotations are appended on every update, so a PATCH that carries them is not safe to
    repeat blindly: GitHub may have taken it (the 502 came after). The publication fails (to
    the outbox); the next one looks first and sends only what is missing."""
    forge = site.connect()
    if github_did_it:
        site.recorders[0].lose_answer("PATCH", CHECK_RUN)
    else:
        site.fake.fail_next("PATCH", CHECK_RUN, 502)

    with pytest.raises(ForgeError, match="502"):
        forge.publish_check(check_run())

    assert site.transports[0].waits.taken == []
    [half_run] = site.fake.check_runs()
    assert len(half_run.annotations) == (100 if github_did_it else 50)

    assert forge.publish_check(check_run()) is True  # as the outbox would

    [stored_run] = site.fake.check_runs()
    assert stored_run.id == half_run.id
    assert [stored(a) for a in stored_run.annotations] == [
        stored(a) for a in check_run().annotations
    ]
    assert forge.publish_check(check_run()) is False


def test_a_server_error_on_the_create_is_not_repeated_and_a_retry_makes_one_run(
    site: Site,
) -> None:
    site.fake.fail_next("POST", CHECK_RUNS, 502)
    forge = site.connect()

    with pytest.raises(ForgeError, match="502"):
        forge.publish_check(check_run())
    assert site.transports[0].waits.taken == []
    assert [r.status for r in site.fake.requests_to("POST", CHECK_RUNS)] == [502]

    assert forge.publish_check(check_run()) is True  # as the outbox would
    [stored_run] = site.fake.check_runs()
    assert len(stored_run.annotations) == 120


def test_a_create_github_did_but_whose_answer_was_lost_is_not_duplicated(site: Site) -> None:
    forge = site.connect()
    site.recorders[0].lose_answer("POST", CHECK_RUNS)

    with pytest.raises(ForgeError, match="502"):
        forge.publish_check(check_run())
    [half_run] = site.fake.check_runs()  # GitHub did create it, with the first 50
    assert len(half_run.annotations) == 50
    assert len(site.fake.requests_to("POST", CHECK_RUNS)) == 1

    assert forge.publish_check(check_run()) is True  # as the outbox would

    [stored_run] = site.fake.check_runs()
    assert stored_run.id == half_run.id
    assert [stored(a) for a in stored_run.annotations] == [
        stored(a) for a in check_run().annotations
    ]
    assert len(site.fake.requests_to("POST", CHECK_RUNS)) == 1


def test_server_errors_beyond_the_tries_fail_the_publication(site: Site) -> None:
    site.fake.fail_next("GET", LIST_RUNS, 504, times=3)
    forge = site.connect(policy=Policy(tries=3))

    with pytest.raises(ForgeError, match="504"):
        forge.publish_check(check_run())

    assert site.transports[0].waits.taken == [("server error 504", 0.5), ("server error 504", 1.0)]
    assert site.writes() == []
    assert site.fake.check_runs() == []


# ---- conditional requests


def test_a_repeated_get_of_an_unchanged_list_is_conditional_and_costs_no_quota(
    site: Site,
) -> None:
    site.fake.add_pull(7, SHA)
    forge = site.connect()
    run = check_run()
    assert forge.publish_check(run) is True
    assert forge.publish_check(run) is False  # the run changed since the first look: 200s
    assert forge.comment("alloy-review", "body", pull=7) is True
    assert forge.comment("alloy-review", "body", pull=7) is False
    before, quota = site.mark(), site.fake.rate_limit_remaining

    assert forge.publish_check(run) is False
    assert forge.comment("alloy-review", "body", pull=7) is False

    gets = site.fake.requests[before:]
    assert [(r.method, r.status) for r in gets] == [("GET", 304)] * 4  # runs, 2 pages, comments
    assert all(r.headers.get("if-none-match", "").startswith('W/"') for r in gets)
    assert site.fake.rate_limit_remaining == quota
    assert site.transports[0].quota.remaining == quota
    [stored_run] = site.fake.check_runs()
    assert len(stored_run.annotations) == 120
    assert len(site.fake.comments(issue_number=7)) == 1


def test_a_cached_first_page_learns_of_a_new_page_from_the_304(site: Site) -> None:
    """A list's first page can stay the same while a page is added after it: the 304 for the
    first page carries the new `Link`, and the cached copy must not end the list early (here:
    the annotations past 100 would be taken as missing and sent again, twice on GitHub)."""
    forge = site.connect()
    hundred = check_run(annotations=annotations(100))
    assert forge.publish_check(hundred) is True
    assert forge.publish_check(hundred) is False  # the single page is now cached
    more = check_run(annotations=annotations(120))
    assert forge.publish_check(more) is True
    before = site.mark()

    assert forge.publish_check(more) is False

    assert [
        (r.path.rsplit("/", 1)[-1], r.query.get("page"), r.status)
        for r in site.fake.requests[before:]
    ] == [
        ("check-runs", None, 200),  # the run changed (120 annotations): fetched
        ("annotations", None, 304),  # page 1 is the same: from the cache, with the new Link
        ("annotations", ["2"], 200),
    ]
    [stored_run] = site.fake.check_runs()
    assert [stored(a) for a in stored_run.annotations] == [stored(a) for a in more.annotations]


# ---- check gates, teams, the commit-status fallback


def _post_status(site: Site, sha: str, context: str, state: str) -> None:
    """A commit status another tool set (through Prism: its contract is checked too)."""
    import requests

    answer = requests.post(
        f"{site.github.api_url}/repos/{site.github.repo}/statuses/{sha}",
        json={"state": state, "context": context, "description": f"{context}: {state}"},
        headers={
            "Authorization": f"token {site.github.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        },
        timeout=30,
    )
    assert answer.status_code == 201, answer.text


def test_check_state_reads_the_latest_run_then_commit_statuses(site: Site) -> None:
    forge = site.connect()
    assert forge.publish_check(check_run(name="build", conclusion="success", annotations=()))
    assert forge.publish_check(
        check_run(name="deploy", status="in_progress", conclusion=None, annotations=())
    )
    assert forge.publish_check(check_run(name="lint", conclusion="failure", annotations=()))
    assert forge.publish_check(check_run(name="docs", conclusion="neutral", annotations=()))
    _post_status(site, SHA, "ci/legacy", "success")
    _post_status(site, SHA, "ci/queued", "pending")
    _post_status(site, SHA, "ci/broken", "error")
    _post_status(site, SHA, "build", "failure")  # a run of that name wins over a status

    assert forge.check_state(SHA, "build") == "success"
    assert forge.check_state(SHA, "deploy") == "pending"
    assert forge.check_state(SHA, "lint") == "failure"
    assert forge.check_state(SHA, "docs") == "success"
    assert forge.check_state(SHA, "ci/legacy") == "success"
    assert forge.check_state(SHA, "ci/queued") == "pending"
    assert forge.check_state(SHA, "ci/broken") == "failure"
    assert forge.check_state(SHA, "unknown") is None
    assert forge.check_state(OTHER_SHA, "build") is None
    # The state was read, nothing was written by reading it.
    assert len(site.fake.check_runs()) == 4
    assert len(site.fake.statuses()) == 4


def test_team_membership_counts_active_members_only(site: Site) -> None:
    site.fake.add_team_member("Codertocat", "reviewers", "bob")
    site.fake.add_team_member("Codertocat", "reviewers", "carol", state="pending")
    site.fake.add_team_member("Codertocat", "admins", "dave", role="maintainer")
    forge = site.connect()

    assert forge.is_member("bob", "reviewers") is True
    assert forge.is_member("carol", "reviewers") is False  # invited, not yet a member
    assert forge.is_member("dave", "reviewers") is False  # 404: not a member
    assert forge.is_member("dave", "admins") is True
    assert forge.is_member("bob", "reviewers") is True  # asked once

    assert [r.path for r in site.fake.requests] == [
        "/orgs/Codertocat/teams/reviewers/memberships/bob",
        "/orgs/Codertocat/teams/reviewers/memberships/carol",
        "/orgs/Codertocat/teams/reviewers/memberships/dave",
        "/orgs/Codertocat/teams/admins/memberships/dave",
    ]


def test_an_unreachable_team_counts_as_no_member(site: Site) -> None:
    site.fake.add_team_member("Codertocat", "reviewers", "bob")
    site.fake.fail_next("GET", "/memberships/", 503, times=5)
    forge = site.connect(policy=Policy(tries=5))

    assert forge.is_member("bob", "reviewers") is False  # an approval gate fails closed

    assert [reason for reason, _ in site.transports[0].waits.taken] == ["server error 503"] * 4


def test_a_refused_check_run_falls_back_to_a_commit_status_from_then_on(site: Site) -> None:
    site.fake.fail_next(
        "POST",
        CHECK_RUNS,
        403,
        body={
            "message": "Resource not accessible by integration",
            "documentation_url": "https://docs.github.com/rest/checks/runs#create-a-check-run",
            "status": "403",
        },
    )
    forge = site.connect()
    running = check_run(status="in_progress", conclusion=None, title="reviewing")

    assert forge.publish_check(running) is True

    assert site.fake.check_runs() == []
    [status] = site.fake.statuses(sha=SHA)
    assert (status.context, status.state, status.description) == (NAME, "pending", "reviewing")
    assert forge.publish_check(running) is False

    done = check_run(title="2 blocking findings " + "x" * 200, details_url="https://ci/run/1")
    assert forge.publish_check(done) is True
    assert forge.check_state(SHA, NAME) == "failure"

    assert len(site.fake.requests_to("POST", CHECK_RUNS)) == 1  # asked once, refused once
    statuses = site.fake.statuses(sha=SHA)
    assert [(s.context, s.state) for s in statuses] == [(NAME, "pending"), (NAME, "failure")]
    assert statuses[-1].target_url == "https://ci/run/1"
    assert statuses[-1].description is not None
    assert len(statuses[-1].description) == 140
    assert statuses[-1].description.endswith("…")


# ---- GitHub App authentication


def _app_key() -> tuple[bytes, bytes]:
    """A fresh RSA key: (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_a_github_app_logs_in_as_the_installation_of_the_repository(site: Site) -> None:
    import jwt

    private, public = _app_key()
    site.fake.app_public_key = public  # the fake now checks the JWT's signature (reset undoes it)
    forge = site.connect(credentials=Credentials(app_id=site.fake.app_id, private_key=private))

    lookup, token = site.fake.requests
    assert (lookup.method, lookup.path, lookup.status) == (
        "GET",
        f"/repos/{site.github.repo}/installation",
        200,
    )
    assert (token.method, token.path, token.status) == (
        "POST",
        f"/app/installations/{site.fake.installation_id}/access_tokens",
        201,
    )
    for request in (lookup, token):
        scheme, _, signed = request.headers["authorization"].partition(" ")
        assert scheme == "Bearer"
        claims = jwt.decode(signed, public, algorithms=["RS256"])
        assert str(claims["iss"]) == str(site.fake.app_id)
        assert claims["exp"] - claims["iat"] <= 600  # GitHub's limit on an App JWT

    assert forge.publish_check(check_run(annotations=annotations(3))) is True

    [stored_run] = site.fake.check_runs()
    assert stored_run.app["slug"] == site.fake.app_slug  # written as the App, not as Actions
    [create] = site.fake.requests_to("POST", CHECK_RUNS)
    assert create.headers["authorization"].startswith("token ghs_")  # the installation token
    assert len(site.fake.requests_to("POST", "/access_tokens$")) == 1  # not renewed: fresh


def test_a_github_app_with_a_known_installation_skips_the_lookup_and_renews_its_token(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime

    from controllers.github import _client

    private, public = _app_key()
    site.fake.app_public_key = public
    credentials = Credentials(
        app_id=site.fake.app_id, private_key=private, installation_id=site.fake.installation_id
    )
    forge = site.connect(credentials=credentials)
    assert [r.path for r in site.fake.requests] == [
        f"/app/installations/{site.fake.installation_id}/access_tokens"
    ]
    # The one-hour token is renewed when less than RENEW_BEFORE is left: make that always.
    monkeypatch.setattr(_client, "RENEW_BEFORE", datetime.timedelta(hours=2))
    before = site.mark()

    assert forge.publish_check(check_run(annotations=())) is True

    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in site.fake.requests[before:]] == [
        ("POST", "access_tokens"),
        ("GET", "check-runs"),
        ("POST", "access_tokens"),
        ("POST", "check-runs"),
    ]
    used = [r.headers["authorization"] for r in site.fake.requests_to("GET", LIST_RUNS)]
    used += [r.headers["authorization"] for r in site.fake.requests_to("POST", CHECK_RUNS)]
    assert len(set(used)) == 2  # each request with the token renewed just before it
    assert len(site.fake.check_runs()) == 1


def test_a_github_app_with_the_wrong_key_cannot_log_in(site: Site) -> None:
    _, public = _app_key()
    other_private, _ = _app_key()
    site.fake.app_public_key = public

    with pytest.raises(ForgeError, match=f"GitHub App {site.fake.app_id}: cannot log in"):
        site.connect(credentials=Credentials(app_id=site.fake.app_id, private_key=other_private))

    assert [(r.path, r.status) for r in site.fake.requests] == [
        (f"/repos/{site.github.repo}/installation", 401)
    ]


def test_a_github_app_key_that_is_not_a_key_is_a_clear_error(site: Site) -> None:
    with pytest.raises(ForgeError, match="cannot sign in with its key"):
        site.connect(credentials=Credentials(app_id=site.fake.app_id, private_key=b"not a PEM"))
    assert site.fake.requests == []


def test_no_credentials_is_a_clear_error(site: Site) -> None:
    with pytest.raises(ForgeError, match="no GitHub credentials"):
        site.connect(credentials=Credentials())
    assert site.fake.requests == []


# ---- the contract guard itself


def test_the_contract_guard_sees_what_prism_rejects(github: GitHubRig) -> None:
    """Without this, a guard that sees nothing would pass every test above."""
    recorder = Recorder()
    clock = Clock()
    transport = GitHubTransport(sleep=clock.sleep, now=clock.now, jitter=half, inner=recorder)
    forge = connect(
        github.repo,
        api_url=github.api_url,
        credentials=Credentials(token=github.token),
        transport=transport,
    )
    # A request GitHub would reject (no head_sha): Prism answers 422 and the fake never sees it.
    with pytest.raises(ForgeError, match="422"):
        forge.client.request(
            "POST", forge.client.repo_url("check-runs"), ok=(201,), json={"name": "x"}
        )
    # A response GitHub would never send (no total_count, no check_runs): Prism answers 500.
    github.fake.fail_next("GET", LIST_RUNS, 200, body={"runs": []})
    assert forge.check_state(SHA, NAME) is None  # the GET is retried after the 500

    found = recorder.violations()
    assert any("errors#UNPROCESSABLE_ENTITY" in v and "head_sha" in v for v in found)
    assert any("errors#VIOLATIONS" in v and "total_count" in v for v in found)
    assert {v.split(" -> ")[0].split("?")[0].rsplit("/", 1)[-1] for v in found} == {"check-runs"}
    assert [r.status for r in github.fake.requests_to("POST", CHECK_RUNS)] == []
    assert transport.waits.taken == [("server error 500", 0.5)]
    # Prism's log says so too (wait for it: the site fixture of the next test reads from here).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logged = github.prism.log_path.read_text(encoding="utf-8", errors="replace")
        if "errors#UNPROCESSABLE_ENTITY" in logged and "errors#VIOLATIONS" in logged:
            break
        time.sleep(0.05)
    else:
        pytest.fail("Prism's log does not show the violations")
