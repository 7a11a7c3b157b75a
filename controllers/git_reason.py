"""Why git failed, in git's own words and whole (a connection error names its cause)."""

from __future__ import annotations


def git_reason(stderr: str) -> str:
    """Why git failed, whole: the paragraph of its stderr that holds the first `fatal:` or
    `error:` line (the cause git printed just before it, like ssh's `Connection refused`, and
    a line a trailing colon continues), without the advice after it ("Please make sure ...")
    or `hint:` lines; else its last line."""
    paragraphs: list[list[str]] = [[]]
    for raw in stderr.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.strip()
        if not line:
            if paragraphs[-1]:
                paragraphs.append([])
        elif not line.startswith("hint:"):
            paragraphs[-1].append(line)
    lines = next(
        (p for p in paragraphs if any(x.startswith(("fatal:", "error:")) for x in p)),
        [x for p in paragraphs for x in p][-1:],
    )
    text = ""
    for line in lines[-4:]:
        text += (" " if text.endswith(":") else "; " if text else "") + line
    return text[:2000]
