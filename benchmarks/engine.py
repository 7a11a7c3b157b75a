"""Benchmark of Foundry's executor against `make -j2` on the same 1,000-block DAG.

Run by hand, never as a test:

    .venv/bin/python benchmarks/engine.py [--blocks 1000] [--chains 10] [--repeat 5]
        [--workers 2] [--dir DIR] [--no-cli] [--keep] [--foundry OTHER_TREE]

Every block is a no-op (`run: [true]`, effects `none`). Two shapes of the same number of blocks:

* `chains`: `--chains` chains of `blocks / chains` blocks each (block i of a chain needs i-1);
* `independent`: no `needs` at all.

For each shape, in the same run and interleaved (one round runs every contender once):

* `make -j2`: a generated Makefile, one `.PHONY` target per block whose recipe is `@true`, with
  the same dependencies, run as a whole command (`make -s -j2 -f Makefile all`);
* `foundry (library)`: `run_execution` in this process, as `foundry run` calls it (the ledger
  on, `workers=2`, a fresh state directory per run); the timing covers `run_execution` only;
* `foundry run`: the whole command as a subprocess (`python -m foundry run ... --workers 2`,
  a fresh `--state` per run): interpreter start-up, imports, reading and checking the artifact,
  the lane database, the run, the output.

Durability is measured separately: the same DAG with `effects: irreversible`, where the engine
must `fsync` the ledger before attempts start (both Foundry contenders; make has no such thing).

Every figure is the best and the median of `--repeat` runs (after one warm-up run of each);
the ratio is Foundry / make, best against best and median against median. CPU time per block is
the median of this process's own CPU (the engine, for the library) plus that of the processes it
waited for. Every run starts after `os.sync()`, untimed. The temporary directory is made in
`--dir` (default: the system's temporary directory): that is where the ledger's `fsync` goes.
`--foundry DIR` measures the `foundry` package in DIR instead of this checkout's (to compare a
before and an after in the same session).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING


def _source() -> Path:
    """The tree whose `foundry` package is measured: this checkout, or `--foundry DIR`."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--foundry", type=Path, default=Path(__file__).resolve().parent.parent)
    known, _ = pre.parse_known_args()
    return Path(known.foundry).resolve()


SOURCE = _source()
sys.path.insert(0, str(SOURCE))

from foundry.boundary import Artifact, digest_of, read_artifact  # noqa: E402
from foundry.executor import RunOptions, run_execution  # noqa: E402
from foundry.ids import Event  # noqa: E402
from foundry.ports import SystemClock  # noqa: E402

if TYPE_CHECKING:
    from foundry.sandbox import Sandbox

TARGET = 1.5  # at most this many times make's time

# --- the graph --------------------------------------------------------------------------------


def graph(shape: str, blocks: int, chains: int) -> dict[str, list[str]]:
    """Block id -> the ids it needs."""
    if shape == "independent":
        return {f"b{i:04d}": [] for i in range(blocks)}
    per = blocks // chains
    out: dict[str, list[str]] = {}
    for c in range(chains):
        for i in range(per):
            out[f"c{c:02d}-{i:04d}"] = [f"c{c:02d}-{i - 1:04d}"] if i else []
    return out


def artifact_document(name: str, dag: dict[str, list[str]], effects: str) -> dict[str, object]:
    blocks = [
        {
            "id": block_id,
            "needs": sorted(needs),
            "run": ["true"],
            "timeoutSeconds": 60,
            "retry": {"max": 0, "backoffSeconds": 0, "onExitCodes": []},
            "effects": effects,
            "gates": [],
            "outputs": [],
            "env": {},
            "secrets": [],
        }
        for block_id, needs in sorted(dag.items())
    ]
    document: dict[str, object] = {
        "apiVersion": "alloy.dev/v1",
        "kind": "Artifact",
        "metadata": {"name": name},
        "spec": {
            "intent": {"name": name, "state": "active", "owners": ["alice"], "acceptance": []},
            "triggers": {"apply": True, "request": True},
            "inputs": {},
            "blocks": blocks,
            "provenance": {
                "source": f".alloy/intents/{name}.yaml",
                "sourceDigest": "sha256:" + "0" * 64,
                "compiler": "alloy-compiler/2",
                "requires": "foundry>=0.1.0",
            },
        },
    }
    document["digest"] = digest_of(document)
    return document


def makefile(dag: dict[str, list[str]]) -> str:
    names = sorted(dag)
    lines = [".PHONY: all " + " ".join(names), "", "all: " + " ".join(names), ""]
    for name in names:
        lines += [f"{name}: {' '.join(dag[name])}".rstrip(), "\t@true", ""]
    return "\n".join(lines)


@dataclass
class Case:
    """One shape, one effects value: a checkout with the artifact, and a Makefile."""

    shape: str
    effects: str
    root: Path
    artifact: Artifact
    blocks: int
    runs: int = 0


def prepare(base: Path, shape: str, effects: str, blocks: int, chains: int) -> Case:
    name = f"bench-{shape}-{effects}"
    dag = graph(shape, blocks, chains)
    root = base / name
    (root / ".alloy" / "artifacts").mkdir(parents=True)
    document = artifact_document(name, dag, effects)
    raw = json.dumps(document, indent=2, sort_keys=True).encode()
    (root / ".alloy" / "artifacts" / f"{name}.json").write_bytes(raw)
    (root / "Makefile").write_text(makefile(dag))
    art = read_artifact(f".alloy/artifacts/{name}.json", raw)
    return Case(shape, effects, root, art, len(dag))


# --- the contenders ---------------------------------------------------------------------------


def fresh_state(case: Case, kind: str) -> Path:
    case.runs += 1
    state = case.root.parent / "states" / f"{case.root.name}-{kind}-{case.runs}"
    state.mkdir(parents=True)
    return state


@dataclass(frozen=True)
class Sample:
    """One run: wall time, CPU of this process, CPU of the processes it waited for (seconds)."""

    wall: float
    own_cpu: float
    child_cpu: float


class Clock:
    """Wall and CPU time of what happens between `__init__` and `stop`."""

    def __init__(self) -> None:
        self.own = resource.getrusage(resource.RUSAGE_SELF)
        self.children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.started = time.perf_counter()

    def stop(self) -> Sample:
        wall = time.perf_counter() - self.started
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)

        def cpu(after: resource.struct_rusage, before: resource.struct_rusage) -> float:
            return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

        return Sample(wall, cpu(own, self.own), cpu(children, self.children))


def run_make(case: Case, workers: int) -> Sample:
    clock = Clock()
    done = subprocess.run(
        ["make", "-s", f"-j{workers}", "-f", "Makefile", "all"],
        cwd=case.root,
        capture_output=True,
        check=False,
    )
    sample = clock.stop()
    if done.returncode != 0:
        raise SystemExit(f"make failed: {done.stderr.decode(errors='replace')}")
    return sample


def run_inprocess(case: Case, workers: int, sandbox: Sandbox | None = None) -> Sample:
    state = fresh_state(case, "lib" if sandbox is None else sandbox.name)
    # (a tree from before the sandbox, measured with --foundry, has no such option)
    boxed = {} if sandbox is None else {"sandbox": sandbox}
    options = RunOptions(workdir=case.root, state_dir=state, workers=workers, **boxed)
    event = Event("apply", case.artifact.digest)
    clock = Clock()
    result = run_execution(case.artifact, event, options, SystemClock())
    sample = clock.stop()
    check(case, result.status, result.blocks, result.ledger)
    return sample


def run_sandboxed(case: Case, workers: int) -> Sample:
    """The library, every block under bubblewrap (`foundry.sandbox.Bubblewrap`)."""
    from foundry.sandbox import Bubblewrap

    return run_inprocess(case, workers, Bubblewrap())


def run_cli(case: Case, workers: int) -> Sample:
    state = fresh_state(case, "cli")
    argv = [
        sys.executable,
        "-m",
        "foundry",
        "run",
        str(case.root),
        "--artifact",
        case.artifact.metadata.name,
        "--state",
        str(state),
        "--workers",
        str(workers),
    ]
    # unsandboxed, as the other contenders (the sandbox's cost is its own row)
    env = {**os.environ, "PYTHONPATH": str(SOURCE), "FOUNDRY_SANDBOX": "none"}
    clock = Clock()
    done = subprocess.run(argv, capture_output=True, check=False, env=env, cwd=case.root)
    sample = clock.stop()
    if done.returncode != 0:
        raise SystemExit(f"foundry run failed ({done.returncode}): {done.stderr.decode()}")
    (ledger,) = state.rglob("ledger.jsonl")
    # What ran, from the ledger (the command's output is for people and changes shape).
    records = [json.loads(line) for line in ledger.read_bytes().splitlines()]
    blocks = {r["block"]: r["status"] for r in records if r["type"] == "block-finished"}
    check(case, "succeeded", blocks, ledger)
    return sample


def check(case: Case, status: str, blocks: dict[str, str], ledger: Path) -> None:
    """The run did the work: every block succeeded, and every record is in the ledger."""
    if status != "succeeded" or len(blocks) != case.blocks:
        raise SystemExit(f"{case.root.name}: {status}, {len(blocks)} blocks")
    if set(blocks.values()) != {"succeeded"}:
        raise SystemExit(f"{case.root.name}: not every block succeeded")
    kinds = [json.loads(line)["type"] for line in ledger.read_bytes().splitlines()]
    expected = 2 + 3 * case.blocks  # planned, 3 per block, execution-finished
    if len(kinds) != expected or kinds[0] != "planned" or kinds[-1] != "execution-finished":
        raise SystemExit(f"{case.root.name}: {len(kinds)} ledger records, expected {expected}")


# --- timing -------------------------------------------------------------------------------------


@dataclass
class Timing:
    samples: list[Sample] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(s.wall for s in self.samples)

    @property
    def median(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def own_cpu(self) -> float:
        return statistics.median(s.own_cpu for s in self.samples)

    @property
    def child_cpu(self) -> float:
        return statistics.median(s.child_cpu for s in self.samples)


Contender = Callable[[Case, int], Sample]


def measure(
    case: Case, contenders: dict[str, Contender], workers: int, repeat: int
) -> dict[str, Timing]:
    """Interleaved: each round runs every contender once, so drift hits them all alike. Dirty
    pages are written out before each run (untimed), so that no run pays for an earlier one's
    write-back when it syncs. One warm-up run of each first."""
    timings = {name: Timing() for name in contenders}
    for once in contenders.values():
        os.sync()
        once(case, workers)
    for _ in range(repeat):
        for name, once in contenders.items():
            os.sync()
            timings[name].samples.append(once(case, workers))
    return timings


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in rows]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary files go")
    parser.add_argument(
        "--foundry", type=Path, help="a directory holding another `foundry` package to measure"
    )
    parser.add_argument("--no-cli", action="store_true", help="skip the whole `foundry run`")
    parser.add_argument(
        "--no-sandbox", action="store_true", help="skip the library under bubblewrap"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.repeat < 3:
        parser.error("--repeat must be at least 3")
    if shutil.which("make") is None:
        raise SystemExit("make is not installed")

    base = Path(tempfile.mkdtemp(prefix="foundry-engine-bench-", dir=args.dir))
    print(
        f"{args.blocks} no-op blocks, workers={args.workers}, repeat={args.repeat} "
        f"(best / median, ms), in {base}; python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores; foundry from {SOURCE}"
    )
    try:
        results: dict[tuple[str, str], dict[str, Timing]] = {}
        for shape in ("chains", "independent"):
            for effects in ("none", "irreversible"):
                case = prepare(base, shape, effects, args.blocks, args.chains)
                contenders: dict[str, Contender] = {}
                if effects == "none":
                    contenders["make -j2"] = run_make
                contenders["foundry (library)"] = run_inprocess
                if effects == "none" and not args.no_sandbox and shutil.which("bwrap"):
                    contenders["foundry (library, bwrap)"] = run_sandboxed
                if not args.no_cli:
                    contenders["foundry run"] = run_cli
                results[(shape, effects)] = measure(case, contenders, args.workers, args.repeat)
                print(f"  measured {shape}, effects {effects}", file=sys.stderr)
        report(results, args)
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def report(results: dict[tuple[str, str], dict[str, Timing]], args: argparse.Namespace) -> None:
    n = args.blocks
    shapes = {
        "chains": f"chains ({args.chains}x{args.blocks // args.chains})",
        "independent": f"independent ({args.blocks})",
    }
    rows: list[list[str]] = []
    verdicts: list[str] = []
    for shape, label in shapes.items():
        timings = results[(shape, "none")]
        make = timings["make -j2"]
        for name, t in timings.items():
            ratio = ""
            if name != "make -j2":
                ratio = f"{t.best / make.best:.2f}x / {t.median / make.median:.2f}x"
                met = "met" if t.median / make.median <= TARGET else "NOT met"
                if "bwrap" not in name:  # the target is the engine's; the sandbox's cost below
                    verdicts.append(
                        f"  {label:18s} {name:18s} {t.median / make.median:.2f}x: {met}"
                    )
            own = f"{t.own_cpu / n * 1000:.3f}" if name == "foundry (library)" else "-"
            rows.append(
                [
                    label if name == "make -j2" else "",
                    name,
                    ms(t.best),
                    ms(t.median),
                    f"{t.median / n * 1000:.3f}",
                    ratio,
                    f"{(t.own_cpu + t.child_cpu) / n * 1000:.3f}",
                    own,
                ]
            )
    print()
    print("Effects none: Foundry / make -j2 on the same DAG (ratio: best / median)")
    header = ["shape", "contender", "best ms", "median ms", "ms/block", "ratio"]
    print(table(rows, [*header, "cpu ms/block", "engine cpu ms/block"]))
    print(f"\nTarget: at most {TARGET}x make (median)")
    print("\n".join(verdicts))
    for shape, label in shapes.items():
        timings = results[(shape, "none")]
        if "foundry (library, bwrap)" in timings:
            boxed, plain = timings["foundry (library, bwrap)"], timings["foundry (library)"]
            per_block = (boxed.median - plain.median) / n * 1000
            print(
                f"  {label:18s} the bwrap sandbox costs {per_block:.3f} ms per block "
                f"(median; {boxed.median / plain.median:.2f}x the library unsandboxed, "
                f"{boxed.median / timings['make -j2'].median:.2f}x make)"
            )

    rows = []
    for shape, label in shapes.items():
        plain = results[(shape, "none")]
        durable = results[(shape, "irreversible")]
        for name, t in durable.items():
            base = plain[name]
            extra = (t.median - base.median) / n * 1000
            rows.append(
                [
                    label,
                    name,
                    ms(t.best),
                    ms(t.median),
                    f"{t.median / base.median:.2f}x",
                    f"{extra:+.3f}",
                    f"{t.median / plain['make -j2'].median:.2f}x",
                ]
            )
    print()
    print("Durability: effects irreversible (the ledger is fsync'ed before attempts start)")
    header = ["shape", "contender", "best ms", "median ms", "vs none", "ms/block more"]
    print(table(rows, [*header, "vs make"]))


if __name__ == "__main__":
    main()
