"""What a new user saw on the Alloy side, each as the real `alloy` CLI in a real git repository:
no suggested command that does not exist, lane typos, every problem of every stage at once,
interactive answers checked when given, and one identity rule for requests and approvals."""

from __future__ import annotations

import ast
import getpass
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from tests.conftest import PROJECT, GitRepo, git, intent_yaml, run_cli

ROOT = Path(__file__).resolve().parent.parent
EXE = "exe-0123456789abcdef"


def errors_of(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(".alloy/")]


# --- 1. no message suggests a command that does not exist ------------------------------------


def test_newer_api_version_names_no_missing_command(repo: GitRepo, alloy: Any) -> None:
    doc = intent_yaml("ship").replace("alloy.dev/v1", "alloy.dev/v2")
    repo.write({".alloy/intents/ship.yaml": doc})
    repo.commit("a document of a newer version")
    before = repo.tree()
    result = alloy("check")
    assert result.code == 1, result
    assert "Traceback" not in result.err
    [line] = [e for e in errors_of(result.out) if "apiVersion" in e]
    assert line.startswith(".alloy/intents/ship.yaml:1:13: apiVersion: unknown apiVersion"), line
    assert "alloy.dev/v2" in line
    assert "alloy.dev/v1" in line
    assert "upgrade Alloy" in line
    assert "migrate" not in result.out + result.err
    assert repo.tree() == before


_COMMAND = re.compile(r"`(alloy|foundry)((?: [a-z][a-z-]*)+)")


def _suggested_commands() -> set[tuple[str, str, tuple[str, ...]]]:
    """Every backticked `alloy …`/`foundry …` in a string of the source: (program, file, words)."""
    found: set[tuple[str, str, tuple[str, ...]]] = set()
    for package in ("alloy", "foundry", "controllers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    for match in _COMMAND.finditer(node.value):
                        rel = str(path.relative_to(ROOT))
                        found.add((match.group(1), rel, tuple(match.group(2).split())))
    return found


def _resolves(group: click.Group, words: tuple[str, ...]) -> bool:
    command: click.Command = group
    for word in words:
        if not isinstance(command, click.Group):
            return True  # the rest are the command's arguments
        sub = command.get_command(click.Context(command), word)  # a lazy group loads it
        if sub is None:
            return False
        command = sub
    return True


def test_every_suggested_command_exists() -> None:
    from alloy.cli import cli as alloy_cli
    from foundry.cli import cli as foundry_cli

    groups = {"alloy": alloy_cli, "foundry": foundry_cli}
    suggested = _suggested_commands()
    # the scan sees what it should: a real suggestion is found, and a made-up one would fail
    assert ("alloy", ("compile",)) in {(p, w[:1]) for p, _, w in suggested}
    assert not _resolves(groups["alloy"], ("migrate",))
    missing = sorted(
        f"{path}: `{prog} {' '.join(words)}`"
        for prog, path, words in suggested
        if not _resolves(groups[prog], words)
    )
    assert missing == []


def test_alloy_migrate_exists_exactly_when_a_second_version_does(tmp_path: Path) -> None:
    versions = sorted(p.name for p in (ROOT / "schemas" / "alloy.dev").iterdir() if p.is_dir())
    assert versions  # the schemas of every version the tools read are kept there
    listed = run_cli("alloy", "--help", cwd=tmp_path)
    assert listed.code == 0, listed
    has_migrate = re.search(r"^  migrate\b", listed.out, re.MULTILINE) is not None
    assert has_migrate == (len(versions) > 1), (versions, listed.out)


# --- 2. an unknown lane name is an error with a suggestion -----------------------------------

LANES_PROJECT = PROJECT + "  lanes:\n    docs: {limit: 1, queue: latest}\n"


def _laned(lane: str) -> str:
    return intent_yaml("site", extra_spec="").replace(
        "    blocks:\n", f"    lane: {lane}\n    blocks:\n", 1
    )


def test_lane_typo_is_an_error_with_a_suggestion(repo: GitRepo, alloy: Any) -> None:
    doc = _laned("{name: doc}")
    repo.write({".alloy/alloy.yaml": LANES_PROJECT, ".alloy/intents/site.yaml": doc})
    repo.commit("a lane typo")
    before = repo.tree()
    result = alloy("compile")
    assert result.code == 1, result
    assert "Traceback" not in result.err
    line = doc.splitlines().index("    lane: {name: doc}") + 1
    [error] = errors_of(result.out)
    assert error.startswith(f".alloy/intents/site.yaml:{line}:"), error
    assert "spec.automation.lane.name: unknown lane 'doc'" in error
    assert "did you mean 'docs'?" in error
    assert repo.tree() == before  # no artifact written


def test_project_lanes_and_inline_lanes_still_load(repo: GitRepo, alloy: Any) -> None:
    repo.write(
        {
            ".alloy/alloy.yaml": LANES_PROJECT,
            ".alloy/intents/site.yaml": _laned("{name: docs}"),
            ".alloy/intents/other.yaml": _laned("{name: doc, limit: 2}").replace(
                "name: site", "name: other"
            ),
        }
    )
    result = alloy("compile")
    assert result.code == 0, result
    artifact = (repo.path / ".alloy/artifacts/site.json").read_text()
    assert '"queue": "latest"' in artifact


def test_a_lane_defined_nowhere_is_unknown_even_without_a_near_name(
    repo: GitRepo, alloy: Any
) -> None:
    repo.write({".alloy/intents/site.yaml": _laned("{name: publish}")})
    result = alloy("check")
    assert result.code == 1, result
    [error] = errors_of(result.out)
    assert "unknown lane 'publish'" in error
    assert "spec.lanes" in error


@pytest.mark.parametrize("wrong", ["policy: {maxTimeout: forever, ", "lanes: {docs: {limit: 0}}"])
def test_an_invalid_project_still_holds_its_valid_settings(
    repo: GitRepo, alloy: Any, wrong: str
) -> None:
    # The project's policy allows irreversible blocks without an approval gate, and defines the
    # lane the intent uses; a wrong value elsewhere in it must not make either an error.
    policy = "  policy: {approvalRequiredFor: []}\n"
    if wrong.startswith("policy"):
        project = LANES_PROJECT + policy.replace("policy: {", wrong)
    else:
        project = PROJECT + "  " + wrong + "\n" + policy
    intent = _laned("{name: docs}").replace("effects: none", "effects: irreversible")
    repo.write({".alloy/alloy.yaml": project, ".alloy/intents/site.yaml": intent})
    result = alloy("check")
    assert result.code == 1, result
    found = errors_of(result.out)
    assert found
    assert all(e.startswith(".alloy/alloy.yaml:") for e in found), found


# --- 3. every stage reports every problem it can ---------------------------------------------


def test_bad_time_zone_does_not_hide_an_evidence_error(repo: GitRepo, alloy: Any) -> None:
    doc = intent_yaml(
        "nightly",
        on="{schedule: {cron: '0 2 * * *', timezone: Mars/Olympus}}",
        extra_spec=(
            "  acceptance:\n"
            "    - id: AC-1\n"
            "      statement: The results are kept.\n"
            "      evidence: {block: buidl, output: out.txt}\n"
        ),
    )
    repo.write({".alloy/intents/nightly.yaml": doc})
    result = alloy("check")
    assert result.code == 1, result
    found = errors_of(result.out)
    lines = doc.splitlines()
    zone = next(i for i, t in enumerate(lines, 1) if "Mars/Olympus" in t)
    evidence = next(i for i, t in enumerate(lines, 1) if "buidl" in t)
    assert any(f":{zone}:" in e and "unknown time zone 'Mars/Olympus'" in e for e in found), found
    assert any(
        f":{evidence}:" in e and "evidence names unknown block 'buidl'; did you mean 'build'?" in e
        for e in found
    ), found


def test_a_missing_goal_does_not_hide_the_rest(repo: GitRepo, alloy: Any) -> None:
    doc = intent_yaml(
        "ship",
        extra_spec=(
            "  acceptance:\n"
            "    - id: AC-1\n"
            "      statement: The results are kept.\n"
            "      evidence: {block: buidl, output: out.txt}\n"
        ),
    ).replace("  goal: Something stays true.\n", "")
    repo.write({".alloy/intents/ship.yaml": doc})
    result = alloy("check")
    assert result.code == 1, result
    found = "\n".join(errors_of(result.out))
    assert "required field 'goal' is missing" in found
    assert "evidence names unknown block 'buidl'" in found


def test_a_value_put_back_to_its_default_invents_no_finding(repo: GitRepo, alloy: Any) -> None:
    # retry.max is wrong; the check must not then claim onExitCodes has no effect with max 0
    doc = intent_yaml(
        "ship",
        blocks=(
            "      - id: build\n"
            "        run: [python, -c, 'print(1)']\n"
            "        effects: none\n"
            "        retry: {max: lots, onExitCodes: [75]}\n"
        ),
    )
    repo.write({".alloy/intents/ship.yaml": doc})
    result = alloy("check")
    assert result.code == 1, result
    found = errors_of(result.out)
    assert len(found) == 1, found
    assert "retry.max" in found[0]


def test_findings_after_a_dropped_item_keep_their_own_lines(repo: GitRepo, alloy: Any) -> None:
    # acceptance[0] and blocks[1] are wrong and dropped to check the rest: a duplicate id after
    # them is still placed on its own line, a need of the dropped block is not called unknown,
    # and a need of a block that never existed still is
    doc = intent_yaml(
        "ship",
        extra_spec=(
            "  acceptance:\n"
            "    - {id: 1st, statement: First.}\n"
            "    - {id: AC-1, statement: Second.}\n"
            "    - {id: AC-1, statement: Third.}\n"
        ),
        blocks=(
            "      - {id: build, run: [python, -V], effects: none}\n"
            "      - {id: check, run: [python, -V]}\n"
            "      - {id: ship, needs: [build, check, nope], run: [python, -V], effects: none}\n"
        ),
    )
    repo.write({".alloy/intents/ship.yaml": doc})
    result = alloy("check")
    assert result.code == 1, result
    found = errors_of(result.out)
    lines = doc.splitlines()
    third = next(i for i, t in enumerate(lines, 1) if "Third." in t)
    assert any(
        e.startswith(f".alloy/intents/ship.yaml:{third}:")
        and "spec.acceptance[2].id: duplicate acceptance id 'AC-1'" in e
        for e in found
    ), found
    assert any("needs unknown block 'nope'" in e for e in found), found
    assert not any("unknown block 'check'" in e for e in found), found
    assert any("blocks[1].effects: required field 'effects' is missing" in e for e in found), found


BROKEN = {
    "yaml syntax": "apiVersion: alloy.dev/v1\nkind: Intent\nmetadata: {name: base\n",
    "newer version": intent_yaml("base").replace("alloy.dev/v1", "alloy.dev/v2"),
    "kind typo": intent_yaml("base").replace("kind: Intent", "kind: Intnet"),
    "bad name": intent_yaml("base").replace("name: base", "name: Base"),
    "bad time zone": intent_yaml(
        "base", on="{schedule: {cron: '0 2 * * *', timezone: Mars/Olympus}}"
    ),
}


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_an_invalid_intent_is_not_unknown_to_others(repo: GitRepo, alloy: Any, how: str) -> None:
    user = intent_yaml(
        "user",
        extra_spec="  relations:\n    dependsOn: [base]\n",
        blocks=(
            "      - id: build\n"
            "        run: [python, -c, 'print(1)']\n"
            "        effects: none\n"
            "        gates:\n"
            "          - after: {intent: base}\n"
        ),
    )
    repo.write({".alloy/intents/base.yaml": BROKEN[how], ".alloy/intents/user.yaml": user})
    result = alloy("check")
    assert result.code == 1, result
    found = errors_of(result.out)
    assert found
    assert all(e.startswith(".alloy/intents/base.yaml:") for e in found), found
    assert "unknown intent" not in result.out


def test_a_request_for_an_invalid_intent_says_nothing_wrong_of_itself(
    repo: GitRepo, alloy: Any
) -> None:
    repo.write({".alloy/intents/ship.yaml": intent_yaml("ship")})
    assert alloy("compile").code == 0
    assert alloy("request", "ship", "--reason", "Release now.", "--name", "now").code == 0
    broken = intent_yaml("ship", on="{request: true, schedule: {cron: '0 2 * * *', timezone: X}}")
    repo.write({".alloy/intents/ship.yaml": broken})
    result = alloy("check")
    assert result.code == 1, result
    found = errors_of(result.out)
    assert found
    assert all(e.startswith(".alloy/intents/ship.yaml:") for e in found), found


def test_an_invalid_intent_still_has_its_references_checked(repo: GitRepo, alloy: Any) -> None:
    doc = intent_yaml(
        "ship",
        on="{schedule: {cron: '0 2 * * *', timezone: Mars/Olympus}}",
        extra_spec="  relations:\n    dependsOn: [nope]\n",
    )
    repo.write({".alloy/intents/ship.yaml": doc})
    result = alloy("check")
    assert result.code == 1, result
    found = "\n".join(errors_of(result.out))
    assert "unknown time zone" in found
    assert "depends on unknown intent 'nope'" in found


# --- 8. interactive answers are checked when given -------------------------------------------


def test_interactive_bad_owner_is_asked_again(repo: GitRepo, alloy: Any) -> None:
    answers = [
        "Builds are fast",  # title
        "Every build on main finishes within 10 minutes.",  # goal (measurable: no follow-up)
        "",  # rationale
        "Alice Smith, team:platform",  # owners: one is not a login
        "alice-smith, team:platform",  # asked again
        "The build of main takes at most 10 minutes.",
        "",
    ]
    result = alloy("new", "intent", "fast-builds", stdin="\n".join(answers) + "\n")
    assert result.code == 0, result
    said = result.out + result.err
    assert "'Alice Smith' is not a user name or team" in said
    assert said.count("Owners (comma-separated") == 2
    doc = yaml.safe_load((repo.path / ".alloy/intents/fast-builds.yaml").read_text())
    assert doc["metadata"]["owners"] == ["alice-smith", "team:platform"]
    assert doc["metadata"]["title"] == "Builds are fast"
    assert [a["statement"] for a in doc["spec"]["acceptance"]] == [
        "The build of main takes at most 10 minutes."
    ]
    assert alloy("check").code == 0


def test_interactive_too_long_title_is_asked_again(repo: GitRepo, alloy: Any) -> None:
    answers = ["x" * 201, "Short title", "Every build finishes within 10 minutes.", "", "alice", ""]
    result = alloy("new", "intent", "titled", stdin="\n".join(answers) + "\n")
    assert result.code == 0, result
    assert "at most 200 characters" in result.out + result.err
    doc = yaml.safe_load((repo.path / ".alloy/intents/titled.yaml").read_text())
    assert doc["metadata"]["title"] == "Short title"


def test_interactive_under_a_terminal_asks_again(repo: GitRepo) -> None:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "alloy", "new", "intent", "tty-intent"],
        cwd=repo.path,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "NO_COLOR": "1"},
    )
    os.close(follower)
    seen = b""

    def until(text: bytes) -> None:
        nonlocal seen
        while text not in seen:
            ready, _, _ = select.select([leader], [], [], 60)
            assert ready, seen
            chunk = os.read(leader, 4096)
            assert chunk, seen
            seen += chunk

    try:
        for prompt, answer in [
            (b"Title", b"Terminal title"),
            (b"Goal", b"Every build finishes within 10 minutes."),
            (b"Rationale", b""),
            (b"Owners", b"Alice Smith"),
        ]:
            until(prompt)
            seen = b""
            os.write(leader, answer + b"\n")
        until(b"is not a user name or team")
        until(b"Owners")  # asked again, the earlier answers kept
        os.write(leader, b"alice\n")
        until(b"Acceptance criterion 1")
        os.write(leader, b"\n")
        until(b"created .alloy/intents/tty-intent.yaml")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    doc = yaml.safe_load((repo.path / ".alloy/intents/tty-intent.yaml").read_text())
    assert doc["metadata"]["owners"] == ["alice"]
    assert doc["metadata"]["title"] == "Terminal title"


# --- 9. requests and approvals name the same person ------------------------------------------


def _requestable(repo: GitRepo, alloy: Any) -> None:
    repo.write({".alloy/intents/ship.yaml": intent_yaml("ship")})
    assert alloy("compile").code == 0
    repo.commit("ship")


def _who_requested_and_approved(repo: GitRepo, alloy: Any) -> tuple[str, str]:
    made = alloy("request", "ship", "--reason", "Release now.", "--name", "again")
    assert made.code == 0, made
    approved = alloy("approve", EXE, "--gate", "build", "--comment", "Looks right.")
    assert approved.code == 0, approved
    request = yaml.safe_load((repo.path / ".alloy/requests/again.yaml").read_text())
    [approval] = (repo.path / ".alloy/approvals").glob("exe-*.yaml")
    return request["spec"]["requestedBy"], yaml.safe_load(approval.read_text())["spec"]["approver"]


def test_request_and_approve_use_the_git_identity(repo: GitRepo, alloy: Any) -> None:
    _requestable(repo, alloy)
    git(repo.path, "config", "user.name", "Dana Reviewer")
    assert _who_requested_and_approved(repo, alloy) == ("Dana Reviewer", "Dana Reviewer")


def test_request_and_approve_fall_back_to_the_same_os_user(repo: GitRepo, alloy: Any) -> None:
    _requestable(repo, alloy)
    unset = subprocess.run(["git", "config", "--get", "user.name"], cwd=repo.path, check=False)
    assert unset.returncode == 1  # no git identity configured: the fallback is what is tested
    user = getpass.getuser()
    assert _who_requested_and_approved(repo, alloy) == (user, user)
