"""What Foundry reads under `.alloy/` and what it refuses, whoever lists the files: a plain
checkout (`foundry run`, `foundry plan`, by `lstat`) or the default branch in git (`foundry
reconcile`, by `git ls-tree`).

Foundry's own implementation of the loader's rules for files and symbolic links (Foundry never
imports Alloy): the same rules, the same limit and the same words as `alloy.load._files`, which
tests/test_hostile_inputs.py holds them to, case by case. Each entry is looked at before
anything is opened; symbolic links are followed one hop at a time, never by the operating
system. Pure: the caller says what is at a path (`Lookup`).

The rules (docs/decisions.md): only regular files are read. A symbolic link is followed while
every step stays inside `.alloy/` and ends at a regular file, through at most `MAX_LINKS` links;
a link that leaves the repository, points elsewhere in it, dangles, loops, is longer than that,
or ends at a directory, a named pipe, a socket, a device or a submodule is refused, and so is
such a file itself.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

#: How many symbolic links in a row are followed (the Linux kernel's own limit): the same for
#: the work tree and for a tree in git.
MAX_LINKS = 40
ALLOY_DIR = ".alloy"

Kind = Literal[
    "file", "directory", "link", "fifo", "socket", "char-device", "block-device", "submodule",
    "other", "missing",
]  # fmt: skip

#: What each kind that is not read is, in a message.
WHAT: dict[str, str] = {
    "directory": "a directory",
    "fifo": "a named pipe (FIFO)",
    "socket": "a socket",
    "char-device": "a character device",
    "block-device": "a block device",
    "submodule": "a submodule",
    "other": "a special file",
}

#: What git's modes are.
GIT_KINDS: dict[str, Kind] = {
    "100644": "file",
    "100755": "file",
    "120000": "link",
    "160000": "submodule",
    "040000": "directory",
}


@dataclass(frozen=True)
class FileNode:
    """What is at one path: its kind, the text of a symbolic link, or why it cannot be looked
    at (`error`, the system's words: "Permission denied")."""

    kind: Kind
    link: str | None = None
    error: str | None = None


#: What is at a path (relative to the top of the repository, `/`-separated). Only paths inside
#: `.alloy/` (or `.alloy` itself) are ever asked about.
Lookup = Callable[[str], FileNode]


@dataclass(frozen=True)
class Resolved:
    """Where a symbolic link leads: the regular file to read (`path`), or why it is refused."""

    path: str | None = None
    refusal: str | None = None


# --- the words --------------------------------------------------------------------------------


def _regular(path: str) -> str:
    """`a regular YAML file`, `a regular JSON file` or `a regular file`, by the file's name."""
    if path.endswith((".yaml", ".yml")):
        return "a regular YAML file"
    if path.endswith(".json"):
        return "a regular JSON file"
    return "a regular file"


def not_a_file(path: str, kind: str) -> str:
    """A named pipe, socket, device, submodule (or a directory where a file must be)."""
    return f"{WHAT.get(kind, WHAT['other'])}, not a regular file; replace it with {_regular(path)}"


def unreadable(reason: str) -> str:
    return f"cannot be read ({reason}); make it readable, or remove it"


def too_large(size: int) -> str:
    return f"file is {size} bytes, far over the size limit; refused (split it, or remove it)"


def not_in_repository() -> str:
    return "its content is not in this repository (a partial or shallow clone?); refused"


def changed_while_read() -> str:
    return "changed while it was being read; run the command again"


def artifact_link() -> str:
    return (
        "a symbolic link, not a regular file; artifacts are written by `alloy compile`, so "
        "remove the link and run it"
    )


def is_artifact(path: str) -> bool:
    """Whether `path` is where an artifact lives (`.alloy/artifacts/<name>.json`): only listed
    when a tree is read, never followed through a link."""
    return (
        path.startswith(f"{ALLOY_DIR}/artifacts/")
        and path.endswith(".json")
        and path.count("/") == 2
    )


def alloy_dir_leaves(text: str) -> str:
    return f"symbolic link to {text!r} leaves the repository; refused"


def alloy_dir_in_git() -> str:
    return (
        ".alloy is a symbolic link; .alloy/ is read from git only as a directory, so commit "
        "the directory itself"
    )


def _leaves(text: str) -> str:
    return f"symbolic link to {text!r} leaves the repository; replace it with the file itself"


def _outside(text: str) -> str:
    return (
        f"symbolic link to {text!r} points outside .alloy/; documents are read only from "
        ".alloy/, so move the file here"
    )


def _dangling(text: str) -> str:
    return (
        f"symbolic link to {text!r}, which does not exist; point it at a file under .alloy/, "
        "or remove it"
    )


def _loop(chain: list[str]) -> str:
    return f"a symbolic-link loop ({' -> '.join(chain)}); replace the link with the file itself"


def _too_long(text: str) -> str:
    return (
        f"symbolic link to {text!r} starts a chain of more than {MAX_LINKS} symbolic links; "
        "link to the file itself"
    )


def _back_up(text: str) -> str:
    return (
        f"symbolic link to {text!r} leads back to a directory that contains it (a loop); remove it"
    )


def _to_directory(text: str) -> str:
    return (
        f"symbolic link to {text!r} leads to a directory; documents are read only as files, so "
        "replace the link with the files themselves"
    )


def _to_special(text: str, kind: str, path: str) -> str:
    return (
        f"symbolic link to {text!r} leads to {WHAT.get(kind, WHAT['other'])}, not a regular "
        f"file; replace it with {_regular(path)}"
    )


def cannot_follow(text: str, error: str) -> str:
    return (
        f"symbolic link to {text!r} cannot be followed ({error}); replace it with the file itself"
    )


# --- following a link ---------------------------------------------------------------------------


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def resolve_link(path: str, lookup: Lookup, *, alloy_dir: str = ALLOY_DIR) -> Resolved:
    """Follow the symbolic link at `path` (inside `alloy_dir`) one hop at a time, each directory
    of the way as well, to the regular file it leads to, or say why it is refused. Each step is
    checked before it is taken: nothing outside `alloy_dir` is ever looked up."""
    first = lookup(path).link or ""
    parent, _, name = path.rpartition("/")
    done = parent.split("/") if parent else []
    pending = [name]
    chain: list[str] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    node = FileNode("directory")
    here = ""
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not done:
                return Resolved(refusal=_leaves(first))
            done.pop()
            continue
        here = "/".join([*done, part])
        if not _inside(here, alloy_dir):
            return Resolved(refusal=_outside(first))
        node = lookup(here)
        if node.kind == "link":
            state = (here, tuple(pending))
            chain.append(here)
            if state in seen:
                return Resolved(refusal=_loop(chain))
            seen.add(state)
            if len(seen) > MAX_LINKS:
                return Resolved(refusal=_too_long(first))
            text = node.link or ""
            if text.startswith("/"):
                return Resolved(refusal=_leaves(first))
            lexical = posixpath.normpath(posixpath.join("/".join(done), text))
            if lexical == ".." or lexical.startswith("../"):
                return Resolved(refusal=_leaves(first))
            if not _inside(lexical, alloy_dir):
                return Resolved(refusal=_outside(first))
            pending = [*text.split("/"), *pending]
            continue
        if node.error is not None:
            return Resolved(refusal=cannot_follow(first, node.error))
        if node.kind == "missing" or (pending and node.kind != "directory"):
            return Resolved(refusal=_dangling(first))
        done.append(part)
    final = "/".join(done)
    if final != here:  # the last step was `.` or `..`: a directory on the way
        if not _inside(final, alloy_dir):
            return Resolved(refusal=_outside(first))
        here, node = final, lookup(final)
        if node.error is not None:
            return Resolved(refusal=cannot_follow(first, node.error))
        if node.kind == "missing":
            return Resolved(refusal=_dangling(first))
    if node.kind == "file":
        return Resolved(path=here)
    if node.kind == "directory":
        if _inside(path, here):
            return Resolved(refusal=_back_up(first))
        return Resolved(refusal=_to_directory(first))
    return Resolved(refusal=_to_special(first, node.kind, path))


# --- a tree listed by git -----------------------------------------------------------------------


@dataclass(frozen=True)
class TreeSource:
    """Where the bytes of one listed path come from: the path of a regular file in the same
    tree (itself, or what its symbolic links lead to), or why the path is refused."""

    path: str | None = None
    refusal: str | None = None


def git_sources(
    modes: dict[str, str], links: dict[str, str], *, alloy_dir: str = ALLOY_DIR
) -> dict[str, TreeSource]:
    """For each path of a tree listed by git (`path -> mode`, everything under `alloy_dir`),
    the regular file to read for it, or its refusal; `links` holds the text of each symbolic
    link (a link whose text is not known is refused as not in the repository)."""
    directories = {"/".join(p.split("/")[:i]) for p in modes for i in range(1, p.count("/") + 1)}

    def lookup(path: str) -> FileNode:
        mode = modes.get(path)
        if mode is None:
            return FileNode("directory") if path in directories else FileNode("missing")
        kind = GIT_KINDS.get(mode, "other")
        if kind == "link":
            text = links.get(path)
            if text is None:
                return FileNode("other", error="its target is not in this repository")
            return FileNode("link", link=text)
        return FileNode(kind)

    out: dict[str, TreeSource] = {}
    for path, mode in modes.items():
        kind = GIT_KINDS.get(mode, "other")
        if path == alloy_dir and kind == "link":
            out[path] = TreeSource(refusal=alloy_dir_in_git())
        elif kind == "file":
            out[path] = TreeSource(path=path)
        elif kind == "link" and is_artifact(path):
            out[path] = TreeSource(refusal=artifact_link())
        elif kind == "link":
            found = resolve_link(path, lookup, alloy_dir=alloy_dir)
            out[path] = TreeSource(path=found.path, refusal=found.refusal)
        else:
            out[path] = TreeSource(refusal=not_a_file(path, kind))
    return out
