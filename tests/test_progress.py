"""Progress as it happens, names and next steps (`foundry run`, `foundry reconcile`, the daemon).

Every test runs the real command as a process and reads its output while it runs: a block that
waits for a file to appear proves a line was written while the block still ran (streamed, not
held back until the end). Ctrl-C is a real SIGINT to the process. Nothing asserts a duration:
every wait is a deadline on a condition.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import jsonschema
import pytest
import yaml

from tests.conftest import git, run_cli
from tests.foundry_support import artifact_document, block, write_artifact
from tests.reconcile_support import World, lines

PY = sys.executable
DEADLINE = 30.0
#: A block that says it started, then holds until `release` appears in its directory.
HOLD = (
    "import pathlib, time\n"
    "pathlib.Path('started').touch()\n"
    "while not pathlib.Path('release').exists(): time.sleep(0.01)\n"
)
#: A shell block that ignores SIGTERM (so only a kill stops it) and holds until `release`.
STUBBORN = (
    "trap '' TERM; sleep 120 & echo $! > child.pid; touch started; "
    "while [ ! -e release ]; do sleep 0.05; done"
)
EXECUTION = re.compile(r"exe-[0-9a-f]{16}")
#: `in 0.41s`, `in 12.3s`, `in 4m05s`, `in 2h03m`: the duration on every end line.
TOOK = re.compile(r" in (\d+\.\d+s|\d+m\d\ds|\d+h\d\dm)\b")


class Stream:
    """A process's output read line by line on a thread, as the process writes it."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.lines: list[str] = []
        self.closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait_for(self, wanted: Callable[[str], bool], what: str) -> str:
        """The first line `wanted` accepts; fails after DEADLINE seconds or at the end."""
        end = time.monotonic() + DEADLINE
        with self._cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if wanted(line):
                        return line
                seen = len(self.lines)
                left = end - time.monotonic()
                if self.closed or left <= 0:
                    pytest.fail(f"no line with {what}; got:\n" + "\n".join(self.lines))
                self._cond.wait(left)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def join(self) -> None:
        """Wait for the end of the output (the process ended: its pipe closes)."""
        self._thread.join(DEADLINE)


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _leave_nothing_behind(tmp_path: Path) -> Iterator[None]:
    """A test that failed half-way: its command is killed and its holding blocks released."""
    yield
    for proc in _STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _STARTED.clear()
    for where in (tmp_path, tmp_path / "checkout"):
        if where.is_dir():
            (where / "release").touch()


def start(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    _STARTED.append(proc)
    return proc


def ended(proc: subprocess.Popen[str], *streams: Stream) -> int:
    """The exit code, once its output is read to the end (a hang fails the test instead of
    holding it forever)."""
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the command did not end")
    for stream in streams:
        stream.join()
    return code


def gone(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def wait_until(check: Callable[[], Any], what: str) -> Any:
    end = time.monotonic() + DEADLINE
    while not (value := check()):
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


# -- foundry run ----------------------------------------------------------------------------


def hold_checkout(root: Path, script: list[str]) -> None:
    write_artifact(
        root,
        artifact_document(
            "hold",
            [
                block("first", [PY, "-c", "pass"]),
                block("slow", script, needs=["first"], timeout=600),
            ],
        ),
    )


def run_args(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    state = ["--state", str(tmp_path / "state")]
    return [PY, "-m", "foundry", "run", str(root), "--artifact", "hold", *state, *extra]


def test_run_prints_each_block_as_it_starts_and_ends(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    hold_checkout(root, [PY, "-c", HOLD])
    proc = start(run_args(root, tmp_path), cwd=tmp_path)
    out, err = Stream(proc.stdout), Stream(proc.stderr)

    started = out.wait_for(lambda line: line.endswith(" slow: started"), "slow: started")
    # Read while the block still runs: it holds until `release` exists, which nobody made yet.
    assert proc.poll() is None
    assert not (root / "release").exists()
    execution = started.split()[0]
    assert EXECUTION.fullmatch(execution), started
    label = f"{execution} (hold, apply sha256:"
    assert started.startswith(label)
    assert any(line.startswith(label) and line.endswith("): started") for line in out.lines)
    first_done = out.wait_for(lambda line: " first: succeeded" in line, "first: succeeded")
    assert TOOK.search(first_done), first_done

    (root / "release").touch()
    assert ended(proc, out, err) == 0, err.text()
    slow_done = out.wait_for(lambda line: " slow: succeeded" in line, "slow: succeeded")
    assert TOOK.search(slow_done), slow_done
    # Every line names the execution, its intent and its event; block lines name the block.
    for line in out.lines:
        assert line.startswith(label), line
    blocks = {
        line[len(label) :].split(") ", 1)[1].split(":")[0] for line in out.lines if ") " in line
    }
    assert blocks == {"first", "slow"}
    last = err.lines[-1]
    assert last.startswith(label), err.text()
    assert ": succeeded in " in last, err.text()
    assert TOOK.search(last), last


def test_ctrl_c_says_what_it_does_and_a_second_one_stops_now(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    hold_checkout(root, ["sh", "-c", STUBBORN])
    proc = start(run_args(root, tmp_path, "--grace", "300"), cwd=tmp_path)
    out, err = Stream(proc.stdout), Stream(proc.stderr)
    child = int(wait_until(lambda: _read(root / "child.pid"), "the block's child"))

    proc.send_signal(signal.SIGINT)
    said = err.wait_for(lambda line: "stopping:" in line, "the stopping message")
    assert "waiting up to 300s for running blocks (slow)" in said, said
    assert "Ctrl-C again to stop now" in said, said
    assert proc.poll() is None, "the first Ctrl-C gives running blocks their grace period"
    assert not gone(child)

    proc.send_signal(signal.SIGINT)
    assert ended(proc, out, err) == 130, err.text()
    assert "stopping now" in err.text()
    wait_until(lambda: gone(child), "the block's process group to be killed")
    execution = out.wait_for(lambda line: " slow: started" in line, "slow: started").split()[0]
    stopped = out.wait_for(lambda line: " slow: interrupted" in line, "slow: interrupted")
    assert stopped.startswith(f"{execution} (hold, apply sha256:")
    assert TOOK.search(stopped)
    assert err.lines[-1].startswith(f"{execution} (hold, apply sha256:"), err.text()
    assert ": stopped" in err.lines[-1], err.text()

    (ledger,) = (tmp_path / "state").rglob("ledger.jsonl")
    records = [json.loads(x) for x in ledger.read_text().splitlines()]
    slow = [r for r in records if r["type"] == "attempt-finished" and r["block"] == "slow"]
    assert [r["outcome"] for r in slow] == ["interrupted"]
    assert all(r["type"] != "execution-finished" for r in records)
    exported = run_cli(
        "foundry",
        "traces",
        "export",
        execution,
        "--path",
        str(root),
        "--state",
        str(tmp_path / "state"),
        cwd=tmp_path,
    )
    assert exported.code == 0, exported.err
    attempts = {
        b["id"]: [a["outcome"] for a in b["attempts"]]
        for b in json.loads(exported.out)["spec"]["blocks"]
    }
    assert attempts["slow"] == ["interrupted"], attempts


# -- foundry reconcile ----------------------------------------------------------------------


def hold_intent(world: World, script: str) -> Path:
    """Intent `hold`: its block waits, in its worktree, until `release` is in `world.tmp`."""
    release = world.tmp / "release"
    world.add_intent("hold", script=script.replace("release", str(release)))
    world.merge("add an intent that holds")
    return release


def reconcile_args(world: World, *extra: str, host: str = "a") -> list[str]:
    return [a for a in world.command(*extra, host=host) if a != "--json"]


def test_reconcile_prints_progress_as_it_happens_with_names(world: World) -> None:
    release = hold_intent(world, "while [ ! -e release ]; do sleep 0.05; done")
    proc = start(reconcile_args(world), cwd=world.tmp)
    out, err = Stream(proc.stdout), Stream(proc.stderr)
    started = out.wait_for(lambda line: line.endswith(" work: started"), "work: started")
    assert proc.poll() is None
    assert not release.exists()
    execution = started.split()[0]
    label = f"{execution} (hold, apply sha256:"
    assert started.startswith(label), started
    assert f"{label}" in out.wait_for(lambda line: line.endswith("): started"), "its start")

    release.touch()
    assert ended(proc, out, err) == 0, err.text()
    work = out.wait_for(lambda line: " work: succeeded" in line, "work: succeeded")
    assert work.startswith(label), work
    assert TOOK.search(work), work
    done = out.wait_for(lambda line: line.startswith(label) and "): succeeded" in line, "its end")
    assert TOOK.search(done), done
    # The pass's summary names it the same way.
    assert any(line.startswith(label) and "started, succeeded" in line for line in out.lines)


def test_ctrl_c_stops_reconcile_and_its_claim_is_released_parked(world: World) -> None:
    release = hold_intent(world, STUBBORN.replace("child.pid", str(world.tmp / "child.pid")))
    mark = world.mark("hold")
    proc = start(reconcile_args(world, "--grace", "300"), cwd=world.tmp)
    out, err = Stream(proc.stdout), Stream(proc.stderr)
    child = int(wait_until(lambda: _read(world.tmp / "child.pid"), "the block's child"))

    proc.send_signal(signal.SIGINT)
    said = err.wait_for(lambda line: "stopping:" in line, "the stopping message")
    assert "waiting up to 300s for running blocks (work)" in said
    assert "Ctrl-C again" in said
    assert proc.poll() is None
    assert not gone(child)
    proc.send_signal(signal.SIGINT)
    assert ended(proc, out, err) == 130, err.text()
    wait_until(lambda: gone(child), "the block's process group to be killed")
    execution = out.wait_for(lambda line: " work: started" in line, "work: started").split()[0]
    assert " work: interrupted" in out.text()

    # The claim was released as parked, with the interrupted attempt in its ledger and trace:
    # another host takes it up at once (no lease to wait out) and finishes it.
    claim = world.claim(execution)
    assert claim["state"] == "parked", claim
    ledger = world.remote("show", f"refs/alloy/claims/{execution}:ledger.jsonl")
    ends = [json.loads(x) for x in ledger.splitlines() if '"attempt-finished"' in x]
    assert [r["outcome"] for r in ends] == ["interrupted"]
    trace = json.loads(world.remote("show", f"refs/alloy/claims/{execution}:trace.json"))
    (work,) = trace["spec"]["blocks"]
    assert [a["outcome"] for a in work["attempts"]] == ["interrupted"]
    assert not lines(mark)

    release.touch()
    again = world.reconcile(host="b")
    assert again.code == 0, again.result
    assert again.report["resumed"] == [execution]
    assert again.report["finished"] == {execution: "succeeded"}
    assert len(lines(mark)) == 1


def test_a_waiting_gate_says_on_whom_and_the_command_that_unblocks_it(world: World) -> None:
    gates = "        gates:\n          - approval: {from: [bob], quorum: 1}\n"
    mark = world.add_intent("ship", gates=gates)
    world.merge("add a gated intent")
    waiting = world.reconcile()  # --json: the report on stdout, progress on stderr
    assert waiting.code == 5, waiting.result
    (execution,) = waiting.report["started"]
    assert waiting.report["executions"][execution]["intent"] == "ship"
    (wait,) = waiting.report["waiting"][execution]
    schema = Path(__file__).parent.parent / "docs/schemas/foundry-reconcile.schema.json"
    jsonschema.validate(waiting.report, json.loads(schema.read_text()))  # documented fields
    assert (wait["block"], wait["gate"], wait["kind"]) == ("work", 0, "approval")
    assert "bob" in wait["waitingOn"]
    command = wait["command"]
    assert command.startswith(f"alloy approve {execution} --gate work/0 --comment ")
    said = [line for line in waiting.result.err.splitlines() if command in line]
    assert said, waiting.result.err
    assert "bob" in said[0], said
    assert "merge it to main" in said[0], said

    # The trace's summary (on the traces branch, and the check run's) says it too.
    summary = world.remote("show", f"alloy/traces:{world.traces()[execution][:-5]}.md")
    assert f"To approve: `{command}`, then commit it and merge it" in summary, summary

    # Bob runs exactly that command in his clone, and merges what it wrote.
    argv = shlex.split(command)
    assert argv[0] == "alloy"
    git(world.work.path, "config", "user.name", "bob")
    approved = run_cli("alloy", *argv[1:], cwd=world.work.path, env=world.env)
    assert approved.code == 0, approved.err
    world.merge("bob approves", compile_=False)
    done = world.reconcile()
    assert done.code == 0, done.result
    assert done.report["finished"] == {execution: "succeeded"}
    assert done.report["waiting"] == {}
    assert len(lines(mark)) == 1


# -- the daemon ------------------------------------------------------------------------------

PROGRESS_FIELDS = {
    "time",
    "repo",
    "event",
    "execution",
    "intent",
    "eventType",
    "eventKey",
    "block",
    "attempt",
    "status",
    "seconds",
    "reason",
    "gate",
    "waitingOn",
    "command",
    "next",
}


def test_the_daemon_logs_progress_as_json_lines(world: World, tmp_path: Path) -> None:
    release = hold_intent(world, "while [ ! -e release ]; do sleep 0.05; done")
    config = tmp_path / "daemon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": "127.0.0.1:0",
                "state": str(tmp_path / "daemon-state"),
                "repositories": [{"repo": str(world.bare), "interval": "1h"}],
            }
        )
    )
    args = [PY, "-m", "foundry", "daemon", "--config", str(config), "--log", "json"]
    proc = start(args, cwd=tmp_path)
    out, log = Stream(proc.stdout), Stream(proc.stderr)
    try:
        line = log.wait_for(lambda x: '"block-started"' in x, "a block-started line")
        assert not release.exists()
        assert proc.poll() is None
        began = json.loads(line)
        assert (began["intent"], began["block"], began["eventType"]) == ("hold", "work", "apply")
        assert began["eventKey"].startswith("sha256:")
        assert EXECUTION.fullmatch(began["execution"])
        release.touch()
        log.wait_for(lambda x: '"execution-ended"' in x, "an execution-ended line")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = ended(proc, out, log)
    assert code == 0, log.text()
    records = [json.loads(x) for x in log.lines]  # every line of the log is one JSON object
    progress = [r for r in records if "execution" in r and r.get("event") != "pass"]
    kinds = [(r["event"], r["block"]) for r in progress]
    assert kinds == [
        ("execution-started", None),
        ("block-started", "work"),
        ("block-ended", "work"),
        ("execution-ended", None),
    ], kinds
    for record in progress:
        assert set(record) == PROGRESS_FIELDS, record
        assert record["execution"] == began["execution"]
        assert record["intent"] == "hold"
        assert record["repo"] == str(world.bare)
    assert progress[2]["status"] == "succeeded"
    assert progress[2]["seconds"] >= 0
    assert progress[3]["status"] == "succeeded"
    assert progress[3]["seconds"] >= 0


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def test_a_second_signal_stops_the_daemon_now(world: World, tmp_path: Path) -> None:
    """The first SIGTERM drains (running blocks get `grace`, here far longer than the test); a
    second one kills the running blocks now: the daemon exits 0, the attempt is interrupted
    and the claim released parked, so another host resumes it at once."""
    release = hold_intent(world, STUBBORN.replace("child.pid", str(world.tmp / "child.pid")))
    config = tmp_path / "daemon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": "127.0.0.1:0",
                "grace": "300s",
                "state": str(tmp_path / "daemon-state"),
                "repositories": [{"repo": str(world.bare), "interval": "1h"}],
            }
        )
    )
    proc = start([PY, "-m", "foundry", "daemon", "--config", str(config)], cwd=tmp_path)
    out, log = Stream(proc.stdout), Stream(proc.stderr)
    child = int(wait_until(lambda: _read(world.tmp / "child.pid"), "the block's child"))
    started = log.wait_for(lambda line: line.endswith(" work: started"), "work: started")
    execution = EXECUTION.findall(started)[0]
    assert f"{execution} (hold, apply sha256:" in started

    proc.send_signal(signal.SIGTERM)
    log.wait_for(lambda line: "draining:" in line, "the drain")
    assert proc.poll() is None
    assert not gone(child)
    proc.send_signal(signal.SIGTERM)
    assert ended(proc, out, log) == 0, log.text()
    assert "stopping now" in log.text()
    wait_until(lambda: gone(child), "the block's process group to be killed")
    assert " work: interrupted" in log.text()
    assert world.claim(execution)["state"] == "parked"

    release.touch()
    again = world.reconcile(host="b")
    assert again.report["finished"] == {execution: "succeeded"}, again.report


def test_every_line_of_a_pass_names_the_execution_with_its_intent_and_event(world: World) -> None:
    """Also the executions a pass does not run: one a pause holds."""
    world.add_intent("ship")
    world.merge("add an intent")
    paused = run_cli(
        "foundry", "pause", "ship", "--reason", "incident 42", "--repo", world.url, cwd=world.tmp
    )
    assert paused.code == 0, paused.err
    held = run_cli("foundry", *reconcile_args(world)[3:], cwd=world.tmp, env=world.env)
    said = [line for line in held.out.splitlines() + held.err.splitlines() if "held" in line]
    assert said, held.out + held.err
    assert EXECUTION.match(said[0]), said
    assert re.match(r"exe-[0-9a-f]{16} \(ship, apply sha256:[0-9a-f]{12}\): held", said[0]), said


def test_a_reason_with_line_breaks_stays_on_its_line() -> None:
    """One event, one line: a reason's line breaks never start a line of their own in a log
    (where `::error::` at the start of a line is a CI workflow command)."""
    from foundry.progress import Progress, describe

    event = Progress(
        "block-ended",
        "exe-0123456789abcdef",
        "hold",
        "apply",
        "sha256:" + "a" * 64,
        0.0,
        block="work",
        status="failed",
        seconds=1.5,
        reason="boom\n::error::injected\r\nmore",
    )
    line = describe(event)
    assert line == (
        "exe-0123456789abcdef (hold, apply sha256:aaaaaaaaaaaa) work: failed in 1.50s "
        "(boom ::error::injected more)"
    )


def test_ctrl_c_during_a_retry_backoff_stops_without_waiting_it_out(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    retry = {"max": 3, "backoffSeconds": 600, "onExitCodes": [3]}
    flaky = block("flaky", ["sh", "-c", "echo x >> tries; exit 3"], retry=retry)
    write_artifact(root, artifact_document("hold", [flaky]))
    proc = start(run_args(root, tmp_path), cwd=tmp_path)
    out, err = Stream(proc.stdout), Stream(proc.stderr)
    again = out.wait_for(lambda line: "it runs again after 600s" in line, "the retry's backoff")
    assert " flaky: failed in " in again
    # The engine waits out the backoff (its main thread asleep on a futex): then the signal.
    wait_until(lambda: "futex" in _read(Path(f"/proc/{proc.pid}/wchan")), "the backoff's wait")
    proc.send_signal(signal.SIGINT)
    err.wait_for(lambda line: "stopping: no block is running" in line, "the stopping message")
    assert ended(proc, out, err) == 130, err.text()
    assert (root / "tries").read_text() == "x\n"
    assert ": stopped" in err.lines[-1], err.text()


def _at_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Everything a command writes to a pseudo-terminal (its stdout and stderr), to its end."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        args, cwd=cwd, stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    data = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed, the command ended
                break
            if not chunk:
                break
            data += chunk
    finally:
        os.close(leader)
    assert proc.wait(timeout=60) == 0, data.decode(errors="replace")
    return data.decode()


def test_progress_is_coloured_at_a_terminal_and_plain_otherwise(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    hold_checkout(root, [PY, "-c", "pass"])
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": "xterm-256color"}
    shown = _at_a_terminal(run_args(root, tmp_path), tmp_path, env)
    assert "\x1b[" in shown, shown
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown)
    assert re.search(r"exe-[0-9a-f]{16} \(hold, apply sha256:[0-9a-f]{12}\) slow: succeeded", plain)
    # NO_COLOR at a terminal, and a pipe: the same lines without an escape code.
    again = _at_a_terminal(run_args(root, tmp_path, "--rerun"), tmp_path, env | {"NO_COLOR": "1"})
    assert "\x1b" not in again
    assert " slow: succeeded in " in again
    piped = subprocess.run(
        run_args(root, tmp_path, "--rerun"), capture_output=True, text=True, env=env, check=True
    )
    assert "\x1b" not in piped.stdout + piped.stderr
    assert " slow: succeeded in " in piped.stdout


def test_warnings_and_library_logging_reach_the_daemons_log_in_its_format(
    tmp_path: Path,
) -> None:
    """With `--log json` every line of the daemon's log is one JSON object, also what Python
    and its libraries say on their own (found under load: watchdog's RuntimeWarning when git
    creates a directory while it is being watched broke a log reader)."""
    import logging
    import warnings

    from controllers.daemon import Daemon, parse_config

    config = parse_config(
        f"log: json\nrepositories:\n  - repo: {tmp_path}\n", source=str(tmp_path / "d.yaml")
    )
    lines: list[str] = []
    daemon = Daemon(config, log=lines.append)
    with daemon.library_output():
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("a callback already exists for this watch", RuntimeWarning, stacklevel=1)
        logging.getLogger("watchdog.observers.inotify").warning("watch of %s lost", "refs/alloy")
        logging.getLogger("quiet").info("not for the daemon's log")
    logging.getLogger("after").warning("not the daemon's any more")
    records = [json.loads(x) for x in lines]
    assert [(r["event"], r["message"].split(":")[0]) for r in records] == [
        ("warning", "RuntimeWarning"),
        ("warning", "watchdog.observers.inotify"),
    ], lines
    assert "watch of refs/alloy lost" in records[1]["message"]
