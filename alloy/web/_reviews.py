"""Reviews: every branch of a repository that changes `.alloy/`, reviewed as `alloy review`
reviews it (`--format json`: the same data), against the default branch's head.

A review is cached by the branch and its (base, head) commits (two branches at one commit are
two reviews: each names its branch); nothing of a branch is checked out or run.
"""

from __future__ import annotations

from typing import Any

from alloy.web._repo import RepoState

#: Reviews shown per repository, newest branch first; and branches looked at to find them (a
#: branch that does not change `.alloy/` is looked at, not reviewed).
REVIEW_LIMIT = 50
SCAN_LIMIT = 500


def reviews(
    states: list[RepoState], cache: dict[tuple[str, str, str, str], dict[str, Any]]
) -> dict[str, Any]:
    items = []
    omitted = 0
    problems: dict[str, str] = {}
    for state in states:
        base = state.intents.commit
        if base is None:
            continue
        skip = {f"refs/heads/{state.default_branch}", f"refs/heads/{state.traces_branch}"}
        dates = state.view.branch_dates()
        branches = sorted(
            (
                (name, sha)
                for name, sha in state.view.refs.items()
                if name.startswith("refs/heads/") and name not in skip and sha != base
            ),
            key=lambda ref: (-dates.get(ref[0], 0), ref[0]),  # the newest first
        )
        shown = 0
        for looked, (ref, head) in enumerate(branches):
            if shown >= REVIEW_LIMIT or looked >= SCAN_LIMIT:
                omitted += len(branches) - looked
                break
            branch = ref[len("refs/heads/") :]
            key = (state.key, branch, base, head)
            if key not in cache:
                cache[key] = _review_of(state, branch, base, head)
            if cache[key]:
                items.append(cache[key])
                shown += 1
        if state.github is not None:
            error = _pull_requests(state, base, items, cache)
            if error:
                problems[state.key] = error
    return {
        "schemaVersion": 1,
        "view": "reviews",
        "items": items,
        "omitted": omitted,
        "github": problems,
    }


def _pull_requests(
    state: RepoState,
    base: str,
    items: list[dict[str, Any]],
    cache: dict[tuple[str, str, str, str], dict[str, Any]],
) -> str | None:
    """Each open pull request beside the review of its branch; a pull request from a fork is
    reviewed at `refs/pull/<n>/head`. Returns why GitHub could not be asked, if so."""
    assert state.github is not None
    pulls, error = state.github.open_pulls()
    mine = {i["branch"]: i for i in items if i["repo"] == state.key}
    for pull in pulls:
        if pull["baseRef"] != state.default_branch:
            continue
        item = mine.get(pull["headRef"]) if pull["headRepo"] == state.github.repository else None
        if item is None:
            head = state.view.refs.get(f"refs/pull/{pull['number']}/head")
            if head is None or head == base:
                continue
            label = f"pull/{pull['number']}"
            key = (state.key, label, base, head)
            if key not in cache:
                cache[key] = _review_of(state, label, base, head)
            if not cache[key]:
                continue
            item = dict(cache[key])
            items.append(item)
        else:
            item = mine[pull["headRef"]] = dict(item)
            items[:] = [
                item if i["repo"] == state.key and i["branch"] == pull["headRef"] else i
                for i in items
            ]
        item["pullRequest"] = pull
    return error


def _review_of(state: RepoState, branch: str, base: str, head: str) -> dict[str, Any]:
    """The review of `branch` (at `head`) against `base`; empty when it does not change
    `.alloy/`."""
    from alloy.cli._review import _review
    from controllers import git as gitctl

    changed = [
        p for p in gitctl.changed_paths(state.view.cache, base, head) if p.startswith(".alloy/")
    ]
    if not changed:
        return {}
    review, _, _ = _review(
        state.view.cache,
        base,
        head,
        state.default_branch,
        branch,
        state.traces_branch,
        use_cache=False,
    )
    return {
        "repo": state.key,
        "branch": branch,
        "base": base,
        "head": head,
        "changed": changed[:50],
        "review": review.to_json(),
    }
