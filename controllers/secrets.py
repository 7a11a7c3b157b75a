"""Each repository's own secrets on a runner host (docs/security.md).

A daemon that reconciles repositories of several teams gives each one its own source, named in
its config: environment variables with a prefix of its own (`secrets: {env: TEAM_A_}` gives
`TEAM_A_DEPLOY_TOKEN` to its blocks as `DEPLOY_TOKEN`), or a file of `NAME=VALUE` lines that only
the daemon's user may read (`secrets: {file: /etc/foundry/team-a.env}`). A block gets only the
secrets its block declares, and only from its own repository's source: two repositories may each
have a `DEPLOY_TOKEN` and neither sees the other's.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from foundry.errors import UserError

_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
#: The most a secrets file may hold (a file that is not one fails clearly, not slowly)
_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SecretSource:
    """`env` with a prefix, or `file` with a path."""

    kind: str
    value: str

    def read(self) -> dict[str, str]:
        if self.kind == "env":
            return {
                name[len(self.value) :]: v
                for name, v in os.environ.items()
                if name.startswith(self.value) and _NAME.match(name[len(self.value) :])
            }
        return read_secret_file(Path(self.value))

    def describe(self) -> str:
        return f"environment variables {self.value}*" if self.kind == "env" else self.value


def read_secret_file(path: Path) -> dict[str, str]:
    """`NAME=VALUE` lines (blank lines and `#` comments skipped) of a file only its owner may
    read; UserError naming the file, the line and the fix otherwise."""
    # One descriptor for the checks and the read (a file swapped in between is not read),
    # opened without waiting (a FIFO would wait for a writer forever: it is refused instead).
    # A symbolic link is followed: the file it leads to is the one checked and read.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise UserError(
                f"{path}: the secrets file is not a regular file; name a file of NAME=VALUE lines"
            )
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(_MAX_BYTES + 1)
        if len(data) > _MAX_BYTES:
            raise UserError(f"{path}: the secrets file is larger than {_MAX_BYTES} bytes")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"{path}: cannot read the secrets file: {reason}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError(
            f"{path}: the secrets file may be read by others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}`"
        )
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not _NAME.match(name.strip()):
            raise UserError(
                f"{path}:{number}: write each secret as NAME=VALUE (NAME in capitals, digits "
                "and _); the value is not shown"
            )
        out[name.strip()] = value
    return out
