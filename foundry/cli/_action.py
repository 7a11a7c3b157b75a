"""`foundry action`: the GitHub Action's entry point (the work is in `controllers.action`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.option(
    "--mode",
    type=click.Choice(["auto", "review", "reconcile"]),
    default="auto",
    show_default=True,
    envvar="ALLOY_MODE",
    help="auto: by the event; review: the pull request; reconcile: the default branch.",
)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State directory (default: $RUNNER_TEMP/foundry-action).",
)
def action(mode: str, state_dir: Path | None) -> None:
    """Run inside a GitHub Actions job: review a pull request, reconcile a push to the default
    branch or a schedule, run a workflow_dispatch request; anything else is a no-op.

    Reads GITHUB_EVENT_NAME, GITHUB_EVENT_PATH and the job's other variables; the token comes
    from GITHUB_TOKEN (or a GitHub App: ALLOY_GITHUB_APP_ID, ALLOY_GITHUB_APP_KEY). Writes
    $GITHUB_STEP_SUMMARY, $GITHUB_OUTPUT and annotations.
    """
    import os

    from controllers.action import main

    code = main(sys.stdout, mode=mode, token=os.environ.get("GITHUB_TOKEN"), state=state_dir)
    if code:
        raise click.exceptions.Exit(code)
