"""Whether a cron expression can ever match, decided cheaply at check time.

A five-field cron repeats with the Gregorian calendar, every 400 years, so "never matches" is a
property of the expression alone. Foundry reads crons with croniter, which raises instead of
answering when nothing matches; such an expression is refused here so that it never reaches it.

Plain syntax (numbers, names, `*`, `?`, ranges, steps and lists) is decided from the fields as
croniter expands them, without iterating a calendar:

* minutes and hours are never empty, and every month has every weekday, so only the
  day-of-month can rule a date out;
* when both day-of-month and day-of-week are restricted, either one matching is enough (cron's
  OR rule, as croniter implements it), and the day-of-week side always matches;
* otherwise some day-of-month must exist in some month the expression names, February having
  29 days (in leap years, at most 8 years apart).

Anything else (`L`, `W`, `#`, or a `*` inside a list) is decided by croniter itself: whether
a cron matches on a day depends only on the calendar of that day's year, and the 28 years from
2000 hold every kind of year there is (leap or not, starting on each weekday), so croniter looks
through those.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

from croniter import CroniterBadDateError, CroniterError, croniter

#: The most days each month has (February in a leap year).
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
#: How far the croniter fallback looks: from 2000 to 2028 (a leap year every 4 years, no
#: century in between) every kind of year occurs, so a cron that matches ever matches there.
LOOKAHEAD_YEARS = 28
_START = datetime(1999, 12, 31, 23, 59, tzinfo=UTC)

_PLAIN_DAY = re.compile(r"^[0-9*?,/-]+$")
# Day names (sun, mon, ...) hold no `l`, so an `l` is croniter's "last <weekday>".
_PLAIN_WEEKDAY = re.compile(r"^[0-9a-km-z*?,/-]+$", re.IGNORECASE)

Field = list[int | Literal["*", "l"]]


def _plain(field: Field) -> list[int] | Literal["*"] | None:
    """`*` for every value, the values, or None when the field is more than a plain set."""
    if field == ["*"]:
        return "*"
    values = [v for v in field if isinstance(v, int)]
    return values if len(values) == len(field) else None


def analytic(expr: str) -> tuple[bool, str] | None:
    """(ever matches, why not) from the expanded fields; None for syntax it does not decide.

    `expr` must be a valid five-field expression (croniter.expand raises otherwise)."""
    fields = expr.split()
    expanded, nth_weekday = croniter.expand(expr)
    if nth_weekday or not _PLAIN_DAY.match(fields[2]) or not _PLAIN_WEEKDAY.match(fields[4]):
        return None
    days, months, weekdays = (_plain(expanded[i]) for i in (2, 3, 4))
    if days is None or months is None or weekdays is None:
        return None
    if days == "*" or weekdays != "*":
        return True, ""
    named = range(1, 13) if months == "*" else months
    if any(day <= MONTH_DAYS[month - 1] for month in named for day in days):
        return True, ""
    listed = [str(d) for d in sorted(days)]
    text = listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} or {listed[-1]}"
    return False, f"no month it names has day {text}"


def by_croniter(expr: str) -> bool:
    """Whether croniter finds a time for `expr` in the years 2000 to 2028."""
    try:
        croniter(expr, _START, max_years_between_matches=LOOKAHEAD_YEARS).get_next(datetime)
    except CroniterBadDateError:
        return False
    return True


@lru_cache(maxsize=4096)
def cron_problem(expr: str) -> str | None:
    """What is wrong with a cron expression (with the fix), or None when it is fine."""
    fields = expr.split()
    if len(fields) != 5:
        return (
            f"cron {expr!r} has {len(fields)} fields; write five: minute hour day-of-month "
            "month day-of-week (e.g. '0 2 * * *')"
        )
    try:
        decided = analytic(expr)
    except CroniterError:
        return f"cron {expr!r} is not valid; e.g. '0 2 * * *' is every day at 02:00"
    if decided is None:
        if by_croniter(expr):
            return None
        return (
            f"cron {expr!r} never matches (no day of any year fits it); change its "
            "day-of-month, month or day-of-week to name a date that exists"
        )
    matches, why = decided
    if matches:
        return None
    return f"cron {expr!r} never matches ({why}); name a day that exists in those months"
