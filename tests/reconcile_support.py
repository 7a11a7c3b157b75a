"""Real git remotes for reconcile tests: an engineer's clone, a bare remote reached as
`file://` or over `git daemon` on 127.0.0.1, and runner hosts' state directories.

Blocks append a line to a marker file outside every worktree (its absolute path reaches them
through the block's `env`), so the tests count how often each block really ran. The fixtures
`world` and `daemon_world` are registered for every test module (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from controllers.reconcile import Reconciler, Settings
from tests.conftest import GitRepo, Result, git, run_cli

#: A deadline for everything that is polled (processes, files, refs).
DEADLINE = 60.0

EVIDENCE = """\
  acceptance:
    - id: AC-1
      statement: The block writes out.txt.
      evidence: {block: work, output: out.txt}
"""


def _yaml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML flow string


def intent(
    name: str,
    mark: Path,
    *,
    on: str = "{apply: true}",
    script: str = "",
    effects: str = "idempotent",
    gates: str = "",
    inputs: str = "",
    timeout: str = "1m",
) -> str:
    """An intent whose one block `work` appends `<execution> <attempt> <inputs>` to `mark` and
    writes out.txt (the evidence of AC-1); `script` runs before that (a shell fragment)."""
    body = (
        f"{script}\n"
        'echo "$ALLOY_EXECUTION $ALLOY_ATTEMPT ${ALLOY_INPUT_WHO:-}" >> "$MARK"\n'
        "echo done > out.txt\n"
    )
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        f"  name: {name}\n"
        "  owners: [alice]\n"
        "spec:\n"
        "  state: active\n"
        "  goal: The block runs when it should, exactly once.\n"
        f"{EVIDENCE}"
        "  automation:\n"
        f"    on: {on}\n"
        f"{inputs}"
        "    blocks:\n"
        "      - id: work\n"
        f"        run: [sh, -c, {_yaml_str(body)}]\n"
        f"        env: {{MARK: {_yaml_str(str(mark))}}}\n"
        f"        effects: {effects}\n"
        f"        timeout: {timeout}\n"
        "        outputs: [out.txt]\n"
        f"{gates}"
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for(what: str, check: Callable[[], Any], *, deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Run:
    """One finished `foundry reconcile --once --json`."""

    result: Result
    report: dict[str, Any]

    @property
    def code(self) -> int:
        return self.result.code


@dataclass
class World:
    """An engineer's clone (`work`), the bare remote it pushes to, and runner hosts' state."""

    work: GitRepo
    bare: Path
    url: str
    tmp: Path
    marks: Path
    env: dict[str, str] = field(default_factory=dict)

    # -- the engineer's side ----------------------------------------------------------------

    def mark(self, name: str) -> Path:
        return self.marks / name

    def add_intent(self, name: str, **kwargs: Any) -> Path:
        mark = self.mark(name)
        self.work.write({f".alloy/intents/{name}.yaml": intent(name, mark, **kwargs)})
        return mark

    def alloy(self, *args: str) -> Result:
        result = run_cli("alloy", *args, cwd=self.work.path, env=self.env)
        assert result.code == 0, result.err + result.out
        return result

    def approve(self, execution: str, approver: str, *extra: str, gate: str = "work") -> None:
        """`alloy approve` of `execution`'s gate on block `gate`, as `approver` (not merged)."""
        args = ["--approver", approver, "--comment", "ok", *extra]
        self.alloy("approve", execution, "--gate", gate, *args)

    def merge(self, message: str = "change", *, compile_: bool = True) -> str:
        """Compile, commit and push to the remote's main (what merging a pull request does)."""
        if compile_:
            self.alloy("compile")
        sha = self.work.commit(message)
        git(self.work.path, "push", "-q", "origin", "HEAD:main")
        return sha

    def digest(self, name: str) -> str:
        data = json.loads((self.work.path / f".alloy/artifacts/{name}.json").read_text())
        return str(data["digest"])

    # -- the runner's side ------------------------------------------------------------------

    def state(self, host: str = "a") -> Path:
        return self.tmp / "hosts" / host

    def command(self, *extra: str, host: str = "a") -> list[str]:
        return [
            sys.executable,
            "-m",
            "foundry",
            "reconcile",
            "--repo",
            self.url,
            "--once",
            "--json",
            "--state",
            str(self.state(host)),
            *extra,
        ]

    def reconcile(self, *extra: str, host: str = "a") -> Run:
        proc = subprocess.run(
            self.command(*extra, host=host),
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=120,
            check=False,
        )
        return Run(Result(proc.returncode, proc.stdout, proc.stderr), _report(proc.stdout))

    def reconciler(self, host: str = "a", **kwargs: Any) -> Reconciler:
        settings = Settings(
            repo=self.url, state_dir=self.state(host), lease=kwargs.pop("lease", 60)
        )
        return Reconciler(settings, **kwargs)

    # -- what the remote holds --------------------------------------------------------------

    def remote(self, *args: str) -> str:
        return git(self.bare, *args)

    def ref(self, ref: str) -> str | None:
        out = subprocess.run(
            ["git", "rev-parse", "-q", "--verify", f"{ref}^{{commit}}"],
            cwd=self.bare,
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() or None

    def refs(self, prefix: str) -> dict[str, str]:
        out = self.remote("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        return dict(line.split(" ") for line in out.splitlines())

    def traces(self) -> dict[str, str]:
        """Execution id -> path of its Trace JSON on the remote's traces branch."""
        if self.ref("refs/heads/alloy/traces") is None:
            return {}
        out = self.remote("ls-tree", "-r", "--name-only", "alloy/traces", "traces/")
        return {
            p.rsplit("/", 1)[1].removesuffix(".json"): p
            for p in out.splitlines()
            if p.endswith(".json")
        }

    def trace(self, execution: str) -> dict[str, Any]:
        path = self.traces()[execution]
        spec: dict[str, Any] = json.loads(self.remote("show", f"alloy/traces:{path}"))["spec"]
        return spec

    def claim(self, execution: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            self.remote("show", f"refs/alloy/claims/{execution}:claim.json")
        )
        return data

    def snapshot(self) -> dict[str, str]:
        """Every ref of the remote: what "commits nothing" is checked against."""
        return self.refs("refs/")


def _report(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            data: dict[str, Any] = json.loads(line)
            return data
    return {}


def make_world(repo: GitRepo, tmp_path: Path, *, url: str | None = None) -> World:
    bare = tmp_path / "srv" / "remote.git"
    bare.parent.mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(repo.path), str(bare))
    git(repo.path, "remote", "add", "origin", str(bare))
    marks = tmp_path / "marks"
    marks.mkdir()
    return World(repo, bare, url or bare.as_uri(), tmp_path, marks)


@pytest.fixture
def world(repo: GitRepo, tmp_path: Path) -> World:
    return make_world(repo, tmp_path)


def only_execution(run: Run) -> str:
    started = run.report["started"]
    assert len(started) == 1, run.report
    return str(started[0])


def assert_nothing_new(world: World, run: Run, before: dict[str, str]) -> None:
    assert run.code == 0, run.result.err
    assert (run.report["started"], run.report["resumed"]) == ([], []), run.report
    assert (run.report["committed"], run.report["published"]) == (None, 0), run.report
    assert world.snapshot() == before


@pytest.fixture
def daemon_world(repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file:git")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = tmp_path / "srv"
    world = make_world(repo, tmp_path, url=f"git://127.0.0.1:{port}/remote.git")
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            f"--base-path={base}",
            "--export-all",
            "--enable=receive-pack",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def up() -> bool:
            probe = subprocess.run(
                ["git", "ls-remote", world.url], capture_output=True, check=False
            )
            return probe.returncode == 0

        wait_for("git daemon to answer", up, deadline=20)
        git(repo.path, "remote", "set-url", "origin", world.url)
        yield world
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_host(
    world: World, host: str, *extra: str, crash: str | None = None
) -> tuple[int, dict[str, Any]]:
    """`foundry reconcile --once --json` as host `host`, optionally dying at a crash point
    (`FOUNDRY_CRASH_AT`); its exit code and JSON report."""
    env = {**os.environ, **world.env}
    env.pop("FOUNDRY_CRASH_AT", None)
    if crash is not None:
        env["FOUNDRY_CRASH_AT"] = crash
    proc = subprocess.run(
        world.command(*extra, host=host),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return proc.returncode, _report(proc.stdout)


def lane_intent(name: str, body: str) -> str:
    """An intent whose one idempotent block runs `body` (shell) in the lane `deploy`, limit 1."""
    return (
        "apiVersion: alloy.dev/v1\nkind: Intent\nmetadata:\n"
        f"  name: {name}\n  owners: [alice]\nspec:\n  state: active\n"
        "  goal: Deploys one at a time.\n  automation:\n    on: {apply: true}\n"
        "    lane: {name: deploy, limit: 1, queue: fifo}\n"
        "    blocks:\n      - id: work\n"
        f"        run: [sh, -c, {json.dumps(body)}]\n"
        "        effects: idempotent\n        timeout: 1m\n"
    )
