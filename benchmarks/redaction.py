"""Benchmark of masking secrets in block output: the streaming `Redactor` as the executor feeds it.

Run by hand, never as a test:

    .venv/bin/python benchmarks/redaction.py [--mib 16] [--chunk 65536] [--repeat 5]
        [--foundry OTHER_TREE]

The output is `--mib` MiB of log text: lines of words, numbers, paths and hex and base64
digests (deterministic, seeded). It is fed to one `Redactor` in chunks of `--chunk` bytes (what
the executor reads from a block's pipe at most at once), and, as a worst case for the hold-back,
in chunks of 100 bytes (a block that prints and flushes short lines). Sets of secrets:

* `none`: no secret (the executor passes output through untouched);
* `one token`: one 40-character token;
* `issue 12`: the four secrets of tests/test_redaction.py (a token, a PEM-like block, CRLF line
  ends, JSON-special characters): every form of each;
* `ten tokens`: ten 40-character tokens.

For each: the number of forms, the longest form, the best and the median MiB/s of `--repeat`
runs, and the same for the exact-value-only replacement Foundry had before (`bytes.replace` of
each value, held back by the longest value), as a baseline. `--foundry DIR` measures the
`foundry` package in DIR instead of this checkout's.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


def _source() -> Path:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--foundry", type=Path, default=Path(__file__).resolve().parent.parent)
    known, _ = pre.parse_known_args()
    return Path(known.foundry).resolve()


sys.path.insert(0, str(_source()))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foundry.redaction import Redaction  # noqa: E402
from tests.test_redaction import SECRETS  # noqa: E402


class ExactOnly:
    """The redactor Foundry had before: each exact value replaced, longest value held back."""

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
        self._keep = max((len(s) for s in self._secrets), default=1) - 1
        self._carry = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self._secrets:
            return chunk
        data = self._carry + chunk
        for secret in self._secrets:
            data = data.replace(secret, b"***")
        cut = max(0, len(data) - self._keep)
        self._carry = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        data, self._carry = self._carry, b""
        for secret in self._secrets:
            data = data.replace(secret, b"***")
        return data


def log_text(mib: int, seed: int = 12) -> bytes:
    rng = random.Random(seed)  # noqa: S311 - seeded text, not a secret
    words = [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 10)))
        for _ in range(2000)
    ]
    b64 = string.ascii_letters + string.digits + "+/"
    lines = []
    size = 0
    while size < mib << 20:
        kind = rng.random()
        if kind < 0.1:
            line = "sha256:" + "".join(rng.choice("0123456789abcdef") for _ in range(64))
        elif kind < 0.15:
            line = "".join(rng.choice(b64) for _ in range(76))
        elif kind < 0.25:
            line = "/".join(rng.choice(words) for _ in range(6)) + f".py:{rng.randint(1, 999)}"
        else:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 14)))
        lines.append(line)
        size += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def token(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(40))


class Stream(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


def feed_all(make: Callable[[], Stream], data: bytes, chunk: int) -> float:
    redactor = make()
    start = time.perf_counter()
    out = [redactor.feed(data[at : at + chunk]) for at in range(0, len(data), chunk)]
    out.append(redactor.flush())
    elapsed = time.perf_counter() - start
    assert len(b"".join(out)) == len(data), "nothing in the text is a secret"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=65536)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--foundry", type=Path)
    args = parser.parse_args()
    rng = random.Random(3)  # noqa: S311 - seeded made-up tokens
    sets = {
        "none": [],
        "one token": [token(rng)],
        "issue 12": list(SECRETS.values()),
        "ten tokens": [token(rng) for _ in range(10)],
    }
    data = log_text(args.mib)
    small = data[: 1 << 20]
    print(f"{len(data) / (1 << 20):.0f} MiB of log text; chunks of {args.chunk} bytes")
    header = f"{'secrets':<11} {'forms':>5} {'longest':>7}  {'contender':<11}"
    print(f"{header} {'best MiB/s':>10} {'median':>8} {'100-byte chunks':>16}")
    for name, secrets in sets.items():
        redaction = Redaction(secrets)
        contenders: dict[str, Callable[[], Stream]] = {
            "all forms": redaction.stream,
            "exact only": lambda s=secrets: ExactOnly(s),  # type: ignore[misc]
        }
        for label, make in contenders.items():
            times = [feed_all(make, data, args.chunk) for _ in range(args.repeat)]
            tiny = min(feed_all(make, small, 100) for _ in range(max(1, args.repeat // 2)))
            mib = len(data) / (1 << 20)
            print(
                f"{name:<11} {len(redaction.forms):>5} {redaction.longest:>7}  {label:<11} "
                f"{mib / min(times):>10.0f} {mib / statistics.median(times):>8.0f} "
                f"{len(small) / (1 << 20) / tiny:>12.1f} MiB/s"
            )


if __name__ == "__main__":
    main()
