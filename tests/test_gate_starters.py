"""`forbidSelf` for executions that no Request started (issue 11, item 3): the starter of an
apply, push or schedule execution is the author of the change that brought the artifact's
version to the default branch (on a plain remote the commit's author) — and for a push, the
pushed commit's author too. Their approvals do not count; someone else's does.
"""

from __future__ import annotations

import pytest

from tests.conftest import git
from tests.reconcile_support import World, lines

GATE = "        gates:\n          - approval: {from: [carol, dave, bob], quorum: 1}\n"
TRIGGERS = {
    "apply": "{apply: true}",
    "push": '{push: {paths: ["src/**"]}}',
    "schedule": '{schedule: {cron: "* * * * *"}}',
}


def _as(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Commits made from now on are authored by `name`."""
    monkeypatch.setenv("GIT_AUTHOR_NAME", name)
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", f"{name}@example.com")


def _approve(world: World, execution: str, *approvers: str) -> None:
    for approver in approvers:
        world.approve(execution, approver, "--name", f"{execution}-{approver}")
    world.merge(f"approvals by {', '.join(approvers)}", compile_=False)


@pytest.mark.parametrize("event", ["apply", "push", "schedule"])
def test_the_author_of_the_change_may_not_approve_its_execution(
    world: World, monkeypatch: pytest.MonkeyPatch, event: str
) -> None:
    _as(monkeypatch, "carol")  # carol writes the intent: she brought the artifact
    mark = world.add_intent("ship", on=TRIGGERS[event], gates=GATE, effects="irreversible")
    world.merge("carol adds ship")
    starters = ["carol"]
    if event == "push":
        _as(monkeypatch, "dave")  # dave's commit is what the push execution runs for
        world.work.write({"src/app.txt": "v2\n"})
        world.work.commit("dave changes the app")
        git(world.work.path, "push", "-q", "origin", "HEAD:main")
        starters.append("dave")

    first = world.reconcile()
    ours = [e for e in first.report["started"] if world.trace(e)["event"]["type"] == event]
    # A schedule may start several slots (its catch-up window); one of them is enough.
    assert len(ours) == 1 or (event == "schedule" and ours), first.report
    execution = ours[0]
    assert world.trace(execution)["status"] == "waiting"

    _as(monkeypatch, "erin")  # whoever merges the approvals is nobody here
    _approve(world, execution, *starters)
    ignored = world.reconcile()
    trace = world.trace(execution)
    assert trace["status"] == "waiting", (trace, ignored.report)
    assert not lines(mark)
    reason = trace["gates"][-1]["reason"]
    for who in starters:
        assert f"{who} (may not approve their own change)" in reason, reason

    _approve(world, execution, "bob")
    done = world.reconcile()
    assert world.trace(execution)["status"] == "succeeded", done.report
    assert [line.split()[0] for line in lines(mark)] == [execution]


def test_without_forbid_self_the_author_may_approve(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as(monkeypatch, "carol")
    gate = "        gates:\n          - approval: {from: [carol], quorum: 1, forbidSelf: false}\n"
    mark = world.add_intent("ship", gates=gate)
    world.merge("carol adds ship")
    execution = world.reconcile().report["started"][0]
    _approve(world, execution, "carol")
    done = world.reconcile()
    assert done.code == 0, done.result
    assert world.trace(execution)["status"] == "succeeded"
    assert len(lines(mark)) == 1


def test_a_request_is_started_by_its_requester_not_the_intents_author(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For a Request the requester is the starter: the intent's author may approve it."""
    _as(monkeypatch, "carol")
    mark = world.add_intent("ship", on="{request: true}", gates=GATE)
    world.merge("carol adds ship")
    _as(monkeypatch, "dave")
    world.alloy("request", "ship", "--reason", "deploy now", "--requested-by", "dave")
    world.merge("dave asks", compile_=False)
    execution = world.reconcile().report["started"][0]
    _approve(world, execution, "dave")
    assert world.trace(execution)["status"] == "waiting"
    world.reconcile()
    assert "dave (may not approve" in world.trace(execution)["gates"][-1]["reason"]
    _approve(world, execution, "carol")
    world.reconcile()
    assert world.trace(execution)["status"] == "succeeded"
    assert len(lines(mark)) == 1


def test_a_push_execution_waiting_longer_than_the_history_window_still_resumes(
    world: World,
) -> None:
    """A push execution waits on an approval while more than the 200 commits the planner looks
    at land on the default branch. When the approval is merged, it resumes and succeeds: an
    unfinished execution is never forgotten because its event left the plan's window."""
    gate = "        gates:\n          - approval: {from: [bob], quorum: 1}\n"
    mark = world.add_intent("ship", on='{push: {paths: ["src/**"]}}', gates=gate)
    world.merge("add ship")
    world.work.write({"src/app.txt": "v2\n"})
    world.work.commit("change the app")
    git(world.work.path, "push", "-q", "origin", "HEAD:main")
    first = world.reconcile()
    (execution,) = [e for e in first.report["started"] if world.trace(e)["event"]["type"] == "push"]
    assert world.trace(execution)["status"] == "waiting"
    for n in range(205):
        git(world.work.path, "commit", "-q", "--allow-empty", "-m", f"unrelated {n}")
    git(world.work.path, "push", "-q", "origin", "HEAD:main")
    assert world.reconcile().code in (0, 5)
    _approve(world, execution, "bob")
    done = world.reconcile()
    assert world.trace(execution)["status"] == "succeeded", done.report
    assert [line.split()[0] for line in lines(mark)] == [execution]
