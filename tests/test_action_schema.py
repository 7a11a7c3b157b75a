"""`action.yml` and the example workflows validate against the schemas GitHub's tooling
publishes (`check-jsonschema`'s builtin `vendor.github-actions` and `vendor.github-workflows`,
offline), and the Action's pinned runtime lock agrees with the test lock."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / "docs" / "workflows").glob("*.yml"))


def _check_jsonschema() -> str:
    found = shutil.which("check-jsonschema") or str(
        Path(sys.executable).parent / "check-jsonschema"
    )
    if not Path(found).exists():
        pytest.fail("check-jsonschema is missing: scripts/test installs it", pytrace=False)
    return found


def _validate(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_check_jsonschema(), "--builtin-schema", schema, *map(str, files)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_action_yml_validates() -> None:
    done = _validate("vendor.github-actions", ROOT / "action.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_example_workflows_validate() -> None:
    assert len(WORKFLOWS) >= 2
    done = _validate("vendor.github-workflows", *WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_validator_rejects_a_broken_action(tmp_path: Path) -> None:
    """The check can fail: an action without `runs` is refused."""
    broken = tmp_path / "action.yml"
    broken.write_text("name: x\ndescription: y\ninputs: {}\n", encoding="utf-8")
    assert _validate("vendor.github-actions", broken).returncode != 0


def test_the_action_is_composite_without_remote_actions_and_never_interpolates_inputs() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) == {"mode", "token", "working-directory", "python"}
    assert set(action["outputs"]) == {"verdict", "executions-started", "trace-paths"}
    for step in action["runs"]["steps"]:
        assert "uses" not in step, "no remote action inside the composite"
        assert "${{" not in step.get("run", ""), "inputs reach scripts only through env"


def test_example_workflows_have_least_permissions_and_pinned_actions() -> None:
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        permissions = workflow["permissions"]
        assert set(permissions.values()) <= {"read", "write"}
        assert "write-all" not in str(permissions)
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                uses = step.get("uses", "")
                if uses.startswith("actions/"):
                    ref = uses.split("@", 1)[1]
                    assert len(ref) == 40, f"{path.name}: {uses} is not pinned to a commit"
                if uses.startswith("actions/checkout"):
                    assert step["with"]["persist-credentials"] is False


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==")
            out[name.lower().replace("_", "-")] = version
    return out


def test_the_action_runtime_lock_matches_the_test_lock() -> None:
    runtime = _pins(ROOT / "requirements" / "runtime.txt")
    tested = _pins(ROOT / "requirements" / "test.txt")
    assert {"github3.py", "gitpython", "pydantic", "click"} <= set(runtime)
    assert {n: v for n, v in runtime.items() if tested.get(n) != v} == {}
