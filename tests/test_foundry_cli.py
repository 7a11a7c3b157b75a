"""`foundry run`, `plan` and `traces` end to end: real processes on a plain directory checkout,
asserting exit codes, output and files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.foundry_support import artifact_document, block, write_artifact

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def foundry(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "foundry", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    write_artifact(
        root,
        artifact_document(
            "report",
            [
                block(
                    "make",
                    [
                        PY,
                        "-c",
                        "import os; open('out.txt', 'w').write('token=' + os.environ['TOKEN'])",
                    ],
                    outputs=["out.txt"],
                    secrets=["TOKEN"],
                ),
                block("show", ["cat", "out.txt"], needs=["make"]),
            ],
        ),
    )
    write_artifact(root, artifact_document("broken", [block("fail", ["sh", "-c", "exit 3"])]))
    write_artifact(
        root,
        artifact_document(
            "gated",
            [
                block(
                    "ship",
                    ["true"],
                    effects="irreversible",
                    gates=[{"kind": "approval", "from": ["bob"], "quorum": 1, "forbidSelf": True}],
                ),
            ],
        ),
    )
    return root


def state_args(tmp_path: Path) -> list[str]:
    return ["--state", str(tmp_path / "state")]


def test_run_then_traces(checkout: Path, tmp_path: Path) -> None:
    env = {"TOKEN": "tok-3141592653"}
    first = foundry(
        "run", ".", "--artifact", "report", *state_args(tmp_path), cwd=checkout, env=env
    )
    assert first.returncode == 0, first.stderr
    # Each block as it starts and ends, every line naming the execution, intent and event.
    execution = first.stdout.split()[0]
    label = f"{execution} (report, apply sha256:"
    assert all(line.startswith(label) for line in first.stdout.splitlines()), first.stdout
    ends = [line.split(") ", 1)[1] for line in first.stdout.splitlines() if "succeeded in" in line]
    assert [end.split(" in ")[0] for end in ends] == ["make: succeeded", "show: succeeded"]
    again = foundry(
        "run", ".", "--artifact", "report", *state_args(tmp_path), cwd=checkout, env=env
    )
    assert again.returncode == 0
    assert "already finished" in again.stderr

    listed = foundry("traces", "list", "--path", ".", *state_args(tmp_path), cwd=checkout)
    assert listed.returncode == 0
    assert execution in listed.stdout
    assert "succeeded" in listed.stdout

    exported = foundry(
        "traces", "export", execution, "--format", "json", *state_args(tmp_path), cwd=checkout
    )
    trace = json.loads(exported.stdout)
    schema = json.loads((ROOT / "schemas/alloy.dev/v1/trace.schema.json").read_text())
    jsonschema.validate(trace, schema)
    assert trace["spec"]["status"] == "succeeded"
    outputs = trace["spec"]["blocks"][0]["outputs"]
    assert outputs[0]["path"] == "out.txt"

    for fmt in ("markdown", "otlp", "intoto"):
        out = foundry(
            "traces", "export", execution, "--format", fmt, *state_args(tmp_path), cwd=checkout
        )
        assert out.returncode == 0, out.stderr
        assert "tok-3141592653" not in out.stdout, f"secret leaked into {fmt}"
    intoto = json.loads(
        foundry(
            "traces", "export", execution, "--format", "intoto", *state_args(tmp_path), cwd=checkout
        ).stdout
    )
    assert intoto["subject"][0]["digest"]["sha256"] == outputs[0]["digest"].removeprefix("sha256:")
    shown = foundry("traces", "show", execution, *state_args(tmp_path), cwd=checkout)
    assert "succeeded" in shown.stdout.splitlines()[0]
    assert "token=***" in shown.stdout


@pytest.mark.parametrize(
    ("name", "code", "last"),
    [("broken", 4, "failed"), ("gated", 5, "waiting")],
)
def test_exit_codes_say_what_happened(
    checkout: Path, tmp_path: Path, name: str, code: int, last: str
) -> None:
    result = foundry("run", ".", "--artifact", name, *state_args(tmp_path), cwd=checkout)
    assert result.returncode == code, result.stderr
    assert result.stderr.strip().splitlines()[-1].split(": ")[1].startswith(last)
    if name == "gated":  # an approval gate `foundry run` cannot judge: it says so first
        assert "note: block ship, gate 0 (approval): waits here" in result.stderr
        assert "judged by `foundry reconcile`" in result.stdout + result.stderr


def test_a_refused_artifact_exits_1_without_a_traceback(checkout: Path, tmp_path: Path) -> None:
    path = checkout / ".alloy/artifacts/report.json"
    document: dict[str, Any] = json.loads(path.read_text())
    document["spec"]["blocks"][0]["run"] = ["rm", "-rf", "/"]
    path.write_text(json.dumps(document))
    result = foundry("run", ".", "--artifact", "report", *state_args(tmp_path), cwd=checkout)
    assert result.returncode == 1
    assert "digest does not match the content" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "executions").exists()


def test_usage_errors_exit_2(checkout: Path) -> None:
    assert foundry("run", ".", cwd=checkout).returncode == 2
    assert (
        foundry("run", ".", "--artifact", "report", "--input", "novalue", cwd=checkout).returncode
        == 2
    )
    assert foundry("traces", "export", "x", "--format", "yaml", cwd=checkout).returncode == 2


def test_unknown_execution_and_artifact_are_user_errors(checkout: Path, tmp_path: Path) -> None:
    missing = foundry("traces", "show", "exe-0000000000000000", *state_args(tmp_path), cwd=checkout)
    assert missing.returncode == 1
    assert "no execution 'exe-0000000000000000'" in missing.stderr
    unknown = foundry("run", ".", "--artifact", "nope", *state_args(tmp_path), cwd=checkout)
    assert unknown.returncode == 1
    assert "no artifact named 'nope'" in unknown.stderr


def test_plan_lists_reasons_and_runs_nothing(checkout: Path, tmp_path: Path) -> None:
    plan = foundry("plan", ".", *state_args(tmp_path), cwd=checkout)
    assert plan.returncode == 0
    assert "start" in plan.stdout
    assert "apply: new artifact digest" in plan.stdout
    assert not (checkout / "out.txt").exists()
    foundry(
        "run", ".", "--artifact", "report", *state_args(tmp_path), cwd=checkout, env={"TOKEN": "x"}
    )
    after = foundry("plan", ".", "--json", *state_args(tmp_path), cwd=checkout)
    rows = {
        r["artifact"]: r for r in json.loads(after.stdout)["plan"] if r["event"]["type"] == "apply"
    }
    assert rows["report"]["action"] == "skip"
    assert rows["report"]["reason"] == "already done (succeeded)"


def test_window_gates_are_judged_by_the_clock_without_a_forge(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    always = {"kind": "window", "cron": "* * * * *", "timezone": "UTC"}
    approval = {"kind": "approval", "from": ["bob"], "quorum": 1, "forbidSelf": True}
    write_artifact(root, artifact_document("open", [block("b", ["touch", "ran"], gates=[always])]))
    write_artifact(root, artifact_document("needs-ok", [block("b", ["true"], gates=[approval])]))
    opened = foundry("run", ".", "--artifact", "open", *state_args(tmp_path), cwd=root)
    assert opened.returncode == 0, opened.stderr
    assert (root / "ran").exists()
    waiting = foundry("run", ".", "--artifact", "needs-ok", *state_args(tmp_path), cwd=root)
    assert waiting.returncode == 5
