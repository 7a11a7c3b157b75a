"""`foundry reconcile` on real git remotes (DESIGN sections 5, 6 and 8; issue 4's "Must show").

Every test pushes real commits to a real bare repository (reached as `file://` or over
`git daemon` on 127.0.0.1) and runs `foundry reconcile --once` as a real process, or the
in-process `Reconciler` where a fake clock is needed. Blocks append a line to a marker file
outside every worktree (its absolute path reaches them through the block's `env`), so the tests
count how often each block really ran.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controllers.gitops import PushResult
from foundry.ports import FakeClock
from tests.conftest import git, run_cli
from tests.reconcile_support import (
    DEADLINE,
    Run,
    World,
    _report,
    assert_nothing_new,
    intent,
    lines,
    make_world,
    only_execution,
    wait_for,
)

__all__ = ["DEADLINE", "World", "intent", "lines", "make_world", "wait_for"]

# --- 1 and 2: merge -> execution -> trace -> check run -> status; a rerun starts nothing -----


def merge_to_status(world: World) -> None:
    mark = world.add_intent("hello")
    head = world.merge("add intent hello")
    before = world.snapshot()
    assert "refs/heads/alloy/traces" not in before

    first = world.reconcile()
    assert first.code == 0, first.result.err
    execution = only_execution(first)
    assert first.report["finished"] == {execution: "succeeded"}
    assert len(lines(mark)) == 1
    assert lines(mark)[0].startswith(f"{execution} 1")

    # The trace is on the traces branch, under traces/<intent>/<execution>.json (+ .md).
    assert world.traces() == {execution: f"traces/hello/{execution}.json"}
    names = world.remote("ls-tree", "-r", "--name-only", "alloy/traces").split()
    assert f"traces/hello/{execution}.md" in names
    trace = world.trace(execution)
    assert trace["status"] == "succeeded"
    assert trace["artifact"] == {"name": "hello", "digest": world.digest("hello")}
    assert trace["event"] == {"type": "apply", "key": world.digest("hello")}
    [evidence] = trace["evidence"]
    assert evidence["acceptance"] == "AC-1"
    assert evidence["status"] == "produced"
    assert evidence["digest"].startswith("sha256:")
    # Foundry never commits to the default branch.
    assert world.ref("refs/heads/main") == head
    assert world.claim(execution)["state"] == "finished"

    # One check run on the local forge, on the commit the artifact came from.
    checks = run_cli("foundry", "checks", "list", "--repo", world.url, "--json", cwd=world.tmp)
    assert checks.code == 0, checks.err
    [check] = json.loads(checks.out)
    assert check["commit"] == head
    assert check["external_id"] == execution
    assert (check["status"], check["conclusion"]) == ("completed", "success")
    shown = run_cli("foundry", "checks", "show", execution, "--repo", world.url, cwd=world.tmp)
    assert shown.code == 0, shown.err
    assert "success" in shown.out

    # `alloy status` in the engineer's clone reads the fetched traces branch.
    git(world.work.path, "fetch", "-q", "origin")
    status = run_cli("alloy", "status", "--json", cwd=world.work.path)
    assert status.code == 0, status.err
    [shown_intent] = [i for i in json.loads(status.out)["intents"] if i["name"] == "hello"]
    assert [(e["id"], e["status"]) for e in shown_intent["executions"]] == [
        (execution, "succeeded")
    ]
    [ac] = shown_intent["evidence"]
    assert (ac["acceptance"], ac["status"], ac["stale"]) == ("AC-1", "produced", False)
    assert ac["digest"] == evidence["digest"]

    # Level-triggered: the same host again, then a second host with no memory, start nothing
    # and commit nothing.
    after = world.snapshot()
    assert_nothing_new(world, world.reconcile(), after)
    second_host = world.reconcile(host="b")
    assert_nothing_new(world, second_host, after)
    assert any("already done" in s for s in second_host.report["skipped"])
    assert len(lines(mark)) == 1


def test_file_remote_merge_runs_once_and_reports(world: World) -> None:
    merge_to_status(world)


def test_git_daemon_remote_merge_runs_once_and_reports(daemon_world: World) -> None:
    merge_to_status(daemon_world)


# --- 3: a schedule slot runs once; a Request runs once ---------------------------------------


def test_schedule_slot_runs_once_per_slot(world: World) -> None:
    mark = world.add_intent("hourly", on="{schedule: {cron: '0 * * * *'}}")
    world.merge("add an hourly intent")
    hour = 1_764_000_000.0  # an hour boundary (2025-11-24T16:00:00Z)
    clock = FakeClock(hour + 30)
    reconciler = world.reconciler(clock=clock)
    try:
        first = reconciler.pass_once()
        assert not first.errors, first.errors
        assert len(first.started) == 1
        assert first.finished == {first.started[0]: "succeeded"}
        assert world.trace(first.started[0])["event"] == {
            "type": "schedule",
            "key": "2025-11-24T16:00:00Z",
        }
        before = world.snapshot()
        for _ in range(3):  # the same slot, later: nothing, and not even a read of the remote
            clock.advance(600)
            again = reconciler.pass_once()
            assert again.started == []
            assert again.committed is None
            assert not again.errors
        assert world.snapshot() == before
        # Another host at the same slot finds the trace and starts nothing.
        other = world.reconciler("b", clock=FakeClock(hour + 60))
        try:
            report = other.pass_once()
            assert (report.started, report.committed) == ([], None), report
        finally:
            other.close()
        assert len(lines(mark)) == 1

        clock.advance(3600 - 1800)  # 17:00:30: the next slot
        nxt = reconciler.pass_once()
        assert len(nxt.started) == 1, nxt
        assert nxt.finished == {nxt.started[0]: "succeeded"}
        assert nxt.started != first.started
        assert world.trace(nxt.started[0])["event"]["key"] == "2025-11-24T17:00:00Z"
        clock.advance(60)
        assert reconciler.pass_once().started == []
    finally:
        reconciler.close()
    assert [line.split()[0] for line in lines(mark)] == first.started + nxt.started


def test_request_runs_once_with_its_inputs(world: World) -> None:
    inputs = "    inputs:\n      who: {type: string, default: nobody}\n"
    mark = world.add_intent("greet", on="{request: true}", inputs=inputs)
    world.merge("add a request-only intent")
    run = world.reconcile()
    assert (run.code, run.report["started"]) == (0, []), run.report  # nothing asks for it yet
    assert not lines(mark)

    world.alloy("request", "greet", "--input", "who=bob", "--reason", "try it", "--name", "hi-bob")
    assert (world.work.path / ".alloy/requests/hi-bob.yaml").exists()
    world.merge("request a greeting", compile_=False)
    first = world.reconcile()
    assert first.code == 0, first.result.err
    execution = only_execution(first)
    assert first.report["finished"] == {execution: "succeeded"}
    trace = world.trace(execution)
    assert trace["event"]["type"] == "request"
    assert trace["event"]["key"].startswith("hi-bob@")

    before = world.snapshot()
    assert_nothing_new(world, world.reconcile(), before)
    assert_nothing_new(world, world.reconcile(host="b"), before)
    assert lines(mark) == [f"{execution} 1 bob"]


# --- 4: an approval gate waits until an Approval document is merged ----------------------


APPROVAL_GATE = "        gates:\n          - approval: {from: [alice], quorum: 1}\n"


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_approval_gate_waits_for_a_merged_approval(world: World, decision: str) -> None:
    mark = world.add_intent("ship", gates=APPROVAL_GATE, effects="irreversible")
    world.merge("add a gated intent")

    waiting = world.reconcile()
    assert waiting.code == 5, waiting.result  # an execution waits
    execution = only_execution(waiting)
    assert waiting.report["finished"] == {execution: "waiting"}
    assert world.trace(execution)["status"] == "waiting"
    assert world.claim(execution)["state"] == "parked"
    assert not lines(mark)
    # Nothing new merged: it goes on waiting (and commits nothing new).
    before = world.snapshot()
    still = world.reconcile()
    assert still.report["started"] == []
    assert not lines(mark)
    assert world.snapshot()["refs/heads/alloy/traces"] == before["refs/heads/alloy/traces"]

    args = ["approve", execution, "--gate", "work", "--comment", "ok", "--approver", "alice"]
    world.alloy(*args, *(["--reject"] if decision == "reject" else []))
    world.merge(f"{decision} the ship gate", compile_=False)
    done = world.reconcile()
    assert done.report["resumed"] == [execution], done.report
    if decision == "approve":
        assert done.code == 0, done.result
        assert done.report["finished"] == {execution: "succeeded"}
        assert world.trace(execution)["status"] == "succeeded"
        assert len(lines(mark)) == 1
    else:
        assert done.code == 4, done.result  # an execution failed
        assert done.report["finished"] == {execution: "failed"}
        assert world.trace(execution)["status"] == "failed"
        assert not lines(mark)
    assert world.claim(execution)["state"] == "finished"
    after = world.snapshot()
    assert_nothing_new(world, world.reconcile(host="b"), after)


# --- 5: exactly once under races -------------------------------------------------------


@pytest.mark.parametrize("shared_state", [False, True], ids=["own-state", "shared-state"])
def test_four_racing_reconcilers_run_each_execution_once(world: World, shared_state: bool) -> None:
    rounds, count, racers = 3, 20, 4
    for round_ in range(rounds):
        names = [f"race-{round_}-{i:02d}" for i in range(count)]
        for name in names:
            world.add_intent(name)
        world.merge(f"round {round_}: {count} intents")
        procs = [
            subprocess.Popen(
                world.command(host="shared" if shared_state else f"h{n}"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(racers)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        for proc, (_out, err) in zip(procs, outs, strict=True):
            assert proc.returncode == 0, err
        reports = [_report(out) for out, _ in outs]
        started = [e for r in reports for e in r["started"]]
        assert len(started) == count, reports  # each claimed by exactly one reconciler
        assert len(set(started)) == count
        traces = world.traces()
        for name in names:
            [line] = lines(world.mark(name))  # ran exactly once
            execution = line.split()[0]
            assert execution in started
            assert world.trace(execution)["status"] == "succeeded"
            assert world.claim(execution)["state"] == "finished"
        assert len(traces) == count * (round_ + 1)
        assert len(world.refs("refs/alloy/claims/")) == count * (round_ + 1)


# --- 6: a killed claimer loses its lease; another finishes the work -------------------------


def test_killed_claimer_loses_its_lease_and_another_finishes(world: World) -> None:
    # The first attempt sleeps long; a retried attempt (after a takeover) is quick.
    script = (
        'echo "start $$" >> "$MARK.log"\n'
        'if [ "$ALLOY_ATTEMPT" = 1 ]; then sleep 30; else sleep 1; fi\n'
        'echo "end $$" >> "$MARK.log"'
    )
    mark = world.add_intent("slow", script=script)
    log = Path(f"{mark}.log")
    world.merge("add a slow intent")
    a = subprocess.Popen(
        world.command("--lease", "4", host="a"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    block_pid: int | None = None
    try:
        started = wait_for("the block to start", lambda: [x for x in lines(log) if "start" in x])
        block_pid = int(started[0].split()[1])
        execution = wait_for("the claim", lambda: list(world.refs("refs/alloy/claims/")))[0]
        execution = execution.removeprefix("refs/alloy/claims/")

        def published() -> bool:  # the lease renewal carries the ledger with the open attempt
            ledger = subprocess.run(
                ["git", "show", f"refs/alloy/claims/{execution}:ledger.jsonl"],
                cwd=world.bare,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            return '"attempt-started"' in ledger

        wait_for("the ledger on the claim", published)
    finally:
        os.killpg(a.pid, signal.SIGKILL)  # the reconciler ...
        if block_pid is not None:
            os.killpg(block_pid, signal.SIGKILL)  # ... and the block, in its own session
        a.communicate()
    expires = world.claim(execution)["expires"]
    assert world.claim(execution)["state"] == "running"

    # Host B's clock is set just before the lease runs out, then just after: the check does not
    # depend on how fast this machine got here.
    clock = FakeClock(expires - 1)
    b = world.reconciler("b", clock=clock, lease=4)
    try:
        held = b.pass_once()
        assert (held.started, held.resumed) == ([], []), held
        assert "held by" in held.not_claimed[execution], held
        assert [x.split()[0] for x in lines(log)] == ["start"]
        clock.advance(2)
        taken = b.pass_once()
        assert taken.finished == {execution: "succeeded"}, taken
    finally:
        b.close()
    final = world.reconcile("--lease", "4", host="b")
    assert (final.report["started"], final.report["resumed"]) == ([], []), final.report
    assert final.code == 0, final.result
    assert world.trace(execution)["status"] == "succeeded"
    assert world.claim(execution)["state"] == "finished"
    steps = [x.split()[0] for x in lines(log)]
    assert steps == ["start", "start", "end"]  # ran at most twice, finished once
    assert len(lines(mark)) == 1
    assert lines(mark)[0].split()[:2] == [execution, "2"]
    before = world.snapshot()
    assert_nothing_new(world, world.reconcile(host="c"), before)


# --- 7: a push rejected because someone else pushed is fetched and retried ----------------


def foreign_commit(world: World, branch_dir: Path, name: str) -> str:
    """Someone else's commit on the remote's traces branch (pushed with plain git)."""
    if not branch_dir.exists():
        git(world.tmp, "clone", "-q", str(world.bare), str(branch_dir))
    git(branch_dir, "fetch", "-q", "origin")
    if world.ref("refs/heads/alloy/traces"):
        git(branch_dir, "checkout", "-q", "-B", "t", "origin/alloy/traces")
    else:
        git(branch_dir, "checkout", "-q", "--orphan", "t")
        git(branch_dir, "rm", "-rq", "--cached", ".")
    (branch_dir / "notes").mkdir(exist_ok=True)
    (branch_dir / "notes" / name).write_text(name + "\n")
    git(branch_dir, "add", "notes")
    git(branch_dir, "commit", "-q", "-m", f"foreign {name}")
    git(branch_dir, "push", "-q", "origin", "t:alloy/traces")
    return git(branch_dir, "rev-parse", "HEAD").strip()


def test_rejected_trace_push_is_rebuilt_on_the_new_tip(world: World) -> None:
    world.add_intent("one")
    world.merge("add one")
    other = world.tmp / "someone-else"
    reconciler = world.reconciler()
    results: list[PushResult] = []
    foreign: list[str] = []
    real_push = reconciler.mirror.push

    def racing_push(updates: Any) -> PushResult:
        # Just before our first trace push, someone else pushes to the traces branch.
        if any(ref == "refs/heads/alloy/traces" for _, ref, _ in updates):
            if not foreign:
                foreign.append(foreign_commit(world, other, "first"))
            result = real_push(updates)
            results.append(result)
            return result
        return real_push(updates)

    reconciler.mirror.push = racing_push  # type: ignore[method-assign]
    try:
        report = reconciler.pass_once()
    finally:
        reconciler.close()
    assert not report.errors, report.errors
    assert [r.ok for r in results] == [False, True]  # rejected, then rebuilt and accepted
    tip = world.ref("refs/heads/alloy/traces")
    assert tip == report.committed
    assert world.remote("rev-parse", f"{tip}^") == foreign[0] + "\n"  # kept, as the parent
    files = world.remote("ls-tree", "-r", "--name-only", "alloy/traces").split()
    assert "notes/first" in files
    assert len([f for f in files if f.endswith(".json")]) == 1

    # A foreign commit between passes: nothing starts, nothing is committed on top of it ...
    second = foreign_commit(world, other, "second")
    quiet = world.reconcile()
    assert (quiet.report["started"], quiet.report["committed"]) == ([], None), quiet.report
    assert world.ref("refs/heads/alloy/traces") == second
    # ... and the next trace commit builds on it.
    world.add_intent("two")
    world.merge("add two")
    run = world.reconcile()
    execution = only_execution(run)
    assert world.remote("rev-parse", "alloy/traces^") == second + "\n"
    assert set(world.traces()) == {execution, *report.started}
    assert "notes/second" in world.remote("ls-tree", "-r", "--name-only", "alloy/traces")


# --- 8: Foundry's own commits never start an execution -----------------------------------


def test_push_trigger_runs_for_source_commits_only(world: World) -> None:
    mark = world.add_intent("on-src", on="{push: {paths: ['src/**']}}")
    world.merge("add a push-triggered intent")
    assert world.reconcile().report["started"] == []  # that commit touched .alloy/ only

    world.work.write({"src/app.py": "print('v1')\n"})
    touched = world.merge("change src", compile_=False)
    first = world.reconcile()
    execution = only_execution(first)
    assert world.trace(execution)["event"] == {"type": "push", "key": touched}
    # The traces and forge commits that pass made are not news: nothing starts, on this host
    # or another.
    before = world.snapshot()
    assert_nothing_new(world, world.reconcile(), before)
    assert_nothing_new(world, world.reconcile(host="b"), before)
    # A commit outside src/ starts nothing; two commits touching src/ start one each.
    world.work.write({"docs/readme.md": "hello\n"})
    world.merge("docs only", compile_=False)
    assert world.reconcile().report["started"] == []
    world.work.write({"src/app.py": "print('v2')\n"})
    c2 = world.merge("src v2", compile_=False)
    world.work.write({"src/lib.py": "x = 1\n"})
    c3 = world.merge("src lib", compile_=False)
    both = world.reconcile()
    assert len(both.report["started"]) == 2, both.report
    keys = sorted(world.trace(e)["event"]["key"] for e in both.report["started"])
    assert keys == sorted([c2, c3])
    assert world.reconcile().report["started"] == []
    assert len(lines(mark)) == 3


# --- 9: bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["missing-path", "file-url", "not-a-repo"])
def test_unreachable_repository_is_a_clear_error(tmp_path: Path, where: str) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    repo = {
        "missing-path": str(tmp_path / "nowhere.git"),
        "file-url": (tmp_path / "nowhere.git").as_uri(),
        "not-a-repo": str(plain),
    }[where]
    result = run_cli(
        "foundry",
        "reconcile",
        "--repo",
        repo,
        "--once",
        "--state",
        str(tmp_path / "s"),
        cwd=tmp_path,
    )
    assert result.code == 1, result
    assert "Traceback" not in result.err + result.out
    # One line that names the remote and says what is wrong.
    assert "cannot reach" in result.err or "no repository at" in result.err, result.err
    assert ("plain" if where == "not-a-repo" else "nowhere.git") in result.err
    assert "does not appear to be a git repository" in result.err or "pass a path" in result.err


def test_refused_artifact_is_reported_and_the_others_run(world: World) -> None:
    good = world.add_intent("good")
    bad = world.add_intent("bad")
    world.alloy("compile")
    path = world.work.path / ".alloy/artifacts/bad.json"
    data = json.loads(path.read_text())
    data["spec"]["blocks"][0]["run"] = ["sh", "-c", "echo tampered"]  # a hand edit
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    world.merge("hand-edit an artifact", compile_=False)
    run = world.reconcile()
    assert run.code == 0, run.result
    assert "Traceback" not in run.result.err
    [refused] = run.report["refused"]
    assert ".alloy/artifacts/bad.json" in refused
    assert "digest" in refused
    human = run_cli(
        "foundry",
        "reconcile",
        "--repo",
        world.url,
        "--once",
        "--state",
        str(world.state("b")),
        cwd=world.tmp,
    )
    assert human.code == 0, human
    assert "refused: .alloy/artifacts/bad.json" in human.err
    execution = only_execution(run)
    assert world.trace(execution)["intent"] == "good"
    assert len(lines(good)) == 1
    assert not lines(bad)


def test_relative_state_directory(world: World) -> None:
    """`--state DIR` relative to the current directory: the worktree is made there too (git runs
    inside the mirror, so a relative path once put it inside the mirror and the block could not
    start)."""
    mark = world.add_intent("rel")
    world.merge("add rel")
    argv = ["reconcile", "--repo", world.url, "--once", "--json", "--state", "relative-state"]
    result = run_cli("foundry", *argv, cwd=world.tmp)
    assert result.code == 0, result.err
    execution = only_execution(Run(result, _report(result.out)))
    assert world.trace(execution)["status"] == "succeeded"
    assert len(lines(mark)) == 1
    assert (world.tmp / "relative-state" / "reconcile.json").exists()


# --- the no-op path stays cheap --------------------------------------------------------------

NOOP_IMPORTS = """\
import sys
from pathlib import Path
from controllers.reconcile import Reconciler, Settings
r = Reconciler(Settings(repo=sys.argv[1], state_dir=Path(sys.argv[2])))
report = r.pass_once()
assert not report.moved and not report.errors, report.to_json()
heavy = sorted(m for m in ("foundry.boundary", "foundry.executor", "foundry.planner",
                           "foundry.traces", "pydantic", "yaml") if m in sys.modules)
print(" ".join(heavy))
"""


def test_a_pass_with_nothing_new_loads_no_engine(world: World) -> None:
    """A pass that finds nothing moved is one `git ls-remote`: it does not even import the
    engine (which is most of a no-op `foundry reconcile --once`)."""
    from controllers.reconcile import FINISHED
    from foundry.planner import FINISHED as PLANNER_FINISHED

    assert FINISHED == PLANNER_FINISHED
    world.add_intent("hourly", on="{apply: true, schedule: {cron: '0 * * * *'}}")
    world.merge("add an intent with a schedule")
    assert world.reconcile().code == 0
    proc = subprocess.run(
        [sys.executable, "-c", NOOP_IMPORTS, world.url, str(world.state("a"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []
