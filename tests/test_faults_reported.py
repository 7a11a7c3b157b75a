"""The failures reported against exactly-once and nothing-lost (issue 10), each reproduced on real
remotes with real processes: hosts are killed at named crash points (`FOUNDRY_CRASH_AT`, see
foundry/faults.py), come back with old state directories, or race each other."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from controllers.claims import Claims
from controllers.forge import ForgeError, LocalForge
from controllers.gitops import GitError, Mirror, PushResult
from controllers.reconcile import Reconciler, Settings
from foundry.ports import SystemClock
from tests.conftest import git
from tests.foundry_support import artifact_document, block, write_artifact
from tests.reconcile_support import World, lane_intent, lines, wait_for
from tests.reconcile_support import run_host as run
from tests.test_fault_points import PROJECT


def wait_expired(world: World) -> None:
    def expired() -> bool:
        claims = world.refs("refs/alloy/claims/")
        return all(
            (c := world.claim(r.removeprefix("refs/alloy/claims/")))["state"] != "running"
            or c["expires"] < time.time() - 0.2
            for r in claims
        )

    wait_for("every lease to run out", expired, deadline=30)


def steps_intent(mark: Path, blocks: list[tuple[str, str, str, list[str]]]) -> str:
    """An intent whose blocks (id, effects, shell body, needs) each log start and end."""
    out = [
        "apiVersion: alloy.dev/v1",
        "kind: Intent",
        "metadata:",
        "  name: steps",
        "  owners: [alice]",
        "spec:",
        "  state: active",
        "  goal: Each step runs as its effects allow.",
        "  automation:",
        "    on: {apply: true}",
        "    blocks:",
    ]
    for name, effects, body, needs in blocks:
        script = (
            f'echo "{name} $ALLOY_ATTEMPT start" >> "$MARK"\n{body}\n'
            f'echo "{name} $ALLOY_ATTEMPT end" >> "$MARK"\n'
        )
        out += [
            f"      - id: {name}",
            f"        run: [sh, -c, {json.dumps(script)}]",
            f"        env: {{MARK: {json.dumps(str(mark))}}}",
            f"        effects: {effects}",
            "        timeout: 1m",
        ]
        if needs:
            out.append(f"        needs: [{', '.join(needs)}]")
    return "\n".join(out) + "\n"


def starts(mark: Path, name: str) -> int:
    return len([x for x in lines(mark) if x.startswith(f"{name} ") and x.endswith(" start")])


# --- 1: an old local ledger never hides what a later holder did --------------------------


def test_an_old_local_ledger_never_hides_a_later_holders_irreversible_start(world: World) -> None:
    mark = world.mark("steps")
    # The first attempt of `first` prints a large tail; later attempts print little: host A's
    # local ledger ends up longer in bytes than what host B publishes.
    big = 'if [ "$ALLOY_ATTEMPT" = 1 ]; then head -c 16000 /dev/zero | tr "\\\\0" x; fi'
    world.work.write(
        {
            ".alloy/alloy.yaml": PROJECT,
            ".alloy/intents/steps.yaml": steps_intent(
                mark,
                [
                    ("first", "none", big, []),
                    ("second", "irreversible", "echo running; sleep 0.2", ["first"]),
                ],
            ),
        }
    )
    world.merge("add steps")
    # A: `first` ran (its large tail only in A's ledger); A dies before `second` is published.
    code, _ = run(world, "a", "--lease", "2", crash="ledger-push-before:second")
    assert code in (-9, 137)
    wait_expired(world)
    # B: takes over, runs `first` again, publishes and starts `second`, and dies mid-block.
    code, _ = run(world, "b", "--lease", "2", crash="mid-block:second")
    assert code in (-9, 137)
    assert starts(mark, "second") == 1
    wait_expired(world)
    # A comes back with its old state directory: it must know `second` may have run.
    code, report = run(world, "a", "--lease", "2")
    assert code == 4, report  # indeterminate
    assert starts(mark, "second") == 1, lines(mark)
    [execution] = world.traces()
    trace = world.trace(execution)
    assert trace["status"] == "indeterminate"
    blocks = {b["id"]: b for b in trace["blocks"]}
    assert blocks["second"]["status"] == "indeterminate"
    # Every process that started is in the trace: both runs of `first`, the one of `second`.
    assert len(blocks["first"]["attempts"]) == starts(mark, "first") == 2
    assert len(blocks["second"]["attempts"]) == 1
    # A fresh host agrees, and starts nothing.
    code, report = run(world, "c", "--lease", "2")
    assert report["started"] == []
    assert starts(mark, "second") == 1


# --- 2: a finished execution whose holder died before publishing is repaired ------------


@pytest.mark.parametrize("point", ["release-after", "check-publish", "trace-push-before"])
def test_a_finished_claim_without_its_trace_is_repaired_by_any_host(
    world: World, point: str
) -> None:
    mark = world.add_intent("hello")
    world.merge("add hello")
    code, _ = run(world, "a", crash=point)
    assert code in (-9, 137)
    [ref] = world.refs("refs/alloy/claims/")
    execution = ref.removeprefix("refs/alloy/claims/")
    assert world.claim(execution)["state"] == "finished"
    assert world.traces() == {}
    # A host that never ran it publishes the trace and the check run from the claim.
    code, report = run(world, "b")
    assert code == 0, report
    assert report["repaired"] == [execution]
    assert world.trace(execution)["status"] == "succeeded"
    checks = run_checks(world)
    assert [c["external_id"] for c in checks] == [execution]
    assert checks[0]["conclusion"] == "success"
    assert len(lines(mark)) == 1  # it ran once; the repair ran nothing
    before = world.snapshot()
    code, report = run(world, "a")
    assert code == 0
    assert report["started"] == []
    assert report["repaired"] == []
    assert world.snapshot() == before


def bad_execution(world: World) -> str:
    return next(e for e in world.traces() if world.trace(e)["artifact"]["name"] == "needs-input")


def run_checks(world: World) -> list[dict[str, Any]]:
    proc = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "refs/alloy/forge", "checks/"],
        cwd=world.bare,
        capture_output=True,
        text=True,
        check=False,
    )
    return [
        json.loads(world.remote("show", f"refs/alloy/forge:{path}")) for path in proc.stdout.split()
    ]


# --- 3: a holder never loses its own claim to itself --------------------------------------


def test_a_push_that_landed_unheard_is_not_a_lost_lease(world: World) -> None:
    mirror = Mirror(world.url, world.tmp / "m")
    claims = Claims(mirror, "host-a", SystemClock(), lease=30)
    try:
        claim, why, _ = claims.acquire("exe-00000000000000aa", artifact=b"{}", commit="0" * 40)
        assert claim is not None, why
        real_push = mirror.push

        def landed_but_unheard(updates: Any) -> PushResult:
            real_push(updates)  # the remote takes it ...
            raise GitError("connection reset")  # ... and the answer never comes back

        mirror.push = landed_but_unheard  # type: ignore[method-assign]
        with pytest.raises(GitError):
            claims.renew(claim, b'{"seq":1}\n')
        mirror.push = real_push  # type: ignore[method-assign]
        claims.renew(claim, b'{"seq":1}\n{"seq":2}\n')  # no LeaseLost: that write was ours
        held = claims.read(claim.execution)
        assert held is not None
        assert (held.holder, held.generation, held.state) == ("host-a", 1, "running")
        # Someone else taking it over is still a lost lease.
        other = Claims(Mirror(world.url, world.tmp / "m2"), "host-b", SystemClock(), lease=30)
        ref = f"refs/alloy/claims/{claim.execution}"
        git(world.bare, "update-ref", "-d", ref)
        taken, _, _ = other.acquire(claim.execution)
        assert taken is not None
        from controllers.claims import LeaseLost

        with pytest.raises(LeaseLost):
            claims.renew(claim, None)
    finally:
        mirror.close()


def test_renewals_and_ledger_publications_never_collide(world: World) -> None:
    """A short lease (renewals every third of a second) and twenty irreversible steps, each
    published before it starts and after it ends, on one claim: nothing is lost to ourselves."""
    mark = world.mark("steps")
    chain = [("s00", "irreversible", "sleep 0.05", [])]
    chain += [(f"s{i:02d}", "irreversible", "sleep 0.05", [f"s{i - 1:02d}"]) for i in range(1, 20)]
    world.work.write(
        {".alloy/alloy.yaml": PROJECT, ".alloy/intents/steps.yaml": steps_intent(mark, chain)}
    )
    world.merge("add steps")
    code, report = run(world, "a", "--lease", "1")
    assert code == 0, report
    assert report["parked"] == {}, report
    assert report["errors"] == [], report
    [execution] = report["finished"]
    assert report["finished"][execution] == "succeeded"
    assert world.claim(execution)["state"] == "finished"
    assert all(starts(mark, name) == 1 for name, *_ in chain)


# --- 4: an execution that cannot start is its own failure, never the pass's ---------------


def test_an_execution_that_cannot_start_gets_a_trace_and_the_others_theirs(world: World) -> None:
    mark = world.add_intent("fine")
    world.alloy("compile")
    # An artifact that no check let through today (a required input and an automatic
    # trigger), as an older Alloy could have compiled it.
    document = artifact_document(
        "needs-input",
        [block("work", ["sh", "-c", "echo ran >> ran.txt"])],
        inputs={"version": {"type": "string", "required": True}},
        triggers={"apply": True, "request": False},
    )
    write_artifact(world.work.path, document)
    world.merge("add two intents", compile_=False)
    code, report = run(world, "a")
    assert code == 4, report  # an execution failed; the pass did not
    assert report["errors"] == [], report
    traces = {world.trace(e)["artifact"]["name"]: world.trace(e) for e in world.traces()}
    assert traces["fine"]["status"] == "succeeded"
    assert len(lines(mark)) == 1
    bad = traces["needs-input"]
    assert bad["status"] == "failed"
    assert "needs-input cannot start" in bad["reason"]
    assert "input 'version' is required" in bad["reason"]
    assert "--input" not in bad["reason"]  # no CLI flag to pass here
    shown = subprocess.run(
        ["git", "show", f"alloy/traces:traces/needs-input/{bad_execution(world)}.md"],
        cwd=world.bare,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Why: needs-input cannot start: input 'version' is required" in shown
    assert len(run_checks(world)) == 2
    code, report = run(world, "a")
    assert code == 0, report
    assert report["started"] == [], report


# --- 5: a push runs once, with the intent of its commit, at its commit --------------------


def test_a_push_runs_once_with_the_artifact_and_tree_of_its_commit(world: World) -> None:
    mark = world.mark("on-src")
    body = 'echo "$ALLOY_EXECUTION $(git rev-parse HEAD) $(cat src/app.py)" >> "$MARK"'

    def push_intent(goal: str) -> str:
        return (
            "apiVersion: alloy.dev/v1\nkind: Intent\nmetadata:\n  name: on-src\n"
            "  owners: [alice]\nspec:\n  state: active\n"
            f"  goal: {goal}\n  automation:\n    on: {{push: {{paths: ['src/**']}}}}\n"
            "    blocks:\n      - id: work\n"
            f"        run: [sh, -c, {json.dumps(body)}]\n"
            f"        env: {{MARK: {json.dumps(str(mark))}}}\n"
            "        effects: idempotent\n        timeout: 1m\n"
        )

    world.work.write({".alloy/intents/on-src.yaml": push_intent("Runs on each change of src.")})
    world.merge("c0: add the push intent")
    assert run(world, "b")[1]["started"] == []  # host B passes at c0
    world.work.write({"src/app.py": "v1"})
    c1 = world.merge("c1: change src", compile_=False)
    code, report = run(world, "a")  # host A runs the push of c1
    assert code == 0, report
    assert len(report["started"]) == 1, report
    world.work.write({".alloy/intents/on-src.yaml": push_intent("Runs on every change of src.")})
    world.merge("c2: reword the intent only")
    code, report = run(world, "b")  # host B remembers c0: it must not run c1 again
    assert code == 0, report
    assert report["started"] == [], report
    [line] = lines(mark)
    execution, head, content = line.split()
    assert (head, content) == (c1, "v1")  # a worktree of the pushed commit
    trace = world.trace(execution)
    assert trace["event"] == {"type": "push", "key": c1}
    # ... with the artifact the intent compiled to at c1.
    at_c1 = json.loads(world.remote("show", f"{c1}:.alloy/artifacts/on-src.json"))
    assert trace["artifact"]["digest"] == at_c1["digest"]
    # A host with no memory at all computes the same set: nothing to run.
    assert run(world, "c")[1]["started"] == []


def test_push_events_missed_by_every_host_still_run_once_each(world: World) -> None:
    mark = world.add_intent("on-src", on="{push: {paths: ['src/**']}}")
    world.merge("add a push intent")
    shas = []
    for i in range(3):
        world.work.write({"src/app.py": f"v{i}"})
        shas.append(world.merge(f"change {i}", compile_=False))
    code, report = run(world, "a")  # the first pass of any host: every pushed commit once
    assert code == 0, report
    assert len(report["started"]) == 3, report
    events = sorted(world.trace(e)["event"]["key"] for e in world.traces())
    assert events == sorted(shas)
    assert len(lines(mark)) == 3
    assert run(world, "b")[1]["started"] == []


def test_a_schedule_slot_runs_once_even_when_the_intent_changes_within_it(world: World) -> None:
    from foundry.ports import FakeClock

    mark = world.add_intent("hourly", on="{schedule: {cron: '0 * * * *'}}")
    world.merge("an hourly intent")
    hour = 1_764_000_000.0  # an hour boundary
    a = world.reconciler("a", clock=FakeClock(hour + 30))
    try:
        assert len(a.pass_once().started) == 1
    finally:
        a.close()
    world.add_intent("hourly", on="{schedule: {cron: '0 * * * *'}}", script="true")  # a new digest
    world.merge("reword the hourly intent")
    b = world.reconciler("b", clock=FakeClock(hour + 90))
    try:
        report = b.pass_once()
    finally:
        b.close()
    assert report.started == [], report
    assert any("ran as" in line for line in report.skipped), report.skipped
    assert len(lines(mark)) == 1


# --- 6: a lane's limit holds across hosts ------------------------------------------------


def deploy(name: str, log: Path) -> str:
    where = json.dumps(str(log))
    return lane_intent(
        name, f'echo "enter {name}" >> {where}; sleep 1.5; echo "exit {name}" >> {where}'
    )


def test_a_lane_limit_of_one_holds_across_two_hosts(world: World) -> None:
    log = world.tmp / "lane.log"
    names = ["deploy-a", "deploy-b", "deploy-c"]
    world.work.write({f".alloy/intents/{n}.yaml": deploy(n, log) for n in names})
    world.merge("three deploys in one lane")
    for _ in range(6):  # rounds of two hosts reconciling at once, until every deploy ran
        procs = [
            subprocess.Popen(
                world.command(host=h), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for h in ("a", "b")
        ]
        for proc in procs:
            _out, err = proc.communicate(timeout=180)
            assert proc.returncode in (0, 5), err  # 5: one waits in its lane
        traces = {
            world.trace(e)["artifact"]["name"]: world.trace(e)["status"] for e in world.traces()
        }
        if all(traces.get(n) == "succeeded" for n in names):
            break
    else:
        raise AssertionError(f"the lane never let every deploy run: {traces}")
    inside: list[str] = []
    for line in lines(log):
        verb, name = line.split()
        if verb == "enter":
            assert not inside, f"{name} entered while {inside} ran: {lines(log)}"
            inside.append(name)
        else:
            assert inside == [name], lines(log)
            inside.clear()
    assert sorted(line.split()[1] for line in lines(log) if line.startswith("enter")) == names
    assert world.refs("refs/alloy/lanes/")  # the lane lives on the remote


# --- 7: check runs under contention are never stranded ----------------------------------


class _DownForge(LocalForge):
    def publish_checks(self, runs: list[Any]) -> int:
        raise ForgeError("the forge is down")

    def publish_check(self, run: Any) -> bool:
        raise ForgeError("the forge is down")


def test_a_check_run_one_host_could_not_publish_is_delivered_by_another(world: World) -> None:
    world.add_intent("hello")
    world.merge("add hello")
    settings = Settings(repo=world.url, state_dir=world.state("a"))
    reconciler = Reconciler(settings)
    reconciler.forge = _DownForge(reconciler.mirror)
    try:
        report = reconciler.pass_once()
    finally:
        reconciler.close()
    assert any("check run" in e and "outbox" in e for e in report.errors), report.errors
    [execution] = report.finished
    assert world.trace(execution)["status"] == "succeeded"  # the outbox is on the remote
    assert world.ref("refs/alloy/outbox") is not None
    assert run_checks(world) == []
    code, fresh = run(world, "b")  # another host, with nothing of A's
    assert code == 0, fresh
    assert fresh["delivered"] == 1
    assert [c["external_id"] for c in run_checks(world)] == [execution]
    assert world.ref("refs/alloy/outbox") is None


def test_eight_racing_passes_strand_no_check_run(world: World) -> None:
    names = [f"race-{i:02d}" for i in range(16)]
    for name in names:
        world.add_intent(name)
    world.merge("sixteen intents")
    procs = [
        subprocess.Popen(
            world.command(host=f"h{n}"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for n in range(8)
    ]
    results = [(p, *p.communicate(timeout=180)) for p in procs]
    for proc, out, err in results:
        report = json.loads(out.splitlines()[-1])
        # Exit 1 exactly when something waits in the outbox (on the remote, for any host).
        assert proc.returncode == (1 if report["outbox"] else 0), (err, report)
    executions = set(world.traces())
    assert len(executions) == 16
    published = {c["external_id"] for c in run_checks(world)}
    if published != executions:
        assert world.ref("refs/alloy/outbox") is not None
        code, report = run(world, "late")
        assert code == 0, report
        published = {c["external_id"] for c in run_checks(world)}
    assert published == executions
    assert world.ref("refs/alloy/outbox") is None


# --- found by the soak: a writer killed inside a file:// remote's ref update ----------------


def test_a_stale_ref_lock_left_by_a_killed_writer_does_not_strand_an_execution(
    world: World,
) -> None:
    mark = world.add_intent("hello")
    world.merge("add hello")
    code, _ = run(world, "a", "--lease", "1", crash="claim-taken")
    assert code in (-9, 137)
    [ref] = world.refs("refs/alloy/claims/")
    # The writer of the next update of that ref died holding its lock (on file://, git's
    # receiving side runs in the pushing host's process group).
    lock = world.bare / f"{ref}.lock"
    lock.write_text("")
    wait_expired(world)
    fresh = time.time()
    os.utime(lock, (fresh, fresh))
    code, report = run(world, "b", "--lease", "1")
    assert code == 1, report
    assert any("stale lock" in e for e in report["errors"]), report
    assert lock.exists()  # a fresh lock may be a live writer's: it is left alone
    assert world.traces() == {}
    old = time.time() - 120
    os.utime(lock, (old, old))
    time.sleep(1.2)  # the same host looks at it again one lease later, nothing else moving
    code, report = run(world, "b", "--lease", "1")
    assert code == 0, report
    assert not lock.exists()
    [execution] = world.traces()
    assert world.trace(execution)["status"] == "succeeded"
    assert len(lines(mark)) == 1


def test_a_host_killed_while_adding_a_worktree_is_not_stuck(world: World) -> None:
    """Killed inside `git worktree add`, a host leaves its mirror with a worktree whose HEAD
    names nothing; every later fetch tripped over it. The next pass takes it away."""
    world.add_intent("first")
    world.merge("add first")
    code, report = run(world, "a")
    assert code == 0, report
    mirror = world.state("a") / "mirror.git"
    admin = mirror / "worktrees" / "exe-0000000000000000"
    admin.mkdir(parents=True)
    (admin / "HEAD").write_text("0" * 40 + "\n")
    (admin / "locked").write_text("initializing\n")
    (admin / "commondir").write_text("../..\n")
    half = world.state("a") / "worktrees" / "exe-0000000000000000"
    half.mkdir(parents=True)
    (admin / "gitdir").write_text(f"{half / '.git'}\n")
    mark = world.add_intent("second")
    world.merge("add second")
    code, report = run(world, "a")
    assert code == 0, report
    assert len(report["started"]) == 1, report
    assert len(lines(mark)) == 1
    assert not admin.exists()
    assert not half.exists()


def test_hosts_leave_an_indeterminate_execution_alone_until_an_approval_comes(
    world: World,
) -> None:
    """Found by the soak: hosts took an indeterminate execution from each other on every timed
    re-check, forever. Only an owner's Approval (a commit) can move it on."""
    mark = world.mark("steps")
    world.work.write(
        {
            ".alloy/alloy.yaml": PROJECT,
            ".alloy/intents/steps.yaml": steps_intent(
                mark, [("act", "irreversible", "echo running; sleep 1", [])]
            ),
        }
    )
    world.merge("add steps")
    code, _ = run(world, "a", "--lease", "1", crash="mid-block:act")
    assert code in (-9, 137)
    wait_expired(world)
    code, report = run(world, "b", "--lease", "1")
    assert code == 4, report
    [execution] = world.traces()
    code, report = run(world, "a", "--lease", "1")  # A comes back once: news for it, it looks
    assert code == 4, report
    generation = world.claim(execution)["generation"]
    before = world.snapshot()
    for host in ("a", "b"):  # timed re-checks on a quiet remote, by both hosts
        settings = Settings(repo=world.url, state_dir=world.state(host), lease=1, recheck=0.0)
        reconciler = Reconciler(settings)
        try:
            quiet = reconciler.pass_once()
        finally:
            reconciler.close()
        assert quiet.resumed == [], quiet
        assert any("waits for an Approval" in line for line in quiet.skipped), quiet.skipped
    assert world.claim(execution)["generation"] == generation
    assert world.snapshot() == before
    assert starts(mark, "act") == 1


# --- a block that switched its worktree to a branch ------------------------------------------


def test_a_worktree_a_block_switched_to_a_branch_is_neither_dropped_nor_forgotten(
    world: World,
) -> None:
    """A block ran `git switch -c feature` in its worktree (its HEAD names a branch now). The
    next worktree the mirror makes (another execution's, a policy checkout) must not take it
    for a creation that was killed and delete it, and a resume still finds its commit."""
    world.add_intent("any")
    commit = world.merge("a commit to check out")
    state = world.tmp / "state"
    mirror = Mirror(world.url, state / "mirror.git")
    mirror.fetch(["refs/heads/main"])
    running = state / "worktrees" / "exe-a"
    mirror.add_worktree(running, commit)
    git(running, "switch", "-q", "-c", "feature")
    (running / "made-by-the-block.txt").write_text("work in progress\n")
    mirror.add_worktree(state / "worktrees" / "exe-b", commit)
    assert (running / "made-by-the-block.txt").exists()
    assert mirror.worktree_head(running) == commit


# --- a remote that accepts and never answers ----------------------------------------------


def test_a_remote_that_never_answers_fails_like_one_that_is_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A black-holed network: the remote accepts the connection and says nothing. Every git
    command that talks to it is killed after `FOUNDRY_GIT_TIMEOUT` and fails as a remote that
    is away does (GitError), so a pass, a renewal or a block's start is never held for good."""
    import contextlib
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:  # every connection taken, none ever answered
        while True:
            try:
                held.append(silent.accept()[0])
            except OSError:
                return  # the test closed the socket

    accepting = threading.Thread(target=accept, daemon=True)
    accepting.start()
    monkeypatch.setenv("FOUNDRY_GIT_TIMEOUT", "2")
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file:git")
    mirror = Mirror(f"git://127.0.0.1:{silent.getsockname()[1]}/x.git", tmp_path / "m.git")
    outcomes: list[BaseException | None] = []

    def talk() -> None:
        for call in (
            lambda: mirror.heads(["refs/heads/main"]),
            lambda: mirror.fetch(["refs/heads/main"]),
        ):
            try:
                call()
                outcomes.append(None)
            except BaseException as exc:  # noqa: BLE001 - what it raised is the result
                outcomes.append(exc)

    talking = threading.Thread(target=talk, daemon=True)
    talking.start()
    talking.join(timeout=120)
    try:
        assert not talking.is_alive(), "git still waits on a remote that never answers"
        assert len(outcomes) == 2
        for outcome in outcomes:
            assert isinstance(outcome, GitError), outcome
            assert "did not complete" in str(outcome), outcome
    finally:
        with contextlib.suppress(OSError):
            silent.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        silent.close()
        accepting.join(timeout=10)
        for conn in held:
            conn.close()
