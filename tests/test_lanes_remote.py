"""Throttle lanes kept on the git remote: hosts with their own state directories (their own
mirrors) share one lane through `refs/alloy/lanes/<lane>` on a real bare repository, reached as
file:// and over `git daemon`. Time is a fake clock; the race uses real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.gitops import GitError, Mirror, PushResult
from controllers.lanes import RemoteLanes, lane_ref
from foundry.ports import FakeClock
from foundry.throttle import Decision, Lanes, LaneSpec, LaneState, LaneStateError
from tests.conftest import git

ROOT = Path(__file__).resolve().parent.parent
REF = "refs/alloy/lanes/bench"


@dataclass
class Remote:
    """A bare repository and the URL the hosts reach it by."""

    bare: Path
    url: str

    def lane(self, name: str = "bench") -> dict[str, Any]:
        """The lane's document as the remote holds it."""
        data: dict[str, Any] = json.loads(git(self.bare, "show", f"{lane_ref(name)}:lane.json"))
        return data

    def holders(self, name: str = "bench") -> list[str]:
        return [h["execution"] for h in self.lane(name)["holders"]]

    def waiting(self, name: str = "bench") -> list[str]:
        return [w["execution"] for w in self.lane(name)["waiting"]]


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "srv" / "remote.git"
    path.mkdir(parents=True)
    git(path, "init", "-q", "--bare")
    return path


def _git_daemon(bare: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file:git")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"git://127.0.0.1:{port}/{bare.name}"
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            f"--base-path={bare.parent}",
            "--export-all",
            "--enable=receive-pack",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(bare.parent),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(2000):  # until it answers (a few hundred ms at most)
            probe = subprocess.run(["git", "ls-remote", url], capture_output=True, check=False)
            if probe.returncode == 0:
                break
            time.sleep(0.01)
        else:
            pytest.fail("git daemon did not answer")
        yield Remote(bare, url)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(params=["file", "git-daemon"])
def remote(
    request: pytest.FixtureRequest, bare: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Remote]:
    """The remote over each protocol."""
    if request.param == "file":
        yield Remote(bare, bare.as_uri())
    else:
        yield from _git_daemon(bare, monkeypatch)


@pytest.fixture
def file_remote(bare: Path) -> Remote:
    return Remote(bare, bare.as_uri())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class Host:
    """One reconciling host: its own mirror (state directory) and its lanes on the remote; it
    counts what it pushes and fetches."""

    name: str
    mirror: Mirror
    lanes: RemoteLanes
    pushes: list[list[tuple[str | None, str, str | None]]] = field(default_factory=list)
    fetches: int = 0

    def ask(self, lane: LaneSpec, execution: str) -> Decision:
        return self.lanes.acquire(lane, execution, holder=self.name)


HostMaker = Callable[..., Host]


@pytest.fixture
def hosts(tmp_path: Path, clock: FakeClock) -> Iterator[HostMaker]:
    made: list[Host] = []

    def make(remote: Remote, name: str, **options: Any) -> Host:
        mirror = Mirror(remote.url, tmp_path / "hosts" / name / "mirror.git")
        options.setdefault("lease_seconds", 30)
        host = Host(name, mirror, RemoteLanes(mirror, clock, **options))
        push, fetch = mirror.push, mirror.fetch

        def counted_push(updates: Any) -> PushResult:
            host.pushes.append(list(updates))
            return push(updates)

        def counted_fetch(refs: Any) -> None:
            host.fetches += 1
            fetch(refs)

        mirror.push = counted_push  # type: ignore[method-assign]
        mirror.fetch = counted_fetch  # type: ignore[method-assign]
        made.append(host)
        return host

    yield make
    for host in made:
        host.lanes.close()
        host.mirror.close()


# --- two hosts, one lane -----------------------------------------------------------------------


def test_limit_one_grants_one_host_queues_the_other_in_order_and_hands_over(
    remote: Remote, hosts: HostMaker
) -> None:
    a, b = hosts(remote, "a"), hosts(remote, "b")
    lane = LaneSpec("bench", limit=1, queue="fifo")
    assert a.ask(lane, "exe-a").outcome == "granted"
    b_asks = b.ask(lane, "exe-b")
    assert (b_asks.outcome, b_asks.position) == ("queued", 1)
    c_asks = a.ask(lane, "exe-c")
    assert (c_asks.outcome, c_asks.position) == ("queued", 2)
    assert (remote.holders(), remote.waiting()) == (["exe-a"], ["exe-b", "exe-c"])

    a.lanes.release("bench", "exe-a")
    # The free slot belongs to the head of the queue, which waits on the other host.
    c_again = a.ask(lane, "exe-c")
    assert (c_again.outcome, c_again.position) == ("queued", 2)
    assert b.ask(lane, "exe-b").outcome == "granted"
    assert a.ask(lane, "exe-c").position == 1
    assert [s.execution for s in a.lanes.status("bench").holders] == ["exe-b"]
    assert (remote.holders(), remote.waiting()) == (["exe-b"], ["exe-c"])

    b.lanes.release("bench", "exe-b")
    assert a.ask(lane, "exe-c").outcome == "granted"
    assert (remote.holders(), remote.waiting()) == (["exe-c"], [])


def test_latest_supersedes_the_other_hosts_pending_execution(
    file_remote: Remote, hosts: HostMaker
) -> None:
    a, b = hosts(file_remote, "a"), hosts(file_remote, "b")
    lane = LaneSpec("bench", limit=1, queue="latest")
    assert a.ask(lane, "exe-1").outcome == "granted"
    assert b.ask(lane, "exe-2").outcome == "queued"
    assert a.ask(lane, "exe-3").outcome == "queued"
    superseded = b.ask(lane, "exe-2")
    assert superseded.outcome == "superseded"
    assert superseded.reason == "exe-2 was superseded in lane bench by exe-3"
    assert file_remote.waiting() == ["exe-3"]
    assert file_remote.lane()["superseded"][0]["by"] == "exe-3"


def test_reject_turns_away_the_other_hosts_newcomer(file_remote: Remote, hosts: HostMaker) -> None:
    a, b = hosts(file_remote, "a"), hosts(file_remote, "b")
    lane = LaneSpec("bench", limit=1, queue="reject")
    assert a.ask(lane, "exe-a").outcome == "granted"
    rejected = b.ask(lane, "exe-b")
    assert rejected.outcome == "rejected"
    assert rejected.reason == "lane bench is full (1 of 1) and rejects newcomers (queue: reject)"
    assert (file_remote.holders(), file_remote.waiting()) == (["exe-a"], [])


def test_cancel_running_reaches_the_holders_renew_on_the_other_host(
    remote: Remote, hosts: HostMaker
) -> None:
    a, b = hosts(remote, "a"), hosts(remote, "b")
    lane = LaneSpec("bench", limit=1, queue="fifo", cancel_running=True)
    assert a.ask(lane, "exe-old").outcome == "granted"
    assert a.lanes.renew("bench", "exe-old") is True
    newcomer = b.ask(lane, "exe-new")
    assert (newcomer.outcome, newcomer.cancel) == ("queued", ("exe-old",))
    assert remote.lane()["holders"][0]["cancelRequested"] is True

    pushed = len(a.pushes)
    assert a.lanes.renew("bench", "exe-old") is False
    assert len(a.pushes) == pushed  # seen by reading, nothing written
    a.lanes.release("bench", "exe-old")
    assert b.ask(lane, "exe-new").outcome == "granted"


def test_an_expired_lease_frees_the_slot_for_the_other_host(
    file_remote: Remote, hosts: HostMaker, clock: FakeClock
) -> None:
    a, b = hosts(file_remote, "a"), hosts(file_remote, "b")
    lane = LaneSpec("bench", limit=1, queue="fifo")
    assert a.ask(lane, "exe-crashed").outcome == "granted"
    clock.advance(29)
    assert b.ask(lane, "exe-b").outcome == "queued"
    clock.advance(1)
    assert b.lanes.status("bench").holders == ()
    assert b.ask(lane, "exe-b").outcome == "granted"
    # The holder coming back has lost its slot, and queues behind the new holder.
    assert a.lanes.renew("bench", "exe-crashed") is False
    assert a.ask(lane, "exe-crashed").outcome == "queued"
    assert (file_remote.holders(), file_remote.waiting()) == (["exe-b"], ["exe-crashed"])


def test_a_rate_holds_across_hosts(file_remote: Remote, hosts: HostMaker, clock: FakeClock) -> None:
    a, b = hosts(file_remote, "a"), hosts(file_remote, "b")
    t0 = clock.now()
    lane = LaneSpec("bench", limit=2, queue="fifo", rate_count=1, rate_period=60)
    assert a.ask(lane, "exe-a").outcome == "granted"
    a.lanes.release("bench", "exe-a")
    limited = b.ask(lane, "exe-b")
    assert (limited.outcome, limited.retry_at, limited.position) == ("rate-limited", t0 + 60, 1)
    clock.advance(59)
    assert b.ask(lane, "exe-b").outcome == "rate-limited"
    clock.advance(1)
    assert b.ask(lane, "exe-b").outcome == "granted"
    # exe-a's grant has aged out of the window; only exe-b's still counts.
    assert [g["execution"] for g in file_remote.lane()["grants"]] == ["exe-b"]


# --- what travels ------------------------------------------------------------------------------


def test_renew_pushes_only_once_a_third_of_the_lease_has_passed(
    file_remote: Remote, hosts: HostMaker, clock: FakeClock
) -> None:
    a, b = hosts(file_remote, "a"), hosts(file_remote, "b")
    lane = LaneSpec("bench", limit=1, queue="fifo")
    assert a.ask(lane, "exe-a").outcome == "granted"
    assert (len(a.pushes), a.fetches) == (1, 0)
    assert a.ask(lane, "exe-a").outcome == "granted"  # asking again changes nothing
    assert len(a.pushes) == 1

    for _ in range(10):  # the executor renews about every second
        assert a.lanes.renew("bench", "exe-a") is True
    clock.advance(10)  # exactly two thirds left: still fresh
    assert a.lanes.renew("bench", "exe-a") is True
    assert (len(a.pushes), a.fetches) == (1, 0)

    clock.advance(1)
    assert a.lanes.renew("bench", "exe-a") is True
    assert len(a.pushes) == 2
    assert file_remote.lane()["holders"][0]["expiresAt"] == clock.now() + 30
    assert a.lanes.renew("bench", "exe-a") is True
    assert (len(a.pushes), a.fetches) == (2, 0)

    # Someone else moved the ref: the holder reads it once, and still pushes nothing.
    assert b.ask(lane, "exe-b").outcome == "queued"
    assert a.lanes.renew("bench", "exe-a") is True
    assert a.lanes.renew("bench", "exe-a") is True
    assert (len(a.pushes), a.fetches) == (2, 1)


def test_a_waiter_asking_again_pushes_only_once_a_third_of_its_place_has_passed(
    file_remote: Remote, hosts: HostMaker, clock: FakeClock
) -> None:
    a = hosts(file_remote, "a", lease_seconds=300)
    b = hosts(file_remote, "b", queue_seconds=60)
    lane = LaneSpec("bench", limit=1, queue="fifo")
    assert a.ask(lane, "exe-a").outcome == "granted"
    assert b.ask(lane, "exe-b").position == 1
    for _ in range(5):
        assert b.ask(lane, "exe-b").position == 1
    clock.advance(20)  # exactly two thirds left: still fresh
    assert b.ask(lane, "exe-b").position == 1
    assert len(b.pushes) == 1

    clock.advance(1)
    assert b.ask(lane, "exe-b").position == 1
    assert len(b.pushes) == 2
    assert file_remote.lane()["waiting"][0]["expiresAt"] == clock.now() + 60
    # A waiter that stops asking still loses its place when the place's lease ends.
    clock.advance(60)
    assert a.lanes.status("bench").queue == ()
    assert a.ask(lane, "exe-c").position == 1


def test_a_push_that_lost_the_race_is_decided_again(file_remote: Remote, hosts: HostMaker) -> None:
    """Host a reads the lane, then host b takes the slot before a's push lands: a's
    compare-and-swap is refused, and a decides again from b's state."""
    a, b = hosts(file_remote, "a"), hosts(file_remote, "b")
    lane = LaneSpec("bench", limit=1, queue="fifo")
    push = a.mirror.push

    def b_first(updates: Any) -> PushResult:
        if not a.pushes:  # a's first push, before it is sent
            assert b.ask(lane, "exe-b").outcome == "granted"
        return push(updates)

    a.mirror.push = b_first  # type: ignore[method-assign]
    decision = a.ask(lane, "exe-a")
    assert (decision.outcome, decision.position) == ("queued", 1)
    assert len(a.pushes) == 2
    assert a.pushes[0][0][2] is None  # the first try expected no ref at all
    assert (file_remote.holders(), file_remote.waiting()) == (["exe-b"], ["exe-a"])


def test_a_lane_that_keeps_moving_gives_up_with_a_git_error(
    file_remote: Remote, hosts: HostMaker, clock: FakeClock
) -> None:
    a = hosts(file_remote, "a", attempts=4)
    a.mirror.push = lambda updates: PushResult(ok=False, detail="stale info")  # type: ignore[method-assign]
    with pytest.raises(
        GitError, match=r"refs/alloy/lanes/bench: other hosts moved it .*\(4 attempts\)"
    ):
        a.ask(LaneSpec("bench", limit=1, queue="fifo"), "exe-a")
    assert len(clock.slept) == 3
    assert all(0 <= pause <= 1 for pause in clock.slept)


def test_renew_answers_from_the_last_lease_seen_while_the_remote_is_away(
    file_remote: Remote, hosts: HostMaker, clock: FakeClock
) -> None:
    a = hosts(file_remote, "a")
    lane = LaneSpec("bench", limit=1, queue="fifo")
    assert a.ask(lane, "exe-a").outcome == "granted"
    away = file_remote.bare.with_name("away.git")
    file_remote.bare.rename(away)
    with pytest.raises(GitError, match="cannot reach"):
        a.ask(lane, "exe-b")
    clock.advance(29)
    assert a.lanes.renew("bench", "exe-a") is True  # a blip does not stop running blocks
    clock.advance(1)
    assert a.lanes.renew("bench", "exe-a") is False  # now another host could have the slot
    away.rename(file_remote.bare)


# --- bad states --------------------------------------------------------------------------------


def _commit(bare: Path, files: dict[str, bytes]) -> str:
    entries = []
    for name, data in files.items():
        blob = subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=bare,
            input=data,
            capture_output=True,
            check=True,
        ).stdout.decode()
        entries.append(f"100644 blob {blob.strip()}\t{name}\n")
    tree = subprocess.run(
        ["git", "mktree"],
        cwd=bare,
        input="".join(entries),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return git(bare, "commit-tree", tree, "-m", "not ours").strip()


def _document(**changes: Any) -> bytes:
    doc: dict[str, Any] = json.loads(LaneState("bench").to_json())
    doc.update(changes)
    return json.dumps(doc).encode()


_HOLDER = {
    "execution": "exe-a",
    "holder": "h",
    "acquiredAt": 1.0,
    "expiresAt": 2.0,
    "cancelRequested": False,
}


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"lane.json": b"{not json"}, "not JSON"),
        ({"lane.json": b'{"hello": "world"}'}, "not a lane state"),
        ({"lane.json": _document(version=2)}, "written by a newer Foundry"),
        ({"lane.json": _document(version="1")}, "unknown lane state version '1'"),
        ({"lane.json": _document(lane="other")}, "state of lane 'other'"),
        ({"lane.json": _document(holders=[{"execution": "exe-a"}])}, r"holders\[0\]"),
        ({"lane.json": _document(holders=[{**_HOLDER, "expiresAt": "soon"}])}, "a time"),
        ({"lane.json": _document(holders=[_HOLDER, _HOLDER])}, "exe-a listed twice"),
        ({"lane.json": _document(extra=1)}, "unknown field"),
        ({"README": b"hello"}, "no lane.json"),
        (None, "not a commit"),
    ],
)
def test_a_lane_ref_that_is_not_a_lane_state_is_a_clear_error(
    file_remote: Remote,
    hosts: HostMaker,
    files: dict[str, bytes] | None,
    problem: str,
) -> None:
    bare = file_remote.bare
    if files is None:
        target = subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=bare,
            input=b"a blob",
            capture_output=True,
            check=True,
        ).stdout.decode()
    else:
        target = _commit(bare, files)
    git(bare, "update-ref", REF, target.strip())
    a = hosts(file_remote, "a")
    lane = LaneSpec("bench", limit=1, queue="fifo")
    for call in (
        lambda: a.ask(lane, "exe-a"),
        lambda: a.lanes.status("bench"),
        lambda: a.lanes.renew("bench", "exe-a"),
        lambda: a.lanes.release("bench", "exe-a"),
    ):
        with pytest.raises(LaneStateError, match=problem) as caught:
            call()
        assert REF in str(caught.value)
    assert a.pushes == []


def test_a_lane_name_that_cannot_be_a_ref_is_refused(file_remote: Remote, hosts: HostMaker) -> None:
    a = hosts(file_remote, "a")
    with pytest.raises(ValueError, match=re.escape("lane '../x'")):
        a.ask(LaneSpec("../x", limit=1, queue="fifo"), "exe-a")


# --- the same rules as the SQLite lanes --------------------------------------------------------


_EXES = [f"exe-{i}" for i in range(5)]
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.sampled_from(_EXES)),
        st.tuples(st.just("release"), st.sampled_from(_EXES)),
        st.tuples(st.just("renew"), st.sampled_from(_EXES)),
        st.tuples(st.just("advance"), st.integers(0, 40)),
    ),
    max_size=30,
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


@settings(max_examples=60, deadline=None)
@given(spec=_SPECS, ops=_OPS)
def test_a_lane_state_through_its_document_answers_as_the_sqlite_lanes_do(
    spec: LaneSpec, ops: list[tuple[str, object]]
) -> None:
    """The same calls, to `Lanes` and to a `LaneState` written to JSON and read back after every
    step (as the remote keeps it), give the same answers and the same lane."""
    clock = FakeClock()
    state = LaneState("lane")
    with (
        tempfile.TemporaryDirectory() as tmp,
        Lanes(Path(tmp) / "lanes.db", clock, lease_seconds=60, queue_seconds=30) as lanes,
    ):
        for op, arg in ops:
            now = clock.now()
            if op == "acquire":
                assert isinstance(arg, str)
                decision, state = state.acquire(
                    spec, arg, holder="h", now=now, lease=60, queue_lease=30
                )
                assert decision == lanes.acquire(spec, arg, holder="h")
            elif op == "release":
                assert isinstance(arg, str)
                state = state.release(arg)
                lanes.release("lane", arg)
            elif op == "renew":
                assert isinstance(arg, str)
                held, state = state.renew(arg, now=now, lease=60)
                assert held == lanes.renew("lane", arg)
            else:
                assert isinstance(arg, int)
                clock.advance(arg)
            state = LaneState.from_json(state.to_json(), lane="lane", source="test")
            assert state.status(now=clock.now()) == lanes.status("lane")


# --- real processes racing ---------------------------------------------------------------------


_RACER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from controllers.gitops import Mirror
    from controllers.lanes import RemoteLanes
    from foundry.ports import SystemClock
    from foundry.throttle import LaneSpec

    url, home, log, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    rounds, peers = int(sys.argv[5]), int(sys.argv[6])
    lane = LaneSpec("shared", limit=1, queue="fifo")
    out = os.open(log, os.O_WRONLY | os.O_APPEND)

    def mark(event, execution):
        os.write(out, f"{event} {execution}\\n".encode())  # one append: never interleaved

    def logged(event):
        with open(log) as f:
            return [line.split()[1] for line in f if line.startswith(event + " ")]

    mirror = Mirror(url, home / "mirror.git")
    lanes = RemoteLanes(mirror, SystemClock(), lease_seconds=3600, attempts=1000)
    mark("ready", name)
    while len(logged("ready")) < peers:  # start together
        time.sleep(0.01)
    for i in range(rounds):
        execution = f"exe-{name}-{i}"
        while True:
            gone = set(logged("released"))  # read before the remote: released before we look
            if lanes.acquire(lane, execution, holder=name).outcome == "granted":
                break
            stale = [s.execution for s in lanes.status("shared").holders if s.execution in gone]
            assert not stale, f"{stale} released the lane, yet the remote lists them: lost update"
            time.sleep(0.02)  # a waiter's pause between asks
        mark("enter", execution)
        held = [s.execution for s in lanes.status("shared").holders]
        assert held == [execution], held
        mark("exit", execution)
        lanes.release("shared", execution)
        mark("released", execution)
    mirror.close()
    """
)


def test_processes_on_separate_hosts_never_hold_a_limit_one_lane_together(
    remote: Remote, tmp_path: Path
) -> None:
    """Processes, each with its own mirror, take turns in a limit-1 lane. Each appends `enter`
    once granted, `exit` before releasing and `released` after, to one log file; in the log's
    order no execution ever enters before the one inside has left, and every process got all
    its turns. A waiter that finds a released holder still listed on the remote (a lost update,
    which would wedge the lane) fails at once."""
    log = tmp_path / "log"
    log.touch()
    processes, rounds = 4, 3
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _RACER,
                remote.url,
                str(tmp_path / "hosts" / f"p{n}"),
                str(log),
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
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err

    events = [line.split() for line in log.read_text().splitlines()]
    turns = [(event, execution) for event, execution in events if event in ("enter", "exit")]
    inside: str | None = None
    for event, execution in turns:
        if event == "enter":
            assert inside is None, f"{execution} entered while {inside} held the lane"
            inside = execution
        else:
            assert inside == execution
            inside = None
    assert len(turns) == 2 * processes * rounds
    state = remote.lane("shared")
    assert (state["holders"], state["waiting"]) == ([], [])
