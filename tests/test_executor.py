"""The executor with real processes: DAG order and parallelism, timeouts that kill a process
tree, retries only on listed exit codes, a minimal environment, outputs, redaction."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Literal

import pytest

from foundry.boundary import Artifact, Block
from foundry.errors import UserError
from foundry.executor import GateOutcome, RunOptions, run_execution
from foundry.ids import Event, execution_id
from foundry.ledger import Ledger
from foundry.ports import FakeClock, SystemClock
from tests.foundry_support import artifact, block

PY = sys.executable


def options(tmp_path: Path, **kwargs: object) -> RunOptions:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return RunOptions(workdir=work, state_dir=tmp_path / "state", kill_grace=0.2, **kwargs)  # type: ignore[arg-type]


def apply_event(art: Artifact) -> Event:
    return Event("apply", art.digest)


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_blocks_run_in_dag_order_and_independent_ones_in_parallel(tmp_path: Path) -> None:
    # b and c each wait until the other has started: they finish only if they overlap.
    wait_for = (
        "import pathlib, sys, time\n"
        "me, other = sys.argv[1], sys.argv[2]\n"
        "pathlib.Path(me + '.started').touch()\n"
        "deadline = time.time() + 20\n"
        "while not pathlib.Path(other + '.started').exists():\n"
        "    if time.time() > deadline: sys.exit(9)\n"
        "    time.sleep(0.01)\n"
        "open('order.log', 'a').write(me + '\\n')\n"
    )
    log = "import sys; open('order.log', 'a').write(sys.argv[1] + '\\n')"
    art = artifact(
        "dag",
        [
            block("a", [PY, "-c", log, "a"]),
            block("b", [PY, "-c", wait_for, "b", "c"], needs=["a"], timeout=30),
            block("c", [PY, "-c", wait_for, "c", "b"], needs=["a"], timeout=30),
            block("d", [PY, "-c", log, "d"], needs=["b", "c"]),
        ],
    )
    opts = options(tmp_path, workers=2)
    result = run_execution(art, apply_event(art), opts, SystemClock())
    assert result.status == "succeeded", result
    order = (opts.workdir / "order.log").read_text().split()
    assert order[0] == "a"
    assert sorted(order[1:3]) == ["b", "c"]
    assert order[3] == "d"


def test_the_worker_limit_is_respected(tmp_path: Path) -> None:
    # Each block records how many blocks are running when it starts (a counter directory).
    probe = (
        "import os, sys, time, pathlib\n"
        "d = pathlib.Path('running'); d.mkdir(exist_ok=True)\n"
        "me = d / sys.argv[1]; me.touch()\n"
        "open('seen.log', 'a').write(str(len(list(d.iterdir()))) + '\\n')\n"
        "time.sleep(0.05)\n"
        "me.unlink()\n"
    )
    art = artifact("wide", [block(f"b{i}", [PY, "-c", probe, f"b{i}"]) for i in range(6)])
    opts = options(tmp_path, workers=2)
    assert run_execution(art, apply_event(art), opts, SystemClock()).status == "succeeded"
    seen = [int(x) for x in (opts.workdir / "seen.log").read_text().split()]
    assert len(seen) == 6
    assert max(seen) <= 2


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; /proc tells.
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_a_timeout_kills_the_whole_process_tree(tmp_path: Path) -> None:
    script = "sleep 300 & echo $! > grandchild.pid; sh -c 'sleep 300 & echo $! > deeper.pid; wait' & wait"
    art = artifact("slow", [block("slow", ["sh", "-c", script], timeout=1)])
    opts = options(tmp_path)
    result = run_execution(art, apply_event(art), opts, SystemClock())
    assert result.status == "failed"
    finished = [r for r in records(result.ledger) if r["type"] == "attempt-finished"]
    assert finished[0]["outcome"] == "timeout"
    for name in ("grandchild.pid", "deeper.pid"):
        pid = int((opts.workdir / name).read_text())
        assert not _alive(pid), f"{name} survived the timeout"


def test_retry_only_on_listed_exit_codes(tmp_path: Path) -> None:
    counter = "import sys; f = open(sys.argv[1], 'a'); f.write('x'); f.close(); sys.exit(int(sys.argv[2]))"
    retry = {"max": 3, "backoffSeconds": 0, "onExitCodes": [75]}
    art = artifact(
        "retry",
        [
            block("listed", [PY, "-c", counter, "listed.count", "75"], retry=retry),
            block("unlisted", [PY, "-c", counter, "unlisted.count", "1"], retry=retry),
        ],
    )
    opts = options(tmp_path)
    result = run_execution(art, apply_event(art), opts, SystemClock())
    assert result.blocks == {"listed": "failed", "unlisted": "failed"}
    assert (opts.workdir / "listed.count").read_text() == "xxxx"  # 1 + 3 retries
    assert (opts.workdir / "unlisted.count").read_text() == "x"


def test_retry_waits_its_backoff_on_the_injected_clock(tmp_path: Path) -> None:
    flaky = (
        "import os, sys\n"
        "n = len(open('n').read()) if os.path.exists('n') else 0\n"
        "open('n', 'a').write('x')\n"
        "sys.exit(0 if n >= 2 else 75)\n"
    )
    art = artifact(
        "flaky",
        [
            block(
                "f", [PY, "-c", flaky], retry={"max": 5, "backoffSeconds": 30, "onExitCodes": [75]}
            ),
        ],
    )
    clock = FakeClock()
    result = run_execution(art, apply_event(art), options(tmp_path), clock)
    assert result.status == "succeeded"
    assert clock.slept == [30.0, 30.0]


def test_blocks_get_a_minimal_environment_with_inputs_and_declared_secrets(tmp_path: Path) -> None:
    dump = "import json, os; json.dump(dict(os.environ), open('env.json', 'w'))"
    art = artifact(
        "env",
        [block("e", [PY, "-c", dump], env={"MODE": "fast"}, secrets=["API_TOKEN"])],
        inputs={
            "ref": {"type": "string", "required": False, "default": "main"},
            "count": {"type": "integer", "required": True},
        },
    )
    opts = options(
        tmp_path,
        inputs={"count": "3"},
        secrets={"API_TOKEN": "s3cr3t-value", "OTHER_SECRET": "nope"},
        base_env={"PATH": os.environ["PATH"], "HOME": "/home/x", "AWS_SECRET_ACCESS_KEY": "leak"},
    )
    assert run_execution(art, apply_event(art), opts, SystemClock()).status == "succeeded"
    env = json.loads((opts.workdir / "env.json").read_text())
    assert env["ALLOY_INPUT_REF"] == "main"
    assert env["ALLOY_INPUT_COUNT"] == "3"
    assert env["MODE"] == "fast"
    assert env["API_TOKEN"] == "s3cr3t-value"
    assert "OTHER_SECRET" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["HOME"] == "/home/x"
    assert env["ALLOY_EXECUTION"] == execution_id(art.digest, apply_event(art))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"nope": "1"}, "unknown input 'nope'"),
        ({}, "input 'count' is required"),
        ({"count": "many"}, "must be an integer"),
    ],
)
def test_bad_inputs_are_refused_before_anything_runs(
    tmp_path: Path, given: dict[str, str], message: str
) -> None:
    art = artifact(
        "inp", [block("e", ["true"])], inputs={"count": {"type": "integer", "required": True}}
    )
    opts = options(tmp_path, inputs=given)
    with pytest.raises(UserError, match=message):
        run_execution(art, apply_event(art), opts, SystemClock())
    ledgers = list((tmp_path / "state").rglob("ledger.jsonl"))
    assert all(p.stat().st_size == 0 for p in ledgers), "nothing may be recorded"


def test_secrets_are_redacted_in_ledger_and_logs_even_when_split(tmp_path: Path) -> None:
    secret = "hunter2-very-secret"
    # Print the secret one character at a time, flushing, so it crosses read boundaries.
    drip = (
        "import os, sys, time\n"
        "s = os.environ['TOKEN']\n"
        "for ch in s:\n"
        "    sys.stdout.write(ch); sys.stdout.flush(); time.sleep(0.002)\n"
        "print(); print('token=' + s); sys.exit(1)\n"
    )
    art = artifact("red", [block("r", [PY, "-c", drip], secrets=["TOKEN"])])
    opts = options(tmp_path, secrets={"TOKEN": secret})
    result = run_execution(art, apply_event(art), opts, SystemClock())
    assert result.status == "failed"
    everything = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert secret.encode() not in everything
    tail = next(r for r in records(result.ledger) if r["type"] == "attempt-finished")["logTail"]
    assert tail == "***\ntoken=***\n"


def test_declared_outputs_are_collected_with_digests_and_confined(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    make = (
        f"import os; open('r.txt', 'w').write('hello'); os.symlink({str(outside)!r}, 'escape.txt')"
    )
    art = artifact(
        "out",
        [
            block("good", [PY, "-c", make], outputs=["r.txt"]),
            block("bad", ["true"], needs=["good"], outputs=["escape.txt"]),
        ],
    )
    result = run_execution(art, apply_event(art), options(tmp_path), SystemClock())
    assert result.blocks == {"good": "succeeded", "bad": "failed"}
    finished = [r for r in records(result.ledger) if r["type"] == "attempt-finished"]
    good = next(r for r in finished if r["block"] == "good")
    assert good["outputs"] == [
        {
            "path": "r.txt",
            "digest": "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "size": 5,
        }
    ]
    bad = next(r for r in finished if r["block"] == "bad")
    assert "escape.txt" in str(bad["reason"])


def test_dry_run_runs_only_blocks_without_effects_and_is_not_the_real_execution(
    tmp_path: Path,
) -> None:
    touch = "import sys; open(sys.argv[1], 'w').close()"
    art = artifact(
        "dry",
        [
            block("look", [PY, "-c", touch, "look"]),
            block("change", [PY, "-c", touch, "change"], effects="idempotent", needs=["look"]),
        ],
    )
    opts = options(tmp_path, dry_run=True)
    result = run_execution(art, apply_event(art), opts, SystemClock())
    assert result.blocks == {"look": "succeeded", "change": "skipped"}
    assert (opts.workdir / "look").exists()
    assert not (opts.workdir / "change").exists()
    real = options(tmp_path)
    again = run_execution(art, apply_event(art), real, SystemClock())
    assert again.blocks == {"look": "succeeded", "change": "succeeded"}


def test_a_finished_execution_never_runs_again(tmp_path: Path) -> None:
    counter = "open('count', 'a').write('x')"
    art = artifact("once", [block("b", [PY, "-c", counter])])
    opts = options(tmp_path)
    first = run_execution(art, apply_event(art), opts, SystemClock())
    second = run_execution(art, apply_event(art), opts, SystemClock())
    assert first.execution == second.execution
    assert second.status == "succeeded"
    assert (opts.workdir / "count").read_text() == "x"


class FileApprovals:
    """Gates decided by files in a directory: `<block>.<index>` holds passed|waiting|failed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def evaluate(
        self,
        execution: str,
        artifact: Artifact,
        block: Block,
        index: int,
        *,
        now: float,
        waiting_since: float | None = None,
    ) -> GateOutcome:
        path = self.directory / f"{block.id}.{index}"
        decision = path.read_text().strip() if path.exists() else "waiting"
        return GateOutcome(decision, f"file says {decision}")  # type: ignore[arg-type]

    def resolve_indeterminate(
        self, execution: str, artifact: Artifact, block: Block
    ) -> Literal["approve", "reject"] | None:
        path = self.directory / f"{block.id}.indeterminate"
        return path.read_text().strip() if path.exists() else None  # type: ignore[return-value]


def test_a_waiting_gate_parks_the_execution_and_a_later_run_resumes_it(tmp_path: Path) -> None:
    touch = "import sys; open(sys.argv[1], 'w').close()"
    gate = {"kind": "approval", "from": ["bob"], "quorum": 1, "forbidSelf": True}
    art = artifact(
        "gated",
        [
            block("build", [PY, "-c", touch, "built"]),
            block(
                "ship",
                [PY, "-c", touch, "shipped"],
                needs=["build"],
                effects="irreversible",
                gates=[gate],
            ),
        ],
    )
    decisions = tmp_path / "decisions"
    decisions.mkdir()
    opts = options(tmp_path)
    first = run_execution(
        art, apply_event(art), opts, SystemClock(), gates=FileApprovals(decisions)
    )
    assert first.status == "waiting"
    assert first.blocks == {"build": "succeeded"}
    assert not (opts.workdir / "shipped").exists()
    (decisions / "ship.0").write_text("passed")
    second = run_execution(
        art, apply_event(art), opts, SystemClock(), gates=FileApprovals(decisions)
    )
    assert second.status == "succeeded"
    assert (opts.workdir / "shipped").exists()
    gate_records = [r["decision"] for r in records(second.ledger) if r["type"] == "gate"]
    assert gate_records == ["waiting", "passed"]


def test_ledger_drops_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    with Ledger(path) as ledger:
        ledger.append({"type": "planned"}, at=0)
    with path.open("ab") as fh:
        fh.write(b'{"seq":2,"type":"attempt-st')
    again = Ledger(path)
    assert [r["seq"] for r in again.records] == [1]
    again.append({"type": "x"}, at=1)
    again.close()
    assert [json.loads(line)["seq"] for line in path.read_text().splitlines()] == [1, 2]
