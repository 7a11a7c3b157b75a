"""Throttle lanes: queue policies, maxQueued, cancelRunning, rates, leases — on a fake clock —
and real engine processes sharing one database file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foundry.boundary._models import Lane as ArtifactLane
from foundry.errors import PermanentError, TemporaryError
from foundry.ports import FakeClock
from foundry.throttle import Decision, Lanes, LaneSpec

ROOT = Path(__file__).resolve().parent.parent
HOLDER = "host-1:4242"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def lanes(tmp_path: Path, clock: FakeClock) -> Iterator[Lanes]:
    with Lanes(tmp_path / "lanes.db", clock, lease_seconds=300) as lanes:
        yield lanes


def ask(lanes: Lanes, lane: LaneSpec, execution: str) -> Decision:
    return lanes.acquire(lane, execution, holder=HOLDER)


def holders(lanes: Lanes, name: str) -> list[str]:
    return [s.execution for s in lanes.status(name).holders]


def queue(lanes: Lanes, name: str) -> list[str]:
    return [q.execution for q in lanes.status(name).queue]


# fifo


def test_fifo_queues_in_arrival_order_and_only_the_head_takes_a_freed_slot(lanes: Lanes) -> None:
    lane = LaneSpec("bench", limit=1, queue="fifo")
    assert ask(lanes, lane, "exe-a").outcome == "granted"
    b, c = ask(lanes, lane, "exe-b"), ask(lanes, lane, "exe-c")
    assert (b.outcome, b.position) == ("queued", 1)
    assert (c.outcome, c.position) == ("queued", 2)
    assert b.reason == "lane bench is full (1 of 1); 1st in queue"
    assert c.reason == "lane bench is full (1 of 1); 2nd in queue"

    lanes.release("bench", "exe-a")
    # The slot is free, but it belongs to the head: the second in line keeps waiting.
    c_again = ask(lanes, lane, "exe-c")
    assert (c_again.outcome, c_again.position) == ("queued", 2)
    assert ask(lanes, lane, "exe-b").outcome == "granted"
    c_last = ask(lanes, lane, "exe-c")
    assert (c_last.outcome, c_last.position) == ("queued", 1)
    assert holders(lanes, "bench") == ["exe-b"]
    assert queue(lanes, "bench") == ["exe-c"]


def test_a_newcomer_queues_behind_a_waiter_even_when_a_slot_is_free(lanes: Lanes) -> None:
    lane = LaneSpec("bench", limit=1, queue="fifo")
    ask(lanes, lane, "exe-a")
    ask(lanes, lane, "exe-b")
    lanes.release("bench", "exe-a")
    d = ask(lanes, lane, "exe-d")
    assert (d.outcome, d.position) == ("queued", 2)
    assert ask(lanes, lane, "exe-b").outcome == "granted"


def test_with_two_free_slots_the_first_two_in_queue_may_take_them(lanes: Lanes) -> None:
    lane = LaneSpec("bench", limit=2, queue="fifo")
    for exe in ("exe-a", "exe-b", "exe-c", "exe-d", "exe-e"):
        ask(lanes, lane, exe)
    assert holders(lanes, "bench") == ["exe-a", "exe-b"]
    assert queue(lanes, "bench") == ["exe-c", "exe-d", "exe-e"]
    lanes.release("bench", "exe-a")
    lanes.release("bench", "exe-b")
    assert ask(lanes, lane, "exe-e").outcome == "queued"
    assert ask(lanes, lane, "exe-d").outcome == "granted"
    assert ask(lanes, lane, "exe-c").outcome == "granted"
    assert ask(lanes, lane, "exe-e").position == 1


# latest


def test_latest_keeps_only_the_newest_pending_execution(lanes: Lanes) -> None:
    lane = LaneSpec("deploy", limit=1, queue="latest")
    assert ask(lanes, lane, "exe-a").outcome == "granted"
    assert ask(lanes, lane, "exe-b").position == 1
    c = ask(lanes, lane, "exe-c")
    assert (c.outcome, c.position) == ("queued", 1)
    assert queue(lanes, "deploy") == ["exe-c"]

    b = ask(lanes, lane, "exe-b")
    assert b.outcome == "superseded"
    assert b.reason == "exe-b was superseded in lane deploy by exe-c"
    # Asking again does not bring it back, even once the lane is free.
    lanes.release("deploy", "exe-a")
    assert ask(lanes, lane, "exe-b").outcome == "superseded"
    assert queue(lanes, "deploy") == ["exe-c"]
    assert ask(lanes, lane, "exe-c").outcome == "granted"


def test_a_latest_newcomer_takes_the_slot_kept_for_the_pending_one_it_supersedes(
    lanes: Lanes,
) -> None:
    lane = LaneSpec("deploy", limit=2, queue="latest")
    ask(lanes, lane, "exe-a")
    ask(lanes, lane, "exe-b")
    ask(lanes, lane, "exe-c")  # waits
    lanes.release("deploy", "exe-a")  # the free slot is kept for exe-c ...
    assert ask(lanes, lane, "exe-d").outcome == "granted"  # ... until exe-d supersedes it
    assert ask(lanes, lane, "exe-c").outcome == "superseded"
    assert holders(lanes, "deploy") == ["exe-b", "exe-d"]


# reject


def test_reject_answers_rejected_beyond_the_limit_and_keeps_no_queue(lanes: Lanes) -> None:
    lane = LaneSpec("bench", limit=2, queue="reject")
    assert ask(lanes, lane, "exe-a").outcome == "granted"
    assert ask(lanes, lane, "exe-b").outcome == "granted"
    c = ask(lanes, lane, "exe-c")
    assert c == Decision(
        "rejected", "lane bench is full (2 of 2) and rejects newcomers (queue: reject)"
    )
    assert queue(lanes, "bench") == []
    lanes.release("bench", "exe-a")
    assert ask(lanes, lane, "exe-c").outcome == "granted"


# maxQueued


def test_a_full_queue_rejects_newcomers(lanes: Lanes) -> None:
    lane = LaneSpec("bench", limit=1, queue="fifo", max_queued=2)
    ask(lanes, lane, "exe-a")
    ask(lanes, lane, "exe-b")
    ask(lanes, lane, "exe-c")
    d = ask(lanes, lane, "exe-d")
    assert (d.outcome, d.position) == ("rejected", None)
    assert d.reason == "lane bench is full (1 of 1) and so is its queue (2 of 2)"
    # A waiter asking again is not a newcomer: a full queue keeps it.
    assert ask(lanes, lane, "exe-c").position == 2
    lanes.release("bench", "exe-b")  # leaves the queue
    assert ask(lanes, lane, "exe-d").position == 2


def test_max_queued_zero_means_nobody_waits(lanes: Lanes) -> None:
    for policy in ("fifo", "latest"):
        lane = LaneSpec(f"lane-{policy}", limit=1, queue=policy, max_queued=0)
        ask(lanes, lane, "exe-a")
        assert ask(lanes, lane, "exe-b").outcome == "rejected"
        assert queue(lanes, lane.name) == []


def test_latest_replaces_its_pending_execution_whatever_max_queued(lanes: Lanes) -> None:
    lane = LaneSpec("deploy", limit=1, queue="latest", max_queued=1)
    ask(lanes, lane, "exe-a")
    ask(lanes, lane, "exe-b")
    assert ask(lanes, lane, "exe-c").outcome == "queued"
    assert queue(lanes, "deploy") == ["exe-c"]


# cancelRunning


def test_cancel_running_queues_the_newcomer_and_names_the_holders(lanes: Lanes) -> None:
    lane = LaneSpec("deploy", limit=1, queue="fifo", cancel_running=True)
    assert ask(lanes, lane, "exe-a") == Decision(
        "granted", "lane deploy had a free slot (1 of 1 now held)"
    )
    b = ask(lanes, lane, "exe-b")
    assert (b.outcome, b.position, b.cancel) == ("queued", 1, ("exe-a",))
    # The holder keeps its lease until it goes (no more than `limit` ever run) but may not renew.
    assert holders(lanes, "deploy") == ["exe-a"]
    assert lanes.status("deploy").holders[0].cancel_requested
    assert lanes.renew("deploy", "exe-a") is False
    # Asking again is not arriving again: no new cancellation.
    assert ask(lanes, lane, "exe-b").cancel == ()
    lanes.release("deploy", "exe-a")
    granted = ask(lanes, lane, "exe-b")
    assert (granted.outcome, granted.cancel) == ("granted", ())
    assert lanes.renew("deploy", "exe-b") is True


def test_cancel_running_cancels_nothing_while_the_lane_has_room(lanes: Lanes) -> None:
    lane = LaneSpec("deploy", limit=2, queue="fifo", cancel_running=True)
    ask(lanes, lane, "exe-a")
    b = ask(lanes, lane, "exe-b")
    assert (b.outcome, b.cancel) == ("granted", ())
    c = ask(lanes, lane, "exe-c")
    assert (c.outcome, c.cancel) == ("queued", ("exe-a", "exe-b"))


def test_cancel_running_with_reject_keeps_one_place_for_the_newest(lanes: Lanes) -> None:
    lane = LaneSpec("deploy", limit=1, queue="reject", cancel_running=True)
    ask(lanes, lane, "exe-a")
    b = ask(lanes, lane, "exe-b")
    assert (b.outcome, b.position, b.cancel) == ("queued", 1, ("exe-a",))
    c = ask(lanes, lane, "exe-c")
    assert (c.outcome, c.position, c.cancel) == ("queued", 1, ("exe-a",))
    assert ask(lanes, lane, "exe-b").outcome == "superseded"
    lanes.release("deploy", "exe-a")
    assert ask(lanes, lane, "exe-c").outcome == "granted"


# rate


def test_rate_limit_gives_the_exact_time_a_slot_may_be_granted(
    lanes: Lanes, clock: FakeClock
) -> None:
    t0 = clock.now()
    lane = LaneSpec("api", limit=10, queue="fifo", rate_count=2, rate_period=60)
    assert ask(lanes, lane, "exe-a").outcome == "granted"
    clock.advance(10)
    assert ask(lanes, lane, "exe-b").outcome == "granted"
    clock.advance(10)
    c = ask(lanes, lane, "exe-c")
    assert (c.outcome, c.retry_at, c.position) == ("rate-limited", t0 + 60, 1)
    # Releasing does not give grants back: the window counts grants, not holders.
    lanes.release("api", "exe-a")
    assert ask(lanes, lane, "exe-c").retry_at == t0 + 60
    # A newcomer queues behind it rather than jumping the line when the window opens.
    d = ask(lanes, lane, "exe-d")
    assert (d.outcome, d.position, d.retry_at) == ("rate-limited", 2, t0 + 70)

    clock.advance(t0 + 60 - clock.now())
    assert ask(lanes, lane, "exe-d").outcome == "rate-limited"  # not the head
    assert ask(lanes, lane, "exe-c").outcome == "granted"
    d_again = ask(lanes, lane, "exe-d")
    assert (d_again.outcome, d_again.retry_at) == ("rate-limited", t0 + 70)
    clock.advance(10)
    assert ask(lanes, lane, "exe-d").outcome == "granted"


def test_rate_limit_with_reject_keeps_no_place(lanes: Lanes, clock: FakeClock) -> None:
    t0 = clock.now()
    lane = LaneSpec("api", limit=5, queue="reject", rate_count=1, rate_period=3600)
    ask(lanes, lane, "exe-a")
    b = ask(lanes, lane, "exe-b")
    assert (b.outcome, b.retry_at, b.position) == ("rate-limited", t0 + 3600, None)
    assert queue(lanes, "api") == []


def test_the_slot_check_comes_before_the_rate(lanes: Lanes) -> None:
    lane = LaneSpec("api", limit=1, queue="fifo", rate_count=1, rate_period=60)
    ask(lanes, lane, "exe-a")
    b = ask(lanes, lane, "exe-b")
    assert (b.outcome, b.retry_at) == ("queued", None)


# leases


def test_an_expired_lease_counts_as_free(tmp_path: Path, clock: FakeClock) -> None:
    t0 = clock.now()
    with Lanes(tmp_path / "lanes.db", clock, lease_seconds=30) as lanes:
        lane = LaneSpec("bench", limit=1, queue="fifo")
        ask(lanes, lane, "exe-crashed")
        assert lanes.status("bench").holders[0].expires_at == t0 + 30
        clock.advance(29)
        assert ask(lanes, lane, "exe-b").outcome == "queued"
        clock.advance(1)
        assert holders(lanes, "bench") == []
        assert ask(lanes, lane, "exe-b").outcome == "granted"
        # The crashed holder coming back has lost its slot.
        assert lanes.renew("bench", "exe-crashed") is False
        assert ask(lanes, lane, "exe-crashed").outcome == "queued"


def test_renew_extends_the_lease(tmp_path: Path, clock: FakeClock) -> None:
    t0 = clock.now()
    with Lanes(tmp_path / "lanes.db", clock, lease_seconds=30) as lanes:
        lane = LaneSpec("bench", limit=1, queue="fifo")
        ask(lanes, lane, "exe-a")
        clock.advance(20)
        assert lanes.renew("bench", "exe-a") is True
        assert lanes.status("bench").holders[0].expires_at == t0 + 50
        clock.advance(29)
        assert ask(lanes, lane, "exe-b").outcome == "queued"
        assert lanes.renew("bench", "exe-a") is True
        lanes.release("bench", "exe-a")
        assert lanes.renew("bench", "exe-a") is False
        assert lanes.renew("bench", "exe-never") is False


def test_a_waiter_that_stops_asking_loses_its_place(tmp_path: Path, clock: FakeClock) -> None:
    t0 = clock.now()
    with Lanes(tmp_path / "lanes.db", clock, lease_seconds=300, queue_seconds=60) as lanes:
        lane = LaneSpec("bench", limit=1, queue="fifo")
        ask(lanes, lane, "exe-a")
        ask(lanes, lane, "exe-gone")
        ask(lanes, lane, "exe-c")
        clock.advance(50)
        ask(lanes, lane, "exe-c")  # asking again renews the place
        assert [q.expires_at for q in lanes.status("bench").queue] == [t0 + 60, t0 + 110]
        clock.advance(10)
        assert queue(lanes, "bench") == ["exe-c"]
        lanes.release("bench", "exe-a")
        assert ask(lanes, lane, "exe-c").outcome == "granted"


# idempotence


def test_acquire_is_idempotent(lanes: Lanes, clock: FakeClock) -> None:
    t0 = clock.now()
    lane = LaneSpec("bench", limit=1, queue="fifo")
    assert ask(lanes, lane, "exe-a").outcome == "granted"
    clock.advance(5)
    again = ask(lanes, lane, "exe-a")
    assert again.outcome == "granted"
    assert (
        again.reason
        == "exe-a already holds a slot of lane bench (lease until 2025-11-24T16:05:00Z)"
    )
    assert [(s.execution, s.acquired_at, s.expires_at) for s in lanes.status("bench").holders] == [
        ("exe-a", t0, t0 + 300)
    ]
    assert ask(lanes, lane, "exe-b").position == 1
    assert ask(lanes, lane, "exe-b").position == 1
    assert queue(lanes, "bench") == ["exe-b"]


def test_release_of_what_is_not_held_does_nothing(lanes: Lanes) -> None:
    lanes.release("bench", "exe-nobody")
    assert lanes.status("bench").holders == ()


def test_lanes_are_independent(lanes: Lanes) -> None:
    one = LaneSpec("one", limit=1, queue="reject")
    two = LaneSpec("two", limit=1, queue="reject")
    assert ask(lanes, one, "exe-a").outcome == "granted"
    assert ask(lanes, two, "exe-b").outcome == "granted"
    assert ask(lanes, one, "exe-b").outcome == "rejected"


# the database


def test_two_connections_share_one_lane(tmp_path: Path, clock: FakeClock) -> None:
    lane = LaneSpec("bench", limit=1, queue="fifo")
    with Lanes(tmp_path / "l.db", clock) as first, Lanes(tmp_path / "l.db", clock) as second:
        assert ask(first, lane, "exe-a").outcome == "granted"
        assert ask(second, lane, "exe-b").outcome == "queued"
        second.release("bench", "exe-a")
        assert ask(first, lane, "exe-b").outcome == "granted"


def test_a_database_locked_past_the_busy_timeout_is_a_temporary_error(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "lanes.db"
    with Lanes(path, clock, busy_timeout=0) as lanes:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(TemporaryError, match="stayed locked"):
                ask(lanes, LaneSpec("bench", limit=1, queue="fifo"), "exe-a")
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert ask(lanes, LaneSpec("bench", limit=1, queue="fifo"), "exe-a").outcome == "granted"


def test_a_database_of_another_schema_version_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "lanes.db"
    Lanes(path, clock).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(PermanentError, match="schema version 99"):
        Lanes(path, clock)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "lanes.db"
    path.write_bytes(b"not a database, just some bytes" * 100)
    with pytest.raises(PermanentError, match="delete it"):
        Lanes(path, clock)


# the spec


def test_lane_spec_from_an_artifact_lane() -> None:
    lane = ArtifactLane.model_validate(
        {
            "name": "deploy",
            "limit": 2,
            "queue": "latest",
            "maxQueued": 3,
            "cancelRunning": True,
            "rate": {"count": 10, "periodSeconds": 3600},
        }
    )
    assert LaneSpec.from_artifact(lane) == LaneSpec(
        "deploy",
        limit=2,
        queue="latest",
        max_queued=3,
        cancel_running=True,
        rate_count=10,
        rate_period=3600,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: LaneSpec("bench", limit=0, queue="fifo"),
        lambda: LaneSpec("bench", limit=1, queue="fifo", max_queued=-1),
        lambda: LaneSpec("bench", limit=1, queue="fifo", rate_count=5),
        lambda: LaneSpec("bench", limit=1, queue="fifo", rate_count=0, rate_period=60),
        lambda: LaneSpec("bench", limit=1, queue="fifo", rate_count=1, rate_period=0),
    ],
)
def test_an_inconsistent_lane_spec_is_refused(make: Callable[[], LaneSpec]) -> None:
    with pytest.raises(ValueError, match="lane bench"):
        make()


# invariants over any sequence of calls


_EXES = [f"exe-{i}" for i in range(6)]
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.sampled_from(_EXES)),
        st.tuples(st.just("release"), st.sampled_from(_EXES)),
        st.tuples(st.just("renew"), st.sampled_from(_EXES)),
        st.tuples(st.just("advance"), st.integers(0, 40)),
    ),
    max_size=40,
)
_SPECS = st.builds(
    lambda limit, queue, max_queued, cancel, rate: LaneSpec(
        "lane",
        limit=limit,
        queue=queue,
        max_queued=max_queued,
        cancel_running=cancel,
        rate_count=rate[0] if rate else None,
        rate_period=rate[1] if rate else None,
    ),
    st.integers(1, 3),
    st.sampled_from(["fifo", "latest", "reject"]),
    st.one_of(st.none(), st.integers(0, 3)),
    st.booleans(),
    st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 60))),
)


@settings(max_examples=100, deadline=None)
@given(spec=_SPECS, ops=_OPS)
def test_no_sequence_of_calls_breaks_the_lane(
    spec: LaneSpec, ops: list[tuple[str, object]]
) -> None:
    """Whatever happens, no more than `limit` hold a slot, the queue respects its policy, and a
    grant goes only to an execution whose place is within the free slots."""
    clock = FakeClock()
    with (
        tempfile.TemporaryDirectory() as tmp,
        Lanes(Path(tmp) / "lanes.db", clock, lease_seconds=60, queue_seconds=30) as lanes,
    ):
        granted_at: list[float] = []
        for op, arg in ops:
            before = lanes.status("lane")
            if op == "acquire":
                assert isinstance(arg, str)
                d = ask(lanes, spec, arg)
                held = [s.execution for s in before.holders]
                if d.outcome == "rate-limited":
                    assert d.retry_at is not None
                    assert d.retry_at > clock.now()
                if d.outcome == "granted" and arg not in held:
                    granted_at.append(clock.now())
                    if spec.rate_count is not None and spec.rate_period is not None:
                        window = [t for t in granted_at if t > clock.now() - spec.rate_period]
                        assert len(window) <= spec.rate_count
                    # Everyone ahead of it that still waits (not superseded) had a slot too.
                    waiting = [q.execution for q in before.queue]
                    ahead = waiting[: waiting.index(arg)] if arg in waiting else waiting
                    still = {q.execution for q in lanes.status("lane").queue}
                    assert len([e for e in ahead if e in still]) + 1 <= spec.limit - len(held)
                if d.cancel:
                    assert set(d.cancel) == set(held)
            elif op == "release":
                assert isinstance(arg, str)
                lanes.release("lane", arg)
            elif op == "renew":
                assert isinstance(arg, str)
                lanes.renew("lane", arg)
            else:
                assert isinstance(arg, int)
                clock.advance(arg)
            after = lanes.status("lane")
            assert len(after.holders) <= spec.limit
            if spec.queue == "latest" or (spec.queue == "reject" and spec.cancel_running):
                assert len(after.queue) <= 1
            elif spec.queue == "reject":
                assert after.queue == ()
            if spec.max_queued is not None and spec.queue == "fifo":
                assert len(after.queue) <= spec.max_queued
            assert not {s.execution for s in after.holders} & {q.execution for q in after.queue}


# real processes


_WORKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    from pathlib import Path
    from foundry.ports import SystemClock
    from foundry.throttle import Lanes, LaneSpec

    db, log_path, name = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    rounds, peers = int(sys.argv[4]), int(sys.argv[5])
    lane = LaneSpec("shared", limit=2, queue="fifo")
    log = sqlite3.connect(log_path, timeout=120, isolation_level=None)

    def mark(event, execution):
        log.execute("BEGIN IMMEDIATE")
        log.execute("INSERT INTO events (process, execution, event) VALUES (?, ?, ?)",
                    (name, execution, event))
        log.execute("COMMIT")

    # Start together: wait (polling the log) until every process is ready.
    mark("ready", name)
    while log.execute("SELECT count(*) FROM events WHERE event = 'ready'").fetchone()[0] < peers:
        time.sleep(0.001)

    with Lanes(db, SystemClock(), lease_seconds=3600, busy_timeout=120) as lanes:
        for i in range(rounds):
            execution = f"exe-{name}-{i}"
            while lanes.acquire(lane, execution, holder=name).outcome != "granted":
                time.sleep(0.001)  # a waiter's pause between asks
            mark("enter", execution)
            for _ in range(20):  # the work: look at the lane from inside the slot
                held = [s.execution for s in lanes.status("shared").holders]
                assert execution in held and len(held) <= 2, held
            mark("exit", execution)
            lanes.release("shared", execution)
    """
)


def test_engine_processes_sharing_one_file_never_exceed_the_limit(tmp_path: Path) -> None:
    """Processes start together on a database file that does not exist yet and take turns in
    a limit-2 lane. Each logs entering and leaving its slot in a second database whose
    autoincrement order is the order of commits; replaying that log never finds three inside."""
    db, log_path = tmp_path / "lanes.db", tmp_path / "log.db"
    with sqlite3.connect(log_path, isolation_level=None) as log:
        log.execute("PRAGMA journal_mode=WAL")
        log.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "process TEXT, execution TEXT, event TEXT)"
        )
    log.close()
    processes, rounds = 8, 15
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                str(db),
                str(log_path),
                f"p{n}",
                str(rounds),
                str(processes),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, _out, err in results:
        assert "database is locked" not in err
        assert code == 0, err

    with sqlite3.connect(log_path) as log:
        events = log.execute(
            "SELECT execution, event FROM events WHERE event != 'ready' ORDER BY seq"
        ).fetchall()
    log.close()
    inside: set[str] = set()
    most = 0
    for execution, event in events:
        if event == "enter":
            inside.add(execution)
            most = max(most, len(inside))
        else:
            inside.remove(execution)
    assert most <= 2
    assert inside == set()
    assert len(events) == 2 * processes * rounds
    with Lanes(db, FakeClock()) as lanes:
        status = lanes.status("shared")
    assert (status.holders, status.queue) == ((), ())
