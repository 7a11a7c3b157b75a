"""The loader: every rule of DESIGN section 3 over an in-memory snapshot of `.alloy/`."""

from alloy.load._document import DocResult, Entry, Ref, decode, load_document, reload_intent
from alloy.load._files import (
    MAX_LINKS,
    FileNode,
    Resolved,
    TreeSource,
    anchor,
    anchored,
    git_sources,
    not_a_file,
    resolve_link,
)
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
    "MAX_LINKS",
    "PROJECT_PATH",
    "DocResult",
    "DocumentCache",
    "Entry",
    "FileNode",
    "Ref",
    "Repository",
    "Resolved",
    "TreeSource",
    "YamlProblem",
    "anchor",
    "anchored",
    "content_key",
    "decode",
    "git_sources",
    "load_document",
    "load_project",
    "load_repository",
    "not_a_file",
    "parse",
    "reload_intent",
    "resolve_link",
]
