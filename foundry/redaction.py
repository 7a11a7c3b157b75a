"""Secret values in output: which forms of a value are masked, and the masking itself.

The one place that decides what a secret looks like in output. The executor's logs and ledger
tails (`Redactor`, on the stream), the reasons in the ledger, the traces, their Markdown, OTLP
and in-toto forms, check runs and the command lines all mask through this module, so no writer
has its own idea of redaction. docs/foundry.md ("Secrets and redaction") says what is covered
and what is not; `secret_forms` is that list, in code.

Every form of every secret is in one compiled pattern (a tree of their common prefixes, the
longest form first where several start at one place), so text is read once however many forms
there are. Where two occurrences overlap, everything either covers is masked.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, AnyStr, TypeVar, cast
from urllib.parse import quote, quote_plus

#: What a secret is replaced by.
MASK = "***"
#: A line of a multi-line value, and any form other than the value itself, is masked only
#: when it has at least this many characters besides white space (a shorter one would mask
#: ordinary text everywhere).
MIN_CHARS = 4
#: Widths at which base64 is commonly wrapped: `openssl base64` and PEM (64), `base64` and
#: MIME (76).
WRAP_WIDTHS = (64, 76)
#: The characters `encodeURIComponent` leaves as they are, beyond Python's `quote`.
_URI_COMPONENT_SAFE = "!~*'()"
_PERCENT = re.compile(r"%[0-9A-F]{2}")
_UNICODE_ESCAPE = re.compile(r"\\u[0-9a-f]{4}")

T = TypeVar("T")


def _utf8(text: str) -> bytes:
    """The bytes a process prints for `text` (an environment value that was not valid UTF-8
    comes back as the bytes it was)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _stable_base64(encode: Callable[[bytes], bytes], data: bytes, shift: int) -> str:
    """The characters of the base64 of `data`, starting at offset `shift` (mod 3) of a longer
    stream, that depend on `data` alone (not on the bytes before or after it)."""
    encoded = encode(b"\0" * shift + data).decode("ascii")
    start = -(-8 * shift // 6)  # the first character whose six bits all come from `data`
    end = 8 * (shift + len(data)) // 6
    return encoded[start:end]


def _encodings(whole: str) -> Iterable[str]:
    """The encoded forms of one whole value: base64, URL-encoded, JSON-escaped."""
    data = _utf8(whole)
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        full = encode(data).decode("ascii")
        yield full
        yield full.rstrip("=")
        for shift in range(3):
            yield _stable_base64(encode, data, shift)
    full = base64.b64encode(data).decode("ascii")
    for width in WRAP_WIDTHS:
        if len(full) > width:
            yield from (full[i : i + width] for i in range(0, len(full), width))
    for encoded in (
        quote(data, safe=""),
        quote(data),  # `/` kept
        quote(data, safe=_URI_COMPONENT_SAFE),  # JavaScript's encodeURIComponent
        quote_plus(data),
    ):
        yield encoded
        yield _PERCENT.sub(lambda m: m.group(0).lower(), encoded)
    yield from _json_escaped(whole)


def _json_escaped(text: str) -> Iterable[str]:
    """What `json.dumps` makes of `text` between its quotes (ASCII-only, and UTF-8), and the
    ASCII form with upper-case hex digits in its `\\u` escapes."""
    ascii_only = json.dumps(text)[1:-1]
    yield ascii_only
    yield _UNICODE_ESCAPE.sub(lambda m: "\\u" + m.group(0)[2:].upper(), ascii_only)
    yield json.dumps(text, ensure_ascii=False)[1:-1]


def secret_forms(value: str) -> list[str]:
    """Every form of `value` that is masked in output, longest first, each once.

    * the value itself, whatever its length;
    * the value with `\\n` line ends, with `\\r\\n` line ends, and either without the line ends
      at its start and end;
    * for a value of more than one line: each line (as it is, and without the white space
      around it), and its JSON-escaped form;
    * for each whole form above: its base64, standard and URL-safe, with and without padding;
      the characters that depend on it alone when it starts at offset 0, 1 or 2 (mod 3) of a
      longer base64 stream; its standard base64 cut into lines of 64 and 76 characters; its
      URL encodings (`quote` with no safe character and with `/`, `encodeURIComponent`,
      `quote_plus`, each with upper- and lower-case hex digits); and its JSON-escaped forms
      (ASCII-only with either case of hex digits, and UTF-8).

    A form other than the value itself is left out when it has fewer than `MIN_CHARS`
    characters besides white space. A value of white space only has no forms at all.
    """
    if not value or value.isspace():
        return []
    found: dict[str, None] = {value: None}

    def add(form: str) -> None:
        if len(form.strip()) >= MIN_CHARS:
            found[form] = None

    lf = value.replace("\r\n", "\n")
    wholes = dict.fromkeys([value, lf, lf.replace("\n", "\r\n")])
    for whole in list(wholes):
        wholes[whole.strip("\r\n")] = None
    for whole in wholes:
        add(whole)
        for form in _encodings(whole):
            add(form)
    lines = lf.strip("\n").split("\n")
    if len(lines) > 1:
        for line in lines:
            for part in dict.fromkeys([line.rstrip("\r"), line.strip()]):
                add(part)
                for form in _json_escaped(part):
                    add(form)
    return sorted(found, key=lambda form: (-len(form), form))


def _alternation(words: list[str]) -> str:
    """A pattern that matches any of `words` (distinct, none empty), the longest where several
    start at the same place: a tree of their common prefixes, so each position of the text
    costs one comparison per distinct next character rather than one per word. (Encoded as
    UTF-8 it is the same pattern for the words' bytes.)"""
    groups: dict[str, list[str]] = {}
    for word in words:
        groups.setdefault(word[0], []).append(word)
    branches = []
    for _, group in sorted(groups.items()):
        prefix = _common_prefix(group)
        rests = [word[len(prefix) :] for word in group]
        branch = re.escape(prefix)
        longer = [rest for rest in rests if rest]
        if longer:
            inner = _alternation(longer)
            # Greedy: a longer word is tried before the one that ends here.
            branch += f"(?:{inner})?" if len(longer) < len(rests) else inner
        branches.append(branch)
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


def _common_prefix(words: list[str]) -> str:
    first, last = min(words), max(words)
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]


class Redaction:
    """The forms of a set of secrets, compiled: masks them in text, bytes and documents."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form: None for secret in secrets for form in secret_forms(secret)}
        #: Every form, longest first.
        self.forms: tuple[str, ...] = tuple(sorted(forms, key=lambda f: (-len(f), f)))
        pattern = _alternation(list(self.forms)) if self.forms else None
        self._text = re.compile(pattern) if pattern is not None else None
        self._bytes = re.compile(_utf8(pattern)) if pattern is not None else None
        #: The length in bytes of the longest form (0: nothing to mask).
        self.longest = max((len(_utf8(f)) for f in self.forms), default=0)

    def __bool__(self) -> bool:
        return bool(self.forms)

    def mask_text(self, text: str) -> str:
        """`text` with every form of every secret replaced by `MASK`."""
        if self._text is None or not text:
            return text
        return _masked(self._text, text, MASK)

    def mask_bytes(self, data: bytes) -> bytes:
        """`data` with every form of every secret (as UTF-8) replaced by `MASK`."""
        if self._bytes is None or not data:
            return data
        return _masked(self._bytes, data, MASK.encode())

    def mask_value(self, value: T) -> T:
        """A copy of `value` (JSON-like data) with every string in it masked, at any depth
        (the keys of mappings are names, and stay as they are)."""
        if self._text is None:
            return value
        return cast("T", self._value(value))

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, dict):
            return {key: self._value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._value(item) for item in value]
        return value

    def spans(self, data: bytes) -> list[tuple[int, int]]:
        """The stretches of `data` that some form covers, merged where they overlap or touch,
        in order."""
        return _spans(self._bytes, data) if self._bytes is not None else []

    def stream(self) -> Redactor:
        """A `Redactor` of these forms, for one stream."""
        return Redactor(self)


def _spans(pattern: re.Pattern[AnyStr], data: AnyStr) -> list[tuple[int, int]]:
    """Where `pattern` matches `data`, overlapping matches merged. The match at each position is
    the longest form there (alternatives are longest first); after a match the search goes on
    from the next position, so a form that starts inside another and runs past it is found."""
    spans: list[tuple[int, int]] = []
    search = pattern.search
    found = search(data)
    while found is not None:
        begin, end = found.span()
        if spans and begin <= spans[-1][1]:
            if end > spans[-1][1]:
                spans[-1] = (spans[-1][0], end)
        else:
            spans.append((begin, end))
        found = search(data, begin + 1)
    return spans


def _masked(pattern: re.Pattern[AnyStr], data: AnyStr, mask: AnyStr) -> AnyStr:
    spans = _spans(pattern, data)
    if not spans:
        return data
    parts = []
    at = 0
    for begin, end in spans:
        parts += [data[at:begin], mask]
        at = end
    parts.append(data[at:])
    return data[:0].join(parts)


class Redactor:
    """Masks the forms of secrets in a byte stream fed in chunks of any size, also when a form
    is split across chunks: it holds back the last `longest - 1` bytes it has not decided on
    yet (they may begin a form), and keeps as many bytes it already passed on as context (a
    form that began there may run on into the next chunk). Chunks shorter than a few KiB are
    gathered first (`flush` passes on the rest). What it passes on, all chunks together, is
    what `Redaction.mask_bytes` makes of the whole stream at once."""

    def __init__(self, secrets: Redaction | Sequence[str]) -> None:
        self._redaction = secrets if isinstance(secrets, Redaction) else redaction(secrets)
        self._keep = max(0, self._redaction.longest - 1)
        # Short chunks are gathered before they are looked at, so the bytes kept as context
        # and held back are read again a bounded number of times, however small each chunk.
        self._batch = max(4096, 4 * self._keep)
        self._buffer = b""  # context already passed on, then bytes held back
        self._passed = 0  # how many bytes of `_buffer` were passed on already
        self._masked = False  # whether what was passed on ended inside a masked stretch

    def feed(self, chunk: bytes) -> bytes:
        if not self._redaction:
            return chunk
        data = self._buffer + chunk
        if len(data) - self._passed < self._batch:
            self._buffer = data
            return b""
        return self._take(data, final=False)

    def flush(self) -> bytes:
        if not self._redaction:
            return b""
        out = self._take(self._buffer, final=True)
        self._buffer, self._passed, self._masked = b"", 0, False
        return out

    def _take(self, data: bytes, *, final: bool) -> bytes:
        # A form that starts before `limit` is wholly in `data` (or is not there at all).
        limit = len(data) if final else len(data) - self._keep
        at = self._passed  # what is passed on ends here
        until = max(at, limit)  # what is passed on this time ends here
        masked = self._masked
        out: list[bytes] = []
        for begin, end in self._redaction.spans(data):
            if end <= at:
                continue  # passed on already
            if begin > at:
                if begin >= limit:
                    break  # not decided yet: it may go on in the next chunk
                out.append(data[at:begin])
                masked = False
            if not masked:  # else it goes on from (or touches) a stretch masked already
                out.append(MASK.encode())
            at, masked = end, True
            until = max(until, end)
        if until > at:
            out.append(data[at:until])
            masked = False
        keep_from = max(0, until - self._keep)
        self._buffer, self._passed, self._masked = data[keep_from:], until - keep_from, masked
        return b"".join(out)


@functools.lru_cache(maxsize=64)
def _compiled(secrets: tuple[str, ...]) -> Redaction:
    return Redaction(secrets)


def redaction(secrets: Sequence[str] | str) -> Redaction:
    """The compiled forms of `secrets` (a lone string is one secret, not its letters); the same
    set of secrets is compiled once per process."""
    values = [secrets] if isinstance(secrets, str) else secrets
    return _compiled(tuple(sorted({s for s in values if s})))


def redact_text(text: str, secrets: Sequence[str] | str) -> str:
    """`text` with every form of every secret masked."""
    return redaction(secrets).mask_text(text)


def redact(value: T, secrets: Sequence[str] | str) -> T:
    """A copy of `value` (JSON-like data) with every form of every secret masked in every
    string."""
    return redaction(secrets).mask_value(value)


__all__ = [
    "MASK",
    "MIN_CHARS",
    "Redaction",
    "Redactor",
    "redact",
    "redact_text",
    "redaction",
    "secret_forms",
]
