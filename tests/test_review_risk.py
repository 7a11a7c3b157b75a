"""Automation risk and "what merging would start" of `alloy review`, in real git repositories.

Each test commits a base and a head, reads both trees from git as data (as the review does),
and asserts the structured findings and starts: kind, severity, file, line and details. The
plan's execution ids and request digests are checked against Foundry's own functions (tests may
import both sides; Alloy itself never imports Foundry).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import yaml

from alloy.compile import canonical_bytes, pretty_bytes
from alloy.load import DocResult, Entry, load_repository
from alloy.model import Request
from alloy.review._model import Finding, Start
from alloy.review._plan import (
    AT_MERGE,
    MERGE_COMMIT,
    NEXT_SLOT,
    execution_id,
    push_patterns,
    request_digest,
    request_key,
    touched,
    would_start,
)
from alloy.review._risk import risk_findings
from controllers.git import read_tree_files
from foundry import ids as foundry_ids
from foundry import planner as foundry_planner
from foundry.boundary import digest_of, read_boundary, read_request
from tests.conftest import GitRepo, Result

INTENT = ".alloy/intents/deploy.yaml"


def project(extra: str = "") -> str:
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Project\n"
        "metadata:\n"
        "  name: test-project\n"
        "spec:\n"
        "  owners: [carol]\n" + extra
    )


def intent(
    automation: str,
    *,
    name: str = "deploy",
    state: str = "active",
    owners: str = "[alice, team:ops]",
) -> str:
    """An intent whose `automation` is YAML indented by four spaces (under `automation:`)."""
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  owners: {owners}\n"
        "spec:\n"
        f"  state: {state}\n"
        "  goal: Releases reach production safely.\n"
        "  automation:\n" + automation
    )


BUILD = (
    "      - id: build\n"
    "        run: [python, -m, build]\n"
    "        timeout: 20m\n"
    "        effects: none\n"
)


def snapshot(repo: GitRepo, rev: str) -> dict[str, Entry]:
    return {p: Entry(data=b) for p, b in read_tree_files(repo.path, rev, ".alloy/").items()}


def commit(repo: GitRepo, files: Mapping[str, str], message: str = "change") -> str:
    repo.write(files)
    return repo.commit(message)


def risks(repo: GitRepo, base: str, head: str, **kwargs: Any) -> list[Finding]:
    b, h = snapshot(repo, base), snapshot(repo, head)
    return risk_findings(
        load_repository(b), load_repository(h), base_snapshot=b, head_snapshot=h, **kwargs
    )


def change(
    repo: GitRepo, before: Mapping[str, str], after: Mapping[str, str], **kwargs: Any
) -> tuple[list[Finding], Mapping[str, str]]:
    """Commit `before`, then `after`; the risk findings of the second against the first."""
    base = commit(repo, before, "base")
    head = commit(repo, after, "head")
    text = {**before, **after}
    return risks(repo, base, head, **kwargs), text


def line(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the `nth` line of `text` that contains `needle`."""
    hits = [i for i, ln in enumerate(text.splitlines(), 1) if needle in ln]
    return hits[nth - 1]


def of_kind(findings: Sequence[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def only(findings: Sequence[Finding], kind: str) -> Finding:
    found = of_kind(findings, kind)
    assert len(found) == 1, findings
    return found[0]


OWNERS = ("alice", "team:ops")


# --- effects ---------------------------------------------------------------------------------


def test_effects_stronger_on_an_existing_block_is_high_with_the_owners(repo: GitRepo) -> None:
    before = intent(
        "    on: {apply: true}\n"
        "    blocks:\n" + BUILD + "      - id: ship\n"
        "        run: [python, -m, ship]\n"
        "        effects: idempotent\n"
        "        gates:\n"
        "          - approval: {from: [team:ops]}\n"
    )
    after = before.replace("effects: idempotent", "effects: irreversible")
    found, _ = change(repo, {INTENT: before}, {INTENT: after})
    f = only(found, "effects-stronger")
    assert f.severity == "high"
    assert f.path == INTENT
    assert f.line == line(after, "effects: irreversible")
    assert f.document == "deploy"
    assert f.details == {"block": "ship", "from": "idempotent", "to": "irreversible"}
    assert f.approvers == OWNERS
    assert found == [f], "nothing else changed"


def test_a_new_block_with_effects_counts_from_nothing(repo: GitRepo) -> None:
    before = intent("    on: {apply: true}\n    blocks:\n" + BUILD)
    after = intent(
        "    on: {apply: true}\n"
        "    blocks:\n" + BUILD + "      - id: migrate\n"
        "        run: [python, -m, migrate]\n"
        "        effects: reversible\n"
        "      - id: warm\n"
        "        run: [python, -m, warm]\n"
        "        effects: idempotent\n"
    )
    found, _ = change(repo, {INTENT: before}, {INTENT: after})
    f = only(found, "effects-stronger")
    assert (f.severity, f.line) == ("medium", line(after, "effects: reversible"))
    assert f.details == {"block": "migrate", "from": None, "to": "reversible"}
    assert f.approvers == (), "only high and blocking findings ask for approval"


# --- gates -----------------------------------------------------------------------------------

GATED = intent(
    "    on: {apply: true}\n"
    "    blocks:\n"
    "      - id: ship\n"
    "        run: [python, -m, ship]\n"
    "        effects: irreversible\n"
    "        gates:\n"
    "          - approval:\n"
    "              from: [team:ops]\n"
    "              quorum: 2\n"
    "              forbidSelf: true\n"
    "              expires: 24h\n"
    "          - check: {names: [ci, lint]}\n"
    "          - window: {cron: '* 8-18 * * 1-5', timezone: Europe/Berlin}\n"
    "          - command: {run: [python, policy.py]}\n"
)


def test_gate_removed_is_high_and_names_the_gate(repo: GitRepo) -> None:
    after = GATED.replace("          - check: {names: [ci, lint]}\n", "")
    found, _ = change(repo, {INTENT: GATED}, {INTENT: after})
    f = only(found, "gate-removed")
    assert (f.severity, f.path, f.line) == ("high", INTENT, line(after, "gates:"))
    assert f.details == {
        "block": "ship",
        "index": 1,
        "gate": {"kind": "check", "names": ["ci", "lint"]},
    }
    assert f.approvers == OWNERS
    assert found == [f]


def test_approval_gate_loosened_field_by_field(repo: GitRepo) -> None:
    after = (
        GATED.replace("quorum: 2", "quorum: 1")
        .replace("expires: 24h", "expires: 2d")
        .replace("forbidSelf: true", "forbidSelf: false")
        .replace("from: [team:ops]", "from: [team:ops, mallory]")
    )
    found, _ = change(repo, {INTENT: GATED}, {INTENT: after})
    loosened = {f.details["field"]: f for f in of_kind(found, "gate-loosened")}
    assert set(loosened) == {"quorum", "expiresSeconds", "forbidSelf", "from"}
    assert all(f.severity == "high" and f.approvers == OWNERS for f in loosened.values())
    base = {"block": "ship", "index": 0, "gate": "approval"}
    assert loosened["quorum"].details == {**base, "field": "quorum", "from": 2, "to": 1}
    assert loosened["quorum"].line == line(after, "quorum: 1")
    assert loosened["expiresSeconds"].details == {
        **base,
        "field": "expiresSeconds",
        "from": 86400,
        "to": 172800,
    }
    assert loosened["expiresSeconds"].line == line(after, "expires: 2d")
    assert loosened["forbidSelf"].details == {
        **base,
        "field": "forbidSelf",
        "from": True,
        "to": False,
    }
    assert loosened["forbidSelf"].line == line(after, "forbidSelf: false")
    assert loosened["from"].details == {
        **base,
        "field": "from",
        "from": ["team:ops"],
        "to": ["mallory", "team:ops"],
        "added": ["mallory"],
    }
    assert loosened["from"].line == line(after, "from: [team:ops, mallory]")
    assert len(found) == 4


def test_expiry_removed_is_loosened_and_anchored_on_the_gate(repo: GitRepo) -> None:
    after = GATED.replace("              expires: 24h\n", "")
    found, _ = change(repo, {INTENT: GATED}, {INTENT: after})
    f = only(found, "gate-loosened")
    assert f.details["field"] == "expiresSeconds"
    assert (f.details["from"], f.details["to"]) == (86400, None)
    assert f.line == line(after, "- approval:")


def test_check_window_and_command_gates_loosened(repo: GitRepo) -> None:
    after = (
        GATED.replace("names: [ci, lint]", "names: [ci]")
        .replace("'* 8-18 * * 1-5'", "'* * * * *'")
        .replace("run: [python, policy.py]", "run: [python, policy.py, --lenient]")
    )
    found, _ = change(repo, {INTENT: GATED}, {INTENT: after})
    by_gate = {f.details["gate"]: f for f in of_kind(found, "gate-loosened")}
    assert set(by_gate) == {"check", "window", "command"}
    check = by_gate["check"]
    assert (check.severity, check.line) == ("high", line(after, "check:"))
    assert check.details == {
        "block": "ship",
        "index": 1,
        "gate": "check",
        "field": "names",
        "from": ["ci", "lint"],
        "to": ["ci"],
        "removed": ["lint"],
    }
    window = by_gate["window"]
    assert (window.severity, window.line) == ("medium", line(after, "window:"))
    assert window.details == {
        "block": "ship",
        "index": 2,
        "gate": "window",
        "field": "cron",
        "from": "* 8-18 * * 1-5",
        "to": "* * * * *",
    }
    assert window.approvers == ()
    command = by_gate["command"]
    assert (command.severity, command.line) == ("high", line(after, "command:"))
    assert command.details["field"] == "run"
    assert command.details["to"] == ["python", "policy.py", "--lenient"]


def test_after_gate_removed(repo: GitRepo) -> None:
    other = intent("    on: {apply: true}\n    blocks:\n" + BUILD, name="build")
    before = intent(
        "    on: {apply: true}\n"
        "    blocks:\n"
        "      - id: ship\n"
        "        run: [python, -m, ship]\n"
        "        effects: idempotent\n"
        "        gates:\n"
        "          - after: {intent: build, within: 1h}\n"
    )
    after = before.replace("        gates:\n          - after: {intent: build, within: 1h}\n", "")
    files = {".alloy/intents/build.yaml": other}
    found, _ = change(repo, {**files, INTENT: before}, {INTENT: after})
    f = only(found, "gate-removed")
    assert f.details["gate"] == {"kind": "after", "intent": "build", "withinSeconds": 3600}
    assert f.line == line(after, "- id: ship"), "no gates left: the block's line"


def test_adding_a_gate_or_tightening_one_is_no_risk(repo: GitRepo) -> None:
    after = GATED.replace("quorum: 2", "quorum: 3").replace(
        "          - check: {names: [ci, lint]}\n",
        "          - check: {names: [ci, lint, e2e]}\n          - check: {names: [sec]}\n",
    )
    found, _ = change(repo, {INTENT: GATED}, {INTENT: after})
    assert found == []


# --- executables and argument vectors --------------------------------------------------------


def test_executable_new_and_run_changed(repo: GitRepo) -> None:
    before = intent("    on: {apply: true}\n    blocks:\n" + BUILD)
    after = before.replace("run: [python, -m, build]", "run: [node, build.js]")
    found, _ = change(repo, {INTENT: before}, {INTENT: after})
    exe = only(found, "executable-new")
    assert (exe.severity, exe.path, exe.line) == ("medium", INTENT, line(after, "run: [node"))
    assert exe.details == {
        "block": "build",
        "executable": "node",
        "run": ["node", "build.js"],
        "allowed": None,
    }
    run = only(found, "run-changed")
    assert (run.severity, run.line) == ("medium", line(after, "run: [node"))
    assert run.details == {
        "block": "build",
        "from": ["python", "-m", "build"],
        "to": ["node", "build.js"],
    }


def test_changed_arguments_of_a_known_executable_are_only_run_changed(repo: GitRepo) -> None:
    before = intent("    on: {apply: true}\n    blocks:\n" + BUILD)
    after = before.replace("run: [python, -m, build]", "run: [python, -m, build, --all]")
    found, _ = change(repo, {INTENT: before}, {INTENT: after})
    f = only(found, "run-changed")
    assert f.details["to"] == ["python", "-m", "build", "--all"]
    assert found == [f]


def test_an_executable_outside_the_allowed_list_is_high(repo: GitRepo) -> None:
    files = {".alloy/alloy.yaml": project("  policy:\n    allowedExecutables: [python]\n")}
    before = intent("    on: {apply: true}\n    blocks:\n" + BUILD)
    after = before.replace("run: [python, -m, build]", "run: [curl, example.org]")
    found, _ = change(repo, {**files, INTENT: before}, {INTENT: after})
    f = only(found, "executable-new")
    assert f.severity == "high"
    assert f.details["allowed"] is False
    assert f.approvers == OWNERS


# --- lanes -----------------------------------------------------------------------------------


def test_lane_widened_in_the_intent(repo: GitRepo) -> None:
    lane = "    lane: {name: deploys, limit: 1, queue: reject, maxQueued: 5, rate: 1 per 1h}\n"
    before = intent("    on: {apply: true}\n" + lane + "    blocks:\n" + BUILD)
    wide = (
        "    lane: {name: deploys, limit: 3, queue: fifo, cancelRunning: true, rate: 10 per 1h}\n"
    )
    after = before.replace(lane, wide)
    found, _ = change(repo, {INTENT: before}, {INTENT: after})
    widened = {f.details["field"]: f for f in of_kind(found, "lane-widened")}
    assert set(widened) == {"limit", "queue", "maxQueued", "cancelRunning", "rate"}
    assert all(f.severity == "medium" and f.line == line(after, "lane:") for f in found)
    assert widened["limit"].details == {"lane": "deploys", "field": "limit", "from": 1, "to": 3}
    assert widened["queue"].details["from"] == "reject"
    assert widened["queue"].details["to"] == "fifo"
    assert widened["maxQueued"].details["to"] is None
    assert widened["cancelRunning"].details["to"] is True
    assert widened["rate"].details["from"] == {"count": 1, "periodSeconds": 3600}
    assert widened["rate"].details["to"] == {"count": 10, "periodSeconds": 3600}
    assert len(found) == 5


def test_lane_removed_is_the_widest(repo: GitRepo) -> None:
    lane = "    lane: {name: deploys, limit: 1}\n"
    before = intent("    on: {apply: true}\n" + lane + "    blocks:\n" + BUILD)
    after = before.replace(lane, "")
    found, _ = change(repo, {INTENT: before}, {INTENT: after})
    f = only(found, "lane-widened")
    assert f.details["field"] == "lane"
    assert f.details["to"] is None
    assert f.line == line(after, "automation:")


def test_project_lane_widened_is_reported_once_on_the_project(repo: GitRepo) -> None:
    lanes = "  lanes:\n    shared:\n      limit: 1\n      queue: latest\n"
    before_project = project(lanes)
    after_project = project(lanes.replace("limit: 1", "limit: 4"))
    using = intent(
        "    on: {apply: true}\n    lane: {name: shared}\n    blocks:\n" + BUILD,
    )
    found, _ = change(
        repo,
        {".alloy/alloy.yaml": before_project, INTENT: using},
        {".alloy/alloy.yaml": after_project},
    )
    f = only(found, "lane-widened")
    assert (f.path, f.line) == (".alloy/alloy.yaml", line(after_project, "limit: 4"))
    assert f.document == "test-project"
    assert f.details == {
        "lane": "shared",
        "field": "limit",
        "from": 1,
        "to": 4,
        "scope": "project",
    }


def test_a_new_lane_narrows(repo: GitRepo) -> None:
    before = intent("    on: {apply: true}\n    blocks:\n" + BUILD)
    after = intent("    on: {apply: true}\n    lane: {name: one, limit: 1}\n    blocks:\n" + BUILD)
    found, _ = change(repo, {INTENT: before}, {INTENT: after})
    assert found == []


# --- secrets, triggers, timeouts, retries ----------------------------------------------------


def test_secret_new_is_high(repo: GitRepo) -> None:
    before = intent("    on: {apply: true}\n    blocks:\n" + BUILD + "        secrets: [A_KEY]\n")
    after = before.replace("secrets: [A_KEY]", "secrets:\n          - A_KEY\n          - TOKEN")
    found, _ = change(repo, {INTENT: before}, {INTENT: after})
    f = only(found, "secret-new")
    assert (f.severity, f.line) == ("high", line(after, "- TOKEN"))
    assert f.details == {"block": "build", "secret": "TOKEN"}
    assert f.approvers == OWNERS
    assert found == [f]


def test_trigger_new_for_each_trigger(repo: GitRepo) -> None:
    before = intent(
        "    on:\n"
        "      apply: false\n"
        "      push: {paths: ['src/**']}\n"
        "      schedule: {cron: '0 2 * * *'}\n"
        "    blocks:\n" + BUILD
    )
    after = intent(
        "    on:\n"
        "      apply: true\n"
        "      request: true\n"
        "      push:\n"
        "        paths:\n"
        "          - 'src/**'\n"
        "          - 'docs/**'\n"
        "      schedule: {cron: '*/5 * * * *'}\n"
        "    blocks:\n" + BUILD
    )
    found, _ = change(repo, {INTENT: before}, {INTENT: after})
    by = {f.details["trigger"]: f for f in of_kind(found, "trigger-new")}
    assert set(by) == {"apply", "request", "push", "schedule"}
    assert all(f.severity == "medium" for f in found)
    assert by["apply"].details == {"trigger": "apply", "from": False, "to": True}
    assert by["apply"].line == line(after, "apply: true")
    assert by["request"].line == line(after, "request: true")
    assert by["push"].details == {
        "trigger": "push",
        "from": ["src/**"],
        "to": ["docs/**", "src/**"],
        "added": ["docs/**"],
    }
    assert by["push"].line == line(after, "'docs/**'")
    assert by["schedule"].details == {
        "trigger": "schedule",
        "field": "cron",
        "from": "0 2 * * *",
        "to": "*/5 * * * *",
    }
    assert by["schedule"].line == line(after, "schedule:")
    assert len(found) == 4


def test_a_new_schedule_is_a_new_trigger(repo: GitRepo) -> None:
    before = intent("    on: {apply: false}\n    blocks:\n" + BUILD)
    after = intent(
        "    on:\n      schedule: {cron: '0 3 * * *', timezone: Europe/Berlin}\n    blocks:\n"
        + BUILD
    )
    found, _ = change(repo, {INTENT: before}, {INTENT: after})
    f = only(found, "trigger-new")
    assert f.line == line(after, "schedule:")
    assert f.details == {
        "trigger": "schedule",
        "from": None,
        "to": {
            "cron": "0 3 * * *",
            "timezone": "Europe/Berlin",
            "catchUpSeconds": 0,
            "overlap": "skip",
        },
    }


def test_timeout_and_retry_raised_are_low(repo: GitRepo) -> None:
    before = intent(
        "    on: {apply: true}\n    blocks:\n"
        + BUILD
        + "        retry: {max: 1, onExitCodes: [75]}\n"
    )
    after = before.replace("timeout: 20m", "timeout: 1h").replace(
        "retry: {max: 1, onExitCodes: [75]}",
        "retry:\n          max: 3\n          onExitCodes: [75, 1]",
    )
    found, _ = change(repo, {INTENT: before}, {INTENT: after})
    timeout = only(found, "timeout-raised")
    assert (timeout.severity, timeout.line) == ("low", line(after, "timeout: 1h"))
    assert timeout.details == {"block": "build", "from": 1200, "to": 3600}
    retries = {f.details["field"]: f for f in of_kind(found, "retry-raised")}
    assert retries["max"].details == {"block": "build", "field": "max", "from": 1, "to": 3}
    assert retries["max"].line == line(after, "max: 3")
    assert retries["onExitCodes"].details == {
        "block": "build",
        "field": "onExitCodes",
        "from": [75],
        "to": [1, 75],
        "added": [1],
    }
    assert retries["onExitCodes"].line == line(after, "onExitCodes: [75, 1]")
    assert all(f.severity == "low" and f.approvers == () for f in found)
    assert len(found) == 3


# --- policy, lifecycle, equivalence ----------------------------------------------------------


def test_blocking_risks_policy_makes_a_kind_blocking(repo: GitRepo) -> None:
    policy = "  policy:\n    blockingRisks: [secret-new, timeout-raised]\n"
    before = intent("    on: {apply: true}\n    blocks:\n" + BUILD)
    after = before.replace("timeout: 20m", "timeout: 30m\n        secrets: [TOKEN]")
    found, _ = change(repo, {".alloy/alloy.yaml": project(policy), INTENT: before}, {INTENT: after})
    secret = only(found, "secret-new")
    timeout = only(found, "timeout-raised")
    assert secret.severity == timeout.severity == "blocking"
    assert secret.details["policy"] == "spec.policy.blockingRisks"
    assert timeout.approvers == OWNERS, "blocking findings need the owners"


def test_a_pull_request_cannot_lift_the_blocking_policy_for_itself(repo: GitRepo) -> None:
    policy = "  policy:\n    blockingRisks: [secret-new]\n"
    before = intent("    on: {apply: true}\n    blocks:\n" + BUILD)
    after = before.replace("timeout: 20m", "timeout: 20m\n        secrets: [TOKEN]")
    found, _ = change(
        repo,
        {".alloy/alloy.yaml": project(policy), INTENT: before},
        {".alloy/alloy.yaml": project(), INTENT: after},
    )
    assert only(found, "secret-new").severity == "blocking"


def test_blocking_risks_rejects_an_unknown_kind(repo: GitRepo) -> None:
    snap = {
        ".alloy/alloy.yaml": Entry(data=project("  policy:\n    blockingRisks: [nope]\n").encode())
    }
    loaded = load_repository(snap)
    assert not loaded.ok
    assert any("blockingRisks" in d.where for d in loaded.diagnostics)


def test_automation_that_does_not_run_carries_no_risk_until_it_is_accepted(repo: GitRepo) -> None:
    auto = (
        "    on: {apply: true}\n"
        "    blocks:\n"
        "      - id: ship\n"
        "        run: [python, -m, ship]\n"
        "        effects: irreversible\n"
        "        secrets: [TOKEN]\n"
        "        gates:\n"
        "          - approval: {from: [team:ops]}\n"
    )
    proposed = intent(auto, state="proposed")
    base = commit(repo, {INTENT: proposed}, "proposed")
    edited = commit(repo, {INTENT: proposed.replace("ship]", "ship, --now]")}, "edit")
    assert risks(repo, base, edited) == []
    accepted = commit(repo, {INTENT: intent(auto, state="accepted")}, "accept")
    found = risks(repo, edited, accepted)
    assert {f.kind for f in found} == {
        "trigger-new",
        "effects-stronger",
        "executable-new",
        "secret-new",
    }
    assert only(found, "effects-stronger").details == {
        "block": "ship",
        "from": None,
        "to": "irreversible",
    }
    deprecated = commit(repo, {INTENT: intent(auto + "        timeout: 2h\n", state="deprecated")})
    assert risks(repo, accepted, deprecated) == []


def test_a_new_intent_compares_against_nothing(repo: GitRepo) -> None:
    base = repo.commit("empty")
    text = intent(
        "    on: {push: {paths: ['src/**']}}\n    blocks:\n" + BUILD, name="fresh", owners="[]"
    )
    head = commit(repo, {".alloy/intents/fresh.yaml": text})
    found = risks(repo, base, head)
    assert [(f.kind, f.severity) for f in sorted(found, key=lambda f: f.line)] == [
        ("trigger-new", "medium"),
        ("executable-new", "medium"),
    ]
    assert all(f.path == ".alloy/intents/fresh.yaml" and f.document == "fresh" for f in found)


def test_the_same_meaning_spelled_differently_is_no_risk(repo: GitRepo) -> None:
    before = intent(
        "    on: {apply: true, push: {paths: ['a/**', 'b/**']}}\n"
        "    blocks:\n" + BUILD + "      - id: ship\n"
        "        run: [python, -m, ship]\n"
        "        effects: none\n"
        "        timeout: 1h\n"
        "        secrets: [B, A]\n"
    )
    after = intent(
        "    on:\n"
        "      push: {paths: ['b/**', 'a/**', 'a/**']}\n"
        "      apply: true   # comments change nothing\n"
        "    blocks:\n"
        "      - id: ship\n"
        "        effects: none\n"
        "        run: [python, -m, ship]\n"
        "        timeout: 60m\n"
        "        secrets: [A, B]\n" + BUILD
    )
    found, _ = change(repo, {INTENT: before}, {INTENT: after})
    assert found == []


def test_a_renamed_intent_is_compared_with_its_old_self(repo: GitRepo) -> None:
    text = intent("    on: {apply: true}\n    blocks:\n" + BUILD)
    base = commit(repo, {INTENT: text})
    (repo.path / INTENT).unlink()
    renamed = text.replace("name: deploy", "name: release").replace("timeout: 20m", "timeout: 1h")
    head = commit(repo, {".alloy/intents/release.yaml": renamed})
    found = risks(repo, base, head, renamed={"release": "deploy"})
    f = only(found, "timeout-raised")
    assert (f.path, f.document) == (".alloy/intents/release.yaml", "release")
    assert found == [f]
    assert {f.kind for f in risks(repo, base, head)} == {"trigger-new", "executable-new"}


class _ModelFreeCache:
    """A parse cache like the real one: it keeps everything but the models."""

    def __init__(self) -> None:
        self.raw: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> DocResult | None:
        raw = self.raw.get(key)
        return None if raw is None else DocResult.from_json(key.split("\0", 1)[0], raw)

    def put(self, key: str, result: DocResult) -> None:
        self.raw[key] = result.to_json()


def test_documents_from_the_parse_cache_are_loaded_again_from_the_snapshot(
    repo: GitRepo,
) -> None:
    before = intent("    on: {apply: true}\n    blocks:\n" + BUILD)
    after = before.replace("timeout: 20m", "timeout: 1h")
    base = commit(repo, {INTENT: before})
    head = commit(repo, {INTENT: after})
    b, h = snapshot(repo, base), snapshot(repo, head)
    cache = _ModelFreeCache()
    load_repository(b, cache)
    load_repository(h, cache)
    base_repo, head_repo = load_repository(b, cache), load_repository(h, cache)
    assert head_repo.intents()["deploy"].model is None
    found = risk_findings(base_repo, head_repo, base_snapshot=b, head_snapshot=h)
    f = only(found, "timeout-raised")
    assert f.line == line(after, "timeout: 1h")


# --- what merging would start ----------------------------------------------------------------


def compiled(alloy: Any, repo: GitRepo, files: Mapping[str, str], message: str) -> str:
    """Write `files`, run the real `alloy compile`, commit; the commit."""
    repo.write(files)
    result: Result = alloy("compile")
    assert result.code == 0, result.err
    return repo.commit(message)


def artifact_digest(repo: GitRepo, name: str = "deploy") -> str:
    data = json.loads((repo.path / f".alloy/artifacts/{name}.json").read_text())
    return str(data["digest"])


def plan(
    repo: GitRepo,
    base: str,
    head: str,
    *,
    recorded: frozenset[str] = frozenset(),
    changed_paths: Sequence[str] = (),
) -> list[Start]:
    b, h = snapshot(repo, base), snapshot(repo, head)
    return would_start(
        load_repository(b),
        load_repository(h),
        h,
        recorded=recorded,
        changed_paths=changed_paths,
        base_snapshot=b,
    )


class _Nothing:
    """Foundry's `Known` for a ledger that has never seen an execution."""

    def status(self, execution: str) -> str | None:
        return None

    def unfinished_keys(self, artifact: str, event_type: str) -> Sequence[tuple[str, str]]:
        return ()


def foundry_plan(repo: GitRepo, rev: str, pushes: Sequence[str] = ()) -> Any:
    files = read_tree_files(repo.path, rev, ".alloy/")
    boundary = read_boundary(files)
    assert not boundary.refused
    return foundry_planner.plan(
        boundary,
        _Nothing(),
        now=0.0,
        pushes=[foundry_planner.Push("c0ffee", tuple(pushes))],
    )


def test_apply_starts_for_a_new_digest_with_foundrys_execution_id(
    repo: GitRepo, alloy: Any
) -> None:
    base = repo.commit("empty")
    head = compiled(
        alloy, repo, {INTENT: intent("    on: {apply: true}\n    blocks:\n" + BUILD)}, "add"
    )
    digest = artifact_digest(repo)
    starts = plan(repo, base, head)
    expected = foundry_ids.execution_id(digest, foundry_ids.Event("apply", digest))
    assert starts == [
        Start("deploy", "deploy", "apply", digest, expected, "apply: new artifact digest")
    ]
    theirs = [i for i in foundry_plan(repo, head).start if i.event.type == "apply"]
    assert [(i.artifact, i.execution, i.reason) for i in theirs] == [
        ("deploy", expected, "apply: new artifact digest")
    ]
    assert plan(repo, base, head, recorded=frozenset({expected})) == [], "already recorded"
    again = commit(repo, {"README.md": "unrelated\n"})
    assert plan(repo, head, again) == [], "the same digest starts nothing new"


def test_a_hand_edited_artifact_starts_nothing(repo: GitRepo, alloy: Any) -> None:
    base = repo.commit("empty")
    compiled(alloy, repo, {INTENT: intent("    on: {apply: true}\n    blocks:\n" + BUILD)}, "add")
    path = repo.path / ".alloy/artifacts/deploy.json"
    path.write_text(path.read_text().replace("-m", "-c"))
    head = repo.commit("hand edit")
    assert plan(repo, base, head) == []


def test_push_starts_when_the_changed_paths_match(repo: GitRepo, alloy: Any) -> None:
    text = intent("    on: {push: {paths: ['src/**', 'setup.py']}}\n    blocks:\n" + BUILD)
    base = compiled(alloy, repo, {INTENT: text}, "add")
    head = commit(repo, {"src/pkg/a.py": "x = 1\n", "src/pkg/b.py": "y = 2\n"})
    starts = plan(repo, base, head, changed_paths=["src/pkg/a.py", "src/pkg/b.py"])
    assert starts == [
        Start(
            "deploy",
            "deploy",
            "push",
            MERGE_COMMIT,
            AT_MERGE,
            "push: the merge commit touches src/pkg/a.py and 1 more (setup.py, src/**)",
        )
    ]
    assert plan(repo, base, head, changed_paths=["docs/x.md", "src.py"]) == []
    theirs = foundry_plan(repo, head, pushes=["src/pkg/a.py"]).start
    assert [i.event.type for i in theirs] == ["push"]


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("src/**", "src/a/b/c.py"),
        ("src/**", "src"),
        ("**/*.py", "a.py"),
        ("**/*.py", "x/y/a.py"),
        ("*.py", "x/a.py"),
        ("docs/*.md", "docs/a.md"),
        ("docs/*.md", "docs/sub/a.md"),
        ("a?c", "abc"),
        ("a?c", "a/c"),
        ("src/**/test_*.py", "src/test_a.py"),
        ("weird[name].txt", "weird[name].txt"),
    ],
)
def test_push_globs_match_exactly_as_foundrys(pattern: str, path: str) -> None:
    assert bool(touched([path], [pattern])) == foundry_planner.touches([path], [pattern])


def test_schedule_starts_when_new_or_its_artifact_changed(repo: GitRepo, alloy: Any) -> None:
    plain = intent("    on: {apply: false}\n    blocks:\n" + BUILD)
    base = compiled(alloy, repo, {INTENT: plain}, "add")
    scheduled = plain.replace("on: {apply: false}", "on: {schedule: {cron: '0 2 * * *'}}")
    head = compiled(alloy, repo, {INTENT: scheduled}, "schedule")
    assert plan(repo, base, head) == [
        Start(
            "deploy",
            "deploy",
            "schedule",
            "0 2 * * *",
            NEXT_SLOT,
            "schedule: new schedule; next slot of 0 2 * * * (UTC)",
        )
    ]
    changed = compiled(alloy, repo, {INTENT: scheduled.replace("20m", "30m")}, "edit")
    [start] = plan(repo, head, changed)
    assert start.reason == "schedule: the schedule's artifact changed; next slot of 0 2 * * * (UTC)"
    same = commit(repo, {"README.md": "x\n"})
    assert plan(repo, changed, same) == []


def request_yaml(
    name: str, digest: str, *, reason: str = "Ship the hotfix.", extra: str = ""
) -> str:
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Request\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        f"  artifact: deploy@{digest}\n"
        f"  reason: {reason}\n"
        "  requestedBy: alice\n" + extra
    )


def test_request_starts_with_foundrys_key_and_id(repo: GitRepo, alloy: Any) -> None:
    text = intent(
        "    on: {request: true}\n"
        "    inputs: {ref: {type: string, default: main}}\n"
        "    blocks:\n" + BUILD
    )
    base = compiled(alloy, repo, {INTENT: text}, "add")
    digest = artifact_digest(repo)
    req = request_yaml("hotfix", digest, extra="  inputs: {ref: v1.2}\n")
    head = commit(repo, {".alloy/requests/hotfix.yaml": req})
    [start] = plan(repo, base, head)
    theirs = read_request(".alloy/requests/hotfix.yaml", req.encode())
    key = foundry_planner.request_key(theirs)
    assert start == Start(
        "deploy",
        "deploy",
        "request",
        key,
        foundry_ids.execution_id(digest, foundry_ids.Event("request", key)),
        "request hotfix by alice: Ship the hotfix.",
    )
    [item] = foundry_plan(repo, head).start
    assert (item.event.key, item.execution) == (start.key, start.execution)
    assert plan(repo, base, head, recorded=frozenset({start.execution})) == []
    unchanged = commit(repo, {"README.md": "x\n"})
    assert plan(repo, head, unchanged) == [], "the base already asked for it"
    edited = commit(repo, {".alloy/requests/hotfix.yaml": req.replace("hotfix.", "fix.")})
    [again] = plan(repo, unchanged, edited)
    assert again.key != start.key
    assert again.execution != start.execution


def test_requests_that_cannot_run_start_nothing(repo: GitRepo, alloy: Any) -> None:
    base = compiled(
        alloy, repo, {INTENT: intent("    on: {request: true}\n    blocks:\n" + BUILD)}, "add"
    )
    old = artifact_digest(repo)
    head = compiled(
        alloy,
        repo,
        {
            INTENT: intent("    on: {request: true}\n    blocks:\n" + BUILD.replace("20m", "5m")),
            ".alloy/requests/stale.yaml": request_yaml("stale", old),
        },
        "pinned to the old digest",
    )
    assert plan(repo, base, head) == []
    (repo.path / ".alloy/requests/stale.yaml").unlink()
    no_requests = compiled(
        alloy,
        repo,
        {INTENT: intent("    on: {apply: true}\n    blocks:\n" + BUILD.replace("20m", "5m"))},
        "no requests",
    )
    late = commit(repo, {".alloy/requests/late.yaml": request_yaml("late", artifact_digest(repo))})
    assert plan(repo, no_requests, late) == []


@pytest.mark.parametrize(
    "extra",
    [
        "",
        "  inputs: {ref: main, count: 3, dry: true}\n",
        "  inputs: {note: 'größer — ✓'}\n",
    ],
)
@pytest.mark.parametrize("title", ["", "  title: Hotfix für Ünïcode\n"])
def test_request_digest_agrees_with_foundry(extra: str, title: str) -> None:
    digest = "sha256:" + "ab" * 32
    text = request_yaml("r1", digest, extra=extra).replace("  name: r1\n", "  name: r1\n" + title)
    ours = Request.model_validate(yaml.safe_load(text))
    theirs = read_request(".alloy/requests/r1.yaml", text.encode())
    assert request_digest(ours) == digest_of(theirs.model_dump(mode="json", by_alias=True))
    assert request_key(ours) == foundry_planner.request_key(theirs)


@pytest.mark.parametrize(
    ("digest", "event", "key"),
    [
        ("sha256:" + "0" * 64, "apply", "sha256:" + "0" * 64),
        ("sha256:" + "1f" * 32, "push", "9fceb02d0ae598e95dc970b74767f19372d61af8"),
        ("sha256:" + "e3" * 32, "schedule", "2026-11-25T02:00:00Z"),
        ("sha256:" + "7a" * 32, "request", "r1@sha256:" + "c4" * 32),
        ("sha256:" + "7a" * 32, "request", "ünïcode@x"),
    ],
)
def test_execution_id_is_foundrys(digest: str, event: Any, key: str) -> None:
    assert execution_id(digest, event, key) == foundry_ids.execution_id(
        digest, foundry_ids.Event(event, key)
    )


# --- through the review ----------------------------------------------------------------------


def test_review_snapshots_carries_risks_and_starts(repo: GitRepo, alloy: Any) -> None:
    review_snapshots = pytest.importorskip("alloy.review").review_snapshots
    text = intent("    on: {apply: true}\n    blocks:\n" + BUILD)
    base = compiled(alloy, repo, {INTENT: text}, "add")
    after = text.replace("timeout: 20m", "timeout: 20m\n        secrets: [TOKEN]")
    head = compiled(alloy, repo, {INTENT: after}, "secret")
    digest = artifact_digest(repo)
    review = review_snapshots(
        snapshot(repo, base),
        snapshot(repo, head),
        base_label=base,
        head_label=head,
    )
    [secret] = [f for f in review.findings if f.kind == "secret-new"]
    assert (secret.severity, secret.path, secret.line) == ("high", INTENT, line(after, "secrets:"))
    assert secret.details == {"block": "build", "secret": "TOKEN"}
    assert set(OWNERS) <= set(review.approvers)
    assert [(s.event, s.key) for s in review.starts] == [("apply", digest)]


def test_a_request_that_becomes_runnable_starts(repo: GitRepo, alloy: Any) -> None:
    v1 = intent("    on: {request: true}\n    blocks:\n" + BUILD)
    v2 = v1.replace("20m", "30m")
    compiled(alloy, repo, {INTENT: v2}, "v2 compiled")
    new_artifact = (repo.path / ".alloy/artifacts/deploy.json").read_text()
    new_digest = artifact_digest(repo)
    compiled(alloy, repo, {INTENT: v1}, "v1 compiled")
    # The base: intent v2 with v1's (stale) artifact, and a request already pinned to v2.
    base = commit(
        repo, {INTENT: v2, ".alloy/requests/early.yaml": request_yaml("early", new_digest)}
    )
    head = commit(repo, {".alloy/artifacts/deploy.json": new_artifact}, "compile")
    [start] = plan(repo, base, head)
    assert (start.event, start.key.split("@")[0]) == ("request", "early")
    assert start.execution == foundry_ids.execution_id(
        new_digest, foundry_ids.Event("request", start.key)
    )


def test_would_start_reads_documents_the_parse_cache_left_without_models(
    repo: GitRepo, alloy: Any
) -> None:
    base = compiled(
        alloy, repo, {INTENT: intent("    on: {request: true}\n    blocks:\n" + BUILD)}, "add"
    )
    head = commit(repo, {".alloy/requests/r1.yaml": request_yaml("r1", artifact_digest(repo))})
    b, h = snapshot(repo, base), snapshot(repo, head)
    cache = _ModelFreeCache()
    load_repository(b, cache)
    load_repository(h, cache)
    base_repo, head_repo = load_repository(b, cache), load_repository(h, cache)
    assert all(d.model is None for d in head_repo.docs.values())
    starts = would_start(
        base_repo, head_repo, h, recorded=frozenset(), changed_paths=(), base_snapshot=b
    )
    assert [(s.event, s.key.split("@")[0]) for s in starts] == [("request", "r1")]


@pytest.mark.parametrize("form", ["pretty", "compact"])
@pytest.mark.parametrize("inputs", ["", "    inputs: {push: {type: string}}\n"])
def test_push_patterns_are_read_from_any_spelling_of_an_artifact(form: str, inputs: str) -> None:
    text = intent(
        "    on: {push: {paths: ['src/**', 'b/*.py']}}\n" + inputs + "    blocks:\n" + BUILD
    )
    snap = {INTENT: Entry(data=text.encode())}
    document = load_repository(snap).intents()["deploy"].artifact
    assert document is not None
    data = pretty_bytes(document) if form == "pretty" else canonical_bytes(document)
    assert push_patterns(data) == ["b/*.py", "src/**"]
    document["spec"]["triggers"].pop("push")
    data = pretty_bytes(document) if form == "pretty" else canonical_bytes(document)
    assert push_patterns(data) == []
    assert push_patterns(b"not json") == []
    assert push_patterns(b'{"push": {"paths": ["x"]') == []


def test_an_unchanged_artifact_starts_for_a_push_whatever_its_spelling(repo: GitRepo) -> None:
    text = intent("    on: {push: {paths: ['src/**']}}\n    blocks:\n" + BUILD)
    document = load_repository({INTENT: Entry(data=text.encode())}).intents()["deploy"].artifact
    assert document is not None
    files = {INTENT: text, ".alloy/artifacts/deploy.json": canonical_bytes(document).decode()}
    base = commit(repo, files)
    head = commit(repo, {"src/a.py": "1\n"})
    [start] = plan(repo, base, head, changed_paths=["src/a.py"])
    assert (start.event, start.key, start.execution) == ("push", MERGE_COMMIT, AT_MERGE)
