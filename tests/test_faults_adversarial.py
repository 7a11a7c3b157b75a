"""Adversarial attacks on reconcile's promises (DESIGN section 9, docs/reconcile.md): hostile or
odd remote states, signals, remotes that go away, hosts that race, pause or come back. Every
attack runs on a real bare remote with real `foundry reconcile` processes (or the in-process
`Reconciler` where a host must be driven step by step); the remote is edited by hand with git's
own plumbing, as a person with push rights would.

Each of these attacks once broke a promise (a crash, a re-run, a lost record); each now holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from controllers.claims import Claims
from controllers.gitops import Mirror
from foundry.ids import Event, execution_id
from tests.conftest import git
from tests.reconcile_support import World, lane_intent, lines, wait_for
from tests.test_fault_points import PROJECT
from tests.test_faults_reported import run, run_checks, starts, steps_intent, wait_expired

CLAIMS = "refs/alloy/claims/"


# --- helpers ------------------------------------------------------------------------------


def hand_commit(world: World, files: dict[str, bytes], message: str = "by hand") -> str:
    """A parentless commit in the bare remote holding `files` (paths may nest)."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        for path, data in files.items():
            blob = subprocess.run(
                ["git", "hash-object", "-w", "--stdin"],
                cwd=world.bare,
                input=data,
                capture_output=True,
                check=True,
            ).stdout.decode()
            subprocess.run(
                ["git", "update-index", "--add", "--cacheinfo", f"100644,{blob.strip()},{path}"],
                cwd=world.bare,
                env=env,
                check=True,
                capture_output=True,
            )
        tree = subprocess.run(
            ["git", "write-tree"],
            cwd=world.bare,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not files:
            tree = git(world.bare, "hash-object", "-t", "tree", "-w", "/dev/null").strip()
    return git(world.bare, "commit-tree", tree, "-m", message).strip()


def set_ref(world: World, ref: str, sha: str) -> None:
    git(world.bare, "update-ref", ref, sha)


def no_traceback(code: int, report: dict[str, Any]) -> None:
    """A pass that ended as the CLI means it to: a JSON report and a documented exit code."""
    assert report, f"no JSON report (exit {code}): the pass crashed"
    assert code in (0, 1, 4, 5), (code, report)


def no_crash(proc: subprocess.CompletedProcess[str]) -> None:
    """No internal error (exit 3, "This is a bug") and no traceback."""
    assert "internal error" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1, 4, 5), (proc.returncode, proc.stderr)


def run_raw(world: World, host: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **world.env}
    env.pop("FOUNDRY_CRASH_AT", None)
    return subprocess.run(
        world.command(*extra, host=host),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def claim_ledger(world: World, execution: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["git", "show", f"{CLAIMS}{execution}:ledger.jsonl"],
        cwd=world.bare,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def apply_id(world: World, name: str) -> str:
    digest = world.digest(name)
    return execution_id(digest, Event("apply", digest))


def claimed(world: World) -> list[str]:
    return [r.removeprefix(CLAIMS) for r in world.refs(CLAIMS)]


# --- 1: a claim ref that is not ours never takes a pass down --------------------------------


JUNK_CLAIMS = {
    "no-claim-json": {"README": b"not a claim\n"},
    "foreign-claim-json": {"claim.json": b'{"owner": "someone else", "note": "mine"}\n'},
    "not-json": {"claim.json": b"<<< not json >>>\n"},
    "odd-fields": {
        "claim.json": b'{"state": "running", "holder": "x", "expires": "soon", "generation": "x"}'
    },
}


@pytest.mark.parametrize("junk", sorted(JUNK_CLAIMS))
def test_a_claim_ref_that_is_not_ours_never_stops_the_pass(world: World, junk: str) -> None:
    mark = world.add_intent("hello")
    world.merge("add hello")
    set_ref(world, f"{CLAIMS}exe-not-ours", hand_commit(world, JUNK_CLAIMS[junk]))
    no_crash(run_raw(world, "a"))
    code, report = run(world, "b")
    no_traceback(code, report)
    # The repository's own work still runs, once, and reaches its trace.
    assert len(lines(mark)) == 1
    assert [world.trace(e)["status"] for e in world.traces()] == ["succeeded"]


def test_a_foreign_claim_at_a_planned_executions_id_is_that_executions_report_line(
    world: World,
) -> None:
    world.add_intent("hello")
    world.add_intent("other")
    world.merge("add two intents")
    started = [apply_id(world, "hello"), apply_id(world, "other")]
    victim = started[0]
    set_ref(world, f"{CLAIMS}{victim}", hand_commit(world, {"claim.json": b'{"mine": true}\n'}))
    proc = run_raw(world, "a")
    no_crash(proc)
    report = json.loads(proc.stdout.splitlines()[-1])
    # The other execution is not stopped by its neighbour's broken claim.
    others = [e for e in started if e != victim]
    assert report["finished"] == {others[0]: "succeeded"}, report
    assert any(victim in e for e in report["errors"]) or victim in report["notClaimed"]


# --- 2: the outbox ref holding junk never takes a pass down ----------------------------------


JUNK_OUTBOX = {
    "entry-without-kind": {"entries/x.json": b'{"payload": {"repo": "x"}}'},
    "nested-entry": {"entries/sub/x.json": b'{"kind": "check", "payload": {}, "attempts": 0}'},
}


@pytest.mark.parametrize("junk", sorted(JUNK_OUTBOX))
def test_junk_on_the_outbox_ref_never_stops_the_pass(world: World, junk: str) -> None:
    mark = world.add_intent("hello")
    world.merge("add hello")
    set_ref(world, "refs/alloy/outbox", hand_commit(world, JUNK_OUTBOX[junk]))
    no_crash(run_raw(world, "a"))
    code, report = run(world, "b")
    no_traceback(code, report)
    assert len(lines(mark)) == 1
    assert [world.trace(e)["status"] for e in world.traces()] == ["succeeded"]


def test_unparseable_outbox_entries_never_stop_the_pass(world: World) -> None:
    mark = world.add_intent("hello")
    world.merge("add hello")
    junk = {"entries/a.json": b"not json", "entries/b.txt": b"{}", "README": b"hi"}
    set_ref(world, "refs/alloy/outbox", hand_commit(world, junk))
    code, report = run(world, "a")
    no_traceback(code, report)
    assert len(lines(mark)) == 1
    assert [world.trace(e)["status"] for e in world.traces()] == ["succeeded"]
    code, report = run(world, "b")
    no_traceback(code, report)
    assert len(lines(mark)) == 1


def test_an_outbox_ref_that_is_not_a_commit_never_stops_the_pass(world: World) -> None:
    mark = world.add_intent("hello")
    world.merge("add hello")
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=world.bare,
        input=b"junk\n",
        capture_output=True,
        check=True,
    ).stdout.decode()
    set_ref(world, "refs/alloy/outbox", blob.strip())
    no_crash(run_raw(world, "a"))
    assert len(lines(mark)) == 1


# --- 3: a claim deleted by hand never makes a started irreversible block run again ----------


def one_step(world: World, effects: str, body: str = "echo running; sleep 1") -> Path:
    mark = world.mark("steps")
    world.work.write(
        {
            ".alloy/alloy.yaml": PROJECT,
            ".alloy/intents/steps.yaml": steps_intent(mark, [("act", effects, body, [])]),
        }
    )
    world.merge("add steps")
    return mark


def test_a_deleted_claim_of_an_indeterminate_execution_never_reruns_its_block(
    world: World,
) -> None:
    mark = one_step(world, "irreversible")
    code, _ = run(world, "a", "--lease", "1", crash="mid-block:act")
    assert code in (-9, 137)
    wait_expired(world)
    code, report = run(world, "b", "--lease", "1")
    assert code == 4, report
    [execution] = world.traces()
    assert world.trace(execution)["status"] == "indeterminate"
    assert starts(mark, "act") == 1
    git(world.bare, "update-ref", "-d", f"{CLAIMS}{execution}")  # by hand
    code, report = run(world, "c", "--lease", "1")
    no_traceback(code, report)
    assert starts(mark, "act") == 1, lines(mark)
    assert world.trace(execution)["status"] == "indeterminate"


def test_a_deleted_claim_of_a_finished_execution_changes_nothing(world: World) -> None:
    mark = one_step(world, "irreversible", "echo ok")
    code, report = run(world, "a")
    assert code == 0, report
    [execution] = report["finished"]
    git(world.bare, "update-ref", "-d", f"{CLAIMS}{execution}")
    before = world.snapshot()
    for host in ("a", "b"):
        code, report = run(world, host)
        assert code == 0, report
        assert report["started"] == report["resumed"] == [], report
    assert world.snapshot() == before
    assert starts(mark, "act") == 1


def test_a_claim_rewritten_by_hand_to_another_holder_fences_the_running_holder(
    world: World,
) -> None:
    """Someone rewrites a running claim to name another holder (generation kept): the holder's
    next compare-and-swap fails, it stops, and never publishes over what the remote says."""
    mark = one_step(world, "irreversible", "echo running; sleep 2")
    proc = subprocess.Popen(
        world.command("--lease", "3", host="a"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for("act to start", lambda: starts(mark, "act") == 1, deadline=30)
        [execution] = claimed(world)
        held = world.claim(execution)
        ledger = subprocess.run(
            ["git", "show", f"{CLAIMS}{execution}:ledger.jsonl"],
            cwd=world.bare,
            capture_output=True,
            check=True,
        ).stdout
        artifact = subprocess.run(
            ["git", "show", f"{CLAIMS}{execution}:artifact.json"],
            cwd=world.bare,
            capture_output=True,
            check=True,
        ).stdout
        forged = {**held, "holder": "intruder", "state": "parked", "expires": 0}
        body = (json.dumps(forged, sort_keys=True) + "\n").encode()
        sha = hand_commit(
            world, {"claim.json": body, "ledger.jsonl": ledger, "artifact.json": artifact}
        )
        set_ref(world, f"{CLAIMS}{execution}", sha)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "internal error" not in err, err
    report = json.loads(out.splitlines()[-1])
    assert execution in report["parked"], report
    assert world.ref(f"{CLAIMS}{execution}") == sha  # never written over
    assert execution not in world.traces()
    # Another host resumes it from the parked claim: the start is there without its end.
    code, report = run(world, "b", "--lease", "1")
    no_traceback(code, report)
    assert starts(mark, "act") == 1, lines(mark)
    assert world.trace(execution)["status"] == "indeterminate"


# --- 4: an undelivered trace in a host's outbox never overwrites a later trace ------------

FREEZE_HOOK = """#!/bin/sh
while read old new ref; do
  if [ "$ref" = refs/heads/alloy/traces ] && [ -e {flag} ]; then
    echo "the traces branch is frozen" >&2
    exit 1
  fi
done
exit 0
"""


def freeze_traces(world: World) -> Path:
    """A pre-receive hook that refuses pushes to the traces branch while a flag file exists."""
    flag = world.tmp / "traces-frozen"
    hook = world.bare / "hooks" / "pre-receive"
    hook.write_text(FREEZE_HOOK.replace("{flag}", json.dumps(str(flag))))
    hook.chmod(0o755)
    flag.touch()
    return flag


APPROVAL_GATE = "        gates:\n          - approval: {from: [alice], quorum: 1}\n"


def test_a_stale_outbox_trace_never_overwrites_a_finished_trace(world: World) -> None:
    mark = world.add_intent("ship", gates=APPROVAL_GATE)
    world.merge("add a gated intent")
    flag = freeze_traces(world)
    code, report = run(world, "a")  # waits on its gate; its trace goes to the outbox
    assert code == 1, report
    [execution] = report["started"]
    assert world.traces() == {}
    assert world.ref("refs/alloy/outbox") is not None
    flag.unlink()
    args = ["approve", execution, "--gate", "work", "--comment", "ok", "--approver", "alice"]
    world.alloy(*args)
    world.merge("approve", compile_=False)
    # B delivers A's entry from the remote outbox, then resumes the execution to its end.
    code, report = run(world, "b")
    assert code == 0, report
    assert report["delivered"] == 1, report
    assert world.trace(execution)["status"] == "succeeded"
    code, report = run(world, "a")  # A comes back with its local outbox
    no_traceback(code, report)
    assert world.trace(execution)["status"] == "succeeded"
    assert len(lines(mark)) == 1


# --- 5: a dead holder whose clock ran ahead ------------------------------------------------


class _Ahead:
    """A host's wall clock, an hour fast."""

    def now(self) -> float:
        return time.time() + 3600

    def sleep(self, seconds: float) -> bool:
        time.sleep(seconds)
        return True


def test_a_dead_holder_with_a_fast_clock_does_not_block_its_execution(world: World) -> None:
    mark = world.add_intent("hello")
    head = world.merge("add hello")
    execution = apply_id(world, "hello")
    data = (world.work.path / ".alloy/artifacts/hello.json").read_bytes()
    mirror = Mirror(world.url, world.tmp / "ahead.git")
    try:
        claims = Claims(mirror, "fast-host", _Ahead(), lease=1)  # type: ignore[arg-type]
        facts = {"event": {"type": "apply", "key": world.digest("hello")}, "inputs": {}}
        claim, why, _ = claims.acquire(execution, artifact=data, commit=head, facts=facts)
        assert claim is not None, why
    finally:
        mirror.close()
    # The fast host dies right here (it never renews). Others pass for a while.
    time.sleep(2)
    for _ in range(4):
        code, report = run(world, "b", "--lease", "1")
        no_traceback(code, report)
        if execution in world.traces():
            break
        time.sleep(1)
    assert execution in world.traces(), report
    assert len(lines(mark)) == 1


# --- 6: the traces branch rewritten or deleted by hand ------------------------------------


@pytest.mark.parametrize("how", ["deleted", "rewound", "replaced"])
def test_a_rewritten_traces_branch_is_repaired_without_running_anything_again(
    world: World, how: str
) -> None:
    hello = world.add_intent("hello")
    on_src = world.add_intent("on-src", on="{push: {paths: ['src/**']}}")
    world.merge("add two intents")
    world.work.write({"src/app.py": "v1"})
    world.merge("change src", compile_=False)
    code, report = run(world, "a")
    assert code == 0, report
    assert len(report["started"]) == 2, report
    done = set(world.traces())
    traces = "refs/heads/alloy/traces"
    if how == "deleted":
        git(world.bare, "update-ref", "-d", traces)
    elif how == "rewound":
        set_ref(world, traces, hand_commit(world, {"README": b"an older tip\n"}))
    else:
        junk = {"traces/hello/exe-junk.json": b"not json", "traces/x.json": b"[1, 2]"}
        set_ref(world, traces, hand_commit(world, junk))
    for host in ("a", "b"):  # the host that ran them, and a fresh one
        code, report = run(world, host)
        no_traceback(code, report)
        assert report["started"] == [], report
    assert done <= set(world.traces())
    assert all(world.trace(e)["status"] == "succeeded" for e in done)
    assert len(lines(hello)) == 1
    assert len(lines(on_src)) == 1
    assert {c["external_id"] for c in run_checks(world)} == done


# --- 7: the artifact file deleted at head while its claim runs ----------------------------


def test_an_execution_whose_artifact_left_head_is_resumed_from_its_claim(world: World) -> None:
    mark = one_step(world, "idempotent", "echo running; sleep 1; echo done")
    code, _ = run(world, "a", "--lease", "1", crash="mid-block:act")
    assert code in (-9, 137)
    [execution] = claimed(world)
    git(world.work.path, "rm", "-q", ".alloy/intents/steps.yaml", ".alloy/artifacts/steps.json")
    world.merge("remove the intent", compile_=False)
    wait_expired(world)
    code, report = run(world, "b", "--lease", "1")
    assert code == 0, report
    assert report["resumed"] == [execution], report
    trace = world.trace(execution)
    assert trace["status"] == "succeeded"
    [act] = [b for b in trace["blocks"] if b["id"] == "act"]
    assert len(act["attempts"]) >= starts(mark, "act") == 2
    code, report = run(world, "c", "--lease", "1")
    assert code == 0, report
    assert report["started"] == report["resumed"] == [], report
    assert starts(mark, "act") == 2


# --- 8: 250 new commits at once, with a merge in the window -------------------------------


def test_250_new_commits_with_a_merge_run_each_push_in_the_window_once(world: World) -> None:
    mark = world.add_intent("on-src", on="{push: {paths: ['src/**']}}")
    world.merge("add a push intent")
    code, report = run(world, "a")
    assert code == 0, report
    assert report["started"] == [], report
    work = world.work.path
    git(work, "checkout", "-q", "-b", "side")
    world.work.write({"src/side.py": "side"})
    side = world.work.commit("side: change src")
    git(work, "checkout", "-q", "main")
    for i in range(240):
        world.work.write({"docs/notes.txt": f"{i}\n"})
        world.work.commit(f"docs {i}")
    git(work, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    merge = git(work, "rev-parse", "HEAD").strip()
    for i in range(8):
        world.work.write({"docs/notes.txt": f"late {i}\n"})
        world.work.commit(f"late docs {i}")
    world.work.write({"src/app.py": "v2"})
    late = world.work.commit("late: change src")
    git(work, "push", "-q", "origin", "HEAD:main")
    procs = [
        subprocess.Popen(world.command(host=h), stdout=subprocess.PIPE, text=True)
        for h in ("a", "b")
    ]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    keys = sorted(world.trace(e)["event"]["key"] for e in world.traces())
    assert keys == sorted([merge, late])
    assert side not in keys
    assert len(lines(mark)) == 2
    assert run(world, "c")[1]["started"] == []


# --- 9: SIGTERM mid-block with --grace 0 ---------------------------------------------------


def settle(world: World, host: str, *, passes: int = 3) -> dict[str, Any]:
    """Pass on `host` until the one execution has a settled trace; that trace."""
    for _ in range(passes):
        code, report = run(world, host, "--lease", "2")
        no_traceback(code, report)
        traces = world.traces()
        if traces:
            [execution] = traces
            trace = world.trace(execution)
            if trace["status"] in ("succeeded", "failed", "indeterminate"):
                return trace
        wait_expired(world)
    raise AssertionError(f"no settled trace after {passes} passes")


@pytest.mark.parametrize("target", ["process", "group"])
@pytest.mark.parametrize("effects", ["idempotent", "irreversible"])
def test_sigterm_mid_block_with_no_grace_loses_nothing(
    world: World, effects: str, target: str
) -> None:
    mark = one_step(world, effects, "echo running; sleep 5")
    proc = subprocess.Popen(
        world.command("--lease", "2", "--grace", "0", host="a"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for("act to start", lambda: starts(mark, "act") == 1, deadline=30)
        if target == "process":
            os.kill(proc.pid, signal.SIGTERM)
        else:  # as systemd stops a service: every process of its group, git's included
            os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "internal error" not in err, err
    assert "Traceback" not in err, err
    assert json.loads(out.splitlines()[-1])
    trace = settle(world, "a")
    [act] = [b for b in trace["blocks"] if b["id"] == "act"]
    if effects == "irreversible":
        assert starts(mark, "act") == 1, lines(mark)
        assert trace["status"] == "indeterminate", trace["status"]
    else:
        assert starts(mark, "act") == 2, lines(mark)
        assert trace["status"] == "succeeded", trace["status"]
    assert len(act["attempts"]) >= starts(mark, "act")
    code, report = run(world, "b")
    no_traceback(code, report)
    assert report["started"] == [], report


# --- 10: the remote goes away mid-pass and comes back --------------------------------------


@pytest.mark.parametrize("back", ["same-host", "other-host"])
def test_the_remote_renamed_away_mid_pass_and_back(world: World, back: str) -> None:
    mark = one_step(world, "irreversible", "echo running; sleep 2")
    proc = subprocess.Popen(
        world.command("--lease", "3", host="a"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    away = world.bare.with_name("remote.git.away")
    try:
        wait_for("act to start", lambda: starts(mark, "act") == 1, deadline=30)
        world.bare.rename(away)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if away.exists():
            away.rename(world.bare)
    assert proc.returncode == 1, err
    assert "internal error" not in err, err
    assert "Traceback" not in err, err
    report = json.loads(out.splitlines()[-1])
    assert report["errors"], report
    wait_expired(world)
    trace = settle(world, "a" if back == "same-host" else "b")
    assert starts(mark, "act") == 1, lines(mark)
    if back == "same-host":  # it knows how act ended: its outbox says so
        assert trace["status"] == "succeeded", trace
    else:  # the remote never heard the end: indeterminate is the honest answer
        assert trace["status"] in ("succeeded", "indeterminate"), trace
    [act] = [b for b in trace["blocks"] if b["id"] == "act"]
    assert len(act["attempts"]) == 1
    for host in ("a", "b", "c"):
        code, report = run(world, host)
        no_traceback(code, report)
        assert report["started"] == [], report
    assert starts(mark, "act") == 1


# --- 11: a paused holder (a VM stopped past its lease) comes back -------------------------


def claim_has_open_act(world: World) -> bool:
    [execution] = claimed(world) or [""]
    if not execution:
        return False
    kinds = [(r["type"], r.get("block")) for r in claim_ledger(world, execution)]
    return ("attempt-started", "act") in kinds


def test_a_paused_holder_that_comes_back_publishes_nothing_over_the_new_holder(
    world: World,
) -> None:
    body = 'echo running; if [ "$ALLOY_ATTEMPT" = 1 ]; then sleep 0.3; else sleep 1; fi'
    mark = one_step(world, "idempotent", body)
    a = subprocess.Popen(
        world.command("--lease", "1", "--grace", "0", host="a"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for("act to start", lambda: starts(mark, "act") == 1, deadline=30)
        wait_for("its start on the remote", lambda: claim_has_open_act(world), deadline=30)
        os.kill(a.pid, signal.SIGSTOP)
        wait_expired(world)
        code, report = run(world, "b", "--lease", "1")
        assert code == 0, report
        [execution] = report["finished"]
        before = world.snapshot()
        os.kill(a.pid, signal.SIGCONT)
        out, err = a.communicate(timeout=60)
    finally:
        if a.poll() is None:
            os.killpg(a.pid, signal.SIGKILL)
            a.wait()
    assert "internal error" not in err, err
    report = json.loads(out.splitlines()[-1])
    assert execution in report["parked"], report
    after = world.snapshot()
    for ref in (f"{CLAIMS}{execution}", "refs/heads/alloy/traces", "refs/alloy/forge"):
        assert after.get(ref) == before.get(ref), ref
    trace = world.trace(execution)
    assert trace["status"] == "succeeded"
    [act] = [b for b in trace["blocks"] if b["id"] == "act"]
    assert len(act["attempts"]) >= starts(mark, "act") == 2


def test_a_paused_holder_sharing_the_state_directory_writes_nothing_after_a_takeover(
    world: World,
) -> None:
    body = 'echo running; if [ "$ALLOY_ATTEMPT" = 1 ]; then sleep 0.3; else sleep 3; fi'
    mark = one_step(world, "idempotent", body)
    a = subprocess.Popen(
        world.command("--lease", "1", "--grace", "0", host="shared"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    b: subprocess.Popen[str] | None = None
    try:
        wait_for("act to start", lambda: starts(mark, "act") == 1, deadline=30)
        wait_for("its start on the remote", lambda: claim_has_open_act(world), deadline=30)
        os.kill(a.pid, signal.SIGSTOP)
        wait_for("attempt 1 to end", lambda: "act 1 end" in lines(mark), deadline=30)
        wait_expired(world)
        b = subprocess.Popen(
            world.command("--lease", "1", host="shared"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        wait_for("the new holder's attempt", lambda: starts(mark, "act") == 2, deadline=30)
        os.kill(a.pid, signal.SIGCONT)
        a.communicate(timeout=60)
        _out, err = b.communicate(timeout=60)
        assert b.returncode == 0, err
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    [execution] = claimed(world)
    gens = [r.get("gen", 0) for r in claim_ledger(world, execution)]
    assert gens == sorted(gens), gens  # nothing of generation 1 after generation 2 began
    trace = world.trace(execution)
    assert trace["status"] == "succeeded"
    [act] = [x for x in trace["blocks"] if x["id"] == "act"]
    assert [t["number"] for t in act["attempts"]] == [1, 2]


# --- 12: a fenced holder never frees the lane slot its successor holds ---------------------


def lane_step(name: str, log: Path, first: str, later: str) -> str:
    body = (
        f'echo "enter {name} $ALLOY_ATTEMPT" >> {json.dumps(str(log))}; echo running; '
        f'if [ "$ALLOY_ATTEMPT" = 1 ]; then sleep {first}; else sleep {later}; fi; '
        f'echo "exit {name} $ALLOY_ATTEMPT" >> {json.dumps(str(log))}'
    )
    return lane_intent(name, body)


def test_a_fenced_holder_never_frees_the_lane_slot_of_its_successor(world: World) -> None:
    log = world.tmp / "lane.log"
    world.work.write({".alloy/intents/deploy-a.yaml": lane_step("deploy-a", log, "0.3", "5")})
    world.merge("deploy-a")
    a = subprocess.Popen(
        world.command("--lease", "1", "--grace", "0", host="a"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    b: subprocess.Popen[str] | None = None
    try:
        wait_for("deploy-a to enter", lambda: "enter deploy-a 1" in lines(log), deadline=30)
        os.kill(a.pid, signal.SIGSTOP)
        wait_for("attempt 1 to end", lambda: "exit deploy-a 1" in lines(log), deadline=30)
        wait_expired(world)
        b = subprocess.Popen(
            world.command("--lease", "1", host="b"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        wait_for("B's attempt", lambda: "enter deploy-a 2" in lines(log), deadline=30)
        os.kill(a.pid, signal.SIGCONT)
        a.communicate(timeout=60)
        world.work.write({".alloy/intents/deploy-b.yaml": lane_step("deploy-b", log, "1", "1")})
        world.merge("deploy-b")
        code, report = run(world, "c", "--lease", "1")
        no_traceback(code, report)
        b.communicate(timeout=60)
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    events = lines(log)
    start = events.index("enter deploy-a 2")
    end = events.index("exit deploy-a 2") if "exit deploy-a 2" in events else len(events)
    assert not [e for e in events[start:end] if "deploy-b" in e], events
    statuses = {
        world.trace(e)["artifact"]["name"]: world.trace(e)["status"] for e in world.traces()
    }
    # Nobody asked to cancel deploy-a: its successor's run must succeed.
    assert statuses["deploy-a"] == "succeeded", (statuses, events)


# --- 13: races the other tests do not cover -------------------------------------------------


def test_the_claims_scan_and_the_plan_racing_on_two_hosts_run_each_execution_once(
    world: World,
) -> None:
    """Host A dies right after claiming; the intent changes, so the old execution is now only
    a claim (the scan resumes it) and the new one is planned; two fresh hosts race."""
    mark = world.add_intent("hello")
    world.merge("add hello")
    code, _ = run(world, "a", "--lease", "1", crash="claim-taken")
    assert code in (-9, 137)
    [old] = claimed(world)
    world.add_intent("hello", script="true")
    world.merge("change hello")
    new = apply_id(world, "hello")
    wait_expired(world)
    procs = [
        subprocess.Popen(
            world.command("--lease", "1", host=h),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for h in ("b", "c")
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    ran = sorted(line.split()[0] for line in lines(mark))
    assert ran == sorted([old, new]), lines(mark)
    assert {e: world.trace(e)["status"] for e in world.traces()} == {
        old: "succeeded",
        new: "succeeded",
    }


def test_four_hosts_repairing_one_finished_claim_at_once_publish_it_once(world: World) -> None:
    mark = world.add_intent("hello")
    world.merge("add hello")
    code, _ = run(world, "a", crash="release-after")
    assert code in (-9, 137)
    [execution] = claimed(world)
    procs = [
        subprocess.Popen(
            world.command(host=h), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for h in ("a", "b", "c", "d")
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, 1), err
    late = run(world, "e")  # whatever waits in the outbox is delivered by anyone
    assert late[0] == 0, late[1]
    assert world.trace(execution)["status"] == "succeeded"
    assert [c["external_id"] for c in run_checks(world)] == [execution]
    assert world.ref("refs/alloy/outbox") is None
    assert len(lines(mark)) == 1


def test_two_processes_sharing_a_state_directory_while_one_crashes(world: World) -> None:
    """Same host, same state directory, two `foundry reconcile` at once: one dies mid-block
    of an irreversible step; a third comes later with the same directory."""
    names = [f"job-{i}" for i in range(3)]
    world.work.write({".alloy/alloy.yaml": PROJECT})
    for name in names:
        world.add_intent(name, script="echo running; sleep 0.3", effects="irreversible")
    world.merge("three irreversible intents")
    env = {**os.environ, "FOUNDRY_CRASH_AT": "mid-block:work"}
    crashing = subprocess.Popen(
        world.command("--lease", "1", host="shared"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    clean_env = {k: v for k, v in os.environ.items() if k != "FOUNDRY_CRASH_AT"}
    other = subprocess.Popen(
        world.command("--lease", "1", host="shared"),
        env=clean_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    crashing.communicate(timeout=120)
    assert crashing.returncode in (-9, 137)
    _out, err = other.communicate(timeout=120)
    assert other.returncode in (0, 4), err
    for _ in range(3):
        wait_expired(world)
        code, report = run(world, "shared", "--lease", "1")
        no_traceback(code, report)
        settled = {e: world.trace(e)["status"] for e in world.traces()}
        if len(settled) == 3 and all(s != "waiting" for s in settled.values()):
            break
    for name in names:
        ran = lines(world.mark(name))
        assert len(ran) <= 1, (name, ran)  # an irreversible block never starts twice
    traces = [world.trace(e) for e in world.traces()]
    assert len(traces) == 3
    for trace in traces:
        assert trace["status"] in ("succeeded", "indeterminate"), trace["status"]
        ran = len(lines(world.mark(trace["artifact"]["name"])))
        [work] = trace["blocks"]
        assert len(work["attempts"]) >= ran
