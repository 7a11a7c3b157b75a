"""Who may do what: the access token (required off loopback), CSRF tokens on every form, and
the acting identity recorded by actions.

* **Token.** `--token-file` holds one token per line, either `TOKEN` or `NAME TOKEN` (then the
  actions of that token are recorded as NAME). A request shows it as `Authorization: Bearer
  TOKEN` or by the cookie `/login` sets. Without a token file the server listens on loopback
  only (the CLI refuses anything else).
* **CSRF.** Every page sets a random cookie; every form carries the HMAC of it under the
  server's secret; a POST whose field does not match, or whose `Origin` is another site, is
  refused (403) before anything is read from it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field

from alloy.errors import UserError

CSRF_COOKIE = "alloy-ui-csrf"
TOKEN_COOKIE = "alloy-ui-token"  # noqa: S105 - the cookie's name, not a token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_tokens(path: str, data: str) -> dict[str, str | None]:
    """Tokens of a token file (token -> identity or None); refuses an empty or weak file."""
    tokens: dict[str, str | None] = {}
    for number, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) > 2:
            raise UserError(f"{path}:{number}: one token per line: TOKEN or NAME TOKEN")
        token = parts[-1]
        if len(token) < 16:
            raise UserError(f"{path}:{number}: a token of at least 16 characters, please")
        tokens[token] = parts[0] if len(parts) == 2 else None
    if not tokens:
        raise UserError(f"{path}: no token in it; write one token per line")
    return tokens


@dataclass
class Security:
    tokens: dict[str, str | None] = field(default_factory=dict)
    #: identity when none comes with the token (loopback: the operator's git identity)
    identity: str = "alloy-ui"
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def needs_token(self) -> bool:
        return bool(self.tokens)

    def token_ok(self, given: str | None) -> bool:
        if not self.tokens:
            return True
        if not given:
            return False
        return any(hmac.compare_digest(given, t) for t in self.tokens)

    def identity_of(self, given: str | None) -> str:
        if given and self.tokens:
            for token, name in self.tokens.items():
                if hmac.compare_digest(given, token):
                    return name or self.identity
        return self.identity

    def csrf_for(self, cookie: str) -> str:
        return hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, cookie: str | None, field_value: str | None) -> bool:
        if not cookie or not field_value:
            return False
        return hmac.compare_digest(self.csrf_for(cookie), field_value)
