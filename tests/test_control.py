"""Emergency stops recorded on the remote (`foundry pause`, `foundry resume`, `foundry cancel`)
obeyed by every host and by the GitHub Action, on real remotes (`file://` and `git daemon`),
with real processes; and executions whose artifact changed ended as superseded (issue 14,
items 7 and "cancel, pause and resume")."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import Result, git, run_cli
from tests.github_prism import GitHubRig
from tests.reconcile_support import World, lines, run_host, wait_for
from tests.test_action_events import Job, push_payload

APPROVAL = "        gates:\n          - approval: {from: [alice], quorum: 1}\n"
SCHEMAS = {
    name: json.loads(
        (
            Path(__file__).resolve().parent.parent / f"docs/schemas/foundry-{name}.schema.json"
        ).read_text()
    )
    for name in ("pause", "resume", "cancel")
}


@pytest.fixture(params=["file", "daemon"])
def remote(request: pytest.FixtureRequest) -> World:
    """The same tests over a `file://` remote and over `git daemon`."""
    name = "world" if request.param == "file" else "daemon_world"
    world: World = request.getfixturevalue(name)
    return world


def foundry(world: World, *args: str, cwd: Path | None = None) -> Result:
    """`foundry ARGS` in the engineer's clone (its `origin` is the remote)."""
    return run_cli("foundry", *args, cwd=cwd or world.work.path, env=world.env)


def status(world: World, *args: str) -> dict[str, Any]:
    result = foundry(world, "status", "--all", "--format", "json", *args)
    assert result.code == 0, result.err
    data: dict[str, Any] = json.loads(result.out)
    return data


def row(world: World, execution: str) -> dict[str, Any]:
    found = [e for e in status(world)["executions"] if e["execution"] == execution]
    assert found, status(world)
    return found[0]


def checks(world: World) -> list[dict[str, Any]]:
    out = git(world.bare, "ls-tree", "-r", "--name-only", "refs/alloy/forge", "checks/")
    return [
        json.loads(git(world.bare, "show", f"refs/alloy/forge:{path}")) for path in out.splitlines()
    ]


def control_files(world: World) -> list[str]:
    if world.ref("refs/alloy/control") is None:
        return []
    return git(world.bare, "ls-tree", "-r", "--name-only", "refs/alloy/control").split()


def long_intent(world: World, name: str, body: str, *, effects: str = "idempotent") -> Path:
    """An intent whose one block marks its start, runs `body`, and marks its end."""
    mark = world.mark(name)
    script = f'echo "start $ALLOY_ATTEMPT" >> "$MARK"\n{body}\necho "end $ALLOY_ATTEMPT" >> "$MARK"'
    after = json.dumps('echo after >> "$MARK"')
    world.work.write(
        {
            f".alloy/intents/{name}.yaml": (
                "apiVersion: alloy.dev/v1\nkind: Intent\nmetadata:\n"
                f"  name: {name}\n  owners: [alice]\nspec:\n  state: active\n"
                "  goal: It runs until it is told to stop.\n  automation:\n"
                "    on: {apply: true}\n    blocks:\n"
                "      - id: work\n"
                f"        run: [sh, -c, {json.dumps(script)}]\n"
                f"        env: {{MARK: {json.dumps(str(mark))}}}\n"
                f"        effects: {effects}\n        timeout: 5m\n"
                "      - id: after\n"
                f"        run: [sh, -c, {after}]\n"
                f"        env: {{MARK: {json.dumps(str(mark))}}}\n"
                "        effects: idempotent\n        timeout: 1m\n"
                "        needs: [work]\n"
            )
        }
    )
    return mark


def background(world: World, host: str, *extra: str) -> subprocess.Popen[str]:
    """`foundry reconcile --once --json` as host `host`, running while the test goes on."""
    return subprocess.Popen(
        world.command(*extra, host=host),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **world.env},
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    out, err = proc.communicate(timeout=120)
    report = next((json.loads(x) for x in reversed(out.splitlines()) if x.startswith("{")), {})
    return proc.returncode, report, err


# --- pause and resume across two hosts ---------------------------------------------------


def test_a_pause_holds_an_intent_on_every_host_until_it_is_resumed(remote: World) -> None:
    world = remote
    mark = world.add_intent("hello")
    world.add_intent("other")
    world.merge("add hello and other")
    paused = foundry(world, "pause", "hello", "--reason", "incident 42: database failover")
    assert paused.code == 0, paused.err
    assert "intent hello paused by Test Author <author@example.com>" in paused.out
    recorded = json.loads(git(world.bare, "show", "refs/alloy/control:pauses/hello.json"))
    jsonschema.validate({"schemaVersion": 1, "action": "pause", "remote": world.url,
                         "record": recorded}, SCHEMAS["pause"])  # fmt: skip
    assert control_files(world) == ["pauses/hello.json"]

    # Host A: `other` runs, `hello` is held — with why, who, until when and how to lift it.
    code, report = run_host(world, "a")
    assert code == 5, report  # something waits: the held execution
    [held] = report["held"]
    why = report["held"][held]
    assert "incident 42: database failover" in why
    assert "Test Author" in why
    assert "until resumed" in why
    assert "foundry resume hello" in why
    assert lines(mark) == []
    assert len(lines(world.mark("other"))) == 1
    [check] = [c for c in checks(world) if c["external_id"] == held]
    assert (check["status"], check["conclusion"]) == ("queued", None)
    assert check["title"] == "hello: paused"
    assert "incident 42" in check["summary"]

    # Host B, with an empty state directory, holds it too.
    code, report = run_host(world, "b")
    assert list(report["held"]) == [held]
    assert report["started"] == []
    assert lines(mark) == []

    # The text a person reads says the same.
    said = subprocess.run(
        [a for a in world.command(host="c") if a != "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **world.env},
        timeout=120,
        check=False,
    )
    assert said.returncode == 5, said.stderr
    assert (
        "held (intent hello paused by Test Author <author@example.com> until resumed: "
        in said.stdout
    )
    assert "(`foundry resume hello` lifts it)" in said.stdout
    # `foundry status` says it is held, why, and the command that lifts the pause.
    shown = row(world, held)
    assert shown["state"] == "held"
    assert "incident 42" in shown["why"]
    assert shown["next"] == "foundry resume hello"
    assert status(world)["pauses"][0]["intent"] == "hello"

    resumed = foundry(world, "resume", "hello", "--format", "json")
    assert resumed.code == 0, resumed.err
    jsonschema.validate(json.loads(resumed.out), SCHEMAS["resume"])
    assert control_files(world) == []
    code, report = run_host(world, "b")
    assert code == 0, report
    assert report["started"] == [held]
    assert report["held"] == {}
    assert len(lines(mark)) == 1
    assert world.trace(held)["status"] == "succeeded"
    code, report = run_host(world, "a")
    assert report["started"] == []
    assert len(lines(mark)) == 1
    assert row(world, held)["state"] == "succeeded"


def test_a_pause_of_everything_ends_by_itself_when_it_expires(world: World) -> None:
    mark = world.add_intent("hello")
    world.merge("add hello")
    paused = foundry(world, "pause", "--all", "--reason", "release freeze", "--until", "4s")
    assert paused.code == 0, paused.err
    code, report = run_host(world, "a")
    assert code == 5, report
    assert len(report["held"]) == 1, report
    assert "every intent paused by" in next(iter(report["held"].values()))
    assert lines(mark) == []
    until = json.loads(git(world.bare, "show", "refs/alloy/control:pauses/_all.json"))["until"]
    assert until is not None
    # Nothing moves on the remote; once the pause has expired the next pass runs it anyway.
    wait_for("the pause to expire", lambda: status(world)["pauses"] and _expired(until))
    code, report = run_host(world, "a")
    assert code == 0, report
    assert len(report["started"]) == 1
    assert report["held"] == {}
    assert len(lines(mark)) == 1


def _expired(until: str) -> bool:
    from foundry.ledger import parse_rfc3339

    return time.time() > parse_rfc3339(until) + 0.2


def test_a_pause_lets_running_blocks_finish_and_starts_nothing_after_them(world: World) -> None:
    go = world.tmp / "go"
    mark = long_intent(world, "slow", f'while [ ! -e "{go}" ]; do sleep 0.05; done')
    world.merge("add slow")
    proc = background(world, "a", "--lease", "3")
    wait_for("the block to start", lambda: lines(mark) == ["start 1"])
    paused = foundry(world, "pause", "slow", "--reason", "hold after this step")
    assert paused.code == 0, paused.err  # the pause is on the remote: `after` never starts
    go.touch()
    code, report, err = finish(proc)
    assert code == 5, (report, err)
    assert lines(mark) == ["start 1", "end 1"]  # `work` finished; `after` did not start
    [execution] = report["held"]
    trace = world.trace(execution)
    assert trace["reason"].startswith("held: intent slow paused by")
    assert "hold after this step" in trace["reason"]
    assert world.claim(execution)["state"] == "parked"
    # Host B, empty state: still held; after the resume, it goes on with `after` only.
    code, report = run_host(world, "b")
    assert list(report["held"]) == [execution]
    assert lines(mark)[-1] == "end 1"
    assert foundry(world, "resume", "slow").code == 0
    code, report = run_host(world, "b")
    assert code == 0, report
    assert report["resumed"] == [execution]
    assert lines(mark) == ["start 1", "end 1", "after"]
    assert world.trace(execution)["status"] == "succeeded"


def test_a_pause_with_stop_running_stops_the_running_block_at_once(world: World) -> None:
    mark = long_intent(world, "slow", 'if [ "$ALLOY_ATTEMPT" = 1 ]; then sleep 300; fi')
    world.merge("add slow")
    proc = background(world, "a", "--lease", "3")
    wait_for("the block to start", lambda: lines(mark) == ["start 1"])
    paused = foundry(world, "pause", "slow", "--reason", "stop it now", "--stop-running")
    assert paused.code == 0, paused.err
    code, report, err = finish(proc)  # it ends without waiting for `sleep 300`
    assert code == 5, (report, err)
    [execution] = report["held"]
    trace = world.trace(execution)
    assert "stop it now" in trace["reason"]
    [work] = [b for b in trace["blocks"] if b["id"] == "work"]
    assert work["attempts"][0]["outcome"] == "interrupted"
    assert foundry(world, "resume", "slow").code == 0
    code, report = run_host(world, "b")  # idempotent: it runs again, then `after`
    assert code == 0, report
    assert lines(mark) == ["start 1", "start 2", "end 2", "after"]
    assert world.trace(execution)["status"] == "succeeded"


# --- cancel across two hosts -------------------------------------------------------------


def test_a_cancel_stops_an_execution_running_on_another_host(remote: World) -> None:
    world = remote
    mark = long_intent(world, "slow", "sleep 300")
    world.merge("add slow")
    proc = background(world, "a", "--lease", "3")
    wait_for("the block to start", lambda: lines(mark) == ["start 1"])
    # The engineer finds it from their clone — running, on host A — and cancels it.
    running = [e for e in status(world)["executions"] if e["state"] == "running"]
    assert len(running) == 1, foundry(world, "status", "--all").out
    execution = running[0]["execution"]
    assert running[0]["intent"] == "slow"
    assert running[0]["holder"]
    cancelled = foundry(world, "cancel", execution, "--reason", "wrong target")
    assert cancelled.code == 0, cancelled.err
    code, report, err = finish(proc)
    assert code == 0, (report, err)
    assert report["finished"] == {execution: "cancelled"}
    assert lines(mark) == ["start 1"]  # stopped; `after` never started
    trace = world.trace(execution)
    assert trace["status"] == "cancelled"
    assert trace["reason"] == "cancelled by Test Author <author@example.com>: wrong target"
    [check] = [c for c in checks(world) if c["external_id"] == execution]
    assert check["conclusion"] == "cancelled"
    assert "wrong target" in check["title"]
    # Another host starts nothing; cancelling it again is refused.
    code, report = run_host(world, "b")
    assert report["started"] == []
    assert report["resumed"] == []
    again = foundry(world, "cancel", execution, "--reason", "again")
    assert again.code == 1
    assert "already ended cancelled" in again.err


def test_a_cancel_ends_a_waiting_execution_on_a_host_that_never_ran_it(world: World) -> None:
    mark = world.add_intent("ship", gates=APPROVAL, effects="irreversible")
    world.merge("add ship")
    code, report = run_host(world, "a")
    assert code == 5, report
    execution = report["started"][0]
    assert row(world, execution)["next"].startswith(f"alloy approve {execution} --gate work/0")
    cancelled = foundry(world, "cancel", execution, "--reason", "not this week", "--format", "json")
    assert cancelled.code == 0, cancelled.err
    jsonschema.validate(json.loads(cancelled.out), SCHEMAS["cancel"])
    assert "not this week" in row(world, execution)["why"]  # recorded, not yet carried out
    code, report = run_host(world, "b")
    assert code == 0, report
    assert report["ended"][execution].endswith("not this week")
    trace = world.trace(execution)
    assert (trace["status"], trace["reason"].endswith("not this week")) == ("cancelled", True)
    assert {b["status"] for b in trace["blocks"]} == {"cancelled"}
    assert lines(mark) == []


def test_bad_stops_are_refused_and_change_nothing(world: World) -> None:
    world.add_intent("hello")
    world.merge("add hello")
    before = world.snapshot()
    cases = [
        (("pause", "helo", "--reason", "x"), "did you mean hello?"),
        (("pause", "hello", "--reason", "x", "--until", "yesterday"), "--until 'yesterday'"),
        (
            ("pause", "hello", "--reason", "x", "--until", "2001-01-01T00:00:00Z"),
            "not in the future",
        ),
        (("pause", "hello", "--reason", "  "), "--reason is empty"),
        (("resume", "hello"), "intent hello is not paused"),
        (("cancel", "exe-0000000000000000", "--reason", "x"), "no execution exe-0000000000000000"),
        (("cancel", "nonsense", "--reason", "x"), "is not an execution id"),
    ]
    for args, said in cases:
        result = foundry(world, *args)
        assert result.code == 1, (args, result.out, result.err)
        assert said in result.err, (args, result.err)
        assert "Traceback" not in result.err
    usage = foundry(world, "pause", "hello", "--all", "--reason", "x")
    assert usage.code == 2
    assert world.snapshot() == before


# --- item 7: superseded, not left waiting ----------------------------------------------------


def test_an_execution_whose_artifact_changed_ends_superseded_not_waiting(world: World) -> None:
    mark = world.add_intent("ship", gates=APPROVAL, effects="irreversible")
    world.merge("add ship")
    code, report = run_host(world, "a")
    assert code == 5, report
    old = report["started"][0]
    assert world.trace(old)["status"] == "waiting"
    # The intent changes (a new artifact): the old execution can never be approved usefully.
    text = (world.work.path / ".alloy/intents/ship.yaml").read_text()
    world.work.write({".alloy/intents/ship.yaml": text.replace("exactly once", "once")})
    world.merge("change ship")
    code, report = run_host(world, "b")
    assert code == 5, report  # the new execution waits for its approval
    trace = world.trace(old)
    assert trace["status"] == "skipped"
    assert trace["reason"].startswith("superseded: intent ship changed")
    assert report["ended"][old] == trace["reason"]
    [new] = report["started"]
    assert new != old
    assert world.trace(new)["status"] == "waiting"
    [check] = [c for c in checks(world) if c["external_id"] == old]
    assert check["status"] == "completed"
    assert "superseded" in check["title"]
    assert lines(mark) == []
    # Settled: a later pass of any host does not touch it again.
    code, report = run_host(world, "a")
    assert old not in report["ended"]
    assert old not in report["resumed"]


# --- the GitHub Action obeys the same records --------------------------------------------


def test_the_action_obeys_a_pause_and_a_cancel_recorded_on_the_remote(
    world: World, github: GitHubRig
) -> None:
    mark = world.add_intent("hello")
    before = world.work.commit("nothing yet")
    sha = world.merge("hello")
    assert foundry(world, "pause", "hello", "--reason", "incident 7", "--until", "1d").code == 0
    job = Job(world, github.api_url, github.token)
    payload = push_payload(repo=github.repo, ref="refs/heads/main", before=before, after=sha)
    code, out, err = job.run("push", payload, repo=github.repo)
    assert code == 0, err + out
    assert lines(mark) == []
    assert job.outputs()["executions-started"] == ""
    summary = job.summary.read_text(encoding="utf-8")
    assert "held: intent hello paused by Test Author" in summary
    assert "incident 7" in summary
    [run] = github.fake.check_runs()
    assert (run.status, run.head_sha, run.output_title) == ("queued", sha, "hello: paused")
    held = run.external_id
    # A cancel of the held execution: the Action ends it cancelled (the pause does not hide it).
    refused = foundry(world, "cancel", held, "--reason", "not needed any more")
    assert refused.code == 1
    assert "--force" in refused.err
    assert foundry(world, "cancel", held, "--reason", "not needed any more", "--force").code == 0
    code, out, err = job.run("push", payload, repo=github.repo)
    assert code == 0, err + out
    assert world.trace(held)["status"] == "cancelled"
    assert "not needed any more" in world.trace(held)["reason"]
    assert "not needed any more" in job.summary.read_text(encoding="utf-8")
    [run] = github.fake.check_runs()
    assert run.conclusion == "cancelled"
    assert lines(mark) == []
    # Resumed: nothing runs again (it ended); a new artifact starts as usual.
    assert foundry(world, "resume", "hello").code == 0
    code, out, err = job.run("push", payload, repo=github.repo)
    assert code == 0
    assert job.outputs()["executions-started"] == ""
    assert lines(mark) == []


def test_the_action_starts_what_a_pause_held_once_it_is_resumed(
    world: World, github: GitHubRig
) -> None:
    mark = world.add_intent("hello")
    before = world.work.commit("nothing yet")
    sha = world.merge("hello")
    assert foundry(world, "pause", "--all", "--reason", "freeze").code == 0
    job = Job(world, github.api_url, github.token)
    payload = push_payload(repo=github.repo, ref="refs/heads/main", before=before, after=sha)
    code, _out, err = job.run("push", payload, repo=github.repo)
    assert code == 0, err
    assert lines(mark) == []
    assert foundry(world, "resume", "--all").code == 0
    code, _out, err = job.run("push", payload, repo=github.repo)
    assert code == 0, err
    [execution] = job.outputs()["executions-started"].split()
    assert len(lines(mark)) == 1
    assert world.trace(execution)["status"] == "succeeded"
    assert [r.conclusion for r in github.fake.check_runs()] == ["success"]
