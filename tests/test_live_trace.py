"""The live trace on the claim: while `foundry reconcile` runs an execution, its claim
`refs/alloy/claims/<execution>` carries `trace.json`, the execution's Trace as its ledger is now,
republished block by block (docs/reconcile.md, "Claims").

The reconcile tests run `foundry reconcile --once` as a real process against a real bare
remote and read the claim from the remote with plain git, as any reader would. Blocks wait for
the test where it needs them to (`while [ ! -f "$GO" ]`), so nothing depends on timing; every
lease is long enough (600 s, a renewal every 200 s) that what the claim shows while the test
looks was published because a block moved, not by a renewal.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from alloy.model import Trace
from foundry.boundary import read_artifact
from foundry.executor import RunOptions, run_execution
from foundry.ids import Event
from foundry.ports import SystemClock
from foundry.redaction import MASK
from foundry.traces import trace_document
from tests.conftest import git
from tests.foundry_support import artifact, block
from tests.reconcile_support import World, lines, wait_for

CLAIMS = "refs/alloy/claims/"
LEASE = "600"
SECRET = "live-tok-7f3a91c2e5-value"


def _step(name: str, body: str = "") -> str:
    script = f'echo "{name} start" >> "$MARK"\n{body}\necho "{name} end" >> "$MARK"\n'
    return json.dumps(script)  # a JSON string is a YAML flow string


def three_blocks(name: str, mark: Path, go: Path, *, first: str = "", secrets: str = "") -> str:
    """`one` and `two` start together; `two` waits until the file `go` exists; `three` needs
    both. `first` runs in `one` (a shell fragment)."""
    env = f"        env: {{MARK: {json.dumps(str(mark))}, GO: {json.dumps(str(go))}}}\n"
    wait = 'while [ ! -f "$GO" ]; do sleep 0.05; done'
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        f"  name: {name}\n"
        "  owners: [alice]\n"
        "spec:\n"
        "  state: active\n"
        "  goal: Whoever looks at the remote sees how far the execution got.\n"
        "  automation:\n"
        "    on: {apply: true}\n"
        "    blocks:\n"
        "      - id: one\n"
        f"        run: [sh, -c, {_step('one', first)}]\n"
        f"{env}"
        "        effects: none\n"
        "        timeout: 5m\n"
        f"{secrets}"
        "      - id: two\n"
        f"        run: [sh, -c, {_step('two', wait)}]\n"
        f"{env}"
        "        effects: idempotent\n"
        "        timeout: 5m\n"
        "      - id: three\n"
        "        needs: [one, two]\n"
        f"        run: [sh, -c, {_step('three')}]\n"
        f"{env}"
        "        effects: none\n"
        "        timeout: 5m\n"
    )


def start(world: World, *extra: str) -> subprocess.Popen[str]:
    """`foundry reconcile --once` in the background, as host `a`."""
    return subprocess.Popen(
        world.command("--lease", LEASE, "--workers", "2", *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **world.env},
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    out, err = proc.communicate(timeout=120)
    report = next((json.loads(x) for x in reversed(out.splitlines()) if x.startswith("{")), {})
    return proc.returncode, report, err


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def show(world: World, spec: str) -> bytes | None:
    """A file of the bare remote (`<commit>:<path>`), or None when there is none."""
    out = subprocess.run(["git", "show", spec], cwd=world.bare, capture_output=True, check=False)
    return out.stdout if out.returncode == 0 else None


def claim_files(world: World, execution: str) -> dict[str, bytes]:
    """Every file of the claim commit the remote's claim ref points at now (one commit, read
    by its id: a ref that moves meanwhile cannot mix two commits)."""
    sha = world.ref(CLAIMS + execution)
    if sha is None:
        return {}
    names = git(world.bare, "ls-tree", "--name-only", sha).split()
    return {name: show(world, f"{sha}:{name}") or b"" for name in names}


def claimed(world: World) -> list[str]:
    return [ref.removeprefix(CLAIMS) for ref in world.refs(CLAIMS)]


def statuses(trace: dict[str, Any]) -> dict[str, str]:
    return {b["id"]: b["status"] for b in trace["spec"]["blocks"]}


def live(world: World, execution: str, want: dict[str, str]) -> dict[str, bytes] | None:
    """The claim's files once its trace.json shows the blocks as `want` says, else None."""
    files = claim_files(world, execution)
    if "trace.json" not in files:
        return None
    shown = statuses(json.loads(files["trace.json"]))
    return files if all(shown.get(b) == s for b, s in want.items()) else None


def assert_is_the_trace_of_its_ledger(files: dict[str, bytes], secrets: list[str]) -> None:
    """trace.json is the Trace document of the ledger the same claim commit carries, written
    as the traces branch writes it, and Alloy's boundary model reads it."""
    raw = files["trace.json"]
    trace = json.loads(raw)
    assert raw == (json.dumps(trace, indent=2, sort_keys=True) + "\n").encode()
    records = [json.loads(x) for x in files["ledger.jsonl"].splitlines() if x.strip()]
    art = read_artifact("artifact.json", files["artifact.json"])
    assert trace == trace_document(records, art, secrets=secrets)
    Trace.model_validate_json(raw)  # what a reader of running executions goes through


def test_the_claim_carries_a_live_trace_updated_block_by_block(world: World) -> None:
    mark, go = world.mark("steps"), world.tmp / "go"
    world.work.write({".alloy/intents/steps.yaml": three_blocks("steps", mark, go)})
    world.merge("add intent steps")
    proc = start(world)
    try:
        wait_for(
            "one to end and two to start", lambda: {"one end", "two start"} <= set(lines(mark))
        )
        [execution] = wait_for("the claim", lambda: claimed(world))
        # `one` and `two` started together (one publication before both started): only the
        # push after `one` ended can show `one` succeeded while `two` runs.
        want = {"one": "succeeded", "two": "running", "three": "pending"}
        files = wait_for("the claim to show one done", lambda: live(world, execution, want))
        trace = json.loads(files["trace.json"])
        assert json.loads(files["claim.json"])["state"] == "running"
        assert trace["metadata"]["name"] == execution
        assert trace["spec"]["status"] == "running"
        assert trace["spec"]["finishedAt"] is None
        assert trace["spec"]["reason"] == "running: two (attempt 1)"
        blocks = {b["id"]: b for b in trace["spec"]["blocks"]}
        [one] = blocks["one"]["attempts"]
        assert (one["outcome"], one["exitCode"]) == ("succeeded", 0)
        [two] = blocks["two"]["attempts"]
        assert (two["outcome"], two["finishedAt"]) == (None, None)
        assert blocks["three"]["attempts"] == []
        assert_is_the_trace_of_its_ledger(files, [])
        assert "three start" not in lines(mark)  # still held by the test

        go.touch()
        code, report, err = finish(proc)
    finally:
        stop(proc)
    assert code == 0, err
    assert report["finished"] == {execution: "succeeded"}, report
    assert lines(mark)[-1] == "three end"

    # The released claim's trace is the trace on the traces branch, byte for byte.
    files = claim_files(world, execution)
    assert json.loads(files["claim.json"])["state"] == "finished"
    on_branch = show(world, f"alloy/traces:{world.traces()[execution]}")
    assert files["trace.json"] == on_branch
    final = json.loads(files["trace.json"])
    assert final["spec"]["status"] == "succeeded"
    assert statuses(final) == {"one": "succeeded", "two": "succeeded", "three": "succeeded"}
    assert_is_the_trace_of_its_ledger(files, [])


def test_a_secret_a_block_prints_never_reaches_the_claims_trace(world: World) -> None:
    mark, go = world.mark("leaky"), world.tmp / "go"
    # The secret alone, in its base64 form, and inside a line: the ledger masks what the
    # block says; the claim's trace is masked again.
    said = 'echo "$LIVE_SECRET"; printf %s "$LIVE_SECRET" | base64; echo "token=$LIVE_SECRET;"'
    text = three_blocks("leaky", mark, go, first=said, secrets="        secrets: [LIVE_SECRET]\n")
    world.work.write({".alloy/intents/leaky.yaml": text})
    world.merge("add intent leaky")
    world.env["LIVE_SECRET"] = SECRET
    forms = [SECRET, base64.b64encode(SECRET.encode()).decode()]
    proc = start(world)
    try:
        wait_for("one to end", lambda: "one end" in lines(mark))
        [execution] = wait_for("the claim", lambda: claimed(world))
        want = {"one": "succeeded", "two": "running"}
        files = wait_for("the claim to show one done", lambda: live(world, execution, want))
        raw = files["trace.json"].decode()
        assert not [f for f in forms if f in raw]
        # Not vacuous: what the block said is in the live trace, masked.
        [attempt] = json.loads(raw)["spec"]["blocks"][0]["attempts"]
        assert f"token={MASK};" in attempt["logTail"]
        assert_is_the_trace_of_its_ledger(files, [SECRET])
        go.touch()
        code, report, err = finish(proc)
    finally:
        stop(proc)
    assert code == 0, err
    assert report["finished"] == {execution: "succeeded"}, report
    assert SECRET not in claim_files(world, execution)["trace.json"].decode()
    # Every object of the remote: every claim commit pushed while it ran (a claim commit has
    # no parent, but the objects stay) and the traces branch.
    everything = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=world.bare,
        capture_output=True,
        check=True,
    ).stdout
    assert [f for f in forms if f.encode() in everything] == []


APPROVAL_GATE = "        gates:\n          - approval: {from: [alice], quorum: 1}\n"


def test_a_claim_without_trace_json_from_an_older_host_is_resumed(world: World) -> None:
    mark = world.add_intent("ship", gates=APPROVAL_GATE)
    world.merge("add a gated intent")
    parked = world.reconcile("--lease", LEASE)
    assert parked.code == 5, parked.result  # it waits on its approval
    [execution] = parked.report["started"]
    files = claim_files(world, execution)
    assert json.loads(files["claim.json"])["state"] == "parked"
    assert json.loads(files["trace.json"])["spec"]["status"] == "waiting"
    assert files["trace.json"] == show(world, f"alloy/traces:{world.traces()[execution]}")

    # The claim as an older host wrote it: the same commit without trace.json.
    sha = world.ref(CLAIMS + execution)
    assert sha is not None
    tree = git(world.bare, "ls-tree", sha).splitlines()
    kept = "".join(f"{line}\n" for line in tree if not line.endswith("\ttrace.json"))
    assert len(kept.splitlines()) == len(tree) - 1
    new_tree = subprocess.run(
        ["git", "mktree"], cwd=world.bare, input=kept, capture_output=True, text=True, check=True
    ).stdout.strip()
    old = git(world.bare, "commit-tree", new_tree, "-m", "parked by an older host").strip()
    git(world.bare, "update-ref", CLAIMS + execution, old, sha)
    assert "trace.json" not in claim_files(world, execution)

    world.approve(execution, "alice")
    world.merge("approve the ship gate", compile_=False)
    done = world.reconcile("--lease", LEASE, host="b")
    assert done.code == 0, done.result
    assert done.report["resumed"] == [execution], done.report
    assert done.report["finished"] == {execution: "succeeded"}, done.report
    assert len(lines(mark)) == 1
    files = claim_files(world, execution)
    assert json.loads(files["claim.json"])["state"] == "finished"
    assert files["trace.json"] == show(world, f"alloy/traces:{world.traces()[execution]}")
    assert json.loads(files["trace.json"])["spec"]["status"] == "succeeded"


# -- the engine's side: on_progress ------------------------------------------------------------


def test_on_progress_follows_every_start_and_end_and_cannot_break_the_run(
    tmp_path: Path,
) -> None:
    """The engine calls `on_progress` after each attempt's start and end is in its ledger,
    whatever the block's effects; an exception from it changes nothing."""
    py = sys.executable
    art = artifact(
        "progress",
        [
            block("a", [py, "-c", "print('a')"], effects="none"),
            block("b", [py, "-c", "print('b')"], needs=["a"], effects="idempotent"),
            block("c", [py, "-c", "raise SystemExit(3)"], needs=["b"], effects="reversible"),
        ],
    )
    work = tmp_path / "work"
    work.mkdir()
    state = tmp_path / "state"
    seen: list[list[str]] = []

    def on_progress() -> None:
        (ledger,) = state.rglob("ledger.jsonl")
        seen.append([json.loads(x)["type"] for x in ledger.read_text().splitlines()])
        raise RuntimeError("a broken listener")

    opts = RunOptions(workdir=work, state_dir=state, workers=1, on_progress=on_progress)
    result = run_execution(art, Event("apply", art.digest), opts, SystemClock())
    assert result.status == "failed", result  # c failed (exit 3): the run went on to its end
    assert result.blocks == {"a": "succeeded", "b": "succeeded", "c": "failed"}
    # Six calls: after each of the three starts, after each of the three ends; each saw the
    # record it follows already in the ledger.
    assert len(seen) == 6, seen
    starts, ends = seen[0::2], seen[1::2]
    assert [s.count("attempt-started") for s in starts] == [1, 2, 3]
    assert [s[-1] for s in starts] == ["attempt-started"] * 3
    assert [s.count("attempt-finished") for s in ends] == [1, 2, 3]
    assert [s[-1] for s in ends] == ["block-finished"] * 3


def test_news_the_remote_missed_while_it_was_away_reaches_it_when_it_is_back(
    world: World,
) -> None:
    """`one` and `two` start together; `one` takes the remote away and ends, so the push of
    its end fails. `two` runs on, waiting for the test; once the remote is back, the claim
    shows `one` succeeded without waiting for the lease's renewal (a third of 600 s)."""
    mark, go = world.mark("away"), world.tmp / "go"
    away = world.bare.with_name(world.bare.name + ".away")
    env = (
        f"        env: {{MARK: {json.dumps(str(mark))}, GO: {json.dumps(str(go))}, "
        f"BARE: {json.dumps(str(world.bare))}}}\n"
    )
    wait = 'while [ ! -f "$GO" ]; do sleep 0.05; done'
    leave = 'while [ ! -f "$MARK" ] || ! grep -q "two start" "$MARK"; do sleep 0.05; done; '
    leave += 'mv "$BARE" "$BARE.away"'
    world.work.write(
        {
            ".alloy/intents/away.yaml": (
                "apiVersion: alloy.dev/v1\nkind: Intent\nmetadata:\n  name: away\n"
                "  owners: [alice]\nspec:\n  state: active\n"
                "  goal: News reaches the remote once it is back.\n"
                "  automation:\n    on: {apply: true}\n    blocks:\n"
                "      - id: one\n"
                f"        run: [sh, -c, {_step('one', leave)}]\n"
                f"{env}        effects: none\n        timeout: 5m\n"
                "      - id: two\n"
                f"        run: [sh, -c, {_step('two', wait)}]\n"
                f"{env}        effects: none\n        timeout: 5m\n"
            )
        }
    )
    world.merge("add intent away")
    proc = start(world)
    try:
        wait_for("one to end while the remote is away", lambda: "one end" in lines(mark))
        assert away.is_dir()
        assert not world.bare.exists()

        def ended_here() -> bool:  # the engine's own ledger has one's end: the news exists
            return any(
                (r.get("type"), r.get("block")) == ("block-finished", "one")
                for p in world.state().glob("executions/*/ledger.jsonl")
                for r in map(json.loads, p.read_text().splitlines())
            )

        wait_for("one's end in the local ledger", ended_here)
        time.sleep(1.0)  # (not a wait for anything: the push of that news fails meanwhile)
        away.rename(world.bare)  # the remote is back
        [execution] = wait_for("the claim", lambda: claimed(world))
        want = {"one": "succeeded", "two": "running"}
        files = wait_for("the claim to show one done", lambda: live(world, execution, want))
        assert_is_the_trace_of_its_ledger(files, [])
        go.touch()
        code, report, err = finish(proc)
    finally:
        if away.exists() and not world.bare.exists():
            away.rename(world.bare)
        go.touch()
        stop(proc)
    assert code == 0, err
    assert report["finished"] == {execution: "succeeded"}, report
