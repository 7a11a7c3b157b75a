"""`alloy approve` end to end in a real git repository: the Approval document written, checked by
`alloy check` and the JSON Schema, never committed; bad input refused with nothing written."""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from alloy.approve import approval_name, parse_gate
from alloy.model._common import SLUG_PATTERN
from tests.conftest import GitRepo, Result, git, intent_yaml

ROOT = Path(__file__).resolve().parent.parent
EXE = "exe-0123456789abcdef"
GATED = intent_yaml(
    "ship",
    blocks=(
        "      - id: build\n"
        "        run: [python, -c, 'print(1)']\n"
        "        effects: none\n"
        "      - id: deploy\n"
        "        needs: [build]\n"
        "        run: [python, -c, 'print(2)']\n"
        "        effects: irreversible\n"
        "        gates:\n"
        "          - window: {cron: '* * * * *'}\n"
        "          - approval: {from: [alice, bob]}\n"
    ),
)


@pytest.fixture
def gated(repo: GitRepo) -> GitRepo:
    repo.write({".alloy/intents/ship.yaml": GATED})
    repo.commit("intent")
    return repo


def approvals(repo: GitRepo) -> dict[str, bytes]:
    return {k: v for k, v in repo.tree(".alloy/approvals").items() if not k.endswith(".gitkeep")}


def document(repo: GitRepo, name: str) -> dict[str, Any]:
    return yaml.safe_load((repo.path / ".alloy/approvals" / f"{name}.yaml").read_text())  # type: ignore[no-any-return]


def valid_under_schema(doc: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "schemas/alloy.dev/v1/approval.schema.json").read_text())
    jsonschema.validate(doc, schema)


def test_approve_writes_a_valid_document_and_commits_nothing(gated: GitRepo, alloy: Any) -> None:
    head = git(gated.path, "rev-parse", "HEAD")
    result: Result = alloy(
        "approve",
        EXE,
        "--gate",
        "deploy/1",
        "--comment",
        "Release notes read; go.",
        "--approver",
        "alice",
    )
    assert result.code == 0, result.err
    name = f"{EXE}-deploy-1-approve"
    assert result.out == f"created .alloy/approvals/{name}.yaml\n"
    assert "next: commit it and merge it to main" in result.err
    assert "note:" not in result.err  # alice is in the gate's from list
    doc = document(gated, name)
    assert doc == {
        "apiVersion": "alloy.dev/v1",
        "kind": "Approval",
        "metadata": {"name": name},
        "spec": {
            "execution": EXE,
            "gate": {"block": "deploy", "index": 1},
            "decision": "approve",
            "approver": "alice",
            "comment": "Release notes read; go.",
        },
    }
    valid_under_schema(doc)
    check = alloy("check")
    assert check.code == 0, check.out + check.err
    # Written into the work tree only: HEAD is where it was, the file is untracked.
    assert git(gated.path, "rev-parse", "HEAD") == head
    assert git(gated.path, "status", "--porcelain", "-uall") == f"?? .alloy/approvals/{name}.yaml\n"


def test_reject_and_default_gate_index(gated: GitRepo, alloy: Any) -> None:
    result = alloy(
        "approve",
        EXE,
        "--gate",
        "deploy",
        "--reject",
        "--comment",
        "Not on a Friday.",
        "--approver",
        "bob",
    )
    assert result.code == 0, result.err
    doc = document(gated, f"{EXE}-deploy-0-reject")
    assert doc["spec"]["decision"] == "reject"
    assert doc["spec"]["gate"] == {"block": "deploy", "index": 0}
    # Gate 0 of deploy is a time window, not an approval gate: said, but written anyway.
    assert "has no approval gate at index 0 (ship: approval gates at index 1)" in result.err
    assert alloy("check").code == 0


def test_resolve_an_indeterminate_block(gated: GitRepo, alloy: Any) -> None:
    result = alloy(
        "approve",
        EXE,
        "--gate",
        "deploy",
        "--resolve",
        "--comment",
        "It did finish.",
        "--approver",
        "alice",
    )
    assert result.code == 0, result.err
    doc = document(gated, f"{EXE}-deploy-resolve-approve")
    assert doc["spec"]["gate"] == {"block": "deploy", "index": -1}
    valid_under_schema(doc)
    assert alloy("check").code == 0
    # --resolve names a block, not a gate.
    bad = alloy("approve", EXE, "--gate", "deploy/1", "--resolve", "--comment", "x")
    assert bad.code == 2
    assert "--gate BLOCK --resolve" in bad.err
    slash = alloy("approve", EXE, "--gate", "deploy/-1", "--comment", "x")
    assert slash.code == 2
    assert "--gate BLOCK --resolve" in slash.err


def test_approver_from_git_config_then_the_os_user(gated: GitRepo, alloy: Any) -> None:
    result = alloy("approve", EXE, "--gate", "deploy/1", "--comment", "ok")
    assert result.code == 0, result.err
    # The isolated environment has no user.name anywhere: the OS user decides.
    assert document(gated, f"{EXE}-deploy-1-approve")["spec"]["approver"] == getpass.getuser()
    assert "is not in the gate's `from` list in intent 'ship' (alice, bob)" in result.err

    git(gated.path, "config", "user.name", "Carol Example")
    result = alloy("approve", EXE, "--gate", "deploy/1", "--reject", "--comment", "no")
    assert result.code == 0, result.err
    assert document(gated, f"{EXE}-deploy-1-reject")["spec"]["approver"] == "Carol Example"

    result = alloy(
        "approve",
        EXE,
        "--gate",
        "build",
        "--comment",
        "ok",
        "--approver",
        "dave",
        "--name",
        "dave-says-yes",
    )
    assert result.code == 0, result.err
    assert document(gated, "dave-says-yes")["spec"]["approver"] == "dave"
    assert alloy("check").code == 0


def test_bad_execution_id_is_refused_and_nothing_is_written(gated: GitRepo, alloy: Any) -> None:
    for bad in ("exe-123", "EXE-0123456789ABCDEF", "0123456789abcdef", "exe-0123456789abcdeg"):
        result = alloy("approve", bad, "--gate", "deploy/1", "--comment", "ok")
        assert result.code == 1, (bad, result.err)
        assert f"execution id {bad!r} is not exe- and 16 hex digits" in result.err
        assert "Traceback" not in result.err
    assert approvals(gated) == {}


def test_an_existing_approval_is_never_overwritten(gated: GitRepo, alloy: Any) -> None:
    args = ("approve", EXE, "--gate", "deploy/1", "--approver", "alice")
    assert alloy(*args, "--comment", "first").code == 0
    before = approvals(gated)
    # The same decision again: nothing changes, and that is fine.
    again = alloy(*args, "--comment", "first")
    assert again.code == 0, again.err
    assert "unchanged" in again.out
    # Another comment for the same gate and decision: refused, naming the file and the fix.
    other = alloy(*args, "--comment", "second thoughts")
    assert other.code == 1
    path = f".alloy/approvals/{EXE}-deploy-1-approve.yaml"
    assert f"{path} already exists with other content" in other.err
    assert "--name" in other.err
    assert approvals(gated) == before


def test_usage_errors_exit_2(gated: GitRepo, alloy: Any) -> None:
    cases = [
        ("approve", EXE, "--comment", "ok"),  # no --gate
        ("approve", EXE, "--gate", "deploy"),  # no --comment
        ("approve", "--gate", "deploy", "--comment", "ok"),  # no execution
        ("approve", EXE, "--gate", "Deploy", "--comment", "ok"),
        ("approve", EXE, "--gate", "deploy/x", "--comment", "ok"),
        ("approve", EXE, "--gate", "a/b/1", "--comment", "ok"),
        ("approve", EXE, "--gate", "deploy/101", "--comment", "ok"),
    ]
    for args in cases:
        result = alloy(*args)
        assert result.code == 2, (args, result.err)
        assert "Traceback" not in result.err
    assert approvals(gated) == {}


def test_other_bad_input_exits_1(gated: GitRepo, alloy: Any) -> None:
    cases = [
        (("--comment", "   "), "--comment is empty"),
        (("--comment", "ok", "--approver", " "), "approver '' must be one line"),
        (("--comment", "ok", "--name", "Not_A_Slug"), "--name 'Not_A_Slug' is not a slug"),
    ]
    for extra, message in cases:
        result = alloy("approve", EXE, "--gate", "deploy/1", *extra)
        assert result.code == 1, (extra, result.err)
        assert message in result.err
    assert approvals(gated) == {}


def test_an_unknown_block_is_noted_and_written(gated: GitRepo, alloy: Any) -> None:
    result = alloy("approve", EXE, "--gate", "deplyo", "--comment", "ok", "--approver", "a")
    assert result.code == 0, result.err
    assert "no intent under .alloy/ has a block 'deplyo'; did you mean 'deploy'?" in result.err
    assert alloy("check").code == 0


def test_parse_gate() -> None:
    assert parse_gate("deploy") == ("deploy", 0)
    assert parse_gate("deploy/3") == ("deploy", 3)
    assert parse_gate("db_migrate/0") == ("db_migrate", 0)
    for bad in ("", "/1", "deploy/", "deploy/-1", "Deploy", "deploy/1/2", "deploy/101"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            parse_gate(bad)


def test_default_names_fit_the_slug_rules() -> None:
    slug = re.compile(SLUG_PATTERN)
    long_a = "a" * 40 + "_x"
    long_b = "a" * 40 + "_y"
    names = {
        approval_name(EXE, block, index, decision)
        for block in ("deploy", "db_migrate", "db-migrate", long_a, long_b, "z" * 63)
        for index in (-1, 0, 7, 100)
        for decision in ("approve", "reject")
    }
    assert len(names) == 6 * 4 * 2  # distinct blocks never share a name
    for name in names:
        assert slug.match(name), name
        assert len(name) <= 63
    assert approval_name(EXE, "deploy", 2, "approve") == f"{EXE}-deploy-2-approve"
    assert approval_name(EXE, "deploy", -1, "reject") == f"{EXE}-deploy-resolve-reject"


def test_foundry_reads_what_approve_writes(gated: GitRepo, alloy: Any) -> None:
    """The boundary holds: Foundry's own reader (which never imports Alloy) takes both forms."""
    from foundry.boundary import read_approval

    for extra in (("--gate", "deploy/1"), ("--gate", "deploy", "--resolve", "--reject")):
        result = alloy("approve", EXE, *extra, "--comment", "ok", "--approver", "alice")
        assert result.code == 0, result.err
    for path, data in sorted(approvals(gated).items()):
        approval = read_approval(path, data)
        assert approval.spec.execution == EXE
        assert approval.spec.approver == "alice"
        assert (approval.spec.gate.index, approval.spec.decision) in (
            (1, "approve"),
            (-1, "reject"),
        )
