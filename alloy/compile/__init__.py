"""The compiler from intent to immutable, content-addressed artifacts."""

from alloy.compile._canonical import (
    canonical_bytes,
    document_digest,
    pretty_bytes,
    sha256_digest,
)
from alloy.compile._compiler import compile_intent, compiles, source_digest

__all__ = [
    "canonical_bytes",
    "compile_intent",
    "compiles",
    "document_digest",
    "pretty_bytes",
    "sha256_digest",
    "source_digest",
]
