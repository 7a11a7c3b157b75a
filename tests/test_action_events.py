"""`foundry action` on real webhook payloads (`@octokit/webhooks-examples`), as a real process
in a real git workspace whose `origin` is a bare repository, against the fake GitHub behind
Prism (GitHub's own contract) where the event writes to GitHub (issue 6's "Event tests").

Each payload is GitHub's example, with only what ties it to the test repository replaced (the
commits, the repository's name, the default branch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GitRepo, git
from tests.github_prism import GitHubRig
from tests.test_reconcile import World, lines, make_world
from tests.webhooks import example

#: Nothing listens here: an event that must not reach GitHub fails loudly if it tries.
NOWHERE = "http://127.0.0.1:9"


class Job:
    """A GitHub Actions job around `foundry action`: event file, outputs, summary."""

    def __init__(self, world: World, api_url: str, token: str = "test-token") -> None:  # noqa: S107
        self.world = world
        self.api_url = api_url
        self.token = token
        self.dir = world.tmp / "job"
        self.dir.mkdir(exist_ok=True)
        self.runs = 0

    def run(self, event: str, payload: dict[str, Any], *, repo: str) -> tuple[int, str, str]:
        self.runs += 1
        event_path = self.dir / f"event-{self.runs}.json"
        event_path.write_text(json.dumps(payload), encoding="utf-8")
        self.output = self.dir / f"output-{self.runs}"
        self.summary = self.dir / f"summary-{self.runs}.md"
        env = {
            **os.environ,
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_REPOSITORY": repo,
            "GITHUB_WORKSPACE": str(self.world.work.path),
            "GITHUB_API_URL": self.api_url,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": str(1000 + self.runs),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_TOKEN": self.token,
            "RUNNER_TEMP": str(self.dir / f"temp-{self.runs}"),
        }
        proc = subprocess.run(
            [sys.executable, "-P", "-m", "foundry", "action"],  # as action.yml runs it
            cwd=self.world.work.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        return proc.returncode, proc.stdout, proc.stderr

    def outputs(self) -> dict[str, str]:
        """`$GITHUB_OUTPUT` parsed (`name<<delimiter` blocks)."""
        out: dict[str, str] = {}
        text = self.output.read_text(encoding="utf-8").splitlines() if self.output.exists() else []
        i = 0
        while i < len(text):
            name, _, delimiter = text[i].partition("<<")
            end = text.index(delimiter, i + 1)
            out[name] = "\n".join(text[i + 1 : end])
            i = end + 1
        return out


def pull_request_payload(
    action: str, *, repo: str, base: str, head: str, number: int, fork: str | None = None
) -> dict[str, Any]:
    payload = example("pull_request", action)
    owner, name = repo.split("/")
    payload["number"] = number
    payload["repository"].update(full_name=repo, name=name, default_branch="main")
    payload["repository"]["owner"]["login"] = owner
    pull = payload["pull_request"]
    pull["number"] = number
    pull["base"].update(sha=base, ref="main")
    pull["base"]["repo"].update(full_name=repo, name=name)
    pull["head"].update(sha=head, ref="topic")
    pull["head"]["repo"].update(full_name=fork or repo, name=name)
    return payload


def push_payload(*, repo: str, ref: str, before: str, after: str) -> dict[str, Any]:
    payload = example("push")
    name = repo.split("/")[1]
    payload.update(ref=ref, before=before, after=after)
    payload["repository"].update(full_name=repo, name=name, default_branch="main")
    payload["repository"]["master_branch"] = "main"
    return payload


@pytest.fixture
def world(repo: GitRepo, tmp_path: Path) -> World:
    return make_world(repo, tmp_path)


def _risky_change(world: World) -> tuple[str, str]:
    """A merged base with one intent; a head that makes its block irreversible without an
    approval gate (invalid by the default policy, so blocking; its artifact left stale)."""
    world.add_intent("hello")
    base = world.merge("hello")
    git(world.work.path, "checkout", "-q", "-b", "topic")
    text = (world.work.path / ".alloy/intents/hello.yaml").read_text()
    text = text.replace("effects: idempotent", "effects: irreversible")
    (world.work.path / ".alloy/intents/hello.yaml").write_text(text)
    head = world.work.commit("make it irreversible")
    git(world.work.path, "checkout", "-q", "main")
    return base, head


# --- events it must ignore ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("check_run", "completed"),
        ("check_suite", "completed"),
        ("issue_comment", "created"),
        ("status", None),
        ("merge_group", None),
        ("pull_request_review", "submitted"),
        ("release", "published"),
        ("pull_request", "closed"),
        ("pull_request", "labeled"),
    ],
)
def test_events_it_does_not_handle_do_nothing_and_succeed(
    world: World, event: str, action: str | None
) -> None:
    world.add_intent("hello")
    world.merge("hello")
    before = world.snapshot()
    job = Job(world, NOWHERE)
    payload = example(event, action)
    payload.setdefault("repository", {})["full_name"] = "Codertocat/Hello-World"
    code, out, err = job.run(event, payload, repo="Codertocat/Hello-World")
    assert code == 0, err
    assert "nothing" in out, out
    assert job.outputs()["did"] == "nothing"
    assert world.snapshot() == before, "nothing was pushed"
    assert lines(world.mark("hello")) == [], "nothing ran"


def test_a_push_to_another_branch_is_not_reconciled(world: World) -> None:
    world.add_intent("hello")
    sha = world.merge("hello")
    before = world.snapshot()
    job = Job(world, NOWHERE)
    payload = push_payload(
        repo="Codertocat/Hello-World", ref="refs/heads/alloy/traces", before="0" * 40, after=sha
    )
    code, out, err = job.run("push", payload, repo="Codertocat/Hello-World")
    assert (code, job.outputs()["did"]) == (0, "nothing"), err
    assert "only pushes to main are reconciled" in out
    assert world.snapshot() == before
    assert lines(world.mark("hello")) == []


# --- pull requests -------------------------------------------------------------------------


def test_a_fork_pull_request_gets_summary_and_annotations_and_writes_nothing(
    world: World,
) -> None:
    base, head = _risky_change(world)
    before = world.snapshot()
    job = Job(world, NOWHERE)
    payload = pull_request_payload(
        "opened",
        repo="Codertocat/Hello-World",
        base=base,
        head=head,
        number=2,
        fork="someone/Hello-World",
    )
    code, out, err = job.run("pull_request", payload, repo="Codertocat/Hello-World")
    assert code == 1, "a blocking review fails the step"
    assert "comes from a fork" in out
    annotations = [line for line in out.splitlines() if line.startswith("::error ")]
    assert annotations, out
    assert any("file=.alloy/intents/hello.yaml" in a for a in annotations), annotations
    assert job.outputs()["verdict"] == "blocking"
    summary = job.summary.read_text(encoding="utf-8")
    assert summary.startswith("**FAIL: Blocking: do not merge"), summary[:200]
    assert world.snapshot() == before
    assert "could not publish" not in out + err, "a fork review never tries GitHub"
    assert lines(world.mark("hello")) == [], "nothing of the pull request ran"


def test_pull_request_opened_then_synchronize_keeps_one_check_and_one_comment(
    world: World, github: GitHubRig
) -> None:
    base, head = _risky_change(world)
    github.fake.add_pull(7, head, base_sha=base, head_ref="topic")
    job = Job(world, github.api_url, github.token)
    payload = pull_request_payload("opened", repo=github.repo, base=base, head=head, number=7)
    code, out, err = job.run("pull_request", payload, repo=github.repo)
    assert code == 1, err
    assert "could not publish" not in out, out
    runs = [r for r in github.fake.check_runs() if r.name == "alloy review"]
    assert len(runs) == 1
    assert (runs[0].head_sha, runs[0].status, runs[0].conclusion) == (head, "completed", "failure")
    assert runs[0].annotations, "findings are annotations"
    assert {a["path"] for a in runs[0].annotations} == {".alloy/intents/hello.yaml"}
    comments = github.fake.comments(issue_number=7)
    assert len(comments) == 1
    assert "Blocking: do not merge" in comments[0].body

    # The author fixes it: the head moves (synchronize), the same check name and comment.
    git(world.work.path, "checkout", "-q", "topic")
    text = (world.work.path / ".alloy/intents/hello.yaml").read_text()
    (world.work.path / ".alloy/intents/hello.yaml").write_text(
        text.replace("effects: irreversible", "effects: idempotent")
    )
    fixed = world.work.commit("idempotent after all")
    git(world.work.path, "checkout", "-q", "main")
    payload = pull_request_payload("synchronize", repo=github.repo, base=base, head=fixed, number=7)
    code, _out, err = job.run("pull_request", payload, repo=github.repo)
    assert code == 0, err
    assert job.outputs()["verdict"] in ("pass", "attention")
    comments = github.fake.comments(issue_number=7)
    assert len(comments) == 1, "the comment is edited, not posted again"
    assert "Blocking: do not merge" not in comments[0].body
    assert github.fake.requests_to("PATCH", r"/issues/comments/\d+$")
    on_fixed = [r for r in github.fake.check_runs() if r.head_sha == fixed]
    assert [(r.name, r.conclusion) for r in on_fixed] == [
        ("alloy review", "success" if job.outputs()["verdict"] == "pass" else "neutral")
    ]

    # The same event again (a re-run): nothing is written to GitHub.
    writes = len([r for r in github.fake.requests if r.method in ("POST", "PATCH")])
    code, _out, err = job.run("pull_request", payload, repo=github.repo)
    assert code == 0, err
    assert len([r for r in github.fake.requests if r.method in ("POST", "PATCH")]) == writes


# --- the default branch ----------------------------------------------------------------------


def test_push_to_the_default_branch_reconciles_once(world: World, github: GitHubRig) -> None:
    secret = "ghs_0nlyForThisTestXq7"  # a made-up token, to prove it leaks nowhere
    github.fake.add_token(secret)
    mark = world.add_intent("hello", script='env > "$MARK.env"')
    before_sha = world.work.commit("nothing yet")
    sha = world.merge("hello")
    job = Job(world, github.api_url, secret)
    payload = push_payload(repo=github.repo, ref="refs/heads/main", before=before_sha, after=sha)
    code, out, err = job.run("push", payload, repo=github.repo)
    assert code == 0, err
    # The token reached GitHub and nowhere else: not the block, the log, the summary, the
    # outputs, git, or anything GitHub was sent besides the Authorization header.
    seen = [out, err, job.summary.read_text(), job.output.read_text()]
    seen.append(Path(f"{mark}.env").read_text())
    seen.append(git(world.bare, "log", "--all", "-p", "--format=%H %s %b"))
    seen += [json.dumps(r.json) for r in github.fake.requests]
    assert not [text for text in seen if secret in text]
    assert "GITHUB_TOKEN" not in Path(f"{mark}.env").read_text()
    assert len(lines(mark)) == 1
    started = job.outputs()["executions-started"].split()
    assert len(started) == 1
    execution = started[0]
    assert world.trace(execution)["status"] == "succeeded"
    assert job.outputs()["trace-paths"] == f"traces/hello/{execution}.json"
    runs = github.fake.check_runs()
    assert [(r.name.split(" (")[0], r.conclusion, r.external_id) for r in runs] == [
        ("foundry: hello", "success", execution)
    ]
    assert runs[0].head_sha == sha
    key = world.digest("hello")[:19]  # an apply of the pushed artifact: `sha256:` + 12 digits
    assert f"| `{execution}` | hello | apply `{key}` | succeeded |" in job.summary.read_text()
    # The job's log tells each execution and block as it starts and ends, named.
    assert f"{execution} (hello, apply {key}) work: started" in out
    assert f"{execution} (hello, apply {key}) work: succeeded in " in out

    # The same push delivered again: nothing new runs, nothing is committed or published.
    refs = world.snapshot()
    code, _out, err = job.run("push", payload, repo=github.repo)
    assert code == 0, err
    assert len(lines(mark)) == 1
    assert job.outputs()["executions-started"] == ""
    assert world.snapshot() == refs
    assert len(github.fake.check_runs()) == 1


def test_workflow_dispatch_runs_a_request_once_with_its_inputs(
    world: World, github: GitHubRig
) -> None:
    inputs = "    inputs:\n      who: {type: string, default: nobody}\n"
    mark = world.add_intent("hello", on="{request: true}", inputs=inputs)
    world.merge("hello")
    job = Job(world, github.api_url, github.token)
    payload = example("workflow_dispatch")
    payload["repository"].update(full_name=github.repo, default_branch="main")
    payload["inputs"] = {"intent": "hello", "reason": "hotfix", "inputs": "who=octocat"}
    code, _out, err = job.run("workflow_dispatch", payload, repo=github.repo)
    assert code == 0, err
    [line] = lines(mark)
    execution = job.outputs()["executions-started"]
    assert line.split() == [execution, "1", "octocat"]
    trace = world.trace(execution)
    assert trace["event"]["type"] == "request"
    assert trace["event"]["key"].startswith("dispatch-")

    # A re-run of the same workflow run is the same request: it does not run again.
    job.runs -= 1
    code, _out, err = job.run("workflow_dispatch", payload, repo=github.repo)
    assert code == 0, err
    assert len(lines(mark)) == 1


def test_workflow_dispatch_without_an_intent_is_a_clear_error(world: World) -> None:
    world.add_intent("hello", on="{request: true}")
    world.merge("hello")
    before = world.snapshot()
    job = Job(world, NOWHERE)
    payload = example("workflow_dispatch")
    payload["inputs"] = {}
    code, out, err = job.run("workflow_dispatch", payload, repo="Codertocat/Hello-World")
    assert code == 1
    assert "must have an `intent` input" in err
    assert "Traceback" not in out + err
    assert world.snapshot() == before


def test_outside_a_job_it_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    proc = subprocess.run(
        [sys.executable, "-m", "foundry", "action"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "GITHUB_EVENT_NAME is not set" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_check_run_github_refused_is_kept_on_the_remote_and_delivered_by_the_next_job(
    world: World, github: GitHubRig
) -> None:
    """A job keeps nothing: what it could not publish waits on `refs/alloy/outbox` of the
    remote, the job fails visibly, and the next job (any event that reconciles) delivers it."""
    mark = world.add_intent("hello")
    before_sha = world.work.commit("nothing yet")
    sha = world.merge("hello")
    github.fake.fail_next("POST", r"/check-runs$", 502, times=2)  # the pass and its retry
    job = Job(world, github.api_url, github.token)
    payload = push_payload(repo=github.repo, ref="refs/heads/main", before=before_sha, after=sha)
    code, out, _err = job.run("push", payload, repo=github.repo)
    assert code == 1
    assert "kept on refs/alloy/outbox" in out
    assert len(lines(mark)) == 1, "the execution ran; only its check run is owed"
    assert github.fake.check_runs() == []
    assert world.ref("refs/alloy/outbox") is not None

    code, _out, err = job.run("push", payload, repo=github.repo)
    assert code == 0, err
    assert len(lines(mark)) == 1, "nothing ran again"
    [run] = github.fake.check_runs()
    assert (run.name.split(" (")[0], run.conclusion, run.head_sha) == (
        "foundry: hello",
        "success",
        sha,
    )
    assert world.ref("refs/alloy/outbox") is None, "delivered, so nothing is kept"


def test_schedule_runs_the_due_slot(world: World, github: GitHubRig) -> None:
    """`schedule` (not a webhook: GitHub's payload is the cron line) reconciles the default
    branch, and a due schedule slot runs."""
    mark = world.add_intent("minutely", on="{schedule: {cron: '* * * * *', catchUp: 5m}}")
    world.merge("a minutely intent")
    job = Job(world, github.api_url, github.token)
    payload = {"schedule": "*/15 * * * *", "repository": {"full_name": github.repo}}
    code, _out, err = job.run("schedule", payload, repo=github.repo)
    assert code == 0, err
    started = job.outputs()["executions-started"].split()
    assert 1 <= len(started) <= 6, "the slots of the catch-up window, each once"
    for execution in started:
        assert world.trace(execution)["event"]["type"] == "schedule"
        assert world.trace(execution)["status"] == "succeeded"
    assert sorted(line.split()[0] for line in lines(mark)) == sorted(started)
    assert sorted(r.external_id for r in github.fake.check_runs()) == sorted(started)
    # The next scheduled run starts none of those again (only a slot that came due since).
    code, _out, err = job.run("schedule", payload, repo=github.repo)
    assert code == 0, err
    assert not set(job.outputs()["executions-started"].split()) & set(started)
    assert len(lines(mark)) == len({line.split()[0] for line in lines(mark)})


def test_packages_in_the_pull_request_checkout_never_run(world: World) -> None:
    """The job's working directory is the pull request's checkout: a package there named like
    Alloy's or Foundry's, or a module the review imports, must not be what runs."""
    base, head = _risky_change(world)
    marker = world.tmp / "pwned"
    evil = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n"
    for package in ("alloy", "foundry", "controllers", "yaml", "pydantic", "click", "git"):
        world.work.write({f"{package}/__init__.py": evil, f"{package}/__main__.py": evil})
    job = Job(world, NOWHERE)
    payload = pull_request_payload(
        "opened",
        repo="Codertocat/Hello-World",
        base=base,
        head=head,
        number=2,
        fork="someone/Hello-World",
    )
    code, out, err = job.run("pull_request", payload, repo="Codertocat/Hello-World")
    assert code == 1, err
    assert job.outputs()["verdict"] == "blocking", out
    assert not marker.exists(), "code from the checkout ran"


def test_the_token_reaches_git_through_the_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pushing traces to an https remote: git gets the token as an extra header from
    GIT_CONFIG_* variables (never a command line or a URL), and the log masks it."""
    import base64
    import io

    from controllers.action import git_credentials
    from controllers.action._env import Job as ActionJob

    for name in ("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0"):
        monkeypatch.setenv(name, "")  # restored (removed) after the test
    monkeypatch.delenv("GIT_CONFIG_COUNT")
    job = ActionJob.from_env(
        {"GITHUB_EVENT_NAME": "push", "GITHUB_REPOSITORY": "o/r", "GITHUB_WORKSPACE": str(tmp_path)}
    )
    out = io.StringIO()
    git_credentials(job, "https://github.example.com/o/r.git", "ghs_tokenValue1", out)
    header = base64.b64encode(b"x-access-token:ghs_tokenValue1").decode()
    assert out.getvalue() == f"::add-mask::{header}\n"
    seen = subprocess.run(
        ["git", "config", "--get", "http.https://github.example.com/.extraheader"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert seen == f"AUTHORIZATION: basic {header}"
    assert "ghs_tokenValue1" not in os.environ.get("GIT_CONFIG_KEY_0", "")
    # A plain path or an ssh remote gets nothing.
    monkeypatch.delenv("GIT_CONFIG_COUNT")
    git_credentials(job, "/srv/git/r.git", "ghs_tokenValue1", io.StringIO())
    assert "GIT_CONFIG_COUNT" not in os.environ
