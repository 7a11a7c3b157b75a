"""Reviews: every branch of a repository that changes `.alloy/`, reviewed as `alloy review`
reviews it (`--format json`: the same data), against the default branch's head.

A review is cached by (base, head) commits; nothing of a branch is checked out or run.
"""

from __future__ import annotations

from typing import Any

from alloy.web._repo import RepoState

REVIEW_LIMIT = 50


def reviews(
    states: list[RepoState], cache: dict[tuple[str, str, str], dict[str, Any]]
) -> dict[str, Any]:
    from alloy.cli._review import _review
    from controllers import git as gitctl

    items = []
    for state in states:
        base = state.intents.commit
        if base is None:
            continue
        skip = {f"refs/heads/{state.default_branch}", f"refs/heads/{state.traces_branch}"}
        branches = sorted(
            (name, sha)
            for name, sha in state.view.refs.items()
            if name.startswith("refs/heads/") and name not in skip and sha != base
        )
        for ref, head in branches[:REVIEW_LIMIT]:
            branch = ref[len("refs/heads/") :]
            key = (state.key, base, head)
            if key not in cache:
                changed = [
                    p
                    for p in gitctl.changed_paths(state.view.cache, base, head)
                    if p.startswith(".alloy/")
                ]
                if not changed:
                    cache[key] = {}
                else:
                    review, _, _ = _review(
                        state.view.cache,
                        base,
                        head,
                        state.default_branch,
                        branch,
                        state.traces_branch,
                        use_cache=False,
                    )
                    cache[key] = {
                        "repo": state.key,
                        "branch": branch,
                        "base": base,
                        "head": head,
                        "changed": changed[:50],
                        "review": review.to_json(),
                    }
            if cache[key]:
                items.append(cache[key])
    return {"schemaVersion": 1, "view": "reviews", "items": items}
