"""Benchmark of Foundry's executor against `make -j2` on the same 1,000-block DAG.

Run by hand, never as a test:

    .venv/bin/python benchmarks/engine.py [--blocks 1000] [--chains 10] [--repeat 5]
                                          [--workers 2] [--dir DIR] [--keep]

Every block is a no-op (`run: [true]`). Two shapes of the same number of blocks:

* `chains`: `--chains` chains of `blocks / chains` blocks each (block i of a chain needs i-1);
* `independent`: no `needs` at all.

For each shape, in the same run and interleaved (one round runs every contender once):

* `make -j2`: a generated Makefile, one `.PHONY` target per block whose recipe is `@true`, with
  the same dependencies, run as a whole command (`make -s -j2 -f Makefile all`);
* Foundry in-process: `run_execution` with the ledger on, `workers=2`, a fresh state directory
  per run (the timing covers `run_execution` only: the artifact is already read);
* `foundry run`: the whole command as a subprocess (Python start-up, reading the checkout, the
  lane database, the ledger), `--workers 2`, a fresh `--state` per run.

Durability is measured separately: the same DAG with `effects: irreversible`, where the engine
must `fsync` the ledger before every attempt starts (in-process, and the whole command).

Every figure is the best and the median of `--repeat` runs (after one warm-up run of each); the
ratio is Foundry / make, best against best and median against median. The temporary directory
is on the same file system as `--dir` (default: the system's temporary directory), which is
where the ledger's `fsync` goes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from foundry.boundary import Artifact, digest_of, read_artifact  # noqa: E402
from foundry.executor import RunOptions, run_execution  # noqa: E402
from foundry.ids import Event  # noqa: E402
from foundry.ports import SystemClock  # noqa: E402

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
                "compiler": "alloy-compiler/1",
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


def run_make(case: Case, workers: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        ["make", "-s", f"-j{workers}", "-f", "Makefile", "all"],
        cwd=case.root,
        capture_output=True,
        check=False,
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"make failed: {done.stderr.decode(errors='replace')}")
    return took


def run_inprocess(case: Case, workers: int) -> float:
    state = fresh_state(case, "lib")
    options = RunOptions(workdir=case.root, state_dir=state, workers=workers)
    event = Event("apply", case.artifact.digest)
    started = time.perf_counter()
    result = run_execution(case.artifact, event, options, SystemClock())
    took = time.perf_counter() - started
    check(case, result.status, result.blocks, result.ledger)
    return took


def run_cli(case: Case, workers: int) -> float:
    state = fresh_state(case, "cli")
    foundry = Path(sys.executable).with_name("foundry")
    argv = [str(foundry)] if foundry.exists() else [sys.executable, "-m", "foundry"]
    argv += [
        "run",
        str(case.root),
        "--artifact",
        case.artifact.metadata.name,
        "--state",
        str(state),
        "--workers",
        str(workers),
    ]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"foundry run failed ({done.returncode}): {done.stderr.decode()}")
    (ledger,) = state.rglob("ledger.jsonl")
    lines = done.stdout.decode().splitlines()
    blocks = dict(line.split(": ", 1) for line in lines)
    check(case, "succeeded", blocks, ledger)
    return took


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
    samples: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def measure(
    contenders: dict[str, Callable[[], float]], repeat: int, warmup: bool = True
) -> dict[str, Timing]:
    """Interleaved: each round runs every contender once, so drift hits them all alike."""
    timings = {name: Timing() for name in contenders}
    if warmup:
        for once in contenders.values():
            once()
    for _ in range(repeat):
        for name, once in contenders.items():
            timings[name].samples.append(once())
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
    parser.add_argument("--no-cli", action="store_true", help="skip the whole `foundry run`")
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
        f"{os.cpu_count()} cores"
    )
    try:
        results: dict[tuple[str, str], dict[str, Timing]] = {}
        for shape in ("chains", "independent"):
            for effects in ("none", "irreversible"):
                case = prepare(base, shape, effects, args.blocks, args.chains)
                contenders: dict[str, Callable[[], float]] = {}
                if effects == "none":
                    contenders["make"] = lambda c=case: run_make(c, args.workers)
                contenders["foundry (library)"] = lambda c=case: run_inprocess(c, args.workers)
                if not args.no_cli:
                    contenders["foundry run"] = lambda c=case: run_cli(c, args.workers)
                results[(shape, effects)] = measure(contenders, args.repeat)
                label = f"{shape} ({args.chains}x{args.blocks // args.chains})"
                if shape == "independent":
                    label = f"independent ({args.blocks})"
                print(f"  measured {label}, effects {effects}", file=sys.stderr)
        report(results, args)
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def report(results: dict[tuple[str, str], dict[str, Timing]], args: argparse.Namespace) -> None:
    n = args.blocks
    rows: list[list[str]] = []
    for shape in ("chains", "independent"):
        timings = results[(shape, "none")]
        make = timings["make"]
        for name, t in timings.items():
            ratio = "" if name == "make" else f"{t.best / make.best:.2f}x / {t.median / make.median:.2f}x"
            rows.append(
                [
                    shape if name == "make" else "",
                    name,
                    ms(t.best),
                    ms(t.median),
                    f"{t.best / n * 1000:.3f}",
                    ratio,
                ]
            )
    print()
    print("Effects none: Foundry vs make -j2 (ratio = Foundry / make, best / median)")
    print(table(rows, ["shape", "contender", "best ms", "median ms", "ms/block", "ratio"]))
    verdicts = []
    for shape in ("chains", "independent"):
        timings = results[(shape, "none")]
        make = timings["make"]
        for name, t in timings.items():
            if name != "make":
                ratio = t.median / make.median
                ok = "met" if ratio <= TARGET else "NOT met"
                verdicts.append(f"  {shape:12s} {name:18s} {ratio:.2f}x (median): {ok}")
    print(f"\nTarget: at most {TARGET}x make")
    print("\n".join(verdicts))

    rows = []
    for shape in ("chains", "independent"):
        plain = results[(shape, "none")]
        durable = results[(shape, "irreversible")]
        for name, t in durable.items():
            base = plain[name]
            extra = (t.median - base.median) / n * 1000
            rows.append(
                [
                    shape,
                    name,
                    ms(t.best),
                    ms(t.median),
                    f"{t.median / base.median:.2f}x",
                    f"{extra:+.3f}",
                    f"{t.median / plain['make'].median:.2f}x",
                ]
            )
    print()
    print("Durability: effects irreversible (the ledger is fsync'ed before each attempt starts)")
    print(
        table(
            rows,
            ["shape", "contender", "best ms", "median ms", "vs none", "ms/block extra", "vs make"],
        )
    )


if __name__ == "__main__":
    main()
