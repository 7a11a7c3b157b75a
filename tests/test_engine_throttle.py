"""The engine and its lanes: a lane full means queued (parked, not running); a waiting gate
holds no slot; a rejected or superseded execution is not run."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from foundry.executor import RunOptions, run_execution
from foundry.ids import Event
from foundry.ports import FakeClock, SystemClock
from foundry.throttle import Lanes, LaneSpec
from tests.foundry_support import artifact, block

PY = sys.executable
HOLD = (
    "import pathlib, time\n"
    "pathlib.Path('held').touch()\n"
    "while not pathlib.Path('release').exists(): time.sleep(0.01)\n"
)


def lane(queue: str, limit: int = 1) -> dict[str, Any]:
    return {"name": "deploy", "limit": limit, "queue": queue, "cancelRunning": False}


def opts(tmp_path: Path, lanes: Lanes) -> RunOptions:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return RunOptions(workdir=work, state_dir=tmp_path / "state", lanes=lanes)


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def test_a_full_lane_queues_the_next_execution_until_the_slot_is_free(tmp_path: Path) -> None:
    lanes = Lanes(tmp_path / "lanes.db", SystemClock())
    holder = artifact("first", [block("hold", [PY, "-c", HOLD], timeout=60)], lane=lane("fifo"))
    other = artifact("second", [block("b", [PY, "-c", "open('second', 'w')"])], lane=lane("fifo"))
    options = opts(tmp_path, lanes)
    results: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: results.update(
            first=run_execution(holder, Event("apply", holder.digest), options, SystemClock())
        )
    )
    thread.start()
    wait_for(options.workdir / "held")
    queued = run_execution(other, Event("apply", other.digest), options, SystemClock())
    assert queued.status == "queued"
    assert queued.reason.startswith("lane deploy is full")
    assert not (options.workdir / "second").exists()
    (options.workdir / "release").touch()
    thread.join(30)
    assert results["first"].status == "succeeded"
    resumed = run_execution(other, Event("apply", other.digest), options, SystemClock())
    assert resumed.status == "succeeded"
    assert (options.workdir / "second").exists()


def test_a_waiting_gate_does_not_hold_its_lane(tmp_path: Path) -> None:
    lanes = Lanes(tmp_path / "lanes.db", FakeClock())
    gate = {"kind": "approval", "from": ["bob"], "quorum": 1, "forbidSelf": True}
    gated = artifact(
        "gated", [block("ship", ["true"], effects="irreversible", gates=[gate])], lane=lane("fifo")
    )
    free = artifact("free", [block("b", [PY, "-c", "open('free', 'w')"])], lane=lane("fifo"))
    options = opts(tmp_path, lanes)
    assert (
        run_execution(gated, Event("apply", gated.digest), options, FakeClock()).status == "waiting"
    )
    assert lanes.status("deploy").holders == ()
    assert (
        run_execution(free, Event("apply", free.digest), options, FakeClock()).status == "succeeded"
    )


def test_reject_and_latest_policies_do_not_run_the_loser(tmp_path: Path) -> None:
    clock = FakeClock()
    lanes = Lanes(tmp_path / "lanes.db", clock)
    for policy, expected in (("reject", "skipped"), ("latest", "queued")):
        busy = f"busy-{policy}"
        lanes.acquire(
            LaneSpec(name=f"l-{policy}", limit=1, queue=policy),
            busy,
            holder="someone",
        )
        art = artifact(
            f"a-{policy}", [block("b", ["true"])], lane={**lane(policy), "name": f"l-{policy}"}
        )
        result = run_execution(art, Event("apply", art.digest), opts(tmp_path, lanes), clock)
        assert result.status == expected, (policy, result)


def test_plan_says_when_a_lane_is_full(tmp_path: Path) -> None:
    from foundry.ports import SystemClock as Clock
    from foundry.workspace import plan_checkout
    from tests.foundry_support import artifact_document, write_artifact

    root = tmp_path / "checkout"
    write_artifact(root, artifact_document("deploy", [block("b", ["true"])], lane=lane("fifo")))
    state = tmp_path / "state"
    state.mkdir()
    with Lanes(state / "lanes.db", Clock()) as lanes:
        lanes.acquire(LaneSpec(name="deploy", limit=1, queue="fifo"), "exe-other", holder="x")
    result, _ = plan_checkout(root, clock=Clock(), state_dir=state)
    assert [i.reason for i in result.start] == [
        "apply: new artifact digest; lane deploy is full (1 of 1): it would queue"
    ]


def test_a_rate_limited_lane_queues_the_next_execution_until_the_window_opens(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    lanes = Lanes(tmp_path / "lanes.db", clock)
    rated = {**lane("fifo", limit=5), "rate": {"count": 1, "periodSeconds": 3600}}
    first = artifact("one", [block("b", ["true"])], lane=rated)
    second = artifact("two", [block("b", [PY, "-c", "open('two', 'w')"])], lane=rated)
    options = opts(tmp_path, lanes)
    assert run_execution(first, Event("apply", first.digest), options, clock).status == "succeeded"
    limited = run_execution(second, Event("apply", second.digest), options, clock)
    assert limited.status == "queued"
    assert "allows 1 start(s) per 3600s" in limited.reason
    assert not (options.workdir / "two").exists()
    clock.advance(3600)
    assert (
        run_execution(second, Event("apply", second.digest), options, clock).status == "succeeded"
    )


def test_cancel_running_stops_the_holder_and_lets_the_newcomer_run(tmp_path: Path) -> None:
    lanes = Lanes(tmp_path / "lanes.db", SystemClock())
    cancelling = {**lane("latest"), "cancelRunning": True}
    old = artifact("old", [block("hold", [PY, "-c", HOLD], timeout=120)], lane=cancelling)
    new = artifact("new", [block("b", [PY, "-c", "open('new', 'w')"])], lane=cancelling)
    options = opts(tmp_path, lanes)
    options.kill_grace = 0.5
    results: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: results.update(
            old=run_execution(old, Event("apply", old.digest), options, SystemClock())
        )
    )
    thread.start()
    wait_for(options.workdir / "held")
    asked = run_execution(new, Event("apply", new.digest), options, SystemClock())
    assert asked.status == "queued"
    thread.join(30)
    assert results["old"].status == "cancelled", "the holder was asked to stop and stopped"
    assert (
        run_execution(new, Event("apply", new.digest), options, SystemClock()).status == "succeeded"
    )
    assert (options.workdir / "new").exists()
