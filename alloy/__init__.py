"""Alloy: the intent side. Models of `alloy.dev/v1`, the loader, the compiler into
content-addressed artifacts, and the library functions behind the `alloy` command line.

The core never imports Foundry, controllers, git, forge, watcher or CLI libraries. The exports
that need the models (the compiler, the loader, the workspace functions) are imported when first
used, so `import alloy` (and `alloy --version`) does not load pydantic and every model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from alloy._version import API_VERSION, COMPILER, __version__
from alloy.diagnostics import Diagnostic
from alloy.errors import (
    AlloyError,
    InternalError,
    InvalidDocuments,
    NotFound,
    StaleArtifacts,
    UserError,
)

if TYPE_CHECKING:
    from alloy.compile import canonical_bytes, compile_intent, document_digest
    from alloy.load import Entry, Repository, load_repository
    from alloy.workspace import check, compile_repository, find_root

#: Where each export that is imported when first used lives.
_LAZY = {
    "canonical_bytes": "alloy.compile",
    "compile_intent": "alloy.compile",
    "document_digest": "alloy.compile",
    "Entry": "alloy.load",
    "Repository": "alloy.load",
    "load_repository": "alloy.load",
    "check": "alloy.workspace",
    "compile_repository": "alloy.workspace",
    "find_root": "alloy.workspace",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'alloy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "API_VERSION",
    "COMPILER",
    "AlloyError",
    "Diagnostic",
    "Entry",
    "InternalError",
    "InvalidDocuments",
    "NotFound",
    "Repository",
    "StaleArtifacts",
    "UserError",
    "__version__",
    "canonical_bytes",
    "check",
    "compile_intent",
    "compile_repository",
    "document_digest",
    "find_root",
    "load_repository",
]
