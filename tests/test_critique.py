"""`alloy critique` end to end: the real CLI on real git repositories. Each finding kind on an
intent crafted to show exactly it, none on a good one; stale evidence from real traces (made by
`foundry run`, committed to the traces branch); the external assistant as a real script (its
answer merged, bad answers and timeouts reported, never run unless configured, never taken from
the work tree); and `alloy new intent`'s follow-up questions through stdin."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from alloy.critique import (
    KINDS,
    goal_question,
    is_measurable,
    statement_question,
    suggestions_schema,
    vague_words,
)
from alloy.model import Project
from controllers.git import resolve_commit
from tests.conftest import GitRepo, Result, git, run_cli
from tests.test_status import export, foundry_run

ROOT = Path(__file__).resolve().parent.parent
PY = json.dumps(sys.executable)  # a YAML (flow) string of the interpreter's path

GOOD_GOAL = "Every push to main is built within 10 minutes."
GOOD_RATIONALE = "A broken main blocks every team; an hour of it costs a day of work."


def doc(
    name: str,
    *,
    state: str = "active",
    owners: str = "[alice, bob]",
    goal: str = GOOD_GOAL,
    rationale: str | None = GOOD_RATIONALE,
    acceptance: str | None = None,
    relations: str = "",
    blocks: str | None = None,
    automation: bool = True,
) -> str:
    """An intent that draws no finding unless a part of it is replaced."""
    if acceptance is None:
        acceptance = (
            "    - id: AC-1\n"
            "      statement: The build writes out.txt within 10 minutes.\n"
            "      evidence: {block: build, output: out.txt}\n"
        )
    if blocks is None:
        blocks = (
            "      - id: build\n"
            f"        run: [{PY}, -c, \"open('out.txt', 'w').write('built')\"]\n"
            "        effects: none\n"
            "        outputs: [out.txt]\n"
        )
    text = (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  owners: {owners}\n"
        "spec:\n"
        f"  state: {state}\n"
        f"  goal: {goal}\n"
    )
    if rationale is not None:
        text += f"  rationale: {rationale}\n"
    text += "  acceptance:\n" + acceptance if acceptance else "  acceptance: []\n"
    text += relations
    if automation:
        text += "  automation:\n    on: {apply: true, request: true}\n    blocks:\n" + blocks
    return text


def alloy(repo: GitRepo, *args: str, env: dict[str, str] | None = None) -> Result:
    return run_cli("alloy", *args, cwd=repo.path, env=env)


def critique_json(repo: GitRepo, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = alloy(repo, "critique", "--format", "json", *args, env=env)
    assert result.code == 0, result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


def kinds(report: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((f["intent"], f["kind"]) for f in report["findings"])


def line_of(repo: GitRepo, name: str, text: str, after: str | None = None) -> int:
    """The 1-based line of the first line of intent `name` that starts with `text` (after
    stripping indentation), counting from the first line that contains `after`."""
    lines = (repo.path / f".alloy/intents/{name}.yaml").read_text().splitlines()
    start = 0 if after is None else next(i for i, line in enumerate(lines) if after in line)
    return next(i for i in range(start, len(lines)) if lines[i].strip().startswith(text)) + 1


# --- the detectors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        GOOD_GOAL,
        "p95 page load under 2 s.",
        "Catch performance regressions within a day of the change.",
        "No release waits more than one day for review.",
        "Error rate < 0.1%.",
        "The benchmarks run nightly.",
    ],
)
def test_measurable_texts(text: str) -> None:
    assert is_measurable(text)
    assert goal_question(text) is None


@pytest.mark.parametrize(
    "text", ["Make the build better.", "The site is fast and user-friendly.", "Improve quality."]
)
def test_unmeasurable_texts(text: str) -> None:
    assert not is_measurable(text)
    assert goal_question(text) is not None


def test_vague_words_are_found_once_each_with_a_question() -> None:
    found = vague_words("Fast, robust, scalable, user-friendly, appropriate logs as needed, etc.")
    assert [v.word for v in found] == [
        "Fast",
        "robust",
        "scalable",
        "user-friendly",
        "appropriate",
        "as needed",
        "etc.",
    ]
    assert all(v.question for v in found)
    assert [v.word for v in vague_words("quickly, QUICKLY and soon; breakfast is steadfast")] == [
        "quickly",
        "soon",
    ]
    assert statement_question("The page loads in 2 s.") is None
    question = statement_question("The page loads quickly.")
    assert question is not None
    assert question.startswith("'quickly': How fast")


# --- every finding, and none on a good intent ----------------------------------------------------


def test_a_good_intent_has_no_findings(repo: GitRepo) -> None:
    repo.write(
        {
            ".alloy/intents/good.yaml": doc(
                "good",
                relations="  relations:\n    supersedes: [old]\n",
                blocks=(
                    "      - id: build\n"
                    "        run: [make]\n"
                    "        effects: irreversible\n"
                    "        outputs: [out.txt]\n"
                    "        gates:\n"
                    "          - approval: {from: [alice, bob]}\n"
                ),
            ),
            ".alloy/intents/old.yaml": doc("old", state="deprecated"),
        }
    )
    repo.commit("good intents")
    assert alloy(repo, "check").code == 0
    report = critique_json(repo)
    assert report["findings"] == []
    assert report["intents"] == ["good", "old"]
    assert report["counts"] == {"warning": 0, "info": 0}
    assert report["assistant"] is None
    assert report["traces"]["found"] is False
    text = alloy(repo, "critique")
    assert (text.code, text.out) == (0, "")
    assert "no findings in 2 intents" in text.err
    assert "no traces (branch alloy/traces not found)" in text.err
    one = alloy(repo, "critique", "good")
    assert (one.code, one.out) == (0, "")
    assert "no findings in 1 intent" in one.err


def test_each_finding_on_a_crafted_intent(repo: GitRepo) -> None:
    irreversible = (
        "      - id: deploy\n"
        "        run: [make, deploy]\n"
        "        effects: irreversible\n"
        "        outputs: [out.txt]\n"
        "        gates:\n"
        "          - approval: {from: [alice]}\n"
    )
    repo.write(
        {
            ".alloy/intents/unmeasurable.yaml": doc("unmeasurable", goal="Make the build better."),
            ".alloy/intents/vague.yaml": doc(
                "vague",
                acceptance=(
                    "    - id: AC-1\n"
                    "      statement: Pages load quickly and the UI is user-friendly.\n"
                    "      evidence: {block: build, output: out.txt}\n"
                ),
            ),
            ".alloy/intents/no-why.yaml": doc("no-why", rationale=None),
            ".alloy/intents/no-criteria.yaml": doc("no-criteria", acceptance=""),
            ".alloy/intents/unlinked.yaml": doc(
                "unlinked",
                acceptance=(
                    "    - id: AC-1\n"
                    "      statement: The build writes out.txt within 10 minutes.\n"
                    "      evidence: {block: build, output: out.txt}\n"
                    "    - id: AC-2\n"
                    "      statement: Someone reads the report every week.\n"
                ),
            ),
            ".alloy/intents/unproduced.yaml": doc(
                "unproduced",
                acceptance=(
                    "    - id: AC-1\n"
                    "      statement: The report is written every night.\n"
                    "      evidence: {block: build, output: report.json}\n"
                ),
            ),
            ".alloy/intents/lone.yaml": doc(
                "lone",
                owners="[alice]",
                acceptance=(
                    "    - id: AC-1\n"
                    "      statement: The deploy writes out.txt within 10 minutes.\n"
                    "      evidence: {block: deploy, output: out.txt}\n"
                ),
                blocks=irreversible,
            ),
            ".alloy/intents/successor.yaml": doc(
                "successor", relations="  relations:\n    supersedes: [predecessor]\n"
            ),
            ".alloy/intents/predecessor.yaml": doc("predecessor", state="accepted"),
            ".alloy/intents/head.yaml": doc(
                "head", relations="  relations:\n    supersedes: [middle]\n"
            ),
            ".alloy/intents/middle.yaml": doc(
                "middle",
                state="deprecated",
                relations="  relations:\n    supersedes: [tail]\n",
            ),
            ".alloy/intents/tail.yaml": doc("tail"),
        }
    )
    repo.commit("crafted intents")
    report = critique_json(repo)
    assert kinds(report) == [
        ("head", "supersedes-active"),
        ("lone", "owner-single"),
        ("no-criteria", "acceptance-missing"),
        ("no-why", "rationale-missing"),
        ("successor", "supersedes-active"),
        ("unlinked", "acceptance-no-evidence"),
        ("unmeasurable", "goal-unmeasurable"),
        ("unproduced", "evidence-unproduced"),
        ("vague", "vague-word"),
    ]
    # Every kind alloy reports by itself is documented.
    documented = (ROOT / "docs" / "critique.md").read_text()
    for kind in KINDS:
        assert f"`{kind}`" in documented, kind
    by = {f["intent"]: f for f in report["findings"]}
    for finding in report["findings"]:
        assert finding["source"] == "alloy"
        assert finding["path"] == f".alloy/intents/{finding['intent']}.yaml"
        assert finding["message"]
        assert finding["suggestion"]

    f = by["unmeasurable"]
    assert (f["severity"], f["field"]) == ("warning", "spec.goal")
    assert f["line"] == line_of(repo, "unmeasurable", "goal:")
    assert "'Make the build better.'" in f["message"]
    assert f["suggestion"].startswith("What number tells you this holds?")

    f = by["vague"]
    assert (f["severity"], f["field"]) == ("warning", "spec.acceptance[AC-1].statement")
    assert f["line"] == line_of(repo, "vague", "statement:")
    assert "'quickly', 'user-friendly'" in f["message"]
    assert "'quickly': How fast" in f["suggestion"]
    assert "'user-friendly':" in f["suggestion"]

    f = by["no-why"]
    assert (f["severity"], f["field"]) == ("info", "spec.rationale")
    assert f["line"] == line_of(repo, "no-why", "spec:")

    f = by["no-criteria"]
    assert (f["severity"], f["field"]) == ("warning", "spec.acceptance")
    assert f["line"] == line_of(repo, "no-criteria", "acceptance:")

    f = by["unlinked"]
    assert (f["severity"], f["field"]) == ("warning", "spec.acceptance[AC-2]")
    assert f["line"] == line_of(repo, "unlinked", "- id: AC-2")
    assert "evidence: {block: build, output: out.txt}" in f["suggestion"]

    f = by["unproduced"]
    assert (f["severity"], f["field"]) == ("warning", "spec.acceptance[AC-1].evidence.output")
    assert f["line"] == line_of(repo, "unproduced", "evidence:")
    assert "block 'build' declares no such output (it declares out.txt)" in f["message"]
    assert "Add 'report.json' to the outputs of block 'build'" in f["suggestion"]
    # The loader refuses it too; critique reads the intent anyway, to explain it.
    assert alloy(repo, "check").code == 1

    f = by["lone"]
    assert (f["severity"], f["field"]) == ("warning", "metadata.owners")
    assert f["line"] == line_of(repo, "lone", "owners:")
    assert "one owner (alice)" in f["message"]
    assert "irreversible: deploy" in f["message"]

    f = by["successor"]
    assert (f["severity"], f["field"]) == ("warning", "spec.relations.supersedes[0]")
    assert f["line"] == line_of(repo, "successor", "supersedes:")
    assert "supersedes predecessor, which is still accepted" in f["message"]
    f = by["head"]
    assert "supersedes tail (through middle), which is still active" in f["message"]

    # Text: `path:line: severity: kind: message`, then the suggestion.
    text = alloy(repo, "critique")
    assert text.code == 0, text.err
    assert (
        f".alloy/intents/unmeasurable.yaml:{by['unmeasurable']['line']}: warning: "
        "goal-unmeasurable: the goal 'Make the build better.' says nothing measurable"
    ) in text.out
    assert "    -> What number tells you this holds?" in text.out
    assert "9 finding(s) (8 warning(s), 1 info) in 12 intents" in text.err

    # One intent at a time; the supersedes chain is still followed through the others.
    one = critique_json(repo, "head")
    assert one["intents"] == ["head"]
    assert kinds(one) == [("head", "supersedes-active")]


def test_vague_goal_and_owners_from_the_project(repo: GitRepo) -> None:
    """A vague goal draws both its findings; an intent without owners falls back on the
    project's, which here is one person."""
    repo.write(
        {
            ".alloy/intents/site.yaml": doc(
                "site",
                owners="[]",
                goal="The site is fast and robust.",
                blocks=(
                    "      - id: build\n"
                    "        run: [make]\n"
                    "        effects: irreversible\n"
                    "        outputs: [out.txt]\n"
                    "        gates:\n"
                    "          - approval: {from: [alice]}\n"
                ),
            )
        }
    )
    report = critique_json(repo)
    assert kinds(report) == [
        ("site", "goal-unmeasurable"),
        ("site", "owner-single"),
        ("site", "vague-word"),
    ]
    vague = next(f for f in report["findings"] if f["kind"] == "vague-word")
    assert vague["field"] == "spec.goal"
    assert "'fast', 'robust'" in vague["message"]
    owner = next(f for f in report["findings"] if f["kind"] == "owner-single")
    assert "one owner (alice, from the project)" in owner["message"]
    # A number next to the vague word makes it a note, not a warning.
    repo.write(
        {".alloy/intents/site.yaml": doc("site", goal="The site is fast, p95 under 300 ms.")}
    )
    [finding] = critique_json(repo)["findings"]
    assert (finding["kind"], finding["severity"]) == ("vague-word", "info")


def test_a_proposed_intent_without_automation(repo: GitRepo) -> None:
    """What `alloy new intent` writes: criteria cannot be linked yet (a note, not a warning)."""
    result = alloy(
        repo,
        "new",
        "intent",
        "draft",
        "--goal",
        "Releases ship within 1 day of the tag.",
        "--rationale",
        "Users wait for fixes.",
        "--owner",
        "alice",
        "--acceptance",
        "The release job runs within 1 hour of each tag.",
        "--no-input",
    )
    assert result.code == 0, result.err
    report = critique_json(repo)
    assert [(f["kind"], f["severity"]) for f in report["findings"]] == [
        ("acceptance-no-evidence", "info")
    ]


def test_unknown_name_invalid_intent_and_usage(repo: GitRepo) -> None:
    repo.write(
        {
            ".alloy/intents/build.yaml": doc("build"),
            ".alloy/intents/deploy.yaml": doc("deploy"),
            ".alloy/intents/broken.yaml": doc("broken").replace("state: active", "state: done"),
        }
    )
    unknown = alloy(repo, "critique", "biuld")
    assert unknown.code == 1
    assert "no intent named 'biuld'" in unknown.err
    assert "did you mean 'build'?" in unknown.err
    assert "the intents are: broken, build, deploy" in unknown.err
    assert unknown.out == ""

    broken = alloy(repo, "critique", "broken")
    assert broken.code == 1
    assert ".alloy/intents/broken.yaml" in broken.err
    assert "spec.state" in broken.err

    every = alloy(repo, "critique", "--format", "json")
    assert every.code == 0, every.err
    report = json.loads(every.out)
    assert report["intents"] == ["build", "deploy"]
    assert any("broken" in note and "alloy check" in note for note in report["notes"])

    assert alloy(repo, "critique", "--format", "yaml").code == 2
    bad = alloy(repo, "critique", "--stale-after", "a month")
    assert bad.code == 2
    assert "--stale-after" in bad.err
    assert alloy(repo, "critique", "build", "deploy").code == 2


# --- stale evidence, from real traces ------------------------------------------------------------


# `foundry_run` and `export` are the status tests' own (real `foundry run`, real export).


def commit_traces(path: Path, files: dict[str, bytes], branch: str = "alloy/traces") -> None:
    """Commit `files` onto `branch` with git plumbing, as a publisher of traces does (the work
    tree and the index are never touched)."""
    index = path / ".git" / "critique-traces-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}

    def run(*args: str, data: bytes | None = None) -> str:
        out = subprocess.run(
            ["git", *args], cwd=path, env=env, input=data, capture_output=True, check=True
        )
        return out.stdout.decode().strip()

    parent = resolve_commit(path, [f"refs/heads/{branch}"])
    index.unlink(missing_ok=True)
    run("read-tree", parent[1] if parent else "--empty")
    for rel, data in files.items():
        blob = run("hash-object", "-w", "--stdin", data=data)
        run("update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}")
    tree = run("write-tree")
    commit = run("commit-tree", tree, *(["-p", parent[1]] if parent else []), "-m", "traces")
    run("update-ref", f"refs/heads/{branch}", commit)
    index.unlink()


def build_intent(*, fail: bool = False) -> str:
    code = "import sys; sys.exit(3)" if fail else "open('out.txt', 'w').write('built')"
    return doc(
        "build",
        blocks=(
            "      - id: build\n"
            f'        run: [{PY}, -c, "{code}"]\n'
            "        effects: none\n"
            "        outputs: [out.txt]\n"
        ),
    )


def stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_stale_evidence_from_real_traces(repo: GitRepo, tmp_path: Path) -> None:
    repo.write({".alloy/intents/build.yaml": build_intent()})
    assert alloy(repo, "compile").code == 0
    repo.commit("intent")
    state = tmp_path / "state"
    first = foundry_run(repo, state)
    real = export(repo, state, first)
    commit_traces(repo.path, {f"traces/build/{first}.json": real})

    # Just produced: fresh, no finding.
    report = critique_json(repo)
    assert report["findings"] == []
    assert report["traces"]["found"] is True
    assert report["traces"]["ref"] == "refs/heads/alloy/traces"
    # The same trace, judged with a threshold it has outlived.
    time.sleep(1.2)
    [finding] = critique_json(repo, "--stale-after", "1s")["findings"]
    assert (finding["kind"], finding["severity"]) == ("evidence-stale", "warning")
    assert finding["field"] == "spec.acceptance[AC-1].evidence"
    assert finding["line"] == line_of(repo, "build", "evidence:")
    assert "was last produced " in finding["message"]
    assert f"ago, by {first}; older than 1 second" in finding["message"]

    # The same execution, as if it had run 40 days ago: stale under the default 30 days.
    trace = json.loads(real)
    old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=40, minutes=1)
    trace["spec"]["startedAt"] = stamp(old)
    trace["spec"]["finishedAt"] = stamp(old + datetime.timedelta(seconds=1))
    commit_traces(repo.path, {f"traces/build/{first}.json": json.dumps(trace).encode()})
    [finding] = critique_json(repo)["findings"]
    assert finding["kind"] == "evidence-stale"
    assert f"last produced 40 days ago, by {first}; older than 30 days" in finding["message"]
    text = alloy(repo, "critique", "build")
    assert "warning: evidence-stale: the evidence of acceptance AC-1 (build/out.txt)" in text.out

    # The build breaks: the evidence is missing in the latest finished execution.
    repo.write({".alloy/intents/build.yaml": build_intent(fail=True)})
    assert alloy(repo, "compile").code == 0
    repo.commit("break the build")
    failing = foundry_run(repo, state)
    commit_traces(repo.path, {f"traces/build/{failing}.json": export(repo, state, failing)})
    [finding] = critique_json(repo)["findings"]
    assert finding["kind"] == "evidence-stale"
    assert f"missing in the latest finished execution, {failing} (failed" in finding["message"]
    assert f"last produced 40 days ago by {first}" in finding["message"]
    assert f"traces/build/{failing}.md" in finding["suggestion"]

    # A proposed (or retired) intent is not expected to keep its evidence fresh.
    repo.write({".alloy/intents/build.yaml": build_intent().replace("active", "deprecated")})
    assert critique_json(repo)["findings"] == []


def test_evidence_never_produced_and_unreadable_traces(repo: GitRepo, tmp_path: Path) -> None:
    repo.write({".alloy/intents/build.yaml": build_intent(fail=True)})
    assert alloy(repo, "compile").code == 0
    repo.commit("intent")
    failing = foundry_run(repo, tmp_path / "state")
    commit_traces(
        repo.path,
        {
            f"traces/build/{failing}.json": export(repo, tmp_path / "state", failing),
            "traces/build/exe-0000000000000001.json": b"{not json",
        },
        branch="elsewhere",
    )
    report = critique_json(repo, "--traces-branch", "elsewhere")
    [finding] = report["findings"]
    assert "no execution has produced it yet" in finding["message"]
    [warning] = report["warnings"]
    assert "exe-0000000000000001.json: not JSON" in warning
    # Without the option, the project's traces branch (which does not exist) is read.
    assert critique_json(repo)["findings"] == []


# --- the external assistant ----------------------------------------------------------------------

ASSISTANT = """\
import json, os, sys, time
mode = {mode!r}
request = json.load(sys.stdin)
with open({log!r}, "a") as fh:
    fh.write(json.dumps({{"cwd": os.getcwd(), "request": request}}) + "\\n")
if mode == "valid":
    json.dump({{"version": 1, "suggestions": [
        {{"kind": "tone", "severity": "warning", "field": "spec.goal",
          "message": "The goal of " + request["name"] + " reads like a task.",
          "suggestion": "Say what is true once it is done."}},
        {{"kind": "ask-owner", "message": "Who runs it at night?",
          "suggestion": "Name the on-call team."}}]}}, sys.stdout)
elif mode == "not-json":
    print("Sure! Here are my thoughts: the goal is fine.")
elif mode == "bad-schema":
    json.dump({{"version": 1, "suggestions": [
        {{"kind": "tone", "severity": "high", "message": "m", "suggestion": "s"}}]}}, sys.stdout)
elif mode == "fails":
    print("model unavailable", file=sys.stderr)
    sys.exit(3)
elif mode == "sleeps":
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open({log!r} + ".pids", "w") as fh:
        fh.write(f"{{os.getpid()}} {{child.pid}}")
    time.sleep(120)
"""


def assistant_script(tmp_path: Path, mode: str) -> tuple[Path, Path]:
    script = tmp_path / f"assistant-{mode}.py"
    log = tmp_path / f"assistant-{mode}.log"
    script.write_text(ASSISTANT.format(mode=mode, log=str(log)))
    return script, log


def user_config(tmp_path: Path, command: list[str], timeout: str | None = None) -> dict[str, str]:
    """An XDG config home whose alloy/config.yaml names `command`; the env to pass."""
    home = tmp_path / "xdg"
    (home / "alloy").mkdir(parents=True, exist_ok=True)
    body = {"assistant": {"command": command, **({"timeout": timeout} if timeout else {})}}
    (home / "alloy" / "config.yaml").write_text(json.dumps(body))
    return {"XDG_CONFIG_HOME": str(home)}


def requests_seen(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] not in ("Z", "X")  # a zombie has been killed, only not reaped yet


def test_assistant_suggestions_are_merged(repo: GitRepo, tmp_path: Path) -> None:
    repo.write(
        {
            ".alloy/intents/build.yaml": doc("build"),
            ".alloy/intents/vague.yaml": doc("vague", goal="Make the build better."),
        }
    )
    script, log = assistant_script(tmp_path, "valid")
    env = user_config(tmp_path, [sys.executable, str(script)])
    report = critique_json(repo, env=env)
    assert report["assistant"] == {
        "command": [sys.executable, str(script)],
        "from": f"assistant.command of {tmp_path / 'xdg' / 'alloy' / 'config.yaml'}",
    }
    assert kinds(report) == [
        ("build", "assistant:ask-owner"),
        ("build", "assistant:tone"),
        ("vague", "assistant:ask-owner"),
        ("vague", "assistant:tone"),
        ("vague", "goal-unmeasurable"),
    ]
    tone = next(
        f for f in report["findings"] if f["intent"] == "build" and f["kind"] == "assistant:tone"
    )
    assert tone == {
        "kind": "assistant:tone",
        "severity": "warning",
        "intent": "build",
        "path": ".alloy/intents/build.yaml",
        "line": line_of(repo, "build", "goal:"),
        "field": "spec.goal",
        "message": "The goal of build reads like a task.",
        "suggestion": "Say what is true once it is done.",
        "source": "assistant",
    }
    ask = next(
        f
        for f in report["findings"]
        if f["intent"] == "build" and f["kind"] == "assistant:ask-owner"
    )
    assert (ask["severity"], ask["field"], ask["line"]) == (
        "info",
        "metadata.name",
        line_of(repo, "build", "name:"),
    )
    # What it was given: one intent per run, as JSON, with alloy's own findings.
    seen = requests_seen(log)
    assert [s["request"]["name"] for s in seen] == ["build", "vague"]
    request = seen[1]["request"]
    assert request["protocol"] == 1
    assert request["path"] == ".alloy/intents/vague.yaml"
    assert request["intent"]["spec"]["goal"] == "Make the build better."
    assert request["intent"]["metadata"]["owners"] == ["alice", "bob"]
    assert [f["kind"] for f in request["findings"]] == ["goal-unmeasurable"]
    assert seen[0]["cwd"] == str(repo.path)  # the user's own command runs in the repository
    # --no-assistant: not run.
    log.unlink()
    assert critique_json(repo, "--no-assistant", env=env)["assistant"] is None
    assert not log.exists()
    text = alloy(repo, "critique", "build", env=env)
    assert "asked the assistant from assistant.command of" in text.err
    assert "warning: assistant:tone: The goal of build reads like a task." in text.out


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        ("not-json", "its output is not JSON"),
        (
            "bad-schema",
            (
                "does not follow schemas/assistant-suggestions.schema.json: "
                "suggestions.0.severity: Input should be 'warning' or 'info'"
            ),
        ),
        ("fails", "it exited with status 3: model unavailable"),
    ],
)
def test_invalid_assistant_output_is_one_finding(
    repo: GitRepo, tmp_path: Path, mode: str, problem: str
) -> None:
    repo.write({".alloy/intents/build.yaml": doc("build")})
    script, _ = assistant_script(tmp_path, mode)
    result = alloy(
        repo,
        "critique",
        "--format",
        "json",
        env=user_config(tmp_path, [sys.executable, str(script)]),
    )
    assert result.code == 0, result.err  # it advises; a broken assistant does not fail it
    [finding] = json.loads(result.out)["findings"]
    assert finding["kind"] == "assistant-error"
    assert finding["severity"] == "warning"
    assert finding["source"] == "alloy"
    assert finding["line"] == line_of(repo, "build", "name:")
    assert finding["message"].startswith("the assistant failed on build: ")
    assert problem in finding["message"]


def test_an_assistant_that_cannot_start(repo: GitRepo, tmp_path: Path) -> None:
    repo.write({".alloy/intents/build.yaml": doc("build")})
    env = user_config(tmp_path, [str(tmp_path / "no-such-assistant")])
    [finding] = critique_json(repo, env=env)["findings"]
    assert finding["kind"] == "assistant-error"
    assert "it cannot be started" in finding["message"]
    # A user config that is not valid is bad input.
    (tmp_path / "xdg" / "alloy" / "config.yaml").write_text("assistant: {comand: [x]}\n")
    bad = alloy(repo, "critique", env=env)
    assert bad.code == 1
    assert "config.yaml" in bad.err
    assert "assistant.command" in bad.err


def test_an_assistant_past_its_timeout_is_killed(repo: GitRepo, tmp_path: Path) -> None:
    repo.write({".alloy/intents/build.yaml": doc("build")})
    script, log = assistant_script(tmp_path, "sleeps")
    env = user_config(tmp_path, [sys.executable, str(script)], timeout="3s")
    started = time.monotonic()
    report = critique_json(repo, env=env)
    assert time.monotonic() - started < 60
    [finding] = report["findings"]
    assert finding["kind"] == "assistant-error"
    assert "it did not finish within 3s and was killed" in finding["message"]
    pids = [int(p) for p in Path(str(log) + ".pids").read_text().split()]
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids), "the assistant or its child outlived the timeout"
    # The default deadline is 10 seconds.
    settings = Project.model_validate(
        {
            "apiVersion": "alloy.dev/v1",
            "kind": "Project",
            "metadata": {"name": "p"},
            "spec": {"assistant": {"command": ["x"]}},
        }
    ).spec.assistant
    assert settings is not None
    assert settings.timeout == "10s"


def project_with_assistant(command: str) -> str:
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Project\n"
        "metadata:\n"
        "  name: test-project\n"
        "spec:\n"
        "  owners: [alice]\n"
        f"  assistant: {{command: [{PY}, {command}], timeout: 20s}}\n"
    )


def test_project_assistant_comes_from_the_default_branch(repo: GitRepo, tmp_path: Path) -> None:
    """`spec.assistant` runs as the default branch has it, in an export of that branch's tree:
    a branch that changes the command, or the script it names, changes nothing until merged."""
    log = tmp_path / "seen.log"
    honest = (
        "import json, os, sys\n"
        "request = json.load(sys.stdin)\n"
        f"open({str(log)!r}, 'a').write('main ' + request['name'] + ' ' + os.getcwd() + '\\n')\n"
        "json.dump({'version': 1, 'suggestions': []}, sys.stdout)\n"
    )
    repo.write(
        {
            ".alloy/alloy.yaml": project_with_assistant("tools/assist.py"),
            "tools/assist.py": honest,
            ".alloy/intents/build.yaml": doc("build"),
        }
    )
    repo.commit("the project's assistant")
    env = user_config(tmp_path, [])  # an empty user config directory: nothing there
    (tmp_path / "xdg" / "alloy" / "config.yaml").write_text("")
    report = critique_json(repo, env=env)
    assert report["findings"] == []
    assert report["assistant"]["from"].startswith("spec.assistant of .alloy/alloy.yaml on main (")
    [line] = log.read_text().splitlines()
    word, name, cwd = line.split(" ", 2)
    assert (word, name) == ("main", "build")
    assert not cwd.startswith(str(repo.path))  # an export, not the work tree
    assert not Path(cwd).exists()  # removed afterwards

    # A pull request's branch rewrites the script and points the project at another command.
    git(repo.path, "checkout", "-q", "-b", "feature")
    evil_marker = tmp_path / "evil"
    repo.write(
        {
            "tools/assist.py": f"open({str(evil_marker)!r}, 'w').write('ran')\n",
            "tools/other.py": f"open({str(evil_marker)!r}, 'w').write('ran')\n",
            ".alloy/alloy.yaml": project_with_assistant("tools/other.py"),
        }
    )
    repo.commit("change the assistant")
    result = alloy(repo, "critique", env=env)
    assert result.code == 0, result.err
    assert not evil_marker.exists()
    assert len(log.read_text().splitlines()) == 2  # main's script ran again
    assert "differs from the one on main; the default branch's is used" in result.err

    # With an origin remote, the default branch is origin/HEAD; without it, nothing runs.
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo.path, "remote", "add", "origin", str(bare))
    git(repo.path, "push", "-q", "origin", "main")
    git(repo.path, "fetch", "-q", "origin")
    unknown = alloy(repo, "critique", env=env)
    assert unknown.code == 0, unknown.err
    assert "spec.assistant is not run: the default branch is unknown" in unknown.err
    assert len(log.read_text().splitlines()) == 2
    git(repo.path, "remote", "set-head", "origin", "main")
    known = critique_json(repo, env=env)
    assert known["assistant"]["from"].startswith(
        "spec.assistant of .alloy/alloy.yaml on origin/main ("
    )
    assert len(log.read_text().splitlines()) == 3
    assert not evil_marker.exists()


def test_the_assistant_is_not_run_unless_configured(repo: GitRepo, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "assist.py"
    script.write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        'print(\'{"version": 1, "suggestions": []}\')\n'
    )
    repo.write({".alloy/intents/build.yaml": doc("build")})
    repo.commit("intent")
    empty = {"XDG_CONFIG_HOME": str(tmp_path / "empty-xdg")}
    report = critique_json(repo, env=empty)
    assert report["assistant"] is None
    assert not marker.exists()
    # Named only in the work tree (not committed to the default branch): not run.
    repo.write({".alloy/alloy.yaml": project_with_assistant(json.dumps(str(script)))})
    result = alloy(repo, "critique", env=empty)
    assert result.code == 0, result.err
    assert not marker.exists()
    assert "differs from the one on main" in result.err
    # Configured (user config): check, compile, status and review never run it.
    env = user_config(tmp_path, [sys.executable, str(script)])
    repo.commit("assistant")
    for args in (
        ("check",),
        ("compile",),
        ("status",),
        ("explain", "build"),
        ("review", "--base", "HEAD~1"),
    ):
        alloy(repo, *args, env=env)
        assert not marker.exists(), args
    assert critique_json(repo, env=env)["assistant"] is not None
    assert marker.exists()


def test_the_checked_in_schema_is_the_one_alloy_enforces(tmp_path: Path) -> None:
    """schemas/assistant-suggestions.schema.json matches the model (regenerate with
    `alloy critique --schema > schemas/assistant-suggestions.schema.json`), and a JSON Schema
    validator agrees with alloy on what is a valid answer."""
    import jsonschema  # type: ignore[import-untyped]

    from alloy.critique import Suggestions

    path = ROOT / "schemas" / "assistant-suggestions.schema.json"
    schema = json.loads(path.read_text())
    assert schema == suggestions_schema()
    printed = run_cli("alloy", "critique", "--schema", cwd=tmp_path)
    assert printed.code == 0
    assert json.loads(printed.out) == schema
    validator = jsonschema.Draft202012Validator(schema)
    answers: list[tuple[Any, bool]] = [
        ({"version": 1, "suggestions": []}, True),
        (
            {
                "version": 1,
                "suggestions": [
                    {
                        "kind": "tone",
                        "severity": "info",
                        "field": "spec.acceptance[AC-1].statement",
                        "message": "m",
                        "suggestion": "s",
                    }
                ],
            },
            True,
        ),
        ({"version": 2, "suggestions": []}, False),
        ({"suggestions": []}, False),
        ({"version": 1, "suggestions": [], "extra": 1}, False),
        (
            {"version": 1, "suggestions": [{"kind": "Tone", "message": "m", "suggestion": "s"}]},
            False,
        ),
        ({"version": 1, "suggestions": [{"kind": "t", "message": "", "suggestion": "s"}]}, False),
        ({"version": 1, "suggestions": [{"kind": "t", "message": "m"}]}, False),
        ([], False),
    ]
    for answer, valid in answers:
        assert validator.is_valid(answer) is valid, answer
        try:
            Suggestions.model_validate(answer)
            accepted = True
        except ValueError:
            accepted = False
        assert accepted is valid, answer


# --- alloy new intent asks the follow-up question ------------------------------------------------


def test_new_intent_asks_for_the_number_behind_a_vague_answer(repo: GitRepo) -> None:
    answers = (
        "The build is quick\n"  # title
        "Make the build better.\n"  # goal: nothing measurable
        "CI finishes in under 10 minutes\n"  # -> the number
        "Slow builds block every team.\n"  # rationale
        "alice, bob\n"  # owners
        "Builds finish quickly.\n"  # criterion 1: vague
        "p95 of builds on main under 10 minutes.\n"  # -> asked again
        "Every build writes its log.\n"  # criterion 2: fine
        "\n"
    )
    result = run_cli("alloy", "new", "intent", "quick-build", cwd=repo.path, stdin=answers)
    assert result.code == 0, result.err
    assert "What number tells you this holds?" in result.out
    assert "'quickly': How fast, exactly?" in result.out
    assert "Acceptance criterion 1 again, with the number" in result.out
    assert result.out.count("again, with the number") == 1  # only the vague one is asked again
    written = (repo.path / ".alloy/intents/quick-build.yaml").read_text()
    assert "goal: 'Make the build better: CI finishes in under 10 minutes'" in written
    assert "statement: p95 of builds on main under 10 minutes." in written
    assert "statement: Every build writes its log." in written
    assert "Builds finish quickly" not in written
    assert alloy(repo, "check").code == 0


def test_new_intent_keeps_the_answer_on_enter_and_asks_once(repo: GitRepo) -> None:
    answers = (
        "\n"  # no title
        "Make the build better.\n"
        "\n"  # Enter keeps the goal
        "\n"  # no rationale
        "alice\n"
        "It is fast.\n"
        "Still fast.\n"  # asked once: a still vague answer is taken as it is
        "\n"
    )
    result = run_cli("alloy", "new", "intent", "keep", cwd=repo.path, stdin=answers)
    assert result.code == 0, result.err
    assert result.out.count("What number tells you this holds?") == 1
    assert result.out.count("again, with the number") == 1
    written = (repo.path / ".alloy/intents/keep.yaml").read_text()
    assert "goal: Make the build better." in written
    assert "statement: Still fast." in written


def test_new_intent_with_flags_asks_nothing(repo: GitRepo) -> None:
    """Non-interactive use is unchanged: values given as options are never questioned."""
    result = run_cli(
        "alloy",
        "new",
        "intent",
        "flags",
        "--goal",
        "Make the build better.",
        "--acceptance",
        "It is fast.",
        "--no-input",
        cwd=repo.path,
        stdin="",
    )
    assert result.code == 0, result.err
    assert result.out == "created .alloy/intents/flags.yaml\n"
    report = critique_json(repo, "flags")
    assert kinds(report) == [
        ("flags", "acceptance-no-evidence"),
        ("flags", "goal-unmeasurable"),
        ("flags", "rationale-missing"),
        ("flags", "vague-word"),
    ]
