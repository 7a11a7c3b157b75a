"""Every gate kind under `foundry reconcile` on a real remote (issue 11, "Must show"): each
kind x pass / wait / fail / expiry (where it has one) x judged again by the same host and by a
new host (its own state directory: it knows only what the remote holds — the ledger travels
with the claim). Each case asserts the trace status on the traces branch, the exit code, and how
often the block really ran (it appends a line to a marker file outside every worktree).

Every case starts the same way: an intent `ship` whose block `work` has the gate is merged, and
a first pass leaves it waiting (or, for the window, decides at once). Then something happens on
the remote (an approval is merged, a check run published, the policy changed, time passes) and a
second pass judges it again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from controllers.forge import CheckRun, LocalForge
from controllers.gitops import Mirror
from foundry.boundary import digest_of
from tests.conftest import git, run_cli
from tests.reconcile_support import World, lines

#: Expiry, timeouts: short enough for a test, long enough that one pass never crosses them.
EXPIRES = 6


@dataclass(frozen=True)
class Case:
    kind: str
    outcome: str
    gates: str
    #: What happens between the first and the second pass.
    then: Callable[[World, str], None]
    status: str
    code: int
    runs: int
    #: The first pass's trace status and exit code.
    first: tuple[str, int] = ("waiting", 5)
    #: Prepares the world before the intent is merged (a policy script, a hand-made artifact).
    setup: Callable[[World], None] | None = None
    #: Words the final trace's gate decisions (or reason) must hold.
    says: str = ""


def _gate(yaml: str) -> str:
    return f"        gates:\n          - {yaml}\n"


def _nothing(world: World, execution: str) -> None:
    """Nothing happens (the gate is judged again on the same facts)."""


def _approve(*extra: str, approver: str = "bob") -> Callable[[World, str], None]:
    def then(world: World, execution: str) -> None:
        world.approve(execution, approver, *extra)
        world.merge(f"{approver} decides", compile_=False)

    return then


def _after_deadline(then: Callable[[World, str], None] | None = None, *, before: bool = False):  # type: ignore[no-untyped-def]
    """Wait past the gate's deadline; `then` happens before (`before`) or after the wait."""

    def step(world: World, execution: str) -> None:
        if then is not None and before:
            then(world, execution)
        time.sleep(EXPIRES + 1.5)
        if then is not None and not before:
            then(world, execution)

    return step


def _check(conclusion: str) -> Callable[[World, str], None]:
    """A CI system publishes `ci/tests` on the commit the execution runs at (the local forge's
    records on the remote)."""

    def then(world: World, execution: str) -> None:
        path = ".alloy/artifacts/ship.json"
        commit = git(world.work.path, "log", "-1", "--format=%H", "--", path).strip()
        mirror = Mirror(world.url, world.tmp / "ci-mirror.git")
        try:
            LocalForge(mirror).publish_check(
                CheckRun(
                    commit=commit,
                    name="ci/tests",
                    status="completed",
                    conclusion=conclusion,  # type: ignore[arg-type]
                    title=f"tests: {conclusion}",
                    summary="",
                    external_id="ci-1",
                )
            )
        finally:
            mirror.close()

    return then


POLICY = "policy/gate.sh"


def _policy(world: World, body: str) -> None:
    """The default branch's policy script: counts its runs in a marker, then `body`."""
    runs = world.mark("policy-runs")
    world.work.write({POLICY: f'#!/bin/sh\necho run >> "{runs}"\n{body}\n'})


def _policy_first(world: World) -> None:
    _policy(world, "echo 'not yet'; exit 75")


def _merge_policy(body: str) -> Callable[[World, str], None]:
    def then(world: World, execution: str) -> None:
        _policy(world, body)
        world.merge("change the policy", compile_=False)

    return then


def _propose_policy(world: World, execution: str) -> None:
    """A pull request's branch makes the policy pass; it is never merged."""
    git(world.work.path, "checkout", "-q", "-b", "loosen")
    _policy(world, "exit 0")
    world.work.commit("loosen the policy")
    git(world.work.path, "push", "-q", "origin", "loosen")
    git(world.work.path, "checkout", "-q", "main")


def _base(world: World) -> None:
    """Intent `base` exists, but runs only on a Request: it has not succeeded yet."""
    world.add_intent("base", on="{request: true}")


def _run_base(world: World, execution: str) -> None:
    """A Request for `base` is merged: the next pass runs it, then `ship` (its `after` gate
    opens by the trace that same pass published)."""
    world.alloy("request", "base", "--reason", "needed first", "--requested-by", "carol")
    world.merge("run base", compile_=False)


def _never_window(world: World) -> None:
    """A hand-made artifact whose window never opens (`alloy check` refuses the cron, so it is
    written past it, digest and all)."""
    world.add_intent("ship", gates=_gate('window: {cron: "0 0 1 * *"}'))
    world.alloy("compile")
    path = world.work.path / ".alloy/artifacts/ship.json"
    document = json.loads(path.read_text())
    document["spec"]["blocks"][0]["gates"][0]["cron"] = "* * 31 2 *"
    del document["digest"]
    document["digest"] = digest_of(document)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


APPROVAL = _gate("approval: {from: [bob], quorum: 1}")
APPROVAL_EXPIRES = _gate(f"approval: {{from: [bob], quorum: 1, expires: {EXPIRES}s}}")
CHECK = _gate("check: {names: [ci/tests]}")
CHECK_TIMEOUT = _gate(f"check: {{names: [ci/tests], timeout: {EXPIRES}s}}")
COMMAND = _gate(f"command: {{run: [sh, {POLICY}], timeout: 3s}}")
AFTER = _gate("after: {intent: base}")
OTHER_MONTH = time.gmtime().tm_mon % 12 + 1

CASES = [
    Case("approval", "pass", APPROVAL, _approve(), "succeeded", 0, 1, says="approved by bob"),
    Case("approval", "wait", APPROVAL, _nothing, "waiting", 5, 0, says="0 of 1"),
    Case("approval", "fail", APPROVAL, _approve("--reject"), "failed", 4, 0, says="rejected"),
    Case("approval", "expiry", APPROVAL_EXPIRES, _after_deadline(), "failed", 4, 0, says="expired"),
    Case(
        "approval",
        "landed-before-deadline",
        APPROVAL_EXPIRES,
        _after_deadline(_approve(), before=True),
        "succeeded",
        0,
        1,
        says="approved by bob",
    ),
    Case(
        "approval",
        "landed-after-deadline",
        APPROVAL_EXPIRES,
        _after_deadline(_approve()),
        "failed",
        4,
        0,
        says="landed after it: bob",
    ),
    Case("check", "pass", CHECK, _check("success"), "succeeded", 0, 1, says="green: ci/tests"),
    Case("check", "wait", CHECK, _nothing, "waiting", 5, 0, says="waiting for check(s)"),
    Case("check", "fail", CHECK, _check("failure"), "failed", 4, 0, says="check(s) failed"),
    Case("check", "expiry", CHECK_TIMEOUT, _after_deadline(), "failed", 4, 0, says="timed out"),
    Case(
        "window",
        "pass",
        _gate('window: {cron: "* * * * *"}'),
        _nothing,
        "succeeded",
        0,
        1,
        first=("succeeded", 0),
        says="inside the window",
    ),
    Case(
        "window",
        "wait",
        _gate(f'window: {{cron: "* * * {OTHER_MONTH} *"}}'),
        _nothing,
        "waiting",
        5,
        0,
        says="outside the window",
    ),
    Case(
        "window",
        "fail",
        "",
        _nothing,
        "failed",
        0,
        0,
        first=("failed", 4),
        setup=_never_window,
        says="never opens",
    ),
    Case(
        "after",
        "pass",
        AFTER,
        _run_base,
        "succeeded",
        0,
        1,
        setup=_base,
        says="base succeeded",
    ),
    Case("after", "wait", AFTER, _nothing, "waiting", 5, 0, setup=_base, says="not succeeded"),
    Case(
        "command",
        "pass",
        COMMAND,
        _merge_policy("echo fine; exit 0"),
        "succeeded",
        0,
        1,
        setup=_policy_first,
        says="policy command passed: fine",
    ),
    Case(
        "command",
        "wait",
        COMMAND,
        _propose_policy,
        "waiting",
        5,
        0,
        setup=_policy_first,
        says="policy command says wait: not yet",
    ),
    Case(
        "command",
        "fail",
        COMMAND,
        _merge_policy("echo no; exit 1"),
        "failed",
        4,
        0,
        setup=_policy_first,
        says="exit code 1: no",
    ),
    Case(
        "command",
        "timeout",
        COMMAND,
        _merge_policy("sleep 30"),
        "failed",
        4,
        0,
        setup=_policy_first,
        says="timed out after 3s",
    ),
]


@pytest.mark.parametrize("judge", ["same-host", "new-host"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}-{c.outcome}" for c in CASES])
def test_gate_matrix_under_reconcile(world: World, case: Case, judge: str) -> None:
    if case.setup is not None:
        case.setup(world)
    if case.gates:
        world.add_intent("ship", gates=case.gates)
    mark = world.mark("ship")
    world.merge("add the gated intent", compile_=case.setup is not _never_window)

    first = world.reconcile("--recheck", "0.01")
    started = first.report["started"]
    assert len(started) == 1, first.report
    execution = started[0]
    assert (world.trace(execution)["status"], first.code) == case.first, first.result
    assert not lines(mark) or case.first[0] == "succeeded"

    case.then(world, execution)
    host = "a" if judge == "same-host" else "b"
    second = world.reconcile("--recheck", "0.01", host=host)
    trace = world.trace(execution)
    assert trace["status"] == case.status, (trace, second.report)
    assert second.code == case.code, (second.result, second.report)
    assert len(lines(mark)) == case.runs, lines(mark)
    said = " | ".join([g["reason"] for g in trace["gates"]] + [trace.get("reason") or ""])
    assert case.says in said, said
    if case.kind == "command":
        # The policy ran on every judgment, and only ever from the default branch: the
        # proposed branch's `exit 0` never ran (the gate still waits on `not yet`).
        assert len(lines(world.mark("policy-runs"))) >= 2
    if case.status in ("succeeded", "failed"):
        assert world.claim(execution)["state"] == "finished"


def test_a_passed_gate_stays_passed_while_a_later_gate_waits_past_its_expiry(
    world: World,
) -> None:
    """Issue 11, item 4: an approval gate passed; the next gate of the block still waits when
    the approval's expiry comes. The approval stays passed; the block runs once the policy
    passes."""
    _policy_first(world)
    gates = (
        f"        gates:\n          - approval: {{from: [bob], quorum: 1, expires: {EXPIRES}s}}\n"
        f"          - command: {{run: [sh, {POLICY}], timeout: 3s}}\n"
    )
    mark = world.add_intent("ship", gates=gates)
    world.merge("add the gated intent")
    execution = world.reconcile().report["started"][0]
    _approve()(world, execution)
    assert world.reconcile().code == 5
    time.sleep(EXPIRES + 1.5)
    again = world.reconcile("--recheck", "0.01", host="b")
    assert again.code == 5, again.result
    trace = world.trace(execution)
    assert trace["status"] == "waiting"
    decisions = [(g["index"], g["decision"]) for g in trace["gates"]]
    assert (0, "failed") not in decisions, trace["gates"]
    assert decisions[-1] == (1, "waiting")
    _merge_policy("exit 0")(world, execution)
    done = world.reconcile()
    assert done.code == 0, done.result
    assert world.trace(execution)["status"] == "succeeded"
    assert len(lines(mark)) == 1


def test_a_gate_that_cannot_be_judged_fails_only_its_own_execution(world: World) -> None:
    """Issue 11, item 2: a window that never opens (a hand-made artifact) fails its execution
    with the reason in its trace; the pass goes on, and the execution that finished before it
    in the same pass gets its trace and its claim released."""
    good = world.add_intent("alpha")
    _never_window(world)  # intent `ship`, after `alpha` in the pass
    world.merge("two intents", compile_=False)
    run = world.reconcile()
    assert run.code == 4, run.result  # an execution failed; nothing crashed
    by_intent = {world.trace(e)["intent"]: e for e in run.report["started"]}
    assert set(by_intent) == {"alpha", "ship"}
    assert world.trace(by_intent["alpha"])["status"] == "succeeded"
    assert len(lines(good)) == 1
    bad = world.trace(by_intent["ship"])
    assert bad["status"] == "failed"
    assert any("never opens" in g["reason"] for g in bad["gates"]), bad["gates"]
    for execution in by_intent.values():
        assert world.claim(execution)["state"] == "finished"
    assert "Traceback" not in run.result.err


def test_foundry_run_says_which_gates_it_cannot_judge(world: World, tmp_path: Path) -> None:
    """`foundry run` has no forge: it names the approval gate it cannot judge, and runs the
    policy command from origin/HEAD of the clone."""
    _policy(world, "exit 0")
    gates = (
        "        gates:\n          - command: {run: [sh, policy/gate.sh], timeout: 3s}\n"
        "          - approval: {from: [bob], quorum: 1}\n"
    )
    world.add_intent("ship", gates=gates)
    world.merge("add the gated intent")
    git(world.work.path, "remote", "set-head", "origin", "main")
    # The clone's own copy of the policy says no; the default branch's says yes.
    _policy(world, "exit 1")
    result = run_cli(
        "foundry",
        "run",
        ".",
        "--artifact",
        "ship",
        "--state",
        str(tmp_path / "state"),
        cwd=world.work.path,
    )
    assert result.code == 5, result.err
    assert "gate 1 (approval): waits here" in result.err
    assert "judged by `foundry reconcile`" in result.err
    # The command gate passed (origin/HEAD's policy; the clone's own would fail it: exit 4),
    # and the approval gate waits: exit 5.
    assert len(lines(world.mark("policy-runs"))) == 1


def test_a_check_the_pass_itself_publishes_opens_a_waiting_gate_in_the_same_pass(
    world: World,
) -> None:
    """Issue 11, item 5: `ship` waits on the check run of `base`'s execution, which the same
    pass publishes (on the same commit). Our own push to the forge is not news to the next pass;
    the gate is judged again at once, not a re-check interval later."""
    world.add_intent("base")
    world.alloy("compile")
    name = f"foundry: base (apply {world.digest('base')[:19]})"
    gate = f"        gates:\n          - check: {{names: [{json.dumps(name)}]}}\n"
    mark = world.add_intent("ship", gates=gate)
    world.merge("base, and ship after base's check")
    run = world.reconcile()
    assert run.code == 0, run.result
    statuses = {world.trace(e)["intent"]: world.trace(e)["status"] for e in run.report["started"]}
    assert statuses == {"base": "succeeded", "ship": "succeeded"}, run.report
    assert len(lines(mark)) == 1
