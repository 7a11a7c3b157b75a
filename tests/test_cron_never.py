"""A cron expression that never matches: refused by `alloy check`, and never a crash in Foundry.

A window gate or schedule trigger cron such as `* * 31 2 *` names no time at all; croniter
raises instead of answering, so `alloy check` refuses it (looking ahead far enough for
29 February), and Foundry's planner skips such a schedule of a hand-written artifact with the
reason while it plans every other artifact as usual.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from croniter import CroniterBadDateError, croniter
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from alloy.model._cron import analytic, cron_problem
from foundry.boundary import Boundary
from foundry.ids import Event
from foundry.planner import plan
from foundry.state import LedgerIndex
from tests.conftest import GitRepo, Result, intent_yaml
from tests.foundry_support import artifact, artifact_document, block, write_artifact

X = ".alloy/intents/x.yaml"


def gated(cron: str, *, schedule: str | None = None) -> str:
    """Intent `x` whose block has an approval gate and then a window gate with `cron`."""
    on = (
        "{apply: true, request: true}"
        if schedule is None
        else f'{{apply: true, schedule: {{cron: "{schedule}"}}, request: true}}'
    )
    return intent_yaml(
        "x",
        on=on,
        blocks=(
            "      - id: build\n"
            "        run: [python, -c, 'print(1)']\n"
            "        effects: none\n"
            "        gates:\n"
            "          - approval: {from: [alice]}\n"
            f'          - window: {{cron: "{cron}"}}\n'
        ),
    )


def line_of(text: str, needle: str) -> int:
    (number,) = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return number


def column_of(text: str, needle: str) -> int:
    """The column of the quoted cron on the line holding `needle` (1-based)."""
    return text.splitlines()[line_of(text, needle) - 1].index('"') + 1


# --- alloy check, through the real CLI ---------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("* * 31 2 *", "no month it names has day 31"),
        ("0 0 30 2 *", "no month it names has day 30"),
        ("0 0 31 4,6,9,11 *", "no month it names has day 31"),
        ("0 0 30,31 feb *", "no month it names has day 30 or 31"),
    ],
)
def test_check_refuses_a_window_cron_that_never_matches(
    cron: str, why: str, repo: GitRepo, alloy: Callable[..., Result]
) -> None:
    text = gated(cron)
    repo.write({X: text})
    line, column = line_of(text, "window:"), column_of(text, "window:")
    for args in (("check",), ("compile",), ("check", "--no-cache")):
        result = alloy(*args)
        output = result.out + result.err
        assert result.code == 1, output
        assert "Traceback" not in output
        assert (
            f"{X}:{line}:{column}: spec.automation.blocks[0].gates[1].window.cron: "
            f"cron {cron!r} never matches ({why}); name a day that exists in those months"
        ) in output.splitlines()
    assert repo.tree(".alloy/artifacts") == {}


def test_check_refuses_a_schedule_cron_that_never_matches_and_reports_every_problem(
    repo: GitRepo, alloy: Callable[..., Result]
) -> None:
    text = gated("0 0 31 4,6,9,11 *", schedule="* * 31 2 *")
    repo.write({X: text})
    result = alloy("check", "--format", "json")
    assert result.code == 1, result.out + result.err
    assert "Traceback" not in result.out + result.err
    found = {(d["line"], d["where"]): d["message"] for d in json.loads(result.out)["diagnostics"]}
    assert found == {
        (line_of(text, "schedule:"), "spec.automation.on.schedule.cron"): (
            "cron '* * 31 2 *' never matches (no month it names has day 31); "
            "name a day that exists in those months"
        ),
        (line_of(text, "window:"), "spec.automation.blocks[0].gates[1].window.cron"): (
            "cron '0 0 31 4,6,9,11 *' never matches (no month it names has day 31); "
            "name a day that exists in those months"
        ),
    }


def test_check_refuses_exotic_syntax_that_never_matches(
    repo: GitRepo, alloy: Callable[..., Result]
) -> None:
    # `#` is beyond the analytic test: croniter, which finds no time for it, is the judge.
    repo.write({X: gated("0 0 31 2 1#1")})
    result = alloy("check")
    assert result.code == 1
    assert (
        "window.cron: cron '0 0 31 2 1#1' never matches (no day of any year fits it); change "
        "its day-of-month, month or day-of-week to name a date that exists"
    ) in result.out
    assert "Traceback" not in result.out + result.err


@pytest.mark.parametrize(
    "cron",
    [
        "0 0 29 2 *",  # only in leap years (2096 -> 2104 is 8 years)
        "0 0 29,30,31 2 *",  # 29 February is enough
        "0 0 31 2 1",  # day-of-month or day-of-week: every Monday of February
        "0 0 31 2,3 *",
        "0 0 L 2 *",  # the last day of February
        "0 0 * 2 1#5",  # a fifth Monday of February: only when 29 February is a Monday
    ],
)
def test_check_accepts_a_cron_that_matches_however_rarely(
    cron: str, repo: GitRepo, alloy: Callable[..., Result]
) -> None:
    repo.write({X: gated(cron, schedule=cron)})
    result = alloy("compile")
    assert result.code == 0, result.out + result.err
    compiled = json.loads((repo.path / ".alloy/artifacts/x.json").read_text())
    assert compiled["spec"]["triggers"]["schedule"]["cron"] == cron
    assert alloy("check").code == 0


# --- the analytic answer agrees with croniter --------------------------------------------------


def croniter_matches(expr: str) -> bool:
    """The oracle: croniter itself, from another start, over a whole 400-year cycle."""
    try:
        croniter(
            expr, datetime(2031, 5, 17, 13, 7, tzinfo=UTC), max_years_between_matches=400
        ).get_next(datetime)
    except CroniterBadDateError:
        return False
    return True


def _listed(token: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(token, min_size=1, max_size=3).map(",".join)


def _ranges(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    pair = st.tuples(value, value).map(sorted)
    single = value.map(str) if names is None else st.one_of(value.map(str), st.sampled_from(names))
    return st.one_of(
        single,
        pair.map(lambda p: f"{p[0]}-{p[1]}"),
        st.tuples(pair, st.integers(1, 12)).map(lambda t: f"{t[0][0]}-{t[0][1]}/{t[1]}"),
        st.integers(1, 12).map(lambda s: f"*/{s}"),
    )


MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

DAY = st.one_of(st.just("*"), _listed(_ranges(1, 31)))
MONTH = st.one_of(st.just("*"), _listed(_ranges(1, 12, MONTHS)))
WEEKDAY = st.one_of(st.just("*"), st.just("?"), _listed(_ranges(0, 7, DAYS)))
#: The end of the month and the months shorter than 31 days, where crons may never match.
FEBRUARY = st.tuples(
    _listed(st.sampled_from(["29", "30", "31", "30-31", "29-31/2", "30/1"])),
    _listed(st.sampled_from(["2", "feb", "2/12", "Feb"])),
)
SHORT = st.tuples(
    _listed(st.sampled_from(["30", "31", "31", "31"])),
    _listed(st.sampled_from(["2", "4", "6", "9", "11", "apr", "sep", "4-11/5", "apr-jun/2", "7"])),
)
PLAIN = st.one_of(
    st.tuples(
        st.sampled_from(["0", "*", "*/15", "5-10"]),
        st.sampled_from(["0", "*", "8-18"]),
        DAY,
        MONTH,
        WEEKDAY,
    ),
    st.tuples(
        st.sampled_from(["0", "*"]),
        st.sampled_from(["0", "*"]),
        st.one_of(FEBRUARY, SHORT),
        st.sampled_from(["*", "*", "*", "?", "1-5", "sun"]),
    ).map(lambda t: (t[0], t[1], *t[2], t[3])),
).map(" ".join)

#: Syntax the analytic test hands to croniter: last day, nearest weekday, nth weekday.
EXOTIC = st.tuples(
    st.sampled_from(["0", "*/30"]),
    st.sampled_from(["0", "12"]),
    st.one_of(st.just("L"), st.integers(1, 31).map(lambda d: f"{d}W"), DAY, st.just("31")),
    st.one_of(MONTH, st.sampled_from(["2", "4,6", "feb,sep"])),
    st.one_of(
        st.tuples(st.integers(0, 6), st.integers(1, 5)).map(lambda t: f"{t[0]}#{t[1]}"),
        st.integers(0, 6).map(lambda d: f"L{d}"),
        WEEKDAY,
    ),
).map(" ".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PLAIN)
def test_the_analytic_answer_agrees_with_croniter(expr: str) -> None:
    if not croniter.is_valid(expr):
        event("not valid")
        return
    decided = analytic(expr)
    assert decided is not None, f"{expr!r} is plain syntax"
    event("matches" if decided[0] else "never matches")
    assert decided[0] == croniter_matches(expr), expr
    assert (cron_problem(expr) is None) == decided[0]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXOTIC)
def test_every_valid_cron_is_refused_exactly_when_croniter_finds_no_time(expr: str) -> None:
    if not croniter.is_valid(expr):
        return
    event("refused" if cron_problem(expr) else "accepted")
    assert (cron_problem(expr) is None) == croniter_matches(expr), expr


@pytest.mark.parametrize(
    ("cron", "matches"),
    [
        ("0 0 29 2 *", True),
        ("0 0 30 2 *", False),
        ("* * 31 2 *", False),
        ("0 0 31 4,6,9,11 *", False),
        ("0 0 31 4,6,9,11 1-5", True),  # or any weekday of those months
        ("0 0 31 4,6,9,11 ?", False),
        ("0 0 31 2 0-6", True),
        ("0 0 31 apr-jun *", True),  # May has a 31st
        ("0 0 31 */2 *", True),  # January
        ("0 0 31 2-12/2 *", True),  # August
        ("0 0 31 4-11/5 *", False),  # April and September
    ],
)
def test_known_answers(cron: str, matches: bool) -> None:
    decided = analytic(cron)
    assert decided is not None
    assert decided[0] is matches
    assert croniter_matches(cron) is matches


# --- Foundry: the planner never raises for such a schedule -------------------------------------


def schedule(cron: str, timezone: str = "UTC") -> dict[str, object]:
    return {"cron": cron, "timezone": timezone, "catchUpSeconds": 3600, "overlap": "skip"}


def skipped(says: str) -> str:
    return f"schedule: {says}; nothing is scheduled (fix the intent and compile again)"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_planner_skips_a_schedule_that_never_matches_and_plans_the_rest(
    tmp_path: Path,
) -> None:
    never = artifact(
        "never",
        [block("b", ["true"])],
        triggers={"apply": True, "request": False, "schedule": schedule("* * 31 2 *")},
    )
    nightly = artifact(
        "nightly",
        [block("b", ["true"])],
        triggers={"apply": False, "request": False, "schedule": schedule("0 2 * * *")},
    )
    boundary = Boundary(artifacts={"never": never, "nightly": nightly})
    result = plan(boundary, LedgerIndex(tmp_path), now=at("2028-02-29T02:03:00"))
    assert [(i.artifact, i.event) for i in result.start] == [
        ("never", Event("apply", never.digest)),  # its other triggers still work
        ("nightly", Event("schedule", "2028-02-29T02:00:00Z")),
    ]
    assert [(i.artifact, i.event, i.execution, i.reason) for i in result.skip] == [
        (
            "never",
            None,
            None,
            skipped("its schedule cron '* * 31 2 *' never matches"),
        )
    ]


@pytest.mark.parametrize(
    ("cron", "timezone", "says"),
    [
        ("0 0 30 2 *", "UTC", "its schedule cron '0 0 30 2 *' never matches"),
        ("0 0 31 2 1#1", "UTC", "its schedule cron '0 0 31 2 1#1' never matches"),
        ("0 25 * * *", "UTC", "its schedule cron '0 25 * * *' is not a valid cron"),
        ("0 2 * * *", "Mars/Olympus", "its schedule time zone 'Mars/Olympus' is not known here"),
    ],
)
def test_the_planner_says_why_a_schedule_has_no_slots(
    cron: str, timezone: str, says: str, tmp_path: Path
) -> None:
    art = artifact(
        "odd",
        [block("b", ["true"])],
        triggers={"apply": False, "request": False, "schedule": schedule(cron, timezone)},
    )
    result = plan(Boundary(artifacts={"odd": art}), LedgerIndex(tmp_path), now=at("2026-11-25"))
    assert result.start == []
    assert result.resume == []
    assert [i.reason for i in result.skip] == [skipped(says)]


def test_foundry_plan_lists_the_never_matching_schedule_and_plans_the_rest(
    tmp_path: Path,
) -> None:
    root = tmp_path / "checkout"
    never = artifact_document(
        "never",
        [block("b", ["true"])],
        triggers={"apply": False, "request": False, "schedule": schedule("0 0 31 4,6,9,11 *")},
    )
    write_artifact(root, never)
    write_artifact(root, artifact_document("other", [block("b", ["true"])]))
    state = tmp_path / "s"
    out = subprocess.run(
        [sys.executable, "-m", "foundry", "plan", str(root), "--json", "--state", str(state)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    data = json.loads(out.stdout)
    assert data["refused"] == []
    assert [(r["action"], r["artifact"], r["reason"]) for r in data["plan"]] == [
        ("start", "other", "apply: new artifact digest"),
        (
            "skip",
            "never",
            skipped("its schedule cron '0 0 31 4,6,9,11 *' never matches"),
        ),
    ]
