"""The commands that write a document (`alloy init`, `alloy new intent`, `alloy request`,
`alloy approve`) with `--format json`, run as real processes in real git repositories: stdout is
one document its schema accepts, naming what was written as it was written; notes stay off it
(the questions of `alloy new intent` go to stderr); an error is exit 1 (2 for usage) with a
message, no traceback and nothing on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import GitRepo, Result, git, run_cli

ROOT = Path(__file__).resolve().parent.parent
EXE = "exe-0123456789abcdef"

ASKED = """\
apiVersion: alloy.dev/v1
kind: Intent
metadata:
  name: asked
  owners: [alice]
spec:
  state: active
  goal: The report is written on request.
  automation:
    on: {apply: true, request: true}
    inputs:
      days: {type: integer, default: 7}
      dry: {type: boolean, default: false}
      label: {type: string, default: weekly}
    blocks:
      - id: report
        run: [python, -c, 'print(1)']
        effects: none
        gates:
          - approval: {from: [bob]}
"""


def alloy(cwd: Path, *args: str, stdin: str | None = None) -> Result:
    return run_cli("alloy", *args, cwd=cwd, stdin=stdin)


def document(result: Result, command: str) -> dict[str, Any]:
    """stdout as the one JSON document of `command`, checked against its schema."""
    assert result.code == 0, result.err
    data: dict[str, Any] = json.loads(result.out)
    schema_path = ROOT / "docs" / "schemas" / f"{command.replace(' ', '-')}.schema.json"
    jsonschema.validate(data, json.loads(schema_path.read_text(encoding="utf-8")))
    assert next(iter(data)) == "schemaVersion"
    return data


def refused(result: Result, code: int, says: str) -> None:
    assert result.code == code, (result.out, result.err)
    assert result.out == ""
    assert says in result.err
    assert "Traceback" not in result.err


def read_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """A git repository without `.alloy/`."""
    path = tmp_path / "fresh"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


@pytest.fixture
def asked(repo: GitRepo) -> GitRepo:
    """A repository with an intent that takes requests, compiled and committed."""
    repo.write({".alloy/intents/asked.yaml": ASKED})
    assert alloy(repo.path, "compile", "-q").code == 0
    repo.commit("asked")
    return repo


# --- alloy init ---------------------------------------------------------------------------------


def test_init_names_the_files_it_created(fresh: Path) -> None:
    data = document(
        alloy(fresh, "init", "--owner", "alice", "--default-branch", "trunk", "--format", "json"),
        "alloy init",
    )
    assert data["root"] == str(fresh.resolve())
    assert data["project"] == "fresh"
    assert data["defaultBranch"] == "trunk"
    assert data["owners"] == ["alice"]
    assert data["created"] == [".alloy/alloy.yaml", ".gitattributes"]
    for rel in data["created"]:
        assert (fresh / rel).is_file()
    for rel in data["directories"]:
        assert (fresh / rel / ".gitkeep").is_file()
    project = read_yaml(fresh / data["projectFile"])
    assert project["metadata"]["name"] == data["project"]
    assert project["spec"]["defaultBranch"] == "trunk"
    assert alloy(fresh, "check").code == 0
    # A second init is an error: exit 1, the reason on stderr, nothing on stdout.
    refused(alloy(fresh, "init", "--format", "json"), 1, "already exists")


def test_init_lists_gitattributes_only_when_it_adds_the_line(fresh: Path) -> None:
    (fresh / ".gitattributes").write_text(".alloy/artifacts/*.json linguist-generated=true\n")
    data = document(alloy(fresh, "init", "--format", "json"), "alloy init")
    assert data["created"] == [".alloy/alloy.yaml"]
    assert data["owners"] == []


def test_init_quiet_and_verbose(fresh: Path, tmp_path: Path) -> None:
    quiet = alloy(fresh, "init", "-q")
    assert quiet.code == 0, quiet.err
    assert quiet.out == "created .alloy/alloy.yaml\ncreated .gitattributes\n"  # no next: hint
    other = tmp_path / "other"
    other.mkdir()
    verbose = alloy(other, "init", "-v", "--format", "json")
    assert json.loads(verbose.out)["project"] == "other"
    assert "initializing" in verbose.err


# --- alloy new intent ---------------------------------------------------------------------------


def test_new_intent_json_is_what_was_written(repo: GitRepo) -> None:
    result = alloy(
        repo.path,
        "new",
        "intent",
        "nightly",
        "--title",
        "The build stays green",
        "--goal",
        "The nightly build passes within 10 minutes",
        "--owner",
        "alice",
        "--acceptance",
        "The build of each night passes",
        "--acceptance",
        "It takes at most 10 minutes",
        "--no-input",
        "--format",
        "json",
    )
    data = document(result, "alloy new intent")
    assert result.err == ""
    assert data["path"] == ".alloy/intents/nightly.yaml"
    written = read_yaml(repo.path / data["path"])
    assert data["name"] == written["metadata"]["name"] == "nightly"
    assert data["title"] == written["metadata"]["title"]
    assert data["owners"] == written["metadata"]["owners"] == ["alice"]
    spec = written["spec"]
    assert data["state"] == spec["state"] == "proposed"
    assert data["goal"] == spec["goal"]
    assert data["rationale"] is None
    assert "rationale" not in spec
    assert data["acceptance"] == spec["acceptance"]
    assert [c["id"] for c in data["acceptance"]] == ["AC-1", "AC-2"]
    assert alloy(repo.path, "check").code == 0


def test_new_intent_asks_on_stderr_with_json(repo: GitRepo) -> None:
    answers = "\n".join(
        [
            "The report is sent",  # title
            "Because nobody reads the log",  # rationale
            "alice, team:ops",  # owners
            "The report lists 7 days of commits",  # acceptance 1
            "",  # no more criteria
            "",
        ]
    )
    result = alloy(
        repo.path,
        "new",
        "intent",
        "weekly",
        "--goal",
        "A report of 7 days of commits is sent each Monday",
        "--format",
        "json",
        stdin=answers,
    )
    data = document(result, "alloy new intent")  # stdout is the document alone
    assert "Title" in result.err
    assert "Owners" in result.err
    assert data["title"] == "The report is sent"
    assert data["rationale"] == "Because nobody reads the log"
    assert data["owners"] == ["alice", "team:ops"]
    assert data["acceptance"] == [{"id": "AC-1", "statement": "The report lists 7 days of commits"}]
    assert read_yaml(repo.path / data["path"])["metadata"]["owners"] == ["alice", "team:ops"]


def test_new_intent_json_errors(repo: GitRepo) -> None:
    refused(alloy(repo.path, "new", "intent", "Bad_Name", "--format", "json"), 1, "not a slug")
    # No answers to read: a usage error, nothing written.
    result = alloy(repo.path, "new", "intent", "later", "--format", "json", stdin="")
    refused(result, 2, "no input")
    assert not (repo.path / ".alloy/intents/later.yaml").exists()
    result = alloy(repo.path, "new", "intent", "later", "--no-input", "--format", "json")
    refused(result, 2, "--goal is required with --no-input")
    args = ["new", "intent", "later", "--goal", "g", "--no-input", "--format", "json"]
    assert alloy(repo.path, *args).code == 0
    refused(alloy(repo.path, *args), 1, "already exists")


# --- alloy request ------------------------------------------------------------------------------


def test_request_json_names_the_request_and_its_pin(asked: GitRepo) -> None:
    result = alloy(
        asked.path,
        "request",
        "asked",
        "--input",
        "days=3",
        "--input",
        "dry=true",
        "--reason",
        "hotfix",
        "--requested-by",
        "carol",
        "--format",
        "json",
    )
    data = document(result, "alloy request")
    written = read_yaml(asked.path / data["path"])
    artifact = json.loads((asked.path / ".alloy/artifacts/asked.json").read_text())
    assert data["path"] == f".alloy/requests/{data['name']}.yaml"
    assert data["name"] == written["metadata"]["name"]
    assert data["name"].startswith("asked-")
    assert data["intent"] == "asked"
    assert data["digest"] == artifact["digest"]
    assert data["artifact"] == written["spec"]["artifact"] == f"asked@{artifact['digest']}"
    assert data["inputs"] == written["spec"]["inputs"] == {"days": 3, "dry": True}
    assert data["reason"] == "hotfix"
    assert data["requestedBy"] == "carol"
    assert alloy(asked.path, "check").code == 0
    # A chosen name, and the same name again refused.
    named = ["request", "asked", "--reason", "r", "--name", "rerun", "--format", "json"]
    assert document(alloy(asked.path, *named), "alloy request")["name"] == "rerun"
    refused(alloy(asked.path, *named), 1, "already exists")


def test_request_json_errors(asked: GitRepo) -> None:
    before = asked.tree()
    args = ["request", "asked", "--reason", "r", "--format", "json"]
    refused(alloy(asked.path, *args, "--input", "nope=1"), 1, "unknown input")
    refused(alloy(asked.path, *args, "--input", "days=many"), 1, "not an integer")
    refused(
        alloy(asked.path, "request", "nothing", "--reason", "r", "--format", "json"), 1, "no intent"
    )
    asked.write({".alloy/intents/asked.yaml": ASKED.replace("print(1)", "print(2)")})
    refused(alloy(asked.path, *args), 1, "out of date")
    asked.write({".alloy/intents/asked.yaml": ASKED})
    assert asked.tree() == before  # nothing written


# --- alloy approve ------------------------------------------------------------------------------


def test_approve_json_names_the_file_and_the_decision(asked: GitRepo) -> None:
    args = ["approve", EXE, "--gate", "report", "--comment", "Read; go.", "--approver", "bob"]
    data = document(alloy(asked.path, *args, "--format", "json"), "alloy approve")
    written = read_yaml(asked.path / data["path"])
    assert data["path"] == f".alloy/approvals/{data['name']}.yaml"
    assert data["name"] == written["metadata"]["name"] == f"{EXE}-report-0-approve"
    assert data["created"] is True
    assert data["execution"] == written["spec"]["execution"] == EXE
    assert data["gate"] == written["spec"]["gate"] == {"block": "report", "index": 0}
    assert data["resolve"] is False
    assert data["decision"] == written["spec"]["decision"] == "approve"
    assert data["approver"] == written["spec"]["approver"] == "bob"
    assert data["defaultBranch"] == "main"
    assert data["notes"] == []  # bob is in the gate's from list
    # The same again: nothing written, said by `created`.
    again = alloy(asked.path, *args, "--format", "json")
    assert document(again, "alloy approve")["created"] is False
    # Not committed: the file is untracked.
    status = git(asked.path, "status", "--porcelain", "-uall")
    assert status == f"?? {data['path']}\n"


def test_approve_json_carries_the_notes_off_stderr(asked: GitRepo) -> None:
    args = ["approve", EXE, "--gate", "report", "--reject", "--comment", "No.", "--approver", "eve"]
    result = alloy(asked.path, *args, "--format", "json")
    data = document(result, "alloy approve")
    assert data["decision"] == "reject"
    [note] = data["notes"]
    assert "'eve' is not in the gate's `from` list" in note
    assert result.err == ""
    # In text the same note is on stderr, and -q leaves it and the next step out.
    resolve = ["approve", EXE, "--gate", "report", "--resolve", "--comment", "Done."]
    text = alloy(asked.path, *resolve, "--approver", "eve", "-q")
    assert text.code == 0, text.err
    assert text.out.startswith("created .alloy/approvals/")
    assert text.err == ""
    data = document(
        alloy(asked.path, *resolve, "--approver", "eve", "--format", "json"), "alloy approve"
    )
    assert data["created"] is False
    assert data["resolve"] is True
    assert data["gate"] == {"block": "report", "index": -1}


def test_approve_json_errors(asked: GitRepo) -> None:
    before = asked.tree()
    refused(
        alloy(
            asked.path, "approve", "exe-1", "--gate", "report", "--comment", "c", "--format", "json"
        ),
        1,
        "is not exe- and 16 hex digits",
    )
    refused(
        alloy(asked.path, "approve", EXE, "--gate", "a/b/c", "--comment", "c", "--format", "json"),
        2,
        "--gate",
    )
    name = ["--name", "taken", "--approver", "bob", "--format", "json"]
    assert alloy(asked.path, "approve", EXE, "--gate", "report", "--comment", "a", *name).code == 0
    refused(
        alloy(asked.path, "approve", EXE, "--gate", "report", "--comment", "b", *name),
        1,
        "already exists with other content",
    )
    after = asked.tree()
    assert set(after) - set(before) == {".alloy/approvals/taken.yaml"}
