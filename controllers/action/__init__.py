"""`foundry action`: the GitHub Action's entry point (DESIGN section 8).

It reads the job's standard variables and event payload (`_env.Job`) and dispatches:

* `pull_request` (opened, synchronize, reopened, ready_for_review, edited) -> the intent review
  as a check run and one comment (`_review`; a fork gets the job summary and annotations only);
* `push` to the default branch, and `schedule` -> one reconcile pass of the default branch (due
  schedule slots included) with the GitHub forge: executions, traces committed to the traces
  branch, a check run per execution;
* `workflow_dispatch` -> one request (`intent`, `reason`, `inputs` as `K=V` lines), run by the
  same pass as if it were a merged Request document pinned to the current artifact;
* anything else -> a message saying why nothing is done, and success.

It writes `$GITHUB_STEP_SUMMARY`, `$GITHUB_OUTPUT` (`verdict`, `executions-started`,
`trace-paths`) and workflow annotations.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from controllers import _remote_outbox as remote_outbox
from controllers.action._env import Job, add_summary, mask, set_outputs
from controllers.action._review import review_pull_request
from controllers.forge import CheckRun, Forge, ForgeError, Identity
from foundry.errors import UserError

if TYPE_CHECKING:
    from controllers.reconcile import PassReport
    from foundry.progress import Progress

REVIEWED_ACTIONS = ("opened", "synchronize", "reopened", "ready_for_review", "edited")
MODES = ("auto", "review", "reconcile")


@dataclass
class ActionResult:
    """What `foundry action` did, and how it exits."""

    exit_code: int
    did: str
    outputs: dict[str, str] = field(default_factory=dict)


def _forge_factory(job: Job, token: str | None) -> Callable[[], Forge]:
    def make() -> Forge:
        from controllers.github import Credentials, connect

        env = dict(job.env)
        if token:
            env["GITHUB_TOKEN"] = token
        pointer = f"The whole trace is on the traces branch; this run: {job.run_url()}"
        return connect(
            job.repository,
            api_url=job.api_url,
            credentials=Credentials.from_env(env),
            pointer=pointer,
        )

    return make


def _origin(workspace: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(workspace), "remote", "get-url", "origin"],
        capture_output=True,
        text=True,
        check=False,
    )
    url = done.stdout.strip()
    if done.returncode or not url:
        raise UserError(
            f"{workspace}: no `origin` remote; check the repository out first "
            "(`- uses: actions/checkout@v4`)"
        )
    return url


def git_credentials(job: Job, remote: str, token: str | None, out: TextIO) -> None:
    """Let git push to an https remote with the job's token, through the environment (never on
    a command line or in a URL, where a log could show it)."""
    if not token or not remote.startswith(("https://", "http://")):
        return
    server = re.match(r"^(https?://[^/]+)/", remote)
    if server is None:
        return
    header = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    mask(out, header)
    index = int(os.environ.get("GIT_CONFIG_COUNT", "0"))
    os.environ[f"GIT_CONFIG_KEY_{index}"] = f"http.{server.group(1)}/.extraheader"
    os.environ[f"GIT_CONFIG_VALUE_{index}"] = f"AUTHORIZATION: basic {header}"
    os.environ["GIT_CONFIG_COUNT"] = str(index + 1)


def _inputs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in re.split(r"[\n,]", text):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise UserError(f"workflow_dispatch input `inputs`: {line!r}: write it as NAME=VALUE")
        out[key.strip()] = value.strip()
    return out


def _reconcile(job: Job, token: str | None, state: Path, out: TextIO) -> ActionResult:
    from controllers.reconcile import Dispatch, Reconciler, Settings

    dispatch = None
    if job.event_name == "workflow_dispatch":
        given = job.payload.get("inputs") or {}
        intent = str(given.get("intent") or "").strip()
        if not intent:
            raise UserError(
                "workflow_dispatch: the workflow must have an `intent` input naming the intent "
                "to run (see the example workflow in the README)"
            )
        sender = (job.payload.get("sender") or {}).get("login") or "unknown"
        dispatch = Dispatch(
            name=f"dispatch-{job.run_id}",
            intent=intent,
            requested_by=str(sender),
            reason=str(given.get("reason") or f"workflow_dispatch by {sender}"),
            inputs=_inputs(str(given.get("inputs") or "")),
        )
    remote = _origin(job.workspace)
    git_credentials(job, remote, token, out)
    from foundry.sandbox import sandbox_named

    settings = Settings(
        repo=remote,
        branch=job.default_branch,
        state_dir=state / "reconcile",
        dispatch=dispatch,
        # As on any host: bwrap where the runner has it (FOUNDRY_SANDBOX chooses otherwise).
        sandbox=sandbox_named(os.environ.get("FOUNDRY_SANDBOX") or "auto"),
    )

    def progress(event: Progress) -> None:
        """Each execution and block in the job's log as it starts and ends, and what waits."""
        from controllers._progress_log import progress_text

        out.write(progress_text(event, branch=job.default_branch) + "\n")
        out.flush()

    reconciler = Reconciler(
        settings, forge=_LazyForge(_forge_factory(job, token)), progress=progress
    )
    try:
        # The job keeps nothing: what an earlier job (or any host) could not publish waits on
        # the remote, and every pass takes it in and shares what it could not deliver itself.
        report = reconciler.pass_once()
        if report.outbox:  # one more try within the job (a pass delivers its outbox first)
            retry = reconciler.pass_once()
            report.delivered += retry.delivered
            report.outbox = retry.outbox
            report.errors += retry.errors
    finally:
        reconciler.close()
    if report.outbox:
        out.write(
            f"::error::{report.outbox} publication(s) could not be delivered; they are kept "
            f"on {remote_outbox.REF} and delivered by the next run\n"
        )
    for line, problem in report.lines():
        out.write(("::warning::" if problem else "") + line + "\n")
    started = report.started + report.resumed
    lines = [f"### Foundry: {job.event_name} on {job.default_branch}", ""]
    if report.finished:
        lines += ["| execution | intent | event | status |", "| --- | --- | --- | --- |"]
        lines += [
            f"| `{e}` | {_named(report, e)} | {s} |" for e, s in sorted(report.finished.items())
        ]
    else:
        lines.append("Nothing to run.")
    # What an operator's pause holds, and what a cancel or a newer artifact ended, with why.
    lines += [f"- `{e}` held: {why}" for e, why in sorted(report.held.items())]
    lines += [f"- `{e}` ended: {why}" for e, why in sorted(report.ended.items())]
    lines += [f"- {line}" for line, _ in report.lines() if not line.startswith("exe-")]
    add_summary(job, "\n".join(lines))
    failed = {"failed", "indeterminate"} & set(report.finished.values())
    code = 1 if report.errors or report.refused or report.outbox or failed else 0
    return ActionResult(
        code,
        "reconcile",
        {
            "executions-started": "\n".join(started),
            "trace-paths": "\n".join(report.traces),
        },
    )


def _named(report: PassReport, execution: str) -> str:
    """The intent and event cells of an execution's row in the job summary."""
    from foundry.progress import short_key

    name = report.names.get(execution)
    if name is None:
        return "? | ?"
    return f"{name['intent']} | {name['eventType']} `{short_key(name['eventKey'])}`"


class _LazyForge:
    """The GitHub forge, connected on first use: a pass with nothing to publish needs no API."""

    def __init__(self, make: Callable[[], Forge]) -> None:
        self._make = make
        self._forge: Forge | None = None

    def _get(self) -> Forge:
        if self._forge is None:
            self._forge = self._make()
        return self._forge

    def publish_check(self, run: CheckRun) -> bool:
        return self._get().publish_check(run)

    def checks(self, commit: str | None = None) -> list[CheckRun]:
        return self._get().checks(commit)

    def comment(self, key: str, body: str, *, pull: int | None = None) -> bool:
        return self._get().comment(key, body, pull=pull)

    def check_state(
        self, commit: str, name: str
    ) -> Literal["success", "failure", "pending"] | None:
        return self._get().check_state(commit, name)

    def identity(self, commit: str) -> Identity | None:
        return self._get().identity(commit)

    def is_member(self, user: str, team: str) -> bool:
        return self._get().is_member(user, team)


def run_action(
    job: Job,
    out: TextIO,
    *,
    mode: str = "auto",
    token: str | None = None,
    state: Path | None = None,
    forge: Callable[[], Forge] | None = None,
) -> ActionResult:
    """Do what the job's event asks for; never anything from a pull request's code."""
    if mode not in MODES:
        raise UserError(f"mode {mode!r}: use one of {', '.join(MODES)}")
    state = state or Path(job.env.get("RUNNER_TEMP") or "/tmp") / "foundry-action"  # noqa: S108
    event = job.event_name
    action = str(job.payload.get("action") or "")
    if mode == "review" or (mode == "auto" and event == "pull_request"):
        if event != "pull_request" and "pull_request" not in job.payload:
            raise UserError(f"mode review needs a pull_request event, not {event}")
        if mode == "auto" and action not in REVIEWED_ACTIONS:
            out.write(
                f"pull_request {action}: nothing to review (only {', '.join(REVIEWED_ACTIONS)})\n"
            )
            return ActionResult(0, "nothing")
        review = review_pull_request(job, forge or _forge_factory(job, token), out)
        for problem in review.problems:
            out.write(f"::error::{problem}\n")
        outputs = {"verdict": review.verdict, "executions-started": "", "trace-paths": ""}
        return ActionResult(1 if review.blocking or review.problems else 0, "review", outputs)
    if mode == "reconcile" or event in ("schedule", "workflow_dispatch"):
        return _reconcile(job, token, state, out)
    if event == "push":
        ref = job.payload.get("ref") or job.ref
        if ref != f"refs/heads/{job.default_branch}":
            out.write(f"push to {ref}: only pushes to {job.default_branch} are reconciled\n")
            return ActionResult(0, "nothing")
        return _reconcile(job, token, state, out)
    out.write(
        f"event {event!r}: nothing to do (foundry action handles pull_request, push, schedule "
        "and workflow_dispatch)\n"
    )
    return ActionResult(0, "nothing")


def main(out: TextIO, *, mode: str, token: str | None, state: Path | None) -> int:
    """The command's work: run, write the outputs, return the exit code."""
    job = Job.from_env()
    result = run_action(job, out, mode=mode, token=token, state=state)
    set_outputs(job, {"did": result.did, **result.outputs})
    return result.exit_code


__all__ = ["ActionResult", "ForgeError", "Job", "main", "run_action"]
