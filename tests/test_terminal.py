"""Text for people, on a real pseudo-terminal and piped: colour and rendered Markdown on a
terminal; plain text, no escape codes and no HTML when piped, with NO_COLOR or TERM=dumb. And the
reported defects of the CLIs' text, each through the real processes: blocks in the order they
ran, tables cut only with an ellipsis, artifacts with the umask's mode, connection errors with
their reason, `::error` only for what blocks, `alloy schema` listing the kinds."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import GitRepo, git, intent_yaml, run_cli
from tests.reconcile_support import World

ESC = "\x1b["
DEADLINE = 60.0


def run_pty(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None, columns: int = 160
) -> tuple[int, str]:
    """Run `alloy`/`foundry` with stdin, stdout and stderr on a new pseudo-terminal of
    `columns` columns; what it wrote there, and its exit code."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environ = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns)}
    environ.pop("NO_COLOR", None)
    environ.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=cwd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=environ,
        start_new_session=True,
    )
    os.close(slave)
    chunks = []
    end = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every end of the terminal is closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None and not select.select([master], [], [], 0.2)[0]:
                break
        code = proc.wait(timeout=DEADLINE)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, b"".join(chunks).decode("utf-8", "replace")


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


BLOCKS_OUT_OF_ORDER = (
    # Listed (and sorted by the artifact) as `announce`, `report`; `report` runs first.
    "      - id: announce\n"
    "        needs: [report]\n"
    "        run: [sh, -c, 'echo \"<b>ready</b> & done\"']\n"
    "        effects: none\n"
    "      - id: report\n"
    "        run: [sh, -c, 'echo report > out.txt']\n"
    "        effects: none\n"
    "        outputs: [out.txt]\n"
)


@pytest.fixture
def ran(repo: GitRepo, tmp_path: Path) -> tuple[Path, list[str]]:
    """A checkout whose intent ran once with `foundry run`; the state option for its traces."""
    repo.write({".alloy/intents/report.yaml": intent_yaml("report", blocks=BLOCKS_OUT_OF_ORDER)})
    assert run_cli("alloy", "compile", cwd=repo.path).code == 0
    repo.commit("compile")
    state = ["--state", str(tmp_path / "state")]
    done = run_cli("foundry", "run", "--artifact", "report", *state, cwd=repo.path)
    assert done.code == 0, done.err
    return repo.path, state


# --- on a terminal and piped ---------------------------------------------------------------


def test_traces_show_is_rendered_on_a_terminal(ran: tuple[Path, list[str]]) -> None:
    root, state = ran
    code, out = run_pty(["foundry", "traces", "show", *state], root)
    assert code == 0, out
    assert ESC in out  # colour and styles
    text = _plain(out)
    assert "succeeded" in text
    assert "**" not in text  # bold is bold, not asterisks
    assert "| --- |" not in text  # a table, not its Markdown
    assert "<details>" not in text
    assert "&amp;" not in text
    assert "<b>ready</b> & done" in text  # the block's output, as it printed it (a code block)
    assert "announce attempt 1: succeeded" in text  # what a <summary> said, as a line


def test_traces_show_piped_is_plain_text(ran: tuple[Path, list[str]]) -> None:
    root, state = ran
    result = run_cli("foundry", "traces", "show", *state, cwd=root)
    assert result.code == 0, result.err
    assert ESC not in result.out
    assert "<details>" not in result.out
    assert "<summary>" not in result.out
    assert "**" not in result.out
    assert "&amp;" not in result.out
    assert "announce attempt 1: succeeded, exit code 0" in result.out  # the summary's words
    raw = run_cli("foundry", "traces", "show", *state, "--format", "markdown", cwd=root)
    assert "<details><summary>" in raw.out  # asked for: the Markdown as it is


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"TERM": "dumb"}], ids=["NO_COLOR", "dumb"])
def test_no_color_and_dumb_terminals_get_plain_text(
    ran: tuple[Path, list[str]], env: dict[str, str]
) -> None:
    root, state = ran
    for argv in (["foundry", "traces", "show", *state], ["foundry", "traces", "list", *state]):
        code, out = run_pty(argv, root, env)
        assert code == 0, out
        assert ESC not in out, (argv, out[:300])
    code, out = run_pty(["foundry", "traces", "show", *state], root, env)
    assert "<details>" not in out
    assert "**" not in out


def test_json_on_a_terminal_has_no_escape_codes(ran: tuple[Path, list[str]]) -> None:
    root, state = ran
    code, out = run_pty(["foundry", "traces", "list", *state, "--format", "json"], root)
    assert code == 0, out
    assert ESC not in out
    assert json.loads(out)["schemaVersion"] == 1


def test_alloy_review_is_rendered_on_a_terminal_and_markdown_when_piped(
    repo: GitRepo,
) -> None:
    repo.write({".alloy/intents/a.yaml": intent_yaml("a", state="proposed")})
    base = repo.commit("a proposed")
    repo.write({".alloy/intents/a.yaml": intent_yaml("a", state="active")})
    repo.commit("a active")
    args = ["review", "--base", base, "--head", "HEAD"]
    code, out = run_pty(["alloy", *args], repo.path)
    assert code == 1, out  # proposed -> active skips accepted: blocking
    text = _plain(out)
    assert ESC in out
    assert "-&gt;" not in text
    assert "proposed -> active" in text or "proposed → active" in text
    assert "**FAIL" not in text
    piped = run_cli("alloy", *args, cwd=repo.path)
    assert piped.out.startswith("**FAIL: ")  # piped: the Markdown a pull request shows
    as_text = run_cli("alloy", *args, "--format", "text", cwd=repo.path)
    assert as_text.out.startswith("FAIL: ")
    assert "-&gt;" not in as_text.out
    assert "proposed -> active" in as_text.out


# --- what was seen (issue: operator experience, items 10 and 11) ---------------------------


def test_blocks_are_listed_in_the_order_they_ran(ran: tuple[Path, list[str]]) -> None:
    root, state = ran
    shown = run_cli("foundry", "traces", "show", *state, cwd=root).out
    table = shown.split("Blocks", 1)[1]
    assert table.index("report") < table.index("announce"), shown
    explained = run_cli("alloy", "explain", "report", cwd=root).out
    assert explained.index("1. report") < explained.index("2. announce (after report)"), explained
    as_json = json.loads(run_cli("alloy", "explain", "report", "--format", "json", cwd=root).out)
    assert [b["id"] for b in as_json["automation"]["blocks"]] == ["report", "announce"]


def test_tables_are_never_cut_piped_and_cut_with_an_ellipsis_on_a_terminal(
    ran: tuple[Path, list[str]],
) -> None:
    root, state = ran
    digest = json.loads((root / ".alloy/artifacts/report.json").read_text())["digest"]
    listed = run_cli("foundry", "traces", "list", *state, cwd=root)
    assert f"apply:{digest}" in listed.out  # the whole event key, piped
    code, out = run_pty(["foundry", "traces", "list", *state], root, columns=90)
    assert code == 0, out
    text = _plain(out)
    assert f"apply:{digest}" not in text
    assert "…" in text
    assert all(len(line) <= 90 for line in text.splitlines()), text


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_artifacts_are_written_with_the_umask_mode(repo: GitRepo, umask: int, mode: int) -> None:
    repo.write({".alloy/intents/a.yaml": intent_yaml("a")})
    done = subprocess.run(
        [sys.executable, "-m", "alloy", "compile"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=lambda: os.umask(umask),
    )
    assert done.returncode == 0, done.stderr
    written = repo.path / ".alloy/artifacts/a.json"
    assert written.stat().st_mode & 0o777 == mode


def test_a_connection_error_says_its_whole_reason(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"git://127.0.0.1:{port}/nothing.git"
    env = {"GIT_ALLOW_PROTOCOL": "file:git"}
    result = run_cli("foundry", "checks", "list", "--repo", url, cwd=tmp_path, env=env)
    assert result.code == 1
    assert "Traceback" not in result.err
    assert "unable to connect to 127.0.0.1" in result.err
    assert "Connection refused" in result.err, result.err  # the reason, not a line cut at ":"
    missing = run_cli(
        "foundry", "checks", "list", "--repo", (tmp_path / "gone.git").as_uri(), cwd=tmp_path
    )
    assert missing.code == 1
    assert "does not appear to be a git repository" in missing.err, missing.err


def test_github_annotations_are_errors_only_for_what_blocks(repo: GitRepo) -> None:
    blocks = "      - id: deploy\n        run: [sh, -c, 'true']\n        effects: idempotent\n"
    repo.write({".alloy/intents/a.yaml": intent_yaml("a", blocks=blocks)})
    assert run_cli("alloy", "compile", cwd=repo.path).code == 0
    base = repo.commit("a")
    stronger = blocks.replace("idempotent", "irreversible")
    stronger += "        gates: [{approval: {from: [alice]}}]\n"  # the policy for irreversible
    repo.write({".alloy/intents/a.yaml": intent_yaml("a", blocks=stronger)})
    assert run_cli("alloy", "compile", cwd=repo.path).code == 0
    repo.commit("a irreversible")
    args = ["review", "--base", base, "--head", "HEAD"]
    data = json.loads(run_cli("alloy", *args, "--format", "json", cwd=repo.path).out)
    assert not data["blocking"]
    assert "high" in {f["severity"] for f in data["findings"]}, data["findings"]
    result = run_cli("alloy", *args, "--format", "github", cwd=repo.path)
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    assert any(line.startswith("::warning ") and "effects-stronger" in line for line in lines)
    assert not [line for line in lines if line.startswith("::error")], lines


def test_alloy_schema_lists_the_kinds(tmp_path: Path) -> None:
    result = run_cli("alloy", "schema", cwd=tmp_path)
    assert result.code == 0, result.err
    kinds = [line.split()[0] for line in result.out.splitlines()[1:]]
    assert kinds == ["Project", "Intent", "Request", "Approval", "Artifact", "Trace"]
    data = json.loads(run_cli("alloy", "schema", "--format", "json", cwd=tmp_path).out)
    assert data["kinds"] == kinds
    for kind in kinds:  # each one it lists, it prints
        assert json.loads(run_cli("alloy", "schema", kind.lower(), cwd=tmp_path).out)


def test_quiet_prints_only_the_data(world: World) -> None:
    world.add_intent("build")
    world.merge("add build")
    checked = run_cli("alloy", "check", cwd=world.work.path)
    assert "document(s) valid" in checked.err
    quiet = run_cli("alloy", "check", "-q", cwd=world.work.path)
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")
    listed = run_cli("foundry", "traces", "list", "-q", "--state", str(world.state()),
                     cwd=world.work.path)  # fmt: skip
    assert (listed.code, listed.err) == (0, "")
    git(world.work.path, "status")  # the clone is left as it was


def test_alloy_text_is_coloured_on_a_terminal_only(repo: GitRepo) -> None:
    repo.write({".alloy/intents/a.yaml": intent_yaml("a").replace("effects: none", "effects: no")})
    code, out = run_pty(["alloy", "check"], repo.path)
    assert code == 1, out
    assert ESC in out
    assert ".alloy/intents/a.yaml:" in _plain(out)
    piped = run_cli("alloy", "check", cwd=repo.path)
    assert piped.code == 1
    assert ".alloy/intents/a.yaml:" in piped.out
    assert ESC not in piped.out + piped.err
    code, out = run_pty(["alloy", "check"], repo.path, {"NO_COLOR": "1"})
    assert code == 1
    assert ESC not in out
    assert _plain(out) == out
