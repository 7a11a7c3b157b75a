"""`pull_request` in the Action: the pull request's intent reviewed as data, reported as a check
run and one comment kept up to date (DESIGN section 7).

The review is Alloy's (`alloy review --format check-run`, the body of GitHub's check-run API)
run as a process: Foundry and Alloy meet only at file formats, and the review reads both
revisions from git as data — nothing of the pull request is checked out for it or run. A pull
request from a fork gets the job summary and annotations only: its token cannot write to the
repository, and nothing is tried.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from controllers.action._env import Job, add_summary, annotate
from controllers.forge import CheckRun, Forge, ForgeError
from foundry.errors import UserError

CHECK_NAME = "alloy review"
COMMENT_KEY = "alloy-review"
_VERDICT = {"success": "pass", "neutral": "attention", "failure": "blocking"}


@dataclass
class ReviewOutcome:
    """What the review step did."""

    verdict: str
    blocking: bool
    published: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )


def ensure_commits(root: Path, shas: list[str]) -> None:
    """Fetch the commits a shallow checkout lacks (GitHub serves commits by id)."""
    missing = [s for s in shas if _git(root, "cat-file", "-e", f"{s}^{{commit}}").returncode]
    if not missing:
        return
    fetched = _git(root, "fetch", "--no-tags", "--quiet", "origin", *missing)
    still = [s for s in missing if _git(root, "cat-file", "-e", f"{s}^{{commit}}").returncode]
    if still:
        detail = fetched.stderr.strip().splitlines()[-1:] or [""]
        raise UserError(
            f"commits {', '.join(s[:12] for s in still)} are not in {root} and could not be "
            f"fetched ({detail[0]}); check out with `fetch-depth: 0`"
        )


def run_review(root: Path, base: str, head: str) -> tuple[dict[str, Any], bool]:
    """Alloy's review of `head` against `base`: the check-run body, and whether it blocks."""
    done = subprocess.run(
        [
            # -P: the workspace (a pull request's checkout) is the working directory; a package
            # named `alloy` in it must never be what runs.
            sys.executable, "-P", "-m", "alloy", "-C", str(root), "review",
            "--base", base, "--head", head, "--format", "check-run", "--no-cache",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise UserError(
            f"alloy review exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
        )
    try:
        body: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise UserError(f"alloy review wrote no check run: {done.stdout[:200]}") from None
    return body, done.returncode == 1


def review_pull_request(job: Job, forge: Callable[[], Forge], out: TextIO) -> ReviewOutcome:
    pull = job.payload.get("pull_request") or {}
    try:
        base, head, number = pull["base"]["sha"], pull["head"]["sha"], int(pull["number"])
    except (KeyError, TypeError, ValueError):
        raise UserError("the pull_request event has no base and head commits") from None
    head_repo = (pull.get("head") or {}).get("repo") or {}
    fork = head_repo.get("full_name") != job.repository
    ensure_commits(job.workspace, [base, head])
    body, blocking = run_review(job.workspace, base, head)
    output = body.get("output") or {}
    summary = str(output.get("summary", ""))
    annotations = list(output.get("annotations") or [])
    outcome = ReviewOutcome(_VERDICT.get(str(body.get("conclusion")), "attention"), blocking)
    add_summary(job, summary)
    annotate(out, annotations)
    if fork:
        out.write(
            f"pull request #{number} comes from a fork ({head_repo.get('full_name') or 'deleted'}):"
            " the review is in the job summary and annotations; nothing is written to the "
            "repository\n"
        )
        return outcome
    run = CheckRun(
        commit=head,
        name=CHECK_NAME,
        status="completed",
        conclusion=body.get("conclusion") or "neutral",
        title=str(output.get("title", "")),
        summary=summary,
        details_url=job.run_url(),
        external_id=f"review:{base}..{head}",
        annotations=tuple(annotations),
    )
    try:
        target = forge()
        if target.publish_check(run):
            outcome.published.append("check run")
        if target.comment(COMMENT_KEY, summary, pull=number):
            outcome.published.append("comment")
    except ForgeError as exc:
        outcome.problems.append(f"could not publish the review: {exc}")
    return outcome
