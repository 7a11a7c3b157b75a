"""A pull request cannot weaken what protects the default branch (issue 12, item 1).

The review checks the head's intents against the stricter of the base's and the head's policy,
field by field, and every change of `.alloy/alloy.yaml` that loosens a policy field, changes the
project's owners, or moves the traces branch, the default branch or a lane is its own blocking
finding for the base's project owners. Each case is a real repository with a `main` and a `pr`
branch, reviewed by the real `alloy review`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import GitRepo, git, run_cli

BASE_SPEC = """\
  owners: [alice, bob]
  traces:
    branch: alloy/traces
  lanes:
    deploy: {limit: 1}
  policy:
    approvalRequiredFor: [reversible, irreversible]
    allowedExecutables: [sh, python]
    maxTimeout: 1h
    maxFileBytes: 65536
    blockingRisks: [secret-new, run-changed]
"""


def project(spec: str, *, default_branch: str = "main") -> str:
    return (
        "apiVersion: alloy.dev/v1\nkind: Project\nmetadata:\n  name: test-project\n"
        f"spec:\n  defaultBranch: {default_branch}\n{spec}"
    )


def _replace(old: str, new: str) -> str:
    assert old in BASE_SPEC, old
    return BASE_SPEC.replace(old, new)


#: Every way a head can loosen the project: (id, head spec, kind, field or what, details).
LOOSENINGS: list[tuple[str, str, str, dict[str, Any]]] = [
    (
        "approval-one-effect-dropped",
        _replace("[reversible, irreversible]", "[irreversible]"),
        "policy-loosened",
        {"field": "approvalRequiredFor", "removed": ["reversible"]},
    ),
    (
        "approval-emptied",
        _replace("[reversible, irreversible]", "[]"),
        "policy-loosened",
        {"field": "approvalRequiredFor", "removed": ["irreversible", "reversible"]},
    ),
    (
        "approval-field-removed",  # the default is [irreversible]: reversible dropped
        _replace("    approvalRequiredFor: [reversible, irreversible]\n", ""),
        "policy-loosened",
        {"field": "approvalRequiredFor", "removed": ["reversible"]},
    ),
    (
        "executables-removed",
        _replace("    allowedExecutables: [sh, python]\n", ""),
        "policy-loosened",
        {"field": "allowedExecutables", "removed": ["sh", "python"]},
    ),
    (
        "executable-added",
        _replace("[sh, python]", "[sh, python, curl]"),
        "policy-loosened",
        {"field": "allowedExecutables", "added": ["curl"]},
    ),
    (
        "timeout-raised",
        _replace("maxTimeout: 1h", "maxTimeout: 20d"),
        "policy-loosened",
        {"field": "maxTimeout", "from": "1h", "to": "20d"},
    ),
    (
        "timeout-removed",  # the default is 1d
        _replace("    maxTimeout: 1h\n", ""),
        "policy-loosened",
        {"field": "maxTimeout", "from": "1h", "to": "1d"},
    ),
    (
        "file-bytes-raised",
        _replace("maxFileBytes: 65536", "maxFileBytes: 1048576"),
        "policy-loosened",
        {"field": "maxFileBytes", "from": 65536, "to": 1048576},
    ),
    (
        "blocking-risk-dropped",
        _replace("[secret-new, run-changed]", "[secret-new]"),
        "policy-loosened",
        {"field": "blockingRisks", "removed": ["run-changed"]},
    ),
    (
        "owner-removed",
        _replace("owners: [alice, bob]", "owners: [alice]"),
        "owners-changed",
        {"removed": ["bob"], "added": []},
    ),
    (
        "owner-added",
        _replace("owners: [alice, bob]", "owners: [alice, bob, mallory]"),
        "owners-changed",
        {"removed": [], "added": ["mallory"]},
    ),
    (
        "traces-branch-moved",
        _replace("branch: alloy/traces", "branch: elsewhere"),
        "traces-changed",
        {"from": "alloy/traces", "to": "elsewhere"},
    ),
    (
        "lane-widened",
        _replace("deploy: {limit: 1}", "deploy: {limit: 50}"),
        "lanes-changed",
        {"lane": "deploy"},
    ),
    (
        "assistant-added",
        BASE_SPEC + "  assistant: {command: [sh, tools/assist.sh]}\n",
        "assistant-changed",
        {"from": None},
    ),
    (
        "lane-removed",
        _replace("  lanes:\n    deploy: {limit: 1}\n", ""),
        "lanes-changed",
        {"lane": "deploy", "to": None},
    ),
]


@pytest.fixture
def policy_repo(repo: GitRepo) -> GitRepo:
    repo.write({".alloy/alloy.yaml": project(BASE_SPEC)})
    repo.commit("the project's policy")
    return repo


def review(repo: GitRepo) -> tuple[int, dict[str, Any], str]:
    result = run_cli(
        "alloy", "review", "--base", "main", "--head", "pr", "--format", "json", cwd=repo.path
    )
    assert result.code in (0, 1), result.err
    assert "Traceback" not in result.err
    return result.code, json.loads(result.out), result.err


def on_pr(repo: GitRepo, files: dict[str, str], *, compile_: bool = False) -> None:
    git(repo.path, "checkout", "-q", "-b", "pr")
    repo.write(files)
    if compile_:
        result = run_cli("alloy", "compile", cwd=repo.path)
        assert result.code in (0, 1), result.err
    repo.commit("the pull request")


@pytest.mark.parametrize(
    ("case", "spec", "kind", "details"), LOOSENINGS, ids=[c[0] for c in LOOSENINGS]
)
def test_every_loosening_of_the_project_is_a_blocking_finding_for_its_owners(
    policy_repo: GitRepo, case: str, spec: str, kind: str, details: dict[str, Any]
) -> None:
    on_pr(policy_repo, {".alloy/alloy.yaml": project(spec)})
    code, data, _ = review(policy_repo)
    assert code == 1, data
    assert data["blocking"] is True
    found = [f for f in data["findings"] if f["kind"] == kind]
    assert len(found) == 1, data["findings"]
    finding = found[0]
    assert finding["severity"] == "blocking"
    assert finding["path"] == ".alloy/alloy.yaml"
    assert finding["approvers"] == ["alice", "bob"]  # the base's owners, whatever the head says
    assert {k: finding["details"].get(k) for k in details} == details
    # Nothing else is said to be loosened.
    others = [f for f in data["findings"] if f["kind"] != kind and f["severity"] == "blocking"]
    assert others == [], others


def test_the_default_branch_moved_is_blocking(policy_repo: GitRepo) -> None:
    on_pr(policy_repo, {".alloy/alloy.yaml": project(BASE_SPEC, default_branch="release")})
    code, data, _ = review(policy_repo)
    assert code == 1
    assert [f["kind"] for f in data["findings"]] == ["default-branch-changed"]


def test_a_head_that_only_tightens_the_policy_has_no_policy_finding(policy_repo: GitRepo) -> None:
    tighter = (
        BASE_SPEC.replace("[reversible, irreversible]", "[idempotent, reversible, irreversible]")
        .replace("[sh, python]", "[sh]")
        .replace("maxTimeout: 1h", "maxTimeout: 30m")
        .replace("maxFileBytes: 65536", "maxFileBytes: 32768")
        .replace("[secret-new, run-changed]", "[secret-new, run-changed, trigger-new]")
    )
    on_pr(policy_repo, {".alloy/alloy.yaml": project(tighter)})
    code, data, _ = review(policy_repo)
    assert code == 0, data
    assert data["findings"] == []


RISKY_INTENT = """\
apiVersion: alloy.dev/v1
kind: Intent
metadata:
  name: boom
  owners: [alice]
spec:
  state: accepted
  goal: Ships without asking anyone.
  automation:
    on: {apply: true}
    blocks:
      - id: go
        run: [curl, https://example.invalid/deploy]
        effects: irreversible
        timeout: 20d
"""


def test_an_intent_that_passes_only_under_the_loosened_policy_is_judged_by_the_base(
    policy_repo: GitRepo,
) -> None:
    """The reported case: the head loosens approvalRequiredFor, allowedExecutables and
    maxTimeout and adds an accepted intent that passes only under the looser policy. The review
    says what `alloy check` under the base's policy says: blocking."""
    loose = (
        BASE_SPEC.replace("[reversible, irreversible]", "[]")
        .replace("    allowedExecutables: [sh, python]\n", "")
        .replace("maxTimeout: 1h", "maxTimeout: 30d")
    )
    on_pr(
        policy_repo,
        {".alloy/alloy.yaml": project(loose), ".alloy/intents/boom.yaml": RISKY_INTENT},
        compile_=True,
    )
    code, data, _ = review(policy_repo)
    assert code == 1
    invalid = sorted(
        f["message"].split(": policy: ")[1].split(" ")[0:3]
        for f in data["findings"]
        if f["kind"] == "invalid-document" and f["path"] == ".alloy/intents/boom.yaml"
    )
    assert len(invalid) == 3, data["findings"]
    loosened = {f["details"]["field"] for f in data["findings"] if f["kind"] == "policy-loosened"}
    assert loosened == {"approvalRequiredFor", "allowedExecutables", "maxTimeout"}
    # The same intent, checked by `alloy check` under the base's policy: refused too.
    git(policy_repo.path, "checkout", "-q", "main", "--", ".alloy/alloy.yaml")
    check = run_cli("alloy", "check", cwd=policy_repo.path)
    assert check.code == 1
    assert "boom.yaml" in check.out + check.err


def test_a_tightened_policy_applies_to_the_heads_intents_at_once(repo: GitRepo) -> None:
    """An intent that the base's policy allows is refused by the head's tighter one in the same
    pull request (the stricter policy is the head's)."""
    intent = RISKY_INTENT.replace("[curl, https://example.invalid/deploy]", "[sh, -c, 'true']")
    intent = intent.replace("effects: irreversible", "effects: none").replace("20d", "2h")
    repo.write({".alloy/intents/boom.yaml": intent})
    assert run_cli("alloy", "compile", cwd=repo.path).code == 0
    repo.commit("boom")
    tight = "  owners: [alice]\n  policy:\n    maxTimeout: 1h\n    allowedExecutables: [python]\n"
    on_pr(repo, {".alloy/alloy.yaml": project(tight)})
    code, data, _ = review(repo)
    assert code == 1
    messages = [
        f["message"]
        for f in data["findings"]
        if f["kind"] == "invalid-document" and f["path"] == ".alloy/intents/boom.yaml"
    ]
    assert any("timeout 2h is longer than the allowed 1h" in m for m in messages), messages
    assert any("executable 'sh' is not allowed" in m for m in messages), messages
    assert not [f for f in data["findings"] if f["kind"] == "policy-loosened"]


def test_a_pull_request_cannot_make_itself_the_owner_who_approves(policy_repo: GitRepo) -> None:
    """Lifecycle moves need the base's project owners, not owners the head adds."""
    spec = BASE_SPEC.replace("owners: [alice, bob]", "owners: [mallory]")
    intent = RISKY_INTENT.replace("  owners: [alice]\n", "").replace(
        "[curl, https://example.invalid/deploy]", "[sh, -c, 'true']"
    )
    intent = intent.replace("effects: irreversible", "effects: none").replace("20d", "1h")
    on_pr(
        policy_repo,
        {".alloy/alloy.yaml": project(spec), ".alloy/intents/boom.yaml": intent},
        compile_=True,
    )
    code, data, _ = review(policy_repo)
    assert code == 1
    assert "mallory" not in data["approvers"], data["approvers"]
    moves = [f for f in data["findings"] if f["kind"] == "lifecycle-move"]
    assert moves
    assert all(f["approvers"] == ["alice", "bob"] for f in moves), moves
