"""The loader: every rule of DESIGN section 3 over an in-memory snapshot of `.alloy/`."""

from alloy.load._document import DocResult, Entry, Ref, decode, load_document, reload_intent
from alloy.load._repository import (
    PROJECT_PATH,
    DocumentCache,
    Repository,
    content_key,
    load_project,
    load_repository,
)
from alloy.load._yaml import MAX_ALIASES, YamlProblem, parse

__all__ = [
    "MAX_ALIASES",
    "PROJECT_PATH",
    "DocResult",
    "DocumentCache",
    "Entry",
    "Ref",
    "Repository",
    "YamlProblem",
    "content_key",
    "decode",
    "load_document",
    "load_project",
    "load_repository",
    "parse",
    "reload_intent",
]
