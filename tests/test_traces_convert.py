"""`foundry traces convert`: a Trace document rendered by another program's process exactly as
Foundry renders it — real `foundry run` executions in a real git repository, the converted bytes
compared with `foundry traces export` and with the `.md` that `foundry reconcile` commits beside
the trace; every bad input is exit 1, one line naming the file and the fix, no traceback."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from foundry.boundary import read_trace
from foundry.errors import BoundaryError
from foundry.traces import InputFile, convert_trace
from tests.conftest import PROJECT
from tests.foundry_support import artifact_document, block, write_artifact
from tests.reconcile_support import World, only_execution

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "fixtures" / "boundary" / "v1" / "trace-succeeded.json"
SCHEMA = json.loads((ROOT / "schemas" / "alloy.dev" / "v1" / "trace.schema.json").read_text())
PY = sys.executable
SECRET = "tok-2718281828"
FORMATS = ("markdown", "otlp", "intoto")


def foundry(
    *args: str, cwd: Path, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`python -P -m foundry ...` as the web interface runs it: bytes in, bytes out."""
    return subprocess.run(
        [PY, "-P", "-m", "foundry", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


@dataclass(frozen=True)
class Ran:
    """One execution of `foundry run` and the files a converter is handed."""

    root: Path
    state: Path
    execution: str
    trace: Path  # `foundry traces export EXECUTION --format json`
    artifact: Path  # the artifact the execution ran, as the state directory keeps it
    ledger: Path

    def export(self, fmt: str, env: dict[str, str] | None = None) -> bytes:
        out = foundry(
            "traces", "export", self.execution, "--format", fmt, "--state", str(self.state),
            cwd=self.root, env=env,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout


def _git(root: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, env={**os.environ, **env}, check=True,
                   capture_output=True)  # fmt: skip


def _run(root: Path, state: Path, env: dict[str, str], name: str, *args: str) -> Ran:
    out = foundry(
        "run", ".", "--artifact", name, "--state", str(state), *args,
        cwd=root, env={**env, "TOKEN": SECRET},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    execution = out.stderr.decode().strip().splitlines()[-1].split()[0]
    kept = state / "executions" / execution
    trace = root.parent / f"{name}.trace.json"
    ran = Ran(root, state, execution, trace, kept / "artifact.json", kept / "ledger.jsonl")
    ran.trace.write_bytes(ran.export("json"))
    return ran


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    """`report` (an input, a secret, an output, two blocks) and `quiet` (no output), run by
    `foundry run` in a committed git repository; `other` is never run. Once per module
    (the tests only read these files), so the environment conftest pins per test is pinned
    here by hand."""
    base = tmp_path_factory.mktemp("convert")
    home = base / "home"
    env = {
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".state"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Committer",
        "GIT_COMMITTER_EMAIL": "committer@example.com",
    }
    root = base / "repo"
    root.mkdir(parents=True)
    home.mkdir()
    _git(root, env, "init", "-q", "-b", "main")
    (root / ".alloy").mkdir()
    (root / ".alloy" / "alloy.yaml").write_text(PROJECT)
    make = [PY, "-c", "import os; open('out.txt', 'w').write('token=' + os.environ['TOKEN'])"]
    who = {"who": {"type": "string", "required": False, "default": "bob"}}
    write_artifact(
        root,
        artifact_document(
            "report",
            [
                block("make", make, outputs=["out.txt"], secrets=["TOKEN"], effects="idempotent"),
                block("show", ["cat", "out.txt"], needs=["make"]),
            ],
            inputs=who,
        ),
    )
    write_artifact(root, artifact_document("quiet", [block("say", ["echo", "hello"])]))
    write_artifact(root, artifact_document("other", [block("x", ["true"])]))
    _git(root, env, "add", "-A")
    _git(root, env, "commit", "-q", "-m", "artifacts")
    state = base / "state"
    return {
        "report": _run(root, state, env, "report", "--input", "who=alice"),
        "quiet": _run(root, state, env, "quiet"),
    }


def convert(ran: Ran, fmt: str, env: dict[str, str] | None = None) -> bytes:
    out = foundry(
        "traces", "convert", "--format", fmt, "--trace", str(ran.trace),
        "--artifact", str(ran.artifact), "--inputs-from-ledger", str(ran.ledger),
        cwd=ran.root.parent, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr == b""
    return out.stdout


# --- the same bytes as Foundry's own renderings ------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_convert_prints_what_traces_export_prints(runs: dict[str, Ran], fmt: str) -> None:
    ran = runs["report"]
    converted = convert(ran, fmt)
    exported = ran.export(fmt)
    if fmt == "markdown":
        # The summary as the traces branch holds it; `export` echoes it with one more newline.
        assert converted.endswith(b"\n")
        assert not converted.endswith(b"\n\n")
        assert exported == converted + b"\n"
        assert converted.decode().startswith("✅ **succeeded** · intent `report`")
    else:
        assert converted == exported
        assert converted.endswith(b"}\n")
        assert json.dumps(json.loads(converted), indent=2, sort_keys=True).encode() + b"\n" == (
            converted
        )
    assert SECRET.encode() not in converted


@pytest.mark.parametrize("fmt", FORMATS)
def test_secrets_this_environment_has_are_masked_again_as_export_does(
    runs: dict[str, Ran], fmt: str
) -> None:
    """With the artifact, the values its declared secrets have here are masked once more (a
    trace written by an older engine): `TOKEN` is set to a word every rendering holds."""
    ran = runs["report"]
    env = {"TOKEN": "show"}
    converted = convert(ran, fmt, env)
    assert b"show" not in converted
    assert b"***" in converted
    exported = ran.export(fmt, env)
    assert exported == (converted + b"\n" if fmt == "markdown" else converted)


def test_intoto_states_the_inputs_only_from_the_ledger(runs: dict[str, Ran]) -> None:
    ran = runs["report"]
    statement = json.loads(convert(ran, "intoto"))
    external = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert external["inputs"] == {"who": "alice"}
    output = json.loads(ran.trace.read_text())["spec"]["blocks"][0]["outputs"][0]
    assert statement["subject"] == [
        {"name": "out.txt", "digest": {"sha256": output["digest"].removeprefix("sha256:")}}
    ]
    bare = foundry(
        "traces", "convert", "--format", "intoto", "--trace", str(ran.trace),
        "--artifact", str(ran.artifact), cwd=ran.root,
    )  # fmt: skip
    assert bare.returncode == 0, bare.stderr
    without = json.loads(bare.stdout)
    assert "inputs" not in without["predicate"]["buildDefinition"]["externalParameters"]
    del external["inputs"]
    assert without == statement


def test_otlp_carries_effects_only_with_the_artifact(runs: dict[str, Ran]) -> None:
    ran = runs["report"]
    bare = foundry("traces", "convert", "--format", "otlp", "--trace", str(ran.trace), cwd=ran.root)
    assert bare.returncode == 0, bare.stderr
    assert b"foundry.block.effects" not in bare.stdout
    assert b'"stringValue": "idempotent"' in convert(ran, "otlp")


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_trace_can_come_on_stdin(runs: dict[str, Ran], fmt: str) -> None:
    ran = runs["report"]
    out = foundry(
        "traces", "convert", "--format", fmt, "--trace", "-", "--artifact", str(ran.artifact),
        "--inputs-from-ledger", str(ran.ledger), cwd=ran.root, stdin=ran.trace.read_bytes(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == convert(ran, fmt)


def test_the_markdown_is_the_summary_reconcile_commits(world: World) -> None:
    """From the traces branch and the claim, as the web interface reads them: the `.md` beside
    the trace, byte for byte; the in-toto statement from the claim's artifact and ledger."""
    world.add_intent("notes", inputs="    inputs: {who: {type: string, default: bob}}\n")
    world.merge("add notes")
    run = world.reconcile()
    assert run.code == 0, run.result.err
    execution = only_execution(run)
    path = world.traces()[execution]
    files = world.tmp / "from-git"
    files.mkdir()
    trace = files / "trace.json"
    trace.write_bytes(git_bytes(world, f"alloy/traces:{path}"))
    claim = f"refs/alloy/claims/{execution}"
    (files / "artifact.json").write_bytes(git_bytes(world, f"{claim}:artifact.json"))
    (files / "ledger.jsonl").write_bytes(git_bytes(world, f"{claim}:ledger.jsonl"))
    markdown = foundry("traces", "convert", "--format", "markdown", "--trace", "-",
                       cwd=files, stdin=trace.read_bytes())  # fmt: skip
    assert markdown.returncode == 0, markdown.stderr
    summary = git_bytes(world, f"alloy/traces:{path.removesuffix('.json')}.md")
    assert markdown.stdout == summary
    intoto = foundry(
        "traces", "convert", "--format", "intoto", "--trace", "trace.json",
        "--artifact", "artifact.json", "--inputs-from-ledger", "ledger.jsonl", cwd=files,
    )  # fmt: skip
    assert intoto.returncode == 0, intoto.stderr
    statement = json.loads(intoto.stdout)
    external = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert external["inputs"] == {"who": "bob"}  # the default, as the ledger planned it
    assert statement["predicate"]["runDetails"]["metadata"]["invocationId"] == execution
    assert [s["name"] for s in statement["subject"]] == ["out.txt"]


def git_bytes(world: World, spec: str) -> bytes:
    return subprocess.run(
        ["git", "cat-file", "blob", spec], cwd=world.bare, capture_output=True, check=True
    ).stdout


# --- bad input: exit 1, one line naming the file and the fix -----------------------------------


def _edited(source: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(source.read_text())
    edit(document)
    target.write_text(json.dumps(document))


def _tamper(artifact: dict[str, Any]) -> None:
    artifact["spec"]["blocks"][0]["run"] = ["rm", "-rf", "/"]


def _bad_status(trace: dict[str, Any]) -> None:
    trace["spec"]["status"] = "done"


#: case -> (the arguments after `traces convert`, what stderr says after `foundry: error: `),
#: both formatted with the paths of the runs and of a scratch directory `d`; stdin is empty.
BAD: dict[str, tuple[str, str]] = {
    "not JSON": (
        "--format markdown --trace {d}/notes.txt",
        (
            "{d}/notes.txt: not valid JSON: Expecting value: line 1 column 1 (char 0); --trace "
            "takes a Trace document (alloy.dev/v1 JSON: traces/<intent>/<execution>.json on the "
            "traces branch, or `foundry traces export EXECUTION`)"
        ),
    ),
    "empty stdin": (
        "--format otlp --trace -",
        "<stdin>: not valid JSON: Expecting value: line 1 column 1 (char 0); --trace takes",
    ),
    "an artifact, not a trace": (
        "--format markdown --trace {artifact}",
        "{artifact}: kind 'Artifact' where Trace was expected; --trace takes a Trace document",
    ),
    "a trace with an unknown status": (
        "--format otlp --trace {d}/status.json",
        (
            "{d}/status.json: spec.status: Input should be 'planned', 'queued', 'running', "
            "'waiting', 'succeeded', 'failed', 'cancelled', 'indeterminate' or 'skipped'; "
            "--trace takes"
        ),
    ),
    "no such file": (
        "--format markdown --trace {d}/gone.json",
        "{d}/gone.json: cannot be read (No such file or directory)",
    ),
    "intoto without the artifact": (
        "--format intoto --trace {trace}",
        (
            "{trace}: --format intoto needs the artifact execution {exe} ran (report@{digest}): "
            "pass it with --artifact FILE (the artifact.json of its claim or of its state "
            "directory)"
        ),
    ),
    "intoto of an execution without outputs": (
        "--format intoto --trace {quiet} --artifact {quiet_artifact}",
        (
            "{quiet}: execution {quiet_exe} produced no outputs; an in-toto statement needs at "
            "least one subject"
        ),
    ),
    "an artifact whose digest does not match": (
        "--format intoto --trace {trace} --artifact {d}/tampered.json",
        (
            "{d}/tampered.json: digest does not match the content (edited by hand?); run `alloy "
            "compile` and review the change; --artifact takes the artifact the execution ran, "
            "unchanged (the artifact.json of its claim or of its state directory)"
        ),
    ),
    "the artifact of another intent": (
        "--format markdown --trace {trace} --artifact {root}/.alloy/artifacts/other.json",
        (
            "{root}/.alloy/artifacts/other.json: holds artifact other@{other} (intent other), "
            "but {trace} is an execution of report@{digest} (intent report); --artifact takes "
            "the artifact the execution ran"
        ),
    ),
    "the ledger of another execution": (
        "--format intoto --trace {trace} --artifact {artifact} --inputs-from-ledger {quiet_ledger}",
        (
            "{quiet_ledger}: the ledger of execution {quiet_exe} (artifact quiet), but {trace} "
            "is execution {exe} (artifact report); --inputs-from-ledger takes the execution's "
            "ledger"
        ),
    ),
    "a trace as the ledger": (
        "--format intoto --trace {trace} --artifact {artifact} --inputs-from-ledger {trace}",
        "{trace}: line 1 is not a JSON object; --inputs-from-ledger takes the execution's ledger",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_naming_the_file_and_the_fix(
    runs: dict[str, Ran], tmp_path: Path, case: str
) -> None:
    report, quiet = runs["report"], runs["quiet"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "notes.txt").write_text("not json")
    _edited(report.trace, scratch / "status.json", _bad_status)
    _edited(report.artifact, scratch / "tampered.json", _tamper)
    paths = {
        "d": scratch,
        "trace": report.trace,
        "artifact": report.artifact,
        "root": report.root,
        "exe": report.execution,
        "digest": json.loads(report.artifact.read_text())["digest"],
        "other": json.loads((report.root / ".alloy/artifacts/other.json").read_text())["digest"],
        "quiet": quiet.trace,
        "quiet_artifact": quiet.artifact,
        "quiet_exe": quiet.execution,
        "quiet_ledger": quiet.ledger,
    }
    args, said = BAD[case]
    out = foundry("traces", "convert", *args.format(**paths).split(), cwd=tmp_path, stdin=b"")
    err = out.stderr.decode()
    assert out.returncode == 1, err
    assert out.stdout == b""
    assert "Traceback" not in err
    assert err.endswith("\n"), err
    assert err.count("\n") == 1, err
    assert err.startswith(f"foundry: error: {said.format(**paths)}"), err


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in (["--format", "yaml", "--trace", "-"], ["--format", "markdown"]):
        out = foundry("traces", "convert", *args, cwd=tmp_path, stdin=b"")
        assert out.returncode == 2, out.stderr


# --- Foundry's reader of a Trace agrees with the boundary's schema -----------------------------


def _golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())  # type: ignore[no-any-return]


def _drop(*path: str | int) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


def _set(value: Any, *path: str | int) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "as written": lambda doc: None,
    "no startedAt": _drop("spec", "startedAt"),
    "no finishedAt": _drop("spec", "finishedAt"),
    "no blocks, gates or evidence": lambda doc: [
        doc["spec"].pop(k) for k in ("blocks", "gates", "evidence")
    ],
    "a reason": _set("why not", "spec", "reason"),
    "an attempt with only its start": _set(
        [{"number": 1, "startedAt": "2026-11-25T02:00:03.5Z"}], "spec", "blocks", 1, "attempts"
    ),
    "unknown top-level field": _set(1, "extra"),
    "unknown spec field": _set({}, "spec", "inputs"),
    "unknown attempt field": _set("x", "spec", "blocks", 0, "attempts", 0, "host"),
    "unknown status": _set("done", "spec", "status"),
    "unknown block status": _set("ok", "spec", "blocks", 0, "status"),
    "unknown event type": _set("cron", "spec", "event", "type"),
    "unknown gate kind": _set("vote", "spec", "gates", 0, "kind"),
    "bad execution id": _set("exe-1", "metadata", "name"),
    "bad digest": _set("sha256:00", "spec", "artifact", "digest"),
    "bad time": _set("2026-11-25 02:00:03", "spec", "startedAt"),
    "no intent": _drop("spec", "intent"),
    "no gate reason": _drop("spec", "gates", 0, "reason"),
    "no output size": _drop("spec", "blocks", 0, "outputs", 0, "size"),
    "negative size": _set(-1, "spec", "blocks", 0, "outputs", 0, "size"),
    "attempt number 0": _set(0, "spec", "blocks", 0, "attempts", 0, "number"),
    "a float duration": _set(1.5, "spec", "blocks", 0, "attempts", 0, "durationMs"),
    "exit code as text": _set("0", "spec", "blocks", 0, "attempts", 0, "exitCode"),
    "another kind": _set("Artifact", "kind"),
    "another version": _set("alloy.dev/v2", "apiVersion"),
}


@pytest.mark.parametrize("case", sorted(EDITS))
def test_the_reader_accepts_exactly_what_the_schema_accepts(case: str) -> None:
    document = copy.deepcopy(_golden())
    EDITS[case](document)
    data = json.dumps(document).encode()
    try:
        jsonschema.validate(document, SCHEMA)
        schema_ok = True
    except jsonschema.ValidationError:
        schema_ok = False
    if not schema_ok:
        with pytest.raises(BoundaryError, match=r"^t\.json: "):
            read_trace("t.json", data)
        return
    read = read_trace("t.json", data)
    assert read == document
    # Whatever the reader accepts renders (in-toto needs outputs and the artifact).
    for fmt in ("markdown", "otlp"):
        assert convert_trace(fmt, InputFile("t.json", data))


def test_the_reader_refuses_what_no_foundry_writes() -> None:
    """Stricter than the schema's patterns: a time must be a real one; keys are unique."""
    impossible = _golden()
    impossible["spec"]["finishedAt"] = "2026-02-30T00:00:00Z"
    jsonschema.validate(impossible, SCHEMA)
    with pytest.raises(BoundaryError, match=r"spec.finishedAt: '2026-02-30T00:00:00Z' is not a"):
        read_trace("t.json", json.dumps(impossible).encode())
    twice = GOLDEN.read_bytes().replace(b'"kind": "Trace",', b'"kind": "Trace", "kind": "Trace",')
    with pytest.raises(BoundaryError, match="duplicate key 'kind'"):
        read_trace("t.json", twice)
