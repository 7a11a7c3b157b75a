"""What a GitHub Actions job tells a step: the standard variables, the event payload, and the
files a step writes back (`$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY`) and its annotations."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from foundry.errors import UserError


@dataclass
class Job:
    """One step's view of the job it runs in."""

    event_name: str
    payload: dict[str, Any]
    repository: str
    workspace: Path
    api_url: str
    server_url: str
    sha: str
    ref: str
    run_id: str
    output_file: Path | None
    summary_file: Path | None
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Job:
        env = dict(os.environ if env is None else env)
        name = env.get("GITHUB_EVENT_NAME")
        if not name:
            raise UserError(
                "GITHUB_EVENT_NAME is not set: `foundry action` runs inside a GitHub Actions job "
                "(use `alloy review` or `foundry reconcile` elsewhere)"
            )
        path = env.get("GITHUB_EVENT_PATH")
        payload: dict[str, Any] = {}
        if path:
            try:
                loaded = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise UserError(f"GITHUB_EVENT_PATH={path}: cannot read the event: {exc}") from None
            if not isinstance(loaded, dict):
                raise UserError(f"GITHUB_EVENT_PATH={path}: the event is not a JSON object")
            payload = loaded
        repo = env.get("GITHUB_REPOSITORY") or (payload.get("repository") or {}).get(
            "full_name", ""
        )
        if not repo:
            raise UserError("GITHUB_REPOSITORY is not set and the event names no repository")
        return cls(
            event_name=name,
            payload=payload,
            repository=repo,
            workspace=Path(env.get("ALLOY_WORKSPACE") or env.get("GITHUB_WORKSPACE") or "."),
            api_url=env.get("GITHUB_API_URL") or "https://api.github.com",
            server_url=env.get("GITHUB_SERVER_URL") or "https://github.com",
            sha=env.get("GITHUB_SHA", ""),
            ref=env.get("GITHUB_REF", ""),
            run_id=env.get("GITHUB_RUN_ID", "0"),
            output_file=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
            summary_file=Path(env["GITHUB_STEP_SUMMARY"])
            if env.get("GITHUB_STEP_SUMMARY")
            else None,
            env=env,
        )

    @property
    def default_branch(self) -> str:
        repo = self.payload.get("repository") or {}
        return str(repo.get("default_branch") or repo.get("master_branch") or "main")

    def run_url(self) -> str:
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"


def set_outputs(job: Job, values: Mapping[str, str]) -> None:
    """Step outputs, in `$GITHUB_OUTPUT`'s multi-line form (a random delimiter per value)."""
    if job.output_file is None:
        return
    with job.output_file.open("a", encoding="utf-8") as handle:
        for name, value in values.items():
            delimiter = f"ghadelimiter_{secrets.token_hex(8)}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def add_summary(job: Job, markdown: str) -> None:
    """Append to the job summary (`$GITHUB_STEP_SUMMARY`)."""
    if job.summary_file is None:
        return
    with job.summary_file.open("a", encoding="utf-8") as handle:
        handle.write(markdown if markdown.endswith("\n") else markdown + "\n")


_LEVEL = {"failure": "error", "warning": "warning", "notice": "notice"}


# The workflow-command escapes, as Alloy's review renderer has them: controllers may not import
# Alloy (`foundry action` would then depend on it), so the two short rules stand here too.
def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def annotate(out: TextIO, annotations: list[dict[str, Any]]) -> None:
    """Workflow commands (`::error file=…,line=…,title=…::message`) for check-run annotations."""
    for note in annotations:
        level = _LEVEL.get(str(note.get("annotation_level")), "warning")
        props = f"file={_escape_property(str(note['path']))},line={note.get('start_line', 1)}"
        if note.get("title"):
            props += f",title={_escape_property(str(note['title']))}"
        out.write(f"::{level} {props}::{_escape_data(str(note.get('message', '')))}\n")


def mask(out: TextIO, value: str) -> None:
    """Ask the runner to mask a secret in every later log line."""
    if value and not re.fullmatch(r"\s*", value):
        out.write(f"::add-mask::{_escape_data(value)}\n")
