"""A ledger line is one JSON record ended by "\n". Records are written with ensure_ascii=False, so
a log tail may hold U+2028, U+2029 or U+0085 unescaped: every reader of a ledger must split on
"\n" only, or a record is cut in two and everything after it is lost (the trace on the traces
branch would end early)."""

from __future__ import annotations

from pathlib import Path

from foundry.ledger import Ledger
from foundry.merge import merge_ledgers
from foundry.state import LedgerIndex

TAILS = ["a\u2028b", "c\u2029d", "e\x85f", "g\x0bh\x0ci\x1cj"]


def _ledger(state: Path, execution: str) -> Path:
    path = state / "executions" / execution / "ledger.jsonl"
    path.parent.mkdir(parents=True)
    ledger = Ledger(path)
    for n, tail in enumerate(TAILS):
        ledger.append({"type": "note", "logTail": tail, "n": n}, at=1_700_000_000.0 + n)
    ledger.close()
    return path


def test_every_ledger_reader_keeps_records_with_unicode_line_separators(tmp_path: Path) -> None:
    execution = "exe-0123456789abcdef"
    path = _ledger(tmp_path, execution)
    assert path.read_bytes().count(b"\n") == len(TAILS)
    index = LedgerIndex(tmp_path)
    assert [r["logTail"] for r in index.records(execution)] == TAILS
    assert [r["logTail"] for r in Ledger(path).records] == TAILS
    data = path.read_bytes()
    merged = merge_ledgers(data, data, generation=2, holder="b", at=1_700_000_100.0)
    assert merged.startswith(data)
