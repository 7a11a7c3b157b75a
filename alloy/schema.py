"""JSON Schemas of every `alloy.dev/v1` kind, generated from the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alloy.model import KINDS

SCHEMA_BASE = "https://alloy.dev/schemas/v1"


def schema_of(kind: str) -> dict[str, Any]:
    schema = KINDS[kind].model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}/{kind.lower()}.schema.json",
        **schema,
    }


def schema_files() -> dict[str, bytes]:
    """File name -> bytes, deterministic (sorted keys, trailing newline)."""
    return {
        f"{kind.lower()}.schema.json": (
            json.dumps(schema_of(kind), indent=2, sort_keys=True) + "\n"
        ).encode()
        for kind in KINDS
    }


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in schema_files().items():
        target = out / name
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
        written.append(target)
    return written
