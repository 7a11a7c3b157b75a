"""The `ui:` entry of the daemon's config file (controllers/daemon_config.py), checked: `true`,
`false` or a mapping of readOnly, tokenFile, as and poll (the web interface: daemon_ui.py)."""

from __future__ import annotations

from controllers.daemon_config_reader import ConfigReader, parse_duration
from controllers.daemon_ui import UiConfig

_UI_KEYS = ("readOnly", "tokenFile", "as", "poll")
#: `alloy ui --poll` takes this range of seconds.
_UI_POLL = (0.05, 60.0)


def read_ui(reader: ConfigReader, value: object) -> UiConfig | None:
    """The web interface `ui:` asks for, None for `ui: false`."""
    where: tuple[str | int, ...] = ("ui",)
    if value is True:
        return UiConfig()
    if value is False:
        return None
    if not isinstance(value, dict):
        raise reader.fail(
            where,
            f"ui must be `true`, `false` or a mapping of {', '.join(_UI_KEYS)} "
            f"(e.g. `ui: {{readOnly: true}}`), not {value!r}",
        )
    reader.unknown(value, where, _UI_KEYS, "in ui")
    read_only = value.get("readOnly", False)
    if not isinstance(read_only, bool):
        raise reader.fail(
            (*where, "readOnly"), f"ui.readOnly must be true or false, not {read_only!r}"
        )
    token_file = value.get("tokenFile")
    if token_file is not None and (not isinstance(token_file, str) or not token_file.strip()):
        raise reader.fail(
            (*where, "tokenFile"),
            f"ui.tokenFile must be the path of a file of access tokens, not {token_file!r}",
        )
    identity = value.get("as")
    if identity is not None and (
        not isinstance(identity, str) or not identity.strip() or "\n" in identity
    ):
        raise reader.fail(
            (*where, "as"),
            f"ui.as must be a name actions are recorded as (e.g. `as: foundry-daemon`), "
            f"not {identity!r}",
        )
    low, high = _UI_POLL
    poll = parse_duration(value.get("poll", 0.5))
    if poll is None or not low <= poll <= high:
        raise reader.fail(
            (*where, "poll"),
            f"ui.poll: {value['poll']!r} is not a duration from {low:g} to {high:g} seconds; "
            'write seconds as a number (0.5) or a string like "500ms", "2s"',
        )
    return UiConfig(
        read_only=read_only,
        token_file=reader.path(value, where, "tokenFile"),
        identity=identity.strip() if isinstance(identity, str) else None,
        poll=poll,
    )
