"""The GitHub side of controllers: the forge adapter on github3.py (`GitHubForge`), its
client and credentials, and the transport that respects GitHub's rate limits.

The names are loaded on first use (PEP 562): importing `controllers.github._transport` runs
this file first, and the transport must stay free of Foundry and github3 (the forge port
imports `foundry.errors`), so that `controllers.github_pulls` can use it from `alloy ui`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controllers.github._client import Client, Credentials
    from controllers.github._forge import GitHubForge, clip, connect
    from controllers.github._transport import GitHubTransport, Policy

_WHERE = {
    "Client": "controllers.github._client",
    "Credentials": "controllers.github._client",
    "GitHubForge": "controllers.github._forge",
    "clip": "controllers.github._forge",
    "connect": "controllers.github._forge",
    "GitHubTransport": "controllers.github._transport",
    "Policy": "controllers.github._transport",
}

__all__ = [
    "Client",
    "Credentials",
    "GitHubForge",
    "GitHubTransport",
    "Policy",
    "clip",
    "connect",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value
