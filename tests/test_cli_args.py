"""CLI tier 1: argument parsing. Each `alloy` command calls its library function with the
arguments its options stand for; usage errors exit 2. The library functions are replaced by
recorders, so these tests say nothing about what the library does (tests/test_cli_e2e.py does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from alloy import scaffold, workspace
from alloy.cli import _commands, cli
from alloy.load import Repository
from alloy.model import DEFAULT_PROJECT, KINDS
from tests.conftest import GitRepo, intent_yaml


class Recorder:
    """Stands in for a library function: records each call and returns `result`."""

    def __init__(self, result: Any = None) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.result = result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.result() if callable(self.result) else self.result

    @property
    def only(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        assert len(self.calls) == 1, self.calls
        return self.calls[0]


def invoke(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding `.alloy/`, made the current directory."""
    path = tmp_path / "work"
    (path / ".alloy").mkdir(parents=True)
    monkeypatch.chdir(path)
    return path.resolve()


def _empty_repository() -> Repository:
    return Repository(project=DEFAULT_PROJECT)


@pytest.fixture
def check_fn(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder(_empty_repository)
    monkeypatch.setattr(workspace, "check", rec)
    return rec


@pytest.fixture
def compile_fn(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder(lambda: workspace.CompileReport(repository=_empty_repository()))
    monkeypatch.setattr(workspace, "compile_repository", rec)
    return rec


# --- -C / --repo ------------------------------------------------------------------------------


def test_commands_work_on_the_nearest_directory_holding_alloy(
    root: Path, monkeypatch: pytest.MonkeyPatch, check_fn: Recorder
) -> None:
    """Without -C, the repository is found at or above the current directory."""
    sub = root / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert invoke("check").exit_code == 0
    assert check_fn.only == ((root,), {"use_cache": True})


@pytest.mark.parametrize("flag", ["-C", "--repo"])
def test_repo_option_selects_the_repository(
    tmp_path: Path, root: Path, flag: str, check_fn: Recorder
) -> None:
    other = tmp_path / "other"
    (other / ".alloy").mkdir(parents=True)
    (other / "sub").mkdir()
    assert invoke(flag, str(other / "sub"), "check").exit_code == 0
    assert check_fn.only == ((other.resolve(),), {"use_cache": True})


def test_repo_option_must_come_before_the_command(root: Path, check_fn: Recorder) -> None:
    result = invoke("check", "-C", str(root))
    assert result.exit_code == 2
    assert "No such option" in result.output
    assert check_fn.calls == []


def test_repo_option_naming_a_missing_directory_exits_1(
    root: Path, compile_fn: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    from alloy.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["-C", str(root / "missing"), "compile"])
    assert exc.value.code == 1
    assert "no such directory" in capsys.readouterr().err
    assert compile_fn.calls == []


def test_repo_option_rejects_a_file(root: Path, check_fn: Recorder) -> None:
    (root / "file.txt").write_text("x")
    result = invoke("-C", str(root / "file.txt"), "check")
    assert result.exit_code == 2
    assert check_fn.calls == []


# --- init -------------------------------------------------------------------------------------


def test_init_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "My Project_2"
    path.mkdir()
    monkeypatch.chdir(path)
    rec = Recorder([".alloy/alloy.yaml"])
    monkeypatch.setattr(scaffold, "init", rec)
    result = invoke("init")
    assert result.exit_code == 0, result.output
    assert rec.only == (
        (path.resolve(),),
        {"name": "my-project-2", "owners": [], "default_branch": "main"},
    )
    assert "created .alloy/alloy.yaml" in result.output


def test_init_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder([])
    monkeypatch.setattr(scaffold, "init", rec)
    result = invoke(
        "-C",
        str(tmp_path),
        "init",
        "--name",
        "proj",
        "--owner",
        "alice",
        "--owner",
        "team:perf",
        "--default-branch",
        "trunk",
    )
    assert result.exit_code == 0, result.output
    assert rec.only == (
        (tmp_path.resolve(),),
        {"name": "proj", "owners": ["alice", "team:perf"], "default_branch": "trunk"},
    )


# --- new intent -------------------------------------------------------------------------------


@pytest.fixture
def new_intent_fn(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder(".alloy/intents/x.yaml")
    monkeypatch.setattr(scaffold, "new_intent", rec)
    return rec


def test_new_intent_flags_and_no_input(root: Path, new_intent_fn: Recorder) -> None:
    result = invoke(
        "new",
        "intent",
        "fast-ci",
        "--title",
        "CI is fast",
        "--goal",
        "CI takes 5 minutes.",
        "--rationale",
        "Waiting is waste.",
        "--owner",
        "alice",
        "--owner",
        "team:ci",
        "--acceptance",
        "p95 under 5m",
        "--acceptance",
        "no flaky tests",
        "--no-input",
    )
    assert result.exit_code == 0, result.output
    assert new_intent_fn.only == (
        (root, "fast-ci"),
        {
            "title": "CI is fast",
            "goal": "CI takes 5 minutes.",
            "rationale": "Waiting is waste.",
            "owners": ["alice", "team:ci"],
            "acceptance": ["p95 under 5m", "no flaky tests"],
        },
    )


def test_new_intent_no_input_leaves_optional_fields_empty(
    root: Path, new_intent_fn: Recorder
) -> None:
    result = invoke("new", "intent", "fast-ci", "--goal", "G.", "--no-input")
    assert result.exit_code == 0, result.output
    assert new_intent_fn.only[1] == {
        "title": None,
        "goal": "G.",
        "rationale": None,
        "owners": [],
        "acceptance": [],
    }


def test_new_intent_asks_for_what_is_missing(root: Path, new_intent_fn: Recorder) -> None:
    # A measurable goal: a vague one would get a follow-up question (tests/test_critique.py).
    answers = "Title\nCI takes under 5 minutes.\n\nalice, team:ci ,\nfirst\nsecond\n\n"
    result = invoke("new", "intent", "fast-ci", stdin=answers)
    assert result.exit_code == 0, result.output
    assert new_intent_fn.only[1] == {
        "title": "Title",
        "goal": "CI takes under 5 minutes.",
        "rationale": None,
        "owners": ["alice", "team:ci"],
        "acceptance": ["first", "second"],
    }


def test_new_intent_asks_only_for_what_is_missing(root: Path, new_intent_fn: Recorder) -> None:
    result = invoke(
        "new",
        "intent",
        "fast-ci",
        "--title",
        "T",
        "--owner",
        "bob",
        "--acceptance",
        "a",
        stdin="CI takes under 5 minutes.\nBecause.\n",
    )
    assert result.exit_code == 0, result.output
    assert new_intent_fn.only[1] == {
        "title": "T",
        "goal": "CI takes under 5 minutes.",
        "rationale": "Because.",
        "owners": ["bob"],
        "acceptance": ["a"],
    }
    assert "Title" not in result.output
    assert "Owners" not in result.output


def test_new_intent_no_input_without_goal_is_a_usage_error(
    root: Path, new_intent_fn: Recorder
) -> None:
    result = invoke("new", "intent", "fast-ci", "--no-input")
    assert result.exit_code == 2
    assert "--goal is required with --no-input" in result.output
    assert new_intent_fn.calls == []


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["new", "intent"], id="missing-name"),
        pytest.param(["new", "intent", "a", "b"], id="extra-argument"),
        pytest.param(["new", "policy", "a"], id="unknown-kind"),
        pytest.param(["new", "intent", "a", "--goal"], id="option-without-value"),
    ],
)
def test_new_intent_usage_errors(root: Path, new_intent_fn: Recorder, args: list[str]) -> None:
    assert invoke(*args).exit_code == 2
    assert new_intent_fn.calls == []


# --- check ------------------------------------------------------------------------------------


def test_check_defaults(root: Path, check_fn: Recorder) -> None:
    result = invoke("check")
    assert result.exit_code == 0
    assert check_fn.only == ((root,), {"use_cache": True})
    assert result.stdout == ""
    assert "ok: 1 document(s) valid" in result.stderr


def test_check_no_cache(root: Path, check_fn: Recorder) -> None:
    assert invoke("check", "--no-cache").exit_code == 0
    assert check_fn.only == ((root,), {"use_cache": False})


def test_check_json_prints_a_document_even_when_clean(root: Path, check_fn: Recorder) -> None:
    result = invoke("check", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "schemaVersion": 1,
        "errors": 0,
        "warnings": 0,
        "diagnostics": [],
    }


def test_check_github_prints_nothing_when_clean(root: Path, check_fn: Recorder) -> None:
    result = invoke("check", "--format", "github")
    assert result.exit_code == 0
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["check", "--format", "xml"], id="unknown-format"),
        pytest.param(["check", "--format"], id="format-without-value"),
        pytest.param(["check", "extra"], id="extra-argument"),
        pytest.param(["check", "--check"], id="option-of-another-command"),
        pytest.param(["chekc"], id="unknown-command"),
    ],
)
def test_check_usage_errors(root: Path, check_fn: Recorder, args: list[str]) -> None:
    assert invoke(*args).exit_code == 2
    assert check_fn.calls == []


def test_unknown_command_suggests_the_right_one(root: Path) -> None:
    result = invoke("chekc")
    assert result.exit_code == 2
    assert "check" in result.output


# --- compile ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], {"check_only": False, "use_cache": True}),
        (["--check"], {"check_only": True, "use_cache": True}),
        (["--no-cache"], {"check_only": False, "use_cache": False}),
        (["--check", "--no-cache", "--format", "github"], {"check_only": True, "use_cache": False}),
    ],
)
def test_compile_options(
    root: Path, compile_fn: Recorder, args: list[str], expected: dict[str, bool]
) -> None:
    result = invoke("compile", *args)
    assert result.exit_code == 0, result.output
    assert compile_fn.only == ((root,), expected)


def test_compile_reports_what_the_library_did(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = workspace.CompileReport(
        written=[".alloy/artifacts/a.json"],
        removed=[".alloy/artifacts/b.json"],
        unchanged=3,
        repository=_empty_repository(),
    )
    monkeypatch.setattr(workspace, "compile_repository", Recorder(report))
    result = invoke("compile")
    assert result.stdout == "wrote .alloy/artifacts/a.json\nremoved .alloy/artifacts/b.json\n"
    assert "3 artifact(s) unchanged" in result.stderr
    result = invoke("compile", "--format", "json")
    assert json.loads(result.stdout) == {
        "schemaVersion": 1,
        "errors": 0,
        "warnings": 0,
        "diagnostics": [],
        "written": [".alloy/artifacts/a.json"],
        "removed": [".alloy/artifacts/b.json"],
        "unchanged": 3,
        "stale": [],
    }


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["compile", "--format", "yaml"], id="unknown-format"),
        pytest.param(["compile", "intent-name"], id="extra-argument"),
        pytest.param(["compile", "--dry-run"], id="unknown-option"),
    ],
)
def test_compile_usage_errors(root: Path, compile_fn: Recorder, args: list[str]) -> None:
    assert invoke(*args).exit_code == 2
    assert compile_fn.calls == []


# --- explain and request (real documents, recorded output functions) --------------------------


@pytest.fixture
def compiled(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    """The test repository with one compiled intent that takes two inputs."""
    repo.write(
        {
            ".alloy/intents/nightly.yaml": intent_yaml(
                "nightly",
                extra_spec="  rationale: Because.\n",
            ).replace(
                "    blocks:\n",
                "    inputs:\n"
                "      ref: {type: string, default: main}\n"
                "      count: {type: integer, default: 1}\n"
                "    blocks:\n",
            ),
        }
    )
    workspace.compile_repository(repo.path)
    monkeypatch.chdir(repo.path)
    return repo


def test_explain_calls_the_library_with_the_intent(
    compiled: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder("explained\n")
    monkeypatch.setattr("alloy.explain.explain", rec)
    result = invoke("explain", "nightly")
    assert result.exit_code == 0, result.output
    assert result.stdout == "explained\n"
    (intent, project), kwargs = rec.only
    assert intent.metadata.name == "nightly"
    assert project.metadata.name == "test-project"
    artifact = json.loads((compiled.path / ".alloy/artifacts/nightly.json").read_text())
    assert kwargs["digest"] == artifact["digest"]
    assert kwargs["now"].tzinfo is not None


def test_explain_needs_exactly_one_name(compiled: GitRepo) -> None:
    assert invoke("explain").exit_code == 2
    assert invoke("explain", "nightly", "other").exit_code == 2


@pytest.fixture
def write_request_fn(compiled: GitRepo, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder(".alloy/requests/r.yaml")
    monkeypatch.setattr(scaffold, "write_request", rec)
    return rec


def _digest(repo: GitRepo, name: str) -> str:
    return str(json.loads((repo.path / f".alloy/artifacts/{name}.json").read_text())["digest"])


def test_request_passes_every_option(compiled: GitRepo, write_request_fn: Recorder) -> None:
    result = invoke(
        "request",
        "nightly",
        "--input",
        "count=3",
        "--input",
        "ref=v1.2",
        "--reason",
        "rerun",
        "--requested-by",
        "carol",
        "--name",
        "rerun-nightly",
    )
    assert result.exit_code == 0, result.output
    assert write_request_fn.only == (
        (compiled.path.resolve(),),
        {
            "intent": "nightly",
            "digest": _digest(compiled, "nightly"),
            "inputs": {"count": 3, "ref": "v1.2"},
            "reason": "rerun",
            "requested_by": "carol",
            "name": "rerun-nightly",
        },
    )


def test_request_defaults(
    compiled: GitRepo, write_request_fn: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "dave")
    result = invoke("request", "nightly", "--reason", "why not")
    assert result.exit_code == 0, result.output
    _, kwargs = write_request_fn.only
    assert kwargs["inputs"] == {}
    assert kwargs["requested_by"] == "dave"
    assert kwargs["name"] is None


def test_request_inputs_are_parsed_in_order(
    compiled: GitRepo, write_request_fn: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder({"count": 2})
    monkeypatch.setattr(scaffold, "parse_inputs", rec)
    result = invoke(
        "request", "nightly", "--input", "count=1", "--input", "count=2", "--reason", "r"
    )
    assert result.exit_code == 0, result.output
    (declared, pairs), _ = rec.only
    assert set(declared) == {"count", "ref"}
    assert pairs == ["count=1", "count=2"]
    assert write_request_fn.only[1]["inputs"] == {"count": 2}


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["request", "nightly"], id="missing-reason"),
        pytest.param(["request", "--reason", "r"], id="missing-name"),
        pytest.param(["request", "nightly", "--reason", "r", "--input"], id="input-without-value"),
    ],
)
def test_request_usage_errors(
    compiled: GitRepo, write_request_fn: Recorder, args: list[str]
) -> None:
    assert invoke(*args).exit_code == 2
    assert write_request_fn.calls == []


# --- schema -----------------------------------------------------------------------------------


def test_schema_out_calls_the_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder([tmp_path / "out" / "intent.schema.json"])
    monkeypatch.setattr(_commands, "write_schemas", rec)
    result = invoke("schema", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert rec.only == ((tmp_path / "out",), {})


@pytest.mark.parametrize("kind", ["Intent", "intent", "INTENT"])
def test_schema_kind_is_case_insensitive(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    rec = Recorder({"title": "Intent"})
    monkeypatch.setattr(_commands, "schema_of", rec)
    result = invoke("schema", kind)
    assert result.exit_code == 0, result.output
    assert rec.only == (("Intent",), {})
    assert json.loads(result.stdout) == {"title": "Intent"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["schema", "Intnet"], "did you mean 'Intent'", id="unknown-kind"),
        pytest.param(["schema", "--out"], "requires an argument", id="out-without-value"),
    ],
)
def test_schema_usage_errors(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_schema_without_a_kind_lists_the_kinds() -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == list(KINDS)


# --- demo, help, version ----------------------------------------------------------------------


def test_demo_takes_at_most_one_directory(tmp_path: Path) -> None:
    result = invoke("demo", str(tmp_path / "a"), str(tmp_path / "b"))
    assert result.exit_code == 2
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    "args", [["--help"], ["-h"], ["compile", "--help"], ["new", "intent", "-h"]]
)
def test_help_exits_0(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_help_documents_the_exit_codes() -> None:
    assert "3    internal error" in invoke("--help").output


def test_version() -> None:
    from alloy._version import __version__

    result = invoke("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


# --- the boundary maps click's errors to the documented codes ---------------------------------


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),
        (["--version"], 0),
        (["chekc"], 2),
        (["compile", "--format", "xml"], 2),
        (["new", "intent", "x", "--no-input"], 2),
        (["schema", "nope"], 2),
    ],
)
def test_main_exit_codes(
    root: Path, args: list[str], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from alloy.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == code
    assert "Traceback" not in capsys.readouterr().err


def test_main_without_input_on_a_prompt_is_a_usage_error(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prompting with stdin at end-of-file exits 2 and says to pass options instead."""
    import io

    from alloy.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(SystemExit) as exc:
        main(["new", "intent", "x"])
    assert exc.value.code == 2
    assert "pass the values as options" in capsys.readouterr().err
    assert not (root / ".alloy" / "intents").exists()
