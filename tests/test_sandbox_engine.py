"""Blocks under the sandbox end to end: an intent's `network: false` and `limits`, checked and
compiled by `alloy`, run by `foundry run --sandbox bwrap` on a real git repository; the project
policy that requires them; a sandbox that cannot run here fails the execution with the reason
and runs nothing; a pull request cannot loosen the policy unseen (tests/test_sandbox.py holds
the sandbox itself)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT, GitRepo, git, intent_yaml
from tests.sandbox_support import SYSTEM_PY, processes_in

PY = sys.executable

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (scripts/test installs it)"
)


def cli(
    tool: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", tool, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
        check=False,
    )


def compiled(repo: GitRepo, name: str, blocks: str, project: str = PROJECT) -> dict[str, Any]:
    repo.write(
        {
            ".alloy/alloy.yaml": project,
            f".alloy/intents/{name}.yaml": intent_yaml(name, blocks=blocks),
        }
    )
    done = cli("alloy", "compile", cwd=repo.path)
    assert done.returncode == 0, done.stdout + done.stderr
    repo.commit(f"add {name}")
    data: dict[str, Any] = json.loads((repo.path / f".alloy/artifacts/{name}.json").read_text())
    return data


def run(
    repo: GitRepo, name: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return cli(
        "foundry",
        "run",
        ".",
        "--artifact",
        name,
        "--state",
        str(repo.path.parent / "state"),
        "--sandbox",
        "bwrap",
        *extra,
        cwd=repo.path,
        env=env,
    )


def trace_of(repo: GitRepo, execution: str, state: Path | None = None) -> dict[str, Any]:
    out = cli(
        "foundry",
        "traces",
        "export",
        execution,
        "--format",
        "json",
        "--state",
        str(state or repo.path.parent / "state"),
        cwd=repo.path,
    )
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_network_false_is_compiled_and_keeps_a_block_off_the_network(repo: GitRepo) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted: list[bool] = []

    def serve() -> None:
        server.settimeout(60)
        try:
            conn, _ = server.accept()
            accepted.append(True)
            conn.close()
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    probe = (
        f"import socket; socket.create_connection(('127.0.0.1', {port}), 5); open('reached', 'w')"
    )
    blocks = (
        f'      - id: fetch\n        run: [{SYSTEM_PY}, -c, "{probe}"]\n        effects: none\n'
    )
    artifact = compiled(repo, "offline", blocks + "        network: false\n")
    [block] = artifact["spec"]["blocks"]
    assert block["network"] is False
    assert artifact["spec"]["provenance"]["requires"] == "foundry>=0.2.0"
    done = run(repo, "offline", "--format", "json")
    assert done.returncode == 4, done.stdout + done.stderr
    assert not (repo.path / "reached").exists()
    assert not accepted
    trace = trace_of(repo, json.loads(done.stdout)["execution"])
    tail = json.dumps(trace["spec"]["blocks"])
    assert "Network is unreachable" in tail or "Connection refused" in tail, tail
    # the same block with the network it has by default reaches the listener
    online = compiled(repo, "online", blocks)
    assert "network" not in online["spec"]["blocks"][0]
    assert online["spec"]["provenance"]["requires"] == "foundry>=0.1.0"
    done = run(repo, "online")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo.path / "reached").exists()
    assert accepted
    server.close()


def test_limits_end_a_block_and_the_trace_says_which(repo: GitRepo) -> None:
    artifact = compiled(
        repo,
        "forky",
        "      - id: spawn\n"
        "        run: [sh, -c, 'for i in 1 2 3 4 5 6 7 8; do sleep 3 & done; wait']\n"
        "        effects: none\n"
        "        limits: {processes: 4}\n",
    )
    assert artifact["spec"]["blocks"][0]["limits"] == {"processes": 4}
    done = run(repo, "forky", "--format", "json")
    assert done.returncode == 4, done.stderr
    result = json.loads(done.stdout)
    trace = trace_of(repo, result["execution"])
    [block] = trace["spec"]["blocks"]
    assert block["status"] == "failed"
    said = json.dumps(block)
    assert "process limit reached (4): a fork was refused" in said
    # memory: the kernel ends it, and the trace says it was the limit
    compiled(
        repo,
        "greedy",
        "      - id: hog\n"
        f"        run: [{SYSTEM_PY}, -c, 'x = bytearray(600 * 1024 * 1024)']\n"
        "        effects: none\n"
        "        limits: {memory: 128Mi}\n",
    )
    done = run(repo, "greedy", "--format", "json")
    assert done.returncode == 4, done.stderr
    [block] = trace_of(repo, json.loads(done.stdout)["execution"])["spec"]["blocks"]
    assert block["status"] == "failed"
    assert "memory limit reached (128 MiB)" in json.dumps(block)


def test_a_sandbox_that_cannot_run_here_fails_the_execution_and_runs_nothing(
    repo: GitRepo,
) -> None:
    compiled(
        repo,
        "marker",
        "      - id: touch\n        run: [touch, ran]\n        effects: none\n",
    )
    done = run(repo, "marker", "--format", "json", env={"FOUNDRY_BWRAP": "/nonexistent/bwrap"})
    assert done.returncode == 4, done.stderr
    result = json.loads(done.stdout)
    assert "sandbox bwrap unavailable, nothing ran" in result["reason"]
    assert "bubblewrap (/nonexistent/bwrap) is not installed" in result["reason"]
    assert not (repo.path / "ran").exists()
    trace = trace_of(repo, result["execution"])
    assert "nothing ran" in trace["spec"]["reason"]
    # `none` chosen on purpose runs it
    plain = cli(
        "foundry",
        "run",
        ".",
        "--artifact",
        "marker",
        "--state",
        str(repo.path.parent / "state-2"),
        "--sandbox",
        "none",
        cwd=repo.path,
    )
    assert plain.returncode == 0, plain.stderr
    assert (repo.path / "ran").exists()


POLICY = (
    PROJECT
    + """\
  policy:
    network: false
    limits: {memory: 256Mi, processes: 64}
"""
)


def test_the_project_policy_requires_network_false_and_caps_limits(repo: GitRepo) -> None:
    repo.write(
        {
            ".alloy/alloy.yaml": POLICY,
            ".alloy/intents/online.yaml": intent_yaml(
                "online",
                blocks="      - id: call\n        run: [/bin/true]\n        effects: none\n"
                "        limits: {processes: 500}\n",
            ),
        }
    )
    before = repo.tree()
    check = cli("alloy", "check", cwd=repo.path)
    assert check.returncode == 1
    said = check.stdout + check.stderr
    assert ".alloy/intents/online.yaml:" in said
    assert "add `network: false` to this block" in said
    assert "limits.processes 500 is above the project's 64" in said
    assert "Traceback" not in said
    assert repo.tree() == before
    artifact = compiled(
        repo,
        "online",
        "      - id: call\n        run: [/bin/true]\n        effects: none\n"
        "        network: false\n        limits: {processes: 8}\n",
        project=POLICY,
    )
    # the block's own limit, the project's where it sets none
    assert artifact["spec"]["blocks"][0]["limits"] == {"memoryBytes": 256 * 2**20, "processes": 8}


def test_a_pull_request_loosening_the_sandbox_policy_is_blocking(repo: GitRepo) -> None:
    repo.write({".alloy/alloy.yaml": POLICY})
    repo.commit("policy")
    git(repo.path, "checkout", "-q", "-b", "loosen")
    repo.write({".alloy/alloy.yaml": PROJECT + "  policy:\n    limits: {memory: 1Gi}\n"})
    repo.commit("loosen")
    review = cli(
        "alloy", "review", "--base", "main", "--head", "loosen", "--format", "json", cwd=repo.path
    )
    assert review.returncode == 1, review.stdout + review.stderr
    text = review.stdout
    assert "blocks could have a network again" in text
    assert "limits.memory raised from 256Mi to 1Gi" in text
    assert "limits.processes removed" in text


def test_a_timeout_ends_the_whole_tree_under_bwrap(repo: GitRepo) -> None:
    compiled(
        repo,
        "hangs",
        "      - id: hang\n"
        "        run: [sh, -c, 'setsid sleep 300 & sleep 300 & wait']\n"
        "        effects: none\n"
        "        timeout: 2s\n",
    )
    done = run(repo, "hangs", "--format", "json")
    assert done.returncode == 4, done.stderr
    trace = trace_of(repo, json.loads(done.stdout)["execution"])
    assert trace["spec"]["blocks"][0]["attempts"][0]["outcome"] == "timeout"
    assert "timed out after 2s" in done.stderr
    assert processes_in(repo.path) == []


def test_evidence_is_what_the_block_wrote_in_its_worktree(repo: GitRepo, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not the block's\n")
    compiled(
        repo,
        "linked",
        "      - id: link\n"
        f"        run: [ln, {outside}, report.txt]\n"
        "        effects: none\n"
        "        outputs: [report.txt]\n",
    )
    done = cli(
        "foundry",
        "run",
        ".",
        "--artifact",
        "linked",
        "--state",
        str(tmp_path / "state"),
        "--sandbox",
        "none",
        "--format",
        "json",
        cwd=repo.path,
    )
    assert done.returncode == 4, done.stderr
    result = json.loads(done.stdout)
    trace = trace_of(repo, result["execution"], tmp_path / "state")
    assert "missing, outside the worktree or hard links: report.txt" in done.stderr
    assert trace["spec"]["blocks"][0]["outputs"] == []
    # the state directory is its owner's only
    assert (tmp_path / "state").stat().st_mode & 0o077 == 0


def test_a_command_gates_policy_runs_in_the_blocks_sandbox(repo: GitRepo, tmp_path: Path) -> None:
    """A policy command is the repository's code like a block: under `--sandbox bwrap` it runs
    in the blocks' sandbox (its own host name, no state directory of the host), and the same
    policy outside it (`--sandbox none`) sees the host (so that this test can fail)."""
    compiled(
        repo,
        "gated",
        "      - id: ship\n"
        "        run: [sh, -c, 'echo shipped > out.txt']\n"
        "        effects: none\n"
        "        outputs: [out.txt]\n"
        "        gates:\n"
        "          - command: {run: [sh, gate.sh], timeout: 30s}\n",
    )
    state = repo.path.parent / "state"
    state.mkdir()
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "gate.sh").write_text(
        'test "$(hostname)" = foundry-sandbox || { echo "on the host"; exit 1; }\n'
        f'test ! -e "{state}" || {{ echo "sees the state directory"; exit 1; }}\n'
        "echo confined\n"
    )
    done = run(repo, "gated", "--policy", str(policy), "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    trace = trace_of(repo, json.loads(done.stdout)["execution"])
    gates = trace["spec"]["gates"]
    assert [g["reason"] for g in gates] == ["policy command passed: confined"], gates
    outside = cli(
        "foundry",
        "run",
        ".",
        "--artifact",
        "gated",
        "--state",
        str(repo.path.parent / "state-2"),
        "--sandbox",
        "none",
        "--policy",
        str(policy),
        "--format",
        "json",
        cwd=repo.path,
    )
    assert outside.returncode != 0
    reason = json.loads(outside.stdout)["reason"]
    assert reason.startswith("ship failed: "), reason
    assert "on the host" in reason, reason
