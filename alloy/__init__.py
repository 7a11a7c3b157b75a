"""Alloy: the intent side. Models of `alloy.dev/v1`, the loader, the compiler into
content-addressed artifacts, and the library functions behind the `alloy` command line.

The core never imports Foundry, controllers, git, forge, watcher or CLI libraries.
"""

from alloy._version import API_VERSION, COMPILER, __version__
from alloy.compile import canonical_bytes, compile_intent, document_digest
from alloy.diagnostics import Diagnostic
from alloy.errors import (
    AlloyError,
    InternalError,
    InvalidDocuments,
    NotFound,
    StaleArtifacts,
    UserError,
)
from alloy.load import Entry, Repository, load_repository
from alloy.workspace import check, compile_repository, find_root

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
