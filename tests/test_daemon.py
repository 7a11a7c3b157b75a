"""`foundry daemon`: real git remotes, the real command as a process, real HTTP.

Nothing here asserts a duration: every wait is a deadline on a condition that is polled.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from controllers.daemon import ConfigError, parse_config, parse_duration
from tests.conftest import GitRepo, Result, git, intent_yaml, run_cli

DEADLINE = 30.0
QUICK_BLOCK = (
    "      - id: build\n        run: [sh, -c, 'echo built > out.txt']\n        effects: none\n"
)


def ok(result: Result, code: int = 0) -> Result:
    assert result.code == code, f"exit {result.code}\nstdout:\n{result.out}\nstderr:\n{result.err}"
    return result


def until(check: Callable[[], Any], what: str, *, log: Callable[[], str] = lambda: "") -> Any:
    """Poll `check` until it returns something truthy; fail after DEADLINE seconds."""
    end = time.monotonic() + DEADLINE
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}\n--- daemon log ---\n{log()}")
        time.sleep(0.05)


# -- repositories ---------------------------------------------------------------------------------


def publish(repo: GitRepo, tmp_path: Path, blocks: str = QUICK_BLOCK) -> Path:
    """The test repository with one compiled intent, and a bare clone of it: the remote."""
    repo.write({".alloy/intents/app.yaml": intent_yaml("app", blocks=blocks, on="{apply: true}")})
    ok(run_cli("alloy", "compile", cwd=repo.path))
    repo.commit("intent: app")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo.path), str(remote))
    git(repo.path, "remote", "add", "origin", str(remote))
    return remote


def merge_change(repo: GitRepo, goal: str) -> None:
    """A new version of the intent's artifact, pushed to the remote's default branch."""
    path = repo.path / ".alloy/intents/app.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  goal: ", f"  goal: {goal} ", 1), encoding="utf-8")
    ok(run_cli("alloy", "compile", cwd=repo.path))
    repo.commit(f"change: {goal}")
    git(repo.path, "push", "-q", "origin", "HEAD:main")


def traces(remote: Path) -> list[str]:
    """Trace documents on the remote's traces branch."""
    proc = subprocess.run(
        ["git", "-C", str(remote), "ls-tree", "-r", "--name-only", "alloy/traces"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [p for p in proc.stdout.split() if p.endswith(".json")] if proc.returncode == 0 else []


def trace_status(remote: Path, path: str) -> str:
    body = git(remote, "show", f"alloy/traces:{path}")
    return str(json.loads(body)["spec"]["status"])


# -- the daemon as a process ----------------------------------------------------------------------


class DaemonProcess:
    """`foundry daemon --config` as a real process, its port found through `portFile`."""

    def __init__(self, tmp_path: Path, config: dict[str, Any]) -> None:
        self.dir = tmp_path
        self.config = tmp_path / "daemon.yaml"
        self.port_file = tmp_path / "daemon.port"
        self.log_file = tmp_path / "daemon.log"
        self.config.write_text(
            yaml.safe_dump(
                {"listen": "127.0.0.1:0", "portFile": str(self.port_file), **config},
                sort_keys=False,
            ),
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> DaemonProcess:
        self.port_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "foundry", "daemon", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
            )
        proc = self.proc

        def port() -> int | None:
            if proc.poll() is not None:
                pytest.fail(f"the daemon exited with {proc.returncode}\n{self.log()}")
            try:
                return int(self.port_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None

        self.port = until(port, "the daemon's port file", log=self.log)
        return self

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def health(self) -> dict[str, Any]:
        code, body = self.get("/healthz")
        assert code == 200, body
        return dict(json.loads(body))

    def repository(self) -> dict[str, Any]:
        return dict(self.health()["repositories"][0])

    def idle_after(self, passes: int) -> dict[str, Any] | None:
        """The repository's health once it has done `passes` passes and is not in one."""
        repo = self.repository()
        return repo if repo["passes"] >= passes and not repo["running"] else None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the daemon did not exit\n{self.log()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def metric_samples(text: str) -> dict[str, list[Any]]:
    """Samples by family name, parsed with prometheus_client's own text parser."""
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


# -- file events, health and metrics ------------------------------------------------------------


def test_a_push_is_reconciled_at_once_through_file_events_and_metrics_parse(
    repo: GitRepo, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    remote = publish(repo, tmp_path)
    d = DaemonProcess(
        tmp_path,
        {
            "state": str(tmp_path / "state"),
            "repositories": [{"repo": str(remote), "interval": 3600}],
        },
    )
    daemons.append(d.start())
    # The first pass (soon after start) runs the first version of the artifact.
    until(lambda: len(traces(remote)) == 1, "the first trace", log=d.log)
    until(lambda: d.idle_after(1), "the first pass to end", log=d.log)
    assert d.repository()["watched"] is True

    merge_change(repo, "Changed.")
    # With a poll interval of an hour, only the file event can start this pass.
    until(lambda: len(traces(remote)) == 2, "the trace of the merged change", log=d.log)
    newest = sorted(set(traces(remote)))
    assert all(trace_status(remote, p) == "succeeded" for p in newest)

    # No busy loop: our own pushes (claims, forge, traces) do not keep the repository due.
    def settled() -> bool:
        before = d.idle_after(2)
        time.sleep(0.5)
        after = d.idle_after(2)
        return before is not None and after is not None and before["passes"] == after["passes"]

    until(settled, "the daemon to settle after its own pushes", log=d.log)

    health = d.health()
    assert health["status"] == "ok"
    entry = health["repositories"][0]
    assert entry["repo"] == str(remote)
    assert entry["errors"] == []
    assert entry["lastPass"] is not None
    assert entry["outbox"] == 0

    code, text = d.get("/metrics")
    assert code == 200
    samples = metric_samples(text)
    passes = {
        (s.labels["trigger"], s.labels["outcome"]): s.value
        for s in samples["foundry_daemon_passes"]
        if s.name == "foundry_daemon_passes_total" and s.labels["repo"] == str(remote)
    }
    assert passes.get(("event", "changed"), 0) >= 1, passes
    assert sum(passes.values()) == d.repository()["passes"]
    finished = {
        s.labels["status"]: s.value
        for s in samples["foundry_daemon_executions_finished"]
        if s.name == "foundry_daemon_executions_finished_total"
    }
    assert finished == {"succeeded": 2.0}
    started = [
        s
        for s in samples["foundry_daemon_executions_started"]
        if s.name == "foundry_daemon_executions_started_total"
    ]
    assert sum(s.value for s in started) == 2
    count = next(
        s
        for s in samples["foundry_daemon_pass_duration_seconds"]
        if s.name == "foundry_daemon_pass_duration_seconds_count"
    )
    assert count.value == sum(passes.values())
    assert samples["foundry_daemon_outbox_pending"][0].value == 0
    assert samples["foundry_daemon_last_pass_timestamp_seconds"][0].value > 0
    assert samples["foundry_daemon_reconciles_in_flight"][0].value == 0
    assert samples["foundry_daemon_file_events"][0].value >= 1
    assert d.get("/nothing-here")[0] == 404

    d.signal(signal.SIGINT)
    assert d.wait() == 0
    assert not d.port_file.exists()


# -- SIGTERM drains ---------------------------------------------------------------------------------


def slow_block(marks: Path, seconds: int) -> str:
    return (
        "      - id: slow\n"
        f"        run: [sh, -c, 'echo run >> {marks}/attempts; sleep {seconds}; "
        f"echo done > {marks}/done']\n"
        "        effects: idempotent\n"
    )


def test_sigterm_lets_a_running_block_finish_within_the_grace_period(
    repo: GitRepo, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    remote = publish(repo, tmp_path, slow_block(marks, 2))
    d = DaemonProcess(
        tmp_path,
        {
            "grace": "30s",
            "state": str(tmp_path / "state"),
            "repositories": [{"repo": str(remote), "interval": "1h"}],
        },
    )
    daemons.append(d.start())
    until((marks / "attempts").exists, "the block to start", log=d.log)
    d.signal(signal.SIGTERM)

    def draining() -> bool:
        code, body = d.get("/healthz")
        return code == 503 and json.loads(body)["status"] == "draining"

    until(draining, "/healthz to say draining", log=d.log)
    assert d.wait() == 0, d.log()
    assert (marks / "done").read_text() == "done\n"
    assert (marks / "attempts").read_text() == "run\n"
    [trace] = traces(remote)
    assert trace_status(remote, trace) == "succeeded"


@pytest.mark.parametrize("resumer", ["another host", "the daemon restarted"])
def test_sigterm_with_no_grace_interrupts_and_reconcile_resumes(
    repo: GitRepo, tmp_path: Path, daemons: list[DaemonProcess], resumer: str
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    remote = publish(repo, tmp_path, slow_block(marks, 3))
    state = tmp_path / "state"
    d = DaemonProcess(
        tmp_path,
        {"grace": 0, "state": str(state), "repositories": [{"repo": str(remote)}]},
    )
    daemons.append(d.start())
    until((marks / "attempts").exists, "the block to start", log=d.log)
    d.signal(signal.SIGTERM)
    assert d.wait() == 0, d.log()
    assert not (marks / "done").exists()
    [trace] = traces(remote)
    assert trace_status(remote, trace) not in ("succeeded", "failed")

    if resumer == "the daemon restarted":
        # Same state directory: the stopped pass did not mark the remote's news as handled, so
        # the restarted daemon plans again and resumes the interrupted execution at once.
        again = DaemonProcess(
            tmp_path,
            {"grace": 30, "state": str(state), "repositories": [{"repo": str(remote)}]},
        )
        daemons.append(again.start())
        until((marks / "done").exists, "the restarted daemon to finish the block", log=again.log)
        until(
            lambda: trace_status(remote, trace) == "succeeded",
            "the trace to say succeeded",
            log=again.log,
        )
        assert (marks / "attempts").read_text() == "run\nrun\n"
        return
    # A later `foundry reconcile` resumes and finishes it: here one with its own state (as on
    # another host), which takes the parked claim and the ledger the daemon published with it.
    resumed = ok(
        run_cli(
            "foundry",
            "reconcile",
            "--repo",
            str(remote),
            "--once",
            "--state",
            str(tmp_path / "other-host"),
            cwd=tmp_path,
        )
    )
    assert "resumed, succeeded" in resumed.out
    assert (marks / "done").read_text() == "done\n"
    assert (marks / "attempts").read_text() == "run\nrun\n"
    assert trace_status(remote, trace) == "succeeded"


# -- the outbox survives a restart -------------------------------------------------------------------

REFUSE_TRACES = """#!/bin/sh
# Refuse pushes to the traces branch while the flag file exists (the remote "is down" for them).
while read old new ref; do
  if [ "$ref" = refs/heads/alloy/traces ] && [ -e "{flag}" ]; then
    echo "traces are refused for now" >&2
    exit 1
  fi
done
exit 0
"""


def test_an_outbox_entry_survives_a_restart_and_is_delivered(
    repo: GitRepo, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    remote = publish(repo, tmp_path)
    flag = tmp_path / "refuse-traces"
    flag.touch()
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(REFUSE_TRACES.format(flag=flag), encoding="utf-8")
    hook.chmod(0o755)
    config = {"state": str(tmp_path / "state"), "repositories": [{"repo": str(remote)}]}

    first = DaemonProcess(tmp_path, config)
    daemons.append(first.start())
    entry = until(
        lambda: (r := first.idle_after(1)) and r["outbox"] >= 1 and r,
        "the trace commit to land in the outbox",
        log=first.log,
    )
    assert any("outbox" in e for e in entry["errors"]), entry
    outbox = Path(entry["state"]) / "outbox"
    assert [p.name for p in outbox.glob("*-traces.json")]
    assert traces(remote) == []
    first.signal()
    assert first.wait() == 0

    flag.unlink()  # the remote takes traces again
    second = DaemonProcess(tmp_path, config)
    daemons.append(second.start())
    until(lambda: len(traces(remote)) == 1, "the outbox to be delivered", log=second.log)
    until(lambda: second.idle_after(1), "the first pass to end", log=second.log)
    assert list(outbox.glob("*.json")) == []
    [trace] = traces(remote)
    assert trace_status(remote, trace) == "succeeded"
    assert second.repository()["outbox"] == 0
    samples = metric_samples(second.get("/metrics")[1])
    delivered = [
        s
        for s in samples["foundry_daemon_outbox_delivered"]
        if s.name == "foundry_daemon_outbox_delivered_total"
    ]
    assert sum(s.value for s in delivered) >= 1
    second.signal()
    assert second.wait() == 0


# -- secrets and config errors -----------------------------------------------------------------------


def test_a_token_in_a_repository_url_is_never_shown(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    token = "s3cr3t-t0ken-value"
    d = DaemonProcess(
        tmp_path,
        {
            "log": "json",
            "state": str(tmp_path / "state"),
            "repositories": [{"repo": f"https://ci:{token}@127.0.0.1:9/app.git"}],
        },
    )
    daemons.append(d.start())
    repo = until(lambda: d.idle_after(1), "the first pass", log=d.log)
    assert repo["lastOutcome"] == "error"
    assert repo["errors"]
    shown = d.get("/healthz")[1] + d.get("/metrics")[1]
    d.signal()
    assert d.wait() == 0
    assert "***" in shown
    assert token not in shown
    assert token not in d.log()
    events = [json.loads(line)["event"] for line in d.log().splitlines()]
    assert events[0] == "start"
    assert "pass" in events
    assert events[-2:] == ["drain", "stop"]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_config_errors_name_the_file_the_line_and_the_fix(tmp_path: Path) -> None:
    config = write(
        tmp_path / "daemon.yaml",
        "listen: 127.0.0.1:0\nrepositories:\n  - repo: /srv/git/app.git\n    intervall: 30\n",
    )
    result = ok(run_cli("foundry", "daemon", "--config", str(config), cwd=tmp_path), 1)
    assert f"{config}:4: unknown key 'intervall' in repositories[0]" in result.err
    assert "did you mean `interval`?" in result.err
    assert "Traceback" not in result.err + result.out

    missing = ok(
        run_cli("foundry", "daemon", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path), 1
    )
    assert "nope.yaml: cannot read the daemon config" in missing.err

    good = write(tmp_path / "good.yaml", "repositories:\n  - repo: remote.git\n    interval: 5m\n")
    checked = ok(run_cli("foundry", "daemon", "--config", str(good), "--check", cwd=tmp_path))
    assert "the config is valid (1 repository)" in checked.out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("concurrency: 2\nconcurency: 3\nrepositories: [x]\n", "<c>:2: unknown key 'concurency'"),
        ("repositories: []\n", "<c>:1: no repositories"),
        ("grace: soon\nrepositories: [x]\n", "<c>:1: grace: 'soon' is not a duration"),
        ("concurrency: 0\nrepositories: [x]\n", "<c>:1: concurrency must be a whole number"),
        ("listen: 0.0.0.0:9464\nrepositories: [x]\n", "<c>:1: listen: 0.0.0.0 is not a loopback"),
        ("repositories:\n  - repo: a\n  - repo: a\n", "<c>:3: repositories[1] is the same remote"),
        ("repositories:\n  - repo: a\n    repo: b\n", "<c>:3: key 'repo' appears twice"),
        (
            "repositories:\n  - repo: https://h/x.git\n    watch: true\n",
            "<c>:3: repositories[0].watch: https://h/x.git is not on this machine",
        ),
        ("log: xml\nrepositories: [x]\n", "<c>:1: log must be `text` or `json`"),
        ("repositories: [x\n", "<c>:2: not valid YAML"),
    ],
)
def test_config_is_checked_strictly(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, source="<c>", base=tmp_path)
    assert expected in str(raised.value)


def test_config_defaults_and_durations(tmp_path: Path) -> None:
    config = parse_config(
        "state: st\nrepositories:\n  - repo: r.git\n  - repo: file:///srv/x.git\n    lease: 2m\n"
        "  - repo: https://example.com/x.git\n    branch: trunk\n    interval: 1h30m\n",
        base=tmp_path,
    )
    assert (config.host, config.port, config.concurrency, config.grace) == (
        "127.0.0.1",
        9464,
        2,
        30,
    )
    assert config.state == tmp_path / "st"
    local, url_file, remote = config.repositories
    assert (local.repo, local.interval, local.lease, local.watch) == (
        str(tmp_path / "r.git"),
        60.0,
        60.0,
        True,
    )
    assert (url_file.lease, url_file.watch) == (120.0, True)
    assert (remote.branch, remote.interval, remote.watch) == ("trunk", 5400.0, False)
    assert parse_duration("250ms") == 0.25
    assert parse_duration(7) == 7.0
    assert parse_duration("7") == 7.0
    assert parse_duration("5 minutes") is None
    assert parse_duration(value=True) is None
