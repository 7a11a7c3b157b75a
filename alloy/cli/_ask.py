"""The questions of `alloy new intent`: each answer is checked when it is given and, when it is
refused, the question is asked again (no answer given before is lost). With `--format json` they
are asked on stderr, so stdout holds only the JSON document."""

from __future__ import annotations

from collections.abc import Callable

import click

from alloy import scaffold
from alloy.cli._output import output
from alloy.errors import UserError


def ask(
    value: str | None,
    prompt: str,
    no_input: bool,
    required: bool,
    check: Callable[[str], object] | None = None,
) -> str | None:
    """`value` as given, or the answer to `prompt`; an answer that `check` refuses is said
    at once and asked again (a given value it refuses is an error, exit 1)."""
    if value is not None:
        value = value.strip() or None
    if value is not None or no_input:
        if required and not value:
            raise click.UsageError(
                f"--{prompt.split(maxsplit=1)[0].lower()} is required with --no-input"
            )
        if value is not None and check is not None:
            check(value)
        return value
    while True:
        answer: str = click.prompt(
            prompt,
            default="" if not required else None,
            show_default=False,
            err=output().format == "json",
        )
        if not answer.strip() or check is None:
            return answer.strip() or None
        try:
            check(answer.strip())
        except UserError as exc:
            click.echo(f"alloy: {exc}; answer again", err=True)
            continue
        return answer.strip()


def follow_up_goal(goal: str) -> str:
    """Ask once for the number behind a goal with nothing measurable (the question of
    `alloy critique`'s goal-unmeasurable); the answer is added to the goal."""
    from alloy.critique import goal_question

    question = goal_question(goal)
    if question is None:
        return goal
    answer = ask(
        None,
        f"{question}\n  (Enter keeps the goal as it is)",
        False,
        False,
        lambda text: scaffold.text_check("goal")(f"{goal.rstrip().rstrip('.')}: {text}"),
    )
    if not answer:
        return goal
    return f"{goal.rstrip().rstrip('.')}: {answer}"


def follow_up_statement(statement: str, number: int) -> str:
    """Ask once more for an acceptance statement with vague words (`alloy critique`'s
    vague-word); the answer replaces it."""
    from alloy.critique import statement_question

    question = statement_question(statement)
    if question is None:
        return statement
    answer = ask(
        None,
        f"{question}\n  Acceptance criterion {number} again, with the number "
        "(Enter keeps it as it is)",
        False,
        False,
        scaffold.text_check(f"acceptance criterion {number}"),
    )
    return answer or statement
