"""The GitHub side of controllers: the forge adapter on github3.py (`GitHubForge`), its
client and credentials, and the transport that respects GitHub's rate limits."""

from controllers.github._client import Client, Credentials
from controllers.github._forge import GitHubForge, clip, connect
from controllers.github._transport import GitHubTransport, Policy

__all__ = [
    "Client",
    "Credentials",
    "GitHubForge",
    "GitHubTransport",
    "Policy",
    "clip",
    "connect",
]
