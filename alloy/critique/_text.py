"""Two detectors on free text: is anything in it measurable, and which vague words stand where
a number belongs. Both are deterministic word rules (no model, no network): they are meant to
prompt a question, not to judge, so they lean towards asking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A number: digits, or a number word. "a day", "an hour" count through the time units below.
_NUMBER_WORDS = (
    "zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|fifty|"
    "hundred|thousand|million|billion|once|twice|half|double|triple|dozen|percent|per cent"
)
_UNITS = (
    # time
    "ns|µs|us|ms|msec|millisecond|milliseconds|sec|secs|second|seconds|min|mins|minute|minutes|"
    "hour|hours|day|days|week|weeks|month|months|quarter|quarters|year|years|"
    "hourly|daily|nightly|weekly|monthly|quarterly|yearly|annually|"
    # size and rate
    "byte|bytes|kb|kib|mb|mib|gb|gib|tb|tib|rps|qps|req/s|requests/s|"
    "percentile|p50|p90|p95|p99|p999|sla|slo"
)
_COMPARISONS = (
    "at least|at most|less than|more than|fewer than|greater than|no more than|no less than|"
    "no later than|no earlier than|not more than|not less than|up to|within|below|above|"
    "under|over|exceeds?|never|always|every|each|none|by end of|before|after|deadline"
)
_MEASURABLE = re.compile(
    r"[0-9]|[<>≤≥=%]"
    rf"|\b(?:{_NUMBER_WORDS})\b"
    rf"|\b(?:{_UNITS})\b"
    rf"|\b(?:{_COMPARISONS})\b",
    re.IGNORECASE,
)


def is_measurable(text: str) -> bool:
    """Whether `text` holds anything a check could compare against: a number, a unit, a
    threshold, a time bound, or a comparison ("under", "within a day", "every night", "< 2")."""
    return _MEASURABLE.search(text) is not None


@dataclass(frozen=True)
class Vague:
    """A vague word found in a text, and the question that asks for the number instead."""

    word: str
    question: str


_TIME = "How fast, exactly? Give a time bound (e.g. 'p95 under 300 ms', 'within 10 minutes')."
_WHEN = "By when, exactly? Give a time bound (e.g. 'within 24 hours', 'by 2026-06-30')."
_OFTEN = "How often, exactly? Give the interval (e.g. 'every 6 hours', 'nightly at 02:00 UTC')."
_LOAD = (
    "Up to what load, exactly? Give the number and the limit that must hold at it "
    "(e.g. '10,000 requests/s with p95 under 200 ms')."
)
_RELIABLE = (
    "How reliable, exactly? Give a rate over a period (e.g. '99.9% of runs succeed over 30 days')."
)
_ROBUST = (
    "Robust against what, and how is it shown? Name the failure and the bound "
    "(e.g. 'losing one node fails no request', 'recovers within 5 minutes')."
)
_USABLE = (
    "What outcome shows it, in numbers? (e.g. '9 of 10 new users finish setup in under "
    "5 minutes without help')."
)
_WHICH = "Which, exactly? Name the value, the limit or the rule instead."
_CONDITION = (
    "When, exactly? Name the condition or the schedule (e.g. 'when the queue holds more than "
    "100 jobs', 'every night')."
)
_LIST = "List every item: 'etc.' leaves the rest for the reader to guess."
_AMOUNT = "How much, exactly? Give the number or the limit (e.g. 'at most 2 GiB', 'under 1%')."

#: Vague word or phrase (a regular expression, matched as whole words) -> its question.
_VAGUE: tuple[tuple[str, str], ...] = (
    (r"as soon as possible|asap", _WHEN),
    (r"in a timely manner|timely|soon|promptly", _WHEN),
    (r"fast|faster|quick|quickly|speedy|snappy|rapid|rapidly|performant|responsive", _TIME),
    (r"high[- ]performance|low[- ]latency", _TIME),
    (r"often|frequently|regularly|periodically|from time to time", _OFTEN),
    (r"scalable|scales well|at scale", _LOAD),
    (r"reliable|reliably|highly available|stable", _RELIABLE),
    (r"robust|resilient|fault[- ]tolerant", _ROBUST),
    (r"user[- ]friendly|easy to use|intuitive|seamless|seamlessly", _USABLE),
    (r"appropriate|appropriately|adequate|adequately|sufficient|sufficiently|reasonable", _WHICH),
    (r"reasonably|optimal|optimally|efficient|efficiently", _WHICH),
    (r"as needed|as necessary|if needed|when needed|as required", _CONDITION),
    (r"minimal|minimize|minimise|maximize|maximise|lightweight", _AMOUNT),
    (r"etc\.?|and so on|and so forth", _LIST),
)
_VAGUE_RE = re.compile(
    "|".join(
        f"(?P<v{i}>(?<![\\w-])(?:{pattern})(?![\\w-]))" for i, (pattern, _) in enumerate(_VAGUE)
    ),
    re.IGNORECASE,
)


def vague_words(text: str) -> list[Vague]:
    """The vague words of `text` in order, each once (by its lower-case form)."""
    out: list[Vague] = []
    seen: set[str] = set()
    for match in _VAGUE_RE.finditer(text):
        group = match.lastgroup
        assert group is not None
        word = match.group(0).strip()
        key = word.lower().rstrip(".")
        if key in seen:
            continue
        seen.add(key)
        out.append(Vague(word, _VAGUE[int(group[1:])][1]))
    return out


#: The question a goal with nothing measurable gets (in `alloy critique` and `alloy new intent`).
GOAL_QUESTION = (
    "What number tells you this holds? Name a threshold, a count or a time bound "
    "(e.g. 'p95 page load under 2 s', 'no release waits more than 1 day for review')."
)


def goal_question(goal: str) -> str | None:
    """The follow-up question for a goal with nothing measurable; None when it has something."""
    return None if is_measurable(goal) else GOAL_QUESTION


def statement_question(statement: str) -> str | None:
    """The follow-up question for an acceptance statement with vague words; None without."""
    found = vague_words(statement)
    if not found:
        return None
    return " ".join(f"'{v.word}': {v.question}" for v in found)
