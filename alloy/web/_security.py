"""Who may do what: the access token (required off loopback), CSRF tokens on every form, and
the acting identity recorded by actions.

* **Token.** `--token-file` holds one token per line, either `TOKEN` or `NAME TOKEN` (then the
  actions of that token are recorded as NAME). A request shows it as `Authorization: Bearer
  TOKEN` or by the cookie `/login` sets. Without a token file the server listens on loopback
  only (the CLI refuses anything else).
* **CSRF.** Every page sets a random cookie; every form carries the HMAC of it under the
  server's secret; a POST whose field does not match, or whose `Origin` is another site, is
  refused (403) before anything is read from it.
* **Host.** Without tokens (loopback), a request must name the server by a loopback address
  (`Host`): a web page whose own name was made to resolve to 127.0.0.1 (DNS rebinding) would
  otherwise be "same origin" with the dashboard, read it and send its forms.

Every comparison of a secret is made on bytes in constant time (any text a client sends,
non-ASCII included, is compared, never an error).
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


def host_of(header: str) -> str:
    """The host name of a `Host` header (`name:port`, `[v6]:port`), lowercase."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


#: Fewer different characters than this is a guessable token (`aaaa…`, `0101…`).
MIN_DISTINCT = 8


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


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
        if len(set(token)) < MIN_DISTINCT or not token.isascii() or not token.isprintable():
            raise UserError(
                f"{path}:{number}: that token is easy to guess (or not printable ASCII); make one "
                "with: python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
            )
        name = parts[0] if len(parts) == 2 else None
        if token in tokens and tokens[token] != name:
            raise UserError(f"{path}:{number}: the same token twice, for different names")
        tokens[token] = name
    if not tokens:
        raise UserError(f"{path}: no token in it; write one token per line")
    return tokens


@dataclass
class Security:
    tokens: dict[str, str | None] = field(default_factory=dict)
    #: identity when none comes with the token (loopback: the operator's git identity)
    identity: str = "alloy-ui"
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    #: host names a request may address the server by (`Host`); None: any
    hosts: frozenset[str] | None = None

    @property
    def needs_token(self) -> bool:
        return bool(self.tokens)

    def token_ok(self, given: str | None) -> bool:
        if not self.tokens:
            return True
        if not given:
            return False
        matches = [_same(given, t) for t in self.tokens]  # every one: no early exit
        return any(matches)

    def identity_of(self, given: str | None) -> str:
        if given and self.tokens:
            for token, name in self.tokens.items():
                if _same(given, token):
                    return name or self.identity
        return self.identity

    def host_ok(self, header: str | None) -> bool:
        """Whether a request's `Host` names this server (always, without a list of hosts)."""
        if self.hosts is None or header is None:
            return True
        return host_of(header) in self.hosts or is_loopback(host_of(header))

    def csrf_for(self, cookie: str) -> str:
        return hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, cookie: str | None, field_value: str | None) -> bool:
        if not cookie or not field_value:
            return False
        return _same(field_value, self.csrf_for(cookie))
