"""`foundry daemon` reporting to GitHub (`github:` in its config): a runner host polls a
repository and publishes each execution's check run on GitHub — the fake behind Prism. A check
run GitHub refuses waits in the daemon's outbox and is delivered by a later pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import GitRepo, git
from tests.github_prism import GitHubRig
from tests.test_daemon import DaemonProcess, publish, trace_status, traces, until


def test_the_daemon_publishes_check_runs_to_github_and_retries_what_it_refused(
    repo: GitRepo,
    tmp_path: Path,
    github: GitHubRig,
    daemons: list[DaemonProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote = publish(repo, tmp_path)
    merged = git(remote, "rev-parse", "main").strip()
    github.fake.fail_next("POST", r"/check-runs$", 503, times=1)
    monkeypatch.setenv("GITHUB_TOKEN", github.token)
    config = {
        "state": str(tmp_path / "state"),
        "repositories": [
            {
                "repo": str(remote),
                "interval": "0.5s",
                "github": github.repo,
                "githubApi": github.api_url,
            }
        ],
    }
    daemon = DaemonProcess(tmp_path, config)
    daemons.append(daemon.start())
    until(lambda: len(traces(remote)) == 1, "the execution's trace", log=daemon.log)
    [trace] = traces(remote)
    assert trace_status(remote, trace) == "succeeded"
    runs = until(github.fake.check_runs, "the check run on GitHub", log=daemon.log)
    assert [(r.name.split(" (")[0], r.conclusion) for r in runs] == [("foundry: app", "success")]
    assert runs[0].head_sha == merged, "on the commit the artifact came from"
    assert len(github.fake.requests_to("POST", r"/check-runs$")) == 2, "refused once, then sent"
    until(lambda: daemon.repository()["outbox"] == 0, "the outbox to drain", log=daemon.log)
    daemon.signal()
    assert daemon.wait() == 0
    assert len(github.fake.check_runs()) == 1
