"""Crash at every named point of a pass, recover three ways, and check the promise (issue 10).

Each case: an intent with two blocks — `prep` (effects none) and `act` (the effects under test,
after `prep`) — is merged to a real remote (`file://`, or `git daemon` on 127.0.0.1). Host A runs
`foundry reconcile --once` as a process with `FOUNDRY_CRASH_AT` naming one point, and dies there
(SIGKILL of itself and of the blocks it started, as a host that loses power). Then one of three
recoveries:

* `same` — host A again, with its state directory;
* `fresh` — host B, with an empty state directory;
* `return` — host B takes over and is killed at the same point, then host A comes back with its
  old state directory.

Asserted for every case, from the remote and from what the blocks themselves wrote:

* no `reversible` or `irreversible` block starts twice;
* every process that started has its attempt in the final trace;
* the execution has its trace on the traces branch and its check run within three passes after
  the last crash;
* `indeterminate` only where a reversible or irreversible attempt may really have started and not
  finished: the remote had its start and not its end when a host died; and a crash before the
  start reached the remote ends `succeeded`.

CI runs a subset that reaches every point (each point once, effects and recoveries rotated, a
few over `git daemon`); `scripts/fault-matrix` runs every point x effects x recovery x remote
(`FAULT_MATRIX=full`), and docs/reconcile.md records its result.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from foundry.faults import POINTS
from tests.reconcile_support import World, lines, run_host

EFFECTS = ("none", "idempotent", "reversible", "irreversible")
SYNC = ("reversible", "irreversible")
RECOVERIES = ("same", "fresh", "return")
#: Where each point is aimed (the block `act`, where a point names blocks).
AIM = {
    "attempt-recorded": "attempt-recorded:act",
    "ledger-push-before": "ledger-push-before:act",
    "ledger-push-after": "ledger-push-after:act",
    "mid-block": "mid-block:act",
    "process-exited": "process-exited:act",
}
#: Points at which `act`'s start has not reached the remote: the execution must succeed.
BEFORE_ACT = ("claim-taken", "attempt-recorded", "ledger-push-before")
LEASE = "1"

PROJECT = """\
apiVersion: alloy.dev/v1
kind: Project
metadata:
  name: faults
spec:
  owners: [alice]
  policy:
    approvalRequiredFor: []
"""


def _step(name: str, body: str) -> str:
    script = (
        f'echo "$ALLOY_EXECUTION {name} $ALLOY_ATTEMPT start" >> "$MARK"\n'
        f"{body}\n"
        f'echo "$ALLOY_EXECUTION {name} $ALLOY_ATTEMPT end" >> "$MARK"\n'
    )
    return json.dumps(script)


def fault_intent(mark: Path, effects: str) -> str:
    prep = _step("prep", "head -c 20000 /dev/zero | tr '\\\\0' x; echo")
    act = _step("act", "echo running; sleep 1.5; echo done > out.txt")
    return (
        "apiVersion: alloy.dev/v1\n"
        "kind: Intent\n"
        "metadata:\n"
        "  name: job\n"
        "  owners: [alice]\n"
        "spec:\n"
        "  state: active\n"
        "  goal: Every block runs as its effects allow, and every run is recorded.\n"
        "  acceptance:\n"
        "    - id: AC-1\n"
        "      statement: act writes out.txt.\n"
        "      evidence: {block: act, output: out.txt}\n"
        "  automation:\n"
        "    on: {apply: true}\n"
        "    blocks:\n"
        "      - id: prep\n"
        f"        run: [sh, -c, {prep}]\n"
        f"        env: {{MARK: {json.dumps(str(mark))}}}\n"
        "        effects: none\n"
        "        timeout: 1m\n"
        "      - id: act\n"
        "        needs: [prep]\n"
        f"        run: [sh, -c, {act}]\n"
        f"        env: {{MARK: {json.dumps(str(mark))}}}\n"
        f"        effects: {effects}\n"
        "        timeout: 1m\n"
        "        outputs: [out.txt]\n"
    )


@dataclass
class Crash:
    """What the remote knew when a host died."""

    died: bool
    open_act: bool  # the claim's ledger had a start of `act` and not its end


def matrix() -> list[Any]:
    if os.environ.get("FAULT_MATRIX") == "full":
        return [
            pytest.param(p, e, r, remote, id=f"{p}-{e}-{r}-{remote}")
            for remote in ("file", "daemon")
            for p in POINTS
            for e in EFFECTS
            for r in RECOVERIES
        ]
    cases = []
    for i, point in enumerate(POINTS):
        effects, recovery = EFFECTS[i % 4], RECOVERIES[i % 3]
        cases.append(
            pytest.param(point, effects, recovery, "file", id=f"{point}-{effects}-{recovery}")
        )
        if i % 4 == 1:
            cases.append(
                pytest.param(
                    point,
                    SYNC[i % 2],
                    RECOVERIES[(i + 1) % 3],
                    "daemon",
                    id=f"{point}-{SYNC[i % 2]}-{RECOVERIES[(i + 1) % 3]}-daemon",
                )
            )
    return cases


class Case:
    def __init__(self, world: World, effects: str) -> None:
        self.world = world
        self.effects = effects
        self.mark = world.mark("job")
        world.work.write(
            {
                ".alloy/alloy.yaml": PROJECT,
                ".alloy/intents/job.yaml": fault_intent(self.mark, effects),
            }
        )
        world.merge("add job")

    def run(self, host: str, crash: str | None = None) -> tuple[int, dict[str, Any]]:
        return run_host(self.world, host, "--lease", LEASE, crash=crash)

    def claims(self) -> list[str]:
        return [r.removeprefix("refs/alloy/claims/") for r in self.world.refs("refs/alloy/claims/")]

    def claim_ledger(self, execution: str) -> list[dict[str, Any]]:
        out = subprocess.run(
            ["git", "show", f"refs/alloy/claims/{execution}:ledger.jsonl"],
            cwd=self.world.bare,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def crash(self, host: str, point: str) -> Crash:
        code, _ = self.run(host, AIM.get(point, point))
        died = code in (-9, 137)
        open_act = False
        for execution in self.claims():
            started = ended = 0
            for r in self.claim_ledger(execution):
                if r.get("block") == "act" and r["type"] == "attempt-started":
                    started += 1
                if r.get("block") == "act" and r["type"] in ("attempt-finished", "indeterminate"):
                    ended += 1
            open_act = open_act or started > ended
        return Crash(died, open_act)

    def wait_for_leases(self) -> None:
        """Until no claim is `running` under a live lease (a dead holder's runs out)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            live = [
                e
                for e in self.claims()
                if (c := self.world.claim(e))["state"] == "running"
                and c["expires"] > time.time() - 0.2
            ]
            if not live:
                return
            time.sleep(0.1)
        raise AssertionError("a claim stayed running under a live lease")

    def settled(self) -> dict[str, Any] | None:
        traces = self.world.traces()
        if len(traces) != 1:
            return None
        [execution] = traces
        trace = self.world.trace(execution)
        if trace["status"] not in ("succeeded", "failed", "indeterminate"):
            return None
        checks = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", "refs/alloy/forge", "checks/"],
            cwd=self.world.bare,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if not checks:
            return None
        return trace


@pytest.mark.parametrize(("point", "effects", "recovery", "remote"), matrix())
def test_crash_point_recovers_exactly_once(
    point: str, effects: str, recovery: str, remote: str, request: pytest.FixtureRequest
) -> None:
    world: World = request.getfixturevalue("world" if remote == "file" else "daemon_world")
    case = Case(world, effects)
    crashes = [case.crash("a", point)]
    assert crashes[0].died, f"{point} was never reached"
    case.wait_for_leases()
    if recovery == "return":
        crashes.append(case.crash("b", point))
        case.wait_for_leases()
    host = "b" if recovery == "fresh" else "a"
    trace = None
    passes = 0
    for passes in range(1, 4):  # noqa: B007 - reported below
        code, report = case.run(host)
        assert code in (0, 4), report
        trace = case.settled()
        if trace is not None:
            break
        case.wait_for_leases()
    assert trace is not None, f"no finished trace and check run after {passes} passes"

    starts = [line.split() for line in lines(case.mark) if line.endswith(" start")]
    acts = [s for s in starts if s[1] == "act"]
    if effects in SYNC:
        assert len(acts) <= 1, f"{effects} block started {len(acts)} times: {acts}"
    blocks = {b["id"]: b for b in trace["blocks"]}
    for name in ("prep", "act"):
        ran = len([s for s in starts if s[1] == name])
        assert len(blocks[name]["attempts"]) >= ran, (name, ran, blocks[name]["attempts"])
    if trace["status"] == "indeterminate":
        assert effects in SYNC, trace
        assert any(c.open_act for c in crashes), "indeterminate, but no start of act was open"
    elif point in BEFORE_ACT:
        assert trace["status"] == "succeeded", trace
    if trace["status"] == "succeeded":
        assert (
            len([line for line in lines(case.mark) if " act " in line and line.endswith(" end")])
            >= 1
        )
    # Settled: another pass, on any host, starts nothing and runs nothing again.
    before = lines(case.mark)
    code, report = case.run("c")
    assert code in (0, 4), report
    assert report.get("started") == [], report
    assert lines(case.mark) == before
